/* test_life.c - jobd's process life end to end: signals and the shutdown
 * deadline (interrupted runs count an attempt, no program outlives jobd),
 * with the real binary, a real redis-server and real child processes.
 *
 * The test process makes itself a child subreaper, so the programs a jobd
 * leaves behind are reparented to it and can be checked and reaped by pid. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../server/jobd.h"
#include "exec_test.h"
#include "redis_test.h"
#include "support.h"

static ts_jobd life_jobd;
static int life_leader; /* a program group to kill if a test fails midway */

static void life_init(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
}

static void life_fini(void)
{
    if (life_jobd.pid > 0)
        ts_jobd_stop(&life_jobd, SIGKILL, 5000);
    if (life_leader > 0)
        kill(-life_leader, SIGKILL);
    rt_cleanup();
}

TestSuite(life, .init = life_init, .fini = life_fini, .timeout = 120);

/* True when pid has ended and is no zombie of ours (reaped here if it was
 * reparented to us). */
static bool life_pid_gone(pid_t pid)
{
    waitpid(pid, NULL, WNOHANG);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d", pid);
    return access(proc, F_OK) != 0;
}

/* Polls until both pids are gone or timeout_ms passes. */
static bool life_tree_gone(pid_t a, pid_t b, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    while (!(life_pid_gone(a) && life_pid_gone(b)) && ts_now_ms() < deadline)
        ts_sleep_ms(10);
    return life_pid_gone(a) && life_pid_gone(b);
}

/* Expects the program group (leader and child) of a stopped jobd to be gone,
 * then makes sure of it and removes its pid file. */
static void life_expect_tree_gone(int leader, int child, const char *pid_path)
{
    cr_expect(life_tree_gone(leader, child, ts_patience(3000)),
              "program %d or its child %d outlived jobd", leader, child);
    kill(-leader, SIGKILL);
    life_tree_gone(leader, child, 2000);
    life_leader = 0;
    unlink(pid_path);
}

/* Polls for the pid file of sleep_tree.sh: "<leader> <child>". */
static bool life_read_pids(const char *path, int *leader, int *child, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    for (;;) {
        char *text = ts_read_file(path, NULL);
        bool ok = text && sscanf(text, "%d %d", leader, child) == 2;
        free(text);
        if (ok || ts_now_ms() >= deadline)
            return ok;
        ts_sleep_ms(10);
    }
}

/* Polls GET /queues/q/jobs/<id> until its state is state; new reference to
 * the last view seen (NULL when none). */
static json_t *life_wait_job(int port, const char *id, const char *state, int timeout_ms)
{
    json_t *v = NULL;
    ts_wait_state(port, "q", id, state, timeout_ms, &v);
    return v;
}

static const char *life_str(const json_t *v, const char *key)
{
    const char *s = json_string_value(json_object_get(v, key));
    return s ? s : "";
}

/* A Redis queue "q" whose jobs of type "tree" run sleep_tree.sh (the script
 * and its child both ignore SIGTERM), shutdown_timeout 1 s. */
static void life_tree_config(char *buf, size_t len, const char *prefix, const char *pid_path,
                             int max_attempts)
{
    char bin[PATH_MAX];
    int n = snprintf(
        buf, len,
        "{\"workers\": 2, \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\", \"prefix\": \"%s\","
        " \"timeout\": 0.5}, \"heartbeat\": 0.2, \"lease_expiry\": 5, \"poll_interval\": 0.05,"
        " \"shutdown_timeout\": 1,"
        " \"handlers\": {\"tree\": {\"kind\": \"command\", \"argv\": [\"%s\", \"%s\", "
        "\"ignore-term\"], \"kill_grace\": 30}},"
        " \"queues\": {\"q\": {\"dequeue\": [\"redis\"], \"max_attempts\": %d}}}",
        ts_redis_port(), prefix, et_bin("sleep_tree.sh", bin), pid_path, max_attempts);
    cr_assert(n > 0 && (size_t)n < len);
}

/* Starts jobd, waits until job id runs its program, SIGTERMs jobd and checks
 * that jobd exits 0 in time and leaves no program of the job behind. */
static void life_stop_while_running(const char *cfg, const char *pid_path, const char *id)
{
    rt_jobd_up(&life_jobd, cfg, NULL);
    json_t *v = life_wait_job(life_jobd.port, id, "running", ts_patience(5000));
    cr_assert_str_eq(life_str(v, "state"), "running", "the job did not start");
    json_decref(v);
    int leader = 0, child = 0;
    cr_assert(life_read_pids(pid_path, &leader, &child, ts_patience(5000)), "no pid file");
    life_leader = leader;
    long long t0 = ts_now_ms();
    cr_assert_eq(kill(life_jobd.pid, SIGTERM), 0);
    int status = ts_jobd_stop(&life_jobd, 0, ts_patience(15000));
    long long took = ts_now_ms() - t0;
    cr_expect_eq(status, 0, "exit status %d", status);
    /* shutdown_timeout 1 s + kill grace cut to 2 s + recording and HTTP stop */
    cr_expect_lt(took, ts_patience(7000), "shutdown took %lld ms", took);
    cr_log_info("shutdown with a program ignoring SIGTERM took %lld ms", took);
    life_expect_tree_gone(leader, child, pid_path);
}

/* Defect 3: a run cut short by the shutdown deadline counts an attempt with
 * last_error "interrupted by shutdown", so a job that always outlives the
 * shutdown ends dead after max_attempts; and its program (which ignores
 * SIGTERM) is killed, not left running beside the next copy. */
Test(life, shutdown_kills_programs_and_counts_an_attempt)
{
    char prefix[32], pid_path[512], cfg[2048];
    ts_unique(prefix);
    snprintf(pid_path, sizeof pid_path, "%s/%s.pids", ts_tmpdir(), prefix);
    life_tree_config(cfg, sizeof cfg, prefix, pid_path, 2);

    /* Submitted through an API-only node, so that no run starts before the rounds. */
    static const char *const no_workers[] = {"--no-workers", NULL};
    rt_jobd_up(&life_jobd, cfg, no_workers);
    cr_assert_eq(rt_submit(life_jobd.port, "{\"type\": \"tree\", \"id\": \"outlives-1\"}", NULL),
                 202);
    cr_assert_eq(ts_jobd_stop(&life_jobd, SIGTERM, ts_patience(15000)), 0);

    for (int round = 1; round <= 2; round++) {
        life_stop_while_running(cfg, pid_path, "outlives-1");
        rt_jobd_up(&life_jobd, cfg, no_workers);
        json_t *v = rt_job(life_jobd.port, "outlives-1");
        cr_assert_not_null(v);
        cr_expect_eq(json_integer_value(json_object_get(v, "attempts")), round,
                     "round %d: attempts %lld", round,
                     (long long)json_integer_value(json_object_get(v, "attempts")));
        cr_expect_str_eq(life_str(v, "last_error"), JOBD_INTERRUPTED);
        cr_expect_str_eq(life_str(v, "state"), round < 2 ? "enqueued" : "dead", "round %d",
                         round);
        json_decref(v);
        cr_expect_eq(ts_jobd_stop(&life_jobd, SIGTERM, ts_patience(15000)), 0);
    }
}

/* A loopback listener that never accepts: connections complete in the
 * kernel's backlog and wait forever for an answer. Its port; fd in *fd. */
static int life_silent_listener(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(*fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(*fd, 16), 0);
    cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Defect 3 on an inline queue: at the shutdown deadline a builtin sleep and a
 * webhook transfer that would take a minute are cut short, count an attempt
 * with "interrupted by shutdown" and go back to waiting (so shutdown reports
 * them among the jobs lost with memory), and jobd exits soon after. */
Test(life, shutdown_interrupts_inline_sleep_and_webhook)
{
    int lfd;
    int lport = life_silent_listener(&lfd);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"workers\": 2, \"shutdown_timeout\": 1,"
             " \"handlers\": {\"hang\": {\"kind\": \"webhook\", \"url\": \"http://127.0.0.1:%d/\","
             " \"timeout\": 60}},"
             " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}",
             lport);
    cr_assert_eq(ts_jobd_start(&life_jobd, cfg, NULL), 0);
    int port = life_jobd.port;
    ts_resp r;
    const char *bodies[] = {"{\"type\": \"sleep\", \"args\": {\"ms\": 60000}, \"id\": \"s1\"}",
                            "{\"type\": \"hang\", \"id\": \"w1\"}"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ts_post(&r, port, "/queues/local/jobs", bodies[i]), 0);
        cr_assert_eq(r.status, 202);
        ts_resp_free(&r);
    }
    cr_assert(ts_wait_state(port, "local", "s1", "running", 5000, NULL));
    cr_assert(ts_wait_state(port, "local", "w1", "running", 5000, NULL));
    long long t0 = ts_now_ms();
    cr_assert_eq(kill(life_jobd.pid, SIGTERM), 0);
    int status = ts_jobd_stop(&life_jobd, 0, ts_patience(15000));
    long long took = ts_now_ms() - t0;
    cr_log_info("inline shutdown with a sleep and a hanging webhook took %lld ms", took);
    cr_expect_eq(status, 0, "exit status %d", status);
    /* 1 s, then the webhook's abort within about a second of curl's progress calls */
    cr_expect_lt(took, ts_patience(5000), "shutdown took %lld ms", took);
    char *log = ts_read_file(life_jobd.log_path, NULL);
    cr_assert_not_null(log);
    const char *p = log;
    int interrupted = 0;
    while ((p = strstr(p, "job.failed")) && interrupted < 10) {
        const char *eol = strchr(p, '\n');
        const char *hit = strstr(p, JOBD_INTERRUPTED);
        interrupted += hit && (!eol || hit < eol);
        p = eol ? eol : p + 1;
    }
    cr_expect_eq(interrupted, 2, "runs logged as interrupted: %d\n%s", interrupted, log);
    cr_expect(strstr(log, "2 waiting and 0 running jobs existed only in memory"), "%s", log);
    free(log);
    close(lfd);
}

/* Defect 11: SIGHUP (a terminal closing, some container runtimes) is logged
 * and ignored: jobd keeps serving, and the job it is running keeps its lease
 * and ends with one attempt. */
Test(life, sighup_leaves_jobd_running_and_leases_intact)
{
    char prefix[32], cfg[2048], id[JOB_ID_MAX + 1];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 2);
    rt_jobd_up(&life_jobd, cfg, NULL);
    int port = life_jobd.port;
    cr_assert_eq(rt_submit(port, "{\"type\": \"sleep\", \"args\": {\"ms\": 1500}}", id), 202);
    cr_assert(ts_wait_state(port, "q", id, "running", 5000, NULL));
    cr_assert_eq(kill(life_jobd.pid, SIGHUP), 0);
    long long deadline = ts_now_ms() + ts_patience(3000);
    while (!ts_log_contains(&life_jobd, "SIGHUP") && ts_now_ms() < deadline)
        ts_sleep_ms(10);
    cr_expect(ts_log_contains(&life_jobd, "jobd.sighup"), "SIGHUP was not logged");
    json_t *v = life_wait_job(port, id, "succeeded", ts_patience(5000));
    cr_expect_str_eq(life_str(v, "state"), "succeeded");
    cr_expect_eq(json_integer_value(json_object_get(v, "attempts")), 1);
    json_decref(v);
    ts_resp r;
    cr_assert_eq(ts_get(&r, port, "/healthz"), 0, "jobd stopped answering after SIGHUP");
    cr_expect_eq(r.status, 200);
    ts_resp_free(&r);
    cr_expect_eq(ts_jobd_stop(&life_jobd, SIGTERM, ts_patience(15000)), 0);
}

/* The README with every run of whitespace made one space (its lines wrap). */
static char *life_readme_flat(void)
{
    char *text = ts_read_file("README.md", NULL);
    cr_assert_not_null(text, "README.md not found (run from the repository root)");
    char *w = text;
    for (const char *r = text; *r; r++) {
        bool space = *r == ' ' || *r == '\n' || *r == '\t';
        if (space && w > text && w[-1] == ' ')
            continue;
        *w++ = space ? ' ' : *r;
    }
    *w = '\0';
    return text;
}

/* Defect 12: the 503 of a submission during shutdown says what the README
 * says, and the README quotes the shutdown messages word for word. */
Test(life, shutdown_503_says_what_the_readme_says)
{
    cr_assert_eq(ts_jobd_start(&life_jobd,
                               "{\"workers\": 2, \"shutdown_timeout\": 10,"
                               " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}",
                               NULL),
                 0);
    int port = life_jobd.port;
    ts_resp r;
    cr_assert_eq(ts_post(&r, port, "/queues/local/jobs",
                         "{\"type\": \"sleep\", \"args\": {\"ms\": 2000}, \"id\": \"long\"}"),
                 0);
    cr_assert_eq(r.status, 202);
    ts_resp_free(&r);
    cr_assert(ts_wait_state(port, "local", "long", "running", 5000, NULL));
    cr_assert_eq(kill(life_jobd.pid, SIGTERM), 0);
    long long deadline = ts_now_ms() + ts_patience(1500);
    memset(&r, 0, sizeof r);
    do {
        ts_resp_free(&r);
        ts_post(&r, port, "/queues/local/jobs", "{\"type\": \"noop\"}");
    } while (r.status != 503 && ts_now_ms() < deadline);
    cr_assert_eq(r.status, 503);
    const char *msg =
        json_string_value(json_object_get(json_object_get(r.json, "error"), "message"));
    cr_expect_str_eq(msg ? msg : "", JOBD_MSG_SHUTDOWN);
    ts_resp_free(&r);
    char *readme = life_readme_flat();
    cr_expect(strstr(readme, "\"" JOBD_MSG_SHUTDOWN "\""), "README does not quote: %s",
              JOBD_MSG_SHUTDOWN);
    cr_expect(strstr(readme, "\"" JOBD_MSG_SHUTDOWN_UNSURE "\""), "README does not quote: %s",
              JOBD_MSG_SHUTDOWN_UNSURE);
    free(readme);
    cr_expect_eq(ts_jobd_stop(&life_jobd, 0, ts_patience(15000)), 0);
}

/* Defect 3, the impatient path: a second SIGTERM ends jobd at once (exit 1),
 * and even then no program it started survives it. */
Test(life, second_sigterm_kills_programs_too)
{
    char prefix[32], pid_path[512], bin[PATH_MAX], cfg[2048];
    ts_unique(prefix);
    snprintf(pid_path, sizeof pid_path, "%s/%s.pids", ts_tmpdir(), prefix);
    snprintf(cfg, sizeof cfg,
             "{\"workers\": 2, \"shutdown_timeout\": 30,"
             " \"handlers\": {\"tree\": {\"kind\": \"command\", \"argv\": [\"%s\", \"%s\","
             " \"ignore-term\"]}},"
             " \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}",
             et_bin("sleep_tree.sh", bin), pid_path);
    cr_assert_eq(ts_jobd_start(&life_jobd, cfg, NULL), 0);
    ts_resp r;
    cr_assert_eq(ts_post(&r, life_jobd.port, "/queues/local/jobs", "{\"type\": \"tree\"}"), 0);
    cr_assert_eq(r.status, 202);
    ts_resp_free(&r);
    int leader = 0, child = 0;
    cr_assert(life_read_pids(pid_path, &leader, &child, ts_patience(5000)), "no pid file");
    life_leader = leader;
    cr_assert_eq(kill(life_jobd.pid, SIGTERM), 0);
    long long deadline = ts_now_ms() + ts_patience(3000);
    while (!ts_log_contains(&life_jobd, "jobd.stopping") && ts_now_ms() < deadline)
        ts_sleep_ms(10);
    cr_assert_eq(kill(life_jobd.pid, SIGTERM), 0);
    cr_expect_eq(ts_jobd_stop(&life_jobd, 0, ts_patience(5000)), 1);
    life_expect_tree_gone(leader, child, pid_path);
}
