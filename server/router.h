/* router.h - maps method + path to a route (pure: no I/O, unit-tested). */
#ifndef JOBD_ROUTER_H
#define JOBD_ROUTER_H

#include "jobd.h"

typedef enum route_id {
    ROUTE_NOT_FOUND = 0,     /* 404 not_found */
    ROUTE_METHOD_NOT_ALLOWED,/* 405, allow says which methods */
    ROUTE_HEALTHZ,           /* GET /healthz */
    ROUTE_READYZ,            /* GET /readyz */
    ROUTE_METRICS,           /* GET /metrics */
    ROUTE_DASHBOARD,         /* GET / */
    ROUTE_QUEUES,            /* GET /queues */
    ROUTE_QUEUE,             /* GET /queues/{q} */
    ROUTE_QUEUE_PAUSE,       /* POST /queues/{q}/pause */
    ROUTE_QUEUE_RESUME,      /* POST /queues/{q}/resume */
    ROUTE_JOBS_SUBMIT,       /* POST /queues/{q}/jobs */
    ROUTE_JOBS_LIST,         /* GET /queues/{q}/jobs */
    ROUTE_JOB_GET,           /* GET /queues/{q}/jobs/{id} */
    ROUTE_JOB_CANCEL,        /* DELETE /queues/{q}/jobs/{id} */
    ROUTE_DEAD_LIST,         /* GET /queues/{q}/dead */
    ROUTE_DEAD_RETRY,        /* POST /queues/{q}/dead/{id}/retry */
    ROUTE_DEAD_DELETE,       /* DELETE /queues/{q}/dead/{id} */
    ROUTE_PERIODIC,          /* GET /periodic */
    ROUTE_PERIODIC_TRIGGER,  /* POST /periodic/{name}/trigger */
    ROUTE_COUNT              /* not a route: the size of a table indexed by route_id */
} route_id;

typedef struct route_match {
    route_id route;
    char queue[QUEUE_NAME_MAX + 1]; /* "" when the path has none; for /periodic/{name}
                                     * the schedule's name (named like queues) */
    bool queue_ok;                  /* queue segment matches [A-Za-z0-9_-]{1,64} */
    char id[JOB_ID_MAX + 1];        /* "" when the path has none */
    bool id_ok;                     /* id segment is a valid job id */
    char allow[64];                 /* for 405: e.g. "GET, POST" */
} route_match;

/* Matches method (e.g. "GET"; HEAD is treated as GET) and path (already
 * percent-decoded, without query string) into m. Always fills m->route.
 * A segment too long for queue/id gives queue_ok/id_ok false, not a crash. */
void router_match(const char *method, const char *path, route_match *m);

#endif
