/* redis_conn.h - hiredis 0.14 connections for the redis processor: URL
 * parsing, connecting with timeouts, pipelines of commands (redis_cmd.h)
 * with EVALSHA (a NOSCRIPT answer loads the script: redis_script_load), and
 * replies. The pool of connections is redis_link.h.
 *
 * A redisContext is never shared between threads: the pool hands each one to
 * one caller at a time, and long-lived threads open their own. */
#ifndef JOBD_REDIS_CONN_H
#define JOBD_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "../server/jobd.h"
#include "redis_cmd.h"

/* Where Redis is: redis://[[user]:password@]host[:port][/db]. */
typedef struct redis_addr {
    char host[256];
    int port;
    int db;
    char user[128];     /* "" = none (AUTH password only) */
    char password[256]; /* "" = no AUTH; never logged */
} redis_addr;

/* Parses url into a. 0, or -1 with a message in err (the password is not in it). */
int redis_conn_parse_url(const char *url, redis_addr *a, char *err, size_t errlen);

/* A new connection: connect within timeout seconds, socket read/write
 * timeout io_timeout, keepalive, AUTH and SELECT as the address says.
 * NULL with a message in err on failure. Caller frees with redisFree. */
redisContext *redis_conn_open(const redis_addr *a, double timeout, double io_timeout, char *err,
                              size_t errlen);

/* Sets the socket timeouts of c to seconds (SO_RCVTIMEO/SO_SNDTIMEO). */
void redis_conn_set_timeout(redisContext *c, double seconds);

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

/* redis_conn_call for an array answer: the reply (new, caller frees), or NULL. */
redisReply *redis_conn_call_array(redisContext *c, redis_cmd *cmd);

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

#endif
