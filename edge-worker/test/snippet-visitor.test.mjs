// The visitor id the snippet announces, in a real browser: headless Chromium from
// Debian's packages (see install-chromium.sh) driven by playwright-core, the Worker
// under workerd. The shop's pages are served as http://localhost:PORT and the Worker as
// http://127.0.0.1:PORT, two hosts, so a cookie found on the page's origin was written
// there by the snippet (document.cookie), not by the edge's Set-Cookie. Checked: the
// `samplit:visitor` event and `samplit.visitor` carry the id the edge answered with; the
// cookie `data-first-party-cookie` names is set on the page's origin, and none without
// the attribute or with an invalid name. The exact cookie string (Secure on https) is
// checked in snippet.test.mjs. Every context is fresh: no cookie carries over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as h from './harness.mjs';
import { startOrigin } from './editor-harness.mjs';

const CHROMIUM = process.env.SAMPLIT_CHROMIUM ?? '/usr/bin/chromium';
const SITE = 'sk_snippet_visitor';
const COOKIE = '_samplit_vid';
const YEAR_S = 31536000;
let browser;
let worker;
let origin;
let shop; // the page's origin, http://localhost:PORT

function html(cookieAttr) {
  const attr = cookieAttr === null ? '' : ` data-first-party-cookie="${cookieAttr.replace(/"/g, '&quot;')}"`;
  return `<!doctype html><html><head><title>Shop</title>
<script src="${worker.base}/v1/samplit.js?site=${SITE}" data-site-key="${SITE}"${attr}></script>
</head><body><h1 id="headline">Original headline</h1></body></html>`;
}

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run edge-worker/test/install-chromium.sh`);
  const { chromium } = await import('playwright-core');
  const pageRoute = (attr) => () => ({ headers: { 'content-type': 'text/html' }, body: html(attr) });
  origin = await startOrigin({
    '/with-cookie': pageRoute(COOKIE),
    '/plain': pageRoute(null),
    '/bad-name': pageRoute('bad name;domain=evil.example'),
  });
  shop = `http://localhost:${origin.port}`;
  worker = await h.startWorker();
  const snapshot = h.testSnapshot({ siteKey: SITE, weights: [0, 1], allowedOrigins: [shop] });
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(snapshot));
  assert.equal(res.status, 200, await res.text());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
});
after(async () => {
  await browser?.close();
  await worker?.stop();
  await origin?.close();
});

/**
 * Opens `path` on the shop in a fresh context, with a `samplit:visitor` listener in place
 * before any script runs. Resolves once the page announced a visitor (bounded), with the
 * edge's answer to /v1/assign, what the page saw, its cookies and its console warnings.
 */
async function visit(path) {
  const context = await browser.newContext({ userAgent: h.BROWSER_UA });
  try {
    await context.addInitScript(() => {
      window.__visitorEvents = [];
      window.addEventListener('samplit:visitor', (e) => window.__visitorEvents.push(e.detail));
    });
    const tab = await context.newPage();
    const warnings = [];
    tab.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
    const assigned = tab.waitForResponse((r) => r.url() === `${worker.base}/v1/assign`, { timeout: 15000 });
    await tab.goto(`${shop}${path}`, { timeout: 15000 });
    const answer = await (await assigned).json();
    await tab.waitForFunction(() => window.__visitorEvents.length > 0, null, { timeout: 10000 });
    const seen = await tab.evaluate(() => ({
      events: window.__visitorEvents,
      visitor: window.samplit.visitor,
      track: typeof window.samplit.track,
      documentCookie: document.cookie,
    }));
    return {
      answer,
      ...seen,
      warnings,
      shopCookies: await context.cookies(shop),
      edgeCookies: await context.cookies(worker.base),
    };
  } finally {
    await context.close();
  }
}

test('the page learns the visitor id the edge answered with: samplit:visitor and samplit.visitor', { timeout: 60000 }, async () => {
  const v = await visit('/plain');
  assert.equal(v.answer.excluded, null);
  assert.match(v.answer.visitor_id, /\S/, 'the edge named a visitor');
  assert.deepEqual(v.events, [{ visitor_id: v.answer.visitor_id }], 'one event, with the id');
  assert.equal(v.visitor, v.answer.visitor_id);
  assert.equal(v.track, 'function', 'the public API is kept');
});

test('data-first-party-cookie sets the cookie on the page\'s own origin; without it there is none', { timeout: 60000 }, async () => {
  const before = Date.now() / 1000;
  const v = await visit('/with-cookie');
  const id = v.answer.visitor_id;
  assert.equal(v.visitor, id);
  assert.deepEqual(v.events, [{ visitor_id: id }]);
  const cookie = v.shopCookies.find((c) => c.name === COOKIE);
  assert.ok(cookie, `the cookie on ${shop}: ${JSON.stringify(v.shopCookies)}`);
  assert.equal(decodeURIComponent(cookie.value), id);
  assert.equal(cookie.domain, 'localhost', 'a host-only cookie of the page\'s host');
  assert.equal(cookie.path, '/');
  assert.equal(cookie.sameSite, 'Lax');
  assert.equal(cookie.secure, false, 'not Secure on an http page');
  assert.equal(cookie.httpOnly, false, 'readable by scripts (a web pixel\'s browser.cookie.get)');
  assert.ok(Math.abs(cookie.expires - (before + YEAR_S)) < 120, `expires in a year: ${cookie.expires}`);
  assert.ok(v.documentCookie.split('; ').includes(`${COOKIE}=${cookie.value}`), v.documentCookie);
  assert.ok(!v.edgeCookies.some((c) => c.name === COOKIE), 'not on the edge\'s host');
  assert.deepEqual(v.warnings, []);

  const plain = await visit('/plain');
  assert.equal(plain.visitor, plain.answer.visitor_id, 'the id is still announced');
  assert.deepEqual(plain.shopCookies, [], 'no cookie on the page\'s origin without the attribute');
  assert.equal(plain.documentCookie, '');
});

test('an invalid data-first-party-cookie name sets no cookie and warns once', { timeout: 60000 }, async () => {
  const v = await visit('/bad-name');
  assert.equal(v.visitor, v.answer.visitor_id, 'the id is still announced');
  assert.deepEqual(v.shopCookies, [], `no cookie on the page's origin: ${JSON.stringify(v.shopCookies)}`);
  assert.equal(v.documentCookie, '');
  assert.equal(v.warnings.filter((w) => w.includes('data-first-party-cookie')).length, 1, JSON.stringify(v.warnings));
});
