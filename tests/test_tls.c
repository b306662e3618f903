/* test_tls.c - HTTPS (tls.cert_file, tls.key_file): the real jobd binary
 * serving TLS through libmicrohttpd, with a certificate each test makes with
 * `openssl req -x509`, and libcurl trusting only that certificate (curl
 * --cacert). Also what is refused (plain HTTP on the HTTPS port, TLS 1.1) and
 * the start errors, which must name the file. */
#include "support.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TLS_OPENSSL_MS 20000
#define TLS_CONFIG_LEN 2048

static ts_jobd srv;

static void tls_teardown(void)
{
    if (srv.pid > 0)
        ts_jobd_stop(&srv, SIGTERM, 10000);
}

TestSuite(tls, .fini = tls_teardown, .timeout = 120);

/* A certificate and its key, made for 127.0.0.1 by openssl in the scratch folder. */
typedef struct tls_pair {
    char cert[512];
    char key[512];
} tls_pair;

/* Runs argv (no shell) with its output into the scratch folder and waits for
 * it (bounded); its exit status, -1 when it did not run or end in time. */
static int tls_run(char *const argv[])
{
    char u[32], log[512];
    snprintf(log, sizeof log, "%s/openssl_%s.log", ts_tmpdir(), ts_unique(u));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    long long deadline = ts_now_ms() + ts_patience(TLS_OPENSSL_MS);
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (ts_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        ts_sleep_ms(20);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A new self-signed EC certificate for CN=localhost and IP 127.0.0.1. */
static void tls_make_pair(tls_pair *p, const char *name)
{
    char u[32];
    ts_unique(u);
    snprintf(p->cert, sizeof p->cert, "%s/%s_%s_cert.pem", ts_tmpdir(), name, u);
    snprintf(p->key, sizeof p->key, "%s/%s_%s_key.pem", ts_tmpdir(), name, u);
    char *const argv[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                          "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                          "-keyout", p->key, "-out", p->cert, NULL};
    cr_assert_eq(tls_run(argv), 0, "openssl req -x509 failed");
}

/* The config of a jobd on one inline queue with tls.* of pair (or the
 * files given), on a free port (ts_jobd_start's JOBD_LISTEN overrides it). */
static void tls_config(char *out, const tls_pair *p, const char *cert, const char *key)
{
    snprintf(out, TLS_CONFIG_LEN,
             "{\"listen\": \"127.0.0.1:%d\", \"queues\": {\"local\": {\"dequeue\": "
             "[\"inline\"]}}, \"workers\": 1,"
             " \"tls\": {\"cert_file\": \"%s\", \"key_file\": \"%s\"}}",
             ts_free_port(), cert ? cert : p->cert, key ? key : p->key);
}

static int tls_up(tls_pair *p)
{
    char cfg[TLS_CONFIG_LEN];
    tls_make_pair(p, "srv");
    tls_config(cfg, p, NULL, NULL);
    cr_assert_eq(ts_jobd_start_https(&srv, cfg, p->cert), 0, "jobd did not start with HTTPS");
    return srv.port;
}

Test(tls, submit_and_read_over_https_with_cacert)
{
    tls_pair p;
    int port = tls_up(&p);
    ts_resp r;
    ts_https(&r, p.cert, "POST", port, "/queues/local/jobs", "{\"type\": \"echo\", \"args\": 7}",
             NULL);
    cr_assert_eq(r.status, 202, "submission over HTTPS: %ld %s", r.status, r.body);
    char path[256];
    snprintf(path, sizeof path, "/queues/local/jobs/%s",
             json_string_value(json_object_get(r.json, "id")));
    ts_resp_free(&r);
    ts_https(&r, p.cert, "GET", port, path, NULL, NULL);
    cr_expect_eq(r.status, 200, "GET %s over HTTPS: %ld", path, r.status);
    cr_expect_eq(json_integer_value(json_object_get(r.json, "args")), 7);
    ts_resp_free(&r);
    cr_expect(ts_log_contains(&srv, "(HTTPS,"), "the start line does not say HTTPS");

    /* a client that does not trust the certificate gets no answer */
    tls_pair other;
    tls_make_pair(&other, "other");
    cr_expect_neq(ts_https(&r, other.cert, "GET", port, "/healthz", NULL, NULL), 0);
    cr_expect_eq(r.status, 0, "a client trusting another certificate got an answer");
    ts_resp_free(&r);
}

/* The probe of the container health check: with --probe-cacert it trusts the
 * certificate; without, the system CAs do not know a self-signed one. */
Test(tls, probe_over_https)
{
    tls_pair p;
    int port = tls_up(&p);
    char url[128], log[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", port);
    const char *const with_ca[] = {"--probe", url, "--probe-cacert", p.cert, NULL};
    cr_expect_eq(ts_jobd_run(with_ca, 5000, log, sizeof log), 0, "probe with the CA failed");
    const char *const without[] = {"--probe", url, NULL};
    cr_expect_eq(ts_jobd_run(without, 5000, log, sizeof log), 1,
                 "probe of a self-signed certificate without its CA succeeded");
}

/* Counts the lines of jobd's log holding needle. */
static int tls_log_count(const char *needle)
{
    char *text = ts_read_file(srv.log_path, NULL);
    int n = 0;
    for (const char *q = text ? strstr(text, needle) : NULL; q; q = strstr(q + 1, needle))
        n++;
    free(text);
    return n;
}

/* Polls the log until it holds more than `than` lines with needle (bounded). */
static bool tls_log_grows(const char *needle, int than)
{
    long long deadline = ts_now_ms() + ts_patience(3000);
    while (ts_now_ms() < deadline) {
        if (tls_log_count(needle) > than)
            return true;
        ts_sleep_ms(20);
    }
    return false;
}

Test(tls, plain_http_to_the_https_port_is_refused_and_serving_goes_on)
{
    tls_pair p;
    int port = tls_up(&p);
    int before = tls_log_count("http.mhd");
    for (int i = 0; i < 3; i++) {
        ts_resp r;
        cr_expect_neq(ts_http(&r, "GET", port, "/healthz", NULL, NULL, NULL), 0);
        cr_expect_eq(r.status, 0, "plain HTTP got an HTTP answer from the HTTPS port");
        cr_expect_lt(r.seconds, 3.0, "plain HTTP was held %.2f s rather than refused",
                     r.seconds);
        ts_resp_free(&r);
        ts_https(&r, p.cert, "GET", port, "/healthz", NULL, NULL);
        cr_expect_eq(r.status, 200, "the next HTTPS request after plain HTTP: %ld", r.status);
        ts_resp_free(&r);
    }
    cr_expect(tls_log_grows("http.mhd", before), "the refused handshakes are not logged");
    cr_expect_gt(srv.pid, 0);
    cr_expect_eq(kill(srv.pid, 0), 0, "jobd is gone");
}

/* One GET /healthz with the client's TLS version range capped at max_version
 * (CURL_SSLVERSION_MAX_*), at OpenSSL security level 0 so that the client
 * itself would speak TLS 1.1. The status, 0 when the handshake failed. */
static long tls_get_capped(const tls_pair *p, int port, long min_version, long max_version)
{
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", port);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_CAINFO, p->cert);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, min_version | max_version);
    curl_easy_setopt(c, CURLOPT_SSL_CIPHER_LIST, "DEFAULT:@SECLEVEL=0");
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

Test(tls, tls_1_1_client_is_refused)
{
    tls_pair p;
    int port = tls_up(&p);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* the same client, allowed TLS 1.2, is served: the refusal is the version */
    cr_expect_eq(tls_get_capped(&p, port, CURL_SSLVERSION_TLSv1_2, CURL_SSLVERSION_MAX_TLSv1_2),
                 200, "a TLS 1.2 client was not served");
    int before = tls_log_count("http.mhd");
    cr_expect_eq(tls_get_capped(&p, port, CURL_SSLVERSION_TLSv1_1, CURL_SSLVERSION_MAX_TLSv1_1),
                 0, "a TLS 1.1 client was served");
    /* the ClientHello reached jobd, which refused it */
    cr_expect(tls_log_grows("http.mhd", before), "no handshake failure in jobd's log");
    cr_expect_eq(tls_get_capped(&p, port, CURL_SSLVERSION_TLSv1_2, CURL_SSLVERSION_MAX_TLSv1_3),
                 200, "jobd no longer serves after the refused client");
    curl_global_cleanup();
}

/* Writes config to a new file of the scratch folder, its path into cfg_path (512 bytes). */
static void tls_write_config(char *cfg_path, const char *config)
{
    char u[32];
    snprintf(cfg_path, 512, "%s/tls_%s.json", ts_tmpdir(), ts_unique(u));
    FILE *f = fopen(cfg_path, "w");
    cr_assert_not_null(f);
    fputs(config, f);
    fclose(f);
}

/* Runs jobd on config to its end; expects exit status 1 and a log naming
 * each of the needles. */
static void tls_expect_start_error(const char *what, const char *config, const char *needle1,
                                   const char *needle2)
{
    char cfg_path[512], log[512];
    tls_write_config(cfg_path, config);
    const char *const args[] = {"--config", cfg_path, NULL};
    int st = ts_jobd_run(args, 10000, log, sizeof log);
    char *text = ts_read_file(log, NULL);
    cr_expect_eq(st, 1, "%s: jobd exited %d, want 1; log:\n%s", what, st, text ? text : "");
    cr_expect(text && strstr(text, "http.start_failed"), "%s: no http.start_failed", what);
    cr_expect(text && strstr(text, needle1), "%s: the log does not name \"%s\":\n%s", what,
              needle1, text ? text : "");
    cr_expect(text && strstr(text, needle2), "%s: the log does not say \"%s\":\n%s", what,
              needle2, text ? text : "");
    free(text);
}

/* jobd --check-config on config: exit 2, naming needle (the TLS files are checked too). */
static void tls_expect_check_error(const char *config, const char *needle)
{
    char cfg_path[512], log[512];
    tls_write_config(cfg_path, config);
    const char *const args[] = {"--check-config", "--config", cfg_path, NULL};
    int st = ts_jobd_run(args, 10000, log, sizeof log);
    char *text = ts_read_file(log, NULL);
    cr_expect_eq(st, 2, "--check-config exited %d, want 2; output:\n%s", st, text ? text : "");
    cr_expect(text && strstr(text, needle), "--check-config does not name %s:\n%s", needle,
              text ? text : "");
    free(text);
}

Test(tls, start_errors_name_the_file_and_the_reason)
{
    tls_pair p, other;
    tls_make_pair(&p, "srv");
    tls_make_pair(&other, "other");
    char cfg[TLS_CONFIG_LEN], missing[600], dir[600], garbage[600];
    snprintf(missing, sizeof missing, "%s.missing", p.cert);
    tls_config(cfg, &p, missing, NULL);
    tls_expect_start_error("missing cert", cfg, missing, "No such file or directory");
    tls_config(cfg, &p, NULL, missing);
    tls_expect_start_error("missing key", cfg, missing, "No such file or directory");

    /* a folder opens but does not read, whoever runs the test */
    snprintf(dir, sizeof dir, "%s.d", p.key);
    cr_assert_eq(mkdir(dir, 0700), 0);
    tls_config(cfg, &p, NULL, dir);
    tls_expect_start_error("unreadable key (a folder)", cfg, dir, "Is a directory");
    rmdir(dir);
    if (geteuid() != 0) { /* root reads a file of mode 000 all the same */
        cr_assert_eq(chmod(p.key, 0), 0);
        tls_config(cfg, &p, NULL, NULL);
        tls_expect_start_error("unreadable key (mode 000)", cfg, p.key, "Permission denied");
        chmod(p.key, 0600);
    }

    tls_config(cfg, &p, NULL, other.key);
    tls_expect_start_error("mismatched key", cfg, other.key, "does not match the certificate");
    tls_expect_check_error(cfg, other.key);

    snprintf(garbage, sizeof garbage, "%s.txt", p.cert);
    FILE *f = fopen(garbage, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    tls_config(cfg, &p, garbage, NULL);
    tls_expect_start_error("not PEM", cfg, garbage, "not a PEM certificate");
}

/* The env form, JOBD_TLS_CERT_FILE and JOBD_TLS_KEY_FILE, over a config without tls. */
Test(tls, env_overrides_switch_on_https)
{
    tls_pair p, other;
    tls_make_pair(&p, "srv");
    tls_make_pair(&other, "other");
    cr_assert_eq(setenv("JOBD_TLS_CERT_FILE", p.cert, 1), 0);
    cr_assert_eq(setenv("JOBD_TLS_KEY_FILE", other.key, 1), 0);
    char cfg[TLS_CONFIG_LEN];
    snprintf(cfg, sizeof cfg, "{\"listen\": \"127.0.0.1:%d\", \"queues\": {\"local\": "
             "{\"dequeue\": [\"inline\"]}}, \"workers\": 1}", ts_free_port());
    tls_expect_start_error("mismatched key from the env", cfg, other.key,
                           "does not match the certificate");
    cr_assert_eq(setenv("JOBD_TLS_KEY_FILE", p.key, 1), 0);
    cr_assert_eq(ts_jobd_start_https(&srv, "{\"queues\": {\"local\": {\"dequeue\": "
                                           "[\"inline\"]}}, \"workers\": 1}", p.cert), 0);
    ts_resp r;
    ts_https(&r, p.cert, "GET", srv.port, "/queues", NULL, NULL);
    cr_expect_eq(r.status, 200);
    ts_resp_free(&r);
}
