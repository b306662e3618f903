/* trace.c - W3C Trace Context (level 1) traceparent/tracestate values and
 * request ids. */
#include "trace.h"

#include <stdlib.h>
#include <string.h>

#include "name.h"

/* Offsets in a traceparent: "vv-" trace "-" parent "-" flags. */
#define TRACE_AT_ID 3
#define TRACE_AT_PARENT (TRACE_AT_ID + TRACE_ID_LEN + 1)
#define TRACE_AT_FLAGS (TRACE_AT_PARENT + TRACE_PARENT_ID_LEN + 1)
#define TRACE_FLAG_SAMPLED 0x01

static const char trace_hex[] = "0123456789abcdef";

static int trace_hex_value(char c)
{
    const char *p = c ? strchr(trace_hex, c) : NULL;
    return p ? (int)(p - trace_hex) : -1;
}

/* True when s[0..n) is lowercase hex and, when nonzero is set, not all '0'. */
static bool trace_hex_ok(const char *s, size_t n, bool nonzero)
{
    bool zero = true;
    for (size_t i = 0; i < n; i++) {
        if (trace_hex_value(s[i]) < 0)
            return false;
        zero = zero && s[i] == '0';
    }
    return !(nonzero && zero);
}

int trace_parent_parse(const char *value, char out[TRACE_PARENT_LEN + 1])
{
    out[0] = '\0';
    if (!value)
        return -1;
    size_t len = strnlen(value, TRACE_PARENT_LEN + 1);
    if (len < TRACE_PARENT_LEN || !trace_hex_ok(value, 2, false) || value[2] != '-' ||
        !trace_hex_ok(value + TRACE_AT_ID, TRACE_ID_LEN, true) ||
        value[TRACE_AT_PARENT - 1] != '-' ||
        !trace_hex_ok(value + TRACE_AT_PARENT, TRACE_PARENT_ID_LEN, true) ||
        value[TRACE_AT_FLAGS - 1] != '-' || !trace_hex_ok(value + TRACE_AT_FLAGS, 2, false))
        return -1;
    bool v00 = value[0] == '0' && value[1] == '0';
    if (value[0] == 'f' && value[1] == 'f')
        return -1;
    /* 00 has nothing after the flags; a later version may add fields, each after a '-' */
    if (len > TRACE_PARENT_LEN && (v00 || value[TRACE_PARENT_LEN] != '-'))
        return -1;
    memcpy(out, value, TRACE_PARENT_LEN);
    out[0] = out[1] = '0';
    if (!v00) {
        /* the other flags of a later version mean what that version says */
        int flags = trace_hex_value(value[TRACE_AT_FLAGS + 1]) & TRACE_FLAG_SAMPLED;
        out[TRACE_AT_FLAGS] = '0';
        out[TRACE_AT_FLAGS + 1] = trace_hex[flags];
    }
    out[TRACE_PARENT_LEN] = '\0';
    return 0;
}

bool trace_state_ok(const char *value)
{
    if (!value || !value[0])
        return false;
    size_t i = 0;
    for (; value[i] && i <= TRACE_STATE_MAX; i++)
        if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e)
            return false;
    return i <= TRACE_STATE_MAX;
}

void trace_parent_child(const char *parent, char out[TRACE_PARENT_LEN + 1])
{
    unsigned char rnd[TRACE_PARENT_ID_LEN / 2];
    bool zero = true;
    while (zero) {
        arc4random_buf(rnd, sizeof rnd);
        for (size_t i = 0; i < sizeof rnd; i++)
            zero = zero && rnd[i] == 0;
    }
    memcpy(out, parent, TRACE_PARENT_LEN);
    for (size_t i = 0; i < sizeof rnd; i++) {
        out[TRACE_AT_PARENT + 2 * i] = trace_hex[rnd[i] >> 4];
        out[TRACE_AT_PARENT + 2 * i + 1] = trace_hex[rnd[i] & 15];
    }
    out[TRACE_PARENT_LEN] = '\0';
}

void trace_id_of(const char *parent, char out[TRACE_ID_LEN + 1])
{
    memcpy(out, parent + TRACE_AT_ID, TRACE_ID_LEN);
    out[TRACE_ID_LEN] = '\0';
}

bool trace_request_id_ok(const char *s)
{
    return name_chars_ok(s, TRACE_REQUEST_ID_EXTRA, TRACE_REQUEST_ID_MAX);
}
