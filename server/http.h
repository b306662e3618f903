/* http.h - the HTTP daemon (libmicrohttpd) and the request/response helpers
 * that resource handlers (handlers/) use. */
#ifndef JOBD_HTTP_H
#define JOBD_HTTP_H

#include "config.h"
#include "jobd.h"
#include "router.h"

typedef struct http_req http_req;

/* Where an asynchronous answer stands (http_await / http_complete), under
 * http_req.mu. NONE -> SUSPENDED (await) -> COMPLETED (complete), or NONE ->
 * COMPLETED when the store answered before the handler awaited; SUSPENDED
 * falls back to NONE when MHD is done with the connection (closed, or
 * http_stop), and the later http_complete then frees the request. */
typedef enum http_await_state {
    HTTP_AWAIT_NONE = 0,  /* not suspended, not completed */
    HTTP_AWAIT_SUSPENDED, /* the handler awaits; MHD holds the connection suspended */
    HTTP_AWAIT_COMPLETED  /* http_complete was called: the answer can be built */
} http_await_state;

/* Called on a suspended request once http_complete() was called: builds the
 * answer with http_json/http_error. Runs on an HTTP thread. */
typedef void (*http_resume_fn)(http_req *req);

struct http_req {
    jobd_t *ctx;
    struct MHD_Connection *conn;
    const char *method;     /* borrowed from MHD */
    const char *url;        /* borrowed, decoded path */
    char request_id[TRACE_REQUEST_ID_MAX + 1]; /* X-Request-Id of the answer (the client's
                                                * when safe, else a ULID); "" before the head */
    route_match m;
    char *body;             /* owned by http.c, NUL-terminated */
    size_t body_len;
    /* the answer */
    int status;
    json_t *resp;           /* owned; NULL = no body (e.g. 204) */
    char *resp_text;        /* owned; a non-JSON body (metrics, dashboard) */
    const char *resp_type;  /* content type of resp_text */
    char location[512];     /* "" = no Location header */
    char allow[64];         /* "" = no Allow header */
    int retry_after;        /* 0 = no Retry-After header */
    bool www_auth;          /* add WWW-Authenticate: Bearer */
    bool close;             /* add Connection: close (the head's framing is not trusted) */
    bool answered;
    const char *err_code;   /* static: the code of an error answer (http_error), else NULL */
    /* asynchronous answers (submissions waiting for their store) */
    pthread_mutex_t mu;
    http_await_state await; /* under mu */
    http_resume_fn on_resume;
    void *async;            /* the handler's own state for the suspended request */
    void (*async_free)(void *async);
};

/* Answers one request (a handler of handlers/): sets the answer through
 * http_json/http_error, or calls http_await. */
typedef void (*http_handler_fn)(http_req *req);

/* What http.c does for one route_id before and when it dispatches. The table
 * lives above (handlers/routes.c), so the daemon knows no handler. */
typedef struct http_route {
    http_handler_fn handle; /* builds the answer; NULL = 404 not_found (not served) */
    bool has_queue;         /* path holds /queues/{queue}: 404 unknown_queue before handle */
    bool has_id;            /* path holds a job id: 404 unknown_job when malformed */
    bool open;              /* no auth needed */
    unsigned scope;         /* auth_scope the token needs; 0 on a route not open = every scope */
} http_route;

/* Starts the daemon on cfg listen address with cfg http_threads threads in
 * epoll mode, with connection timeout, memory and connection limits, serving
 * routes (borrowed, indexed by route_id, ROUTE_COUNT entries; it must outlive
 * the server). Returns a new server or NULL (logged). */
http_server_t *http_start(jobd_t *ctx, const http_route *routes);

/* Stops accepting, resumes suspended connections, stops and frees. NULL is fine. */
void http_stop(http_server_t *srv);

/* The port the daemon listens on (useful with port 0). */
int http_port(http_server_t *srv);

/* Sets the answer: status and a JSON body (stolen reference, may be NULL). */
void http_json(http_req *req, int status, json_t *body);

/* Sets the error answer of openapi.json (Error): {"error": {"code","message","field"?,"index"?}},
 * with Retry-After when err->retry_after > 0. */
void http_error(http_req *req, const jobd_error *err);

/* Shorthand: http_error with a fresh error. */
void http_errorf(http_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Value of a request header (case-insensitive), borrowed, or NULL. */
const char *http_header(http_req *req, const char *name);

/* The values of every request header called name (case-insensitive), joined
 * with ',' into buf as HTTP allows for list headers: buf, or NULL when there
 * is none or they do not fit in size bytes. */
const char *http_header_join(http_req *req, const char *name, char *buf, size_t size);

/* Value of a query argument, borrowed, or NULL. */
const char *http_query(http_req *req, const char *name);

/* Asks http.c to suspend the request until http_complete(req) is called, then
 * to call on_resume(req) to build the answer. Call from the handler only.
 * If http_complete was already called, on_resume runs at once. */
void http_await(http_req *req, http_resume_fn on_resume);

/* Marks an awaited request complete and resumes it. Any thread, once. */
void http_complete(http_req *req);

/* Sets the answer: status and a body text (new memory, stolen) of content
 * type (static), e.g. the metrics. NULL text (out of memory) answers 500. */
void http_text(http_req *req, int status, char *text, const char *type);

/* Sets the answer: status and a body that is JSON text already (new memory,
 * stolen), for answers built without a jansson tree. NULL (out of memory)
 * answers 500. */
void http_json_raw(http_req *req, int status, char *text);

#endif
