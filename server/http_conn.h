/* http_conn.h - what the files of the HTTP daemon share (http.c: the daemon
 * and the life of a request; http_answer.c: answers; http_check.c: checks
 * common to every route; http_sweep.c: the request-head deadline). Private
 * to server/http*.c: handlers see http.h only. */
#ifndef JOBD_HTTP_CONN_H
#define JOBD_HTTP_CONN_H

#include <microhttpd.h>
#include <openssl/sha.h>
#include <stdatomic.h>

#include "../util/list.h"
#include "http.h"
#include "tls.h"

#define HTTP_CONN_TIMEOUT_S 30u
#define HTTP_CONN_LIMIT 4096u
/* How often the head-deadline sweeper looks at the open connections. */
#define HTTP_SWEEP_MS 200
/* With this many connections open, a head gets at most HTTP_HEAD_PRESSED_MS:
 * slow heads from many addresses (each within its per-address limit) could
 * otherwise hold every connection for the whole header_timeout. */
#define HTTP_CONN_PRESSURE (HTTP_CONN_LIMIT * 3u / 4u)
#define HTTP_HEAD_PRESSED_MS 1000
/* MHD zeroes a connection's whole memory pool for every request, so its size
 * is paid per request. The pool only holds headers and the read buffer (the
 * body is copied into our own buffer), and 16 KiB still takes ~15 KiB of
 * headers; 64 KiB cost a third of a submission's instructions. */
#define HTTP_CONN_MEMORY (16u * 1024u)
/* The largest request head jobd serves, so that the answer's headers still
 * fit in the pool beside it (MHD keeps the head there until the request is
 * answered, and a pool too full for the answer closed the connection without
 * one, after the job was stored). A head costs its bytes plus about this much
 * per header, cookie and query argument (MHD's record of each); both measured
 * on MHD 0.9.75. */
#define HTTP_HEAD_MAX (HTTP_CONN_MEMORY - 1024u)
#define HTTP_HEADER_COST 64u
/* Unaccounted bytes in a head from which it is refused (http_head_folded):
 * one fold leaves at least 3 (CRLF and a blank). */
#define HTTP_HEAD_SLACK 3u
/* jansson's parser recurses once per nesting level up to 2048 levels. */
#define HTTP_STACK_SIZE (4u * 1024u * 1024u)
/* How long http_stop lets suspended submissions wait for their store, and
 * then how long it gives the ones it had to resume to send their 503. */
#define HTTP_DRAIN_MS 2000
#define HTTP_FLUSH_MS 500
#define HTTP_JSON_TYPE "application/json; charset=utf-8"
#define HTTP_BODY_START 1024u /* first buffer for a body of unknown size */
/* Finished requests kept for the next ones, at most this many: a request is
 * just over the 1 KiB up to which glibc serves blocks from a per-thread
 * cache, and allocating one elsewhere made malloc consolidate its free lists
 * for every request. */
#define HTTP_SPARE_MAX 256u

typedef struct http_conn http_conn;

/* How far MHD has taken one request, in this order. */
typedef enum http_phase {
    HTTP_PHASE_TARGET = 0, /* the request line is in (http_uri_seen), not the head */
    HTTP_PHASE_HEAD,       /* the access handler saw the head: checks, body, dispatch */
    HTTP_PHASE_SENT        /* a response was queued (or sent raw) */
} http_phase;

/* One open connection, as the head-deadline sweeper sees it. MHD tells us of
 * its close before it closes the socket, and the record leaves the list under
 * socks_mu then, so the sweeper never shuts down a socket number reused by a
 * later connection. The deadline is atomic rather than under socks_mu so that
 * the two updates of every request do not contend on one lock. */
typedef struct http_sock {
    list_node node; /* in srv->socks; under socks_mu */
    int fd;
    _Atomic int64_t head_since_ms; /* mono ms the head began; 0 = no head being read */
} http_sock;

struct http_server {
    jobd_t *ctx;
    const http_route *routes; /* borrowed, ROUTE_COUNT of them (http_start) */
    struct MHD_Daemon *daemon;
    int port;
    unsigned char (*token_digests)[SHA256_DIGEST_LENGTH]; /* owned, one per cfg token */
    unsigned *token_scopes; /* owned, the auth_scope mask of each token */
    size_t n_tokens;
    tls_pem tls;            /* HTTPS: owned PEM texts MHD serves from; empty = plain HTTP */
    ulid_gen request_ids; /* for requests without a usable X-Request-Id of their own */
    /* Suspended connections, so http_stop can resume every one of them
     * (MHD_stop_daemon must not meet a suspended connection), and the count
     * of awaited requests MHD has not finished, so it can let their answers
     * go out first. */
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when n_awaited drops to 0 */
    list_t suspended; /* of http_conn.node */
    size_t n_awaited;
    http_conn *spare; /* finished requests to reuse, linked by next; under mu */
    size_t n_spare;
    /* The request-head deadline: every open connection, and the thread that
     * shuts down the ones whose head is late (slowloris). */
    pthread_mutex_t socks_mu;
    pthread_cond_t sweep_cv; /* signalled to stop the sweeper */
    list_t socks; /* of http_sock.node; under socks_mu */
    bool sweeping; /* under socks_mu; false tells the sweeper to end */
    bool sweeper_started;
    pthread_t sweeper;
    int64_t head_timeout_ms;
};

/* One request. http_req comes first: handlers get &conn->req and http.c gets
 * the rest back with a cast. */
struct http_conn {
    http_req req;
    http_server_t *srv;
    list_node node;         /* in srv->suspended; guarded by srv->mu */
    http_conn *next;        /* in srv->spare; guarded by srv->mu */
    bool listed;            /* guarded by srv->mu */
    bool awaited;           /* counted in n_awaited; only the connection's MHD thread
                             * changes it (under srv->mu, which others read it with) */
    bool keep_body;         /* the route parses the body */
    size_t declared;        /* http_declared_body, read once */
    http_phase phase;       /* only the connection's MHD thread reads or changes it */
    bool bad_target;        /* the raw request target holds a control character */
    size_t target_len;      /* of the raw request target */
    const char *version;    /* borrowed from MHD, e.g. "HTTP/1.1" */
    int64_t begun_ms;       /* mono ms the head was in, for the request's log line */
    size_t body_cap;
    int64_t began_us;       /* jobd_mono_us when the head was in, for jobd_http_request_seconds */
};

static inline http_conn *http_conn_of(http_req *req)
{
    return (http_conn *)req;
}

/* http_answer.c */

/* Answers 404 not_found. */
void http_not_found(http_req *req);

/* Queues the request's answer with MHD. MHD_NO (connection dropped) when out of memory. */
enum MHD_Result http_send(http_conn *c);

/* Writes the error answer straight on the socket with Connection: close and
 * returns MHD_NO, so MHD closes the connection: for what MHD cannot send (no
 * room left in the pool, or an answer in the middle of a body). */
enum MHD_Result http_send_raw(http_conn *c);

/* Logs that a request was dropped for want of memory; MHD_NO. */
enum MHD_Result http_oom_drop(void);

/* http_check.c */

/* The body size the head announces: Content-Length (SIZE_MAX when it does not
 * parse), SIZE_MAX with a Transfer-Encoding, 0 with neither. */
size_t http_declared_body(http_conn *c);

/* Runs the checks common to every route on a request whose head is in; a
 * failed one sets the answer (req->answered). A submission that passes them
 * gets keep_body set: its body is read. */
void http_check(http_conn *c);

/* http_sweep.c */

/* ts = CLOCK_MONOTONIC now + ms, for pthread_cond_timedwait on our conds. */
void http_abstime(int64_t ms, struct timespec *ts);

/* Starts (reading_head) or stops the head clock of conn's connection. */
void http_sock_arm(http_server_t *srv, struct MHD_Connection *conn, bool reading_head);

/* MHD's connection notification: lists or unlists the connection's socket. */
void http_sock_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe);

/* Starts the thread that shuts down connections whose head is late. 0 or -1. */
int http_sweeper_start(http_server_t *srv);

/* Stops and joins it. */
void http_sweeper_stop(http_server_t *srv);

#endif
