/* exec_builtin.c - handlers compiled into jobd. A builtin is a name and a
 * function: add a line to the table below to add one. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/log.h"
#include "exec.h"
#include "exec_util.h"

typedef void (*exec_builtin_fn)(const exec_job *job, exec_result *res);

typedef struct exec_builtin {
    const char *name;
    exec_builtin_fn fn;
} exec_builtin;

static int64_t builtin_mono_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* Sleeps until mono ns `until`, or until the shutdown interrupt fires.
 * True when interrupted. */
static bool builtin_sleep_until(const exec_job *ej, int64_t until)
{
    int fd = ej->interrupt ? ej->interrupt->fd : -1;
    for (;;) {
        if (exec_util_interrupted(ej))
            return true;
        int64_t left = until - builtin_mono_ns();
        if (left <= 0)
            return false;
        struct timespec rel = {left / 1000000000LL, left % 1000000000LL};
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ppoll(&p, 1, &rel, NULL);
        } else {
            nanosleep(&rel, NULL);
        }
    }
}

/* Sleeps args.ms milliseconds, or fails with a timeout at the run's deadline. */
static void builtin_sleep(const exec_job *ej, exec_result *res)
{
    json_t *ms = json_object_get(ej->job->args, "ms");
    double want = json_is_number(ms) ? json_number_value(ms) : 0;
    if (want < 0)
        want = 0;
    /* In ns: whole ms from jobd_mono_ms() could wake up to 1 ms early. */
    int64_t until = builtin_mono_ns() + (int64_t)(want * 1e6);
    int64_t deadline = ej->deadline_ms * 1000000LL;
    bool timed_out = until > deadline;
    if (timed_out)
        until = deadline;
    if (builtin_sleep_until(ej, until))
        exec_util_fail_interrupted(res);
    else if (timed_out)
        exec_fail(res, EXEC_RETRY, "timed out after %gs", ej->timeout);
}

static void builtin_noop(const exec_job *ej, exec_result *res)
{
    (void)ej;
    (void)res;
}

static void builtin_fail(const exec_job *ej, exec_result *res)
{
    const char *msg = json_string_value(json_object_get(ej->job->args, "message"));
    exec_fail(res, EXEC_RETRY, "%s", msg ? msg : "fail: this job always fails");
}

/* Logs the job's args: a visible trace for trying jobd out. */
static void builtin_echo(const exec_job *ej, exec_result *res)
{
    (void)res;
    char *text = json_dumps(ej->job->args, JSON_COMPACT | JSON_ENCODE_ANY);
    log_event(LOG_INFO, "job.echo", ej->job, "%s", text ? text : "");
    free(text);
}

static const exec_builtin exec_builtins[] = {
    {"noop", builtin_noop},
    {"sleep", builtin_sleep},
    {"fail", builtin_fail},
    {"echo", builtin_echo},
};

typedef struct builtin_state {
    exec_builtin_fn fn;
    double timeout;
} builtin_state;

static const exec_builtin *builtin_find(const char *name)
{
    for (size_t i = 0; i < sizeof exec_builtins / sizeof exec_builtins[0]; i++)
        if (strcmp(exec_builtins[i].name, name) == 0)
            return &exec_builtins[i];
    return NULL;
}

static const char *const builtin_keys[] = {"kind", "timeout", NULL};

static int builtin_check(const char *type, const json_t *opts, char *err, size_t errlen)
{
    double ignored;
    if (!builtin_find(type)) {
        snprintf(err, errlen, "kind: no builtin named \"%s\" (noop, sleep, fail, echo)", type);
        return -1;
    }
    if (exec_util_check_keys(opts, builtin_keys, err, errlen) != 0 ||
        exec_util_seconds(opts, "timeout", 0, &ignored, err, errlen) != 0)
        return -1;
    return 0;
}

static void *builtin_create(const char *type, const json_t *opts, char *err, size_t errlen)
{
    const exec_builtin *b = builtin_find(type);
    builtin_state *st = b ? malloc(sizeof *st) : NULL;
    if (!st) {
        snprintf(err, errlen, "no builtin named \"%s\"", type);
        return NULL;
    }
    st->fn = b->fn;
    exec_util_seconds(opts, "timeout", 0, &st->timeout, err, errlen);
    return st;
}

static void builtin_run(void *state, const exec_job *job, exec_result *res)
{
    ((builtin_state *)state)->fn(job, res);
}

static double builtin_timeout(void *state)
{
    return ((builtin_state *)state)->timeout;
}

const exec_kind exec_builtin_kind = {
    .name = "builtin",
    .check = builtin_check,
    .create = builtin_create,
    .run = builtin_run,
    .destroy = free,
    .timeout = builtin_timeout,
};
