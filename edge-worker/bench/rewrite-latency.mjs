// Edge rendering through local workerd: GET of a ~100 KB HTML page rewritten with a
// variant (7 changes) vs the same page passed through (a bot user agent: no assignment,
// the origin's answer is returned as is), interleaved in the same run, same Worker.
// Two pages of the same size: on `/page` two of the selectors match every product card
// (hundreds of elements, each a handler call), on `/page-few` each matches one element.
// Usage (after `cargo xtask edge-build`): node edge-worker/bench/rewrite-latency.mjs
import * as h from '../test/harness.mjs';
import { startOrigin } from '../test/editor-harness.mjs';

const N = Number(process.env.N ?? 300);
function build(lead, buy) {
  let html = '<!doctype html><html><head><title>Shop</title></head><body><h1 id="headline">Original</h1><main>';
  for (let i = 0; html.length < 100 * 1024; i++) {
    html += `<section class="card" data-i="${i}"><h2>Product ${i}</h2><p class="${lead}">Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p><a class="${buy}" href="/p/${i}">Buy</a></section>`;
  }
  return html + '</main><p class="lead">Once</p><a class="buy" href="/b">Once</a><div id="banner">Sale</div><ul id="list"><li>a</li></ul></body></html>';
}
const page = build('lead', 'buy');
const few = build('text', 'link');
const cards = (page.match(/class="card"/g) ?? []).length;

const origin = await startOrigin({
  '/page': () => ({ headers: { 'content-type': 'text/html' }, body: page }),
  '/page-few': () => ({ headers: { 'content-type': 'text/html' }, body: few }),
});
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

async function get(ua, path = '/page') {
  const t = performance.now();
  const res = await worker.fetch(path, { headers: { accept: 'text/html', 'user-agent': ua, cookie: 'samplit_vid=bench-visitor' } });
  const body = await res.text();
  return { ms: performance.now() - t, len: body.length, rewritten: body.includes('>Variant</h1>') };
}
const BOT = 'Googlebot/2.1 (+http://www.google.com/bot.html)';
for (let i = 0; i < 30; i++) { await get(h.BROWSER_UA); await get(h.BROWSER_UA, '/page-few'); await get(BOT); }
const rw = [];
const rwFew = [];
const pt = [];
for (let i = 0; i < N; i++) {
  const a = await get(h.BROWSER_UA);
  const c = await get(h.BROWSER_UA, '/page-few');
  const b = await get(BOT);
  if (!a.rewritten || !c.rewritten || b.rewritten) throw new Error('the cases are not what they claim');
  rw.push(a.ms);
  rwFew.push(c.ms);
  pt.push(b.ms);
}
const q = (xs, p) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * p)];
console.log(`page ${page.length} bytes (${cards} product cards), ${N} interleaved requests per case through local workerd`);
console.log(`passthrough (bot, no variant)               p50 ${q(pt, 0.5).toFixed(2)} ms  p90 ${q(pt, 0.9).toFixed(2)} ms`);
console.log(`rewritten, 7 changes on 7 elements          p50 ${q(rwFew, 0.5).toFixed(2)} ms  p90 ${q(rwFew, 0.9).toFixed(2)} ms`);
console.log(`rewritten, 7 changes on ${String(2 * cards + 7).padEnd(4)} elements       p50 ${q(rw, 0.5).toFixed(2)} ms  p90 ${q(rw, 0.9).toFixed(2)} ms`);
console.log(`overhead per 100 KB page, 7 elements        p50 ${(q(rwFew, 0.5) - q(pt, 0.5)).toFixed(2)} ms`);
console.log(`overhead per 100 KB page, ${String(2 * cards + 7).padEnd(4)} elements     p50 ${(q(rw, 0.5) - q(pt, 0.5)).toFixed(2)} ms`);
await worker.stop();
await origin.close();
