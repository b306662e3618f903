/* exec_webhook.c - the "webhook" handler kind: POSTs the job to a URL with
 * libcurl, signed with HMAC-SHA256 when a secret is configured.
 *
 * Each worker thread keeps one curl easy handle per handler (a pthread key of
 * the handler state), so keep-alive connections are reused across jobs. */
#include "../util/list.h"
#include "exec.h"
#include "exec_util.h"

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define WEBHOOK_CONNECT_TIMEOUT 5.0  /* seconds, default of connect_timeout */
#define WEBHOOK_BODY_KEEP       1024 /* bytes of a failed answer's body kept for last_error */
#define WEBHOOK_HEADER_MAX      8192 /* one "Name: value" line */

/* One thread's curl handle for one handler. */
typedef struct exec_webhook_conn {
    struct exec_webhook *owner;
    CURL *curl;
    list_node link; /* in exec_webhook.conns */
} exec_webhook_conn;

typedef struct exec_webhook {
    char *url;
    double timeout; /* 0 = none of its own */
    double connect_timeout;
    struct curl_slist *headers; /* fixed headers of every request; read-only after create */
    unsigned char *secret;      /* NULL = requests are not signed */
    size_t secret_len;
    EVP_MAC *mac;             /* HMAC implementation, fetched once */
    pthread_key_t key;        /* this thread's exec_webhook_conn */
    pthread_mutex_t mu;       /* guards conns */
    list_t conns;             /* every thread's handle, so destroy can free them all */
} exec_webhook;

/* The first bytes of the answer's body, for the error message. */
typedef struct exec_webhook_body {
    char data[WEBHOOK_BODY_KEEP];
    size_t len;
} exec_webhook_body;

static const char *const exec_webhook_keys[] = {
    "kind", "url", "timeout", "connect_timeout", "headers", "secret", "secret_env", NULL,
};

/* Headers jobd sets itself and that the config may not replace. */
static const char *const exec_webhook_reserved[] = {
    "Content-Type", "Content-Length", "Transfer-Encoding", "Expect", "traceparent", "tracestate",
    NULL,
};

/* ---- check ---------------------------------------------------------------- */

static int exec_webhook_check_url(const json_t *opts, char *err, size_t errlen)
{
    const json_t *v = json_object_get(opts, "url");
    if (!v) {
        snprintf(err, errlen, "url: missing");
        return -1;
    }
    int rc = -1;
    CURLU *u = curl_url();
    char *scheme = NULL;
    if (u && json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v) &&
        curl_url_set(u, CURLUPART_URL, json_string_value(v), 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
        rc = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0 ? 0 : -1;
    curl_free(scheme);
    curl_url_cleanup(u);
    if (rc != 0)
        snprintf(err, errlen, "url: must be an http:// or https:// URL");
    return rc;
}

/* RFC 9110 token characters. */
static bool exec_webhook_token_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static bool exec_webhook_reserved_name(const char *name)
{
    if (strncasecmp(name, "Jobd-", 5) == 0)
        return true;
    for (size_t i = 0; exec_webhook_reserved[i]; i++)
        if (strcasecmp(name, exec_webhook_reserved[i]) == 0)
            return true;
    return false;
}

static int exec_webhook_check_headers(const json_t *opts, char *err, size_t errlen)
{
    const json_t *h = json_object_get(opts, "headers");
    if (!h)
        return 0;
    if (!json_is_object(h)) {
        snprintf(err, errlen, "headers: must be an object of strings");
        return -1;
    }
    const char *name;
    json_t *value;
    json_object_foreach ((json_t *)h, name, value) {
        const char *why = NULL;
        if (!exec_webhook_token_ok(name))
            why = "invalid header name";
        else if (exec_webhook_reserved_name(name))
            why = "reserved header, set by jobd";
        else if (!json_is_string(value))
            why = "must be a string";
        else if (strcspn(json_string_value(value), "\r\n") != json_string_length(value))
            why = "value must not contain CR, LF or NUL";
        else if (strlen(name) + json_string_length(value) + 3 > WEBHOOK_HEADER_MAX)
            why = "too long";
        if (why) {
            snprintf(err, errlen, "headers.%s: %s", name, why);
            return -1;
        }
    }
    return 0;
}

static int exec_webhook_check_secret(const json_t *opts, char *err, size_t errlen)
{
    const json_t *secret = json_object_get(opts, "secret");
    const json_t *env = json_object_get(opts, "secret_env");
    if (secret && env) {
        snprintf(err, errlen, "secret: not together with secret_env");
        return -1;
    }
    if (secret && (!json_is_string(secret) || json_string_length(secret) == 0)) {
        snprintf(err, errlen, "secret: must be a non-empty string");
        return -1;
    }
    if (env && (!json_is_string(env) || json_string_length(env) == 0 ||
                strlen(json_string_value(env)) != json_string_length(env))) {
        snprintf(err, errlen, "secret_env: must be the name of an environment variable");
        return -1;
    }
    return 0;
}

static int exec_webhook_check(const char *type, const json_t *opts, char *err, size_t errlen)
{
    double ignored;
    if (!json_is_object(opts)) {
        snprintf(err, errlen, "must be an object");
        return -1;
    }
    if (exec_util_check_keys(opts, exec_webhook_keys, err, errlen) != 0 ||
        exec_webhook_check_url(opts, err, errlen) != 0 ||
        exec_util_seconds(opts, "timeout", 0, &ignored, err, errlen) != 0 ||
        exec_util_seconds(opts, "connect_timeout", 0, &ignored, err, errlen) != 0 ||
        exec_webhook_check_headers(opts, err, errlen) != 0 ||
        exec_webhook_check_secret(opts, err, errlen) != 0)
        return -1;
    return 0;
}

/* ---- create / destroy ------------------------------------------------------- */

static void exec_webhook_conn_free(exec_webhook_conn *c)
{
    curl_easy_cleanup(c->curl);
    free(c);
}

/* Key destructor: a worker thread that ends gives its handle back. Not called
 * for handles still held at destroy (pthread_key_delete runs no destructors),
 * which is why the state also keeps the list. */
static void exec_webhook_conn_release(void *p)
{
    exec_webhook_conn *c = p;
    exec_webhook *w = c->owner;
    pthread_mutex_lock(&w->mu);
    list_remove(&w->conns, &c->link);
    pthread_mutex_unlock(&w->mu);
    exec_webhook_conn_free(c);
}

static void exec_webhook_destroy(void *state)
{
    exec_webhook *w = state;
    if (!w)
        return;
    pthread_key_delete(w->key);
    for (list_node *n = w->conns.head, *next; n; n = next) {
        next = n->next;
        exec_webhook_conn_free(LIST_ITEM(n, exec_webhook_conn, link));
    }
    pthread_mutex_destroy(&w->mu);
    curl_slist_free_all(w->headers);
    if (w->secret)
        OPENSSL_clear_free(w->secret, w->secret_len);
    EVP_MAC_free(w->mac);
    free(w->url);
    free(w);
    curl_global_cleanup();
}

static int exec_webhook_add_line(exec_webhook *w, const char *line)
{
    struct curl_slist *l = curl_slist_append(w->headers, line);
    if (!l)
        return -1;
    w->headers = l;
    return 0;
}

/* Appends one "Name: value" line; an empty value needs curl's "Name;" form
 * (a bare "Name:" would remove the header instead). */
static int exec_webhook_add_header(exec_webhook *w, const char *name, const char *value)
{
    char line[WEBHOOK_HEADER_MAX];
    if (*value)
        snprintf(line, sizeof line, "%s: %s", name, value);
    else
        snprintf(line, sizeof line, "%s;", name);
    return exec_webhook_add_line(w, line);
}

static int exec_webhook_build_headers(exec_webhook *w, const json_t *opts)
{
    /* "Expect:" keeps curl from waiting for a 100-continue on large bodies. */
    if (exec_webhook_add_line(w, "Content-Type: application/json") != 0 ||
        exec_webhook_add_line(w, "Expect:") != 0)
        return -1;
    const char *name;
    json_t *value;
    json_object_foreach (json_object_get(opts, "headers"), name, value) {
        if (exec_webhook_add_header(w, name, json_string_value(value)) != 0)
            return -1;
    }
    return 0;
}

static int exec_webhook_load_secret(exec_webhook *w, const json_t *opts, char *err, size_t errlen)
{
    const char *secret = json_string_value(json_object_get(opts, "secret"));
    const char *env = json_string_value(json_object_get(opts, "secret_env"));
    if (env) {
        secret = getenv(env);
        if (!secret || !*secret) {
            snprintf(err, errlen, "secret_env: environment variable %s is not set", env);
            return -1;
        }
    }
    if (!secret)
        return 0;
    w->secret_len = strlen(secret);
    w->secret = OPENSSL_memdup(secret, w->secret_len);
    w->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (!w->secret || !w->mac) {
        snprintf(err, errlen, "secret: HMAC not available");
        return -1;
    }
    return 0;
}

/* opts passed exec_webhook_check in config_parse: read, not checked again. */
static void *exec_webhook_create(const char *type, const json_t *opts, char *err, size_t errlen)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl initialisation failed");
        return NULL;
    }
    exec_webhook *w = calloc(1, sizeof *w);
    if (!w) {
        curl_global_cleanup();
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* The mutex and key come first so that exec_webhook_destroy can undo any failure below. */
    pthread_mutex_init(&w->mu, NULL);
    if (pthread_key_create(&w->key, exec_webhook_conn_release) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        curl_global_cleanup();
        snprintf(err, errlen, "out of thread keys");
        return NULL;
    }
    w->url = strdup(json_string_value(json_object_get(opts, "url")));
    exec_util_seconds(opts, "timeout", 0, &w->timeout, err, errlen);
    exec_util_seconds(opts, "connect_timeout", WEBHOOK_CONNECT_TIMEOUT, &w->connect_timeout, err,
                      errlen);
    if (!w->url || exec_webhook_build_headers(w, opts) != 0) {
        snprintf(err, errlen, "out of memory");
        exec_webhook_destroy(w);
        return NULL;
    }
    if (exec_webhook_load_secret(w, opts, err, errlen) != 0) {
        exec_webhook_destroy(w);
        return NULL;
    }
    return w;
}

static double exec_webhook_timeout(void *state)
{
    return ((exec_webhook *)state)->timeout;
}

/* ---- run -------------------------------------------------------------------- */

static size_t exec_webhook_on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    exec_webhook_body *b = userdata;
    size_t n = size * nmemb;
    size_t take = n < sizeof b->data - b->len ? n : sizeof b->data - b->len;
    memcpy(b->data + b->len, data, take);
    b->len += take;
    return n; /* the rest is read and dropped, so the connection stays reusable */
}

/* Options that stay the same for every request of this handler. */
static int exec_webhook_setup(const exec_webhook *w, CURL *curl)
{
    if (curl_easy_setopt(curl, CURLOPT_URL, w->url) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_POST, 1L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "jobd/" JOBD_VERSION) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, exec_webhook_on_body) != CURLE_OK)
        return -1;
    return 0;
}

/* This thread's handle for w, created on first use; NULL on OOM. */
static CURL *exec_webhook_handle(exec_webhook *w)
{
    exec_webhook_conn *c = pthread_getspecific(w->key);
    if (c)
        return c->curl;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->owner = w;
    c->curl = curl_easy_init();
    if (!c->curl || exec_webhook_setup(w, c->curl) != 0 || pthread_setspecific(w->key, c) != 0) {
        exec_webhook_conn_free(c);
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    list_push(&w->conns, &c->link);
    pthread_mutex_unlock(&w->mu);
    return c->curl;
}

/* Writes "Jobd-Signature: t=<unix>,v1=<hex>" into out. 0, or -1 when HMAC failed. */
static int exec_webhook_sign(const exec_webhook *w, const exec_job *job, char *out, size_t outlen)
{
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%lld.", (long long)(jobd_now_ms() / 1000));
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(w->mac);
    int ok = ctx && EVP_MAC_init(ctx, w->secret, w->secret_len, params) &&
             EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) &&
             EVP_MAC_update(ctx, (const unsigned char *)job->payload, job->payload_len) &&
             EVP_MAC_final(ctx, mac, &maclen, sizeof mac);
    EVP_MAC_CTX_free(ctx);
    if (!ok)
        return -1;
    prefix[plen - 1] = '\0'; /* drop the '.' */
    int n = snprintf(out, outlen, "Jobd-Signature: t=%s,v1=", prefix);
    for (size_t i = 0; i < maclen && (size_t)n + 2 < outlen; i++, n += 2)
        snprintf(out + n, outlen - (size_t)n, "%02x", mac[i]);
    return 0;
}

/* Seconds from a Retry-After value: delta seconds or an HTTP date; < 0 = unusable. */
static double exec_webhook_parse_retry_after(const char *v)
{
    if (*v >= '0' && *v <= '9') {
        char *end;
        double s = strtod(v, &end);
        if (*end != '\0' || strspn(v, "0123456789") != (size_t)(end - v))
            return -1;
        return s < EXEC_UTIL_MAX_SECONDS ? s : EXEC_UTIL_MAX_SECONDS;
    }
    time_t at = curl_getdate(v, NULL);
    if (at == -1)
        return -1;
    double s = (double)at - (double)(jobd_now_ms() / 1000);
    return s < 0 ? 0 : s < EXEC_UTIL_MAX_SECONDS ? s : EXEC_UTIL_MAX_SECONDS;
}

static double exec_webhook_retry_after(CURL *curl)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(curl, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
        return -1;
    return exec_webhook_parse_retry_after(h->value);
}

static exec_status exec_webhook_status(long code)
{
    if (code >= 200 && code < 300)
        return EXEC_OK;
    if (code >= 400 && code < 500 && code != 408 && code != 429)
        return EXEC_PERMANENT;
    return EXEC_RETRY;
}

static void exec_webhook_answer(CURL *curl, const exec_webhook_body *body, exec_result *res)
{
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    exec_status status = exec_webhook_status(code);
    if (status == EXEC_OK)
        return;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "HTTP %ld", code);
    exec_util_fail(res, status, prefix, body->data, body->len, false);
    res->retry_after = exec_webhook_retry_after(curl);
}

/* curl's progress callback: a non-zero answer aborts the transfer. libcurl
 * calls it at least about once a second even while nothing moves. */
static int exec_webhook_on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                                    curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return exec_util_interrupted(arg) ? 1 : 0;
}

/* One POST of the payload with the given headers, bounded by left_ms and
 * aborted by the shutdown interrupt. */
static CURLcode exec_webhook_post(const exec_webhook *w, CURL *curl, const exec_job *job,
                                  struct curl_slist *headers, int64_t left_ms,
                                  exec_webhook_body *body, char *errbuf)
{
    long connect_ms = (long)(w->connect_timeout * 1000);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, job->payload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->payload_len);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)left_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     connect_ms < left_ms ? connect_ms : (long)left_ms);
    if (job->interrupt) {
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, exec_webhook_on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)job);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, NULL);
    /* The handle outlives this call: leave no pointer into the caller's frame behind. */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    return rc;
}

/* The per-job header lines live on this stack frame, chained in front of the
 * handler's fixed list: curl only reads the list, so threads share its tail. */
static void exec_webhook_run(void *state, const exec_job *job, exec_result *res)
{
    exec_webhook *w = state;
    int64_t left_ms = job->deadline_ms - jobd_mono_ms();
    if (left_ms <= 0) {
        exec_fail(res, EXEC_RETRY, "timed out after %gs before the request was sent", job->timeout);
        return;
    }
    CURL *curl = exec_webhook_handle(w);
    if (!curl) {
        exec_fail(res, EXEC_RETRY, "webhook: out of memory");
        return;
    }
    char id_line[JOB_ID_MAX + 16], attempt_line[32], sig_line[160] = "";
    char tp_line[TRACE_PARENT_LEN + 16], ts_line[TRACE_STATE_MAX + 16];
    char *items[5] = {id_line, attempt_line};
    size_t n = 2;
    snprintf(id_line, sizeof id_line, "Jobd-Job-Id: %s", job->job->id);
    snprintf(attempt_line, sizeof attempt_line, "Jobd-Attempt: %d", job->job->attempts + 1);
    if (w->secret && exec_webhook_sign(w, job, sig_line, sizeof sig_line) != 0) {
        exec_fail(res, EXEC_RETRY, "webhook: signing failed");
        return;
    }
    if (w->secret)
        items[n++] = sig_line;
    const job_trace *trace = job->job->trace;
    if (trace) {
        /* each attempt is a call of its own: a new parent id, the same trace */
        char child[TRACE_PARENT_LEN + 1];
        trace_parent_child(trace->parent, child);
        snprintf(tp_line, sizeof tp_line, "traceparent: %s", child);
        items[n++] = tp_line;
    }
    if (trace && trace->state[0]) {
        snprintf(ts_line, sizeof ts_line, "tracestate: %s", trace->state);
        items[n++] = ts_line;
    }
    struct curl_slist lines[5];
    for (size_t i = 0; i < n; i++)
        lines[i] = (struct curl_slist){items[i], i + 1 < n ? &lines[i + 1] : w->headers};
    exec_webhook_body body = {.len = 0};
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc = exec_webhook_post(w, curl, job, lines, left_ms, &body, errbuf);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        exec_util_fail_interrupted(res);
    else if (rc != CURLE_OK)
        exec_fail(res, EXEC_RETRY, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else
        exec_webhook_answer(curl, &body, res);
}

const exec_kind exec_webhook_kind = {
    .name = "webhook",
    .check = exec_webhook_check,
    .create = exec_webhook_create,
    .run = exec_webhook_run,
    .destroy = exec_webhook_destroy,
    .timeout = exec_webhook_timeout,
};
