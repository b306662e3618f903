/* jsonw.c - compact JSON text without a jansson tree (tests/test_job_text.c
 * holds it to json_dumps' bytes). */
#include "jsonw.h"

#include <stdlib.h>

#include "rfc3339.h"

bool jsonw_grow(jsonw *w, size_t extra)
{
    if (w->oom)
        return false;
    if (w->len + extra < w->cap) /* strictly less: room for the final NUL */
        return true;
    size_t cap = w->cap ? w->cap : 512;
    while (cap <= w->len + extra)
        cap *= 2;
    char *p = realloc(w->p, cap);
    if (!p) {
        w->oom = true;
        return false;
    }
    w->p = p;
    w->cap = cap;
    return true;
}

void jsonw_str(jsonw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    JSONW_LIT(w, "\"");
    size_t run = 0; /* bytes before i that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jsonw_raw(w, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        jsonw_raw(w, esc, len);
    }
    jsonw_raw(w, s + run, n - run);
    JSONW_LIT(w, "\"");
}

void jsonw_cstr(jsonw *w, const char *s)
{
    jsonw_str(w, s, strlen(s));
}

void jsonw_int(jsonw *w, long long v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    jsonw_raw(w, p, (size_t)(buf + sizeof buf - p));
}

void jsonw_time(jsonw *w, int64_t ms)
{
    char buf[RFC3339_BUF];
    if (ms == 0) {
        JSONW_LIT(w, "null");
        return;
    }
    rfc3339_format(ms, buf);
    JSONW_LIT(w, "\"");
    jsonw_raw(w, buf, strlen(buf));
    JSONW_LIT(w, "\"");
}

/* Reals are left to jansson: its shortest round-trip form is what counts. */
static void jsonw_real_value(jsonw *w, const json_t *v)
{
    char buf[64];
    size_t n = json_dumpb(v, buf, sizeof buf, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0 || n > sizeof buf)
        w->oom = true;
    else
        jsonw_raw(w, buf, n);
}

void jsonw_real(jsonw *w, double v)
{
    json_t *real = json_real(v);
    if (real)
        jsonw_real_value(w, real);
    else
        w->oom = true;
    json_decref(real);
}

static void jsonw_object(jsonw *w, const json_t *v)
{
    const char *key;
    size_t key_len;
    json_t *child;
    bool first = true;
    JSONW_LIT(w, "{");
    json_object_keylen_foreach((json_t *)v, key, key_len, child) {
        if (!first)
            JSONW_LIT(w, ",");
        first = false;
        jsonw_str(w, key, key_len);
        JSONW_LIT(w, ":");
        jsonw_json(w, child);
    }
    JSONW_LIT(w, "}");
}

static void jsonw_array(jsonw *w, const json_t *v)
{
    size_t i;
    json_t *child;
    JSONW_LIT(w, "[");
    json_array_foreach(v, i, child) {
        if (i > 0)
            JSONW_LIT(w, ",");
        jsonw_json(w, child);
    }
    JSONW_LIT(w, "]");
}

/* Nesting is bounded by whoever built v (the job intake checks args' depth). */
void jsonw_json(jsonw *w, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: jsonw_object(w, v); break;
    case JSON_ARRAY: jsonw_array(w, v); break;
    case JSON_STRING: jsonw_str(w, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: jsonw_int(w, (long long)json_integer_value(v)); break;
    case JSON_REAL: jsonw_real_value(w, v); break;
    case JSON_TRUE: JSONW_LIT(w, "true"); break;
    case JSON_FALSE: JSONW_LIT(w, "false"); break;
    case JSON_NULL: JSONW_LIT(w, "null"); break;
    }
}

char *jsonw_finish(jsonw *w, size_t *len)
{
    if (!jsonw_grow(w, 0)) {
        free(w->p);
        w->p = NULL;
        return NULL;
    }
    w->p[w->len] = '\0';
    if (len)
        *len = w->len;
    return w->p;
}
