/* test_job.c - the job model (request validation driven by tests/data/jobs,
 * views, payload), the log line and jobd.h's helpers. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "../server/log.h"
#include "../util/rfc3339.h"
#include "support.h"

/* The data-driven cases are read relative to the repository root, where
 * tests/run.sh and make run the suite. */
#define TJ_DATA "tests/data/jobs"
#define TJ_NOW 1795860000000LL /* 2026-11-28T10:00:00.000Z, the "now" of the data files */

TestSuite(job);
TestSuite(log);
TestSuite(jobd);

/* ---- helpers --------------------------------------------------------- */

/* The whole file as a new NUL-terminated string, or NULL when it does not exist. */
static char *tj_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, mem);
    fclose(f);
    fclose(mem);
    return buf;
}

/* The sibling file dir/name.ext without its trailing newline, or NULL. */
static char *tj_sibling(const char *dir, const char *name, const char *ext)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    char *s = tj_read(path);
    if (s) {
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
            s[--n] = '\0';
    }
    return s;
}

static int tj_is_json(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

typedef void (*tj_case_fn)(const char *dir, const char *name, json_t *body, const char *idem);

/* Runs fn on every dir/NAME.json (sorted), with NAME.idem as the
 * Idempotency-Key when present. Returns the number of cases. */
static int tj_each_case(const char *dir, tj_case_fn fn)
{
    struct dirent **list;
    int n = scandir(dir, &list, tj_is_json, alphasort);
    cr_assert(n >= 0, "cannot open %s (run the tests from the repository root)", dir);
    for (int i = 0; i < n; i++) {
        char name[256], path[512];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(list[i]->d_name) - 5), list[i]->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        json_error_t jerr;
        json_t *body = json_load_file(path, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        cr_expect(body != NULL, "%s: not JSON: %s", path, jerr.text);
        char *idem = tj_sibling(dir, name, "idem");
        if (body)
            fn(dir, name, body, idem);
        free(idem);
        json_decref(body);
        free(list[i]);
    }
    free(list);
    return n;
}

/* A valid full job: every field set, as a store holds it after some runs. */
static job_t *tj_full_job(void)
{
    job_t *job = job_new();
    cr_assert_not_null(job);
    strcpy(job->id, "01JDX3V8C2S9G7Q5M4N2P1R0TZ");
    strcpy(job->queue, "default");
    strcpy(job->type, "send_email");
    json_decref(job->args);
    job->args = json_pack("{s:s,s:[i,f,b,n],s:{}}", "to", "a@example.com", "list", 1, 2.5, 1,
                          "empty");
    job->created_at = TJ_NOW;
    job->scheduled_at = TJ_NOW + 60000;
    job->run_at = TJ_NOW + 90123;
    job->started_at = TJ_NOW + 95001;
    job->finished_at = TJ_NOW + 96999;
    job->attempts = 3;
    job->max_attempts = 5;
    job->timeout = 2.25;
    job->state = JOB_DEAD;
    job_set_error(job, "HTTP 500: caf\xc3\xa9 \"down\"\nline 2");
    return job;
}

static void tj_expect_same_job(const job_t *a, const job_t *b)
{
    cr_expect_str_eq(a->id, b->id);
    cr_expect_str_eq(a->queue, b->queue);
    cr_expect_str_eq(a->type, b->type);
    cr_expect(json_equal(a->args, b->args), "args differ");
    cr_expect_eq(a->created_at, b->created_at);
    cr_expect_eq(a->scheduled_at, b->scheduled_at);
    cr_expect_eq(a->run_at, b->run_at);
    cr_expect_eq(a->started_at, b->started_at);
    cr_expect_eq(a->finished_at, b->finished_at);
    cr_expect_eq(a->attempts, b->attempts);
    cr_expect_eq(a->max_attempts, b->max_attempts);
    cr_expect(a->timeout == b->timeout, "timeout %g != %g", a->timeout, b->timeout);
    cr_expect_eq(a->state, b->state);
    cr_expect((a->last_error == NULL) == (b->last_error == NULL), "last_error presence differs");
    if (a->last_error && b->last_error)
        cr_expect_str_eq(a->last_error, b->last_error);
}

/* The view, stored as text and loaded again (what a store does), back into a job. */
static job_t *tj_through_text(const json_t *view)
{
    char *text = json_dumps(view, JSON_COMPACT);
    cr_assert_not_null(text);
    json_t *loaded = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(loaded);
    job_t *job = job_from_view(loaded);
    json_decref(loaded);
    return job;
}

/* ---- job: data-driven request validation ----------------------------- */

static void tj_valid_case(const char *dir, const char *name, json_t *body, const char *idem)
{
    ulid_gen ids;
    jobd_error err = {0};
    ulid_init(&ids);
    job_t *job = job_from_request(body, "default", idem, &ids, TJ_NOW, &err);
    cr_expect_not_null(job, "%s: refused: [%s] %s", name, err.field, err.message);
    if (!job) {
        ulid_destroy(&ids);
        return;
    }
    cr_expect_str_eq(job->queue, "default", "%s", name);
    cr_expect_eq(job->created_at, TJ_NOW, "%s", name);
    cr_expect(name_id_ok(job->id), "%s: bad id %s", name, job->id);
    if (!json_is_string(json_object_get(body, "id")) && !idem)
        cr_expect(ts_ulid_shape(job->id) && ts_ulid_ms(job->id) == TJ_NOW,
                  "%s: generated id %s is not a ULID of now", name, job->id);

    json_t *view = job_view(job);
    cr_assert_not_null(view, "%s: no view", name);
    char *want_text = tj_sibling(dir, name, "expect");
    cr_expect_not_null(want_text, "%s: no .expect file", name);
    json_t *want = want_text ? json_loads(want_text, 0, NULL) : NULL;
    const char *key;
    json_t *value;
    json_object_foreach(want, key, value) {
        char *got = json_dumps(json_object_get(view, key), JSON_ENCODE_ANY);
        cr_expect(json_equal(json_object_get(view, key), value), "%s: %s is %s", name, key,
                  got ? got : "absent");
        free(got);
    }

    job_t *back = tj_through_text(view);
    cr_expect_not_null(back, "%s: its own view does not load back", name);
    if (back)
        tj_expect_same_job(job, back);
    json_decref(want);
    free(want_text);
    json_decref(view);
    job_free(back);
    job_free(job);
    ulid_destroy(&ids);
}

static void tj_invalid_case(const char *dir, const char *name, json_t *body, const char *idem)
{
    ulid_gen ids;
    jobd_error err = {0};
    ulid_init(&ids);
    job_t *job = job_from_request(body, "default", idem, &ids, TJ_NOW, &err);
    cr_expect_null(job, "%s: accepted", name);
    job_free(job);
    ulid_destroy(&ids);
    if (job)
        return;
    char *field = tj_sibling(dir, name, "field");
    char *message = tj_sibling(dir, name, "message");
    cr_expect_not_null(field, "%s: no .field file", name);
    cr_expect_eq(err.status, 422, "%s", name);
    cr_expect(err.code && strcmp(err.code, "invalid_job") == 0, "%s: code %s", name,
              err.code ? err.code : "(null)");
    cr_expect_eq(err.index, -1, "%s", name);
    if (field)
        cr_expect_str_eq(err.field, field, "%s: field", name);
    if (message)
        cr_expect(strstr(err.message, message) != NULL, "%s: message \"%s\" lacks \"%s\"", name,
                  err.message, message);
    free(field);
    free(message);
}

Test(job, valid_requests)
{
    int n = tj_each_case(TJ_DATA "/valid", tj_valid_case);
    cr_expect(n >= 30, "only %d valid cases", n);
}

Test(job, invalid_requests)
{
    int n = tj_each_case(TJ_DATA "/invalid", tj_invalid_case);
    cr_expect(n >= 30, "only %d invalid cases", n);
}

/* ---- job: request details not expressible as data -------------------- */

Test(job, request_takes_args_by_reference)
{
    json_t *body = json_pack("{s:s,s:{s:i}}", "type", "t", "args", "n", 1);
    json_t *args = json_object_get(body, "args");
    jobd_error err;
    ulid_gen ids;
    ulid_init(&ids);
    job_t *job = job_from_request(body, "q", NULL, &ids, TJ_NOW, &err);
    cr_assert_not_null(job);
    cr_expect_eq(job->args, args, "args should be shared, not copied");
    json_decref(body);
    cr_expect_eq(json_integer_value(json_object_get(job->args, "n")), 1, "args died with the body");
    job_free(job);
    ulid_destroy(&ids);
}

Test(job, request_without_error_struct)
{
    json_t *body = json_pack("{s:i}", "type", 1);
    cr_expect_null(job_from_request(body, "q", NULL, NULL, TJ_NOW, NULL));
    json_decref(body);
}

Test(job, generated_ids_differ_and_grow)
{
    json_t *body = json_pack("{s:s}", "type", "t");
    ulid_gen ids;
    ulid_init(&ids);
    job_t *a = job_from_request(body, "q", NULL, &ids, TJ_NOW, NULL);
    job_t *b = job_from_request(body, "q", NULL, &ids, TJ_NOW, NULL);
    cr_assert(a && b);
    cr_expect(strcmp(a->id, b->id) < 0, "%s !< %s", a->id, b->id);
    job_free(a);
    job_free(b);
    json_decref(body);
    ulid_destroy(&ids);
}

/* ---- job: views -------------------------------------------------------- */

Test(job, view_round_trip_full)
{
    job_t *job = tj_full_job();
    json_t *view = job_view(job);
    cr_assert_not_null(view);
    cr_expect_str_eq(json_string_value(json_object_get(view, "state")), "dead");
    cr_expect_str_eq(json_string_value(json_object_get(view, "run_at")),
                     "2026-11-28T10:01:30.123Z");
    cr_expect_str_eq(json_string_value(json_object_get(view, "last_error")), job->last_error);
    cr_expect(json_real_value(json_object_get(view, "timeout")) == 2.25);
    job_t *back = job_from_view(view);
    cr_assert_not_null(back);
    tj_expect_same_job(job, back);
    json_t *again = job_view(back);
    cr_expect(json_equal(view, again), "view -> job -> view changed the view");
    job_t *stored = tj_through_text(view);
    cr_assert_not_null(stored);
    tj_expect_same_job(job, stored);
    json_decref(again);
    json_decref(view);
    job_free(stored);
    job_free(back);
    job_free(job);
}

Test(job, view_round_trip_every_state)
{
    job_t *job = tj_full_job();
    for (int s = 0; s < JOB_STATE_COUNT; s++) {
        job->state = (job_state)s;
        json_t *view = job_view(job);
        job_t *back = job_from_view(view);
        cr_assert_not_null(back, "state %s", job_state_name(job->state));
        cr_expect_eq(back->state, job->state);
        job_free(back);
        json_decref(view);
    }
    job_free(job);
}

Test(job, view_of_unset_fields)
{
    job_t *job = job_new();
    strcpy(job->id, "x");
    strcpy(job->queue, "q");
    strcpy(job->type, "t");
    job->created_at = TJ_NOW;
    json_t *view = job_view(job);
    cr_assert_not_null(view);
    const char *nulls[] = {"args", "max_attempts", "scheduled_at", "started_at", "finished_at",
                           "last_error"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        cr_expect(json_is_null(json_object_get(view, nulls[i])), "%s is not null", nulls[i]);
    cr_expect_null(json_object_get(view, "run_at"));
    cr_expect_null(json_object_get(view, "timeout"));
    cr_expect_eq(json_integer_value(json_object_get(view, "attempts")), 0);
    job_t *back = job_from_view(view);
    cr_assert_not_null(back);
    tj_expect_same_job(job, back);
    job_free(back);
    json_decref(view);
    job_free(job);
}

/* One broken field of an otherwise valid view; value "" deletes the key. */
typedef struct tj_bad_view {
    char key[16];
    char value[64];
} tj_bad_view;

Test(job, from_view_rejects_malformed)
{
    static const tj_bad_view bad[] = {
        {"id", ""}, {"id", "\"a b\""}, {"id", "\"\""}, {"id", "7"},
        {"queue", ""}, {"queue", "\"\""}, {"queue", "\"a/b\""}, {"queue", "null"},
        {"type", ""}, {"type", "\"\""}, {"type", "5"},
        {"args", ""},
        {"state", ""}, {"state", "\"sleeping\""}, {"state", "1"},
        {"attempts", ""}, {"attempts", "-1"}, {"attempts", "1.0"}, {"attempts", "\"1\""},
        {"attempts", "null"},
        {"max_attempts", "0"}, {"max_attempts", "\"5\""}, {"max_attempts", "2.5"},
        {"created_at", ""}, {"created_at", "\"yesterday\""}, {"created_at", "1795860000000"},
        {"scheduled_at", "5"}, {"started_at", "\"2026-02-30T00:00:00Z\""},
        {"finished_at", ""}, {"run_at", "\"soon\""}, {"run_at", "1"},
        {"timeout", "0"}, {"timeout", "-1"}, {"timeout", "\"5\""},
        {"last_error", "5"}, {"last_error", ""},
    };
    job_t *job = tj_full_job();
    json_t *good = job_view(job);
    job_free(job);
    job_t *ok = job_from_view(good);
    cr_assert_not_null(ok, "the unbroken view must load");
    job_free(ok);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *view = json_deep_copy(good);
        if (bad[i].value[0])
            json_object_set_new(view, bad[i].key, json_loads(bad[i].value, JSON_DECODE_ANY, NULL));
        else
            json_object_del(view, bad[i].key);
        job_t *got = job_from_view(view);
        cr_expect_null(got, "accepted %s = %s", bad[i].key, bad[i].value[0] ? bad[i].value : "(absent)");
        job_free(got);
        json_decref(view);
    }
    json_t *array = json_array();
    cr_expect_null(job_from_view(array));
    cr_expect_null(job_from_view(NULL));
    json_decref(array);
    json_decref(good);
}

Test(job, from_view_trace_fields)
{
    static const tj_bad_view bad[] = {
        {"traceparent", "\"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\""},
        {"traceparent", "5"}, {"traceparent", "null"},
        {"tracestate", "\"a=\\t\""}, {"tracestate", "\"a=1\\u0000b\""}, {"tracestate", "7"},
    };
    job_t *job = tj_full_job();
    json_t *plain = job_view(job);
    cr_assert_eq(job_set_trace(job, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                               "k=v"), 0);
    json_t *good = job_view(job);
    job_t *back = job_from_view(good);
    cr_assert_not_null(back);
    cr_assert_not_null(back->trace);
    cr_expect_str_eq(back->trace->parent, job->trace->parent);
    cr_expect_str_eq(back->trace->state, "k=v");
    job_free(back);
    /* a record written before the trace fields existed */
    back = job_from_view(plain);
    cr_assert_not_null(back);
    cr_expect_null(back->trace);
    job_free(back);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *view = json_deep_copy(good);
        json_t *value = json_loads(bad[i].value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        cr_assert_not_null(value, "case %zu does not parse", i);
        json_object_set_new(view, bad[i].key, value);
        job_t *got = job_from_view(view);
        cr_expect_null(got, "accepted %s = %s", bad[i].key, bad[i].value);
        job_free(got);
        json_decref(view);
    }
    json_object_del(good, "traceparent");
    cr_expect_null(job_from_view(good), "a tracestate without traceparent was accepted");
    json_decref(good);
    json_decref(plain);
    job_free(job);
}

Test(job, from_view_ignores_extra_keys)
{
    job_t *job = tj_full_job();
    json_t *view = job_view(job);
    json_object_set_new(view, "replayed", json_true());
    job_t *back = job_from_view(view);
    cr_assert_not_null(back);
    tj_expect_same_job(job, back);
    job_free(back);
    json_decref(view);
    job_free(job);
}

/* ---- job: payload, errors, copies, states, ids ------------------------- */

Test(job, payload_fields)
{
    job_t *job = tj_full_job();
    size_t len = 0;
    char *text = job_payload(job, &len);
    cr_assert_not_null(text);
    cr_expect_eq(len, strlen(text));
    cr_expect_null(strstr(text, ", "), "not compact: %s", text);
    cr_expect_null(strstr(text, "\": "), "not compact: %s", text);
    json_t *p = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    cr_assert_not_null(p);
    cr_expect_eq(json_object_size(p), 7, "keys: %s", text);
    cr_expect_str_eq(json_string_value(json_object_get(p, "id")), job->id);
    cr_expect_str_eq(json_string_value(json_object_get(p, "queue")), "default");
    cr_expect_str_eq(json_string_value(json_object_get(p, "type")), "send_email");
    cr_expect(json_equal(json_object_get(p, "args"), job->args));
    cr_expect_eq(json_integer_value(json_object_get(p, "attempt")), 4, "attempt = attempts + 1");
    cr_expect_str_eq(json_string_value(json_object_get(p, "scheduled_at")),
                     "2026-11-28T10:01:00.000Z");
    cr_expect_str_eq(json_string_value(json_object_get(p, "created_at")),
                     "2026-11-28T10:00:00.000Z");
    json_decref(p);
    free(text);

    job->scheduled_at = 0;
    job->attempts = 0;
    text = job_payload(job, NULL);
    p = json_loads(text, 0, NULL);
    cr_expect(json_is_null(json_object_get(p, "scheduled_at")));
    cr_expect_eq(json_integer_value(json_object_get(p, "attempt")), 1);
    json_decref(p);
    free(text);
    job_free(job);
}

Test(job, set_error_cuts_at_utf8_boundary)
{
    job_t *job = job_new();
    char *msg = malloc(4096);
    memset(msg, 'a', 4095);
    msg[4095] = '\0';
    job_set_error(job, msg);
    cr_expect_eq(strlen(job->last_error), JOB_ERROR_MAX);

    memcpy(msg + JOB_ERROR_MAX - 1, "\xc3\xa9", 3); /* é straddles the limit */
    job_set_error(job, msg);
    cr_expect_eq(strlen(job->last_error), JOB_ERROR_MAX - 1);

    memcpy(msg + JOB_ERROR_MAX - 2, "\xe2\x82\xac", 4); /* € (3 bytes) straddles it */
    job_set_error(job, msg);
    cr_expect_eq(strlen(job->last_error), JOB_ERROR_MAX - 2);

    memcpy(msg + JOB_ERROR_MAX - 2, "\xc3\xa9", 3); /* é ends exactly at the limit */
    job_set_error(job, msg);
    cr_expect_eq(strlen(job->last_error), JOB_ERROR_MAX);
    cr_expect_str_eq(job->last_error + JOB_ERROR_MAX - 2, "\xc3\xa9");
    free(msg);

    job_set_error(job, "ok \xf0\x9f\x98\x80 \xff \xc0\xaf \xed\xa0\x80 \xe2\x82");
    cr_expect_str_eq(job->last_error, "ok \xf0\x9f\x98\x80 ? ?? ??? ??");
    json_t *s = json_string(job->last_error);
    cr_expect_not_null(s, "last_error must be valid UTF-8 for views");
    json_decref(s);

    job_set_error(job, NULL);
    cr_expect_null(job->last_error);
    job_free(job);
}

Test(job, dup_is_deep_but_shares_args)
{
    job_t *job = tj_full_job();
    job_t *copy = job_dup(job);
    cr_assert_not_null(copy);
    tj_expect_same_job(job, copy);
    cr_expect_eq(copy->args, job->args);
    cr_expect_neq(copy->last_error, job->last_error);
    job_free(job); /* the copy must stand alone */
    cr_expect_str_eq(copy->last_error, "HTTP 500: caf\xc3\xa9 \"down\"\nline 2");
    cr_expect_str_eq(json_string_value(json_object_get(copy->args, "to")), "a@example.com");
    job_free(copy);
    job_free(NULL);
}

Test(job, new_job_defaults)
{
    job_t *job = job_new();
    cr_assert_not_null(job);
    cr_expect(json_is_null(job->args));
    cr_expect_eq(job->attempts, 0);
    cr_expect_null(job->last_error);
    job_free(job);
}

Test(job, states)
{
    static const char names[][12] = {"scheduled", "enqueued",  "running",  "succeeded",
                                     "retrying",  "dead",      "cancelled"};
    for (int s = 0; s < JOB_STATE_COUNT; s++) {
        cr_expect_str_eq(job_state_name((job_state)s), names[s]);
        cr_expect_eq(job_state_parse(names[s]), s);
    }
    cr_expect_eq(job_state_parse("Running"), -1);
    cr_expect_eq(job_state_parse(""), -1);
    cr_expect_eq(job_state_parse(NULL), -1);
    cr_expect(job_state_final(JOB_SUCCEEDED) && job_state_final(JOB_DEAD) &&
              job_state_final(JOB_CANCELLED));
    cr_expect(!job_state_final(JOB_SCHEDULED) && !job_state_final(JOB_ENQUEUED) &&
              !job_state_final(JOB_RUNNING) && !job_state_final(JOB_RETRYING));
}

Test(job, id_charset)
{
    char longest[JOB_ID_MAX + 2];
    memset(longest, 'z', JOB_ID_MAX);
    longest[JOB_ID_MAX] = '\0';
    cr_expect(name_id_ok(longest));
    longest[JOB_ID_MAX] = 'z';
    longest[JOB_ID_MAX + 1] = '\0';
    cr_expect(!name_id_ok(longest));
    cr_expect(name_id_ok("a.b_c:d-E9"));
    cr_expect(!name_id_ok(""));
    cr_expect(!name_id_ok(NULL));
    const char *bad[] = {"a b", "a/b", "a?b", "a%20", "caf\xc3\xa9", "a\tb", "a+b", "a#b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect(!name_id_ok(bad[i]), "accepted %s", bad[i]);
}

/* ---- log --------------------------------------------------------------- */

/* Runs one log_event with stderr sent to a file; returns what was written. */
static char *tj_capture_log(bool json, log_level level, const job_t *job, const char *msg)
{
    char path[] = "/tmp/jobd_test_log_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    log_set_json(json);
    log_event(level, "job.succeeded", job, "%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)size + 1);
    cr_assert_eq(pread(fd, buf, (size_t)size, 0), size);
    close(fd);
    return buf;
}

static job_t *tj_log_job(void)
{
    job_t *job = job_new();
    strcpy(job->id, "01JDX3V8C2S9G7Q5M4N2P1R0TZ");
    strcpy(job->queue, "default");
    strcpy(job->type, "send_email");
    job->attempts = 2;
    return job;
}

Test(log, text_line)
{
    job_t *job = tj_log_job();
    char *line = tj_capture_log(false, LOG_INFO, job, "took 12 ms\nsecond line");
    int64_t ms;
    cr_assert(strlen(line) > 25);
    char ts[25];
    memcpy(ts, line, 24);
    ts[24] = '\0';
    cr_expect_eq(rfc3339_parse(ts, &ms), 0, "bad timestamp in %s", line);
    cr_expect_str_eq(line + 24, " INFO  job.succeeded id=01JDX3V8C2S9G7Q5M4N2P1R0TZ "
                                "queue=default type=send_email attempt=2 took 12 ms second line\n");
    free(line);
    line = tj_capture_log(false, LOG_ERROR, NULL, "");
    cr_expect_str_eq(line + 24, " ERROR job.succeeded\n");
    free(line);
    job_free(job);
}

Test(log, trace_id_in_job_lines)
{
    job_t *job = tj_log_job();
    cr_assert_eq(job_set_trace(job, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                               NULL), 0);
    char *line = tj_capture_log(false, LOG_INFO, job, "ok");
    cr_expect(strstr(line, " attempt=2 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 ok\n") != NULL,
              "got: %s", line);
    free(line);
    line = tj_capture_log(true, LOG_INFO, job, "ok");
    json_t *o = json_loads(line, 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(o, "trace_id")),
                     "4bf92f3577b34da6a3ce929d0e0e4736");
    json_decref(o);
    free(line);
    job_free(job);
}

Test(log, json_line)
{
    job_t *job = tj_log_job();
    char *line = tj_capture_log(true, LOG_WARN, job, "bad \xff byte \"quoted\"\n");
    size_t n = strlen(line);
    cr_assert(n > 0 && line[n - 1] == '\n' && !memchr(line, '\n', n - 1), "not one line: %s",
              line);
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
    cr_assert_not_null(o, "not JSON: %s", line);
    int64_t ms;
    cr_expect_eq(rfc3339_parse(json_string_value(json_object_get(o, "ts")), &ms), 0);
    cr_expect_str_eq(json_string_value(json_object_get(o, "level")), "warn");
    cr_expect_str_eq(json_string_value(json_object_get(o, "event")), "job.succeeded");
    cr_expect_str_eq(json_string_value(json_object_get(o, "id")), job->id);
    cr_expect_str_eq(json_string_value(json_object_get(o, "queue")), "default");
    cr_expect_str_eq(json_string_value(json_object_get(o, "type")), "send_email");
    cr_expect_eq(json_integer_value(json_object_get(o, "attempt")), 2);
    cr_expect_str_eq(json_string_value(json_object_get(o, "msg")), "bad ? byte \"quoted\"\n");
    json_decref(o);
    free(line);

    line = tj_capture_log(true, LOG_INFO, NULL, "plain");
    o = json_loads(line, 0, NULL);
    cr_assert_not_null(o, "not JSON: %s", line);
    cr_expect_null(json_object_get(o, "id"), "no job, no id");
    cr_expect_str_eq(json_string_value(json_object_get(o, "msg")), "plain");
    json_decref(o);
    free(line);
    job_free(job);
}

/* ---- jobd.h helpers --------------------------------------------------- */

Test(jobd, fail_fills_the_error)
{
    jobd_error err;
    memset(&err, 0x55, sizeof err);
    cr_expect_eq(jobd_fail(&err, 503, "unavailable", "redis at %s:%d", "127.0.0.1", 6379), -1);
    cr_expect_eq(err.status, 503);
    cr_expect_str_eq(err.code, "unavailable");
    cr_expect_str_eq(err.message, "redis at 127.0.0.1:6379");
    cr_expect_str_eq(err.field, "");
    cr_expect_eq(err.index, -1);
    cr_expect_eq(err.retry_after, 0);
    cr_expect_eq(jobd_fail(NULL, 500, "x", "y"), -1);
}

Test(jobd, clocks)
{
    int64_t now = jobd_now_ms(), wall = (int64_t)time(NULL) * 1000;
    cr_expect(now >= wall - 2000 && now <= wall + 2000, "now %lld vs time() %lld",
              (long long)now, (long long)wall);
    int64_t a = jobd_mono_ms(), b = jobd_mono_ms();
    cr_expect(a > 0 && b >= a);
}

Test(jobd, queue_lookup_by_name)
{
    queue_cfg cfgs[2] = {{.name = "default"}, {.name = "local"}};
    queue_t qs[2] = {{.cfg = &cfgs[0]}, {.cfg = &cfgs[1]}};
    queue_t *list[2] = {&qs[0], &qs[1]};
    jobd_t ctx = {.queues = list, .n_queues = 2};
    cr_expect_eq(pipeline_queue(&ctx, "default"), &qs[0]);
    cr_expect_eq(pipeline_queue(&ctx, "local"), &qs[1]);
    cr_expect_null(pipeline_queue(&ctx, "Local"));
    cr_expect_null(pipeline_queue(&ctx, ""));
    cr_expect_null(pipeline_queue(&ctx, NULL));
}

Test(log, debug_events_only_when_asked)
{
    char *line = tj_capture_log(false, LOG_DEBUG, NULL, "hidden");
    cr_expect_str_eq(line, "", "debug is dropped by default");
    free(line);
    log_set_level(LOG_DEBUG);
    line = tj_capture_log(false, LOG_DEBUG, NULL, "shown");
    cr_expect(strstr(line, "DEBUG job.succeeded shown") != NULL, "got: %s", line);
    free(line);
    log_set_level(LOG_INFO);
}
