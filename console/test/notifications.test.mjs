// The Notifications page and the results page's alert select, in Chromium against the
// real control plane (console/test/harness.mjs): a new owner turns a kind of alert off
// and on (saved through PUT /notifications/preferences, read back from the API), follows
// an experiment from its results page (PUT /experiments/{id}/alerts), and sees a real
// alert in the list: no edge runs here, so every publication fails, and with
// SAMPLIT_ALERT_PUBLISH_FAILURES=1 the alert pass (every second) fires `publish_failing`.
// Photographed at desktop (1280x800) and phone (390x844) widths
// (target/screenshots/notifications-*.png), checked with axe-core, for CSP violations,
// console errors and foreign requests; the phone page must not be wider than the screen.
//
//   node --test console/test/notifications.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { accessible, apiCall, headlineExperiment, launchBrowser, openPage, SCREENSHOTS, signUp, startConsoleServer } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let server;
let browser;
const email = `alerts-${randomBytes(4).toString('hex')}@example.com`;

before(async () => {
  // Nothing listens at the edge URL: publications fail, which is what the alert is about.
  server = await startConsoleServer({
    env: { SAMPLIT_PUBLISH_INTERVAL: '1', SAMPLIT_ALERT_INTERVAL: '1', SAMPLIT_ALERT_PUBLISH_FAILURES: '1' },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function shoot(page, name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the screen`);
  await accessible(page, name);
  await page.screenshot({ path: join(SCREENSHOTS, `notifications-${name}.png`), fullPage: true });
}

let experimentId;

test('an owner turns an alert off and on, follows an experiment, and sees a real alert', async () => {
  const { page, context, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    await signUp(page, server.base, { name: 'Alba Alerts', org: 'Alba’s Shop', email, password: PASSWORD });

    // A site with a running experiment (its publications fail: no edge here).
    const site = await apiCall(page, server.base, 'POST', '/sites', { name: 'Shop', domains: ['shop.example'] });
    const created = await apiCall(page, server.base, 'POST', `/sites/${site.id}/experiments`, headlineExperiment('Hero headline', 'Buy now'));
    await apiCall(page, server.base, 'POST', `/experiments/${created.id}/start`, {}, { 'if-match': `"${created.version}"` });
    experimentId = created.id;

    // The page, from the navigation: an owner gets every kind by default.
    await page.getByTestId('account-menu').click();
    await page.getByRole('link', { name: 'Notifications' }).click();
    await page.getByRole('heading', { name: 'Notifications', level: 1 }).waitFor();
    const form = page.getByTestId('alert-preferences');
    const srm = form.getByRole('checkbox', { name: /Sample ratio mismatch/ });
    assert.equal(await srm.isChecked(), true);
    // Not verified yet (a new account): the page says alerts will not be mailed.
    await page.getByTestId('alerts-unverified').waitFor();

    await srm.uncheck();
    await page.waitForFunction(() => !document.querySelector('input[name="srm"]')?.disabled);
    let prefs = await apiCall(page, server.base, 'GET', '/notifications/preferences');
    assert.deepEqual(prefs.preferences.find((p) => p.kind === 'srm'), { kind: 'srm', enabled: false, is_default: false, role_default: true });
    await page.reload();
    await page.getByTestId('alert-preferences').waitFor();
    assert.equal(await srm.isChecked(), false, 'saved: still off after a reload');
    await srm.check();
    await page.waitForFunction(() => !document.querySelector('input[name="srm"]')?.disabled);
    prefs = await apiCall(page, server.base, 'GET', '/notifications/preferences');
    assert.equal(prefs.preferences.find((p) => p.kind === 'srm').enabled, true);

    // Follow the experiment from its results page.
    await page.goto(`${server.base}/app/experiments/${experimentId}/results`);
    const select = page.getByTestId('experiment-alerts').getByLabel('Alerts for this experiment');
    await select.waitFor();
    assert.equal(await select.inputValue(), 'default');
    await select.selectOption('follow');
    let mode;
    for (let i = 0; i < 50 && mode !== 'follow'; i++) {
      mode = (await apiCall(page, server.base, 'GET', `/experiments/${experimentId}/alerts`)).mode;
      if (mode !== 'follow') await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.equal(mode, 'follow');
    await page.reload();
    await select.waitFor();
    assert.equal(await select.inputValue(), 'follow', 'the page shows the saved mode');

    // The failing publication's alert shows in the list (the pass runs every second).
    await page.goto(`${server.base}/app/notifications`);
    for (let i = 0; i < 60; i++) {
      if ((await page.locator('[data-testid="alert-list"] li[data-kind="publish_failing"]').count()) > 0) break;
      await new Promise((ok) => setTimeout(ok, 500));
      await page.reload();
      await page.getByTestId('alert-preferences').waitFor();
    }
    const item = page.locator('[data-testid="alert-list"] li[data-kind="publish_failing"]').first();
    await item.waitFor();
    assert.match(await item.innerText(), /Publishing failing/);
    // The line is written from the alert's figures, in the console's language.
    assert.match(await item.getByTestId('alert-line').innerText(), /^Publishing to the edge failed( \d+ times in a row)?\. Last error: /);
    assert.equal(await item.getByRole('link', { name: 'Shop' }).getAttribute('href'), `/app/sites/${site.id}`);
    await shoot(page, 'desktop');
    await check();
  } finally {
    await context.close();
  }
});

test('phone: the notifications page fits the screen, in Spanish too', async () => {
  const { page, context, check } = await openPage(browser, server.base, PHONE, { allowStatus: [401] });
  try {
    await page.goto(`${server.base}/app`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Get started' }).waitFor();
    await page.goto(`${server.base}/app/notifications`);
    await page.getByTestId('alert-list').waitFor();
    await shoot(page, 'phone');
    await page.getByTestId('lang-switcher').selectOption('es');
    await page.getByRole('heading', { name: 'Notificaciones', level: 1 }).waitFor();
    await page.getByText('Publicación fallando').first().waitFor();
    assert.match(
      await page.getByTestId('alert-line').first().innerText(),
      /^La publicación en el edge ha fallado( \d+ veces seguidas)?\. Último error: /,
    );
    await shoot(page, 'phone-es');
    await page.goto(`${server.base}/app/experiments/${experimentId}/results`);
    await page.getByTestId('experiment-alerts').waitFor();
    await shoot(page, 'results-phone-es');
    await check();
  } finally {
    await context.close();
  }
});
