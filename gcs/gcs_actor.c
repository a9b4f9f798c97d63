/*
 * gcs_actor.c -- the actor table; see gcs_actor.h. Runs in the GCS loop
 * thread. Records are immutable protobuf copies: a change builds the new
 * record from the old one and replaces it in the map.
 */
#include "gcs_actor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "gcs_storage.h"
#include "rayc.h"

struct gcs_actor_table {
    gcs_map *actors;  /* 16-byte actor id -> Rpc__ActorInfo */
    gcs_map *names;   /* "<namespace>\0<name>" -> actor_id_t (malloc'd) */
    gcs_map *on_node; /* node id -> actors not DEAD placed there (count in the pointer) */
};

static void free_actor(void *p)
{
    rpc__actor_info__free_unpacked(p, NULL);
}

gcs_actor_table *gcs_actor_table_new(void)
{
    gcs_actor_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->actors = gcs_map_new(free_actor);
    t->names = gcs_map_new(free);
    t->on_node = gcs_map_new(NULL);
    if (t->actors == NULL || t->names == NULL || t->on_node == NULL) {
        gcs_actor_table_free(t);
        return NULL;
    }
    return t;
}

void gcs_actor_table_free(gcs_actor_table *t)
{
    if (t == NULL)
        return;
    gcs_map_free(t->actors);
    gcs_map_free(t->names);
    gcs_map_free(t->on_node);
    free(t);
}

const char *gcs_actor_state_name(int state)
{
    switch (state) {
    case RPC__ACTOR_STATE__ACTOR_PENDING_CREATION:
        return "PENDING_CREATION";
    case RPC__ACTOR_STATE__ACTOR_ALIVE:
        return "ALIVE";
    case RPC__ACTOR_STATE__ACTOR_RESTARTING:
        return "RESTARTING";
    case RPC__ACTOR_STATE__ACTOR_DEAD:
        return "DEAD";
    default:
        return "UNKNOWN";
    }
}

/* ------------------------------------------------------------ names */

/* "<ns>\0<name>" into buf (NULL when it does not fit: names are short). */
static const uint8_t *name_key(const char *ns, const char *name, uint8_t *buf, size_t cap,
                               size_t *len)
{
    size_t a = ns ? strlen(ns) : 0, b = strlen(name);
    if (a + 1 + b > cap)
        return NULL;
    memcpy(buf, ns ? ns : "", a);
    buf[a] = '\0';
    memcpy(buf + a + 1, name, b);
    *len = a + 1 + b;
    return buf;
}

#define NAME_KEY_MAX 1024

static bool named(const Rpc__ActorInfo *a)
{
    return a->name && a->name[0] != '\0';
}

const Rpc__ActorInfo *gcs_actor_by_name(const gcs_actor_table *t, const char *namespace_,
                                        const char *name)
{
    uint8_t buf[NAME_KEY_MAX];
    size_t len;
    if (name == NULL || name_key(namespace_, name, buf, sizeof(buf), &len) == NULL)
        return NULL;
    const actor_id_t *id = gcs_map_get(t->names, buf, len);
    return id ? gcs_actor_get(t, id) : NULL;
}

/* Hold a's name for it. RAYC_OK, RAYC_EINVAL (too long), RAYC_ENOMEM. */
static int name_take(gcs_actor_table *t, const Rpc__ActorInfo *a)
{
    uint8_t buf[NAME_KEY_MAX];
    size_t len;
    if (name_key(a->namespace_, a->name, buf, sizeof(buf), &len) == NULL)
        return RAYC_EINVAL;
    actor_id_t *id = malloc(sizeof(*id));
    if (id == NULL)
        return RAYC_ENOMEM;
    memcpy(id->b, a->actor_id.data, ACTOR_ID_SIZE);
    if (gcs_map_put(t->names, buf, len, id) < 0) {
        free(id);
        return RAYC_ENOMEM;
    }
    return RAYC_OK;
}

/* A dead actor's name is free again (if it still holds it). */
static void name_release(gcs_actor_table *t, const Rpc__ActorInfo *a)
{
    uint8_t buf[NAME_KEY_MAX];
    size_t len;
    if (!named(a) || name_key(a->namespace_, a->name, buf, sizeof(buf), &len) == NULL)
        return;
    const actor_id_t *id = gcs_map_get(t->names, buf, len);
    if (id && memcmp(id->b, a->actor_id.data, ACTOR_ID_SIZE) == 0)
        gcs_map_del(t->names, buf, len);
}

/* ------------------------------------------------------------ actors per node */

/* Whether a counts on its node: placed there (being created) or ALIVE
 * there, not DEAD. */
static bool counts_on_node(const Rpc__ActorInfo *a)
{
    return a && a->state != RPC__ACTOR_STATE__ACTOR_DEAD && a->node_id.len == NODE_ID_SIZE;
}

size_t gcs_actor_on_node(const gcs_actor_table *t, const node_id_t *node)
{
    return (size_t)(uintptr_t)gcs_map_get(t->on_node, node->b, NODE_ID_SIZE);
}

/* Add delta to node's count (the map holds only nodes with actors). An
 * allocation failure leaves the count low: placement is a preference. */
static void node_count_add(gcs_actor_table *t, const uint8_t *node, long delta)
{
    long n = (long)(uintptr_t)gcs_map_get(t->on_node, node, NODE_ID_SIZE) + delta;
    if (n <= 0)
        gcs_map_del(t->on_node, node, NODE_ID_SIZE);
    else
        gcs_map_put(t->on_node, node, NODE_ID_SIZE, (void *)(uintptr_t)n);
}

/* A record is about to go from old (NULL: new) to now (NULL: gone). */
static void node_count_change(gcs_actor_table *t, const Rpc__ActorInfo *old,
                              const Rpc__ActorInfo *now)
{
    bool was = counts_on_node(old), is = counts_on_node(now);
    if (was && is && memcmp(old->node_id.data, now->node_id.data, NODE_ID_SIZE) == 0)
        return;
    if (was)
        node_count_add(t, old->node_id.data, -1);
    if (is)
        node_count_add(t, now->node_id.data, 1);
}

/* ------------------------------------------------------------ records */

const Rpc__ActorInfo *gcs_actor_get(const gcs_actor_table *t, const actor_id_t *id)
{
    return gcs_map_get(t->actors, id->b, ACTOR_ID_SIZE);
}

size_t gcs_actor_count(const gcs_actor_table *t)
{
    return gcs_map_size(t->actors);
}

/* Replace the record of tmpl's actor with a copy of tmpl. */
static int replace(gcs_actor_table *t, const Rpc__ActorInfo *tmpl, const Rpc__ActorInfo **out)
{
    Rpc__ActorInfo *copy = (Rpc__ActorInfo *)gcs_storage_msg_dup(&tmpl->base);
    if (copy == NULL)
        return RAYC_ENOMEM;
    /* tmpl may borrow the old record's fields: count before it is freed. */
    const Rpc__ActorInfo *old = gcs_map_get(t->actors, copy->actor_id.data, ACTOR_ID_SIZE);
    node_count_change(t, old, copy);
    if (gcs_map_put(t->actors, copy->actor_id.data, ACTOR_ID_SIZE, copy) < 0) {
        node_count_change(t, copy, old);
        free_actor(copy);
        return RAYC_ENOMEM;
    }
    if (out)
        *out = copy;
    return RAYC_OK;
}

int gcs_actor_register(gcs_actor_table *t, const Rpc__ActorInfo *info, uint64_t wall_ms,
                       const Rpc__ActorInfo **out)
{
    if (info->actor_id.len != ACTOR_ID_SIZE || info->class_name == NULL ||
        info->class_name[0] == '\0')
        return RAYC_EINVAL;
    const Rpc__ActorInfo *cur = gcs_map_get(t->actors, info->actor_id.data, ACTOR_ID_SIZE);
    if (cur == NULL && named(info))
        cur = gcs_actor_by_name(t, info->namespace_, info->name);
    if (cur) {
        if (out)
            *out = cur;
        return RAYC_EEXIST;
    }
    Rpc__ActorInfo tmpl = *info;
    tmpl.state = RPC__ACTOR_STATE__ACTOR_PENDING_CREATION;
    tmpl.num_restarts = 0;
    tmpl.death_cause = "";
    tmpl.node_id.len = tmpl.worker_id.len = 0;
    tmpl.address = "";
    tmpl.pid = 0;
    if (tmpl.start_time_ms == 0)
        tmpl.start_time_ms = wall_ms;
    tmpl.end_time_ms = 0;
    if (named(&tmpl)) {
        int rc = name_take(t, &tmpl);
        if (rc != RAYC_OK)
            return rc;
    }
    int rc = replace(t, &tmpl, out);
    if (rc != RAYC_OK)
        name_release(t, &tmpl);
    return rc;
}

int gcs_actor_created(gcs_actor_table *t, const actor_id_t *id, const node_id_t *node,
                      const worker_id_t *worker, const char *address, int pid,
                      const Rpc__ActorInfo **out)
{
    const Rpc__ActorInfo *cur = gcs_actor_get(t, id);
    if (cur == NULL)
        return RAYC_ENOTFOUND;
    if (out)
        *out = cur;
    if (cur->state != RPC__ACTOR_STATE__ACTOR_PENDING_CREATION &&
        cur->state != RPC__ACTOR_STATE__ACTOR_RESTARTING)
        return RAYC_EINVAL;
    Rpc__ActorInfo tmpl = *cur;
    tmpl.state = RPC__ACTOR_STATE__ACTOR_ALIVE;
    tmpl.node_id.data = (uint8_t *)node->b;
    tmpl.node_id.len = NODE_ID_SIZE;
    tmpl.worker_id.data = (uint8_t *)worker->b;
    tmpl.worker_id.len = WORKER_ID_SIZE;
    tmpl.address = (char *)(address ? address : "");
    tmpl.pid = pid;
    return replace(t, &tmpl, out);
}

/* Whether a has restarts left (max_restarts -1: forever). */
static bool restarts_left(const Rpc__ActorInfo *a)
{
    return a->max_restarts < 0 || a->num_restarts < (uint32_t)a->max_restarts;
}

int gcs_actor_failed(gcs_actor_table *t, const actor_id_t *id, const char *cause, bool restartable,
                     uint64_t wall_ms, const Rpc__ActorInfo **out)
{
    const Rpc__ActorInfo *cur = gcs_actor_get(t, id);
    if (cur == NULL)
        return RAYC_ENOTFOUND;
    if (out)
        *out = cur;
    if (cur->state == RPC__ACTOR_STATE__ACTOR_DEAD)
        return RAYC_OK;
    Rpc__ActorInfo tmpl = *cur;
    tmpl.address = "";
    tmpl.pid = 0;
    tmpl.worker_id.len = 0;
    if (restartable && restarts_left(cur)) {
        tmpl.state = RPC__ACTOR_STATE__ACTOR_RESTARTING;
        tmpl.node_id.len = 0; /* placed again */
        tmpl.num_restarts = cur->num_restarts + 1;
        tmpl.death_cause = (char *)(cause ? cause : ""); /* why it is restarting */
    } else {
        tmpl.state = RPC__ACTOR_STATE__ACTOR_DEAD;
        tmpl.death_cause = (char *)(cause ? cause : "died");
        tmpl.end_time_ms = wall_ms;
    }
    /* tmpl borrows cur's fields, and replace() frees cur: use the new record. */
    const Rpc__ActorInfo *now;
    int rc = replace(t, &tmpl, &now);
    if (rc != RAYC_OK)
        return rc;
    if (now->state == RPC__ACTOR_STATE__ACTOR_DEAD)
        name_release(t, now);
    if (out)
        *out = now;
    return RAYC_OK;
}

/* Fail every actor `pick` selects; the ids are collected first because a
 * change replaces records under the walk. */
static size_t fail_where(gcs_actor_table *t, bool (*pick)(const Rpc__ActorInfo *, const void *),
                         const void *key, const char *cause, bool restartable, uint64_t wall_ms,
                         gcs_actor_cb cb, void *arg)
{
    size_t n = 0, cap = 0;
    actor_id_t *ids = NULL;
    gcs_map_iter it;
    void *v;
    gcs_map_iter_init(&it);
    while (gcs_map_next(t->actors, &it, NULL, NULL, &v)) {
        const Rpc__ActorInfo *a = v;
        if (a->state == RPC__ACTOR_STATE__ACTOR_DEAD || !pick(a, key))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            actor_id_t *g = realloc(ids, nc * sizeof(*ids));
            if (g == NULL)
                break; /* the rest stay as they are; a later event catches them */
            ids = g;
            cap = nc;
        }
        memcpy(ids[n++].b, a->actor_id.data, ACTOR_ID_SIZE);
    }
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        const Rpc__ActorInfo *a;
        if (gcs_actor_failed(t, &ids[i], cause, restartable, wall_ms, &a) == RAYC_OK) {
            done++;
            if (cb)
                cb(arg, a);
        }
    }
    free(ids);
    return done;
}

static bool on_node(const Rpc__ActorInfo *a, const void *node)
{
    return a->node_id.len == NODE_ID_SIZE && memcmp(a->node_id.data, node, NODE_ID_SIZE) == 0;
}

static bool of_job(const Rpc__ActorInfo *a, const void *job)
{
    return !a->detached && a->job_id == *(const uint32_t *)job;
}

size_t gcs_actor_node_died(gcs_actor_table *t, const node_id_t *node, uint64_t wall_ms,
                           gcs_actor_cb cb, void *arg)
{
    char hex[ID_HEX_MAX], cause[64];
    id_hex(node->b, NODE_ID_SIZE, hex);
    snprintf(cause, sizeof(cause), "node %.12s died", hex);
    return fail_where(t, on_node, node->b, cause, true, wall_ms, cb, arg);
}

size_t gcs_actor_job_ended(gcs_actor_table *t, uint32_t job_id, uint64_t wall_ms, gcs_actor_cb cb,
                           void *arg)
{
    return fail_where(t, of_job, &job_id, "its job ended", false, wall_ms, cb, arg);
}

int gcs_actor_load(gcs_actor_table *t, const uint8_t *packed, size_t len)
{
    Rpc__ActorInfo *a = rpc__actor_info__unpack(NULL, len, packed);
    if (a == NULL)
        return RAYC_EINVAL;
    if (a->actor_id.len != ACTOR_ID_SIZE) {
        free_actor(a);
        return RAYC_EINVAL;
    }
    /* A creation in flight when the GCS stopped is placed again (a second
     * worker that then reports is told to exit). */
    if (a->state == RPC__ACTOR_STATE__ACTOR_PENDING_CREATION ||
        a->state == RPC__ACTOR_STATE__ACTOR_RESTARTING)
        a->node_id.len = 0;
    const Rpc__ActorInfo *old = gcs_map_get(t->actors, a->actor_id.data, ACTOR_ID_SIZE);
    node_count_change(t, old, a);
    if (gcs_map_put(t->actors, a->actor_id.data, ACTOR_ID_SIZE, a) < 0) {
        node_count_change(t, a, old);
        free_actor(a);
        return RAYC_ENOMEM;
    }
    if (named(a) && a->state != RPC__ACTOR_STATE__ACTOR_DEAD && name_take(t, a) != RAYC_OK) {
        node_count_change(t, a, NULL);
        gcs_map_del(t->actors, a->actor_id.data, ACTOR_ID_SIZE);
        return RAYC_ENOMEM;
    }
    return RAYC_OK;
}

void gcs_actor_count_states(const gcs_actor_table *t, size_t counts[4])
{
    memset(counts, 0, 4 * sizeof(counts[0]));
    gcs_map_iter it;
    void *v;
    gcs_map_iter_init(&it);
    while (gcs_map_next(t->actors, &it, NULL, NULL, &v)) {
        const Rpc__ActorInfo *a = v;
        if ((unsigned)a->state < 4)
            counts[a->state]++;
    }
}

size_t gcs_actor_list(const gcs_actor_table *t, const Rpc__ActorInfo **out, size_t cap)
{
    size_t n = 0;
    gcs_map_iter it;
    void *v;
    gcs_map_iter_init(&it);
    while (n < cap && gcs_map_next(t->actors, &it, NULL, NULL, &v))
        out[n++] = v;
    return n;
}

static bool waiting(const Rpc__ActorInfo *a)
{
    return a->state == RPC__ACTOR_STATE__ACTOR_PENDING_CREATION ||
           a->state == RPC__ACTOR_STATE__ACTOR_RESTARTING;
}

int gcs_actor_placed(gcs_actor_table *t, const actor_id_t *id, const node_id_t *node)
{
    const Rpc__ActorInfo *cur = gcs_actor_get(t, id);
    if (cur == NULL)
        return RAYC_ENOTFOUND;
    if (!waiting(cur))
        return RAYC_EINVAL;
    Rpc__ActorInfo tmpl = *cur;
    tmpl.node_id.data = (uint8_t *)node->b;
    tmpl.node_id.len = NODE_ID_SIZE;
    return replace(t, &tmpl, NULL);
}

size_t gcs_actor_unplaced(const gcs_actor_table *t, const Rpc__ActorInfo **out, size_t cap)
{
    size_t n = 0;
    gcs_map_iter it;
    gcs_map_iter_init(&it);
    const uint8_t *key;
    size_t klen;
    void *val;
    while (n < cap && gcs_map_next(t->actors, &it, &key, &klen, &val)) {
        const Rpc__ActorInfo *a = val;
        if (waiting(a) && a->node_id.len == 0)
            out[n++] = a;
    }
    return n;
}
