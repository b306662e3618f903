/* Pipeline builder order and the retry decision shared by the stores. */
#include <criterion/criterion.h>
#include <string.h>

#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "../server/config.h"

static proc_cfg entry(const char *name, json_t *opts)
{
    return (proc_cfg){.name = (char *)name, .opts = opts ? opts : json_object()};
}

static queue_cfg test_queue(proc_cfg *enq, size_t n_enq, proc_cfg *deq, size_t n_deq)
{
    queue_cfg qc = {.enqueue = enq, .n_enqueue = n_enq, .dequeue = deq, .n_dequeue = n_deq,
                    .max_attempts = 25, .timeout = 60,
                    .backoff = {.base = 15, .factor = 1, .exponent = 4, .jitter = 10, .max = 3600}};
    strcpy(qc.name, "q");
    return qc;
}

static double delay_of(proc_t *p)
{
    json_t *s = p->ops->stats(p);
    double d = json_number_value(json_object_get(s, "delay"));
    json_decref(s);
    return d;
}

Test(pipeline, wraps_last_first_client_outside_server)
{
    proc_cfg enq[] = {entry("delayed", json_pack("{s:f}", "delay", 0.5))};
    proc_cfg deq[] = {entry("delayed", json_pack("{s:f}", "delay", 0.25)), entry("inline", NULL)};
    queue_cfg qc = test_queue(enq, 1, deq, 2);
    jobd_t ctx = {0};
    char err[256] = "";
    queue_t *q = pipeline_build(&ctx, &qc, err, sizeof err);
    cr_assert_not_null(q, "%s", err);

    cr_assert_eq(q->n_chain, 4);
    const char *names[] = {"delayed", "delayed", "inline", "executor"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(q->chain[i]->ops->name, names[i], "chain[%zu]", i);
        cr_assert_eq(q->chain[i]->delegate, i + 1 < 4 ? q->chain[i + 1] : NULL);
        cr_assert_eq(q->chain[i]->queue, q);
    }
    /* client = enqueue list around server; server = dequeue list around executor */
    cr_assert_eq(q->client, q->chain[0]);
    cr_assert_eq(q->server, q->chain[1]);
    cr_assert_eq(q->store, q->chain[2]);
    cr_assert_float_eq(delay_of(q->client), 0.5, 1e-9);
    cr_assert_float_eq(delay_of(q->server), 0.25, 1e-9);

    pipeline_free(q);
    for (size_t i = 0; i < 1; i++)
        json_decref(enq[i].opts);
    for (size_t i = 0; i < 2; i++)
        json_decref(deq[i].opts);
}

Test(pipeline, first_of_dequeue_list_is_outermost)
{
    proc_cfg deq[] = {entry("inline", NULL), entry("delayed", json_pack("{s:i}", "delay", 0))};
    queue_cfg qc = test_queue(NULL, 0, deq, 2);
    jobd_t ctx = {0};
    char err[256] = "";
    queue_t *q = pipeline_build(&ctx, &qc, err, sizeof err);
    cr_assert_not_null(q, "%s", err);
    cr_assert_eq(q->client, q->server, "no enqueue list: client is the server");
    cr_assert_str_eq(q->server->ops->name, "inline");
    cr_assert_str_eq(q->server->delegate->ops->name, "delayed");
    cr_assert_eq(q->store, q->server);
    pipeline_free(q);
    json_decref(deq[0].opts);
    json_decref(deq[1].opts);
}

Test(pipeline, unknown_processor_names_its_place)
{
    proc_cfg deq[] = {entry("inline", NULL)};
    proc_cfg enq[] = {entry("agregate", NULL)};
    queue_cfg qc = test_queue(enq, 1, deq, 1);
    jobd_t ctx = {0};
    char err[256] = "";
    cr_assert_null(pipeline_build(&ctx, &qc, err, sizeof err));
    cr_assert_str_eq(err, "queues.q.enqueue[0]: unknown processor");
    json_decref(deq[0].opts);
    json_decref(enq[0].opts);
}

Test(pipeline, kinds_by_name)
{
    cr_assert(pipeline_kind("inline")->is_store);
    cr_assert(pipeline_kind("redis")->is_store);
    cr_assert_not(pipeline_kind("delayed")->is_store);
    cr_assert_null(pipeline_kind("agregate"));
}

static job_state next(queue_cfg *qc, int attempts, int max, outcome_kind kind, double retry_after,
                      double *delay)
{
    job_t job = {.attempts = attempts, .max_attempts = max};
    outcome_t out = {.kind = kind, .retry_after = retry_after};
    return pipeline_next_state(qc, &job, &out, delay);
}

Test(pipeline, next_state_after_a_run)
{
    queue_cfg qc = test_queue(NULL, 0, NULL, 0);
    double d;
    cr_assert_eq(next(&qc, 1, 0, OUT_SUCCEEDED, -1, &d), JOB_SUCCEEDED);
    cr_assert_eq(next(&qc, 1, 0, OUT_FAILED_PERMANENT, -1, &d), JOB_DEAD);
    cr_assert_eq(next(&qc, 3, 3, OUT_FAILED, -1, &d), JOB_DEAD, "job's own max_attempts used up");
    cr_assert_eq(next(&qc, 25, 0, OUT_FAILED, -1, &d), JOB_DEAD, "queue default 25 applies");
    cr_assert_eq(next(&qc, 24, 0, OUT_FAILED, -1, &d), JOB_RETRYING);
    cr_assert_eq(next(&qc, 1, 5, OUT_FAILED, 7.5, &d), JOB_RETRYING);
    cr_assert_float_eq(d, 7.5, 1e-9, "Retry-After wins over the curve");
}

Test(pipeline, backoff_follows_the_curve_with_bounded_jitter)
{
    queue_cfg qc = test_queue(NULL, 0, NULL, 0);
    double lo_seen = 1e9, hi_seen = 0, d;
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(next(&qc, 3, 10, OUT_FAILED, -1, &d), JOB_RETRYING);
        /* 15 + 1 * 3^4 = 96, jitter up to 10 * 3 */
        cr_assert(d >= 96 && d <= 126, "delay %f", d);
        lo_seen = d < lo_seen ? d : lo_seen;
        hi_seen = d > hi_seen ? d : hi_seen;
    }
    cr_assert(hi_seen - lo_seen > 1, "jitter spreads retries");
    qc.backoff = (backoff_cfg){.base = 15, .factor = 1, .exponent = 4, .jitter = 0, .max = 3600};
    next(&qc, 20, 100, OUT_FAILED, -1, &d);
    cr_assert_float_eq(d, 3600, 1e-9, "capped at max");
}
