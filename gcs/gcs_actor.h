/*
 * gcs_actor.h -- the actor table: Ray's actor lifecycle, held by the GCS.
 * Pure state (callers persist it and tell raylets): no sockets, no storage.
 *
 *   register -> PENDING_CREATION --created--> ALIVE
 *                      ^                        |
 *                      |  restarts left         | process died, node died,
 *                      +---- RESTARTING <-------+ kill without no_restart
 *                                               |
 *       no restarts left, kill(no_restart), job ended (not detached),
 *       creator released it, constructor failed        --> DEAD (cause)
 *
 * Names are per namespace and belong to an actor until it is DEAD; then the
 * name is free for a new actor. max_restarts -1 restarts forever. A DEAD
 * record stays in the table (callers learn the cause from it).
 *
 * Ownership: the table owns its ActorInfo records; pointers it hands out are
 * valid until the next call that modifies the table or gcs_actor_table_free.
 * Thread-safety: none; the table belongs to the GCS loop thread.
 */
#ifndef RAYC_GCS_ACTOR_H
#define RAYC_GCS_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "rayc.pb-c.h"

typedef struct gcs_actor_table gcs_actor_table;

/* Called for each actor a bulk change (node died, job ended) touched, after
 * its record changed: the caller persists it and tells who must know. */
typedef void (*gcs_actor_cb)(void *arg, const Rpc__ActorInfo *actor);

/* NULL on allocation failure. */
gcs_actor_table *gcs_actor_table_new(void);
void gcs_actor_table_free(gcs_actor_table *t); /* accepts NULL */

/* Register a new actor from info (copied): PENDING_CREATION, no restarts
 * yet, start_time_ms defaults to wall_ms. Returns RAYC_OK with *out set,
 * RAYC_EINVAL (id not ACTOR_ID_SIZE bytes, or no class), RAYC_EEXIST (the id
 * is known, or the name is taken in the namespace by an actor not DEAD:
 * *out is then that actor), RAYC_ENOMEM (table unchanged). */
int gcs_actor_register(gcs_actor_table *t, const Rpc__ActorInfo *info, uint64_t wall_ms,
                       const Rpc__ActorInfo **out);

/* The constructor ran on (node, worker) and the actor answers at address:
 * PENDING_CREATION or RESTARTING -> ALIVE. Returns RAYC_OK, RAYC_ENOTFOUND,
 * RAYC_EINVAL (the actor is ALIVE or DEAD: a late report, ignored),
 * RAYC_ENOMEM. */
int gcs_actor_created(gcs_actor_table *t, const actor_id_t *id, const node_id_t *node,
                      const worker_id_t *worker, const char *address, int pid,
                      const Rpc__ActorInfo **out);

/* The actor's process is gone (cause says why). With restartable and
 * restarts left it goes RESTARTING (num_restarts + 1, its placement
 * cleared), else DEAD with cause. A DEAD actor is left as it is.
 * Returns RAYC_OK or RAYC_ENOTFOUND; *out (may be NULL) gets the record. */
int gcs_actor_failed(gcs_actor_table *t, const actor_id_t *id, const char *cause, bool restartable,
                     uint64_t wall_ms, const Rpc__ActorInfo **out);

/* Every actor not DEAD placed on node fails with "node <hex> died"
 * (restartable); cb for each. Returns how many. */
size_t gcs_actor_node_died(gcs_actor_table *t, const node_id_t *node, uint64_t wall_ms,
                           gcs_actor_cb cb, void *arg);
/* Every non-detached actor of the job not DEAD dies with "its job ended";
 * cb for each. Returns how many. */
size_t gcs_actor_job_ended(gcs_actor_table *t, uint32_t job_id, uint64_t wall_ms, gcs_actor_cb cb,
                           void *arg);

/* A creation of the waiting (PENDING_CREATION or RESTARTING) actor was sent
 * to node: it is placed there until it is created or fails. Returns
 * RAYC_OK, RAYC_ENOTFOUND, RAYC_EINVAL (not waiting), RAYC_ENOMEM. */
int gcs_actor_placed(gcs_actor_table *t, const actor_id_t *id, const node_id_t *node);
/* Actors not DEAD placed on node: being created there, or ALIVE there.
 * O(1) (kept as records change); placement balances by it. */
size_t gcs_actor_on_node(const gcs_actor_table *t, const node_id_t *node);
/* Waiting actors not placed on any node yet (up to cap). */
size_t gcs_actor_unplaced(const gcs_actor_table *t, const Rpc__ActorInfo **out, size_t cap);

/* Load a record from storage (packed ActorInfo). Returns RAYC_OK,
 * RAYC_EINVAL (does not unpack, bad id) or RAYC_ENOMEM. */
int gcs_actor_load(gcs_actor_table *t, const uint8_t *packed, size_t len);

const Rpc__ActorInfo *gcs_actor_get(const gcs_actor_table *t, const actor_id_t *id);
/* The actor holding name in namespace (not DEAD), or NULL. */
const Rpc__ActorInfo *gcs_actor_by_name(const gcs_actor_table *t, const char *namespace_,
                                        const char *name);
size_t gcs_actor_count(const gcs_actor_table *t);
/* How many actors are in each state: counts[RPC__ACTOR_STATE__ACTOR_DEAD + 1]. */
void gcs_actor_count_states(const gcs_actor_table *t, size_t counts[4]);
/* Fill out[] with up to cap records, in no particular order. Returns the
 * number written. */
size_t gcs_actor_list(const gcs_actor_table *t, const Rpc__ActorInfo **out, size_t cap);

/* "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD". */
const char *gcs_actor_state_name(int state);

#endif
