/* periodic.c - the periodic scheduler of periodic.h.
 *
 * Each round, for each schedule: now is the queue store's clock (Redis TIME,
 * carried on the monotonic clock) or, for a store without one (inline), the
 * process's clock. The latest tick at or before now is due when it is later
 * than the last tick done; it is enqueued when it is on time (at most
 * PERIODIC_ON_TIME_MS + redis.timeout old), or when it was missed and the
 * schedule has catch_up and a recorded last tick. Older missed ticks are
 * never enqueued. A tick counts as done once its job is stored or replayed
 * (another process enqueued it first); it is then recorded in the store
 * (Redis: ZADD GT), where a process that starts reads where the schedules
 * stand. A due tick refused (Redis down) is tried again each second until it
 * is stored or a later tick comes due; then the later tick is tried instead
 * and the refused one is missed like a tick no process ran for: after a long
 * outage the tick stored is a recent one, not the first refused. */
#include "periodic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "../server/metrics.h"
#include "../util/rfc3339.h"
#include "job.h"
#include "store.h"

#define PERIODIC_ON_TIME_MS 2000  /* a tick younger than this (+ redis.timeout) is on time */
#define PERIODIC_RETRY_MS 1000    /* between tries of a refused tick */
#define PERIODIC_WAIT_MAX_MS 250  /* longest sleep: clocks and stops are looked at this often */
#define PERIODIC_LOOKBACK_MIN_S 120
#define PERIODIC_LOOKBACK_MAX_S (11LL * 366 * 86400)
#define PERIODIC_WALK_MAX 100000 /* cron ticks walked to the latest one, at most */

/* One schedule's state. Fields below mu are read by periodic_list and the
 * done callback; the rest belongs to the scheduler thread. */
typedef struct periodic_sched {
    periodic_t *p;
    const periodic_cfg *cfg; /* borrowed from ctx->cfg */
    queue_t *q;              /* borrowed */
    bool loaded;             /* the store's record was read */
    int64_t last;            /* last tick done or passed over (unix ms), 0 = none */
    int64_t pending;         /* a due tick refused, to try again; 0 = none */
    int64_t retry_mono;      /* when to try pending again */
    job_t *job;              /* owned: the submission in flight, NULL = none */
    int64_t job_tick;
    /* under p->mu */
    bool answered;           /* the submission in flight has its outcome */
    outcome_kind result;
    char why[256];           /* a refusal's message */
    int64_t next;            /* next tick after now, 0 = unknown */
    int64_t last_enqueued;   /* last tick known enqueued, 0 = none */
    char last_job_id[JOB_ID_MAX + 1];
} periodic_sched;

struct periodic {
    jobd_t *ctx; /* borrowed */
    periodic_sched *s; /* owned, ctx->cfg->n_periodic */
    size_t n;
    int64_t clock_offset_ms; /* PERIODIC_CLOCK_OFFSET_ENV, test-only */
    int64_t on_time_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping; /* under mu */
    bool started;
    pthread_t th;
};

/* --- ticks --- */

/* The first tick of s strictly after t (unix ms); -1 when none. `every`
 * ticks are the multiples of every seconds since the epoch, so that every
 * process agrees on them; cron ticks are whole minutes of the zone. */
static int64_t periodic_after(const periodic_cfg *c, int64_t t)
{
    if (c->every) {
        int64_t e = (int64_t)c->every * 1000;
        return (t >= 0 ? t / e + 1 : 0) * e;
    }
    int64_t secs = t >= 0 ? t / 1000 : -1;
    int64_t n = cron_next(&c->expr, c->zone, secs);
    return n < 0 ? -1 : n * 1000;
}

/* The latest tick of c at or before now, later than last (0 = none); 0 when
 * there is none. */
static int64_t periodic_latest(const periodic_cfg *c, int64_t last, int64_t now)
{
    if (c->every) {
        int64_t e = (int64_t)c->every * 1000;
        int64_t t = now / e * e;
        return t > last ? t : 0;
    }
    /* The common case: one tick came since the last one. */
    int64_t t = last ? periodic_after(c, last) : -1;
    if (last && (t < 0 || t > now))
        return 0;
    if (t < 0 || periodic_after(c, t) <= now) {
        /* Several (or the record is older): look back from now in growing windows. */
        t = -1;
        for (int64_t w = PERIODIC_LOOKBACK_MIN_S; t < 0 && w <= PERIODIC_LOOKBACK_MAX_S; w *= 2) {
            int64_t from = now - w * 1000;
            int64_t first = periodic_after(c, from > last ? from : last);
            if (first >= 0 && first <= now)
                t = first;
            if (from <= last)
                break;
        }
        if (t < 0)
            return 0;
    }
    for (int i = 0; i < PERIODIC_WALK_MAX; i++) {
        int64_t n = periodic_after(c, t);
        if (n < 0 || n > now)
            break;
        t = n;
    }
    return t > last ? t : 0;
}

/* The job id of tick (whole seconds): periodic:<name>:2026-12-03T03:00:00Z. */
static void periodic_tick_id(const periodic_cfg *c, int64_t tick, char out[JOB_ID_MAX + 1])
{
    char when[RFC3339_BUF];
    rfc3339_format(tick, when);
    when[19] = '\0'; /* drop ".000Z": ticks are whole seconds */
    snprintf(out, JOB_ID_MAX + 1, "periodic:%s:%sZ", c->name, when);
}

/* A new job of schedule c with id, created at now; NULL with err. */
static job_t *periodic_job(periodic_t *p, const periodic_sched *s, const char *id, int64_t now,
                           jobd_error *err)
{
    const periodic_cfg *c = s->cfg;
    if (strlen(id) > JOB_ID_MAX || !name_id_ok(id)) {
        jobd_fail(err, 500, "internal_error", "job id \"%s\" is not a valid id", id);
        return NULL;
    }
    json_t *obj = json_pack("{s:s,s:O,s:s}", "type", c->type, "args", c->args, "id", id);
    if (obj && c->max_attempts)
        json_object_set_new(obj, "max_attempts", json_integer(c->max_attempts));
    job_t *job = obj ? job_from_request(obj, s->q->cfg->name, NULL, &p->ctx->ids, now, err) : NULL;
    if (!obj)
        jobd_fail(err, 500, "internal_error", "out of memory");
    json_decref(obj);
    if (job && job->max_attempts == 0)
        job->max_attempts = s->q->cfg->max_attempts;
    return job;
}

/* --- the scheduler thread --- */

/* The clock the ticks of s are decided on: the store's, else ours (+ the
 * test offset). 0 while the store's is not known yet. */
static int64_t periodic_now(periodic_t *p, periodic_sched *s)
{
    int64_t c = store_clock_ms(s->q);
    return c >= 0 ? c : jobd_now_ms() + p->clock_offset_ms;
}

/* The pipeline's done callback, on any thread: keeps the outcome for the
 * scheduler thread, which owns the job. */
static void periodic_done(void *done_ctx, size_t index, const outcome_t *out)
{
    periodic_sched *s = done_ctx;
    pthread_mutex_lock(&s->p->mu);
    s->answered = true;
    s->result = out->kind;
    snprintf(s->why, sizeof s->why, "%s", out->kind == OUT_REFUSED ? out->err.message : "");
    pthread_cond_broadcast(&s->p->cv);
    pthread_mutex_unlock(&s->p->mu);
}

static void periodic_submit(periodic_t *p, periodic_sched *s, int64_t tick, int64_t now)
{
    char id[JOB_ID_MAX + 1];
    jobd_error err = {0};
    periodic_tick_id(s->cfg, tick, id);
    job_t *job = periodic_job(p, s, id, now, &err);
    if (!job) {
        log_event(LOG_ERROR, "periodic.failed", NULL, "schedule %s: tick %s: %s", s->cfg->name, id,
                  err.message);
        s->last = tick; /* the next try would fail the same way */
        s->pending = 0;
        return;
    }
    s->job = job;
    s->job_tick = tick;
    pthread_mutex_lock(&p->mu);
    s->answered = false;
    pthread_mutex_unlock(&p->mu);
    if (pipeline_submit(s->q, &s->job, 1, periodic_done, s) != 0) {
        /* Nothing will be reported: without an outcome of our own the
         * schedule would wait for one forever. */
        outcome_t out = {.kind = OUT_REFUSED};
        jobd_fail(&out.err, 503, "unavailable", "the queue cannot take jobs now");
        periodic_done(s, 0, &out);
    }
}

/* Takes the outcome of s's submission, if it came. False while it has not. */
static bool periodic_collect(periodic_t *p, periodic_sched *s)
{
    pthread_mutex_lock(&p->mu);
    bool answered = s->answered;
    outcome_kind kind = s->result;
    char why[256];
    memcpy(why, s->why, sizeof why);
    if (answered && kind != OUT_REFUSED) {
        s->last_enqueued = s->job_tick;
        memcpy(s->last_job_id, s->job->id, sizeof s->last_job_id);
    }
    pthread_mutex_unlock(&p->mu);
    if (!answered)
        return false;
    if (kind == OUT_REFUSED) {
        log_event(LOG_WARN, "periodic.refused", s->job, "schedule %s: %s (tried again in %d ms)",
                  s->cfg->name, why, PERIODIC_RETRY_MS);
        s->pending = s->job_tick;
        s->retry_mono = jobd_mono_ms() + PERIODIC_RETRY_MS;
    } else {
        jobd_error err = {0};
        log_event(kind == OUT_STORED ? LOG_INFO : LOG_DEBUG, "periodic.enqueued", s->job,
                  "schedule %s: %s", s->cfg->name,
                  kind == OUT_STORED ? "enqueued" : "already enqueued (by another process)");
        s->last = s->job_tick;
        s->pending = 0;
        /* A replay is another process's tick: counted there, not here. */
        if (kind == OUT_STORED)
            metrics_job_submitted(p->ctx->metrics, s->q->cfg, false);
        if (store_tick_set(s->q, s->cfg->name, s->job_tick, &err) < 0)
            log_event(LOG_WARN, "periodic.record_failed", s->job, "schedule %s: %s",
                      s->cfg->name, err.message);
    }
    job_free(s->job);
    s->job = NULL;
    return true;
}

/* Reads the store's record of s once. False while it cannot (Redis down). */
static bool periodic_load(periodic_sched *s)
{
    int64_t rec = 0;
    jobd_error err = {0};
    int rc = store_tick_get(s->q, s->cfg->name, &rec, &err);
    if (rc < 0)
        return false;
    if (rc == 0 && rec > s->last) {
        s->last = rec;
        pthread_mutex_lock(&s->p->mu);
        s->last_enqueued = rec;
        periodic_tick_id(s->cfg, rec, s->last_job_id);
        pthread_mutex_unlock(&s->p->mu);
    }
    s->loaded = true;
    return true;
}

/* One round of s at its clock's now; returns ms until it needs a look again. */
static int64_t periodic_round(periodic_t *p, periodic_sched *s)
{
    if (s->job && !periodic_collect(p, s))
        return PERIODIC_WAIT_MAX_MS;
    int64_t now = periodic_now(p, s);
    if (now <= 0 || (!s->loaded && !periodic_load(s)))
        return PERIODIC_WAIT_MAX_MS; /* the store's clock or record is not known yet */
    if (s->pending) {
        int64_t left = s->retry_mono - jobd_mono_ms();
        if (left > 0)
            return left;
        int64_t later = periodic_latest(s->cfg, s->pending, now);
        if (later) {
            char old[JOB_ID_MAX + 1], id[JOB_ID_MAX + 1];
            periodic_tick_id(s->cfg, s->pending, old);
            periodic_tick_id(s->cfg, later, id);
            log_event(LOG_INFO, "periodic.missed", NULL,
                      "schedule %s: tick %s was refused and tick %s has come due since: the "
                      "refused tick is not tried again", s->cfg->name, old, id);
            s->last = s->pending;
            s->pending = later;
        }
        periodic_submit(p, s, s->pending, now);
        return PERIODIC_WAIT_MAX_MS;
    }
    int64_t latest = periodic_latest(s->cfg, s->last, now);
    if (latest) {
        if (now - latest <= p->on_time_ms || (s->cfg->catch_up && s->last)) {
            periodic_submit(p, s, latest, now);
        } else {
            char id[JOB_ID_MAX + 1];
            periodic_tick_id(s->cfg, latest, id);
            if (s->last) /* else a schedule that never ran: nothing was missed */
                log_event(LOG_INFO, "periodic.missed", NULL,
                          "schedule %s: ticks up to %s were missed while no process ran; not "
                          "replayed (catch_up is false)", s->cfg->name, id);
            s->last = latest;
        }
    }
    int64_t next = periodic_after(s->cfg, s->last > now ? s->last : now);
    pthread_mutex_lock(&p->mu);
    s->next = next > 0 ? next : 0;
    pthread_mutex_unlock(&p->mu);
    if (s->job)
        return PERIODIC_WAIT_MAX_MS;
    return next > 0 ? next - now : PERIODIC_WAIT_MAX_MS;
}

static void *periodic_main(void *arg)
{
    periodic_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        pthread_mutex_unlock(&p->mu);
        int64_t wait = PERIODIC_WAIT_MAX_MS;
        for (size_t i = 0; i < p->n; i++) {
            int64_t w = periodic_round(p, &p->s[i]);
            if (w < wait)
                wait = w;
        }
        if (wait < 1)
            wait = 1;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&p->mu);
        /* A done callback also wakes the thread: its outcome is taken at once. */
        if (!p->stopping)
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* --- life --- */

periodic_t *periodic_new(jobd_t *ctx, char *err, size_t errlen)
{
    const config_t *cfg = ctx->cfg;
    periodic_t *p = calloc(1, sizeof *p);
    if (!p || !(p->s = calloc(cfg->n_periodic + 1, sizeof *p->s))) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->ctx = ctx;
    p->n = cfg->n_periodic;
    p->on_time_ms = PERIODIC_ON_TIME_MS + (int64_t)(cfg->redis_timeout * 1000);
    const char *offset = getenv(PERIODIC_CLOCK_OFFSET_ENV);
    p->clock_offset_ms = offset ? strtoll(offset, NULL, 10) : 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    for (size_t i = 0; i < p->n; i++) {
        periodic_sched *s = &p->s[i];
        char id[JOB_ID_MAX + 1];
        jobd_error jerr = {0};
        s->p = p;
        s->cfg = &cfg->periodic[i];
        s->q = pipeline_queue(ctx, s->cfg->queue);
        /* The longest id a schedule makes (a trigger's) must be a valid job id,
         * and its job must build: found now rather than at each tick. */
        snprintf(id, sizeof id, "periodic:%s:trigger:%0*d", s->cfg->name, ULID_LEN, 0);
        job_t *probe = s->q ? periodic_job(p, s, id, jobd_now_ms(), &jerr) : NULL;
        if (!probe) {
            snprintf(err, errlen, "periodic.%s: %s", s->cfg->name,
                     s->q ? jerr.message : "its queue is not built");
            periodic_free(p);
            return NULL;
        }
        job_free(probe);
    }
    return p;
}

int periodic_start(periodic_t *p)
{
    if (p->n == 0)
        return 0;
    if (pthread_create(&p->th, NULL, periodic_main, p) != 0)
        return -1;
    p->started = true;
    return 0;
}

void periodic_stop(periodic_t *p)
{
    if (!p || !p->started)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    p->started = false;
}

void periodic_free(periodic_t *p)
{
    if (!p)
        return;
    periodic_stop(p);
    for (size_t i = 0; i < p->n; i++)
        job_free(p->s[i].job); /* its outcome came during the pipeline's stop */
    free(p->s);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* --- the API's side --- */

static json_t *periodic_time(int64_t ms)
{
    char buf[RFC3339_BUF];
    if (ms <= 0)
        return json_null();
    rfc3339_format(ms, buf);
    return json_string(buf);
}

json_t *periodic_list(periodic_t *p)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < p->n; i++) {
        periodic_sched *s = &p->s[i];
        const periodic_cfg *c = s->cfg;
        pthread_mutex_lock(&p->mu);
        int64_t next = s->next, last = s->last_enqueued;
        char job_id[JOB_ID_MAX + 1];
        memcpy(job_id, s->last_job_id, sizeof job_id);
        pthread_mutex_unlock(&p->mu);
        if (next <= 0) /* before the first round: from this process's clock */
            next = periodic_after(c, jobd_now_ms() + p->clock_offset_ms);
        json_t *v = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "name", c->name, "queue", c->queue,
                              "type", c->type, "next_run_at", periodic_time(next), "last_tick_at",
                              periodic_time(last), "last_job_id",
                              last ? json_string(job_id) : json_null());
        if (v && c->cron) {
            json_object_set_new(v, "cron", json_string(c->cron));
            json_object_set_new(v, "timezone", json_string(tz_zone_name(c->zone)));
        } else if (v) {
            json_object_set_new(v, "every", json_integer(c->every));
        }
        if (!v || json_array_append_new(list, v) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list ? json_pack("{s:o}", "periodic", list) : NULL;
}

job_t *periodic_trigger_job(periodic_t *p, const char *name, queue_t **q, jobd_error *err)
{
    periodic_sched *s = NULL;
    for (size_t i = 0; i < p->n && !s; i++)
        if (strcmp(p->s[i].cfg->name, name) == 0)
            s = &p->s[i];
    if (!s) {
        jobd_fail(err, 404, "unknown_periodic", "no periodic schedule named \"%s\"", name);
        return NULL;
    }
    char ulid[ULID_LEN + 1], id[JOB_ID_MAX + 1];
    int64_t now = jobd_now_ms();
    ulid_next(&p->ctx->ids, now, ulid);
    snprintf(id, sizeof id, "periodic:%s:trigger:%s", name, ulid);
    *q = s->q;
    return periodic_job(p, s, id, now, err);
}
