/* proc_aggregate_spill.c - the aggregate processor's spill file: owned jobs
 * still unstored at stop() are written there (one job view per line), and the
 * next start() replays them; the store answers a job stored after all as
 * "replayed", so nothing is stored twice. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/log.h"
#include "job.h"
#include "proc_aggregate.h"

/* Removes the spill file once every job replayed from it is stored (the
 * last n of them just were). Called with a->mu held. */
void proc_aggregate_spill_done(aggregate *a, size_t n)
{
    if (!n)
        return;
    a->spill_left -= n;
    if (!a->spill_left && a->spill && unlink(a->spill) != 0 && errno != ENOENT)
        log_event(LOG_ERROR, "aggregate.spill_unlink", NULL, "cannot remove %s: %s", a->spill,
                  strerror(errno));
}

/* Writes the owned jobs of b to the spill file (one view per line) through a
 * temporary file and rename, so a crash leaves the old file or the new one.
 * Returns how many were written; 0 with an error logged on failure. */
static size_t proc_aggregate_spill_write(aggregate *a, const aggregate_buf *b, size_t owned)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", a->spill);
    FILE *f = fopen(tmp, "we");
    int rc = f ? 0 : -1;
    for (size_t i = 0; f && rc == 0 && i < b->n; i++) {
        if (b->refs[i].done)
            continue;
        char *line = job_view_text(b->jobs[i], NULL);
        rc = line && fprintf(f, "%s\n", line) > 0 ? 0 : -1;
        free(line);
    }
    if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, a->spill) != 0)
        rc = -1;
    if (rc != 0) {
        log_event(LOG_ERROR, "aggregate.lost", NULL,
                  "cannot write spill file %s: %s; %zu jobs lost", a->spill, strerror(errno),
                  owned);
        unlink(tmp);
        return 0;
    }
    log_event(LOG_WARN, "aggregate.spilled", NULL, "%zu unstored jobs written to %s", owned,
              a->spill);
    return owned;
}

/* What the flusher left at stop: waiting submitters are told "not accepted";
 * owned jobs go to the spill file, or are lost (and said to be). */
void proc_aggregate_spill_leftovers(aggregate *a, aggregate_buf *b)
{
    size_t owned = 0;
    for (size_t i = 0; i < b->n; i++)
        owned += b->refs[i].done == NULL;
    if (owned && a->spill)
        a->spilled += proc_aggregate_spill_write(a, b, owned);
    else if (owned)
        log_event(LOG_ERROR, "aggregate.lost", NULL,
                  "%zu buffered jobs could not be stored before shutdown (no spill file set)",
                  owned);
    for (size_t i = 0; i < b->n; i++) {
        aggregate_ref *r = &b->refs[i];
        if (r->done)
            proc_aggregate_refuse(r->done, r->done_ctx, r->index, JOBD_MSG_SHUTDOWN);
        else
            job_free(b->jobs[i]);
    }
    a->held -= b->n;
    a->held_bytes -= proc_aggregate_bytes(b->refs, b->n);
    b->n = 0;
}

/* One spill line into pending as an owned job. 0, or -1 when the line is
 * not a job view. */
static int proc_aggregate_spill_line(aggregate *a, const char *line, size_t len)
{
    json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    job_t *job = v ? job_from_view(v) : NULL;
    json_decref(v);
    if (!job || proc_aggregate_buf_reserve(&a->pending, 1) != 0) {
        job_free(job);
        return -1;
    }
    size_t bytes = job_mem_size(job);
    a->pending.jobs[a->pending.n] = job;
    a->pending.refs[a->pending.n++] = (aggregate_ref){.from_spill = true, .bytes = bytes};
    a->held++;
    a->held_bytes += bytes;
    a->spill_left++;
    return 0;
}

/* Reads the spill file of an earlier run into pending, to be replayed. A file
 * that is not what we wrote is left alone and the queue does not start:
 * better than silently dropping jobs. 0, or -1 with an error logged. */
int proc_aggregate_spill_load(proc_t *self)
{
    aggregate *a = self->priv;
    FILE *f = fopen(a->spill, "re");
    if (!f && errno == ENOENT)
        return 0;
    if (!f) {
        log_event(LOG_ERROR, "aggregate.spill_unreadable", NULL, "queue %s: cannot read %s: %s",
                  self->queue->cfg->name, a->spill, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0, first = a->pending.n;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (len > 1 && proc_aggregate_spill_line(a, line, (size_t)len) != 0) {
            log_event(LOG_ERROR, "aggregate.spill_invalid", NULL,
                      "queue %s: %s line %zu is not a job view; fix or move the file",
                      self->queue->cfg->name, a->spill, lineno);
            rc = -1;
        }
    }
    free(line);
    fclose(f);
    if (rc != 0) {
        /* The file stays as it is: the jobs read so far are dropped here. */
        for (size_t i = first; i < a->pending.n; i++)
            job_free(a->pending.jobs[i]);
        a->held -= a->pending.n - first;
        a->held_bytes -= proc_aggregate_bytes(a->pending.refs + first, a->pending.n - first);
        a->pending.n = first;
        a->spill_left = 0;
    }
    if (rc == 0 && a->spill_left)
        log_event(LOG_INFO, "aggregate.spill_replay", NULL, "queue %s: replaying %zu jobs from %s",
                  self->queue->cfg->name, a->spill_left, a->spill);
    return rc;
}

