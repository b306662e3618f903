/* redis_scripts.h - the Redis data model of a queue: key names, the Lua
 * scripts that change it atomically, and the reads that show it.
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
 * Times that decide anything come from Redis TIME inside the scripts. */
#ifndef JOBD_REDIS_SCRIPTS_H
#define JOBD_REDIS_SCRIPTS_H

#include "redis_conn.h"

#define REDIS_SCHEMA_VERSION 2
#define REDIS_BASE_MAX 160 /* "prefix:{queue}:": both at most 64 chars */
#define REDIS_KEY_MAX 320
#define REDIS_PID_LEN 32 /* 16 random bytes as hex */

#define REDIS_BATCH_MAX 1000 /* jobs one script call handles, at most */

enum redis_script_id {
    RS_ENQUEUE,
    RS_FETCH,
    RS_FINISH,
    RS_REQUEUE,
    RS_BEAT,
    RS_ORPHAN,
    RS_PROMOTE,
    RS_CANCEL,
    RS_DEAD,
    RS_TRIM,
    RS_SCAN,
    RS_PAGE,
    RS_BURY,
    RS_COUNT
};

/* The job fields, one hash each (see above). */
enum redis_column { RC_V, RC_S, RC_A, RC_M, RC_R, RC_B, RC_E, RC_COUNT };

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
    char state[JOB_STATE_COUNT][REDIS_KEY_MAX]; /* used for the rare states only */
    char col[RC_COUNT][REDIS_KEY_MAX];
    int default_max; /* the queue's max_attempts */
    redis_script scripts[RS_COUNT];
} redis_model;

/* One job leased by a fetch. */
typedef struct redis_lease {
    job_t *job;      /* new job (state running), caller frees */
    long long token; /* fencing token of the lease */
} redis_lease;

/* The end of one run, for redis_script_finish_batch. */
typedef struct redis_outcome {
    const job_t *job; /* borrowed; attempts count the run, last_error set for failures */
    long long token;  /* the lease the run held */
    job_state next;   /* JOB_SUCCEEDED, JOB_RETRYING or JOB_DEAD */
    double delay;     /* JOB_RETRYING: seconds before the next attempt */
} redis_outcome;

/* Fills m for queue under prefix; default_max is the queue's max_attempts. */
void redis_script_model_init(redis_model *m, const char *prefix, const char *queue,
                             int default_max);

/* Key of a process's lease set or its heartbeat, into out. */
void redis_script_proc_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX]);
void redis_script_hb_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX]);

/* Checks that the server is fit to hold jobs: maxmemory-policy noeviction
 * (unless allow_eviction) and a schema version this jobd knows (written when
 * absent). 0 = fit; -1 = refused, why in err; -2 = connection failed; -3 =
 * Redis answered "not yet" (redis_conn_temporary: LOADING, BUSY...), why in err. */
int redis_script_check_server(redisContext *c, const redis_model *m, bool allow_eviction, char *err,
                              size_t errlen);

/* Stores jobs[0..n) in one script: new ids go to ready (or sched when their
 * state is scheduled); an id that exists is left alone and replayed[i] gets a
 * new job with its stored state (NULL for stored jobs). When Redis runs the
 * script later than not_after (unix ms on Redis's clock; 0 = no limit) it
 * stores nothing. texts (n slots, may be NULL) receives each job's view as
 * the JSON text sent (new memory, the caller frees each, also on error; a
 * slot is NULL when out of memory). 0, or -1 with 503 in err (then nothing
 * is in replayed). */
int redis_script_enqueue(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                         int64_t not_after, job_t **replayed, char **texts, jobd_error *err);

/* Redis's clock (TIME) in unix ms into *redis_ms. 0, or -1 when it failed. */
int redis_script_time(redisContext *c, int64_t *redis_ms);

/* Takes up to n (<= REDIS_BATCH_MAX) ids from ready in submission order
 * and leases the enqueued ones in the same script: each becomes running
 * with started_at = Redis time and goes into lease set plist under a new
 * fencing token (one per fetch: a token fences the leases of one job); ids of jobs no longer enqueued (cancelled, or a second entry)
 * are dropped, and a job whose stored record cannot be read goes dead at
 * once (last_error says so), not into out. Writes the leases to out. Returns how many (0: ready held
 * none to run), -2 when the queue is paused (nothing taken), or -1 when the
 * connection failed or Redis answered an error (nothing taken then, unless
 * the answer was lost on the way: see redis_script_release_strays). */
int redis_script_fetch(redisContext *c, const redis_model *m, const char *plist, size_t n,
                       redis_lease *out);

/* Waits up to block seconds until ready holds an id, taking none
 * (BLMOVE ready ready RIGHT RIGHT leaves the list as it was, and wakes
 * every process that waits). 1 = ids are there, 0 = none came, -1 = failed. */
int redis_script_wait(redisContext *c, const redis_model *m, double block);

/* Ends the runs outs[0..n) (n <= REDIS_BATCH_MAX) of leases in plist in one
 * script: a run whose token is still its job's lease moves the job to next
 * and done[i] = 1; any other is refused (stale: nothing written for it) and
 * done[i] = 0. 0, or -1 with why in err (may be NULL) when the connection
 * failed or Redis answered an error (nothing written; done untouched). */
int redis_script_finish_batch(redisContext *c, const redis_model *m, const char *plist,
                              const redis_outcome *outs, size_t n, int *done, jobd_error *err);

/* One run: 1 = done, 0 = refused (stale token), -1 = failed. */
int redis_script_finish(redisContext *c, const redis_model *m, const char *plist, const job_t *job,
                        long long token, job_state next, double delay);

/* Takes every id out of process pid's lease set, in batches: running jobs
 * go back to ready, without counting an attempt (abandon false) or counting
 * one (abandon true: the process died, or shutdown cut the run short; a job
 * whose attempts reach max_attempts goes dead, why as its error). Returns how many jobs went
 * back or dead, or -1 when the connection failed. */
long redis_script_give_back(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                            const char *why);

/* After a lost reply on a fetch connection: gives back, without counting an
 * attempt, the ids in pid's lease set that held(arg, id) says this process
 * does not hold (leased, but the answer never arrived). Returns how
 * many went back, or -1 when the connection failed. */
long redis_script_release_strays(redisContext *c, const redis_model *m, const char *pid,
                                 bool (*held)(void *arg, const char *id), void *arg);

/* Registers process pid (mode "register"), renews its heartbeat ("beat"),
 * or deregisters it ("leave"); ttl_ms is the heartbeat's lifetime.
 * 1 = done; 0 = refused: pid was declared dead (its leases are gone); -1 = failed. */
int redis_script_beat(redisContext *c, const redis_model *m, const char *pid, const char *mode,
                      long long ttl_ms);

/* Declares dead every registered process (other than self) whose heartbeat
 * expired and gives their leases back counting an attempt. Returns the number
 * of jobs requeued or dead, or -1 when the connection failed. */
long redis_script_reap(redisContext *c, const redis_model *m, const char *self);

/* Moves due scheduled/retrying jobs to ready, at most batch. Returns how many,
 * or -1 when the connection failed. */
long redis_script_promote(redisContext *c, const redis_model *m, size_t batch);

/* Deletes the oldest finished (dead false) or dead (dead true) jobs older
 * than max_age seconds or beyond max_count, at most batch (<= REDIS_BATCH_MAX);
 * counts them in P:{q}:trimmed. Returns how many, or -1 when the connection failed. */
long redis_script_trim(redisContext *c, const redis_model *m, bool dead, double max_age,
                       long max_count, size_t batch);

/* Store reads and admin. Each returns a new reference (or 0) on success, NULL
 * (or -1) with err: 404 unknown_job, 409 conflict, 400 invalid_parameter, 503. */
json_t *redis_script_get(redisContext *c, const redis_model *m, const char *id, jobd_error *err);
/* A page of jobs newest first (state -1 = any; dead_set: the dead set,
 * newest death first). A page of enqueued or succeeded jobs comes from a
 * bounded scan and may hold fewer than limit jobs with a next_cursor. */
json_t *redis_script_list(redisContext *c, const redis_model *m, int state, bool dead_set,
                          size_t limit, const char *cursor, jobd_error *err);
json_t *redis_script_cancel(redisContext *c, const redis_model *m, const char *id, jobd_error *err);
/* Dead job back to enqueued (retry true, new reference to its view) or deleted
 * (retry false: returns json_null()). */
json_t *redis_script_dead_op(redisContext *c, const redis_model *m, const char *id, bool retry,
                             jobd_error *err);
int redis_script_pause(redisContext *c, const redis_model *m, bool paused, jobd_error *err);
/* 1 paused, 0 not, -1 connection failed. */
int redis_script_paused(redisContext *c, const redis_model *m);
json_t *redis_script_info(redisContext *c, const redis_model *m, jobd_error *err);

#endif
