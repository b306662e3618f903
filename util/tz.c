/* tz.c - TZif (RFC 8536) zones and their POSIX TZ footer rules, read without
 * tzset/localtime_r, so no thread depends on the process's TZ. */
#include "tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_FILE_MAX (1 << 20) /* zone files are a few KiB */
#define TZ_DAY 86400

/* One date rule of a POSIX TZ string: Mm.w.d, Jn or n, and the local time
 * of the change in seconds (may be negative or past 24 h). */
typedef struct tz_date {
    char kind; /* 'M', 'J' or 'N' */
    int m, w, d, n;
    int64_t time;
} tz_date;

/* A POSIX TZ string: standard offset, and DST with its two change dates. */
typedef struct tz_rule {
    int std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    tz_date start, end;
} tz_rule;

struct tz_zone {
    char name[TZ_NAME_MAX + 1];
    int64_t *trans; /* owned, n_trans transition times, ascending */
    uint8_t *idx;   /* owned, the type after each transition */
    size_t n_trans;
    int32_t *offs; /* owned, n_types offsets */
    size_t n_types;
    bool has_rule; /* the footer rule holds after the last transition */
    tz_rule rule;
};

bool tz_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > TZ_NAME_MAX)
        return false;
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        /* Each component non-empty and neither "." nor "..": no way out of the dir. */
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '+' || c == '-' || c == '.'))
                return false;
        }
        p += n;
        if (*p == '/' && !*++p)
            return false; /* a trailing '/' */
    }
    return true;
}

int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    /* Howard Hinnant's days_from_civil. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int tz_weekday(int64_t days)
{
    int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

static bool tz_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int tz_month_days(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && tz_leap(y) ? 29 : days[m - 1];
}

/* --- POSIX TZ strings (the TZif footer) --- */

static bool tz_parse_name(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        const char *end = strchr(s, '>');
        if (!end || end - s < 4)
            return false;
        *p = end + 1;
        return true;
    }
    while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
        s++;
    if (s - *p < 3)
        return false;
    *p = s;
    return true;
}

static bool tz_parse_num(const char **p, int max, int *out)
{
    char *end;
    if (**p < '0' || **p > '9')
        return false;
    long v = strtol(*p, &end, 10);
    if (v > max)
        return false;
    *out = (int)v;
    *p = end;
    return true;
}

/* [+-]hh[:mm[:ss]] into seconds (the sign as written). */
static bool tz_parse_hms(const char **p, int max_h, int64_t *secs)
{
    int sign = 1, h = 0, m = 0, s = 0;
    if (**p == '+' || **p == '-')
        sign = *(*p)++ == '-' ? -1 : 1;
    if (!tz_parse_num(p, max_h, &h))
        return false;
    if (**p == ':' && (++*p, !tz_parse_num(p, 59, &m)))
        return false;
    if (**p == ':' && (++*p, !tz_parse_num(p, 59, &s)))
        return false;
    *secs = sign * ((int64_t)h * 3600 + m * 60 + s);
    return true;
}

static bool tz_parse_date(const char **p, tz_date *d)
{
    d->time = 7200; /* 02:00 local unless given */
    if (**p == 'M') {
        d->kind = 'M';
        ++*p;
        if (!tz_parse_num(p, 12, &d->m) || d->m < 1 || *(*p)++ != '.' ||
            !tz_parse_num(p, 5, &d->w) || d->w < 1 || *(*p)++ != '.' || !tz_parse_num(p, 6, &d->d))
            return false;
    } else if (**p == 'J') {
        d->kind = 'J';
        ++*p;
        if (!tz_parse_num(p, 365, &d->n) || d->n < 1)
            return false;
    } else {
        d->kind = 'N';
        if (!tz_parse_num(p, 365, &d->n))
            return false;
    }
    if (**p == '/') {
        ++*p;
        return tz_parse_hms(p, 167, &d->time);
    }
    return true;
}

static bool tz_parse_rule(const char *s, tz_rule *r)
{
    int64_t off;
    memset(r, 0, sizeof *r);
    if (!tz_parse_name(&s) || !tz_parse_hms(&s, 24, &off))
        return false;
    r->std_off = (int)-off; /* POSIX offsets count west of UTC */
    if (!*s)
        return true;
    if (!tz_parse_name(&s))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*s && *s != ',') {
        if (!tz_parse_hms(&s, 24, &off))
            return false;
        r->dst_off = (int)-off;
    }
    if (!*s) { /* no dates: the US rules, as POSIX leaves it to the implementation */
        r->start = (tz_date){'M', 3, 2, 0, 0, 7200};
        r->end = (tz_date){'M', 11, 1, 0, 0, 7200};
        return true;
    }
    return *s++ == ',' && tz_parse_date(&s, &r->start) && *s++ == ',' &&
           tz_parse_date(&s, &r->end) && !*s;
}

/* Local seconds (since 1970, as if UTC) of date rule d in year y. */
static int64_t tz_date_wall(const tz_date *d, int64_t y)
{
    int64_t days;
    if (d->kind == 'M') {
        int64_t first = tz_days_from_civil(y, d->m, 1);
        int day = 1 + (d->d - tz_weekday(first) + 7) % 7 + (d->w - 1) * 7;
        while (day > tz_month_days(y, d->m))
            day -= 7;
        days = first + day - 1;
    } else if (d->kind == 'J') {
        days = tz_days_from_civil(y, 1, 1) + d->n - 1 + (tz_leap(y) && d->n >= 60);
    } else {
        days = tz_days_from_civil(y, 1, 1) + d->n;
    }
    return days * TZ_DAY + d->time;
}

static int tz_rule_offset(const tz_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    int64_t y;
    int m, d;
    tz_civil_from_days((t + r->std_off) / TZ_DAY - ((t + r->std_off) % TZ_DAY < 0), &y, &m, &d);
    int64_t start = tz_date_wall(&r->start, y) - r->std_off;
    int64_t end = tz_date_wall(&r->end, y) - r->dst_off;
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? r->dst_off : r->std_off;
}

/* --- TZif files --- */

static uint32_t tz_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t tz_be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)tz_be32(p) << 32 | tz_be32(p + 4));
}

/* The counts of a TZif header at p: isut, isstd, leap, time, type, char. */
static void tz_counts(const unsigned char *p, size_t c[6])
{
    for (int i = 0; i < 6; i++)
        c[i] = tz_be32(p + 20 + 4 * i);
}

static size_t tz_block_len(const size_t c[6], size_t tsize)
{
    return c[3] * tsize + c[3] + c[4] * 6 + c[5] + c[2] * (tsize + 4) + c[1] + c[0];
}

/* Fills z from the TZif bytes buf[0..len). 0, or -1 when malformed. */
static int tz_parse_tzif(tz_zone *z, const unsigned char *buf, size_t len)
{
    size_t c[6], tsize = 4;
    if (len < 44 || memcmp(buf, "TZif", 4) != 0)
        return -1;
    tz_counts(buf, c);
    const unsigned char *p = buf + 44;
    size_t skip = tz_block_len(c, 4);
    if (buf[4] >= '2') { /* use the 64-bit block that follows the 32-bit one */
        if (len < 44 + skip + 44 || memcmp(p + skip, "TZif", 4) != 0)
            return -1;
        tz_counts(p + skip, c);
        p += skip + 44;
        tsize = 8;
    }
    size_t need = tz_block_len(c, tsize);
    if (c[4] == 0 || c[4] > 256 || (size_t)(buf + len - p) < need)
        return -1;
    z->n_trans = c[3];
    z->n_types = c[4];
    z->trans = calloc(c[3] + 1, sizeof *z->trans);
    z->idx = calloc(c[3] + 1, 1);
    z->offs = calloc(c[4], sizeof *z->offs);
    if (!z->trans || !z->idx || !z->offs)
        return -1;
    for (size_t i = 0; i < c[3]; i++)
        z->trans[i] = tsize == 8 ? tz_be64(p + 8 * i) : (int32_t)tz_be32(p + 4 * i);
    p += c[3] * tsize;
    for (size_t i = 0; i < c[3]; i++)
        if ((z->idx[i] = p[i]) >= c[4])
            return -1;
    p += c[3];
    for (size_t i = 0; i < c[4]; i++)
        z->offs[i] = (int32_t)tz_be32(p + 6 * i);
    p += need - c[3] * tsize - c[3];
    /* The footer "\n<POSIX TZ>\n" (version 2+) rules the times after the last transition. */
    if (tsize == 8 && p < buf + len && *p == '\n') {
        const unsigned char *end = memchr(p + 1, '\n', (size_t)(buf + len - p - 1));
        char text[128];
        size_t n = end ? (size_t)(end - p - 1) : 0;
        if (n > 0 && n < sizeof text) {
            memcpy(text, p + 1, n);
            text[n] = '\0';
            z->has_rule = tz_parse_rule(text, &z->rule);
        }
    }
    return 0;
}

/* The whole file at path (owned, *len bytes), or NULL with errno set. */
static unsigned char *tz_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(TZ_FILE_MAX);
    errno = 0;
    *len = buf ? fread(buf, 1, TZ_FILE_MAX, f) : 0;
    if (buf && (ferror(f) || *len == TZ_FILE_MAX)) {
        int e = ferror(f) && errno ? errno : EFBIG; /* EISDIR for a directory */
        free(buf);
        buf = NULL;
        errno = e;
    }
    fclose(f);
    return buf;
}

tz_zone *tz_load(const char *name, const char *dir, char *err, size_t errlen)
{
    if (!tz_name_ok(name)) {
        snprintf(err, errlen, "invalid time zone name \"%s\"", name ? name : "");
        return NULL;
    }
    tz_zone *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(z->name, sizeof z->name, "%s", name);
    if (strcmp(name, "UTC") == 0) { /* needs no tz database (small container images) */
        z->has_rule = true;
        return z;
    }
    char path[TZ_NAME_MAX + 512];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir ? dir : TZ_DIR_DEFAULT, name);
    unsigned char *buf = tz_read(path, &len);
    if (!buf) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
            snprintf(err, errlen, "unknown time zone \"%s\"", name);
        else
            snprintf(err, errlen, "time zone \"%s\": %s", name, strerror(errno));
        tz_free(z);
        return NULL;
    }
    int rc = tz_parse_tzif(z, buf, len);
    free(buf);
    if (rc != 0) {
        snprintf(err, errlen, "unknown time zone \"%s\": %s is not a valid TZif file", name, path);
        tz_free(z);
        return NULL;
    }
    return z;
}

void tz_free(tz_zone *z)
{
    if (!z)
        return;
    free(z->trans);
    free(z->idx);
    free(z->offs);
    free(z);
}

const char *tz_zone_name(const tz_zone *z)
{
    return z->name;
}

int tz_offset(const tz_zone *z, int64_t t)
{
    size_t n = z->n_trans;
    if (n == 0 || t >= z->trans[n - 1]) {
        if (z->has_rule)
            return tz_rule_offset(&z->rule, t);
        if (n == 0)
            return z->n_types ? z->offs[0] : 0;
    }
    if (t < z->trans[0])
        return z->offs[0]; /* RFC 8536: type 0 before the first transition */
    size_t lo = 0, hi = n - 1; /* the last transition <= t */
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return z->offs[z->idx[lo]];
}

/* tz_wall_to_utc (last false) and tz_wall_to_utc_last (last true). */
static int64_t tz_wall_pick(const tz_zone *z, int64_t wall, bool last)
{
    /* The offsets that may hold around wall; transitions are days apart. */
    int o0 = tz_offset(z, wall);
    int cand[4] = {o0, tz_offset(z, wall - o0), tz_offset(z, wall - TZ_DAY),
                   tz_offset(z, wall + TZ_DAY)};
    int lo = cand[0], hi = cand[0];
    bool found = false;
    int64_t best = 0;
    for (int i = 0; i < 4; i++) {
        int64_t t = wall - cand[i];
        if (cand[i] < lo)
            lo = cand[i];
        if (cand[i] > hi)
            hi = cand[i];
        if (tz_offset(z, t) == cand[i] && (!found || (last ? t > best : t < best))) {
            best = t;
            found = true;
        }
    }
    if (found)
        return best;
    /* A gap: the first instant whose wall time is at or past wall, i.e. the jump. */
    int64_t a = wall - hi, b = wall - lo;
    while (a < b) {
        int64_t mid = a + (b - a) / 2;
        if (mid + tz_offset(z, mid) >= wall)
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

int64_t tz_wall_to_utc(const tz_zone *z, int64_t wall)
{
    return tz_wall_pick(z, wall, false);
}

int64_t tz_wall_to_utc_last(const tz_zone *z, int64_t wall)
{
    return tz_wall_pick(z, wall, true);
}
