/* routes.c - the route table: which handler answers each route of router.h,
 * and what http.c checks before it calls one. */
#include "handlers.h"

/* NOT_FOUND, METHOD_NOT_ALLOWED and the routes not served yet (metrics,
 * dashboard) have no handler: http.c answers those itself. */
const http_route handlers_routes[ROUTE_COUNT] = {
    [ROUTE_HEALTHZ] = {handle_healthz, false, false, true},
    [ROUTE_READYZ] = {handle_readyz, false, false, true},
    [ROUTE_QUEUES] = {handle_queues, false, false, false},
    [ROUTE_QUEUE] = {handle_queue, true, false, false},
    [ROUTE_QUEUE_PAUSE] = {handle_queue_pause, true, false, false},
    [ROUTE_QUEUE_RESUME] = {handle_queue_resume, true, false, false},
    [ROUTE_JOBS_SUBMIT] = {handle_jobs_submit, true, false, false},
    [ROUTE_JOBS_LIST] = {handle_jobs_list, true, false, false},
    [ROUTE_JOB_GET] = {handle_job_get, true, true, false},
    [ROUTE_JOB_CANCEL] = {handle_job_cancel, true, true, false},
    [ROUTE_DEAD_LIST] = {handle_dead_list, true, false, false},
    [ROUTE_DEAD_RETRY] = {handle_dead_retry, true, true, false},
    [ROUTE_DEAD_DELETE] = {handle_dead_delete, true, true, false},
    [ROUTE_PERIODIC] = {handle_periodic, false, false, false},
    [ROUTE_PERIODIC_TRIGGER] = {handle_periodic_trigger, false, false, false},
};
