/* proc_inline.h - what the inline store's files share (proc_inline.c:
 * entries and their placement, submissions, the dispatcher and its flow
 * limits, life; proc_inline_read.c: the store side of the API, reads and
 * admin). Private to them: the rest of jobd knows proc_inline_kind
 * (pipeline.h) only.
 *
 * Every job lives in one entry, found by id through a hash table, and sits in
 * at most one ordered structure: the due-time heap (scheduled, retrying), the
 * ready FIFO (enqueued), the finished FIFO (succeeded, cancelled) or the dead
 * FIFO; running jobs sit in none. Every job also has a slot in the creation
 * index, an array sorted by (created_at, arrival) that list requests page
 * through without sorting anything. One mutex, st->mu, guards it all:
 * critical sections are short and never call out of these two files. */
#ifndef JOBD_PROC_INLINE_H
#define JOBD_PROC_INLINE_H

#include <stddef.h>

#include "../util/hash.h"
#include "../util/heap.h"
#include "../util/list.h"
#include "../util/timeindex.h"
#include "job.h"
#include "pipeline.h"

typedef enum inline_fifo_id { IL_NONE, IL_READY, IL_FINISHED, IL_DEAD, IL_COUNT } inline_fifo_id;

typedef struct ientry {
    job_t *job;                  /* owned */
    hash_node hnode;             /* by job->id */
    list_node lnode;             /* in FIFO `in` */
    inline_fifo_id in;
    heap_node due;               /* by run_at, while scheduled or retrying */
    uint64_t dead_seq;           /* order of death, the dead list's cursor */
    uint64_t seq;                /* order of arrival, its key in the creation index */
    proc_t *self;                /* for the run's done callback */
} ientry;

/* The entry that holds a container's node. */
#define INLINE_ENTRY(node, member) \
    ((ientry *)(void *)((char *)(node) - offsetof(ientry, member)))

typedef struct inline_store {
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* work for the dispatcher, or stop */
    hash_t by_id;                /* every entry */
    heap_t due;                  /* scheduled and retrying entries by run_at */
    list_t fifos[IL_COUNT];
    timeindex_t created;         /* every entry by (created_at, seq), oldest first */
    uint64_t seq;                /* last seq given */
    size_t max_jobs;             /* waiting jobs at most */
    size_t counts[JOB_STATE_COUNT];
    uint64_t processed_total, failed_total, trimmed_total;
    uint64_t dead_seq;           /* last dead_seq given */
    size_t finished_trimmed;     /* not yet logged (logged at most once a minute) */
    int64_t trim_logged_at;      /* unix ms */
    bool paused, stopping, started;
    pthread_t dispatcher;
    /* Flow limits of this process (README, Rate limits...). */
    double rate_tat;             /* GCRA theoretical arrival time, mono ms */
    int64_t drain_t;             /* start of the current drain window, mono ms */
    long drain_c, drain_p;       /* starts in the current window and in the one before */
} inline_store;

/* proc_inline.c; each called with st->mu held. */

/* The entry of that id, or NULL; borrowed, valid while st->mu is held. */
ientry *inline_find(inline_store *st, const char *id);

/* The oldest entry of FIFO id, or NULL; borrowed as inline_find's. */
ientry *inline_fifo_head(const inline_store *st, inline_fifo_id id);

/* Moves e to where state s belongs (counts, heap or FIFO) and wakes the
 * dispatcher. */
void inline_place(inline_store *st, ientry *e, job_state s);

/* Removes e from every structure and frees it with its job. */
void inline_drop(inline_store *st, ientry *e);

/* proc_inline_read.c */

/* The store side of the API: get, list, cancel, pause, info, the dead set
 * and the gauges, each from memory under st->mu. */
extern const store_ops inline_store_ops;

#endif
