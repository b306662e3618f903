/* redis_scripts.h - the Redis data model of a queue: key names, the Lua
 * scripts that change it atomically, and the reads that show it.
 *
 * Keys of queue q under prefix P, all in q's hash tag (one Cluster slot):
 *   P:{q}:job:<id>      hash: v = job view as created (JSON, opaque to Lua),
 *                       s state, a attempts, m max_attempts (0 = queue default),
 *                       r run_at, b started_at, f finished_at (unix ms, 0 = none),
 *                       e last error, t lease token (absent = no lease),
 *                       c index score (created ms * 1000 + sequence % 1000)
 *   P:{q}:all           zset of every job by c   (list, newest first)
 *   P:{q}:st:<state>    zset of the jobs in that state by c (list ?state=, counts)
 *   P:{q}:ready         list of ids to run (LPUSH in, taken from the right)
 *   P:{q}:sched         zset of scheduled and retrying ids by due time (ms)
 *   P:{q}:finished      zset of succeeded and cancelled ids by finish time (retention)
 *   P:{q}:dead          zset of dead ids by death time (ms * 1000 + seq % 1000)
 *   P:{q}:proc:<pid>    list of the ids process pid has taken (its leases)
 *   P:{q}:hb:<pid>      heartbeat of process pid (SET PX lease_expiry)
 *   P:{q}:procs         set of live process ids; P:{q}:orphans: ids of dead
 *                       processes whose leases are still being taken back
 *   P:{q}:seq, fence, processed, failed, trimmed   counters; P:{q}:paused flag
 *   P:schema            data model version
 * Times that decide anything come from Redis TIME inside the scripts. */
#ifndef JOBD_REDIS_SCRIPTS_H
#define JOBD_REDIS_SCRIPTS_H

#include "redis_conn.h"

#define REDIS_SCHEMA_VERSION 1
#define REDIS_BASE_MAX 160 /* "prefix:{queue}:": both at most 64 chars */
#define REDIS_KEY_MAX 320
#define REDIS_PID_LEN 32 /* 16 random bytes as hex */

enum redis_script_id {
    RS_ENQUEUE,
    RS_LEASE,
    RS_FINISH,
    RS_REQUEUE,
    RS_BEAT,
    RS_ORPHAN,
    RS_SELECT,
    RS_PROMOTE,
    RS_CANCEL,
    RS_DEAD,
    RS_PURGE,
    RS_COUNT
};

/* What one queue's scripts need: its key names and the scripts. */
typedef struct redis_model {
    char base[REDIS_BASE_MAX]; /* "P:{q}:" */
    char schema[REDIS_KEY_MAX];
    char all[REDIS_KEY_MAX], ready[REDIS_KEY_MAX], sched[REDIS_KEY_MAX];
    char finished[REDIS_KEY_MAX], dead[REDIS_KEY_MAX];
    char seq[REDIS_KEY_MAX], fence[REDIS_KEY_MAX], paused[REDIS_KEY_MAX];
    char processed[REDIS_KEY_MAX], failed[REDIS_KEY_MAX], trimmed[REDIS_KEY_MAX];
    char procs[REDIS_KEY_MAX], orphans[REDIS_KEY_MAX];
    char state[JOB_STATE_COUNT][REDIS_KEY_MAX];
    int default_max; /* the queue's max_attempts */
    redis_script scripts[RS_COUNT];
} redis_model;

/* Result of leasing one taken id. */
typedef enum redis_lease_status { RL_LEASED, RL_SKIPPED, RL_PAUSED } redis_lease_status;

typedef struct redis_lease {
    redis_lease_status status;
    job_t *job;      /* RL_LEASED: new job (state running), caller frees */
    long long token; /* RL_LEASED: fencing token of the lease */
} redis_lease;

/* Fills m for queue under prefix; default_max is the queue's max_attempts. */
void redis_script_model_init(redis_model *m, const char *prefix, const char *queue,
                             int default_max);

/* Key of a job, a process's lease list or its heartbeat, into out. */
void redis_script_job_key(const redis_model *m, const char *id, char out[REDIS_KEY_MAX]);
void redis_script_proc_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX]);
void redis_script_hb_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX]);

/* Checks that the server is fit to hold jobs: maxmemory-policy noeviction
 * (unless allow_eviction) and a schema version this jobd knows (written when
 * absent). 0 = fit; -1 = refused, why in err; -2 = connection failed. */
int redis_script_check_server(redisContext *c, const redis_model *m, bool allow_eviction, char *err,
                              size_t errlen);

/* Stores jobs[0..n) in one script: new ids go to ready (or sched when their
 * state is scheduled); an id that exists is left alone and replayed[i] gets a
 * new job with its stored state (NULL for stored jobs). When Redis runs the
 * script later than not_after (unix ms on Redis's clock; 0 = no limit) it
 * stores nothing. 0, or -1 with 503 in err (then nothing is in replayed). */
int redis_script_enqueue(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                         int64_t not_after, job_t **replayed, jobd_error *err);

/* Redis's clock (TIME) in unix ms into *redis_ms. 0, or -1 when it failed. */
int redis_script_time(redisContext *c, int64_t *redis_ms);

/* Moves up to n ids from ready to list plist (pipelined LMOVE); when none is
 * there and block > 0, waits up to block seconds (BLMOVE) for one. Writes the
 * ids to ids[]. Returns how many, or -1 when the connection failed. */
int redis_script_take(redisContext *c, const redis_model *m, const char *plist, size_t n,
                      double block, char (*ids)[JOB_ID_MAX + 1]);

/* Leases taken ids[0..n) (in plist): each enqueued job becomes running with
 * a new fencing token and started_at = Redis time; ids of jobs that are no
 * longer enqueued are dropped from plist (RL_SKIPPED); on a paused queue all
 * go back to ready in their order (RL_PAUSED). 0, or -1 (connection failed
 * or error reply; out untouched). */
int redis_script_lease(redisContext *c, const redis_model *m, const char *plist,
                       char (*ids)[JOB_ID_MAX + 1], size_t n, redis_lease *out);

/* Builds the script command that ends a run of job (its attempts already
 * count the run, last_error set for failures) as next (succeeded, retrying
 * after delay seconds, or dead), if token is still its lease. */
void redis_script_finish_cmd(redis_cmd *cmd, const redis_model *m, const char *plist,
                             const job_t *job, long long token, job_state next, double delay);

/* The same as one call: 1 = done, 0 = refused (stale token), -1 = failed. */
int redis_script_finish(redisContext *c, const redis_model *m, const char *plist, const job_t *job,
                        long long token, job_state next, double delay);

/* Takes every id out of process pid's lease list, in batches: running jobs
 * go back to ready, without counting an attempt (abandon false: graceful
 * stop) or counting one (abandon true: the process died; a job whose attempts
 * reach max_attempts goes dead, why as its error). Returns how many jobs went
 * back or dead, or -1 when the connection failed. */
long redis_script_give_back(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                            const char *why);

/* After a lost reply on a fetch connection: gives back, without counting an
 * attempt, the ids in pid's lease list that held(arg, id) says this process
 * does not hold (taken or leased, but the answer never arrived). Returns how
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

/* Deletes the oldest finished (dead false) or dead (dead true) jobs beyond
 * max_count or older than max_age seconds, at most batch; counts them in
 * P:{q}:trimmed. Returns how many, or -1 when the connection failed. */
long redis_script_trim(redisContext *c, const redis_model *m, bool dead, double max_age,
                       long max_count, size_t batch);

/* Store reads and admin. Each returns a new reference (or 0) on success, NULL
 * (or -1) with err: 404 unknown_job, 409 conflict, 400 invalid_parameter, 503. */
json_t *redis_script_get(redisContext *c, const redis_model *m, const char *id, jobd_error *err);
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
