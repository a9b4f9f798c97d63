/*
 * ref_table.h -- what this process knows about objects: the references it
 * owns, the values it handed out, and the store pins it holds. Pure data
 * structure (no I/O, no locking: the caller holds librayc's lock).
 *
 * An entry lives while any of these holds:
 *   refs  > 0   the application holds rayc_ref handles (owner counting)
 *   views > 0   rayc_value views are out and not yet released
 *   pinned      this client holds a store pin (kept as a cache after the
 *               last view is released, so repeated gets need no round trip)
 * Entries come from a free list, so steady-state puts and gets do not call
 * malloc for bookkeeping.
 */
#ifndef RAYC_REF_TABLE_H
#define RAYC_REF_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"

typedef struct ref_entry {
    object_id_t id;
    int32_t refs;   /* handles the application owns */
    int32_t views;  /* values handed out, not yet released */
    bool owned;     /* created by this process (put, or a task it submitted) */
    bool in_store;  /* the value lives in the plasma store */
    bool pinned;    /* this client holds a store pin on it */
    bool sealed;    /* value complete (inline puts are sealed at once) */
    bool deleted;   /* owner already told the store to free it */
    bool cached;    /* on the pin-cache list */
    bool remote;    /* in_store on another node (node), not pulled here yet */
    bool in_slab;   /* written into our put slab; the store learns of it at seal */
    node_id_t node; /* store objects: a node that holds it */
    int status;     /* RAYC_OK, or the error this object stands for */
    void *data;     /* inline: heap copy; store: pointer into the mapped arena */
    size_t size;
    char *error;                     /* error message when status != RAYC_OK (heap) */
    struct ref_entry *hnext;         /* hash chain */
    struct ref_entry *lprev, *lnext; /* pin-cache list (pinned, no refs, no views) */
} ref_entry;

typedef struct {
    ref_entry **buckets;
    size_t nbuckets, count;
    ref_entry *free_list;
    ref_entry *cache_head, *cache_tail; /* LRU: head is oldest */
    size_t cache_count, cache_bytes;
} ref_table;

int reft_init(ref_table *t);
/* Free every entry (inline data and error strings too). */
void reft_destroy(ref_table *t);
ref_entry *reft_find(ref_table *t, const object_id_t *id);
/* Find or add a zeroed entry for id. NULL on allocation failure. */
ref_entry *reft_get_or_add(ref_table *t, const object_id_t *id, bool *added);
/* Remove and recycle an entry (frees its inline data and error). */
void reft_remove(ref_table *t, ref_entry *e);

/* Pin cache: entries that are pinned but have no refs and no views. */
void reft_cache_add(ref_table *t, ref_entry *e);
void reft_cache_remove(ref_table *t, ref_entry *e);
bool reft_in_cache(const ref_entry *e);
ref_entry *reft_cache_oldest(ref_table *t);

/* Call fn for every entry (fn may not add or remove entries). */
void reft_foreach(ref_table *t, void (*fn)(ref_entry *e, void *arg), void *arg);

#endif
