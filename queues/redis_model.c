/* redis_model.c - a queue's keys, its server's fitness, and the job
 * records the scripts read and return. */
#include "redis_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "job.h"

/* --- keys and script commands --- */

void redis_model_init(redis_model *m, const char *prefix, const char *queue, int default_max)
{
    memset(m, 0, sizeof *m);
    /* Keys are built from a local copy: m->base and the keys share m. */
    char base[REDIS_BASE_MAX];
    snprintf(base, sizeof base, "%s:{%s}:", prefix, queue);
    memcpy(m->base, base, sizeof base);
    snprintf(m->queue, sizeof m->queue, "%s", queue);
    snprintf(m->schema, sizeof m->schema, "%s:schema", prefix);
    struct {
        char *dst;
        const char *name;
    } keys[] = {
        {m->all, "all"},           {m->ready, "ready"},       {m->sched, "sched"},
        {m->finished, "finished"}, {m->dead, "dead"},         {m->seq, "seq"},
        {m->fence, "fence"},       {m->paused, "paused"},     {m->processed, "processed"},
        {m->failed, "failed"},     {m->trimmed, "trimmed"},   {m->procs, "procs"},
        {m->orphans, "orphans"},   {m->enqueued, "enqueued"}, {m->running, "running"},
        {m->periodic, "periodic"},
        {m->rate, "rate"},         {m->drain, "drain"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        snprintf(keys[i].dst, REDIS_KEY_MAX, "%s%s", base, keys[i].name);
    for (int s = 0; s < JOB_STATE_COUNT; s++)
        snprintf(m->state[s], REDIS_KEY_MAX, "%sst:%s", base, job_state_name((job_state)s));
    static const char cols[REDIS_COL_COUNT] = "vsamrbe";
    for (int i = 0; i < REDIS_COL_COUNT; i++)
        snprintf(m->col[i], REDIS_KEY_MAX, "%sjobs:%c", base, cols[i]);
    m->default_max = default_max;
    redis_script_init_all(m->scripts);
}

void redis_model_limits(redis_model *m, const queue_cfg *qc)
{
    m->max_depth = qc->max_depth;
    m->max_running = qc->max_running;
    m->rate_t_us = m->rate_tau_us = 0;
    if (qc->rate.limit > 0) {
        double t = qc->rate.per * 1e6 / qc->rate.limit;
        m->rate_t_us = t < 1 ? 1 : (long long)t;
        m->rate_tau_us = (long long)(t * (qc->rate.burst - 1));
    }
}

void redis_model_proc_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX])
{
    snprintf(out, REDIS_KEY_MAX, "%sproc:%.64s", m->base, pid);
}

void redis_model_hb_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX])
{
    snprintf(out, REDIS_KEY_MAX, "%shb:%.64s", m->base, pid);
}

/* Adds the keys given (NULL-terminated) to a script command. */
void redis_model_keys(redis_cmd *cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    for (const char *k; (k = va_arg(ap, const char *));)
        redis_cmd_key(cmd, k);
    va_end(ap);
}

/* Starts a script command with the common keys (every script but beat
 * and orphan): the job columns, all, finished, dead. */
void redis_model_script(redis_cmd *cmd, const redis_model *m, enum redis_script_id id)
{
    redis_cmd_init_script(cmd, &m->scripts[id]);
    for (int i = 0; i < REDIS_COL_COUNT; i++)
        redis_cmd_key(cmd, m->col[i]);
    redis_model_keys(cmd, m->all, m->finished, m->dead, NULL);
}

/* --- records --- */

/* What a job whose stored view cannot be read still shows: its id, queue
 * and the fields kept apart from the view (state, attempts, times, last
 * error). New job, or NULL (out of memory). */
static job_t *redis_model_unreadable(const redis_model *m, const char *id)
{
    job_t *job = job_new();
    if (job) {
        snprintf(job->id, sizeof job->id, "%s", id);
        snprintf(job->queue, sizeof job->queue, "%s", m->queue);
    }
    return job;
}

/* A job from its stored fields (replies, NULL or nil = absent; state a
 * string) and finished_at. A view that cannot be read gives, when m and id
 * are given, what redis_model_unreadable shows, else NULL; NULL too when the view
 * or state is missing. New job. */
job_t *redis_model_job(const redis_model *m, const char *id, const redisReply *v, const char *state,
                       const redisReply *a, const redisReply *r, const redisReply *b,
                       int64_t finished, const redisReply *e)
{
    if (!redis_conn_is_str(v) || !state)
        return NULL;
    json_t *view = json_loadb(v->str, v->len, 0, NULL);
    job_t *job = view ? job_from_view(view) : NULL;
    json_decref(view);
    if (!job && m && id)
        job = redis_model_unreadable(m, id);
    int st = job_state_parse(state);
    if (!job || st < 0) {
        job_free(job);
        return NULL;
    }
    job->state = (job_state)st;
    job->attempts = (int)redis_conn_int(a);
    job->run_at = redis_conn_int(r);
    job->started_at = redis_conn_int(b);
    job->finished_at = finished;
    job_set_error(job, redis_conn_is_str(e) ? e->str : NULL);
    return job;
}

/* A record as the scripts return it: {v, s, a, r, b, f, e}. */
enum { REDIS_MODEL_REC_FIELDS = 7 };

/* The job id of a record reply (redis_model_job with m and id), or NULL. */
job_t *redis_model_record(const redis_model *m, const char *id, const redisReply *r)
{
    if (!redis_conn_is_array(r, REDIS_MODEL_REC_FIELDS))
        return NULL;
    redisReply *const *f = r->element;
    return redis_model_job(m, id, f[0], redis_conn_is_str(f[1]) ? f[1]->str : NULL, f[2], f[3],
                           f[4], redis_conn_int(f[5]), f[6]);
}

/* A view of the record reply: new reference, or NULL with 404 (no such
 * job) or 500 (unreadable). */
json_t *redis_model_view(const redis_model *m, const redisReply *r, const char *id, jobd_error *err)
{
    if (!redis_conn_is_array(r, REDIS_MODEL_REC_FIELDS) || !redis_conn_is_str(r->element[0])) {
        redis_model_unknown(err, id);
        return NULL;
    }
    return redis_model_job_view(redis_model_record(m, id, r), id, err);
}

json_t *redis_model_job_view(job_t *job, const char *id, jobd_error *err)
{
    json_t *v = job ? job_view(job) : NULL;
    job_free(job);
    if (!v)
        jobd_fail(err, 500, "internal_error", "the stored record of job \"%s\" is unreadable", id);
    return v;
}

void redis_model_unknown(jobd_error *err, const char *id)
{
    jobd_fail(err, 404, "unknown_job", "no job \"%s\" in this queue", id);
}

/* --- server checks --- */

/* 0 when the policy is fine or allowed, -1 refused, -2 connection failed,
 * -3 Redis answered "not yet". */
static int redis_model_check_policy(redisContext *c, bool allow_eviction, char *err, size_t errlen)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "CONFIG");
    redis_cmd_adds(&cmd, "GET");
    redis_cmd_adds(&cmd, "maxmemory-policy");
    redisReply *r = redis_conn_run(c, &cmd);
    redis_cmd_free(&cmd);
    if (!r)
        return -2;
    int rc = 0;
    if (redis_conn_temporary(r)) {
        snprintf(err, errlen, "Redis cannot answer yet: %s", r->str);
        rc = -3;
    } else if (!redis_conn_is_array(r, 2) || !redis_conn_is_str(r->element[1])) {
        /* CONFIG may be renamed away on managed Redis: say we could not look. */
        log_event(LOG_WARN, "redis.policy_unknown", NULL,
                  "cannot read maxmemory-policy (%s); make sure it is noeviction",
                  r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
    } else if (strcmp(r->element[1]->str, "noeviction") != 0) {
        const char *policy = r->element[1]->str;
        if (allow_eviction) {
            log_event(LOG_WARN, "redis.eviction_allowed", NULL,
                      "Redis maxmemory-policy is \"%s\": accepted jobs may be evicted "
                      "(--allow-eviction given)",
                      policy);
        } else {
            snprintf(err, errlen,
                     "Redis maxmemory-policy is \"%s\", which may evict accepted jobs; set "
                     "maxmemory-policy noeviction on the Redis server, or start jobd with "
                     "--allow-eviction to run anyway",
                     policy);
            rc = -1;
        }
    }
    freeReplyObject(r);
    return rc;
}

/* Writes the schema version when absent and refuses one we do not know. A
 * refused write does not matter when the version is there already; while
 * Redis loads its data (or is busy, or without its replicas) it is "not
 * reachable yet" (-3), never a refusal. */
static int redis_model_check_schema(redisContext *c, const redis_model *m, char *err, size_t errlen)
{
    redis_cmd set, get;
    redis_cmd_init(&set, "SET");
    redis_cmd_adds(&set, m->schema);
    redis_cmd_addi(&set, REDIS_SCHEMA_VERSION);
    redis_cmd_adds(&set, "NX");
    redis_cmd_init(&get, "GET");
    redis_cmd_adds(&get, m->schema);
    redis_cmd *cmds[] = {&set, &get};
    redisReply *r[2];
    int rc = redis_conn_pipeline(c, cmds, 2, r);
    redis_cmd_free(&set);
    redis_cmd_free(&get);
    if (rc != 0)
        return -2;
    bool written = r[0]->type != REDIS_REPLY_ERROR || redis_conn_is_str(r[1]);
    if (!written || r[1]->type == REDIS_REPLY_ERROR) {
        const redisReply *e = !written ? r[0] : r[1];
        snprintf(err, errlen, "cannot write %s: %s", m->schema, e->str);
        rc = redis_conn_temporary(e) ? -3 : -1;
    } else if (!redis_conn_is_str(r[1]) || strtol(r[1]->str, NULL, 10) != REDIS_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "Redis key %s holds data model version \"%s\"; this jobd (%s) knows version %d "
                 "only: run the jobd that wrote it until its queues are empty, or use another "
                 "redis.prefix",
                 m->schema, redis_conn_is_str(r[1]) ? r[1]->str : "?", JOBD_VERSION,
                 REDIS_SCHEMA_VERSION);
        rc = -1;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return rc;
}

int redis_model_check_server(redisContext *c, const redis_model *m, bool allow_eviction, char *err,
                             size_t errlen)
{
    int rc = redis_model_check_policy(c, allow_eviction, err, errlen);
    return rc != 0 ? rc : redis_model_check_schema(c, m, err, errlen);
}

int redis_model_time(redisContext *c, int64_t *redis_ms)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "TIME");
    redisReply *r = redis_conn_call(c, &cmd, NULL);
    int rc = -1;
    if (redis_conn_is_array(r, 2) && redis_conn_is_str(r->element[0]) &&
        redis_conn_is_str(r->element[1])) {
        *redis_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
                    strtoll(r->element[1]->str, NULL, 10) / 1000;
        rc = 0;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}
