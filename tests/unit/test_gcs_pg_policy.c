/* test_gcs_pg_policy.c -- where placement-group bundles go
 * (gcs/gcs_pg_policy.h): each strategy on hand-built node views, all-or-
 * nothing placement, dead nodes skipped, and bundle parsing errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../gcs/gcs_pg_policy.h"

TestSuite(gcs_pg_policy, .timeout = 30);

/* Nodes with the given CPUs (alive), and bundles from specs. */
static void nodes_with(gcs_pg_node *nodes, const double *cpus, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&nodes[i], 0, sizeof(nodes[i]));
        nodes[i].alive = true;
        res_set_amount(&nodes[i].available, "CPU", cpus[i]);
        res_set_amount(&nodes[i].available, "memory", 1e9);
    }
}

static void bundles_of(res_set *b, const char *const *specs, size_t n)
{
    char err[256];
    cr_assert_eq(gcs_pg_parse_bundles(specs, n, b, err, sizeof(err)), 0, "%s", err);
}

static int distinct(const int *out, size_t n)
{
    int seen[64] = {0}, d = 0;
    for (size_t i = 0; i < n; i++)
        if (!seen[out[i]]++)
            d++;
    return d;
}

Test(gcs_pg_policy, strict_pack_one_node_or_nothing)
{
    gcs_pg_node nodes[3];
    nodes_with(nodes, (double[]){2, 4, 3}, 3);
    res_set b[3];
    bundles_of(b, (const char *const[]){"CPU=1", "CPU=1", "CPU=1"}, 3);
    int out[3];
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 3, GCS_PG_STRICT_PACK, out), 0);
    cr_assert_eq(distinct(out, 3), 1);
    cr_assert_eq(out[0], 2, "best fit: the 3-CPU node, not the 4-CPU one");
    bundles_of(b, (const char *const[]){"CPU=2", "CPU=2", "CPU=1"}, 3);
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 3, GCS_PG_STRICT_PACK, out), -1, "5 CPUs on no node");
}

Test(gcs_pg_policy, pack_prefers_one_node_then_few)
{
    gcs_pg_node nodes[3];
    nodes_with(nodes, (double[]){2, 2, 2}, 3);
    res_set b[4];
    bundles_of(b, (const char *const[]){"CPU=1", "CPU=1", "CPU=1", "CPU=1"}, 4);
    int out[4];
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 4, GCS_PG_PACK, out), 0);
    cr_assert_eq(distinct(out, 4), 2, "4 CPUs over 2-CPU nodes: two nodes, not three");
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 2, GCS_PG_PACK, out), 0);
    cr_assert_eq(distinct(out, 2), 1);
}

Test(gcs_pg_policy, spread_uses_every_node_then_packs)
{
    gcs_pg_node nodes[3];
    nodes_with(nodes, (double[]){4, 4, 4}, 3);
    res_set b[5];
    bundles_of(b, (const char *const[]){"CPU=1", "CPU=1", "CPU=1", "CPU=1", "CPU=1"}, 5);
    int out[5];
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 3, GCS_PG_SPREAD, out), 0);
    cr_assert_eq(distinct(out, 3), 3);
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 5, GCS_PG_SPREAD, out), 0, "SPREAD may pack");
    cr_assert_eq(distinct(out, 5), 3);
}

Test(gcs_pg_policy, strict_spread_needs_distinct_nodes)
{
    gcs_pg_node nodes[3];
    nodes_with(nodes, (double[]){1, 2, 1}, 3);
    res_set b[4];
    /* Only node 1 fits the 2-CPU bundle: the matching must put it there. */
    bundles_of(b, (const char *const[]){"CPU=1", "CPU=2", "CPU=1", "CPU=1"}, 4);
    int out[4];
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 3, GCS_PG_STRICT_SPREAD, out), 0);
    cr_assert_eq(distinct(out, 3), 3);
    cr_assert_eq(out[1], 1);
    cr_assert_eq(gcs_pg_place(nodes, 3, b, 4, GCS_PG_STRICT_SPREAD, out), -1, "4 bundles, 3 nodes");
}

Test(gcs_pg_policy, dead_nodes_and_custom_resources)
{
    gcs_pg_node nodes[2];
    nodes_with(nodes, (double[]){8, 8}, 2);
    nodes[0].alive = false;
    res_set_amount(&nodes[0].available, "GPU", 1);
    res_set b[1];
    bundles_of(b, (const char *const[]){"CPU=1,GPU=1"}, 1);
    int out[1];
    cr_assert_eq(gcs_pg_place(nodes, 2, b, 1, GCS_PG_PACK, out), -1, "the GPU node is dead");
    nodes[0].alive = true;
    cr_assert_eq(gcs_pg_place(nodes, 2, b, 1, GCS_PG_PACK, out), 0);
    cr_assert_eq(out[0], 0);
    cr_assert_eq(gcs_pg_place(nodes, 2, b, 1, 9, out), -2, "unknown strategy");
}

Test(gcs_pg_policy, bundle_errors)
{
    res_set b[2];
    char err[256];
    cr_assert_eq(gcs_pg_parse_bundles(NULL, 0, b, err, sizeof(err)), -1);
    cr_assert(strstr(err, "at least one") != NULL);
    cr_assert_eq(
        gcs_pg_parse_bundles((const char *const[]){"CPU=1", "CPU=x"}, 2, b, err, sizeof(err)), -1);
    cr_assert(strstr(err, "bundle 1") != NULL, "%s", err);
    cr_assert_eq(gcs_pg_parse_bundles((const char *const[]){"CPU=0,GPU=0"}, 1, b, err, sizeof(err)),
                 -1);
    cr_assert(strstr(err, "no resource") != NULL, "%s", err);
    cr_assert_eq(gcs_pg_strategy_name(GCS_PG_STRICT_SPREAD)[7], 'S');
    cr_assert_null(gcs_pg_strategy_name(7));
}
