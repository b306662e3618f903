/* config.h - the JSON configuration: load, validate, defaults, env overrides. */
#ifndef JOBD_CONFIG_H
#define JOBD_CONFIG_H

#include "../util/cron.h"
#include "../util/tz.h"
#include "jobd.h"

typedef struct backoff_cfg {
    double base, factor, exponent, jitter, max; /* seconds; the curve of README, Jobs */
} backoff_cfg;

/* A queue's start rate (README, Rate limits): at most limit starts per per
 * seconds, burst of them at once. limit 0 = no rate limit. */
typedef struct rate_cfg {
    int limit;  /* >= 1 when set */
    double per; /* seconds > 0 */
    int burst;  /* >= 1; the config's default is limit */
} rate_cfg;

/* One processor entry: "name" or {"name": ..., options...}. The options stay
 * opaque here: the module that owns them checks them (config_checks). */
typedef struct proc_cfg {
    char *name;    /* owned */
    json_t *opts;  /* owned reference: the options object without "name" (empty object when none) */
    bool is_store; /* the entry is the queue's store (said by config_checks.proc) */
} proc_cfg;

typedef struct queue_cfg {
    char name[QUEUE_NAME_MAX + 1];
    proc_cfg *enqueue;  /* owned array */
    size_t n_enqueue;
    proc_cfg *dequeue;  /* owned array */
    size_t n_dequeue;
    int max_attempts;   /* default 25 */
    double timeout;     /* seconds, default 60 */
    int concurrency;    /* 0 = all workers */
    backoff_cfg backoff;
    rate_cfg rate;      /* limit 0 = off */
    int max_running;    /* jobs running at once across all processes; 0 = off */
    long max_depth;     /* waiting jobs (scheduled, enqueued, retrying) at most; 0 = off */
    json_t *extra;      /* owned reference: the whole queue object as given, for later keys */
} queue_cfg;

typedef struct handler_cfg {
    char type[JOB_TYPE_MAX + 1]; /* the key under "handlers" */
    char *kind;                  /* owned: "builtin", "webhook", "command" */
    json_t *opts;                /* owned reference: the handler object as given */
} handler_cfg;

/* One periodic schedule (README, Periodic jobs): "periodic": {name: {...}}. */
typedef struct periodic_cfg {
    char name[QUEUE_NAME_MAX + 1]; /* named like a queue */
    char *cron;                    /* owned: the expression as given; NULL with every */
    cron_expr expr;                /* parsed cron */
    long every;                    /* seconds >= 1; 0 with cron */
    tz_zone *zone;                 /* owned: cron's time zone, UTC by default */
    char queue[QUEUE_NAME_MAX + 1];
    char type[JOB_TYPE_MAX + 1];
    json_t *args;                  /* owned reference, json null when absent */
    int max_attempts;              /* 0 = the queue's default */
    bool catch_up;                 /* enqueue the latest tick missed while no process ran */
} periodic_cfg;

/* The checks of what config_parse keeps opaque, given by the modules that own
 * those options (queues/: pipeline_config_checks, through the registries of
 * processor kinds and handler kinds), so that config depends on none of them.
 * Each message becomes `path: why` with the entry's path. */
typedef struct config_checks {
    /* A processor entry: its name and options (without "name"). 0 with
     * *is_store set, or -1 with why, e.g. `unknown processor "agregate"`. */
    int (*proc)(const char *name, const json_t *opts, bool *is_store, char *why, size_t whylen);
    /* A handler object of job type `type` (with "kind"). 0, or -1 with why. */
    int (*handler)(const char *type, const json_t *obj, char *why, size_t whylen);
} config_checks;

/* What a bearer token may do (README, Auth): bits of a mask. A route needs
 * one of them (http_route.scope); a plain string token has them all. */
typedef enum auth_scope {
    SCOPE_SUBMIT = 1u << 0,  /* POST jobs */
    SCOPE_READ = 1u << 1,    /* GET jobs, queues, dead set, periodic */
    SCOPE_ADMIN = 1u << 2,   /* cancel, pause/resume, dead retry/delete, periodic trigger */
    SCOPE_METRICS = 1u << 3, /* GET /metrics (unless metrics.public) */
    SCOPE_ALL = (1u << 4) - 1
} auth_scope;

typedef struct auth_token {
    char *secret;    /* owned; never logged, never in an error message */
    unsigned scopes; /* auth_scope mask, not 0 */
} auth_token;

struct config {
    char listen_host[256];
    int listen_port;
    int http_threads;          /* default 2 */
    int workers;               /* default 2 x cores; 0 = API-only node */
    bool no_http;              /* --no-http */
    char *redis_url;           /* owned */
    char *redis_prefix;        /* owned */
    double redis_timeout;      /* seconds, default 1 */
    bool redis_allow_eviction; /* --allow-eviction: run on a maxmemory-policy other than noeviction */
    double heartbeat;          /* seconds, default 5 */
    double lease_expiry;       /* seconds, default 15 */
    double shutdown_timeout;   /* seconds, default 25 */
    double poll_interval;      /* seconds between moves of due jobs, default 1 */
    size_t max_body;           /* bytes, default 1 MiB */
    size_t max_batch;          /* default 1000 */
    double header_timeout;     /* seconds a request head may take, default 10; 0 = none */
    int max_connections_per_ip;/* open connections per client address, default 256; 0 = no limit */
    double retention_finished; /* seconds, default 24 h */
    long max_finished;         /* per queue, default 100000 */
    double dead_max_age;       /* seconds, default 180 days */
    long dead_max_jobs;        /* per queue, default 10000 */
    queue_cfg *queues;         /* owned array, config order */
    size_t n_queues;
    handler_cfg *handlers;     /* owned array; always holds the builtins */
    size_t n_handlers;
    auth_token *tokens;        /* owned array; empty = auth off */
    size_t n_tokens;
    bool metrics_public;       /* metrics.public: GET /metrics needs no token */
    char *tls_cert_file;       /* owned; tls.cert_file, NULL = plain HTTP */
    char *tls_key_file;        /* owned; tls.key_file, set exactly when tls_cert_file is */
    bool log_json;             /* log.format "json" */
    bool metrics_enabled;      /* metrics.enabled, default true: GET /metrics and its counters */
    periodic_cfg *periodic;    /* owned array, config order */
    size_t n_periodic;
};

/* Parses and validates a config from JSON text (NULL text = the built-in
 * default), each processor and handler entry through checks (borrowed, not
 * NULL; jobd passes pipeline_config_checks), then applies the environment
 * overrides of README, Configuration (JOBD_LISTEN, JOBD_WORKERS, REDIS_URL,
 * JOBD_API_TOKENS, JOBD_LOG_FORMAT, JOBD_TLS_*), read through getenv_fn (getenv
 * in jobd; tests pass their own, NULL = no overrides), which also reads the
 * tokens' token_env variables; token_file files are read here too. Returns a new config, or NULL
 * with a message in err naming the field path and why, e.g.
 * `queues.default.enqueue[0]: unknown processor "agregate"`. */
config_t *config_parse(const char *text, size_t len, char *(*getenv_fn)(const char *),
                       const config_checks *checks, char *err, size_t errlen);

/* Reads the file at path and parses it as config_parse does. NULL + err on error. */
config_t *config_load_file(const char *path, char *(*getenv_fn)(const char *),
                           const config_checks *checks, char *err, size_t errlen);

/* The built-in default config as JSON text (static; do not free). */
const char *config_default_text(void);

/* Borrowed queue config of that name, or NULL. */
const queue_cfg *config_queue(const config_t *cfg, const char *name);

/* Borrowed handler config of that job type, or NULL. */
const handler_cfg *config_handler(const config_t *cfg, const char *type);

/* The config name of one scope bit ("submit", ...), or NULL for another value. */
const char *config_scope_name(unsigned scope);
/* Borrowed periodic schedule of that name, or NULL. */
const periodic_cfg *config_periodic(const config_t *cfg, const char *name);

/* Frees cfg and everything it owns. NULL is fine. */
void config_free(config_t *cfg);

#endif
