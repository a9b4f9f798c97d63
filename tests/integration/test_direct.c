/*
 * test_direct.c -- the direct task path (issue 12; docs/tasks.md, "The
 * direct task path") on real daemons: an owner leases workers from its
 * raylet and pushes value-only tasks to them itself; tasks with store
 * arguments still go through the raylet; a lease spills to a node with
 * room; an idle lease is given back; a killed leased worker fails its task
 * with the signal (or the task is retried through the raylet); cancel works
 * for tasks pushed to leased workers, by force and not.
 *
 * The counts come from core__direct_counts (the driver's own view of the
 * path). Nothing here asserts a duration.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "rayc.h"

#define SLACK_MS 30000
#define LONG_MS  120000
#define ALIVE    RPC__NODE_STATE__NODE_ALIVE

/* worker/core.h: tasks pushed to leased workers, fell back to the raylet,
 * leases asked for, granted, connected over a Unix socket. */
void core__direct_counts(uint64_t out[5]);
enum { PUSHED, FELL_BACK, ASKED, GRANTED, LOCAL };

TestSuite(direct, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

/* ============================================================ helpers */

typedef struct {
    harness_cluster *c;
    int n;
} nodes_arg;

static bool nodes_alive(void *arg)
{
    nodes_arg *a = arg;
    return harness_count_nodes(a->c, ALIVE) == a->n;
}

/* Redis, GCS and n raylets of cpus CPUs each; the driver on the first,
 * with the test and generator libraries. */
static void cluster(harness_cluster *c, int n, int cpus)
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    char flag[32];
    snprintf(flag, sizeof(flag), "--num-cpus=%d", cpus);
    const char *flags[] = {flag, "--object-store-memory=64M", NULL};
    for (int i = 0; i < n; i++)
        harness_raylet_start(c, flags);
    nodes_arg a = {c, n};
    cr_assert(harness_wait_until(nodes_alive, &a, SLACK_MS), "not all %d nodes are ALIVE", n);
    harness_wait_nodes_settled(c, SLACK_MS);
    const char *code[] = {harness_example_lib("testlib"), harness_example_lib("genlib"), NULL};
    harness_driver_init(c, code, NULL);
}

static rayc_ref submit(const char *fn, const rayc_arg *args, size_t n, const rayc_task_opts *o)
{
    rayc_ref r;
    int rc = rayc_submit(fn, args, n, o, &r);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit(%s): %s: %s", fn, rayc_strerror(rc), rayc_last_error());
    return r;
}

static int64_t get_i64(rayc_ref r)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "get: %s: %s", rayc_strerror(rc), v.error ? v.error : "");
    int64_t x = 0;
    cr_assert_eq(v.size, sizeof(x));
    memcpy(&x, v.data, sizeof(x));
    rayc_value_release(&v);
    rayc_ref_release(r);
    return x;
}

static uint64_t count(int which)
{
    uint64_t c[5];
    core__direct_counts(c);
    return c[which];
}

/* Tasks until one ran on a leased worker (a cold node starts its first
 * worker meanwhile, and the first tasks may go through the raylet). */
static bool warm(void *arg)
{
    (void)arg;
    get_i64(submit("pid", NULL, 0, NULL));
    return count(PUSHED) > 0;
}

static double cpus_free(void)
{
    rayc_node_info n[4];
    size_t k = 0;
    if (rayc_nodes(n, 4, &k) != RAYC_OK || k == 0)
        return -1;
    return n[0].cpus_available;
}

static bool all_cpus_free(void *arg)
{
    return cpus_free() == *(double *)arg;
}

/* ============================================================ paths */

Test(direct, value_tasks_go_to_leased_workers_store_arguments_to_the_raylet)
{
    harness_cluster c;
    cluster(&c, 1, 2);
    cr_assert(harness_wait_until(warm, NULL, SLACK_MS), "no task went to a leased worker");
    uint64_t pushed = count(PUSHED);

    /* 200 tasks with value arguments: all pushed by us, none lost. */
    rayc_ref r[200];
    for (int64_t i = 0; i < 200; i++) {
        rayc_arg a = RAYC_VAL(&i, sizeof(i));
        r[i] = submit("plus", &a, 1, NULL);
    }
    for (int64_t i = 0; i < 200; i++)
        cr_assert_eq(get_i64(r[i]), i + 1000, "task %lld's result", (long long)i);
    cr_assert_geq(count(PUSHED) - pushed, 200, "only %llu of 200 tasks went direct",
                  (unsigned long long)(count(PUSHED) - pushed));
    /* Every worker is on our node: each lease connected over the worker's
     * Unix socket, none over TCP. */
    cr_assert_gt(count(LOCAL), 0, "no lease connected over a Unix socket");
    cr_assert_eq(count(LOCAL), count(GRANTED), "%llu of %llu leases on our node used TCP",
                 (unsigned long long)(count(GRANTED) - count(LOCAL)),
                 (unsigned long long)count(GRANTED));

    /* A store argument: the raylet arranges it, so it goes there. */
    pushed = count(PUSHED);
    uint64_t big = 7;
    static uint8_t block[200 << 10];
    memcpy(block, &big, sizeof(big));
    rayc_ref obj;
    cr_assert_eq(rayc_put(block, sizeof(block), &obj), RAYC_OK, "put: %s", rayc_last_error());
    rayc_arg ra = RAYC_REF(obj);
    rayc_ref s = submit("fnv", &ra, 1, NULL);
    rayc_value v;
    cr_assert_eq(rayc_get(&s, 1, &v, LONG_MS), RAYC_OK, "fnv: %s", v.error ? v.error : "");
    rayc_value_release(&v);
    rayc_ref_release(s);
    rayc_ref_release(obj);
    cr_assert_eq(count(PUSHED), pushed, "a task with a store argument went direct");
    rayc_shutdown();
}

Test(direct, idle_lease_is_given_back)
{
    harness_cluster c;
    cluster(&c, 1, 2);
    cr_assert(harness_wait_until(warm, NULL, SLACK_MS), "no task went to a leased worker");
    double two = 2;
    /* Nothing runs now: every lease goes back within direct_lease_idle_ms,
     * and the node's CPUs are all free again. */
    cr_assert(harness_wait_until(all_cpus_free, &two, SLACK_MS), "CPUs free: %g of 2", cpus_free());
    rayc_shutdown();
}

Test(direct, lease_spills_to_a_node_with_room)
{
    harness_cluster c;
    cluster(&c, 2, 1);
    cr_assert(harness_wait_until(warm, NULL, SLACK_MS), "no task went to a leased worker");
    uint64_t pushed = count(PUSHED), fell_back = count(FELL_BACK);
    uint64_t tcp = count(GRANTED) - count(LOCAL);
    /* Two rendezvous tasks finish only when both run at once: one CPU per
     * node, so the second lease must be granted on the other node (the
     * second task may first wait behind the first on its lease, and be
     * asked back from there). */
    char path[HARNESS_PATH];
    harness_test_file(path, "rendezvous");
    int64_t n = 2, limit = 60000;
    rayc_arg a[3] = {RAYC_VAL(path, strlen(path) + 1), RAYC_VAL(&n, sizeof(n)),
                     RAYC_VAL(&limit, sizeof(limit))};
    rayc_ref r1 = submit("rendezvous", a, 3, NULL), r2 = submit("rendezvous", a, 3, NULL);
    cr_assert_eq(get_i64(r1), 2);
    cr_assert_eq(get_i64(r2), 2);
    cr_assert_geq(count(PUSHED) - pushed, 2, "both went direct (pushed %llu)",
                  (unsigned long long)(count(PUSHED) - pushed));
    cr_assert_eq(count(FELL_BACK), fell_back, "a task went through the raylet");
    /* The lease on the other node was reached over TCP (its worker's Unix
     * socket is not ours to dial). */
    cr_assert_gt(count(GRANTED) - count(LOCAL), tcp, "no lease connected over TCP");
    rayc_shutdown();
}

/* ============================================================ failures */

static bool has_line(void *arg)
{
    return harness_lines_with(arg, "attempt") > 0;
}

/* A leased worker killed with SIGKILL while its task runs (crash kill9). */
Test(direct, killed_leased_worker_fails_its_task_with_the_signal)
{
    harness_cluster c;
    cluster(&c, 1, 2);
    cr_assert(harness_wait_until(warm, NULL, SLACK_MS), "no task went to a leased worker");
    uint64_t pushed = count(PUSHED);
    char path[HARNESS_PATH];
    harness_test_file(path, "crash");
    rayc_arg a[2] = {RAYC_VAL(path, strlen(path) + 1), RAYC_VAL("kill9", 6)};
    rayc_task_opts once = {.max_retries = -1};
    rayc_ref r = submit("crash", a, 2, &once);
    rayc_value v;
    cr_assert_eq(rayc_get(&r, 1, &v, LONG_MS), RAYC_EWORKER_DIED, "crash: %s",
                 v.error ? v.error : "");
    cr_assert(v.error && strstr(v.error, "SIGKILL"), "the error names the signal: %s", v.error);
    cr_assert(strstr(v.error, "crash: "), "the error names the task: %s", v.error);
    rayc_value_release(&v);
    rayc_ref_release(r);
    cr_assert_eq(count(PUSHED) - pushed, 1, "the task went direct");

    /* With retries (the default), it runs again through the raylet and
     * succeeds from its third attempt. */
    char path2[HARNESS_PATH];
    harness_test_file(path2, "crash2");
    int64_t from = 3;
    rayc_arg b[3] = {RAYC_VAL(path2, strlen(path2) + 1), RAYC_VAL("kill9", 6),
                     RAYC_VAL(&from, sizeof(from))};
    cr_assert_eq(get_i64(submit("crash", b, 3, NULL)), 3);
    cr_assert(harness_wait_until(has_line, path2, SLACK_MS));
    rayc_shutdown();
}

/* nap tasks on a 1-CPU node, pushed to one leased worker: a soft cancel of
 * one that waits behind the running one is dropped by the worker, a force
 * cancel of the running one kills it; both end RAYC_ECANCELLED, and a task
 * after them still runs. */
Test(direct, cancel_of_pushed_tasks_soft_and_by_force)
{
    harness_cluster c;
    cluster(&c, 1, 1);
    cr_assert(harness_wait_until(warm, NULL, SLACK_MS), "no task went to a leased worker");
    char path[HARNESS_PATH];
    harness_test_file(path, "naps");
    int64_t ms = 60000;
    rayc_arg a[2] = {RAYC_VAL(path, strlen(path) + 1), RAYC_VAL(&ms, sizeof(ms))};
    rayc_ref first = submit("nap", a, 2, NULL);
    cr_assert(harness_wait_until(harness_has_lines, &(harness_lines){path, "started", 1}, SLACK_MS),
              "the first nap never started");
    rayc_ref second = submit("nap", a, 2, NULL);
    cr_assert_eq(rayc_cancel(second, 0), RAYC_OK);
    rayc_value v;
    cr_assert_eq(rayc_get(&second, 1, &v, LONG_MS), RAYC_ECANCELLED, "soft: %s",
                 v.error ? v.error : "");
    rayc_value_release(&v);
    cr_assert_eq(rayc_cancel(first, 1), RAYC_OK);
    cr_assert_eq(rayc_get(&first, 1, &v, LONG_MS), RAYC_ECANCELLED, "force: %s",
                 v.error ? v.error : "");
    rayc_value_release(&v);
    cr_assert_eq(harness_lines_with(path, "started"), 1, "the cancelled second nap ran");
    rayc_ref_release(first);
    rayc_ref_release(second);
    int64_t x = 5;
    rayc_arg p = RAYC_VAL(&x, sizeof(x));
    cr_assert_eq(get_i64(submit("plus", &p, 1, NULL)), 1005);
    rayc_shutdown();
}

static bool fell_back(void *arg)
{
    return count(FELL_BACK) > *(uint64_t *)arg;
}

/* A demand no node can meet gets no lease: after DTX_FALLBACK_MS its task
 * goes to the raylet, which keeps it pending (infeasible) until cancelled. */
Test(direct, a_task_without_a_lease_goes_to_the_raylet)
{
    harness_cluster c;
    cluster(&c, 1, 2);
    uint64_t before = count(FELL_BACK);
    rayc_task_opts o = {.resources = "tpu=1"};
    rayc_ref r = submit("pid", NULL, 0, &o);
    cr_assert(harness_wait_until(fell_back, &before, SLACK_MS),
              "the task never left the driver for the raylet");
    rayc_value v;
    cr_assert_eq(rayc_get(&r, 1, &v, 500), RAYC_ETIMEDOUT, "an infeasible task ran");
    cr_assert_eq(rayc_cancel(r, 0), RAYC_OK);
    cr_assert_eq(rayc_get(&r, 1, &v, LONG_MS), RAYC_ECANCELLED, "cancel: %s",
                 v.error ? v.error : "");
    rayc_value_release(&v);
    rayc_ref_release(r);
    rayc_shutdown();
}
