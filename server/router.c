/* router.c - method + path to route id, from one table of rules. */
#include "router.h"

#include <stdio.h>
#include <string.h>

#include "../util/name.h"

#define ROUTER_MAX_SEGS 5

/* Placeholders in a rule's pattern. Their position is fixed by the API:
 * the queue is always segment 1, the job id always segment 3. A periodic
 * schedule's name, named like a queue, is segment 1 too (route_match.queue). */
#define SEG_QUEUE "{queue}"
#define SEG_NAME "{name}"
#define SEG_ID "{id}"
#define QUEUE_SEG 1
#define ID_SEG 3

typedef struct route_rule {
    const char *method;
    const char *pattern[ROUTER_MAX_SEGS + 1]; /* NULL-terminated segments */
    route_id route;
} route_rule;

/* For each path, the rules are listed in the order their methods appear in
 * a 405's Allow header. */
static const route_rule router_rules[] = {
    {"GET", {NULL}, ROUTE_DASHBOARD},
    {"GET", {"healthz", NULL}, ROUTE_HEALTHZ},
    {"GET", {"readyz", NULL}, ROUTE_READYZ},
    {"GET", {"metrics", NULL}, ROUTE_METRICS},
    {"GET", {"queues", NULL}, ROUTE_QUEUES},
    {"GET", {"queues", SEG_QUEUE, NULL}, ROUTE_QUEUE},
    {"POST", {"queues", SEG_QUEUE, "pause", NULL}, ROUTE_QUEUE_PAUSE},
    {"POST", {"queues", SEG_QUEUE, "resume", NULL}, ROUTE_QUEUE_RESUME},
    {"GET", {"queues", SEG_QUEUE, "jobs", NULL}, ROUTE_JOBS_LIST},
    {"POST", {"queues", SEG_QUEUE, "jobs", NULL}, ROUTE_JOBS_SUBMIT},
    {"GET", {"queues", SEG_QUEUE, "jobs", SEG_ID, NULL}, ROUTE_JOB_GET},
    {"DELETE", {"queues", SEG_QUEUE, "jobs", SEG_ID, NULL}, ROUTE_JOB_CANCEL},
    {"GET", {"queues", SEG_QUEUE, "dead", NULL}, ROUTE_DEAD_LIST},
    {"DELETE", {"queues", SEG_QUEUE, "dead", SEG_ID, NULL}, ROUTE_DEAD_DELETE},
    {"POST", {"queues", SEG_QUEUE, "dead", SEG_ID, "retry", NULL}, ROUTE_DEAD_RETRY},
    {"GET", {"periodic", NULL}, ROUTE_PERIODIC},
    {"POST", {"periodic", SEG_NAME, "trigger", NULL}, ROUTE_PERIODIC_TRIGGER},
};

typedef struct segment {
    const char *p;
    size_t len;
} segment;

/* Splits "/a/b" into segments. -1 for what no rule can match: no leading
 * slash, an empty segment ("//", trailing "/"), or too many segments. */
static int router_split(const char *path, segment *segs, size_t *n)
{
    *n = 0;
    if (path[0] != '/')
        return -1;
    if (path[1] == '\0')
        return 0; /* "/": zero segments */
    const char *p = path + 1;
    for (;;) {
        size_t len = strcspn(p, "/");
        if (len == 0 || *n == ROUTER_MAX_SEGS)
            return -1;
        segs[(*n)++] = (segment){p, len};
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

static bool router_path_matches(const route_rule *r, const segment *segs, size_t n)
{
    size_t i = 0;
    for (; r->pattern[i] != NULL; i++) {
        if (i == n)
            return false;
        const char *pat = r->pattern[i];
        if (pat[0] == '{') /* SEG_QUEUE, SEG_NAME or SEG_ID: any segment */
            continue;
        if (strncmp(pat, segs[i].p, segs[i].len) != 0 || pat[segs[i].len] != '\0')
            return false;
    }
    return i == n;
}

/* Copies seg into out (max chars + NUL) and validates it; a segment that does
 * not fit leaves out empty and is invalid. */
static bool router_capture(const segment *seg, char *out, size_t max, bool (*valid)(const char *))
{
    out[0] = '\0';
    if (seg->len > max)
        return false;
    memcpy(out, seg->p, seg->len);
    out[seg->len] = '\0';
    return valid(out);
}

static void router_allow_add(route_match *m, const char *method)
{
    size_t used = strlen(m->allow);
    snprintf(m->allow + used, sizeof m->allow - used, "%s%s", used ? ", " : "", method);
}

/* The Allow text of a 405: the methods of every rule of the path. Built only
 * then, since formatting it costs more than the match itself. */
static void router_allow(const segment *segs, size_t n, route_match *m)
{
    for (size_t i = 0; i < sizeof router_rules / sizeof router_rules[0]; i++)
        if (router_path_matches(&router_rules[i], segs, n))
            router_allow_add(m, router_rules[i].method);
}

void router_match(const char *method, const char *path, route_match *m)
{
    memset(m, 0, sizeof *m);
    m->route = ROUTE_NOT_FOUND;
    segment segs[ROUTER_MAX_SEGS];
    size_t n;
    if (method == NULL || path == NULL || router_split(path, segs, &n) != 0)
        return;
    if (strcmp(method, "HEAD") == 0)
        method = "GET";

    bool path_known = false;
    for (size_t i = 0; i < sizeof router_rules / sizeof router_rules[0]; i++) {
        const route_rule *r = &router_rules[i];
        if (!router_path_matches(r, segs, n))
            continue;
        path_known = true;
        if (strcmp(r->method, method) == 0) {
            m->route = r->route;
            break;
        }
    }
    if (!path_known)
        return;
    if (m->route == ROUTE_NOT_FOUND) {
        m->route = ROUTE_METHOD_NOT_ALLOWED;
        router_allow(segs, n, m);
    }
    if (n > QUEUE_SEG)
        m->queue_ok = router_capture(&segs[QUEUE_SEG], m->queue, QUEUE_NAME_MAX,
                                     name_queue_ok);
    if (n > ID_SEG)
        m->id_ok = router_capture(&segs[ID_SEG], m->id, JOB_ID_MAX, name_id_ok);
}
