/* exec_util.c - option checks, text cleaning and the shutdown interrupt,
 * shared by the handler kinds. */
#include "exec_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when it is invalid
 * (bad lead byte, missing continuation, overlong form, surrogate, > U+10FFFF). */
static size_t exec_util_utf8_seq(const unsigned char *s, size_t len)
{
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        if (s[0] == 0xE0)
            lo = 0xA0;
        if (s[0] == 0xED)
            hi = 0x9F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        if (s[0] == 0xF0)
            lo = 0x90;
        if (s[0] == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

size_t exec_util_clean_text(char *out, size_t outlen, const char *in, size_t len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = exec_util_utf8_seq(s + i, len - i);
        bool ok = n > 0 && (s[i] >= 0x20 || s[i] == '\t' || s[i] == '\n') && s[i] != 0x7F;
        size_t take = ok ? n : 1;
        if (o + take >= outlen)
            break;
        if (ok)
            memcpy(out + o, s + i, n);
        else
            out[o] = '?';
        o += take;
        i += take;
    }
    out[o] = '\0';
    return o;
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
        /* skip the rest of a character whose start was cut off */
        for (int i = 0; i < 3 && len > 0 && ((unsigned char)*text & 0xC0) == 0x80; i++) {
            text++;
            len--;
        }
    }
    char clean[JOB_ERROR_MAX + 1];
    exec_util_clean_text(clean, room + 1, text, len);
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
