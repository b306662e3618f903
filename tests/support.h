/* support.h - what the criterion tests share: free ports, the real jobd
 * binary as a child process, real HTTP over loopback (libcurl), polling with
 * deadlines, Redis servers of a test's own.
 *
 * tests/run.sh starts one redis-server for the suite and exports
 * JOBD_TEST_REDIS_PORT, JOBD_BIN (path of the jobd binary under test) and
 * JOBD_TEST_TMP (a scratch folder removed after the run). Each test isolates
 * its Redis keys with a prefix of its own (ts_unique). */
#ifndef JOBD_TEST_SUPPORT_H
#define JOBD_TEST_SUPPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int ts_free_port(void);

/* The suite's redis-server port (JOBD_TEST_REDIS_PORT), or aborts the test. */
int ts_redis_port(void);

/* A string unique to this test process and call ("t<pid>_<n>"), into buf (>= 32 bytes). */
const char *ts_unique(char *buf);

/* Scratch folder (JOBD_TEST_TMP, else /tmp). Static string. */
const char *ts_tmpdir(void);

typedef struct ts_jobd {
    pid_t pid;
    int port;
    char cfg_path[512];
    char log_path[512];   /* the child's stderr */
    char host[64];        /* the listen host, e.g. "127.0.0.1" or "[::1]" */
} ts_jobd;

/* Writes config_json to a file, starts $JOBD_BIN --config FILE [extra args...]
 * (NULL-terminated, may be NULL) with the env JOBD_LISTEN=127.0.0.1:<free port>,
 * stderr to log_path, and waits (deadline 10 s) until GET /healthz answers 200.
 * "@REDIS_PORT@" in config_json is replaced by ts_redis_port(). With
 * "--no-http" among the args it waits for "jobd.started" in the log instead.
 * 0 on success; -1 if it did not come up (the log is printed). */
int ts_jobd_start(ts_jobd *j, const char *config_json, const char *const *extra_args);

/* ts_jobd_start listening on host:<free port> (host: "127.0.0.1", "[::1]",
 * "localhost"...), its health checked there. */
int ts_jobd_start_on(ts_jobd *j, const char *host, const char *config_json,
                     const char *const *extra_args);

/* ts_jobd_start for a jobd serving HTTPS (tls.* in config_json): its health
 * is checked over HTTPS, trusting only the certificate in the file cacert. */
int ts_jobd_start_https(ts_jobd *j, const char *config_json, const char *cacert);

/* Sends sig to the child (0 = none), waits for it up to timeout_ms, SIGKILLs
 * it after that. Returns its exit status (0..255), 128+signal if killed by a
 * signal, or -1 if it had to be killed for the timeout. */
int ts_jobd_stop(ts_jobd *j, int sig, int timeout_ms);

/* Runs $JOBD_BIN with args (NULL-terminated) to its end, stdout and stderr
 * into a new file of the scratch folder whose path goes to log_path (>= 512
 * bytes). Waits up to timeout_ms (ts_patience applied), then kills it.
 * Returns its status as ts_jobd_stop does (-1: killed for the timeout). */
int ts_jobd_run(const char *const *args, int timeout_ms, char *log_path, size_t log_len);

/* True when the child's log contains needle. */
bool ts_log_contains(const ts_jobd *j, const char *needle);

typedef struct ts_resp {
    long status;          /* 0 = no answer */
    char *body;           /* owned, NUL-terminated */
    size_t body_len;
    json_t *json;         /* owned, NULL when the body is not JSON */
    char *headers;        /* owned, raw header block */
    double seconds;       /* time the request took */
} ts_resp;

/* One request over loopback to 127.0.0.1:port. body may be NULL; content_type
 * NULL = "application/json" when body is given; headers is a NULL-terminated
 * list of extra "Name: value" lines (may be NULL). Fills r; 0 or -1 (no answer). */
int ts_http(ts_resp *r, const char *method, int port, const char *path, const char *body,
            const char *content_type, const char *const *headers);

/* ts_http to host (e.g. "[::1]", "localhost") instead of 127.0.0.1. */
int ts_http_host(ts_resp *r, const char *host, const char *method, int port, const char *path,
                 const char *body, const char *content_type, const char *const *headers);

/* ts_http over HTTPS to 127.0.0.1, trusting only the certificate in the file
 * cacert (curl --cacert); body, if any, is sent as application/json. */
int ts_https(ts_resp *r, const char *cacert, const char *method, int port, const char *path,
             const char *body, const char *const *headers);

/* Shorthands for the common cases (JSON body). */
int ts_post(ts_resp *r, int port, const char *path, const char *json_body);
int ts_get(ts_resp *r, int port, const char *path);

/* Value of response header name (case-insensitive) into buf, or NULL. */
const char *ts_resp_header(const ts_resp *r, const char *name, char *buf, size_t len);

void ts_resp_free(ts_resp *r);

/* The error code of an error body (openapi.json, Error), or "" (borrowed). */
const char *ts_error_code(const ts_resp *r);

/* Polls GET /queues/{queue}/jobs/{id} every few ms until its state is `state`
 * or timeout_ms passes. True if reached. seen, if not NULL, gets the last view
 * (new reference; caller decrefs). */
bool ts_wait_state(int port, const char *queue, const char *id, const char *state,
                   int timeout_ms, json_t **seen);

/* Starts a redis-server of the test's own on a free port in a fresh folder
 * (extra args appended, NULL-terminated, e.g. "--appendonly","yes"); waits
 * until it answers PING. Returns 0 and fills *pid, *port. */
int ts_redis_start(pid_t *pid, int *port, const char *const *extra_args);
/* True when a redis-server answers PING on 127.0.0.1:port (200 ms at most). */
bool ts_redis_pings(int port);

/* Stops it (SIGTERM, then SIGKILL after 5 s) and waits. */
void ts_redis_stop(pid_t pid);

/* A deadline of ms as this build needs it: three times longer under the
 * sanitizers (JOBD_ASAN=1), which slow jobd several-fold. ts_wait_state and
 * ts_jobd_start apply it already. */
int ts_patience(int ms);

/* Monotonic milliseconds. */
long long ts_now_ms(void);

/* The whole file at path as new memory (NUL-terminated; caller frees), its
 * size in *len (may be NULL); NULL when it cannot be read. */
char *ts_read_file(const char *path, size_t *len);

/* Sleeps ms milliseconds (the pause between two polls, never a synchronisation). */
void ts_sleep_ms(int ms);

/* The unix ms encoded in a ULID's first 10 chars, or -1 for a bad char
 * (decoded here, independently of util/ulid.c). */
int64_t ts_ulid_ms(const char *id);

/* True when id is 26 chars of Crockford base32 that fit in 128 bits. */
bool ts_ulid_shape(const char *id);

#endif
