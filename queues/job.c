/* job.c - the job model: validation of client input, views (as jansson
 * trees and as text), the executors' payload. */
#include "job.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/jsonw.h"
#include "../util/rfc3339.h"
#include "../util/utf8.h"

/* 10000-01-01T00:00:00Z: the first instant that no longer has a four-digit
 * year, so client times must stay below it to survive a format/parse trip. */
#define JOB_TIME_END 253402300800000LL
#define JOB_ATTEMPTS_LIMIT 1000
/* A year: bounds the timeout so that later conversions to ms cannot overflow. */
#define JOB_TIMEOUT_LIMIT 31536000.0

static const char *const job_state_names[JOB_STATE_COUNT] = {
    "scheduled", "enqueued", "running", "succeeded", "retrying", "dead", "cancelled",
};

/* The top-level fields of a client job (openapi.json); anything else is a typo. */
static const char *const job_fields[] = {
    "type", "args", "id", "scheduled_at", "delay", "max_attempts", "timeout",
};

/* ---- the job struct -------------------------------------------------- */

/* A new trace context (free() it) of a version-00 traceparent and a
 * tracestate (NULL = none), both checked by the caller. NULL on OOM. */
static job_trace *job_trace_new(const char *parent, const char *state)
{
    size_t n = state ? strlen(state) : 0;
    job_trace *t = malloc(sizeof *t + n + 1);
    if (!t)
        return NULL;
    snprintf(t->parent, sizeof t->parent, "%s", parent);
    memcpy(t->state, state ? state : "", n + 1);
    return t;
}

job_t *job_new(void)
{
    job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->args = json_null();
    return job;
}

job_t *job_dup(const job_t *job)
{
    job_t *copy = malloc(sizeof *copy);
    if (!copy)
        return NULL;
    *copy = *job;
    copy->args = json_incref(job->args);
    copy->last_error = NULL;
    copy->trace = NULL;
    if ((job->last_error && !(copy->last_error = strdup(job->last_error))) ||
        (job->trace && !(copy->trace = job_trace_new(job->trace->parent, job->trace->state)))) {
        job_free(copy);
        return NULL;
    }
    return copy;
}

void job_free(job_t *job)
{
    if (!job)
        return;
    json_decref(job->args);
    free(job->last_error);
    free(job->trace);
    free(job);
}

void job_set_error(job_t *job, const char *msg)
{
    free(job->last_error);
    job->last_error = NULL;
    if (!msg)
        return;
    char *out = malloc(JOB_ERROR_MAX + 1);
    if (!out)
        return;
    /* a program's stderr may hold any bytes; views must stay valid JSON */
    utf8_clean(out, JOB_ERROR_MAX + 1, msg, strlen(msg), 0);
    job->last_error = out;
}

int job_set_trace(job_t *job, const char *traceparent, const char *tracestate)
{
    char parent[TRACE_PARENT_LEN + 1];
    free(job->trace);
    job->trace = NULL;
    if (trace_parent_parse(traceparent, parent) < 0)
        return 0;
    job->trace = job_trace_new(parent, trace_state_ok(tracestate) ? tracestate : NULL);
    return job->trace ? 0 : -1;
}

/* ---- states ---------------------------------------------------------- */

const char *job_state_name(job_state s)
{
    return (unsigned)s < JOB_STATE_COUNT ? job_state_names[s] : "unknown";
}

int job_state_parse(const char *name)
{
    for (int i = 0; name && i < JOB_STATE_COUNT; i++)
        if (strcmp(name, job_state_names[i]) == 0)
            return i;
    return -1;
}

bool job_state_final(job_state s)
{
    return s == JOB_SUCCEEDED || s == JOB_DEAD || s == JOB_CANCELLED;
}

/* ---- client input ---------------------------------------------------- */

/* Fills err as 422 invalid_job naming field. Always returns -1. */
__attribute__((format(printf, 3, 4))) static int job_invalid(jobd_error *err, const char *field,
                                                             const char *fmt, ...)
{
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jobd_fail(err, 422, "invalid_job", "%s", msg);
    if (err)
        snprintf(err->field, sizeof err->field, "%s", field);
    return -1;
}

/* The C string of a JSON string of 1..max bytes without NUL, else NULL. */
static const char *job_json_str(const json_t *v, size_t max)
{
    const char *s = json_string_value(v);
    if (!s)
        return NULL;
    size_t n = json_string_length(v);
    return n >= 1 && n <= max && strlen(s) == n ? s : NULL;
}

/* An optional field: JSON null counts as absent (clients serialise nil so). */
static const json_t *job_opt(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* True when no array/object in v nests deeper than levels (v itself is 1). */
static bool job_depth_ok(const json_t *v, int levels)
{
    size_t i;
    const char *key;
    json_t *child;
    if (!json_is_array(v) && !json_is_object(v))
        return true;
    if (levels == 0)
        return false;
    if (json_is_array(v)) {
        json_array_foreach(v, i, child) {
            if (!job_depth_ok(child, levels - 1))
                return false;
        }
        return true;
    }
    json_object_foreach((json_t *)v, key, child) {
        if (!job_depth_ok(child, levels - 1))
            return false;
    }
    return true;
}

static int job_check_fields(const json_t *obj, jobd_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        size_t i = 0;
        while (i < sizeof job_fields / sizeof *job_fields && strcmp(key, job_fields[i]) != 0)
            i++;
        if (i == sizeof job_fields / sizeof *job_fields)
            return job_invalid(err, key, "unknown field \"%.64s\"", key);
    }
    return 0;
}

static int job_take_type(const json_t *obj, job_t *job, jobd_error *err)
{
    const char *type = job_json_str(json_object_get(obj, "type"), JOB_TYPE_MAX);
    if (!type)
        return job_invalid(err, "type", "field 'type' must be a string of 1-%d bytes",
                           JOB_TYPE_MAX);
    strcpy(job->type, type);
    return 0;
}

static int job_take_args(const json_t *obj, job_t *job, jobd_error *err)
{
    const json_t *args = json_object_get(obj, "args");
    if (!args)
        return 0;
    if (!job_depth_ok(args, JOB_ARGS_MAX_DEPTH))
        return job_invalid(err, "args", "field 'args' must not nest deeper than %d levels",
                           JOB_ARGS_MAX_DEPTH);
    json_decref(job->args);
    job->args = json_incref((json_t *)args); /* shared: args are never mutated */
    return 0;
}

static int job_take_id(const json_t *obj, const char *idem_key, ulid_gen *ids, job_t *job,
                       jobd_error *err)
{
    const json_t *v = job_opt(obj, "id");
    const char *id = job_json_str(v, JOB_ID_MAX);
    if (v && !name_id_ok(id))
        return job_invalid(err, "id",
                           "field 'id' must be a string of 1-%d characters of [A-Za-z0-9._:-]",
                           JOB_ID_MAX);
    if (idem_key && !name_id_ok(idem_key))
        return job_invalid(err, "Idempotency-Key",
                           "header 'Idempotency-Key' must be 1-%d characters of [A-Za-z0-9._:-]",
                           JOB_ID_MAX);
    if (id && idem_key && strcmp(id, idem_key) != 0)
        return job_invalid(err, "id", "field 'id' differs from the Idempotency-Key header");
    if (!id)
        id = idem_key;
    if (id)
        strcpy(job->id, id);
    else if (ids)
        ulid_next(ids, job->created_at, job->id);
    else
        return jobd_fail(err, 500, "internal_error", "no id generator");
    return 0;
}

/* The time the client asked for (scheduled_at, or now + delay), 0 = none. */
static int job_take_schedule(const json_t *obj, job_t *job, jobd_error *err)
{
    const json_t *at = job_opt(obj, "scheduled_at"), *delay = job_opt(obj, "delay");
    int64_t when = 0;
    if (at && delay)
        return job_invalid(err, "delay", "fields 'delay' and 'scheduled_at' exclude each other");
    if (at && (!json_is_string(at) || rfc3339_parse(json_string_value(at), &when) < 0 ||
               when <= 0 || when >= JOB_TIME_END))
        return job_invalid(err, "scheduled_at",
                           "field 'scheduled_at' must be an RFC 3339 time between 1970 and 9999, "
                           "e.g. \"2026-11-28T10:00:00Z\"");
    if (delay) {
        double secs = json_number_value(delay);
        if (!json_is_number(delay) || !(secs >= 0))
            return job_invalid(err, "delay", "field 'delay' must be a number of seconds >= 0");
        if (secs * 1000.0 >= (double)(JOB_TIME_END - job->created_at))
            return job_invalid(err, "delay", "field 'delay' must end before the year 10000");
        job->delay_ms = (int64_t)ceil(secs * 1000.0);
        when = job->created_at + job->delay_ms;
    }
    job->scheduled_at = when;
    job->run_at = when;
    return 0;
}

static int job_take_limits(const json_t *obj, job_t *job, jobd_error *err)
{
    const json_t *attempts = job_opt(obj, "max_attempts"), *timeout = job_opt(obj, "timeout");
    if (attempts) {
        json_int_t n = json_integer_value(attempts);
        if (!json_is_integer(attempts) || n < 1 || n > JOB_ATTEMPTS_LIMIT)
            return job_invalid(err, "max_attempts",
                               "field 'max_attempts' must be an integer from 1 to %d",
                               JOB_ATTEMPTS_LIMIT);
        job->max_attempts = (int)n;
    }
    if (timeout) {
        double secs = json_number_value(timeout);
        if (!json_is_number(timeout) || !(secs > 0 && secs <= JOB_TIMEOUT_LIMIT))
            return job_invalid(err, "timeout",
                               "field 'timeout' must be a number of seconds > 0 and <= %.0f",
                               JOB_TIMEOUT_LIMIT);
        job->timeout = secs;
    }
    return 0;
}

job_t *job_from_request(const json_t *obj, const char *queue, const char *idem_key,
                        ulid_gen *ids, int64_t now_ms, jobd_error *err)
{
    if (!json_is_object(obj)) {
        job_invalid(err, "", "a job must be a JSON object");
        return NULL;
    }
    if (job_check_fields(obj, err) < 0)
        return NULL;
    job_t *job = job_new();
    if (!job) {
        jobd_fail(err, 500, "internal_error", "out of memory");
        return NULL;
    }
    snprintf(job->queue, sizeof job->queue, "%s", queue ? queue : "");
    job->created_at = now_ms;
    if (job_take_type(obj, job, err) < 0 || job_take_args(obj, job, err) < 0 ||
        job_take_id(obj, idem_key, ids, job, err) < 0 || job_take_schedule(obj, job, err) < 0 ||
        job_take_limits(obj, job, err) < 0) {
        job_free(job);
        return NULL;
    }
    job->state = job->run_at > now_ms ? JOB_SCHEDULED : JOB_ENQUEUED;
    return job;
}

/* ---- views ----------------------------------------------------------- */

/* A new reference: the time as RFC 3339, or null for 0 (= none). */
static json_t *job_time_json(int64_t ms)
{
    char buf[RFC3339_BUF];
    if (ms == 0)
        return json_null();
    rfc3339_format(ms, buf);
    return json_string(buf);
}

json_t *job_view(const job_t *job)
{
    json_t *v = json_object();
    int rc = 0;
    rc |= json_object_set_new(v, "id", json_string(job->id));
    rc |= json_object_set_new(v, "queue", json_string(job->queue));
    rc |= json_object_set_new(v, "type", json_string(job->type));
    rc |= json_object_set(v, "args", job->args);
    rc |= json_object_set_new(v, "state", json_string(job_state_name(job->state)));
    rc |= json_object_set_new(v, "attempts", json_integer(job->attempts));
    rc |= json_object_set_new(v, "max_attempts",
                              job->max_attempts ? json_integer(job->max_attempts) : json_null());
    rc |= json_object_set_new(v, "created_at", job_time_json(job->created_at));
    rc |= json_object_set_new(v, "scheduled_at", job_time_json(job->scheduled_at));
    rc |= json_object_set_new(v, "started_at", job_time_json(job->started_at));
    rc |= json_object_set_new(v, "finished_at", job_time_json(job->finished_at));
    rc |= json_object_set_new(v, "last_error",
                              job->last_error ? json_string(job->last_error) : json_null());
    if (job->run_at)
        rc |= json_object_set_new(v, "run_at", job_time_json(job->run_at));
    if (job->timeout > 0)
        rc |= json_object_set_new(v, "timeout", json_real(job->timeout));
    if (job->trace) {
        char trace_id[TRACE_ID_LEN + 1];
        trace_id_of(job->trace->parent, trace_id);
        rc |= json_object_set_new(v, "trace_id", json_string(trace_id));
        rc |= json_object_set_new(v, "traceparent", json_string(job->trace->parent));
    }
    if (job->trace && job->trace->state[0])
        rc |= json_object_set_new(v, "tracestate", json_string(job->trace->state));
    if (rc) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Copies the string field key (1..size-1 bytes) into buf; -1 if not so. */
static int job_view_str(const json_t *view, const char *key, char *buf, size_t size)
{
    const char *s = job_json_str(json_object_get(view, key), size - 1);
    if (!s)
        return -1;
    strcpy(buf, s);
    return 0;
}

/* A time field: null = 0; absent is an error unless optional. */
static int job_view_time(const json_t *view, const char *key, bool optional, int64_t *ms)
{
    const json_t *v = json_object_get(view, key);
    *ms = 0;
    if (!v)
        return optional ? 0 : -1;
    if (json_is_null(v))
        return 0;
    return json_is_string(v) && rfc3339_parse(json_string_value(v), ms) == 0 ? 0 : -1;
}

/* An integer field in [min, INT_MAX]; null = 0 when nullable. */
static int job_view_int(const json_t *view, const char *key, int min, bool nullable, int *out)
{
    const json_t *v = json_object_get(view, key);
    json_int_t n = json_integer_value(v);
    *out = 0;
    if (nullable && json_is_null(v))
        return 0;
    if (!json_is_integer(v) || n < min || n > INT_MAX)
        return -1;
    *out = (int)n;
    return 0;
}

static int job_view_state(const json_t *view, job_t *job)
{
    int s = job_state_parse(json_string_value(json_object_get(view, "state")));
    if (s < 0)
        return -1;
    job->state = (job_state)s;
    return 0;
}

/* args must be present: a view always carries it, null included. */
static int job_view_args(const json_t *view, job_t *job)
{
    const json_t *args = json_object_get(view, "args");
    if (!args)
        return -1;
    json_decref(job->args);
    job->args = json_incref((json_t *)args); /* shared: args are never mutated */
    return 0;
}

/* timeout is absent when not set (0), else a number > 0. */
static int job_view_timeout(const json_t *view, job_t *job)
{
    const json_t *timeout = json_object_get(view, "timeout");
    if (timeout && !(json_is_number(timeout) && json_number_value(timeout) > 0))
        return -1;
    job->timeout = timeout ? json_number_value(timeout) : 0;
    return 0;
}

/* The trace fields are absent in records written before they existed, and
 * in jobs without a trace; trace_id is derived from traceparent. */
static int job_view_trace(const json_t *view, job_t *job)
{
    const json_t *parent = json_object_get(view, "traceparent");
    const json_t *state = json_object_get(view, "tracestate");
    if (!parent && !state)
        return 0;
    const char *text = json_string_value(state);
    char p[TRACE_PARENT_LEN + 1];
    if (trace_parent_parse(json_string_value(parent), p) < 0 ||
        (state && (!trace_state_ok(text) || strlen(text) != json_string_length(state))))
        return -1;
    free(job->trace);
    job->trace = job_trace_new(p, text);
    return job->trace ? 0 : -1;
}

static int job_view_error(const json_t *view, job_t *job)
{
    const json_t *error = json_object_get(view, "last_error");
    if (json_is_null(error))
        return 0;
    if (!json_is_string(error))
        return -1;
    job_set_error(job, json_string_value(error));
    return job->last_error ? 0 : -1;
}

job_t *job_from_view(const json_t *view)
{
    if (!json_is_object(view))
        return NULL;
    job_t *job = job_new();
    if (!job)
        return NULL;
    if (job_view_str(view, "id", job->id, sizeof job->id) < 0 || !name_id_ok(job->id) ||
        job_view_str(view, "queue", job->queue, sizeof job->queue) < 0 ||
        !name_queue_ok(job->queue) ||
        job_view_str(view, "type", job->type, sizeof job->type) < 0 ||
        job_view_state(view, job) < 0 ||
        job_view_int(view, "attempts", 0, false, &job->attempts) < 0 ||
        job_view_int(view, "max_attempts", 1, true, &job->max_attempts) < 0 ||
        job_view_time(view, "created_at", false, &job->created_at) < 0 ||
        job_view_time(view, "scheduled_at", false, &job->scheduled_at) < 0 ||
        job_view_time(view, "started_at", false, &job->started_at) < 0 ||
        job_view_time(view, "finished_at", false, &job->finished_at) < 0 ||
        job_view_time(view, "run_at", true, &job->run_at) < 0 || job_view_args(view, job) < 0 ||
        job_view_timeout(view, job) < 0 || job_view_error(view, job) < 0 ||
        job_view_trace(view, job) < 0) {
        job_free(job);
        return NULL;
    }
    return job;
}

/* ---- views as text ---------------------------------------------------- */

/* "id","queue","type","args": the head of both the view and the payload. */
static void job_text_head(jsonw *w, const job_t *job)
{
    JSONW_LIT(w, "{\"id\":");
    jsonw_cstr(w, job->id);
    JSONW_LIT(w, ",\"queue\":");
    jsonw_cstr(w, job->queue);
    JSONW_LIT(w, ",\"type\":");
    jsonw_cstr(w, job->type);
    JSONW_LIT(w, ",\"args\":");
    jsonw_json(w, job->args);
}

char *job_view_text(const job_t *job, size_t *len)
{
    jsonw w = {0};
    job_text_head(&w, job);
    JSONW_LIT(&w, ",\"state\":\"");
    jsonw_raw(&w, job_state_name(job->state), strlen(job_state_name(job->state)));
    JSONW_LIT(&w, "\",\"attempts\":");
    jsonw_int(&w, job->attempts);
    JSONW_LIT(&w, ",\"max_attempts\":");
    if (job->max_attempts)
        jsonw_int(&w, job->max_attempts);
    else
        JSONW_LIT(&w, "null");
    JSONW_LIT(&w, ",\"created_at\":");
    jsonw_time(&w, job->created_at);
    JSONW_LIT(&w, ",\"scheduled_at\":");
    jsonw_time(&w, job->scheduled_at);
    JSONW_LIT(&w, ",\"started_at\":");
    jsonw_time(&w, job->started_at);
    JSONW_LIT(&w, ",\"finished_at\":");
    jsonw_time(&w, job->finished_at);
    JSONW_LIT(&w, ",\"last_error\":");
    if (job->last_error)
        jsonw_cstr(&w, job->last_error);
    else
        JSONW_LIT(&w, "null");
    if (job->run_at) {
        JSONW_LIT(&w, ",\"run_at\":");
        jsonw_time(&w, job->run_at);
    }
    if (job->timeout > 0) {
        JSONW_LIT(&w, ",\"timeout\":");
        jsonw_real(&w, job->timeout);
    }
    if (job->trace) {
        char trace_id[TRACE_ID_LEN + 1];
        trace_id_of(job->trace->parent, trace_id);
        JSONW_LIT(&w, ",\"trace_id\":");
        jsonw_cstr(&w, trace_id);
        JSONW_LIT(&w, ",\"traceparent\":");
        jsonw_cstr(&w, job->trace->parent);
    }
    if (job->trace && job->trace->state[0]) {
        JSONW_LIT(&w, ",\"tracestate\":");
        jsonw_cstr(&w, job->trace->state);
    }
    JSONW_LIT(&w, "}");
    return jsonw_finish(&w, len);
}

char *job_payload(const job_t *job, size_t *len)
{
    jsonw w = {0};
    job_text_head(&w, job);
    JSONW_LIT(&w, ",\"attempt\":");
    jsonw_int(&w, (long long)job->attempts + 1);
    JSONW_LIT(&w, ",\"scheduled_at\":");
    jsonw_time(&w, job->scheduled_at);
    JSONW_LIT(&w, ",\"created_at\":");
    jsonw_time(&w, job->created_at);
    JSONW_LIT(&w, "}");
    return jsonw_finish(&w, len);
}

/* jansson's allocation per value (struct, refcount, allocator rounding). */
#define JOB_MEM_VALUE 48

static size_t job_json_mem(const json_t *v)
{
    size_t n = JOB_MEM_VALUE;
    const char *key;
    const json_t *item;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return n + json_string_length(v) + 1;
    case JSON_ARRAY:
        n += json_array_size(v) * sizeof(json_t *);
        json_array_foreach ((json_t *)v, i, item)
            n += job_json_mem(item);
        return n;
    case JSON_OBJECT:
        json_object_foreach ((json_t *)v, key, item)
            n += JOB_MEM_VALUE + strlen(key) + 1 + job_json_mem(item); /* hash entry and key */
        return n;
    default:
        return n;
    }
}

size_t job_mem_size(const job_t *job)
{
    return sizeof *job + (job->args ? job_json_mem(job->args) : 0) +
           (job->last_error ? strlen(job->last_error) + 1 : 0) +
           (job->trace ? sizeof *job->trace + strlen(job->trace->state) + 1 : 0);
}
