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
