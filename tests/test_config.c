/* test_config.c - the config module: data-driven valid/invalid files
 * (tests/data/config/valid and invalid, NAME.json files; each invalid one has the
 * exact expected message in NAME.err), defaults, env overrides, lookups. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../queues/pipeline.h"
#include "../server/config.h"
#include "../util/name.h"
#include "support.h"

/* Relative to the repository root, where `make test` runs the binary. */
#define DATA_DIR "tests/data/config"
#define MAX_CASES 256

/* The option checks jobd itself parses with (processor and handler kinds). */
static const config_checks *const checks = &pipeline_config_checks;

typedef struct data_case {
    char name[128]; /* file name without ".json"; char[] (not char *) for criterion's PIE build */
} data_case;

static int case_cmp(const void *a, const void *b)
{
    return strcmp(((const data_case *)a)->name, ((const data_case *)b)->name);
}

/* Fills out (room for MAX_CASES) with the *.json cases of DATA_DIR/sub, sorted. */
static size_t scan_cases(const char *sub, data_case *out)
{
    char dir_path[256];
    size_t n = 0;
    struct dirent *de;
    snprintf(dir_path, sizeof dir_path, "%s/%s", DATA_DIR, sub);
    DIR *dir = opendir(dir_path);
    while (dir && n < MAX_CASES && (de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 5 && len - 5 < sizeof out->name && strcmp(de->d_name + len - 5, ".json") == 0)
            snprintf(out[n++].name, sizeof out->name, "%.*s", (int)(len - 5), de->d_name);
    }
    if (dir)
        closedir(dir);
    qsort(out, n, sizeof *out, case_cmp);
    return n;
}

/* The cases as criterion parameters, in the cr_malloc'd memory it requires. */
static data_case *param_cases(const char *sub, size_t *n)
{
    data_case found[MAX_CASES];
    data_case *cases;
    *n = scan_cases(sub, found);
    cases = cr_malloc((*n ? *n : 1) * sizeof *cases);
    if (!cases)
        *n = 0;
    else if (*n)
        memcpy(cases, found, *n * sizeof *cases);
    return cases;
}

static void free_cases(struct criterion_test_params *params)
{
    cr_free(params->params);
}

/* The file's text without trailing newlines (malloc'd), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 4096);
    size_t len = f && buf ? fread(buf, 1, 4095, f) : 0;
    if (f)
        fclose(f);
    while (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    return buf;
}

static size_t count_cases(const char *sub)
{
    data_case *found = malloc(MAX_CASES * sizeof *found);
    size_t n = found ? scan_cases(sub, found) : 0;
    free(found);
    return n;
}

TestSuite(config);

/* Guards the parameterized tests below against running zero cases (wrong cwd). */
Test(config, data_folders_present)
{
    cr_assert_geq(count_cases("valid"), 3, "run from the repository root");
    cr_assert_geq(count_cases("invalid"), 25);
}

ParameterizedTestParameters(config, valid_file)
{
    size_t n;
    data_case *cases = param_cases("valid", &n);
    return cr_make_param_array(data_case, cases, n, free_cases);
}

ParameterizedTest(data_case *c, config, valid_file)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/valid/%s.json", DATA_DIR, c->name);
    config_t *cfg = config_load_file(path, NULL, checks, err, sizeof err);
    cr_assert_not_null(cfg, "%s: %s", c->name, err);
    cr_assert_geq(cfg->n_queues, 1);
    cr_assert_not_null(config_handler(cfg, "noop"), "%s", c->name);
    config_free(cfg);
}

ParameterizedTestParameters(config, invalid_file)
{
    size_t n;
    data_case *cases = param_cases("invalid", &n);
    return cr_make_param_array(data_case, cases, n, free_cases);
}

ParameterizedTest(data_case *c, config, invalid_file)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/invalid/%s.err", DATA_DIR, c->name);
    char *want = slurp(path);
    cr_assert(want && *want, "%s: missing or empty .err file", c->name);
    snprintf(path, sizeof path, "%s/invalid/%s.json", DATA_DIR, c->name);
    config_t *cfg = config_load_file(path, NULL, checks, err, sizeof err);
    cr_expect_null(cfg, "%s: accepted", c->name);
    cr_expect_str_eq(err, want, "%s: got \"%s\", want \"%s\"", c->name, err, want);
    config_free(cfg);
    free(want);
}

static config_t *parse(const char *json, char *(*getenv_fn)(const char *), char *err)
{
    return config_parse(json, strlen(json), getenv_fn, checks, err, 512);
}

Test(config, defaults)
{
    char err[512] = "";
    config_t *cfg = config_parse(NULL, 0, NULL, checks, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_str_eq(cfg->listen_host, "0.0.0.0");
    cr_expect_eq(cfg->listen_port, 8080);
    cr_expect_eq(cfg->http_threads, 2);
    cr_expect_eq(cfg->workers, cores > 512 ? 1024 : 2 * cores);
    cr_expect_str_eq(cfg->redis_url, "redis://127.0.0.1:6379/0");
    cr_expect_str_eq(cfg->redis_prefix, "jobd");
    cr_expect_eq(cfg->redis_timeout, 1);
    cr_expect_not(cfg->redis_allow_eviction);
    cr_expect_eq(cfg->heartbeat, 5);
    cr_expect_eq(cfg->lease_expiry, 15);
    cr_expect_eq(cfg->shutdown_timeout, 25);
    cr_expect_eq(cfg->poll_interval, 1);
    cr_expect_eq(cfg->max_body, 1048576);
    cr_expect_eq(cfg->max_batch, 1000);
    cr_expect_eq(cfg->header_timeout, 10);
    cr_expect_eq(cfg->max_connections_per_ip, 256);
    cr_expect_eq(cfg->retention_finished, 86400);
    cr_expect_eq(cfg->max_finished, 100000);
    cr_expect_eq(cfg->dead_max_age, 15552000);
    cr_expect_eq(cfg->dead_max_jobs, 10000);
    cr_expect_eq(cfg->n_tokens, 0);
    cr_expect_not(cfg->metrics_public);
    cr_expect_null(cfg->tls_cert_file, "plain HTTP by default");
    cr_expect_null(cfg->tls_key_file);
    cr_expect_not(cfg->log_json);
    cr_expect_not(cfg->no_http);
    cr_assert_eq(cfg->n_queues, 2);
    cr_expect_str_eq(cfg->queues[0].name, "default");
    cr_expect_str_eq(cfg->queues[1].name, "local");
    config_free(cfg);
}

Test(config, default_text_is_the_default)
{
    char err[512] = "";
    config_t *cfg = parse(config_default_text(), NULL, err);
    cr_assert_not_null(cfg, "%s", err);
    const queue_cfg *q = config_queue(cfg, "default");
    cr_assert_not_null(q);
    cr_assert_eq(q->n_enqueue, 1);
    cr_expect_str_eq(q->enqueue[0].name, "aggregate", "group commit in front of Redis");
    cr_assert_eq(q->n_dequeue, 1);
    cr_expect_str_eq(q->dequeue[0].name, "redis");
    cr_expect(json_is_object(q->dequeue[0].opts) && json_object_size(q->dequeue[0].opts) == 0);
    const queue_cfg *local = config_queue(cfg, "local");
    cr_assert_not_null(local);
    cr_assert_eq(local->n_dequeue, 1);
    cr_expect_str_eq(local->dequeue[0].name, "inline");
    cr_expect_eq(q->max_attempts, 25);
    cr_expect_eq(q->timeout, 60);
    cr_expect_eq(q->concurrency, 0);
    cr_expect_eq(q->backoff.base, 15);
    cr_expect_eq(q->backoff.factor, 1);
    cr_expect_eq(q->backoff.exponent, 4);
    cr_expect_eq(q->backoff.jitter, 10);
    cr_expect_eq(q->backoff.max, 3600);
    cr_expect_not_null(config_queue(cfg, "local"));
    config_free(cfg);
}

Test(config, builtins_present)
{
    static const char *const names[] = {"noop", "sleep", "fail", "echo"};
    char err[512] = "";
    config_t *cfg = config_parse(NULL, 0, NULL, checks, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect_eq(cfg->n_handlers, 4);
    for (size_t i = 0; i < 4; i++) {
        const handler_cfg *h = config_handler(cfg, names[i]);
        cr_assert_not_null(h, "%s", names[i]);
        cr_expect_str_eq(h->kind, "builtin");
        cr_expect_str_eq(json_string_value(json_object_get(h->opts, "kind")), "builtin");
    }
    config_free(cfg);
}

Test(config, every_key_read)
{
    char err[512] = "";
    config_t *cfg = config_load_file(DATA_DIR "/valid/full.json", NULL, checks, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect_str_eq(cfg->listen_host, "127.0.0.1");
    cr_expect_eq(cfg->listen_port, 9090);
    cr_expect_eq(cfg->http_threads, 4);
    cr_expect_eq(cfg->workers, 0);
    cr_expect_str_eq(cfg->redis_url, "redis://10.0.0.5:6380/2");
    cr_expect_str_eq(cfg->redis_prefix, "app:jobs.v1-x");
    cr_expect_eq(cfg->redis_timeout, 0.25);
    cr_expect(cfg->redis_allow_eviction);
    cr_expect_eq(cfg->heartbeat, 0.05);
    cr_expect_eq(cfg->lease_expiry, 0.2);
    cr_expect_eq(cfg->shutdown_timeout, 0);
    cr_expect_eq(cfg->poll_interval, 0.01);
    cr_expect_eq(cfg->max_body, 1024);
    cr_expect_eq(cfg->max_batch, 100000);
    cr_expect_eq(cfg->header_timeout, 0.5);
    cr_expect_eq(cfg->max_connections_per_ip, 0);
    cr_expect_eq(cfg->retention_finished, 60);
    cr_expect_eq(cfg->max_finished, 5);
    cr_expect_eq(cfg->dead_max_age, 120.5);
    cr_expect_eq(cfg->dead_max_jobs, 0);
    cr_assert_eq(cfg->n_tokens, 2);
    cr_expect_str_eq(cfg->tokens[0].secret, "s3cret");
    cr_expect_str_eq(cfg->tokens[1].secret, "other");
    cr_expect_eq(cfg->tokens[0].scopes, SCOPE_ALL, "a plain string token has every scope");
    cr_expect(cfg->log_json);
    cr_expect(cfg->metrics_public);
    cr_expect_str_eq(cfg->tls_cert_file, "/etc/jobd/cert.pem");
    cr_expect_str_eq(cfg->tls_key_file, "/etc/jobd/key.pem");

    const queue_cfg *q = config_queue(cfg, "mail_out-2");
    cr_assert_not_null(q);
    cr_expect_eq(q->max_attempts, 1000);
    cr_expect_eq(q->timeout, 0.5);
    cr_expect_eq(q->concurrency, 3);
    cr_expect_eq(q->backoff.base, 0.01);
    cr_expect_eq(q->backoff.factor, 0);
    cr_expect_eq(q->backoff.exponent, 1);
    cr_expect_eq(q->backoff.jitter, 0);
    cr_expect_eq(q->backoff.max, 0.1);
    cr_assert_eq(q->n_enqueue, 1);
    cr_expect_str_eq(q->enqueue[0].name, "delayed");
    json_t *want_opts = json_pack("{s:f}", "delay", 0.05);
    cr_expect(json_equal(q->enqueue[0].opts, want_opts), "opts keep options without \"name\"");
    json_decref(want_opts);
    cr_assert_eq(q->n_dequeue, 1);
    cr_expect_str_eq(q->dequeue[0].name, "inline");
    cr_expect_eq(json_integer_value(json_object_get(q->extra, "concurrency")), 3,
                 "extra is the whole queue object");

    const handler_cfg *h = config_handler(cfg, "send_email");
    cr_assert_not_null(h);
    cr_expect_str_eq(h->kind, "webhook");
    cr_expect_str_eq(json_string_value(json_object_get(h->opts, "url")),
                     "http://127.0.0.1:3000/jobs/send_email");
    cr_expect_not_null(config_handler(cfg, "noop"), "builtins stay beside defined handlers");
    config_free(cfg);
}

Test(config, defined_builtin_kept)
{
    char err[512] = "";
    config_t *cfg = parse("{\"queues\": {\"q\": {\"dequeue\": [\"inline\"]}},"
                          " \"handlers\": {\"sleep\": {\"kind\": \"command\","
                          " \"argv\": [\"/bin/true\"]}}}",
                          NULL, err);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect_eq(cfg->n_handlers, 4, "sleep is not added twice");
    const handler_cfg *h = config_handler(cfg, "sleep");
    cr_assert_not_null(h);
    cr_expect_str_eq(h->kind, "command");
    cr_expect_str_eq(config_handler(cfg, "echo")->kind, "builtin");
    config_free(cfg);
}

Test(config, lookups)
{
    char err[512] = "";
    config_t *cfg = parse("{\"queues\": {\"b\": {\"dequeue\": [\"inline\"]},"
                          " \"a\": {\"enqueue\": [\"inline\"]}}}",
                          NULL, err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->n_queues, 2);
    cr_expect_str_eq(cfg->queues[0].name, "b", "config order is kept");
    cr_expect_eq(config_queue(cfg, "a"), &cfg->queues[1]);
    cr_expect_null(config_queue(cfg, "c"));
    cr_expect_null(config_queue(cfg, "A"));
    cr_expect_null(config_queue(cfg, NULL));
    cr_expect_null(config_handler(cfg, "nope"));
    cr_expect_null(config_handler(cfg, NULL));
    cr_expect_null(config_queue(NULL, "a"));
    config_free(cfg);
    config_free(NULL);
}

Test(config, queue_name_ok)
{
    char name[QUEUE_NAME_MAX + 2];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    cr_expect_not(name_queue_ok(name), "65 characters");
    name[QUEUE_NAME_MAX] = '\0';
    cr_expect(name_queue_ok(name), "64 characters");
    cr_expect(name_queue_ok("Mail_out-9"));
    cr_expect_not(name_queue_ok(""));
    cr_expect_not(name_queue_ok(NULL));
    cr_expect_not(name_queue_ok("a.b"));
    cr_expect_not(name_queue_ok("a b"));
    cr_expect_not(name_queue_ok("caf\xc3\xa9"));
}

/* Fake environments: getenv_fn has no context argument, so one function each. */
static char *env_lookup(const char *const *pairs, const char *name)
{
    for (size_t i = 0; pairs[i]; i += 2)
        if (strcmp(pairs[i], name) == 0)
            return (char *)pairs[i + 1];
    return NULL;
}

static char *env_all(const char *name)
{
    static const char *const pairs[] = {"JOBD_LISTEN", "[::1]:7001", "JOBD_WORKERS", "7",
                                        "REDIS_URL", "redis://127.0.0.1:6390/3",
                                        "JOBD_API_TOKENS", ",tok-a,,tok-b,",
                                        "JOBD_LOG_FORMAT", "json", NULL};
    return env_lookup(pairs, name);
}

static char *env_empty_tokens(const char *name)
{
    static const char *const pairs[] = {"JOBD_API_TOKENS", ",,", NULL};
    return env_lookup(pairs, name);
}

static const char tokens_json[] = "{\"queues\": {\"q\": {\"dequeue\": [\"inline\"]}},"
                                  " \"auth\": {\"tokens\": [\"from-file\"]}, \"workers\": 3}";

Test(config, env_overrides)
{
    char err[512] = "";
    config_t *cfg = parse(tokens_json, env_all, err);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect_str_eq(cfg->listen_host, "::1");
    cr_expect_eq(cfg->listen_port, 7001);
    cr_expect_eq(cfg->workers, 7);
    cr_expect_str_eq(cfg->redis_url, "redis://127.0.0.1:6390/3");
    cr_assert_eq(cfg->n_tokens, 2, "the env list replaces the file's");
    cr_expect_str_eq(cfg->tokens[0].secret, "tok-a");
    cr_expect_str_eq(cfg->tokens[1].secret, "tok-b");
    cr_expect(cfg->log_json);
    config_free(cfg);
}

Test(config, env_unset_keeps_file)
{
    char err[512] = "";
    config_t *cfg = parse(tokens_json, env_empty_tokens, err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->n_tokens, 1, "an empty JOBD_API_TOKENS must not turn auth off");
    cr_expect_str_eq(cfg->tokens[0].secret, "from-file");
    cr_expect_eq(cfg->workers, 3);
    config_free(cfg);
}

/* ---- scoped tokens and TLS ---- */

static char *env_scoped(const char *name)
{
    static const char *const pairs[] = {"JOBD_TOKEN_APP", "env-secret-1", "JOBD_TOKEN_EMPTY", "",
                                        "JOBD_TOKEN_BLANK", "env secret", NULL};
    return env_lookup(pairs, name);
}

/* Writes text to a new file of the scratch folder; its path into path (512 bytes). */
static void write_scratch(char *path, const char *name, const char *text)
{
    char u[32];
    snprintf(path, 512, "%s/%s-%s", ts_tmpdir(), ts_unique(u), name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

Test(config, scoped_tokens_from_env_and_file)
{
    char file[512], crlf[512], json[2048], err[512] = "";
    write_scratch(file, "token", "file-secret-2\n");
    write_scratch(crlf, "token-crlf", "file-secret-3\r\n");
    snprintf(json, sizeof json,
             "{\"queues\": {\"q\": {\"dequeue\": [\"inline\"]}}, \"auth\": {\"tokens\": ["
             "\"plain-0\", {\"token_env\": \"JOBD_TOKEN_APP\", \"scopes\": [\"submit\", \"read\"]},"
             " {\"token_file\": \"%s\", \"scopes\": [\"admin\"]},"
             " {\"token_file\": \"%s\", \"scopes\": [\"metrics\", \"metrics\"]}]}}",
             file, crlf);
    config_t *cfg = parse(json, env_scoped, err);
    cr_assert_not_null(cfg, "%s", err);
    cr_assert_eq(cfg->n_tokens, 4);
    cr_expect_str_eq(cfg->tokens[0].secret, "plain-0");
    cr_expect_eq(cfg->tokens[0].scopes, SCOPE_ALL);
    cr_expect_str_eq(cfg->tokens[1].secret, "env-secret-1");
    cr_expect_eq(cfg->tokens[1].scopes, SCOPE_SUBMIT | SCOPE_READ);
    cr_expect_str_eq(cfg->tokens[2].secret, "file-secret-2", "one trailing newline trimmed");
    cr_expect_eq(cfg->tokens[2].scopes, SCOPE_ADMIN);
    cr_expect_str_eq(cfg->tokens[3].secret, "file-secret-3", "a trailing CRLF trimmed");
    cr_expect_eq(cfg->tokens[3].scopes, SCOPE_METRICS);
    config_free(cfg);
    cr_expect_str_eq(config_scope_name(SCOPE_ADMIN), "admin");
    cr_expect_null(config_scope_name(SCOPE_ALL), "not one scope");
}

/* Each bad secret is refused with the entry's path; no message quotes it. */
Test(config, bad_token_sources_name_the_path_never_the_secret)
{
    char empty[512], blank[512], twolines[512];
    write_scratch(empty, "empty", "\n");
    write_scratch(blank, "blank", "file secret\n");
    write_scratch(twolines, "two", "file-secret\n\n");
    struct {
        char entry[640];
        char want[640];
    } cases[] = {
        {"{\"token_env\": \"JOBD_TOKEN_EMPTY\", \"scopes\": [\"read\"]}",
         "auth.tokens[1].token_env: the environment variable JOBD_TOKEN_EMPTY is not set or empty"},
        {"{\"token_env\": \"JOBD_TOKEN_BLANK\", \"scopes\": [\"read\"]}",
         "auth.tokens[1].token_env: the environment variable JOBD_TOKEN_BLANK holds a blank or "
         "control character: a bearer token cannot"},
        {"", ""},
        {"", ""},
        {"", ""},
    };
    snprintf(cases[2].entry, sizeof cases[2].entry,
             "{\"token_file\": \"%s\", \"scopes\": [\"read\"]}", empty);
    snprintf(cases[2].want, sizeof cases[2].want,
             "auth.tokens[1].token_file: the file \"%s\" is empty", empty);
    snprintf(cases[3].entry, sizeof cases[3].entry,
             "{\"token_file\": \"%s\", \"scopes\": [\"read\"]}", blank);
    snprintf(cases[3].want, sizeof cases[3].want,
             "auth.tokens[1].token_file: the file \"%s\" holds a blank or control character: a "
             "bearer token cannot", blank);
    snprintf(cases[4].entry, sizeof cases[4].entry,
             "{\"token_file\": \"%s\", \"scopes\": [\"read\"]}", twolines);
    snprintf(cases[4].want, sizeof cases[4].want,
             "auth.tokens[1].token_file: the file \"%s\" holds a blank or control character: a "
             "bearer token cannot", twolines);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[2048], err[512] = "";
        snprintf(json, sizeof json,
                 "{\"queues\": {\"q\": {\"dequeue\": [\"inline\"]}}, \"auth\": {\"tokens\": ["
                 "\"plain-0\", %.1024s]}}", cases[i].entry);
        config_t *cfg = parse(json, env_scoped, err);
        cr_expect_null(cfg, "case %zu accepted", i);
        cr_expect_str_eq(err, cases[i].want, "case %zu", i);
        cr_expect_null(strstr(err, "secret"), "case %zu: the message holds the secret: %s", i, err);
        config_free(cfg);
    }
}

static char *env_tls(const char *name)
{
    static const char *const pairs[] = {"JOBD_TLS_CERT_FILE", "/run/c.pem", "JOBD_TLS_KEY_FILE",
                                        "/run/k.pem", NULL};
    return env_lookup(pairs, name);
}

static char *env_tls_cert_only(const char *name)
{
    return strcmp(name, "JOBD_TLS_CERT_FILE") == 0 ? (char *)"/run/c.pem" : NULL;
}

Test(config, tls_from_env_both_or_neither)
{
    char err[512] = "";
    config_t *cfg = config_parse(NULL, 0, env_tls, checks, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect_str_eq(cfg->tls_cert_file, "/run/c.pem");
    cr_expect_str_eq(cfg->tls_key_file, "/run/k.pem");
    config_free(cfg);
    cfg = config_parse(NULL, 0, env_tls_cert_only, checks, err, sizeof err);
    cr_expect_null(cfg, "a certificate without its key is accepted");
    cr_expect_str_eq(err, "tls: needs both cert_file and key_file (HTTPS), or neither (HTTP)");
    config_free(cfg);
}

#define FAKE_ENV(fn, var, value)                                                                 \
    static char *fn(const char *name) { return strcmp(name, var) == 0 ? (char *)value : NULL; }

FAKE_ENV(env_workers_word, "JOBD_WORKERS", "many")
FAKE_ENV(env_workers_big, "JOBD_WORKERS", "1025")
FAKE_ENV(env_workers_real, "JOBD_WORKERS", "2.5")
FAKE_ENV(env_workers_empty, "JOBD_WORKERS", "")
FAKE_ENV(env_listen_noport, "JOBD_LISTEN", "localhost")
FAKE_ENV(env_listen_port0, "JOBD_LISTEN", "127.0.0.1:0")
FAKE_ENV(env_redis_http, "REDIS_URL", "http://127.0.0.1:6379")
FAKE_ENV(env_log_xml, "JOBD_LOG_FORMAT", "xml")

static const struct {
    char *(*getenv_fn)(const char *);
    const char *err;
} bad_envs[] = {
    {env_workers_word, "JOBD_WORKERS: must be an integer 0..1024"},
    {env_workers_big, "JOBD_WORKERS: must be an integer 0..1024"},
    {env_workers_real, "JOBD_WORKERS: must be an integer 0..1024"},
    {env_workers_empty, "JOBD_WORKERS: must be an integer 0..1024"},
    {env_listen_noport, "JOBD_LISTEN: must be \"host:port\" with a port 1..65535"},
    {env_listen_port0, "JOBD_LISTEN: must be \"host:port\" with a port 1..65535"},
    {env_redis_http, "REDIS_URL: must start with redis://"},
    {env_log_xml, "JOBD_LOG_FORMAT: must be \"text\" or \"json\""},
};

Test(config, env_invalid)
{
    for (size_t i = 0; i < sizeof bad_envs / sizeof *bad_envs; i++) {
        char err[512] = "";
        config_t *cfg = config_parse(NULL, 0, bad_envs[i].getenv_fn, checks, err, sizeof err);
        cr_expect_null(cfg, "case %zu accepted", i);
        cr_expect_str_eq(err, bad_envs[i].err, "case %zu: got \"%s\"", i, err);
        config_free(cfg);
    }
}

Test(config, unreadable_file)
{
    char err[512] = "";
    cr_expect_null(config_load_file(DATA_DIR "/no-such.json", NULL, checks, err, sizeof err));
    cr_expect_str_eq(err, DATA_DIR "/no-such.json: No such file or directory");
    cr_expect_null(config_load_file(DATA_DIR, NULL, checks, err, sizeof err));
    cr_expect_str_eq(err, DATA_DIR ": Is a directory");
}

Test(config, short_error_buffer)
{
    char err[8];
    memset(err, 'x', sizeof err);
    cr_expect_null(config_parse("{\"listn\": 1}", 12, NULL, checks, err, sizeof err));
    cr_expect_str_eq(err, "listn: ", "cut and NUL-terminated");
}

/* A stand-in for the owners' checks: processor "store" is a store, "pass"
 * is not, anything else is refused; handler kind "ok" passes. Config itself
 * knows none of them. */
static int stub_proc(const char *name, const json_t *opts, bool *is_store, char *why,
                     size_t whylen)
{
    *is_store = strcmp(name, "store") == 0;
    if (!*is_store && strcmp(name, "pass") != 0) {
        snprintf(why, whylen, "stub refuses \"%s\"", name);
        return -1;
    }
    if (json_object_size(opts) > 0) {
        snprintf(why, whylen, "takes no option");
        return -1;
    }
    return 0;
}

static int stub_handler(const char *type, const json_t *obj, char *why, size_t whylen)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    if (kind && (strcmp(kind, "ok") == 0 || strcmp(kind, "builtin") == 0))
        return 0;
    snprintf(why, whylen, "stub refuses handler %s", type);
    return -1;
}

static const config_checks stub_checks = {stub_proc, stub_handler};

Test(config, options_are_checked_by_the_given_checks_with_their_paths)
{
    static const struct {
        const char *json, *err; /* err "" = valid */
    } cases[] = {
        {"{\"queues\": {\"q\": {\"enqueue\": [\"pass\"], \"dequeue\": [\"store\"]}}}", ""},
        {"{\"queues\": {\"q\": {\"dequeue\": [\"pass\", \"nope\"]}}}",
         "queues.q.dequeue[1]: stub refuses \"nope\""},
        {"{\"queues\": {\"q\": {\"dequeue\": [{\"name\": \"store\", \"x\": 1}]}}}",
         "queues.q.dequeue[0]: takes no option"},
        {"{\"queues\": {\"q\": {\"dequeue\": [\"pass\"]}}}",
         "queues.q: needs exactly one store processor (inline or redis), found 0"},
        {"{\"queues\": {\"q\": {\"dequeue\": [\"store\"]}},"
         " \"handlers\": {\"t\": {\"kind\": \"ok\"}}}",
         ""},
        {"{\"queues\": {\"q\": {\"dequeue\": [\"store\"]}},"
         " \"handlers\": {\"t\": {\"kind\": \"no\"}}}",
         "handlers.t: stub refuses handler t"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "";
        config_t *cfg =
            config_parse(cases[i].json, strlen(cases[i].json), NULL, &stub_checks, err, sizeof err);
        if (*cases[i].err) {
            cr_expect_null(cfg, "case %zu accepted", i);
            cr_expect_str_eq(err, cases[i].err, "case %zu", i);
        } else {
            cr_assert_not_null(cfg, "case %zu: %s", i, err);
            const queue_cfg *q = &cfg->queues[0];
            for (size_t k = 0; k < q->n_enqueue; k++)
                cr_expect_not(q->enqueue[k].is_store, "case %zu: enqueue[%zu]", i, k);
            cr_expect(q->dequeue[0].is_store, "case %zu: the store says it is one", i);
        }
        config_free(cfg);
    }
}

Test(config, metrics_enabled_defaults_to_true_and_can_be_turned_off)
{
    char err[512] = "";
    config_t *cfg = parse("{\"queues\": {\"q\": {\"dequeue\": [\"inline\"]}}}", NULL, err);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect(cfg->metrics_enabled);
    config_free(cfg);
    cfg = parse("{\"metrics\": {\"enabled\": false}, \"queues\": {\"q\": {\"dequeue\": [\"inline\"]}}}",
                NULL, err);
    cr_assert_not_null(cfg, "%s", err);
    cr_expect(!cfg->metrics_enabled);
    config_free(cfg);
}
