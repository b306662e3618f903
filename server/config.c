/* config.c - the JSON configuration: one schema table per object, read by a
 * single walker, so every key gets the same type, range and unknown-key
 * checks and the same `path: why` error messages. Processor and handler
 * options stay opaque JSON here: the caller's config_checks judge them, so
 * config depends on no processor or executor. */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/file.h"
#include "../util/name.h"
#include "config_auth.h"
#include "config_periodic.h"

#define PATH_LEN 512
#define FILE_MAX (16L << 20) /* a config file is a few KiB; refuse runaway input */
#define NOMAX INT_MAX        /* upper bound of fields with only a lower bound */

typedef struct pctx {
    char *err;
    size_t errlen;
    const config_checks *checks; /* borrowed */
    char *(*getenv_fn)(const char *); /* NULL = no environment */
} pctx;

typedef enum field_type { F_INT, F_LONG, F_SIZE, F_NUM, F_BOOL, F_STR, F_OBJ, F_FN } field_type;

typedef struct field field;

/* Reads a key that needs more than a typed range check. base is the struct
 * the field's table describes (config_t or queue_cfg). */
typedef int (*field_fn)(pctx *c, json_t *v, void *base, const char *path);

struct field {
    const char *key;
    field_type type;
    size_t off;                /* into base; F_OBJ: of the nested struct (0 = same base) */
    double min, max;           /* numbers: inclusive range */
    bool gt;                   /* numbers: min itself is excluded (> min) */
    double def;                /* numbers and F_BOOL: default */
    const char *sdef;          /* F_STR, F_FN: default as text (NULL = none) */
    bool (*ok)(const char *s); /* F_STR: what a valid value looks like... */
    const char *why;           /* ...and the message when it does not */
    const field *sub;          /* F_OBJ: its table */
    field_fn fn;               /* F_FN */
};

static int read_object(pctx *c, json_t *obj, const field *tbl, void *base, const char *path);
static int read_listen(pctx *c, json_t *v, void *base, const char *path);
static int read_queues(pctx *c, json_t *v, void *base, const char *path);
static int read_handlers(pctx *c, json_t *v, void *base, const char *path);
static int read_tokens(pctx *c, json_t *v, void *base, const char *path);
static int read_log_format(pctx *c, json_t *v, void *base, const char *path);
static int read_periodic(pctx *c, json_t *v, void *base, const char *path);
static int read_enqueue(pctx *c, json_t *v, void *base, const char *path);
static int read_dequeue(pctx *c, json_t *v, void *base, const char *path);
static int read_rate(pctx *c, json_t *v, void *base, const char *path);
static bool redis_url_ok(const char *s);
static bool redis_prefix_ok(const char *s);
static bool path_ok(const char *s);

#define CFG(m) offsetof(config_t, m)
#define QCFG(m) offsetof(queue_cfg, m)
#define BCFG(m) offsetof(backoff_cfg, m)
#define RCFG(m) offsetof(rate_cfg, m)
/* A number in lo..hi; a number >= 0; a number > 0; a nested object; a custom reader; the end. */
#define RANGE(k, t, o, lo, hi, d) {.key = k, .type = t, .off = o, .min = lo, .max = hi, .def = d}
#define NONNEG(k, o, d) {.key = k, .type = F_NUM, .off = o, .max = NOMAX, .def = d}
#define POSITIVE(k, o, d) {.key = k, .type = F_NUM, .off = o, .max = NOMAX, .gt = true, .def = d}
/* A duration Redis takes in whole milliseconds (a TTL, a deadline, a period):
 * below 1 ms it would round to 0, which Redis reads as "none". */
#define DURATION(k, o, d) {.key = k, .type = F_NUM, .off = o, .min = 0.001, .max = NOMAX, .def = d}
#define OBJECT(k, o, tbl) {.key = k, .type = F_OBJ, .off = o, .sub = tbl}
#define CUSTOM(k, f) {.key = k, .type = F_FN, .fn = f}
#define END {.key = NULL}

static const field redis_fields[] = {
    {.key = "url", .type = F_STR, .off = CFG(redis_url), .sdef = "redis://127.0.0.1:6379/0",
     .ok = redis_url_ok, .why = "must start with redis://"},
    {.key = "prefix", .type = F_STR, .off = CFG(redis_prefix), .sdef = "jobd",
     .ok = redis_prefix_ok, .why = "must match [A-Za-z0-9_:.-]{1,64}"},
    DURATION("timeout", CFG(redis_timeout), 1),
    {.key = "allow_eviction", .type = F_BOOL, .off = CFG(redis_allow_eviction)},
    END};

static const field limits_fields[] = {
    RANGE("max_body", F_SIZE, CFG(max_body), 1024, 64 << 20, 1 << 20),
    RANGE("max_batch", F_SIZE, CFG(max_batch), 1, 100000, 1000),
    RANGE("header_timeout", F_NUM, CFG(header_timeout), 0, 3600, 10),
    RANGE("max_connections_per_ip", F_INT, CFG(max_connections_per_ip), 0, 4096, 256),
    END};

static const field retention_fields[] = {
    NONNEG("finished", CFG(retention_finished), 86400),
    RANGE("max_finished", F_LONG, CFG(max_finished), 0, NOMAX, 100000),
    END};

static const field dead_fields[] = {
    NONNEG("max_age", CFG(dead_max_age), 180 * 86400),
    RANGE("max_jobs", F_LONG, CFG(dead_max_jobs), 0, NOMAX, 10000),
    END};

static const field auth_fields[] = {CUSTOM("tokens", read_tokens), END};

static const field metrics_fields[] = {
    {.key = "enabled", .type = F_BOOL, .off = CFG(metrics_enabled), .def = 1},
    {.key = "public", .type = F_BOOL, .off = CFG(metrics_public)},
    END};

static const field tls_fields[] = {
    {.key = "cert_file", .type = F_STR, .off = CFG(tls_cert_file), .ok = path_ok,
     .why = "must be a file path"},
    {.key = "key_file", .type = F_STR, .off = CFG(tls_key_file), .ok = path_ok,
     .why = "must be a file path"},
    END};

static const field log_fields[] = {CUSTOM("format", read_log_format), END};

/* The config sections live in config_t itself, hence offset 0. workers'
 * default here is for one core; config_parse replaces it by 2 x cores. */
static const field top_fields[] = {
    {.key = "listen", .type = F_FN, .sdef = "0.0.0.0:8080", .fn = read_listen},
    RANGE("http_threads", F_INT, CFG(http_threads), 1, 64, 2),
    RANGE("workers", F_INT, CFG(workers), 0, 1024, 2),
    OBJECT("redis", 0, redis_fields),
    DURATION("heartbeat", CFG(heartbeat), 5),
    DURATION("lease_expiry", CFG(lease_expiry), 15),
    NONNEG("shutdown_timeout", CFG(shutdown_timeout), 25),
    DURATION("poll_interval", CFG(poll_interval), 1),
    OBJECT("limits", 0, limits_fields),
    OBJECT("retention", 0, retention_fields),
    OBJECT("dead", 0, dead_fields),
    CUSTOM("queues", read_queues),
    CUSTOM("handlers", read_handlers),
    OBJECT("auth", 0, auth_fields),
    OBJECT("metrics", 0, metrics_fields),
    OBJECT("tls", 0, tls_fields),
    OBJECT("log", 0, log_fields),
    CUSTOM("periodic", read_periodic),
    END};

static const field backoff_fields[] = {
    NONNEG("base", BCFG(base), 15),
    NONNEG("factor", BCFG(factor), 1),
    NONNEG("exponent", BCFG(exponent), 4),
    NONNEG("jitter", BCFG(jitter), 10),
    NONNEG("max", BCFG(max), 3600),
    END};

/* limit and burst default to 0 here: read_rate requires limit and makes
 * burst default to it. */
static const field rate_fields[] = {
    RANGE("limit", F_INT, RCFG(limit), 1, NOMAX, 0),
    POSITIVE("per", RCFG(per), 1),
    RANGE("burst", F_INT, RCFG(burst), 1, NOMAX, 0),
    END};

static const field queue_fields[] = {
    CUSTOM("enqueue", read_enqueue),
    CUSTOM("dequeue", read_dequeue),
    RANGE("max_attempts", F_INT, QCFG(max_attempts), 1, 1000, 25),
    POSITIVE("timeout", QCFG(timeout), 60),
    RANGE("concurrency", F_INT, QCFG(concurrency), 0, NOMAX, 0),
    OBJECT("backoff", QCFG(backoff), backoff_fields),
    CUSTOM("rate", read_rate),
    RANGE("max_running", F_INT, QCFG(max_running), 1, NOMAX, 0),
    RANGE("max_depth", F_LONG, QCFG(max_depth), 1, NOMAX, 0),
    END};

typedef enum env_form { ENV_TEXT, ENV_JSON, ENV_LIST } env_form;

/* Env overrides, each read like the config key it replaces, so one rule
 * (and one message) holds for both. */
static const struct env_override {
    const char *var;
    const char *key; /* dotted path into top_fields */
    env_form form;   /* JSON: "3" is a number; LIST: comma-separated strings */
} env_overrides[] = {
    {"JOBD_LISTEN", "listen", ENV_TEXT},
    {"JOBD_WORKERS", "workers", ENV_JSON},
    {"REDIS_URL", "redis.url", ENV_TEXT},
    {"JOBD_API_TOKENS", "auth.tokens", ENV_LIST},
    {"JOBD_LOG_FORMAT", "log.format", ENV_TEXT},
    {"JOBD_TLS_CERT_FILE", "tls.cert_file", ENV_TEXT},
    {"JOBD_TLS_KEY_FILE", "tls.key_file", ENV_TEXT},
};

static const char *const builtin_handlers[] = {"noop", "sleep", "fail", "echo"};

static const char default_text[] =
    "{\n"
    "  \"listen\": \"0.0.0.0:8080\",\n"
    "  \"queues\": {\n"
    "    \"default\": {\"enqueue\": [\"aggregate\"], \"dequeue\": [\"redis\"]},\n"
    "    \"local\": {\"dequeue\": [\"inline\"]}\n"
    "  }\n"
    "}\n";

__attribute__((format(printf, 3, 4))) static int fail(pctx *c, const char *path, const char *fmt,
                                                      ...)
{
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", *path ? path : "config", why);
    return -1;
}

static void path_key(char *out, const char *parent, const char *key)
{
    snprintf(out, PATH_LEN, "%s%s%s", parent, *parent ? "." : "", key);
}

static void path_index(char *out, const char *parent, size_t i)
{
    snprintf(out, PATH_LEN, "%s[%zu]", parent, i);
}

/* ASCII only: isalnum() would follow the locale. */
static bool redis_url_ok(const char *s)
{
    return strncmp(s, "redis://", 8) == 0;
}

static bool redis_prefix_ok(const char *s)
{
    return name_chars_ok(s, "_:.-", 64);
}

static bool path_ok(const char *s)
{
    return s[0] != '\0';
}

static int fail_range(pctx *c, const field *f, const char *path)
{
    const char *what = f->type == F_NUM ? "a number" : "an integer";
    if (f->max == NOMAX)
        return fail(c, path, "must be %s %s %.15g", what, f->gt ? ">" : ">=", f->min);
    return fail(c, path, "must be %s %.15g..%.15g", what, f->min, f->max);
}

static void store_number(const field *f, void *base, double d)
{
    char *p = (char *)base + f->off;
    switch (f->type) {
    case F_INT: *(int *)p = (int)d; break;
    case F_LONG: *(long *)p = (long)d; break;
    case F_SIZE: *(size_t *)p = (size_t)d; break;
    case F_NUM: *(double *)p = d; break;
    case F_BOOL: *(bool *)p = d != 0; break;
    default: break;
    }
}

static int read_number(pctx *c, const field *f, json_t *v, void *base, const char *path)
{
    double d = json_number_value(v);
    bool ok = f->type == F_NUM ? json_is_number(v) : json_is_integer(v);
    ok = ok && (f->gt ? d > f->min : d >= f->min) && d <= f->max;
    if (!ok)
        return fail_range(c, f, path);
    store_number(f, base, d);
    return 0;
}

static int set_string(pctx *c, char **slot, const char *s, const char *path)
{
    char *dup = strdup(s);
    if (!dup)
        return fail(c, path, "out of memory");
    free(*slot);
    *slot = dup;
    return 0;
}

static int read_string(pctx *c, const field *f, json_t *v, void *base, const char *path)
{
    const char *s = json_string_value(v);
    if (!s)
        return fail(c, path, "must be a string");
    if (f->ok && !f->ok(s))
        return fail(c, path, "%s", f->why);
    return set_string(c, (char **)((char *)base + f->off), s, path);
}

static int read_field(pctx *c, const field *f, json_t *v, void *base, const char *path)
{
    switch (f->type) {
    case F_STR: return read_string(c, f, v, base, path);
    case F_OBJ: return read_object(c, v, f->sub, (char *)base + f->off, path);
    case F_FN: return f->fn(c, v, base, path);
    case F_BOOL:
        if (!json_is_boolean(v))
            return fail(c, path, "must be true or false");
        store_number(f, base, json_is_true(v));
        return 0;
    default: return read_number(c, f, v, base, path);
    }
}

static const field *field_lookup(const field *tbl, const char *key, size_t keylen)
{
    for (const field *f = tbl; f->key; f++)
        if (strlen(f->key) == keylen && strncmp(f->key, key, keylen) == 0)
            return f;
    return NULL;
}

static int read_object(pctx *c, json_t *obj, const field *tbl, void *base, const char *path)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        return fail(c, path, "must be an object");
    json_object_foreach(obj, key, v) {
        char sub[PATH_LEN];
        const field *f = field_lookup(tbl, key, strlen(key));
        path_key(sub, path, key);
        if (!f)
            return fail(c, sub, "unknown key");
        if (read_field(c, f, v, base, sub) < 0)
            return -1;
    }
    return 0;
}

/* Fills every field of tbl (and its nested tables) with its default. */
static int apply_defaults(pctx *c, const field *tbl, void *base)
{
    for (const field *f = tbl; f->key; f++) {
        int rc = 0;
        if (f->type == F_OBJ) {
            rc = apply_defaults(c, f->sub, (char *)base + f->off);
        } else if (f->type == F_STR && f->sdef) {
            rc = set_string(c, (char **)((char *)base + f->off), f->sdef, f->key);
        } else if (f->type == F_FN && f->sdef) {
            json_t *v = json_string(f->sdef);
            rc = v ? f->fn(c, v, base, f->key) : fail(c, f->key, "out of memory");
            json_decref(v);
        } else if (f->type != F_FN) {
            store_number(f, base, f->def);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* "host:port", "[v6]:port"; the port is what follows the last colon. */
static int read_listen(pctx *c, json_t *v, void *base, const char *path)
{
    config_t *cfg = base;
    const char *s = json_string_value(v);
    const char *colon = s ? strrchr(s, ':') : NULL;
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    size_t hostlen = colon ? (size_t)(colon - s) : 0;
    if (hostlen >= 2 && s[0] == '[' && s[hostlen - 1] == ']') {
        s++;
        hostlen -= 2;
    }
    if (!colon || colon[1] < '0' || colon[1] > '9' || *end || port < 1 || port > 65535 ||
        hostlen == 0 || hostlen >= sizeof cfg->listen_host)
        return fail(c, path, "must be \"host:port\" with a port 1..65535");
    memcpy(cfg->listen_host, s, hostlen);
    cfg->listen_host[hostlen] = '\0';
    cfg->listen_port = (int)port;
    return 0;
}

static int read_log_format(pctx *c, json_t *v, void *base, const char *path)
{
    const char *s = json_string_value(v);
    if (!s || (strcmp(s, "text") != 0 && strcmp(s, "json") != 0))
        return fail(c, path, "must be \"text\" or \"json\"");
    ((config_t *)base)->log_json = strcmp(s, "json") == 0;
    return 0;
}

/* The schedules have a file of their own (config_periodic.c). */
static int read_periodic(pctx *c, json_t *v, void *base, const char *path)
{
    return config_periodic_read(base, v, path, c->err, c->errlen);
}

/* Replaces the token list (the env override comes after the file's). */
static int read_tokens(pctx *c, json_t *v, void *base, const char *path)
{
    return config_auth_tokens(base, v, path, c->getenv_fn, c->err, c->errlen);
}

/* One processor entry into pc (left freeable on error). */
static int read_proc(pctx *c, json_t *e, proc_cfg *pc, const char *path)
{
    char why[256] = "";
    const char *name = json_string_value(json_is_object(e) ? json_object_get(e, "name") : e);
    if (!json_is_string(e) && !json_is_object(e))
        return fail(c, path, "must be a processor name or an object with \"name\"");
    if (!name)
        return fail(c, path, "needs \"name\": a string");
    pc->opts = json_is_object(e) ? json_copy(e) : json_object();
    if (!pc->opts || set_string(c, &pc->name, name, path) < 0)
        return fail(c, path, "out of memory");
    json_object_del(pc->opts, "name");
    if (c->checks->proc(name, pc->opts, &pc->is_store, why, sizeof why) < 0)
        return fail(c, path, "%s", why);
    return 0;
}

static int read_procs(pctx *c, json_t *v, proc_cfg **list, size_t *n, const char *path)
{
    size_t i;
    json_t *e;
    if (!json_is_array(v))
        return fail(c, path, "must be an array");
    *list = calloc(json_array_size(v) + 1, sizeof **list);
    if (!*list)
        return fail(c, path, "out of memory");
    json_array_foreach(v, i, e) {
        char sub[PATH_LEN];
        path_index(sub, path, i);
        *n = i + 1; /* counted before filling, so config_free releases a half-read entry */
        if (read_proc(c, e, &(*list)[i], sub) < 0)
            return -1;
    }
    return 0;
}

static int read_enqueue(pctx *c, json_t *v, void *base, const char *path)
{
    queue_cfg *q = base;
    return read_procs(c, v, &q->enqueue, &q->n_enqueue, path);
}

static int read_dequeue(pctx *c, json_t *v, void *base, const char *path)
{
    queue_cfg *q = base;
    return read_procs(c, v, &q->dequeue, &q->n_dequeue, path);
}

/* "rate": {"limit": L, "per": S, "burst": B}: limit required, burst = limit
 * unless given. */
static int read_rate(pctx *c, json_t *v, void *base, const char *path)
{
    rate_cfg *r = &((queue_cfg *)base)->rate;
    char sub[PATH_LEN];
    if (apply_defaults(c, rate_fields, r) < 0 || read_object(c, v, rate_fields, r, path) < 0)
        return -1;
    path_key(sub, path, "limit");
    if (r->limit == 0)
        return fail(c, sub, "required: an integer >= 1");
    if (r->burst == 0)
        r->burst = r->limit;
    return 0;
}

static int count_stores(const proc_cfg *list, size_t n)
{
    int stores = 0;
    for (size_t i = 0; i < n; i++)
        stores += list[i].is_store;
    return stores;
}

static int read_queue(pctx *c, config_t *cfg, const char *name, json_t *obj, const char *path)
{
    queue_cfg *q = &cfg->queues[cfg->n_queues];
    int stores;
    if (!name_queue_ok(name))
        return fail(c, path, "queue name must match [A-Za-z0-9_-]{1,64}");
    cfg->n_queues++;
    snprintf(q->name, sizeof q->name, "%s", name);
    q->extra = json_incref(obj);
    if (apply_defaults(c, queue_fields, q) < 0 || read_object(c, obj, queue_fields, q, path) < 0)
        return -1;
    stores = count_stores(q->enqueue, q->n_enqueue) + count_stores(q->dequeue, q->n_dequeue);
    if (stores != 1)
        return fail(c, path, "needs exactly one store processor (inline or redis), found %d",
                    stores);
    return 0;
}

static int read_queues(pctx *c, json_t *v, void *base, const char *path)
{
    config_t *cfg = base;
    const char *name;
    json_t *q;
    if (!json_is_object(v))
        return fail(c, path, "must be an object");
    cfg->queues = calloc(json_object_size(v) + 1, sizeof *cfg->queues);
    if (!cfg->queues)
        return fail(c, path, "out of memory");
    json_object_foreach(v, name, q) {
        char sub[PATH_LEN];
        path_key(sub, path, name);
        if (read_queue(c, cfg, name, q, sub) < 0)
            return -1;
    }
    return 0;
}

static int add_handler(pctx *c, config_t *cfg, const char *type, json_t *obj, const char *path)
{
    char why[256] = "";
    handler_cfg *h;
    size_t len = strlen(type);
    if (!name_type_ok(type))
        return fail(c, path, "job type must be 1..%d characters", JOB_TYPE_MAX);
    if (!json_is_object(obj))
        return fail(c, path, "must be an object");
    /* The handler check also refuses a "kind" no executor knows. */
    if (c->checks->handler(type, obj, why, sizeof why) < 0)
        return fail(c, path, "%s", why);
    h = realloc(cfg->handlers, (cfg->n_handlers + 1) * sizeof *h);
    if (!h)
        return fail(c, path, "out of memory");
    cfg->handlers = h;
    h = &cfg->handlers[cfg->n_handlers++];
    memset(h, 0, sizeof *h);
    memcpy(h->type, type, len + 1);
    h->opts = json_incref(obj);
    return set_string(c, &h->kind, json_string_value(json_object_get(obj, "kind")), path);
}

static int read_handlers(pctx *c, json_t *v, void *base, const char *path)
{
    config_t *cfg = base;
    const char *type;
    json_t *h;
    if (!json_is_object(v))
        return fail(c, path, "must be an object");
    json_object_foreach(v, type, h) {
        char sub[PATH_LEN];
        path_key(sub, path, type);
        if (add_handler(c, cfg, type, h, sub) < 0)
            return -1;
    }
    return 0;
}

/* The builtins are always there unless the config defines the type itself. */
static int add_builtins(pctx *c, config_t *cfg)
{
    json_t *obj = json_pack("{s:s}", "kind", "builtin");
    int rc = obj ? 0 : fail(c, "handlers", "out of memory");
    for (size_t i = 0; rc == 0 && i < sizeof builtin_handlers / sizeof *builtin_handlers; i++) {
        char path[PATH_LEN];
        path_key(path, "handlers", builtin_handlers[i]);
        if (!config_handler(cfg, builtin_handlers[i]))
            rc = add_handler(c, cfg, builtin_handlers[i], obj, path);
    }
    json_decref(obj);
    return rc;
}

/* The field at a dotted path ("redis.url") and the offset of its struct. */
static const field *field_find(const char *dotted, size_t *base_off)
{
    const field *tbl = top_fields;
    *base_off = 0;
    for (;;) {
        size_t len = strcspn(dotted, ".");
        const field *f = field_lookup(tbl, dotted, len);
        if (!f || !dotted[len])
            return f;
        *base_off += f->off;
        tbl = f->sub;
        dotted += len + 1;
    }
}

/* The env text as a JSON value shaped like the config key (new reference). */
static json_t *env_value(env_form form, const char *text)
{
    json_t *v = NULL;
    if (form == ENV_JSON)
        v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (form != ENV_LIST)
        return v ? v : json_string_nocheck(text);
    v = json_array();
    for (const char *p = text; v && *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0)
            json_array_append_new(v, json_stringn_nocheck(p, len));
        p += len + (p[len] == ',');
    }
    return v;
}

static int apply_env(pctx *c, config_t *cfg, char *(*getenv_fn)(const char *))
{
    for (size_t i = 0; getenv_fn && i < sizeof env_overrides / sizeof *env_overrides; i++) {
        const struct env_override *e = &env_overrides[i];
        const char *text = getenv_fn(e->var);
        size_t off;
        const field *f = field_find(e->key, &off);
        json_t *v;
        int rc;
        if (!text)
            continue;
        v = env_value(e->form, text);
        if (!v)
            return fail(c, e->var, "out of memory");
        /* An empty token list would silently turn auth off: treat it as unset. */
        rc = e->form == ENV_LIST && json_array_size(v) == 0
                 ? 0
                 : read_field(c, f, v, (char *)cfg + off, e->var);
        json_decref(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int check_whole(pctx *c, const config_t *cfg)
{
    if (cfg->n_queues == 0)
        return fail(c, "queues", "needs at least one queue");
    if (cfg->lease_expiry <= cfg->heartbeat)
        return fail(c, "lease_expiry", "must be greater than heartbeat (%.15g)", cfg->heartbeat);
    if (!cfg->tls_cert_file != !cfg->tls_key_file)
        return fail(c, "tls", "needs both cert_file and key_file (HTTPS), or neither (HTTP)");
    return 0;
}

static int default_workers(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    return cores > 512 ? 1024 : (int)(2 * cores);
}

/* Defaults, then the file, then the env, then the checks across keys. */
static int fill(pctx *c, config_t *cfg, json_t *root, char *(*getenv_fn)(const char *))
{
    if (apply_defaults(c, top_fields, cfg) < 0)
        return -1;
    cfg->workers = default_workers();
    if (read_object(c, root, top_fields, cfg, "") < 0 || apply_env(c, cfg, getenv_fn) < 0 ||
        check_whole(c, cfg) < 0 || add_builtins(c, cfg) < 0)
        return -1;
    /* After the builtins: a schedule's type may be one of them. */
    return config_periodic_check(cfg, c->err, c->errlen);
}

config_t *config_parse(const char *text, size_t len, char *(*getenv_fn)(const char *),
                       const config_checks *checks, char *err, size_t errlen)
{
    pctx c = {err, errlen, checks, getenv_fn};
    json_error_t jerr;
    json_t *root;
    config_t *cfg;
    if (!text) {
        text = default_text;
        len = sizeof default_text - 1;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        fail(&c, "config", "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        json_decref(root);
        fail(&c, "config", "out of memory");
        return NULL;
    }
    int rc = fill(&c, cfg, root, getenv_fn);
    json_decref(root);
    if (rc < 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

config_t *config_load_file(const char *path, char *(*getenv_fn)(const char *),
                           const config_checks *checks, char *err, size_t errlen)
{
    pctx c = {err, errlen, checks, getenv_fn};
    size_t len;
    const char *why = "";
    char *text = file_read_all(path, FILE_MAX, &len, &why);
    if (!text)
        fail(&c, path, "%s", why);
    config_t *cfg = text ? config_parse(text, len, getenv_fn, checks, err, errlen) : NULL;
    free(text);
    return cfg;
}

const char *config_default_text(void)
{
    return default_text;
}

const queue_cfg *config_queue(const config_t *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_queues; i++)
        if (strcmp(cfg->queues[i].name, name) == 0)
            return &cfg->queues[i];
    return NULL;
}

const handler_cfg *config_handler(const config_t *cfg, const char *type)
{
    for (size_t i = 0; cfg && type && i < cfg->n_handlers; i++)
        if (strcmp(cfg->handlers[i].type, type) == 0)
            return &cfg->handlers[i];
    return NULL;
}

static void free_procs(proc_cfg *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
        json_decref(list[i].opts);
    }
    free(list);
}

void config_free(config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_queues; i++) {
        free_procs(cfg->queues[i].enqueue, cfg->queues[i].n_enqueue);
        free_procs(cfg->queues[i].dequeue, cfg->queues[i].n_dequeue);
        json_decref(cfg->queues[i].extra);
    }
    free(cfg->queues);
    for (size_t i = 0; i < cfg->n_handlers; i++) {
        free(cfg->handlers[i].kind);
        json_decref(cfg->handlers[i].opts);
    }
    free(cfg->handlers);
    config_auth_free(cfg);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    config_periodic_free(cfg);
    free(cfg->redis_url);
    free(cfg->redis_prefix);
    free(cfg);
}
