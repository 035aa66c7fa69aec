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

const ours = await h.startWorker();
const trivial = await h.startWorker({ main: join(h.root, 'edge-worker', 'bench', 'trivial-worker.mjs') });
try {
  const pushed = await h.pushSnapshot(ours, SITE, h.signSnapshot(h.testSnapshot({ siteKey: SITE })));
  if (pushed.status !== 200) throw new Error(`push failed: ${pushed.status} ${await pushed.text()}`);

  const call = async (w, i) => {
    const t0 = process.hrtime.bigint();
    const res = await h.assign(w, { site_key: SITE, url: 'https://shop.example.com/pricing', visitor_id: `bench-${i}` });
    const body = await res.text();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 200) throw new Error(`${res.status} ${body}`);
    return ms;
  };
  // Warm-up: JIT, wasm tier-up, the isolate's snapshot cache, keep-alive connections.
  for (let i = 0; i < 200; i++) { await call(ours, i); await call(trivial, i); }

  const a = [];
  const b = [];
  for (let i = 0; i < N; i++) {
    if (i % 2) { a.push(await call(ours, i)); b.push(await call(trivial, i)); } else { b.push(await call(trivial, i)); a.push(await call(ours, i)); }
  }
  const q = (xs, p) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const row = (name, xs) => console.log(`${name.padEnd(34)} p50 ${q(xs, 0.5).toFixed(3)} ms  p90 ${q(xs, 0.9).toFixed(3)} ms  p99 ${q(xs, 0.99).toFixed(3)} ms  mean ${mean(xs).toFixed(3)} ms`);
  console.log(`${N} interleaved POST /v1/assign per worker, sequential, keep-alive, local wrangler dev`);
  row('samplit-edge (Rust/wasm, 1 exp.)', a);
  row('trivial JS worker (fixed JSON)', b);
  console.log(`ratio p50 ${(q(a, 0.5) / q(b, 0.5)).toFixed(2)}x, mean ${(mean(a) / mean(b)).toFixed(2)}x (goal <= 1.2x)`);
} finally {
  await ours.stop();
  await trivial.stop();
}
