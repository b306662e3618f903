#!/usr/bin/env bash
# layers.sh [ROOT] - fails when a lower layer includes a higher one in the
# source tree at ROOT (default: this repository). The layers, lowest first
# (README, "Architecture"):
#
#   0 util/      leaf utilities: libc and jansson only
#   1 server/    process, config, HTTP, router, log
#   2 queues/    job model, pipeline, processors, workers, executors, the Redis client layer
#   3 handlers/  one file per HTTP resource, the route table
#   4 server/main.c, the program: it wires every layer together
#
# A file may include its own layer and the ones below it. Only quoted includes
# (#include "...") are read; a target outside these folders (system headers,
# files generated under the build folder) is not checked. Exits 0 when every
# include follows the layers, 1 listing every one that does not, 2 when there
# was nothing to check.
set -euo pipefail

cd "${1:-$(dirname "$0")/..}"

layer_of() {
    case "$1" in
    server/main.c) echo 4 ;;
    util/*) echo 0 ;;
    server/*) echo 1 ;;
    queues/*) echo 2 ;;
    handlers/*) echo 3 ;;
    *) echo "" ;;
    esac
}

bad=0
checked=0
while IFS= read -r -d '' file; do
    from=$(layer_of "$file")
    dir=$(dirname "$file")
    # line:path of every #include "path" (blanks allowed around the #).
    while IFS=: read -r line target; do
        [ -n "$target" ] || continue
        resolved=$(realpath -m --relative-to=. "$dir/$target")
        to=$(layer_of "$resolved")
        checked=$((checked + 1))
        if [ -n "$to" ] && [ "$to" -gt "$from" ]; then
            echo "layers.sh: $file:$line includes \"$target\" ($resolved, layer $to above $from)" >&2
            bad=1
        fi
    done < <(awk 'match($0, /^[ \t]*#[ \t]*include[ \t]*"[^"]+"/) {
            s = $0; sub(/^[^"]*"/, "", s); sub(/".*/, "", s); print FNR ":" s }' "$file")
done < <(find util server queues handlers -type f \( -name '*.c' -o -name '*.h' \) \
    -print0 2>/dev/null | sort -z)

if [ "$checked" -eq 0 ]; then
    echo "layers.sh: no include to check under $(pwd)" >&2
    exit 2
fi
if [ "$bad" -ne 0 ]; then
    echo "layers.sh: a lower layer includes a higher one (see above)" >&2
    exit 1
fi
echo "layers.sh: $checked includes follow the layers util < server < queues < handlers"
