/* test_cron.c - cron expressions and time zones (util/cron.c, util/tz.c):
 * the tables of tests/data/cron (next runs across DST in Europe/Berlin and
 * America/New_York, month ends, Feb 29, the day OR rule, aliases; refused
 * expressions with their messages), zone names and offsets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cron.h"
#include "../util/rfc3339.h"
#include "../util/tz.h"
#include "support.h"

#define CRON_DATA "tests/data/cron"

TestSuite(cron);

/* Splits line at '|' into at most max trimmed fields (in place). */
static size_t cron_split(char *line, char **out, size_t max)
{
    size_t n = 0;
    for (char *p = line; p && n < max;) {
        char *bar = strchr(p, '|');
        if (bar)
            *bar = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'))
            *--end = '\0';
        out[n++] = p;
        p = bar ? bar + 1 : NULL;
    }
    return n;
}

static int64_t cron_secs(const char *text)
{
    int64_t ms = 0;
    cr_assert_eq(rfc3339_parse(text, &ms), 0, "bad time %s in the table", text);
    return ms / 1000;
}

/* Calls row(fields, n) for every data line of file. Returns the rows seen. */
static int cron_table(const char *file, void (*row)(char **f, size_t n, int line))
{
    char *text = ts_read_file(file, NULL);
    cr_assert(text, "cannot read %s", file);
    int rows = 0, line = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        line++;
        if (l[0] == '#')
            continue;
        size_t n = cron_split(l, f, 4);
        row(f, n, line);
        rows++;
    }
    free(text);
    return rows;
}

static void cron_next_row(char **f, size_t n, int line)
{
    char err[256] = "";
    cron_expr e;
    cr_assert_eq(n, 4, "line %d: 4 fields", line);
    cr_assert_eq(cron_parse(f[0], &e, err, sizeof err), 0, "%s: %s", f[0], err);
    tz_zone *z = tz_load(f[1], NULL, err, sizeof err);
    cr_assert(z, "%s", err);
    int64_t got = cron_next(&e, z, cron_secs(f[2]));
    char buf[RFC3339_BUF];
    rfc3339_format(got * 1000, buf);
    cr_expect_eq(got, cron_secs(f[3]), "%s in %s after %s: got %s, want %s", f[0], f[1], f[2],
                 buf, f[3]);
    tz_free(z);
}

Test(cron, next_runs_of_the_table)
{
    cr_expect_gt(cron_table(CRON_DATA "/next.txt", cron_next_row), 40);
}

static void cron_invalid_row(char **f, size_t n, int line)
{
    char err[256] = "";
    cron_expr e;
    cr_assert_eq(n, 2, "line %d: 2 fields", line);
    cr_expect_eq(cron_parse(f[0], &e, err, sizeof err), -1, "\"%s\" accepted", f[0]);
    cr_expect_str_eq(err, f[1], "\"%s\"", f[0]);
}

Test(cron, refuses_invalid_expressions_with_their_message)
{
    cr_expect_gt(cron_table(CRON_DATA "/invalid.txt", cron_invalid_row), 20);
}

Test(cron, an_impossible_date_never_runs)
{
    char err[128];
    cron_expr e;
    tz_zone *z = tz_load("UTC", NULL, err, sizeof err);
    cr_assert(z);
    cr_assert_eq(cron_parse("0 0 30 2 *", &e, err, sizeof err), 0);
    cr_expect_eq(cron_next(&e, z, cron_secs("2026-01-01T00:00:00Z")), -1);
    cr_assert_eq(cron_parse("0 0 31 4 *", &e, err, sizeof err), 0);
    cr_expect_eq(cron_next_wall(&e, 0), -1);
    tz_free(z);
}

/* "* * * * *" is a wildcard expression: as in Vixie cron it follows the
 * clocks, one run per minute they show: 1440 on a normal day, 1380 on the
 * spring-forward day (23 hours: the skipped hour does not run) and 1500 on
 * the fall-back day (25 hours: the repeated hour runs at both showings). */
Test(cron, every_minute_across_dst_runs_each_minute_the_clocks_show)
{
    static const struct {
        char zone[24], from[24], to[24];
        int runs;
    } days[] = {
        {"Europe/Berlin", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 1380},
        {"Europe/Berlin", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 1500},
        {"America/New_York", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", 1380},
        {"America/New_York", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z", 1500},
        {"UTC", "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z", 1440},
    };
    char err[128];
    cron_expr e;
    cr_assert_eq(cron_parse("* * * * *", &e, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof days / sizeof *days; i++) {
        tz_zone *z = tz_load(days[i].zone, NULL, err, sizeof err);
        cr_assert(z, "%s", err);
        int64_t t = cron_secs(days[i].from) - 1, end = cron_secs(days[i].to);
        int runs = 0;
        while ((t = cron_next(&e, z, t)) < end && runs < 5000)
            runs++;
        cr_expect_eq(runs, days[i].runs, "%s %s: %d runs", days[i].zone,
                     days[i].from, runs);
        tz_free(z);
    }
}

Test(cron, zone_offsets_and_wall_times)
{
    char err[128];
    tz_zone *b = tz_load("Europe/Berlin", NULL, err, sizeof err);
    tz_zone *ny = tz_load("America/New_York", NULL, err, sizeof err);
    cr_assert(b && ny, "%s", err);
    cr_expect_str_eq(tz_zone_name(b), "Europe/Berlin");
    cr_expect_eq(tz_offset(b, cron_secs("2026-01-15T12:00:00Z")), 3600);
    cr_expect_eq(tz_offset(b, cron_secs("2026-07-15T12:00:00Z")), 7200);
    cr_expect_eq(tz_offset(b, cron_secs("2026-03-29T00:59:59Z")), 3600);
    cr_expect_eq(tz_offset(b, cron_secs("2026-03-29T01:00:00Z")), 7200);
    cr_expect_eq(tz_offset(b, cron_secs("2060-07-01T00:00:00Z")), 7200); /* the footer rule */
    cr_expect_eq(tz_offset(b, cron_secs("2060-12-01T00:00:00Z")), 3600);
    cr_expect_eq(tz_offset(ny, cron_secs("2026-07-15T12:00:00Z")), -4 * 3600);
    cr_expect_eq(tz_offset(ny, cron_secs("2026-11-01T06:00:00Z")), -5 * 3600);
    cr_expect_eq(tz_offset(ny, cron_secs("1800-01-01T00:00:00Z")), -17762); /* LMT */
    /* 2026-03-29 02:30 in Berlin does not exist: the jump, 01:00Z. */
    int64_t wall = tz_days_from_civil(2026, 3, 29) * 86400 + 2 * 3600 + 1800;
    cr_expect_eq(tz_wall_to_utc(b, wall), cron_secs("2026-03-29T01:00:00Z"));
    /* 2026-10-25 02:30 in Berlin happens twice: the first, 00:30Z. */
    wall = tz_days_from_civil(2026, 10, 25) * 86400 + 2 * 3600 + 1800;
    cr_expect_eq(tz_wall_to_utc(b, wall), cron_secs("2026-10-25T00:30:00Z"));
    cr_expect_eq(tz_wall_to_utc_last(b, wall), cron_secs("2026-10-25T01:30:00Z"));
    /* shown once: the last showing is the only one; a gap still gives the jump */
    wall = tz_days_from_civil(2026, 7, 1) * 86400 + 12 * 3600;
    cr_expect_eq(tz_wall_to_utc_last(b, wall), cron_secs("2026-07-01T10:00:00Z"));
    wall = tz_days_from_civil(2026, 3, 29) * 86400 + 2 * 3600 + 1800;
    cr_expect_eq(tz_wall_to_utc_last(b, wall), cron_secs("2026-03-29T01:00:00Z"));
    tz_free(b);
    tz_free(ny);
}

Test(cron, zone_names)
{
    static const char ok[][32] = {"UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires",
                                  "Etc/GMT+5", "America/Port-au-Prince"};
    static const char bad[][32] = {"", "/etc/passwd", "../etc/passwd", "Europe/../../x", "a//b",
                                   "Europe/", "./UTC", "Europe/Ber lin", "Europe/Berlin\\x"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_expect(tz_name_ok(ok[i]), "%s refused", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect(!tz_name_ok(bad[i]), "%s accepted", bad[i]);
    cr_expect(!tz_name_ok(NULL));
    char err[128] = "";
    cr_expect_null(tz_load("Mars/Olympus_Mons", NULL, err, sizeof err));
    cr_expect_str_eq(err, "unknown time zone \"Mars/Olympus_Mons\"");
    cr_expect_null(tz_load("../zoneinfo/UTC", NULL, err, sizeof err));
    cr_expect_str_eq(err, "invalid time zone name \"../zoneinfo/UTC\"");
    cr_expect_null(tz_load("Europe", NULL, err, sizeof err)); /* a directory */
    cr_expect_str_eq(err, "unknown time zone \"Europe\"");
    cr_expect_null(tz_load("tzdata.zi", NULL, err, sizeof err)); /* a file, not TZif */
    cr_expect(strstr(err, "not a valid TZif file"), "%s", err);
}

Test(cron, civil_calendar_round_trip)
{
    for (int64_t d = tz_days_from_civil(1899, 12, 25); d < tz_days_from_civil(2105, 1, 10); d += 13) {
        int64_t y;
        int m, dd;
        tz_civil_from_days(d, &y, &m, &dd);
        cr_assert_eq(tz_days_from_civil(y, m, dd), d);
        cr_assert(dd >= 1 && dd <= tz_month_days(y, m));
    }
    cr_expect_eq(tz_weekday(tz_days_from_civil(2026, 12, 3)), 4); /* a Thursday */
    cr_expect_eq(tz_month_days(2100, 2), 28);
    cr_expect_eq(tz_month_days(2000, 2), 29);
}
