/* log.h - one line per event on stderr, text or JSON. Never pass secrets. */
#ifndef JOBD_LOG_H
#define JOBD_LOG_H

#include "jobd.h"

typedef enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Chooses the format once at start (before threads): json = one JSON object a line. */
void log_set_json(bool json);

/* Drops events below min (default LOG_INFO). Set once at start, like the format. */
void log_set_level(log_level min);

/* Logs an event ("job.succeeded", "http.start", ...). job may be NULL; when
 * given, its id, queue, type and attempt are part of the line, and its
 * trace_id when it has a trace context. Thread-safe:
 * each line is written with a single write(). */
void log_event(log_level level, const char *event, const job_t *job, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* True when events of level are written (cheap): for lines whose arguments
 * cost something to gather. */
bool log_enabled(log_level level);

/* Logs an event about one HTTP request: as log_event (job may be NULL), its
 * line also carrying request_id (the answer's X-Request-Id; NULL = none). */
void log_request(log_level level, const char *event, const char *request_id, const job_t *job,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
