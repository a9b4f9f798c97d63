/* test_gcs_node_view.c -- the cluster view's version in the node table
 * (gcs/gcs_node.h): what bumps it, what does not, and the delta a heartbeat
 * reply carries. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../gcs/gcs_node.h"
#include "ids.h"
#include "rayc.h"

static gcs_node_table *t;

static void setup(void)
{
    t = gcs_node_table_new();
    cr_assert_not_null(t);
}

static void teardown(void)
{
    gcs_node_table_free(t);
}

TestSuite(gcs_node_view, .init = setup, .fini = teardown, .timeout = 30);

static node_id_t add_node(void)
{
    node_id_t id = node_id_random();
    Rpc__NodeInfo n = RPC__NODE_INFO__INIT;
    n.node_id.data = id.b;
    n.node_id.len = NODE_ID_SIZE;
    n.address = "127.0.0.1:1";
    cr_assert_eq(gcs_node_register(t, &n, 0, 0, NULL, NULL), RAYC_OK);
    return id;
}

static void heartbeat(const node_id_t *id, double cpu, uint64_t store_used)
{
    Rpc__Resource r = RPC__RESOURCE__INIT;
    r.name = "CPU";
    r.amount = cpu;
    Rpc__Resource *res[] = {&r};
    Rpc__HeartbeatRequest hb = RPC__HEARTBEAT_REQUEST__INIT;
    hb.node_id.data = (uint8_t *)id->b;
    hb.node_id.len = NODE_ID_SIZE;
    hb.n_resources_available = 1;
    hb.resources_available = res;
    hb.store_used = store_used;
    cr_assert_eq(gcs_node_heartbeat(t, &hb, 0, 0), RAYC_OK);
}

static size_t since(uint64_t v)
{
    const Rpc__NodeInfo *out[8];
    return gcs_node_list_since(t, v, out, 8);
}

Test(gcs_node_view, versions_follow_what_raylets_see)
{
    cr_assert_eq(gcs_node_view_version(t), 0);
    node_id_t a = add_node();
    node_id_t b = add_node();
    uint64_t v = gcs_node_view_version(t);
    cr_assert_eq(v, 2, "each registration is a change");
    heartbeat(&a, 4, 0);
    cr_assert_eq(gcs_node_view_version(t), v + 1, "new available resources");
    v = gcs_node_view_version(t);
    heartbeat(&a, 4, 12345);
    cr_assert_eq(gcs_node_view_version(t), v, "store statistics are not in the view");
    cr_assert_eq(since(v), 0, "an idle cluster's delta is empty");
    heartbeat(&b, 2, 0);
    cr_assert_eq(since(v), 1, "only the changed node");
    cr_assert_eq(since(0), 2, "version 0 asks for every node");
    v = gcs_node_view_version(t);
    cr_assert_eq(gcs_node_drain(t, a.b, NODE_ID_SIZE, "test", 0, NULL, NULL), RAYC_OK);
    cr_assert_eq(since(v), 1, "a death is a change");
}
