/* id_map.c -- see id_map.h. */
#include "id_map.h"

#include <stdlib.h>
#include <string.h>

#include "ids.h"

static const void *key_of(const id_map *m, const id_node *n)
{
    return (const char *)n + m->key_off;
}

static size_t slot(const id_map *m, const void *key)
{
    return id_hash(key, m->key_len) & (m->nbuckets - 1);
}

int id_map_init(id_map *m, ptrdiff_t key_off, size_t key_len, size_t initial)
{
    size_t n = 8;
    while (n < initial)
        n <<= 1;
    memset(m, 0, sizeof(*m));
    m->key_off = key_off;
    m->key_len = key_len;
    m->buckets = calloc(n, sizeof(*m->buckets));
    if (m->buckets == NULL)
        return -1;
    m->nbuckets = n;
    return 0;
}

void id_map_destroy(id_map *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

id_node *id_map_find(const id_map *m, const void *key)
{
    if (m->nbuckets == 0)
        return NULL;
    for (id_node *n = m->buckets[slot(m, key)]; n; n = n->next)
        if (memcmp(key_of(m, n), key, m->key_len) == 0)
            return n;
    return NULL;
}

/* Double the bucket array; on ENOMEM keep the old one (longer chains). */
static void grow(id_map *m)
{
    size_t nb = m->nbuckets * 2;
    id_node **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (id_node *n = m->buckets[i], *next; n; n = next) {
            next = n->next;
            size_t s = id_hash(key_of(m, n), m->key_len) & (nb - 1);
            n->next = b[s];
            b[s] = n;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

void id_map_insert(id_map *m, id_node *n)
{
    if (m->nbuckets == 0 && id_map_init(m, m->key_off, m->key_len, 8) != 0)
        abort(); /* a map whose init failed cannot hold anything */
    if (m->count >= m->nbuckets)
        grow(m);
    size_t s = slot(m, key_of(m, n));
    n->next = m->buckets[s];
    m->buckets[s] = n;
    m->count++;
}

bool id_map_remove(id_map *m, id_node *n)
{
    if (m->nbuckets == 0)
        return false;
    for (id_node **pp = &m->buckets[slot(m, key_of(m, n))]; *pp; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            n->next = NULL;
            m->count--;
            return true;
        }
    }
    return false;
}

id_node *id_map_remove_key(id_map *m, const void *key)
{
    if (m->nbuckets == 0)
        return NULL;
    for (id_node **pp = &m->buckets[slot(m, key)]; *pp; pp = &(*pp)->next) {
        id_node *n = *pp;
        if (memcmp(key_of(m, n), key, m->key_len) == 0) {
            *pp = n->next;
            n->next = NULL;
            m->count--;
            return n;
        }
    }
    return NULL;
}

/* Find the first node at or after bucket it->bucket and park it in it->next. */
static void advance(const id_map *m, id_map_iter *it)
{
    while (it->next == NULL && it->bucket < m->nbuckets)
        it->next = m->buckets[it->bucket++];
}

void id_map_iter_init(const id_map *m, id_map_iter *it)
{
    it->bucket = 0;
    it->next = NULL;
    advance(m, it);
}

id_node *id_map_iter_next(const id_map *m, id_map_iter *it)
{
    id_node *n = it->next;
    if (n == NULL)
        return NULL;
    it->next = n->next;
    advance(m, it);
    return n;
}
