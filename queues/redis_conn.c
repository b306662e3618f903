/* redis_conn.c - hiredis connections: addresses, connecting, pipelines,
 * replies. */
#include "redis_conn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* --- addresses --- */

/* Copies [s, s+n) into buf (size bytes); -1 when it does not fit or is empty. */
static int redis_conn_copy(char *buf, size_t size, const char *s, size_t n)
{
    if (n == 0 || n >= size)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

/* Parses "[user]:password@" at the front of *p, if there is one. */
static int redis_conn_parse_auth(const char **p, redis_addr *a)
{
    const char *at = strrchr(*p, '@');
    if (!at)
        return 0;
    const char *colon = memchr(*p, ':', (size_t)(at - *p));
    if (!colon)
        return -1; /* "user@" without a password says nothing usable */
    size_t ulen = (size_t)(colon - *p);
    if (ulen && redis_conn_copy(a->user, sizeof a->user, *p, ulen) != 0)
        return -1;
    if (redis_conn_copy(a->password, sizeof a->password, colon + 1, (size_t)(at - colon - 1)) != 0)
        return -1;
    *p = at + 1;
    return 0;
}

/* Parses a decimal in [min, max] spanning exactly [s, end). */
static int redis_conn_parse_num(const char *s, const char *end, long min, long max, int *out)
{
    if (s == end || end - s > 10)
        return -1;
    long v = 0;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (*c - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int redis_conn_parse_url(const char *url, redis_addr *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->port = 6379;
    static const char scheme[] = "redis://";
    const char *p = url;
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0)
        goto bad;
    p += sizeof scheme - 1;
    if (redis_conn_parse_auth(&p, a) != 0)
        goto bad;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *host_end = colon ? colon : end;
    if (redis_conn_copy(a->host, sizeof a->host, p, (size_t)(host_end - p)) != 0)
        goto bad;
    if (colon && redis_conn_parse_num(colon + 1, end, 1, 65535, &a->port) != 0)
        goto bad;
    if (slash && slash[1] &&
        redis_conn_parse_num(slash + 1, slash + strlen(slash), 0, 1000000, &a->db) != 0)
        goto bad;
    return 0;
bad:
    /* The URL may hold a password: name only its shape. */
    snprintf(err, errlen, "redis.url: must look like redis://[[user]:password@]host[:port][/db]");
    return -1;
}

/* --- connections --- */

static struct timeval redis_conn_tv(double seconds)
{
    if (seconds < 0.001)
        seconds = 0.001;
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return tv;
}

void redis_conn_set_timeout(redisContext *c, double seconds)
{
    redisSetTimeout(c, redis_conn_tv(seconds));
}

/* Runs a setup command (AUTH, SELECT); 0 when answered OK. */
static int redis_conn_setup(redisContext *c, redis_cmd *cmd, const char *what, char *err,
                            size_t errlen)
{
    redisReply *r = redis_conn_run(c, cmd);
    int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "%s failed: %s", what, r ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    redis_cmd_free(cmd);
    return rc;
}

redisContext *redis_conn_open(const redis_addr *a, double timeout, double io_timeout, char *err,
                              size_t errlen)
{
    redisContext *c = redisConnectWithTimeout(a->host, a->port, redis_conn_tv(timeout));
    if (!c || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", a->host, a->port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redis_conn_set_timeout(c, io_timeout);
    redisEnableKeepAlive(c);
    redis_cmd cmd;
    if (a->password[0]) {
        redis_cmd_init(&cmd, "AUTH");
        if (a->user[0])
            redis_cmd_adds(&cmd, a->user);
        redis_cmd_adds(&cmd, a->password);
        if (redis_conn_setup(c, &cmd, "Redis AUTH", err, errlen) != 0)
            goto fail;
    }
    if (a->db) {
        redis_cmd_init(&cmd, "SELECT");
        redis_cmd_addf(&cmd, "%d", a->db);
        if (redis_conn_setup(c, &cmd, "Redis SELECT", err, errlen) != 0)
            goto fail;
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* --- pipelines and replies --- */

static bool redis_conn_is_noscript(const redis_cmd *cmd, const redisReply *r)
{
    return cmd->script && r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Loads the script of cmd (after a Redis restart or SCRIPT FLUSH) and sends
 * cmd again on its own. The new reply, or NULL when the connection failed. */
static redisReply *redis_conn_reload(redisContext *c, redis_cmd *cmd)
{
    if (redis_script_load(c, cmd->script) != 0)
        return NULL;
    return redisCommandArgv(c, (int)cmd->argc, cmd->argv, cmd->lens);
}

static void redis_conn_free_replies(redisReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

int redis_conn_pipeline(redisContext *c, redis_cmd *const *cmds, size_t n, redisReply **replies)
{
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
        if (cmds[i]->oom)
            return -1;
    }
    for (size_t i = 0; i < n; i++) {
        redis_cmd_finish(cmds[i]);
        if (redisAppendCommandArgv(c, (int)cmds[i]->argc, cmds[i]->argv, cmds[i]->lens) !=
            REDIS_OK) {
            /* Part of the pipeline is buffered: the context cannot be reused. */
            c->err = REDIS_ERR_OOM;
            snprintf(c->errstr, sizeof c->errstr, "out of memory");
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) {
            redis_conn_free_replies(replies, i);
            return -1;
        }
        replies[i] = r;
    }
    for (size_t i = 0; i < n; i++) {
        if (!redis_conn_is_noscript(cmds[i], replies[i]))
            continue;
        freeReplyObject(replies[i]);
        replies[i] = redis_conn_reload(c, cmds[i]);
        if (!replies[i]) {
            redis_conn_free_replies(replies, n);
            return -1;
        }
    }
    return 0;
}

redisReply *redis_conn_run(redisContext *c, redis_cmd *cmd)
{
    redisReply *r = NULL;
    redis_cmd *cmds[] = {cmd};
    return redis_conn_pipeline(c, cmds, 1, &r) == 0 ? r : NULL;
}

redisReply *redis_conn_call(redisContext *c, redis_cmd *cmd, jobd_error *err)
{
    redisReply *r = redis_conn_run(c, cmd);
    redis_cmd_free(cmd);
    if (redis_conn_check_reply(c, r, err) != 0) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    return r;
}

long long redis_conn_call_int(redisContext *c, redis_cmd *cmd)
{
    redisReply *r = redis_conn_call(c, cmd, NULL);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

redisReply *redis_conn_call_array(redisContext *c, redis_cmd *cmd)
{
    redisReply *r = redis_conn_call(c, cmd, NULL);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

bool redis_conn_temporary(const redisReply *r)
{
    static const char *const words[] = {"LOADING",  "BUSY",       "MASTERDOWN", "TRYAGAIN",
                                        "READONLY", "CLUSTERDOWN", "NOREPLICAS", "OOM"};
    if (!r || r->type != REDIS_REPLY_ERROR)
        return false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncmp(r->str, words[i], n) == 0 && (r->str[n] == ' ' || r->str[n] == '\0'))
            return true;
    }
    return false;
}

int redis_conn_check_reply(const redisContext *c, const redisReply *r, jobd_error *err)
{
    if (r && r->type != REDIS_REPLY_ERROR)
        return 0;
    if (!r)
        jobd_fail(err, 503, "unavailable", "Redis is unreachable: %s", c->errstr);
    else if (strncmp(r->str, "OOM", 3) == 0)
        jobd_fail(err, 503, "unavailable", "Redis is out of memory: %.200s", r->str);
    else
        jobd_fail(err, 503, "unavailable", "Redis error: %.200s", r->str);
    if (err)
        err->retry_after = 1;
    return -1;
}
