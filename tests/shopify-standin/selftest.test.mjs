// Tests of the Shopify stand-in itself: node --test tests/shopify-standin/selftest.test.mjs
// Signatures are recomputed here independently, following the shopify.dev algorithms.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStandin } from './standin.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const API_KEY = 'fixture-client-id';
const API_SECRET = 'fixture-client-secret';
const SHOP = 'samplit-test.myshopify.com';
const STORE = 'store.localhost';

// ---------------------------------------------------------------- a fake app
let app; let appUrl; const appInbox = { webhooks: [], pixel: [] }; let webhookPlan = [];
function startFakeApp() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        if (req.url === '/shopify/webhooks') {
          appInbox.webhooks.push({ headers: req.headers, raw });
          const status = webhookPlan.length ? webhookPlan.shift() : 200;
          res.writeHead(status); return res.end(String(status));
        }
        if (req.url === '/pixel-collect') {
          appInbox.pixel.push(JSON.parse(raw));
          res.writeHead(204); return res.end();
        }
        res.writeHead(404); res.end();
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

// raw HTTP with a chosen Host header (fetch() does not let us set Host)
function request(port, { method = 'GET', path: p = '/', host, headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h = { Host: `${host}:${port}`, ...headers };
    if (data !== undefined) { h['Content-Length'] = Buffer.byteLength(data); h['Content-Type'] ||= typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json'; }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json; try { json = JSON.parse(text); } catch { /* html */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

// independent implementations of the documented algorithms
const docHmacHex = (params) => crypto.createHmac('sha256', API_SECRET).update(
  [...params.entries()].filter(([k]) => k !== 'hmac').sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('&'),
).digest('hex');
const decodeJwt = (t) => {
  const [h, p, s] = t.split('.');
  const expected = crypto.createHmac('sha256', API_SECRET).update(`${h}.${p}`).digest('base64url');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')), valid: expected === s };
};

let shopify;
const gql = (token, query, variables) => request(shopify.port, {
  method: 'POST', path: '/admin/api/2025-10/graphql.json', host: SHOP,
  headers: token ? { 'X-Shopify-Access-Token': token } : {}, body: { query, variables },
});
async function tokenWith(scope) {
  const auth = await request(shopify.port, { path: `/admin/oauth/authorize?client_id=${API_KEY}&scope=${scope}&redirect_uri=${encodeURIComponent(appUrl + '/shopify/auth/callback')}&state=s1`, host: SHOP });
  const code = new URL(auth.headers.location).searchParams.get('code');
  const r = await request(shopify.port, { method: 'POST', path: '/admin/oauth/access_token', host: SHOP, body: { client_id: API_KEY, client_secret: API_SECRET, code } });
  return r.json.access_token;
}

before(async () => {
  app = await startFakeApp();
  appUrl = `http://127.0.0.1:${app.address().port}`;
  shopify = await startStandin({
    apiKey: API_KEY, apiSecret: API_SECRET, appUrl, redirectUrls: [`${appUrl}/shopify/auth/callback`],
    webhookUrl: `${appUrl}/shopify/webhooks`, shop: SHOP, primaryDomain: STORE, currency: 'EUR', shopName: 'Samplit Test Store',
    extensionsDir: path.join(here, 'fixtures', 'extensions'), scopes: 'read_orders,write_pixels,read_customer_events',
    checkoutWebhook: { attempts: 3, backoffMs: 10 },
  });
});
after(async () => { await shopify?.close(); app?.closeAllConnections(); await new Promise((r) => app?.close(r)); });

test('install URL carries a documented hex HMAC of the sorted query', () => {
  const u = new URL(shopify.installUrl());
  assert.equal(u.origin + u.pathname, `${appUrl}/shopify/auth`);
  assert.deepEqual([...u.searchParams.keys()].sort(), ['hmac', 'host', 'shop', 'timestamp']);
  assert.equal(u.searchParams.get('shop'), SHOP);
  assert.equal(Buffer.from(u.searchParams.get('host'), 'base64').toString(), 'admin.shopify.com/store/samplit-test');
  assert.equal(u.searchParams.get('hmac'), docHmacHex(u.searchParams));
  const forged = new URL(shopify.installUrl({ hmac: 'forged', timestamp: '1' }));
  assert.equal(forged.searchParams.get('hmac'), 'forged');
  assert.equal(forged.searchParams.get('timestamp'), '1');
});

test('authorization code grant: redirect, callback HMAC, single-use code, errors', async () => {
  const redirect = `${appUrl}/shopify/auth/callback`;
  const bad = await request(shopify.port, { path: `/admin/oauth/authorize?client_id=${API_KEY}&scope=read_orders&redirect_uri=${encodeURIComponent('http://evil.example/cb')}`, host: SHOP });
  assert.equal(bad.status, 400);
  const badClient = await request(shopify.port, { path: `/admin/oauth/authorize?client_id=nope&redirect_uri=${encodeURIComponent(redirect)}`, host: SHOP });
  assert.equal(badClient.status, 400);

  const via = await shopify.authorize(`https://${SHOP}/admin/oauth/authorize?client_id=${API_KEY}&scope=read_orders&redirect_uri=${encodeURIComponent(redirect)}&state=nonce-123`);
  assert.equal(via.status, 302);
  const cb = new URL(via.location);
  assert.equal(cb.origin + cb.pathname, redirect);
  assert.deepEqual([...cb.searchParams.keys()].sort(), ['code', 'hmac', 'host', 'shop', 'state', 'timestamp']);
  assert.equal(cb.searchParams.get('state'), 'nonce-123');
  assert.equal(cb.searchParams.get('hmac'), docHmacHex(cb.searchParams));

  const code = cb.searchParams.get('code');
  const wrongSecret = await request(shopify.port, { method: 'POST', path: '/admin/oauth/access_token', host: SHOP, body: { client_id: API_KEY, client_secret: 'wrong', code } });
  assert.equal(wrongSecret.status, 400);
  const ok = await request(shopify.port, { method: 'POST', path: '/admin/oauth/access_token', host: SHOP, body: { client_id: API_KEY, client_secret: API_SECRET, code } });
  assert.equal(ok.status, 200);
  assert.deepEqual(Object.keys(ok.json).sort(), ['access_token', 'scope']);
  assert.equal(ok.json.scope, 'read_orders');
  const again = await request(shopify.port, { method: 'POST', path: '/admin/oauth/access_token', host: SHOP, body: { client_id: API_KEY, client_secret: API_SECRET, code } });
  assert.equal(again.status, 400, 'codes are single-use');
  assert.ok(shopify.accessTokens.some((t) => t.token === ok.json.access_token && t.via === 'authorization_code' && t.shop === SHOP));

  // form-encoded body is accepted too
  const cb2 = new URL((await shopify.authorize(`https://${SHOP}/admin/oauth/authorize?client_id=${API_KEY}&scope=read_orders&redirect_uri=${encodeURIComponent(redirect)}`)).location);
  const form = await request(shopify.port, { method: 'POST', path: '/admin/oauth/access_token', host: SHOP, body: `client_id=${API_KEY}&client_secret=${API_SECRET}&code=${cb2.searchParams.get('code')}` });
  assert.equal(form.status, 200);
  assert.match(form.json.access_token, /^shpat_/);
});

test('session tokens and token exchange', async () => {
  const st = shopify.sessionToken();
  const d = decodeJwt(st);
  assert.ok(d.valid);
  assert.equal(d.header.alg, 'HS256');
  assert.equal(d.payload.iss, `https://${SHOP}/admin`);
  assert.equal(d.payload.dest, `https://${SHOP}`);
  assert.equal(d.payload.aud, API_KEY);
  for (const k of ['sub', 'exp', 'nbf', 'iat', 'jti', 'sid']) assert.ok(d.payload[k] !== undefined, k);

  const exchange = (subject_token, requested = 'offline') => request(shopify.port, {
    method: 'POST', path: '/admin/oauth/access_token', host: SHOP,
    body: { client_id: API_KEY, client_secret: API_SECRET, grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token, subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', requested_token_type: `urn:shopify:params:oauth:token-type:${requested}-access-token` },
  });
  const off = await exchange(st);
  assert.equal(off.status, 200);
  assert.equal(off.json.scope, 'read_orders,write_pixels,read_customer_events');
  assert.ok(shopify.accessTokens.some((t) => t.token === off.json.access_token && t.via === 'token_exchange'));
  const on = await exchange(shopify.sessionToken(), 'online');
  assert.equal(on.status, 200);
  assert.equal(on.json.associated_user.id, 42);
  assert.ok(on.json.expires_in > 0);

  const t = Math.floor(Date.now() / 1000);
  for (const forged of [shopify.sessionToken({ exp: t - 10 }), shopify.sessionToken({ aud: 'other-app' }), shopify.sessionToken({ secret: 'not-the-secret' }), shopify.sessionToken({ shop: 'other.myshopify.com' }), shopify.sessionToken({ nbf: t + 600 }), 'garbage']) {
    const r = await exchange(forged);
    assert.equal(r.status, 400, forged);
    assert.equal(r.json.error, 'invalid_subject_token');
  }
});

test('Admin GraphQL: 401, queries, metafieldsSet, webPixelCreate/Update, scopes', async () => {
  assert.equal((await gql(null, '{ shop { name } }')).status, 401);
  assert.equal((await gql('shpat_nope', '{ shop { name } }')).status, 401);
  const token = await tokenWith('read_orders');
  const shopRes = await gql(token, '{ shop { id name myshopifyDomain currencyCode email primaryDomain { host url } } currentAppInstallation { id app { id } } }');
  assert.equal(shopRes.status, 200);
  assert.equal(shopRes.json.data.shop.myshopifyDomain, SHOP);
  assert.equal(shopRes.json.data.shop.currencyCode, 'EUR');
  assert.equal(shopRes.json.data.shop.primaryDomain.host, STORE);
  assert.match(shopRes.json.data.shop.id, /^gid:\/\/shopify\/Shop\/\d+$/);
  const installationId = shopRes.json.data.currentAppInstallation.id;
  assert.match(installationId, /^gid:\/\/shopify\/AppInstallation\/\d+$/);

  const unknownField = await gql(token, '{ shop { domains { host } } }');
  assert.ok(unknownField.json.errors?.length, 'Shop.domains is not offered (see README)');
  const markets = await gql(token, '{ webPresences(first: 5) { nodes { domain { host } } } }');
  assert.equal(markets.json.errors[0].extensions.code, 'ACCESS_DENIED');
  const marketsToken = await tokenWith('read_markets');
  const markets2 = await gql(marketsToken, '{ webPresences(first: 5) { nodes { domain { host } rootUrls { url } } } }');
  assert.equal(markets2.json.data.webPresences.nodes[0].domain.host, STORE);

  const set = `mutation($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m) { metafields { id namespace key value type } userErrors { field message code elementIndex } } }`;
  const good = await gql(token, set, { m: [
    { ownerId: installationId, namespace: 'fixture_ns', key: 'config', type: 'json', value: JSON.stringify({ a: 1 }) },
    { ownerId: installationId, namespace: 'fixture_ns', key: 'flag', type: 'boolean', value: 'true' },
  ] });
  assert.deepEqual(good.json.data.metafieldsSet.userErrors, []);
  assert.equal(good.json.data.metafieldsSet.metafields.length, 2);
  assert.equal(shopify.metafields.find((m) => m.key === 'config').value, '{"a":1}');
  const bad = await gql(token, set, { m: [
    { ownerId: installationId, namespace: 'fixture_ns', key: 'x1', value: 'no type' },
    { ownerId: installationId, namespace: 'fixture_ns', key: 'x2', type: 'json', value: '{nope' },
    { ownerId: 'gid://shopify/Product/1', namespace: 'fixture_ns', key: 'x3', type: 'single_line_text_field', value: 'v' },
  ] });
  assert.deepEqual(bad.json.data.metafieldsSet.userErrors.map((e) => e.code), ['BLANK', 'INVALID_VALUE', 'INVALID']);
  assert.equal(bad.json.data.metafieldsSet.metafields, null);
  assert.ok(!shopify.metafields.some((m) => m.key.startsWith('x')), 'atomic: nothing persisted');

  const create = `mutation($s: JSON!) { webPixelCreate(webPixel: { settings: $s }) { webPixel { id settings } userErrors { code field message } } }`;
  const denied = await gql(token, create, { s: '{}' });
  assert.equal(denied.json.errors[0].extensions.code, 'ACCESS_DENIED');
  assert.equal(denied.json.data.webPixelCreate, null);
  const pixToken = await tokenWith('write_pixels,read_customer_events');
  const invalid = await gql(pixToken, create, { s: JSON.stringify({ notDeclared: 'x' }) });
  assert.equal(invalid.json.data.webPixelCreate.userErrors[0].code, 'INVALID_SETTINGS');
  const created = await gql(pixToken, create, { s: JSON.stringify({ endpoint: `${appUrl}/pixel-collect`, cookieName: 'visitor_ref' }) });
  assert.deepEqual(created.json.data.webPixelCreate.userErrors, []);
  const pixelId = created.json.data.webPixelCreate.webPixel.id;
  assert.equal(JSON.parse(created.json.data.webPixelCreate.webPixel.settings).cookieName, 'visitor_ref');
  const taken = await gql(pixToken, create, { s: { endpoint: 'x', cookieName: 'y' } });
  assert.equal(taken.json.data.webPixelCreate.userErrors[0].code, 'TAKEN');
  const update = `mutation($id: ID!, $s: JSON!) { webPixelUpdate(id: $id, webPixel: { settings: $s }) { webPixel { id } userErrors { code } } }`;
  const upd = await gql(pixToken, update, { id: pixelId, s: { endpoint: `${appUrl}/pixel-collect`, cookieName: 'visitor_ref' } });
  assert.deepEqual(upd.json.data.webPixelUpdate.userErrors, []);
  const missing = await gql(pixToken, update, { id: 'gid://shopify/WebPixel/999', s: {} });
  assert.equal(missing.json.data.webPixelUpdate.userErrors[0].code, 'NOT_FOUND');
  assert.equal(shopify.webPixels.length, 1);
  assert.ok(shopify.adminRequests.some((r) => r.path === '/admin/api/2025-10/graphql.json' && r.host === SHOP));
  assert.equal((await request(shopify.port, { method: 'POST', path: '/admin/api/2024-01/graphql.json', host: SHOP, headers: { 'X-Shopify-Access-Token': token }, body: { query: '{ shop { name } }' } })).status, 404);
});

test('webhooks: documented headers, verifiable HMAC, forged HMAC, retries keep the webhook id', async () => {
  appInbox.webhooks.length = 0;
  const r = await shopify.sendWebhook('orders/create', { id: 1, note_attributes: [] });
  assert.equal(r.status, 200);
  const got = appInbox.webhooks.at(-1);
  const expected = crypto.createHmac('sha256', API_SECRET).update(got.raw, 'utf8').digest('base64');
  assert.equal(got.headers['x-shopify-hmac-sha256'], expected);
  assert.equal(got.headers['x-shopify-topic'], 'orders/create');
  assert.equal(got.headers['x-shopify-shop-domain'], SHOP);
  assert.equal(got.headers['x-shopify-api-version'], '2025-10');
  assert.equal(got.headers['x-shopify-webhook-id'], r.webhookId);
  assert.ok(got.headers['x-shopify-event-id']);
  assert.ok(!Number.isNaN(Date.parse(got.headers['x-shopify-triggered-at'])));

  await shopify.sendWebhook('orders/create', { id: 2 }, { hmac: 'forged' });
  assert.equal(appInbox.webhooks.at(-1).headers['x-shopify-hmac-sha256'], 'forged');

  appInbox.webhooks.length = 0;
  webhookPlan = [500, 503, 200];
  const statuses = await shopify.deliver('orders/create', { id: 3 }, { attempts: 5, backoffMs: 5 });
  assert.deepEqual(statuses, [500, 503, 200]);
  assert.equal(new Set(appInbox.webhooks.map((w) => w.headers['x-shopify-webhook-id'])).size, 1);
  webhookPlan = [500, 500];
  assert.deepEqual(await shopify.deliver('orders/create', { id: 4 }, { attempts: 2, backoffMs: 5 }), [500, 500]);
});

test('storefront renders head app embeds with settings defaults, app metafields and asset_url', async () => {
  const page = await request(shopify.port, { path: '/', host: STORE });
  assert.equal(page.status, 200);
  const head = page.text.slice(0, page.text.indexOf('</head>'));
  assert.match(head, /id="fixture-head-embed"/);
  assert.match(head, /data-greeting="hello from defaults"/);
  assert.match(head, new RegExp(`data-shop="${SHOP}"`));
  assert.match(head, /data-path="\/"/);
  assert.match(head, /data-guest="yes"/);
  assert.match(head, /window\.fixtureConfig = \{"a":1\};/);
  assert.match(head, /window\.fixtureFlag = true;/);
  assert.match(head, /<meta name="fixture-snippet" content="Samplit Test Store">/);
  assert.match(head, /id="fixture-conditional"/, 'available_if honoured');
  assert.doesNotMatch(page.text, /\{% schema %\}|"target"/);
  assert.doesNotMatch(page.text, /fixture-section-block/);
  const body = page.text.slice(page.text.indexOf('<body'));
  assert.match(body, /id="fixture-body-embed">body embed</);
  assert.match(page.text, /<h1 id="headline">Original headline<\/h1>/);

  const src = head.match(/<script src="([^"]+embed\.js)"/)[1];
  assert.equal(src, `${shopify.storefrontUrl('/cdn/extensions/fixture-theme/assets/embed.js')}`);
  const asset = await request(shopify.port, { path: new URL(src).pathname, host: STORE });
  assert.equal(asset.status, 200);
  assert.match(asset.headers['content-type'], /javascript/);
  assert.equal((await request(shopify.port, { path: '/cdn/extensions/fixture-theme/assets/..%2Fshopify.extension.toml', host: STORE })).status, 404);
  const product = await request(shopify.port, { path: '/products/test-product', host: STORE });
  assert.match(product.text, /id="add-to-cart"/);
  assert.match(product.text, /\/cart\/add\.js/);
  assert.equal((await request(shopify.port, { path: '/', host: 'unknown.localhost' })).status, 404);
});

test('cart Ajax API, cart attributes -> order note_attributes, pixel runs, orders/create delivered', async () => {
  let cookie = '';
  const sf = async (opts) => {
    const r = await request(shopify.port, { host: STORE, ...opts, headers: { ...(cookie ? { Cookie: cookie } : {}), ...(opts.headers || {}) } });
    const set = r.headers['set-cookie']?.find((c) => c.startsWith('cart='));
    if (set && !/Max-Age=0/.test(set)) cookie = set.split(';')[0];
    return r;
  };
  const empty = await sf({ path: '/cart.js' });
  assert.equal(empty.json.item_count, 0);
  assert.equal(empty.json.currency, 'EUR');
  assert.ok(cookie.startsWith('cart='));
  const token = empty.json.token;

  const added = await sf({ method: 'POST', path: '/cart/add.js', body: { items: [{ id: 45000000000001, quantity: 2 }] } });
  assert.equal(added.status, 200);
  assert.equal(added.json.items[0].quantity, 2);
  const single = await sf({ method: 'POST', path: '/cart/add.js', body: 'id=45000000000002&quantity=1' });
  assert.equal(single.json.variant_id, 45000000000002);
  assert.equal((await sf({ method: 'POST', path: '/cart/add.js', body: { id: 1, quantity: 1 } })).status, 404);

  const upd = await sf({ method: 'POST', path: '/cart/update.js', body: { attributes: { experiment: 'exp-1:variant-b', __private_ref: 'secret' } } });
  assert.deepEqual(upd.json.attributes, { experiment: 'exp-1:variant-b' }, 'private __ attributes are hidden from the Ajax API');
  const form = await sf({ method: 'POST', path: '/cart/update.js', body: 'attributes%5Bsource%5D=form&updates%5B45000000000002%5D=3' });
  assert.equal(form.json.attributes.source, 'form');
  assert.equal(form.json.items.find((i) => i.variant_id === 45000000000002).quantity, 3);
  const removeAttr = await sf({ method: 'POST', path: '/cart/update.js', body: { attributes: { source: '' } } });
  assert.equal(removeAttr.json.attributes.source, undefined);
  const cart = await sf({ path: '/cart.js' });
  assert.equal(cart.json.token, token);
  assert.equal(cart.json.total_price, 2 * 1999 + 3 * 500);
  assert.equal(cart.json.item_count, 5);

  const clearedCart = await request(shopify.port, { method: 'POST', path: '/cart/clear.js', host: STORE, headers: { Cookie: 'cart=does-not-exist' } });
  assert.equal(clearedCart.json.item_count, 0);

  const cartPage = await sf({ path: '/cart' });
  assert.match(cartPage.text, /id="checkout"/);
  const toCheckout = await sf({ method: 'POST', path: '/cart', body: 'checkout=' });
  assert.equal(toCheckout.status, 302);
  assert.equal(toCheckout.headers.location, '/checkout');

  appInbox.webhooks.length = 0; appInbox.pixel.length = 0; webhookPlan = [];
  const thanks = await sf({ path: '/checkout', headers: { Cookie: `${cookie}; visitor_ref=ref-123; other=1`, 'User-Agent': 'selftest' } });
  assert.equal(thanks.status, 200);
  assert.match(thanks.text, /id="thank-you"/);
  const order = shopify.orders.at(-1);
  assert.equal(shopify.lastCheckout.order, order);
  assert.equal(typeof order.id, 'number');
  assert.equal(order.admin_graphql_api_id, `gid://shopify/Order/${order.id}`);
  assert.equal(order.currency, 'EUR');
  assert.equal(order.presentment_currency, 'EUR');
  assert.equal(order.total_price, '54.98');
  assert.equal(order.current_total_price, '54.98');
  assert.equal(order.customer, null);
  assert.equal(order.cart_token, token);
  assert.match(order.name, /^#\d+$/);
  assert.deepEqual(order.note_attributes, [{ name: 'experiment', value: 'exp-1:variant-b' }, { name: '__private_ref', value: 'secret' }]);
  assert.equal(order.line_items.length, 2);

  assert.deepEqual(shopify.lastCheckout.pixelErrors, []);
  assert.deepEqual(shopify.lastCheckout.webhookStatuses, [200]);
  assert.equal(appInbox.pixel.length, 1);
  const hit = appInbox.pixel[0];
  assert.equal(hit.cookie, 'ref-123');
  assert.equal(hit.orderId, `gid://shopify/OrderIdentity/${order.id}`);
  assert.deepEqual(hit.totalPrice, { amount: 54.98, currencyCode: 'EUR' });
  assert.deepEqual(hit.attributes, [{ key: 'experiment', value: 'exp-1:variant-b' }, { key: '__private_ref', value: 'secret' }]);
  assert.equal(hit.shop, SHOP);
  assert.equal(hit.summary, 'checkout_completed:2');
  assert.ok(shopify.pixelLog.some((l) => l.kind === 'fetch' && l.url === `${appUrl}/pixel-collect` && l.status === 204));
  assert.ok(shopify.pixelLog.some((l) => l.kind === 'console' && l.args[0] === 'pixel posted'));
  const wh = appInbox.webhooks.find((w) => w.headers['x-shopify-topic'] === 'orders/create');
  assert.deepEqual(JSON.parse(wh.raw).note_attributes, order.note_attributes);
  assert.equal(thanks.headers['set-cookie'].some((c) => /^cart=;/.test(c)), true, 'cart cookie cleared after checkout');
  assert.equal((await sf({ path: '/checkout' })).status, 302, 'empty cart goes back to /cart');
});

test('pixel consent, numeric order id option and sandbox errors are reported', async () => {
  shopify.setConsent({ analytics: false });
  const r = await shopify.runPixels([{ id: 'e1', name: 'checkout_completed', type: 'standard', data: {} }], { cookies: {} });
  assert.deepEqual(r.errors, []);
  assert.ok(shopify.pixelLog.some((l) => l.kind === 'skipped' && /consent/.test(l.reason)));
  shopify.setConsent({ analytics: true });
  const bad = await shopify.runPixels([{ id: 'e2', name: 'checkout_completed', type: 'standard', clientId: 'c', data: { checkout: { order: null, lineItems: [] } } }], { cookies: {} });
  assert.equal(bad.errors.length, 1, 'a throwing subscriber is recorded');

  shopify.configure({ pixelOrderIdFormat: 'numeric', checkoutOrder: 'webhook-first' });
  appInbox.pixel.length = 0; appInbox.webhooks.length = 0;
  const rec = await shopify.placeOrder({ attributes: { a: '1' }, cookies: { visitor_ref: 'from-placeOrder' } });
  assert.equal(appInbox.pixel[0].orderId, String(rec.order.id));
  assert.equal(appInbox.pixel[0].cookie, 'from-placeOrder');
  assert.deepEqual(rec.webhookStatuses, [200]);
  assert.deepEqual(rec.order.note_attributes, [{ name: 'a', value: '1' }]);
  shopify.configure({ pixelOrderIdFormat: 'order-identity-gid', checkoutOrder: 'pixel-first' });

  shopify.setEnabledEmbeds(['head-embed']);
  const page = await request(shopify.port, { path: '/', host: STORE });
  assert.match(page.text, /fixture-head-embed/);
  assert.doesNotMatch(page.text, /fixture-body-embed|fixture-conditional/);
  shopify.setEnabledEmbeds(null);
});

test('compliance webhooks and uninstall use the documented payloads; uninstall revokes tokens', async () => {
  appInbox.webhooks.length = 0;
  await shopify.customersDataRequest({ customerId: 191167, email: 'john@example.com', phone: '555-625-1199', orderIds: [299938, 280263] });
  await shopify.customersRedact({ customerId: 191167, email: 'john@example.com', phone: '555-625-1199', orderIds: [299938] });
  await shopify.shopRedact();
  const [dr, cr, sr] = appInbox.webhooks.map((w) => ({ topic: w.headers['x-shopify-topic'], body: JSON.parse(w.raw) }));
  assert.equal(dr.topic, 'customers/data_request');
  assert.deepEqual(Object.keys(dr.body).sort(), ['customer', 'data_request', 'orders_requested', 'shop_domain', 'shop_id']);
  assert.deepEqual(dr.body.customer, { id: 191167, email: 'john@example.com', phone: '555-625-1199' });
  assert.equal(typeof dr.body.data_request.id, 'number');
  assert.equal(cr.topic, 'customers/redact');
  assert.deepEqual(Object.keys(cr.body).sort(), ['customer', 'orders_to_redact', 'shop_domain', 'shop_id']);
  assert.equal(sr.topic, 'shop/redact');
  assert.deepEqual(sr.body, { shop_id: sr.body.shop_id, shop_domain: SHOP });

  const token = shopify.accessTokens.find((t) => !t.revoked && !t.online).token;
  assert.equal((await gql(token, '{ shop { name } }')).status, 200);
  const r = await shopify.uninstall();
  assert.equal(r.status, 200);
  const un = appInbox.webhooks.at(-1);
  assert.equal(un.headers['x-shopify-topic'], 'app/uninstalled');
  const body = JSON.parse(un.raw);
  assert.equal(body.myshopify_domain, SHOP);
  assert.equal(body.domain, STORE);
  assert.equal(body.currency, 'EUR');
  assert.equal((await gql(token, '{ shop { name } }')).status, 401);
  assert.ok(shopify.accessTokens.every((t) => t.revoked));
  assert.equal(shopify.webPixels.length, 0);
});
