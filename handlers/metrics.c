/* metrics.c - GET /metrics: the Prometheus text format 0.0.4 (README,
 * Metrics). The process's counters and histograms come from the registry
 * (server/metrics.h); the gauges of the stores are read for every queue in
 * one go (one Redis round trip) and kept METRICS_STORE_CACHE_MS, so that
 * many scrapers do not multiply the load on Redis. */
#include <stdlib.h>

#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "../queues/store.h"
#include "../queues/worker.h"
#include "../server/metrics.h"
#include "handlers.h"

#define METRICS_STORE_CACHE_MS 1000
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What the Redis-backed gauges' HELP says once: they are the store's, not
 * this process's. */
#define METRICS_SHARED " Read from the store: for Redis, shared by every jobd process, so aggregate with max, not sum."

/* The store gauges of every queue: metrics_cached's fill. */
static void metrics_store_fill(metrics_buf *b, void *arg)
{
    jobd_t *ctx = arg;
    size_t n = ctx->n_queues;
    store_gauges *g = calloc(n ? n : 1, sizeof *g);
    if (!g) {
        b->oom = true;
        return;
    }
    store_gauges_all(ctx, g);
    static const job_state states[] = {JOB_SCHEDULED, JOB_ENQUEUED, JOB_RUNNING, JOB_RETRYING,
                                       JOB_DEAD};
    metrics_family(b, "jobd_queue_jobs", "gauge", "Jobs of the queue in each state now." METRICS_SHARED);
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; g[i].ok && s < sizeof states / sizeof states[0]; s++) {
            metrics_printf(b, "jobd_queue_jobs{queue=\"");
            metrics_label(b, ctx->queues[i]->cfg->name);
            metrics_printf(b, "\",state=\"%s\"} %lld\n", job_state_name(states[s]),
                           g[i].counts[states[s]]);
        }
    metrics_family(b, "jobd_queue_paused", "gauge", "1 when the queue is paused." METRICS_SHARED);
    for (size_t i = 0; i < n; i++)
        if (g[i].ok)
            metrics_queue_sample(b, "jobd_queue_paused", ctx->queues[i]->cfg->name, g[i].paused);
    metrics_family(b, "jobd_queue_latency_seconds", "gauge",
                   "Age of the oldest enqueued job since it was due, 0 when none." METRICS_SHARED);
    for (size_t i = 0; i < n; i++)
        if (g[i].ok)
            metrics_queue_sample(b, "jobd_queue_latency_seconds", ctx->queues[i]->cfg->name,
                                 g[i].latency);
    free(g);
}

/* One number of a processor's stats, or -1 when absent. */
static double metrics_stat(json_t *stats, const char *key)
{
    json_t *v = json_object_get(stats, key);
    return json_is_number(v) ? json_number_value(v) : json_is_boolean(v) ? json_is_true(v) : -1;
}

/* Gauges of this process: workers, Redis links, aggregate buffers. */
static void metrics_process_gauges(jobd_t *ctx, metrics_buf *b)
{
    int size = 0, busy = 0;
    if (ctx->pool)
        worker_pool_counts(ctx->pool, &size, &busy);
    metrics_family(b, "jobd_workers", "gauge", "Workers of this process running a job (busy) or not (idle).");
    metrics_printf(b, "jobd_workers{state=\"busy\"} %d\njobd_workers{state=\"idle\"} %d\n", busy,
                   size - busy);
    double up = -1, reconnects = 0;
    metrics_family(b, "jobd_aggregate_buffered_jobs", "gauge",
                   "Jobs the aggregate processor of this process holds, not yet handed on.");
    for (size_t i = 0; i < ctx->n_queues; i++) {
        queue_t *q = ctx->queues[i];
        json_t *agg = pipeline_proc_stats(q, "aggregate");
        if (agg)
            metrics_queue_sample(b, "jobd_aggregate_buffered_jobs", q->cfg->name,
                                 metrics_stat(agg, "buffered"));
        json_decref(agg);
        json_t *redis = pipeline_proc_stats(q, "redis");
        if (redis) {
            double one = metrics_stat(redis, "redis_up");
            up = up < 0 || one < up ? one : up;
            reconnects += metrics_stat(redis, "reconnects");
        }
        json_decref(redis);
    }
    if (up < 0)
        return; /* no Redis queue */
    metrics_family(b, "jobd_redis_up", "gauge",
                   "1 when every Redis queue of this process reaches Redis, else 0.");
    metrics_queue_sample(b, "jobd_redis_up", NULL, up);
    metrics_family(b, "jobd_redis_reconnects_total", "counter",
                   "Times this process found Redis reachable again after it was down (summed over its Redis queues).");
    metrics_queue_sample(b, "jobd_redis_reconnects_total", NULL, reconnects);
}

void handle_metrics(http_req *req)
{
    jobd_t *ctx = req->ctx;
    if (!ctx->metrics) {
        http_errorf(req, 404, "not_found", "metrics are off (metrics.enabled is false)");
        return;
    }
    metrics_buf b = {0};
    metrics_write(ctx->metrics, &b);
    metrics_process_gauges(ctx, &b);
    metrics_cached(ctx->metrics, METRICS_STORE_CACHE_MS, &b, metrics_store_fill, ctx);
    /* NULL after an allocation failed: http_text answers 500 then. */
    http_text(req, 200, jsonw_finish(&b, NULL), METRICS_TYPE);
}
