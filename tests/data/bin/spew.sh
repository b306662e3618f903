#!/bin/sh
# spew.sh [STATUS] - 10 MiB on stdout and on stderr, a marker line last on
# stderr, then exit STATUS (default 0).
/usr/bin/head -c 10485760 /dev/zero
/usr/bin/yes 'spew spew spew' | /usr/bin/head -c 10485760 >&2
echo "spew-done" >&2
exit "${1:-0}"
