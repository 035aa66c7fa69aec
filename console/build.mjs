// Builds the web assets the control plane embeds (control-plane/build.rs runs this with
// Cargo's OUT_DIR; control-plane/src/http/assets.rs serves the result):
//
//   node console/build.mjs <outdir>
//
// - console/src/main.tsx → app.js and console/src/app.css → app.css (the console, /app)
// - console/src/docs.ts → docs.js and console/src/docs.css → docs.css (the /docs page's
//   own script and style), plus swagger-ui-bundle.js and swagger-ui.css copied from
//   swagger-ui-dist, with its licence notice (swagger-ui-bundle.js.LICENSE.txt) and icon
// - app.html and docs.html copied from console/src
// - the public simulator (/simulator): console/src/sim.tsx → sim.js, bundled with the
//   engine's wasm-bindgen glue that control-plane/build.rs built with wasm-pack (the
//   directory in SAMPLIT_SIM_PKG), sim.wasm (the engine), sim.css, sim.html
//
// esbuild bundles and minifies (target es2020, no source maps: the control plane ships
// what is built here, and a map would double what it embeds). Every output also gets a
// `<name>.gz` beside it, gzip level 9, so the server sends precompressed bodies and never
// compresses per request. Only npm packages pinned in the root package-lock.json are
// used; nothing is fetched.
import { createRequire } from 'node:module';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, constants } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const src = join(here, 'src');

const outdir = process.argv[2];
if (!outdir) {
  fail('usage: node console/build.mjs <outdir>');
}

function fail(message) {
  console.error(`console/build.mjs: ${message}`);
  process.exit(1);
}

// The packages this script uses must be installed, at the versions package-lock.json
// pins (a `git pull` that moved the lockfile without an `npm ci` would otherwise build
// with whatever is lying in node_modules).
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
for (const name of ['esbuild', 'preact', 'swagger-ui-dist']) {
  const manifest = join(root, 'node_modules', name, 'package.json');
  const pinned = lock.packages?.[`node_modules/${name}`]?.version;
  if (!existsSync(manifest)) {
    fail(`node_modules/${name} is missing: run \`npm ci\` at the repository root`);
  }
  const installed = JSON.parse(readFileSync(manifest, 'utf8')).version;
  if (installed !== pinned) {
    fail(
      `node_modules/${name} is ${installed} but package-lock.json pins ${pinned}: ` +
        'run `npm ci` at the repository root',
    );
  }
}

const require = createRequire(join(root, 'package.json'));
const esbuild = require('esbuild');
const swaggerDir = dirname(require.resolve('swagger-ui-dist/package.json'));

await mkdir(outdir, { recursive: true });

const simPkg = process.env.SAMPLIT_SIM_PKG;
if (!simPkg || !existsSync(join(simPkg, 'samplit_simulator.js'))) {
  fail('SAMPLIT_SIM_PKG must name the wasm-pack output of simulator/ (control-plane/build.rs sets it)');
}

/** Bundles one entry point and returns its output (a single file, in memory). */
async function bundle(entry, loader, options = {}) {
  const result = await esbuild.build({
    ...options,
    entryPoints: [join(src, entry)],
    bundle: true,
    minify: true,
    write: false,
    target: 'es2020',
    format: 'iife',
    platform: 'browser',
    sourcemap: false,
    legalComments: 'eof',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    loader,
    // Resolve packages from the root node_modules, whatever the working directory.
    nodePaths: [join(root, 'node_modules')],
    absWorkingDir: root,
    logLevel: 'warning',
    outdir: 'out',
  });
  if (result.outputFiles.length !== 1) {
    fail(`${entry}: expected one output, got ${result.outputFiles.length}`);
  }
  return result.outputFiles[0].contents;
}

/** A file as copied from a package, without its source-map comment (no map is served). */
async function vendored(file) {
  const text = await readFile(join(swaggerDir, file), 'utf8');
  return Buffer.from(text.replace(/\n?\/[*/]# sourceMappingURL=\S+?(\s*\*\/)?\s*$/, '\n'));
}

const outputs = {
  'app.js': await bundle('main.tsx'),
  'app.css': await bundle('app.css'),
  'app.html': await readFile(join(src, 'app.html')),
  'docs.js': await bundle('docs.ts'),
  'docs.css': await bundle('docs.css'),
  'docs.html': await readFile(join(src, 'docs.html')),
  'swagger-ui-bundle.js': await vendored('swagger-ui-bundle.js'),
  'swagger-ui.css': await vendored('swagger-ui.css'),
  'swagger-ui-bundle.js.LICENSE.txt': await readFile(
    join(swaggerDir, 'swagger-ui-bundle.js.LICENSE.txt'),
  ),
  'favicon-32x32.png': await readFile(join(swaggerDir, 'favicon-32x32.png')),
  'sim.js': await bundle('sim.tsx', undefined, {
    alias: { 'samplit-simulator': join(simPkg, 'samplit_simulator.js') },
    // The glue's default wasm URL uses import.meta, which an iife has not: the page
    // always passes /simulator/sim.wasm itself.
    define: { 'import.meta.url': '"/simulator/"' },
  }),
  'sim.wasm': await readFile(join(simPkg, 'samplit_simulator_bg.wasm')),
  'sim.css': await bundle('sim.css'),
  'sim.html': await readFile(join(src, 'sim.html')),
};

for (const [name, contents] of Object.entries(outputs)) {
  // mtime 0 and no file name in the header: the same input gives the same bytes.
  const gz = gzipSync(contents, { level: constants.Z_BEST_COMPRESSION });
  await writeFile(join(outdir, name), contents);
  await writeFile(join(outdir, `${name}.gz`), gz);
}

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const size = (name) => readFileSync(join(outdir, name)).length;
const first = size('app.js.gz') + size('app.css.gz');
console.log(
  `console/build.mjs: app.js + app.css = ${kb(first)} gzipped; ` +
    `swagger-ui-bundle.js ${kb(size('swagger-ui-bundle.js.gz'))} gzipped`,
);
