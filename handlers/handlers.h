/* handlers.h - one function per route, one file per HTTP resource. Each reads
 * the request and sets the answer through http.h's helpers. */
#ifndef JOBD_HANDLERS_H
#define JOBD_HANDLERS_H

#include "../server/http.h"

/* handlers/jobs.c */
void handle_jobs_submit(http_req *req);
void handle_jobs_list(http_req *req);
void handle_job_get(http_req *req);
void handle_job_cancel(http_req *req);

/* handlers/queues.c */
void handle_queues(http_req *req);
void handle_queue(http_req *req);
void handle_queue_pause(http_req *req);
void handle_queue_resume(http_req *req);

/* handlers/dead.c */
void handle_dead_list(http_req *req);
void handle_dead_retry(http_req *req);
void handle_dead_delete(http_req *req);

/* handlers/periodic.c */
void handle_periodic(http_req *req);
void handle_periodic_trigger(http_req *req);

/* handlers/health.c */
void handle_healthz(http_req *req);
void handle_readyz(http_req *req);

/* handlers/metrics.c */
void handle_metrics(http_req *req);

/* handlers/routes.c: the route table http_start serves (ROUTE_COUNT entries). */
extern const http_route handlers_routes[ROUTE_COUNT];

/* handlers/common.c: what several resource files share. */

/* Borrowed queue of the request (http.c has checked it is configured). */
queue_t *handlers_queue(http_req *req);

/* Answers status with body (new reference, stolen) or, when body is NULL,
 * the error in err (a store's failure). */
void handlers_reply(http_req *req, int status, json_t *body, const jobd_error *err);

/* Reads ?limit (1..1000, default 100) and ?cursor (borrowed, NULL = first
 * page). False after answering 400 invalid_parameter. */
bool handlers_page(http_req *req, size_t *limit, const char **cursor);

#endif
