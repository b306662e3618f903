/* test_exec_webhook.c - the "webhook" handler kind against a real HTTP
 * receiver (libmicrohttpd, in the test process, on a free loopback port):
 * run directly through exec_webhook_kind, and end to end through jobd.
 *
 * The receiver answers by path (see rx_routes), records what it was sent
 * and checks every Jobd-Signature itself, recomputed with OpenSSL's one-shot
 * HMAC() (not the EVP_MAC code path jobd uses). */
#include <criterion/criterion.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../queues/job.h"
#include "exec_test.h"
#include "support.h"

#define RX_SECRET    "topsecret-0b8f"
#define RX_HANG_MS   10000 /* a /hang request is held this long at most */
#define RX_SLOW_MS   200   /* a /slow request is held this long */
#define RX_MAX_TIMES 16    /* request times kept per route */
#define FAST_BACKOFF \
    "\"backoff\": {\"base\": 0.01, \"factor\": 0, \"exponent\": 1, \"jitter\": 0, \"max\": 0.05}"

/* What the receiver answers on each path. */
typedef struct rx_route {
    const char *path;
    int status;
    const char *body;
    const char *retry_after; /* NULL = none; "date" = an HTTP date 120 s ahead */
} rx_route;

static const rx_route rx_routes[] = {
    {"/ok", 200, "thanks", NULL},
    {"/fail", 500, "database is down", NULL},
    {"/busy", 429, "slow down", "7"},
    {"/busy1", 429, "slow down", "1"},
    {"/date", 503, "maintenance", "date"},
    {"/missing", 404, "no such route", NULL},
    {"/408", 408, "too slow", NULL},
    {"/redirect", 302, "", NULL},
    {"/big", 500, NULL, NULL},    /* body: 3000 x "é" */
    {"/hang", 200, "late", NULL}, /* held until the test ends */
    {"/slow", 200, "done", NULL}, /* held RX_SLOW_MS, counting concurrency */
};
#define RX_NROUTES (sizeof rx_routes / sizeof rx_routes[0])

/* The last request the receiver saw. */
typedef struct rx_seen {
    char path[64];
    char *body;
    size_t body_len;
    char content_type[128], user_agent[128], job_id[160], attempt[32], signature[160];
    char tenant[64], expect[64];
    bool has_empty, has_signature;
    char empty[16];
} rx_seen;

typedef struct rx {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool released;                             /* stop holding requests */
    int connections;                           /* TCP connections accepted */
    int count[RX_NROUTES];                     /* requests per route */
    long long times[RX_NROUTES][RX_MAX_TIMES]; /* mono ms of the first requests */
    int sig_ok, sig_bad;                       /* requests whose signature verified / did not */
    int active, max_active;                    /* concurrent /slow requests */
    int slow_done;
    rx_seen last;
} rx;

/* One request's upload, collected across the access handler's calls. */
typedef struct rx_upload {
    char *data;
    size_t len;
} rx_upload;

/* Criterion's fixtures take no arguments: the receiver and jobd of the
 * running test (each test runs in a process of its own). */
static rx recv_srv;
static ts_jobd jobd_srv;

static int rx_route_index(const char *path)
{
    for (size_t i = 0; i < RX_NROUTES; i++)
        if (strcmp(rx_routes[i].path, path) == 0)
            return (int)i;
    return -1;
}

static void rx_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

/* True when header is exactly "t=<digits>,v1=<hex HMAC-SHA256(secret, t.body)>"
 * and t is within 60 s of now. */
static bool rx_signature_ok(const char *header, const char *secret, const char *body, size_t len)
{
    long long t;
    int used = 0;
    char hex[65] = "";
    if (sscanf(header, "t=%lld,v1=%64[0-9a-f]%n", &t, hex, &used) != 2 || header[used] != '\0' ||
        strlen(hex) != 64)
        return false;
    if (llabs(t - (long long)time(NULL)) > 60)
        return false;
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%lld.", t);
    unsigned char *msg = malloc((size_t)plen + len + 1);
    memcpy(msg, prefix, (size_t)plen);
    memcpy(msg + plen, body, len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, (size_t)plen + len, mac, &maclen);
    free(msg);
    char want[2 * EVP_MAX_MD_SIZE + 1];
    rx_hex(mac, maclen, want);
    return strcmp(want, hex) == 0;
}

static void rx_copy_header(struct MHD_Connection *c, const char *name, char *out, size_t len)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, len, "%s", v ? v : "");
}

/* Stores the request as rx->last and checks its signature. Called locked. */
static void rx_record(rx *r, struct MHD_Connection *c, const char *url, rx_upload *up)
{
    rx_seen *s = &r->last;
    free(s->body);
    *s = (rx_seen){.body = up->data, .body_len = up->len};
    up->data = NULL;
    snprintf(s->path, sizeof s->path, "%s", url);
    rx_copy_header(c, "Content-Type", s->content_type, sizeof s->content_type);
    rx_copy_header(c, "User-Agent", s->user_agent, sizeof s->user_agent);
    rx_copy_header(c, "Jobd-Job-Id", s->job_id, sizeof s->job_id);
    rx_copy_header(c, "Jobd-Attempt", s->attempt, sizeof s->attempt);
    rx_copy_header(c, "Jobd-Signature", s->signature, sizeof s->signature);
    rx_copy_header(c, "X-Tenant", s->tenant, sizeof s->tenant);
    rx_copy_header(c, "Expect", s->expect, sizeof s->expect);
    s->has_empty = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Empty") != NULL;
    rx_copy_header(c, "X-Empty", s->empty, sizeof s->empty);
    s->has_signature = s->signature[0] != '\0';
    if (s->has_signature) {
        bool ok = rx_signature_ok(s->signature, RX_SECRET, s->body ? s->body : "", s->body_len);
        ok ? r->sig_ok++ : r->sig_bad++;
    }
}

/* Holds the request until ms have passed or the test releases it. Called locked. */
static void rx_hold(rx *r, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!r->released && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0) {
    }
}

static void rx_slow(rx *r)
{
    r->active++;
    if (r->active > r->max_active)
        r->max_active = r->active;
    rx_hold(r, RX_SLOW_MS);
    r->active--;
    r->slow_done++;
}

static struct MHD_Response *rx_response(const rx_route *route)
{
    char big[3000 * 2 + 1] = "";
    const char *body = route->body;
    if (!body) {
        for (int i = 0; i < 3000; i++)
            memcpy(big + 2 * i, "\xc3\xa9", 2);
        big[sizeof big - 1] = '\0';
        body = big;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (route->retry_after && strcmp(route->retry_after, "date") == 0) {
        char date[64];
        time_t at = time(NULL) + 120;
        struct tm tm;
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&at, &tm));
        MHD_add_response_header(resp, "Retry-After", date);
    } else if (route->retry_after) {
        MHD_add_response_header(resp, "Retry-After", route->retry_after);
    }
    if (route->status == 302)
        MHD_add_response_header(resp, "Location", "/ok");
    return resp;
}

static enum MHD_Result rx_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    rx *r = cls;
    rx_upload *up = *con_cls;
    if (!up) {
        *con_cls = calloc(1, sizeof *up);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        char *more = realloc(up->data, up->len + *upload_size + 1);
        if (!more)
            return MHD_NO;
        memcpy(more + up->len, upload_data, *upload_size);
        up->data = more;
        up->len += *upload_size;
        up->data[up->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    int i = rx_route_index(url);
    pthread_mutex_lock(&r->mu);
    if (i >= 0 && r->count[i] < RX_MAX_TIMES)
        r->times[i][r->count[i]] = ts_now_ms();
    if (i >= 0)
        r->count[i]++;
    rx_record(r, c, url, up);
    if (i >= 0 && strcmp(url, "/hang") == 0)
        rx_hold(r, RX_HANG_MS);
    if (i >= 0 && strcmp(url, "/slow") == 0)
        rx_slow(r);
    pthread_mutex_unlock(&r->mu);
    static const rx_route not_found = {"", 404, "unknown path", NULL};
    struct MHD_Response *resp = rx_response(i >= 0 ? &rx_routes[i] : &not_found);
    enum MHD_Result ret =
        MHD_queue_response(c, (unsigned)(i >= 0 ? rx_routes[i].status : 404), resp);
    MHD_destroy_response(resp);
    return ret;
}

static void rx_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rx_upload *up = *con_cls;
    if (up)
        free(up->data);
    free(up);
    *con_cls = NULL;
}

static void rx_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    rx *r = cls;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    pthread_mutex_lock(&r->mu);
    r->connections++;
    pthread_mutex_unlock(&r->mu);
}

/* Starts the receiver on a free loopback port (the kernel picks it). */
static void rx_start(rx *r)
{
    *r = (rx){.port = 0};
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    r->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                            NULL, NULL, rx_access, r, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_NOTIFY_COMPLETED,
                            rx_completed, r, MHD_OPTION_NOTIFY_CONNECTION, rx_connection, r,
                            MHD_OPTION_END);
    cr_assert_not_null(r->d, "the receiver did not start");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert(info && info->port > 0);
    r->port = info->port;
}

static void rx_stop(rx *r)
{
    if (!r->d)
        return;
    pthread_mutex_lock(&r->mu);
    r->released = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    MHD_stop_daemon(r->d);
    r->d = NULL;
    free(r->last.body);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

/* Requests the receiver has seen on path. */
static int rx_count(rx *r, const char *path)
{
    int i = rx_route_index(path);
    cr_assert_geq(i, 0);
    pthread_mutex_lock(&r->mu);
    int n = r->count[i];
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void webhook_setup(void)
{
    rx_start(&recv_srv);
}

static void webhook_teardown(void)
{
    if (jobd_srv.pid > 0)
        ts_jobd_stop(&jobd_srv, SIGTERM, 10000);
    rx_stop(&recv_srv);
    et_leak_check();
}

TestSuite(webhook, .init = webhook_setup, .fini = webhook_teardown, .timeout = 60);

/* A handler state posting to path on the receiver; extra is more members or "". */
static void *create_hook(const char *path, const char *extra)
{
    char opts[1024];
    snprintf(opts, sizeof opts, "{\"kind\": \"webhook\", \"url\": \"http://127.0.0.1:%d%s\"%s%s}",
             recv_srv.port, path, *extra ? ", " : "", extra);
    return et_create(&exec_webhook_kind, opts);
}

/* One run of a fresh handler for path; fills res, returns seconds taken. */
static double run_hook(const char *path, const char *extra, double timeout, exec_result *res)
{
    void *st = create_hook(path, extra);
    job_t *job = et_job("job-hook", 0, "{\"x\": 1}");
    double took = et_run(&exec_webhook_kind, st, job, timeout, res);
    job_free(job);
    exec_webhook_kind.destroy(st);
    return took;
}

Test(webhook, check_messages_from_data_files)
{
    cr_assert_geq(et_check_data_cases("webhook"), 20, "run from the repository root");
}

Test(webhook, timeout_is_the_handlers_own)
{
    void *with = create_hook("/ok", "\"timeout\": 12");
    void *without = create_hook("/ok", "");
    cr_expect_eq(exec_webhook_kind.timeout(with), 12);
    cr_expect_eq(exec_webhook_kind.timeout(without), 0);
    exec_webhook_kind.destroy(with);
    exec_webhook_kind.destroy(without);
}

Test(webhook, success_posts_the_payload_signed_with_headers)
{
    void *st = create_hook("/ok", "\"secret\": \"" RX_SECRET "\","
                                  " \"headers\": {\"X-Tenant\": \"acme\", \"X-Empty\": \"\"}");
    job_t *job = et_job("job-hook-1", 2, "{\"to\": \"ana@example.com\", \"n\": 42}");
    exec_result res;
    et_run(&exec_webhook_kind, st, job, 10, &res);
    cr_assert_eq(res.status, EXEC_OK, "%s", res.error);
    cr_expect_str_empty(res.error);
    cr_expect_lt(res.retry_after, 0);

    size_t len;
    char *payload = job_payload(job, &len);
    rx_seen *s = &recv_srv.last;
    cr_assert_eq(rx_count(&recv_srv, "/ok"), 1);
    cr_expect_eq(s->body_len, len);
    cr_expect_str_eq(s->body, payload);
    cr_expect_str_eq(s->content_type, "application/json");
    cr_expect_str_eq(s->user_agent, "jobd/" JOBD_VERSION);
    cr_expect_str_eq(s->job_id, "job-hook-1");
    cr_expect_str_eq(s->attempt, "3");
    cr_expect_str_eq(s->tenant, "acme");
    cr_expect(s->has_empty, "the empty header was not sent");
    cr_expect_str_empty(s->empty);
    cr_expect_str_empty(s->expect);
    cr_expect(s->has_signature);
    cr_expect_eq(recv_srv.sig_ok, 1, "signature %s does not verify", s->signature);
    cr_expect_eq(recv_srv.sig_bad, 0);
    free(payload);
    job_free(job);
    exec_webhook_kind.destroy(st);
}

Test(webhook, no_secret_no_signature)
{
    exec_result res;
    run_hook("/ok", "", 10, &res);
    cr_assert_eq(res.status, EXEC_OK, "%s", res.error);
    cr_expect_not(recv_srv.last.has_signature);
}

Test(webhook, secret_from_the_environment)
{
    setenv("JOBD_TEST_HOOK_SECRET", RX_SECRET, 1);
    exec_result res;
    run_hook("/ok", "\"secret_env\": \"JOBD_TEST_HOOK_SECRET\"", 10, &res);
    cr_assert_eq(res.status, EXEC_OK, "%s", res.error);
    cr_expect_eq(recv_srv.sig_ok, 1);
    cr_expect_eq(recv_srv.sig_bad, 0);
}

Test(webhook, missing_secret_env_is_a_create_error)
{
    unsetenv("JOBD_TEST_NO_SUCH_SECRET");
    char opts[256], err[256] = "";
    snprintf(opts, sizeof opts,
             "{\"kind\": \"webhook\", \"url\": \"http://127.0.0.1:%d/ok\","
             " \"secret_env\": \"JOBD_TEST_NO_SUCH_SECRET\"}",
             recv_srv.port);
    cr_expect_null(et_try_create(&exec_webhook_kind, opts, err, sizeof err));
    cr_expect_str_eq(err, "secret_env: environment variable JOBD_TEST_NO_SUCH_SECRET is not set");
}

Test(webhook, server_error_retries_with_the_body)
{
    exec_result res;
    run_hook("/fail", "", 10, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error, "HTTP 500: database is down");
    cr_expect_lt(res.retry_after, 0);
}

Test(webhook, not_found_is_permanent)
{
    exec_result res;
    run_hook("/missing", "", 10, &res);
    cr_expect_eq(res.status, EXEC_PERMANENT);
    cr_expect_str_eq(res.error, "HTTP 404: no such route");
}

Test(webhook, request_timeout_408_retries)
{
    exec_result res;
    run_hook("/408", "", 10, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error, "HTTP 408: too slow");
}

Test(webhook, too_many_requests_sets_retry_after_seconds)
{
    exec_result res;
    run_hook("/busy", "", 10, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error, "HTTP 429: slow down");
    cr_expect_eq(res.retry_after, 7);
}

Test(webhook, retry_after_as_an_http_date)
{
    exec_result res;
    run_hook("/date", "", 10, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error, "HTTP 503: maintenance");
    cr_expect(res.retry_after >= 115 && res.retry_after <= 121, "retry_after %g", res.retry_after);
}

Test(webhook, redirect_is_not_followed)
{
    exec_result res;
    run_hook("/redirect", "", 10, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error, "HTTP 302");
    cr_expect_eq(rx_count(&recv_srv, "/ok"), 0);
}

Test(webhook, long_body_is_cut_to_valid_utf8)
{
    exec_result res;
    run_hook("/big", "", 10, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_eq(strncmp(res.error, "HTTP 500: \xc3\xa9\xc3\xa9", 14), 0, "%.20s", res.error);
    cr_expect_leq(strlen(res.error), JOB_ERROR_MAX);
    cr_expect_geq(strlen(res.error), JOB_ERROR_MAX - 1);
    json_t *s = json_string(res.error); /* NULL for invalid UTF-8 */
    cr_expect_not_null(s, "last_error is not valid UTF-8");
    json_decref(s);
}

Test(webhook, hanging_receiver_times_out_at_the_deadline)
{
    exec_result res;
    double took = run_hook("/hang", "\"timeout\": 0.5", 0.5, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_not_null(strstr(res.error, "timed out"), "%s", res.error);
    cr_expect_geq(took, 0.45);
    cr_expect_lt(took, 1.5);
}

Test(webhook, connection_refused_retries)
{
    char opts[256];
    snprintf(opts, sizeof opts, "{\"kind\": \"webhook\", \"url\": \"http://127.0.0.1:%d/x\"}",
             ts_free_port());
    void *st = et_create(&exec_webhook_kind, opts);
    job_t *job = et_job("job-refused", 0, NULL);
    exec_result res;
    et_run(&exec_webhook_kind, st, job, 5, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_not_null(strstr(res.error, "onnect"), "%s", res.error);
    job_free(job);
    exec_webhook_kind.destroy(st);
}

Test(webhook, past_deadline_sends_nothing)
{
    exec_result res;
    run_hook("/ok", "", 0, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_not_null(strstr(res.error, "timed out"), "%s", res.error);
    cr_expect_eq(rx_count(&recv_srv, "/ok"), 0);
}

Test(webhook, one_connection_serves_a_threads_requests)
{
    void *st = create_hook("/ok", "");
    job_t *job = et_job("job-reuse", 0, NULL);
    for (int i = 0; i < 5; i++) {
        exec_result res;
        et_run(&exec_webhook_kind, st, job, 10, &res);
        cr_expect_eq(res.status, EXEC_OK, "%s", res.error);
    }
    cr_expect_eq(rx_count(&recv_srv, "/ok"), 5);
    cr_expect_eq(recv_srv.connections, 1);
    job_free(job);
    exec_webhook_kind.destroy(st);
}

typedef struct hook_worker {
    void *state;
    int ok;
} hook_worker;

static void *hook_worker_main(void *arg)
{
    hook_worker *w = arg;
    job_t *job = et_job("job-threads", 0, NULL);
    for (int i = 0; i < 10; i++) {
        exec_result res;
        et_run(&exec_webhook_kind, w->state, job, 10, &res);
        w->ok += res.status == EXEC_OK;
    }
    job_free(job);
    return NULL;
}

Test(webhook, threads_run_concurrently_with_a_handle_each)
{
    void *st = create_hook("/ok", "\"secret\": \"" RX_SECRET "\"");
    hook_worker w[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (hook_worker){.state = st};
        cr_assert_eq(pthread_create(&t[i], NULL, hook_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(w[i].ok, 10);
    }
    cr_expect_eq(rx_count(&recv_srv, "/ok"), 30);
    cr_expect_eq(recv_srv.sig_ok, 30);
    cr_expect_leq(recv_srv.connections, 3);
    exec_webhook_kind.destroy(st);
}

/* ---- end to end through jobd -------------------------------------------------- */

/* Starts jobd with queues_json (the "queues" object) and a webhook handler
 * per route named hook_<path without '/'>; extra handler members from hook_extra. */
static int jobd_up(const char *queues_json, const char *hook_extra)
{
    char handlers[4096] = "";
    for (size_t i = 0; i < RX_NROUTES; i++)
        snprintf(handlers + strlen(handlers), sizeof handlers - strlen(handlers),
                 "%s\"hook_%s\": {\"kind\": \"webhook\", \"url\": \"http://127.0.0.1:%d%s\","
                 " \"secret\": \"" RX_SECRET "\"%s}",
                 i ? ", " : "", rx_routes[i].path + 1, recv_srv.port, rx_routes[i].path,
                 hook_extra);
    char *config = malloc(8192);
    snprintf(config, 8192,
             "{\"workers\": 4, \"shutdown_timeout\": 2, \"queues\": %s,"
             " \"handlers\": {%s}}",
             queues_json, handlers);
    int rc = ts_jobd_start(&jobd_srv, config, NULL);
    free(config);
    cr_assert_eq(rc, 0, "jobd did not start");
    return jobd_srv.port;
}

/* Submits {"type": type} to queue; the new job's id into id (>= 160 bytes). */
static void submit(int port, const char *queue, const char *type, char *id)
{
    char path[128], body[256];
    snprintf(path, sizeof path, "/queues/%s/jobs", queue);
    snprintf(body, sizeof body, "{\"type\": \"%s\", \"args\": {\"k\": \"v\"}}", type);
    ts_resp r;
    cr_assert_eq(ts_post(&r, port, path, body), 0);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    snprintf(id, 160, "%s", json_string_value(json_object_get(r.json, "id")));
    ts_resp_free(&r);
}

/* Waits for the job to reach state and checks attempts and last_error
 * (NULL = must be null; otherwise a prefix of it). */
static void expect_final(int port, const char *queue, const char *id, const char *state,
                         int attempts, const char *error_prefix)
{
    json_t *view = NULL;
    bool reached = ts_wait_state(port, queue, id, state, 15000, &view);
    char *text = view ? json_dumps(view, 0) : NULL;
    cr_expect(reached, "job %s never became %s: %s", id, state, text ? text : "no view");
    cr_expect_eq(json_integer_value(json_object_get(view, "attempts")), attempts, "%s", text);
    const char *err = json_string_value(json_object_get(view, "last_error"));
    if (!error_prefix)
        cr_expect_null(err, "%s", text);
    else
        cr_expect(err && strncmp(err, error_prefix, strlen(error_prefix)) == 0, "%s", text);
    free(text);
    json_decref(view);
}

Test(webhook, e2e_job_states_follow_the_answers)
{
    int port =
        jobd_up("{\"q\": {\"dequeue\": [\"inline\"], \"max_attempts\": 3, " FAST_BACKOFF "}}", "");
    char ok[160], missing[160], fail[160];
    submit(port, "q", "hook_ok", ok);
    submit(port, "q", "hook_missing", missing);
    submit(port, "q", "hook_fail", fail);
    expect_final(port, "q", ok, "succeeded", 1, NULL);
    expect_final(port, "q", missing, "dead", 1, "HTTP 404: no such route");
    expect_final(port, "q", fail, "dead", 3, "HTTP 500: database is down");
    cr_expect_eq(rx_count(&recv_srv, "/ok"), 1);
    cr_expect_eq(rx_count(&recv_srv, "/missing"), 1);
    cr_expect_eq(rx_count(&recv_srv, "/fail"), 3);
    cr_expect_eq(recv_srv.sig_ok, 5);
    cr_expect_eq(recv_srv.sig_bad, 0);
}

Test(webhook, e2e_attempt_header_counts_up)
{
    int port =
        jobd_up("{\"q\": {\"dequeue\": [\"inline\"], \"max_attempts\": 2, " FAST_BACKOFF "}}", "");
    char id[160];
    submit(port, "q", "hook_fail", id);
    expect_final(port, "q", id, "dead", 2, "HTTP 500: ");
    pthread_mutex_lock(&recv_srv.mu);
    cr_expect_str_eq(recv_srv.last.attempt, "2");
    cr_expect_str_eq(recv_srv.last.job_id, id);
    json_t *body = json_loads(recv_srv.last.body, 0, NULL);
    pthread_mutex_unlock(&recv_srv.mu);
    cr_expect_eq(json_integer_value(json_object_get(body, "attempt")), 2);
    cr_expect_str_eq(json_string_value(json_object_get(body, "queue")), "q");
    cr_expect_str_eq(json_string_value(json_object_get(body, "type")), "hook_fail");
    json_decref(body);
}

Test(webhook, e2e_retry_after_delays_the_next_attempt)
{
    int port =
        jobd_up("{\"q\": {\"dequeue\": [\"inline\"], \"max_attempts\": 2, " FAST_BACKOFF "}}", "");
    char id[160];
    submit(port, "q", "hook_busy1", id);
    expect_final(port, "q", id, "dead", 2, "HTTP 429: slow down");
    int i = rx_route_index("/busy1");
    cr_assert_eq(rx_count(&recv_srv, "/busy1"), 2);
    long long gap = recv_srv.times[i][1] - recv_srv.times[i][0];
    cr_expect_geq(gap, 900, "attempt 2 came %lld ms after attempt 1 (Retry-After: 1)", gap);
}

Test(webhook, e2e_timeout_of_the_handler_fails_the_attempt)
{
    int port =
        jobd_up("{\"q\": {\"dequeue\": [\"inline\"], \"max_attempts\": 1, " FAST_BACKOFF "}}",
                ", \"timeout\": 0.3");
    char id[160];
    long long t0 = ts_now_ms();
    submit(port, "q", "hook_hang", id);
    json_t *view = NULL;
    cr_expect(ts_wait_state(port, "q", id, "dead", 10000, &view));
    cr_expect_lt(ts_now_ms() - t0, 5000);
    const char *err = json_string_value(json_object_get(view, "last_error"));
    cr_expect(err && strstr(err, "timed out"), "%s", err ? err : "(null)");
    json_decref(view);
}

Test(webhook, e2e_job_timeout_overrides_the_handlers)
{
    int port =
        jobd_up("{\"q\": {\"dequeue\": [\"inline\"], \"max_attempts\": 1, " FAST_BACKOFF "}}",
                ", \"timeout\": 0.1");
    char own[160], given[160];
    submit(port, "q", "hook_slow", own);
    ts_resp r;
    cr_assert_eq(ts_post(&r, port, "/queues/q/jobs", "{\"type\": \"hook_slow\", \"timeout\": 5}"),
                 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    snprintf(given, sizeof given, "%s", json_string_value(json_object_get(r.json, "id")));
    ts_resp_free(&r);
    /* /slow answers after 200 ms: too late for the handler's 0.1 s, in time for the job's 5 s */
    expect_final(port, "q", own, "dead", 1, "Operation timed out");
    expect_final(port, "q", given, "succeeded", 1, NULL);
}

Test(webhook, e2e_queue_concurrency_limits_requests_in_flight)
{
    int port = jobd_up("{\"slow\": {\"dequeue\": [\"inline\"], \"concurrency\": 2, " FAST_BACKOFF
                       "}, \"fast\": {\"dequeue\": [\"inline\"], " FAST_BACKOFF "}}",
                       "");
    char slow[10][160], fast[5][160];
    for (int i = 0; i < 10; i++)
        submit(port, "slow", "hook_slow", slow[i]);
    /* while the slow queue works through its 10 x 200 ms two at a time (~1 s),
     * the other queue's jobs still get workers */
    for (int i = 0; i < 5; i++)
        submit(port, "fast", "noop", fast[i]);
    for (int i = 0; i < 5; i++)
        expect_final(port, "fast", fast[i], "succeeded", 1, NULL);
    pthread_mutex_lock(&recv_srv.mu);
    int slow_done_when_fast_done = recv_srv.slow_done;
    pthread_mutex_unlock(&recv_srv.mu);
    cr_expect_lt(slow_done_when_fast_done, 10, "the fast queue waited for the slow one");
    for (int i = 0; i < 10; i++)
        expect_final(port, "slow", slow[i], "succeeded", 1, NULL);
    pthread_mutex_lock(&recv_srv.mu);
    cr_expect_eq(recv_srv.max_active, 2, "at most 2 /slow requests at once, and 2 reached");
    cr_expect_eq(recv_srv.slow_done, 10);
    pthread_mutex_unlock(&recv_srv.mu);
}
