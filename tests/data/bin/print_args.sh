#!/bin/sh
# print_args.sh OUT_FILE ARGS... - writes each argument as <arg> on a line of its own.
out=$1
shift
for a in "$@"; do
    printf '<%s>\n' "$a"
done > "$out"
