/*
 * gcs_map.c -- byte-string keyed hash map; see gcs_map.h.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_map.h"

#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "rayc.h"

#define INITIAL_BUCKETS 16

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    void *val;
    size_t klen;
    uint8_t key[]; /* klen bytes */
} entry;

struct gcs_map {
    entry **buckets;
    size_t nbuckets; /* power of two */
    size_t size;
    uint64_t seed;
    gcs_map_free_fn free_val;
};

/* FNV-1a over the seed and the key: ids are random and KV keys are short,
 * so this is fast and, seeded, hard to aim collisions at. */
static uint64_t hash_bytes(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    return h;
}

gcs_map *gcs_map_new(gcs_map_free_fn free_val)
{
    gcs_map *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->buckets = calloc(INITIAL_BUCKETS, sizeof(entry *));
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    m->nbuckets = INITIAL_BUCKETS;
    m->free_val = free_val;
    id_random_bytes(&m->seed, sizeof(m->seed));
    return m;
}

void gcs_map_free(gcs_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            if (m->free_val)
                m->free_val(e->val);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static entry **find_slot(const gcs_map *m, const void *key, size_t klen, uint64_t h)
{
    entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
    return pp;
}

/* Double the bucket array. On allocation failure the map keeps working with
 * longer chains, so this cannot fail visibly. */
static void grow(gcs_map *m)
{
    size_t n = m->nbuckets * 2;
    entry **nb = calloc(n, sizeof(entry *));
    if (nb == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            size_t b = e->hash & (n - 1);
            e->next = nb[b];
            nb[b] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = nb;
    m->nbuckets = n;
}

int gcs_map_put(gcs_map *m, const void *key, size_t klen, void *val)
{
    uint64_t h = hash_bytes(m->seed, key, klen);
    entry **pp = find_slot(m, key, klen, h);
    if (*pp) {
        if (m->free_val && (*pp)->val != val)
            m->free_val((*pp)->val);
        (*pp)->val = val;
        return 0;
    }
    entry *e = malloc(sizeof(*e) + klen);
    if (e == NULL)
        return RAYC_ENOMEM;
    e->next = NULL;
    e->hash = h;
    e->val = val;
    e->klen = klen;
    if (klen)
        memcpy(e->key, key, klen);
    *pp = e;
    if (++m->size > m->nbuckets)
        grow(m);
    return 1;
}

void *gcs_map_get(const gcs_map *m, const void *key, size_t klen)
{
    entry **pp = find_slot(m, key, klen, hash_bytes(m->seed, key, klen));
    return *pp ? (*pp)->val : NULL;
}

bool gcs_map_has(const gcs_map *m, const void *key, size_t klen)
{
    return *find_slot(m, key, klen, hash_bytes(m->seed, key, klen)) != NULL;
}

bool gcs_map_del(gcs_map *m, const void *key, size_t klen)
{
    entry **pp = find_slot(m, key, klen, hash_bytes(m->seed, key, klen));
    entry *e = *pp;
    if (e == NULL)
        return false;
    *pp = e->next;
    if (m->free_val)
        m->free_val(e->val);
    free(e);
    m->size--;
    return true;
}

size_t gcs_map_size(const gcs_map *m)
{
    return m->size;
}

void gcs_map_iter_init(gcs_map_iter *it)
{
    it->bucket = 0;
    it->next = NULL;
}

/* The iterator remembers the entry after the one it returns, so the caller
 * may delete the returned entry. */
bool gcs_map_next(const gcs_map *m, gcs_map_iter *it, const uint8_t **key, size_t *klen, void **val)
{
    entry *e = it->next;
    while (e == NULL) {
        if (it->bucket >= m->nbuckets)
            return false;
        e = m->buckets[it->bucket++];
    }
    it->next = e->next;
    if (key)
        *key = e->key;
    if (klen)
        *klen = e->klen;
    if (val)
        *val = e->val;
    return true;
}
