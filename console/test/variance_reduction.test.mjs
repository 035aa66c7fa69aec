// Variance reduction on the results page in Chromium against the real control plane
// (console/test/harness.mjs): an owner builds and starts an experiment; visitors with a
// context (device, prior visits and conversions) arrive through the signed ingest
// endpoint, returning visitors with prior conversions signing up far more often; the
// results page shows, per variant, the CUPED-adjusted lift, its interval and the variance
// reduction the API computed (`analyses[0].variance_reduction`), beside the unchanged
// table. Checked with axe-core, for CSP violations, console errors and foreign requests;
// photographed (target/screenshots/variance-reduction-results.png), and at phone width
// (variance-reduction-phone.png: no sideways scroll, the panel fits).
//
//   node --test console/test/variance_reduction.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { accessible, apiCall, launchBrowser, onPhone, openPage, SCREENSHOTS, signedIngest, signUp, startConsoleServer } from './harness.mjs';

const INGEST_SECRET = randomBytes(32).toString('hex');
const PASSWORD = 'correct horse battery';
const DESKTOP = { viewport: { width: 1280, height: 900 } };

let server;
let browser;
const email = `cuped-${randomBytes(4).toString('hex')}@example.com`;

before(async () => {
  server = await startConsoleServer({ ingestSecret: INGEST_SECRET });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the results page shows the CUPED-adjusted lift and the variance reduction', async () => {
  const { page, context, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    await signUp(page, server.base, { name: 'Cora Cuped', org: 'Cora’s Shop', email, password: PASSWORD });
    const site = await apiCall(page, server.base, 'POST', '/sites', { name: 'Shop', domains: ['shop.example'] });
    await page.goto(`${server.base}/app/experiments/new`);
    await page.getByRole('heading', { name: 'New experiment' }).waitFor();
    await page.locator('fieldset', { hasText: 'What and where' }).getByLabel('Name', { exact: true }).fill('Hero headline');
    await page.getByLabel('CSS selector').fill('#hero h1');
    await page.getByLabel('Variant 1').fill('Short');
    await page.getByLabel('Its text').fill('Buy now');
    await page.getByRole('button', { name: 'Create the experiment (as a draft)' }).click();
    await page.locator('h1 .badge').or(page.locator('.alert-error')).first().waitFor();
    const id = /\/experiments\/([0-9a-f-]{36})\/results/.exec(page.url())?.[1];
    assert.ok(id, page.url());
    const experiment = await apiCall(page, server.base, 'GET', `/experiments/${id}`);
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('h1 .badge', { hasText: 'Running' }).waitFor();

    // 1 200 visitors an arm: half returning, whose prior conversions (0–3) mostly decide
    // whether they sign up; the variant adds a few signups among new visitors.
    const items = [];
    const now = Date.now();
    for (const [a, arm] of experiment.arms.entries()) {
      for (let i = 0; i < 1200; i++) {
        const visitor = `v-${arm.id.slice(0, 8)}-${i}`;
        const returning = i % 2 === 0;
        const priorConversions = returning ? (i * 3) % 4 : 0;
        const context = { device: i % 3 === 0 ? 'mobile' : 'desktop', prior_visits: returning ? 1 + ((i * 7) % 9) : 0, prior_conversions: priorConversions };
        items.push({ id: `x-${visitor}`, type: 'exposure', site_key: site.site_key, experiment_id: id,
          arm_id: arm.id, visitor_id: visitor, propensity: 0.5, snapshot_version: 1, ts_ms: now - 60_000, context });
        const signs = priorConversions >= 2 || i % (a === 0 ? 13 : 9) === 0;
        if (signs) items.push({ id: `s-${visitor}`, type: 'conversion', site_key: site.site_key, visitor_id: visitor, goal: 'signup', ts_ms: now });
      }
    }
    for (let i = 0; i < items.length; i += 1000) await signedIngest(server.base, INGEST_SECRET, items.slice(i, i + 1000));

    const results = await apiCall(page, server.base, 'GET', `/experiments/${id}/results`);
    const vr = results.analyses[0].variance_reduction;
    assert.equal(vr.method, 'cuped_post_stratified');
    const c = vr.result.comparisons[1];
    assert.ok(c.variance_reduction > 0.2, JSON.stringify(c));
    await page.reload();
    const box = page.getByTestId('variance-reduction');
    await box.waitFor();
    const line = await box.locator('li[data-arm="Short"]').innerText();
    assert.match(line, /CUPED: lift \+\d/);
    // The variance's change, as the API gave it: "variance −NN.N%".
    const pct = (100 * c.variance_reduction).toFixed(1);
    assert.ok(line.replace(/\s/g, '').includes(`variance−${pct}%`) || line.replace(/\s/g, '').includes(`variance-${pct}%`), line);
    assert.match(await box.innerText(), /returning\/desktop/);
    // The unadjusted table is still there, unchanged.
    await page.getByTestId('results-table').waitFor();
    await accessible(page, 'results with variance reduction');
    await page.screenshot({ path: join(SCREENSHOTS, 'variance-reduction-results.png'), fullPage: true });

    // On a phone (390 px wide): no sideways scroll, and the panel fits the screen.
    await onPhone(page, box, 'the variance reduction panel');
    await box.screenshot({ path: join(SCREENSHOTS, 'variance-reduction-phone.png') });
    await check();
  } finally {
    await context.close();
  }
});
