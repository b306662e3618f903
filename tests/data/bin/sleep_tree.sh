#!/bin/sh
# sleep_tree.sh PID_FILE [ignore-term] - starts a child that sleeps, writes
# "<own pid> <child pid>" to PID_FILE, then becomes a sleep itself (exec, so
# no shell waits on the child and reaps it before the test can). With
# ignore-term, both ignore SIGTERM (only SIGKILL ends them).
[ "$2" = ignore-term ] && trap '' TERM
/bin/sleep 60 &
echo "$$ $!" > "$1.tmp" && /bin/mv "$1.tmp" "$1"
echo "sleeping" >&2
exec /bin/sleep 60
