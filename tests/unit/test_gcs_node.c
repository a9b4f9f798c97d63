/*
 * test_gcs_node.c -- the node table's state machine, driven with a fake
 * clock: register, re-register, heartbeats, death by heartbeat timeout,
 * drain, a dead node refused, and loading after a GCS restart.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../gcs/gcs_node.h"
#include "../../gcs/gcs_storage.h"
#include "log.h"
#include "rayc.h"

#define TIMEOUT 1000

static gcs_node_table *t;

static void setup(void)
{
    log_set_level(LOG_LEVEL_FATAL);
    t = gcs_node_table_new();
    cr_assert(t != NULL);
}

static void teardown(void)
{
    gcs_node_table_free(t);
}

TestSuite(gcs_node, .init = setup, .fini = teardown, .timeout = 30);

static uint8_t ids[4][NODE_ID_SIZE];

static Rpc__NodeInfo info_for(int i, const char *address)
{
    Rpc__NodeInfo n = RPC__NODE_INFO__INIT;
    memset(ids[i], 0x10 + i, NODE_ID_SIZE);
    n.node_id.data = ids[i];
    n.node_id.len = NODE_ID_SIZE;
    n.address = (char *)address;
    return n;
}

static int reg(int i, uint64_t now, bool *is_new)
{
    Rpc__NodeInfo n = info_for(i, "10.0.0.1:7000");
    return gcs_node_register(t, &n, now, 1000000 + now, NULL, is_new);
}

static int heartbeat(int i, uint64_t now, double cpus)
{
    Rpc__Resource cpu = RPC__RESOURCE__INIT;
    cpu.name = (char *)"CPU";
    cpu.amount = cpus;
    Rpc__Resource *res[] = {&cpu};
    Rpc__HeartbeatRequest hb = RPC__HEARTBEAT_REQUEST__INIT;
    memset(ids[i], 0x10 + i, NODE_ID_SIZE);
    hb.node_id.data = ids[i];
    hb.node_id.len = NODE_ID_SIZE;
    hb.n_resources_available = 1;
    hb.resources_available = res;
    hb.store_used = 4096;
    return gcs_node_heartbeat(t, &hb, now, 1000000 + now);
}

static int deaths;
static void count_dead(void *arg, const Rpc__NodeInfo *n)
{
    (void)arg;
    cr_assert_eq(n->state, RPC__NODE_STATE__NODE_DEAD);
    deaths++;
}

Test(gcs_node, register_adds_an_alive_node)
{
    bool is_new = false;
    cr_assert_eq(reg(0, 0, &is_new), RAYC_OK);
    cr_assert(is_new);
    const Rpc__NodeInfo *n = gcs_node_get(t, ids[0], NODE_ID_SIZE);
    cr_assert_not_null(n);
    cr_assert_eq(n->state, RPC__NODE_STATE__NODE_ALIVE);
    cr_assert_str_eq(n->address, "10.0.0.1:7000");
    cr_assert_eq(n->start_time_ms, 1000000);
    cr_assert_eq(gcs_node_count(t), 1);
    cr_assert_eq(gcs_node_alive_count(t), 1);
}

Test(gcs_node, register_rejects_a_bad_id)
{
    Rpc__NodeInfo n = RPC__NODE_INFO__INIT;
    uint8_t shortid[5] = {1, 2, 3, 4, 5};
    n.node_id.data = shortid;
    n.node_id.len = sizeof(shortid);
    cr_assert_eq(gcs_node_register(t, &n, 0, 0, NULL, NULL), RAYC_EINVAL);
    cr_assert_eq(gcs_node_count(t), 0);
}

Test(gcs_node, reregister_updates_and_keeps_start_time)
{
    bool is_new;
    cr_assert_eq(reg(0, 0, &is_new), RAYC_OK);
    Rpc__NodeInfo n = info_for(0, "10.0.0.2:7001");
    const Rpc__NodeInfo *out;
    cr_assert_eq(gcs_node_register(t, &n, 500, 1000500, &out, &is_new), RAYC_OK);
    cr_assert_not(is_new);
    cr_assert_str_eq(out->address, "10.0.0.2:7001");
    cr_assert_eq(out->start_time_ms, 1000000);
    cr_assert_eq(gcs_node_count(t), 1);
    cr_assert_eq(gcs_node_alive_count(t), 1);
}

Test(gcs_node, heartbeat_of_unknown_node_is_not_found)
{
    cr_assert_eq(heartbeat(1, 0, 1), RAYC_ENOTFOUND);
}

Test(gcs_node, heartbeat_updates_the_load)
{
    reg(0, 0, NULL);
    cr_assert_eq(heartbeat(0, 100, 3.5), RAYC_OK);
    const Rpc__NodeInfo *n = gcs_node_get(t, ids[0], NODE_ID_SIZE);
    cr_assert_eq(n->n_resources_available, 1);
    cr_assert_str_eq(n->resources_available[0]->name, "CPU");
    cr_assert_float_eq(n->resources_available[0]->amount, 3.5, 1e-9);
    cr_assert_eq(n->store_used, 4096);
    cr_assert_eq(n->last_heartbeat_ms, 1000100);
}

Test(gcs_node, node_dies_only_after_the_heartbeat_timeout)
{
    reg(0, 0, NULL);
    deaths = 0;
    cr_assert_eq(gcs_node_check_health(t, TIMEOUT, TIMEOUT, count_dead, NULL), 0);
    cr_assert_eq(gcs_node_check_health(t, TIMEOUT + 1, TIMEOUT, count_dead, NULL), 1);
    cr_assert_eq(deaths, 1);
    const Rpc__NodeInfo *n = gcs_node_get(t, ids[0], NODE_ID_SIZE);
    cr_assert_eq(n->state, RPC__NODE_STATE__NODE_DEAD);
    cr_assert(strstr(n->death_reason, "heartbeat") != NULL);
    cr_assert_gt(n->end_time_ms, 0);
    cr_assert_eq(gcs_node_alive_count(t), 0);
    /* Dead stays dead: no second report. */
    cr_assert_eq(gcs_node_check_health(t, 10 * TIMEOUT, TIMEOUT, count_dead, NULL), 0);
    cr_assert_eq(deaths, 1);
}

Test(gcs_node, heartbeats_keep_a_node_alive)
{
    reg(0, 0, NULL);
    reg(1, 0, NULL);
    for (uint64_t now = 500; now <= 5000; now += 500) {
        cr_assert_eq(heartbeat(0, now, 1), RAYC_OK);
        gcs_node_check_health(t, now, TIMEOUT, NULL, NULL);
    }
    cr_assert(gcs_node_is_alive(t, ids[0], NODE_ID_SIZE));
    cr_assert_not(gcs_node_is_alive(t, ids[1], NODE_ID_SIZE));
}

Test(gcs_node, dead_node_is_refused_heartbeat_and_registration)
{
    reg(0, 0, NULL);
    gcs_node_check_health(t, 2 * TIMEOUT, TIMEOUT, NULL, NULL);
    cr_assert_eq(heartbeat(0, 2 * TIMEOUT, 1), RAYC_EINVAL);
    cr_assert_eq(reg(0, 2 * TIMEOUT, NULL), RAYC_EINVAL);
    cr_assert_eq(gcs_node_get(t, ids[0], NODE_ID_SIZE)->state, RPC__NODE_STATE__NODE_DEAD);
}

Test(gcs_node, drain_marks_dead_at_once_with_reason)
{
    reg(0, 0, NULL);
    const Rpc__NodeInfo *n;
    bool changed;
    cr_assert_eq(gcs_node_drain(t, ids[0], NODE_ID_SIZE, "rayc stop", 5, &n, &changed), RAYC_OK);
    cr_assert(changed);
    cr_assert_eq(n->state, RPC__NODE_STATE__NODE_DEAD);
    cr_assert(strstr(n->death_reason, "rayc stop") != NULL);
    cr_assert_eq(n->end_time_ms, 5);
    cr_assert_eq(gcs_node_drain(t, ids[0], NODE_ID_SIZE, "again", 6, &n, &changed), RAYC_OK);
    cr_assert_not(changed);
    cr_assert_eq(heartbeat(0, 10, 1), RAYC_EINVAL);
}

Test(gcs_node, drain_of_unknown_node_is_not_found)
{
    bool changed;
    memset(ids[3], 0x77, NODE_ID_SIZE);
    cr_assert_eq(gcs_node_drain(t, ids[3], NODE_ID_SIZE, "x", 0, NULL, &changed), RAYC_ENOTFOUND);
    cr_assert_eq(gcs_node_drain(t, ids[3], 3, "x", 0, NULL, &changed), RAYC_ENOTFOUND);
}

/* After a GCS restart, an ALIVE node gets a full timeout from the load. */
Test(gcs_node, load_resets_the_heartbeat_clock_of_alive_nodes)
{
    Rpc__NodeInfo a = info_for(0, "a:1");
    a.state = RPC__NODE_STATE__NODE_ALIVE;
    Rpc__NodeInfo d = info_for(1, "b:1");
    d.state = RPC__NODE_STATE__NODE_DEAD;
    size_t la, ld;
    uint8_t *pa = gcs_storage_pack(&a.base, &la), *pd = gcs_storage_pack(&d.base, &ld);
    cr_assert_eq(gcs_node_load(t, pa, la, 50000), RAYC_OK);
    cr_assert_eq(gcs_node_load(t, pd, ld, 50000), RAYC_OK);
    free(pa);
    free(pd);
    cr_assert_eq(gcs_node_count(t), 2);
    cr_assert_eq(gcs_node_alive_count(t), 1);
    cr_assert_eq(gcs_node_check_health(t, 50000 + TIMEOUT, TIMEOUT, NULL, NULL), 0);
    cr_assert_eq(gcs_node_check_health(t, 50001 + TIMEOUT, TIMEOUT, NULL, NULL), 1);
    cr_assert_eq(reg(1, 0, NULL), RAYC_EINVAL, "a node loaded DEAD stays dead");
}

Test(gcs_node, load_rejects_garbage)
{
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(gcs_node_load(t, junk, sizeof(junk), 0), RAYC_EINVAL);
    Rpc__NodeInfo n = RPC__NODE_INFO__INIT; /* no id */
    size_t len;
    uint8_t *p = gcs_storage_pack(&n.base, &len);
    cr_assert_eq(gcs_node_load(t, p, len, 0), RAYC_EINVAL);
    free(p);
    cr_assert_eq(gcs_node_count(t), 0);
}

Test(gcs_node, list_puts_alive_nodes_first)
{
    reg(0, 0, NULL);
    reg(1, 0, NULL);
    reg(2, 0, NULL);
    gcs_node_drain(t, ids[0], NODE_ID_SIZE, "bye", 1, NULL, NULL);
    const Rpc__NodeInfo *out[3];
    cr_assert_eq(gcs_node_list(t, out, 3), 3);
    cr_assert_eq(out[0]->state, RPC__NODE_STATE__NODE_ALIVE);
    cr_assert_eq(out[1]->state, RPC__NODE_STATE__NODE_ALIVE);
    cr_assert_eq(out[2]->state, RPC__NODE_STATE__NODE_DEAD);
    cr_assert_eq(gcs_node_list(t, out, 2), 2);
}
