/* exec_util.c - option checks, failing with foreign text and the shutdown
 * interrupt, shared by the handler kinds. */
#include "exec_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../util/utf8.h"

int exec_util_check_keys(const json_t *opts, const char *const *allowed, char *err, size_t errlen)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)opts, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known) {
            snprintf(err, errlen, "unknown key \"%s\"", key);
            return -1;
        }
    }
    return 0;
}

int exec_util_seconds(const json_t *opts, const char *key, double def, double *out, char *err,
                      size_t errlen)
{
    const json_t *v = json_object_get(opts, key);
    if (!v) {
        *out = def;
        return 0;
    }
    double s = json_is_number(v) ? json_number_value(v) : -1;
    if (!(s > 0 && s <= EXEC_UTIL_MAX_SECONDS)) {
        snprintf(err, errlen, "%s: must be a number of seconds > 0 and <= %.0f", key,
                 EXEC_UTIL_MAX_SECONDS);
        return -1;
    }
    *out = s;
    return 0;
}

void exec_util_fail(exec_result *res, exec_status status, const char *prefix, const char *text,
                    size_t len, bool keep_end)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    size_t plen = strlen(prefix);
    size_t room = plen + 2 < JOB_ERROR_MAX ? JOB_ERROR_MAX - plen - 2 : 0;
    if (keep_end && len > room) {
        text += len - room;
        len = room;
        size_t skip = utf8_resync(text, len); /* a character whose start was cut off */
        text += skip;
        len -= skip;
    }
    char clean[JOB_ERROR_MAX + 1];
    utf8_clean(clean, room + 1, text, len, UTF8_PRINTABLE);
    exec_fail(res, status, "%s%s%s", prefix, clean[0] ? ": " : "", clean);
}

bool exec_util_interrupted(const exec_job *job)
{
    return job->interrupt && atomic_load(&job->interrupt->fired);
}

void exec_util_fail_interrupted(exec_result *res)
{
    exec_fail(res, EXEC_RETRY, "%s", JOBD_INTERRUPTED);
    res->interrupted = true;
}
