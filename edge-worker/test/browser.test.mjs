// In a real browser: headless Chromium from Debian's packages (/usr/bin/chromium; see
// install-chromium.sh), driven by playwright-core (never `npx playwright install`).
// - the snippet: a MutationObserver and a per-frame paint log, installed before the
//   snippet, record what the headline shows; neither on a first visit (the edge puts the
//   site's targeted selectors in front of the script) nor on a returning one is the
//   original text painted, and samplit.track reaches /v1/events and, through the queue,
//   the (fake) control plane;
// - edge rendering: the page's HTML already holds the variant, the original never exists;
// - the editor: framed by an admin page, a click sends a unique selector to the admin
//   origin, a preview from the admin origin is applied, a message from elsewhere ignored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as h from './harness.mjs';
import { editorToken, startOrigin } from './editor-harness.mjs';

const CHROMIUM = process.env.SAMPLIT_CHROMIUM ?? '/usr/bin/chromium';
const SITE = 'sk_browser';
const EXP = '44444444-4444-4444-8444-444444444444';
let chromium;
let browser; // a persistent context on a fresh profile
let profile;
let origin;
let admin;
let worker;
let cp;

// Records, from the first byte of <head>, every state of #headline: on each mutation and
// before each frame is painted (requestAnimationFrame runs right before rendering).
const PAINT_LOG = `<script>
window.__log = [];
(function () {
  function look(kind) {
    var el = document.getElementById('headline');
    if (!el) return;
    var visible = getComputedStyle(el).visibility !== 'hidden' && getComputedStyle(el).display !== 'none';
    window.__log.push({ kind: kind, text: el.textContent, visible: visible, t: performance.now() });
  }
  new MutationObserver(function () { look('mutation'); }).observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });
  (function frame() { look('frame'); requestAnimationFrame(frame); })();
})();
</script>`;

function page({ snippet }) {
  const tag = snippet ? `<script src="${worker.base}/v1/samplit.js?site=${SITE}" data-site-key="${SITE}"></script>` : '';
  return `<!doctype html><html><head><title>Shop</title>${PAINT_LOG}${tag}</head><body>
<h1 id="headline">Original headline</h1>
<p class="lead">Lead text</p>
<ul id="list"><li>one</li><li>two</li><li>three</li></ul>
<ol><li>first</li><li>second</li></ol>
<div><span>no id here</span><span>second span</span></div>
<a id="cta" href="/signup">Sign up</a>
</body></html>`;
}

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run edge-worker/test/install-chromium.sh`);
  ({ chromium } = await import('playwright-core'));
  origin = await startOrigin({
    '/snippet-page': () => ({ headers: { 'content-type': 'text/html' }, body: page({ snippet: true }) }),
    '/plain': () => ({ headers: { 'content-type': 'text/html' }, body: page({ snippet: false }) }),
  });
  cp = await h.startControlPlane();
  worker = await h.startWorker({
    vars: {
      SAMPLIT_CONTROL_PLANE_URL: cp.url,
      SAMPLIT_ORIGIN_OVERRIDE: origin.url,
      SAMPLIT_EDITOR_ALLOW_HTTP: 'true',
      SAMPLIT_EDITOR_ALLOW_LOOPBACK: 'true',
      SAMPLIT_EDITOR_ALLOW_PORTS: String(origin.port),
    },
  });
  // An admin application on its own origin that frames the editor and logs messages.
  admin = await startOrigin({
    '/admin': (req) => {
      const src = new URL(req.url, 'http://x').searchParams.get('src');
      return {
        headers: { 'content-type': 'text/html' },
        body: `<!doctype html><html><body><script>
window.received = [];
window.addEventListener('message', function (e) { window.received.push({ origin: e.origin, data: e.data }); });
</script><iframe id="editor" style="width:1000px;height:700px" src="${src.replace(/"/g, '&quot;')}"></iframe></body></html>`,
      };
    },
  });
  const snapshot = h.testSnapshot({ siteKey: SITE, weights: [0, 1], experimentId: EXP, allowedOrigins: [origin.url, worker.base] });
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(snapshot));
  assert.equal(res.status, 200, await res.text());
  // The host routes to this site only through a signed route (docs/security.md).
  const routed = await h.pushRoute(worker, '127.0.0.1', h.signRoute({ host: '127.0.0.1', siteKey: SITE, version: 1 }));
  assert.equal(routed.status, 200, await routed.text());
  profile = mkdtempSync(join(tmpdir(), 'samplit-chromium-'));
  // A fresh profile directory: playwright passes it as --user-data-dir.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    // Headless Chromium's own user agent says "HeadlessChrome", which the engine's bot
    // list excludes from experiments (as it should); these tests play a visitor.
    userAgent: h.BROWSER_UA,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
});
after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await worker?.stop();
  await Promise.all([cp?.close(), origin?.close(), admin?.close()]);
});

const originalPainted = (log) => log.filter((e) => e.kind === 'frame' && e.visible && e.text === 'Original headline');

test('with the snippet, neither a first nor a returning visitor sees the original, and samplit.track reaches the control plane', async () => {
  const tab = await browser.newPage();
  const shown = async (visit) => {
    await tab.waitForFunction(() => document.getElementById('headline').textContent === 'Try it free'
      && getComputedStyle(document.getElementById('headline')).visibility !== 'hidden', null, { timeout: 10000 });
    await tab.waitForTimeout(200);
    const log = await tab.evaluate(() => window.__log);
    assert.ok(log.some((e) => e.kind === 'frame'), `${visit}: frames were logged`);
    assert.deepEqual(originalPainted(log), [], `${visit}: the original headline was never painted`);
    assert.ok(log.some((e) => e.kind === 'frame' && e.visible && e.text === 'Try it free'), `${visit}: the variant was painted`);
  };
  // First visit on a fresh profile: nothing remembered, the site's selectors come with
  // the script.
  await tab.goto(`${origin.url}/snippet-page`);
  assert.deepEqual(await tab.evaluate(() => window.__samplit_site.hide), ['#headline']);
  await shown('first visit');
  // Returning visit: hidden from the first frame until the variant is applied.
  await tab.reload();
  await shown('returning visit');

  const vid = await tab.evaluate(() => {
    window.samplit.track('signup', 12.5);
    return JSON.parse(localStorage.getItem('samplit:sk_browser')).vid;
  });
  const conversion = await h.waitFor(
    () => cp.items().find((i) => i.type === 'conversion' && i.goal === 'signup' && i.visitor_id === vid),
    { what: 'the tracked conversion at the control plane', timeoutMs: 20000 },
  );
  assert.equal(conversion.value, 12.5);
  assert.equal(conversion.site_key, SITE);
  assert.ok(cp.items().some((i) => i.type === 'exposure' && i.visitor_id === vid && i.arm_id === 'treatment'));
  await tab.close();
});

test('a page rendered at the edge has the variant in its HTML and never holds the original', async () => {
  const tab = await browser.newPage();
  const response = await tab.goto(`${worker.base}/plain`);
  const html = await response.text();
  assert.ok(html.includes('<h1 id="headline">Try it free</h1>'), html);
  assert.ok(!html.includes('Original headline'));
  await tab.waitForTimeout(100);
  const log = await tab.evaluate(() => window.__log);
  assert.ok(log.length > 0);
  assert.ok(log.every((e) => e.text === 'Try it free'), `only the variant was ever in the DOM: ${JSON.stringify(log.slice(0, 3))}`);
  await tab.close();
});

test('the editor selects elements with unique selectors and previews changes for the admin origin only', async () => {
  const tab = await browser.newPage();
  const adminOrigin = admin.url;
  const token = editorToken({ siteKey: SITE, adminOrigin });
  const src = `${worker.base}/v1/editor?url=${encodeURIComponent(`${origin.url}/plain`)}&token=${encodeURIComponent(token)}`;
  await tab.goto(`${admin.url}/admin?src=${encodeURIComponent(src)}`);
  const received = (type) => tab.evaluate((t) => window.received.filter((m) => m.data && m.data.type === t), type);
  await h.waitFor(async () => (await received('samplit:ready')).length > 0, { what: 'the editor to say ready' });
  const frame = tab.frame({ url: /\/v1\/editor\?/ });
  assert.ok(frame, 'the editor frame');

  const cases = [
    ['#cta', '#cta'],
    ['p.lead', 'p.lead'],
    ['#list li:nth-child(2)', '#list > li:nth-of-type(2)'],
    ['ol li:nth-child(2)', 'ol:nth-of-type(1) > li:nth-of-type(2)'],
    ['div > span:nth-child(2)', 'span:nth-of-type(2)'],
  ];
  for (const [target, want] of cases) {
    await frame.click(target);
    const selects = await h.waitFor(async () => {
      const got = await received('samplit:select');
      return got.length ? got : null;
    }, { what: `a selection of ${target}` });
    const last = selects.at(-1);
    assert.equal(last.origin, 'null', 'the sandboxed editor page has an opaque origin');
    assert.equal(last.data.selector, want, target);
    // The selector matches exactly the clicked element.
    assert.equal(await frame.evaluate(([s, t]) => {
      const all = document.querySelectorAll(s);
      return all.length === 1 && all[0] === document.querySelector(t);
    }, [last.data.selector, target]), true, `${want} is unique`);
    await tab.evaluate(() => { window.received = []; });
  }
  // The edge never navigated away: clicks are intercepted in select mode.
  assert.match(frame.url(), /\/v1\/editor\?/);

  // A preview from the admin origin is applied...
  await tab.evaluate(() => document.getElementById('editor').contentWindow.postMessage({
    type: 'samplit:preview',
    changes: [{ selector: '#headline', action: { type: 'set_text', text: 'Previewed' } }],
  }, '*'));
  await h.waitFor(async () => (await frame.textContent('#headline')) === 'Previewed', { what: 'the preview' });
  // ...one from any other origin (here the frame itself, an opaque origin) is ignored.
  await frame.evaluate(() => window.postMessage({
    type: 'samplit:preview',
    changes: [{ selector: '#headline', action: { type: 'set_text', text: 'Hijacked' } }],
  }, '*'));
  await tab.waitForTimeout(300);
  assert.equal(await frame.textContent('#headline'), 'Previewed');
  await tab.close();
});
