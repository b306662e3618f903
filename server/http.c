/* http.c - the libmicrohttpd daemon: its start and stop, the life of one
 * request (head, body, dispatch) and asynchronous answers through
 * suspend/resume. Handlers only see http_req. Checks, answers and the head
 * deadline are in http_check.c, http_answer.c and http_sweep.c. */
#include "http_conn.h"

#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

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

/* The request's id: the client's X-Request-Id when it is safe to repeat in
 * a header and a log line, else a new ULID. */
static void http_request_id(http_conn *c)
{
    http_req *req = &c->req;
    const char *theirs = http_header(req, "X-Request-Id");
    if (trace_request_id_ok(theirs))
        snprintf(req->request_id, sizeof req->request_id, "%s", theirs);
    else
        ulid_next(&c->srv->request_ids, jobd_now_ms(), req->request_id);
}

/* An answered request in the metrics: its time from head to the end of the
 * answer, and a refused submission's error code (route labels and queue
 * names come from the router and the config, never from the raw path). */
static void http_record(http_server_t *srv, http_conn *c)
{
    metrics_t *m = srv->ctx->metrics;
    http_req *req = &c->req;
    if (!m || c->phase != HTTP_PHASE_SENT)
        return;
    metrics_http_request(m, req->m.route, req->status,
                         (double)(jobd_mono_us() - c->began_us) / 1e6);
    if (req->m.route == ROUTE_JOBS_SUBMIT && req->status >= 400 && req->m.queue_ok)
        metrics_submit_refused(m, req->m.queue, req->err_code ? req->err_code : "internal_error");
}

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
    c->phase = HTTP_PHASE_HEAD;
    c->began_us = jobd_mono_us();
    c->version = version;
    c->begun_ms = jobd_mono_ms();
    http_request_id(c);
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
    bool completed = req->await == HTTP_AWAIT_COMPLETED;
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
    http_handler_fn handle = c->srv->routes[req->m.route].handle;
    if (handle)
        handle(req);
    else
        http_not_found(req); /* after the auth check, as for any route */
    if (!req->answered && !req->on_resume)
        http_errorf(req, 500, "internal_error", "the handler gave no answer");
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_data_size,
                                   void **con_cls)
{
    http_conn *c = *con_cls;
    if (!c || c->phase == HTTP_PHASE_TARGET)
        return http_begin(cls, conn, url, method, version, con_cls);
    if (*upload_data_size != 0) {
        bool within = http_take_body(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return within ? MHD_YES : http_send_raw(c);
    }
    if (c->phase == HTTP_PHASE_SENT)
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
    list_push(&srv->suspended, &c->node);
    c->listed = true;
    c->awaited = true;
    srv->n_awaited++;
    pthread_mutex_unlock(&srv->mu);
}

static void http_list_unlink(http_server_t *srv, http_conn *c)
{
    list_remove(&srv->suspended, &c->node);
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

/* Why req->mu makes this safe: req->await changes only under it, and
 * MHD_suspend_connection is called while holding it. So http_complete either
 * runs entirely before http_await takes the lock (then await sees COMPLETED
 * and answers at once, never suspending), or entirely after await has
 * suspended the connection (then it sees SUSPENDED and resumes it). MHD never sees a resume before its suspend, and a resume
 * arriving before the handler has returned is fine: MHD processes it on the
 * connection's own thread after the handler returns, and the answer is
 * queued there. */
void http_await(http_req *req, http_resume_fn on_resume)
{
    http_conn *c = http_conn_of(req);
    pthread_mutex_lock(&req->mu);
    req->on_resume = on_resume;
    if (req->await == HTTP_AWAIT_COMPLETED) {
        pthread_mutex_unlock(&req->mu);
        on_resume(req);
        return;
    }
    req->await = HTTP_AWAIT_SUSPENDED;
    http_list_add(c);
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&req->mu);
}

/* Lock order everywhere: req->mu, then srv->mu. A request whose connection
 * is gone (http_stop gave up on it, conn = NULL) is freed here, the last
 * user of it; while it is SUSPENDED the server still exists, because
 * MHD_stop_daemon's completion callback sets it back to NONE under req->mu first. */
void http_complete(http_req *req)
{
    http_conn *c = http_conn_of(req);
    pthread_mutex_lock(&req->mu);
    bool orphan = false;
    if (req->await == HTTP_AWAIT_SUSPENDED) {
        if (http_list_remove(c))
            MHD_resume_connection(req->conn);
    } else {
        orphan = req->conn == NULL;
    }
    req->await = HTTP_AWAIT_COMPLETED;
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
    http_record(srv, c);
    http_req *req = &c->req;
    pthread_mutex_lock(&req->mu);
    if (req->await == HTTP_AWAIT_SUSPENDED)
        req->await = HTTP_AWAIT_NONE;
    if (c->awaited)
        http_list_finish(c);
    req->conn = NULL;
    bool awaited = req->on_resume && req->await != HTTP_AWAIT_COMPLETED;
    pthread_mutex_unlock(&req->mu);
    if (!awaited)
        http_conn_recycle(c);
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
    srv->token_scopes = calloc(cfg->n_tokens, sizeof *srv->token_scopes);
    if (!srv->token_digests || !srv->token_scopes)
        return -1;
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        const auth_token *t = &cfg->tokens[i];
        SHA256((const unsigned char *)t->secret, strlen(t->secret), srv->token_digests[i]);
        srv->token_scopes[i] = t->scopes;
    }
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
    free(srv->token_scopes);
    tls_pem_free(&srv->tls);
    ulid_destroy(&srv->request_ids);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->sweep_cv);
    pthread_mutex_destroy(&srv->socks_mu);
    free(srv);
}

static http_server_t *http_server_new(jobd_t *ctx, const http_route *routes)
{
    http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->ctx = ctx;
    srv->routes = routes;
    srv->head_timeout_ms = (int64_t)(ctx->cfg->header_timeout * 1000.0);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->socks_mu, NULL);
    ulid_init(&srv->request_ids);
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
                     MHD_USE_ERROR_LOG | (sa->sa_family == AF_INET6 ? MHD_USE_IPv6 : 0) |
                     (srv->tls.cert ? MHD_USE_TLS : 0);
    /* HTTPS: MHD takes the PEM texts themselves (kept in srv until the stop). */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls.cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls.key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
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
        MHD_OPTION_ARRAY, srv->tls.cert ? tls_opts : &tls_opts[3],
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

http_server_t *http_start(jobd_t *ctx, const http_route *routes)
{
    const config_t *cfg = ctx->cfg;
    struct sockaddr_storage sa;
    if (http_resolve(cfg, &sa) != 0)
        return NULL;
    http_server_t *srv = http_server_new(ctx, routes);
    if (!srv) {
        log_event(LOG_ERROR, "http.start_failed", NULL, "out of memory");
        return NULL;
    }
    char err[768];
    if (cfg->tls_cert_file && tls_load(cfg, &srv->tls, err, sizeof err) != 0) {
        log_event(LOG_ERROR, "http.start_failed", NULL, "%s", err);
        http_server_free(srv);
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
    log_event(LOG_INFO, "http.start", NULL, "listening on %s:%d (%s, %d HTTP threads, auth %s)",
              cfg->listen_host, srv->port, srv->tls.cert ? "HTTPS" : "HTTP",
              cfg->http_threads > 1 ? cfg->http_threads : 1, srv->n_tokens ? "on" : "off");
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
    for (; srv->suspended.head; n++) {
        http_conn *c = LIST_ITEM(srv->suspended.head, http_conn, node);
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
