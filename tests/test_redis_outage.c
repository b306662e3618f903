/* test_redis_outage.c - jobd while its Redis is stopped, frozen or crashed:
 * each test runs a redis-server of its own that it can take away. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../queues/job.h"
#include "../util/rfc3339.h"
#include "redis_test.h"

TestSuite(redis_outage, .fini = rt_cleanup, .timeout = 60);

static const char *const aof_always[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};

/* POSTs a noop job with that id; the status, and the time it took in *ms. */
static long post_timed(int port, const char *id, long long *ms)
{
    char body[128];
    snprintf(body, sizeof body, "{\"type\": \"noop\", \"id\": \"%s\"}", id);
    long long t0 = ts_now_ms();
    long status = rt_submit(port, body, NULL);
    if (ms)
        *ms = ts_now_ms() - t0;
    return status;
}

/* POSTs until one answers 202 or timeout_ms passes; the ms it took, or -1. */
static long long post_until_accepted(int port, const char *id, int timeout_ms)
{
    long long t0 = ts_now_ms();
    while (ts_now_ms() - t0 < timeout_ms) {
        if (post_timed(port, id, NULL) == 202)
            return ts_now_ms() - t0;
        rt_sleep_ms(50);
    }
    return -1;
}

static long get_status(int port, const char *path, long long *ms)
{
    ts_resp r;
    long long t0 = ts_now_ms();
    long status = ts_get(&r, port, path) == 0 ? r.status : 0;
    if (ms)
        *ms = ts_now_ms() - t0;
    ts_resp_free(&r);
    return status;
}

static bool wait_status(int port, const char *path, long want, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    while (ts_now_ms() < deadline) {
        if (get_status(port, path, NULL) == want)
            return true;
        rt_sleep_ms(20);
    }
    return false;
}

Test(redis_outage, stopped_redis_refuses_jobs_and_resumes_without_restart)
{
    rt_redis rs;
    rt_redis_start(&rs, aof_always);
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, rs.port, ts_unique(prefix), 2);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    cr_assert_eq(post_timed(j.port, "before", NULL), 202);
    cr_assert(ts_wait_state(j.port, "q", "before", "succeeded", 3000, NULL));

    rt_redis_kill(&rs, SIGTERM);
    long long ms;
    ts_resp r;
    cr_assert_eq(ts_post(&r, j.port, "/queues/q/jobs", "{\"type\": \"noop\", \"id\": \"during\"}"),
                 0);
    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(ts_error_code(&r), "unavailable");
    char ra[16];
    cr_assert_not_null(ts_resp_header(&r, "Retry-After", ra, sizeof ra), "Retry-After is set");
    cr_assert_lt(r.seconds, 0.6);
    ts_resp_free(&r);
    cr_assert_eq(post_timed(j.port, "during2", &ms), 503);
    cr_assert_lt(ms, 100, "known down: answered at once (%lld ms)", ms);
    cr_assert_eq(get_status(j.port, "/readyz", NULL), 503);
    cr_assert_eq(get_status(j.port, "/healthz", NULL), 200);

    rt_redis_restart(&rs);
    long long took = post_until_accepted(j.port, "after", 5000);
    cr_assert_geq(took, 0, "accepts jobs again within a few seconds");
    fprintf(stderr, "redis_outage: 202 again %lld ms after Redis came back\n", took);
    cr_assert(ts_wait_state(j.port, "q", "after", "succeeded", 5000, NULL), "workers resumed");
    cr_assert_eq(get_status(j.port, "/queues/q/jobs/during", NULL), 404, "nothing stored");
    cr_assert_eq(get_status(j.port, "/queues/q/jobs/during2", NULL), 404, "nothing stored");
    cr_assert_eq(get_status(j.port, "/readyz", NULL), 200);
    ts_jobd_stop(&j, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}

Test(redis_outage, frozen_redis_answers_503_within_the_timeout)
{
    rt_redis rs;
    rt_redis_start(&rs, NULL);
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, rs.port, ts_unique(prefix), 2);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    cr_assert_eq(post_timed(j.port, "warm", NULL), 202);

    kill(rs.pid, SIGSTOP);
    long long ms;
    long health = get_status(j.port, "/healthz", &ms);
    long long health_ms = ms;
    long frozen = post_timed(j.port, "frozen", &ms);
    long long frozen_ms = ms;
    bool unready = wait_status(j.port, "/readyz", 503, 3000);
    kill(rs.pid, SIGCONT);

    cr_assert_eq(health, 200);
    cr_assert_lt(health_ms, 100, "/healthz took %lld ms", health_ms);
    cr_assert_eq(frozen, 503);
    cr_assert_lt(frozen_ms, 600, "redis.timeout 0.5 s + 100 ms; took %lld ms", frozen_ms);
    cr_assert(unready, "/readyz says 503 while Redis is frozen");

    cr_assert_geq(post_until_accepted(j.port, "thawed", 5000), 0);
    cr_assert(ts_wait_state(j.port, "q", "thawed", "succeeded", 5000, NULL));
    cr_assert(ts_wait_state(j.port, "q", "warm", "succeeded", 5000, NULL));
    cr_assert_eq(get_status(j.port, "/queues/q/jobs/frozen", NULL), 404,
                 "the submission answered 503 was not stored");
    ts_jobd_stop(&j, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}

Test(redis_outage, jobs_accepted_before_a_redis_crash_run_after_it)
{
    enum { JOBS = 100 };
    rt_redis rs;
    rt_redis_start(&rs, aof_always);
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, rs.port, ts_unique(prefix), 4);
    const char *const no_workers[] = {"--no-workers", NULL};
    ts_jobd api;
    rt_jobd_up(&api, cfg, no_workers);
    char body[64];
    int accepted = 0;
    for (int i = 0; i < JOBS; i++) {
        snprintf(body, sizeof body, "{\"type\": \"noop\", \"args\": %d}", i);
        accepted += rt_submit(api.port, body, NULL) == 202;
    }
    cr_assert_eq(accepted, JOBS);

    rt_redis_kill(&rs, SIGKILL);
    rt_redis_restart(&rs);
    ts_jobd_stop(&api, SIGTERM, 5000);

    ts_jobd worker;
    rt_jobd_up(&worker, cfg, NULL);
    cr_assert(rt_wait_processed(worker.port, JOBS, 10000), "processed %ld of %d",
              rt_processed(worker.port), JOBS);
    cr_assert_eq(rt_count(worker.port, "enqueued"), 0);
    ts_jobd_stop(&worker, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}

Test(redis_outage, redis_out_of_memory_answers_503)
{
    rt_redis rs;
    const char *const small[] = {"--maxmemory", "4mb", "--maxmemory-policy", "noeviction", NULL};
    rt_redis_start(&rs, small);
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, rs.port, ts_unique(prefix), 0);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    /* 200 KB jobs until Redis is full: at most 4 MB / 200 KB of them fit. */
    enum { ARG = 200 * 1024 };
    char *body = malloc(ARG + 64);
    cr_assert_not_null(body);
    int n = snprintf(body, ARG + 64, "{\"type\": \"noop\", \"args\": \"");
    memset(body + n, 'x', ARG);
    strcpy(body + n + ARG, "\"}");
    ts_resp r = {0};
    int accepted = 0;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(ts_post(&r, j.port, "/queues/q/jobs", body), 0);
        if (r.status != 202)
            break;
        accepted++;
        ts_resp_free(&r);
    }
    free(body);
    cr_assert_gt(accepted, 0);
    cr_assert_eq(r.status, 503, "Redis full: %ld %s", r.status, r.body);
    cr_assert_str_eq(ts_error_code(&r), "unavailable");
    cr_assert_not_null(strstr(r.body, "out of memory"), "%s", r.body);
    ts_resp_free(&r);
    cr_assert_eq(rt_count(j.port, "enqueued"), accepted, "nothing half-stored");
    ts_jobd_stop(&j, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}

/* Sends one command to the Redis at port; true when it answered OK. */
static bool redis_ok(int port, const char *cmd)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, cmd);
        ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    return ok;
}

/* Redis answers the outcome with an error (here NOREPLICAS; READONLY after a
 * failover is alike) while the connection is fine: the outcome is retried
 * until Redis takes it, never dropped with the job left `running`. */
Test(redis_outage, refused_outcome_is_retried_until_redis_takes_it)
{
    rt_redis rs;
    rt_redis_start(&rs, NULL);
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, rs.port, ts_unique(prefix), 2);
    /* Heartbeats are refused too: a lease_expiry well beyond the window keeps
     * this process alive in everyone's eyes, so only the outcome path is tried. */
    char *expiry = strstr(cfg, "\"lease_expiry\": 1,");
    cr_assert_not_null(expiry);
    memcpy(expiry, "\"lease_expiry\": 9,", strlen("\"lease_expiry\": 9,"));
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    cr_assert_eq(rt_submit(j.port, "{\"type\": \"sleep\", \"args\": {\"ms\": 300}, \"id\": \"r1\"}",
                           NULL),
                 202);
    cr_assert(ts_wait_state(j.port, "q", "r1", "running", 3000, NULL));
    int64_t refused_from = jobd_now_ms();
    cr_assert(redis_ok(rs.port, "CONFIG SET min-replicas-to-write 1"), "writes refused");
    rt_sleep_ms(1500); /* the run ends and its outcome is refused for a while */
    cr_expect(ts_wait_state(j.port, "q", "r1", "running", 100, NULL), "not finished meanwhile");
    cr_assert(redis_ok(rs.port, "CONFIG SET min-replicas-to-write 0"), "writes taken again");
    json_t *view = NULL;
    cr_expect(ts_wait_state(j.port, "q", "r1", "succeeded", 5000, &view),
              "the outcome was dropped: the job stays running");
    /* The first run's outcome landed: the job did not have to run again. */
    int64_t started = 0;
    rfc3339_parse(json_string_value(json_object_get(view, "started_at")), &started);
    cr_expect(started > 0 && started <= refused_from, "the job ran a second time");
    cr_expect_eq(json_integer_value(json_object_get(view, "attempts")), 1);
    json_decref(view);
    cr_expect_eq(rt_count(j.port, "running"), 0);
    ts_jobd_stop(&j, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}
