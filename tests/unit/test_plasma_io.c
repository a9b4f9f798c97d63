/*
 * test_plasma_io.c -- spilling and restoring on the store's I/O thread
 * (raylet/plasma_io.c, plasma_spilling.c; docs/object_store.md): the object
 * being spilled stays readable until its write is done, a read meanwhile
 * keeps it in memory, a delete meanwhile leaves no file, a restore in flight
 * makes gets wait (and pins say "busy"), a failed write keeps the object and
 * pauses spilling, and freeing the store with jobs in flight joins the
 * thread and answers everyone. A 1 MiB store with a real event_base. A job's
 * completion is applied only when the test runs the loop, so "in flight" is
 * a state the tests can look at, not a race, however fast the thread is.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "../../raylet/plasma_store.h"
#include "rayc.h"

#define KIB    1024u
#define MIB    (1u << 20)
#define JOB_MS 200 /* generous time for the thread to remove a file */

static struct event_base *base;
static plasma_store *st;
static rayc_config cfg;
static char spill_dir[64];

static void setup(void)
{
    log_init(NULL, LOG_LEVEL_ERROR);
    base = event_base_new();
    config_defaults(&cfg);
    strcpy(spill_dir, "/tmp/plasma_io_test_XXXXXX");
    cr_assert_not_null(mkdtemp(spill_dir));
    char err[256], sz[32];
    snprintf(sz, sizeof(sz), "%u", MIB);
    cr_assert_eq(config_set(&cfg, "object_store_memory", sz, err, sizeof(err)), 0);
    cr_assert_eq(config_set(&cfg, "spill_dir", spill_dir, err, sizeof(err)), 0);
    cr_assert_eq(config_set(&cfg, "store_full_wait_ms", "5000", err, sizeof(err)), 0);
    st = plasma_store_new(base, &cfg, err, sizeof(err));
    cr_assert_not_null(st, "%s", err);
    cr_assert_eq(plasma_store_start_io(st, err, sizeof(err)), 0, "%s", err);
}

/* .obj files under dir and one level down (the store's own subdirectory). */
static int count_in(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".obj")) {
            n++;
        } else if (depth == 0 && e->d_name[0] != '.') {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
            n += count_in(sub, 1);
        }
    }
    closedir(d);
    return n;
}

static void teardown(void)
{
    plasma_store_free(st);
    cr_assert_eq(count_in(spill_dir, 0), 0, "spill files left behind");
    rmdir(spill_dir);
    event_base_free(base);
    config_free(&cfg);
}

TestSuite(plasma_io, .init = setup, .fini = teardown, .timeout = 30);

static object_id_t oid(int i)
{
    object_id_t id;
    memset(&id, 0, sizeof(id));
    memcpy(id.b, &i, sizeof(i));
    id.b[27] = 0xCD;
    return id;
}

static void fill(uint64_t off, uint64_t size, int seed)
{
    uint8_t *p = plasma_store_base(st) + off;
    for (uint64_t i = 0; i < size; i++)
        p[i] = (uint8_t)(i * 13 + (uint64_t)seed * 5 + (i >> 10));
}

static bool same(uint64_t off, uint64_t size, int seed)
{
    const uint8_t *p = plasma_store_base(st) + off;
    for (uint64_t i = 0; i < size; i++)
        if (p[i] != (uint8_t)(i * 13 + (uint64_t)seed * 5 + (i >> 10)))
            return false;
    return true;
}

/* Create, fill and seal; returns the offset. */
static uint64_t put(plasma_client *cl, int i, uint64_t size)
{
    object_id_t id = oid(i);
    uint64_t off;
    cr_assert_eq(plasma_create(st, cl, &id, size, 0, &off), 0, "create %d: %s", i,
                 rayc_last_error());
    fill(off, size, i);
    cr_assert_eq(plasma_seal(st, cl, &id), 0);
    return off;
}

typedef struct {
    int calls, status;
    uint64_t off;
    plasma_view v;
} result;

static void create_cb(void *arg, uint64_t tag, int status, uint64_t off, const char *msg)
{
    (void)tag, (void)msg;
    result *r = arg;
    r->calls++;
    r->status = status;
    r->off = off;
}

static void get_cb(void *arg, uint64_t tag, int status, const plasma_view *views, size_t n)
{
    (void)tag;
    result *r = arg;
    r->calls++;
    r->status = status;
    if (views && n == 1)
        r->v = views[0];
}

static plasma_stats stats(void)
{
    plasma_stats s;
    plasma_store_stats(st, &s);
    return s;
}

/* Run the loop until *calls reaches want or max_ms pass. */
static void run_until(const int *calls, int want, int max_ms)
{
    for (int i = 0; i < max_ms && *calls < want; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

/* Run the loop until no spill or restore is in flight. */
static void run_until_idle(int max_ms)
{
    for (int i = 0; i < max_ms; i++) {
        plasma_stats s = stats();
        if (s.spilling_objects == 0 && s.restoring_objects == 0)
            return;
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

/* Run the loop long enough for a file removal queued behind to run. */
static void run_for_a_job(void)
{
    struct timeval tv = {0, JOB_MS * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Fill the store with object 1 (600 KiB) and ask for object 2 (600 KiB):
 * 1 starts spilling, 2 waits for it. */
static uint64_t start_a_spill(plasma_client *a, result *r)
{
    uint64_t off = put(a, 1, 600 * KIB);
    object_id_t id2 = oid(2);
    plasma_create_async(st, a, &id2, 600 * KIB, 0, create_cb, r, 0);
    cr_assert_eq(r->calls, 0, "the create waits for the spill");
    cr_assert_eq(stats().spilling_objects, 1);
    return off;
}

Test(plasma_io, the_object_stays_readable_until_its_write_is_done)
{
    plasma_client *a = plasma_client_new(st, NULL);
    result r = {0};
    uint64_t off = start_a_spill(a, &r);
    object_id_t id1 = oid(1), id2 = oid(2);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SEALED, "still in memory");
    cr_assert(same(off, 600 * KIB, 1), "its bytes are untouched while they are written");
    /* a wait counts it (sealed), and other requests are answered meanwhile */
    result g = {0};
    plasma_get(st, a, &id2, 1, 0, get_cb, &g, 0);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, RAYC_ETIMEDOUT);
    run_until(&r.calls, 1, 5000);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_OK);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SPILLED);
    plasma_stats s = stats();
    cr_assert_eq(s.spills, 1);
    cr_assert_eq(s.spilling_objects, 0);
    cr_assert_eq(count_in(spill_dir, 0), 1);
    cr_assert_eq(plasma_seal(st, a, &id2), 0);
    plasma_client_free(a);
    run_until_idle(5000); /* the file removals */
}

Test(plasma_io, a_read_during_the_write_keeps_the_object_in_memory)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    result r = {0};
    uint64_t off = start_a_spill(a, &r);
    object_id_t id1 = oid(1);
    result g = {0};
    plasma_get(st, b, &id1, 1, 0, get_cb, &g, 0);
    cr_assert_eq(g.calls, 1, "a get of an object being spilled is answered at once");
    cr_assert_eq(g.status, RAYC_OK);
    cr_assert_eq(g.v.off, off);
    run_until_idle(5000);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SEALED, "pinned: not spilled");
    cr_assert(same(off, 600 * KIB, 1));
    cr_assert_eq(r.calls, 0, "the create still waits");
    run_for_a_job();
    cr_assert_eq(count_in(spill_dir, 0), 0, "the useless copy on disk is removed");
    /* released, it spills again and the create goes on */
    cr_assert_eq(plasma_release(st, b, &id1), 0);
    run_until(&r.calls, 1, 5000);
    cr_assert_eq(r.status, RAYC_OK);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SPILLED);
    plasma_client_free(b);
    plasma_client_free(a);
    run_until_idle(5000);
}

Test(plasma_io, a_delete_during_the_write_leaves_no_file)
{
    plasma_client *a = plasma_client_new(st, NULL);
    result r = {0};
    start_a_spill(a, &r);
    object_id_t id1 = oid(1);
    cr_assert_eq(plasma_delete(st, &id1), 0);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_ABSENT);
    run_until(&r.calls, 1, 5000);
    cr_assert_eq(r.status, RAYC_OK, "the block comes free when the write is done");
    run_for_a_job(); /* the removal queued behind the write */
    cr_assert_eq(count_in(spill_dir, 0), 0);
    plasma_stats s = stats();
    cr_assert_eq(s.spilled_objects, 0);
    cr_assert_eq(s.objects, 1);
    plasma_client_free(a);
}

Test(plasma_io, a_get_waits_for_a_restore_in_flight)
{
    plasma_client *a = plasma_client_new(st, NULL);
    result r = {0};
    start_a_spill(a, &r);
    run_until(&r.calls, 1, 5000);
    cr_assert_eq(r.status, RAYC_OK);
    object_id_t id1 = oid(1), id2 = oid(2);
    cr_assert_eq(plasma_seal(st, a, &id2), 0);
    cr_assert_eq(plasma_delete(st, &id2), 0); /* room to restore 1 */
    result g = {0}, g2 = {0};
    plasma_get(st, a, &id1, 1, -1, get_cb, &g, 0);
    plasma_get(st, a, &id1, 1, -1, get_cb, &g2, 0);
    cr_assert_eq(g.calls + g2.calls, 0, "the gets wait for the read");
    plasma_stats s = stats();
    cr_assert_eq(s.restoring_objects, 1, "one restore for both gets");
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SPILLED);
    plasma_view v;
    cr_assert_eq(plasma_pin(st, a, &id1, &v), RAYC_EBUSY);
    run_until(&g2.calls, 1, 5000);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, RAYC_OK);
    cr_assert_eq(g2.status, RAYC_OK);
    cr_assert(same(g.v.off, 600 * KIB, 1), "restored byte-exact");
    s = stats();
    cr_assert_eq(s.restores, 1);
    cr_assert_eq(s.spilled_objects, 0);
    cr_assert_eq(count_in(spill_dir, 0), 0, "the file goes with the restore");
    plasma_client_free(a);
}

Test(plasma_io, a_failed_write_keeps_the_object_and_pauses_spilling)
{
    /* The store's own subdirectory (spill_dir/raylet-<pid>) gone: opening
     * the spill file fails on the thread. */
    char own[128];
    snprintf(own, sizeof(own), "%s/raylet-%d", spill_dir, (int)getpid());
    cr_assert_eq(rmdir(own), 0, "%s", own);
    plasma_client *a = plasma_client_new(st, NULL);
    result r = {0};
    uint64_t off = start_a_spill(a, &r);
    run_until_idle(5000);
    object_id_t id1 = oid(1);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SEALED, "kept in memory");
    cr_assert(same(off, 600 * KIB, 1));
    cr_assert_eq(stats().spills, 0);
    cr_assert_eq(stats().spilling_objects, 0, "paused: no second try at once");
    cr_assert_eq(r.calls, 0, "the create waits out the pause");
    mkdir(own, 0700);
    run_until(&r.calls, 1, 5000);
    cr_assert_eq(r.status, RAYC_OK, "after the pause spilling works again");
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SPILLED);
    plasma_client_free(a);
    run_until_idle(5000);
}

Test(plasma_io, freeing_the_store_joins_the_thread_and_answers_everyone)
{
    plasma_client *a = plasma_client_new(st, NULL);
    result r = {0};
    start_a_spill(a, &r);
    (void)a; /* freed with the store */
    plasma_store_free(st);
    st = NULL;
    cr_assert_eq(r.calls, 1, "the waiting create is answered");
    cr_assert_eq(r.status, RAYC_ECANCELLED);
}
