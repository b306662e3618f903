/* http_sweep.c - the request-head deadline: every open connection's socket is
 * listed, and a thread shuts down those whose head takes too long (slowloris). */
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "http_conn.h"
#include "log.h"

/* ---- the request-head deadline ---------------------------------------- */

/* ts = CLOCK_MONOTONIC now + ms, for pthread_cond_timedwait on our conds. */
void http_abstime(int64_t ms, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (ms < 0)
        ms = 0;
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Starts (reading_head) or stops the head clock of conn's connection: it
 * runs from the connection's start or its previous answer until the access
 * handler sees the next head. */
void http_sock_arm(http_server_t *srv, struct MHD_Connection *conn, bool reading_head)
{
    if (srv->head_timeout_ms <= 0)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    http_sock *sk = ci ? ci->socket_context : NULL;
    if (!sk)
        return;
    atomic_store_explicit(&sk->head_since_ms, reading_head ? jobd_mono_ms() : 0,
                          memory_order_relaxed);
}

/* MHD's connection notifications: an http_sock per connection, listed from
 * its start to its close. A connection we cannot list only misses the
 * deadline. */
void http_sock_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe)
{
    http_server_t *srv = cls;
    http_sock *sk = *socket_context;
    pthread_mutex_lock(&srv->socks_mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && (sk = calloc(1, sizeof *sk))) {
            sk->fd = ci->connect_fd;
            atomic_init(&sk->head_since_ms, jobd_mono_ms());
            list_push(&srv->socks, &sk->node);
        }
        *socket_context = sk;
    } else if (sk) {
        list_remove(&srv->socks, &sk->node);
        free(sk);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&srv->socks_mu);
}

/* The sweeper thread: shuts down the socket of every connection whose request
 * head is late. MHD then sees the connection end and closes it as usual.
 * Activity does not help a late head (MHD's idle timeout does not cover a
 * client that sends a byte a second). */
static void *http_sweep(void *arg)
{
    http_server_t *srv = arg;
    pthread_mutex_lock(&srv->socks_mu);
    while (srv->sweeping) {
        int64_t now = jobd_mono_ms();
        int64_t limit = srv->head_timeout_ms;
        if (srv->socks.n >= HTTP_CONN_PRESSURE && limit > HTTP_HEAD_PRESSED_MS)
            limit = HTTP_HEAD_PRESSED_MS;
        size_t n = 0;
        for (list_node *node = srv->socks.head; node; node = node->next) {
            http_sock *sk = LIST_ITEM(node, http_sock, node);
            int64_t since = atomic_load_explicit(&sk->head_since_ms, memory_order_relaxed);
            /* the exchange fails when the head completed meanwhile */
            if (since == 0 || now - since < limit ||
                !atomic_compare_exchange_strong(&sk->head_since_ms, &since, 0))
                continue;
            shutdown(sk->fd, SHUT_RDWR);
            n++;
        }
        if (n > 0)
            log_event(LOG_WARN, "http.head_timeout", NULL,
                      "closed %zu of %zu connections whose request head took over %lld ms", n,
                      srv->socks.n, (long long)limit);
        struct timespec ts;
        http_abstime(HTTP_SWEEP_MS, &ts);
        pthread_cond_timedwait(&srv->sweep_cv, &srv->socks_mu, &ts);
    }
    pthread_mutex_unlock(&srv->socks_mu);
    return NULL;
}

int http_sweeper_start(http_server_t *srv)
{
    if (srv->head_timeout_ms <= 0)
        return 0;
    srv->sweeping = true;
    if (pthread_create(&srv->sweeper, NULL, http_sweep, srv) != 0)
        return -1;
    srv->sweeper_started = true;
    return 0;
}

void http_sweeper_stop(http_server_t *srv)
{
    if (!srv->sweeper_started)
        return;
    pthread_mutex_lock(&srv->socks_mu);
    srv->sweeping = false;
    pthread_cond_signal(&srv->sweep_cv);
    pthread_mutex_unlock(&srv->socks_mu);
    pthread_join(srv->sweeper, NULL);
    srv->sweeper_started = false;
}
