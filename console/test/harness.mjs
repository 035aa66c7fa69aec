// What the console's browser tests share: the real control plane (`samplit serve`, the
// debug binary `cargo xtask test` builds) on a fresh PostgreSQL database created and
// dropped here, Debian's Chromium (/usr/bin/chromium; edge-worker/test/install-chromium.sh)
// driven by playwright-core (never `npx playwright install`), and pages that record what
// must not happen: CSP violations, console errors, failed responses, uncaught exceptions,
// requests to another origin.
//
// Environment: DATABASE_URL (a server where it may create a database; default the local
// trust-auth server), SAMPLIT_BIN (default target/debug/samplit, or under
// CARGO_TARGET_DIR), SAMPLIT_CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');
const CHROMIUM = process.env.SAMPLIT_CHROMIUM ?? '/usr/bin/chromium';
const SERVER_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
// Cargo's target directory: CARGO_TARGET_DIR (relative to the workspace root) or target/.
const BIN =
  process.env.SAMPLIT_BIN ??
  join(resolve(root, process.env.CARGO_TARGET_DIR || 'target'), 'debug', 'samplit');
export const SCREENSHOTS = join(root, 'target', 'screenshots');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Runs one SQL statement on the server of DATABASE_URL with psql; its output. */
export function psql(sql, url = SERVER_URL) {
  const out = spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (out.status !== 0) throw new Error(`psql ${sql}: ${out.error ?? out.stderr}`);
  return out.stdout.trim();
}

async function waitReady(base, child, log) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`samplit serve exited (${child.exitCode}):\n${readFileSync(log, 'utf8')}`);
    }
    try {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`samplit serve not ready in 60 s:\n${readFileSync(log, 'utf8')}`);
}

/**
 * Starts `samplit serve` on a new database with `env` added (an object, or a function of
 * the server's base URL that returns one) on `port` (default: a free one);
 * `{ base, databaseUrl, stop }`.
 */
export async function startServer(env = {}, { port: wanted } = {}) {
  if (!existsSync(BIN)) throw new Error(`no control plane binary at ${BIN}: cargo build -p samplit-control-plane --bin samplit`);
  const workdir = mkdtempSync(join(tmpdir(), 'samplit-console-test-'));
  const name = `samplit_console_${randomBytes(6).toString('hex')}`;
  psql(`CREATE DATABASE "${name}"`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const port = wanted ?? (await freePort());
  const base = `http://127.0.0.1:${port}`;
  const log = join(workdir, 'samplit.log');
  const fd = openSync(log, 'w');
  // Only what we set: a developer's SAMPLIT_* variables must not leak in.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SAMPLIT_')));
  const child = spawn(BIN, ['serve'], {
    cwd: workdir,
    stdio: ['ignore', fd, fd],
    env: {
      ...inherited,
      DATABASE_URL: url.toString(),
      SAMPLIT_LISTEN: `127.0.0.1:${port}`,
      SAMPLIT_JWT_SECRET: randomBytes(32).toString('hex'),
      SAMPLIT_INGEST_SECRET: randomBytes(32).toString('hex'),
      RUST_LOG: 'warn',
      ...(typeof env === 'function' ? env(base) : env),
    },
  });
  await waitReady(base, child, log);
  return {
    base,
    databaseUrl: url.toString(),
    log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.once('exit', ok));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((ok) => setTimeout(ok, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      rmSync(workdir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run edge-worker/test/install-chromium.sh`);
  const { chromium } = await import('playwright-core');
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
}

/**
 * A page in a fresh context of `browser`, recording what must not happen: CSP violations
 * (the `securitypolicyviolation` event, listened for before any page script runs),
 * console errors, failed responses (except the statuses listed in `allowStatus`),
 * uncaught exceptions, and requests to any origin but `base`. `check()` asserts none
 * happened.
 */
export async function openPage(browser, base, contextOptions = {}, { allowStatus = [] } = {}) {
  const context = await browser.newContext(contextOptions);
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  const problems = { console: [], exceptions: [], elsewhere: [] };
  page.on('console', (msg) => {
    // A failed response is reported below (or allowed); the browser's own line about it is not news.
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) problems.console.push(msg.text());
  });
  page.on('pageerror', (e) => problems.exceptions.push(String(e)));
  page.on('response', (res) => {
    if (res.status() >= 400 && !allowStatus.includes(res.status())) problems.console.push(`(${res.status()} for ${res.url()})`);
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(`${base}/`) && !req.url().startsWith('data:')) {
      problems.elsewhere.push(req.url());
    }
  });
  const check = async () => {
    assert.deepEqual(await page.evaluate(() => window.__violations), [], 'no CSP violation');
    assert.deepEqual(problems.console, [], 'no console error');
    assert.deepEqual(problems.exceptions, [], 'no uncaught exception');
    assert.deepEqual(problems.elsewhere, [], 'nothing requested from another origin');
  };
  return { context, page, check, problems };
}

const AXE = join(root, 'node_modules', 'axe-core', 'axe.min.js');

/** axe-core on the current page (run through the DevTools protocol, so the page's CSP
 *  does not apply to it): no serious or critical violation. */
export async function accessible(page, what) {
  await page.evaluate(readFileSync(AXE, 'utf8'));
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `accessibility of ${what}`);
}

/** Resizes `page` to a phone's width (390×844), reloads, waits for `locator`, and checks
 *  that the page does not scroll sideways and that `locator` lies within the screen. */
export async function onPhone(page, locator, what) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await locator.waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${what}: the page is ${overflow}px wider than the phone`);
  const box = await locator.boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${what} fits the phone: ${JSON.stringify(box)}`);
}

/** Sends `items` to `base`'s signed ingest endpoint (`POST /api/v1/ingest`, HMAC-SHA256
 *  of `timestamp.body` with `secret`), as the edge's queue consumer does; asserts 200. */
export async function signedIngest(base, secret, items) {
  const body = JSON.stringify({ batch_id: randomUUID(), items });
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
  const res = await fetch(`${base}/api/v1/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-samplit-timestamp': ts, 'x-samplit-signature': `sha256=${sig}` },
    body,
  });
  assert.equal(res.status, 200, await res.text());
}

/**
 * The body of a one-element experiment on `#headline`: a control and a variant that sets
 * its text to `variantText`, half and half, with a revenue goal `purchase` (the plugins'
 * and the Shopify app's purchase events). For the integrations' end-to-end tests.
 */
export function headlineExperiment(name, variantText) {
  return {
    name,
    kind: 'single',
    coverage: 1,
    allocator: { kind: 'fixed_split' },
    elements: [{
      name: 'Headline',
      selector: '#headline',
      variants: [
        { name: 'Control', is_control: true, weight: 1, changes: [] },
        { name: 'Free shipping', is_control: false, weight: 1, changes: [{ selector: '#headline', action: { type: 'set_text', text: variantText } }] },
      ],
    }],
    goals: [{ name: 'purchase', metric: 'revenue', primary: true, trigger: { type: 'custom', event: 'purchase' } }],
  };
}

/**
 * The body of a 2 × 2 factorial experiment: element Headline (`#headline`, H0 control and
 * H1) and element Button (`#cta`, B0 control and B1), equal weights, with `goals`.
 */
export function factorialExperiment(name, goals) {
  return {
    name,
    kind: 'factorial',
    coverage: 1,
    allocator: { kind: 'fixed_split' },
    elements: [
      { name: 'Headline', selector: '#headline', variants: [{ name: 'H0', is_control: true, weight: 1 }, { name: 'H1', weight: 1 }] },
      { name: 'Button', selector: '#cta', variants: [{ name: 'B0', is_control: true, weight: 1 }, { name: 'B1', weight: 1 }] },
    ],
    goals,
  };
}

/** The console session's CSRF token (the signed-in `page`'s cookie). */
export async function csrfToken(page, base) {
  const res = await page.request.get(`${base}/api/v1/auth/console/session`);
  assert.equal(res.status(), 200, await res.text());
  return (await res.json()).csrf_token;
}

/** Calls `base`'s API as the signed-in `page` (its session cookie and CSRF token);
 *  asserts a 2xx and returns the parsed body (undefined when empty). */
export async function apiCall(page, base, method, path, data, headers = {}) {
  const res = await page.request.fetch(`${base}/api/v1${path}`, {
    method,
    data,
    headers: { 'x-csrf-token': await csrfToken(page, base), ...headers },
  });
  const text = await res.text();
  assert.ok(res.ok(), `${method} ${path}: ${res.status()} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Creates an account through the console's sign-up form and waits for the first page
 *  after it (`landing`: "Get started" when no mail confirmation is asked). */
export async function signUp(page, base, { name, org, email, password, landing = 'Get started' }) {
  await page.goto(`${base}/app`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByRole('button', { name: 'New to Samplit? Create an account' }).click();
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Company or team name').fill(org);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByRole('heading', { name: landing }).waitFor();
}

/** The control plane as the console's browser tests run it: plain http on loopback (the
 *  development cookie, no Secure), a fresh snapshot secret (server secrets derive from
 *  it), `SAMPLIT_INGEST_SECRET` = `ingestSecret` when given, and an edge URL where
 *  nothing listens (no Worker here: publications fail, and show so); `env` adds to or
 *  overrides that. Stop it with `stop()`. */
export async function startConsoleServer({ ingestSecret, env = {} } = {}) {
  return startServer({
    SAMPLIT_DEV_INSECURE_COOKIES: 'true',
    ...(ingestSecret ? { SAMPLIT_INGEST_SECRET: ingestSecret } : {}),
    SAMPLIT_SNAPSHOT_SECRET: randomBytes(32).toString('hex'),
    SAMPLIT_EDGE_URL: `http://127.0.0.1:${await freePort()}`,
    ...env,
  });
}
