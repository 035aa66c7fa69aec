// Helpers for the editor and edge-rendering tests: editor tokens minted exactly as the
// control plane does (shared-engine/src/editor_token.rs), and a small origin server on
// 127.0.0.1 that records what it receives.
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { SNAPSHOT_SECRET } from './harness.mjs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An editor token: base64url(JSON claims) "." base64url(HMAC(derived key, payload)). */
export function editorToken({
  siteKey = 'sk_editor',
  userId = 'user-1',
  allowedDomains = ['127.0.0.1'],
  adminOrigin = 'http://127.0.0.1:1',
  expMs = Date.now() + 10 * 60 * 1000,
  preview = null,
  secret = SNAPSHOT_SECRET,
} = {}) {
  // Field order = the engine's struct order (canonical JSON).
  const claims = { v: 1, site_key: siteKey, user_id: userId, allowed_domains: allowedDomains,
    admin_origin: adminOrigin, exp_ms: expMs, preview };
  const payload = JSON.stringify(claims);
  const key = createHmac('sha256', secret).update('samplit/editor-token/v1').digest();
  const mac = createHmac('sha256', key).update(payload).digest();
  return `${b64url(payload)}.${b64url(mac)}`;
}

/**
 * An origin on 127.0.0.1. `routes` maps a path to (req, body, origin) => ({status,
 * headers, body}); every request is recorded in `requests` ({method, url, headers, body}).
 */
export async function startOrigin(routes) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const path = new URL(req.url, 'http://x').pathname;
      const route = routes[path];
      if (!route) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const out = route(req, body, origin);
      res.writeHead(out.status ?? 200, out.headers ?? {});
      res.end(out.body ?? '');
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const port = server.address().port;
  const origin = {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }),
  };
  return origin;
}
