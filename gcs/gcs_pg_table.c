/*
 * gcs_pg_table.c -- placement-group records and their message form; see
 * gcs_pg_table.h.
 */
#include "gcs_pg_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "gcs_pg_policy.h"
#include "rayc.h"

void gcs_pg_free(void *p)
{
    gcs_pg *g = p;
    if (g) {
        free(g->b);
        free(g);
    }
}

struct gcs_map *gcs_pg_table_new(void)
{
    return gcs_map_new(gcs_pg_free);
}

/* g as a message; the arrays live in the caller's scratch (freed with
 * free_info). */
void gcs_pg_to_info(const gcs_pg *g, Rpc__PlacementGroupInfo *info)
{
    rpc__placement_group_info__init(info);
    info->pg_id.data = (uint8_t *)g->id;
    info->pg_id.len = PG_ID_SIZE;
    info->name = (char *)g->name;
    info->job_id = g->job_id;
    info->strategy = g->strategy;
    info->state = g->state;
    info->create_time_ms = g->create_ms;
    info->removed_cause = (char *)g->cause;
    info->n_bundles = g->n;
    info->bundles = calloc(g->n ? g->n : 1, sizeof(*info->bundles));
    for (size_t i = 0; info->bundles && i < g->n; i++) {
        Rpc__Bundle *b = calloc(1, sizeof(*b));
        Rpc__Resource *rs = calloc(RES_MAX, sizeof(*rs));
        Rpc__Resource **rp = calloc(RES_MAX, sizeof(*rp));
        info->bundles[i] = b;
        if (b == NULL || rs == NULL || rp == NULL) {
            free(rs);
            free(rp);
            info->n_bundles = i;
            break;
        }
        rpc__bundle__init(b);
        b->index = (uint32_t)i;
        for (int k = 0; k < g->b[i].res.n; k++) {
            rpc__resource__init(&rs[k]);
            rs[k].name = (char *)g->b[i].res.name[k];
            rs[k].amount = g->b[i].res.amount[k];
            rp[k] = &rs[k];
        }
        b->n_resources = (size_t)g->b[i].res.n;
        b->resources = rp;
        if (g->b[i].committed) {
            b->node_id.data = (uint8_t *)g->b[i].node.b;
            b->node_id.len = NODE_ID_SIZE;
        }
    }
}

void gcs_pg_info_free(Rpc__PlacementGroupInfo *info)
{
    for (size_t i = 0; info->bundles && i < info->n_bundles; i++) {
        if (info->bundles[i] == NULL)
            continue;
        if (info->bundles[i]->resources)
            free(info->bundles[i]->resources[0]);
        free(info->bundles[i]->resources);
        free(info->bundles[i]);
    }
    free(info->bundles);
}

int gcs_pg_from_info(const Rpc__PlacementGroupInfo *info, gcs_pg **out)
{
    if (info->pg_id.len != PG_ID_SIZE || info->n_bundles == 0 ||
        info->n_bundles > GCS_PG_MAX_BUNDLES || gcs_pg_strategy_name(info->strategy) == NULL)
        return RAYC_EINVAL;
    gcs_pg *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->b = calloc(info->n_bundles, sizeof(*g->b))) == NULL) {
        free(g);
        return RAYC_ENOMEM;
    }
    memcpy(g->id, info->pg_id.data, PG_ID_SIZE);
    snprintf(g->name, sizeof(g->name), "%s", info->name ? info->name : "");
    snprintf(g->cause, sizeof(g->cause), "%s", info->removed_cause ? info->removed_cause : "");
    g->job_id = info->job_id;
    g->strategy = info->strategy;
    g->state = info->state;
    g->create_ms = info->create_time_ms;
    g->n = info->n_bundles;
    for (size_t i = 0; i < g->n; i++) {
        const Rpc__Bundle *b = info->bundles[i];
        for (size_t k = 0; k < b->n_resources; k++) {
            if (b->resources[k]->amount < 0 ||
                res_set_amount(&g->b[i].res, b->resources[k]->name, b->resources[k]->amount) != 0) {
                gcs_pg_free(g);
                return RAYC_EINVAL;
            }
        }
        if (g->b[i].res.n == 0) {
            gcs_pg_free(g);
            return RAYC_EINVAL;
        }
        if (b->node_id.len == NODE_ID_SIZE) {
            memcpy(g->b[i].node.b, b->node_id.data, NODE_ID_SIZE);
            g->b[i].placed = g->b[i].committed = true;
        }
    }
    *out = g;
    return RAYC_OK;
}

int gcs_pg_table_load(struct gcs_map *pgs, const uint8_t *packed, size_t len)
{
    Rpc__PlacementGroupInfo *info = rpc__placement_group_info__unpack(NULL, len, packed);
    if (info == NULL)
        return RAYC_EINVAL;
    gcs_pg *g = NULL;
    int rc = gcs_pg_from_info(info, &g);
    rpc__placement_group_info__free_unpacked(info, NULL);
    if (rc != RAYC_OK)
        return rc;
    if (gcs_map_put(pgs, g->id, PG_ID_SIZE, g) < 0) {
        gcs_pg_free(g);
        return RAYC_ENOMEM;
    }
    return RAYC_OK;
}
