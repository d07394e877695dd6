#!/usr/bin/env bash
# Fuzzes Tessera's attack surface with cargo-fuzz (libFuzzer, nightly Rust).
#
#   fuzz/run.sh                  every target for 600 s (the hardening run)
#   fuzz/run.sh 10               every target for 10 s (what CI does)
#   fuzz/run.sh 300 bearer jwt   the named targets for 300 s each
#
# Seeds (fuzz/seeds/<target>) are regenerated from the harness first; what libFuzzer finds goes to
# fuzz/corpus/<target>, minimised afterwards (commit it: tests/corpus.rs replays seeds and corpus on
# stable Rust in every `cargo test`). A crash leaves its input in fuzz/targets/artifacts/<target>/ and
# fails the run. Needs the nightly toolchain and cargo-fuzz (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(bearer jwt jwks jws token_endpoint challenge dpop_proof)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz/run.sh: the nightly toolchain is missing (rustup toolchain install nightly); cargo-fuzz needs it." >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

echo "== seeds"
cargo run --quiet -p tessera-fuzz --bin write-seeds

echo "== building the targets (nightly, sanitizer)"
cargo +nightly fuzz build --fuzz-dir fuzz/targets

summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    echo "== $target: ${seconds}s"
    log="$(mktemp)"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz/targets "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz/run.sh: $target FAILED; the input is in fuzz/targets/artifacts/$target/" >&2
        exit 1
    fi
    runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1)"
    coverage="$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+')"
    cargo +nightly fuzz cmin --fuzz-dir fuzz/targets "$target" "$corpus" >/dev/null 2>&1
    entries="$(find "$corpus" -type f | wc -l)"
    summary+=("$target: ${runs:-?} executions in ${seconds}s, coverage ${coverage:-?}, corpus $entries entries, no finding")
    rm -f "$log"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
