/* http_answer.c - the answer of a request: JSON bodies and errors, headers,
 * and sending it through MHD or, when MHD cannot, straight on the socket. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../util/utf8.h"
#include "http_conn.h"
#include "log.h"

/* ---- answers ---------------------------------------------------------- */

void http_json(http_req *req, int status, json_t *body)
{
    json_decref(req->resp);
    req->resp = body;
    req->status = status;
    req->answered = true;
    req->err_code = NULL;
}

void http_text(http_req *req, int status, char *text, const char *type)
{
    if (!text) {
        http_errorf(req, 500, "internal_error", "out of memory");
        return;
    }
    json_decref(req->resp);
    req->resp = NULL;
    free(req->resp_text);
    req->resp_text = text;
    req->resp_type = type;
    req->status = status;
    req->answered = true;
    req->err_code = NULL;
}

void http_json_raw(http_req *req, int status, char *text)
{
    http_text(req, status, text, HTTP_JSON_TYPE);
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
    req->err_code = code;
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

/* What http_header_join gathers: the values of one header, comma-joined. */
typedef struct http_join {
    const char *name;
    char *buf;
    size_t size, len;
    bool found, over;
} http_join;

static enum MHD_Result http_join_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    http_join *j = cls;
    (void)kind;
    if (strcasecmp(key, j->name) != 0 || j->over)
        return MHD_YES;
    size_t n = value ? strlen(value) : 0, sep = j->found;
    j->found = true;
    if (j->len + sep + n >= j->size) {
        j->over = true;
        return MHD_YES;
    }
    if (sep)
        j->buf[j->len++] = ',';
    memcpy(j->buf + j->len, value ? value : "", n);
    j->len += n;
    j->buf[j->len] = '\0';
    return MHD_YES;
}

const char *http_header_join(http_req *req, const char *name, char *buf, size_t size)
{
    http_join j = {.name = name, .buf = buf, .size = size};
    /* one lookup first: most requests carry none, and it costs less than a visit of all */
    if (!req->conn || size == 0 || !http_header(req, name))
        return NULL;
    buf[0] = '\0';
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, http_join_visit, &j);
    return j.found && !j.over ? buf : NULL;
}

const char *http_query(http_req *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name)
                     : NULL;
}

void http_not_found(http_req *req)
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
              (!req->close || http_add_header(r, MHD_HTTP_HEADER_CONNECTION, "close")) &&
              (!req->request_id[0] || http_add_header(r, "X-Request-Id", req->request_id));
    if (!ok) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* One line per answer, under the request's id: a debug event (--verbose),
 * or a warning for a 5xx, which a client may come asking about. */
static void http_log_answer(const http_conn *c)
{
    const http_req *req = &c->req;
    log_level level = req->status >= 500 ? LOG_WARN : LOG_DEBUG;
    if (!log_enabled(level))
        return;
    log_request(level, "http.request", req->request_id, NULL, "%s %.256s -> %d in %lld ms",
                req->method ? req->method : "?", req->url ? req->url : "?", req->status,
                (long long)(jobd_mono_ms() - c->begun_ms));
}

/* Writes the error answer straight to the socket, with Connection: close,
 * and returns MHD_NO so that MHD closes the connection. For the two answers
 * MHD cannot send itself: one to a head that leaves no room in the pool for
 * the answer's headers, and one in the middle of a body (MHD queues answers
 * only before the body or after all of it). A few hundred bytes on a socket
 * whose send buffer holds nothing of ours yet are written whole. */
enum MHD_Result http_send_raw(http_conn *c)
{
    /* Over HTTPS, plain bytes on the socket would break the TLS stream:
     * MHD is asked instead, and closes the connection where it cannot. */
    if (c->srv->tls.cert)
        return http_send(c);
    http_req *req = &c->req;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    size_t len;
    const char *type;
    char *body = http_body_text(req, &len, &type);
    char head[256 + TRACE_REQUEST_ID_MAX];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nX-Request-Id: %s\r\n\r\n",
                     req->status, MHD_get_reason_phrase_for((unsigned)req->status),
                     type ? type : HTTP_JSON_TYPE, len, req->request_id);
    if (ci && body && n > 0 && (size_t)n < sizeof head) {
        struct iovec iov[2] = {{head, (size_t)n}, {body, len}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        if (sendmsg(ci->connect_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_request(LOG_WARN, "http.raw_answer", req->request_id, NULL,
                        "cannot send the %d answer: %s", req->status, strerror(errno));
        /* FIN after the answer, so the client reads it before MHD's close */
        shutdown(ci->connect_fd, SHUT_WR);
    }
    free(body);
    c->phase = HTTP_PHASE_SENT;
    http_log_answer(c);
    return MHD_NO;
}

/* Out of memory for a request: its connection is dropped. */
enum MHD_Result http_oom_drop(void)
{
    log_event(LOG_ERROR, "http.oom", NULL, "out of memory: connection dropped without an answer");
    return MHD_NO;
}

enum MHD_Result http_send(http_conn *c)
{
    struct MHD_Response *r = http_build_response(&c->req);
    if (!r)
        return http_oom_drop();
    enum MHD_Result rc = MHD_queue_response(c->req.conn, (unsigned)c->req.status, r);
    MHD_destroy_response(r);
    c->phase = HTTP_PHASE_SENT;
    http_log_answer(c);
    return rc;
}
