/* test_api.c - the HTTP API of api.md end to end: the real jobd binary as a
 * child process, real requests over loopback, inline (memory) queues so no
 * Redis is needed. Each test starts its own jobd on a free port. */
#include "../queues/job.h"
#include "../util/rfc3339.h"
#include "support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DATA_DIR "tests/data/api"
#define FAST_BACKOFF \
    "\"backoff\": {\"base\": 0.05, \"factor\": 0, \"exponent\": 1, \"jitter\": 0, \"max\": 1}"
/* Long enough that a poll every few ms sees the job between attempts. */
#define SLOW_BACKOFF \
    "\"backoff\": {\"base\": 0.3, \"factor\": 0, \"exponent\": 1, \"jitter\": 0, \"max\": 1}"
#define DELAYED_QUEUE                                                                    \
    "\"delayed\": {\"enqueue\": [{\"name\": \"delayed\", \"delay\": 0.3}], \"dequeue\": " \
    "[\"inline\"], " FAST_BACKOFF "}"

/* Queues in config order, as GET /queues must list them. */
static const char *const api_queue_names[] = {"local", "other", "retry", "delayed"};

static const char api_config[] =
    "{\"workers\": 4, \"shutdown_timeout\": 5,"
    " \"limits\": {\"max_body\": 4096, \"max_batch\": 10},"
    " \"queues\": {"
    "  \"local\": {\"dequeue\": [\"inline\"], " FAST_BACKOFF "},"
    "  \"other\": {\"dequeue\": [\"inline\"], " FAST_BACKOFF "},"
    "  \"retry\": {\"dequeue\": [\"inline\"], " SLOW_BACKOFF "},"
    "  " DELAYED_QUEUE "}}";

#define API_TOKEN "s3cret-token-9f2a"
static const char auth_config[] =
    "{\"workers\": 2, \"shutdown_timeout\": 5, \"auth\": {\"tokens\": [\"" API_TOKEN "\"]},"
    " \"queues\": {\"local\": {\"dequeue\": [\"inline\"], " FAST_BACKOFF "}}}";

/* One HTTP thread: a delayed submission that blocked it would stall every
 * other request, which is what the delayed test looks for. */
static const char one_thread_config[] =
    "{\"workers\": 2, \"http_threads\": 1, \"shutdown_timeout\": 5,"
    " \"queues\": {\"local\": {\"dequeue\": [\"inline\"], " FAST_BACKOFF "}, " DELAYED_QUEUE "}}";

static const char shutdown_config[] =
    "{\"workers\": 2, \"shutdown_timeout\": 10,"
    " \"queues\": {\"local\": {\"dequeue\": [\"inline\"], " FAST_BACKOFF "}}}";

/* Criterion's fixtures take no arguments, so the jobd of the running test
 * lives here; every test runs in a process of its own. */
static ts_jobd srv;

static void api_teardown(void)
{
    if (srv.pid > 0)
        ts_jobd_stop(&srv, SIGTERM, 10000);
}

TestSuite(api, .fini = api_teardown, .timeout = 120);

/* Starts jobd with config; its port. Aborts the test when it does not come up. */
static int api_up(const char *config)
{
    cr_assert_eq(ts_jobd_start(&srv, config, NULL), 0, "jobd did not start");
    return srv.port;
}

static const char *nz(const char *s)
{
    return s ? s : "(null)";
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* Formats a request path into buf (PATH_LEN bytes); returns buf. */
#define PATH_LEN 512
static const char *pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *pathf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PATH_LEN, fmt, ap);
    va_end(ap);
    return buf;
}

/* Checks an api.md error answer: status, code and a message. */
static void expect_error(const ts_resp *r, long status, const char *code, const char *what)
{
    cr_expect_eq(r->status, status, "%s: status %ld, want %ld; body %s", what, r->status, status,
                 r->body);
    cr_expect_str_eq(ts_error_code(r), code, "%s: code \"%s\", want \"%s\"", what,
                     ts_error_code(r), code);
    cr_expect(json_is_string(json_object_get(json_object_get(r->json, "error"), "message")),
              "%s: the error has no message: %s", what, r->body);
}

/* The error object's "field" or "index" member (borrowed), NULL when absent. */
static json_t *error_member(const ts_resp *r, const char *key)
{
    return json_object_get(json_object_get(r->json, "error"), key);
}

static void post_jobs(ts_resp *r, int port, const char *queue, const char *body)
{
    char path[PATH_LEN];
    ts_post(r, port, pathf(path, "/queues/%s/jobs", queue), body);
}

static void post_jobs_with(ts_resp *r, int port, const char *queue, const char *body,
                           const char *header)
{
    char path[PATH_LEN];
    const char *headers[] = {header, NULL};
    ts_http(r, "POST", port, pathf(path, "/queues/%s/jobs", queue), body, NULL, headers);
}

/* Submits one job that must be accepted (202); copies its id into id. */
static void submit_ok(int port, const char *queue, const char *body, char id[JOB_ID_MAX + 1])
{
    ts_resp r;
    post_jobs(&r, port, queue, body);
    cr_assert_eq(r.status, 202, "POST %s to %s: status %ld, body %s", body, queue, r.status,
                 r.body);
    cr_assert(jstr(r.json, "id"), "202 without an id: %s", r.body);
    snprintf(id, JOB_ID_MAX + 1, "%s", jstr(r.json, "id"));
    ts_resp_free(&r);
}

/* GET path that must answer 200 with JSON: a new reference to the body. */
static json_t *get_json(int port, const char *path)
{
    ts_resp r;
    ts_get(&r, port, path);
    cr_assert_eq(r.status, 200, "GET %s: status %ld, body %s", path, r.status, r.body);
    cr_assert(r.json, "GET %s: not JSON: %s", path, r.body);
    json_t *body = json_incref(r.json);
    ts_resp_free(&r);
    return body;
}

/* The job's view (new reference); aborts unless it answers 200. */
static json_t *job_get(int port, const char *queue, const char *id)
{
    char path[PATH_LEN];
    return get_json(port, pathf(path, "/queues/%s/jobs/%s", queue, id));
}

/* A number of the queue view: "processed_total", "failed_total", or a state
 * of its counts ("enqueued", ...). */
static json_int_t queue_number(int port, const char *queue, const char *key)
{
    char path[PATH_LEN];
    json_t *view = get_json(port, pathf(path, "/queues/%s", queue));
    json_t *v = json_object_get(view, key);
    if (!v)
        v = json_object_get(json_object_get(view, "counts"), key);
    cr_assert(json_is_integer(v), "queue %s has no integer %s", queue, key);
    json_int_t n = json_integer_value(v);
    json_decref(view);
    return n;
}

/* Polls queue_number until it equals want or timeout_ms passes: the last value. */
static json_int_t wait_queue_number(int port, const char *queue, const char *key, json_int_t want,
                                    int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    json_int_t n = queue_number(port, queue, key);
    while (n != want && ts_now_ms() < deadline) {
        ts_sleep_ms(10);
        n = queue_number(port, queue, key);
    }
    return n;
}

/* True when the job is in state (and never started) for all of window_ms. */
static bool stays_unstarted(int port, const char *queue, const char *id, const char *state,
                            int window_ms)
{
    long long end = ts_now_ms() + window_ms;
    do {
        json_t *view = job_get(port, queue, id);
        bool same = strcmp(nz(jstr(view, "state")), state) == 0 &&
                    json_is_null(json_object_get(view, "started_at"));
        json_decref(view);
        if (!same)
            return false;
        ts_sleep_ms(20);
    } while (ts_now_ms() < end);
    return true;
}

/* A time field of a view in unix ms; 0 when null. Aborts on a malformed time. */
static int64_t view_time(const json_t *view, const char *key)
{
    json_t *v = json_object_get(view, key);
    if (json_is_null(v))
        return 0;
    int64_t ms = 0;
    cr_assert(json_is_string(v) && rfc3339_parse(json_string_value(v), &ms) == 0,
              "%s is not an RFC 3339 time", key);
    return ms;
}

/* Every job of the queue, page by page (query is "" or e.g. "state=enqueued&"):
 * a new array of views in answer order. Checks newest-first order and counts
 * the pages into *pages (may be NULL). */
static json_t *list_all(int port, const char *queue, const char *query, int limit, int *pages)
{
    json_t *all = json_array();
    char cursor[512] = "";
    int n_pages = 0;
    int64_t prev = INT64_MAX;
    for (int guard = 0; guard < 2000; guard++) {
        char path[PATH_LEN];
        json_t *page = get_json(port, pathf(path, "/queues/%s/jobs?%slimit=%d%s%s", queue, query,
                                            limit, *cursor ? "&cursor=" : "", cursor));
        json_t *jobs = json_object_get(page, "jobs");
        json_t *next = json_object_get(page, "next_cursor");
        cr_assert(json_is_array(jobs), "list without jobs");
        cr_assert_leq(json_array_size(jobs), (size_t)limit, "page larger than limit %d", limit);
        size_t i;
        json_t *view;
        json_array_foreach(jobs, i, view) {
            int64_t created = view_time(view, "created_at");
            cr_assert_leq(created, prev, "list is not newest first");
            prev = created;
            json_array_append(all, view);
        }
        n_pages++;
        cr_assert(json_is_null(next) || json_is_string(next), "next_cursor must be null or text");
        bool last = json_is_null(next);
        if (!last)
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(page);
        if (last) {
            if (pages)
                *pages = n_pages;
            return all;
        }
    }
    cr_assert_fail("list of %s did not end", queue);
    return NULL;
}

static size_t list_count(int port, const char *queue, const char *query)
{
    json_t *all = list_all(port, queue, query, 1000, NULL);
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

/* ---- submission: accepted answers ---- */

Test(api, healthz_answers_ok)
{
    int port = api_up(api_config);
    json_t *body = get_json(port, "/healthz");
    cr_expect_str_eq(nz(jstr(body, "status")), "ok");
    json_decref(body);
}

Test(api, submit_answers_202_with_location_and_view)
{
    int port = api_up(api_config);
    ts_resp r;
    char hdr[600], want[PATH_LEN];
    post_jobs(&r, port, "local", "{\"type\": \"echo\", \"args\": {\"a\": [1, 2]}}");
    cr_assert_eq(r.status, 202, "status %ld, body %s", r.status, r.body);
    const char *id = jstr(r.json, "id");
    cr_assert(id && *id, "no id: %s", r.body);
    cr_expect_str_eq(nz(ts_resp_header(&r, "Location", hdr, sizeof hdr)),
                     pathf(want, "/queues/local/jobs/%s", id));
    cr_expect_eq(strncasecmp(nz(ts_resp_header(&r, "Content-Type", hdr, sizeof hdr)),
                             "application/json", 16), 0, "Content-Type: %s", hdr);
    cr_expect_str_eq(nz(jstr(r.json, "queue")), "local");
    cr_expect_str_eq(nz(jstr(r.json, "type")), "echo");
    cr_expect_str_eq(nz(jstr(r.json, "state")), "enqueued");
    cr_expect_eq(jint(r.json, "attempts"), 0);
    cr_expect_eq(jint(r.json, "max_attempts"), 25, "the queue's default max_attempts");
    cr_expect_gt(view_time(r.json, "created_at"), 0);
    static const char *const nulls[] = {"scheduled_at", "started_at", "finished_at", "last_error"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        cr_expect(json_is_null(json_object_get(r.json, nulls[i])), "%s not null", nulls[i]);
    json_t *args = json_pack("{s:[ii]}", "a", 1, 2);
    cr_expect(json_equal(json_object_get(r.json, "args"), args), "args: %s", r.body);
    json_decref(args);

    json_t *view = get_json(port, want);
    cr_expect_str_eq(nz(jstr(view, "id")), id);
    json_decref(view);
    ts_resp_free(&r);
}

Test(api, delay_or_scheduled_at_makes_a_scheduled_job)
{
    int port = api_up(api_config);
    ts_resp r;
    post_jobs(&r, port, "local", "{\"type\": \"noop\", \"delay\": 60}");
    cr_assert_eq(r.status, 202, "body %s", r.body);
    cr_expect_str_eq(nz(jstr(r.json, "state")), "scheduled");
    int64_t created = view_time(r.json, "created_at");
    int64_t scheduled = view_time(r.json, "scheduled_at");
    cr_expect_geq(scheduled - created, 59000, "scheduled_at %s", nz(jstr(r.json, "scheduled_at")));
    cr_expect_leq(scheduled - created, 61000);
    ts_resp_free(&r);

    post_jobs(&r, port, "local", "{\"type\": \"noop\", \"scheduled_at\": \"2999-01-01T00:00:00Z\"}");
    cr_assert_eq(r.status, 202, "body %s", r.body);
    cr_expect_str_eq(nz(jstr(r.json, "state")), "scheduled");
    cr_expect_str_eq(nz(jstr(r.json, "scheduled_at")), "2999-01-01T00:00:00.000Z");
    ts_resp_free(&r);
    cr_expect_eq(queue_number(port, "local", "scheduled"), 2);
}

Test(api, same_id_replays_with_200_and_enqueues_once)
{
    int port = api_up(api_config);
    ts_resp r;
    post_jobs(&r, port, "local", "{\"type\": \"noop\", \"id\": \"job-1\"}");
    cr_assert_eq(r.status, 202, "body %s", r.body);
    ts_resp_free(&r);
    post_jobs(&r, port, "local", "{\"type\": \"noop\", \"id\": \"job-1\"}");
    cr_expect_eq(r.status, 200, "replay: status %ld, body %s", r.status, r.body);
    cr_expect_str_eq(nz(jstr(r.json, "id")), "job-1");
    ts_resp_free(&r);
    /* The existing job answers, whatever the new body says. */
    post_jobs(&r, port, "local", "{\"type\": \"echo\", \"id\": \"job-1\"}");
    cr_expect_eq(r.status, 200, "replay: status %ld, body %s", r.status, r.body);
    cr_expect_str_eq(nz(jstr(r.json, "type")), "noop");
    ts_resp_free(&r);
    cr_expect_eq(list_count(port, "local", ""), 1);
    cr_expect(ts_wait_state(port, "local", "job-1", "succeeded", 5000, NULL));
    cr_expect_eq(queue_number(port, "local", "processed_total"), 1);
}

Test(api, idempotency_key_header_replays_like_id)
{
    int port = api_up(api_config);
    ts_resp r;
    post_jobs_with(&r, port, "local", "{\"type\": \"noop\"}", "Idempotency-Key: key-42");
    cr_assert_eq(r.status, 202, "body %s", r.body);
    cr_expect_str_eq(nz(jstr(r.json, "id")), "key-42");
    ts_resp_free(&r);
    post_jobs_with(&r, port, "local", "{\"type\": \"noop\"}", "Idempotency-Key: key-42");
    cr_expect_eq(r.status, 200, "replay: status %ld, body %s", r.status, r.body);
    cr_expect_str_eq(nz(jstr(r.json, "id")), "key-42");
    ts_resp_free(&r);
    post_jobs_with(&r, port, "local", "{\"type\": \"noop\", \"id\": \"key-42\"}",
                   "Idempotency-Key: key-42");
    cr_expect_eq(r.status, 200, "same key in both: status %ld, body %s", r.status, r.body);
    ts_resp_free(&r);
    cr_expect_eq(list_count(port, "local", ""), 1);
}

/* ---- submission: data-driven valid and invalid bodies ---- */

typedef void (*data_check_fn)(int port, const char *name, const char *body);

static int data_file_filter(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Calls check for each file of DATA_DIR/<dir>, in name order; how many there were. */
static int for_each_data_file(const char *dir, int port, data_check_fn check)
{
    char path[PATH_LEN];
    struct dirent **names;
    int n = scandir(pathf(path, "%s/%s", DATA_DIR, dir), &names, data_file_filter, alphasort);
    cr_assert_geq(n, 0, "cannot read %s (run from the repository root)", path);
    for (int i = 0; i < n; i++) {
        char *body = ts_read_file(pathf(path, "%s/%s/%s", DATA_DIR, dir, names[i]->d_name), NULL);
        cr_assert(body, "cannot read %s", path);
        check(port, names[i]->d_name, body);
        free(body);
        free(names[i]);
    }
    free(names);
    return n;
}

static void check_invalid_json(int port, const char *name, const char *body)
{
    ts_resp r;
    post_jobs(&r, port, "local", body);
    expect_error(&r, 400, "invalid_json", name);
    ts_resp_free(&r);
}

static void check_invalid_job(int port, const char *name, const char *body)
{
    ts_resp r;
    post_jobs(&r, port, "local", body);
    expect_error(&r, 422, "invalid_job", name);
    ts_resp_free(&r);
}

/* The stored job behind a view must be what the client sent. */
static void check_stored(int port, const char *name, const json_t *sent, const json_t *view)
{
    const char *id = jstr(view, "id");
    cr_assert(id, "%s: a view without id", name);
    json_t *stored = job_get(port, "other", id);
    cr_expect_str_eq(nz(jstr(stored, "type")), nz(jstr(sent, "type")), "%s: type", name);
    json_t *args = json_object_get(sent, "args");
    cr_expect(json_equal(json_object_get(stored, "args"), args ? args : json_null()),
              "%s: args differ", name);
    if (jstr(sent, "id"))
        cr_expect_str_eq(id, jstr(sent, "id"), "%s: id", name);
    json_decref(stored);
}

static void check_valid(int port, const char *name, const char *body)
{
    ts_resp r;
    char loc[600], want[PATH_LEN];
    json_t *sent = json_loads(body, 0, NULL);
    cr_assert(sent, "%s is not JSON", name);
    post_jobs(&r, port, "other", body);
    cr_expect_eq(r.status, 202, "%s: status %ld, body %s", name, r.status, r.body);
    if (r.status == 202 && json_is_array(sent)) {
        json_t *jobs = json_object_get(r.json, "jobs");
        cr_assert_eq(json_array_size(jobs), json_array_size(sent), "%s: %s", name, r.body);
        for (size_t i = 0; i < json_array_size(sent); i++)
            check_stored(port, name, json_array_get(sent, i), json_array_get(jobs, i));
    } else if (r.status == 202) {
        cr_expect_str_eq(nz(ts_resp_header(&r, "Location", loc, sizeof loc)),
                         pathf(want, "/queues/other/jobs/%s", nz(jstr(r.json, "id"))), "%s", name);
        check_stored(port, name, sent, r.json);
    }
    json_decref(sent);
    ts_resp_free(&r);
}

Test(api, unparseable_bodies_answer_400_invalid_json)
{
    int port = api_up(api_config);
    cr_assert_gt(for_each_data_file("invalid_json", port, check_invalid_json), 0);
    cr_expect_eq(list_count(port, "local", ""), 0);
}

Test(api, invalid_jobs_answer_422_and_store_nothing)
{
    int port = api_up(api_config);
    cr_assert_gt(for_each_data_file("invalid_job", port, check_invalid_job), 0);
    cr_expect_eq(list_count(port, "local", ""), 0);
    cr_expect_eq(queue_number(port, "local", "processed_total"), 0);
}

Test(api, valid_jobs_are_stored_as_sent)
{
    int port = api_up(api_config);
    cr_assert_gt(for_each_data_file("valid", port, check_valid), 0);
}

Test(api, invalid_job_names_the_field)
{
    static const struct {
        char body[80];
        char field[16];
    } cases[] = {
        {"{\"args\": 1}", "type"},
        {"{\"type\": 7}", "type"},
        {"{\"type\": \"noop\", \"max_attempts\": 0}", "max_attempts"},
        {"{\"type\": \"noop\", \"delay\": -2}", "delay"},
        {"{\"type\": \"noop\", \"timeout\": 0}", "timeout"},
    };
    int port = api_up(api_config);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_resp r;
        post_jobs(&r, port, "local", cases[i].body);
        expect_error(&r, 422, "invalid_job", cases[i].body);
        cr_expect_str_eq(nz(json_string_value(error_member(&r, "field"))), cases[i].field,
                         "%s: %s", cases[i].body, r.body);
        ts_resp_free(&r);
    }
}

/* ---- batches ---- */

static void expect_batch_index(int port, const char *body, long index)
{
    ts_resp r;
    post_jobs(&r, port, "local", body);
    expect_error(&r, 422, "invalid_job", body);
    cr_expect(json_is_integer(error_member(&r, "index")), "%s: no index: %s", body, r.body);
    cr_expect_eq(json_integer_value(error_member(&r, "index")), index, "%s: %s", body, r.body);
    ts_resp_free(&r);
}

Test(api, batch_errors_carry_the_index_and_store_nothing)
{
    int port = api_up(api_config);
    expect_batch_index(port, "[{\"type\": \"noop\"}, 5]", 1);
    expect_batch_index(port,
                       "[{\"type\": \"noop\", \"id\": \"d1\"}, {\"type\": \"noop\"},"
                       " {\"type\": \"noop\", \"id\": \"d1\"}]",
                       2);
    expect_batch_index(port,
                       "[{\"type\": \"noop\", \"id\": \"g0\"}, {\"tpye\": \"noop\"},"
                       " {\"type\": \"noop\", \"id\": \"g2\"}]",
                       1);
    static const char *const ids[] = {"d1", "g0", "g2"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        ts_resp r;
        char path[PATH_LEN];
        ts_get(&r, port, pathf(path, "/queues/local/jobs/%s", ids[i]));
        expect_error(&r, 404, "unknown_job", ids[i]);
        ts_resp_free(&r);
    }
    cr_expect_eq(list_count(port, "local", ""), 0);
    cr_expect_eq(queue_number(port, "local", "enqueued"), 0);
}

Test(api, batch_answers_in_input_order_and_replays_known_ids)
{
    int port = api_up(api_config);
    ts_resp r;
    post_jobs(&r, port, "local",
              "[{\"type\": \"noop\", \"id\": \"b1\"}, {\"type\": \"noop\", \"id\": \"b2\"}]");
    cr_assert_eq(r.status, 202, "body %s", r.body);
    json_t *jobs = json_object_get(r.json, "jobs");
    cr_assert_eq(json_array_size(jobs), 2, "body %s", r.body);
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 0), "id")), "b1");
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 1), "id")), "b2");
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 0), "state")), "enqueued");
    cr_expect(!json_is_true(json_object_get(json_array_get(jobs, 0), "replayed")));
    ts_resp_free(&r);

    post_jobs(&r, port, "local",
              "[{\"type\": \"noop\", \"id\": \"b2\"}, {\"type\": \"noop\", \"id\": \"b3\"}]");
    cr_assert_eq(r.status, 202, "body %s", r.body);
    jobs = json_object_get(r.json, "jobs");
    cr_assert_eq(json_array_size(jobs), 2, "body %s", r.body);
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 0), "id")), "b2");
    cr_expect(json_is_true(json_object_get(json_array_get(jobs, 0), "replayed")), "%s", r.body);
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 1), "id")), "b3");
    cr_expect(!json_is_true(json_object_get(json_array_get(jobs, 1), "replayed")), "%s", r.body);
    ts_resp_free(&r);
    cr_expect_eq(list_count(port, "local", ""), 3);
}

/* A batch of n noop jobs as JSON text (caller frees). */
static char *batch_of(size_t n)
{
    json_t *batch = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(batch, json_pack("{s:s}", "type", "noop"));
    char *text = json_dumps(batch, JSON_COMPACT);
    json_decref(batch);
    return text;
}

Test(api, batch_over_max_batch_answers_422_batch_too_large)
{
    int port = api_up(api_config);
    ts_resp r;
    char *ten = batch_of(10), *eleven = batch_of(11);
    post_jobs(&r, port, "local", ten);
    cr_expect_eq(r.status, 202, "max_batch jobs: status %ld, body %s", r.status, r.body);
    cr_expect_eq(json_array_size(json_object_get(r.json, "jobs")), 10);
    ts_resp_free(&r);
    post_jobs(&r, port, "local", eleven);
    expect_error(&r, 422, "batch_too_large", "11 jobs");
    ts_resp_free(&r);
    free(ten);
    free(eleven);
    cr_expect_eq(list_count(port, "local", ""), 10);
}

Test(api, idempotency_key_with_batch_or_other_id_answers_422)
{
    int port = api_up(api_config);
    ts_resp r;
    post_jobs_with(&r, port, "local", "[{\"type\": \"noop\"}]", "Idempotency-Key: k1");
    expect_error(&r, 422, "invalid_job", "Idempotency-Key with a batch");
    ts_resp_free(&r);
    post_jobs_with(&r, port, "local", "{\"type\": \"noop\", \"id\": \"k2\"}", "Idempotency-Key: k1");
    expect_error(&r, 422, "invalid_job", "Idempotency-Key differing from id");
    ts_resp_free(&r);
    cr_expect_eq(list_count(port, "local", ""), 0);
}

/* ---- routing, methods, limits, media types ---- */

Test(api, unknown_queues_paths_and_jobs_answer_404)
{
    static const struct {
        char method[8];
        char path[40];
        char code[16];
    } cases[] = {
        {"POST", "/queues/nope/jobs", "unknown_queue"},
        {"GET", "/queues/nope", "unknown_queue"},
        {"GET", "/queues/nope/jobs", "unknown_queue"},
        {"GET", "/queues/nope/jobs/x", "unknown_queue"},
        {"POST", "/queues/nope/pause", "unknown_queue"},
        {"GET", "/nothing", "not_found"},
        {"GET", "/queues/local/jobs/a/b", "not_found"},
        {"GET", "/queues/local/jobs/nosuch", "unknown_job"},
        {"DELETE", "/queues/local/jobs/nosuch", "unknown_job"},
    };
    int port = api_up(api_config);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_resp r;
        const char *body = strcmp(cases[i].method, "POST") == 0 ? "{\"type\": \"noop\"}" : NULL;
        ts_http(&r, cases[i].method, port, cases[i].path, body, NULL, NULL);
        expect_error(&r, 404, cases[i].code, cases[i].path);
        ts_resp_free(&r);
    }
}

Test(api, wrong_method_answers_405_with_allow)
{
    static const struct {
        char method[8];
        char path[32];
        char allow[2][8]; /* methods the Allow header must name */
    } cases[] = {
        {"PUT", "/queues/local/jobs", {"GET", "POST"}},
        {"DELETE", "/queues", {"GET", "GET"}},
        {"POST", "/queues/local/jobs/x", {"GET", "DELETE"}},
        {"GET", "/queues/local/pause", {"POST", "POST"}},
    };
    int port = api_up(api_config);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_resp r;
        char allow[128];
        ts_http(&r, cases[i].method, port, cases[i].path, NULL, NULL, NULL);
        expect_error(&r, 405, "method_not_allowed", cases[i].path);
        const char *got = ts_resp_header(&r, "Allow", allow, sizeof allow);
        cr_expect(got, "%s %s: no Allow header", cases[i].method, cases[i].path);
        for (size_t k = 0; got && k < 2; k++)
            cr_expect(strstr(got, cases[i].allow[k]), "%s %s: Allow \"%s\" lacks %s",
                      cases[i].method, cases[i].path, got, cases[i].allow[k]);
        ts_resp_free(&r);
    }
}

/* {"type": "echo", "args": "xxx..."} of exactly len bytes (caller frees). */
static char *body_of_size(size_t len)
{
    static const char head[] = "{\"type\": \"echo\", \"args\": \"", tail[] = "\"}";
    size_t fill = len - (sizeof head - 1) - (sizeof tail - 1);
    char *body = malloc(len + 1);
    cr_assert(body);
    memcpy(body, head, sizeof head - 1);
    memset(body + sizeof head - 1, 'x', fill);
    memcpy(body + sizeof head - 1 + fill, tail, sizeof tail);
    return body;
}

Test(api, body_over_max_body_answers_413)
{
    int port = api_up(api_config);
    ts_resp r;
    char *small = body_of_size(4000), *big = body_of_size(5000);
    post_jobs(&r, port, "local", big);
    expect_error(&r, 413, "payload_too_large", "5000 bytes");
    ts_resp_free(&r);
    cr_expect_eq(list_count(port, "local", ""), 0);
    post_jobs(&r, port, "local", small);
    cr_expect_eq(r.status, 202, "4000 bytes: status %ld, body %s", r.status, r.body);
    ts_resp_free(&r);
    free(small);
    free(big);
}

Test(api, content_type_must_be_json_where_a_body_is_parsed)
{
    static const struct {
        char type[40];
        long status;
    } cases[] = {
        {"", 415},
        {"text/plain", 415},
        {"application/x-www-form-urlencoded", 415},
        {"application/json; charset=utf-8", 202},
        {"application/json;charset=UTF-8", 202},
        {"Application/JSON", 202},
    };
    int port = api_up(api_config);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_resp r;
        ts_http(&r, "POST", port, "/queues/local/jobs", "{\"type\": \"noop\"}", cases[i].type, NULL);
        if (cases[i].status == 415)
            expect_error(&r, 415, "unsupported_media_type", cases[i].type);
        else
            cr_expect_eq(r.status, cases[i].status, "Content-Type \"%s\": status %ld, body %s",
                         cases[i].type, r.status, r.body);
        ts_resp_free(&r);
    }
    cr_expect_eq(list_count(port, "local", ""), 3);
    /* A bodiless POST ignores the media type. */
    ts_resp r;
    ts_http(&r, "POST", port, "/queues/local/pause", NULL, "", NULL);
    cr_expect_eq(r.status, 200, "pause without Content-Type: status %ld, body %s", r.status, r.body);
    ts_resp_free(&r);
}

Test(api, list_rejects_bad_parameters_with_400)
{
    static const char queries[][48] = {
        "limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "limit=10x",
        "state=bogus", "state=", "cursor=%21%21not-a-cursor%21%21",
    };
    int port = api_up(api_config);
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        ts_resp r;
        char path[PATH_LEN];
        ts_get(&r, port, pathf(path, "/queues/local/jobs?%s", queries[i]));
        expect_error(&r, 400, "invalid_parameter", queries[i]);
        ts_resp_free(&r);
    }
    json_t *ok = get_json(port, "/queues/local/jobs?limit=1000&state=dead");
    cr_expect(json_is_array(json_object_get(ok, "jobs")));
    json_decref(ok);
}

/* ---- auth ---- */

static long status_with_auth(int port, const char *method, const char *path, const char *body,
                             const char *authorization, ts_resp *keep)
{
    ts_resp r;
    const char *headers[] = {authorization, NULL};
    ts_http(&r, method, port, path, body, NULL, authorization ? headers : NULL);
    long status = r.status;
    if (keep)
        *keep = r;
    else
        ts_resp_free(&r);
    return status;
}

Test(api, auth_tokens_require_a_bearer_token)
{
    int port = api_up(auth_config);
    static const char good[] = "Authorization: Bearer " API_TOKEN;
    static const char *const bad[] = {NULL, "Authorization: Bearer wrong-token",
                                      "Authorization: Bearer " API_TOKEN "x",
                                      "Authorization: Basic czNjcmV0LXRva2VuLTlmMmE6",
                                      "Authorization: " API_TOKEN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ts_resp r;
        char www[128];
        status_with_auth(port, "GET", "/queues", NULL, bad[i], &r);
        expect_error(&r, 401, "unauthorized", nz(bad[i]));
        cr_expect_eq(strncmp(nz(ts_resp_header(&r, "WWW-Authenticate", www, sizeof www)),
                             "Bearer", 6), 0, "%s: WWW-Authenticate missing", nz(bad[i]));
        ts_resp_free(&r);
        cr_expect_eq(status_with_auth(port, "POST", "/queues/local/jobs", "{\"type\": \"noop\"}",
                                      bad[i], NULL), 401);
    }
    cr_expect_eq(status_with_auth(port, "GET", "/queues", NULL, good, NULL), 200);
    cr_expect_eq(status_with_auth(port, "POST", "/queues/local/jobs", "{\"type\": \"noop\"}", good,
                                  NULL), 202);
    cr_expect_eq(status_with_auth(port, "GET", "/healthz", NULL, NULL, NULL), 200);
    ts_resp r;
    cr_expect_eq(status_with_auth(port, "GET", "/queues/local/jobs", NULL, good, &r), 200);
    cr_expect_eq(json_array_size(json_object_get(r.json, "jobs")), 1, "only the authorised POST");
    ts_resp_free(&r);
    cr_expect(!ts_log_contains(&srv, API_TOKEN), "the token appears in the log");
}

/* ---- cancel ---- */

Test(api, cancel_of_finished_or_cancelled_job_answers_409)
{
    int port = api_up(api_config);
    char id[JOB_ID_MAX + 1], path[PATH_LEN];
    ts_resp r;
    submit_ok(port, "local", "{\"type\": \"noop\"}", id);
    cr_assert(ts_wait_state(port, "local", id, "succeeded", 5000, NULL));
    ts_http(&r, "DELETE", port, pathf(path, "/queues/local/jobs/%s", id), NULL, NULL, NULL);
    expect_error(&r, 409, "conflict", "cancel of a succeeded job");
    ts_resp_free(&r);

    submit_ok(port, "local", "{\"type\": \"noop\", \"delay\": 60}", id);
    ts_http(&r, "DELETE", port, pathf(path, "/queues/local/jobs/%s", id), NULL, NULL, NULL);
    cr_expect_eq(r.status, 200, "first cancel: %ld %s", r.status, r.body);
    ts_resp_free(&r);
    ts_http(&r, "DELETE", port, path, NULL, NULL, NULL);
    expect_error(&r, 409, "conflict", "second cancel");
    ts_resp_free(&r);
}

Test(api, cancelled_scheduled_job_never_runs)
{
    int port = api_up(api_config);
    char id[JOB_ID_MAX + 1], path[PATH_LEN];
    ts_resp r;
    submit_ok(port, "local", "{\"type\": \"noop\", \"delay\": 0.3}", id);
    ts_http(&r, "DELETE", port, pathf(path, "/queues/local/jobs/%s", id), NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "cancel: %ld %s", r.status, r.body);
    cr_expect_str_eq(nz(jstr(r.json, "state")), "cancelled");
    ts_resp_free(&r);
    /* Well past its time: still cancelled, never started. */
    cr_expect(stays_unstarted(port, "local", id, "cancelled", 800));
    cr_expect_eq(queue_number(port, "local", "processed_total"), 0);
    cr_expect_eq(queue_number(port, "local", "scheduled"), 0);
}

/* ---- running jobs ---- */

Test(api, sleep_job_is_seen_running_then_succeeded)
{
    int port = api_up(api_config);
    char id[JOB_ID_MAX + 1];
    json_t *view = NULL;
    submit_ok(port, "local", "{\"type\": \"sleep\", \"args\": {\"ms\": 500}}", id);
    cr_assert(ts_wait_state(port, "local", id, "running", 2000, &view), "never seen running");
    cr_expect_gt(view_time(view, "started_at"), 0, "running without started_at");
    json_decref(view);
    cr_expect_eq(queue_number(port, "local", "running"), 1);
    cr_assert(ts_wait_state(port, "local", id, "succeeded", 5000, &view), "never succeeded");
    int64_t started = view_time(view, "started_at"), finished = view_time(view, "finished_at");
    cr_expect_gt(started, 0);
    cr_expect_geq(finished - started, 500, "ran %lld ms", (long long)(finished - started));
    cr_expect_eq(jint(view, "attempts"), 1);
    cr_expect(json_is_null(json_object_get(view, "last_error")));
    json_decref(view);
    cr_expect_eq(queue_number(port, "local", "processed_total"), 1);
}

Test(api, failing_job_with_one_attempt_is_dead)
{
    int port = api_up(api_config);
    char id[JOB_ID_MAX + 1];
    json_t *view = NULL;
    submit_ok(port, "local", "{\"type\": \"fail\", \"max_attempts\": 1}", id);
    cr_assert(ts_wait_state(port, "local", id, "dead", 5000, &view), "never dead");
    cr_expect_eq(jint(view, "attempts"), 1);
    cr_expect_gt(strlen(nz(jstr(view, "last_error"))), 0, "no last_error");
    cr_expect_gt(view_time(view, "finished_at"), 0);
    json_decref(view);
    json_t *dead = get_json(port, "/queues/local/dead");
    json_t *first = json_array_get(json_object_get(dead, "jobs"), 0);
    cr_expect_str_eq(nz(jstr(first, "id")), id);
    cr_expect(jstr(first, "last_error"), "dead list without last_error");
    json_decref(dead);
    cr_expect_eq(queue_number(port, "local", "dead"), 1);
    cr_expect_eq(queue_number(port, "local", "failed_total"), 1);
}

Test(api, failing_job_retries_then_dies_after_max_attempts)
{
    int port = api_up(api_config);
    char id[JOB_ID_MAX + 1];
    json_t *view = NULL;
    submit_ok(port, "retry", "{\"type\": \"fail\", \"max_attempts\": 3}", id);
    cr_assert(ts_wait_state(port, "retry", id, "retrying", 3000, &view), "never seen retrying");
    cr_expect_geq(jint(view, "attempts"), 1);
    cr_expect(jstr(view, "last_error"), "retrying without last_error");
    json_decref(view);
    cr_assert(ts_wait_state(port, "retry", id, "dead", 5000, &view), "never dead");
    cr_expect_eq(jint(view, "attempts"), 3);
    json_decref(view);
    cr_expect_eq(queue_number(port, "retry", "failed_total"), 3);
}

Test(api, scheduled_job_does_not_start_before_its_time)
{
    int port = api_up(api_config);
    char id[JOB_ID_MAX + 1];
    json_t *view = NULL;
    submit_ok(port, "local", "{\"type\": \"noop\", \"delay\": 0.3}", id);
    cr_assert(ts_wait_state(port, "local", id, "succeeded", 3000, &view), "never succeeded");
    int64_t waited = view_time(view, "started_at") - view_time(view, "created_at");
    cr_expect_geq(waited, 300, "started %lld ms after created", (long long)waited);
    json_decref(view);
}

/* ---- many concurrent submissions ---- */

#define SUBMITTERS 8
#define JOBS_EACH 125

typedef struct submitter {
    int port;
    int accepted;
    long last_bad_status;
    char ids[JOBS_EACH][JOB_ID_MAX + 1];
} submitter;

/* Criterion's assertions belong to the test's thread: count, assert later. */
static void *submitter_run(void *arg)
{
    submitter *s = arg;
    for (int i = 0; i < JOBS_EACH; i++) {
        ts_resp r;
        ts_post(&r, s->port, "/queues/local/jobs", "{\"type\": \"noop\"}");
        if (r.status == 202 && jstr(r.json, "id"))
            snprintf(s->ids[s->accepted++], JOB_ID_MAX + 1, "%s", jstr(r.json, "id"));
        else
            s->last_bad_status = r.status;
        ts_resp_free(&r);
    }
    return NULL;
}

Test(api, thousand_concurrent_jobs_all_succeed)
{
    int port = api_up(api_config);
    submitter *subs = calloc(SUBMITTERS, sizeof *subs);
    pthread_t threads[SUBMITTERS];
    cr_assert(subs);
    for (int t = 0; t < SUBMITTERS; t++) {
        subs[t].port = port;
        cr_assert_eq(pthread_create(&threads[t], NULL, submitter_run, &subs[t]), 0);
    }
    for (int t = 0; t < SUBMITTERS; t++)
        pthread_join(threads[t], NULL);
    json_t *submitted = json_object();
    for (int t = 0; t < SUBMITTERS; t++) {
        cr_expect_eq(subs[t].accepted, JOBS_EACH, "thread %d: last refusal %ld", t,
                     subs[t].last_bad_status);
        for (int i = 0; i < subs[t].accepted; i++)
            json_object_set_new(submitted, subs[t].ids[i], json_true());
    }
    free(subs);
    cr_expect_eq(json_object_size(submitted), SUBMITTERS * JOBS_EACH, "ids are not unique");

    cr_expect_eq(wait_queue_number(port, "local", "processed_total", SUBMITTERS * JOBS_EACH, 60000),
                 SUBMITTERS * JOBS_EACH);
    json_t *done = list_all(port, "local", "state=succeeded&", 1000, NULL);
    cr_expect_eq(json_array_size(done), SUBMITTERS * JOBS_EACH);
    size_t i;
    json_t *view;
    json_array_foreach(done, i, view) {
        cr_expect(json_object_get(submitted, nz(jstr(view, "id"))), "unknown job %s listed",
                  nz(jstr(view, "id")));
        json_object_del(submitted, nz(jstr(view, "id")));
    }
    cr_expect_eq(json_object_size(submitted), 0, "jobs missing from the succeeded list");
    json_decref(done);
    json_decref(submitted);
}

/* ---- listing ---- */

#define PAGED_JOBS 25

Test(api, list_pages_walk_every_job_once_newest_first)
{
    int port = api_up(api_config);
    char ids[PAGED_JOBS][JOB_ID_MAX + 1];
    ts_resp r;
    ts_post(&r, port, "/queues/local/pause", NULL);
    cr_assert_eq(r.status, 200, "pause: %ld %s", r.status, r.body);
    ts_resp_free(&r);
    for (int i = 0; i < PAGED_JOBS; i++)
        submit_ok(port, "local", "{\"type\": \"noop\"}", ids[i]);

    int pages = 0;
    json_t *all = list_all(port, "local", "", 7, &pages);
    cr_expect_eq(pages, (PAGED_JOBS + 6) / 7);
    cr_assert_eq(json_array_size(all), PAGED_JOBS);
    for (int i = 0; i < PAGED_JOBS; i++)
        cr_expect_str_eq(nz(jstr(json_array_get(all, (size_t)i), "id")), ids[PAGED_JOBS - 1 - i],
                         "position %d", i);
    json_decref(all);
    cr_expect_eq(list_count(port, "local", "state=enqueued&"), PAGED_JOBS);
    cr_expect_eq(list_count(port, "local", "state=succeeded&"), 0);
    json_t *first = get_json(port, "/queues/local/jobs");
    cr_expect_eq(json_array_size(json_object_get(first, "jobs")), PAGED_JOBS, "default limit 100");
    cr_expect(json_is_null(json_object_get(first, "next_cursor")));
    json_decref(first);
}

/* ---- queues ---- */

static void check_processors(const json_t *list, const char *const *names, size_t n,
                             const char *what)
{
    cr_expect(json_is_array(list), "%s is not an array", what);
    cr_expect_eq(json_array_size(list), n, "%s has %zu entries", what, json_array_size(list));
    for (size_t i = 0; i < n && i < json_array_size(list); i++)
        cr_expect_str_eq(nz(json_string_value(json_array_get(list, i))), names[i], "%s[%zu]", what, i);
}

static void check_queue_view(const json_t *q, const char *name)
{
    static const char *const states[] = {"scheduled", "enqueued", "running", "retrying", "dead"};
    static const char *const inline_only[] = {"inline"};
    static const char *const delayed[] = {"delayed"};
    bool is_delayed = strcmp(name, "delayed") == 0;
    cr_expect_str_eq(nz(jstr(q, "name")), name);
    check_processors(json_object_get(q, "enqueue"), delayed, is_delayed ? 1 : 0, "enqueue");
    check_processors(json_object_get(q, "dequeue"), inline_only, 1, "dequeue");
    cr_expect(json_is_false(json_object_get(q, "paused")), "%s: paused", name);
    json_t *counts = json_object_get(q, "counts");
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        cr_expect(json_is_integer(json_object_get(counts, states[i])), "%s: counts.%s", name,
                  states[i]);
    cr_expect(json_is_integer(json_object_get(q, "processed_total")), "%s: processed_total", name);
    cr_expect(json_is_integer(json_object_get(q, "failed_total")), "%s: failed_total", name);
}

Test(api, queues_resources_have_their_shape)
{
    int port = api_up(api_config);
    size_t n = sizeof api_queue_names / sizeof api_queue_names[0];
    json_t *all = get_json(port, "/queues");
    json_t *list = json_object_get(all, "queues");
    cr_assert_eq(json_array_size(list), n, "GET /queues: %zu queues", json_array_size(list));
    for (size_t i = 0; i < n; i++)
        check_queue_view(json_array_get(list, i), api_queue_names[i]);
    json_decref(all);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_LEN];
        json_t *q = get_json(port, pathf(path, "/queues/%s", api_queue_names[i]));
        check_queue_view(q, api_queue_names[i]);
        json_decref(q);
    }
}

static void pause_or_resume(int port, const char *action, bool paused)
{
    ts_resp r;
    char path[PATH_LEN];
    ts_post(&r, port, pathf(path, "/queues/local/%s", action), NULL);
    cr_assert_eq(r.status, 200, "%s: %ld %s", action, r.status, r.body);
    cr_expect_str_eq(nz(jstr(r.json, "name")), "local");
    cr_expect_eq(json_is_true(json_object_get(r.json, "paused")), paused, "%s: %s", action, r.body);
    ts_resp_free(&r);
}

Test(api, paused_queue_holds_jobs_until_resumed)
{
    int port = api_up(api_config);
    char id[JOB_ID_MAX + 1];
    pause_or_resume(port, "pause", true);
    json_t *q = get_json(port, "/queues/local");
    cr_expect(json_is_true(json_object_get(q, "paused")));
    json_decref(q);
    submit_ok(port, "local", "{\"type\": \"noop\"}", id);
    cr_expect(stays_unstarted(port, "local", id, "enqueued", 500), "a paused queue ran a job");
    cr_expect_eq(queue_number(port, "local", "enqueued"), 1);
    pause_or_resume(port, "resume", false);
    cr_expect(ts_wait_state(port, "local", id, "succeeded", 3000, NULL), "not run after resume");
}

/* ---- shutdown ---- */

Test(api, sigterm_refuses_new_jobs_and_waits_for_running_ones)
{
    int port = api_up(shutdown_config);
    char a[JOB_ID_MAX + 1], b[JOB_ID_MAX + 1];
    const int job_ms = 1500;
    long long submitted = ts_now_ms();
    submit_ok(port, "local", "{\"type\": \"sleep\", \"args\": {\"ms\": 1500}}", a);
    submit_ok(port, "local", "{\"type\": \"sleep\", \"args\": {\"ms\": 1500}}", b);
    cr_assert(ts_wait_state(port, "local", a, "running", 2000, NULL));
    cr_assert(ts_wait_state(port, "local", b, "running", 2000, NULL));
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);

    /* While the jobs finish, submissions are refused with 503. */
    ts_resp r = {0};
    long long deadline = ts_now_ms() + 1000;
    do {
        ts_resp_free(&r);
        ts_post(&r, port, "/queues/local/jobs", "{\"type\": \"noop\"}");
    } while (r.status != 503 && ts_now_ms() < deadline);
    expect_error(&r, 503, "unavailable", "POST during shutdown");
    char retry[32];
    cr_expect(ts_resp_header(&r, "Retry-After", retry, sizeof retry), "503 without Retry-After");
    ts_resp_free(&r);

    int status = ts_jobd_stop(&srv, 0, 15000);
    long long exited = ts_now_ms();
    cr_expect_eq(status, 0, "exit status %d", status);
    cr_expect_geq(exited - submitted, job_ms, "exited %lld ms after the jobs were submitted",
                  exited - submitted);
    cr_expect_lt(exited - submitted, job_ms + 5000, "shutdown took too long");
}

/* ---- the delayed processor ---- */

typedef struct delayed_post {
    int port;
    ts_resp r;
    atomic_bool done;
} delayed_post;

static void *delayed_post_run(void *arg)
{
    delayed_post *p = arg;
    ts_post(&p->r, p->port, "/queues/delayed/jobs", "{\"type\": \"noop\"}");
    atomic_store(&p->done, true);
    return NULL;
}

Test(api, delayed_processor_answers_late_without_blocking_http)
{
    int port = api_up(one_thread_config);
    delayed_post p = {.port = port};
    pthread_t t;
    long long began = ts_now_ms();
    cr_assert_eq(pthread_create(&t, NULL, delayed_post_run, &p), 0);
    /* Requests made while the submission waits out its delay answer at once.
     * Those begun 100 ms in surely reach the server after the POST did. */
    int answered_meanwhile = 0;
    double slowest = 0;
    while (!atomic_load(&p.done) && ts_now_ms() - began < 5000) {
        long long start = ts_now_ms();
        ts_resp r;
        ts_get(&r, port, "/queues/local");
        cr_expect_eq(r.status, 200);
        if (start - began >= 100 && !atomic_load(&p.done)) {
            answered_meanwhile++;
            slowest = r.seconds > slowest ? r.seconds : slowest;
        }
        ts_resp_free(&r);
        ts_sleep_ms(10);
    }
    pthread_join(t, NULL);
    cr_expect_eq(p.r.status, 202, "delayed POST: %ld %s", p.r.status, p.r.body);
    cr_expect_geq(p.r.seconds, 0.3, "answered after %.3f s", p.r.seconds);
    cr_expect_geq(answered_meanwhile, 3, "only %d requests answered during the delay",
                  answered_meanwhile);
    cr_expect_lt(slowest, 0.15, "a request took %.3f s during the delay", slowest);
    const char *id = jstr(p.r.json, "id");
    if (id)
        cr_expect(ts_wait_state(port, "delayed", id, "succeeded", 3000, NULL));
    ts_resp_free(&p.r);
}

/* Finished jobs and the dead set are bounded by count; what is trimmed is
 * gone (404) and the dead-set trim is logged, never silent. */
static const char retention_config[] =
    "{\"workers\": 2, \"shutdown_timeout\": 5,"
    " \"retention\": {\"max_finished\": 2}, \"dead\": {\"max_jobs\": 1},"
    " \"queues\": {\"local\": {\"dequeue\": [\"inline\"], " FAST_BACKOFF "}}}";

Test(api, finished_jobs_and_dead_set_are_bounded)
{
    int port = api_up(retention_config);
    char ids[4][JOB_ID_MAX + 1];
    for (int i = 0; i < 4; i++) {
        submit_ok(port, "local", "{\"type\": \"noop\"}", ids[i]);
        cr_assert(ts_wait_state(port, "local", ids[i], "succeeded", 5000, NULL), "job %d", i);
    }
    ts_resp r;
    char path[PATH_LEN];
    for (int i = 0; i < 4; i++) {
        ts_get(&r, port, pathf(path, "/queues/local/jobs/%s", ids[i]));
        cr_expect_eq(r.status, i < 2 ? 404 : 200, "job %d of 4 with max_finished 2: %ld", i,
                     r.status);
        ts_resp_free(&r);
    }

    char dead[2][JOB_ID_MAX + 1];
    for (int i = 0; i < 2; i++) {
        submit_ok(port, "local", "{\"type\": \"fail\", \"max_attempts\": 1}", dead[i]);
        cr_assert(ts_wait_state(port, "local", dead[i], "dead", 5000, NULL), "dead job %d", i);
    }
    json_t *list = get_json(port, "/queues/local/dead");
    json_t *jobs = json_object_get(list, "jobs");
    cr_expect_eq(json_array_size(jobs), 1, "dead.max_jobs 1");
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 0), "id")), dead[1], "the newest death stays");
    json_decref(list);
    cr_expect(ts_log_contains(&srv, "dead.trimmed"), "trimming the dead set is logged");
}

/* After SIGTERM no queue starts a job, not even one that falls due while
 * another queue's running job finishes. */
static const char two_queue_config[] =
    "{\"workers\": 4, \"shutdown_timeout\": 10,"
    " \"queues\": {\"a\": {\"dequeue\": [\"inline\"]}, \"b\": {\"dequeue\": [\"inline\"]}}}";

Test(api, sigterm_starts_no_job_in_any_queue)
{
    const char *const verbose[] = {"--verbose", NULL}; /* job.succeeded is a debug line */
    cr_assert_eq(ts_jobd_start(&srv, two_queue_config, verbose), 0, "jobd did not start");
    int port = srv.port;
    char running[JOB_ID_MAX + 1], due[JOB_ID_MAX + 1];
    submit_ok(port, "a", "{\"type\": \"sleep\", \"args\": {\"ms\": 1200}}", running);
    cr_assert(ts_wait_state(port, "a", running, "running", 2000, NULL));
    submit_ok(port, "b", "{\"type\": \"echo\", \"delay\": 0.4}", due);
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    int status = ts_jobd_stop(&srv, 0, 15000);
    cr_expect_eq(status, 0, "exit status %d", status);
    char line[JOB_ID_MAX + 32];
    snprintf(line, sizeof line, "job.succeeded id=%s", running);
    cr_expect(ts_log_contains(&srv, line), "the running job finished");
    snprintf(line, sizeof line, "job.echo id=%s", due);
    cr_expect_not(ts_log_contains(&srv, line), "a job due after SIGTERM was started");
    cr_expect(ts_log_contains(&srv, "queue b: 1 waiting"), "the job left in memory is counted");
}

/* A submission waiting in `delayed` behind `aggregate` is handed on at once
 * on SIGTERM: shutdown does not wait out the delay, and the job is answered. */
static const char long_delay_config[] =
    "{\"workers\": 2, \"shutdown_timeout\": 10,"
    " \"queues\": {\"delayed\": {\"enqueue\": [\"aggregate\", {\"name\": \"delayed\", \"delay\": 30}],"
    " \"dequeue\": [\"inline\"]}, \"local\": {\"dequeue\": [\"inline\"]}}}";

Test(api, sigterm_hands_delayed_jobs_on_at_once)
{
    int port = api_up(long_delay_config);
    delayed_post p = {.port = port};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, delayed_post_run, &p), 0);
    ts_sleep_ms(300); /* let the POST reach the delayed stage; nothing to poll for */
    cr_expect_not(atomic_load(&p.done), "the POST waits out its delay");
    long long signalled = ts_now_ms();
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    int status = ts_jobd_stop(&srv, 0, 15000);
    long long took = ts_now_ms() - signalled;
    pthread_join(t, NULL);
    cr_expect_eq(status, 0, "exit status %d", status);
    cr_expect_lt(took, 5000, "shutdown waited %lld ms", took);
    cr_expect_eq(p.r.status, 202, "the waiting submission got %ld", p.r.status);
    ts_resp_free(&p.r);
}

/* The dead list's cursor survives the deletion of the job it names. */
Test(api, dead_list_pages_across_a_deletion)
{
    int port = api_up(api_config);
    char ids[3][JOB_ID_MAX + 1];
    for (int i = 0; i < 3; i++) {
        submit_ok(port, "local", "{\"type\": \"fail\", \"max_attempts\": 1}", ids[i]);
        cr_assert(ts_wait_state(port, "local", ids[i], "dead", 5000, NULL));
    }
    json_t *page = get_json(port, "/queues/local/dead?limit=1");
    cr_assert_str_eq(nz(jstr(json_array_get(json_object_get(page, "jobs"), 0), "id")), ids[2]);
    char cursor[64];
    snprintf(cursor, sizeof cursor, "%s", nz(jstr(page, "next_cursor")));
    json_decref(page);
    ts_resp r;
    char path[PATH_LEN];
    ts_http(&r, "DELETE", port, pathf(path, "/queues/local/dead/%s", ids[2]), NULL, NULL, NULL);
    cr_expect_eq(r.status, 204);
    ts_resp_free(&r);
    page = get_json(port, pathf(path, "/queues/local/dead?limit=5&cursor=%s", cursor));
    json_t *jobs = json_object_get(page, "jobs");
    cr_expect_eq(json_array_size(jobs), 2);
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 0), "id")), ids[1], "newest death first");
    cr_expect_str_eq(nz(jstr(json_array_get(jobs, 1), "id")), ids[0]);
    json_decref(page);
}

/* Ctrl-C twice: a second signal during the graceful shutdown ends jobd at once. */
Test(api, second_sigterm_exits_at_once)
{
    int port = api_up(shutdown_config);
    char id[JOB_ID_MAX + 1];
    submit_ok(port, "local", "{\"type\": \"sleep\", \"args\": {\"ms\": 8000}}", id);
    cr_assert(ts_wait_state(port, "local", id, "running", 2000, NULL));
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    long long deadline = ts_now_ms() + ts_patience(2000);
    while (!ts_log_contains(&srv, "jobd.stopping") && ts_now_ms() < deadline)
        ts_sleep_ms(10);
    long long second = ts_now_ms();
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    int status = ts_jobd_stop(&srv, 0, 15000);
    cr_expect_eq(status, 1, "exit status %d", status);
    cr_expect_lt(ts_now_ms() - second, 3000, "the second signal was not obeyed at once");
    cr_expect(ts_log_contains(&srv, "second SIGTERM"));
}
