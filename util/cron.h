/* cron.h - standard 5-field cron expressions (as Vixie cron reads them) and
 * their next run in the wall time of a zone (tz.h). */
#ifndef JOBD_CRON_H
#define JOBD_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tz.h"

/* A parsed expression: one bit per allowed value of each field. */
typedef struct cron_expr {
    uint64_t minute; /* bits 0-59 */
    uint32_t hour;   /* bits 0-23 */
    uint32_t dom;    /* bits 1-31 */
    uint16_t month;  /* bits 1-12 */
    uint8_t dow;     /* bits 0-6, Sunday = 0 (7 is read as 0) */
    bool dom_star, dow_star; /* the field starts with '*' (the OR rule, cron_next_wall) */
    bool wild; /* the minute or hour field starts with '*' (Vixie's wildcard jobs, cron_next) */
} cron_expr;

/* Parses text: five fields "min hour dom month dow" (numbers, ranges a-b,
 * lists, steps "*\/n" and "a-b/n", names JAN-DEC and SUN-SAT in any case, 7 =
 * Sunday) or an alias (@yearly @annually @monthly @weekly @daily @midnight
 * @hourly). 0, or -1 with why in err, e.g. `field 2 (hour): 24 is out of range 0-23`. */
int cron_parse(const char *text, cron_expr *out, char *err, size_t errlen);

/* The first wall time (local civil seconds, tz.h) strictly after wall, on a
 * whole minute, that e matches; -1 when none within 10 years (e.g. 30 Feb).
 * A day matches when both day fields do, except that when neither starts
 * with '*' either one is enough (Vixie cron). */
int64_t cron_next_wall(const cron_expr *e, int64_t wall);

/* The first unix time (seconds) strictly after t at which e runs in zone z,
 * with Vixie cron's DST rules. A fixed-time expression (minute and hour
 * fields not starting with '*') runs each matching wall time once: at its
 * first showing when a fall-back repeats it, and at the jump when a
 * spring-forward skips it (wall times skipped by one jump all run at that
 * instant, once). A wildcard one (e->wild, @hourly included) follows the
 * clocks as they show: skipped wall times do not run, repeated ones run at
 * each showing. -1 when none. */
int64_t cron_next(const cron_expr *e, const tz_zone *z, int64_t t);

#endif
