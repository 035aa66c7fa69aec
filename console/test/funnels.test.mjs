// The results page's Funnels panel in Chromium against the real control plane
// (console/test/harness.mjs): an owner's running experiment with three goals (cart,
// checkout, purchase); a funnel of the three is made through the panel's form; visitors
// arrive through the signed ingest endpoint (some do the steps in order, some skip or
// reverse them, some act before their exposure or after the window); the chart's bars
// and labels and the table show the reach the API computes, which is the one planned
// here; the Spanish console says the same. Checked with axe-core, for CSP violations,
// console errors and foreign requests; photographed (target/screenshots/funnel-*.png), also
// at phone width (funnel-phone.png). A funnel too slow for a request (a server with a
// 0.3 s analysis budget, a lock on the raw conversions standing in for millions of
// events) says it is computed in the background (funnel-computing.png, and on a phone
// funnel-computing-phone.png), then shows itself with its age when the worker is done
// (funnel-background.png).
//
//   node --test console/test/funnels.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { accessible, apiCall, factorialExperiment, freePort, launchBrowser, onPhone, openPage, SCREENSHOTS, signedIngest, signUp, startServer } from './harness.mjs';

const INGEST_SECRET = randomBytes(32).toString('hex');
const PASSWORD = 'correct horse battery';
const DESKTOP = { viewport: { width: 1280, height: 900 } };

let server;
let browser;

before(async () => {
  server = await startServer({
    SAMPLIT_DEV_INSECURE_COOKIES: 'true',
    SAMPLIT_INGEST_SECRET: INGEST_SECRET,
    SAMPLIT_SNAPSHOT_SECRET: randomBytes(32).toString('hex'),
    // No edge here: publications fail, which this test does not look at.
    SAMPLIT_EDGE_URL: `http://127.0.0.1:${await freePort()}`,
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a funnel made in the results page charts each arm’s reach of the steps, in order, within the window', async () => {
  const { page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    const email = `funnels-${randomBytes(4).toString('hex')}@example.com`;
    await signUp(page, server.base, { name: 'Fina Funnel', org: 'Fina’s Shop', email, password: PASSWORD });
    const site = await apiCall(page, server.base, 'POST', '/sites', { name: 'Shop', domains: ['shop.example'] });
    const created = await apiCall(page, server.base, 'POST', `/sites/${site.id}/experiments`, {
      name: 'Checkout button',
      kind: 'single',
      coverage: 1,
      allocator: { kind: 'fixed_split' },
      elements: [{
        name: 'Button', selector: '#buy',
        variants: [{ name: 'Control', is_control: true, weight: 1 }, { name: 'Green', weight: 1 }],
      }],
      goals: [
        { name: 'Purchase', metric: 'revenue', primary: true, trigger: { type: 'custom', event: 'purchase' } },
        { name: 'Cart', trigger: { type: 'custom', event: 'add_to_cart' } },
        { name: 'Checkout', trigger: { type: 'custom', event: 'begin_checkout' } },
      ],
    });
    await apiCall(page, server.base, 'POST', `/experiments/${created.id}/start`, {}, { 'if-match': `"${created.version}"` });
    const experiment = await apiCall(page, server.base, 'GET', `/experiments/${created.id}`);
    const [control, green] = experiment.arms;
    const goal = Object.fromEntries(experiment.goals.map((g) => [g.name, g.id]));

    // The form: Cart → Checkout → Purchase, a 1-hour window.
    await page.goto(`${server.base}/app/experiments/${created.id}/results`);
    const panel = page.getByTestId('funnels');
    await panel.getByTestId('funnel-form').waitFor();
    await panel.getByTestId('funnel-name').fill('Checkout path');
    await panel.getByTestId('funnel-step-0').selectOption({ label: 'Cart' });
    await panel.getByTestId('funnel-step-1').selectOption({ label: 'Checkout' });
    await panel.getByTestId('funnel-add-step').click();
    await panel.getByTestId('funnel-step-2').selectOption({ label: 'Purchase' });
    await panel.getByTestId('funnel-window').fill('1');
    await accessible(page, 'funnel form');
    await panel.getByTestId('funnel-create').click();
    await panel.getByTestId('funnel').waitFor();
    const funnels = await apiCall(page, server.base, 'GET', `/experiments/${created.id}/funnels`);
    assert.equal(funnels.length, 1);
    assert.equal(funnels[0].window_seconds, 3600);
    assert.deepEqual(funnels[0].steps.map((s) => s.goal_id), [goal.Cart, goal.Checkout, goal.Purchase]);

    // Visitors, exposed two hours ago. Control, 200: 100 add to cart, 50 of them check out,
    // 20 of those buy; 10 more buy without a cart; 10 add to cart before being exposed.
    // Green, 200: 120 add to cart, 80 check out, 40 buy; 20 more check out before adding
    // to the cart (reach stops at the cart); 10 more buy two hours after the exposure
    // (outside the window: they reach checkout only).
    const exposedAt = Date.now() - 2 * 3600_000;
    const items = [];
    const event = (visitor, name, secs) =>
      items.push({ id: `${name}-${visitor}-${secs}`, type: 'conversion', site_key: site.site_key, visitor_id: visitor,
        goal: name, ts_ms: exposedAt + secs * 1000 });
    const plan = [
      [control, 200, (v, i) => {
        if (i < 100) event(v, 'add_to_cart', 60);
        if (i < 50) event(v, 'begin_checkout', 120);
        if (i < 20) event(v, 'purchase', 180);
        if (i >= 100 && i < 110) event(v, 'purchase', 60);
        if (i >= 110 && i < 120) event(v, 'add_to_cart', -60);
      }],
      [green, 200, (v, i) => {
        if (i < 120) event(v, 'add_to_cart', 60);
        if (i < 80) event(v, 'begin_checkout', 120);
        if (i < 40) event(v, 'purchase', 180);
        if (i >= 120 && i < 140) { event(v, 'begin_checkout', 30); event(v, 'add_to_cart', 60); }
        if (i >= 140 && i < 150) { event(v, 'add_to_cart', 60); event(v, 'begin_checkout', 120); event(v, 'purchase', 7200); }
      }],
    ];
    for (const [arm, visitors, act] of plan) {
      for (let i = 0; i < visitors; i++) {
        const v = `v-${arm.id.slice(0, 8)}-${i}`;
        items.push({ id: `x-${v}`, type: 'exposure', site_key: site.site_key, experiment_id: created.id,
          arm_id: arm.id, visitor_id: v, propensity: 0.5, snapshot_version: 1, ts_ms: exposedAt });
        act(v, i);
      }
    }
    for (let i = 0; i < items.length; i += 500) await signedIngest(server.base, INGEST_SECRET, items.slice(i, i + 500));

    // Expected reach: control 100, 50, 20 of 200; green 150 (120 + 20 + 10), 90, 40 of 200.
    const results = await apiCall(page, server.base, 'GET', `/experiments/${created.id}/funnels/${funnels[0].id}/results`);
    const reached = results.analyses[0].arms.map((a) => [a.name, a.entered, a.steps.map((s) => s.reached)]);
    assert.deepEqual(reached, [['Control', 200, [100, 50, 20]], ['Green', 200, [150, 90, 40]]]);

    await page.reload();
    const chart = panel.getByTestId('funnel-chart');
    await chart.waitFor();
    // One bar per arm at each step, in step order (control first), the reach as the label.
    const labels = await chart.getByTestId('funnel-bar-label').allTextContents();
    assert.deepEqual(labels, ['50.0%', '75.0%', '25.0%', '45.0%', '10.0%', '20.0%']);
    const rates = await chart.getByTestId('funnel-bar').evaluateAll((bars) => bars.map((b) => Number(b.dataset.rate)));
    assert.deepEqual(rates, [0.5, 0.75, 0.25, 0.45, 0.1, 0.2]);
    // Taller bars for higher reach.
    const heights = await chart.getByTestId('funnel-bar').evaluateAll((bars) => bars.map((b) => Number(b.getAttribute('height'))));
    assert.ok(heights[1] > heights[0] && heights[0] > heights[2] && heights[2] > heights[4], JSON.stringify(heights));
    // The table: reach, conversion from the previous step, drop-off, and the comparison.
    const rows = await panel.locator('[data-testid="funnel-table"] tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent.trim())),
    );
    assert.deepEqual(rows[0].slice(0, 5), ['1. Cart', 'Control (control)', '100 / 200 (50.0%)', '50.0%', '100 (50.0%)']);
    assert.deepEqual(rows[1].slice(0, 4), ['Green', '150 / 200 (75.0%)', '75.0%', '50 (25.0%)']);
    assert.match(rows[1][4], /^\+25\.0 pp \(/);
    assert.deepEqual(rows[3].slice(0, 4), ['Green', '90 / 200 (45.0%)', '60.0%', '60 (40.0%)']);
    const holm = results.analyses[0].arms[1].steps[0].comparison.p_value_holm;
    assert.equal(rows[1][5], holm.toPrecision(3));
    await panel.getByTestId('funnel-warning-exploratory').waitFor();
    await accessible(page, 'funnel chart and table');
    await panel.screenshot({ path: join(SCREENSHOTS, 'funnel-en.png') });

    // The Spanish console.
    await page.evaluate(() => localStorage.setItem('samplit.lang', 'es'));
    await page.reload();
    await chart.waitFor();
    assert.match(await panel.locator('h2').innerText(), /Embudos/);
    assert.match(await panel.getByTestId('funnel-warning-exploratory').innerText(), /Una sola mirada/);
    await panel.screenshot({ path: join(SCREENSHOTS, 'funnel-es.png') });

    // On a phone (390 px wide): the page does not scroll sideways, the chart fits the
    // screen, and the table scrolls inside its own box.
    await page.evaluate(() => localStorage.setItem('samplit.lang', 'en'));
    await onPhone(page, chart, 'the funnel chart');
    const wrap = await panel.locator('.table-wrap').evaluate((w) => ({
      scrolls: w.scrollWidth > w.clientWidth, overflowX: getComputedStyle(w).overflowX, fits: w.getBoundingClientRect().right <= window.innerWidth,
    }));
    assert.deepEqual(wrap, { scrolls: true, overflowX: 'auto', fits: true }, 'the table scrolls inside its own box');
    await panel.screenshot({ path: join(SCREENSHOTS, 'funnel-phone.png') });
    await check();
  } finally {
    await page.context().close();
  }
});

test('a factorial experiment’s funnel shows the combinations and each element’s main effect', async () => {
  const { page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    const email = `funnels-factorial-${randomBytes(4).toString('hex')}@example.com`;
    await signUp(page, server.base, { name: 'Fabia Factorial', org: 'Fabia’s Shop', email, password: PASSWORD });
    const site = await apiCall(page, server.base, 'POST', '/sites', { name: 'Shop', domains: ['shop.example'] });
    const created = await apiCall(page, server.base, 'POST', `/sites/${site.id}/experiments`,
      factorialExperiment('Headline × button', [
        { name: 'Purchase', primary: true, trigger: { type: 'custom', event: 'purchase' } },
        { name: 'Cart', trigger: { type: 'custom', event: 'add_to_cart' } },
      ]));
    await apiCall(page, server.base, 'POST', `/experiments/${created.id}/start`, {}, { 'if-match': `"${created.version}"` });
    const experiment = await apiCall(page, server.base, 'GET', `/experiments/${created.id}`);
    const goal = Object.fromEntries(experiment.goals.map((g) => [g.name, g.id]));
    const funnel = await apiCall(page, server.base, 'POST', `/experiments/${created.id}/funnels`,
      { name: 'Cart then buy', steps: [goal.Cart, goal.Purchase], window_seconds: 3600 });

    // Per combination (in the experiment's arm order): 50 visitors, of whom `carts` add
    // to the cart and the first `buyers` of those buy.
    const plan = [[20, 10], [25, 5], [30, 15], [35, 20]];
    const exposedAt = Date.now() - 2 * 3600_000;
    const items = [];
    for (const [a, arm] of experiment.arms.entries()) {
      const [carts, buyers] = plan[a];
      for (let i = 0; i < 50; i++) {
        const v = `f-${a}-${i}`;
        items.push({ id: `x-${v}`, type: 'exposure', site_key: site.site_key, experiment_id: created.id, arm_id: arm.id,
          visitor_id: v, propensity: 0.25, snapshot_version: 1, ts_ms: exposedAt });
        if (i < carts) items.push({ id: `c-${v}`, type: 'conversion', site_key: site.site_key, visitor_id: v, goal: 'add_to_cart', ts_ms: exposedAt + 60_000 });
        if (i < buyers) items.push({ id: `p-${v}`, type: 'conversion', site_key: site.site_key, visitor_id: v, goal: 'purchase', ts_ms: exposedAt + 120_000 });
      }
    }
    await signedIngest(server.base, INGEST_SECRET, items);

    // Each variant pools the combinations that show it (read from the arms' variant ids).
    const results = await apiCall(page, server.base, 'GET', `/experiments/${created.id}/funnels/${funnel.id}/results`);
    assert.deepEqual(results.analyses.map((a) => a.scope), ['arms', 'main_effect', 'main_effect']);
    for (const [e, element] of experiment.elements.entries()) {
      const effect = results.analyses[1 + e];
      assert.equal(effect.element_name, element.name);
      for (const subject of effect.arms) {
        const shown = experiment.arms.map((arm, a) => [arm, a]).filter(([arm]) => arm.variant_ids[e] === subject.id);
        assert.equal(shown.length, 2, 'a variant of a 2×2 shows in two combinations');
        const expected = shown.reduce(([n, c, b], [, a]) => [n + 50, c + plan[a][0], b + plan[a][1]], [0, 0, 0]);
        assert.deepEqual([subject.entered, ...subject.steps.map((s) => s.reached)], expected, subject.name);
      }
    }

    await page.goto(`${server.base}/app/experiments/${created.id}/results`);
    const panel = page.getByTestId('funnels');
    await panel.getByTestId('funnel-chart').first().waitFor();
    assert.equal(await panel.getByTestId('funnel-chart').count(), 3, 'a chart for the combinations and one per element');
    // Every arm's legend entry is inside its chart (four combinations on two steps wrap).
    const legend = await panel.getByTestId('funnel-chart').first().evaluate((svg) => {
      const box = svg.getBoundingClientRect();
      return [...svg.querySelectorAll('[data-testid="funnel-legend-item"]')].map((g) => {
        const r = g.getBoundingClientRect();
        return r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
      });
    });
    assert.deepEqual(legend, [true, true, true, true]);
    const headings = await panel.locator('h4').allInnerTexts();
    assert.deepEqual(headings.map((h) => h.replace(/\s+/g, ' ').trim()), [
      'Headline · main effect (its variants pooled over the other elements)',
      'Button · main effect (its variants pooled over the other elements)',
    ]);
    // The main effect's table names the variants, with their pooled reach.
    const headline = results.analyses[1].arms;
    const tables = panel.getByTestId('funnel-table');
    const firstRows = await tables.nth(1).locator('tbody tr').evaluateAll((trs) =>
      trs.slice(0, 2).map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent.trim())),
    );
    assert.deepEqual(firstRows[0].slice(1, 3), [`${headline[0].name} (control)`, `${headline[0].steps[0].reached} / ${headline[0].entered} (${(100 * headline[0].steps[0].reached / headline[0].entered).toFixed(1)}%)`]);
    assert.deepEqual(firstRows[1].slice(0, 2), [headline[1].name, `${headline[1].steps[0].reached} / ${headline[1].entered} (${(100 * headline[1].steps[0].reached / headline[1].entered).toFixed(1)}%)`]);
    await accessible(page, 'factorial funnel');
    await panel.screenshot({ path: join(SCREENSHOTS, 'funnel-factorial.png') });
    await check();
  } finally {
    await page.context().close();
  }
});

test('a funnel too slow to compute while the page waits is computed in the background and then shown with its age', async () => {
  const slow = await startServer({
    SAMPLIT_DEV_INSECURE_COOKIES: 'true',
    SAMPLIT_INGEST_SECRET: INGEST_SECRET,
    SAMPLIT_SNAPSHOT_SECRET: randomBytes(32).toString('hex'),
    SAMPLIT_EDGE_URL: `http://127.0.0.1:${await freePort()}`,
    SAMPLIT_ANALYSIS_TIMEOUT_MS: '300',
  });
  const { page, check } = await openPage(browser, slow.base, DESKTOP, { allowStatus: [401] });
  let locker;
  try {
    const email = `funnels-slow-${randomBytes(4).toString('hex')}@example.com`;
    await signUp(page, slow.base, { name: 'Lena Large', org: 'Lena’s Shop', email, password: PASSWORD });
    const site = await apiCall(page, slow.base, 'POST', '/sites', { name: 'Shop', domains: ['shop.example'] });
    const created = await apiCall(page, slow.base, 'POST', `/sites/${site.id}/experiments`, {
      name: 'Checkout button', kind: 'single', coverage: 1, allocator: { kind: 'fixed_split' },
      elements: [{ name: 'Button', selector: '#buy',
        variants: [{ name: 'Control', is_control: true, weight: 1 }, { name: 'Green', weight: 1 }] }],
      goals: [
        { name: 'Purchase', primary: true, trigger: { type: 'custom', event: 'purchase' } },
        { name: 'Cart', trigger: { type: 'custom', event: 'add_to_cart' } },
      ],
    });
    await apiCall(page, slow.base, 'POST', `/experiments/${created.id}/start`, {}, { 'if-match': `"${created.version}"` });
    const experiment = await apiCall(page, slow.base, 'GET', `/experiments/${created.id}`);
    const goal = Object.fromEntries(experiment.goals.map((g) => [g.name, g.id]));
    await apiCall(page, slow.base, 'POST', `/experiments/${created.id}/funnels`,
      { name: 'Cart then buy', steps: [goal.Cart, goal.Purchase], window_seconds: 3600 });
    // 10 visitors per arm; in each, 4 add to the cart and 2 of those buy.
    const exposedAt = Date.now() - 2 * 3600_000;
    const items = [];
    for (const arm of experiment.arms) {
      for (let i = 0; i < 10; i++) {
        const v = `s-${arm.id.slice(0, 8)}-${i}`;
        items.push({ id: `x-${v}`, type: 'exposure', site_key: site.site_key, experiment_id: created.id, arm_id: arm.id,
          visitor_id: v, propensity: 0.5, snapshot_version: 1, ts_ms: exposedAt });
        if (i < 4) items.push({ id: `c-${v}`, type: 'conversion', site_key: site.site_key, visitor_id: v, goal: 'add_to_cart', ts_ms: exposedAt + 60_000 });
        if (i < 2) items.push({ id: `p-${v}`, type: 'conversion', site_key: site.site_key, visitor_id: v, goal: 'purchase', ts_ms: exposedAt + 120_000 });
      }
    }
    await signedIngest(slow.base, INGEST_SECRET, items);

    // The lock: held by a psql session until it is told to roll back.
    locker = spawn('psql', [slow.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-qAt'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const locked = new Promise((ok, fail) => {
      locker.stdout.on('data', (d) => String(d).includes('locked') && ok());
      locker.once('exit', (code) => fail(new Error(`psql exited (${code}) before locking`)));
    });
    locker.stdin.write("BEGIN; LOCK TABLE raw_conversions IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n");
    await locked;

    await page.goto(`${slow.base}/app/experiments/${created.id}/results`);
    const panel = page.getByTestId('funnels');
    const computing = panel.getByTestId('funnel-computing');
    await computing.waitFor();
    assert.match(await computing.innerText(), /computed in the background/);
    await accessible(page, 'funnel computed in the background');
    await panel.screenshot({ path: join(SCREENSHOTS, 'funnel-computing.png') });
    // On a phone the notice wraps inside the panel (asking again reads one row).
    await onPhone(page, computing, 'the notice that the funnel is being computed');
    assert.match(await computing.innerText(), /computed in the background/);
    await panel.screenshot({ path: join(SCREENSHOTS, 'funnel-computing-phone.png') });
    await page.setViewportSize(DESKTOP.viewport);

    // The lock gone, the worker finishes and the panel, asking every 5 s, shows it.
    const exited = new Promise((ok) => locker.once('exit', ok));
    locker.stdin.end('ROLLBACK;\n');
    await exited;
    locker = undefined;
    const chart = panel.getByTestId('funnel-chart');
    await chart.waitFor({ timeout: 20_000 });
    assert.deepEqual(await chart.getByTestId('funnel-bar-label').allTextContents(), ['40.0%', '40.0%', '20.0%', '20.0%']);
    const age = await panel.getByTestId('funnel-warning-computed_in_background').innerText();
    assert.match(age, /computed in the background at .*\d/);
    assert.equal(await computing.count(), 0);
    await accessible(page, 'funnel from the background');
    await panel.screenshot({ path: join(SCREENSHOTS, 'funnel-background.png') });
    await check();
  } finally {
    locker?.kill();
    await page.context().close();
    await slow.stop();
  }
});
