// Rate limits on /v1/assign and /v1/events under workerd: Cloudflare's rate-limiting
// binding as wrangler simulates it locally, with small limits set through the harness.
// Local `wrangler dev` keeps a CF-Connecting-IP the client sends (Cloudflare overwrites
// it in production), which is how these tests play several addresses.
//
// The simulator counts in fixed windows aligned to the clock (10 s); each test that
// counts up to a limit first waits for a fresh window so a rollover cannot reset it
// half-way, and uses its own site or addresses so tests do not share budgets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

const ASSIGN_LIMIT = 5;
const EVENTS_LIMIT = 3;
const PERIOD_MS = 10000;
const SITES = ['sk_rl_a', 'sk_rl_b', 'sk_rl_c', 'sk_rl_d', 'sk_rl_e'];
let worker;

before(async () => {
  worker = await h.startWorker({ rateLimits: { assign: ASSIGN_LIMIT, events: EVENTS_LIMIT } });
  for (const siteKey of SITES) {
    const res = await h.pushSnapshot(worker, siteKey, h.signSnapshot(h.testSnapshot({ siteKey })));
    assert.equal(res.status, 200, await res.text());
  }
});
after(async () => { await worker?.stop(); });

/** Waits, if needed, until at least 6 s of the current 10 s window are left. */
async function freshWindow() {
  const into = Date.now() % PERIOD_MS;
  if (into > PERIOD_MS - 6000) await h.sleep(PERIOD_MS - into + 50);
}

const assignFrom = (siteKey, ip) => h.assign(
  worker,
  { site_key: siteKey, url: 'https://shop.example.com/' },
  { 'cf-connecting-ip': ip },
);

const eventsFrom = (siteKey, ip) => worker.fetch('/v1/events', {
  method: 'POST',
  headers: { 'content-type': 'application/json', 'cf-connecting-ip': ip },
  body: JSON.stringify({
    site_key: siteKey,
    visitor_id: 'rl-visitor-1',
    events: [{ type: 'conversion', goal: 'signup' }],
  }),
});

/** Sends `n` requests one after the other; returns their statuses. */
async function statuses(n, send) {
  const out = [];
  for (let i = 0; i < n; i += 1) {
    const res = await send();
    await res.arrayBuffer();
    out.push(res.status);
  }
  return out;
}

async function assertLimited(res) {
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '10');
  assert.match(res.headers.get('content-type'), /application\/json/);
  const body = await h.json(res);
  assert.equal(body.error.code, 'rate_limited');
}

test('/v1/assign answers 429 with Retry-After past the limit; other sites and addresses are not affected', { timeout: 30000 }, async () => {
  await freshWindow();
  const ip = '203.0.113.10';
  assert.deepEqual(await statuses(ASSIGN_LIMIT, () => assignFrom(SITES[0], ip)), Array(ASSIGN_LIMIT).fill(200));
  await assertLimited(await assignFrom(SITES[0], ip));
  await assertLimited(await assignFrom(SITES[0], ip));

  const otherSite = await assignFrom(SITES[1], ip);
  assert.equal(otherSite.status, 200, 'the same address on another site has its own budget');
  await otherSite.arrayBuffer();
  const otherAddress = await assignFrom(SITES[0], '203.0.113.11');
  assert.equal(otherAddress.status, 200, 'another address on the same site has its own budget');
  await otherAddress.arrayBuffer();
  // GET counts against the same budget as POST.
  const get = await worker.fetch(`/v1/assign?site_key=${SITES[0]}&url=${encodeURIComponent('https://shop.example.com/')}`, {
    headers: { 'cf-connecting-ip': ip, 'user-agent': h.BROWSER_UA },
  });
  await assertLimited(get);
});

test('/v1/events answers 429 past its own limit, separately from /v1/assign', { timeout: 30000 }, async () => {
  await freshWindow();
  const ip = '198.51.100.20';
  assert.deepEqual(await statuses(EVENTS_LIMIT, () => eventsFrom(SITES[2], ip)), Array(EVENTS_LIMIT).fill(202));
  await assertLimited(await eventsFrom(SITES[2], ip));
  const assignSameKey = await assignFrom(SITES[2], ip);
  assert.equal(assignSameKey.status, 200, '/v1/assign has its own counters');
  await assignSameKey.arrayBuffer();
  const otherSite = await eventsFrom(SITES[3], ip);
  assert.equal(otherSite.status, 202);
  await otherSite.arrayBuffer();
});

test('IPv6 addresses are counted per /64', { timeout: 30000 }, async () => {
  await freshWindow();
  // Five addresses of one /64 share one budget ...
  const sameNet = (i) => `2001:db8:aa:bb::${i + 1}`;
  let i = 0;
  assert.deepEqual(await statuses(ASSIGN_LIMIT, () => assignFrom(SITES[4], sameNet(i++))), Array(ASSIGN_LIMIT).fill(200));
  await assertLimited(await assignFrom(SITES[4], '2001:db8:aa:bb:ffff:ffff:ffff:ffff'));
  // ... and the next /64 has its own.
  const nextNet = await assignFrom(SITES[4], '2001:db8:aa:bc::1');
  assert.equal(nextNet.status, 200);
  await nextNet.arrayBuffer();
});

test('the budget comes back once Retry-After has passed', { timeout: 40000 }, async () => {
  await freshWindow();
  const ip = '192.0.2.77';
  await statuses(ASSIGN_LIMIT, () => assignFrom(SITES[1], ip));
  const limited = await assignFrom(SITES[1], ip);
  await assertLimited(limited);
  await h.sleep(Number(limited.headers.get('retry-after')) * 1000);
  const again = await assignFrom(SITES[1], ip);
  assert.equal(again.status, 200, 'a new window after Retry-After seconds');
  await again.arrayBuffer();
});

test('a Worker without the rate-limiting bindings refuses those routes with 503, never serves them unlimited', { timeout: 30000 }, async () => {
  const bare = await h.startWorker({ rateLimits: { assign: null, events: null } });
  try {
    const site = 'sk_rl_bare';
    assert.equal((await h.pushSnapshot(bare, site, h.signSnapshot(h.testSnapshot({ siteKey: site })))).status, 200);
    const a = await h.assign(bare, { site_key: site, url: 'https://shop.example.com/' });
    assert.equal(a.status, 503);
    assert.equal((await h.json(a)).error.code, 'not_configured');
    const e = await bare.fetch('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ site_key: site, visitor_id: 'v1', events: [{ type: 'custom', goal: 'g' }] }),
    });
    assert.equal(e.status, 503);
    assert.equal((await h.json(e)).error.code, 'not_configured');
    // The rest of the Worker still answers.
    assert.equal((await bare.fetch('/v1/healthz')).status, 200);
  } finally {
    await bare.stop();
  }
});

test('a signed /v1/assign is counted under the visitor it speaks for, not the server that sends it', { timeout: 30000 }, async () => {
  // A plugin's server assigns many visitors from one address: each signed call names the
  // visitor's ip, and that visitor's budget is spent, as its own browser's would be.
  const site = 'sk_rl_signed';
  const snap = h.testSnapshot({ siteKey: site, trust: { server_secret_salt: h.TEST_SALT, revenue_cap: 100 } });
  const pushed = await h.pushSnapshot(worker, site, h.signSnapshot(snap));
  assert.equal(pushed.status, 200, await pushed.text());
  const secret = h.serverSecret(site, h.TEST_SALT);
  const server = '192.0.2.50';
  const signedAssign = (visitorIp, { key = secret } = {}) => {
    const body = JSON.stringify({ site_key: site, url: 'https://shop.example.com/', ip: visitorIp, visitor_id: `v-${visitorIp}` });
    return worker.fetch('/v1/assign', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'cf-connecting-ip': server, ...h.signatureHeaders(key, 'POST', '/v1/assign', body) },
      body,
    });
  };
  await freshWindow();
  const visitors = Array.from({ length: ASSIGN_LIMIT * 3 }, (_, i) => `198.51.100.${i + 1}`);
  const many = [];
  for (const ip of visitors) {
    const res = await signedAssign(ip);
    many.push(res.status);
    await res.arrayBuffer();
  }
  assert.deepEqual(many, Array(visitors.length).fill(200), 'three times the limit, one server address, distinct visitors');

  // One visitor's budget is still bounded, signed or not.
  const one = '198.51.100.200';
  assert.deepEqual(await statuses(ASSIGN_LIMIT, () => signedAssign(one)), Array(ASSIGN_LIMIT).fill(200));
  await assertLimited(await signedAssign(one));

  // A bad signature gets no budget of its own choosing: 401, whatever ip it names.
  const forged = await signedAssign('198.51.100.201', { key: 'ss_not_the_secret' });
  assert.equal(forged.status, 401);
  assert.equal((await h.json(forged)).error.code, 'bad_signature');
  // The server's own unsigned calls still spend the server's address budget.
  assert.deepEqual(await statuses(ASSIGN_LIMIT, () => assignFrom(site, server)), Array(ASSIGN_LIMIT).fill(200));
  await assertLimited(await assignFrom(site, server));
});
