/*
 * test_plasma_store.c -- the plasma store's object state machine through its
 * internal API (create/seal/get/release/delete, eviction, spill and
 * byte-exact restore, full store, fate-sharing) and put slabs (grants,
 * carving in any order, bad ranges, returned tails), on a small store (1 MiB)
 * with a real event_base and a private spill dir; and the frame handlers
 * over a socketpair with two conns on the same loop. The slab tests also
 * check the invariants of plasma_internal.h (allocator, pieces, objects).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "../../raylet/plasma_internal.h"
#include "../../raylet/plasma_store.h"
#include "rayc.h"

#define MIB (1u << 20)

static struct event_base *base;
static plasma_store *st;
static rayc_config cfg;
static char spill_dir[64];

static void setup_store(uint64_t bytes, int64_t wait_ms)
{
    log_init(NULL, LOG_LEVEL_WARN);
    base = event_base_new();
    config_defaults(&cfg);
    strcpy(spill_dir, "/tmp/plasma_test_XXXXXX");
    cr_assert_not_null(mkdtemp(spill_dir));
    char err[256];
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)bytes);
    cr_assert_eq(config_set(&cfg, "object_store_memory", sz, err, sizeof(err)), 0);
    cr_assert_eq(config_set(&cfg, "spill_dir", spill_dir, err, sizeof(err)), 0);
    snprintf(sz, sizeof(sz), "%lld", (long long)wait_ms);
    cr_assert_eq(config_set(&cfg, "store_full_wait_ms", sz, err, sizeof(err)), 0);
    st = plasma_store_new(base, &cfg, err, sizeof(err));
    cr_assert_not_null(st, "%s", err);
}

static void setup(void)
{
    setup_store(MIB, 100);
}

/* Spill files in dir and, one level down, in the store's own subdirectory
 * (spill_dir/raylet-<pid>). */
static int count_in(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return depth == 0 ? -1 : 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char sub[512];
        if (strstr(e->d_name, ".obj")) {
            n++;
        } else if (depth == 0 && e->d_name[0] != '.') {
            snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
            n += count_in(sub, 1);
        }
    }
    closedir(d);
    return n;
}

static int count_spill_files(void)
{
    return count_in(spill_dir, 0);
}

static void teardown(void)
{
    plasma_store_free(st);
    cr_assert_eq(count_spill_files(), 0, "spill files left behind");
    rmdir(spill_dir);
    event_base_free(base);
    config_free(&cfg);
}

TestSuite(plasma_store, .init = setup, .fini = teardown, .timeout = 30);

static object_id_t oid(int i)
{
    object_id_t id;
    memset(&id, 0, sizeof(id));
    memcpy(id.b, &i, sizeof(i));
    id.b[27] = 0xAB;
    return id;
}

static void fill(uint64_t off, uint64_t size, int seed)
{
    uint8_t *p = plasma_store_base(st) + off;
    for (uint64_t i = 0; i < size; i++)
        p[i] = (uint8_t)(i * 31 + (uint64_t)seed * 7 + (i >> 9));
}

static bool same(uint64_t off, uint64_t size, int seed)
{
    const uint8_t *p = plasma_store_base(st) + off;
    for (uint64_t i = 0; i < size; i++)
        if (p[i] != (uint8_t)(i * 31 + (uint64_t)seed * 7 + (i >> 9)))
            return false;
    return true;
}

/* Create, fill with the seed's pattern and seal. */
static void put(plasma_client *cl, int i, uint64_t size)
{
    object_id_t id = oid(i);
    uint64_t off;
    int rc = plasma_create(st, cl, &id, size, 0, &off);
    cr_assert_eq(rc, 0, "create %d: %s", i, rayc_last_error());
    fill(off, size, i);
    cr_assert_eq(plasma_seal(st, cl, &id), 0);
}

/* ---------------------------------------------------------- callbacks */

typedef struct {
    int calls, status;
    size_t n;
    plasma_view v[16];
    bool ready[16];
    uint64_t off;
    char msg[512];
} result;

static void get_cb(void *arg, uint64_t tag, int status, const plasma_view *views, size_t n)
{
    (void)tag;
    result *r = arg;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; views && i < n && i < 16; i++)
        r->v[i] = views[i];
}

static void wait_cb(void *arg, uint64_t tag, int status, const bool *ready, size_t n)
{
    (void)tag;
    result *r = arg;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; ready && i < n && i < 16; i++)
        r->ready[i] = ready[i];
}

static void create_cb(void *arg, uint64_t tag, int status, uint64_t off, const char *msg)
{
    (void)tag;
    result *r = arg;
    r->calls++;
    r->status = status;
    r->off = off;
    snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
}

static void run_until(const int *calls, int want, int max_ms)
{
    for (int i = 0; i < max_ms && *calls < want; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

/* ---------------------------------------------------------- lifecycle */

Test(plasma_store, arena_and_prefault)
{
    cr_assert_eq(plasma_store_capacity(st), MIB);
    cr_assert_geq(plasma_store_fd(st), 0);
    for (int i = 0; i < 2000 && plasma_store_prefault_us(st) == 0; i++)
        usleep(1000); /* the pre-fault runs in the background */
    cr_assert_gt(plasma_store_prefault_us(st), 0);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.capacity, MIB);
    cr_assert_eq(s.used, 0);
}

Test(plasma_store, create_seal_get_release_delete)
{
    plasma_client *a = plasma_client_new(st, NULL);
    object_id_t id = oid(1);
    uint64_t off, size;
    cr_assert_eq(plasma_create(st, a, &id, 1000, 0, &off), 0);
    cr_assert_eq(off % 64, 0);
    cr_assert_eq(plasma_object_state(st, &id, &size), PLASMA_CREATED);
    cr_assert_eq(size, 1000);
    cr_assert_eq(plasma_create(st, a, &id, 10, 0, &off), RAYC_EEXIST);
    fill(off, 1000, 1);

    result r = {0};
    plasma_get(st, a, &id, 1, 0, get_cb, &r, 0); /* unsealed: not visible */
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_ETIMEDOUT);

    cr_assert_eq(plasma_seal(st, a, &id), 0);
    cr_assert_eq(plasma_seal(st, a, &id), RAYC_EINVAL);
    cr_assert_eq(plasma_object_state(st, &id, NULL), PLASMA_SEALED);

    memset(&r, 0, sizeof(r));
    plasma_get(st, a, &id, 1, 0, get_cb, &r, 0);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_OK);
    cr_assert_eq(r.v[0].off, off);
    cr_assert_eq(r.v[0].size, 1000);
    cr_assert(same(r.v[0].off, 1000, 1));
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.objects, 1);
    cr_assert_eq(s.pinned_objects, 1);
    cr_assert_eq(s.used, 1024);

    cr_assert_eq(plasma_release(st, a, &id), 0);
    cr_assert_eq(plasma_release(st, a, &id), RAYC_ENOTFOUND);
    cr_assert_eq(plasma_delete(st, &id), 0);
    cr_assert_eq(plasma_object_state(st, &id, NULL), PLASMA_ABSENT);
    cr_assert_eq(plasma_delete(st, &id), RAYC_ENOTFOUND);
    plasma_store_stats(st, &s);
    cr_assert_eq(s.objects, 0);
    cr_assert_eq(s.used, 0);
    plasma_client_free(a);
}

/* peak_used: the most the objects used since start or the last reset (the
 * figure tests and benchmarks of streaming and dedup read). */
Test(plasma_store, peak_used_is_a_resettable_high_water_mark)
{
    plasma_client *a = plasma_client_new(st, NULL);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.peak_used, 0);
    for (int i = 1; i <= 3; i++)
        put(a, i, 100 * 1024);
    plasma_store_stats(st, &s);
    cr_assert_eq(s.peak_used, s.used);
    uint64_t three = s.used;
    for (int i = 1; i <= 2; i++) {
        object_id_t id = oid(i);
        cr_assert_eq(plasma_delete(st, &id), 0);
    }
    plasma_store_stats(st, &s);
    cr_assert_lt(s.used, three);
    cr_assert_eq(s.peak_used, three, "the peak fell with the objects");
    plasma_store_reset_peak(st);
    plasma_store_stats(st, &s);
    cr_assert_eq(s.peak_used, s.used);
    put(a, 4, 200 * 1024);
    plasma_store_stats(st, &s);
    cr_assert_eq(s.peak_used, s.used);
    plasma_client_free(a);
}

Test(plasma_store, get_waits_for_seal_without_polling)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    object_id_t ids[2] = {oid(1), oid(2)};
    result r = {0};
    plasma_get(st, b, ids, 2, -1, get_cb, &r, 7);
    cr_assert_eq(r.calls, 0);
    put(a, 1, 100);
    cr_assert_eq(r.calls, 0, "one of two objects is not enough");
    put(a, 2, 200);
    cr_assert_eq(r.calls, 1, "the seal must answer the get at once");
    cr_assert_eq(r.status, RAYC_OK);
    cr_assert(same(r.v[0].off, 100, 1));
    cr_assert(same(r.v[1].off, 200, 2));
    /* pinned for b: a delete is deferred until b releases */
    cr_assert_eq(plasma_delete(st, &ids[0]), 0);
    cr_assert_eq(plasma_object_state(st, &ids[0], NULL), PLASMA_SEALED);
    result r2 = {0};
    plasma_get(st, a, &ids[0], 1, 0, get_cb, &r2, 0);
    cr_assert_eq(r2.status, RAYC_ETIMEDOUT, "a deleted object is invisible to new gets");
    cr_assert_eq(plasma_release(st, b, &ids[0]), 0);
    cr_assert_eq(plasma_object_state(st, &ids[0], NULL), PLASMA_ABSENT);
    plasma_client_free(b); /* drops the pin on ids[1] */
    plasma_client_free(a); /* owner: ids[1] goes */
    cr_assert_eq(plasma_object_state(st, &ids[1], NULL), PLASMA_ABSENT);
}

Test(plasma_store, get_timeout_takes_no_pins)
{
    plasma_client *a = plasma_client_new(st, NULL);
    put(a, 1, 100);
    object_id_t ids[2] = {oid(1), oid(2)};
    result r = {0};
    plasma_get(st, a, ids, 2, 30, get_cb, &r, 0);
    cr_assert_eq(r.calls, 0);
    run_until(&r.calls, 1, 2000);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_ETIMEDOUT);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pinned_objects, 0, "nothing half-done");
    cr_assert_eq(s.pending_gets, 0);
    cr_assert_eq(plasma_delete(st, &ids[0]), 0);
    cr_assert_eq(plasma_object_state(st, &ids[0], NULL), PLASMA_ABSENT);
    plasma_client_free(a);
}

Test(plasma_store, wait_counts_ready_objects)
{
    plasma_client *a = plasma_client_new(st, NULL);
    put(a, 1, 100);
    object_id_t ids[3] = {oid(1), oid(2), oid(3)};
    result r = {0};
    plasma_wait(st, a, ids, 3, 1, -1, wait_cb, &r, 0);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_OK);
    cr_assert(r.ready[0] && !r.ready[1] && !r.ready[2]);
    memset(&r, 0, sizeof(r));
    plasma_wait(st, a, ids, 3, 2, 20, wait_cb, &r, 0);
    cr_assert_eq(r.calls, 0);
    put(a, 3, 10);
    cr_assert_eq(r.calls, 1);
    cr_assert(r.ready[0] && !r.ready[1] && r.ready[2]);
    memset(&r, 0, sizeof(r));
    plasma_wait(st, a, ids, 3, 3, 20, wait_cb, &r, 0);
    run_until(&r.calls, 1, 2000);
    cr_assert_eq(r.status, RAYC_OK, "a wait that times out still reports what is ready");
    cr_assert(r.ready[0] && !r.ready[1] && r.ready[2]);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pinned_objects, 0, "waits pin nothing");
    plasma_client_free(a);
}

Test(plasma_store, too_big_fails_at_once)
{
    plasma_client *a = plasma_client_new(st, NULL);
    object_id_t id = oid(1);
    uint64_t off;
    cr_assert_eq(plasma_create(st, a, &id, 2 * MIB, 0, &off), RAYC_ESTORE_FULL);
    cr_assert(strstr(rayc_last_error(), "2097152") && strstr(rayc_last_error(), "1048576"), "%s",
              rayc_last_error());
    result r = {0};
    plasma_create_async(st, a, &id, MIB + 1, 0, create_cb, &r, 0);
    cr_assert_eq(r.calls, 1, "no waiting for an object larger than the store");
    cr_assert_eq(r.status, RAYC_ESTORE_FULL);
    cr_assert(strstr(r.msg, "larger than the whole object store"), "%s", r.msg);
    plasma_client_free(a);
}

/* ---------------------------------------------------------- pressure */

typedef struct {
    int sealed, deleted;
} hook_counts;

static void on_sealed(void *arg, const plasma_object_event *ev)
{
    (void)ev;
    ((hook_counts *)arg)->sealed++;
}

static void on_deleted(void *arg, const plasma_object_event *ev)
{
    (void)ev;
    ((hook_counts *)arg)->deleted++;
}

Test(plasma_store, evicts_secondary_copies_lru)
{
    hook_counts hc = {0};
    plasma_hooks h = {.on_object_sealed = on_sealed, .on_object_deleted = on_deleted};
    node_id_t node = node_id_random();
    plasma_store_set_hooks(st, &node, &h, &hc);
    plasma_client *a = plasma_client_new(st, NULL);
    for (int i = 1; i <= 4; i++) {
        object_id_t id = oid(i);
        uint64_t off;
        cr_assert_eq(plasma_create(st, a, &id, 256 * 1024, PLASMA_EVICTABLE, &off), 0);
        cr_assert_eq(plasma_seal(st, a, &id), 0);
    }
    cr_assert_eq(hc.sealed, 4);
    put(a, 10, 300 * 1024); /* needs two evictions: 1 and 2, the oldest */
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.evictions, 2);
    cr_assert_eq(s.spilled_objects, 0, "evictable copies go before anything spills");
    object_id_t o1 = oid(1), o2 = oid(2), o3 = oid(3);
    cr_assert_eq(plasma_object_state(st, &o1, NULL), PLASMA_ABSENT);
    cr_assert_eq(plasma_object_state(st, &o2, NULL), PLASMA_ABSENT);
    cr_assert_eq(plasma_object_state(st, &o3, NULL), PLASMA_SEALED);
    cr_assert_eq(hc.deleted, 2);
    plasma_client_free(a);
}

Test(plasma_store, spill_and_restore_byte_exact)
{
    plasma_client *a = plasma_client_new(st, NULL);
    const int n = 12;
    const uint64_t size = 200 * 1024 + 17;
    for (int i = 1; i <= n; i++)
        put(a, i, size); /* 12 x 200 KiB in 1 MiB: most spill */
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_geq(s.spilled_objects, (uint64_t)n - 5, "spilled %lu used %lu objects %lu",
                  (unsigned long)s.spilled_objects, (unsigned long)s.used,
                  (unsigned long)s.objects);
    cr_assert_eq(s.evictions, 0);
    cr_assert_eq(count_spill_files(), (int)s.spilled_objects);
    object_id_t first = oid(1);
    cr_assert_eq(plasma_object_state(st, &first, NULL), PLASMA_SPILLED);
    /* every object comes back byte-exact, one at a time */
    for (int i = 1; i <= n; i++) {
        object_id_t id = oid(i);
        result r = {0};
        plasma_get(st, a, &id, 1, 1000, get_cb, &r, 0);
        cr_assert_eq(r.calls, 1);
        cr_assert_eq(r.status, RAYC_OK, "get %d: %d", i, r.status);
        cr_assert_eq(r.v[0].size, size);
        cr_assert(same(r.v[0].off, size, i), "object %d corrupted by spill/restore", i);
        cr_assert_eq(plasma_release(st, a, &id), 0);
    }
    plasma_store_stats(st, &s);
    cr_assert_geq(s.restores, (uint64_t)n - 5);
    /* deleting a spilled object removes its file */
    int files = count_spill_files();
    cr_assert_gt(files, 0);
    for (int i = 1; i <= n; i++) {
        object_id_t id = oid(i);
        cr_assert_eq(plasma_delete(st, &id), 0);
    }
    cr_assert_eq(count_spill_files(), 0);
    plasma_store_stats(st, &s);
    cr_assert_eq(s.objects, 0);
    cr_assert_eq(s.used, 0);
    cr_assert_eq(s.spilled_bytes, 0);
    plasma_client_free(a);
}

Test(plasma_store, pinned_objects_never_evicted_or_spilled)
{
    plasma_client *a = plasma_client_new(st, NULL);
    plasma_view v[4];
    for (int i = 1; i <= 4; i++) {
        put(a, i, 250 * 1024);
        object_id_t id = oid(i);
        cr_assert_eq(plasma_set_evictable(st, &id, i % 2 == 0), 0);
        cr_assert_eq(plasma_pin(st, a, &id, &v[i - 1]), 0);
    }
    object_id_t big = oid(99);
    uint64_t off;
    cr_assert_eq(plasma_create(st, a, &big, 100 * 1024, 0, &off), RAYC_ESTORE_FULL);
    cr_assert(strstr(rayc_last_error(), "4 objects pinned"), "%s", rayc_last_error());
    cr_assert(strstr(rayc_last_error(), "capacity 1048576"), "%s", rayc_last_error());
    /* an async create waits store_full_wait_ms, then fails with the same story */
    result r = {0};
    plasma_create_async(st, a, &big, 100 * 1024, 0, create_cb, &r, 0);
    cr_assert_eq(r.calls, 0);
    run_until(&r.calls, 1, 3000);
    cr_assert_eq(r.status, RAYC_ESTORE_FULL);
    cr_assert(strstr(r.msg, "pinned"), "%s", r.msg);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.evictions + s.spilled_objects, 0);
    for (int i = 1; i <= 4; i++)
        cr_assert(same(v[i - 1].off, 250 * 1024, i));
    plasma_client_free(a);
}

Test(plasma_store, full_store_create_waits_for_release)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    put(a, 1, 900 * 1024);
    object_id_t id1 = oid(1), id2 = oid(2);
    plasma_view v;
    cr_assert_eq(plasma_pin(st, b, &id1, &v), 0);
    result r = {0};
    plasma_create_async(st, a, &id2, 500 * 1024, 0, create_cb, &r, 0);
    cr_assert_eq(r.calls, 0, "the creator waits");
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pending_creates, 1);
    cr_assert_eq(plasma_release(st, b, &id1), 0); /* now spillable */
    cr_assert_eq(r.calls, 1, "a release retries the waiting create at once");
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SPILLED);
    cr_assert_eq(plasma_seal(st, a, &id2), 0);
    plasma_client_free(b);
    plasma_client_free(a);
    cr_assert_eq(count_spill_files(), 0);
}

/* A seal that keeps the creator's pin never leaves the object unpinned: a
 * create waiting for space at that moment cannot spill it from under the
 * creator, who goes on reading it. */
Test(plasma_store, seal_keeping_the_pin_is_never_spilled)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    object_id_t x = oid(1), y = oid(2);
    uint64_t off;
    cr_assert_eq(plasma_create(st, a, &x, 500 * 1024, 0, &off), 0);
    fill(off, 500 * 1024, 1);
    result r = {0};
    plasma_create_async(st, b, &y, 600 * 1024, 0, create_cb, &r, 0);
    cr_assert_eq(r.calls, 0, "the create waits: x is being written");
    cr_assert_eq(plasma_seal_keep(st, a, &x, true), 0);
    cr_assert_eq(r.calls, 0, "the seal must not free x for the waiting create");
    cr_assert_eq(plasma_object_state(st, &x, NULL), PLASMA_SEALED);
    cr_assert(same(off, 500 * 1024, 1));
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pinned_objects, 1);
    cr_assert_eq(plasma_release(st, a, &x), 0, "the kept pin is a read pin");
    cr_assert_eq(r.calls, 1, "the release lets the create spill x");
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert_eq(plasma_object_state(st, &x, NULL), PLASMA_SPILLED);
    cr_assert_eq(plasma_release(st, a, &x), RAYC_ENOTFOUND, "one pin only");
    cr_assert_eq(plasma_seal(st, b, &y), 0);
    plasma_client_free(b);
    plasma_client_free(a);
}

Test(plasma_store, restore_waits_for_space)
{
    plasma_client *a = plasma_client_new(st, NULL);
    put(a, 1, 600 * 1024);
    put(a, 2, 600 * 1024); /* spills 1 */
    object_id_t id1 = oid(1), id2 = oid(2);
    plasma_view v;
    cr_assert_eq(plasma_pin(st, a, &id2, &v), 0);
    result r = {0};
    plasma_get(st, a, &id1, 1, -1, get_cb, &r, 0);
    cr_assert_eq(r.calls, 0, "no room to restore while 2 is pinned");
    cr_assert_eq(plasma_release(st, a, &id2), 0);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_OK);
    cr_assert(same(r.v[0].off, 600 * 1024, 1));
    cr_assert_eq(plasma_object_state(st, &id2, NULL), PLASMA_SPILLED);
    plasma_client_free(a);
}

/* ---------------------------------------------------------- clients */

Test(plasma_store, disconnect_aborts_creates_and_frees_owned)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    object_id_t x = oid(1), y = oid(2), z = oid(3);
    uint64_t off;
    cr_assert_eq(plasma_create(st, a, &x, 100, 0, &off), 0); /* never sealed */
    put(a, 2, 100);
    put(a, 3, 100);
    cr_assert_eq(plasma_set_owner(st, &z, NULL), 0); /* z now belongs to the raylet */
    plasma_view v;
    cr_assert_eq(plasma_pin(st, b, &y, &v), 0);
    result pending = {0};
    plasma_get(st, a, &x, 1, -1, get_cb, &pending, 0);
    plasma_client_free(a);
    cr_assert_eq(pending.calls, 1);
    cr_assert_eq(pending.status, RAYC_ECANCELLED);
    cr_assert_eq(plasma_object_state(st, &x, NULL), PLASMA_ABSENT, "unsealed create aborted");
    cr_assert_eq(plasma_object_state(st, &y, NULL), PLASMA_SEALED, "b still pins y");
    cr_assert_eq(plasma_object_state(st, &z, NULL), PLASMA_SEALED, "z has another owner");
    cr_assert(same(v.off, 100, 2));
    cr_assert_eq(plasma_release(st, b, &y), 0);
    cr_assert_eq(plasma_object_state(st, &y, NULL), PLASMA_ABSENT, "freed with its last pin");
    plasma_client_free(b);
    cr_assert_eq(plasma_delete(st, &z), 0);
}

Test(plasma_store, disconnect_cancels_waiting_create)
{
    plasma_client *a = plasma_client_new(st, NULL);
    put(a, 1, 900 * 1024);
    object_id_t id1 = oid(1), id2 = oid(2);
    plasma_view v;
    cr_assert_eq(plasma_pin(st, a, &id1, &v), 0);
    result r = {0};
    plasma_create_async(st, a, &id2, 500 * 1024, 0, create_cb, &r, 0);
    cr_assert_eq(r.calls, 0);
    plasma_client_free(a);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_ECANCELLED);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.objects, 0);
    cr_assert_eq(s.pending_creates, 0);
}

/* ---------------------------------------------------------- put slabs */

#define SLAB (MIB / 64) /* the most one grant gives on the 1 MiB store */

/* A store block: what a request of size bytes takes (0 counts as 1). */
static uint64_t blk(uint64_t size)
{
    return size == 0 ? 64 : (size + 63) & ~(uint64_t)63;
}

static plasma_stats stats(void)
{
    plasma_stats s;
    memset(&s, 0, sizeof(s));
    plasma_store_stats(st, &s);
    return s;
}

static void assert_stats_eq(const plasma_stats *a, const plasma_stats *b, const char *what)
{
    cr_assert(memcmp(a, b, sizeof(*a)) == 0,
              "%s changed the store: used %lu -> %lu, reserved %lu -> %lu, objects %lu -> %lu, "
              "free blocks %lu -> %lu",
              what, (unsigned long)a->used, (unsigned long)b->used, (unsigned long)a->reserved,
              (unsigned long)b->reserved, (unsigned long)a->objects, (unsigned long)b->objects,
              (unsigned long)a->free_blocks, (unsigned long)b->free_blocks);
}

/* The invariants of plasma_internal.h, checked from outside: the allocator
 * is consistent, every piece is exactly one used block, pieces add up to
 * `reserved`, objects in the arena are exactly one block each and add up to
 * `used`. */
static void check_store(void)
{
    plasma_stats s = stats();
    cr_assert_eq(plasma_alloc_check(st->al), 0, "allocator invariants broken");
    uint64_t pieces = 0, objects = 0;
    for (const plasma_client *cl = st->clients; cl; cl = cl->next)
        for (uint32_t i = 0; i < cl->npieces; i++) {
            const plasma__piece *p = &cl->pieces[i];
            cr_assert_lt(p->off, p->end);
            cr_assert_eq(plasma_alloc_block_size(st->al, p->off), p->end - p->off,
                         "piece [%lu, %lu) is not one block", (unsigned long)p->off,
                         (unsigned long)p->end);
            pieces += p->end - p->off;
        }
    for (uint64_t i = 0; i < st->tab_cap; i++) {
        const plasma__obj *o = st->tab[i];
        if (o == NULL || (o->state != PLASMA_CREATED && o->state != PLASMA_SEALED))
            continue;
        cr_assert_eq(plasma_alloc_block_size(st->al, o->off), blk(o->size),
                     "object at %lu of %lu bytes is not one block", (unsigned long)o->off,
                     (unsigned long)o->size);
        objects += blk(o->size);
    }
    cr_assert_eq(pieces, s.reserved);
    cr_assert_eq(objects, s.used);
}

/* A slab of want bytes for cl; the grant must succeed. */
static uint64_t grant(plasma_client *cl, uint64_t want, uint64_t *size)
{
    uint64_t off = 0, n = 0;
    int rc = plasma_slab_grant(st, cl, want, 0, 0, &off, &n);
    cr_assert_eq(rc, 0, "grant of %lu: %s", (unsigned long)want, rayc_last_error());
    cr_assert_eq(off % 64, 0);
    cr_assert_leq(off + n, MIB);
    if (size)
        *size = n;
    return off;
}

/* Write object i into cl's slab at off, announce it and seal it, as a
 * client's SLAB_OBJECT does. */
static void slab_put(plasma_client *cl, int i, uint64_t off, uint64_t size)
{
    object_id_t id = oid(i);
    fill(off, size, i);
    int rc = plasma_slab_create(st, cl, &id, off, size);
    cr_assert_eq(rc, 0, "slab create %d: %s", i, rayc_last_error());
    cr_assert_eq(plasma_seal(st, cl, &id), 0);
}

static bool disjoint(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a + an <= b || b + bn <= a;
}

Test(plasma_store, slab_grant_is_clamped_and_capped)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    uint64_t off[10], size[10];
    off[0] = grant(a, 10 * MIB, &size[0]);
    cr_assert_eq(size[0], SLAB, "clamped to capacity/64");
    plasma_stats s = stats();
    cr_assert_eq(s.reserved, SLAB);
    cr_assert_eq(s.used, 0, "a slab is not object bytes");
    cr_assert_eq(s.objects, 0);

    off[1] = grant(b, 100, &size[1]); /* another client; rounded up to a block */
    cr_assert_eq(size[1], 128);
    uint64_t zo = 1, zn = 1;
    cr_assert_eq(plasma_slab_grant(st, b, 0, 0, 0, &zo, &zn), 0);
    cr_assert(zo == 0 && zn == 0, "want 0 grants nothing");
    uint64_t reserved = SLAB + 128;
    cr_assert_eq(stats().reserved, reserved);

    /* full slabs up to capacity/8 in all */
    int n = 2;
    while (reserved + SLAB <= MIB / 8) {
        off[n] = grant(n % 2 ? b : a, SLAB, &size[n]);
        cr_assert_eq(size[n], SLAB);
        reserved += SLAB;
        n++;
        cr_assert_eq(stats().reserved, reserved);
    }
    cr_assert_eq(n, 8);
    plasma_stats before = stats();
    uint64_t o = 1, z = 1;
    cr_assert_eq(plasma_slab_grant(st, a, SLAB, 0, 0, &o, &z), RAYC_ESTORE_FULL,
                 "a slab past capacity/8 must be refused");
    cr_assert_eq(z, 0);
    plasma_stats after = stats();
    assert_stats_eq(&before, &after, "a refused grant");
    /* what is left under capacity/8 can still be had */
    off[n] = grant(b, MIB / 8 - reserved, &size[n]);
    cr_assert_eq(size[n], MIB / 8 - reserved);
    n++;
    cr_assert_eq(stats().reserved, MIB / 8);
    plasma_client *c = plasma_client_new(st, NULL);
    cr_assert_eq(plasma_slab_grant(st, c, 1, 0, 0, &o, &z), RAYC_ESTORE_FULL,
                 "the cap is over all clients");
    cr_assert_eq(z, 0);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert(disjoint(off[i], size[i], off[j], size[j]), "slabs %d and %d overlap", i, j);
    check_store();

    plasma_client_free(a); /* its slabs: 0, 2, 4, 6 */
    cr_assert_eq(stats().reserved, MIB / 8 - 4 * SLAB);
    plasma_client_free(b);
    plasma_client_free(c);
    s = stats();
    cr_assert_eq(s.reserved, 0);
    cr_assert_eq(s.used, 0);
    cr_assert_eq(s.free_blocks, 1);
    cr_assert_eq(s.largest_free, MIB);
}

Test(plasma_store, slab_grant_keeps_a_quarter_free)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    put(a, 1, MIB - MIB / 4 - SLAB); /* a quarter and one slab stay free */
    uint64_t size;
    grant(b, SLAB, &size);
    cr_assert_eq(size, SLAB, "exactly a quarter stays free: granted");
    plasma_stats before = stats();
    cr_assert_eq(before.used, MIB - MIB / 4 - SLAB);
    cr_assert_eq(before.reserved, SLAB);
    uint64_t o = 1, z = 1;
    cr_assert_eq(plasma_slab_grant(st, b, 64, 0, 0, &o, &z), RAYC_ESTORE_FULL,
                 "less than a quarter would stay free");
    cr_assert_eq(z, 0);
    plasma_client *c = plasma_client_new(st, NULL);
    cr_assert_eq(plasma_slab_grant(st, c, 64, 0, 0, &o, &z), RAYC_ESTORE_FULL);
    plasma_stats after = stats();
    assert_stats_eq(&before, &after, "a refused grant");
    object_id_t id1 = oid(1);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SEALED,
                 "a grant never spills, even an unpinned object");
    cr_assert_eq(after.spills + after.evictions, 0);
    cr_assert_eq(plasma_delete(st, &id1), 0);
    grant(c, SLAB, &size); /* room again */
    cr_assert_eq(size, SLAB);
    check_store();
    plasma_client_free(c);
    plasma_client_free(b);
    plasma_client_free(a);
    cr_assert_eq(stats().reserved, 0);
}

Test(plasma_store, slab_carve_in_order)
{
    plasma_client *a = plasma_client_new(st, NULL);
    uint64_t size, s0 = grant(a, SLAB, &size), at = s0, carved = 0;
    static const uint64_t sizes[4] = {100, 4096, 0, 5000};
    for (int i = 0; i < 4; i++) {
        slab_put(a, i + 1, at, sizes[i]);
        at += blk(sizes[i]);
        carved += blk(sizes[i]);
        cr_assert_eq(a->npieces, 1, "carving from the front leaves one piece");
        cr_assert(a->pieces[0].off == at && a->pieces[0].end == s0 + SLAB);
        plasma_stats s = stats();
        cr_assert_eq(s.reserved, SLAB - carved);
        cr_assert_eq(s.used, carved);
        check_store();
    }
    at = s0;
    for (int i = 0; i < 4; i++) {
        object_id_t id = oid(i + 1);
        plasma_view v;
        cr_assert_eq(plasma_pin(st, a, &id, &v), 0);
        cr_assert_eq(v.off, at);
        cr_assert_eq(v.size, sizes[i]);
        cr_assert(same(v.off, sizes[i], i + 1));
        at += blk(sizes[i]);
    }
    plasma_client_free(a);
    plasma_stats s = stats();
    cr_assert_eq(s.used + s.reserved + s.objects, 0);
    cr_assert_eq(s.free_blocks, 1);
}

Test(plasma_store, slab_carve_out_of_order)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    uint64_t size, s0 = grant(a, SLAB, &size);
    static const uint64_t sizes[5] = {1000, 0, 64, 3000, 2049};
    uint64_t offs[5], at = s0;
    object_id_t ids[5];
    for (int i = 0; i < 5; i++) {
        offs[i] = at;
        at += blk(sizes[i]);
        ids[i] = oid(10 + i);
        fill(offs[i], sizes[i], 10 + i); /* clients write before they tell the store */
    }
    result waiting = {0};
    plasma_get(st, b, &ids[2], 1, -1, get_cb, &waiting, 0); /* before it exists */

    static const int order[5] = {2, 0, 4, 1, 3};
    plasma_stats before = stats();
    uint64_t carved = 0;
    for (int k = 0; k < 5; k++) {
        int i = order[k];
        uint64_t osize;
        int rc = plasma_slab_create(st, a, &ids[i], offs[i], sizes[i]);
        cr_assert_eq(rc, 0, "carve %d: %s", i, rayc_last_error());
        cr_assert_eq(plasma_object_state(st, &ids[i], &osize), PLASMA_CREATED);
        cr_assert_eq(osize, sizes[i]);
        carved += blk(sizes[i]);
        plasma_stats s = stats();
        cr_assert_eq(s.reserved, before.reserved - carved, "after carve %d", i);
        cr_assert_eq(s.used, before.used + carved, "after carve %d", i);
        cr_assert_eq(s.unsealed_objects, (uint64_t)k + 1);
        check_store();
    }
    cr_assert_eq(carved, 1024 + 64 + 64 + 3008 + 2112);
    cr_assert_eq(waiting.calls, 0, "not sealed yet");
    for (int k = 4; k >= 0; k--)
        cr_assert_eq(plasma_seal(st, a, &ids[order[k]]), 0);
    cr_assert_eq(waiting.calls, 1, "the seal answers a waiting get");
    cr_assert_eq(waiting.status, RAYC_OK);
    cr_assert_eq(waiting.v[0].off, offs[2]);
    cr_assert_eq(waiting.v[0].size, sizes[2]);

    /* the rest of the slab is still the client's to scribble on */
    memset(plasma_store_base(st) + at, 0xEE, s0 + SLAB - at);
    result r = {0};
    plasma_get(st, a, ids, 5, 0, get_cb, &r, 0);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_OK);
    cr_assert_eq(r.n, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(r.v[i].off, offs[i], "object %d", i);
        cr_assert_eq(r.v[i].size, sizes[i], "object %d", i);
        cr_assert(same(r.v[i].off, sizes[i], 10 + i), "object %d overlaps another", i);
    }
    plasma_view v;
    cr_assert_eq(plasma_pin(st, b, &ids[3], &v), 0);
    cr_assert_eq(v.off, offs[3]);
    plasma_stats s = stats();
    cr_assert_eq(s.used, carved);
    cr_assert_eq(s.reserved, SLAB - carved);
    cr_assert_eq(s.objects, 5);
    cr_assert_eq(s.unsealed_objects, 0);
    check_store();
    plasma_client_free(b);
    plasma_client_free(a);
    s = stats();
    cr_assert_eq(s.used + s.reserved + s.objects, 0);
}

Test(plasma_store, slab_bad_create_changes_nothing)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    object_id_t plain = oid(1);
    uint64_t plain_off, size;
    cr_assert_eq(plasma_create(st, a, &plain, 1000, 0, &plain_off), 0);
    fill(plain_off, 1000, 1);
    cr_assert_eq(plasma_seal(st, a, &plain), 0);
    uint64_t sa = grant(a, SLAB, &size), sb = grant(b, SLAB, &size);
    cr_assert_geq(sa, 64);
    slab_put(a, 2, sa + 1024, 1000); /* a's pieces: [sa, +1024) and [sa + 2048, end) */
    cr_assert_eq(a->npieces, 2);
    check_store();

    const struct {
        uint64_t off, size;
    } bad[] = {
        {plain_off, 64},                  /* an ordinary object */
        {sa - 64, 64},                    /* just before the slab */
        {sa + SLAB, 64},                  /* just past it */
        {sa + 1024, 64},                  /* the carved object */
        {sa + 1, 64},                     /* misaligned */
        {sa + 32, 10},                    /* misaligned */
        {sa + SLAB - 64, 65},             /* crosses the slab's end */
        {sa + 960, 128},                  /* crosses the first piece's end */
        {sa, 4096},                       /* spans both pieces and the object */
        {sa, UINT64_MAX},                 /* the block size overflows */
        {sa, 0 - sa},                     /* off + size is 2^64 */
        {sa + 64, 0 - sa},                /* off + size wraps to 64 */
        {UINT64_MAX & ~(uint64_t)63, 64}, /* off + size wraps to 0 */
        {sb, 64},                         /* b's slab */
        {sb + SLAB - 64, 64},             /* b's slab */
        {MIB, 64},                        /* past the arena */
    };
    object_id_t x = oid(50);
    plasma_stats before = stats();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = plasma_slab_create(st, a, &x, bad[i].off, bad[i].size);
        cr_assert_eq(rc, RAYC_EINVAL, "case %zu: [%lu, +%lu) got %d", i, (unsigned long)bad[i].off,
                     (unsigned long)bad[i].size, rc);
        cr_assert_eq(plasma_object_state(st, &x, NULL), PLASMA_ABSENT);
        plasma_stats after = stats();
        assert_stats_eq(&before, &after, "a bad slab create");
        check_store();
    }
    /* b cannot carve from a's slab either */
    cr_assert_eq(plasma_slab_create(st, b, &x, sa, 64), RAYC_EINVAL);
    cr_assert_eq(plasma_slab_create(st, b, &x, sa + 2048, 64), RAYC_EINVAL);
    plasma_stats after = stats();
    assert_stats_eq(&before, &after, "a carve from another client's slab");
    cr_assert(same(plain_off, 1000, 1));
    cr_assert(same(sa + 1024, 1000, 2));
    plasma_client_free(b);
    plasma_client_free(a);
}

Test(plasma_store, slab_create_of_existing_id_keeps_the_range)
{
    plasma_client *a = plasma_client_new(st, NULL);
    object_id_t plain = oid(1), unsealed = oid(3);
    uint64_t off3, size;
    plasma_view pv;
    put(a, 1, 1000);
    cr_assert_eq(plasma_pin(st, a, &plain, &pv), 0);
    cr_assert_eq(plasma_release(st, a, &plain), 0);
    const uint64_t plain_off = pv.off;
    cr_assert_eq(plasma_create(st, a, &unsealed, 100, 0, &off3), 0);
    uint64_t sa = grant(a, SLAB, &size);
    slab_put(a, 2, sa, 500);

    plasma_stats before = stats();
    cr_assert_eq(plasma_slab_create(st, a, &plain, sa + 1024, 1000), RAYC_EEXIST);
    plasma_stats s = stats();
    cr_assert_eq(s.reserved, before.reserved, "the range stays the client's");
    cr_assert_eq(s.used, before.used);
    cr_assert_eq(s.objects, before.objects);
    uint64_t osize;
    cr_assert_eq(plasma_object_state(st, &plain, &osize), PLASMA_SEALED);
    cr_assert_eq(osize, 1000);
    cr_assert(same(plain_off, 1000, 1), "the existing object is untouched");
    check_store();
    object_id_t x = oid(60);
    cr_assert_eq(plasma_slab_create(st, a, &x, sa + 1024, 1000), 0,
                 "the range is still the client's to carve");
    cr_assert_eq(plasma_seal(st, a, &x), 0);
    before = stats();

    /* an id carved from the slab already, and one created and not sealed */
    object_id_t id2 = oid(2);
    cr_assert_eq(plasma_slab_create(st, a, &id2, sa + 2048, 0), RAYC_EEXIST);
    cr_assert_eq(plasma_slab_create(st, a, &unsealed, sa + 2112, 64), RAYC_EEXIST);
    s = stats();
    cr_assert_eq(s.reserved, before.reserved);
    cr_assert_eq(s.used, before.used);
    cr_assert_eq(plasma_object_state(st, &unsealed, &osize), PLASMA_CREATED);
    cr_assert_eq(osize, 100);
    cr_assert(same(sa, 500, 2));
    check_store();
    plasma_client_free(a);
    s = stats();
    cr_assert_eq(s.used + s.reserved + s.objects, 0);
}

Test(plasma_store, slab_return_tail)
{
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL),
                  *c = plasma_client_new(st, NULL);
    uint64_t size, s1 = grant(a, SLAB, &size), sb = grant(b, SLAB, &size);
    slab_put(a, 1, s1, 1000);
    slab_put(a, 2, s1 + 1024, 0);
    const uint64_t next = s1 + 1088; /* a's bump pointer: its piece is [next, s1 + SLAB) */

    /* bad return ranges: EINVAL, and no slab although one would be granted */
    const struct {
        uint64_t off, end;
    } bad[] = {
        {s1 + 2048, s1 + 4096}, /* the middle of the piece */
        {next, s1 + SLAB - 64}, /* not up to the piece's end */
        {next, s1 + SLAB + 64}, /* past the piece's end */
        {next + 1, s1 + SLAB},  /* misaligned */
        {s1 + SLAB, s1 + SLAB}, /* empty */
        {s1 + SLAB, next},      /* backwards */
        {s1 + 1024, s1 + SLAB}, /* starts in a carved object */
        {s1, s1 + SLAB},        /* the whole slab, objects and all */
        {sb + 1024, sb + SLAB}, /* b's tail */
        {0, MIB},               /* the whole arena */
    };
    plasma_stats before = stats();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t o = 1, z = 1;
        int rc = plasma_slab_grant(st, a, SLAB, bad[i].off, bad[i].end, &o, &z);
        cr_assert_eq(rc, RAYC_EINVAL, "case %zu got %d", i, rc);
        cr_assert(o == 0 && z == 0, "case %zu: a slab was granted", i);
        plasma_stats after = stats();
        assert_stats_eq(&before, &after, "a bad return range");
        check_store();
    }

    /* fill the rest of the store: the returned tail is the only free memory */
    cr_assert_eq(before.free_blocks, 1);
    object_id_t filler = oid(90), reuse = oid(91);
    uint64_t foff, roff;
    cr_assert_eq(plasma_create(st, c, &filler, before.largest_free, 0, &foff), 0);
    cr_assert_eq(stats().largest_free, 0);
    uint64_t o = 1, z = 1;
    cr_assert_eq(plasma_slab_grant(st, a, 0, next, s1 + SLAB, &o, &z), 0, "%s", rayc_last_error());
    cr_assert(o == 0 && z == 0);
    plasma_stats s = stats();
    cr_assert_eq(s.reserved, SLAB, "only b's slab is left");
    cr_assert_eq(s.used, before.used + before.largest_free);
    cr_assert_eq(s.largest_free, s1 + SLAB - next);
    cr_assert_eq(a->npieces, 0);
    check_store();
    cr_assert_eq(plasma_create(st, c, &reuse, s1 + SLAB - next, 0, &roff), 0, "%s",
                 rayc_last_error());
    cr_assert_eq(roff, next, "the returned tail is reused");

    /* the tail is given back even when no new slab can be had */
    cr_assert_eq(plasma_slab_grant(st, b, SLAB, sb, sb + SLAB, &o, &z), RAYC_ESTORE_FULL);
    cr_assert_eq(z, 0);
    cr_assert_eq(stats().reserved, 0);
    cr_assert_eq(b->npieces, 0);
    object_id_t x = oid(60);
    cr_assert_eq(plasma_slab_create(st, b, &x, sb, 64), RAYC_EINVAL);
    check_store();
    plasma_client_free(c); /* aborts the filler and the reuse */

    /* give back a tail and take a new slab in one call */
    uint64_t s2 = grant(b, SLAB, &size);
    slab_put(b, 20, s2, 100);
    before = stats();
    cr_assert_eq(plasma_slab_grant(st, b, SLAB, s2 + 128, s2 + SLAB, &o, &z), 0, "%s",
                 rayc_last_error());
    cr_assert_eq(z, SLAB);
    s = stats();
    cr_assert_eq(s.reserved, before.reserved - (SLAB - 128) + SLAB);
    cr_assert_eq(s.used, before.used);
    cr_assert_eq(b->npieces, 1);
    cr_assert(b->pieces[0].off == o && b->pieces[0].end == o + SLAB);
    check_store();
    plasma_client_free(b);
    plasma_client_free(a);
    s = stats();
    cr_assert_eq(s.used + s.reserved + s.objects, 0);
    cr_assert_eq(s.free_blocks, 1);
}

Test(plasma_store, slab_client_free_frees_pieces)
{
    hook_counts hc = {0};
    plasma_hooks h = {.on_object_sealed = on_sealed, .on_object_deleted = on_deleted};
    node_id_t node = node_id_random();
    plasma_store_set_hooks(st, &node, &h, &hc);
    plasma_client *a = plasma_client_new(st, NULL), *b = plasma_client_new(st, NULL);
    uint64_t size, s1 = grant(a, SLAB, &size), s2 = grant(a, 4096, &size);
    slab_put(a, 1, s1 + 1024, 1000); /* out of order: splits the piece */
    object_id_t id1 = oid(1), id2 = oid(2), id3 = oid(3);
    cr_assert_eq(plasma_slab_create(st, a, &id2, s1 + 4096, 500), 0); /* never sealed */
    slab_put(a, 3, s2, 64);
    uint64_t sb = grant(b, SLAB, &size);
    cr_assert_eq(a->npieces, 4);
    plasma_view v;
    cr_assert_eq(plasma_pin(st, b, &id1, &v), 0);
    cr_assert_eq(hc.sealed, 2, "slab objects are announced like any other");
    plasma_stats s = stats();
    cr_assert_eq(s.reserved, (SLAB - 1024 - 512) + (4096 - 64) + SLAB);
    cr_assert_eq(s.used, 1024 + 512 + 64);
    check_store();

    plasma_client_free(a);
    s = stats();
    cr_assert_eq(s.reserved, SLAB, "a's pieces are freed, b's slab stays");
    cr_assert_eq(plasma_object_state(st, &id2, NULL), PLASMA_ABSENT, "unsealed create aborted");
    cr_assert_eq(plasma_object_state(st, &id3, NULL), PLASMA_ABSENT, "owned object deleted");
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_SEALED, "b still pins it");
    cr_assert_eq(hc.deleted, 1);
    cr_assert_eq(s.used, 1024);
    cr_assert_eq(s.objects, 1);
    cr_assert(same(v.off, 1000, 1));
    cr_assert_eq(v.off, s1 + 1024);
    check_store();
    cr_assert_eq(plasma_release(st, b, &id1), 0);
    cr_assert_eq(plasma_object_state(st, &id1, NULL), PLASMA_ABSENT, "freed with its last pin");
    cr_assert_eq(hc.deleted, 2);
    s = stats();
    cr_assert_eq(s.used, 0);
    cr_assert_eq(s.objects, 0);
    cr_assert_eq(b->npieces, 1);
    cr_assert_eq(b->pieces[0].off, sb);
    check_store();
    plasma_client_free(b);
    s = stats();
    cr_assert_eq(s.reserved, 0);
    cr_assert_eq(s.free_blocks, 1);
    cr_assert_eq(s.largest_free, MIB);
}

Test(plasma_store, slab_objects_freed_evicted_spilled_like_any_other)
{
    plasma_client *a = plasma_client_new(st, NULL);
    uint64_t size, s0 = grant(a, SLAB, &size);
    const uint64_t n = 4000;
    for (int i = 0; i < 4; i++)
        slab_put(a, i + 1, s0 + (uint64_t)i * blk(n), n);
    object_id_t ids[5] = {oid(0), oid(1), oid(2), oid(3), oid(4)};
    cr_assert_eq(plasma_set_evictable(st, &ids[4], true), 0);
    plasma_stats s = stats();
    cr_assert_eq(s.used, 4 * blk(n));
    cr_assert_eq(s.reserved, SLAB - 4 * blk(n));

    /* sealed, unpinned: a delete frees it at once */
    cr_assert_eq(plasma_delete(st, &ids[1]), 0);
    cr_assert_eq(plasma_object_state(st, &ids[1], NULL), PLASMA_ABSENT);
    s = stats();
    cr_assert_eq(s.used, 3 * blk(n));
    cr_assert_eq(s.reserved, SLAB - 4 * blk(n));
    check_store();

    /* pressure: the evictable one goes, then the older slab objects spill */
    for (int i = 100; i < 106; i++)
        put(a, i, 200 * 1024);
    s = stats();
    cr_assert_eq(plasma_object_state(st, &ids[4], NULL), PLASMA_ABSENT);
    cr_assert_eq(s.evictions, 1);
    cr_assert_eq(plasma_object_state(st, &ids[2], NULL), PLASMA_SPILLED);
    cr_assert_eq(plasma_object_state(st, &ids[3], NULL), PLASMA_SPILLED);
    cr_assert_eq(s.reserved, SLAB - 4 * blk(n), "slab pieces are never spilled");
    check_store();
    /* clobber where they were: a restore must read the spill file */
    memset(plasma_store_base(st) + s0 + blk(n), 0xEE, 2 * blk(n));
    for (int i = 2; i <= 3; i++) {
        result r = {0};
        plasma_get(st, a, &ids[i], 1, 1000, get_cb, &r, 0);
        cr_assert_eq(r.calls, 1);
        cr_assert_eq(r.status, RAYC_OK, "get %d: %d", i, r.status);
        cr_assert_eq(r.v[0].size, n);
        cr_assert(same(r.v[0].off, n, i), "slab object %d corrupted by spill/restore", i);
        cr_assert_eq(plasma_release(st, a, &ids[i]), 0);
    }
    s = stats();
    cr_assert_geq(s.restores, 2);
    check_store();
    for (int i = 2; i <= 3; i++)
        cr_assert_eq(plasma_delete(st, &ids[i]), 0);
    for (int i = 100; i < 106; i++) {
        object_id_t id = oid(i);
        cr_assert_eq(plasma_delete(st, &id), 0);
    }
    s = stats();
    cr_assert_eq(s.used, 0);
    cr_assert_eq(s.objects, 0);
    cr_assert_eq(s.spilled_bytes, 0);
    cr_assert_eq(count_spill_files(), 0);
    cr_assert_eq(s.reserved, SLAB - 4 * blk(n));
    check_store();
    plasma_client_free(a);
    s = stats();
    cr_assert_eq(s.reserved, 0);
    cr_assert_eq(s.free_blocks, 1);
}

/* ---------------------------------------------------------- frames */

typedef struct {
    int frames;
    uint16_t type;
    ProtobufCMessage *msg;
} inbox;

static void srv_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    plasma_client *cl = conn_data(c);
    if (type == MSG_HANDSHAKE) { /* the raylet's part: it also passes the memfd here */
        Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
        Rpc__Status ok = RPC__STATUS__INIT;
        r.status = &ok;
        conn_send(c, MSG_HANDSHAKE_REPLY, &r.base);
        return;
    }
    cr_assert(plasma_handle(st, cl, type, m), "unhandled %s", msg_name(type));
}

static void srv_close(conn *c, int reason, const char *why)
{
    (void)reason, (void)why;
    plasma_client_free(conn_data(c));
}

static void cli_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    inbox *in = conn_data(c);
    if (type == MSG_HANDSHAKE_REPLY)
        return;
    /* keep a copy: the conn frees m after we return */
    uint8_t buf[4096];
    size_t n = protobuf_c_message_pack(m, buf);
    if (in->msg)
        msg_free(in->msg);
    in->msg = msg_unpack(type, buf, n);
    in->type = type;
    in->frames++;
}

static void cli_close(conn *c, int reason, const char *why)
{
    (void)c, (void)reason, (void)why;
}

static const conn_handlers srv_h = {srv_frame, srv_close};
static const conn_handlers cli_h = {cli_frame, cli_close};

Test(plasma_store, frame_handlers)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    conn *srv = conn_accept(base, sv[0], &srv_h, NULL, NULL);
    conn_set_data(srv, plasma_client_new(st, srv));
    inbox in = {0};
    conn *cli = conn_connect(base, sv[1], &cli_h, &in, NULL);
    for (int i = 0; i < 2000 && !conn_is_ready(cli); i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert(conn_is_ready(cli));
    object_id_t id = oid(5);

    Rpc__CreateObjectRequest cr = RPC__CREATE_OBJECT_REQUEST__INIT;
    cr.req_id = 11;
    cr.object_id.data = id.b;
    cr.object_id.len = OBJECT_ID_SIZE;
    cr.size = 5000;
    conn_send(cli, MSG_CREATE_OBJECT_REQ, &cr.base);
    run_until(&in.frames, 1, 2000);
    cr_assert_eq(in.type, MSG_CREATE_OBJECT_REPLY);
    Rpc__CreateObjectReply *crr = (Rpc__CreateObjectReply *)in.msg;
    cr_assert_eq(crr->req_id, 11);
    cr_assert_eq(crr->status->code, 0);
    fill(crr->offset, 5000, 5);

    Rpc__GetObjectsRequest gr = RPC__GET_OBJECTS_REQUEST__INIT;
    ProtobufCBinaryData idb = {OBJECT_ID_SIZE, id.b};
    gr.req_id = 12;
    gr.n_object_ids = 1;
    gr.object_ids = &idb;
    gr.timeout_ms = -1;
    conn_send(cli, MSG_GET_OBJECTS_REQ, &gr.base); /* waits for the seal below */
    Rpc__SealObject so = RPC__SEAL_OBJECT__INIT;
    so.object_id = idb;
    conn_send(cli, MSG_SEAL_OBJECT, &so.base);
    run_until(&in.frames, 2, 2000);
    cr_assert_eq(in.type, MSG_GET_OBJECTS_REPLY);
    Rpc__GetObjectsReply *grr = (Rpc__GetObjectsReply *)in.msg;
    cr_assert_eq(grr->req_id, 12);
    cr_assert_eq(grr->status->code, 0);
    cr_assert_eq(grr->n_objects, 1);
    cr_assert_eq(grr->objects[0]->size, 5000);
    cr_assert(same(grr->objects[0]->offset, 5000, 5));

    /* a bad id gets EINVAL, the connection lives on */
    Rpc__WaitObjectsRequest wr = RPC__WAIT_OBJECTS_REQUEST__INIT;
    ProtobufCBinaryData bad = {3, id.b};
    wr.req_id = 13;
    wr.n_object_ids = 1;
    wr.object_ids = &bad;
    conn_send(cli, MSG_WAIT_OBJECTS_REQ, &wr.base);
    run_until(&in.frames, 3, 2000);
    cr_assert_eq(in.type, MSG_WAIT_OBJECTS_REPLY);
    cr_assert_eq(((Rpc__WaitObjectsReply *)in.msg)->status->code, RAYC_EINVAL);

    Rpc__ReleaseObjects rel = RPC__RELEASE_OBJECTS__INIT;
    rel.n_object_ids = 1;
    rel.object_ids = &idb;
    conn_send(cli, MSG_RELEASE_OBJECTS, &rel.base);
    Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
    del.n_object_ids = 1;
    del.object_ids = &idb;
    conn_send(cli, MSG_DELETE_OBJECTS, &del.base);
    Rpc__StoreStatsRequest sr = RPC__STORE_STATS_REQUEST__INIT;
    sr.req_id = 14;
    conn_send(cli, MSG_STORE_STATS_REQ, &sr.base);
    run_until(&in.frames, 4, 2000);
    cr_assert_eq(in.type, MSG_STORE_STATS_REPLY);
    Rpc__StoreStatsReply *ssr = (Rpc__StoreStatsReply *)in.msg;
    cr_assert_eq(ssr->capacity, MIB);
    cr_assert_eq(ssr->objects, 0, "release + delete freed it");
    cr_assert_eq(ssr->used, 0);
    cr_assert_not(plasma_handle(st, conn_data(srv), MSG_HELLO, NULL));

    /* a pending get of a client that disconnects is cancelled cleanly */
    gr.req_id = 15;
    conn_send(cli, MSG_GET_OBJECTS_REQ, &gr.base);
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pending_gets, 1);
    conn_close(cli);
    for (int i = 0; i < 50 && s.pending_gets; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(1000);
        plasma_store_stats(st, &s);
    }
    cr_assert_eq(s.pending_gets, 0);
    if (in.msg)
        msg_free(in.msg);
}
