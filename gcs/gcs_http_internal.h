/*
 * gcs_http_internal.h -- what gcs_http.c shares with the route files beside
 * it (gcs_http_pkg.c: package uploads; gcs_http_logs.c: node logs). Not a public contract. Every
 * reply is counted in /metrics by its status code. GCS loop thread only.
 */
#ifndef RAYC_GCS_HTTP_INTERNAL_H
#define RAYC_GCS_HTTP_INTERNAL_H

#include <event2/http.h>

#include "gcs_http.h"
#include "gcs_json.h"
#include "gcs_upload.h"

struct evkeyvalq;

/* Send j (taken) as application/json with code. */
void gcs_http__reply_json(gcs_http *h, struct evhttp_request *req, int code, gcs_json *j);
/* {"error": msg} with code. */
void gcs_http__reply_error(gcs_http *h, struct evhttp_request *req, int code, const char *msg);
/* The server the HTTP side belongs to. */
struct gcs_server *gcs_http__server(gcs_http *h);

/* gcs_http_pkg.c: /api/packages/<sha256 hex>: GET {"exists", "size"};
 * POST ?offset=N with a piece of the package as the body ({"received":
 * N}); POST ?done=1 checks the hash and stores the package in the GCS KV
 * ({"uri": "gcs://_rayc_pkg_<hash>.tar.gz", "size"}). rest is the path
 * after "/api/packages/". */
void gcs_http__packages(gcs_http *h, struct evhttp_request *req, const char *rest,
                        struct evkeyvalq *q);
/* The package's bytes from the GCS KV (a gcs_jobsub_package_fn). */
int gcs_http__package(void *h, const char *hash, const uint8_t **data, size_t *len);
/* The server's staged uploads (gcs_upload.h). */
struct gcs_upload *gcs_http__uploads(gcs_http *h);

/* gcs_http_logs.c: GET /api/v0/logs, relayed to a node's raylet. */
typedef struct gcs_http_logs gcs_http_logs;
gcs_http_logs *gcs_http_logs_new(gcs_http *h, struct gcs_server *srv, struct event_base *base);
void gcs_http_logs_free(gcs_http_logs *l); /* NULL-safe; pending requests are dropped */
gcs_http_logs *gcs_http__logs_of(gcs_http *h);
void gcs_http__logs(gcs_http *h, struct evhttp_request *req, struct evkeyvalq *q);
/* A client connection closed: forget its pending log requests. */
void gcs_http__logs_conn_closed(gcs_http *h, struct evhttp_connection *c);

#endif
