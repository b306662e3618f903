/* exec.h - executors: what performing a job means, by handler kind.
 *
 * The config maps a job type to a handler: {"kind": "builtin"|"webhook"|"command", ...}.
 * A handler kind is a small vtable (one file each: exec_builtin.c,
 * exec_webhook.c, exec_command.c); a compiled-in builtin is a name and a
 * function (exec_builtin.c's table). */
#ifndef JOBD_EXEC_H
#define JOBD_EXEC_H

#include "../server/jobd.h"

typedef enum exec_status {
    EXEC_OK = 0,
    EXEC_RETRY,     /* failed, retry with backoff */
    EXEC_PERMANENT  /* failed, never retry (a webhook's 4xx other than 408/429) */
} exec_status;

/* What a handler gets for one run. All borrowed, valid during the run. */
typedef struct exec_job {
    const job_t *job;
    const char *payload;   /* job_payload(): the JSON body/stdin for the run */
    size_t payload_len;
    double timeout;        /* seconds this run may take (job, handler, queue default) */
    int64_t deadline_ms;   /* mono ms when the run times out */
    const jobd_interrupt *interrupt; /* the shutdown deadline's; NULL = never interrupted */
} exec_job;

typedef struct exec_result {
    exec_status status;
    char error[JOB_ERROR_MAX + 1]; /* "" on success; why it failed otherwise */
    double retry_after;            /* seconds the target asked to wait (Retry-After), < 0 = none */
    bool interrupted;              /* the shutdown deadline cut the run short (error JOBD_INTERRUPTED) */
} exec_result;

typedef struct exec_kind {
    const char *name;
    /* Validates a handler object for job type `type` (the whole object, with
     * "kind"). 0, or -1 with a message naming the key, e.g. `url: missing`. */
    int (*check)(const char *type, const json_t *opts, char *err, size_t errlen);
    /* New handler state from a checked object; NULL + err on failure. */
    void *(*create)(const char *type, const json_t *opts, char *err, size_t errlen);
    /* Performs one run. Thread-safe: called from many workers at once.
     * res starts as {EXEC_OK, "", -1}. */
    void (*run)(void *state, const exec_job *job, exec_result *res);
    /* Frees the state. */
    void (*destroy)(void *state);
    /* The handler's own timeout in seconds from its object, 0 = none. */
    double (*timeout)(void *state);
    /* SIGKILLs every process group it runs now, for a jobd about to exit
     * at once: none may outlive it. Async-safe enough for that moment (a
     * mutex and kill(2)). NULL = the kind starts no processes. */
    void (*kill_all)(void *state);
} exec_kind;

extern const exec_kind exec_builtin_kind;
extern const exec_kind exec_webhook_kind;
extern const exec_kind exec_command_kind;

/* Borrowed kind of that name, or NULL. */
const exec_kind *exec_kind_find(const char *name);

/* Validates one handler entry (looks up its kind and calls its check). */
int exec_check_handler(const char *type, const json_t *opts, char *err, size_t errlen);

/* A new table of handlers built from cfg->handlers; NULL + err on failure. */
exec_table_t *exec_table_new(const config_t *cfg, char *err, size_t errlen);

/* True when a handler exists for the job type. */
bool exec_table_has(const exec_table_t *t, const char *type);

/* Runs job through the handler of its type and fills res. timeout is the
 * queue's default in seconds (used when neither job nor handler sets one);
 * intr (borrowed, may be NULL) ends the run early once fired. */
void exec_table_run(exec_table_t *t, const job_t *job, double queue_timeout,
                    const jobd_interrupt *intr, exec_result *res);

/* SIGKILLs every program the table's handlers run now (jobd exits at once).
 * NULL is fine. */
void exec_table_kill_all(exec_table_t *t);

/* Frees the table and every handler. NULL is fine. */
void exec_table_free(exec_table_t *t);

/* Printf into res->error (cut to JOB_ERROR_MAX) and set status. */
void exec_fail(exec_result *res, exec_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
