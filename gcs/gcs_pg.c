/*
 * gcs_pg.c -- placement groups at the GCS (Ray's GcsPlacementGroupManager):
 * the table (persisted in GCS_TABLE_PGS, reloaded on start), the RPCs, and
 * the two-phase reservation of bundles on raylets.
 *
 * A group waiting for bundles (PENDING, or RESCHEDULING after a node with
 * some of its bundles died) is placed by gcs_pg_policy over the alive
 * nodes' available resources. The chosen raylets get PrepareBundles; when
 * every one answered OK the GCS sends CommitBundles and the group is
 * CREATED, else it sends ReturnBundles to those that prepared and tries
 * again on a later tick. One round per group at a time; a round nobody
 * finishes (a raylet died) is rolled back after PG_ROUND_TIMEOUT_MS.
 * Runs on the GCS loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "gcs_pg_table.h"
#include "gcs_pg_policy.h"
#include "gcs_server_int.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define PG_ROUND_TIMEOUT_MS 5000

static void persist(gcs_server *srv, gcs_op *op, const gcs_pg *g)
{
    Rpc__PlacementGroupInfo info;
    gcs_pg_to_info(g, &info);
    gcs_op *own = op ? op : gcs_server__op_new(srv, NULL, 0, 0, NULL, "placement group");
    gcs_server__op_put_msg(own, GCS_TABLE_PGS, g->id, PG_ID_SIZE, &info.base);
    if (op == NULL)
        gcs_server__op_commit(own);
    gcs_pg_info_free(&info);
}

/* ------------------------------------------------------------ raylets */

/* Tell every node holding bundle indexes of g (placed, or committed) to
 * give them back. */
static void return_bundles(gcs_server *srv, gcs_pg *g, bool committed_too)
{
    uint32_t idx[GCS_PG_MAX_BUNDLES];
    for (size_t i = 0; i < g->n; i++) {
        pg_bundle *b = &g->b[i];
        if (!b->placed || (b->committed && !committed_too))
            continue;
        /* One message per node, with each of its bundles. */
        size_t k = 0;
        for (size_t j = i; j < g->n; j++) {
            pg_bundle *o = &g->b[j];
            if (o->placed && (!o->committed || committed_too) &&
                memcmp(o->node.b, b->node.b, NODE_ID_SIZE) == 0) {
                idx[k++] = (uint32_t)j;
                if (j != i)
                    o->placed = o->committed = false;
            }
        }
        gcs_client *rl = gcs_server__raylet_of(srv, b->node.b);
        if (rl) {
            Rpc__ReturnBundles m = RPC__RETURN_BUNDLES__INIT;
            m.pg_id.data = g->id;
            m.pg_id.len = PG_ID_SIZE;
            m.n_indexes = k;
            m.indexes = idx;
            gcs_server__send(rl, MSG_RETURN_BUNDLES, &m.base);
        }
        b->placed = b->committed = false;
    }
}

/* ------------------------------------------------------------ placement */

/* The alive nodes with a raylet connection, as the policy sees them. */
static size_t policy_nodes(gcs_server *srv, gcs_pg_node *out, const Rpc__NodeInfo **infos,
                           size_t cap)
{
    size_t n = gcs_node_list(srv->nodes, infos, cap), k = 0;
    for (size_t i = 0; i < n; i++) {
        const Rpc__NodeInfo *ni = infos[i];
        if (ni->state != RPC__NODE_STATE__NODE_ALIVE ||
            gcs_server__raylet_of(srv, ni->node_id.data) == NULL)
            continue;
        memset(&out[k], 0, sizeof(out[k]));
        out[k].alive = true;
        for (size_t r = 0; r < ni->n_resources_available; r++)
            res_set_amount(&out[k].available, ni->resources_available[r]->name,
                           ni->resources_available[r]->amount);
        infos[k++] = ni;
    }
    return k;
}

/* Start a prepare round for g's bundles not reserved yet. */
static void place_group(gcs_server *srv, gcs_pg *g)
{
    size_t cap = gcs_node_count(srv->nodes);
    if (cap == 0)
        return;
    gcs_pg_node *nodes = calloc(cap, sizeof(*nodes));
    const Rpc__NodeInfo **infos = calloc(cap, sizeof(*infos));
    res_set *want = calloc(g->n, sizeof(*want));
    size_t *which = calloc(g->n, sizeof(*which));
    int *where = calloc(g->n, sizeof(*where));
    if (!nodes || !infos || !want || !which || !where)
        goto out;
    size_t nn = policy_nodes(srv, nodes, infos, cap);
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (!g->b[i].committed) {
            want[k] = g->b[i].res;
            which[k++] = i;
        }
    }
    if (k == 0 || nn == 0 || gcs_pg_place(nodes, nn, want, k, g->strategy, where) != 0)
        goto out;
    g->round = ++srv->pg_round;
    g->round_start = now_ms();
    g->round_failed = false;
    g->answers_due = 0;
    /* One PrepareBundles per chosen node, with each of its bundles. */
    Rpc__Bundle *bs = calloc(k, sizeof(*bs));
    Rpc__Bundle **bp = calloc(k, sizeof(*bp));
    Rpc__Resource *rs = calloc(k * RES_MAX, sizeof(*rs));
    Rpc__Resource **rp = calloc(k * RES_MAX, sizeof(*rp));
    for (size_t ni = 0; bs && bp && rs && rp && ni < nn; ni++) {
        size_t m = 0;
        for (size_t j = 0; j < k; j++) {
            if ((size_t)where[j] != ni)
                continue;
            pg_bundle *b = &g->b[which[j]];
            memcpy(b->node.b, infos[ni]->node_id.data, NODE_ID_SIZE);
            b->placed = true;
            rpc__bundle__init(&bs[m]);
            bs[m].index = (uint32_t)which[j];
            Rpc__Resource *r0 = &rs[m * RES_MAX];
            Rpc__Resource **p0 = &rp[m * RES_MAX];
            for (int r = 0; r < b->res.n; r++) {
                rpc__resource__init(&r0[r]);
                r0[r].name = b->res.name[r];
                r0[r].amount = b->res.amount[r];
                p0[r] = &r0[r];
            }
            bs[m].n_resources = (size_t)b->res.n;
            bs[m].resources = p0;
            bp[m] = &bs[m];
            m++;
        }
        if (m == 0)
            continue;
        Rpc__PrepareBundles pb = RPC__PREPARE_BUNDLES__INIT;
        pb.req_id = g->round;
        pb.pg_id.data = g->id;
        pb.pg_id.len = PG_ID_SIZE;
        pb.n_bundles = m;
        pb.bundles = bp;
        gcs_server__send(gcs_server__raylet_of(srv, infos[ni]->node_id.data), MSG_PREPARE_BUNDLES,
                         &pb.base);
        g->answers_due++;
    }
    free(bs);
    free(bp);
    free(rs);
    free(rp);
out:
    free(nodes);
    free(infos);
    free(want);
    free(which);
    free(where);
}

/* Every node answered the round: commit, or roll back and retry later. */
static void finish_round(gcs_server *srv, gcs_pg *g)
{
    g->round = 0;
    if (g->round_failed || g->state == RPC__PG_STATE__PG_REMOVED) {
        return_bundles(srv, g, false);
        return;
    }
    uint32_t idx[GCS_PG_MAX_BUNDLES];
    for (size_t i = 0; i < g->n; i++) {
        pg_bundle *b = &g->b[i];
        if (!b->placed || b->committed)
            continue;
        size_t k = 0;
        for (size_t j = i; j < g->n; j++) {
            pg_bundle *o = &g->b[j];
            if (o->placed && !o->committed && memcmp(o->node.b, b->node.b, NODE_ID_SIZE) == 0)
                idx[k++] = (uint32_t)j;
        }
        gcs_client *rl = gcs_server__raylet_of(srv, b->node.b);
        Rpc__CommitBundles m = RPC__COMMIT_BUNDLES__INIT;
        m.pg_id.data = g->id;
        m.pg_id.len = PG_ID_SIZE;
        m.n_indexes = k;
        m.indexes = idx;
        if (rl)
            gcs_server__send(rl, MSG_COMMIT_BUNDLES, &m.base);
        for (size_t j = 0; j < k; j++)
            g->b[idx[j]].committed = true;
    }
    g->state = RPC__PG_STATE__PG_CREATED;
    char hex[ID_HEX_MAX];
    log_info("placement group %.12s (%s, %zu bundles) is CREATED", id_hex(g->id, PG_ID_SIZE, hex),
             gcs_pg_strategy_name(g->strategy), g->n);
    persist(srv, NULL, g);
}

void gcs_pg_rpc_prepared(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__BundlesPrepared *r = (const Rpc__BundlesPrepared *)m;
    (void)req_id;
    if (r->pg_id.len != PG_ID_SIZE)
        return;
    gcs_pg *g = gcs_map_get(cl->srv->pgs, r->pg_id.data, PG_ID_SIZE);
    if (g == NULL || g->round == 0 || g->round != r->req_id)
        return; /* a round rolled back already */
    if (r->status && r->status->code != RAYC_OK)
        g->round_failed = true;
    if (--g->answers_due <= 0)
        finish_round(cl->srv, g);
}

void gcs_pg_tick(gcs_server *srv)
{
    gcs_map_iter it;
    gcs_map_iter_init(&it);
    void *v;
    uint64_t now = now_ms();
    while (gcs_map_next(srv->pgs, &it, NULL, NULL, &v)) {
        gcs_pg *g = v;
        if (g->round && now - g->round_start > PG_ROUND_TIMEOUT_MS) {
            g->round_failed = true; /* a raylet never answered: roll back */
            finish_round(srv, g);
        }
        if (g->round == 0 &&
            (g->state == RPC__PG_STATE__PG_PENDING || g->state == RPC__PG_STATE__PG_RESCHEDULING))
            place_group(srv, g);
    }
}

void gcs_pg_node_died(gcs_server *srv, const node_id_t *node)
{
    gcs_map_iter it;
    gcs_map_iter_init(&it);
    void *v;
    while (gcs_map_next(srv->pgs, &it, NULL, NULL, &v)) {
        gcs_pg *g = v;
        bool lost = false;
        for (size_t i = 0; i < g->n; i++) {
            pg_bundle *b = &g->b[i];
            if (b->placed && memcmp(b->node.b, node->b, NODE_ID_SIZE) == 0) {
                lost = lost || b->committed;
                b->placed = b->committed = false;
                if (g->round)
                    g->round_failed = true;
            }
        }
        if (lost && g->state == RPC__PG_STATE__PG_CREATED) {
            g->state = RPC__PG_STATE__PG_RESCHEDULING;
            persist(srv, NULL, g);
        }
    }
}

/* ------------------------------------------------------------ RPCs */

static void send_pg_reply(gcs_client *cl, uint16_t type, uint64_t req_id, int code,
                          const char *message, const gcs_pg *g)
{
    Rpc__PgReply r = RPC__PG_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    Rpc__PlacementGroupInfo info;
    msg_status_set(&st, code, message);
    r.req_id = req_id;
    r.status = &st;
    if (g) {
        gcs_pg_to_info(g, &info);
        r.pg = &info;
    }
    gcs_server__send(cl, type, &r.base);
    if (g)
        gcs_pg_info_free(&info);
}

static gcs_pg *by_name(gcs_server *srv, const char *name)
{
    gcs_map_iter it;
    gcs_map_iter_init(&it);
    void *v;
    while (gcs_map_next(srv->pgs, &it, NULL, NULL, &v)) {
        gcs_pg *g = v;
        if (g->state != RPC__PG_STATE__PG_REMOVED && strcmp(g->name, name) == 0)
            return g;
    }
    return NULL;
}

void gcs_pg_rpc_create(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__CreatePgRequest *req = (const Rpc__CreatePgRequest *)m;
    gcs_server *srv = cl->srv;
    gcs_pg *g = NULL;
    int rc = req->pg ? gcs_pg_from_info(req->pg, &g) : RAYC_EINVAL;
    if (rc != RAYC_OK) {
        send_pg_reply(cl, MSG_CREATE_PG_REPLY, req_id, rc,
                      "a placement group needs an 18-byte id, a known strategy and 1 to 1024 "
                      "bundles, each asking for something",
                      NULL);
        return;
    }
    gcs_pg *old = gcs_map_get(srv->pgs, g->id, PG_ID_SIZE);
    if (old) { /* the same id again: a retry */
        gcs_pg_free(g);
        send_pg_reply(cl, MSG_CREATE_PG_REPLY, req_id, RAYC_OK, NULL, old);
        return;
    }
    if (g->name[0] && by_name(srv, g->name)) {
        send_pg_reply(cl, MSG_CREATE_PG_REPLY, req_id, RAYC_EEXIST,
                      "a placement group of that name exists", by_name(srv, g->name));
        gcs_pg_free(g);
        return;
    }
    g->state = RPC__PG_STATE__PG_PENDING;
    g->create_ms = wall_ms();
    for (size_t i = 0; i < g->n; i++)
        g->b[i].placed = g->b[i].committed = false;
    if (gcs_map_put(srv->pgs, g->id, PG_ID_SIZE, g) < 0) {
        gcs_pg_free(g);
        send_pg_reply(cl, MSG_CREATE_PG_REPLY, req_id, RAYC_ENOMEM, "out of memory", NULL);
        return;
    }
    persist(srv, NULL, g);
    send_pg_reply(cl, MSG_CREATE_PG_REPLY, req_id, RAYC_OK, NULL, g);
    place_group(srv, g);
}

void gcs_pg_rpc_get(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__GetPgRequest *req = (const Rpc__GetPgRequest *)m;
    gcs_pg *g = req->pg_id.len == PG_ID_SIZE
                    ? gcs_map_get(cl->srv->pgs, req->pg_id.data, PG_ID_SIZE)
                    : NULL;
    send_pg_reply(cl, MSG_GET_PG_REPLY, req_id, g ? RAYC_OK : RAYC_ENOTFOUND,
                  g ? NULL : "no such placement group", g);
}

static void remove_group(gcs_server *srv, gcs_pg *g, const char *cause)
{
    if (g->state == RPC__PG_STATE__PG_REMOVED)
        return;
    return_bundles(srv, g, true);
    g->round = 0;
    g->state = RPC__PG_STATE__PG_REMOVED;
    snprintf(g->cause, sizeof(g->cause), "%s", cause);
    char hex[ID_HEX_MAX];
    log_info("placement group %.12s is REMOVED: %s", id_hex(g->id, PG_ID_SIZE, hex), cause);
    persist(srv, NULL, g);
}

void gcs_pg_rpc_remove(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__RemovePgRequest *req = (const Rpc__RemovePgRequest *)m;
    gcs_pg *g = req->pg_id.len == PG_ID_SIZE
                    ? gcs_map_get(cl->srv->pgs, req->pg_id.data, PG_ID_SIZE)
                    : NULL;
    if (g == NULL) {
        send_pg_reply(cl, MSG_REMOVE_PG_REPLY, req_id, RAYC_ENOTFOUND, "no such placement group",
                      NULL);
        return;
    }
    remove_group(cl->srv, g, "removed by rayc_pg_remove");
    send_pg_reply(cl, MSG_REMOVE_PG_REPLY, req_id, RAYC_OK, NULL, g);
}

void gcs_pg_rpc_list(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    (void)m;
    size_t n = gcs_map_size(cl->srv->pgs), k = 0;
    Rpc__PlacementGroupInfo *infos = calloc(n ? n : 1, sizeof(*infos));
    Rpc__PlacementGroupInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (infos && ptrs) {
        gcs_map_iter it;
        gcs_map_iter_init(&it);
        void *v;
        while (k < n && gcs_map_next(cl->srv->pgs, &it, NULL, NULL, &v)) {
            gcs_pg_to_info(v, &infos[k]);
            ptrs[k] = &infos[k];
            k++;
        }
    }
    Rpc__ListPgsReply r = RPC__LIST_PGS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req_id;
    r.status = &st;
    r.n_pgs = k;
    r.pgs = ptrs;
    gcs_server__send(cl, MSG_LIST_PGS_REPLY, &r.base);
    for (size_t i = 0; i < k; i++)
        gcs_pg_info_free(&infos[i]);
    free(infos);
    free(ptrs);
}

void gcs_pg_job_ended(gcs_server *srv, uint32_t job_id)
{
    gcs_map_iter it;
    gcs_map_iter_init(&it);
    void *v;
    while (gcs_map_next(srv->pgs, &it, NULL, NULL, &v)) {
        gcs_pg *g = v;
        if (g->job_id == job_id)
            remove_group(srv, g, "its job ended");
    }
}

size_t gcs_pg_list(const gcs_server *srv, Rpc__PlacementGroupInfo *out, size_t cap)
{
    size_t k = 0;
    gcs_map_iter it;
    gcs_map_iter_init(&it);
    void *v;
    while (k < cap && gcs_map_next(srv->pgs, &it, NULL, NULL, &v))
        gcs_pg_to_info(v, &out[k++]);
    return k;
}

void gcs_pg_list_free(Rpc__PlacementGroupInfo *infos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gcs_pg_info_free(&infos[i]);
}

bool gcs_pg_node_for(gcs_server *srv, const uint8_t *pg_id, int index, const Rpc__TaskSpec *spec,
                     node_id_t *out)
{
    gcs_pg *g = gcs_map_get(srv->pgs, pg_id, PG_ID_SIZE);
    if (g == NULL || g->state == RPC__PG_STATE__PG_REMOVED)
        return false;
    for (size_t i = 0; i < g->n; i++) {
        if (!g->b[i].committed || (index >= 0 && (size_t)index != i))
            continue;
        bool fits = true;
        for (size_t k = 0; k < spec->n_resources && fits; k++)
            fits = res_get(&g->b[i].res, spec->resources[k]->name) + 1e-9 >=
                   spec->resources[k]->amount;
        if (fits) {
            *out = g->b[i].node;
            return true;
        }
    }
    return false;
}
