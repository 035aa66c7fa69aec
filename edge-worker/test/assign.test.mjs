// /v1/assign under workerd: assignments and cookies, stickiness across snapshot
// versions, exclusion, CORS, the GET form for plugins, the bad-input table, and the
// snippet route.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import * as h from './harness.mjs';

const SITE = 'sk_test_assign';
const ORIGIN = 'https://shop.example.com';
const URL_ = 'https://shop.example.com/pricing';
let worker;

const push = async (version, extra = {}) => {
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(h.testSnapshot({ siteKey: SITE, version, ...extra })));
  assert.equal(res.status, 200, await res.clone().text());
};

/** Signature headers for a GET under the test site's server secret. */
const signed = (pathAndQuery) => h.signatureHeaders(h.serverSecret(SITE, h.TEST_SALT), 'GET', pathAndQuery);

before(async () => {
  worker = await h.startWorker();
  await push(1, { exclusions: [{ type: 'ip', range: '203.0.113.0/24' }, { type: 'header', name: 'x-internal', value: '1' }] });
});
after(async () => { await worker?.stop(); });

test('a new visitor gets an assignment with its changes, propensity and version, and a cookie', { timeout: 30000 }, async () => {
  const sent = Date.now();
  const res = await h.assign(worker, { site_key: SITE, url: URL_, attributes: { plan: 'pro' } });
  const answered = Date.now();
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const body = await h.json(res);
  assert.equal(body.snapshot_version, 1);
  assert.equal(body.excluded, null);
  assert.equal(body.assignments.length, 1);
  const [a] = body.assignments;
  assert.equal(a.experiment_id, '11111111-1111-4111-8111-111111111111');
  assert.ok(['control', 'treatment'].includes(a.arm_id));
  assert.equal(a.propensity, 0.5);
  assert.equal(a.snapshot_version, 1);
  assert.equal(a.sticky, false);
  assert.equal(a.sticky_key, a.experiment_id);
  if (a.arm_id === 'treatment') {
    assert.deepEqual(a.changes, [{ selector: '#headline', action: { type: 'set_text', text: 'Try it free' } }]);
  } else {
    assert.deepEqual(a.changes, []);
  }
  const cookies = h.setCookies(res);
  assert.equal(cookies.samplit_vid.value, body.visitor_id);
  // A time-ordered UUID (version 7): the time it was made in its first 48 bits.
  assert.match(body.visitor_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const made = parseInt(body.visitor_id.slice(0, 8) + body.visitor_id.slice(9, 13), 16);
  assert.ok(made >= sent - 1000 && made <= answered + 1000, `${made} not in [${sent}, ${answered}]`);
  assert.match(cookies.samplit_vid.line, /Max-Age=31536000/);
  assert.match(cookies.samplit_vid.line, /SameSite=Lax/);
  assert.doesNotMatch(cookies.samplit_vid.line, /Secure/, 'plain http here: no Secure');
  assert.ok(cookies.samplit_arms.value.includes(encodeURIComponent(a.arm_id)));
  // The sticky token (`<arm>.<mac>`) is in the body and in the cookie.
  const token = body.sticky[a.sticky_key];
  assert.match(token, new RegExp(`^${a.arm_id}\\.[A-Za-z0-9_-]{22}$`));
  assert.equal(cookies.samplit_arms.value, `${encodeURIComponent(a.sticky_key)}=${token}`);
});

test('the same visitor id always gets the same arm, and a returning cookie sets no new id', { timeout: 30000 }, async () => {
  const first = await h.json(await h.assign(worker, { site_key: SITE, url: URL_, visitor_id: 'visitor-42' }));
  for (let i = 0; i < 5; i++) {
    const again = await h.json(await h.assign(worker, { site_key: SITE, url: URL_, visitor_id: 'visitor-42' }));
    assert.equal(again.assignments[0].arm_id, first.assignments[0].arm_id);
  }
  const res = await h.assign(worker, { site_key: SITE, url: URL_ }, { cookie: 'samplit_vid=visitor-42' });
  const body = await h.json(res);
  assert.equal(body.visitor_id, 'visitor-42');
  assert.equal(body.assignments[0].arm_id, first.assignments[0].arm_id);
  assert.equal(h.setCookies(res).samplit_vid, undefined, 'the id cookie is not re-set');
});

test('arms split roughly by the weights across visitors', { timeout: 60000 }, async () => {
  const counts = { control: 0, treatment: 0 };
  for (let i = 0; i < 200; i++) {
    const body = await h.json(await h.assign(worker, { site_key: SITE, url: URL_, visitor_id: `split-${i}` }));
    counts[body.assignments[0].arm_id] += 1;
  }
  // 200 fair coin flips: P(outside 70..130) < 1e-5.
  assert.ok(counts.control > 70 && counts.control < 130, JSON.stringify(counts));
});

test('a returning visitor keeps their arm across a new snapshot version that would move them', { timeout: 60000 }, async () => {
  const res = await h.assign(worker, { site_key: SITE, url: URL_ });
  const first = await h.json(res);
  const cookies = h.setCookies(res);
  const arm = first.assignments[0].arm_id;
  const cookieHeader = `samplit_vid=${cookies.samplit_vid.value}; samplit_arms=${cookies.samplit_arms.value}`;

  // Version 2 sends every new visitor to the other arm.
  const weights = arm === 'control' ? [0, 1] : [1, 0];
  await push(2, { weights });
  const fresh = await h.json(await h.assign(worker, { site_key: SITE, url: URL_, visitor_id: 'brand-new' }));
  assert.notEqual(fresh.assignments[0].arm_id, arm, 'new visitors follow the new weights');

  const back = await h.json(await h.assign(worker, { site_key: SITE, url: URL_ }, { cookie: cookieHeader }));
  assert.equal(back.snapshot_version, 2);
  assert.equal(back.assignments[0].arm_id, arm, 'the cookie keeps the arm');
  assert.equal(back.assignments[0].sticky, true);

  // A plugin passing the token it got (no cookie) gets the same.
  const viaBody = await h.json(await h.assign(worker, {
    site_key: SITE, url: URL_, visitor_id: first.visitor_id, sticky: first.sticky,
  }));
  assert.equal(viaBody.assignments[0].arm_id, arm);
  assert.equal(viaBody.assignments[0].sticky, true);
  await push(3, { exclusions: [{ type: 'ip', range: '203.0.113.0/24' }, { type: 'header', name: 'x-internal', value: '1' }] });
});

test('bots and the site\'s excluded visitors get nothing: no assignment, no cookie', { timeout: 30000 }, async () => {
  const cases = [
    ['a crawler user agent', { 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' }, 'bot'],
    ['a headless browser', { 'user-agent': 'Mozilla/5.0 HeadlessChrome/120.0' }, 'bot'],
    ['an IP in an excluded range (CF-Connecting-IP)', { 'cf-connecting-ip': '203.0.113.9' }, 'ip'],
    ['an internal-traffic header', { 'x-internal': '1' }, 'header'],
  ];
  for (const [why, headers, reason] of cases) {
    const res = await h.assign(worker, { site_key: SITE, url: URL_ }, headers);
    assert.equal(res.status, 200, why);
    const body = await h.json(res);
    assert.equal(body.excluded, reason, why);
    assert.deepEqual(body.assignments, [], why);
    assert.equal(body.visitor_id, null, why);
    assert.deepEqual(res.headers.getSetCookie(), [], `${why}: no cookie`);
  }
  const ok = await h.json(await h.assign(worker, { site_key: SITE, url: URL_ }, { 'cf-connecting-ip': '198.51.100.1' }));
  assert.equal(ok.excluded, null, 'an IP outside the range is assigned');
});

test('CORS: an allowed origin is echoed with credentials; any other gets no CORS headers', { timeout: 30000 }, async () => {
  const allowed = await h.assign(worker, { site_key: SITE, url: URL_ }, { origin: ORIGIN });
  assert.equal(allowed.headers.get('access-control-allow-origin'), ORIGIN);
  assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
  assert.match(allowed.headers.get('vary') ?? '', /Origin/);

  for (const origin of ['https://evil.example.com', 'https://shop.example.com.evil.io', 'null']) {
    const other = await h.assign(worker, { site_key: SITE, url: URL_ }, { origin });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('access-control-allow-origin'), null, origin);
    assert.equal(other.headers.get('access-control-allow-credentials'), null, origin);
  }

  const pre = await worker.fetch(`/v1/assign?site_key=${SITE}`, {
    method: 'OPTIONS',
    headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), ORIGIN);
  assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
  const preOther = await worker.fetch(`/v1/assign?site_key=${SITE}`, { method: 'OPTIONS', headers: { origin: 'https://evil.example.com' } });
  assert.equal(preOther.headers.get('access-control-allow-origin'), null);
  assert.equal(preOther.headers.get('access-control-allow-methods'), null);
});

test('GET /v1/assign takes the same data in the query, for server-side plugins', { timeout: 30000 }, async () => {
  const post = await h.json(await h.assign(worker, { site_key: SITE, url: URL_, visitor_id: 'plugin-visitor' }));
  const q = new URLSearchParams({ site_key: SITE, url: URL_, visitor_id: 'plugin-visitor', user_agent: h.BROWSER_UA });
  const res = await worker.fetch(`/v1/assign?${q}`, { headers: { 'user-agent': 'WordPress/6.5; https://shop.example.com', ...signed(`/v1/assign?${q}`) } });
  assert.equal(res.status, 200);
  const get = await h.json(res);
  assert.equal(get.assignments[0].arm_id, post.assignments[0].arm_id);
  const bot = new URLSearchParams({ site_key: SITE, url: URL_, visitor_id: 'plugin-bot', user_agent: 'Bingbot/2.0' });
  assert.equal((await h.json(await worker.fetch(`/v1/assign?${bot}`, { headers: signed(`/v1/assign?${bot}`) }))).excluded, 'bot', 'a forwarded bot UA is excluded');
});

test('attributes from the caller (body or attr.* query) match the snapshot\'s attribute rules; bad ones are refused', { timeout: 30000 }, async () => {
  const rules = [{ type: 'ip', range: '203.0.113.0/24' }, { type: 'header', name: 'x-internal', value: '1' }];
  await push(4, { exclusions: [...rules, { type: 'attribute', name: 'plan', value: 'enterprise' }, { type: 'attribute', name: 'orders', value: '0' }] });
  try {
    const body = (attributes) => h.assign(worker, { site_key: SITE, url: URL_, visitor_id: 'attr-visitor', attributes });
    const excluded = await h.json(await body({ plan: 'enterprise', country: 'FR' }));
    assert.equal(excluded.excluded, 'attribute');
    assert.deepEqual(excluded.assignments, []);
    assert.equal((await h.json(await body({ orders: 0 }))).excluded, 'attribute', 'a number matches its JSON text');
    const kept = await h.json(await body({ plan: 'starter', orders: 3, vip: true }));
    assert.equal(kept.excluded, null);
    assert.equal(kept.assignments.length, 1);
    const q = new URLSearchParams({ site_key: SITE, url: URL_, visitor_id: 'attr-visitor', user_agent: h.BROWSER_UA, 'attr.plan': 'enterprise' });
    assert.equal((await h.json(await worker.fetch(`/v1/assign?${q}`, { headers: signed(`/v1/assign?${q}`) }))).excluded, 'attribute', 'attr.* in a GET query');
    const bad = [
      ['a nested object', { plan: { tier: 1 } }],
      ['null', { plan: null }],
      ['an empty name', { '': 'x' }],
      ['a value over 256 bytes', { plan: 'x'.repeat(257) }],
      ['more than 50', Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`a${i}`, i]))],
    ];
    for (const [why, attributes] of bad) {
      const res = await body(attributes);
      assert.equal(res.status, 400, why);
      assert.equal((await h.json(res)).error.code, 'invalid_attributes', why);
    }
  } finally {
    await push(5, { exclusions: rules });
  }
});

test('bad input gets a 4xx JSON error, never a crash', { timeout: 60000 }, async () => {
  const cases = [
    ['malformed JSON', () => h.assign(worker, '{"site_key":'), 400, 'malformed_json'],
    ['an empty body', () => h.assign(worker, ''), 400, 'empty_body'],
    ['a JSON array', () => h.assign(worker, '[1,2]'), 400, 'malformed_json'],
    ['no url', () => h.assign(worker, { site_key: SITE }), 400, 'malformed_json'],
    ['a site key with spaces', () => h.assign(worker, { site_key: 'a b', url: URL_ }), 400, 'invalid_site_key'],
    ['an empty url', () => h.assign(worker, { site_key: SITE, url: '' }), 400, 'invalid_url'],
    ['a visitor id with a semicolon', () => h.assign(worker, { site_key: SITE, url: URL_, visitor_id: 'a;b' }), 400, 'invalid_visitor_id'],
    ['a body over 64 KB', () => h.assign(worker, JSON.stringify({ site_key: SITE, url: URL_, pad: 'x'.repeat(70000) })), 413, 'payload_too_large'],
    ['GET without site_key', () => worker.fetch('/v1/assign?url=x'), 400, 'missing_field'],
    ['DELETE on /v1/assign', () => worker.fetch('/v1/assign', { method: 'DELETE' }), 405, 'method_not_allowed'],
    ['GET on /v1/events', () => worker.fetch('/v1/events'), 405, 'method_not_allowed'],
    ['an unknown route', () => worker.fetch('/v2/whatever'), 404, 'not_found'],
    ['a nested snapshot path', () => worker.fetch('/v1/internal/snapshots/a/b', { method: 'PUT' }), 404, 'not_found'],
  ];
  for (const [why, call, status, code] of cases) {
    const res = await call();
    const body = await h.json(res);
    assert.equal(res.status, status, `${why}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, code, why);
  }
  // The isolate survived all of it.
  assert.equal((await worker.fetch('/v1/healthz')).status, 200);
});

test('the snippet is served small, cacheable, with an ETag that revalidates', { timeout: 30000 }, async () => {
  const res = await worker.fetch('/v1/samplit.js');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /javascript/);
  assert.match(res.headers.get('cache-control'), /max-age=\d+/);
  const etag = res.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{16}"$/);
  const source = await res.text();
  const gz = gzipSync(source, { level: 9 }).length;
  assert.ok(gz <= 5 * 1024, `gzipped ${gz} bytes`);
  assert.ok(source.includes('data-site-key'));
  const again = await worker.fetch('/v1/samplit.js', { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal(await again.text(), '');
});

test('a site\'s script carries its targeted selectors, revalidates per snapshot version, and refuses bad keys', { timeout: 30000 }, async () => {
  const site = 'sk_test_script';
  const none = await worker.fetch(`/v1/samplit.js?site=${site}`);
  assert.equal(none.status, 200, 'no snapshot yet: the script, with nothing to hide');
  assert.match(await none.text(), /^window\.__samplit_site = \{"hide":\[\],"hosts":null,"key":"sk_test_script","version":null\};\n/);
  assert.match(none.headers.get('etag'), /^"[0-9a-f]{16}-0"$/);
  for (const version of [1, 2]) {
    const pushed = await h.pushSnapshot(worker, site, h.signSnapshot(h.testSnapshot({ siteKey: site, version })));
    assert.equal(pushed.status, 200, await pushed.text());
    const res = await worker.fetch(`/v1/samplit.js?site=${site}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('cache-control'), /max-age=60\b/);
    const etag = res.headers.get('etag');
    assert.match(etag, new RegExp(`^"[0-9a-f]{16}-${version}"$`));
    const text = await res.text();
    assert.ok(text.startsWith(`window.__samplit_site = {"hide":["#headline"],"hosts":["shop.example.com"],"key":"${site}","version":${version}};\n`), text.slice(0, 120));
    assert.ok(gzipSync(text, { level: 9 }).length <= 5 * 1024);
    const again = await worker.fetch(`/v1/samplit.js?site=${site}`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
  }
  const bad = await worker.fetch('/v1/samplit.js?site=no%20spaces');
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, 'invalid_site_key');
});
