/* fuzz_time.c - RFC 3339 parsing (rfc3339_parse): any text either is
 * refused, or gives the time glibc's timegm gives for the same fields (a
 * valid calendar date; the fraction cut to ms; the offset subtracted), which
 * formats and parses back to the same ms; and any ms in the documented years
 * formats to text that parses back. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"

/* 9999-12-31T23:59:59.999Z: the last instant of the documented years. */
#define FUZZ_TIME_MAX 253402300799999LL

static void fuzz_time_round_trip(int64_t ms)
{
    char buf[64];
    rfc3339_format(ms, buf);
    FUZZ_CHECK(strlen(buf) == 24 && buf[23] == 'Z', "format of %lld: \"%s\"", (long long)ms, buf);
    int64_t back = -1;
    FUZZ_CHECK(rfc3339_parse(buf, &back) == 0, "own format refused: \"%s\"", buf);
    FUZZ_CHECK(back == ms, "\"%s\" parsed back as %lld, not %lld", buf, (long long)back,
               (long long)ms);
}

/* Checks an accepted text against a second reading of it: its fields by
 * sscanf (the strict parser accepted it, so they are plain digits), then
 * timegm, which also says whether the date exists (it would move it). */
static void fuzz_time_oracle(const char *s, int64_t ms)
{
    struct tm tm = {0};
    int pos = 0;
    char sep;
    FUZZ_CHECK(sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &sep, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &pos) == 7,
               "accepted \"%s\" has no date and time", s);
    int year = tm.tm_year, mon = tm.tm_mon, mday = tm.tm_mday, sec = tm.tm_sec;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t want = (int64_t)timegm(&tm) * 1000;
    FUZZ_CHECK(sec == 60 || (tm.tm_year + 1900 == year && tm.tm_mon + 1 == mon &&
                             tm.tm_mday == mday),
               "accepted \"%s\", a date that does not exist", s);
    const char *p = s + pos;
    if (*p == '.') {
        int digits = 0, frac = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        for (; digits < 3; digits++)
            frac *= 10;
        want += frac;
    }
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        FUZZ_CHECK(sscanf(p + 1, "%2d:%2d", &oh, &om) == 2, "offset of \"%s\"", s);
        want -= (*p == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60) * 1000;
    }
    FUZZ_CHECK(ms == want, "\"%s\" is %lld, timegm says %lld", s, (long long)ms,
               (long long)want);
}

int fuzz_time(const uint8_t *data, size_t size)
{
    char *s = fuzz_text(data, size);
    int64_t ms = 0;
    if (rfc3339_parse(s, &ms) == 0) {
        fuzz_time_oracle(s, ms);
        if (ms >= 0 && ms <= FUZZ_TIME_MAX)
            fuzz_time_round_trip(ms);
    }
    free(s);
    if (size >= 8) {
        uint64_t raw;
        memcpy(&raw, data, sizeof raw);
        fuzz_time_round_trip((int64_t)(raw % (uint64_t)(FUZZ_TIME_MAX + 1)));
    }
    return 0;
}

FUZZ_ENTRY(fuzz_time)
