// /docs in a real browser: headless Chromium from Debian's packages (/usr/bin/chromium;
// edge-worker/test/install-chromium.sh installs it), driven by playwright-core (never
// `npx playwright install`), against the real control plane: `samplit serve` (the debug
// binary `cargo xtask test` builds) on a fresh PostgreSQL database this test creates and
// drops.
//
// It proves that Swagger UI, served from the binary under the page's strict
// Content-Security-Policy, renders the operations; that nothing is blocked by the policy
// (no `securitypolicyviolation` event, no console error) and nothing is requested from
// another origin; and that "Authorize" with an access token from /auth/register makes
// "Try it out" on GET /auth/me answer 200 with that user's email. Screenshots (desktop
// 1280×800, phone 390×844) go to target/screenshots/docs-*.png.
//
//   node --test console/test/docs.test.mjs
//
// Environment: DATABASE_URL (a server where it may create a database; default the local
// trust-auth server), SAMPLIT_BIN (default target/debug/samplit, or under
// CARGO_TARGET_DIR), SAMPLIT_CHROMIUM (default /usr/bin/chromium).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const CHROMIUM = process.env.SAMPLIT_CHROMIUM ?? '/usr/bin/chromium';
const SERVER_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
// Cargo's target directory: CARGO_TARGET_DIR (relative to the workspace root) or target/.
const BIN =
  process.env.SAMPLIT_BIN ??
  join(resolve(root, process.env.CARGO_TARGET_DIR || 'target'), 'debug', 'samplit');
const SCREENSHOTS = join(root, 'target', 'screenshots');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let workdir;
let database; // { name, url }
let server; // { child, base, log }
let browser;

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Runs one SQL statement on the server of DATABASE_URL with psql. */
function psql(sql) {
  const out = spawnSync('psql', [SERVER_URL, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (out.status !== 0) throw new Error(`psql ${sql}: ${out.error ?? out.stderr}`);
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

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run edge-worker/test/install-chromium.sh`);
  if (!existsSync(BIN)) throw new Error(`no control plane binary at ${BIN}: cargo build -p samplit-control-plane --bin samplit`);
  workdir = mkdtempSync(join(tmpdir(), 'samplit-docs-test-'));
  const name = `samplit_docs_${randomBytes(6).toString('hex')}`;
  psql(`CREATE DATABASE "${name}"`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  database = { name, url: url.toString() };

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = join(workdir, 'samplit.log');
  const fd = openSync(log, 'w');
  // Only what we set: a developer's SAMPLIT_* variables must not leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SAMPLIT_')));
  const child = spawn(BIN, ['serve'], {
    cwd: workdir,
    stdio: ['ignore', fd, fd],
    env: {
      ...env,
      DATABASE_URL: database.url,
      SAMPLIT_LISTEN: `127.0.0.1:${port}`,
      SAMPLIT_JWT_SECRET: randomBytes(32).toString('hex'),
      SAMPLIT_INGEST_SECRET: randomBytes(32).toString('hex'),
      RUST_LOG: 'warn',
    },
  });
  server = { child, base, log };
  await waitReady(base, child, log);

  ({ chromium: browser } = await import('playwright-core'));
  browser = await browser.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
  mkdirSync(SCREENSHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (server && server.child.exitCode === null) {
    const exited = new Promise((ok) => server.child.once('exit', ok));
    server.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((ok) => setTimeout(ok, 10_000))]);
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  }
  if (database) psql(`DROP DATABASE IF EXISTS "${database.name}" WITH (FORCE)`);
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

/**
 * A page in a fresh context, recording what must not happen: CSP violations (the
 * `securitypolicyviolation` event, listened for before any page script runs), console
 * errors, uncaught exceptions, and requests to any other origin.
 */
async function openDocs(contextOptions) {
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
    if (msg.type() === 'error') problems.console.push(msg.text());
  });
  page.on('pageerror', (e) => problems.exceptions.push(String(e)));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.console.push(`(${res.status()} for ${res.url()})`);
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(`${server.base}/`) && !req.url().startsWith('data:')) {
      problems.elsewhere.push(req.url());
    }
  });
  const res = await page.goto(`${server.base}/docs`, { waitUntil: 'load' });
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /script-src 'self';/);
  // The operations are rendered from the fetched document.
  await page.locator('.opblock-tag[data-tag="sites"]').waitFor({ timeout: 30_000 });
  const check = async () => {
    assert.deepEqual(await page.evaluate(() => window.__violations), [], 'no CSP violation');
    assert.deepEqual(problems.console, [], 'no console error');
    assert.deepEqual(problems.exceptions, [], 'no uncaught exception');
    assert.deepEqual(problems.elsewhere, [], 'nothing requested from another origin');
  };
  return { context, page, check };
}

/** The operation block of `method path` (Swagger UI marks the path with data-path). */
function operation(page, method, path) {
  return page.locator(`.opblock.opblock-${method}`).filter({
    has: page.locator(`.opblock-summary-path[data-path="${path}"]`),
  });
}

test('desktop: the operations render, and Authorize + Try it out call the API as the user', async () => {
  const email = `docs-${randomBytes(4).toString('hex')}@example.com`;
  const registered = await fetch(`${server.base}/api/v1/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: 'correct horse battery', name: 'Docs Tester', organization_name: 'Docs Org' }),
  });
  assert.equal(registered.status, 201, await registered.clone().text());
  const { access_token: token } = await registered.json();
  assert.ok(token);

  const { context, page, check } = await openDocs({ viewport: { width: 1280, height: 800 } });
  try {
    await page.locator('.opblock-tag[data-tag="auth"]').waitFor();
    assert.equal(await operation(page, 'post', '/sites').count(), 1, 'POST /sites is listed');
    assert.equal(await operation(page, 'get', '/auth/me').count(), 1, 'GET /auth/me is listed');
    // The document's server: try-it calls go to this origin under /api/v1.
    assert.equal(await page.locator('.servers select option').first().getAttribute('value'), '/api/v1');
    await page.screenshot({ path: join(SCREENSHOTS, 'docs-desktop.png') });

    // Authorize with the access token (the bearer scheme the document declares).
    await page.locator('.auth-wrapper .btn.authorize').click();
    const dialog = page.locator('.dialog-ux .modal-ux');
    await dialog.waitFor();
    await dialog.locator('input').first().fill(token);
    await dialog.locator('.auth-btn-wrapper .btn.authorize').click();
    await dialog.locator('.auth-btn-wrapper .btn-done').click();
    await dialog.waitFor({ state: 'detached' });

    // GET /auth/me: Try it out, Execute.
    const me = operation(page, 'get', '/auth/me');
    await me.locator('.opblock-summary-control').click();
    await me.locator('.try-out__btn').click();
    await me.locator('.btn.execute').click();
    const live = me.locator('.live-responses-table');
    await live.waitFor({ timeout: 15_000 });
    assert.equal((await live.locator('.response .response-col_status').first().innerText()).trim(), '200');
    const body = await live.locator('.response-col_description .highlight-code').first().innerText();
    assert.match(body, new RegExp(email.replace(/[.]/g, '\\.')), 'the response shows the user');
    // The curl example Swagger UI builds carries the token: the call was authenticated.
    assert.match(await me.locator('.curl-command').innerText(), /Authorization: Bearer/);
    await me.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SCREENSHOTS, 'docs-desktop-try-it.png') });
    await check();
  } finally {
    await context.close();
  }
});

test('phone: the reference renders at 390×844 under the same policy', async () => {
  const { context, page, check } = await openDocs({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  try {
    assert.equal(await operation(page, 'post', '/sites').count(), 1, 'POST /sites is listed');
    // Nothing wider than the screen: the page does not scroll sideways.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    await page.screenshot({ path: join(SCREENSHOTS, 'docs-phone.png') });
    await check();
    // The watch is live and the policy enforced: an inline <style> is refused, and reported.
    const reported = await page.evaluate(async () => {
      const style = document.createElement('style');
      style.textContent = 'body { display: none }';
      document.head.append(style);
      await new Promise((ok) => setTimeout(ok, 200));
      return window.__violations;
    });
    assert.equal(reported.length, 1, String(reported));
    assert.match(reported[0], /^style-src/);
    assert.notEqual(await page.evaluate(() => getComputedStyle(document.body).display), 'none');
  } finally {
    await context.close();
  }
});
