/* redis_conn.c - hiredis connections, commands, pipelines and the pool. */
#include "redis_conn.h"

#include <errno.h>
#include <math.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/log.h"

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

/* --- commands --- */

void redis_cmd_init(redis_cmd *cmd, const char *name)
{
    memset(cmd, 0, sizeof *cmd);
    redis_cmd_adds(cmd, name);
}

void redis_cmd_init_script(redis_cmd *cmd, const redis_script *script)
{
    redis_cmd_init(cmd, "EVALSHA");
    cmd->script = script;
    redis_cmd_adds(cmd, script->sha);
    redis_cmd_adds(cmd, "0"); /* the key count, filled in when sent */
}

static int redis_cmd_grow(redis_cmd *cmd)
{
    if (cmd->argc < cmd->cap)
        return 0;
    size_t cap = cmd->cap ? cmd->cap * 2 : 16;
    const char **argv = realloc(cmd->argv, cap * sizeof *argv);
    if (argv)
        cmd->argv = argv;
    size_t *lens = argv ? realloc(cmd->lens, cap * sizeof *lens) : NULL;
    if (lens)
        cmd->lens = lens;
    bool *owned = lens ? realloc(cmd->owned, cap * sizeof *owned) : NULL;
    if (!owned) {
        cmd->oom = true;
        return -1;
    }
    cmd->owned = owned;
    cmd->cap = cap;
    return 0;
}

static void redis_cmd_push(redis_cmd *cmd, const char *s, size_t len, bool owned)
{
    if (!s || redis_cmd_grow(cmd) != 0) {
        cmd->oom = true;
        if (owned)
            free((char *)s);
        return;
    }
    cmd->argv[cmd->argc] = s;
    cmd->lens[cmd->argc] = len;
    cmd->owned[cmd->argc] = owned;
    cmd->argc++;
}

void redis_cmd_add(redis_cmd *cmd, const char *s, size_t len)
{
    redis_cmd_push(cmd, s, len, false);
}

void redis_cmd_adds(redis_cmd *cmd, const char *s)
{
    redis_cmd_push(cmd, s, s ? strlen(s) : 0, false);
}

void redis_cmd_addf(redis_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    redis_cmd_push(cmd, n < 0 ? NULL : s, n < 0 ? 0 : (size_t)n, true);
}

void redis_cmd_addi(redis_cmd *cmd, long long v)
{
    char digits[24];
    size_t n = 0;
    /* Digits from the last, on the unsigned magnitude (LLONG_MIN has no positive). */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[n++] = '-';
    char *s = malloc(n + 1);
    for (size_t i = 0; s && i < n; i++)
        s[i] = digits[n - 1 - i];
    if (s)
        s[n] = '\0';
    redis_cmd_push(cmd, s, n, true);
}

void redis_cmd_key(redis_cmd *cmd, const char *key)
{
    redis_cmd_push(cmd, key, key ? strlen(key) : 0, false);
    cmd->nkeys++;
}

void redis_cmd_free(redis_cmd *cmd)
{
    for (size_t i = 0; i < cmd->argc; i++)
        if (cmd->owned[i])
            free((char *)cmd->argv[i]);
    free(cmd->argv);
    free(cmd->lens);
    free(cmd->owned);
    memset(cmd, 0, sizeof *cmd);
}

/* Fills in a script command's key count before it is sent. */
static void redis_cmd_finish(redis_cmd *cmd)
{
    if (!cmd->script || cmd->argc < 3)
        return;
    int n = snprintf(cmd->nkeys_buf, sizeof cmd->nkeys_buf, "%zu", cmd->nkeys);
    cmd->argv[2] = cmd->nkeys_buf;
    cmd->lens[2] = (size_t)n;
}

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

/* --- the link --- */

int redis_link_init(redis_link *l, const char *url, double timeout, size_t n, char *err,
                    size_t errlen)
{
    memset(l, 0, sizeof *l);
    if (redis_conn_parse_url(url, &l->addr, err, errlen) != 0)
        return -1;
    l->timeout = timeout;
    l->n = n;
    l->pool = calloc(n, sizeof *l->pool);
    l->busy = calloc(n, sizeof *l->busy);
    l->reused = calloc(n, sizeof *l->reused);
    if (!l->pool || !l->busy || !l->reused) {
        free(l->pool);
        free(l->busy);
        free(l->reused);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    atomic_init(&l->down, false);
    atomic_init(&l->clock_offset, 0);
    atomic_init(&l->clock_known, false);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void redis_link_destroy(redis_link *l)
{
    if (!l->pool)
        return;
    for (size_t i = 0; i < l->n; i++)
        if (l->pool[i])
            redisFree(l->pool[i]);
    free(l->pool);
    free(l->busy);
    free(l->reused);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    l->pool = NULL;
}

void redis_link_set_down(redis_link *l, const char *why)
{
    if (atomic_exchange(&l->down, true))
        return;
    log_event(LOG_WARN, "redis.down", NULL, "Redis at %s:%d is unavailable: %s", l->addr.host,
              l->addr.port, why);
    if (l->on_down)
        l->on_down(l->on_down_arg);
}

void redis_link_set_up(redis_link *l)
{
    if (atomic_exchange(&l->down, false))
        log_event(LOG_INFO, "redis.up", NULL, "Redis at %s:%d is reachable again", l->addr.host,
                  l->addr.port);
}

void redis_link_suspect(redis_link *l, const char *why)
{
    if (atomic_load(&l->down))
        return;
    char err[256];
    redisContext *c = redis_conn_open(&l->addr, l->timeout, l->timeout, err, sizeof err);
    redisReply *r = c ? redisCommand(c, "PING") : NULL;
    bool alive = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    if (alive)
        log_event(LOG_DEBUG, "redis.stale", NULL, "a connection failed (%s); Redis answers", why);
    else
        redis_link_set_down(l, why);
}

/* Picks a free slot (one with an open connection first) and marks it busy.
 * Called with l->mu held; SIZE_MAX when all are busy. */
static size_t redis_link_pick(redis_link *l)
{
    size_t pick = SIZE_MAX;
    for (size_t i = 0; i < l->n && (pick == SIZE_MAX || !l->pool[pick]); i++)
        if (!l->busy[i])
            pick = i;
    if (pick != SIZE_MAX)
        l->busy[pick] = true;
    return pick;
}

static int redis_link_unavailable(jobd_error *err, const char *why)
{
    jobd_fail(err, 503, "unavailable", "the job store is unavailable: %s", why);
    if (err)
        err->retry_after = 1;
    return -1;
}

/* False when the server closed c while it sat in the pool (it restarted):
 * a closed socket reads as EOF at once, a live idle one has nothing to read. */
static bool redis_link_alive(const redisContext *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Opens a connection for slot i before deadline_ms; Redis is marked down
 * when that fails. NULL then. */
static redisContext *redis_link_open(redis_link *l, int64_t deadline_ms)
{
    double left = (double)(deadline_ms - jobd_mono_ms()) / 1000.0;
    if (left <= 0)
        return NULL;
    char why[256];
    redisContext *c = redis_conn_open(&l->addr, left, left, why, sizeof why);
    if (!c)
        redis_link_set_down(l, why);
    return c;
}

redisContext *redis_link_acquire(redis_link *l, int64_t deadline_ms, size_t *slot, jobd_error *err)
{
    if (atomic_load(&l->down)) {
        redis_link_unavailable(err, "Redis is down");
        return NULL;
    }
    struct timespec ts = {deadline_ms / 1000, (deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&l->mu);
    size_t i;
    while ((i = redis_link_pick(l)) == SIZE_MAX) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&l->mu);
            redis_link_unavailable(err, "no Redis connection free in time");
            return NULL;
        }
    }
    redisContext *c = l->pool[i];
    l->pool[i] = NULL;
    l->reused[i] = c != NULL;
    pthread_mutex_unlock(&l->mu);
    if (c && !redis_link_alive(c)) {
        redisFree(c);
        c = NULL;
        l->reused[i] = false;
    }
    if (!c)
        c = redis_link_open(l, deadline_ms);
    double left = (double)(deadline_ms - jobd_mono_ms()) / 1000.0;
    if (!c || left <= 0) {
        redis_link_release(l, i, c);
        redis_link_unavailable(err, c ? "timeout" : "cannot connect");
        return NULL;
    }
    redis_conn_set_timeout(c, left);
    *slot = i;
    return c;
}

bool redis_link_retry(redis_link *l, size_t slot, redisContext **c, int64_t deadline_ms,
                      jobd_error *err)
{
    if (!(*c)->err || !l->reused[slot] || deadline_ms - jobd_mono_ms() <= 0)
        return false;
    log_event(LOG_DEBUG, "redis.stale", NULL, "a pooled connection failed (%s): trying a new one",
              (*c)->errstr);
    redisFree(*c);
    l->reused[slot] = false;
    *c = redis_link_open(l, deadline_ms);
    double left = (double)(deadline_ms - jobd_mono_ms()) / 1000.0;
    if (*c && left > 0) {
        redis_conn_set_timeout(*c, left);
        return true;
    }
    redis_link_release(l, slot, *c);
    *c = NULL;
    redis_link_unavailable(err, "cannot connect");
    return false;
}

void redis_link_release(redis_link *l, size_t slot, redisContext *c)
{
    if (c && c->err) {
        redis_link_set_down(l, c->errstr);
        redisFree(c);
        c = NULL;
    }
    pthread_mutex_lock(&l->mu);
    l->pool[slot] = c;
    l->busy[slot] = false;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void redis_link_set_clock(redis_link *l, int64_t redis_ms, int64_t mono_ms)
{
    atomic_store(&l->clock_offset, (long long)(redis_ms - mono_ms));
    atomic_store(&l->clock_known, true);
}

int64_t redis_link_redis_ms(redis_link *l, int64_t mono_ms)
{
    if (!atomic_load(&l->clock_known))
        return 0;
    return mono_ms + (int64_t)atomic_load(&l->clock_offset);
}
