/* utf8.h - checking, cleaning and cutting UTF-8 (RFC 3629), the one place
 * that knows its byte patterns. jansson refuses strings that are not valid
 * UTF-8, so foreign text (a program's stderr, an HTTP body, a message cut at
 * a byte limit) passes through here before it reaches a JSON view. */
#ifndef JOBD_UTF8_H
#define JOBD_UTF8_H

#include <jansson.h>
#include <stddef.h>

/* utf8_clean flag: also replace control characters other than tab and
 * newline, and DEL, so that the text can be shown as it is. */
#define UTF8_PRINTABLE 1u

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..len), len > 0, or
 * 0 when there is none (bad lead byte, missing or bad continuation, overlong
 * form, surrogate, above U+10FFFF, or cut off by len). */
size_t utf8_seq(const char *s, size_t len);

/* Copies in[0..len) into out (outlen > 0, always NUL-terminated) as valid
 * UTF-8: each byte that starts no well-formed sequence becomes '?' (with
 * UTF8_PRINTABLE in flags, control characters too). Stops before the first
 * character that would not fit. Returns the length written. */
size_t utf8_clean(char *out, size_t outlen, const char *in, size_t len, unsigned flags);

/* The length of s[0..len) without a trailing sequence that a cut at len split,
 * so that a cut string does not end in the middle of a character. */
size_t utf8_cut(const char *s, size_t len);

/* The continuation bytes (at most 3) at the start of s[0..len): what to skip
 * when a cut took away the start of a character. */
size_t utf8_resync(const char *s, size_t len);

/* A new JSON string of s (NUL-terminated); when s is not valid UTF-8 its bad
 * bytes become '?' rather than losing the whole string. NULL on OOM. */
json_t *utf8_json_string(const char *s);

#endif
