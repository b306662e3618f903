/* test_exec_command.c - the "command" handler kind with real child processes:
 * run directly through exec_command_kind, and end to end through jobd.
 *
 * The test process makes itself a child subreaper, so the grandchildren of a
 * killed command are reparented to it and their fate can be checked with
 * waitpid instead of guessing from /proc. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../queues/job.h"
#include "exec_test.h"
#include "support.h"

#define FD_THREADS         4
#define FD_RUNS_PER_THREAD 250

static void command_setup(void)
{
    /* as jobd's main does: writing to a pipe whose reader exited must not kill us */
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

TestSuite(command, .init = command_setup, .fini = et_leak_check, .timeout = 60);

/* A fresh path in the test's scratch folder. */
static const char *tmp_path(const char *what, char *buf, size_t len)
{
    char u[32];
    snprintf(buf, len, "%s/%s_%s", ts_tmpdir(), ts_unique(u), what);
    return buf;
}

/* Handler object {"kind":"command","argv":[...],...}; extra is more members or "". */
static void *create_cmd(const char *const *argv, const char *extra)
{
    json_t *arr = json_array();
    for (size_t i = 0; argv[i]; i++)
        json_array_append_new(arr, json_string(argv[i]));
    char *argv_json = json_dumps(arr, 0);
    char opts[8192];
    snprintf(opts, sizeof opts, "{\"kind\": \"command\", \"argv\": %s%s%s}", argv_json,
             *extra ? ", " : "", extra);
    free(argv_json);
    json_decref(arr);
    return et_create(&exec_command_kind, opts);
}

static bool contains_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Waits (up to 5 s) for pid, a child or reparented grandchild of ours, to
 * end; returns its wait status, or -1 if it did not end (or was reaped elsewhere). */
static int reap_within(pid_t pid)
{
    long long deadline = ts_now_ms() + 5000;
    int st;
    do {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        usleep(5000);
    } while (ts_now_ms() < deadline);
    return -1;
}

Test(command, check_messages_from_data_files)
{
    cr_assert_geq(et_check_data_cases("command"), 15, "run from the repository root");
}

Test(command, timeout_is_the_handlers_own)
{
    const char *argv[] = {"/bin/true", NULL};
    void *with = create_cmd(argv, "\"timeout\": 2.5");
    void *without = create_cmd(argv, "");
    cr_expect_eq(exec_command_kind.timeout(with), 2.5);
    cr_expect_eq(exec_command_kind.timeout(without), 0);
    exec_command_kind.destroy(with);
    exec_command_kind.destroy(without);
}

Test(command, stdin_gets_the_payload_and_env_is_the_allow_list)
{
    char bin[PATH_MAX], in_path[512], env_path[512];
    setenv("JOBD_TEST_ALLOWED", "yes it is", 1);
    setenv("JOBD_TEST_HIDDEN", "secret", 1);
    const char *argv[] = {et_bin("read_stdin.sh", bin), tmp_path("stdin", in_path, 512),
                          tmp_path("env", env_path, 512), NULL};
    void *st = create_cmd(argv, "\"env\": [\"JOBD_TEST_ALLOWED\", \"JOBD_TEST_UNSET\"]");
    job_t *job = et_job("job-stdin-1", 2, "{\"to\": \"ana@example.com\", \"n\": 42}");
    exec_result res;
    et_run(&exec_command_kind, st, job, 10, &res);
    cr_assert_eq(res.status, EXEC_OK, "%s", res.error);
    cr_expect_str_empty(res.error);

    size_t want_len;
    char *want = job_payload(job, &want_len);
    size_t got_len = 0;
    char *got = ts_read_file(in_path, &got_len);
    cr_assert_not_null(got);
    cr_expect_eq(got_len, want_len);
    cr_expect_str_eq(got, want);
    json_t *body = json_loads(got, 0, NULL);
    cr_expect_eq(json_integer_value(json_object_get(body, "attempt")), 3);
    json_decref(body);

    char *env = ts_read_file(env_path, NULL);
    cr_assert_not_null(env);
    cr_expect(contains_line(env, "JOBD_JOB_ID=job-stdin-1"), "%s", env);
    cr_expect(contains_line(env, "JOBD_ATTEMPT=3"), "%s", env);
    cr_expect(contains_line(env, "JOBD_TEST_ALLOWED=yes it is"), "%s", env);
    cr_expect_null(strstr(env, "JOBD_TEST_HIDDEN"), "%s", env);
    cr_expect_null(strstr(env, "JOBD_TEST_UNSET"), "%s", env);
    cr_expect_null(strstr(env, "\nPATH="), "%s", env);
    free(env);
    free(got);
    free(want);
    job_free(job);
    exec_command_kind.destroy(st);
}

Test(command, large_payload_is_read_in_full)
{
    char bin[PATH_MAX], in_path[512], env_path[512];
    const char *argv[] = {et_bin("read_stdin.sh", bin), tmp_path("stdin", in_path, 512),
                          tmp_path("env", env_path, 512), NULL};
    void *st = create_cmd(argv, "");
    size_t big = 3 << 20;
    char *args = malloc(big + 3);
    memset(args, 'a', big + 2);
    args[0] = args[big + 1] = '"';
    args[big + 2] = '\0';
    job_t *job = et_job("job-big", 0, args);
    exec_result res;
    et_run(&exec_command_kind, st, job, 20, &res);
    cr_assert_eq(res.status, EXEC_OK, "%s", res.error);
    size_t want_len, got_len = 0;
    char *want = job_payload(job, &want_len);
    char *got = ts_read_file(in_path, &got_len);
    cr_assert_not_null(got);
    cr_expect_eq(got_len, want_len);
    cr_expect(memcmp(got, want, want_len) == 0);
    free(got);
    free(want);
    free(args);
    job_free(job);
    exec_command_kind.destroy(st);
}

Test(command, program_that_ignores_stdin_is_fine)
{
    const char *argv[] = {"/bin/true", NULL};
    void *st = create_cmd(argv, "");
    size_t big = 4 << 20;
    char *args = malloc(big + 3);
    memset(args, 'b', big + 2);
    args[0] = args[big + 1] = '"';
    args[big + 2] = '\0';
    job_t *job = et_job("job-ignores-stdin", 0, args);
    exec_result res;
    double took = et_run(&exec_command_kind, st, job, 20, &res);
    cr_expect_eq(res.status, EXEC_OK, "%s", res.error);
    cr_expect_lt(took, 5);
    free(args);
    job_free(job);
    exec_command_kind.destroy(st);
}

Test(command, exit_status_and_stderr_tail_are_the_error)
{
    char bin[PATH_MAX];
    const char *argv[] = {et_bin("fail_stderr.sh", bin), NULL};
    void *st = create_cmd(argv, "");
    job_t *job = et_job("job-exit-3", 0, NULL);
    exec_result res;
    et_run(&exec_command_kind, st, job, 10, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error, "exit status 3: warming up\ndisk quota exceeded on /data");
    cr_expect_lt(res.retry_after, 0);
    job_free(job);
    exec_command_kind.destroy(st);
}

Test(command, ten_mib_on_stdout_and_stderr_do_not_deadlock)
{
    char bin[PATH_MAX];
    const char *argv[] = {et_bin("spew.sh", bin), "1", NULL};
    void *st = create_cmd(argv, "");
    job_t *job = et_job("job-spew", 0, NULL);
    exec_result res;
    double took = et_run(&exec_command_kind, st, job, 30, &res);
    cr_assert_eq(res.status, EXEC_RETRY, "%s", res.error);
    cr_expect_lt(took, 25);
    const char *prefix = "exit status 1: ";
    size_t len = strlen(res.error);
    cr_expect_eq(strncmp(res.error, prefix, strlen(prefix)), 0, "%.80s", res.error);
    cr_expect_leq(len, JOB_ERROR_MAX);
    cr_expect_gt(len, JOB_ERROR_MAX - 20, "the tail fills last_error");
    /* 10 MiB of 15-byte lines ends with a 10-byte partial line, then the marker */
    const char *end = "spew spew spew\nspew spew spew-done";
    cr_expect_str_eq(res.error + len - strlen(end), end);
    job_free(job);
    exec_command_kind.destroy(st);
}

/* Runs sleep_tree.sh (with mode, "" or "ignore-term") past its timeout and
 * checks that the script and its child are both gone, the child killed by
 * want_sig (or by the SIGKILL that follows when the script ended first). */
static void check_tree_killed(const char *mode, const char *extra, double timeout, int want_sig,
                              double min_s, double max_s)
{
    char bin[PATH_MAX], pid_path[512];
    const char *argv[] = {et_bin("sleep_tree.sh", bin), tmp_path("pids", pid_path, 512), mode,
                          NULL};
    void *st = create_cmd(argv, extra);
    job_t *job = et_job("job-sleeps", 0, NULL);
    exec_result res;
    double took = et_run(&exec_command_kind, st, job, timeout, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    char want[64];
    snprintf(want, sizeof want, "timed out after %gs: sleeping", timeout);
    cr_expect_str_eq(res.error, want);
    cr_expect_geq(took, min_s);
    cr_expect_lt(took, max_s);

    char *pids = ts_read_file(pid_path, NULL);
    cr_assert_not_null(pids, "the script wrote no pid file");
    int leader = 0, child = 0;
    cr_assert_eq(sscanf(pids, "%d %d", &leader, &child), 2);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d", leader);
    cr_expect_neq(access(proc, F_OK), 0, "the script %d is still there (zombie?)", leader);
    int wst = reap_within(child);
    cr_assert_neq(wst, -1, "the script's child %d did not end", child);
    cr_expect(WIFSIGNALED(wst) && (WTERMSIG(wst) == want_sig || WTERMSIG(wst) == SIGKILL),
              "child status %#x", wst);
    snprintf(proc, sizeof proc, "/proc/%d", child);
    cr_expect_neq(access(proc, F_OK), 0);
    cr_expect(kill(-leader, 0) == -1 && errno == ESRCH, "process group %d still has members",
              leader);
    free(pids);
    job_free(job);
    exec_command_kind.destroy(st);
}

Test(command, timeout_terms_the_whole_group)
{
    check_tree_killed("", "\"kill_grace\": 5", 0.5, SIGTERM, 0.45, 3);
}

Test(command, group_ignoring_sigterm_is_killed_after_the_grace)
{
    check_tree_killed("ignore-term", "\"kill_grace\": 0.4", 0.4, SIGKILL, 0.75, 3.5);
}

Test(command, argv_is_passed_verbatim)
{
    char bin[PATH_MAX], out_path[512];
    const char *argv[] = {et_bin("print_args.sh", bin),
                          tmp_path("args", out_path, 512),
                          "two words",
                          "it's",
                          "\"double\"",
                          "$HOME",
                          "a;b|c && d",
                          "*",
                          "",
                          "  padded  ",
                          "tab\there",
                          "ünïcødé",
                          "`id`",
                          NULL};
    void *st = create_cmd(argv, "");
    job_t *job = et_job("job-args", 0, NULL);
    exec_result res;
    et_run(&exec_command_kind, st, job, 10, &res);
    cr_assert_eq(res.status, EXEC_OK, "%s", res.error);
    char want[1024] = "";
    for (size_t i = 2; argv[i]; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "<%s>\n", argv[i]);
    char *got = ts_read_file(out_path, NULL);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want);
    free(got);
    job_free(job);
    exec_command_kind.destroy(st);
}

Test(command, missing_program_is_a_retryable_failure)
{
    const char *argv[] = {"/nonexistent/jobd-test-program", NULL};
    void *st = create_cmd(argv, "");
    job_t *job = et_job("job-missing", 0, NULL);
    exec_result res;
    et_run(&exec_command_kind, st, job, 5, &res);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error,
                     "cannot run /nonexistent/jobd-test-program: No such file or directory");
    job_free(job);
    exec_command_kind.destroy(st);
}

typedef struct bg_run {
    void *state;
    job_t *job;
    exec_result res;
} bg_run;

static void *bg_run_main(void *arg)
{
    bg_run *b = arg;
    et_run(&exec_command_kind, b->state, b->job, 20, &b->res);
    return NULL;
}

/* Pid of our child running /bin/sleep, found in /proc within 5 s; 0 if none. */
static pid_t find_sleep_child(void)
{
    long long deadline = ts_now_ms() + 5000;
    do {
        DIR *d = opendir("/proc");
        struct dirent *de;
        pid_t found = 0;
        while (d && !found && (de = readdir(d)) != NULL) {
            char path[300], stat[512] = "";
            snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
            FILE *f = fopen(path, "re");
            if (!f)
                continue;
            int ppid = 0;
            if (fgets(stat, sizeof stat, f) && strstr(stat, "(sleep) ") &&
                sscanf(strstr(stat, ") ") + 2, "%*c %d", &ppid) == 1 && ppid == getpid())
                found = atoi(de->d_name);
            fclose(f);
        }
        if (d)
            closedir(d);
        if (found)
            return found;
        usleep(2000);
    } while (ts_now_ms() < deadline);
    return 0;
}

/* The first fd >= 3 that process pid holds, or -1 if it holds only 0-2. */
static int child_extra_fd(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    struct dirent *de;
    int extra = -1;
    while (extra < 0 && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && atoi(de->d_name) >= 3)
            extra = atoi(de->d_name);
    closedir(d);
    return extra;
}

Test(command, child_has_only_std_fds_own_group_and_reports_its_signal)
{
    /* an fd without O_CLOEXEC, as a careless library would leave one */
    int leaky = open("/dev/null", O_RDONLY);
    cr_assert_geq(leaky, 0);
    const char *argv[] = {"/bin/sleep", "30", NULL};
    bg_run b = {.state = create_cmd(argv, ""), .job = et_job("job-fds", 0, NULL)};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bg_run_main, &b), 0);
    pid_t pid = find_sleep_child();
    cr_assert_gt(pid, 0, "the command did not start");
    /* Right after exec the dynamic loader of /bin/sleep may hold fd 3 for a
     * moment (its libraries); an inherited fd stays for good. So the child
     * must show only 0-2 at some point within 2 s. */
    int extra = -1;
    long long fd_deadline = ts_now_ms() + 2000;
    do {
        extra = child_extra_fd(pid);
        if (extra < 0)
            break;
        usleep(2000);
    } while (ts_now_ms() < fd_deadline);
    cr_expect_lt(extra, 0, "the child inherited fd %d", extra);
    cr_expect_eq(getpgid(pid), pid, "the child leads its own process group");
    kill(pid, SIGKILL);
    pthread_join(t, NULL);
    cr_expect_eq(b.res.status, EXEC_RETRY);
    cr_expect_str_eq(b.res.error, "killed by signal 9 (SIGKILL)");
    close(leaky);
    job_free(b.job);
    exec_command_kind.destroy(b.state);
}

typedef struct fd_worker {
    void *cat, *fail;
    int ok, failed, other;
} fd_worker;

static void *fd_worker_main(void *arg)
{
    fd_worker *w = arg;
    job_t *job = et_job("job-fd", 0, "{\"some\": \"args\"}");
    for (int i = 0; i < FD_RUNS_PER_THREAD; i++) {
        exec_result res;
        bool odd = i % 2;
        et_run(&exec_command_kind, odd ? w->fail : w->cat, job, 10, &res);
        if (!odd && res.status == EXEC_OK)
            w->ok++;
        else if (odd && res.status == EXEC_RETRY && strcmp(res.error, "exit status 1") == 0)
            w->failed++;
        else
            w->other++;
    }
    job_free(job);
    return NULL;
}

Test(command, fd_count_is_stable_after_1000_concurrent_runs)
{
    const char *cat_argv[] = {"/bin/cat", NULL};
    const char *fail_argv[] = {"/bin/false", NULL};
    void *cat = create_cmd(cat_argv, "");
    void *fail = create_cmd(fail_argv, "");
    int before = et_fd_count(0);
    fd_worker w[FD_THREADS];
    pthread_t t[FD_THREADS];
    for (int i = 0; i < FD_THREADS; i++) {
        w[i] = (fd_worker){.cat = cat, .fail = fail};
        cr_assert_eq(pthread_create(&t[i], NULL, fd_worker_main, &w[i]), 0);
    }
    int ok = 0, failed = 0, other = 0;
    for (int i = 0; i < FD_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
        failed += w[i].failed;
        other += w[i].other;
    }
    cr_expect_eq(ok + failed, FD_THREADS * FD_RUNS_PER_THREAD);
    cr_expect_eq(ok, failed);
    cr_expect_eq(other, 0);
    cr_expect_eq(et_fd_count(0), before, "fds leaked");
    int st;
    cr_expect(waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD, "a child was left unreaped");
    exec_command_kind.destroy(cat);
    exec_command_kind.destroy(fail);
}

/* ---- end to end through jobd -------------------------------------------------- */

/* Criterion's fixtures take no arguments: the jobd of the running test. */
static ts_jobd jobd_srv;

static void jobd_teardown(void)
{
    if (jobd_srv.pid > 0)
        ts_jobd_stop(&jobd_srv, SIGTERM, 10000);
}

#define FAST_BACKOFF \
    "\"backoff\": {\"base\": 0.01, \"factor\": 0, \"exponent\": 1, \"jitter\": 0, \"max\": 0.05}"

/* Starts jobd with one inline queue "q" (max_attempts as given) and the
 * handlers object handlers_json. Returns its port. */
static int jobd_up(int max_attempts, const char *handlers_json)
{
    char *config = malloc(16384);
    snprintf(config, 16384,
             "{\"workers\": 4, \"shutdown_timeout\": 2, \"queues\": {\"q\": {\"dequeue\":"
             " [\"inline\"], \"max_attempts\": %d, " FAST_BACKOFF "}}, \"handlers\": %s}",
             max_attempts, handlers_json);
    int rc = ts_jobd_start(&jobd_srv, config, NULL);
    free(config);
    cr_assert_eq(rc, 0, "jobd did not start");
    return jobd_srv.port;
}

/* Submits body (one job or a batch) to queue q; the first job's id into id (>= 160). */
static void submit(int port, const char *body, char *id)
{
    ts_resp r;
    cr_assert_eq(ts_post(&r, port, "/queues/q/jobs", body), 0);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    const json_t *job = json_is_array(json_object_get(r.json, "jobs"))
                            ? json_array_get(json_object_get(r.json, "jobs"), 0)
                            : r.json;
    snprintf(id, 160, "%s", json_string_value(json_object_get(job, "id")));
    ts_resp_free(&r);
}

/* Polls GET /queues/q until processed_total reaches n (60 s). True if it did. */
static bool wait_processed(int port, long n)
{
    long long deadline = ts_now_ms() + 60000;
    long done = -1;
    do {
        ts_resp r;
        if (ts_get(&r, port, "/queues/q") == 0 && r.json)
            done = (long)json_integer_value(json_object_get(r.json, "processed_total"));
        ts_resp_free(&r);
        if (done < n)
            usleep(20000);
    } while (done < n && ts_now_ms() < deadline);
    return done >= n;
}

/* Children of pid in /proc (zombies included). */
static int count_children(pid_t pid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)) != NULL) {
        char path[300], stat[512] = "";
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        int ppid = 0;
        if (fgets(stat, sizeof stat, f) && strrchr(stat, ')') &&
            sscanf(strrchr(stat, ')') + 2, "%*c %d", &ppid) == 1 && ppid == pid)
            n++;
        fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

Test(command, e2e_exit_status_and_stdin_through_jobd, .fini = jobd_teardown)
{
    char fail_bin[PATH_MAX], stdin_bin[PATH_MAX], in_path[512], env_path[512], handlers[8192];
    snprintf(handlers, sizeof handlers,
             "{\"cmd_fail\": {\"kind\": \"command\", \"argv\": [\"%s\"]},"
             " \"cmd_stdin\": {\"kind\": \"command\", \"argv\": [\"%s\", \"%s\", \"%s\"]}}",
             et_bin("fail_stderr.sh", fail_bin), et_bin("read_stdin.sh", stdin_bin),
             tmp_path("stdin", in_path, 512), tmp_path("env", env_path, 512));
    int port = jobd_up(2, handlers);
    char fail_id[160], stdin_id[160];
    submit(port, "{\"type\": \"cmd_fail\"}", fail_id);
    submit(port, "{\"type\": \"cmd_stdin\", \"args\": {\"file\": \"report.pdf\"}}", stdin_id);

    json_t *view = NULL;
    cr_expect(ts_wait_state(port, "q", fail_id, "dead", 15000, &view));
    cr_expect_eq(json_integer_value(json_object_get(view, "attempts")), 2);
    cr_expect_str_eq(json_string_value(json_object_get(view, "last_error")),
                     "exit status 3: warming up\ndisk quota exceeded on /data");
    json_decref(view);

    cr_assert(ts_wait_state(port, "q", stdin_id, "succeeded", 15000, NULL));
    char *got = ts_read_file(in_path, NULL);
    json_t *body = got ? json_loads(got, 0, NULL) : NULL;
    cr_assert_not_null(body, "stdin was %s", got ? got : "(no file)");
    cr_expect_str_eq(json_string_value(json_object_get(body, "id")), stdin_id);
    cr_expect_str_eq(json_string_value(json_object_get(body, "type")), "cmd_stdin");
    cr_expect_eq(json_integer_value(json_object_get(body, "attempt")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(body, "args"), "file")),
                     "report.pdf");
    json_decref(body);
    free(got);
}

/* jobd blocks SIGTERM in every thread (it sigwaits for it): the child must
 * not inherit that mask, or the timeout's SIGTERM would wait for the grace.
 * /bin/sleep runs directly: a shell would clear its mask itself. */
Test(command, e2e_timeout_terms_the_program_promptly, .fini = jobd_teardown)
{
    int port = jobd_up(1, "{\"cmd_sleep\": {\"kind\": \"command\","
                          " \"argv\": [\"/bin/sleep\", \"30\"], \"timeout\": 0.5}}");
    char id[160];
    long long t0 = ts_now_ms();
    submit(port, "{\"type\": \"cmd_sleep\"}", id);
    json_t *view = NULL;
    cr_assert(ts_wait_state(port, "q", id, "dead", 10000, &view));
    cr_expect_lt(ts_now_ms() - t0, 3000, "SIGTERM did not end it: the grace (5 s) did");
    cr_expect_str_eq(json_string_value(json_object_get(view, "last_error")),
                     "timed out after 0.5s");
    json_decref(view);
    cr_expect_eq(count_children(jobd_srv.pid), 0, "jobd did not reap the program");
}

Test(command, e2e_jobd_fd_count_stable_after_1000_commands, .fini = jobd_teardown)
{
    int port = jobd_up(1, "{\"cmd_cat\": {\"kind\": \"command\", \"argv\": [\"/bin/cat\"]}}");
    size_t cap = 1000 * 32 + 16;
    char *batch = malloc(cap), id[160];
    snprintf(batch, cap, "[");
    for (int i = 0; i < 1000; i++)
        snprintf(batch + strlen(batch), cap - strlen(batch), "%s{\"type\": \"cmd_cat\"}",
                 i ? "," : "");
    snprintf(batch + strlen(batch), cap - strlen(batch), "]");

    /* a first round opens whatever jobd keeps open for good (worker stacks, logs) */
    submit(port,
           "[{\"type\": \"cmd_cat\"}, {\"type\": \"cmd_cat\"}, {\"type\": \"cmd_cat\"},"
           " {\"type\": \"cmd_cat\"}, {\"type\": \"cmd_cat\"}]",
           id);
    cr_assert(wait_processed(port, 5));
    int before = et_fd_count(jobd_srv.pid);
    cr_assert_gt(before, 0);
    submit(port, batch, id);
    cr_assert(wait_processed(port, 1005), "1000 commands did not finish in time");
    /* the test's own HTTP connections come and go: give them a moment */
    long long deadline = ts_now_ms() + 3000;
    int after;
    while ((after = et_fd_count(jobd_srv.pid)) > before && ts_now_ms() < deadline)
        usleep(10000);
    cr_expect_leq(after, before, "jobd leaked fds");
    cr_expect_eq(count_children(jobd_srv.pid), 0, "jobd left children (zombies?)");
    free(batch);
}
