#!/bin/sh
# read_stdin.sh PAYLOAD_FILE ENV_FILE - stores its stdin and its environment.
/bin/cat > "$1" || exit 1
/usr/bin/env > "$2"
