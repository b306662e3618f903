/* log.c - one line per event on stderr, text or JSON. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/rfc3339.h"
#include "../util/utf8.h"

/* The one exception to "no global mutable state": format and level are set
 * once by main before any thread starts and only read afterwards, so they need
 * no lock, and a log call must work from code that has no jobd_t at hand
 * (config loading, signal setup, processors' threads). */
static bool log_json_format;
static log_level log_min_level = LOG_INFO;

static const char *const log_level_text[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const log_level_json[] = {"debug", "info", "warn", "error"};

void log_set_json(bool json)
{
    log_json_format = json;
}

void log_set_level(log_level min)
{
    log_min_level = min;
}

bool log_enabled(log_level level)
{
    return level >= log_min_level;
}

/* The attempt a line speaks of: while a job runs, the run in progress. */
static int log_attempt(const job_t *job)
{
    return job->state == JOB_RUNNING ? job->attempts + 1 : job->attempts;
}

/* Writes all of line to stderr; a pipe takes it in one write() unless interrupted. */
static void log_write(const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        line += n;
        len -= (size_t)n;
    }
}

/* One event is one line: control characters (a program's stderr, a newline
 * in a message) become spaces, so nothing can forge a line of its own. */
static void log_flatten(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

/* What a line says besides its event and message. */
typedef struct log_about {
    const job_t *job;       /* NULL = no job */
    const char *request_id; /* NULL = no request */
    char trace_id[TRACE_ID_LEN + 1]; /* "" = none */
} log_about;

static char *log_text_line(const char *ts, log_level level, const char *event,
                           const log_about *a, const char *msg)
{
    char *line = NULL, *head = NULL;
    const job_t *job = a->job;
    int n = job ? asprintf(&head, "%s %-5s %s id=%s queue=%s type=%s attempt=%d", ts,
                           log_level_text[level], event, job->id, job->queue, job->type,
                           log_attempt(job))
                : asprintf(&head, "%s %-5s %s", ts, log_level_text[level], event);
    if (n < 0)
        return NULL;
    n = asprintf(&line, "%s%s%s%s%s%s%s", head, a->trace_id[0] ? " trace_id=" : "", a->trace_id,
                 a->request_id ? " request_id=" : "", a->request_id ? a->request_id : "",
                 msg[0] ? " " : "", msg);
    free(head);
    if (n < 0)
        return NULL;
    log_flatten(line);
    return line;
}

static char *log_json_line(const char *ts, log_level level, const char *event,
                           const log_about *a, const char *msg)
{
    const job_t *job = a->job;
    json_t *o = json_object();
    int rc = 0;
    rc |= json_object_set_new(o, "ts", json_string(ts));
    rc |= json_object_set_new(o, "level", json_string(log_level_json[level]));
    rc |= json_object_set_new(o, "event", utf8_json_string(event));
    if (job) {
        rc |= json_object_set_new(o, "id", json_string(job->id));
        rc |= json_object_set_new(o, "queue", json_string(job->queue));
        rc |= json_object_set_new(o, "type", utf8_json_string(job->type));
        rc |= json_object_set_new(o, "attempt", json_integer(log_attempt(job)));
    }
    if (a->trace_id[0])
        rc |= json_object_set_new(o, "trace_id", json_string(a->trace_id));
    if (a->request_id)
        rc |= json_object_set_new(o, "request_id", utf8_json_string(a->request_id));
    rc |= json_object_set_new(o, "msg", utf8_json_string(msg));
    char *line = rc ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return line;
}

/* One line about job and request_id (either may be NULL). */
static void log_vevent(log_level level, const char *event, const job_t *job,
                       const char *request_id, const char *fmt, va_list ap)
{
    if (level < log_min_level)
        return;
    log_about about = {.job = job, .request_id = request_id};
    if (job && job->trace)
        trace_id_of(job->trace->parent, about.trace_id);
    char *msg = NULL, ts[RFC3339_BUF];
    if (fmt && vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    if ((unsigned)level > LOG_ERROR)
        level = LOG_ERROR;
    rfc3339_format(jobd_now_ms(), ts);
    const char *text = msg ? msg : "";
    const char *name = event ? event : "";
    char *line = log_json_format ? log_json_line(ts, level, name, &about, text)
                                 : log_text_line(ts, level, name, &about, text);
    free(msg);
    if (!line)
        return;
    size_t len = strlen(line);
    char *full = realloc(line, len + 2);
    if (full) {
        full[len] = '\n';
        full[len + 1] = '\0';
        log_write(full, len + 1);
    }
    free(full ? full : line);
}

void log_event(log_level level, const char *event, const job_t *job, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vevent(level, event, job, NULL, fmt, ap);
    va_end(ap);
}

void log_request(log_level level, const char *event, const char *request_id, const job_t *job,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vevent(level, event, job, request_id, fmt, ap);
    va_end(ap);
}
