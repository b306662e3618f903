/* test_openapi.c - openapi.json checked against the code it describes: every
 * documented operation is a route of router.h and every route is documented;
 * every error code of openapi.json's overview table has an example under its status; the job states,
 * id and queue-name rules and length limits are the server's own; the example
 * requests pass job_from_request and the example job views are exactly what
 * job_view prints. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/job.h"
#include "../server/config.h"
#include "../server/router.h"
#include "support.h"

/* Relative to the repository root, where `make test` runs the binary. */
#define OPENAPI_PATH "openapi.json"
#define SAMPLE_QUEUE "default"
#define SAMPLE_ID "01ABC"
#define SAMPLE_NAME "nightly-report" /* a periodic schedule's name */
#define REF_MAX_HOPS 8

TestSuite(openapi);

/* Every route of router.h but NOT_FOUND and METHOD_NOT_ALLOWED. ROUTE_PERIODIC_TRIGGER
 * is the last id of the enum: a route appended after it must be added here. */
static const char *const route_names[] = {
    [ROUTE_HEALTHZ] = "GET /healthz",
    [ROUTE_READYZ] = "GET /readyz",
    [ROUTE_METRICS] = "GET /metrics",
    [ROUTE_DASHBOARD] = "GET /",
    [ROUTE_QUEUES] = "GET /queues",
    [ROUTE_QUEUE] = "GET /queues/{queue}",
    [ROUTE_QUEUE_PAUSE] = "POST /queues/{queue}/pause",
    [ROUTE_QUEUE_RESUME] = "POST /queues/{queue}/resume",
    [ROUTE_JOBS_SUBMIT] = "POST /queues/{queue}/jobs",
    [ROUTE_JOBS_LIST] = "GET /queues/{queue}/jobs",
    [ROUTE_JOB_GET] = "GET /queues/{queue}/jobs/{id}",
    [ROUTE_JOB_CANCEL] = "DELETE /queues/{queue}/jobs/{id}",
    [ROUTE_DEAD_LIST] = "GET /queues/{queue}/dead",
    [ROUTE_DEAD_RETRY] = "POST /queues/{queue}/dead/{id}/retry",
    [ROUTE_DEAD_DELETE] = "DELETE /queues/{queue}/dead/{id}",
    [ROUTE_PERIODIC] = "GET /periodic",
    [ROUTE_PERIODIC_TRIGGER] = "POST /periodic/{name}/trigger",
};
#define ROUTE_SLOTS (sizeof route_names / sizeof route_names[0])

/* The error codes of the API (openapi.json's overview table) with their HTTP status. */
typedef struct error_code {
    char code[32];
    char status[4];
} error_code;

static const error_code api_error_codes[] = {
    {"invalid_json", "400"},       {"invalid_parameter", "400"},
    {"unauthorized", "401"},       {"forbidden", "403"},
    {"unknown_queue", "404"},
    {"unknown_job", "404"},        {"not_found", "404"},
    {"method_not_allowed", "405"}, {"conflict", "409"},
    {"payload_too_large", "413"},  {"unsupported_media_type", "415"},
    {"invalid_job", "422"},        {"batch_too_large", "422"},
    {"queue_full", "429"},         {"unavailable", "503"},
    {"bad_request", "400"},        {"headers_too_large", "431"},
    {"not_implemented", "501"},    {"internal_error", "500"},
    {"unknown_periodic", "404"},
};
#define N_ERROR_CODES (sizeof api_error_codes / sizeof api_error_codes[0])

static const char *const http_methods[] = {
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
};

/* The keys of a Path Item that are not operations. */
static const char *const path_item_fields[] = {
    "summary", "description", "parameters", "servers",
};

static bool openapi_in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, list[i]) == 0)
            return true;
    }
    return false;
}

static bool openapi_is_method(const char *key)
{
    return openapi_in_list(key, http_methods, sizeof http_methods / sizeof http_methods[0]);
}

/* The document as a new reference; aborts the test when it does not load. */
static json_t *openapi_load(void)
{
    json_error_t jerr;
    json_t *doc = json_load_file(OPENAPI_PATH, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(doc, "%s:%d: %s", OPENAPI_PATH, jerr.line, jerr.text);
    cr_assert(json_is_object(doc), "%s is not a JSON object", OPENAPI_PATH);
    return doc;
}

/* Follows a local JSON pointer ("#/components/schemas/Job") from the root;
 * borrowed result, NULL when it leads nowhere. */
static const json_t *openapi_pointer(const json_t *doc, const char *ref)
{
    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    const json_t *node = doc;
    const char *p = ref + 2;
    while (node && *p) {
        char seg[128];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            if (n == sizeof seg - 1)
                return NULL;
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1'))
                seg[n++] = *++p == '1' ? '/' : '~';
            else
                seg[n++] = *p;
        }
        seg[n] = '\0';
        if (*p == '/')
            p++;
        node = json_object_get(node, seg);
    }
    return node;
}

/* node itself, or what its "$ref" chain points to (borrowed); NULL for a
 * dangling or looping chain. */
static const json_t *openapi_resolve(const json_t *doc, const json_t *node)
{
    for (int hops = 0; hops < REF_MAX_HOPS; hops++) {
        const char *ref = json_string_value(json_object_get(node, "$ref"));
        if (!ref)
            return node;
        node = openapi_pointer(doc, ref);
    }
    return NULL;
}

/* The path with {queue} and {id} replaced by sample values into out; -1 for
 * another placeholder or no room. */
static int openapi_sample_path(const char *tmpl, char *out, size_t size)
{
    size_t used = 0;
    while (*tmpl) {
        const char *piece = NULL;
        size_t len = 1, skip = 1;
        if (*tmpl == '{') {
            const char *end = strchr(tmpl, '}');
            if (!end)
                return -1;
            skip = (size_t)(end - tmpl) + 1;
            if (strncmp(tmpl, "{queue}", skip) == 0 && skip == strlen("{queue}"))
                piece = SAMPLE_QUEUE;
            else if (strncmp(tmpl, "{id}", skip) == 0 && skip == strlen("{id}"))
                piece = SAMPLE_ID;
            else if (strncmp(tmpl, "{name}", skip) == 0 && skip == strlen("{name}"))
                piece = SAMPLE_NAME;
            else
                return -1;
            len = strlen(piece);
        } else {
            piece = tmpl;
        }
        if (used + len >= size)
            return -1;
        memcpy(out + used, piece, len);
        used += len;
        tmpl += skip;
    }
    out[used] = '\0';
    return 0;
}

typedef void (*openapi_op_fn)(const char *path, const char *method, const json_t *op,
                              void *ctx);

/* Calls fn for every operation of paths; fails on a Path Item key that is
 * neither an operation nor a known field (e.g. a misspelt method). */
static void openapi_each_operation(const json_t *doc, openapi_op_fn fn, void *ctx)
{
    const json_t *paths = json_object_get(doc, "paths");
    cr_assert(json_is_object(paths), "no paths object");
    const char *path, *key;
    json_t *item, *op;
    json_object_foreach((json_t *)paths, path, item) {
        json_object_foreach(item, key, op) {
            if (openapi_is_method(key))
                fn(path, key, op, ctx);
            else
                cr_expect(openapi_in_list(key, path_item_fields,
                                          sizeof path_item_fields / sizeof path_item_fields[0]),
                          "%s: unknown key \"%s\" in the path item", path, key);
        }
    }
}

/* "get" -> "GET" into out (>= 8 bytes). */
static void openapi_upper(const char *method, char out[8])
{
    size_t i = 0;
    for (; method[i] && i < 7; i++)
        out[i] = (char)toupper((unsigned char)method[i]);
    out[i] = '\0';
}

static void openapi_check_route(const char *path, const char *method, const json_t *op,
                                void *ctx)
{
    bool *seen = ctx;
    char upper[8], sample[256];
    openapi_upper(method, upper);
    if (openapi_sample_path(path, sample, sizeof sample) < 0) {
        cr_expect_fail("%s %s: placeholder other than {queue}, {id} or {name}", upper, path);
        return;
    }
    route_match m;
    router_match(upper, sample, &m);
    cr_expect(m.route != ROUTE_NOT_FOUND && m.route != ROUTE_METHOD_NOT_ALLOWED,
              "%s %s (%s) is documented but the router answers %s", upper, path, sample,
              m.route == ROUTE_NOT_FOUND ? "404" : "405");
    if (strstr(path, "{queue}"))
        cr_expect_str_eq(m.queue, SAMPLE_QUEUE, "%s %s: {queue} is not the queue segment",
                         upper, path);
    if (strstr(path, "{id}"))
        cr_expect_str_eq(m.id, SAMPLE_ID, "%s %s: {id} is not the id segment", upper, path);
    if (strstr(path, "{name}")) /* a schedule's name takes the queue's segment */
        cr_expect_str_eq(m.queue, SAMPLE_NAME, "%s %s: {name} is not segment 1", upper, path);
    if ((size_t)m.route < ROUTE_SLOTS)
        seen[m.route] = true;
    else
        cr_expect_fail("%s %s: route id %d is missing from route_names", upper, path, m.route);
    cr_expect(json_is_object(op), "%s %s: operation is not an object", upper, path);
}

Test(openapi, is_openapi_3_0_of_this_version)
{
    json_t *doc = openapi_load();
    const char *version = json_string_value(json_object_get(doc, "openapi"));
    cr_assert_not_null(version, "no \"openapi\" version string");
    cr_expect(strncmp(version, "3.0.", 4) == 0, "openapi is \"%s\", want 3.0.x", version);
    const char *info_version =
        json_string_value(json_object_get(json_object_get(doc, "info"), "version"));
    cr_expect_str_eq(info_version ? info_version : "", JOBD_VERSION, "info.version");
    json_decref(doc);
}

Test(openapi, every_operation_is_a_route_and_every_route_is_documented)
{
    json_t *doc = openapi_load();
    bool seen[ROUTE_SLOTS] = {false};
    openapi_each_operation(doc, openapi_check_route, seen);
    for (size_t r = ROUTE_HEALTHZ; r < ROUTE_SLOTS; r++)
        cr_expect(seen[r], "route %s (id %zu) is not documented", route_names[r], r);
    json_decref(doc);
}

Test(openapi, refs_resolve_or_fail)
{
    /* The checks below rely on openapi_resolve: make sure it can fail. */
    json_t *doc = json_loads("{\"s\": {\"a~/b\": 1, \"one\": {\"$ref\": \"#/s/a~0~1b\"},"
                             " \"l1\": {\"$ref\": \"#/s/l2\"}, \"l2\": {\"$ref\": \"#/s/l1\"},"
                             " \"bad\": {\"$ref\": \"#/s/none\"}}}",
                             0, NULL);
    cr_assert_not_null(doc);
    const json_t *s = json_object_get(doc, "s");
    cr_expect_eq(json_integer_value(openapi_resolve(doc, json_object_get(s, "one"))), 1);
    cr_expect_null(openapi_resolve(doc, json_object_get(s, "bad")));
    cr_expect_null(openapi_resolve(doc, json_object_get(s, "l1")));
    json_decref(doc);
}

typedef void (*openapi_example_fn)(const char *where, const char *status, const json_t *value,
                                   void *ctx);

typedef struct example_walk {
    const json_t *doc;
    openapi_example_fn fn;
    void *ctx;
} example_walk;

/* Calls fn for the "example" and each of the "examples" of one media type. */
static void openapi_media_examples(const example_walk *w, const char *where, const char *status,
                                   const json_t *media)
{
    const json_t *single = json_object_get(media, "example");
    if (single)
        w->fn(where, status, single, w->ctx);
    const char *name;
    json_t *ex;
    json_object_foreach(json_object_get(media, "examples"), name, ex) {
        const json_t *resolved = openapi_resolve(w->doc, ex);
        cr_expect_not_null(resolved, "%s %s: example \"%s\" has a dangling $ref", where, status,
                           name);
        const json_t *value = json_object_get(resolved, "value");
        cr_expect_not_null(value, "%s %s: example \"%s\" has no value", where, status, name);
        if (value)
            w->fn(where, status, value, w->ctx);
    }
}

static void openapi_op_examples(const char *path, const char *method, const json_t *op,
                                void *ctx)
{
    const example_walk *w = ctx;
    char where[300];
    snprintf(where, sizeof where, "%s %s", method, path);
    const char *status, *type;
    json_t *resp, *media;
    json_object_foreach(json_object_get(op, "responses"), status, resp) {
        const json_t *resolved = openapi_resolve(w->doc, resp);
        cr_expect_not_null(resolved, "%s %s: dangling $ref", where, status);
        json_object_foreach(json_object_get(resolved, "content"), type, media)
            openapi_media_examples(w, where, status, media);
    }
}

/* Calls fn for every example value of every response of every operation. */
static void openapi_each_response_example(const json_t *doc, openapi_example_fn fn, void *ctx)
{
    example_walk w = {doc, fn, ctx};
    openapi_each_operation(doc, openapi_op_examples, &w);
}

static void openapi_check_error_example(const char *where, const char *status,
                                        const json_t *value, void *ctx)
{
    bool *found = ctx;
    const char *code = json_string_value(json_object_get(json_object_get(value, "error"), "code"));
    if (!code)
        return;
    for (size_t i = 0; i < N_ERROR_CODES; i++) {
        if (strcmp(code, api_error_codes[i].code) == 0) {
            cr_expect_str_eq(status, api_error_codes[i].status,
                             "%s: error %s is an example of %s, the API says %s", where, code,
                             status, api_error_codes[i].status);
            found[i] = true;
            return;
        }
    }
    cr_expect_fail("%s %s: error code \"%s\" is not one of the API's", where, status, code);
}

/* True when word occurs in text with no [a-z0-9_] right before or after it. */
static bool openapi_has_word(const char *text, const char *word)
{
    size_t len = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        bool before = p > text && (islower((unsigned char)p[-1]) ||
                                   isdigit((unsigned char)p[-1]) || p[-1] == '_');
        char next = p[len];
        bool after = islower((unsigned char)next) || isdigit((unsigned char)next) || next == '_';
        if (!before && !after)
            return true;
    }
    return false;
}

Test(openapi, every_error_code_is_described_and_has_an_example_under_its_status)
{
    json_t *doc = openapi_load();
    bool found[N_ERROR_CODES] = {false};
    openapi_each_response_example(doc, openapi_check_error_example, found);
    const char *overview =
        json_string_value(json_object_get(json_object_get(doc, "info"), "description"));
    cr_assert_not_null(overview, "no info.description");
    for (size_t i = 0; i < N_ERROR_CODES; i++) {
        cr_expect(found[i], "no response example with error code %s (status %s)",
                  api_error_codes[i].code, api_error_codes[i].status);
        cr_expect(openapi_has_word(overview, api_error_codes[i].code),
                  "info.description does not list error code %s", api_error_codes[i].code);
    }
    json_decref(doc);
}

/* Each error a source file raises with a literal status and code,
 * jobd_fail(err, 404, "unknown_job", ...) or http_errorf(req, 500,
 * "internal_error", ...), must be one of api_error_codes under that status;
 * how many it found. */
static size_t openapi_check_source_codes(const char *path, const char *text)
{
    regex_t re;
    regmatch_t m[4];
    size_t n = 0;
    cr_assert_eq(regcomp(&re,
                         "(jobd_fail|http_errorf)\\([^,()]+,[[:space:]]*([0-9]{3}),[[:space:]]*"
                         "\"([a-z_]+)\"",
                         REG_EXTENDED),
                 0);
    for (const char *p = text; regexec(&re, p, 4, m, 0) == 0; p += m[0].rm_eo, n++) {
        char status[4], code[32];
        snprintf(status, sizeof status, "%.*s", (int)(m[2].rm_eo - m[2].rm_so), p + m[2].rm_so);
        snprintf(code, sizeof code, "%.*s", (int)(m[3].rm_eo - m[3].rm_so), p + m[3].rm_so);
        size_t i = 0;
        while (i < N_ERROR_CODES && strcmp(api_error_codes[i].code, code) != 0)
            i++;
        cr_expect(i < N_ERROR_CODES, "%s: error code \"%s\" is not one of the API's", path, code);
        if (i < N_ERROR_CODES)
            cr_expect_str_eq(status, api_error_codes[i].status, "%s: %s is a %s, not a %s", path,
                             code, api_error_codes[i].status, status);
    }
    regfree(&re);
    return n;
}

Test(openapi, every_error_the_sources_raise_is_documented_under_its_status)
{
    static const char *const dirs[] = {"util", "server", "queues", "handlers"};
    size_t found = 0;
    for (size_t d = 0; d < sizeof dirs / sizeof *dirs; d++) {
        DIR *dir = opendir(dirs[d]);
        struct dirent *de;
        while (dir && (de = readdir(dir)) != NULL) {
            size_t len = strlen(de->d_name);
            if (len < 3 || strcmp(de->d_name + len - 2, ".c") != 0)
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dirs[d], de->d_name);
            char *text = ts_read_file(path, NULL);
            cr_assert_not_null(text, "cannot read %s", path);
            found += openapi_check_source_codes(path, text);
            free(text);
        }
        if (dir)
            closedir(dir);
    }
    cr_expect_gt(found, 50, "only %zu errors found in the sources: is the pattern stale?", found);
}

/* Borrowed schema at pointer, $refs followed; aborts the test when missing. */
static const json_t *openapi_schema(const json_t *doc, const char *pointer)
{
    const json_t *s = openapi_resolve(doc, openapi_pointer(doc, pointer));
    cr_assert(json_is_object(s), "%s: no such schema", pointer);
    return s;
}

static void openapi_expect_state_enum(const json_t *schema, const char *where)
{
    const json_t *states = json_object_get(schema, "enum");
    cr_assert(json_is_array(states), "%s: no enum", where);
    cr_expect_eq(json_array_size(states), (size_t)JOB_STATE_COUNT, "%s: %zu states, want %d",
                 where, json_array_size(states), JOB_STATE_COUNT);
    for (int s = 0; s < JOB_STATE_COUNT; s++) {
        const char *name = json_string_value(json_array_get(states, (size_t)s));
        cr_expect_str_eq(name ? name : "(none)", job_state_name((job_state)s), "%s[%d]", where,
                         s);
    }
}

/* The borrowed schema of the query parameter name of op, $refs followed. */
static const json_t *openapi_param_schema(const json_t *doc, const json_t *op, const char *name)
{
    size_t i;
    json_t *param;
    json_array_foreach(json_object_get(op, "parameters"), i, param) {
        const json_t *p = openapi_resolve(doc, param);
        const char *pname = json_string_value(json_object_get(p, "name"));
        if (pname && strcmp(pname, name) == 0)
            return openapi_resolve(doc, json_object_get(p, "schema"));
    }
    return NULL;
}

Test(openapi, job_states_are_the_servers)
{
    json_t *doc = openapi_load();
    openapi_expect_state_enum(openapi_schema(doc, "#/components/schemas/Job/properties/state"),
                              "Job.state");
    const json_t *list = openapi_pointer(doc, "#/paths/~1queues~1{queue}~1jobs/get");
    const json_t *param = openapi_param_schema(doc, list, "state");
    cr_assert_not_null(param, "GET /queues/{queue}/jobs has no state parameter");
    openapi_expect_state_enum(param, "the state parameter");
    json_decref(doc);
}

typedef struct name_rule {
    const char *schema;          /* JSON pointer */
    bool (*server_ok)(const char *s);
    size_t max;
} name_rule;

/* Compares the schema's pattern (a POSIX ERE here) and length bounds with the
 * server's own check on strings around the edges. */
static void openapi_expect_name_rule(const json_t *doc, const name_rule *rule)
{
    const json_t *schema = openapi_schema(doc, rule->schema);
    const char *pattern = json_string_value(json_object_get(schema, "pattern"));
    cr_assert_not_null(pattern, "%s: no pattern", rule->schema);
    cr_expect_eq(json_integer_value(json_object_get(schema, "minLength")), 1, "%s minLength",
                 rule->schema);
    cr_expect_eq(json_integer_value(json_object_get(schema, "maxLength")), (json_int_t)rule->max,
                 "%s maxLength", rule->schema);
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0, "%s: bad pattern %s",
                 rule->schema, pattern);
    char longest[JOB_ID_MAX + 2], too_long[JOB_ID_MAX + 3];
    memset(longest, 'a', rule->max);
    longest[rule->max] = '\0';
    memset(too_long, 'b', rule->max + 1);
    too_long[rule->max + 1] = '\0';
    const char *const samples[] = {
        "a", "default", "q_1-x", "01J.a:b-c_d", "x.y", "a:b", "", "a b", "a/b", "a%2Fb",
        "caf\xc3\xa9", "a\nb", "-", "_", longest, too_long,
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        bool schema_ok = regexec(&re, samples[i], 0, NULL, 0) == 0;
        bool server_ok = rule->server_ok(samples[i]);
        cr_expect_eq(schema_ok, server_ok,
                     "%s: \"%.20s\" (%zu chars): pattern says %d, server says %d", rule->schema,
                     samples[i], strlen(samples[i]), schema_ok, server_ok);
    }
    regfree(&re);
}

Test(openapi, names_and_limits_are_the_servers)
{
    json_t *doc = openapi_load();
    const name_rule rules[] = {
        {"#/components/schemas/JobId", name_id_ok, JOB_ID_MAX},
        {"#/components/schemas/QueueName", name_queue_ok, QUEUE_NAME_MAX},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        openapi_expect_name_rule(doc, &rules[i]);
    const json_t *type = openapi_schema(doc, "#/components/schemas/JobRequest/properties/type");
    cr_expect_eq(json_integer_value(json_object_get(type, "maxLength")), JOB_TYPE_MAX);
    const json_t *err = openapi_schema(doc, "#/components/schemas/Job/properties/last_error");
    cr_expect_eq(json_integer_value(json_object_get(err, "maxLength")), JOB_ERROR_MAX);
    const json_t *req = openapi_schema(doc, "#/components/schemas/JobRequest");
    cr_expect(json_is_false(json_object_get(req, "additionalProperties")),
              "JobRequest must reject unknown fields");
    json_decref(doc);
}

static void openapi_expect_valid_request(const json_t *job, const char *name, size_t index,
                                         ulid_gen *ids)
{
    jobd_error err = {0};
    job_t *parsed = job_from_request(job, SAMPLE_QUEUE, NULL, ids, jobd_now_ms(), &err);
    cr_expect_not_null(parsed, "request example %s[%zu] is refused: %s (field %s)", name, index,
                       err.message, err.field);
    job_free(parsed);
}

Test(openapi, request_examples_are_valid_jobs)
{
    json_t *doc = openapi_load();
    const json_t *examples = openapi_pointer(
        doc, "#/paths/~1queues~1{queue}~1jobs/post/requestBody/content/application~1json/examples");
    cr_assert(json_object_size(examples) > 0, "POST /queues/{queue}/jobs has no examples");
    ulid_gen ids;
    ulid_init(&ids);
    const char *name;
    json_t *ex;
    json_object_foreach((json_t *)examples, name, ex) {
        const json_t *value = json_object_get(openapi_resolve(doc, ex), "value");
        cr_expect_not_null(value, "request example %s has no value", name);
        if (!json_is_array(value)) {
            openapi_expect_valid_request(value, name, 0, &ids);
            continue;
        }
        size_t i;
        json_t *job;
        json_array_foreach(value, i, job)
            openapi_expect_valid_request(job, name, i, &ids);
    }
    ulid_destroy(&ids);
    json_decref(doc);
}

/* A job view example must survive job_from_view -> job_view unchanged, but
 * for the batch-only "replayed" flag. */
static void openapi_expect_view(const char *where, const json_t *view, size_t *n_views)
{
    job_t *job = job_from_view(view);
    cr_expect_not_null(job, "%s: example is not a valid job view", where);
    if (!job)
        return;
    json_t *printed = job_view(job);
    json_t *expected = json_deep_copy(view);
    json_object_del(expected, "replayed");
    char *want = json_dumps(expected, JSON_SORT_KEYS | JSON_COMPACT);
    char *got = json_dumps(printed, JSON_SORT_KEYS | JSON_COMPACT);
    cr_expect(json_equal(printed, expected), "%s: the server would print\n%s\nnot\n%s", where,
              got, want);
    free(want);
    free(got);
    json_decref(expected);
    json_decref(printed);
    job_free(job);
    (*n_views)++;
}

static void openapi_check_view_example(const char *where, const char *status,
                                       const json_t *value, void *ctx)
{
    if (status[0] != '2' || !json_is_object(value))
        return;
    if (json_object_get(value, "state")) {
        openapi_expect_view(where, value, ctx);
        return;
    }
    size_t i;
    json_t *view;
    json_array_foreach(json_object_get(value, "jobs"), i, view)
        openapi_expect_view(where, view, ctx);
}

Test(openapi, job_view_examples_are_what_the_server_prints)
{
    json_t *doc = openapi_load();
    size_t n_views = 0;
    openapi_each_response_example(doc, openapi_check_view_example, &n_views);
    cr_expect_geq(n_views, 10, "only %zu job view examples found", n_views);
    json_decref(doc);
}
