#!/usr/bin/env bash
# The edge benchmarks, figures printed to stdout (the lead copies them to docs/benchmarks.md):
#   (a) engine assignment in wasm vs GrowthBook's JS SDK, same node process;
#   (b) POST /v1/assign through local workerd as a ratio to a trivial JS Worker;
#   (c) the Worker's wasm size, raw and gzipped.
# Usage: edge-worker/bench/run.sh   (from anywhere; builds what it needs first)
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> edge build (cargo xtask edge-build)"
cargo xtask edge-build

echo "==> engine wasm for node (edge-worker/bench/engine-wasm)"
(cd edge-worker/bench/engine-wasm &&
  CARGO_TARGET_DIR="$PWD/../../../target/bench-wasm" \
    cargo build --release --target wasm32-unknown-unknown)
"${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen" --target nodejs --out-dir target/bench-wasm/pkg \
  target/bench-wasm/wasm32-unknown-unknown/release/samplit_engine_bench_wasm.wasm

echo "==> (a) assignment: samplit engine (wasm) vs GrowthBook JS SDK"
node edge-worker/bench/assign-vs-growthbook.mjs

echo "==> (b) /v1/assign latency vs a trivial JS Worker (local workerd)"
WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false \
  node edge-worker/bench/assign-latency.mjs

echo "==> (c) Worker size"
wasm=edge-worker/build/index_bg.wasm
raw=$(wc -c <"$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
js=$(wc -c <edge-worker/build/index.js)
snippet_gz=$(gzip -9 -c edge-worker/snippet/samplit.js | wc -c)
echo "wasm ${raw} bytes (${gz} gzipped), JS glue ${js} bytes, snippet ${snippet_gz} bytes gzipped"
