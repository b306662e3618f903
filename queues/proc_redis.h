/* proc_redis.h - internals of the redis processor, shared by its files only
 * (pipeline.h's proc_redis_kind is its public face):
 *   proc_redis.c        creation, submissions, the store side, start and stop
 *   proc_redis_run.c    the fetch loop, leases and the writing of outcomes
 *   proc_redis_maint.c  heartbeat, dead processes, due jobs, retention, prober
 * The data model lives in redis_model.c (its Lua in queues/lua/, registered
 * by redis_script.c), its changes in redis_write.c, its reads in
 * redis_read.c, connections in redis_conn.c.
 *
 * Threads of one queue (each with its own Redis connection, as hiredis needs):
 *   fetch      reserves worker slots first, then takes that many jobs from
 *              ready and leases them (fencing token, this process's lease
 *              set) in one script; hands each job to the delegate (the
 *              executor); waits with BLMOVE while ready is empty
 *   completer  writes the outcomes of finished runs, one script per batch
 *   beat       the heartbeat alone, on a connection of its own: however long
 *              a maintenance round takes, a live process keeps its leases
 *   maint      taking back the leases of dead processes, moving
 *              due jobs to ready, retention; and the prober that clears the
 *              "down" flag once Redis answers (and passes the safety checks)
 * HTTP threads (submissions and store reads) borrow connections from a small
 * pool for at most redis.timeout, and not at all while Redis is down. */
#ifndef JOBD_PROC_REDIS_H
#define JOBD_PROC_REDIS_H

#include "pipeline.h"
#include "redis_link.h"
#include "redis_read.h"
#include "redis_write.h"

#define PROC_REDIS_BACKOFF_MIN_MS 100
#define PROC_REDIS_BACKOFF_MAX_MS 1000

typedef struct proc_redis_store proc_redis_store;

/* The life of one of a store's threads. Start sets RUNNING (under mu, before
 * the thread exists); stop sets STOPPING under mu and wakes everyone; the
 * thread returns once it sees STOPPING, and stop joins it (STOPPED). The
 * completer alone passes through CLOSED first: its queue takes no more
 * outcomes (a run that ends later leaves its job to the give-back), and the
 * ones queued are still written. Written under mu by start/stop's thread,
 * the only writer, which may read it without. */
typedef enum proc_redis_phase {
    PROC_REDIS_IDLE, /* not started: API-only node, or start failed before it */
    PROC_REDIS_RUNNING,
    PROC_REDIS_CLOSED, /* the completer only, see above */
    PROC_REDIS_STOPPING,
    PROC_REDIS_STOPPED, /* joined */
} proc_redis_phase;

typedef struct proc_redis_thread {
    pthread_t th;
    proc_redis_phase phase;
} proc_redis_thread;

/* One leased job, from the fetch until its outcome is written (or dropped). */
typedef struct proc_redis_lease {
    proc_redis_store *st;
    job_t *job; /* owned */
    long long token;
    char plist[REDIS_KEY_MAX]; /* the lease set of the process id that holds it */
    job_state outcome; /* set by the run's end */
    double delay, duration;
    int tries;
    struct proc_redis_lease *prev, *next; /* in st->active */
    struct proc_redis_lease *qnext;       /* in the completion queue */
} proc_redis_lease;

/* One redis processor (one queue). mu guards pid through the threads'
 * phases; the counters are atomics; the rest is set at creation. */
struct proc_redis_store {
    proc_t *self;
    jobd_t *ctx;
    queue_t *q;
    redis_link link;
    redis_model m;
    double poll_interval;

    pthread_mutex_t mu;
    pthread_cond_t cv;           /* a thread told to stop, the last lease freed */
    pthread_cond_t done_cv;      /* the completion queue has outcomes (or stop) */
    char pid[REDIS_PID_LEN + 1]; /* changes when Redis declared us dead */
    bool registered;
    proc_redis_lease *active; /* leases held by this process */
    size_t n_leases;          /* proc_redis_lease objects alive (active or being dropped) */
    proc_redis_lease *done_head, *done_tail;
    size_t done_inflight; /* taken by the completer, not yet written */
    proc_redis_thread fetch, done, maint, beat;
    bool started;            /* start/stop's thread only */
    atomic_llong beat_ok_ms; /* mono ms of the last heartbeat Redis took; 0 = none yet */

    atomic_llong n_fetched, n_succeeded, n_failed, n_stale, n_reaped, n_trimmed;
};

/* Waits on st->cv up to ms, or not at all when thread t (NULL: none) is
 * told to stop. Call with st->mu held. */
void proc_redis_wait_locked(proc_redis_store *st, int64_t ms, const proc_redis_thread *t);
/* The same, taking st->mu. */
void proc_redis_wait(proc_redis_store *st, int64_t ms, const proc_redis_thread *t);
/* True when thread t is told to stop (or has stopped). Call with st->mu held. */
static inline bool proc_redis_stopping_locked(const proc_redis_thread *t)
{
    return t->phase >= PROC_REDIS_STOPPING;
}
/* The same, taking st->mu. */
bool proc_redis_stopping(proc_redis_store *st, const proc_redis_thread *t);
/* st->registered read under st->mu. */
bool proc_redis_registered(proc_redis_store *st);
/* The current backoff in ms; doubles *backoff up to PROC_REDIS_BACKOFF_MAX_MS. */
int64_t proc_redis_backoff_next(int64_t *backoff);
/* A new random process id: 16 bytes as hex (never host:pid, which repeats
 * in containers). */
void proc_redis_new_pid(char out[REDIS_PID_LEN + 1]);
/* This process's current id (it changes when Redis declared us dead). */
void proc_redis_pid(proc_redis_store *st, char out[REDIS_PID_LEN + 1]);
/* A new connection for a long-lived thread (socket timeout io seconds), or
 * NULL with Redis marked down. Caller frees with redisFree. */
redisContext *proc_redis_open(proc_redis_store *st, double io);
/* Frees *c (NULL is fine) and NULLs it; when it had failed, Redis is marked
 * down unless a new connection finds it answering (redis_link_suspect). */
void proc_redis_drop(proc_redis_store *st, redisContext **c);

/* Thread bodies; arg is the proc_redis_store. Each returns NULL once its
 * thread (st->fetch, done, maint, beat) is told to stop. */
void *proc_redis_fetch_main(void *arg);
void *proc_redis_done_main(void *arg);
void *proc_redis_maint_main(void *arg);
void *proc_redis_beat_main(void *arg);

#endif
