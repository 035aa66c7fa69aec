// The Shopify integration, end to end, against the real parts: PostgreSQL, `samplit serve`
// (the debug binary), the Worker under workerd (wrangler dev), Debian's Chromium driven by
// playwright-core, and the local Shopify stand-in (tests/shopify-standin: OAuth, Admin
// GraphQL, webhooks, a Liquid storefront that renders our theme app extension, a checkout
// that runs our web pixel). Two shops: A installs through the authorization-code grant
// (non-embedded), B through token exchange when its embedded admin page first opens
// (Shopify-managed installation).
//
// What stands in for the internet here (and nothing else):
// - The storefront's TLS. Shopify storefronts are https, and the edge's CORS allows only
//   `https://<verified host>` (the snapshot's allowed_origins), so a storefront at the
//   stand-in's own http://store.localhost:<port> would get no assignment. The storefront
//   is served at https://store.localhost: Chromium maps store.localhost:443 to a local
//   TLS front of the stand-in (certificate made here with openssl; Chromium is told to
//   ignore certificate errors).
// - Shopify's hosts. The control plane sends its OAuth and Admin calls to
//   SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN with `Host: <shop>`; a small router there passes each
//   to the stand-in of that shop.
// The edge is wrangler dev on http://127.0.0.1:<port>, the one development edge the app
// embed and the pixel accept besides https.
//
//   node --test --test-concurrency=1 integrations/shopify/test/shopify.test.mjs
//   (after `cargo xtask edge-build` and `cargo build -p samplit-control-plane --bin samplit`)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, headlineExperiment, psql, startServer } from '../../../console/test/harness.mjs';
import { BROWSER_UA, INGEST_SECRET, SNAPSHOT_SECRET, sleep, startWorker, waitFor } from '../../../edge-worker/test/harness.mjs';
import { queryHmacMessage, startStandin } from '../../../tests/shopify-standin/standin.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const EXTENSIONS = join(root, 'integrations', 'shopify', 'extensions');
const SCREENSHOT = join(root, 'target', 'shopify-storefront.png');
const EMBEDDED_SCREENSHOT = join(root, 'target', 'shopify-embedded.png');
const APP_BRIDGE = 'https://cdn.shopify.com/shopifycloud/app-bridge.js';
const CHROMIUM = process.env.SAMPLIT_CHROMIUM ?? '/usr/bin/chromium';

const API_KEY = 'samplit-test-client-id';
const API_SECRET = `shpss_${randomBytes(24).toString('hex')}`;
const SCOPES = 'read_orders,write_pixels,read_customer_events';
const SHOP_A = 'samplit-test.myshopify.com';
const HOST_A = 'store.localhost';
const SHOP_B = 'samplit-other.myshopify.com';
const HOST_B = 'other.localhost';
const SHOP_C = 'samplit-third.myshopify.com';
const HOST_C = 'third.localhost';
const VARIANT_TEXT = 'Free shipping on every order';
const PASSWORD = 'correct horse battery staple';

let tls; // { dir, key, cert }
let origin; // the origin the edge renders routed hosts from
let worker;
let shopA;
let shopB;
let shopC;
let adminRouter; // SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN → the stand-in of the Host's shop
let server;
let storeFront; // https://store.localhost (Chromium maps :443 here) → stand-in A
let browser;
let publicEdge; // what storefronts and the pixel are given: the Worker's URL

// What the flow builds, for the tests after it.
const flow = {
  siteA: null, bearer: null, experiment: null, buyers: [], installToken: null,
  // Visitors and revenue the results hold besides the buyers': per arm name.
  extra: { visitors: {}, revenue: {} },
};

// ------------------------------------------------------------------------------ plumbing

/** A self-signed certificate for the storefront's host. */
function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'samplit-shopify-tls-'));
  const out = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=samplit-shopify-test',
    '-addext', `subjectAltName=DNS:${HOST_A}`], { encoding: 'utf8', timeout: 30_000 });
  if (out.status !== 0) throw new Error(`openssl: ${out.error ?? out.stderr}`);
  return { dir, key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
}

/** Passes `req` to 127.0.0.1:`port` as is, with `host` as the Host header when given. */
function pass(req, res, port, host) {
  const upstream = http.request({
    host: '127.0.0.1', port, method: req.method, path: req.url,
    headers: { ...req.headers, ...(host ? { host } : {}) },
  }, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', (e) => { if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }); res.end(String(e)); });
  req.pipe(upstream);
}

function listening(srv) {
  const sockets = new Set();
  srv.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return new Promise((ok) => srv.listen(0, '127.0.0.1', () => ok({
    port: srv.address().port,
    close: () => new Promise((done) => { for (const s of sockets) s.destroy(); srv.close(() => done()); }),
  })));
}

/** The origin the edge fetches a routed host's pages from. */
async function startOrigin() {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      .end('<!doctype html><html><head><title>Origin</title></head><body><h1 id="headline">Original headline</h1><p id="origin-marker">served by the origin</p></body></html>');
  });
  const l = await listening(srv);
  return { ...l, url: `http://127.0.0.1:${l.port}` };
}

/** GET `path` on the Worker as the host `host` (what a routed domain's visitors do), as a
 *  crawler: it gets the page but is no visitor of any experiment. */
function edgeAsHost(host, path = '/') {
  const port = new URL(worker.base).port;
  return new Promise((ok, fail) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host, accept: 'text/html', 'user-agent': 'curl/8.5.0' }, timeout: 10_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}

/** SQL on the test's database: rows of `|`-separated fields. */
const sql = (text) => psql(text, server.databaseUrl);
const q = (s) => `'${String(s).replaceAll("'", "''")}'`;

async function body(res) {
  const text = await res.text();
  try { return text ? JSON.parse(text) : null; } catch { return text; }
}

/** A Problem body with `status` and `code` (control-plane/src/error.rs). */
async function assertProblem(res, status, code, what) {
  const b = await body(res);
  assert.equal(res.status, status, `${what}: ${res.status} ${JSON.stringify(b)}`);
  assert.match(res.headers.get('content-type') ?? '', /json/, `${what}: a JSON problem`);
  assert.equal(b?.status, status, `${what}: ${JSON.stringify(b)}`);
  assert.equal(b?.code, code, `${what}: ${JSON.stringify(b)}`);
  assert.equal(typeof b?.title, 'string', `${what}: ${JSON.stringify(b)}`);
}

const get = (path, init = {}) => fetch(`${server.base}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(30_000), ...init });

/** /api/v1 as the linked merchant. */
async function api(method, path, data, headers = {}) {
  const res = await fetch(`${server.base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${flow.bearer}`, ...(data ? { 'content-type': 'application/json' } : {}), ...headers },
    body: data ? JSON.stringify(data) : undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const b = await body(res);
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(b)}`);
  return b;
}

const overview = (token) => get('/shopify/api/overview', { headers: { authorization: `Bearer ${token}` } });

/** The cookie `name`'s value in a response's Set-Cookie headers, with the whole line. */
function setCookie(res, name) {
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    if (pair.slice(0, pair.indexOf('=')) === name) return { value: pair.slice(pair.indexOf('=') + 1), line };
  }
  return null;
}

/** Signs a Shopify query (every parameter but hmac, sorted) as Shopify does. */
function signed(params, secret = API_SECRET) {
  const hmac = createHmac('sha256', secret).update(queryHmacMessage(params)).digest('hex');
  return new URLSearchParams({ ...params, hmac }).toString();
}

/** Starts an install of `shop` at /shopify/auth: `{ location, state, cookie }`. */
async function startInstall(standin) {
  const res = await fetch(standin.installUrl(), { redirect: 'manual' });
  const text = await res.text();
  assert.equal(res.status, 302, `GET /shopify/auth: ${res.status} ${text}`);
  const location = new URL(res.headers.get('location'));
  const cookie = setCookie(res, 'samplit_shopify_state');
  assert.ok(cookie, `a state cookie: ${res.headers.getSetCookie()}`);
  return { location, state: location.searchParams.get('state'), cookie: cookie.value, cookieLine: cookie.line };
}

/** The merchant approves at the stand-in: the callback URL Shopify would redirect to. */
async function approve(standin, location) {
  const answer = await standin.authorize(location.toString());
  assert.equal(answer.status, 302, `the stand-in's authorize page: ${JSON.stringify(answer)}`);
  return new URL(answer.location);
}

const callback = (url, cookie) => get(`${url.pathname}${url.search}`, cookie === undefined ? {} : { headers: { cookie: `samplit_shopify_state=${cookie}` } });

/** The results of the flow's experiment, per arm name: { visitors, conversions, revenue }. */
async function resultsByArm() {
  const r = await api('GET', `/experiments/${flow.experiment.id}/results`);
  const a = r.analyses[0];
  const out = { currency: r.currency, arms: {} };
  a.subjects.forEach((s, i) => {
    out.arms[s.name] = {
      visitors: a.result?.arms[i]?.visitors ?? null,
      conversions: a.result?.arms[i]?.conversions ?? null,
      revenue: Math.round(s.revenue_sum * 100) / 100,
    };
  });
  return out;
}

/** What the flow's buyers should have produced, per arm name. */
function expectedByArm() {
  const arms = { Control: { visitors: 0, conversions: 0, revenue: 0 }, 'Free shipping': { visitors: 0, conversions: 0, revenue: 0 } };
  for (const b of flow.buyers) {
    arms[b.arm].visitors += 1;
    arms[b.arm].conversions += 1;
    arms[b.arm].revenue = Math.round((arms[b.arm].revenue + Number(b.order.total_price)) * 100) / 100;
  }
  for (const [arm, n] of Object.entries(flow.extra.visitors)) arms[arm].visitors += n;
  for (const [arm, x] of Object.entries(flow.extra.revenue)) arms[arm].revenue = Math.round((arms[arm].revenue + x) * 100) / 100;
  return arms;
}

async function waitForResults(expected, what) {
  let last;
  try {
    await waitFor(async () => {
      last = await resultsByArm();
      return JSON.stringify(last.arms) === JSON.stringify(expected) ? last : null;
    }, { timeoutMs: 40_000, every: 500, what });
  } catch (e) {
    throw new Error(`${e.message}\nexpected ${JSON.stringify(expected)}\nlast ${JSON.stringify(last)}\n--- Worker log ---\n${worker.log().slice(-3000)}`);
  }
  return last;
}

// ------------------------------------------------------------------------------ set-up

before(async () => {
  tls = makeCertificate();
  const controlPlanePort = await freePort();
  const appUrl = `http://127.0.0.1:${controlPlanePort}`;
  origin = await startOrigin();
  worker = await startWorker({
    vars: { SAMPLIT_CONTROL_PLANE_URL: appUrl, SAMPLIT_ORIGIN_OVERRIDE: origin.url },
  });
  publicEdge = worker.base;

  const common = {
    apiKey: API_KEY, apiSecret: API_SECRET, appUrl, redirectUrls: [`${appUrl}/shopify/auth/callback`],
    webhookUrl: `${appUrl}/shopify/webhooks`, currency: 'EUR', extensionsDir: EXTENSIONS, scopes: SCOPES,
  };
  shopA = await startStandin({ ...common, shop: SHOP_A, primaryDomain: HOST_A, shopName: 'Samplit Test Store' });
  shopB = await startStandin({ ...common, shop: SHOP_B, primaryDomain: HOST_B, shopName: 'Other Test Store' });
  shopC = await startStandin({ ...common, shop: SHOP_C, primaryDomain: HOST_C, shopName: 'Third Test Store' });
  const byShop = new Map([[SHOP_A, shopA], [SHOP_B, shopB], [SHOP_C, shopC]]);
  adminRouter = await listening(http.createServer((req, res) => {
    const standin = byShop.get(String(req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase());
    if (!standin) { res.writeHead(404, { 'content-type': 'text/plain' }).end('no such shop'); return; }
    pass(req, res, standin.port);
  }));

  server = await startServer((base) => ({
    SAMPLIT_SNAPSHOT_SECRET: SNAPSHOT_SECRET,
    SAMPLIT_INGEST_SECRET: INGEST_SECRET,
    SAMPLIT_EDGE_URL: worker.base,
    SAMPLIT_PUBLISH_INTERVAL: '1',
    SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS: 'true',
    SAMPLIT_SHOPIFY_API_KEY: API_KEY,
    SAMPLIT_SHOPIFY_API_SECRET: API_SECRET,
    SAMPLIT_SHOPIFY_TOKEN_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    SAMPLIT_PUBLIC_URL: base,
    SAMPLIT_DEV_SHOPIFY_ADMIN_ORIGIN: `http://127.0.0.1:${adminRouter.port}`,
    RUST_LOG: 'warn,samplit_control_plane::shopify=info',
  }), { port: controlPlanePort });

  storeFront = await listening(https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => pass(req, res, shopA.port, HOST_A)));
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=MAP ${HOST_A}:443 127.0.0.1:${storeFront.port}`],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop().catch((e) => console.error(e));
  await worker?.stop().catch((e) => console.error(e));
  for (const s of [storeFront, adminRouter, origin]) await s?.close().catch(() => {});
  for (const s of [shopA, shopB, shopC]) await s?.close().catch(() => {});
  if (tls) rmSync(tls.dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------ the flow

test('install by the authorization-code grant: organisation, site, verified domains, currency, metafields, pixel, sealed token', async () => {
  const started = await startInstall(shopA);
  assert.equal(started.location.origin, `https://${SHOP_A}`);
  assert.equal(started.location.pathname, '/admin/oauth/authorize');
  assert.equal(started.location.searchParams.get('client_id'), API_KEY);
  assert.equal(started.location.searchParams.get('scope'), SCOPES);
  assert.equal(started.location.searchParams.get('redirect_uri'), `${server.base}/shopify/auth/callback`);
  assert.ok(started.state && started.state.length >= 16, `an unguessable state: ${started.state}`);
  assert.equal(started.cookie, started.state, 'the cookie carries the state');
  const attrs = started.cookieLine.split(';').slice(1).map((a) => a.trim().toLowerCase());
  for (const a of ['path=/shopify', 'httponly', 'samesite=lax', 'secure']) assert.ok(attrs.includes(a), `${a} in ${started.cookieLine}`);

  const back = await approve(shopA, started.location);
  assert.equal(`${back.origin}${back.pathname}`, `${server.base}/shopify/auth/callback`);
  const done = await callback(back, started.cookie);
  assert.equal(done.status, 302, `the callback: ${done.status} ${await done.text()}`);

  // The token: issued once by the stand-in, stored sealed.
  const tokens = shopA.accessTokens.filter((t) => t.shop === SHOP_A && !t.revoked);
  assert.equal(tokens.length, 1, JSON.stringify(shopA.accessTokens));
  assert.equal(tokens[0].online, false, 'an offline token');
  flow.installToken = tokens[0].token;
  const [row] = sql(`SELECT org_id, site_id, encode(token_ciphertext, 'hex'), token_key_id, uninstalled_at IS NULL
    FROM shopify_shops WHERE shop = ${q(SHOP_A)}`).split('\n').map((l) => l.split('|'));
  assert.ok(row?.[0] && row[1], `a shopify_shops row: ${row}`);
  const [orgId, siteId, cipherHex, keyId, live] = row;
  assert.equal(keyId, 'k1');
  assert.equal(live, 't');
  assert.ok(cipherHex.length > 0, 'a ciphertext');
  assert.ok(!cipherHex.includes(Buffer.from(flow.installToken).toString('hex')), 'the token is not stored in the clear');
  assert.equal(sql(`SELECT count(*) FROM shopify_shops WHERE position(convert_to(${q(flow.installToken)}, 'UTF8') in token_ciphertext) > 0`), '0');

  // The organisation and the site, named after the shop, in the shop's currency.
  assert.equal(sql(`SELECT name FROM organizations WHERE id = ${q(orgId)}`), 'Samplit Test Store');
  const [name, currency, siteKey] = sql(`SELECT name, currency, site_key FROM sites WHERE id = ${q(siteId)}`).split('|');
  assert.equal(name, 'Samplit Test Store');
  assert.equal(currency, 'EUR');
  flow.siteA = { id: siteId, orgId, siteKey };
  // Both hosts verified by the install itself, and routed to the site.
  assert.deepEqual(sql(`SELECT host, status, method FROM site_domains WHERE site_id = ${q(siteId)} ORDER BY host`).split('\n'),
    [`${SHOP_A}|verified|shopify_install`, `${HOST_A}|verified|shopify_install`]);
  assert.deepEqual(sql(`SELECT host, site_key FROM domain_routes WHERE host IN (${q(SHOP_A)}, ${q(HOST_A)}) ORDER BY host`).split('\n'),
    [`${SHOP_A}|${siteKey}`, `${HOST_A}|${siteKey}`]);

  // The storefront's configuration at the shop: the pixel and the app-data metafields.
  assert.equal(shopA.webPixels.length, 1, JSON.stringify(shopA.webPixels));
  const settings = typeof shopA.webPixels[0].settings === 'string' ? JSON.parse(shopA.webPixels[0].settings) : shopA.webPixels[0].settings;
  const fields = Object.fromEntries(shopA.metafields.filter((m) => m.namespace === 'samplit').map((m) => [m.key, m.value]));
  assert.equal(fields.site_key, siteKey, JSON.stringify(shopA.metafields));
  assert.equal(settings.siteKey, siteKey);
  assert.deepEqual(Object.keys(settings).sort(), ['edgeUrl', 'siteKey']);
  assert.equal(fields.edge_url, publicEdge, 'samplit.edge_url: the edge');
  assert.equal(settings.edgeUrl, publicEdge, 'the pixel\'s edgeUrl: the edge');
});

test('the embedded admin: the app page, the overview by session token, and Shopify-managed installation of a second shop', async () => {
  const page = await get(`/shopify/app?shop=${SHOP_A}&host=${encodeURIComponent(Buffer.from(`admin.shopify.com/store/samplit-test`).toString('base64').replace(/=+$/, ''))}`);
  assert.equal(page.status, 200, await page.clone().text());
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy') ?? '';
  assert.match(csp, new RegExp(`frame-ancestors https://${SHOP_A.replaceAll('.', '\\.')} https://admin\\.shopify\\.com(;|$)`), csp);
  await page.text();

  const res = await overview(shopA.sessionToken());
  const o = await body(res);
  assert.equal(res.status, 200, JSON.stringify(o));
  assert.equal(o.shop, SHOP_A);
  assert.equal(o.site.id, flow.siteA.id);
  assert.equal(o.site.name, 'Samplit Test Store');
  assert.equal(o.site.site_key, flow.siteA.siteKey);
  assert.equal(o.site.currency, 'EUR');
  assert.deepEqual([...o.site.domains].sort(), [SHOP_A, HOST_A]);
  assert.equal(o.linked, false);
  assert.deepEqual(o.experiments, []);
  assert.equal(shopA.accessTokens.length, 1, 'an installed shop is not exchanged again');

  // Shop B has never been installed: its first session token installs it (token exchange).
  const beforeB = shopB.adminRequests.length;
  const resB = await overview(shopB.sessionToken());
  const b = await body(resB);
  assert.equal(resB.status, 200, JSON.stringify(b));
  assert.equal(b.shop, SHOP_B);
  assert.notEqual(b.site.id, flow.siteA.id);
  assert.equal(b.site.name, 'Other Test Store');
  assert.deepEqual([...b.site.domains].sort(), [HOST_B, SHOP_B]);
  const exchange = shopB.adminRequests.slice(beforeB).find((r) => r.path.startsWith('/admin/oauth/access_token'));
  assert.ok(exchange, 'B was installed by token exchange');
  assert.match(exchange.body, /token-exchange/);
  assert.deepEqual(shopB.accessTokens.map((t) => [t.shop, t.online]), [[SHOP_B, false]]);
  assert.equal(shopB.webPixels.length, 1);
  assert.equal(sql(`SELECT count(DISTINCT org_id) FROM shopify_shops`), '2', 'each shop its own organisation');
  assert.equal(sql(`SELECT host FROM site_domains WHERE site_id = ${q(b.site.id)} AND status = 'verified' ORDER BY host`), `${HOST_B}\n${SHOP_B}`);
});

test('linking a Samplit account: an owner invitation while nobody has joined, then 409', async () => {
  const token = shopA.sessionToken();
  const res = await get('/shopify/api/invitation', {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'merchant@example.com' }),
  });
  const inv = await body(res);
  assert.equal(res.status, 201, JSON.stringify(inv));
  assert.match(inv.token, /\S{16,}/);

  const accepted = await get('/api/v1/invitations/accept', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: inv.token, password: PASSWORD, name: 'Mia Merchant' }),
  });
  const tokens = await body(accepted);
  assert.equal(accepted.status, 200, JSON.stringify(tokens));
  assert.equal(tokens.organization_id, flow.siteA.orgId, 'logged into the shop\'s organisation');
  flow.bearer = tokens.access_token;

  const again = await get('/shopify/api/invitation', {
    method: 'POST', headers: { authorization: `Bearer ${shopA.sessionToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'someone@example.com' }),
  });
  await assertProblem(again, 409, 'already_linked', 'a second invitation');
  assert.equal((await body(await overview(shopA.sessionToken()))).linked, true);

  // The merchant sees the install through the API.
  const sites = await api('GET', '/sites');
  assert.deepEqual(sites.map((s) => s.id), [flow.siteA.id], 'only the shop\'s site, not shop B\'s');
  const site = await api('GET', `/sites/${flow.siteA.id}`);
  const domains = Object.fromEntries(site.domain_verification.map((d) => [d.host, `${d.status}/${d.method}`]));
  assert.deepEqual(domains, { [HOST_A]: 'verified/shopify_install', [SHOP_A]: 'verified/shopify_install' });

  // The answer is the invitation itself (the embedded page accepts it on the merchant's
  // behalf with POST /api/v1/invitations/accept): its email and expiry, no link.
  assert.deepEqual(Object.keys(inv).sort(), ['email', 'expires_at', 'token']);
});

test('the storefront in Chromium: visitors get an arm, the cart carries their id, checkouts count once in EUR', async () => {
  assert.ok(flow.bearer, 'needs the linked account');
  const created = await api('POST', `/sites/${flow.siteA.id}/experiments`, headlineExperiment('Shipping headline', VARIANT_TEXT));
  flow.experiment = await api('POST', `/experiments/${created.id}/start`, {}, { 'if-match': `"${created.version}"` });
  assert.equal(flow.experiment.status, 'running');
  await waitFor(async () => {
    const pubs = await api('GET', `/sites/${flow.siteA.id}/publications`);
    return pubs.some((p) => p.status === 'published' && p.weights.some((w) => w.experiment_id === created.id));
  }, { timeoutMs: 30_000, what: 'a publication that reached the edge' });

  // The shop's host is routed to the site at the edge too (pages rendered by the Worker).
  const routed = await waitFor(async () => {
    const r = await edgeAsHost(HOST_A);
    return r.status === 200 ? r : null;
  }, { timeoutMs: 15_000, what: `${HOST_A} routed at the edge` });
  assert.match(routed.body, /origin-marker/);

  const product = 'test-product';
  let screenshot = false;
  for (let i = 0; i < 16 && (flow.buyers.length < 6 || new Set(flow.buyers.map((b) => b.arm)).size < 2); i++) {
    // Both arrival orders of pixel and webhook, and each form Shopify has used for the
    // pixel's order id: the purchase is counted once in every case.
    shopA.configure({
      checkoutOrder: ['pixel-first', 'webhook-first', 'concurrent'][Math.floor(i / 2) % 3],
      pixelOrderIdFormat: ['order-identity-gid', 'numeric', 'order-gid'][i % 3],
    });
    const context = await browser.newContext({ userAgent: BROWSER_UA, ignoreHTTPSErrors: true });
    const tab = await context.newPage();
    tab.setDefaultTimeout(20_000);
    const errors = [];
    tab.on('pageerror', (e) => errors.push(String(e)));
    // The cart helper is deferred; held until the edge has answered, so it finds
    // window.samplit.visitor already set (the event path has its own test below).
    let answered;
    const assigned = new Promise((ok) => { answered = ok; });
    tab.on('response', (r) => { if (r.url().startsWith(`${publicEdge}/v1/assign`)) r.finished().then(() => answered()); });
    await context.route('**/samplit-cart.js', async (route) => {
      await Promise.race([assigned, sleep(5000)]);
      await sleep(100);
      await route.continue();
    });
    try {
      await tab.goto(`https://${HOST_A}/products/${product}`);
      const snippet = await tab.locator(`script[src^="${publicEdge}/v1/samplit.js?site="]`).count();
      assert.equal(snippet, 1, `the app embed loads the snippet from the public edge: ${(await tab.content()).slice(0, 1500)}`);
      const visitor = await waitFor(() => tab.evaluate(() => window.samplit?.visitor ?? null), { timeoutMs: 10_000, what: `visitor ${i}'s id from the edge` });
      await tab.waitForFunction(() => document.readyState === 'complete');
      const cookie = (await context.cookies(`https://${HOST_A}/`)).find((c) => c.name === '_samplit_vid');
      assert.equal(cookie?.value, visitor, 'the snippet keeps the id in the first-party cookie the pixel reads');
      const headline = await tab.textContent('#headline');
      assert.ok(headline === VARIANT_TEXT || headline === 'Original headline', headline);
      const arm = headline === VARIANT_TEXT ? 'Free shipping' : 'Control';
      if (arm === 'Free shipping' && !screenshot) {
        mkdirSync(dirname(SCREENSHOT), { recursive: true });
        await tab.screenshot({ path: SCREENSHOT, fullPage: true });
        screenshot = true;
      }
      // The cart helper copies the id into the cart attribute.
      await waitFor(() => tab.evaluate(async (vid) => (await (await fetch('/cart.js')).json()).attributes?._samplit_vid === vid, visitor),
        { timeoutMs: 8000, what: `visitor ${i}'s id in the cart attribute` });
      await tab.click('#add-to-cart');
      await tab.locator('#cart-status', { hasText: 'Added to cart' }).waitFor();
      await tab.goto(`https://${HOST_A}/cart`);
      assert.equal(await tab.textContent('#headline'), headline, 'the same arm on the next page');
      await Promise.all([tab.waitForURL(/\/checkout$/), tab.click('#checkout')]);
      await tab.locator('#thank-you').waitFor();
      const record = shopA.lastCheckout;
      const order = record.order;
      assert.deepEqual(order.note_attributes.filter((a) => a.name === '_samplit_vid'), [{ name: '_samplit_vid', value: visitor }]);
      assert.deepEqual(record.pixelErrors, []);
      assert.equal(record.webhookStatuses.at(-1), 200, `orders/create answered: ${JSON.stringify(record.webhookStatuses)}`);
      const sent = shopA.pixelLog.filter((l) => l.kind === 'fetch' && l.url === `${publicEdge}/v1/events`);
      assert.ok(sent.length > 0 && sent.at(-1).status === 202, `the pixel posted the purchase to the edge: ${JSON.stringify(shopA.pixelLog.slice(-6))}`);
      const delivery = shopA.webhooks.filter((w) => w.topic === 'orders/create').at(-1);
      flow.buyers.push({ visitor, arm, order, webhookId: delivery.webhookId });
      assert.deepEqual(errors, [], 'no uncaught exception on the storefront');
    } finally {
      await context.close();
    }
  }
  const arms = new Set(flow.buyers.map((b) => b.arm));
  assert.ok(flow.buyers.length >= 6 && arms.size === 2, `both arms among ${flow.buyers.length} buyers: ${flow.buyers.map((b) => b.arm)}`);
  assert.ok(screenshot, 'a screenshot of the variant');
  shopA.configure({ checkoutOrder: 'pixel-first', pixelOrderIdFormat: 'order-identity-gid' });
  // The order rows: one per order, with its visitor, total and currency.
  for (const b of flow.buyers) {
    assert.equal(sql(`SELECT visitor_id, total, currency FROM shopify_orders WHERE shop = ${q(SHOP_A)} AND order_id = ${b.order.id}`),
      `${b.visitor}|${Number(b.order.total_price)}|EUR`);
  }

  // Every order once (webhook and pixel carry the same event id), with its revenue.
  const expected = expectedByArm();
  const results = await waitForResults(expected, 'every order counted once in the results');
  assert.equal(results.currency, 'EUR');

  // A retried delivery (same webhook id) and a second delivery of the same order (new id)
  // change nothing.
  const first = flow.buyers[0];
  const retried = await shopA.sendWebhook('orders/create', first.order, { webhookId: first.webhookId });
  assert.equal(retried.status, 200, JSON.stringify(retried));
  const redelivered = await shopA.sendWebhook('orders/create', first.order);
  assert.equal(redelivered.status, 200, JSON.stringify(redelivered));
  await sleep(4000); // two queue batch intervals: a duplicate would have arrived by now
  assert.deepEqual((await resultsByArm()).arms, expected, 'redeliveries counted nowhere');
  assert.equal(sql(`SELECT count(*) FROM shopify_orders WHERE shop = ${q(SHOP_A)} AND order_id = ${first.order.id}`), '1');

  // The embedded admin shows the same totals.
  const ov = await body(await overview(shopA.sessionToken()));
  const e = ov.experiments.find((x) => x.id === flow.experiment.id);
  assert.ok(e, JSON.stringify(ov));
  assert.equal(e.status, 'running');
  assert.equal(e.currency, 'EUR');
  assert.equal(e.visitors, flow.buyers.length);
  assert.equal(e.conversions, flow.buyers.length);
  assert.equal(Math.round(e.revenue * 100) / 100, Math.round(flow.buyers.reduce((s, b) => s + Number(b.order.total_price), 0) * 100) / 100);
});

// ------------------------------------------------------------------------------ the embedded page in Chromium

/** Opens the embedded admin page of `shop` (/shopify/app, as the admin's iframe would) in
 *  a fresh context. App Bridge (Shopify's CDN, unreachable here) is replaced by a stub whose
 *  idToken() resolves to `mint()`, called in node each time the page loads the script.
 *  Collects console errors, uncaught exceptions, CSP violations and the page's API calls. */
async function openEmbedded(shop, mint) {
  const handle = shop.replace(/\.myshopify\.com$/, '');
  const host = Buffer.from(`admin.shopify.com/store/${handle}`).toString('base64').replace(/=+$/, '');
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1000, height: 640 } });
  const tab = await context.newPage();
  tab.setDefaultTimeout(15_000);
  const seen = { consoleErrors: [], pageErrors: [], calls: [], tokens: [], bridgeLoads: 0 };
  tab.on('console', (m) => { if (m.type() === 'error') seen.consoleErrors.push(m.text()); });
  tab.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  tab.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin === server.base) seen.calls.push({ method: r.method(), path: u.pathname, authorization: r.headers().authorization ?? null });
  });
  await tab.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await tab.route(APP_BRIDGE, async (route) => {
    const token = mint();
    seen.tokens.push(token);
    seen.bridgeLoads += 1;
    await route.fulfill({
      status: 200, contentType: 'text/javascript; charset=utf-8',
      body: `window.shopify = { idToken: () => Promise.resolve(${JSON.stringify(token)}) };`,
    });
  });
  const res = await tab.goto(`${server.base}/shopify/app?shop=${shop}&host=${host}`);
  assert.equal(res.status(), 200);
  assert.equal(seen.bridgeLoads, 1, 'the page loads App Bridge from Shopify\'s CDN');
  const cspViolations = () => tab.evaluate(() => window.__cspViolations);
  return { context, tab, seen, cspViolations };
}

/** The page's experiment table: one entry per row, cells as shown. */
const tableRows = (tab) => tab.$$eval('#experiment-rows tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));

const euros = (v) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'EUR' }).format(v);

test('the embedded page in Chromium shows shop A\'s site and each arm\'s visitors, conversions and revenue as the results report them', async () => {
  assert.ok(flow.buyers.length && flow.experiment, 'needs the counted checkouts');
  // Read independently of the page: the database for the site, the results API for the arms.
  const [siteName, siteCurrency] = sql(`SELECT name, currency FROM sites WHERE id = ${q(flow.siteA.id)}`).split('|');
  const verified = sql(`SELECT host FROM site_domains WHERE site_id = ${q(flow.siteA.id)} AND status = 'verified' ORDER BY host`).split('\n');
  const results = await resultsByArm();
  assert.equal(results.currency, 'EUR');
  assert.deepEqual(Object.keys(results.arms).sort(), ['Control', 'Free shipping']);
  assert.ok(Object.values(results.arms).every((a) => a.visitors > 0 && a.conversions > 0 && a.revenue > 0), JSON.stringify(results));

  const { context, tab, seen, cspViolations } = await openEmbedded(SHOP_A, () => shopA.sessionToken());
  try {
    await tab.locator('#site').waitFor({ state: 'visible' });
    await tab.locator('#experiments').waitFor({ state: 'visible' });
    assert.equal(await tab.textContent('#site-name'), siteName);
    assert.equal(siteName, 'Samplit Test Store');
    assert.equal(await tab.textContent('#site-key'), flow.siteA.siteKey);
    assert.equal(await tab.textContent('#site-currency'), siteCurrency);
    assert.deepEqual((await tab.textContent('#site-domains')).split(', ').sort(), verified);
    assert.deepEqual(verified, [SHOP_A, HOST_A].sort());
    assert.equal(await tab.isHidden('#link'), true, 'shop A is linked: no link form');
    assert.equal(await tab.textContent('#status'), '');

    // One row per arm, the experiment's name and status on its first row.
    const rows = await tableRows(tab);
    assert.equal(rows.length, Object.keys(results.arms).length, JSON.stringify(rows));
    assert.equal(rows[0][0], flow.experiment.name);
    assert.equal(rows[0][1], 'running');
    assert.ok(rows.slice(1).every((r) => r[0] === '' && r[1] === ''), JSON.stringify(rows));
    const shown = {};
    for (const [, , arm, visitors, conversions, revenue] of rows) {
      const name = arm.replace(/ \(control\)$/, '');
      assert.equal(arm.endsWith(' (control)'), name === 'Control', arm);
      shown[name] = { visitors, conversions, revenue };
    }
    const expected = Object.fromEntries(Object.entries(results.arms).map(([name, a]) =>
      [name, { visitors: String(a.visitors), conversions: String(a.conversions), revenue: euros(a.revenue) }]));
    assert.deepEqual(shown, expected, 'the table shows what GET /experiments/{id}/results reports');
    for (const [name, s] of Object.entries(shown)) {
      assert.equal(Number(s.revenue.replace(/[^0-9.]/g, '')), results.arms[name].revenue, `${name}: ${s.revenue} in EUR`);
      assert.match(s.revenue, /^€[\d,]+\.\d\d$/);
    }
    // Nothing moved while the page was open.
    assert.deepEqual(await resultsByArm(), results);

    // The page asked with the token App Bridge gave it, nothing else.
    assert.deepEqual(seen.calls.filter((c) => c.path.startsWith('/shopify/api/') || c.path.startsWith('/api/')),
      [{ method: 'GET', path: '/shopify/api/overview', authorization: `Bearer ${seen.tokens[0]}` }]);
    mkdirSync(dirname(EMBEDDED_SCREENSHOT), { recursive: true });
    await tab.screenshot({ path: EMBEDDED_SCREENSHOT, fullPage: true });
    assert.deepEqual(await cspViolations(), [], 'the page\'s CSP lets its own script and calls through');
    assert.deepEqual(seen.consoleErrors, []);
    assert.deepEqual(seen.pageErrors, []);
  } finally {
    await context.close();
  }
});

test('the embedded page links a Samplit account for shop B: the form creates a login into B\'s organisation, then hides', async () => {
  const before = await body(await overview(shopB.sessionToken()));
  assert.equal(before.linked, false, 'shop B\'s organisation has no member yet');
  const orgB = sql(`SELECT org_id FROM shopify_shops WHERE shop = ${q(SHOP_B)}`);
  assert.equal(sql(`SELECT org_id FROM sites WHERE id = ${q(before.site.id)}`), orgB);
  const email = 'owner-b@example.com';
  const password = 'another correct horse battery';

  const { context, tab, seen, cspViolations } = await openEmbedded(SHOP_B, () => shopB.sessionToken());
  try {
    await tab.locator('#link').waitFor({ state: 'visible' });
    assert.equal(await tab.textContent('#site-name'), 'Other Test Store');
    assert.equal(await tab.isHidden('#experiments'), true);
    assert.match(await tab.textContent('#status'), /No experiment has started yet/);

    await tab.fill('#link-form input[name=email]', email);
    await tab.fill('#link-form input[name=name]', 'Bea Owner');
    await tab.fill('#link-form input[name=password]', password);
    await tab.click('#link-form button[type=submit]');
    await tab.waitForFunction(() => document.getElementById('link-result').textContent !== '');
    assert.equal(await tab.textContent('#link-result'), `Done: sign in to the Samplit console with ${email}.`);
    await tab.locator('#link').waitFor({ state: 'hidden' }); // the page reloads the overview: linked
    const calls = seen.calls.filter((c) => c.path.startsWith('/shopify/api/') || c.path.startsWith('/api/'));
    assert.deepEqual(calls.map((c) => `${c.method} ${c.path} ${c.authorization ? 'bearer' : '-'}`), [
      'GET /shopify/api/overview bearer', 'POST /shopify/api/invitation bearer', 'POST /api/v1/invitations/accept -',
      'POST /api/v1/auth/logout bearer', 'GET /shopify/api/overview bearer',
    ]);
    assert.equal(sql(`SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ${q(email)} AND s.revoked_at IS NULL`), '0',
      'the session the acceptance opened was ended by the page');
    assert.ok(calls.filter((c) => c.path.startsWith('/shopify/')).every((c) => c.authorization === `Bearer ${seen.tokens[0]}`));

    // The login works and is B's organisation's, with B's site only.
    const login = await get('/api/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }),
    });
    const tokens = await body(login);
    assert.equal(login.status, 200, JSON.stringify(tokens));
    assert.equal(tokens.organization_id, orgB);
    const sites = await get('/api/v1/sites', { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const list = await body(sites);
    assert.equal(sites.status, 200, JSON.stringify(list));
    assert.deepEqual(list.map((s) => s.id), [before.site.id], 'only shop B\'s site');
    assert.notEqual(before.site.id, flow.siteA.id);
    const wrong = await get('/api/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: `${password}x` }),
    });
    assert.equal(wrong.status, 401, 'and only with that password');

    // Reloaded (a fresh token from the stub): linked, so no form.
    await tab.reload();
    await tab.locator('#site').waitFor({ state: 'visible' });
    assert.equal(seen.bridgeLoads, 2);
    assert.equal(await tab.isHidden('#link'), true);
    assert.equal((await body(await overview(shopB.sessionToken()))).linked, true);
    assert.deepEqual(await cspViolations(), []);
    assert.deepEqual(seen.consoleErrors, []);
    assert.deepEqual(seen.pageErrors, []);
  } finally {
    await context.close();
  }
});

test('the embedded page links an existing Samplit login to shop C: it signs in with that login, accepts, and ends that session', async () => {
  // Someone with a Samplit account of their own (their own organisation).
  const email = 'existing-merchant@example.com';
  const password = 'an existing login password';
  const reg = await get('/api/v1/auth/register', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password, name: 'Ezra Existing', organization_name: 'Existing Co' }),
  });
  const registered = await body(reg);
  assert.equal(reg.status, 201, JSON.stringify(registered));
  const ownOrg = registered.organization_id;
  const sessionsBefore = Number(sql(`SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ${q(email)} AND s.revoked_at IS NULL`));

  const { context, tab, seen, cspViolations } = await openEmbedded(SHOP_C, () => shopC.sessionToken());
  try {
    await tab.locator('#link').waitFor({ state: 'visible' }); // shop C installed by token exchange, nobody linked
    const orgC = sql(`SELECT org_id FROM shopify_shops WHERE shop = ${q(SHOP_C)}`);
    assert.notEqual(orgC, ownOrg);
    await tab.fill('#link-form input[name=email]', email);
    await tab.fill('#link-form input[name=name]', 'Ezra Existing');
    await tab.fill('#link-form input[name=password]', password);
    await tab.click('#link-form button[type=submit]');
    await tab.waitForFunction(() => document.getElementById('link-result').textContent !== '');
    assert.equal(await tab.textContent('#link-result'), `Done: your Samplit login ${email} now manages this store; sign in to the Samplit console.`);
    await tab.locator('#link').waitFor({ state: 'hidden' });
    const calls = seen.calls.filter((c) => c.path.startsWith('/shopify/api/') || c.path.startsWith('/api/'));
    assert.deepEqual(calls.map((c) => `${c.method} ${c.path} ${c.authorization ? 'bearer' : '-'}`), [
      'GET /shopify/api/overview bearer', 'POST /shopify/api/invitation bearer', 'POST /api/v1/invitations/accept -',
      'POST /api/v1/auth/login -', 'POST /api/v1/invitations/accept bearer', 'POST /api/v1/auth/logout bearer',
      'POST /api/v1/auth/logout bearer', 'GET /shopify/api/overview bearer',
    ]);
    // The same login is now owner of shop C's organisation and keeps its own.
    const login = await get('/api/v1/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password, organization_id: orgC }),
    });
    const tokens = await body(login);
    assert.equal(login.status, 200, JSON.stringify(tokens));
    assert.equal(tokens.organization_id, orgC);
    const me = await body(await get('/api/v1/auth/me', { headers: { authorization: `Bearer ${tokens.access_token}` } }));
    assert.deepEqual(me.organizations.map((o) => o.id).sort(), [orgC, ownOrg].sort());
    assert.equal(me.role, 'owner');
    assert.equal(sql(`SELECT count(*) FROM users WHERE email = ${q(email)}`), '1', 'no second account');
    // The page's own session was ended: only the one just opened here is live besides the earlier ones.
    const sessionsAfter = Number(sql(`SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ${q(email)} AND s.revoked_at IS NULL`));
    assert.equal(sessionsAfter, sessionsBefore + 1, 'the page logged its session out');
    assert.deepEqual(await cspViolations(), []);
    assert.deepEqual(seen.pageErrors, []);
  } finally {
    await context.close();
  }
});

test('the embedded page with a forged session token shows the 401 problem\'s detail and no data', async () => {
  const forged = () => shopA.sessionToken({ secret: 'another-apps-secret-another-apps-secret' });
  const problem = await body(await overview(forged()));
  assert.equal(problem.status, 401);
  assert.equal(problem.code, 'invalid_session_token');
  assert.ok(problem.detail, JSON.stringify(problem));

  const { context, tab, seen, cspViolations } = await openEmbedded(SHOP_A, forged);
  try {
    await tab.locator('#status.error').waitFor();
    assert.equal(await tab.textContent('#status'), problem.detail);
    for (const id of ['#site', '#experiments', '#link']) assert.equal(await tab.isHidden(id), true, `${id} hidden`);
    assert.equal(await tab.textContent('#site-name'), '');
    assert.equal(await tab.textContent('#site-key'), '');
    assert.deepEqual(await tableRows(tab), []);
    const text = await tab.textContent('body');
    assert.ok(!text.includes(flow.siteA.siteKey) && !text.includes('Samplit Test Store'), 'nothing of the shop');
    assert.deepEqual(seen.calls.filter((c) => c.path.startsWith('/shopify/api/')).map((c) => c.path), ['/shopify/api/overview']);
    assert.deepEqual(await cspViolations(), []);
    // The one console error is the refused call itself.
    assert.equal(seen.consoleErrors.length, 1, JSON.stringify(seen.consoleErrors));
    assert.match(seen.consoleErrors[0], /status of 401/);
    assert.deepEqual(seen.pageErrors, []);
  } finally {
    await context.close();
  }
});

test('the cart helper also takes the id from the samplit:visitor event when the edge answers after it loaded', async () => {
  assert.ok(flow.experiment, 'needs the running experiment');
  const context = await browser.newContext({ userAgent: BROWSER_UA, ignoreHTTPSErrors: true });
  // A slow edge: its answer comes after the deferred helper ran.
  await context.route(`${publicEdge}/v1/assign`, async (route) => { await sleep(1500); await route.continue(); });
  try {
    const tab = await context.newPage();
    await tab.goto(`https://${HOST_A}/`);
    // The helper ran before the edge named the visitor.
    assert.equal(await tab.evaluate(() => window.samplit?.visitor ?? null), null, 'the edge has not answered yet');
    const visitor = await waitFor(() => tab.evaluate(() => window.samplit?.visitor ?? null), { timeoutMs: 10_000, what: 'the visitor id' });
    await tab.waitForFunction(() => document.readyState === 'complete');
    const arm = (await tab.textContent('#headline')) === VARIANT_TEXT ? 'Free shipping' : 'Control';
    flow.extra.visitors[arm] = (flow.extra.visitors[arm] ?? 0) + 1;
    await waitFor(() => tab.evaluate(async (vid) => (await (await fetch('/cart.js')).json()).attributes?._samplit_vid === vid, visitor),
      { timeoutMs: 5000, what: 'the id in the cart attribute after the samplit:visitor event' });
  } finally {
    await context.close();
  }
});

// ------------------------------------------------------------------------------ refusals

test('a foreign shop host is refused with 400 before anything is asked of Shopify', async () => {
  const before = shopA.adminRequests.length;
  for (const shop of ['evil.example.com', 'x.myshopify.com.evil.com', 'samplit-test.myshopify.com:443', 'https://samplit-test.myshopify.com']) {
    await assertProblem(await fetch(shopA.installUrl({ shop }), { redirect: 'manual' }), 400, 'invalid_shop', `/shopify/auth shop=${shop}`);
    const params = { code: 'abc', host: 'x', shop, state: 'whatever', timestamp: String(Math.floor(Date.now() / 1000)) };
    await assertProblem(await get(`/shopify/auth/callback?${signed(params)}`, { headers: { cookie: 'samplit_shopify_state=whatever' } }),
      400, 'invalid_shop', `callback shop=${shop}`);
  }
  assert.equal(shopA.adminRequests.length, before, 'no request reached Shopify');
});

test('a bad or missing hmac gets 401 on /shopify/auth and on the callback', async () => {
  const before = shopA.adminRequests.length;
  await assertProblem(await fetch(shopA.installUrl({ hmac: '0'.repeat(64) }), { redirect: 'manual' }), 401, 'bad_hmac', 'auth, bad hmac');
  const missing = new URL(shopA.installUrl());
  missing.searchParams.delete('hmac');
  await assertProblem(await fetch(missing, { redirect: 'manual' }), 401, 'bad_hmac', 'auth, no hmac');
  const other = new URL(shopA.installUrl());
  other.searchParams.set('timestamp', String(Number(other.searchParams.get('timestamp')) + 1));
  await assertProblem(await fetch(other, { redirect: 'manual' }), 401, 'bad_hmac', 'auth, a parameter changed after signing');
  const wrongSecret = shopA.installUrl({ hmac: createHmac('sha256', 'not-the-secret').update('x').digest('hex') });
  await assertProblem(await fetch(wrongSecret, { redirect: 'manual' }), 401, 'bad_hmac', 'auth, another secret');

  const started = await startInstall(shopA);
  const back = await approve(shopA, started.location);
  const tampered = new URL(back);
  tampered.searchParams.set('hmac', 'f'.repeat(64));
  await assertProblem(await callback(tampered, started.cookie), 401, 'bad_hmac', 'callback, bad hmac');
  const noHmac = new URL(back);
  noHmac.searchParams.delete('hmac');
  await assertProblem(await callback(noHmac, started.cookie), 401, 'bad_hmac', 'callback, no hmac');
  assert.deepEqual(shopA.adminRequests.slice(before).map((r) => r.path.split('?')[0]), ['/admin/oauth/authorize'],
    'no code was exchanged');
  // The state is still good for its own, signed callback.
  assert.equal((await callback(back, started.cookie)).status, 302);
});

test('a replayed, tampered, cookie-less or other shop\'s state gets 403', async () => {
  // Replay: the same callback URL twice.
  const started = await startInstall(shopA);
  const back = await approve(shopA, started.location);
  assert.equal((await callback(back, started.cookie)).status, 302);
  const tokensAfterFirst = shopA.accessTokens.length;
  await assertProblem(await callback(back, started.cookie), 403, 'bad_state', 'a replayed callback');

  // Tampered: a state the app never issued, correctly signed, with or without a matching cookie.
  const fresh = await startInstall(shopA);
  const approved = await approve(shopA, fresh.location);
  const params = Object.fromEntries(approved.searchParams);
  delete params.hmac;
  const forged = { ...params, state: `${params.state}x` };
  await assertProblem(await get(`/shopify/auth/callback?${signed(forged)}`, { headers: { cookie: `samplit_shopify_state=${fresh.cookie}` } }),
    403, 'bad_state', 'state ≠ cookie');
  await assertProblem(await get(`/shopify/auth/callback?${signed(forged)}`, { headers: { cookie: `samplit_shopify_state=${forged.state}` } }),
    403, 'bad_state', 'a state never issued');
  await assertProblem(await callback(approved), 403, 'bad_state', 'no cookie');
  // Issued for shop A, presented for shop B (signed for B).
  const forB = { ...params, shop: SHOP_B };
  await assertProblem(await get(`/shopify/auth/callback?${signed(forB)}`, { headers: { cookie: `samplit_shopify_state=${fresh.cookie}` } }),
    403, 'bad_state', 'another shop\'s state');
  assert.equal(shopA.accessTokens.length, tokensAfterFirst, 'no code exchanged for a refused state');
  assert.equal(shopB.accessTokens.length, 1);
});

test('session tokens: wrong secret, wrong audience, expired, not yet valid, malformed or missing get 401; shop B never sees shop A', async () => {
  const t = Math.floor(Date.now() / 1000);
  const cases = {
    'wrong secret': shopA.sessionToken({ secret: 'another-apps-secret-another-apps-secret' }),
    'wrong audience': shopA.sessionToken({ aud: 'another-client-id' }),
    expired: shopA.sessionToken({ exp: t - 120, iat: t - 180, nbf: t - 180 }),
    'not valid yet': shopA.sessionToken({ nbf: t + 120, exp: t + 180 }),
    'dest is another shop than iss': shopA.sessionToken({ dest: `https://${SHOP_B}` }),
    'dest is not a shop': shopA.sessionToken({ dest: 'https://evil.example.com', iss: 'https://evil.example.com/admin' }),
    'not a JWT': 'not.a.jwt',
  };
  for (const [what, token] of Object.entries(cases)) {
    await assertProblem(await overview(token), 401, 'invalid_session_token', what);
  }
  await assertProblem(await get('/shopify/api/overview'), 401, 'invalid_session_token', 'no Authorization');
  await assertProblem(await get('/shopify/api/invitation', {
    method: 'POST', headers: { authorization: `Bearer ${cases['wrong secret']}`, 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'x@example.com' }),
  }), 401, 'invalid_session_token', 'invitation with a forged token');

  // Shop B's token (the same app) is shop B's, and only that.
  const b = await body(await overview(shopB.sessionToken()));
  assert.equal(b.shop, SHOP_B);
  assert.notEqual(b.site.id, flow.siteA.id);
  assert.ok(!JSON.stringify(b).includes(flow.siteA.siteKey), 'nothing of shop A');
  assert.ok(!b.experiments.some((e) => e.id === flow.experiment?.id), 'not shop A\'s experiment');
});

test('webhooks: a bad HMAC gets 401 and records nothing; a repeated delivery is answered 200 and counted once', async () => {
  assert.ok(flow.buyers.length, 'needs the storefront flow');
  const deliveries = () => sql('SELECT count(*) FROM shopify_webhook_deliveries');
  const orders = () => sql('SELECT count(*) FROM shopify_orders');
  const before = { deliveries: deliveries(), orders: orders() };
  const buyer = flow.buyers.find((b) => b.arm === 'Control') ?? flow.buyers[0];
  const order = { ...buyer.order, id: buyer.order.id + 7, admin_graphql_api_id: `gid://shopify/Order/${buyer.order.id + 7}`, total_price: '12.50' };

  for (const hmac of ['', 'AAAA', createHmac('sha256', 'wrong-secret').update(JSON.stringify(order)).digest('base64')]) {
    const r = await shopA.sendWebhook('orders/create', order, { hmac });
    assert.equal(r.status, 401, `hmac ${JSON.stringify(hmac)}: ${r.status} ${r.body}`);
    assert.equal(JSON.parse(r.body).code, 'bad_hmac');
  }
  const redact = await shopA.sendWebhook('shop/redact', { shop_id: 1, shop_domain: SHOP_A }, { hmac: 'AAAA' });
  assert.equal(redact.status, 401, 'a compliance topic too');
  assert.deepEqual({ deliveries: deliveries(), orders: orders() }, before, 'nothing recorded');
  assert.equal(sql(`SELECT count(*) FROM sites WHERE id = ${q(flow.siteA.id)}`), '1');

  // The same delivery twice: 200 both times, one purchase (a repeat buyer: revenue grows by
  // the order once, converters stay).
  const first = await shopA.sendWebhook('orders/create', order);
  assert.equal(first.status, 200, first.body);
  flow.extra.revenue[buyer.arm] = (flow.extra.revenue[buyer.arm] ?? 0) + 12.5;
  const expected = expectedByArm();
  const again = await shopA.sendWebhook('orders/create', order, { webhookId: first.webhookId });
  assert.equal(again.status, 200, again.body);
  assert.equal(sql(`SELECT count(*) FROM shopify_webhook_deliveries WHERE webhook_id = ${q(first.webhookId)}`), '1');
  assert.equal(sql(`SELECT visitor_id FROM shopify_orders WHERE shop = ${q(SHOP_A)} AND order_id = ${order.id}`), buyer.visitor);
  await waitForResults(expected, 'the repeated delivery counted once');
  await sleep(3000);
  assert.deepEqual((await resultsByArm()).arms, expected, 'and only once');
});

test('a stranger with the public site key cannot pre-claim an order: the event id is keyed by the buyer\'s visitor', async () => {
  assert.ok(flow.buyers.length, 'needs the storefront flow');
  const buyer = flow.buyers.find((b) => b.arm === 'Control') ?? flow.buyers[0];
  const order = { ...buyer.order, id: buyer.order.id + 11, admin_graphql_api_id: `gid://shopify/Order/${buyer.order.id + 11}`, total_price: '20.00' };
  // The attacker knows the order id in advance and sends the pixel's call first, unsigned,
  // under a visitor id of their own (the buyer's is a random cookie they never saw).
  const stranger = crypto.randomUUID();
  const forged = await fetch(`${publicEdge}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: JSON.stringify({
      site_key: flow.siteA.siteKey,
      visitor_id: stranger,
      events: [{ type: 'conversion', goal: 'purchase', value: 0.01, currency: 'EUR', id: `shopify-order:${order.id}` }],
    }),
  });
  assert.equal(forged.status, 202, await forged.text());
  await waitFor(() => sql(`SELECT count(*) FROM raw_conversions WHERE visitor_id = ${q(stranger)}`) === '1',
    { timeoutMs: 15_000, what: 'the forged event ingested before the order' });
  // The genuine order then counts in full for the buyer's arm.
  const delivered = await shopA.sendWebhook('orders/create', order);
  assert.equal(delivered.status, 200, delivered.body);
  flow.extra.revenue[buyer.arm] = (flow.extra.revenue[buyer.arm] ?? 0) + 20;
  await waitForResults(expectedByArm(), 'the genuine order counted after the forged one');
});

test('an order without a visitor id is recorded for compliance and counted nowhere', async () => {
  assert.ok(flow.buyers.length, 'needs the storefront flow');
  const expected = expectedByArm();
  // A checkout with no cart attribute and no cookie (the pixel sends nothing either).
  const record = await shopA.placeOrder({ items: [{ id: 45000000000002, quantity: 2 }] });
  assert.equal(record.webhookStatuses.at(-1), 200, JSON.stringify(record.webhookStatuses));
  assert.deepEqual(record.order.note_attributes, []);
  assert.equal(sql(`SELECT coalesce(visitor_id, 'NULL'), total, currency FROM shopify_orders WHERE shop = ${q(SHOP_A)} AND order_id = ${record.order.id}`),
    'NULL|10|EUR');
  // The same by webhook alone, with note_attributes [].
  const bare = { ...record.order, id: record.order.id + 1, note_attributes: [] };
  assert.equal((await shopA.sendWebhook('orders/create', bare)).status, 200);
  assert.equal(sql(`SELECT coalesce(visitor_id, 'NULL') FROM shopify_orders WHERE shop = ${q(SHOP_A)} AND order_id = ${bare.id}`), 'NULL');
  await sleep(3000);
  assert.deepEqual((await resultsByArm()).arms, expected, 'results unchanged');
});

test('compliance: customers/data_request is stored for the owners, customers/redact unlinks the orders', async () => {
  assert.ok(flow.buyers.length >= 2, 'needs the storefront flow');
  const [one, two] = flow.buyers;
  const ids = [one.order.id, two.order.id];
  const asked = await shopA.customersDataRequest({ customerId: 777001, email: 'shopper@example.com', orderIds: ids, dataRequestId: 4242 });
  assert.equal(asked.status, 200, asked.body);
  const requests = await api('GET', '/shopify/data-requests');
  const mine = requests.find((r) => r.data_request_id === 4242);
  assert.ok(mine, JSON.stringify(requests));
  assert.equal(mine.shop, SHOP_A);
  assert.equal(mine.customer_id, 777001);
  const text = JSON.stringify(mine.data);
  for (const b of [one, two]) {
    assert.ok(text.includes(b.visitor), `the visitor id of order ${b.order.id} in ${text}`);
    assert.ok(text.includes(String(b.order.id)), `order ${b.order.id} in ${text}`);
  }
  assert.ok(!text.includes(flow.buyers[2]?.visitor ?? '\u0000'), 'only the orders asked for');

  const redacted = await shopA.customersRedact({ customerId: 777001, email: 'shopper@example.com', orderIds: ids });
  assert.equal(redacted.status, 200, redacted.body);
  assert.equal(sql(`SELECT count(*) FROM shopify_orders WHERE shop = ${q(SHOP_A)} AND order_id IN (${ids.join(',')}) AND visitor_id IS NULL`), '2');
  // Other orders keep theirs.
  if (flow.buyers[2]) {
    assert.equal(sql(`SELECT visitor_id FROM shopify_orders WHERE shop = ${q(SHOP_A)} AND order_id = ${flow.buyers[2].order.id}`), flow.buyers[2].visitor);
  }
});

// ------------------------------------------------------------------------------ the end

test('uninstall pauses the experiment, unroutes the shop\'s hosts and discards the token; shop/redact removes the site', async () => {
  assert.ok(flow.experiment, 'needs the running experiment');
  const gone = await shopA.uninstall();
  assert.equal(gone.status, 200, gone.body);

  const experiment = await api('GET', `/experiments/${flow.experiment.id}`);
  assert.equal(experiment.status, 'paused');
  assert.equal(sql(`SELECT count(*) FROM shopify_shops WHERE shop = ${q(SHOP_A)} AND token_ciphertext IS NULL AND token_nonce IS NULL`), '1');
  assert.equal(sql(`SELECT count(*) FROM domain_routes WHERE host IN (${q(SHOP_A)}, ${q(HOST_A)}) AND site_key IS NOT NULL`), '0');
  // At the edge: the hosts are nobody's, the old key assigns nobody.
  await waitFor(async () => (await edgeAsHost(HOST_A)).status === 404, { timeoutMs: 20_000, what: `${HOST_A} unrouted at the edge` });
  await waitFor(async () => {
    const r = await fetch(`${worker.base}/v1/assign`, {
      method: 'POST', headers: { 'content-type': 'text/plain', 'user-agent': BROWSER_UA },
      body: JSON.stringify({ site_key: flow.siteA.siteKey, url: `https://${HOST_A}/` }),
    });
    const b = await body(r);
    return r.status >= 400 || (b?.assignments ?? []).length === 0;
  }, { timeoutMs: 20_000, what: 'no assignments for the uninstalled site' });
  // The storefront renders no Samplit script any more (the shop dropped the metafields).
  const context = await browser.newContext({ userAgent: BROWSER_UA, ignoreHTTPSErrors: true });
  try {
    const tab = await context.newPage();
    await tab.goto(`https://${HOST_A}/`);
    assert.equal(await tab.locator('script[src*="/v1/samplit.js"]').count(), 0);
  } finally {
    await context.close();
  }
  // An order arriving now is counted nowhere.
  const late = { ...flow.buyers[0].order, id: flow.buyers[0].order.id + 99 };
  assert.equal((await shopA.sendWebhook('orders/create', late)).status, 200);

  // Shopify's shop/redact (48 h after an uninstall): the shop's site and records go.
  const redact = await shopA.shopRedact();
  assert.equal(redact.status, 200, redact.body);
  assert.equal(sql(`SELECT count(*) FROM sites WHERE id = ${q(flow.siteA.id)}`), '0');
  assert.equal(sql(`SELECT count(*) FROM shopify_orders WHERE shop = ${q(SHOP_A)}`), '0');
  // Shop B is untouched.
  assert.equal((await overview(shopB.sessionToken())).status, 200);
});
