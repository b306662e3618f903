/* rfc3339.h - RFC 3339 times <-> unix milliseconds, free of TZ and locale. */
#ifndef JOBD_RFC3339_H
#define JOBD_RFC3339_H

#include <stdint.h>

/* Room rfc3339_format needs, NUL included. */
#define RFC3339_BUF 32

/* Parses RFC 3339 ("2026-11-28T10:00:00Z", "...T10:00:00.123+02:00").
 * Returns 0 and unix ms in *ms, or -1. */
int rfc3339_parse(const char *s, int64_t *ms);

/* Formats unix ms as "2026-11-28T10:00:00.000Z" into buf (>= RFC3339_BUF bytes). */
void rfc3339_format(int64_t ms, char *buf);

#endif
