/* proc_redis.c - the redis processor: durable store and fetch loop (issue 3).
 * First version: registers the kind so the pipeline links; the store follows. */
#include <string.h>

#include "pipeline.h"

static int proc_redis_check(const json_t *opts, char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)opts, key, val) {
        if (strcmp(key, "poll_interval") == 0) {
            if (!json_is_number(val) || json_number_value(val) <= 0) {
                snprintf(err, errlen, "poll_interval: must be a number > 0");
                return -1;
            }
            continue;
        }
        snprintf(err, errlen, "unknown option \"%s\"", key);
        return -1;
    }
    return 0;
}

static proc_t *proc_redis_create(jobd_t *ctx, queue_t *q, const json_t *opts, proc_t *delegate,
                                 char *err, size_t errlen)
{
    (void)ctx, (void)q, (void)opts, (void)delegate;
    snprintf(err, errlen, "redis processor: not implemented yet");
    return NULL;
}

const proc_kind proc_redis_kind = {"redis", true, proc_redis_check, proc_redis_create};
