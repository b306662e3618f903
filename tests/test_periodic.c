/* test_periodic.c - periodic jobs end to end (queues/periodic.c): real jobd
 * processes on the suite's Redis, each test under a key prefix of its own.
 * One job per tick across three processes (with workers, --no-workers,
 * --no-http), also with their clocks set off by the test hook; no replay of
 * the ticks missed while no process ran, and catch_up's single latest tick;
 * a tick refused during a Redis outage giving way to the latest due one;
 * GET /periodic and POST /periodic/{name}/trigger; config errors. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/rfc3339.h"
#include "redis_test.h"
#include "support.h"

TestSuite(periodic, .fini = rt_cleanup, .timeout = 120);

#define PT_MAX_TICKS 256
#define PT_POLL_MS 50

/* A config with a Redis queue "q" and an inline queue "local" under prefix,
 * and the schedules given (the body of the "periodic" object), into buf. */
static void pt_config(char *buf, size_t len, const char *prefix, const char *schedules)
{
    snprintf(buf, len,
             "{\"redis\": {\"url\": \"redis://127.0.0.1:@REDIS_PORT@/0\", \"prefix\": \"%s\","
             " \"timeout\": 0.5},"
             " \"workers\": 2, \"heartbeat\": 0.2, \"lease_expiry\": 1, \"poll_interval\": 0.05,"
             " \"shutdown_timeout\": 1,"
             " \"queues\": {\"q\": {\"dequeue\": [\"redis\"]}, \"local\": {\"dequeue\": [\"inline\"]}},"
             " \"periodic\": {%s}}",
             prefix, schedules);
}

/* pt_config on the Redis at port instead of the suite's. */
static void pt_config_port(char *buf, size_t len, const char *prefix, const char *schedules,
                           int port)
{
    char tmpl[2048], num[16];
    pt_config(tmpl, sizeof tmpl, prefix, schedules);
    snprintf(num, sizeof num, "%d", port);
    char *at = strstr(tmpl, "@REDIS_PORT@");
    cr_assert(at);
    snprintf(buf, len, "%.*s%s%s", (int)(at - tmpl), tmpl, num, at + strlen("@REDIS_PORT@"));
}

static redisContext *pt_redis_at(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    cr_assert(c && !c->err, "cannot reach Redis on port %d", port);
    return c;
}

static redisContext *pt_redis(void)
{
    return pt_redis_at(ts_redis_port());
}


static long long pt_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The ticks seen so far: the job ids periodic:<name>:<tick> of queue q, and
 * when (host clock, the same as Redis's here) each was first seen. */
typedef struct pt_seen {
    int64_t tick[PT_MAX_TICKS];
    long long first_seen[PT_MAX_TICKS];
    size_t n;
    size_t others; /* ids of the schedule that are not ticks (triggers) */
} pt_seen;

/* Reads the job ids of queue q under prefix and adds the new ticks of
 * schedule name to s. */
static void pt_scan(redisContext *c, const char *prefix, const char *name, pt_seen *s)
{
    char head[128];
    snprintf(head, sizeof head, "periodic:%s:", name);
    redisReply *r = redisCommand(c, "HKEYS %s:{q}:jobs:v", prefix);
    long long now = pt_wall_ms();
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "HKEYS failed");
    s->others = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const char *id = r->element[i]->str;
        int64_t ms;
        if (strncmp(id, head, strlen(head)) != 0)
            continue;
        if (rfc3339_parse(id + strlen(head), &ms) != 0) {
            s->others++;
            continue;
        }
        size_t k = 0;
        while (k < s->n && s->tick[k] != ms)
            k++;
        if (k == s->n && s->n < PT_MAX_TICKS) {
            s->tick[s->n] = ms;
            s->first_seen[s->n++] = now;
        }
    }
    freeReplyObject(r);
}

/* Polls every PT_POLL_MS for ms, recording ticks. */
static void pt_watch(redisContext *c, const char *prefix, const char *name, pt_seen *s, int ms)
{
    long long end = ts_now_ms() + ms;
    while (ts_now_ms() < end) {
        pt_scan(c, prefix, name, s);
        rt_sleep_ms(PT_POLL_MS);
    }
    pt_scan(c, prefix, name, s);
}

static size_t pt_count_in(const pt_seen *s, long long from, long long to)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->tick[i] >= from && s->tick[i] < to;
    return n;
}

/* Three processes enqueue an every-1-s schedule of a Redis queue for 6 s:
 * 6 +- 1 jobs, one per tick, every tick of the window present, none enqueued
 * before its tick (Redis's clock decides, not the hosts'), and each run
 * once. offsets: the test clock hook of each process (NULL = none). */
static void pt_three_processes(const char *const offsets[3])
{
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    pt_config(cfg, sizeof cfg, prefix, "\"tick\": {\"every\": 1, \"queue\": \"q\", \"type\": \"noop\"}");
    static const char *const modes[3][2] = {{NULL}, {"--no-workers", NULL}, {"--no-http", NULL}};
    ts_jobd j[3];
    for (int i = 0; i < 3; i++) {
        if (offsets[i])
            setenv("JOBD_TEST_CLOCK_OFFSET_MS", offsets[i], 1);
        else
            unsetenv("JOBD_TEST_CLOCK_OFFSET_MS");
        rt_jobd_up(&j[i], cfg, modes[i][0] ? modes[i] : NULL);
    }
    unsetenv("JOBD_TEST_CLOCK_OFFSET_MS");
    redisContext *c = pt_redis();
    pt_seen s = {0};
    pt_watch(c, prefix, "tick", &s, 1500); /* every process is past its first round */
    long long t0 = (pt_wall_ms() / 1000 + 1) * 1000;
    pt_watch(c, prefix, "tick", &s, (int)(t0 + 6000 - pt_wall_ms()) + 1500);
    size_t in_window = pt_count_in(&s, t0, t0 + 6000);
    cr_expect(in_window >= 5 && in_window <= 7, "%zu jobs for the 6 s from %lld", in_window, t0);
    for (long long t = t0; t < t0 + 6000; t += 1000)
        cr_expect_eq(pt_count_in(&s, t, t + 1), 1, "tick %lld: no job", t);
    long long late_max = 0;
    for (size_t i = 0; i < s.n; i++) { /* a poll sees a job at most PT_POLL_MS late, never early */
        cr_expect_geq(s.first_seen[i], s.tick[i] - 20, "tick %lld seen %lld ms early",
                      (long long)s.tick[i], (long long)(s.tick[i] - s.first_seen[i]));
        if (s.tick[i] >= t0 && s.first_seen[i] - s.tick[i] > late_max)
            late_max = s.first_seen[i] - s.tick[i];
    }
    fprintf(stderr, "periodic: clock offsets %s/%s/%s ms: %zu jobs for the 6 s window, each "
            "seen at most %lld ms after its tick\n", offsets[0] ? offsets[0] : "0",
            offsets[1] ? offsets[1] : "0", offsets[2] ? offsets[2] : "0", in_window, late_max);
    for (int i = 2; i >= 0; i--)
        cr_expect_eq(ts_jobd_stop(&j[i], SIGTERM, ts_patience(10000)), 0);
    pt_scan(c, prefix, "tick", &s); /* a tick may have come during the stops */
    /* Every tick's job ran once: processed_total counts runs of the queue. */
    redisReply *r = redisCommand(c, "HLEN %s:{q}:jobs:v", prefix);
    long long jobs = r ? r->integer : -1;
    freeReplyObject(r);
    cr_expect_eq(jobs, (long long)s.n, "%lld jobs in the queue, %zu ticks", jobs, s.n);
    r = redisCommand(c, "GET %s:{q}:processed", prefix);
    long long processed = r && r->str ? atoll(r->str) : 0;
    freeReplyObject(r);
    cr_expect_leq(processed, (long long)s.n, "%lld runs for %zu ticks", processed, s.n);
    redisFree(c);
}

Test(periodic, three_processes_one_job_per_tick)
{
    static const char *const none[3] = {NULL, NULL, NULL};
    pt_three_processes(none);
}

Test(periodic, three_processes_with_clocks_off_by_3s)
{
    static const char *const skewed[3] = {"3000", NULL, "-3000"};
    pt_three_processes(skewed);
}

/* Waits until a job of schedule name with a tick >= from exists; true if so. */
static bool pt_wait_tick(redisContext *c, const char *prefix, const char *name, pt_seen *s,
                         long long from, int timeout_ms)
{
    long long end = ts_now_ms() + ts_patience(timeout_ms);
    while (ts_now_ms() < end) {
        pt_scan(c, prefix, name, s);
        for (size_t i = 0; i < s->n; i++)
            if (s->tick[i] >= from)
                return true;
        rt_sleep_ms(PT_POLL_MS);
    }
    return false;
}

/* Polls j's log until it holds needle or timeout_ms (ts_patience
 * applied) passes. True when it does. */
static bool pt_wait_log(const ts_jobd *j, const char *needle, int timeout_ms)
{
    long long end = ts_now_ms() + ts_patience(timeout_ms);
    while (!ts_log_contains(j, needle) && ts_now_ms() < end)
        rt_sleep_ms(PT_POLL_MS);
    return ts_log_contains(j, needle);
}

Test(periodic, restart_does_not_replay_missed_ticks)
{
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    pt_config(cfg, sizeof cfg, prefix, "\"tick\": {\"every\": 1, \"queue\": \"q\", \"type\": \"noop\"}");
    redisContext *c = pt_redis();
    pt_seen s = {0};
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    cr_assert(pt_wait_tick(c, prefix, "tick", &s, 0, 5000));
    cr_assert(pt_wait_tick(c, prefix, "tick", &s, s.tick[0] + 1000, 5000));
    cr_assert_eq(ts_jobd_stop(&j, SIGTERM, ts_patience(10000)), 0);
    long long stopped = pt_wall_ms();
    rt_sleep_ms(4000); /* ticks pass with no process running */
    long long restarted = pt_wall_ms();
    rt_jobd_up(&j, cfg, NULL);
    cr_assert(pt_wait_tick(c, prefix, "tick", &s, restarted, 5000), "no tick after the restart");
    /* What it recorded is read back: the first tick after the restart is
     * the current one, none of those while it was down. */
    cr_expect_eq(pt_count_in(&s, stopped + 1000, restarted - 1000), 0,
                 "a tick missed while no process ran was enqueued");
    /* logged once the scheduler has the outcome, after the job is in Redis */
    cr_expect(pt_wait_log(&j, "periodic.enqueued", 5000));
    cr_expect_eq(ts_jobd_stop(&j, SIGTERM, ts_patience(10000)), 0);
    redisFree(c);
}

/* With the record of a tick 5 minutes old in Redis (the last process
 * stopped then), a process starting with catch_up enqueues only the latest
 * missed tick; without catch_up none. Ticks are whole minutes (every: 60). */
static void pt_catch_up(bool catch_up)
{
    char prefix[32], cfg[2048], sched[256];
    ts_unique(prefix);
    snprintf(sched, sizeof sched,
             "\"cu\": {\"every\": 60, \"queue\": \"q\", \"type\": \"noop\", \"catch_up\": %s}",
             catch_up ? "true" : "false");
    pt_config(cfg, sizeof cfg, prefix, sched);
    /* The latest tick must be missed, not on time (2.5 s), and stay the
     * latest during the test: start between 5 s and 40 s past a minute. */
    while (pt_wall_ms() % 60000 < 5000 || pt_wall_ms() % 60000 > 40000)
        rt_sleep_ms(200);
    long long latest = pt_wall_ms() / 60000 * 60000;
    redisContext *c = pt_redis();
    redisReply *r = redisCommand(c, "ZADD %s:{q}:periodic %lld cu", prefix, latest - 5 * 60000);
    freeReplyObject(r);
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    pt_seen s = {0};
    if (catch_up) {
        cr_assert(pt_wait_tick(c, prefix, "cu", &s, latest, 5000), "the latest missed tick");
        pt_watch(c, prefix, "cu", &s, 1000);
        cr_expect_eq(s.n, 1, "%zu ticks caught up, not 1", s.n);
        cr_expect_eq(s.tick[0], latest);
    } else {
        cr_expect(pt_wait_log(&j, "periodic.missed", 5000));
        pt_watch(c, prefix, "cu", &s, 1000);
        cr_expect_eq(s.n, 0, "%zu missed ticks replayed without catch_up", s.n);
    }
    cr_expect_eq(ts_jobd_stop(&j, SIGTERM, ts_patience(10000)), 0);
    redisFree(c);
}

Test(periodic, catch_up_enqueues_only_the_latest_missed_tick)
{
    pt_catch_up(true);
}

Test(periodic, without_catch_up_missed_ticks_are_not_replayed)
{
    pt_catch_up(false);
}

Test(periodic, list_and_trigger)
{
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    pt_config(cfg, sizeof cfg, prefix,
              "\"nightly-report\": {\"cron\": \"0 3 * * *\", \"timezone\": \"Europe/Berlin\","
              " \"queue\": \"q\", \"type\": \"echo\", \"args\": {\"format\": \"pdf\"}, \"max_attempts\": 3},"
              " \"ping\": {\"every\": 1, \"queue\": \"local\", \"type\": \"noop\"}");
    ts_jobd j;
    rt_jobd_up(&j, cfg, NULL);
    /* ping (inline) ticks in this process: wait for its first. */
    ts_resp r;
    long long end = ts_now_ms() + ts_patience(5000);
    json_t *ping = NULL;
    do {
        rt_sleep_ms(PT_POLL_MS);
        cr_assert_eq(ts_get(&r, j.port, "/periodic"), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        ping = json_array_get(json_object_get(r.json, "periodic"), 1);
        if (json_is_string(json_object_get(ping, "last_job_id")))
            break;
        ts_resp_free(&r);
    } while (ts_now_ms() < end);
    json_t *list = json_object_get(r.json, "periodic");
    cr_assert_eq(json_array_size(list), 2, "%s", r.body);
    json_t *nightly = json_array_get(list, 0);
    cr_expect_str_eq(json_string_value(json_object_get(nightly, "name")), "nightly-report");
    cr_expect_str_eq(json_string_value(json_object_get(nightly, "cron")), "0 3 * * *");
    cr_expect_str_eq(json_string_value(json_object_get(nightly, "timezone")), "Europe/Berlin");
    cr_expect_str_eq(json_string_value(json_object_get(nightly, "queue")), "q");
    cr_expect_str_eq(json_string_value(json_object_get(nightly, "type")), "echo");
    cr_expect(json_is_null(json_object_get(nightly, "last_tick_at")));
    cr_expect(json_is_null(json_object_get(nightly, "last_job_id")));
    /* 03:00 in Berlin is 01:00Z or 02:00Z. */
    const char *next = json_string_value(json_object_get(nightly, "next_run_at"));
    cr_assert(next, "%s", r.body);
    cr_expect(strstr(next, "T02:00:00.000Z") || strstr(next, "T01:00:00.000Z"), "%s", next);
    cr_expect_null(json_object_get(nightly, "every"));
    ping = json_array_get(list, 1);
    cr_expect_eq(json_integer_value(json_object_get(ping, "every")), 1);
    cr_expect_null(json_object_get(ping, "cron"));
    const char *last_id = json_string_value(json_object_get(ping, "last_job_id"));
    const char *last_at = json_string_value(json_object_get(ping, "last_tick_at"));
    cr_assert(last_id && last_at, "%s", r.body);
    cr_expect_eq(strncmp(last_id, "periodic:ping:", 14), 0, "%s", last_id);
    cr_expect_eq(strncmp(last_at, last_id + 14, 19), 0, "%s vs %s", last_at, last_id);
    ts_resp_free(&r);

    /* Trigger: 202, the job view with a trigger id (not a tick), Location. */
    cr_assert_eq(ts_post(&r, j.port, "/periodic/nightly-report/trigger", NULL), 0);
    cr_expect_eq(r.status, 202, "%s", r.body);
    const char *id = json_string_value(json_object_get(r.json, "id"));
    cr_assert(id, "%s", r.body);
    cr_expect_eq(strncmp(id, "periodic:nightly-report:trigger:", 32), 0, "%s", id);
    cr_expect_eq(strlen(id), 32 + 26);
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "queue")), "q");
    cr_expect_str_eq(json_string_value(json_object_get(r.json, "type")), "echo");
    cr_expect_eq(json_integer_value(json_object_get(r.json, "max_attempts")), 3);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(r.json, "args"), "format")),
                     "pdf");
    char loc[256], want[256];
    snprintf(want, sizeof want, "/queues/q/jobs/%s", id);
    cr_expect_str_eq(ts_resp_header(&r, "Location", loc, sizeof loc), want);
    char job_id[160];
    snprintf(job_id, sizeof job_id, "%s", id);
    ts_resp_free(&r);
    cr_expect(ts_wait_state(j.port, "q", job_id, "succeeded", 5000, NULL), "%s did not run", job_id);
    /* Not counted as a tick. */
    cr_assert_eq(ts_get(&r, j.port, "/periodic"), 0);
    nightly = json_array_get(json_object_get(r.json, "periodic"), 0);
    cr_expect(json_is_null(json_object_get(nightly, "last_tick_at")), "%s", r.body);
    ts_resp_free(&r);
    /* The metrics count the trigger's job and the ticks' jobs as submitted. */
    cr_assert_eq(ts_get(&r, j.port, "/metrics"), 0);
    const char *q_sub = strstr(r.body, "jobd_jobs_submitted_total{queue=\"q\"} ");
    const char *local_sub = strstr(r.body, "jobd_jobs_submitted_total{queue=\"local\"} ");
    cr_expect(q_sub && strtol(q_sub + strlen("jobd_jobs_submitted_total{queue=\"q\"} "), NULL, 10) == 1,
              "%s", r.body);
    cr_expect(local_sub &&
                  strtol(local_sub + strlen("jobd_jobs_submitted_total{queue=\"local\"} "), NULL, 10) >= 1,
              "%s", r.body);
    ts_resp_free(&r);

    /* 404 unknown_periodic, for an unknown and an impossible name; 405. */
    cr_assert_eq(ts_post(&r, j.port, "/periodic/nope/trigger", NULL), 0);
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(ts_error_code(&r), "unknown_periodic");
    ts_resp_free(&r);
    cr_assert_eq(ts_post(&r, j.port, "/periodic/a.b/trigger", NULL), 0);
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(ts_error_code(&r), "unknown_periodic");
    ts_resp_free(&r);
    cr_assert_eq(ts_get(&r, j.port, "/periodic/ping/trigger"), 0);
    cr_expect_eq(r.status, 405);
    ts_resp_free(&r);
    cr_expect_eq(ts_jobd_stop(&j, SIGTERM, ts_patience(10000)), 0);
}

/* The id after the first needle in j's log at or after from (NULL = the
 * start), into id; polls until there is one or timeout_ms (ts_patience
 * applied) passes. True when there is one. */
static bool pt_log_id(const ts_jobd *j, const char *from, const char *needle, char *id,
                      size_t len, int timeout_ms)
{
    long long end = ts_now_ms() + ts_patience(timeout_ms);
    for (;;) {
        char *log = ts_read_file(j->log_path, NULL);
        cr_assert_not_null(log);
        const char *at = from ? strstr(log, from) : log;
        const char *hit = at ? strstr(at, needle) : NULL;
        if (hit) {
            const char *v = hit + strlen(needle);
            size_t n = strcspn(v, " \n");
            snprintf(id, len, "%.*s", (int)(n < len ? n : len - 1), v);
            free(log);
            return true;
        }
        free(log);
        if (ts_now_ms() >= end)
            return false;
        rt_sleep_ms(PT_POLL_MS);
    }
}

/* A tick refused while Redis is down is tried again each second until a
 * later tick comes due, then that one is tried instead: after a 6 s outage
 * of an every-1-s schedule the first refused tick is logged missed, and the
 * tick stored once Redis is back is a recent one, with none of the refused
 * ticks between them replayed. */
Test(periodic, a_tick_refused_while_redis_is_down_is_retried)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    rt_redis r;
    rt_redis_start(&r, aof);
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    pt_config_port(cfg, sizeof cfg, prefix,
                   "\"tick\": {\"every\": 1, \"queue\": \"q\", \"type\": \"noop\"}", r.port);
    ts_jobd j;
    /* verbose: a retry answered as a replay (the refused write had reached
     * Redis as it went down) logs its periodic.enqueued line too */
    static const char *const verbose[] = {"--verbose", NULL};
    rt_jobd_up(&j, cfg, verbose);
    redisContext *c = pt_redis_at(r.port);
    pt_seen s = {0};
    cr_assert(pt_wait_tick(c, prefix, "tick", &s, 0, 5000));
    redisFree(c);
    rt_redis_kill(&r, SIGTERM);
    long long down = pt_wall_ms();
    rt_sleep_ms(6000);
    rt_redis_restart(&r);
    c = pt_redis_at(r.port);
    cr_assert(pt_wait_tick(c, prefix, "tick", &s, down + 7000, 8000), "no tick after the outage");
    /* The first tick refused (due when Redis went away, whether it came just
     * before the kill returned or after) and the first tick enqueued after it. */
    char refused[160], stored[160], missed[200];
    cr_assert(pt_log_id(&j, NULL, "periodic.refused id=", refused, sizeof refused, 5000),
              "no periodic.refused line");
    cr_assert(pt_log_id(&j, "periodic.refused id=", "periodic.enqueued id=", stored,
                        sizeof stored, 5000), "nothing enqueued after %s", refused);
    snprintf(missed, sizeof missed, "tick %s was refused", refused);
    cr_expect(pt_wait_log(&j, missed, 5000), "%s is not logged periodic.missed", refused);
    int64_t first = 0, tick = 0;
    cr_assert_eq(rfc3339_parse(refused + strlen("periodic:tick:"), &first), 0, "%s", refused);
    cr_assert_eq(rfc3339_parse(stored + strlen("periodic:tick:"), &tick), 0, "%s", stored);
    pt_scan(c, prefix, "tick", &s);
    cr_expect_eq(pt_count_in(&s, tick, tick + 1), 1, "%s is not in Redis", stored);
    /* Redis came back 6 s after the kill; the stored tick was due at most
     * a retry (1 s) and a redis.timeout before a submission reached it. */
    cr_expect_geq(tick, down + 4000, "%s, stored after the outage, is old (down at %lld)", stored,
                  down);
    cr_expect_geq(tick, first + 3000, "%s is not later than the first refused %s", stored,
                  refused);
    cr_expect_eq(pt_count_in(&s, first + 1000, tick), 0,
                 "a tick refused during the outage was replayed");
    cr_expect_eq(ts_jobd_stop(&j, SIGTERM, ts_patience(10000)), 0);
    redisFree(c);
    rt_redis_kill(&r, SIGTERM);
}

/* The ids of the jobs of the inline queue "local" of j that start with
 * periodic:<name>: (new reference: an object used as a set). */
static json_t *pt_local_ticks(const ts_jobd *j, const char *name)
{
    ts_resp r;
    json_t *set = json_object();
    char head[128];
    snprintf(head, sizeof head, "periodic:%s:", name);
    cr_assert_eq(ts_get(&r, j->port, "/queues/local/jobs?limit=1000"), 0);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r.json, "jobs"), i, v) {
        const char *id = json_string_value(json_object_get(v, "id"));
        if (id && strncmp(id, head, strlen(head)) == 0)
            json_object_set_new(set, id, json_true());
    }
    ts_resp_free(&r);
    return set;
}

/* An inline queue's schedule runs in each process that has the queue: two
 * processes, each its own job per tick. */
Test(periodic, inline_queue_runs_in_every_process)
{
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    pt_config(cfg, sizeof cfg, prefix, "\"lt\": {\"every\": 1, \"queue\": \"local\", \"type\": \"noop\"}");
    ts_jobd a, b;
    rt_jobd_up(&a, cfg, NULL);
    rt_jobd_up(&b, cfg, NULL);
    long long end = ts_now_ms() + ts_patience(8000);
    size_t common = 0;
    while (common < 2 && ts_now_ms() < end) {
        rt_sleep_ms(200);
        json_t *ta = pt_local_ticks(&a, "lt"), *tb = pt_local_ticks(&b, "lt");
        const char *id;
        json_t *v;
        common = 0;
        json_object_foreach(ta, id, v)
            common += json_object_get(tb, id) != NULL;
        json_decref(ta);
        json_decref(tb);
    }
    cr_expect_geq(common, 2, "the same ticks were not enqueued in both processes");
    cr_expect_eq(ts_jobd_stop(&b, SIGTERM, ts_patience(10000)), 0);
    cr_expect_eq(ts_jobd_stop(&a, SIGTERM, ts_patience(10000)), 0);
}

Test(periodic, config_errors_name_the_path)
{
    static const struct {
        char sched[200], message[160];
    } cases[] = {
        {"\"nightly-report\": {\"cron\": \"0 24 * * *\", \"queue\": \"q\", \"type\": \"noop\"}",
         "periodic.nightly-report.cron: field 2 (hour): 24 is out of range 0-23"},
        {"\"p\": {\"cron\": \"@daily\", \"timezone\": \"Mars/Olympus_Mons\", \"queue\": \"q\","
         " \"type\": \"noop\"}",
         "periodic.p.timezone: unknown time zone \"Mars/Olympus_Mons\""},
        {"\"p\": {\"every\": 5, \"queue\": \"nope\", \"type\": \"noop\"}",
         "periodic.p.queue: unknown queue \"nope\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char prefix[32], cfg[2048], path[512], log[512];
        ts_unique(prefix);
        pt_config(cfg, sizeof cfg, prefix, cases[i].sched);
        snprintf(path, sizeof path, "%s/periodic_%s.json", ts_tmpdir(), prefix);
        FILE *f = fopen(path, "w");
        cr_assert(f);
        fputs(cfg, f);
        fclose(f);
        const char *args[] = {"--check-config", "--config", path, NULL};
        cr_expect_eq(ts_jobd_run(args, 5000, log, sizeof log), 2);
        char *text = ts_read_file(log, NULL);
        cr_expect(text && strstr(text, cases[i].message), "%s: %s", cases[i].message, text);
        free(text);
        remove(path);
    }
}
