/* proc_redis_maint.c - the redis processor's maintenance thread: Redis's
 * clock, taking back the leases of dead processes, moving due jobs to ready,
 * retention; the prober that declares Redis up again once it answers and
 * passes the safety checks; and the heartbeat thread (registration and
 * heartbeats on a connection of their own, so that no maintenance round,
 * however slow Redis is, delays a beat). */
#include <string.h>

#include "../server/log.h"
#include "../server/metrics.h"
#include "proc_redis.h"

#define PROC_REDIS_PROMOTE_BATCH 500
#define PROC_REDIS_PROMOTE_ROUNDS 20 /* batches per poll, so a backlog cannot starve heartbeats */
#define PROC_REDIS_TRIM_BATCH 500
#define PROC_REDIS_TRIM_ROUNDS 20 /* batches per tick: retention keeps up with 10,000 jobs/s */
#define PROC_REDIS_REFUSED_LOG_MS 60000

typedef struct proc_redis_maint_state {
    redisContext *c;
    int64_t backoff, next_try, next_refused_log;
    int64_t next_reap, next_promote, next_trim;
} proc_redis_maint_state;

/* Opens the maintenance connection and runs the safety checks; only then is
 * Redis "up". A refused server stays down (logged) until it is fixed. */
static void proc_redis_maint_connect(proc_redis_store *st, proc_redis_maint_state *ms)
{
    int64_t now = jobd_mono_ms();
    if (now < ms->next_try)
        return;
    if (!ms->c)
        ms->c = proc_redis_open(st, st->link.timeout);
    char why[512] = "";
    int rc = ms->c ? redis_model_check_server(ms->c, &st->m, st->ctx->cfg->redis_allow_eviction,
                                              why, sizeof why)
                   : -2;
    if (rc == 0) {
        ms->backoff = PROC_REDIS_BACKOFF_MIN_MS;
        redis_link_set_up(&st->link);
        return;
    }
    /* A refused server is retried every second: say why once a minute. */
    if (rc == -1 && now >= ms->next_refused_log) {
        log_event(LOG_ERROR, "redis.refused", NULL, "queue %s: %s", st->q->cfg->name, why);
        ms->next_refused_log = now + PROC_REDIS_REFUSED_LOG_MS;
    }
    redis_link_set_down(&st->link, why[0] ? why : "connection failed");
    if (ms->c)
        redisFree(ms->c);
    ms->c = NULL;
    /* Redis answered "not yet" (loading its data...): asking again is cheap,
     * and the queue should resume as soon as it is done. */
    ms->next_try = now + (rc == -1   ? PROC_REDIS_BACKOFF_MAX_MS
                          : rc == -3 ? PROC_REDIS_BACKOFF_MIN_MS
                                     : proc_redis_backoff_next(&ms->backoff));
}

/* Heartbeat; registers first, and again under a new id when Redis says this
 * process was declared dead (its leases are gone: a fresh start). */
static int proc_redis_heartbeat(proc_redis_store *st, redisContext *c)
{
    long long ttl = (long long)(st->ctx->cfg->lease_expiry * 1000.0);
    bool registered = proc_redis_registered(st);
    char pid[REDIS_PID_LEN + 1];
    proc_redis_pid(st, pid);
    int rc = redis_write_beat(c, &st->m, pid, registered ? "beat" : "register", ttl);
    if (rc == 0) {
        log_event(LOG_WARN, "redis.lease_lost", NULL,
                  "queue %s: process %s was declared dead by another process; registering anew",
                  st->q->cfg->name, pid);
        proc_redis_new_pid(pid);
        rc = redis_write_beat(c, &st->m, pid, "register", ttl);
    }
    if (rc == 1) {
        pthread_mutex_lock(&st->mu);
        memcpy(st->pid, pid, sizeof st->pid);
        st->registered = true;
        pthread_mutex_unlock(&st->mu);
        atomic_store(&st->beat_ok_ms, (long long)jobd_mono_ms());
    }
    return rc < 0 ? -1 : 0;
}

/* Measures Redis's clock against ours. Redis read its clock somewhere in the
 * round trip; taking the end of it makes our estimate of Redis's time never
 * later than the truth, whatever the round trip took (a slow one under load
 * would otherwise push the enqueue script's not_after past the moment the
 * client was answered 503). The only use of the estimate is that deadline, so
 * erring early only refuses a write that was nearly late anyway. */
static int proc_redis_clock(proc_redis_store *st, redisContext *c)
{
    int64_t redis_ms;
    if (redis_model_time(c, &redis_ms) != 0)
        return -1;
    redis_link_set_clock(&st->link, redis_ms, jobd_mono_ms());
    return 0;
}

static int proc_redis_reap(proc_redis_store *st, redisContext *c)
{
    char pid[REDIS_PID_LEN + 1];
    proc_redis_pid(st, pid);
    redis_write_taken got = {0};
    int rc = redis_write_reap(c, &st->m, pid, &got);
    if (got.moved > 0) {
        atomic_fetch_add(&st->n_reaped, got.moved);
        metrics_leases_ended(st->ctx->metrics, st->q->cfg, got.moved, got.dead, true);
        log_event(LOG_WARN, "redis.requeued", NULL,
                  "queue %s: %ld jobs of dead processes went back to ready (%ld) or dead (%ld)",
                  st->q->cfg->name, got.moved, got.moved - got.dead, got.dead);
    }
    return rc;
}

static int proc_redis_promote(proc_redis_store *st, redisContext *c)
{
    for (int round = 0; round < PROC_REDIS_PROMOTE_ROUNDS; round++) {
        long n = redis_write_promote(c, &st->m, PROC_REDIS_PROMOTE_BATCH);
        if (n < 0)
            return -1;
        if (n < PROC_REDIS_PROMOTE_BATCH)
            break;
    }
    return 0;
}

/* Trims one set in batches until a batch is not full (or the rounds are
 * used up). Returns how many went, or -1 when the connection failed. */
static long proc_redis_trim_set(proc_redis_store *st, redisContext *c, bool dead, double max_age,
                                long max_count)
{
    long total = 0;
    for (int round = 0; round < PROC_REDIS_TRIM_ROUNDS; round++) {
        long n = redis_write_trim(c, &st->m, dead, max_age, max_count, PROC_REDIS_TRIM_BATCH);
        if (n < 0)
            return -1;
        total += n;
        if (n < PROC_REDIS_TRIM_BATCH)
            break;
    }
    return total;
}

/* Retention: finished jobs and the dead set, bounded; logged and counted. */
static int proc_redis_trim(proc_redis_store *st, redisContext *c)
{
    const config_t *cfg = st->ctx->cfg;
    long fin = proc_redis_trim_set(st, c, false, cfg->retention_finished, cfg->max_finished);
    long dead =
        fin < 0 ? -1 : proc_redis_trim_set(st, c, true, cfg->dead_max_age, cfg->dead_max_jobs);
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
static void proc_redis_maint_tick(proc_redis_store *st, proc_redis_maint_state *ms)
{
    const config_t *cfg = st->ctx->cfg;
    int64_t now = jobd_mono_ms();
    int rc = 0;
    if (now >= ms->next_reap) {
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

static int64_t proc_redis_maint_next(proc_redis_store *st, const proc_redis_maint_state *ms)
{
    if (!ms->c || atomic_load(&st->link.down))
        return ms->next_try > jobd_mono_ms() ? ms->next_try
                                             : jobd_mono_ms() + PROC_REDIS_BACKOFF_MIN_MS;
    int64_t t = ms->next_reap;
    const int64_t others[] = {ms->next_promote, ms->next_trim};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] < t)
            t = others[i];
    return t;
}

void *proc_redis_maint_main(void *arg)
{
    proc_redis_store *st = arg;
    proc_redis_maint_state ms = {.backoff = PROC_REDIS_BACKOFF_MIN_MS};
    while (!proc_redis_stopping(st, &st->maint)) {
        if (!ms.c || atomic_load(&st->link.down))
            proc_redis_maint_connect(st, &ms);
        if (ms.c && !atomic_load(&st->link.down))
            proc_redis_maint_tick(st, &ms);
        int64_t wait = proc_redis_maint_next(st, &ms) - jobd_mono_ms();
        if (wait > 0)
            proc_redis_wait(st, wait, &st->maint);
    }
    proc_redis_drop(st, &ms.c);
    return NULL;
}

/* The heartbeat thread: registers, then beats every `heartbeat` seconds on
 * its own connection. It beats only while Redis is up (the prober's safety
 * checks passed), so a refused server never gets this process registered. */
void *proc_redis_beat_main(void *arg)
{
    proc_redis_store *st = arg;
    redisContext *c = NULL;
    int64_t backoff = PROC_REDIS_BACKOFF_MIN_MS;
    const int64_t period = (int64_t)(st->ctx->cfg->heartbeat * 1000.0);
    while (!proc_redis_stopping(st, &st->beat)) {
        int64_t next = jobd_mono_ms() + PROC_REDIS_BACKOFF_MIN_MS;
        if (!atomic_load(&st->link.down)) {
            int64_t t0 = jobd_mono_ms();
            if (!c)
                c = proc_redis_open(st, st->link.timeout);
            int rc = c ? proc_redis_heartbeat(st, c) : -1;
            if (rc == 0) {
                backoff = PROC_REDIS_BACKOFF_MIN_MS;
                next = t0 + period;
            } else {
                if (c && c->err)
                    proc_redis_drop(st, &c);
                next = jobd_mono_ms() + proc_redis_backoff_next(&backoff);
            }
        }
        /* st->cv is broadcast for other reasons too: wait out the period. */
        int64_t left;
        while ((left = next - jobd_mono_ms()) > 0 && !proc_redis_stopping(st, &st->beat))
            proc_redis_wait(st, left, &st->beat);
    }
    proc_redis_drop(st, &c);
    return NULL;
}
