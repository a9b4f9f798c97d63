/* test_plasma_limits.c -- what a hostile local client cannot make the object
 * store do (raylet/plasma_store.h): a size near 2^64 cannot wrap into a small
 * block (and so evicts and spills nothing), and only an object's creator can
 * seal it. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
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
