/*
 * gcs_objdir.c -- the object directory; see gcs_objdir.h.
 *
 * Per object, a small array of locations: objects live on one or a few
 * nodes, so a linear scan beats any index. Dropping a dead node's copies
 * scans every object; node death is rare next to location updates, so the
 * directory keeps no per-node index to maintain on the hot path.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_objdir.h"

#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "rayc.h"

typedef struct {
    uint8_t node_id[NODE_ID_SIZE];
    uint64_t size;
    size_t owner_len;
    uint8_t owner_id[GCS_OBJDIR_OWNER_MAX];
} location;

typedef struct {
    uint8_t object_id[OBJECT_ID_SIZE];
    size_t n, cap;
    location *locs;
} object;

struct gcs_objdir {
    gcs_map *objects; /* object id -> object */
};

static void free_object(void *p)
{
    object *o = p;
    free(o->locs);
    free(o);
}

gcs_objdir *gcs_objdir_new(void)
{
    gcs_objdir *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->objects = gcs_map_new(free_object);
    if (d->objects == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

void gcs_objdir_free(gcs_objdir *d)
{
    if (d == NULL)
        return;
    gcs_map_free(d->objects);
    free(d);
}

void gcs_objdir_storage_key(const uint8_t *object_id, const uint8_t *node_id,
                            uint8_t out[GCS_OBJDIR_KEY_SIZE])
{
    memcpy(out, object_id, OBJECT_ID_SIZE);
    memcpy(out + OBJECT_ID_SIZE, node_id, NODE_ID_SIZE);
}

static location *find_loc(const object *o, const uint8_t *node_id)
{
    for (size_t i = 0; i < o->n; i++)
        if (memcmp(o->locs[i].node_id, node_id, NODE_ID_SIZE) == 0)
            return &o->locs[i];
    return NULL;
}

/* Add or update a location. 1 changed, 0 same, RAYC_ENOMEM. */
static int add(gcs_objdir *d, const Rpc__ObjectLocation *loc)
{
    object *o = gcs_map_get(d->objects, loc->object_id.data, OBJECT_ID_SIZE);
    bool new_obj = o == NULL;
    if (new_obj) {
        o = calloc(1, sizeof(*o));
        if (o == NULL)
            return RAYC_ENOMEM;
        memcpy(o->object_id, loc->object_id.data, OBJECT_ID_SIZE);
    }
    location *l = find_loc(o, loc->node_id.data);
    if (l) {
        if (l->size == loc->size && l->owner_len == loc->owner_id.len &&
            (l->owner_len == 0 || memcmp(l->owner_id, loc->owner_id.data, l->owner_len) == 0))
            return 0;
    } else {
        if (o->n == o->cap) {
            size_t cap = o->cap ? o->cap * 2 : 2;
            location *nl = realloc(o->locs, cap * sizeof(*nl));
            if (nl == NULL) {
                if (new_obj)
                    free_object(o);
                return RAYC_ENOMEM;
            }
            o->locs = nl;
            o->cap = cap;
        }
        if (new_obj && gcs_map_put(d->objects, o->object_id, OBJECT_ID_SIZE, o) < 0) {
            free_object(o);
            return RAYC_ENOMEM;
        }
        l = &o->locs[o->n++];
        memcpy(l->node_id, loc->node_id.data, NODE_ID_SIZE);
    }
    l->size = loc->size;
    l->owner_len = loc->owner_id.len;
    if (l->owner_len)
        memcpy(l->owner_id, loc->owner_id.data, l->owner_len);
    return 1;
}

/* Remove location i of o (dropping o when it was the last). */
static void remove_at(gcs_objdir *d, object *o, size_t i)
{
    o->locs[i] = o->locs[--o->n];
    if (o->n == 0)
        gcs_map_del(d->objects, o->object_id, OBJECT_ID_SIZE);
}

int gcs_objdir_apply(gcs_objdir *d, const Rpc__ObjectLocation *loc)
{
    if (loc->object_id.len != OBJECT_ID_SIZE || loc->node_id.len != NODE_ID_SIZE ||
        loc->owner_id.len > GCS_OBJDIR_OWNER_MAX)
        return RAYC_EINVAL;
    if (!loc->removed)
        return add(d, loc);
    object *o = gcs_map_get(d->objects, loc->object_id.data, OBJECT_ID_SIZE);
    if (o == NULL)
        return 0;
    location *l = find_loc(o, loc->node_id.data);
    if (l == NULL)
        return 0;
    remove_at(d, o, (size_t)(l - o->locs));
    return 1;
}

/* Fill a message view of one location. */
static void view(const object *o, const location *l, bool removed, Rpc__ObjectLocation *out)
{
    Rpc__ObjectLocation init = RPC__OBJECT_LOCATION__INIT;
    *out = init;
    out->object_id.data = (uint8_t *)o->object_id;
    out->object_id.len = OBJECT_ID_SIZE;
    out->node_id.data = (uint8_t *)l->node_id;
    out->node_id.len = NODE_ID_SIZE;
    out->size = l->size;
    out->owner_id.data = (uint8_t *)l->owner_id;
    out->owner_id.len = l->owner_len;
    out->removed = removed;
}

size_t gcs_objdir_get(const gcs_objdir *d, const uint8_t *object_id, size_t len,
                      Rpc__ObjectLocation *out, size_t cap)
{
    if (len != OBJECT_ID_SIZE)
        return 0;
    const object *o = gcs_map_get(d->objects, object_id, len);
    size_t n = 0;
    for (size_t i = 0; o && i < o->n && n < cap; i++)
        view(o, &o->locs[i], false, &out[n++]);
    return n;
}

size_t gcs_objdir_count(const gcs_objdir *d, const uint8_t *object_id, size_t len)
{
    if (len != OBJECT_ID_SIZE)
        return 0;
    const object *o = gcs_map_get(d->objects, object_id, len);
    return o ? o->n : 0;
}

size_t gcs_objdir_remove_node(gcs_objdir *d, const uint8_t *node_id, size_t len,
                              gcs_objdir_removed_fn cb, void *arg)
{
    if (len != NODE_ID_SIZE)
        return 0;
    size_t dropped = 0;
    gcs_map_iter it;
    void *p;
    gcs_map_iter_init(&it);
    while (gcs_map_next(d->objects, &it, NULL, NULL, &p)) {
        object *o = p;
        location *l = find_loc(o, node_id);
        if (l == NULL)
            continue;
        if (cb) {
            Rpc__ObjectLocation v;
            view(o, l, true, &v);
            cb(arg, &v);
        }
        dropped++;
        remove_at(d, o, (size_t)(l - o->locs)); /* may free o: the iterator allows it */
    }
    return dropped;
}

int gcs_objdir_load(gcs_objdir *d, const uint8_t *packed, size_t len)
{
    Rpc__ObjectLocation *loc = rpc__object_location__unpack(NULL, len, packed);
    if (loc == NULL)
        return RAYC_EINVAL;
    loc->removed = false;
    int rc = gcs_objdir_apply(d, loc);
    rpc__object_location__free_unpacked(loc, NULL);
    return rc < 0 ? rc : RAYC_OK;
}

size_t gcs_objdir_size(const gcs_objdir *d)
{
    return gcs_map_size(d->objects);
}

/* For the state API (gcs_state.c): one call per location, in no order. */
size_t gcs_objdir_walk(const gcs_objdir *d, gcs_objdir_walk_fn cb, void *arg)
{
    size_t n = 0;
    gcs_map_iter it;
    void *p;
    gcs_map_iter_init(&it);
    while (gcs_map_next(d->objects, &it, NULL, NULL, &p)) {
        const object *o = p;
        for (size_t i = 0; i < o->n; i++, n++) {
            Rpc__ObjectLocation v;
            view(o, &o->locs[i], false, &v);
            cb(arg, &v);
        }
    }
    return n;
}
