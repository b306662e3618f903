/* job.h - the job model: validation of client input, views, the payload.
 * Ids, times, names and UTF-8 are util/'s (ulid.h, rfc3339.h, name.h, utf8.h). */
#ifndef JOBD_JOB_H
#define JOBD_JOB_H

#include "../server/jobd.h"

/* A new zeroed job with args = json null. Caller frees with job_free. NULL on OOM. */
job_t *job_new(void);

/* A new deep copy (args is shared: incref'd, since args are never mutated). */
job_t *job_dup(const job_t *job);

/* Frees job and what it owns. NULL is fine. */
void job_free(job_t *job);

/* Sets the job's trace context from a submission's traceparent and
 * tracestate header values (either may be NULL): a malformed traceparent
 * leaves the job without one, a tracestate is kept only with a valid
 * traceparent and when trace_state_ok. 0, or -1 when out of memory. */
int job_set_trace(job_t *job, const char *traceparent, const char *tracestate);

/* Replaces job->last_error with a copy of msg cut to JOB_ERROR_MAX bytes
 * (at a UTF-8 boundary); msg NULL clears it. */
void job_set_error(job_t *job, const char *msg);

/* Validates one client job object (openapi.json: type, args depth, id charset,
 * scheduled_at RFC 3339, delay >= 0 and not with scheduled_at, max_attempts
 * 1..1000, timeout > 0, no unknown fields) and fills a new job: id (from the
 * object, else idem_key, else a fresh ULID from ids), queue, type, args,
 * created_at = now_ms, scheduled_at/run_at, max_attempts (0 if not given),
 * timeout, state (scheduled when run_at > now_ms, else enqueued).
 * idem_key may be NULL; if both it and "id" are given and differ: error.
 * Returns a new job, or NULL with err = 422 invalid_job and err->field set.
 * Does not check that a handler exists for the type (the caller does). */
job_t *job_from_request(const json_t *obj, const char *queue, const char *idem_key,
                        ulid_gen *ids, int64_t now_ms, jobd_error *err);

/* The job view of openapi.json ("id","queue","type","args","state","attempts",
 * "max_attempts","created_at","scheduled_at","started_at","finished_at","last_error")
 * plus "run_at" and "timeout" when set, and "trace_id", "traceparent",
 * "tracestate" when the job has a trace context. Times as RFC 3339 UTC with ms, or null.
 * Returns a new reference. */
json_t *job_view(const job_t *job);

/* Inverse of job_view, used by stores that keep the view as their record.
 * Returns a new job or NULL when the object is not a valid view. */
job_t *job_from_view(const json_t *view);

/* The body handed to executors: {"id","queue","type","args","attempt",
 * "scheduled_at","created_at"}, attempt = job->attempts + 1 (the run in progress).
 * Returns new memory (json text, NUL-terminated); caller frees with free(). */
char *job_payload(const job_t *job, size_t *len);

/* "scheduled", "enqueued", ... Static string. */
const char *job_state_name(job_state s);
/* The state of that name, or -1. */
int job_state_parse(const char *name);
/* True for succeeded, dead, cancelled. */
bool job_state_final(job_state s);

/* The job view as compact JSON text, built without a jansson tree: byte for
 * byte json_dumps(job_view(job), JSON_COMPACT), so a store can keep it and an
 * answer can send it as it is. Returns new memory (NUL-terminated, its length
 * in *len when len is not NULL); caller frees with free(). NULL on OOM. */
char *job_view_text(const job_t *job, size_t *len);

/* About how many bytes of memory job takes (the job, its args tree with
 * jansson's per-value overhead, its last_error), for buffers bounded by
 * bytes. An estimate that grows with the content, never 0. */
size_t job_mem_size(const job_t *job);

#endif
