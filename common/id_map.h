/*
 * id_map.h -- an intrusive hash table keyed by fixed-size binary ids.
 *
 * The one id-keyed table of the project: the raylet's tasks and pulls and
 * librayc's references and owned tasks all live in one. Entries embed an
 * id_node and their key; the map links the nodes and never allocates or
 * frees an entry, so an entry costs one pointer of overhead and a lookup
 * touches only the chain of one bucket.
 *
 *   struct pull { object_id_t id; id_node hnode; ... };
 *   id_map m;
 *   id_map_init(&m, ID_MAP_KEY_OFF(struct pull, hnode, id), OBJECT_ID_SIZE, 64);
 *   id_map_insert(&m, &p->hnode);
 *   struct pull *p = ID_MAP_ENTRY(id_map_find(&m, &oid), struct pull, hnode);
 *
 * Buckets double when the load factor passes 1 (a failed allocation keeps
 * the old array: chains grow longer, nothing is lost). Keys are ids, which
 * are random, hashed with id_hash.
 *
 * Thread-safety: none; one map belongs to one thread or is locked by its
 * owner.
 */
#ifndef RAYC_ID_MAP_H
#define RAYC_ID_MAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct id_node {
    struct id_node *next; /* bucket chain; owned by the map while linked */
} id_node;

typedef struct id_map {
    id_node **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    ptrdiff_t key_off; /* key address = (char *)node + key_off */
    size_t key_len;
} id_map;

/* Cursor of a walk: the node it returns may be removed before the next step. */
typedef struct id_map_iter {
    size_t bucket;
    id_node *next;
} id_map_iter;

/* Offset from an entry's node to its key, for id_map_init. */
#define ID_MAP_KEY_OFF(type, node_field, key_field)                                                \
    ((ptrdiff_t)offsetof(type, key_field) - (ptrdiff_t)offsetof(type, node_field))
/* The entry that embeds `node` (NULL stays NULL). */
#define ID_MAP_ENTRY(node, type, node_field)                                                       \
    ((type *)id_map__entry((node), offsetof(type, node_field)))

/* Set up an empty map of keys key_len bytes long at key_off from each node,
 * with `initial` buckets (rounded up to a power of two, at least 8).
 * Returns 0, or -1 if the bucket array cannot be allocated (the map is then
 * empty and safe to destroy). */
int id_map_init(id_map *m, ptrdiff_t key_off, size_t key_len, size_t initial);
/* Free the bucket array. The entries are the caller's: walk and free them
 * first if the map owns them in spirit. Accepts a zeroed map. */
void id_map_destroy(id_map *m);

/* The node whose key equals `key`, or NULL. */
id_node *id_map_find(const id_map *m, const void *key);
/* Link `n` (its key already set). The caller guarantees the key is not in the
 * map; id_map_find first when it might be. */
void id_map_insert(id_map *m, id_node *n);
/* Unlink `n`. Returns false (and changes nothing) if it is not linked. */
bool id_map_remove(id_map *m, id_node *n);
/* Unlink and return the node with `key`, or NULL. */
id_node *id_map_remove_key(id_map *m, const void *key);

static inline size_t id_map_count(const id_map *m)
{
    return m->count;
}

/* Walk every node once, in no particular order:
 *   id_map_iter it; id_map_iter_init(m, &it);
 *   for (id_node *n; (n = id_map_iter_next(m, &it)) != NULL;) ...
 * The node just returned may be removed (and freed) during the walk; other
 * inserts and removes during a walk are not allowed. */
void id_map_iter_init(const id_map *m, id_map_iter *it);
id_node *id_map_iter_next(const id_map *m, id_map_iter *it);

static inline void *id_map__entry(id_node *n, size_t node_off)
{
    return n ? (void *)((char *)n - node_off) : NULL;
}

#endif
