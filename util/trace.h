/* trace.h - W3C Trace Context (level 1) headers and request ids: what a
 * client may send, and the ids jobd passes on. Pure string work. */
#ifndef JOBD_TRACE_H
#define JOBD_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#define TRACE_ID_LEN 32      /* lowercase hex */
#define TRACE_PARENT_ID_LEN 16
#define TRACE_PARENT_LEN 55  /* "00-" trace id "-" parent id "-" flags */
#define TRACE_STATE_MAX 512  /* longer tracestate values are dropped */
#define TRACE_REQUEST_ID_MAX 128
/* What a client's X-Request-Id may hold besides [A-Za-z0-9]. */
#define TRACE_REQUEST_ID_EXTRA "._:/+=-"

/* Reads a traceparent header value per W3C Trace Context level 1: version
 * 00 is exactly "00-<32 hex>-<16 hex>-<2 hex>", lowercase, ids not all zero;
 * version ff is invalid; a later version is read by its first four fields
 * when what follows them is empty or starts with '-', keeping only the
 * sampled flag. On success writes the version-00 form (NUL-terminated) into
 * out and returns 0; -1 when value is NULL or malformed (out is then ""). */
int trace_parent_parse(const char *value, char out[TRACE_PARENT_LEN + 1]);

/* True when value is a tracestate worth keeping: 1..TRACE_STATE_MAX chars of
 * printable ASCII (no control characters). */
bool trace_state_ok(const char *value);

/* The traceparent of a call made on behalf of parent (a version-00 form from
 * trace_parent_parse): the same trace id and flags, a new random parent id
 * (never all zero). Writes it NUL-terminated into out. */
void trace_parent_child(const char *parent, char out[TRACE_PARENT_LEN + 1]);

/* Copies the trace id of a version-00 traceparent into out (NUL-terminated). */
void trace_id_of(const char *parent, char out[TRACE_ID_LEN + 1]);

/* True when s may serve as a request id as a client sent it: 1..128
 * characters of [A-Za-z0-9] and TRACE_REQUEST_ID_EXTRA. NULL is false. */
bool trace_request_id_ok(const char *s);

#endif
