// A real, throw-away WordPress for the end-to-end test: a private MariaDB (its own data
// directory and unix socket, run as the current user), a copy of Debian's WordPress
// (/usr/share/wordpress, 6.1.x) with our own wp-config.php (Debian's reads
// /etc/wordpress/config-*.php), the plugin under test linked into wp-content/plugins,
// the test theme and the WooCommerce stand-in (fixtures/), installed non-interactively
// (fixtures/install.php) and served by `php -S` with a router that sends every path
// without a file to index.php. Also: a TLS front (https://wp.localhost, what Chromium and
// the edge's CORS see) and a tiny DNS responder (wp.localhost → 127.0.0.1) for the control
// plane's domain check.
//
// Every wait is bounded; every process started here is stopped by its `stop()`.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import {
  cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURES = join(here, 'fixtures');
export const PLUGIN_DIR = resolve(here, '..', '..', 'samplit');
const WORDPRESS = process.env.SAMPLIT_WORDPRESS_DIR ?? '/usr/share/wordpress';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(fn, { timeoutMs, every = 100, what }) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(every);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function tail(path, n = 4000) {
  return existsSync(path) ? readFileSync(path, 'utf8').slice(-n) : '(no log)';
}

/** Stops a child started with `detached: true` (its process group), bounded. */
async function stopChild(child, { signal = 'SIGTERM', timeoutMs = 10_000 } = {}) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((ok) => child.once('exit', ok));
  try { process.kill(-child.pid, signal); } catch { /* gone */ }
  const done = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (!done) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    await Promise.race([exited, sleep(2000)]);
  }
}

// ------------------------------------------------------------------------------ MariaDB

/**
 * A private MariaDB: mariadb-install-db into a temp data directory, mariadbd on a unix
 * socket only (no TCP), a database and a user for WordPress.
 * `{ socket, database, user, password, stop }`.
 */
export async function startMariaDB() {
  const dir = mkdtempSync(join(tmpdir(), 'samplit-wp-mariadb-'));
  const data = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const log = join(dir, 'mariadb.log');
  // mariadbd refuses root unless told to run as root; as any other user it runs as itself.
  const user = process.getuid?.() === 0 ? 'root' : (process.env.USER || spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim());
  const install = spawnSync('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, `--user=${user}`,
    '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve'],
  { encoding: 'utf8', timeout: 120_000 });
  if (install.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db: ${install.error ?? ''}${install.stdout}\n${install.stderr}`);
  }
  const fd = openSync(log, 'a');
  const child = spawn('mariadbd', ['--no-defaults', `--datadir=${data}`, `--socket=${socket}`, '--skip-networking',
    `--user=${user}`, `--pid-file=${join(dir, 'mariadbd.pid')}`, `--log-error=${log}`,
    '--innodb-buffer-pool-size=32M', '--skip-name-resolve', '--character-set-server=utf8mb4'],
  { detached: true, stdio: ['ignore', fd, fd] });
  const stop = async () => {
    await stopChild(child, { timeoutMs: 20_000 });
    rmSync(dir, { recursive: true, force: true });
  };
  const client = (sql, as = ['-uroot']) => spawnSync('mariadb', ['--no-defaults', '-S', socket, ...as, '-e', sql],
    { encoding: 'utf8', timeout: 30_000 });
  try {
    await until(() => {
      if (child.exitCode !== null) throw new Error(`mariadbd exited (${child.exitCode}):\n${tail(log)}`);
      return existsSync(socket) && client('SELECT 1').status === 0;
    }, { timeoutMs: 60_000, every: 200, what: 'mariadbd' });
    const database = 'wordpress';
    const password = randomBytes(12).toString('hex');
    const made = client(`CREATE DATABASE ${database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
      CREATE USER 'wp'@'localhost' IDENTIFIED BY '${password}';
      GRANT ALL PRIVILEGES ON ${database}.* TO 'wp'@'localhost';`);
    if (made.status !== 0) throw new Error(`creating the database: ${made.stderr}`);
    return { socket, database, user: 'wp', password, log, stop, sql: (q) => client(q, ['-uwp', `-p${password}`, database]) };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ------------------------------------------------------------------------------ WordPress

const SALTS = ['AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT'];
const php = (s) => `'${String(s).replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;

/**
 * A copy of Debian's WordPress in a temp docroot, configured for `db`, served as `home`
 * (https://wp.localhost), with the plugin linked in and the fixtures copied in.
 * `constants`: more define()s for wp-config.php.
 */
export function makeWordPress({ db, home, constants = {} }) {
  const dir = mkdtempSync(join(tmpdir(), 'samplit-wp-'));
  const docroot = join(dir, 'docroot');
  cpSync(WORDPRESS, docroot, { recursive: true, dereference: true });
  rmSync(join(docroot, 'wp-config.php'), { force: true });
  const content = join(docroot, 'wp-content');
  mkdirSync(join(content, 'plugins'), { recursive: true });
  mkdirSync(join(content, 'mu-plugins'), { recursive: true });
  mkdirSync(join(content, 'themes'), { recursive: true });
  mkdirSync(join(content, 'uploads'), { recursive: true });
  // The plugin under test, as it is in the repository (a symlink: what is tested is the tree).
  symlinkSync(PLUGIN_DIR, join(content, 'plugins', 'samplit'), 'dir');
  cpSync(join(FIXTURES, 'mu-plugins'), join(content, 'mu-plugins'), { recursive: true });
  cpSync(join(FIXTURES, 'theme', 'samplit-e2e'), join(content, 'themes', 'samplit-e2e'), { recursive: true });
  const debugLog = join(dir, 'wp-debug.log');
  const defines = {
    DB_NAME: db.database,
    DB_USER: db.user,
    DB_PASSWORD: db.password,
    DB_HOST: `localhost:${db.socket}`,
    DB_CHARSET: 'utf8mb4',
    DB_COLLATE: '',
    ...Object.fromEntries(SALTS.map((k) => [k, randomBytes(48).toString('base64')])),
    WP_HOME: home,
    WP_SITEURL: home,
    WP_DEBUG: true,
    WP_DEBUG_LOG: debugLog,
    WP_DEBUG_DISPLAY: false,
    SCRIPT_DEBUG: false,
    // The test runs WP-Cron itself (no loopback spawn to https://wp.localhost:443).
    DISABLE_WP_CRON: true,
    AUTOMATIC_UPDATER_DISABLED: true,
    WP_AUTO_UPDATE_CORE: false,
    // No internet: WordPress's own calls (updates, news) are refused at once; the plugin's
    // calls go to the loopback control plane and edge.
    WP_HTTP_BLOCK_EXTERNAL: true,
    WP_ACCESSIBLE_HOSTS: '127.0.0.1,localhost',
    DISALLOW_FILE_MODS: true,
    FS_METHOD: 'direct',
    ...constants,
  };
  const lines = Object.entries(defines).map(([k, v]) => `define( ${php(k)}, ${typeof v === 'boolean' ? String(v) : php(v)} );`);
  writeFileSync(join(docroot, 'wp-config.php'), `<?php
// Written by integrations/wordpress/tests/e2e/wp-harness.mjs for one test run.
${lines.join('\n')}
$table_prefix = 'wp_';
// The TLS front (https://wp.localhost) says so; php -S itself is plain http.
if ( isset( $_SERVER['HTTP_X_FORWARDED_PROTO'] ) && 'https' === $_SERVER['HTTP_X_FORWARDED_PROTO'] ) {
	$_SERVER['HTTPS'] = 'on';
}
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
`);
  const phpArgs = ['-d', 'error_reporting=E_ALL', '-d', 'display_errors=0', '-d', 'log_errors=1', '-d', `error_log=${debugLog}`,
    '-d', 'memory_limit=256M'];
  const runPhp = (args, { env = {}, timeout = 60_000 } = {}) => spawnSync('php', [...phpArgs, ...args], {
    encoding: 'utf8', timeout, cwd: docroot, env: { ...process.env, ...env },
  });
  return {
    dir,
    docroot,
    debugLog,
    phpArgs,
    /** wp_install(), the theme, the plugin activated; the install script's JSON. */
    install({ login, password, email }) {
      const out = runPhp([join(FIXTURES, 'install.php'), docroot, login, password, email], { timeout: 120_000 });
      if (out.status !== 0) throw new Error(`install.php (${out.status}): ${out.error ?? ''}${out.stdout}\n${out.stderr}\n${tail(debugLog)}`);
      return JSON.parse(out.stdout.trim().split('\n').at(-1));
    },
    /** Runs PHP code inside WordPress (fixtures/wp-eval.php); its `return` value, decoded. */
    eval(code, { cron = false } = {}) {
      const out = runPhp([join(FIXTURES, 'wp-eval.php'), docroot, code], { env: cron ? { SAMPLIT_E2E_DOING_CRON: '1' } : {} });
      if (out.status !== 0) throw new Error(`wp-eval (${out.status}): ${out.error ?? ''}${out.stdout}\n${out.stderr}`);
      const last = out.stdout.trim().split('\n').at(-1);
      try { return JSON.parse(last); } catch { throw new Error(`wp-eval printed ${out.stdout}`); }
    },
    debugLogText: () => (existsSync(debugLog) ? readFileSync(debugLog, 'utf8') : ''),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * `php -S 127.0.0.1:<port>` on `wp.docroot` with fixtures/router.php. Several workers
 * (PHP_CLI_SERVER_WORKERS): the plugin's "Verify domain" makes the control plane fetch the
 * verification file from this same server while the admin's request is still running.
 */
export async function startPhpServer(wp, port) {
  const log = join(wp.dir, 'php-server.log');
  const fd = openSync(log, 'a');
  const child = spawn('php', [...wp.phpArgs, '-S', `127.0.0.1:${port}`, '-t', wp.docroot, join(FIXTURES, 'router.php')], {
    cwd: wp.docroot, detached: true, stdio: ['ignore', fd, fd],
    env: { ...process.env, PHP_CLI_SERVER_WORKERS: '4' },
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await until(async () => {
      if (child.exitCode !== null) throw new Error(`php -S exited (${child.exitCode}):\n${tail(log)}`);
      try {
        const r = await fetch(`${base}/wp-includes/images/blank.gif`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        return r.status === 200;
      } catch { return false; }
    }, { timeoutMs: 30_000, every: 200, what: `php -S on ${base}` });
  } catch (e) {
    await stopChild(child);
    throw e;
  }
  return { port, base, log, logText: () => tail(log, 20_000), stop: () => stopChild(child) };
}

// ------------------------------------------------------------------------------ network

/** Tracks sockets so close() does not wait for keep-alive connections. */
export function listening(srv, port = 0) {
  const sockets = new Set();
  srv.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  srv.on('secureConnection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return new Promise((ok, fail) => {
    srv.once('error', fail);
    srv.listen(port, '127.0.0.1', () => ok({
      port: srv.address().port,
      close: () => new Promise((done) => { for (const s of sockets) s.destroy(); srv.close(() => done()); }),
    }));
  });
}

/** Passes `req` to 127.0.0.1:`port`, adding `extraHeaders`. */
export function pass(req, res, port, extraHeaders = {}) {
  const upstream = http.request({
    host: '127.0.0.1', port, method: req.method, path: req.url, headers: { ...req.headers, ...extraHeaders },
  }, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  upstream.setTimeout(60_000, () => upstream.destroy(new Error('upstream timeout')));
  upstream.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(String(e));
  });
  req.pipe(upstream);
}

/** A self-signed certificate for `host` (openssl). */
export function makeCertificate(host) {
  const dir = mkdtempSync(join(tmpdir(), 'samplit-wp-tls-'));
  const out = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=samplit-wordpress-test',
    '-addext', `subjectAltName=DNS:${host}`], { encoding: 'utf8', timeout: 30_000 });
  if (out.status !== 0) throw new Error(`openssl: ${out.error ?? out.stderr}`);
  return {
    key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** https on a free loopback port → php -S, with X-Forwarded-Proto: https. */
export function startTlsFront(tls, upstreamPort) {
  return listening(https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => pass(req, res, upstreamPort, { 'x-forwarded-proto': 'https' })));
}

/**
 * A minimal UDP DNS server: A queries for a name in `records` get its address, AAAA for
 * those names an empty answer, everything else NXDOMAIN. `{ port, queries, close }`.
 */
export function startDns(records) {
  const sock = dgram.createSocket('udp4');
  const queries = [];
  sock.on('message', (msg, rinfo) => {
    try {
      if (msg.length < 12) return;
      const id = msg.readUInt16BE(0);
      let off = 12;
      const labels = [];
      while (off < msg.length && msg[off] !== 0) {
        const len = msg[off];
        labels.push(msg.subarray(off + 1, off + 1 + len).toString('ascii'));
        off += len + 1;
      }
      const qEnd = off + 5; // zero byte, QTYPE, QCLASS
      const qtype = msg.readUInt16BE(off + 1);
      const name = labels.join('.').toLowerCase();
      queries.push({ name, qtype });
      const question = msg.subarray(12, qEnd);
      const address = records[name];
      const answers = [];
      if (address && qtype === 1) {
        const rr = Buffer.alloc(16);
        rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
        rr.writeUInt16BE(1, 2); // A
        rr.writeUInt16BE(1, 4); // IN
        rr.writeUInt32BE(5, 6); // TTL
        rr.writeUInt16BE(4, 10);
        address.split('.').forEach((b, i) => rr.writeUInt8(Number(b), 12 + i));
        answers.push(rr);
      }
      const header = Buffer.alloc(12);
      header.writeUInt16BE(id, 0);
      const rcode = address ? 0 : 3;
      header.writeUInt16BE(0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2); // QR AA RD RA
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(answers.length, 6);
      sock.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
    } catch { /* a malformed query: no answer */ }
  });
  return new Promise((ok, fail) => {
    sock.once('error', fail);
    sock.bind(0, '127.0.0.1', () => ok({
      port: sock.address().port,
      queries,
      close: () => new Promise((done) => sock.close(() => done())),
    }));
  });
}

/**
 * A request to WordPress straight at php -S (node's fetch cannot set Host), as
 * https://wp.localhost: `{ status, headers, body }`.
 */
export function wpRequest(port, host, method, path, { headers = {}, body } = {}) {
  return new Promise((ok, fail) => {
    const req = http.request({
      host: '127.0.0.1', port, method, path,
      headers: { host, 'x-forwarded-proto': 'https', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      timeout: 60_000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', fail);
    req.end(body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)));
  });
}
