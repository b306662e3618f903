/* test_redis_scripts.c - each Lua script of the Redis data model, run
 * against the suite's real redis-server, one key prefix per test. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../queues/job.h"
#include "../queues/redis_scripts.h"
#include "support.h"

static redisContext *rc;
static redis_model model;
static const char *const plist_pid = "p0000000000000000000000000000000";

static void setup(void)
{
    char err[256], prefix[32];
    redis_addr a = {.host = "127.0.0.1", .port = ts_redis_port()};
    rc = redis_conn_open(&a, 2, 2, err, sizeof err);
    cr_assert_not_null(rc, "%s", err);
    redis_script_model_init(&model, ts_unique(prefix), "q", 3);
}

static void teardown(void)
{
    if (rc)
        redisFree(rc);
}

TestSuite(redis_scripts, .init = setup, .fini = teardown, .timeout = 30);

/* --- helpers --- */

static job_t *mkjob(const char *id, int64_t created, int64_t run_at)
{
    job_t *j = job_new();
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->queue, sizeof j->queue, "q");
    snprintf(j->type, sizeof j->type, "noop");
    json_decref(j->args);
    j->args = json_pack("{s:i}", "n", 1);
    j->created_at = created;
    j->run_at = run_at;
    j->scheduled_at = run_at;
    j->state = run_at ? JOB_SCHEDULED : JOB_ENQUEUED;
    return j;
}

static void enqueue(job_t *const *jobs, size_t n, job_t **replayed)
{
    jobd_error err = {0};
    cr_assert_eq(redis_script_enqueue(rc, &model, jobs, n, 0, replayed, &err), 0, "%s",
                 err.message);
}

static void enqueue1(const char *id, int64_t created)
{
    job_t *j = mkjob(id, created, 0), *rep = NULL;
    enqueue(&j, 1, &rep);
    cr_assert_null(rep);
    job_free(j);
}

static long long cmd_int(const char *fmt, const char *key)
{
    redisReply *r = redisCommand(rc, fmt, key);
    cr_assert_not_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : 0;
    freeReplyObject(r);
    return v;
}

static const char *state_of(const char *id, char *buf, size_t len)
{
    jobd_error err = {0};
    json_t *v = redis_script_get(rc, &model, id, &err);
    cr_assert_not_null(v, "get %s: %s", id, err.message);
    snprintf(buf, len, "%s", json_string_value(json_object_get(v, "state")));
    json_decref(v);
    return buf;
}

static void assert_state(const char *id, const char *want)
{
    char buf[32];
    cr_assert_str_eq(state_of(id, buf, sizeof buf), want, "job %s", id);
}

static void plist_key(char *out)
{
    redis_script_proc_key(&model, plist_pid, out);
}

/* Takes and leases up to n jobs into the test process's list. */
static size_t take_lease(size_t n, redis_lease *out)
{
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    char ids[8][JOB_ID_MAX + 1];
    cr_assert_leq(n, 8);
    int got = redis_script_take(rc, &model, plist, n, 0, ids);
    cr_assert_geq(got, 0);
    if (got > 0)
        cr_assert_eq(redis_script_lease(rc, &model, plist, ids, (size_t)got, out), 0);
    return (size_t)got;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs promote until it moved want jobs or 3 s passed; returns the total. */
static long promote_until(long want)
{
    long total = 0;
    long long deadline = ts_now_ms() + 3000;
    while (total < want && ts_now_ms() < deadline) {
        long n = redis_script_promote(rc, &model, 100);
        cr_assert_geq(n, 0);
        total += n;
        if (total < want)
            sleep_ms(10);
    }
    return total;
}

/* --- enqueue --- */

Test(redis_scripts, enqueue_batch_stores_ready_and_scheduled)
{
    int64_t now = jobd_now_ms();
    job_t *jobs[3] = {mkjob("a", now, 0), mkjob("b", now, 0), mkjob("s", now, now + 60000)};
    job_t *rep[3];
    enqueue(jobs, 3, rep);
    for (int i = 0; i < 3; i++)
        cr_assert_null(rep[i]);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 2);
    cr_assert_eq(cmd_int("ZCARD %s", model.sched), 1);
    cr_assert_eq(cmd_int("ZCARD %s", model.all), 3);
    assert_state("a", "enqueued");
    assert_state("s", "scheduled");
    jobd_error err = {0};
    json_t *info = redis_script_info(rc, &model, &err);
    cr_assert_not_null(info);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(info, "counts"), "enqueued")),
                 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(info, "counts"), "scheduled")),
                 1);
    json_decref(info);
    for (int i = 0; i < 3; i++)
        job_free(jobs[i]);
}

Test(redis_scripts, enqueue_existing_id_replays_and_stores_nothing)
{
    int64_t now = jobd_now_ms();
    enqueue1("same", now);
    job_t *again[2] = {mkjob("same", now + 5, 0), mkjob("other", now, 0)};
    job_t *rep[2];
    enqueue(again, 2, rep);
    cr_assert_not_null(rep[0]);
    cr_assert_str_eq(rep[0]->id, "same");
    cr_assert_eq(rep[0]->state, JOB_ENQUEUED);
    cr_assert_eq(rep[0]->created_at, now, "the stored job, not the new one");
    cr_assert_null(rep[1]);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 2, "one entry per job");
    job_free(rep[0]);
    job_free(again[0]);
    job_free(again[1]);
}

Test(redis_scripts, enqueue_same_id_twice_in_one_batch_stores_once)
{
    int64_t now = jobd_now_ms();
    job_t *jobs[2] = {mkjob("dup", now, 0), mkjob("dup", now, 0)};
    job_t *rep[2];
    enqueue(jobs, 2, rep);
    cr_assert_null(rep[0]);
    cr_assert_not_null(rep[1]);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 1);
    job_free(rep[1]);
    job_free(jobs[0]);
    job_free(jobs[1]);
}

Test(redis_scripts, enqueue_after_its_deadline_stores_nothing)
{
    job_t *j = mkjob("late", jobd_now_ms(), 0), *rep = NULL;
    jobd_error err = {0};
    int64_t past = jobd_now_ms() - 60000; /* Redis TIME is this host's clock */
    cr_assert_eq(redis_script_enqueue(rc, &model, &j, 1, past, &rep, &err), -1);
    cr_assert_eq(err.status, 503);
    cr_assert_null(rep);
    cr_assert_eq(cmd_int("EXISTS %s", model.seq), 0, "refused before the first write");
    cr_assert_eq(redis_script_enqueue(rc, &model, &j, 1, jobd_now_ms() + 60000, &rep, &err), 0);
    assert_state("late", "enqueued");
    job_free(j);
}

Test(redis_scripts, noscript_is_reloaded)
{
    redisReply *r = redisCommand(rc, "SCRIPT FLUSH");
    freeReplyObject(r);
    enqueue1("x", jobd_now_ms());
    assert_state("x", "enqueued");
}

/* --- take and lease --- */

Test(redis_scripts, lease_in_submission_order_with_growing_tokens)
{
    int64_t now = jobd_now_ms();
    enqueue1("first", now);
    enqueue1("second", now + 1);
    redis_lease l[2];
    cr_assert_eq(take_lease(2, l), 2);
    cr_assert_eq(l[0].status, RL_LEASED);
    cr_assert_eq(l[1].status, RL_LEASED);
    cr_assert_str_eq(l[0].job->id, "first");
    cr_assert_str_eq(l[1].job->id, "second");
    cr_assert_gt(l[1].token, l[0].token);
    cr_assert_eq(l[0].job->state, JOB_RUNNING);
    cr_assert_geq(l[0].job->started_at, now - 5000, "started_at comes from Redis TIME");
    assert_state("first", "running");
    cr_assert_eq(cmd_int("ZCARD %s", model.state[JOB_RUNNING]), 2);
    cr_assert_eq(take_lease(2, l + 0), 0, "ready is empty");
    job_free(l[0].job);
    job_free(l[1].job);
}

Test(redis_scripts, lease_drops_cancelled_job)
{
    enqueue1("c", jobd_now_ms());
    jobd_error err = {0};
    json_t *v = redis_script_cancel(rc, &model, "c", &err);
    cr_assert_not_null(v, "%s", err.message);
    cr_assert_str_eq(json_string_value(json_object_get(v, "state")), "cancelled");
    json_decref(v);
    redis_lease l;
    cr_assert_eq(take_lease(1, &l), 1, "the id stays in ready until taken");
    cr_assert_eq(l.status, RL_SKIPPED);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    cr_assert_eq(cmd_int("LLEN %s", plist), 0);
    assert_state("c", "cancelled");
}

Test(redis_scripts, lease_on_paused_queue_puts_jobs_back_in_order)
{
    int64_t now = jobd_now_ms();
    enqueue1("p1", now);
    enqueue1("p2", now + 1);
    cr_assert_eq(redis_script_pause(rc, &model, true, NULL), 0);
    cr_assert_eq(redis_script_paused(rc, &model), 1);
    redis_lease l[2];
    cr_assert_eq(take_lease(2, l), 2);
    cr_assert_eq(l[0].status, RL_PAUSED);
    cr_assert_eq(l[1].status, RL_PAUSED);
    assert_state("p1", "enqueued");
    cr_assert_eq(redis_script_pause(rc, &model, false, NULL), 0);
    cr_assert_eq(take_lease(1, l), 1);
    cr_assert_str_eq(l[0].job->id, "p1", "order kept");
    job_free(l[0].job);
}

/* --- finish --- */

Test(redis_scripts, finish_succeeded_then_stale_token_refused)
{
    enqueue1("ok", jobd_now_ms());
    redis_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 1;
    cr_assert_eq(redis_script_finish(rc, &model, plist, l.job, l.token + 1, JOB_SUCCEEDED, 0), 0,
                 "a token that is not the lease is refused");
    assert_state("ok", "running");
    cr_assert_eq(redis_script_finish(rc, &model, plist, l.job, l.token, JOB_SUCCEEDED, 0), 1);
    cr_assert_eq(redis_script_finish(rc, &model, plist, l.job, l.token, JOB_SUCCEEDED, 0), 0,
                 "no double completion");
    assert_state("ok", "succeeded");
    cr_assert_eq(cmd_int("LLEN %s", plist), 0);
    cr_assert_eq(cmd_int("GET %s", model.processed), 1);
    cr_assert_eq(cmd_int("ZCARD %s", model.finished), 1);
    jobd_error err = {0};
    json_t *v = redis_script_get(rc, &model, "ok", &err);
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 1);
    cr_assert(json_is_string(json_object_get(v, "finished_at")));
    json_decref(v);
    job_free(l.job);
}

Test(redis_scripts, finish_retrying_waits_then_promote_moves_it)
{
    enqueue1("r", jobd_now_ms());
    redis_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 1;
    job_set_error(l.job, "boom");
    long long t0 = ts_now_ms();
    cr_assert_eq(redis_script_finish(rc, &model, plist, l.job, l.token, JOB_RETRYING, 0.3), 1);
    assert_state("r", "retrying");
    cr_assert_eq(cmd_int("GET %s", model.failed), 1);
    cr_assert_eq(redis_script_promote(rc, &model, 100), 0, "not due yet");
    cr_assert_eq(promote_until(1), 1);
    cr_assert_geq(ts_now_ms() - t0, 290, "moved no earlier than its delay");
    assert_state("r", "enqueued");
    jobd_error err = {0};
    json_t *v = redis_script_get(rc, &model, "r", &err);
    cr_assert_str_eq(json_string_value(json_object_get(v, "last_error")), "boom");
    json_decref(v);
    job_free(l.job);
}

Test(redis_scripts, finish_dead_then_dead_retry_and_delete)
{
    enqueue1("d", jobd_now_ms());
    redis_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 3;
    job_set_error(l.job, "gave up");
    cr_assert_eq(redis_script_finish(rc, &model, plist, l.job, l.token, JOB_DEAD, 0), 1);
    job_free(l.job);
    assert_state("d", "dead");
    jobd_error err = {0};
    json_t *page = redis_script_list(rc, &model, -1, true, 10, NULL, &err);
    cr_assert_eq(json_array_size(json_object_get(page, "jobs")), 1);
    json_decref(page);

    json_t *v = redis_script_dead_op(rc, &model, "d", true, &err);
    cr_assert_not_null(v, "%s", err.message);
    cr_assert_str_eq(json_string_value(json_object_get(v, "state")), "enqueued");
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 0);
    json_decref(v);
    cr_assert_null(redis_script_dead_op(rc, &model, "d", false, &err));
    cr_assert_eq(err.status, 409);
    cr_assert_null(redis_script_dead_op(rc, &model, "nope", false, &err));
    cr_assert_eq(err.status, 404);

    cr_assert_eq(take_lease(1, &l), 1);
    cr_assert_eq(redis_script_finish(rc, &model, plist, l.job, l.token, JOB_DEAD, 0), 1);
    job_free(l.job);
    v = redis_script_dead_op(rc, &model, "d", false, &err);
    cr_assert(json_is_null(v));
    cr_assert_null(redis_script_get(rc, &model, "d", &err));
    cr_assert_eq(err.status, 404);
    cr_assert_eq(cmd_int("ZCARD %s", model.all), 0);
}

Test(redis_scripts, cancel_refuses_running_job)
{
    enqueue1("run", jobd_now_ms());
    redis_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    jobd_error err = {0};
    cr_assert_null(redis_script_cancel(rc, &model, "run", &err));
    cr_assert_eq(err.status, 409);
    cr_assert_null(redis_script_cancel(rc, &model, "nope", &err));
    cr_assert_eq(err.status, 404);
    job_free(l.job);
}

/* --- processes, leases given back --- */

Test(redis_scripts, requeue_abandoned_counts_an_attempt)
{
    int64_t now = jobd_now_ms();
    job_t *jobs[2] = {mkjob("again", now, 0), mkjob("last", now + 1, 0)};
    jobs[1]->max_attempts = 1;
    job_t *rep[2];
    enqueue(jobs, 2, rep);
    job_free(jobs[0]);
    job_free(jobs[1]);
    cr_assert_eq(redis_script_beat(rc, &model, plist_pid, "register", 100), 1);
    redis_lease l[2];
    cr_assert_eq(take_lease(2, l), 2);
    cr_assert_eq(redis_script_reap(rc, &model, "other"), 0, "heartbeat still alive");
    sleep_ms(150);
    cr_assert_eq(redis_script_reap(rc, &model, "other"), 2);
    assert_state("again", "enqueued");
    assert_state("last", "dead");
    jobd_error err = {0};
    json_t *v = redis_script_get(rc, &model, "again", &err);
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 1);
    cr_assert_not_null(strstr(json_string_value(json_object_get(v, "last_error")), "heartbeat"));
    json_decref(v);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l[0].job->attempts = 1;
    cr_assert_eq(redis_script_finish(rc, &model, plist, l[0].job, l[0].token, JOB_SUCCEEDED, 0), 0,
                 "the dead process's lease is stale");
    cr_assert_eq(redis_script_beat(rc, &model, plist_pid, "beat", 100), 0,
                 "a process declared dead cannot heartbeat");
    cr_assert_eq(cmd_int("SCARD %s", model.orphans), 0);
    cr_assert_eq(cmd_int("SCARD %s", model.procs), 0);
    cr_assert_eq(cmd_int("ZCARD %s", model.state[JOB_RUNNING]), 0);
    job_free(l[0].job);
    job_free(l[1].job);
}

Test(redis_scripts, release_on_graceful_stop_counts_no_attempt)
{
    enqueue1("g", jobd_now_ms());
    cr_assert_eq(redis_script_beat(rc, &model, plist_pid, "register", 5000), 1);
    redis_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    char ids[1][JOB_ID_MAX + 1];
    cr_assert_eq(redis_script_take(rc, &model, plist, 1, 0, ids), 0);
    cr_assert_eq(redis_script_give_back(rc, &model, plist_pid, false, "stop"), 1);
    cr_assert_eq(redis_script_beat(rc, &model, plist_pid, "leave", 0), 1);
    assert_state("g", "enqueued");
    jobd_error err = {0};
    json_t *v = redis_script_get(rc, &model, "g", &err);
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 0);
    json_decref(v);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 1);
    cr_assert_eq(cmd_int("SCARD %s", model.procs), 0);
    job_free(l.job);
}

Test(redis_scripts, taken_but_not_leased_goes_back_without_attempt)
{
    enqueue1("t", jobd_now_ms());
    cr_assert_eq(redis_script_beat(rc, &model, plist_pid, "register", 50), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    char ids[1][JOB_ID_MAX + 1];
    cr_assert_eq(redis_script_take(rc, &model, plist, 1, 0, ids), 1);
    sleep_ms(100);
    cr_assert_eq(redis_script_reap(rc, &model, "other"), 1);
    assert_state("t", "enqueued");
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 1);
}

/* --- due jobs --- */

Test(redis_scripts, scheduled_job_moves_when_due_in_bounded_batches)
{
    int64_t now = jobd_now_ms();
    job_t *jobs[5];
    job_t *rep[5];
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "due%d", i);
        jobs[i] = mkjob(id, now, now - 1000);
    }
    jobs[4] = mkjob("later", now, now + 400);
    enqueue(jobs, 5, rep);
    cr_assert_eq(redis_script_promote(rc, &model, 3), 3, "at most the batch");
    cr_assert_eq(redis_script_promote(rc, &model, 3), 1);
    assert_state("later", "scheduled");
    long long t0 = ts_now_ms();
    cr_assert_eq(promote_until(1), 1);
    cr_assert_geq(jobd_now_ms(), now + 400, "not earlier than its time");
    cr_assert_lt(ts_now_ms() - t0, 1500);
    assert_state("later", "enqueued");
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 5);
    for (int i = 0; i < 5; i++)
        job_free(jobs[i]);
}

/* --- retention --- */

static void run_to(const char *id, job_state end)
{
    redis_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    cr_assert_str_eq(l.job->id, id);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 1;
    cr_assert_eq(redis_script_finish(rc, &model, plist, l.job, l.token, end, 0), 1);
    job_free(l.job);
}

Test(redis_scripts, trim_finished_by_count_and_age_is_counted)
{
    int64_t now = jobd_now_ms();
    const char *ids[] = {"f1", "f2", "f3"};
    for (int i = 0; i < 3; i++) {
        enqueue1(ids[i], now + i);
        run_to(ids[i], JOB_SUCCEEDED);
        sleep_ms(3); /* distinct finish times */
    }
    cr_assert_eq(redis_script_trim(rc, &model, false, 3600, 2, 100), 1);
    jobd_error err = {0};
    cr_assert_null(redis_script_get(rc, &model, "f1", &err), "the oldest goes first");
    assert_state("f3", "succeeded");
    cr_assert_eq(cmd_int("GET %s", model.trimmed), 1);
    cr_assert_eq(redis_script_trim(rc, &model, false, 0, 100, 100), 2);
    cr_assert_eq(cmd_int("GET %s", model.trimmed), 3);
    cr_assert_eq(cmd_int("ZCARD %s", model.all), 0);
    cr_assert_eq(cmd_int("ZCARD %s", model.state[JOB_SUCCEEDED]), 0);
}

Test(redis_scripts, trim_dead_set_by_count)
{
    int64_t now = jobd_now_ms();
    enqueue1("d1", now);
    run_to("d1", JOB_DEAD);
    enqueue1("d2", now + 1);
    run_to("d2", JOB_DEAD);
    cr_assert_eq(redis_script_trim(rc, &model, true, 3600, 1, 100), 1);
    jobd_error err = {0};
    cr_assert_null(redis_script_get(rc, &model, "d1", &err));
    assert_state("d2", "dead");
    cr_assert_eq(cmd_int("ZCARD %s", model.state[JOB_DEAD]), 1);
}

/* --- listing --- */

Test(redis_scripts, list_pages_newest_first_without_repeats)
{
    int64_t now = jobd_now_ms();
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "l%d", i);
        enqueue1(id, now + i);
    }
    const char *want[] = {"l4", "l3", "l2", "l1", "l0"};
    char cursor[64] = "";
    size_t seen = 0;
    for (int page = 0; page < 3; page++) {
        jobd_error err = {0};
        json_t *p = redis_script_list(rc, &model, -1, false, 2, cursor[0] ? cursor : NULL, &err);
        cr_assert_not_null(p, "%s", err.message);
        json_t *jobs = json_object_get(p, "jobs");
        for (size_t i = 0; i < json_array_size(jobs); i++)
            cr_assert_str_eq(json_string_value(json_object_get(json_array_get(jobs, i), "id")),
                             want[seen++]);
        json_t *next = json_object_get(p, "next_cursor");
        if (page < 2)
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        else
            cr_assert(json_is_null(next));
        json_decref(p);
    }
    cr_assert_eq(seen, 5);
    jobd_error err = {0};
    cr_assert_null(redis_script_list(rc, &model, -1, false, 2, "abc", &err));
    cr_assert_eq(err.status, 400);
    json_t *p = redis_script_list(rc, &model, JOB_RUNNING, false, 10, NULL, &err);
    cr_assert_eq(json_array_size(json_object_get(p, "jobs")), 0);
    json_decref(p);
}

/* --- server checks --- */

Test(redis_scripts, schema_version_written_and_newer_refused)
{
    char err[512] = "";
    cr_assert_eq(redis_script_check_server(rc, &model, false, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cmd_int("GET %s", model.schema), REDIS_SCHEMA_VERSION);
    redisReply *r = redisCommand(rc, "SET %s 99", model.schema);
    freeReplyObject(r);
    cr_assert_eq(redis_script_check_server(rc, &model, false, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "99"), "%s", err);
}

Test(redis_scripts, eviction_policy_refused_unless_allowed)
{
    pid_t pid;
    int port;
    const char *args[] = {"--maxmemory-policy", "allkeys-lru", NULL};
    cr_assert_eq(ts_redis_start(&pid, &port, args), 0);
    char err[512] = "";
    redis_addr a = {.host = "127.0.0.1", .port = port};
    redisContext *c = redis_conn_open(&a, 2, 2, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    int rc1 = redis_script_check_server(c, &model, false, err, sizeof err);
    int rc2 = redis_script_check_server(c, &model, true, err, sizeof err);
    redisFree(c);
    ts_redis_stop(pid);
    cr_assert_eq(rc1, -1);
    cr_assert_eq(rc2, 0);
    cr_assert_not_null(strstr(err, "allkeys-lru"), "%s", err);
}
