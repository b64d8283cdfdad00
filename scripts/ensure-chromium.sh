#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's chromium headless (Playwright with executable_path, no browser
# download). Installs it with apt when it is missing; CI runs as root on a Debian machine.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: /usr/bin/chromium is missing and apt-get is not here to install it" >&2
    exit 1
fi
echo "ensure-chromium: installing Debian's chromium for the browser tests"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
/usr/bin/chromium --version
