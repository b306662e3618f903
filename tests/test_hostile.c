/* test_hostile.c - hostile input against the real jobd binary over loopback:
 * raw requests that bend HTTP (the .req files of tests/data/hostile), heads at the edge of
 * libmicrohttpd's memory pool, a chunked body that never ends, a batch of
 * empty objects, slow and idle connections, pipelining, Expect, a burst of
 * submissions, hostile JSON, and listen addresses other than IPv4 literals.
 * Inline queues with no workers, so an accepted job stays `enqueued`. */
#include "support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define DATA_DIR "tests/data/hostile"
#define HS_MAX_BODY 4096
#define HS_ANSWER_MS 3000 /* how long a raw exchange waits for the whole answer */

static const char hs_config[] =
    "{\"workers\": 0, \"shutdown_timeout\": 2,"
    " \"limits\": {\"max_body\": 4096, \"max_batch\": 10},"
    " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}";

static ts_jobd srv;

static void hs_teardown(void)
{
    if (srv.pid > 0)
        ts_jobd_stop(&srv, SIGTERM, 10000);
}

TestSuite(hostile, .fini = hs_teardown, .timeout = 120);

static int hs_up(const char *config)
{
    cr_assert_eq(ts_jobd_start(&srv, config, NULL), 0, "jobd did not start");
    return srv.port;
}

/* A blocking TCP connection to 127.0.0.1:port from source address src
 * (NULL = any; other 127.x addresses are loopback too, and let a test be
 * several clients). -1 on failure. */
static int hs_connect(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (src) {
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(fd);
            return -1;
        }
    }
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool hs_send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads from fd until the peer closes or ms pass; new NUL-terminated memory. */
static char *hs_read_all(int fd, int ms, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    long long deadline = ts_now_ms() + ts_patience(ms);
    while (buf) {
        int left = (int)(deadline - ts_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if (cap - n < 2048 && !(buf = realloc(buf, cap *= 2)))
            break;
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* The status of the first answer in text, 0 when there is none. */
static int hs_status(const char *text)
{
    int status = 0;
    return text && sscanf(text, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

/* How many answers (status lines) text holds; a pipelined answer follows
 * the previous body directly. */
static int hs_count_answers(const char *text)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "HTTP/1.1 ")); p++)
        n++;
    return n;
}

/* The error code of the first answer's JSON body, "" when none (new memory). */
static char *hs_error_code(const char *text)
{
    const char *body = text ? strstr(text, "\r\n\r\n") : NULL;
    json_t *j = body ? json_loads(body + 4, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    char *out = strdup(code ? code : "");
    json_decref(j);
    return out;
}

/* One connection: sends req whole, returns all that comes back until the
 * server closes (new memory; "" when nothing). */
static char *hs_exchange(int port, const char *req, size_t len)
{
    int fd = hs_connect(port, NULL);
    cr_assert_geq(fd, 0, "cannot connect to jobd");
    hs_send_all(fd, req, len);
    size_t n;
    char *out = hs_read_all(fd, HS_ANSWER_MS, &n);
    close(fd);
    cr_assert_not_null(out);
    return out;
}

static void hs_expect_alive(int port)
{
    ts_resp r;
    ts_get(&r, port, "/healthz");
    cr_expect_eq(r.status, 200, "jobd does not answer /healthz any more");
    ts_resp_free(&r);
}

/* A job that the requests of the data files can name. */
static void hs_seed_job(int port, const char *id)
{
    char body[128];
    snprintf(body, sizeof body, "{\"type\": \"noop\", \"id\": \"%s\"}", id);
    ts_resp r;
    ts_post(&r, port, "/queues/local/jobs", body);
    cr_assert_eq(r.status, 202, "seed job: %ld %s", r.status, r.body);
    ts_resp_free(&r);
}

static const char *hs_job_state(int port, const char *id, char *buf, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "/queues/local/jobs/%s", id);
    ts_resp r;
    ts_get(&r, port, path);
    snprintf(buf, len, "%s",
             r.status == 200 ? json_string_value(json_object_get(r.json, "state")) : "absent");
    ts_resp_free(&r);
    return buf;
}

/* A .req file as the bytes to send: after its first line ("expect STATUS
 * CODE", CODE "-" for none), every \n becomes \r\n; a head without a body
 * gets its closing blank line; @LEN@ is the length of the body. */
static char *hs_load_req(const char *path, int *status, char *code, size_t *len)
{
    char *text = ts_read_file(path, NULL);
    cr_assert_not_null(text, "cannot read %s", path);
    cr_assert_eq(sscanf(text, "expect %d %31s", status, code), 2, "%s: no expect line", path);
    const char *src = strchr(text, '\n') + 1;
    size_t n = strlen(src);
    char *crlf = malloc(2 * n + 8), *q = crlf;
    for (const char *p = src; *p; p++) {
        if (*p == '\n')
            *q++ = '\r';
        *q++ = *p;
    }
    *q = '\0';
    const char *sep = strstr(crlf, "\r\n\r\n");
    if (!sep)
        strcat(crlf, "\r\n");
    sep = strstr(crlf, "\r\n\r\n");
    char num[24];
    snprintf(num, sizeof num, "%zu", strlen(sep + 4));
    size_t out_cap = strlen(crlf) + 64;
    char *out = malloc(out_cap), *o = out;
    for (const char *p = crlf; *p;) {
        if (strncmp(p, "@LEN@", 5) == 0) {
            o += sprintf(o, "%s", num);
            p += 5;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    *len = (size_t)(o - out);
    free(crlf);
    free(text);
    return out;
}

/* Every file of tests/data/hostile gets one answer of its documented status
 * and JSON error code, and the job it names is untouched. Fails before the
 * fixes: %00 cut paths (GET answered local's view, DELETE cancelled "seed"),
 * conflicting Content-Length was accepted, Transfer-Encoding: gzip hung, a
 * folded header was dropped. */
Test(hostile, raw_requests_get_their_documented_answer)
{
    int port = hs_up(hs_config);
    hs_seed_job(port, "seed");
    DIR *d = opendir(DATA_DIR);
    cr_assert_not_null(d, "no folder " DATA_DIR);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 4, ".req") != 0)
            continue;
        char path[512], code[32];
        snprintf(path, sizeof path, DATA_DIR "/%s", e->d_name);
        int status;
        size_t len;
        char *req = hs_load_req(path, &status, code, &len);
        char *out = hs_exchange(port, req, len);
        char *got = hs_error_code(out);
        cr_expect_eq(hs_status(out), status, "%s: answered %d, want %d:\n%.300s", e->d_name,
                     hs_status(out), status, out);
        cr_expect_str_eq(got, strcmp(code, "-") == 0 ? "" : code, "%s: code %s, want %s",
                         e->d_name, got, code);
        cr_expect_eq(hs_count_answers(out), 1, "%s: %d answers:\n%.600s", e->d_name,
                     hs_count_answers(out), out);
        free(got);
        free(out);
        free(req);
        files++;
    }
    closedir(d);
    cr_expect_gt(files, 10, "only %d request files", files);
    char st[32];
    cr_expect_str_eq(hs_job_state(port, "seed", st, sizeof st), "enqueued");
    cr_expect_str_eq(hs_job_state(port, "folded", st, sizeof st), "absent");
    hs_expect_alive(port);
}

/* How a head is made big: one long header, many tiny headers, many cookies
 * in one Cookie header, many query arguments. */
typedef enum hs_bulk { HS_PAD, HS_HEADERS, HS_COOKIES, HS_ARGS, HS_BULK_KINDS } hs_bulk;

static const struct {
    size_t from, to, step;
} hs_sweeps[HS_BULK_KINDS] = {
    [HS_PAD] = {14000, 16500, 23},
    [HS_HEADERS] = {150, 260, 1},
    [HS_COOKIES] = {150, 215, 1},
    [HS_ARGS] = {180, 229, 1}, /* from 231 on, libmicrohttpd closes without its 431 */
};

/* A POST head made big by n of kind; id names the job. New memory. */
static char *hs_big_head(const char *id, hs_bulk kind, size_t n, size_t *len)
{
    static const char job[] = "{\"type\": \"noop\"}";
    size_t cap = 1024 + n * 16;
    char *req = malloc(cap);
    size_t off = (size_t)sprintf(req, "POST /queues/local/jobs");
    for (size_t i = 0; kind == HS_ARGS && i < n; i++)
        off += (size_t)sprintf(req + off, "%sa%zu=1", i ? "&" : "?", i);
    off += (size_t)sprintf(req + off,
                           " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\nIdempotency-Key: %s\r\n"
                           "Content-Length: %zu\r\n",
                           id, sizeof job - 1);
    for (size_t i = 0; kind == HS_HEADERS && i < n; i++)
        off += (size_t)sprintf(req + off, "X%zu: a\r\n", i);
    if (kind == HS_COOKIES) {
        off += (size_t)sprintf(req + off, "Cookie: ");
        for (size_t i = 0; i < n; i++)
            off += (size_t)sprintf(req + off, "%sc%zu=1", i ? "; " : "", i);
        off += (size_t)sprintf(req + off, "\r\n");
    }
    if (kind == HS_PAD) {
        memcpy(req + off, "X-Pad: ", 7);
        memset(req + off + 7, 'a', n);
        off += 7 + n;
        memcpy(req + off, "\r\n", 2);
        off += 2;
    }
    off += (size_t)sprintf(req + off, "\r\n%s", job);
    *len = off;
    return req;
}

/* Defect 14: heads near the 16 KiB pool (one big header, or a couple hundred
 * tiny headers, cookies or query arguments) were stored and then got no
 * answer at all. Now each gets 202 or 431, and a job exists exactly when 202
 * said so. Heads that do not fit the pool at all get libmicrohttpd's own 431
 * (HTML), checked for status only; jobd's JSON 431 must show up in each
 * sweep. */
Test(hostile, every_head_size_gets_an_answer)
{
    int port = hs_up(hs_config);
    for (int round = 0; round < HS_BULK_KINDS; round++) {
        int answered_202 = 0, answered_431 = 0;
        size_t from = hs_sweeps[round].from, to = hs_sweeps[round].to;
        for (size_t v = from; v < to; v += hs_sweeps[round].step) {
            char id[48];
            snprintf(id, sizeof id, "head-%d-%zu", round, v);
            size_t len;
            char *req = hs_big_head(id, (hs_bulk)round, v, &len);
            char *out = hs_exchange(port, req, len);
            int status = hs_status(out);
            char st[32];
            const char *state = hs_job_state(port, id, st, sizeof st);
            cr_expect(status == 202 || status == 431, "head of %zu bytes: answered %d (%s)",
                      len, status, status ? "" : "nothing at all");
            cr_expect_eq(strcmp(state, "enqueued") == 0, status == 202,
                         "head of %zu bytes: answered %d, job %s", len, status, state);
            char *code = hs_error_code(out);
            bool mhd_own = strstr(out, "<html>") != NULL;
            if (status == 431 && !mhd_own)
                cr_expect_str_eq(code, "headers_too_large", "head of %zu bytes", len);
            free(code);
            answered_202 += status == 202;
            answered_431 += status == 431 && !mhd_own;
            free(out);
            free(req);
        }
        cr_expect_gt(answered_202, 0, "sweep %d: no 202", round);
        cr_expect_gt(answered_431, 0, "sweep %d: no JSON 431", round);
    }
    hs_expect_alive(port);
}

/* Defect 16: a chunked body over max_body without its final chunk was read
 * on in silence; now 413 comes as soon as it passes max_body, and the
 * connection closes. */
Test(hostile, endless_chunked_body_answered_413_at_once)
{
    int port = hs_up(hs_config);
    int fd = hs_connect(port, NULL);
    cr_assert_geq(fd, 0);
    const char head[] = "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\nX-Request-Id: chunky-1\r\n"
                        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    cr_assert(hs_send_all(fd, head, sizeof head - 1));
    char chunk[1024 + 16];
    int n = sprintf(chunk, "400\r\n");
    memset(chunk + n, ' ', 1024);
    memcpy(chunk + n + 1024, "\r\n", 2);
    size_t chunk_len = (size_t)n + 1026, sent = 0;
    bool readable = false;
    while (sent < 64 * HS_MAX_BODY && !readable) {
        if (!hs_send_all(fd, chunk, chunk_len))
            break; /* closed on us: the answer is waiting */
        sent += 1024;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        readable = poll(&p, 1, 0) > 0;
    }
    size_t len;
    char *out = hs_read_all(fd, 2000, &len);
    close(fd);
    cr_expect_eq(hs_status(out), 413, "after %zu body bytes: %.200s", sent, out);
    cr_expect(strstr(out, "\r\nX-Request-Id: chunky-1\r\n") != NULL, "raw answer: %.300s", out);
    char *code = hs_error_code(out);
    cr_expect_str_eq(code, "payload_too_large");
    free(code);
    free(out);
    hs_expect_alive(port);
}

/* VmHWM (peak resident set) of pid in KiB, -1 when unknown. */
static long hs_peak_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = ts_read_file(path, NULL);
    const char *p = text ? strstr(text, "VmHWM:") : NULL;
    long kib = p ? strtol(p + 6, NULL, 10) : -1;
    free(text);
    return kib;
}

typedef struct hs_post_arg {
    int port;
    const char *req;
    size_t len;
    char *out;
} hs_post_arg;

static void *hs_post_thread(void *p)
{
    hs_post_arg *a = p;
    int fd = hs_connect(a->port, NULL);
    if (fd >= 0) {
        hs_send_all(fd, a->req, a->len);
        size_t n;
        a->out = hs_read_all(fd, 20000, &n);
        close(fd);
    }
    return NULL;
}

/* Defect 17: a 1 MiB batch of 349,524 `{}` was parsed whole before its size
 * was checked (~80 MiB each; two at once took jobd to ~155 MiB). Now it is
 * refused from a scan of the text: the peak RSS grows by about the bodies. */
Test(hostile, oversized_batch_refused_without_parsing_it)
{
    int port = hs_up("{\"workers\": 0, \"http_threads\": 2,"
                     " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}");
    size_t max = 1 << 20, n_items = (max - 2) / 3;
    char *req = malloc(max + 512);
    int head = sprintf(req,
                       "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n[",
                       n_items * 3 + 1);
    char *p = req + head;
    for (size_t i = 0; i < n_items; i++) {
        memcpy(p, i ? ",{}" : "{}", i ? 3 : 2);
        p += i ? 3 : 2;
    }
    *p++ = ']';
    long before = hs_peak_kib(srv.pid);
    hs_post_arg a[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (hs_post_arg){port, req, (size_t)(p - req), NULL};
        pthread_create(&t[i], NULL, hs_post_thread, &a[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(hs_status(a[i].out), 422, "%.200s", a[i].out);
        char *code = hs_error_code(a[i].out);
        cr_expect_str_eq(code, "batch_too_large");
        free(code);
        free(a[i].out);
    }
    long after = hs_peak_kib(srv.pid);
    cr_log_info("peak RSS before %ld KiB, after two 1 MiB batches %ld KiB", before, after);
    cr_expect_lt(after - before, 16 * 1024, "peak RSS grew by %ld KiB", after - before);
    free(req);
}

/* Raises the soft limit on open files to want (at most the hard limit);
 * the jobd started afterwards inherits it. */
static void hs_raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

typedef struct hs_slow {
    int *fds;
    size_t n;
    atomic_bool stop;
} hs_slow;

/* Sends one more byte of a never-ending head on every open connection each
 * 250 ms: never idle, never done. */
static void *hs_slow_thread(void *p)
{
    hs_slow *s = p;
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (size_t i = 0; i < 400 && !atomic_load(&s->stop); i++) {
        for (size_t k = 0; k < s->n; k++) {
            if (s->fds[k] < 0)
                continue;
            char ch = i < sizeof head - 1 ? head[i] : 'a';
            if (send(s->fds[k], &ch, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
                s->fds[k] = -1 - s->fds[k]; /* closed by jobd; keep the fd to close */
        }
        ts_sleep_ms(250);
    }
    return NULL;
}

/* A normal client's request time in ms (-1 on failure). */
static long long hs_timed_get(int port, const char *path)
{
    ts_resp r;
    long long t0 = ts_now_ms();
    ts_get(&r, port, path);
    long long ms = r.status == 200 ? ts_now_ms() - t0 : -1;
    ts_resp_free(&r);
    return ms;
}

/* Defect 18: heads that trickle in a byte at a time are cut at the head
 * deadline (header_timeout, 2 s here), and one address gets at most
 * max_connections_per_ip connections; meanwhile a normal client is answered
 * within a second every time. */
Test(hostile, slowloris_cut_at_head_deadline_while_others_are_served)
{
    enum { N_ADDR = 6, PER_ADDR = 60, LIMIT = 50 };
    hs_raise_nofile(4096);
    int port = hs_up("{\"workers\": 0, \"limits\": {\"header_timeout\": 2,"
                     " \"max_connections_per_ip\": 50},"
                     " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}");
    hs_slow s = {.fds = calloc(N_ADDR * PER_ADDR, sizeof(int)), .n = N_ADDR * PER_ADDR};
    atomic_init(&s.stop, false);
    for (size_t k = 0; k < s.n; k++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.0.%zu", 2 + k / PER_ADDR);
        s.fds[k] = hs_connect(port, src);
        cr_assert_geq(s.fds[k], 0, "connection %zu from %s failed", k, src);
    }
    long long t0 = ts_now_ms();
    pthread_t slow;
    pthread_create(&slow, NULL, hs_slow_thread, &s);
    long long worst = 0;
    for (int i = 0; i < 20; i++) {
        long long ms = hs_timed_get(port, "/queues/local");
        cr_expect_geq(ms, 0, "request %d failed", i);
        worst = ms > worst ? ms : worst;
        ts_sleep_ms(100);
    }
    cr_log_info("slowloris: worst normal request %lld ms", worst);
    cr_expect_leq(worst, ts_patience(1000), "a normal request took %lld ms", worst);
    /* by the deadline plus the sweep, every slow connection is closed */
    size_t closed = 0;
    long long deadline = t0 + ts_patience(6000);
    while (ts_now_ms() < deadline) {
        closed = 0;
        for (size_t k = 0; k < s.n; k++) {
            int fd = s.fds[k] < 0 ? -1 - s.fds[k] : s.fds[k];
            char b;
            closed += recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK) == 0 ||
                      (errno != EAGAIN && errno != EWOULDBLOCK);
        }
        if (closed == s.n)
            break;
        ts_sleep_ms(100);
    }
    atomic_store(&s.stop, true);
    pthread_join(slow, NULL);
    cr_expect_eq(closed, s.n, "%zu of %zu slow connections still open after %lld ms", s.n - closed,
                 s.n, ts_now_ms() - t0);
    cr_expect(ts_log_contains(&srv, "http.head_timeout"));
    for (size_t k = 0; k < s.n; k++)
        close(s.fds[k] < 0 ? -1 - s.fds[k] : s.fds[k]);
    free(s.fds);
    hs_expect_alive(port);
}

/* The per-address limit on its own: the connections past it are closed at
 * once, those within it stay open, and other addresses are not affected. */
Test(hostile, connections_per_address_are_limited)
{
    enum { LIMIT = 20, EXTRA = 10 };
    int port = hs_up("{\"workers\": 0, \"limits\": {\"max_connections_per_ip\": 20},"
                     " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}");
    int fds[LIMIT + EXTRA];
    for (int k = 0; k < LIMIT + EXTRA; k++)
        cr_assert_geq(fds[k] = hs_connect(port, "127.0.0.2"), 0);
    int refused = 0;
    long long deadline = ts_now_ms() + ts_patience(2000);
    while (ts_now_ms() < deadline) {
        refused = 0;
        for (int k = 0; k < LIMIT + EXTRA; k++) {
            char b;
            refused += recv(fds[k], &b, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
        }
        if (refused >= EXTRA)
            break;
        ts_sleep_ms(20);
    }
    cr_expect_eq(refused, EXTRA, "%d connections past the limit were closed", refused);
    ts_resp r;
    ts_get(&r, port, "/healthz"); /* from 127.0.0.1 */
    cr_expect_eq(r.status, 200);
    ts_resp_free(&r);
    for (int k = 0; k < LIMIT + EXTRA; k++)
        close(fds[k]);
}

/* Thousands of connections that send nothing: a normal client still gets
 * every answer within a second. */
Test(hostile, thousands_of_idle_connections)
{
    enum { N = 3000 };
    hs_raise_nofile(N + 1024);
    int port = hs_up("{\"workers\": 0, \"limits\": {\"max_connections_per_ip\": 0},"
                     " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}");
    int *fds = calloc(N, sizeof *fds);
    int open_n = 0;
    for (; open_n < N; open_n++)
        if ((fds[open_n] = hs_connect(port, NULL)) < 0)
            break;
    cr_expect_eq(open_n, N, "only %d connections could be opened", open_n);
    long long worst = 0;
    for (int i = 0; i < 10; i++) {
        long long ms = hs_timed_get(port, "/queues/local");
        cr_expect_geq(ms, 0, "request %d failed", i);
        worst = ms > worst ? ms : worst;
    }
    cr_log_info("%d idle connections: worst normal request %lld ms", open_n, worst);
    cr_expect_leq(worst, ts_patience(1000), "a normal request took %lld ms", worst);
    int still_open = 0;
    for (int k = 0; k < open_n; k++) {
        char b;
        still_open += recv(fds[k], &b, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
    }
    /* below 3072 connections the head deadline is header_timeout (10 s) */
    cr_expect_eq(still_open, open_n, "%d of %d idle connections were cut early", open_n - still_open,
                 open_n);
    for (int k = 0; k < open_n; k++)
        close(fds[k]);
    free(fds);
    hs_expect_alive(port);
}

/* With 3/4 of the 4096 connections taken by heads that do not come (from
 * many addresses, each within its limit), a head gets 1 s instead of
 * header_timeout, so the connections free up long before 30 s. */
Test(hostile, crowded_server_cuts_late_heads_after_a_second)
{
    enum { N = 3300, PRESSURE = 3072 };
    hs_raise_nofile(N + 1024);
    int port = hs_up("{\"workers\": 0, \"limits\": {\"max_connections_per_ip\": 0,"
                     " \"header_timeout\": 30},"
                     " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}");
    int *fds = calloc(N, sizeof *fds);
    long long t0 = ts_now_ms();
    for (int k = 0; k < N; k++)
        cr_assert_geq(fds[k] = hs_connect(port, NULL), 0, "connection %d", k);
    int closed = 0;
    long long deadline = ts_now_ms() + ts_patience(5000);
    while (ts_now_ms() < deadline && closed <= N - PRESSURE) {
        closed = 0;
        for (int k = 0; k < N; k++) {
            char b;
            closed += recv(fds[k], &b, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
        }
        ts_sleep_ms(100);
    }
    cr_log_info("crowded: %d of %d late heads cut after %lld ms", closed, N, ts_now_ms() - t0);
    cr_expect_gt(closed, N - PRESSURE, "only %d of %d cut", closed, N);
    long long ms = hs_timed_get(port, "/healthz");
    cr_expect(ms >= 0 && ms <= ts_patience(1000), "a normal request took %lld ms", ms);
    for (int k = 0; k < N; k++)
        close(fds[k]);
    free(fds);
}

/* Three requests in one write come back as three answers, in order. */
Test(hostile, pipelined_requests_answered_in_order)
{
    int port = hs_up(hs_config);
    const char req[] = "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\nIdempotency-Key: piped\r\n"
                       "Content-Length: 16\r\n\r\n{\"type\": \"noop\"}"
                       "GET /queues/local/jobs/piped HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /queues/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *out = hs_exchange(port, req, sizeof req - 1);
    cr_expect_eq(hs_count_answers(out), 3, "%s", out);
    const char *second = strstr(out + 1, "HTTP/1.1 ");
    const char *third = second ? strstr(second + 1, "HTTP/1.1 ") : NULL;
    cr_expect_eq(hs_status(out), 202);
    cr_expect_eq(hs_status(second), 200);
    cr_expect_eq(hs_status(third), 404);
    free(out);
}

/* Expect: 100-continue gets its interim answer, then the real one; a body
 * announced over max_body gets 413 without 100. */
Test(hostile, expect_100_continue)
{
    int port = hs_up(hs_config);
    int fd = hs_connect(port, NULL);
    const char head[] = "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                        "Content-Length: 16\r\n\r\n";
    cr_assert(hs_send_all(fd, head, sizeof head - 1));
    char buf[64] = "";
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, ts_patience(2000)), 1, "no 100 Continue");
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    cr_expect_geq(n, 0);
    cr_expect_eq(hs_status(buf), 100, "%s", buf);
    cr_assert(hs_send_all(fd, "{\"type\": \"noop\"}", 16));
    size_t len;
    char *out = hs_read_all(fd, 2000, &len);
    close(fd);
    cr_expect_eq(hs_status(strstr(out, "HTTP/1.1") ? strstr(out, "HTTP/1.1") : out), 202, "%s",
                 out);
    free(out);
    const char big[] = "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                       "Content-Length: 100000\r\n\r\n";
    out = hs_exchange(port, big, sizeof big - 1);
    cr_expect_eq(hs_status(out), 413, "%s", out);
    cr_expect_eq(hs_count_answers(out), 1, "%s", out);
    free(out);
}

/* 2,000 submissions on 2,000 connections at once: each answered 202 and each
 * job found afterwards. */
Test(hostile, burst_of_2000_submissions_all_found)
{
    enum { N = 2000 };
    hs_raise_nofile(N + 1024);
    int port = hs_up("{\"workers\": 0, \"limits\": {\"max_connections_per_ip\": 0},"
                     " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}");
    int *fds = calloc(N, sizeof *fds);
    for (int i = 0; i < N; i++) {
        char req[256];
        int len = snprintf(req, sizeof req,
                           "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\nContent-Length: 16\r\n"
                           "Idempotency-Key: burst-%d\r\n\r\n{\"type\": \"noop\"}",
                           i);
        fds[i] = hs_connect(port, NULL);
        cr_assert_geq(fds[i], 0, "connection %d", i);
        cr_assert(hs_send_all(fds[i], req, (size_t)len));
    }
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        size_t len;
        char *out = hs_read_all(fds[i], 10000, &len);
        close(fds[i]);
        accepted += hs_status(out) == 202;
        free(out);
    }
    cr_expect_eq(accepted, N, "%d of %d answered 202", accepted, N);
    int found = 0;
    for (int i = 0; i < N; i++) {
        char id[32], st[32];
        snprintf(id, sizeof id, "burst-%d", i);
        found += strcmp(hs_job_state(port, id, st, sizeof st), "enqueued") == 0;
    }
    cr_expect_eq(found, N, "%d of %d jobs found", found, N);
    free(fds);
}

/* Bodies that attack the parser, each with its documented status. */
static const struct hs_body {
    const char *name;
    const char *body; /* NULL: built by the test */
    size_t len;       /* 0: strlen(body) */
    int status;
    const char *code;
} hs_bodies[] = {
    {"huge real", "{\"type\": \"noop\", \"args\": 1e99999}", 0, 400, "invalid_json"},
    {"huge integer", "{\"type\": \"noop\", \"args\": 123456789012345678901234567890}", 0, 400,
     "invalid_json"},
    {"huge max_attempts", "{\"type\": \"noop\", \"max_attempts\": 1e300}", 0, 422, "invalid_job"},
    {"huge delay", "{\"type\": \"noop\", \"delay\": 1e300}", 0, 422, "invalid_job"},
    {"invalid UTF-8 in type", "{\"type\": \"no\xff\xfeop\"}", 0, 400, "invalid_json"},
    {"invalid UTF-8 in id", "{\"type\": \"noop\", \"id\": \"a\xc3\"}", 0, 400, "invalid_json"},
    {"invalid UTF-8 in args", "{\"type\": \"noop\", \"args\": {\"k\": \"\xed\xa0\x80\"}}", 0,
     400, "invalid_json"},
    {"invalid UTF-8 in a key", "{\"type\": \"noop\", \"args\": {\"\xc0\xaf\": 1}}", 0, 400,
     "invalid_json"},
    {"escaped NUL in type", "{\"type\": \"no\\u0000op\"}", 0, 400, "invalid_json"},
    {"escaped NUL in id", "{\"type\": \"noop\", \"id\": \"a\\u0000b\"}", 0, 400, "invalid_json"},
    {"escaped NUL in args", "{\"type\": \"noop\", \"args\": \"a\\u0000b\"}", 0, 400,
     "invalid_json"},
    {"escaped NUL in scheduled_at", "{\"type\": \"noop\", \"scheduled_at\": \"2030\\u0000\"}", 0,
     400, "invalid_json"},
    {"raw NUL in a string", "{\"type\": \"no\0op\"}", 18, 400, "invalid_json"},
    {"raw NUL after the object", "{\"type\": \"noop\"}\0", 17, 400, "invalid_json"},
    {"duplicate key", "{\"type\": \"noop\", \"type\": \"noop\"}", 0, 400, "invalid_json"},
    {"duplicate key in args", "{\"type\": \"noop\", \"args\": {\"a\": 1, \"a\": 2}}", 0, 400,
     "invalid_json"},
    {"duplicate id in a batch", "[{\"type\": \"noop\", \"id\": \"d\"}, {\"type\": \"noop\", "
     "\"id\": \"d\"}]", 0, 422, "invalid_job"},
    {"nested past the parser", NULL, 4000, 400, "invalid_json"},
    {"args nested past 64", NULL, 65, 422, "invalid_job"},
};

/* Hostile JSON: documented status each time, nothing stored. */
Test(hostile, hostile_json_bodies)
{
    int port = hs_up(hs_config);
    for (size_t i = 0; i < sizeof hs_bodies / sizeof hs_bodies[0]; i++) {
        const struct hs_body *b = &hs_bodies[i];
        char built[HS_MAX_BODY];
        const char *body = b->body;
        size_t len = b->len ? b->len : body ? strlen(body) : 0;
        if (!body && b->status == 400) { /* [[[[...: deeper than jansson goes */
            memset(built, '[', b->len);
            built[b->len] = '\0';
        } else if (!body) { /* args of depth len */
            int n = sprintf(built, "{\"type\": \"noop\", \"args\": ");
            memset(built + n, '[', b->len);
            memset(built + n + b->len, ']', b->len);
            strcpy(built + n + 2 * b->len, "}");
            len = strlen(built);
        }
        if (!body)
            body = built;
        char req[HS_MAX_BODY + 512];
        int head = sprintf(req,
                           "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                           len);
        memcpy(req + head, body, len);
        char *out = hs_exchange(port, req, (size_t)head + len);
        char *code = hs_error_code(out);
        cr_expect_eq(hs_status(out), b->status, "%s: %.300s", b->name, out);
        cr_expect_str_eq(code, b->code, "%s", b->name);
        free(code);
        free(out);
    }
    ts_resp r;
    ts_get(&r, port, "/queues/local");
    json_t *counts = json_object_get(r.json, "counts");
    cr_expect_eq(json_integer_value(json_object_get(counts, "enqueued")), 0,
                 "a hostile body was stored: %s", r.body);
    ts_resp_free(&r);
}

/* A request target longer than the head allows: 431 from jobd up to the
 * pool, libmicrohttpd's own (HTML) past it; jobd stays up either way. */
Test(hostile, over_long_paths)
{
    int port = hs_up(hs_config);
    static const size_t lens[] = {200, 15300, 40000};
    static const int want[] = {404, 431, 0};
    for (size_t i = 0; i < 3; i++) {
        size_t cap = lens[i] + 128;
        char *req = malloc(cap);
        int n = sprintf(req, "GET /queues/local/jobs/");
        memset(req + n, 'a', lens[i]);
        size_t len = (size_t)n + lens[i];
        len += (size_t)sprintf(req + len, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        char *out = hs_exchange(port, req, len);
        if (want[i])
            cr_expect_eq(hs_status(out), want[i], "path of %zu: %.200s", lens[i], out);
        else
            cr_expect(hs_status(out) >= 400 || out[0] == '\0', "path of %zu: %.200s", lens[i],
                      out);
        free(out);
        free(req);
    }
    hs_expect_alive(port);
}

/* A body shorter than its Content-Length, then the client stops sending:
 * nothing is stored, and jobd serves on. */
Test(hostile, lying_content_length)
{
    int port = hs_up(hs_config);
    int fd = hs_connect(port, NULL);
    const char req[] = "POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\nIdempotency-Key: liar\r\n"
                       "Content-Length: 100\r\n\r\n{\"type\": \"noop\"}";
    cr_assert(hs_send_all(fd, req, sizeof req - 1));
    shutdown(fd, SHUT_WR);
    size_t len;
    char *out = hs_read_all(fd, 2000, &len);
    close(fd);
    cr_expect_eq(len, 0, "answered a body that never came: %s", out);
    free(out);
    char st[32];
    cr_expect_str_eq(hs_job_state(port, "liar", st, sizeof st), "absent");
    hs_expect_alive(port);
}

/* Defect 10: listen takes IPv6 literals and host names (resolved at
 * start); before, only IPv4 literals bound. */
Test(hostile, listen_on_ipv6_and_host_name)
{
    static const char *const hosts[] = {"[::1]", "localhost"};
    for (size_t i = 0; i < 2; i++) {
        ts_jobd j;
        cr_assert_eq(ts_jobd_start_on(&j, hosts[i], hs_config, NULL), 0, "listen %s:port",
                     hosts[i]);
        ts_resp r;
        ts_http_host(&r, hosts[i], "GET", j.port, "/queues/local", NULL, NULL, NULL);
        cr_expect_eq(r.status, 200, "over %s", hosts[i]);
        ts_resp_free(&r);
        ts_jobd_stop(&j, SIGTERM, 10000);
    }
}

/* What libmicrohttpd 0.9.75 answers itself, before jobd sees the request
 * (README, HTTP limits): the right status with its own HTML body, nothing
 * stored, jobd up. Content-Length: -1 gets its header block twice (a
 * libmicrohttpd bug), so only the first status is checked. */
Test(hostile, library_answers_keep_their_status)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"POST /queues/local/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Idempotency-Key: minus\r\nContent-Length: -1\r\n\r\n{\"type\": \"noop\"}",
         400},
        {"GET /healthz HTTP/2.5\r\nHost: x\r\n\r\n", 505},
        {"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400},
    };
    int port = hs_up(hs_config);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = hs_exchange(port, cases[i].req, strlen(cases[i].req));
        cr_expect_eq(hs_status(out), cases[i].status, "case %zu: %.300s", i, out);
        free(out);
    }
    char st[32];
    cr_expect_str_eq(hs_job_state(port, "minus", st, sizeof st), "absent");
    hs_expect_alive(port);
}
