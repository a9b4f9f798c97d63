/*
 * test_spill.c -- spilling and restoring off the raylet's loop (issue 13;
 * docs/object_store.md "Memory pressure"): while the store's disk is stalled
 * in the middle of a spill or a restore, the raylet keeps serving -- store
 * statistics, a task from submit to result, a read of the very object being
 * written, the GCS's health checks -- and the put or get that needs the disk
 * waits, then completes byte-exact once the disk moves again.
 *
 * The stalled disk is the raylet's `spill_hold_file` (testing): its I/O
 * thread starts no spill job while that file exists. With the writes on the
 * loop thread (before), the first stats request after the spill began would
 * have gone unanswered for as long as the disk stalled. Nothing here
 * asserts a duration: waits poll a condition up to a generous bound.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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

#define MIB      ((size_t)1 << 20)
#define OBJ      (9 * MIB) /* three fit in the 32 MiB store, a fourth spills one */
#define SLACK_MS 15000     /* generous: a busy 2-vCPU machine; never a speed test */

TestSuite(spill, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

static char g_hold[HARNESS_PATH + 32];

static void hold_disk(void)
{
    int fd = open(g_hold, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", g_hold, strerror(errno));
    close(fd);
}

static void release_disk(void)
{
    cr_assert_eq(unlink(g_hold), 0, "%s: %s", g_hold, strerror(errno));
}

static harness_raylet *start(harness_cluster *c)
{
    snprintf(g_hold, sizeof(g_hold), "%s/disk-stalled", harness_dir());
    char flag[HARNESS_PATH + 64];
    snprintf(flag, sizeof(flag), "--spill-hold-file=%s", g_hold);
    const char *const extra[] = {"--object-store-memory=32M", "--store-full-wait-ms=120000", flag,
                                 NULL};
    harness_cluster_init(c);
    harness_cluster_start(c);
    harness_raylet *r = harness_raylet_start(c, extra);
    setenv("RAYC_TOKEN_FILE", c->token_file, 1);
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_ADDRESS");
    char temp[HARNESS_PATH + 16];
    snprintf(temp, sizeof(temp), "%s/drivertmp", harness_dir());
    mkdir(temp, 0700);
    setenv("RAYC_TEMP_DIR", temp, 1);
    char lib[HARNESS_PATH];
    snprintf(lib, sizeof(lib), "%s/examples/libtestlib_tasks.so", harness_build());
    const char *code[] = {lib, NULL};
    rayc_init_opts o = {.address = c->address, .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
    return r;
}

typedef struct {
    uint64_t used, objects, spilled_objects, restored_objects, spilling, restoring;
} stats_t;

/* The raylet's store statistics; the test fails if it does not answer. */
static stats_t store_stats(const harness_raylet *r)
{
    Rpc__StoreStatsReply *s = harness_store_stats(r);
    cr_assert(s != NULL, "STORE_STATS_REQ to %s got no answer", r->socket);
    stats_t st = {s->used,
                  s->objects,
                  s->spilled_objects,
                  s->restored_objects,
                  s->spilling_objects,
                  s->restoring_objects};
    msg_free(&s->base);
    return st;
}

struct cond {
    const harness_raylet *r;
    stats_t last;
    bool restoring;   /* wait for a restore in flight, else a spill */
    uint64_t objects; /* objects_are: this many in the store */
};

static bool objects_are(void *arg)
{
    struct cond *c = arg;
    c->last = store_stats(c->r);
    return c->last.objects == c->objects;
}

/* The object's spill file exists (the default spill dir, <session>/spill). */
static bool spilled_file(const harness_raylet *r, rayc_ref ref)
{
    char hex[ID_HEX_MAX], path[2 * HARNESS_PATH];
    id_hex(ref.id, OBJECT_ID_SIZE, hex);
    snprintf(path, sizeof(path), "%s/spill/%s.obj", r->session, hex);
    return access(path, F_OK) == 0;
}

static bool in_flight(void *arg)
{
    struct cond *c = arg;
    c->last = store_stats(c->r);
    return c->restoring ? c->last.restoring > 0 : c->last.spilling > 0;
}

static void put_pattern(size_t size, uint64_t seed, rayc_ref *ref)
{
    void *buf = NULL;
    int rc = rayc_put_alloc(size, &buf, ref);
    cr_assert_eq(rc, RAYC_OK, "rayc_put_alloc(%zu): %s: %s", size, rayc_strerror(rc),
                 rayc_last_error());
    pattern_fill(buf, size, seed);
    cr_assert_eq(rayc_put_seal(*ref), RAYC_OK, "seal: %s", rayc_last_error());
}

static void get_check(rayc_ref ref, size_t size, uint64_t seed, const char *what)
{
    rayc_value v;
    int rc = rayc_get(&ref, 1, &v, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: rayc_get: %s: %s", what, rayc_strerror(rc), rayc_last_error());
    cr_assert_eq(v.status, RAYC_OK, "%s", what);
    cr_assert_eq(v.size, size, "%s: size %zu, want %zu", what, v.size, size);
    long long bad = pattern_check(v.data, size, seed);
    cr_assert_eq(bad, -1, "%s: differs at offset %lld", what, bad);
    rayc_value_release(&v);
}

/* A small task, submit to result, through the raylet. */
static void run_a_task(const char *when)
{
    rayc_ref ref;
    int rc = rayc_submit("noop", NULL, 0, NULL, &ref);
    cr_assert_eq(rc, RAYC_OK, "%s: rayc_submit: %s", when, rayc_last_error());
    rayc_value v;
    rc = rayc_get(&ref, 1, &v, 60000);
    cr_assert_eq(rc, RAYC_OK, "%s: the task: %s: %s", when, rayc_strerror(rc), rayc_last_error());
    rayc_value_release(&v);
    rayc_ref_release(ref);
}

/* A put or get on another thread, waiting for the disk. */
typedef struct {
    rayc_ref ref;
    uint64_t seed;
    int rc;
    char err[256];
    _Atomic bool done;
} job;

static void *put_main(void *arg)
{
    job *j = arg;
    void *buf = NULL;
    j->rc = rayc_put_alloc(OBJ, &buf, &j->ref);
    if (j->rc == RAYC_OK) {
        pattern_fill(buf, OBJ, j->seed);
        j->rc = rayc_put_seal(j->ref);
    }
    snprintf(j->err, sizeof(j->err), "%s", j->rc ? rayc_last_error() : "");
    atomic_store(&j->done, true);
    return NULL;
}

static void *get_main(void *arg)
{
    job *j = arg;
    rayc_value v;
    j->rc = rayc_get(&j->ref, 1, &v, 120000);
    if (j->rc == RAYC_OK) {
        if (v.size != OBJ || pattern_check(v.data, OBJ, j->seed) != -1)
            j->rc = RAYC_EIO;
        rayc_value_release(&v);
    }
    snprintf(j->err, sizeof(j->err), "%s", j->rc ? rayc_last_error() : "");
    atomic_store(&j->done, true);
    return NULL;
}

/* The node is ALIVE in the GCS (its heartbeats are answered in time). */
static void node_alive(harness_cluster *c, const harness_raylet *r, const char *when)
{
    cr_assert_eq(harness_node_state(c, r->node_id), RPC__NODE_STATE__NODE_ALIVE,
                 "%s: the GCS does not see the node alive", when);
}

Test(spill, the_raylet_keeps_serving_while_its_disk_stalls)
{
    harness_cluster c;
    harness_raylet *r = start(&c);
    rayc_ref refs[4];
    for (int i = 0; i < 3; i++)
        put_pattern(OBJ, 7700 + (uint64_t)i, &refs[i]);
    cr_assert_eq(store_stats(r).spilled_objects, 0);

    /* A fourth object needs a spill, and the disk stalls under it. */
    hold_disk();
    job put = {.seed = 7703};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, put_main, &put), 0);
    struct cond w = {.r = r};
    cr_assert(harness_wait_until(in_flight, &w, SLACK_MS), "no spill started (%llu objects)",
              (unsigned long long)w.last.objects);
    /* The raylet serves everything else meanwhile. */
    stats_t st = store_stats(r);
    cr_assert_eq(st.spilling, 1, "answered while the spill is stalled");
    cr_assert_eq(st.spilled_objects, 0);
    run_a_task("during a stalled spill");
    get_check(refs[0], OBJ, 7700, "the object being spilled, read meanwhile");
    get_check(refs[2], OBJ, 7702, "another object");
    node_alive(&c, r, "during a stalled spill");
    cr_assert(!atomic_load(&put.done), "the put that needs the spill waits for it");
    cr_assert_eq(store_stats(r).spilling, 1);

    /* The disk moves: the put goes through. */
    release_disk();
    pthread_join(th, NULL);
    cr_assert_eq(put.rc, RAYC_OK, "the put after the spill: %s: %s", rayc_strerror(put.rc),
                 put.err);
    refs[3] = put.ref;
    st = store_stats(r);
    cr_assert_geq(st.spilled_objects, 1);
    cr_assert_eq(st.spilling, 0);

    /* A restore stalls the same way: the get waits, nothing else does.
     * Object 0 or 1 is on disk now (0 stayed in memory if the read above
     * still pinned it when its write was done, then 1 went instead). Room
     * for it first: object 2 goes, so the restore needs no spill. */
    int spilled = spilled_file(r, refs[0]) ? 0 : 1;
    cr_assert(spilled_file(r, refs[spilled]), "neither object 0 nor 1 is in a spill file");
    rayc_ref_release(refs[2]);
    w = (struct cond){.r = r, .objects = 3};
    cr_assert(harness_wait_until(objects_are, &w, SLACK_MS), "object 2 is not freed (%llu left)",
              (unsigned long long)w.last.objects);
    hold_disk();
    job get = {.ref = refs[spilled], .seed = 7700 + (uint64_t)spilled};
    cr_assert_eq(pthread_create(&th, NULL, get_main, &get), 0);
    w = (struct cond){.r = r, .restoring = true};
    cr_assert(harness_wait_until(in_flight, &w, SLACK_MS), "no restore started");
    run_a_task("during a stalled restore");
    node_alive(&c, r, "during a stalled restore");
    cr_assert(!atomic_load(&get.done), "the get waits for the disk, it does not fail");
    cr_assert_eq(store_stats(r).restoring, 1);
    release_disk();
    pthread_join(th, NULL);
    cr_assert_eq(get.rc, RAYC_OK, "the get after the restore: %s: %s", rayc_strerror(get.rc),
                 get.err);
    cr_assert(!spilled_file(r, refs[spilled]), "the file goes with the restore");

    /* Everything reads back exact, and nothing is left in flight. */
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue; /* released */
        char what[64];
        snprintf(what, sizeof(what), "object %d at the end", i);
        get_check(refs[i], OBJ, 7700 + (uint64_t)i, what);
    }
    st = store_stats(r);
    cr_assert_eq(st.spilling + st.restoring, 0);
    cr_assert_geq(st.restored_objects, 1);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            rayc_ref_release(refs[i]);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}
