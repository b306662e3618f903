/* redis_gauges.h - the store gauges of GET /metrics for many Redis queues
 * in one round trip (queues/lua/gauges.lua). */
#ifndef JOBD_REDIS_GAUGES_H
#define JOBD_REDIS_GAUGES_H

#include "pipeline.h"
#include "redis_model.h"

/* Reads the gauges of the queues of models[0..n) (borrowed) on c into
 * out[0..n) (ok set on each) with one script call. 0, or -1 with 503 in err
 * when the connection failed or Redis answered an error (out untouched). */
int redis_gauges_read(redisContext *c, const redis_model *const *models, size_t n,
                      store_gauges *out, jobd_error *err);

#endif
