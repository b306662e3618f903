/* metrics.c - the registry of counters and histograms, and the Prometheus
 * text format 0.0.4 writer. Every update is a relaxed atomic add on memory
 * owned by one queue (or one route and status): nothing on the submit and
 * run paths takes a lock, and the scrape reads the atomics as they are (a
 * histogram's count may lead its buckets by a few observations, as with any
 * lock-free Prometheus client). */
#include "metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Buckets (upper bounds) of the duration histograms, in seconds: HTTP answers
 * take well under a millisecond, jobs up to minutes. */
static const double metrics_seconds_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                            0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                            5,      10,    30,     60,    300};
/* Buckets of jobd_aggregate_batch_jobs, in jobs (a batch holds at most limits.max_batch). */
static const double metrics_batch_le[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};

#define METRICS_NLE(a) (sizeof(a) / sizeof(a)[0])
#define METRICS_BUCKETS_MAX METRICS_NLE(metrics_seconds_le)
/* Distinct error codes counted per queue, and statuses per route: the codes
 * of the API and the statuses of one route are fewer; a value past the table
 * is not counted rather than letting the label set grow. */
#define METRICS_CODES 16
#define METRICS_STATUSES 16
/* Sums are kept in millionths (of a second, or of a job) as integers, so
 * that they too are a plain atomic add. */
#define METRICS_SUM_SCALE 1e6

typedef struct metrics_hist {
    atomic_uint_least64_t bucket[METRICS_BUCKETS_MAX + 1]; /* per bucket, not cumulative; last: +Inf */
    atomic_uint_least64_t count;
    atomic_uint_least64_t sum; /* in millionths */
} metrics_hist;

/* One error code's count; code is claimed (NULL -> a static string) once. */
typedef struct metrics_code {
    _Atomic(const char *) code;
    atomic_uint_least64_t n;
} metrics_code;

/* One status code's histogram of a route; status is claimed (0 -> it) once. */
typedef struct metrics_status {
    atomic_int status;
    metrics_hist h;
} metrics_status;

/* The per-queue process counters, in the order they are written. */
enum metrics_counter {
    MC_SUBMITTED,
    MC_STARTED,
    MC_SUCCEEDED,
    MC_FAILED,
    MC_RETRIED,
    MC_DEAD,
    MC_CANCELLED,
    MC_REPLAYED,
    MC_COUNT
};

static const struct {
    const char *name, *help;
} metrics_counters[MC_COUNT] = {
    [MC_SUBMITTED] = {"jobd_jobs_submitted_total", "Jobs this process stored (submissions, periodic ticks and triggers), per queue."},
    [MC_STARTED] = {"jobd_jobs_started_total", "Runs this process started, per queue."},
    [MC_SUCCEEDED] = {"jobd_jobs_succeeded_total", "Runs of this process that succeeded."},
    [MC_FAILED] = {"jobd_jobs_failed_total",
                   "Runs of this process that failed (attempts, retryable or not), and runs of "
                   "dead processes whose leases this process took back."},
    [MC_RETRIED] = {"jobd_jobs_retried_total",
                    "Failed runs, and leases taken back with an attempt counted, whose job waits "
                    "for another attempt."},
    [MC_DEAD] = {"jobd_jobs_dead_total",
                 "Jobs this process moved to the dead set: after a run, on taking a lease back "
                 "with the last attempt, or at the fetch (unreadable record)."},
    [MC_CANCELLED] = {"jobd_jobs_cancelled_total", "Jobs cancelled through this process."},
    [MC_REPLAYED] = {"jobd_jobs_replayed_total",
                     "Submissions this process answered as idempotent replays of a known job."},
};

typedef struct metrics_queue {
    atomic_uint_least64_t c[MC_COUNT];
    metrics_code refused[METRICS_CODES];
    metrics_hist wait;
    metrics_hist batch;
    metrics_hist *run; /* one per configured handler type, in m->runs */
} metrics_queue;

struct metrics {
    const config_t *cfg; /* borrowed */
    metrics_queue *queues; /* owned, cfg->n_queues */
    metrics_hist *runs;    /* owned, n_queues x n_handlers */
    metrics_status http[ROUTE_COUNT][METRICS_STATUSES];
    double start_time; /* unix seconds */
    pthread_mutex_t cache_mu;
    metrics_buf cache; /* under cache_mu */
    int64_t cache_at;  /* mono ms of the fill; under cache_mu */
    bool cache_ok;     /* under cache_mu */
};

/* The label values of route ids: templates, never raw paths. */
static const struct {
    const char *method, *path;
} metrics_routes[ROUTE_COUNT] = {
    [ROUTE_NOT_FOUND] = {"any", "unmatched"},
    [ROUTE_METHOD_NOT_ALLOWED] = {"any", "unmatched"},
    [ROUTE_HEALTHZ] = {"GET", "/healthz"},
    [ROUTE_READYZ] = {"GET", "/readyz"},
    [ROUTE_METRICS] = {"GET", "/metrics"},
    [ROUTE_DASHBOARD] = {"GET", "/"},
    [ROUTE_QUEUES] = {"GET", "/queues"},
    [ROUTE_QUEUE] = {"GET", "/queues/{q}"},
    [ROUTE_QUEUE_PAUSE] = {"POST", "/queues/{q}/pause"},
    [ROUTE_QUEUE_RESUME] = {"POST", "/queues/{q}/resume"},
    [ROUTE_JOBS_SUBMIT] = {"POST", "/queues/{q}/jobs"},
    [ROUTE_JOBS_LIST] = {"GET", "/queues/{q}/jobs"},
    [ROUTE_JOB_GET] = {"GET", "/queues/{q}/jobs/{id}"},
    [ROUTE_JOB_CANCEL] = {"DELETE", "/queues/{q}/jobs/{id}"},
    [ROUTE_DEAD_LIST] = {"GET", "/queues/{q}/dead"},
    [ROUTE_DEAD_RETRY] = {"POST", "/queues/{q}/dead/{id}/retry"},
    [ROUTE_DEAD_DELETE] = {"DELETE", "/queues/{q}/dead/{id}"},
};

metrics_t *metrics_new(const config_t *cfg)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = cfg;
    pthread_mutex_init(&m->cache_mu, NULL);
    size_t nq = cfg->n_queues, nt = cfg->n_handlers;
    m->queues = calloc(nq ? nq : 1, sizeof *m->queues);
    m->runs = calloc(nq * nt > 0 ? nq * nt : 1, sizeof *m->runs);
    if (!m->queues || !m->runs) {
        metrics_free(m);
        return NULL;
    }
    for (size_t i = 0; i < nq; i++)
        m->queues[i].run = m->runs + i * nt;
    m->start_time = (double)jobd_now_ms() / 1000.0;
    return m;
}

void metrics_free(metrics_t *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->cache_mu);
    metrics_buf_free(&m->cache);
    free(m->queues);
    free(m->runs);
    free(m);
}

/* --- recording --- */

static void metrics_add(atomic_uint_least64_t *a, uint64_t n)
{
    atomic_fetch_add_explicit(a, n, memory_order_relaxed);
}

static void metrics_observe(metrics_hist *h, const double *le, size_t nle, double v)
{
    size_t i = 0;
    while (i < nle && v > le[i])
        i++;
    metrics_add(&h->bucket[i], 1);
    metrics_add(&h->count, 1);
    metrics_add(&h->sum, v > 0 ? (uint64_t)(v * METRICS_SUM_SCALE + 0.5) : 0);
}

/* The queue of qc, or NULL when qc is not one of the registry's config. */
static metrics_queue *metrics_queue_of(metrics_t *m, const queue_cfg *qc)
{
    if (!m || !qc || qc < m->cfg->queues || qc >= m->cfg->queues + m->cfg->n_queues)
        return NULL;
    return &m->queues[qc - m->cfg->queues];
}

static void metrics_count(metrics_t *m, const queue_cfg *qc, enum metrics_counter c)
{
    metrics_queue *mq = metrics_queue_of(m, qc);
    if (mq)
        metrics_add(&mq->c[c], 1);
}

void metrics_job_submitted(metrics_t *m, const queue_cfg *qc, bool replayed)
{
    metrics_count(m, qc, replayed ? MC_REPLAYED : MC_SUBMITTED);
}

void metrics_job_cancelled(metrics_t *m, const queue_cfg *qc)
{
    metrics_count(m, qc, MC_CANCELLED);
}

void metrics_job_filed(metrics_t *m, const queue_cfg *qc, job_state next)
{
    if (next == JOB_SUCCEEDED)
        metrics_count(m, qc, MC_SUCCEEDED);
    else if (next == JOB_RETRYING)
        metrics_count(m, qc, MC_RETRIED);
    else if (next == JOB_DEAD)
        metrics_count(m, qc, MC_DEAD);
}

void metrics_leases_ended(metrics_t *m, const queue_cfg *qc, long n, long dead, bool lost)
{
    metrics_queue *mq = metrics_queue_of(m, qc);
    if (!mq || n <= 0)
        return;
    if (lost)
        metrics_add(&mq->c[MC_FAILED], (uint64_t)n);
    if (dead > 0)
        metrics_add(&mq->c[MC_DEAD], (uint64_t)dead);
    if (n > dead)
        metrics_add(&mq->c[MC_RETRIED], (uint64_t)(n - dead));
}

void metrics_job_started(metrics_t *m, const queue_cfg *qc, double wait)
{
    metrics_queue *mq = metrics_queue_of(m, qc);
    if (!mq)
        return;
    metrics_add(&mq->c[MC_STARTED], 1);
    metrics_observe(&mq->wait, metrics_seconds_le, METRICS_NLE(metrics_seconds_le),
                    wait > 0 ? wait : 0);
}

void metrics_job_ran(metrics_t *m, const queue_cfg *qc, const char *type, double run, bool ok)
{
    metrics_queue *mq = metrics_queue_of(m, qc);
    if (!mq)
        return;
    if (!ok)
        metrics_add(&mq->c[MC_FAILED], 1);
    for (size_t t = 0; t < m->cfg->n_handlers; t++)
        if (strcmp(m->cfg->handlers[t].type, type) == 0) {
            metrics_observe(&mq->run[t], metrics_seconds_le, METRICS_NLE(metrics_seconds_le),
                            run);
            break;
        }
}

void metrics_batch(metrics_t *m, const queue_cfg *qc, size_t n)
{
    metrics_queue *mq = metrics_queue_of(m, qc);
    if (mq)
        metrics_observe(&mq->batch, metrics_batch_le, METRICS_NLE(metrics_batch_le), (double)n);
}

void metrics_submit_refused(metrics_t *m, const char *queue, const char *code)
{
    if (!m || !queue || !code)
        return;
    const queue_cfg *qc = config_queue(m->cfg, queue);
    metrics_queue *mq = metrics_queue_of(m, qc);
    if (!mq)
        return;
    for (size_t i = 0; i < METRICS_CODES; i++) {
        metrics_code *slot = &mq->refused[i];
        const char *have = atomic_load_explicit(&slot->code, memory_order_acquire);
        if (!have && atomic_compare_exchange_strong(&slot->code, &have, code))
            have = code;
        if (strcmp(have, code) == 0) {
            metrics_add(&slot->n, 1);
            return;
        }
    }
}

void metrics_http_request(metrics_t *m, route_id route, int status, double seconds)
{
    if (!m || (unsigned)route >= ROUTE_COUNT)
        return;
    for (size_t i = 0; i < METRICS_STATUSES; i++) {
        metrics_status *slot = &m->http[route][i];
        int have = atomic_load_explicit(&slot->status, memory_order_acquire);
        if (have == 0 && atomic_compare_exchange_strong(&slot->status, &have, status))
            have = status;
        if (have == status) {
            metrics_observe(&slot->h, metrics_seconds_le, METRICS_NLE(metrics_seconds_le),
                            seconds);
            return;
        }
    }
}

/* --- the text buffer --- */

static void metrics_put(metrics_buf *b, const char *s, size_t n)
{
    jsonw_raw(b, s, n);
}

void metrics_printf(metrics_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        metrics_put(b, small, (size_t)n);
        return;
    }
    if (!jsonw_grow(b, (size_t)n)) /* room for n bytes and vsnprintf's NUL */
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void metrics_buf_free(metrics_buf *b)
{
    free(b->p);
    *b = (metrics_buf){0};
}

void metrics_family(metrics_buf *b, const char *name, const char *type, const char *help)
{
    metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_label(metrics_buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            metrics_put(b, "\\\\", 2);
        else if (*p == '"')
            metrics_put(b, "\\\"", 2);
        else if (*p == '\n')
            metrics_put(b, "\\n", 2);
        else
            metrics_put(b, p, 1);
    }
}

/* A sample's value: integers without a fraction, the rest with enough digits. */
static void metrics_value(metrics_buf *b, double v)
{
    if (v == (double)(long long)v && v > -1e15 && v < 1e15)
        metrics_printf(b, " %lld\n", (long long)v);
    else
        metrics_printf(b, " %.9g\n", v);
}

void metrics_queue_sample(metrics_buf *b, const char *name, const char *queue, double value)
{
    metrics_printf(b, "%s", name);
    if (queue) {
        metrics_put(b, "{queue=\"", 8);
        metrics_label(b, queue);
        metrics_put(b, "\"}", 2);
    }
    metrics_value(b, value);
}

static uint64_t metrics_get(atomic_uint_least64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* The samples of one histogram series; labels is the text inside the braces
 * (without le), already escaped. */
static void metrics_write_hist(metrics_buf *b, const char *name, const char *labels,
                               metrics_hist *h, const double *le, size_t nle)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= nle; i++) {
        cum += metrics_get(&h->bucket[i]);
        if (i < nle)
            metrics_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, le[i],
                           (unsigned long long)cum);
        else
            metrics_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                           (unsigned long long)cum);
    }
    metrics_printf(b, "%s_sum{%s} %.6f\n", name, labels,
                   (double)metrics_get(&h->sum) / METRICS_SUM_SCALE);
    /* The count is the +Inf bucket, so that the two always agree. */
    metrics_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

/* `queue="q"` (and `,type="t"` when type is not NULL), escaped, into out. */
static void metrics_queue_labels(metrics_buf *out, const char *queue, const char *type)
{
    metrics_put(out, "queue=\"", 7);
    metrics_label(out, queue);
    metrics_put(out, "\"", 1);
    if (type) {
        metrics_put(out, ",type=\"", 7);
        metrics_label(out, type);
        metrics_put(out, "\"", 1);
    }
}

static void metrics_write_counters(metrics_t *m, metrics_buf *b)
{
    const config_t *cfg = m->cfg;
    for (int c = 0; c < MC_COUNT; c++) {
        metrics_family(b, metrics_counters[c].name, "counter", metrics_counters[c].help);
        for (size_t q = 0; q < cfg->n_queues; q++)
            metrics_queue_sample(b, metrics_counters[c].name, cfg->queues[q].name,
                                 (double)metrics_get(&m->queues[q].c[c]));
    }
    metrics_family(b, "jobd_submissions_refused_total", "counter",
                   "Submissions this process refused, per queue and error code.");
    for (size_t q = 0; q < cfg->n_queues; q++)
        for (size_t i = 0; i < METRICS_CODES; i++) {
            metrics_code *slot = &m->queues[q].refused[i];
            const char *code = atomic_load_explicit(&slot->code, memory_order_acquire);
            if (!code)
                break;
            metrics_printf(b, "jobd_submissions_refused_total{queue=\"");
            metrics_label(b, cfg->queues[q].name);
            metrics_printf(b, "\",code=\"");
            metrics_label(b, code);
            metrics_printf(b, "\"} %llu\n", (unsigned long long)metrics_get(&slot->n));
        }
}

/* One family of per-queue histograms: each queue's hist at offset off of metrics_queue. */
static void metrics_write_queue_hists(metrics_t *m, metrics_buf *b, const char *name,
                                      const char *help, size_t off, const double *le, size_t nle)
{
    metrics_family(b, name, "histogram", help);
    metrics_buf labels = {0};
    for (size_t q = 0; q < m->cfg->n_queues; q++) {
        metrics_hist *h = (metrics_hist *)(void *)((char *)&m->queues[q] + off);
        if (!metrics_get(&h->count))
            continue;
        labels.len = 0;
        metrics_queue_labels(&labels, m->cfg->queues[q].name, NULL);
        const char *lab = jsonw_finish(&labels, NULL);
        metrics_write_hist(b, name, lab ? lab : "", h, le, nle);
    }
    b->oom |= labels.oom;
    metrics_buf_free(&labels);
}

static void metrics_write_hists(metrics_t *m, metrics_buf *b)
{
    const config_t *cfg = m->cfg;
    const char *run = "jobd_job_run_seconds";
    metrics_family(b, run, "histogram",
                   "How long runs of this process took, per queue and job type (handler).");
    metrics_buf labels = {0};
    for (size_t q = 0; q < cfg->n_queues; q++)
        for (size_t t = 0; t < cfg->n_handlers; t++) {
            metrics_hist *h = &m->queues[q].run[t];
            if (!metrics_get(&h->count))
                continue;
            labels.len = 0;
            metrics_queue_labels(&labels, cfg->queues[q].name, cfg->handlers[t].type);
            const char *lab = jsonw_finish(&labels, NULL);
            metrics_write_hist(b, run, lab ? lab : "", h, metrics_seconds_le,
                               METRICS_NLE(metrics_seconds_le));
        }
    b->oom |= labels.oom;
    metrics_buf_free(&labels);
    metrics_write_queue_hists(m, b, "jobd_job_wait_seconds",
                              "How long jobs waited from their due time to their start in this "
                              "process, per queue.",
                              offsetof(metrics_queue, wait), metrics_seconds_le,
                              METRICS_NLE(metrics_seconds_le));
    metrics_write_queue_hists(m, b, "jobd_aggregate_batch_jobs",
                              "Jobs per batch the aggregate processor handed on, per queue.",
                              offsetof(metrics_queue, batch), metrics_batch_le,
                              METRICS_NLE(metrics_batch_le));
    const char *http = "jobd_http_request_seconds";
    metrics_family(b, http, "histogram",
                   "How long this process took to answer HTTP requests, per route template, "
                   "method and status code.");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (size_t i = 0; i < METRICS_STATUSES; i++) {
            metrics_status *slot = &m->http[r][i];
            int status = atomic_load_explicit(&slot->status, memory_order_acquire);
            if (!status)
                break;
            char lab[128];
            snprintf(lab, sizeof lab, "route=\"%s\",method=\"%s\",code=\"%d\"",
                     metrics_routes[r].path, metrics_routes[r].method, status);
            metrics_write_hist(b, http, lab, &slot->h, metrics_seconds_le,
                               METRICS_NLE(metrics_seconds_le));
        }
}

/* The number of open descriptors (entries of /proc/self/fd but the one
 * reading it), or -1 when it cannot be read. */
static long metrics_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* Resident set size in bytes (/proc/self/statm), or -1. */
static double metrics_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    unsigned long size = 0, resident = 0;
    int got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return got == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : -1;
}

static void metrics_write_process(metrics_t *m, metrics_buf *b)
{
    double rss = metrics_rss();
    if (rss >= 0) {
        metrics_family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        metrics_queue_sample(b, "process_resident_memory_bytes", NULL, rss);
    }
    long fds = metrics_open_fds();
    if (fds >= 0) {
        metrics_family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        metrics_queue_sample(b, "process_open_fds", NULL, (double)fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        metrics_family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        metrics_queue_sample(b, "process_max_fds", NULL, (double)rl.rlim_cur);
    }
    struct timespec cpu;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0) {
        metrics_family(b, "process_cpu_seconds_total", "counter",
                       "Total user and system CPU time spent in seconds.");
        metrics_printf(b, "process_cpu_seconds_total %.6f\n",
                       (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
    }
    metrics_family(b, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.");
    metrics_printf(b, "process_start_time_seconds %.3f\n", m->start_time);
    metrics_family(b, "jobd_build_info", "gauge", "The jobd version of this process (always 1).");
    metrics_printf(b, "jobd_build_info{version=\"%s\"} 1\n", JOBD_VERSION);
}

void metrics_write(metrics_t *m, metrics_buf *b)
{
    metrics_write_counters(m, b);
    metrics_write_hists(m, b);
    metrics_write_process(m, b);
}

void metrics_cached(metrics_t *m, int64_t max_age_ms, metrics_buf *out,
                    void (*fill)(metrics_buf *b, void *arg), void *arg)
{
    pthread_mutex_lock(&m->cache_mu);
    int64_t now = jobd_mono_ms();
    if (!m->cache_ok || now - m->cache_at >= max_age_ms) {
        m->cache.len = 0;
        m->cache.oom = false;
        fill(&m->cache, arg);
        m->cache_at = jobd_mono_ms();
        m->cache_ok = !m->cache.oom;
    }
    if (m->cache_ok && m->cache.p)
        metrics_put(out, m->cache.p, m->cache.len);
    else if (!m->cache_ok)
        out->oom = true;
    pthread_mutex_unlock(&m->cache_mu);
}
