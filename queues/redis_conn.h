/* redis_conn.h - hiredis 0.14 connections for the redis processor: URL
 * parsing, connecting with timeouts, argv commands, pipelines with EVALSHA
 * (a NOSCRIPT answer loads the script: redis_script_load), replies, and the
 * "link": a small pool of connections for HTTP threads plus the shared
 * "Redis is down" flag.
 *
 * A redisContext is never shared between threads: the pool hands each one to
 * one caller at a time, and long-lived threads open their own. */
#ifndef JOBD_REDIS_CONN_H
#define JOBD_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "../server/jobd.h"
#include "redis_script.h"

/* Where Redis is: redis://[[user]:password@]host[:port][/db]. */
typedef struct redis_addr {
    char host[256];
    int port;
    int db;
    char user[128];     /* "" = none (AUTH password only) */
    char password[256]; /* "" = no AUTH; never logged */
} redis_addr;

/* One command as an argv. Arguments are borrowed (redis_cmd_add, _adds,
 * _key) or owned copies (redis_cmd_addf, _addi); a script command counts its
 * keys as they are added. */
typedef struct redis_cmd {
    const char **argv;
    size_t *lens;
    bool *owned;
    size_t argc, cap;
    const redis_script *script; /* non-NULL for EVALSHA */
    size_t nkeys;
    char nkeys_buf[24];
    bool oom; /* an allocation failed: the command must not be sent */
} redis_cmd;

/* Parses url into a. 0, or -1 with a message in err (the password is not in it). */
int redis_conn_parse_url(const char *url, redis_addr *a, char *err, size_t errlen);

/* A new connection: connect within timeout seconds, socket read/write
 * timeout io_timeout, keepalive, AUTH and SELECT as the address says.
 * NULL with a message in err on failure. Caller frees with redisFree. */
redisContext *redis_conn_open(const redis_addr *a, double timeout, double io_timeout, char *err,
                              size_t errlen);

/* Sets the socket timeouts of c to seconds (SO_RCVTIMEO/SO_SNDTIMEO). */
void redis_conn_set_timeout(redisContext *c, double seconds);

/* Starts a plain command: name is its first word (borrowed, static). */
void redis_cmd_init(redis_cmd *cmd, const char *name);
/* Starts EVALSHA of script; add keys first (redis_cmd_key), then arguments. */
void redis_cmd_init_script(redis_cmd *cmd, const redis_script *script);
/* Adds a borrowed argument of len bytes (valid until the command is sent). */
void redis_cmd_add(redis_cmd *cmd, const char *s, size_t len);
/* Adds a borrowed NUL-terminated argument. */
void redis_cmd_adds(redis_cmd *cmd, const char *s);
/* Adds an owned, printf-formatted argument. */
void redis_cmd_addf(redis_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds an owned decimal integer argument (cheaper than redis_cmd_addf). */
void redis_cmd_addi(redis_cmd *cmd, long long v);
/* Adds a borrowed key of a script command (valid until the command is
 * sent); keys must precede arguments. */
void redis_cmd_key(redis_cmd *cmd, const char *key);
/* Frees what the command owns. */
void redis_cmd_free(redis_cmd *cmd);

/* Sends cmds[0..n) pipelined and reads their n replies into replies[i]
 * (new replies, caller frees with freeReplyObject). An EVALSHA answered
 * NOSCRIPT is loaded with SCRIPT LOAD and sent again. Returns 0, or -1 when
 * the connection failed (c->err is set, the context is dead; every replies[i]
 * is NULL) or a command could not be built. */
int redis_conn_pipeline(redisContext *c, redis_cmd *const *cmds, size_t n, redisReply **replies);

/* One command: redis_conn_pipeline of one. NULL when the connection failed. */
redisReply *redis_conn_run(redisContext *c, redis_cmd *cmd);

/* cmd run (redis_conn_run) and freed: its reply (new, caller frees with
 * freeReplyObject), or NULL with 503 in err (may be NULL) when the
 * connection failed or Redis answered an error. */
redisReply *redis_conn_call(redisContext *c, redis_cmd *cmd, jobd_error *err);

/* redis_conn_call for an integer answer: the integer, or -1. */
long long redis_conn_call_int(redisContext *c, redis_cmd *cmd);

/* True when r is a string (or status) reply. */
static inline bool redis_conn_is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* An integer reply's value, or a string reply's as a decimal; else 0. */
static inline long long redis_conn_int(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return redis_conn_is_str(r) ? strtoll(r->str, NULL, 10) : 0;
}

/* True when r is an array reply of at least min elements. */
static inline bool redis_conn_is_array(const redisReply *r, size_t min)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

/* True when r is an error reply that means "not reachable yet" rather than
 * "refused": Redis is loading its data, busy with a script, out of memory,
 * without its replicas or master, or a replica (READONLY, as during a
 * failover). Whoever gets one waits and tries again, as for a Redis that is down. */
bool redis_conn_temporary(const redisReply *r);

/* Turns a failed command into the error a client sees: 503 unavailable with
 * Retry-After 1 and a message naming the Redis error (OOM, LOADING, READONLY,
 * I/O error, timeout). r may be NULL (connection failed). Returns -1 when r is
 * NULL or an error reply, else 0 (err untouched). */
int redis_conn_check_reply(const redisContext *c, const redisReply *r, jobd_error *err);

/* The shared state of one processor's connections to Redis. */
typedef struct redis_link {
    redis_addr addr;
    double timeout;   /* redis.timeout: the most an HTTP thread waits */
    atomic_bool down; /* set on connection errors; cleared by the prober */
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* a pooled connection was given back */
    atomic_llong clock_offset; /* Redis TIME ms minus our monotonic ms */
    atomic_bool clock_known;
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
