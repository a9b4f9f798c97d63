/* test_ids.c -- id hex, derivation and randomness (common/ids.h). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

/* Fill an id with a recognisable non-random pattern. */
/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(ids, .timeout = 30);

static void pattern(void *id, size_t n, uint8_t seed)
{
    uint8_t *b = id;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed + 37 * i);
}

static void check_round_trip(const void *id, size_t n)
{
    char hex[ID_HEX_MAX];
    uint8_t back[32];
    cr_assert_eq(id_hex(id, n, hex), hex);
    cr_assert_eq(strlen(hex), 2 * n);
    for (size_t i = 0; i < 2 * n; i++)
        cr_assert(strchr("0123456789abcdef", hex[i]) != NULL, "non-lowercase hex '%c'", hex[i]);
    memset(back, 0xee, sizeof(back));
    cr_assert_eq(id_from_hex(hex, back, n), 0);
    cr_assert_eq(memcmp(back, id, n), 0);
}

Test(ids, hex_round_trip_every_type)
{
    job_id_t j = job_id_from_int(0xdeadbeef);
    actor_id_t a = actor_id_random(j);
    task_id_t t = task_id_random(j);
    object_id_t o = object_id_for_return(&t, 3);
    node_id_t n = node_id_random();
    worker_id_t w = worker_id_random();
    check_round_trip(&j, sizeof(j.b));
    check_round_trip(&a, sizeof(a.b));
    check_round_trip(&t, sizeof(t.b));
    check_round_trip(&o, sizeof(o.b));
    check_round_trip(&n, sizeof(n.b));
    check_round_trip(&w, sizeof(w.b));

    uint8_t all[OBJECT_ID_SIZE];
    for (int seed = 0; seed < 256; seed += 17) {
        pattern(all, sizeof(all), (uint8_t)seed);
        check_round_trip(all, sizeof(all));
    }
}

Test(ids, hex_known_value)
{
    job_id_t j = job_id_from_int(0x0102abcd);
    char hex[ID_HEX_MAX];
    cr_assert_str_eq(id_hex(j.b, JOB_ID_SIZE, hex), "0102abcd");
    uint8_t b[4];
    cr_assert_eq(id_from_hex("0102ABCD", b, 4), 0, "upper case is accepted");
    cr_assert_eq(memcmp(b, j.b, 4), 0);
}

Test(ids, bad_hex_rejected)
{
    uint8_t b[4] = {1, 2, 3, 4}, orig[4] = {1, 2, 3, 4};
    cr_assert_eq(id_from_hex(NULL, b, 4), -1);
    cr_assert_eq(id_from_hex("", b, 4), -1);
    cr_assert_eq(id_from_hex("0102abc", b, 4), -1, "too short");
    cr_assert_eq(id_from_hex("0102abcde", b, 4), -1, "too long");
    cr_assert_eq(id_from_hex("0102abcg", b, 4), -1, "bad char");
    cr_assert_eq(id_from_hex("0102ab c", b, 4), -1, "space");
    cr_assert_eq(id_from_hex("-102abcd", b, 4), -1, "sign");
    cr_assert_eq(id_from_hex("0x02abcd", b, 4), -1, "0x prefix");
    cr_assert_eq(memcmp(b, orig, 4), 0, "a rejected string leaves id untouched");
}

Test(ids, job_id_int_round_trip)
{
    uint32_t vals[] = {0, 1, 255, 256, 0x7fffffff, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        cr_assert_eq(job_id_to_int(job_id_from_int(vals[i])), vals[i]);
    job_id_t j = job_id_from_int(1);
    cr_assert_eq(j.b[3], 1, "big-endian");
    cr_assert_eq(j.b[0], 0);
}

Test(ids, actor_id_carries_job)
{
    job_id_t j = job_id_from_int(42);
    actor_id_t a = actor_id_random(j);
    cr_assert_eq(job_id_to_int(actor_id_job(&a)), 42);
    cr_assert_not(id_is_nil(a.b, 12), "unique part is random");
}

Test(ids, task_id_derivations)
{
    job_id_t j = job_id_from_int(7);
    task_id_t t = task_id_random(j);
    cr_assert_eq(job_id_to_int(task_id_job(&t)), 7);
    actor_id_t nil = task_id_actor(&t);
    cr_assert(id_is_nil(nil.b, 12), "a normal task has the nil actor of its job");
    cr_assert_eq(job_id_to_int(actor_id_job(&nil)), 7);

    actor_id_t a = actor_id_random(job_id_from_int(9));
    task_id_t at = task_id_for_actor(&a);
    actor_id_t back = task_id_actor(&at);
    cr_assert_eq(memcmp(back.b, a.b, ACTOR_ID_SIZE), 0);
    cr_assert_eq(job_id_to_int(task_id_job(&at)), 9);

    task_id_t d1 = task_id_for_driver(j), d2 = task_id_for_driver(j);
    cr_assert_eq(memcmp(d1.b, d2.b, TASK_ID_SIZE), 0, "driver task id is deterministic");
    cr_assert(id_is_nil(d1.b, 8));
    cr_assert_eq(job_id_to_int(task_id_job(&d1)), 7);
    task_id_t d3 = task_id_for_driver(job_id_from_int(8));
    cr_assert_neq(memcmp(d1.b, d3.b, TASK_ID_SIZE), 0, "differs per job");
}

Test(ids, object_id_derivations)
{
    task_id_t t = task_id_random(job_id_from_int(3));
    object_id_t r = object_id_for_return(&t, 1);
    object_id_t p = object_id_for_put(&t, 1);
    task_id_t rt = object_id_task(&r), pt = object_id_task(&p);
    cr_assert_eq(memcmp(rt.b, t.b, TASK_ID_SIZE), 0);
    cr_assert_eq(memcmp(pt.b, t.b, TASK_ID_SIZE), 0);
    cr_assert_eq(object_id_index(&r), 1);
    cr_assert_eq(object_id_index(&p), 1);
    cr_assert_not(object_id_is_put(&r));
    cr_assert(object_id_is_put(&p));
    cr_assert_neq(memcmp(r.b, p.b, OBJECT_ID_SIZE), 0, "return 1 and put 1 differ");

    object_id_t r2 = object_id_for_return(&t, 2);
    cr_assert_neq(memcmp(r.b, r2.b, OBJECT_ID_SIZE), 0);
    cr_assert_eq(object_id_index(&r2), 2);

    /* A return index can never smuggle the put flag in. */
    object_id_t big = object_id_for_return(&t, OBJECT_INDEX_PUT_FLAG | 5);
    cr_assert_not(object_id_is_put(&big));
    cr_assert_eq(object_id_index(&big), 5);
    object_id_t maxput = object_id_for_put(&t, 0x7fffffff);
    cr_assert(object_id_is_put(&maxput));
    cr_assert_eq(object_id_index(&maxput), 0x7fffffffu);
}

Test(ids, nil_and_hash)
{
    uint8_t z[OBJECT_ID_SIZE] = {0};
    cr_assert(id_is_nil(z, sizeof(z)));
    z[OBJECT_ID_SIZE - 1] = 1;
    cr_assert_not(id_is_nil(z, sizeof(z)));
    cr_assert(id_is_nil(z, 0));

    /* Object ids of one task differ only in the last byte: the hash must see it. */
    task_id_t t = task_id_random(job_id_from_int(1));
    object_id_t a = object_id_for_return(&t, 1), b = object_id_for_return(&t, 2);
    cr_assert_neq(id_hash(a.b, OBJECT_ID_SIZE), id_hash(b.b, OBJECT_ID_SIZE));
    cr_assert_eq(id_hash(a.b, OBJECT_ID_SIZE), id_hash(a.b, OBJECT_ID_SIZE));
}

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, NODE_ID_SIZE);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(ids, random_ids_do_not_collide)
{
    enum { N = 10000 };
    node_id_t *ids = malloc(sizeof(node_id_t) * N);
    cr_assert_not_null(ids);
    for (int i = 0; i < N; i++)
        ids[i] = node_id_random();
    qsort(ids, N, sizeof(node_id_t), cmp_ids);
    for (int i = 1; i < N; i++)
        cr_assert_neq(memcmp(ids[i - 1].b, ids[i].b, NODE_ID_SIZE), 0, "collision at %d", i);
    free(ids);

    /* The 8 random bytes of task ids too (the rest is shared by the job). */
    enum { M = 10000 };
    uint64_t *u = malloc(sizeof(uint64_t) * M);
    cr_assert_not_null(u);
    job_id_t j = job_id_from_int(1);
    for (int i = 0; i < M; i++) {
        task_id_t t = task_id_random(j);
        memcpy(&u[i], t.b, 8);
    }
    qsort(u, M, sizeof(uint64_t), cmp_u64);
    for (int i = 1; i < M; i++)
        cr_assert_neq(u[i - 1], u[i], "task id collision at %d", i);
    free(u);
}

/* Owner tags (docs/objects.md, "Borrowing"): after id_set_owner every task
 * id and put id starts with the tag (the worker id's first 4 bytes), task
 * ids are distinct and never the put task's. */
Test(ids, owner_tag_starts_task_and_put_ids)
{
    worker_id_t w = worker_id_random();
    w.b[0] |= 1; /* a non-zero tag */
    id_set_owner(&w);
    job_id_t j = job_id_from_int(3);
    task_id_t puts = task_id_for_puts(j);
    cr_assert(id_owner_tag_matches(puts.b, &w));
    object_id_t p = object_id_for_put(&puts, 5);
    cr_assert(id_owner_tag_matches(p.b, &w));
    cr_assert(object_id_is_put(&p));
    cr_assert_eq(job_id_to_int(task_id_job(&puts)), 3);
    task_id_t prev = task_id_random(j);
    for (int i = 0; i < 1000; i++) {
        task_id_t t = task_id_random(j);
        cr_assert(id_owner_tag_matches(t.b, &w));
        cr_assert_neq(memcmp(t.b, prev.b, TASK_ID_SIZE), 0, "task ids repeat");
        cr_assert_neq(memcmp(t.b, puts.b, TASK_ID_SIZE), 0, "a task id is the put task's");
        object_id_t r = object_id_for_return(&t, 1);
        cr_assert(id_owner_tag_matches(r.b, &w));
        prev = t;
    }
    worker_id_t other = worker_id_random();
    other.b[0] = (uint8_t)(w.b[0] ^ 0x80);
    cr_assert_not(id_owner_tag_matches(p.b, &other));
}
