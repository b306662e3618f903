/* http_check.c - what every request goes through before its handler: the
 * head (size, framing, target), auth, the queue and id of the path, the
 * body's type and size. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http_conn.h"

/* ---- checks common to every route ----------------------------------- */

/* The scopes of the bearer token of the Authorization header: the OR of the
 * masks of every configured token it equals; 0 when it equals none (or there
 * is no bearer token). Comparing SHA-256 digests with CRYPTO_memcmp, always
 * against every token, and folding each result in without a branch keeps
 * the time independent of where or whether they differ. */
static unsigned http_token_scopes(http_conn *c)
{
    const char *h = http_header(&c->req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *token = h + 7;
    token += strspn(token, " ");
    size_t len = strcspn(token, " \t");
    if (len == 0 || token[len + strspn(token + len, " \t")] != '\0')
        return 0;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, len, digest);
    unsigned scopes = 0;
    for (size_t i = 0; i < c->srv->n_tokens; i++) {
        unsigned equal = (unsigned)(CRYPTO_memcmp(digest, c->srv->token_digests[i],
                                                  sizeof digest) == 0);
        scopes |= c->srv->token_scopes[i] & (0u - equal);
    }
    return scopes;
}

/* The scope a request of route r needs: 0 when it needs no token (auth off,
 * an open route, /metrics with metrics.public). A route that forgot to
 * declare its scope needs them all, so an all-scope token still works and
 * no scoped token gains a right by omission. */
static unsigned http_needed_scope(const http_conn *c, const http_route *r)
{
    if (c->srv->n_tokens == 0 || r->open)
        return 0;
    if (r->scope == SCOPE_METRICS && c->srv->ctx->cfg->metrics_public)
        return 0;
    return r->scope ? r->scope : SCOPE_ALL;
}

/* False after answering 401 (no valid token) or 403 forbidden (a valid
 * token without the route's scope). */
static bool http_check_auth(http_conn *c, const http_route *r)
{
    http_req *req = &c->req;
    unsigned need = http_needed_scope(c, r);
    if (!need)
        return true;
    unsigned have = http_token_scopes(c);
    if (!have) {
        http_errorf(req, 401, "unauthorized",
                    "a valid 'Authorization: Bearer <token>' is required");
        req->www_auth = true;
        return false;
    }
    if ((have & need) != need) {
        const char *name = config_scope_name(need);
        http_errorf(req, 403, "forbidden", "this token lacks the scope this request needs: %s",
                    name ? name : "all scopes");
        return false;
    }
    return true;
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
size_t http_declared_body(http_conn *c)
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
    /* ctx->queues holds every configured queue before the daemon starts. */
    if (!config_queue(req->ctx->cfg, req->m.queue)) {
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
void http_check(http_conn *c)
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
    const http_route *r = &c->srv->routes[m->route];
    /* Before the queue and id checks: a caller without a token must not
     * learn which queues exist. */
    if (!http_check_auth(c, r))
        return;
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
