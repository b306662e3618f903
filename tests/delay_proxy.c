/* delay_proxy.c - the delaying TCP proxy of delay_proxy.h: one accept
 * thread, and per connection one thread per direction that reads chunks,
 * stamps them and writes each when its delay has passed (reading goes on
 * meanwhile, so pipelined chunks are not delayed twice). */
#include "delay_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define DP_MAX_CONNS 128
#define DP_TICK_MS 50 /* how often a thread looks at the stop flag */
#define DP_CHUNK 65536

typedef struct dp_chunk {
    long long due_ms;
    size_t len, off;
    struct dp_chunk *next;
    char data[];
} dp_chunk;

/* One direction of one connection. */
typedef struct dp_pipe {
    dp_proxy *p;
    int from, to;
    pthread_t th;
} dp_pipe;

struct dp_proxy {
    int listen_fd, target;
    atomic_int delay_ms;
    atomic_bool stop;
    pthread_t accept_th;
    pthread_mutex_t mu; /* guards pipes and n */
    dp_pipe pipes[2 * DP_MAX_CONNS];
    int fds[2 * DP_MAX_CONNS];
    size_t n; /* connections */
};

/* Writes every chunk that is due; false when the peer is gone. */
static bool dp_flush(dp_pipe *pp, dp_chunk **head, dp_chunk **tail)
{
    while (*head && (*head)->due_ms <= ts_now_ms()) {
        dp_chunk *c = *head;
        ssize_t w = send(pp->to, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c->off += (size_t)w;
        if (c->off < c->len)
            continue;
        *head = c->next;
        if (!*head)
            *tail = NULL;
        free(c);
    }
    return true;
}

static void *dp_pipe_main(void *arg)
{
    dp_pipe *pp = arg;
    dp_chunk *head = NULL, *tail = NULL;
    bool open = true, ok = true;
    while (ok && !atomic_load(&pp->p->stop) && (open || head)) {
        int wait = DP_TICK_MS;
        if (head) {
            long long left = head->due_ms - ts_now_ms();
            wait = left < 0 ? 0 : left < wait ? (int)left : wait;
        }
        struct pollfd pfd = {.fd = pp->from, .events = POLLIN};
        int r = open ? poll(&pfd, 1, wait) : (ts_sleep_ms(wait), 0);
        if (r > 0) {
            dp_chunk *c = malloc(sizeof *c + DP_CHUNK);
            ssize_t n = c ? recv(pp->from, c->data, DP_CHUNK, 0) : -1;
            if (n <= 0) {
                free(c);
                open = false;
            } else {
                *c = (dp_chunk){.due_ms = ts_now_ms() + atomic_load(&pp->p->delay_ms),
                                .len = (size_t)n};
                *(tail ? &tail->next : &head) = c;
                tail = c;
            }
        }
        ok = dp_flush(pp, &head, &tail);
    }
    while (head) {
        dp_chunk *c = head;
        head = c->next;
        free(c);
    }
    /* The peer sees the end once what came before it was passed on. */
    shutdown(pp->to, SHUT_WR);
    if (!ok)
        shutdown(pp->from, SHUT_RD);
    return NULL;
}

/* Connects to the target; the socket or -1. */
static int dp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void dp_add(dp_proxy *p, int client)
{
    int server = dp_connect(p->target);
    pthread_mutex_lock(&p->mu);
    if (server < 0 || p->n >= DP_MAX_CONNS) {
        pthread_mutex_unlock(&p->mu);
        close(client);
        if (server >= 0)
            close(server);
        return;
    }
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t i = 2 * p->n;
    p->fds[i] = client;
    p->fds[i + 1] = server;
    p->pipes[i] = (dp_pipe){.p = p, .from = client, .to = server};
    p->pipes[i + 1] = (dp_pipe){.p = p, .from = server, .to = client};
    pthread_create(&p->pipes[i].th, NULL, dp_pipe_main, &p->pipes[i]);
    pthread_create(&p->pipes[i + 1].th, NULL, dp_pipe_main, &p->pipes[i + 1]);
    p->n++;
    pthread_mutex_unlock(&p->mu);
}

static void *dp_accept_main(void *arg)
{
    dp_proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {.fd = p->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, DP_TICK_MS) <= 0)
            continue;
        int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            dp_add(p, fd);
    }
    return NULL;
}

dp_proxy *dp_start(int target, int delay_ms, int *port)
{
    dp_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->target = target;
    atomic_init(&p->delay_ms, delay_ms);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(p->listen_fd, 64) != 0 || getsockname(p->listen_fd, (struct sockaddr *)&a, &len) ||
        pthread_create(&p->accept_th, NULL, dp_accept_main, p) != 0) {
        if (p->listen_fd >= 0)
            close(p->listen_fd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    *port = ntohs(a.sin_port);
    return p;
}

void dp_set_delay(dp_proxy *p, int delay_ms)
{
    atomic_store(&p->delay_ms, delay_ms);
}

void dp_stop(dp_proxy *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->accept_th, NULL);
    close(p->listen_fd);
    for (size_t i = 0; i < 2 * p->n; i++)
        pthread_join(p->pipes[i].th, NULL);
    for (size_t i = 0; i < 2 * p->n; i++)
        close(p->fds[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
