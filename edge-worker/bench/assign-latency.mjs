// Benchmark (b): POST /v1/assign through local workerd (wrangler dev), as a ratio to a
// trivial JS Worker returning fixed JSON (trivial-worker.mjs), measured in the same run
// with requests interleaved, so machine noise hits both alike. Absolute figures are
// dominated by wrangler's local proxy; the ratio is the figure to read.
//
//   node edge-worker/bench/assign-latency.mjs     (after `cargo xtask edge-build`)
import { join } from 'node:path';
import * as h from '../test/harness.mjs';

const N = Number(process.env.BENCH_N ?? 2000);
const SITE = 'sk_bench';

// The queue consumer forwards exposures to a control plane that acknowledges them, as in
// production (h.startControlPlane verifies each batch's signature and answers 200):
// without one, every batch fails and is redelivered, and the retries' CPU lands on the
// requests being measured.
const cp = await h.startControlPlane();
const ours = await h.startWorker({ vars: { SAMPLIT_CONTROL_PLANE_URL: cp.url } });
const trivial = await h.startWorker({ main: join(h.root, 'edge-worker', 'bench', 'trivial-worker.mjs') });
try {
  const snapshot = h.testSnapshot({ siteKey: SITE, exclusions: [{ type: 'header', name: 'x-bench-exclude', value: '1' }] });
  const pushed = await h.pushSnapshot(ours, SITE, h.signSnapshot(snapshot));
  if (pushed.status !== 200) throw new Error(`push failed: ${pushed.status} ${await pushed.text()}`);

  const timed = async (fn) => {
    const t0 = process.hrtime.bigint();
    const res = await fn();
    const body = await res.text();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 200) throw new Error(`${res.status} ${body}`);
    return ms;
  };
  const post = (w, i, headers = {}) => () => h.assign(w, { site_key: SITE, url: 'https://shop.example.com/pricing', visitor_id: `bench-${i}` }, headers);
  // The figure: a full assignment (engine, cookies, exposure enqueued) vs fixed JSON.
  // Breakdown rows: an excluded visitor (same request, no exposure to enqueue) and
  // GET /v1/healthz (the Rust Worker doing almost nothing).
  const cases = {
    'samplit-edge POST /v1/assign': (i) => post(ours, i),
    'samplit-edge, excluded (no queue)': (i) => post(ours, i, { 'x-bench-exclude': '1' }),
    'samplit-edge GET /v1/healthz': () => () => ours.fetch('/v1/healthz'),
    'trivial JS worker (fixed JSON)': (i) => post(trivial, i),
  };
  const names = Object.keys(cases);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  // Warm-up: JIT, wasm tier-up, the isolate's snapshot cache, keep-alive connections.
  for (let i = 0; i < 200; i++) for (const n of names) await timed(cases[n](i));
  for (let i = 0; i < N; i++) {
    // Rotate the order each round so no case always runs right after another.
    for (let k = 0; k < names.length; k++) {
      const n = names[(i + k) % names.length];
      samples[n].push(await timed(cases[n](i)));
    }
  }
  const q = (xs, p) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  console.log(`${N} requests per case, interleaved, sequential, keep-alive, local wrangler dev`);
  for (const n of names) {
    const xs = samples[n];
    console.log(`${n.padEnd(36)} p50 ${q(xs, 0.5).toFixed(3)} ms  p90 ${q(xs, 0.9).toFixed(3)} ms  p99 ${q(xs, 0.99).toFixed(3)} ms  mean ${mean(xs).toFixed(3)} ms`);
  }
  const a = samples['samplit-edge POST /v1/assign'];
  const b = samples['trivial JS worker (fixed JSON)'];
  console.log(`ratio assign/trivial: p50 ${(q(a, 0.5) / q(b, 0.5)).toFixed(2)}x (goal <= 1.05x), p99 ${(q(a, 0.99) / q(b, 0.99)).toFixed(2)}x (goal <= 1.2x), mean ${(mean(a) / mean(b)).toFixed(2)}x`);
  console.log(`exposures delivered to the control plane during the run: ${cp.items().length}, batches refused: ${cp.rejected.length}`);
} finally {
  await ours.stop();
  await trivial.stop();
  await cp.close();
}
