/* The aggregate processor: group commit under concurrency, the two ack modes,
 * the bounded buffer, retries, the spill file and its replay; then over HTTP.
 *
 * The unit tests build a real aggregate -> inline queue with pipeline_build
 * (no worker pool, so nothing runs and the store keeps what it got). A
 * "gate" stage between the two stands for a store that is down: switched
 * closed, it refuses every job with 503 as the redis store does when Redis is
 * unreachable; open, it passes calls on and counts the jobs per id. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "../queues/store.h"
#include "../server/config.h"
#include "support.h"

#define N_THREADS 8
#define WAIT_MS 10000

/* --- a queue built by hand --- */

typedef struct gate {
    atomic_bool closed;
    pthread_mutex_t mu;
    json_t *seen;        /* id -> times passed on to the store */
    atomic_int refusals; /* jobs refused while closed */
} gate;

typedef struct fixture {
    jobd_t ctx;
    proc_cfg enq[1], deq[1];
    queue_cfg qc;
    queue_t *q;
    proc_t *gate_proc; /* NULL when the queue has no gate */
    gate g;
} fixture;

static int gate_call(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done, void *ctx)
{
    gate *g = self->priv;
    if (atomic_load(&g->closed)) {
        atomic_fetch_add(&g->refusals, (int)n);
        outcome_t out = {.kind = OUT_REFUSED};
        jobd_fail(&out.err, 503, "unavailable", "the store is down");
        for (size_t i = 0; i < n; i++)
            done(ctx, i, &out);
        return 0;
    }
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object_get(g->seen, jobs[i]->id);
        json_object_set_new(g->seen, jobs[i]->id, json_integer(json_integer_value(c) + 1));
    }
    pthread_mutex_unlock(&g->mu);
    return self->delegate->ops->call(self->delegate, jobs, n, done, ctx);
}

static const proc_ops gate_ops = {.name = "gate", .call = gate_call};

/* aggregate (opts as JSON text) -> [gate ->] inline, not started. */
static fixture *fixture_new(const char *opts, bool with_gate)
{
    fixture *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->enq[0] = (proc_cfg){.name = "aggregate", .opts = json_loads(opts, 0, NULL)};
    f->deq[0] = (proc_cfg){.name = "inline", .opts = json_object()};
    cr_assert_not_null(f->enq[0].opts, "options: %s", opts);
    f->qc = (queue_cfg){.enqueue = f->enq, .n_enqueue = 1, .dequeue = f->deq, .n_dequeue = 1,
                        .max_attempts = 25, .timeout = 60};
    strcpy(f->qc.name, "q");
    char err[256] = "";
    f->q = pipeline_build(&f->ctx, &f->qc, err, sizeof err);
    cr_assert_not_null(f->q, "%s", err);
    if (with_gate) {
        pthread_mutex_init(&f->g.mu, NULL);
        f->g.seen = json_object();
        f->gate_proc = pipeline_proc_new(&gate_ops, f->q, f->q->store);
        f->gate_proc->priv = &f->g;
        f->q->client->delegate = f->gate_proc;
    }
    return f;
}

static void fixture_free(fixture *f)
{
    pipeline_stop(f->q, jobd_mono_ms());
    pipeline_free(f->q);
    if (f->gate_proc) {
        free(f->gate_proc);
        json_decref(f->g.seen);
        pthread_mutex_destroy(&f->g.mu);
    }
    json_decref(f->enq[0].opts);
    json_decref(f->deq[0].opts);
    free(f);
}

static json_int_t stat_of(fixture *f, const char *key)
{
    json_t *s = f->q->client->ops->stats(f->q->client);
    json_int_t v = json_integer_value(json_object_get(s, key));
    json_decref(s);
    return v;
}

static bool in_store(fixture *f, const char *id)
{
    jobd_error err;
    json_t *v = store_get(f->q, id, &err);
    json_decref(v);
    return v != NULL;
}

static job_t **make_jobs(size_t n, const char *prefix)
{
    job_t **jobs = calloc(n, sizeof *jobs);
    cr_assert_not_null(jobs);
    for (size_t i = 0; i < n; i++) {
        jobs[i] = job_new();
        snprintf(jobs[i]->id, sizeof jobs[i]->id, "%s%zu", prefix, i);
        strcpy(jobs[i]->queue, "q");
        strcpy(jobs[i]->type, "noop");
        json_decref(jobs[i]->args);
        jobs[i]->args = json_pack("{s:I}", "n", (json_int_t)i);
        jobs[i]->created_at = jobd_now_ms();
        jobs[i]->max_attempts = 25;
        jobs[i]->state = JOB_ENQUEUED;
    }
    return jobs;
}

static void free_jobs(job_t **jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        job_free(jobs[i]);
    free(jobs);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- what the done callbacks saw --- */

typedef struct tally {
    fixture *f;
    job_t **jobs;
    size_t n;
    atomic_int *reports;    /* per job: done calls */
    atomic_int *kinds;      /* per job: the last outcome kind */
    atomic_int not_in_store; /* STORED or REPLAYED, yet the store did not have it */
    atomic_int wrong_view;   /* view of another job */
    atomic_int total;
} tally;

/* done_ctx of one call: the tally and the job number of its jobs[0]. */
typedef struct call_ref {
    tally *t;
    size_t first;
} call_ref;

static tally *tally_new(fixture *f, job_t **jobs, size_t n)
{
    tally *t = calloc(1, sizeof *t);
    t->f = f;
    t->jobs = jobs;
    t->n = n;
    t->reports = calloc(n, sizeof *t->reports);
    t->kinds = calloc(n, sizeof *t->kinds);
    for (size_t i = 0; i < n; i++)
        atomic_init(&t->kinds[i], -1);
    return t;
}

static void tally_free(tally *t)
{
    free(t->reports);
    free(t->kinds);
    free(t);
}

static void on_done(void *done_ctx, size_t index, const outcome_t *out)
{
    call_ref *c = done_ctx;
    tally *t = c->t;
    size_t k = c->first + index;
    const job_t *job = t->jobs[k];
    if (out->kind == OUT_STORED || out->kind == OUT_REPLAYED) {
        const char *vid = json_string_value(json_object_get(out->view, "id"));
        if (!vid || strcmp(vid, job->id) != 0)
            atomic_fetch_add(&t->wrong_view, 1);
    }
    atomic_store(&t->kinds[k], (int)out->kind);
    atomic_fetch_add(&t->reports[k], 1);
    atomic_fetch_add(&t->total, 1);
}

/* on_done, plus: a STORED/REPLAYED job must be in the store right now. */
static void on_done_check_store(void *done_ctx, size_t index, const outcome_t *out)
{
    call_ref *c = done_ctx;
    tally *t = c->t;
    if ((out->kind == OUT_STORED || out->kind == OUT_REPLAYED) &&
        !in_store(t->f, t->jobs[c->first + index]->id))
        atomic_fetch_add(&t->not_in_store, 1);
    on_done(done_ctx, index, out);
}

static bool wait_total(tally *t, int want, int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;
    while (atomic_load(&t->total) < want && ts_now_ms() < deadline)
        sleep_ms(1);
    return atomic_load(&t->total) >= want;
}

/* Submits jobs[0..n) in calls of `per_call` jobs. */
static void submit_range(tally *t, call_ref *refs, size_t from, size_t to, size_t per_call,
                         proc_done_fn done)
{
    for (size_t k = from; k < to; k += per_call) {
        size_t n = to - k < per_call ? to - k : per_call;
        refs[k] = (call_ref){t, k};
        cr_assert_eq(pipeline_submit(t->f->q, &t->jobs[k], n, done, &refs[k]), 0);
    }
}

typedef struct submitter {
    tally *t;
    call_ref *refs;
    size_t from, to, per_call;
    proc_done_fn done;
    pthread_t thread;
} submitter;

static void *submitter_main(void *arg)
{
    submitter *s = arg;
    submit_range(s->t, s->refs, s->from, s->to, s->per_call, s->done);
    return NULL;
}

/* N_THREADS threads submit the tally's jobs concurrently: even threads one
 * job per call, odd ones calls of 7 (indexes inside a call must map back). */
static void submit_concurrently(tally *t, call_ref *refs, proc_done_fn done)
{
    submitter s[N_THREADS];
    size_t per = t->n / N_THREADS;
    for (size_t i = 0; i < N_THREADS; i++) {
        s[i] = (submitter){t, refs, i * per, i + 1 == N_THREADS ? t->n : (i + 1) * per,
                           i % 2 ? 7 : 1, done, 0};
        cr_assert_eq(pthread_create(&s[i].thread, NULL, submitter_main, &s[i]), 0);
    }
    for (size_t i = 0; i < N_THREADS; i++)
        pthread_join(s[i].thread, NULL);
}

static void assert_each_once(tally *t, outcome_kind kind)
{
    for (size_t i = 0; i < t->n; i++) {
        cr_assert_eq(atomic_load(&t->reports[i]), 1, "job %zu reported %d times", i,
                     atomic_load(&t->reports[i]));
        cr_assert_eq(atomic_load(&t->kinds[i]), (int)kind, "job %zu outcome %d", i,
                     atomic_load(&t->kinds[i]));
    }
    cr_assert_eq(atomic_load(&t->wrong_view), 0);
}

/* --- options --- */

Test(aggregate, options_are_checked)
{
    static const struct {
        char opts[96];
        char err[64];
    } cases[] = {
        {"{}", ""},
        {"{\"ack\": \"durable\", \"max_buffer\": 5, \"max_batch\": 2}", ""},
        {"{\"ack\": \"buffered\", \"spill\": \"/var/lib/jobd/spill.jsonl\"}", ""},
        {"{\"x\": 1}", "unknown option \"x\""},
        {"{\"ack\": \"sometimes\"}", "ack: must be \"durable\" or \"buffered\""},
        {"{\"ack\": true}", "ack: must be \"durable\" or \"buffered\""},
        {"{\"max_buffer\": 0}", "max_buffer: must be an integer >= 1"},
        {"{\"max_buffer\": 1.5}", "max_buffer: must be an integer >= 1"},
        {"{\"max_batch\": 100001}", "max_batch: must be an integer from 1 to 100000"},
        {"{\"max_batch\": \"10\"}", "max_batch: must be an integer from 1 to 100000"},
        {"{\"spill\": \"\"}", "spill: must be a file path"},
        {"{\"spill\": 3}", "spill: must be a file path"},
    };
    const proc_kind *k = pipeline_kind("aggregate");
    cr_assert_not_null(k);
    cr_assert_not(k->is_store);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = json_loads(cases[i].opts, 0, NULL);
        char err[256] = "";
        int rc = k->check(o, err, sizeof err);
        cr_assert_eq(rc, cases[i].err[0] ? -1 : 0, "%s", cases[i].opts);
        cr_assert_str_eq(err, cases[i].err, "%s", cases[i].opts);
        json_decref(o);
    }
}

Test(aggregate, config_names_the_bad_option)
{
    const char *text = "{\"queues\": {\"q\": {"
                       "\"enqueue\": [{\"name\": \"aggregate\", \"ack\": \"x\"}],"
                       " \"dequeue\": [\"inline\"]}}}";
    char err[512] = "";
    config_t *cfg =
        config_parse(text, strlen(text), NULL, &pipeline_config_checks, err, sizeof err);
    cr_assert_null(cfg);
    cr_assert_str_eq(err, "queues.q.enqueue[0]: ack: must be \"durable\" or \"buffered\"");
}

/* --- ack durable --- */

Test(aggregate, durable_group_commit_under_concurrency)
{
    fixture *f = fixture_new("{}", false);
    cr_assert_eq(pipeline_start(f->q), 0);
    size_t n = 4000;
    job_t **jobs = make_jobs(n, "d");
    tally *t = tally_new(f, jobs, n);
    call_ref *refs = calloc(n, sizeof *refs);
    submit_concurrently(t, refs, on_done_check_store);
    cr_assert(wait_total(t, (int)n, WAIT_MS), "%d of %zu reported", atomic_load(&t->total), n);

    assert_each_once(t, OUT_STORED);
    cr_assert_eq(atomic_load(&t->not_in_store), 0, "a job was reported stored before it was");
    /* The counters follow the last outcome of a batch: read them once stopped. */
    pipeline_stop(f->q, jobd_mono_ms() + WAIT_MS);
    cr_assert_eq(stat_of(f, "jobs"), (json_int_t)n);
    cr_assert_eq(stat_of(f, "stored"), (json_int_t)n);
    cr_assert_gt(stat_of(f, "largest_batch"), 1, "no batch ever held more than one job");
    cr_assert_lt(stat_of(f, "batches"), (json_int_t)n);
    cr_assert_eq(stat_of(f, "buffered"), 0);
    fixture_free(f);
    free(refs);
    tally_free(t);
    free_jobs(jobs, n);
}

Test(aggregate, durable_passes_on_replayed)
{
    fixture *f = fixture_new("{}", false);
    cr_assert_eq(pipeline_start(f->q), 0);
    job_t **jobs = make_jobs(2, "same");
    strcpy(jobs[1]->id, jobs[0]->id);
    tally *t = tally_new(f, jobs, 2);
    call_ref refs[2];
    submit_range(t, refs, 0, 1, 1, on_done);
    cr_assert(wait_total(t, 1, WAIT_MS));
    submit_range(t, refs, 1, 2, 1, on_done);
    cr_assert(wait_total(t, 2, WAIT_MS));
    cr_assert_eq(atomic_load(&t->kinds[0]), OUT_STORED);
    cr_assert_eq(atomic_load(&t->kinds[1]), OUT_REPLAYED);
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, 2);
}

Test(aggregate, durable_refusal_is_passed_on_and_nothing_stored)
{
    fixture *f = fixture_new("{}", true);
    atomic_store(&f->g.closed, true);
    cr_assert_eq(pipeline_start(f->q), 0);
    size_t n = 50;
    job_t **jobs = make_jobs(n, "r");
    tally *t = tally_new(f, jobs, n);
    call_ref refs[50];
    submit_range(t, refs, 0, n, 5, on_done);
    cr_assert(wait_total(t, (int)n, WAIT_MS));
    assert_each_once(t, OUT_REFUSED);
    for (size_t i = 0; i < n; i++)
        cr_assert_not(in_store(f, jobs[i]->id));
    pipeline_stop(f->q, jobd_mono_ms() + WAIT_MS);
    cr_assert_eq(stat_of(f, "refused"), (json_int_t)n);
    cr_assert_eq(stat_of(f, "buffered"), 0, "durable mode keeps nothing it refused");
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, n);
}

/* Buffers 23 jobs (not started: they wait until stop() flushes them) in
 * calls of per_call jobs with max_batch 5; checks the store calls made. */
static void flush_batches(size_t per_call, json_int_t want_batches, json_int_t want_largest)
{
    fixture *f = fixture_new("{\"max_batch\": 5}", false);
    size_t n = 23;
    job_t **jobs = make_jobs(n, "b");
    tally *t = tally_new(f, jobs, n);
    call_ref refs[23];
    submit_range(t, refs, 0, n, per_call, on_done_check_store);
    cr_assert_eq(atomic_load(&t->total), 0, "durable: no answer before the batch is stored");
    cr_assert_eq(stat_of(f, "buffered"), (json_int_t)n);
    pipeline_stop(f->q, jobd_mono_ms() + WAIT_MS);
    assert_each_once(t, OUT_STORED);
    cr_assert_eq(atomic_load(&t->not_in_store), 0);
    cr_assert_eq(stat_of(f, "batches"), want_batches);
    cr_assert_eq(stat_of(f, "largest_batch"), want_largest);
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, n);
}

Test(aggregate, stop_flushes_in_batches_of_max_batch)
{
    flush_batches(1, 5, 5);
}

/* Calls of 7 jobs with max_batch 5: each call goes to the store whole
 * (stored or refused as one), so batches end only between calls. */
Test(aggregate, a_submission_is_never_split_across_store_calls)
{
    flush_batches(7, 4, 7); /* 7 + 7 + 7 + 2 */
}

Test(aggregate, call_after_stop_refuses_503)
{
    fixture *f = fixture_new("{}", false);
    cr_assert_eq(pipeline_start(f->q), 0);
    pipeline_stop(f->q, jobd_mono_ms() + WAIT_MS);
    job_t **jobs = make_jobs(1, "late");
    tally *t = tally_new(f, jobs, 1);
    call_ref ref = {t, 0};
    cr_assert_eq(pipeline_submit(f->q, jobs, 1, on_done, &ref), 0);
    cr_assert_eq(atomic_load(&t->total), 1, "refused at once");
    cr_assert_eq(atomic_load(&t->kinds[0]), OUT_REFUSED);
    cr_assert_not(in_store(f, "late0"));
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, 1);
}

/* --- ack buffered --- */

typedef struct refusal {
    atomic_int status, retry_after, calls;
} refusal;

static void on_refusal(void *done_ctx, size_t index, const outcome_t *out)
{
    (void)index;
    refusal *r = done_ctx;
    atomic_store(&r->status, out->kind == OUT_REFUSED ? out->err.status : 0);
    atomic_store(&r->retry_after, out->err.retry_after);
    atomic_fetch_add(&r->calls, 1);
}

Test(aggregate, buffered_reports_at_once_and_stop_flushes)
{
    fixture *f = fixture_new("{\"ack\": \"buffered\"}", false);
    size_t n = 300;
    job_t **jobs = make_jobs(n, "a");
    tally *t = tally_new(f, jobs, n);
    call_ref refs[300];
    submit_range(t, refs, 0, n, 3, on_done);
    /* The flusher is not started: the answers cannot have waited for the store. */
    assert_each_once(t, OUT_STORED);
    cr_assert_not(in_store(f, jobs[0]->id));
    cr_assert_eq(stat_of(f, "buffered"), (json_int_t)n);
    /* The submitter frees its jobs after done: the buffer holds copies. */
    for (size_t i = 0; i < n; i++)
        jobs[i]->id[0] = 'X';
    pipeline_stop(f->q, jobd_mono_ms() + WAIT_MS);
    char id[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "a%zu", i);
        cr_assert(in_store(f, id), "%s flushed at stop", id);
    }
    cr_assert_eq(stat_of(f, "stored"), (json_int_t)n);
    cr_assert_eq(stat_of(f, "buffered"), 0);
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, n);
}

Test(aggregate, buffered_full_buffer_refuses_503)
{
    fixture *f = fixture_new("{\"ack\": \"buffered\", \"max_buffer\": 10}", false);
    job_t **jobs = make_jobs(12, "full");
    tally *t = tally_new(f, jobs, 12);
    call_ref refs[12];
    submit_range(t, refs, 0, 10, 1, on_done);
    cr_assert_eq(atomic_load(&t->total), 10);
    refusal r = {0};
    cr_assert_eq(pipeline_submit(f->q, &jobs[10], 1, on_refusal, &r), 0);
    cr_assert_eq(atomic_load(&r.calls), 1, "refused at once");
    cr_assert_eq(atomic_load(&r.status), 503);
    cr_assert_eq(atomic_load(&r.retry_after), 1);
    pipeline_stop(f->q, jobd_mono_ms() + WAIT_MS);
    for (size_t i = 0; i < 10; i++)
        cr_assert(in_store(f, jobs[i]->id));
    cr_assert_not(in_store(f, jobs[10]->id));
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, 12);
}

Test(aggregate, durable_full_buffer_refuses_503)
{
    fixture *f = fixture_new("{\"max_buffer\": 3}", false);
    job_t **jobs = make_jobs(4, "dfull");
    tally *t = tally_new(f, jobs, 4);
    call_ref refs[4];
    submit_range(t, refs, 0, 3, 1, on_done);
    refusal r = {0};
    cr_assert_eq(pipeline_submit(f->q, &jobs[3], 1, on_refusal, &r), 0);
    cr_assert_eq(atomic_load(&r.calls), 1);
    cr_assert_eq(atomic_load(&r.status), 503);
    cr_assert_eq(atomic_load(&t->total), 0, "the first three wait for their batch");
    pipeline_stop(f->q, jobd_mono_ms() + WAIT_MS);
    cr_assert_eq(atomic_load(&t->total), 3);
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, 4);
}

static int gate_count(fixture *f, const char *id)
{
    pthread_mutex_lock(&f->g.mu);
    int c = (int)json_integer_value(json_object_get(f->g.seen, id));
    pthread_mutex_unlock(&f->g.mu);
    return c;
}

Test(aggregate, buffered_retries_until_the_store_takes_them)
{
    fixture *f = fixture_new("{\"ack\": \"buffered\"}", true);
    atomic_store(&f->g.closed, true);
    cr_assert_eq(pipeline_start(f->q), 0);
    size_t n = 20;
    job_t **jobs = make_jobs(n, "retry");
    tally *t = tally_new(f, jobs, n);
    call_ref refs[20];
    submit_range(t, refs, 0, n, 1, on_done);
    assert_each_once(t, OUT_STORED);
    long long deadline = ts_now_ms() + WAIT_MS;
    while (atomic_load(&f->g.refusals) < 2 * (int)n && ts_now_ms() < deadline)
        sleep_ms(5);
    cr_assert_geq(atomic_load(&f->g.refusals), 2 * (int)n, "retried after a refusal");
    cr_assert_eq(stat_of(f, "buffered"), (json_int_t)n, "refused jobs are kept");
    atomic_store(&f->g.closed, false);
    while (stat_of(f, "buffered") > 0 && ts_now_ms() < deadline)
        sleep_ms(5);
    for (size_t i = 0; i < n; i++) {
        cr_assert(in_store(f, jobs[i]->id));
        cr_assert_eq(gate_count(f, jobs[i]->id), 1, "stored once");
    }
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, n);
}

static void spill_path(char *buf, size_t len)
{
    char u[32];
    snprintf(buf, len, "%s/spill_%s.jsonl", ts_tmpdir(), ts_unique(u));
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; p && *p; p++)
        n += *p == '\n';
    return n;
}

Test(aggregate, buffered_spill_written_at_stop_and_replayed_once)
{
    char path[512], opts[700];
    spill_path(path, sizeof path);
    snprintf(opts, sizeof opts, "{\"ack\": \"buffered\", \"spill\": \"%s\"}", path);

    /* Run 1: the store is down from start to stop. */
    fixture *f = fixture_new(opts, true);
    atomic_store(&f->g.closed, true);
    cr_assert_eq(pipeline_start(f->q), 0);
    size_t n = 800;
    job_t **jobs = make_jobs(n, "s");
    tally *t = tally_new(f, jobs, n);
    call_ref *refs = calloc(n, sizeof *refs);
    submit_concurrently(t, refs, on_done);
    assert_each_once(t, OUT_STORED);
    pipeline_stop(f->q, jobd_mono_ms() + 200);
    cr_assert_eq(stat_of(f, "spilled"), (json_int_t)n);
    fixture_free(f);

    char *text = ts_read_file(path, NULL);
    cr_assert_not_null(text, "spill file %s written", path);
    cr_assert_eq(count_lines(text), n, "one line per unstored job");
    free(text);

    /* Run 2: the store is up; start() replays the file. */
    f = fixture_new(opts, true);
    cr_assert_eq(pipeline_start(f->q), 0);
    long long deadline = ts_now_ms() + WAIT_MS;
    while (access(path, F_OK) == 0 && ts_now_ms() < deadline)
        sleep_ms(5);
    cr_assert_neq(access(path, F_OK), 0, "spill file removed once stored");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(gate_count(f, jobs[i]->id), 1, "%s replayed exactly once", jobs[i]->id);
        jobd_error err;
        json_t *v = store_get(f->q, jobs[i]->id, &err);
        cr_assert_not_null(v);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(v, "args"), "n")),
                     (json_int_t)i, "args survive the spill");
        json_decref(v);
    }
    cr_assert_eq(json_object_size(f->g.seen), n, "nothing else was stored");
    fixture_free(f);
    cr_assert_neq(access(path, F_OK), 0, "a clean stop writes no spill file");
    free(refs);
    tally_free(t);
    free_jobs(jobs, n);
}

Test(aggregate, spill_replay_of_stored_jobs_is_harmless)
{
    /* A crash after the replay stored the jobs but before the file was
     * removed replays them again: the store answers "replayed". */
    char path[512], opts[700];
    spill_path(path, sizeof path);
    snprintf(opts, sizeof opts, "{\"spill\": \"%s\"}", path);
    job_t **jobs = make_jobs(3, "again");
    FILE *fp = fopen(path, "w");
    for (size_t i = 0; i < 3; i++) {
        json_t *v = job_view(jobs[i]);
        char *line = json_dumps(v, JSON_COMPACT);
        fprintf(fp, "%s\n", line);
        free(line);
        json_decref(v);
    }
    fclose(fp);
    fixture *f = fixture_new(opts, false);
    tally *t = tally_new(f, jobs, 3);
    call_ref refs[3];
    submit_range(t, refs, 0, 3, 3, on_done); /* stored before the replay runs */
    cr_assert_eq(pipeline_start(f->q), 0);
    cr_assert(wait_total(t, 3, WAIT_MS));
    long long deadline = ts_now_ms() + WAIT_MS;
    while (access(path, F_OK) == 0 && ts_now_ms() < deadline)
        sleep_ms(5);
    cr_assert_neq(access(path, F_OK), 0, "spill file removed once stored");
    cr_assert_eq(stat_of(f, "stored"), 6, "3 stored + 3 replayed");
    json_t *s = f->q->store->ops->stats(f->q->store);
    cr_assert_eq(json_integer_value(json_object_get(s, "jobs")), 3, "no duplicates");
    json_decref(s);
    fixture_free(f);
    tally_free(t);
    free_jobs(jobs, 3);
}

Test(aggregate, unreadable_spill_file_stops_the_start)
{
    char path[512], opts[700];
    spill_path(path, sizeof path);
    snprintf(opts, sizeof opts, "{\"ack\": \"buffered\", \"spill\": \"%s\"}", path);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "{\"not\": \"a job\"}\n");
    fclose(fp);
    fixture *f = fixture_new(opts, false);
    cr_assert_neq(pipeline_start(f->q), 0);
    fixture_free(f);
    char *text = ts_read_file(path, NULL);
    cr_assert_not_null(text, "the file is left for a human");
    cr_assert_str_eq(text, "{\"not\": \"a job\"}\n");
    free(text);
}

/* --- over HTTP --- */

/* A connection to the Redis on port, or the test fails. */
static redisContext *redis_open(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    cr_assert(c && !c->err, "cannot reach redis on port %d", port);
    redisSetTimeout(c, tv);
    return c;
}

/* The integer answer of a command, or -1. */
static long long redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

static bool redis_has_job(redisContext *c, const char *prefix, const char *id)
{
    return redis_int(c, "HEXISTS %s:{agg}:jobs:s %s", prefix, id) == 1;
}

static long long redis_jobs(redisContext *c, const char *prefix)
{
    return redis_int(c, "ZCARD %s:{agg}:all", prefix);
}

/* POSTs job h<i> to the queue "agg" of jobd on port: its HTTP status. */
static long post_job(int port, int i)
{
    char body[128];
    snprintf(body, sizeof body, "{\"type\": \"noop\", \"id\": \"h%d\", \"args\": {\"i\": %d}}", i,
             i);
    ts_resp r;
    ts_post(&r, port, "/queues/agg/jobs", body);
    long status = r.status;
    ts_resp_free(&r);
    return status;
}

typedef struct poster {
    int port, from, to;
    int redis_port;     /* > 0: check the job's key in this Redis, else GET it */
    const char *prefix; /* of the Redis keys */
    atomic_int *bad;
    char first_error[256];
    pthread_t thread;
} poster;

/* Whether job h<i> is there right after its 202: in Redis itself, or
 * through GET. */
static bool poster_check(poster *p, redisContext *c, int i)
{
    char id[32], path[128];
    snprintf(id, sizeof id, "h%d", i);
    if (c)
        return redis_has_job(c, p->prefix, id);
    snprintf(path, sizeof path, "/queues/agg/jobs/%s", id);
    ts_resp r;
    ts_get(&r, p->port, path);
    bool ok = r.status == 200;
    ts_resp_free(&r);
    return ok;
}

static void *poster_main(void *arg)
{
    poster *p = arg;
    redisContext *c = p->redis_port > 0 ? redis_open(p->redis_port) : NULL;
    for (int i = p->from; i < p->to; i++) {
        long status = post_job(p->port, i);
        bool there = status == 202 && poster_check(p, c, i);
        if (!there && atomic_fetch_add(p->bad, 1) == 0)
            snprintf(p->first_error, sizeof p->first_error, "job h%d: POST %ld, %s", i, status,
                     status == 202 ? "not there after the 202" : "not accepted");
    }
    if (c)
        redisFree(c);
    return NULL;
}

/* n POSTs from N_THREADS threads, each job checked right after its 202. */
static void post_concurrently(int port, int n, int redis_port, const char *prefix)
{
    atomic_int bad = 0;
    poster p[N_THREADS];
    int per = n / N_THREADS;
    for (int i = 0; i < N_THREADS; i++) {
        p[i] = (poster){.port = port, .from = i * per, .to = i + 1 == N_THREADS ? n : (i + 1) * per,
                        .redis_port = redis_port, .prefix = prefix, .bad = &bad};
        cr_assert_eq(pthread_create(&p[i].thread, NULL, poster_main, &p[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(p[i].thread, NULL);
    const char *first = "";
    for (int i = 0; i < N_THREADS; i++)
        first = p[i].first_error[0] ? p[i].first_error : first;
    cr_assert_eq(atomic_load(&bad), 0, "%d failures, e.g. %s", atomic_load(&bad), first);
}

Test(aggregate, http_concurrent_posts_answered_after_the_store_has_them)
{
    ts_jobd j;
    const char *cfg = "{\"workers\": 0, \"queues\": {\"agg\": {\"enqueue\": [\"aggregate\"],"
                      " \"dequeue\": [\"inline\"]}}}";
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);
    post_concurrently(j.port, 1000, 0, NULL);
    ts_resp r;
    ts_get(&r, j.port, "/queues/agg");
    json_t *counts = json_object_get(r.json, "counts");
    cr_assert_eq(json_integer_value(json_object_get(counts, "enqueued")), 1000, "%s", r.body);
    ts_resp_free(&r);
    cr_assert_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);
}

/* A config with the queue "agg" = aggregate (opts) -> redis on port. */
static void redis_config(char *buf, size_t len, int port, const char *prefix, const char *opts,
                         const char *extra)
{
    snprintf(buf, len,
             "{\"workers\": 0, %s \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\","
             " \"prefix\": \"%s\", \"timeout\": 0.5},"
             " \"queues\": {\"agg\": {\"enqueue\": [{\"name\": \"aggregate\"%s%s}],"
             " \"dequeue\": [\"redis\"]}}}",
             extra ? extra : "", port, prefix, opts ? ", " : "", opts ? opts : "");
}

Test(aggregate, redis_every_202_is_in_redis_at_the_answer)
{
    char prefix[32], cfg[1024];
    ts_unique(prefix);
    redis_config(cfg, sizeof cfg, ts_redis_port(), prefix, NULL, NULL);
    ts_jobd j;
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);
    post_concurrently(j.port, 1000, ts_redis_port(), prefix);
    redisContext *c = redis_open(ts_redis_port());
    cr_assert_eq(redis_jobs(c, prefix), 1000, "each job stored once");
    redisFree(c);
    cr_assert_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);
}

Test(aggregate, redis_durable_refuses_503_and_stores_nothing)
{
    pid_t rpid;
    int rport;
    cr_assert_eq(ts_redis_start(&rpid, &rport, NULL), 0);
    char prefix[32], cfg[1024];
    ts_unique(prefix);
    redis_config(cfg, sizeof cfg, rport, prefix, NULL, NULL);
    ts_jobd j;
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);
    cr_assert_eq(post_job(j.port, 0), 202);

    /* Redis up but refusing writes (out of memory, noeviction). */
    redisContext *c = redis_open(rport);
    cr_assert(redis_has_job(c, prefix, "h0"));
    redisReply *rep = redisCommand(c, "CONFIG SET maxmemory 1");
    freeReplyObject(rep);
    cr_assert_eq(post_job(j.port, 1), 503);
    rep = redisCommand(c, "CONFIG SET maxmemory 0");
    freeReplyObject(rep);
    cr_assert_not(redis_has_job(c, prefix, "h1"), "a refused job is not in Redis");
    cr_assert_eq(redis_jobs(c, prefix), 1);
    redisFree(c);

    /* Redis gone: answered at once, not after a hang. */
    ts_redis_stop(rpid);
    long long t0 = ts_now_ms();
    for (int i = 2; i < 12; i++)
        cr_assert_eq(post_job(j.port, i), 503, "job %d", i);
    cr_assert_lt(ts_now_ms() - t0, 10 * 1000, "ten refusals took %lld ms", ts_now_ms() - t0);
    cr_assert_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);
}

Test(aggregate, redis_buffered_spill_replayed_after_restart)
{
    char prefix[32], cfg[2048], path[512], opts[700];
    ts_unique(prefix);
    spill_path(path, sizeof path);
    snprintf(opts, sizeof opts, "\"ack\": \"buffered\", \"spill\": \"%s\"", path);
    pid_t rpid;
    int rport;
    cr_assert_eq(ts_redis_start(&rpid, &rport, NULL), 0);
    redis_config(cfg, sizeof cfg, rport, prefix, opts, "\"shutdown_timeout\": 1,");
    ts_jobd j;
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);

    /* Run 1: Redis goes away; buffered jobs are acknowledged anyway and
     * spilled at shutdown. */
    ts_redis_stop(rpid);
    int n = 200;
    for (int i = 0; i < n; i++)
        cr_assert_eq(post_job(j.port, i), 202, "job %d", i);
    cr_assert_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);
    char *text = ts_read_file(path, NULL);
    cr_assert_not_null(text, "spill file written");
    cr_assert_eq(count_lines(text), (size_t)n);
    free(text);

    /* A new Redis. Some of the jobs got there by other means already: the
     * replay must not store them twice. */
    cr_assert_eq(ts_redis_start(&rpid, &rport, NULL), 0);
    redis_config(cfg, sizeof cfg, rport, prefix, NULL, NULL);
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(post_job(j.port, i), 202);
    cr_assert_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);

    /* Run 2 replays the file at start, then removes it. */
    redis_config(cfg, sizeof cfg, rport, prefix, opts, NULL);
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);
    long long deadline = ts_now_ms() + WAIT_MS;
    while (access(path, F_OK) == 0 && ts_now_ms() < deadline)
        sleep_ms(10);
    cr_assert_neq(access(path, F_OK), 0, "spill file removed once replayed");
    redisContext *c = redis_open(rport);
    char id[32];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "h%d", i);
        cr_assert(redis_has_job(c, prefix, id), "%s replayed", id);
    }
    cr_assert_eq(redis_jobs(c, prefix), n, "nothing lost, nothing twice");
    cr_assert_eq(redis_int(c, "LLEN %s:{agg}:ready", prefix), n, "each enqueued once");
    redisFree(c);
    cr_assert_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);
    ts_redis_stop(rpid);
}

Test(aggregate, redis_sigterm_with_a_full_buffer_loses_nothing)
{
    char prefix[32], cfg[2048];
    ts_unique(prefix);
    pid_t rpid;
    int rport;
    cr_assert_eq(ts_redis_start(&rpid, &rport, NULL), 0);
    redis_config(cfg, sizeof cfg, rport, prefix, "\"ack\": \"buffered\", \"max_buffer\": 50",
                 "\"shutdown_timeout\": 20,");
    ts_jobd j;
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);

    /* Redis stalls: the buffer fills up, then refuses. */
    cr_assert_eq(kill(rpid, SIGSTOP), 0);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 60; i++) {
        long status = post_job(j.port, i);
        cr_assert(status == 202 || status == 503, "job %d: %ld", i, status);
        cr_assert(status == 503 || !refused, "job %d accepted after a refusal", i);
        accepted += status == 202;
        refused += status == 503;
    }
    cr_assert_eq(accepted, 50, "max_buffer jobs are taken");

    /* SIGTERM while the buffer is full; Redis comes back a little later. */
    cr_assert_eq(kill(j.pid, SIGTERM), 0);
    long long deadline = ts_now_ms() + WAIT_MS;
    while (!ts_log_contains(&j, "jobd.stopping") && ts_now_ms() < deadline)
        sleep_ms(5);
    bool stopping = ts_log_contains(&j, "jobd.stopping");
    cr_assert_eq(kill(rpid, SIGCONT), 0);
    cr_assert(stopping, "jobd began its shutdown while Redis was stalled");
    cr_assert_eq(ts_jobd_stop(&j, 0, 25000), 0);
    cr_assert_not(ts_log_contains(&j, "aggregate.lost"));

    redisContext *c = redis_open(rport);
    char id[32];
    for (int i = 0; i < 60; i++) {
        snprintf(id, sizeof id, "h%d", i);
        cr_assert_eq(redis_has_job(c, prefix, id), i < 50, "%s", id);
    }
    cr_assert_eq(redis_jobs(c, prefix), 50);
    redisFree(c);
    ts_redis_stop(rpid);
}
