/*
 * test_placement_groups.c -- placement groups on real daemons (issue 16):
 * Ray's four strategies on a 3-node cluster (where the bundles went, and
 * that tasks of a bundle run there), reserved resources visible in
 * rayc_nodes, an infeasible group pending then removed, removal killing a
 * running task and giving the resources back, a raylet kill -9 rescheduling
 * its bundles elsewhere, a GCS kill -9 keeping the groups, and bad input.
 *
 * Each test starts Redis + GCS + 3 raylets (2 CPUs each) through the
 * harness and drives them in-process with librayc; tasks come from
 * build/examples/libmnlib_tasks.so (`where` returns the node it ran on,
 * `mark_nap` sleeps on a chosen node). Nothing here asserts a duration.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "rayc.h"

#define SLACK_MS 30000

TestSuite(pgs, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

/* ============================================================ cluster */

static void driver_init(const harness_cluster *c)
{
    const char *code[] = {harness_example_lib("mnlib"), harness_example_lib("actorlib"), NULL};
    harness_driver_init(c, code, NULL);
}

struct alive_arg {
    harness_cluster *c;
    int n;
};

static bool all_alive(void *arg)
{
    struct alive_arg *a = arg;
    return harness_count_nodes(a->c, RPC__NODE_STATE__NODE_ALIVE) == a->n;
}

/* Redis, GCS and three raylets with 2 CPUs each; a driver on the first. */
static void cluster3(harness_cluster *c)
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    const char *two[] = {"--num-cpus=2", NULL};
    for (int i = 0; i < 3; i++)
        harness_raylet_start(c, two);
    struct alive_arg a = {c, 3};
    cr_assert(harness_wait_until(all_alive, &a, SLACK_MS), "3 nodes never ALIVE");
    driver_init(c);
}

static rayc_pg create_pg(const char *const *bundles, size_t n, int strategy)
{
    rayc_pg pg;
    int rc = rayc_pg_create(bundles, n, strategy, NULL, &pg);
    cr_assert_eq(rc, RAYC_OK, "rayc_pg_create: %s", rayc_last_error());
    rc = rayc_pg_wait(pg, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "rayc_pg_wait: %s: %s", rayc_strerror(rc), rayc_last_error());
    return pg;
}

static void bundle_node(rayc_pg pg, size_t i, char *hex)
{
    int rc = rayc_pg_bundle_node(pg, i, hex);
    cr_assert_eq(rc, RAYC_OK, "rayc_pg_bundle_node(%zu): %s", i, rayc_last_error());
}

/* Run `where` in bundle i of pg; the node it ran on. */
static void where_in(rayc_pg pg, int bundle, char *hex)
{
    rayc_task_opts o = {.placement_group = &pg, .bundle_index = bundle};
    rayc_ref r;
    int rc = rayc_submit("where", NULL, 0, &o, &r);
    cr_assert_eq(rc, RAYC_OK, "submit in bundle %d: %s", bundle, rayc_last_error());
    rayc_value v;
    rc = rayc_get(&r, 1, &v, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "where in bundle %d: %s", bundle, rayc_last_error());
    snprintf(hex, 57, "%.*s", (int)v.size, (const char *)v.data);
    rayc_value_release(&v);
    rayc_ref_release(r);
}

static double node_cpus_available(const char *hex)
{
    rayc_node_info n[8];
    size_t count = 0;
    if (rayc_nodes(n, 8, &count) != RAYC_OK)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (strcmp(n[i].node_id, hex) == 0)
            return n[i].cpus_available;
    return -1;
}

struct cpus_arg {
    const char *hex;
    double want;
};

static bool cpus_are(void *arg)
{
    struct cpus_arg *a = arg;
    return node_cpus_available(a->hex) == a->want;
}

/* ============================================================ strategies */

Test(pgs, strategies_place_bundles_and_tasks_run_there)
{
    harness_cluster c;
    cluster3(&c);
    const char *one[] = {"CPU=1", "CPU=1", "CPU=1"};

    /* STRICT_SPREAD: three bundles, three nodes; each task runs on its bundle's node. */
    rayc_pg spread = create_pg(one, 3, RAYC_PG_STRICT_SPREAD);
    char n[3][57], ran[57];
    for (int i = 0; i < 3; i++) {
        bundle_node(spread, (size_t)i, n[i]);
        where_in(spread, i, ran);
        cr_assert_str_eq(ran, n[i], "a task of bundle %d ran off its node", i);
    }
    cr_assert(strcmp(n[0], n[1]) && strcmp(n[1], n[2]) && strcmp(n[0], n[2]),
              "STRICT_SPREAD put two bundles on one node");
    cr_assert_eq(rayc_pg_remove(spread), RAYC_OK);

    /* STRICT_PACK: both bundles on one node. */
    rayc_pg pack = create_pg(one, 2, RAYC_PG_STRICT_PACK);
    bundle_node(pack, 0, n[0]);
    bundle_node(pack, 1, n[1]);
    cr_assert_str_eq(n[0], n[1], "STRICT_PACK split its bundles");
    where_in(pack, -1, ran);
    cr_assert_str_eq(ran, n[0], "a task of any bundle ran off the group's node");
    cr_assert_eq(rayc_pg_remove(pack), RAYC_OK);

    /* PACK: fits on one node, so one node. */
    rayc_pg p = create_pg(one, 2, RAYC_PG_PACK);
    bundle_node(p, 0, n[0]);
    bundle_node(p, 1, n[1]);
    cr_assert_str_eq(n[0], n[1], "PACK used two nodes though one fits");
    cr_assert_eq(rayc_pg_remove(p), RAYC_OK);

    /* SPREAD: as many nodes as possible, once every node reports its CPUs
     * free again (placement works on the nodes' reported resources). */
    for (int i = 0; i < 3; i++) {
        struct cpus_arg a = {c.raylets[i].node_id, 2};
        cr_assert(harness_wait_until(cpus_are, &a, SLACK_MS), "node %d never freed its CPUs", i);
    }
    rayc_pg s = create_pg(one, 3, RAYC_PG_SPREAD);
    for (int i = 0; i < 3; i++)
        bundle_node(s, (size_t)i, n[i]);
    cr_assert(strcmp(n[0], n[1]) && strcmp(n[1], n[2]) && strcmp(n[0], n[2]),
              "SPREAD packed bundles though every node had room");
    rayc_shutdown();
}

/* ============================================================ resources */

Test(pgs, reserved_resources_show_and_removal_kills_and_gives_back)
{
    harness_cluster c;
    cluster3(&c);
    const char *b[] = {"CPU=2"};
    rayc_pg pg = create_pg(b, 1, RAYC_PG_PACK);
    char node[57];
    bundle_node(pg, 0, node);
    struct cpus_arg a = {node, 0};
    cr_assert(harness_wait_until(cpus_are, &a, SLACK_MS),
              "the bundle's 2 CPUs are not taken from its node (free: %g)",
              node_cpus_available(node));

    /* A task sleeping in the bundle; removing the group kills it. */
    char path[HARNESS_PATH];
    snprintf(path, sizeof(path), "%s/naps", harness_dir());
    uint64_t ms = 600000;
    rayc_arg args[3] = {RAYC_VAL(path, strlen(path) + 1), RAYC_VAL(&ms, sizeof(ms)),
                        RAYC_VAL(node, strlen(node) + 1)};
    rayc_task_opts o = {.placement_group = &pg, .bundle_index = 0, .max_retries = -1};
    rayc_ref r;
    cr_assert_eq(rayc_submit("mark_nap", args, 3, &o, &r), RAYC_OK, "%s", rayc_last_error());
    for (int i = 0; i < 300 && access(path, F_OK) != 0; i++)
        usleep(20000);
    cr_assert(access(path, F_OK) == 0, "the task never started");
    cr_assert_eq(rayc_pg_remove(pg), RAYC_OK, "%s", rayc_last_error());
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, SLACK_MS);
    cr_assert(rc != RAYC_OK && rc != RAYC_ETIMEDOUT, "the task in a removed group: %s",
              rayc_strerror(rc));
    rayc_value_release(&v);
    rayc_ref_release(r);
    a.want = 2;
    cr_assert(harness_wait_until(cpus_are, &a, SLACK_MS), "the CPUs did not come back (free: %g)",
              node_cpus_available(node));
    /* A task naming the removed group fails at submit. */
    rc = rayc_submit("where", NULL, 0, &o, &r);
    cr_assert_eq(rc, RAYC_EINVAL, "submit in a removed group: %s", rayc_strerror(rc));
    rayc_shutdown();
}

Test(pgs, infeasible_group_stays_pending_then_is_removed)
{
    harness_cluster c;
    cluster3(&c);
    const char *big[] = {"CPU=100"};
    rayc_pg pg;
    cr_assert_eq(rayc_pg_create(big, 1, RAYC_PG_PACK, NULL, &pg), RAYC_OK);
    int rc = rayc_pg_wait(pg, 1000);
    cr_assert_eq(rc, RAYC_ETIMEDOUT, "an infeasible group: %s", rayc_strerror(rc));
    char node[57];
    cr_assert_eq(rayc_pg_bundle_node(pg, 0, node), RAYC_ENOTFOUND, "placed nowhere");
    /* It reserved nothing: every node still has its 2 CPUs. */
    rayc_node_info n[8];
    size_t count = 0;
    cr_assert_eq(rayc_nodes(n, 8, &count), RAYC_OK);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(n[i].cpus_available, 2, "node %zu lost CPUs to a pending group", i);
    /* rayc status counts it as pending. */
    char addr[96], tok[HARNESS_PATH + 16];
    snprintf(addr, sizeof(addr), "--address=%s", c.address);
    snprintf(tok, sizeof(tok), "--token-file=%s", c.token_file);
    const char *args[] = {"status", addr, tok, NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(harness_ctl(&out, &err, args), 0, "rayc_ctl status: %s", err);
    cr_assert(strstr(out, "Placement groups: 0 created, 1 pending"), "status: %s", out);
    free(out);
    free(err);
    cr_assert_eq(rayc_pg_remove(pg), RAYC_OK);
    rc = rayc_pg_wait(pg, 0);
    cr_assert_eq(rc, RAYC_EINVAL, "a removed group: %s", rayc_strerror(rc));
    rayc_shutdown();
}

Test(pgs, bad_input_is_einval_with_a_message)
{
    harness_cluster c;
    cluster3(&c);
    rayc_pg pg;
    const char *ok[] = {"CPU=1"};
    const char *bad[] = {"CPU=one"};
    const char *empty[] = {"CPU=0"};
    cr_assert_eq(rayc_pg_create(ok, 0, RAYC_PG_PACK, NULL, &pg), RAYC_EINVAL, "zero bundles");
    cr_assert_eq(rayc_pg_create(bad, 1, RAYC_PG_PACK, NULL, &pg), RAYC_EINVAL, "malformed");
    cr_assert(strstr(rayc_last_error(), "CPU=one"), "%s", rayc_last_error());
    cr_assert_eq(rayc_pg_create(empty, 1, RAYC_PG_PACK, NULL, &pg), RAYC_EINVAL, "asks nothing");
    cr_assert_eq(rayc_pg_create(ok, 1, 9, NULL, &pg), RAYC_EINVAL, "unknown strategy");
    rayc_pg unknown = {{0}};
    cr_assert_eq(rayc_pg_wait(unknown, 0), RAYC_EINVAL, "unknown group");
    rayc_pg real = create_pg(ok, 1, RAYC_PG_PACK);
    rayc_task_opts o = {.placement_group = &real, .bundle_index = 3};
    rayc_ref r;
    cr_assert_eq(rayc_submit("where", NULL, 0, &o, &r), RAYC_EINVAL, "bundle index out of range");
    o.bundle_index = 0;
    o.num_cpus = 2;
    cr_assert_eq(rayc_submit("where", NULL, 0, &o, &r), RAYC_EINVAL, "more than the bundle has");
    cr_assert(strstr(rayc_last_error(), "more than"), "%s", rayc_last_error());
    char node[57];
    cr_assert_eq(rayc_pg_bundle_node(real, 1, node), RAYC_EINVAL, "bundle out of range");
    rayc_shutdown();
}

/* ============================================================ faults */

struct moved_arg {
    rayc_pg pg;
    const char *dead;
    char now[57];
};

static bool moved(void *arg)
{
    struct moved_arg *a = arg;
    return rayc_pg_wait(a->pg, 0) == RAYC_OK && rayc_pg_bundle_node(a->pg, 0, a->now) == RAYC_OK &&
           strcmp(a->now, a->dead) != 0;
}

Test(pgs, node_death_reschedules_its_bundles_and_gcs_restart_keeps_groups)
{
    harness_cluster c;
    cluster3(&c);
    /* Two bundles on two nodes; the driver's node (0) is not the victim. */
    const char *b[] = {"CPU=2", "CPU=2"};
    rayc_pg pg = create_pg(b, 2, RAYC_PG_STRICT_SPREAD);
    char n0[57], n1[57];
    bundle_node(pg, 0, n0);
    bundle_node(pg, 1, n1);
    int victim = -1;
    for (int i = 1; i < 3 && victim < 0; i++)
        if (strcmp(c.raylets[i].node_id, n0) == 0)
            victim = i;
    if (victim < 0) { /* bundle 0 is on the driver's node: use bundle 1 */
        for (int i = 1; i < 3 && victim < 0; i++)
            if (strcmp(c.raylets[i].node_id, n1) == 0)
                victim = i;
        char t[57];
        memcpy(t, n0, sizeof(t));
        memcpy(n0, n1, sizeof(n0));
        memcpy(n1, t, sizeof(n1));
    }
    cr_assert_geq(victim, 1, "no bundle off the driver's node");

    /* GCS kill -9 and restart: the group and its bundles are still there. */
    harness_kill9(c.gcs);
    harness_gcs_restart(&c);
    char again[57];
    bundle_node(pg, 0, again);
    cr_assert(strcmp(again, n0) == 0 || strcmp(again, n1) == 0, "bundle 0 moved on a GCS restart");
    char ran[57];
    where_in(pg, -1, ran);

    /* The raylet of a node with a bundle dies: the bundle goes elsewhere. */
    harness_kill9(c.raylets[victim].proc);
    struct moved_arg m = {.pg = pg, .dead = c.raylets[victim].node_id};
    size_t which = strcmp(n0, c.raylets[victim].node_id) == 0 ? 0 : 1;
    (void)which;
    bool ok = false;
    for (int i = 0; i < 2 && !ok; i++) {
        m.now[0] = '\0';
        ok = harness_wait_until(moved, &m, SLACK_MS + c.health_timeout_ms);
        if (!ok)
            break;
        /* Both bundles must be off the dead node. */
        char o0[57], o1[57];
        bundle_node(pg, 0, o0);
        bundle_node(pg, 1, o1);
        ok = strcmp(o0, m.dead) != 0 && strcmp(o1, m.dead) != 0 && strcmp(o0, o1) != 0;
    }
    cr_assert(ok, "the group was not rescheduled off the dead node");
    rayc_shutdown();
}

/* ============================================================ actors */

struct dead_arg {
    rayc_actor a;
};

static bool actor_dead(void *arg)
{
    struct dead_arg *d = arg;
    char st[256];
    return rayc_actor_state(d->a, st, sizeof(st)) == RAYC_OK && strncmp(st, "DEAD", 4) == 0;
}

Test(pgs, actor_in_a_bundle_runs_there_and_dies_with_the_group)
{
    harness_cluster c;
    cluster3(&c);
    const char *b[] = {"CPU=1", "CPU=1"};
    rayc_pg pg = create_pg(b, 2, RAYC_PG_STRICT_SPREAD);
    char n1[57];
    bundle_node(pg, 1, n1);
    rayc_actor_opts o = {.placement_group = &pg, .bundle_index = 1, .num_cpus = 1};
    int64_t start = 7;
    rayc_arg arg = RAYC_VAL(&start, sizeof(start));
    rayc_actor a;
    int rc = rayc_actor_create("Counter", &arg, 1, &o, &a);
    cr_assert_eq(rc, RAYC_OK, "rayc_actor_create in a bundle: %s", rayc_last_error());
    rayc_ref r;
    cr_assert_eq(rayc_actor_call(a, "node", NULL, 0, NULL, &r), RAYC_OK);
    rayc_value v;
    cr_assert_eq(rayc_get(&r, 1, &v, SLACK_MS), RAYC_OK, "%s", rayc_last_error());
    char where[57];
    snprintf(where, sizeof(where), "%.*s", (int)v.size, (const char *)v.data);
    rayc_value_release(&v);
    rayc_ref_release(r);
    cr_assert_str_eq(where, n1, "the actor does not live on its bundle's node");
    /* Its CPU is the bundle's: a task of bundle 1 has none left and waits;
     * the actor asking for more than the bundle holds is refused. */
    rayc_actor big;
    rayc_actor_opts too_much = {.placement_group = &pg, .bundle_index = 1, .num_cpus = 2};
    cr_assert_eq(rayc_actor_create("Counter", &arg, 1, &too_much, &big), RAYC_EINVAL);

    cr_assert_eq(rayc_pg_remove(pg), RAYC_OK);
    struct dead_arg d = {a};
    cr_assert(harness_wait_until(actor_dead, &d, SLACK_MS), "the actor outlived its group");
    char st[256];
    cr_assert_eq(rayc_actor_state(a, st, sizeof(st)), RAYC_OK);
    cr_assert(strstr(st, "placement group was removed"), "state: %s", st);
    rayc_shutdown();
}
