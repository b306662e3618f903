/* test_rfc3339.c - RFC 3339 times (util/rfc3339.c): known instants, what is
 * refused, a round trip against gmtime, offsets. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../util/rfc3339.h"

#define TR_NOW 1795860000000LL /* 2026-11-28T10:00:00.000Z */
#define TR_TIME_END 253402300800000LL /* 10000-01-01T00:00:00Z */

TestSuite(time);

typedef struct tr_time {
    char text[48];
    int64_t ms;
} tr_time;

Test(time, parses_known_instants)
{
    static const tr_time cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00.001Z", 1},
        {"2000-01-01T00:00:00Z", 946684800000},
        {"2026-11-28T10:00:00Z", TR_NOW},
        {"2026-11-28T10:00:00.000Z", TR_NOW},
        {"2026-11-28t10:00:00z", TR_NOW},
        {"2026-11-28 10:00:00Z", TR_NOW},
        {"2026-11-28T12:00:00+02:00", TR_NOW},
        {"2026-11-28T04:30:00-05:30", TR_NOW},
        {"2026-11-28T10:00:00-00:00", TR_NOW},
        {"2026-11-29T09:59:00+23:59", TR_NOW},
        {"2026-11-28T10:00:00.1Z", TR_NOW + 100},
        {"2026-11-28T10:00:00.12Z", TR_NOW + 120},
        {"2026-11-28T10:00:00.123Z", TR_NOW + 123},
        {"2026-11-28T10:00:00.1239Z", TR_NOW + 123},
        {"2026-11-28T10:00:00.000000001Z", TR_NOW},
        {"2026-11-28T12:00:00.250+02:00", TR_NOW + 250},
        {"2024-02-29T00:00:00Z", 1709164800000},
        {"2000-02-29T00:00:00Z", 951782400000},
        {"2016-12-31T23:59:60Z", 1483228800000},
        {"1969-12-31T23:59:59.999Z", -1},
        {"0001-01-01T00:00:00Z", -62135596800000},
        {"9999-12-31T23:59:59.999Z", TR_TIME_END - 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t ms = 42;
        cr_expect_eq(rfc3339_parse(cases[i].text, &ms), 0, "refused %s", cases[i].text);
        cr_expect_eq(ms, cases[i].ms, "%s -> %lld", cases[i].text, (long long)ms);
    }
}

Test(time, rejects_malformed)
{
    static const char bad[][40] = {
        "", "2026", "2026-11-28", "2026-11-28T10:00Z", "2026-11-28T10:00:00",
        "2026-11-28T10:00:00.Z", "2026-11-28T10:00:00ZZ", "2026-11-28T10:00:00+02",
        "2026-11-28T10:00:00+0200", "2026-11-28T10:00:00+24:00", "2026-11-28T10:00:00+02:60",
        "2026-11-28T10:00:00 Z", " 2026-11-28T10:00:00Z", "2026-11-28T10:00:00Z ",
        "2026-1-28T10:00:00Z", "2026-11-28T1:00:00Z", "+2026-11-28T10:00:00Z",
        "2026/11/28T10:00:00Z", "2026-11-28_10:00:00Z", "2026-11-28T10-00-00Z",
        "2026-00-10T10:00:00Z", "2026-13-10T10:00:00Z", "2026-11-00T10:00:00Z",
        "2026-11-31T10:00:00Z", "2026-02-29T10:00:00Z", "1900-02-29T10:00:00Z",
        "2026-02-30T10:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T10:60:00Z",
        "2026-11-28T10:00:61Z", "2026-11-28T10:00:00,5Z", "2026-11-28T10:00:00.5",
        "２026-11-28T10:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms;
        cr_expect_eq(rfc3339_parse(bad[i], &ms), -1, "accepted \"%s\"", bad[i]);
    }
    int64_t ms;
    cr_expect_eq(rfc3339_parse(NULL, &ms), -1);
}

Test(time, formats_known_instants)
{
    static const tr_time cases[] = {
        {"1970-01-01T00:00:00.000Z", 0},
        {"1970-01-01T00:00:00.001Z", 1},
        {"1969-12-31T23:59:59.999Z", -1},
        {"1969-12-31T00:00:00.000Z", -86400000},
        {"2026-11-28T10:00:00.000Z", TR_NOW},
        {"2026-11-28T10:00:00.123Z", TR_NOW + 123},
        {"2024-02-29T23:59:59.999Z", 1709251199999},
        {"2100-03-01T00:00:00.000Z", 4107542400000},
        {"9999-12-31T23:59:59.999Z", TR_TIME_END - 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[32];
        rfc3339_format(cases[i].ms, buf);
        cr_expect_str_eq(buf, cases[i].text, "%lld", (long long)cases[i].ms);
    }
}

/* libc's gmtime_r is an independent oracle for our own calendar arithmetic. */
Test(time, round_trips_against_gmtime)
{
    uint64_t x = 88172645463325252ULL; /* xorshift: a fixed, spread sample */
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t)(x % (uint64_t)TR_TIME_END);
        char buf[32], want[40];
        rfc3339_format(ms, buf);
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        size_t n = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(want + n, sizeof want - n, ".%03dZ", (int)(ms % 1000));
        cr_assert_str_eq(buf, want, "%lld", (long long)ms);
        int64_t back;
        cr_assert_eq(rfc3339_parse(buf, &back), 0, "%s", buf);
        cr_assert_eq(back, ms, "%s", buf);
    }
}

Test(time, offsets_name_the_same_instant)
{
    static const char same[][40] = {
        "2026-03-01T00:30:00.750Z",     "2026-03-01T02:30:00.750+02:00",
        "2026-02-28T19:00:00.750-05:30", "2026-03-01T14:30:00.750+14:00",
        "2026-02-28T12:30:00.750-12:00",
    };
    int64_t first;
    cr_assert_eq(rfc3339_parse(same[0], &first), 0);
    for (size_t i = 1; i < sizeof same / sizeof *same; i++) {
        int64_t ms;
        cr_expect_eq(rfc3339_parse(same[i], &ms), 0, "%s", same[i]);
        cr_expect_eq(ms, first, "%s", same[i]);
    }
    char buf[32];
    rfc3339_format(first, buf);
    cr_expect_str_eq(buf, same[0]);
}
