#!/usr/bin/env bash
# Headless Chromium for the member page tests: Debian's chromium and chromium-driver, installed when
# missing. Run by `make test` (target `browser`); on a machine without apt it says what to install
# and the browser tests skip, unless MEMBERFLOW_REQUIRE_BROWSER=1 (CI) makes them fail instead.
set -uo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_browser: no apt-get here; install Chromium and its chromedriver to run the browser tests" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "ensure_browser: not root and no sudo; install chromium and chromium-driver to run the browser tests" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure_browser: installing chromium and chromium-driver (Debian packages)" >&2
if ! $sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
  $sudo apt-get update -q >/dev/null 2>&1 || true
  if ! $sudo apt-get install -y -q chromium chromium-driver >/dev/null; then
    echo "ensure_browser: could not install chromium; the browser tests will skip (or fail in CI)" >&2
  fi
fi
exit 0
