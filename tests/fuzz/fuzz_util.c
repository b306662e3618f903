/* fuzz_util.c - what the fuzz targets share: failing loudly, the job
 * properties, and the one in-process world (config, handlers, inline queue). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../queues/exec.h"
#include "fuzz.h"

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: fuzz property broken: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_CHECK(s, "out of memory");
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

void fuzz_check_job(const job_t *job)
{
    FUZZ_CHECK(name_id_ok(job->id), "id \"%s\"", job->id);
    FUZZ_CHECK(name_queue_ok(job->queue), "queue \"%s\"", job->queue);
    FUZZ_CHECK(job->type[0] != '\0', "empty type of %s", job->id);
    FUZZ_CHECK(job->args != NULL, "args of %s", job->id);
    FUZZ_CHECK((unsigned)job->state < JOB_STATE_COUNT, "state %d", (int)job->state);
    FUZZ_CHECK(!job->trace || strlen(job->trace->parent) == TRACE_PARENT_LEN,
               "traceparent \"%s\"", job->trace->parent);
    json_t *view = job_view(job);
    FUZZ_CHECK(view, "no view of %s", job->id);
    char *dumped = json_dumps(view, JSON_COMPACT);
    size_t len = 0;
    char *text = job_view_text(job, &len);
    FUZZ_CHECK(dumped && text, "view of %s not written", job->id);
    FUZZ_CHECK(strlen(text) == len, "view text length %zu, strlen %zu", len, strlen(text));
    FUZZ_CHECK(strcmp(dumped, text) == 0, "job_view_text differs from the dump:\n%s\n%s", text,
               dumped);
    job_t *back = job_from_view(view);
    FUZZ_CHECK(back, "job_from_view refuses the view it was made from: %s", text);
    char *again = job_view_text(back, NULL);
    FUZZ_CHECK(again && strcmp(again, text) == 0, "view round trip:\n%s\n%s", text,
               again ? again : "(null)");
    size_t plen = 0;
    char *payload = job_payload(job, &plen);
    json_t *p = payload ? json_loadb(payload, plen, 0, NULL) : NULL;
    FUZZ_CHECK(p && json_is_object(p), "payload of %s is not a JSON object", job->id);
    json_decref(p);
    free(payload);
    free(again);
    job_free(back);
    free(text);
    free(dumped);
    json_decref(view);
}

/* A config of one inline queue; tokens and env do not apply. */
static const char fuzz_world_config[] =
    "{\"workers\": 0, \"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}";

static void fuzz_world_stored(void *done_ctx, size_t index, const outcome_t *out)
{
    (void)index;
    (void)done_ctx;
    FUZZ_CHECK(out->kind == OUT_STORED, "world job not stored: %s", out->err.message);
}

/* A few jobs in the world's queue, so that routes find something: two
 * waiting, one scheduled, with ids the seeds of the router name. */
static void fuzz_world_seed(fuzz_world *w)
{
    static const char *const jobs[] = {
        "{\"type\": \"noop\", \"id\": \"job-1\"}",
        "{\"type\": \"sleep\", \"id\": \"job-2\", \"args\": {\"ms\": 5}}",
        "{\"type\": \"noop\", \"id\": \"01JDX4Z8R6M0A5YB0XK3C8V1QF\", \"delay\": 3600}",
    };
    for (size_t i = 0; i < sizeof jobs / sizeof *jobs; i++) {
        jobd_error err = {0};
        json_t *obj = json_loads(jobs[i], 0, NULL);
        job_t *job = job_from_request(obj, "local", NULL, &w->ctx.ids, jobd_now_ms(), &err);
        FUZZ_CHECK(job, "world job %zu: %s", i, err.message);
        job->max_attempts = 3;
        FUZZ_CHECK(pipeline_submit(w->local, &job, 1, fuzz_world_stored, NULL) == 0,
                   "world job %zu refused", i);
        job_free(job);
        json_decref(obj);
    }
}

fuzz_world *fuzz_world_get(void)
{
    /* libFuzzer calls a target with bytes only: the world a target needs can
     * only live here, built once and kept until the process exits. */
    static fuzz_world *world;
    if (world)
        return world;
    fuzz_world *w = calloc(1, sizeof *w);
    char err[256] = "";
    FUZZ_CHECK(w, "out of memory");
    w->cfg = config_parse(fuzz_world_config, strlen(fuzz_world_config), NULL,
                          &pipeline_config_checks, err, sizeof err);
    FUZZ_CHECK(w->cfg, "world config: %s", err);
    w->ctx.cfg = w->cfg;
    ulid_init(&w->ctx.ids);
    w->ctx.exec = exec_table_new(w->cfg, err, sizeof err);
    FUZZ_CHECK(w->ctx.exec, "world handlers: %s", err);
    w->local = pipeline_build(&w->ctx, config_queue(w->cfg, "local"), err, sizeof err);
    FUZZ_CHECK(w->local, "world queue: %s", err);
    w->ctx.queues = &w->local;
    w->ctx.n_queues = 1;
    fuzz_world_seed(w);
    world = w;
    return w;
}
