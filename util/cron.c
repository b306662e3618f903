/* cron.c - the cron expression reader and its next-run search. */
#include "cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CRON_DAY 86400
#define CRON_YEARS 10 /* how far cron_next_wall looks: Feb 29 recurs within 8 years */

typedef struct cron_field {
    const char *name;
    int min, max;
    const char *const *names; /* names of min.. in order, or NULL */
} cron_field;

static const char *const cron_months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const cron_days[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

/* Day of week accepts 7 (Sunday) as a value; it is folded onto 0. */
static const cron_field cron_fields[5] = {
    {"minute", 0, 59, NULL},       {"hour", 0, 23, NULL},          {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, cron_months}, {"day-of-week", 0, 7, cron_days},
};

static const struct {
    const char *alias, *expr;
} cron_aliases[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},  {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

__attribute__((format(printf, 4, 5))) static int cron_fail(char *err, size_t errlen, int field,
                                                           const char *fmt, ...)
{
    char why[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "field %d (%s): %s", field + 1, cron_fields[field].name, why);
    return -1;
}

/* One value at *p: a number or (for fields that have them) a name. */
static int cron_value(const char **p, int field, int *out, char *err, size_t errlen)
{
    const cron_field *f = &cron_fields[field];
    const char *s = *p;
    size_t len = strcspn(s, ",-/");
    if (len == 0)
        return cron_fail(err, errlen, field, "empty value");
    if (s[0] >= '0' && s[0] <= '9') {
        long v = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return cron_fail(err, errlen, field, "\"%.*s\" is not a number", (int)len, s);
            if (v < 1000000)
                v = v * 10 + (s[i] - '0');
        }
        if (v < f->min || v > f->max)
            return cron_fail(err, errlen, field, "%ld is out of range %d-%d", v,
                             f->min, field == 4 ? 7 : f->max);
        *out = (int)v;
    } else {
        int i = 0;
        for (; f->names && f->names[i]; i++)
            if (len == 3 && strncasecmp(s, f->names[i], 3) == 0)
                break;
        if (!f->names || !f->names[i])
            return cron_fail(err, errlen, field, "\"%.*s\" is not a %s", (int)len, s,
                             f->names ? "number or name" : "number");
        *out = f->min + i;
    }
    *p = s + len;
    return 0;
}

/* One list element: "*", "v", "a-b", each with an optional "/step". Sets
 * the bits of bits. */
static int cron_element(const char *s, size_t len, int field, uint64_t *bits, char *err,
                        size_t errlen)
{
    const cron_field *f = &cron_fields[field];
    char buf[64];
    if (len == 0)
        return cron_fail(err, errlen, field, "empty list element");
    if (len >= sizeof buf)
        return cron_fail(err, errlen, field, "\"%.20s...\" is too long", s);
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *p = buf;
    int lo = f->min, hi = field == 4 ? 6 : f->max, step = 1;
    if (*p == '*') {
        p++;
    } else {
        if (cron_value(&p, field, &lo, err, errlen) < 0)
            return -1;
        hi = lo;
        if (*p == '-') {
            p++;
            if (cron_value(&p, field, &hi, err, errlen) < 0)
                return -1;
            if (hi < lo)
                return cron_fail(err, errlen, field, "range %d-%d is backwards", lo, hi);
        } else if (*p == '/') {
            hi = f->max; /* "a/n": from a to the end, as cronie reads it */
        }
    }
    if (*p == '/') {
        p++;
        const char *digits = p;
        long v = 0;
        while (*p >= '0' && *p <= '9' && v < 1000000)
            v = v * 10 + (*p++ - '0');
        if (p == digits || *p)
            return cron_fail(err, errlen, field, "step \"%s\" is not a number", digits);
        if (v < 1 || v > f->max)
            return cron_fail(err, errlen, field, "step %ld is out of range 1-%d", v, f->max);
        step = (int)v;
    }
    if (*p)
        return cron_fail(err, errlen, field, "unexpected \"%s\"", p);
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ULL << (field == 4 && v == 7 ? 0 : v);
    return 0;
}

static int cron_parse_field(const char *s, size_t len, int field, uint64_t *bits, bool *star,
                            char *err, size_t errlen)
{
    *bits = 0;
    *star = s[0] == '*';
    for (size_t i = 0; i <= len;) {
        size_t n = 0;
        while (i + n < len && s[i + n] != ',')
            n++;
        if (cron_element(s + i, n, field, bits, err, errlen) < 0)
            return -1;
        i += n + 1;
    }
    return 0;
}

int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen)
{
    const char *p = text ? text : "";
    memset(out, 0, sizeof *out);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '@') {
        size_t n = strcspn(p, " \t");
        for (size_t i = 0; i < sizeof cron_aliases / sizeof *cron_aliases; i++)
            if (strlen(cron_aliases[i].alias) == n && strncasecmp(p, cron_aliases[i].alias, n) == 0 &&
                !p[n + strspn(p + n, " \t")])
                return cron_parse(cron_aliases[i].expr, out, err, errlen);
        snprintf(err, errlen, "unknown alias \"%.*s\" (known: @yearly @annually @monthly @weekly "
                              "@daily @midnight @hourly)", (int)(n > 32 ? 32 : n), p);
        return -1;
    }
    uint64_t bits[5];
    bool star[5];
    int field = 0;
    for (; *p && field < 5; field++) {
        size_t n = strcspn(p, " \t");
        if (cron_parse_field(p, n, field, &bits[field], &star[field], err, errlen) < 0)
            return -1;
        p += n;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    if (field < 5 || *p) {
        int found = field;
        while (*p) { /* count what is left, for the message */
            p += strcspn(p, " \t");
            p += strspn(p, " \t");
            found++;
        }
        snprintf(err, errlen, "expected 5 fields (minute hour day-of-month month day-of-week), "
                              "found %d", found);
        return -1;
    }
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->dow = (uint8_t)bits[4];
    out->dom_star = star[2];
    out->dow_star = star[4];
    out->wild = star[0] || star[1];
    return 0;
}

static bool cron_day_ok(const cron_expr *e, int64_t days, int d)
{
    bool dom = e->dom >> d & 1, dow = e->dow >> tz_weekday(days) & 1;
    return e->dom_star || e->dow_star ? dom && dow : dom || dow;
}

int64_t cron_next_wall(const cron_expr *e, int64_t wall)
{
    int64_t t = (wall - (((wall % 60) + 60) % 60)) + 60; /* the next whole minute */
    int64_t days = t / 86400 - (t % 86400 < 0), y, y_end;
    int m, d;
    int sec = (int)(t - days * 86400);
    int h = sec / 3600, min = sec % 3600 / 60;
    tz_civil_from_days(days, &y, &m, &d);
    y_end = y + CRON_YEARS;
    while (y <= y_end) {
        if (!(e->month >> m & 1)) {
            m++, d = 1, h = 0, min = 0;
        } else if (d > tz_month_days(y, m)) {
            m++, d = 1, h = 0, min = 0;
        } else if (!cron_day_ok(e, tz_days_from_civil(y, m, d), d)) {
            d++, h = 0, min = 0;
        } else if (!(e->hour >> h & 1)) {
            h++, min = 0;
            if (h == 24)
                d++, h = 0;
        } else if (!(e->minute >> min & 1)) {
            min++;
            if (min == 60)
                h++, min = 0;
            if (h == 24)
                d++, h = 0;
        } else {
            return tz_days_from_civil(y, m, d) * 86400 + h * 3600 + min * 60;
        }
        if (m == 13)
            y++, m = 1;
    }
    return -1;
}

/* cron_next of a wildcard expression: the earliest instant after t whose
 * wall time matches. Walls are tried in order, from below t's when a
 * fall-back comes within a day (it shows lower walls again), until one's
 * first showing is after t; the second showing of an earlier wall may come
 * before that, so the least candidate wins. Bounded: each round moves the
 * wall forward by at least a minute, and a fall-back spans hours. */
static int64_t cron_next_wild(const cron_expr *e, const tz_zone *z, int64_t t)
{
    int now = tz_offset(z, t), soon = tz_offset(z, t + CRON_DAY);
    int64_t wall = t + (soon < now ? soon : now), best = -1;
    for (int i = 0; i < 1000; i++) {
        int64_t w = cron_next_wall(e, wall);
        if (w < 0)
            break;
        wall = w;
        int64_t first = tz_wall_to_utc(z, w);
        if (first + tz_offset(z, first) != w)
            continue; /* skipped by a spring-forward: the clocks never show it */
        int64_t u = first > t ? first : tz_wall_to_utc_last(z, w);
        if (u > t && (best < 0 || u < best))
            best = u;
        if (first > t)
            break;
    }
    return best;
}

int64_t cron_next(const cron_expr *e, const tz_zone *z, int64_t t)
{
    if (e->wild)
        return cron_next_wild(e, z, t);
    int64_t wall = t + tz_offset(z, t);
    /* A wall time that maps at or before t (a repeat after a fall-back, or
     * a skipped one already run at the jump) is passed over. Bounded: each
     * round moves wall forward by at least a minute, and a jump spans hours. */
    for (int i = 0; i < 1000; i++) {
        int64_t w = cron_next_wall(e, wall);
        if (w < 0)
            return -1;
        int64_t u = tz_wall_to_utc(z, w);
        if (u > t)
            return u;
        wall = w;
    }
    return -1;
}
