// /v1/events and the queue consumer under workerd: events and exposures go through the
// local Queue to a fake control plane on 127.0.0.1 that verifies the HMAC exactly like
// the real one; failed deliveries are retried with the same item ids.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

const SITE = 'sk_test_events';
const MAX_RETRIES = 3;
// The edge's new ids are time-ordered UUIDs (version 7), a client event id's a version 8.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[78][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const NEW_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// The Unix milliseconds a version 7 UUID was made at.
const madeAt = (id) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
let worker;
let cp;
let failNext = 0; // the fake control plane answers 500 to this many more calls

before(async () => {
  cp = await h.startControlPlane({
    respond: () => {
      if (failNext > 0) { failNext -= 1; return 500; }
      return 200;
    },
  });
  worker = await h.startWorker({ vars: { SAMPLIT_CONTROL_PLANE_URL: cp.url }, maxRetries: MAX_RETRIES });
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(h.testSnapshot({ siteKey: SITE })));
  assert.equal(res.status, 200);
});
after(async () => {
  await worker?.stop();
  await cp?.close();
});

const postEvents = (body, headers = {}) => worker.fetch('/v1/events', {
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const itemsOf = (visitor) => cp.items().filter((i) => i.visitor_id === visitor);
const waitItems = (visitor, n) => h.waitFor(
  () => itemsOf(visitor).length >= n && itemsOf(visitor),
  { timeoutMs: 20000, what: `${n} items for ${visitor}` },
);

test('events are accepted with 202 and reach the control plane in a signed batch', { timeout: 40000 }, async () => {
  const res = await postEvents({
    site_key: SITE,
    visitor_id: 'ev-visitor-1',
    events: [
      { type: 'conversion', goal: 'signup', value: 49.5 },
      { type: 'custom', goal: 'video_played' },
      { type: 'pageview', url: 'https://shop.example.com/pricing' },
    ],
  });
  assert.equal(res.status, 202);
  assert.deepEqual(await h.json(res), { accepted: 3 });
  const items = await waitItems('ev-visitor-1', 3);
  const byType = Object.fromEntries(items.map((i) => [i.type, i]));
  assert.equal(byType.conversion.goal, 'signup');
  assert.equal(byType.conversion.value, 49.5);
  assert.equal(byType.custom.goal, 'video_played');
  assert.equal('value' in byType.custom, false);
  assert.equal(byType.pageview.url, 'https://shop.example.com/pricing');
  for (const item of items) {
    assert.equal(item.site_key, SITE);
    assert.match(item.id, NEW_ID, 'no client event id: a new id, made when the event came');
    assert.equal(madeAt(item.id), item.ts_ms);
    assert.ok(Math.abs(item.ts_ms - Date.now()) < 60000);
  }
  const batch = cp.received.find((b) => b.items.some((i) => i.visitor_id === 'ev-visitor-1'));
  assert.match(batch.batch_id, NEW_ID);
  assert.ok(Math.abs(madeAt(batch.batch_id) - Date.now()) < 60000);
  assert.deepEqual(cp.rejected, [], 'every request carried a valid signature and timestamp');
});

test('a sendBeacon body (text/plain) and the visitor cookie are accepted', { timeout: 40000 }, async () => {
  const res = await postEvents(
    { site_key: SITE, events: [{ type: 'conversion', goal: 'beacon_goal' }] },
    { 'content-type': 'text/plain;charset=UTF-8', cookie: 'samplit_vid=ev-beacon-visitor' },
  );
  assert.equal(res.status, 202);
  const [item] = await waitItems('ev-beacon-visitor', 1);
  assert.equal(item.goal, 'beacon_goal');
});

test('one exposure per assignment is delivered with its propensity and version; excluded visitors send none', { timeout: 40000 }, async () => {
  const bot = await h.assign(worker, { site_key: SITE, url: 'https://shop.example.com/', visitor_id: 'ev-bot' }, { 'user-agent': 'AhrefsBot/7.0' });
  assert.equal((await h.json(bot)).excluded, 'bot');
  const res = await h.json(await h.assign(worker, { site_key: SITE, url: 'https://shop.example.com/', visitor_id: 'ev-exposed' }));
  const [exposure] = await waitItems('ev-exposed', 1);
  assert.equal(exposure.type, 'exposure');
  assert.equal(exposure.experiment_id, res.assignments[0].experiment_id);
  assert.equal(exposure.arm_id, res.assignments[0].arm_id);
  assert.equal(exposure.propensity, 0.5);
  assert.equal(exposure.snapshot_version, 1);
  assert.equal('element_id' in exposure, false);
  assert.match(exposure.id, NEW_ID);
  assert.equal(madeAt(exposure.id), exposure.ts_ms);
  // The bot's request came first; the queue has delivered what came after it.
  assert.deepEqual(itemsOf('ev-bot'), []);
});

test('a URL goal fires at the edge on its page, once per visitor; click goals go to the snippet', { timeout: 40000 }, async () => {
  const site = 'sk_test_goals';
  const snapshot = h.testSnapshot({
    siteKey: site,
    urlRules: [{ match: 'prefix', pattern: '/products', include: true }],
    goals: [
      { name: 'thanks', trigger: { kind: 'url', rule: { match: 'prefix', pattern: '/thanks', include: true } } },
      { name: 'cta', trigger: { kind: 'click', selector: '.buy' } },
    ],
  });
  assert.equal((await h.pushSnapshot(worker, site, h.signSnapshot(snapshot))).status, 200);
  const onProduct = await h.json(await h.assign(worker, { site_key: site, url: 'https://shop.example.com/products/1', visitor_id: 'ev-goal' }));
  assert.equal(onProduct.assignments.length, 1);
  assert.deepEqual(onProduct.goals, [{ goal: 'cta', kind: 'click', selector: '.buy' }]);
  // The thanks page is outside the experiment's URL rules: no assignment, but the goal fires.
  for (let i = 0; i < 2; i += 1) {
    const onThanks = await h.json(await h.assign(worker, { site_key: site, url: 'https://shop.example.com/thanks?order=7', visitor_id: 'ev-goal' }));
    assert.equal(onThanks.assignments.length, 0);
  }
  const items = await waitItems('ev-goal', 3);
  const conversions = items.filter((i) => i.type === 'conversion');
  assert.equal(conversions.length, 2, 'each view of the goal page is queued ...');
  assert.equal(conversions[0].goal, 'thanks');
  assert.equal(conversions[0].id, conversions[1].id, '... as the same item, so it counts once');
  assert.match(conversions[0].id, /^ug-[0-9a-f]{32}$/);
});

test('a client event id makes a re-sent event the same item', { timeout: 40000 }, async () => {
  const event = { site_key: SITE, visitor_id: 'ev-dedupe', events: [{ type: 'conversion', goal: 'buy', id: 'client-evt-7' }] };
  assert.equal((await postEvents(event)).status, 202);
  assert.equal((await postEvents(event)).status, 202);
  const items = await waitItems('ev-dedupe', 2);
  assert.equal(items[0].id, items[1].id);
});

test('bad event requests get 4xx JSON errors', { timeout: 40000 }, async () => {
  const one = [{ type: 'conversion', goal: 'g' }];
  const cases = [
    ['an unknown site key', { site_key: 'sk_unknown', visitor_id: 'v', events: one }, 404, 'unknown_site'],
    ['no events', { site_key: SITE, visitor_id: 'v', events: [] }, 400, 'invalid_events'],
    ['more than 50 events', { site_key: SITE, visitor_id: 'v', events: Array(51).fill(one[0]) }, 400, 'invalid_events'],
    ['no visitor id and no cookie', { site_key: SITE, events: one }, 400, 'missing_visitor_id'],
    ['a conversion without a goal', { site_key: SITE, visitor_id: 'v', events: [{ type: 'conversion' }] }, 400, 'invalid_event'],
    ['a pageview without a url', { site_key: SITE, visitor_id: 'v', events: [{ type: 'pageview' }] }, 400, 'invalid_event'],
    ['an unknown event type', { site_key: SITE, visitor_id: 'v', events: [{ type: 'purchase', goal: 'g' }] }, 400, 'malformed_json'],
    ['a string value', { site_key: SITE, visitor_id: 'v', events: [{ type: 'custom', goal: 'g', value: 'ten' }] }, 422, 'invalid_value'],
    ['a value above 1e9', { site_key: SITE, visitor_id: 'v', events: [{ type: 'custom', goal: 'g', value: 1e12 }] }, 422, 'invalid_value'],
    ['malformed JSON', '{"site_key":', 400, 'malformed_json'],
    ['a body over 64 KB', JSON.stringify({ site_key: SITE, visitor_id: 'v', events: one, pad: 'x'.repeat(70000) }), 413, 'payload_too_large'],
  ];
  for (const [why, body, status, code] of cases) {
    const res = await postEvents(body);
    const json = await h.json(res);
    assert.equal(res.status, status, `${why}: ${JSON.stringify(json)}`);
    assert.equal(json.error.code, code, why);
  }
});

test('a delivery the control plane answers 500 is retried with the same item ids, and nothing is lost', { timeout: 60000 }, async () => {
  failNext = 2;
  const res = await postEvents({ site_key: SITE, visitor_id: 'ev-retry', events: [{ type: 'conversion', goal: 'g1' }, { type: 'conversion', goal: 'g2' }] });
  assert.equal(res.status, 202);
  const delivered = await waitItems('ev-retry', 2);
  const ids = delivered.map((i) => i.id).sort();
  const failed = cp.attempts.filter((a) => a.status === 500 && a.batch.items.some((i) => i.visitor_id === 'ev-retry'));
  assert.equal(failed.length, 2, 'two failed attempts carried these items');
  for (const attempt of failed) {
    const attemptIds = attempt.batch.items.filter((i) => i.visitor_id === 'ev-retry').map((i) => i.id).sort();
    assert.deepEqual(attemptIds, ids, 'the same ids on every attempt');
  }
  assert.equal(itemsOf('ev-retry').length, 2, 'delivered once');
});

test('a batch that fails past max_retries goes to the dead-letter queue, which delivers it once the control plane is back', { timeout: 60000 }, async () => {
  // The control plane fails every delivery from the main queue: one attempt plus
  // max_retries retries. The next attempt comes from the dead-letter queue's consumer.
  failNext = MAX_RETRIES + 1;
  try {
    const res = await postEvents({ site_key: SITE, visitor_id: 'ev-dlq', events: [{ type: 'conversion', goal: 'late' }] });
    assert.equal(res.status, 202);
    const tries = () => cp.attempts.filter((a) => a.batch.items.some((i) => i.visitor_id === 'ev-dlq'));
    await h.waitFor(() => itemsOf('ev-dlq').length === 1, { timeoutMs: 40000, what: 'delivery from the dead-letter queue' });
    await h.sleep(3000); // nothing else would come within retry_delay (1 s) + batch timeout (1 s)
    const seen = tries().map((a) => `${a.queue}:${a.status}`);
    assert.deepEqual(seen, [
      ...Array(MAX_RETRIES + 1).fill('samplit-events:500'),
      'samplit-events-dlq:200',
    ], 'max_retries + 1 failures on the main queue, then one delivery from the dead-letter queue');
    assert.equal(itemsOf('ev-dlq').length, 1, 'delivered once');
    const ids = new Set(tries().map((a) => a.batch.items.find((i) => i.visitor_id === 'ev-dlq').id));
    assert.equal(ids.size, 1, 'the same item id on every attempt');
  } finally {
    failNext = 0;
  }
});
