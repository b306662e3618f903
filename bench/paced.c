/* paced.c - the loads of bench/run.sh that wrk cannot make (Debian's wrk
 * cannot pace and cannot tell when a job ran).
 *
 *   paced rate  --url URL --rate N --duration S [--hook-port P] [--type T]
 *       Open loop: single-job POSTs due at fixed intervals, whatever the
 *       answers do. Reports submit->202 latency and, with --hook-port, the
 *       submit->start latency: the jobs are of a webhook type whose URL is
 *       this process's own receiver on 127.0.0.1:P, so "start" is the moment
 *       jobd's worker reached us (an upper bound of submit->start).
 *   paced drain --url URL --queue-url URL --duration S [--batch N] [--backlog N]
 *       Batch POSTs of `sleep` jobs for S seconds, keeping at most --backlog
 *       submitted jobs unprocessed, then waits until the queue's
 *       processed_total says all ran: jobs/s from first submit to last
 *       completion.
 *
 * Prints one line of key=value pairs on stdout; exits 1 when the run could
 * not be made (bad options, receiver port taken, queue unreadable). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define PACED_SLOTS_MAX 1024          /* concurrent requests: fds stay below FD_SETSIZE */
#define PACED_REQUEST_TIMEOUT_MS 10000L
#define PACED_HOOK_WAIT_NS (10 * NS_PER_S) /* after the last 202, for the last webhooks */
#define PACED_HOOK_BODY_MAX 4096       /* "seq" sits in args, near the start of the body */
#define PACED_POLL_NS (20 * NS_PER_MS)   /* queue counts while submitting */
#define PACED_FINISH_POLL_NS (2 * NS_PER_MS) /* and while waiting for the last jobs */
#define PACED_BODY_MAX 512
#define PACED_REPLY_MAX 65536

typedef struct paced_opts {
    const char *mode;      /* "rate" or "drain" */
    const char *url;       /* where jobs are POSTed */
    const char *queue_url; /* drain: GET for processed_total */
    const char *type;      /* job type; default "hook" with --hook-port, else "noop" */
    double rate;           /* rate: jobs/s */
    double duration;       /* seconds of submitting */
    int hook_port;         /* rate: webhook receiver port, 0 = none */
    int slots;             /* concurrent requests */
    int batch;             /* drain: jobs per POST */
    long backlog;          /* drain: submitted but not yet processed, at most */
    double deadline;       /* drain: seconds to wait for the last completions */
    int sleep_ms;          /* drain: args.ms of each job */
} paced_opts;

/* One request in flight on its own easy handle (reused, so connections are). */
typedef struct paced_slot {
    CURL *easy;
    int64_t sent_ns;
    int next_free;
} paced_slot;

typedef struct paced_client paced_client;

/* Called once per finished request; status 0 = transport error. */
typedef void (*paced_done_fn)(void *ctx, const paced_slot *s, long status, int64_t now_ns);

struct paced_client {
    CURLM *multi;
    struct curl_slist *headers;
    paced_slot *slots;
    int n_slots, busy, free_head;
    paced_done_fn done;
    void *done_ctx;
};

/* Latency samples in ns. */
typedef struct paced_samples {
    int64_t *v;
    size_t n, cap;
} paced_samples;

/* The webhook receiver: arrival time per job seq. */
typedef struct paced_hook {
    struct MHD_Daemon *daemon;
    _Atomic int64_t *arrived; /* 0 = not yet */
    size_t n;
    atomic_size_t received, stray;
} paced_hook;

typedef struct paced_hook_req {
    int64_t at_ns;
    size_t len;
    char body[PACED_HOOK_BODY_MAX + 1];
} paced_hook_req;

static int64_t paced_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void paced_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {ns / NS_PER_S, ns % NS_PER_S};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* --- samples --- */

static int paced_samples_add(paced_samples *s, int64_t ns)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        int64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
    return 0;
}

static int paced_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile in microseconds of sorted samples; -1 when empty. */
static double paced_pct_us(const paced_samples *s, double p)
{
    if (s->n == 0)
        return -1;
    size_t rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] / 1e3;
}

/* Prints " name_p50_us=.. name_p99_us=.. name_max_us=.." of s (sorted here). */
static void paced_print_pcts(const char *name, paced_samples *s)
{
    qsort(s->v, s->n, sizeof *s->v, paced_cmp_i64);
    printf(" %s_p50_us=%.0f %s_p99_us=%.0f %s_max_us=%.0f", name, paced_pct_us(s, 50), name,
           paced_pct_us(s, 99), name, paced_pct_us(s, 100));
}

/* --- HTTP client: a libcurl multi handle with a fixed set of slots --- */

static size_t paced_discard(char *data, size_t size, size_t n, void *ctx)
{
    (void)data;
    (void)ctx;
    return size * n;
}

static void paced_client_free(paced_client *c)
{
    for (int i = 0; c->slots && i < c->n_slots; i++) {
        if (c->slots[i].easy) {
            curl_multi_remove_handle(c->multi, c->slots[i].easy);
            curl_easy_cleanup(c->slots[i].easy);
        }
    }
    free(c->slots);
    curl_slist_free_all(c->headers);
    if (c->multi)
        curl_multi_cleanup(c->multi);
}

/* Sets up n slots POSTing JSON to url. 0, or -1 with a message on stderr. */
static int paced_client_init(paced_client *c, const char *url, int n, paced_done_fn done,
                             void *done_ctx)
{
    *c = (paced_client){.n_slots = n, .done = done, .done_ctx = done_ctx, .free_head = -1};
    c->multi = curl_multi_init();
    c->slots = calloc((size_t)n, sizeof *c->slots);
    /* "Expect:" off: curl would wait for a 100 Continue before larger bodies. */
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = h ? curl_slist_append(h, "Expect:") : NULL;
    if (!c->multi || !c->slots || !c->headers) {
        fprintf(stderr, "paced: out of memory\n");
        if (!c->headers)
            curl_slist_free_all(h);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        CURL *e = curl_easy_init();
        if (!e) {
            fprintf(stderr, "paced: curl_easy_init failed\n");
            return -1;
        }
        c->slots[i].easy = e;
        c->slots[i].next_free = c->free_head;
        c->free_head = i;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, paced_discard);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, PACED_REQUEST_TIMEOUT_MS);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &c->slots[i]);
    }
    return 0;
}

/* Starts a POST of body (copied) on a free slot. Returns the slot (borrowed,
 * busy until reported done), or NULL when none is free. */
static const paced_slot *paced_client_send(paced_client *c, const char *body, size_t len)
{
    if (c->free_head < 0)
        return NULL;
    paced_slot *s = &c->slots[c->free_head];
    c->free_head = s->next_free;
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(s->easy, CURLOPT_COPYPOSTFIELDS, body);
    s->sent_ns = paced_now_ns();
    curl_multi_add_handle(c->multi, s->easy);
    c->busy++;
    int running;
    /* Writes the request now, so sent_ns is when it left, not the next wait. */
    curl_multi_perform(c->multi, &running);
    return s;
}

static void paced_client_reap(paced_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        int64_t now = paced_now_ns();
        paced_slot *s = NULL;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (m->data.result == CURLE_OK)
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(c->multi, m->easy_handle);
        c->done(c->done_ctx, s, status, now);
        s->next_free = c->free_head;
        c->free_head = (int)(s - c->slots);
        c->busy--;
    }
}

/* Waits for socket activity until until_ns (pselect: curl_multi_poll only
 * knows whole milliseconds, too coarse for a 1 ms pacing), then drives the
 * transfers and reports finished requests. */
static void paced_client_wait(paced_client *c, int64_t until_ns)
{
    fd_set r, w, e;
    int maxfd = -1;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_ZERO(&e);
    curl_multi_fdset(c->multi, &r, &w, &e, &maxfd);
    long curl_ms = -1;
    curl_multi_timeout(c->multi, &curl_ms);
    int64_t wait = until_ns - paced_now_ns();
    if (curl_ms >= 0 && curl_ms * NS_PER_MS < wait)
        wait = curl_ms * NS_PER_MS;
    if (maxfd < 0 && c->busy > 0 && wait > NS_PER_MS)
        wait = NS_PER_MS; /* curl is between sockets (connecting): look again soon */
    if (wait > 0) {
        struct timespec ts = {wait / NS_PER_S, wait % NS_PER_S};
        if (maxfd >= 0)
            pselect(maxfd + 1, &r, &w, &e, &ts, NULL);
        else
            paced_sleep_ns(wait);
    }
    int running;
    curl_multi_perform(c->multi, &running);
    paced_client_reap(c);
}

/* --- webhook receiver (rate mode) --- */

static void paced_hook_record(paced_hook *h, const paced_hook_req *r)
{
    const char *p = strstr(r->body, "\"seq\":");
    char *end;
    unsigned long long seq = p ? strtoull(p + 6, &end, 10) : 0;
    if (!p || end == p + 6 || seq >= h->n) {
        atomic_fetch_add(&h->stray, 1);
        return;
    }
    int64_t none = 0;
    /* A retried job reaches us again: its first start counts. */
    if (atomic_compare_exchange_strong(&h->arrived[seq], &none, r->at_ns))
        atomic_fetch_add(&h->received, 1);
}

static enum MHD_Result paced_hook_access(void *cls, struct MHD_Connection *conn, const char *url,
                                         const char *method, const char *version,
                                         const char *upload, size_t *upload_size, void **con_cls)
{
    (void)url;
    (void)method;
    (void)version;
    paced_hook_req *r = *con_cls;
    if (!r) {
        if (!(r = malloc(sizeof *r)))
            return MHD_NO;
        r->at_ns = paced_now_ns(); /* headers are in: the job has started */
        r->len = 0;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t room = PACED_HOOK_BODY_MAX - r->len;
        size_t take = *upload_size < room ? *upload_size : room;
        memcpy(r->body + r->len, upload, take);
        r->len += take;
        *upload_size = 0;
        return MHD_YES;
    }
    r->body[r->len] = '\0';
    paced_hook_record(cls, r);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void paced_hook_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

/* Starts the receiver on 127.0.0.1:port for seqs 0..n-1. 0, or -1 with a message. */
static int paced_hook_start(paced_hook *h, int port, size_t n)
{
    *h = (paced_hook){.n = n};
    h->arrived = calloc(n ? n : 1, sizeof *h->arrived);
    if (!h->arrived) {
        fprintf(stderr, "paced: out of memory\n");
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, (uint16_t)port, NULL, NULL,
        paced_hook_access, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, paced_hook_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        30u, MHD_OPTION_END);
    if (!h->daemon) {
        fprintf(stderr, "paced: cannot listen on 127.0.0.1:%d\n", port);
        return -1;
    }
    return 0;
}

static void paced_hook_stop(paced_hook *h)
{
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    free(h->arrived);
}

/* --- rate mode --- */

typedef struct paced_rate {
    int64_t *sent_ns; /* per seq */
    paced_samples ack, late;
    size_t ok, errors;
} paced_rate;

static void paced_rate_done(void *ctx, const paced_slot *s, long status, int64_t now_ns)
{
    paced_rate *r = ctx;
    if (status != 202) {
        r->errors++;
        return;
    }
    r->ok++;
    paced_samples_add(&r->ack, now_ns - s->sent_ns);
}

/* Sends the jobs on schedule; job i is due at t0 + i / rate. */
static void paced_rate_send_all(const paced_opts *o, paced_client *c, paced_rate *r, size_t total)
{
    int64_t interval = (int64_t)((double)NS_PER_S / o->rate);
    int64_t t0 = paced_now_ns();
    int64_t hard_end = t0 + (int64_t)(o->duration * NS_PER_S) + 2 * PACED_REQUEST_TIMEOUT_MS * NS_PER_MS;
    size_t next = 0;
    char body[PACED_BODY_MAX];
    while ((next < total || c->busy > 0) && paced_now_ns() < hard_end) {
        int64_t now = paced_now_ns();
        while (next < total && t0 + (int64_t)next * interval <= now) {
            int len = snprintf(body, sizeof body, "{\"type\":\"%s\",\"args\":{\"seq\":%zu}}",
                               o->type, next);
            const paced_slot *s = paced_client_send(c, body, (size_t)len);
            if (!s)
                break; /* every slot busy: this one goes out late, and says so */
            r->sent_ns[next] = s->sent_ns;
            paced_samples_add(&r->late, r->sent_ns[next] - (t0 + (int64_t)next * interval));
            next++;
        }
        int64_t until = next < total ? t0 + (int64_t)next * interval : now + 50 * NS_PER_MS;
        paced_client_wait(c, until);
    }
}

/* Start latency per job that was both accepted and reached the receiver. */
static void paced_rate_starts(const paced_rate *r, const paced_hook *h, size_t total,
                              paced_samples *out)
{
    for (size_t i = 0; i < total; i++) {
        int64_t at = atomic_load(&h->arrived[i]);
        if (at && r->sent_ns[i])
            paced_samples_add(out, at - r->sent_ns[i]);
    }
}

static int paced_run_rate(const paced_opts *o)
{
    size_t total = (size_t)(o->rate * o->duration);
    paced_rate r = {.sent_ns = calloc(total ? total : 1, sizeof(int64_t))};
    paced_client c = {0};
    paced_hook h = {0};
    int rc = 1;
    if (!r.sent_ns || paced_client_init(&c, o->url, o->slots, paced_rate_done, &r) != 0)
        goto out;
    if (o->hook_port && paced_hook_start(&h, o->hook_port, total) != 0)
        goto out;
    int64_t t0 = paced_now_ns();
    paced_rate_send_all(o, &c, &r, total);
    double secs = (double)(paced_now_ns() - t0) / NS_PER_S;
    int64_t hook_end = paced_now_ns() + PACED_HOOK_WAIT_NS;
    while (o->hook_port && atomic_load(&h.received) < r.ok && paced_now_ns() < hook_end)
        paced_sleep_ns(5 * NS_PER_MS);
    printf("mode=rate sent=%zu ok=%zu errors=%zu seconds=%.3f rate=%.1f", total, r.ok, r.errors,
           secs, (double)r.ok / secs);
    paced_print_pcts("ack", &r.ack);
    paced_print_pcts("late", &r.late);
    if (o->hook_port) {
        paced_samples starts = {0};
        paced_rate_starts(&r, &h, total, &starts);
        printf(" started=%zu stray=%zu", atomic_load(&h.received), atomic_load(&h.stray));
        paced_print_pcts("start", &starts);
        free(starts.v);
    }
    printf("\n");
    rc = 0;
out:
    paced_hook_stop(&h);
    paced_client_free(&c);
    free(r.sent_ns);
    free(r.ack.v);
    free(r.late.v);
    return rc;
}

/* --- drain mode --- */

typedef struct paced_reply {
    char buf[PACED_REPLY_MAX + 1];
    size_t len;
} paced_reply;

static size_t paced_keep(char *data, size_t size, size_t n, void *ctx)
{
    paced_reply *r = ctx;
    size_t take = size * n;
    if (take > PACED_REPLY_MAX - r->len)
        take = PACED_REPLY_MAX - r->len;
    memcpy(r->buf + r->len, data, take);
    r->len += take;
    return size * n;
}

/* The queue's processed_total (GET queue_url), or -1 when it cannot be read. */
static long long paced_processed(CURL *get, paced_reply *reply)
{
    reply->len = 0;
    long status = 0;
    if (curl_easy_perform(get) != CURLE_OK)
        return -1;
    curl_easy_getinfo(get, CURLINFO_RESPONSE_CODE, &status);
    reply->buf[reply->len] = '\0';
    const char *p = strstr(reply->buf, "\"processed_total\":");
    if (status != 200 || !p)
        return -1;
    return strtoll(p + strlen("\"processed_total\":"), NULL, 10);
}

typedef struct paced_drain {
    long long accepted, errors; /* jobs */
    int batch;
} paced_drain;

static void paced_drain_done(void *ctx, const paced_slot *s, long status, int64_t now_ns)
{
    (void)s;
    (void)now_ns;
    paced_drain *d = ctx;
    if (status == 202)
        d->accepted += d->batch;
    else
        d->errors += d->batch;
}

/* "[job,job,...]" of n sleep jobs; owned by the caller; NULL on OOM. */
static char *paced_batch_body(int n, int sleep_ms, size_t *len)
{
    char job[96];
    int jl = snprintf(job, sizeof job, "{\"type\":\"sleep\",\"args\":{\"ms\":%d}}", sleep_ms);
    char *body = malloc((size_t)n * ((size_t)jl + 1) + 2);
    if (!body)
        return NULL;
    char *p = body;
    *p++ = '[';
    for (int i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, job, (size_t)jl);
        p += jl;
    }
    *p++ = ']';
    *p = '\0';
    *len = (size_t)(p - body);
    return body;
}

static CURL *paced_get_handle(const char *url, paced_reply *reply)
{
    CURL *get = curl_easy_init();
    if (!get)
        return NULL;
    curl_easy_setopt(get, CURLOPT_URL, url);
    curl_easy_setopt(get, CURLOPT_WRITEFUNCTION, paced_keep);
    curl_easy_setopt(get, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(get, CURLOPT_TIMEOUT_MS, PACED_REQUEST_TIMEOUT_MS);
    curl_easy_setopt(get, CURLOPT_NOSIGNAL, 1L);
    return get;
}

static int paced_run_drain(const paced_opts *o)
{
    paced_drain d = {.batch = o->batch};
    paced_client c = {0};
    paced_reply *reply = calloc(1, sizeof *reply);
    size_t len = 0;
    char *body = paced_batch_body(o->batch, o->sleep_ms, &len);
    CURL *get = reply ? paced_get_handle(o->queue_url, reply) : NULL;
    int rc = 1;
    if (!body || !get || paced_client_init(&c, o->url, o->slots, paced_drain_done, &d) != 0)
        goto out;
    long long base = paced_processed(get, reply), done = 0;
    if (base < 0) {
        fprintf(stderr, "paced: cannot read processed_total from %s\n", o->queue_url);
        goto out;
    }
    int64_t t_first = paced_now_ns(), next_poll = t_first;
    int64_t t_stop = t_first + (int64_t)(o->duration * NS_PER_S);
    while (paced_now_ns() < t_stop || c.busy > 0) {
        int64_t now = paced_now_ns();
        if (now >= next_poll) {
            long long p = paced_processed(get, reply);
            done = p >= 0 ? p - base : done;
            next_poll = now + PACED_POLL_NS;
        }
        while (now < t_stop && d.accepted + (long long)(c.busy + 1) * o->batch - done <= o->backlog &&
               paced_client_send(&c, body, len))
            ;
        paced_client_wait(&c, next_poll < t_stop ? next_poll : t_stop);
    }
    double submit_s = (double)(paced_now_ns() - t_first) / NS_PER_S;
    int64_t give_up = paced_now_ns() + (int64_t)(o->deadline * NS_PER_S);
    int64_t t_done = 0;
    while (!t_done && paced_now_ns() < give_up) {
        long long p = paced_processed(get, reply);
        done = p >= 0 ? p - base : done;
        if (done >= d.accepted)
            t_done = paced_now_ns();
        else
            paced_sleep_ns(PACED_FINISH_POLL_NS);
    }
    double total_s = (double)((t_done ? t_done : paced_now_ns()) - t_first) / NS_PER_S;
    printf("mode=drain accepted=%lld errors=%lld processed=%lld complete=%d submit_s=%.3f "
           "total_s=%.3f submit_rate=%.1f jobs_per_s=%.1f\n",
           d.accepted, d.errors, done, t_done != 0, submit_s, total_s,
           (double)d.accepted / submit_s, (double)(done < d.accepted ? done : d.accepted) / total_s);
    rc = 0;
out:
    paced_client_free(&c);
    if (get)
        curl_easy_cleanup(get);
    free(reply);
    free(body);
    return rc;
}

/* --- options --- */

static const char paced_usage[] =
    "usage: paced rate  --url URL --rate N --duration S [--hook-port P] [--type T] [--slots N]\n"
    "       paced drain --url URL --queue-url URL --duration S [--batch N] [--backlog N]\n"
    "                   [--deadline S] [--sleep-ms N] [--slots N]\n";

/* 0 when o is complete and sane, else 2 with the usage on stderr. */
static int paced_parse(int argc, char **argv, paced_opts *o)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},      {"queue-url", required_argument, NULL, 'q'},
        {"rate", required_argument, NULL, 'r'},     {"duration", required_argument, NULL, 'd'},
        {"hook-port", required_argument, NULL, 'h'}, {"type", required_argument, NULL, 't'},
        {"slots", required_argument, NULL, 's'},    {"batch", required_argument, NULL, 'b'},
        {"backlog", required_argument, NULL, 'B'},  {"deadline", required_argument, NULL, 'D'},
        {"sleep-ms", required_argument, NULL, 'm'}, {NULL, 0, NULL, 0},
    };
    *o = (paced_opts){.slots = 64, .batch = 100, .backlog = 20000, .deadline = 120, .sleep_ms = 1};
    if (argc < 2) {
        fputs(paced_usage, stderr);
        return 2;
    }
    o->mode = argv[1];
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'u': o->url = optarg; break;
        case 'q': o->queue_url = optarg; break;
        case 'r': o->rate = atof(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'h': o->hook_port = atoi(optarg); break;
        case 't': o->type = optarg; break;
        case 's': o->slots = atoi(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'B': o->backlog = atol(optarg); break;
        case 'D': o->deadline = atof(optarg); break;
        case 'm': o->sleep_ms = atoi(optarg); break;
        default: fputs(paced_usage, stderr); return 2;
        }
    }
    if (!o->type)
        o->type = o->hook_port ? "hook" : "noop";
    bool rate = strcmp(o->mode, "rate") == 0, drain = strcmp(o->mode, "drain") == 0;
    bool ok = (rate || drain) && o->url && o->duration > 0 && o->duration <= 3600 &&
              o->slots >= 1 && o->slots <= PACED_SLOTS_MAX && o->deadline > 0 &&
              (!rate || (o->rate > 0 && o->rate * o->duration <= 1e7 && o->hook_port >= 0 &&
                         o->hook_port < 65536)) &&
              (!drain || (o->queue_url && o->batch >= 1 && o->batch <= 100000 &&
                          o->backlog >= o->batch && o->sleep_ms >= 0));
    if (!ok || optind < argc) {
        fputs(paced_usage, stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    paced_opts o;
    int rc = paced_parse(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "paced: curl_global_init failed\n");
        return 1;
    }
    rc = strcmp(o.mode, "rate") == 0 ? paced_run_rate(&o) : paced_run_drain(&o);
    fflush(stdout);
    curl_global_cleanup();
    return rc;
}
