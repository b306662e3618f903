/* test_flow.c - flow control of queues (README, Rate limits, Global
 * concurrency, Admission control): the config's checks, and real jobd
 * processes sharing a real Redis (and inline queues, per process): the start
 * rate measured from the jobs' start times, the most runs at once from their
 * start and end times, 429 queue_full at max_depth and after a drain. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/pipeline.h"
#include "../server/config.h"
#include "../util/rfc3339.h"
#include "redis_test.h"

TestSuite(flow, .timeout = 60, .fini = rt_cleanup);

#define FLOW_MAX_JOBS 2000

/* --- helpers --- */

/* A config of two queues sharing settings: "q" (queue_opts after dequeue
 * redis) and "agg" (aggregate -> redis, same opts), on the suite's Redis
 * under prefix, plus "mem" (inline, mem_opts). */
static void flow_config(char *buf, size_t len, const char *prefix, int workers,
                        const char *queue_opts, const char *mem_opts)
{
    char queues[1024];
    int n = snprintf(queues, sizeof queues,
                     "{\"q\": {\"dequeue\": [\"redis\"]%s%s},"
                     " \"agg\": {\"enqueue\": [\"aggregate\"], \"dequeue\": [\"redis\"]%s%s},"
                     " \"mem\": {\"dequeue\": [\"inline\"]%s%s}}",
                     *queue_opts ? ", " : "", queue_opts, *queue_opts ? ", " : "", queue_opts,
                     *mem_opts ? ", " : "", mem_opts);
    cr_assert(n > 0 && (size_t)n < sizeof queues, "queue options too long");
    rt_config_queues(buf, len, 0, prefix, workers, queues);
}

/* Starts n jobd processes (into procs) on one fresh prefix with
 * flow_config's queues, logging each job's start (--verbose). */
static void flow_up(ts_jobd *procs, int n, int workers, const char *queue_opts,
                    const char *mem_opts)
{
    static const char *const verbose[] = {"--verbose", NULL};
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    flow_config(cfg, sizeof cfg, prefix, workers, queue_opts, mem_opts);
    for (int i = 0; i < n; i++)
        rt_jobd_up(&procs[i], cfg, verbose);
}

/* Every one of procs[0..n) started jobs: a limit across processes was
 * tested with all of them taking part. */
static void flow_all_started_jobs(const ts_jobd *procs, int n)
{
    for (int i = 0; i < n; i++)
        cr_expect(ts_log_contains(&procs[i], "job.started"), "process %d started no job", i);
}

/* Stops procs[0..n) with sig. */
static void flow_down(ts_jobd *procs, int n, int sig)
{
    for (int i = 0; i < n; i++)
        ts_jobd_stop(&procs[i], sig, 5000);
}

/* POSTs body to /queues/<queue>/jobs; r is filled (caller frees). */
static void flow_post(ts_resp *r, int port, const char *queue, const char *body)
{
    char path[128];
    snprintf(path, sizeof path, "/queues/%s/jobs", queue);
    cr_assert_eq(ts_post(r, port, path, body), 0, "no answer to POST %s", path);
}

/* POSTs body and returns the status. */
static long flow_submit(int port, const char *queue, const char *body)
{
    ts_resp r;
    flow_post(&r, port, queue, body);
    long status = r.status;
    ts_resp_free(&r);
    return status;
}

/* A batch body of n jobs of type with ids <tag>-<first + i>. New memory. */
static char *flow_batch(const char *type, const char *args, const char *tag, int first, int n)
{
    size_t cap = (size_t)n * (96 + strlen(args)) + 16, len = 0;
    char *body = malloc(cap);
    cr_assert_not_null(body);
    body[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"type\":\"%s\",\"args\":%s,\"id\":\"%s-%d\"}", i ? "," : "",
                                type, args, tag, first + i);
    snprintf(body + len, cap - len, "]");
    return body;
}

/* An integer of the queue view at obj.key (obj NULL = top level), or -1. */
static long flow_queue_int(int port, const char *queue, const char *obj, const char *key)
{
    json_t *v = rt_queue_of(port, queue);
    json_t *o = obj ? json_object_get(v, obj) : v;
    json_t *n = json_object_get(o, key);
    long c = json_is_integer(n) ? (long)json_integer_value(n) : -1;
    json_decref(v);
    return c;
}

/* Polls until processed_total of queue >= n; true if reached. */
static bool flow_wait_processed(int port, const char *queue, long n, int timeout_ms)
{
    long long deadline = ts_now_ms() + ts_patience(timeout_ms);
    while (ts_now_ms() < deadline) {
        if (flow_queue_int(port, queue, NULL, "processed_total") >= n)
            return true;
        ts_sleep_ms(20);
    }
    return flow_queue_int(port, queue, NULL, "processed_total") >= n;
}

/* The run of one job: its start and end (unix ms) from its view. */
typedef struct flow_run {
    int64_t start, end;
} flow_run;

/* Pages through the succeeded jobs of queue into runs (at most max);
 * returns how many. */
static size_t flow_runs(int port, const char *queue, flow_run *runs, size_t max)
{
    char path[256], cursor[160] = "";
    size_t n = 0;
    for (int page = 0; page < 50; page++) {
        snprintf(path, sizeof path, "/queues/%s/jobs?state=succeeded&limit=1000%s%s", queue,
                 cursor[0] ? "&cursor=" : "", cursor);
        ts_resp r;
        cr_assert_eq(ts_get(&r, port, path), 0);
        cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
        json_t *jobs = json_object_get(r.json, "jobs");
        for (size_t i = 0; i < json_array_size(jobs) && n < max; i++) {
            json_t *v = json_array_get(jobs, i);
            const char *s = json_string_value(json_object_get(v, "started_at"));
            const char *e = json_string_value(json_object_get(v, "finished_at"));
            cr_assert(s && e && rfc3339_parse(s, &runs[n].start) == 0 &&
                          rfc3339_parse(e, &runs[n].end) == 0,
                      "job without start or end: %s", r.body);
            n++;
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        bool more = next != NULL;
        if (next)
            snprintf(cursor, sizeof cursor, "%s", next);
        ts_resp_free(&r);
        if (!more)
            break;
    }
    return n;
}

static int flow_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Starts within [first start, first start + window_ms). */
static size_t flow_starts_within(const flow_run *runs, size_t n, int64_t window_ms)
{
    int64_t *starts = calloc(n ? n : 1, sizeof *starts);
    cr_assert_not_null(starts);
    for (size_t i = 0; i < n; i++)
        starts[i] = runs[i].start;
    qsort(starts, n, sizeof *starts, flow_cmp_i64);
    size_t k = 0;
    while (k < n && starts[k] < starts[0] + window_ms)
        k++;
    free(starts);
    return k;
}

/* The most runs that overlapped at any moment (an end at the same ms as a
 * start does not overlap it). */
static int flow_max_overlap(const flow_run *runs, size_t n)
{
    /* Events as 2 * ms + kind (0 = end, 1 = start): ends sort first. */
    int64_t *ev = calloc(2 * n + 1, sizeof *ev);
    cr_assert_not_null(ev);
    for (size_t i = 0; i < n; i++) {
        ev[2 * i] = 2 * runs[i].start + 1;
        ev[2 * i + 1] = 2 * runs[i].end;
    }
    qsort(ev, 2 * n, sizeof *ev, flow_cmp_i64);
    int cur = 0, most = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        cur += (ev[i] & 1) ? 1 : -1;
        most = cur > most ? cur : most;
    }
    free(ev);
    return most;
}

/* --- config --- */

static config_t *flow_parse(const char *queue_opts, char *err, size_t errlen)
{
    char text[4096];
    snprintf(text, sizeof text, "{\"queues\": {\"q\": {\"dequeue\": [\"inline\"], %s}}}",
             queue_opts);
    return config_parse(text, strlen(text), NULL, &pipeline_config_checks, err, errlen);
}

Test(flow, config_errors_name_the_field)
{
    static const struct {
        char opts[96];
        char msg[128];
    } bad[] = {
        {"\"rate\": {\"per\": 1}", "queues.q.rate.limit: required: an integer >= 1"},
        {"\"rate\": {\"limit\": 0}", "queues.q.rate.limit: must be an integer >= 1"},
        {"\"rate\": {\"limit\": 1.5}", "queues.q.rate.limit: must be an integer >= 1"},
        {"\"rate\": {\"limit\": 5, \"per\": 0}", "queues.q.rate.per: must be a number > 0"},
        {"\"rate\": {\"limit\": 5, \"burst\": 0}", "queues.q.rate.burst: must be an integer >= 1"},
        {"\"rate\": {\"limit\": 5, \"brust\": 2}", "queues.q.rate.brust: unknown key"},
        {"\"rate\": 5", "queues.q.rate: must be an object"},
        {"\"max_running\": 0", "queues.q.max_running: must be an integer >= 1"},
        {"\"max_running\": \"3\"", "queues.q.max_running: must be an integer >= 1"},
        {"\"max_depth\": 0", "queues.q.max_depth: must be an integer >= 1"},
        {"\"max_depth\": -5", "queues.q.max_depth: must be an integer >= 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        config_t *cfg = flow_parse(bad[i].opts, err, sizeof err);
        cr_expect_null(cfg, "accepted %s", bad[i].opts);
        config_free(cfg);
        cr_expect_str_eq(err, bad[i].msg, "for %s", bad[i].opts);
    }
}

Test(flow, config_defaults_and_values)
{
    char err[512] = "";
    config_t *cfg = flow_parse("\"rate\": {\"limit\": 100, \"per\": 0.5}, \"max_running\": 3,"
                               " \"max_depth\": 1000",
                               err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    const queue_cfg *q = config_queue(cfg, "q");
    cr_expect_eq(q->rate.limit, 100);
    cr_expect_float_eq(q->rate.per, 0.5, 1e-9);
    cr_expect_eq(q->rate.burst, 100, "burst defaults to limit");
    cr_expect_eq(q->max_running, 3);
    cr_expect_eq(q->max_depth, 1000);
    config_free(cfg);
    cfg = flow_parse("\"rate\": {\"limit\": 10, \"burst\": 2}", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    q = config_queue(cfg, "q");
    cr_expect_eq(q->rate.burst, 2);
    cr_expect_float_eq(q->rate.per, 1, 1e-9, "per defaults to 1 s");
    cr_expect_eq(q->max_running, 0, "off by default");
    cr_expect_eq(q->max_depth, 0, "off by default");
    config_free(cfg);
}

/* --- rate --- */

/* Submits 260 noop jobs and measures the starts in the 10 s after the first. */
static void flow_measure_rate(int port, const char *queue, size_t want_lo, size_t want_hi)
{
    char *body = flow_batch("noop", "null", "r", 0, 260);
    cr_assert_eq(flow_submit(port, queue, body), 202);
    free(body);
    /* 10 s of starts and a little more, so the window is full. */
    cr_assert(flow_wait_processed(port, queue, 215, 16000), "the jobs did not run");
    static flow_run runs[FLOW_MAX_JOBS];
    size_t n = flow_runs(port, queue, runs, FLOW_MAX_JOBS);
    cr_assert_geq(n, 215);
    size_t k = flow_starts_within(runs, n, 10000);
    cr_log_info("%s: %zu starts in the 10 s after the first", queue, k);
    cr_expect(k >= want_lo && k <= want_hi, "%zu starts in 10 s, want %zu..%zu", k, want_lo,
              want_hi);
}

Test(flow, redis_rate_across_two_processes, .timeout = 90)
{
    ts_jobd p[2];
    flow_up(p, 2, 4, "\"rate\": {\"limit\": 20, \"per\": 1, \"burst\": 2}", "");
    /* 20/s with a burst of 2: 200 (+1) starts in 10 s; without the shared
     * limit the two processes would start 400. */
    flow_measure_rate(p[0].port, "q", 180, 220);
    flow_all_started_jobs(p, 2);
    json_t *v = rt_queue_of(p[1].port, "q");
    json_t *rate = json_object_get(json_object_get(v, "limits"), "rate");
    cr_expect_eq(json_integer_value(json_object_get(rate, "limit")), 20);
    cr_expect_eq(json_integer_value(json_object_get(rate, "burst")), 2);
    json_decref(v);
    flow_down(p, 2, SIGTERM);
}

Test(flow, inline_rate_per_process, .timeout = 90)
{
    ts_jobd p[1];
    flow_up(p, 1, 4, "", "\"rate\": {\"limit\": 10, \"per\": 0.5, \"burst\": 1}");
    flow_measure_rate(p[0].port, "mem", 180, 220);
    flow_down(p, 1, SIGTERM);
}

/* --- max_running --- */

/* Submits 30 sleep jobs of 150 ms and checks the most runs at once. */
static void flow_check_running(int port, const char *queue, int limit)
{
    char *body = flow_batch("sleep", "{\"ms\":150}", "s", 0, 30);
    cr_assert_eq(flow_submit(port, queue, body), 202);
    free(body);
    /* The view shows the limit and, while jobs run, never more running. */
    long long deadline = ts_now_ms() + ts_patience(15000);
    bool done = false;
    while (!done && ts_now_ms() < deadline) {
        json_t *v = rt_queue_of(port, queue);
        json_t *l = json_object_get(v, "limits");
        cr_assert_eq(json_integer_value(json_object_get(l, "max_running")), limit);
        cr_expect_leq(json_integer_value(json_object_get(l, "running")), limit);
        done = json_integer_value(json_object_get(v, "processed_total")) >= 30;
        json_decref(v);
        if (!done)
            ts_sleep_ms(20);
    }
    cr_assert(done, "the jobs did not run");
    static flow_run runs[64];
    size_t n = flow_runs(port, queue, runs, 64);
    cr_assert_eq(n, 30);
    int most = flow_max_overlap(runs, n);
    cr_log_info("%s: at most %d of 30 runs at once", queue, most);
    cr_expect_leq(most, limit, "%d runs at once, max_running %d", most, limit);
    cr_expect_geq(most, 2, "runs never overlapped: the test shows nothing");
}

Test(flow, redis_max_running_across_two_processes)
{
    ts_jobd p[2];
    flow_up(p, 2, 4, "\"max_running\": 3", "");
    /* 8 workers in all, at most 3 of them busy with q. */
    flow_check_running(p[0].port, "q", 3);
    flow_all_started_jobs(p, 2);
    flow_down(p, 2, SIGTERM);
}

Test(flow, inline_max_running_per_process)
{
    ts_jobd p[1];
    flow_up(p, 1, 6, "", "\"max_running\": 2");
    flow_check_running(p[0].port, "mem", 2);
    flow_down(p, 1, SIGTERM);
}

/* A process killed while it holds leases keeps its slots until a live
 * process takes its leases back (lease_expiry 1 s): then the rest run. */
Test(flow, redis_max_running_slots_come_back_after_a_crash)
{
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    flow_config(cfg, sizeof cfg, prefix, 4, "\"max_running\": 2", "");
    ts_jobd a;
    rt_jobd_up(&a, cfg, NULL);
    char *body = flow_batch("sleep", "{\"ms\":30000}", "long", 0, 2);
    cr_assert_eq(flow_submit(a.port, "q", body), 202);
    free(body);
    long long start_by = ts_now_ms() + ts_patience(5000);
    while (flow_queue_int(a.port, "q", "counts", "running") < 2 && ts_now_ms() < start_by)
        ts_sleep_ms(20);
    cr_assert_eq(flow_queue_int(a.port, "q", "counts", "running"), 2);
    ts_jobd_stop(&a, SIGKILL, 5000);
    ts_jobd b;
    rt_jobd_up(&b, cfg, NULL);
    cr_assert_eq(flow_submit(b.port, "q", "{\"type\":\"noop\",\"id\":\"after\"}"), 202);
    /* Both slots are held by the dead process's leases: the noop waits. */
    long long until = ts_now_ms() + 300;
    while (ts_now_ms() < until) {
        cr_assert_eq(flow_queue_int(b.port, "q", "counts", "enqueued"), 1, "noop started");
        ts_sleep_ms(20);
    }
    /* Once its leases are reaped (an attempt counted), the two long jobs run
     * again here and take the slots back, so the noop still waits. */
    long long deadline = ts_now_ms() + ts_patience(10000);
    while (ts_now_ms() < deadline && (rt_job_int(b.port, "long-0", "attempts") < 1 ||
                                      rt_job_int(b.port, "long-1", "attempts") < 1))
        ts_sleep_ms(20);
    cr_assert(ts_wait_state(b.port, "q", "long-0", "running", 5000, NULL));
    cr_assert(ts_wait_state(b.port, "q", "long-1", "running", 5000, NULL));
    cr_assert_eq(rt_job_int(b.port, "long-0", "attempts"), 1, "not reaped");
    cr_assert_eq(rt_job_int(b.port, "long-1", "attempts"), 1, "not reaped");
    cr_expect_eq(flow_queue_int(b.port, "q", "counts", "running"), 2);
    cr_expect_eq(flow_queue_int(b.port, "q", "counts", "enqueued"), 1, "noop must wait");
    ts_jobd_stop(&b, SIGKILL, 5000);
}

/* --- max_depth --- */

/* On queue (max_depth 100, nothing running): 100 jobs fit, the 101st and a
 * batch crossing the bound are refused whole (429 with Retry-After 1..60),
 * a replay still answers, the view counts the depth. */
static void flow_fill_and_refuse(int port, const char *queue)
{
    char body[256];
    for (int i = 0; i < 99; i++) {
        snprintf(body, sizeof body, "{\"type\":\"noop\",\"id\":\"d-%d\"}", i);
        cr_assert_eq(flow_submit(port, queue, body), 202, "job %d", i);
    }
    /* 99 + 2 > 100: the batch is refused whole, nothing of it stored. */
    ts_resp r;
    flow_post(&r, port, queue,
              "[{\"type\":\"noop\",\"id\":\"x-1\"},{\"type\":\"noop\",\"id\":\"x-2\"}]");
    cr_assert_eq(r.status, 429, "%s", r.body);
    cr_expect_str_eq(ts_error_code(&r), "queue_full");
    ts_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/queues/%s/jobs/x-1", queue);
    cr_assert_eq(ts_get(&r, port, path), 0);
    cr_expect_eq(r.status, 404, "a refused batch stored x-1");
    ts_resp_free(&r);
    cr_assert_eq(flow_submit(port, queue, "{\"type\":\"noop\",\"id\":\"d-99\"}"), 202);
    /* The 101st. */
    flow_post(&r, port, queue, "{\"type\":\"noop\",\"id\":\"d-100\"}");
    cr_assert_eq(r.status, 429, "%s", r.body);
    cr_expect_str_eq(ts_error_code(&r), "queue_full");
    char ra[32];
    cr_assert_not_null(ts_resp_header(&r, "Retry-After", ra, sizeof ra));
    cr_expect(atoi(ra) >= 1 && atoi(ra) <= 60, "Retry-After %s", ra);
    ts_resp_free(&r);
    /* A replay of a stored id adds nothing: still answered. */
    cr_expect_eq(flow_submit(port, queue, "{\"type\":\"noop\",\"id\":\"d-5\"}"), 200);
    json_t *v = rt_queue_of(port, queue);
    json_t *l = json_object_get(v, "limits");
    cr_expect_eq(json_integer_value(json_object_get(l, "max_depth")), 100);
    cr_expect_eq(json_integer_value(json_object_get(l, "depth")), 100);
    json_decref(v);
}

/* After a drain (processed_total reaches 100) the queue takes jobs again. */
static void flow_accepts_after_drain(int port, const char *queue)
{
    cr_assert(flow_wait_processed(port, queue, 100, 10000), "not drained");
    cr_expect_eq(flow_submit(port, queue, "{\"type\":\"noop\",\"id\":\"d-100\"}"), 202);
}

/* An API-only jobd fills queue; a worker process drains it. */
static void flow_check_redis_depth(const char *queue)
{
    char prefix[32], api[2048], workers[2048];
    ts_unique(prefix);
    flow_config(api, sizeof api, prefix, 0, "\"max_depth\": 100", "");
    flow_config(workers, sizeof workers, prefix, 4, "\"max_depth\": 100", "");
    ts_jobd a, w;
    rt_jobd_up(&a, api, NULL);
    flow_fill_and_refuse(a.port, queue);
    rt_jobd_up(&w, workers, NULL);
    flow_accepts_after_drain(a.port, queue);
    ts_jobd_stop(&w, SIGTERM, 5000);
    ts_jobd_stop(&a, SIGTERM, 5000);
}

Test(flow, redis_max_depth_refuses_and_accepts_after_drain)
{
    flow_check_redis_depth("q");
}

Test(flow, aggregate_max_depth_refuses_and_accepts_after_drain)
{
    flow_check_redis_depth("agg");
}

Test(flow, inline_max_depth_refuses_and_accepts_after_drain)
{
    ts_jobd p[1];
    flow_up(p, 1, 2, "", "\"max_depth\": 100");
    ts_resp r;
    cr_assert_eq(ts_post(&r, p[0].port, "/queues/mem/pause", NULL), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    ts_resp_free(&r);
    flow_fill_and_refuse(p[0].port, "mem");
    cr_assert_eq(ts_post(&r, p[0].port, "/queues/mem/resume", NULL), 0);
    ts_resp_free(&r);
    flow_accepts_after_drain(p[0].port, "mem");
    flow_down(p, 1, SIGTERM);
}

/* ack: buffered answers 202 before Redis sees the jobs: jobs over max_depth
 * wait in the buffer (never dropped) and Redis never holds more than the
 * bound; once Redis refused them, new submissions get 429 until it takes
 * jobs again; all are stored and run once workers drain the queue. */
Test(flow, buffered_aggregate_keeps_jobs_over_max_depth)
{
    char prefix[32], api[2048], workers[2048];
    ts_unique(prefix);
    const char *fmt =
        "{\"workers\": %d, \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\", \"prefix\": \"%s\"},"
        " \"heartbeat\": 0.2, \"lease_expiry\": 1, \"poll_interval\": 0.05,"
        " \"queues\": {\"q\": {\"enqueue\": [{\"name\": \"aggregate\", \"ack\": \"buffered\"}],"
        "   \"dequeue\": [\"redis\"], \"max_depth\": 5}}}";
    snprintf(api, sizeof api, fmt, 0, ts_redis_port(), prefix);
    snprintf(workers, sizeof workers, fmt, 2, ts_redis_port(), prefix);
    ts_jobd a, w;
    rt_jobd_up(&a, api, NULL);
    char body[128];
    int accepted = 0;
    /* Redis fills to the bound and stays there; the jobs after it wait in
     * the buffer; once Redis refused one of them, submissions get 429. */
    long long deadline = ts_now_ms() + ts_patience(5000);
    ts_resp r = {0};
    bool refused = false;
    while (!refused && ts_now_ms() < deadline && accepted < 1000) {
        cr_assert_leq(flow_queue_int(a.port, "q", "limits", "depth"), 5);
        snprintf(body, sizeof body, "{\"type\":\"noop\",\"id\":\"b-%d\"}", accepted);
        flow_post(&r, a.port, "q", body);
        refused = r.status == 429;
        if (!refused) {
            cr_assert_eq(r.status, 202, "%s", r.body);
            accepted++;
            ts_resp_free(&r);
            ts_sleep_ms(20);
        }
    }
    cr_assert(refused, "no 429 while Redis refused the buffered jobs");
    cr_expect_geq(accepted, 6, "a 429 before Redis refused a buffered job");
    cr_log_info("buffered: the first 429 after %d jobs accepted (max_depth 5)", accepted);
    cr_expect_str_eq(ts_error_code(&r), "queue_full");
    char ra[32];
    cr_assert_not_null(ts_resp_header(&r, "Retry-After", ra, sizeof ra));
    cr_expect(atoi(ra) >= 1 && atoi(ra) <= 60, "Retry-After %s", ra);
    ts_resp_free(&r);
    cr_expect_eq(flow_queue_int(a.port, "q", "limits", "depth"), 5);
    rt_jobd_up(&w, workers, NULL);
    cr_assert(flow_wait_processed(a.port, "q", accepted, 15000),
              "buffered jobs were not stored and run");
    for (int i = 0; i < accepted; i++) {
        char id[16];
        snprintf(id, sizeof id, "b-%d", i);
        cr_expect(ts_wait_state(a.port, "q", id, "succeeded", 1000, NULL), "%s", id);
    }
    cr_expect_eq(flow_submit(a.port, "q", "{\"type\":\"noop\",\"id\":\"after\"}"), 202);
    ts_jobd_stop(&w, SIGTERM, 5000);
    ts_jobd_stop(&a, SIGTERM, 5000);
}

/* Concurrent submissions through two processes, to a plain and an
 * aggregate queue: exactly max_depth jobs are accepted, never more. */
typedef struct flow_racer {
    int port;
    const char *queue;
    int tag, ok, full;
} flow_racer;

static void *flow_race(void *arg)
{
    flow_racer *r = arg;
    for (int i = 0; i < 20; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"type\":\"noop\",\"id\":\"race-%d-%d\"}", r->tag, i);
        ts_resp resp;
        char path[64];
        snprintf(path, sizeof path, "/queues/%s/jobs", r->queue);
        if (ts_post(&resp, r->port, path, body) == 0) {
            r->ok += resp.status == 202;
            r->full += resp.status == 429;
        }
        ts_resp_free(&resp);
    }
    return NULL;
}

Test(flow, max_depth_holds_under_concurrent_submissions)
{
    ts_jobd p[2];
    flow_up(p, 2, 0, "\"max_depth\": 50", "");
    static const char *const queues[] = {"q", "agg"};
    for (size_t qi = 0; qi < 2; qi++) {
        flow_racer r[8];
        pthread_t th[8];
        for (int i = 0; i < 8; i++) {
            r[i] = (flow_racer){.port = p[i % 2].port, .queue = queues[qi], .tag = i};
            cr_assert_eq(pthread_create(&th[i], NULL, flow_race, &r[i]), 0);
        }
        int ok = 0, full = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            ok += r[i].ok;
            full += r[i].full;
        }
        cr_expect_eq(ok, 50, "%s: %d accepted of 160, max_depth 50", queues[qi], ok);
        cr_expect_eq(full, 110, "%s: %d refused", queues[qi], full);
        cr_expect_eq(flow_queue_int(p[1].port, queues[qi], "limits", "depth"), 50);
    }
    flow_down(p, 2, SIGTERM);
}
