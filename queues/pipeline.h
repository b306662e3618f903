/* pipeline.h - the processor interface and the per-queue pipeline builder.
 *
 * As in async-job, a queue is two lists of processors around an executor:
 *   server = executor wrapped by the dequeue list (last first)
 *   client = server wrapped by the enqueue list (last first)
 * Every processor has a delegate (the next stage) and the same small interface.
 * Exactly one processor of the chain is the queue's store (inline or redis). */
#ifndef JOBD_PIPELINE_H
#define JOBD_PIPELINE_H

#include "../server/config.h"
#include "../server/jobd.h"

typedef struct proc proc_t;

typedef enum outcome_kind {
    /* answers to a submission */
    OUT_STORED,    /* accepted: view is the job as stored */
    OUT_REPLAYED,  /* a job with that id already exists: view is that job */
    OUT_REFUSED,   /* not accepted: err says why (e.g. 503 unavailable) */
    /* answers to a run (from the executor) */
    OUT_SUCCEEDED,
    OUT_FAILED,          /* retryable failure */
    OUT_FAILED_PERMANENT /* straight to dead */
} outcome_kind;

typedef struct outcome {
    outcome_kind kind;
    json_t *view;          /* STORED/REPLAYED: borrowed job view, valid during the callback */
    jobd_error err;        /* REFUSED */
    const char *message;   /* FAILED*: borrowed error text, NULL = none */
    double retry_after;    /* FAILED: seconds the handler asked to wait, < 0 = not asked */
    double duration;       /* SUCCEEDED/FAILED*: seconds the run took */
    /* Appended for the submit path. STORED/REPLAYED: the view as compact JSON
     * text (NUL-terminated), borrowed and valid during the callback like view;
     * NULL = not given. A processor that gives it may leave view NULL: the job
     * is then serialized once, and the text stored is the text answered. */
    const char *view_text;
    /* FAILED: the shutdown deadline cut the run short (message JOBD_INTERRUPTED).
     * The store counts the attempt and puts the job back to run again (or
     * dead), as it does for the lease of a process that died. */
    bool interrupted;
} outcome_t;

/* Reports the outcome of jobs[index] of a call. Called exactly once per job,
 * possibly before call returns, possibly later from another thread. */
typedef void (*proc_done_fn)(void *done_ctx, size_t index, const outcome_t *out);

/* What GET /metrics shows of a queue's store (README, Metrics). */
typedef struct store_gauges {
    bool ok;                           /* filled; false: the store could not be read */
    bool paused;
    long long counts[JOB_STATE_COUNT]; /* scheduled, enqueued, running, retrying, dead */
    double latency;                    /* seconds since the oldest enqueued job was due; 0 = none */
} store_gauges;

/* The read and admin side of a queue, answered by its store. Every function
 * returns a new reference (or 0) on success, NULL (or -1) with err filled on
 * error: 404 unknown_job, 409 conflict, 503 unavailable. */
typedef struct store_ops {
    json_t *(*get)(proc_t *self, const char *id, jobd_error *err);
    /* {"jobs": [views], "next_cursor": str|null}, newest created first;
     * state -1 = any; cursor NULL = first page; bad cursor = 400 invalid_parameter. */
    json_t *(*list)(proc_t *self, int state, size_t limit, const char *cursor, jobd_error *err);
    /* Cancels a scheduled, enqueued or retrying job: its new view. */
    json_t *(*cancel)(proc_t *self, const char *id, jobd_error *err);
    int (*pause)(proc_t *self, bool paused, jobd_error *err);
    /* {"paused": bool, "counts": {"scheduled","enqueued","running","retrying","dead"},
     *  "processed_total": n, "failed_total": n} */
    json_t *(*info)(proc_t *self, jobd_error *err);
    /* {"jobs": [views], "next_cursor"}, newest death first. */
    json_t *(*dead_list)(proc_t *self, size_t limit, const char *cursor, jobd_error *err);
    /* Dead job back to enqueued with attempts reset: its new view. */
    json_t *(*dead_retry)(proc_t *self, const char *id, jobd_error *err);
    int (*dead_delete)(proc_t *self, const char *id, jobd_error *err);
    /* True when the store can take jobs now (Redis reachable). */
    bool (*ready)(proc_t *self);
    /* The gauges of stores[0..n), every one of this kind, into out[0..n),
     * in one go (for Redis: one round trip for all of them). A store that
     * cannot be read is left with ok false. */
    void (*gauges)(proc_t *const *stores, size_t n, store_gauges *out);
    /* The periodic scheduler's side (queues/periodic.c). NULL in a store
     * without a clock and records of its own (inline): the process's clock
     * and memory serve. clock_ms: the store's clock in unix ms (Redis TIME),
     * 0 while unknown. tick_get: the last tick recorded for schedule name
     * into *tick_ms (0 = none). tick_set: records tick_ms unless a later one
     * is recorded. Both 0, or -1 with 503 in err. */
    int64_t (*clock_ms)(proc_t *self);
    int (*tick_get)(proc_t *self, const char *name, int64_t *tick_ms, jobd_error *err);
    int (*tick_set)(proc_t *self, const char *name, int64_t tick_ms, jobd_error *err);
} store_ops;

typedef struct proc_ops {
    const char *name;
    /* Takes jobs[0..n) (borrowed until done is called for each) and reports
     * each one's outcome exactly once through done. Never blocks on I/O for
     * longer than redis.timeout. Returns 0; -1 only when it reported nothing. */
    int (*call)(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done, void *done_ctx);
    /* Starts threads (fetch loops, flushers). 0 or -1. NULL = nothing to start. */
    int (*start)(proc_t *self);
    /* Stops taking work and winds down before deadline (mono ms): flush
     * buffers, let running jobs end, give leases back. NULL = nothing to stop. */
    void (*stop)(proc_t *self, int64_t deadline_ms);
    /* New reference with this processor's counters, or NULL. */
    json_t *(*stats)(proc_t *self);
    /* Frees self->priv. Called after stop. */
    void (*destroy)(proc_t *self);
    const store_ops *store; /* non-NULL for store processors */
    /* Optional: call for jobs made of several submissions, parts[0..nparts)
     * jobs each, in order (summing to n), so that a store that admits jobs
     * by a bound (max_depth) admits or refuses each submission whole in one
     * call. NULL: callers that need that call once per submission. */
    int (*call_parts)(proc_t *self, job_t *const *jobs, size_t n, const size_t *parts,
                      size_t nparts, proc_done_fn done, void *done_ctx);
} proc_ops;

struct proc {
    const proc_ops *ops;
    proc_t *delegate; /* next stage, NULL only for the executor */
    queue_t *queue;   /* borrowed: the queue this processor belongs to */
    void *priv;       /* the processor's own state */
};

/* A kind of processor that a config entry may name. */
typedef struct proc_kind {
    const char *name;
    bool is_store;
    /* Validates the entry's options (object without "name"). 0, or -1 with a
     * message in err such as `unknown option "dela"` or `delay: must be a number >= 0`. */
    int (*check)(const json_t *opts, char *err, size_t errlen);
    /* A new processor in front of delegate; NULL with err on failure. */
    proc_t *(*create)(jobd_t *ctx, queue_t *q, const json_t *opts, proc_t *delegate,
                      char *err, size_t errlen);
} proc_kind;

/* Borrowed kind of that name (inline, delayed, redis, aggregate), or NULL. */
const proc_kind *pipeline_kind(const char *name);

/* What config_parse checks processor entries (pipeline_kind's check) and
 * handler objects (exec_check_handler) with: every option is validated there,
 * once; the create functions take the checked objects as they are. */
extern const config_checks pipeline_config_checks;

struct queue {
    const queue_cfg *cfg;  /* borrowed from ctx->cfg */
    jobd_t *ctx;           /* borrowed */
    proc_t *client;        /* where submissions enter */
    proc_t *server;        /* the dequeue side's outermost processor */
    proc_t *store;         /* the inline or redis processor */
    proc_t **chain;        /* owned: every processor, client first, executor last */
    size_t n_chain;
    atomic_int running;    /* jobs of this queue running in this process */
};

/* The stats (proc_ops.stats) of q's first processor of that kind name
 * ("aggregate", "redis"...): a new reference, or NULL when it has none. */
json_t *pipeline_proc_stats(queue_t *q, const char *name);

/* Borrowed queue of ctx of that name, NULL when none is configured (or name is NULL). */
queue_t *pipeline_queue(jobd_t *ctx, const char *name);

/* Builds the queue's chain from its config (and the executor). Returns a new
 * queue (free with pipeline_free), or NULL with err. */
queue_t *pipeline_build(jobd_t *ctx, const queue_cfg *cfg, char *err, size_t errlen);

/* Starts every processor, innermost first. 0 or -1. */
int pipeline_start(queue_t *q);

/* Submits jobs at the client end: q->client->ops->call(...). */
int pipeline_submit(queue_t *q, job_t *const *jobs, size_t n, proc_done_fn done, void *done_ctx);

/* Stops every processor, outermost (client) first, before deadline (mono ms). */
void pipeline_stop(queue_t *q, int64_t deadline_ms);

/* Destroys every processor and the queue. NULL is fine. */
void pipeline_free(queue_t *q);

/* Allocates a processor with ops, delegate and queue set; priv NULL.
 * Used by each processor's create. NULL on OOM. */
proc_t *pipeline_proc_new(const proc_ops *ops, queue_t *q, proc_t *delegate);

/* What a store does after a run ended with out (OUT_SUCCEEDED / OUT_FAILED /
 * OUT_FAILED_PERMANENT) for a job whose attempts already count this run:
 * returns JOB_SUCCEEDED, JOB_DEAD (permanent failure, or attempts >=
 * max_attempts), JOB_ENQUEUED for a run the shutdown interrupted (to run
 * again at once, as a dead process's lease does), or JOB_RETRYING with
 * *delay = seconds to wait before the next attempt: the backoff curve with
 * jitter, or the handler's retry_after when it asked for one. */
job_state pipeline_next_state(const queue_cfg *cfg, const job_t *job, const outcome_t *out,
                              double *delay);

/* The processor constructors, one file each (queues/proc_*.c). */
extern const proc_kind proc_inline_kind;
extern const proc_kind proc_delayed_kind;
extern const proc_kind proc_redis_kind;
extern const proc_kind proc_aggregate_kind;

/* The executor: innermost stage; runs each job on the worker pool through the
 * handler of its type and reports OUT_SUCCEEDED / OUT_FAILED / OUT_FAILED_PERMANENT.
 * The caller must hold a worker slot for each job (worker_pool_reserve). */
proc_t *exec_proc_create(jobd_t *ctx, queue_t *q);

#endif
