/* test_redis.c - Redis-backed queues end to end: real jobd processes on the
 * suite's redis-server (a key prefix per test), real HTTP. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../queues/job.h"
#include "../util/rfc3339.h"
#include "redis_test.h"

TestSuite(redis, .fini = rt_cleanup, .timeout = 60);

static const char *const no_workers[] = {"--no-workers", NULL};

static long http_status(const char *method, int port, const char *path)
{
    ts_resp r;
    cr_assert_eq(ts_http(&r, method, port, path, NULL, NULL, NULL), 0, "%s %s", method, path);
    long status = r.status;
    ts_resp_free(&r);
    return status;
}

static const char *view_state(const json_t *v)
{
    return json_string_value(json_object_get(v, "state"));
}

Test(redis, every_endpoint_works_across_processes)
{
    char prefix[32], cfg_api[1024], cfg_worker[1024];
    ts_unique(prefix);
    rt_config(cfg_api, sizeof cfg_api, 0, prefix, 2);
    rt_config(cfg_worker, sizeof cfg_worker, 0, prefix, 4);
    ts_jobd api, worker;
    rt_jobd_up(&api, cfg_api, no_workers);
    rt_jobd_up(&worker, cfg_worker, NULL);

    cr_assert_eq(rt_submit(api.port, "{\"type\": \"noop\", \"id\": \"x1\"}", NULL), 202);
    cr_assert(ts_wait_state(api.port, "q", "x1", "succeeded", 5000, NULL),
              "run by the other process, seen here");

    cr_assert_eq(
        rt_submit(api.port, "{\"type\": \"noop\", \"id\": \"later\", \"delay\": 60}", NULL), 202);
    cr_assert(ts_wait_state(worker.port, "q", "later", "scheduled", 1000, NULL));
    ts_resp r;
    cr_assert_eq(ts_http(&r, "DELETE", worker.port, "/queues/q/jobs/later", NULL, NULL, NULL), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(view_state(r.json), "cancelled");
    ts_resp_free(&r);
    cr_assert(ts_wait_state(api.port, "q", "later", "cancelled", 1000, NULL));

    cr_assert_eq(ts_get(&r, worker.port, "/queues/q/jobs?limit=1"), 0);
    json_t *jobs = json_object_get(r.json, "jobs");
    cr_assert_eq(json_array_size(jobs), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(jobs, 0), "id")), "later",
                     "newest first");
    const char *cursor = json_string_value(json_object_get(r.json, "next_cursor"));
    cr_assert_not_null(cursor);
    char path[256];
    snprintf(path, sizeof path, "/queues/q/jobs?limit=1&cursor=%s", cursor);
    ts_resp_free(&r);
    cr_assert_eq(ts_get(&r, api.port, path), 0, "a cursor works on another process");
    jobs = json_object_get(r.json, "jobs");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(jobs, 0), "id")), "x1");
    ts_resp_free(&r);

    /* Paused through one process, the other starts nothing. */
    cr_assert_eq(http_status("POST", api.port, "/queues/q/pause"), 200);
    json_t *q = rt_queue(worker.port);
    cr_assert(json_is_true(json_object_get(q, "paused")));
    json_decref(q);
    cr_assert_eq(rt_submit(api.port, "{\"type\": \"noop\", \"id\": \"p1\"}", NULL), 202);
    rt_sleep_ms(1200);
    json_t *v = rt_job(worker.port, "p1");
    cr_assert_str_eq(view_state(v), "enqueued");
    json_decref(v);
    cr_assert_eq(http_status("POST", worker.port, "/queues/q/resume"), 200);
    cr_assert(ts_wait_state(api.port, "q", "p1", "succeeded", 3000, NULL));
    cr_assert_eq(rt_processed(api.port), 2);
    cr_assert_eq(rt_count(api.port, "enqueued"), 0);

    ts_jobd_stop(&api, SIGTERM, 5000);
    ts_jobd_stop(&worker, SIGTERM, 5000);
}

/* started_at of job id (those after `after`) whenever it changes, until it is dead. */
static int collect_starts(int port, const char *id, int64_t after, int64_t *starts, int max,
                          int timeout_ms)
{
    int n = 0;
    long long deadline = ts_now_ms() + timeout_ms;
    bool dead = false;
    while (!dead && ts_now_ms() < deadline) {
        json_t *v = rt_job(port, id);
        int64_t ms = 0;
        const char *s = json_string_value(json_object_get(v, "started_at"));
        if (s && rfc3339_parse(s, &ms) == 0 && ms > after && (n == 0 || ms != starts[n - 1]) &&
            n < max)
            starts[n++] = ms;
        dead = v && strcmp(view_state(v), "dead") == 0;
        json_decref(v);
        if (!dead)
            rt_sleep_ms(10);
    }
    return dead ? n : -1;
}

Test(redis, failing_job_dies_after_max_attempts_with_growing_intervals_and_retries_from_dead)
{
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 2);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    cr_assert_eq(
        rt_submit(j.port, "{\"type\": \"fail\", \"id\": \"f\", \"max_attempts\": 3}", NULL), 202);
    int64_t starts[8];
    cr_assert_eq(collect_starts(j.port, "f", 0, starts, 8, 10000), 3, "three runs, then dead");
    cr_assert_eq(rt_job_int(j.port, "f", "attempts"), 3);
    int64_t gap1 = starts[1] - starts[0], gap2 = starts[2] - starts[1];
    /* backoff 0.3 + 0.3 n: 0.6 s after the first run, 0.9 s after the second */
    cr_assert_geq(gap1, 600, "gap %lld ms", (long long)gap1);
    cr_assert_geq(gap2, 900, "gap %lld ms", (long long)gap2);
    cr_assert_gt(gap2, gap1);
    json_t *v = rt_job(j.port, "f");
    cr_assert_str_eq(json_string_value(json_object_get(v, "last_error")),
                     "fail: this job always fails");
    json_decref(v);
    cr_assert_eq(rt_count(j.port, "dead"), 1);

    ts_resp r;
    cr_assert_eq(ts_get(&r, j.port, "/queues/q/dead"), 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "jobs")), 1);
    ts_resp_free(&r);
    cr_assert_eq(ts_http(&r, "POST", j.port, "/queues/q/dead/f/retry", NULL, NULL, NULL), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "attempts")), 0);
    ts_resp_free(&r);
    cr_assert_eq(collect_starts(j.port, "f", starts[2], starts, 8, 10000), 3,
                 "it runs again, three times");
    cr_assert_eq(http_status("DELETE", j.port, "/queues/q/dead/f"), 204);
    cr_assert_eq(http_status("GET", j.port, "/queues/q/jobs/f"), 404);
    cr_assert_eq(http_status("DELETE", j.port, "/queues/q/dead/f"), 404);
    ts_jobd_stop(&j, SIGTERM, 5000);
}

Test(redis, scheduled_job_runs_no_earlier_than_its_time)
{
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 2);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    char at[32], body[128];
    rfc3339_format(jobd_now_ms() + 1000, at);
    snprintf(body, sizeof body, "{\"type\": \"noop\", \"id\": \"s\", \"scheduled_at\": \"%s\"}",
             at);
    cr_assert_eq(rt_submit(j.port, body, NULL), 202);
    json_t *v = NULL;
    cr_assert(ts_wait_state(j.port, "q", "s", "succeeded", 5000, &v));
    int64_t started = 0, scheduled = 0;
    cr_assert_eq(rfc3339_parse(json_string_value(json_object_get(v, "started_at")), &started), 0);
    cr_assert_eq(rfc3339_parse(json_string_value(json_object_get(v, "scheduled_at")), &scheduled),
                 0);
    cr_assert_geq(started, scheduled, "started %lld before %lld", (long long)started,
                  (long long)scheduled);
    cr_assert_lt(started - scheduled, 1000, "and within the poll resolution");
    json_decref(v);
    ts_jobd_stop(&j, SIGTERM, 5000);
}

typedef struct idem_arg {
    int port;
    pthread_barrier_t *go;
    long status;
} idem_arg;

static void *idem_post(void *p)
{
    idem_arg *a = p;
    pthread_barrier_wait(a->go);
    ts_resp r;
    a->status =
        ts_post(&r, a->port, "/queues/q/jobs", "{\"type\": \"noop\", \"id\": \"idem\"}") == 0
            ? r.status
            : 0;
    ts_resp_free(&r);
    return NULL;
}

Test(redis, same_id_from_8_threads_creates_one_job)
{
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 0);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    enum { N = 8 };
    pthread_t th[N];
    idem_arg args[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        args[i] = (idem_arg){j.port, &go, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, idem_post, &args[i]), 0);
    }
    int created = 0, replayed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        created += args[i].status == 202;
        replayed += args[i].status == 200;
    }
    pthread_barrier_destroy(&go);
    cr_assert_eq(created, 1);
    cr_assert_eq(replayed, N - 1);
    ts_resp r;
    cr_assert_eq(ts_get(&r, j.port, "/queues/q/jobs"), 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "jobs")), 1);
    ts_resp_free(&r);
    cr_assert_eq(rt_count(j.port, "enqueued"), 1);
    ts_jobd_stop(&j, SIGTERM, 5000);
}

Test(redis, evicting_redis_is_refused_at_start_unless_allowed)
{
    rt_redis rs;
    const char *const lru[] = {"--maxmemory-policy", "allkeys-lru", NULL};
    rt_redis_start(&rs, lru);
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, rs.port, ts_unique(prefix), 1);
    ts_jobd j;
    int rc = ts_jobd_start(&j, cfg, NULL);
    if (rc == 0)
        ts_jobd_stop(&j, SIGTERM, 5000);
    bool named = ts_log_contains(&j, "allkeys-lru") && ts_log_contains(&j, "--allow-eviction") &&
                 ts_log_contains(&j, "noeviction");
    const char *const allow[] = {"--allow-eviction", NULL};
    ts_jobd ok;
    int rc_allowed = ts_jobd_start(&ok, cfg, allow);
    long status = rc_allowed == 0 ? rt_submit(ok.port, "{\"type\": \"noop\"}", NULL) : 0;
    if (rc_allowed == 0)
        ts_jobd_stop(&ok, SIGTERM, 5000);
    rt_redis_kill(&rs, SIGTERM);
    cr_assert_neq(rc, 0, "jobd must refuse allkeys-lru");
    cr_assert(named, "the log names the policy, the fix and the override");
    cr_assert_eq(rc_allowed, 0, "--allow-eviction overrides");
    cr_assert_eq(status, 202);
}

/* The run cut short at shutdown_timeout counts an attempt (README, Process life). */
Test(redis, graceful_stop_gives_leases_back_counting_an_attempt)
{
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 1);
    ts_jobd a;
    rt_jobd_up(&a, cfg, NULL);
    cr_assert_eq(rt_submit(a.port,
                           "{\"type\": \"sleep\", \"id\": \"long\", \"args\": {\"ms\": 3000}}",
                           NULL),
                 202);
    cr_assert(ts_wait_state(a.port, "q", "long", "running", 3000, NULL));
    long long t0 = ts_now_ms();
    cr_assert_eq(ts_jobd_stop(&a, SIGTERM, 5000), 0, "clean exit");
    cr_assert_lt(ts_now_ms() - t0, 2500, "shutdown_timeout bounds the wait");
    cr_assert(ts_log_contains(&a, "went back to ready"));

    ts_jobd b;
    rt_jobd_up(&b, cfg, NULL);
    cr_assert(ts_wait_state(b.port, "q", "long", "succeeded", 6000, NULL));
    cr_assert_eq(rt_job_int(b.port, "long", "attempts"), 2, "the interrupted run counts");
    ts_jobd_stop(&b, SIGTERM, 5000);
}

Test(redis, idle_queue_holds_no_worker_slot_while_it_waits)
{
    char prefix[32], cfg[1024];
    ts_unique(prefix);
    int n = snprintf(cfg, sizeof cfg,
                     "{\"workers\": 1, \"http_threads\": 2,"
                     " \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\", \"prefix\": \"%s\"},"
                     " \"shutdown_timeout\": 1,"
                     " \"queues\": {\"q\": {\"dequeue\": [\"redis\"]},"
                     "              \"l\": {\"dequeue\": [\"inline\"]}}}",
                     ts_redis_port(), prefix);
    cr_assert(n > 0 && (size_t)n < sizeof cfg);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    /* A job through "q" first: its fetch loop runs, and then waits for jobs.
     * Were the one worker slot held through that wait, each inline job
     * would wait up to 0.5 s. */
    cr_assert_eq(rt_submit(j.port, "{\"type\": \"noop\", \"id\": \"r\"}", NULL), 202);
    cr_assert(ts_wait_state(j.port, "q", "r", "succeeded", 3000, NULL));
    for (int i = 0; i < 5; i++) {
        rt_sleep_ms(150); /* pacing: the inline jobs fall in different waits */
        char body[64], id[16];
        snprintf(id, sizeof id, "l%d", i);
        snprintf(body, sizeof body, "{\"type\": \"noop\", \"id\": \"%s\"}", id);
        ts_resp r;
        cr_assert_eq(ts_post(&r, j.port, "/queues/l/jobs", body), 0);
        cr_assert_eq(r.status, 202);
        ts_resp_free(&r);
        long long t0 = ts_now_ms();
        cr_assert(ts_wait_state(j.port, "l", id, "succeeded", 2000, NULL));
        long long took = ts_now_ms() - t0;
        cr_assert_lt(took, ts_patience(150), "inline job %s took %lld ms", id, took);
    }
    ts_jobd_stop(&j, SIGTERM, 5000);
}
