// The site snippet (GET /v1/samplit.js) run in a small fake DOM (node:vm), talking to
// the real Worker under workerd: it hides only the targeted elements while it waits,
// applies the assigned changes, un-hides, tracks with beacons, and gives up hiding
// after 1 s when the edge does not answer. Change types and goals use a stubbed answer.
// The visitor id it announces (samplit.visitor, the `samplit:visitor` event, the cookie
// data-first-party-cookie asks for) is checked here to the byte, and in Chromium, on a
// real origin, by snippet-visitor.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import * as h from './harness.mjs';

const SITE = 'sk_test_snippet';
let worker;
let source;

before(async () => {
  worker = await h.startWorker();
  // Everyone gets `treatment`, which sets #headline's text.
  const res = await h.pushSnapshot(worker, SITE, h.signSnapshot(h.testSnapshot({ siteKey: SITE, weights: [0, 1] })));
  assert.equal(res.status, 200);
  source = await (await worker.fetch('/v1/samplit.js')).text();
});
after(async () => { await worker?.stop(); });

class El {
  constructor(selector) {
    this.selector = selector;
    this.textContent = '';
    this.innerHTML = '';
    this.attrs = {};
    this.styles = {};
    this.inserted = [];
    this.parentNode = null;
    this.style = { setProperty: (k, v) => { this.styles[k] = v; } };
  }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
  insertAdjacentHTML(pos, html) { this.inserted.push([pos, html]); }
  closest(sel) { return sel === this.selector ? this : null; }
}

/**
 * A page with elements addressable by exact selector. `fetchImpl` defaults to the real
 * Worker; beacons are recorded and forwarded to it. `scriptAttrs` are extra attributes
 * of the snippet's tag; each `document.cookie` write, `samplit:visitor` event and
 * console warning is recorded.
 */
function page({ url = 'https://shop.example.com/pricing', storage = new Map(), fetchImpl, elements = ['#headline'], code = source, nodes = {}, scriptAttrs = {}, cookieJar = '', referrer = '' } = {}) {
  const els = Object.fromEntries(elements.map((s) => [s, new El(s)]));
  els['#headline'] && (els['#headline'].textContent = 'Original');
  const listeners = {};
  const head = {
    children: [],
    appendChild(n) { n.parentNode = head; head.children.push(n); },
    removeChild(n) { head.children = head.children.filter((c) => c !== n); n.parentNode = null; },
  };
  const script = new El('script');
  script.src = `${worker.base}/v1/samplit.js`;
  script.setAttribute('data-site-key', SITE);
  for (const [k, v] of Object.entries(scriptAttrs)) script.setAttribute(k, v);
  const cookies = [];
  const visitorEvents = [];
  const warnings = [];
  const win = new EventTarget();
  win.addEventListener('samplit:visitor', (e) => visitorEvents.push({ ...e.detail }));
  const beacons = [];
  const forwarded = [];
  const replaced = [];
  const document = {
    currentScript: script,
    referrer,
    readyState: 'loading',
    head,
    documentElement: head,
    createElement: (tag) => new El(tag),
    querySelector: (sel) => { if (/[!]/.test(sel)) throw new SyntaxError(sel); return els[sel] ?? null; },
    querySelectorAll: (sel) => { if (/[!]/.test(sel)) throw new SyntaxError(sel); return nodes[sel] ?? (els[sel] ? [els[sel]] : []); },
    addEventListener: (type, fn) => { (listeners[type] ??= []).push(fn); },
    set cookie(v) { cookies.push(v); },
    get cookie() { return cookieJar; },
  };
  const sandbox = {
    document,
    location: { href: url, protocol: new URL(url).protocol, replace: (u) => replaced.push(u) },
    localStorage: { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, String(v)) },
    navigator: {
      sendBeacon(target, body) {
        beacons.push({ target, body: JSON.parse(body) });
        forwarded.push(fetch(target, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body }).then((r) => r.status));
        return true;
      },
    },
    crypto: { getRandomValues: (b) => { for (let i = 0; i < b.length; i++) b[i] = (Math.random() * 256) | 0; return b; } },
    fetch: fetchImpl ?? ((u, init) => fetch(u, { ...init, headers: { ...init.headers, 'user-agent': h.BROWSER_UA } })),
    URL,
    setTimeout,
    clearTimeout,
    CustomEvent,
    addEventListener: win.addEventListener.bind(win),
    dispatchEvent: win.dispatchEvent.bind(win),
    console: { warn: (...args) => warnings.push(args.join(' ')) },
  };
  sandbox.window = sandbox;
  vm.createContext(sandbox);
  return {
    run: () => vm.runInContext(code, sandbox),
    els,
    head,
    beacons,
    forwarded,
    replaced,
    storage,
    cookies,
    visitorEvents,
    warnings,
    samplit: () => sandbox.samplit,
    hiddenCss: () => head.children.map((s) => s.textContent).join(''),
    domReady: () => { document.readyState = 'interactive'; (listeners.DOMContentLoaded ?? []).forEach((f) => f()); },
    click: (el) => (listeners.click ?? []).forEach((f) => f({ target: el })),
  };
}

const stub = (answer) => () => Promise.resolve({ ok: true, json: () => Promise.resolve(answer) });

test('the snippet hides only the targeted element, applies the change, then un-hides', { timeout: 30000 }, async () => {
  const p = page();
  p.run();
  await h.waitFor(() => p.hiddenCss().includes('#headline'), { timeoutMs: 10000, what: 'the targeted selector hidden' });
  assert.equal(p.hiddenCss(), '#headline{visibility:hidden!important}', 'only the targeted selector');
  assert.equal(p.els['#headline'].textContent, 'Original', 'nothing applied before the DOM is ready');
  p.domReady();
  assert.equal(p.els['#headline'].textContent, 'Try it free');
  assert.equal(p.head.children.length, 0, 'the hiding style is removed after apply');
  assert.equal(p.samplit().assignments[0].arm_id, 'treatment');
  // A pageview went out as a beacon, and the Worker accepted it.
  await h.waitFor(() => p.beacons.length >= 1, { timeoutMs: 5000, what: 'the pageview beacon' });
  assert.equal(p.beacons[0].body.events[0].type, 'pageview');
  assert.deepEqual(await Promise.all(p.forwarded), [202]);
  const saved = JSON.parse(p.storage.get(`samplit:${SITE}`));
  assert.deepEqual(saved.hide, ['#headline']);
  const token = saved.arms[p.samplit().assignments[0].sticky_key];
  assert.match(token, /^treatment\.[A-Za-z0-9_-]{22}$/, 'the edge\'s sticky token is kept as given');

  // The next page view sends the token back (with the visitor id), and the edge obeys it.
  const sent = [];
  const next = page({
    storage: p.storage,
    referrer: 'https://www.google.com/',
    fetchImpl: (u, init) => {
      sent.push(JSON.parse(init.body));
      return fetch(u, { ...init, headers: { ...init.headers, 'user-agent': h.BROWSER_UA } });
    },
  });
  next.run();
  await h.waitFor(() => next.samplit().assignments.length > 0, { timeoutMs: 10000, what: 'assignments' });
  assert.equal(sent[0].sticky[p.samplit().assignments[0].sticky_key], token, 'what it got is what it sends back');
  assert.equal(sent[0].referrer, 'https://www.google.com/', 'document.referrer goes with the call (the exposure context)');
  assert.equal(next.samplit().assignments[0].sticky, true, 'the edge honoured the token');
  next.domReady();
  await Promise.allSettled(next.forwarded);
});

test('on the next page view the remembered selectors are hidden before the edge answers', { timeout: 30000 }, async () => {
  const first = page();
  first.run();
  await h.waitFor(() => first.samplit().assignments.length > 0, { timeoutMs: 10000, what: 'assignments' });
  const second = page({ storage: first.storage, fetchImpl: () => new Promise(() => {}) });
  second.run();
  assert.equal(second.hiddenCss(), '#headline{visibility:hidden!important}', 'hidden synchronously');
  await Promise.allSettled(first.forwarded);
});

test('on a first visit, the site script (?site=) hides the targeted selectors before the edge answers', { timeout: 30000 }, async () => {
  const siteSource = await (await worker.fetch(`/v1/samplit.js?site=${SITE}`)).text();
  const p = page({ code: siteSource, fetchImpl: () => new Promise(() => {}) });
  p.run();
  assert.equal(p.storage.size, 0, 'nothing remembered: a first visit');
  assert.equal(p.hiddenCss(), '#headline{visibility:hidden!important}', 'hidden synchronously, from the site script');
  // The plain script has nothing to hide on a first visit.
  const plain = page({ fetchImpl: () => new Promise(() => {}) });
  plain.run();
  assert.equal(plain.hiddenCss(), '');
});

test('the hiding gives up after at most 1 s when the edge does not answer', { timeout: 30000 }, async () => {
  const storage = new Map([[`samplit:${SITE}`, JSON.stringify({ hide: ['#headline', 'bad!!selector'] })]]);
  const p = page({ storage, fetchImpl: () => new Promise(() => {}) });
  const t0 = Date.now();
  p.run();
  assert.equal(p.hiddenCss(), '#headline{visibility:hidden!important}', 'an invalid selector is dropped');
  await h.waitFor(() => p.head.children.length === 0, { timeoutMs: 3000, every: 20, what: 'un-hide' });
  const waited = Date.now() - t0;
  assert.ok(waited >= 900 && waited < 1500, `un-hid after ${waited} ms`);
});

test('samplit.track sends a conversion beacon the Worker accepts', { timeout: 30000 }, async () => {
  const p = page();
  p.run();
  p.samplit().track('signup', 25); // before the assignment: queued, sent with the pageview
  p.domReady();
  await h.waitFor(() => p.beacons.length >= 1, { timeoutMs: 10000, what: 'beacons' });
  p.samplit().track('upgrade');
  const events = p.beacons.flatMap((b) => b.body.events);
  assert.deepEqual(events.filter((e) => e.type === 'conversion').map((e) => [e.goal, e.value]), [['signup', 25], ['upgrade', undefined]]);
  for (const b of p.beacons) {
    assert.equal(b.target, `${worker.base}/v1/events`);
    assert.equal(b.body.site_key, SITE);
    assert.ok(b.body.visitor_id);
  }
  assert.deepEqual(await Promise.all(p.forwarded), p.forwarded.map(() => 202));
});

test('every change type is applied as the engine describes it', { timeout: 30000 }, async () => {
  const changes = [
    { selector: '#t', action: { type: 'set_text', text: '<b>literal</b>' } },
    { selector: '#h', action: { type: 'set_html', html: '<b>bold</b>' } },
    { selector: '#a', action: { type: 'set_attribute', name: 'href', value: '/pricing' } },
    { selector: '#s', action: { type: 'set_style', property: 'color', value: 'red' } },
    { selector: '#x', action: { type: 'hide' } },
    { selector: '#i', action: { type: 'insert', position: 'before', html: '<p>new</p>' } },
    { selector: '#i', action: { type: 'insert', position: 'append', html: '<p>end</p>' } },
    { selector: 'body', action: { type: 'redirect', url: '/landing-b' } },
  ];
  const answer = { visitor_id: 'v1', excluded: null, assignments: [{ experiment_id: 'e', arm_id: 'b', sticky_key: 'e', changes }] };
  const p = page({ fetchImpl: stub(answer), elements: ['#t', '#h', '#a', '#s', '#x', '#i', 'body'] });
  p.run();
  await h.waitFor(() => p.hiddenCss().includes('#t'), { timeoutMs: 5000, what: 'hide' });
  assert.ok(!p.hiddenCss().includes('body'), 'a redirect hides nothing');
  p.domReady();
  assert.equal(p.els['#t'].textContent, '<b>literal</b>');
  assert.equal(p.els['#h'].innerHTML, '<b>bold</b>');
  assert.equal(p.els['#a'].getAttribute('href'), '/pricing');
  assert.equal(p.els['#s'].styles.color, 'red');
  assert.equal(p.els['#x'].styles.display, 'none');
  assert.deepEqual(p.els['#i'].inserted, [['beforebegin', '<p>new</p>'], ['beforeend', '<p>end</p>']]);
  assert.deepEqual(p.replaced, ['https://shop.example.com/landing-b']);
  await Promise.allSettled(p.forwarded);
});

test('click goals in an answer fire conversions (URL goals fire at the edge)', { timeout: 30000 }, async () => {
  const answer = {
    visitor_id: 'v2', excluded: null, assignments: [],
    goals: [
      { goal: 'clicked_buy', kind: 'click', selector: '#buy' },
    ],
  };
  const p = page({ fetchImpl: stub(answer), elements: ['#buy', '#other'] });
  p.run();
  p.domReady();
  await h.waitFor(() => p.beacons.length >= 1, { timeoutMs: 5000, what: 'the pageview beacon' });
  p.click(p.els['#other']);
  p.click(p.els['#buy']);
  const goals = p.beacons.flatMap((b) => b.body.events).filter((e) => e.type === 'conversion').map((e) => e.goal);
  assert.deepEqual(goals, ['clicked_buy']);
  assert.deepEqual(await Promise.all(p.forwarded), p.forwarded.map(() => 202), 'the Worker accepted every beacon');
});

/** An element with a tag name, as the DOM reports it. */
function tagged(selector, tagName, attrs = {}) {
  const el = new El(selector);
  el.tagName = tagName;
  Object.assign(el.attrs, attrs);
  return el;
}

test('the snippet checks each change again on the elements it matches, with the engine\'s rules', { timeout: 30000 }, async () => {
  const script = tagged('.x', 'SCRIPT');
  const svgScript = tagged('.x', 'script');
  const style = tagged('.x', 'STYLE');
  const para = tagged('.x', 'P');
  const form = tagged('#login', 'FORM', { action: '/login' });
  const own = tagged('#search', 'FORM', { action: '/search' });
  const button = tagged('.buy', 'BUTTON');
  const link = tagged('#a', 'A', { href: '/ok' });
  const img = tagged('#img', 'IMG');
  const nodes = { '.x': [script, svgScript, style, para], '#login': [form], '#search': [own], '.buy': [button], '#a': [link], '#img': [img] };
  const evilUrls = ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'java\tscript:alert(1)', ' javascript:alert(1)',
    '&#106;avascript:alert(1)', 'data:text/html,<script>x</script>', '//evil.example/x', '/\\evil.example/x', 'https://u@evil.example/'];
  const changes = [
    { selector: '.x', action: { type: 'set_text', text: 'alert(1)' } },
    { selector: '.x', action: { type: 'set_attribute', name: 'data-v', value: 'b' } },
    { selector: '#login', action: { type: 'set_attribute', name: 'action', value: 'https://evil.example/steal' } },
    { selector: '#login', action: { type: 'set_attribute', name: 'data-v', value: 'b' } },
    { selector: '#search', action: { type: 'set_attribute', name: 'action', value: 'https://shop.example.com/find' } },
    { selector: '.buy', action: { type: 'set_attribute', name: 'formaction', value: 'https://evil.example/steal' } },
    ...evilUrls.map((value) => ({ selector: '#a', action: { type: 'set_attribute', name: 'href', value } })),
    { selector: '#a', action: { type: 'set_attribute', name: 'onclick', value: 'steal()' } },
    { selector: '#a', action: { type: 'set_attribute', name: 'style', value: 'background:url(javascript:x)' } },
    { selector: '#a', action: { type: 'set_attribute', name: 'title', value: 'kept' } },
    { selector: '#img', action: { type: 'set_attribute', name: 'srcset', value: '/a.png 1x, //evil.example/b.png 2x' } },
    { selector: 'body', action: { type: 'redirect', url: 'https://evil.example/phish' } },
    { action: { type: 'custom_css', code: '.cta{color:red}' } },
    { action: { type: 'custom_js', code: 'window.b = 1;' } },
  ];
  const answer = { visitor_id: 'v3', excluded: null, assignments: [{ experiment_id: 'e', arm_id: 'b', sticky_key: 'e', changes }] };
  const p = page({ fetchImpl: stub(answer), elements: ['body'], nodes });
  p.run();
  await h.waitFor(() => p.hiddenCss().includes('.x'), { timeoutMs: 5000, what: 'hide' });
  p.domReady();
  for (const el of [script, svgScript, style]) {
    assert.equal(el.textContent, '', `a <${el.tagName}> is never given text`);
    assert.equal(el.getAttribute('data-v'), null, `nor attributes (<${el.tagName}>)`);
  }
  assert.equal(para.textContent, 'alert(1)', 'an ordinary element matched by the same selector is changed');
  assert.equal(para.getAttribute('data-v'), 'b');
  assert.equal(form.getAttribute('action'), '/login', 'a form action to another host is not applied');
  assert.equal(form.getAttribute('data-v'), 'b');
  assert.equal(own.getAttribute('action'), 'https://shop.example.com/find', "the site's own host is fine");
  assert.equal(button.getAttribute('formaction'), null);
  assert.equal(link.getAttribute('href'), '/ok', 'no dangerous URL form was applied');
  assert.equal(link.getAttribute('onclick'), null);
  assert.equal(link.getAttribute('style'), null);
  assert.equal(link.getAttribute('title'), 'kept');
  assert.equal(img.getAttribute('srcset'), null);
  assert.deepEqual(p.replaced, [], 'no redirect to another site');
  const custom = p.head.children.filter((c) => c.getAttribute('data-samplit-custom') === '');
  assert.deepEqual(custom.map((c) => [c.selector, c.textContent]), [['style', '.cta{color:red}'], ['script', 'window.b = 1;']]);
  await Promise.allSettled(p.forwarded);
});

/** Runs the snippet and waits until it has handled the edge's answer (it replaces
 * `samplit.assignments`). */
async function runAnswered(p) {
  p.run();
  const initial = p.samplit().assignments;
  await h.waitFor(() => p.samplit().assignments !== initial, { timeoutMs: 10000, every: 10, what: 'the answer handled' });
}

test('once the edge names the visitor, samplit.visitor holds the id and samplit:visitor fires once', { timeout: 30000 }, async () => {
  const answers = [];
  const p = page({
    fetchImpl: async (u, init) => {
      const r = await fetch(u, { ...init, headers: { ...init.headers, 'user-agent': h.BROWSER_UA } });
      answers.push(await r.clone().json());
      return r;
    },
  });
  const handled = runAnswered(p);
  assert.equal(p.samplit().visitor, undefined, 'not known before the edge answers');
  await handled;
  const id = answers[0].visitor_id;
  assert.match(id, /\S/, 'the edge named a visitor');
  assert.equal(p.samplit().visitor, id);
  assert.deepEqual(p.visitorEvents, [{ visitor_id: id }]);
  assert.equal(JSON.parse(p.storage.get(`samplit:${SITE}`)).vid, id, 'the id the snippet keeps is the one announced');
  assert.deepEqual(p.cookies, [], 'no cookie without data-first-party-cookie');
  assert.equal(typeof p.samplit().track, 'function', 'the public API is kept');
  p.domReady();
  await h.waitFor(() => p.beacons.length >= 1, { timeoutMs: 5000, what: 'the pageview beacon' });
  assert.equal(p.beacons[0].body.visitor_id, id);
  assert.equal(p.visitorEvents.length, 1, 'announced once per page view');
  await Promise.allSettled(p.forwarded);
});

test('data-first-party-cookie keeps the visitor id in that cookie on the page\'s origin, Secure on https', { timeout: 30000 }, async () => {
  const answer = { visitor_id: 'v/1 é;x', excluded: null, assignments: [] };
  const encoded = 'v%2F1%20%C3%A9%3Bx';
  for (const [url, suffix] of [['https://shop.example.com/', '; Secure'], ['http://shop.example.com/', '']]) {
    const p = page({ url, fetchImpl: stub(answer), scriptAttrs: { 'data-first-party-cookie': '_samplit_vid' } });
    await runAnswered(p);
    assert.deepEqual(p.cookies, [`_samplit_vid=${encoded}; path=/; max-age=31536000; SameSite=Lax${suffix}`], url);
    assert.deepEqual(p.visitorEvents, [{ visitor_id: answer.visitor_id }]);
    assert.deepEqual(p.warnings, []);
  }
  const longest = 'A-z_0'.repeat(12) + 'abcd';
  assert.equal(longest.length, 64);
  const p = page({ fetchImpl: stub(answer), scriptAttrs: { 'data-first-party-cookie': longest } });
  await runAnswered(p);
  assert.equal(p.cookies.length, 1);
  assert.ok(p.cookies[0].startsWith(`${longest}=${encoded}; `), p.cookies[0]);
});

test('a visitor id a server put in the data-first-party-cookie cookie is sent when the browser remembers none', { timeout: 30000 }, async () => {
  const sent = [];
  const record = (u, init) => { sent.push(JSON.parse(init.body)); return Promise.resolve(new Response(JSON.stringify({ visitor_id: 'x', assignments: [] }))); };
  const attrs = { 'data-first-party-cookie': 'samplit_vid' };
  const jar = 'theme=dark; samplit_vid=wp-7f3a9c; other=1';
  const cases = [
    [{ scriptAttrs: attrs, cookieJar: jar }, 'wp-7f3a9c', 'the server\'s id'],
    [{ scriptAttrs: attrs, cookieJar: jar, storage: new Map([[`samplit:${SITE}`, JSON.stringify({ vid: 'remembered-1' })]]) }, 'remembered-1', 'a remembered id wins'],
    [{ cookieJar: jar }, undefined, 'no attribute: the cookie is not read'],
    [{ scriptAttrs: attrs, cookieJar: 'samplit_vid=bad%20id%3Cx' }, undefined, 'an id that is not one is ignored'],
    [{ scriptAttrs: attrs, cookieJar: 'xsamplit_vid=wp-1' }, undefined, 'only that exact cookie name'],
  ];
  for (const [opts, expected, why] of cases) {
    sent.length = 0;
    const p = page({ ...opts, fetchImpl: record });
    p.run();
    await h.waitFor(() => sent.length >= 1, { timeoutMs: 5000, what: 'the assign call' });
    assert.equal(sent[0].visitor_id, expected, why);
  }
});

test('an invalid data-first-party-cookie name sets no cookie and warns once', { timeout: 30000 }, async () => {
  const answer = { visitor_id: 'v4', excluded: null, assignments: [] };
  for (const name of ['', 'a b', 'a;b', 'a=b', 'vid\n', 'é', 'x'.repeat(65), 'x; domain=evil.example']) {
    const p = page({ fetchImpl: stub(answer), scriptAttrs: { 'data-first-party-cookie': name } });
    const handled = runAnswered(p);
    assert.equal(p.warnings.length, 1, `a warning at load for ${JSON.stringify(name)}`);
    assert.match(p.warnings[0], /data-first-party-cookie/);
    await handled;
    assert.deepEqual(p.cookies, [], JSON.stringify(name));
    assert.equal(p.samplit().visitor, 'v4', 'the id is still announced');
    assert.deepEqual(p.visitorEvents, [{ visitor_id: 'v4' }]);
    assert.equal(p.warnings.length, 1, 'and only once');
  }
});

test('an excluded visitor, or an answer without a visitor id, gets no property, no event and no cookie', { timeout: 30000 }, async () => {
  const attrs = { 'data-first-party-cookie': '_samplit_vid' };
  // The real edge excludes a bot user agent.
  const answers = [];
  const bot = page({
    scriptAttrs: attrs,
    fetchImpl: async (u, init) => {
      const r = await fetch(u, { ...init, headers: { ...init.headers, 'user-agent': 'Googlebot/2.1 (+http://www.google.com/bot.html)' } });
      answers.push(await r.clone().json());
      return r;
    },
  });
  await runAnswered(bot);
  assert.ok(answers[0].excluded, `the edge excluded the bot: ${JSON.stringify(answers[0])}`);
  const stubbed = [
    { visitor_id: 'v5', excluded: 'bot', assignments: [] },
    { visitor_id: null, excluded: null, assignments: [] },
    { excluded: null, assignments: [] },
  ].map((answer) => page({ scriptAttrs: attrs, fetchImpl: stub(answer) }));
  for (const p of stubbed) await runAnswered(p);
  for (const p of [bot, ...stubbed]) {
    assert.equal('visitor' in p.samplit(), false);
    assert.deepEqual(p.visitorEvents, []);
    assert.deepEqual(p.cookies, []);
  }
});
