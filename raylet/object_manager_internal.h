/*
 * object_manager_internal.h -- what the object manager's two files share:
 * object_manager.c pulls objects from other nodes, object_serving.c serves
 * this node's objects to their pulls. Not for other components: they see
 * object_manager.h. Runs in the raylet's loop thread.
 */
#ifndef RAYC_OBJECT_MANAGER_INTERNAL_H
#define RAYC_OBJECT_MANAGER_INTERNAL_H

#include "id_map.h"
#include "object_manager.h"

struct object_manager {
    struct event_base *base;
    plasma_store *store;
    node_id_t self;
    om_env env;
    plasma_client *pc; /* pins of objects being served; local waits */
    size_t chunk;
    uint64_t stall_ms; /* object_transfer_stall_ms */
    conn **sinks;      /* connections whose chunks land in the arena (om_sink) */
    size_t nsinks, sinks_cap;
    id_map pulls;                 /* pull by object id */
    struct serve *serves;         /* object_serving.c */
    struct restoring *restorings; /* object_serving.c */
    uint64_t next_req_id;
    bool closing;  /* om_free: new pulls fail at once */
    bool stopping; /* om_shutdown: pulls fail at their next step */
    uint64_t bytes_in, bytes_out, pulls_done, pulls_failed;
};

/* object_manager.c: a peer broke the object protocol: its connection is
 * closed and every transfer from it moves elsewhere. */
void om__protocol_error(object_manager *om, conn *c, const char *why);

/* object_serving.c */
/* Answer a PullRequest: the size, then every chunk straight from the arena
 * (a spilled object after its restore). */
void om__serve_pull(object_manager *om, conn *c, const Rpc__PullRequest *req);
/* om_free: chunks still queued on connections forget the manager (their
 * pins go with om->pc). */
void om__serving_stop(object_manager *om);
/* c closed: restores waited for on its behalf answer nobody. */
void om__serving_peer_closed(object_manager *om, conn *c);

#endif
