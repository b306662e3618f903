/* delay_proxy.h - a loopback TCP proxy for tests that need a slow Redis:
 * every chunk of bytes, in either direction, is passed on delay_ms after
 * it arrived (a slow network or a slow server, without touching either). */
#ifndef JOBD_TEST_DELAY_PROXY_H
#define JOBD_TEST_DELAY_PROXY_H

typedef struct dp_proxy dp_proxy;

/* Starts a proxy on a free 127.0.0.1 port to 127.0.0.1:target, passing bytes
 * on after delay_ms. New proxy (stop it with dp_stop), its port in *port;
 * NULL when it cannot listen. */
dp_proxy *dp_start(int target, int delay_ms, int *port);

/* Changes the delay of bytes that arrive from now on. */
void dp_set_delay(dp_proxy *p, int delay_ms);

/* Closes every connection, joins the proxy's threads and frees p. */
void dp_stop(dp_proxy *p);

#endif
