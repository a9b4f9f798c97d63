/* test_sched.c -- the scheduling policy (raylet/sched_policy.h): resource
 * arithmetic, demand building, and the DEFAULT (hybrid), SPREAD and NODE
 * placement decisions over hand-built cluster views. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rayc.h"
#include "../../raylet/sched_policy.h"

/* ------------------------------------------------------------ helpers */

#define MAX_NODES 8

/* A cluster view over a static array of nodes; node i has id byte 0 = i+1. */
/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(sched, .timeout = 30);

typedef struct {
    sched_node nodes[MAX_NODES];
    sched_view v;
} cluster;

static res_set rs(const char *spec)
{
    res_set s = {0};
    char err[128] = "";
    cr_assert_eq(res_parse(&s, spec, err, sizeof(err)), 0, "'%s': %s", spec, err);
    return s;
}

static node_id_t nid(int i)
{
    node_id_t id = {{0}};
    id.b[0] = (uint8_t)(i + 1);
    return id;
}

/* Node i gets `total`, fully available and alive. */
static void add_node(cluster *c, const char *total)
{
    int i = c->v.n++;
    cr_assert_lt(i, MAX_NODES);
    c->nodes[i].id = nid(i);
    c->nodes[i].total = rs(total);
    c->nodes[i].available = c->nodes[i].total;
    c->nodes[i].alive = true;
}

static void cluster_init(cluster *c, int local)
{
    memset(c, 0, sizeof(*c));
    c->v.nodes = c->nodes;
    c->v.local = local;
    c->v.rng = 12345;
}

/* Take `spec` out of node i's available resources. */
static void use(cluster *c, int i, const char *spec)
{
    res_set d = rs(spec);
    sched_acquire(&c->nodes[i].available, &d);
}

static sched_req req(const char *demand, int strategy)
{
    sched_req r = {0};
    r.demand = rs(demand);
    r.strategy = strategy;
    return r;
}

static sched_req node_req(const char *demand, int node, bool soft)
{
    sched_req r = req(demand, RAYC_SCHED_NODE);
    r.has_node = true;
    r.node = nid(node);
    r.soft = soft;
    return r;
}

/* Place and check outcome and target in one line. */
static void expect(cluster *c, const sched_req *r, const uint64_t *loc, int outcome, int target)
{
    int t = -99;
    int got = sched_place(&c->v, r, loc, &t);
    cr_assert_eq(got, outcome, "outcome %s, want %s", sched_outcome_name(got),
                 sched_outcome_name(outcome));
    cr_assert_eq(t, target, "target %d, want %d (%s)", t, target, sched_outcome_name(got));
}

/* ------------------------------------------------------------ resources */

Test(sched, fits_and_feasible)
{
    res_set avail = rs("CPU=2,GPU=1,accel=0.5"), total = rs("CPU=4,GPU=1,accel=1");
    cr_assert(sched_fits(&avail, &(res_set){0}), "an empty demand always fits");
    res_set d = rs("CPU=2");
    cr_assert(sched_fits(&avail, &d));
    d = rs("CPU=2.5");
    cr_assert_not(sched_fits(&avail, &d));
    cr_assert(sched_feasible(&total, &d));
    d = rs("CPU=4.5");
    cr_assert_not(sched_feasible(&total, &d));
    /* Custom and fractional amounts. */
    d = rs("accel=0.5,CPU=0.25");
    cr_assert(sched_fits(&avail, &d));
    d = rs("accel=0.75");
    cr_assert_not(sched_fits(&avail, &d));
    cr_assert(sched_feasible(&total, &d));
    /* A name the node lacks counts as 0: any positive amount never fits. */
    d = rs("TPU=0.01");
    cr_assert_not(sched_fits(&avail, &d));
    cr_assert_not(sched_feasible(&total, &d));
    /* ... but a zero amount of it does. */
    d = rs("TPU=0,CPU=1");
    cr_assert(sched_fits(&avail, &d));
    cr_assert(sched_feasible(&total, &d));
}

Test(sched, fractional_amounts_add_up)
{
    /* 0.1 + 0.2 != 0.3 in binary; the epsilon makes it behave. */
    res_set avail = rs("CPU=0.3"), total = avail;
    res_set a = rs("CPU=0.1"), b = rs("CPU=0.2");
    cr_assert(sched_fits(&avail, &a));
    sched_acquire(&avail, &a);
    cr_assert(sched_fits(&avail, &b), "0.2 must fit in 0.3 - 0.1 (have %.17g)",
              res_get(&avail, "CPU"));
    sched_acquire(&avail, &b);
    cr_assert_eq(res_get(&avail, "CPU"), 0.0, "snaps to 0, have %.17g", res_get(&avail, "CPU"));
    cr_assert_not(sched_fits(&avail, &a));

    /* Ten grants of 0.1 exhaust one CPU; ten releases restore it exactly. */
    avail = rs("CPU=1");
    total = avail;
    for (int i = 0; i < 10; i++) {
        cr_assert(sched_fits(&avail, &a), "grant %d refused (have %.17g)", i,
                  res_get(&avail, "CPU"));
        sched_acquire(&avail, &a);
    }
    cr_assert_not(sched_fits(&avail, &a), "an 11th 0.1 fitted (have %.17g)",
                  res_get(&avail, "CPU"));
    for (int i = 0; i < 10; i++)
        sched_release(&avail, &total, &a);
    cr_assert_eq(res_get(&avail, "CPU"), 1.0, "have %.17g", res_get(&avail, "CPU"));
}

Test(sched, acquire_and_release_custom)
{
    res_set total = rs("CPU=4,GPU=2,accel=1"), avail = total;
    res_set d = rs("CPU=1.5,accel=1");
    sched_acquire(&avail, &d);
    cr_assert_eq(res_get(&avail, "CPU"), 2.5);
    cr_assert_eq(res_get(&avail, "accel"), 0.0);
    cr_assert_eq(res_get(&avail, "GPU"), 2.0, "untouched");
    cr_assert_not(sched_fits(&avail, &d), "accel is gone");
    sched_release(&avail, &total, &d);
    cr_assert_eq(res_get(&avail, "CPU"), 4.0);
    cr_assert_eq(res_get(&avail, "accel"), 1.0);
    cr_assert(sched_fits(&avail, &d));
}

Test(sched, release_never_exceeds_total)
{
    res_set total = rs("CPU=2,accel=1"), avail = total;
    res_set d = rs("CPU=1,accel=1");
    sched_release(&avail, &total, &d); /* a release with no matching grant */
    cr_assert_eq(res_get(&avail, "CPU"), 2.0);
    cr_assert_eq(res_get(&avail, "accel"), 1.0);
    sched_acquire(&avail, &d);
    sched_release(&avail, &total, &d);
    sched_release(&avail, &total, &d);
    cr_assert_eq(res_get(&avail, "CPU"), 2.0);
    cr_assert_eq(res_get(&avail, "accel"), 1.0);
    /* A name the node does not have stays at 0 after a release. */
    d = rs("TPU=3");
    sched_release(&avail, &total, &d);
    cr_assert_eq(res_get(&avail, "TPU"), 0.0);
}

Test(sched, acquire_may_overcommit)
{
    /* A blocked worker's CPU was lent out; taking it back overcommits. */
    res_set total = rs("CPU=1"), avail = total;
    res_set one = rs("CPU=1");
    sched_acquire(&avail, &one);
    sched_acquire(&avail, &one);
    cr_assert_eq(res_get(&avail, "CPU"), -1.0);
    res_set small = rs("CPU=0.5");
    cr_assert_not(sched_fits(&avail, &small), "an overcommitted node fits nothing");
    sched_release(&avail, &total, &one);
    cr_assert_eq(res_get(&avail, "CPU"), 0.0);
    sched_release(&avail, &total, &one);
    cr_assert_eq(res_get(&avail, "CPU"), 1.0);
}

Test(sched, utilization_is_the_critical_resource)
{
    sched_node n = {.total = rs("CPU=4,GPU=2,memory=1000,accel=0"), .alive = true};
    n.available = n.total;
    cr_assert_eq(sched_utilization(&n), 0.0);
    res_set d = rs("CPU=1");
    sched_acquire(&n.available, &d);
    cr_assert_float_eq(sched_utilization(&n), 0.25, 1e-12);
    d = rs("GPU=1.5");
    sched_acquire(&n.available, &d);
    cr_assert_float_eq(sched_utilization(&n), 0.75, 1e-12, "GPU is now the critical one");
    d = rs("memory=900");
    sched_acquire(&n.available, &d);
    cr_assert_float_eq(sched_utilization(&n), 0.9, 1e-12);
    d = rs("CPU=9");
    sched_acquire(&n.available, &d); /* overcommitted: clamps to 1 */
    cr_assert_eq(sched_utilization(&n), 1.0);
    sched_node empty = {.alive = true};
    cr_assert_eq(sched_utilization(&empty), 0.0);
}

/* ------------------------------------------------------------ demand */

Test(sched, demand_defaults)
{
    res_set d;
    char err[128] = "";
    cr_assert_eq(sched_demand_from_opts(&d, 0, 0, 0, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(d.n, 1, "just CPU");
    cr_assert_eq(res_get(&d, "CPU"), 1.0, "0 CPUs means 1 for tasks");
    cr_assert_eq(sched_demand_from_opts(&d, 0.5, 0, 0, "", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(res_get(&d, "CPU"), 0.5);
    cr_assert_eq(d.n, 1);
}

Test(sched, demand_all_fields)
{
    res_set d;
    char err[128] = "";
    cr_assert_eq(
        sched_demand_from_opts(&d, 2, 0.5, (size_t)1 << 30, "accel=1,disk=0.25", err, sizeof(err)),
        0, "%s", err);
    cr_assert_eq(d.n, 5);
    cr_assert_eq(res_get(&d, "CPU"), 2.0);
    cr_assert_eq(res_get(&d, "GPU"), 0.5);
    cr_assert_eq(res_get(&d, "memory"), 1073741824.0);
    cr_assert_eq(res_get(&d, "accel"), 1.0);
    cr_assert_eq(res_get(&d, "disk"), 0.25);
    /* The demand is rebuilt, not added to. */
    cr_assert_eq(sched_demand_from_opts(&d, 1, 0, 0, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(res_get(&d, "accel"), 0.0);
}

Test(sched, demand_rejects_bad_input)
{
    struct {
        double cpus, gpus;
        const char *res;
    } bad[] = {
        {-1, 0, NULL},   {0, -0.5, NULL},    {NAN, 0, NULL},       {0, INFINITY, NULL},
        {1, 0, "accel"}, {1, 0, "accel=-1"}, {1, 0, "=2"},         {1, 0, "accel=x"},
        {1, 0, "CPU=2"}, {1, 0, "GPU=1"},    {1, 0, "memory=100"}, {1, 0, "a=1,b"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        res_set d;
        char err[128] = "";
        cr_assert_eq(
            sched_demand_from_opts(&d, bad[i].cpus, bad[i].gpus, 0, bad[i].res, err, sizeof(err)),
            -1, "case %zu (%g, %g, %s) accepted", i, bad[i].cpus, bad[i].gpus,
            bad[i].res ? bad[i].res : "NULL");
        cr_assert_neq(err[0], '\0', "case %zu: no message", i);
    }
    /* Too many names for a res_set (3 taken by CPU, GPU, memory). */
    char spec[RES_MAX * 12] = "";
    size_t off = 0;
    for (int i = 0; i < RES_MAX - 2; i++)
        off += (size_t)snprintf(spec + off, sizeof(spec) - off, "%sr%d=1", i ? "," : "", i);
    res_set d;
    char err[128] = "";
    cr_assert_eq(sched_demand_from_opts(&d, 1, 1, 10, spec, err, sizeof(err)), -1);
    cr_assert_neq(err[0], '\0');
}

/* ------------------------------------------------------------ DEFAULT */

Test(sched, local_preferred_under_threshold)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    expect(&c, &r, NULL, SCHED_RUN_LOCAL, 0);
    use(&c, 0, "CPU=1"); /* 0.25 */
    expect(&c, &r, NULL, SCHED_RUN_LOCAL, 0);
    /* Fractions just under the threshold still count as under it. */
    use(&c, 0, "CPU=0.9"); /* 0.475 */
    expect(&c, &r, NULL, SCHED_RUN_LOCAL, 0);
}

Test(sched, spills_to_least_loaded_above_threshold)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    use(&c, 0, "CPU=2"); /* local at 0.5: no longer below the threshold */
    use(&c, 1, "CPU=1"); /* 0.25 */
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    expect(&c, &r, NULL, SCHED_FORWARD, 2);
    use(&c, 2, "CPU=2"); /* node 2 now 0.5, node 1 0.25 */
    expect(&c, &r, NULL, SCHED_FORWARD, 1);
    /* Everyone busier than the local node: it keeps the task. */
    use(&c, 1, "CPU=2"); /* 0.75 */
    use(&c, 2, "CPU=1"); /* 0.75 */
    expect(&c, &r, NULL, SCHED_RUN_LOCAL, 0);
    /* A task that does not fit locally goes to a node where it fits. */
    sched_req big = req("CPU=3", RAYC_SCHED_DEFAULT);
    cluster_init(&c, 0);
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    use(&c, 0, "CPU=2");
    use(&c, 1, "CPU=1"); /* 0.25 but has 3 free */
    expect(&c, &big, NULL, SCHED_FORWARD, 1);
}

Test(sched, local_wins_ties_only_if_it_fits)
{
    cluster c;
    cluster_init(&c, 1); /* local in the middle: not first in scan order */
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2");
    for (int i = 0; i < 3; i++)
        use(&c, i, "CPU=1"); /* all at 0.5 */
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    for (int k = 0; k < 50; k++)
        expect(&c, &r, NULL, SCHED_RUN_LOCAL, 1);
    /* Same utilisation, but the local node cannot fit the task now. */
    sched_req r2 = req("CPU=1,accel=1", RAYC_SCHED_DEFAULT);
    cluster_init(&c, 0);
    add_node(&c, "CPU=2,accel=1");
    add_node(&c, "CPU=2,accel=1");
    use(&c, 0, "CPU=1,accel=1");
    use(&c, 1, "CPU=1"); /* both at critical utilisation... */
    expect(&c, &r2, NULL, SCHED_FORWARD, 1);
}

Test(sched, ties_are_shared_between_equal_nodes)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    use(&c, 0, "CPU=2"); /* local full */
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    int hits[3] = {0};
    for (int k = 0; k < 1000; k++) {
        int t = -1;
        cr_assert_eq(sched_place(&c.v, &r, NULL, &t), SCHED_FORWARD);
        cr_assert(t == 1 || t == 2, "target %d", t);
        hits[t]++;
    }
    cr_assert_eq(hits[0], 0);
    cr_assert_gt(hits[1], 350, "node 1 chosen %d/1000", hits[1]);
    cr_assert_gt(hits[2], 350, "node 2 chosen %d/1000", hits[2]);
}

Test(sched, three_way_ties_are_uniform)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=1");
    add_node(&c, "CPU=8");
    add_node(&c, "CPU=8");
    add_node(&c, "CPU=8");
    use(&c, 0, "CPU=1");
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    int hits[4] = {0};
    for (int k = 0; k < 3000; k++) {
        int t = -1;
        cr_assert_eq(sched_place(&c.v, &r, NULL, &t), SCHED_FORWARD);
        hits[t]++;
    }
    for (int i = 1; i < 4; i++)
        cr_assert(hits[i] > 800 && hits[i] < 1200, "node %d chosen %d/3000", i, hits[i]);
}

Test(sched, waits_locally_when_busy_but_feasible)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2");
    use(&c, 0, "CPU=2");
    use(&c, 1, "CPU=2");
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    expect(&c, &r, NULL, SCHED_WAIT, 0);
    /* Even when a remote node is busy but less utilised. */
    add_node(&c, "CPU=8");
    use(&c, 2, "CPU=7.5");
    expect(&c, &r, NULL, SCHED_WAIT, 0);
    /* Single node, no room now. */
    cluster_init(&c, 0);
    add_node(&c, "CPU=1");
    use(&c, 0, "CPU=1");
    expect(&c, &r, NULL, SCHED_WAIT, 0);
}

Test(sched, custom_resource_only_on_a_remote_node)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=8");
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2,accel=1");
    sched_req r = req("CPU=1,accel=1", RAYC_SCHED_DEFAULT);
    expect(&c, &r, NULL, SCHED_FORWARD, 2);
    use(&c, 2, "accel=1"); /* busy, but the only node that can ever run it */
    expect(&c, &r, NULL, SCHED_WAIT, 2);
    sched_req none = req("CPU=1,TPU=1", RAYC_SCHED_DEFAULT);
    expect(&c, &none, NULL, SCHED_INFEASIBLE, -1);
    sched_req huge = req("CPU=9", RAYC_SCHED_DEFAULT);
    expect(&c, &huge, NULL, SCHED_INFEASIBLE, -1);
}

Test(sched, remote_wait_goes_to_least_utilised_feasible_node)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=1");
    add_node(&c, "CPU=2,accel=2");
    add_node(&c, "CPU=2,accel=2");
    use(&c, 1, "accel=2,CPU=1"); /* 1.0 */
    use(&c, 2, "accel=1.5");     /* 0.75, and 0.5 accel does not fit */
    sched_req r = req("accel=1", RAYC_SCHED_DEFAULT);
    expect(&c, &r, NULL, SCHED_WAIT, 2);
    use(&c, 2, "CPU=2"); /* now 1.0 too: either may be chosen, never the local node */
    int hits[3] = {0};
    for (int k = 0; k < 200; k++) {
        int t = -1;
        cr_assert_eq(sched_place(&c.v, &r, NULL, &t), SCHED_WAIT);
        cr_assert(t == 1 || t == 2, "target %d", t);
        hits[t]++;
    }
    cr_assert(hits[1] > 0 && hits[2] > 0, "ties not shared: %d/%d", hits[1], hits[2]);
}

Test(sched, dead_nodes_are_never_chosen)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=64,accel=1"); /* idle and huge, but dead */
    add_node(&c, "CPU=2");
    c.nodes[1].alive = false;
    use(&c, 0, "CPU=2");
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    for (int k = 0; k < 100; k++)
        expect(&c, &r, NULL, SCHED_FORWARD, 2);
    use(&c, 2, "CPU=2");
    expect(&c, &r, NULL, SCHED_WAIT, 0);
    sched_req acc = req("accel=1", RAYC_SCHED_DEFAULT);
    expect(&c, &acc, NULL, SCHED_INFEASIBLE, -1);
    uint64_t loc[3] = {0, 1 << 20, 0};
    expect(&c, &r, loc, SCHED_WAIT, 0);
    sched_req sp = req("CPU=1", RAYC_SCHED_SPREAD);
    expect(&c, &sp, NULL, SCHED_WAIT, 2); /* round robin skips the dead node */
    expect(&c, &sp, NULL, SCHED_WAIT, 0);
    sched_req nd = node_req("CPU=1", 1, false);
    expect(&c, &nd, NULL, SCHED_INFEASIBLE, -1);
    /* A dead local node is not used either. */
    cluster_init(&c, 0);
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    c.nodes[0].alive = false;
    expect(&c, &r, NULL, SCHED_FORWARD, 1);
    use(&c, 1, "CPU=4");
    expect(&c, &r, NULL, SCHED_WAIT, 1);
}

Test(sched, no_nodes_or_no_local_node)
{
    cluster c;
    cluster_init(&c, 0);
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    expect(&c, &r, NULL, SCHED_INFEASIBLE, -1);
    r.strategy = RAYC_SCHED_SPREAD;
    expect(&c, &r, NULL, SCHED_INFEASIBLE, -1);
    cluster_init(&c, -1);
    add_node(&c, "CPU=1");
    r.strategy = RAYC_SCHED_DEFAULT;
    expect(&c, &r, NULL, SCHED_FORWARD, 0);
}

Test(sched, invalid_requests)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=1");
    sched_req r = req("CPU=1", 7);
    int t = 5;
    cr_assert_eq(sched_place(&c.v, &r, NULL, &t), SCHED_EINVAL);
    cr_assert_eq(t, -1);
    r.strategy = RAYC_SCHED_DEFAULT;
    cr_assert_eq(sched_place(NULL, &r, NULL, &t), SCHED_EINVAL);
    cr_assert_eq(sched_place(&c.v, NULL, NULL, &t), SCHED_EINVAL);
    cr_assert_eq(sched_place(&c.v, &r, NULL, NULL), SCHED_EINVAL);
    cr_assert_str_eq(sched_outcome_name(SCHED_WAIT), "WAIT");
    cr_assert_str_eq(sched_outcome_name(SCHED_EINVAL), "EINVAL");
}

/* ------------------------------------------------------------ locality */

Test(sched, locality_prefers_most_bytes)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    use(&c, 0, "CPU=3");
    use(&c, 2, "CPU=2"); /* busier than nodes 1 and 3, but holds the data */
    use(&c, 3, "CPU=1");
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    uint64_t loc[4] = {100, 1000, 5000, 0};
    expect(&c, &r, loc, SCHED_FORWARD, 2);
    /* Without locality the least utilised node wins. */
    expect(&c, &r, NULL, SCHED_FORWARD, 1);
    /* No node holds any bytes: as without locality. */
    uint64_t none[4] = {0, 0, 0, 0};
    expect(&c, &r, none, SCHED_FORWARD, 1);
    /* The data holder is full: the next best holder that fits. */
    use(&c, 2, "CPU=2");
    expect(&c, &r, loc, SCHED_FORWARD, 1);
    /* The local node holds the most and fits (though above the threshold). */
    uint64_t mine[4] = {9000, 1000, 5000, 0};
    expect(&c, &r, mine, SCHED_RUN_LOCAL, 0);
    /* Equal bytes: the less utilised holder. */
    uint64_t tie[4] = {0, 700, 0, 700};
    expect(&c, &r, tie, SCHED_FORWARD, 1);
    use(&c, 1, "CPU=3");
    expect(&c, &r, tie, SCHED_FORWARD, 3);
}

Test(sched, locality_beats_local_under_threshold)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    sched_req r = req("CPU=1", RAYC_SCHED_DEFAULT);
    /* Node 1 holds the arguments and has room: the task goes to its data
     * (issue 18: consumers all stayed on the submitting node). */
    uint64_t loc[2] = {0, 1 << 30};
    expect(&c, &r, loc, SCHED_FORWARD, 1);
    /* This node holds as much: it stays here. */
    uint64_t same[2] = {1 << 30, 1 << 30};
    expect(&c, &r, same, SCHED_RUN_LOCAL, 0);
    /* The holder is full: the hybrid rules again (here, under the threshold). */
    use(&c, 1, "CPU=4");
    expect(&c, &r, loc, SCHED_RUN_LOCAL, 0);
}

/* ------------------------------------------------------------ SPREAD */

Test(sched, spread_round_robins_evenly)
{
    cluster c;
    cluster_init(&c, 1);
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    add_node(&c, "CPU=4");
    sched_req r = req("CPU=1", RAYC_SCHED_SPREAD);
    int hits[3] = {0}, prev = -1;
    for (int k = 0; k < 300; k++) {
        int t = -1;
        int got = sched_place(&c.v, &r, NULL, &t);
        cr_assert_geq(t, 0);
        cr_assert_lt(t, 3);
        cr_assert_eq(got, t == 1 ? SCHED_RUN_LOCAL : SCHED_FORWARD, "k=%d t=%d got %s", k, t,
                     sched_outcome_name(got));
        cr_assert_neq(t, prev, "same node twice in a row at k=%d", k);
        cr_assert_eq(c.v.cursor, (uint64_t)t, "cursor follows the choice");
        prev = t;
        hits[t]++;
    }
    for (int i = 0; i < 3; i++)
        cr_assert(hits[i] >= 95 && hits[i] <= 105, "node %d chosen %d/300", i, hits[i]);
}

Test(sched, spread_skips_full_and_waits_round_robin)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2");
    use(&c, 1, "CPU=2");
    sched_req r = req("CPU=1", RAYC_SCHED_SPREAD);
    int hits[3] = {0};
    for (int k = 0; k < 100; k++) {
        int t = -1;
        sched_place(&c.v, &r, NULL, &t);
        cr_assert_geq(t, 0);
        hits[t]++;
    }
    cr_assert_eq(hits[1], 0, "the full node got %d", hits[1]);
    cr_assert_eq(hits[0], 50);
    cr_assert_eq(hits[2], 50);
    /* Nobody fits now: WAIT, still in round-robin order. */
    use(&c, 0, "CPU=2");
    use(&c, 2, "CPU=2");
    c.v.cursor = 0;
    expect(&c, &r, NULL, SCHED_WAIT, 1);
    expect(&c, &r, NULL, SCHED_WAIT, 2);
    expect(&c, &r, NULL, SCHED_WAIT, 0);
    sched_req none = req("CPU=3", RAYC_SCHED_SPREAD);
    expect(&c, &none, NULL, SCHED_INFEASIBLE, -1);
    cr_assert_eq(c.v.cursor, 0, "an infeasible request leaves the cursor");
}

/* ------------------------------------------------------------ NODE */

Test(sched, node_affinity_hard)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2,accel=1");
    /* Remote target: forwarded whether or not it has room now. */
    sched_req r = node_req("CPU=1", 1, false);
    expect(&c, &r, NULL, SCHED_FORWARD, 1);
    use(&c, 1, "CPU=2");
    expect(&c, &r, NULL, SCHED_FORWARD, 1);
    /* Local target: run now, or wait here, even above the threshold. */
    r = node_req("CPU=1", 0, false);
    use(&c, 0, "CPU=1");
    expect(&c, &r, NULL, SCHED_RUN_LOCAL, 0);
    use(&c, 0, "CPU=1");
    expect(&c, &r, NULL, SCHED_WAIT, 0);
    /* Infeasible, dead or unknown targets fail. */
    r = node_req("accel=1", 1, false);
    expect(&c, &r, NULL, SCHED_INFEASIBLE, -1);
    c.nodes[2].alive = false;
    r = node_req("CPU=1", 2, false);
    expect(&c, &r, NULL, SCHED_INFEASIBLE, -1);
    r = node_req("CPU=1", 7, false);
    expect(&c, &r, NULL, SCHED_INFEASIBLE, -1);
    r.has_node = false;
    expect(&c, &r, NULL, SCHED_INFEASIBLE, -1);
}

Test(sched, node_affinity_soft_falls_back)
{
    cluster c;
    cluster_init(&c, 0);
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=2");
    add_node(&c, "CPU=4");
    /* Dead target: DEFAULT runs it locally. */
    c.nodes[1].alive = false;
    sched_req r = node_req("CPU=1", 1, true);
    expect(&c, &r, NULL, SCHED_RUN_LOCAL, 0);
    /* Unknown target, local above threshold: the least utilised node. */
    use(&c, 0, "CPU=1");
    r = node_req("CPU=1", 6, true);
    expect(&c, &r, NULL, SCHED_FORWARD, 2);
    /* Infeasible target: falls back to where it fits. */
    c.nodes[1].alive = true;
    r = node_req("CPU=3", 1, true);
    expect(&c, &r, NULL, SCHED_FORWARD, 2);
    /* Soft does not leave an alive, feasible target that is merely busy. */
    use(&c, 1, "CPU=2");
    r = node_req("CPU=1", 1, true);
    expect(&c, &r, NULL, SCHED_FORWARD, 1);
    /* Nobody can run it: still infeasible. */
    r = node_req("CPU=5", 1, true);
    expect(&c, &r, NULL, SCHED_INFEASIBLE, -1);
}
