/* exec_test.c - helpers of exec_test.h for the webhook and command suites. */
#include "exec_test.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/job.h"
#include "support.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* Relative to the repository root, where `make test` runs the binary. */
#define ET_DATA_DIR  "tests/data/exec"
#define ET_MAX_CASES 200

job_t *et_job(const char *id, int attempts, const char *args_json)
{
    job_t *job = job_new();
    cr_assert_not_null(job);
    snprintf(job->id, sizeof job->id, "%s", id);
    snprintf(job->queue, sizeof job->queue, "q");
    snprintf(job->type, sizeof job->type, "t");
    job->attempts = attempts;
    job->created_at = jobd_now_ms();
    if (args_json) {
        json_error_t je;
        json_t *args = json_loads(args_json, JSON_DECODE_ANY, &je);
        cr_assert_not_null(args, "args: %s", je.text);
        json_decref(job->args);
        job->args = args;
    }
    return job;
}

void *et_try_create(const exec_kind *k, const char *opts_json, char *err, size_t errlen)
{
    json_error_t je;
    json_t *opts = json_loads(opts_json, 0, &je);
    cr_assert_not_null(opts, "handler object: %s", je.text);
    cr_assert_eq(k->check("t", opts, err, errlen), 0, "check: %s", err);
    void *state = k->create("t", opts, err, errlen);
    json_decref(opts);
    return state;
}

void *et_create(const exec_kind *k, const char *opts_json)
{
    char err[256] = "";
    void *state = et_try_create(k, opts_json, err, sizeof err);
    cr_assert_not_null(state, "create: %s", err);
    return state;
}

double et_run(const exec_kind *k, void *state, const job_t *job, double timeout, exec_result *res)
{
    exec_job ej = {.job = job, .timeout = timeout};
    char *payload = job_payload(job, &ej.payload_len);
    cr_assert_not_null(payload);
    ej.payload = payload;
    *res = (exec_result){.status = EXEC_OK, .retry_after = -1};
    int64_t t0 = jobd_mono_ms();
    ej.deadline_ms = t0 + (int64_t)(timeout * 1000);
    k->run(state, &ej, res);
    double took = (double)(jobd_mono_ms() - t0) / 1000.0;
    free(payload);
    return took;
}

static int et_name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sorted names (without ".json") of the cases in dir; returns how many. */
static size_t et_scan(const char *dir_path, char names[][128])
{
    size_t n = 0;
    DIR *dir = opendir(dir_path);
    struct dirent *de;
    while (dir && n < ET_MAX_CASES && (de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 5 && len - 5 < 128 && strcmp(de->d_name + len - 5, ".json") == 0)
            snprintf(names[n++], 128, "%.*s", (int)(len - 5), de->d_name);
    }
    if (dir)
        closedir(dir);
    qsort(names, n, 128, et_name_cmp);
    return n;
}

/* The file's JSON (new reference), failing the test when it does not parse. */
static json_t *et_load(const char *path)
{
    json_error_t je;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(v, "%s: %s", path, je.text);
    return v;
}

static void et_check_invalid(const char *dir, const char *name)
{
    char path[PATH_MAX + 160], err[256] = "";
    snprintf(path, sizeof path, "%s/%s.err", dir, name);
    char *want = ts_read_file(path, NULL);
    cr_assert_not_null(want, "%s is missing", path);
    want[strcspn(want, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    json_t *opts = et_load(path);
    cr_expect_eq(exec_check_handler("t", opts, err, sizeof err), -1, "%s: accepted", name);
    cr_expect_str_eq(err, want, "%s", name);
    json_decref(opts);
    free(want);
}

static void et_check_valid(const char *dir, const char *name)
{
    char path[PATH_MAX + 160], err[256] = "";
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    json_t *opts = et_load(path);
    cr_expect_eq(exec_check_handler("t", opts, err, sizeof err), 0, "%s: %s", name, err);
    const exec_kind *k = exec_kind_find(json_string_value(json_object_get(opts, "kind")));
    cr_assert_not_null(k, "%s", name);
    void *state = k->create("t", opts, err, sizeof err);
    cr_expect_not_null(state, "%s: create: %s", name, err);
    if (state)
        k->destroy(state);
    json_decref(opts);
}

int et_check_data_cases(const char *kind)
{
    char(*names)[128] = malloc(ET_MAX_CASES * sizeof *names);
    char dir[PATH_MAX];
    cr_assert_not_null(names);
    int total = 0;
    snprintf(dir, sizeof dir, "%s/%s/invalid", ET_DATA_DIR, kind);
    size_t n = et_scan(dir, names);
    for (size_t i = 0; i < n; i++, total++)
        et_check_invalid(dir, names[i]);
    snprintf(dir, sizeof dir, "%s/%s/valid", ET_DATA_DIR, kind);
    n = et_scan(dir, names);
    for (size_t i = 0; i < n; i++, total++)
        et_check_valid(dir, names[i]);
    free(names);
    return total;
}

const char *et_bin(const char *name, char *buf)
{
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "tests/data/bin/%s", name);
    cr_assert_not_null(realpath(rel, buf), "%s not found (run from the repository root)", rel);
    return buf;
}

int et_fd_count(int pid)
{
    char path[64];
    if (pid)
        snprintf(path, sizeof path, "/proc/%d/fd", pid);
    else
        snprintf(path, sizeof path, "/proc/self/fd");
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL)
        n += de->d_name[0] != '.';
    closedir(dir);
    return pid ? n : n - 1; /* not counting the fd of the listing itself */
}

void et_leak_check(void)
{
#ifdef __SANITIZE_ADDRESS__
    cr_expect_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (see stderr)");
#endif
}
