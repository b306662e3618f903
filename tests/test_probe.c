/* test_probe.c - `jobd --probe URL`, the container HEALTHCHECK: the real
 * binary against a real jobd, a closed port, a server that never answers and
 * URLs it must refuse. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

#define INLINE_CFG "{\"queues\": {\"local\": {\"dequeue\": [\"inline\"]}}}"
/* A Redis nobody listens on: /readyz answers 503 while /healthz answers 200. */
#define DEAD_REDIS_CFG                                                                     \
    "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\", \"timeout\": 0.2},"                 \
    " \"queues\": {\"q\": {\"dequeue\": [\"redis\"]}}}"

/* Runs jobd --probe url; returns its exit status, the output in log_path. */
static int probe(const char *url, char *log_path)
{
    const char *args[] = {"--probe", url, NULL};
    return ts_jobd_run(args, 10000, log_path, 512);
}

static bool file_contains(const char *path, const char *needle)
{
    char *text = ts_read_file(path, NULL);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

Test(probe, ok_on_200_fails_on_other_statuses)
{
    ts_jobd j;
    cr_assert_eq(ts_jobd_start(&j, INLINE_CFG, NULL), 0);
    char url[128], log[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", j.port);
    cr_expect_eq(probe(url, log), 0, "probe of a ready jobd must exit 0");
    cr_expect(file_contains(log, "HTTP 200"));

    snprintf(url, sizeof url, "http://127.0.0.1:%d/no-such-path", j.port);
    cr_expect_eq(probe(url, log), 1, "a 404 is not healthy");
    cr_expect(file_contains(log, "HTTP 404"), "the status is named on stderr");
    cr_expect_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);
}

Test(probe, readyz_503_when_redis_is_down)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg, DEAD_REDIS_CFG, ts_free_port());
    ts_jobd j;
    cr_assert_eq(ts_jobd_start(&j, cfg, NULL), 0);
    char url[128], log[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", j.port);
    cr_expect_eq(probe(url, log), 0, "/healthz answers while Redis is down");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", j.port);
    cr_expect_eq(probe(url, log), 1, "/readyz is 503 while Redis is down");
    cr_expect(file_contains(log, "HTTP 503"));
    cr_expect_eq(ts_jobd_stop(&j, SIGTERM, 10000), 0);
}

Test(probe, closed_port_fails_at_once)
{
    char url[128], log[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ts_free_port());
    long long t0 = ts_now_ms();
    cr_expect_eq(probe(url, log), 1);
    cr_expect_lt(ts_now_ms() - t0, ts_patience(3000));
    cr_expect(file_contains(log, "jobd: probe"), "the reason goes to stderr");
}

/* A listening socket that is never accepted: the kernel completes the
 * handshake, nothing ever answers. The probe must give up by its own
 * deadline (2 s), well within Docker's health check timeout. */
Test(probe, silent_server_times_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char url[128], log[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ntohs(a.sin_port));
    long long t0 = ts_now_ms();
    int st = probe(url, log);
    long long took = ts_now_ms() - t0;
    close(fd);
    cr_expect_eq(st, 1, "a server that never answers is not healthy (status %d)", st);
    cr_expect_geq(took, 1500, "gave up after %lld ms, before its 2 s deadline", took);
    cr_expect_lt(took, ts_patience(4000), "took %lld ms, past its 2 s deadline", took);
}

Test(probe, refuses_other_schemes_and_bad_urls)
{
    char log[512];
    cr_expect_eq(probe("file:///etc/passwd", log), 1);
    cr_expect(file_contains(log, "jobd: probe file:///etc/passwd"));
    cr_expect_eq(probe("not a url", log), 1);
    const char *no_arg[] = {"--probe", NULL};
    cr_expect_eq(ts_jobd_run(no_arg, 10000, log, sizeof log), 2, "a missing URL is a usage error");
}
