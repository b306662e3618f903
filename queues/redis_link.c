/* redis_link.c - the shared state of one processor's connections to Redis:
 * the pool of HTTP threads' connections, the "down" flag, Redis's clock. */
#include "redis_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "../server/log.h"

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
    atomic_init(&l->reconnects, 0);
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
    if (!atomic_exchange(&l->down, false))
        return;
    atomic_fetch_add(&l->reconnects, 1);
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
