/* tz.h - IANA time zones read from the system's tz database (TZif files),
 * without touching the process's TZ (jobd is threaded): UTC offsets, the
 * mapping of local wall times back to UTC, and the civil calendar. */
#ifndef JOBD_TZ_H
#define JOBD_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TZ_NAME_MAX 255
#define TZ_DIR_DEFAULT "/usr/share/zoneinfo"

typedef struct tz_zone tz_zone;

/* True when name may name a zone file: 1..TZ_NAME_MAX of [A-Za-z0-9_+.-] in
 * components split by "/", none empty (no leading "/"), "." or "..". */
bool tz_name_ok(const char *name);

/* Loads zone name ("Europe/Berlin"; "UTC" needs no file) from dir (NULL =
 * TZ_DIR_DEFAULT). A new zone (free with tz_free), or NULL with err naming
 * the zone and why, e.g. `unknown time zone "Mars/Base"`. */
tz_zone *tz_load(const char *name, const char *dir, char *err, size_t errlen);

/* Frees z. NULL is fine. */
void tz_free(tz_zone *z);

/* The zone's name as loaded (borrowed from z). */
const char *tz_zone_name(const tz_zone *z);

/* Seconds east of UTC in effect at unix time t (seconds). */
int tz_offset(const tz_zone *z, int64_t t);

/* The unix time (seconds) at which the clocks of z show wall (local civil
 * seconds since 1970-01-01 00:00 as if it were UTC). A wall time shown twice
 * (fall-back) gives the first; one never shown (spring-forward gap) gives
 * the instant of the jump, when the clocks pass it. */
int64_t tz_wall_to_utc(const tz_zone *z, int64_t wall);

/* As tz_wall_to_utc, but a wall time shown twice (fall-back) gives the
 * second showing. */
int64_t tz_wall_to_utc_last(const tz_zone *z, int64_t wall);

/* Days since 1970-01-01 of the civil date y-m-d (proleptic Gregorian). */
int64_t tz_days_from_civil(int64_t y, int m, int d);

/* The civil date of days since 1970-01-01 into y, m (1-12), d (1-31). */
void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

/* Day of the week of days since 1970-01-01: 0 = Sunday .. 6 = Saturday. */
int tz_weekday(int64_t days);

/* Days in month m (1-12) of year y. */
int tz_month_days(int64_t y, int m);

#endif
