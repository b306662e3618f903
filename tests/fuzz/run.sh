#!/usr/bin/env bash
# run.sh BUILDDIR SECONDS JOBS TARGET... - runs each libFuzzer target of
# BUILDDIR/fuzz/ for SECONDS, JOBS at a time, from a working corpus in
# BUILDDIR/fuzz-corpus/<target>/ (new inputs go there) and the seeds of
# tests/fuzz/corpus/<target>/. A crash fails the run; its input is left in
# BUILDDIR/fuzz-artifacts/<target>/ - once fixed, keep it as a regression
# input in tests/fuzz/regressions/<target>/ (make test replays those).
set -euo pipefail

[ $# -ge 4 ] || { echo "usage: $0 BUILDDIR SECONDS JOBS TARGET..." >&2; exit 2; }
cd "$(dirname "$0")/../.."
build=$1 seconds=$2 jobs=$3
shift 3

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# One target: its log in BUILDDIR/fuzz-logs/<target>.log, status 0 = no crash.
run_one() {
    local t=$1 dict=()
    mkdir -p "$build/fuzz-corpus/$t" "$build/fuzz-artifacts/$t" "$build/fuzz-logs"
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$build/fuzz-artifacts/$t/" \
        "$build/fuzz-corpus/$t" "tests/fuzz/corpus/$t" >"$build/fuzz-logs/$t.log" 2>&1
}

# The figures of a finished target's log, on one line.
summary() {
    local t=$1 log="$build/fuzz-logs/$1.log" runs cov corpus
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(find "$build/fuzz-corpus/$t" -type f | wc -l)
    echo "fuzz $t: ${runs:-?} runs in ${seconds} s, ${cov:-?} edges covered, ${corpus} inputs in its corpus"
}

start=$(date +%s)
declare -A pid_of=()
failed=()
for t in "$@"; do
    [ -x "$build/fuzz/fuzz_$t" ] || { echo "run.sh: $build/fuzz/fuzz_$t is missing" >&2; exit 2; }
done
pending=("$@")
while [ ${#pending[@]} -gt 0 ] || [ ${#pid_of[@]} -gt 0 ]; do
    while [ ${#pending[@]} -gt 0 ] && [ ${#pid_of[@]} -lt "$jobs" ]; do
        t=${pending[0]}
        pending=("${pending[@]:1}")
        run_one "$t" &
        pid_of[$t]=$!
    done
    wait -n || true
    for t in "${!pid_of[@]}"; do
        kill -0 "${pid_of[$t]}" 2>/dev/null && continue
        if wait "${pid_of[$t]}"; then
            summary "$t"
        else
            failed+=("$t")
            echo "fuzz $t: FAILED (log $build/fuzz-logs/$t.log)" >&2
            grep -E -A25 'ERROR: |runtime error|fuzz property broken|deadly signal' \
                "$build/fuzz-logs/$t.log" | head -60 >&2 || true
            ls "$build/fuzz-artifacts/$t/" >&2 || true
        fi
        unset "pid_of[$t]"
    done
done
elapsed=$(( $(date +%s) - start ))
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} of $# targets crashed (${failed[*]}) in ${elapsed} s" >&2
    exit 1
fi
echo "fuzz: $# targets, ${seconds} s each, no crash, ${elapsed} s in all"
