// The exposure context under workerd (issue 16): what the edge records of a visitor
// before assigning them. Miniflare (as in cf.test.mjs) because only it lets a test set
// Cloudflare's `request.cf.country`; its queue consumer delivers the exposures to the
// fake control plane, which verifies the ingest signature as the real one does.
// Covered: /v1/assign (user agent, snippet referrer, page UTM, history cookie), a
// second visit 31+ minutes later, conversions on /v1/events bumping the cookie, a page
// rendered at the edge (cf country, Referer), and the signed-only fields.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';
import { startOrigin } from './editor-harness.mjs';

const SITE = 'sk_test_context';
const HOST = 'shop.example.com';
const EDGE = 'https://edge.example.com';
const SECRET = h.serverSecret(SITE, h.TEST_SALT);
// Safari on iPhone, as MDN's User-Agent page gives it.
const IPHONE_SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 13_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Mobile/15E148 Safari/604.1';
let mf;
let cp;
let origin;

const nowMin = () => Math.floor(Date.now() / 60000);

before(async () => {
  cp = await h.startControlPlane();
  origin = await startOrigin({
    '/pricing': () => ({ headers: { 'content-type': 'text/html' }, body: '<html><body><h1 id="headline">Pricing</h1></body></html>' }),
  });
  mf = await h.startMiniflare({
    consumeQueue: true,
    bindings: {
      SAMPLIT_INGEST_SECRET: h.INGEST_SECRET,
      SAMPLIT_CONTROL_PLANE_URL: cp.url,
      SAMPLIT_ORIGIN_OVERRIDE: origin.url,
    },
  });
  // Everyone gets `treatment` (one exposure per assignment).
  const snapshot = h.testSnapshot({ siteKey: SITE, weights: [0, 1], allowedOrigins: [`https://${HOST}`] });
  let res = await mf.dispatchFetch(`${EDGE}/v1/internal/snapshots/${SITE}`, {
    method: 'PUT', body: JSON.stringify(h.signSnapshot(snapshot)),
  });
  assert.equal(res.status, 200, await res.text());
  res = await mf.dispatchFetch(`${EDGE}/v1/internal/routes/${HOST}`, {
    method: 'PUT', body: JSON.stringify(h.signRoute({ host: HOST, siteKey: SITE, version: 1 })),
  });
  assert.equal(res.status, 200, await res.text());
});
after(async () => {
  await mf?.dispose();
  await cp?.close();
  await origin?.close();
});

/** POST /v1/assign; `cf` is Cloudflare's request object, `sign` signs the body. */
function assign(body, { ua = h.BROWSER_UA, cookie, cf, sign = false } = {}) {
  const text = JSON.stringify({ site_key: SITE, ...body });
  const headers = { 'content-type': 'text/plain', 'user-agent': ua };
  if (cookie) headers.cookie = cookie;
  if (sign) Object.assign(headers, h.signatureHeaders(SECRET, 'POST', '/v1/assign', text));
  return mf.dispatchFetch(`${EDGE}/v1/assign`, { method: 'POST', body: text, headers, ...(cf ? { cf } : {}) });
}

/** The exposures the control plane received for a visitor, once there are `n`. */
const exposuresOf = (visitor, n = 1) => h.waitFor(() => {
  const got = cp.items().filter((i) => i.type === 'exposure' && i.visitor_id === visitor);
  return got.length >= n ? got : null;
}, { timeoutMs: 20000, what: `${n} exposures of ${visitor}` });

/** The samplit_hist cookie a response sets, parsed: [visits, conversions, last_seen_min]. */
function history(res) {
  const c = h.setCookies(res).samplit_hist;
  if (!c) return null;
  assert.match(c.line, /^samplit_hist=1\.\d+\.\d+\.\d+; Path=\/; Max-Age=31536000; SameSite=Lax; HttpOnly; Secure$/);
  const [, visits, conversions, last] = c.value.split('.').map(Number);
  return { visits, conversions, last, value: c.value };
}

test('an exposure from /v1/assign carries the visitor\'s context, and the history cookie is set', { timeout: 40000 }, async () => {
  const res = await assign({
    visitor_id: 'ctx-visitor-1',
    url: `https://${HOST}/pricing?utm_medium=email&utm_source=spring`,
    referrer: 'https://www.google.com/',
  }, { ua: IPHONE_SAFARI, cf: { country: 'ES' } });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).assignments[0].arm_id, 'treatment');
  const hist = history(res);
  assert.equal(hist.visits, 1);
  assert.equal(hist.conversions, 0);
  assert.ok(Math.abs(hist.last - nowMin()) <= 1, `last seen is now: ${hist.last}`);

  const [exposure] = await exposuresOf('ctx-visitor-1');
  assert.deepEqual(exposure.context, {
    country: 'ES',
    device: 'mobile',
    browser: 'safari',
    source: 'email', // the page's utm_medium wins over the Google referrer
    landing: '/pricing',
    prior_visits: 0,
    prior_conversions: 0,
  });
  // Neither the user agent nor an address is stored anywhere in the item.
  assert.ok(!JSON.stringify(exposure).includes('iPhone'));
});

test('the landing page is kept as a template: no e-mail address, order number or token', { timeout: 40000 }, async () => {
  const res = await assign({
    visitor_id: 'ctx-visitor-pii',
    url: `https://${HOST}/orders/ana@example.com/100234/Xk3pQzLmNvBtRwYhJcGfDsAe?email=ana@example.com`,
  });
  assert.equal(res.status, 200);
  const [exposure] = await exposuresOf('ctx-visitor-pii');
  assert.equal(exposure.context.landing, '/orders/:email/:id/:token');
  assert.ok(!JSON.stringify(exposure).includes('ana@'), JSON.stringify(exposure));
  assert.ok(!JSON.stringify(exposure).includes('100234'), JSON.stringify(exposure));
});

test('a request 31 minutes after the last one is a new visit: prior_visits 1', { timeout: 40000 }, async () => {
  const visitor = 'ctx-visitor-2';
  const last = nowMin() - 31;
  const res = await assign(
    { visitor_id: visitor, url: `https://${HOST}/pricing`, referrer: 'https://t.co/abc' },
    { cookie: `samplit_hist=1.1.0.${last}`, cf: { country: 'XX' } },
  );
  assert.equal(res.status, 200);
  const hist = history(res);
  assert.equal(hist.visits, 2, 'the second visit');
  const [exposure] = await exposuresOf(visitor);
  assert.equal(exposure.context.prior_visits, 1);
  assert.equal(exposure.context.source, 'social');
  assert.equal('country' in exposure.context, false, 'Cloudflare\'s XX is unknown: left out');
  assert.equal(exposure.context.device, 'desktop');
  assert.equal(exposure.context.browser, 'chrome');

  // Within the visit (a minute later by the cookie): still one prior visit, and the
  // cookie is re-set only when its value changes.
  const again = await assign(
    { visitor_id: visitor, url: `https://${HOST}/pricing` },
    { cookie: `samplit_hist=${hist.value}` },
  );
  await again.arrayBuffer();
  const rewritten = history(again);
  assert.ok(rewritten === null || rewritten.visits === 2, 'same visit: re-set only if a minute turned, with the same count');
  const both = (await exposuresOf(visitor, 2)).sort((a, b) => a.ts_ms - b.ts_ms);
  assert.deepEqual(both.map((e) => e.context.prior_visits), [1, 1]);
  assert.equal(both[1].context.source, 'direct', 'no referrer, no campaign');
});

test('a conversion on /v1/events bumps the conversions in the re-set cookie; custom events do not', { timeout: 40000 }, async () => {
  const visitor = 'ctx-visitor-3';
  const t = nowMin() - 5;
  const events = (list, cookie) => mf.dispatchFetch(`${EDGE}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', cookie },
    body: JSON.stringify({ site_key: SITE, visitor_id: visitor, events: list }),
  });
  const res = await events([
    { type: 'conversion', goal: 'signup' },
    { type: 'custom', goal: 'video_played' },
    { type: 'pageview', url: `https://${HOST}/thanks` },
  ], `samplit_hist=1.2.0.${t}`);
  assert.equal(res.status, 202);
  const hist = history(res);
  assert.deepEqual([hist.visits, hist.conversions], [2, 1], 'one conversion; the same visit');

  const other = await events([{ type: 'custom', goal: 'scroll' }, { type: 'pageview', url: `https://${HOST}/` }], `samplit_hist=${hist.value}`);
  assert.equal(other.status, 202);
  assert.equal(history(other), null, 'custom events and page views are not conversions');

  // The next exposure counts it as prior.
  const next = await assign({ visitor_id: visitor, url: `https://${HOST}/pricing` }, { cookie: `samplit_hist=${hist.value}` });
  await next.arrayBuffer();
  const [exposure] = await exposuresOf(visitor);
  assert.deepEqual([exposure.context.prior_visits, exposure.context.prior_conversions], [1, 1]);
});

test('a page rendered at the edge carries the country from cf and the Referer', { timeout: 40000 }, async () => {
  const res = await mf.dispatchFetch(`https://${HOST}/pricing?x=1`, {
    headers: { accept: 'text/html', 'user-agent': h.BROWSER_UA, referer: 'https://news.example.org/story' },
    cf: { country: 'DE' },
  });
  assert.equal(res.status, 200);
  assert.ok((await res.text()).includes('Try it free'), 'rendered with the treatment');
  const cookies = h.setCookies(res);
  const visitor = cookies.samplit_vid.value;
  assert.equal(history(res).visits, 1, 'the history cookie is set with the others');
  const [exposure] = await exposuresOf(visitor);
  assert.deepEqual(exposure.context, {
    country: 'DE',
    device: 'desktop',
    browser: 'chrome',
    source: 'referral',
    landing: '/pricing',
    prior_visits: 0,
    prior_conversions: 0,
  });
});

test('country and prior counts are for signed calls only; a long referrer is refused', { timeout: 40000 }, async () => {
  const url = `https://${HOST}/pricing`;
  for (const [field, value] of [['country', 'FR'], ['prior_visits', 3], ['prior_conversions', 1]]) {
    const res = await assign({ visitor_id: 'ctx-unsigned', url, [field]: value });
    assert.equal(res.status, 401, field);
    const body = await res.json();
    assert.equal(body.error.code, 'signature_required', field);
    assert.match(body.error.message, new RegExp(field));
  }
  const long = await assign({ visitor_id: 'ctx-unsigned', url, referrer: `https://x.test/${'r'.repeat(2048)}` });
  assert.equal(long.status, 400);
  assert.equal((await long.json()).error.code, 'invalid_referrer');
  const badCountry = await assign({ visitor_id: 'ctx-unsigned', url, country: 'fr' }, { sign: true });
  assert.equal(badCountry.status, 400);
  assert.equal((await badCountry.json()).error.code, 'invalid_country');

  // Signed: the plugin's country and counts, its visitor's agent; no history cookie
  // (the answer goes to the plugin's server). Cloudflare's country is the server's.
  const res = await assign({
    visitor_id: 'ctx-signed', url, user_agent: IPHONE_SAFARI,
    country: 'FR', prior_visits: 4, prior_conversions: 2000,
  }, { sign: true, cf: { country: 'US' } });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(history(res), null);
  const [exposure] = await exposuresOf('ctx-signed');
  assert.deepEqual(exposure.context, {
    country: 'FR', device: 'mobile', browser: 'safari', source: 'direct', landing: '/pricing',
    prior_visits: 4, prior_conversions: 1000,
  });
  assert.deepEqual(cp.rejected, [], 'every ingest request carried a valid signature');
});
