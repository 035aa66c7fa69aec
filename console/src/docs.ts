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

bundle({
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
