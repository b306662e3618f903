/* redis_read.h - the store reads of a queue in Redis: one job, pages of
 * jobs, the paused flag, the counts. They write nothing. */
#ifndef JOBD_REDIS_READ_H
#define JOBD_REDIS_READ_H

#include "redis_model.h"

/* Each returns a new reference on success, NULL with err: 404 unknown_job,
 * 400 invalid_parameter, 500, 503. */
/* The view of job id. */
json_t *redis_read_get(redisContext *c, const redis_model *m, const char *id, jobd_error *err);
/* A page of jobs newest first (state -1 = any; dead_set: the dead set,
 * newest death first), as {"jobs", "next_cursor"}. A page of enqueued or
 * succeeded jobs comes from a bounded scan and may hold fewer than limit
 * jobs with a next_cursor. */
json_t *redis_read_list(redisContext *c, const redis_model *m, int state, bool dead_set,
                        size_t limit, const char *cursor, jobd_error *err);
/* 1 paused, 0 not, -1 connection failed. */
int redis_read_paused(redisContext *c, const redis_model *m);
/* {"paused", "counts", "processed_total", "failed_total"}. */
json_t *redis_read_info(redisContext *c, const redis_model *m, jobd_error *err);

#endif
