/*
 * gcs_map.h -- a hash map from byte-string keys to pointers, shared by the
 * GCS tables (nodes, jobs, KV, object directory) and the in-memory storage.
 *
 * Keys are copied into the map (any bytes, any length, NUL allowed); values
 * are opaque pointers the map does not own unless a free_val function is
 * given, in which case the map frees them on delete, replace and
 * gcs_map_free. Separate chaining; the bucket array doubles at load factor 1.
 * The hash is seeded per map, so a peer cannot aim collisions at it.
 *
 * Iteration order is unspecified. While iterating, the entry just returned
 * may be deleted (gcs_map_del); any other insert or delete invalidates the
 * iterator.
 * Thread-safety: none; a map belongs to the GCS loop thread.
 */
#ifndef RAYC_GCS_MAP_H
#define RAYC_GCS_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gcs_map gcs_map;
typedef void (*gcs_map_free_fn)(void *val);

typedef struct {
    size_t bucket; /* next bucket to look at */
    void *next;    /* next entry in the current chain (internal) */
} gcs_map_iter;

/* A new empty map. free_val (may be NULL) frees values the map drops.
 * Returns NULL on allocation failure. */
gcs_map *gcs_map_new(gcs_map_free_fn free_val);
/* Free the map, its keys, and (with free_val) its values. Accepts NULL. */
void gcs_map_free(gcs_map *m);

/* Insert or replace key -> val. The previous value, if any, is freed with
 * free_val. Returns 1 if the key is new, 0 if it replaced a value, or
 * RAYC_ENOMEM (the map is unchanged; val is not freed). */
int gcs_map_put(gcs_map *m, const void *key, size_t klen, void *val);
/* The value of key, or NULL. */
void *gcs_map_get(const gcs_map *m, const void *key, size_t klen);
bool gcs_map_has(const gcs_map *m, const void *key, size_t klen);
/* Remove key, freeing its value with free_val. Returns true if it was there. */
bool gcs_map_del(gcs_map *m, const void *key, size_t klen);
size_t gcs_map_size(const gcs_map *m);

void gcs_map_iter_init(gcs_map_iter *it);
/* Next entry: true with key, klen and val set (key valid while the entry
 * lives), false at the end. Any out-pointer may be NULL. */
bool gcs_map_next(const gcs_map *m, gcs_map_iter *it, const uint8_t **key, size_t *klen,
                  void **val);

#endif
