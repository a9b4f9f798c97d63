/*
 * test_refs.c -- owners and their death, on real daemons (issue 12 item 1,
 * issue 11's leftovers): a streaming generator whose owner dies on another
 * node stops at its next yield; a generator that fails is retried under
 * retry_exceptions without delivering an item twice.
 *
 * Each test starts Redis + GCS + raylets through the harness and drives
 * them in-process with librayc; the task code is
 * build/examples/libgenlib_tasks.so (examples/genlib/tasks.c). Nothing here
 * asserts a duration: "stopped" is shown by lines the generator writes.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "pattern.h"
#include "rayc.h"
#include "util.h"

#define SLACK_MS 30000  /* generous: a busy 2-vCPU machine; never a speed test */
#define LONG_MS  120000 /* a get that should succeed */
#define ALIVE    RPC__NODE_STATE__NODE_ALIVE

TestSuite(refs, .init = harness_setup, .fini = harness_teardown, .timeout = 300);

/* ============================================================ helpers */

static void driver_init(const harness_cluster *c)
{
    const char *code[] = {harness_example_lib("genlib"), NULL};
    harness_driver_init(c, code, NULL);
}

static void driver_shutdown(void)
{
    int rc = rayc_shutdown();
    cr_assert_eq(rc, RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
}

/* Redis, GCS and n raylets of 2 CPUs; the driver on the first once every
 * raylet has heard of every other. */
static void cluster(harness_cluster *c, int n)
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    const char *flags[] = {"--num-cpus=2", "--object-store-memory=128M", NULL};
    for (int i = 0; i < n; i++)
        harness_raylet_start(c, flags);
    harness_wait_nodes_settled(c, SLACK_MS);
    driver_init(c);
}

/* ============================================================ generators */

/* Issue 11: a generator running on node A for an owner (a task's worker)
 * on node B stops at its next yield when that owner dies, although the
 * job goes on (before, it ran until its job ended). */
Test(refs, generator_stops_when_its_owner_dies_on_another_node)
{
    harness_cluster c;
    cluster(&c, 2);
    char path[HARNESS_PATH];
    harness_test_file(path, "endless");
    uint64_t k = 3;
    const char *gen_node = c.raylets[0].node_id;
    rayc_arg a[] = {RAYC_VAL(gen_node, strlen(gen_node) + 1), RAYC_VAL(path, strlen(path) + 1),
                    RAYC_VAL(&k, sizeof(k))};
    rayc_task_opts o = {
        .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id, .max_retries = -1};
    rayc_ref owner;
    int rc = rayc_submit("own_endless", a, 3, &o, &owner);
    cr_assert_eq(rc, RAYC_OK, "submit: %s", rayc_last_error());
    rayc_value v;
    rc = rayc_get(&owner, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_EWORKER_DIED, "the owner task: %s (%s)", rayc_strerror(rc),
                 v.error ? v.error : rayc_last_error());
    rayc_value_release(&v);
    rayc_ref_release(owner);
    cr_assert_eq(harness_lines_with(path, "owner dies"), 1,
                 "the owner did not take its items first");
    char want[128];
    snprintf(want, sizeof(want), "started %s", gen_node);
    cr_assert_eq(harness_lines_with(path, want), 1, "the generator did not run on node A");
    harness_lines la = {path, "stopped", 1};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS),
              "the generator still runs after its owner died");
    driver_shutdown();
}

/* Issue 11: with retry_exceptions a generator that fails is run again, and
 * the caller gets every item exactly once, in order (the first attempt's
 * items are not delivered again), then EOF; without it, the k items, the
 * error item, EOF. */
Test(refs, generator_retry_exceptions_items_exactly_once)
{
    harness_cluster c;
    cluster(&c, 1);
    for (int retry = 1; retry >= 0; retry--) {
        char path[HARNESS_PATH];
        harness_test_file(path, retry ? "flaky-retried" : "flaky-plain");
        uint64_t n = 8, k = 3;
        rayc_arg a[] = {RAYC_VAL(&n, sizeof(n)), RAYC_VAL(&k, sizeof(k)),
                        RAYC_VAL(path, strlen(path) + 1)};
        rayc_task_opts o = {.retry_exceptions = retry, .max_retries = 2};
        rayc_stream *s = NULL;
        int rc = rayc_submit_stream("count_flaky", a, 3, &o, &s);
        cr_assert_eq(rc, RAYC_OK, "submit: %s", rayc_last_error());
        uint64_t want = retry ? n : k;
        for (uint64_t i = 0; i < want; i++) {
            rayc_ref r;
            rc = rayc_stream_next(s, &r, LONG_MS);
            cr_assert_eq(rc, RAYC_OK, "item %llu: %s: %s", (unsigned long long)i, rayc_strerror(rc),
                         rayc_last_error());
            rayc_value v;
            rc = rayc_get(&r, 1, &v, LONG_MS);
            cr_assert_eq(rc, RAYC_OK, "item %llu: %s (%s)", (unsigned long long)i,
                         rayc_strerror(rc), v.error ? v.error : "");
            uint64_t x = ~0ull;
            if (v.size == 8)
                memcpy(&x, v.data, 8);
            cr_assert_eq(x, i, "item %llu holds %llu (duplicated or out of order)",
                         (unsigned long long)i, (unsigned long long)x);
            rayc_value_release(&v);
            rayc_ref_release(r);
        }
        rayc_ref r;
        if (!retry) {
            rc = rayc_stream_next(s, &r, LONG_MS);
            cr_assert_eq(rc, RAYC_OK, "the error item: %s", rayc_strerror(rc));
            rayc_value v;
            rc = rayc_get(&r, 1, &v, LONG_MS);
            cr_assert_eq(rc, RAYC_ETASK, "the error item: %s", rayc_strerror(rc));
            cr_assert(v.error && strstr(v.error, "flaky after 3 items"), "message: %s",
                      v.error ? v.error : "");
            rayc_value_release(&v);
            rayc_ref_release(r);
        }
        rc = rayc_stream_next(s, &r, LONG_MS);
        cr_assert_eq(rc, RAYC_EOF, "after the last item: %s", rayc_strerror(rc));
        rayc_stream_close(s);
        cr_assert_eq(harness_lines_with(path, "attempt"), retry ? 2 : 1, "attempts");
    }
    driver_shutdown();
}

/* ============================================================ borrowed refs */

static rayc_ref submit_on(const char *fn, const rayc_arg *a, size_t n, const char *node)
{
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = node, .max_retries = -1};
    rayc_ref r;
    int rc = rayc_submit(fn, a, n, &o, &r);
    cr_assert_eq(rc, RAYC_OK, "submit %s: %s", fn, rayc_last_error());
    return r;
}

/* The value of r (asserted OK) checked against pattern(seed) of size bytes. */
static void assert_pattern(rayc_ref r, size_t size, uint64_t seed, const char *what)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: %s (%s)", what, rayc_strerror(rc),
                 v.error ? v.error : rayc_last_error());
    cr_assert_eq(v.size, size, "%s: %zu bytes, want %zu", what, v.size, size);
    cr_assert_eq(pattern_check(v.data, v.size, seed), -1, "%s: wrong bytes", what);
    rayc_value_release(&v);
}

/* Issue 12 item 1: a ref whose bytes travel inside a by-value argument is
 * gettable by the task on this node and on another, whatever its size: a
 * small one lives only in its owner's memory (before, the get hung). */
Test(refs, ref_copied_into_arguments_is_gettable_anywhere)
{
    harness_cluster c;
    cluster(&c, 2);
    const size_t sizes[] = {100, 64 * 1024, 200 * 1024};
    for (int s = 0; s < 3; s++) {
        uint8_t *buf = malloc(sizes[s]);
        pattern_fill(buf, sizes[s], 700 + (uint64_t)s);
        rayc_ref r;
        cr_assert_eq(rayc_put(buf, sizes[s], &r), RAYC_OK, "put: %s", rayc_last_error());
        free(buf);
        for (int n = 0; n < 2; n++) {
            rayc_arg a = RAYC_VAL(&r, sizeof(r));
            rayc_ref got = submit_on("get_ref", &a, 1, c.raylets[n].node_id);
            char what[96];
            snprintf(what, sizeof(what), "a %zu-byte object got by a task on node %d", sizes[s], n);
            assert_pattern(got, sizes[s], 700 + (uint64_t)s, what);
            rayc_ref_release(got);
        }
        rayc_ref_release(r);
    }
    driver_shutdown();
}

/* Issue 12 item 1: objects owned by a worker (its puts inside a task) on
 * another node are gettable by the driver and by tasks; once that worker is
 * dead, a get fails with RAYC_EOBJECT_LOST naming the owner's death, never a
 * hang. */
Test(refs, owner_worker_death_makes_borrowed_get_lost)
{
    harness_cluster c;
    cluster(&c, 2);
    uint64_t size = 1000, seed = 900;
    rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
    rayc_ref made = submit_on("put_keep", a, 2, c.raylets[1].node_id);
    rayc_value v;
    int rc = rayc_get(&made, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "put_keep: %s (%s)", rayc_strerror(rc), v.error ? v.error : "");
    cr_assert_eq(v.size, 2 * sizeof(rayc_ref) + 8);
    rayc_ref r[2];
    int64_t pid;
    memcpy(r, v.data, sizeof(r));
    memcpy(&pid, (const uint8_t *)v.data + sizeof(r), 8);
    rayc_value_release(&v);
    rayc_ref_release(made);
    assert_pattern(r[0], size, seed, "the driver's get of a worker's object");
    rayc_arg ga = RAYC_VAL(&r[0], sizeof(r[0]));
    rayc_ref got = submit_on("get_ref", &ga, 1, c.raylets[0].node_id);
    assert_pattern(got, size, seed, "a task's get of a worker's object on another node");
    rayc_ref_release(got);

    cr_assert_eq(kill((pid_t)pid, SIGKILL), 0, "kill the owner (pid %lld)", (long long)pid);
    uint64_t t0 = wall_ms();
    rc = rayc_get(&r[1], 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_EOBJECT_LOST, "get after the owner died: %s (%s)", rayc_strerror(rc),
                 v.error ? v.error : rayc_last_error());
    cr_assert(v.error && strstr(v.error, "owner") && strstr(v.error, "died"),
              "the error does not name the owner's death: %s", v.error ? v.error : "");
    cr_assert_lt(wall_ms() - t0, (uint64_t)LONG_MS / 2, "the get waited out its timeout");
    rayc_value_release(&v);
    driver_shutdown();
}

struct freed_arg {
    rayc_ref r;
    const char *node;
    char msg[512];
};

/* A task on node `node` gets r: true once that fails with "freed by its owner". */
static bool freed_for_task(void *arg)
{
    struct freed_arg *f = arg;
    int64_t ms = 5000;
    rayc_arg a[] = {RAYC_VAL(&f->r, sizeof(f->r)), RAYC_VAL(&ms, sizeof(ms))};
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = f->node, .max_retries = -1};
    rayc_ref t;
    if (rayc_submit("get_ref", a, 2, &o, &t) != RAYC_OK)
        return false;
    rayc_value v;
    int rc = rayc_get(&t, 1, &v, LONG_MS);
    snprintf(f->msg, sizeof(f->msg), "%s: %s", rayc_strerror(rc), v.error ? v.error : "");
    bool freed = rc == RAYC_ETASK && v.error && strstr(v.error, "freed by its owner");
    rayc_value_release(&v);
    rayc_ref_release(t);
    return freed;
}

/* Issue 12 item 1: a borrower that retains a ref keeps the object alive
 * after its owner released it (Ray's borrowing); once the borrower releases
 * it too, a get fails with RAYC_EOBJECT_LOST "freed by its owner". */
Test(refs, borrower_retain_keeps_object_until_released)
{
    harness_cluster c;
    cluster(&c, 2);
    uint8_t buf[1000];
    pattern_fill(buf, sizeof(buf), 77);
    rayc_ref r;
    cr_assert_eq(rayc_put(buf, sizeof(buf), &r), RAYC_OK);
    char path[HARNESS_PATH];
    harness_test_file(path, "hold");
    rayc_arg a[] = {RAYC_VAL(&r, sizeof(r)), RAYC_VAL(path, strlen(path) + 1)};
    rayc_ref held = submit_on("hold_ref", a, 2, c.raylets[1].node_id);
    harness_lines la = {path, "retained", 1};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS), "the borrower did not start");
    rayc_ref_release(r); /* the owner's last reference: the borrower's keeps it */
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs("released\n", f);
    fclose(f);
    assert_pattern(held, sizeof(buf), 77, "the borrower's get after the owner released");
    rayc_ref_release(held);
    struct freed_arg fa = {.r = r, .node = c.raylets[1].node_id};
    cr_assert(harness_wait_until(freed_for_task, &fa, SLACK_MS),
              "after the borrower released it, a get still does not say it was freed: %s", fa.msg);
    driver_shutdown();
}

/* Issue 12 item 1: a task that does not own a small ref passes it on to
 * another task as a RAYC_REF argument: that task's node finds no holder in
 * the directory and asks the owner, whose value becomes its argument. */
Test(refs, borrowed_ref_passed_on_as_a_task_argument)
{
    harness_cluster c;
    cluster(&c, 2);
    uint8_t buf[1000];
    uint64_t seed = 55;
    pattern_fill(buf, sizeof(buf), seed);
    rayc_ref r;
    cr_assert_eq(rayc_put(buf, sizeof(buf), &r), RAYC_OK);
    const char *node = c.raylets[1].node_id;
    rayc_arg a[] = {RAYC_VAL(&r, sizeof(r)), RAYC_VAL(&seed, sizeof(seed)),
                    RAYC_VAL(node, strlen(node) + 1)};
    rayc_ref out = submit_on("pass_ref", a, 3, node);
    rayc_value v;
    int rc = rayc_get(&out, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "pass_ref: %s (%s)", rayc_strerror(rc), v.error ? v.error : "");
    uint64_t got = 0;
    cr_assert_eq(v.size, 8);
    memcpy(&got, v.data, 8);
    cr_assert_eq(got, sizeof(buf) * 1000003ULL + seed, "the argument arrived changed");
    rayc_value_release(&v);
    rayc_ref_release(out);
    rayc_ref_release(r);
    driver_shutdown();
}

struct dead_arg {
    const harness_cluster *c;
    const char *node;
};

static bool node_dead(void *arg)
{
    struct dead_arg *a = arg;
    return harness_node_state(a->c, a->node) == RPC__NODE_STATE__NODE_DEAD;
}

/* Issue 11: the generator's owner dies with its node (the raylet there is
 * killed): the raylet running the generator learns of the node's death and
 * stops it at its next yield. */
Test(refs, generator_stops_when_its_owners_node_dies)
{
    harness_cluster c;
    cluster(&c, 2);
    char path[HARNESS_PATH];
    harness_test_file(path, "endless");
    uint64_t k = 3, wait = 1;
    const char *gen_node = c.raylets[0].node_id;
    rayc_arg a[] = {RAYC_VAL(gen_node, strlen(gen_node) + 1), RAYC_VAL(path, strlen(path) + 1),
                    RAYC_VAL(&k, sizeof(k)), RAYC_VAL(&wait, sizeof(wait))};
    rayc_task_opts o = {
        .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id, .max_retries = -1};
    rayc_ref owner;
    cr_assert_eq(rayc_submit("own_endless", a, 4, &o, &owner), RAYC_OK, "%s", rayc_last_error());
    harness_lines la = {path, "owner waits", 1};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS),
              "the owner did not take its items");
    harness_kill9(c.raylets[1].proc);
    struct dead_arg d = {&c, c.raylets[1].node_id};
    cr_assert(harness_wait_until(node_dead, &d, SLACK_MS + c.health_timeout_ms),
              "the owner's node is not DEAD");
    harness_lines st = {path, "stopped", 1};
    cr_assert(harness_wait_until(harness_has_lines, &st, SLACK_MS),
              "the generator still runs after its owner's node died");
    rayc_ref_release(owner);
    driver_shutdown();
}
