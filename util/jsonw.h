/* jsonw.h - JSON text written straight into a growing buffer, without a
 * jansson tree: byte for byte what json_dumps(..., JSON_COMPACT) gives, for
 * texts built on every submission, where jansson's tree and dump were most of
 * the cost. */
#ifndef JOBD_JSONW_H
#define JOBD_JSONW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The buffer: start from jsonw w = {0}; end with jsonw_finish. After a
 * failed allocation oom is set and later writes do nothing. */
typedef struct jsonw {
    char *p;
    size_t len, cap;
    bool oom;
} jsonw;

/* Appends a string literal as it is. */
#define JSONW_LIT(w, lit) jsonw_raw((w), (lit), sizeof(lit) - 1)

/* Makes room for extra more bytes and the final NUL; false after OOM. */
bool jsonw_grow(jsonw *w, size_t extra);

/* Appends n bytes as they are (already JSON). Inline: the writer's most
 * frequent call, mostly a short copy into room that is already there. */
static inline void jsonw_raw(jsonw *w, const char *s, size_t n)
{
    if (w->len + n >= w->cap && !jsonw_grow(w, n)) /* >=: room for the final NUL */
        return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

/* Appends s[0..n) (valid UTF-8) as a JSON string, escaped as jansson does
 * by default: quote, backslash and control characters only. */
void jsonw_str(jsonw *w, const char *s, size_t n);

/* jsonw_str of a NUL-terminated string. */
void jsonw_cstr(jsonw *w, const char *s);

/* Appends an integer. */
void jsonw_int(jsonw *w, long long v);

/* Appends a time as an RFC 3339 string, or null for 0 (= none). */
void jsonw_time(jsonw *w, int64_t ms);

/* Appends a real as jansson writes it (its shortest round-trip form). */
void jsonw_real(jsonw *w, double v);

/* Appends any jansson value, as json_dumps(v, JSON_COMPACT) writes it. */
void jsonw_json(jsonw *w, const json_t *v);

/* Ends the text: returns it as new memory (NUL-terminated; caller frees with
 * free()) and its length in *len when len is not NULL; NULL after OOM (the
 * buffer is freed then). */
char *jsonw_finish(jsonw *w, size_t *len);

#endif
