/* proc_redis_run.c - the redis processor's running side: the fetch loop
 * that reserves workers, then takes and leases that many jobs in one script
 * and hands them to the executor; and the completer that writes their
 * outcomes in batches, one script per batch (fencing tokens make a stale
 * outcome harmless). */
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "../server/metrics.h"
#include "job.h"
#include "proc_redis.h"
#include "worker.h"

#define PROC_REDIS_FETCH_MAX 64   /* jobs taken and leased in one script */
#define PROC_REDIS_BLOCK_S 0.5    /* BLMOVE wait while the queue is idle */
#define PROC_REDIS_DONE_BATCH 128 /* outcomes written in one script */
#define PROC_REDIS_DONE_LOG_EVERY 10 /* error answers between two log lines of one outcome */
#define PROC_REDIS_PAUSE_CHECK_MS 250
#define PROC_REDIS_RESERVE_WAIT_MS 200
#define PROC_REDIS_LIMIT_WAIT_MS 1000 /* longest wait for the rate or max_running */
#define PROC_REDIS_PROCS_TRIES 3      /* process-list reloads in one fetch round */
#define PROC_REDIS_PROCS_WAIT_MS 50   /* then the pause before the next round */

/* --- leases --- */

/* Leases are linked into and out of st->active in batches (one lock per
 * fetch or written batch, not per job: 64 workers contend for st->mu). */

/* Puts l on the active list. Call with st->mu held. */
static void proc_redis_link_locked(proc_redis_store *st, proc_redis_lease *l)
{
    l->prev = NULL;
    l->next = st->active;
    if (st->active)
        st->active->prev = l;
    st->active = l;
    st->n_leases++;
}

/* Takes l off the active list. Call with st->mu held. */
static void proc_redis_unlink_locked(proc_redis_store *st, proc_redis_lease *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else if (st->active == l)
        st->active = l->next;
    if (l->next)
        l->next->prev = l->prev;
    /* Only destroy waits for this (for none left): a broadcast per job would
     * wake every thread that waits on cv, for nothing. */
    if (--st->n_leases == 0)
        pthread_cond_broadcast(&st->cv);
}

static void proc_redis_lease_delete(proc_redis_lease *l)
{
    job_free(l->job);
    free(l);
}

/* Forgets a lease: off the active list, freed, and destroy is told. */
static void proc_redis_lease_free(proc_redis_lease *l)
{
    proc_redis_store *st = l->st;
    pthread_mutex_lock(&st->mu);
    proc_redis_unlink_locked(st, l);
    pthread_mutex_unlock(&st->mu);
    proc_redis_lease_delete(l);
}

/* release_strays callback: true when this process holds a lease on id. */
static bool proc_redis_holds(void *arg, const char *id)
{
    proc_redis_store *st = arg;
    pthread_mutex_lock(&st->mu);
    proc_redis_lease *l = st->active;
    while (l && strcmp(l->job->id, id) != 0)
        l = l->next;
    pthread_mutex_unlock(&st->mu);
    return l != NULL;
}

/* --- running: outcomes --- */

/* The run ended (worker thread): decide the next state and queue the write. */
static void proc_redis_run_done(void *done_ctx, size_t index, const outcome_t *out)
{
    (void)index;
    proc_redis_lease *l = done_ctx;
    proc_redis_store *st = l->st;
    job_t *job = l->job;
    if (out->interrupted) {
        /* Cut short by the shutdown deadline: the lease stays in Redis, and
         * stop's give-back counts the attempt, as for a dead process's. */
        log_event(LOG_WARN, "job.interrupted", job, "%s: goes back to ready at stop, attempt counted",
                  JOBD_INTERRUPTED);
        proc_redis_lease_free(l);
        return;
    }
    job->attempts++;
    if (out->kind != OUT_SUCCEEDED)
        job_set_error(job, out->message ? out->message : "failed");
    l->outcome = pipeline_next_state(st->q->cfg, job, out, &l->delay);
    metrics_job_filed(st->ctx->metrics, st->q->cfg, l->outcome);
    job->state = l->outcome; /* for the log lines: the run is over */
    l->duration = out->duration;
    pthread_mutex_lock(&st->mu);
    bool closed = st->done.phase >= PROC_REDIS_CLOSED;
    if (!closed) {
        if (st->done_tail)
            st->done_tail->qnext = l;
        else
            st->done_head = l;
        st->done_tail = l;
        pthread_cond_signal(&st->done_cv);
    }
    pthread_mutex_unlock(&st->mu);
    if (closed) {
        /* After stop the lease went back to ready: another run will count. */
        log_event(LOG_WARN, "job.outcome_dropped", job,
                  "ended after shutdown gave its lease back; it will run again");
        proc_redis_lease_free(l);
    }
}

/* Successes are DEBUG: one INFO line per job cost 3-5% of CPU at full
 * load, and the counters say how many succeeded. Failures stay INFO/WARN. */
static void proc_redis_log_outcome(const proc_redis_lease *l)
{
    const job_t *job = l->job;
    if (l->outcome == JOB_SUCCEEDED)
        log_event(LOG_DEBUG, "job.succeeded", job, "in %.3fs", l->duration);
    else if (l->outcome == JOB_RETRYING)
        log_event(LOG_INFO, "job.failed", job, "retry in %.1fs: %s", l->delay, job->last_error);
    else
        log_event(LOG_WARN, "job.dead", job, "%s", job->last_error);
}

/* Puts leases [head..] back at the front of the completion queue. */
static void proc_redis_requeue_done(proc_redis_store *st, proc_redis_lease *head,
                                    proc_redis_lease *tail, size_t n)
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

/* Acts on the answer to one outcome (1 written, 0 stale, -1 Redis answered
 * an error, why in err); true when the lease is finished with. */
static bool proc_redis_done_reply(proc_redis_store *st, proc_redis_lease *l, int result,
                                  const jobd_error *err)
{
    if (result == 1) {
        atomic_fetch_add(l->outcome == JOB_SUCCEEDED ? &st->n_succeeded : &st->n_failed, 1);
        proc_redis_log_outcome(l);
        return true;
    }
    if (result == 0) {
        atomic_fetch_add(&st->n_stale, 1);
        log_event(LOG_WARN, "job.stale", l->job,
                  "lease %lld was taken back (process presumed dead): outcome %s not recorded",
                  l->token, job_state_name(l->outcome));
        return true;
    }
    /* Never dropped: the lease would stay in our live lease set and the job
     * `running` for good. Retried with backoff until Redis takes it (or stop
     * abandons it to the next process). */
    if (l->tries++ % PROC_REDIS_DONE_LOG_EVERY == 0)
        log_event(LOG_ERROR, "job.outcome_refused", l->job,
                  "Redis refused the outcome (%d times so far), retrying: %s", l->tries,
                  err->message);
    return false;
}

/* Settles each lease of a batch that Redis answered: done[i] for each, or
 * with done NULL (an error answer, why in err) each is tried again later. */
static void proc_redis_settle(proc_redis_store *st, proc_redis_lease *head, const int *done,
                              const jobd_error *err)
{
    proc_redis_lease *retry = NULL, *retry_tail = NULL, *gone = NULL, *next;
    size_t i = 0, n_retry = 0, n_gone = 0;
    for (proc_redis_lease *l = head; l; l = next, i++) {
        next = l->qnext;
        l->qnext = NULL;
        if (proc_redis_done_reply(st, l, done ? done[i] : -1, err)) {
            l->qnext = gone;
            gone = l;
            n_gone++;
        } else {
            *(retry_tail ? &retry_tail->qnext : &retry) = l;
            retry_tail = l;
            n_retry++;
        }
    }
    pthread_mutex_lock(&st->mu);
    st->done_inflight -= n_gone;
    for (proc_redis_lease *l = gone; l; l = l->qnext)
        proc_redis_unlink_locked(st, l);
    pthread_mutex_unlock(&st->mu);
    for (proc_redis_lease *l = gone; l; l = next) {
        next = l->qnext;
        proc_redis_lease_delete(l);
    }
    proc_redis_requeue_done(st, retry, retry_tail, n_retry);
}

/* Writes a batch of outcomes (leases of one lease set) in one script. 0 when
 * written, 1 when Redis answered an error (READONLY, LOADING, OOM: settled
 * for a retry), -1 when the connection failed (all go back to the queue). */
static int proc_redis_write_outcomes(proc_redis_store *st, redisContext *c, proc_redis_lease *head,
                                     size_t n)
{
    redis_write_outcome *outs = calloc(n, sizeof *outs);
    int *done = calloc(n, sizeof *done);
    jobd_error err = {0};
    int rc = -1;
    if (outs && done) {
        size_t i = 0;
        for (proc_redis_lease *l = head; l; l = l->qnext, i++)
            outs[i] = (redis_write_outcome){
                .job = l->job, .token = l->token, .next = l->outcome, .delay = l->delay};
        rc = redis_write_finish_batch(c, &st->m, head->plist, outs, n, done, &err);
    }
    bool answered = rc == 0 || (outs && done && !c->err);
    if (answered)
        proc_redis_settle(st, head, rc == 0 ? done : NULL, &err);
    free(outs);
    free(done);
    return !answered ? -1 : rc == 0 ? 0 : 1;
}

/* Takes up to PROC_REDIS_DONE_BATCH outcomes of one lease set off the
 * queue; NULL when the completer should exit (stopping and nothing left).
 * Called with st->mu held. */
static proc_redis_lease *proc_redis_take_outcomes(proc_redis_store *st, size_t *n,
                                                  proc_redis_lease **tail)
{
    while (!st->done_head && !proc_redis_stopping_locked(&st->done))
        pthread_cond_wait(&st->done_cv, &st->mu);
    proc_redis_lease *head = st->done_head, *l = head;
    *n = 0;
    *tail = NULL;
    /* The lease set changes only when Redis declared this process dead. */
    while (l && *n < PROC_REDIS_DONE_BATCH && strcmp(l->plist, head->plist) == 0) {
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
static void proc_redis_abandon_outcomes(proc_redis_store *st, proc_redis_lease *head, size_t n)
{
    pthread_mutex_lock(&st->mu);
    st->done_inflight -= n;
    pthread_mutex_unlock(&st->mu);
    for (proc_redis_lease *l = head, *next; l; l = next) {
        next = l->qnext;
        log_event(LOG_WARN, "job.outcome_lost", l->job,
                  "Redis unreachable at shutdown: outcome %s not recorded",
                  job_state_name(l->outcome));
        proc_redis_lease_free(l);
    }
}

void *proc_redis_done_main(void *arg)
{
    proc_redis_store *st = arg;
    redisContext *c = NULL;
    int64_t backoff = PROC_REDIS_BACKOFF_MIN_MS;
    bool refused = false; /* the last batch was answered with an error */
    for (;;) {
        size_t n;
        proc_redis_lease *tail;
        pthread_mutex_lock(&st->mu);
        proc_redis_lease *head = proc_redis_take_outcomes(st, &n, &tail);
        bool stopping = proc_redis_stopping_locked(&st->done);
        pthread_mutex_unlock(&st->mu);
        if (!head)
            break;
        if (!c)
            c = proc_redis_open(st, st->link.timeout);
        if (stopping && refused) {
            /* Stopping and Redis still refuses: leave them to the next process. */
            proc_redis_abandon_outcomes(st, head, n);
            continue;
        }
        int written = c ? proc_redis_write_outcomes(st, c, head, n) : -1;
        refused = written == 1;
        if (written == 0) {
            backoff = PROC_REDIS_BACKOFF_MIN_MS;
            continue;
        }
        if (refused) {
            /* Connection fine: wait before the retry (settle requeued them). */
            proc_redis_wait(st, proc_redis_backoff_next(&backoff), &st->done);
            continue;
        }
        proc_redis_drop(st, &c);
        if (stopping) {
            proc_redis_abandon_outcomes(st, head, n);
            continue;
        }
        proc_redis_requeue_done(st, head, tail, n);
        proc_redis_wait(st, proc_redis_backoff_next(&backoff), &st->done);
    }
    proc_redis_drop(st, &c);
    return NULL;
}

/* --- running: fetch --- */

/* Reserves 1..want worker slots (the first waits a little). 0 = none. */
static int proc_redis_reserve(proc_redis_store *st, int want)
{
    worker_pool_t *pool = st->ctx->pool;
    if (worker_pool_reserve(pool, st->q, jobd_mono_ms() + PROC_REDIS_RESERVE_WAIT_MS) != 0)
        return 0;
    int k = 1;
    while (k < want && worker_pool_reserve(pool, st->q, 0) == 0)
        k++;
    return k;
}

static void proc_redis_release_slots(proc_redis_store *st, int n)
{
    for (int i = 0; i < n; i++)
        worker_pool_release(st->ctx->pool, st->q);
}

/* Hands the leased jobs rl[0..n) to the executor, each on one reserved
 * slot; plist is the lease set they are in. */
static void proc_redis_start_runs(proc_redis_store *st, redis_write_lease *rl, int n,
                                  const char *plist)
{
    proc_redis_lease *ls[PROC_REDIS_FETCH_MAX];
    for (int i = 0; i < n; i++) {
        ls[i] = malloc(sizeof *ls[i]);
        if (ls[i]) {
            *ls[i] = (proc_redis_lease){.st = st, .job = rl[i].job, .token = rl[i].token};
            memcpy(ls[i]->plist, plist, sizeof ls[i]->plist);
        }
    }
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < n; i++)
        if (ls[i])
            proc_redis_link_locked(st, ls[i]);
    pthread_mutex_unlock(&st->mu);
    proc_t *exec = st->self->delegate;
    for (int i = 0; i < n; i++) {
        if (!ls[i]) {
            /* The lease stays in our set; stop (or a reconcile) gives it back. */
            log_event(LOG_ERROR, "job.not_started", rl[i].job, "out of memory");
            job_free(rl[i].job);
            proc_redis_release_slots(st, 1);
            continue;
        }
        atomic_fetch_add(&st->n_fetched, 1);
        log_event(LOG_DEBUG, "job.started", ls[i]->job, "attempt %d, lease %lld",
                  ls[i]->job->attempts + 1, ls[i]->token);
        exec->ops->call(exec, &ls[i]->job, 1, proc_redis_run_done, ls[i]);
    }
}

typedef struct proc_redis_fetch_state {
    redisContext *c;
    int64_t backoff;
    bool idle;      /* the last round found nothing: wait with BLMOVE */
    bool reconcile; /* a reply may have been lost: check our lease set */
    bool paused;
    int64_t paused_checked;
    redis_write_procs procs; /* max_running: the processes whose leases count */
    bool procs_loaded;
} proc_redis_fetch_state;

/* Waits ms in full, unless the fetch thread is told to stop: other wake-ups
 * of st->cv (this process's last lease ending) must not cut it short, or a
 * process would poll right after its own runs end and take every freed
 * max_running slot before the others look. */
static void proc_redis_limit_sleep(proc_redis_store *st, int64_t ms)
{
    int64_t until = jobd_mono_ms() + ms;
    pthread_mutex_lock(&st->mu);
    for (int64_t left = ms; left > 0 && !proc_redis_stopping_locked(&st->fetch);
         left = until - jobd_mono_ms())
        proc_redis_wait_locked(st, left, &st->fetch);
    pthread_mutex_unlock(&st->mu);
}

/* The fetch script under the queue's limits: reloads the process list when
 * the script finds it out of date (a process came or went), and waits out
 * (at most PROC_REDIS_LIMIT_WAIT_MS, so stop is seen) the time until the
 * rate or max_running allows a start. Returns as redis_write_fetch; -4 when
 * limited (waited). */
static int proc_redis_fetch_limited(proc_redis_store *st, proc_redis_fetch_state *fs,
                                    const char *plist, int k, redis_write_lease *leases)
{
    for (int tries = 0; tries < PROC_REDIS_PROCS_TRIES; tries++) {
        if (st->m.max_running > 0 && !fs->procs_loaded) {
            if (redis_write_procs_load(fs->c, &st->m, &fs->procs) != 0)
                return -1;
            fs->procs_loaded = true;
        }
        int64_t wait_ms = 0;
        long buried = 0;
        int n = redis_write_fetch_limited(fs->c, &st->m, plist, (size_t)k, leases, &fs->procs,
                                          &wait_ms, &buried);
        metrics_leases_ended(st->ctx->metrics, st->q->cfg, buried, buried, false);
        if (n == -3) {
            fs->procs_loaded = false;
            continue;
        }
        if (n == -4) {
            int64_t ms = wait_ms > PROC_REDIS_LIMIT_WAIT_MS ? PROC_REDIS_LIMIT_WAIT_MS : wait_ms;
            proc_redis_limit_sleep(st, ms < 1 ? 1 : ms);
        }
        return n;
    }
    /* The processes keep changing: try again next round, not at once. */
    proc_redis_wait(st, PROC_REDIS_PROCS_WAIT_MS, &st->fetch);
    return -4;
}

/* One round: (wait for jobs while idle,) reserve workers, fetch, run. */
static void proc_redis_fetch_round(proc_redis_store *st, proc_redis_fetch_state *fs)
{
    if (fs->idle) {
        int w = redis_write_wait(fs->c, &st->m, PROC_REDIS_BLOCK_S);
        if (w < 0)
            proc_redis_drop(st, &fs->c);
        if (w <= 0)
            return;
        fs->idle = false;
    }
    int k = proc_redis_reserve(st, PROC_REDIS_FETCH_MAX);
    if (k == 0)
        return;
    char pid[REDIS_PID_LEN + 1], plist[REDIS_KEY_MAX];
    proc_redis_pid(st, pid);
    redis_model_proc_key(&st->m, pid, plist);
    redis_write_lease leases[PROC_REDIS_FETCH_MAX];
    int n = proc_redis_fetch_limited(st, fs, plist, k, leases);
    proc_redis_release_slots(st, n > 0 ? k - n : k);
    if (n == -4)
        return; /* limited: waited already; ready may hold jobs, so not idle */
    if (n == -2) {
        fs->paused = true;
        fs->paused_checked = jobd_mono_ms();
    } else if (n < 0) {
        /* The answer may have been lost after the script ran. */
        fs->reconcile = true;
        if (fs->c->err)
            proc_redis_drop(st, &fs->c);
    }
    fs->idle = n == 0;
    if (n > 0)
        proc_redis_start_runs(st, leases, n, plist);
}

/* Gets the connection ready: open, reconcile, paused flag. False = not now. */
static bool proc_redis_fetch_ready(proc_redis_store *st, proc_redis_fetch_state *fs)
{
    if (!fs->c) {
        /* BLMOVE blocks up to PROC_REDIS_BLOCK_S: the socket must wait longer. */
        fs->c = proc_redis_open(st, st->link.timeout + PROC_REDIS_BLOCK_S);
        if (!fs->c)
            return false;
        fs->reconcile = true;
    }
    char pid[REDIS_PID_LEN + 1];
    proc_redis_pid(st, pid);
    if (fs->reconcile) {
        long n = redis_write_release_strays(fs->c, &st->m, pid, proc_redis_holds, st);
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
    if (now - fs->paused_checked >= PROC_REDIS_PAUSE_CHECK_MS) {
        int p = redis_read_paused(fs->c, &st->m);
        if (p < 0) {
            proc_redis_drop(st, &fs->c);
            return false;
        }
        fs->paused = p == 1;
        fs->paused_checked = now;
    }
    return !fs->paused;
}

void *proc_redis_fetch_main(void *arg)
{
    proc_redis_store *st = arg;
    proc_redis_fetch_state fs = {.backoff = PROC_REDIS_BACKOFF_MIN_MS,
                                 .paused_checked = -PROC_REDIS_PAUSE_CHECK_MS};
    while (!proc_redis_stopping(st, &st->fetch)) {
        bool registered = proc_redis_registered(st);
        if (!registered || atomic_load(&st->link.down)) {
            proc_redis_wait(st, PROC_REDIS_BACKOFF_MIN_MS, &st->fetch);
            continue;
        }
        if (!proc_redis_fetch_ready(st, &fs)) {
            int64_t ms = fs.c ? PROC_REDIS_PAUSE_CHECK_MS : proc_redis_backoff_next(&fs.backoff);
            proc_redis_wait(st, ms, &st->fetch);
            continue;
        }
        fs.backoff = PROC_REDIS_BACKOFF_MIN_MS;
        proc_redis_fetch_round(st, &fs);
    }
    redis_write_procs_free(&fs.procs);
    proc_redis_drop(st, &fs.c);
    return NULL;
}
