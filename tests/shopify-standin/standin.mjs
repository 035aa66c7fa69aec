// A local stand-in for the parts of Shopify that Samplit talks to, written from
// the published protocol on shopify.dev (see README.md beside this file for the
// page each behaviour follows). One HTTP server; requests are routed by Host:
//   Host == shop            -> OAuth + Admin API (/admin/...), storefront otherwise
//   Host == primaryDomain   -> storefront (theme pages, Cart Ajax API, checkout, extension assets)
// Nothing here knows anything about Samplit: no cookie, attribute or metafield
// name of the app is assumed.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { Liquid, Drop } from 'liquidjs';
import { buildSchema, graphql, GraphQLError } from 'graphql';
import * as esbuild from 'esbuild';

const PIXEL_WAIT_MS = 5000;
const WEBHOOK_TIMEOUT_MS = 5000; // Shopify expects a response within 5 s (webhooks HTTPS delivery page)

// ---------------------------------------------------------------- helpers
const hmacHex = (secret, msg) => crypto.createHmac('sha256', secret).update(msg).digest('hex');
const hmacB64 = (secret, body) => crypto.createHmac('sha256', secret).update(body).digest('base64');
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const randomHex = (n) => crypto.randomBytes(n).toString('hex');
const nowSec = () => Math.floor(Date.now() / 1000);
const money = (minor) => (minor / 100).toFixed(2);
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const safeEqual = (a, b) => {
  const x = Buffer.from(String(a)), y = Buffer.from(String(b));
  return x.length === y.length && crypto.timingSafeEqual(x, y);
};

/** The message Shopify signs for query-string HMACs: every parameter except `hmac`,
 *  sorted by key, joined as `key=value` with `&` (authorization code grant page). */
export function queryHmacMessage(params) {
  const entries = params instanceof URLSearchParams ? [...params.entries()] : Object.entries(params);
  return entries
    .filter(([k]) => k !== 'hmac' && k !== 'signature')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

export function signJwtHS256(payload, secret) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(payload));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

function verifyJwtHS256(token, secret) {
  const parts = String(token || '').split('.');
  if (parts.length !== 3) throw new Error('malformed token');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  if (header.alg !== 'HS256') throw new Error('unexpected alg');
  const expected = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest('base64url');
  if (!safeEqual(expected, parts[2])) throw new Error('bad signature');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString());
}

function readBody(req, limit = 10 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { reject(new Error('body too large')); req.destroy(); } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Parses JSON or application/x-www-form-urlencoded bodies; form keys with
 *  brackets (attributes[a], updates[1], items[0][id]) become nested objects. */
function parseBody(raw, contentType = '') {
  if (!raw) return {};
  if (/json/i.test(contentType) || /^\s*[{[]/.test(raw)) {
    try { return JSON.parse(raw); } catch { if (/json/i.test(contentType)) throw new Error('invalid JSON'); }
  }
  const out = {};
  for (const [k, v] of new URLSearchParams(raw)) setNested(out, k, v);
  return out;
}

function setNested(obj, key, value) {
  const m = key.match(/^([^[\]]+)((?:\[[^\]]*\])*)$/);
  if (!m || !m[2]) { obj[key] = value; return; }
  const path_ = [m[1], ...[...m[2].matchAll(/\[([^\]]*)\]/g)].map((x) => x[1])];
  let cur = obj;
  path_.forEach((p, i) => {
    const last = i === path_.length - 1;
    if (p === '') { // `key[]` -> array push
      if (!Array.isArray(cur)) return;
      if (last) cur.push(value); else { const o = {}; cur.push(o); cur = o; }
      return;
    }
    if (last) { cur[p] = value; return; }
    if (cur[p] == null) cur[p] = path_[i + 1] === '' ? [] : {};
    cur = cur[p];
  });
}

function parseCookies(header = '') {
  const out = {};
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (k) out[k] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

/** Minimal TOML reader: enough for shopify.extension.toml (tables, key = "string" | number | bool | [..]). */
function parseTomlLite(text) {
  const root = {};
  let cur = root;
  for (let line of text.split(/\r?\n/)) {
    line = line.replace(/\s+#.*$/, '').trim();
    if (!line || line.startsWith('#')) continue;
    const arrTable = line.match(/^\[\[(.+)\]\]$/);
    const table = line.match(/^\[(.+)\]$/);
    if (arrTable || table) {
      const keys = (arrTable || table)[1].split('.').map((k) => k.trim().replace(/^"|"$/g, ''));
      cur = root;
      keys.forEach((k, i) => {
        const last = i === keys.length - 1;
        if (last && arrTable) { cur[k] = cur[k] || []; const o = {}; cur[k].push(o); cur = o; return; }
        cur[k] = cur[k] || {};
        cur = Array.isArray(cur[k]) ? cur[k][cur[k].length - 1] : cur[k];
      });
      continue;
    }
    const kv = line.match(/^([A-Za-z0-9_."-]+)\s*=\s*(.+)$/);
    if (!kv) continue;
    const key = kv[1].replace(/^"|"$/g, '');
    let v = kv[2].trim();
    try {
      if (/^(true|false)$/.test(v)) v = v === 'true';
      else if (/^-?\d+(\.\d+)?$/.test(v)) v = Number(v);
      else if (v.startsWith('"') || v.startsWith('[') || v.startsWith('{')) {
        v = JSON.parse(v.replace(/(\{|,)\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/g, '$1 "$2":').replace(/'/g, '"'));
      }
    } catch { /* keep raw */ }
    cur[key] = v;
  }
  return root;
}

const CONTENT_TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg', '.gif': 'image/gif', '.html': 'text/html', '.map': 'application/json', '.wasm': 'application/wasm' };

// ---------------------------------------------------------------- Admin GraphQL schema (subset of 2025-10)
const METAFIELD_TYPES = ['boolean', 'color', 'date', 'date_time', 'dimension', 'id', 'json', 'link', 'money', 'multi_line_text_field', 'number_decimal', 'number_integer', 'rating', 'rich_text_field', 'single_line_text_field', 'url', 'volume', 'weight'];

function adminSchemaSDL(currency) {
  const currencies = [...new Set(['EUR', 'USD', 'GBP', 'CAD', 'AUD', 'JPY', 'CHF', 'SEK', 'DKK', 'NOK', 'PLN', currency])];
  return /* GraphQL */ `
scalar JSON
scalar URL
scalar DateTime
enum CurrencyCode { ${currencies.join(' ')} }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }

type Query {
  shop: Shop!
  currentAppInstallation: AppInstallation!
  webPresences(first: Int, last: Int, after: String, before: String, reverse: Boolean = false): MarketWebPresenceConnection!
  webPixel(id: ID): WebPixel
}
type Mutation {
  metafieldsSet(metafields: [MetafieldsSetInput!]!): MetafieldsSetPayload
  webPixelCreate(webPixel: WebPixelInput!): WebPixelCreatePayload
  webPixelUpdate(id: ID!, webPixel: WebPixelInput!): WebPixelUpdatePayload
  webPixelDelete(id: ID!): WebPixelDeletePayload
}

type Shop {
  id: ID!
  name: String!
  email: String!
  contactEmail: String!
  myshopifyDomain: String!
  currencyCode: CurrencyCode!
  primaryDomain: Domain!
  url: URL!
  ianaTimezone: String!
}
type Domain { id: ID! host: String! url: URL! sslEnabled: Boolean! }
type ShopLocale { locale: String! name: String! primary: Boolean! published: Boolean! }
type MarketWebPresenceRootUrl { locale: String! url: URL! }
type MarketWebPresence {
  id: ID!
  domain: Domain
  subfolderSuffix: String
  rootUrls: [MarketWebPresenceRootUrl!]!
  defaultLocale: ShopLocale!
  alternateLocales: [ShopLocale!]!
}
type MarketWebPresenceEdge { cursor: String! node: MarketWebPresence! }
type MarketWebPresenceConnection { edges: [MarketWebPresenceEdge!]! nodes: [MarketWebPresence!]! pageInfo: PageInfo! }

type App { id: ID! apiKey: String! title: String! handle: String }
type AccessScope { handle: String! description: String! }
type AppInstallation {
  id: ID!
  app: App!
  accessScopes: [AccessScope!]!
  launchUrl: URL!
  metafield(namespace: String, key: String!): Metafield
  metafields(first: Int, namespace: String): MetafieldConnection!
}

enum MetafieldOwnerType { API_PERMISSION SHOP }
type Metafield {
  id: ID!
  namespace: String!
  key: String!
  type: String!
  value: String!
  jsonValue: JSON!
  compareDigest: String!
  ownerType: MetafieldOwnerType!
  createdAt: DateTime!
  updatedAt: DateTime!
}
type MetafieldEdge { cursor: String! node: Metafield! }
type MetafieldConnection { edges: [MetafieldEdge!]! nodes: [Metafield!]! pageInfo: PageInfo! }
input MetafieldsSetInput { ownerId: ID! namespace: String key: String! type: String value: String! compareDigest: String }
enum MetafieldsSetUserErrorCode {
  APP_NOT_AUTHORIZED BLANK CAPABILITY_VIOLATION INCLUSION INTERNAL_ERROR INVALID INVALID_COMPARE_DIGEST
  INVALID_TYPE INVALID_VALUE LESS_THAN_OR_EQUAL_TO PRESENT STALE_OBJECT TAKEN TOO_LONG TOO_SHORT
}
type MetafieldsSetUserError { field: [String!] message: String! code: MetafieldsSetUserErrorCode elementIndex: Int }
type MetafieldsSetPayload { metafields: [Metafield!] userErrors: [MetafieldsSetUserError!]! }

input WebPixelInput { settings: JSON! }
type WebPixel { id: ID! settings: JSON! }
enum ErrorsWebPixelUserErrorCode {
  BLANK INVALID_CONFIGURATION_JSON INVALID_RUNTIME_CONTEXT INVALID_SETTINGS INVALID_SETTINGS_DEFINITION
  NO_EXTENSION NOT_FOUND TAKEN UNEXPECTED_ERROR UNABLE_TO_DELETE
}
type ErrorsWebPixelUserError { code: ErrorsWebPixelUserErrorCode field: [String!] message: String! }
type WebPixelCreatePayload { userErrors: [ErrorsWebPixelUserError!]! webPixel: WebPixel }
type WebPixelUpdatePayload { userErrors: [ErrorsWebPixelUserError!]! webPixel: WebPixel }
type WebPixelDeletePayload { deletedWebPixelId: ID userErrors: [ErrorsWebPixelUserError!]! }
`;
}

// Custom scalars declared in SDL (JSON, URL, DateTime) keep graphql-js defaults:
// identity serialize/parseValue and untyped literal parsing, i.e. "any JSON value".
const buildAdminSchema = (currency) => buildSchema(adminSchemaSDL(currency));

class AccessDenied extends GraphQLError {
  constructor(field, required) {
    super(`Access denied for ${field} field. Required access: ${required}`, {
      extensions: { code: 'ACCESS_DENIED', documentation: 'https://shopify.dev/api/usage/access-scopes', requiredAccess: required },
    });
  }
}

// ---------------------------------------------------------------- the stand-in
export async function startStandin(opts) {
  const o = {
    apiVersion: '2025-10',
    currency: 'EUR',
    shopName: 'Test Store',
    scopes: '',
    appInstallPath: '/shopify/auth',
    appId: String(1000000 + crypto.randomInt(8999999)),
    shopId: 60000000000 + crypto.randomInt(999999999),
    userId: '42',
    pixelOrderIdFormat: 'order-identity-gid', // 'order-identity-gid' | 'order-gid' | 'numeric' (README: docs don't fix it)
    checkoutOrder: 'pixel-first', // 'pixel-first' | 'webhook-first' | 'concurrent'
    checkoutWebhook: { attempts: 5, backoffMs: 200 },
    consent: { analytics: true, marketing: true, preferences: true, sale_of_data: true },
    enabledEmbeds: null, // null = every app embed block enabled; otherwise array of block handles
    customer: null, // guest by default (Liquid `customer` is nil)
    products: null,
    ...opts,
  };
  for (const k of ['apiKey', 'apiSecret', 'shop', 'primaryDomain']) if (!o[k]) throw new Error(`startStandin: ${k} is required`);
  o.redirectUrls = o.redirectUrls || (o.appUrl ? [`${o.appUrl}/shopify/auth/callback`] : []);
  const shopDomain = o.shop.toLowerCase();
  const storeHandle = shopDomain.replace(/\.myshopify\.com$/, '');
  const products = o.products || [
    { id: 8000000000001, handle: 'test-product', title: 'Test Product', vendor: o.shopName, product_type: 'Test', variants: [{ id: 45000000000001, title: 'Default Title', price: 1999, sku: 'TEST-1', grams: 100 }] },
    { id: 8000000000002, handle: 'second-product', title: 'Second Product', vendor: o.shopName, product_type: 'Test', variants: [{ id: 45000000000002, title: 'Default Title', price: 500, sku: 'TEST-2', grams: 50 }] },
  ];
  const variantIndex = new Map();
  for (const p of products) for (const v of p.variants) variantIndex.set(String(v.id), { product: p, variant: v });

  const schema = buildAdminSchema(o.currency);
  const liquid = new Liquid({ cache: false, strictFilters: false, strictVariables: false, jsTruthy: false });

  let port = 0;
  let installationSeq = 1;
  let installed = false;
  let counter = 0;
  const seq = () => ++counter;
  const codes = new Map();
  const carts = new Map();
  const timers = new Set();
  const sockets = new Set();
  const pixelBundles = new Map();

  const state = {
    accessTokens: [],
    metafields: [],
    webPixels: [],
    orders: [],
    adminRequests: [],
    webhooks: [],
    pixelLog: [],
    lastCheckout: null,
    appInstallationId: null,
    serverErrors: [],
  };

  const installationGid = () => `gid://shopify/AppInstallation/${state.appInstallationId}`;
  const ensureInstalled = () => {
    if (!installed) { installed = true; state.appInstallationId = 5000000 + installationSeq++; }
  };
  const storefrontOrigin = () => `http://${o.primaryDomain}:${port}`;
  const hostParam = () => Buffer.from(`admin.shopify.com/store/${storeHandle}`).toString('base64').replace(/=+$/, '');
  const grantedScopes = (s) => String(s || '').split(',').map((x) => x.trim()).filter(Boolean);
  const hasScope = (scopes, needed) => {
    const [verb, ...rest] = needed.split('_');
    const noun = rest.join('_');
    return scopes.includes(needed) || (verb === 'read' && scopes.includes(`write_${noun}`));
  };

  // ------------------------------------------------------------ extensions on disk
  function listExtensions() {
    const dir = o.extensionsDir;
    if (!dir || !fs.existsSync(dir)) return [];
    return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => {
      const root = path.join(dir, d.name);
      const tomlPath = path.join(root, 'shopify.extension.toml');
      let toml = {};
      if (fs.existsSync(tomlPath)) toml = parseTomlLite(fs.readFileSync(tomlPath, 'utf8'));
      const ext = toml.extensions?.[0] || {};
      const type = toml.type || ext.type || null;
      return { name: d.name, root, toml, type, handle: toml.handle || ext.handle || d.name, uid: toml.uid || ext.uid || d.name };
    });
  }

  function appEmbedBlocks() {
    const out = [];
    for (const ext of listExtensions()) {
      const blocksDir = path.join(ext.root, 'blocks');
      if (!fs.existsSync(blocksDir)) continue;
      for (const f of fs.readdirSync(blocksDir).filter((x) => x.endsWith('.liquid')).sort()) {
        const src = fs.readFileSync(path.join(blocksDir, f), 'utf8');
        const m = src.match(/\{%-?\s*schema\s*-?%\}([\s\S]*?)\{%-?\s*endschema\s*-?%\}/);
        let schemaJson = {};
        if (m) { try { schemaJson = JSON.parse(m[1]); } catch (e) { state.pixelLog.push({ kind: 'liquid-schema-error', file: f, error: e.message }); } }
        out.push({ ext, handle: f.replace(/\.liquid$/, ''), file: path.join(blocksDir, f), body: m ? src.replace(m[0], '') : src, schema: schemaJson });
      }
    }
    return out;
  }

  function pixelExtensions() {
    return listExtensions().filter((e) => e.type === 'web_pixel_extension').map((e) => {
      const entry = ['src/index.js', 'src/index.ts', 'src/index.jsx', 'src/index.tsx'].map((p) => path.join(e.root, p)).find((p) => fs.existsSync(p));
      return { ...e, entry };
    }).filter((e) => e.entry);
  }

  // ------------------------------------------------------------ liquid objects
  class MetafieldDrop extends Drop {
    constructor(mf) { super(); this.mf = mf; this.type = mf.type; this.value = typedValue(mf); }
    valueOf() { return this.value; }
  }
  function typedValue(mf) {
    switch (mf.type) {
      case 'json': try { return JSON.parse(mf.value); } catch { return null; }
      case 'boolean': return mf.value === 'true';
      case 'number_integer': case 'number_decimal': return Number(mf.value);
      default: return mf.value;
    }
  }
  function appLiquidObject() {
    const metafields = {};
    const appNs = `app--${o.appId}`;
    for (const mf of state.metafields.filter((m) => m.ownerId === installationGid())) {
      const names = [mf.namespace];
      if (mf.namespace === appNs) names.push('$app');
      else if (mf.namespace.startsWith(`${appNs}--`)) names.push(`$app:${mf.namespace.slice(appNs.length + 2)}`);
      for (const ns of names) (metafields[ns] ||= {})[mf.key] = new MetafieldDrop(mf);
    }
    return { metafields };
  }
  function shopLiquidObject() {
    return {
      id: o.shopId, name: o.shopName, email: o.shopEmail || `owner@${shopDomain}`, domain: o.primaryDomain,
      permanent_domain: shopDomain, url: storefrontOrigin(), secure_url: storefrontOrigin(), currency: o.currency,
      money_format: '{{amount}}', money_with_currency_format: `{{amount}} ${o.currency}`, locale: 'en',
    };
  }
  function cartLiquidObject(cart) {
    const j = cartJson(cart);
    return { ...j, currency: { iso_code: o.currency } };
  }

  // ------------------------------------------------------------ carts (Cart Ajax API)
  function newCart() {
    const cart = { token: randomHex(16), items: [], attributes: {}, note: null, clientId: crypto.randomUUID(), createdAt: new Date().toISOString() };
    carts.set(cart.token, cart);
    return cart;
  }
  function cartFor(req, res, create = true) {
    const token = parseCookies(req.headers.cookie).cart;
    let cart = token && carts.get(token);
    if (!cart && create) {
      cart = newCart();
      res.setHeader('Set-Cookie', `cart=${cart.token}; Path=/; SameSite=Lax`);
    }
    return cart;
  }
  const publicAttributes = (attrs) => Object.fromEntries(Object.entries(attrs).filter(([k]) => !k.startsWith('__')));
  function lineItemJson(item) {
    const { product: p, variant: v } = variantIndex.get(String(item.variantId));
    const line = v.price * item.quantity;
    return {
      id: v.id, properties: item.properties || {}, quantity: item.quantity, variant_id: v.id, key: item.key,
      title: v.title === 'Default Title' ? p.title : `${p.title} - ${v.title}`, price: v.price, original_price: v.price,
      presentment_price: Number(money(v.price)), discounted_price: v.price, line_price: line, original_line_price: line,
      total_discount: 0, discounts: [], sku: v.sku || null, grams: v.grams || 0, vendor: p.vendor, taxable: true,
      product_id: p.id, product_has_only_default_variant: p.variants.length === 1, gift_card: false, final_price: v.price,
      final_line_price: line, url: `/products/${p.handle}?variant=${v.id}`, featured_image: null, image: null,
      handle: p.handle, requires_shipping: true, product_type: p.product_type || '', product_title: p.title,
      product_description: p.description || '', variant_title: v.title === 'Default Title' ? null : v.title,
      variant_options: [v.title], options_with_values: [{ name: 'Title', value: v.title }],
      line_level_discount_allocations: [], line_level_total_discount: 0,
    };
  }
  function cartJson(cart) {
    const items = cart.items.map(lineItemJson);
    const total = items.reduce((s, i) => s + i.final_line_price, 0);
    return {
      token: cart.token, note: cart.note, attributes: publicAttributes(cart.attributes), original_total_price: total,
      total_price: total, total_discount: 0, total_weight: items.reduce((s, i) => s + i.grams * i.quantity, 0),
      item_count: items.reduce((s, i) => s + i.quantity, 0), items, requires_shipping: items.length > 0,
      currency: o.currency, items_subtotal_price: total, cart_level_discount_applications: [], discount_codes: [],
    };
  }
  function addToCart(cart, { id, quantity = 1, properties = {} }) {
    const hit = variantIndex.get(String(id));
    if (!hit) return { error: { status: 404, message: 'Cart Error', description: 'Cannot find variant' } };
    const qty = Number(quantity);
    if (!Number.isInteger(qty) || qty < 1) return { error: { status: 422, message: 'Cart Error', description: 'Quantity must be a positive integer' } };
    const propsKey = crypto.createHash('md5').update(JSON.stringify(properties || {})).digest('hex');
    const key = `${hit.variant.id}:${propsKey}`;
    let item = cart.items.find((i) => i.key === key);
    if (item) item.quantity += qty;
    else { item = { key, variantId: hit.variant.id, quantity: qty, properties: properties || {} }; cart.items.push(item); }
    return { item };
  }
  function setQuantity(cart, idOrKey, qty) {
    const q = Number(qty);
    const matches = cart.items.filter((i) => i.key === String(idOrKey) || String(i.variantId) === String(idOrKey));
    if (!matches.length) {
      if (q > 0 && variantIndex.has(String(idOrKey))) addToCart(cart, { id: idOrKey, quantity: q });
      return;
    }
    for (const m of matches) m.quantity = q;
    cart.items = cart.items.filter((i) => i.quantity > 0);
  }
  function applyCartUpdate(cart, body) {
    if (body.updates) {
      if (Array.isArray(body.updates)) body.updates.forEach((q, idx) => { if (cart.items[idx]) cart.items[idx].quantity = Number(q); });
      else for (const [k, q] of Object.entries(body.updates)) setQuantity(cart, k, q);
      cart.items = cart.items.filter((i) => i.quantity > 0);
    }
    if (body.attributes && typeof body.attributes === 'object') {
      for (const [k, v] of Object.entries(body.attributes)) {
        if (v === '' || v == null) delete cart.attributes[k]; else cart.attributes[k] = String(v);
      }
    }
    if (body.note !== undefined) cart.note = body.note === '' ? null : String(body.note);
  }

  // ------------------------------------------------------------ HTTP plumbing
  function send(res, status, body, headers = {}) {
    if (res.headersSent) return;
    const isJson = typeof body !== 'string' && !Buffer.isBuffer(body);
    res.writeHead(status, { 'Content-Type': isJson ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8', ...headers });
    res.end(isJson ? JSON.stringify(body) : body);
  }
  const redirect = (res, location, status = 302, headers = {}) => { res.writeHead(status, { Location: location, ...headers }); res.end(); };

  const server = http.createServer(async (req, res) => {
    try {
      const host = String(req.headers.host || '').replace(/:\d+$/, '').toLowerCase();
      const url = new URL(req.url, `http://${host || 'localhost'}`);
      if (host === shopDomain && url.pathname.startsWith('/admin')) return await handleAdmin(req, res, url, host);
      if (host === o.primaryDomain.toLowerCase() || host === shopDomain) return await handleStorefront(req, res, url);
      send(res, 404, `unknown host ${escapeHtml(host)}`);
    } catch (e) {
      state.serverErrors.push({ path: req.url, error: String(e?.stack || e) });
      send(res, 500, { errors: String(e?.message || e) });
    }
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(o.port || 0, '127.0.0.1', r));
  port = server.address().port;

  // ------------------------------------------------------------ OAuth + Admin API
  async function handleAdmin(req, res, url, host) {
    const raw = req.method === 'GET' ? '' : await readBody(req);
    const entry = { method: req.method, path: url.pathname + url.search, host, body: raw, headers: req.headers };
    state.adminRequests.push(entry);
    const p = url.pathname;
    if (p === '/admin/oauth/authorize' && req.method === 'GET') return authorize(res, url);
    if (p === '/admin/oauth/access_token' && req.method === 'POST') {
      let body;
      try { body = { ...Object.fromEntries(url.searchParams), ...parseBody(raw, req.headers['content-type']) }; } catch { return send(res, 400, { error: 'invalid_request', error_description: 'Malformed body' }); }
      return accessToken(res, body);
    }
    const gql = p.match(/^\/admin\/api\/([^/]+)\/graphql\.json$/);
    if (gql && req.method === 'POST') {
      if (gql[1] !== o.apiVersion) return send(res, 404, { errors: 'Not Found' });
      const token = req.headers['x-shopify-access-token'];
      const rec = state.accessTokens.find((t) => t.token === token && t.shop === shopDomain && !t.revoked && (!t.expiresAt || t.expiresAt > Date.now()));
      if (!rec) return send(res, 401, { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' });
      let body;
      try { body = /application\/graphql/i.test(req.headers['content-type'] || '') ? { query: raw } : parseBody(raw, req.headers['content-type'] || 'application/json'); } catch { return send(res, 400, { errors: 'Bad Request' }); }
      if (!body.query) return send(res, 400, { errors: { query: 'Required parameter missing or invalid' } });
      const result = await graphql({ schema, source: body.query, variableValues: body.variables || {}, operationName: body.operationName, rootValue: rootResolvers(rec), contextValue: { token: rec } });
      entry.graphql = { query: body.query, variables: body.variables, errors: result.errors?.map((e) => e.message) };
      const out = { ...(result.errors ? { errors: result.errors.map((e) => e.toJSON ? e.toJSON() : e) } : {}), ...(result.data !== undefined ? { data: result.data } : {}), extensions: { cost: { requestedQueryCost: 1, actualQueryCost: 1, throttleStatus: { maximumAvailable: 2000, currentlyAvailable: 1999, restoreRate: 100 } } } };
      return send(res, 200, out, { 'X-Shopify-API-Version': o.apiVersion });
    }
    return send(res, 404, { errors: 'Not Found' });
  }

  function authorize(res, url) {
    const q = url.searchParams;
    if (q.get('client_id') !== o.apiKey) return send(res, 400, '<h1>Oauth error invalid_request: The client_id is invalid</h1>');
    const redirectUri = q.get('redirect_uri');
    if (!redirectUri || !o.redirectUrls.includes(redirectUri)) return send(res, 400, '<h1>Oauth error invalid_request: The redirect_uri is not whitelisted</h1>');
    const online = q.getAll('grant_options[]').includes('per-user');
    const code = randomHex(16);
    codes.set(code, { scope: q.get('scope') || o.scopes, online, expiresAt: Date.now() + 60_000, used: false });
    const params = { code, host: hostParam(), shop: shopDomain, timestamp: String(nowSec()) };
    if (q.has('state')) params.state = q.get('state');
    const hmac = hmacHex(o.apiSecret, queryHmacMessage(params));
    const target = new URL(redirectUri);
    for (const [k, v] of Object.entries({ ...params, hmac })) target.searchParams.set(k, v);
    return redirect(res, target.toString());
  }

  function issueToken(scope, via, { online = false, expiring = false, userId = o.userId } = {}) {
    ensureInstalled();
    const rec = { token: `shpat_${randomHex(16)}`, shop: shopDomain, scope, via, online, revoked: false, issuedAt: Date.now() };
    const out = { access_token: rec.token, scope };
    if (online) {
      rec.token = `shpua_${randomHex(16)}`; out.access_token = rec.token;
      rec.expiresAt = Date.now() + 86399_000;
      Object.assign(out, {
        expires_in: 86399, associated_user_scope: scope,
        associated_user: { id: Number(userId), first_name: 'Test', last_name: 'Merchant', email: `owner@${shopDomain}`, email_verified: true, account_owner: true, locale: 'en', collaborator: false },
      });
    } else if (expiring) {
      rec.expiresAt = Date.now() + 3600_000;
      Object.assign(out, { expires_in: 3600, refresh_token: `shprt_${randomHex(16)}`, refresh_token_expires_in: 7776000 });
    }
    state.accessTokens.push(rec);
    return out;
  }

  function accessToken(res, body) {
    if (body.client_id !== o.apiKey || body.client_secret !== o.apiSecret) {
      return send(res, 400, { error: 'invalid_client', error_description: 'Client authentication failed: client_id or client_secret is invalid' });
    }
    if (body.grant_type === 'urn:ietf:params:oauth:grant-type:token-exchange') {
      if (body.subject_token_type !== 'urn:ietf:params:oauth:token-type:id_token') return send(res, 400, { error: 'invalid_request', error_description: 'Unsupported subject_token_type' });
      const kinds = { 'urn:shopify:params:oauth:token-type:offline-access-token': false, 'urn:shopify:params:oauth:token-type:online-access-token': true };
      if (!(body.requested_token_type in kinds)) return send(res, 400, { error: 'invalid_request', error_description: 'Unsupported requested_token_type' });
      let claims;
      try {
        claims = verifyJwtHS256(body.subject_token, o.apiSecret);
        const t = nowSec();
        if (claims.aud !== o.apiKey) throw new Error('aud mismatch');
        if (typeof claims.exp !== 'number' || claims.exp <= t) throw new Error('expired');
        if (typeof claims.nbf === 'number' && claims.nbf > t) throw new Error('not yet valid');
        if (claims.dest !== `https://${shopDomain}`) throw new Error('dest does not match the shop');
        if (claims.iss !== `https://${shopDomain}/admin`) throw new Error('iss does not match the shop');
      } catch (e) {
        return send(res, 400, { error: 'invalid_subject_token', error_description: `Token validation failed: ${e.message}` });
      }
      return send(res, 200, issueToken(o.scopes, 'token_exchange', { online: kinds[body.requested_token_type], expiring: String(body.expiring) === '1', userId: claims.sub }));
    }
    const c = body.code && codes.get(body.code);
    if (!c || c.used || c.expiresAt < Date.now()) {
      if (c) c.used = true;
      return send(res, 400, { error: 'invalid_request', error_description: 'The authorization code was not found or was already used' });
    }
    c.used = true;
    return send(res, 200, issueToken(c.scope, 'authorization_code', { online: c.online, expiring: String(body.expiring) === '1' }));
  }

  function rootResolvers(tokenRec) {
    const scopes = grantedScopes(tokenRec.scope);
    const need = (field, ...req) => {
      if (!req.every((r) => hasScope(scopes, r))) throw new AccessDenied(field, req.map((r) => `\`${r}\` access scope`).join(', '));
    };
    const pixelScopes = (field) => need(field, 'write_pixels', 'read_customer_events');
    const shop = () => ({
      id: `gid://shopify/Shop/${o.shopId}`, name: o.shopName, email: o.shopEmail || `owner@${shopDomain}`,
      contactEmail: o.shopEmail || `owner@${shopDomain}`, myshopifyDomain: shopDomain, currencyCode: o.currency,
      primaryDomain: domainObj(), url: `https://${o.primaryDomain}`, ianaTimezone: 'Europe/Paris',
    });
    const pixelOut = (p) => ({ id: p.id, settings: p.settingsJson });
    return {
      shop,
      currentAppInstallation: () => installationObj(scopes),
      webPresences: () => {
        need('webPresences', 'read_markets');
        const node = { id: 'gid://shopify/MarketWebPresence/1', domain: domainObj(), subfolderSuffix: null, rootUrls: [{ locale: 'en', url: `https://${o.primaryDomain}/` }], defaultLocale: { locale: 'en', name: 'English', primary: true, published: true }, alternateLocales: [] };
        return { nodes: [node], edges: [{ cursor: 'MQ', node }], pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: 'MQ', endCursor: 'MQ' } };
      },
      webPixel: ({ id }) => {
        need('webPixel', 'read_pixels');
        const p = id ? state.webPixels.find((x) => x.id === id) : state.webPixels[0];
        if (!p) throw new GraphQLError('No web pixel was found for this app.', { extensions: { code: 'RESOURCE_NOT_FOUND' } });
        return pixelOut(p);
      },
      metafieldsSet: ({ metafields }) => metafieldsSet(metafields),
      webPixelCreate: ({ webPixel }) => {
        pixelScopes('webPixelCreate');
        if (state.webPixels.length) return { webPixel: null, userErrors: [{ code: 'TAKEN', field: ['webPixel'], message: 'Web pixel is taken.' }] };
        const v = validatePixelSettings(webPixel.settings);
        if (v.error) return { webPixel: null, userErrors: [v.error] };
        const p = { id: `gid://shopify/WebPixel/${seq()}`, settings: v.settings, settingsJson: JSON.stringify(v.settings) };
        state.webPixels.push(p);
        return { webPixel: pixelOut(p), userErrors: [] };
      },
      webPixelUpdate: ({ id, webPixel }) => {
        pixelScopes('webPixelUpdate');
        const p = state.webPixels.find((x) => x.id === id);
        if (!p) return { webPixel: null, userErrors: [{ code: 'NOT_FOUND', field: ['id'], message: 'Web pixel not found.' }] };
        const v = validatePixelSettings(webPixel.settings);
        if (v.error) return { webPixel: null, userErrors: [v.error] };
        Object.assign(p, { settings: v.settings, settingsJson: JSON.stringify(v.settings) });
        return { webPixel: pixelOut(p), userErrors: [] };
      },
      webPixelDelete: ({ id }) => {
        pixelScopes('webPixelDelete');
        const i = state.webPixels.findIndex((x) => x.id === id);
        if (i < 0) return { deletedWebPixelId: null, userErrors: [{ code: 'NOT_FOUND', field: ['id'], message: 'Web pixel not found.' }] };
        state.webPixels.splice(i, 1);
        return { deletedWebPixelId: id, userErrors: [] };
      },
    };
  }

  function domainObj() {
    return { id: 'gid://shopify/Domain/1', host: o.primaryDomain, url: `https://${o.primaryDomain}`, sslEnabled: true };
  }

  function metafieldOut(m) {
    return { ...m, jsonValue: typedValue(m), ownerType: 'API_PERMISSION' };
  }

  function installationObj(scopes) {
    ensureInstalled();
    const mine = () => state.metafields.filter((m) => m.ownerId === installationGid());
    const conn = (list) => ({ nodes: list.map(metafieldOut), edges: list.map((m) => ({ cursor: m.id, node: metafieldOut(m) })), pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: list[0]?.id || null, endCursor: list.at(-1)?.id || null } });
    return {
      id: installationGid(),
      app: { id: `gid://shopify/App/${o.appId}`, apiKey: o.apiKey, title: 'App', handle: null },
      accessScopes: scopes.map((handle) => ({ handle, description: handle })),
      launchUrl: `https://admin.shopify.com/store/${storeHandle}/apps/${o.apiKey}`,
      metafield: ({ namespace, key }) => { const m = mine().find((x) => x.namespace === resolveNamespace(namespace) && x.key === key); return m ? metafieldOut(m) : null; },
      metafields: ({ first, namespace }) => conn(mine().filter((m) => !namespace || m.namespace === resolveNamespace(namespace)).slice(0, first || 250)),
    };
  }

  function resolveNamespace(ns) {
    const base = `app--${o.appId}`;
    if (ns == null || ns === '' || ns === '$app') return base;
    if (ns.startsWith('$app:')) return `${base}--${ns.slice(5)}`;
    return ns;
  }

  function validateMetafieldValue(type, value) {
    switch (type) {
      case 'json': try { JSON.parse(value); return true; } catch { return false; }
      case 'boolean': return value === 'true' || value === 'false';
      case 'number_integer': return /^-?\d+$/.test(value);
      case 'number_decimal': return /^-?\d+(\.\d+)?$/.test(value);
      case 'url': return /^(https?|mailto|sms|tel):/.test(value);
      case 'date': return /^\d{4}-\d{2}-\d{2}$/.test(value);
      case 'date_time': return !Number.isNaN(Date.parse(value));
      case 'color': return /^#[0-9a-fA-F]{6}$/.test(value);
      default: return true;
    }
  }

  function metafieldsSet(inputs) {
    ensureInstalled();
    if (inputs.length > 25) {
      throw new GraphQLError(`The input array size of ${inputs.length} is greater than the maximum allowed of 25.`, { extensions: { code: 'MAX_INPUT_SIZE_EXCEEDED' } });
    }
    const userErrors = [];
    const err = (i, field, code, message) => userErrors.push({ field: ['metafields', String(i), field], message, code, elementIndex: i });
    const staged = [];
    inputs.forEach((m, i) => {
      if (m.ownerId !== installationGid()) { err(i, 'ownerId', 'INVALID', 'Owner does not exist.'); return; }
      const ns = resolveNamespace(m.namespace);
      if (m.key.length < 2) err(i, 'key', 'TOO_SHORT', 'Key is too short (minimum is 2 characters)');
      else if (m.key.length > 64) err(i, 'key', 'TOO_LONG', 'Key is too long (maximum is 64 characters)');
      else if (!/^[A-Za-z0-9_-]+$/.test(m.key)) err(i, 'key', 'INVALID', 'Key contains one or more invalid characters.');
      if (ns.length < 3) err(i, 'namespace', 'TOO_SHORT', 'Namespace is too short (minimum is 3 characters)');
      else if (ns.length > 255) err(i, 'namespace', 'TOO_LONG', 'Namespace is too long (maximum is 255 characters)');
      else if (!/^[A-Za-z0-9_-]+$/.test(ns)) err(i, 'namespace', 'INVALID', 'Namespace contains one or more invalid characters.');
      const existing = state.metafields.find((x) => x.ownerId === m.ownerId && x.namespace === ns && x.key === m.key);
      const type = m.type || existing?.type;
      if (!type) { err(i, 'type', 'BLANK', "Type can't be blank"); return; }
      if (!METAFIELD_TYPES.includes(type) && !/^list\./.test(type)) { err(i, 'type', 'INVALID_TYPE', 'Type name is not a valid type'); return; }
      if (existing && m.type && existing.type !== m.type) { err(i, 'type', 'INVALID_TYPE', 'Type does not match the existing metafield.'); return; }
      if (!validateMetafieldValue(type, m.value)) { err(i, 'value', 'INVALID_VALUE', `Value is invalid for type ${type}`); return; }
      if (m.compareDigest !== undefined && m.compareDigest !== null && existing && existing.compareDigest !== m.compareDigest) {
        err(i, 'compareDigest', 'STALE_OBJECT', 'The resource has been updated since it was loaded. Try again with an updated `compareDigest` value.');
        return;
      }
      if (m.compareDigest !== undefined && m.compareDigest !== null && !existing) { err(i, 'compareDigest', 'STALE_OBJECT', 'The metafield does not exist.'); return; }
      staged.push({ ...m, namespace: ns, type, existing });
    });
    if (userErrors.length) return { metafields: null, userErrors };
    const now = new Date().toISOString();
    const out = staged.map((m) => {
      const digest = crypto.createHash('sha256').update(`${m.type}:${m.value}:${seq()}`).digest('hex');
      if (m.existing) { Object.assign(m.existing, { value: m.value, type: m.type, updatedAt: now, compareDigest: digest }); return metafieldOut(m.existing); }
      const rec = { id: `gid://shopify/Metafield/${20000000000 + seq()}`, ownerId: m.ownerId, namespace: m.namespace, key: m.key, type: m.type, value: m.value, compareDigest: digest, createdAt: now, updatedAt: now };
      state.metafields.push(rec);
      return metafieldOut(rec);
    });
    return { metafields: out, userErrors: [] };
  }

  function validatePixelSettings(input) {
    const exts = pixelExtensions();
    if (!exts.length) return { error: { code: 'NO_EXTENSION', field: ['webPixel'], message: 'No extension found.' } };
    let settings = input;
    if (typeof input === 'string') {
      try { settings = JSON.parse(input); } catch { return { error: { code: 'INVALID_CONFIGURATION_JSON', field: ['webPixel', 'settings'], message: 'The provided settings is not a valid JSON.' } }; }
    }
    if (settings == null || typeof settings !== 'object' || Array.isArray(settings)) {
      return { error: { code: 'INVALID_CONFIGURATION_JSON', field: ['webPixel', 'settings'], message: 'The provided settings is not a valid JSON.' } };
    }
    const fields = exts[0].toml?.settings?.fields || {};
    for (const [k, v] of Object.entries(settings)) {
      const def = fields[k];
      if (!def || (/text_field$/.test(def.type || '') && typeof v !== 'string')) {
        return { error: { code: 'INVALID_SETTINGS', field: ['webPixel', 'settings'], message: 'The provided settings does not match the expected settings definition on the app.' } };
      }
    }
    return { settings };
  }

  // ------------------------------------------------------------ storefront
  async function handleStorefront(req, res, url) {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const asset = p.match(/^\/cdn\/extensions\/([^/]+)\/assets\/(.+)$/);
    if (asset && req.method === 'GET') return serveAsset(res, asset[1], asset[2]);
    const raw = req.method === 'POST' ? await readBody(req) : '';
    const ct = req.headers['content-type'] || '';
    let body = {};
    try { body = parseBody(raw, ct); } catch { return send(res, 400, { status: 400, message: 'Bad Request', description: 'Invalid JSON' }); }

    if ((p === '/cart.js' || p === '/cart.json') && req.method === 'GET') return send(res, 200, cartJson(cartFor(req, res)));
    if ((p === '/cart/add.js' || p === '/cart/add') && req.method === 'POST') {
      const cart = cartFor(req, res);
      const list = Array.isArray(body.items) ? body.items : [body];
      const added = [];
      for (const it of list) {
        const r = addToCart(cart, { id: it.id, quantity: it.quantity ?? 1, properties: it.properties });
        if (r.error) return p.endsWith('.js') ? send(res, r.error.status, r.error) : redirect(res, '/cart');
        added.push(lineItemJson(r.item));
      }
      if (!p.endsWith('.js')) return redirect(res, '/cart');
      return send(res, 200, Array.isArray(body.items) ? { items: added } : added[0]);
    }
    if ((p === '/cart/update.js' || p === '/cart/update') && req.method === 'POST') {
      const cart = cartFor(req, res);
      applyCartUpdate(cart, body);
      return p.endsWith('.js') ? send(res, 200, cartJson(cart)) : redirect(res, '/cart');
    }
    if ((p === '/cart/change.js' || p === '/cart/change') && req.method === 'POST') {
      const cart = cartFor(req, res);
      if (body.line) { const it = cart.items[Number(body.line) - 1]; if (it) it.quantity = Number(body.quantity); cart.items = cart.items.filter((i) => i.quantity > 0); }
      else if (body.id != null) setQuantity(cart, body.id, body.quantity ?? 0);
      if (body.properties && body.id != null) for (const it of cart.items) if (it.key === String(body.id) || String(it.variantId) === String(body.id)) it.properties = body.properties;
      return p.endsWith('.js') ? send(res, 200, cartJson(cart)) : redirect(res, '/cart');
    }
    if ((p === '/cart/clear.js' || p === '/cart/clear') && req.method === 'POST') {
      const cart = cartFor(req, res);
      cart.items = [];
      return p.endsWith('.js') ? send(res, 200, cartJson(cart)) : redirect(res, '/cart');
    }
    if (p === '/cart' && req.method === 'POST') { // cart template form: updates[], attributes[], note, checkout
      const cart = cartFor(req, res);
      applyCartUpdate(cart, body);
      return redirect(res, body.checkout !== undefined ? '/checkout' : '/cart');
    }
    if (p === '/checkout' && (req.method === 'GET' || req.method === 'POST')) return checkout(req, res);

    if (req.method !== 'GET') return send(res, 405, 'Method Not Allowed');
    if (p === '/favicon.ico') { res.writeHead(204); return res.end(); }
    if (p === '/') return renderPage(req, res, url, 'index', { page_title: 'Home' });
    if (p === '/cart') return renderPage(req, res, url, 'cart', { page_title: 'Cart' });
    const prod = p.match(/^\/products\/([^/]+)$/);
    if (prod) {
      const product = products.find((x) => x.handle === prod[1]);
      if (!product) return renderPage(req, res, url, '404', { page_title: 'Not found' }, 404);
      return renderPage(req, res, url, 'product', { page_title: product.title, product: productLiquid(product) });
    }
    return renderPage(req, res, url, '404', { page_title: 'Not found' }, 404);
  }

  function serveAsset(res, extName, file) {
    const ext = listExtensions().find((e) => e.name === extName || e.handle === extName);
    if (!ext) return send(res, 404, 'Not found');
    const base = path.join(ext.root, 'assets');
    const full = path.resolve(base, file);
    if (!full.startsWith(base + path.sep) || !fs.existsSync(full) || !fs.statSync(full).isFile()) return send(res, 404, 'Not found');
    res.writeHead(200, { 'Content-Type': CONTENT_TYPES[path.extname(full)] || 'application/octet-stream', 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'no-store' });
    res.end(fs.readFileSync(full));
  }

  const productLiquid = (p) => ({ ...p, url: `/products/${p.handle}`, price: p.variants[0].price, selected_or_first_available_variant: p.variants[0] });

  const TEMPLATES = {
    index: `<h1 id="headline">Original headline</h1>
<p id="tagline">Welcome to {{ shop.name }}.</p>
<ul id="product-list">{% for p in all_products %}<li><a class="product-link" href="{{ p.url }}">{{ p.title }}</a> {{ p.price | money }}</li>{% endfor %}</ul>`,
    product: `<h1 id="headline">Original headline</h1>
<div class="product" data-product-id="{{ product.id }}">
  <h2 class="product-title">{{ product.title }}</h2>
  <p class="price">{{ product.price | money }}</p>
  <form method="post" action="/cart/add" id="product-form">
    <input type="hidden" name="id" value="{{ product.selected_or_first_available_variant.id }}">
    <input type="number" name="quantity" value="1" min="1" id="quantity">
    <button type="submit" name="add" id="add-to-cart">Add to cart</button>
  </form>
  <p id="cart-status" aria-live="polite"></p>
</div>
<script>
document.getElementById('product-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const r = await fetch('/cart/add.js', { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ items: [{ id: Number(f.id.value), quantity: Number(f.quantity.value) }] }) });
  const cart = await (await fetch('/cart.js')).json();
  document.getElementById('cart-count').textContent = cart.item_count;
  document.getElementById('cart-status').textContent = r.ok ? 'Added to cart' : 'Could not add to cart';
});
</script>`,
    cart: `<h1 id="headline">Original headline</h1>
<h2>Your cart</h2>
<form method="post" action="/cart" id="cart-form">
{% if cart.item_count == 0 %}<p id="cart-empty">Your cart is empty.</p>{% endif %}
<table id="cart-items">{% for item in cart.items %}
  <tr class="cart-item" data-key="{{ item.key }}"><td>{{ item.title }}</td>
  <td><input type="number" name="updates[]" value="{{ item.quantity }}" min="0"></td><td>{{ item.final_line_price | money }}</td></tr>{% endfor %}
</table>
<p id="cart-total">Total: {{ cart.total_price | money }}</p>
<button type="submit" name="checkout" id="checkout" {% if cart.item_count == 0 %}disabled{% endif %}>Checkout</button>
</form>`,
    404: `<h1 id="headline">Page not found</h1>`,
  };

  const LAYOUT = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page_title }} – {{ shop.name }}</title>
{{ content_for_header }}
</head>
<body class="template-{{ template }}">
<header><a href="/" id="home-link">{{ shop.name }}</a> · <a href="/cart" id="cart-link">Cart (<span id="cart-count">{{ cart.item_count }}</span>)</a></header>
<main id="MainContent">{{ content_for_layout }}</main>
{{ content_for_body_end }}
</body>
</html>`;

  function registerFilters(engine, ext) {
    engine.registerFilter('money', (v) => `${money(Number(v) || 0)} ${o.currency}`);
    engine.registerFilter('money_without_currency', (v) => money(Number(v) || 0));
    engine.registerFilter('asset_url', (file) => `${storefrontOrigin()}/cdn/extensions/${encodeURIComponent(ext ? ext.name : 'theme')}/assets/${file}`);
    engine.registerFilter('script_tag', (u) => `<script src="${u}" type="text/javascript"></script>`);
    engine.registerFilter('stylesheet_tag', (u) => `<link href="${u}" rel="stylesheet" type="text/css" media="all" />`);
    engine.registerFilter('t', (key) => {
      if (!ext) return key;
      const f = path.join(ext.root, 'locales', 'en.default.json');
      if (!fs.existsSync(f)) return key;
      try { return String(key).split('.').reduce((a, k) => a?.[k], JSON.parse(fs.readFileSync(f, 'utf8'))) ?? key; } catch { return key; }
    });
  }
  registerFilters(liquid, null);

  async function renderEmbeds(target, ctx) {
    let html = '';
    for (const b of appEmbedBlocks()) {
      if ((b.schema.target || '') !== target) continue;
      if (o.enabledEmbeds && !o.enabledEmbeds.includes(b.handle)) continue;
      const tpl = ctx.template;
      if (b.schema.enabled_on?.templates && !b.schema.enabled_on.templates.some((t) => t === '*' || t === tpl)) continue;
      if (b.schema.disabled_on?.templates && b.schema.disabled_on.templates.some((t) => t === '*' || t === tpl)) continue;
      // Global objects (shop, request, customer, cart, app...) stay visible inside {% render %}d snippets; `block` does not.
      const globals = { ...ctx, app: appLiquidObject() };
      const engine = new Liquid({ root: [path.join(b.ext.root, 'snippets')], extname: '.liquid', cache: false, jsTruthy: false, globals });
      registerFilters(engine, b.ext);
      const settings = {};
      for (const s of b.schema.settings || []) if (s.id) settings[s.id] = s.default ?? null;
      const scope = { block: { id: `${b.ext.uid}-${b.handle}`, type: `shopify://apps/app/blocks/${b.handle}/${b.ext.uid}`, settings, shopify_attributes: '' } };
      try {
        if (b.schema.available_if) {
          const avail = String(await engine.parseAndRender(b.schema.available_if, scope)).trim();
          if (!avail || avail === 'false' || avail === 'nil') continue;
        }
        let out = '';
        if (b.schema.stylesheet) out += `<link href="${storefrontOrigin()}/cdn/extensions/${encodeURIComponent(b.ext.name)}/assets/${b.schema.stylesheet}" rel="stylesheet" type="text/css" media="all">\n`;
        if (b.schema.javascript) out += `<script src="${storefrontOrigin()}/cdn/extensions/${encodeURIComponent(b.ext.name)}/assets/${b.schema.javascript}" defer="defer"></script>\n`;
        out += await engine.parseAndRender(b.body, scope);
        html += `\n<!-- BEGIN app block: ${escapeHtml(b.ext.name)}/${escapeHtml(b.handle)} -->\n${out}\n<!-- END app block -->\n`;
      } catch (e) {
        state.pixelLog.push({ kind: 'liquid-error', block: `${b.ext.name}/${b.handle}`, error: e.message });
        html += `\n<!-- app block ${escapeHtml(b.handle)} failed to render: ${escapeHtml(e.message)} -->\n`;
      }
    }
    return html;
  }

  async function renderPage(req, res, url, template, extra = {}, status = 200) {
    const cart = cartFor(req, res, false) || { token: null, items: [], attributes: {}, note: null };
    const ctx = {
      template, shop: shopLiquidObject(), cart: cartLiquidObject(cart), customer: o.customer || undefined,
      request: { host: o.primaryDomain, origin: storefrontOrigin(), path: url.pathname, page_type: template, locale: { iso_code: 'en', primary: true }, design_mode: false, visual_preview_mode: false },
      all_products: products.map(productLiquid), ...extra,
    };
    const head = await renderEmbeds('head', ctx);
    const bodyEnd = await renderEmbeds('body', ctx);
    const content = await liquid.parseAndRender(TEMPLATES[template], ctx);
    const html = await liquid.parseAndRender(LAYOUT, { ...ctx, content_for_header: head, content_for_layout: content, content_for_body_end: bodyEnd });
    send(res, status, html);
  }

  // ------------------------------------------------------------ checkout -> order, pixel, webhook
  async function checkout(req, res) {
    const cart = cartFor(req, res, false);
    if (!cart || !cart.items.length) return redirect(res, '/cart');
    const { order } = await completeCheckout(cart, {
      cookies: parseCookies(req.headers.cookie), userAgent: req.headers['user-agent'] || null,
      acceptLanguage: req.headers['accept-language'] || null, ip: req.socket.remoteAddress || null,
    });
    send(res, 200, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Thank you – ${escapeHtml(o.shopName)}</title></head>
<body class="thank-you"><h1 id="thank-you">Thank you for your purchase!</h1>
<p id="order-name">Order ${escapeHtml(order.name)}</p><p id="order-total">${escapeHtml(order.total_price)} ${escapeHtml(order.currency)}</p>
<a href="/" id="continue-shopping">Continue shopping</a></body></html>`,
    { 'Set-Cookie': 'cart=; Path=/; Max-Age=0; SameSite=Lax' });
  }

  /** Turns a cart into an order, runs the web pixels on checkout_completed and delivers orders/create. */
  async function completeCheckout(cart, client) {
    const order = createOrder(cart, client);
    state.orders.push(order);
    carts.delete(cart.token);
    const thankYouUrl = `${storefrontOrigin()}/checkouts/cn/${order.checkout_token}/thank-you`;
    const record = { order, pixelErrors: [], webhookStatuses: [], pixelEvents: [] };
    state.lastCheckout = record;
    const runPixel = async () => {
      const event = checkoutCompletedEvent(order, cart, thankYouUrl, client);
      record.pixelEvents.push(event);
      const r = await runPixels([event], { cookies: client.cookies || {}, userAgent: client.userAgent, url: thankYouUrl, referrer: `${storefrontOrigin()}/cart` });
      record.pixelErrors.push(...r.errors);
    };
    const runWebhook = async () => {
      if (o.webhookUrl) record.webhookStatuses = await deliver('orders/create', order, o.checkoutWebhook);
    };
    if (o.checkoutOrder === 'webhook-first') { await runWebhook(); await runPixel(); }
    else if (o.checkoutOrder === 'concurrent') await Promise.all([runPixel(), runWebhook()]);
    else { await runPixel(); await runWebhook(); }
    return record;
  }

  function createOrder(cart, client) {
    const n = state.orders.length;
    const id = 6000000000000 + n * 1000 + crypto.randomInt(999);
    const number = 1001 + n;
    const now = new Date().toISOString();
    const set = (amount) => ({ shop_money: { amount, currency_code: o.currency }, presentment_money: { amount, currency_code: o.currency } });
    const lineItems = cart.items.map((it, idx) => {
      const { product: p, variant: v } = variantIndex.get(String(it.variantId));
      const lid = 15000000000000 + n * 100 + idx;
      return {
        id: lid, admin_graphql_api_id: `gid://shopify/LineItem/${lid}`, attributed_staffs: [], current_quantity: it.quantity,
        fulfillable_quantity: it.quantity, fulfillment_service: 'manual', fulfillment_status: null, gift_card: false, grams: v.grams || 0,
        name: v.title === 'Default Title' ? p.title : `${p.title} - ${v.title}`, price: money(v.price), price_set: set(money(v.price)),
        product_exists: true, product_id: p.id, properties: Object.entries(it.properties || {}).map(([name, value]) => ({ name, value: String(value) })),
        quantity: it.quantity, requires_shipping: true, sku: v.sku || null, taxable: true, title: p.title, total_discount: '0.00',
        total_discount_set: set('0.00'), variant_id: v.id, variant_inventory_management: null, variant_title: v.title === 'Default Title' ? null : v.title,
        vendor: p.vendor || null, tax_lines: [], duties: [], discount_allocations: [],
      };
    });
    const subtotal = cart.items.reduce((s, it) => s + variantIndex.get(String(it.variantId)).variant.price * it.quantity, 0);
    const total = money(subtotal);
    const token = randomHex(16);
    return {
      id, admin_graphql_api_id: `gid://shopify/Order/${id}`, app_id: 580111, browser_ip: client.ip || null,
      buyer_accepts_marketing: false, cancel_reason: null, cancelled_at: null, cart_token: cart.token, checkout_id: 30000000000000 + n,
      checkout_token: randomHex(16), client_details: { accept_language: client.acceptLanguage || null, browser_height: null, browser_ip: client.ip || null, browser_width: null, session_hash: null, user_agent: client.userAgent || null },
      closed_at: null, company: null, confirmation_number: randomHex(5).toUpperCase().slice(0, 9), confirmed: true, contact_email: null,
      created_at: now, currency: o.currency, current_subtotal_price: total, current_subtotal_price_set: set(total),
      current_total_additional_fees_set: null, current_total_discounts: '0.00', current_total_discounts_set: set('0.00'),
      current_total_duties_set: null, current_total_price: total, current_total_price_set: set(total), current_total_tax: '0.00',
      current_total_tax_set: set('0.00'), customer_locale: 'en', device_id: null, discount_codes: [], duties_included: false,
      email: null, estimated_taxes: false, financial_status: 'paid', fulfillment_status: null, landing_site: null, landing_site_ref: null,
      location_id: null, merchant_of_record_app_id: null, name: `#${number}`, note: cart.note,
      note_attributes: Object.entries(cart.attributes).map(([name, value]) => ({ name, value })),
      number: number - 1000, order_number: number, order_status_url: `${storefrontOrigin()}/${o.shopId}/orders/${token}/authenticate?key=${randomHex(16)}`,
      original_total_additional_fees_set: null, original_total_duties_set: null, payment_gateway_names: ['bogus'], phone: null,
      po_number: null, presentment_currency: o.currency, processed_at: now, reference: null, referring_site: null, source_identifier: null,
      source_name: 'web', source_url: null, subtotal_price: total, subtotal_price_set: set(total), tags: '', tax_exempt: false, tax_lines: [],
      taxes_included: false, test: true, token, total_cash_rounding_payment_adjustment_set: set('0.00'), total_cash_rounding_refund_adjustment_set: set('0.00'),
      total_discounts: '0.00', total_discounts_set: set('0.00'), total_line_items_price: total, total_line_items_price_set: set(total),
      total_outstanding: '0.00', total_price: total, total_price_set: set(total), total_shipping_price_set: set('0.00'),
      total_tax: '0.00', total_tax_set: set('0.00'), total_tip_received: '0.00', total_weight: lineItems.reduce((s, l) => s + l.grams * l.quantity, 0),
      updated_at: now, user_id: null, billing_address: null, customer: o.customer ? { id: o.customer.id, email: o.customer.email || null, admin_graphql_api_id: `gid://shopify/Customer/${o.customer.id}` } : null,
      discount_applications: [], fulfillments: [], line_items: lineItems, payment_terms: null, refunds: [], shipping_address: null, shipping_lines: [],
    };
  }

  function pixelOrderId(order) {
    switch (o.pixelOrderIdFormat) {
      case 'numeric': return String(order.id);
      case 'order-gid': return order.admin_graphql_api_id;
      default: return `gid://shopify/OrderIdentity/${order.id}`;
    }
  }

  function browserContext({ url, referrer, userAgent }) {
    const u = new URL(url);
    const loc = { hash: u.hash, host: u.host, hostname: u.hostname, href: u.href, origin: u.origin, pathname: u.pathname, port: u.port, protocol: u.protocol, search: u.search };
    return {
      document: { characterSet: 'UTF-8', location: loc, referrer: referrer || '', title: 'Thank you' },
      navigator: { cookieEnabled: true, language: 'en', languages: ['en'], userAgent: userAgent || '' },
      window: { innerHeight: 800, innerWidth: 1280, location: loc, origin: u.origin, outerHeight: 800, outerWidth: 1280, pageXOffset: 0, pageYOffset: 0, screen: { height: 800, width: 1280 }, screenX: 0, screenY: 0, scrollX: 0, scrollY: 0 },
    };
  }

  function checkoutCompletedEvent(order, cart, url, client) {
    const m = (amount) => ({ amount: Number(amount), currencyCode: o.currency });
    const lineItems = order.line_items.map((l) => {
      const { product: p, variant: v } = variantIndex.get(String(l.variant_id));
      return {
        id: String(l.id), quantity: l.quantity, title: l.title, finalLinePrice: m(money(v.price * l.quantity)), discountAllocations: [],
        properties: l.properties.map((x) => ({ key: x.name, value: x.value })), sellingPlanAllocation: null,
        variant: { id: String(v.id), image: null, price: m(money(v.price)), sku: v.sku || null, title: v.title, untranslatedTitle: v.title,
          product: { id: String(p.id), title: p.title, untranslatedTitle: p.title, type: p.product_type || null, url: `/products/${p.handle}`, vendor: p.vendor || '' } },
      };
    });
    return {
      id: `sh-${crypto.randomUUID()}`, name: 'checkout_completed', type: 'standard', seq: 1, clientId: cart.clientId,
      timestamp: new Date().toISOString(), context: browserContext({ url, referrer: `${storefrontOrigin()}/cart`, userAgent: client.userAgent }),
      data: {
        checkout: {
          attributes: Object.entries(cart.attributes).map(([key, value]) => ({ key, value })), billingAddress: null,
          buyerAcceptsEmailMarketing: false, buyerAcceptsSmsMarketing: false, currencyCode: o.currency, delivery: null,
          discountApplications: [], discountsAmount: m('0.00'), email: null, lineItems, localization: { country: { isoCode: 'FR' }, language: { isoCode: 'en' }, market: { handle: 'primary', id: 'gid://shopify/Market/1' } },
          order: { id: pixelOrderId(order), customer: o.customer ? { id: String(o.customer.id), isFirstOrder: true } : null },
          phone: null, shippingAddress: null, shippingLine: null, smsMarketingPhone: null, subtotalPrice: m(order.subtotal_price),
          token: order.checkout_token, totalPrice: m(order.total_price), totalTax: m('0.00'), transactions: [{ amount: m(order.total_price), gateway: 'bogus', paymentMethod: { name: 'Bogus', type: 'creditCard' } }],
        },
      },
    };
  }

  // ------------------------------------------------------------ web pixel sandbox
  async function bundlePixel(entry) {
    const stat = fs.statSync(entry);
    const cached = pixelBundles.get(entry);
    if (cached && cached.mtime === stat.mtimeMs) return cached.code;
    const result = await esbuild.build({
      entryPoints: [entry], bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022', logLevel: 'silent',
      plugins: [{
        name: 'web-pixels-extension',
        setup(b) {
          b.onResolve({ filter: /^@shopify\/web-pixels-extension(\/.*)?$/ }, (a) => ({ path: a.path, namespace: 'standin' }));
          b.onLoad({ filter: /.*/, namespace: 'standin' }, () => ({ contents: 'export const register = (fn) => globalThis.__standinRegister(fn); export const extend = (_n, fn) => globalThis.__standinRegister(fn);', loader: 'js' }));
        },
      }],
    });
    const code = result.outputFiles[0].text;
    pixelBundles.set(entry, { mtime: stat.mtimeMs, code });
    return code;
  }

  function consentAllows(ext) {
    const req = ext.toml?.customer_privacy || {};
    const c = o.consent || {};
    if (req.analytics === true && !c.analytics) return false;
    if (req.marketing === true && !c.marketing) return false;
    if (req.preferences === true && !c.preferences) return false;
    if (req.sale_of_data === 'enabled' && !c.sale_of_data) return false;
    return true;
  }

  async function runPixels(events, { cookies = {}, userAgent = '', url = storefrontOrigin() + '/', referrer = '' } = {}) {
    const errors = [];
    const log = (entry) => state.pixelLog.push({ at: new Date().toISOString(), ...entry });
    const settingsRec = state.webPixels[0];
    for (const ext of pixelExtensions()) {
      if (!settingsRec) { log({ kind: 'skipped', extension: ext.name, reason: 'no web pixel created with webPixelCreate' }); continue; }
      if (!consentAllows(ext)) { log({ kind: 'skipped', extension: ext.name, reason: 'visitor consent does not cover customer_privacy in shopify.extension.toml' }); continue; }
      const pending = new Set();
      const track = (promise, what) => {
        const p = Promise.resolve(promise).catch((e) => { errors.push({ extension: ext.name, where: what, error: String(e?.stack || e) }); log({ kind: 'error', extension: ext.name, where: what, error: String(e?.message || e) }); });
        pending.add(p); p.finally(() => pending.delete(p));
        return promise;
      };
      const cookieJar = { ...cookies };
      const storage = () => { const m = new Map(); return {
        getItem: async (k) => (m.has(k) ? m.get(k) : null), setItem: async (k, v) => { m.set(k, String(v)); },
        removeItem: async (k) => { m.delete(k); }, key: async (i) => [...m.keys()][i] ?? null, length: async () => m.size, clear: async () => m.clear() }; };
      const wrapAsync = (obj, label) => Object.fromEntries(Object.entries(obj).map(([k, fn]) => [k, (...a) => track(fn(...a), `${label}.${k}`)]));
      const subscribers = [];
      const localTimers = new Set();
      const sandboxFetch = (input, init) => {
        const target = typeof input === 'string' ? input : input?.url;
        const p = fetch(input, init).then((r) => { log({ kind: 'fetch', extension: ext.name, url: String(target), method: init?.method || 'GET', status: r.status }); return r; },
          (e) => { log({ kind: 'fetch', extension: ext.name, url: String(target), method: init?.method || 'GET', error: String(e?.message || e) }); throw e; });
        track(p.catch(() => {}), 'fetch');
        return p;
      };
      const api = {
        analytics: {
          subscribe: (name, cb) => { subscribers.push({ name, cb }); return () => { const i = subscribers.findIndex((s) => s.cb === cb); if (i >= 0) subscribers.splice(i, 1); }; },
          publish: (name, data) => { log({ kind: 'publish', extension: ext.name, name, data }); return true; },
        },
        browser: {
          cookie: wrapAsync({
            get: async (name) => (name === undefined ? Object.entries(cookieJar).map(([k, v]) => `${k}=${v}`).join('; ') : cookieJar[name] ?? ''),
            set: async (nameOrCookie, value) => {
              if (value === undefined) { const [kv] = String(nameOrCookie).split(';'); const i = kv.indexOf('='); cookieJar[kv.slice(0, i).trim()] = kv.slice(i + 1); }
              else cookieJar[nameOrCookie] = String(value);
              log({ kind: 'cookie-set', extension: ext.name, value: value === undefined ? nameOrCookie : `${nameOrCookie}=${value}` });
            },
          }, 'browser.cookie'),
          localStorage: wrapAsync(storage(), 'browser.localStorage'),
          sessionStorage: wrapAsync(storage(), 'browser.sessionStorage'),
          sendBeacon: (u, body) => track(sandboxFetch(u, { method: 'POST', body, keepalive: true }).then((r) => r.ok, () => false), 'browser.sendBeacon'),
        },
        customerPrivacy: { subscribe: async () => undefined },
        init: {
          context: browserContext({ url, referrer, userAgent }),
          customerPrivacy: { analyticsProcessingAllowed: !!o.consent?.analytics, marketingAllowed: !!o.consent?.marketing, preferencesProcessingAllowed: !!o.consent?.preferences, saleOfDataAllowed: !!o.consent?.sale_of_data },
          data: {
            cart: null, customer: o.customer ? { id: String(o.customer.id), email: o.customer.email || null, firstName: o.customer.first_name || null, lastName: o.customer.last_name || null, phone: null, ordersCount: 0 } : null,
            purchasingCompany: null,
            shop: { countryCode: 'FR', myShopifyDomain: shopDomain, name: o.shopName, paymentSettings: { currencyCode: o.currency }, storefrontUrl: `https://${o.primaryDomain}` },
          },
        },
        settings: JSON.parse(settingsRec.settingsJson),
      };
      const sandbox = {
        console: Object.fromEntries(['log', 'info', 'warn', 'error', 'debug'].map((lvl) => [lvl, (...a) => log({ kind: 'console', level: lvl, extension: ext.name, args: a.map((x) => (typeof x === 'string' ? x : (() => { try { return JSON.stringify(x); } catch { return String(x); } })())) })])),
        fetch: sandboxFetch, Headers, Request, Response, URL, URLSearchParams, TextEncoder, TextDecoder, AbortController, Blob, FormData,
        atob, btoa, structuredClone, crypto: globalThis.crypto, queueMicrotask,
        setTimeout: (fn, ms, ...a) => {
          let done; const p = new Promise((r) => { done = r; });
          const t = setTimeout(() => { localTimers.delete(t); timers.delete(t); try { fn(...a); } catch (e) { errors.push({ extension: ext.name, where: 'setTimeout', error: String(e?.stack || e) }); } done(); }, Math.min(Number(ms) || 0, PIXEL_WAIT_MS));
          localTimers.add(t); timers.add(t); track(p, 'setTimeout'); return t;
        },
        clearTimeout: (t) => { clearTimeout(t); localTimers.delete(t); timers.delete(t); },
        __standinRegister: (fn) => { try { track(fn(api), 'register'); } catch (e) { errors.push({ extension: ext.name, where: 'register', error: String(e?.stack || e) }); log({ kind: 'error', extension: ext.name, where: 'register', error: String(e?.message || e) }); } },
      };
      sandbox.self = sandbox;
      try {
        const code = await bundlePixel(ext.entry);
        vm.runInNewContext(code, sandbox, { filename: ext.entry, timeout: 1000 });
      } catch (e) {
        errors.push({ extension: ext.name, where: 'load', error: String(e?.stack || e) });
        log({ kind: 'error', extension: ext.name, where: 'load', error: String(e?.message || e) });
        continue;
      }
      log({ kind: 'loaded', extension: ext.name, subscriptions: subscribers.map((s) => s.name) });
      for (const ev of events) {
        for (const s of [...subscribers]) {
          const match = s.name === ev.name || s.name === 'all_events' || (s.name === 'all_standard_events' && ev.type === 'standard') || (s.name === 'all_custom_events' && ev.type === 'custom');
          if (!match) continue;
          try { track(s.cb(structuredClone(ev)), `subscriber:${s.name}`); } catch (e) { errors.push({ extension: ext.name, where: `subscriber:${s.name}`, error: String(e?.stack || e) }); log({ kind: 'error', extension: ext.name, where: `subscriber:${s.name}`, error: String(e?.message || e) }); }
          log({ kind: 'event', extension: ext.name, name: ev.name });
        }
      }
      const deadline = Date.now() + PIXEL_WAIT_MS;
      while (pending.size && Date.now() < deadline) {
        let t;
        await Promise.race([Promise.allSettled([...pending]), new Promise((r) => { t = setTimeout(r, Math.max(1, deadline - Date.now())); timers.add(t); })]);
        clearTimeout(t); timers.delete(t);
        await new Promise((r) => setImmediate(r));
      }
      if (pending.size) { errors.push({ extension: ext.name, where: 'wait', error: `${pending.size} promise(s) still pending after ${PIXEL_WAIT_MS} ms` }); log({ kind: 'timeout', extension: ext.name, pending: pending.size }); }
      for (const t of localTimers) { clearTimeout(t); timers.delete(t); }
    }
    return { errors };
  }

  // ------------------------------------------------------------ webhooks
  async function sendWebhook(topic, payload, { webhookId = crypto.randomUUID(), eventId = crypto.randomUUID(), triggeredAt = new Date().toISOString(), hmac, shopDomain: sd = shopDomain, apiVersion = o.apiVersion, timeoutMs = WEBHOOK_TIMEOUT_MS } = {}) {
    if (!o.webhookUrl) throw new Error('sendWebhook: webhookUrl not configured');
    const body = JSON.stringify(payload);
    const headers = {
      'Content-Type': 'application/json', 'User-Agent': 'Shopify-Captain-Hook', 'X-Shopify-Topic': topic,
      'X-Shopify-Hmac-Sha256': hmac ?? hmacB64(o.apiSecret, body), 'X-Shopify-Shop-Domain': sd, 'X-Shopify-API-Version': apiVersion,
      'X-Shopify-Webhook-Id': webhookId, 'X-Shopify-Event-Id': eventId, 'X-Shopify-Triggered-At': triggeredAt,
    };
    const rec = { topic, webhookId, eventId, status: 0, body: null, error: null };
    try {
      const r = await fetch(o.webhookUrl, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
      rec.status = r.status;
      rec.body = await r.text();
    } catch (e) { rec.error = String(e?.message || e); }
    state.webhooks.push(rec);
    return { status: rec.status, body: rec.body, webhookId, eventId, error: rec.error };
  }

  async function deliver(topic, payload, { attempts = 5, backoffMs = 200, ...rest } = {}) {
    const ids = { webhookId: crypto.randomUUID(), eventId: crypto.randomUUID(), triggeredAt: new Date().toISOString(), ...rest };
    const statuses = [];
    for (let i = 0; i < attempts; i++) {
      const r = await sendWebhook(topic, payload, ids);
      statuses.push(r.status);
      if (r.status >= 200 && r.status < 300) break;
      if (i < attempts - 1) await new Promise((res) => { const t = setTimeout(() => { timers.delete(t); res(); }, backoffMs * 2 ** i); timers.add(t); });
    }
    return statuses;
  }

  function shopPayload() {
    const now = new Date().toISOString();
    return {
      id: o.shopId, name: o.shopName, email: o.shopEmail || `owner@${shopDomain}`, domain: o.primaryDomain, province: null, country: 'FR',
      address1: '1 Test Street', zip: '75001', city: 'Paris', source: null, phone: null, latitude: null, longitude: null, primary_locale: 'en',
      address2: null, created_at: now, updated_at: now, country_code: 'FR', country_name: 'France', currency: o.currency,
      customer_email: o.shopEmail || `owner@${shopDomain}`, timezone: '(GMT+01:00) Europe/Paris', iana_timezone: 'Europe/Paris', shop_owner: 'Test Merchant',
      money_format: '€{{amount_with_comma_separator}}', money_with_currency_format: `€{{amount_with_comma_separator}} ${o.currency}`, weight_unit: 'kg',
      province_code: null, taxes_included: true, auto_configure_tax_inclusivity: null, tax_shipping: null, county_taxes: true,
      plan_display_name: 'Development', plan_name: 'partner_test', has_discounts: false, has_gift_cards: false, myshopify_domain: shopDomain,
      google_apps_domain: null, google_apps_login_enabled: null, money_in_emails_format: '€{{amount_with_comma_separator}}',
      money_with_currency_in_emails_format: `€{{amount_with_comma_separator}} ${o.currency}`, eligible_for_payments: true,
      requires_extra_payments_agreement: false, password_enabled: false, has_storefront: true, finances: true, primary_location_id: 70000000001,
      checkout_api_supported: false, multi_location_enabled: true, setup_required: false, pre_launch_enabled: false,
      enabled_presentment_currencies: [o.currency], marketing_sms_consent_enabled_at_checkout: false, transactional_sms_disabled: false,
    };
  }

  // ------------------------------------------------------------ public handle
  const api = {
    get port() { return port; },
    get origin() { return `http://127.0.0.1:${port}`; },
    shop: shopDomain,
    storefrontUrl: (p = '/') => `${storefrontOrigin()}${p}`,
    get orders() { return state.orders; },
    get accessTokens() { return state.accessTokens.map(({ token, shop, scope, via, online, revoked }) => ({ token, shop, scope, via, online, revoked })); },
    get metafields() { return state.metafields; },
    get webPixels() { return state.webPixels.map((p) => ({ id: p.id, settings: p.settings })); },
    get adminRequests() { return state.adminRequests; },
    get webhooks() { return state.webhooks; },
    get pixelLog() { return state.pixelLog; },
    get serverErrors() { return state.serverErrors; },
    get lastCheckout() { return state.lastCheckout; },
    get appInstallationId() { return installationGid(); },
    get carts() { return carts; },

    installUrl({ shop = shopDomain, hmac, timestamp = String(nowSec()), host = hostParam(), extra = {} } = {}) {
      if (!o.appUrl) throw new Error('installUrl: appUrl not configured');
      const params = { host, shop, timestamp, ...extra };
      const sig = hmac ?? hmacHex(o.apiSecret, queryHmacMessage(params));
      const u = new URL(o.appInstallPath, o.appUrl);
      for (const [k, v] of Object.entries({ ...params, hmac: sig })) u.searchParams.set(k, v);
      return u.toString();
    },

    sessionToken({ shop = shopDomain, exp, nbf, iat, aud = o.apiKey, secret = o.apiSecret, sub = o.userId, sid = randomHex(32), jti = crypto.randomUUID(), iss, dest } = {}) {
      const t = nowSec();
      return signJwtHS256({ iss: iss ?? `https://${shop}/admin`, dest: dest ?? `https://${shop}`, aud, sub, exp: exp ?? t + 60, nbf: nbf ?? t, iat: iat ?? t, jti, sid }, secret);
    },

    /** Follows an authorize URL the app built (any scheme/host/port) against this server, as the merchant's browser would. */
    authorize(authorizeUrl) {
      const u = new URL(authorizeUrl);
      return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: u.pathname + u.search, headers: { Host: `${u.hostname}:${port}` } }, (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, location: res.headers.location || null, body: Buffer.concat(chunks).toString('utf8') }));
        });
        req.on('error', reject);
        req.end();
      });
    },

    sendWebhook,
    deliver,
    runPixels,

    /** Same path as a browser checkout, without a browser: builds a cart, then completes it. */
    async placeOrder({ items = [{ id: products[0].variants[0].id, quantity: 1 }], attributes = {}, note, cookies = {}, userAgent = 'standin' } = {}) {
      const cart = newCart();
      for (const it of items) { const r = addToCart(cart, it); if (r.error) throw new Error(r.error.description); }
      applyCartUpdate(cart, { attributes, ...(note !== undefined ? { note } : {}) });
      return completeCheckout(cart, { cookies, userAgent, ip: '127.0.0.1' });
    },

    async uninstall() {
      for (const t of state.accessTokens) if (t.shop === shopDomain) t.revoked = true;
      state.webPixels.length = 0;
      state.metafields = state.metafields.filter((m) => m.ownerId !== installationGid());
      installed = false;
      return sendWebhook('app/uninstalled', shopPayload());
    },
    customersDataRequest({ customerId, email = null, phone = null, orderIds = [], dataRequestId = 9000 + seq() } = {}) {
      return sendWebhook('customers/data_request', { shop_id: o.shopId, shop_domain: shopDomain, orders_requested: orderIds, customer: { id: customerId, email, phone }, data_request: { id: dataRequestId } });
    },
    customersRedact({ customerId, email = null, phone = null, orderIds = [] } = {}) {
      return sendWebhook('customers/redact', { shop_id: o.shopId, shop_domain: shopDomain, customer: { id: customerId, email, phone }, orders_to_redact: orderIds });
    },
    shopRedact() {
      return sendWebhook('shop/redact', { shop_id: o.shopId, shop_domain: shopDomain });
    },
    shopPayload,

    setEnabledEmbeds(list) { o.enabledEmbeds = list; },
    setConsent(consent) { o.consent = { ...o.consent, ...consent }; },
    /** Changes run-time options: pixelOrderIdFormat, checkoutOrder, checkoutWebhook, consent, enabledEmbeds, customer, scopes. */
    configure(partial) {
      for (const k of ['pixelOrderIdFormat', 'checkoutOrder', 'checkoutWebhook', 'consent', 'enabledEmbeds', 'customer', 'scopes']) if (k in partial) o[k] = partial[k];
    },

    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await new Promise((r) => { server.close(() => r()); for (const s of sockets) s.destroy(); });
    },
  };
  return api;
}
