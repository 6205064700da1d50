#!/usr/bin/env bash
# Fuzzes the gateway's parsers and stream state machines (issue 12), each cargo-fuzz target for a
# bounded time. Not part of CI: it needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). The invariants live in fuzz/checks/; CI replays them on stable over
# the seeds and regressions (crates/zai2api/tests/it/fuzz_regressions.rs).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s each, every target
#
# Reads the committed seeds fuzz/seeds/<target>/ and keeps the corpus it grows in
# fuzz/corpus/<target>/ (ignored by git). Any crash, timeout, out-of-memory or leak input is moved
# from fuzz/artifacts/<target>/ to fuzz/regressions/<target>/: minimise it
# (`cargo +nightly fuzz tmin -O -a <target> <file>`), fix the bug, and commit the file so the
# regression test keeps it fixed. Exits 1 if anything was found.
# Environment: FUZZ_RSS_LIMIT_MB (default 2048), FUZZ_MAX_LEN (input bytes, default 16384),
# FUZZ_TIMEOUT (seconds one input may take, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[ $# -gt 0 ] && shift
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
all=(sse transcript tool_args profile)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "unknown target $t (targets: ${all[*]})" >&2
        exit 2
    fi
done
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

rss=${FUZZ_RSS_LIMIT_MB:-2048}
max_len=${FUZZ_MAX_LEN:-16384}
timeout=${FUZZ_TIMEOUT:-10}
# Release code with debug assertions and overflow checks: an overflow is a finding too.
build=(-O --debug-assertions)

found=0
summary=()
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    artifacts=fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts" "fuzz/regressions/$t"
    log=$artifacts/fuzz.log
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
    echo "== $t: building"
    cargo +nightly fuzz build "${build[@]}" "$t"
    echo "== $t: ${seconds}s"
    status=0
    cargo +nightly fuzz run "${build[@]}" "$t" "$corpus" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss" \
        -max_len="$max_len" -timeout="$timeout" "${dict[@]}" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    new=0
    for f in "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/oom-* "$artifacts"/leak-*; do
        [ -e "$f" ] || continue
        # Moved, so the next run reports only its own findings; an input already kept (under
        # any name) is not kept twice.
        dest=fuzz/regressions/$t/$(basename "$f")
        known=0
        for k in fuzz/regressions/"$t"/*; do
            [ -f "$k" ] && cmp -s "$f" "$k" && known=1 && break
        done
        if [ "$known" -eq 0 ]; then
            cp "$f" "$dest"
            echo "   kept $dest"
            new=$((new + 1))
        fi
        rm -f "$f"
    done
    if [ "$status" -ne 0 ] || [ "$new" -gt 0 ]; then
        found=1
        echo "   libFuzzer exited with $status; the log is $log"
        grep -m1 -A12 -E "panicked at|ERROR: libFuzzer|==ERROR" "$log" | sed 's/^/   /' || true
    fi
    summary+=("$(printf '%-11s %10s runs %8s exec/s  peak %5s MB  corpus %5s  new findings %s' \
        "$t" "${execs:-?}" "${rate:-?}" "${peak:-?}" "$(find "$corpus" -type f | wc -l)" "$new")")
done

echo "== summary (${seconds}s a target)"
printf '%s\n' "${summary[@]}"
exit "$found"
