/* main.c - jobd's process life: options, config, start, signals, shutdown. */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../handlers/handlers.h"
#include "../queues/exec.h"
#include "../queues/periodic.h"
#include "../queues/pipeline.h"
#include "../queues/worker.h"
#include "config.h"
#include "http.h"
#include "jobd.h"
#include "log.h"
#include "tls.h"
#include "metrics.h"

static const char usage[] =
    "usage: jobd [options]\n"
    "  --config FILE        config file (else $JOBD_CONFIG, else the built-in default)\n"
    "  --check-config       validate the config (and the TLS files) and exit (0 valid, 2 invalid)\n"
    "  --print-default-config  print the built-in default config and exit\n"
    "  --no-workers         API-only node: store jobs, run none (workers: 0)\n"
    "  --no-http            worker-only node: no HTTP server\n"
    "  --log-format FMT     text (default) or json\n"
    "  --verbose            also log debug events (every job start)\n"
    "  --allow-eviction     run even if Redis may evict keys (maxmemory-policy)\n"
    "  --probe URL          GET URL once (2 s at most) and exit: 0 on HTTP 200, else 1\n"
    "                       (a container HEALTHCHECK without curl); https:// URLs are\n"
    "                       verified against the system CAs, or:\n"
    "  --probe-cacert FILE  trust only the certificate(s) in FILE for --probe\n"
    "  --help, --version\n";

typedef struct jobd_opts {
    const char *config_path;
    const char *log_format;
    const char *probe_url;
    const char *probe_cacert;
    bool check_only, no_workers, no_http, allow_eviction, verbose;
} jobd_opts;

/* Parses argv into o. Returns -1 to exit 0 (help/version), 0 to run, 2 on a usage error. */
static int jobd_parse_args(int argc, char **argv, jobd_opts *o)
{
    enum { O_CHECK = 256, O_NO_WORKERS, O_NO_HTTP, O_LOG, O_EVICT, O_HELP, O_VERSION, O_DEFAULT, O_VERBOSE, O_PROBE, O_PROBE_CA };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, O_CHECK},
        {"print-default-config", no_argument, NULL, O_DEFAULT},
        {"no-workers", no_argument, NULL, O_NO_WORKERS},
        {"no-http", no_argument, NULL, O_NO_HTTP},
        {"log-format", required_argument, NULL, O_LOG},
        {"allow-eviction", no_argument, NULL, O_EVICT},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"probe", required_argument, NULL, O_PROBE},
        {"probe-cacert", required_argument, NULL, O_PROBE_CA},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config_path = optarg; break;
        case O_CHECK: o->check_only = true; break;
        case O_NO_WORKERS: o->no_workers = true; break;
        case O_NO_HTTP: o->no_http = true; break;
        case O_LOG: o->log_format = optarg; break;
        case O_EVICT: o->allow_eviction = true; break;
        case O_VERBOSE: o->verbose = true; break;
        case O_PROBE: o->probe_url = optarg; break;
        case O_PROBE_CA: o->probe_cacert = optarg; break;
        case O_DEFAULT: fputs(config_default_text(), stdout); return -1;
        case 'h':
        case O_HELP: fputs(usage, stdout); return -1;
        case 'V':
        case O_VERSION: printf("jobd %s\n", JOBD_VERSION); return -1;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "jobd: unexpected argument \"%s\"\n%s", argv[optind], usage);
        return 2;
    }
    if (o->log_format && strcmp(o->log_format, "text") != 0 && strcmp(o->log_format, "json") != 0) {
        fprintf(stderr, "jobd: --log-format: must be text or json\n");
        return 2;
    }
    return 0;
}

/* libcurl write callback: the probe needs the status only. */
static size_t jobd_probe_discard(char *p, size_t size, size_t n, void *ud)
{
    return size * n;
}

/* --probe URL: one GET for a container's HEALTHCHECK (the runtime image has
 * no curl). Reads no config, so it works whatever JOBD_CONFIG holds. The
 * deadline stays below Docker's health check timeout, so a hung jobd counts
 * as unhealthy rather than as a timed-out check. Returns the exit status:
 * 0 on HTTP 200, else 1 with the reason on stderr. An https:// URL is
 * verified (certificate and host name) against cacert, or the system CAs
 * when cacert is NULL. */
static int jobd_probe(const char *url, const char *cacert)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "jobd: probe: cannot initialise libcurl\n");
        return 1;
    }
    CURL *h = curl_easy_init();
    CURLcode rc = CURLE_FAILED_INIT;
    long status = 0;
    if (h) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* a container's http_proxy must not carry it */
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "jobd-probe/" JOBD_VERSION);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, jobd_probe_discard);
        if (cacert)
            curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
        rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
    }
    curl_global_cleanup();
    if (rc != CURLE_OK) {
        fprintf(stderr, "jobd: probe %s: %s\n", url, curl_easy_strerror(rc));
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "jobd: probe %s: HTTP %ld\n", url, status);
        return 1;
    }
    printf("jobd: probe %s: HTTP 200\n", url);
    return 0;
}

static config_t *jobd_load_config(const jobd_opts *o, char *err, size_t errlen)
{
    const char *path = o->config_path ? o->config_path : getenv("JOBD_CONFIG");
    if (path && *path)
        return config_load_file(path, getenv, &pipeline_config_checks, err, errlen);
    const char *text = config_default_text();
    return config_parse(text, strlen(text), getenv, &pipeline_config_checks, err, errlen);
}

/* Builds queues, handlers and workers into ctx. 0, or -1 with err. */
static int jobd_build(jobd_t *ctx, char *err, size_t errlen)
{
    const config_t *cfg = ctx->cfg;
    if (cfg->metrics_enabled && !(ctx->metrics = metrics_new(cfg))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(ctx->exec = exec_table_new(cfg, err, errlen)))
        return -1;
    if (cfg->workers > 0 && !(ctx->pool = worker_pool_new(cfg->workers))) {
        snprintf(err, errlen, "cannot start %d workers", cfg->workers);
        return -1;
    }
    ctx->queues = calloc(cfg->n_queues, sizeof *ctx->queues);
    if (!ctx->queues) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_queues; i++) {
        if (!(ctx->queues[i] = pipeline_build(ctx, &cfg->queues[i], err, errlen)))
            return -1;
        ctx->n_queues++;
    }
    if (!(ctx->periodic = periodic_new(ctx, err, errlen)))
        return -1;
    return 0;
}

static int jobd_start(jobd_t *ctx)
{
    for (size_t i = 0; i < ctx->n_queues; i++) {
        if (pipeline_start(ctx->queues[i]) != 0) {
            log_event(LOG_ERROR, "jobd.start_failed", NULL, "queue %s did not start",
                      ctx->queues[i]->cfg->name);
            return -1;
        }
    }
    /* In every process, whatever its options: one job per tick is the
     * store's idempotency, not a leader's. */
    if (periodic_start(ctx->periodic) != 0) {
        log_event(LOG_ERROR, "jobd.start_failed", NULL, "the periodic scheduler did not start");
        return -1;
    }
    if (!ctx->cfg->no_http && !(ctx->http = http_start(ctx, handlers_routes)))
        return -1;
    return 0;
}

/* Longest wait for SIGKILL after the shutdown deadline's SIGTERM: a
 * command's kill_grace is cut to this, so no stop grace period must allow
 * for the kill_grace of every handler. */
#define JOBD_INTERRUPT_GRACE_S 2.0
/* After that grace: time for the interrupted runs to be reaped and reported. */
#define JOBD_INTERRUPT_SLACK_MS 1000
/* Time the stores get after the interrupted runs ended to record them. */
#define JOBD_RECORD_MS 2000

/* Fires the shutdown interrupt: every running job is cut short. */
static void jobd_interrupt_fire(jobd_t *ctx)
{
    atomic_store(&ctx->interrupt.fired, true);
    if (ctx->interrupt.fd >= 0 && eventfd_write(ctx->interrupt.fd, 1) != 0)
        log_event(LOG_ERROR, "jobd.interrupt_failed", NULL,
                  "cannot wake running jobs; they see the interrupt at their next check");
}

/* Waits until the pool is idle or shutdown_timeout (deadline, mono ms) has
 * passed; at the deadline interrupts what still runs and waits for it to end
 * (the kill grace, at most JOBD_INTERRUPT_GRACE_S, plus a little). 0 when
 * nothing runs any more. */
static int jobd_wait_runs(jobd_t *ctx, int64_t deadline)
{
    if (!ctx->pool || worker_pool_wait_idle(ctx->pool, deadline) == 0)
        return 0;
    log_event(LOG_WARN, "jobd.interrupting", NULL,
              "shutdown_timeout reached: interrupting running jobs (SIGTERM to commands, SIGKILL "
              "after kill_grace, at most %gs; webhooks aborted); each counts an attempt",
              JOBD_INTERRUPT_GRACE_S);
    jobd_interrupt_fire(ctx);
    int64_t until = jobd_mono_ms() + (int64_t)(JOBD_INTERRUPT_GRACE_S * 1000) + JOBD_INTERRUPT_SLACK_MS;
    return worker_pool_wait_idle(ctx->pool, until);
}

/* SIGTERM/SIGINT: answer 503 to new jobs; let running jobs finish until
 * shutdown_timeout, then interrupt them; let the pipelines wind down (flush
 * buffers, record outcomes, give back leases, counting an attempt), then stop
 * HTTP. Returns 0 when every job ended. */
static int jobd_shutdown(jobd_t *ctx)
{
    atomic_store(&ctx->shutting_down, true);
    int64_t deadline = jobd_mono_ms() + (int64_t)(ctx->cfg->shutdown_timeout * 1000);
    log_event(LOG_INFO, "jobd.stopping", NULL, "finishing running jobs (up to %gs)",
              ctx->cfg->shutdown_timeout);
    /* No tick is enqueued once the shutdown began (a submission under way
     * still completes through its pipeline, which stops below). */
    periodic_stop(ctx->periodic);
    /* First no queue may start a job; then the runs end; then each queue
     * winds down, while its stores can still record how the runs ended.
     * Buffers (aggregate) flush on their own threads meanwhile. */
    if (ctx->pool)
        worker_pool_close(ctx->pool);
    int rc = jobd_wait_runs(ctx, deadline);
    int64_t record_by = jobd_mono_ms() + JOBD_RECORD_MS;
    for (size_t i = 0; i < ctx->n_queues; i++)
        pipeline_stop(ctx->queues[i], deadline > record_by ? deadline : record_by);
    if (ctx->http)
        http_stop(ctx->http);
    ctx->http = NULL;
    return rc;
}

/* How often the second-signal watcher looks whether main wants it gone. */
#define JOBD_WATCH_MS 100

/* Waits for SIGTERM or SIGINT (returned), or with quit (may be NULL) until
 * *quit is set (0). SIGHUP, which a terminal or a container runtime may
 * send, is logged and otherwise ignored: jobd has no log file to reopen,
 * and a hang-up must not drop running jobs. */
static int jobd_wait_signal(const sigset_t *sigs, const atomic_bool *quit)
{
    const struct timespec tick = {0, JOBD_WATCH_MS * 1000000L};
    for (;;) {
        if (quit && atomic_load(quit))
            return 0;
        int sig = quit ? sigtimedwait(sigs, NULL, &tick) : 0;
        if (!quit && sigwait(sigs, &sig) != 0)
            continue;
        if (sig <= 0)
            continue; /* the tick passed (or EINTR) */
        if (sig != SIGHUP)
            return sig;
        log_event(LOG_INFO, "jobd.sighup", NULL, "SIGHUP received and ignored (SIGTERM stops jobd)");
    }
}

/* What the thread watching for a second signal needs. main sets quit and
 * joins the thread before it frees anything. */
typedef struct jobd_impatient {
    sigset_t sigs;
    exec_table_t *exec; /* borrowed */
    atomic_bool quit;
} jobd_impatient;

/* A second SIGTERM/SIGINT during the graceful shutdown ends the process at
 * once (Ctrl-C twice), leaving running jobs' Redis leases to expire; the
 * programs of command jobs are killed first, so none outlives jobd. */
static void *jobd_second_signal(void *arg)
{
    jobd_impatient *imp = arg;
    int sig = jobd_wait_signal(&imp->sigs, &imp->quit);
    if (!sig)
        return NULL;
    log_event(LOG_WARN, "jobd.exit", NULL,
              "second %s: exiting without waiting (running programs are killed)",
              sig == SIGINT ? "SIGINT" : "SIGTERM");
    exec_table_kill_all(imp->exec);
    _exit(1);
    return NULL;
}

static void jobd_free(jobd_t *ctx)
{
    http_stop(ctx->http);
    worker_pool_free(ctx->pool); /* joins: nothing runs after this */
    if (ctx->interrupt.fd >= 0)
        close(ctx->interrupt.fd);
    periodic_free(ctx->periodic); /* the pipelines have stopped: its submissions were answered */
    for (size_t i = 0; i < ctx->n_queues; i++)
        pipeline_free(ctx->queues[i]);
    free(ctx->queues);
    exec_table_free(ctx->exec);
    metrics_free(ctx->metrics);
    ulid_destroy(&ctx->ids);
    config_free(ctx->cfg);
}

int main(int argc, char **argv)
{
    jobd_opts o = {0};
    int rc = jobd_parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (o.probe_url)
        return jobd_probe(o.probe_url, o.probe_cacert);

    /* A peer that hangs up (Redis, a webhook, a command's stdin) must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    /* Every thread inherits this mask, so only sigwait below sees these. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    char err[512] = "";
    jobd_t ctx = {.interrupt = {.fd = -1, .grace_max = JOBD_INTERRUPT_GRACE_S}};
    if (!(ctx.cfg = jobd_load_config(&o, err, sizeof err))) {
        fprintf(stderr, "jobd: config: %s\n", err);
        return 2;
    }
    if (o.check_only) {
        /* The certificate and key too, which a start reads only once it listens. */
        tls_pem pem;
        if (ctx.cfg->tls_cert_file && tls_load(ctx.cfg, &pem, err, sizeof err) != 0) {
            fprintf(stderr, "jobd: config: %s\n", err);
            config_free(ctx.cfg);
            return 2;
        }
        if (ctx.cfg->tls_cert_file)
            tls_pem_free(&pem);
        printf("config ok: %zu queues, %zu handlers\n", ctx.cfg->n_queues, ctx.cfg->n_handlers);
        config_free(ctx.cfg);
        return 0;
    }
    if (o.no_workers)
        ctx.cfg->workers = 0;
    ctx.cfg->no_http = ctx.cfg->no_http || o.no_http;
    ctx.cfg->redis_allow_eviction = ctx.cfg->redis_allow_eviction || o.allow_eviction;
    if (o.log_format)
        ctx.cfg->log_json = strcmp(o.log_format, "json") == 0;
    log_set_json(ctx.cfg->log_json);
    log_set_level(o.verbose ? LOG_DEBUG : LOG_INFO);
    json_object_seed(0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ulid_init(&ctx.ids);
    atomic_init(&ctx.shutting_down, false);
    atomic_init(&ctx.interrupt.fired, false);
    ctx.interrupt.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (jobd_build(&ctx, err, sizeof err) != 0) {
        log_event(LOG_ERROR, "jobd.start_failed", NULL, "%s", err);
        jobd_free(&ctx);
        return 1;
    }
    if (jobd_start(&ctx) != 0) {
        periodic_stop(ctx.periodic);
        for (size_t i = 0; i < ctx.n_queues; i++)
            pipeline_stop(ctx.queues[i], jobd_mono_ms());
        jobd_free(&ctx);
        return 1;
    }
    log_event(LOG_INFO, "jobd.started", NULL, "version %s, %zu queues, %d workers, http %s:%d",
              JOBD_VERSION, ctx.n_queues, ctx.cfg->workers, ctx.cfg->listen_host,
              ctx.http ? http_port(ctx.http) : 0);

    int sig = jobd_wait_signal(&sigs, NULL);
    log_event(LOG_INFO, "jobd.signal", NULL, "%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
    jobd_impatient imp = {.sigs = sigs, .exec = ctx.exec};
    atomic_init(&imp.quit, false);
    pthread_t impatient;
    bool watching = pthread_create(&impatient, NULL, jobd_second_signal, &imp) == 0;
    if (jobd_shutdown(&ctx) != 0) {
        /* Workers still run jobs (neither a program nor a webhook: those
         * ended at the interrupt) whose stores would be freed under them:
         * leave without tearing down. */
        log_event(LOG_WARN, "jobd.exit", NULL, "jobs still running after the interrupt");
        exec_table_kill_all(ctx.exec); /* should none run, let none outlive us */
        _exit(0); /* no atexit teardown either (leak checks would report what is still in use) */
    }
    if (watching) {
        /* A second signal already being handled ends the process meanwhile. */
        atomic_store(&imp.quit, true);
        pthread_join(impatient, NULL);
    }
    jobd_free(&ctx);
    curl_global_cleanup();
    log_event(LOG_INFO, "jobd.exit", NULL, "stopped cleanly");
    return 0;
}
