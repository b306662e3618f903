#!/usr/bin/env bash
# run.sh [BUILDDIR] - `make bench`: jobd against references of the same run,
# over loopback only, with every process of its own started on a free port in
# a temp folder and stopped by PID at the end. Prints one table of results
# and ratios, also written to bench/results/<date>-<commit>.txt.
#
# Needs BUILDDIR/jobd and BUILDDIR/bench/paced (`make bench` builds both),
# redis-server, redis-benchmark, nginx and wrk (installed with apt when
# missing). A row whose part does not work in this tree (a processor not
# there yet, jobd not starting) is printed as n/a with the reason.
#
# Knobs (env): BENCH_DURATION (s per load, default 10), BENCH_CONNS (wrk
# connections, 64), BENCH_WORKERS (jobd workers for end to end, 64),
# BENCH_RATE (paced jobs/s, 1000), BENCH_RESULTS (folder, bench/results;
# empty = do not write), BENCH_ONLY (space-separated row ids to run, e.g. "1 2"),
# BENCH_METRICS_ROUNDS (on/off pairs of row 2m, 4).
set -euo pipefail

usage() { echo "usage: $0 [BUILDDIR]" >&2; exit 2; }
[ $# -le 1 ] || usage
builddir=$(cd "${1:-build}" && pwd) || usage
jobd_bin="$builddir/jobd"
paced_bin="$builddir/bench/paced"
cd "$(dirname "$0")/.."
bench_dir=$(pwd)/bench

duration=${BENCH_DURATION:-10}
conns=${BENCH_CONNS:-64}
workers=${BENCH_WORKERS:-64}
rate=${BENCH_RATE:-1000}
results_dir=${BENCH_RESULTS-bench/results}
only=${BENCH_ONLY:-}
metrics_rounds=${BENCH_METRICS_ROUNDS:-4}
scrape_queues=100        # (8): queues of the jobd whose /metrics is timed
batch_size=1000
batch_conns=8            # batches are 100 KiB each: a few connections fill the pipe
e2e_batch=100            # jobs per POST of the end-to-end load
e2e_backlog=50000        # submitted but unprocessed jobs, at most
rb_requests=2000000      # redis-benchmark: about 2 s at -P 64
paced_lag_max_us=1000    # (6) is "noisy", not judged, when the loader lags more (p99)

# --- processes, cleanup -------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobd-bench.XXXXXX")
pids=()

# Stops pid: TERM, up to grace seconds, then KILL. Our own children only.
stop_pid() {
    local pid=$1 grace=${2:-5} i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}" 15; done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
    local keep=() p
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}

say() { echo "bench: $*" >&2; }

# --- tools --------------------------------------------------------------------

ensure_tools() {
    local missing=() t
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    for t in redis-server redis-cli redis-benchmark wrk curl; do
        command -v "$t" >/dev/null 2>&1 || { say "$t is missing (make deps)"; exit 2; }
    done
    for t in "$jobd_bin" "$paced_bin"; do
        [ -x "$t" ] || { say "$t is missing; run make bench"; exit 2; }
    done
}

nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

# --- ports --------------------------------------------------------------------

# shellcheck source=tests/ports.sh
. tests/ports.sh # the working folder is the repository root (above)

# wait_http URL PID [CODE]: waits up to 10 s for url to answer CODE (200)
# while PID lives. 0 or 1.
wait_http() {
    local url=$1 pid=$2 want=${3:-200}
    for _ in $(seq 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = "$want" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# --- redis --------------------------------------------------------------------

# start_redis NAME aof|none: sets redis_port_NAME and redis_pid_NAME.
start_redis() {
    local name=$1 persist=$2 dir="$tmp/redis-$1" port pid args
    mkdir -p "$dir"
    if [ "$persist" = aof ]; then
        args=(--appendonly yes --appendfsync everysec)
    else
        args=(--appendonly no)
    fi
    for _ in 1 2 3; do
        port=$(pick_port)
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' "${args[@]}" \
            --daemonize no --logfile "$dir/redis.log" &
        pid=$!
        pids+=("$pid")
        for _ in $(seq 100); do
            redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
            sleep 0.05
        done
        if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
            printf -v "redis_port_$name" '%s' "$port"
            printf -v "redis_pid_$name" '%s' "$pid"
            return 0
        fi
        stop_pid "$pid"
        forget_pid "$pid"
    done
    say "redis-server ($name) did not start"; tail -5 "$dir/redis.log" >&2 || true
    return 1
}

# Empties the data set (and the AOF with it), so each row starts alike.
redis_reset() {
    local port=$1
    redis-cli -p "$port" flushall >/dev/null
    if [ "$(redis-cli -p "$port" config get appendonly | tail -1)" = yes ]; then
        redis-cli -p "$port" bgrewriteaof >/dev/null 2>&1 || true
        for _ in $(seq 200); do
            redis-cli -p "$port" info persistence | grep -q '^aof_rewrite_in_progress:0' && break
            sleep 0.05
        done
    fi
}

# --- nginx --------------------------------------------------------------------

# Sets nginx_port and nginx_pid, or returns 1.
start_nginx() {
    local dir="$tmp/nginx"
    mkdir -p "$dir"
    nginx_port=$(pick_port)
    sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$nginx_port|g" "$bench_dir/nginx.conf" >"$dir/nginx.conf"
    "$(nginx_bin)" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>>"$dir/error.log" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    wait_http "http://127.0.0.1:$nginx_port/" "$nginx_pid" 202 && return 0
    why="nginx did not start: $(tail -1 "$dir/error.log" 2>/dev/null)"
    return 1
}

# --- jobd ---------------------------------------------------------------------

# Queue definitions of the bench config, by name.
queue_json() {
    case $1 in
    default | e2e) echo '{"enqueue": ["aggregate"], "dequeue": ["redis"]}' ;;
    buffered) echo '{"enqueue": [{"name": "aggregate", "ack": "buffered"}], "dequeue": ["redis"]}' ;;
    plain) echo '{"dequeue": ["redis"]}' ;;
    inline | e2e_inline) echo '{"dequeue": [{"name": "inline", "max_jobs": 100000000}]}' ;;
    *) say "unknown queue $1"; exit 2 ;;
    esac
}

# start_jobd QUEUE REDIS_PORT WORKERS [HOOK_PORT]: a fresh jobd (so its peak
# RSS is this row's) with that one queue. Sets jobd_port, jobd_pid; or
# returns 1 with the reason in $why. $jobd_extra (config keys with a
# trailing comma) and $jobd_queues (the whole "queues" object, QUEUE among
# them) change the config when set.
start_jobd() {
    local q=$1 rport=$2 nworkers=$3 hook=${4:-9} cfg="$tmp/jobd-$1.json" log="$tmp/jobd-$1.log"
    local code queues
    queues=${jobd_queues:-"{\"$q\": $(queue_json "$q")}"}
    jobd_port=$(pick_port)
    cat >"$cfg" <<EOF
{
  "listen": "127.0.0.1:$jobd_port",
  "http_threads": 2,
  "workers": $nworkers,
  "redis": {"url": "redis://127.0.0.1:$rport/0", "prefix": "bench"},
  "shutdown_timeout": 10,
  ${jobd_extra:-}
  "queues": $queues,
  "handlers": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:$hook/hook", "timeout": 5}}
}
EOF
    "$jobd_bin" --config "$cfg" 2>"$log" &
    jobd_pid=$!
    pids+=("$jobd_pid")
    if ! wait_http "http://127.0.0.1:$jobd_port/readyz" "$jobd_pid"; then
        why="jobd did not start: $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-120)"
        stop_jobd
        return 1
    fi
    # One job through the whole submit path: the row is n/a unless it is taken.
    code=$(curl -s -o "$tmp/probe.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data '{"type":"noop"}' "http://127.0.0.1:$jobd_port/queues/$q/jobs" || true)
    if [ "$code" != 202 ]; then
        why="queue $q answered $code to a job: $(head -c 120 "$tmp/probe.json" 2>/dev/null)"
        stop_jobd
        return 1
    fi
    return 0
}

# Peak RSS (VmHWM) of the running jobd in MiB.
jobd_peak_mib() {
    awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$jobd_pid/status" 2>/dev/null || echo "?"
}

stop_jobd() {
    [ -n "${jobd_pid:-}" ] || return 0
    stop_pid "$jobd_pid" 15
    forget_pid "$jobd_pid"
    jobd_pid=""
}

# A count of the queue's view ("enqueued", "processed_total", ...), or -1.
queue_number() {
    local v
    v=$(curl -s "http://127.0.0.1:$jobd_port/queues/$1" | grep -o "\"$2\": *[0-9]*" | grep -o '[0-9]*$')
    echo "${v:--1}"
}

# --- CPU use --------------------------------------------------------------------

now_s() { date +%s.%N; }

# CPU ticks (user + system) used so far by the given pids together.
cpu_ticks() {
    local sum=0 stat f pid
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) } # after "pid (comm) ": state is field 1, utime 12, stime 13
        read -r -a f <<<"$stat"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}

# cores TICKS0 WALL0 PID...: the cores those pids used on average since then.
cores() {
    local t0=$1 w0=$2
    shift 2
    awk -v a="$t0" -v b="$(cpu_ticks "$@")" -v hz="$(getconf CLK_TCK)" -v w0="$w0" \
        -v w1="$(now_s)" 'BEGIN {printf "%.2f", (b - a) / hz / (w1 - w0)}'
}

# --- loads --------------------------------------------------------------------

# run_wrk URL BATCH CONNS: sets w_requests, w_secs, w_errors, w_p50, w_p99 (us), w_body.
run_wrk() {
    local url=$1 batch=$2 c=$3 line
    line=$(BENCH_BATCH=$batch timeout -k 5 $((duration + 30)) \
        wrk -t2 -c"$c" -d"${duration}s" --latency -s "$bench_dir/post.lua" "$url" | grep '^wrk ') ||
        return 1
    w_requests=$(kv "$line" requests)
    w_secs=$(awk -v us="$(kv "$line" duration_us)" 'BEGIN {printf "%.3f", us / 1e6}')
    w_errors=$(($(kv "$line" status_errors) + $(kv "$line" socket_errors)))
    w_p50=$(kv "$line" p50_us)
    w_p99=$(kv "$line" p99_us)
    w_body=$(kv "$line" body_bytes)
}

# kv "a=1 b=2" b -> 2
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }

calc() { awk "BEGIN {printf \"$1\", $2}"; }

# --- the table ----------------------------------------------------------------

rows="$tmp/rows"
: >"$rows"
declare -A val # results by key, for ratios and the summary

# row ID WHAT JOBS_S P50 P99 RATIO TARGET VERDICT NOTE: one line of $rows.
# Fields are split by US (0x1f): unlike a tab, it keeps empty fields apart.
row() {
    local IFS=$'\x1f'
    echo "$*" >>"$rows"
    say "row $1: $2: ${3} jobs/s ${4:+p50 $4} ${5:+p99 $5} ${6:+ratio $6} ${9:+($9)}"
}

na() { row "$1" "$2" n/a "" "" "" "${3:-}" "" "$why"; }

us_ms() { [ -n "$1" ] && [ "$1" != -1 ] && calc '%.2fms' "$1 / 1000" || echo ""; }

# ok/MISSED for value OP bound (ge or le)
verdict() {
    awk -v v="$1" -v b="$3" -v op="$2" 'BEGIN {
        ok = (op == "ge") ? (v + 0 >= b + 0) : (v + 0 <= b + 0); print ok ? "ok" : "MISSED" }'
}

wants() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }

# --- the rows -----------------------------------------------------------------

job_url() { echo "http://127.0.0.1:$jobd_port/queues/$1/jobs"; }

row_nginx() {
    why=""
    local workers_pids t0 w0
    if start_nginx; then
        mapfile -t workers_pids < <(pgrep -P "$nginx_pid")
        t0=$(cpu_ticks "$nginx_pid" "${workers_pids[@]}")
        w0=$(now_s)
    fi
    if [ -z "${t0:-}" ] || ! run_wrk "http://127.0.0.1:$nginx_port/queues/default/jobs" 0 "$conns"; then
        why=${why:-"wrk failed"}
        na 1 "nginx: fixed 202 (ceiling)"
    else
        val[nginx]=$(calc '%.0f' "($w_requests - $w_errors) / $w_secs")
        row 1 "nginx: fixed 202 (ceiling)" "${val[nginx]}" "$(us_ms "$w_p50")" "$(us_ms "$w_p99")" \
            "1.00" "" "" "job body $w_body B, cpu: nginx $(cores "$t0" "$w0" "$nginx_pid" "${workers_pids[@]}")"
    fi
    [ -n "${nginx_pid:-}" ] && { stop_pid "$nginx_pid"; forget_pid "$nginx_pid"; }
    return 0
}

# row_submit ID KEY QUEUE REDIS WHAT [TARGET]: single-job POSTs under wrk.
row_submit() {
    local id=$1 key=$2 q=$3 rname=$4 what=$5 target=${6:-} rport rpid stored accepted note
    local ratio="" verdict="" t0 r0 w0
    rport=$(eval echo "\$redis_port_$rname")
    rpid=$(eval echo "\$redis_pid_$rname")
    redis_reset "$rport"
    why=""
    if ! start_jobd "$q" "$rport" 0; then na "$id" "$what" "$target"; return 0; fi
    t0=$(cpu_ticks "$jobd_pid") r0=$(cpu_ticks "$rpid") w0=$(now_s)
    if ! run_wrk "$(job_url "$q")" 0 "$conns"; then
        why="wrk failed"; stop_jobd; na "$id" "$what" "$target"; return 0
    fi
    val[$key]=$(calc '%.0f' "($w_requests - $w_errors) / $w_secs")
    val[rss_$key]=$(jobd_peak_mib)
    accepted=$((w_requests - w_errors + 1)) # + the probe
    note="cpu: jobd $(cores "$t0" "$w0" "$jobd_pid"), redis $(cores "$r0" "$w0" "$rpid")"
    note="$note; answers >= 400: $w_errors; peak RSS ${val[rss_$key]} MiB"
    if [ "$q" != inline ]; then
        # Every 202 must be stored (buffered: once the buffer drained).
        for _ in $(seq 100); do
            stored=$(queue_number "$q" enqueued)
            [ "$stored" -ge "$accepted" ] && break
            sleep 0.05
        done
        [ "$stored" -ge "$accepted" ] || note="$note, LOST: $stored stored of $accepted answered 202"
    fi
    stop_jobd
    if [ -n "${val[nginx]:-}" ]; then
        ratio=$(calc '%.2f' "${val[$key]} / ${val[nginx]}")
        [ -n "$target" ] && verdict=$(verdict "$ratio" ge 0.6)
    fi
    row "$id" "$what" "${val[$key]}" "$(us_ms "$w_p50")" "$(us_ms "$w_p99")" \
        "${ratio:+$ratio x (1)}" "$target" "$verdict" "$note"
}

# median of the numbers given as arguments
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# wrk_to URL FILE: the wrk load of row 2 with half the connections, its
# machine-readable line into FILE (for two loads at once).
wrk_to() {
    BENCH_BATCH=0 timeout -k 5 $((duration + 30)) wrk -t1 -c$((conns / 2)) -d"${duration}s" \
        --latency -s "$bench_dir/post.lua" "$1" | grep '^wrk ' >"$2" || true
}

# jobs/s of a wrk line in FILE (answers >= 400 left out), or 0.
wrk_rate() {
    local line
    line=$(cat "$1")
    [ -n "$line" ] || { echo 0; return; }
    calc '%.0f' "($(kv "$line" requests) - $(kv "$line" status_errors) - $(kv "$line" socket_errors)) / ($(kv "$line" duration_us) / 1e6)"
}

# row_metrics ID: what the metrics cost row 2. Two jobd on the default queue
# of the same Redis, one with metrics and one with metrics.enabled false, each
# loaded by its own wrk with half of row 2's connections, at the same time:
# whatever else the machine does then hits both alike (one after the other,
# the drift of a shared 2-core machine between two runs is larger than the
# difference sought). metrics_rounds rounds, the start order swapped each
# round; medians of each one's jobs/s and of its CPU time per job.
row_metrics() {
    local id=$1 what="  same, metrics on vs off (side by side)" i first mode t_on t_off
    local on=() off=() cpu_on=() cpu_off=() port_on pid_on port_off pid_off w1 w2 ratio cpu_ratio
    for ((i = 1; i <= metrics_rounds; i++)); do
        redis_reset "$redis_port_aof"
        why=""
        pid_on="" pid_off=""
        first=$( ((i % 2)) && echo on || echo off)
        for mode in $first $([ "$first" = on ] && echo off || echo on); do
            jobd_extra=""
            [ "$mode" = off ] && jobd_extra='"metrics": {"enabled": false},'
            if ! start_jobd default "$redis_port_aof" 0; then
                jobd_extra=""
                for jobd_pid in $pid_on $pid_off; do stop_jobd; done
                na "$id" "$what" ">= 0.97 x off"
                return 0
            fi
            printf -v "port_$mode" '%s' "$jobd_port"
            printf -v "pid_$mode" '%s' "$jobd_pid"
        done
        jobd_extra=""
        t_on=$(cpu_ticks "$pid_on") t_off=$(cpu_ticks "$pid_off")
        wrk_to "http://127.0.0.1:$port_on/queues/default/jobs" "$tmp/wrk-on" &
        w1=$!
        wrk_to "http://127.0.0.1:$port_off/queues/default/jobs" "$tmp/wrk-off" &
        w2=$!
        wait "$w1" "$w2" || true
        t_on=$(($(cpu_ticks "$pid_on") - t_on)) t_off=$(($(cpu_ticks "$pid_off") - t_off))
        for jobd_pid in $pid_on $pid_off; do stop_jobd; done
        on+=("$(wrk_rate "$tmp/wrk-on")") off+=("$(wrk_rate "$tmp/wrk-off")")
        cpu_on+=("$(calc '%.2f' "$t_on * 1e6 / $(getconf CLK_TCK) / (${on[-1]} * $duration + 1)")")
        cpu_off+=("$(calc '%.2f' "$t_off * 1e6 / $(getconf CLK_TCK) / (${off[-1]} * $duration + 1)")")
        say "round $i: metrics on ${on[-1]} jobs/s (cpu ${cpu_on[-1]} us/job), off ${off[-1]} jobs/s (cpu ${cpu_off[-1]} us/job)"
    done
    ratio=$(calc '%.3f' "$(median "${on[@]}") / $(median "${off[@]}")")
    cpu_ratio=$(calc '%.3f' "$(median "${cpu_on[@]}") / $(median "${cpu_off[@]}")")
    row "$id" "$what" "$(median "${on[@]}")" "" "" "$ratio x off" ">= 0.97 x off" \
        "$(verdict "$ratio" ge 0.97)" \
        "metrics off: $(median "${off[@]}") jobs/s; jobd cpu/job on/off: $(median "${cpu_on[@]}")/$(median "${cpu_off[@]}") us = $cpu_ratio; medians of $metrics_rounds rounds (on: ${on[*]}; off: ${off[*]})"
}

# row_scrape ID: GET /metrics of a jobd with scrape_queues Redis queues,
# a job in each: a scrape that reads the store gauges (one Redis call for
# every queue; 1.1 s apart, so the 1 s cache has expired) and one served
# from the cache, each timed by curl (connection included).
row_scrape() {
    local id=$1 what="GET /metrics, $scrape_queues redis queues" i t queues miss=() hit=()
    local url max_miss hit_p50 size
    queues="{\"plain\": $(queue_json plain)"
    for ((i = 1; i < scrape_queues; i++)); do queues="$queues, \"q$i\": $(queue_json plain)"; done
    queues="$queues}"
    redis_reset "$redis_port_none"
    why=""
    jobd_queues=$queues
    if ! start_jobd plain "$redis_port_none" 0; then jobd_queues=""; na "$id" "$what" "<= 10 ms"; return 0; fi
    jobd_queues=""
    for ((i = 1; i < scrape_queues; i++)); do
        curl -s -o /dev/null -H 'Content-Type: application/json' --data '{"type":"noop"}' \
            "$(job_url "q$i")" || true
    done
    url="http://127.0.0.1:$jobd_port/metrics"
    for ((i = 0; i < 10; i++)); do
        sleep 1.1
        miss+=("$(curl -s -o "$tmp/scrape.txt" -w '%{time_total}' "$url")")
        hit+=("$(curl -s -o /dev/null -w '%{time_total}' "$url")")
    done
    size=$(wc -c <"$tmp/scrape.txt")
    if ! grep -q "^jobd_queue_jobs{queue=\"q$((scrape_queues - 1))\",state=\"enqueued\"} 1" "$tmp/scrape.txt"; then
        why="the scrape lacks the last queue's gauges"; stop_jobd; na "$id" "$what" "<= 10 ms"; return 0
    fi
    stop_jobd
    max_miss=$(printf '%s\n' "${miss[@]}" | sort -g | tail -1)
    hit_p50=$(printf '%s\n' "${hit[@]}" | sort -g | sed -n 5p)
    row "$id" "$what" "" "$(calc '%.2fms' "$(printf '%s\n' "${miss[@]}" | sort -g | sed -n 5p) * 1000")" \
        "$(calc '%.2fms' "$max_miss * 1000")" "" "<= 10 ms" "$(verdict "$max_miss" le 0.010)" \
        "store read (cache miss): p50/max of 10; cached: p50 $(calc '%.2fms' "$hit_p50 * 1000"); $size bytes"
}

row_redis_benchmark() {
    local line
    redis_reset "$redis_port_aof"
    line=$(timeout -k 5 120 redis-benchmark -h 127.0.0.1 -p "$redis_port_aof" --dbnum 1 -t lpush \
        -P 64 -n "$rb_requests" --csv 2>/dev/null | grep -i '^"LPUSH"' || true)
    val[rb]=$(cut -d, -f2 <<<"$line" | tr -d '"' | cut -d. -f1)
    if [ -z "${val[rb]}" ]; then
        why="redis-benchmark failed"; na 4r "redis-benchmark -t lpush -P 64"
        return 0
    fi
    row 4r "redis-benchmark -t lpush -P 64 (AOF)" "${val[rb]}" "" "" "" "" "" \
        "$rb_requests LPUSH, 50 clients"
    redis-cli -p "$redis_port_aof" -n 1 flushdb >/dev/null
}

# row_batch ID KEY QUEUE WHAT [TARGET]: batch POSTs of $batch_size jobs.
row_batch() {
    local id=$1 key=$2 q=$3 what=$4 target=${5:-} ratio="" verdict="" t0 r0 w0 cpu
    redis_reset "$redis_port_aof"
    why=""
    if ! start_jobd "$q" "$redis_port_aof" 0; then na "$id" "$what" "$target"; return 0; fi
    t0=$(cpu_ticks "$jobd_pid") r0=$(cpu_ticks "$redis_pid_aof") w0=$(now_s)
    if ! run_wrk "$(job_url "$q")" "$batch_size" "$batch_conns"; then
        why="wrk failed"; stop_jobd; na "$id" "$what" "$target"; return 0
    fi
    cpu="cpu: jobd $(cores "$t0" "$w0" "$jobd_pid"), redis $(cores "$r0" "$w0" "$redis_pid_aof")"
    stop_jobd
    val[$key]=$(calc '%.0f' "($w_requests - $w_errors) * $batch_size / $w_secs")
    if [ -n "${val[rb]:-}" ]; then
        ratio=$(calc '%.2f' "${val[$key]} / ${val[rb]}")
        [ -n "$target" ] && verdict=$(verdict "$ratio" ge 0.15)
    fi
    row "$id" "$what" "${val[$key]}" "$(us_ms "$w_p50")" "$(us_ms "$w_p99")" \
        "${ratio:+$ratio x (4r)}" "$target" "$verdict" \
        "$cpu; $batch_conns conns, latency per batch; answers >= 400: $w_errors"
}

# row_e2e ID KEY QUEUE WHAT [TARGET]: 1 ms sleep jobs through jobd's own workers.
row_e2e() {
    local id=$1 key=$2 q=$3 what=$4 target=${5:-} line verdict="" t0 r0 w0 cpu
    redis_reset "$redis_port_aof"
    why=""
    if ! start_jobd "$q" "$redis_port_aof" "$workers"; then na "$id" "$what" "$target"; return 0; fi
    t0=$(cpu_ticks "$jobd_pid") r0=$(cpu_ticks "$redis_pid_aof") w0=$(now_s)
    line=$(timeout -k 5 $((duration + 200)) "$paced_bin" drain --url "$(job_url "$q")" \
        --queue-url "http://127.0.0.1:$jobd_port/queues/$q" --duration "$duration" \
        --batch "$e2e_batch" --backlog "$e2e_backlog" --slots 8 --deadline 180 --sleep-ms 1 || true)
    val[rss_$key]=$(jobd_peak_mib)
    cpu="cpu: jobd $(cores "$t0" "$w0" "$jobd_pid"), redis $(cores "$r0" "$w0" "$redis_pid_aof")"
    stop_jobd
    if [ -z "$line" ]; then why="paced drain failed"; na "$id" "$what" "$target"; return 0; fi
    val[$key]=$(kv "$line" jobs_per_s | cut -d. -f1)
    [ -n "$target" ] && verdict=$(verdict "${val[$key]}" ge 25000)
    local complete=""
    [ "$(kv "$line" complete)" = 1 ] || complete=", INCOMPLETE: $(kv "$line" processed) ran"
    row "$id" "$what" "${val[$key]}" "" "" "" "$target" "$verdict" \
        "$(kv "$line" accepted) jobs in $(kv "$line" total_s) s (submitting $(kv "$line" submit_s) s); $cpu; peak RSS ${val[rss_$key]} MiB$complete"
}

# row_paced ID QUEUE WHAT: submit->start latency at a fixed rate.
row_paced() {
    local id=$1 q=$2 what=$3 hook line verdict=""
    redis_reset "$redis_port_aof"
    why=""
    hook=$(pick_port)
    if ! start_jobd "$q" "$redis_port_aof" "$workers" "$hook"; then
        na "$id" "$what" "p99 <= 2ms"; return 0
    fi
    line=$(timeout -k 5 $((duration + 60)) "$paced_bin" rate --url "$(job_url "$q")" \
        --rate "$rate" --duration "$duration" --hook-port "$hook" --slots 256 || true)
    stop_jobd
    if [ -z "$line" ] || [ "$(kv "$line" started)" = 0 ]; then
        why="paced rate failed: ${line:-no output}"; na "$id" "$what" "p99 <= 2ms"; return 0
    fi
    val[start_p99]=$(kv "$line" start_p99_us)
    verdict=$(verdict "${val[start_p99]}" le 2000)
    # The loader itself late by more than the target: the machine was busy
    # with something else, and the latencies say little about jobd.
    [ "$(verdict "$(kv "$line" late_p99_us)" le "$paced_lag_max_us")" = ok ] || verdict=noisy
    row "$id" "$what" "$(kv "$line" rate | cut -d. -f1)" "$(us_ms "$(kv "$line" start_p50_us)")" \
        "$(us_ms "${val[start_p99]}")" "" "p99 <= 2ms" "$verdict" \
        "submit->202 p50/p99 $(us_ms "$(kv "$line" ack_p50_us)")/$(us_ms "$(kv "$line" ack_p99_us)"), started $(kv "$line" started)/$(kv "$line" sent), errors $(kv "$line" errors), send lag p99 $(us_ms "$(kv "$line" late_p99_us)")"
}

row_rss() {
    local a=${val[rss_default]:-} b=${val[rss_e2e]:-} peak verdict=""
    if [ -z "$a" ] && [ -z "$b" ]; then
        why="rows 2 and 5 did not run"; na 7 "peak RSS of jobd during (2) / (5)" "<= 64 MiB"
        return 0
    fi
    peak=$(printf '%s\n%s\n' "${a:-0}" "${b:-0}" | sort -g | tail -1)
    verdict=$(verdict "$peak" le 64)
    row 7 "peak RSS of jobd during (2) / (5)" "" "" "" "" "<= 64 MiB" "$verdict" \
        "${a:-n/a} MiB / ${b:-n/a} MiB (VmHWM)"
}

# --- report -------------------------------------------------------------------

header() {
    local commit dirty=""
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
    git diff --quiet HEAD -- server handlers queues 2>/dev/null ||
        dirty=" + uncommitted changes in server/ handlers/ queues/"
    echo "jobd benchmark $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty"
    echo "load average at start: $load_at_start (other work on the machine skews every row; ratios less)"
    echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), shared by load generator, redis and jobd"
    echo "versions: $(redis-server --version | grep -o 'v=[0-9.]*' | tr -d v=) redis," \
        "$("$(nginx_bin)" -v 2>&1 | grep -o '[0-9.]*$') nginx, $(wrk -v 2>&1 | grep -o '^wrk [^ ]*' | cut -d' ' -f2 | sed 's|.*/||') wrk, $(curl-config --version 2>/dev/null | cut -d' ' -f2) libcurl"
    echo "load: wrk -t2 -c$conns -d${duration}s, one ~100-byte job per POST; redis AOF appendfsync everysec unless said; jobd http_threads 2, workers 0 for submit rows, $workers for (5)/(6)"
    echo
}

table() {
    printf '%-3s %-46s %9s %8s %8s %-14s %-14s %-6s %s\n' \
        '#' 'what' 'jobs/s' 'p50' 'p99' 'ratio' 'target' '' 'notes'
    while IFS=$'\x1f' read -r id what jobs p50 p99 ratio target verdict note; do
        printf '%-3s %-46s %9s %8s %8s %-14s %-14s %-6s %s\n' \
            "$id" "$what" "$jobs" "$p50" "$p99" "$ratio" "$target" "$verdict" "$note"
    done <"$rows"
}

gains() {
    local p=${val[plain]:-}
    echo
    if [ -n "$p" ] && [ "$p" != 0 ]; then
        echo "group commit: default (durable) = $(calc '%.2f' "${val[default]:-0} / $p") x plain," \
            "buffered = $(calc '%.2f' "${val[buffered]:-0} / $p") x plain (n/a rows count as 0)"
    else
        echo "group commit: n/a (the plain redis row did not run)"
    fi
    if [ -n "${val[default]:-}" ] && [ -n "${val[default_nopersist]:-}" ]; then
        echo "persistence: AOF everysec costs $(calc '%.0f' "100 * (1 - ${val[default]} / ${val[default_nopersist]})")% of (2)"
    fi
    echo "latencies are per request (wrk --latency; paced: from send to 202 / to the webhook reaching the loader)"
}

main() {
    ensure_tools
    start_redis aof aof
    start_redis none none
    local started
    started=$(date +%s)
    load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
    header >"$tmp/header" # the tree as built, before anyone commits during the run
    wants 1 && row_nginx
    if wants 2; then
        row_submit 2 default default aof "default: aggregate durable -> redis" ">= 0.6 x (1)"
        row_submit 2n default_nopersist default none "  same, redis without persistence"
    fi
    if wants 2m; then
        row_metrics 2m
    fi
    if wants 3; then
        row_submit 3b buffered buffered aof "buffered: aggregate ack buffered -> redis"
        row_submit 3p plain plain aof "plain: redis only (no aggregate)"
        row_submit 3i inline inline aof "inline: memory only (comparison)"
    fi
    if wants 4; then
        row_redis_benchmark
        row_batch 4 batch default "batch POSTs of $batch_size -> default" ">= 0.15 x (4r)"
        row_batch 4p batch_plain plain "batch POSTs of $batch_size -> plain"
    fi
    if wants 5; then
        row_e2e 5 e2e e2e "end to end: 1 ms sleep jobs, aggregate -> redis" ">= 25000"
        row_e2e 5i e2e_inline e2e_inline "end to end: 1 ms sleep jobs, inline"
    fi
    wants 6 && row_paced 6 e2e "paced ${rate}/s: submit -> start (redis)"
    wants 7 && row_rss
    wants 8 && row_scrape 8
    {
        cat "$tmp/header"
        table
        gains
        echo "run took $(($(date +%s) - started)) s"
    } >"$tmp/report"
    cat "$tmp/report"
    if [ -n "$results_dir" ]; then
        mkdir -p "$results_dir"
        local out
        # One file per day and commit: a later run does not overwrite an earlier one.
        out="$results_dir/$(date -u +%F)-$(git rev-parse --short HEAD 2>/dev/null || echo unknown).txt"
        cp "$tmp/report" "$out.tmp" && mv "$out.tmp" "$out"
        say "written to $out"
    fi
}

main
