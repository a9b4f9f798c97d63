/*
 * test_multinode.c -- several raylets as separate nodes of one cluster
 * (issue 5): SPREAD placement over every node, custom resources only one node
 * has, objects of every size class made on one node and read on another, one
 * transfer per node for an object many tasks read, kill -9 of a raylet in the
 * middle of a job (retries and lineage reconstruction), a pull whose source
 * dies mid-transfer, and the same cluster with each raylet in its own network
 * namespace (real addresses on a bridge instead of loopback).
 *
 * Each test starts its own redis + GCS + 3 raylets with their own session
 * dirs through the harness (short heartbeat / health timeouts) and drives the
 * cluster in-process with librayc (criterion runs each test in its own
 * process, so each test gets a fresh librayc). Tasks come from
 * build/examples/libmnlib_tasks.so (examples/mnlib/tasks.c). The harness's
 * .fini stops every process and fails the test if one survives; the
 * namespace suite also removes its namespaces and links, and removes those a
 * crashed earlier run left behind. Nothing here asserts a duration.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pattern.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define KIB      ((size_t)1 << 10)
#define MIB      ((size_t)1 << 20)
#define GIB      ((size_t)1 << 30)
#define ALIVE    RPC__NODE_STATE__NODE_ALIVE
#define DEAD     RPC__NODE_STATE__NODE_DEAD
#define SLACK_MS 30000  /* generous: a busy 2-vCPU machine; never a speed test */
#define LONG_MS  240000 /* for gets of whole jobs and of 1 GiB objects */
#define NODE_HEX (2 * NODE_ID_SIZE)

TestSuite(multinode, .init = harness_setup, .fini = harness_teardown, .timeout = 300);

/* ============================================================ cluster */

static void msleep(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The driver's environment: the cluster token, and a private temp root so
 * that no other session of this machine is taken for ours. */
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

/* Where the test reaches the GCS: loopback, or the bridge address in the
 * namespace test. */
static const char *g_gcs_host = "127.0.0.1";

static bconn *gcs_connect(const harness_cluster *c)
{
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_CLI;
    hs.pid = (int32_t)getpid();
    hs.name = "test_multinode";
    int code;
    char err[256];
    return bconn_open(g_gcs_host, c->port, NULL, c->token, &hs, 2000, NULL, NULL, 0, NULL, &code,
                      err, sizeof(err));
}

static Rpc__ListNodesReply *list_nodes(const harness_cluster *c)
{
    bconn *b = gcs_connect(c);
    if (b == NULL)
        return NULL;
    Rpc__ListNodesRequest req = RPC__LIST_NODES_REQUEST__INIT;
    req.req_id = 1;
    ProtobufCMessage *r = NULL;
    int rc = bconn_call(b, MSG_LIST_NODES_REQ, &req.base, MSG_LIST_NODES_REPLY, &r, 2000);
    bconn_close(b);
    return rc == 0 ? (Rpc__ListNodesReply *)r : NULL;
}

static int count_alive(const harness_cluster *c)
{
    Rpc__ListNodesReply *r = list_nodes(c);
    if (r == NULL)
        return -1;
    int n = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        n += r->nodes[i]->state == ALIVE;
    msg_free(&r->base);
    return n;
}

struct count_arg {
    const harness_cluster *c;
    int want;
};

static bool all_alive(void *arg)
{
    struct count_arg *a = arg;
    return count_alive(a->c) == a->want;
}

struct hb_arg {
    const harness_cluster *c;
    uint64_t after;
};

/* Every node's last heartbeat (per the GCS) is newer than `after`. */
static bool heartbeats_after(void *arg)
{
    struct hb_arg *a = arg;
    Rpc__ListNodesReply *r = list_nodes(a->c);
    if (r == NULL)
        return false;
    bool ok = (int)r->n_nodes >= a->c->nraylets;
    for (size_t i = 0; ok && i < r->n_nodes; i++)
        ok = r->nodes[i]->state != ALIVE || r->nodes[i]->last_heartbeat_ms > a->after;
    msg_free(&r->base);
    return ok;
}

/* Raylets learn the cluster view from their heartbeat replies: wait until
 * every raylet has sent two heartbeats since all nodes were ALIVE, so each
 * has received a view holding every node. */
static void wait_views(const harness_cluster *c)
{
    struct hb_arg a = {c, wall_ms() + (uint64_t)c->heartbeat_interval_ms};
    cr_assert(harness_wait_until(heartbeats_after, &a, SLACK_MS),
              "raylets did not heartbeat after every node joined");
}

/* Every raylet ALIVE and holding a view of every node; then the driver's
 * environment. */
static void wait_cluster(harness_cluster *c)
{
    struct count_arg a = {c, c->nraylets};
    cr_assert(harness_wait_until(all_alive, &a, SLACK_MS), "expected %d ALIVE nodes, have %d",
              c->nraylets, count_alive(c));
    wait_views(c);
    driver_env(c);
}

/* Redis + GCS + 3 raylets (node 0 is the head), extra flags per raylet. */
/* Three nodes; health_ms > 0 overrides the health timeout. */
static void start3_health(harness_cluster *c, const char *const *extra[3], int health_ms)
{
    harness_cluster_init(c);
    if (health_ms > c->health_timeout_ms)
        c->health_timeout_ms = health_ms;
    harness_cluster_start(c);
    for (int i = 0; i < 3; i++)
        harness_raylet_start(c, extra ? extra[i] : NULL);
    wait_cluster(c);
}

static void start3(harness_cluster *c, const char *const *extra[3])
{
    start3_health(c, extra, 0);
}

static const char *mnlib(void)
{
    static char path[HARNESS_PATH];
    snprintf(path, sizeof(path), "%s/examples/libmnlib_tasks.so", harness_build());
    cr_assert(access(path, R_OK) == 0, "%s missing (make build/examples/libmnlib_tasks.so)", path);
    return path;
}

static void driver_init(const char *address)
{
    const char *code[] = {mnlib(), NULL};
    rayc_init_opts o = {.address = address, .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init(%s): %s: %s", address, rayc_strerror(rc),
                 rayc_last_error());
}

static void driver_shutdown(void)
{
    int rc = rayc_shutdown();
    cr_assert_eq(rc, RAYC_OK, "rayc_shutdown: %s: %s", rayc_strerror(rc), rayc_last_error());
}

static void submit(const char *fn, const rayc_arg *args, size_t nargs, const rayc_task_opts *o,
                   rayc_ref *out)
{
    int rc = rayc_submit(fn, args, nargs, o, out);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit(%s): %s: %s", fn, rayc_strerror(rc), rayc_last_error());
}

/* A node-id value (hex, no NUL) equals hex. */
static bool is_node(const rayc_value *v, const char *hex)
{
    return v->status == RAYC_OK && v->size == strlen(hex) && memcmp(v->data, hex, v->size) == 0;
}

static const char *value_str(const rayc_value *v, char *buf, size_t len)
{
    snprintf(buf, len, "%.*s", (int)(v->size < len ? v->size : len - 1),
             v->data ? (const char *)v->data : "");
    return buf;
}

/* One `where` task pinned (hard) to each raylet returns that raylet's id. It
 * also waits until the driver's raylet knows every node: a task pinned to a
 * node missing from its view waits until the node appears. */
static void pinned_probe(const harness_cluster *c)
{
    rayc_ref refs[HARNESS_MAX_RAYLETS];
    for (int i = 0; i < c->nraylets; i++) {
        rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = c->raylets[i].node_id};
        submit("where", NULL, 0, &o, &refs[i]);
    }
    for (int i = 0; i < c->nraylets; i++) {
        rayc_value v;
        int rc = rayc_get(&refs[i], 1, &v, SLACK_MS);
        cr_assert_eq(rc, RAYC_OK, "task pinned to node %d: %s: %s", i, rayc_strerror(rc),
                     rayc_last_error());
        char buf[80];
        cr_assert(is_node(&v, c->raylets[i].node_id), "task pinned to node %d ran on %s, not %s", i,
                  value_str(&v, buf, sizeof(buf)), c->raylets[i].node_id);
        rayc_value_release(&v);
        rayc_ref_release(refs[i]);
    }
}

/* The driver runs on the head raylet's node (the first registered). */
static void assert_driver_on_head(const harness_cluster *c)
{
    const char *me = rayc_node_id();
    cr_assert(me && strcmp(me, c->raylets[0].node_id) == 0,
              "the driver runs on node %s, expected the head raylet %s", me ? me : "(null)",
              c->raylets[0].node_id);
}

/* Used bytes and objects of a raylet's store; false when it does not answer. */
static bool store_used(const harness_raylet *r, uint64_t *used, uint64_t *objects)
{
    Rpc__StoreStatsReply *s = harness_store_stats(r);
    if (s == NULL)
        return false;
    *used = s->used;
    *objects = s->objects;
    msg_free(&s->base);
    return true;
}

/* Lines of a file containing needle. */
static int count_in_file(const char *path, const char *needle)
{
    char *s = read_file(path, NULL);
    if (s == NULL)
        return 0;
    int n = 0;
    for (char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(s);
    return n;
}

static void raylet_log(const harness_raylet *r, char *out, size_t len)
{
    snprintf(out, len, "%s/logs/raylet.out", r->session);
}

static int64_t get_i64(rayc_ref r, const char *what);

/* ============================================================ 1. SPREAD */

#define N_SPREAD 1000

Test(multinode, spread_1000_tasks_run_on_every_node)
{
    harness_cluster c;
    start3(&c, NULL);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);

    static rayc_ref refs[N_SPREAD];
    static rayc_value vals[N_SPREAD];
    rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
    for (int64_t i = 0; i < N_SPREAD; i++) {
        rayc_arg a = RAYC_VAL(&i, sizeof(i));
        submit("where", &a, 1, &o, &refs[i]);
    }
    int rc = rayc_get(refs, N_SPREAD, vals, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "get of %d SPREAD tasks: %s: %s", N_SPREAD, rayc_strerror(rc),
                 rayc_last_error());
    int per[3] = {0, 0, 0};
    for (int i = 0; i < N_SPREAD; i++) {
        int k = 0;
        while (k < 3 && !is_node(&vals[i], c.raylets[k].node_id))
            k++;
        char buf[80];
        cr_assert(k < 3, "task %d ran on %s, which is none of the 3 nodes", i,
                  value_str(&vals[i], buf, sizeof(buf)));
        per[k]++;
        rayc_value_release(&vals[i]);
        rayc_ref_release(refs[i]);
    }
    cr_log_info("SPREAD: %d / %d / %d tasks on head / node1 / node2", per[0], per[1], per[2]);
    /* Spread means about a third each, the submitting node included: tasks
     * waiting there must not all drift to the others by spillback. */
    for (int k = 0; k < 3; k++)
        cr_assert(per[k] >= N_SPREAD / 6, "node %d (%s) ran %d of %d SPREAD tasks: %d / %d / %d", k,
                  c.raylets[k].node_id, per[k], N_SPREAD, per[0], per[1], per[2]);
    driver_shutdown();
}

/* ============================================================ 2. resources */

Test(multinode, custom_resource_of_one_node)
{
    harness_cluster c;
    const char *const special[] = {"--resources=special=1", NULL};
    const char *const *extra[3] = {NULL, NULL, special};
    start3(&c, extra);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);

    enum { N = 12 };
    rayc_ref refs[N];
    rayc_value vals[N];
    for (int64_t i = 0; i < N; i++) {
        /* Whole and fractional demands; every one only fits node 2. */
        rayc_task_opts o = {.resources = i % 2 ? "special=1" : "special=0.5"};
        rayc_arg a = RAYC_VAL(&i, sizeof(i));
        submit("where", &a, 1, &o, &refs[i]);
    }
    int rc = rayc_get(refs, N, vals, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "get: %s: %s", rayc_strerror(rc), rayc_last_error());
    for (int i = 0; i < N; i++) {
        char buf[80];
        cr_assert(is_node(&vals[i], c.raylets[2].node_id),
                  "task %d needing special ran on %s, not on node 2 (%s)", i,
                  value_str(&vals[i], buf, sizeof(buf)), c.raylets[2].node_id);
        rayc_value_release(&vals[i]);
        rayc_ref_release(refs[i]);
    }
    driver_shutdown();
}

struct contains_arg {
    const char *path, *needle;
};

static bool contains(void *arg)
{
    struct contains_arg *a = arg;
    return harness_file_contains(a->path, a->needle);
}

/* librayc reads the raylet's notices when a call pumps its connection:
 * wait on ref briefly, then look for the text. */
struct pumped_arg {
    rayc_ref *ref;
    struct contains_arg ca;
};

static bool pumped_contains(void *arg)
{
    struct pumped_arg *a = arg;
    int ready;
    (void)rayc_wait(a->ref, 1, 1, 50, &ready);
    return contains(&a->ca);
}

/* A task whose resource no node has is kept (infeasible), not failed, and
 * runs as soon as a node that has the resource joins (docs/multinode.md). */
Test(multinode, infeasible_task_runs_when_a_node_with_the_resource_joins)
{
    /* Once a known bug (under load the task stayed pending): the joined
     * node ran it, but did not know the forwarding node yet (its view came
     * with its first heartbeat reply) and dropped the result. It now answers
     * on the connection the forwarding node opened. */
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    wait_cluster(&c);
    driver_init(c.address);
    char err[HARNESS_PATH];
    snprintf(err, sizeof(err), "%s/driver.stderr", harness_dir());
    int saved = harness_capture_fd(2, err);
    rayc_task_opts o = {.resources = "late=1"};
    rayc_ref r;
    submit("where", NULL, 0, &o, &r);
    /* The raylet has it as infeasible once the driver got its notice; only
     * then does the node join (the claim: it runs when such a node joins). */
    struct pumped_arg pa = {&r, {err, "stays pending until such a node joins"}};
    bool noticed = harness_wait_until(pumped_contains, &pa, SLACK_MS);
    harness_restore_fd(2, saved);
    cr_assert(noticed, "the driver was never told the task is infeasible");
    /* Pending, not failed: rayc_wait sees it not ready. */
    int ready = 0;
    cr_assert_eq(rayc_wait(&r, 1, 1, 0, &ready), 0, "an infeasible task finished (failed?)");
    const char *const late[] = {"--resources=late=1", NULL};
    harness_raylet *n = harness_raylet_start(&c, late);
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, 2 * SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "the task needing late=1: %s: %s (%s)", rayc_strerror(rc),
                 rayc_last_error(), v.error ? v.error : "");
    char buf[80];
    cr_assert(is_node(&v, n->node_id), "it ran on %s, not on the node that joined",
              value_str(&v, buf, sizeof(buf)));
    rayc_value_release(&v);
    rayc_ref_release(r);
    driver_shutdown();
}

/* The GCS is killed and restarted while a driver has tasks and objects in
 * flight on three nodes: nothing is lost (docs/gcs.md: raylets re-register
 * without losing their work), and the cluster takes new work after. */
Test(multinode, gcs_restart_with_tasks_and_objects_in_flight)
{
    harness_cluster c;
    start3(&c, NULL);
    driver_init(c.address);
    pinned_probe(&c);
    uint64_t size = 200 * KIB, seed = 8100;
    rayc_ref prod[3][2];
    for (int k = 0; k < 3; k++) {
        uint64_t sk = seed + (uint64_t)k;
        rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&sk, sizeof(sk))};
        rayc_task_opts o = {
            .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[k].node_id};
        submit("make_pattern", a, 2, &o, prod[k]);
    }
    enum { N = 300 };
    static rayc_ref sq[N], dg[N];
    rayc_task_opts spread = {.strategy = RAYC_SCHED_SPREAD};
    for (int i = 0; i < N; i++) {
        int64_t x = i;
        rayc_arg s1 = RAYC_VAL(&x, sizeof(x));
        submit("square", &s1, 1, &spread, &sq[i]);
        uint64_t sk = seed + (uint64_t)(i % 3), salt = (uint64_t)i;
        rayc_arg b[] = {RAYC_REF(prod[i % 3][0]), RAYC_VAL(&sk, sizeof(sk)),
                        RAYC_VAL(&salt, sizeof(salt))};
        submit("digest", b, 3, &spread, &dg[i]);
        if (i == N / 3) { /* mid-submission */
            harness_kill9(c.gcs);
            harness_gcs_restart(&c);
        }
    }
    for (int i = 0; i < N; i++) {
        char what[32];
        snprintf(what, sizeof(what), "square %d", i);
        cr_assert_eq(get_i64(sq[i], what), (int64_t)i * i);
        snprintf(what, sizeof(what), "digest %d", i);
        cr_assert_eq(get_i64(dg[i], what),
                     (int64_t)((seed + (uint64_t)(i % 3)) * 1000003ULL + (uint64_t)i));
        rayc_ref_release(sq[i]);
        rayc_ref_release(dg[i]);
    }
    for (int k = 0; k < 3; k++) {
        rayc_value v[2];
        int rc = rayc_get(prod[k], 2, v, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "object %d after the restart: %s: %s", k, rayc_strerror(rc),
                     rayc_last_error());
        cr_assert_eq(pattern_check(v[0].data, v[0].size, seed + (uint64_t)k), -1);
        cr_assert(is_node(&v[1], c.raylets[k].node_id), "producer %d ran again elsewhere", k);
        rayc_value_release(&v[0]);
        rayc_value_release(&v[1]);
        rayc_ref_release(prod[k][0]);
        rayc_ref_release(prod[k][1]);
    }
    cr_assert_eq(count_alive(&c), 3, "a node died across the GCS restart");
    pinned_probe(&c); /* new work on every node */
    driver_shutdown();
}

/* Worker output is forwarded to the driver from every node, not only the
 * driver's own (every other multinode test turns it off). */
Test(multinode, worker_output_from_other_nodes_reaches_the_driver)
{
    harness_cluster c;
    start3(&c, NULL);
    const char *code[] = {mnlib(), NULL};
    rayc_init_opts o = {.address = c.address, .code = code}; /* log_to_driver on */
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
    char out[HARNESS_PATH];
    snprintf(out, sizeof(out), "%s/driver.stdout", harness_dir());
    int saved = harness_capture_fd(1, out);
    bool got[3] = {false, false, false};
    char want[3][128];
    for (int k = 1; k < 3; k++) {
        char text[64];
        snprintf(text, sizeof(text), "shout-from-node-%d-5e1d", k);
        rayc_task_opts po = {.strategy = RAYC_SCHED_NODE, .node_id = c.raylets[k].node_id};
        rayc_arg a = RAYC_VAL(text, strlen(text));
        rayc_ref r;
        if (rayc_submit("shout", &a, 1, &po, &r) != RAYC_OK)
            break;
        rayc_value v;
        if (rayc_get(&r, 1, &v, LONG_MS) == RAYC_OK) {
            got[k] = is_node(&v, c.raylets[k].node_id);
            rayc_value_release(&v);
        }
        rayc_ref_release(r);
        /* The prefix names the node the line came from. */
        snprintf(want[k], sizeof(want[k]), "node=%.8s) %s", c.raylets[k].node_id, text);
    }
    bool seen[3] = {false, false, false};
    for (int k = 1; k < 3; k++) {
        struct contains_arg ca = {out, want[k]};
        seen[k] = got[k] && harness_wait_until(contains, &ca, SLACK_MS);
    }
    harness_restore_fd(1, saved);
    char *text = read_file(out, NULL);
    for (int k = 1; k < 3; k++) {
        cr_assert(got[k], "shout pinned to node %d did not run there", k);
        cr_assert(seen[k], "the driver's stdout lacks [%s]; it has [%s]", want[k],
                  text ? text : "");
    }
    free(text);
    driver_shutdown();
}

/* ============================================================ 3. sizes */

Test(multinode, slow_remote_objects_every_size_byte_exact, .timeout = 420)
{
    harness_slow_test();
    harness_cluster c;
    const char *const big[] = {"--object-store-memory=2G", NULL};
    const char *const *extra[3] = {big, big, NULL};
    start3(&c, extra);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);

    static const size_t sizes[] = {0, 1, 5 * MIB + 1, GIB};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint64_t size = sizes[k], seed = 300 + k;
        rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
        rayc_task_opts o = {
            .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id};
        rayc_ref r[2];
        submit("make_pattern", a, 2, &o, r);
        rayc_value v[2];
        int rc = rayc_get(r, 2, v, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "get of a %zu-byte object made on node 1: %s: %s", (size_t)size,
                     rayc_strerror(rc), rayc_last_error());
        char buf[80];
        cr_assert(is_node(&v[1], c.raylets[1].node_id), "make_pattern(%zu) ran on %s, not node 1",
                  (size_t)size, value_str(&v[1], buf, sizeof(buf)));
        cr_assert_eq(v[0].size, size, "size %zu, want %zu", v[0].size, (size_t)size);
        cr_assert(size == 0 || v[0].data != NULL);
        long long bad = pattern_check(v[0].data, size, seed);
        cr_assert_eq(bad, -1, "%zu-byte object made on node 1 differs at offset %lld", (size_t)size,
                     bad);
        rayc_value_release(&v[0]);
        rayc_value_release(&v[1]);
        rayc_ref_release(r[0]);
        rayc_ref_release(r[1]);
    }
    driver_shutdown();
}

/* ============================================================ 4. one transfer per node */

/* Distinct nodes holding obj per the GCS directory (entries not removed);
 * -1 when the GCS does not answer. *entries: all live entries. */
static int locations(const harness_cluster *c, const rayc_ref *ref, int *entries,
                     char hexes[][ID_HEX_MAX], int cap)
{
    int code;
    char err[256];
    bconn *b = harness_connect(c, NULL, &code, err, sizeof(err));
    if (b == NULL)
        return -1;
    ProtobufCBinaryData id = {OBJECT_ID_SIZE, (uint8_t *)ref->id};
    Rpc__GetObjectLocationsRequest req = RPC__GET_OBJECT_LOCATIONS_REQUEST__INIT;
    req.req_id = 1;
    req.n_object_ids = 1;
    req.object_ids = &id;
    ProtobufCMessage *m = NULL;
    int rc = bconn_call(b, MSG_GET_OBJECT_LOCATIONS_REQ, &req.base, MSG_GET_OBJECT_LOCATIONS_REPLY,
                        &m, 5000);
    bconn_close(b);
    if (rc != 0)
        return -1;
    Rpc__GetObjectLocationsReply *r = (Rpc__GetObjectLocationsReply *)m;
    int n = 0;
    *entries = 0;
    for (size_t i = 0; i < r->n_locations; i++) {
        Rpc__ObjectLocation *l = r->locations[i];
        if (l->removed || l->node_id.len != NODE_ID_SIZE)
            continue;
        (*entries)++;
        char hex[ID_HEX_MAX];
        id_hex(l->node_id.data, NODE_ID_SIZE, hex);
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen = seen || strcmp(hexes[k], hex) == 0;
        if (!seen && n < cap)
            snprintf(hexes[n++], ID_HEX_MAX, "%s", hex);
    }
    msg_free(m);
    return n;
}

struct loc_arg {
    const harness_cluster *c;
    const rayc_ref *ref;
    int nodes, entries;
    char hexes[8][ID_HEX_MAX];
};

static bool three_locations(void *arg)
{
    struct loc_arg *a = arg;
    a->nodes = locations(a->c, a->ref, &a->entries, a->hexes, 8);
    return a->nodes == 3;
}

struct empty_arg {
    const harness_cluster *c;
    int node;
    uint64_t used, objects;
};

/* Every node's store holds nothing. */
static bool stores_empty(void *arg)
{
    struct empty_arg *a = arg;
    for (a->node = 0; a->node < 3; a->node++)
        if (!store_used(&a->c->raylets[a->node], &a->used, &a->objects) || a->objects > 0 ||
            a->used > 0)
            return false;
    return true;
}

Test(multinode, one_transfer_per_node_for_a_shared_object)
{
    harness_cluster c;
    /* Nodes 1 and 2 log at debug level: the object manager logs each
     * completed pull ("pulled <object> (...) from <node>"). */
    const char *const head[] = {"--object-store-memory=512M", NULL};
    const char *const other[] = {"--object-store-memory=512M", "--log-level=debug", NULL};
    const char *const *extra[3] = {head, other, other};
    start3(&c, extra);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);

    size_t size = 100 * MIB;
    uint64_t seed = 4242;
    void *buf = NULL;
    rayc_ref obj;
    int rc = rayc_put_alloc(size, &buf, &obj);
    cr_assert_eq(rc, RAYC_OK, "rayc_put_alloc: %s: %s", rayc_strerror(rc), rayc_last_error());
    pattern_fill(buf, size, seed);
    cr_assert_eq(rayc_put_seal(obj), RAYC_OK);

    enum { N = 20 };
    rayc_ref r[N][2];
    for (int i = 0; i < N; i++) {
        const char *node = c.raylets[1 + i % 2].node_id;
        rayc_task_opts o = {.num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = node};
        rayc_arg a[] = {RAYC_REF(obj), RAYC_VAL(&seed, sizeof(seed))};
        submit("check_pattern", a, 2, &o, r[i]);
    }
    for (int i = 0; i < N; i++) {
        rayc_value v[2];
        rc = rayc_get(r[i], 2, v, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "task %d: %s: %s", i, rayc_strerror(rc), rayc_last_error());
        int64_t bad;
        cr_assert_eq(v[0].size, sizeof(bad));
        memcpy(&bad, v[0].data, sizeof(bad));
        cr_assert_eq(bad, -1, "task %d saw the 100 MiB object differ at offset %lld", i,
                     (long long)bad);
        char b2[80];
        cr_assert(is_node(&v[1], c.raylets[1 + i % 2].node_id), "task %d ran on %s, not node %d", i,
                  value_str(&v[1], b2, sizeof(b2)), 1 + i % 2);
        rayc_value_release(&v[0]);
        rayc_value_release(&v[1]);
        rayc_ref_release(r[i][0]);
        rayc_ref_release(r[i][1]);
    }

    /* The directory: the driver's copy and one copy on each other node. */
    struct loc_arg la = {.c = &c, .ref = &obj};
    cr_assert(harness_wait_until(three_locations, &la, SLACK_MS),
              "the GCS lists the object on %d node(s) (%d entries), want 3", la.nodes, la.entries);
    cr_assert_eq(la.entries, 3, "the GCS lists %d locations for 3 nodes", la.entries);
    for (int k = 0; k < 3; k++) {
        bool found = false;
        for (int j = 0; j < la.nodes; j++)
            found = found || strcmp(la.hexes[j], c.raylets[k].node_id) == 0;
        cr_assert(found, "node %d (%s) is not among the object's locations", k,
                  c.raylets[k].node_id);
    }

    /* The raylets' own account: exactly one completed pull of the object on
     * each of nodes 1 and 2, and no failed one. */
    char hex[ID_HEX_MAX], pulled[ID_HEX_MAX + 16], failed[ID_HEX_MAX + 16];
    id_hex(obj.id, OBJECT_ID_SIZE, hex);
    snprintf(pulled, sizeof(pulled), "pulled %s ", hex);
    snprintf(failed, sizeof(failed), "pull of %s failed", hex);
    for (int k = 1; k < 3; k++) {
        char log[HARNESS_PATH + 32];
        raylet_log(&c.raylets[k], log, sizeof(log));
        int n = count_in_file(log, pulled);
        cr_assert_eq(n, 1, "node %d pulled the object %d times for %d tasks (see %s)", k, n, N / 2,
                     log);
        cr_assert_eq(count_in_file(log, failed), 0, "node %d had a failed pull (see %s)", k, log);
    }

    /* The owner's release frees every copy: its own and the pulled ones. */
    rayc_ref_release(obj);
    struct empty_arg ea = {.c = &c};
    cr_assert(harness_wait_until(stores_empty, &ea, SLACK_MS),
              "after the release node %d still holds %llu objects (%llu bytes)", ea.node,
              (unsigned long long)ea.objects, (unsigned long long)ea.used);
    driver_shutdown();
}

/* ============================================================ only the owner frees */

struct nloc_arg {
    const harness_cluster *c;
    const rayc_ref *ref;
    int want, nodes, entries;
    char hexes[8][ID_HEX_MAX];
};

static bool n_locations(void *arg)
{
    struct nloc_arg *a = arg;
    a->nodes = locations(a->c, a->ref, &a->entries, a->hexes, 8);
    return a->nodes == a->want;
}

static void wait_locations(const harness_cluster *c, const rayc_ref *ref, int want,
                           const char *what)
{
    struct nloc_arg a = {.c = c, .ref = ref, .want = want};
    cr_assert(harness_wait_until(n_locations, &a, SLACK_MS),
              "%s: the GCS lists %d node(s), want %d", what, a.nodes, want);
}

/* A 1 MiB pattern object put by the driver and read by a task on node 1,
 * so that node 1 holds a pulled copy. */
static rayc_ref put_read_on(const harness_cluster *c, uint64_t seed)
{
    void *buf = NULL;
    rayc_ref obj;
    int rc = rayc_put_alloc(MIB, &buf, &obj);
    cr_assert_eq(rc, RAYC_OK, "rayc_put_alloc: %s", rayc_last_error());
    pattern_fill(buf, MIB, seed);
    cr_assert_eq(rayc_put_seal(obj), RAYC_OK);
    rayc_task_opts o = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c->raylets[1].node_id};
    rayc_arg a[] = {RAYC_REF(obj), RAYC_VAL(&seed, sizeof(seed))};
    rayc_ref r[2];
    submit("check_pattern", a, 2, &o, r);
    rayc_value v[2];
    rc = rayc_get(r, 2, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "check_pattern: %s: %s", rayc_strerror(rc), rayc_last_error());
    int64_t bad;
    memcpy(&bad, v[0].data, sizeof(bad));
    cr_assert_eq(bad, -1);
    for (int i = 0; i < 2; i++) {
        rayc_value_release(&v[i]);
        rayc_ref_release(r[i]);
    }
    return obj;
}

/* Another local client of raylet r (not the owner) deletes obj. Frames are
 * handled in order: the stats reply says the delete was handled. */
static void delete_as_stranger(const harness_raylet *r, const rayc_ref *obj)
{
    bconn *b = harness_local_connect(r, RPC__ROLE__ROLE_DRIVER);
    cr_assert_not_null(b, "no local connection to %s", r->socket);
    ProtobufCBinaryData id = {OBJECT_ID_SIZE, (uint8_t *)obj->id};
    Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
    del.n_object_ids = 1;
    del.object_ids = &id;
    cr_assert_eq(bconn_send(b, MSG_DELETE_OBJECTS, &del.base), 0);
    Rpc__StoreStatsRequest req = RPC__STORE_STATS_REQUEST__INIT;
    req.req_id = 1;
    ProtobufCMessage *m = NULL;
    cr_assert_eq(bconn_call(b, MSG_STORE_STATS_REQ, &req.base, MSG_STORE_STATS_REPLY, &m, 10000),
                 0);
    msg_free(m);
    bconn_close(b);
}

/* Issue 13: a local client that neither created nor owns an object cannot
 * free it, on its node or (through the directory) on the others; the owner's
 * own deletes still free every copy: of its puts, of their pulled copies,
 * and of a task's return kept on the node that ran the task. */
Test(multinode, only_the_owner_frees_an_object_anywhere)
{
    harness_cluster c;
    start3(&c, NULL);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);
    rayc_ref obj = put_read_on(&c, 71), witness = put_read_on(&c, 72);
    wait_locations(&c, &obj, 2, "the put and its copy");
    wait_locations(&c, &witness, 2, "the witness and its copy");

    /* Before: the head freed its copy and told node 1 to free its copy. */
    delete_as_stranger(&c.raylets[0], &obj);
    delete_as_stranger(&c.raylets[1], &obj);
    /* The owner's delete of the witness takes the same way to node 1,
     * after the stranger's: once it arrived, so would have the other. */
    rayc_ref_release(witness);
    wait_locations(&c, &witness, 0, "the owner's delete of the witness");
    int entries;
    char hexes[8][ID_HEX_MAX];
    cr_assert_eq(locations(&c, &obj, &entries, hexes, 8), 2,
                 "a stranger's delete freed a copy of the driver's object");
    uint64_t used, objects;
    for (int k = 0; k < 2; k++) {
        cr_assert(store_used(&c.raylets[k], &used, &objects));
        cr_assert_eq(objects, 1, "node %d holds %llu objects, want the put's copy", k,
                     (unsigned long long)objects);
    }

    /* A task's return on node 1 is the driver's to free, not the worker's. */
    uint64_t size = MIB, seed = 73;
    rayc_task_opts o = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id};
    rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
    rayc_ref made[2];
    submit("make_pattern", a, 2, &o, made);
    rayc_value where;
    int rc = rayc_get(&made[1], 1, &where, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "make_pattern: %s", rayc_last_error());
    rayc_value_release(&where);
    rayc_ref_release(made[1]);
    wait_locations(&c, &made[0], 1, "the task's return");
    rayc_ref_release(made[0]);
    wait_locations(&c, &made[0], 0, "the owner's delete of the task's return");

    rayc_ref_release(obj);
    wait_locations(&c, &obj, 0, "the owner's delete of the put");
    driver_shutdown();
}

/* Put slabs in a cluster: thousands of store objects put and released at
 * once. Each release also asks the GCS (in batches) which other nodes hold
 * copies; the object directory cancels objects that come and go within one
 * batch. Every raylet must live through it and every store end empty. */
Test(multinode, put_release_churn_in_a_cluster)
{
    harness_cluster c;
    const char *const big[] = {"--object-store-memory=256M", NULL};
    const char *const *extra[3] = {big, big, big};
    start3(&c, extra);
    driver_init(c.address);
    assert_driver_on_head(&c);
    enum { N = 5000, SIZE = 150 * KIB };
    static uint8_t buf[SIZE];
    for (int i = 0; i < N; i++) {
        memcpy(buf, &i, sizeof(i));
        rayc_ref r;
        int rc = rayc_put(buf, SIZE, &r);
        cr_assert_eq(rc, RAYC_OK, "put %d: %s: %s", i, rayc_strerror(rc), rayc_last_error());
        if (i % 97 == 0) { /* read some back before releasing */
            rayc_value v;
            cr_assert_eq(rayc_get(&r, 1, &v, LONG_MS), RAYC_OK);
            int got;
            memcpy(&got, v.data, sizeof(got));
            cr_assert_eq(got, i);
            rayc_value_release(&v);
        }
        rayc_ref_release(r);
    }
    for (int k = 0; k < 3; k++)
        cr_assert(harness_alive(c.raylets[k].proc), "raylet %d died during the churn", k);
    struct empty_arg ea = {.c = &c};
    cr_assert(harness_wait_until(stores_empty, &ea, SLACK_MS),
              "after the churn node %d still holds %llu objects (%llu bytes)", ea.node,
              (unsigned long long)ea.objects, (unsigned long long)ea.used);
    driver_shutdown();
}

/* ============================================================ 5. node death */

/* Lines of a file (0 when it does not exist); up to cap of them copied
 * (without the newline) into lines. */
static int file_lines(const char *path, char lines[][160], int cap)
{
    char *s = read_file(path, NULL);
    if (s == NULL)
        return 0;
    int n = 0;
    for (char *save = NULL, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (n < cap)
            snprintf(lines[n], 160, "%s", l);
        n++;
    }
    free(s);
    return n;
}

static void test_file(char *out, const char *name)
{
    snprintf(out, HARNESS_PATH, "%s/%s", harness_dir(), name);
}

struct lines_arg {
    const char *path;
    int want;
};

static bool has_lines(void *arg)
{
    struct lines_arg *a = arg;
    char lines[1][160];
    return file_lines(a->path, lines, 0) >= a->want;
}

struct state_arg {
    const harness_cluster *c;
    const char *node;
    int want;
};

static bool node_in_state(void *arg)
{
    struct state_arg *a = arg;
    return harness_node_state(a->c, a->node) == a->want;
}

/* Kill node i (-9, its workers with it: they share its process group) and
 * wait until the GCS declares it DEAD. */
static void kill_node(harness_cluster *c, int i)
{
    harness_kill9(c->raylets[i].proc);
    struct state_arg a = {c, c->raylets[i].node_id, DEAD};
    cr_assert(harness_wait_until(node_in_state, &a, SLACK_MS + c->health_timeout_ms),
              "node %d is not DEAD after its raylet was killed (state %d)", i,
              harness_node_state(c, c->raylets[i].node_id));
}

static bool some_location(void *arg)
{
    struct loc_arg *a = arg;
    a->nodes = locations(a->c, a->ref, &a->entries, a->hexes, 8);
    return a->nodes > 0;
}

/* The object directory (GCS) lists ref on exactly one node, `hex`, and no
 * other store holds it: the precondition of every lineage test. */
static void assert_only_copy_on(const harness_cluster *c, const rayc_ref *ref, int node)
{
    /* Raylets report new copies in batches: wait for the first report. */
    struct loc_arg a = {.c = c, .ref = ref};
    cr_assert(harness_wait_until(some_location, &a, SLACK_MS), "the object is listed nowhere");
    cr_assert_eq(a.nodes, 1, "the object is listed on %d nodes, want only node %d", a.nodes, node);
    cr_assert_str_eq(a.hexes[0], c->raylets[node].node_id,
                     "the object's only copy is not on node %d", node);
    for (int k = 0; k < c->nraylets; k++) {
        uint64_t used, objs;
        if (k == node)
            continue;
        cr_assert(store_used(&c->raylets[k], &used, &objs), "node %d store stats", k);
        cr_assert_eq(objs, 0, "node %d's store holds %llu objects: a copy may exist there", k,
                     (unsigned long long)objs);
    }
}

static void submit_mark_pattern(const harness_cluster *c, int node, int soft, uint64_t *size,
                                uint64_t *seed, const char *path, rayc_ref out[2])
{
    rayc_arg a[] = {RAYC_VAL(size, sizeof(*size)), RAYC_VAL(seed, sizeof(*seed)),
                    RAYC_VAL(path, strlen(path))};
    rayc_task_opts o = {.num_returns = 2,
                        .strategy = RAYC_SCHED_NODE,
                        .node_id = c->raylets[node].node_id,
                        .soft = soft};
    submit("mark_pattern", a, 3, &o, out);
}

/* digest(obj, seed, 0) pinned (softly) to a node, or SPREAD when node < 0. */
static rayc_ref submit_digest(const harness_cluster *c, int node, rayc_ref obj, uint64_t *seed)
{
    static uint64_t zero = 0;
    rayc_arg b[] = {RAYC_REF(obj), RAYC_VAL(seed, sizeof(*seed)), RAYC_VAL(&zero, sizeof(zero))};
    rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
    if (node >= 0)
        o = (rayc_task_opts){
            .strategy = RAYC_SCHED_NODE, .node_id = c->raylets[node].node_id, .soft = 1};
    rayc_ref r;
    submit("digest", b, 3, &o, &r);
    return r;
}

static int64_t get_i64(rayc_ref r, const char *what)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: %s: %s (%s)", what, rayc_strerror(rc), rayc_last_error(),
                 v.error ? v.error : "");
    int64_t x;
    cr_assert_eq(v.size, sizeof(x), "%s: %zu bytes", what, v.size);
    memcpy(&x, v.data, sizeof(x));
    rayc_value_release(&v);
    return x;
}

/* A task running on a node that dies, and one queued behind it there, are
 * both run again on a live node. mark_nap appends its node to a file each
 * time it starts and sleeps only on node 2, so the first attempt is still
 * running when node 2 is killed, and the file shows every attempt. */
Test(multinode, node_death_retries_running_and_queued_tasks)
{
    harness_cluster c;
    start3(&c, NULL);
    driver_init(c.address);
    pinned_probe(&c);
    char run_file[HARNESS_PATH], queued_file[HARNESS_PATH];
    test_file(run_file, "running.attempts");
    test_file(queued_file, "queued.attempts");
    uint64_t ms = 600000; /* killed long before */
    const char *victim = c.raylets[2].node_id;
    /* Node 2 has one CPU: the first runs there, the second queues there. */
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = victim, .soft = 1};
    rayc_arg a1[] = {RAYC_VAL(run_file, strlen(run_file)), RAYC_VAL(&ms, sizeof(ms)),
                     RAYC_VAL(victim, strlen(victim))};
    rayc_arg a2[] = {RAYC_VAL(queued_file, strlen(queued_file)), RAYC_VAL(&ms, sizeof(ms)),
                     RAYC_VAL(victim, strlen(victim))};
    rayc_ref running, queued;
    submit("mark_nap", a1, 3, &o, &running);
    submit("mark_nap", a2, 3, &o, &queued);
    struct lines_arg la = {run_file, 1};
    cr_assert(harness_wait_until(has_lines, &la, SLACK_MS), "the first task never started");
    char lines[4][160];
    cr_assert_eq(file_lines(run_file, lines, 4), 1);
    cr_assert_str_eq(lines[0], victim, "the first task started on %s, not on node 2", lines[0]);
    cr_assert_eq(file_lines(queued_file, lines, 4), 0,
                 "the queued task started (on %s) while node 2's only CPU was busy", lines[0]);

    kill_node(&c, 2);

    rayc_ref both[2] = {running, queued};
    rayc_value v[2];
    int rc = rayc_get(both, 2, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "the tasks of the dead node: %s: %s (%s / %s)", rayc_strerror(rc),
                 rayc_last_error(), v[0].error ? v[0].error : "", v[1].error ? v[1].error : "");
    char buf[80];
    for (int i = 0; i < 2; i++) {
        cr_assert(!is_node(&v[i], victim), "task %d's result came from the dead node", i);
        cr_assert(is_node(&v[i], c.raylets[0].node_id) || is_node(&v[i], c.raylets[1].node_id),
                  "task %d ran on %s", i, value_str(&v[i], buf, sizeof(buf)));
        rayc_value_release(&v[i]);
    }
    /* The re-execution, seen from its side effect: a second attempt on a
     * live node; the queued task ran exactly once, elsewhere. */
    int n = file_lines(run_file, lines, 4);
    cr_assert_eq(n, 2, "the running task started %d time(s), want 2 (once on node 2, once retried)",
                 n);
    cr_assert_str_neq(lines[1], victim, "the retry ran on the dead node");
    n = file_lines(queued_file, lines, 4);
    cr_assert_eq(n, 1, "the queued task started %d time(s), want 1", n);
    cr_assert_str_neq(lines[0], victim, "the queued task ran on the dead node");
    rayc_ref_release(running);
    rayc_ref_release(queued);
    driver_shutdown();
}

/* The object's only copy is on node 2 (its producer and its only consumer
 * ran there, the driver never read it): after node 2 dies, a get of it runs
 * the producer again on a live node (lineage) and the bytes are exact. */
Test(multinode, node_death_rebuilds_object_from_lineage)
{
    harness_cluster c;
    start3(&c, NULL);
    driver_init(c.address);
    pinned_probe(&c);
    char path[HARNESS_PATH];
    test_file(path, "producer.attempts");
    uint64_t size = 200 * KIB, seed = 7001; /* > 100 KiB: a store object */
    rayc_ref prod[2];
    submit_mark_pattern(&c, 2, 1, &size, &seed, path, prod);
    rayc_ref d = submit_digest(&c, 2, prod[0], &seed);
    cr_assert_eq(get_i64(d, "digest on node 2"), (int64_t)(seed * 1000003ULL));
    rayc_ref_release(d);
    rayc_value nv;
    cr_assert_eq(rayc_get(&prod[1], 1, &nv, LONG_MS), RAYC_OK);
    cr_assert(is_node(&nv, c.raylets[2].node_id), "the producer did not run on node 2");
    rayc_value_release(&nv);
    assert_only_copy_on(&c, &prod[0], 2);
    char lines[4][160];
    cr_assert_eq(file_lines(path, lines, 4), 1);

    kill_node(&c, 2);

    rayc_value v;
    int rc = rayc_get(&prod[0], 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "get of the lost object: %s: %s", rayc_strerror(rc),
                 rayc_last_error());
    cr_assert_eq(v.size, size);
    cr_assert_eq(pattern_check(v.data, size, seed), -1, "the rebuilt object differs");
    rayc_value_release(&v);
    int n = file_lines(path, lines, 4);
    cr_assert_eq(n, 2, "the producer ran %d time(s), want 2 (lineage reconstruction)", n);
    cr_assert(strstr(lines[1], c.raylets[2].node_id) == NULL, "the rebuild ran on the dead node");
    /* A task that needs the object after the death gets it too. */
    d = submit_digest(&c, -1, prod[0], &seed);
    cr_assert_eq(get_i64(d, "digest after the rebuild"), (int64_t)(seed * 1000003ULL));
    rayc_ref_release(d);
    rayc_ref_release(prod[0]);
    rayc_ref_release(prod[1]);
    driver_shutdown();
}

/* A result whose producer was pinned without `soft` to the dead node has no
 * usable lineage: rayc_get gives RAYC_EOBJECT_LOST (never a hang, never a
 * rerun), and so does a task that needs it. */
Test(multinode, node_death_without_lineage_object_lost)
{
    harness_cluster c;
    start3(&c, NULL);
    driver_init(c.address);
    pinned_probe(&c);
    char path[HARNESS_PATH];
    test_file(path, "producer.attempts");
    uint64_t size = 200 * KIB, seed = 7002;
    rayc_ref prod[2];
    submit_mark_pattern(&c, 2, 0, &size, &seed, path, prod);
    rayc_ref d = submit_digest(&c, 2, prod[0], &seed);
    cr_assert_eq(get_i64(d, "digest on node 2"), (int64_t)(seed * 1000003ULL));
    rayc_ref_release(d);
    assert_only_copy_on(&c, &prod[0], 2);

    kill_node(&c, 2);

    rayc_value v;
    int rc = rayc_get(&prod[0], 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_EOBJECT_LOST, "get of an object with no copy and no lineage: %s: %s",
                 rayc_strerror(rc), rayc_last_error());
    d = submit_digest(&c, -1, prod[0], &seed);
    rc = rayc_get(&d, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_EOBJECT_LOST, "a task that needs the lost object: %s: %s (%s)",
                 rayc_strerror(rc), rayc_last_error(), v.error ? v.error : "");
    rayc_value_release(&v);
    char lines[4][160];
    cr_assert_eq(file_lines(path, lines, 4), 1, "the hard-pinned producer ran again");
    rayc_ref_release(d);
    rayc_ref_release(prod[0]);
    rayc_ref_release(prod[1]);
    driver_shutdown();
}

/* A task pinned (not soft) to a node the cluster knows is dead fails at
 * once: it never waits for the node. */
Test(multinode, task_pinned_to_dead_node_fails)
{
    harness_cluster c;
    start3(&c, NULL);
    driver_init(c.address);
    pinned_probe(&c);
    kill_node(&c, 2);
    wait_views(&c); /* every raylet has heard of the death */
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
    rayc_ref r;
    submit("where", NULL, 0, &o, &r);
    rayc_value v;
    /* A task that waits for the dead node never ends: ETIMEDOUT here. */
    int rc = rayc_get(&r, 1, &v, SLACK_MS);
    cr_assert_neq(rc, RAYC_ETIMEDOUT, "a task pinned to a dead node is still pending");
    cr_assert_neq(rc, RAYC_OK, "a task pinned to a dead node ran");
    cr_assert(strstr(rayc_last_error(), "dead") || (v.error && strstr(v.error, "dead")),
              "the error does not say the node is dead: %s (%s)", rayc_last_error(),
              v.error ? v.error : "");
    rayc_value_release(&v);
    rayc_ref_release(r);
    driver_shutdown();
}

/* A node the GCS declared DEAD while its raylet still runs (stopped past
 * the health timeout, then resumed) is told so at its next heartbeat, and
 * the raylet exits (docs/gcs.md: DEAD is final). */
Test(multinode, dead_node_raylet_exits)
{
    harness_cluster c;
    start3(&c, NULL);
    harness_proc *p = c.raylets[2].proc;
    cr_assert_eq(kill(p->pid, SIGSTOP), 0);
    struct state_arg a = {&c, c.raylets[2].node_id, DEAD};
    bool dead = harness_wait_until(node_in_state, &a, SLACK_MS + c.health_timeout_ms);
    kill(p->pid, SIGCONT);
    cr_assert(dead, "a stopped raylet was not declared DEAD");
    int code = harness_wait_exit(p, SLACK_MS);
    cr_assert_neq(code, -1, "the raylet of a DEAD node still runs %d ms after it resumed",
                  SLACK_MS);
    p->any_exit = true; /* its code is its own business; that it exits is the claim */
    cr_assert_eq(count_alive(&c), 2);
}

/* The big one: 2,000 tasks, P producers of 200 KiB objects (store objects)
 * pinned softly round robin over the 3 nodes, 4 consumers of each producer's
 * object (pinned softly with their producer on node 2, so the victim's
 * objects have no copy elsewhere; SPREAD otherwise), and small SPREAD square
 * tasks. Node 2 is killed once a quarter of the consumers are done. Before
 * the kill the test checks that some finished producer's object exists only
 * on node 2; after it, that those producers ran again (their lines in the
 * attempts file) and every result is exact. */
#define P         200
#define CONS_PER  4
#define NSQ       (2000 - P - P * CONS_PER)
#define PROD_SIZE (200 * KIB)

/* Attempts of the producer with this seed in the attempts file. */
static int attempts_of(const char *path, uint64_t seed, char last_node[ID_HEX_MAX])
{
    static char lines[4 * P][160];
    int n = file_lines(path, lines, 4 * P), count = 0;
    char want[32];
    snprintf(want, sizeof(want), "%llu ", (unsigned long long)seed);
    for (int i = 0; i < n && i < 4 * P; i++)
        if (strncmp(lines[i], want, strlen(want)) == 0) {
            count++;
            snprintf(last_node, ID_HEX_MAX, "%s", lines[i] + strlen(want));
        }
    return count;
}

Test(multinode, slow_kill_raylet_mid_job_retries_and_rebuilds, .timeout = 420)
{
    harness_slow_test();
    harness_cluster c;
    const char *const mem[] = {"--object-store-memory=256M", NULL};
    const char *const *extra[3] = {mem, mem, mem};
    start3(&c, extra);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);
    char path[HARNESS_PATH];
    test_file(path, "producers.attempts");

    static rayc_ref prod[P][2], cons[P * CONS_PER], sq[NSQ];
    rayc_task_opts spread = {.strategy = RAYC_SCHED_SPREAD};
    rayc_task_opts on_victim = {
        .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id, .soft = 1};
    for (int i = 0; i < P; i++) {
        /* Producers are pinned round robin, softly: a third of the objects
         * live on the victim, and their lineage may run anywhere. */
        uint64_t size = PROD_SIZE, seed = 5000 + (uint64_t)i;
        submit_mark_pattern(&c, i % 3, 1, &size, &seed, path, prod[i]);
        for (int j = 0; j < CONS_PER; j++) {
            uint64_t salt = (uint64_t)j;
            rayc_arg b[] = {RAYC_REF(prod[i][0]), RAYC_VAL(&seed, sizeof(seed)),
                            RAYC_VAL(&salt, sizeof(salt))};
            submit("digest", b, 3, i % 3 == 2 ? &on_victim : &spread, &cons[i * CONS_PER + j]);
        }
        for (int k = i; k < NSQ; k += P) {
            int64_t n = k;
            rayc_arg s = RAYC_VAL(&n, sizeof(n));
            submit("square", &s, 1, &spread, &sq[k]);
        }
    }

    /* Kill node 2 once it has made some of its producers' objects and a
     * quarter of the consumers are done. */
    static int ready[P * CONS_PER];
    rayc_ref first_on_victim[3] = {prod[2][1], prod[5][1], prod[8][1]};
    int r3[3];
    int n = rayc_wait(first_on_victim, 3, 3, LONG_MS, r3);
    cr_assert_eq(n, 3, "producers pinned to node 2: rayc_wait: %d (%s)", n, rayc_last_error());
    n = rayc_wait(cons, P * CONS_PER, P * CONS_PER / 4, LONG_MS, ready);
    cr_assert(n >= P * CONS_PER / 4, "rayc_wait: %d (%s: %s)", n, n < 0 ? rayc_strerror(n) : "",
              rayc_last_error());
    /* Finished producers that ran on the victim and whose object the
     * directory lists on node 2 alone: their objects die with it. */
    static bool sole[P];
    int nsole = 0, prod_done = 0;
    for (int i = 0; i < P; i++) {
        int r1 = 0;
        if (rayc_wait(&prod[i][1], 1, 1, 0, &r1) != 1)
            continue;
        rayc_value v;
        if (rayc_get(&prod[i][1], 1, &v, 0) != RAYC_OK)
            continue;
        prod_done++;
        if (is_node(&v, c.raylets[2].node_id)) {
            int entries;
            char hexes[8][ID_HEX_MAX];
            int nodes = locations(&c, &prod[i][0], &entries, hexes, 8);
            sole[i] = nodes == 1 && strcmp(hexes[0], c.raylets[2].node_id) == 0;
            nsole += sole[i];
        }
        rayc_value_release(&v);
    }
    harness_kill9(c.raylets[2].proc);
    cr_log_info("killed node 2 with %d/%d consumers ready, %d/%d producers done (%d only on node "
                "2)",
                n, P * CONS_PER, prod_done, P, nsole);
    cr_assert(n < P * CONS_PER, "the whole job finished before the kill; make it larger");
    cr_assert(nsole > 0, "no finished producer's object was on node 2 alone before the kill");

    /* Every consumer's digest, every square, and every producer's object. */
    for (int i = 0; i < P * CONS_PER; i++) {
        int64_t want =
            (int64_t)((5000 + (uint64_t)(i / CONS_PER)) * 1000003ULL + (uint64_t)(i % CONS_PER));
        char what[64];
        snprintf(what, sizeof(what), "consumer %d", i);
        cr_assert_eq(get_i64(cons[i], what), want, "consumer %d", i);
        rayc_ref_release(cons[i]);
    }
    for (int k = 0; k < NSQ; k++) {
        char what[64];
        snprintf(what, sizeof(what), "square %d", k);
        cr_assert_eq(get_i64(sq[k], what), (int64_t)k * k, "square(%d)", k);
        rayc_ref_release(sq[k]);
    }
    for (int i = 0; i < P; i++) {
        rayc_value v[2];
        int rc = rayc_get(prod[i], 2, v, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "producer %d: %s: %s", i, rayc_strerror(rc), rayc_last_error());
        cr_assert_eq(v[0].size, PROD_SIZE);
        long long bad = pattern_check(v[0].data, PROD_SIZE, 5000 + (uint64_t)i);
        cr_assert_eq(bad, -1, "producer %d's object differs at %lld", i, bad);
        rayc_value_release(&v[0]);
        rayc_value_release(&v[1]);
        rayc_ref_release(prod[i][0]);
        rayc_ref_release(prod[i][1]);
    }
    /* The re-execution: each object that was only on node 2 was rebuilt by
     * running its producer again, on a live node. */
    for (int i = 0; i < P; i++) {
        if (!sole[i])
            continue;
        char last[ID_HEX_MAX] = "";
        int a = attempts_of(path, 5000 + (uint64_t)i, last);
        cr_assert(a >= 2, "producer %d's object was only on the dead node, yet it ran %d time(s)",
                  i, a);
        cr_assert_str_neq(last, c.raylets[2].node_id, "producer %d was rebuilt on the dead node",
                          i);
    }
    cr_assert_eq(harness_node_state(&c, c.raylets[2].node_id), DEAD);
    driver_shutdown();
}

/* ============================================================ workers */

/* rayc_worker processes the raylet started (its children) that still run. */
static int workers_of(const harness_raylet *r)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        char *st = read_file(path, NULL);
        char *rp = st ? strrchr(st, ')') : NULL;
        char state = 0;
        int ppid = 0;
        if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == r->proc->pid &&
            state != 'Z' && strstr(st, "(rayc_worker)"))
            n++;
        free(st);
    }
    if (d)
        closedir(d);
    return n;
}

struct workers_arg {
    const harness_raylet *r;
    int at_most, last;
};

static bool workers_at_most(void *arg)
{
    struct workers_arg *a = arg;
    a->last = workers_of(a->r);
    return a->last <= a->at_most;
}

/* Three tasks of different CPU demands (three scheduling classes, so three
 * workers) napping at once on a 1-CPU node; their refs in out. */
static void three_nappers(const harness_cluster *c, const char *path, uint64_t ms, rayc_ref out[3])
{
    const double cpus[3] = {0.2, 0.25, 0.3};
    for (int i = 0; i < 3; i++) {
        rayc_task_opts o = {.num_cpus = cpus[i]};
        rayc_arg a[] = {RAYC_VAL(path, strlen(path)), RAYC_VAL(&ms, sizeof(ms)),
                        RAYC_VAL(c->raylets[0].node_id, strlen(c->raylets[0].node_id))};
        submit("mark_nap", a, 3, &o, &out[i]);
    }
}

static void one_node(harness_cluster *c, const char *const extra[])
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    harness_raylet_start(c, extra);
    wait_cluster(c);
    driver_init(c->address);
}

/* Workers beyond num_cpus exit once idle for idle_worker_timeout_ms. */
Test(multinode, idle_workers_beyond_num_cpus_exit)
{
    harness_cluster c;
    const char *const extra[] = {"--idle-worker-timeout-ms=300", NULL};
    one_node(&c, extra);
    char path[HARNESS_PATH];
    test_file(path, "nappers");
    rayc_ref r[3];
    three_nappers(&c, path, 1500, r);
    struct lines_arg la = {path, 3};
    cr_assert(harness_wait_until(has_lines, &la, SLACK_MS), "three tasks never ran at once");
    int peak = workers_of(&c.raylets[0]);
    cr_assert_geq(peak, 3, "%d workers for three concurrent tasks", peak);
    rayc_value v[3];
    int rc = rayc_get(r, 3, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: %s", rayc_strerror(rc), rayc_last_error());
    for (int i = 0; i < 3; i++)
        rayc_value_release(&v[i]);
    struct workers_arg wa = {&c.raylets[0], 1, 0};
    cr_assert(harness_wait_until(workers_at_most, &wa, SLACK_MS),
              "%d idle workers still run on a 1-CPU node", wa.last);
    for (int i = 0; i < 3; i++)
        rayc_ref_release(r[i]);
    driver_shutdown();
}

/* --max-workers caps the worker processes of a node: three tasks that each
 * want a worker of their own share two, and all finish. */
Test(multinode, max_workers_caps_worker_processes)
{
    harness_cluster c;
    const char *const extra[] = {"--max-workers=2", NULL};
    one_node(&c, extra);
    char path[HARNESS_PATH];
    test_file(path, "nappers");
    rayc_ref r[3];
    three_nappers(&c, path, 1000, r);
    rayc_value v[3];
    int max_seen = 0, ready[3];
    while (rayc_wait(r, 3, 3, 20, ready) < 3) {
        int n = workers_of(&c.raylets[0]);
        max_seen = n > max_seen ? n : max_seen;
        cr_assert_leq(n, 2, "%d worker processes with --max-workers=2", n);
    }
    int rc = rayc_get(r, 3, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: %s", rayc_strerror(rc), rayc_last_error());
    for (int i = 0; i < 3; i++) {
        rayc_value_release(&v[i]);
        rayc_ref_release(r[i]);
    }
    cr_log_info("at most %d workers seen", max_seen);
    driver_shutdown();
}

struct status_arg {
    const harness_cluster *c;
    const char *want;
    char *last;
};

static bool status_says(void *arg)
{
    struct status_arg *a = arg;
    char addr[96], tok[HARNESS_PATH + 16];
    snprintf(addr, sizeof(addr), "--address=%s", a->c->address);
    snprintf(tok, sizeof(tok), "--token-file=%s", a->c->token_file);
    const char *args[] = {"status", addr, tok, NULL};
    char *out = NULL, *err = NULL;
    int rc = harness_rayc(&out, &err, args);
    free(a->last);
    a->last = out;
    free(err);
    return rc == 0 && out && strstr(out, a->want) != NULL;
}

/* `rayc status` counts pending tasks: three tasks no node can run yet are
 * "3 pending tasks" in its summary (docs/cli.md). */
Test(multinode, status_counts_pending_tasks)
{
    harness_cluster c;
    one_node(&c, NULL);
    rayc_ref r[3];
    for (int i = 0; i < 3; i++) {
        rayc_task_opts o = {.resources = "later=1"};
        int64_t x = i;
        rayc_arg a = RAYC_VAL(&x, sizeof(x));
        submit("where", &a, 1, &o, &r[i]);
    }
    struct status_arg sa = {&c, "3 pending tasks", NULL};
    bool ok = harness_wait_until(status_says, &sa, SLACK_MS);
    char *last = sa.last;
    cr_assert(ok, "rayc status never said '3 pending tasks':\n%s", last ? last : "");
    free(last);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rayc_cancel(r[i], 0), RAYC_OK);
        rayc_ref_release(r[i]);
    }
    driver_shutdown();
}

/* A driver attached to node 2's raylet (its RAYC_TEMP_DIR's session_latest
 * names node 2's session, which rayc_init prefers): it puts an object and
 * hands the ref over the pipe, then, told node 2 is dead, tries another put
 * and reports its code. */
static int remote_driver(int in, int out, const harness_cluster *c)
{
    char temp[HARNESS_PATH + 16], link[HARNESS_PATH + 32];
    snprintf(temp, sizeof(temp), "%s/driver2tmp", harness_dir());
    mkdir(temp, 0700);
    snprintf(link, sizeof(link), "%s/session_latest", temp);
    if (symlink(c->raylets[2].session, link) != 0)
        return 10;
    /* What `rayc start` writes and rayc_init needs to take a session. */
    char ga[HARNESS_PATH + 32];
    snprintf(ga, sizeof(ga), "%s/gcs_address", c->raylets[2].session);
    if (write_file(ga, c->address, strlen(c->address), 0600) != 0)
        return 17;
    setenv("RAYC_TEMP_DIR", temp, 1);
    rayc_init_opts o = {.address = c->address, .log_to_driver = -1};
    if (rayc_init(&o) != RAYC_OK)
        return 11;
    if (strcmp(rayc_node_id(), c->raylets[2].node_id) != 0)
        return 12;
    static uint8_t buf[200 * 1024];
    pattern_fill(buf, sizeof(buf), 9100);
    rayc_ref r;
    if (rayc_put(buf, sizeof(buf), &r) != RAYC_OK)
        return 13;
    if (write(out, &r, sizeof(r)) != (ssize_t)sizeof(r))
        return 14;
    char go;
    if (read(in, &go, 1) != 1)
        return 15;
    rayc_ref r2;
    int rc = rayc_put(buf, sizeof(buf), &r2);
    if (write(out, &rc, sizeof(rc)) != (ssize_t)sizeof(rc))
        return 16;
    return 0;
}

/* docs/multinode.md: a driver attached to a dead node's raylet loses its
 * connection and the objects it owns: another driver's get of one is
 * RAYC_EOBJECT_LOST (never a hang), and the dead node's driver can no
 * longer put. */
Test(multinode, driver_on_dead_node_loses_its_objects)
{
    harness_cluster c;
    start3(&c, NULL);
    int down[2], up[2];
    cr_assert_eq(pipe(down), 0);
    cr_assert_eq(pipe(up), 0);
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        close(down[1]);
        close(up[0]);
        _exit(remote_driver(down[0], up[1], &c));
    }
    close(down[0]);
    close(up[1]);
    driver_init(c.address); /* after the fork: the child starts a fresh librayc */
    rayc_ref r;
    ssize_t n = read(up[0], &r, sizeof(r));
    if (n != (ssize_t)sizeof(r)) {
        int st = 0;
        waitpid(kid, &st, 0);
        cr_assert_fail("the driver on node 2 failed before its put (exit %d)",
                       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    kill_node(&c, 2);
    char go = 1;
    cr_assert_eq(write(down[1], &go, 1), 1);
    int rc2 = 0;
    bool told = read(up[0], &rc2, sizeof(rc2)) == (ssize_t)sizeof(rc2);
    int st = 0;
    kill(kid, SIGKILL); /* done with it either way */
    waitpid(kid, &st, 0);
    close(down[1]);
    close(up[0]);
    cr_assert(told, "the driver on the dead node never answered");
    cr_assert_neq(rc2, RAYC_OK, "the driver of a dead node could still put");
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, 60000);
    cr_assert_eq(rc, RAYC_EOBJECT_LOST, "get of an object owned by the dead node's driver: %s: %s",
                 rayc_strerror(rc), rayc_last_error());
    driver_shutdown();
}

/* ============================================================ 6. source dies mid-pull */

struct get_job {
    rayc_ref ref;
    int64_t timeout_ms;
    int rc;
    rayc_value v;
    char err[512];
    volatile int done;
};

static void *get_thread(void *arg)
{
    struct get_job *g = arg;
    g->rc = rayc_get(&g->ref, 1, &g->v, g->timeout_ms);
    snprintf(g->err, sizeof(g->err), "%s", rayc_last_error());
    __atomic_store_n(&g->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Start a get of ref in a thread; kill -9 `victim` as soon as the head's
 * store holds at least `size` more bytes than before (the pull is receiving)
 * or the get returned. Then wait for the get (never longer than its own
 * timeout plus slack). Returns whether the kill came while the get was still
 * waiting. */
static bool get_and_kill(harness_cluster *c, struct get_job *g, harness_raylet *victim,
                         uint64_t size, bool *receiving_out)
{
    uint64_t used0 = 0, obj0 = 0;
    cr_assert(store_used(&c->raylets[0], &used0, &obj0), "head store stats");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, get_thread, g), 0);
    uint64_t deadline = now_ms() + SLACK_MS;
    bool receiving = false;
    while (!__atomic_load_n(&g->done, __ATOMIC_ACQUIRE) && now_ms() < deadline) {
        uint64_t used, objs;
        if (store_used(&c->raylets[0], &used, &objs) && used >= used0 + size) {
            receiving = true;
            break;
        }
        msleep(2);
    }
    bool mid = !__atomic_load_n(&g->done, __ATOMIC_ACQUIRE);
    harness_kill9(victim->proc);
    cr_log_info("killed the source %s the head's store %s the object", mid ? "while" : "after",
                receiving ? "was receiving" : "had not yet allocated");
    /* rayc_get's own timeout bounds it; a join past that means a hang. */
    uint64_t join_by = now_ms() + (uint64_t)g->timeout_ms + SLACK_MS;
    while (!__atomic_load_n(&g->done, __ATOMIC_ACQUIRE) && now_ms() < join_by)
        msleep(20);
    cr_assert(__atomic_load_n(&g->done, __ATOMIC_ACQUIRE),
              "rayc_get did not return within its timeout (+%d ms): it hangs", SLACK_MS);
    pthread_join(th, NULL);
    *receiving_out = receiving;
    return mid;
}

/* The object was copied to node 2 before the pull from node 1 started:
 * the pull moves to node 2 (or the object is rebuilt); the bytes are exact. */
Test(multinode, slow_pull_source_dies_other_copy_used, .timeout = 420)
{
    harness_slow_test();
    harness_cluster c;
    const char *const big[] = {"--object-store-memory=2G", "--log-level=debug", NULL};
    const char *const *extra[3] = {big, big, big};
    /* 1 GiB objects written and checked on three nodes of two vCPUs, each
     * also pre-faulting a 2 GiB store: give a loaded raylet more than the
     * usual 2 s before it counts as dead (the kill below is real). */
    start3_health(&c, extra, 6000);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);

    uint64_t size = GIB, seed = 6001;
    rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
    rayc_task_opts o = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id, .soft = 1};
    rayc_ref made[2];
    submit("make_pattern", a, 2, &o, made);
    /* Node 2 checks it: a second copy lives there. */
    rayc_task_opts o2 = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
    rayc_arg ca[] = {RAYC_REF(made[0]), RAYC_VAL(&seed, sizeof(seed))};
    rayc_ref chk[2];
    submit("check_pattern", ca, 2, &o2, chk);
    rayc_value v[2];
    int rc = rayc_get(chk, 2, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "check on node 2: %s: %s", rayc_strerror(rc), rayc_last_error());
    int64_t bad;
    memcpy(&bad, v[0].data, sizeof(bad));
    cr_assert_eq(bad, -1, "node 2's copy differs at %lld", (long long)bad);
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    rayc_ref_release(chk[0]);
    rayc_ref_release(chk[1]);

    struct get_job g = {.ref = made[0], .timeout_ms = LONG_MS};
    bool receiving;
    bool mid = get_and_kill(&c, &g, &c.raylets[1], size, &receiving);
    /* The claim is about a pull that loses its source mid-transfer. */
    cr_assert(mid && receiving, "the kill did not come mid-transfer (get %s, head %s)",
              mid ? "waiting" : "done", receiving ? "receiving" : "not receiving yet");
    cr_assert_neq(g.rc, RAYC_ETIMEDOUT, "rayc_get timed out after the source died: %s", g.err);
    cr_assert_eq(g.rc, RAYC_OK, "rayc_get after the source died (%s): %s: %s",
                 mid ? "mid-transfer" : "after the transfer", rayc_strerror(g.rc), g.err);
    cr_assert_eq(g.v.size, size);
    long long off = pattern_check(g.v.data, size, seed);
    cr_assert_eq(off, -1, "the object read after its source died differs at %lld", off);
    rayc_value_release(&g.v);
    char log[HARNESS_PATH + 32], hex[ID_HEX_MAX];
    raylet_log(&c.raylets[0], log, sizeof(log));
    id_hex(made[0].id, OBJECT_ID_SIZE, hex);
    cr_log_info("the head's log mentions the object %d time(s) (see %s)", count_in_file(log, hex),
                log);
    rayc_ref_release(made[0]);
    rayc_ref_release(made[1]);
    driver_shutdown();
}

/* The only copy is on node 1, made by a task pinned there (hard): when node
 * 1 dies mid-transfer, the get fails cleanly with RAYC_EOBJECT_LOST (the
 * hard pin leaves no lineage to run elsewhere); it never hangs. */
Test(multinode, slow_pull_source_dies_only_copy_never_hangs, .timeout = 420)
{
    harness_slow_test();
    harness_cluster c;
    const char *const big[] = {"--object-store-memory=2G", "--log-level=debug", NULL};
    const char *const *extra[3] = {big, big, NULL};
    /* 1 GiB objects written and checked on three nodes of two vCPUs, each
     * also pre-faulting a 2 GiB store: give a loaded raylet more than the
     * usual 2 s before it counts as dead (the kill below is real). */
    start3_health(&c, extra, 6000);
    driver_init(c.address);
    assert_driver_on_head(&c);
    pinned_probe(&c);

    uint64_t size = GIB, seed = 6002;
    rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
    rayc_task_opts o = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id};
    rayc_ref made[2];
    submit("make_pattern", a, 2, &o, made);
    rayc_value nv;
    int rc = rayc_get(&made[1], 1, &nv, LONG_MS); /* made (the node id is inline) */
    cr_assert_eq(rc, RAYC_OK, "make_pattern on node 1: %s: %s", rayc_strerror(rc),
                 rayc_last_error());
    rayc_value_release(&nv);

    struct get_job g = {.ref = made[0], .timeout_ms = 60000};
    bool receiving;
    bool mid = get_and_kill(&c, &g, &c.raylets[1], size, &receiving);
    cr_assert(mid && receiving, "the kill did not come mid-transfer (get %s, head %s)",
              mid ? "waiting" : "done", receiving ? "receiving" : "not receiving yet");
    cr_assert_neq(g.rc, RAYC_ETIMEDOUT,
                  "rayc_get of an object whose only holder died mid-transfer timed out: %s", g.err);
    /* Its producer was pinned to node 1 without `soft`: no lineage to run
     * elsewhere (docs/multinode.md), so the object is lost. */
    cr_assert_eq(g.rc, RAYC_EOBJECT_LOST, "rayc_get: %s: %s (want EOBJECT_LOST)",
                 rayc_strerror(g.rc), g.err);
    rayc_ref_release(made[0]);
    rayc_ref_release(made[1]);
    driver_shutdown();
}

/* ============================================================ 7. namespaces */

/*
 * Each raylet runs in a network namespace of its own (`ip netns exec`), with
 * a veth pair whose outer end is on a bridge in the root namespace. The
 * bridge holds 10.200.X.1/24 (X picked free on this machine), where the GCS
 * listens; raylet i listens on 10.200.X.(11+i). Redis stays on its Unix
 * socket; the driver runs here and reaches its raylet's Unix socket (paths
 * cross namespaces). Only addresses created here are ever used.
 *
 * Names carry this test process's pid (rcmn<pid>_<i>, rcbr<pid>, rcv<pid>_<i>)
 * so a later run can remove what a crashed run left behind.
 */
#define NNS 3
static char g_ns[NNS][32];
static int g_nns;
static char g_br[16];
static int g_subnet = -1;

/* Run a shell command quietly (output to <test dir>/netns.log); exit code. */
static int shf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shf(const char *fmt, ...)
{
    char cmd[1024], full[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char log[HARNESS_PATH + 16] = "/dev/null";
    if (harness_dir()[0] && access(harness_dir(), W_OK) == 0)
        snprintf(log, sizeof(log), "%s/netns.log", harness_dir());
    snprintf(full, sizeof(full), "(%s) >>'%s' 2>&1", cmd, log);
    int st = system(full);
    return st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128);
}

static bool pid_gone(const char *digits)
{
    char *end;
    long pid = strtol(digits, &end, 10);
    return pid > 0 && (*end == '\0' || *end == '_' || *end == ' ') && kill((pid_t)pid, 0) != 0 &&
           errno == ESRCH;
}

/* Remove namespaces and bridges that runs which no longer exist left. */
static void netns_sweep_stale(void)
{
    FILE *f = popen("ip netns list 2>/dev/null", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "rcmn", 4) == 0 && pid_gone(line + 4)) {
            line[strcspn(line, " \n")] = '\0';
            shf("ip netns del %s", line);
        }
    if (f)
        pclose(f);
    f = popen("ip -o link show type bridge 2>/dev/null", "r");
    while (f && fgets(line, sizeof(line), f)) {
        char *name = strchr(line, ' ');
        if (name && strncmp(name + 1, "rcbr", 4) == 0 && pid_gone(name + 5)) {
            name++;
            name[strcspn(name, ":@ ")] = '\0';
            shf("ip link del %s", name);
        }
    }
    if (f)
        pclose(f);
}

static void netns_cleanup(void)
{
    for (int i = 0; i < g_nns; i++)
        shf("ip netns del %s", g_ns[i]); /* takes its veth pair with it */
    g_nns = 0;
    if (g_br[0])
        shf("ip link del %s", g_br);
    g_br[0] = '\0';
}

static void netns_fini(void)
{
    harness_stop_all(); /* nothing may run in a namespace we remove */
    netns_cleanup();
    harness_teardown();
}

TestSuite(netns, .init = harness_setup, .fini = netns_fini, .timeout = 300);

/* A /24 of 10.200.0.0/16 no interface of this machine uses. */
static int free_subnet(void)
{
    for (int k = 0; k < 200; k++) {
        int x = 20 + (int)((getpid() + k) % 200);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ip -4 -o addr show | grep -q ' 10\\.200\\.%d\\.'", x);
        if (shf("%s", cmd) == 1) /* grep found nothing */
            return x;
    }
    return -1;
}

/* Skip (a user's machine without root or namespaces), or fail where the
 * namespaces are required: CI runs as root and sets RAYC_TEST_REQUIRE_NETNS=1,
 * so a broken setup there is a failure, not a quiet pass. */
#define NETNS_UNAVAILABLE(...)                                                                     \
    do {                                                                                           \
        if (getenv("RAYC_TEST_REQUIRE_NETNS") && atoi(getenv("RAYC_TEST_REQUIRE_NETNS")) > 0)      \
            cr_assert_fail(__VA_ARGS__);                                                           \
        cr_skip_test(__VA_ARGS__);                                                                 \
    } while (0)

static void netns_setup(void)
{
    if (geteuid() != 0)
        NETNS_UNAVAILABLE("network namespaces need root (euid %d)", (int)geteuid());
    netns_sweep_stale();
    int pid = (int)getpid();
    snprintf(g_ns[0], sizeof(g_ns[0]), "rcmn%d_probe", pid);
    if (shf("ip netns add %s", g_ns[0]) != 0)
        NETNS_UNAVAILABLE(
            "cannot create network namespaces here (ip netns add failed; see %s/netns.log)",
            harness_dir());
    shf("ip netns del %s", g_ns[0]);
    g_subnet = free_subnet();
    cr_assert(g_subnet > 0, "no free 10.200.x.0/24 subnet on this machine");
    snprintf(g_br, sizeof(g_br), "rcbr%d", pid);
    cr_assert_eq(shf("ip link add %s type bridge && ip addr add 10.200.%d.1/24 dev %s && "
                     "ip link set %s up",
                     g_br, g_subnet, g_br, g_br),
                 0, "bridge %s (see %s/netns.log)", g_br, harness_dir());
    for (int i = 0; i < NNS; i++) {
        snprintf(g_ns[i], sizeof(g_ns[i]), "rcmn%d_%d", pid, i);
        g_nns = i + 1;
        int rc = shf("ip netns add %1$s && "
                     "ip link add rcv%2$d_%3$d type veth peer name rcq%2$d_%3$d netns %1$s && "
                     "ip link set rcv%2$d_%3$d master %4$s && ip link set rcv%2$d_%3$d up && "
                     "ip -n %1$s addr add 10.200.%5$d.%6$d/24 dev rcq%2$d_%3$d && "
                     "ip -n %1$s link set rcq%2$d_%3$d up && ip -n %1$s link set lo up",
                     g_ns[i], pid, i, g_br, g_subnet, 11 + i);
        cr_assert_eq(rc, 0, "namespace %s (see %s/netns.log)", g_ns[i], harness_dir());
    }
}

/* Restart the GCS listening on the bridge address instead of loopback. */
static void gcs_on_bridge(harness_cluster *c)
{
    static char ip_arg[64];
    snprintf(ip_arg, sizeof(ip_arg), "--node-ip-address=10.200.%d.1", g_subnet);
    char *argv[HARNESS_MAX_ARGS + 1];
    int n = 0;
    for (; c->gcs->argv[n]; n++)
        argv[n] =
            strncmp(c->gcs->argv[n], "--node-ip-address=", 18) == 0 ? ip_arg : c->gcs->argv[n];
    argv[n] = NULL;
    harness_kill9(c->gcs);
    c->gcs = harness_spawn("gcs_bridge", c->gcs->out, argv);
    static char host[32];
    snprintf(host, sizeof(host), "10.200.%d.1", g_subnet);
    g_gcs_host = host;
    snprintf(c->address, sizeof(c->address), "%s:%d", host, c->port);
    uint64_t deadline = now_ms() + SLACK_MS;
    for (;;) {
        bconn *b = gcs_connect(c);
        if (b) {
            bconn_close(b);
            break;
        }
        cr_assert(harness_alive(c->gcs), "gcs_server on %s exited (see %s)", host, c->gcs->out);
        cr_assert(now_ms() < deadline, "gcs_server on %s not ready (see %s)", host, c->gcs->out);
        msleep(20);
    }
}

/* A raylet inside namespace i; waits for its raylet.ready. */
static harness_raylet *netns_raylet(harness_cluster *c, int i)
{
    harness_raylet *r = &c->raylets[c->nraylets];
    char path[HARNESS_PATH + 32];
    char session[HARNESS_PATH];
    snprintf(session, sizeof(session), "%s/node%d", harness_dir(), c->nraylets);
    snprintf(r->session, sizeof(r->session), "%s", session);
    snprintf(path, sizeof(path), "%s/logs", session);
    cr_assert(mkdir_p(path, 0700) == 0);
    snprintf(path, sizeof(path), "%s/sockets", session);
    cr_assert(mkdir_p(path, 0700) == 0);
    snprintf(r->token_file, sizeof(r->token_file), "%s/token", session);
    cr_assert(write_file(r->token_file, c->token, strlen(c->token), 0600) == 0);
    snprintf(r->socket, sizeof(r->socket), "%s/sockets/raylet", session);
    char a[9][HARNESS_PATH + 40];
    snprintf(a[0], sizeof(a[0]), "%s/bin/raylet", harness_build());
    snprintf(a[1], sizeof(a[1]), "--gcs-address=%s", c->address);
    snprintf(a[2], sizeof(a[2]), "--token-file=%s", r->token_file);
    snprintf(a[3], sizeof(a[3]), "--session-dir=%s", r->session);
    snprintf(a[4], sizeof(a[4]), "--health-timeout-ms=%d", c->health_timeout_ms);
    snprintf(a[5], sizeof(a[5]), "--heartbeat-interval-ms=%d", c->heartbeat_interval_ms);
    snprintf(a[6], sizeof(a[6]), "--node-ip-address=10.200.%d.%d", g_subnet, 11 + i);
    char *argv[] = {"/usr/sbin/ip",
                    "netns",
                    "exec",
                    g_ns[i],
                    a[0],
                    a[1],
                    a[2],
                    a[3],
                    a[4],
                    a[5],
                    a[6],
                    "--num-cpus=1",
                    "--object-store-memory=128M",
                    "--gcs-reconnect-max-ms=200",
                    i == 0 ? "--head" : NULL,
                    NULL};
    if (access(argv[0], X_OK) != 0)
        argv[0] = "/sbin/ip";
    snprintf(path, sizeof(path), "%s/logs/raylet.err", r->session);
    char name[32];
    snprintf(name, sizeof(name), "raylet%d", c->nraylets);
    r->proc = harness_spawn(name, path, argv);
    c->nraylets++;
    snprintf(path, sizeof(path), "%s/raylet.ready", r->session);
    uint64_t deadline = now_ms() + SLACK_MS;
    for (;;) {
        char *s = read_file(path, NULL);
        if (s && strlen(rstrip(s)) == NODE_HEX) {
            snprintf(r->node_id, sizeof(r->node_id), "%s", s);
            free(s);
            return r;
        }
        free(s);
        if (!harness_alive(r->proc)) {
            char line[512];
            cr_assert_fail("raylet in %s exited: %s", g_ns[i],
                           harness_last_line(r->proc, line, sizeof(line)));
        }
        cr_assert(now_ms() < deadline, "raylet in %s not ready (see %s)", g_ns[i], r->proc->out);
        msleep(20);
    }
}

Test(netns, cluster_over_veth_and_a_bridge)
{
    netns_setup();
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    gcs_on_bridge(&c);
    for (int i = 0; i < NNS; i++)
        netns_raylet(&c, i);
    wait_cluster(&c);
    driver_init(c.address);
    assert_driver_on_head(&c);

    /* The node table holds the namespaces' addresses. */
    rayc_node_info nodes[8];
    size_t nn = 0;
    int rc = rayc_nodes(nodes, 8, &nn);
    cr_assert_eq(rc, RAYC_OK, "rayc_nodes: %s: %s", rayc_strerror(rc), rayc_last_error());
    cr_assert_eq(nn, (size_t)NNS);
    for (int i = 0; i < NNS; i++) {
        char want[32];
        snprintf(want, sizeof(want), "10.200.%d.%d:", g_subnet, 11 + i);
        bool found = false;
        for (size_t k = 0; k < nn; k++)
            if (strcmp(nodes[k].node_id, c.raylets[i].node_id) == 0) {
                found = true;
                cr_assert(nodes[k].alive);
                cr_assert(strncmp(nodes[k].address, want, strlen(want)) == 0,
                          "node %d listens at %s, want %s...", i, nodes[k].address, want);
            }
        cr_assert(found, "node %d missing from rayc_nodes", i);
    }
    pinned_probe(&c);

    /* SPREAD tasks reach every namespace. */
    enum { N = 300 };
    static rayc_ref refs[N];
    static rayc_value vals[N];
    rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
    for (int64_t i = 0; i < N; i++) {
        rayc_arg a = RAYC_VAL(&i, sizeof(i));
        submit("where", &a, 1, &o, &refs[i]);
    }
    rc = rayc_get(refs, N, vals, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "SPREAD get: %s: %s", rayc_strerror(rc), rayc_last_error());
    int per[NNS] = {0};
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < NNS; k++)
            per[k] += is_node(&vals[i], c.raylets[k].node_id);
        rayc_value_release(&vals[i]);
        rayc_ref_release(refs[i]);
    }
    cr_log_info("SPREAD over namespaces: %d / %d / %d", per[0], per[1], per[2]);
    cr_assert_eq(per[0] + per[1] + per[2], N, "some tasks ran on none of the nodes");
    for (int k = 0; k < NNS; k++)
        cr_assert(per[k] > 0, "no task ran in namespace %s", g_ns[k]);

    /* An object made in namespace 1 crosses the bridge to namespace 2 and to
     * the driver's node (namespace 0), byte-exact. */
    uint64_t size = 5 * MIB + 1, seed = 7007;
    rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
    rayc_task_opts mo = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id};
    rayc_ref made[2], chk[2];
    submit("make_pattern", a, 2, &mo, made);
    rayc_task_opts co = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
    rayc_arg ca[] = {RAYC_REF(made[0]), RAYC_VAL(&seed, sizeof(seed))};
    submit("check_pattern", ca, 2, &co, chk);
    rayc_value v[2];
    rc = rayc_get(chk, 2, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "check in namespace 2: %s: %s", rayc_strerror(rc), rayc_last_error());
    int64_t bad;
    memcpy(&bad, v[0].data, sizeof(bad));
    cr_assert_eq(bad, -1, "namespace 2 saw the object differ at %lld", (long long)bad);
    char buf[80];
    cr_assert(is_node(&v[1], c.raylets[2].node_id), "check ran on %s",
              value_str(&v[1], buf, sizeof(buf)));
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    rc = rayc_get(made, 2, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "driver get: %s: %s", rayc_strerror(rc), rayc_last_error());
    cr_assert_eq(v[0].size, size);
    long long off = pattern_check(v[0].data, size, seed);
    cr_assert_eq(off, -1, "the driver's copy differs at %lld", off);
    cr_assert(is_node(&v[1], c.raylets[1].node_id));
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    for (int i = 0; i < 2; i++) {
        rayc_ref_release(made[i]);
        rayc_ref_release(chk[i]);
    }
    driver_shutdown();
}
