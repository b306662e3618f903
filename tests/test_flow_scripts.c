/* test_flow_scripts.c - the flow limits inside the Lua scripts (fetch: the
 * rate and max_running; enqueue: max_depth), run against the suite's real
 * redis-server through their C callers, one key prefix per test. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../queues/job.h"
#include "../queues/redis_write.h"
#include "redis_test.h"

static redisContext *rc;
static redis_model model;

static void setup(void)
{
    rc = rt_script_setup(&model);
}

static void teardown(void)
{
    if (rc)
        redisFree(rc);
}

TestSuite(flow_scripts, .init = setup, .fini = teardown, .timeout = 30);

/* Stores n new noop jobs <tag>-0.. (0 or the enqueue's -1), err filled. */
static int enqueue_n(const char *tag, int first, int n, jobd_error *err)
{
    job_t *jobs[16], *replayed[16];
    cr_assert_leq(n, 16);
    for (int i = 0; i < n; i++) {
        jobs[i] = job_new();
        snprintf(jobs[i]->id, sizeof jobs[i]->id, "%s-%d", tag, first + i);
        snprintf(jobs[i]->queue, sizeof jobs[i]->queue, "q");
        snprintf(jobs[i]->type, sizeof jobs[i]->type, "noop");
        jobs[i]->created_at = jobd_now_ms();
        jobs[i]->state = JOB_ENQUEUED;
    }
    int rc_ = redis_write_enqueue(rc, &model, jobs, (size_t)n, 0, replayed, NULL, err);
    for (int i = 0; i < n; i++) {
        job_free(jobs[i]);
        if (rc_ == 0)
            job_free(replayed[i]);
    }
    return rc_;
}

/* Runs a command (printf-style, hiredis) and frees the reply. */
static void cmd(const char *fmt, const char *a, const char *b)
{
    redisReply *r = redisCommand(rc, fmt, a, b);
    cr_assert_not_null(r);
    freeReplyObject(r);
}

/* Fetches up to n into out for process pid; frees the jobs. Returns as
 * redis_write_fetch_limited. */
static int fetch(const char *pid, size_t n, const redis_write_procs *procs, int64_t *wait_ms)
{
    char plist[REDIS_KEY_MAX];
    redis_write_lease out[16];
    redis_model_proc_key(&model, pid, plist);
    long buried;
    int got = redis_write_fetch_limited(rc, &model, plist, n, out, procs, wait_ms, &buried);
    cr_assert_eq(buried, 0, "every record here is readable");
    for (int i = 0; i < got; i++)
        job_free(out[i].job);
    return got;
}

Test(flow_scripts, rate_takes_the_burst_then_says_how_long_to_wait)
{
    jobd_error err = {0};
    cr_assert_eq(enqueue_n("r", 0, 10, &err), 0, "%s", err.message);
    /* 10 starts per second, a burst of 3. */
    model.rate_t_us = 100000;
    model.rate_tau_us = 2 * 100000;
    int64_t wait_ms = -1;
    cr_assert_eq(fetch("pa", 10, NULL, &wait_ms), 3, "the burst");
    cr_assert_eq(fetch("pa", 10, NULL, &wait_ms), -4, "over the rate");
    cr_expect(wait_ms >= 1 && wait_ms <= 100, "wait %lld ms", (long long)wait_ms);
    ts_sleep_ms((int)wait_ms + 5);
    cr_expect_eq(fetch("pa", 10, NULL, &wait_ms), 1, "one start per 100 ms");
    cr_expect_eq(fetch("pa", 10, NULL, &wait_ms), -4);
    /* Nothing was taken by the refused fetches: 10 - 4 still ready. */
    redisReply *r = redisCommand(rc, "LLEN %s", model.ready);
    cr_assert_not_null(r);
    cr_expect_eq(r->integer, 6);
    freeReplyObject(r);
}

Test(flow_scripts, max_running_counts_every_lease_set_live_or_orphaned)
{
    jobd_error err = {0};
    cr_assert_eq(enqueue_n("m", 0, 5, &err), 0, "%s", err.message);
    model.max_running = 2;
    char pa_list[REDIS_KEY_MAX];
    redis_model_proc_key(&model, "pa", pa_list);
    cmd("SADD %s %s", model.procs, "pa");
    cmd("SADD %s %s", model.procs, "pb");
    cmd("HSET %s %s 1", pa_list, "elsewhere"); /* one lease held by pa */
    redis_write_procs procs = {0};
    cr_assert_eq(redis_write_procs_load(rc, &model, &procs), 0);
    cr_assert_eq(procs.n, 2);
    int64_t wait_ms = 0;
    cr_expect_eq(fetch("pb", 5, &procs, &wait_ms), 1, "2 - 1 slots");
    cr_expect_eq(fetch("pb", 5, &procs, &wait_ms), -4, "both slots taken");
    cr_expect(wait_ms >= 25 && wait_ms <= 75, "a poll of 50 ms +- 50 %%, not %lld",
              (long long)wait_ms);
    /* A process came: the list is out of date until reloaded. */
    cmd("SADD %s %s", model.procs, "pc");
    cr_expect_eq(fetch("pb", 5, &procs, &wait_ms), -3);
    /* pa declared dead: its lease still counts until it is reaped. */
    cmd("SREM %s %s", model.procs, "pa");
    cmd("SADD %s %s", model.orphans, "pa");
    cr_assert_eq(redis_write_procs_load(rc, &model, &procs), 0);
    cr_expect_eq(fetch("pb", 5, &procs, &wait_ms), -4);
    /* Reaped: its slot comes back. */
    cmd("DEL %s", pa_list, NULL);
    cmd("SREM %s %s", model.orphans, "pa");
    cr_assert_eq(redis_write_procs_load(rc, &model, &procs), 0);
    cr_expect_eq(fetch("pb", 5, &procs, &wait_ms), 1);
    redis_write_procs_free(&procs);
}

Test(flow_scripts, max_depth_refuses_new_jobs_whole_and_counts_no_replay)
{
    jobd_error err = {0};
    model.max_depth = 3;
    cr_assert_eq(enqueue_n("d", 0, 2, &err), 0, "%s", err.message);
    /* 2 + 2 > 3: nothing stored, 429 with Retry-After 60 (nothing drains). */
    cr_assert_eq(enqueue_n("d", 2, 2, &err), -1);
    cr_expect_eq(err.status, 429);
    cr_expect_str_eq(err.code, "queue_full");
    cr_expect_eq(err.retry_after, 60);
    redisReply *r = redisCommand(rc, "HEXISTS %s d-2", model.col[REDIS_COL_S]);
    cr_assert_not_null(r);
    cr_expect_eq(r->integer, 0, "a refused batch stored d-2");
    freeReplyObject(r);
    /* d-1 is a replay: only d-2 is new, 2 + 1 fits. */
    cr_expect_eq(enqueue_n("d", 1, 2, &err), 0, "%s", err.message);
    /* Full; with 10 starts a second lately, 2 over the bound wait 1 s. */
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)jobd_now_ms());
    cmd("HSET %s t %s c 50 p 0", model.drain, now);
    err = (jobd_error){0};
    cr_assert_eq(enqueue_n("e", 0, 2, &err), -1);
    cr_expect_eq(err.retry_after, 1);
}

/* A batch of several submissions (an aggregate's): each part is admitted or
 * refused whole, in order, against what the parts before it took. */
Test(flow_scripts, max_depth_admits_each_part_whole)
{
    jobd_error err = {0};
    model.max_depth = 4;
    cr_assert_eq(enqueue_n("p", 0, 2, &err), 0, "%s", err.message);
    /* Parts: {p-1 (a replay), a-0} fits (3), {b-0, b-1} would make 5: refused,
     * {c-0} fits (4), {p-0, a-0} replays only: answered. */
    const char *ids[] = {"p-1", "a-0", "b-0", "b-1", "c-0", "p-0", "a-0"};
    enum { N = sizeof ids / sizeof *ids };
    const size_t parts[] = {2, 2, 1, 2};
    job_t *jobs[N], *replayed[N];
    int waits[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = job_new();
        snprintf(jobs[i]->id, sizeof jobs[i]->id, "%s", ids[i]);
        snprintf(jobs[i]->queue, sizeof jobs[i]->queue, "q");
        snprintf(jobs[i]->type, sizeof jobs[i]->type, "noop");
        jobs[i]->created_at = jobd_now_ms();
        jobs[i]->state = JOB_ENQUEUED;
    }
    cr_assert_eq(redis_write_enqueue_parts(rc, &model, jobs, N, parts, 4, 0, replayed, waits, NULL,
                                           &err),
                 0, "%s", err.message);
    const int refused[N] = {0, 0, 1, 1, 0, 0, 0};
    const int replay[N] = {1, 0, 0, 0, 0, 1, 1};
    for (int i = 0; i < N; i++) {
        cr_expect_eq(waits[i] > 0, refused[i], "job %d (%s): wait %d", i, ids[i], waits[i]);
        cr_expect_eq(replayed[i] != NULL, replay[i], "job %d (%s)", i, ids[i]);
        job_free(replayed[i]);
        job_free(jobs[i]);
    }
    redisReply *r = redisCommand(rc, "GET %s", model.enqueued);
    cr_assert_not_null(r);
    cr_expect_str_eq(r->str, "4", "p-0 p-1 a-0 c-0");
    freeReplyObject(r);
}
