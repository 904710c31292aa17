#!/usr/bin/env bash
# The project's one test command (README "Set up"; .ci/run calls it too).
# Installs what the tests need on a fresh machine, then runs every test of the workspace:
# unit, integration, property, browser and doc tests, the benchmarks once each in test mode,
# the embedding examples, and a short fuzz run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

# The redemption-page test and the self-hosted pages' test drive a headless Chromium (Debian's
# packages).
scripts/ensure-chromium.sh

# store-sqlx runs on throw-away PostgreSQL and MariaDB servers (Debian's packages, installed
# when missing), stopped again when the tests end.
eval "$(scripts/databases.sh start)"
trap 'scripts/databases.sh stop' EXIT

# Unit, integration and browser tests; criterion benchmarks run once each as tests.
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

# The embedding examples run offline against the in-process reference cloud.
for example in embed_sync daily_job enable_eu; do
  cargo run --quiet --locked -p families-sponsorship --example "$example"
done

# A few seconds of fuzzing per target (installs cargo-fuzz if missing).
scripts/fuzz-smoke.sh 5
