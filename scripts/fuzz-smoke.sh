#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for SECONDS each (default 15), seeded from
# fuzz/seeds/<target> when present. Installs cargo-fuzz when missing. Fails on any crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz >/dev/null
fi
cd fuzz
targets=$(cargo +nightly fuzz list)
[ -n "$targets" ] || { echo "fuzz-smoke: no targets"; exit 0; }
cargo +nightly fuzz build -O $targets >/dev/null 2>&1 || cargo +nightly fuzz build -O
for t in $targets; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "fuzz-smoke: $t for ${secs}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$secs" -print_final_stats=0 >/dev/null 2>"/tmp/fuzz-$t.log" || {
    tail -40 "/tmp/fuzz-$t.log"; echo "fuzz-smoke: $t FAILED"; exit 1; }
done
echo "fuzz-smoke: all targets ran clean"
