/* exec_command.c - the "command" handler kind: runs a program with
 * posix_spawn (never a shell), the job JSON on its stdin, the tail of its
 * stderr as the error.
 *
 * The child is the leader of a new process group, so a timeout can signal
 * everything it started. One poll() loop feeds stdin and drains stdout and
 * stderr, so no output size can deadlock parent and child. */
#include "../util/list.h"
#include "exec.h"
#include "exec_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define COMMAND_KILL_GRACE  5.0   /* seconds between SIGTERM and SIGKILL by default */
#define COMMAND_TAIL        1024  /* bytes of stderr kept for the error */
#define COMMAND_CHUNK       16384 /* bytes per read or write */
#define COMMAND_DRAIN_READS 64    /* reads per pipe once the program has ended */
#define COMMAND_TICK_MS     10    /* exit checks without a pidfd (kernel < 5.3) */
#define COMMAND_POLL_MAX_MS 60000 /* longest single poll(); the loop recomputes (no int overflow) */

enum { COMMAND_IN, COMMAND_OUT, COMMAND_ERR, COMMAND_NFD };

typedef struct exec_command_child exec_command_child;

typedef struct exec_command {
    char **argv; /* owned, NULL-terminated */
    char **env;  /* owned "NAME=value" of allowed variables set at create, NULL-terminated */
    size_t n_env;
    double timeout; /* 0 = none of its own */
    double kill_grace;
    /* Programs started and not yet reaped (their pids, hence their groups,
     * stay taken meanwhile), for kill_all. */
    pthread_mutex_t mu;
    list_t running; /* of exec_command_child */
} exec_command;

/* One running program, as the parent sees it. */
struct exec_command_child {
    list_node link; /* in exec_command.running */
    pid_t pid;
    int pidfd;           /* readable when the program ends; -1 = unavailable */
    int fd[COMMAND_NFD]; /* parent's ends of stdin, stdout, stderr; -1 = closed */
    const char *input;   /* the payload, written to stdin */
    size_t input_len, input_off;
    char tail[COMMAND_TAIL]; /* the last bytes of stderr */
    size_t tail_len;
    bool ended; /* the program exited (not yet reaped) */
    bool timed_out;
    bool interrupted; /* the shutdown deadline fired while it ran */
    bool signalled;   /* its group got SIGTERM (timeout or interrupt) */
    bool status_known; /* false when someone else reaped it */
    int wstatus;
};

static const char *const exec_command_keys[] = {
    "kind", "argv", "timeout", "kill_grace", "env", NULL,
};

/* ---- check ---------------------------------------------------------------- */

static bool exec_command_string_ok(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static int exec_command_check_argv(const json_t *opts, char *err, size_t errlen)
{
    const json_t *argv = json_object_get(opts, "argv");
    if (!argv) {
        snprintf(err, errlen, "argv: missing");
        return -1;
    }
    if (!json_is_array(argv) || json_array_size(argv) == 0) {
        snprintf(err, errlen, "argv: must be a non-empty array of strings");
        return -1;
    }
    size_t i;
    const json_t *arg;
    json_array_foreach (argv, i, arg) {
        if (!exec_command_string_ok(arg)) {
            snprintf(err, errlen, "argv[%zu]: must be a string", i);
            return -1;
        }
    }
    if (json_string_value(json_array_get(argv, 0))[0] != '/') {
        snprintf(err, errlen, "argv[0]: must be an absolute path");
        return -1;
    }
    return 0;
}

/* A portable environment variable name: [A-Za-z_][A-Za-z0-9_]*. */
static bool exec_command_env_name_ok(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static int exec_command_check_env(const json_t *opts, char *err, size_t errlen)
{
    const json_t *env = json_object_get(opts, "env");
    if (!env)
        return 0;
    if (!json_is_array(env)) {
        snprintf(err, errlen, "env: must be an array of variable names");
        return -1;
    }
    size_t i;
    const json_t *name;
    json_array_foreach (env, i, name) {
        const char *s = json_string_value(name);
        if (!exec_command_string_ok(name) || !exec_command_env_name_ok(s)) {
            snprintf(err, errlen, "env[%zu]: must be a variable name ([A-Za-z_][A-Za-z0-9_]*)", i);
            return -1;
        }
        if (strcmp(s, "JOBD_JOB_ID") == 0 || strcmp(s, "JOBD_ATTEMPT") == 0 ||
            strcmp(s, "TRACEPARENT") == 0 || strcmp(s, "TRACESTATE") == 0) {
            snprintf(err, errlen, "env[%zu]: %s is set by jobd", i, s);
            return -1;
        }
    }
    return 0;
}

static int exec_command_check(const char *type, const json_t *opts, char *err, size_t errlen)
{
    double ignored;
    if (!json_is_object(opts)) {
        snprintf(err, errlen, "must be an object");
        return -1;
    }
    if (exec_util_check_keys(opts, exec_command_keys, err, errlen) != 0 ||
        exec_command_check_argv(opts, err, errlen) != 0 ||
        exec_util_seconds(opts, "timeout", 0, &ignored, err, errlen) != 0 ||
        exec_util_seconds(opts, "kill_grace", 0, &ignored, err, errlen) != 0 ||
        exec_command_check_env(opts, err, errlen) != 0)
        return -1;
    return 0;
}

/* ---- create / destroy ------------------------------------------------------- */

static void exec_command_free_strings(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void exec_command_destroy(void *state)
{
    exec_command *c = state;
    if (!c)
        return;
    exec_command_free_strings(c->argv);
    exec_command_free_strings(c->env);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static char **exec_command_copy_argv(const json_t *argv)
{
    size_t n = json_array_size(argv);
    char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        v[i] = strdup(json_string_value(json_array_get(argv, i)));
        if (!v[i]) {
            exec_command_free_strings(v);
            return NULL;
        }
    }
    return v;
}

/* The allowed variables are read once here: jobd's environment does not
 * change while it runs, and getenv in worker threads would race setenv. */
static int exec_command_copy_env(exec_command *c, const json_t *names)
{
    size_t n = json_array_size(names);
    c->env = calloc(n + 1, sizeof *c->env);
    if (!c->env)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(names, i));
        const char *value = getenv(name);
        if (!value)
            continue;
        size_t len = strlen(name) + strlen(value) + 2;
        char *pair = malloc(len);
        if (!pair)
            return -1;
        snprintf(pair, len, "%s=%s", name, value);
        c->env[c->n_env++] = pair;
    }
    return 0;
}

/* opts passed exec_command_check in config_parse: read, not checked again. */
static void *exec_command_create(const char *type, const json_t *opts, char *err, size_t errlen)
{
    exec_command *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    if (!c || !(c->argv = exec_command_copy_argv(json_object_get(opts, "argv"))) ||
        exec_command_copy_env(c, json_object_get(opts, "env")) != 0) {
        exec_command_destroy(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    exec_util_seconds(opts, "timeout", 0, &c->timeout, err, errlen);
    exec_util_seconds(opts, "kill_grace", COMMAND_KILL_GRACE, &c->kill_grace, err, errlen);
    return c;
}

static double exec_command_timeout(void *state)
{
    return ((exec_command *)state)->timeout;
}

/* ---- spawn ------------------------------------------------------------------ */

static void exec_command_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The job's own variables: JOBD_JOB_ID, JOBD_ATTEMPT and, with a trace
 * context, TRACEPARENT (a new parent id per run, as for a webhook call) and
 * TRACESTATE. */
typedef struct exec_command_vars {
    char *list[4]; /* into the buffers below; the unused ones NULL */
    char id[JOB_ID_MAX + 16], attempt[32];
    char traceparent[TRACE_PARENT_LEN + 16], tracestate[TRACE_STATE_MAX + 16];
} exec_command_vars;

static void exec_command_vars_fill(exec_command_vars *v, const job_t *job)
{
    size_t n = 0;
    snprintf(v->id, sizeof v->id, "JOBD_JOB_ID=%s", job->id);
    snprintf(v->attempt, sizeof v->attempt, "JOBD_ATTEMPT=%d", job->attempts + 1);
    v->list[n++] = v->id;
    v->list[n++] = v->attempt;
    if (job->trace) {
        char child[TRACE_PARENT_LEN + 1];
        trace_parent_child(job->trace->parent, child);
        snprintf(v->traceparent, sizeof v->traceparent, "TRACEPARENT=%s", child);
        v->list[n++] = v->traceparent;
    }
    if (job->trace && job->trace->state[0]) {
        snprintf(v->tracestate, sizeof v->tracestate, "TRACESTATE=%s", job->trace->state);
        v->list[n++] = v->tracestate;
    }
    while (n < sizeof v->list / sizeof *v->list)
        v->list[n++] = NULL;
}

/* The child's environment: the allowed variables plus the job's own. New
 * array (free() it) of borrowed strings; NULL on OOM. */
static char **exec_command_envp(const exec_command *c, const exec_command_vars *v)
{
    size_t n = sizeof v->list / sizeof *v->list;
    char **envp = calloc(c->n_env + n + 1, sizeof *envp);
    if (!envp)
        return NULL;
    memcpy(envp, c->env, c->n_env * sizeof *envp);
    memcpy(envp + c->n_env, v->list, n * sizeof *envp);
    return envp;
}

/* Attributes of the child: its own process group (so a timeout reaches its
 * children too), no blocked signals, and default dispositions (jobd ignores
 * SIGPIPE, and ignored signals would survive the exec). */
static int exec_command_attrs(posix_spawnattr_t *at)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (posix_spawnattr_init(at) != 0)
        return -1;
    if (posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                         POSIX_SPAWN_SETSIGDEF) != 0 ||
        posix_spawnattr_setpgroup(at, 0) != 0 || posix_spawnattr_setsigmask(at, &none) != 0 ||
        posix_spawnattr_setsigdefault(at, &all) != 0) {
        posix_spawnattr_destroy(at);
        return -1;
    }
    return 0;
}

/* The child's fds: the pipes as 0, 1, 2 and nothing else, whatever other
 * libraries of jobd opened without O_CLOEXEC. */
static int exec_command_file_actions(posix_spawn_file_actions_t *fa,
                                     const int child_fd[COMMAND_NFD])
{
    if (posix_spawn_file_actions_init(fa) != 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < COMMAND_NFD && rc == 0; i++)
        rc = posix_spawn_file_actions_adddup2(fa, child_fd[i], i);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(fa, COMMAND_NFD);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(fa);
        return -1;
    }
    return 0;
}

/* Starts the program with attributes and fds prepared; errno-style result. */
static int exec_command_exec(const exec_command *c, const exec_job *job,
                             const int child_fd[COMMAND_NFD], pid_t *pid)
{
    exec_command_vars vars;
    exec_command_vars_fill(&vars, job->job);
    char **envp = exec_command_envp(c, &vars);
    posix_spawnattr_t at;
    posix_spawn_file_actions_t fa;
    if (!envp || exec_command_attrs(&at) != 0) {
        free(envp);
        return ENOMEM;
    }
    int rc = ENOMEM;
    if (exec_command_file_actions(&fa, child_fd) == 0) {
        rc = posix_spawn(pid, c->argv[0], &fa, &at, c->argv, envp);
        posix_spawn_file_actions_destroy(&fa);
    }
    posix_spawnattr_destroy(&at);
    free(envp);
    return rc;
}

/* Creates the pipes and starts the program. 0, or -1 with res filled. */
static int exec_command_spawn(const exec_command *c, const exec_job *job, exec_command_child *ch,
                              exec_result *res)
{
    int pipes[COMMAND_NFD][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int child_fd[COMMAND_NFD];
    int rc = 0;
    for (int i = 0; i < COMMAND_NFD && rc == 0; i++)
        rc = pipe2(pipes[i], O_CLOEXEC) == 0 ? 0 : errno;
    for (int i = 0; i < COMMAND_NFD; i++) {
        /* stdin: the child reads pipes[0][0]; stdout/stderr: it writes [i][1] */
        child_fd[i] = pipes[i][i == COMMAND_IN ? 0 : 1];
        ch->fd[i] = pipes[i][i == COMMAND_IN ? 1 : 0];
    }
    if (rc == 0)
        rc = exec_command_exec(c, job, child_fd, &ch->pid);
    for (int i = 0; i < COMMAND_NFD; i++)
        exec_command_close(&child_fd[i]);
    if (rc != 0) {
        for (int i = 0; i < COMMAND_NFD; i++)
            exec_command_close(&ch->fd[i]);
        char buf[128];
        exec_fail(res, EXEC_RETRY, "cannot run %s: %s", c->argv[0],
                  strerror_r(rc, buf, sizeof buf));
        return -1;
    }
    for (int i = 0; i < COMMAND_NFD; i++)
        fcntl(ch->fd[i], F_SETFL, O_NONBLOCK);
    ch->pidfd = pidfd_open(ch->pid, 0);
    return 0;
}

/* ---- supervise -------------------------------------------------------------- */

static void exec_command_keep_tail(exec_command_child *ch, const char *data, size_t n)
{
    if (n >= COMMAND_TAIL) {
        memcpy(ch->tail, data + n - COMMAND_TAIL, COMMAND_TAIL);
        ch->tail_len = COMMAND_TAIL;
        return;
    }
    size_t drop = ch->tail_len + n > COMMAND_TAIL ? ch->tail_len + n - COMMAND_TAIL : 0;
    memmove(ch->tail, ch->tail + drop, ch->tail_len - drop);
    memcpy(ch->tail + ch->tail_len - drop, data, n);
    ch->tail_len += n - drop;
}

/* One read from stdout or stderr; closes the pipe at EOF or error.
 * True when more may be waiting. */
static bool exec_command_read(exec_command_child *ch, int i)
{
    char buf[COMMAND_CHUNK];
    ssize_t n = read(ch->fd[i], buf, sizeof buf);
    if (n > 0) {
        if (i == COMMAND_ERR)
            exec_command_keep_tail(ch, buf, (size_t)n);
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    exec_command_close(&ch->fd[i]);
    return false;
}

/* Writes what stdin takes now. A program that exits without reading its
 * input is fine: EPIPE (SIGPIPE is ignored) just closes our end. */
static void exec_command_write(exec_command_child *ch)
{
    size_t left = ch->input_len - ch->input_off;
    ssize_t n = left ? write(ch->fd[COMMAND_IN], ch->input + ch->input_off,
                             left < COMMAND_CHUNK ? left : COMMAND_CHUNK)
                     : 0;
    if (n > 0)
        ch->input_off += (size_t)n;
    else if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || ch->input_off == ch->input_len)
        exec_command_close(&ch->fd[COMMAND_IN]);
}

/* Notes whether the program has ended, without reaping it: its pid must stay
 * taken until the last signal to its group has been sent. */
static void exec_command_check_ended(exec_command_child *ch)
{
    siginfo_t info = {.si_pid = 0};
    if (waitid(P_PID, (id_t)ch->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0)
        ch->ended = info.si_pid == ch->pid;
    else if (errno == ECHILD)
        ch->ended = true; /* reaped by someone else: nothing left to wait for */
}

/* Waits up to timeout_ms for I/O, the end of the program or the shutdown
 * interrupt (intr_fd, -1 = none), then serves the fds. */
static void exec_command_poll(exec_command_child *ch, int64_t timeout_ms, int intr_fd)
{
    struct pollfd p[COMMAND_NFD + 2];
    for (int i = 0; i < COMMAND_NFD; i++)
        p[i] = (struct pollfd){.fd = ch->fd[i], .events = i == COMMAND_IN ? POLLOUT : POLLIN};
    p[COMMAND_NFD] = (struct pollfd){.fd = ch->pidfd, .events = POLLIN};
    p[COMMAND_NFD + 1] = (struct pollfd){.fd = intr_fd, .events = POLLIN};
    if (timeout_ms > COMMAND_POLL_MAX_MS)
        timeout_ms = COMMAND_POLL_MAX_MS;
    if (ch->pidfd < 0 && timeout_ms > COMMAND_TICK_MS)
        timeout_ms = COMMAND_TICK_MS;
    if (poll(p, COMMAND_NFD + 2, (int)timeout_ms) <= 0)
        return;
    if (p[COMMAND_IN].revents)
        exec_command_write(ch);
    for (int i = COMMAND_OUT; i < COMMAND_NFD; i++)
        if (p[i].revents)
            exec_command_read(ch, i);
}

/* What is left in the pipes once the program ended. Bounded: a grandchild
 * that keeps the pipes open and writing must not hold the worker. */
static void exec_command_drain(exec_command_child *ch)
{
    for (int i = COMMAND_OUT; i < COMMAND_NFD; i++)
        for (int n = 0; n < COMMAND_DRAIN_READS && ch->fd[i] >= 0 && exec_command_read(ch, i);
             n++) {
        }
}

/* SIGTERM to the program's group; the time by which it gets SIGKILL. */
static int64_t exec_command_terminate(exec_command_child *ch, double grace)
{
    ch->signalled = true;
    kill(-ch->pid, SIGTERM);
    return jobd_mono_ms() + (int64_t)(grace * 1000);
}

/* Runs the I/O loop until the program ends or its time (then the grace after
 * SIGTERM) is up. The shutdown interrupt acts like a timeout with the grace
 * cut to the interrupt's grace_max, so jobd's exit waits for no program.
 * Leaves the program ended or SIGKILLed, not yet reaped. */
static void exec_command_supervise(const exec_command *c, const exec_job *job,
                                   exec_command_child *ch)
{
    int64_t deadline = job->deadline_ms;
    for (;;) {
        exec_command_check_ended(ch);
        if (ch->ended)
            break;
        if (!ch->interrupted && exec_util_interrupted(job)) {
            ch->interrupted = true;
            double grace = c->kill_grace < job->interrupt->grace_max ? c->kill_grace
                                                                      : job->interrupt->grace_max;
            int64_t by = jobd_mono_ms() + (int64_t)(grace * 1000);
            if (!ch->signalled)
                deadline = exec_command_terminate(ch, grace);
            else if (by < deadline)
                deadline = by;
            continue;
        }
        int64_t left = deadline - jobd_mono_ms();
        if (left <= 0 && ch->signalled) {
            kill(-ch->pid, SIGKILL);
            break;
        }
        if (left <= 0) {
            ch->timed_out = true;
            deadline = exec_command_terminate(ch, c->kill_grace);
            continue;
        }
        int intr_fd = job->interrupt && !ch->interrupted ? job->interrupt->fd : -1;
        exec_command_poll(ch, left, intr_fd);
    }
    exec_command_drain(ch);
    /* After a timeout or interrupt nothing of the group may outlive the job,
     * including children that ignored SIGTERM while the leader obeyed it. */
    if (ch->signalled)
        kill(-ch->pid, SIGKILL);
}

static void exec_command_track(exec_command *c, exec_command_child *ch)
{
    pthread_mutex_lock(&c->mu);
    list_push(&c->running, &ch->link);
    pthread_mutex_unlock(&c->mu);
}

/* Before the reap: from then on its pid may be reused. */
static void exec_command_untrack(exec_command *c, exec_command_child *ch)
{
    pthread_mutex_lock(&c->mu);
    list_remove(&c->running, &ch->link);
    pthread_mutex_unlock(&c->mu);
}

static void exec_command_kill_all(void *state)
{
    exec_command *c = state;
    pthread_mutex_lock(&c->mu);
    for (list_node *n = c->running.head; n; n = n->next)
        kill(-LIST_ITEM(n, exec_command_child, link)->pid, SIGKILL);
    pthread_mutex_unlock(&c->mu);
}

static void exec_command_reap(exec_command_child *ch)
{
    pid_t r;
    do
        r = waitpid(ch->pid, &ch->wstatus, 0);
    while (r < 0 && errno == EINTR);
    ch->status_known = r == ch->pid;
}

/* ---- report ----------------------------------------------------------------- */

static void exec_command_report(const exec_command_child *ch, const exec_job *job, exec_result *res)
{
    char prefix[64];
    int st = ch->wstatus;
    if (ch->interrupted && !(ch->status_known && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        exec_util_fail_interrupted(res);
        return;
    }
    if (ch->timed_out)
        snprintf(prefix, sizeof prefix, "timed out after %gs", job->timeout);
    else if (!ch->status_known)
        snprintf(prefix, sizeof prefix, "exit status unknown (reaped elsewhere)");
    else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return;
    else if (WIFEXITED(st))
        snprintf(prefix, sizeof prefix, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st) && sigabbrev_np(WTERMSIG(st)))
        snprintf(prefix, sizeof prefix, "killed by signal %d (SIG%s)", WTERMSIG(st),
                 sigabbrev_np(WTERMSIG(st)));
    else
        snprintf(prefix, sizeof prefix, "killed by signal %d", WTERMSIG(st));
    exec_util_fail(res, EXEC_RETRY, prefix, ch->tail, ch->tail_len, true);
}

static void exec_command_run(void *state, const exec_job *job, exec_result *res)
{
    exec_command *c = state;
    if (job->deadline_ms <= jobd_mono_ms()) {
        exec_fail(res, EXEC_RETRY, "timed out after %gs before the program started", job->timeout);
        return;
    }
    exec_command_child ch = {.pidfd = -1, .input = job->payload, .input_len = job->payload_len};
    if (exec_command_spawn(c, job, &ch, res) != 0)
        return;
    exec_command_track(c, &ch);
    exec_command_supervise(c, job, &ch);
    exec_command_untrack(c, &ch);
    exec_command_reap(&ch);
    for (int i = 0; i < COMMAND_NFD; i++)
        exec_command_close(&ch.fd[i]);
    exec_command_close(&ch.pidfd);
    exec_command_report(&ch, job, res);
}

const exec_kind exec_command_kind = {
    .name = "command",
    .check = exec_command_check,
    .create = exec_command_create,
    .run = exec_command_run,
    .destroy = exec_command_destroy,
    .timeout = exec_command_timeout,
    .kill_all = exec_command_kill_all,
};
