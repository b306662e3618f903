/* utf8.c - well-formed UTF-8 (RFC 3629): checking, cleaning, cutting. */
#include "utf8.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_seq(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xE0)
        lo = 0xA0; /* overlong */
    else if (s[0] == 0xED)
        hi = 0x9F; /* surrogates */
    else if (s[0] == 0xF0)
        lo = 0x90; /* overlong */
    else if (s[0] == 0xF4)
        hi = 0x8F; /* above U+10FFFF */
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

size_t utf8_clean(char *out, size_t outlen, const char *in, size_t len, unsigned flags)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(in + i, len - i);
        bool ok = n > 0;
        if (ok && (flags & UTF8_PRINTABLE))
            ok = (s[i] >= 0x20 || s[i] == '\t' || s[i] == '\n') && s[i] != 0x7F;
        size_t take = ok ? n : 1;
        if (o + take >= outlen)
            break;
        if (ok)
            memcpy(out + o, in + i, n);
        else
            out[o] = '?';
        o += take;
        i += take;
    }
    out[o] = '\0';
    return o;
}

size_t utf8_cut(const char *s, size_t len)
{
    size_t lead = len; /* one past the last byte that is no continuation */
    while (lead > 0 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == 0)
        return len;
    unsigned char c = (unsigned char)s[lead - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len - (lead - 1) < need ? lead - 1 : len;
}

size_t utf8_resync(const char *s, size_t len)
{
    size_t i = 0;
    while (i < 3 && i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

json_t *utf8_json_string(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    if (v || !s)
        return v;
    size_t n = strlen(s);
    char *clean = malloc(n + 1);
    if (!clean)
        return NULL;
    utf8_clean(clean, n + 1, s, n, 0);
    v = json_string(clean);
    free(clean);
    return v;
}
