/*
 * arg_dedup.h -- large by-value arguments stored once per distinct content
 * (docs/generators.md, "Large values by value"). The Dask lesson: a big
 * value embedded in the arguments of many tasks must not be stored once per
 * task.
 *
 * A RAYC_VAL argument over the inline limit is put in the store and handed
 * to its task as a ref. Before putting it, rayc_submit looks its content up
 * here, by (hash_bytes of the bytes, size): when an object of that content
 * is still held by a task (its entry has references), the new task takes a
 * reference to it instead of a new copy, after comparing the bytes (a hash
 * match alone never merges two values). The table holds no reference: an
 * entry lives exactly as long as its object (dedup_forget when the
 * reference table drops it), so a value is kept while any task that was
 * given it is pending, and stored again after they all ended.
 *
 * Pure data structure, no I/O; the caller holds librayc's lock.
 */
#ifndef RAYC_ARG_DEDUP_H
#define RAYC_ARG_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

#include "ids.h"

typedef struct dedup_table dedup_table;

/* An empty table, or NULL when out of memory. */
dedup_table *dedup_new(void);
/* Free it (objects are not touched). NULL-safe. */
void dedup_free(dedup_table *t);
/* The object last recorded for content (hash, size): true with *out. */
bool dedup_find(const dedup_table *t, uint64_t hash, uint64_t size, object_id_t *out);
/* Record obj as the object of content (hash, size), replacing an older
 * record of that content. -1 when out of memory (nothing recorded). */
int dedup_add(dedup_table *t, uint64_t hash, uint64_t size, const object_id_t *obj);
/* obj is gone: forget its record, if it has one. */
void dedup_forget(dedup_table *t, const object_id_t *obj);
/* Records held (tests). */
size_t dedup_count(const dedup_table *t);

#endif
