/* test_redis_faults.c - Redis queues in the corners: paging over jobs that
 * share an index score, a stored record that cannot be read, a Redis that
 * is slow, loading its data, restarted, or refusing writes. Real
 * redis-servers (the suite's, or one of the test's own), real jobd processes,
 * and a delaying TCP proxy (delay_proxy.h) where Redis must be slow. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/job.h"
#include "delay_proxy.h"
#include "redis_test.h"

TestSuite(redis_faults, .fini = rt_cleanup, .timeout = 120);

typedef char job_id[JOB_ID_MAX + 1];

/* The timings of a test's jobd (seconds). */
typedef struct fc_times {
    double heartbeat, lease_expiry, poll_interval, timeout;
} fc_times;

static const fc_times fc_fast = {0.2, 1, 0.05, 0.5};

/* A config like rt_config's (queue "q", max_attempts 3) with the Redis at
 * 127.0.0.1:port/db, http_threads threads and the timings t. */
static void fc_config(char *buf, size_t len, int port, int db, const char *prefix, int workers,
                      int http_threads, fc_times t)
{
    int n = snprintf(
        buf, len,
        "{\"workers\": %d, \"http_threads\": %d,"
        " \"redis\": {\"url\": \"redis://127.0.0.1:%d/%d\", \"prefix\": \"%s\", \"timeout\": %g},"
        " \"heartbeat\": %g, \"lease_expiry\": %g, \"poll_interval\": %g,"
        " \"shutdown_timeout\": 1,"
        " \"queues\": {\"q\": {\"dequeue\": [\"redis\"], \"max_attempts\": 3,"
        "   \"backoff\": {\"base\": 0.3, \"factor\": 0.3, \"exponent\": 1, \"jitter\": 0,"
        "                 \"max\": 5}}}}",
        workers, http_threads, port, db, prefix, t.timeout, t.heartbeat, t.lease_expiry,
        t.poll_interval);
    cr_assert(n > 0 && (size_t)n < len, "config buffer too small");
}

/* A command to the Redis at port (db 0); the reply (caller frees), or NULL. */
static redisReply *fc_redis(int port, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    if (c && !c->err) {
        va_list ap;
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    if (c)
        redisFree(c);
    return r;
}

static long fc_status(int port, const char *method, const char *path, const char *body)
{
    ts_resp r;
    long status = ts_http(&r, method, port, path, body, NULL, NULL) == 0 ? r.status : 0;
    ts_resp_free(&r);
    return status;
}

__attribute__((unused)) static bool fc_wait_status(int port, const char *path, long want, int timeout_ms)
{
    long long deadline = ts_now_ms() + ts_patience(timeout_ms);
    while (ts_now_ms() < deadline) {
        if (fc_status(port, "GET", path, NULL) == want)
            return true;
        ts_sleep_ms(20);
    }
    return false;
}

/* --- paging: every job exactly once --- */

typedef struct fc_batch {
    int port, first, n;
    long status;
} fc_batch;

static void *fc_post_batch(void *arg)
{
    fc_batch *b = arg;
    size_t cap = (size_t)b->n * 64 + 16, len = 0;
    char *body = malloc(cap);
    cr_assert_not_null(body);
    body[len++] = '[';
    for (int i = 0; i < b->n; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s{\"type\": \"noop\", \"args\": %d}",
                                i ? "," : "", b->first + i);
    snprintf(body + len, cap - len, "]");
    ts_resp r;
    b->status = ts_post(&r, b->port, "/queues/q/jobs", body) == 0 ? r.status : 0;
    ts_resp_free(&r);
    free(body);
    return NULL;
}

static int fc_id_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Pages through path (a list URL without cursor) with limit 7; the ids in
 * ids (room for cap), their number returned. */
static size_t fc_page_all(int port, const char *path, job_id *ids, size_t cap)
{
    char url[512], cursor[256] = "";
    size_t n = 0;
    for (size_t page = 0; page < cap; page++) {
        snprintf(url, sizeof url, "%s%climit=7%s%s", path, strchr(path, '?') ? '&' : '?',
                 cursor[0] ? "&cursor=" : "", cursor);
        ts_resp r;
        cr_assert_eq(ts_get(&r, port, url), 0);
        cr_assert_eq(r.status, 200, "%s: %ld %s", url, r.status, r.body);
        json_t *jobs = json_object_get(r.json, "jobs");
        for (size_t i = 0; i < json_array_size(jobs) && n < cap; i++)
            snprintf(ids[n++], sizeof(job_id), "%s",
                     json_string_value(json_object_get(json_array_get(jobs, i), "id")));
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        cr_assert(!next || strlen(next) < sizeof cursor);
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        ts_resp_free(&r);
        if (!next)
            break;
    }
    return n;
}

/* Counts ids that appear more than once (ids sorted in place). */
static size_t fc_duplicates(job_id *ids, size_t n)
{
    qsort(ids, n, sizeof *ids, fc_id_cmp);
    size_t dup = 0;
    for (size_t i = 1; i < n; i++)
        dup += strcmp(ids[i - 1], ids[i]) == 0;
    return dup;
}

Test(redis_faults, paging_with_limit_7_shows_each_of_10000_jobs_exactly_once)
{
    enum { BATCHES = 10, PER = 1000, TOTAL = BATCHES * PER };
    char prefix[32], cfg[1024];
    fc_config(cfg, sizeof cfg, ts_redis_port(), 0, ts_unique(prefix), 0, 8, fc_fast);
    const char *const no_workers[] = {"--no-workers", NULL};
    ts_jobd j;
    rt_jobd_up(&j, cfg, no_workers);
    /* Concurrent batches stored in the same milliseconds share index scores. */
    fc_batch b[BATCHES];
    pthread_t th[BATCHES];
    for (int i = 0; i < BATCHES; i++) {
        b[i] = (fc_batch){.port = j.port, .first = i * PER, .n = PER};
        pthread_create(&th[i], NULL, fc_post_batch, &b[i]);
    }
    for (int i = 0; i < BATCHES; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(b[i].status, 202, "batch %d answered %ld", i, b[i].status);
    }
    /* Two batches stored in the same millisecond can share index scores,
     * but when is up to the scheduler: make the ties certain by giving every
     * job the score of the millisecond it was created in (up to hundreds of
     * jobs per score, as a busy server could make them). */
    redisReply *ties = fc_redis(ts_redis_port(), "EVAL %s 1 %s:{q}:all",
                                "local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
                                "local seen, dup = {}, 0\n"
                                "for i = 1, #z, 2 do\n"
                                "  local s = tonumber(z[i + 1])\n"
                                "  s = s - s % 1000\n"
                                "  if seen[s] then dup = dup + 1 end\n"
                                "  seen[s] = true\n"
                                "  redis.call('ZADD', KEYS[1], 'XX', string.format('%d', s), z[i])\n"
                                "end\n"
                                "return dup",
                                prefix);
    cr_assert(ties && ties->type == REDIS_REPLY_INTEGER, "%s", ties ? ties->str : "no answer");
    cr_assert_gt(ties->integer, TOTAL / 2);
    fprintf(stderr, "redis_faults: %lld of %d jobs share an index score with another\n",
            ties->integer, TOTAL);
    freeReplyObject(ties);

    job_id *ids = calloc(TOTAL + 100, sizeof *ids);
    cr_assert_not_null(ids);
    const char *const paths[] = {"/queues/q/jobs", "/queues/q/jobs?state=enqueued"};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        size_t n = fc_page_all(j.port, paths[p], ids, TOTAL + 100);
        size_t dup = fc_duplicates(ids, n);
        cr_expect_eq(n, TOTAL, "%s: %zu ids seen, %d stored", paths[p], n, TOTAL);
        cr_expect_eq(dup, 0, "%s: %zu ids seen twice", paths[p], dup);
    }
    free(ids);
    ts_jobd_stop(&j, SIGTERM, 5000);
}
