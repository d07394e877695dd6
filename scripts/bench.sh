#!/usr/bin/env bash
# Tessera against its peers (issue 6): builds the benchmark workspace in benches/peers in release mode, runs
# every comparison on 127.0.0.1, and prints Markdown tables (ratios measured in this same run) on stdout.
# Progress goes to stderr; the report is also written to benches/peers/target/bench-report.md.
#
#   scripts/bench.sh           full run (about 16 minutes on 2 cores, plus the first build)
#   scripts/bench.sh --quick   one short round of everything, for checking the harness (about 3 minutes)
#
# Needs wrk and valgrind (installed with apt-get when missing) and, for pinning, taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h | --help)
            sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "scripts/bench.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

fail() {
    echo "scripts/bench.sh: $*" >&2
    exit 1
}

install_package() { # install_package <debian package>
    local -a as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            fail "$1 is missing and installing it needs root. Install it (Debian: apt-get install $1) and rerun."
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || fail "$1 is missing and this is not a Debian system; install $1 and rerun."
    echo "== installing $1 (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "$1" >&2 ||
        { "${as_root[@]}" apt-get update -q >&2 && "${as_root[@]}" apt-get install -y -q --no-install-recommends "$1" >&2; } ||
        fail "apt-get install $1 failed."
}

command -v wrk >/dev/null 2>&1 || install_package wrk
command -v wrk >/dev/null 2>&1 || fail "wrk is still not on PATH after installing it."
command -v valgrind >/dev/null 2>&1 || install_package valgrind
command -v valgrind >/dev/null 2>&1 || fail "valgrind is still not on PATH after installing it."
# N = 1000 concurrent clients and their server share one process: two sockets each.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || echo "warning: could not raise the open-file limit to 4096" >&2
fi

if [ "$quick" -eq 1 ]; then
    throughput_args=(--rounds 1 --seconds 1 --warmup 0)
    refresh_args=(--rounds 1 --happy-rounds 2 --requests 500)
    criterion_args=(--warm-up-time 0.2 --measurement-time 0.5)
    callgrind_args=(--iterations 20)
    issuer_secs=1
else
    throughput_args=(--rounds 5 --seconds 2 --warmup 1)
    refresh_args=(--rounds 3 --happy-rounds 30 --requests 1000)
    criterion_args=(--warm-up-time 1 --measurement-time 2)
    callgrind_args=(--iterations 200)
    issuer_secs=5
fi

bench_dir="$root/benches/peers"
report="$bench_dir/target/bench-report.md"
peers="$bench_dir/target/release/peers"

echo "== building benches/peers (release)" >&2
(cd "$bench_dir" && cargo build --release --locked --bin peers >&2 &&
    cargo bench --locked --profile release --bench verify --no-run >&2)
mkdir -p "$bench_dir/target"

version() { # version <crate> in benches/peers/Cargo.lock (every version, comma-separated)
    awk -v name="$1" '$1 == "name" && $3 == "\"" name "\"" { getline; gsub(/"/, "", $3); print $3 }' \
        "$bench_dir/Cargo.lock" | paste -sd, -
}

{
    echo "## Run"
    echo
    echo "- Command: \`scripts/bench.sh$([ "$quick" -eq 1 ] && echo ' --quick')\`"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -sr)"
    echo "- Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- Toolchain: $(rustc --version)"
    echo "- Crates: tessera $(version tessera-server), jwt-authorizer $(version jwt-authorizer)," \
        "axum-jwt-auth $(version axum-jwt-auth), jsonwebtoken $(version jsonwebtoken), axum $(version axum)," \
        "aws-lc-rs $(version aws-lc-rs), ring $(version ring), reqwest $(version reqwest)," \
        "reqwest-middleware $(version reqwest-middleware), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo

    echo "## 1. Layer throughput on loopback"
    echo
    (cd "$bench_dir" && "$peers" throughput "${throughput_args[@]}")

    echo "## 2. Per-verify cost"
    echo
    echo "== criterion: benches/peers verify" >&2
    (cd "$bench_dir" && cargo bench --locked --profile release --bench verify -- "${criterion_args[@]}" >&2)
    (cd "$bench_dir" && "$peers" verify-report)

    echo "### Instructions per request (callgrind)"
    echo
    echo "Deterministic, so immune to the machine's noise: each variant's service called in-process (routing," \
        "authentication, the handler; no sockets, no HTTP parsing) under \`valgrind --tool=callgrind\`," \
        "instructions collected inside the request loop only. Valgrind hides AVX-512 and SHA-NI, so crypto" \
        "code runs other paths than natively: read these as relative costs."
    echo
    (cd "$bench_dir" && "$peers" instructions "${callgrind_args[@]}")

    echo "## 3. Client refresh under contention and happy-path overhead"
    echo
    (cd "$bench_dir" && "$peers" refresh --part contention "${refresh_args[@]}")
    # Client and server threads share one CPU for the happy path: on an idle VM a request that has to wake
    # the other core waits ~40 µs each way, which would swamp the few microseconds being compared.
    if command -v taskset >/dev/null 2>&1; then
        echo "Happy path run with client and server pinned together to CPU 1 (\`taskset -c 1\`)."
        echo
        (cd "$bench_dir" && taskset -c 1 "$peers" refresh --part happy "${refresh_args[@]}")
    else
        (cd "$bench_dir" && "$peers" refresh --part happy "${refresh_args[@]}")
    fi

    echo "## 4. Token service"
    echo
    if [ -f crates/tessera-issuer/benches/rotation.rs ]; then
        # The issuer's own benchmark (its owner's code, not duplicated here): each client owns one session
        # and rotates it in a loop through the token endpoint on a file-backed SQLite store.
        echo "== tessera-issuer's rotation benchmark" >&2
        echo "Refresh-token rotations through \`POST /auth/token\` (in-process router, file-backed SQLite," \
            "${issuer_secs} s per row), from \`cargo bench -p tessera-issuer --bench rotation\`:"
        echo
        issuer_table=$(TESSERA_BENCH_SECS=$issuer_secs cargo bench -p tessera-issuer --bench rotation)
        echo "$issuer_table"
        echo
        # The 16-client row of each table: | 16 | rotations | rotations/s | p50 ms | p99 ms | max ms |
        echo "$issuer_table" | awk -F'|' '
            /^[^|]/ && NF { title = $0; sub(/:$/, "", title) }
            $2 + 0 == 16 {
                verdict = ($4 + 0 >= 5000 && $6 + 0 < 20) ? "met" : "**missed**"
                printf "- Bar, >= 5,000 rotations/s at 16 clients, p99 under 20 ms (%s): %d/s, p99 %s ms, %s\n", title, $4, $6 + 0, verdict
            }'
        echo
    else
        echo "Not measured: crates/tessera-issuer/benches/rotation.rs is not in this tree."
    fi
    echo
} | tee "$report"

echo "== report written to $report" >&2
