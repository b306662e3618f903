/* test_access.c - scoped tokens end to end: the real jobd binary with one
 * token per scope (from environment variables and files), an all-scope
 * token, and every route of the router asked with each of them, a wrong
 * token and none. The expected scope of each route is README's table (Auth),
 * written out here rather than read from the route table it checks. */
#include "../handlers/handlers.h"
#include "../server/config.h"
#include "../server/router.h"
#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_ALL "tok-all-7c1e93"
#define TOK_SUBMIT "tok-submit-51a9d2"
#define TOK_READ "tok-read-0d3f44"
#define TOK_ADMIN "tok-admin-b82e10"
#define TOK_METRICS "tok-metrics-6e7a5c"
#define TOK_WRONG "tok-wrong-000000"
#define ACCESS_CONFIG_LEN 4096

static ts_jobd srv;

static void access_teardown(void)
{
    if (srv.pid > 0)
        ts_jobd_stop(&srv, SIGTERM, 10000);
}

TestSuite(access, .fini = access_teardown, .timeout = 120);

/* Every route of router.h with a request that reaches it and the scope
 * README gives it (0 = open). A route added to the router must be added here:
 * access_table_covers_every_route fails until it is. */
typedef struct access_route {
    route_id id;
    const char *method;
    const char *path;
    const char *body; /* JSON, or NULL */
    unsigned scope;
    const char *tmpl; /* the path in openapi.json */
} access_route;

static const access_route access_routes[] = {
    {ROUTE_HEALTHZ, "GET", "/healthz", NULL, 0, "/healthz"},
    {ROUTE_READYZ, "GET", "/readyz", NULL, 0, "/readyz"},
    {ROUTE_METRICS, "GET", "/metrics", NULL, SCOPE_METRICS, "/metrics"},
    {ROUTE_DASHBOARD, "GET", "/", NULL, SCOPE_READ, "/"},
    {ROUTE_QUEUES, "GET", "/queues", NULL, SCOPE_READ, "/queues"},
    {ROUTE_QUEUE, "GET", "/queues/local", NULL, SCOPE_READ, "/queues/{queue}"},
    {ROUTE_QUEUE_PAUSE, "POST", "/queues/local/pause", NULL, SCOPE_ADMIN, "/queues/{queue}/pause"},
    {ROUTE_QUEUE_RESUME, "POST", "/queues/local/resume", NULL, SCOPE_ADMIN,
     "/queues/{queue}/resume"},
    {ROUTE_JOBS_SUBMIT, "POST", "/queues/local/jobs", "{\"type\": \"noop\"}", SCOPE_SUBMIT,
     "/queues/{queue}/jobs"},
    {ROUTE_JOBS_LIST, "GET", "/queues/local/jobs", NULL, SCOPE_READ, "/queues/{queue}/jobs"},
    {ROUTE_JOB_GET, "GET", "/queues/local/jobs/nosuchjob", NULL, SCOPE_READ,
     "/queues/{queue}/jobs/{id}"},
    {ROUTE_JOB_CANCEL, "DELETE", "/queues/local/jobs/nosuchjob", NULL, SCOPE_ADMIN,
     "/queues/{queue}/jobs/{id}"},
    {ROUTE_DEAD_LIST, "GET", "/queues/local/dead", NULL, SCOPE_READ, "/queues/{queue}/dead"},
    {ROUTE_DEAD_RETRY, "POST", "/queues/local/dead/nosuchjob/retry", NULL, SCOPE_ADMIN,
     "/queues/{queue}/dead/{id}/retry"},
    {ROUTE_DEAD_DELETE, "DELETE", "/queues/local/dead/nosuchjob", NULL, SCOPE_ADMIN,
     "/queues/{queue}/dead/{id}"},
    {ROUTE_PERIODIC, "GET", "/periodic", NULL, SCOPE_READ, "/periodic"},
    {ROUTE_PERIODIC_TRIGGER, "POST", "/periodic/nosuchschedule/trigger", NULL, SCOPE_ADMIN,
     "/periodic/{name}/trigger"},
};
#define N_ACCESS_ROUTES (sizeof access_routes / sizeof access_routes[0])

/* The callers: a token and the scopes it was given (SCOPE_ALL: a plain
 * string; 0 with a token: a wrong one; NULL: no Authorization header). */
typedef struct access_caller {
    const char *name;
    const char *token;
    unsigned scopes;
} access_caller;

static const access_caller access_callers[] = {
    {"all", TOK_ALL, SCOPE_ALL},         {"submit", TOK_SUBMIT, SCOPE_SUBMIT},
    {"read", TOK_READ, SCOPE_READ},      {"admin", TOK_ADMIN, SCOPE_ADMIN},
    {"metrics", TOK_METRICS, SCOPE_METRICS}, {"wrong", TOK_WRONG, 0},
    {"none", NULL, 0},
};
#define N_CALLERS (sizeof access_callers / sizeof access_callers[0])

static const char *const access_secrets[] = {TOK_ALL, TOK_SUBMIT, TOK_READ, TOK_ADMIN,
                                             TOK_METRICS};

/* Writes "secret\n" to a new file of the scratch folder; its path into path (512 bytes). */
static void access_token_file(char *path, const char *secret)
{
    char u[32];
    snprintf(path, 512, "%s/token_%s", ts_tmpdir(), ts_unique(u));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fprintf(f, "%s\n", secret);
    fclose(f);
}

/* The tokens: submit and admin from environment variables (the child
 * inherits them), read and metrics from files, the all-scope one plain. */
static void access_config(char *out, bool metrics_public)
{
    char read_file[512], metrics_file[512];
    access_token_file(read_file, TOK_READ);
    access_token_file(metrics_file, TOK_METRICS);
    cr_assert_eq(setenv("JOBD_TEST_TOKEN_SUBMIT", TOK_SUBMIT, 1), 0);
    cr_assert_eq(setenv("JOBD_TEST_TOKEN_ADMIN", TOK_ADMIN, 1), 0);
    snprintf(out, ACCESS_CONFIG_LEN,
             "{\"workers\": 1, \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}},"
             " \"metrics\": {\"public\": %s}, \"auth\": {\"tokens\": [\"" TOK_ALL "\","
             " {\"token_env\": \"JOBD_TEST_TOKEN_SUBMIT\", \"scopes\": [\"submit\"]},"
             " {\"token_file\": \"%s\", \"scopes\": [\"read\"]},"
             " {\"token_env\": \"JOBD_TEST_TOKEN_ADMIN\", \"scopes\": [\"admin\"]},"
             " {\"token_file\": \"%s\", \"scopes\": [\"metrics\"]}]}}",
             metrics_public ? "true" : "false", read_file, metrics_file);
}

static int access_up(bool metrics_public)
{
    char cfg[ACCESS_CONFIG_LEN];
    access_config(cfg, metrics_public);
    cr_assert_eq(ts_jobd_start(&srv, cfg, NULL), 0, "jobd did not start");
    return srv.port;
}

/* Asks route r as caller c and checks the status class: 401 unauthorized
 * with WWW-Authenticate (no valid token), 403 forbidden (a valid token
 * without the scope), else an answer that is neither. */
static void access_expect(int port, const access_route *r, const access_caller *c,
                          unsigned needed)
{
    char auth[128], www[64];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token ? c->token : "");
    const char *headers[] = {auth, NULL};
    ts_resp resp;
    ts_http(&resp, r->method, port, r->path, r->body, NULL, c->token ? headers : NULL);
    const char *code = ts_error_code(&resp);
    bool has_www = ts_resp_header(&resp, "WWW-Authenticate", www, sizeof www) != NULL;
    if (needed && !c->scopes) {
        cr_expect_eq(resp.status, 401, "%s %s as %s: %ld, want 401", r->method, r->path, c->name,
                     resp.status);
        cr_expect_str_eq(code, "unauthorized", "%s %s as %s", r->method, r->path, c->name);
        cr_expect(has_www, "%s %s as %s: 401 without WWW-Authenticate", r->method, r->path,
                  c->name);
    } else if (needed && !(c->scopes & needed)) {
        cr_expect_eq(resp.status, 403, "%s %s as %s: %ld, want 403", r->method, r->path, c->name,
                     resp.status);
        cr_expect_str_eq(code, "forbidden", "%s %s as %s", r->method, r->path, c->name);
        cr_expect_not(has_www, "%s %s as %s: 403 asks for credentials", r->method, r->path,
                      c->name);
    } else {
        cr_expect(resp.status >= 200 && resp.status != 401 && resp.status != 403 &&
                      resp.status < 500,
                  "%s %s as %s: %ld (%s), want neither 401 nor 403", r->method, r->path, c->name,
                  resp.status, code);
    }
    for (size_t i = 0; i < sizeof access_secrets / sizeof *access_secrets; i++)
        cr_expect_null(strstr(resp.body, access_secrets[i]), "%s %s as %s: a token in the body",
                       r->method, r->path, c->name);
    ts_resp_free(&resp);
}

/* No token string in jobd's log. */
static void access_expect_log_clean(const char *log_path)
{
    char *text = ts_read_file(log_path, NULL);
    cr_assert_not_null(text, "cannot read %s", log_path);
    for (size_t i = 0; i < sizeof access_secrets / sizeof *access_secrets; i++)
        cr_expect_null(strstr(text, access_secrets[i]), "the log holds token %s",
                       access_secrets[i]);
    cr_expect_null(strstr(text, TOK_WRONG), "the log holds the wrong token");
    free(text);
}

Test(access, table_covers_every_route)
{
    bool seen[ROUTE_COUNT] = {false};
    for (size_t i = 0; i < N_ACCESS_ROUTES; i++) {
        const access_route *r = &access_routes[i];
        route_match m;
        router_match(r->method, r->path, &m);
        cr_expect_eq(m.route, r->id, "%s %s routes to %d, the table says %d", r->method, r->path,
                     m.route, r->id);
        seen[r->id] = true;
    }
    for (int id = ROUTE_HEALTHZ; id < ROUTE_COUNT; id++)
        cr_expect(seen[id], "route id %d has no row in access_routes (and no scope in README?)",
                  id);
}

Test(access, every_scope_on_every_route)
{
    int port = access_up(false);
    for (size_t i = 0; i < N_ACCESS_ROUTES; i++)
        for (size_t k = 0; k < N_CALLERS; k++)
            access_expect(port, &access_routes[i], &access_callers[k], access_routes[i].scope);
    access_expect_log_clean(srv.log_path);
}

/* metrics.public opens /metrics, and only it. */
Test(access, metrics_public_opens_metrics_only)
{
    int port = access_up(true);
    for (size_t i = 0; i < N_ACCESS_ROUTES; i++) {
        const access_route *r = &access_routes[i];
        unsigned needed = r->id == ROUTE_METRICS ? 0 : r->scope;
        for (size_t k = 0; k < N_CALLERS; k++)
            access_expect(port, r, &access_callers[k], needed);
    }
    access_expect_log_clean(srv.log_path);
}

/* 401 and 403 side by side: the same request, an unknown token and a known
 * one without the scope; the 403 is decided before the queue is looked up,
 * the 401 before anything. A token given many scopes gets them all. */
Test(access, forbidden_is_not_unauthorized)
{
    int port = access_up(false);
    static const access_caller nobody = {"wrong", TOK_WRONG, 0};
    static const access_caller reader = {"read", TOK_READ, SCOPE_READ};
    static const access_route submit_unknown = {ROUTE_JOBS_SUBMIT, "POST", "/queues/nope/jobs",
                                                "{\"type\": \"noop\"}", SCOPE_SUBMIT,
                                                "/queues/{queue}/jobs"};
    access_expect(port, &submit_unknown, &nobody, SCOPE_SUBMIT);
    access_expect(port, &submit_unknown, &reader, SCOPE_SUBMIT);
    ts_resp r;
    const char *h[] = {"Authorization: Bearer " TOK_READ, NULL};
    ts_http(&r, "DELETE", port, "/queues/local/dead/x", NULL, NULL, h);
    cr_expect_eq(r.status, 403);
    const char *msg = json_string_value(
        json_object_get(json_object_get(r.json, "error"), "message"));
    cr_expect(msg && strstr(msg, "admin"), "the 403 does not name the scope: %s", msg);
    ts_resp_free(&r);
    access_expect_log_clean(srv.log_path);
}

/* A config error about a token names its path and the variable or file,
 * never the secret, and jobd does not start. */
Test(access, token_config_errors_name_the_path_not_the_secret)
{
    char file[512], cfg_path[512], log[512], u[32];
    access_token_file(file, "tok-with blank-9a");
    cr_assert_eq(setenv("JOBD_TEST_TOKEN_SUBMIT", TOK_SUBMIT, 1), 0);
    cr_assert_eq(unsetenv("JOBD_TEST_TOKEN_UNSET"), 0);
    const struct {
        const char *entry;
        const char *want;
    } cases[] = {
        {"{\"token_env\": \"JOBD_TEST_TOKEN_UNSET\", \"scopes\": [\"read\"]}",
         "auth.tokens[2].token_env: the environment variable JOBD_TEST_TOKEN_UNSET is not set"},
        {"{\"token_env\": \"JOBD_TEST_TOKEN_SUBMIT\", \"scopes\": [\"submit\", \"write\"]}",
         "auth.tokens[2].scopes[1]: unknown scope \"write\""},
        {NULL, "auth.tokens[2].token_file: the file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char entry[700], cfg[ACCESS_CONFIG_LEN];
        if (cases[i].entry)
            snprintf(entry, sizeof entry, "%s", cases[i].entry);
        else
            snprintf(entry, sizeof entry, "{\"token_file\": \"%s\", \"scopes\": [\"read\"]}",
                     file);
        snprintf(cfg, sizeof cfg,
                 "{\"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}, \"auth\": {\"tokens\": "
                 "[\"" TOK_ALL "\", {\"token_env\": \"JOBD_TEST_TOKEN_SUBMIT\", \"scopes\": "
                 "[\"submit\"]}, %s]}}", entry);
        snprintf(cfg_path, sizeof cfg_path, "%s/access_%s.json", ts_tmpdir(), ts_unique(u));
        FILE *f = fopen(cfg_path, "w");
        cr_assert_not_null(f);
        fputs(cfg, f);
        fclose(f);
        const char *const args[] = {"--config", cfg_path, NULL};
        cr_expect_eq(ts_jobd_run(args, 10000, log, sizeof log), 2, "case %zu: not a config error",
                     i);
        char *text = ts_read_file(log, NULL);
        cr_expect(text && strstr(text, cases[i].want), "case %zu: want \"%s\" in:\n%s", i,
                  cases[i].want, text ? text : "");
        cr_expect(text && !strstr(text, "tok-with blank-9a"), "case %zu: the secret is shown", i);
        free(text);
        access_expect_log_clean(log);
    }
}

/* openapi.json gives each operation the scope above as x-jobd-scope, and a 403. */
Test(access, openapi_names_each_scope)
{
    json_error_t jerr;
    json_t *doc = json_load_file("openapi.json", 0, &jerr);
    cr_assert_not_null(doc, "openapi.json:%d: %s", jerr.line, jerr.text);
    for (size_t i = 0; i < N_ACCESS_ROUTES; i++) {
        const access_route *r = &access_routes[i];
        char method[8];
        size_t n = 0;
        for (; r->method[n] && n < sizeof method - 1; n++)
            method[n] = (char)(r->method[n] - 'A' + 'a');
        method[n] = '\0';
        const json_t *op = json_object_get(json_object_get(json_object_get(doc, "paths"),
                                                           r->tmpl), method);
        cr_assert_not_null(op, "%s %s is not in openapi.json", method, r->tmpl);
        const char *scope = json_string_value(json_object_get(op, "x-jobd-scope"));
        const char *want = config_scope_name(r->scope);
        cr_expect_str_eq(scope ? scope : "(none)", want ? want : "(none)", "%s %s", method,
                         r->tmpl);
        const json_t *forbidden = json_object_get(json_object_get(op, "responses"), "403");
        cr_expect(r->scope ? forbidden != NULL : forbidden == NULL, "%s %s: 403 %s", method,
                  r->tmpl, r->scope ? "missing" : "on an open route");
    }
    json_decref(doc);
}

/* Every route the table serves declares its scope: one known scope, or open. */
Test(access, every_route_declares_one_scope)
{
    for (int id = ROUTE_HEALTHZ; id < ROUTE_COUNT; id++) {
        const http_route *r = &handlers_routes[id];
        cr_expect(r->open ? r->scope == 0 : config_scope_name(r->scope) != NULL,
                  "route id %d: open %d, scope %#x", id, r->open, r->scope);
    }
}
