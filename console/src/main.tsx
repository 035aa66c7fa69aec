// The console's entry point (bundled to /app/app.js by console/build.mjs): client-side
// navigation under /app, then the app (App.tsx).
import { render } from 'preact';
import { App } from './App';
import { installLinkHandler } from './lib/router';

installLinkHandler();
const root = document.getElementById('app');
if (root) render(<App />, root);
