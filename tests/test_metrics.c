/* test_metrics.c - GET /metrics end to end: the real jobd binary, real HTTP
 * over loopback, real redis-servers (the suite's with a key prefix per test,
 * or a test's own where the test stops it or counts its commands). Each
 * scrape is parsed back and its values asserted after a known sequence of
 * submissions, runs, failures, cancels, replays and refusals, and checked
 * with `promtool check metrics` (Debian's prometheus package). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_test.h"
#include "support.h"

TestSuite(metrics, .fini = rt_cleanup, .timeout = 120);

/* An inline queue "m" whose retries wait 0.05 s. */
static const char mt_inline_config[] =
    "{\"workers\": 2, \"queues\": {\"m\": {\"dequeue\": [\"inline\"],"
    " \"backoff\": {\"base\": 0.05, \"factor\": 0, \"exponent\": 1, \"jitter\": 0, \"max\": 1}}}}";

/* GET /metrics into r; fails the test unless it answers 200 in the text format. */
static void mt_scrape(int port, ts_resp *r)
{
    cr_assert_eq(ts_get(r, port, "/metrics"), 0, "no answer to /metrics");
    cr_assert_eq(r->status, 200, "/metrics answered %ld: %s", r->status, r->body);
    char type[128];
    cr_assert_not_null(ts_resp_header(r, "Content-Type", type, sizeof type));
    cr_assert(strstr(type, "text/plain") && strstr(type, "version=0.0.4"), "type %s", type);
}

/* The value of the sample whose name and labels are exactly series (e.g.
 * `jobd_jobs_started_total{queue="m"}`) in text, or NAN when absent. */
static double mt_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return NAN;
}

/* Scrapes until series has a value v with want_min <= v <= want_max, or
 * timeout_ms (ts_patience applied) passes. Returns the last value seen. */
static double mt_wait(int port, const char *series, double want_min, double want_max,
                      int timeout_ms)
{
    long long deadline = ts_now_ms() + ts_patience(timeout_ms);
    double v = NAN;
    for (;;) {
        ts_resp r;
        mt_scrape(port, &r);
        v = mt_value(r.body, series);
        ts_resp_free(&r);
        if ((v >= want_min && v <= want_max) || ts_now_ms() > deadline)
            return v;
        ts_sleep_ms(50);
    }
}

/* Asserts that series has exactly want in text. */
static void mt_expect(const char *text, const char *series, double want)
{
    double v = mt_value(text, series);
    cr_expect(v == want, "%s is %g, not %g", series, v, want);
}

/* Runs `promtool check metrics` on text (its stdin). Returns its exit
 * status, and its output in out (NUL-terminated). */
static int mt_promtool(const char *text, char *out, size_t outlen)
{
    char in_path[512], out_path[512], u[32];
    snprintf(in_path, sizeof in_path, "%s/%s.prom", ts_tmpdir(), ts_unique(u));
    snprintf(out_path, sizeof out_path, "%s/%s.out", ts_tmpdir(), ts_unique(u));
    FILE *f = fopen(in_path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int in = open(in_path, O_RDONLY), o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || o < 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(o, 2);
        execlp("promtool", "promtool", "check", "metrics", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    long long deadline = ts_now_ms() + ts_patience(20000);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (ts_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        ts_sleep_ms(10);
    }
    char *got = ts_read_file(out_path, NULL);
    snprintf(out, outlen, "%s", got ? got : "");
    free(got);
    unlink(in_path);
    unlink(out_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void mt_expect_promtool_ok(const char *text)
{
    char out[4096];
    int rc = mt_promtool(text, out, sizeof out);
    cr_expect_neq(rc, 127, "promtool is not installed (make deps installs prometheus)");
    cr_expect_eq(rc, 0, "promtool check metrics failed (%d): %s", rc, out);
    cr_expect(strstr(out, "problem") == NULL, "promtool found problems: %s", out);
}

static long mt_post(int port, const char *path, const char *body)
{
    ts_resp r;
    cr_assert_eq(ts_post(&r, port, path, body), 0);
    long status = r.status;
    ts_resp_free(&r);
    return status;
}

static long mt_call(int port, const char *method, const char *path)
{
    ts_resp r;
    cr_assert_eq(ts_http(&r, method, port, path, NULL, NULL, NULL), 0);
    long status = r.status;
    ts_resp_free(&r);
    return status;
}

/* The known sequence on queue q: a run that succeeds (ok1), one that fails,
 * is retried, fails and dies (f1), a cancel (c1, and a second one refused),
 * a replay of ok1, and two refusals (invalid_job, invalid_json). */
static void mt_sequence(int port, const char *q)
{
    char p[64], job[96];
    snprintf(p, sizeof p, "/queues/%s/jobs", q);
    cr_assert_eq(mt_post(port, p, "{\"type\": \"noop\", \"id\": \"ok1\"}"), 202);
    cr_assert(ts_wait_state(port, q, "ok1", "succeeded", 5000, NULL));
    cr_assert_eq(mt_post(port, p, "{\"type\": \"fail\", \"id\": \"f1\", \"max_attempts\": 2}"), 202);
    cr_assert(ts_wait_state(port, q, "f1", "dead", 10000, NULL));
    cr_assert_eq(mt_post(port, p, "{\"type\": \"noop\", \"id\": \"c1\", \"delay\": 600}"), 202);
    snprintf(job, sizeof job, "%s/c1", p);
    cr_assert_eq(mt_call(port, "DELETE", job), 200);
    cr_assert_eq(mt_call(port, "DELETE", job), 409, "cancelled once only");
    cr_assert_eq(mt_post(port, p, "{\"type\": \"noop\", \"id\": \"ok1\"}"), 200);
    cr_assert_eq(mt_post(port, p, "{\"type\": \"no_such_type\"}"), 422);
    cr_assert_eq(mt_post(port, p, "{not json"), 400);
}

/* Asserts the counters of mt_sequence on queue q in text, given the jobs
 * stored and the invalid_job refusals of the whole test. */
static void mt_expect_sequence(const char *t, const char *q, double submitted, double invalid)
{
    static const struct {
        const char *series;
        double n;
    } fixed[] = {
        {"jobd_jobs_started_total{queue=\"%s\"}", 3},
        {"jobd_jobs_succeeded_total{queue=\"%s\"}", 1},
        {"jobd_jobs_failed_total{queue=\"%s\"}", 2},
        {"jobd_jobs_retried_total{queue=\"%s\"}", 1},
        {"jobd_jobs_dead_total{queue=\"%s\"}", 1},
        {"jobd_jobs_cancelled_total{queue=\"%s\"}", 1},
        {"jobd_jobs_replayed_total{queue=\"%s\"}", 1},
        {"jobd_submissions_refused_total{queue=\"%s\",code=\"invalid_json\"}", 1},
        {"jobd_queue_jobs{queue=\"%s\",state=\"dead\"}", 1},
        {"jobd_queue_jobs{queue=\"%s\",state=\"scheduled\"}", 0},
        {"jobd_queue_jobs{queue=\"%s\",state=\"running\"}", 0},
        {"jobd_queue_jobs{queue=\"%s\",state=\"retrying\"}", 0},
        {"jobd_job_run_seconds_count{queue=\"%s\",type=\"noop\"}", 1},
        {"jobd_job_run_seconds_count{queue=\"%s\",type=\"fail\"}", 2},
        {"jobd_job_run_seconds_bucket{queue=\"%s\",type=\"fail\",le=\"+Inf\"}", 2},
        {"jobd_job_wait_seconds_count{queue=\"%s\"}", 3},
    };
    char series[256];
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        snprintf(series, sizeof series, fixed[i].series, q);
        mt_expect(t, series, fixed[i].n);
    }
    snprintf(series, sizeof series, "jobd_jobs_submitted_total{queue=\"%s\"}", q);
    mt_expect(t, series, submitted);
    snprintf(series, sizeof series, "jobd_submissions_refused_total{queue=\"%s\",code=\"invalid_job\"}", q);
    mt_expect(t, series, invalid);
    /* the retry waited its backoff from its due time, not from its creation */
    snprintf(series, sizeof series, "jobd_job_wait_seconds_sum{queue=\"%s\"}", q);
    cr_expect(mt_value(t, series) < 5);
}

Test(metrics, inline_queue_counts_a_known_sequence)
{
    ts_jobd j;
    rt_jobd_up(&j, mt_inline_config, NULL);
    int port = j.port;
    const char *p = "/queues/m/jobs";
    mt_sequence(port, "m");
    /* more refusals, of a batch and of an unknown field */
    cr_assert_eq(mt_post(port, p, "{\"type\": \"noop\", \"bogus\": 1}"), 422);
    cr_assert_eq(mt_post(port, p, "[{\"type\": \"noop\"}, {\"type\": 5}]"), 422);
    /* a job left enqueued: the queue is paused */
    cr_assert_eq(mt_call(port, "POST", "/queues/m/pause"), 200);
    cr_assert_eq(mt_post(port, p, "{\"type\": \"noop\", \"id\": \"w1\"}"), 202);

    /* The store gauges may come from a cache up to 1 s old: wait for them. */
    cr_assert_eq(mt_wait(port, "jobd_queue_paused{queue=\"m\"}", 1, 1, 5000), 1);
    cr_assert_eq(mt_wait(port, "jobd_queue_jobs{queue=\"m\",state=\"enqueued\"}", 1, 1, 5000), 1);
    double age = mt_wait(port, "jobd_queue_latency_seconds{queue=\"m\"}", 0.2, 1e9, 5000);
    cr_assert(age >= 0.2, "the waiting job's age: %g", age);

    ts_resp r;
    mt_scrape(port, &r);
    const char *t = r.body;
    mt_expect_sequence(t, "m", 4, 3);
    const char *submit = "route=\"/queues/{q}/jobs\",method=\"POST\"";
    char series[256];
    static const struct {
        int code;
        double n;
    } by_code[] = {{202, 4}, {200, 1}, {422, 3}, {400, 1}};
    for (size_t i = 0; i < sizeof by_code / sizeof by_code[0]; i++) {
        snprintf(series, sizeof series, "jobd_http_request_seconds_count{%s,code=\"%d\"}", submit,
                 by_code[i].code);
        mt_expect(t, series, by_code[i].n);
    }
    mt_expect(t, "jobd_http_request_seconds_count{route=\"/queues/{q}/jobs/{id}\",method=\"DELETE\",code=\"409\"}", 1);
    mt_expect(t, "jobd_workers{state=\"busy\"}", 0);
    mt_expect(t, "jobd_workers{state=\"idle\"}", 2);
    mt_expect(t, "jobd_build_info{version=\"" JOBD_VERSION "\"}", 1);
    cr_expect(mt_value(t, "process_resident_memory_bytes") > 1e6);
    cr_expect(mt_value(t, "process_open_fds") >= 3);
    cr_expect(mt_value(t, "process_max_fds") >= mt_value(t, "process_open_fds"));
    cr_expect(mt_value(t, "process_cpu_seconds_total") > 0);
    double start = mt_value(t, "process_start_time_seconds");
    cr_expect(fabs(start - (double)time(NULL)) < 600, "start time %f", start);
    cr_expect(isnan(mt_value(t, "jobd_redis_up")), "no Redis queue, no Redis gauge");
    mt_expect_promtool_ok(t);
    ts_resp_free(&r);
    ts_jobd_stop(&j, SIGTERM, 10000);
}

/* The same sequence on a Redis queue: there the outcomes are filed by the
 * Redis store's completion path and replays come from its enqueue script,
 * so each counter is reached another way. */
Test(metrics, redis_queue_counts_a_known_sequence)
{
    char prefix[32], cfg[2048];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 2);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    int port = j.port;
    mt_sequence(port, "q");
    cr_assert_eq(mt_wait(port, "jobd_queue_jobs{queue=\"q\",state=\"dead\"}", 1, 1, 5000), 1);
    ts_resp r;
    mt_scrape(port, &r);
    mt_expect_sequence(r.body, "q", 3, 1);
    mt_expect(r.body, "jobd_queue_jobs{queue=\"q\",state=\"enqueued\"}", 0);
    mt_expect(r.body, "jobd_redis_up", 1);
    mt_expect_promtool_ok(r.body);
    ts_resp_free(&r);
    ts_jobd_stop(&j, SIGTERM, 10000);
}

/* A process killed with SIGKILL mid-run never files its runs: the process
 * whose reaper takes its leases back counts them (failed, and dead or
 * retried), so a job that went dead in Redis moves jobd_jobs_dead_total. */
Test(metrics, leases_of_a_killed_process_are_counted_by_the_reaper)
{
    char prefix[32], cfg[2048];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 2);
    ts_jobd a, b;
    rt_jobd_up(&a, cfg, NULL);
    cr_assert_eq(mt_post(a.port, "/queues/q/jobs",
                         "[{\"type\": \"sleep\", \"id\": \"last\", \"max_attempts\": 1,"
                         " \"args\": {\"ms\": 30000}},"
                         " {\"type\": \"sleep\", \"id\": \"again\", \"max_attempts\": 3,"
                         " \"args\": {\"ms\": 30000}}]"),
                 202);
    cr_assert(ts_wait_state(a.port, "q", "last", "running", 5000, NULL));
    cr_assert(ts_wait_state(a.port, "q", "again", "running", 5000, NULL));
    cr_assert_eq(ts_jobd_stop(&a, SIGKILL, 2000), 128 + SIGKILL);
    rt_jobd_up(&b, cfg, NULL);
    cr_assert(ts_wait_state(b.port, "q", "last", "dead", 10000, NULL), "its attempt used up");
    cr_assert_eq(mt_wait(b.port, "jobd_jobs_dead_total{queue=\"q\"}", 1, 1, 5000), 1);
    ts_resp r;
    mt_scrape(b.port, &r);
    mt_expect(r.body, "jobd_jobs_retried_total{queue=\"q\"}", 1);
    mt_expect(r.body, "jobd_jobs_failed_total{queue=\"q\"}", 2);
    mt_expect(r.body, "jobd_jobs_succeeded_total{queue=\"q\"}", 0);
    mt_expect_promtool_ok(r.body);
    ts_resp_free(&r);
    ts_jobd_stop(&b, SIGTERM, 10000);
}

/* Cancelled jobs stay in ready (fetch drops them): with more of them at its
 * oldest end than one look of the gauges script takes, the latency still
 * reads the age of the job that waits behind them, and they are dropped. */
Test(metrics, latency_looks_past_cancelled_jobs)
{
    enum { CANCELLED = 40 };
    char prefix[32], cfg[2048], body[4096], path[96];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 2);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    int port = j.port;
    cr_assert_eq(mt_call(port, "POST", "/queues/q/pause"), 200);
    size_t len = (size_t)snprintf(body, sizeof body, "[");
    for (int i = 0; i < CANCELLED; i++)
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "%s{\"type\": \"noop\", \"id\": \"c%d\"}", i ? "," : "", i);
    snprintf(body + len, sizeof body - len, "]");
    cr_assert_eq(mt_post(port, "/queues/q/jobs", body), 202);
    cr_assert_eq(mt_post(port, "/queues/q/jobs", "{\"type\": \"noop\", \"id\": \"w1\"}"), 202);
    for (int i = 0; i < CANCELLED; i++) {
        snprintf(path, sizeof path, "/queues/q/jobs/c%d", i);
        cr_assert_eq(mt_call(port, "DELETE", path), 200);
    }
    cr_assert_eq(mt_wait(port, "jobd_queue_jobs{queue=\"q\",state=\"enqueued\"}", 1, 1, 5000), 1);
    double age = mt_wait(port, "jobd_queue_latency_seconds{queue=\"q\"}", 0.3, 1e9, 5000);
    cr_assert(age >= 0.3 && age < 60, "w1 waits behind %d cancelled jobs: age %g", CANCELLED, age);
    redisContext *c = redisConnect("127.0.0.1", ts_redis_port());
    cr_assert(c && !c->err);
    redisReply *r = redisCommand(c, "LLEN %s:{q}:ready", prefix);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    cr_expect_eq(r->integer, 1, "the cancelled ids are dropped from ready, w1 stays");
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(mt_call(port, "POST", "/queues/q/resume"), 200);
    cr_assert(ts_wait_state(port, "q", "w1", "succeeded", 5000, NULL));
    cr_assert_eq(mt_wait(port, "jobd_queue_latency_seconds{queue=\"q\"}", 0, 0, 5000), 0);
    ts_jobd_stop(&j, SIGTERM, 10000);
}

Test(metrics, redis_queues_share_store_gauges_and_count_refusals_while_redis_is_down)
{
    rt_redis rs;
    rt_redis_start(&rs, NULL);
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    snprintf(cfg, sizeof cfg,
             "{\"workers\": 2, \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\", \"prefix\": \"%s\","
             " \"timeout\": 0.5}, \"heartbeat\": 0.2, \"lease_expiry\": 1, \"poll_interval\": 0.05,"
             " \"shutdown_timeout\": 1, \"queues\": {"
             " \"q\": {\"enqueue\": [\"aggregate\"], \"dequeue\": [\"redis\"]},"
             " \"r\": {\"dequeue\": [\"redis\"]}}}",
             rs.port, prefix);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    int port = j.port;
    cr_assert_eq(mt_call(port, "POST", "/queues/q/pause"), 200);
    cr_assert_eq(mt_post(port, "/queues/q/jobs", "{\"type\": \"noop\"}"), 202);
    cr_assert_eq(mt_post(port, "/queues/q/jobs", "[{\"type\": \"noop\"}, {\"type\": \"noop\"}]"), 202);
    cr_assert_eq(mt_post(port, "/queues/r/jobs", "{\"type\": \"noop\", \"delay\": 600}"), 202);
    cr_assert_eq(mt_wait(port, "jobd_queue_jobs{queue=\"q\",state=\"enqueued\"}", 3, 3, 5000), 3);
    cr_assert_eq(mt_wait(port, "jobd_queue_paused{queue=\"q\"}", 1, 1, 5000), 1);
    double age = mt_wait(port, "jobd_queue_latency_seconds{queue=\"q\"}", 0.3, 1e9, 5000);
    cr_assert(age >= 0.3 && age < 60, "the oldest enqueued job's age: %g", age);

    ts_resp r;
    mt_scrape(port, &r);
    mt_expect(r.body, "jobd_queue_jobs{queue=\"r\",state=\"scheduled\"}", 1);
    mt_expect(r.body, "jobd_queue_paused{queue=\"r\"}", 0);
    mt_expect(r.body, "jobd_queue_latency_seconds{queue=\"r\"}", 0);
    mt_expect(r.body, "jobd_jobs_submitted_total{queue=\"q\"}", 3);
    mt_expect(r.body, "jobd_jobs_submitted_total{queue=\"r\"}", 1);
    mt_expect(r.body, "jobd_aggregate_batch_jobs_sum{queue=\"q\"}", 3);
    cr_expect(mt_value(r.body, "jobd_aggregate_batch_jobs_count{queue=\"q\"}") >= 1);
    mt_expect(r.body, "jobd_aggregate_buffered_jobs{queue=\"q\"}", 0);
    cr_expect(isnan(mt_value(r.body, "jobd_aggregate_buffered_jobs{queue=\"r\"}")));
    mt_expect(r.body, "jobd_redis_up", 1);
    mt_expect(r.body, "jobd_redis_reconnects_total", 0);
    ts_resp_free(&r);

    cr_assert_eq(mt_call(port, "POST", "/queues/q/resume"), 200);
    cr_assert_eq(mt_wait(port, "jobd_jobs_succeeded_total{queue=\"q\"}", 3, 3, 5000), 3);
    cr_assert_eq(mt_wait(port, "jobd_queue_jobs{queue=\"q\",state=\"enqueued\"}", 0, 0, 5000), 0);
    cr_assert_eq(mt_wait(port, "jobd_queue_latency_seconds{queue=\"q\"}", 0, 0, 5000), 0);
    mt_scrape(port, &r);
    mt_expect(r.body, "jobd_jobs_started_total{queue=\"q\"}", 3);
    mt_expect(r.body, "jobd_job_run_seconds_count{queue=\"q\",type=\"noop\"}", 3);
    mt_expect_promtool_ok(r.body);
    ts_resp_free(&r);

    /* Redis gone: a submission is refused (503), the scrape still answers. */
    rt_redis_kill(&rs, SIGKILL);
    long long deadline = ts_now_ms() + ts_patience(5000);
    while (mt_post(port, "/queues/r/jobs", "{\"type\": \"noop\"}") != 503 && ts_now_ms() < deadline)
        ts_sleep_ms(50);
    cr_assert_eq(mt_wait(port, "jobd_redis_up", 0, 0, 5000), 0);
    cr_assert_geq(mt_wait(port, "jobd_submissions_refused_total{queue=\"r\",code=\"unavailable\"}",
                          1, 1e9, 5000), 1);
    rt_redis_restart(&rs);
    cr_assert_eq(mt_wait(port, "jobd_redis_up", 1, 1, 10000), 1);
    cr_assert_geq(mt_wait(port, "jobd_redis_reconnects_total", 1, 1e9, 5000), 1);
    ts_jobd_stop(&j, SIGTERM, 10000);
    rt_redis_kill(&rs, SIGTERM);
}

Test(metrics, http_route_labels_are_templates_whatever_the_path)
{
    ts_jobd j;
    rt_jobd_up(&j, mt_inline_config, NULL);
    int port = j.port;
    char path[256], u[32];
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/queues/m/jobs/zz%dqq%s", i, ts_unique(u));
        cr_assert_eq(mt_call(port, "GET", path), 404);
        snprintf(path, sizeof path, "/nowhere%d/%s", i, ts_unique(u));
        cr_assert_eq(mt_call(port, "GET", path), 404);
        snprintf(path, sizeof path, "/queues/nqzx%d/jobs", i);
        cr_assert_eq(mt_post(port, path, "{\"type\": \"noop\"}"), 404);
        cr_assert_eq(mt_call(port, "PUT", "/queues/m/jobs"), 405);
    }
    ts_resp r;
    mt_scrape(port, &r);
    cr_expect(strstr(r.body, "zz") == NULL, "a raw id in the labels");
    cr_expect(strstr(r.body, "nowhere") == NULL, "a raw path in the labels");
    cr_expect(strstr(r.body, "nqzx") == NULL, "an unknown queue in the labels");
    mt_expect(r.body,
              "jobd_http_request_seconds_count{route=\"/queues/{q}/jobs/{id}\",method=\"GET\","
              "code=\"404\"}",
              20);
    mt_expect(r.body, "jobd_http_request_seconds_count{route=\"unmatched\",method=\"any\",code=\"404\"}",
              20);
    mt_expect(r.body, "jobd_http_request_seconds_count{route=\"unmatched\",method=\"any\",code=\"405\"}",
              20);
    mt_expect(r.body,
              "jobd_http_request_seconds_count{route=\"/queues/{q}/jobs\",method=\"POST\","
              "code=\"404\"}",
              20);
    /* every series of the family: a handful, not one per request */
    size_t series = 0;
    for (const char *p = r.body; (p = strstr(p, "jobd_http_request_seconds_count{")); p++)
        series++;
    cr_expect_leq(series, 6, "%zu series", series);
    mt_expect_promtool_ok(r.body);
    ts_resp_free(&r);
    ts_jobd_stop(&j, SIGTERM, 10000);
}

/* A job's wait counts from its due time (a delay's end, not its creation);
 * a job held by a paused queue waits until it starts; the run histogram has
 * the run's length; jobd_workers shows the worker that runs it. */
Test(metrics, wait_from_due_time_run_length_and_busy_workers)
{
    ts_jobd j;
    rt_jobd_up(&j,
               "{\"workers\": 2, \"queues\": {\"m\": {\"dequeue\": [\"inline\"]},"
               " \"d\": {\"dequeue\": [\"inline\"]}}}",
               NULL);
    int port = j.port;
    cr_assert_eq(mt_post(port, "/queues/d/jobs", "{\"type\": \"noop\", \"id\": \"d1\", \"delay\": 2}"),
                 202);
    cr_assert_eq(mt_call(port, "POST", "/queues/m/pause"), 200);
    cr_assert_eq(mt_post(port, "/queues/m/jobs",
                         "{\"type\": \"sleep\", \"id\": \"s1\", \"args\": {\"ms\": 1500}}"),
                 202);
    double age = mt_wait(port, "jobd_queue_latency_seconds{queue=\"m\"}", 0.5, 1e9, 5000);
    cr_assert(age >= 0.5, "the held job's age: %g", age);
    cr_assert_eq(mt_call(port, "POST", "/queues/m/resume"), 200);
    cr_assert(ts_wait_state(port, "m", "s1", "running", 5000, NULL));
    ts_resp r;
    mt_scrape(port, &r);
    mt_expect(r.body, "jobd_workers{state=\"busy\"}", 1);
    mt_expect(r.body, "jobd_workers{state=\"idle\"}", 1);
    ts_resp_free(&r);
    cr_assert(ts_wait_state(port, "m", "s1", "succeeded", 10000, NULL));
    cr_assert(ts_wait_state(port, "d", "d1", "succeeded", 10000, NULL));
    cr_assert_eq(mt_wait(port, "jobd_workers{state=\"busy\"}", 0, 0, 5000), 0);
    mt_scrape(port, &r);
    const char *t = r.body;
    mt_expect(t, "jobd_job_wait_seconds_count{queue=\"d\"}", 1);
    double dwait = mt_value(t, "jobd_job_wait_seconds_sum{queue=\"d\"}");
    cr_expect(dwait < 1.5, "waited %g s after its due time, not its 2 s delay", dwait);
    cr_expect(mt_value(t, "jobd_job_wait_seconds_sum{queue=\"m\"}") >= 0.5);
    mt_expect(t, "jobd_job_run_seconds_count{queue=\"m\",type=\"sleep\"}", 1);
    mt_expect(t, "jobd_job_run_seconds_bucket{queue=\"m\",type=\"sleep\",le=\"1\"}", 0);
    mt_expect(t, "jobd_job_run_seconds_bucket{queue=\"m\",type=\"sleep\",le=\"2.5\"}", 1);
    double run = mt_value(t, "jobd_job_run_seconds_sum{queue=\"m\",type=\"sleep\"}");
    cr_expect(run >= 1.5 && run < 2.5, "ran %g s", run);
    mt_expect_promtool_ok(t);
    ts_resp_free(&r);
    ts_jobd_stop(&j, SIGTERM, 10000);
}

/* calls of cmd in the INFO commandstats of the Redis at port, or -1. */
static long mt_redis_calls(int port, const char *cmd)
{
    char u[32], out[512];
    snprintf(out, sizeof out, "%s/%s.info", ts_tmpdir(), ts_unique(u));
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0)
            _exit(126);
        dup2(o, 1);
        execlp("redis-cli", "redis-cli", "-h", "127.0.0.1", "-p", port_s, "INFO", "commandstats",
               (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    char *text = ts_read_file(out, NULL);
    unlink(out);
    long calls = -1;
    char key[64];
    snprintf(key, sizeof key, "cmdstat_%s:calls=", cmd);
    const char *p = text ? strstr(text, key) : NULL;
    if (p)
        calls = strtol(p + strlen(key), NULL, 10);
    else if (text)
        calls = 0;
    free(text);
    return calls;
}

/* Scrapes in a burst cost Redis one gauges script call per second at most:
 * counted by the LRANGE calls of gauges.lua (one per call for a queue with
 * enqueued jobs; an API-only jobd runs no fetch loop, the only other user of
 * LRANGE, so its job stays enqueued). */
Test(metrics, store_gauges_are_cached_for_a_second)
{
    pid_t rpid;
    int rport;
    cr_assert_eq(ts_redis_start(&rpid, &rport, NULL), 0);
    char prefix[32], cfg[1024];
    ts_unique(prefix);
    rt_config(cfg, sizeof cfg, rport, prefix, 2);
    ts_jobd j;
    const char *const no_workers[] = {"--no-workers", NULL};
    rt_jobd_up(&j, cfg, no_workers);
    cr_assert_eq(mt_post(j.port, "/queues/q/jobs", "{\"type\": \"noop\"}"), 202);
    long before = mt_redis_calls(rport, "lrange");
    cr_assert_geq(before, 0);
    long long t0 = ts_now_ms();
    int scrapes = 40;
    for (int i = 0; i < scrapes; i++) {
        ts_resp r;
        mt_scrape(j.port, &r);
        cr_assert_eq(mt_value(r.body, "jobd_queue_jobs{queue=\"q\",state=\"enqueued\"}"), 1);
        ts_resp_free(&r);
    }
    long long elapsed = ts_now_ms() - t0;
    long calls = mt_redis_calls(rport, "lrange") - before;
    cr_expect_geq(calls, 1);
    cr_expect_leq(calls, elapsed / 1000 + 1, "%ld gauge reads for %d scrapes in %lld ms", calls,
                  scrapes, elapsed);
    ts_jobd_stop(&j, SIGTERM, 10000);
    ts_redis_stop(rpid);
}

Test(metrics, disabled_metrics_answer_404)
{
    ts_jobd j;
    rt_jobd_up(&j,
               "{\"workers\": 1, \"metrics\": {\"enabled\": false},"
               " \"queues\": {\"m\": {\"dequeue\": [\"inline\"]}}}",
               NULL);
    ts_resp r;
    cr_assert_eq(ts_get(&r, j.port, "/metrics"), 0);
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(ts_error_code(&r), "not_found");
    ts_resp_free(&r);
    cr_assert_eq(mt_post(j.port, "/queues/m/jobs", "{\"type\": \"noop\", \"id\": \"a\"}"), 202);
    cr_assert(ts_wait_state(j.port, "m", "a", "succeeded", 5000, NULL), "jobs still run");
    ts_jobd_stop(&j, SIGTERM, 10000);
}
