/* The handler table and the builtin handlers, run directly. */
#include <criterion/criterion.h>
#include <string.h>

#include "../queues/exec.h"
#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "../server/config.h"
#include "support.h"

static config_t *exec_config(const char *handlers_json)
{
    char text[1024], err[256] = "";
    snprintf(text, sizeof text, "{\"queues\": {\"q\": {\"dequeue\": [\"inline\"]}}, \"handlers\": %s}",
             handlers_json);
    config_t *cfg =
        config_parse(text, strlen(text), NULL, &pipeline_config_checks, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    return cfg;
}

static job_t *exec_job_of(const char *type, const char *args_json)
{
    job_t *job = job_new();
    strcpy(job->id, "01JDX3V8C2S9G7Q5M4N2P1R0TZ");
    strcpy(job->queue, "q");
    snprintf(job->type, sizeof job->type, "%s", type);
    json_decref(job->args);
    job->args = json_loads(args_json, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(job->args);
    return job;
}

/* Runs a job of type with args through a table built from handlers_json. */
static void exec_run(const char *handlers_json, const char *type, const char *args_json,
                     double job_timeout, exec_result *res, long long *took_ms)
{
    config_t *cfg = exec_config(handlers_json);
    char err[256] = "";
    exec_table_t *t = exec_table_new(cfg, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    job_t *job = exec_job_of(type, args_json);
    job->timeout = job_timeout;
    long long t0 = ts_now_ms();
    exec_table_run(t, job, 60, NULL, res);
    *took_ms = ts_now_ms() - t0;
    job_free(job);
    exec_table_free(t);
    config_free(cfg);
}

Test(builtin, noop_succeeds_and_fail_fails_retryably)
{
    exec_result res;
    long long ms;
    exec_run("{}", "noop", "null", 0, &res, &ms);
    cr_expect_eq(res.status, EXEC_OK);
    cr_expect_str_empty(res.error);
    exec_run("{}", "fail", "{\"message\": \"boom\"}", 0, &res, &ms);
    cr_expect_eq(res.status, EXEC_RETRY);
    cr_expect_str_eq(res.error, "boom");
}

Test(builtin, sleep_honours_the_timeout_of_job_then_handler)
{
    exec_result res;
    long long ms;
    exec_run("{}", "sleep", "{\"ms\": 50}", 0, &res, &ms);
    cr_expect_eq(res.status, EXEC_OK);
    cr_expect_geq(ms, 50);

    exec_run("{}", "sleep", "{\"ms\": 5000}", 0.1, &res, &ms);
    cr_expect_eq(res.status, EXEC_RETRY, "the job's timeout ends it");
    cr_expect(strstr(res.error, "timed out") != NULL, "error: %s", res.error);
    cr_expect(ms >= 100 && ms < 2000, "took %lld ms", ms);

    exec_run("{\"sleep\": {\"kind\": \"builtin\", \"timeout\": 0.1}}", "sleep", "{\"ms\": 5000}", 0,
             &res, &ms);
    cr_expect_eq(res.status, EXEC_RETRY, "the handler's timeout ends it");
    cr_expect(ms >= 100 && ms < 2000, "took %lld ms", ms);
}

Test(builtin, unknown_type_at_run_time_is_permanent)
{
    exec_result res;
    long long ms;
    exec_run("{}", "resize", "null", 0, &res, &ms);
    cr_expect_eq(res.status, EXEC_PERMANENT);
    cr_expect(strstr(res.error, "resize") != NULL);
}

Test(builtin, check_names_the_problem)
{
    struct {
        const char *type, *json, *want;
    } cases[] = {
        {"resize", "{\"kind\": \"builtin\"}", "kind: no builtin named \"resize\""},
        {"sleep", "{\"kind\": \"builtin\", \"ms\": 3}", "unknown key \"ms\""},
        {"sleep", "{\"kind\": \"builtin\", \"timeout\": 0}", "timeout: must be"},
        {"sleep", "{\"kind\": \"bultin\"}", "kind: unknown handler kind \"bultin\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = json_loads(cases[i].json, 0, NULL);
        char err[256] = "";
        cr_expect_eq(exec_check_handler(cases[i].type, o, err, sizeof err), -1, "case %zu", i);
        cr_expect(strstr(err, cases[i].want) != NULL, "case %zu: got \"%s\"", i, err);
        json_decref(o);
    }
}

Test(builtin, a_cut_error_stays_valid_utf8)
{
    char msg[3000] = "";
    for (size_t i = 0; i < 999; i++)
        strcat(msg, "\xc3\xa9"); /* 'é': two bytes, so a cut at 1024 could split one */
    for (int shift = 0; shift < 3; shift++) {
        exec_result res = {0};
        exec_fail(&res, EXEC_RETRY, "%.*s%s", shift, "xx", msg);
        size_t len = strlen(res.error);
        cr_expect(len <= JOB_ERROR_MAX && len >= JOB_ERROR_MAX - 3, "len %zu", len);
        json_t *s = json_string(res.error); /* NULL for invalid UTF-8 */
        cr_expect_not_null(s, "shift %d: cut inside a character", shift);
        json_decref(s);
    }
}
