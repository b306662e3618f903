/* routes.c - the route table: which handler answers each route of router.h,
 * and what http.c checks before it calls one. */
#include "handlers.h"

/* NOT_FOUND, METHOD_NOT_ALLOWED and the routes not served yet (dashboard)
 * have no handler: http.c answers those itself, the dashboard after the auth
 * check of its scope. The scopes are README's (Auth). */
const http_route handlers_routes[ROUTE_COUNT] = {
    [ROUTE_HEALTHZ] = {handle_healthz, false, false, true, 0},
    [ROUTE_READYZ] = {handle_readyz, false, false, true, 0},
    [ROUTE_METRICS] = {handle_metrics, false, false, false, SCOPE_METRICS},
    [ROUTE_DASHBOARD] = {NULL, false, false, false, SCOPE_READ},
    [ROUTE_QUEUES] = {handle_queues, false, false, false, SCOPE_READ},
    [ROUTE_QUEUE] = {handle_queue, true, false, false, SCOPE_READ},
    [ROUTE_QUEUE_PAUSE] = {handle_queue_pause, true, false, false, SCOPE_ADMIN},
    [ROUTE_QUEUE_RESUME] = {handle_queue_resume, true, false, false, SCOPE_ADMIN},
    [ROUTE_JOBS_SUBMIT] = {handle_jobs_submit, true, false, false, SCOPE_SUBMIT},
    [ROUTE_JOBS_LIST] = {handle_jobs_list, true, false, false, SCOPE_READ},
    [ROUTE_JOB_GET] = {handle_job_get, true, true, false, SCOPE_READ},
    [ROUTE_JOB_CANCEL] = {handle_job_cancel, true, true, false, SCOPE_ADMIN},
    [ROUTE_DEAD_LIST] = {handle_dead_list, true, false, false, SCOPE_READ},
    [ROUTE_DEAD_RETRY] = {handle_dead_retry, true, true, false, SCOPE_ADMIN},
    [ROUTE_DEAD_DELETE] = {handle_dead_delete, true, true, false, SCOPE_ADMIN},
    [ROUTE_PERIODIC] = {handle_periodic, false, false, false, SCOPE_READ},
    [ROUTE_PERIODIC_TRIGGER] = {handle_periodic_trigger, false, false, false, SCOPE_ADMIN},
};
