/* rfc3339.c - RFC 3339 times: a strict parser and a fixed-width formatter. */
#include "rfc3339.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so no TZ or locale can change the result. */
static int64_t rfc3339_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of rfc3339_days_from_civil. */
static void rfc3339_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int rfc3339_days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n ASCII digits; stops at the NUL of a short string. */
static bool rfc3339_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Milliseconds of a fraction ".ddd...": any number of digits, at least one,
 * beyond the third only checked. Returns the end, or NULL. */
static const char *rfc3339_fraction(const char *p, int *ms)
{
    int n = 0;
    *ms = 0;
    if (*p != '.')
        return p;
    for (p++; *p >= '0' && *p <= '9'; p++, n++)
        if (n < 3)
            *ms = *ms * 10 + (*p - '0');
    for (int i = n; i < 3; i++)
        *ms *= 10;
    return n > 0 ? p : NULL;
}

/* Offset "Z" or "+hh:mm"/"-hh:mm" in seconds east of UTC. Returns the end, or NULL. */
static const char *rfc3339_offset(const char *p, int *secs)
{
    int h, m;
    if (*p == 'Z' || *p == 'z') {
        *secs = 0;
        return p + 1;
    }
    if ((*p != '+' && *p != '-') || !rfc3339_digits(p + 1, 2, &h) || p[3] != ':' ||
        !rfc3339_digits(p + 4, 2, &m) || h > 23 || m > 59)
        return NULL;
    *secs = (*p == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return p + 6;
}

int rfc3339_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, frac, off;
    if (!s || !rfc3339_digits(s, 4, &y) || s[4] != '-' || !rfc3339_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !rfc3339_digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !rfc3339_digits(s + 11, 2, &h) ||
        s[13] != ':' || !rfc3339_digits(s + 14, 2, &mi) || s[16] != ':' ||
        !rfc3339_digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > rfc3339_days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    const char *p = rfc3339_fraction(s + 19, &frac);
    if (!p || !(p = rfc3339_offset(p, &off)) || *p != '\0')
        return -1;
    /* A leap second (:60) lands on the first ms of the next minute, as timegm does. */
    int64_t secs = rfc3339_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    *ms = secs * 1000 + frac;
    return 0;
}

/* Writes v as exactly n digits (v < 10^n). */
static void rfc3339_put_digits(char *p, int n, int v)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

void rfc3339_format(int64_t ms, char *buf)
{
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) { /* floor, so times before 1970 count back from midnight */
        rem += 86400000;
        days--;
    }
    int64_t y;
    int m, d;
    rfc3339_civil_from_days(days, &y, &m, &d);
    int t = (int)(rem / 1000);
    if (y < 0 || y > 9999) { /* no fixed width: leave it to printf */
        snprintf(buf, RFC3339_BUF, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
                 t / 3600, t / 60 % 60, t % 60, (int)(rem % 1000));
        return;
    }
    /* Views carry several times each, and printf was most of their cost. */
    memcpy(buf, "0000-00-00T00:00:00.000Z", 25);
    rfc3339_put_digits(buf, 4, (int)y);
    rfc3339_put_digits(buf + 5, 2, m);
    rfc3339_put_digits(buf + 8, 2, d);
    rfc3339_put_digits(buf + 11, 2, t / 3600);
    rfc3339_put_digits(buf + 14, 2, t / 60 % 60);
    rfc3339_put_digits(buf + 17, 2, t % 60);
    rfc3339_put_digits(buf + 20, 3, (int)(rem % 1000));
}
