/*
 * pg.c -- the placement-group entry points of rayc.h (rayc_pg_*), and the
 * lookup rayc_submit does for a task that names a group: the group must be
 * CREATED, its bundle must be able to hold the task, and the task is pinned
 * to the bundle's node (the raylet there runs it on the bundle's
 * resources). The GCS coordinates the reservation (gcs/gcs_pg.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "errors.h"
#include "msg.h"
#include "pg.h"

#define GCS_TIMEOUT_MS 10000
#define MAX_BUNDLES    1024

static Rpc__PgReply *pg_call(uint16_t type, ProtobufCMessage *req, uint64_t *req_id,
                             uint16_t reply_type)
{
    ProtobufCMessage *m = NULL;
    int rc = core__gcs_call(type, req, req_id, reply_type, &m, GCS_TIMEOUT_MS);
    if (rc != 0) {
        rayc__error(rc, "the GCS did not answer: %s", rayc_strerror(rc));
        return NULL;
    }
    return (Rpc__PgReply *)m;
}

/* The group's record (free with msg_free), or NULL with the error set. */
static Rpc__PgReply *get_pg(const rayc_pg *pg, int *rc)
{
    Rpc__GetPgRequest req = RPC__GET_PG_REQUEST__INIT;
    req.pg_id.data = (uint8_t *)pg->id;
    req.pg_id.len = PG_ID_SIZE;
    Rpc__PgReply *r = pg_call(MSG_GET_PG_REQ, &req.base, &req.req_id, MSG_GET_PG_REPLY);
    if (r == NULL) {
        *rc = RAYC_ECONN;
        return NULL;
    }
    *rc = r->status ? r->status->code : 0;
    if (*rc == 0 && r->pg == NULL)
        *rc = RAYC_ENOTFOUND;
    if (*rc != 0) {
        *rc = rayc__error(*rc == RAYC_ENOTFOUND ? RAYC_EINVAL : *rc, "unknown placement group");
        msg_free(&r->base);
        return NULL;
    }
    return r;
}

int rayc_pg_create(const char *const *bundles, size_t nbundles, int strategy, const char *name,
                   rayc_pg *out)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (out == NULL || bundles == NULL || nbundles == 0 || nbundles > MAX_BUNDLES)
        return rayc__error(RAYC_EINVAL, "rayc_pg_create: 1 to %d bundles", MAX_BUNDLES);
    if (strategy < RAYC_PG_PACK || strategy > RAYC_PG_STRICT_SPREAD)
        return rayc__error(RAYC_EINVAL, "rayc_pg_create: unknown strategy %d", strategy);
    res_set *sets = calloc(nbundles, sizeof(*sets));
    Rpc__Bundle *bs = calloc(nbundles, sizeof(*bs));
    Rpc__Bundle **bp = calloc(nbundles, sizeof(*bp));
    Rpc__Resource *rs = calloc(nbundles * RES_MAX, sizeof(*rs));
    Rpc__Resource **rp = calloc(nbundles * RES_MAX, sizeof(*rp));
    if (!sets || !bs || !bp || !rs || !rp) {
        rc = rayc__error(RAYC_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nbundles; i++) {
        char err[256];
        if (bundles[i] == NULL || res_parse(&sets[i], bundles[i], err, sizeof(err)) != 0) {
            rc = rayc__error(RAYC_EINVAL, "bundle %zu (\"%s\"): %s", i,
                             bundles[i] ? bundles[i] : "(null)", bundles[i] ? err : "missing");
            goto out;
        }
        bool asks = false;
        for (int k = 0; k < sets[i].n; k++)
            asks = asks || sets[i].amount[k] > 0;
        if (!asks) {
            rc = rayc__error(RAYC_EINVAL, "bundle %zu (\"%s\") asks for nothing", i, bundles[i]);
            goto out;
        }
        rpc__bundle__init(&bs[i]);
        bs[i].index = (uint32_t)i;
        for (int k = 0; k < sets[i].n; k++) {
            Rpc__Resource *r = &rs[i * RES_MAX + (size_t)k];
            rpc__resource__init(r);
            r->name = sets[i].name[k];
            r->amount = sets[i].amount[k];
            rp[i * RES_MAX + (size_t)k] = r;
        }
        bs[i].n_resources = (size_t)sets[i].n;
        bs[i].resources = &rp[i * RES_MAX];
        bp[i] = &bs[i];
    }
    rayc_pg id;
    id_random_bytes(id.id, PG_ID_SIZE - JOB_ID_SIZE);
    memcpy(id.id + PG_ID_SIZE - JOB_ID_SIZE, c->job.b, JOB_ID_SIZE);
    Rpc__PlacementGroupInfo info = RPC__PLACEMENT_GROUP_INFO__INIT;
    info.pg_id.data = id.id;
    info.pg_id.len = PG_ID_SIZE;
    info.name = (char *)(name ? name : "");
    info.job_id = job_id_to_int(c->job);
    info.strategy = strategy;
    info.n_bundles = nbundles;
    info.bundles = bp;
    Rpc__CreatePgRequest req = RPC__CREATE_PG_REQUEST__INIT;
    req.pg = &info;
    Rpc__PgReply *r = pg_call(MSG_CREATE_PG_REQ, &req.base, &req.req_id, MSG_CREATE_PG_REPLY);
    if (r == NULL) {
        rc = RAYC_ECONN;
        goto out;
    }
    rc = r->status ? r->status->code : 0;
    if (rc != 0)
        rayc__error(rc, "rayc_pg_create: %s", r->status->message ? r->status->message : "");
    else
        *out = id;
    msg_free(&r->base);
out:
    free(sets);
    free(bs);
    free(bp);
    free(rs);
    free(rp);
    return rc;
}

int rayc_pg_wait(rayc_pg pg, int64_t timeout_ms)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    int64_t nap_us = 200; /* a reservation takes two round trips: look again soon */
    for (;;) {
        Rpc__PgReply *r = get_pg(&pg, &rc);
        if (r == NULL)
            return rc;
        int state = r->pg->state;
        char cause[160];
        snprintf(cause, sizeof(cause), "%s", r->pg->removed_cause);
        msg_free(&r->base);
        if (state == RPC__PG_STATE__PG_CREATED)
            return 0;
        if (state == RPC__PG_STATE__PG_REMOVED)
            return rayc__error(RAYC_EINVAL, "the placement group was removed (%s)", cause);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t spent = (now.tv_sec - ts0.tv_sec) * 1000 + (now.tv_nsec - ts0.tv_nsec) / 1000000;
        if (timeout_ms >= 0 && spent >= timeout_ms)
            return rayc__error(RAYC_ETIMEDOUT,
                               "rayc_pg_wait: not every bundle could be reserved within %lld ms",
                               (long long)timeout_ms);
        struct timespec nap = {0, (long)nap_us * 1000L};
        nanosleep(&nap, NULL);
        nap_us = nap_us < 50000 ? nap_us * 2 : 50000;
    }
}

int rayc_pg_remove(rayc_pg pg)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    Rpc__RemovePgRequest req = RPC__REMOVE_PG_REQUEST__INIT;
    req.pg_id.data = pg.id;
    req.pg_id.len = PG_ID_SIZE;
    Rpc__PgReply *r = pg_call(MSG_REMOVE_PG_REQ, &req.base, &req.req_id, MSG_REMOVE_PG_REPLY);
    if (r == NULL)
        return RAYC_ECONN;
    rc = r->status ? r->status->code : 0;
    if (rc != 0)
        rc = rayc__error(rc == RAYC_ENOTFOUND ? RAYC_EINVAL : rc, "rayc_pg_remove: %s",
                         r->status->message ? r->status->message : "");
    msg_free(&r->base);
    return rc;
}

int rayc_pg_bundle_node(rayc_pg pg, size_t bundle, char node_id[57])
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (node_id == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_pg_bundle_node: NULL node_id");
    Rpc__PgReply *r = get_pg(&pg, &rc);
    if (r == NULL)
        return rc;
    if (bundle >= r->pg->n_bundles) {
        rc = rayc__error(RAYC_EINVAL, "bundle %zu out of range (the group has %zu)", bundle,
                         r->pg->n_bundles);
    } else if (r->pg->bundles[bundle]->node_id.len != NODE_ID_SIZE) {
        rc = rayc__error(RAYC_ENOTFOUND, "bundle %zu is not reserved on any node yet", bundle);
    } else {
        id_hex(r->pg->bundles[bundle]->node_id.data, NODE_ID_SIZE, node_id);
    }
    msg_free(&r->base);
    return rc;
}

int pg__task_target(const rayc_pg *pg, int bundle_index, const res_set *demand, node_id_t *node)
{
    int rc;
    Rpc__PgReply *r = get_pg(pg, &rc);
    if (r == NULL)
        return rc;
    const Rpc__PlacementGroupInfo *g = r->pg;
    rc = 0;
    if (g->state != RPC__PG_STATE__PG_CREATED) {
        rc = rayc__error(RAYC_EINVAL, "the placement group is not ready (%s): rayc_pg_wait first",
                         g->state == RPC__PG_STATE__PG_REMOVED ? "removed" : "pending");
    } else if (bundle_index >= (int)g->n_bundles || bundle_index < -1) {
        rc = rayc__error(RAYC_EINVAL, "bundle_index %d out of range (the group has %zu)",
                         bundle_index, g->n_bundles);
    } else {
        /* The asked bundle, or for -1 the first whose resources can hold it. */
        size_t first = bundle_index < 0 ? 0 : (size_t)bundle_index;
        size_t last = bundle_index < 0 ? g->n_bundles : first + 1;
        rc = rayc__error(RAYC_EINVAL, "the task asks for more than %s has",
                         bundle_index < 0 ? "any bundle of its placement group" : "its bundle");
        for (size_t i = first; i < last; i++) {
            res_set have;
            memset(&have, 0, sizeof(have));
            const Rpc__Bundle *b = g->bundles[i];
            for (size_t k = 0; k < b->n_resources; k++)
                res_set_amount(&have, b->resources[k]->name, b->resources[k]->amount);
            bool fits = true;
            for (int k = 0; k < demand->n; k++)
                fits = fits && res_get(&have, demand->name[k]) + 1e-9 >= demand->amount[k];
            if (fits && b->node_id.len == NODE_ID_SIZE) {
                memcpy(node->b, b->node_id.data, NODE_ID_SIZE);
                rc = 0;
                break;
            }
        }
    }
    msg_free(&r->base);
    return rc;
}
