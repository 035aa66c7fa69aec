// The visual editor, end to end in a real browser: the real control plane (`samplit
// serve`, PostgreSQL), the real Worker under workerd (wrangler dev, the edge's editor
// proxy), and a site's origin on loopback. An owner signs up, adds the site
// `shop.localhost`, proves it by the file method (the console's Verify button; the
// control plane fetches the origin), builds an experiment, opens the editor from the
// experiment's page, clicks the headline in the framed page, changes its text (the frame
// previews it), has a script-carrying attribute refused by the server with the change
// named, removes it, saves, and the API holds exactly the saved change. A message posted
// by anything but the frame is ignored. The console's CSP allows framing the edge and
// nothing else: no violation, no request to a third origin.
//
//   node --test console/test/editor.test.mjs   (after `cargo xtask edge-build` and
//   `cargo build -p samplit-control-plane --bin samplit`)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { accessible, apiCall, csrfToken, factorialExperiment, freePort, launchBrowser, openPage, SCREENSHOTS, signedIngest, signUp as signUpAt, startServer } from './harness.mjs';
import { BROWSER_UA, INGEST_SECRET, SNAPSHOT_SECRET, startWorker, waitFor } from '../../edge-worker/test/harness.mjs';

const PASSWORD = 'correct horse battery';
const HOST = 'shop.localhost';
const DESKTOP = { viewport: { width: 1400, height: 950 } };

let origin; // { url, port, close, proof }
let worker;
let server;
let browser;

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><header><h1 id="headline">Original headline</h1></header>
<main><p class="lead">Everything you need.</p><a id="cta" href="/pricing">See pricing</a></main></body></html>`;

/** The site's origin: its home page, and the verification file once the test knows it. */
async function startOrigin() {
  const state = { proof: null, fetched: [] };
  const srv = createServer((req, res) => {
    state.fetched.push(req.url);
    if (req.url === '/.well-known/samplit-verification.txt') {
      if (!state.proof) {
        res.writeHead(404).end('not yet');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${state.proof}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
  });
  await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
  const { port } = srv.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    state,
    close: () => new Promise((ok) => { srv.closeAllConnections?.(); srv.close(ok); }),
  };
}

before(async () => {
  origin = await startOrigin();
  // The Worker delivers its queue's batches to the control plane, which is started
  // after it (it needs the Worker's URL): its port is chosen first.
  const controlPlanePort = await freePort();
  // The edge fetches https://shop.localhost/… from the loopback origin (a development
  // override; production fetches the host itself), for the editor and for visitors.
  worker = await startWorker({
    vars: {
      SAMPLIT_ORIGIN_OVERRIDE: origin.url,
      SAMPLIT_CONTROL_PLANE_URL: `http://127.0.0.1:${controlPlanePort}`,
    },
  });
  server = await startServer((base) => ({
    SAMPLIT_DEV_INSECURE_COOKIES: 'true',
    SAMPLIT_SNAPSHOT_SECRET: SNAPSHOT_SECRET,
    SAMPLIT_INGEST_SECRET: INGEST_SECRET,
    SAMPLIT_EDGE_URL: worker.base,
    SAMPLIT_PUBLISH_INTERVAL: '1',
    // The editor script talks to the console's own origin only.
    SAMPLIT_CORS_ORIGINS: base,
    // shop.localhost is a development name: provable only with the switch, and the file
    // proof is fetched over plain http on the origin's port.
    SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS: 'true',
    SAMPLIT_DEV_VERIFY_PORT: String(origin.port),
  }), { port: controlPlanePort });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await worker?.stop();
  await origin?.close();
});

/** A new owner, signed up through the console's own form. */
async function signUp(page, prefix, name, org) {
  const email = `${prefix}-${randomBytes(4).toString('hex')}@example.com`;
  await signUpAt(page, server.base, { name, org, email, password: PASSWORD });
}

test('an owner verifies the domain, opens the visual editor, changes the headline and saves it', async () => {
  // 401: the signed-out probe; 422: the refused onclick change and the first Verify
  // (before the file is served), on purpose.
  const { page, check, problems } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401, 422] });
  try {
    await signUp(page, 'editor', 'Eda Editor', 'Eda’s Shop');

    // The site, created from the page.
    await page.getByRole('link', { name: 'Sites' }).click();
    await page.getByRole('heading', { name: 'Sites', exact: true }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Shop');
    await page.getByLabel('Domains').fill(HOST);
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('code.secret').waitFor();
    const sites = await apiCall(page, server.base, 'GET', '/sites');
    const site = sites[0];
    const domain = site.domain_verification.find((d) => d.host === HOST);
    assert.equal(domain.status, 'pending');

    await page.getByRole('link', { name: 'Shop' }).click();
    await page.locator('.domain').waitFor();
    const proofText = await page.locator('.domain code').first().textContent();
    assert.equal(proofText, domain.txt_value, 'the page shows the proof to publish');

    // Verify before the file exists: the control plane's sentence, shown on the page.
    await page.getByRole('button', { name: 'Verify by file' }).click();
    const failure = page.getByRole('alert');
    await failure.waitFor();
    assert.match(await failure.innerText(), /samplit-verification/, 'the failed proof says what was looked for');
    // Publish the proof at the origin, then verify again.
    origin.state.proof = proofText;
    await page.getByRole('button', { name: 'Verify by file' }).click();
    await page.locator('.domain').getByText('Verified').waitFor();
    assert.ok(origin.state.fetched.includes('/.well-known/samplit-verification.txt'), 'the control plane fetched the proof');
    const verified = (await apiCall(page, server.base, 'GET', `/sites/${site.id}`)).domain_verification.find((d) => d.host === HOST);
    assert.equal(verified.status, 'verified');
    assert.equal(verified.method, 'http_file');

    // A draft experiment with one element and two variants.
    const experiment = await apiCall(page, server.base, 'POST', `/sites/${site.id}/experiments`, {
      name: 'Headline test',
      kind: 'single',
      coverage: 1,
      // Thompson sampling with a short burn-in, so the traffic share moves during the test.
      allocator: { kind: 'thompson', min_exposures: 2, floor: 0.05 },
      elements: [{
        name: 'Headline',
        selector: '#headline',
        variants: [
          { name: 'Control', is_control: true, weight: 1, changes: [] },
          { name: 'Bold', is_control: false, weight: 1, changes: [] },
        ],
      }],
      goals: [{ name: 'signup', metric: 'conversion', primary: true, trigger: { type: 'custom', event: 'signup' } }],
    });
    const variant = experiment.elements[0].variants.find((v) => !v.is_control);

    // From the experiment's page to the editor.
    await page.goto(`${server.base}/app/experiments/${experiment.id}/results`);
    await page.getByRole('link', { name: 'Edit Bold in the visual editor' }).click();
    await page.getByRole('heading', { name: /Visual editor/ }).waitFor();
    assert.match(page.url(), new RegExp(`/app/experiments/${experiment.id}/editor\\?variant=${variant.id}$`));
    assert.equal(await page.getByLabel('Page to open').inputValue(), `https://${HOST}/`);
    await page.getByRole('button', { name: 'Open' }).click();
    await page.getByText('Click an element on the page to change it.').waitFor({ timeout: 20_000 });

    const frame = page.frame({ url: /\/v1\/editor\?/ });
    assert.ok(frame, 'the editor frame, served by the edge');
    assert.ok(frame.url().startsWith(`${worker.base}/v1/editor?`), frame.url());
    assert.equal(await frame.textContent('#headline'), 'Original headline', 'the origin’s page, through the edge');

    // A forged selection posted by the console's own window (not the frame) is ignored.
    await page.evaluate(() => window.postMessage({ source: 'samplit-editor', type: 'samplit:select', selector: '#forged', tag: 'div', text: 'x' }, '*'));
    await page.waitForTimeout(300);
    assert.equal(await page.getByTestId('change-form').count(), 0, 'no change form for a message from elsewhere');

    // Click the headline in the frame: the change form, with its selector and text.
    await frame.click('#headline');
    const form = page.getByTestId('change-form');
    await form.waitFor();
    assert.equal(await form.getByLabel('CSS selector').inputValue(), '#headline');
    assert.equal(await form.getByLabel('New text').inputValue(), 'Original headline');
    await form.getByLabel('New text').fill('Start your free trial today');
    await form.getByRole('button', { name: 'Add the change' }).click();
    // The frame previews it.
    await waitFor(async () => (await frame.textContent('#headline')) === 'Start your free trial today', { what: 'the live preview' });

    // A second change the server refuses: an event-handler attribute on the link.
    await frame.click('#cta');
    await waitFor(async () => (await page.getByTestId('change-form').getByLabel('CSS selector').inputValue()) === '#cta', { what: 'the link selected' });
    await page.getByTestId('change-form').getByLabel('Change').selectOption('set_attribute');
    await page.getByTestId('change-form').getByLabel('Attribute name').fill('onclick');
    await page.getByTestId('change-form').getByLabel('Value').fill('alert(1)');
    await page.getByTestId('change-form').getByRole('button', { name: 'Add the change' }).click();
    assert.equal(await page.getByTestId('change-list').locator('li').count(), 2);
    await page.getByTestId('editor-save').click();
    const refusal = page.getByTestId('change-list').locator('li').nth(1).getByRole('alert');
    await refusal.waitFor();
    assert.match(await refusal.textContent(), /on/i, 'the refusal is shown next to the change it names');
    // Nothing was stored.
    const unchanged = await apiCall(page, server.base, 'GET', `/experiments/${experiment.id}`);
    assert.deepEqual(unchanged.elements[0].variants.find((v) => v.id === variant.id).changes, []);

    // Remove it and save.
    await page.getByRole('button', { name: 'Remove change 2' }).click();
    // Saving reloads the experiment (and then its site) with the new version; the
    // confirmation must outlive that reload, not flash until it lands.
    const reloaded = page.waitForResponse((r) => r.request().method() === 'GET' && r.url().endsWith(`/sites/${site.id}`));
    await page.getByTestId('editor-save').click();
    await reloaded;
    await page.waitForTimeout(300);
    assert.ok(await page.getByRole('status').getByText('Saved.').isVisible(), 'the confirmation stays after the reload');
    const saved = await apiCall(page, server.base, 'GET', `/experiments/${experiment.id}`);
    assert.deepEqual(saved.elements[0].variants.find((v) => v.id === variant.id).changes, [
      { selector: '#headline', action: { type: 'set_text', text: 'Start your free trial today' } },
    ]);
    assert.ok(saved.version > experiment.version, 'saving bumped the version');

    await accessible(page, 'the visual editor');
    await page.screenshot({ path: join(SCREENSHOTS, 'console-editor-desktop.png'), fullPage: true });
    // On a phone the panel and the frame stack, with no sideways scroll.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scroll');
    await page.screenshot({ path: join(SCREENSHOTS, 'console-editor-phone.png'), fullPage: true });
    await page.setViewportSize(DESKTOP.viewport);

    // Start it from its page: the control plane publishes the site (snapshot and host
    // route) to the Worker.
    await page.getByRole('link', { name: 'Back to the experiment' }).click();
    await page.getByRole('button', { name: 'Start' }).click();
    await page.getByText('Running').first().waitFor();
    await waitFor(async () => {
      const pubs = await apiCall(page, server.base, 'GET', `/sites/${site.id}/publications`);
      return pubs.some((p) => p.status === 'published' && p.weights.some((w) => w.experiment_id === experiment.id));
    }, { timeoutMs: 30_000, what: 'a publication that reached the edge' });

    // Visitors, each a new browser, open the shop's page on the edge (Chromium resolves
    // *.localhost to loopback). Each page's HTML holds one arm, already rendered: the
    // saved change or the original, never both. New visitors come until both arms have
    // some (at most 40: the chance of one arm getting none of 40 is 2^-39).
    const workerPort = new URL(worker.base).port;
    const seen = { Control: 0, Bold: 0 };
    for (let i = 0; i < 40 && (seen.Control < 2 || seen.Bold < 2); i++) {
      // A desktop Chrome's user agent: headless Chromium's own names it a bot, and bots
      // always see the original.
      const visitor = await browser.newContext({ userAgent: BROWSER_UA });
      const tab = await visitor.newPage();
      const res = await tab.goto(`http://${HOST}:${workerPort}/`);
      const html = await res.text();
      const bold = html.includes('<h1 id="headline">Start your free trial today</h1>');
      const control = html.includes('<h1 id="headline">Original headline</h1>');
      assert.ok(bold !== control, `visitor ${i} gets exactly one arm: ${res.status()} ${html.slice(0, 300)}`);
      seen[bold ? 'Bold' : 'Control'] += 1;
      // Every visitor of the edited variant signs up (samplit.track's call, from the page's
      // own origin with its visitor cookie); nobody who saw the original does.
      if (bold) {
        const status = await tab.evaluate(async (siteKey) => {
          const r = await fetch('/v1/events', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ site_key: siteKey, events: [{ type: 'conversion', goal: 'signup' }] }),
          });
          return `${r.status} ${await r.text()}`;
        }, site.site_key);
        assert.match(status, /^202 /);
      }
      await visitor.close();
    }
    assert.ok(seen.Bold >= 2 && seen.Control >= 2, JSON.stringify(seen));
    // Their exposures reach the control plane through the Worker's queue, and the
    // results page counts them.
    const armOf = (r, name) => {
      const a = r.analyses[0];
      const i = a?.subjects.findIndex((s) => s.name === name) ?? -1;
      return i >= 0 && a.result ? a.result.arms[i] : null;
    };
    const visitorsOf = (r, name) => armOf(r, name)?.visitors ?? null;
    let last;
    await waitFor(async () => {
      const r = await apiCall(page, server.base, 'GET', `/experiments/${experiment.id}/results`);
      last = r;
      // Exposures and the conversions arrive in separate queue batches: wait for both.
      return visitorsOf(r, 'Bold') === seen.Bold && visitorsOf(r, 'Control') === seen.Control &&
        armOf(r, 'Bold').conversions === seen.Bold ? r : null;
    }, { timeoutMs: 30_000, what: `${JSON.stringify(seen)} visitors in the results` }).catch((e) => {
      throw new Error(`${e.message}\n--- Worker log ---\n${worker.log().slice(-3000)}\n${JSON.stringify(last)}`);
    });
    const results = await apiCall(page, server.base, 'GET', `/experiments/${experiment.id}/results`);
    assert.equal(visitorsOf(results, 'Control'), seen.Control);
    await page.reload();
    const table = page.getByTestId('results-table');
    await table.waitFor();
    for (const arm of ['Control', 'Bold']) {
      assert.equal(await table.locator(`tr[data-arm="${arm}"] [data-field="visitors"]`).innerText(), String(seen[arm]),
        `the page shows the ${arm} visitors the edge counted`);
    }
    assert.equal(await table.locator('tr[data-arm="Bold"] [data-field="conversions"]').innerText(), String(seen.Bold));

    // The bandit moves traffic: a later snapshot the edge received gives Bold a larger
    // share than the first one did, and the page plots every snapshot.
    const boldShare = (p) => {
      const arms = p.weights.find((w) => w.experiment_id === experiment.id)?.units[0]?.arms ?? [];
      const boldArm = results.analyses[0].subjects.find((s) => s.name === 'Bold').id;
      return arms.find((a) => a.arm_id === boldArm)?.propensity;
    };
    const publications = await waitFor(async () => {
      const pubs = (await apiCall(page, server.base, 'GET', `/sites/${site.id}/publications`)).filter((p) => p.status === 'published' && boldShare(p) !== undefined);
      return pubs.length >= 2 && Math.max(...pubs.map(boldShare)) > Math.min(...pubs.map(boldShare)) + 0.2 ? pubs : null;
    }, { timeoutMs: 30_000, what: 'a snapshot with more traffic for the converting arm' });
    const shares = publications.map(boldShare);
    assert.ok(Math.max(...shares) > 0.7, `Bold's share grew: ${JSON.stringify(shares)}`);
    await page.reload();
    await page.getByTestId('results-table').waitFor();
    await page.getByTestId('traffic-chart').locator('canvas').waitFor();
    // The posterior densities: one curve per arm, named as in the table.
    const posterior = page.getByTestId('posterior-chart');
    await posterior.locator('canvas').waitFor();
    const legend = await posterior.locator('.u-legend').innerText();
    assert.ok(legend.includes('Control') && legend.includes('Bold'), legend);
    await page.screenshot({ path: join(SCREENSHOTS, 'console-editor-results.png'), fullPage: true });

    // The frame was the edge's and nothing else: the console requested only its own
    // origin and the edge's.
    problems.elsewhere = problems.elsewhere.filter((u) => !u.startsWith(`${worker.base}/`));
    await check();
  } finally {
    await page.context().close();
  }
});

test('a factorial draft is built with two elements, then edited into an independent one, keeping the visual editor’s changes', async () => {
  // 401: the signed-out probe; 412: the stale save, on purpose.
  const { page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401, 412] });
  try {
    await signUp(page, 'builder', 'Bo Builder', 'Bo’s Shop');
    const site = await apiCall(page, server.base, 'POST', '/sites', { name: 'Bo’s shop', domains: ['bo.localhost'] });

    // Two elements, each with a variant, combined factorially.
    await page.goto(`${server.base}/app/experiments/new`);
    await page.getByRole('heading', { name: 'New experiment' }).waitFor();
    await page.locator('input[name="name"]').fill('Headline × button');
    const first = page.locator('[data-element="0"]');
    await first.getByLabel('CSS selector').fill('#headline');
    await first.getByLabel('Element name').fill('Headline');
    await first.locator('[data-variant="1"]').getByLabel('Variant 1').fill('Short');
    await first.locator('[data-variant="1"]').getByLabel('Its text').fill('Try it');
    await page.getByRole('button', { name: 'Add another element' }).click();
    const second = page.locator('[data-element="1"]');
    await second.getByLabel('CSS selector').fill('#cta');
    await second.getByLabel('Element name').fill('Button');
    await second.locator('[data-variant="0"]').getByLabel(/Control/).fill('Plain');
    await second.locator('[data-variant="1"]').getByLabel('Variant 1').fill('Loud');
    await second.locator('[data-variant="1"]').getByLabel('Its text').fill('Buy');
    await page.getByLabel('Factorial (multivariate)').check();
    assert.match(await page.getByText(/Every combination is an arm/).innerText(), /\(4 here\)/);
    await page.getByRole('button', { name: 'Create the experiment (as a draft)' }).click();
    await page.waitForURL(/\/app\/experiments\/[0-9a-f-]+\/results$/);
    const id = page.url().split('/').at(-2);
    const created = await apiCall(page, server.base, 'GET', `/experiments/${id}`);
    assert.equal(created.kind, 'factorial');
    assert.equal(created.site_id, site.id);
    assert.deepEqual(created.arms.map((a) => a.name).sort(), ['Control × Loud', 'Control × Plain', 'Short × Loud', 'Short × Plain']);
    assert.deepEqual(created.elements[1].variants[1].changes, [{ selector: '#cta', action: { type: 'set_text', text: 'Buy' } }]);

    // The visual editor adds a style to "Short" (through its endpoint).
    const short = created.elements[0].variants[1];
    const styled = [
      { selector: '#headline', action: { type: 'set_text', text: 'Try it' } },
      { selector: '#headline', action: { type: 'set_style', property: 'color', value: 'red' } },
    ];
    const res = await page.request.fetch(`${server.base}/api/v1/experiments/${id}/variants/${short.id}/changes`, {
      method: 'PUT',
      data: { changes: styled },
      headers: { 'x-csrf-token': await csrfToken(page, server.base), 'if-match': `"${created.version}"` },
    });
    assert.equal(res.status(), 200, await res.text());

    // Edit the draft from its page: the form holds the draft as it is.
    await page.reload();
    await page.getByRole('link', { name: 'Edit the draft' }).click();
    await page.getByRole('heading', { name: 'Edit “Headline × button”' }).waitFor();
    await accessible(page, 'editing a draft');
    assert.equal(await page.locator('input[name="name"]').inputValue(), 'Headline × button');
    assert.equal(await page.locator('[data-element="1"]').getByLabel('CSS selector').inputValue(), '#cta');
    assert.equal(await page.locator('[data-element="0"] [data-variant="1"]').getByLabel('Its text').inputValue(), 'Try it');
    await page.getByText('1 more change(s) from the visual editor, kept as they are.').waitFor();
    assert.ok(await page.getByLabel('Factorial (multivariate)').isChecked());

    // Someone else changes it meanwhile: saving is refused in a sentence.
    const current = await apiCall(page, server.base, 'GET', `/experiments/${id}`);
    const patched = await page.request.fetch(`${server.base}/api/v1/experiments/${id}`, {
      method: 'PATCH',
      data: { description: 'changed elsewhere' },
      headers: { 'x-csrf-token': await csrfToken(page, server.base), 'if-match': `"${current.version}"` },
    });
    assert.equal(patched.status(), 200, await patched.text());
    await page.locator('input[name="name"]').fill('Headline and button');
    await page.getByRole('button', { name: 'Save the draft' }).click();
    await page.getByTestId('builder-stale').waitFor();

    // Reload, edit again, save: independent now, the editor's style kept.
    await page.getByTestId('builder-stale').getByRole('button', { name: 'Reload' }).click();
    await waitFor(async () => (await page.locator('textarea[name="description"]').inputValue()) === 'changed elsewhere', { what: 'the form reloaded with the other change' });
    await page.locator('input[name="name"]').fill('Headline and button');
    await page.locator('[data-element="1"] [data-variant="1"]').getByLabel('Its text').fill('Buy now');
    await page.getByLabel('Independent').check();
    await page.getByRole('button', { name: 'Save the draft' }).click();
    await page.waitForURL(new RegExp(`/app/experiments/${id}/results$`));
    const saved = await apiCall(page, server.base, 'GET', `/experiments/${id}`);
    assert.equal(saved.name, 'Headline and button');
    assert.equal(saved.kind, 'independent');
    assert.equal(saved.description, 'changed elsewhere', 'the other change was not overwritten');
    assert.deepEqual(saved.elements[0].variants[1].changes, [
      { selector: '#headline', action: { type: 'set_style', property: 'color', value: 'red' } },
      { selector: '#headline', action: { type: 'set_text', text: 'Try it' } },
    ]);
    assert.deepEqual(saved.elements[1].variants[1].changes, [{ selector: '#cta', action: { type: 'set_text', text: 'Buy now' } }]);
    assert.equal(saved.arms.length, 4, 'independent: one arm per variant of each element');
    await page.screenshot({ path: join(SCREENSHOTS, 'console-builder-edited.png'), fullPage: true });

    // A factorial experiment with visitors: its page shows each element's main effect as
    // intervals, with the API's numbers.
    const factorial = await apiCall(page, server.base, 'POST', `/sites/${site.id}/experiments`,
      factorialExperiment('Factorial with visitors', [{ name: 'signup', primary: true, trigger: { type: 'custom', event: 'signup' } }]));
    const started = await page.request.fetch(`${server.base}/api/v1/experiments/${factorial.id}/start`, {
      method: 'POST',
      data: {},
      headers: { 'x-csrf-token': await csrfToken(page, server.base), 'if-match': `"${factorial.version}"` },
    });
    assert.equal(started.status(), 200, await started.text());
    const items = [];
    for (const [a, arm] of factorial.arms.entries()) {
      for (let i = 0; i < 40; i++) {
        const visitor = `f-${a}-${i}`;
        items.push({ id: `x-${visitor}`, type: 'exposure', site_key: site.site_key, experiment_id: factorial.id, arm_id: arm.id,
          visitor_id: visitor, propensity: 0.25, snapshot_version: 1, ts_ms: Date.now() - 60_000 });
        if (i < 4 + 3 * a) items.push({ id: `c-${visitor}`, type: 'conversion', site_key: site.site_key, visitor_id: visitor, goal: 'signup', ts_ms: Date.now() });
      }
    }
    await signedIngest(server.base, INGEST_SECRET, items);
    const factorialResults = await apiCall(page, server.base, 'GET', `/experiments/${factorial.id}/results`);
    const mains = factorialResults.analyses.filter((a) => a.scope === 'main_effect');
    assert.equal(mains.length, 2);
    await page.goto(`${server.base}/app/experiments/${factorial.id}/results`);
    const bars = page.getByTestId('interval-bars');
    await bars.first().waitFor();
    assert.equal(await bars.count(), 2, 'one interval view per element');
    for (const [k, main] of mains.entries()) {
      assert.match(await bars.nth(k).locator('h3').innerText(), new RegExp(`^${main.element_name}: main effect`));
      for (const [i, subject] of main.subjects.entries()) {
        const shown = await bars.nth(k).locator(`.interval-row[data-arm="${subject.name}"] .interval-value`).innerText();
        assert.equal(Number.parseFloat(shown), Math.round(main.result.arms[i].rate * 10000) / 100, `${subject.name}'s rate`);
      }
    }
    await accessible(page, 'a factorial experiment’s results');
    await page.screenshot({ path: join(SCREENSHOTS, 'console-factorial-results.png'), fullPage: true });
    await check();
  } finally {
    await page.context().close();
  }
});
