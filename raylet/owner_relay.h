/*
 * owner_relay.h -- borrowed refs: the raylet's way to an object's owner
 * (issue 12; docs/objects.md, "Borrowing").
 *
 * A process that holds a ref it does not own (its bytes copied into a task's
 * arguments, say) needs the object's owner: to get a value that lives only
 * in the owner's memory (inline objects), to learn that the owner died or
 * freed it, and to register as a borrower (rayc_ref_retain) so the owner
 * keeps the object until the borrower releases it. An object id starts with
 * its owner's tag (ids.h); the relay finds the owner among this node's
 * clients, or asks every other live raylet, which relays the request to its
 * own client with that tag or answers that it has none (Ray finds the owner
 * from the address in the ref; our refs are 28 plain bytes, so the raylets
 * look it up).
 *
 * A get query (orel_get, from a client's pull) ends when the owner answers:
 * an inline value becomes a secondary copy in this node's store (the owner
 * frees it with the object), which wakes the client's get; a value in a
 * store leaves the work to the pull; one not made yet keeps the pull alive
 * and is asked about again; "freed" or "no
 * owner anywhere" (every live raylet said so, or died) is told to the
 * waiting clients as ObjectLost ("freed by its owner", "owner <tag> died").
 * A borrow or unborrow from a client is relayed the same way and its answer
 * goes back to the client.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_OWNER_RELAY_H
#define RAYC_OWNER_RELAY_H

#include <event2/event.h>
#include <stdbool.h>

#include "client_registry.h"
#include "conn.h"
#include "gcs_session.h"
#include "ids.h"
#include "msg.h"
#include "plasma_store.h"

enum { OREL_GET = 0, OREL_BORROW = 1, OREL_UNBORROW = 2 }; /* OwnerRequest.op */
enum { OREL_INLINE = 0, OREL_IN_STORE = 1, OREL_PENDING = 2, OREL_NOT_HERE = 3 }; /* .state */

/* A client's request asks owners about at most this many of its ids (the
 * rest on its next request): a hostile client cannot make the relay scan
 * or remember much. */
#define OREL_PER_REQUEST 256

typedef struct owner_relay owner_relay;

typedef struct orel_env {
    client_registry *clients;
    gcs_session *gs; /* the cluster view: which raylets to ask */
    plasma_store *store;
    /* A connection to a peer raylet, or NULL. */
    conn *(*peer)(void *ctx, const node_id_t *node);
    /* The owner will make the object (a task still runs): a pull of it
     * here must not give up for want of a holder yet. */
    void (*keep_pulling)(void *ctx, const object_id_t *id);
    void *ctx;
} orel_env;

/* NULL on allocation failure. */
owner_relay *orel_new(struct event_base *base, const node_id_t *self, const orel_env *env);
/* NULL-safe. Pending queries end without telling anyone. */
void orel_free(owner_relay *r);

/* Client cl (NULL: a pull that found no holder) waits for object id, which
 * is not in this node's store: find its owner (one query per object; later
 * askers join it). */
void orel_get(owner_relay *r, client *cl, const object_id_t *id);
/* Frames OWNER_REQUEST and OWNER_REPLY from a local client or (from != NULL)
 * a peer raylet. Malformed ones are dropped. */
void orel_client_frame(owner_relay *r, client *cl, uint16_t type, ProtobufCMessage *msg);
void orel_peer_frame(owner_relay *r, const node_id_t *from, uint16_t type, ProtobufCMessage *msg);
/* Local client cl freed these objects (DeleteObjects): the copies of the
 * inline values it owns and sent to other nodes through us are deleted
 * there at once (the directory may not know of them yet). Cheap when
 * nothing was lent. */
void orel_owner_deleted(owner_relay *r, const client *cl, const ProtobufCBinaryData *ids, size_t n);
/* A node died: queries that waited for its answer may now be complete. */
void orel_node_died(owner_relay *r, const node_id_t *node);

#endif
