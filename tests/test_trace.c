/* test_trace.c - W3C trace context and request ids: util/trace.c against
 * tables of valid and malformed values, then end to end through a real jobd
 * (an inline, a Redis and an aggregate-into-Redis queue on the suite's
 * redis-server), a real webhook receiver (libmicrohttpd, in this process)
 * and a real program (tests/data/bin/trace_env.sh), reading jobd's JSON log. */
#include <criterion/criterion.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/trace.h"
#include "exec_test.h"
#include "support.h"

#define TP_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define TP_PARENT "00f067aa0ba902b7"
#define TP_VALID "00-" TP_TRACE "-" TP_PARENT "-01"
#define TS_VALID "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
#define RX_MAX 32 /* requests the receiver records */

/* ---- util/trace.c ------------------------------------------------------ */

TestSuite(trace);

typedef struct tp_case {
    char in[160];
    char out[64]; /* "" = malformed */
} tp_case;

static const tp_case tp_cases[] = {
    {TP_VALID, TP_VALID},
    {"00-" TP_TRACE "-" TP_PARENT "-00", "00-" TP_TRACE "-" TP_PARENT "-00"},
    {"00-" TP_TRACE "-" TP_PARENT "-ff", "00-" TP_TRACE "-" TP_PARENT "-ff"},
    /* later versions: the first four fields, the sampled flag only */
    {"01-" TP_TRACE "-" TP_PARENT "-01", TP_VALID},
    {"01-" TP_TRACE "-" TP_PARENT "-02", "00-" TP_TRACE "-" TP_PARENT "-00"},
    {"cc-" TP_TRACE "-" TP_PARENT "-0b-what-the-future-holds", TP_VALID},
    {"fe-" TP_TRACE "-" TP_PARENT "-01-", TP_VALID},
    /* malformed */
    {"", ""},
    {"ff-" TP_TRACE "-" TP_PARENT "-01", ""},
    {"00-" TP_TRACE "-" TP_PARENT "-01-extra", ""},
    {"00-" TP_TRACE "-" TP_PARENT "-01,00-" TP_TRACE "-" TP_PARENT "-01", ""},
    {"01-" TP_TRACE "-" TP_PARENT "-01x", ""},
    {"00-00000000000000000000000000000000-" TP_PARENT "-01", ""},
    {"00-" TP_TRACE "-0000000000000000-01", ""},
    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" TP_PARENT "-01", ""},
    {"00-" TP_TRACE "-00F067AA0BA902B7-01", ""},
    {"00-" TP_TRACE "-" TP_PARENT "-0G", ""},
    {"00-" TP_TRACE "-" TP_PARENT "-1", ""},
    {"0A-" TP_TRACE "-" TP_PARENT "-01", ""},
    {"0g-" TP_TRACE "-" TP_PARENT "-01", ""},
    {"00_" TP_TRACE "_" TP_PARENT "_01", ""},
    {"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", ""},
    {"00-" TP_TRACE "-" TP_PARENT, ""},
    {"00-" TP_TRACE "x-" TP_PARENT "-01", ""},
};
#define TP_NCASES (sizeof tp_cases / sizeof tp_cases[0])

Test(trace, traceparent_table)
{
    char out[TRACE_PARENT_LEN + 1];
    for (size_t i = 0; i < TP_NCASES; i++) {
        int rc = trace_parent_parse(tp_cases[i].in, out);
        if (tp_cases[i].out[0]) {
            cr_expect_eq(rc, 0, "\"%s\" refused", tp_cases[i].in);
            cr_expect_str_eq(out, tp_cases[i].out, "\"%s\"", tp_cases[i].in);
        } else {
            cr_expect_eq(rc, -1, "\"%s\" accepted as %s", tp_cases[i].in, out);
            cr_expect_str_empty(out);
        }
    }
    cr_expect_eq(trace_parent_parse(NULL, out), -1);
}

/* ok takes max characters and refuses max + 1, NULL and every one of bad. */
static void expect_bounded(bool (*ok)(const char *), size_t max, const char *const *bad,
                           size_t n_bad)
{
    char *s = malloc(max + 2);
    memset(s, 'a', max + 1);
    s[max + 1] = '\0';
    cr_expect_not(ok(s), "%zu chars taken", max + 1);
    s[max] = '\0';
    cr_expect(ok(s), "%zu chars refused", max);
    free(s);
    for (size_t i = 0; i < n_bad; i++)
        cr_expect_not(ok(bad[i]), "case %zu taken", i);
    cr_expect_not(ok(NULL));
}

Test(trace, tracestate_is_bounded_printable_ascii)
{
    const char *bad[] = {"", "a=1\tb=2", "a=1\nb=2", "a=\x7f", "a=\xc3\xa9", "\x01"};
    expect_bounded(trace_state_ok, TRACE_STATE_MAX, bad, sizeof bad / sizeof bad[0]);
    cr_expect(trace_state_ok(TS_VALID));
    cr_expect(trace_state_ok("a=1, b=2"));
}

Test(trace, child_keeps_trace_and_flags_with_a_new_parent)
{
    enum { N = 200 };
    static char kids[N][TRACE_PARENT_LEN + 1];
    const char *parent = "00-" TP_TRACE "-" TP_PARENT "-00";
    for (int i = 0; i < N; i++) {
        char again[TRACE_PARENT_LEN + 1], id[TRACE_ID_LEN + 1];
        trace_parent_child(parent, kids[i]);
        cr_assert_eq(trace_parent_parse(kids[i], again), 0, "%s is malformed", kids[i]);
        cr_expect_str_eq(again, kids[i]);
        trace_id_of(kids[i], id);
        cr_expect_str_eq(id, TP_TRACE);
        cr_expect_eq(strncmp(kids[i] + 53, "00", 2), 0, "flags changed: %s", kids[i]);
        cr_expect_neq(strncmp(kids[i] + 36, TP_PARENT, 16), 0, "parent id kept: %s", kids[i]);
        for (int k = 0; k < i; k++)
            cr_expect_str_neq(kids[k], kids[i], "parent id repeated");
    }
}

Test(trace, request_id_characters_and_length)
{
    const char *bad[] = {"", "a b", "a\tb", "a\x01", "a,b", "a;b", "caf\xc3\xa9", "a\"b", "<a>"};
    expect_bounded(trace_request_id_ok, TRACE_REQUEST_ID_MAX, bad, sizeof bad / sizeof bad[0]);
    cr_expect(trace_request_id_ok("req-1"));
    cr_expect(trace_request_id_ok("A.b_c:d/e+f=g-h9"));
}

/* ---- a webhook receiver ------------------------------------------------- */

/* What one request to the receiver carried. */
typedef struct rx_call {
    char job_id[160], traceparent[160], tracestate[600];
} rx_call;

/* Answers 500 to the first call for a job and 200 to the later ones, and
 * keeps every call's headers. */
typedef struct rx {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    rx_call calls[RX_MAX];
    int n;
} rx;

static rx recv_srv;
static ts_jobd jobd_srv;
static char work_dir[512];

/* Copies header name of c into out ("" when absent). */
static void rx_header(struct MHD_Connection *c, const char *name, char *out, size_t len)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, len, "%s", v ? v : "");
}

static enum MHD_Result rx_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    static int started;
    rx *r = cls;
    if (!*con_cls) {
        *con_cls = &started;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    rx_call call;
    rx_header(c, "Jobd-Job-Id", call.job_id, sizeof call.job_id);
    rx_header(c, "traceparent", call.traceparent, sizeof call.traceparent);
    rx_header(c, "tracestate", call.tracestate, sizeof call.tracestate);
    pthread_mutex_lock(&r->mu);
    bool seen = false;
    for (int i = 0; i < r->n; i++)
        seen = seen || strcmp(r->calls[i].job_id, call.job_id) == 0;
    if (r->n < RX_MAX)
        r->calls[r->n++] = call;
    pthread_mutex_unlock(&r->mu);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(seen ? 2 : 4, (void *)(seen ? "ok" : "busy"),
                                        MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, seen ? 200 : 500, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The calls the receiver saw for job id, in order, into out (RX_MAX). */
static int rx_calls_of(const char *id, rx_call *out)
{
    int k = 0;
    pthread_mutex_lock(&recv_srv.mu);
    for (int i = 0; i < recv_srv.n; i++)
        if (strcmp(recv_srv.calls[i].job_id, id) == 0)
            out[k++] = recv_srv.calls[i];
    pthread_mutex_unlock(&recv_srv.mu);
    return k;
}

/* ---- jobd ----------------------------------------------------------------- */

/* Starts the receiver and a jobd with queues mem (inline), red (redis) and
 * agg (aggregate into redis), handlers hook (the receiver), cmd
 * (trace_env.sh into work_dir) and noop, max_body 4 KiB, JSON log, --verbose. */
static void e2e_setup(void)
{
    pthread_mutex_init(&recv_srv.mu, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    recv_srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, rx_access,
                                  &recv_srv, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
    cr_assert_not_null(recv_srv.d, "the receiver did not start");
    recv_srv.port = MHD_get_daemon_info(recv_srv.d, MHD_DAEMON_INFO_BIND_PORT)->port;
    char u[32], bin[PATH_MAX], prefix[32];
    snprintf(work_dir, sizeof work_dir, "%s/%s_trace", ts_tmpdir(), ts_unique(u));
    cr_assert_eq(mkdir(work_dir, 0700), 0);
    char *config = malloc(8192);
    snprintf(config, 8192,
             "{\"workers\": 4, \"shutdown_timeout\": 2, \"poll_interval\": 0.05,"
             " \"log\": {\"format\": \"json\"}, \"limits\": {\"max_body\": 4096},"
             " \"redis\": {\"url\": \"redis://127.0.0.1:@REDIS_PORT@/0\", \"prefix\": \"%s\"},"
             " \"queues\": {"
             "  \"mem\": {\"dequeue\": [\"inline\"], \"backoff\": {\"base\": 0.01, \"factor\": 0,"
             "   \"exponent\": 1, \"jitter\": 0, \"max\": 0.05}},"
             "  \"red\": {\"dequeue\": [\"redis\"], \"backoff\": {\"base\": 0.01, \"factor\": 0,"
             "   \"exponent\": 1, \"jitter\": 0, \"max\": 0.05}},"
             "  \"agg\": {\"enqueue\": [\"aggregate\"], \"dequeue\": [\"redis\"]}},"
             " \"handlers\": {\"noop\": {\"kind\": \"builtin\"},"
             "  \"hook\": {\"kind\": \"webhook\", \"url\": \"http://127.0.0.1:%d/hook\"},"
             "  \"cmd\": {\"kind\": \"command\", \"argv\": [\"%s\", \"%s\"]}}}",
             ts_unique(prefix), recv_srv.port, et_bin("trace_env.sh", bin), work_dir);
    const char *args[] = {"--verbose", NULL};
    int rc = ts_jobd_start(&jobd_srv, config, args);
    free(config);
    cr_assert_eq(rc, 0, "jobd did not start");
}

static void e2e_teardown(void)
{
    if (jobd_srv.pid > 0)
        ts_jobd_stop(&jobd_srv, SIGTERM, 10000);
    if (recv_srv.d)
        MHD_stop_daemon(recv_srv.d);
    pthread_mutex_destroy(&recv_srv.mu);
}

TestSuite(trace_e2e, .init = e2e_setup, .fini = e2e_teardown, .timeout = 90);

/* POSTs body to queue with the header lines given (NULL-terminated, may be
 * NULL); expects 202 and returns the answer's JSON (new reference). */
static json_t *post_jobs(const char *queue, const char *body, const char *const *headers)
{
    char path[128];
    snprintf(path, sizeof path, "/queues/%s/jobs", queue);
    ts_resp r;
    cr_assert_eq(ts_http(&r, "POST", jobd_srv.port, path, body, NULL, headers), 0);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    json_t *view = json_incref(r.json);
    ts_resp_free(&r);
    cr_assert_not_null(view);
    return view;
}

static const char *str_of(const json_t *view, const char *key)
{
    return json_string_value(json_object_get(view, key));
}

/* Waits for job id of queue to be succeeded after two attempts; returns its view. */
static json_t *wait_two_attempts(const char *queue, const char *id)
{
    json_t *view = NULL;
    cr_assert(ts_wait_state(jobd_srv.port, queue, id, "succeeded", 20000, &view),
              "job %s of %s did not succeed", id, queue);
    cr_expect_eq(json_integer_value(json_object_get(view, "attempts")), 2);
    return view;
}

/* Checks that got (a traceparent a call carried) has the submission's trace
 * id and flags, a parent id of its own, and differs from other (may be "").
 */
static void expect_child(const char *got, const char *other)
{
    char parsed[TRACE_PARENT_LEN + 1];
    cr_assert_eq(trace_parent_parse(got, parsed), 0, "malformed traceparent \"%s\"", got);
    cr_expect_str_eq(parsed, got, "not sent as version 00");
    cr_expect_eq(strncmp(got, "00-" TP_TRACE "-", 36), 0, "another trace: %s", got);
    cr_expect_neq(strncmp(got + 36, TP_PARENT, 16), 0, "the client's parent id: %s", got);
    cr_expect_str_eq(got + 52, "-01", "flags changed: %s", got);
    cr_expect_str_neq(got, other, "two attempts, one parent id");
}

static const char *const trace_headers[] = {"traceparent: " TP_VALID, "tracestate: " TS_VALID,
                                            NULL};

Test(trace_e2e, webhook_attempts_share_the_trace_with_a_new_parent_each)
{
    const char *queues[] = {"mem", "red"};
    for (size_t q = 0; q < 2; q++) {
        json_t *sub = post_jobs(queues[q], "{\"type\": \"hook\"}", trace_headers);
        cr_expect_str_eq(str_of(sub, "trace_id"), TP_TRACE);
        char id[160];
        snprintf(id, sizeof id, "%s", str_of(sub, "id"));
        json_decref(sub);
        json_t *view = wait_two_attempts(queues[q], id);
        cr_expect_str_eq(str_of(view, "trace_id"), TP_TRACE, "%s: GET lost the trace", queues[q]);
        cr_expect_str_eq(str_of(view, "tracestate"), TS_VALID);
        json_decref(view);
        rx_call calls[RX_MAX];
        cr_assert_eq(rx_calls_of(id, calls), 2, "%s: the receiver saw no two calls", queues[q]);
        expect_child(calls[0].traceparent, "");
        expect_child(calls[1].traceparent, calls[0].traceparent);
        cr_expect_str_eq(calls[0].tracestate, TS_VALID);
        cr_expect_str_eq(calls[1].tracestate, TS_VALID);
    }
}

Test(trace_e2e, webhook_of_a_job_without_trace_sends_none)
{
    json_t *sub = post_jobs("red", "{\"type\": \"hook\"}", NULL);
    cr_expect_null(json_object_get(sub, "trace_id"));
    char id[160];
    snprintf(id, sizeof id, "%s", str_of(sub, "id"));
    json_decref(sub);
    json_decref(wait_two_attempts("red", id));
    rx_call calls[RX_MAX];
    cr_assert_eq(rx_calls_of(id, calls), 2);
    cr_expect_str_empty(calls[0].traceparent);
    cr_expect_str_empty(calls[1].tracestate);
}

Test(trace_e2e, command_gets_traceparent_in_its_environment)
{
    const char *queues[] = {"mem", "red"};
    for (size_t q = 0; q < 2; q++) {
        json_t *sub = post_jobs(queues[q], "{\"type\": \"cmd\"}", trace_headers);
        char id[160], path[1024];
        snprintf(id, sizeof id, "%s", str_of(sub, "id"));
        json_decref(sub);
        json_decref(wait_two_attempts(queues[q], id));
        snprintf(path, sizeof path, "%s/%s", work_dir, id);
        char *text = ts_read_file(path, NULL);
        cr_assert_not_null(text, "the program wrote no %s", path);
        char tp[2][160] = {"", ""}, ts[2][600] = {"", ""};
        int a0 = 0, a1 = 0;
        int n = sscanf(text, "%d %159s %599s\n%d %159s %599s", &a0, tp[0], ts[0], &a1, tp[1],
                       ts[1]);
        cr_assert_eq(n, 6, "%s: %s", queues[q], text);
        cr_expect(a0 == 1 && a1 == 2, "%s", text);
        expect_child(tp[0], "");
        expect_child(tp[1], tp[0]);
        cr_expect_str_eq(ts[0], TS_VALID);
        cr_expect_str_eq(ts[1], TS_VALID);
        free(text);
    }
}

Test(trace_e2e, every_job_of_a_batch_carries_the_trace)
{
    const char *queues[] = {"mem", "red", "agg"};
    const char *const headers[] = {"traceparent: " TP_VALID, NULL};
    for (size_t q = 0; q < 3; q++) {
        json_t *ans = post_jobs(queues[q], "[{\"type\": \"noop\"}, {\"type\": \"noop\"},"
                                           " {\"type\": \"noop\"}]",
                                headers);
        size_t i;
        json_t *view;
        json_array_foreach(json_object_get(ans, "jobs"), i, view) {
            cr_expect_str_eq(str_of(view, "trace_id"), TP_TRACE, "%s[%zu]", queues[q], i);
            cr_expect_null(json_object_get(view, "tracestate"));
            json_t *seen = NULL;
            cr_expect(ts_wait_state(jobd_srv.port, queues[q], str_of(view, "id"), "succeeded",
                                    20000, &seen));
            cr_expect_str_eq(str_of(seen, "trace_id"), TP_TRACE, "%s[%zu] stored", queues[q], i);
            cr_expect_str_eq(str_of(seen, "traceparent"), TP_VALID);
            json_decref(seen);
        }
        cr_expect_eq(json_array_size(json_object_get(ans, "jobs")), 3);
        json_decref(ans);
    }
}

Test(trace_e2e, malformed_traceparents_are_accepted_without_a_trace)
{
    const char *queues[] = {"mem", "red"};
    for (size_t i = 0; i < TP_NCASES; i++) {
        if (tp_cases[i].out[0] || !tp_cases[i].in[0])
            continue;
        char line[256];
        snprintf(line, sizeof line, "traceparent: %.159s", tp_cases[i].in);
        const char *const headers[] = {line, "tracestate: " TS_VALID, NULL};
        const char *queue = queues[i % 2];
        json_t *sub = post_jobs(queue, "{\"type\": \"noop\"}", headers);
        cr_expect_null(json_object_get(sub, "trace_id"), "\"%s\" kept", tp_cases[i].in);
        cr_expect_null(json_object_get(sub, "tracestate"), "\"%s\": tracestate kept",
                       tp_cases[i].in);
        json_t *seen = NULL;
        cr_expect(ts_wait_state(jobd_srv.port, queue, str_of(sub, "id"), "succeeded", 20000,
                                &seen));
        cr_expect_null(json_object_get(seen, "trace_id"));
        json_decref(seen);
        json_decref(sub);
    }
    /* two traceparent headers make one malformed list */
    const char *const twice[] = {"traceparent: " TP_VALID, "traceparent: " TP_VALID, NULL};
    json_t *sub = post_jobs("red", "{\"type\": \"noop\"}", twice);
    cr_expect_null(json_object_get(sub, "trace_id"));
    json_decref(sub);
}

Test(trace_e2e, tracestate_too_long_or_with_control_characters_is_dropped)
{
    char *longer = malloc(TRACE_STATE_MAX + 32);
    strcpy(longer, "tracestate: ");
    memset(longer + 12, 'a', TRACE_STATE_MAX + 1);
    longer[12 + TRACE_STATE_MAX + 1] = '\0';
    const char *values[] = {longer, "tracestate: a=1\tb=2"};
    for (size_t i = 0; i < 2; i++) {
        const char *const headers[] = {"traceparent: " TP_VALID, values[i], NULL};
        json_t *sub = post_jobs("red", "{\"type\": \"noop\"}", headers);
        cr_expect_str_eq(str_of(sub, "trace_id"), TP_TRACE);
        cr_expect_null(json_object_get(sub, "tracestate"), "case %zu kept", i);
        json_decref(sub);
    }
    free(longer);
    /* two tracestate headers are one list */
    const char *const two[] = {"traceparent: " TP_VALID, "tracestate: a=1", "tracestate: b=2",
                               NULL};
    json_t *sub = post_jobs("red", "{\"type\": \"noop\"}", two);
    cr_expect_str_eq(str_of(sub, "tracestate"), "a=1,b=2");
    json_decref(sub);
}

/* ---- request ids ---------------------------------------------------------- */

/* The X-Request-Id of an answer to method path (body may be NULL) sent with
 * the header line rid_line (NULL = none), into out; the status is returned. */
static long request_id_of(const char *method, const char *path, const char *body,
                          const char *rid_line, char *out, size_t len)
{
    const char *const headers[] = {rid_line, NULL};
    ts_resp r;
    cr_assert_eq(ts_http(&r, method, jobd_srv.port, path, body, NULL, rid_line ? headers : NULL),
                 0);
    out[0] = '\0';
    ts_resp_header(&r, "X-Request-Id", out, len);
    long status = r.status;
    ts_resp_free(&r);
    return status;
}

Test(trace_e2e, request_id_is_echoed_when_safe_else_generated)
{
    char got[256], first[256];
    cr_expect_eq(request_id_of("GET", "/healthz", NULL, "X-Request-Id: a.b_c:d/e+f=g-1", got,
                               sizeof got),
                 200);
    cr_expect_str_eq(got, "a.b_c:d/e+f=g-1");
    char max[160] = "X-Request-Id: ";
    memset(max + 14, 'r', 128);
    max[14 + 128] = '\0';
    request_id_of("GET", "/queues", NULL, max, got, sizeof got);
    cr_expect_str_eq(got, max + 14, "128 chars not echoed");
    max[14 + 128] = 'r';
    max[14 + 129] = '\0';
    const char *unsafe[] = {NULL, max, "X-Request-Id: has space", "X-Request-Id: a\tb",
                            "X-Request-Id: a,b", "X-Request-Id: caf\xc3\xa9", "X-Request-Id:"};
    first[0] = '\0';
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
        request_id_of("GET", "/healthz", NULL, unsafe[i], got, sizeof got);
        cr_expect(ts_ulid_shape(got), "case %zu: \"%s\" is no generated id", i, got);
        cr_expect_str_neq(got, first, "case %zu: the same id twice", i);
        snprintf(first, sizeof first, "%s", got);
    }
}

Test(trace_e2e, error_answers_carry_a_request_id)
{
    char big[5000], got[256];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[0] = '{';
    big[sizeof big - 2] = '}';
    struct {
        const char *method, *path, *body;
        long status;
    } cases[] = {
        {"GET", "/nope", NULL, 404},
        {"GET", "/queues/none/jobs", NULL, 404},
        {"DELETE", "/queues", NULL, 405},
        {"POST", "/queues/mem/jobs", big, 413},
        {"POST", "/queues/mem/jobs", "{\"type\": 1}", 422},
        {"POST", "/queues/mem/jobs", "{", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "X-Request-Id: case-%zu", i);
        long status = request_id_of(cases[i].method, cases[i].path, cases[i].body, line, got,
                                    sizeof got);
        cr_expect_eq(status, cases[i].status, "case %zu", i);
        cr_expect_str_eq(got, line + 14, "case %zu (%ld)", i, status);
        request_id_of(cases[i].method, cases[i].path, cases[i].body, NULL, got, sizeof got);
        cr_expect(ts_ulid_shape(got), "case %zu without an id: \"%s\"", i, got);
    }
}

Test(trace, unauthorized_answer_carries_a_request_id)
{
    ts_jobd j = {0};
    cr_assert_eq(ts_jobd_start(&j,
                               "{\"auth\": {\"tokens\": [\"t0ken-trace-test\"]},"
                               " \"queues\": {\"mem\": {\"dequeue\": [\"inline\"]}}}",
                               NULL),
                 0);
    const char *const headers[] = {"X-Request-Id: who-asks", NULL};
    ts_resp r;
    cr_assert_eq(ts_http(&r, "GET", j.port, "/queues", NULL, NULL, headers), 0);
    char got[256] = "";
    ts_resp_header(&r, "X-Request-Id", got, sizeof got);
    long status = r.status;
    ts_resp_free(&r);
    ts_jobd_stop(&j, SIGTERM, 10000);
    cr_expect_eq(status, 401);
    cr_expect_str_eq(got, "who-asks");
}

/* ---- the log -------------------------------------------------------------- */

/* True when some line of jobd's log is a JSON object with event and, for
 * each key/value pair of want (NULL-terminated), that string field. */
static bool log_has(const char *event, const char *const *want)
{
    char *text = ts_read_file(jobd_srv.log_path, NULL);
    bool found = false;
    for (char *line = text ? strtok(text, "\n") : NULL; line && !found; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        found = o && json_is_string(json_object_get(o, "event")) &&
                strcmp(str_of(o, "event"), event) == 0;
        for (size_t i = 0; found && want[i]; i += 2)
            found = str_of(o, want[i]) && strcmp(str_of(o, want[i]), want[i + 1]) == 0;
        json_decref(o);
    }
    free(text);
    return found;
}

/* Polls the log for such a line (the job's lines come from worker threads). */
static bool log_wait(const char *event, const char *const *want)
{
    long long deadline = ts_now_ms() + ts_patience(10000);
    while (!log_has(event, want) && ts_now_ms() < deadline)
        ts_sleep_ms(20);
    return log_has(event, want);
}

Test(trace_e2e, log_lines_carry_request_id_and_trace_id)
{
    const char *const headers[] = {"traceparent: " TP_VALID, "X-Request-Id: submit-42", NULL};
    json_t *sub = post_jobs("red", "{\"type\": \"hook\"}", headers);
    char id[160];
    snprintf(id, sizeof id, "%s", str_of(sub, "id"));
    json_decref(sub);
    json_decref(wait_two_attempts("red", id));
    const char *const request[] = {"request_id", "submit-42", NULL};
    const char *const submitted[] = {"request_id", "submit-42", "id", id, "trace_id", TP_TRACE,
                                     NULL};
    const char *const traced[] = {"id", id, "trace_id", TP_TRACE, NULL};
    cr_expect(log_wait("http.request", request), "no http.request line with the request id");
    cr_expect(log_wait("job.submitted", submitted), "no job.submitted line for %s", id);
    cr_expect(log_wait("job.started", traced), "no job.started line with trace_id");
    cr_expect(log_wait("job.failed", traced), "no job.failed line with trace_id");
    cr_expect(log_wait("job.succeeded", traced), "no job.succeeded line with trace_id");

    char got[256];
    request_id_of("GET", "/nope", NULL, "X-Request-Id: lost-7", got, sizeof got);
    const char *const lost[] = {"request_id", "lost-7", NULL};
    cr_expect(log_wait("http.request", lost), "the 404 has no log line with its request id");
}
