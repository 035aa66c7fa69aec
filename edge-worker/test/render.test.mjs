// Variants rendered at the edge: a site routed through the Worker (its host listed in a
// snapshot) gets pages from the origin (SAMPLIT_ORIGIN_OVERRIDE, a server on
// 127.0.0.1) with each change type applied in the HTML, the exposure logged through the
// queue, non-HTML and non-GET passed through, frame-blocking headers kept, and split-URL
// redirects logging exactly one exposure per visitor before the 302.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';
import { startOrigin } from './editor-harness.mjs';

const SITE = 'sk_render';
let origin;
let worker;
let cp;
let firstSnapshot;

const PAGE = `<!doctype html><html><head><title>Shop</title></head><body>
<h1 id="headline">Original headline</h1>
<p class="lead">Original lead</p>
<a id="cta" href="/signup" style="color: blue">Sign up</a>
<div id="banner">Banner</div>
<ul id="list"><li>one</li></ul>
</body></html>`;

function experiment({ id, urlRules = [], weights = [0, 1], treatment, control = [] }) {
  return {
    id, seed: `seed-${id}`, hash_version: 2, coverage: 1.0, url_rules: urlRules, exclusions: [],
    namespace: null, mode: 'single',
    elements: [{ id: 'el', selector: 'body', variants: [
      { id: 'v-control', changes: control },
      { id: 'v-treatment', changes: treatment },
    ] }],
    units: [{ id: `unit-${id}`, element_id: null, allocator: { kind: 'fixed_split', weights },
      arms: [
        { id: 'control', variants: [0], exposures: 0, conversions: 0, propensity: weights[0] },
        { id: 'treatment', variants: [1], exposures: 0, conversions: 0, propensity: weights[1] },
      ] }],
  };
}

// A page with a script and a form, and a variant that tries to reach them (signed by the
// test, so the control plane's save-time checks never saw it).
const UNSAFE_PAGE = `<!doctype html><html><head><title>U</title><script class="x" src="/app.js"></script></head><body>
<p class="x">para</p>
<form id="login" action="/login"><button class="buy">Buy</button></form>
</body></html>`;
const UNSAFE_CHANGES = [
  { selector: '.x', action: { type: 'set_text', text: 'alert(document.cookie)' } },
  { selector: '.x', action: { type: 'set_attribute', name: 'src', value: 'https://evil.example/x.js' } },
  { selector: '#login', action: { type: 'set_attribute', name: 'action', value: 'https://evil.example/steal' } },
  { selector: '.buy', action: { type: 'set_attribute', name: 'formaction', value: 'https://evil.example/steal' } },
  { selector: '#login', action: { type: 'set_attribute', name: 'data-variant', value: 'b' } },
  { action: { type: 'custom_css', code: '.x{color:red}' } },
  { action: { type: 'custom_js', code: 'window.samplitB = 1;' } },
];

const ALL_CHANGES = [
  { selector: '#headline', action: { type: 'set_text', text: 'Variant headline' } },
  { selector: 'p.lead', action: { type: 'set_html', html: '<strong>Variant lead</strong>' } },
  { selector: '#cta', action: { type: 'set_attribute', name: 'href', value: '/pricing' } },
  { selector: '#cta', action: { type: 'set_style', property: 'font-weight', value: 'bold' } },
  { selector: '#banner', action: { type: 'hide' } },
  { selector: '#list', action: { type: 'insert', position: 'append', html: '<li>two</li>' } },
  { selector: '#list', action: { type: 'insert', position: 'before', html: '<hr id="sep">' } },
  // A sibling combinator HTMLRewriter cannot match: skipped (and logged), the rest applied.
  { selector: 'h1 + p', action: { type: 'set_text', text: 'never at the edge' } },
];

before(async () => {
  origin = await startOrigin({
    '/': () => ({ headers: { 'content-type': 'text/html; charset=utf-8', 'x-frame-options': 'SAMEORIGIN', etag: '"abc"' }, body: PAGE }),
    '/style.css': () => ({ headers: { 'content-type': 'text/css' }, body: '#headline{color:red}' }),
    '/form': (req, body) => ({ headers: { 'content-type': 'text/plain' }, body: `${req.method} ${body}` }),
    '/landing': () => ({ headers: { 'content-type': 'text/html' }, body: '<html><body><h1>Landing A</h1></body></html>' }),
    '/landing-b': () => ({ headers: { 'content-type': 'text/html' }, body: '<html><body><h1>Landing B</h1></body></html>' }),
    '/unsafe': () => ({ headers: { 'content-type': 'text/html' }, body: UNSAFE_PAGE }),
    '/offsite': () => ({ headers: { 'content-type': 'text/html' }, body: '<html><body><h1>Stayed</h1></body></html>' }),
  });
  cp = await h.startControlPlane();
  worker = await h.startWorker({ vars: { SAMPLIT_ORIGIN_OVERRIDE: origin.url, SAMPLIT_CONTROL_PLANE_URL: cp.url } });
  const snapshot = {
    schema: 1, site_key: SITE, version: 1, generated_at_ms: Date.now(),
    // The Worker's own host: requests to it are this site's pages.
    allowed_origins: [worker.base], exclusions: [],
    experiments: [
      experiment({ id: '22222222-2222-4222-8222-222222222222', treatment: ALL_CHANGES,
        urlRules: [{ match: 'exact', pattern: '/', include: true }] }),
      experiment({ id: '33333333-3333-4333-8333-333333333333', weights: [0.5, 0.5],
        urlRules: [{ match: 'exact', pattern: '/landing', include: true }],
        treatment: [{ selector: 'body', action: { type: 'redirect', url: '/landing-b' } }] }),
      experiment({ id: '44444444-4444-4444-8444-444444444444', treatment: UNSAFE_CHANGES,
        urlRules: [{ match: 'exact', pattern: '/unsafe', include: true }] }),
      experiment({ id: '55555555-5555-4555-8555-555555555555',
        urlRules: [{ match: 'exact', pattern: '/offsite', include: true }],
        treatment: [{ selector: 'body', action: { type: 'redirect', url: 'https://evil.example/phish' } }] }),
    ],
  };
  firstSnapshot = snapshot;
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(snapshot));
  assert.equal(res.status, 200, await res.text());
  // The host routes to this site only through a signed route (docs/security.md).
  const routed = await h.pushRoute(worker, '127.0.0.1', h.signRoute({ host: '127.0.0.1', siteKey: SITE, version: 1 }));
  assert.equal(routed.status, 200, await routed.text());
});
after(async () => {
  await worker?.stop();
  await cp?.close();
  await origin?.close();
});

const html = { accept: 'text/html,application/xhtml+xml', 'user-agent': h.BROWSER_UA };

test('a page is served with every change type already in its HTML, and the exposure is logged', async () => {
  const res = await worker.fetch('/', { headers: html });
  assert.equal(res.status, 200);
  const body = await res.text();
  assert.ok(body.includes('<h1 id="headline">Variant headline</h1>'), body);
  assert.ok(!body.includes('Original headline') && !body.includes('Original lead'), 'the original never reaches the browser');
  assert.ok(body.includes('<p class="lead"><strong>Variant lead</strong></p>'), body);
  assert.ok(body.includes('<a id="cta" href="/pricing" style="color: blue; font-weight: bold;">'), body);
  assert.ok(body.includes('<div id="banner" style="display: none !important;">'), body);
  assert.ok(body.includes('<hr id="sep"><ul id="list"><li>one</li><li>two</li></ul>'), body);
  assert.ok(!body.includes('never at the edge'), 'the unsupported selector was skipped, not applied or fatal');

  // Not the editor: the site's frame blocking stays; per-variant cache headers are set.
  assert.equal(res.headers.get('x-frame-options'), 'SAMEORIGIN');
  assert.equal(res.headers.get('x-samplit-variant'), '22222222-2222-4222-8222-222222222222=treatment');
  assert.match(res.headers.get('etag'), /^W\/"abc-[0-9a-f]{16}"$/);
  assert.match(res.headers.get('vary'), /Cookie/i);
  const cookies = h.setCookies(res);
  const vid = cookies.samplit_vid.value;
  assert.ok(vid);

  const exposures = await h.waitFor(() => {
    const items = cp.items().filter((i) => i.type === 'exposure' && i.visitor_id === vid);
    return items.length ? items : null;
  }, { what: 'the edge-rendered exposure at the control plane' });
  assert.equal(exposures.length, 1);
  assert.equal(exposures[0].arm_id, 'treatment');
  assert.equal(exposures[0].site_key, SITE);
  assert.equal(origin.requests.filter((r) => r.url === '/').length >= 1, true);
});

test('a returning visitor keeps their arm from the cookies', async () => {
  const first = await worker.fetch('/', { headers: html });
  await first.text();
  const c = h.setCookies(first);
  const again = await worker.fetch('/', { headers: { ...html, cookie: `samplit_vid=${c.samplit_vid.value}; samplit_arms=${c.samplit_arms.value}` } });
  assert.ok((await again.text()).includes('Variant headline'));
  assert.equal(h.setCookies(again).samplit_vid, undefined, 'no new visitor cookie');
});

test('non-HTML and non-GET requests pass through untouched', async () => {
  const css = await worker.fetch('/style.css', { headers: html });
  assert.equal(css.headers.get('content-type'), 'text/css');
  assert.equal(await css.text(), '#headline{color:red}');
  assert.equal(css.headers.get('x-samplit-variant'), null);
  const post = await worker.fetch('/form', { method: 'POST', body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(await post.text(), 'POST a=1');
});

test('a split-URL test logs exactly one exposure per visitor, before the redirect', async () => {
  const visitors = 30;
  const seen = new Map(); // visitor id → arm served
  for (let i = 0; i < visitors; i++) {
    const res = await worker.fetch('/landing', { headers: html, redirect: 'manual' });
    const vid = h.setCookies(res).samplit_vid.value;
    if (res.status === 302) {
      assert.equal(res.headers.get('location'), `${worker.base}/landing-b`);
      seen.set(vid, 'treatment');
      // The browser follows with its cookies: the target is outside the test, no exposure.
      const cookie = Object.entries(h.setCookies(res)).map(([k, v]) => `${k}=${v.value}`).join('; ');
      const b = await worker.fetch('/landing-b', { headers: { ...html, cookie } });
      assert.ok((await b.text()).includes('Landing B'));
    } else {
      assert.equal(res.status, 200);
      assert.ok((await res.text()).includes('Landing A'));
      seen.set(vid, 'control');
    }
  }
  const arms = [...seen.values()];
  assert.ok(arms.includes('control') && arms.includes('treatment'), `both arms served: ${arms}`);
  const redirectExp = '33333333-3333-4333-8333-333333333333';
  const items = await h.waitFor(() => {
    const got = cp.items().filter((i) => i.type === 'exposure' && i.experiment_id === redirectExp);
    return got.length >= visitors ? got : null;
  }, { what: `${visitors} exposures of the redirect test` });
  await h.sleep(1500); // nothing more arrives
  const final = cp.items().filter((i) => i.type === 'exposure' && i.experiment_id === redirectExp);
  assert.equal(final.length, visitors, 'exactly one exposure per visitor');
  for (const item of final) assert.equal(item.arm_id, seen.get(item.visitor_id), 'the exposure names the arm served');
  assert.equal(new Set(final.map((i) => i.visitor_id)).size, visitors);
  assert.equal(items.length, visitors);
});

test('a change that matches a <script> through a class leaves it untouched, off-site form actions are not applied, custom CSS and JS are inserted', async () => {
  const res = await worker.fetch('/unsafe', { headers: html });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-samplit-variant'), '44444444-4444-4444-8444-444444444444=treatment');
  const body = await res.text();
  assert.ok(body.includes('<script class="x" src="/app.js"></script>'), `the script is untouched: ${body}`);
  assert.ok(!body.includes('evil.example/x.js"></script>') && !body.includes('>alert(document.cookie)</script>'), body);
  assert.ok(body.includes('<p class="x" src="https://evil.example/x.js">alert(document.cookie)</p>'), `an ordinary element still changes: ${body}`);
  assert.ok(body.includes('<form id="login" action="/login" data-variant="b">'), `the off-site action is not applied: ${body}`);
  assert.ok(body.includes('<button class="buy">Buy</button>'), `nor the off-site formaction: ${body}`);
  assert.ok(body.includes('</head><style data-samplit-custom>.x{color:red}</style><body>'), `custom CSS before the body: ${body}`);
  assert.ok(body.endsWith('</html><script data-samplit-custom>window.samplitB = 1;</script>'), `custom JS at the end: ${body}`);
});

test('a redirect to another site is not followed: the page is served', async () => {
  for (let i = 0; i < 5; i++) {
    const res = await worker.fetch('/offsite', { headers: html, redirect: 'manual' });
    assert.equal(res.status, 200, 'never a 302 to evil.example');
    assert.ok((await res.text()).includes('Stayed'));
  }
});

test('a snapshot carrying a javascript: href is refused whole; the page keeps the last good variant', async () => {
  const bad = structuredClone(firstSnapshot);
  bad.version = 2;
  bad.experiments[0].elements[0].variants[1].changes = [
    { selector: '#cta', action: { type: 'set_attribute', name: 'href', value: 'java\tscript:alert(1)' } },
  ];
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(bad));
  assert.ok(res.status >= 400 && res.status < 500, `refused: ${res.status} ${await res.text()}`);
  const page = await (await worker.fetch('/', { headers: html })).text();
  assert.ok(!page.includes('script:'), page);
  assert.ok(page.includes('<a id="cta" href="/pricing"'), `version 1 still served: ${page}`);
});

test('hosts no snapshot lists are not rendered', async () => {
  // The Worker's /v1 routes still answer, and unknown /v1 paths are 404 as before.
  const res = await worker.fetch('/v1/nothing-here');
  assert.equal(res.status, 404);
});
