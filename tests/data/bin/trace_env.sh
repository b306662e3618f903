#!/bin/sh
# trace_env.sh DIR - appends "<attempt> <TRACEPARENT> <TRACESTATE>" ("-" for
# an unset one) to DIR/<job id>; the first attempt fails, so a test sees two.
printf '%s %s %s\n' "$JOBD_ATTEMPT" "${TRACEPARENT:--}" "${TRACESTATE:--}" >> "$1/$JOBD_JOB_ID"
[ "$JOBD_ATTEMPT" != 1 ]
