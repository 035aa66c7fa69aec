// The /docs page's script (bundled to /docs/docs.js by console/build.mjs): starts
// Swagger UI (swagger-ui-dist's swagger-ui-bundle.js, loaded before this file by
// docs.html) on this server's own OpenAPI document. An external file, not an inline
// <script>, because the page's Content-Security-Policy allows scripts from 'self' only.

/** The part of swagger-ui-bundle.js's global this page uses. */
interface SwaggerUIBundle {
  (options: Record<string, unknown>): unknown;
  presets: { apis: unknown };
}

declare global {
  interface Window {
    SwaggerUIBundle?: SwaggerUIBundle;
  }
}

const bundle = window.SwaggerUIBundle;
const mount = document.getElementById('swagger');
if (!bundle || !mount) {
  throw new Error('docs.js: swagger-ui-bundle.js or #swagger is missing from the page');
}

// Signed into the console in this browser? Then "Try it out" works without "Authorize":
// the session cookie goes with every same-origin call, and this interceptor adds the
// session's CSRF token to the calls that change something (the server refuses them
// otherwise). Signed out (401), nothing is added and "Authorize" takes a token.
let csrf: string | undefined;
const session = fetch('/api/v1/auth/console/session', { credentials: 'same-origin' })
  .then((res) => (res.ok ? (res.json() as Promise<{ csrf_token: string }>) : undefined))
  .then((body) => {
    csrf = body?.csrf_token;
  })
  .catch(() => undefined);

interface SwaggerRequest {
  method?: string;
  headers: Record<string, string>;
}

async function withCsrf(req: SwaggerRequest): Promise<SwaggerRequest> {
  await session;
  const method = (req.method ?? 'GET').toUpperCase();
  if (csrf && !['GET', 'HEAD', 'OPTIONS'].includes(method) && !req.headers['Authorization']) {
    req.headers['X-CSRF-Token'] = csrf;
  }
  return req;
}

bundle({
  requestInterceptor: withCsrf,
  // The document generated from the routes; its `servers` entry is `/api/v1`, so
  // "Try it out" calls this same origin (allowed by `connect-src 'self'`).
  url: '/api/v1/openapi.json',
  dom_id: '#swagger',
  presets: [bundle.presets.apis],
  // BaseLayout: the operations without the standalone preset's top bar (a URL box to
  // load any other document, which this page has no use for).
  layout: 'BaseLayout',
  deepLinking: true,
  // Swagger UI otherwise sends the document to validator.swagger.io and shows its badge:
  // a third-party request the CSP would block anyway.
  validatorUrl: null,
  // The access token pasted into "Authorize" stays in memory only: never written to
  // localStorage, where any script on the origin could read it later.
  persistAuthorization: false,
  displayRequestDuration: true,
  filter: true,
  tryItOutEnabled: false,
  defaultModelsExpandDepth: 1,
  docExpansion: 'list',
});

export {};
