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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define SLACK_MS 30000  /* generous: a busy 2-vCPU machine; never a speed test */
#define LONG_MS  120000 /* a get that should succeed */
#define ALIVE    RPC__NODE_STATE__NODE_ALIVE

TestSuite(refs, .init = harness_setup, .fini = harness_teardown, .timeout = 300);

/* ============================================================ helpers */

static const char *genlib(void)
{
    static char path[HARNESS_PATH];
    snprintf(path, sizeof(path), "%s/examples/libgenlib_tasks.so", harness_build());
    cr_assert(access(path, R_OK) == 0, "%s missing (make builds it)", path);
    return path;
}

static void driver_init(const harness_cluster *c)
{
    setenv("RAYC_TOKEN_FILE", c->token_file, 1);
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_ADDRESS");
    char temp[HARNESS_PATH + 16];
    snprintf(temp, sizeof(temp), "%s/drivertmp", harness_dir());
    mkdir(temp, 0700);
    setenv("RAYC_TEMP_DIR", temp, 1);
    const char *code[] = {genlib(), NULL};
    rayc_init_opts o = {.address = c->address, .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
}

static void driver_shutdown(void)
{
    int rc = rayc_shutdown();
    cr_assert_eq(rc, RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
}

struct alive_arg {
    const harness_cluster *c;
    int want;
};

static bool all_alive(void *arg)
{
    struct alive_arg *a = arg;
    return harness_count_nodes(a->c, ALIVE) == a->want;
}

struct hb_arg {
    const harness_cluster *c;
    uint64_t after;
};

static bool heartbeats_after(void *arg)
{
    struct hb_arg *a = arg;
    Rpc__ListNodesReply *r = harness_list_nodes(a->c);
    if (r == NULL)
        return false;
    bool ok = (int)r->n_nodes >= a->c->nraylets;
    for (size_t i = 0; ok && i < r->n_nodes; i++)
        ok = r->nodes[i]->state != ALIVE || r->nodes[i]->last_heartbeat_ms > a->after;
    msg_free(&r->base);
    return ok;
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
    struct alive_arg a = {c, n};
    cr_assert(harness_wait_until(all_alive, &a, SLACK_MS), "expected %d ALIVE nodes", n);
    if (n > 1) {
        struct hb_arg h = {c, wall_ms() + 2 * (uint64_t)c->heartbeat_interval_ms};
        cr_assert(harness_wait_until(heartbeats_after, &h, SLACK_MS),
                  "raylets did not heartbeat after every node joined");
    }
    driver_init(c);
}

static void test_file(char *out, const char *name)
{
    snprintf(out, HARNESS_PATH, "%s/%s", harness_dir(), name);
}

static int lines_with(const char *path, const char *prefix)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    fclose(f);
    return n;
}

struct lines_arg {
    const char *path, *prefix;
    int want;
};

static bool has_lines(void *arg)
{
    struct lines_arg *a = arg;
    return lines_with(a->path, a->prefix) >= a->want;
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
    test_file(path, "endless");
    uint64_t k = 3;
    const char *gen_node = c.raylets[0].node_id;
    rayc_arg a[] = {RAYC_VAL(gen_node, strlen(gen_node) + 1), RAYC_VAL(path, strlen(path) + 1),
                    RAYC_VAL(&k, sizeof(k))};
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id,
                        .max_retries = -1};
    rayc_ref owner;
    int rc = rayc_submit("own_endless", a, 3, &o, &owner);
    cr_assert_eq(rc, RAYC_OK, "submit: %s", rayc_last_error());
    rayc_value v;
    rc = rayc_get(&owner, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_EWORKER_DIED, "the owner task: %s (%s)", rayc_strerror(rc),
                 v.error ? v.error : rayc_last_error());
    rayc_value_release(&v);
    rayc_ref_release(owner);
    cr_assert_eq(lines_with(path, "owner dies"), 1, "the owner did not take its items first");
    char want[128];
    snprintf(want, sizeof(want), "started %s", gen_node);
    cr_assert_eq(lines_with(path, want), 1, "the generator did not run on node A");
    struct lines_arg la = {path, "stopped", 1};
    cr_assert(harness_wait_until(has_lines, &la, SLACK_MS),
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
        test_file(path, retry ? "flaky-retried" : "flaky-plain");
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
            cr_assert_eq(rc, RAYC_OK, "item %llu: %s: %s", (unsigned long long)i,
                         rayc_strerror(rc), rayc_last_error());
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
        cr_assert_eq(lines_with(path, "attempt"), retry ? 2 : 1, "attempts");
    }
    driver_shutdown();
}
