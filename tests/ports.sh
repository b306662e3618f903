# ports.sh - sourced by tests/run.sh and bench/run.sh: free loopback ports.

# A port nobody listens on: connecting through bash's /dev/tcp fails.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A free port below the kernel's ephemeral range, so no outgoing connection holds it.
pick_port() {
    local p lo=32768
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    [ "$lo" -gt 11000 ] || lo=32768
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % (lo - 10000)))
        if port_is_free "$p"; then echo "$p"; return 0; fi
    done
    echo "no free port found" >&2
    return 1
}
