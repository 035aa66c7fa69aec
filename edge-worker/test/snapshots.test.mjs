// Snapshot pushes (PUT /v1/internal/snapshots/{site_key}), their verification, staleness,
// the KV path after a restart, /v1/healthz, and missing secrets — against the real
// Worker under workerd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

const SITE = 'sk_test_snap';
let worker;

before(async () => { worker = await h.startWorker(); });
after(async () => { await worker?.stop(); });

const site = (version, extra = {}) => h.testSnapshot({ siteKey: SITE, version, ...extra });

async function assignedVersion(w, siteKey = SITE) {
  const res = await h.assign(w, { site_key: siteKey, url: 'https://shop.example.com/' });
  assert.equal(res.status, 200);
  return (await h.json(res)).snapshot_version;
}

test('a correctly signed snapshot is stored and served', { timeout: 30000 }, async () => {
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(site(5)));
  assert.equal(res.status, 200);
  assert.deepEqual(await h.json(res), { site_key: SITE, version: 5, replaced: true });
  assert.equal(await assignedVersion(worker), 5);
});

test('bad pushes are refused with 4xx JSON errors and change nothing', { timeout: 30000 }, async () => {
  await h.pushSnapshot(worker, SITE, h.signSnapshot(site(5)));
  const good = h.signSnapshot(site(6));
  const tampered = { ...good, payload: good.payload.replace('"version":6', '"version":7') };
  const cases = [
    ['a signature made with another key', h.signSnapshot(site(6), 'wrong-key'), 401, 'bad_signature'],
    ['a payload changed after signing', tampered, 401, 'bad_signature'],
    ['a signature that is not hex', { ...good, signature: 'zz' }, 401, 'bad_signature'],
    ['an older version than the one held', h.signSnapshot(site(4)), 409, 'stale_version'],
    ['a snapshot for another site', h.signSnapshot(h.testSnapshot({ siteKey: 'sk_other', version: 9 })), 400, 'site_key_mismatch'],
    ['an unsupported schema', h.signSnapshot({ ...site(6), schema: 99 }), 422, 'unsupported_schema'],
    ['weights that do not sum to one', h.signSnapshot(site(6, { weights: [0.9, 0.5] })), 422, 'invalid_snapshot'],
    ['malformed JSON', '{"payload": ', 400, 'malformed_json'],
    ['no body at all', '', 400, 'empty_body'],
    ['a body without the signature', JSON.stringify({ payload: good.payload }), 400, 'malformed_json'],
  ];
  for (const [why, body, status, code] of cases) {
    const res = await h.pushSnapshot(worker, SITE, body);
    const json = await h.json(res);
    assert.equal(res.status, status, `${why}: ${JSON.stringify(json)}`);
    assert.equal(json.error.code, code, why);
    assert.equal(typeof json.error.message, 'string', why);
  }
  assert.equal(await assignedVersion(worker), 5, 'the held snapshot is unchanged');
});

test('re-pushing the held version is an idempotent success', { timeout: 30000 }, async () => {
  const signed = h.signSnapshot(site(10));
  assert.equal((await h.pushSnapshot(worker, SITE, signed)).status, 200);
  const again = await h.pushSnapshot(worker, SITE, signed);
  assert.equal(again.status, 200);
  assert.equal((await h.json(again)).replaced, false);
});

test('the wrong method and bad site keys on the push route are refused', { timeout: 30000 }, async () => {
  const get = await worker.fetch(`/v1/internal/snapshots/${SITE}`);
  assert.equal(get.status, 405);
  assert.equal((await h.json(get)).error.code, 'method_not_allowed');
  const bad = await h.pushSnapshot(worker, 'bad key!', h.signSnapshot(site(1)));
  assert.equal(bad.status, 400);
  assert.equal((await h.json(bad)).error.code, 'invalid_site_key');
});

test('an oversize push is refused with 413', { timeout: 30000 }, async () => {
  const res = await h.pushSnapshot(worker, SITE, 'x'.repeat(4 * 1024 * 1024 + 1));
  assert.equal(res.status, 413);
  assert.equal((await h.json(res)).error.code, 'payload_too_large');
});

test('a stale snapshot keeps being served after the refresh interval', { timeout: 30000 }, async () => {
  const dayAgo = Date.now() - 24 * 3600 * 1000;
  await h.pushSnapshot(worker, SITE, h.signSnapshot(site(20, { generatedAtMs: dayAgo })));
  await h.sleep(5500); // past the isolate's 5 s TTL: the next request re-reads KV
  assert.equal(await assignedVersion(worker), 20);
  const health = await h.json(await worker.fetch(`/v1/healthz?site_key=${SITE}`));
  const entry = health.site;
  assert.equal(entry.site_key, SITE);
  assert.equal(entry.version, 20);
  assert.ok(entry.age_ms >= 24 * 3600 * 1000, `age_ms ${entry.age_ms} reflects generated_at_ms`);
  assert.ok(entry.checked_ms_ago < 5000, 'KV was consulted again');
});

test('/v1/healthz gives counts and ages, never the site keys it holds', { timeout: 30000 }, async () => {
  const other = 'sk_test_health_other';
  assert.equal((await h.pushSnapshot(worker, other, h.signSnapshot(h.testSnapshot({ siteKey: other })))).status, 200);
  const res = await worker.fetch('/v1/healthz');
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.equal(text.includes(SITE), false, text);
  assert.equal(text.includes(other), false, text);
  assert.equal(/sk_/.test(text), false, text);
  const { sites } = JSON.parse(text);
  assert.ok(sites.serving >= 2, `serving ${sites.serving}`);
  assert.ok(sites.oldest_age_ms >= sites.newest_age_ms);
  assert.equal(typeof sites.max_checked_ms_ago, 'number');

  // One site by its (public) key; a key with nothing published has a null version.
  const one = await h.json(await worker.fetch(`/v1/healthz?site_key=${other}`));
  assert.equal(one.site.site_key, other);
  assert.equal(one.site.version, 1);
  assert.equal(typeof one.site.age_ms, 'number');
  const none = await h.json(await worker.fetch('/v1/healthz?site_key=sk_test_health_never'));
  assert.equal(none.site.version, null);
  assert.equal(none.site.age_ms, null);
  const bad = await worker.fetch('/v1/healthz?site_key=a%20b');
  assert.equal(bad.status, 400);
  assert.equal((await h.json(bad)).error.code, 'invalid_site_key');
});

test('a site without a snapshot gets an empty assignment list', { timeout: 30000 }, async () => {
  const res = await h.assign(worker, { site_key: 'sk_never_published', url: 'https://x.example/' });
  assert.equal(res.status, 200);
  const body = await h.json(res);
  assert.deepEqual(body.assignments, []);
  assert.equal(body.snapshot_version, null);
  assert.deepEqual(res.headers.getSetCookie(), []);
});

test('a restarted Worker loads and verifies the snapshot from KV', { timeout: 60000 }, async () => {
  const persist = await h.startWorker();
  try {
    await h.pushSnapshot(persist, 'sk_restart', h.signSnapshot(h.testSnapshot({ siteKey: 'sk_restart', version: 3 })));
  } finally {
    await persist.stop({ keepState: true });
  }
  const again = await h.startWorker({ stateDir: persist.stateDir });
  try {
    assert.equal(await assignedVersion(again, 'sk_restart'), 3);
  } finally {
    await again.stop();
  }
  // The same KV value under another secret: a new isolate refuses to serve it.
  const other = await h.startWorker({ stateDir: persist.stateDir, vars: { SAMPLIT_SNAPSHOT_SECRET: 'another-secret' } });
  try {
    assert.equal(await assignedVersion(other, 'sk_restart'), null);
  } finally {
    await other.stop();
    h.removeDir(persist.stateDir);
  }
});

test('without the snapshot secret, pushes and assignments answer 503', { timeout: 60000 }, async () => {
  const bare = await h.startWorker({ vars: { SAMPLIT_SNAPSHOT_SECRET: null } });
  try {
    const push = await h.pushSnapshot(bare, SITE, h.signSnapshot(site(1)));
    assert.equal(push.status, 503);
    assert.equal((await h.json(push)).error.code, 'not_configured');
    const res = await h.assign(bare, { site_key: SITE, url: 'https://shop.example.com/' });
    assert.equal(res.status, 503);
    assert.match((await h.json(res)).error.message, /SAMPLIT_SNAPSHOT_SECRET/);
  } finally {
    await bare.stop();
  }
});
