/* metrics.h - the process's Prometheus metrics (README, Metrics): counters
 * and histograms that the submit and run paths update with relaxed atomics
 * (no lock anywhere on those paths), and the writer of the text format 0.0.4
 * that GET /metrics answers (handlers/metrics.c adds the gauges it reads
 * from the stores and the worker pool).
 *
 * Label sets stay bounded whatever clients send: queues and job types are
 * the configured ones (an index into the config), HTTP routes are the
 * templates of router.h, and status codes and error codes take a slot of a
 * small fixed table on first use. */
#ifndef JOBD_METRICS_H
#define JOBD_METRICS_H

#include "../util/jsonw.h"
#include "config.h"
#include "jobd.h"
#include "router.h"

typedef struct metrics metrics_t;

/* The text being written: util/jsonw.h's growing buffer (start from {0},
 * end with jsonw_finish, which gives the NUL-terminated text; oom is set and
 * later writes ignored once an allocation failed). */
typedef jsonw metrics_buf;

/* A new registry for cfg's queues and handlers (cfg borrowed: it must outlive
 * the registry). NULL when out of memory. Free with metrics_free. */
metrics_t *metrics_new(const config_t *cfg);

/* Frees m. NULL is fine. */
void metrics_free(metrics_t *m);

/* --- recording; m may be NULL (metrics.enabled false): nothing happens --- */

/* A job of queue qc (borrowed from the registry's config) was stored
 * (replayed false) or answered as an idempotent replay (replayed true). */
void metrics_job_submitted(metrics_t *m, const queue_cfg *qc, bool replayed);

/* A submission to the configured queue named queue (any other name is not
 * counted) was refused with the error code (a static string). */
void metrics_submit_refused(metrics_t *m, const char *queue, const char *code);

/* A run of a job of qc starts, wait seconds after the job was due. */
void metrics_job_started(metrics_t *m, const queue_cfg *qc, double wait);

/* A run of a job of type took run seconds and succeeded (ok) or failed. A
 * type without a configured handler gets no run-time histogram. */
void metrics_job_ran(metrics_t *m, const queue_cfg *qc, const char *type, double run, bool ok);

/* After a run the store filed the job in next: JOB_SUCCEEDED, JOB_RETRYING,
 * JOB_DEAD are counted; other states (a run cut short by shutdown) are not. */
void metrics_job_filed(metrics_t *m, const queue_cfg *qc, job_state next);

/* Leases of n jobs of qc ended counting an attempt without a run's outcome
 * (taken back from a dead process or at shutdown, or buried at the fetch: an
 * unreadable record): dead of them went dead, the others back to ready for
 * another attempt (counted retried). lost: they were a dead process's
 * (taken back by the reaper), whose runs never ended where they ran: also
 * counted as failed runs. */
void metrics_leases_ended(metrics_t *m, const queue_cfg *qc, long n, long dead, bool lost);

/* A job of qc was cancelled. */
void metrics_job_cancelled(metrics_t *m, const queue_cfg *qc);

/* The aggregate processor of qc handed a batch of n jobs to its delegate. */
void metrics_batch(metrics_t *m, const queue_cfg *qc, size_t n);

/* An HTTP request of route was answered with status after seconds. */
void metrics_http_request(metrics_t *m, route_id route, int status, double seconds);

/* --- the text format --- */

/* Appends printf-formatted text to b. */
void metrics_printf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends the "# HELP" and "# TYPE" lines of a family. */
void metrics_family(metrics_buf *b, const char *name, const char *type, const char *help);

/* Appends s as a label value: backslash, double quote and newline escaped. */
void metrics_label(metrics_buf *b, const char *s);

/* Appends one sample `name{queue="q"} value` (queue NULL: no label). */
void metrics_queue_sample(metrics_buf *b, const char *name, const char *queue, double value);

/* Appends every counter and histogram of the registry, and the process_*
 * and jobd_build_info families. */
void metrics_write(metrics_t *m, metrics_buf *b);

/* Appends to out the text fill writes, computed at most once per max_age_ms
 * whatever the number of callers: a younger copy is served from the cache.
 * Callers wait for one another, so many scrapers at once cause one fill. */
void metrics_cached(metrics_t *m, int64_t max_age_ms, metrics_buf *out,
                    void (*fill)(metrics_buf *b, void *arg), void *arg);

/* Frees what b holds and empties it. */
void metrics_buf_free(metrics_buf *b);

#endif
