/* ref_table.c -- see ref_table.h. */
#include "ref_table.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 1024

int reft_init(ref_table *t)
{
    memset(t, 0, sizeof(*t));
    t->buckets = calloc(INITIAL_BUCKETS, sizeof(*t->buckets));
    if (t->buckets == NULL)
        return -1;
    t->nbuckets = INITIAL_BUCKETS;
    return 0;
}

static void free_payload(ref_entry *e)
{
    if (!e->in_store)
        free(e->data);
    free(e->error);
}

void reft_destroy(ref_table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (ref_entry *e = t->buckets[i], *n; e; e = n) {
            n = e->hnext;
            free_payload(e);
            free(e);
        }
    }
    for (ref_entry *e = t->free_list, *n; e; e = n) {
        n = e->hnext;
        free(e);
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

static size_t slot(const ref_table *t, const object_id_t *id)
{
    return id_hash(id->b, OBJECT_ID_SIZE) & (t->nbuckets - 1);
}

ref_entry *reft_find(ref_table *t, const object_id_t *id)
{
    for (ref_entry *e = t->buckets[slot(t, id)]; e; e = e->hnext)
        if (memcmp(e->id.b, id->b, OBJECT_ID_SIZE) == 0)
            return e;
    return NULL;
}

/* Double the bucket array when the load factor passes 1. */
static void grow(ref_table *t)
{
    size_t n = t->nbuckets * 2;
    ref_entry **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (ref_entry *e = t->buckets[i], *next; e; e = next) {
            next = e->hnext;
            size_t s = id_hash(e->id.b, OBJECT_ID_SIZE) & (n - 1);
            e->hnext = nb[s];
            nb[s] = e;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->nbuckets = n;
}

ref_entry *reft_get_or_add(ref_table *t, const object_id_t *id, bool *added)
{
    ref_entry *e = reft_find(t, id);
    if (added)
        *added = e == NULL;
    if (e)
        return e;
    if (t->count >= t->nbuckets)
        grow(t);
    if (t->free_list) {
        e = t->free_list;
        t->free_list = e->hnext;
    } else if ((e = malloc(sizeof(*e))) == NULL) {
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->id = *id;
    size_t s = slot(t, id);
    e->hnext = t->buckets[s];
    t->buckets[s] = e;
    t->count++;
    return e;
}

void reft_remove(ref_table *t, ref_entry *e)
{
    if (reft_in_cache(e))
        reft_cache_remove(t, e);
    for (ref_entry **pp = &t->buckets[slot(t, &e->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            t->count--;
            free_payload(e);
            e->hnext = t->free_list;
            t->free_list = e;
            return;
        }
    }
}

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

void reft_foreach(ref_table *t, void (*fn)(ref_entry *e, void *arg), void *arg)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (ref_entry *e = t->buckets[i]; e; e = e->hnext)
            fn(e, arg);
}
