#!/usr/bin/env bash
# Headless Chromium for the browser tests (edge-worker/test/browser.test.mjs), from
# Debian's packages. playwright-core drives it through executablePath=/usr/bin/chromium;
# never `npx playwright install` (it downloads browsers from a CDN).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  chromium --version
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
chromium --version
