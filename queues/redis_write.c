/* redis_write.c - the C callers of the scripts that change a queue:
 * submission, fetching and leases, the end of runs, processes and their
 * heartbeats, due jobs, retention, cancel and dead-job operations, pause.
 * Each call is one script (or one command) per batch: the Lua is in
 * queues/lua/<name>.lua. */
#include "redis_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "job.h"

#define REDIS_WRITE_GIVE_BACK_BATCH 100
#define REDIS_WRITE_GIVE_BACK_ROUNDS 1000

/* --- submission --- */

static void redis_write_enqueue_args(redis_cmd *cmd, const job_t *job, const char *view, size_t len)
{
    redis_cmd_adds(cmd, job->id);
    redis_cmd_add(cmd, view, len);
    redis_cmd_adds(cmd, job->state == JOB_SCHEDULED ? "scheduled" : "enqueued");
    /* A delay goes as -ms: the script adds it to Redis TIME (due times come
     * from Redis, not from the host clock: hosts' clocks differ). */
    redis_cmd_addi(cmd, job->delay_ms > 0 ? -job->delay_ms : job->run_at);
    redis_cmd_addi(cmd, job->created_at);
    redis_cmd_addi(cmd, job->max_attempts);
}

/* Reads the enqueue reply into replayed[] and waits[] (-S: refused for
 * max_depth, retry in S s); -1 (all freed) if a record is unreadable. */
static int redis_write_enqueue_reply(const redis_model *m, job_t *const *jobs, const redisReply *r,
                                     size_t n, job_t **replayed, int *waits, jobd_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_INTEGER) {
            waits[i] = e->integer < 0 ? (int)-e->integer : 0;
            continue;
        }
        if (!(replayed[i] = redis_model_record(m, jobs[i]->id, e))) {
            for (size_t j = 0; j < i; j++) {
                job_free(replayed[j]);
                replayed[j] = NULL;
            }
            jobd_fail(err, 500, "internal_error",
                      "the stored record of an existing job is unreadable");
            return -1;
        }
    }
    return 0;
}

int redis_write_enqueue_parts(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                              const size_t *parts, size_t nparts, int64_t not_after,
                              job_t **replayed, int *waits, char **texts, jobd_error *err)
{
    char **views = texts ? texts : calloc(n ? n : 1, sizeof *views);
    if (!views)
        return jobd_fail(err, 503, "unavailable", "out of memory");
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_ENQUEUE);
    redis_model_keys(&cmd, m->ready, m->sched, m->state[JOB_SCHEDULED], m->enqueued, m->seq, NULL);
    /* max_depth's keys and arguments only when it is on: hiredis formats
     * each argument, which a submission would pay for nothing. */
    if (m->max_depth > 0)
        redis_model_keys(&cmd, m->state[JOB_RETRYING], m->drain, NULL);
    redis_cmd_addi(&cmd, not_after);
    if (m->max_depth > 0) {
        redis_cmd_addi(&cmd, m->max_depth);
        redis_cmd_addi(&cmd, parts ? (long long)nparts : 1);
        for (size_t k = 0; k < (parts ? nparts : 1); k++)
            redis_cmd_addi(&cmd, parts ? (long long)parts[k] : (long long)n);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        views[i] = job_view_text(jobs[i], &len);
        if (!views[i])
            cmd.oom = true;
        redis_write_enqueue_args(&cmd, jobs[i], views[i] ? views[i] : "", len);
        replayed[i] = NULL;
        waits[i] = 0;
    }
    redisReply *r = redis_conn_call(c, &cmd, err);
    if (!texts) {
        for (size_t i = 0; i < n; i++)
            free(views[i]);
        free(views);
    }
    if (!r)
        return -1;
    int rc = redis_conn_is_array(r, n)
                 ? redis_write_enqueue_reply(m, jobs, r, n, replayed, waits, err)
                 : jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    freeReplyObject(r);
    return rc;
}

void redis_write_queue_full(const redis_model *m, int wait, jobd_error *err)
{
    jobd_fail(err, 429, "queue_full",
              "queue %s would hold more than its max_depth of %ld waiting jobs: retry later",
              m->queue, m->max_depth);
    err->retry_after = wait;
}

int redis_write_enqueue(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                        int64_t not_after, job_t **replayed, char **texts, jobd_error *err)
{
    int *waits = calloc(n ? n : 1, sizeof *waits);
    if (!waits)
        return jobd_fail(err, 503, "unavailable", "out of memory");
    int rc = redis_write_enqueue_parts(c, m, jobs, n, NULL, 0, not_after, replayed, waits, texts,
                                       err);
    if (rc == 0 && n > 0 && waits[0] > 0) {
        /* One part: refused whole. */
        redis_write_queue_full(m, waits[0], err);
        rc = -1;
    }
    free(waits);
    return rc;
}

/* --- fetching --- */

/* What a job whose stored record cannot be read gets as its last error. */
#define REDIS_WRITE_UNREADABLE                                                                     \
    "the stored record of this job is unreadable (not valid job JSON); it cannot run"

/* Makes dead at once the leased jobs ids[0..n) of plist whose record
 * cannot be read (logged; a failure is left to stop or a reap). Returns how
 * many went dead (0 on failure). */
static long redis_write_bury(redisContext *c, const redis_model *m, const char *plist,
                             const char *const *ids, size_t n)
{
    if (n == 0)
        return 0;
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_BURY);
    redis_model_keys(&cmd, plist, m->state[JOB_DEAD], m->failed, m->seq, m->running, NULL);
    redis_cmd_adds(&cmd, REDIS_WRITE_UNREADABLE);
    for (size_t i = 0; i < n; i++)
        redis_cmd_adds(&cmd, ids[i]);
    long long dead = redis_conn_call_int(c, &cmd);
    for (size_t i = 0; i < n; i++)
        log_event(LOG_ERROR, "job.unreadable", NULL, "queue key %s: job %s: %s%s", m->base, ids[i],
                  REDIS_WRITE_UNREADABLE,
                  dead < 0 ? " (not yet marked dead: Redis failed)" : "; now dead");
    return dead > 0 ? (long)dead : 0;
}

/* Reads the leases of a fetch reply {token, now, then per lease: id view
 * attempts} into out; returns how many. A job whose record cannot be read
 * goes dead at once (it would fail the same way on every run): *buried
 * gets how many did. */
static int redis_write_fetch_reply(redisContext *c, const redis_model *m, const char *plist,
                                   const redisReply *r, size_t n, redis_write_lease *out,
                                   long *buried)
{
    if (r->elements < 2)
        return 0;
    long long token = redis_conn_int(r->element[0]);
    int64_t now = redis_conn_int(r->element[1]);
    const char *bad[REDIS_BATCH_MAX];
    size_t nbad = 0;
    int k = 0;
    for (size_t i = 2; i + 3 <= r->elements && (size_t)k < n; i += 3) {
        redisReply *const *f = r->element + i;
        job_t *job = redis_model_job(NULL, NULL, f[1], "running", f[2], NULL, NULL, 0, NULL);
        if (!job) {
            if (redis_conn_is_str(f[0]) && nbad < REDIS_BATCH_MAX)
                bad[nbad++] = f[0]->str;
            continue;
        }
        job->started_at = now;
        out[k++] = (redis_write_lease){.job = job, .token = token};
    }
    *buried = redis_write_bury(c, m, plist, bad, nbad);
    return k;
}

int redis_write_fetch(redisContext *c, const redis_model *m, const char *plist, size_t n,
                      redis_write_lease *out)
{
    int64_t wait_ms;
    long buried;
    return redis_write_fetch_limited(c, m, plist, n, out, NULL, &wait_ms, &buried);
}

int redis_write_fetch_limited(redisContext *c, const redis_model *m, const char *plist, size_t n,
                              redis_write_lease *out, const redis_write_procs *procs,
                              int64_t *wait_ms, long *buried)
{
    *wait_ms = 0;
    *buried = 0;
    if (n == 0)
        return 0;
    bool limit_running = m->max_running > 0 && procs;
    /* The limits' keys and arguments only when one is on (each costs
     * formatting on every fetch). */
    bool limited = limit_running || m->rate_t_us > 0 || m->max_depth > 0;
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_FETCH);
    redis_model_keys(&cmd, m->ready, plist, m->paused, m->fence, m->enqueued, m->running, NULL);
    if (limited)
        redis_model_keys(&cmd, m->rate, m->drain, m->procs, m->orphans, NULL);
    for (size_t i = 0; limit_running && i < procs->n; i++)
        redis_cmd_key(&cmd, procs->plists[i]);
    redis_cmd_addi(&cmd, (long long)(n > REDIS_BATCH_MAX ? REDIS_BATCH_MAX : n));
    if (limited) {
        redis_cmd_addi(&cmd, m->rate_t_us);
        redis_cmd_addi(&cmd, m->rate_tau_us);
        redis_cmd_addi(&cmd, limit_running ? m->max_running : 0);
        redis_cmd_adds(&cmd, m->max_depth > 0 ? "1" : "0");
    }
    for (size_t i = 0; limit_running && i < procs->n; i++)
        redis_cmd_adds(&cmd, procs->pids[i]);
    redisReply *r = redis_conn_call(c, &cmd, NULL);
    if (!r)
        return -1;
    int got = -1;
    if (r->type == REDIS_REPLY_INTEGER) {
        got = r->integer == -2 ? -3 : -2;
    } else if (redis_conn_is_array(r, 3) && redis_conn_is_str(r->element[0])) {
        *wait_ms = redis_conn_int(r->element[1]);
        /* A poll for a free max_running slot is spread over 0.5..1.5 times
         * the interval: a process that polled at fixed steps would fall into
         * step with its own runs' ends (its poll right after its own run
         * ended) and take every freed slot, starving the others. */
        if (redis_conn_is_str(r->element[2]) && strcmp(r->element[2]->str, "running") == 0 &&
            *wait_ms > 1)
            *wait_ms = *wait_ms / 2 + arc4random_uniform((uint32_t)*wait_ms);
        got = -4;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        got = redis_write_fetch_reply(c, m, plist, r, n, out, buried);
    }
    freeReplyObject(r);
    return got;
}

int redis_write_procs_load(redisContext *c, const redis_model *m, redis_write_procs *procs)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "SUNION");
    redis_cmd_adds(&cmd, m->procs);
    redis_cmd_adds(&cmd, m->orphans);
    redisReply *r = redis_conn_call_array(c, &cmd);
    if (!r)
        return -1;
    size_t n = r->elements;
    char(*pids)[REDIS_PID_LEN + 1] = calloc(n ? n : 1, sizeof *pids);
    char(*plists)[REDIS_KEY_MAX] = calloc(n ? n : 1, sizeof *plists);
    if (!pids || !plists) {
        free(pids);
        free(plists);
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        snprintf(pids[i], sizeof pids[i], "%s", redis_conn_is_str(e) ? e->str : "");
        redis_model_proc_key(m, pids[i], plists[i]);
    }
    freeReplyObject(r);
    redis_write_procs_free(procs);
    procs->pids = pids;
    procs->plists = plists;
    procs->n = n;
    return 0;
}

void redis_write_procs_free(redis_write_procs *procs)
{
    free(procs->pids);
    free(procs->plists);
    *procs = (redis_write_procs){0};
}

int redis_write_wait(redisContext *c, const redis_model *m, double block)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "BLMOVE");
    redis_cmd_adds(&cmd, m->ready);
    redis_cmd_adds(&cmd, m->ready);
    redis_cmd_adds(&cmd, "RIGHT");
    redis_cmd_adds(&cmd, "RIGHT");
    redis_cmd_addf(&cmd, "%.3f", block);
    redisReply *r = redis_conn_call(c, &cmd, NULL);
    if (!r)
        return -1;
    int got = r->type == REDIS_REPLY_STRING ? 1 : 0;
    freeReplyObject(r);
    return got;
}

/* --- ending runs --- */

static void redis_write_finish_args(redis_cmd *cmd, const redis_write_outcome *o)
{
    const job_t *job = o->job;
    redis_cmd_adds(cmd, job->id);
    redis_cmd_addi(cmd, o->token);
    redis_cmd_adds(cmd, job_state_name(o->next));
    redis_cmd_addi(cmd, job->attempts);
    redis_cmd_addi(cmd, (long long)(o->delay > 0 ? o->delay * 1000.0 : 0));
    redis_cmd_adds(cmd, job->last_error && o->next != JOB_SUCCEEDED ? job->last_error : "");
}

int redis_write_finish_batch(redisContext *c, const redis_model *m, const char *plist,
                             const redis_write_outcome *outs, size_t n, int *done, jobd_error *err)
{
    if (n == 0)
        return 0;
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_FINISH);
    redis_model_keys(&cmd, plist, m->running, m->state[JOB_RETRYING], m->state[JOB_DEAD], m->sched,
                     m->processed, m->failed, m->seq, NULL);
    for (size_t i = 0; i < n; i++)
        redis_write_finish_args(&cmd, &outs[i]);
    redisReply *r = redis_conn_call(c, &cmd, err);
    if (!r)
        return -1;
    int rc = redis_conn_is_array(r, n)
                 ? 0
                 : jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    for (size_t i = 0; rc == 0 && i < n; i++)
        done[i] = redis_conn_int(r->element[i]) == 1;
    freeReplyObject(r);
    return rc;
}

int redis_write_finish(redisContext *c, const redis_model *m, const char *plist, const job_t *job,
                       long long token, job_state next, double delay)
{
    redis_write_outcome o = {.job = job, .token = token, .next = next, .delay = delay};
    int done = 0;
    return redis_write_finish_batch(c, m, plist, &o, 1, &done, NULL) == 0 ? done : -1;
}

/* One requeue script call over ids[0..n) of pid's set, its counts added
 * to *got. 0, or -1 when the connection failed. */
static int redis_write_requeue(redisContext *c, const redis_model *m, const char *pid,
                               bool abandon, const char *why, const char *const *ids, size_t n,
                               redis_write_taken *got)
{
    char plist[REDIS_KEY_MAX];
    redis_model_proc_key(m, pid, plist);
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_REQUEUE);
    redis_model_keys(&cmd, plist, m->ready, m->state[JOB_DEAD], m->failed, m->seq, m->orphans,
                     m->enqueued, m->running, NULL);
    redis_cmd_adds(&cmd, abandon ? "abandon" : "release");
    redis_cmd_addi(&cmd, m->default_max);
    redis_cmd_adds(&cmd, pid);
    redis_cmd_adds(&cmd, why);
    for (size_t i = 0; i < n; i++)
        redis_cmd_adds(&cmd, ids[i]);
    redisReply *r = redis_conn_call_array(c, &cmd);
    bool ok = redis_conn_is_array(r, 2);
    if (ok) {
        got->moved += (long)redis_conn_int(r->element[0]);
        got->dead += (long)redis_conn_int(r->element[1]);
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Up to count ids of pid's lease set (HRANDFIELD): an array reply, or NULL. */
static redisReply *redis_write_proc_ids(redisContext *c, const redis_model *m, const char *pid,
                                        int count)
{
    char plist[REDIS_KEY_MAX];
    redis_model_proc_key(m, pid, plist);
    redis_cmd cmd;
    redis_cmd_init(&cmd, "HRANDFIELD");
    redis_cmd_adds(&cmd, plist);
    redis_cmd_addi(&cmd, count);
    return redis_conn_call_array(c, &cmd);
}

/* Requeues the ids of an id array reply for which keep (may be NULL) says
 * no; as redis_write_requeue. */
static int redis_write_requeue_reply(redisContext *c, const redis_model *m, const char *pid,
                                     bool abandon, const char *why, const redisReply *r,
                                     bool (*keep)(void *arg, const char *id), void *arg,
                                     redis_write_taken *got)
{
    const char **ids = calloc(r->elements ? r->elements : 1, sizeof *ids);
    if (!ids)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (!keep || !keep(arg, r->element[i]->str))
            ids[n++] = r->element[i]->str;
    int rc = redis_write_requeue(c, m, pid, abandon, why, ids, n, got);
    free(ids);
    return rc;
}

int redis_write_give_back(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                          const char *why, redis_write_taken *got)
{
    for (int round = 0; round < REDIS_WRITE_GIVE_BACK_ROUNDS; round++) {
        redisReply *ids = redis_write_proc_ids(c, m, pid, REDIS_WRITE_GIVE_BACK_BATCH);
        if (!ids)
            return -1;
        size_t got_ids = ids->elements;
        /* Run even with no ids: the script forgets an orphan whose set is empty. */
        int rc = redis_write_requeue_reply(c, m, pid, abandon, why, ids, NULL, NULL, got);
        freeReplyObject(ids);
        if (rc < 0)
            return -1;
        if (got_ids == 0)
            break;
    }
    return 0;
}

long redis_write_release_strays(redisContext *c, const redis_model *m, const char *pid,
                                bool (*held)(void *arg, const char *id), void *arg)
{
    redisReply *ids = redis_write_proc_ids(c, m, pid, REDIS_BATCH_MAX);
    if (!ids)
        return -1;
    redis_write_taken got = {0};
    int rc = redis_write_requeue_reply(c, m, pid, false, "", ids, held, arg, &got);
    freeReplyObject(ids);
    return rc < 0 ? -1 : got.moved;
}

/* --- processes --- */

int redis_write_beat(redisContext *c, const redis_model *m, const char *pid, const char *mode,
                     long long ttl_ms)
{
    char hb[REDIS_KEY_MAX];
    redis_model_hb_key(m, pid, hb);
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[REDIS_SCRIPT_BEAT]);
    redis_cmd_key(&cmd, m->procs);
    redis_cmd_key(&cmd, hb);
    redis_cmd_adds(&cmd, mode);
    redis_cmd_adds(&cmd, pid);
    redis_cmd_addi(&cmd, ttl_ms);
    return (int)redis_conn_call_int(c, &cmd);
}

/* SMEMBERS key: an array reply, or NULL. */
static redisReply *redis_write_members(redisContext *c, const char *key)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "SMEMBERS");
    redis_cmd_adds(&cmd, key);
    return redis_conn_call_array(c, &cmd);
}

/* Declares registered processes without heartbeat dead. -1 when the connection failed. */
static int redis_write_find_orphans(redisContext *c, const redis_model *m, const char *self)
{
    redisReply *procs = redis_write_members(c, m->procs);
    if (!procs)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < procs->elements && rc == 0; i++) {
        const char *pid = procs->element[i]->str;
        if (strcmp(pid, self) == 0)
            continue;
        char hb[REDIS_KEY_MAX];
        redis_model_hb_key(m, pid, hb);
        redis_cmd cmd;
        redis_cmd_init_script(&cmd, &m->scripts[REDIS_SCRIPT_ORPHAN]);
        redis_cmd_key(&cmd, m->procs);
        redis_cmd_key(&cmd, hb);
        redis_cmd_key(&cmd, m->orphans);
        redis_cmd_adds(&cmd, pid);
        long long v = redis_conn_call_int(c, &cmd);
        if (v < 0)
            rc = -1;
        else if (v == 1)
            log_event(LOG_WARN, "redis.process_lost", NULL,
                      "process %s of queue key %s stopped heartbeating: taking its jobs back", pid,
                      m->base);
    }
    freeReplyObject(procs);
    return rc;
}

int redis_write_reap(redisContext *c, const redis_model *m, const char *self,
                     redis_write_taken *got)
{
    if (redis_write_find_orphans(c, m, self) != 0)
        return -1;
    redisReply *orphans = redis_write_members(c, m->orphans);
    if (!orphans)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < orphans->elements && rc == 0; i++) {
        char why[128];
        snprintf(why, sizeof why, "lease lost: process %.40s stopped heartbeating",
                 orphans->element[i]->str);
        rc = redis_write_give_back(c, m, orphans->element[i]->str, true, why, got);
    }
    freeReplyObject(orphans);
    return rc;
}

/* --- due jobs and retention --- */

long redis_write_promote(redisContext *c, const redis_model *m, size_t batch)
{
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_PROMOTE);
    redis_model_keys(&cmd, m->sched, m->ready, m->state[JOB_SCHEDULED], m->state[JOB_RETRYING],
                     m->enqueued, NULL);
    redis_cmd_addi(&cmd, (long long)(batch > REDIS_BATCH_MAX ? REDIS_BATCH_MAX : batch));
    return (long)redis_conn_call_int(c, &cmd);
}

long redis_write_trim(redisContext *c, const redis_model *m, bool dead, double max_age,
                      long max_count, size_t batch)
{
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_TRIM);
    /* The finished set holds succeeded (no state set) and cancelled jobs. */
    redis_model_keys(&cmd, dead ? m->dead : m->finished,
                     dead ? m->state[JOB_DEAD] : m->state[JOB_CANCELLED], m->trimmed, NULL);
    redis_cmd_addi(&cmd, (long long)(max_age * 1000.0));
    redis_cmd_adds(&cmd, dead ? "1000" : "1");
    redis_cmd_addi(&cmd, max_count);
    redis_cmd_addi(&cmd, (long long)(batch > REDIS_BATCH_MAX ? REDIS_BATCH_MAX : batch));
    return (long)redis_conn_call_int(c, &cmd);
}

/* --- cancel, dead jobs, pause --- */

/* Reads {0} / {2, state} / {1, record?} answers of cancel and dead: the new
 * view (json_null() when there is no record), or NULL with 404/409 in err. */
static json_t *redis_write_answer(const redis_model *m, const redisReply *r, const char *id,
                                  const char *conflict, jobd_error *err)
{
    long long code = redis_conn_is_array(r, 1) ? redis_conn_int(r->element[0]) : -1;
    if (code == 0) {
        redis_model_unknown(err, id);
        return NULL;
    }
    if (code == 2 && r->elements >= 2 && redis_conn_is_str(r->element[1])) {
        jobd_fail(err, 409, "conflict", "job \"%s\" is %s%s", id, r->element[1]->str, conflict);
        return NULL;
    }
    if (code != 1) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
        return NULL;
    }
    return r->elements >= 2 ? redis_model_view(m, r->element[1], id, err) : json_null();
}

json_t *redis_write_cancel(redisContext *c, const redis_model *m, const char *id, jobd_error *err)
{
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_CANCEL);
    redis_model_keys(&cmd, m->sched, m->state[JOB_SCHEDULED], m->state[JOB_RETRYING],
                     m->state[JOB_CANCELLED], m->enqueued, NULL);
    redis_cmd_adds(&cmd, id);
    redisReply *r = redis_conn_call(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *v = redis_write_answer(m, r, id, " and cannot be cancelled", err);
    freeReplyObject(r);
    return v;
}

json_t *redis_write_dead_op(redisContext *c, const redis_model *m, const char *id, bool retry,
                            jobd_error *err)
{
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_DEAD);
    redis_model_keys(&cmd, m->state[JOB_DEAD], m->ready, m->enqueued, NULL);
    redis_cmd_adds(&cmd, retry ? "retry" : "delete");
    redis_cmd_adds(&cmd, id);
    redisReply *r = redis_conn_call(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *v = redis_write_answer(m, r, id, ", not dead", err);
    freeReplyObject(r);
    return v;
}

int redis_write_pause(redisContext *c, const redis_model *m, bool paused, jobd_error *err)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, paused ? "SET" : "DEL");
    redis_cmd_adds(&cmd, m->paused);
    if (paused)
        redis_cmd_adds(&cmd, "1");
    redisReply *r = redis_conn_call(c, &cmd, err);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}
