/* test_bounds.c - memory bounds end to end: the aggregate buffer bounded by
 * bytes (max_buffer_bytes), the inline store bounded by waiting jobs
 * (max_jobs) with list requests that stay bounded however many jobs it
 * holds. The real jobd binary over loopback HTTP. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/jobd.h"
#include "support.h"

static ts_jobd bounds_jobd;

static void bounds_fini(void)
{
    if (bounds_jobd.pid > 0)
        ts_jobd_stop(&bounds_jobd, SIGKILL, 5000);
}

TestSuite(bounds, .fini = bounds_fini, .timeout = 120);

static const char *bounds_message(const ts_resp *r)
{
    const char *s =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
    return s ? s : "";
}

/* A job whose args carry a string of n bytes. New memory; caller frees. */
static char *bounds_big_job(size_t n)
{
    char *body = malloc(n + 64);
    cr_assert_not_null(body);
    int k = sprintf(body, "{\"type\": \"noop\", \"args\": {\"pad\": \"");
    memset(body + k, 'x', n);
    strcpy(body + k + n, "\"}}");
    return body;
}

/* Defect 8: with ack buffered and Redis unreachable, the aggregate buffer
 * holds jobs up to max_buffer_bytes (not only max_buffer jobs), then answers
 * 503 with Retry-After at once. */
Test(bounds, aggregate_buffer_is_bounded_by_bytes)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"workers\": 0, \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\", \"timeout\": 0.2},"
             " \"queues\": {\"q\": {\"enqueue\": [{\"name\": \"aggregate\", \"ack\": \"buffered\","
             " \"max_buffer_bytes\": 65536}], \"dequeue\": [\"redis\"]}}}",
             ts_free_port()); /* nothing listens there: Redis is down */
    cr_assert_eq(ts_jobd_start(&bounds_jobd, cfg, NULL), 0, "jobd did not start");
    char *body = bounds_big_job(2000);
    int accepted = 0, refused = 0;
    ts_resp r = {0};
    for (int i = 0; i < 200 && !refused; i++) {
        ts_resp_free(&r);
        cr_assert_eq(ts_post(&r, bounds_jobd.port, "/queues/q/jobs", body), 0);
        if (r.status == 202)
            accepted++;
        else
            refused++;
    }
    cr_log_info("2 KB jobs buffered under max_buffer_bytes 65536: %d", accepted);
    /* A job of 2,000 bytes of args takes more than 2,000 and well under 4,000. */
    cr_expect_geq(accepted, 65536 / 4000, "accepted %d", accepted);
    cr_expect_leq(accepted, 65536 / 2000, "accepted %d", accepted);
    cr_assert_eq(r.status, 503, "status %ld after %d accepted", r.status, accepted);
    cr_expect_str_eq(ts_error_code(&r), "unavailable");
    cr_expect(strstr(bounds_message(&r), "max_buffer_bytes"), "message: %s", bounds_message(&r));
    char retry[16];
    cr_expect(ts_resp_header(&r, "Retry-After", retry, sizeof retry), "503 without Retry-After");
    cr_expect_lt(r.seconds, 1.0, "the refusal took %.3f s", r.seconds);
    ts_resp_free(&r);
    /* Small jobs still fit in what is left. */
    cr_assert_eq(ts_post(&r, bounds_jobd.port, "/queues/q/jobs", "{\"type\": \"noop\"}"), 0);
    cr_expect_eq(r.status, 202, "a small job after a refused big one: %ld", r.status);
    ts_resp_free(&r);
    free(body);
}

/* An inline queue "q" that runs nothing (workers 0), holding max_jobs waiting jobs. */
static void bounds_inline_up(int max_jobs)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"workers\": 0, \"queues\": {\"q\": {\"dequeue\": [{\"name\": \"inline\","
             " \"max_jobs\": %d}]}}}",
             max_jobs);
    cr_assert_eq(ts_jobd_start(&bounds_jobd, cfg, NULL), 0, "jobd did not start");
}

static long bounds_post(const char *body, ts_resp *keep)
{
    ts_resp r;
    cr_assert_eq(ts_post(&r, bounds_jobd.port, "/queues/q/jobs", body), 0, "no answer");
    long status = r.status;
    if (keep)
        *keep = r;
    else
        ts_resp_free(&r);
    return status;
}

static long bounds_enqueued(void)
{
    ts_resp r;
    cr_assert_eq(ts_get(&r, bounds_jobd.port, "/queues/q"), 0);
    json_t *n = json_object_get(json_object_get(r.json, "counts"), "enqueued");
    long v = json_is_integer(n) ? (long)json_integer_value(n) : -1;
    ts_resp_free(&r);
    return v;
}

/* Defect 7: an inline queue holds at most max_jobs waiting jobs; past it a
 * submission gets 503 with Retry-After, a batch that does not fit is refused
 * whole, and a replay of a known id is still answered. */
Test(bounds, inline_queue_holds_at_most_max_jobs)
{
    bounds_inline_up(50);
    char body[128];
    for (int i = 0; i < 49; i++) {
        snprintf(body, sizeof body, "{\"type\": \"noop\", \"id\": \"j%d\"}", i);
        cr_assert_eq(bounds_post(body, NULL), 202, "job %d", i);
    }
    ts_resp r;
    cr_assert_eq(bounds_post("[{\"type\": \"noop\"}, {\"type\": \"noop\"}]", &r), 503,
                 "a batch of 2 with room for 1");
    cr_expect_str_eq(ts_error_code(&r), "unavailable");
    cr_expect(strstr(bounds_message(&r), "max_jobs"), "message: %s", bounds_message(&r));
    char retry[16];
    cr_expect(ts_resp_header(&r, "Retry-After", retry, sizeof retry), "503 without Retry-After");
    ts_resp_free(&r);
    cr_expect_eq(bounds_enqueued(), 49, "part of a refused batch was stored");
    cr_expect_eq(bounds_post("{\"type\": \"noop\", \"id\": \"j49\"}", NULL), 202);
    cr_expect_eq(bounds_post("{\"type\": \"noop\", \"id\": \"j50\"}", NULL), 503);
    cr_expect_eq(bounds_post("{\"type\": \"noop\", \"id\": \"j7\"}", NULL), 200,
                 "a replay needs no room");
    cr_expect_eq(bounds_enqueued(), 50);
    /* Room again once a waiting job leaves. */
    ts_resp d;
    cr_assert_eq(ts_http(&d, "DELETE", bounds_jobd.port, "/queues/q/jobs/j0", NULL, NULL, NULL), 0);
    cr_expect_eq(d.status, 200);
    ts_resp_free(&d);
    cr_expect_eq(bounds_post("{\"type\": \"noop\", \"id\": \"j50\"}", NULL), 202);
}

#define BOUNDS_LISTED 3000

/* Defect 7: list requests on an inline queue look at a bounded part of its
 * index (limit + 1,000 jobs), however many it holds: a filter that matches
 * nothing answers page by page with a next_cursor instead of walking (and
 * sorting) everything at once; paging with a small limit still yields every
 * job exactly once, newest first. */
Test(bounds, inline_list_requests_are_bounded)
{
    bounds_inline_up(BOUNDS_LISTED);
    size_t cap = 1000 * 20 + 8;
    char *batch = malloc(cap);
    cr_assert_not_null(batch);
    for (int b = 0; b < BOUNDS_LISTED / 1000; b++) {
        size_t k = 0;
        batch[k++] = '[';
        for (int i = 0; i < 1000; i++)
            k += (size_t)sprintf(batch + k, "%s{\"type\":\"noop\"}", i ? "," : "");
        batch[k++] = ']';
        batch[k] = '\0';
        cr_assert_eq(bounds_post(batch, NULL), 202, "batch %d", b);
    }
    free(batch);

    /* Nothing is dead: each request looks at 1,010 jobs at most. */
    char path[256], cursor[128] = "";
    int pages = 0;
    long long t0 = ts_now_ms();
    for (; pages < 10; pages++) {
        snprintf(path, sizeof path, "/queues/q/jobs?state=dead&limit=10%s%s",
                 *cursor ? "&cursor=" : "", cursor);
        ts_resp r;
        cr_assert_eq(ts_get(&r, bounds_jobd.port, path), 0);
        cr_assert_eq(r.status, 200);
        cr_expect_eq(json_array_size(json_object_get(r.json, "jobs")), 0);
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        ts_resp_free(&r);
        if (!next)
            break;
    }
    cr_log_info("state=dead over %d jobs: %d requests, %lld ms", BOUNDS_LISTED, pages + 1,
                ts_now_ms() - t0);
    cr_expect_eq(pages + 1, (BOUNDS_LISTED + 1009) / 1010, "pages of an empty filter");

    /* Every job once, newest first (generated ids grow with creation). */
    json_t *seen = json_object();
    char prev[JOB_ID_MAX + 1] = "~";
    *cursor = '\0';
    for (int guard = 0; guard < BOUNDS_LISTED; guard++) {
        snprintf(path, sizeof path, "/queues/q/jobs?state=enqueued&limit=7%s%s",
                 *cursor ? "&cursor=" : "", cursor);
        ts_resp r;
        cr_assert_eq(ts_get(&r, bounds_jobd.port, path), 0);
        cr_assert_eq(r.status, 200);
        size_t i;
        json_t *v;
        json_array_foreach (json_object_get(r.json, "jobs"), i, v) {
            const char *id = json_string_value(json_object_get(v, "id"));
            cr_assert_not_null(id);
            cr_expect_lt(strcmp(id, prev), 0, "%s listed after %s", id, prev);
            cr_expect_null(json_object_get(seen, id), "%s listed twice", id);
            json_object_set_new(seen, id, json_true());
            snprintf(prev, sizeof prev, "%s", id);
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        ts_resp_free(&r);
        if (!next)
            break;
    }
    cr_expect_eq(json_object_size(seen), BOUNDS_LISTED);
    json_decref(seen);
}
