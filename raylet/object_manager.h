/*
 * object_manager.h -- moves objects between nodes (DESIGN.md section 6).
 *
 * Pull-based: the node that needs an object asks a node that holds it (the
 * caller's hint first, then the GCS object directory), receives it in chunks
 * straight into its own store, seals it there as a secondary copy (evictable)
 * and the directory learns of the new copy through the store's seal hook.
 * Concurrent pulls of one object share one transfer. A transfer whose source
 * dies or disconnects moves to another holder; with none left the pull fails
 * with RAYC_EOBJECT_LOST. It never hangs.
 *
 * Serving side: a PullRequest pins the object (restoring it if spilled),
 * answers PullReply {size} and streams ObjectChunk frames from the arena with
 * no copy (conn_send_raw_ref); the pin is released when the last chunk is
 * written or the connection closes.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_OBJECT_MANAGER_H
#define RAYC_OBJECT_MANAGER_H

#include <event2/event.h>
#include <stdbool.h>

#include "config.h"
#include "conn.h"
#include "gcs_session.h"
#include "ids.h"
#include "plasma_store.h"

typedef struct object_manager object_manager;

/* What the object manager needs from the rest of the raylet. */
typedef struct {
    /* The connection to a live remote node's raylet, or NULL. */
    conn *(*peer)(void *ctx, const node_id_t *node);
    /* True if the view knows node and shows it alive. */
    bool (*node_alive)(void *ctx, const node_id_t *node);
    /* A GCS request (GetObjectLocations): 0, or -1 with cb not called. */
    int (*gcs_call)(void *ctx, uint16_t type, ProtobufCMessage *req, gs_reply_cb cb, void *arg);
    void *ctx;
    /* Optional: the directory knows no holder of id (once per pull). The
     * object may live in its owner's memory only (a borrowed ref,
     * owner_relay.h): a copy made here meanwhile ends the pull well. */
    void (*no_holder)(void *ctx, const object_id_t *id);
} om_env;

/* status: RAYC_OK (the object is sealed in the local store), or
 * RAYC_EOBJECT_LOST / RAYC_ESTORE_FULL with a message. Called exactly once. */
typedef void (*om_done_cb)(void *arg, const object_id_t *id, int status, const char *msg);

/* store and cfg are borrowed; env is copied. NULL on allocation failure. */
object_manager *om_new(struct event_base *base, const rayc_config *cfg, plasma_store *store,
                       const node_id_t *self, const om_env *env);
/* Fails every pending pull with RAYC_EOBJECT_LOST ("raylet stopping"). */
void om_free(object_manager *om);
/* The raylet is stopping: pulls end with RAYC_EOBJECT_LOST at their next step. */
void om_shutdown(object_manager *om);

/* Make id local. hint: a node believed to hold it (may be NULL). If the
 * object is already sealed here, cb runs at once with RAYC_OK. */
void om_pull(object_manager *om, const object_id_t *id, const node_id_t *hint, om_done_cb cb,
             void *arg);
/* The object's owner says it exists or will (a borrowed ref, owner_relay.h):
 * a pull of it waits LOOKUP_BUDGET_MS more for a holder before it gives up. */
void om_keep(object_manager *om, const object_id_t *id);
/* Frames from a peer raylet: PULL_REQUEST, PULL_REPLY, OBJECT_CHUNK. Returns
 * false for other types. */
bool om_handle(object_manager *om, conn *c, uint16_t type, ProtobufCMessage *msg);
/* A peer connection closed / a node died: move or fail its transfers. */
void om_peer_closed(object_manager *om, conn *c);
void om_node_died(object_manager *om, const node_id_t *node);

/* Bytes and objects received and sent since start (for logs and benchmarks). */
void om_stats(const object_manager *om, uint64_t *bytes_in, uint64_t *bytes_out,
              uint64_t *pulls_done, uint64_t *pulls_failed);

/* ---------------------------------------------------------------- internals
 * Pure pieces of the transfer protocol, exposed for unit tests. */

/* Object bytes per OBJECT_CHUNK frame for a peer limit of max_frame bytes
 * (0: the default limit): 4 MiB, less when frames must be smaller. */
size_t om__chunk_size(size_t max_frame);
/* Frames that carry size bytes in chunks of chunk bytes (0 for size 0: a
 * zero-byte object is complete with its PullReply). */
uint64_t om__chunk_count(uint64_t size, size_t chunk);
/* Check a received chunk against the transfer: object of size bytes, received
 * so far, chunk header {offset, total}, len data bytes. NULL when the chunk is
 * the next one in order and fits; else why it is a protocol error. */
const char *om__chunk_check(uint64_t size, uint64_t received, uint64_t offset, uint64_t total,
                            size_t len);
/* The next delay between directory lookups: 20 ms, doubling, capped at 500. */
uint64_t om__backoff_next(uint64_t cur_ms);

#endif
