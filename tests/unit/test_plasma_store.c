/*
 * test_plasma_store.c -- the plasma store's object state machine through its
 * internal API (create/seal/get/release/delete, eviction, spill and
 * byte-exact restore, full store, fate-sharing), on a small store (1 MiB)
 * with a real event_base and a private spill dir; and the frame handlers
 * over a socketpair with two conns on the same loop.
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
#include "../../raylet/plasma_store.h"
#include "rayc.h"

#define MIB (1u << 20)

static struct event_base *base;
static plasma_store *st;
static rayc_config cfg;
static char spill_dir[64];

static void setup_store(uint64_t bytes, int64_t wait_ms)
{
    log_init(NULL, LOG_WARN);
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

static int count_spill_files(void)
{
    DIR *d = opendir(spill_dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".obj"))
            n++;
    closedir(d);
    return n;
}

static void teardown(void)
{
    plasma_store_free(st);
    cr_assert_eq(count_spill_files(), 0, "spill files left behind");
    rmdir(spill_dir);
    event_base_free(base);
    config_free(&cfg);
}

TestSuite(plasma_store, .init = setup, .fini = teardown);

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
