// The results page's Segments panel in Chromium against the real control plane
// (console/test/harness.mjs): an owner's running experiment receives visitors through the
// signed ingest endpoint with their context (device, country) as the edge sends it; the
// panel splits the results by device (the default) and, when another dimension is
// chosen, by country; the numbers are the ones ingested, the small segment says it shows
// no p-value, the multiple-comparisons note is there, and the Spanish console says the
// same. Checked with axe-core, for CSP violations, console errors and foreign requests;
// photographed (target/screenshots/segments-*.png).
//
//   node --test console/test/segments.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  accessible, apiCall, headlineExperiment, launchBrowser, openPage, SCREENSHOTS, signedIngest, signUp, startConsoleServer,
} from './harness.mjs';

const INGEST_SECRET = randomBytes(32).toString('hex');
const PASSWORD = 'correct horse battery';
const DESKTOP = { viewport: { width: 1280, height: 900 } };

let server;
let browser;

before(async () => {
  server = await startConsoleServer({ ingestSecret: INGEST_SECRET });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The text of each cell of the segments table's rows of `value`, per row. */
async function rows(page, value) {
  return page.locator(`[data-testid="segments-table"] tr[data-segment="${value}"]`).evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent.trim())),
  );
}

test('the results page splits an experiment by device and by country, with the numbers ingested', async () => {
  const { page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    const email = `segments-${randomBytes(4).toString('hex')}@example.com`;
    await signUp(page, server.base, { name: 'Sergio Segments', org: 'Sergio’s Shop', email, password: PASSWORD });
    const site = await apiCall(page, server.base, 'POST', '/sites', { name: 'Shop', domains: ['shop.example'] });
    const created = await apiCall(page, server.base, 'POST', `/sites/${site.id}/experiments`, headlineExperiment('Hero headline', 'Free shipping'));
    await apiCall(page, server.base, 'POST', `/experiments/${created.id}/start`, {}, { 'if-match': `"${created.version}"` });
    const experiment = await apiCall(page, server.base, 'GET', `/experiments/${created.id}`);
    const [control, variant] = experiment.arms;

    // Desktop: 300 visitors an arm, from Spain; 30 (control) and 60 (variant) buy for 20.
    // Mobile: 150 an arm, from France; 15 and 15 buy. Tablet: 20 an arm (too small for a
    // p-value), from Spain.
    const plan = [
      ['desktop', 'ES', 300, 30, 60],
      ['mobile', 'FR', 150, 15, 15],
      ['tablet', 'ES', 20, 2, 2],
    ];
    const items = [];
    const now = Date.now();
    for (const [device, country, visitors, controlBuys, variantBuys] of plan) {
      for (const [arm, buys] of [[control, controlBuys], [variant, variantBuys]]) {
        for (let i = 0; i < visitors; i++) {
          const visitor = `v-${device}-${arm.id.slice(0, 8)}-${i}`;
          items.push({
            id: `x-${visitor}`, type: 'exposure', site_key: site.site_key, experiment_id: created.id,
            arm_id: arm.id, visitor_id: visitor, propensity: 0.5, snapshot_version: 1, ts_ms: now - 60_000,
            context: { country, device, browser: 'chrome', source: 'direct', prior_visits: 0, prior_conversions: 0 },
          });
          if (i < buys) {
            items.push({ id: `p-${visitor}`, type: 'conversion', site_key: site.site_key, visitor_id: visitor, goal: 'purchase', value: 20, ts_ms: now });
          }
        }
      }
    }
    for (let i = 0; i < items.length; i += 500) await signedIngest(server.base, INGEST_SECRET, items.slice(i, i + 500));

    await page.goto(`${server.base}/app/experiments/${created.id}/results`);
    const panel = page.getByTestId('segments');
    await panel.getByTestId('segments-table').waitFor();
    assert.equal(await panel.getByTestId('segment-dimension').inputValue(), 'device', 'device by default');

    // Per device: value, arm, visitors, conversion rate, revenue per visitor, lift, p.
    const desktop = await rows(page, 'desktop');
    // Desktop: 10 % → 20 %, lift +100 %, Katz interval exp(ln 2 ± 1.96·√(1/30 − 1/300 +
    // 1/60 − 1/300)) = 33.0 % – 200.8 %; z = 0.1 / √(0.15·0.85·2/300) = 3.43, p = 0.000604,
    // Holm over the two segments with a p-value (desktop, mobile): 0.00121. SRM: an even
    // split, p = 1.0.
    assert.deepEqual(desktop, [
      ['Desktop', 'Control (control)', '300', '10.0%', '2.00', '–', '', '1.0'],
      ['Free shipping', '300', '20.0%', '4.00', '+100.0% (33.0% – 200.8%)', '0.00121'],
    ]);
    // Mobile: no difference, p = 1 (Holm keeps 1).
    assert.deepEqual(await rows(page, 'mobile'), [
      ['Mobile', 'Control (control)', '150', '10.0%', '2.00', '–', '', '1.0'],
      ['Free shipping', '150', '10.0%', '2.00', '0.0% (-49.3% – 97.2%)', '1.00'],
    ]);
    // Tablet: 20 visitors an arm, under 100: no p-value, and the page says why.
    assert.deepEqual((await rows(page, 'tablet'))[1].slice(-1), ['small segment: no p-value']);
    await panel.getByTestId('segment-warning-small_segments').waitFor();
    assert.match(await panel.getByTestId('segment-warning-small_segments').innerText(), /Tablet/);
    await panel.getByTestId('segment-warning-multiple_comparisons').waitFor();
    // The same sums as the API gives: the panel shows the API's numbers, not its own.
    const api = await apiCall(page, server.base, 'GET', `/experiments/${created.id}/segments?dimension=device`);
    const visitorsByValue = Object.fromEntries(api.analyses[0].segments.map((s) => [s.value, s.arms.map((a) => a.visitors)]));
    assert.deepEqual(visitorsByValue, { desktop: [300, 300], mobile: [150, 150], tablet: [20, 20] });
    await accessible(page, 'segments by device');
    await panel.screenshot({ path: join(SCREENSHOTS, 'segments-device.png') });

    // By country: Spain = desktop + tablet, France = mobile.
    await panel.getByTestId('segment-dimension').selectOption('country');
    await page.locator('[data-testid="segments-table"] tr[data-segment="FR"]').first().waitFor();
    // Spain: 320 visitors an arm; 32 and 62 buyers (10.0 %, 19.4 %).
    const spain = await rows(page, 'ES');
    assert.deepEqual([spain[0].slice(2, 5), spain[1].slice(1, 4)], [['320', '10.0%', '2.00'], ['320', '19.4%', '3.88']], JSON.stringify(spain));
    assert.equal(spain[0][0], 'Spain (ES)', 'a country by its name');
    const france = await rows(page, 'FR');
    assert.deepEqual([france[0].slice(2, 5), france[1].slice(1, 4)], [['150', '10.0%', '2.00'], ['150', '10.0%', '2.00']], JSON.stringify(france));
    await panel.screenshot({ path: join(SCREENSHOTS, 'segments-country.png') });

    // The Spanish console: the same panel, in Spanish.
    await page.evaluate(() => localStorage.setItem('samplit.lang', 'es'));
    await page.reload();
    await panel.getByTestId('segments-table').waitFor();
    assert.match(await panel.locator('h2').innerText(), /Segmentos/);
    assert.match(await panel.getByTestId('segment-warning-small_segments').innerText(), /Menos de 100 visitantes.*Tableta/);
    assert.deepEqual((await rows(page, 'desktop'))[0].slice(0, 1), ['Escritorio']);
    await check();
  } finally {
    await page.context().close();
  }
});
