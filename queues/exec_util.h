/* exec_util.h - helpers shared by the handler kinds that talk to the outside
 * (webhook, command): strict option checks and failing a run with foreign text
 * (cleaned by util/utf8.h). */
#ifndef JOBD_EXEC_UTIL_H
#define JOBD_EXEC_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "exec.h"

/* Longest timeout a handler option may ask for (30 days), so that converting
 * seconds to milliseconds can never overflow. */
#define EXEC_UTIL_MAX_SECONDS (30.0 * 86400.0)

/* 0 when every key of opts is in the NULL-terminated list allowed; else -1
 * with `unknown key "x"` in err. */
int exec_util_check_keys(const json_t *opts, const char *const *allowed, char *err, size_t errlen);

/* Reads the optional number of seconds opts[key] into *out (def when absent).
 * 0, or -1 with `key: must be a number of seconds > 0` in err. */
int exec_util_seconds(const json_t *opts, const char *key, double def, double *out, char *err,
                      size_t errlen);

/* Fails res with "<prefix>: <text>" (just prefix when text is empty), text
 * made valid UTF-8 without NULs or control characters other than tab and
 * newline (each bad byte becomes '?'), trailing newlines dropped, and cut so that the whole
 * message fits in JOB_ERROR_MAX: keep_end keeps its end (a stderr tail),
 * otherwise its start (an HTTP body). Cuts fall between UTF-8 characters. */
void exec_util_fail(exec_result *res, exec_status status, const char *prefix, const char *text,
                    size_t len, bool keep_end);

/* True once the shutdown deadline fired for this run. */
bool exec_util_interrupted(const exec_job *job);

/* Fails res as a run cut short by the shutdown deadline (JOBD_INTERRUPTED). */
void exec_util_fail_interrupted(exec_result *res);

#endif
