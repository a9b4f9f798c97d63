/*
 * metrics_server.h -- a daemon's Prometheus endpoint (issue 15): HTTP on
 * --metrics-port, `GET /metrics` answered with the text (format 0.0.4) a
 * render callback writes at scrape time. Like the dashboard, every request
 * needs the cluster token (`Authorization: Bearer <token>`, compared in
 * constant time); anything else is 401, other paths 404, other methods 405.
 * Bodies are capped at 4 KiB, headers at 16 KiB, idle connections close
 * after 30 s.
 *
 * Runs on the daemon's event loop (libevent's evhttp); no thread of its own.
 */
#ifndef RAYC_METRICS_SERVER_H
#define RAYC_METRICS_SERVER_H

#include <event2/event.h>
#include <stdio.h>

typedef struct metrics_server metrics_server;

/* Write the metrics as Prometheus text to f (an in-memory stream). */
typedef void (*msrv_render_fn)(void *arg, FILE *f);

/* Serve on host:port (0: a free port). token is copied. Returns NULL with
 * err set when the port cannot be bound (or out of memory). */
metrics_server *msrv_new(struct event_base *base, const char *host, int port, const char *token,
                         msrv_render_fn render, void *arg, char *err, size_t errlen);
/* The bound port. */
int msrv_port(const metrics_server *m);
/* Stop serving. NULL-safe. */
void msrv_free(metrics_server *m);

#endif
