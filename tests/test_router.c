/* test_router.c - router_match: every route, 404s, 405 with Allow, bad segments. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../server/router.h"

TestSuite(router);

typedef struct route_case {
    char method[8];
    char path[64];
    route_id route;
    char queue[16];
    char id[16];
} route_case;

static const route_case route_cases[] = {
    {"GET", "/", ROUTE_DASHBOARD, "", ""},
    {"GET", "/healthz", ROUTE_HEALTHZ, "", ""},
    {"GET", "/readyz", ROUTE_READYZ, "", ""},
    {"GET", "/metrics", ROUTE_METRICS, "", ""},
    {"GET", "/queues", ROUTE_QUEUES, "", ""},
    {"GET", "/queues/default", ROUTE_QUEUE, "default", ""},
    {"POST", "/queues/default/pause", ROUTE_QUEUE_PAUSE, "default", ""},
    {"POST", "/queues/default/resume", ROUTE_QUEUE_RESUME, "default", ""},
    {"POST", "/queues/q_1-x/jobs", ROUTE_JOBS_SUBMIT, "q_1-x", ""},
    {"GET", "/queues/q_1-x/jobs", ROUTE_JOBS_LIST, "q_1-x", ""},
    {"GET", "/queues/local/jobs/01J.a:b-c_d", ROUTE_JOB_GET, "local", "01J.a:b-c_d"},
    {"DELETE", "/queues/local/jobs/abc", ROUTE_JOB_CANCEL, "local", "abc"},
    {"GET", "/queues/local/dead", ROUTE_DEAD_LIST, "local", ""},
    {"POST", "/queues/local/dead/abc/retry", ROUTE_DEAD_RETRY, "local", "abc"},
    {"DELETE", "/queues/local/dead/abc", ROUTE_DEAD_DELETE, "local", "abc"},
    {"GET", "/periodic", ROUTE_PERIODIC, "", ""},
    {"POST", "/periodic/nightly-report/trigger", ROUTE_PERIODIC_TRIGGER, "nightly-report", ""},
    /* a queue may be named like a fixed segment */
    {"GET", "/queues/jobs/jobs/dead", ROUTE_JOB_GET, "jobs", "dead"},
    {"HEAD", "/healthz", ROUTE_HEALTHZ, "", ""},
    {"HEAD", "/queues/local/jobs/abc", ROUTE_JOB_GET, "local", "abc"},
};

Test(router, every_route_matches_with_its_segments)
{
    for (size_t i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++) {
        const route_case *c = &route_cases[i];
        route_match m;
        router_match(c->method, c->path, &m);
        cr_expect_eq(m.route, c->route, "%s %s: route %d, want %d", c->method, c->path, m.route,
                     c->route);
        cr_expect_str_eq(m.queue, c->queue, "%s %s", c->method, c->path);
        cr_expect_str_eq(m.id, c->id, "%s %s", c->method, c->path);
        cr_expect_eq(m.queue_ok, c->queue[0] != '\0', "%s %s", c->method, c->path);
        cr_expect_eq(m.id_ok, c->id[0] != '\0', "%s %s", c->method, c->path);
        cr_expect_str_empty(m.allow, "%s %s: allow \"%s\"", c->method, c->path, m.allow);
    }
}

static const char *const not_found_paths[] = {
    "",
    "healthz",
    "//",
    "/healthz/",
    "/healthz/x",
    "/Healthz",
    "/queues/",
    "/queues//jobs",
    "/queues/default/",
    "/queues/default/jobs/",
    "/queues/default/unknown",
    "/queues/default/jobs/abc/retry",
    "/queues/default/dead/abc/retry/",
    "/queues/default/dead/abc/retry/x",
    "/queues/default/dead/abc/cancel",
    "/queues/default/jobs/abc/x/y/z",
    "/nothing",
};

Test(router, unknown_paths_are_not_found)
{
    for (size_t i = 0; i < sizeof not_found_paths / sizeof not_found_paths[0]; i++) {
        route_match m;
        router_match("GET", not_found_paths[i], &m);
        cr_expect_eq(m.route, ROUTE_NOT_FOUND, "GET \"%s\": route %d", not_found_paths[i],
                     m.route);
        cr_expect_str_empty(m.allow, "\"%s\"", not_found_paths[i]);
    }
}

Test(router, null_inputs_are_not_found)
{
    route_match m;
    router_match(NULL, "/healthz", &m);
    cr_expect_eq(m.route, ROUTE_NOT_FOUND);
    router_match("GET", NULL, &m);
    cr_expect_eq(m.route, ROUTE_NOT_FOUND);
}

typedef struct allow_case {
    char method[8];
    char path[48];
    char allow[24];
} allow_case;

static const allow_case allow_cases[] = {
    {"POST", "/healthz", "GET"},
    {"DELETE", "/", "GET"},
    {"PUT", "/queues", "GET"},
    {"DELETE", "/queues/default", "GET"},
    {"GET", "/queues/default/pause", "POST"},
    {"GET", "/queues/default/resume", "POST"},
    {"PUT", "/queues/default/jobs", "GET, POST"},
    {"DELETE", "/queues/default/jobs", "GET, POST"},
    {"POST", "/queues/default/jobs/abc", "GET, DELETE"},
    {"POST", "/queues/default/dead", "GET"},
    {"GET", "/queues/default/dead/abc", "DELETE"},
    {"GET", "/queues/default/dead/abc/retry", "POST"},
    {"get", "/healthz", "GET"}, /* methods are case-sensitive (RFC 9110) */
    {"OPTIONS", "/queues/default/jobs", "GET, POST"},
};

Test(router, wrong_method_is_405_with_allow)
{
    for (size_t i = 0; i < sizeof allow_cases / sizeof allow_cases[0]; i++) {
        const allow_case *c = &allow_cases[i];
        route_match m;
        router_match(c->method, c->path, &m);
        cr_expect_eq(m.route, ROUTE_METHOD_NOT_ALLOWED, "%s %s: route %d", c->method, c->path,
                     m.route);
        cr_expect_str_eq(m.allow, c->allow, "%s %s", c->method, c->path);
    }
}

Test(router, wrong_method_still_reports_the_queue)
{
    route_match m;
    router_match("PUT", "/queues/default/jobs/abc", &m);
    cr_assert_eq(m.route, ROUTE_METHOD_NOT_ALLOWED);
    cr_expect_str_eq(m.queue, "default");
    cr_expect(m.queue_ok);
    cr_expect_str_eq(m.id, "abc");
    cr_expect(m.id_ok);
}

static const char *const bad_queue_paths[] = {
    "/queues/a.b/jobs",
    "/queues/a b/jobs",
    "/queues/%41/jobs",
    "/queues/caf\xc3\xa9/jobs",
    "/queues/a:b/jobs",
};

Test(router, invalid_queue_segment_routes_but_is_not_ok)
{
    for (size_t i = 0; i < sizeof bad_queue_paths / sizeof bad_queue_paths[0]; i++) {
        route_match m;
        router_match("POST", bad_queue_paths[i], &m);
        cr_expect_eq(m.route, ROUTE_JOBS_SUBMIT, "%s", bad_queue_paths[i]);
        cr_expect_not(m.queue_ok, "%s", bad_queue_paths[i]);
    }
}

static const char *const bad_id_paths[] = {
    "/queues/default/jobs/a b",
    "/queues/default/jobs/a%2Fb",
    "/queues/default/jobs/a,b",
    "/queues/default/jobs/\xc3\xa9",
};

Test(router, invalid_id_segment_routes_but_is_not_ok)
{
    for (size_t i = 0; i < sizeof bad_id_paths / sizeof bad_id_paths[0]; i++) {
        route_match m;
        router_match("GET", bad_id_paths[i], &m);
        cr_expect_eq(m.route, ROUTE_JOB_GET, "%s", bad_id_paths[i]);
        cr_expect(m.queue_ok, "%s", bad_id_paths[i]);
        cr_expect_not(m.id_ok, "%s", bad_id_paths[i]);
    }
}

/* Builds "/queues/<q>/jobs/<id>" with segments of the given lengths. */
static char *long_path(size_t queue_len, size_t id_len)
{
    size_t size = queue_len + id_len + 32;
    char *path = malloc(size);
    cr_assert_not_null(path);
    int off = snprintf(path, size, "/queues/");
    memset(path + off, 'q', queue_len);
    off += (int)queue_len;
    off += snprintf(path + off, size - (size_t)off, "/jobs/");
    memset(path + off, 'i', id_len);
    path[off + (int)id_len] = '\0';
    return path;
}

Test(router, segments_at_their_maximum_length_are_ok)
{
    char *path = long_path(QUEUE_NAME_MAX, JOB_ID_MAX);
    route_match m;
    router_match("GET", path, &m);
    cr_expect_eq(m.route, ROUTE_JOB_GET);
    cr_expect(m.queue_ok);
    cr_expect(m.id_ok);
    cr_expect_eq(strlen(m.queue), QUEUE_NAME_MAX);
    cr_expect_eq(strlen(m.id), JOB_ID_MAX);
    free(path);
}

Test(router, segments_one_too_long_are_not_ok)
{
    char *path = long_path(QUEUE_NAME_MAX + 1, JOB_ID_MAX + 1);
    route_match m;
    router_match("GET", path, &m);
    cr_expect_eq(m.route, ROUTE_JOB_GET);
    cr_expect_not(m.queue_ok);
    cr_expect_not(m.id_ok);
    cr_expect_str_empty(m.queue);
    cr_expect_str_empty(m.id);
    free(path);
}

Test(router, huge_segments_do_not_overflow)
{
    char *path = long_path(100000, 100000);
    route_match m;
    router_match("DELETE", path, &m);
    cr_expect_eq(m.route, ROUTE_JOB_CANCEL);
    cr_expect_not(m.queue_ok);
    cr_expect_not(m.id_ok);
    free(path);
}
