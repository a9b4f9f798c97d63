/*
 * gcs_objdir.h -- the object directory: which nodes hold a copy of each
 * object in their plasma store, with its size and owner. Inline objects
 * never reach it. Pure state (callers persist and publish): no sockets.
 *
 * Raylets send batches of ObjectLocation updates (removed = false: the node
 * now holds the object; true: it no longer does). A DEAD node's locations
 * are dropped with gcs_objdir_remove_node.
 *
 * Ownership: the directory copies what it keeps. Locations it hands out
 * point into its memory: valid until the next call that modifies it.
 * Thread-safety: none; the directory belongs to the GCS loop thread.
 */
#ifndef RAYC_GCS_OBJDIR_H
#define RAYC_GCS_OBJDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "rayc.pb-c.h"

#define GCS_OBJDIR_KEY_SIZE  (OBJECT_ID_SIZE + NODE_ID_SIZE) /* storage key */
#define GCS_OBJDIR_OWNER_MAX 64                              /* longest owner id kept */

typedef struct gcs_objdir gcs_objdir;

/* Called for each location remove_node drops (loc->removed is true). */
typedef void (*gcs_objdir_removed_fn)(void *arg, const Rpc__ObjectLocation *loc);

/* NULL on allocation failure. */
gcs_objdir *gcs_objdir_new(void);
void gcs_objdir_free(gcs_objdir *d); /* accepts NULL */

/* Apply one update. Returns 1 if the directory changed, 0 if it was a no-op
 * (adding a known location with the same size, removing an unknown one),
 * RAYC_EINVAL (object id or node id not 28 bytes, owner id too long) or
 * RAYC_ENOMEM (unchanged). */
int gcs_objdir_apply(gcs_objdir *d, const Rpc__ObjectLocation *loc);

/* The locations of an object, into out[] (each initialised; bytes point into
 * the directory). Returns how many were written (at most cap). */
size_t gcs_objdir_get(const gcs_objdir *d, const uint8_t *object_id, size_t len,
                      Rpc__ObjectLocation *out, size_t cap);
/* How many nodes hold the object. */
size_t gcs_objdir_count(const gcs_objdir *d, const uint8_t *object_id, size_t len);

/* Drop every location on node_id, calling cb (may be NULL) for each one
 * before it is freed. Returns how many were dropped. */
size_t gcs_objdir_remove_node(gcs_objdir *d, const uint8_t *node_id, size_t len,
                              gcs_objdir_removed_fn cb, void *arg);

/* Load one stored location (packed ObjectLocation). Returns RAYC_OK,
 * RAYC_EINVAL or RAYC_ENOMEM. */
int gcs_objdir_load(gcs_objdir *d, const uint8_t *packed, size_t len);

/* Storage key: object id then node id. */
void gcs_objdir_storage_key(const uint8_t *object_id, const uint8_t *node_id,
                            uint8_t out[GCS_OBJDIR_KEY_SIZE]);

/* Objects with at least one location. */
size_t gcs_objdir_size(const gcs_objdir *d);

/* Called by gcs_objdir_walk for each location (valid during the call only). */
typedef void (*gcs_objdir_walk_fn)(void *arg, const Rpc__ObjectLocation *loc);
/* Visit every location, in no particular order; cb must not modify the
 * directory. Returns how many were visited. */
size_t gcs_objdir_walk(const gcs_objdir *d, gcs_objdir_walk_fn cb, void *arg);

#endif
