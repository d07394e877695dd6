#!/usr/bin/env bash
# The README's test command: installs the system packages the test suite needs when they are missing
# (Debian packages, as root), then runs every test in the workspace. Nothing is skipped: the browser test
# fails when it finds no chromium or chromedriver.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "scripts/test.sh: $*" >&2
    exit 1
}

# The SPA proxy's browser test drives Debian's Chromium through chromedriver.
install_browser() {
    local -a as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            fail "chromium and chromedriver are missing and installing them needs root.
Install them (Debian: apt-get install chromium chromium-driver), or rerun this script as root."
        fi
    fi
    command -v apt-get >/dev/null 2>&1 ||
        fail "chromium and chromedriver are missing and this is not a Debian system (no apt-get).
Install Chromium and a matching chromedriver, put both on PATH (or set CHROMIUM and CHROMEDRIVER), then rerun."
    echo "== installing chromium and chromium-driver (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q ||
        fail "apt-get update failed; cannot install chromium and chromium-driver."
    "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium chromium-driver ||
        fail "apt-get install chromium chromium-driver failed; the browser test cannot run without them."
}

browser_present() {
    command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1 && command -v "${CHROMEDRIVER:-chromedriver}" >/dev/null 2>&1
}

if ! browser_present; then
    install_browser
    browser_present || fail "chromium or chromedriver is still not on PATH after installing them."
fi

exec cargo test --workspace "$@"
