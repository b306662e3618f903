/* config_periodic.c - the "periodic" section: one schedule per key, each
 * with exactly one of "cron" (with an optional "timezone") and "every", and
 * the queue and job type it enqueues into. Messages follow config.c's
 * `path: why` form, e.g. `periodic.nightly.cron: field 2 (hour): 24 is out
 * of range 0-23`. */
#include "config_periodic.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/name.h"

__attribute__((format(printf, 4, 0))) static int cp_vfail(char *err, size_t errlen,
                                                          const char *path, const char *fmt,
                                                          va_list ap)
{
    char why[384];
    vsnprintf(why, sizeof why, fmt, ap);
    snprintf(err, errlen, "%s: %s", path, why);
    return -1;
}

/* `path: why`. Returns -1. */
__attribute__((format(printf, 4, 5))) static int cp_fail(char *err, size_t errlen,
                                                         const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cp_vfail(err, errlen, path, fmt, ap);
    va_end(ap);
    return -1;
}

/* `path.key: why`. Returns -1. */
__attribute__((format(printf, 5, 6))) static int cp_failk(char *err, size_t errlen,
                                                          const char *path, const char *key,
                                                          const char *fmt, ...)
{
    char sub[512];
    va_list ap;
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    va_start(ap, fmt);
    cp_vfail(err, errlen, sub, fmt, ap);
    va_end(ap);
    return -1;
}

/* A string key of obj into out (outlen bytes with the NUL), or -1 with err. */
static int cp_string(const json_t *obj, const char *key, char *out, size_t outlen,
                     const char *path, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    size_t len = json_string_length(v);
    if (!v)
        return cp_fail(err, errlen, path, "needs \"%s\"", key);
    if (!json_is_string(v) || len == 0 || len >= outlen)
        return cp_failk(err, errlen, path, key, "must be a string of 1..%zu characters", outlen - 1);
    memcpy(out, json_string_value(v), len + 1);
    return 0;
}

static int cp_cron(periodic_cfg *p, const json_t *v, const char *path, char *err, size_t errlen)
{
    char why[256];
    if (!json_is_string(v))
        return cp_failk(err, errlen, path, "cron", "must be a string");
    if (cron_parse(json_string_value(v), &p->expr, why, sizeof why) < 0)
        return cp_failk(err, errlen, path, "cron", "%s", why);
    if (cron_next_wall(&p->expr, 0) < 0)
        return cp_failk(err, errlen, path, "cron", "never matches a date");
    p->cron = strdup(json_string_value(v));
    return p->cron ? 0 : cp_fail(err, errlen, path, "out of memory");
}

static int cp_zone(periodic_cfg *p, const json_t *v, const char *path, char *err, size_t errlen)
{
    char why[384];
    if (!json_is_string(v))
        return cp_failk(err, errlen, path, "timezone", "must be a string");
    if (!p->cron)
        return cp_failk(err, errlen, path, "timezone", "applies to \"cron\" only");
    tz_free(p->zone);
    p->zone = tz_load(json_string_value(v), NULL, why, sizeof why);
    return p->zone ? 0 : cp_failk(err, errlen, path, "timezone", "%s", why);
}

/* Every key of a schedule but cron, every and timezone (cp_schedule). */
static int cp_other(periodic_cfg *p, const char *key, const json_t *v, const char *path,
                    char *err, size_t errlen)
{
    if (strcmp(key, "args") == 0) {
        json_decref(p->args);
        p->args = json_incref((json_t *)v);
    } else if (strcmp(key, "max_attempts") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
            return cp_failk(err, errlen, path, "max_attempts", "must be an integer 1..1000");
        p->max_attempts = (int)json_integer_value(v);
    } else if (strcmp(key, "catch_up") == 0) {
        if (!json_is_boolean(v))
            return cp_failk(err, errlen, path, "catch_up", "must be true or false");
        p->catch_up = json_is_true(v);
    } else if (strcmp(key, "queue") != 0 && strcmp(key, "type") != 0) {
        return cp_failk(err, errlen, path, key, "unknown key");
    }
    return 0;
}

static int cp_schedule(periodic_cfg *p, const json_t *obj, const char *path, char *err,
                       size_t errlen)
{
    const char *key;
    json_t *v;
    const json_t *cron = json_object_get(obj, "cron"), *every = json_object_get(obj, "every");
    if (!json_is_object(obj))
        return cp_fail(err, errlen, path, "must be an object");
    if (!cron == !every)
        return cp_fail(err, errlen, path, "needs exactly one of \"cron\" and \"every\"");
    if (cron && cp_cron(p, cron, path, err, errlen) < 0)
        return -1;
    if (every && (!json_is_integer(every) || json_integer_value(every) < 1 ||
                  json_integer_value(every) > 366L * 86400))
        return cp_failk(err, errlen, path, "every",
                        "must be an integer number of seconds 1..31622400");
    p->every = every ? (long)json_integer_value(every) : 0;
    json_object_foreach((json_t *)obj, key, v) {
        int rc = 0;
        if (strcmp(key, "timezone") == 0)
            rc = cp_zone(p, v, path, err, errlen);
        else if (strcmp(key, "cron") != 0 && strcmp(key, "every") != 0)
            rc = cp_other(p, key, v, path, err, errlen);
        if (rc < 0)
            return -1;
    }
    if (cp_string(obj, "queue", p->queue, sizeof p->queue, path, err, errlen) < 0 ||
        cp_string(obj, "type", p->type, sizeof p->type, path, err, errlen) < 0)
        return -1;
    if (!p->zone && !(p->zone = tz_load("UTC", NULL, err, errlen)))
        return -1;
    if (!p->args)
        p->args = json_null();
    return 0;
}

int config_periodic_read(config_t *cfg, json_t *v, const char *path, char *err, size_t errlen)
{
    const char *name;
    json_t *obj;
    if (!json_is_object(v))
        return cp_fail(err, errlen, path, "must be an object");
    config_periodic_free(cfg);
    cfg->periodic = calloc(json_object_size(v) + 1, sizeof *cfg->periodic);
    if (!cfg->periodic)
        return cp_fail(err, errlen, path, "out of memory");
    json_object_foreach(v, name, obj) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, name);
        if (!name_queue_ok(name))
            return cp_fail(err, errlen, sub, "schedule name must match [A-Za-z0-9_-]{1,64}");
        periodic_cfg *p = &cfg->periodic[cfg->n_periodic++];
        snprintf(p->name, sizeof p->name, "%s", name);
        if (cp_schedule(p, obj, sub, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int config_periodic_check(const config_t *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_periodic; i++) {
        const periodic_cfg *p = &cfg->periodic[i];
        char path[128];
        snprintf(path, sizeof path, "periodic.%s", p->name);
        if (!config_queue(cfg, p->queue))
            return cp_failk(err, errlen, path, "queue", "unknown queue \"%s\"", p->queue);
        if (!config_handler(cfg, p->type))
            return cp_failk(err, errlen, path, "type", "no handler for job type \"%s\"", p->type);
    }
    return 0;
}

const periodic_cfg *config_periodic(const config_t *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_periodic; i++)
        if (strcmp(cfg->periodic[i].name, name) == 0)
            return &cfg->periodic[i];
    return NULL;
}

void config_periodic_free(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_periodic; i++) {
        free(cfg->periodic[i].cron);
        tz_free(cfg->periodic[i].zone);
        json_decref(cfg->periodic[i].args);
    }
    free(cfg->periodic);
    cfg->periodic = NULL;
    cfg->n_periodic = 0;
}
