/* test_job_text.c - the job view and payload written as text without a
 * jansson tree (job_view_text, job_payload): byte for byte what jansson's
 * compact dump of the tree gives, for every field, escape and kind of args,
 * including every valid request of tests/data/jobs and random args. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/job.h"
#include "../util/rfc3339.h"

#define JT_DATA "tests/data/jobs/valid"
#define JT_NOW 1795860000000LL /* 2026-11-28T10:00:00.000Z */
#define JT_RANDOM_CASES 500

TestSuite(job_text);

/* ---- helpers --------------------------------------------------------- */

/* What job_view_text stands for: jansson's compact dump of job_view. */
static void jt_expect_view_text(const job_t *job, const char *what)
{
    json_t *view = job_view(job);
    cr_assert_not_null(view, "%s: no view", what);
    char *want = json_dumps(view, JSON_COMPACT);
    size_t len = 0;
    char *got = job_view_text(job, &len);
    cr_assert_not_null(want, "%s: jansson cannot dump the view", what);
    cr_assert_not_null(got, "%s: no view text", what);
    cr_expect_str_eq(got, want, "%s", what);
    cr_expect_eq(len, strlen(got), "%s: length", what);
    free(got);
    free(want);
    json_decref(view);
}

/* The payload as jansson writes it: the reference for job_payload. */
static char *jt_payload_reference(const job_t *job)
{
    char created[32], scheduled[32];
    rfc3339_format(job->created_at, created);
    rfc3339_format(job->scheduled_at, scheduled);
    json_t *o = json_pack("{s:s,s:s,s:s,s:O,s:I,s:o,s:o}", "id", job->id, "queue", job->queue,
                          "type", job->type, "args", job->args, "attempt",
                          (json_int_t)job->attempts + 1, "scheduled_at",
                          job->scheduled_at ? json_string(scheduled) : json_null(), "created_at",
                          job->created_at ? json_string(created) : json_null());
    cr_assert_not_null(o);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static void jt_expect_payload(const job_t *job, const char *what)
{
    char *want = jt_payload_reference(job);
    size_t len = 0;
    char *got = job_payload(job, &len);
    cr_assert_not_null(got, "%s: no payload", what);
    cr_expect_str_eq(got, want, "%s", what);
    cr_expect_eq(len, strlen(got), "%s: length", what);
    free(got);
    free(want);
}

static job_t *jt_job(const char *type, json_t *args)
{
    job_t *job = job_new();
    cr_assert_not_null(job);
    strcpy(job->id, "01JDX3V8C2S9G7Q5M4N2P1R0TZ");
    strcpy(job->queue, "default");
    snprintf(job->type, sizeof job->type, "%s", type);
    json_decref(job->args);
    job->args = args;
    job->created_at = JT_NOW;
    return job;
}

/* Every control character, quote, backslash, DEL, and UTF-8 of 2, 3 and 4 bytes. */
static void jt_awkward_string(char *buf, size_t size)
{
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        buf[n++] = (char)c;
    const char *rest = "\"\\/\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end";
    cr_assert_lt(n + strlen(rest), size);
    strcpy(buf + n, rest);
}

/* ---- fields ---------------------------------------------------------- */

Test(job_text, every_field_set)
{
    job_t *job = jt_job("send_email", json_pack("{s:s,s:[i,f,b,n],s:{}}", "to", "a@example.com",
                                                "list", 1, 2.5, 1, "empty"));
    job->scheduled_at = JT_NOW + 60000;
    job->run_at = JT_NOW + 90123;
    job->started_at = JT_NOW + 95001;
    job->finished_at = JT_NOW + 96999;
    job->attempts = 3;
    job->max_attempts = 5;
    job->timeout = 2.25;
    job_set_error(job, "HTTP 500: caf\xc3\xa9 \"down\"\nline 2");
    for (int s = 0; s < JOB_STATE_COUNT; s++) {
        job->state = (job_state)s;
        jt_expect_view_text(job, job_state_name(job->state));
    }
    jt_expect_payload(job, "full");
    job_free(job);
}

Test(job_text, trace_context_fields)
{
    job_t *job = jt_job("t", json_null());
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    cr_assert_eq(job_set_trace(job, tp, NULL), 0);
    jt_expect_view_text(job, "traceparent only");
    cr_assert_eq(job_set_trace(job, tp, "congo=t61rcWkgMzE,a=\"x\\y\""), 0);
    jt_expect_view_text(job, "with tracestate");
    jt_expect_payload(job, "traced");
    char *text = job_view_text(job, NULL);
    json_t *view = json_loads(text, 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(view, "trace_id")),
                     "4bf92f3577b34da6a3ce929d0e0e4736");
    job_t *back = job_from_view(view);
    cr_assert_not_null(back, "the record does not read back");
    cr_assert_not_null(back->trace);
    cr_expect_str_eq(back->trace->parent, tp);
    cr_expect_str_eq(back->trace->state, "congo=t61rcWkgMzE,a=\"x\\y\"");
    job_t *copy = job_dup(back);
    cr_assert_not_null(copy->trace);
    cr_expect_str_eq(copy->trace->state, back->trace->state);
    cr_expect_neq(copy->trace, back->trace, "the copy shares its trace context");
    job_free(copy);
    job_free(back);
    json_decref(view);
    free(text);
    job_free(job);
}

Test(job_text, unset_fields_are_null_or_absent)
{
    job_t *job = jt_job("t", json_null());
    jt_expect_view_text(job, "unset");
    jt_expect_payload(job, "unset");
    char *text = job_view_text(job, NULL);
    cr_assert_not_null(text);
    cr_expect_null(strstr(text, "run_at"), "%s", text);
    cr_expect_null(strstr(text, "timeout"), "%s", text);
    cr_expect_not_null(strstr(text, "\"max_attempts\":null"), "%s", text);
    free(text);
    job_free(job);
}

Test(job_text, escapes_as_jansson_does)
{
    char s[128];
    jt_awkward_string(s, sizeof s);
    json_t *args = json_object();
    json_object_set_new(args, s, json_string(s));
    json_object_setn_new(args, "nul\0key", 7, json_stringn("a\0b", 3));
    job_t *job = jt_job(s, args);
    job_set_error(job, s);
    jt_expect_view_text(job, "awkward strings");
    jt_expect_payload(job, "awkward strings");
    job_free(job);
}

Test(job_text, numbers_and_literals)
{
    json_t *args = json_pack("[I,I,I,I,f,f,f,f,f,f,f,b,b,n,[],{},[[[]]]]", (json_int_t)0,
                             (json_int_t)-1, (json_int_t)INT64_MAX, (json_int_t)INT64_MIN, 0.1,
                             -0.0, 1e300, 1e-7, 100.0, 123456789.125, -2.5e-300, 1, 0);
    cr_assert_not_null(args);
    job_t *job = jt_job("numbers", args);
    job->attempts = INT32_MAX - 1;
    job->max_attempts = 1000;
    job->timeout = 31536000.0;
    jt_expect_view_text(job, "numbers");
    jt_expect_payload(job, "numbers");
    job->timeout = 0.001;
    jt_expect_view_text(job, "small timeout");
    job_free(job);
}

Test(job_text, times_across_the_range)
{
    static const int64_t times[] = {1, -1, 86399999, -86400000, 951782400000LL /* 2000-02-29 */,
                                    253402300799999LL /* 9999-12-31 */, 253402300800000LL,
                                    -62135596800000LL /* 0001-01-01 */, -62198755200001LL};
    job_t *job = jt_job("times", json_null());
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        char what[64];
        snprintf(what, sizeof what, "ms %lld", (long long)times[i]);
        job->created_at = job->scheduled_at = job->run_at = times[i];
        job->started_at = job->finished_at = times[i];
        jt_expect_view_text(job, what);
        jt_expect_payload(job, what);
    }
    job_free(job);
}

/* Years outside 0000..9999 leave the fixed-width path: they read as printf wrote them. */
Test(job_text, times_outside_four_digit_years)
{
    static const struct {
        int64_t ms;
        char text[32];
    } cases[] = {
        {253402300800000LL, "10000-01-01T00:00:00.000Z"},
        {-62135596800001LL, "0000-12-31T23:59:59.999Z"},
        {-62167219200001LL, "-001-12-31T23:59:59.999Z"},
        {3155760000000000LL, "101972-01-21T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[32];
        rfc3339_format(cases[i].ms, buf);
        cr_expect_str_eq(buf, cases[i].text, "%lld", (long long)cases[i].ms);
    }
}

/* ---- every valid request, random args -------------------------------- */

Test(job_text, every_valid_request)
{
    DIR *d = opendir(JT_DATA);
    cr_assert_not_null(d, "cannot open %s (run from the repository root)", JT_DATA);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", JT_DATA, e->d_name);
        json_t *body = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
        cr_assert_not_null(body, "%s", path);
        ulid_gen ids;
        ulid_init(&ids);
        job_t *job = job_from_request(body, "default", NULL, &ids, JT_NOW, NULL);
        if (job) { /* a few cases need an Idempotency-Key; the rest cover enough */
            jt_expect_view_text(job, e->d_name);
            jt_expect_payload(job, e->d_name);
            n++;
        }
        job_free(job);
        ulid_destroy(&ids);
        json_decref(body);
    }
    closedir(d);
    cr_expect(n >= 20, "only %d cases", n);
}

/* A deterministic generator, so a failing case can be replayed. */
static uint32_t jt_next(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*state >> 33);
}

static json_t *jt_random_value(uint64_t *rng, int depth)
{
    static const char pieces[][8] = {"a", "\"", "\\", "\n", "\x01", "\xc3\xa9", " ", "\x1f",
                                     "/", "\t", "z9", "\xf0\x9f\x98\x80"};
    char buf[64] = "";
    switch (jt_next(rng) % (depth < 4 ? 8 : 5)) {
    case 0: return json_integer((json_int_t)jt_next(rng) - (json_int_t)jt_next(rng) * 65536);
    case 1: return json_real((double)(int32_t)jt_next(rng) / ((jt_next(rng) % 1000) + 1));
    case 2:
        for (uint32_t k = jt_next(rng) % 6; k > 0; k--)
            strcat(buf, pieces[jt_next(rng) % (sizeof pieces / sizeof *pieces)]);
        return json_string(buf);
    case 3: return json_boolean(jt_next(rng) % 2);
    case 4: return json_null();
    case 5: {
        json_t *a = json_array();
        for (uint32_t k = jt_next(rng) % 4; k > 0; k--)
            json_array_append_new(a, jt_random_value(rng, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint32_t k = jt_next(rng) % 4; k > 0; k--) {
            snprintf(buf, sizeof buf, "k%u%s", jt_next(rng) % 10,
                     pieces[jt_next(rng) % (sizeof pieces / sizeof *pieces)]);
            json_object_set_new(o, buf, jt_random_value(rng, depth + 1));
        }
        return o;
    }
    }
}

Test(job_text, random_args)
{
    uint64_t rng = 42;
    for (int i = 0; i < JT_RANDOM_CASES; i++) {
        char what[32];
        snprintf(what, sizeof what, "random case %d", i);
        job_t *job = jt_job("random", jt_random_value(&rng, 0));
        jt_expect_view_text(job, what);
        jt_expect_payload(job, what);
        job_free(job);
    }
}
