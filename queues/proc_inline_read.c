/* proc_inline_read.c - the inline store's side of the API (store_ops):
 * get, paged lists, cancel, pause, info, the dead set and the gauges, all
 * from memory under the store's lock (types in proc_inline.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "../server/log.h"
#include "job.h"
#include "proc_inline.h"

/* Index slots a list request looks at beyond its limit: with a state filter
 * a page may hold fewer than limit jobs and still have a next_cursor. */
#define INLINE_LIST_SCAN 1000

static json_t *inline_view_or_404(inline_store *st, const char *id, jobd_error *err)
{
    ientry *e = inline_find(st, id);
    if (!e) {
        jobd_fail(err, 404, "unknown_job", "no job \"%s\" in this queue", id);
        return NULL;
    }
    return job_view(e->job);
}

static json_t *inline_get(proc_t *self, const char *id, jobd_error *err)
{
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    json_t *v = inline_view_or_404(st, id, err);
    pthread_mutex_unlock(&st->mu);
    return v;
}

/* A cursor is "<created_at ms>.<seq>": the index key of the last slot the
 * previous page looked at. 0, or -1 when it is not one. */
static int inline_cursor_parse(const char *cursor, int64_t *ms, uint64_t *seq)
{
    char *end;
    errno = 0;
    long long v = strtoll(cursor, &end, 10);
    if (errno || end == cursor || *end != '.' || v < 0 || end[1] < '0' || end[1] > '9')
        return -1;
    const char *s = end + 1;
    unsigned long long q = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *ms = v;
    *seq = q;
    return 0;
}

/* Newest first through the creation index, from below the cursor: takes up
 * to limit jobs of state (-1 = any) and looks at no more than limit +
 * INLINE_LIST_SCAN slots, so a request costs the same however many jobs the
 * queue holds. Called with st->mu held. */
static json_t *inline_page(inline_store *st, int state, size_t limit, const char *cursor,
                           jobd_error *err)
{
    size_t i = st->created.n;
    if (cursor) {
        int64_t cms;
        uint64_t cseq;
        if (inline_cursor_parse(cursor, &cms, &cseq) != 0) {
            jobd_fail(err, 400, "invalid_parameter", "cursor is not one this server gave");
            snprintf(err->field, sizeof err->field, "cursor");
            return NULL;
        }
        i = timeindex_lower_bound(&st->created, cms, cseq);
    }
    json_t *jobs = json_array();
    size_t taken = 0, budget = limit + INLINE_LIST_SCAN;
    const timeindex_slot *last = NULL; /* the page ends after this slot */
    bool more = false;
    for (; i > 0 && budget > 0; budget--) {
        const timeindex_slot *s = &st->created.v[--i];
        const ientry *e = s->item;
        bool match = e && (state < 0 || (int)e->job->state == state);
        if (match && taken == limit) {
            more = true; /* one more exists: the page is full */
            break;
        }
        if (match) {
            json_array_append_new(jobs, job_view(e->job));
            taken++;
        }
        if (taken < limit || match)
            last = s;
    }
    if (i > 0 && budget == 0)
        more = true; /* not looked at yet */
    json_t *next = json_null();
    if (more && last) {
        char buf[64];
        snprintf(buf, sizeof buf, "%lld.%llu", (long long)last->time,
                 (unsigned long long)last->seq);
        next = json_string(buf);
    }
    return json_pack("{s:o,s:o}", "jobs", jobs, "next_cursor", next);
}

static json_t *inline_list(proc_t *self, int state, size_t limit, const char *cursor,
                           jobd_error *err)
{
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    json_t *res = inline_page(st, state, limit, cursor, err);
    pthread_mutex_unlock(&st->mu);
    return res;
}

static json_t *inline_cancel(proc_t *self, const char *id, jobd_error *err)
{
    inline_store *st = self->priv;
    json_t *v = NULL;
    pthread_mutex_lock(&st->mu);
    ientry *e = inline_find(st, id);
    if (!e) {
        jobd_fail(err, 404, "unknown_job", "no job \"%s\" in this queue", id);
    } else if (e->job->state != JOB_SCHEDULED && e->job->state != JOB_ENQUEUED &&
               e->job->state != JOB_RETRYING) {
        jobd_fail(err, 409, "conflict", "job \"%s\" is %s and cannot be cancelled", id,
                  job_state_name(e->job->state));
    } else {
        e->job->finished_at = jobd_now_ms();
        inline_place(st, e, JOB_CANCELLED);
        log_event(LOG_INFO, "job.cancelled", e->job, "by request %s", "(DELETE)");
        v = job_view(e->job);
    }
    pthread_mutex_unlock(&st->mu);
    return v;
}

static int inline_pause(proc_t *self, bool paused, jobd_error *err)
{
    (void)err;
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    st->paused = paused;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

static json_t *inline_info(proc_t *self, jobd_error *err)
{
    (void)err;
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    json_t *info = json_pack(
        "{s:b,s:{s:I,s:I,s:I,s:I,s:I},s:I,s:I}", "paused", st->paused, "counts", "scheduled",
        (json_int_t)st->counts[JOB_SCHEDULED], "enqueued", (json_int_t)st->counts[JOB_ENQUEUED],
        "running", (json_int_t)st->counts[JOB_RUNNING], "retrying",
        (json_int_t)st->counts[JOB_RETRYING], "dead", (json_int_t)st->counts[JOB_DEAD],
        "processed_total", (json_int_t)st->processed_total, "failed_total",
        (json_int_t)st->failed_total);
    pthread_mutex_unlock(&st->mu);
    return info;
}

/* Parses a dead-list cursor "d<seq>". 0 or -1. */
static int inline_dead_cursor(const char *cursor, uint64_t *seq)
{
    char *end;
    errno = 0;
    unsigned long long v = cursor[0] == 'd' ? strtoull(cursor + 1, &end, 10) : 0;
    if (cursor[0] != 'd' || errno || end == cursor + 1 || *end)
        return -1;
    *seq = v;
    return 0;
}

static json_t *inline_dead_list(proc_t *self, size_t limit, const char *cursor, jobd_error *err)
{
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    const list_t *l = &st->fifos[IL_DEAD];
    ientry **v = malloc((l->n ? l->n : 1) * sizeof *v);
    json_t *res = NULL;
    if (!v) {
        jobd_fail(err, 503, "unavailable", "out of memory");
    } else {
        /* Newest death first: the dead FIFO walked backwards. The cursor is
         * the death order ("d<seq>") of the last job shown, so a page holds
         * even when that job was retried or deleted meanwhile. */
        uint64_t after = UINT64_MAX;
        if (cursor && inline_dead_cursor(cursor, &after) != 0) {
            jobd_fail(err, 400, "invalid_parameter", "cursor is not one this server gave");
            snprintf(err->field, sizeof err->field, "cursor");
        } else {
            size_t n = 0;
            for (list_node *node = l->tail; node; node = node->prev) {
                ientry *e = INLINE_ENTRY(node, lnode);
                if (e->dead_seq < after)
                    v[n++] = e;
            }
            json_t *jobs = json_array();
            size_t i = 0;
            for (; i < n && i < limit; i++)
                json_array_append_new(jobs, job_view(v[i]->job));
            json_t *next = json_null();
            if (i < n && i > 0) {
                char buf[32];
                snprintf(buf, sizeof buf, "d%llu", (unsigned long long)v[i - 1]->dead_seq);
                next = json_string(buf);
            }
            res = json_pack("{s:o,s:o}", "jobs", jobs, "next_cursor", next);
        }
    }
    pthread_mutex_unlock(&st->mu);
    free(v);
    return res;
}

/* The dead job of that id, or NULL with 404/409 in err. */
static ientry *inline_find_dead(inline_store *st, const char *id, jobd_error *err)
{
    ientry *e = inline_find(st, id);
    if (!e)
        jobd_fail(err, 404, "unknown_job", "no job \"%s\" in this queue", id);
    else if (e->job->state != JOB_DEAD)
        jobd_fail(err, 409, "conflict", "job \"%s\" is %s, not dead", id, job_state_name(e->job->state));
    return e && e->job->state == JOB_DEAD ? e : NULL;
}

static json_t *inline_dead_retry(proc_t *self, const char *id, jobd_error *err)
{
    inline_store *st = self->priv;
    json_t *v = NULL;
    pthread_mutex_lock(&st->mu);
    ientry *e = inline_find_dead(st, id, err);
    if (e) {
        e->job->attempts = 0;
        e->job->finished_at = 0;
        e->job->run_at = 0;
        inline_place(st, e, JOB_ENQUEUED);
        v = job_view(e->job);
    }
    pthread_mutex_unlock(&st->mu);
    return v;
}

static int inline_dead_delete(proc_t *self, const char *id, jobd_error *err)
{
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    ientry *e = inline_find_dead(st, id, err);
    if (e)
        inline_drop(st, e);
    pthread_mutex_unlock(&st->mu);
    return e ? 0 : -1;
}

/* From memory: one lock of each queue, no I/O. */
static void inline_gauges(proc_t *const *stores, size_t n, store_gauges *out)
{
    int64_t now = jobd_now_ms();
    for (size_t i = 0; i < n; i++) {
        inline_store *st = stores[i]->priv;
        store_gauges *g = &out[i];
        pthread_mutex_lock(&st->mu);
        g->ok = true;
        g->paused = st->paused;
        for (int s = 0; s < JOB_STATE_COUNT; s++)
            g->counts[s] = (long long)st->counts[s];
        const ientry *oldest = inline_fifo_head(st, IL_READY);
        if (oldest) {
            const job_t *job = oldest->job;
            int64_t due = job->run_at > 0 ? job->run_at : job->created_at;
            g->latency = now > due ? (double)(now - due) / 1000.0 : 0;
        }
        pthread_mutex_unlock(&st->mu);
    }
}

/* The store side of inline queues: every entry from memory under st->mu. */
const store_ops inline_store_ops = {
    .get = inline_get,
    .list = inline_list,
    .cancel = inline_cancel,
    .pause = inline_pause,
    .info = inline_info,
    .dead_list = inline_dead_list,
    .dead_retry = inline_dead_retry,
    .dead_delete = inline_dead_delete,
    .ready = NULL, /* memory is always there */
    .gauges = inline_gauges,
};

