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
 * given, its id, queue, type and attempt are part of the line. Thread-safe:
 * each line is written with a single write(). */
void log_event(log_level level, const char *event, const job_t *job, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
