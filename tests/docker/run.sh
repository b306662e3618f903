#!/usr/bin/env bash
# tests/docker/run.sh - `make docker-test`: docker/docker-compose.yml, exactly
# as shipped, against a real Docker daemon of this script's own.
#
# No registry is reachable where this runs, so the script makes what it needs:
# - a private dockerd (Debian's docker.io): data and exec roots, socket and
#   pidfile in a temporary folder, its default bridge on a bridge of ours with
#   outbound NAT (one MASQUERADE rule) so that build steps reach the Debian
#   mirror; stopped by PID on every exit path; bridges, iptables rules, mounts
#   and processes are compared before and after;
# - debian:bookworm-slim, `docker import`ed from `debootstrap --variant=minbase
#   bookworm` with the slim image's dpkg path excludes; the tarball is cached
#   in $JOBD_DOCKER_CACHE (default /var/cache/jobd-docker) and rebuilt when
#   older than 30 days;
# - redis:7-bookworm, a stand-in built from Debian's redis-server
#   (tests/docker/redis).
# Then every step of the deployment (config, build, up, health, jobs end to
# end, a SIGKILLed worker, a SIGKILLed Redis, docker stop, down and up, backup
# and restore, down -v) and one summary line. Must run as root. Settings (env): JOBD_DOCKER_CACHE,
# JOBD_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

t_start=$(date +%s)
cache=${JOBD_DOCKER_CACHE:-/var/cache/jobd-docker}
mirror=${JOBD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_tar="$cache/debian-bookworm-slim.tar"
base_max_age_days=30
compose_file="$repo/docker/docker-compose.yml"
project="jobdtest$$"
# docker.io's client (20.10, like the daemon); the test never uses another one.
docker=/usr/bin/docker
workers_per_process=4 # JOBD_WORKERS of docker/docker-compose.yml

step_no=0
step_name="preflight"
passed=0
image_added="?"
tmp=""
dockerd_pid=""
bridge=""
our_bridges=()
nat_rules=()
orig_ip_forward=""
before=""
why=""

say() { echo "docker-test: $*" >&2; }
fail() {
    say "FAIL in step $step_no ($step_name): $*"
    why=$*
    exit 1
}
step() {
    step_no=$((step_no + 1))
    step_name=$1
    local t=$(($(date +%s) - t_start))
    say "[$step_no at $((t / 60))m$((t % 60))s] $step_name"
}
ok() { passed=$((passed + 1)); }

# Polls "$@" every 0.5 s until it succeeds or `limit` seconds pass.
# (No `... | grep -q` below: grep -q quits at the first match, and under
# pipefail the writer's SIGPIPE would fail the pipeline.)
wait_for() {
    local limit=$1 what=$2 t0
    shift 2
    t0=$(date +%s)
    until "$@"; do
        if [ $(($(date +%s) - t0)) -ge "$limit" ]; then
            say "gave up after ${limit}s waiting for: $what"
            return 1
        fi
        sleep 0.5
    done
}

# ---- state of the host, compared after the cleanup ----
# Processes of ours: a command line, root or working folder inside $tmp
# (dockerd, containerd, shims: the former; container processes: their root).
is_ours() {
    local p=$1 link cmd
    [ -n "$tmp" ] || return 1
    for link in root cwd; do
        case "$(readlink "/proc/$p/$link" 2>/dev/null)/" in "$tmp"/*) return 0 ;; esac
    done
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || return 1
    [[ $cmd == *"$tmp/"* ]]
}
our_pids() {
    local d p
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
        if is_ours "$p"; then echo "$p"; fi
    done
}
host_state() {
    echo "## links"
    ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
    echo "## iptables filter"
    iptables -S
    echo "## iptables nat"
    iptables -t nat -S
    echo "## ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
    echo "## mounts"
    awk '{print $2, $3}' /proc/mounts | sort
    echo "## docker processes"
    ps -eo pid=,comm= | awk '$2 ~ /^(dockerd|containerd|containerd-shim|docker-proxy|docker-init)$/ {print $1}' | sort -n
}

# ---- cleanup, on every exit path ----
stop_pid() { # pid seconds: SIGTERM, then SIGKILL after the grace
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq $(($2 * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "pid $pid ignored SIGTERM for $2 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? p m l leftover=0 after
    trap - EXIT INT TERM
    set +e
    # A signal's trap runs inside whatever redirection was active (a function
    # call's build log, say): back to the script's own output.
    exec 1>&3 2>&4
    if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
        timeout 120 docker-compose -f "$compose_file" -p "$project" down -v --remove-orphans -t 5 \
            >"$tmp/down.log" 2>&1 || { say "cleanup: compose down failed:"; tail -5 "$tmp/down.log" >&2; }
        stop_pid "$dockerd_pid" 30
        wait "$dockerd_pid" 2>/dev/null
    fi
    if [ -n "$tmp" ]; then
        # containerd and shims outlive a killed dockerd; containers outlive their shims
        for p in $(our_pids); do
            say "cleanup: killing leftover process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-80))"
            kill -KILL "$p" 2>/dev/null
            leftover=1
        done
        [ "$leftover" = 0 ] || sleep 1
        awk -v t="$tmp/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || say "cleanup: cannot unmount $m"; done
    fi
    # Compose's bridges outlive a killed dockerd (those it made are noted
    # after every `up`); ours was made by this script. A veth still plugged
    # into one of them goes with it.
    for l in "${our_bridges[@]}" "$bridge"; do
        if [ -z "$l" ] || ! ip link show "$l" >/dev/null 2>&1; then continue; fi
        for p in $(ip -o link show master "$l" | awk -F': ' '{print $2}' | sed 's/@.*//'); do
            ip link delete "$p" 2>/dev/null
        done
        ip link delete "$l"
    done
    for r in "${nat_rules[@]}"; do
        # shellcheck disable=SC2086 # "table chain spec..." is a word list
        set -- $r
        for _ in 1 2 3; do
            iptables -t "$1" -C "${@:2}" 2>/dev/null || break
            iptables -t "$1" -D "${@:2}"
        done
    done
    [ -z "$orig_ip_forward" ] || echo "$orig_ip_forward" >/proc/sys/net/ipv4/ip_forward
    [ -z "$tmp" ] || rm -rf "$tmp"
    if [ -n "$before" ]; then
        after=$(host_state)
        if [ "$after" != "$before" ]; then
            say "the host is not as it was before the test (- before, + after):"
            diff <(echo "$before") <(echo "$after") | grep '^[<>]' | sed 's/^</-/; s/^>/+/' >&2
            [ "$rc" != 0 ] || step_name="cleanup"
            rc=1
        fi
    fi
    local wall=$(($(date +%s) - t_start))
    local verdict="OK"
    [ "$rc" = 0 ] || verdict="FAILED in step $step_no ($step_name${why:+: $why})"
    echo "docker-test: $verdict: $passed steps passed, runtime stage adds $image_added, wall time $((wall / 60))m$((wall % 60))s"
    exit "$rc"
}
exec 3>&1 4>&2
trap cleanup EXIT
trap 'step_name="$step_name; interrupted by SIGINT"; exit 130' INT
trap 'step_name="$step_name; interrupted by SIGTERM"; exit 143' TERM

# ---- preflight: say clearly why this machine cannot run the test ----
[ "$(id -u)" = 0 ] || fail "must run as root (dockerd, debootstrap, iptables need it)"
for c in dockerd containerd runc docker-proxy docker-init "$docker" docker-compose debootstrap \
    iptables ip curl jq setsid; do
    command -v "$c" >/dev/null || fail "$c is not installed (make docker-test installs the packages)"
done
grep -q cgroup /proc/mounts || fail "no cgroup filesystem is mounted: dockerd cannot run containers here"

before=$(host_state)
tmp=$(mktemp -d /tmp/jobd-docker.XXXXXX)
export DOCKER_HOST="unix://$tmp/docker.sock"
export DOCKER_CONFIG="$tmp/client"          # no credentials or proxies of the user's
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 # the classic builder (dockerd 20.10)
export PATH="/usr/bin:$PATH"                # docker-compose's `docker`, if it calls one, is docker.io's
mkdir -p "$DOCKER_CONFIG" "$cache"
echo '{}' >"$DOCKER_CONFIG/config.json"
echo '{}' >"$tmp/daemon.json" # not /etc/docker/daemon.json

# Every docker command is bounded in time: a hung daemon fails the test.
dc() { timeout 600 docker-compose -f "$compose_file" -p "$project" "$@"; }
dk() { timeout 300 "$docker" "$@"; }
# Notes the bridges of the daemon's networks, for a cleanup without the daemon.
note_bridges() {
    local id
    for id in $(dk network ls -q --no-trunc --filter driver=bridge); do our_bridges+=("br-${id:0:12}"); done
}
dc_up() {
    local rc=0
    dc up -d "$@" >>"$tmp/up.log" 2>&1 || rc=$?
    note_bridges
    return "$rc"
}

# ---- base image tarball (cached) ----
build_base_tarball() {
    local root="$tmp/rootfs"
    say "debootstrap --variant=minbase bookworm from $mirror (cached in $cache afterwards)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
        { tail -20 "$tmp/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
    # What makes debian:bookworm-slim slim: dpkg leaves out docs, man pages and
    # locales (for packages installed later too), and apt keeps no caches.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    printf '#!/bin/sh\n# no service starts during image builds\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/{groff,info,linda,man}/* "$root"/usr/share/lintian/overrides/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/var/log/* "$root"/tmp/* "$root/etc/resolv.conf" "$root/etc/hostname"
    tar --numeric-owner --xattrs -C "$root" -cf "$base_tar.part" . || fail "cannot write $base_tar"
    mv "$base_tar.part" "$base_tar"
    rm -rf "$root"
}

step "base image tarball (debootstrap, cached)"
if [ ! -s "$base_tar" ] || [ -n "$(find "$base_tar" -mtime +"$base_max_age_days")" ]; then
    build_base_tarball
else
    say "reusing $base_tar (from $(date -r "$base_tar" +%F))"
fi
ok

# ---- a private dockerd ----
step "private dockerd"
# Its default bridge (build steps run there) gets outbound NAT from us: dockerd
# itself runs with --iptables=false, so it adds no chains that would outlive it.
for _ in $(seq 50); do
    net="172.29.$((RANDOM % 200 + 20))"
    ip route | grep "^$net\." >/dev/null || break
done
bridge="jdt$$"
bridge=${bridge:0:15}
ip link add name "$bridge" type bridge || fail "cannot create a bridge (no CAP_NET_ADMIN?)"
ip addr add "$net.1/24" dev "$bridge"
ip link set "$bridge" up
orig_ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
echo 1 >/proc/sys/net/ipv4/ip_forward
# "table chain rule...": inserted first in their chains, deleted by the cleanup.
nat_rules=(
    "nat POSTROUTING -s $net.0/24 ! -o $bridge -j MASQUERADE"
    "filter FORWARD -i $bridge ! -o $bridge -j ACCEPT"
    "filter FORWARD -o $bridge -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
)
for r in "${nat_rules[@]}"; do
    # shellcheck disable=SC2086
    set -- $r
    iptables -t "$1" -I "${@:2}" || fail "iptables -t $1 -I ${*:2} failed"
done

start_dockerd() { # storage driver; 0 once the API answers
    : >"$tmp/dockerd.log"
    setsid dockerd --config-file "$tmp/daemon.json" --data-root "$tmp/data" --exec-root "$tmp/exec" \
        --pidfile "$tmp/dockerd.pid" -H "$DOCKER_HOST" --storage-driver "$1" \
        --bridge "$bridge" --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        >"$tmp/dockerd.log" 2>&1 </dev/null &
    dockerd_pid=$!
    for _ in $(seq 150); do
        timeout 5 "$docker" version >/dev/null 2>&1 && return 0
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.2
    done
    stop_pid "$dockerd_pid" 10
    wait "$dockerd_pid" 2>/dev/null || true
    dockerd_pid=""
    return 1
}
driver=overlay2
if ! start_dockerd overlay2; then
    say "dockerd did not start with overlay2: $(grep -m1 -iE 'level=(error|fatal)' "$tmp/dockerd.log" | cut -c1-200); trying vfs"
    rm -rf "$tmp/data" "$tmp/exec"
    driver=vfs
    start_dockerd vfs || {
        tail -15 "$tmp/dockerd.log" >&2
        fail "dockerd cannot run on this machine: $(grep -iE 'level=(error|fatal)' "$tmp/dockerd.log" | tail -1 | cut -c1-300)"
    }
fi
say "dockerd $dockerd_pid on $DOCKER_HOST, storage $driver, bridge $bridge ($net.0/24)"
ok

step "base images: debian:bookworm-slim (import), redis:7-bookworm (stand-in)"
dk import -c 'CMD ["bash"]' "$base_tar" debian:bookworm-slim >/dev/null
dk run --rm debian:bookworm-slim true ||
    fail "dockerd cannot run a container: $(grep -iE 'level=(error|fatal)' "$tmp/dockerd.log" | tail -1 | cut -c1-300)"
dk build -q -t redis:7-bookworm tests/docker/redis >/dev/null || fail "building the redis stand-in failed"
ok

# ---- the stack, exactly as shipped ----
# shellcheck source=tests/ports.sh
port=$(. tests/ports.sh && pick_port)
# The compose file's variables, as a production setup sets them (README);
# from the environment, so that a docker/.env of the checkout does not count.
export JOBD_PORT=$port JOBD_BIND=127.0.0.1
token="tok-$RANDOM$RANDOM"
export JOBD_API_TOKENS="$token"
export JOBD_WEBHOOK_SECRET="secret-$RANDOM$RANDOM$RANDOM"
api() { # path [curl options]
    local path=$1
    shift
    curl -sS --max-time 5 -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path" "$@"
}
cid() { dc ps -q "$1" | head -1; }
health() { dk inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1"; }
all_healthy() {
    local s c
    for s in redis jobd app; do
        c=$(cid "$s")
        [ -n "$c" ] && [ "$(health "$c")" = healthy ] || return 1
    done
}
state_of() { api "/queues/default/jobs/$1" | jq -r '.state // empty' 2>/dev/null; }
# Polls until every job id in the file has `state` (or `limit` seconds pass).
all_in_state() {
    local want=$1 ids=$2 id
    while read -r id; do
        [ "$(state_of "$id")" = "$want" ] || return 1
    done <"$ids"
}
submit() { # body file: the accepted id(s), one a line, into file and $tmp/ids
    local out
    out=$(api /queues/default/jobs -XPOST -H 'content-type: application/json' -d "$1" -w '\n%{http_code}') ||
        fail "POST failed: $out"
    [ "$(tail -1 <<<"$out")" = 202 ] || fail "POST answered $out"
    sed '$d' <<<"$out" | jq -r 'if .jobs then .jobs[].id else .id end' >"$2"
    cat "$2" >>"$tmp/ids"
}

step "docker-compose config -q"
dc config -q || fail "docker-compose rejects $compose_file"
ok

step "docker-compose build"
t0=$(date +%s)
dc build >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log" >&2; fail "build failed (log above)"; }
say "built in $(($(date +%s) - t0)) s"
base_size=$(dk image inspect -f '{{.Size}}' debian:bookworm-slim)
hist_size=$(dk history -H=false --format '{{.Size}}' jobd:latest | awk '{s += $1} END {print s}')
added=$((hist_size - base_size))
image_added=$(awk -v b="$added" 'BEGIN {printf "%.1f MB", b / 1e6}')
say "jobd:latest adds $image_added to debian:bookworm-slim; its layers (docker history):"
dk history --format '{{.Size}}\t{{.CreatedBy}}' jobd:latest | sed '$d' | cut -c1-110 | sed 's/^/    /' >&2
[ "$added" -le 30000000 ] || fail "the runtime stage adds $image_added, more than 30 MB"
# What the runtime image must not hold, and who runs in it.
# shellcheck disable=SC2016 # expanded by the container's shell
dk run --rm --entrypoint sh jobd:latest -c \
    'for c in cc gcc make curl; do command -v $c && exit 1; done; dpkg -l | grep -E "^ii +[^ ]+-dev[: ]" && exit 1; exit 0' ||
    fail "the runtime image holds a compiler, curl or a -dev package"
[ "$(dk image inspect -f '{{.Config.User}}' jobd:latest)" = "10001:10001" ] ||
    fail "the image does not run as uid 10001"
ok

step "docker-compose run --rm --no-deps jobd --check-config (the README's config check)"
dc run --rm --no-deps jobd --check-config >"$tmp/check.log" 2>&1 || { note_bridges; cat "$tmp/check.log" >&2; fail "the config check failed"; }
note_bridges
grep -q 'config ok' "$tmp/check.log" || fail "unexpected check output: $(cat "$tmp/check.log")"
ok

step "docker-compose up -d, every service healthy"
dc_up || { cat "$tmp/up.log" >&2; fail "up failed"; }
wait_for 120 "redis, jobd and app healthy" all_healthy || { dc ps >&2; dc logs --tail 20 >&2; fail "not healthy"; }
jobd_c=$(cid jobd)
init_pid=$(dk inspect -f '{{.State.Pid}}' "$jobd_c")
jobd_pid=$(awk '{print $1}' "/proc/$init_pid/task/$init_pid/children")
jobd_uid=$(awk '/^Uid:/ {print $2}' "/proc/$jobd_pid/status")
{ [ "$(cat "/proc/$jobd_pid/comm")" = jobd ] && [ "$jobd_uid" = 10001 ]; } ||
    fail "expected jobd as uid 10001 under docker-init, found $(cat "/proc/$jobd_pid/comm") as uid $jobd_uid"
dk logs "$jobd_c" 2>&1 | grep '"event":"jobd.started"' >/dev/null || fail "jobd's log is not JSON"
ok

step "jobs end to end: noop and webhooks (signed, verified by the app)"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -XPOST "http://127.0.0.1:$port/queues/default/jobs" \
    -H 'content-type: application/json' -d '{"type":"noop"}')
[ "$code" = 401 ] || fail "a POST without the API token answered $code, not 401"
submit '{"type":"noop"}' "$tmp/first"
submit '{"type":"send_email","args":{"to":"ada@example.com","subject":"hi"}}' "$tmp/mail"
submit '{"type":"active_job","args":{"job_class":"ExampleJob","arguments":[1]}}' "$tmp/aj"
mail=$(cat "$tmp/mail")
aj=$(cat "$tmp/aj")
cat "$tmp/mail" "$tmp/aj" >>"$tmp/first"
wait_for 60 "noop, send_email and active_job succeeded" all_in_state succeeded "$tmp/first" ||
    { api "/queues/default/jobs/$mail" >&2; dc logs --tail 20 app jobd >&2; fail "a job did not succeed"; }
dc logs app >"$tmp/app.log" 2>&1
grep -F '"event": "job.verified"' "$tmp/app.log" | grep -F "\"id\": \"$mail\"" >/dev/null ||
    { cat "$tmp/app.log" >&2; fail "the app did not log a verified call for $mail"; }
grep -qF "\"event\": \"job.performed\", \"id\": \"$aj\"" "$tmp/app.log" || fail "the app did not perform $aj"
! grep -q job.rejected "$tmp/app.log" || fail "the app rejected a signature"
# And the app does check: a wrong MAC and a stale timestamp are refused.
# shellcheck disable=SC2016 # a Python program
post_signed='import sys, urllib.request as u, urllib.error as e
req = u.Request("http://127.0.0.1:3000/jobs/send_email", data=b"{\"id\":\"x\"}",
                headers={"Jobd-Signature": sys.argv[1]})
try:
    print(u.urlopen(req, timeout=5).status)
except e.HTTPError as x:
    print(x.code)'
for sig in "t=$(date +%s),v1=$(printf '0%.0s' {1..64})" "t=1000000000,v1=00"; do
    code=$(dk exec "$(cid app)" python3 -c "$post_signed" "$sig")
    [ "$code" = 401 ] || fail "the app answered $code to a POST signed \"$sig\""
done
ok

step "--scale worker=2, SIGKILL a worker running jobs: every job succeeds"
dc_up --scale worker=2 || fail "scale failed"
[ "$(dc ps -q worker | wc -l)" = 2 ] || fail "expected 2 worker containers"
slots=$((3 * workers_per_process))
n_sleep=$((2 * slots))
batch=$(jq -nc --argjson n "$n_sleep" '[range($n) | {type: "sleep", args: {ms: 3000}}]')
submit "$batch" "$tmp/sleeps"
[ "$(wc -l <"$tmp/sleeps")" = "$n_sleep" ] || fail "the batch was not accepted whole"
running() { api /queues/default | jq -r '.counts.running'; }
all_slots_busy() { [ "$(running)" -ge "$slots" ]; }
# Each process takes no more jobs than it has free workers: with every slot
# busy, the worker about to be killed holds $workers_per_process of them.
wait_for 30 "$slots jobs running" all_slots_busy || fail "only $(running) of $slots slots busy"
victim=$(dc ps -q worker | head -1)
dk kill "$victim" >/dev/null
say "killed worker ${victim:0:12} with $slots jobs running; waiting out the lease expiry"
wait_for 150 "all $n_sleep sleep jobs succeeded" all_in_state succeeded "$tmp/sleeps" ||
    fail "not every job succeeded after the kill"
rerun=0
while read -r id; do
    if [ "$(api "/queues/default/jobs/$id" | jq '.attempts')" -ge 2 ]; then rerun=$((rerun + 1)); fi
done <"$tmp/sleeps"
[ "$rerun" -ge 1 ] || fail "no job ran twice: the killed worker held none"
say "$rerun jobs of the killed worker ran again elsewhere"
ok

step "SIGKILL and restart redis: accepted jobs are still there (AOF on the volume)"
redis_c=$(cid redis)
[ "$(dk exec "$redis_c" redis-cli config get appendonly | tail -1)" = yes ] || fail "Redis runs without AOF"
# A SIGKILL leaves no shutdown snapshot: only the AOF brings the jobs back.
# appendfsync everysec may lose the last second of writes (README): the jobs
# checked below were all written before that window.
sleep 2
dk kill "$redis_c" >/dev/null
dk start "$redis_c" >/dev/null 2>&1 || true # unless the restart policy did it already
wait_for 60 "every job queryable as succeeded after the Redis restart" all_in_state succeeded "$tmp/ids" ||
    fail "jobs lost or unreadable after the Redis restart"
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/readyz")" = 200 ]; }
wait_for 30 "jobd ready again" ready || fail "jobd not ready after the Redis restart"
ok

step "docker stop jobd while it runs jobs: they finish, exit 0 within the grace period"
[ "$(dk inspect -f '{{.Config.StopTimeout}}' "$jobd_c")" = 35 ] || fail "stop_grace_period is not applied"
# Jobs of the in-memory queue "local" run in the process that took them, so
# these two run in the jobd container when the stop comes.
local_id=$(api /queues/local/jobs -XPOST -H 'content-type: application/json' \
    -d '[{"type":"sleep","args":{"ms":4000}},{"type":"sleep","args":{"ms":4000}}]' | jq -r '.jobs[0].id')
local_running() { [ "$(api "/queues/local/jobs/$local_id" | jq -r .state)" = running ]; }
wait_for 10 "a local sleep job running" local_running || fail "the local job did not start"
t0=$(date +%s%N)
dk stop "$jobd_c" >/dev/null
took_ms=$((($(date +%s%N) - t0) / 1000000))
code=$(dk inspect -f '{{.State.ExitCode}}' "$jobd_c")
[ "$code" = 0 ] || fail "jobd exited $code on docker stop"
[ "$took_ms" -lt 35000 ] || fail "docker stop took $took_ms ms: SIGKILLed after the grace period?"
[ "$took_ms" -ge 1000 ] || fail "stopped in $took_ms ms: did the running jobs finish?"
dk logs "$jobd_c" >"$tmp/jobd.log" 2>&1
grep -q 'stopped cleanly' "$tmp/jobd.log" || fail "jobd did not log a clean stop"
! grep -q inline.lost "$tmp/jobd.log" || fail "jobd lost running jobs: $(grep inline.lost "$tmp/jobd.log")"
say "stopped in $took_ms ms after its running jobs finished, exit 0"
ok

step "down, up again: the jobs are still there"
dc down >"$tmp/down.log" 2>&1 || fail "down failed"
dc_up || fail "second up failed"
wait_for 120 "healthy again" all_healthy || fail "not healthy after down/up"
all_in_state succeeded "$tmp/ids" || fail "jobs lost across down/up"
ok

step "back up Redis's volume and restore it into a new one (README's commands)"
volume="${project}_redis-data"
dc stop redis >/dev/null 2>&1 || fail "stop redis failed"
dk run --rm -v "$volume:/data:ro" -v "$tmp:/backup" debian:bookworm-slim \
    tar -C /data -czf /backup/jobd-redis.tgz . || fail "the backup failed"
dc start redis >/dev/null 2>&1 || fail "start redis failed"
tar -tzf "$tmp/jobd-redis.tgz" | grep appendonlydir >/dev/null || fail "the backup holds no AOF"
dc down -v >"$tmp/down.log" 2>&1 || fail "down -v failed"
dk run --rm -v "$volume:/data" -v "$tmp:/backup" debian:bookworm-slim \
    sh -c 'rm -rf /data/* && tar -C /data -xzf /backup/jobd-redis.tgz' || fail "the restore failed"
dc_up || fail "up after the restore failed"
wait_for 120 "healthy after the restore" all_healthy || fail "not healthy after the restore"
all_in_state succeeded "$tmp/ids" || fail "jobs missing after the restore"
ok

step "down -v"
dc down -v >"$tmp/down.log" 2>&1 || fail "down -v failed"
! dk volume ls -q | grep "^${project}_" >/dev/null || fail "a volume of $project is left"
ok
