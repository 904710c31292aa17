#!/usr/bin/env bash
# The project's one test command (README "Run the tests"; .ci/run calls it too).
# Installs what the tests need on a fresh machine, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests of the redemption page drive a headless Chromium (Debian's package).
if [ -x scripts/ensure-chromium.sh ]; then
  scripts/ensure-chromium.sh
fi

cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
