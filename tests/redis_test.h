/* redis_test.h - what the end-to-end tests of Redis-backed queues share:
 * a config with short heartbeats and backoff, a redis-server that can be
 * stopped and started again on the same port and folder, and small HTTP
 * helpers around support.h. */
#ifndef JOBD_TEST_REDIS_TEST_H
#define JOBD_TEST_REDIS_TEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../queues/redis_model.h"
#include "../server/jobd.h"
#include "support.h"

/* Writes a jobd config into buf: one queue "q" (dequeue redis) on the Redis
 * at port (0 = the suite's), key prefix prefix, workers workers, heartbeat
 * 0.2 s, lease_expiry 1 s, poll_interval 0.05 s, redis.timeout 0.5 s, shutdown_timeout 1 s,
 * max_attempts 3, backoff base 0.3 + 0.3 x n s without jitter. */
void rt_config(char *buf, size_t len, int port, const char *prefix, int workers);

/* rt_config's settings with the queues object given as JSON text instead of
 * its queue "q" (e.g. "{\"q\": {\"dequeue\": [\"redis\"]}}"). */
void rt_config_queues(char *buf, size_t len, int port, const char *prefix, int workers,
                      const char *queues_json);

/* Starts jobd on that config (extra args NULL-terminated, may be NULL);
 * fails the test if it does not come up. */
void rt_jobd_up(ts_jobd *j, const char *config, const char *const *extra_args);

/* POSTs body to /queues/q/jobs; returns the status, copies the id of a
 * single-job answer into id (>= JOB_ID_MAX + 1 bytes, may be NULL). */
long rt_submit(int port, const char *body, char *id);

/* GET /queues/q: new reference to the queue view, or NULL. */
json_t *rt_queue(int port);

/* A connection to the suite's redis-server (caller redisFree's it) and m
 * filled for queue "q" under a fresh prefix, max_attempts 3: what the
 * script-level suites start from. Fails the test when it cannot connect. */
redisContext *rt_script_setup(redis_model *m);

/* GET /queues/<queue>: new reference to the queue view, or NULL. */
json_t *rt_queue_of(int port, const char *queue);

/* counts.<state> of /queues/q, or -1. */
long rt_count(int port, const char *state);

/* processed_total of /queues/q, or -1. */
long rt_processed(int port);

/* Polls until processed_total >= n or timeout_ms; true if reached. */
bool rt_wait_processed(int port, long n, int timeout_ms);

/* GET /queues/q/jobs/<id>: new reference to the view, or NULL (404 etc.). */
json_t *rt_job(int port, const char *id);

/* An integer field of the view of job id, or -1. */
long rt_job_int(int port, const char *id, const char *field);

/* A redis-server of the test's own that can be restarted on the same port
 * and folder (e.g. with appendonly). */
typedef struct rt_redis {
    pid_t pid;
    int port;
    char dir[512];
    const char *const *args; /* extra args, NULL-terminated, reused on restart */
} rt_redis;

/* Starts it on a free port in a fresh folder; fails the test if it cannot. */
void rt_redis_start(rt_redis *r, const char *const *extra_args);
/* Starts it again on the same port and folder after rt_redis_kill. */
void rt_redis_restart(rt_redis *r);
/* Starts it again like rt_redis_restart, without waiting for it to answer
 * (it may be loading its data for a while). */
void rt_redis_respawn(rt_redis *r);
/* Sends sig (SIGTERM shuts down cleanly, SIGKILL crashes) and waits for it. */
void rt_redis_kill(rt_redis *r, int sig);

/* Kills the servers of rt_redis_start this test left running (a failed
 * assertion skips the test's own cleanup): use as the suite's .fini. */
void rt_cleanup(void);

/* Sleeps ms milliseconds (pacing loops, never to synchronise). */
void rt_sleep_ms(int ms);

#endif
