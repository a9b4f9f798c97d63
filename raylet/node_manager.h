/*
 * node_manager.h -- the raylet's top level: it creates the components
 * (object store, GCS session, peers, object directory, client registry,
 * worker pool, job table, object manager, task manager), connects their
 * callbacks, owns the listeners (Unix socket for local drivers and workers,
 * TCP for other raylets) and routes frames to the components.
 *
 * Threading: everything runs in the raylet's single libevent loop.
 * Lifetime: nm_new() -> nm_start() -> event loop -> nm_free().
 */
#ifndef RAYC_NODE_MANAGER_H
#define RAYC_NODE_MANAGER_H

#include <event2/event.h>

#include "config.h"

typedef struct node_manager node_manager;

/* Build a raylet from its configuration (the struct is borrowed and must
 * outlive the node manager). On failure returns NULL and writes a one-line
 * reason into err. */
node_manager *nm_new(struct event_base *base, const rayc_config *cfg, char *err, size_t errlen);
/* Listen, connect to the GCS and register. Returns 0, or -1 with err set.
 * Failures after this point that end the raylet (the GCS refusing the node,
 * or never answering) stop the loop and set the exit reason. */
int nm_start(node_manager *nm, char *err, size_t errlen);
/* Drain the node at the GCS, then stop the loop (SIGTERM). */
void nm_shutdown(node_manager *nm);
/* Non-NULL if the raylet must exit with an error: the one-line reason. */
const char *nm_exit_reason(const node_manager *nm);
void nm_free(node_manager *nm);

#endif
