#!/usr/bin/env bash
# The README's test command: installs the system packages the test suite needs when they are missing
# (Debian packages, as root), then runs every test in the workspace. Nothing is skipped: the browser test
# fails when it finds no chromium or chromedriver.
#
# It also provides, for the tests that need them:
#   - a throwaway PostgreSQL cluster on a free port of 127.0.0.1 (scripts/postgres.sh), stopped and
#     removed when this script exits, however it exits. Tests read
#       TESSERA_TEST_POSTGRES_URL   postgres://tessera:tessera@127.0.0.1:PORT/tessera
#       TESSERA_TEST_POSTGRES_CTL   a script taking start|stop|restart|status|kill, to simulate outages
#     If TESSERA_TEST_POSTGRES_URL is already exported, that database is used instead and no cluster is
#     started; TESSERA_TEST_POSTGRES_CTL is then whatever you export (the outage tests need one).
#   - Node.js and the interop peers in tests/interop (scripts/node.sh): npm ci when node_modules does
#     not match package-lock.json, and TESSERA_INTEROP_DIR, the absolute path of tests/interop.
# Arguments are passed to cargo test, e.g. scripts/test.sh -p tessera-server -- --nocapture
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

# Node.js and the interop peers (a real oidc-provider, an oauth4webapi DPoP client).
source scripts/node.sh
node_ensure_installed || fail "Node.js is needed for the interop tests (see the message above)."
node_install_interop || fail "installing tests/interop failed (see the message above)."

# PostgreSQL: a throwaway cluster unless the caller brought a database.
if [ -n "${TESSERA_TEST_POSTGRES_URL:-}" ]; then
    echo "== postgresql: using TESSERA_TEST_POSTGRES_URL from the environment; no throwaway cluster"
else
    source scripts/postgres.sh
    trap postgres_stop_throwaway EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    postgres_ensure_installed || fail "PostgreSQL is needed for the tests (see the message above)."
    postgres_start_throwaway || fail "could not start the throwaway PostgreSQL cluster (see the message above)."
fi

# Not exec: the EXIT trap must run after cargo to stop the cluster.
status=0
cargo test --workspace "$@" || status=$?
exit "$status"
