/* reference_table.c -- see reference_table.h. */
#include "reference_table.h"

#include <stdlib.h>
#include <string.h>

int reft_init(ref_table *t, const reft_hooks *hooks)
{
    memset(t, 0, sizeof(*t));
    if (hooks)
        t->hooks = *hooks;
    t->cache_max_objects = REFT_CACHE_OBJECTS;
    t->cache_max_bytes = SIZE_MAX;
    return id_map_init(&t->map, ID_MAP_KEY_OFF(ref_entry, hnode, id), OBJECT_ID_SIZE,
                       REFT_INITIAL_BUCKETS);
}

void reft_set_cache_bounds(ref_table *t, size_t max_objects, size_t max_bytes)
{
    t->cache_max_objects = max_objects;
    t->cache_max_bytes = max_bytes;
}

static void free_payload(ref_entry *e)
{
    if (!e->in_store)
        free(e->data);
    free(e->error);
}

void reft_destroy(ref_table *t)
{
    id_map_iter it;
    id_map_iter_init(&t->map, &it);
    for (id_node *n; (n = id_map_iter_next(&t->map, &it)) != NULL;) {
        ref_entry *e = ID_MAP_ENTRY(n, ref_entry, hnode);
        free_payload(e);
        free(e);
    }
    for (ref_entry *e = t->free_list, *n; e; e = n) {
        n = e->lnext;
        free(e);
    }
    id_map_destroy(&t->map);
    memset(t, 0, sizeof(*t));
}

ref_entry *reft_find(ref_table *t, const object_id_t *id)
{
    return ID_MAP_ENTRY(id_map_find(&t->map, id->b), ref_entry, hnode);
}

ref_entry *reft_get_or_add(ref_table *t, const object_id_t *id, bool *added)
{
    ref_entry *e = reft_find(t, id);
    if (added)
        *added = e == NULL;
    if (e)
        return e;
    if (t->free_list) {
        e = t->free_list;
        t->free_list = e->lnext;
    } else if ((e = malloc(sizeof(*e))) == NULL) {
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->id = *id;
    id_map_insert(&t->map, &e->hnode);
    return e;
}

void reft_remove(ref_table *t, ref_entry *e)
{
    if (reft_in_cache(e))
        reft_cache_remove(t, e);
    if (!id_map_remove(&t->map, &e->hnode))
        return;
    free_payload(e);
    e->lnext = t->free_list;
    t->free_list = e;
}

/* Remove e and tell the submitter when it was an owned object (lineage). */
static void drop(ref_table *t, ref_entry *e)
{
    object_id_t id = e->id;
    bool owned = e->owned;
    reft_remove(t, e);
    if (owned && t->hooks.owned_gone)
        t->hooks.owned_gone(t->hooks.arg, &id);
}

/* ------------------------------------------------------------ pin cache */

bool reft_in_cache(const ref_entry *e)
{
    return e->cached;
}

void reft_cache_add(ref_table *t, ref_entry *e)
{
    if (e->cached)
        return;
    e->cached = true;
    e->lprev = t->cache_tail;
    e->lnext = NULL;
    if (t->cache_tail)
        t->cache_tail->lnext = e;
    else
        t->cache_head = e;
    t->cache_tail = e;
    t->cache_count++;
    t->cache_bytes += e->size;
}

void reft_cache_remove(ref_table *t, ref_entry *e)
{
    if (!e->cached)
        return;
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        t->cache_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        t->cache_tail = e->lprev;
    e->lprev = e->lnext = NULL;
    e->cached = false;
    t->cache_count--;
    t->cache_bytes -= e->size;
}

ref_entry *reft_cache_oldest(ref_table *t)
{
    return t->cache_head;
}

static void release_pins(ref_table *t, ref_entry *const *es, size_t n)
{
    if (n > 0 && t->hooks.release_pins)
        t->hooks.release_pins(t->hooks.arg, es, n);
}

/* Give back the pins of batch[0..n); entries nobody uses any more go. */
static void unpin_batch(ref_table *t, ref_entry **batch, size_t n)
{
    release_pins(t, batch, n);
    for (size_t i = 0; i < n; i++) {
        ref_entry *e = batch[i];
        e->pinned = false;
        if (e->refs > 0) {
            e->data = NULL; /* still referenced: the next get pins it again */
            continue;
        }
        drop(t, e);
    }
}

void reft_trim_cache(ref_table *t, bool everything)
{
    ref_entry *batch[REFT_RELEASE_BATCH];
    size_t n = 0;
    /* Over a bound, trim well below it (to 7/8) so one ReleaseObjects carries
     * many pins instead of one per put. The newest pin stays even if it alone
     * is over the byte bound: one large object read again and again must not
     * cost a round trip each. */
    if (!everything && t->cache_count <= t->cache_max_objects &&
        (t->cache_bytes <= t->cache_max_bytes || t->cache_count <= 1))
        return;
    size_t max_objects = t->cache_max_objects / 8 * 7, max_bytes = t->cache_max_bytes / 8 * 7;
    while (t->cache_head && (everything || t->cache_count > max_objects ||
                             (t->cache_bytes > max_bytes && t->cache_count > 1))) {
        ref_entry *e = reft_cache_oldest(t);
        reft_cache_remove(t, e);
        batch[n++] = e;
        if (n == REFT_RELEASE_BATCH) {
            unpin_batch(t, batch, n);
            n = 0;
        }
    }
    unpin_batch(t, batch, n);
}

/* A store pin with no view is kept in the small LRU cache (so getting the
 * object again costs no round trip) but never held beyond it: a pinned
 * object cannot be spilled. */
void reft_maybe_finalize(ref_table *t, ref_entry *e)
{
    if (e->views > 0)
        return;
    if (e->refs == 0 && e->borrows == 0 && (e->in_store || e->lent) && e->owned && !e->deleted) {
        if (t->hooks.delete_object)
            t->hooks.delete_object(t->hooks.arg, &e->id, e->pinned);
        e->deleted = true;
        e->pinned = false;
    }
    if (e->in_store && e->pinned && e->refs > 0) {
        /* Only objects we reference: a pin on someone else's object would
         * keep it alive after its owner freed it. */
        reft_cache_add(t, e);
        reft_trim_cache(t, false);
        return;
    }
    if (e->refs > 0 || e->borrows > 0)
        return;
    if (e->cached)
        reft_cache_remove(t, e);
    if (e->pinned)
        release_pins(t, &e, 1);
    drop(t, e);
}

void reft_took_pin(ref_table *t, ref_entry *e, void *data)
{
    if (e->pinned || data == NULL) { /* one pin per entry: this one is extra */
        release_pins(t, &e, 1);
        return;
    }
    e->pinned = true;
    e->data = data;
    e->remote = false;
    if (e->views == 0) {
        reft_cache_add(t, e);
        reft_trim_cache(t, false);
    }
}
