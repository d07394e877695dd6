# shellcheck shell=bash
# Node.js for the interop tests (tests/interop: a real oidc-provider and an oauth4webapi DPoP client).
# Source this file (scripts/test.sh does), then:
#
#   node_ensure_installed   node >= 20.12 and npm on PATH; otherwise install Debian's nodejs and npm
#                           with apt-get (needs root or sudo -n), and fail if node is still too old
#   node_install_interop    npm ci in tests/interop unless node_modules already matches
#                           package-lock.json (a stamp of its hash); exports TESSERA_INTEROP_DIR,
#                           the absolute path of tests/interop
#
# The functions return non-zero with a message on stderr instead of exiting.

_NODE_SH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_NODE_MIN_MAJOR=20
_NODE_MIN_MINOR=12 # crypto.hash, which oidc-provider 9 uses, came in Node.js 20.12

_node_fail() {
    echo "scripts/node.sh: $*" >&2
    return 1
}

_node_usable() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
    local version major minor
    version=$(node -p 'process.versions.node' 2>/dev/null) || return 1
    IFS=. read -r major minor _ <<<"$version"
    [ "$major" -gt "$_NODE_MIN_MAJOR" ] || { [ "$major" -eq "$_NODE_MIN_MAJOR" ] && [ "$minor" -ge "$_NODE_MIN_MINOR" ]; }
}

node_ensure_installed() {
    if ! _node_usable; then
        local -a as_root=()
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
                as_root=(sudo -n)
            else
                _node_fail "node >= $_NODE_MIN_MAJOR.$_NODE_MIN_MINOR and npm are needed for the interop tests, and installing them needs root.
Install Node.js $_NODE_MIN_MAJOR.$_NODE_MIN_MINOR or newer with npm, put both on PATH, then rerun." || return 1
            fi
        fi
        command -v apt-get >/dev/null 2>&1 ||
            { _node_fail "node >= $_NODE_MIN_MAJOR.$_NODE_MIN_MINOR and npm are missing and this is not a Debian system (no apt-get).
Install Node.js $_NODE_MIN_MAJOR.$_NODE_MIN_MINOR or newer with npm, put both on PATH, then rerun." || return 1; }
        echo "== installing nodejs and npm (apt-get)"
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends nodejs npm ||
            {
                DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get update -q &&
                    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends nodejs npm
            } ||
            { _node_fail "apt-get install nodejs npm failed; the interop tests cannot run without them." || return 1; }
        _node_usable || {
            _node_fail "the interop tests need node >= $_NODE_MIN_MAJOR.$_NODE_MIN_MINOR and npm; found node $(node --version 2>/dev/null || echo none), npm $(npm --version 2>/dev/null || echo none).
Debian 12's own nodejs package is 18. Install Node.js $_NODE_MIN_MAJOR.$_NODE_MIN_MINOR or newer (with npm), put it first on PATH, then rerun." || return 1
        }
    fi
    echo "== node $(node --version), npm $(npm --version)"
}

node_install_interop() {
    local dir=$_NODE_SH_ROOT/tests/interop stamp want
    [ -f "$dir/package-lock.json" ] || { _node_fail "$dir/package-lock.json is missing" || return 1; }
    stamp=$dir/node_modules/.tessera-lock-stamp
    want="$(sha256sum <"$dir/package-lock.json" | cut -d' ' -f1) node-$(node -p 'process.versions.modules')"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "== tests/interop: node_modules matches package-lock.json"
    else
        echo "== tests/interop: npm ci"
        (cd "$dir" && npm ci --no-audit --no-fund) </dev/null ||
            { _node_fail "npm ci in tests/interop failed (output above); the interop tests cannot run without it." || return 1; }
        echo "$want" >"$stamp"
    fi
    export TESSERA_INTEROP_DIR=$dir
}
