/* test_plasma_limits.c -- what a hostile local client cannot make the object
 * store do (raylet/plasma_store.h): a size near 2^64 cannot wrap into a small
 * block (and so evicts and spills nothing), only an object's creator can
 * seal it, and only its owner can delete it. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "../../raylet/plasma_internal.h"
#include "../../raylet/plasma_store.h"
#include "rayc.h"

#define MIB (1u << 20)

static struct event_base *base;
static plasma_store *st;
static char spill_dir[64];
static rayc_config cfg; /* the store keeps a pointer to it */

static void setup(void)
{
    log_init(NULL, LOG_LEVEL_FATAL);
    base = event_base_new();
    config_defaults(&cfg);
    strcpy(spill_dir, "/tmp/plasma_limits_XXXXXX");
    cr_assert_not_null(mkdtemp(spill_dir));
    char err[256];
    cr_assert_eq(config_set(&cfg, "object_store_memory", "1048576", err, sizeof(err)), 0);
    cr_assert_eq(config_set(&cfg, "spill_dir", spill_dir, err, sizeof(err)), 0);
    st = plasma_store_new(base, &cfg, err, sizeof(err));
    cr_assert_not_null(st, "%s", err);
}

static void teardown(void)
{
    plasma_store_free(st);
    event_base_free(base);
    config_free(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", spill_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(plasma_limits, .init = setup, .fini = teardown, .timeout = 30);

static object_id_t oid(int i)
{
    object_id_t id;
    memset(&id, 0, sizeof(id));
    id.b[0] = (uint8_t)i;
    id.b[1] = 0x5a;
    return id;
}

Test(plasma_limits, size_rounding_saturates)
{
    cr_assert_eq(plasma__round_block(UINT64_MAX), UINT64_MAX);
    cr_assert_eq(plasma__round_block(UINT64_MAX - 1), UINT64_MAX);
    cr_assert_eq(plasma__round_block(1), PLASMA_ALLOC_ALIGN);
}

Test(plasma_limits, huge_create_fails_and_evicts_nothing)
{
    plasma_client *a = plasma_client_new(st, NULL);
    object_id_t small = oid(1);
    uint64_t off;
    cr_assert_eq(plasma_create(st, a, &small, 1000, PLASMA_EVICTABLE, &off), 0);
    cr_assert_eq(plasma_seal(st, a, &small), 0);
    plasma_release(st, a, &small);
    object_id_t huge = oid(2);
    cr_assert_eq(plasma_create(st, a, &huge, UINT64_MAX, 0, &off), RAYC_ESTORE_FULL);
    cr_assert(strstr(rayc_last_error(), "larger than the whole object store") != NULL, "%s",
              rayc_last_error());
    uint64_t size;
    cr_assert_eq(plasma_object_state(st, &small, &size), PLASMA_SEALED,
                 "an evictable object is still there");
    plasma_client_free(a);
}

Test(plasma_limits, only_the_creator_seals)
{
    plasma_client *a = plasma_client_new(st, NULL);
    plasma_client *b = plasma_client_new(st, NULL);
    object_id_t id = oid(3);
    uint64_t off, size;
    cr_assert_eq(plasma_create(st, a, &id, 4096, 0, &off), 0);
    cr_assert_eq(plasma_seal(st, b, &id), RAYC_EINVAL);
    cr_assert(strstr(rayc_last_error(), "only the client that created") != NULL);
    cr_assert_eq(plasma_object_state(st, &id, &size), PLASMA_CREATED, "still unsealed");
    cr_assert_eq(plasma_seal(st, a, &id), 0);
    cr_assert_eq(plasma_object_state(st, &id, &size), PLASMA_SEALED);
    plasma_client_free(b);
    plasma_client_free(a);
}

/* A client of the store with a worker id, as the raylet makes them. */
static plasma_client *client_of(uint8_t who)
{
    plasma_client *cl = plasma_client_new(st, NULL);
    cr_assert_not_null(cl);
    worker_id_t w;
    memset(&w, who, sizeof(w));
    plasma_client_set_worker_id(cl, &w);
    return cl;
}

static void put_sealed(plasma_client *cl, const object_id_t *id)
{
    uint64_t off;
    cr_assert_eq(plasma_create(st, cl, id, 4096, 0, &off), 0);
    cr_assert_eq(plasma_seal(st, cl, id), 0);
}

/* DELETE_OBJECTS from cl, as its frame would arrive. */
static void wire_delete(plasma_client *cl, const object_id_t *id)
{
    ProtobufCBinaryData b = {OBJECT_ID_SIZE, (uint8_t *)id->b};
    Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
    del.n_object_ids = 1;
    del.object_ids = &b;
    cr_assert(plasma_handle(st, cl, MSG_DELETE_OBJECTS, &del.base));
}

Test(plasma_limits, only_the_owner_deletes)
{
    plasma_client *a = client_of(0xa), *b = client_of(0xb);
    object_id_t id = oid(4);
    put_sealed(a, &id);
    /* Before: any client's delete freed it (and spread to other nodes). */
    cr_assert_eq(plasma_delete_by(st, b, &id), RAYC_EINVAL);
    cr_assert(strstr(rayc_last_error(), "only the owner") != NULL, "%s", rayc_last_error());
    wire_delete(b, &id);
    cr_assert_eq(plasma_object_state(st, &id, NULL), PLASMA_SEALED, "b cannot free a's object");
    wire_delete(a, &id);
    cr_assert_eq(plasma_object_state(st, &id, NULL), PLASMA_ABSENT, "the owner can");
    cr_assert_eq(plasma_delete_by(st, b, &id), RAYC_ENOTFOUND);
    plasma_client_free(b);
    plasma_client_free(a);
}

Test(plasma_limits, a_task_return_is_deleted_by_its_submitter_not_its_worker)
{
    plasma_client *worker = client_of(0x1), *submitter = client_of(0x2);
    object_id_t id = oid(5);
    put_sealed(worker, &id);
    cr_assert_eq(plasma_set_owner(st, &id, submitter), 0); /* TaskDone */
    wire_delete(worker, &id);
    cr_assert_eq(plasma_object_state(st, &id, NULL), PLASMA_SEALED, "the worker gave it away");
    wire_delete(submitter, &id);
    cr_assert_eq(plasma_object_state(st, &id, NULL), PLASMA_ABSENT);
    plasma_client_free(submitter);
    plasma_client_free(worker);
}

Test(plasma_limits, a_remote_owner_is_known_by_its_worker_id)
{
    plasma_client *raylet = plasma_client_new(st, NULL); /* a pull's writer */
    plasma_client *owner = client_of(0x3), *other = client_of(0x4);
    plasma_client *nil = plasma_client_new(st, NULL); /* no worker id */
    object_id_t id = oid(6), unknown = oid(7);
    worker_id_t who;
    memset(&who, 0x3, sizeof(who));
    put_sealed(raylet, &id);
    cr_assert_eq(plasma_set_remote_owner(st, &id, &who), 0);
    worker_id_t got;
    cr_assert(plasma_object_owner(st, &id, &got));
    cr_assert_eq(memcmp(&got, &who, sizeof(got)), 0);
    cr_assert_eq(plasma_delete_by(st, other, &id), RAYC_EINVAL);
    cr_assert_eq(plasma_delete_by(st, raylet, &id), RAYC_EINVAL, "the writer gave it away");
    /* An object of an unknown owner is nobody's, not every nil client's. */
    put_sealed(raylet, &unknown);
    worker_id_t zero = {{0}};
    cr_assert_eq(plasma_set_remote_owner(st, &unknown, &zero), 0);
    cr_assert_eq(plasma_delete_by(st, nil, &unknown), RAYC_EINVAL);
    cr_assert_eq(plasma_delete_by(st, owner, &id), 0, "its owner deletes a copy made for it");
    cr_assert_eq(plasma_object_state(st, &id, NULL), PLASMA_ABSENT);
    cr_assert_eq(plasma_delete(st, &unknown), 0, "the raylet itself still can");
    plasma_client_free(nil);
    plasma_client_free(other);
    plasma_client_free(owner);
    plasma_client_free(raylet);
}

typedef struct {
    int sealed;
    worker_id_t owner;
} announce_log;

static void on_announced(void *arg, const plasma_object_event *ev)
{
    announce_log *l = arg;
    l->sealed++;
    l->owner = ev->owner;
}

Test(plasma_limits, a_new_owner_is_announced_to_the_directory)
{
    announce_log l = {0};
    plasma_hooks h = {.on_object_sealed = on_announced};
    node_id_t node = node_id_random();
    plasma_store_set_hooks(st, &node, &h, &l);
    plasma_client *worker = client_of(0x5), *submitter = client_of(0x6);
    object_id_t id = oid(8);
    put_sealed(worker, &id);
    cr_assert_eq(l.sealed, 1);
    cr_assert_eq(l.owner.b[0], 0x5, "announced with its creator as the owner");
    cr_assert_eq(plasma_set_owner(st, &id, submitter), 0);
    cr_assert_eq(l.sealed, 2, "announced again for the directory");
    cr_assert_eq(l.owner.b[0], 0x6);
    cr_assert_eq(plasma_set_owner(st, &id, submitter), 0);
    cr_assert_eq(l.sealed, 2, "no change, no event");
    plasma_client_free(submitter);
    plasma_client_free(worker);
}

/* A GET of n random ids from cl as its frame would arrive, waiting forever. */
static void wire_get_unknown(plasma_client *cl, size_t n, uint32_t salt)
{
    object_id_t *ids = calloc(n, sizeof(*ids));
    ProtobufCBinaryData *b = calloc(n, sizeof(*b));
    cr_assert(ids && b);
    for (size_t i = 0; i < n; i++) {
        memcpy(ids[i].b, &salt, sizeof(salt));
        memcpy(ids[i].b + sizeof(salt), &i, sizeof(i));
        b[i] = (ProtobufCBinaryData){OBJECT_ID_SIZE, ids[i].b};
    }
    Rpc__GetObjectsRequest req = RPC__GET_OBJECTS_REQUEST__INIT;
    req.n_object_ids = n;
    req.object_ids = b;
    req.timeout_ms = -1;
    cr_assert(plasma_handle(st, cl, MSG_GET_OBJECTS_REQ, &req.base));
    free(b);
    free(ids);
}

Test(plasma_limits, gets_of_unknown_ids_are_bounded_per_request_and_client)
{
    plasma_client *a = client_of(0x7), *b = client_of(0x8);
    /* Before: every id got an entry, whatever the number. */
    wire_get_unknown(a, MSG_STORE_MAX_IDS + 1, 1);
    plasma_stats s;
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pending_gets, 0, "a get of too many ids is refused");
    cr_assert_eq(st->tab_len, 0);
    wire_get_unknown(a, MSG_STORE_MAX_IDS, 2);
    wire_get_unknown(a, MSG_STORE_MAX_IDS, 3);
    wire_get_unknown(a, 1, 4); /* past PLASMA_CLIENT_MAX_WAITING */
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pending_gets, 2, "a client's pending gets are bounded");
    cr_assert_eq(st->tab_len, PLASMA_CLIENT_MAX_WAITING);
    wire_get_unknown(b, 1, 5);
    plasma_store_stats(st, &s);
    cr_assert_eq(s.pending_gets, 3, "another client is not affected");
    plasma_client_free(a);
    cr_assert_eq(st->tab_len, 1);
    cr_assert_eq(st->tab_cap, PLASMA_TAB_MIN, "the table gave its memory back");
    plasma_client_free(b);
    cr_assert_eq(st->tab_len, 0);
}
