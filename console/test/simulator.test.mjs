// The public simulator (/simulator) in Chromium against `samplit serve`: no account; the
// engine's wasm loads under the page's own CSP (the console's plus 'wasm-unsafe-eval',
// which the console itself does not get); a run of 30 000 visitors ends by itself, each
// strategy's grid accounts for every visitor, and Thompson sampling sends the best
// version more visitors and loses fewer conversions than the fixed split; the sign-up
// form shows the server's field error, stores an address once whatever its case, says
// so when the network's limit is reached, and says the address was not saved when
// storing fails (the original reported success on failure).
//
//   node --test console/test/simulator.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SCREENSHOTS, accessible, launchBrowser, openPage, psql, startServer } from './harness.mjs';

const DESKTOP = { viewport: { width: 1280, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let server;
let browser;

before(async () => {
  server = await startServer({ SAMPLIT_DEV_INSECURE_COOKIES: 'true' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const number = (text) => Number(text.replace(/[^0-9.]/g, ''));

test('the simulator runs the engine in the browser, and Thompson sampling beats the fixed split', async () => {
  const { page, check } = await openPage(browser, server.base, DESKTOP);
  try {
    const res = await page.goto(`${server.base}/simulator`);
    const csp = res.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/);
    const consoleCsp = (await page.request.get(`${server.base}/app`)).headers()['content-security-policy'];
    assert.ok(!consoleCsp.includes('wasm-unsafe-eval'), 'the console does not get it');
    const wasm = await page.request.get(`${server.base}/simulator/sim.wasm`);
    assert.equal(wasm.headers()['content-type'], 'application/wasm');

    await page.getByRole('heading', { name: 'Thompson sampling vs a fixed split, in your browser' }).waitFor();
    await accessible(page, 'the simulator');
    await page.getByTestId('sim-run').click();
    await page.getByTestId('sim-progress').getByText('30,000 of 30,000 visitors').waitFor({ timeout: 60_000 });
    assert.equal(await page.getByTestId('sim-run').isDisabled(), true, 'the run ended by itself');

    // Every visitor is in each grid.
    for (const grid of ['grid-fixed', 'grid-thompson']) {
      const cells = await page.getByTestId(grid).locator('.sim-cell strong').allInnerTexts();
      assert.equal(cells.length, 9);
      assert.equal(cells.map(number).reduce((a, b) => a + b, 0), 30_000, grid);
    }
    // The fixed split gives each version about a ninth; Thompson gives the best (B × Y)
    // far more and loses fewer conversions.
    const row = (k) => page.getByTestId('sim-summary').locator(`tr[data-strategy="${k}"]`);
    const share = async (k) => number(await row(k).locator('[data-field="best_share"]').innerText());
    const lost = async (k) => number(await row(k).locator('[data-field="lost"]').innerText());
    assert.ok(Math.abs((await share('fixed')) - 11.1) < 1.5, `fixed: ${await share('fixed')} %`);
    assert.ok((await share('thompson')) > 25, `thompson: ${await share('thompson')} %`);
    assert.ok((await lost('thompson')) < (await lost('fixed')), 'Thompson lost fewer conversions');
    await page.getByTestId('regret-chart').locator('canvas').waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'simulator-desktop.png'), fullPage: true });

    // Reset lets the rates change again.
    await page.getByRole('button', { name: 'Reset' }).click();
    assert.equal(await page.getByTestId('rate-BY').isDisabled(), false);
    await check();
  } finally {
    await page.context().close();
  }
});

test('the sign-up form stores an address once, says when the limit is reached and when saving failed', async () => {
  // 422: the bad address; 429: the sixth sign-up; 500: the failed store — on purpose.
  const { page, check } = await openPage(browser, server.base, PHONE, { allowStatus: [422, 429, 500] });
  const sign = async (email) => {
    await page.goto(`${server.base}/simulator`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Name (optional)').fill('Vi Visitor');
    await page.getByRole('button', { name: 'Keep me posted' }).click();
  };
  try {
    await sign('not-an-address');
    await page.getByTestId('signup-error').waitFor();
    assert.match(await page.locator('.field-error').innerText(), /name@example\.com/);

    await sign('vi@example.com');
    await page.getByTestId('signup-done').waitFor();
    await sign('VI@Example.com');
    await page.getByTestId('signup-done').waitFor();
    const rows = psql(`SELECT email || ' ' || requests || ' ' || name FROM signups`, server.databaseUrl);
    assert.equal(rows, 'vi@example.com 2 Vi Visitor', 'one row per address, whatever its case');

    // Storing fails: the page says the address was not saved.
    psql('ALTER TABLE signups RENAME TO signups_away', server.databaseUrl);
    try {
      await sign('fails@example.com');
      await page.getByTestId('signup-error').waitFor();
      assert.match(await page.getByTestId('signup-error').innerText(), /^Your address was not saved/);
    } finally {
      psql('ALTER TABLE signups_away RENAME TO signups', server.databaseUrl);
    }

    // Five per address per hour (the failed one counted too): the sixth is refused.
    await sign('three@example.com');
    await page.getByTestId('signup-done').waitFor();
    await sign('four@example.com');
    await page.getByTestId('signup-done').waitFor();
    await sign('five@example.com');
    await page.getByTestId('signup-error').waitFor();
    assert.match(await page.getByTestId('signup-error').innerText(), /too many sign-ups from your network; try again in \d+ min/);
    assert.equal(psql(`SELECT count(*) FROM signups WHERE email = 'five@example.com'`, server.databaseUrl), '0');
    await accessible(page, 'the simulator on a phone');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scroll');
    await page.screenshot({ path: join(SCREENSHOTS, 'simulator-phone.png'), fullPage: true });
    await check();
  } finally {
    await page.context().close();
  }
});
