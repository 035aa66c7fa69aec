// Host → site routing and unpublish at the edge (docs/security.md, "Domains: ownership,
// routing, unpublish"), against the real Worker under workerd: which site renders a host
// comes only from a signed route; an older or forged route changes nothing; another
// site's snapshot listing the same host does not take it over; a tombstoned site stops
// serving assignments, its snippet hide list and its pages, and stays dead.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';
import { startOrigin } from './editor-harness.mjs';

const OWNER = 'sk_owner';
const STRANGER = 'sk_stranger';
const DOOMED = 'sk_doomed';
const HOST = '127.0.0.1'; // the Worker's own host: requests to it are pages of whoever it routes to
const PAGE = '<!doctype html><html><body><h1 id="headline">Original</h1></body></html>';
let origin;
let worker;
let cp;

/** A snapshot of `siteKey` whose only arm sets the headline to `text`, listing the Worker. */
function snapshot(siteKey, text, version = 1) {
  const s = h.testSnapshot({ siteKey, version, weights: [0, 1], allowedOrigins: [worker.base] });
  s.experiments[0].elements[0].variants[1].changes[0].action.text = text;
  return s;
}

const page = async () => {
  const res = await worker.fetch('/', { headers: { accept: 'text/html', 'user-agent': h.BROWSER_UA } });
  return { status: res.status, body: await res.text() };
};

async function route(siteKey, version, secret) {
  return h.pushRoute(worker, HOST, h.signRoute({ host: HOST, siteKey, version }, secret));
}

before(async () => {
  origin = await startOrigin({
    '/': () => ({ headers: { 'content-type': 'text/html; charset=utf-8' }, body: PAGE }),
  });
  cp = await h.startControlPlane();
  worker = await h.startWorker({ vars: { SAMPLIT_ORIGIN_OVERRIDE: origin.url, SAMPLIT_CONTROL_PLANE_URL: cp.url } });
  for (const [key, text] of [[OWNER, 'Owner headline'], [STRANGER, 'Stranger headline']]) {
    const res = await h.pushSnapshot(worker, key, h.signSnapshot(snapshot(key, text)));
    assert.equal(res.status, 200, await res.text());
  }
});
after(async () => {
  await worker?.stop();
  await cp?.close();
  await origin?.close();
});

test('a snapshot alone does not route a host: without a signed route the page is not ours', { timeout: 30000 }, async () => {
  // Both sites' snapshots list the Worker's host, yet no route names it.
  const { status } = await page();
  assert.equal(status, 404);
});

test('forged and unsigned routes are refused and route nothing', { timeout: 30000 }, async () => {
  const good = h.signRoute({ host: HOST, siteKey: STRANGER, version: 50 });
  const cases = [
    ['signed with another key', h.signRoute({ host: HOST, siteKey: STRANGER, version: 50 }, 'wrong-key'), 401, 'bad_signature'],
    ['signed like a snapshot (the secret itself, not the route key)', h.signSnapshot({ schema: 1, host: HOST, site_key: STRANGER, version: 50, generated_at_ms: 0 }), 401, 'bad_signature'],
    ['a payload changed after signing', { ...good, payload: good.payload.replace(STRANGER, OWNER) }, 401, 'bad_signature'],
    ['no signature', { payload: good.payload }, 400, null],
    ['a route for another host', h.signRoute({ host: 'shop.example.com', siteKey: STRANGER, version: 50 }), 400, 'host_mismatch'],
  ];
  for (const [why, body, status, code] of cases) {
    const res = await h.pushRoute(worker, HOST, body);
    assert.equal(res.status, status, `${why}: ${await res.clone().text()}`);
    if (code) assert.equal((await h.json(res)).error.code, code, why);
  }
  assert.equal((await page()).status, 404, 'still nobody\'s host');
});

test('the signed route decides, an older route cannot overwrite a newer one, and another site listing the host does not take it over', { timeout: 30000 }, async () => {
  let res = await route(OWNER, 10);
  assert.equal(res.status, 200, await res.text());
  let p = await page();
  assert.equal(p.status, 200);
  assert.ok(p.body.includes('Owner headline'), p.body);
  assert.ok(!p.body.includes('Stranger headline'), 'the stranger\'s snapshot lists the host too, but does not render');

  // A stranger re-pushing its snapshot (newer version, same host listed) changes nothing.
  res = await h.pushSnapshot(worker, STRANGER, h.signSnapshot(snapshot(STRANGER, 'Stranger headline', 2)));
  assert.equal(res.status, 200);
  assert.ok((await page()).body.includes('Owner headline'));

  // An older route (a replayed one) is refused; the newer stays.
  res = await route(STRANGER, 9);
  assert.equal(res.status, 409);
  assert.equal((await h.json(res)).error.code, 'stale_version');
  assert.ok((await page()).body.includes('Owner headline'));

  // A newer route (a proven transfer) moves the host; a tombstone route frees it.
  res = await route(STRANGER, 11);
  assert.equal(res.status, 200);
  assert.ok((await page()).body.includes('Stranger headline'));
  res = await route(null, 12);
  assert.equal(res.status, 200, await res.text());
  assert.equal((await page()).status, 404, 'a tombstoned host is nobody\'s');
  res = await route(OWNER, 11);
  assert.equal(res.status, 409, 'the tombstone cannot be undone by an older route');
});

test('a tombstoned site stops serving assignments, its hide list and its pages, and an older snapshot cannot resurrect it', { timeout: 30000 }, async () => {
  let res = await h.pushSnapshot(worker, DOOMED, h.signSnapshot(snapshot(DOOMED, 'Doomed headline', 5)));
  assert.equal(res.status, 200);
  res = await route(DOOMED, 20);
  assert.equal(res.status, 200);
  const assigned = async () => (await h.json(await h.assign(worker, { site_key: DOOMED, url: `${worker.base}/` }))).assignments;
  assert.equal((await assigned()).length, 1, 'live before');
  assert.ok((await (await worker.fetch(`/v1/samplit.js?site=${DOOMED}`)).text()).includes('#headline'));
  assert.ok((await page()).body.includes('Doomed headline'));

  // Signed with the snapshot secret itself, a tombstone is not accepted.
  res = await h.pushTombstone(worker, DOOMED, h.signSnapshot({ schema: 1, site_key: DOOMED, version: 7, generated_at_ms: 0 }));
  assert.equal(res.status, 401);
  // Older than the snapshot held: refused.
  res = await h.pushTombstone(worker, DOOMED, h.signTombstone({ siteKey: DOOMED, version: 4 }));
  assert.equal(res.status, 409);

  res = await h.pushTombstone(worker, DOOMED, h.signTombstone({ siteKey: DOOMED, version: 7 }));
  assert.equal(res.status, 200, await res.clone().text());
  assert.deepEqual(await h.json(res), { site_key: DOOMED, version: 7, replaced: true });

  const unknown = await h.json(await h.assign(worker, { site_key: 'sk_never_seen', url: `${worker.base}/` }));
  const dead = await h.json(await h.assign(worker, { site_key: DOOMED, url: `${worker.base}/` }));
  assert.deepEqual(dead.assignments, [], 'no assignments');
  assert.deepEqual(dead.assignments, unknown.assignments, 'answered as for an unknown site');
  assert.ok(!(await (await worker.fetch(`/v1/samplit.js?site=${DOOMED}`)).text()).includes('#headline'), 'no hide list');
  assert.equal((await page()).status, 404, 'no rendering');

  for (const version of [5, 6, 7]) {
    res = await h.pushSnapshot(worker, DOOMED, h.signSnapshot(snapshot(DOOMED, 'Back from the dead', version)));
    assert.equal(res.status, 409, `snapshot v${version} after the tombstone`);
  }
  assert.deepEqual((await h.json(await h.assign(worker, { site_key: DOOMED, url: `${worker.base}/` }))).assignments, []);
  // A retried tombstone is an idempotent success.
  res = await h.pushTombstone(worker, DOOMED, h.signTombstone({ siteKey: DOOMED, version: 7 }));
  assert.equal(res.status, 200);
});
