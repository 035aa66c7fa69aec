// The Webhooks page, in Chromium against the real control plane (console/test/harness.mjs)
// with SAMPLIT_WEBHOOK_SECRET set, the development switch on (so a receiver on loopback
// over http is allowed) and the webhook worker polling every 200 ms: a new owner adds a
// webhook pointing at a local node receiver, copies the secret shown once, sends a test,
// and sees "delivered" in the delivery log; the receiver checks the Samplit-Signature
// with that secret (HMAC-SHA256 of "<t>.<body>", recomputed here). Then the secret is
// rotated and the next test verifies only with the new one. Photographed at desktop
// (1280x800) and phone (390x844) widths (target/screenshots/webhooks-*.png), checked with
// axe-core, for CSP violations, console errors and foreign requests.
//
//   node --test console/test/webhooks.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { accessible, launchBrowser, openPage, SCREENSHOTS, signUp, startServer } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let server;
let browser;
let receiver;
const received = [];
const email = `hooks-${randomBytes(4).toString('hex')}@example.com`;

/** Whether `hit`'s Samplit-Signature is HMAC-SHA256(secret, "<t>.<body>"), t within 5 minutes. */
function signedWith(hit, secret) {
  const parts = Object.fromEntries(String(hit.headers['samplit-signature'] ?? '').split(',').map((p) => p.split('=')));
  if (!parts.t || !parts.v1) return false;
  if (Math.abs(Date.now() / 1000 - Number(parts.t)) > 300) return false;
  const want = createHmac('sha256', secret).update(`${parts.t}.`).update(hit.body).digest();
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === want.length && timingSafeEqual(given, want);
}

before(async () => {
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  server = await startServer({
    SAMPLIT_DEV_INSECURE_COOKIES: 'true',
    SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS: 'true',
    SAMPLIT_WEBHOOK_SECRET: randomBytes(32).toString('hex'),
    SAMPLIT_WEBHOOK_POLL_MS: '200',
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await new Promise((ok) => receiver?.close(ok));
});

async function shoot(page, name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the screen`);
  await accessible(page, name);
  await page.screenshot({ path: join(SCREENSHOTS, `webhooks-${name}.png`), fullPage: true });
}

/**
 * Refreshes the open delivery log until it holds `rows` deliveries and the newest says
 * `status` (10 s at most). Counting the rows matters: right after "Send a test" the log
 * may still show only the earlier, already delivered one.
 */
async function waitForStatus(page, status, rows) {
  const newest = page.getByTestId('delivery-status').first();
  for (let i = 0; i < 50; i++) {
    await page.getByTestId('deliveries-refresh').click();
    await newest.waitFor();
    const count = await page.getByTestId('delivery').count();
    if (count === rows && (await newest.textContent()) === status) return;
    await new Promise((ok) => setTimeout(ok, 200));
  }
  assert.fail(`the log never held ${rows} deliveries, the newest ${status}: ${await newest.textContent()}`);
}

test('an owner adds a webhook, sends a test, sees it delivered, and rotates the secret', async () => {
  const { page, context, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401, 422] }); // 422: the refused address, on purpose
  page.on('dialog', (d) => void d.accept());
  try {
    await signUp(page, server.base, { name: 'Wanda Webhooks', org: 'Wanda’s Shop', email, password: PASSWORD });

    await page.getByTestId('account-menu').click();
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await page.getByText('No webhook yet.').waitFor();

    // A refused address names the field.
    await page.getByLabel('URL (https)').fill('https://10.0.0.1/hook');
    await page.getByRole('button', { name: 'Add webhook' }).click();
    await page.locator('#webhook-url-error').getByText(/internal address/).waitFor();

    const url = `http://127.0.0.1:${receiver.address().port}/hook`;
    await page.getByLabel('URL (https)').fill(url);
    await page.getByLabel('Description (optional)').fill('Slack #growth');
    await page.getByRole('checkbox', { name: 'Publishing failing' }).uncheck();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const shown = page.getByTestId('shown-secret');
    await shown.waitFor();
    const secret = await shown.textContent();
    assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    await page.getByText('Copy it now: it is not shown again.', { exact: false }).waitFor();
    const hook = page.getByTestId('webhook');
    await hook.getByText(url).waitFor();
    await hook.getByText('Winner, Sample ratio mismatch, Guardrail harmed', { exact: false }).waitFor();

    // A test delivery: queued, then delivered by the worker, signed with the secret.
    await hook.getByRole('button', { name: 'Send a test' }).click();
    await page.getByTestId('deliveries').waitFor();
    await waitForStatus(page, 'delivered', 1);
    const row = page.getByTestId('delivery').first();
    await row.getByText('test', { exact: true }).waitFor();
    await row.getByRole('cell', { name: '200' }).waitFor();
    assert.equal(received.length, 1);
    assert.ok(signedWith(received[0], secret), 'the receiver verifies the signature');
    const body = JSON.parse(received[0].body);
    assert.equal(body.type, 'test');
    assert.equal(received[0].headers['samplit-event-id'], body.id);
    assert.equal(received[0].headers['user-agent'], 'Samplit-Webhooks/1');
    assert.ok(body.text.startsWith('Samplit: a test delivery'), body.text);
    await shoot(page, 'desktop');

    // Rotation: the new secret is shown; the next delivery verifies only with it.
    await hook.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByText(`New signing secret of ${url}:`).waitFor();
    const rotated = await page.getByTestId('shown-secret').textContent();
    assert.notEqual(rotated, secret);
    await hook.getByRole('button', { name: 'Send a test' }).click();
    await waitForStatus(page, 'delivered', 2);
    assert.equal(received.length, 2);
    assert.ok(signedWith(received[1], rotated), 'signed with the new secret');
    assert.ok(!signedWith(received[1], secret), 'not with the old one');
    await check();

    // The phone layout, from the same session.
    const storage = await context.storageState();
    const phone = await openPage(browser, server.base, { ...PHONE, storageState: storage });
    try {
      await phone.page.goto(`${server.base}/app/webhooks`);
      const phoneHook = phone.page.getByTestId('webhook');
      await phoneHook.getByRole('button', { name: 'Deliveries' }).click();
      await phone.page.getByTestId('delivery').first().waitFor();
      await shoot(phone.page, 'phone');
      await phone.check();
    } finally {
      await phone.context.close();
    }
  } finally {
    await context.close();
  }
});
