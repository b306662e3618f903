/* proc_redis.c - the redis processor: a durable store shared by many jobd
 * processes, and the fetch loop that hands its jobs to the worker pool.
 *
 * Threads of one queue (each with its own Redis connection, as hiredis needs):
 *   fetch      reserves worker slots first, then takes that many ids from
 *              ready into this process's lease list and leases them (fencing
 *              token); hands each job to the delegate (the executor)
 *   completer  writes the outcomes of finished runs, pipelined in batches
 *   maint      heartbeat, taking back the leases of dead processes, moving
 *              due jobs to ready, retention; and the prober that clears the
 *              "down" flag once Redis answers (and passes the safety checks)
 * HTTP threads (submissions and store reads) borrow connections from a small
 * pool for at most redis.timeout, and not at all while Redis is down.
 * The data model and its scripts live in redis_scripts.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/log.h"
#include "job.h"
#include "pipeline.h"
#include "redis_scripts.h"
#include "worker.h"

#define PR_FETCH_MAX 64        /* ids taken in one pipelined round */
#define PR_BLOCK_S 0.5         /* BLMOVE wait while the queue is idle */
#define PR_DONE_BATCH 256      /* outcomes written in one pipeline */
#define PR_DONE_TRIES 5        /* error answers before an outcome is dropped */
#define PR_PROMOTE_BATCH 500
#define PR_PROMOTE_ROUNDS 20   /* batches per poll, so a backlog cannot starve heartbeats */
#define PR_TRIM_BATCH 500
#define PR_BACKOFF_MIN_MS 100
#define PR_BACKOFF_MAX_MS 1000
#define PR_PAUSE_CHECK_MS 250
#define PR_RESERVE_WAIT_MS 200
#define PR_CLOCK_MARGIN_MS 20  /* error allowed in our estimate of Redis's clock */

typedef struct redis_store redis_store;

/* One leased job, from the fetch until its outcome is written (or dropped). */
typedef struct rlease {
    redis_store *st;
    job_t *job;                  /* owned */
    long long token;
    char pid[REDIS_PID_LEN + 1]; /* the process id that holds the lease */
    char plist[REDIS_KEY_MAX];
    job_state outcome;           /* set by the run's end */
    double delay, duration;
    int tries;
    struct rlease *prev, *next;  /* in st->active */
    struct rlease *qnext;        /* in the completion queue */
} rlease;

struct redis_store {
    proc_t *self;
    jobd_t *ctx;
    queue_t *q;
    redis_link link;
    redis_model m;
    double poll_interval;

    pthread_mutex_t mu;
    pthread_cond_t cv;           /* stop flags, completion queue, leases freed */
    char pid[REDIS_PID_LEN + 1]; /* changes when Redis declared us dead */
    bool registered;
    rlease *active;              /* leases held by this process */
    size_t n_leases;             /* rlease objects alive (active or being dropped) */
    rlease *done_head, *done_tail;
    size_t done_inflight;        /* taken by the completer, not yet written */
    bool fetch_stop, done_stop, done_closed, maint_stop;
    pthread_t fetch_th, done_th, maint_th;
    bool fetch_on, done_on, maint_on, started;

    atomic_llong n_fetched, n_succeeded, n_failed, n_stale, n_reaped, n_trimmed;
};

/* --- small helpers --- */

static void proc_redis_deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = deadline_ms / 1000;
    ts->tv_nsec = (deadline_ms % 1000) * 1000000L;
}

/* Waits on st->cv up to ms (mono), or until *flag is set. Call with st->mu held. */
static void proc_redis_wait_locked(redis_store *st, int64_t ms, const bool *flag)
{
    struct timespec ts;
    proc_redis_deadline_ts(jobd_mono_ms() + ms, &ts);
    if (!*flag)
        pthread_cond_timedwait(&st->cv, &st->mu, &ts);
}

static void proc_redis_wait(redis_store *st, int64_t ms, const bool *flag)
{
    pthread_mutex_lock(&st->mu);
    proc_redis_wait_locked(st, ms, flag);
    pthread_mutex_unlock(&st->mu);
}

static bool proc_redis_flag(redis_store *st, const bool *flag)
{
    pthread_mutex_lock(&st->mu);
    bool v = *flag;
    pthread_mutex_unlock(&st->mu);
    return v;
}

static int64_t proc_redis_backoff_next(int64_t *backoff)
{
    int64_t now = *backoff;
    *backoff = now * 2 > PR_BACKOFF_MAX_MS ? PR_BACKOFF_MAX_MS : now * 2;
    return now;
}

/* A new random process id: 16 bytes as hex (never host:pid, which repeats
 * in containers). */
static void proc_redis_new_pid(char out[REDIS_PID_LEN + 1])
{
    unsigned char b[REDIS_PID_LEN / 2];
    arc4random_buf(b, sizeof b);
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Drops a dead connection (marking Redis down) and NULLs *c. */
static void proc_redis_drop(redis_store *st, redisContext **c)
{
    if (*c && (*c)->err)
        redis_link_set_down(&st->link, (*c)->errstr);
    if (*c)
        redisFree(*c);
    *c = NULL;
}

/* A connection of a long-lived thread: socket timeout io (seconds). */
static redisContext *proc_redis_open(redis_store *st, double io)
{
    char why[256];
    redisContext *c = redis_conn_open(&st->link.addr, st->link.timeout, io, why, sizeof why);
    if (!c)
        redis_link_set_down(&st->link, why);
    return c;
}

/* --- leases --- */

static rlease *proc_redis_lease_new(redis_store *st, job_t *job, long long token, const char *pid)
{
    rlease *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->st = st;
    l->job = job;
    l->token = token;
    snprintf(l->pid, sizeof l->pid, "%s", pid);
    redis_script_proc_key(&st->m, pid, l->plist);
    pthread_mutex_lock(&st->mu);
    l->next = st->active;
    if (st->active)
        st->active->prev = l;
    st->active = l;
    st->n_leases++;
    pthread_mutex_unlock(&st->mu);
    return l;
}

/* Forgets a lease: off the active list, freed, and destroy is told. */
static void proc_redis_lease_free(rlease *l)
{
    redis_store *st = l->st;
    pthread_mutex_lock(&st->mu);
    if (l->prev)
        l->prev->next = l->next;
    else if (st->active == l)
        st->active = l->next;
    if (l->next)
        l->next->prev = l->prev;
    st->n_leases--;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    job_free(l->job);
    free(l);
}

/* release_strays callback: true when this process holds a lease on id. */
static bool proc_redis_holds(void *arg, const char *id)
{
    redis_store *st = arg;
    pthread_mutex_lock(&st->mu);
    rlease *l = st->active;
    while (l && strcmp(l->job->id, id) != 0)
        l = l->next;
    pthread_mutex_unlock(&st->mu);
    return l != NULL;
}

/* --- submission (HTTP threads) --- */

static redisContext *proc_redis_acquire(redis_store *st, size_t *slot, jobd_error *err)
{
    int64_t deadline = jobd_mono_ms() + (int64_t)(st->link.timeout * 1000.0);
    return redis_link_acquire(&st->link, deadline, slot, err);
}

/* The latest Redis time at which a submission may still be stored: the
 * moment its caller gives up (redis.timeout from now) less a margin for the
 * clock estimate, so that a submission answered 503 is never stored later by
 * a Redis that was frozen. 0 (no limit) until the clock is known. */
static int64_t proc_redis_not_after(redis_store *st)
{
    int64_t give_up = jobd_mono_ms() + (int64_t)(st->link.timeout * 1000.0);
    int64_t at = redis_link_redis_ms(&st->link, give_up - PR_CLOCK_MARGIN_MS);
    return at > 0 ? at : 0;
}

/* Reports each job's outcome: refused (rc != 0), replayed or stored. */
static void proc_redis_report(job_t *const *jobs, job_t **replayed, size_t n, int rc,
                      const jobd_error *err, proc_done_fn done, void *done_ctx)
{
    for (size_t i = 0; i < n; i++) {
        job_t *rep = replayed ? replayed[i] : NULL;
        outcome_t out = {.kind = OUT_REFUSED, .err = *err};
        if (rc == 0) {
            out.kind = rep ? OUT_REPLAYED : OUT_STORED;
            out.view = job_view(rep ? rep : jobs[i]);
        }
        done(done_ctx, i, &out);
        json_decref(out.view);
        job_free(rep);
    }
}

static int proc_redis_call(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done, void *done_ctx)
{
    redis_store *st = self->priv;
    jobd_error err = {0};
    job_t **replayed = calloc(n ? n : 1, sizeof *replayed);
    int rc = -1;
    size_t slot;
    redisContext *c;
    if (!replayed) {
        jobd_fail(&err, 503, "unavailable", "out of memory");
        err.retry_after = 1;
    } else if ((c = proc_redis_acquire(st, &slot, &err))) {
        rc = redis_script_enqueue(c, &st->m, jobs, n, proc_redis_not_after(st), replayed, &err);
        redis_link_release(&st->link, slot, c);
    }
    proc_redis_report(jobs, replayed, n, rc, &err, done, done_ctx);
    free(replayed);
    return 0;
}

/* --- running: outcomes --- */

/* The run ended (worker thread): decide the next state and queue the write. */
static void proc_redis_run_done(void *done_ctx, size_t index, const outcome_t *out)
{
    (void)index;
    rlease *l = done_ctx;
    redis_store *st = l->st;
    job_t *job = l->job;
    job->attempts++;
    if (out->kind != OUT_SUCCEEDED)
        job_set_error(job, out->message ? out->message : "failed");
    l->outcome = pipeline_next_state(st->q->cfg, job, out, &l->delay);
    job->state = l->outcome; /* for the log lines: the run is over */
    l->duration = out->duration;
    pthread_mutex_lock(&st->mu);
    bool closed = st->done_closed;
    if (!closed) {
        if (st->done_tail)
            st->done_tail->qnext = l;
        else
            st->done_head = l;
        st->done_tail = l;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    if (closed) {
        /* After stop the lease went back to ready: another run will count. */
        log_event(LOG_WARN, "job.outcome_dropped", job,
                  "ended after shutdown gave its lease back; it will run again");
        proc_redis_lease_free(l);
    }
}

static void proc_redis_log_outcome(const rlease *l)
{
    const job_t *job = l->job;
    if (l->outcome == JOB_SUCCEEDED)
        log_event(LOG_INFO, "job.succeeded", job, "in %.3fs", l->duration);
    else if (l->outcome == JOB_RETRYING)
        log_event(LOG_INFO, "job.failed", job, "retry in %.1fs: %s", l->delay, job->last_error);
    else
        log_event(LOG_WARN, "job.dead", job, "%s", job->last_error);
}

/* Puts leases [head..] back at the front of the completion queue. */
static void proc_redis_requeue_done(redis_store *st, rlease *head, rlease *tail, size_t n)
{
    if (!head)
        return;
    pthread_mutex_lock(&st->mu);
    tail->qnext = st->done_head;
    st->done_head = head;
    if (!st->done_tail)
        st->done_tail = tail;
    st->done_inflight -= n;
    pthread_mutex_unlock(&st->mu);
}

/* Acts on the reply to one outcome; true when the lease is finished with. */
static bool proc_redis_done_reply(redis_store *st, rlease *l, const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        atomic_fetch_add(l->outcome == JOB_SUCCEEDED ? &st->n_succeeded : &st->n_failed, 1);
        proc_redis_log_outcome(l);
        return true;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        atomic_fetch_add(&st->n_stale, 1);
        log_event(LOG_WARN, "job.stale", l->job,
                  "lease %lld was taken back (process presumed dead): outcome %s not recorded",
                  l->token, job_state_name(l->outcome));
        return true;
    }
    if (++l->tries < PR_DONE_TRIES)
        return false;
    log_event(LOG_ERROR, "job.outcome_lost", l->job, "Redis refused the outcome %d times: %s",
              l->tries, r->type == REDIS_REPLY_ERROR ? r->str : "bad answer");
    return true;
}

/* Writes a batch of outcomes in one pipeline. -1 when the connection failed
 * (all of them go back to the queue). */
static int proc_redis_write_outcomes(redis_store *st, redisContext *c, rlease *head, size_t n)
{
    redis_cmd *cmds = calloc(n, sizeof *cmds);
    redis_cmd **ptrs = calloc(n, sizeof *ptrs);
    redisReply **r = calloc(n, sizeof *r);
    int rc = -1;
    if (cmds && ptrs && r) {
        size_t i = 0;
        for (rlease *l = head; l; l = l->qnext, i++) {
            redis_script_finish_cmd(&cmds[i], &st->m, l->plist, l->job, l->token, l->outcome,
                                    l->delay);
            ptrs[i] = &cmds[i];
        }
        rc = redis_conn_pipeline(c, ptrs, n, r);
        for (i = 0; i < n; i++)
            redis_cmd_free(&cmds[i]);
    }
    if (rc == 0) {
        rlease *retry = NULL, *retry_tail = NULL, *next;
        size_t i = 0, n_retry = 0;
        for (rlease *l = head; l; l = next, i++) {
            next = l->qnext;
            l->qnext = NULL;
            bool finished = proc_redis_done_reply(st, l, r[i]);
            freeReplyObject(r[i]);
            if (finished) {
                pthread_mutex_lock(&st->mu);
                st->done_inflight--;
                pthread_mutex_unlock(&st->mu);
                proc_redis_lease_free(l);
            } else {
                *(retry_tail ? &retry_tail->qnext : &retry) = l;
                retry_tail = l;
                n_retry++;
            }
        }
        proc_redis_requeue_done(st, retry, retry_tail, n_retry);
    }
    free(cmds);
    free(ptrs);
    free(r);
    return rc;
}

/* Takes up to PR_DONE_BATCH outcomes off the queue; NULL when the completer
 * should exit (stopping and nothing left). Called with st->mu held. */
static rlease *proc_redis_take_outcomes(redis_store *st, size_t *n, rlease **tail)
{
    while (!st->done_head && !st->done_stop)
        pthread_cond_wait(&st->cv, &st->mu);
    rlease *head = st->done_head, *l = head;
    *n = 0;
    *tail = NULL;
    while (l && *n < PR_DONE_BATCH) {
        *tail = l;
        l = l->qnext;
        (*n)++;
    }
    if (*tail)
        (*tail)->qnext = NULL;
    st->done_head = l;
    if (!l)
        st->done_tail = NULL;
    st->done_inflight += *n;
    return head;
}

/* Drops outcomes that can no longer be written (stopping with Redis away):
 * their jobs stay leased by this process and are taken back by a live one. */
static void proc_redis_abandon_outcomes(redis_store *st, rlease *head, size_t n)
{
    pthread_mutex_lock(&st->mu);
    st->done_inflight -= n;
    pthread_mutex_unlock(&st->mu);
    for (rlease *l = head, *next; l; l = next) {
        next = l->qnext;
        log_event(LOG_WARN, "job.outcome_lost", l->job,
                  "Redis unreachable at shutdown: outcome %s not recorded",
                  job_state_name(l->outcome));
        proc_redis_lease_free(l);
    }
}

static void *proc_redis_done_main(void *arg)
{
    redis_store *st = arg;
    redisContext *c = NULL;
    int64_t backoff = PR_BACKOFF_MIN_MS;
    for (;;) {
        size_t n;
        rlease *tail;
        pthread_mutex_lock(&st->mu);
        rlease *head = proc_redis_take_outcomes(st, &n, &tail);
        bool stopping = st->done_stop;
        pthread_mutex_unlock(&st->mu);
        if (!head)
            break;
        if (!c)
            c = proc_redis_open(st, st->link.timeout);
        if (c && proc_redis_write_outcomes(st, c, head, n) == 0) {
            backoff = PR_BACKOFF_MIN_MS;
            continue;
        }
        proc_redis_drop(st, &c);
        if (stopping) {
            proc_redis_abandon_outcomes(st, head, n);
            continue;
        }
        proc_redis_requeue_done(st, head, tail, n);
        proc_redis_wait(st, proc_redis_backoff_next(&backoff), &st->done_stop);
    }
    proc_redis_drop(st, &c);
    return NULL;
}

/* --- running: fetch --- */

/* Reserves 1..want worker slots (the first waits a little). 0 = none. */
static int proc_redis_reserve(redis_store *st, int want)
{
    worker_pool_t *pool = st->ctx->pool;
    if (worker_pool_reserve(pool, st->q, jobd_mono_ms() + PR_RESERVE_WAIT_MS) != 0)
        return 0;
    int k = 1;
    while (k < want && worker_pool_reserve(pool, st->q, 0) == 0)
        k++;
    return k;
}

static void proc_redis_release_slots(redis_store *st, int n)
{
    for (int i = 0; i < n; i++)
        worker_pool_release(st->ctx->pool, st->q);
}

/* Hands a leased job to the executor on one reserved slot. */
static void proc_redis_start_run(redis_store *st, redis_lease *rl, const char *pid)
{
    rlease *l = proc_redis_lease_new(st, rl->job, rl->token, pid);
    if (!l) {
        /* The lease stays in our list; stop (or a reconcile) gives it back. */
        log_event(LOG_ERROR, "job.not_started", rl->job, "out of memory");
        job_free(rl->job);
        proc_redis_release_slots(st, 1);
        return;
    }
    atomic_fetch_add(&st->n_fetched, 1);
    log_event(LOG_DEBUG, "job.started", l->job, "attempt %d, lease %lld", l->job->attempts + 1,
              l->token);
    proc_t *exec = st->self->delegate;
    exec->ops->call(exec, &l->job, 1, proc_redis_run_done, l);
}

typedef struct proc_redis_fetch_state {
    redisContext *c;
    int64_t backoff;
    bool idle;        /* the last round found nothing: wait with BLMOVE */
    bool reconcile;   /* a reply may have been lost: check our lease list */
    bool paused;
    int64_t paused_checked;
} proc_redis_fetch_state;

/* Leases the taken ids and starts them; slots of the ones not started go back. */
static void proc_redis_lease_and_run(redis_store *st, proc_redis_fetch_state *fs, const char *pid,
                             const char *plist, char (*ids)[JOB_ID_MAX + 1], int n)
{
    redis_lease leases[PR_FETCH_MAX];
    if (redis_script_lease(fs->c, &st->m, plist, ids, (size_t)n, leases) != 0) {
        proc_redis_release_slots(st, n);
        fs->reconcile = true;
        if (fs->c->err)
            proc_redis_drop(st, &fs->c);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (leases[i].status == RL_LEASED) {
            proc_redis_start_run(st, &leases[i], pid);
            continue;
        }
        proc_redis_release_slots(st, 1);
        if (leases[i].status == RL_PAUSED) {
            fs->paused = true;
            fs->paused_checked = jobd_mono_ms();
        }
    }
}

/* One round: reserve, take, lease, run. */
static void proc_redis_fetch_round(redis_store *st, proc_redis_fetch_state *fs)
{
    int k = proc_redis_reserve(st, fs->idle ? 1 : PR_FETCH_MAX);
    if (k == 0)
        return;
    char pid[REDIS_PID_LEN + 1], plist[REDIS_KEY_MAX];
    pthread_mutex_lock(&st->mu);
    snprintf(pid, sizeof pid, "%s", st->pid);
    pthread_mutex_unlock(&st->mu);
    redis_script_proc_key(&st->m, pid, plist);
    char ids[PR_FETCH_MAX][JOB_ID_MAX + 1];
    int n = redis_script_take(fs->c, &st->m, plist, (size_t)k, fs->idle ? PR_BLOCK_S : 0, ids);
    if (n < 0) {
        proc_redis_release_slots(st, k);
        fs->reconcile = true;
        proc_redis_drop(st, &fs->c);
        return;
    }
    proc_redis_release_slots(st, k - n);
    fs->idle = n == 0;
    if (n > 0)
        proc_redis_lease_and_run(st, fs, pid, plist, ids, n);
}

/* Gets the connection ready: open, reconcile, paused flag. False = not now. */
static bool proc_redis_fetch_ready(redis_store *st, proc_redis_fetch_state *fs)
{
    if (!fs->c) {
        /* BLMOVE blocks up to PR_BLOCK_S: the socket must wait longer. */
        fs->c = proc_redis_open(st, st->link.timeout + PR_BLOCK_S);
        if (!fs->c)
            return false;
        fs->reconcile = true;
    }
    char pid[REDIS_PID_LEN + 1];
    pthread_mutex_lock(&st->mu);
    snprintf(pid, sizeof pid, "%s", st->pid);
    pthread_mutex_unlock(&st->mu);
    if (fs->reconcile) {
        long n = redis_script_release_strays(fs->c, &st->m, pid, proc_redis_holds, st);
        if (n < 0) {
            proc_redis_drop(st, &fs->c);
            return false;
        }
        if (n > 0)
            log_event(LOG_INFO, "redis.reconciled", NULL,
                      "queue %s: %ld jobs taken without an answer went back to ready",
                      st->q->cfg->name, n);
        fs->reconcile = false;
    }
    int64_t now = jobd_mono_ms();
    if (now - fs->paused_checked >= PR_PAUSE_CHECK_MS) {
        int p = redis_script_paused(fs->c, &st->m);
        if (p < 0) {
            proc_redis_drop(st, &fs->c);
            return false;
        }
        fs->paused = p == 1;
        fs->paused_checked = now;
    }
    return !fs->paused;
}

static void *proc_redis_fetch_main(void *arg)
{
    redis_store *st = arg;
    proc_redis_fetch_state fs = {.backoff = PR_BACKOFF_MIN_MS, .paused_checked = -PR_PAUSE_CHECK_MS};
    while (!proc_redis_flag(st, &st->fetch_stop)) {
        bool registered = proc_redis_flag(st, &st->registered);
        if (!registered || atomic_load(&st->link.down)) {
            proc_redis_wait(st, PR_BACKOFF_MIN_MS, &st->fetch_stop);
            continue;
        }
        if (!proc_redis_fetch_ready(st, &fs)) {
            int64_t ms = fs.c ? PR_PAUSE_CHECK_MS : proc_redis_backoff_next(&fs.backoff);
            proc_redis_wait(st, ms, &st->fetch_stop);
            continue;
        }
        fs.backoff = PR_BACKOFF_MIN_MS;
        proc_redis_fetch_round(st, &fs);
    }
    proc_redis_drop(st, &fs.c);
    return NULL;
}

/* --- maintenance --- */

typedef struct proc_redis_maint_state {
    redisContext *c;
    int64_t backoff, next_try;
    int64_t next_beat, next_reap, next_promote, next_trim;
} proc_redis_maint_state;

/* Opens the maintenance connection and runs the safety checks; only then is
 * Redis "up". A refused server stays down (logged) until it is fixed. */
static void proc_redis_maint_connect(redis_store *st, proc_redis_maint_state *ms)
{
    int64_t now = jobd_mono_ms();
    if (now < ms->next_try)
        return;
    if (!ms->c)
        ms->c = proc_redis_open(st, st->link.timeout);
    char why[512] = "";
    int rc = ms->c ? redis_script_check_server(ms->c, &st->m, st->ctx->cfg->redis_allow_eviction,
                                               why, sizeof why)
                   : -2;
    if (rc == 0) {
        ms->backoff = PR_BACKOFF_MIN_MS;
        redis_link_set_up(&st->link);
        return;
    }
    if (rc == -1)
        log_event(LOG_ERROR, "redis.refused", NULL, "queue %s: %s", st->q->cfg->name, why);
    redis_link_set_down(&st->link, rc == -1 ? why : "connection failed");
    if (ms->c)
        redisFree(ms->c);
    ms->c = NULL;
    ms->next_try = now + (rc == -1 ? PR_BACKOFF_MAX_MS : proc_redis_backoff_next(&ms->backoff));
}

/* Heartbeat; registers first, and again under a new id when Redis says this
 * process was declared dead (its leases are gone: a fresh start). */
static int proc_redis_heartbeat(redis_store *st, redisContext *c)
{
    long long ttl = (long long)(st->ctx->cfg->lease_expiry * 1000.0);
    pthread_mutex_lock(&st->mu);
    bool registered = st->registered;
    char pid[REDIS_PID_LEN + 1];
    snprintf(pid, sizeof pid, "%s", st->pid);
    pthread_mutex_unlock(&st->mu);
    int rc = redis_script_beat(c, &st->m, pid, registered ? "beat" : "register", ttl);
    if (rc == 0) {
        log_event(LOG_WARN, "redis.lease_lost", NULL,
                  "queue %s: process %s was declared dead by another process; registering anew",
                  st->q->cfg->name, pid);
        proc_redis_new_pid(pid);
        rc = redis_script_beat(c, &st->m, pid, "register", ttl);
    }
    if (rc == 1) {
        pthread_mutex_lock(&st->mu);
        snprintf(st->pid, sizeof st->pid, "%s", pid);
        st->registered = true;
        pthread_mutex_unlock(&st->mu);
    }
    return rc < 0 ? -1 : 0;
}

/* Measures Redis's clock against ours (halfway through the round trip). */
static int proc_redis_clock(redis_store *st, redisContext *c)
{
    int64_t before = jobd_mono_ms(), redis_ms;
    if (redis_script_time(c, &redis_ms) != 0)
        return -1;
    redis_link_set_clock(&st->link, redis_ms, (before + jobd_mono_ms()) / 2);
    return 0;
}

static int proc_redis_reap(redis_store *st, redisContext *c)
{
    char pid[REDIS_PID_LEN + 1];
    pthread_mutex_lock(&st->mu);
    snprintf(pid, sizeof pid, "%s", st->pid);
    pthread_mutex_unlock(&st->mu);
    long n = redis_script_reap(c, &st->m, pid);
    if (n > 0) {
        atomic_fetch_add(&st->n_reaped, n);
        log_event(LOG_WARN, "redis.requeued", NULL,
                  "queue %s: %ld jobs of dead processes went back to ready (or dead)",
                  st->q->cfg->name, n);
    }
    return n < 0 ? -1 : 0;
}

static int proc_redis_promote(redis_store *st, redisContext *c)
{
    for (int round = 0; round < PR_PROMOTE_ROUNDS; round++) {
        long n = redis_script_promote(c, &st->m, PR_PROMOTE_BATCH);
        if (n < 0)
            return -1;
        if (n < PR_PROMOTE_BATCH)
            break;
    }
    return 0;
}

/* Retention: finished jobs and the dead set, bounded; logged and counted. */
static int proc_redis_trim(redis_store *st, redisContext *c)
{
    const config_t *cfg = st->ctx->cfg;
    long fin = redis_script_trim(c, &st->m, false, cfg->retention_finished, cfg->max_finished,
                                 PR_TRIM_BATCH);
    long dead = fin < 0 ? -1
                        : redis_script_trim(c, &st->m, true, cfg->dead_max_age, cfg->dead_max_jobs,
                                            PR_TRIM_BATCH);
    if (fin > 0)
        log_event(LOG_INFO, "redis.trimmed", NULL,
                  "queue %s: %ld finished jobs removed (retention.finished / max_finished)",
                  st->q->cfg->name, fin);
    if (dead > 0)
        log_event(LOG_WARN, "dead.trimmed", NULL,
                  "queue %s: %ld dead jobs removed (dead.max_age / dead.max_jobs)",
                  st->q->cfg->name, dead);
    if (fin > 0 || dead > 0)
        atomic_fetch_add(&st->n_trimmed, (fin > 0 ? fin : 0) + (dead > 0 ? dead : 0));
    return fin < 0 || dead < 0 ? -1 : 0;
}

/* Runs the tasks that are due; their periods come from the config. */
static void proc_redis_maint_tick(redis_store *st, proc_redis_maint_state *ms)
{
    const config_t *cfg = st->ctx->cfg;
    int64_t now = jobd_mono_ms();
    int rc = 0;
    if (st->ctx->pool && now >= ms->next_beat) {
        rc = proc_redis_heartbeat(st, ms->c);
        ms->next_beat = now + (int64_t)(cfg->heartbeat * 1000.0);
    }
    if (rc == 0 && now >= ms->next_reap) {
        rc = proc_redis_clock(st, ms->c);
        if (rc == 0)
            rc = proc_redis_reap(st, ms->c);
        ms->next_reap = now + (int64_t)(cfg->heartbeat * 1000.0);
    }
    if (rc == 0 && now >= ms->next_promote) {
        rc = proc_redis_promote(st, ms->c);
        ms->next_promote = now + (int64_t)(st->poll_interval * 1000.0);
    }
    if (rc == 0 && now >= ms->next_trim) {
        rc = proc_redis_trim(st, ms->c);
        ms->next_trim = now + (int64_t)(st->poll_interval > 1 ? st->poll_interval * 1000.0 : 1000);
    }
    if (rc != 0 && ms->c->err)
        proc_redis_drop(st, &ms->c);
}

static int64_t proc_redis_maint_next(redis_store *st, const proc_redis_maint_state *ms)
{
    if (!ms->c || atomic_load(&st->link.down))
        return ms->next_try > jobd_mono_ms() ? ms->next_try : jobd_mono_ms() + PR_BACKOFF_MIN_MS;
    int64_t t = ms->next_reap;
    const int64_t others[] = {ms->next_promote, ms->next_trim,
                              st->ctx->pool ? ms->next_beat : INT64_MAX};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] < t)
            t = others[i];
    return t;
}

static void *proc_redis_maint_main(void *arg)
{
    redis_store *st = arg;
    proc_redis_maint_state ms = {.backoff = PR_BACKOFF_MIN_MS};
    while (!proc_redis_flag(st, &st->maint_stop)) {
        if (!ms.c || atomic_load(&st->link.down))
            proc_redis_maint_connect(st, &ms);
        if (ms.c && !atomic_load(&st->link.down))
            proc_redis_maint_tick(st, &ms);
        int64_t wait = proc_redis_maint_next(st, &ms) - jobd_mono_ms();
        if (wait > 0)
            proc_redis_wait(st, wait, &st->maint_stop);
    }
    proc_redis_drop(st, &ms.c);
    return NULL;
}

/* --- start and stop --- */

static int proc_redis_thread(redis_store *st, pthread_t *th, bool *on, void *(*fn)(void *),
                     const char *what)
{
    if (pthread_create(th, NULL, fn, st) != 0) {
        log_event(LOG_ERROR, "redis.start_failed", NULL, "queue %s: cannot start the %s thread",
                  st->q->cfg->name, what);
        return -1;
    }
    *on = true;
    return 0;
}

static int proc_redis_start(proc_t *self)
{
    redis_store *st = self->priv;
    st->started = true;
    if (proc_redis_thread(st, &st->maint_th, &st->maint_on, proc_redis_maint_main, "maintenance") != 0)
        return -1;
    if (!st->ctx->pool)
        return 0; /* API-only node: store and maintain, never fetch */
    if (proc_redis_thread(st, &st->done_th, &st->done_on, proc_redis_done_main, "completion") != 0 ||
        proc_redis_thread(st, &st->fetch_th, &st->fetch_on, proc_redis_fetch_main, "fetch") != 0)
        return -1;
    return 0;
}

/* Sets a stop flag, wakes everyone, joins the thread if it runs. */
static void proc_redis_join(redis_store *st, bool *flag, pthread_t th, bool *on)
{
    pthread_mutex_lock(&st->mu);
    *flag = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (*on)
        pthread_join(th, NULL);
    *on = false;
}

/* Waits until this queue's runs ended and their outcomes are written, or deadline. */
static void proc_redis_drain(redis_store *st, int64_t deadline_ms)
{
    while (atomic_load(&st->q->running) > 0 && jobd_mono_ms() < deadline_ms)
        proc_redis_wait(st, 5, &st->done_stop);
    pthread_mutex_lock(&st->mu);
    while ((st->done_head || st->done_inflight) && jobd_mono_ms() < deadline_ms)
        proc_redis_wait_locked(st, 5, &st->done_stop);
    pthread_mutex_unlock(&st->mu);
}

/* Gives every lease still in our list back to ready (no attempt counted)
 * and deregisters. With Redis away the registration stays: once our
 * heartbeat expires, a live process takes the leases back. */
static void proc_redis_give_back(redis_store *st)
{
    char pid[REDIS_PID_LEN + 1];
    pthread_mutex_lock(&st->mu);
    snprintf(pid, sizeof pid, "%s", st->pid);
    bool registered = st->registered;
    pthread_mutex_unlock(&st->mu);
    if (!registered)
        return;
    redisContext *c = proc_redis_open(st, st->link.timeout);
    long n = c ? redis_script_give_back(c, &st->m, pid, false, "") : -1;
    if (n > 0)
        log_event(LOG_INFO, "redis.given_back", NULL,
                  "queue %s: %ld unfinished jobs went back to ready", st->q->cfg->name, n);
    if (n >= 0 && redis_script_beat(c, &st->m, pid, "leave", 0) == 1) {
        pthread_mutex_lock(&st->mu);
        st->registered = false;
        pthread_mutex_unlock(&st->mu);
    } else {
        log_event(LOG_WARN, "redis.give_back_failed", NULL,
                  "queue %s: Redis unreachable; leases return after lease_expiry",
                  st->q->cfg->name);
    }
    if (c)
        redisFree(c);
}

static void proc_redis_stop(proc_t *self, int64_t deadline_ms)
{
    redis_store *st = self->priv;
    if (!st->started)
        return;
    st->started = false;
    proc_redis_join(st, &st->fetch_stop, st->fetch_th, &st->fetch_on);
    if (st->done_on) {
        proc_redis_drain(st, deadline_ms);
        pthread_mutex_lock(&st->mu);
        st->done_closed = true;
        pthread_mutex_unlock(&st->mu);
        proc_redis_join(st, &st->done_stop, st->done_th, &st->done_on);
    }
    /* No heartbeat may re-register us after we left. */
    proc_redis_join(st, &st->maint_stop, st->maint_th, &st->maint_on);
    proc_redis_give_back(st);
}

/* --- store side --- */

static json_t *proc_redis_get(proc_t *self, const char *id, jobd_error *err)
{
    redis_store *st = self->priv;
    size_t slot;
    redisContext *c = proc_redis_acquire(st, &slot, err);
    if (!c)
        return NULL;
    json_t *v = redis_script_get(c, &st->m, id, err);
    redis_link_release(&st->link, slot, c);
    return v;
}

static json_t *proc_redis_list_any(proc_t *self, int state, bool dead, size_t limit, const char *cursor,
                           jobd_error *err)
{
    redis_store *st = self->priv;
    size_t slot;
    redisContext *c = proc_redis_acquire(st, &slot, err);
    if (!c)
        return NULL;
    json_t *v = redis_script_list(c, &st->m, state, dead, limit, cursor, err);
    redis_link_release(&st->link, slot, c);
    return v;
}

static json_t *proc_redis_list(proc_t *self, int state, size_t limit, const char *cursor, jobd_error *err)
{
    return proc_redis_list_any(self, state, false, limit, cursor, err);
}

static json_t *proc_redis_dead_list(proc_t *self, size_t limit, const char *cursor, jobd_error *err)
{
    return proc_redis_list_any(self, JOB_DEAD, true, limit, cursor, err);
}

static json_t *proc_redis_cancel(proc_t *self, const char *id, jobd_error *err)
{
    redis_store *st = self->priv;
    size_t slot;
    redisContext *c = proc_redis_acquire(st, &slot, err);
    if (!c)
        return NULL;
    json_t *v = redis_script_cancel(c, &st->m, id, err);
    redis_link_release(&st->link, slot, c);
    if (v)
        log_event(LOG_INFO, "job.cancelled", NULL, "queue %s: job %s cancelled by request",
                  st->q->cfg->name, id);
    return v;
}

static json_t *proc_redis_dead_op(proc_t *self, const char *id, bool retry, jobd_error *err)
{
    redis_store *st = self->priv;
    size_t slot;
    redisContext *c = proc_redis_acquire(st, &slot, err);
    if (!c)
        return NULL;
    json_t *v = redis_script_dead_op(c, &st->m, id, retry, err);
    redis_link_release(&st->link, slot, c);
    return v;
}

static json_t *proc_redis_dead_retry(proc_t *self, const char *id, jobd_error *err)
{
    return proc_redis_dead_op(self, id, true, err);
}

static int proc_redis_dead_delete(proc_t *self, const char *id, jobd_error *err)
{
    json_t *v = proc_redis_dead_op(self, id, false, err);
    json_decref(v);
    return v ? 0 : -1;
}

static int proc_redis_pause(proc_t *self, bool paused, jobd_error *err)
{
    redis_store *st = self->priv;
    size_t slot;
    redisContext *c = proc_redis_acquire(st, &slot, err);
    if (!c)
        return -1;
    int rc = redis_script_pause(c, &st->m, paused, err);
    redis_link_release(&st->link, slot, c);
    return rc;
}

static json_t *proc_redis_info(proc_t *self, jobd_error *err)
{
    redis_store *st = self->priv;
    size_t slot;
    redisContext *c = proc_redis_acquire(st, &slot, err);
    if (!c)
        return NULL;
    json_t *v = redis_script_info(c, &st->m, err);
    redis_link_release(&st->link, slot, c);
    return v;
}

static bool proc_redis_ready(proc_t *self)
{
    redis_store *st = self->priv;
    return !atomic_load(&st->link.down);
}

static json_t *proc_redis_stats(proc_t *self)
{
    redis_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    json_t *pid = json_string(st->pid);
    pthread_mutex_unlock(&st->mu);
    return json_pack("{s:o,s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "process", pid, "redis_up",
                     !atomic_load(&st->link.down), "fetched", (json_int_t)atomic_load(&st->n_fetched),
                     "succeeded", (json_int_t)atomic_load(&st->n_succeeded), "failed",
                     (json_int_t)atomic_load(&st->n_failed), "stale_outcomes",
                     (json_int_t)atomic_load(&st->n_stale), "requeued_from_dead_processes",
                     (json_int_t)atomic_load(&st->n_reaped), "trimmed",
                     (json_int_t)atomic_load(&st->n_trimmed));
}

static void proc_redis_destroy(proc_t *self)
{
    redis_store *st = self->priv;
    if (!st)
        return;
    proc_redis_stop(self, jobd_mono_ms());
    /* main joins the workers first, so every run has reported by now; wait
     * rather than free a lease a late run would still touch. */
    pthread_mutex_lock(&st->mu);
    while (st->n_leases > 0)
        proc_redis_wait_locked(st, 1000, &st->maint_stop);
    pthread_mutex_unlock(&st->mu);
    redis_link_destroy(&st->link);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
    self->priv = NULL;
}

static const store_ops proc_redis_store_ops = {
    .get = proc_redis_get,
    .list = proc_redis_list,
    .cancel = proc_redis_cancel,
    .pause = proc_redis_pause,
    .info = proc_redis_info,
    .dead_list = proc_redis_dead_list,
    .dead_retry = proc_redis_dead_retry,
    .dead_delete = proc_redis_dead_delete,
    .ready = proc_redis_ready,
};

static const proc_ops proc_redis_ops = {
    .name = "redis",
    .call = proc_redis_call,
    .start = proc_redis_start,
    .stop = proc_redis_stop,
    .stats = proc_redis_stats,
    .destroy = proc_redis_destroy,
    .store = &proc_redis_store_ops,
};

/* --- creation --- */

static int proc_redis_check(const json_t *opts, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)opts, key, val) {
        if (strcmp(key, "poll_interval") != 0) {
            snprintf(err, errlen, "unknown option \"%s\"", key);
            return -1;
        }
        if (!json_is_number(val) || json_number_value(val) <= 0) {
            snprintf(err, errlen, "poll_interval: must be a number > 0");
            return -1;
        }
    }
    return 0;
}

/* Connects once to refuse an unfit server at start (maxmemory-policy,
 * schema). Unreachable is not fatal: jobd starts with Redis down and the
 * prober runs the same checks once it answers. */
static int proc_redis_first_contact(redis_store *st, char *err, size_t errlen)
{
    char why[512] = "";
    redisContext *c = redis_conn_open(&st->link.addr, st->link.timeout, st->link.timeout, why,
                                      sizeof why);
    int rc = c ? redis_script_check_server(c, &st->m, st->ctx->cfg->redis_allow_eviction, why,
                                           sizeof why)
               : -2;
    if (c)
        redisFree(c);
    if (rc == -1) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (rc == -2)
        redis_link_set_down(&st->link, why[0] ? why : "connection failed at start");
    return 0;
}

static void proc_redis_free_store(redis_store *st)
{
    redis_link_destroy(&st->link);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static proc_t *proc_redis_create(jobd_t *ctx, queue_t *q, const json_t *opts, proc_t *delegate,
                         char *err, size_t errlen)
{
    const config_t *cfg = ctx->cfg;
    proc_t *p = pipeline_proc_new(&proc_redis_ops, q, delegate);
    redis_store *st = p ? calloc(1, sizeof *st) : NULL;
    if (!st) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* HTTP threads plus the aggregate flusher and a spare. */
    size_t pool = (size_t)(cfg->http_threads > 0 ? cfg->http_threads : 1) + 2;
    if (redis_link_init(&st->link, cfg->redis_url, cfg->redis_timeout, pool, err, errlen) != 0) {
        free(st);
        free(p);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    st->self = p;
    st->ctx = ctx;
    st->q = q;
    const json_t *pi = json_object_get(opts, "poll_interval");
    st->poll_interval = pi ? json_number_value(pi) : cfg->poll_interval;
    redis_script_model_init(&st->m, cfg->redis_prefix, q->cfg->name, q->cfg->max_attempts);
    proc_redis_new_pid(st->pid);
    if (proc_redis_first_contact(st, err, errlen) != 0) {
        proc_redis_free_store(st);
        free(p);
        return NULL;
    }
    p->priv = st;
    return p;
}

const proc_kind proc_redis_kind = {"redis", true, proc_redis_check, proc_redis_create};
