#!/usr/bin/env bash
# Installs Debian's headless browser and its WebDriver for the browser tests: the redemption page
# (crates/cloud-emulator, tests/it/browser.rs) and the self-hosted pages (tests/it/host_pages.rs).
# Idempotent, quiet and non-interactive; needs root or sudo on a fresh machine. Does nothing when both programs are already on PATH.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium && have chromedriver; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo; then
    SUDO="sudo -n"
  else
    echo "ensure-chromium: chromium/chromedriver missing and not root (no sudo): install Debian packages chromium and chromium-driver" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# apt's chatter (debconf notes) is shown only when something fails.
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-chromium: installing chromium and chromium-driver with apt-get failed" >&2
  exit 1
fi

if ! have chromium || ! have chromedriver; then
  echo "ensure-chromium: apt-get finished but chromium or chromedriver is still not on PATH" >&2
  exit 1
fi
