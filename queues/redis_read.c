/* redis_read.c - the store reads of a queue: one job, pages of jobs (by a
 * zset, by a bounded scan of all, or the running ones from the lease sets
 * sorted here), the paused flag and the counts. Nothing here writes. */
#include "redis_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/name.h"
#include "job.h"

#define REDIS_READ_SCAN_BUDGET 1000   /* jobs a filtered list request looks at, at most */
#define REDIS_READ_RUNNING_MAX 100000 /* running jobs a list of running ones looks at, at most */

/* --- records --- */

/* Reading records from C: an HMGET per column and a ZMSCORE of finished
 * and of dead (finished_at), the ids added to each (redis_read_records_add),
 * sent in one pipeline (redis_read_records_run). */
enum { REDIS_READ_CMDS = 8 };
static const enum redis_column redis_read_cols[] = {REDIS_COL_V, REDIS_COL_S, REDIS_COL_A,
                                                    REDIS_COL_R, REDIS_COL_B, REDIS_COL_E};
enum { REDIS_READ_FIN = 6, REDIS_READ_DEAD = 7 };

static void redis_read_records_init(redis_cmd cmds[REDIS_READ_CMDS], const redis_model *m)
{
    for (size_t k = 0; k < REDIS_READ_CMDS; k++) {
        redis_cmd_init(&cmds[k], k < REDIS_READ_FIN ? "HMGET" : "ZMSCORE");
        redis_cmd_adds(&cmds[k], k < REDIS_READ_FIN    ? m->col[redis_read_cols[k]]
                                 : k == REDIS_READ_FIN ? m->finished
                                                       : m->dead);
    }
}

static void redis_read_records_add(redis_cmd cmds[REDIS_READ_CMDS], const char *id, size_t len)
{
    for (size_t k = 0; k < REDIS_READ_CMDS; k++)
        redis_cmd_add(&cmds[k], id, len);
}

/* Sends and frees the commands (n ids, n > 0); cols gets one array reply
 * of n per command. 0, or -1 (cols all NULL) when the connection failed. */
static int redis_read_records_run(redisContext *c, redis_cmd cmds[REDIS_READ_CMDS], size_t n,
                                  redisReply *cols[REDIS_READ_CMDS])
{
    redis_cmd *ptrs[REDIS_READ_CMDS];
    for (size_t k = 0; k < REDIS_READ_CMDS; k++)
        ptrs[k] = &cmds[k];
    int rc = redis_conn_pipeline(c, ptrs, REDIS_READ_CMDS, cols);
    for (size_t k = 0; k < REDIS_READ_CMDS; k++)
        redis_cmd_free(&cmds[k]);
    for (size_t k = 0; rc == 0 && k < REDIS_READ_CMDS; k++)
        if (!redis_conn_is_array(cols[k], n))
            rc = -1;
    if (rc != 0 && cols[0])
        for (size_t k = 0; k < REDIS_READ_CMDS; k++) {
            freeReplyObject(cols[k]);
            cols[k] = NULL;
        }
    return rc;
}

/* Row i of columns read by redis_read_records_run: the view reply (NULL: no such
 * job), and the job (NULL: none or unreadable; new job). */
static job_t *redis_read_row(const redis_model *m, const char *id,
                             redisReply *const cols[REDIS_READ_CMDS], size_t i)
{
    redisReply *f[REDIS_READ_CMDS];
    for (size_t k = 0; k < REDIS_READ_CMDS; k++)
        f[k] = cols[k]->element[i];
    int64_t finished = redis_conn_is_str(f[REDIS_READ_FIN])
                           ? redis_conn_int(f[REDIS_READ_FIN])
                           : redis_conn_int(f[REDIS_READ_DEAD]) / 1000;
    return redis_model_job(m, id, f[0], redis_conn_is_str(f[1]) ? f[1]->str : NULL, f[2], f[3],
                           f[4], finished, f[5]);
}

static void redis_read_free_cols(redisReply *cols[REDIS_READ_CMDS])
{
    for (size_t k = 0; k < REDIS_READ_CMDS; k++)
        freeReplyObject(cols[k]);
}

/* --- one job, pages --- */

json_t *redis_read_get(redisContext *c, const redis_model *m, const char *id, jobd_error *err)
{
    redis_cmd cmds[REDIS_READ_CMDS];
    redisReply *cols[REDIS_READ_CMDS];
    redis_read_records_init(cmds, m);
    redis_read_records_add(cmds, id, strlen(id));
    if (redis_read_records_run(c, cmds, 1, cols) != 0) {
        redis_conn_check_reply(c, NULL, err);
        return NULL;
    }
    json_t *v = NULL;
    if (!redis_conn_is_str(cols[0]->element[0])) {
        redis_model_unknown(err, id);
    } else {
        v = redis_model_job_view(redis_read_row(m, id, cols, 0), id, err);
    }
    redis_read_free_cols(cols);
    return v;
}

/* A paging position: the score and id of the last job of a page. */
typedef struct redis_read_cursor {
    char score[24]; /* "" = from the top */
    char id[JOB_ID_MAX + 1];
} redis_read_cursor;

/* Reads a cursor this server gave out, "<score>:<id>" (or a bare score, as
 * older versions gave: then every job at that score counts as shown); NULL
 * is the top. 0, or -1 when it is not one of ours. */
static int redis_read_cursor_parse(const char *cursor, redis_read_cursor *pos)
{
    memset(pos, 0, sizeof *pos);
    if (!cursor)
        return 0;
    size_t n = strspn(cursor, "0123456789");
    if (n == 0 || n >= sizeof pos->score || (cursor[n] && cursor[n] != ':') ||
        (cursor[n] == ':' && !name_id_ok(cursor + n + 1)))
        return -1;
    memcpy(pos->score, cursor, n);
    if (cursor[n] == ':')
        snprintf(pos->id, sizeof pos->id, "%s", cursor + n + 1);
    return 0;
}

/* The cursor of the page that ends with (id, score): new memory, NULL on OOM. */
static char *redis_read_cursor_text(const redisReply *id, const redisReply *score)
{
    char *out = NULL;
    return asprintf(&out, "%s:%s", score->str, id->str) < 0 ? NULL : out;
}

static void redis_read_cursor_args(redis_cmd *cmd, const redis_read_cursor *pos)
{
    redis_cmd_adds(cmd, pos->score);
    redis_cmd_adds(cmd, pos->id);
}

/* The views of the jobs ids (first n id/score pairs: ids[2i] the id) that are still in
 * state (-1 = any) as {"jobs","next_cursor"} (next NULL = the end); NULL
 * with 503 on failure. */
static json_t *redis_read_page(redisContext *c, const redis_model *m, redisReply *const *ids,
                               size_t n, int state, const char *next, jobd_error *err)
{
    json_t *jobs = json_array();
    if (n == 0)
        return json_pack("{s:o,s:o}", "jobs", jobs, "next_cursor",
                         next ? json_string(next) : json_null());
    redis_cmd cmds[REDIS_READ_CMDS];
    redisReply *cols[REDIS_READ_CMDS];
    redis_read_records_init(cmds, m);
    for (size_t i = 0; i < n; i++)
        redis_read_records_add(cmds, ids[2 * i]->str, ids[2 * i]->len);
    if (redis_read_records_run(c, cmds, n, cols) != 0) {
        json_decref(jobs);
        redis_conn_check_reply(c, NULL, err);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        job_t *job = redis_read_row(m, ids[2 * i]->str, cols, i);
        if (job && (state < 0 || (int)job->state == state))
            json_array_append_new(jobs, job_view(job));
        job_free(job);
    }
    redis_read_free_cols(cols);
    return json_pack("{s:o,s:o}", "jobs", jobs, "next_cursor",
                     next ? json_string(next) : json_null());
}

/* redis_read_page of the first n pairs, the next cursor made from pair n - 1 when
 * more holds (there are more jobs past it). */
static json_t *redis_read_page_at(redisContext *c, const redis_model *m, redisReply *const *pairs,
                                  size_t n, bool more, int state, jobd_error *err)
{
    char *next = more && n ? redis_read_cursor_text(pairs[2 * n - 2], pairs[2 * n - 1]) : NULL;
    json_t *page = more && n && !next ? NULL : redis_read_page(c, m, pairs, n, state, next, err);
    if (more && n && !next)
        jobd_fail(err, 503, "unavailable", "out of memory");
    free(next);
    return page;
}

/* A page of zset (newest first), up to limit jobs past the cursor. */
static json_t *redis_read_list_zset(redisContext *c, const redis_model *m, const char *zset,
                                    int state, size_t limit, const redis_read_cursor *pos,
                                    jobd_error *err)
{
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_PAGE);
    redis_cmd_key(&cmd, zset);
    redis_read_cursor_args(&cmd, pos);
    redis_cmd_addi(&cmd, (long long)limit + 1);
    redisReply *ids = redis_conn_call(c, &cmd, err);
    if (!ids)
        return NULL;
    json_t *page = NULL;
    if (ids->type != REDIS_REPLY_ARRAY) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    } else {
        size_t k = ids->elements / 2, n = k > limit ? limit : k;
        page = redis_read_page_at(c, m, ids->element, n, k > limit, state, err);
    }
    freeReplyObject(ids);
    return page;
}

/* A page of the jobs in state (one without a zset of its own), from a
 * bounded scan of all: it may hold fewer than limit jobs and still have a
 * next cursor. */
static json_t *redis_read_list_scan(redisContext *c, const redis_model *m, int state, size_t limit,
                                    const redis_read_cursor *pos, jobd_error *err)
{
    redis_cmd cmd;
    redis_model_script(&cmd, m, REDIS_SCRIPT_SCAN);
    redis_read_cursor_args(&cmd, pos);
    redis_cmd_adds(&cmd, job_state_name((job_state)state));
    redis_cmd_addi(&cmd, (long long)limit);
    redis_cmd_addi(&cmd,
                   REDIS_READ_SCAN_BUDGET > limit ? REDIS_READ_SCAN_BUDGET : (long long)limit);
    redisReply *r = redis_conn_call(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *page = NULL;
    if (!redis_conn_is_array(r, 2) || r->element[0]->type != REDIS_REPLY_ARRAY) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    } else {
        const redisReply *ids = r->element[0];
        bool more = r->elements >= 3 && redis_conn_is_str(r->element[1]) &&
                    redis_conn_is_str(r->element[2]);
        char *next = more ? redis_read_cursor_text(r->element[1], r->element[2]) : NULL;
        if (more && !next)
            jobd_fail(err, 503, "unavailable", "out of memory");
        else
            page = redis_read_page(c, m, ids->element, ids->elements / 2, state, next, err);
        free(next);
    }
    freeReplyObject(r);
    return page;
}

/* Replies of one command per key (cmd key), pipelined; NULL (all freed)
 * unless each is an array. The caller frees each reply and the array. */
static redisReply **redis_read_each_key(redisContext *c, const char *cmd, const char *const *keys,
                                        size_t n)
{
    redis_cmd *cmds = calloc(n ? n : 1, sizeof *cmds);
    redis_cmd **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    redisReply **r = calloc(n ? n : 1, sizeof *r);
    int rc = cmds && ptrs && r ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        redis_cmd_init(&cmds[i], cmd);
        redis_cmd_adds(&cmds[i], keys[i]);
        ptrs[i] = &cmds[i];
    }
    if (rc == 0)
        rc = redis_conn_pipeline(c, ptrs, n, r);
    for (size_t i = 0; cmds && i < n; i++)
        redis_cmd_free(&cmds[i]);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!redis_conn_is_array(r[i], 0))
            rc = -1;
    if (rc != 0 && r) {
        for (size_t i = 0; i < n; i++)
            if (r[i])
                freeReplyObject(r[i]);
        free(r);
        r = NULL;
    }
    free(cmds);
    free(ptrs);
    return r;
}

/* The lease sets of live processes and of dead ones not yet taken back
 * (HKEYS of each): replies for redis_read_each_key's caller, *n of them; NULL on failure. */
static redisReply **redis_read_lease_sets(redisContext *c, const redis_model *m, size_t *n)
{
    const char *const sets[] = {m->procs, m->orphans};
    redisReply **pids = redis_read_each_key(c, "SMEMBERS", sets, 2);
    if (!pids)
        return NULL;
    *n = pids[0]->elements + pids[1]->elements;
    char(*keys)[REDIS_KEY_MAX] = calloc(*n ? *n : 1, sizeof *keys);
    const char **ptrs = calloc(*n ? *n : 1, sizeof *ptrs);
    redisReply **r = NULL;
    if (keys && ptrs) {
        size_t k = 0;
        for (size_t s = 0; s < 2; s++)
            for (size_t i = 0; i < pids[s]->elements; i++, k++) {
                redis_model_proc_key(m, pids[s]->element[i]->str, keys[k]);
                ptrs[k] = keys[k];
            }
        r = redis_read_each_key(c, "HKEYS", ptrs, *n);
    }
    free(keys);
    free(ptrs);
    freeReplyObject(pids[0]);
    freeReplyObject(pids[1]);
    free(pids);
    return r;
}

/* Order of (id, score) pairs as the zsets list them newest first: higher
 * score first, then (equal scores) the higher id first. */
static int redis_read_pair_cmp(const char *id_a, long long score_a, const char *id_b,
                               long long score_b)
{
    if (score_a != score_b)
        return score_a < score_b ? 1 : -1;
    return -strcmp(id_a, id_b);
}

/* qsort order of (id, score) reply pairs, newest first. */
static int redis_read_newest_first(const void *a, const void *b)
{
    redisReply *const *x = a, *const *y = b;
    return redis_read_pair_cmp(x[0]->str, redis_conn_int(x[1]), y[0]->str, redis_conn_int(y[1]));
}

/* A page of the running jobs: the ids in the lease sets, by index score
 * (ZMSCORE of all), sorted here. */
static json_t *redis_read_list_running(redisContext *c, const redis_model *m, size_t limit,
                                       const redis_read_cursor *pos, jobd_error *err)
{
    size_t nsets = 0;
    redisReply **sets = redis_read_lease_sets(c, m, &nsets);
    if (!sets) {
        jobd_fail(err, 503, "unavailable", "cannot read the lease sets from Redis");
        return NULL;
    }
    redis_cmd cmd;
    redis_cmd_init(&cmd, "ZMSCORE");
    redis_cmd_adds(&cmd, m->all);
    size_t n = 0;
    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; i < sets[s]->elements && n < REDIS_READ_RUNNING_MAX; i++, n++)
            redis_cmd_add(&cmd, sets[s]->element[i]->str, sets[s]->element[i]->len);
    redisReply *scores = n ? redis_conn_call(c, &cmd, err) : NULL;
    if (!n)
        redis_cmd_free(&cmd);
    redisReply **pairs = calloc(2 * (n ? n : 1), sizeof *pairs);
    json_t *page = NULL;
    if ((n && !redis_conn_is_array(scores, n)) || !pairs) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    } else {
        long long before = strtoll(pos->score, NULL, 10);
        size_t k = 0, j = 0;
        for (size_t s = 0; s < nsets; s++)
            for (size_t i = 0; i < sets[s]->elements && j < n; i++, j++)
                if (redis_conn_is_str(scores->element[j]) &&
                    (!pos->score[0] || redis_read_pair_cmp(sets[s]->element[i]->str,
                                                           redis_conn_int(scores->element[j]),
                                                           pos->id, before) > 0)) {
                    pairs[2 * k] = sets[s]->element[i];
                    pairs[2 * k++ + 1] = scores->element[j];
                }
        qsort(pairs, k, 2 * sizeof *pairs, redis_read_newest_first);
        size_t shown = k > limit ? limit : k;
        page = redis_read_page_at(c, m, pairs, shown, k > limit, JOB_RUNNING, err);
    }
    free(pairs);
    if (scores)
        freeReplyObject(scores);
    for (size_t s = 0; s < nsets; s++)
        freeReplyObject(sets[s]);
    free(sets);
    return page;
}

json_t *redis_read_list(redisContext *c, const redis_model *m, int state, bool dead_set,
                        size_t limit, const char *cursor, jobd_error *err)
{
    redis_read_cursor pos;
    if (redis_read_cursor_parse(cursor, &pos) != 0) {
        jobd_fail(err, 400, "invalid_parameter", "cursor is not one this server gave");
        if (err)
            snprintf(err->field, sizeof err->field, "cursor");
        return NULL;
    }
    if (dead_set)
        return redis_read_list_zset(c, m, m->dead, JOB_DEAD, limit, &pos, err);
    if (state == JOB_ENQUEUED || state == JOB_SUCCEEDED)
        return redis_read_list_scan(c, m, state, limit, &pos, err);
    if (state == JOB_RUNNING)
        return redis_read_list_running(c, m, limit, &pos, err);
    return redis_read_list_zset(c, m, state < 0 ? m->all : m->state[state], state, limit, &pos,
                                err);
}
/* --- the queue --- */

int redis_read_paused(redisContext *c, const redis_model *m)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "EXISTS");
    redis_cmd_adds(&cmd, m->paused);
    long long v = redis_conn_call_int(c, &cmd);
    return v < 0 ? -1 : v > 0;
}

json_t *redis_read_info(redisContext *c, const redis_model *m, jobd_error *err)
{
    /* How each count is kept: a state set's size, or a counter. */
    static const struct {
        job_state state;
        bool counter;
    } counted[] = {{JOB_SCHEDULED, false},
                   {JOB_ENQUEUED, true},
                   {JOB_RUNNING, true},
                   {JOB_RETRYING, false},
                   {JOB_DEAD, false}};
    enum { NC = sizeof counted / sizeof counted[0], N = NC + 3 };
    redis_cmd cmds[N];
    redis_cmd *ptrs[N];
    redis_cmd_init(&cmds[0], "EXISTS");
    redis_cmd_adds(&cmds[0], m->paused);
    for (size_t i = 0; i < NC; i++) {
        redis_cmd_init(&cmds[1 + i], counted[i].counter ? "GET" : "ZCARD");
        const char *key = !counted[i].counter                ? m->state[counted[i].state]
                          : counted[i].state == JOB_ENQUEUED ? m->enqueued
                                                             : m->running;
        redis_cmd_adds(&cmds[1 + i], key);
    }
    redis_cmd_init(&cmds[NC + 1], "GET");
    redis_cmd_adds(&cmds[NC + 1], m->processed);
    redis_cmd_init(&cmds[NC + 2], "GET");
    redis_cmd_adds(&cmds[NC + 2], m->failed);
    for (size_t i = 0; i < N; i++)
        ptrs[i] = &cmds[i];
    redisReply *r[N];
    int rc = redis_conn_pipeline(c, ptrs, N, r);
    for (size_t i = 0; i < N; i++)
        redis_cmd_free(&cmds[i]);
    if (rc != 0) {
        redis_conn_check_reply(c, NULL, err);
        return NULL;
    }
    json_t *counts = json_object();
    for (size_t i = 0; i < NC; i++)
        json_object_set_new(counts, job_state_name(counted[i].state),
                            json_integer(redis_conn_int(r[1 + i])));
    json_t *info = json_pack("{s:b,s:o,s:I,s:I}", "paused", redis_conn_int(r[0]) > 0, "counts",
                             counts, "processed_total", (json_int_t)redis_conn_int(r[NC + 1]),
                             "failed_total", (json_int_t)redis_conn_int(r[NC + 2]));
    for (size_t i = 0; i < N; i++)
        freeReplyObject(r[i]);
    return info;
}
