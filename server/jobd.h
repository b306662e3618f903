/* jobd.h - types shared by every module: errors, the job, the server context.
 *
 * Module headers (config.h, job.h, pipeline.h, worker.h, exec.h, http.h, ...)
 * hold each module's public functions; this file holds only what several
 * modules need to agree on. */
#ifndef JOBD_H
#define JOBD_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/name.h"
#include "../util/trace.h"
#include "../util/ulid.h"

#define JOBD_VERSION "0.1.0"

#define QUEUE_NAME_MAX NAME_QUEUE_MAX
#define JOB_ID_MAX NAME_ID_MAX
#define JOB_TYPE_MAX NAME_TYPE_MAX
#define JOB_ERROR_MAX 1024 /* last_error is cut to this many bytes */
#define JOB_ARGS_MAX_DEPTH 64

/* An error on its way to a client: HTTP status, stable code, human message.
 * Functions that fail fill one of these and return NULL or -1. */
typedef struct jobd_error {
    int status;          /* HTTP status, e.g. 422 */
    const char *code;    /* static string, e.g. "invalid_job" */
    char message[256];
    char field[64];      /* "" = none */
    long index;          /* batch element, -1 = none */
    int retry_after;     /* seconds for Retry-After, 0 = no header */
} jobd_error;

/* Fills err (status, code, printf-style message); clears field and index.
 * err may be NULL. Always returns -1 so callers can `return jobd_fail(...)`. */
int jobd_fail(jobd_error *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t jobd_now_ms(void);
/* Monotonic milliseconds, for timeouts and durations. */
int64_t jobd_mono_ms(void);
/* Monotonic microseconds, for durations shorter than a millisecond (metrics). */
int64_t jobd_mono_us(void);

typedef enum job_state {
    JOB_SCHEDULED = 0,
    JOB_ENQUEUED,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    JOB_RETRYING,
    JOB_DEAD,
    JOB_CANCELLED,
    JOB_STATE_COUNT
} job_state;

/* A job's W3C trace context, one allocation (README, "Trace context and
 * request ids"). */
typedef struct job_trace {
    char parent[TRACE_PARENT_LEN + 1]; /* the submission's traceparent, as version 00 */
    char state[];                      /* its tracestate, "" = none */
} job_trace;

/* One job. Plain data: every processor may copy it (job_dup). */
typedef struct job {
    char id[JOB_ID_MAX + 1];
    char queue[QUEUE_NAME_MAX + 1];
    char type[JOB_TYPE_MAX + 1];
    json_t *args;          /* owned reference, never NULL (json null when absent) */
    int64_t created_at;    /* unix ms */
    int64_t scheduled_at;  /* unix ms the client asked for (scheduled_at or delay), 0 = none */
    int64_t run_at;        /* unix ms from which it may run (schedule or retry backoff), 0 = now */
    int64_t started_at;    /* unix ms of the last start, 0 = never */
    int64_t finished_at;   /* unix ms it reached succeeded/dead/cancelled, 0 = not yet */
    int attempts;          /* runs that started and ended (README, Jobs) */
    int max_attempts;      /* 0 = not given by the client: the queue's default applies */
    double timeout;        /* seconds, 0 = not given: handler, then queue default */
    job_state state;
    char *last_error;      /* owned, NULL = none; at most JOB_ERROR_MAX bytes */
    int64_t delay_ms;      /* the client's "delay" in ms, 0 = none: a store with a clock of
                            * its own (Redis TIME) counts it from its now, so host clock
                            * skew cannot run the job early */
    job_trace *trace;      /* owned, NULL = none: a pointer, so that jobs without one
                            * (most) do not pay for its bytes */
} job_t;

typedef struct config config_t;
typedef struct queue queue_t;
typedef struct worker_pool worker_pool_t;
typedef struct exec_table exec_table_t;
typedef struct http_server http_server_t;
typedef struct metrics metrics_t;
typedef struct periodic periodic_t;

/* The 503 messages of shutdown, quoted by the README: a submission that
 * arrives during shutdown, and one that was already waiting for its store
 * when the HTTP server stopped (the store may still write it). */
#define JOBD_MSG_SHUTDOWN "the server is shutting down: the job was not accepted"
#define JOBD_MSG_SHUTDOWN_UNSURE                                                  \
    "the server stopped before the job's store answered: the job may have been " \
    "stored; a retry with the same id is a safe replay"

/* last_error of a run that the shutdown deadline cut short. */
#define JOBD_INTERRUPTED "interrupted by shutdown"

/* The shutdown deadline's signal to running jobs: once fired, command
 * process groups get SIGTERM (then SIGKILL after their kill_grace, at most
 * grace_max), webhook transfers and builtin sleeps end, and the run reports
 * JOBD_INTERRUPTED. Fired once, never reset. */
typedef struct jobd_interrupt {
    atomic_bool fired;
    int fd;           /* eventfd, readable once fired (never read); -1 = none */
    double grace_max; /* seconds */
} jobd_interrupt;

/* The server context: the only mutable state shared across modules. */
typedef struct jobd {
    config_t *cfg;            /* owned */
    queue_t **queues;         /* owned, cfg->n_queues of them, config order */
    size_t n_queues;
    worker_pool_t *pool;      /* owned, NULL with --no-workers */
    exec_table_t *exec;       /* owned: handlers by job type */
    http_server_t *http;      /* owned, NULL with --no-http */
    metrics_t *metrics;       /* owned, NULL with metrics.enabled false (server/metrics.h) */
    periodic_t *periodic;     /* owned: the periodic scheduler (queues/periodic.h) */
    ulid_gen ids;
    atomic_bool shutting_down; /* set by SIGTERM/SIGINT: submissions answer 503 */
    jobd_interrupt interrupt;  /* fired at the shutdown deadline */
} jobd_t;

#endif
