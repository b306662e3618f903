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
#include "../util/rfc3339.h"
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

/* A command to the Redis at port, db db; the reply (caller frees), or NULL. */
static redisReply *fc_redis_db(int port, int db, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    if (c && !c->err && db) {
        r = redisCommand(c, "SELECT %d", db);
        if (r)
            freeReplyObject(r);
        r = NULL;
    }
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

#define fc_redis(port, ...) fc_redis_db(port, 0, __VA_ARGS__)

static long fc_status(int port, const char *method, const char *path, const char *body)
{
    ts_resp r;
    long status = ts_http(&r, method, port, path, body, NULL, NULL) == 0 ? r.status : 0;
    ts_resp_free(&r);
    return status;
}

static bool fc_wait_status(int port, const char *path, long want, int timeout_ms)
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
    const char *extra; /* more fields of each job (", \"k\": v"), or NULL */
    long status;
} fc_batch;

static void *fc_post_batch(void *arg)
{
    fc_batch *b = arg;
    size_t cap = (size_t)b->n * (64 + (b->extra ? strlen(b->extra) : 0)) + 16, len = 0;
    char *body = malloc(cap);
    cr_assert_not_null(body);
    body[len++] = '[';
    for (int i = 0; i < b->n; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s{\"type\": \"noop\", \"args\": %d%s}",
                                i ? "," : "", b->first + i, b->extra ? b->extra : "");
    snprintf(body + len, cap - len, "]");
    ts_resp r;
    b->status = ts_post(&r, b->port, "/queues/q/jobs", body) == 0 ? r.status : 0;
    ts_resp_free(&r);
    free(body);
    return NULL;
}

/* POSTs batches batches of per noop jobs at once, from a thread each; all
 * must be answered 202. */
static void fc_post_concurrently(int port, int batches, int per)
{
    fc_batch *b = calloc((size_t)batches, sizeof *b);
    pthread_t *th = calloc((size_t)batches, sizeof *th);
    cr_assert(b && th);
    for (int i = 0; i < batches; i++) {
        b[i] = (fc_batch){.port = port, .first = i * per, .n = per};
        pthread_create(&th[i], NULL, fc_post_batch, &b[i]);
    }
    for (int i = 0; i < batches; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < batches; i++)
        cr_assert_eq(b[i].status, 202, "batch %d answered %ld", i, b[i].status);
    free(b);
    free(th);
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
    fc_post_concurrently(j.port, BATCHES, PER);
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

/* The inline store pages by (created_at, id): concurrent batches made in
 * the same milliseconds are listed each once too. */
Test(redis_faults, inline_paging_with_limit_7_shows_each_of_10000_jobs_exactly_once)
{
    enum { BATCHES = 10, PER = 1000, TOTAL = BATCHES * PER };
    const char *cfg = "{\"http_threads\": 8, \"queues\": {\"q\": {\"dequeue\": [\"inline\"]}}}";
    const char *const no_workers[] = {"--no-workers", NULL};
    ts_jobd j;
    rt_jobd_up(&j, cfg, no_workers);
    fc_post_concurrently(j.port, BATCHES, PER);
    job_id *ids = calloc(TOTAL + 100, sizeof *ids);
    cr_assert_not_null(ids);
    size_t n = fc_page_all(j.port, "/queues/q/jobs", ids, TOTAL + 100);
    size_t dup = fc_duplicates(ids, n);
    cr_expect_eq(n, TOTAL, "%zu ids seen, %d stored", n, TOTAL);
    cr_expect_eq(dup, 0, "%zu ids seen twice", dup);
    free(ids);
    ts_jobd_stop(&j, SIGTERM, 5000);
}

/* --- heartbeats while maintenance is slow --- */

/* Process B reaches Redis through a proxy that delays every reply (a 200 ms
 * round trip) and has 10,000 jobs coming due at one instant: its maintenance
 * promotes them in 20 rounds of 500 (4 s of round trips), longer than its
 * lease_expiry (2.5 s). Process A, on the same queue with a fast Redis,
 * takes back the leases of processes whose heartbeat expired. B's heartbeat
 * must not wait for the maintenance: A never reaps it, and B's job on its
 * last attempt, which succeeds, ends succeeded (not dead by a reap). */
Test(redis_faults, slow_maintenance_never_starves_the_heartbeat)
{
    enum { BATCHES = 10, PER = 1000 };
    char prefix[32], cfg_a[1024], cfg_b[1024];
    ts_unique(prefix);
    int pport = 0;
    dp_proxy *px = dp_start(ts_redis_port(), 100, &pport);
    cr_assert_not_null(px);
    /* A: reaps every 0.2 s; promotes only once, at its start. */
    fc_config(cfg_a, sizeof cfg_a, ts_redis_port(), 0, prefix, 0, 2,
              (fc_times){0.2, 1, 3600, 1});
    fc_config(cfg_b, sizeof cfg_b, pport, 0, prefix, 2, 2, (fc_times){0.5, 2.5, 0.05, 2});
    const char *const no_workers[] = {"--no-workers", NULL};
    ts_jobd a, b;
    rt_jobd_up(&a, cfg_a, no_workers);
    rt_jobd_up(&b, cfg_b, NULL);
    cr_assert_eq(rt_submit(a.port,
                           "{\"type\": \"sleep\", \"args\": {\"ms\": 6000}, \"max_attempts\": 1,"
                           " \"id\": \"last\"}",
                           NULL),
                 202);
    cr_assert(ts_wait_state(a.port, "q", "last", "running", 10000, NULL));

    char when[40], extra[80];
    int64_t due = jobd_now_ms() + 1500;
    rfc3339_format(due, when);
    snprintf(extra, sizeof extra, ", \"scheduled_at\": \"%s\"", when);
    fc_batch batch = {.port = a.port, .n = PER, .extra = extra};
    for (int i = 0; i < BATCHES; i++) {
        batch.first = i * PER;
        fc_post_batch(&batch);
        cr_assert_eq(batch.status, 202);
    }
    long long deadline = ts_now_ms() + ts_patience(30000);
    while (rt_count(a.port, "scheduled") != 0 && ts_now_ms() < deadline)
        ts_sleep_ms(100);
    cr_expect_eq(rt_count(a.port, "scheduled"), 0, "B promoted every due job");
    fprintf(stderr, "redis_faults: B moved %d due jobs to ready in %lld ms (lease_expiry 2.5 s)\n",
            BATCHES * PER, (long long)(jobd_now_ms() - due));
    json_t *view = NULL;
    bool ok = ts_wait_state(a.port, "q", "last", "succeeded", 20000, &view);
    cr_expect(ok, "the job whose only run succeeded is %s: %s",
              json_string_value(json_object_get(view, "state")),
              json_string_value(json_object_get(view, "last_error")));
    cr_expect_eq(json_integer_value(json_object_get(view, "attempts")), 1);
    json_decref(view);
    cr_expect(!ts_log_contains(&a, "redis.process_lost"), "A took B's leases back");
    cr_expect(!ts_log_contains(&b, "redis.lease_lost"), "B was declared dead");
    ts_jobd_stop(&b, SIGTERM, 10000);
    ts_jobd_stop(&a, SIGTERM, 5000);
    dp_stop(px);
}

/* --- readiness --- */

/* Redis answers but refuses writes (no replicas for min-replicas-to-write):
 * jobd starts (the schema is there already), cannot register, and must not
 * say it is ready; once writes are taken it registers and is ready. */
Test(redis_faults, a_process_that_cannot_register_is_not_ready)
{
    rt_redis rs;
    rt_redis_start(&rs, NULL);
    char prefix[32], cfg[1024];
    fc_config(cfg, sizeof cfg, rs.port, 0, ts_unique(prefix), 2, 2, fc_fast);
    redisReply *r = fc_redis(rs.port, "SET %s:schema 2", prefix);
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = fc_redis(rs.port, "CONFIG SET min-replicas-to-write 1");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    /* Longer than lease_expiry: never ready meanwhile. */
    int ready = 0;
    for (int i = 0; i < 15; i++) {
        ready += fc_status(j.port, "GET", "/readyz", NULL) == 200;
        ts_sleep_ms(100);
    }
    cr_expect_eq(ready, 0, "/readyz said 200 %d times while the process was not registered", ready);
    r = fc_redis(rs.port, "CONFIG SET min-replicas-to-write 0");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    cr_expect(fc_wait_status(j.port, "/readyz", 200, 5000), "ready once registered");
    ts_jobd_stop(&j, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}

/* --- a Redis that is loading its data --- */

/* Waits until the Redis at port answers PING with want ("PONG", or an
 * error reply that starts with want); false at the deadline. */
static bool fc_wait_ping(int port, const char *want, int timeout_ms)
{
    long long deadline = ts_now_ms() + ts_patience(timeout_ms);
    while (ts_now_ms() < deadline) {
        redisReply *r = fc_redis(port, "PING");
        bool hit = r && r->str && strncmp(r->str, want, strlen(want)) == 0;
        if (r)
            freeReplyObject(r);
        if (hit)
            return true;
        ts_sleep_ms(10);
    }
    return false;
}

/* Restarts rs and waits until it answers LOADING (it loads its dump slowly). */
static void fc_restart_loading(rt_redis *rs)
{
    rt_redis_kill(rs, SIGKILL);
    rt_redis_respawn(rs);
    cr_assert(fc_wait_ping(rs->port, "LOADING", 5000), "Redis did not answer LOADING");
}

/* jobd started while Redis loads its data starts and waits (as for a Redis
 * that is down), and a running jobd treats LOADING as "not reachable yet",
 * never as a refusal; both take jobs once the data is loaded. */
Test(redis_faults, redis_loading_its_data_is_waited_for_at_start_and_while_running)
{
    /* 40,000 keys at 100 us each: about 4 s of loading, answering LOADING
     * between keys. */
    const char *const slow_load[] = {"--enable-debug-command", "yes", "--key-load-delay", "100",
                                     "--loading-process-events-interval-bytes", "1024", NULL};
    rt_redis rs;
    rt_redis_start(&rs, slow_load);
    redisReply *r = fc_redis(rs.port, "DEBUG POPULATE 40000 fill 10");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "%s", r ? r->str : "no answer");
    freeReplyObject(r);
    r = fc_redis(rs.port, "SAVE");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    fc_restart_loading(&rs);

    char prefix[32], cfg[1024];
    fc_config(cfg, sizeof cfg, rs.port, 0, ts_unique(prefix), 2, 2, fc_fast);
    ts_jobd j;
    int started = ts_jobd_start(&j, cfg, NULL);
    cr_assert_eq(started, 0, "jobd exited while Redis was loading");
    cr_expect_eq(fc_status(j.port, "GET", "/readyz", NULL), 503, "ready while Redis loads");
    cr_assert(fc_wait_ping(rs.port, "PONG", 30000), "Redis did not finish loading");
    cr_assert(fc_wait_status(j.port, "/readyz", 200, 5000), "not ready after the load");
    cr_assert_eq(rt_submit(j.port, "{\"type\": \"noop\", \"id\": \"a\"}", NULL), 202);
    cr_assert(ts_wait_state(j.port, "q", "a", "succeeded", 5000, NULL));

    /* Running: Redis restarts and loads again. */
    fc_restart_loading(&rs);
    cr_assert(fc_wait_ping(rs.port, "PONG", 30000), "Redis did not finish loading");
    long long t0 = ts_now_ms(), took = -1;
    while (ts_now_ms() - t0 < ts_patience(5000) && took < 0) {
        if (rt_submit(j.port, "{\"type\": \"noop\", \"id\": \"b\"}", NULL) == 202)
            took = ts_now_ms() - t0;
        ts_sleep_ms(20);
    }
    fprintf(stderr, "redis_faults: 202 again %lld ms after Redis finished loading\n", took);
    cr_assert_geq(took, 0, "no 202 within 5 s of the end of the load");
    /* Redis answers LOADING: jobd asks again every 100 ms, not every second. */
    cr_expect_lt(took, ts_patience(600), "202 only %lld ms after the load", took);
    cr_assert(ts_wait_state(j.port, "q", "b", "succeeded", 5000, NULL));
    cr_expect(!ts_log_contains(&j, "redis.refused"), "LOADING was taken for a refusal");
    ts_jobd_stop(&j, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}

/* --- a stored record that cannot be read --- */

/* A job whose stored view is not valid JSON (a bug, a hand edit, a disk
 * fault) goes dead at the fetch, with last_error saying why; GET shows what
 * is left of it (200, not 500) and the dead list and counts include it. */
Test(redis_faults, unreadable_record_goes_dead_at_once)
{
    char prefix[32], cfg[1024];
    fc_config(cfg, sizeof cfg, ts_redis_port(), 0, ts_unique(prefix), 2, 2, fc_fast);
    const char *const no_workers[] = {"--no-workers", NULL};
    ts_jobd api;
    rt_jobd_up(&api, cfg, no_workers);
    cr_assert_eq(rt_submit(api.port, "{\"type\": \"noop\", \"id\": \"bad\"}", NULL), 202);
    cr_assert_eq(rt_submit(api.port, "{\"type\": \"noop\", \"id\": \"good\"}", NULL), 202);
    redisReply *r = fc_redis(ts_redis_port(), "HSET %s:{q}:jobs:v bad {not-json", prefix);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    ts_resp resp;
    cr_assert_eq(ts_get(&resp, api.port, "/queues/q/jobs/bad"), 0);
    cr_expect_eq(resp.status, 200, "GET of an unreadable enqueued job: %ld %s", resp.status,
                 resp.body);
    ts_resp_free(&resp);

    ts_jobd w;
    rt_jobd_up(&w, cfg, NULL);
    cr_assert(ts_wait_state(w.port, "q", "good", "succeeded", 5000, NULL));
    json_t *view = NULL;
    bool dead = ts_wait_state(w.port, "q", "bad", "dead", 5000, &view);
    cr_assert(dead, "the unreadable job is %s",
              view ? json_string_value(json_object_get(view, "state")) : "not readable by GET");
    const char *why = json_string_value(json_object_get(view, "last_error"));
    cr_expect(why && strstr(why, "unreadable"), "last_error: %s", why ? why : "(none)");
    cr_expect_str_eq(json_string_value(json_object_get(view, "id")), "bad");
    cr_expect_str_eq(json_string_value(json_object_get(view, "queue")), "q");
    json_decref(view);
    cr_expect_eq(rt_count(w.port, "dead"), 1);
    cr_expect_eq(rt_count(w.port, "running"), 0);
    /* it never ran, but went dead in the fetching process: counted there */
    cr_assert_eq(ts_get(&resp, w.port, "/metrics"), 0);
    cr_expect(strstr(resp.body, "\njobd_jobs_dead_total{queue=\"q\"} 1\n"), "%s", resp.body);
    cr_expect(strstr(resp.body, "\njobd_jobs_succeeded_total{queue=\"q\"} 1\n"));
    ts_resp_free(&resp);
    cr_assert_eq(ts_get(&resp, w.port, "/queues/q/dead"), 0);
    cr_assert_eq(resp.status, 200);
    json_t *jobs = json_object_get(resp.json, "jobs");
    cr_expect_eq(json_array_size(jobs), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(jobs, 0), "id")), "bad");
    ts_resp_free(&resp);
    ts_jobd_stop(&w, SIGTERM, 5000);
    ts_jobd_stop(&api, SIGTERM, 5000);
}

/* --- Redis restarted: pooled connections went stale --- */

typedef struct fc_load {
    int port, n;
} fc_load;

static void *fc_get_queue(void *arg)
{
    fc_load *l = arg;
    for (int i = 0; i < l->n; i++)
        fc_status(l->port, "GET", "/queues/q", NULL);
    return NULL;
}

/* Concurrent requests leave several connections in the pool; Redis restarts
 * and closes them all. Once jobd says it is ready again (and once its first
 * 202 is seen), every request succeeds: a stale pooled connection is
 * replaced, never a reason to answer 503 or to declare Redis down. */
Test(redis_faults, no_503_once_redis_is_back_after_a_restart)
{
    enum { THREADS = 8, ROUNDS = 200 };
    rt_redis rs;
    rt_redis_start(&rs, NULL);
    char prefix[32], cfg[1024];
    fc_config(cfg, sizeof cfg, rs.port, 0, ts_unique(prefix), 2, 4, fc_fast);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    pthread_t th[THREADS];
    fc_load load = {.port = j.port, .n = 30};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, fc_get_queue, &load);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    rt_redis_kill(&rs, SIGTERM);
    rt_redis_restart(&rs);
    long long t0 = ts_now_ms();
    cr_assert(fc_wait_status(j.port, "/readyz", 200, 10000), "not ready after the restart");
    long long ready_ms = ts_now_ms() - t0;
    int failed = 0, first_202 = -1;
    char first_failure[256] = "";
    for (int i = 0; i < ROUNDS; i++) {
        char body[96], path[96];
        ts_resp r;
        if (i % 2 == 0) {
            snprintf(body, sizeof body, "{\"type\": \"noop\", \"id\": \"alt%d\"}", i);
            cr_assert_eq(ts_post(&r, j.port, "/queues/q/jobs", body), 0);
        } else {
            snprintf(path, sizeof path, "/queues/q/jobs/alt%d", i - 1);
            cr_assert_eq(ts_get(&r, j.port, path), 0);
        }
        long want = i % 2 == 0 ? 202 : 200;
        if (r.status == 202 && first_202 < 0)
            first_202 = i;
        if (r.status != want && !failed++)
            snprintf(first_failure, sizeof first_failure, "request %d: %ld %.180s", i, r.status,
                     r.body);
        ts_resp_free(&r);
    }
    fprintf(stderr,
            "redis_faults: ready %lld ms after the restart; %d of %d alternating requests "
            "failed\n",
            ready_ms, failed, ROUNDS);
    cr_expect_eq(first_202, 0, "the first POST after /readyz 200 was refused");
    cr_expect_eq(failed, 0, "%d failed, the first: %s", failed, first_failure);
    ts_jobd_stop(&j, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
}

/* --- 503 means "not stored" up to the deadline --- */

/* Redis is 400 ms away each way (a proxy), redis.timeout is 1 s, and the
 * pool's connection must first SELECT its db: connecting takes 800 ms of the
 * second. The submission reaches Redis 1.2 s after it began, past the time
 * its client was answered 503: the deadline Redis checks is the one the
 * client was given (taken before waiting for the connection), so nothing is
 * stored, and the 503 says what a client that cannot tell should do. */
Test(redis_faults, a_submission_answered_503_for_its_deadline_is_not_stored_later)
{
    char prefix[32], cfg[1024];
    int pport = 0;
    dp_proxy *px = dp_start(ts_redis_port(), 400, &pport);
    cr_assert_not_null(px);
    fc_config(cfg, sizeof cfg, ts_redis_port(), 1, ts_unique(prefix), 2, 2,
              (fc_times){1, 6, 0.05, 1});
    /* Another process, without the proxy, has the scripts loaded in Redis
     * (else the first EVALSHA would be answered NOSCRIPT, and never run). */
    const char *const no_workers[] = {"--no-workers", NULL};
    ts_jobd warm;
    rt_jobd_up(&warm, cfg, no_workers);
    cr_assert_eq(rt_submit(warm.port, "{\"type\": \"noop\", \"id\": \"warm\"}", NULL), 202);
    ts_jobd_stop(&warm, SIGTERM, 5000);
    fc_config(cfg, sizeof cfg, pport, 1, prefix, 2, 2, (fc_times){1, 6, 0.05, 1});
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    /* Ready: registered and Redis's clock measured (the deadline needs it). */
    cr_assert(fc_wait_status(j.port, "/readyz", 200, 15000), "not ready");
    ts_resp r;
    long long t0 = ts_now_ms();
    cr_assert_eq(ts_post(&r, j.port, "/queues/q/jobs", "{\"type\": \"noop\", \"id\": \"late\"}"),
                 0);
    long long answered = ts_now_ms() - t0;
    cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
    cr_expect(strstr(r.body, "may have been stored") != NULL, "%s", r.body);
    ts_resp_free(&r);
    cr_expect_lt(answered, 1300, "answered after %lld ms", answered);
    dp_set_delay(px, 0);
    /* The delayed script reaches Redis at about 1.2 s; look until 3 s. */
    bool stored = false;
    while (!stored && ts_now_ms() - t0 < 3000) {
        redisReply *e = fc_redis_db(ts_redis_port(), 1, "HEXISTS %s:{q}:jobs:s late", prefix);
        stored = e && e->type == REDIS_REPLY_INTEGER && e->integer == 1;
        if (e)
            freeReplyObject(e);
        ts_sleep_ms(50);
    }
    cr_expect(!stored, "the job answered 503 was stored after its deadline");
    ts_jobd_stop(&j, SIGTERM, 10000);
    dp_stop(px);
}
