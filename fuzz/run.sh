#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each, then prints inputs tried and crashes
# per target. Exits non-zero if any target crashed (the input is kept in
# fuzz/artifacts/<target>/; replay it with `cargo +nightly fuzz run -s none <target> <file>`).
#
#   fuzz/run.sh [seconds-per-target] [target...]     (default: 15 s, every target)
#
# Installs what it needs when missing: a nightly toolchain (rustup) and cargo-fuzz
# (`cargo install --locked`). Builds without a sanitizer (`-s none`): every crate of ours
# forbids `unsafe`, so AddressSanitizer would mostly watch the standard library at twice
# the cost; debug assertions and overflow checks stay on (cargo-fuzz's default).
# The corpus grows in fuzz/corpus/<target>/ (not committed), seeded from fuzz/seeds/.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-15}
shift || true

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

mkdir -p logs
# Every target (cargo-fuzz builds one target or all of them).
if ! cargo +nightly fuzz build -s none >logs/build.log 2>&1; then
  tail -40 logs/build.log
  exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

failed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  log="logs/$t.log"
  start=$(date +%s)
  if cargo +nightly fuzz run -s none "$t" "corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
    failed=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  if [ -z "$runs" ]; then
    runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  corpus=$(find "corpus/$t" -type f | wc -l)
  summary+=("$(printf '%-14s %12s runs  %6s corpus  %s crash(es)  %ss' "$t" "${runs:-?}" "$corpus" "$crashes" "$(($(date +%s) - start))")")
  if [ "$crashes" -ne 0 ]; then
    grep -E 'panicked at|ERROR: libFuzzer|Test unit written|SUMMARY' "$log" | head -8 || true
  fi
done

echo "==> fuzzing, ${secs} s per target"
printf '%s\n' "${summary[@]}"
exit "$failed"
