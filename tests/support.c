/* support.c - the test harness of support.h: real child processes, real HTTP
 * over loopback with libcurl, polling with deadlines.
 *
 * Criterion runs each test in a process of its own, so nothing here is shared
 * across tests; a failed start prints what the child logged. */
#include "support.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TS_HTTP_TIMEOUT_MS 10000L
#define TS_JOBD_START_MS 10000
#define TS_REDIS_START_MS 5000
#define TS_POLL_MS 10

long long ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int ts_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int ts_redis_port(void)
{
    const char *s = getenv("JOBD_TEST_REDIS_PORT");
    int port = s ? atoi(s) : 0;
    if (port <= 0 || port > 65535)
        cr_assert_fail("JOBD_TEST_REDIS_PORT is not set: run the suite through tests/run.sh");
    return port;
}

const char *ts_unique(char *buf)
{
    /* The one piece of process-wide state: a sequence is what makes the
     * names of one test process distinct; the pid separates processes. */
    static atomic_uint seq;
    snprintf(buf, 32, "t%ld_%u", (long)getpid(), atomic_fetch_add(&seq, 1) + 1);
    return buf;
}

const char *ts_tmpdir(void)
{
    const char *d = getenv("JOBD_TEST_TMP");
    return d && *d ? d : "/tmp";
}

char *ts_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 < cap)
            continue;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

/* Writes text to path (mode 0600). 0 or -1. */
static int ts_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    return off == len ? 0 : -1;
}

/* A new copy of text with every "@REDIS_PORT@" replaced (caller frees). */
static char *ts_expand_config(const char *text)
{
    static const char mark[] = "@REDIS_PORT@";
    if (!strstr(text, mark))
        return strdup(text);
    char port[16];
    snprintf(port, sizeof port, "%d", ts_redis_port());
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, mark)); p += sizeof mark - 1)
        n++;
    char *out = malloc(strlen(text) + n * strlen(port) + 1);
    if (!out)
        return NULL;
    char *o = out;
    const char *p = text, *hit;
    while ((hit = strstr(p, mark))) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        o = stpcpy(o, port);
        p = hit + sizeof mark - 1;
    }
    strcpy(o, p);
    return out;
}

/* The environment for a child: ours without the given variable, plus
 * "name=value" (new array of borrowed strings but the last; free with
 * ts_env_free). Built before fork: the child may only exec. */
static char **ts_env_with(const char *name, const char *value)
{
    size_t n = 0, nlen = strlen(name);
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!(strncmp(environ[i], name, nlen) == 0 && environ[i][nlen] == '='))
            env[k++] = environ[i];
    size_t len = nlen + strlen(value) + 2;
    env[k] = malloc(len);
    if (!env[k]) {
        free(env);
        return NULL;
    }
    snprintf(env[k], len, "%s=%s", name, value);
    return env;
}

static void ts_env_free(char **env)
{
    if (!env)
        return;
    size_t n = 0;
    while (env[n + 1])
        n++;
    free(env[n]);
    free(env);
}

/* In the forked child after a failed exec: says so in its log (only write(2):
 * little else is safe after fork in a threaded process) and exits 127. */
static void ts_exec_failed(const char *prog)
{
    static const char why[] = "ts_spawn: exec failed: ";
    ssize_t rc = write(2, why, sizeof why - 1);
    rc += write(2, prog, strlen(prog));
    rc += write(2, "\n", 1);
    (void)rc;
    _exit(127);
}

/* Forks a child in a process group of its own with stdin from /dev/null,
 * stdout and stderr to log_path and no other inherited fd, which execs
 * argv[0] (execve when it contains a '/', else searched in PATH). Returns the
 * pid or -1. */
static pid_t ts_spawn(char *const argv[], char *const envp[], const char *log_path)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    pid_t pid = (devnull < 0 || logfd < 0) ? -1 : fork();
    if (pid == 0) {
        setpgid(0, 0);
        if (dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(126);
        /* Criterion's and curl's descriptors are not all close-on-exec. */
        close_range(3, ~0U, 0);
        if (strchr(argv[0], '/'))
            execve(argv[0], argv, envp);
        else
            execvpe(argv[0], argv, envp);
        ts_exec_failed(argv[0]);
    }
    if (pid > 0)
        setpgid(pid, pid); /* also from here: no race with a kill of the group */
    if (devnull >= 0)
        close(devnull);
    if (logfd >= 0)
        close(logfd);
    return pid;
}

/* Waits for pid up to timeout_ms. Its status as ts_jobd_stop describes, or
 * -1 if it is still running. */
static int ts_wait_child(pid_t pid, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno != EINTR)
            return -2; /* not our child (already reaped) */
        if (ts_now_ms() >= deadline)
            return -1;
        ts_sleep_ms(5);
    }
}

/* Stops a process group leader: sig, wait, then SIGKILL to its whole group. */
static int ts_stop_pid(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    if (sig)
        kill(pid, sig);
    int st = ts_wait_child(pid, timeout_ms);
    if (st == -1) {
        /* Still unreaped, so the group id is still ours to signal. */
        kill(-pid, SIGKILL);
        ts_wait_child(pid, 5000);
    }
    return st == -2 ? -1 : st;
}

static void ts_print_log(const char *what, const char *path)
{
    char *text = ts_read_file(path, NULL);
    fprintf(stderr, "---- %s (%s)\n%s\n---- end\n", what, path, text ? text : "(unreadable)");
    free(text);
}

static int ts_request(ts_resp *r, const char *cacert, const char *host, const char *method,
                      int port, const char *path, const char *body, const char *content_type,
                      const char *const *headers);

/* True when the child is up before the deadline: GET /healthz answers 200
 * (over HTTPS when cacert is not NULL), or with no_http (no HTTP server) the
 * log says jobd.started. False at once when it exited. */
static bool ts_jobd_wait_healthy(ts_jobd *j, int timeout_ms, const char *cacert, bool no_http)
{
    long long deadline = ts_now_ms() + ts_patience(timeout_ms);
    while (ts_now_ms() < deadline) {
        ts_resp r = {0};
        if (!no_http)
            ts_request(&r, cacert, j->host, "GET", j->port, "/healthz", NULL, NULL, NULL);
        long status = r.status;
        ts_resp_free(&r);
        if (status == 200 || (no_http && ts_log_contains(j, "jobd.started")))
            return true;
        int st;
        if (waitpid(j->pid, &st, WNOHANG) == j->pid) {
            fprintf(stderr, "ts_jobd_start: jobd exited with %s %d\n",
                    WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            j->pid = 0;
            return false;
        }
        ts_sleep_ms(TS_POLL_MS);
    }
    return false;
}

int ts_jobd_start(ts_jobd *j, const char *config_json, const char *const *extra_args)
{
    return ts_jobd_start_on(j, "127.0.0.1", config_json, extra_args);
}

/* ts_jobd_start_on, its health checked over HTTPS when cacert is not NULL. */
static int ts_jobd_launch(ts_jobd *j, const char *host, const char *config_json,
                          const char *const *extra_args, const char *cacert)
{
    memset(j, 0, sizeof *j);
    snprintf(j->host, sizeof j->host, "%s", host);
    const char *bin = getenv("JOBD_BIN");
    if (!bin || !*bin) {
        fprintf(stderr, "ts_jobd_start: JOBD_BIN is not set: run the suite through tests/run.sh\n");
        return -1;
    }
    char u[32];
    ts_unique(u);
    snprintf(j->cfg_path, sizeof j->cfg_path, "%s/jobd_%s.json", ts_tmpdir(), u);
    snprintf(j->log_path, sizeof j->log_path, "%s/jobd_%s.log", ts_tmpdir(), u);
    char *cfg = ts_expand_config(config_json);
    if (!cfg || ts_write_file(j->cfg_path, cfg) != 0) {
        free(cfg);
        fprintf(stderr, "ts_jobd_start: cannot write %s\n", j->cfg_path);
        return -1;
    }
    free(cfg);

    size_t n_extra = 0;
    bool no_http = false;
    for (; extra_args && extra_args[n_extra]; n_extra++)
        no_http = no_http || strcmp(extra_args[n_extra], "--no-http") == 0;
    const char **argv = calloc(n_extra + 4, sizeof *argv);
    j->port = ts_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "%s:%d", host, j->port);
    char **env = ts_env_with("JOBD_LISTEN", listen);
    if (!argv || !env || j->port <= 0) {
        free(argv);
        ts_env_free(env);
        return -1;
    }
    argv[0] = bin;
    argv[1] = "--config";
    argv[2] = j->cfg_path;
    for (size_t i = 0; i < n_extra; i++)
        argv[3 + i] = extra_args[i];
    j->pid = ts_spawn((char *const *)argv, env, j->log_path);
    free(argv);
    ts_env_free(env);
    if (j->pid > 0 && ts_jobd_wait_healthy(j, TS_JOBD_START_MS, cacert, no_http))
        return 0;
    fprintf(stderr, "ts_jobd_start: jobd did not come up on port %d\n", j->port);
    if (j->pid > 0)
        ts_jobd_stop(j, SIGKILL, 2000);
    ts_print_log("jobd log", j->log_path);
    return -1;
}

int ts_jobd_start_on(ts_jobd *j, const char *host, const char *config_json,
                     const char *const *extra_args)
{
    return ts_jobd_launch(j, host, config_json, extra_args, NULL);
}

int ts_jobd_start_https(ts_jobd *j, const char *config_json, const char *cacert)
{
    return ts_jobd_launch(j, "127.0.0.1", config_json, NULL, cacert);
}

int ts_jobd_stop(ts_jobd *j, int sig, int timeout_ms)
{
    int st = ts_stop_pid(j->pid, sig, timeout_ms);
    j->pid = 0;
    return st;
}

int ts_jobd_run(const char *const *args, int timeout_ms, char *log_path, size_t log_len)
{
    const char *bin = getenv("JOBD_BIN");
    size_t n = 0;
    while (args && args[n])
        n++;
    const char **argv = calloc(n + 2, sizeof *argv);
    char u[32];
    snprintf(log_path, log_len, "%s/run_%s.log", ts_tmpdir(), ts_unique(u));
    if (!bin || !*bin || !argv) {
        fprintf(stderr, "ts_jobd_run: JOBD_BIN is not set: run the suite through tests/run.sh\n");
        free(argv);
        return -1;
    }
    argv[0] = bin;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = args[i];
    pid_t pid = ts_spawn((char *const *)argv, environ, log_path);
    free(argv);
    return ts_stop_pid(pid, 0, ts_patience(timeout_ms));
}

bool ts_log_contains(const ts_jobd *j, const char *needle)
{
    char *text = ts_read_file(j->log_path, NULL);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

/* Growable byte buffer for curl's callbacks. */
typedef struct ts_buf {
    char *data;
    size_t len;
} ts_buf;

static int ts_buf_append(ts_buf *b, const char *p, size_t n)
{
    char *bigger = realloc(b->data, b->len + n + 1);
    if (!bigger)
        return -1;
    memcpy(bigger + b->len, p, n);
    b->data = bigger;
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static size_t ts_on_body(char *p, size_t size, size_t n, void *ud)
{
    return ts_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

static size_t ts_on_header(char *p, size_t size, size_t n, void *ud)
{
    ts_buf *b = ud;
    /* A new status line (after 100 Continue) starts a new header block. */
    if (n * size >= 5 && strncmp(p, "HTTP/", 5) == 0)
        b->len = 0;
    return ts_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

static void ts_curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The request headers: the caller's, the Content-Type rule of ts_http, and
 * no "Expect: 100-continue" (its delay would blur timing assertions).
 * New list (curl_slist_free_all), or NULL when none. */
static struct curl_slist *ts_http_headers(const char *body, const char *content_type,
                                          const char *const *headers)
{
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    char line[256];
    if (content_type && !*content_type) {
        h = curl_slist_append(h, "Content-Type:"); /* "" = send none */
    } else if (content_type || body) {
        snprintf(line, sizeof line, "Content-Type: %s", content_type ? content_type : "application/json");
        h = curl_slist_append(h, line);
    }
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    return h;
}

/* content_type "" sends no Content-Type at all (for the 415 tests). */
int ts_http(ts_resp *r, const char *method, int port, const char *path, const char *body,
            const char *content_type, const char *const *headers)
{
    return ts_http_host(r, "127.0.0.1", method, port, path, body, content_type, headers);
}

/* ts_http_host over HTTP, or over HTTPS trusting only the certificate in
 * cacert when cacert is not NULL. */
static int ts_request(ts_resp *r, const char *cacert, const char *host, const char *method,
                      int port, const char *path, const char *body, const char *content_type,
                      const char *const *headers)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ts_curl_init_once);
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[1024];
    snprintf(url, sizeof url, "%s://%s:%d%s", cacert ? "https" : "http", host, port, path);
    ts_buf bb = {0}, hb = {0};
    struct curl_slist *h = ts_http_headers(body, content_type, headers);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, cacert ? "https" : "http");
    if (cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TS_HTTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ts_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ts_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    long long t0 = ts_now_ms();
    CURLcode rc = curl_easy_perform(c);
    r->seconds = (double)(ts_now_ms() - t0) / 1000.0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->body = bb.data ? bb.data : strdup("");
    r->body_len = bb.len;
    r->headers = hb.data ? hb.data : strdup("");
    if (r->body_len > 0)
        r->json = json_loadb(r->body, r->body_len, 0, NULL);
    return rc == CURLE_OK ? 0 : -1;
}

int ts_http_host(ts_resp *r, const char *host, const char *method, int port, const char *path,
                 const char *body, const char *content_type, const char *const *headers)
{
    return ts_request(r, NULL, host, method, port, path, body, content_type, headers);
}

int ts_https(ts_resp *r, const char *cacert, const char *method, int port, const char *path,
             const char *body, const char *const *headers)
{
    return ts_request(r, cacert, "127.0.0.1", method, port, path, body, NULL, headers);
}

int ts_post(ts_resp *r, int port, const char *path, const char *json_body)
{
    return ts_http(r, "POST", port, path, json_body, NULL, NULL);
}

int ts_get(ts_resp *r, int port, const char *path)
{
    return ts_http(r, "GET", port, path, NULL, NULL, NULL);
}

const char *ts_resp_header(const ts_resp *r, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t llen = eol ? (size_t)(eol - line) : strlen(line);
        if (llen > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *end = line + llen;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            snprintf(buf, len, "%.*s", (int)(end - v), v);
            return buf;
        }
        line = eol ? eol + 1 : line + llen;
    }
    return NULL;
}

void ts_resp_free(ts_resp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *ts_error_code(const ts_resp *r)
{
    const char *code = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return code ? code : "";
}

int ts_patience(int ms)
{
    const char *asan = getenv("JOBD_ASAN");
    return asan && strcmp(asan, "1") == 0 ? ms * 3 : ms;
}

bool ts_wait_state(int port, const char *queue, const char *id, const char *state,
                   int timeout_ms, json_t **seen)
{
    char path[512];
    snprintf(path, sizeof path, "/queues/%s/jobs/%s", queue, id);
    long long deadline = ts_now_ms() + ts_patience(timeout_ms);
    json_t *last = NULL;
    bool reached = false;
    do {
        ts_resp r;
        ts_get(&r, port, path);
        if (r.status == 200 && r.json) {
            json_decref(last);
            last = json_incref(r.json);
            const char *s = json_string_value(json_object_get(r.json, "state"));
            reached = s && strcmp(s, state) == 0;
        }
        ts_resp_free(&r);
        if (!reached)
            ts_sleep_ms(5);
    } while (!reached && ts_now_ms() < deadline);
    if (seen)
        *seen = last;
    else
        json_decref(last);
    return reached;
}

bool ts_redis_pings(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *rep = redisCommand(c, "PING");
        ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
        if (rep)
            freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    return ok;
}

/* One try at starting redis-server on port in dir: its pid once it answers,
 * or -1 (port taken, no binary, timeout). */
static pid_t ts_redis_try(int port, const char *dir, const char *const *extra_args)
{
    char port_s[16], log_path[600];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(log_path, sizeof log_path, "%s/redis.log", dir);
    const char *base[] = {"redis-server", "--port", port_s, "--bind", "127.0.0.1", "--dir", dir,
                          "--save", "", "--appendonly", "no", "--daemonize", "no"};
    size_t nb = sizeof base / sizeof base[0], n_extra = 0;
    while (extra_args && extra_args[n_extra])
        n_extra++;
    const char **argv = calloc(nb + n_extra + 1, sizeof *argv);
    if (!argv)
        return -1;
    memcpy(argv, base, sizeof base);
    for (size_t i = 0; i < n_extra; i++)
        argv[nb + i] = extra_args[i];
    pid_t pid = ts_spawn((char *const *)argv, environ, log_path);
    free(argv);
    long long deadline = ts_now_ms() + TS_REDIS_START_MS;
    while (pid > 0 && ts_now_ms() < deadline) {
        if (ts_redis_pings(port))
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
        ts_sleep_ms(TS_POLL_MS);
    }
    if (pid > 0)
        ts_stop_pid(pid, SIGKILL, 2000);
    return -1;
}

int ts_redis_start(pid_t *pid, int *port, const char *const *extra_args)
{
    char u[32], dir[512];
    snprintf(dir, sizeof dir, "%s/redis_%s", ts_tmpdir(), ts_unique(u));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    /* The free port may be taken again before redis binds it: retry. */
    for (int attempt = 0; attempt < 3; attempt++) {
        *port = ts_free_port();
        *pid = ts_redis_try(*port, dir, extra_args);
        if (*pid > 0)
            return 0;
    }
    char log_path[600];
    snprintf(log_path, sizeof log_path, "%s/redis.log", dir);
    ts_print_log("redis-server log", log_path);
    return -1;
}

void ts_redis_stop(pid_t pid)
{
    ts_stop_pid(pid, SIGTERM, 5000);
}

int64_t ts_ulid_ms(const char *id)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    int64_t ms = 0;
    for (int i = 0; i < 10; i++) {
        const char *p = id[i] ? strchr(alphabet, id[i]) : NULL;
        if (!p)
            return -1;
        ms = ms * 32 + (p - alphabet);
    }
    return ms;
}

bool ts_ulid_shape(const char *id)
{
    if (strlen(id) != 26 || id[0] > '7')
        return false;
    for (const char *p = id; *p; p++)
        if (!strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", *p))
            return false;
    return true;
}
