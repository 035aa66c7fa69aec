// The console's entry point (bundled to /app/app.js by console/build.mjs). A placeholder
// until the console itself lands: it proves the pipeline (TypeScript + JSX → Preact →
// esbuild → embedded in the control plane) end to end.
import { render } from 'preact';

function App() {
  return (
    <main>
      <h1>Samplit</h1>
      <p>The web console is on its way. The API reference is at <a href="/docs">/docs</a>.</p>
    </main>
  );
}

const root = document.getElementById('app');
if (root) {
  render(<App />, root);
}
