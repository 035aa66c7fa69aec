// Edge rendering through local workerd: GET of a ~100 KB HTML page rewritten with a
// variant (7 changes) vs the same page passed through (a bot user agent: no assignment,
// the origin's answer is returned as is), interleaved in the same run, same Worker.
// Usage (after `cargo xtask edge-build`): node edge-worker/bench/rewrite-latency.mjs
import * as h from '../test/harness.mjs';
import { startOrigin } from '../test/editor-harness.mjs';

const N = Number(process.env.N ?? 300);
let page = '<!doctype html><html><head><title>Shop</title></head><body><h1 id="headline">Original</h1><main>';
for (let i = 0; page.length < 100 * 1024; i++) {
  page += `<section class="card" data-i="${i}"><h2>Product ${i}</h2><p class="lead">Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p><a class="buy" href="/p/${i}">Buy</a></section>`;
}
page += '</main><div id="banner">Sale</div><ul id="list"><li>a</li></ul></body></html>';

const origin = await startOrigin({ '/page': () => ({ headers: { 'content-type': 'text/html' }, body: page }) });
const worker = await h.startWorker({ vars: { SAMPLIT_ORIGIN_OVERRIDE: origin.url } });
const changes = [
  { selector: '#headline', action: { type: 'set_text', text: 'Variant' } },
  { selector: 'p.lead', action: { type: 'set_html', html: '<b>New</b>' } },
  { selector: 'a.buy', action: { type: 'set_attribute', name: 'href', value: '/cart' } },
  { selector: 'a.buy', action: { type: 'set_style', property: 'color', value: 'red' } },
  { selector: '#banner', action: { type: 'hide' } },
  { selector: '#list', action: { type: 'insert', position: 'append', html: '<li>b</li>' } },
  { selector: '#list', action: { type: 'insert', position: 'before', html: '<hr>' } },
];
const snap = h.testSnapshot({ siteKey: 'sk_bench', weights: [0, 1], allowedOrigins: [worker.base] });
snap.experiments[0].elements[0].variants[1].changes = changes;
await h.pushSnapshot(worker, 'sk_bench', h.signSnapshot(snap));

async function get(ua) {
  const t = performance.now();
  const res = await worker.fetch('/page', { headers: { accept: 'text/html', 'user-agent': ua, cookie: 'samplit_vid=bench-visitor' } });
  const body = await res.text();
  return { ms: performance.now() - t, len: body.length, rewritten: body.includes('>Variant</h1>') };
}
const BOT = 'Googlebot/2.1 (+http://www.google.com/bot.html)';
for (let i = 0; i < 30; i++) { await get(h.BROWSER_UA); await get(BOT); }
const rw = [];
const pt = [];
for (let i = 0; i < N; i++) {
  const a = await get(h.BROWSER_UA);
  const b = await get(BOT);
  if (!a.rewritten || b.rewritten) throw new Error('the cases are not what they claim');
  rw.push(a.ms);
  pt.push(b.ms);
}
const q = (xs, p) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * p)];
console.log(`page ${page.length} bytes, ${N} interleaved requests per case through local workerd`);
console.log(`passthrough (bot, no variant)  p50 ${q(pt, 0.5).toFixed(2)} ms  p90 ${q(pt, 0.9).toFixed(2)} ms`);
console.log(`rewritten (7 changes)          p50 ${q(rw, 0.5).toFixed(2)} ms  p90 ${q(rw, 0.9).toFixed(2)} ms`);
console.log(`overhead per 100 KB page       p50 ${(q(rw, 0.5) - q(pt, 0.5)).toFixed(2)} ms`);
await worker.stop();
await origin.close();
