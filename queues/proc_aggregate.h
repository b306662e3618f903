/* proc_aggregate.h - what the aggregate processor's files share
 * (proc_aggregate.c: buffers, submissions, flushers, life; proc_aggregate_spill.c:
 * the spill file). Private to them: the rest of jobd knows proc_aggregate_kind
 * (pipeline.h) only. */
#ifndef JOBD_PROC_AGGREGATE_H
#define JOBD_PROC_AGGREGATE_H

#include "pipeline.h"

#define AGGREGATE_FLUSHERS_DURABLE 2

/* Where one buffered job's outcome goes. */
typedef struct aggregate_ref {
    proc_done_fn done; /* NULL: the job is owned here, nobody waits for it */
    void *done_ctx;
    size_t index;
    bool from_spill; /* counted in spill_left until stored */
    bool keep;       /* set by the batch: refused for lack of service, retry */
    size_t bytes;    /* job_mem_size when buffered, counted in held_bytes */
} aggregate_ref;

/* Jobs and their refs as parallel arrays: the delegate takes jobs[] as is. */
typedef struct aggregate_buf {
    job_t **jobs;
    aggregate_ref *refs;
    size_t n, cap;
} aggregate_buf;

/* One flusher thread and the jobs it has taken from pending. */
typedef struct aggregate_flusher {
    proc_t *self;
    aggregate_buf buf; /* the flusher's own: what it flushes, then its retries */
    pthread_t thread;
    bool started;
} aggregate_flusher;

typedef struct aggregate {
    bool buffered; /* ack: buffered */
    size_t max_buffer;
    size_t max_buffer_bytes;
    size_t max_batch;
    char *spill; /* owned path, NULL = no spill file */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* pending grew, or stop */
    pthread_cond_t batch_cv; /* a batch got its last outcome */
    aggregate_buf pending;   /* under mu */
    aggregate_flusher flushers[AGGREGATE_FLUSHERS_DURABLE];
    size_t n_flushers;
    size_t held;       /* jobs in pending and the flushers' buffers, under mu */
    size_t held_bytes; /* their job_mem_size, under mu */
    size_t waiters;    /* entries of pending with a submitter waiting */
    size_t spill_left; /* replayed spill entries not stored yet, under mu */
    bool stopping;
    int64_t deadline_ms; /* of stop(), mono */
    uint64_t batches, jobs, largest, stored, refused, spilled; /* under mu */
    /* The store's last answer refused jobs for max_depth (429), with that
     * Retry-After: ack buffered then answers 429 itself until the store takes
     * jobs again. Under mu. */
    bool queue_full;
    int full_retry_after;
} aggregate;

/* proc_aggregate.c */

/* Room for extra more entries in b. 0, or -1 on OOM (the buffer is unchanged). */
int proc_aggregate_buf_reserve(aggregate_buf *b, size_t extra);

/* Reports jobs[index] of a call as refused: 503 unavailable with why. */
void proc_aggregate_refuse(proc_done_fn done, void *done_ctx, size_t index, const char *why);

/* Bytes held by refs[0..n). */
size_t proc_aggregate_bytes(const aggregate_ref *refs, size_t n);

/* proc_aggregate_spill.c; each called with a->mu held. */

/* Counts n more replayed jobs as stored; removes the file after the last. */
void proc_aggregate_spill_done(aggregate *a, size_t n);

/* Settles what a flusher left at stop: waiting submitters are refused,
 * owned jobs go to the spill file (or are lost, logged). b ends empty. */
void proc_aggregate_spill_leftovers(aggregate *a, aggregate_buf *b);

/* Reads the spill file of an earlier run into pending, to be replayed. 0, or
 * -1 with an error logged when the file cannot be read or is not ours. */
int proc_aggregate_spill_load(proc_t *self);

#endif
