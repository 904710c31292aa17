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
  cargo fuzz run "$target" "${corpora[@]}" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done )|panicked|ERROR' || true
  # cargo fuzz exits non-zero on a crash; pipefail carries that through the grep above only
  # when the fuzzer itself failed, so check for artifacts explicitly.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz-smoke: $target found a failing input in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz-smoke: $(echo "$targets" | wc -w) target(s), no crash"
