/*
 * test_gcs_kv.c -- KV semantics (overwrite flag, added, not-found,
 * namespaces, binary keys), plus the object directory and pub/sub fan-out,
 * the other small pure tables of the GCS.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../gcs/gcs_kv.h"
#include "../../gcs/gcs_map.h"
#include "../../gcs/gcs_objdir.h"
#include "../../gcs/gcs_pubsub.h"
#include "../../gcs/gcs_storage.h"
#include "log.h"
#include "rayc.h"

/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(gcs_map, .timeout = 30);
TestSuite(gcs_objdir, .timeout = 30);
TestSuite(gcs_pubsub, .timeout = 30);

#define B(s) (const uint8_t *)(s), strlen(s)

static gcs_kv_table *t;

static void setup(void)
{
    log_set_level(LOG_LEVEL_FATAL);
    t = gcs_kv_table_new();
    cr_assert(t != NULL);
}

static void teardown(void)
{
    gcs_kv_table_free(t);
}

TestSuite(gcs_kv, .init = setup, .fini = teardown, .timeout = 30);

static const char *get(const char *ns, const char *key)
{
    static char buf[256];
    const uint8_t *v;
    size_t n;
    if (gcs_kv_get(t, ns, B(key), &v, &n) != RAYC_OK)
        return NULL;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

Test(gcs_kv, put_of_a_new_key_is_added)
{
    bool added, written;
    cr_assert_eq(gcs_kv_put(t, "ns", B("k"), B("v1"), false, &added, &written), RAYC_OK);
    cr_assert(added);
    cr_assert(written);
    cr_assert_str_eq(get("ns", "k"), "v1");
}

Test(gcs_kv, put_without_overwrite_keeps_the_old_value)
{
    bool added, written;
    gcs_kv_put(t, "ns", B("k"), B("v1"), false, NULL, NULL);
    cr_assert_eq(gcs_kv_put(t, "ns", B("k"), B("v2"), false, &added, &written), RAYC_OK);
    cr_assert_not(added);
    cr_assert_not(written);
    cr_assert_str_eq(get("ns", "k"), "v1");
}

Test(gcs_kv, put_with_overwrite_replaces)
{
    bool added, written;
    gcs_kv_put(t, "ns", B("k"), B("v1"), false, NULL, NULL);
    cr_assert_eq(gcs_kv_put(t, "ns", B("k"), B("v2"), true, &added, &written), RAYC_OK);
    cr_assert_not(added);
    cr_assert(written);
    cr_assert_str_eq(get("ns", "k"), "v2");
}

Test(gcs_kv, get_of_an_absent_key_is_not_found)
{
    const uint8_t *v;
    size_t n;
    cr_assert_eq(gcs_kv_get(t, "ns", B("nope"), &v, &n), RAYC_ENOTFOUND);
    cr_assert_not(gcs_kv_exists(t, "ns", B("nope")));
}

Test(gcs_kv, namespaces_are_separate)
{
    gcs_kv_put(t, "a", B("bc"), B("1"), false, NULL, NULL);
    gcs_kv_put(t, "ab", B("c"), B("2"), false, NULL, NULL);
    cr_assert_str_eq(get("a", "bc"), "1");
    cr_assert_str_eq(get("ab", "c"), "2");
    cr_assert_null(get("", "abc"));
    cr_assert_eq(gcs_kv_count(t), 2);
}

Test(gcs_kv, del_and_exists)
{
    gcs_kv_put(t, "ns", B("k"), B("v"), false, NULL, NULL);
    cr_assert(gcs_kv_exists(t, "ns", B("k")));
    cr_assert_eq(gcs_kv_del(t, "ns", B("k")), RAYC_OK);
    cr_assert_not(gcs_kv_exists(t, "ns", B("k")));
    cr_assert_eq(gcs_kv_del(t, "ns", B("k")), RAYC_ENOTFOUND);
}

Test(gcs_kv, binary_keys_and_long_keys)
{
    const uint8_t key[] = {0, 1, 0, 2};
    const uint8_t *v;
    size_t n;
    cr_assert_eq(gcs_kv_put(t, "ns", key, sizeof(key), B("bin"), false, NULL, NULL), RAYC_OK);
    cr_assert_eq(gcs_kv_get(t, "ns", key, sizeof(key), &v, &n), RAYC_OK);
    cr_assert_eq(gcs_kv_get(t, "ns", key, 3, &v, &n), RAYC_ENOTFOUND);
    char longkey[1000];
    memset(longkey, 'x', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    gcs_kv_put(t, "ns", B(longkey), B("long"), false, NULL, NULL);
    cr_assert_str_eq(get("ns", longkey), "long");
}

Test(gcs_kv, storage_key_and_load_round_trip)
{
    size_t len;
    uint8_t *sk = gcs_kv_storage_key("code", B("abc"), &len);
    cr_assert_eq(len, 8);
    cr_assert(memcmp(sk, "code\0abc", 8) == 0);
    cr_assert_eq(gcs_kv_load(t, sk, len, B("bytes")), RAYC_OK);
    free(sk);
    cr_assert_str_eq(get("code", "abc"), "bytes");
    cr_assert_eq(gcs_kv_load(t, B("no-separator"), B("x")), RAYC_EINVAL);
}

/* --------------------------------------------------------------- the map */

Test(gcs_map, grows_and_deletes_while_iterating)
{
    gcs_map *m = gcs_map_new(NULL);
    for (uintptr_t i = 1; i <= 1000; i++)
        cr_assert_eq(gcs_map_put(m, &i, sizeof(i), (void *)i), 1);
    cr_assert_eq(gcs_map_size(m), 1000);
    uintptr_t k = 500;
    cr_assert_eq((uintptr_t)gcs_map_get(m, &k, sizeof(k)), 500);
    gcs_map_iter it;
    void *v;
    size_t seen = 0;
    gcs_map_iter_init(&it);
    const uint8_t *key;
    size_t klen;
    while (gcs_map_next(m, &it, &key, &klen, &v)) {
        seen++;
        if ((uintptr_t)v % 2 == 0)
            cr_assert(gcs_map_del(m, key, klen));
    }
    cr_assert_eq(seen, 1000);
    cr_assert_eq(gcs_map_size(m), 500);
    cr_assert_not(gcs_map_has(m, &k, sizeof(k)));
    gcs_map_free(m);
}

/* ------------------------------------------------------ object directory */

static uint8_t obj[2][OBJECT_ID_SIZE], node[2][NODE_ID_SIZE];

static Rpc__ObjectLocation loc(int o, int n, uint64_t size, bool removed)
{
    memset(obj[o], 0xa0 + o, OBJECT_ID_SIZE);
    memset(node[n], 0xb0 + n, NODE_ID_SIZE);
    Rpc__ObjectLocation l = RPC__OBJECT_LOCATION__INIT;
    l.object_id.data = obj[o];
    l.object_id.len = OBJECT_ID_SIZE;
    l.node_id.data = node[n];
    l.node_id.len = NODE_ID_SIZE;
    l.size = size;
    l.removed = removed;
    return l;
}

static size_t lost;
static void on_lost(void *arg, const Rpc__ObjectLocation *l)
{
    (void)arg;
    cr_assert(l->removed);
    lost++;
}

Test(gcs_objdir, adds_removes_and_drops_a_dead_node)
{
    gcs_objdir *d = gcs_objdir_new();
    Rpc__ObjectLocation l;
    l = loc(0, 0, 100, false);
    cr_assert_eq(gcs_objdir_apply(d, &l), 1);
    cr_assert_eq(gcs_objdir_apply(d, &l), 0, "same location again is a no-op");
    l = loc(0, 1, 100, false);
    cr_assert_eq(gcs_objdir_apply(d, &l), 1);
    l = loc(1, 1, 7, false);
    cr_assert_eq(gcs_objdir_apply(d, &l), 1);
    cr_assert_eq(gcs_objdir_count(d, obj[0], OBJECT_ID_SIZE), 2);

    Rpc__ObjectLocation out[4];
    cr_assert_eq(gcs_objdir_get(d, obj[1], OBJECT_ID_SIZE, out, 4), 1);
    cr_assert_eq(out[0].size, 7);
    cr_assert(memcmp(out[0].node_id.data, node[1], NODE_ID_SIZE) == 0);

    l = loc(0, 0, 0, true);
    cr_assert_eq(gcs_objdir_apply(d, &l), 1);
    cr_assert_eq(gcs_objdir_apply(d, &l), 0);
    cr_assert_eq(gcs_objdir_count(d, obj[0], OBJECT_ID_SIZE), 1);

    lost = 0;
    cr_assert_eq(gcs_objdir_remove_node(d, node[1], NODE_ID_SIZE, on_lost, NULL), 2);
    cr_assert_eq(lost, 2);
    cr_assert_eq(gcs_objdir_size(d), 0);

    l = loc(0, 0, 1, false);
    l.object_id.len = 3;
    cr_assert_eq(gcs_objdir_apply(d, &l), RAYC_EINVAL);
    gcs_objdir_free(d);
}

Test(gcs_objdir, load_restores_a_location)
{
    gcs_objdir *d = gcs_objdir_new();
    Rpc__ObjectLocation l = loc(0, 0, 55, false);
    size_t len;
    uint8_t *p = gcs_storage_pack(&l.base, &len);
    cr_assert_eq(gcs_objdir_load(d, p, len), RAYC_OK);
    free(p);
    cr_assert_eq(gcs_objdir_count(d, obj[0], OBJECT_ID_SIZE), 1);
    uint8_t key[GCS_OBJDIR_KEY_SIZE];
    gcs_objdir_storage_key(obj[0], node[0], key);
    cr_assert(memcmp(key + OBJECT_ID_SIZE, node[0], NODE_ID_SIZE) == 0);
    gcs_objdir_free(d);
}

/* ---------------------------------------------------------------- pubsub */

static int got[3];
static void send_to(void *sub, const Rpc__PubMessage *m)
{
    (void)m;
    got[(intptr_t)sub]++;
}

Test(gcs_pubsub, messages_reach_subscribers_of_their_channel)
{
    gcs_pubsub *ps = gcs_pubsub_new(send_to);
    memset(got, 0, sizeof(got));
    cr_assert_eq(gcs_pubsub_subscribe(ps, (void *)0, RPC__CHANNEL__CHANNEL_NODE), RAYC_OK);
    cr_assert_eq(gcs_pubsub_subscribe(ps, (void *)1, GCS_PUBSUB_ALL), RAYC_OK);
    cr_assert_eq(gcs_pubsub_subscribe(ps, (void *)2, 0x100), RAYC_EINVAL);
    Rpc__NodeInfo n = RPC__NODE_INFO__INIT;
    Rpc__JobInfo j = RPC__JOB_INFO__INIT;
    cr_assert_eq(gcs_pubsub_publish_node(ps, &n), 2);
    cr_assert_eq(gcs_pubsub_publish_job(ps, &j), 1);
    cr_assert_eq(got[0], 1);
    cr_assert_eq(got[1], 2);
    cr_assert_eq(got[2], 0);
    gcs_pubsub_unsubscribe(ps, (void *)1);
    cr_assert_eq(gcs_pubsub_publish_job(ps, &j), 0);
    cr_assert_eq(gcs_pubsub_count(ps), 1);
    gcs_pubsub_free(ps);
}
