/*
 * arg_dedup.c -- see arg_dedup.h. One record per stored value, in two id
 * maps: by content key (hash and size, 16 bytes) and by object id.
 */
#include "arg_dedup.h"

#include <stdlib.h>
#include <string.h>

#include "id_map.h"

#define DEDUP_BUCKETS 64

typedef struct {
    uint64_t hash;
    uint64_t size;
} content_key;

typedef struct record {
    content_key key;
    object_id_t obj;
    id_node by_key;
    id_node by_obj;
} record;

struct dedup_table {
    id_map keys; /* record by content key */
    id_map objs; /* record by object id */
};

dedup_table *dedup_new(void)
{
    dedup_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (id_map_init(&t->keys, ID_MAP_KEY_OFF(record, by_key, key), sizeof(content_key),
                    DEDUP_BUCKETS) != 0 ||
        id_map_init(&t->objs, ID_MAP_KEY_OFF(record, by_obj, obj), OBJECT_ID_SIZE, DEDUP_BUCKETS) !=
            0) {
        dedup_free(t);
        return NULL;
    }
    return t;
}

void dedup_free(dedup_table *t)
{
    if (t == NULL)
        return;
    id_map_iter it;
    id_map_iter_init(&t->objs, &it);
    for (id_node *n; (n = id_map_iter_next(&t->objs, &it)) != NULL;)
        free(ID_MAP_ENTRY(n, record, by_obj));
    id_map_destroy(&t->keys);
    id_map_destroy(&t->objs);
    free(t);
}

static content_key key_of(uint64_t hash, uint64_t size)
{
    content_key k;
    memset(&k, 0, sizeof(k));
    k.hash = hash;
    k.size = size;
    return k;
}

bool dedup_find(const dedup_table *t, uint64_t hash, uint64_t size, object_id_t *out)
{
    content_key k = key_of(hash, size);
    record *r = ID_MAP_ENTRY(id_map_find(&t->keys, &k), record, by_key);
    if (r == NULL)
        return false;
    *out = r->obj;
    return true;
}

static void drop(dedup_table *t, record *r)
{
    id_map_remove(&t->keys, &r->by_key);
    id_map_remove(&t->objs, &r->by_obj);
    free(r);
}

int dedup_add(dedup_table *t, uint64_t hash, uint64_t size, const object_id_t *obj)
{
    record *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    r->key = key_of(hash, size);
    r->obj = *obj;
    record *old = ID_MAP_ENTRY(id_map_find(&t->keys, &r->key), record, by_key);
    if (old)
        drop(t, old);
    old = ID_MAP_ENTRY(id_map_find(&t->objs, obj), record, by_obj);
    if (old)
        drop(t, old);
    id_map_insert(&t->keys, &r->by_key);
    id_map_insert(&t->objs, &r->by_obj);
    return 0;
}

void dedup_forget(dedup_table *t, const object_id_t *obj)
{
    record *r = ID_MAP_ENTRY(id_map_find(&t->objs, obj), record, by_obj);
    if (r)
        drop(t, r);
}

size_t dedup_count(const dedup_table *t)
{
    return id_map_count(&t->objs);
}
