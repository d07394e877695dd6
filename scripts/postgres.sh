# shellcheck shell=bash
# A throwaway PostgreSQL cluster for the test suite. Source this file (scripts/test.sh does), then:
#
#   postgres_ensure_installed   find initdb, pg_ctl and postgres (PATH, then the newest
#                               /usr/lib/postgresql/*/bin); install Debian's postgresql package
#                               with apt-get when they are missing (needs root or sudo -n)
#   postgres_start_throwaway    initdb a cluster in a fresh temp directory, start it on a free port
#                               of 127.0.0.1, create role and database `tessera`, and export
#                                 TESSERA_TEST_POSTGRES_URL=postgres://tessera:tessera@127.0.0.1:PORT/tessera
#                                 TESSERA_TEST_POSTGRES_CTL=<script>  (start|stop|restart|status|kill)
#   postgres_stop_throwaway     stop the cluster and remove its directory (safe to call twice)
#
# By hand:  source scripts/postgres.sh && postgres_ensure_installed && postgres_start_throwaway
#           psql "$TESSERA_TEST_POSTGRES_URL" -c 'select 1'; "$TESSERA_TEST_POSTGRES_CTL" restart
#           postgres_stop_throwaway
#
# The server refuses to run as root, so as root the cluster belongs to the `postgres` OS user (the
# Debian package creates it) and every server command runs through runuser. Authentication is
# `trust`, on loopback only: the password `tessera` is accepted but never checked. The functions
# return non-zero with a message on stderr instead of exiting, so a sourcing shell survives them.
# POSTGRES_LIB_ROOT (default /usr/lib/postgresql) exists for testing the lookup.

_postgres_fail() {
    echo "scripts/postgres.sh: $*" >&2
    return 1
}

# Sets _POSTGRES_BINDIR to a directory holding initdb, pg_ctl and postgres; returns 1 when none does.
_postgres_find_bindir() {
    local dir tool found
    _POSTGRES_BINDIR=
    if found=$(command -v pg_ctl 2>/dev/null); then
        dir=$(dirname "$(readlink -f "$found")")
        if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
            _POSTGRES_BINDIR=$dir
            return 0
        fi
    fi
    # Newest major version first.
    while read -r dir; do
        for tool in initdb pg_ctl postgres; do
            [ -x "$dir/bin/$tool" ] || continue 2
        done
        _POSTGRES_BINDIR=$dir/bin
        return 0
    done < <(printf '%s\n' "${POSTGRES_LIB_ROOT:-/usr/lib/postgresql}"/* | sort -V -r)
    return 1
}

postgres_ensure_installed() {
    if _postgres_find_bindir; then
        echo "== postgresql: using $_POSTGRES_BINDIR"
        return 0
    fi
    local -a as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            _postgres_fail "PostgreSQL (initdb, pg_ctl, postgres) is missing and installing it needs root.
Install it (Debian: apt-get install postgresql), or rerun as root, or export TESSERA_TEST_POSTGRES_URL
to use a database of your own." || return 1
        fi
    fi
    command -v apt-get >/dev/null 2>&1 ||
        { _postgres_fail "PostgreSQL is missing and this is not a Debian system (no apt-get).
Install PostgreSQL so that initdb, pg_ctl and postgres are on PATH, then rerun." || return 1; }
    echo "== installing postgresql (apt-get)"
    # The package may start Debian's own cluster on port 5432; the tests never use it.
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends postgresql ||
        {
            DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get update -q &&
                DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends postgresql
        } ||
        { _postgres_fail "apt-get install postgresql failed; the PostgreSQL tests cannot run without it." || return 1; }
    _postgres_find_bindir ||
        { _postgres_fail "postgresql is installed but initdb/pg_ctl/postgres are still not found (PATH, /usr/lib/postgresql/*/bin)." || return 1; }
    echo "== postgresql: using $_POSTGRES_BINDIR"
}

# A TCP port of 127.0.0.1 that nothing listens on, from the dynamic range. The server itself is the
# final judge: postgres_start_throwaway tries again with another port when binding fails.
_postgres_free_port() {
    local port _
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

postgres_start_throwaway() {
    if [ -n "${_POSTGRES_DIR:-}" ] && [ -x "$_POSTGRES_DIR/ctl" ] && "$_POSTGRES_DIR/ctl" status >/dev/null 2>&1; then
        echo "== postgresql: throwaway cluster already running ($TESSERA_TEST_POSTGRES_URL)"
        return 0
    fi
    postgres_stop_throwaway
    [ -n "${_POSTGRES_BINDIR:-}" ] || _postgres_find_bindir ||
        { _postgres_fail "PostgreSQL is not installed; call postgres_ensure_installed first." || return 1; }

    local dir run_as=""
    # Under /tmp, not $TMPDIR: the postgres user must reach it, and the socket path must stay short.
    dir=$(mktemp -d /tmp/tessera-pg.XXXXXX) || { _postgres_fail "mktemp failed" || return 1; }
    _POSTGRES_DIR=$dir
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 ||
            { _postgres_fail "running as root, but there is no 'postgres' OS user to own the cluster (the server refuses root).
Install Debian's postgresql package (it creates the user), or run the tests as a normal user." || return 1; }
        command -v runuser >/dev/null 2>&1 || { _postgres_fail "runuser (util-linux) is missing" || return 1; }
        chown postgres: "$dir" || { _postgres_fail "chown postgres $dir failed" || return 1; }
        run_as="runuser -u postgres --"
    fi

    # The control script: the cluster's only entry point, for this file and for the Rust tests.
    cat >"$dir/ctl" <<EOF
#!/usr/bin/env bash
# Generated by scripts/postgres.sh: controls the throwaway cluster in $dir.
# Usage: ctl start|stop|restart|status|kill   (all but status wait until done; kill is an
# immediate shutdown, like a crash: no checkpoint, clients cut off)
set -euo pipefail
cd "$dir"
pg_ctl=(${run_as} "$_POSTGRES_BINDIR/pg_ctl" -D "$dir/data")
case "\${1:-}" in
    start) "\${pg_ctl[@]}" -l "$dir/server.log" -w -t 60 start ;;
    stop) "\${pg_ctl[@]}" -m fast -w -t 60 stop ;;
    restart) "\${pg_ctl[@]}" -l "$dir/server.log" -m fast -w -t 60 restart ;;
    status) "\${pg_ctl[@]}" status ;;
    kill) "\${pg_ctl[@]}" -m immediate -w -t 60 stop ;;
    *) echo "usage: \$0 start|stop|restart|status|kill" >&2; exit 2 ;;
esac
EOF
    chmod 755 "$dir/ctl"

    echo "== postgresql: initdb in $dir"
    (cd "$dir" && $run_as "$_POSTGRES_BINDIR/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1) ||
        { cat "$dir/initdb.log" >&2; _postgres_fail "initdb failed (log above)" || return 1; }
    $run_as tee "$dir/data/pg_hba.conf" >/dev/null <<'EOF'
# throwaway test cluster: trust on loopback only
local all all trust
host all all 127.0.0.1/32 trust
EOF
    $run_as tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF

# --- scripts/postgres.sh: a throwaway cluster for tests ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
include_if_exists = 'port.conf'
EOF

    local port attempt
    for attempt in 1 2 3 4 5; do
        port=$(_postgres_free_port) || { _postgres_fail "found no free TCP port on 127.0.0.1" || return 1; }
        echo "port = $port" | $run_as tee "$dir/data/port.conf" >/dev/null
        echo "== postgresql: starting on 127.0.0.1:$port"
        rm -f "$dir/server.log"
        if "$dir/ctl" start >"$dir/start.log" 2>&1; then
            break
        fi
        if [ "$attempt" -eq 5 ] || ! grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null; then
            cat "$dir/start.log" "$dir/server.log" >&2 2>/dev/null
            _postgres_fail "the throwaway PostgreSQL server did not start (logs above)" || return 1
        fi
    done

    local waited=0 pg_isready=$_POSTGRES_BINDIR/pg_isready
    [ -x "$pg_isready" ] || pg_isready=$(command -v pg_isready) || { _postgres_fail "pg_isready not found" || return 1; }
    until "$pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; do
        waited=$((waited + 1))
        [ "$waited" -lt 60 ] || { _postgres_fail "PostgreSQL on port $port did not accept connections within 30 s" || return 1; }
        sleep 0.5
    done

    local psql=$_POSTGRES_BINDIR/psql
    [ -x "$psql" ] || psql=$(command -v psql) || { _postgres_fail "psql not found" || return 1; }
    "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE tessera LOGIN CREATEDB PASSWORD 'tessera'" \
        -c "CREATE DATABASE tessera OWNER tessera" >/dev/null ||
        { _postgres_fail "creating role and database tessera failed" || return 1; }

    export TESSERA_TEST_POSTGRES_URL="postgres://tessera:tessera@127.0.0.1:$port/tessera"
    export TESSERA_TEST_POSTGRES_CTL="$dir/ctl"
    echo "== postgresql: ready, TESSERA_TEST_POSTGRES_URL=$TESSERA_TEST_POSTGRES_URL"
}

postgres_stop_throwaway() {
    local dir=${_POSTGRES_DIR:-}
    [ -n "$dir" ] || return 0
    if [ -d "$dir/data" ] && [ -x "$dir/ctl" ]; then
        echo "== postgresql: stopping the throwaway cluster"
        "$dir/ctl" stop >/dev/null 2>&1 || "$dir/ctl" kill >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    unset _POSTGRES_DIR
    if [ "${TESSERA_TEST_POSTGRES_CTL:-}" = "$dir/ctl" ]; then
        unset TESSERA_TEST_POSTGRES_URL TESSERA_TEST_POSTGRES_CTL
    fi
    return 0
}
