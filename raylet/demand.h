/*
 * demand.h -- interned resource demands. A task's demand is a res_set of
 * 2.3 KB (32 names of 64 bytes and their amounts), while a node's queue
 * holds a million tasks of a handful of demands: each task points at one
 * shared, reference-counted copy instead of carrying its own.
 *
 * Pure data (no I/O). Threading: the raylet's loop thread.
 */
#ifndef RAYC_DEMAND_H
#define RAYC_DEMAND_H

#include "util.h"

typedef struct demand_table demand_table;

/* An empty table, or NULL when out of memory. */
demand_table *demand_table_new(void);
/* Frees the table and every demand in it (NULL is fine): pointers it handed
 * out die with it. */
void demand_table_free(demand_table *dt);

/* The shared copy of a demand equal to d (same names, order and amounts),
 * with one more reference; NULL when out of memory. Valid until the matching
 * demand_release. */
const res_set *demand_intern(demand_table *dt, const res_set *d);
/* Drops one reference of an interned demand (NULL is fine); the last one
 * frees it. */
void demand_release(demand_table *dt, const res_set *d);
/* Distinct demands held (for tests and statistics). */
size_t demand_count(const demand_table *dt);

#endif
