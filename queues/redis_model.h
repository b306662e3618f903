/* redis_model.h - the Redis data model of a queue: its key names, the
 * records of jobs the scripts return, and the checks of the server. The
 * scripts that change it are registered in redis_script.h and called from
 * redis_write.h; the reads that show it are redis_read.h.
 *
 * Keys of queue q under prefix P, all in q's hash tag (one Cluster slot).
 * A job's fields live in one hash per field ("columns", the job id being
 * the hash field), so every key a script touches is fixed and passed in
 * KEYS, and a script handles a whole batch with one command per key:
 *   P:{q}:jobs:v        job view as created (JSON, opaque to Lua)
 *   P:{q}:jobs:s        state
 *   P:{q}:jobs:a|m|r|b|e   attempts, max_attempts (as the client gave it),
 *                       run_at, started_at (unix ms), last error; absent = 0 / none
 *   P:{q}:all           zset of every job by index score (created ms * 1000
 *                       + sequence % 1000): list, newest first
 *   P:{q}:finished      zset of succeeded and cancelled ids by finish time
 *                       (their finished_at; retention)
 *   P:{q}:dead          zset of dead ids by death time (ms * 1000 + seq % 1000)
 *   P:{q}:st:<state>    zset by index score of the jobs in that state, for
 *                       the rarer states scheduled, retrying, dead, cancelled
 *                       (list ?state=, counts). Enqueued and succeeded jobs
 *                       are listed by a bounded scan of all, running ones
 *                       from the lease sets; enqueued and running ones are
 *                       counted in P:{q}:enqueued and P:{q}:running.
 *   P:{q}:ready         list of ids to run (LPUSH in, taken from the right)
 *   P:{q}:sched         zset of scheduled and retrying ids by due time (ms)
 *   P:{q}:proc:<pid>    lease set of process pid: hash id -> fencing token
 *   P:{q}:hb:<pid>      heartbeat of process pid (SET PX lease_expiry)
 *   P:{q}:procs         set of live process ids; P:{q}:orphans: ids of dead
 *                       processes whose leases are still being taken back
 *   P:{q}:seq, fence, enqueued, running, processed, failed, trimmed   counters;
 *   P:{q}:paused flag;  P:schema  data model version
 *   P:{q}:periodic      zset: periodic schedule name -> its last tick enqueued
 *                       (unix ms; only ever raised, ZADD GT)
 *   P:{q}:rate          the start rate's theoretical arrival time (GCRA, us)
 *   P:{q}:drain         recent starts {t, c, p}, for max_depth's Retry-After
 * Times that decide anything come from Redis TIME inside the scripts. */
#ifndef JOBD_REDIS_MODEL_H
#define JOBD_REDIS_MODEL_H

#include "../server/config.h"
#include "job.h"
#include "redis_conn.h"
#include "redis_script.h"

#define REDIS_SCHEMA_VERSION 2
#define REDIS_BASE_MAX 160 /* "prefix:{queue}:": both at most 64 chars */
#define REDIS_KEY_MAX 320
#define REDIS_PID_LEN 32 /* 16 random bytes as hex */

#define REDIS_BATCH_MAX 1000 /* jobs one script call handles, at most */

/* The job fields, one hash each (see above). */
enum redis_column {
    REDIS_COL_V,
    REDIS_COL_S,
    REDIS_COL_A,
    REDIS_COL_M,
    REDIS_COL_R,
    REDIS_COL_B,
    REDIS_COL_E,
    REDIS_COL_COUNT
};

/* What one queue's scripts need: its key names and the scripts. */
typedef struct redis_model {
    char base[REDIS_BASE_MAX]; /* "P:{q}:" */
    char queue[QUEUE_NAME_MAX + 1];
    char schema[REDIS_KEY_MAX];
    char all[REDIS_KEY_MAX], ready[REDIS_KEY_MAX], sched[REDIS_KEY_MAX];
    char finished[REDIS_KEY_MAX], dead[REDIS_KEY_MAX];
    char seq[REDIS_KEY_MAX], fence[REDIS_KEY_MAX], paused[REDIS_KEY_MAX];
    char enqueued[REDIS_KEY_MAX], running[REDIS_KEY_MAX];
    char processed[REDIS_KEY_MAX], failed[REDIS_KEY_MAX], trimmed[REDIS_KEY_MAX];
    char procs[REDIS_KEY_MAX], orphans[REDIS_KEY_MAX];
    char periodic[REDIS_KEY_MAX];
    char rate[REDIS_KEY_MAX], drain[REDIS_KEY_MAX];
    char state[JOB_STATE_COUNT][REDIS_KEY_MAX]; /* used for the rare states only */
    char col[REDIS_COL_COUNT][REDIS_KEY_MAX];
    int default_max; /* the queue's max_attempts */
    /* Flow control (README, Rate limits...): 0 = off. */
    long max_depth;
    int max_running;
    long long rate_t_us, rate_tau_us; /* GCRA: interval between starts, burst tolerance */
    redis_script scripts[REDIS_SCRIPT_COUNT];
} redis_model;

/* Fills m for queue under prefix; default_max is the queue's max_attempts. */
void redis_model_init(redis_model *m, const char *prefix, const char *queue, int default_max);

/* Sets m's flow limits from the queue's config (all 0 by redis_model_init). */
void redis_model_limits(redis_model *m, const queue_cfg *qc);

/* Key of a process's lease set or its heartbeat, into out. */
void redis_model_proc_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX]);
void redis_model_hb_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX]);

/* Checks that the server is fit to hold jobs: maxmemory-policy noeviction
 * (unless allow_eviction) and a schema version this jobd knows (written when
 * absent). 0 = fit; -1 = refused, why in err; -2 = connection failed; -3 =
 * Redis answered "not yet" (redis_conn_temporary: LOADING, BUSY...), why in err. */
int redis_model_check_server(redisContext *c, const redis_model *m, bool allow_eviction, char *err,
                             size_t errlen);

/* Redis's clock (TIME) in unix ms into *redis_ms. 0, or -1 when it failed. */
int redis_model_time(redisContext *c, int64_t *redis_ms);

/* --- for redis_write.c and redis_read.c --- */

/* Starts the EVALSHA of script id with the common keys (every script but
 * beat and orphan): the job columns, all, finished, dead. */
void redis_model_script(redis_cmd *cmd, const redis_model *m, enum redis_script_id id);

/* Adds the keys given (borrowed; the list ends with NULL) to a script command. */
void redis_model_keys(redis_cmd *cmd, ...);

/* A job from its stored fields (replies, NULL or nil = absent; state a
 * string) and finished_at. A view that cannot be read gives, when m and id
 * are given, a job with the id, queue and the fields kept apart from the
 * view, else NULL; NULL too when the view or state is missing. New job,
 * the caller frees it. */
job_t *redis_model_job(const redis_model *m, const char *id, const redisReply *v, const char *state,
                       const redisReply *a, const redisReply *r, const redisReply *b,
                       int64_t finished, const redisReply *e);

/* The job of a record reply as the scripts return it, {v, s, a, r, b, f, e}
 * (redis_model_job with m and id): new job, or NULL. */
job_t *redis_model_record(const redis_model *m, const char *id, const redisReply *r);

/* The view of a record reply: new reference, or NULL with 404 (no such
 * job) or 500 (unreadable) in err. */
json_t *redis_model_view(const redis_model *m, const redisReply *r, const char *id,
                         jobd_error *err);

/* The view of job id (taken: freed here; NULL = unreadable): new reference,
 * or NULL with 500 in err. */
json_t *redis_model_job_view(job_t *job, const char *id, jobd_error *err);

/* Fails err with 404 unknown_job for id. */
void redis_model_unknown(jobd_error *err, const char *id);

#endif
