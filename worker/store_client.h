/*
 * store_client.h -- librayc's client of the node's plasma store, spoken over
 * the raylet connection: create, seal, delete and release objects, get and
 * wait requests, and the put slab (a piece of the arena this process writes
 * small store objects into with no round trip; see docs/object_store.md).
 *
 * The client knows nothing of references: it sends what it is told and
 * hands replies back. What to do when the store is full beyond giving back
 * the slab (the pin cache) is asked of the on_full hook.
 *
 * Thread-safety: every function may be called from any thread. The slab
 * state has its own lock, never held while waiting for the raylet and never
 * held while calling out; callers must not hold librayc's core lock around
 * storec_create, storec_get, storec_wait or the slab calls that may ask the
 * raylet (storec_slab_take, storec_slab_give_back).
 */
#ifndef RAYC_STORE_CLIENT_H
#define RAYC_STORE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_conn.h"
#include "ids.h"

#define STOREC_SLAB_BACKOFF 64 /* puts before asking for a slab again after a refusal */

typedef struct store_client store_client;

/* The store is full for one of our creates: give back what this process
 * holds (cached pins). Returns true if there was anything. Called without
 * any lock held. */
typedef bool (*storec_full_fn)(void *arg);

/* A client over conn (not owned) for the arena mapped at [arena, +size).
 * slab_bytes: put slab to ask for (0: no slabs). NULL when out of memory. */
store_client *storec_new(cw_conn *conn, uint8_t *arena, size_t arena_size, size_t slab_bytes,
                         storec_full_fn on_full, void *arg);
/* Free the client (the raylet frees our slab with the connection). NULL-safe. */
void storec_free(store_client *sc);

/* Create a store object with a given id: 0 with its arena offset, or a code
 * with rayc_last_error set (RAYC_ESTORE_FULL with the store's message, after
 * one retry once on_full and the slab have given memory back). */
int storec_create(store_client *sc, const object_id_t *id, size_t size, uint64_t *offset);
/* Seal a created object; with keep_pin the store pins it for us at once. */
void storec_seal(store_client *sc, const object_id_t *id, bool keep_pin);
/* The owner is done with store object id (batched); with release_pin our own
 * pin on it goes too. Failures are logged. */
void storec_delete(store_client *sc, const object_id_t *id, bool release_pin);
/* Give back our pins on ids[0..n) (one message per 64). */
void storec_release(store_client *sc, const object_id_t *const *ids, size_t n);

/* Take size bytes for a store object from the put slab, asking the raylet
 * for a new slab when this one is used up. True with *off; false: create
 * the object with a round trip instead (too big for slabs, slabs off or
 * refused lately, another thread is asking). */
bool storec_slab_take(store_client *sc, size_t size, uint64_t *off);
/* Give the unused rest of the slab back (the store is short of memory) and
 * ask for no new one for a while. True if there was any. */
bool storec_slab_give_back(store_client *sc);
/* Announce an object written at arena offset off of our slab, sealed, with
 * our pin kept. Batched: a burst of puts costs a few writes. */
void storec_slab_object(store_client *sc, const object_id_t *id, uint64_t off, size_t size);

/* Ask the store for objects ids[0..n), waiting up to timeout_ms (-1: forever)
 * for all of them; with pull, ask the raylet to pull them from other nodes
 * first. 0 with *reply (free with msg_free; each object it reports OK is
 * pinned for us), or a code with rayc_last_error set and nothing pinned. */
int storec_get(store_client *sc, ProtobufCBinaryData *ids, size_t n, bool pull, int64_t timeout_ms,
               Rpc__GetObjectsReply **reply);
/* Ask which of ids[0..n) are sealed, waiting up to timeout_ms for want of
 * them. 0 with *reply (free with msg_free), or a code. */
int storec_wait(store_client *sc, ProtobufCBinaryData *ids, size_t n, size_t want,
                int64_t timeout_ms, Rpc__WaitObjectsReply **reply);

/* Frame handler (frame_router) for a GetObjectsReply nobody waits for any
 * more (a get that gave up): the pins it took are given back. arg: the
 * store_client. Returns 0 (the message is not kept). */
int storec_on_late_get_reply(void *arg, uint16_t type, ProtobufCMessage *msg);

#endif
