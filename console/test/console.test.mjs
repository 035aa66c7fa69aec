// The console in a real browser (Chromium via playwright-core) against the real control
// plane and PostgreSQL (console/test/harness.mjs): a new user signs up, sees the
// onboarding checklist's real state, creates a site (its server secret shown once), reads
// its snippet and domain instructions; an experiment runs, visitors arrive through the
// signed ingest endpoint, and the results page shows the API's numbers and the
// cumulative-rate chart; Spanish is one switch away; a viewer gets no edit controls and
// the server refuses them anyway; a state change without the CSRF token fails. Every page
// is checked with axe-core (no serious or critical violation) and for CSP violations,
// console errors and foreign requests, and photographed at desktop and phone widths
// (target/screenshots/console-*.png).
//
//   node --test console/test/console.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { accessible, apiCall, csrfToken, launchBrowser, openPage, psql, SCREENSHOTS, signedIngest, startConsoleServer } from './harness.mjs';

const INGEST_SECRET = randomBytes(32).toString('hex');
const PASSWORD = 'correct horse battery';
const DESKTOP = { viewport: { width: 1280, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let server;
let browser;
const owner = { email: `owner-${randomBytes(4).toString('hex')}@example.com` };

before(async () => {
  // Plain http on loopback (the development cookie, see docs/api.md); no Worker here,
  // so publications fail (and show so).
  server = await startConsoleServer({ ingestSecret: INGEST_SECRET });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function shoot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `console-${name}.png`), fullPage: true });
}

/** The page's session CSRF token, as the console itself gets it. */
/** Sends a batch to the signed ingest endpoint, as the edge's queue consumer does. */
const ingest = (items) => signedIngest(server.base, INGEST_SECRET, items);

async function signIn(page, email) {
  await page.goto(`${server.base}/app`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Get started' }).waitFor();
}

test('a new user signs up, creates a site, and watches an experiment’s results', async () => {
  // 401: the signed-out session probe; 412 and 422: the stale Pause and the too-long
  // password, on purpose.
  const { context, page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401, 412, 422] });
  try {
    // Signed out: the sign-in page (the session probe's 401 is expected).
    await page.goto(`${server.base}/app`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await accessible(page, 'sign-in');
    await shoot(page, 'signin-desktop');

    await page.getByRole('button', { name: 'New to Samplit? Create an account' }).click();
    await page.getByLabel('Your name').fill('Olivia Owner');
    await page.getByLabel('Company or team name').fill('Olivia’s Shop');
    await page.getByLabel('Email').fill(owner.email);
    await page.getByLabel('Password').fill('x'.repeat(129));
    await page.getByRole('button', { name: 'Create an account' }).click();
    // The server's field error, under its field.
    await page.locator('#password-error').filter({ hasText: /128/ }).waitFor();
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create an account' }).click();

    // The checklist shows the real state: nothing done yet.
    await page.getByRole('heading', { name: 'Get started' }).waitFor();
    assert.equal(await page.locator('.checklist li.done').count(), 0);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'samplit_session');
    assert.ok(session?.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(session.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie), '', 'the script cannot read it');
    await accessible(page, 'overview');
    await shoot(page, 'overview-desktop');
    // One row at 1280 px: the person's and the organisation's settings sit in the
    // account menu (an owner sees every entry, the longest top bar there is).
    const middle = async (selector) => {
      const box = await page.locator(selector).first().boundingBox();
      return box.y + box.height / 2;
    };
    const row = await middle('header.topbar .brand');
    for (const selector of ['header.topbar nav a', 'header.topbar nav a[href="/docs"]', '[data-testid=org-switcher]', '[data-testid=account-menu]']) {
      const y = await middle(selector);
      assert.ok(Math.abs(y - row) < 16, `the top bar wraps: ${selector} is ${y - row} px off the brand's row`);
    }
    await page.getByTestId('account-menu').click();
    for (const id of ['nav-account', 'nav-notifications', 'nav-webhooks', 'nav-audit']) {
      assert.ok(await page.getByTestId(id).isVisible(), `${id} in the open menu`);
    }
    await shoot(page, 'account-menu-desktop');
    await page.getByTestId('account-menu').click();

    // A site, from the Sites page.
    await page.getByRole('link', { name: 'Sites' }).click();
    await page.getByRole('heading', { name: 'Sites', exact: true }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Shop');
    await page.getByLabel('Domains').fill('shop.example');
    await page.getByRole('button', { name: 'Create' }).click();
    const secret = page.locator('code.secret');
    await secret.waitFor();
    assert.match(await secret.innerText(), /^ss_[A-Za-z0-9_-]{40,}$/, 'the server secret, shown once');
    await accessible(page, 'sites');
    await shoot(page, 'sites-desktop');

    await page.getByRole('link', { name: 'Shop' }).click();
    await page.getByRole('heading', { name: 'Shop' }).waitFor();
    assert.match(await page.getByTestId('snippet').innerText(), /samplit\.js/);
    const domain = page.locator('li.domain[data-host="shop.example"]');
    assert.match(await domain.innerText(), /Pending/);
    assert.match(await domain.innerText(), /_samplit\.shop\.example/);
    // Exclusion rules, one form per kind; the engine's refusal shows as a sentence.
    const rules = page.getByRole('form', { name: 'Add the rule' });
    await rules.getByLabel('Address, CIDR or range').fill('10.0.0.0/33');
    await rules.getByRole('button', { name: 'Add the rule' }).click();
    await page.locator('.exclusions .alert-error').filter({ hasText: /exclusions\[0\]|invalid/ }).waitFor();
    await rules.getByLabel('Address, CIDR or range').fill('10.0.0.0/8');
    await rules.getByRole('button', { name: 'Add the rule' }).click();
    await page.getByTestId('exclusions').filter({ hasText: 'IP in 10.0.0.0/8' }).waitFor();
    await rules.getByLabel('Rule').selectOption('cookie');
    await rules.getByLabel('Name', { exact: true }).fill('staff');
    await rules.getByRole('button', { name: 'Add the rule' }).click();
    await page.getByTestId('exclusions').filter({ hasText: 'Cookie staff (any value)' }).waitFor();
    const stored = (await apiCall(page, server.base, 'GET', '/sites'))[0].exclusions;
    assert.deepEqual(stored, [{ type: 'ip', range: '10.0.0.0/8' }, { type: 'cookie', name: 'staff', value: null }]);
    await accessible(page, 'site');
    await shoot(page, 'site-desktop');
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.locator('.checklist li[data-step="1"].done').waitFor();

    // CSRF: the cookie alone cannot change anything.
    const forged = await page.request.post(`${server.base}/api/v1/sites`, { data: { name: 'Forged', domains: ['forged.example'] } });
    assert.equal(forged.status(), 403, await forged.text());
    const wrong = await page.request.post(`${server.base}/api/v1/sites`, {
      data: { name: 'Forged', domains: ['forged.example'] },
      headers: { 'x-csrf-token': 'ab'.repeat(32) },
    });
    assert.equal(wrong.status(), 403, await wrong.text());

    // An experiment, from the builder: one element, a variant with new text, a goal.
    const [site] = await apiCall(page, server.base, 'GET', '/sites');
    await page.getByRole('link', { name: 'Experiments' }).click();
    await page.getByRole('link', { name: 'New experiment' }).click();
    await page.getByRole('heading', { name: 'New experiment' }).waitFor();
    await page.locator('fieldset', { hasText: 'What and where' }).getByLabel('Name', { exact: true }).fill('Hero headline');
    await page.getByLabel('CSS selector').fill('#hero h1');
    await page.getByLabel('Variant 1').fill('Short');
    await page.getByLabel('Its text').fill('Buy now');
    await accessible(page, 'builder');
    await shoot(page, 'builder-desktop');
    await page.getByRole('button', { name: 'Create the experiment (as a draft)' }).click();
    await page.locator('h1 .badge').or(page.locator('.alert-error')).first().waitFor();
    assert.equal(await page.locator('.alert-error').count(), 0, await page.locator('main').innerText());
    const id = /\/experiments\/([0-9a-f-]{36})\/results/.exec(page.url())?.[1];
    assert.ok(id, page.url());
    const experiment = await apiCall(page, server.base, 'GET', `/experiments/${id}`);
    assert.equal(experiment.status, 'draft');
    assert.deepEqual(experiment.arms.map((a) => a.name), ['Control', 'Short']);
    assert.equal(experiment.elements[0].selector, '#hero h1');
    assert.deepEqual(experiment.goals.map((g) => [g.name, g.primary]), [['signup', true]]);
    // Started from its page (the lifecycle buttons send the version they showed).
    await page.locator('h1 .badge', { hasText: 'Draft' }).waitFor();
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('h1 .badge', { hasText: 'Running' }).waitFor();
    const [control, short] = experiment.arms;
    const items = [];
    const now = Date.now();
    const visitors = { [control.id]: [60, 6], [short.id]: [55, 14] };
    for (const [arm, [n, converted]] of Object.entries(visitors)) {
      for (let i = 0; i < n; i++) {
        const visitor = `v-${arm.slice(0, 8)}-${i}`;
        items.push({ id: `x-${visitor}`, type: 'exposure', site_key: site.site_key, experiment_id: experiment.id,
          arm_id: arm, visitor_id: visitor, propensity: 0.5, snapshot_version: 1, ts_ms: now - 60_000 });
        if (i < converted) {
          items.push({ id: `c-${visitor}`, type: 'conversion', site_key: site.site_key, visitor_id: visitor, goal: 'signup', ts_ms: now });
        }
      }
    }
    await ingest(items);
    const results = await apiCall(page, server.base, 'GET', `/experiments/${experiment.id}/results`);

    await page.reload();
    const table = page.getByTestId('results-table');
    await table.waitFor();
    const analysis = results.analyses[0];
    for (const [i, arm] of analysis.result.arms.entries()) {
      const name = analysis.subjects[i].name;
      const row = table.locator(`tr[data-arm="${name}"]`);
      assert.equal(await row.locator('[data-field="visitors"]').innerText(), String(arm.visitors), `${name} visitors`);
      assert.equal(await row.locator('[data-field="conversions"]').innerText(), String(arm.conversions), `${name} conversions`);
      const best = await row.locator('[data-field="chance_to_be_best"]').innerText();
      assert.equal(Number.parseFloat(best), Math.round(arm.chance_to_be_best * 1000) / 10, `${name} chance to be best`);
    }
    assert.deepEqual(analysis.result.arms.map((a) => a.visitors), [60, 55]);
    assert.ok((await page.getByTestId('recommendation').innerText()).length > 10);
    await page.locator('[data-testid="cumulative-chart"] canvas').waitFor();
    // Each arm's rate comes with its interval (lower and upper, from the timeseries).
    const rateLegend = await page.locator('[data-testid="cumulative-chart"] .u-legend').innerText();
    for (const name of analysis.subjects.map((x) => x.name)) {
      assert.ok(rateLegend.includes(`${name} −95 %`) && rateLegend.includes(`${name} +95 %`), rateLegend);
    }
    await page.locator('[data-testid="best-chart"] canvas').waitFor();
    // No Worker runs in this test, so no snapshot reached an edge: the traffic plot says so.
    await page.getByTestId('traffic-empty').waitFor();
    // Two snapshots as the publisher records them once an edge accepts them (the full
    // stack with a Worker is tests/: here only the page's reading of them is checked).
    for (const [version, minutes, shares] of [[1000, 10, [0.5, 0.5]], [1001, 5, [0.3, 0.7]]]) {
      const weights = JSON.stringify([{ experiment_id: experiment.id, units: [{ unit_id: experiment.id, allocator: 'thompson',
        arms: [control, short].map((a, i) => ({ arm_id: a.id, exposures: 0, conversions: 0, propensity: shares[i] })) }] }]);
      psql(`INSERT INTO snapshot_publications (site_id, version, hash, content_hash, weights, status, attempts, published_at)
            VALUES ('${site.id}', ${version}, 'h${version}', 'c${version}', '${weights}', 'published', 1, now() - interval '${minutes} minutes')`,
        server.databaseUrl);
    }
    await page.reload();
    await page.locator('[data-testid="traffic-chart"] canvas').waitFor();
    const legend = await page.getByTestId('traffic-chart').innerText();
    assert.match(legend, /Control/);
    assert.match(legend, /Short/);

    // Someone else pauses it meanwhile: this page's Pause is refused (412), in a sentence,
    // and nothing is overwritten; after a reload the page offers what fits the new state.
    const current = await apiCall(page, server.base, 'GET', `/experiments/${experiment.id}`);
    await apiCall(page, server.base, 'POST', `/experiments/${experiment.id}/pause`, {}, { 'if-match': `"${current.version}"` });
    await page.getByRole('button', { name: 'Complete' }).click();
    await page.getByTestId('lifecycle-error').filter({ hasText: 'Someone changed this experiment' }).waitFor();
    assert.equal((await apiCall(page, server.base, 'GET', `/experiments/${experiment.id}`)).status, 'paused', 'not completed');
    await page.getByRole('button', { name: 'Reload' }).click();
    await page.locator('h1 .badge', { hasText: 'Paused' }).waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('h1 .badge', { hasText: 'Running' }).waitFor();
    await accessible(page, 'results');
    await shoot(page, 'results-desktop');

    // Spanish, from the switch; the choice is remembered.
    await page.getByTestId('lang-switcher').selectOption('es');
    await page.getByRole('link', { name: 'Experimentos' }).waitFor();
    assert.match(await table.locator('thead').innerText(), /Visitantes/);
    await shoot(page, 'results-desktop-es');
    await page.reload();
    await page.getByRole('link', { name: 'Experimentos' }).waitFor();
    await page.getByTestId('lang-switcher').selectOption('en');
    await check();

    // A read-only share link: opened by someone with no account, then revoked.
    await page.getByRole('button', { name: 'Create a share link' }).click();
    const link = await page.getByTestId('share-link').innerText();
    assert.match(link, new RegExp(`^${server.base}/app/share/rs_[0-9a-f]{64}$`));
    const stranger = await openPage(browser, server.base, DESKTOP, { allowStatus: [404] });
    try {
      await stranger.page.goto(link);
      const shared = stranger.page.getByTestId('results-table');
      await shared.waitFor();
      assert.equal(await shared.locator('tr[data-arm="Short"] [data-field="visitors"]').innerText(), '55');
      assert.equal(await stranger.page.getByRole('link', { name: 'Sites' }).count(), 0, 'nothing else of the console');
      await accessible(stranger.page, 'shared results');
      await shoot(stranger.page, 'shared-desktop');
      await page.getByRole('button', { name: 'Revoke' }).click();
      await page.locator('.shares').getByText('(revoked)').waitFor();
      await stranger.page.reload();
      await stranger.page.getByText('share link not found').waitFor();
      await stranger.check();
    } finally {
      await stranger.context.close();
    }

    // A draft beside it, for the list's filters.
    await apiCall(page, server.base, 'POST', `/sites/${site.id}/experiments`, {
      name: 'Checkout 100% button',
      kind: 'single',
      elements: [{ name: 'Button', selector: '#buy', variants: [{ name: 'Control', is_control: true }, { name: 'Green' }] }],
      goals: [{ name: 'signup', primary: true, trigger: { type: 'custom', event: 'signup' } }],
    });
    // What the list page asks the server for.
    const asked = [];
    const onRequest = (req) => {
      const url = new URL(req.url());
      if (url.pathname.startsWith('/api/v1/experiments')) asked.push(url);
    };
    page.on('request', onRequest);
    // The list's live headline for the row: the results' visitors and leader.
    await page.getByRole('link', { name: 'Experiments' }).click();
    const headline = page.getByTestId('headline');
    await headline.waitFor();
    const leader = analysis.result.arms.reduce((b, a, i, all) => (a.chance_to_be_best > all[b].chance_to_be_best ? i : b), 0);
    assert.match(await headline.innerText(), new RegExp(`^115 visitors; leader ${analysis.subjects[leader].name} \\(`));
    const rows = page.locator('.table-wrap tbody tr');
    assert.equal(await rows.count(), 2);
    // One page from the server, and every headline of it in one call (the draft has none).
    const paths = asked.map((u) => u.pathname);
    assert.deepEqual(paths, ['/api/v1/experiments', '/api/v1/experiments/headlines'], asked.join(' '));
    assert.equal(asked[0].searchParams.get('limit'), '20');
    assert.equal(asked[0].searchParams.get('offset'), '0');
    assert.equal(asked[1].searchParams.get('ids'), experiment.id);
    await accessible(page, 'experiments');
    await shoot(page, 'experiments-desktop');
    // The search box asks the server once the typing pauses; `%` is a character.
    asked.length = 0;
    const search = page.getByLabel('Search');
    await search.pressSequentially('0% b', { delay: 20 });
    await page.locator('.table-wrap tbody tr', { hasText: 'Checkout 100% button' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('.table-wrap tbody tr').length === 1);
    const searched = asked.filter((u) => u.pathname === '/api/v1/experiments').map((u) => u.searchParams.get('q'));
    assert.equal(searched.at(-1), '0% b', searched.join(' | '));
    assert.ok(searched.length < 4, `debounced: ${searched.join(' | ')}`);
    assert.ok(!asked.some((u) => u.pathname === '/api/v1/experiments/headlines'), 'a page of drafts needs no headline');
    // With the status filter, nothing matches; without the search, the running one only.
    await page.getByLabel('Status').selectOption('running');
    await page.getByText('No experiment matches.').waitFor();
    await search.fill('');
    await headline.waitFor();
    assert.equal(await rows.count(), 1);
    const last = asked.filter((u) => u.pathname === '/api/v1/experiments').at(-1);
    assert.equal(last.searchParams.get('status'), 'running');
    assert.equal(last.searchParams.get('q'), null);
    await page.getByLabel('Status').selectOption('');
    await page.waitForFunction(() => document.querySelectorAll('.table-wrap tbody tr').length === 2);
    page.off('request', onRequest);

    // Invite a viewer (for the next test) from the Team page: the token is shown once.
    await page.getByRole('link', { name: 'Team' }).click();
    const inviteForm = page.getByRole('form', { name: 'Invite' });
    await inviteForm.getByLabel('Email').fill(`viewer-${owner.email}`);
    await inviteForm.getByLabel('Role').selectOption('viewer');
    await inviteForm.getByRole('button', { name: 'Invite' }).click();
    const token = page.getByTestId('shown-secret');
    await token.waitFor();
    owner.invitation = await token.innerText();
    assert.match(owner.invitation, /^inv_|^[A-Za-z0-9_-]{20,}$/);
    await page.getByText(`viewer-${owner.email}`).first().waitFor();
    const keyForm = page.getByRole('form', { name: 'Create API key' });
    await keyForm.getByLabel('Name', { exact: true }).fill('ci');
    await keyForm.getByRole('button', { name: 'Create API key' }).click();
    await page.getByTestId('shown-secret').filter({ hasText: /^sk_[0-9a-f]{64}$/ }).waitFor();
    await page.getByText('never used').waitFor();
    await accessible(page, 'team');
    await shoot(page, 'team-desktop');
    // The audit log records it all, and its hash chain verifies.
    await page.getByTestId('account-menu').click();
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByTestId('chain').filter({ hasText: 'intact' }).waitFor();
    await page.getByText('invitation.created').waitFor();
    await accessible(page, 'audit');
    await shoot(page, 'audit-desktop');
    await check();
    owner.experiment = experiment.id;
  } finally {
    await context.close();
  }
});

test('a viewer sees no edit controls and the server refuses them anyway', async () => {
  assert.ok(owner.invitation, 'the first test ran');
  const accepted = await fetch(`${server.base}/api/v1/invitations/accept`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: owner.invitation, password: PASSWORD, name: 'Vic Viewer' }),
  });
  assert.equal(accepted.status, 200, await accepted.text());
  const { context, page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    await signIn(page, `viewer-${owner.email}`);
    await page.getByText('You are a viewer in this organization').waitFor();
    await page.getByRole('link', { name: 'Sites' }).click();
    await page.getByRole('link', { name: 'Shop' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Create' }).count(), 0, 'no create form');
    await page.getByRole('link', { name: 'Shop' }).click();
    await page.getByTestId('snippet').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Rotate server secret' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Verify by DNS' }).count(), 0);
    await accessible(page, 'site as viewer');
    await page.goto(`${server.base}/app/experiments/${owner.experiment}/results`);
    await page.getByTestId('results-table').waitFor();
    assert.equal(await page.locator('.lifecycle button').count(), 0, 'no lifecycle buttons for a viewer');
    const refused = await page.request.post(`${server.base}/api/v1/sites`, {
      data: { name: 'Nope', domains: ['nope.example'] },
      headers: { 'x-csrf-token': await csrfToken(page, server.base) },
    });
    assert.equal(refused.status(), 403, await refused.text());

    // Viewers plan: the calculator shows the engine's plan, as the API gives it.
    await page.getByRole('link', { name: 'Planning' }).click();
    await page.getByRole('button', { name: 'Compute' }).click();
    const plan = page.getByTestId('plan');
    await plan.waitFor();
    const api = await (await page.request.get(
      `${server.base}/api/v1/planning/sample-size?baseline_rate=0.05&minimum_detectable_effect=0.1&visitors_per_day=1000&arms=2&power=0.8`,
    )).json();
    for (const test of ['always_valid', 'fixed_horizon']) {
      const days = await plan.locator(`tr[data-test="${test}"] [data-field="days"]`).innerText();
      assert.equal(days.replace(/\D/g, ''), String(api[test].days), `${test} days`);
    }
    await accessible(page, 'planning');
    await shoot(page, 'planning-desktop');
    await check();
  } finally {
    await context.close();
  }
});

// The page the WordPress plugin's "Connect to Samplit" button opens (its end-to-end test
// drives it; here it is only looked at, on a desktop and on a phone).
const WP_CONNECT = `/connect/wordpress?${new URLSearchParams({
  site_url: 'https://blog.example.com',
  return_url: 'https://blog.example.com/wp-admin/options-general.php?page=samplit',
  state: 'st_0123456789abcdef',
})}`;

test('desktop: the WordPress connect page names the blog and offers the sites', async () => {
  const { context, page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    await signIn(page, owner.email);
    await page.goto(`${server.base}/app${WP_CONNECT}`);
    await page.locator('main h1').first().waitFor();
    await page.getByText('blog.example.com').first().waitFor();
    await accessible(page, 'connect-wordpress');
    await shoot(page, 'connect-wordpress');
    await check();
  } finally {
    await context.close();
  }
});

test('phone: every page fits the screen and stays accessible', async () => {
  const { context, page, check } = await openPage(browser, server.base, PHONE, { allowStatus: [401] });
  try {
    await shootPhone(page, 'signin');
    await signIn(page, owner.email);
    for (const [path, name] of [['', 'overview'], ['/sites', 'sites'], ['/experiments', 'experiments'], [`/experiments/${owner.experiment}/results`, 'results'], [WP_CONNECT, 'connect-wordpress']]) {
      await page.goto(`${server.base}/app${path}`);
      await page.locator('main h1').first().waitFor();
      if (name === 'results') await page.getByTestId('results-table').waitFor();
      await shootPhone(page, name);
    }
    await check();
  } finally {
    await context.close();
  }
});

async function shootPhone(page, name) {
  if (name === 'signin') {
    await page.goto(`${server.base}/app`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  }
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the phone`);
  await accessible(page, `${name} (phone)`);
  await shoot(page, `${name}-phone`);
}
