/*
 * reference_table.h -- what this process knows about objects (Ray's
 * reference counter): the references it owns, the values it handed out, the
 * store pins it holds, and the pin cache. Pure data structure: no I/O and no
 * locking (the caller holds librayc's lock around every call). What must
 * reach the store or the task submitter goes out through reft_hooks.
 *
 * An entry lives while any of these holds:
 *   refs  > 0   the application holds rayc_ref handles (owner counting)
 *   views > 0   rayc_value views are out and not yet released
 *   pinned      this client holds a store pin (kept as a cache after the
 *               last view is released, so repeated gets need no round trip)
 * Entries come from a free list, so steady-state puts and gets do not call
 * malloc for bookkeeping.
 *
 * Pin cache: entries that are pinned, referenced and have no views. It holds
 * at most max_objects entries and max_bytes bytes (the newest entry stays
 * even when it alone is over the byte bound); over a bound it is trimmed to
 * 7/8 of it, so one release message carries many pins.
 *
 * Thread-safety: none; librayc's core lock guards the table.
 */
#ifndef RAYC_REFERENCE_TABLE_H
#define RAYC_REFERENCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "id_map.h"
#include "ids.h"

#define REFT_INITIAL_BUCKETS 1024
#define REFT_RELEASE_BATCH   64   /* pins given back per release_pins call, at most */
#define REFT_CACHE_OBJECTS   1024 /* default bound of the pin cache (objects) */

typedef struct ref_entry {
    object_id_t id;
    int32_t refs;    /* handles the application owns */
    int32_t views;   /* values handed out, not yet released */
    bool owned;      /* created by this process (put, or a task it submitted) */
    bool in_store;   /* the value lives in the plasma store */
    bool pinned;     /* this client holds a store pin on it */
    bool sealed;     /* value complete (inline puts are sealed at once) */
    bool deleted;    /* owner already told the store to free it */
    bool cached;     /* on the pin-cache list */
    bool remote;     /* in_store on another node (node), not pulled here yet */
    bool in_slab;    /* written into our put slab; the store learns of it at seal */
    bool lent;       /* owned inline value sent to a borrower's node: its copies go with it */
    bool borrowed;   /* not owned: registered with the owner as a borrower (rayc_ref_retain) */
    int32_t borrows; /* owned: borrowers registered with us; the object stays while any */
    node_id_t node;  /* store objects: a node that holds it */
    int status;      /* RAYC_OK, or the error this object stands for */
    void *data;      /* inline: heap copy; store: pointer into the mapped arena */
    size_t size;
    char *error;                     /* error message when status != RAYC_OK (heap) */
    id_node hnode;                   /* id_map link */
    struct ref_entry *lprev, *lnext; /* pin-cache list; lnext also links the free list */
} ref_entry;

/* What the table asks of the rest of librayc. Each is called with the lock
 * held and must not add or remove entries of other objects than it is told
 * about, except owned_gone (the submitter's lineage), which may release
 * references through this table's functions. */
typedef struct reft_hooks {
    /* Give back this client's store pins on es[0..n) (n <= REFT_RELEASE_BATCH).
     * The entries are valid during the call only. */
    void (*release_pins)(void *arg, ref_entry *const *es, size_t n);
    /* The owner is done with store object id: free it in the store, and with
     * release_pin drop this client's pin on it too. */
    void (*delete_object)(void *arg, const object_id_t *id, bool release_pin);
    /* The entry of an owned object id is gone (no refs, views or pins). */
    void (*owned_gone)(void *arg, const object_id_t *id);
    void *arg;
} reft_hooks;

typedef struct ref_table {
    id_map map;
    ref_entry *free_list;
    ref_entry *cache_head, *cache_tail; /* LRU: head is oldest */
    size_t cache_count, cache_bytes;
    size_t cache_max_objects, cache_max_bytes;
    reft_hooks hooks;
} ref_table;

/* An empty table with the given hooks (any hook may be NULL: nothing is
 * sent). Cache bounds start at REFT_CACHE_OBJECTS and no byte limit. 0, or -1 on
 * allocation failure (the table is then safe to destroy). */
int reft_init(ref_table *t, const reft_hooks *hooks);
/* Free every entry (inline data and error strings too). Calls no hook. */
void reft_destroy(ref_table *t);
/* Bounds of the pin cache (see above). */
void reft_set_cache_bounds(ref_table *t, size_t max_objects, size_t max_bytes);

ref_entry *reft_find(ref_table *t, const object_id_t *id);
/* Find or add a zeroed entry for id. NULL on allocation failure. */
ref_entry *reft_get_or_add(ref_table *t, const object_id_t *id, bool *added);
/* Remove and recycle an entry (frees its inline data and error). Calls no
 * hook: for entries whose object never existed. */
void reft_remove(ref_table *t, ref_entry *e);
static inline size_t reft_count(const ref_table *t)
{
    return id_map_count(&t->map);
}

/* Pin cache: entries that are pinned but have no refs and no views. */
void reft_cache_add(ref_table *t, ref_entry *e);
void reft_cache_remove(ref_table *t, ref_entry *e);
bool reft_in_cache(const ref_entry *e);
ref_entry *reft_cache_oldest(ref_table *t);

/* Give back cached pins until the cache is within its bounds (all of them
 * when everything is true). Entries nobody references any more go. */
void reft_trim_cache(ref_table *t, bool everything);
/* The last view or reference of e may have gone: an owned store object with
 * no refs is deleted in the store; a pinned entry still referenced but not
 * viewed goes to the pin cache; an entry with neither goes (its pin given
 * back). */
void reft_maybe_finalize(ref_table *t, ref_entry *e);
/* The raylet pinned e's store object for us, at data (NULL: an offset
 * outside the arena, so the pin is given back; a second pin too). */
void reft_took_pin(ref_table *t, ref_entry *e, void *data);

#endif
