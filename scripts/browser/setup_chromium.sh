#!/usr/bin/env bash
# Install (apt, only if missing) Debian's headless-capable Chromium and its WebDriver for the
# portal's browser tests (tests/service/portal/test_browser.py, driven by Selenium). Needs root and
# apt-get when the packages are missing; idempotent: a second run only checks them.
#   SKIP_APT=1  never call apt-get
# Prints the chromedriver path on its last line.
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
if ! have; then
  [ "$(id -u)" = 0 ] || { echo "setup_chromium.sh: chromium/chromium-driver missing and not root" >&2; exit 2; }
  if [ "${SKIP_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_chromium.sh: chromium/chromium-driver missing and apt-get unavailable (or SKIP_APT=1)" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  lock=(-o DPkg::Lock::Timeout=900)   # wait for another apt-get (e.g. a concurrent setup script)
  apt-get "${lock[@]}" update -qq
  apt-get "${lock[@]}" install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi
have || { echo "setup_chromium.sh: chromium or chromedriver still missing after install" >&2; exit 1; }
echo "chromium ready: $(chromium --version 2>/dev/null | head -1)"
command -v chromedriver
