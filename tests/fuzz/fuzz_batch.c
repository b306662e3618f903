/* fuzz_batch.c - a submission body, one job or a batch, through what the
 * submit handler does with it (handlers/jobs.c): jansson with duplicate keys
 * refused, the batch bound (limits.max_batch), job_from_request on every
 * element, then the jobs handed to an inline store (a fresh one each input)
 * whose every outcome must be stored or replayed, and read back alike. */
#include <string.h>

#include "fuzz.h"

typedef struct fuzz_outcomes {
    size_t n, reported;
    outcome_kind *kinds;
} fuzz_outcomes;

static void fuzz_batch_done(void *done_ctx, size_t index, const outcome_t *out)
{
    fuzz_outcomes *o = done_ctx;
    FUZZ_CHECK(index < o->n, "outcome for job %zu of %zu", index, o->n);
    FUZZ_CHECK(out->kind == OUT_STORED || out->kind == OUT_REPLAYED, "job %zu: outcome %d %s",
               index, (int)out->kind, out->err.message);
    o->kinds[index] = out->kind;
    o->reported++;
}

/* Stores jobs[0..n) in a new inline queue and checks each answer. */
static void fuzz_batch_store(fuzz_world *w, job_t **jobs, size_t n)
{
    char err[256] = "";
    queue_t *q = pipeline_build(&w->ctx, w->local->cfg, err, sizeof err);
    FUZZ_CHECK(q, "queue: %s", err);
    fuzz_outcomes o = {.n = n, .kinds = calloc(n, sizeof *o.kinds)};
    FUZZ_CHECK(o.kinds, "out of memory");
    FUZZ_CHECK(pipeline_submit(q, jobs, n, fuzz_batch_done, &o) == 0, "submit refused");
    FUZZ_CHECK(o.reported == n, "%zu outcomes for %zu jobs", o.reported, n);
    for (size_t i = 0; i < n; i++) {
        jobd_error e = {0};
        json_t *view = q->store->ops->store->get(q->store, jobs[i]->id, &e);
        FUZZ_CHECK(view, "stored job %s not found: %s", jobs[i]->id, e.message);
        job_t *back = job_from_view(view);
        FUZZ_CHECK(back, "stored view of %s unreadable", jobs[i]->id);
        fuzz_check_job(back);
        job_free(back);
        json_decref(view);
    }
    free(o.kinds);
    pipeline_free(q);
}

int fuzz_batch(const uint8_t *data, size_t size)
{
    fuzz_world *w = fuzz_world_get();
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    bool batch = json_is_array(root);
    size_t n = batch ? json_array_size(root) : 1;
    if (!root || (batch && (n == 0 || n > w->cfg->max_batch))) {
        json_decref(root);
        return 0;
    }
    job_t **jobs = calloc(n, sizeof *jobs);
    FUZZ_CHECK(jobs, "out of memory");
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) {
        jobd_error err = {0};
        jobs[i] = job_from_request(batch ? json_array_get(root, i) : root, "local", NULL,
                                   &w->ctx.ids, jobd_now_ms(), &err);
        if (!jobs[i]) {
            FUZZ_CHECK(err.status == 422, "element %zu: %d %s", i, err.status, err.message);
            break;
        }
        if (jobs[i]->max_attempts == 0)
            jobs[i]->max_attempts = w->local->cfg->max_attempts;
        valid++;
    }
    if (valid == n)
        fuzz_batch_store(w, jobs, n);
    for (size_t i = 0; i < n; i++)
        job_free(jobs[i]);
    free(jobs);
    json_decref(root);
    return 0;
}

FUZZ_ENTRY(fuzz_batch)
