/*
 * gcs_pg_policy.h -- where the bundles of a placement group go: Ray's four
 * strategies over the GCS's view of the nodes' available resources. Pure:
 * the GCS's placement-group manager runs it, then reserves the chosen
 * bundles on their raylets in two phases (prepare, commit).
 *
 *   PACK           as few nodes as possible (one when it fits), may spread
 *   SPREAD         as many nodes as possible, may pack
 *   STRICT_PACK    all bundles on one node, or not at all
 *   STRICT_SPREAD  every bundle on a different node, or not at all
 *
 * A bundle is a res_set ("CPU=1,GPU=0,name=amount"). Placement is all or
 * nothing: either every bundle gets a node, or none does.
 * Thread-safety: none needed; plain functions over plain data.
 */
#ifndef RAYC_GCS_PG_POLICY_H
#define RAYC_GCS_PG_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

enum {
    GCS_PG_PACK = 0,
    GCS_PG_SPREAD = 1,
    GCS_PG_STRICT_PACK = 2,
    GCS_PG_STRICT_SPREAD = 3,
};

#define GCS_PG_MAX_BUNDLES 1024

/* One node as the policy sees it. */
typedef struct {
    bool alive;
    res_set available;
} gcs_pg_node;

/* Parse bundle specs into bundles[n]. Returns 0, or -1 with err set: no
 * bundles, more than GCS_PG_MAX_BUNDLES, a malformed spec, or a bundle that
 * asks for nothing. */
int gcs_pg_parse_bundles(const char *const *specs, size_t n, res_set *bundles, char *err,
                         size_t errlen);

/* Place n bundles by strategy. On success returns 0 with out[i] = the node
 * index of bundle i. Returns -1 when the group does not fit now (nothing is
 * chosen), -2 for an unknown strategy. */
int gcs_pg_place(const gcs_pg_node *nodes, size_t nnodes, const res_set *bundles, size_t n,
                 int strategy, int *out);

/* "PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD", or NULL. */
const char *gcs_pg_strategy_name(int strategy);

#endif
