// The WordPress plugin (integrations/wordpress/samplit), end to end, on a REAL WordPress:
// Debian's WordPress 6.1 on a private MariaDB, served by `php -S` (wp-harness.mjs), with
// PostgreSQL, `samplit serve` (the debug binary), the Worker under workerd (wrangler dev)
// and Debian's Chromium driven by playwright-core.
//
// The flow (issue 14): an admin logs into wp-admin, Settings → Samplit → "Connect to
// Samplit", signs in to the Samplit console, creates the site there and comes back
// connected with the domain verified; the snippet is in the front page's <head>; an
// experiment runs and a visitor gets a variant; a WooCommerce payment for that visitor
// arrives once in the results with its revenue; an order paid while the edge is down is
// queued and delivered once by WP-Cron when it is back; Disconnect revokes the connection
// token. The WordPress debug log must hold no PHP warning, notice or deprecation from the
// plugin.
//
// What stands in for what is not here (and nothing else):
// - WooCommerce (not installable here): fixtures/mu-plugins/samplit-e2e-woocommerce-standin.php,
//   a minimal stand-in of exactly the WC_Order API and hooks the plugin uses; the test
//   drives checkout (in the visitor's browser, with their cookies) and payment (server to
//   server) through its test-only REST routes.
// - A theme (Debian's package ships none): fixtures/theme/samplit-e2e, a classic theme
//   that calls wp_head() and has the #headline the experiment changes.
// - TLS and DNS for the WordPress host. The edge's CORS allows only `https://<verified
//   host>` (no port), so WordPress is https://wp.localhost: Chromium maps wp.localhost:443
//   to a local TLS front of php -S (self-signed, certificate errors ignored). The control
//   plane proves the host over plain http on php -S's port (SAMPLIT_DEV_VERIFY_PORT,
//   development switch) after resolving wp.localhost with a tiny local DNS server
//   (SAMPLIT_DNS_RESOLVER).
// - An edge outage: the edge URL WordPress is given is a pass-through proxy to the Worker
//   that the test closes (connection refused) and reopens on the same port.
//
//   node --test --test-concurrency=1 integrations/wordpress/tests/e2e/wordpress.test.mjs
//   (after `cargo xtask edge-build` and `cargo build -p samplit-control-plane --bin samplit`;
//   needs php-cli, php-mysql, mariadb-server and wordpress from Debian)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, headlineExperiment, psql, startServer } from '../../../../console/test/harness.mjs';
import { BROWSER_UA, INGEST_SECRET, SNAPSHOT_SECRET, sleep, startWorker, waitFor } from '../../../../edge-worker/test/harness.mjs';
import {
  PLUGIN_DIR, listening, makeCertificate, makeWordPress, startDns, startMariaDB, startPhpServer, startTlsFront, wpRequest,
} from './wp-harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..', '..');
const CHROMIUM = process.env.SAMPLIT_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = join(root, 'target', 'screenshots', 'wordpress-variant.png');
const ADMIN_SCREENSHOT = join(root, 'target', 'screenshots', 'wordpress-settings.png');

const WP_HOST = 'wp.localhost';
const HOME = `https://${WP_HOST}`;
const SETTINGS = `${HOME}/wp-admin/options-general.php?page=samplit`;
const WP_ADMIN = { login: 'admin', password: `wp-${randomBytes(9).toString('hex')}`, email: 'admin@example.com' };
const SAMPLIT_USER = { email: `wp-owner-${randomBytes(4).toString('hex')}@example.com`, password: 'correct horse battery staple', name: 'Wanda Owner' };
const E2E_SECRET = randomBytes(24).toString('hex');
const VARIANT_TEXT = 'Free shipping on every order';

let tls;
let dns;
let db;
let wp;
let phpServer;
let front;
let worker;
let edgeProxy;
let edgePort;
let server;
let browser;
const contexts = [];

// What the flow builds, for the tests after it.
const flow = {
  code: null, verification: null, siteId: null, siteKey: null, bearer: null, connectionToken: null, experiment: null,
  currency: null, visitors: [], orders: [],
};

// ------------------------------------------------------------------------------ plumbing

const sql = (text) => psql(text, server.databaseUrl);
const q = (s) => `'${String(s).replaceAll("'", "''")}'`;

async function body(res) {
  const text = await res.text();
  try { return text ? JSON.parse(text) : null; } catch { return text; }
}

const cp = (path, init = {}) => fetch(`${server.base}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(30_000), ...init });

/** /api/v1 as the Samplit user. */
async function api(method, path, data, headers = {}) {
  const res = await cp(`/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${flow.bearer}`, ...(data ? { 'content-type': 'application/json' } : {}), ...headers },
    body: data ? JSON.stringify(data) : undefined,
  });
  const b = await body(res);
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(b)}`);
  return b;
}

/** The plugin's connection calls, as the plugin makes them (Bearer connection token). */
const wpApi = (method, name, token) => cp(`/api/v1/wordpress/${name}`, { method, headers: { authorization: `Bearer ${token}` } });

/** The WooCommerce stand-in's test routes, server to server (no shopper cookie). */
async function shop(method, route, data) {
  const r = await wpRequest(phpServer.port, WP_HOST, method, `/?rest_route=${encodeURIComponent(`/samplit-e2e/v1${route}`)}`,
    { headers: { 'x-samplit-e2e-secret': E2E_SECRET }, body: data });
  assert.equal(r.status, 200, `${method} ${route}: ${r.status} ${r.body}`);
  return JSON.parse(r.body);
}

/** A pass-through proxy to the Worker: the edge URL WordPress gets (closed for the outage).
 *  It records the signed server calls that pass (the plugin's), with the edge's answer. */
const signedCalls = [];
function edgeProxyServer() {
  const workerPort = Number(new URL(worker.base).port);
  return http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const payload = Buffer.concat(chunks);
      const record = req.headers['x-samplit-signature']
        ? {
          method: req.method, path: req.url, timestamp: req.headers['x-samplit-timestamp'],
          signature: req.headers['x-samplit-signature'], body: payload.toString('utf8'), status: null,
        }
        : null;
      if (record) signedCalls.push(record);
      const upstream = http.request({ host: '127.0.0.1', port: workerPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        if (record) record.status = answer.statusCode;
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
      upstream.end(payload);
    });
  });
}

/** The plugin's signed POST /v1/events calls for order `id`. */
const orderCalls = (id) => signedCalls.filter((c) => c.method === 'POST' && c.path === '/v1/events' && JSON.parse(c.body).events?.some((e) => e.id === `wc-order:${id}`));

/** What the plugin sends for a paid order (docs/api.md, "Signed server calls"). */
function assertOrderCall(call, order) {
  assert.match(call.signature, /^v1=[0-9a-f]{64}$/);
  assert.equal(call.status, 202, `the edge accepted it: ${JSON.stringify(call)}`);
  assert.deepEqual(JSON.parse(call.body), {
    site_key: flow.siteKey,
    visitor_id: order.visitor,
    events: [{ type: 'conversion', goal: 'purchase', value: Number(order.total), currency: flow.currency, id: `wc-order:${order.id}` }],
  });
}
const publicEdge = () => `http://127.0.0.1:${edgePort}`;

/** The flow's experiment's results per arm name: { visitors, conversions, revenue }. */
async function resultsByArm() {
  const r = await api('GET', `/experiments/${flow.experiment.id}/results`);
  const a = r.analyses[0];
  const arms = {};
  a.subjects.forEach((s, i) => {
    arms[s.name] = {
      visitors: a.result?.arms[i]?.visitors ?? null,
      conversions: a.result?.arms[i]?.conversions ?? null,
      revenue: Math.round((s.revenue_sum ?? 0) * 100) / 100,
    };
  });
  return { currency: r.currency, arms };
}

/** What the flow's visitors and paid orders should have produced, per arm name. */
function expectedByArm() {
  const arms = { Control: { visitors: 0, conversions: 0, revenue: 0 }, 'Free shipping': { visitors: 0, conversions: 0, revenue: 0 } };
  for (const v of flow.visitors) arms[v.arm].visitors += 1;
  for (const o of flow.orders.filter((x) => x.delivered)) {
    arms[o.arm].conversions += 1;
    arms[o.arm].revenue = Math.round((arms[o.arm].revenue + Number(o.total)) * 100) / 100;
  }
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

/** A fresh browser context (https://wp.localhost's certificate is self-signed). */
async function newContext(options = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US', ...options });
  contexts.push(context);
  return context;
}

let adminTab; // wp-admin, logged in, kept for the whole flow

/** The settings page's notices and status rows, as shown. */
async function settingsState(tab) {
  return tab.evaluate(() => ({
    notices: [...document.querySelectorAll('.wrap .notice')].map((n) => `${[...n.classList].find((c) => /^notice-(success|error|warning|info)$/.test(c))}: ${n.querySelector('p')?.textContent.trim()}`),
    rows: Object.fromEntries([...document.querySelectorAll('.wrap table.form-table')].at(0)
      ? [...document.querySelectorAll('.wrap table.form-table')[0].querySelectorAll('tr')].map((tr) => [tr.querySelector('th')?.textContent.trim(), tr.querySelector('td')?.textContent.trim()])
      : []),
    html: document.documentElement.outerHTML,
  }));
}

/** Clicks a settings-page button and waits for the new settings page it redirects back to
 *  (the URL is the same before and after, so the old document is marked first). */
async function clickSettingsButton(tab, name) {
  await tab.evaluate(() => { window.__samplitOldPage = true; });
  const back = tab.waitForResponse((r) => r.url() === SETTINGS && r.request().method() === 'GET', { timeout: 60_000 });
  await tab.getByRole('button', { name, exact: true }).click();
  await back;
  await waitFor(async () => {
    try {
      return await tab.evaluate(() => window.__samplitOldPage === undefined && document.readyState === 'complete' && location.href);
    } catch { return false; } // the old document went away mid-call
  }, { timeoutMs: 30_000, what: `the settings page after "${name}"` });
  assert.equal(tab.url(), SETTINGS);
  return settingsState(tab);
}

/** Runs `fn`; on failure, adds what the browser, WordPress and the control plane last did. */
async function explained(tab, fn) {
  try {
    return await fn();
  } catch (e) {
    let page = '';
    try { page = `${tab?.url()}\n${(await tab?.evaluate(() => document.body?.innerText ?? ''))?.slice(0, 1500)}`; } catch { /* gone */ }
    const tailOf = (path, n) => (path && existsSync(path) ? readFileSync(path, 'utf8').slice(-n) : '');
    e.message += `\n--- page ---\n${page}\n--- php -S (tail) ---\n${phpServer?.logText().slice(-2500) ?? ''}`
      + `\n--- samplit serve (tail) ---\n${tailOf(server?.log, 2500)}\n--- WordPress debug log (tail) ---\n${wp?.debugLogText().slice(-1500) ?? ''}`;
    throw e;
  }
}

/** The PHP error lines of the WordPress debug log that come from the plugin or the fixtures. */
function ourPhpProblems() {
  const pluginPaths = [realpathSync(PLUGIN_DIR), '/plugins/samplit/', '/mu-plugins/samplit-e2e', '/themes/samplit-e2e', 'fixtures/'];
  return wp.debugLogText().split('\n')
    .filter((l) => /PHP (Warning|Notice|Deprecated|Fatal error|Parse error|Strict Standards|Recoverable fatal error)/.test(l))
    .filter((l) => pluginPaths.some((p) => l.includes(p)));
}

// ------------------------------------------------------------------------------ set-up

before(async () => {
  tls = makeCertificate(WP_HOST);
  dns = await startDns({ [WP_HOST]: '127.0.0.1' });
  const controlPlanePort = await freePort();
  const appUrl = `http://127.0.0.1:${controlPlanePort}`;

  // WordPress first: php -S binds its port right after it is chosen.
  db = await startMariaDB();
  wp = makeWordPress({
    db,
    home: HOME,
    constants: { SAMPLIT_CONTROL_PLANE_URL: appUrl, SAMPLIT_E2E_SECRET: E2E_SECRET },
  });
  const installed = wp.install(WP_ADMIN);
  assert.deepEqual(installed, { installed: true, active: ['samplit/samplit.php'], theme: 'samplit-e2e' });
  phpServer = await startPhpServer(wp, await freePort());
  front = await startTlsFront(tls, phpServer.port);

  worker = await startWorker({ vars: { SAMPLIT_CONTROL_PLANE_URL: appUrl } });
  edgePort = await freePort();
  edgeProxy = await listening(edgeProxyServer(), edgePort);

  server = await startServer((base) => ({
    SAMPLIT_SNAPSHOT_SECRET: SNAPSHOT_SECRET,
    SAMPLIT_INGEST_SECRET: INGEST_SECRET,
    SAMPLIT_EDGE_URL: publicEdge(),
    SAMPLIT_PUBLISH_INTERVAL: '1',
    SAMPLIT_PUBLIC_URL: base,
    // Plain http on loopback: the console's development cookie.
    SAMPLIT_DEV_INSECURE_COOKIES: 'true',
    // wp.localhost is a development name; its proof is fetched over http from php -S.
    SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS: 'true',
    SAMPLIT_DEV_VERIFY_PORT: String(phpServer.port),
    SAMPLIT_DNS_RESOLVER: `127.0.0.1:${dns.port}`,
    RUST_LOG: 'warn,samplit_control_plane::http::wordpress=debug,samplit_control_plane::verify=debug',
  }), { port: controlPlanePort });

  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=MAP ${WP_HOST}:443 127.0.0.1:${front.port}`],
  });
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close().catch(() => {});
  await front?.close().catch(() => {});
  await phpServer?.stop().catch((e) => console.error(e));
  await db?.stop().catch((e) => console.error(e));
  await server?.stop().catch((e) => console.error(e));
  await edgeProxy?.close().catch(() => {});
  await worker?.stop().catch((e) => console.error(e));
  await dns?.close().catch(() => {});
  tls?.remove();
  if (wp && process.env.SAMPLIT_E2E_KEEP !== '1') wp.remove();
  else if (wp) console.error(`kept ${wp.dir}`);
});

// ------------------------------------------------------------------------------ the flow

test('WordPress is installed with the plugin active; nothing is printed or served before a connection', async () => {
  assert.deepEqual(wp.eval("return array( get_bloginfo( 'version' ), get_option( 'active_plugins' ), get_stylesheet() );"),
    [wp.eval('global $wp_version; return $wp_version;'), ['samplit/samplit.php'], 'samplit-e2e']);
  assert.match(wp.eval('global $wp_version; return $wp_version;'), /^6\.1\./, "Debian 12's WordPress");
  // Secrets exist non-autoloaded from activation on.
  assert.equal(db.sql("SELECT option_name, autoload FROM wp_options WHERE option_name IN ('samplit_server_secret','samplit_connection_token') ORDER BY option_name").stdout.trim().split('\n').slice(1).join(';'),
    'samplit_connection_token\tno;samplit_server_secret\tno');
  const page = await wpRequest(phpServer.port, WP_HOST, 'GET', '/');
  assert.equal(page.status, 200);
  assert.match(page.body, /id="headline"/);
  assert.doesNotMatch(page.body, /samplit\.js/, 'no snippet before a connection');
  const file = await wpRequest(phpServer.port, WP_HOST, 'GET', '/.well-known/samplit-verification.txt');
  assert.equal(file.status, 404, `the verification file before a connection: ${file.status} ${file.body.slice(0, 200)}`);
});

test('connect in one click: wp-admin → Samplit console (sign in, create the site) → back connected, domain verified', async () => {
  // The Samplit account exists already (it signs in below).
  const registered = await cp('/api/v1/auth/register', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: SAMPLIT_USER.email, password: SAMPLIT_USER.password, name: SAMPLIT_USER.name, organization_name: 'Wanda’s Shop' }),
  });
  assert.equal(registered.status, 201, JSON.stringify(await body(registered)));

  const context = await newContext({ viewport: { width: 1200, height: 900 } });
  adminTab = await context.newPage();
  adminTab.setDefaultTimeout(30_000);
  const pageErrors = [];
  adminTab.on('pageerror', (e) => pageErrors.push(String(e)));
  // The code the console hands back (to try it again below).
  adminTab.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin === HOME && u.searchParams.get('code')) flow.code = u.searchParams.get('code');
  });

  await explained(adminTab, async () => {
    await adminTab.goto(`${HOME}/wp-login.php`);
    await adminTab.fill('#user_login', WP_ADMIN.login);
    await adminTab.fill('#user_pass', WP_ADMIN.password);
    await Promise.all([adminTab.waitForURL(/\/wp-admin\/?$/), adminTab.click('#wp-submit')]);

    // Settings → Samplit, from the menu.
    await adminTab.hover('#menu-settings');
    await Promise.all([adminTab.waitForURL(SETTINGS), adminTab.locator('#menu-settings a[href="options-general.php?page=samplit"]').click()]);
    let state = await settingsState(adminTab);
    assert.equal(state.rows.Status, 'Not connected', JSON.stringify(state.rows));

    // Connect → the console's connect page, signed out: sign in there.
    await Promise.all([
      adminTab.waitForURL((u) => u.toString().startsWith(`${server.base}/app/connect/wordpress?`)),
      adminTab.getByRole('button', { name: 'Connect to Samplit', exact: true }).click(),
    ]);
    const asked = new URL(adminTab.url());
    assert.equal(asked.searchParams.get('site_url'), HOME);
    assert.equal(asked.searchParams.get('return_url'), SETTINGS);
    assert.match(asked.searchParams.get('state'), /^[A-Za-z0-9_-]{8,128}$/);
    await adminTab.getByRole('heading', { name: 'Sign in' }).waitFor();
    await adminTab.getByLabel('Email').fill(SAMPLIT_USER.email);
    await adminTab.getByLabel('Password').fill(SAMPLIT_USER.password);
    await adminTab.getByRole('button', { name: 'Sign in' }).click();

    // Signed in: the same page, naming the WordPress host; "a new site" is the choice.
    await adminTab.getByRole('heading', { name: 'Connect a WordPress site' }).waitFor();
    assert.equal(await adminTab.textContent('[data-testid=wp-host]'), WP_HOST);
    assert.equal(await adminTab.getByLabel(`A new site for ${WP_HOST}`).isChecked(), true);
    await Promise.all([
      adminTab.waitForURL((u) => u.toString() === SETTINGS, { timeout: 60_000 }),
      adminTab.click('[data-testid=wp-connect]'),
    ]);

    // Back in wp-admin: connected (the plugin exchanged the code) and the domain verified
    // (the control plane fetched the plugin's verification file).
    state = await settingsState(adminTab);
    assert.ok(flow.code, 'the console sent the browser back with a code');
    assert.deepEqual(state.notices, ['notice-success: Connected to Samplit. The snippet is now on your pages.', `notice-success: Domain verified: ${WP_HOST}.`],
      JSON.stringify(state.notices));
    assert.equal(state.rows.Status, 'Connected');
    assert.equal(state.rows['Edge URL'], publicEdge());
    assert.equal(state.rows['Server secret'], 'set');
    assert.equal(state.rows.Domain, `${WP_HOST} (verified)`);
    mkdirSync(dirname(ADMIN_SCREENSHOT), { recursive: true });
    await adminTab.screenshot({ path: ADMIN_SCREENSHOT, fullPage: true });

    // What the plugin stored: the site key and edge URL; the secrets non-autoloaded and
    // shown nowhere on the page.
    const stored = wp.eval(`return array(
      'site_key' => get_option( 'samplit_site_key' ), 'edge_url' => get_option( 'samplit_edge_url' ),
      'secret' => get_option( 'samplit_server_secret' ), 'token' => get_option( 'samplit_connection_token' ),
      'verification' => get_option( 'samplit_verification_token' ), 'info' => get_option( 'samplit_connection_info' ) );`);
    assert.equal(state.rows['Site key'], stored.site_key);
    assert.equal(stored.edge_url, publicEdge());
    assert.match(stored.secret, /^ss_/);
    assert.match(stored.token, /^wpc_/);
    for (const secret of [stored.secret, stored.token]) assert.ok(!state.html.includes(secret), 'no secret in the settings page');
    assert.equal(db.sql("SELECT option_name, autoload FROM wp_options WHERE option_name IN ('samplit_server_secret','samplit_connection_token') ORDER BY option_name").stdout.trim().split('\n').slice(1).join(';'),
      'samplit_connection_token\tno;samplit_server_secret\tno');
    flow.siteKey = stored.site_key;
    flow.siteId = stored.info.site_id;
    flow.connectionToken = stored.token;
    flow.verification = stored.verification;

    // The control plane's side: a new site of the user's organisation holding the host,
    // verified by the file method; the file answers the token.
    const [name, siteKey] = sql(`SELECT name, site_key FROM sites WHERE id = ${q(flow.siteId)}`).split('|');
    assert.equal(siteKey, stored.site_key);
    assert.equal(name, WP_HOST);
    assert.equal(sql(`SELECT host || '|' || status || '|' || method FROM site_domains WHERE site_id = ${q(flow.siteId)}`), `${WP_HOST}|verified|http_file`);
    const file = await wpRequest(phpServer.port, WP_HOST, 'GET', '/.well-known/samplit-verification.txt');
    assert.equal(file.status, 200);
    assert.equal(file.body, stored.verification);
    assert.deepEqual(pageErrors, []);

    // "Verify domain" again: the control plane fetches the file once more.
    const again = await clickSettingsButton(adminTab, 'Verify domain');
    assert.deepEqual(again.notices, [`notice-success: Domain verified: ${WP_HOST}.`], JSON.stringify(again.notices));
    assert.equal(again.rows.Domain, `${WP_HOST} (verified)`);
  });

  const login = await cp('/api/v1/auth/login', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: SAMPLIT_USER.email, password: SAMPLIT_USER.password }),
  });
  const tokens = await body(login);
  assert.equal(login.status, 200, JSON.stringify(tokens));
  flow.bearer = tokens.access_token;
  const sites = await api('GET', '/sites');
  assert.deepEqual(sites.map((s) => s.id), [flow.siteId]);
  // A connected site has no currency yet: the first event naming one fixes it
  // (migrations/0018); the store's orders are in EUR.
  assert.equal(sql(`SELECT coalesce(currency, 'NULL') FROM sites WHERE id = ${q(flow.siteId)}`), 'NULL');
  flow.currency = 'EUR';
});

test('the code is single-use; the connection token reads the connection', async () => {
  assert.ok(flow.code && flow.connectionToken, 'needs the connection');
  const again = await cp('/api/v1/wordpress/exchange', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: flow.code, site_url: HOME }),
  });
  const b = await body(again);
  assert.equal(again.status, 400, JSON.stringify(b));
  assert.equal(b.code, 'invalid_code');

  const res = await wpApi('GET', 'connection', flow.connectionToken);
  const c = await body(res);
  assert.equal(res.status, 200, JSON.stringify(c));
  assert.deepEqual({ site: c.site, host: c.host, domain_status: c.domain_status, experiments: c.experiments },
    { site: { id: flow.siteId, name: WP_HOST, site_key: flow.siteKey }, host: WP_HOST, domain_status: 'verified', experiments: [] });
  const bad = await wpApi('GET', 'connection', 'wpc_not-a-token');
  assert.equal(bad.status, 401);
});

test('the snippet is the first script in the front page\'s <head>, not on wp-admin', async () => {
  assert.ok(flow.siteKey, 'needs the connection');
  const page = await wpRequest(phpServer.port, WP_HOST, 'GET', '/');
  const head = page.body.slice(0, page.body.indexOf('</head>'));
  const tag = `<script src="${publicEdge()}/v1/samplit.js?site=${flow.siteKey}" data-site-key="${flow.siteKey}" data-first-party-cookie="samplit_vid"></script>`;
  assert.ok(head.includes(tag), `the snippet in <head>: ${head}`);
  assert.equal(head.indexOf('<script'), head.indexOf(tag), 'before every other script (anti-flicker)');
  assert.doesNotMatch(tag, /\b(async|defer)\b/);
  const admin = await adminTab.content();
  assert.ok(!admin.includes('/v1/samplit.js'), 'not on wp-admin pages');
});

test('an experiment runs; "Test connection" lists it; visitors in Chromium get an arm and the first-party cookie', async () => {
  assert.ok(flow.bearer, 'needs the connection');
  const created = await api('POST', `/sites/${flow.siteId}/experiments`, headlineExperiment('WordPress headline', VARIANT_TEXT));
  flow.experiment = await api('POST', `/experiments/${created.id}/start`, {}, { 'if-match': `"${created.version}"` });
  assert.equal(flow.experiment.status, 'running');
  await waitFor(async () => {
    const pubs = await api('GET', `/sites/${flow.siteId}/publications`);
    return pubs.some((p) => p.status === 'published' && p.weights.some((w) => w.experiment_id === created.id));
  }, { timeoutMs: 30_000, what: 'a publication that reached the edge' });

  // "Test connection" in wp-admin: the control plane's view and the edge's snippet.
  const state = await clickSettingsButton(adminTab, 'Test connection');
  assert.deepEqual(state.notices, ['notice-success: The Samplit control plane answered.',
    `notice-success: The edge serves the snippet (${publicEdge()}/v1/samplit.js?site=${flow.siteKey} answered 200).`], JSON.stringify(state.notices));
  const listed = await adminTab.$$eval('.samplit-experiments li', (lis) => lis.map((li) => li.textContent));
  assert.deepEqual(listed, [`WordPress headline — running (id ${created.id})`]);

  let screenshot = false;
  for (let i = 0; i < 16 && (flow.visitors.length < 2 || new Set(flow.visitors.map((v) => v.arm)).size < 2); i++) {
    const context = await newContext({ userAgent: BROWSER_UA });
    const tab = await context.newPage();
    tab.setDefaultTimeout(20_000);
    const errors = [];
    tab.on('pageerror', (e) => errors.push(String(e)));
    await tab.goto(`${HOME}/`);
    const first = await tab.evaluate(() => document.head.querySelector('script')?.getAttribute('src'));
    assert.equal(first, `${publicEdge()}/v1/samplit.js?site=${flow.siteKey}`, 'the snippet first in <head>');
    const visitor = await waitFor(() => tab.evaluate(() => window.samplit?.visitor ?? null), { timeoutMs: 10_000, what: `visitor ${i}'s id from the edge` });
    await tab.waitForFunction(() => document.readyState === 'complete');
    const cookie = (await context.cookies(`${HOME}/`)).find((c) => c.name === 'samplit_vid');
    assert.equal(cookie?.value, visitor, 'the snippet keeps the id in the first-party cookie samplit_vid');
    const headline = await tab.textContent('#headline');
    assert.ok(headline === VARIANT_TEXT || headline === 'Original headline', headline);
    const arm = headline === VARIANT_TEXT ? 'Free shipping' : 'Control';
    if (arm === 'Free shipping' && !screenshot) {
      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await tab.screenshot({ path: SCREENSHOT, fullPage: true });
      screenshot = true;
    }
    assert.deepEqual(errors, [], 'no uncaught exception on the front page');
    flow.visitors.push({ visitor, arm, context, tab });
  }
  assert.ok(new Set(flow.visitors.map((v) => v.arm)).size === 2, `both arms among ${flow.visitors.length} visitors: ${flow.visitors.map((v) => v.arm)}`);
  assert.ok(screenshot, 'a visitor saw the variant');
  await waitForResults(expectedByArm(), 'the visitors in the results');
});

/** Checkout in the visitor's own browser (their samplit_vid cookie goes along). */
async function checkout(v, total) {
  const order = await v.tab.evaluate(async ({ secret, total: t, currency }) => {
    const r = await fetch('/?rest_route=/samplit-e2e/v1/checkout', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-samplit-e2e-secret': secret },
      body: JSON.stringify({ total: t, currency }),
    });
    return { status: r.status, body: await r.json() };
  }, { secret: E2E_SECRET, total, currency: flow.currency });
  assert.equal(order.status, 200, JSON.stringify(order));
  assert.equal(order.body.meta._samplit_vid, v.visitor, `the visitor id captured into the order at checkout: ${JSON.stringify(order.body)}`);
  const record = { id: order.body.id, total: order.body.total, arm: v.arm, visitor: v.visitor, delivered: false };
  flow.orders.push(record);
  return record;
}

test('a WooCommerce payment arrives once in the results with its revenue (payment_complete, processing and completed)', async () => {
  assert.ok(flow.visitors.length, 'needs the visitors');
  const buyer = flow.visitors.find((v) => v.arm === 'Free shipping');
  const order = await checkout(buyer, 42.5);
  // The gateway's callback: payment_complete → processing (+ woocommerce_payment_complete).
  const paid = await shop('POST', `/orders/${order.id}/pay`);
  assert.equal(paid.status, 'processing');
  assert.match(String(paid.meta._samplit_sent ?? ''), /^\d+$/, `the edge accepted it: ${JSON.stringify(paid.meta)}`);
  assert.equal(paid.meta._samplit_attempts, undefined);
  assert.equal(orderCalls(order.id).length, 1, 'one signed call for payment_complete and processing together');
  assertOrderCall(orderCalls(order.id)[0], order);
  order.delivered = true;
  const expected = expectedByArm();
  const results = await waitForResults(expected, 'the purchase in the results');
  assert.equal(results.currency, flow.currency);
  assert.equal(results.arms['Free shipping'].revenue, 42.5);

  // Later status hooks (completed) and a repeated payment hook send nothing more.
  const done = await shop('POST', `/orders/${order.id}/status`, { status: 'completed' });
  assert.equal(done.status, 'completed');
  assert.equal(done.meta._samplit_sent, paid.meta._samplit_sent);
  wp.eval(`do_action( 'woocommerce_payment_complete', ${order.id}, 'again' ); do_action( 'woocommerce_order_status_processing', ${order.id}, wc_get_order( ${order.id} ) ); return true;`);
  assert.equal(orderCalls(order.id).length, 1, 'a sent order is not sent again');
  // The same signed call again, as a resend after a timeout whose first request did arrive
  // would be: accepted, and deduplicated by the event id wc-order:<id>.
  const sent = orderCalls(order.id)[0];
  const resend = await fetch(`${worker.base}${sent.path}`, {
    method: 'POST', body: sent.body,
    headers: { 'content-type': 'application/json', 'x-samplit-timestamp': sent.timestamp, 'x-samplit-signature': sent.signature },
  });
  assert.equal(resend.status, 202, await resend.text());
  await sleep(4000); // two queue batch intervals: a duplicate would have arrived by now
  assert.deepEqual((await resultsByArm()).arms, expected, 'counted once');
});

test('edge down: the paid order is queued for WP-Cron; back up, the cron delivers it once', async () => {
  assert.ok(flow.orders.length, 'needs the first purchase');
  const buyer = flow.visitors.find((v) => v.arm === 'Control');
  const order = await checkout(buyer, 19.99);
  const before = expectedByArm();

  await edgeProxy.close(); // connection refused at the edge URL
  try {
    const paid = await shop('POST', `/orders/${order.id}/pay`);
    assert.equal(paid.status, 'processing');
    assert.equal(paid.meta._samplit_sent, undefined, JSON.stringify(paid.meta));
    assert.equal(paid.meta._samplit_attempts, '1', JSON.stringify(paid.meta));
    assert.ok(paid.meta._samplit_error, 'the failure is recorded');
    const next = wp.eval(`return wp_next_scheduled( 'samplit_retry_order', array( ${order.id} ) );`);
    assert.ok(Number.isInteger(next) && next > Date.now() / 1000, `a retry is scheduled: ${next}`);
    // Another paid-status hook while queued: no second attempt, still one retry.
    await shop('POST', `/orders/${order.id}/status`, { status: 'completed' });
    assert.equal((await shop('GET', `/orders/${order.id}`)).meta._samplit_attempts, '1');
    assert.equal(wp.eval(`$n = 0; foreach ( _get_cron_array() as $hooks ) { foreach ( $hooks['samplit_retry_order'] ?? array() as $e ) { $n += $e['args'] === array( ${order.id} ) ? 1 : 0; } } return $n;`), 1);
    await sleep(3000);
    assert.deepEqual((await resultsByArm()).arms, before, 'nothing arrived while the edge was down');
  } finally {
    edgeProxy = await listening(edgeProxyServer(), edgePort);
  }

  // WP-Cron's time comes (the retry is due), and wp-cron.php runs it.
  wp.eval(`$cron = _get_cron_array(); $out = array();
    foreach ( $cron as $ts => $hooks ) { foreach ( $hooks as $hook => $events ) {
      $at = 'samplit_retry_order' === $hook ? time() - 1 : $ts; $out[ $at ][ $hook ] = array_merge( $out[ $at ][ $hook ] ?? array(), $events ); } }
    ksort( $out ); _set_cron_array( $out ); return true;`);
  const ran = await wpRequest(phpServer.port, WP_HOST, 'GET', '/wp-cron.php');
  assert.equal(ran.status, 200, ran.body);
  await waitFor(async () => (await shop('GET', `/orders/${order.id}`)).meta._samplit_sent, { timeoutMs: 20_000, what: 'the retry delivered' });
  assert.equal(wp.eval(`return wp_next_scheduled( 'samplit_retry_order', array( ${order.id} ) );`), false, 'no retry left');
  assert.equal(orderCalls(order.id).length, 1, 'the retry: one call, nothing reached the edge while it was down');
  assertOrderCall(orderCalls(order.id)[0], order);
  order.delivered = true;
  const expected = expectedByArm();
  const results = await waitForResults(expected, 'the queued purchase in the results');
  assert.equal(results.arms.Control.revenue, 19.99);
  // Cron again, and the paid hooks again: nothing more.
  assert.equal((await wpRequest(phpServer.port, WP_HOST, 'GET', '/wp-cron.php')).status, 200);
  await shop('POST', `/orders/${order.id}/status`, { status: 'completed' });
  await sleep(4000);
  assert.deepEqual((await resultsByArm()).arms, expected, 'delivered once');
  assert.equal(orderCalls(order.id).length, 1);
});

test('Disconnect revokes the connection on both sides: the token is refused (401), the snippet gone', async () => {
  assert.ok(flow.connectionToken, 'needs the connection');
  const state = await clickSettingsButton(adminTab, 'Disconnect');
  assert.deepEqual(state.notices, ['notice-success: Disconnected from Samplit. The snippet is no longer printed.'], JSON.stringify(state.notices));
  assert.equal(state.rows.Status, 'Not connected');
  for (const [method, name] of [['GET', 'connection'], ['POST', 'verify'], ['POST', 'disconnect']]) {
    const r = await wpApi(method, name, flow.connectionToken);
    const b = await body(r);
    assert.equal(r.status, 401, `${method} ${name} after Disconnect: ${r.status} ${JSON.stringify(b)}`);
    assert.equal(b.code, 'invalid_connection_token');
  }
  assert.deepEqual(wp.eval("return array_map( function ( $o ) { return get_option( $o, null ); }, array( 'samplit_site_key', 'samplit_edge_url', 'samplit_server_secret', 'samplit_connection_token', 'samplit_verification_token' ) );"),
    [null, null, null, null, null]);
  const page = await wpRequest(phpServer.port, WP_HOST, 'GET', '/');
  assert.doesNotMatch(page.body, /samplit\.js/);
  assert.equal((await wpRequest(phpServer.port, WP_HOST, 'GET', '/.well-known/samplit-verification.txt')).status, 404);
});

test('the connect API by itself: connect (admin) → exchange (single use, bound to the site URL) → connection → disconnect', async () => {
  assert.ok(flow.bearer && flow.siteId, 'needs the account and the site');
  const connect = (data, auth = true) => cp('/api/v1/wordpress/connect', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${flow.bearer}` } : {}) },
    body: JSON.stringify(data),
  });
  const exchange = (code, siteUrl = HOME) => cp('/api/v1/wordpress/exchange', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code, site_url: siteUrl }),
  });
  const state = `e2e-${randomBytes(8).toString('hex')}`;
  const good = { site_url: HOME, return_url: SETTINGS, state, site_id: flow.siteId };

  assert.equal((await connect(good, false)).status, 401, 'connect needs a signed-in admin');
  for (const [what, data] of [
    ['a return URL on another origin', { ...good, return_url: 'https://evil.example/wp-admin/' }],
    ['a state too short', { ...good, state: 'short' }],
    ['a site URL with a query', { ...good, site_url: `${HOME}/?x=1` }],
  ]) {
    const r = await connect(data);
    assert.equal(r.status, 422, `${what}: ${r.status} ${JSON.stringify(await body(r))}`);
  }

  const codeOf = async () => {
    const r = await connect(good);
    const b = await body(r);
    assert.equal(r.status, 201, JSON.stringify(b));
    assert.equal(b.site_id, flow.siteId);
    const u = new URL(b.redirect_url);
    assert.equal(`${u.origin}${u.pathname}?page=${u.searchParams.get('page')}`, SETTINGS);
    assert.equal(u.searchParams.get('state'), state);
    assert.ok(u.searchParams.get('code'));
    return u.searchParams.get('code');
  };

  // A code presented for another site URL is refused, and spent.
  const spent = await codeOf();
  for (const siteUrl of ['https://other.localhost', HOME]) {
    const r = await exchange(spent, siteUrl);
    const b = await body(r);
    assert.equal(r.status, 400, `${siteUrl}: ${JSON.stringify(b)}`);
    assert.equal(b.code, 'invalid_code');
  }

  const code = await codeOf();
  const r = await exchange(code);
  const x = await body(r);
  assert.equal(r.status, 200, JSON.stringify(x));
  assert.deepEqual(Object.keys(x).sort(), ['connection_token', 'edge_url', 'host', 'server_secret', 'site_id', 'site_key', 'verification']);
  assert.equal(x.site_id, flow.siteId);
  assert.equal(x.site_key, flow.siteKey);
  assert.match(x.server_secret, /^ss_/);
  assert.equal(x.edge_url, publicEdge());
  assert.match(x.connection_token, /^wpc_/);
  assert.equal(x.host, WP_HOST);
  assert.deepEqual(x.verification, { token: flow.verification, path: '/.well-known/samplit-verification.txt' });
  assert.match(r.headers.get('cache-control') ?? '', /no-store/);
  const reused = await exchange(code);
  assert.equal(reused.status, 400);
  assert.equal((await body(reused)).code, 'invalid_code');

  const c = await wpApi('GET', 'connection', x.connection_token);
  const cb = await body(c);
  assert.equal(c.status, 200, JSON.stringify(cb));
  assert.deepEqual(cb.experiments.map((e) => [e.id, e.status]), [[flow.experiment.id, 'running']]);
  assert.equal((await wpApi('POST', 'disconnect', x.connection_token)).status, 204);
  assert.equal((await wpApi('GET', 'connection', x.connection_token)).status, 401);
});

test('the WordPress debug log holds no PHP warning, notice or deprecation from the plugin', () => {
  const problems = ourPhpProblems();
  assert.deepEqual(problems, [], problems.join('\n'));
});
