/*
 * gcs_server.h -- the GCS daemon's core: one context that owns the storage,
 * the tables (nodes, jobs, KV, object directory), pub/sub, the TCP listener
 * and every client connection, all on one libevent loop (one thread).
 *
 * Start-up: gcs_server_new binds the listener at once (so "port in use" is
 * reported before anything else), then loads every table from storage on
 * the loop. Connections wait in the listen backlog until loading is done;
 * then they are accepted (cluster token required) and the health check
 * timer starts. If loading fails the server breaks the loop and
 * gcs_server_fatal() says why.
 *
 * Protocol: every request of the proto sections nodes, jobs, KV, pub/sub
 * and object directory is served by one handler (gcs_rpc.c). Every reply
 * echoes req_id and carries a Status; replies to writes go out after the
 * storage write completes, so replies on one connection may come out of
 * request order (reads are answered at once): match them by req_id.
 *
 * Ownership: the server owns the storage it is given and frees it.
 * Thread-safety: everything runs on the loop's thread.
 */
#ifndef RAYC_GCS_SERVER_H
#define RAYC_GCS_SERVER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "gcs_storage.h"

typedef struct gcs_server gcs_server;

/* What serves the clients: the request handlers and the managers'
 * reactions (gcs_server_int.h). The server owns connections, storage, the
 * tables and the health check, and calls these; gcs_rpc.c provides them. */
typedef struct gcs_services gcs_services;
extern const gcs_services gcs_rpc_services;

/* Create the server on base: bind cfg->node_ip_address:cfg->port and start
 * loading the tables from storage (taken over, even on failure). token is
 * the cluster token peers must prove (copied). Returns NULL with err set
 * ("port N is in use", ...) on failure. cfg and svc (usually
 * &gcs_rpc_services) must outlive the server. */
gcs_server *gcs_server_new(struct event_base *base, const rayc_config *cfg, const char *token,
                           gcs_storage *storage, const gcs_services *svc, char *err, size_t errlen);

/* Stop the loop (e.g. on SIGTERM); gcs_server_free does the cleanup. */
void gcs_server_stop(gcs_server *srv);

/* Close every connection, cancel pending work, free everything (storage
 * included). Runs the loop briefly to let connections close. Accepts NULL. */
void gcs_server_free(gcs_server *srv);

/* Why the server gave up (load failure), or NULL if it did not. */
const char *gcs_server_fatal(const gcs_server *srv);
/* Tables loaded and connections being accepted. */
bool gcs_server_is_ready(const gcs_server *srv);
/* The TCP port it listens on (useful with --port=0). */
int gcs_server_port(const gcs_server *srv);

#endif
