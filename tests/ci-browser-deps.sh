#!/usr/bin/env bash
# Install what the tests run beside Python (idempotent): Debian's headless Chromium and its
# WebDriver for tests/test_browser.py, and jq for the pipelines in docs/api.md's examples.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/jq ]; then
    echo "chromium, chromedriver and jq already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-liberation jq
/usr/bin/chromium --version
/usr/bin/chromedriver --version
/usr/bin/jq --version
