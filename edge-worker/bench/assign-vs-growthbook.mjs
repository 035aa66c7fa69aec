// Benchmark (a): one visitor assigned to one experiment, Samplit's engine (wasm32, the
// code the Worker runs) beside GrowthBook's JS SDK (1.8.0) in the same node process.
//
//   node edge-worker/bench/assign-vs-growthbook.mjs      (after edge-worker/bench/run.sh
//                                                          built target/bench-wasm/pkg)
//
// Same experiment on both sides: seed, hash version 2, coverage 1, two arms 50/50, no
// targeting. Samplit runs the full `assign_site` (site exclusions, URL rules, namespace,
// bucket, allocator, the Assignment borrowing ids and changes from the snapshot); one
// row adds the bot user-agent check `/v1/assign` runs before it (on a Chrome user
// agent, passed from JS like the ids). GrowthBook is measured two ways:
// `new GrowthBook({attributes}).run(exp)` per visitor (a fresh SDK instance per request,
// the usual server-side pattern) and `GrowthBookClient.runInlineExperiment` (its
// multi-user client: no per-visitor instance). The bench also checks both sides put
// each visitor in the same arm (the engine implements GrowthBook's hashing).
import { createRequire } from 'node:module';
import { GrowthBook, GrowthBookClient } from '@growthbook/growthbook';
import { BROWSER_UA, testSnapshot } from '../test/harness.mjs';

const require = createRequire(import.meta.url);
const bench = require('../../target/bench-wasm/pkg/samplit_engine_bench_wasm.js');
const { Engine } = bench;

const N = Number(process.env.BENCH_N ?? 200000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const URL_ = 'https://shop.example.com/pricing';

const fixed = testSnapshot({ weights: [0.5, 0.5] });
const exp = fixed.experiments[0];
const thompson = structuredClone(fixed);
thompson.experiments[0].units[0].allocator = { kind: 'thompson', prior_alpha: 1, prior_beta: 1, min_exposures: 100, floor: 0.01 };
Object.assign(thompson.experiments[0].units[0].arms[0], { exposures: 5000, conversions: 400 });
Object.assign(thompson.experiments[0].units[0].arms[1], { exposures: 5000, conversions: 450 });

const engine = new Engine(JSON.stringify(fixed));
const engineThompson = new Engine(JSON.stringify(thompson));
const gbExperiment = { key: exp.id, seed: exp.seed, hashVersion: 2, variations: [0, 1], weights: [0.5, 0.5], coverage: 1 };
const client = new GrowthBookClient({ enableDevMode: false }).initSync({ payload: { features: {} } });

// Strings as bytes: the visitor id and the URL are written as UTF-8 into a buffer the
// engine owns in wasm memory (reused by every call), then one call with two lengths — no
// string goes through wasm-bindgen's glue (which allocates in wasm and copies per call).
// ASCII is copied by a loop (the usual case: ids and URLs are ASCII on the wire);
// anything else goes through TextEncoder.encodeInto.
const encoder = new TextEncoder();
function bytesCaller(eng) {
  const memory = bench.wasm_memory();
  const ptr = eng.input_ptr();
  const cap = eng.input_capacity();
  let view = new Uint8Array(memory.buffer, ptr, cap);
  const put = (s, at) => {
    const n = s.length;
    if (at + n <= cap) {
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        view[at + i] = c;
      }
      if (i === n) return n;
    }
    return encoder.encodeInto(s, view.subarray(at)).written;
  };
  return (id, url) => {
    // A grown memory detaches the old buffer: take a new view.
    if (view.byteLength === 0) view = new Uint8Array(memory.buffer, ptr, cap);
    const a = put(id, 0);
    const b = put(url, a);
    return eng.assign_input(a, b);
  };
}
const assignBytes = bytesCaller(engine);

const ids = Array.from({ length: N }, (_, i) => `visitor-${i}`);

// Agreement first: the same visitor lands in the same arm on both sides.
let agree = 0;
for (let i = 0; i < 10000; i++) {
  const gb = new GrowthBook({ attributes: { id: ids[i] } }).run(gbExperiment);
  if (gb.variationId === engine.assign(ids[i], URL_)) agree += 1;
  if (assignBytes(ids[i], URL_) !== engine.assign(ids[i], URL_)) throw new Error('bytes and strings disagree');
}

const cases = {
  'samplit wasm, one JS→wasm call per visitor (fixed split)': () => {
    let s = 0; for (let i = 0; i < N; i++) s += engine.assign(ids[i], URL_); return s;
  },
  'samplit wasm, bytes in a reused wasm buffer, one call per visitor (fixed split)': () => {
    let s = 0; for (let i = 0; i < N; i++) s += assignBytes(ids[i], URL_); return s;
  },
  'samplit wasm, loop inside wasm (fixed split)': () => engine.assign_many('visitor-', N, URL_),
  'samplit wasm, one call per visitor, plus the Worker\'s bot check of a Chrome user agent': () => {
    let s = 0; for (let i = 0; i < N; i++) s += engine.assign_checking_bot(ids[i], URL_, BROWSER_UA); return s;
  },
  'samplit wasm, one call per visitor (Thompson, propensity-weighted draw)': () => {
    let s = 0; for (let i = 0; i < N; i++) s += engineThompson.assign(ids[i], URL_); return s;
  },
  'growthbook new GrowthBook({attributes}).run(exp)': () => {
    let s = 0; for (let i = 0; i < N; i++) s += new GrowthBook({ attributes: { id: ids[i] } }).run(gbExperiment).variationId; return s;
  },
  'growthbook GrowthBookClient.runInlineExperiment(exp, user)': () => {
    let s = 0; for (let i = 0; i < N; i++) s += client.runInlineExperiment(gbExperiment, { attributes: { id: ids[i] } }).variationId; return s;
  },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {};
for (const [name, fn] of Object.entries(cases)) {
  fn(); // warm-up (JIT, wasm tier-up)
  const perOp = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    perOp.push(Number(process.hrtime.bigint() - t0) / N);
  }
  results[name] = median(perOp);
}

console.log(`node ${process.version}, ${N} visitors x ${ROUNDS} rounds, median ns per assignment`);
for (const [name, ns] of Object.entries(results)) console.log(`${ns.toFixed(0).padStart(8)} ns  ${name}`);
const strings = results['samplit wasm, one JS→wasm call per visitor (fixed split)'];
const ours = results['samplit wasm, bytes in a reused wasm buffer, one call per visitor (fixed split)'];
const gbRun = results['growthbook new GrowthBook({attributes}).run(exp)'];
const gbClient = results['growthbook GrowthBookClient.runInlineExperiment(exp, user)'];
console.log(`speed-up, strings through wasm-bindgen: vs GrowthBook run() ${(gbRun / strings).toFixed(1)}x; vs runInlineExperiment ${(gbClient / strings).toFixed(1)}x`);
console.log(`speed-up, bytes in a reused buffer: vs GrowthBook run() ${(gbRun / ours).toFixed(1)}x; vs runInlineExperiment ${(gbClient / ours).toFixed(1)}x`);
// What the Worker pays per assignment: it is Rust compiled to wasm and calls the engine
// from Rust in the same instance (edge-worker/src/visitor.rs → assign_site), so no JS→wasm
// crossing and no string passing happen per assignment; the loop inside wasm is that call
// (it also formats each visitor id, which the Worker does not: a conservative figure).
const inWasm = results['samplit wasm, loop inside wasm (fixed split)'];
console.log(`speed-up, what the Worker pays (engine called from Rust inside wasm): vs runInlineExperiment ${(gbClient / inWasm).toFixed(1)}x (goal >= 5x)`);
console.log(`same arm as GrowthBook for ${agree}/10000 visitors`);
