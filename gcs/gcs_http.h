/*
 * gcs_http.h -- the head's HTTP server (libevent evhttp) on the dashboard
 * port: the web page, the state API (/api/v0/...), Ray's job REST API
 * (/api/jobs/...) over gcs_jobsub, and Prometheus text at /metrics.
 *
 * Every request must carry the cluster token: "Authorization: Bearer
 * <token>", or the session cookie a browser gets by opening /?token=<token>
 * once (the cookie holds an HMAC of the token, never the token). Anything
 * else gets 401. Tokens are compared in constant time.
 *
 * Limits, because anyone who can reach the port can talk to it: request
 * bodies up to GCS_HTTP_MAX_BODY, headers up to GCS_HTTP_MAX_HEADERS, idle
 * connections closed after GCS_HTTP_TIMEOUT_S, at most GCS_HTTP_MAX_CONNS
 * connections that have sent a request (more get 503 and are closed).
 * Out of descriptors, accepting pauses and retries on a timer (as
 * common/listener does) instead of spinning. The default host is loopback.
 *
 * Thread-safety: none; runs on the GCS loop's thread, like the GCS.
 */
#ifndef RAYC_GCS_HTTP_H
#define RAYC_GCS_HTTP_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "gcs_server.h"

#define GCS_HTTP_MAX_BODY    (64 << 10)
#define GCS_HTTP_MAX_HEADERS (16 << 10)
#define GCS_HTTP_TIMEOUT_S   30
#define GCS_HTTP_MAX_CONNS   64
#define GCS_HTTP_LOGS_MAX    (1 << 20) /* log bytes in one /logs reply */
#define GCS_HTTP_COOKIE      "rayc_session"

typedef struct gcs_http gcs_http;

/* Serve srv's tables on host:port (port 0: any free port) and run the job
 * manager (entrypoints' logs under <session>/logs). Writes the bound
 * "host:port" to <session>/dashboard_address when the GCS has a session
 * dir. Returns NULL with err set ("dashboard port 8265 is in use", ...). */
gcs_http *gcs_http_new(struct event_base *base, gcs_server *srv, const char *host, int port,
                       char *err, size_t errlen);
/* Stop serving, kill running entrypoints, free. Accepts NULL. */
void gcs_http_free(gcs_http *h);
/* The bound port. */
int gcs_http_port(const gcs_http *h);
/* Times accepting ran out of descriptors (or memory) and paused: the
 * listener then retries on a timer (50 ms, backing off to 1 s) instead of
 * spinning. For tests. */
uint64_t gcs_http_accept_pauses(const gcs_http *h);

#endif
