#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target under fuzz/ for a few seconds each.
# Separate from the test command (scripts/test.sh). Installs cargo-fuzz from crates.io if missing.
# cargo-fuzz needs nightly features (-Zsanitizer); the machine has only a stable toolchain, so
# RUSTC_BOOTSTRAP=1 enables them on it.
# Usage: scripts/fuzz-smoke.sh [seconds-per-target]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
targets=$(cargo fuzz list)
for target in $targets; do
  echo "fuzz-smoke: $target for ${seconds}s"
  # Committed seed inputs (fuzz/seeds/<target>/) join the working corpus, when there are any.
  corpora=()
  if [ -d "seeds/$target" ]; then
    mkdir -p "corpus/$target"
    corpora=("corpus/$target" "seeds/$target")
  fi
  log="$(mktemp)"
  status=0
  cargo fuzz run "$target" "${corpora[@]}" -- -max_total_time="$seconds" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done )|panicked|ERROR' "$log" || true
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz-smoke: $target found a failing input in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  # Anything else that stops the fuzzer (a target that no longer compiles after an API change,
  # a missing toolchain feature) fails the smoke run too, with the end of its output.
  if [ "$status" -ne 0 ] || ! grep -q '^stat::number_of_executed_units' "$log"; then
    echo "fuzz-smoke: $target did not run (cargo fuzz exit status $status):" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz-smoke: $(echo "$targets" | wc -w) target(s), no crash"
