/* redis_link.h - the shared state of one processor's connections to Redis:
 * a small pool of connections for HTTP threads, the shared "Redis is down"
 * flag (set on connection errors, cleared by the prober), and Redis's clock. */
#ifndef JOBD_REDIS_LINK_H
#define JOBD_REDIS_LINK_H

#include "redis_conn.h"

/* The shared state of one processor's connections to Redis. */
typedef struct redis_link {
    redis_addr addr;
    double timeout;   /* redis.timeout: the most an HTTP thread waits */
    atomic_bool down; /* set on connection errors; cleared by the prober */
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* a pooled connection was given back */
    atomic_llong clock_offset; /* Redis TIME ms minus our monotonic ms */
    atomic_bool clock_known;
    atomic_llong reconnects; /* times Redis was marked reachable again after down */
    redisContext **pool; /* owned; NULL = not connected */
    bool *busy;
    bool *reused; /* the busy connection was pooled before this acquire */
    size_t n;
    void (*on_down)(void *arg); /* called when Redis is marked down (may be NULL) */
    void *on_down_arg;
} redis_link;

/* Initialises l for url with a pool of n connections (opened lazily).
 * 0, or -1 with err (bad URL, out of memory). */
int redis_link_init(redis_link *l, const char *url, double timeout, size_t n, char *err,
                    size_t errlen);

/* Closes every pooled connection and frees the pool. */
void redis_link_destroy(redis_link *l);

/* A pooled connection for the calling thread, its socket timeout set to what
 * is left until deadline_ms (mono): borrowed until redis_link_release. A
 * pooled connection the server has closed (Redis restarted) is replaced by a
 * new one first. NULL with 503 unavailable in err at once while Redis is
 * known to be down, or when none could be had or connected before the deadline. */
redisContext *redis_link_acquire(redis_link *l, int64_t deadline_ms, size_t *slot, jobd_error *err);

/* After a command failed on *c (acquired in slot): when *c had failed on
 * its connection, was a pooled one (it may have gone stale unnoticed) and
 * time is left before deadline_ms, closes it without marking Redis down,
 * puts a new connection in *c and returns true: run the command once more.
 * Else false, *c untouched; except when the new connection cannot be had:
 * then Redis is marked down, the slot released, *c NULL and err says 503. */
bool redis_link_retry(redis_link *l, size_t slot, redisContext **c, int64_t deadline_ms,
                      jobd_error *err);

/* Gives a connection back. A connection with an error is closed and marks
 * Redis down (the prober clears that). */
void redis_link_release(redis_link *l, size_t slot, redisContext *c);

/* Marks Redis down (connection trouble seen by any thread); logs the change
 * and calls l->on_down, so that the prober looks again at once. */
void redis_link_set_down(redis_link *l, const char *why);

/* A long-lived thread's own connection failed (why): Redis is marked down
 * only when a new connection cannot have a PING answered either (the failed
 * one may just have been closed by a Redis that restarted). Takes up to
 * l->timeout. */
void redis_link_suspect(redis_link *l, const char *why);

/* Marks Redis reachable again (the prober, after its checks); logs the change. */
void redis_link_set_up(redis_link *l);

/* Records Redis's clock: TIME said redis_ms at our monotonic mono_ms. */
void redis_link_set_clock(redis_link *l, int64_t redis_ms, int64_t mono_ms);

/* Our monotonic mono_ms on Redis's clock (unix ms), or 0 while unknown. */
int64_t redis_link_redis_ms(redis_link *l, int64_t mono_ms);

#endif
