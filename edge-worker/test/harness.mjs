// Test harness: runs the built Worker (edge-worker/build, from `cargo xtask edge-build`)
// under workerd through `wrangler dev --local`, with a config filled in from
// wrangler.template.toml (shared with the Rust harness, tests/src/edge.rs; no [build]
// table, so nothing rebuilds), fresh local KV/Queue state in a temp dir, and
// test-only secrets. Also: a fake control plane that verifies ingest signatures, and a
// snapshot signer that does what the control plane does (HMAC-SHA256 over the payload).
//
// Every wait is bounded: readiness, polling and requests all have timeouts.
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync, openSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');
const shim = join(root, 'edge-worker', 'build', 'worker', 'shim.mjs');
const wrangler = join(root, 'node_modules', '.bin', 'wrangler');
/** The `wrangler.toml` template both test harnesses fill in (its header documents it). */
const WRANGLER_TEMPLATE = join(here, 'wrangler.template.toml');

export const SNAPSHOT_SECRET = 'test-snapshot-secret-not-a-real-one';
export const INGEST_SECRET = 'test-ingest-secret-not-a-real-one';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every `every` ms until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(fn, { timeoutMs = 15000, every = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(every);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Limits far above anything a test sends, so only the rate-limit tests meet them: the
 * other tests (and the bench) send many requests from one address.
 */
export const GENEROUS_RATE_LIMITS = { assign: 1000000, events: 1000000 };

/**
 * Fills in the wrangler.template.toml text (see its header): lines starting with `##`
 * are dropped, `{{NAME}}` becomes `values.NAME`, and the lines between `{{#NAME}}` and
 * `{{/NAME}}` are kept only when `values.NAME` is neither `null` nor `undefined`. A
 * placeholder without a value is an error. tests/src/edge.rs implements the same rules.
 */
function renderTemplate(text, values, source = WRANGLER_TEMPLATE) {
  const given = (name) => values[name] !== null && values[name] !== undefined;
  const out = [];
  let section = null; // the open `{{#NAME}}`: { name, keep }
  for (const line of text.split('\n')) {
    if (line.startsWith('##')) continue;
    const open = /^\{\{#([A-Z0-9_]+)\}\}\s*$/.exec(line);
    const close = /^\{\{\/([A-Z0-9_]+)\}\}\s*$/.exec(line);
    if (open) {
      if (section) throw new Error(`${source}: {{#${open[1]}}} inside {{#${section.name}}}`);
      section = { name: open[1], keep: given(open[1]) };
    } else if (close) {
      if (section?.name !== close[1]) throw new Error(`${source}: {{/${close[1]}}} closes no section`);
      section = null;
    } else if (!section || section.keep) {
      out.push(line.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, name) => {
        if (!given(name)) throw new Error(`${source}: no value for {{${name}}}`);
        return String(values[name]);
      }));
    }
  }
  if (section) throw new Error(`${source}: {{#${section.name}}} is not closed`);
  return out.join('\n');
}

/**
 * Starts the Worker. `vars` become [vars] (the tests' secrets too: a Worker reads both
 * the same way). Pass `null` as a value to leave a variable out. `rateLimits`: requests
 * per 10 s per site and address for `assign` and `events` (`null` leaves a binding out).
 */
export async function startWorker(options = {}) {
  // The free port is chosen before wrangler binds it: another process on the machine may
  // take it in between ("Address already in use"). A new port then, at most three times.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startWorkerOnce(options);
    } catch (e) {
      if (attempt >= 3 || !/Address already in use/.test(String(e?.message))) throw e;
    }
  }
}

async function startWorkerOnce({
  vars = {}, maxRetries = 3, stateDir = null, main = shim, rateLimits = GENEROUS_RATE_LIMITS,
} = {}) {
  if (!existsSync(main)) throw new Error(`no build at ${main}: run \`cargo xtask edge-build\``);
  const dir = mkdtempSync(join(tmpdir(), 'samplit-edge-'));
  const ownState = stateDir === null;
  const state = ownState ? mkdtempSync(join(tmpdir(), 'samplit-edge-state-')) : stateDir;
  const port = await freePort();
  const allVars = {
    SAMPLIT_SNAPSHOT_SECRET: SNAPSHOT_SECRET,
    SAMPLIT_INGEST_SECRET: INGEST_SECRET,
    SAMPLIT_CONTROL_PLANE_URL: 'http://127.0.0.1:9',
    ...vars,
  };
  const varLines = Object.entries(allVars)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k} = ${JSON.stringify(String(v))}`)
    .join('\n');
  const limits = { ...GENEROUS_RATE_LIMITS, ...rateLimits };
  const limit = (n) => (n === null || n === undefined ? null : Number(n));
  const config = renderTemplate(readFileSync(WRANGLER_TEMPLATE, 'utf8'), {
    WORKER_NAME: JSON.stringify('samplit-edge-test'),
    MAIN: JSON.stringify(main),
    VARS: varLines,
    KV_NAMESPACE_ID: JSON.stringify('test-snapshots'),
    MAX_RETRIES: maxRetries,
    RETRY_DELAY: 1,
    BATCH_TIMEOUT: 1,
    RATE_ASSIGN: limit(limits.assign),
    RATE_EVENTS: limit(limits.events),
  });
  const configPath = join(dir, 'wrangler.toml');
  writeFileSync(configPath, config);
  const logPath = join(dir, 'wrangler.log');
  const log = openSync(logPath, 'a');
  const child = spawn(
    wrangler,
    ['dev', '--local', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state,
      '--config', configPath, '--show-interactive-dev-session=false', '--log-level', 'info'],
    {
      cwd: dir,
      detached: true,
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: 'false',
        WRANGLER_HIDE_BANNER: 'true',
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
        XDG_CONFIG_HOME: join(dir, 'xdg-config'),
        XDG_CACHE_HOME: join(dir, 'xdg-cache'),
        CI: 'true',
      },
    },
  );
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const base = `http://127.0.0.1:${port}`;
  const worker = {
    base,
    dir,
    stateDir: state,
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
    /** Stops wrangler; removes its temp dirs (the state dir too, unless `keepState`). */
    async stop({ keepState = false } = {}) {
      if (exited === null) {
        try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
        await waitFor(() => exited !== null, { timeoutMs: 5000, what: 'wrangler to exit' })
          .catch(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } });
      }
      rmSync(dir, { recursive: true, force: true });
      if (ownState && !keepState) removeDir(state);
    },
    fetch: (path, init = {}) => fetch(base + path, { signal: AbortSignal.timeout(10000), ...init }),
  };
  try {
    await waitFor(async () => {
      if (exited !== null) throw new Error(`wrangler exited early: ${JSON.stringify(exited)}\n${worker.log()}`);
      try {
        const r = await fetch(`${base}/v1/healthz`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        return r.status === 200;
      } catch { return false; }
    }, { timeoutMs: 60000, every: 200, what: `wrangler dev on ${base}` });
  } catch (e) {
    const log = worker.log();
    await worker.stop();
    throw new Error(`${e.message}\n--- wrangler log ---\n${log}`);
  }
  return worker;
}

/** Removes a directory tree (a kept state dir). */
export function removeDir(path) {
  rmSync(path, { recursive: true, force: true });
}

/** Signs a snapshot object exactly as the control plane does: payload = JSON text. */
export function signSnapshot(snapshot, secret = SNAPSHOT_SECRET) {
  const payload = JSON.stringify(snapshot);
  const signature = createHmac('sha256', secret).update(payload).digest('hex');
  return { payload, signature };
}

/** PUTs a signed snapshot to the Worker's internal route. */
export function pushSnapshot(worker, siteKey, signed) {
  return worker.fetch(`/v1/internal/snapshots/${encodeURIComponent(siteKey)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: typeof signed === 'string' ? signed : JSON.stringify(signed),
  });
}

/** The key a document kind is signed with: HMAC-SHA256(secret, label), as the engine's
 * `routing::derive_key`. */
export function derivedKey(label, secret = SNAPSHOT_SECRET) {
  return createHmac('sha256', secret).update(label).digest();
}

/** The site's server secret as the engine's `server_call::server_secret` derives it:
 * `"ss_" + base64url(HMAC(derive_key(secret, "samplit/server-secret/v1"), site_key NUL salt))`. */
export function serverSecret(siteKey, salt, secret = SNAPSHOT_SECRET) {
  const mac = createHmac('sha256', derivedKey('samplit/server-secret/v1', secret))
    .update(Buffer.concat([Buffer.from(siteKey), Buffer.from([0]), Buffer.from(salt)]))
    .digest('base64url');
  return `ss_${mac}`;
}

/** The signature headers of a signed server call (docs/api.md, "Signed server calls"). */
export function signatureHeaders(serverSecretText, method, pathAndQuery, body = '', ts = Math.floor(Date.now() / 1000)) {
  const mac = createHmac('sha256', serverSecretText)
    .update(`${ts}\n${method}\n${pathAndQuery}\n`)
    .update(body)
    .digest('hex');
  return { 'x-samplit-timestamp': String(ts), 'x-samplit-signature': `v1=${mac}` };
}

/** A public test salt (32 hex digits). */
export const TEST_SALT = '0123456789abcdef0123456789abcdef';

/** Signs a host route (`site_key: null` is a tombstone) as the control plane does. */
export function signRoute({ host, siteKey, version, generatedAtMs = Date.now() }, secret = SNAPSHOT_SECRET) {
  const payload = JSON.stringify({ schema: 1, host, site_key: siteKey, version, generated_at_ms: generatedAtMs });
  const signature = createHmac('sha256', derivedKey('samplit/route/v1', secret)).update(payload).digest('hex');
  return { payload, signature };
}

/** Signs a site tombstone as the control plane does. */
export function signTombstone({ siteKey, version, generatedAtMs = Date.now() }, secret = SNAPSHOT_SECRET) {
  const payload = JSON.stringify({ schema: 1, site_key: siteKey, version, generated_at_ms: generatedAtMs });
  const signature = createHmac('sha256', derivedKey('samplit/site-tombstone/v1', secret)).update(payload).digest('hex');
  return { payload, signature };
}

/** PUTs a signed route to the Worker's internal route. */
export function pushRoute(worker, host, signed) {
  return worker.fetch(`/v1/internal/routes/${encodeURIComponent(host)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: typeof signed === 'string' ? signed : JSON.stringify(signed),
  });
}

/** PUTs a signed site tombstone to the Worker's internal route. */
export function pushTombstone(worker, siteKey, signed) {
  return worker.fetch(`/v1/internal/tombstones/${encodeURIComponent(siteKey)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: typeof signed === 'string' ? signed : JSON.stringify(signed),
  });
}

/**
 * A fake control plane on 127.0.0.1: verifies each ingest request's timestamp and
 * HMAC like the real one, and answers with the status `respond()` returns (default 200).
 */
export async function startControlPlane({ secret = INGEST_SECRET, respond = () => 200 } = {}) {
  const received = []; // verified batches it answered 2xx to: { batch_id, items }
  const attempts = []; // every verified batch, whatever it answered: { status, batch, queue }
  const rejected = []; // requests whose signature or timestamp failed: { reason }
  let calls = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      calls += 1;
      const body = Buffer.concat(chunks).toString('utf8');
      const ts = req.headers['x-samplit-timestamp'];
      const sig = String(req.headers['x-samplit-signature'] || '');
      const expected = 'sha256=' + createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
      const fresh = Math.abs(Date.now() / 1000 - Number(ts)) <= 300;
      const valid = sig.length === expected.length && timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
      if (req.method !== 'POST' || req.url !== '/api/v1/ingest' || !fresh || !valid) {
        rejected.push({ reason: `method=${req.method} url=${req.url} fresh=${fresh} valid=${valid}` });
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"bad_signature"}}');
        return;
      }
      const status = respond(calls);
      const batch = JSON.parse(body);
      attempts.push({ status, batch, queue: req.headers['x-samplit-queue'] });
      if (status >= 200 && status < 300) received.push(batch);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accepted: batch.items.length, duplicates: 0, rejected: [] }));
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    received,
    attempts,
    rejected,
    calls: () => calls,
    items: () => received.flatMap((b) => b.items),
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** JSON body of a response (fails the test with the text when it is not JSON). */
export async function json(res) {
  const text = await res.text();
  try { return JSON.parse(text); } catch { throw new Error(`not JSON (${res.status}): ${text}`); }
}

/**
 * A schema-1 snapshot with one single-mode experiment: element `#headline`, arms
 * `control` (no change) and `treatment` (sets the text), split by `weights`.
 */
export function testSnapshot({
  siteKey = 'sk_test_1',
  version = 1,
  generatedAtMs = Date.now(),
  allowedOrigins = ['https://shop.example.com'],
  exclusions = [],
  weights = [0.5, 0.5],
  experimentId = '11111111-1111-4111-8111-111111111111',
  urlRules = [],
  goals = [],
  trust = { server_secret_salt: TEST_SALT },
} = {}) {
  return {
    schema: 1,
    site_key: siteKey,
    version,
    generated_at_ms: generatedAtMs,
    allowed_origins: allowedOrigins,
    exclusions,
    experiments: [{
      id: experimentId,
      seed: `seed-${experimentId}`,
      hash_version: 2,
      coverage: 1.0,
      url_rules: urlRules,
      exclusions: [],
      namespace: null,
      mode: 'single',
      elements: [{
        id: 'headline',
        selector: '#headline',
        variants: [
          { id: 'v-control', changes: [] },
          { id: 'v-treatment', changes: [{ selector: '#headline', action: { type: 'set_text', text: 'Try it free' } }] },
        ],
      }],
      units: [{
        id: 'unit-1',
        element_id: null,
        allocator: { kind: 'fixed_split', weights },
        arms: [
          { id: 'control', variants: [0], exposures: 0, conversions: 0, propensity: weights[0] },
          { id: 'treatment', variants: [1], exposures: 0, conversions: 0, propensity: weights[1] },
        ],
      }],
      goals,
    }],
    ...(trust ? { trust } : {}),
  };
}

/** POSTs to /v1/assign with a JSON body; `headers` are added. */
export function assign(worker, body, headers = {}) {
  return worker.fetch('/v1/assign', {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'user-agent': BROWSER_UA, ...headers },
    body: typeof body === 'string' || body instanceof ReadableStream ? body : JSON.stringify(body),
    ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
  });
}

export const BROWSER_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36';

/** The `name=value` of each Set-Cookie header, by name. */
export function setCookies(res) {
  const out = {};
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const i = pair.indexOf('=');
    out[pair.slice(0, i)] = { value: pair.slice(i + 1), line };
  }
  return out;
}

/**
 * The Worker's build (`cargo xtask edge-build`) under Miniflare, for what `wrangler dev`
 * cannot send: Cloudflare's `request.cf` and https request URLs. The bindings are the
 * Worker's: KV `SNAPSHOTS`, generous rate limits, the `EVENTS` queue producer and
 * `SAMPLIT_SNAPSHOT_SECRET`; `bindings` adds to them, `consumeQueue` also consumes the
 * queue (batches of 100, 1 s), as the deployed Worker does. Dispose of it with `dispose()`.
 */
export async function startMiniflare({ bindings = {}, consumeQueue = false } = {}) {
  // Loaded here, not at the top: only the Miniflare tests pay for it.
  const { Miniflare } = await import('miniflare');
  const build = join(root, 'edge-worker', 'build');
  return new Miniflare({
    scriptPath: join(build, 'index.js'),
    modules: true,
    modulesRoot: build,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2026-04-01',
    kvNamespaces: ['SNAPSHOTS'],
    ratelimits: {
      SAMPLIT_RATE_ASSIGN: { simple: { limit: GENEROUS_RATE_LIMITS.assign, period: 10 } },
      SAMPLIT_RATE_EVENTS: { simple: { limit: GENEROUS_RATE_LIMITS.events, period: 10 } },
    },
    queueProducers: { EVENTS: { queueName: 'samplit-events' } },
    ...(consumeQueue
      ? { queueConsumers: { 'samplit-events': { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 3 } } }
      : {}),
    bindings: { SAMPLIT_SNAPSHOT_SECRET: SNAPSHOT_SECRET, ...bindings },
    cf: false,
  });
}
