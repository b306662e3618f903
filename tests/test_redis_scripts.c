/* test_redis_scripts.c - each Lua script of the Redis data model, run
 * against the suite's real redis-server, one key prefix per test. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../queues/job.h"
#include "../queues/redis_read.h"
#include "../queues/redis_write.h"
#include "redis_test.h"

static redisContext *rc;
static redis_model model;
static const char *const plist_pid = "p0000000000000000000000000000000";

static void setup(void)
{
    rc = rt_script_setup(&model);
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
    cr_assert_eq(redis_write_enqueue(rc, &model, jobs, n, 0, replayed, NULL, &err), 0, "%s",
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
    json_t *v = redis_read_get(rc, &model, id, &err);
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
    redis_model_proc_key(&model, plist_pid, out);
}

/* Takes and leases up to n jobs into the test process's lease set. */
static size_t take_lease(size_t n, redis_write_lease *out)
{
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    int got = redis_write_fetch(rc, &model, plist, n, out);
    cr_assert_geq(got, 0);
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
        long n = redis_write_promote(rc, &model, 100);
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
    json_t *info = redis_read_info(rc, &model, &err);
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
    cr_assert_eq(redis_write_enqueue(rc, &model, &j, 1, past, &rep, NULL, &err), -1);
    cr_assert_eq(err.status, 503);
    cr_assert_null(rep);
    cr_assert_eq(cmd_int("EXISTS %s", model.seq), 0, "refused before the first write");
    cr_assert_eq(redis_write_enqueue(rc, &model, &j, 1, jobd_now_ms() + 60000, &rep, NULL, &err),
                 0);
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

/* --- fetch --- */

Test(redis_scripts, fetch_in_submission_order_with_growing_tokens)
{
    int64_t now = jobd_now_ms();
    enqueue1("first", now);
    enqueue1("second", now + 1);
    enqueue1("third", now + 2);
    redis_write_lease l[3];
    cr_assert_eq(take_lease(2, l), 2);
    cr_assert_str_eq(l[0].job->id, "first");
    cr_assert_str_eq(l[1].job->id, "second");
    cr_assert_eq(l[0].job->state, JOB_RUNNING);
    cr_assert_geq(l[0].job->started_at, now - 5000, "started_at comes from Redis TIME");
    assert_state("first", "running");
    cr_assert_eq(cmd_int("GET %s", model.running), 2);
    cr_assert_eq(cmd_int("GET %s", model.enqueued), 1);
    cr_assert_eq(take_lease(2, l + 2), 1);
    cr_assert_str_eq(l[2].job->id, "third");
    cr_assert_gt(l[2].token, l[0].token, "a later fetch leases under a greater token");
    cr_assert_eq(take_lease(2, l), 0, "ready is empty");
    for (int i = 0; i < 3; i++)
        job_free(l[i].job);
}

Test(redis_scripts, fetch_drops_cancelled_job)
{
    enqueue1("c", jobd_now_ms());
    jobd_error err = {0};
    json_t *v = redis_write_cancel(rc, &model, "c", &err);
    cr_assert_not_null(v, "%s", err.message);
    cr_assert_str_eq(json_string_value(json_object_get(v, "state")), "cancelled");
    json_decref(v);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 1, "the id stays in ready until taken");
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 0);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 0, "taken and dropped");
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    cr_assert_eq(cmd_int("HLEN %s", plist), 0);
    cr_assert_eq(cmd_int("GET %s", model.enqueued), 0);
    assert_state("c", "cancelled");
}

Test(redis_scripts, fetch_takes_a_job_once_when_ready_holds_it_twice)
{
    enqueue1("twice", jobd_now_ms());
    redisReply *r = redisCommand(rc, "LPUSH %s twice", model.ready);
    freeReplyObject(r);
    redis_write_lease l[2];
    cr_assert_eq(take_lease(2, l), 1);
    cr_assert_str_eq(l[0].job->id, "twice");
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 0);
    cr_assert_eq(cmd_int("GET %s", model.running), 1);
    job_free(l[0].job);
}

Test(redis_scripts, fetch_on_paused_queue_takes_nothing)
{
    int64_t now = jobd_now_ms();
    enqueue1("p1", now);
    enqueue1("p2", now + 1);
    cr_assert_eq(redis_write_pause(rc, &model, true, NULL), 0);
    cr_assert_eq(redis_read_paused(rc, &model), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    redis_write_lease l[2];
    cr_assert_eq(redis_write_fetch(rc, &model, plist, 2, l), -2);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 2);
    assert_state("p1", "enqueued");
    cr_assert_eq(redis_write_pause(rc, &model, false, NULL), 0);
    cr_assert_eq(take_lease(1, l), 1);
    cr_assert_str_eq(l[0].job->id, "p1", "order kept");
    job_free(l[0].job);
}

Test(redis_scripts, wait_returns_when_a_job_comes_and_takes_none)
{
    long long t0 = ts_now_ms();
    cr_assert_eq(redis_write_wait(rc, &model, 0.1), 0, "nothing came");
    cr_assert_geq(ts_now_ms() - t0, 90);
    enqueue1("w1", jobd_now_ms());
    enqueue1("w2", jobd_now_ms() + 1);
    cr_assert_eq(redis_write_wait(rc, &model, 1), 1);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 2, "the list is as it was");
    redis_write_lease l[2];
    cr_assert_eq(take_lease(2, l), 2);
    cr_assert_str_eq(l[0].job->id, "w1", "order kept");
    job_free(l[0].job);
    job_free(l[1].job);
}

/* --- finish --- */

Test(redis_scripts, finish_succeeded_then_stale_token_refused)
{
    enqueue1("ok", jobd_now_ms());
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 1;
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token + 1, JOB_SUCCEEDED, 0), 0,
                 "a token that is not the lease is refused");
    assert_state("ok", "running");
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token, JOB_SUCCEEDED, 0), 1);
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token, JOB_SUCCEEDED, 0), 0,
                 "no double completion");
    assert_state("ok", "succeeded");
    cr_assert_eq(cmd_int("HLEN %s", plist), 0);
    cr_assert_eq(cmd_int("GET %s", model.running), 0);
    cr_assert_eq(cmd_int("GET %s", model.processed), 1);
    cr_assert_eq(cmd_int("ZCARD %s", model.finished), 1);
    jobd_error err = {0};
    json_t *v = redis_read_get(rc, &model, "ok", &err);
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 1);
    cr_assert(json_is_string(json_object_get(v, "finished_at")));
    json_decref(v);
    job_free(l.job);
}

Test(redis_scripts, finish_retrying_waits_then_promote_moves_it)
{
    enqueue1("r", jobd_now_ms());
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 1;
    job_set_error(l.job, "boom");
    long long t0 = ts_now_ms();
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token, JOB_RETRYING, 0.3), 1);
    assert_state("r", "retrying");
    cr_assert_eq(cmd_int("GET %s", model.failed), 1);
    cr_assert_eq(redis_write_promote(rc, &model, 100), 0, "not due yet");
    cr_assert_eq(promote_until(1), 1);
    cr_assert_geq(ts_now_ms() - t0, 290, "moved no earlier than its delay");
    assert_state("r", "enqueued");
    jobd_error err = {0};
    json_t *v = redis_read_get(rc, &model, "r", &err);
    cr_assert_str_eq(json_string_value(json_object_get(v, "last_error")), "boom");
    json_decref(v);
    job_free(l.job);
}

Test(redis_scripts, finish_dead_then_dead_retry_and_delete)
{
    enqueue1("d", jobd_now_ms());
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 3;
    job_set_error(l.job, "gave up");
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token, JOB_DEAD, 0), 1);
    job_free(l.job);
    assert_state("d", "dead");
    jobd_error err = {0};
    json_t *page = redis_read_list(rc, &model, -1, true, 10, NULL, &err);
    cr_assert_eq(json_array_size(json_object_get(page, "jobs")), 1);
    json_decref(page);

    json_t *v = redis_write_dead_op(rc, &model, "d", true, &err);
    cr_assert_not_null(v, "%s", err.message);
    cr_assert_str_eq(json_string_value(json_object_get(v, "state")), "enqueued");
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 0);
    json_decref(v);
    cr_assert_null(redis_write_dead_op(rc, &model, "d", false, &err));
    cr_assert_eq(err.status, 409);
    cr_assert_null(redis_write_dead_op(rc, &model, "nope", false, &err));
    cr_assert_eq(err.status, 404);

    cr_assert_eq(take_lease(1, &l), 1);
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token, JOB_DEAD, 0), 1);
    job_free(l.job);
    v = redis_write_dead_op(rc, &model, "d", false, &err);
    cr_assert(json_is_null(v));
    cr_assert_null(redis_read_get(rc, &model, "d", &err));
    cr_assert_eq(err.status, 404);
    cr_assert_eq(cmd_int("ZCARD %s", model.all), 0);
}

Test(redis_scripts, cancel_refuses_running_job)
{
    enqueue1("run", jobd_now_ms());
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    jobd_error err = {0};
    cr_assert_null(redis_write_cancel(rc, &model, "run", &err));
    cr_assert_eq(err.status, 409);
    cr_assert_null(redis_write_cancel(rc, &model, "nope", &err));
    cr_assert_eq(err.status, 404);
    job_free(l.job);
}

Test(redis_scripts, finish_batch_writes_each_run_and_refuses_only_the_stale_one)
{
    int64_t now = jobd_now_ms();
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", i);
        enqueue1(id, now + i);
    }
    redis_write_lease l[4];
    cr_assert_eq(take_lease(4, l), 4);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    const job_state next[] = {JOB_SUCCEEDED, JOB_RETRYING, JOB_SUCCEEDED, JOB_DEAD};
    redis_write_outcome outs[4];
    for (int i = 0; i < 4; i++) {
        l[i].job->attempts = 1;
        job_set_error(l[i].job, next[i] == JOB_SUCCEEDED ? NULL : "boom");
        outs[i] = (redis_write_outcome){
            .job = l[i].job, .token = l[i].token, .next = next[i], .delay = 60};
    }
    outs[2].token = l[2].token + 1; /* stale */
    int done[4] = {-1, -1, -1, -1};
    jobd_error err = {0};
    cr_assert_eq(redis_write_finish_batch(rc, &model, plist, outs, 4, done, &err), 0, "%s",
                 err.message);
    cr_assert_eq(done[0], 1);
    cr_assert_eq(done[1], 1);
    cr_assert_eq(done[2], 0, "the stale run is refused");
    cr_assert_eq(done[3], 1);
    assert_state("b0", "succeeded");
    assert_state("b1", "retrying");
    assert_state("b2", "running");
    assert_state("b3", "dead");
    cr_assert_eq(cmd_int("HLEN %s", plist), 1, "only the refused run still holds its lease");
    cr_assert_eq(cmd_int("GET %s", model.running), 1);
    cr_assert_eq(cmd_int("GET %s", model.processed), 1);
    cr_assert_eq(cmd_int("GET %s", model.failed), 2);
    cr_assert_eq(cmd_int("ZCARD %s", model.sched), 1);
    cr_assert_eq(cmd_int("ZCARD %s", model.dead), 1);
    json_t *v = redis_read_get(rc, &model, "b3", &err);
    cr_assert_str_eq(json_string_value(json_object_get(v, "last_error")), "boom");
    cr_assert(json_is_string(json_object_get(v, "finished_at")), "from the dead set's score");
    json_decref(v);
    for (int i = 0; i < 4; i++)
        job_free(l[i].job);
}

/* counts.<state> of the queue's info. */
static long long count_of(const char *state)
{
    jobd_error err = {0};
    json_t *info = redis_read_info(rc, &model, &err);
    cr_assert_not_null(info, "%s", err.message);
    long long n = json_integer_value(json_object_get(json_object_get(info, "counts"), state));
    json_decref(info);
    return n;
}

Test(redis_scripts, counts_stay_exact_through_every_change)
{
    int64_t now = jobd_now_ms();
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        enqueue1(id, now + i);
    }
    jobd_error err = {0};
    json_decref(redis_write_cancel(rc, &model, "n4", &err));
    cr_assert_eq(count_of("enqueued"), 4);
    redis_write_lease l[3];
    cr_assert_eq(take_lease(3, l), 3);
    cr_assert_eq(count_of("enqueued"), 1);
    cr_assert_eq(count_of("running"), 3);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l[0].job->attempts = 1;
    cr_assert_eq(redis_write_finish(rc, &model, plist, l[0].job, l[0].token, JOB_DEAD, 0), 1);
    cr_assert_eq(count_of("running"), 2);
    cr_assert_eq(count_of("dead"), 1);
    json_decref(redis_write_dead_op(rc, &model, "n0", true, &err));
    cr_assert_eq(count_of("dead"), 0);
    cr_assert_eq(count_of("enqueued"), 2);
    for (int i = 0; i < 3; i++)
        job_free(l[i].job);
    redis_write_taken got = {0};
    cr_assert_eq(redis_write_give_back(rc, &model, plist_pid, false, "", &got), 0);
    cr_assert_eq(got.moved, 2);
    cr_assert_eq(got.dead, 0);
    cr_assert_eq(count_of("running"), 0);
    cr_assert_eq(count_of("enqueued"), 4);
    cr_assert_eq(take_lease(3, l), 3, "the two given back first, then n3");
    cr_assert_eq(count_of("enqueued"), 1);
    cr_assert_eq(count_of("running"), 3);
    for (int i = 0; i < 3; i++)
        job_free(l[i].job);
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
    cr_assert_eq(redis_write_beat(rc, &model, plist_pid, "register", 100), 1);
    redis_write_lease l[2];
    cr_assert_eq(take_lease(2, l), 2);
    redis_write_taken got = {0};
    cr_assert_eq(redis_write_reap(rc, &model, "other", &got), 0);
    cr_assert_eq(got.moved, 0, "heartbeat still alive");
    sleep_ms(150);
    cr_assert_eq(redis_write_reap(rc, &model, "other", &got), 0);
    cr_assert_eq(got.moved, 2);
    cr_assert_eq(got.dead, 1, "the job of max_attempts 1 went dead");
    assert_state("again", "enqueued");
    assert_state("last", "dead");
    jobd_error err = {0};
    json_t *v = redis_read_get(rc, &model, "again", &err);
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 1);
    cr_assert_not_null(strstr(json_string_value(json_object_get(v, "last_error")), "heartbeat"));
    json_decref(v);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l[0].job->attempts = 1;
    cr_assert_eq(redis_write_finish(rc, &model, plist, l[0].job, l[0].token, JOB_SUCCEEDED, 0), 0,
                 "the dead process's lease is stale");
    cr_assert_eq(redis_write_beat(rc, &model, plist_pid, "beat", 100), 0,
                 "a process declared dead cannot heartbeat");
    cr_assert_eq(cmd_int("SCARD %s", model.orphans), 0);
    cr_assert_eq(cmd_int("SCARD %s", model.procs), 0);
    cr_assert_eq(cmd_int("GET %s", model.running), 0);
    job_free(l[0].job);
    job_free(l[1].job);
}

Test(redis_scripts, release_on_graceful_stop_counts_no_attempt)
{
    enqueue1("g", jobd_now_ms());
    cr_assert_eq(redis_write_beat(rc, &model, plist_pid, "register", 5000), 1);
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    redis_write_lease none;
    cr_assert_eq(take_lease(1, &none), 0, "ready is empty");
    redis_write_taken got = {0};
    cr_assert_eq(redis_write_give_back(rc, &model, plist_pid, false, "stop", &got), 0);
    cr_assert_eq(got.moved, 1);
    cr_assert_eq(redis_write_beat(rc, &model, plist_pid, "leave", 0), 1);
    assert_state("g", "enqueued");
    jobd_error err = {0};
    json_t *v = redis_read_get(rc, &model, "g", &err);
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 0);
    json_decref(v);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 1);
    cr_assert_eq(cmd_int("SCARD %s", model.procs), 0);
    job_free(l.job);
}

static bool holds_kept(void *arg, const char *id)
{
    (void)arg;
    return strcmp(id, "kept") == 0;
}

Test(redis_scripts, lost_fetch_answer_goes_back_without_attempt)
{
    enqueue1("lost", jobd_now_ms());
    enqueue1("kept", jobd_now_ms() + 1);
    redis_write_lease l[2];
    cr_assert_eq(take_lease(2, l), 2);
    /* This process got only "kept" (the other answer was lost on the way). */
    cr_assert_eq(redis_write_release_strays(rc, &model, plist_pid, holds_kept, NULL), 1);
    assert_state("lost", "enqueued");
    assert_state("kept", "running");
    jobd_error err = {0};
    json_t *v = redis_read_get(rc, &model, "lost", &err);
    cr_assert_eq(json_integer_value(json_object_get(v, "attempts")), 0);
    json_decref(v);
    cr_assert_eq(cmd_int("LLEN %s", model.ready), 1);
    cr_assert_eq(count_of("running"), 1);
    job_free(l[0].job);
    job_free(l[1].job);
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
    cr_assert_eq(redis_write_promote(rc, &model, 3), 3, "at most the batch");
    cr_assert_eq(redis_write_promote(rc, &model, 3), 1);
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
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    cr_assert_str_eq(l.job->id, id);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 1;
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token, end, 0), 1);
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
    cr_assert_eq(redis_write_trim(rc, &model, false, 3600, 2, 100), 1);
    jobd_error err = {0};
    cr_assert_null(redis_read_get(rc, &model, "f1", &err), "the oldest goes first");
    assert_state("f3", "succeeded");
    cr_assert_eq(cmd_int("GET %s", model.trimmed), 1);
    cr_assert_eq(redis_write_trim(rc, &model, false, 0, 100, 100), 2);
    cr_assert_eq(cmd_int("GET %s", model.trimmed), 3);
    cr_assert_eq(cmd_int("ZCARD %s", model.all), 0);
    cr_assert_eq(cmd_int("ZCARD %s", model.finished), 0);
    for (int c = 0; c < REDIS_COL_COUNT; c++)
        cr_assert_eq(cmd_int("HLEN %s", model.col[c]), 0, "nothing of the jobs is left");
}

Test(redis_scripts, trim_dead_set_by_count)
{
    int64_t now = jobd_now_ms();
    enqueue1("d1", now);
    run_to("d1", JOB_DEAD);
    enqueue1("d2", now + 1);
    run_to("d2", JOB_DEAD);
    cr_assert_eq(redis_write_trim(rc, &model, true, 3600, 1, 100), 1);
    jobd_error err = {0};
    cr_assert_null(redis_read_get(rc, &model, "d1", &err));
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
        json_t *p = redis_read_list(rc, &model, -1, false, 2, cursor[0] ? cursor : NULL, &err);
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
    cr_assert_null(redis_read_list(rc, &model, -1, false, 2, "abc", &err));
    cr_assert_eq(err.status, 400);
    json_t *p = redis_read_list(rc, &model, JOB_RUNNING, false, 10, NULL, &err);
    cr_assert_eq(json_array_size(json_object_get(p, "jobs")), 0);
    json_decref(p);
}

/* The ids of a list page, joined by spaces, into buf; the next cursor into cursor ("" = none). */
static void page_ids(json_t *page, char *buf, size_t len, char *cursor, size_t clen)
{
    cr_assert_not_null(page);
    buf[0] = '\0';
    json_t *jobs = json_object_get(page, "jobs");
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? " " : "",
                 json_string_value(json_object_get(json_array_get(jobs, i), "id")));
    }
    const char *next = json_string_value(json_object_get(page, "next_cursor"));
    snprintf(cursor, clen, "%s", next ? next : "");
    json_decref(page);
}

static bool holds_all_but_e2(void *arg, const char *id)
{
    (void)arg;
    return strcmp(id, "e2") != 0;
}

Test(redis_scripts, list_by_state_enqueued_running_succeeded)
{
    int64_t now = jobd_now_ms();
    const char *ids[] = {"s0", "r1", "e2", "r3", "e4", "e5"};
    for (int i = 0; i < 6; i++)
        enqueue1(ids[i], now + i);
    cr_assert_eq(redis_write_beat(rc, &model, plist_pid, "register", 5000), 1,
                 "running jobs are found in the lease sets of registered processes");
    redis_write_lease l[4];
    cr_assert_eq(take_lease(4, l), 4, "s0 r1 e2 r3");
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l[0].job->attempts = 1;
    cr_assert_eq(redis_write_finish(rc, &model, plist, l[0].job, l[0].token, JOB_SUCCEEDED, 0), 1);
    cr_assert_eq(redis_write_release_strays(rc, &model, plist_pid, holds_all_but_e2, NULL), 1);
    for (int i = 0; i < 4; i++)
        job_free(l[i].job);

    char got[256], cursor[64];
    jobd_error err = {0};
    page_ids(redis_read_list(rc, &model, JOB_SUCCEEDED, false, 10, NULL, &err), got, sizeof got,
             cursor, sizeof cursor);
    cr_assert_str_eq(got, "s0");
    cr_assert_str_eq(cursor, "");
    page_ids(redis_read_list(rc, &model, JOB_RUNNING, false, 1, NULL, &err), got, sizeof got,
             cursor, sizeof cursor);
    cr_assert_str_eq(got, "r3", "newest first");
    cr_assert_neq(cursor[0], '\0');
    page_ids(redis_read_list(rc, &model, JOB_RUNNING, false, 1, cursor, &err), got, sizeof got,
             cursor, sizeof cursor);
    cr_assert_str_eq(got, "r1");
    cr_assert_str_eq(cursor, "");
    page_ids(redis_read_list(rc, &model, JOB_ENQUEUED, false, 2, NULL, &err), got, sizeof got,
             cursor, sizeof cursor);
    cr_assert_str_eq(got, "e5 e4");
    cr_assert_neq(cursor[0], '\0');
    page_ids(redis_read_list(rc, &model, JOB_ENQUEUED, false, 2, cursor, &err), got, sizeof got,
             cursor, sizeof cursor);
    cr_assert_str_eq(got, "e2");
    cr_assert_str_eq(cursor, "", "the end");
    cr_assert_eq(count_of("enqueued"), 3);
    cr_assert_eq(count_of("running"), 2);
}

Test(redis_scripts, list_of_a_rare_state_among_many_goes_on_by_cursor)
{
    int64_t now = jobd_now_ms();
    enqueue1("old", now - 1000);
    redis_write_lease l;
    cr_assert_eq(take_lease(1, &l), 1);
    char plist[REDIS_KEY_MAX];
    plist_key(plist);
    l.job->attempts = 1;
    cr_assert_eq(redis_write_finish(rc, &model, plist, l.job, l.token, JOB_SUCCEEDED, 0), 1);
    job_free(l.job);
    enum { MANY = 1200 };
    job_t *jobs[MANY], *rep[MANY];
    for (int i = 0; i < MANY; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        jobs[i] = mkjob(id, now + i, 0);
    }
    enqueue(jobs, MANY, rep);
    for (int i = 0; i < MANY; i++)
        job_free(jobs[i]);
    char got[256], cursor[64];
    jobd_error err = {0};
    page_ids(redis_read_list(rc, &model, JOB_SUCCEEDED, false, 10, NULL, &err), got, sizeof got,
             cursor, sizeof cursor);
    cr_assert_str_eq(got, "", "a request looks at a bounded number of jobs");
    cr_assert_neq(cursor[0], '\0', "and says where to go on");
    page_ids(redis_read_list(rc, &model, JOB_SUCCEEDED, false, 10, cursor, &err), got, sizeof got,
             cursor, sizeof cursor);
    cr_assert_str_eq(got, "old");
    cr_assert_str_eq(cursor, "");
}

/* --- server checks --- */

Test(redis_scripts, schema_version_written_and_newer_refused)
{
    char err[512] = "";
    cr_assert_eq(redis_model_check_server(rc, &model, false, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cmd_int("GET %s", model.schema), REDIS_SCHEMA_VERSION);
    redisReply *r = redisCommand(rc, "SET %s 99", model.schema);
    freeReplyObject(r);
    cr_assert_eq(redis_model_check_server(rc, &model, false, err, sizeof err), -1);
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
    int rc1 = redis_model_check_server(c, &model, false, err, sizeof err);
    int rc2 = redis_model_check_server(c, &model, true, err, sizeof err);
    redisFree(c);
    ts_redis_stop(pid);
    cr_assert_eq(rc1, -1);
    cr_assert_eq(rc2, 0);
    cr_assert_not_null(strstr(err, "allkeys-lru"), "%s", err);
}

/* A delay counts from Redis's clock, not the submitting host's: a host ten
 * minutes behind Redis must not make a job with delay 60 s run at once. */
Test(redis_scripts, a_delay_counts_from_redis_time)
{
    int64_t redis_now = 0;
    cr_assert_eq(redis_model_time(rc, &redis_now), 0);
    int64_t host_now = redis_now - 600000; /* the skewed host */
    job_t *j = mkjob("skewed", host_now, host_now + 60000), *rep = NULL;
    j->delay_ms = 60000;
    enqueue(&j, 1, &rep);
    cr_assert_null(rep);
    job_free(j);
    assert_state("skewed", "scheduled");
    char key[REDIS_KEY_MAX];
    snprintf(key, sizeof key, "%s", model.sched);
    redisReply *r = redisCommand(rc, "ZSCORE %s skewed", key);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "not in the scheduled set");
    long long due = atoll(r->str);
    freeReplyObject(r);
    cr_expect(due >= redis_now + 60000 && due < redis_now + 65000,
              "due %lld ms after Redis's now, want 60000", due - redis_now);
    cr_expect_eq(redis_write_promote(rc, &model, 100), 0, "nothing is due yet");
}
