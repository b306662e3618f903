/* proc_redis.c - the redis processor: a durable store shared by many jobd
 * processes (see proc_redis.h for how its files and threads divide the
 * work). This file: creation and safety checks, submissions, the store side
 * of the API, start and stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/log.h"
#include "../server/metrics.h"
#include "job.h"
#include "proc_redis.h"
#include "redis_gauges.h"
#include "worker.h"

#define PROC_REDIS_CLOCK_MARGIN_MS 20 /* error allowed in our estimate of Redis's clock */

/* --- small helpers --- */

static void proc_redis_deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = deadline_ms / 1000;
    ts->tv_nsec = (deadline_ms % 1000) * 1000000L;
}

void proc_redis_wait_locked(proc_redis_store *st, int64_t ms, const proc_redis_thread *t)
{
    struct timespec ts;
    proc_redis_deadline_ts(jobd_mono_ms() + ms, &ts);
    if (!t || !proc_redis_stopping_locked(t))
        pthread_cond_timedwait(&st->cv, &st->mu, &ts);
}

void proc_redis_wait(proc_redis_store *st, int64_t ms, const proc_redis_thread *t)
{
    pthread_mutex_lock(&st->mu);
    proc_redis_wait_locked(st, ms, t);
    pthread_mutex_unlock(&st->mu);
}

bool proc_redis_stopping(proc_redis_store *st, const proc_redis_thread *t)
{
    pthread_mutex_lock(&st->mu);
    bool v = proc_redis_stopping_locked(t);
    pthread_mutex_unlock(&st->mu);
    return v;
}

bool proc_redis_registered(proc_redis_store *st)
{
    pthread_mutex_lock(&st->mu);
    bool v = st->registered;
    pthread_mutex_unlock(&st->mu);
    return v;
}

int64_t proc_redis_backoff_next(int64_t *backoff)
{
    int64_t now = *backoff;
    *backoff = now * 2 > PROC_REDIS_BACKOFF_MAX_MS ? PROC_REDIS_BACKOFF_MAX_MS : now * 2;
    return now;
}

void proc_redis_new_pid(char out[REDIS_PID_LEN + 1])
{
    unsigned char b[REDIS_PID_LEN / 2];
    arc4random_buf(b, sizeof b);
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void proc_redis_drop(proc_redis_store *st, redisContext **c)
{
    char why[128] = "";
    if (*c && (*c)->err)
        snprintf(why, sizeof why, "%s", (*c)->errstr);
    if (*c)
        redisFree(*c);
    *c = NULL;
    if (why[0])
        redis_link_suspect(&st->link, why);
}

redisContext *proc_redis_open(proc_redis_store *st, double io)
{
    char why[256];
    redisContext *c = redis_conn_open(&st->link.addr, st->link.timeout, io, why, sizeof why);
    if (!c)
        redis_link_set_down(&st->link, why);
    return c;
}

void proc_redis_pid(proc_redis_store *st, char out[REDIS_PID_LEN + 1])
{
    pthread_mutex_lock(&st->mu);
    memcpy(out, st->pid, REDIS_PID_LEN + 1);
    pthread_mutex_unlock(&st->mu);
}

/* --- submission (HTTP threads) --- */

/* One request's use of the pool: its deadline (redis.timeout from when the
 * request began, taken once, before waiting for a connection) and the
 * connection it holds. */
typedef struct proc_redis_use {
    int64_t deadline;
    size_t slot;
    redisContext *c; /* NULL: none (err says why) */
} proc_redis_use;

/* Takes a connection for a request that begins now. False with 503 in err. */
static bool proc_redis_acquire(proc_redis_store *st, proc_redis_use *u, jobd_error *err)
{
    u->deadline = jobd_mono_ms() + (int64_t)(st->link.timeout * 1000.0);
    u->c = redis_link_acquire(&st->link, u->deadline, &u->slot, err);
    return u->c != NULL;
}

/* After a command on u failed: true when it should run once more, on a new
 * connection (the pooled one had gone stale: Redis restarted). */
static bool proc_redis_again(proc_redis_store *st, proc_redis_use *u, jobd_error *err)
{
    return redis_link_retry(&st->link, u->slot, &u->c, u->deadline, err);
}

static void proc_redis_release(proc_redis_store *st, proc_redis_use *u)
{
    if (u->c)
        redis_link_release(&st->link, u->slot, u->c);
    u->c = NULL;
}

/* Wakes the prober (the maintenance thread) when any thread marks Redis
 * down, so that it looks again at once rather than at its next tick. */
static void proc_redis_on_down(void *arg)
{
    proc_redis_store *st = arg;
    pthread_mutex_lock(&st->mu);
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* The latest Redis time at which a submission may still be stored: the
 * moment its caller gives up (deadline, mono) less a margin for the clock
 * estimate, so that a submission answered 503 for a timeout is never stored
 * later by a Redis that was slow or frozen. 0 (no limit) until the clock is known. */
static int64_t proc_redis_not_after(proc_redis_store *st, int64_t deadline)
{
    int64_t at = redis_link_redis_ms(&st->link, deadline - PROC_REDIS_CLOCK_MARGIN_MS);
    return at > 0 ? at : 0;
}

/* Reports each job's outcome: refused (rc != 0, or waits[i] > 0 for
 * max_depth), replayed or stored; a stored job with the text that was stored. */
static void proc_redis_report(proc_redis_store *st, job_t **replayed, const int *waits,
                              char **texts, size_t n, int rc, const jobd_error *err,
                              proc_done_fn done, void *done_ctx)
{
    for (size_t i = 0; i < n; i++) {
        job_t *rep = replayed ? replayed[i] : NULL;
        outcome_t out = {.kind = OUT_REFUSED, .err = *err};
        if (rc == 0 && waits[i] > 0) {
            redis_write_queue_full(&st->m, waits[i], &out.err);
        } else if (rc == 0) {
            out.kind = rep ? OUT_REPLAYED : OUT_STORED;
            if (rep)
                out.view = job_view(rep);
            else
                out.view_text = texts[i];
        }
        done(done_ctx, i, &out);
        json_decref(out.view);
        job_free(rep);
        free(texts ? texts[i] : NULL);
    }
}

/* The command was sent but its answer never came (timeout, connection
 * lost): Redis may have stored the jobs. Says so, and what to do. */
static void proc_redis_sent_unanswered(jobd_error *err)
{
    size_t len = strlen(err->message);
    snprintf(err->message + len, sizeof err->message - len, "%s",
             "; the jobs may have been stored: retry with the same ids (a replay is safe)");
}

static int proc_redis_call_parts(proc_t *self, job_t *const *jobs, size_t n, const size_t *parts,
                                 size_t nparts, proc_done_fn done, void *done_ctx)
{
    proc_redis_store *st = self->priv;
    jobd_error err = {0};
    job_t **replayed = calloc(n ? n : 1, sizeof *replayed);
    char **texts = calloc(n ? n : 1, sizeof *texts);
    int *waits = calloc(n ? n : 1, sizeof *waits);
    int rc = -1;
    proc_redis_use u;
    if (!replayed || !texts || !waits) {
        jobd_fail(&err, 503, "unavailable", "out of memory");
        err.retry_after = 1;
    } else if (proc_redis_acquire(st, &u, &err)) {
        int64_t not_after = proc_redis_not_after(st, u.deadline);
        bool unanswered = false;
        do {
            for (size_t i = 0; i < n; i++) {
                free(texts[i]);
                texts[i] = NULL;
            }
            rc = redis_write_enqueue_parts(u.c, &st->m, jobs, n, parts, nparts, not_after,
                                           replayed, waits, texts, &err);
            unanswered = unanswered || (rc != 0 && u.c->err);
        } while (rc != 0 && proc_redis_again(st, &u, &err));
        if (rc != 0 && unanswered)
            proc_redis_sent_unanswered(&err);
        proc_redis_release(st, &u);
    }
    proc_redis_report(st, replayed, waits, texts, n, rc, &err, done, done_ctx);
    free(replayed);
    free(texts);
    free(waits);
    return 0;
}

static int proc_redis_call(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done,
                           void *done_ctx)
{
    return proc_redis_call_parts(self, jobs, n, NULL, 0, done, done_ctx);
}

/* --- start and stop --- */

/* Starts thread t running fn. 0, or -1 (logged; t stays IDLE). */
static int proc_redis_spawn(proc_redis_store *st, proc_redis_thread *t, void *(*fn)(void *),
                            const char *what)
{
    pthread_mutex_lock(&st->mu);
    t->phase = PROC_REDIS_RUNNING;
    pthread_mutex_unlock(&st->mu);
    if (pthread_create(&t->th, NULL, fn, st) != 0) {
        pthread_mutex_lock(&st->mu);
        t->phase = PROC_REDIS_IDLE;
        pthread_mutex_unlock(&st->mu);
        log_event(LOG_ERROR, "redis.start_failed", NULL, "queue %s: cannot start the %s thread",
                  st->q->cfg->name, what);
        return -1;
    }
    return 0;
}

static int proc_redis_start(proc_t *self)
{
    proc_redis_store *st = self->priv;
    st->started = true;
    if (proc_redis_spawn(st, &st->maint, proc_redis_maint_main, "maintenance") != 0)
        return -1;
    if (!st->ctx->pool)
        return 0; /* API-only node: store and maintain, never fetch */
    if (proc_redis_spawn(st, &st->beat, proc_redis_beat_main, "heartbeat") != 0 ||
        proc_redis_spawn(st, &st->done, proc_redis_done_main, "completion") != 0 ||
        proc_redis_spawn(st, &st->fetch, proc_redis_fetch_main, "fetch") != 0)
        return -1;
    return 0;
}

/* True while t runs (started, not yet joined). */
static bool proc_redis_alive(const proc_redis_thread *t)
{
    return t->phase != PROC_REDIS_IDLE && t->phase != PROC_REDIS_STOPPED;
}

/* Moves t to phase (under mu) and wakes everyone. */
static void proc_redis_set_phase(proc_redis_store *st, proc_redis_thread *t, proc_redis_phase phase)
{
    pthread_mutex_lock(&st->mu);
    t->phase = phase;
    pthread_cond_broadcast(&st->cv);
    pthread_cond_broadcast(&st->done_cv);
    pthread_mutex_unlock(&st->mu);
}

/* Tells t to stop and joins it, if it runs. */
static void proc_redis_join(proc_redis_store *st, proc_redis_thread *t)
{
    if (!proc_redis_alive(t))
        return;
    proc_redis_set_phase(st, t, PROC_REDIS_STOPPING);
    pthread_join(t->th, NULL);
    proc_redis_set_phase(st, t, PROC_REDIS_STOPPED);
}

/* Waits until this queue's runs ended and their outcomes are written, or deadline. */
static void proc_redis_drain(proc_redis_store *st, int64_t deadline_ms)
{
    while (atomic_load(&st->q->running) > 0 && jobd_mono_ms() < deadline_ms)
        proc_redis_wait(st, 5, &st->done);
    pthread_mutex_lock(&st->mu);
    while ((st->done_head || st->done_inflight) && jobd_mono_ms() < deadline_ms)
        proc_redis_wait_locked(st, 5, &st->done);
    pthread_mutex_unlock(&st->mu);
}

/* Gives every lease still in our list back to ready and deregisters. Each
 * counts an attempt (JOBD_INTERRUPTED), as a dead process's lease does: a job
 * that always outlives shutdown_timeout ends dead instead of running
 * forever. With Redis away the registration stays: once our heartbeat
 * expires, a live process takes the leases back (counting the attempt too). */
static void proc_redis_give_back(proc_redis_store *st)
{
    if (!proc_redis_registered(st))
        return;
    char pid[REDIS_PID_LEN + 1];
    proc_redis_pid(st, pid);
    redisContext *c = proc_redis_open(st, st->link.timeout);
    redis_write_taken got = {0};
    int rc = c ? redis_write_give_back(c, &st->m, pid, true, JOBD_INTERRUPTED, &got) : -1;
    /* Not counted failed here: a run cut short by shutdown was, where it ran. */
    metrics_leases_ended(st->ctx->metrics, st->q->cfg, got.moved, got.dead, false);
    if (got.moved > 0)
        log_event(LOG_INFO, "redis.given_back", NULL,
                  "queue %s: %ld unfinished jobs went back to ready (%ld) or dead (%ld), "
                  "an attempt counted",
                  st->q->cfg->name, got.moved, got.moved - got.dead, got.dead);
    if (rc == 0 && redis_write_beat(c, &st->m, pid, "leave", 0) == 1) {
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
    proc_redis_store *st = self->priv;
    if (!st->started)
        return;
    st->started = false;
    proc_redis_join(st, &st->fetch);
    if (proc_redis_alive(&st->done)) {
        proc_redis_drain(st, deadline_ms);
        proc_redis_set_phase(st, &st->done, PROC_REDIS_CLOSED);
        proc_redis_join(st, &st->done);
    }
    /* No heartbeat may re-register us after we left. */
    proc_redis_join(st, &st->maint);
    proc_redis_join(st, &st->beat);
    proc_redis_give_back(st);
}

/* --- store side --- */

static json_t *proc_redis_get(proc_t *self, const char *id, jobd_error *err)
{
    proc_redis_store *st = self->priv;
    proc_redis_use u;
    json_t *v = NULL;
    if (!proc_redis_acquire(st, &u, err))
        return NULL;
    do
        v = redis_read_get(u.c, &st->m, id, err);
    while (!v && proc_redis_again(st, &u, err));
    proc_redis_release(st, &u);
    return v;
}

static json_t *proc_redis_list_any(proc_t *self, int state, bool dead, size_t limit,
                                   const char *cursor, jobd_error *err)
{
    proc_redis_store *st = self->priv;
    proc_redis_use u;
    json_t *v = NULL;
    if (!proc_redis_acquire(st, &u, err))
        return NULL;
    do
        v = redis_read_list(u.c, &st->m, state, dead, limit, cursor, err);
    while (!v && proc_redis_again(st, &u, err));
    proc_redis_release(st, &u);
    return v;
}

static json_t *proc_redis_list(proc_t *self, int state, size_t limit, const char *cursor,
                               jobd_error *err)
{
    return proc_redis_list_any(self, state, false, limit, cursor, err);
}

static json_t *proc_redis_dead_list(proc_t *self, size_t limit, const char *cursor, jobd_error *err)
{
    return proc_redis_list_any(self, JOB_DEAD, true, limit, cursor, err);
}

static json_t *proc_redis_cancel(proc_t *self, const char *id, jobd_error *err)
{
    proc_redis_store *st = self->priv;
    proc_redis_use u;
    json_t *v = NULL;
    if (!proc_redis_acquire(st, &u, err))
        return NULL;
    do
        v = redis_write_cancel(u.c, &st->m, id, err);
    while (!v && proc_redis_again(st, &u, err));
    proc_redis_release(st, &u);
    if (v)
        log_event(LOG_INFO, "job.cancelled", NULL, "queue %s: job %s cancelled by request",
                  st->q->cfg->name, id);
    return v;
}

static json_t *proc_redis_dead_op(proc_t *self, const char *id, bool retry, jobd_error *err)
{
    proc_redis_store *st = self->priv;
    proc_redis_use u;
    json_t *v = NULL;
    if (!proc_redis_acquire(st, &u, err))
        return NULL;
    do
        v = redis_write_dead_op(u.c, &st->m, id, retry, err);
    while (!v && proc_redis_again(st, &u, err));
    proc_redis_release(st, &u);
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
    proc_redis_store *st = self->priv;
    proc_redis_use u;
    int rc = -1;
    if (!proc_redis_acquire(st, &u, err))
        return -1;
    do
        rc = redis_write_pause(u.c, &st->m, paused, err);
    while (rc != 0 && proc_redis_again(st, &u, err));
    proc_redis_release(st, &u);
    return rc;
}

static json_t *proc_redis_info(proc_t *self, jobd_error *err)
{
    proc_redis_store *st = self->priv;
    proc_redis_use u;
    json_t *v = NULL;
    if (!proc_redis_acquire(st, &u, err))
        return NULL;
    do
        v = redis_read_info(u.c, &st->m, err);
    while (!v && proc_redis_again(st, &u, err));
    proc_redis_release(st, &u);
    return v;
}

/* Every Redis queue at once, on a connection of the first one's pool: they
 * all share redis.url, so one script call reads them all. */
static void proc_redis_gauges(proc_t *const *stores, size_t n, store_gauges *out)
{
    const redis_model **models = calloc(n ? n : 1, sizeof *models);
    if (!models)
        return;
    for (size_t i = 0; i < n; i++)
        models[i] = &((proc_redis_store *)stores[i]->priv)->m;
    proc_redis_store *st = stores[0]->priv;
    proc_redis_use u;
    jobd_error err;
    if (n > 0 && proc_redis_acquire(st, &u, &err)) {
        while (redis_gauges_read(u.c, models, n, out, &err) != 0 && proc_redis_again(st, &u, &err))
            ;
        proc_redis_release(st, &u);
    }
    free(models);
}

/* Ready: Redis is up, its clock is known (submission deadlines need it)
 * and, where this process runs jobs, it is registered and its heartbeat is
 * alive (one that cannot register never gets a job). */
static bool proc_redis_ready(proc_t *self)
{
    proc_redis_store *st = self->priv;
    if (atomic_load(&st->link.down) || !atomic_load(&st->link.clock_known))
        return false;
    if (!st->ctx->pool)
        return true;
    int64_t beat = atomic_load(&st->beat_ok_ms);
    return beat > 0 && jobd_mono_ms() - beat < (int64_t)(st->ctx->cfg->lease_expiry * 1000.0);
}

/* Redis's clock: the last TIME the maintenance thread measured, carried
 * forward on our monotonic clock (the host's wall clock plays no part). */
static int64_t proc_redis_clock_ms(proc_t *self)
{
    proc_redis_store *st = self->priv;
    return redis_link_redis_ms(&st->link, jobd_mono_ms());
}

/* ZSCORE (tick_ms < 0) or ZADD GT tick_ms of schedule name in the periodic
 * key: the reply (new, caller frees), or NULL with 503 in err. */
static redisReply *proc_redis_tick_cmd(proc_redis_store *st, const char *name, int64_t tick_ms,
                                       jobd_error *err)
{
    proc_redis_use u;
    redisReply *r = NULL;
    if (!proc_redis_acquire(st, &u, err))
        return NULL;
    do {
        redis_cmd cmd;
        redis_cmd_init(&cmd, tick_ms < 0 ? "ZSCORE" : "ZADD");
        redis_cmd_adds(&cmd, st->m.periodic);
        if (tick_ms >= 0) {
            /* GT: processes recording ticks out of order never move it back. */
            redis_cmd_adds(&cmd, "GT");
            redis_cmd_addi(&cmd, tick_ms);
        }
        redis_cmd_adds(&cmd, name);
        r = redis_conn_call(u.c, &cmd, err);
    } while (!r && proc_redis_again(st, &u, err));
    proc_redis_release(st, &u);
    return r;
}

static int proc_redis_tick_get(proc_t *self, const char *name, int64_t *tick_ms,
                               jobd_error *err)
{
    redisReply *r = proc_redis_tick_cmd(self->priv, name, -1, err);
    if (!r)
        return -1;
    *tick_ms = redis_conn_is_str(r) ? strtoll(r->str, NULL, 10) : 0; /* nil: none */
    freeReplyObject(r);
    return 0;
}

static int proc_redis_tick_set(proc_t *self, const char *name, int64_t tick_ms,
                               jobd_error *err)
{
    redisReply *r = proc_redis_tick_cmd(self->priv, name, tick_ms, err);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

static json_t *proc_redis_stats(proc_t *self)
{
    proc_redis_store *st = self->priv;
    char pid[REDIS_PID_LEN + 1];
    proc_redis_pid(st, pid);
    return json_pack(
        "{s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "process", pid, "redis_up",
        !atomic_load(&st->link.down), "reconnects", (json_int_t)atomic_load(&st->link.reconnects),
        "fetched", (json_int_t)atomic_load(&st->n_fetched),
        "succeeded", (json_int_t)atomic_load(&st->n_succeeded), "failed",
        (json_int_t)atomic_load(&st->n_failed), "stale_outcomes",
        (json_int_t)atomic_load(&st->n_stale), "requeued_from_dead_processes",
        (json_int_t)atomic_load(&st->n_reaped), "trimmed", (json_int_t)atomic_load(&st->n_trimmed));
}

static void proc_redis_destroy(proc_t *self)
{
    proc_redis_store *st = self->priv;
    if (!st)
        return;
    proc_redis_stop(self, jobd_mono_ms());
    /* main joins the workers first, so every run has reported by now; wait
     * rather than free a lease a late run would still touch. */
    pthread_mutex_lock(&st->mu);
    while (st->n_leases > 0)
        proc_redis_wait_locked(st, 1000, NULL);
    pthread_mutex_unlock(&st->mu);
    redis_link_destroy(&st->link);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->done_cv);
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
    .gauges = proc_redis_gauges,
    .clock_ms = proc_redis_clock_ms,
    .tick_get = proc_redis_tick_get,
    .tick_set = proc_redis_tick_set,
};

static const proc_ops proc_redis_ops = {
    .name = "redis",
    .call = proc_redis_call,
    .start = proc_redis_start,
    .stop = proc_redis_stop,
    .stats = proc_redis_stats,
    .destroy = proc_redis_destroy,
    .store = &proc_redis_store_ops,
    .call_parts = proc_redis_call_parts,
};

/* --- creation --- */

static int proc_redis_check(const json_t *opts, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)opts, key, val)
    {
        if (strcmp(key, "poll_interval") != 0) {
            snprintf(err, errlen, "unknown option \"%s\"", key);
            return -1;
        }
        /* Redis takes the period in whole ms: below 1 ms it would be 0. */
        if (!json_is_number(val) || json_number_value(val) < 0.001) {
            snprintf(err, errlen, "poll_interval: must be a number >= 0.001");
            return -1;
        }
    }
    return 0;
}

/* Connects once to refuse an unfit server at start (maxmemory-policy,
 * schema). Unreachable is not fatal: jobd starts with Redis down and the
 * prober runs the same checks once it answers. */
static int proc_redis_first_contact(proc_redis_store *st, char *err, size_t errlen)
{
    char why[512] = "";
    redisContext *c =
        redis_conn_open(&st->link.addr, st->link.timeout, st->link.timeout, why, sizeof why);
    int rc =
        c ? redis_model_check_server(c, &st->m, st->ctx->cfg->redis_allow_eviction, why, sizeof why)
          : -2;
    if (c)
        redisFree(c);
    if (rc == -1) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (rc == -2 || rc == -3)
        redis_link_set_down(&st->link, why[0] ? why : "connection failed at start");
    return 0;
}

static void proc_redis_free_store(proc_redis_store *st)
{
    redis_link_destroy(&st->link);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->done_cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static proc_t *proc_redis_create(jobd_t *ctx, queue_t *q, const json_t *opts, proc_t *delegate,
                                 char *err, size_t errlen)
{
    const config_t *cfg = ctx->cfg;
    proc_t *p = pipeline_proc_new(&proc_redis_ops, q, delegate);
    proc_redis_store *st = p ? calloc(1, sizeof *st) : NULL;
    if (!st) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* HTTP threads, the aggregate's two flushers (two batches in flight) and a spare. */
    size_t pool = (size_t)(cfg->http_threads > 0 ? cfg->http_threads : 1) + 3;
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
    pthread_cond_init(&st->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    st->self = p;
    st->ctx = ctx;
    st->link.on_down = proc_redis_on_down;
    st->link.on_down_arg = st;
    st->q = q;
    const json_t *pi = json_object_get(opts, "poll_interval");
    st->poll_interval = pi ? json_number_value(pi) : cfg->poll_interval;
    redis_model_init(&st->m, cfg->redis_prefix, q->cfg->name, q->cfg->max_attempts);
    redis_model_limits(&st->m, q->cfg);
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
