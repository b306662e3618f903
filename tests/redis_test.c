/* redis_test.c - helpers of redis_test.h for the Redis end-to-end tests. */
#include "redis_test.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define RT_REDIS_START_MS 5000
#define RT_MAX_REDIS 4

/* Servers started by this test process and not yet stopped, for rt_cleanup
 * after a failed assertion (each criterion test is a process of its own). */
static pid_t rt_live[RT_MAX_REDIS];

static void rt_track(pid_t pid, pid_t old)
{
    for (int i = 0; i < RT_MAX_REDIS; i++) {
        if (rt_live[i] == old) {
            rt_live[i] = pid;
            return;
        }
    }
}

void rt_cleanup(void)
{
    for (int i = 0; i < RT_MAX_REDIS; i++) {
        if (rt_live[i] > 0) {
            kill(rt_live[i], SIGCONT); /* a frozen server cannot die otherwise */
            kill(rt_live[i], SIGKILL);
            waitpid(rt_live[i], NULL, 0);
            rt_live[i] = 0;
        }
    }
}

void rt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void rt_config_queues(char *buf, size_t len, int port, const char *prefix, int workers,
                      const char *queues_json)
{
    int n = snprintf(
        buf, len,
        "{\"workers\": %d, \"http_threads\": 2,"
        " \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\", \"prefix\": \"%s\", \"timeout\": 0.5},"
        " \"heartbeat\": 0.2, \"lease_expiry\": 1, \"poll_interval\": 0.05,"
        " \"shutdown_timeout\": 1, \"queues\": %s}",
        workers, port ? port : ts_redis_port(), prefix, queues_json);
    cr_assert(n > 0 && (size_t)n < len, "config buffer too small");
}

void rt_config(char *buf, size_t len, int port, const char *prefix, int workers)
{
    rt_config_queues(buf, len, port, prefix, workers,
                     "{\"q\": {\"dequeue\": [\"redis\"], \"max_attempts\": 3,"
                     "  \"backoff\": {\"base\": 0.3, \"factor\": 0.3, \"exponent\": 1,"
                     "               \"jitter\": 0, \"max\": 5}}}");
}

void rt_jobd_up(ts_jobd *j, const char *config, const char *const *extra_args)
{
    cr_assert_eq(ts_jobd_start(j, config, extra_args), 0, "jobd did not start");
}

long rt_submit(int port, const char *body, char *id)
{
    ts_resp r;
    cr_assert_eq(ts_post(&r, port, "/queues/q/jobs", body), 0, "no answer to POST");
    long status = r.status;
    const char *got = json_string_value(json_object_get(r.json, "id"));
    if (id)
        snprintf(id, JOB_ID_MAX + 1, "%s", got ? got : "");
    ts_resp_free(&r);
    return status;
}

redisContext *rt_script_setup(redis_model *m)
{
    char err[256], prefix[32];
    redis_addr a = {.host = "127.0.0.1", .port = ts_redis_port()};
    redisContext *c = redis_conn_open(&a, 2, 2, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    redis_model_init(m, ts_unique(prefix), "q", 3);
    return c;
}

json_t *rt_queue(int port)
{
    return rt_queue_of(port, "q");
}

json_t *rt_queue_of(int port, const char *queue)
{
    char path[128];
    snprintf(path, sizeof path, "/queues/%s", queue);
    ts_resp r;
    json_t *v = NULL;
    if (ts_get(&r, port, path) == 0 && r.status == 200)
        v = json_incref(r.json);
    ts_resp_free(&r);
    return v;
}

long rt_count(int port, const char *state)
{
    json_t *v = rt_queue(port);
    json_t *n = json_object_get(json_object_get(v, "counts"), state);
    long c = json_is_integer(n) ? (long)json_integer_value(n) : -1;
    json_decref(v);
    return c;
}

long rt_processed(int port)
{
    json_t *v = rt_queue(port);
    json_t *n = json_object_get(v, "processed_total");
    long c = json_is_integer(n) ? (long)json_integer_value(n) : -1;
    json_decref(v);
    return c;
}

bool rt_wait_processed(int port, long n, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    while (ts_now_ms() < deadline) {
        if (rt_processed(port) >= n)
            return true;
        rt_sleep_ms(20);
    }
    return rt_processed(port) >= n;
}

json_t *rt_job(int port, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/queues/q/jobs/%s", id);
    ts_resp r;
    json_t *v = NULL;
    if (ts_get(&r, port, path) == 0 && r.status == 200)
        v = json_incref(r.json);
    ts_resp_free(&r);
    return v;
}

long rt_job_int(int port, const char *id, const char *field)
{
    json_t *v = rt_job(port, id);
    json_t *n = json_object_get(v, field);
    long c = json_is_integer(n) ? (long)json_integer_value(n) : -1;
    json_decref(v);
    return c;
}

/* --- a redis-server of the test's own --- */

/* Spawns redis-server on r->port in r->dir; its pid or -1. */
static pid_t rt_redis_spawn(const rt_redis *r)
{
    char port[16], log_path[600];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log_path, sizeof log_path, "%s/redis.log", r->dir);
    const char *base[] = {"redis-server", "--port",    port,     "--bind", "127.0.0.1",
                          "--dir",        r->dir,      "--save", "",       "--daemonize",
                          "no",           "--logfile", log_path};
    size_t nb = sizeof base / sizeof base[0], n_extra = 0;
    while (r->args && r->args[n_extra])
        n_extra++;
    const char **argv = calloc(nb + n_extra + 1, sizeof *argv);
    cr_assert_not_null(argv);
    memcpy(argv, base, sizeof base);
    for (size_t i = 0; i < n_extra; i++)
        argv[nb + i] = r->args[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    /* --logfile has its log: keep the test's output pipes out of its hands. */
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    if (posix_spawnp(&pid, "redis-server", &fa, NULL, (char *const *)argv, environ) != 0)
        pid = -1;
    if (pid > 0)
        rt_track(pid, 0);
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    return pid;
}

/* Waits until the server on r answers, or gives up (killing it). */
static bool rt_redis_wait_up(rt_redis *r)
{
    long long deadline = ts_now_ms() + RT_REDIS_START_MS;
    while (r->pid > 0 && ts_now_ms() < deadline) {
        if (ts_redis_pings(r->port))
            return true;
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            rt_track(0, r->pid);
            r->pid = -1;
            return false;
        }
        rt_sleep_ms(10);
    }
    if (r->pid > 0)
        rt_redis_kill(r, SIGKILL);
    return false;
}

void rt_redis_start(rt_redis *r, const char *const *extra_args)
{
    char u[32];
    memset(r, 0, sizeof *r);
    r->args = extra_args;
    snprintf(r->dir, sizeof r->dir, "%s/rt_redis_%s", ts_tmpdir(), ts_unique(u));
    cr_assert(mkdir(r->dir, 0700) == 0 || errno == EEXIST, "mkdir %s", r->dir);
    /* The free port may be taken before redis binds it: try another. */
    for (int attempt = 0; attempt < 3; attempt++) {
        r->port = ts_free_port();
        r->pid = rt_redis_spawn(r);
        if (rt_redis_wait_up(r))
            return;
    }
    cr_assert_fail("redis-server did not start (see %s/redis.log)", r->dir);
}

void rt_redis_restart(rt_redis *r)
{
    /* The port was ours a moment ago; Redis sets SO_REUSEADDR. */
    r->pid = rt_redis_spawn(r);
    cr_assert(rt_redis_wait_up(r), "redis-server did not restart on port %d", r->port);
}

void rt_redis_respawn(rt_redis *r)
{
    r->pid = rt_redis_spawn(r);
    cr_assert_gt(r->pid, 0, "redis-server did not start again on port %d", r->port);
}

void rt_redis_kill(rt_redis *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    long long deadline = ts_now_ms() + 5000;
    bool reaped = false;
    while (!(reaped = waitpid(r->pid, NULL, WNOHANG) == r->pid) && ts_now_ms() < deadline)
        rt_sleep_ms(5);
    if (!reaped) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    rt_track(0, r->pid);
    r->pid = -1;
}
