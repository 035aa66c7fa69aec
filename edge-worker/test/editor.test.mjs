// The editor proxy (GET /v1/editor) under workerd against an origin on 127.0.0.1:
// links and forms stay in the proxy, the editor script is injected, frame blocking and
// cookies are stripped, preview changes are applied, and a table of SSRF attempts is
// refused with a JSON reason that never echoes the input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';
import { editorToken, startOrigin } from './editor-harness.mjs';

let origin;
let dev;    // development switches on: http, loopback 127.0.0.1, the origin's port
let strict; // http allowed (the origin is plain http) but no loopback, no extra port

const PAGE = `<!doctype html><html><head><title>Shop</title><base href="https://elsewhere.example/">
<meta http-equiv="Content-Security-Policy" content="frame-ancestors 'none'"></head>
<body><h1 id="headline">Original headline</h1>
<a id="rel" href="pricing?plan=pro">Pricing</a>
<a id="abs" href="/about" target="_top">About</a>
<a id="frag" href="#top">Top</a>
<form id="search" action="/search"><input name="q"></form>
</body></html>`;

before(async () => {
  origin = await startOrigin({
    '/page': () => ({
      headers: {
        'content-type': 'text/html; charset=utf-8',
        'x-frame-options': 'DENY',
        'content-security-policy': "frame-ancestors 'none'; default-src 'self'",
        'set-cookie': 'session=secret; Path=/',
        'strict-transport-security': 'max-age=1',
      },
      body: PAGE,
    }),
    '/pixel.png': () => ({
      headers: { 'content-type': 'image/png', 'set-cookie': 'tracker=1' },
      body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]),
    }),
    '/hop': () => ({ status: 302, headers: { location: '/page' } }),
    '/to-evil': () => ({ status: 302, headers: { location: 'https://evil.example/steal' } }),
    '/to-metadata': () => ({ status: 301, headers: { location: 'http://169.254.169.254/latest/meta-data/' } }),
    '/to-loopback-v6': (_req, _body, o) => ({ status: 302, headers: { location: `http://[::1]:${o.port}/page` } }),
    '/loop': () => ({ status: 302, headers: { location: '/loop' } }),
    '/big': () => ({ headers: { 'content-type': 'text/html', 'content-length': String(6 * 1024 * 1024) }, body: 'x'.repeat(6 * 1024 * 1024) }),
  });
  // One after the other: two wrangler starts at once are slow on a loaded machine.
  dev = await h.startWorker({
    vars: {
      SAMPLIT_EDITOR_ALLOW_HTTP: 'true',
      SAMPLIT_EDITOR_ALLOW_LOOPBACK: 'true',
      SAMPLIT_EDITOR_ALLOW_PORTS: String(origin.port),
    },
  });
  strict = await h.startWorker({ vars: { SAMPLIT_EDITOR_ALLOW_HTTP: 'true', SAMPLIT_EDITOR_ALLOW_PORTS: String(origin.port) } });
});
after(async () => {
  await Promise.all([dev?.stop(), strict?.stop()]);
  await origin?.close();
});

const editorPath = (url, token = editorToken()) =>
  `/v1/editor?url=${encodeURIComponent(url)}&token=${encodeURIComponent(token)}`;

test('the editor proxy rewrites links and forms into the proxy and injects the editor script', async () => {
  const token = editorToken({ adminOrigin: 'http://admin.test:8080' });
  const res = await dev.fetch(editorPath(`${origin.url}/page`, token), { headers: { cookie: 'samplit_session=abc; other=1' } });
  assert.equal(res.status, 200);
  const html = await res.text();
  const proxied = (u) => `${dev.base}/v1/editor?url=${encodeURIComponent(u).replace(/%20/g, '+')}&amp;token=${token}`;
  assert.ok(html.includes(`id="rel" href="${proxied(`${origin.url}/pricing?plan=pro`)}"`), html);
  assert.ok(html.includes(`id="abs" href="${proxied(`${origin.url}/about`)}"`), html);
  assert.ok(!html.includes('_top'), 'link targets that leave the frame are removed');
  assert.ok(html.includes('href="#top"'), 'fragments stay');
  assert.ok(html.includes(`<head><base href="${origin.url}/page">`), html);
  assert.ok(!html.includes('elsewhere.example'), 'the page\'s own <base> is removed');
  assert.ok(html.includes(`<form id="search" action="${dev.base}/v1/editor"><input type="hidden" name="__samplit_url" value="${origin.url}/search">`), html);
  assert.ok(html.includes(`<script src="${dev.base}/v1/editor.js" data-admin-origin="http://admin.test:8080"`), html);
  assert.ok(html.includes('Original headline'), 'no preview: the page is unchanged');

  // Frame blocking and cookies are stripped, in editor mode.
  assert.equal(res.headers.get('x-frame-options'), null);
  assert.equal(res.headers.get('content-security-policy'), 'sandbox allow-scripts allow-forms allow-popups allow-modals');
  assert.equal(res.headers.get('set-cookie'), null);
  assert.equal(res.headers.get('strict-transport-security'), null);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const seen = origin.requests.filter((r) => r.url === '/page').at(-1);
  assert.equal(seen.headers.cookie, undefined, 'the visitor\'s cookies never reach the origin');
});

test('a GET form submitted in the editor lands on the proxied target with its fields', async () => {
  const token = editorToken();
  const q = new URLSearchParams({ __samplit_url: `${origin.url}/page?old=1`, __samplit_token: token, q: 'red shoes' });
  const res = await dev.fetch(`/v1/editor?${q}`);
  assert.equal(res.status, 200);
  await res.text();
  assert.equal(origin.requests.at(-1).url, '/page?q=red+shoes');
});

test('redirects are followed manually within the allowed domains', async () => {
  const res = await dev.fetch(editorPath(`${origin.url}/hop`));
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.ok(html.includes(`<base href="${origin.url}/page">`), 'the base is the final URL');
});

test('non-HTML passes through unchanged with safe headers', async () => {
  const res = await dev.fetch(editorPath(`${origin.url}/pixel.png`));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('set-cookie'), null);
  assert.deepEqual([...new Uint8Array(await res.arrayBuffer())], [0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
});

test('a preview token applies the variant\'s changes with the same rewriter', async () => {
  const token = editorToken({
    preview: {
      experiment_id: 'e1', variant_id: 'v1',
      changes: [
        { selector: '#headline', action: { type: 'set_text', text: 'Try it free' } },
        { selector: '#abs', action: { type: 'hide' } },
      ],
    },
  });
  const res = await dev.fetch(editorPath(`${origin.url}/page`, token));
  const html = await res.text();
  assert.ok(html.includes('<h1 id="headline">Try it free</h1>'), html);
  assert.ok(!html.includes('Original headline'));
  assert.ok(/id="abs"[^>]*style="display: none !important;"/.test(html), html);
});

test('the editor script is served', async () => {
  const res = await dev.fetch('/v1/editor.js');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /javascript/);
  assert.match(await res.text(), /samplit:select/);
});

test('SSRF attempts and bad tokens are refused with a JSON reason, nothing echoed', async () => {
  const o = origin.url;
  const p = origin.port;
  const cases = [
    // [worker, url, token, status, code, why]
    [dev, 'http://example.com/', undefined, 403, 'host_not_allowed', 'another host'],
    [dev, `http://localhost:${p}/page`, undefined, 403, 'host_not_allowed', 'localhost by name'],
    [dev, `http://127.0.0.2:${p}/page`, undefined, 403, 'ip_literal_not_allowed', 'another loopback address'],
    [dev, `http://[::1]:${p}/page`, undefined, 403, 'ip_literal_not_allowed', '::1 not listed'],
    [dev, `http://169.254.169.254/latest/meta-data/`, undefined, 403, 'ip_literal_not_allowed', 'cloud metadata'],
    [dev, `http://0x7f000002:${p}/`, undefined, 403, 'ip_literal_not_allowed', 'hex IPv4'],
    [dev, `http://2130706434:${p}/`, undefined, 403, 'ip_literal_not_allowed', 'decimal IPv4'],
    [dev, 'file:///etc/passwd', undefined, 403, 'scheme_not_allowed', 'file:'],
    [dev, 'ftp://127.0.0.1/', undefined, 403, 'scheme_not_allowed', 'ftp:'],
    [dev, `http://user:pw@127.0.0.1:${p}/page`, undefined, 403, 'credentials_not_allowed', 'credentials'],
    [dev, `http://127.0.0.1:${p + 1 === 65536 ? 1 : p + 1}/page`, undefined, 403, 'port_not_allowed', 'an odd port'],
    [dev, 'http://127.0.0.1:22/', undefined, 403, 'port_not_allowed', 'ssh'],
    [dev, `${o}/to-evil`, undefined, 403, 'redirect_not_allowed', 'a redirect to a forbidden host'],
    [dev, `${o}/to-metadata`, undefined, 403, 'redirect_not_allowed', 'a redirect to an IP'],
    [dev, `${o}/to-loopback-v6`, undefined, 403, 'redirect_not_allowed', 'a redirect to ::1'],
    [dev, `${o}/loop`, undefined, 400, 'too_many_redirects', 'a redirect loop'],
    [dev, `${o}/big`, undefined, 413, 'page_too_large', 'a page over 5 MB'],
    [dev, '<script>alert(1)</script>', undefined, 400, 'invalid_url', 'markup as a URL'],
    [strict, `${o}/page`, undefined, 403, 'ip_literal_not_allowed', '127.0.0.1 when loopback is not allowed'],
    [strict, `http://[::1]:${p}/page`, editorToken({ allowedDomains: ['[::1]'] }), 403, 'ip_literal_not_allowed', '::1 when loopback is not allowed'],
    [dev, `${o}/page`, editorToken({ expMs: Date.now() - 1 }), 401, 'token_expired', 'an expired token'],
    [dev, `${o}/page`, editorToken({ secret: 'another-secret' }), 401, 'invalid_token', 'a token signed with another key'],
    [dev, `${o}/page`, editorToken().replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), 401, 'invalid_token', 'a tampered signature'],
    [dev, `${o}/page`, editorToken({ allowedDomains: ['shop.example.com'] }), 403, 'ip_literal_not_allowed', 'a token for other domains'],
    [dev, `${o}/page`, '<img src=x onerror=alert(1)>', 401, 'invalid_token', 'markup as a token'],
  ];
  for (const [worker, url, token, status, code, why] of cases) {
    const res = await worker.fetch(editorPath(url, token));
    const text = await res.text();
    assert.equal(res.status, status, `${why}: ${text}`);
    assert.match(res.headers.get('content-type'), /application\/json/, why);
    assert.equal(JSON.parse(text).error.code, code, why);
    assert.ok(!text.includes('<script') && !text.includes('<img'), `${why}: nothing echoed unescaped: ${text}`);
  }
  // No token at all.
  const res = await dev.fetch(`/v1/editor?url=${encodeURIComponent(`${o}/page`)}`);
  assert.equal(res.status, 401);
  assert.equal((await res.json()).error.code, 'missing_token');
  // None of the refused targets was fetched from the origin.
  assert.ok(!origin.requests.some((r) => r.url === '/steal'));
});
