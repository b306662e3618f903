/* http.c - the libmicrohttpd daemon: the life of one request (checks common to
 * every route, body reading, dispatch, answer) and asynchronous answers
 * through suspend/resume. Handlers only see http_req. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../handlers/handlers.h"
#include "../util/utf8.h"
#include "config.h"
#include "log.h"

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

/* One open connection, as the head-deadline sweeper sees it. MHD tells us of
 * its close before it closes the socket, and the record leaves the list under
 * socks_mu then, so the sweeper never shuts down a socket number reused by a
 * later connection. The deadline is atomic rather than under socks_mu so that
 * the two updates of every request do not contend on one lock. */
typedef struct http_sock {
    struct http_sock *prev, *next; /* in srv->socks; under socks_mu */
    int fd;
    _Atomic int64_t head_since_ms; /* mono ms the head began; 0 = no head being read */
} http_sock;

struct http_server {
    jobd_t *ctx;
    struct MHD_Daemon *daemon;
    int port;
    unsigned char (*token_digests)[SHA256_DIGEST_LENGTH]; /* owned, one per cfg token */
    size_t n_tokens;
    /* Suspended connections, so http_stop can resume every one of them
     * (MHD_stop_daemon must not meet a suspended connection), and the count
     * of awaited requests MHD has not finished, so it can let their answers
     * go out first. */
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when n_awaited drops to 0 */
    http_conn *suspended;
    size_t n_awaited;
    http_conn *spare; /* finished requests to reuse, linked by next; under mu */
    size_t n_spare;
    /* The request-head deadline: every open connection, and the thread that
     * shuts down the ones whose head is late (slowloris). */
    pthread_mutex_t socks_mu;
    pthread_cond_t sweep_cv; /* signalled to stop the sweeper */
    http_sock *socks;
    size_t n_socks; /* listed in socks; under socks_mu */
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
    http_conn *prev, *next; /* in srv->suspended; guarded by srv->mu */
    bool listed;            /* guarded by srv->mu */
    bool awaited;           /* counted in n_awaited; only the connection's MHD thread
                             * changes it (under srv->mu, which others read it with) */
    bool keep_body;         /* the route parses the body */
    size_t declared;        /* http_declared_body, read once */
    bool sent;              /* a response was queued */
    bool begun;             /* the access handler saw the request's head */
    bool bad_target;        /* the raw request target holds a control character */
    size_t target_len;      /* of the raw request target */
    const char *version;    /* borrowed from MHD, e.g. "HTTP/1.1" */
    size_t body_cap;
};

typedef struct http_route {
    void (*handle)(http_req *req);
    bool has_queue; /* path holds /queues/{queue} */
    bool has_id;    /* path holds a job id */
    bool open;      /* no auth needed */
} http_route;

static void http_not_found(http_req *req);

/* Indexed by route_id; NOT_FOUND and METHOD_NOT_ALLOWED never dispatch. */
static const http_route http_routes[] = {
    [ROUTE_HEALTHZ] = {handle_healthz, false, false, true},
    [ROUTE_READYZ] = {handle_readyz, false, false, true},
    [ROUTE_METRICS] = {http_not_found, false, false, false},
    [ROUTE_DASHBOARD] = {http_not_found, false, false, false},
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
};

static http_conn *http_conn_of(http_req *req)
{
    return (http_conn *)req;
}

/* ---- answers ---------------------------------------------------------- */

void http_json(http_req *req, int status, json_t *body)
{
    json_decref(req->resp);
    req->resp = body;
    req->status = status;
    req->answered = true;
}

void http_json_raw(http_req *req, int status, char *text)
{
    if (!text) {
        http_errorf(req, 500, "internal_error", "out of memory");
        return;
    }
    json_decref(req->resp);
    req->resp = NULL;
    free(req->resp_text);
    req->resp_text = text;
    req->resp_type = HTTP_JSON_TYPE;
    req->status = status;
    req->answered = true;
}

/* Messages may quote client input cut at a byte limit, i.e. inside a UTF-8
 * sequence, which jansson refuses: utf8_json_string turns such bytes into
 * '?' rather than losing the whole error body. */
void http_error(http_req *req, const jobd_error *err)
{
    const char *code = err->code ? err->code : "internal_error";
    json_t *e = json_pack("{s:s, s:o}", "code", code, "message", utf8_json_string(err->message));
    if (e && err->field[0])
        json_object_set_new(e, "field", utf8_json_string(err->field));
    if (e && err->index >= 0)
        json_object_set_new(e, "index", json_integer(err->index));
    http_json(req, err->status ? err->status : 500, e ? json_pack("{s:o}", "error", e) : NULL);
    req->retry_after = err->retry_after;
}

void http_errorf(http_req *req, int status, const char *code, const char *fmt, ...)
{
    jobd_error err = {.status = status, .code = code, .index = -1};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    http_error(req, &err);
}

const char *http_header(http_req *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *http_query(http_req *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name)
                     : NULL;
}

static void http_not_found(http_req *req)
{
    http_errorf(req, 404, "not_found", "no such resource");
}

static bool http_add_header(struct MHD_Response *r, const char *name, const char *value)
{
    return MHD_add_response_header(r, name, value) == MHD_YES;
}

/* The answer's body as new memory for MHD to free, its length and type. */
static char *http_body_text(http_req *req, size_t *len, const char **type)
{
    char *text = NULL;
    *type = NULL;
    if (req->resp) {
        text = json_dumps(req->resp, JSON_COMPACT);
        *type = HTTP_JSON_TYPE;
    } else if (req->resp_text) {
        text = req->resp_text;
        req->resp_text = NULL;
        *type = req->resp_type;
    }
    *len = text ? strlen(text) : 0;
    return text;
}

static struct MHD_Response *http_build_response(http_req *req)
{
    size_t len;
    const char *type;
    char *text = http_body_text(req, &len, &type);
    struct MHD_Response *r =
        text ? MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(text);
        return NULL;
    }
    char num[24] = "";
    if (req->retry_after > 0)
        snprintf(num, sizeof num, "%d", req->retry_after);
    bool ok = (!type || http_add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type)) &&
              (!req->location[0] || http_add_header(r, MHD_HTTP_HEADER_LOCATION, req->location)) &&
              (!req->allow[0] || http_add_header(r, MHD_HTTP_HEADER_ALLOW, req->allow)) &&
              (req->retry_after <= 0 || http_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, num)) &&
              (!req->www_auth || http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer")) &&
              (!req->close || http_add_header(r, MHD_HTTP_HEADER_CONNECTION, "close"));
    if (!ok) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* Writes the error answer straight to the socket, with Connection: close,
 * and returns MHD_NO so that MHD closes the connection. For the two answers
 * MHD cannot send itself: one to a head that leaves no room in the pool for
 * the answer's headers, and one in the middle of a body (MHD queues answers
 * only before the body or after all of it). A few hundred bytes on a socket
 * whose send buffer holds nothing of ours yet are written whole. */
static enum MHD_Result http_send_raw(http_conn *c)
{
    http_req *req = &c->req;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    size_t len;
    const char *type;
    char *body = http_body_text(req, &len, &type);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     req->status, MHD_get_reason_phrase_for((unsigned)req->status),
                     type ? type : HTTP_JSON_TYPE, len);
    if (ci && body && n > 0 && (size_t)n < sizeof head) {
        struct iovec iov[2] = {{head, (size_t)n}, {body, len}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        if (sendmsg(ci->connect_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_event(LOG_WARN, "http.raw_answer", NULL, "cannot send the %d answer: %s",
                      req->status, strerror(errno));
        /* FIN after the answer, so the client reads it before MHD's close */
        shutdown(ci->connect_fd, SHUT_WR);
    }
    free(body);
    c->sent = true;
    return MHD_NO;
}

/* Out of memory for a request: its connection is dropped. */
static enum MHD_Result http_oom_drop(void)
{
    log_event(LOG_ERROR, "http.oom", NULL, "out of memory: connection dropped without an answer");
    return MHD_NO;
}

static enum MHD_Result http_send(http_conn *c)
{
    struct MHD_Response *r = http_build_response(&c->req);
    if (!r)
        return http_oom_drop();
    enum MHD_Result rc = MHD_queue_response(c->req.conn, (unsigned)c->req.status, r);
    MHD_destroy_response(r);
    c->sent = true;
    return rc;
}

/* ---- checks common to every route ----------------------------------- */

/* True when the Authorization header holds one of the configured bearer
 * tokens. Comparing SHA-256 digests with CRYPTO_memcmp, and always against
 * every token, keeps the time independent of where or whether they differ. */
static bool http_authorized(http_conn *c)
{
    const char *h = http_header(&c->req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *token = h + 7;
    token += strspn(token, " ");
    size_t len = strcspn(token, " \t");
    if (len == 0 || token[len + strspn(token + len, " \t")] != '\0')
        return false;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, len, digest);
    bool match = false;
    for (size_t i = 0; i < c->srv->n_tokens; i++)
        match |= CRYPTO_memcmp(digest, c->srv->token_digests[i], sizeof digest) == 0;
    return match;
}

/* application/json, with parameters (charset=...) allowed, any case. */
static bool http_is_json_type(const char *type)
{
    static const char want[] = "application/json";
    if (!type)
        return false;
    type += strspn(type, " \t");
    if (strncasecmp(type, want, sizeof want - 1) != 0)
        return false;
    const char *rest = type + sizeof want - 1;
    rest += strspn(rest, " \t");
    return *rest == '\0' || *rest == ';';
}

/* The body size the client announced: its Content-Length, 0 when it sends
 * none, SIZE_MAX when it is unknown (chunked). */
static size_t http_declared_body(http_conn *c)
{
    const char *cl = http_header(&c->req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        errno = 0;
        unsigned long long v = strtoull(cl, NULL, 10);
        return errno || v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    }
    return http_header(&c->req, MHD_HTTP_HEADER_TRANSFER_ENCODING) ? SIZE_MAX : 0;
}

/* False after answering 404 unknown_queue. */
static bool http_check_queue(http_req *req)
{
    if (!req->m.queue_ok) {
        http_errorf(req, 404, "unknown_queue", "no such queue (names match [A-Za-z0-9_-]{1,64})");
        return false;
    }
    if (!jobd_queue(req->ctx, req->m.queue)) {
        http_errorf(req, 404, "unknown_queue", "no queue \"%s\" is configured", req->m.queue);
        return false;
    }
    return true;
}

/* What http_check_head counts over the request's head. */
typedef struct http_head_stats {
    size_t n_records;  /* headers, cookies and query arguments: one MHD record each */
    size_t n_content_length;
    size_t n_transfer_encoding;
    size_t text; /* bytes of the "Name: value\r\n" header lines, as if written that way */
    size_t copies; /* bytes MHD copies within the pool: Cookie values, parsed from a copy */
} http_head_stats;

/* The kinds of values MHD keeps a record of in the connection's pool. */
#define HTTP_POOL_KINDS (MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND)

static enum MHD_Result http_head_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    http_head_stats *st = cls;
    st->n_records++;
    if (kind != MHD_HEADER_KIND)
        return MHD_YES;
    size_t value_len = value ? strlen(value) : 0;
    st->text += strlen(key) + value_len + 4;
    if (strcasecmp(key, MHD_HTTP_HEADER_COOKIE) == 0)
        st->copies += value_len + 1;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        st->n_content_length++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        st->n_transfer_encoding++;
    return MHD_YES;
}

/* True when the value is exactly "chunked" (any case, blanks around). */
static bool http_is_chunked(const char *te)
{
    static const char want[] = "chunked";
    te += strspn(te, " \t");
    if (strncasecmp(te, want, sizeof want - 1) != 0)
        return false;
    te += sizeof want - 1;
    return te[strspn(te, " \t")] == '\0';
}

/* The request head's size in bytes, request line and final CRLF included. */
static size_t http_head_bytes(http_conn *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->req.conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    return ci ? ci->header_size : 0;
}

/* True when the head holds more bytes than its request line and parsed
 * headers account for, written "Name: value". MHD 0.9.75 glues a folded
 * (obs-fold) line onto the previous header's name, so the fold shows only as
 * its CRLF and leading blank(s) left over; blanks beyond the usual one
 * around values add up the same way, and so are refused too when they reach
 * HTTP_HEAD_SLACK bytes. */
static bool http_head_folded(http_conn *c, const http_head_stats *st)
{
    size_t line = strlen(c->req.method) + 1 + c->target_len + 1 +
                  strlen(c->version ? c->version : "") + 2;
    size_t want = line + st->text + 2;
    size_t bytes = http_head_bytes(c);
    return bytes > want && bytes - want >= HTTP_HEAD_SLACK;
}

/* Sets a 400, 431 or 501 answer when the request head itself cannot be
 * served: a control character in the target, a head that would leave MHD no
 * room for the answer's headers, or body framing that is ambiguous (a
 * request-smuggling risk behind a proxy) or unknown. Such an answer closes
 * the connection, since what follows the head cannot be trusted to be the
 * next request. False after answering. */
static bool http_check_head(http_conn *c)
{
    http_req *req = &c->req;
    http_head_stats st = {0};
    MHD_get_connection_values(req->conn, HTTP_POOL_KINDS, http_head_visit, &st);
    const char *te = http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (c->bad_target)
        http_errorf(req, 400, "bad_request",
                    "the request target holds a control character (raw or percent-encoded)");
    else if (http_head_bytes(c) + st.copies + st.n_records * HTTP_HEADER_COST > HTTP_HEAD_MAX)
        http_errorf(req, 431, "headers_too_large",
                    "the request head takes more than %u bytes (each header, cookie and query "
                    "argument counts %u bytes on top of its text)",
                    HTTP_HEAD_MAX, HTTP_HEADER_COST);
    else if (http_head_folded(c, &st))
        http_errorf(req, 400, "bad_request",
                    "the request head holds bytes no header accounts for: a folded header line, "
                    "or runs of blanks; send each header on one line as \"Name: value\"");
    else if (st.n_content_length > 1)
        http_errorf(req, 400, "bad_request", "more than one Content-Length header");
    else if (st.n_transfer_encoding > 1 || (te && st.n_content_length > 0))
        http_errorf(req, 400, "bad_request",
                    "Transfer-Encoding must come once and without Content-Length");
    else if (te && !http_is_chunked(te))
        http_errorf(req, 501, "not_implemented",
                    "Transfer-Encoding \"%.64s\" is not supported (only chunked)", te);
    else
        return true;
    req->close = true;
    return false;
}

/* Sets an error answer when the request fails a check that does not depend
 * on its body: the head itself, route, method, auth, queue, id, then the
 * body's type and size. */
static void http_check(http_conn *c)
{
    http_req *req = &c->req;
    const route_match *m = &req->m;
    if (!http_check_head(c))
        return;
    if (m->route == ROUTE_NOT_FOUND) {
        http_not_found(req);
        return;
    }
    if (m->route == ROUTE_METHOD_NOT_ALLOWED) {
        http_errorf(req, 405, "method_not_allowed", "method not allowed here; allowed: %s",
                    m->allow);
        snprintf(req->allow, sizeof req->allow, "%s", m->allow);
        return;
    }
    const http_route *r = &http_routes[m->route];
    /* Before the queue and id checks: a caller without a token must not
     * learn which queues exist. */
    if (!r->open && c->srv->n_tokens > 0 && !http_authorized(c)) {
        http_errorf(req, 401, "unauthorized",
                    "a valid 'Authorization: Bearer <token>' is required");
        req->www_auth = true;
        return;
    }
    if (r->has_queue && !http_check_queue(req))
        return;
    if (r->has_id && !m->id_ok) {
        http_errorf(req, 404, "unknown_job",
                    "no such job (ids are 1-%d characters of [A-Za-z0-9._:-])", JOB_ID_MAX);
        return;
    }
    if (m->route != ROUTE_JOBS_SUBMIT)
        return;
    if (!http_is_json_type(http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        http_errorf(req, 415, "unsupported_media_type", "Content-Type must be application/json");
        return;
    }
    if (c->declared != SIZE_MAX && c->declared > req->ctx->cfg->max_body)
        http_errorf(req, 413, "payload_too_large", "the body exceeds %zu bytes",
                    req->ctx->cfg->max_body);
    else
        c->keep_body = true;
}

/* ---- the request's life ----------------------------------------------- */

/* Frees what the request holds, not the request itself. */
static void http_conn_clear(http_conn *c)
{
    http_req *req = &c->req;
    json_decref(req->resp);
    free(req->resp_text);
    free(req->body);
    if (req->async && req->async_free)
        req->async_free(req->async);
    pthread_mutex_destroy(&req->mu);
}

/* For a request whose server may be gone already. */
static void http_conn_free(http_conn *c)
{
    http_conn_clear(c);
    free(c);
}

/* For a request whose server still runs: kept for reuse. */
static void http_conn_recycle(http_conn *c)
{
    http_server_t *srv = c->srv;
    http_conn_clear(c);
    pthread_mutex_lock(&srv->mu);
    if (srv->n_spare < HTTP_SPARE_MAX) {
        c->next = srv->spare;
        srv->spare = c;
        srv->n_spare++;
        c = NULL;
    }
    pthread_mutex_unlock(&srv->mu);
    free(c);
}

/* A new request (a reused one when there is a spare), zeroed, for conn.
 * NULL when out of memory. */
static http_conn *http_conn_new(http_server_t *srv, struct MHD_Connection *conn)
{
    pthread_mutex_lock(&srv->mu);
    http_conn *c = srv->spare;
    if (c) {
        srv->spare = c->next;
        srv->n_spare--;
    }
    pthread_mutex_unlock(&srv->mu);
    if (!c && !(c = malloc(sizeof *c)))
        return NULL;
    memset(c, 0, sizeof *c);
    c->srv = srv;
    http_req *req = &c->req;
    req->ctx = srv->ctx;
    req->conn = conn;
    pthread_mutex_init(&req->mu, NULL);
    return c;
}

/* True when the raw request target holds a control character, as is or
 * percent-encoded: MHD's decoding would cut the path at a %00 (so
 * /queues/local%00evil would name "local"), and CR/LF have no place in an id. */
static bool http_target_has_control(const char *uri)
{
    for (const char *p = uri; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch == 0x7f)
            return true;
        if (ch == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], '\0'};
            long v = strtol(hex, NULL, 16);
            if (v < 0x20 || v == 0x7f)
                return true;
        }
    }
    return false;
}

/* MHD's URI log callback: the request line is in, the headers are not. The
 * request's state starts here because only here the target is seen before
 * decoding. What it returns is the request's con_cls. */
static void *http_uri_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_conn *c = http_conn_new(cls, conn);
    if (c) {
        c->bad_target = http_target_has_control(uri);
        c->target_len = strlen(uri);
    }
    return c;
}

static void http_sock_arm(http_server_t *srv, struct MHD_Connection *conn, bool reading_head);

/* First call for a request: headers are in, the body is not. An error found
 * now is sent at once when a body we would have to drain is big or of unknown
 * size, or when the head itself is at fault (MHD then closes the connection);
 * otherwise it is sent after the body so the connection stays usable. */
static enum MHD_Result http_begin(http_server_t *srv, struct MHD_Connection *conn,
                                  const char *url, const char *method, const char *version,
                                  void **con_cls)
{
    http_conn *c = *con_cls;
    if (!c && !(c = *con_cls = http_conn_new(srv, conn)))
        return http_oom_drop();
    c->begun = true;
    c->version = version;
    c->req.method = method;
    c->req.url = url;
    router_match(method, url, &c->req.m);
    http_sock_arm(srv, conn, false);
    c->declared = http_declared_body(c);
    http_check(c);
    if (!c->req.answered)
        return MHD_YES;
    if (c->req.status == 431)
        return http_send_raw(c);
    if (c->req.close || c->declared == SIZE_MAX || c->declared > srv->ctx->cfg->max_body)
        return http_send(c);
    return MHD_YES;
}

/* The first size of the body buffer: the announced size at once (within
 * max_body, checked before), so one allocation, and a small one for a small
 * job, which malloc serves from its per-thread cache. */
static size_t http_body_start(const http_conn *c)
{
    return c->declared != SIZE_MAX ? c->declared + 1 : HTTP_BODY_START;
}

/* One chunk of the body: kept for routes that parse it, up to max_body.
 * False when the body passed max_body (only a chunked one can: a declared
 * length over it was refused before): the answer is then 413, at once. */
static bool http_take_body(http_conn *c, const char *data, size_t len)
{
    http_req *req = &c->req;
    if (!c->keep_body || req->answered)
        return true;
    size_t max = req->ctx->cfg->max_body;
    if (len > max - req->body_len) {
        free(req->body);
        req->body = NULL;
        req->body_len = 0;
        c->keep_body = false;
        http_errorf(req, 413, "payload_too_large", "the body exceeds %zu bytes", max);
        return false;
    }
    if (req->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : http_body_start(c);
        while (cap < req->body_len + len + 1)
            cap *= 2;
        char *p = realloc(req->body, cap);
        if (!p) {
            http_errorf(req, 500, "internal_error", "out of memory");
            return true;
        }
        req->body = p;
        c->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return true;
}

/* A suspended request is back. Normally because it completed; at shutdown
 * http_stop may have resumed it before that, and it answers 503. */
static void http_resumed(http_req *req)
{
    pthread_mutex_lock(&req->mu);
    bool completed = req->completed;
    pthread_mutex_unlock(&req->mu);
    if (completed) {
        req->on_resume(req);
        return;
    }
    jobd_error err;
    jobd_fail(&err, 503, "unavailable", JOBD_MSG_SHUTDOWN_UNSURE);
    err.retry_after = 1;
    http_error(req, &err);
}

static void http_dispatch(http_conn *c)
{
    http_req *req = &c->req;
    if (c->keep_body && !req->body && !(req->body = calloc(1, 1))) {
        http_errorf(req, 500, "internal_error", "out of memory");
        return;
    }
    http_routes[req->m.route].handle(req);
    if (!req->answered && !req->on_resume)
        http_errorf(req, 500, "internal_error", "the handler gave no answer");
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_data_size,
                                   void **con_cls)
{
    http_conn *c = *con_cls;
    if (!c || !c->begun)
        return http_begin(cls, conn, url, method, version, con_cls);
    if (*upload_data_size != 0) {
        bool within = http_take_body(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return within ? MHD_YES : http_send_raw(c);
    }
    if (c->sent)
        return MHD_YES;
    if (!c->req.answered) {
        if (c->req.on_resume)
            http_resumed(&c->req);
        else
            http_dispatch(c);
    }
    /* Not answered: the request is suspended until http_complete. */
    return c->req.answered ? http_send(c) : MHD_YES;
}

/* ---- suspended requests ------------------------------------------------ */

static void http_list_add(http_conn *c)
{
    http_server_t *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    c->prev = NULL;
    c->next = srv->suspended;
    if (srv->suspended)
        srv->suspended->prev = c;
    srv->suspended = c;
    c->listed = true;
    c->awaited = true;
    srv->n_awaited++;
    pthread_mutex_unlock(&srv->mu);
}

static void http_list_unlink(http_server_t *srv, http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->suspended = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->listed = false;
}

/* Takes c off the list. True when it was on it: the caller then owns the
 * duty to resume it (exactly one party resumes a suspended connection). */
static bool http_list_remove(http_conn *c)
{
    http_server_t *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    bool was = c->listed;
    if (was)
        http_list_unlink(srv, c);
    pthread_mutex_unlock(&srv->mu);
    return was;
}

/* Why req->mu makes this safe: `completed` and `suspended` change only under
 * it, and MHD_suspend_connection is called while holding it. So
 * http_complete either runs entirely before http_await takes the lock (then
 * await sees completed and answers at once, never suspending), or entirely
 * after await has suspended the connection (then it sees suspended and
 * resumes it). MHD never sees a resume before its suspend, and a resume
 * arriving before the handler has returned is fine: MHD processes it on the
 * connection's own thread after the handler returns, and the answer is
 * queued there. */
void http_await(http_req *req, http_resume_fn on_resume)
{
    http_conn *c = http_conn_of(req);
    pthread_mutex_lock(&req->mu);
    req->on_resume = on_resume;
    if (req->completed) {
        pthread_mutex_unlock(&req->mu);
        on_resume(req);
        return;
    }
    req->suspended = true;
    http_list_add(c);
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&req->mu);
}

/* Lock order everywhere: req->mu, then srv->mu. A request whose connection
 * is gone (http_stop gave up on it, conn = NULL) is freed here, the last
 * user of it; while `suspended` is set the server still exists, because
 * MHD_stop_daemon's completion callback clears it under req->mu first. */
void http_complete(http_req *req)
{
    http_conn *c = http_conn_of(req);
    pthread_mutex_lock(&req->mu);
    req->completed = true;
    bool orphan = false;
    if (req->suspended) {
        req->suspended = false;
        if (http_list_remove(c))
            MHD_resume_connection(req->conn);
    } else {
        orphan = req->conn == NULL;
    }
    pthread_mutex_unlock(&req->mu);
    if (orphan)
        http_conn_free(c);
}

/* The request leaves the server's books: off the list, no longer counted. */
static void http_list_finish(http_conn *c)
{
    http_server_t *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    if (c->listed)
        http_list_unlink(srv, c);
    if (c->awaited && --srv->n_awaited == 0)
        pthread_cond_broadcast(&srv->idle);
    c->awaited = false;
    pthread_mutex_unlock(&srv->mu);
}

/* MHD is done with the connection's request (answered, or closed). A request
 * still awaiting its store is left for http_complete to free. */
static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    http_server_t *srv = cls;
    http_conn *c = *con_cls;
    http_sock_arm(srv, conn, true); /* a next request on the connection */
    if (!c)
        return;
    *con_cls = NULL;
    http_req *req = &c->req;
    pthread_mutex_lock(&req->mu);
    req->suspended = false;
    if (c->awaited)
        http_list_finish(c);
    req->conn = NULL;
    bool awaited = req->on_resume && !req->completed;
    pthread_mutex_unlock(&req->mu);
    if (!awaited)
        http_conn_recycle(c);
}

/* ---- the request-head deadline ---------------------------------------- */

/* ts = CLOCK_MONOTONIC now + ms, for pthread_cond_timedwait on our conds. */
static void http_abstime(int64_t ms, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (ms < 0)
        ms = 0;
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Starts (reading_head) or stops the head clock of conn's connection: it
 * runs from the connection's start or its previous answer until the access
 * handler sees the next head. */
static void http_sock_arm(http_server_t *srv, struct MHD_Connection *conn, bool reading_head)
{
    if (srv->head_timeout_ms <= 0)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    http_sock *sk = ci ? ci->socket_context : NULL;
    if (!sk)
        return;
    atomic_store_explicit(&sk->head_since_ms, reading_head ? jobd_mono_ms() : 0,
                          memory_order_relaxed);
}

/* MHD's connection notifications: an http_sock per connection, listed from
 * its start to its close. A connection we cannot list only misses the
 * deadline. */
static void http_sock_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                             enum MHD_ConnectionNotificationCode toe)
{
    http_server_t *srv = cls;
    http_sock *sk = *socket_context;
    pthread_mutex_lock(&srv->socks_mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && (sk = calloc(1, sizeof *sk))) {
            sk->fd = ci->connect_fd;
            atomic_init(&sk->head_since_ms, jobd_mono_ms());
            sk->next = srv->socks;
            if (srv->socks)
                srv->socks->prev = sk;
            srv->socks = sk;
            srv->n_socks++;
        }
        *socket_context = sk;
    } else if (sk) {
        if (sk->prev)
            sk->prev->next = sk->next;
        else
            srv->socks = sk->next;
        if (sk->next)
            sk->next->prev = sk->prev;
        srv->n_socks--;
        free(sk);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&srv->socks_mu);
}

/* The sweeper thread: shuts down the socket of every connection whose request
 * head is late. MHD then sees the connection end and closes it as usual.
 * Activity does not help a late head (MHD's idle timeout does not cover a
 * client that sends a byte a second). */
static void *http_sweep(void *arg)
{
    http_server_t *srv = arg;
    pthread_mutex_lock(&srv->socks_mu);
    while (srv->sweeping) {
        int64_t now = jobd_mono_ms();
        int64_t limit = srv->head_timeout_ms;
        if (srv->n_socks >= HTTP_CONN_PRESSURE && limit > HTTP_HEAD_PRESSED_MS)
            limit = HTTP_HEAD_PRESSED_MS;
        size_t n = 0;
        for (http_sock *sk = srv->socks; sk; sk = sk->next) {
            int64_t since = atomic_load_explicit(&sk->head_since_ms, memory_order_relaxed);
            /* the exchange fails when the head completed meanwhile */
            if (since == 0 || now - since < limit ||
                !atomic_compare_exchange_strong(&sk->head_since_ms, &since, 0))
                continue;
            shutdown(sk->fd, SHUT_RDWR);
            n++;
        }
        if (n > 0)
            log_event(LOG_WARN, "http.head_timeout", NULL,
                      "closed %zu of %zu connections whose request head took over %lld ms", n,
                      srv->n_socks, (long long)limit);
        struct timespec ts;
        http_abstime(HTTP_SWEEP_MS, &ts);
        pthread_cond_timedwait(&srv->sweep_cv, &srv->socks_mu, &ts);
    }
    pthread_mutex_unlock(&srv->socks_mu);
    return NULL;
}

static int http_sweeper_start(http_server_t *srv)
{
    if (srv->head_timeout_ms <= 0)
        return 0;
    srv->sweeping = true;
    if (pthread_create(&srv->sweeper, NULL, http_sweep, srv) != 0)
        return -1;
    srv->sweeper_started = true;
    return 0;
}

static void http_sweeper_stop(http_server_t *srv)
{
    if (!srv->sweeper_started)
        return;
    pthread_mutex_lock(&srv->socks_mu);
    srv->sweeping = false;
    pthread_cond_signal(&srv->sweep_cv);
    pthread_mutex_unlock(&srv->socks_mu);
    pthread_join(srv->sweeper, NULL);
    srv->sweeper_started = false;
}

/* ---- the daemon -------------------------------------------------------- */

/* MHD's line for an access handler that returned MHD_NO. jobd does so after
 * answering straight on the socket (http_send_raw), which is no error, and
 * logs the real failures (out of memory) itself. */
#define HTTP_MHD_HANDLER_NO "Application reported internal error"

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (strncmp(msg, HTTP_MHD_HANDLER_NO, sizeof HTTP_MHD_HANDLER_NO - 1) == 0)
        return;
    log_event(LOG_WARN, "http.mhd", NULL, "%s", msg);
}

static int http_hash_tokens(http_server_t *srv, const config_t *cfg)
{
    if (cfg->n_tokens == 0)
        return 0;
    srv->token_digests = calloc(cfg->n_tokens, sizeof *srv->token_digests);
    if (!srv->token_digests)
        return -1;
    for (size_t i = 0; i < cfg->n_tokens; i++)
        SHA256((const unsigned char *)cfg->tokens[i], strlen(cfg->tokens[i]),
               srv->token_digests[i]);
    srv->n_tokens = cfg->n_tokens;
    return 0;
}

static void http_server_free(http_server_t *srv)
{
    while (srv->spare) {
        http_conn *c = srv->spare;
        srv->spare = c->next;
        free(c);
    }
    free(srv->token_digests);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->sweep_cv);
    pthread_mutex_destroy(&srv->socks_mu);
    free(srv);
}

static http_server_t *http_server_new(jobd_t *ctx)
{
    http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->ctx = ctx;
    srv->head_timeout_ms = (int64_t)(ctx->cfg->header_timeout * 1000.0);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->socks_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->idle, &attr);
    pthread_cond_init(&srv->sweep_cv, &attr);
    pthread_condattr_destroy(&attr);
    if (http_hash_tokens(srv, ctx->cfg) != 0) {
        http_server_free(srv);
        return NULL;
    }
    return srv;
}

static struct MHD_Daemon *http_daemon_start(http_server_t *srv, const struct sockaddr *sa)
{
    const config_t *cfg = srv->ctx->cfg;
    unsigned threads = cfg->http_threads > 1 ? (unsigned)cfg->http_threads : 1u;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (sa->sa_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    return MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, NULL, NULL, http_access, srv,
        MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv, /* first, or MHD warns */
        MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, HTTP_CONN_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)HTTP_STACK_SIZE,
        MHD_OPTION_URI_LOG_CALLBACK, http_uri_seen, srv,
        MHD_OPTION_NOTIFY_CONNECTION, http_sock_notify, srv,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
        /* MHD warns about a pool of 0 or 1, so one thread ends the list here */
        threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads,
        MHD_OPTION_END);
}

/* The listen address: an IPv4 or IPv6 literal, or a name resolved now (its
 * first address). 0 and *sa filled, or -1 (logged). */
static int http_resolve(const config_t *cfg, struct sockaddr_storage *sa)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0 || !res || res->ai_addrlen > sizeof *sa) {
        log_event(LOG_ERROR, "http.start_failed", NULL, "listen: cannot resolve \"%s\": %s",
                  cfg->listen_host, rc != 0 ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

http_server_t *http_start(jobd_t *ctx)
{
    const config_t *cfg = ctx->cfg;
    struct sockaddr_storage sa;
    if (http_resolve(cfg, &sa) != 0)
        return NULL;
    http_server_t *srv = http_server_new(ctx);
    if (!srv) {
        log_event(LOG_ERROR, "http.start_failed", NULL, "out of memory");
        return NULL;
    }
    if (!(srv->daemon = http_daemon_start(srv, (const struct sockaddr *)&sa))) {
        log_event(LOG_ERROR, "http.start_failed", NULL, "cannot listen on %s:%d",
                  cfg->listen_host, cfg->listen_port);
        http_server_free(srv);
        return NULL;
    }
    if (http_sweeper_start(srv) != 0) {
        log_event(LOG_ERROR, "http.start_failed", NULL, "cannot start the head-deadline thread");
        MHD_stop_daemon(srv->daemon);
        http_server_free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->listen_port;
    log_event(LOG_INFO, "http.start", NULL, "listening on %s:%d (%d HTTP threads, auth %s)",
              cfg->listen_host, srv->port, cfg->http_threads > 1 ? cfg->http_threads : 1,
              srv->n_tokens ? "on" : "off");
    return srv;
}

int http_port(http_server_t *srv)
{
    return srv ? srv->port : 0;
}

/* Waits until every awaited request is answered and finished, or deadline
 * (mono ms) passes. */
static void http_wait_idle(http_server_t *srv, int64_t deadline_ms)
{
    struct timespec ts;
    http_abstime(deadline_ms - jobd_mono_ms(), &ts);
    pthread_mutex_lock(&srv->mu);
    while (srv->n_awaited > 0)
        if (pthread_cond_timedwait(&srv->idle, &srv->mu, &ts) != 0)
            break; /* ETIMEDOUT */
    pthread_mutex_unlock(&srv->mu);
}

/* Resumes what is still suspended: MHD_stop_daemon must not meet a
 * suspended connection. Each then answers 503 (http_resumed). Returns how
 * many there were. */
static size_t http_resume_all(http_server_t *srv)
{
    size_t n = 0;
    pthread_mutex_lock(&srv->mu);
    for (; srv->suspended; n++) {
        http_conn *c = srv->suspended;
        http_list_unlink(srv, c);
        MHD_resume_connection(c->req.conn);
    }
    pthread_mutex_unlock(&srv->mu);
    if (n > 0)
        log_event(LOG_WARN, "http.stop", NULL,
                  "%zu submissions still waited for their store; answered 503", n);
    return n;
}

void http_stop(http_server_t *srv)
{
    if (!srv)
        return;
    MHD_socket listen_fd = MHD_quiesce_daemon(srv->daemon);
    http_wait_idle(srv, jobd_mono_ms() + HTTP_DRAIN_MS);
    if (http_resume_all(srv) > 0)
        http_wait_idle(srv, jobd_mono_ms() + HTTP_FLUSH_MS);
    http_sweeper_stop(srv);
    MHD_stop_daemon(srv->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    http_server_free(srv);
    log_event(LOG_INFO, "http.stopped", NULL, NULL);
}
