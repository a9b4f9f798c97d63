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
#include <dirent.h>
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

/* n raylets (node 0 the head) with extra flags each; returns once every
 * node is ALIVE and has heartbeated twice since (its view holds all). */
static void start_nodes_health(harness_cluster *c, int n, const char *const *extra, int health_ms)
{
    harness_cluster_init(c);
    if (health_ms > c->health_timeout_ms)
        c->health_timeout_ms = health_ms;
    harness_cluster_start(c);
    for (int i = 0; i < n; i++)
        harness_raylet_start(c, extra);
    harness_wait_nodes_settled(c, SLACK_MS);
    driver_env(c);
}

static void start_nodes(harness_cluster *c, int n, const char *const *extra)
{
    start_nodes_health(c, n, extra, 0);
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
        if (a->c->raylets[k].proc->reaped)
            continue; /* killed by the test */
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

/* ============================================================ soak */

/* The map/reduce soak of issue 18, bounded: rounds of SOAK_MAPS SPREAD maps
 * (1-4 MiB pattern objects, max_retries 5) and SOAK_MAPS/10 reduces of ten
 * maps each by reference, on 3 nodes of 2 CPUs and a SOAK_STORE store each
 * (a round's objects do not fit one node's store), every result checked
 * against a value computed here and every get bounded. Optionally a thread
 * kills a random worker of the cluster every 200-500 ms. After the job every
 * node must hold no task and no object. Sizes grow with RAYC_SOAK_SCALE. */
#define SOAK_MAPS_MAX 600
#define SOAK_FANIN    10

/* A knob of the soak from the environment (RAYC_SOAK_*), else def. */
static int soak_knob(const char *name, int def, int max)
{
    const char *v = getenv(name);
    int n = v && *v ? atoi(v) : def;
    return n > 0 && n <= max ? n : def;
}

static uint64_t soak_size(uint64_t seed)
{
    return (1 + seed % 4) * MIB - (seed * 7919) % 4096;
}

struct killer {
    pthread_t th;
    volatile bool stop;
    int kills;
};

/* A random live rayc_worker of this test (its environment carries our tag). */
static pid_t pick_worker(unsigned *rnd)
{
    char tag[HARNESS_PATH + 32];
    snprintf(tag, sizeof(tag), "RAYC_HARNESS_TAG=%s", harness_dir());
    pid_t found[256];
    int n = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < 256;) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        bool worker = fgets(comm, sizeof(comm), f) && strncmp(comm, "rayc_worker", 11) == 0;
        fclose(f);
        if (!worker)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
        size_t len = 0;
        char *env = read_file(path, &len);
        bool ours = false;
        for (size_t off = 0; env && off < len && !ours; off += strlen(env + off) + 1)
            ours = strcmp(env + off, tag) == 0;
        free(env);
        if (ours)
            found[n++] = pid;
    }
    closedir(d);
    return n ? found[rand_r(rnd) % (unsigned)n] : 0;
}

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    unsigned rnd = 18;
    while (!k->stop) {
        struct timespec ts = {0, (long)(400 + rand_r(&rnd) % 500) * 1000000L};
        nanosleep(&ts, NULL);
        pid_t pid = pick_worker(&rnd);
        if (pid > 0 && kill(pid, SIGKILL) == 0)
            k->kills++;
    }
    return NULL;
}

/* Kill node `victim`'s raylet (kill -9: its workers and objects go with it)
 * and start a new node in its place. */
static void replace_node(harness_cluster *c, int victim, const char *const *extra)
{
    harness_kill9(c->raylets[victim].proc);
    cr_assert(c->nraylets < HARNESS_MAX_RAYLETS);
    harness_raylet_start(c, extra);
}

static void soak(bool kills, bool raylet_kill)
{
    /* Sanitized daemons are several times slower: a smaller soak (same
     * ratio of a round's bytes to the stores). */
    bool san = getenv("RAYC_TEST_SANITIZER") != NULL;
    int nmaps =
        soak_knob("RAYC_SOAK_MAPS", san ? 100 : 300, SOAK_MAPS_MAX) / SOAK_FANIN * SOAK_FANIN;
    int rounds = soak_knob("RAYC_SOAK_ROUNDS", 3, 100);
    char store[64];
    snprintf(store, sizeof(store), "--object-store-memory=%dM",
             soak_knob("RAYC_SOAK_STORE_MB", san ? 48 : 128, 4096));
    harness_cluster c;
    const char *extra[] = {"--num-cpus=2", store, NULL};
    /* As the soak: a busy node must not be taken for dead (a
     * raylet killed on purpose is found after this long). */
    start_nodes_health(&c, 3, extra, 5000);
    driver_init(&c);
    struct killer k = {0};
    if (kills)
        cr_assert_eq(pthread_create(&k.th, NULL, killer_main, &k), 0);
    static rayc_ref maps[SOAK_MAPS_MAX], reds[SOAK_MAPS_MAX / SOAK_FANIN];
    static uint64_t seeds[SOAK_MAPS_MAX];
    int right = 0, total = 0;
    for (int round = 0; round < rounds; round++) {
        rayc_task_opts mo = {.num_returns = 2, .strategy = RAYC_SCHED_SPREAD, .max_retries = 20};
        for (int i = 0; i < nmaps; i++) {
            seeds[i] = 1000 * (uint64_t)(round + 1) + (uint64_t)i;
            uint64_t size = soak_size(seeds[i]);
            rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seeds[i], sizeof(seeds[i]))};
            rayc_ref r[2];
            submit("make_pattern", a, 2, &mo, r);
            maps[i] = r[0];
            rayc_ref_release(r[1]);
        }
        rayc_task_opts ro = {.max_retries = 20};
        for (int j = 0; j < nmaps / SOAK_FANIN; j++) {
            rayc_arg a[2 * SOAK_FANIN];
            for (int i = 0; i < SOAK_FANIN; i++) {
                int m = j * SOAK_FANIN + i;
                a[2 * i] = (rayc_arg)RAYC_REF(maps[m]);
                a[2 * i + 1] = (rayc_arg)RAYC_VAL(&seeds[m], sizeof(seeds[m]));
            }
            submit("reduce_digest", a, 2 * SOAK_FANIN, &ro, &reds[j]);
        }
        if (raylet_kill && round == 1)
            replace_node(&c, 2, extra); /* mid-round: maps and reduces in flight */
        for (int j = 0; j < nmaps / SOAK_FANIN; j++) {
            uint64_t want = 0;
            for (int i = 0; i < SOAK_FANIN; i++) {
                uint64_t s = seeds[j * SOAK_FANIN + i];
                want += s * 1000003ULL + soak_size(s);
            }
            rayc_value v;
            int rc = rayc_get(&reds[j], 1, &v, LONG_MS);
            cr_assert_eq(rc, RAYC_OK, "round %d reduce %d: get: %s: %s", round, j,
                         rayc_strerror(rc), rayc_last_error());
            cr_assert_eq(v.status, RAYC_OK, "round %d reduce %d failed: %.*s", round, j,
                         (int)v.size, v.data ? (const char *)v.data : "");
            uint64_t got = 0;
            cr_assert_eq(v.size, sizeof(got));
            memcpy(&got, v.data, sizeof(got));
            cr_assert_eq(got, want, "round %d reduce %d: %llu, want %llu", round, j,
                         (unsigned long long)got, (unsigned long long)want);
            right++;
            rayc_value_release(&v);
            rayc_ref_release(reds[j]);
        }
        total += nmaps / SOAK_FANIN;
        for (int i = 0; i < nmaps; i++)
            rayc_ref_release(maps[i]);
    }
    if (kills) {
        k.stop = true;
        pthread_join(k.th, NULL);
    }
    cr_log_info("soak%s%s: %d of %d reduces right, %d workers killed", kills ? " with kills" : "",
                raylet_kill ? " and a raylet killed" : "", right, total, k.kills);
    int rc = rayc_shutdown();
    cr_assert_eq(rc, RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
    assert_all_empty(&c, "after the soak's job ended");
}

Test(pressure, soak_map_reduce_under_store_pressure)
{
    soak(false, false);
}

Test(pressure, soak_map_reduce_with_worker_kills)
{
    soak(true, false);
}

/* The same with a raylet killed -9 in the middle of the second round (its
 * node's objects and running tasks are lost: retries and lineage
 * reconstruction rebuild them) and a new node started in its place. Slow
 * (about 100 s here): `make test-slow` runs it. */
Test(pressure, slow_soak_map_reduce_with_worker_and_raylet_kills, .timeout = 420)
{
    harness_slow_test();
    soak(true, true);
}

/* ============================================================ SPREAD */

/* Issue 12 item 5: SPREAD spreads from the first task, on a cluster whose
 * nodes just joined and a driver that just connected (no probe first). */
Test(pressure, spread_spreads_from_the_first_task_on_a_cold_cluster)
{
    harness_cluster c;
    start_nodes(&c, 3, NULL);
    driver_init(&c);
    enum { N = 60 };
    rayc_ref refs[N];
    rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
    for (int64_t i = 0; i < N; i++) {
        rayc_arg a = RAYC_VAL(&i, sizeof(i));
        submit("where", &a, 1, &o, &refs[i]);
    }
    int per[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        rayc_value v;
        int rc = rayc_get(&refs[i], 1, &v, SLACK_MS);
        cr_assert_eq(rc, RAYC_OK, "SPREAD task %d: %s", i, rayc_last_error());
        int k = node_of(&c, &v);
        cr_assert(k >= 0, "SPREAD task %d ran on no known node", i);
        per[k]++;
        rayc_value_release(&v);
        rayc_ref_release(refs[i]);
    }
    cr_log_info("cold SPREAD: %d / %d / %d", per[0], per[1], per[2]);
    for (int k = 0; k < 3; k++)
        cr_assert(per[k] >= N / 6, "node %d ran %d of the first %d SPREAD tasks: %d / %d / %d", k,
                  per[k], N, per[0], per[1], per[2]);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}

/* ============================================================ locality */

/* Issue 18: a consumer runs where its argument bytes are (DEFAULT strategy),
 * though the submitting node is idle: node 2 holds 8 MiB of the task's
 * arguments and the head none. */
Test(pressure, consumer_runs_where_its_argument_bytes_are)
{
    harness_cluster c;
    start_nodes(&c, 3, NULL);
    driver_init(&c);
    for (int round = 0; round < 3; round++) {
        int k = 1 + round % 2;
        uint64_t seed = 700 + (uint64_t)round;
        rayc_ref obj = make_on(&c, k, 8 * MIB, seed);
        /* The head's view of node k must show it idle again (the producer
         * that just ran there is over): a node without room is no
         * candidate, whatever it holds. */
        harness_wait_nodes_settled(&c, SLACK_MS);
        rayc_task_opts o = {.num_returns = 2};
        rayc_arg a[] = {RAYC_REF(obj), RAYC_VAL(&seed, sizeof(seed))};
        rayc_ref r[2];
        submit("check_pattern", a, 2, &o, r);
        rayc_value v[2];
        int rc = rayc_get(r, 2, v, SLACK_MS);
        cr_assert_eq(rc, RAYC_OK, "check_pattern: %s", rayc_last_error());
        int64_t bad = 0;
        memcpy(&bad, v[0].data, sizeof(bad));
        cr_assert_eq(bad, -1, "the object differs at %lld", (long long)bad);
        cr_assert_eq(node_of(&c, &v[1]), k,
                     "the consumer of 8 MiB on node %d ran on node %d (round %d)", k,
                     node_of(&c, &v[1]), round);
        rayc_value_release(&v[0]);
        rayc_value_release(&v[1]);
        rayc_ref_release(r[0]);
        rayc_ref_release(r[1]);
        rayc_ref_release(obj);
    }
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}

/* ============================================================ waits say why */

struct status_arg {
    const harness_cluster *c;
    const char *want, *want2;
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
    return rc == 0 && out && strstr(out, a->want) != NULL &&
           (a->want2 == NULL || strstr(out, a->want2) != NULL);
}

/* Issue 18: a dependency wait that cannot progress says why in `rayc
 * status`, and ends once it can. Node 2's 32 MiB store holds a 24 MiB
 * argument of a running task; a second task there needs 16 MiB more: it
 * waits (for room), is listed with its reason, then runs right once the
 * first is done. */
Test(pressure, a_long_dependency_wait_says_why_in_status)
{
    harness_cluster c;
    start_nodes(&c, 3, NULL);
    driver_init(&c);
    rayc_ref big = make_on(&c, 1, 24 * MIB, 801), small = make_on(&c, 1, 16 * MIB, 802);
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
    uint64_t ms = 6000;
    rayc_arg na[] = {RAYC_VAL(&ms, sizeof(ms)), RAYC_REF(big)};
    rayc_ref napped;
    submit("nap", na, 2, &o, &napped);
    uint64_t seed = 802;
    rayc_task_opts o2 = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
    rayc_arg ca[] = {RAYC_REF(small), RAYC_VAL(&seed, sizeof(seed))};
    rayc_ref checked[2];
    submit("check_pattern", ca, 2, &o2, checked);

    char node[16];
    snprintf(node, sizeof(node), "node %.12s", c.raylets[2].node_id);
    struct status_arg sa = {&c, "task check_pattern waits", node, NULL};
    bool ok = harness_wait_until(status_says, &sa, SLACK_MS);
    cr_assert(ok, "rayc status never said why check_pattern waits on %s:\n%s", node,
              sa.last ? sa.last : "");
    cr_log_info("%s", strstr(sa.last, "Waiting for arguments"));
    free(sa.last);

    rayc_value v[2];
    int rc = rayc_get(checked, 2, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "check_pattern after the wait: %s", rayc_last_error());
    int64_t bad = 0;
    memcpy(&bad, v[0].data, sizeof(bad));
    cr_assert_eq(bad, -1, "the copy differs at %lld", (long long)bad);
    cr_assert_eq(node_of(&c, &v[1]), 2);
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    rayc_value nv;
    cr_assert_eq(rayc_get(&napped, 1, &nv, LONG_MS), RAYC_OK);
    rayc_value_release(&nv);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}

/* A job that ends while one of its tasks waits for room for its arguments
 * (and another runs) leaves nothing behind either. */
Test(pressure, job_end_while_a_task_waits_for_its_arguments)
{
    harness_cluster c;
    start_nodes(&c, 3, NULL);
    driver_init(&c);
    rayc_ref big = make_on(&c, 1, 24 * MIB, 901), small = make_on(&c, 1, 16 * MIB, 902);
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
    uint64_t ms = 600000, seed = 902;
    rayc_arg na[] = {RAYC_VAL(&ms, sizeof(ms)), RAYC_REF(big)};
    rayc_ref napped, checked[2];
    submit("nap", na, 2, &o, &napped);
    rayc_task_opts o2 = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
    rayc_arg ca[] = {RAYC_REF(small), RAYC_VAL(&seed, sizeof(seed))};
    submit("check_pattern", ca, 2, &o2, checked);
    char node[16];
    snprintf(node, sizeof(node), "node %.12s", c.raylets[2].node_id);
    struct status_arg sa = {&c, "task check_pattern waits", node, NULL};
    bool ok = harness_wait_until(status_says, &sa, SLACK_MS);
    cr_assert(ok, "check_pattern never waited on %s:\n%s", node, sa.last ? sa.last : "");
    free(sa.last);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
    assert_all_empty(&c, "after a job ended with a task waiting for its arguments");
}
