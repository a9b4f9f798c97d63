/*
 * gcs_node.c -- the node table and its ALIVE -> DEAD state machine; see
 * gcs_node.h. Pure state: time comes from the caller.
 *
 * Records are unpacked NodeInfo messages owned by the table. Every change
 * builds a shallow copy with the new fields and deep-copies it (pack +
 * unpack), then swaps it in: protobuf-c's free_unpacked stays the one way
 * records are freed, and a failed copy leaves the old record untouched.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "gcs_storage.h"
#include "rayc.h"
#include "util.h"

typedef struct {
    Rpc__NodeInfo *info; /* owned */
    uint64_t last_seen;  /* caller's monotonic ms of the last heartbeat */
    uint64_t changed;    /* view version of its last change that raylets see */
} node;

struct gcs_node_table {
    gcs_map *nodes; /* node id -> node */
    size_t alive;
    uint64_t version; /* bumped by every change raylets see (state, address, resources) */
};

static void free_node(void *p)
{
    node *n = p;
    if (n->info)
        rpc__node_info__free_unpacked(n->info, NULL);
    free(n);
}

gcs_node_table *gcs_node_table_new(void)
{
    gcs_node_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->nodes = gcs_map_new(free_node);
    if (t->nodes == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void gcs_node_table_free(gcs_node_table *t)
{
    if (t == NULL)
        return;
    gcs_map_free(t->nodes);
    free(t);
}

static Rpc__NodeInfo *dup_info(const Rpc__NodeInfo *tmpl)
{
    return (Rpc__NodeInfo *)gcs_storage_msg_dup(&tmpl->base);
}

static bool same_resources(Rpc__Resource **a, size_t na, Rpc__Resource **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i]->amount != b[i]->amount || strcmp(a[i]->name, b[i]->name) != 0)
            return false;
    return true;
}

/* Whether two records differ in what the cluster view carries to raylets:
 * state, address, total and available resources (not store statistics). */
static bool view_differs(const Rpc__NodeInfo *a, const Rpc__NodeInfo *b)
{
    return a->state != b->state || strcmp(a->address, b->address) != 0 ||
           !same_resources(a->resources_total, a->n_resources_total, b->resources_total,
                           b->n_resources_total) ||
           !same_resources(a->resources_available, a->n_resources_available, b->resources_available,
                           b->n_resources_available);
}

/* Swap a record's info for copy, keeping the alive count and the view
 * version right. */
static void replace(gcs_node_table *t, node *n, Rpc__NodeInfo *copy)
{
    if (view_differs(n->info, copy))
        n->changed = ++t->version;
    if (n->info->state == RPC__NODE_STATE__NODE_ALIVE)
        t->alive--;
    if (copy->state == RPC__NODE_STATE__NODE_ALIVE)
        t->alive++;
    rpc__node_info__free_unpacked(n->info, NULL);
    n->info = copy;
}

static node *lookup(const gcs_node_table *t, const uint8_t *id, size_t len)
{
    if (id == NULL || len != NODE_ID_SIZE)
        return NULL;
    return gcs_map_get(t->nodes, id, len);
}

/* Insert a new record (takes ownership of info). 0 or RAYC_ENOMEM. */
static int insert(gcs_node_table *t, Rpc__NodeInfo *info, uint64_t now_ms, node **out)
{
    node *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        rpc__node_info__free_unpacked(info, NULL);
        return RAYC_ENOMEM;
    }
    n->info = info;
    n->last_seen = now_ms;
    n->changed = ++t->version;
    if (gcs_map_put(t->nodes, info->node_id.data, info->node_id.len, n) < 0) {
        free_node(n);
        return RAYC_ENOMEM;
    }
    if (info->state == RPC__NODE_STATE__NODE_ALIVE)
        t->alive++;
    if (out)
        *out = n;
    return RAYC_OK;
}

int gcs_node_register(gcs_node_table *t, const Rpc__NodeInfo *info, uint64_t now_ms,
                      uint64_t wall_ms, const Rpc__NodeInfo **out, bool *is_new)
{
    if (info == NULL || info->node_id.len != NODE_ID_SIZE)
        return RAYC_EINVAL;
    node *n = lookup(t, info->node_id.data, info->node_id.len);
    if (n && n->info->state == RPC__NODE_STATE__NODE_DEAD)
        return RAYC_EINVAL;

    Rpc__NodeInfo tmpl = *info;
    tmpl.state = RPC__NODE_STATE__NODE_ALIVE;
    tmpl.start_time_ms = n ? n->info->start_time_ms : wall_ms;
    tmpl.end_time_ms = 0;
    tmpl.last_heartbeat_ms = wall_ms;
    tmpl.death_reason = (char *)"";
    Rpc__NodeInfo *copy = dup_info(&tmpl);
    if (copy == NULL)
        return RAYC_ENOMEM;
    if (is_new)
        *is_new = n == NULL;
    if (n) {
        replace(t, n, copy);
        n->last_seen = now_ms;
    } else {
        int rc = insert(t, copy, now_ms, &n);
        if (rc != RAYC_OK)
            return rc;
    }
    if (out)
        *out = n->info;
    return RAYC_OK;
}

int gcs_node_heartbeat(gcs_node_table *t, const Rpc__HeartbeatRequest *hb, uint64_t now_ms,
                       uint64_t wall_ms)
{
    node *n = lookup(t, hb->node_id.data, hb->node_id.len);
    if (n == NULL)
        return RAYC_ENOTFOUND;
    if (n->info->state == RPC__NODE_STATE__NODE_DEAD)
        return RAYC_EINVAL;
    Rpc__NodeInfo tmpl = *n->info;
    tmpl.n_resources_available = hb->n_resources_available;
    tmpl.resources_available = hb->resources_available;
    tmpl.store_used = hb->store_used;
    tmpl.store_objects = hb->store_objects;
    tmpl.spilled_bytes = hb->spilled_bytes;
    if (hb->store_capacity)
        tmpl.store_capacity = hb->store_capacity;
    tmpl.pending_tasks = hb->pending_tasks;
    tmpl.oom_kills = hb->oom_kills;
    /* A few short lines for `rayc status`; a raylet cannot make it hold more. */
    tmpl.n_waits = 0;
    tmpl.waits = hb->waits;
    for (size_t i = 0; i < hb->n_waits && i < GCS_NODE_WAITS_MAX; i++) {
        if (hb->waits[i] == NULL || strlen(hb->waits[i]) > GCS_NODE_WAIT_LEN)
            break;
        tmpl.n_waits = i + 1;
    }
    tmpl.last_heartbeat_ms = wall_ms;
    /* The clock moves even if the copy fails: the node is alive. */
    n->last_seen = now_ms;
    Rpc__NodeInfo *copy = dup_info(&tmpl);
    if (copy == NULL)
        return RAYC_ENOMEM;
    replace(t, n, copy);
    return RAYC_OK;
}

/* ALIVE -> DEAD with reason. RAYC_OK or RAYC_ENOMEM. */
static int mark_dead(gcs_node_table *t, node *n, const char *reason, uint64_t wall_ms)
{
    Rpc__NodeInfo tmpl = *n->info;
    tmpl.state = RPC__NODE_STATE__NODE_DEAD;
    tmpl.end_time_ms = wall_ms;
    tmpl.death_reason = (char *)(reason ? reason : "");
    tmpl.n_resources_available = 0;
    tmpl.resources_available = NULL;
    Rpc__NodeInfo *copy = dup_info(&tmpl);
    if (copy == NULL)
        return RAYC_ENOMEM;
    replace(t, n, copy);
    return RAYC_OK;
}

int gcs_node_drain(gcs_node_table *t, const uint8_t *node_id, size_t len, const char *reason,
                   uint64_t wall_ms, const Rpc__NodeInfo **out, bool *changed)
{
    node *n = lookup(t, node_id, len);
    if (changed)
        *changed = false;
    if (n == NULL)
        return RAYC_ENOTFOUND;
    if (n->info->state == RPC__NODE_STATE__NODE_ALIVE) {
        char why[256];
        snprintf(why, sizeof(why), "drained: %s", reason && *reason ? reason : "no reason given");
        int rc = mark_dead(t, n, why, wall_ms);
        if (rc != RAYC_OK)
            return rc;
        if (changed)
            *changed = true;
    }
    if (out)
        *out = n->info;
    return RAYC_OK;
}

size_t gcs_node_check_health(gcs_node_table *t, uint64_t now_ms, uint64_t timeout_ms,
                             gcs_node_dead_fn cb, void *arg)
{
    size_t died = 0;
    gcs_map_iter it;
    void *p;
    gcs_map_iter_init(&it);
    while (gcs_map_next(t->nodes, &it, NULL, NULL, &p)) {
        node *n = p;
        if (n->info->state != RPC__NODE_STATE__NODE_ALIVE)
            continue;
        if (now_ms < n->last_seen || now_ms - n->last_seen <= timeout_ms)
            continue;
        char why[128];
        snprintf(why, sizeof(why), "no heartbeat for %llu ms",
                 (unsigned long long)(now_ms - n->last_seen));
        /* Out of memory: try again at the next check. */
        if (mark_dead(t, n, why, wall_ms()) != RAYC_OK)
            continue;
        died++;
        if (cb)
            cb(arg, n->info);
    }
    return died;
}

int gcs_node_load(gcs_node_table *t, const uint8_t *packed, size_t len, uint64_t now_ms)
{
    Rpc__NodeInfo *info = rpc__node_info__unpack(NULL, len, packed);
    if (info == NULL)
        return RAYC_EINVAL;
    if (info->node_id.len != NODE_ID_SIZE) {
        rpc__node_info__free_unpacked(info, NULL);
        return RAYC_EINVAL;
    }
    node *old = lookup(t, info->node_id.data, info->node_id.len);
    if (old) {
        replace(t, old, info);
        old->last_seen = now_ms;
        return RAYC_OK;
    }
    return insert(t, info, now_ms, NULL);
}

const Rpc__NodeInfo *gcs_node_get(const gcs_node_table *t, const uint8_t *node_id, size_t len)
{
    node *n = lookup(t, node_id, len);
    return n ? n->info : NULL;
}

bool gcs_node_is_alive(const gcs_node_table *t, const uint8_t *node_id, size_t len)
{
    node *n = lookup(t, node_id, len);
    return n && n->info->state == RPC__NODE_STATE__NODE_ALIVE;
}

size_t gcs_node_count(const gcs_node_table *t)
{
    return gcs_map_size(t->nodes);
}

size_t gcs_node_alive_count(const gcs_node_table *t)
{
    return t->alive;
}

static int cmp_nodes(const void *a, const void *b)
{
    const Rpc__NodeInfo *x = *(const Rpc__NodeInfo *const *)a;
    const Rpc__NodeInfo *y = *(const Rpc__NodeInfo *const *)b;
    if (x->state != y->state)
        return x->state == RPC__NODE_STATE__NODE_ALIVE ? -1 : 1;
    if (x->start_time_ms != y->start_time_ms)
        return x->start_time_ms < y->start_time_ms ? -1 : 1;
    return memcmp(x->node_id.data, y->node_id.data, NODE_ID_SIZE);
}

uint64_t gcs_node_view_version(const gcs_node_table *t)
{
    return t->version;
}

size_t gcs_node_list(const gcs_node_table *t, const Rpc__NodeInfo **out, size_t cap)
{
    return gcs_node_list_since(t, 0, out, cap);
}

size_t gcs_node_list_since(const gcs_node_table *t, uint64_t since, const Rpc__NodeInfo **out,
                           size_t cap)
{
    /* The common case of a heartbeat from an idle cluster: nothing changed
     * since the raylet's version, so no scan of every node. */
    if (since > 0 && since >= t->version)
        return 0;
    size_t total = gcs_map_size(t->nodes);
    const Rpc__NodeInfo **all = malloc((total ? total : 1) * sizeof(*all));
    if (all == NULL)
        return 0;
    size_t i = 0;
    gcs_map_iter it;
    void *p;
    gcs_map_iter_init(&it);
    while (gcs_map_next(t->nodes, &it, NULL, NULL, &p))
        if (((node *)p)->changed > since)
            all[i++] = ((node *)p)->info;
    qsort(all, i, sizeof(*all), cmp_nodes);
    size_t n = i < cap ? i : cap;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    return n;
}
