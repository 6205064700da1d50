#!/usr/bin/env bash
# End-to-end benchmark: builds the gateway, fake-zai and zai2bench in release mode, then runs
# `zai2bench` with the given arguments (see `--help`). Not part of CI.
#
#   ./scripts/bench.sh                       # full run (a few minutes)
#   ./scripts/bench.sh --quick               # under about a minute
#   ./scripts/bench.sh --compare target/bench/old.json
#   ./scripts/bench.sh --soak 30             # 30 minutes of mixed traffic
#   ./scripts/bench.sh --allocators          # builds zai2api-{system,mimalloc,jemalloc} first
#
# The JSON report goes to target/bench/latest.json unless --json PATH is given.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p zai2api -p fake-zai -p zai2bench

for arg in "$@"; do
    if [ "$arg" = "--allocators" ]; then
        # One gateway build per allocator (jemalloc is the crate's default feature).
        for alloc in system mimalloc jemalloc; do
            case "$alloc" in
                system) features=(--no-default-features) ;;
                mimalloc) features=(--no-default-features --features mimalloc) ;;
                jemalloc) features=() ;;
            esac
            cargo build --release -p zai2api "${features[@]}"
            cp target/release/zai2api "target/release/zai2api-$alloc"
        done
        # Leave target/release/zai2api as the default build.
        cargo build --release -p zai2api
    fi
done

# 4k held streams need ~8k descriptors in the gateway; children inherit this limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

json=target/bench/latest.json
prev=""
for arg in "$@"; do
    if [ "$prev" = "--json" ]; then json="$arg"; fi
    case "$arg" in --json=*) json="${arg#--json=}" ;; esac
    prev="$arg"
done

target/release/zai2bench "$@"
echo "bench.sh: JSON report in $json" >&2
