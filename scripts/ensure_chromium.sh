#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (never a browser Playwright downloads). Install it when it
# is missing and this machine can (root with apt-get); otherwise say why, and the browser tests skip with that reason.
set -uo pipefail

if command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: Chromium is not installed and cannot be installed here (needs root and apt-get); browser tests will skip"
  exit 0
fi
echo "==> Installing Debian's chromium for the browser tests (once)"
export DEBIAN_FRONTEND=noninteractive
if ! timeout 600 apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
  timeout 300 apt-get update -q >/dev/null 2>&1
  if ! timeout 600 apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
    echo "note: apt-get could not install chromium; browser tests will skip"
  fi
fi
exit 0
