#!/usr/bin/env bash
# Runs the end-to-end sync bench with an older commit's `sponsorctl` timed beside this one's,
# in alternation, in the same run (docs/performance.md reports the figures).
#
#   scripts/bench-before.sh [COMMIT] [SIZES]
#
# COMMIT defaults to c0b2f5a, the last commit before the library-first restructuring; SIZES
# (SPONSOR_BENCH_SIZES) to 10000,100000. The older tree is a git worktree under target/ and is
# built there with its own lock file; nothing of it is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
commit="${1:-c0b2f5a}"
sizes="${2:-10000,100000}"
tree="target/before/$commit"
if [ ! -e "$tree/Cargo.toml" ]; then
  rm -rf "$tree"
  git worktree prune
  git worktree add --detach "$tree" "$commit"
fi
cargo build --release --locked --quiet --manifest-path "$tree/Cargo.toml" \
  -p sponsorship-cli --bin sponsorctl --target-dir target/before/target
SPONSOR_BENCH_BEFORE="$PWD/target/before/target/release/sponsorctl" \
  SPONSOR_BENCH_SIZES="$sizes" \
  cargo bench --locked -p families-sponsorship --bench e2e_sync
