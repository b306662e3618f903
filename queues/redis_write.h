/* redis_write.h - the calls that change a queue's jobs in Redis, each one
 * script (queues/lua/<name>.lua) or command per batch: submission, fetching
 * and leases, the end of runs, giving leases back, processes and their
 * heartbeats, due jobs, retention, cancel, dead jobs, pause. */
#ifndef JOBD_REDIS_WRITE_H
#define JOBD_REDIS_WRITE_H

#include "redis_model.h"

/* One job leased by a fetch. */
typedef struct redis_write_lease {
    job_t *job;      /* new job (state running), caller frees */
    long long token; /* fencing token of the lease */
} redis_write_lease;

/* The end of one run, for redis_write_finish_batch. */
typedef struct redis_write_outcome {
    const job_t *job; /* borrowed; attempts count the run, last_error set for failures */
    long long token;  /* the lease the run held */
    job_state next;   /* JOB_SUCCEEDED, JOB_RETRYING or JOB_DEAD */
    double delay;     /* JOB_RETRYING: seconds before the next attempt */
} redis_write_outcome;

/* What giving leases back did: jobs that went back to ready or dead, and of
 * them how many went dead. */
typedef struct redis_write_taken {
    long moved;
    long dead;
} redis_write_taken;

/* redis_write_enqueue for jobs made of parts (submissions): parts[0..nparts)
 * are their sizes, in order, summing to n (NULL: one part). Under
 * m->max_depth a part whose new ids would take the waiting jobs past it is
 * refused whole: waits[i] = seconds to retry (1..60) for each of its jobs,
 * 0 for the others (stored or replayed as redis_write_enqueue says). 0, or
 * -1 with 503 in err. */
int redis_write_enqueue_parts(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                              const size_t *parts, size_t nparts, int64_t not_after,
                              job_t **replayed, int *waits, char **texts, jobd_error *err);

/* Fills err with 429 queue_full for m's queue, Retry-After wait seconds. */
void redis_write_queue_full(const redis_model *m, int wait, jobd_error *err);

/* Stores jobs[0..n) in one script: new ids go to ready (or sched when their
 * state is scheduled); an id that exists is left alone and replayed[i] gets a
 * new job with its stored state (NULL for stored jobs). With m->max_depth,
 * when the new ids would take the waiting jobs past it, nothing is stored:
 * -1 with 429 queue_full and its retry_after in err. When Redis runs the
 * script later than not_after (unix ms on Redis's clock; 0 = no limit) it
 * stores nothing. texts (n slots, may be NULL) receives each job's view as
 * the JSON text sent (new memory, the caller frees each, also on error; a
 * slot is NULL when out of memory). 0, or -1 with 503 in err (then nothing
 * is in replayed). */
int redis_write_enqueue(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                        int64_t not_after, job_t **replayed, char **texts, jobd_error *err);

/* Takes up to n (<= REDIS_BATCH_MAX) ids from ready in submission order
 * and leases the enqueued ones in the same script: each becomes running
 * with started_at = Redis time and goes into lease set plist under a new
 * fencing token (one per fetch: a token fences the leases of one job); ids of jobs no longer
 * enqueued (cancelled, or a second entry) are dropped, and a job whose stored record cannot be read
 * goes dead at once (last_error says so), not into out. Writes the leases to out. Returns how many
 * (0: ready held none to run), -2 when the queue is paused (nothing taken), or -1 when the
 * connection failed or Redis answered an error (nothing taken then, unless
 * the answer was lost on the way: see redis_write_release_strays). */
int redis_write_fetch(redisContext *c, const redis_model *m, const char *plist, size_t n,
                      redis_write_lease *out);

/* The ids of the processes whose leases count for max_running (live and
 * orphaned: SUNION of procs and orphans) and their lease-set keys. */
typedef struct redis_write_procs {
    char (*pids)[REDIS_PID_LEN + 1]; /* owned */
    char (*plists)[REDIS_KEY_MAX];   /* owned */
    size_t n;
} redis_write_procs;

/* redis_write_fetch under the queue's flow limits (m->rate_*, max_running,
 * max_depth's drain count): takes only as many jobs as the rate and
 * max_running allow now. procs (may be NULL: max_running not applied) names
 * every process whose leases count. Returns as redis_write_fetch, and -3
 * when procs is out of date (reload it: redis_write_procs_load), -4 when no
 * start is allowed now, *wait_ms (ms) until one may be. Nothing is taken on
 * -3 and -4 (a wait for a max_running slot is jittered, so that processes
 * share the freed slots). *buried gets how many jobs with an unreadable
 * record went dead (see redis_write_fetch). */
int redis_write_fetch_limited(redisContext *c, const redis_model *m, const char *plist, size_t n,
                              redis_write_lease *out, const redis_write_procs *procs,
                              int64_t *wait_ms, long *buried);

/* Fills procs (freeing what it held) with the current processes of the
 * queue. 0, or -1 (procs unchanged) when the connection failed or out of memory. */
int redis_write_procs_load(redisContext *c, const redis_model *m, redis_write_procs *procs);

/* Frees what procs holds and empties it. */
void redis_write_procs_free(redis_write_procs *procs);

/* Waits up to block seconds until ready holds an id, taking none
 * (BLMOVE ready ready RIGHT RIGHT leaves the list as it was, and wakes
 * every process that waits). 1 = ids are there, 0 = none came, -1 = failed. */
int redis_write_wait(redisContext *c, const redis_model *m, double block);

/* Ends the runs outs[0..n) (n <= REDIS_BATCH_MAX) of leases in plist in one
 * script: a run whose token is still its job's lease moves the job to next
 * and done[i] = 1; any other is refused (stale: nothing written for it) and
 * done[i] = 0. 0, or -1 with why in err (may be NULL) when the connection
 * failed or Redis answered an error (nothing written; done untouched). */
int redis_write_finish_batch(redisContext *c, const redis_model *m, const char *plist,
                             const redis_write_outcome *outs, size_t n, int *done, jobd_error *err);

/* One run: 1 = done, 0 = refused (stale token), -1 = failed. */
int redis_write_finish(redisContext *c, const redis_model *m, const char *plist, const job_t *job,
                       long long token, job_state next, double delay);

/* Takes every id out of process pid's lease set, in batches: running jobs
 * go back to ready, without counting an attempt (abandon false) or counting
 * one (abandon true: the process died, or shutdown cut the run short; a job
 * whose attempts reach max_attempts goes dead, why as its error). Adds what it
 * did to *got (also when it fails: the batches done). 0, or -1 when the connection failed. */
int redis_write_give_back(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                          const char *why, redis_write_taken *got);

/* After a lost reply on a fetch connection: gives back, without counting an
 * attempt, the ids in pid's lease set that held(arg, id) says this process
 * does not hold (leased, but the answer never arrived). Returns how
 * many went back, or -1 when the connection failed. */
long redis_write_release_strays(redisContext *c, const redis_model *m, const char *pid,
                                bool (*held)(void *arg, const char *id), void *arg);

/* Registers process pid (mode "register"), renews its heartbeat ("beat"),
 * or deregisters it ("leave"); ttl_ms is the heartbeat's lifetime.
 * 1 = done; 0 = refused: pid was declared dead (its leases are gone); -1 = failed. */
int redis_write_beat(redisContext *c, const redis_model *m, const char *pid, const char *mode,
                     long long ttl_ms);

/* Declares dead every registered process (other than self) whose heartbeat
 * expired and gives their leases back counting an attempt; adds what went back
 * or dead to *got (also when it fails). 0, or -1 when the connection failed. */
int redis_write_reap(redisContext *c, const redis_model *m, const char *self,
                     redis_write_taken *got);

/* Moves due scheduled/retrying jobs to ready, at most batch. Returns how many,
 * or -1 when the connection failed. */
long redis_write_promote(redisContext *c, const redis_model *m, size_t batch);

/* Deletes the oldest finished (dead false) or dead (dead true) jobs older
 * than max_age seconds or beyond max_count, at most batch (<= REDIS_BATCH_MAX);
 * counts them in P:{q}:trimmed. Returns how many, or -1 when the connection failed. */
long redis_write_trim(redisContext *c, const redis_model *m, bool dead, double max_age,
                      long max_count, size_t batch);

/* Admin writes: each returns a new reference (or 0) on success, NULL (or
 * -1) with err: 404 unknown_job, 409 conflict, 503. */
/* Cancels a scheduled, enqueued or retrying job: a new reference to its view. */
json_t *redis_write_cancel(redisContext *c, const redis_model *m, const char *id, jobd_error *err);
/* Dead job back to enqueued (retry true, new reference to its view) or deleted
 * (retry false: returns json_null()). */
json_t *redis_write_dead_op(redisContext *c, const redis_model *m, const char *id, bool retry,
                            jobd_error *err);
/* Sets or clears the queue's paused flag. */
int redis_write_pause(redisContext *c, const redis_model *m, bool paused, jobd_error *err);

#endif
