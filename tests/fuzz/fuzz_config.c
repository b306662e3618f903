/* fuzz_config.c - the configuration: environment overrides and config text,
 * parsed from memory (config_parse) and from a file (config_load_file). Input:
 * "NAME=value" lines, a line "--", then the config text (no "--" line: all of
 * it is config text; empty config text: the built-in default). Both ways must
 * agree; an accepted config holds the documented ranges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#define FUZZ_ENV_MAX 16

typedef struct fuzz_env {
    size_t n;
    char *name[FUZZ_ENV_MAX], *value[FUZZ_ENV_MAX]; /* borrowed from the input copy */
} fuzz_env;

/* config_parse asks through a getenv-shaped function, which takes no context:
 * the input's variables can only be reached from here. One input at a time. */
static fuzz_env fuzz_env_now;

static char *fuzz_getenv(const char *name)
{
    for (size_t i = 0; i < fuzz_env_now.n; i++)
        if (strcmp(fuzz_env_now.name[i], name) == 0)
            return fuzz_env_now.value[i];
    return NULL;
}

/* Splits the env part (modified in place) into fuzz_env_now. */
static void fuzz_env_parse(char *env)
{
    fuzz_env_now.n = 0;
    for (char *line = env; line && *line && fuzz_env_now.n < FUZZ_ENV_MAX;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            fuzz_env_now.name[fuzz_env_now.n] = line;
            fuzz_env_now.value[fuzz_env_now.n++] = eq + 1;
        }
        line = next;
    }
}

static void fuzz_check_config(const config_t *cfg)
{
    FUZZ_CHECK(cfg->n_queues >= 1, "no queue");
    for (size_t i = 0; i < cfg->n_queues; i++) {
        const queue_cfg *q = &cfg->queues[i];
        FUZZ_CHECK(name_queue_ok(q->name), "queue name \"%s\"", q->name);
        FUZZ_CHECK(config_queue(cfg, q->name) == q, "queue %s not found by name", q->name);
        FUZZ_CHECK(q->max_attempts >= 1 && q->max_attempts <= 1000, "max_attempts %d",
                   q->max_attempts);
        FUZZ_CHECK(q->timeout > 0, "queue timeout %g", q->timeout);
        FUZZ_CHECK(q->rate.limit == 0 ||
                       (q->rate.limit >= 1 && q->rate.per > 0 && q->rate.burst >= 1),
                   "rate %d/%g burst %d", q->rate.limit, q->rate.per, q->rate.burst);
        FUZZ_CHECK(q->max_running >= 0 && q->max_depth >= 0, "max_running %d max_depth %ld",
                   q->max_running, q->max_depth);
        int stores = 0;
        for (size_t j = 0; j < q->n_enqueue + q->n_dequeue; j++) {
            const proc_cfg *p = j < q->n_enqueue ? &q->enqueue[j] : &q->dequeue[j - q->n_enqueue];
            const proc_kind *k = pipeline_kind(p->name);
            FUZZ_CHECK(k, "unknown processor %s accepted", p->name);
            stores += k->is_store;
        }
        FUZZ_CHECK(stores == 1, "queue %s has %d stores", q->name, stores);
    }
    FUZZ_CHECK(cfg->listen_port >= 0 && cfg->listen_port <= 65535, "port %d", cfg->listen_port);
    FUZZ_CHECK(cfg->http_threads >= 1 && cfg->http_threads <= 64, "http_threads %d",
               cfg->http_threads);
    FUZZ_CHECK(cfg->workers >= 0 && cfg->workers <= 1024, "workers %d", cfg->workers);
    FUZZ_CHECK(cfg->heartbeat > 0 && cfg->lease_expiry > cfg->heartbeat, "heartbeat %g lease %g",
               cfg->heartbeat, cfg->lease_expiry);
    FUZZ_CHECK(cfg->redis_timeout > 0 && cfg->poll_interval > 0, "redis.timeout/poll_interval");
    FUZZ_CHECK(cfg->max_body >= 1024 && cfg->max_body <= 64u << 20, "max_body %zu",
               cfg->max_body);
    FUZZ_CHECK(cfg->max_batch >= 1 && cfg->max_batch <= 100000, "max_batch %zu", cfg->max_batch);
    FUZZ_CHECK(cfg->redis_url && strncmp(cfg->redis_url, "redis://", 8) == 0, "redis.url");
    static const char *const builtins[] = {"noop", "sleep", "fail", "echo"};
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        FUZZ_CHECK(config_handler(cfg, builtins[i]), "handler %s missing", builtins[i]);
    for (size_t i = 0; i < cfg->n_tokens; i++)
        FUZZ_CHECK(cfg->tokens[i].secret[0] && cfg->tokens[i].scopes, "empty token %zu", i);
}

/* The input's config text in a file of this process, for config_load_file. */
static void fuzz_config_write(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f, "cannot write %s", path);
    FUZZ_CHECK(fwrite(text, 1, len, f) == len && fclose(f) == 0, "cannot write %s", path);
}

int fuzz_config(const uint8_t *data, size_t size)
{
    char *copy = fuzz_text(data, size);
    char *text = copy;
    size_t len = size;
    char *sep = strncmp(copy, "--\n", 3) == 0 ? copy : strstr(copy, "\n--\n");
    fuzz_env_now.n = 0;
    if (sep) {
        char *body = sep + (sep == copy ? 3 : 4);
        *sep = '\0';
        fuzz_env_parse(copy);
        len = size - (size_t)(body - copy);
        text = body;
    }
    char err[512] = "", ferr[512] = "";
    config_t *cfg =
        config_parse(len ? text : NULL, len, fuzz_getenv, &pipeline_config_checks, err, sizeof err);
    if (cfg)
        fuzz_check_config(cfg);
    if (len) {
        char path[64];
        snprintf(path, sizeof path, "%s/jobd-fuzz-config.%d",
                 getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 32 ? getenv("TMPDIR") : "/tmp",
                 (int)getpid());
        fuzz_config_write(path, text, len);
        config_t *fcfg =
            config_load_file(path, fuzz_getenv, &pipeline_config_checks, ferr, sizeof ferr);
        unlink(path);
        FUZZ_CHECK(!cfg == !fcfg, "text %s, file %s", cfg ? "accepted" : err,
                   fcfg ? "accepted" : ferr);
        FUZZ_CHECK(cfg || strcmp(err, ferr) == 0, "errors differ: \"%s\" / \"%s\"", err, ferr);
        config_free(fcfg);
    }
    if (!cfg)
        FUZZ_CHECK(err[0], "refused without a message");
    config_free(cfg);
    free(copy);
    return 0;
}

FUZZ_ENTRY(fuzz_config)
