/* test_redis_crash.c - delivery guarantees of Redis queues with several jobd
 * processes: a process killed with SIGKILL loses no job, and two processes
 * sharing a queue run every job exactly once when nothing crashes. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/job.h"
#include "redis_test.h"

TestSuite(redis_crash, .timeout = 120);

typedef char job_id[JOB_ID_MAX + 1];

static int id_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* POSTs n jobs of body_fmt (one %d: the job's number) as one batch and
 * appends the ids the server gave them to ids[*n_ids]. */
static void submit_batch(int port, const char *body_fmt, int first, int n, job_id *ids,
                         size_t *n_ids)
{
    size_t cap = (size_t)n * 96 + 16, len = 0;
    char *body = malloc(cap);
    cr_assert_not_null(body);
    body[len++] = '[';
    for (int i = 0; i < n; i++) {
        if (i)
            body[len++] = ',';
        len += (size_t)snprintf(body + len, cap - len, body_fmt, first + i);
    }
    snprintf(body + len, cap - len, "]");
    ts_resp r;
    cr_assert_eq(ts_post(&r, port, "/queues/q/jobs", body), 0);
    free(body);
    cr_assert_eq(r.status, 202, "batch answered %ld: %s", r.status, r.body);
    json_t *jobs = json_object_get(r.json, "jobs");
    cr_assert_eq(json_array_size(jobs), (size_t)n);
    for (size_t i = 0; i < json_array_size(jobs); i++)
        snprintf(ids[(*n_ids)++], sizeof(job_id), "%s",
                 json_string_value(json_object_get(json_array_get(jobs, i), "id")));
    ts_resp_free(&r);
}

/* Pages through /queues/q/jobs?state=state and returns how many there are;
 * *retried gets how many of them have attempts > 1. */
static size_t count_state(int port, const char *state, size_t *retried)
{
    char path[256], cursor[64] = "";
    size_t n = 0;
    *retried = 0;
    for (int page = 0; page < 100; page++) {
        snprintf(path, sizeof path, "/queues/q/jobs?state=%s&limit=1000%s%s", state,
                 cursor[0] ? "&cursor=" : "", cursor);
        ts_resp r;
        cr_assert_eq(ts_get(&r, port, path), 0);
        cr_assert_eq(r.status, 200);
        json_t *jobs = json_object_get(r.json, "jobs");
        for (size_t i = 0; i < json_array_size(jobs); i++) {
            n++;
            *retried +=
                json_integer_value(json_object_get(json_array_get(jobs, i), "attempts")) > 1;
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        ts_resp_free(&r);
        if (!next)
            break;
    }
    return n;
}

static bool wait_running(int port, long want, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    while (ts_now_ms() < deadline) {
        if (rt_count(port, "running") >= want)
            return true;
        rt_sleep_ms(10);
    }
    return false;
}

Test(redis_crash, jobs_of_a_killed_process_all_finish_in_another)
{
    enum { JOBS = 200, WORKERS = 20 };
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), WORKERS);
    ts_jobd a, b;
    rt_jobd_up(&a, cfg, NULL);
    job_id *ids = calloc(JOBS, sizeof *ids);
    size_t n_ids = 0;
    submit_batch(a.port, "{\"type\": \"sleep\", \"args\": {\"ms\": 2000, \"n\": %d}}", 0, JOBS, ids,
                 &n_ids);
    cr_assert(wait_running(a.port, WORKERS, 5000), "A runs %d jobs", WORKERS);
    long running_at_kill = rt_count(a.port, "running");
    cr_assert_eq(ts_jobd_stop(&a, SIGKILL, 2000), 128 + SIGKILL);
    long long killed = ts_now_ms();

    rt_jobd_up(&b, cfg, NULL);
    cr_assert(rt_wait_processed(b.port, JOBS, 60000), "all jobs done (%ld)", rt_processed(b.port));
    long long recovery = ts_now_ms() - killed;
    fprintf(stderr,
            "redis_crash: %d sleep jobs of 2 s, %d workers: kill -9 to all done in %lld ms\n", JOBS,
            WORKERS, recovery);

    size_t twice = 0;
    cr_assert_eq(count_state(b.port, "succeeded", &twice), JOBS, "every job succeeded");
    cr_assert_eq(rt_count(b.port, "running"), 0, "none stuck in a lease");
    cr_assert_eq(rt_count(b.port, "enqueued"), 0);
    cr_assert_gt(twice, 0, "the jobs A was running ran again");
    cr_assert_leq((long)twice, running_at_kill, "%zu ran twice, %ld were running at the kill",
                  twice, running_at_kill);
    cr_assert(ts_log_contains(&b, "stopped heartbeating"));
    ts_jobd_stop(&b, SIGTERM, 5000);
    free(ids);
}

/* Counts "job.echo id=<id> " lines of log per id (ids sorted) into counts. */
static void count_echoes(const char *log_path, job_id *ids, size_t n, int *counts)
{
    FILE *f = fopen(log_path, "r");
    cr_assert_not_null(f, "%s", log_path);
    char line[1024];
    static const char mark[] = "job.echo id=";
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, mark);
        if (!p)
            continue;
        p += sizeof mark - 1;
        job_id id = "";
        size_t len = strcspn(p, " ");
        cr_assert_lt(len, sizeof id);
        memcpy(id, p, len);
        job_id *hit = bsearch(id, ids, n, sizeof *ids, id_cmp);
        cr_assert_not_null(hit, "echo of an unknown job %s", id);
        counts[hit - ids]++;
    }
    fclose(f);
}

Test(redis_crash, two_processes_run_10000_jobs_exactly_once)
{
    enum { JOBS = 10000, BATCH = 1000 };
    char prefix[32], cfg[1024];
    rt_config(cfg, sizeof cfg, 0, ts_unique(prefix), 8);
    ts_jobd p[2];
    rt_jobd_up(&p[0], cfg, NULL);
    rt_jobd_up(&p[1], cfg, NULL);
    job_id *ids = calloc(JOBS, sizeof *ids);
    int *counts = calloc(JOBS, sizeof *counts);
    cr_assert(ids && counts);
    size_t n_ids = 0;
    for (int b = 0; b < JOBS / BATCH; b++)
        submit_batch(p[b % 2].port, "{\"type\": \"echo\", \"args\": {\"n\": %d}}", b * BATCH, BATCH,
                     ids, &n_ids);
    cr_assert(rt_wait_processed(p[0].port, JOBS, 60000), "processed %ld", rt_processed(p[0].port));
    const char *states[] = {"scheduled", "enqueued", "running", "retrying", "dead"};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        cr_assert_eq(rt_count(p[1].port, states[i]), 0, "%s", states[i]);
    size_t retried = 0;
    cr_assert_eq(count_state(p[1].port, "succeeded", &retried), JOBS);
    cr_assert_eq(retried, 0, "every job succeeded at its first attempt");
    /* Stopped, so that every log line is written. */
    cr_assert_eq(ts_jobd_stop(&p[0], SIGTERM, 10000), 0);
    cr_assert_eq(ts_jobd_stop(&p[1], SIGTERM, 10000), 0);

    qsort(ids, n_ids, sizeof *ids, id_cmp);
    count_echoes(p[0].log_path, ids, n_ids, counts);
    count_echoes(p[1].log_path, ids, n_ids, counts);
    int ran_by_both = 0;
    for (size_t i = 0; i < n_ids; i++)
        cr_assert_eq(counts[i], 1, "job %s ran %d times", ids[i], counts[i]);
    for (int k = 0; k < 2; k++)
        ran_by_both += ts_log_contains(&p[k], "job.echo");
    cr_assert_eq(ran_by_both, 2, "both processes took part");
    free(ids);
    free(counts);
}
