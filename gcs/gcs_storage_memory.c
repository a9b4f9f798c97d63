/*
 * gcs_storage_memory.c -- the in-memory storage: one gcs_map per table.
 *
 * Operations take effect at once (so a get issued after a put sees it) and
 * their callbacks go through the common completion queue, so callers see
 * the same asynchrony as with Redis. Nothing persists past the process.
 * Runs in the GCS event-loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "gcs_storage.h"
#include "rayc.h"

typedef struct {
    gcs_storage base; /* first: a memory_storage is a gcs_storage */
    gcs_map *tables;  /* table name -> gcs_map of key -> value */
} memory_storage;

typedef struct {
    size_t len;
    uint8_t bytes[];
} value;

static void free_table(void *t)
{
    gcs_map_free(t);
}

/* The table's map, created on first write when create is set. */
static gcs_map *table_of(memory_storage *m, const char *table, bool create)
{
    gcs_map *t = gcs_map_get(m->tables, table, strlen(table));
    if (t == NULL && create) {
        t = gcs_map_new(free);
        if (t == NULL)
            return NULL;
        if (gcs_map_put(m->tables, table, strlen(table), t) < 0) {
            gcs_map_free(t);
            return NULL;
        }
    }
    return t;
}

static void mem_put(gcs_storage *s, const char *table, const void *key, size_t klen,
                    const void *val, size_t vlen, gcs_storage_done_fn cb, void *arg)
{
    memory_storage *m = (memory_storage *)s;
    gcs_map *t = table_of(m, table, true);
    value *v = t ? malloc(sizeof(*v) + vlen) : NULL;
    if (v == NULL) {
        gcs_storage__set_err(s, "out of memory");
        gcs_storage__defer_done(s, cb, arg, RAYC_ENOMEM);
        return;
    }
    v->len = vlen;
    if (vlen)
        memcpy(v->bytes, val, vlen);
    if (gcs_map_put(t, key, klen, v) < 0) {
        free(v);
        gcs_storage__set_err(s, "out of memory");
        gcs_storage__defer_done(s, cb, arg, RAYC_ENOMEM);
        return;
    }
    gcs_storage__defer_done(s, cb, arg, RAYC_OK);
}

static void mem_get(gcs_storage *s, const char *table, const void *key, size_t klen,
                    gcs_storage_get_fn cb, void *arg)
{
    memory_storage *m = (memory_storage *)s;
    gcs_map *t = table_of(m, table, false);
    value *v = t ? gcs_map_get(t, key, klen) : NULL;
    if (v == NULL)
        gcs_storage__defer_get(s, cb, arg, RAYC_ENOTFOUND, NULL, 0);
    else
        gcs_storage__defer_get(s, cb, arg, RAYC_OK, v->bytes, v->len);
}

static void mem_del(gcs_storage *s, const char *table, const void *key, size_t klen,
                    gcs_storage_done_fn cb, void *arg)
{
    memory_storage *m = (memory_storage *)s;
    gcs_map *t = table_of(m, table, false);
    bool deleted = t && gcs_map_del(t, key, klen);
    gcs_storage__defer_done(s, cb, arg, deleted ? RAYC_OK : RAYC_ENOTFOUND);
}

static void mem_get_all(gcs_storage *s, const char *table, gcs_storage_all_fn cb, void *arg)
{
    memory_storage *m = (memory_storage *)s;
    gcs_map *t = table_of(m, table, false);
    size_t n = t ? gcs_map_size(t) : 0;
    gcs_storage_entry *e = calloc(n ? n : 1, sizeof(*e));
    if (e == NULL) {
        gcs_storage__set_err(s, "out of memory");
        gcs_storage__defer_all(s, cb, arg, RAYC_ENOMEM, NULL, 0);
        return;
    }
    size_t i = 0;
    if (t) {
        gcs_map_iter it;
        const uint8_t *k;
        size_t kl;
        void *vp;
        gcs_map_iter_init(&it);
        while (gcs_map_next(t, &it, &k, &kl, &vp)) {
            value *v = vp;
            e[i].key = k;
            e[i].key_len = kl;
            e[i].val = v->bytes;
            e[i].val_len = v->len;
            i++;
        }
    }
    gcs_storage__defer_all(s, cb, arg, RAYC_OK, e, i); /* copies */
    free(e);
}

static bool mem_is_up(const gcs_storage *s)
{
    (void)s;
    return true;
}

static void mem_destroy(gcs_storage *s)
{
    memory_storage *m = (memory_storage *)s;
    gcs_map_free(m->tables);
    m->tables = NULL;
}

static const gcs_storage__ops memory_ops = {
    .kind = "memory",
    .put = mem_put,
    .get = mem_get,
    .del = mem_del,
    .get_all = mem_get_all,
    .is_up = mem_is_up,
    .destroy = mem_destroy,
};

gcs_storage *gcs_storage_memory_new(struct event_base *base)
{
    memory_storage *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (gcs_storage__init(&m->base, &memory_ops, base) != 0)
        goto fail;
    m->tables = gcs_map_new(free_table);
    if (m->tables == NULL)
        goto fail;
    return &m->base;
fail:
    if (m->base.defer_ev)
        event_free(m->base.defer_ev);
    free(m);
    return NULL;
}
