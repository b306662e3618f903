#!/bin/sh
# Behaves like the official image's entrypoint: options alone mean
# redis-server; as root, /data is handed to redis and redis-server runs as
# redis (setpriv, from util-linux, plays gosu's part).
set -eu
case "${1:-}" in
    -*|*.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ]; then
    shift
    # The official image is built with protected mode off; a config file
    # must stay the first argument, and the caller's options come after ours
    # so they still win.
    if [ "${1:-}" != "${1%.conf}" ]; then
        conf=$1
        shift
        set -- redis-server "$conf" --protected-mode no "$@"
    else
        set -- redis-server --protected-mode no "$@"
    fi
    if [ "$(id -u)" = 0 ]; then
        find . \! -user redis -exec chown redis '{}' +
        umask 0077
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
