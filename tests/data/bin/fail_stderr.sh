#!/bin/sh
# fail_stderr.sh - some output on both streams, then exit status 3.
echo "processing the job"
echo "warming up" >&2
echo "disk quota exceeded on /data" >&2
exit 3
