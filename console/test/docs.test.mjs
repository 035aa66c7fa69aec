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
// The server, browser and page watch are console/test/harness.mjs's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SCREENSHOTS, launchBrowser, openPage, startServer } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** /docs in a fresh context, with the harness's watch (see harness.mjs `openPage`). */
async function openDocs(contextOptions, signIn) {
  // 401: the page asks whether a console session is signed in (none, unless `signIn`).
  const { context, page, check } = await openPage(browser, server.base, contextOptions, { allowStatus: [401] });
  if (signIn) await signIn(context);
  const res = await page.goto(`${server.base}/docs`, { waitUntil: 'load' });
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /script-src 'self';/);
  // The operations are rendered from the fetched document.
  await page.locator('.opblock-tag[data-tag="sites"]').waitFor({ timeout: 30_000 });
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
    // The bearer scheme's form (the console's cookie scheme is listed too).
    const bearer = dialog.locator('form').filter({ hasText: 'bearer (http, Bearer)' });
    await bearer.locator('input').first().fill(token);
    await bearer.locator('.auth-btn-wrapper .btn.authorize').click();
    await dialog.locator('.auth-btn-wrapper .btn-done').first().click();
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

test('signed into the console, Try it out works with the session cookie, CSRF token included', async () => {
  const email = `docs-cookie-${randomBytes(4).toString('hex')}@example.com`;
  const { context, page, check } = await openDocs({ viewport: { width: 1280, height: 800 } }, async (ctx) => {
    const res = await ctx.request.post(`${server.base}/api/v1/auth/console/register`, {
      data: { email, password: 'correct horse battery', name: 'Cookie', organization_name: 'Cookie Org' },
    });
    assert.equal(res.status(), 201, await res.text());
  });
  try {
    const execute = async (method, path) => {
      const op = operation(page, method, path);
      await op.locator('.opblock-summary-control').click();
      await op.locator('.try-out__btn').click();
      await op.locator('.btn.execute').click();
      const live = op.locator('.live-responses-table');
      await live.waitFor({ timeout: 15_000 });
      return { op, status: (await live.locator('.response .response-col_status').first().innerText()).trim() };
    };
    // No "Authorize": the cookie is the credential.
    const me = await execute('get', '/auth/me');
    assert.equal(me.status, '200');
    assert.match(await me.op.locator('.response-col_description .highlight-code').first().innerText(), new RegExp(email.replace(/[.]/g, '\\.')));
    // A state change: the interceptor sent the session's CSRF token, or this would be 403.
    const out = await execute('post', '/auth/logout');
    assert.equal(out.status, '204');
    const after = await context.request.get(`${server.base}/api/v1/auth/me`);
    assert.equal(after.status(), 401, 'the session ended');
    await check();
  } finally {
    await context.close();
  }
});
