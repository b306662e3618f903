#!/usr/bin/env bash
# run.sh BUILDDIR - runs the criterion suite against BUILDDIR/jobd with a
# redis-server of its own on a free loopback port, in a scratch folder that is
# removed afterwards. With JOBD_ASAN=1 the run also fails on any sanitizer
# report, including those of child processes (jobd, written to log files).
set -euo pipefail

usage() { echo "usage: $0 BUILDDIR (e.g. build or build-asan)" >&2; exit 2; }
[ $# -eq 1 ] || usage
builddir=$(cd "$1" && pwd) || usage
tests_bin="$builddir/tests/jobd_tests"
jobd_bin="$builddir/jobd"
for f in "$tests_bin" "$jobd_bin"; do
    [ -x "$f" ] || { echo "run.sh: $f is missing; build it first" >&2; exit 2; }
done

# The tests read their data files relative to the repository root.
cd "$(dirname "$0")/.."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobd-tests.XXXXXX")
redis_pid=""

# Finds leftovers of crashed tests by PID without touching anybody else's
# processes: jobd children inherit JOBD_TEST_TMP=$tmp, a value unique to this
# run; redis-servers rewrite their environ (process title) but live in a
# folder under $tmp.
is_ours() {
    local cwd
    cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
    case "$cwd/" in "$tmp"/*) return 0 ;; esac
    { tr '\0' '\n' <"/proc/$1/environ" | grep -qxF "JOBD_TEST_TMP=$tmp"; } 2>/dev/null
}

kill_leftovers() {
    local dir pid
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        [ "$pid" = "$$" ] && continue
        if is_ours "$pid"; then
            echo "run.sh: killing leftover process $pid" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local rc=$?
    # the helpers started below (tr, grep) must not carry the marker themselves
    export -n JOBD_TEST_TMP JOBD_TEST_REDIS_PORT JOBD_BIN 2>/dev/null || true
    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    kill_leftovers
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=tests/ports.sh
. tests/ports.sh # the working folder is the repository root (above)

# Starts redis on a free port and waits (5 s) for PING; another port if the
# chosen one was taken in between.
start_redis() {
    local attempt i
    for attempt in 1 2 3; do
        redis_port=$(pick_port)
        redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp" --save '' \
            --appendonly no --daemonize no --logfile "$tmp/redis.log" &
        redis_pid=$!
        for i in $(seq 100); do
            if redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then return 0; fi
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        redis_pid=""
        echo "run.sh: redis-server did not start on port $redis_port (attempt $attempt):" >&2
        tail -5 "$tmp/redis.log" >&2 || true
    done
    return 1
}

# True when every report in the file is a leak whose stack, below the
# allocator, lies wholly inside libcriterion: criterion 2.4.1's runner leaks
# a little after a crashed test, which is none of this project's memory.
criterion_only_leaks() {
    awk '
        /ERROR: AddressSanitizer|runtime error:/ { ours = 1 }
        /^(Direct|Indirect) leak/ { leaks++; inleak = 1; next }
        inleak && /^ *#[0-9]+ / { if ($1 != "#0" && $0 !~ /libcriterion/) ours = 1; next }
        /^$/ { inleak = 0 }
        END { exit (ours || leaks == 0) }
    ' "$1"
}

start_redis

export JOBD_TEST_REDIS_PORT="$redis_port"
export JOBD_BIN="$jobd_bin"
export JOBD_TEST_TMP="$tmp"

if [ "${JOBD_ASAN:-}" = 1 ]; then
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:log_path=$tmp/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$tmp/ubsan"
fi

# Criterion's output goes to the log, and tail shows it live. A pipe to tee
# would wait for every writer: a test's leftover child holding stderr would
# hang the run. tail --pid ends when the test binary does.
# --color=never --encoding=ASCII is what the deprecated --ascii does.
log="$tmp/tests.log"
: >"$log"
set +e
# JOBD_TEST_FILTER (a criterion --filter pattern such as 'api/*') runs part of the suite.
"$tests_bin" --color=never --encoding=ASCII -j2 ${JOBD_TEST_FILTER:+--filter "$JOBD_TEST_FILTER"} 2>>"$log" &
tests_pid=$!
tail -n +1 -s 0.2 -f --pid="$tests_pid" "$log" >&2 &
tail_pid=$!
wait "$tests_pid"
tests_rc=$?
wait "$tail_pid"
set -e

# A sanitizer report makes a process exit 86 (ASAN_OPTIONS). The runner's own leak (see
# criterion_only_leaks) does that to a run whose every test passed; any report
# of ours is caught from the report files below, so only the summary decides.
if [ "${JOBD_ASAN:-}" = 1 ] && [ "$tests_rc" -eq 86 ] &&
    grep -aq 'Failing: 0 | Crashing: 0' "$log"; then
    tests_rc=0
fi

status=0
if [ "$tests_rc" -ne 0 ]; then
    echo "run.sh: the test binary exited with status $tests_rc" >&2
    status=1
fi

if [ "${JOBD_ASAN:-}" = 1 ]; then
    pattern='LeakSanitizer|AddressSanitizer|runtime error:'
    found=0
    while IFS= read -r -d '' r; do
        if criterion_only_leaks "$r"; then
            echo "==== ignored: leaks inside criterion's own runner ($r)" >&2
            continue
        fi
        echo "==== sanitizer report $r" >&2
        cat "$r" >&2
        found=1
    done < <(find "$tmp" -maxdepth 1 -type f \( -name 'asan.*' -o -name 'ubsan.*' \) -print0)
    for f in "$log" "$tmp"/*.log; do
        [ -f "$f" ] || continue
        if grep -Eq "$pattern" "$f"; then
            echo "==== sanitizer output in $f" >&2
            grep -E -A30 "$pattern" "$f" >&2 || true
            found=1
        fi
    done
    if [ "$found" = 1 ]; then
        echo "run.sh: sanitizer reports found (see above)" >&2
        status=1
    fi
fi

if ! grep -aq 'Synthesis:' "$log"; then
    echo "run.sh: the test binary printed no summary (exit $tests_rc)" >&2
elif [ "${JOBD_ASAN:-}" = 1 ]; then
    grep -a 'Synthesis:' "$log" >&2 # after the reports, criterion's summary stays the last word
fi
exit "$status"
