/*
 * test_pressure.c -- no task hangs and nothing stays behind (issue 18; issue
 * 12 items 2 and 5): a job that ends leaves no task record and no object on
 * any node, whatever state its tasks were in; arguments pulled for a task
 * stay until it ran, under store pressure too; a dependency wait that cannot
 * progress says why in `rayc status`; SPREAD spreads from the first task of
 * a cold cluster; consumers run where their argument bytes are; and a
 * bounded map/reduce soak under store pressure, with and without worker
 * kills, checks every result and that every node ends empty.
 *
 * Each test starts its own redis + GCS + raylets through the harness and
 * drives the cluster in-process with librayc; tasks come from
 * build/examples/libmnlib_tasks.so (examples/mnlib/tasks.c). Nothing here
 * asserts a duration: every wait polls a condition up to a generous limit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "pattern.h"
#include "rayc.h"
#include "util.h"

#define MIB      ((size_t)1 << 20)
#define ALIVE    RPC__NODE_STATE__NODE_ALIVE
#define SLACK_MS 30000  /* generous: a busy 2-vCPU machine; never a speed test */
#define LONG_MS  120000 /* gets of whole rounds */

TestSuite(pressure, .init = harness_setup, .fini = harness_teardown, .timeout = 300);

/* ============================================================ cluster */

static void driver_env(const harness_cluster *c)
{
    setenv("RAYC_TOKEN_FILE", c->token_file, 1);
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_ADDRESS");
    char temp[HARNESS_PATH + 16];
    snprintf(temp, sizeof(temp), "%s/drivertmp", harness_dir());
    mkdir(temp, 0700);
    setenv("RAYC_TEMP_DIR", temp, 1);
}

struct views_arg {
    const harness_cluster *c;
    uint64_t after;
};

/* Every node ALIVE with a heartbeat newer than `after`: each raylet then
 * holds a view of every node. */
static bool all_alive_since(void *arg)
{
    struct views_arg *a = arg;
    Rpc__ListNodesReply *r = harness_list_nodes(a->c);
    if (r == NULL)
        return false;
    int alive = 0;
    bool fresh = true;
    for (size_t i = 0; i < r->n_nodes; i++) {
        if (r->nodes[i]->state != ALIVE)
            continue;
        alive++;
        fresh = fresh && r->nodes[i]->last_heartbeat_ms > a->after;
    }
    msg_free(&r->base);
    return alive == a->c->nraylets && fresh;
}

/* n raylets (node 0 the head) with extra flags each; returns once every
 * node is ALIVE and has heartbeated twice since (its view holds all). */
static void start_nodes(harness_cluster *c, int n, const char *const *extra)
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    for (int i = 0; i < n; i++)
        harness_raylet_start(c, extra);
    struct views_arg a = {c, 0};
    cr_assert(harness_wait_until(all_alive_since, &a, SLACK_MS), "nodes did not all join");
    a.after = wall_ms() + 2 * (uint64_t)c->heartbeat_interval_ms;
    cr_assert(harness_wait_until(all_alive_since, &a, SLACK_MS), "nodes did not heartbeat");
    driver_env(c);
}

static const char *mnlib(void)
{
    static char path[HARNESS_PATH];
    snprintf(path, sizeof(path), "%s/examples/libmnlib_tasks.so", harness_build());
    cr_assert(access(path, R_OK) == 0, "%s missing", path);
    return path;
}

static void driver_init(const harness_cluster *c)
{
    const char *code[] = {mnlib(), NULL};
    rayc_init_opts o = {.address = c->address, .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
    const char *me = rayc_node_id();
    cr_assert(me && strcmp(me, c->raylets[0].node_id) == 0, "the driver is not on the head");
}

static void submit(const char *fn, const rayc_arg *args, size_t nargs, const rayc_task_opts *o,
                   rayc_ref *out)
{
    int rc = rayc_submit(fn, args, nargs, o, out);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit(%s): %s: %s", fn, rayc_strerror(rc), rayc_last_error());
}

/* The node (index into c->raylets) whose hex id the value holds, or -1. */
static int node_of(const harness_cluster *c, const rayc_value *v)
{
    for (int k = 0; k < c->nraylets; k++)
        if (v->status == RAYC_OK && v->size == strlen(c->raylets[k].node_id) &&
            memcmp(v->data, c->raylets[k].node_id, v->size) == 0)
            return k;
    return -1;
}

/* Pending tasks and store objects of node k, as its last heartbeat said. */
static bool node_load(const harness_cluster *c, int k, uint64_t *pending, uint64_t *objects)
{
    Rpc__ListNodesReply *r = harness_list_nodes(c);
    if (r == NULL)
        return false;
    bool found = false;
    for (size_t i = 0; i < r->n_nodes && !found; i++) {
        Rpc__NodeInfo *n = r->nodes[i];
        char hex[ID_HEX_MAX];
        if (n->state != ALIVE || n->node_id.len != NODE_ID_SIZE ||
            strcmp(id_hex(n->node_id.data, NODE_ID_SIZE, hex), c->raylets[k].node_id) != 0)
            continue;
        found = true;
        *pending = n->pending_tasks;
        *objects = n->store_objects;
    }
    msg_free(&r->base);
    return found;
}

struct empty_arg {
    const harness_cluster *c;
    char why[512];
};

/* Every node reports no pending task and an empty store (per its own
 * store's statistics, not only the heartbeat). */
static bool all_empty(void *arg)
{
    struct empty_arg *a = arg;
    a->why[0] = '\0';
    bool ok = true;
    for (int k = 0; k < a->c->nraylets; k++) {
        uint64_t pending = 0, objects = 0;
        Rpc__StoreStatsReply *s = harness_store_stats(&a->c->raylets[k]);
        if (!node_load(a->c, k, &pending, &objects) || s == NULL) {
            ok = false;
            snprintf(a->why + strlen(a->why), sizeof(a->why) - strlen(a->why),
                     "node %d does not answer; ", k);
        } else if (pending != 0 || s->objects != 0) {
            ok = false;
            snprintf(a->why + strlen(a->why), sizeof(a->why) - strlen(a->why),
                     "node %d: %llu pending tasks, %llu objects (%llu bytes); ", k,
                     (unsigned long long)pending, (unsigned long long)s->objects,
                     (unsigned long long)s->used);
        }
        if (s)
            msg_free(&s->base);
    }
    return ok;
}

static void assert_all_empty(const harness_cluster *c, const char *when)
{
    struct empty_arg a = {c, ""};
    bool ok = harness_wait_until(all_empty, &a, SLACK_MS);
    cr_assert(ok, "%s: not every node is empty: %s", when, a.why);
}

struct pending_arg {
    const harness_cluster *c;
};

/* Every node holds at least one pending task. */
static bool all_busy(void *arg)
{
    struct pending_arg *a = arg;
    for (int k = 0; k < a->c->nraylets; k++) {
        uint64_t pending = 0, objects = 0;
        if (!node_load(a->c, k, &pending, &objects) || pending == 0)
            return false;
    }
    return true;
}

/* make_pattern(size, seed) pinned to node k: the object and its node. */
static rayc_ref make_on(const harness_cluster *c, int k, uint64_t size, uint64_t seed)
{
    rayc_task_opts o = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c->raylets[k].node_id};
    rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
    rayc_ref r[2];
    submit("make_pattern", a, 2, &o, r);
    rayc_value v;
    int rc = rayc_get(&r[1], 1, &v, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "make_pattern on node %d: %s", k, rayc_last_error());
    cr_assert_eq(node_of(c, &v), k, "make_pattern pinned to node %d ran elsewhere", k);
    rayc_value_release(&v);
    rayc_ref_release(r[1]);
    return r[0];
}

/* check_pattern(obj, seed) pinned to node k (a pulled copy there): the
 * object must be right. */
static void check_on(const harness_cluster *c, int k, rayc_ref obj, uint64_t seed)
{
    rayc_task_opts o = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c->raylets[k].node_id};
    rayc_arg a[] = {RAYC_REF(obj), RAYC_VAL(&seed, sizeof(seed))};
    rayc_ref r[2];
    submit("check_pattern", a, 2, &o, r);
    rayc_value v[2];
    int rc = rayc_get(r, 2, v, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "check_pattern on node %d: %s", k, rayc_last_error());
    int64_t bad = 0;
    memcpy(&bad, v[0].data, sizeof(bad));
    cr_assert_eq(bad, -1, "the copy on node %d differs at %lld", k, (long long)bad);
    cr_assert_eq(node_of(c, &v[1]), k);
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    rayc_ref_release(r[0]);
    rayc_ref_release(r[1]);
}

/* ============================================================ job end */

/* Issue 18 and issue 12 item 2: when a job ends, nothing of it stays on
 * any node: not its tasks running, queued or forwarded elsewhere, not its
 * results kept on other nodes, not the copies pulled there. */
Test(pressure, job_end_leaves_nothing_on_any_node)
{
    harness_cluster c;
    start_nodes(&c, 3, NULL);
    driver_init(&c);

    /* Results on nodes 1 and 2, each read on the two other nodes (pulled
     * copies there, the head's for the driver's task). */
    rayc_ref objs[4];
    for (int i = 0; i < 4; i++) {
        int k = 1 + i % 2;
        objs[i] = make_on(&c, k, MIB, 500 + (uint64_t)i);
        check_on(&c, 3 - k, objs[i], 500 + (uint64_t)i);
        check_on(&c, 0, objs[i], 500 + (uint64_t)i);
    }
    /* Long tasks: one CPU a node, so some run and some queue, here and on
     * the nodes they were forwarded to. */
    rayc_ref naps[9];
    for (int i = 0; i < 9; i++) {
        uint64_t ms = 600000;
        rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
        rayc_arg a = RAYC_VAL(&ms, sizeof(ms));
        submit("nap", &a, 1, &o, &naps[i]);
    }
    struct pending_arg pa = {&c};
    cr_assert(harness_wait_until(all_busy, &pa, SLACK_MS), "the naps did not reach every node");

    int rc = rayc_shutdown();
    cr_assert_eq(rc, RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
    assert_all_empty(&c, "after the job ended");
}
