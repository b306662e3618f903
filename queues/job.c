/* job.c - the job model: validation of client input, ids, times, views. */
#include "job.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/config.h"

/* 10000-01-01T00:00:00Z: the first instant that no longer has a four-digit
 * year, so client times must stay below it to survive a format/parse trip. */
#define JOB_TIME_END 253402300800000LL
#define JOB_ATTEMPTS_LIMIT 1000
/* A year: bounds the timeout so that later conversions to ms cannot overflow. */
#define JOB_TIMEOUT_LIMIT 31536000.0
#define ULID_MS_MAX ((INT64_C(1) << 48) - 1)
#define ULID_LEN 26

static const char *const job_state_names[JOB_STATE_COUNT] = {
    "scheduled", "enqueued", "running", "succeeded", "retrying", "dead", "cancelled",
};

/* The top-level fields of a client job (api.md); anything else is a typo. */
static const char *const job_fields[] = {
    "type", "args", "id", "scheduled_at", "delay", "max_attempts", "timeout",
};

/* Crockford's base32: ASCII-ordered, so strcmp orders ULIDs by value. */
static const char ulid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* ---- the job struct -------------------------------------------------- */

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
    if (job->last_error && !(copy->last_error = strdup(job->last_error))) {
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
    free(job);
}

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) starting at s, or 0 when there is none.
 * jansson refuses strings with such bytes, so they must never reach a view. */
static size_t job_utf8_len(const unsigned char *s)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
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
    const unsigned char *s = (const unsigned char *)msg;
    size_t o = 0;
    while (*s) {
        size_t n = job_utf8_len(s);
        if (o + (n ? n : 1) > JOB_ERROR_MAX)
            break;
        if (n) {
            memcpy(out + o, s, n);
        } else {
            out[o] = '?'; /* a program's stderr may hold any bytes */
            n = 1;
        }
        o += n;
        s += n;
    }
    out[o] = '\0';
    job->last_error = out;
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

/* ---- ids ------------------------------------------------------------- */

static bool job_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '-';
}

bool job_id_ok(const char *s)
{
    size_t n = 0;
    if (!s)
        return false;
    for (; s[n]; n++)
        if (n >= JOB_ID_MAX || !job_id_char(s[n]))
            return false;
    return n > 0;
}

void idgen_init(idgen_t *g)
{
    pthread_mutex_init(&g->mu, NULL);
    g->last_ms = -1;
    memset(g->last_rand, 0, sizeof g->last_rand);
}

void idgen_destroy(idgen_t *g)
{
    pthread_mutex_destroy(&g->mu);
}

/* Adds one to the big-endian random part; -1 when it wrapped to zero. */
static int idgen_increment(unsigned char rnd[10])
{
    for (int i = 9; i >= 0; i--)
        if (++rnd[i] != 0)
            return 0;
    return -1;
}

/* 26 base32 chars hold 130 bits: two zero bits, then the 48-bit time and 80
 * random bits. Char i is bits 5i-2 .. 5i+2 of the 128 (MSB first), read
 * through a 16-bit window; ids are made for every submission. */
static void idgen_encode(int64_t ms, const unsigned char rnd[10], char out[27])
{
    unsigned char b[17]; /* b[16] pads the window of the last char */
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    memcpy(b + 6, rnd, 10);
    b[16] = 0;
    out[0] = ulid_alphabet[b[0] >> 5];
    for (int i = 1; i < ULID_LEN; i++) {
        int k = 5 * i - 2;
        unsigned window = (unsigned)b[k / 8] << 8 | b[k / 8 + 1];
        out[i] = ulid_alphabet[window >> (11 - k % 8) & 31u];
    }
    out[ULID_LEN] = '\0';
}

void idgen_next(idgen_t *g, int64_t now_ms, char out[27])
{
    int64_t ms = now_ms < 0 ? 0 : now_ms > ULID_MS_MAX ? ULID_MS_MAX : now_ms;
    pthread_mutex_lock(&g->mu);
    /* A clock that stands still or steps back must not reorder ids: stay on
     * the last millisecond and count up from its random part. */
    if (ms <= g->last_ms) {
        ms = g->last_ms;
        if (idgen_increment(g->last_rand) < 0)
            ms++; /* 2^80 ids in one ms: borrow the next one */
    }
    if (ms != g->last_ms)
        arc4random_buf(g->last_rand, sizeof g->last_rand);
    g->last_ms = ms;
    idgen_encode(ms, g->last_rand, out);
    pthread_mutex_unlock(&g->mu);
}

/* ---- times ----------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so no TZ or locale can change the result. */
static int64_t job_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of job_days_from_civil. */
static void job_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int job_days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n ASCII digits; stops at the NUL of a short string. */
static bool job_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Milliseconds of a fraction ".ddd...": any number of digits, at least one,
 * beyond the third only checked. Returns the end, or NULL. */
static const char *job_time_fraction(const char *p, int *ms)
{
    int n = 0;
    *ms = 0;
    if (*p != '.')
        return p;
    for (p++; *p >= '0' && *p <= '9'; p++, n++)
        if (n < 3)
            *ms = *ms * 10 + (*p - '0');
    for (int i = n; i < 3; i++)
        *ms *= 10;
    return n > 0 ? p : NULL;
}

/* Offset "Z" or "+hh:mm"/"-hh:mm" in seconds east of UTC. Returns the end, or NULL. */
static const char *job_time_offset(const char *p, int *secs)
{
    int h, m;
    if (*p == 'Z' || *p == 'z') {
        *secs = 0;
        return p + 1;
    }
    if ((*p != '+' && *p != '-') || !job_digits(p + 1, 2, &h) || p[3] != ':' ||
        !job_digits(p + 4, 2, &m) || h > 23 || m > 59)
        return NULL;
    *secs = (*p == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return p + 6;
}

int job_time_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, frac, off;
    if (!s || !job_digits(s, 4, &y) || s[4] != '-' || !job_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !job_digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !job_digits(s + 11, 2, &h) ||
        s[13] != ':' || !job_digits(s + 14, 2, &mi) || s[16] != ':' ||
        !job_digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > job_days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    const char *p = job_time_fraction(s + 19, &frac);
    if (!p || !(p = job_time_offset(p, &off)) || *p != '\0')
        return -1;
    /* A leap second (:60) lands on the first ms of the next minute, as timegm does. */
    int64_t secs = job_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    *ms = secs * 1000 + frac;
    return 0;
}

/* Writes v as exactly n digits (v < 10^n). */
static void job_put_digits(char *p, int n, int v)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

void job_time_format(int64_t ms, char *buf)
{
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) { /* floor, so times before 1970 count back from midnight */
        rem += 86400000;
        days--;
    }
    int64_t y;
    int m, d;
    job_civil_from_days(days, &y, &m, &d);
    int t = (int)(rem / 1000);
    if (y < 0 || y > 9999) { /* no fixed width: leave it to printf */
        snprintf(buf, 32, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d, t / 3600,
                 t / 60 % 60, t % 60, (int)(rem % 1000));
        return;
    }
    /* Views carry several times each, and printf was most of their cost. */
    memcpy(buf, "0000-00-00T00:00:00.000Z", 25);
    job_put_digits(buf, 4, (int)y);
    job_put_digits(buf + 5, 2, m);
    job_put_digits(buf + 8, 2, d);
    job_put_digits(buf + 11, 2, t / 3600);
    job_put_digits(buf + 14, 2, t / 60 % 60);
    job_put_digits(buf + 17, 2, t % 60);
    job_put_digits(buf + 20, 3, (int)(rem % 1000));
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

static int job_take_id(const json_t *obj, const char *idem_key, idgen_t *ids, job_t *job,
                       jobd_error *err)
{
    const json_t *v = job_opt(obj, "id");
    const char *id = job_json_str(v, JOB_ID_MAX);
    if (v && !job_id_ok(id))
        return job_invalid(err, "id",
                           "field 'id' must be a string of 1-%d characters of [A-Za-z0-9._:-]",
                           JOB_ID_MAX);
    if (idem_key && !job_id_ok(idem_key))
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
        idgen_next(ids, job->created_at, job->id);
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
    if (at && (!json_is_string(at) || job_time_parse(json_string_value(at), &when) < 0 ||
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
                        idgen_t *ids, int64_t now_ms, jobd_error *err)
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
    char buf[32];
    if (ms == 0)
        return json_null();
    job_time_format(ms, buf);
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
    return json_is_string(v) && job_time_parse(json_string_value(v), ms) == 0 ? 0 : -1;
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
    if (job_view_str(view, "id", job->id, sizeof job->id) < 0 || !job_id_ok(job->id) ||
        job_view_str(view, "queue", job->queue, sizeof job->queue) < 0 ||
        !config_queue_name_ok(job->queue) ||
        job_view_str(view, "type", job->type, sizeof job->type) < 0 ||
        job_view_state(view, job) < 0 ||
        job_view_int(view, "attempts", 0, false, &job->attempts) < 0 ||
        job_view_int(view, "max_attempts", 1, true, &job->max_attempts) < 0 ||
        job_view_time(view, "created_at", false, &job->created_at) < 0 ||
        job_view_time(view, "scheduled_at", false, &job->scheduled_at) < 0 ||
        job_view_time(view, "started_at", false, &job->started_at) < 0 ||
        job_view_time(view, "finished_at", false, &job->finished_at) < 0 ||
        job_view_time(view, "run_at", true, &job->run_at) < 0 || job_view_args(view, job) < 0 ||
        job_view_timeout(view, job) < 0 || job_view_error(view, job) < 0) {
        job_free(job);
        return NULL;
    }
    return job;
}

/* ---- views as text ---------------------------------------------------- */

/* A growing buffer for JSON text built without a jansson tree: the view is
 * written for every submission, and jansson's tree and dump were most of its
 * cost. The output is byte for byte what json_dumps(..., JSON_COMPACT) gives
 * (tests/test_job_text.c holds it to that). After a failed allocation oom is
 * set and later writes do nothing. */
typedef struct job_text {
    char *p;
    size_t len, cap;
    bool oom;
} job_text;

#define JOB_TEXT_LIT(t, lit) job_text_put((t), (lit), sizeof(lit) - 1)

static bool job_text_room(job_text *t, size_t extra)
{
    if (t->oom)
        return false;
    if (t->len + extra < t->cap) /* strictly less: room for the final NUL */
        return true;
    size_t cap = t->cap ? t->cap : 512;
    while (cap <= t->len + extra)
        cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
        t->oom = true;
        return false;
    }
    t->p = p;
    t->cap = cap;
    return true;
}

static void job_text_put(job_text *t, const char *s, size_t n)
{
    if (!job_text_room(t, n))
        return;
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

/* A JSON string, escaped as jansson does by default: quote, backslash and
 * control characters only (the bytes are valid UTF-8 already). */
static void job_text_str(job_text *t, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    JOB_TEXT_LIT(t, "\"");
    size_t run = 0; /* bytes before i that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        job_text_put(t, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        job_text_put(t, esc, len);
    }
    job_text_put(t, s + run, n - run);
    JOB_TEXT_LIT(t, "\"");
}

static void job_text_cstr(job_text *t, const char *s)
{
    job_text_str(t, s, strlen(s));
}

static void job_text_int(job_text *t, long long v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    job_text_put(t, p, (size_t)(buf + sizeof buf - p));
}

/* A time as RFC 3339, or null for 0 (= none), as job_time_json. */
static void job_text_time(job_text *t, int64_t ms)
{
    char buf[32];
    if (ms == 0) {
        JOB_TEXT_LIT(t, "null");
        return;
    }
    job_time_format(ms, buf);
    JOB_TEXT_LIT(t, "\"");
    job_text_put(t, buf, strlen(buf));
    JOB_TEXT_LIT(t, "\"");
}

/* Reals are left to jansson: its shortest round-trip form is what counts. */
static void job_text_real(job_text *t, const json_t *v)
{
    char buf[64];
    size_t n = json_dumpb(v, buf, sizeof buf, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0 || n > sizeof buf)
        t->oom = true;
    else
        job_text_put(t, buf, n);
}

static void job_text_json(job_text *t, const json_t *v);

static void job_text_object(job_text *t, const json_t *v)
{
    const char *key;
    size_t key_len;
    json_t *child;
    bool first = true;
    JOB_TEXT_LIT(t, "{");
    json_object_keylen_foreach((json_t *)v, key, key_len, child) {
        if (!first)
            JOB_TEXT_LIT(t, ",");
        first = false;
        job_text_str(t, key, key_len);
        JOB_TEXT_LIT(t, ":");
        job_text_json(t, child);
    }
    JOB_TEXT_LIT(t, "}");
}

static void job_text_array(job_text *t, const json_t *v)
{
    size_t i;
    json_t *child;
    JOB_TEXT_LIT(t, "[");
    json_array_foreach(v, i, child) {
        if (i > 0)
            JOB_TEXT_LIT(t, ",");
        job_text_json(t, child);
    }
    JOB_TEXT_LIT(t, "]");
}

/* Any value; nesting is bounded by the depth check of the intake. */
static void job_text_json(job_text *t, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: job_text_object(t, v); break;
    case JSON_ARRAY: job_text_array(t, v); break;
    case JSON_STRING: job_text_str(t, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: job_text_int(t, (long long)json_integer_value(v)); break;
    case JSON_REAL: job_text_real(t, v); break;
    case JSON_TRUE: JOB_TEXT_LIT(t, "true"); break;
    case JSON_FALSE: JOB_TEXT_LIT(t, "false"); break;
    case JSON_NULL: JOB_TEXT_LIT(t, "null"); break;
    }
}

/* The NUL-terminated text (new memory) and its length, or NULL after OOM. */
static char *job_text_finish(job_text *t, size_t *len)
{
    if (!job_text_room(t, 0)) {
        free(t->p);
        return NULL;
    }
    t->p[t->len] = '\0';
    if (len)
        *len = t->len;
    return t->p;
}

/* "id","queue","type","args": the head of both the view and the payload. */
static void job_text_head(job_text *t, const job_t *job)
{
    JOB_TEXT_LIT(t, "{\"id\":");
    job_text_cstr(t, job->id);
    JOB_TEXT_LIT(t, ",\"queue\":");
    job_text_cstr(t, job->queue);
    JOB_TEXT_LIT(t, ",\"type\":");
    job_text_cstr(t, job->type);
    JOB_TEXT_LIT(t, ",\"args\":");
    job_text_json(t, job->args);
}

char *job_view_text(const job_t *job, size_t *len)
{
    job_text t = {0};
    job_text_head(&t, job);
    JOB_TEXT_LIT(&t, ",\"state\":\"");
    job_text_put(&t, job_state_name(job->state), strlen(job_state_name(job->state)));
    JOB_TEXT_LIT(&t, "\",\"attempts\":");
    job_text_int(&t, job->attempts);
    JOB_TEXT_LIT(&t, ",\"max_attempts\":");
    if (job->max_attempts)
        job_text_int(&t, job->max_attempts);
    else
        JOB_TEXT_LIT(&t, "null");
    JOB_TEXT_LIT(&t, ",\"created_at\":");
    job_text_time(&t, job->created_at);
    JOB_TEXT_LIT(&t, ",\"scheduled_at\":");
    job_text_time(&t, job->scheduled_at);
    JOB_TEXT_LIT(&t, ",\"started_at\":");
    job_text_time(&t, job->started_at);
    JOB_TEXT_LIT(&t, ",\"finished_at\":");
    job_text_time(&t, job->finished_at);
    JOB_TEXT_LIT(&t, ",\"last_error\":");
    if (job->last_error)
        job_text_cstr(&t, job->last_error);
    else
        JOB_TEXT_LIT(&t, "null");
    if (job->run_at) {
        JOB_TEXT_LIT(&t, ",\"run_at\":");
        job_text_time(&t, job->run_at);
    }
    if (job->timeout > 0) {
        json_t *timeout = json_real(job->timeout);
        JOB_TEXT_LIT(&t, ",\"timeout\":");
        if (timeout)
            job_text_real(&t, timeout);
        else
            t.oom = true;
        json_decref(timeout);
    }
    JOB_TEXT_LIT(&t, "}");
    return job_text_finish(&t, len);
}

char *job_payload(const job_t *job, size_t *len)
{
    job_text t = {0};
    job_text_head(&t, job);
    JOB_TEXT_LIT(&t, ",\"attempt\":");
    job_text_int(&t, (long long)job->attempts + 1);
    JOB_TEXT_LIT(&t, ",\"scheduled_at\":");
    job_text_time(&t, job->scheduled_at);
    JOB_TEXT_LIT(&t, ",\"created_at\":");
    job_text_time(&t, job->created_at);
    JOB_TEXT_LIT(&t, "}");
    return job_text_finish(&t, len);
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
           (job->last_error ? strlen(job->last_error) + 1 : 0);
}
