/* test_arg_dedup.c -- the table of large by-value arguments in the store
 * (worker/arg_dedup.h): found by content, replaced, forgotten with their
 * object, nothing left behind. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../worker/arg_dedup.h"
#include "ids.h"

TestSuite(arg_dedup, .timeout = 30);

static object_id_t obj(uint32_t i)
{
    task_id_t t = task_id_for_driver(job_id_from_int(7));
    return object_id_for_put(&t, i);
}

Test(arg_dedup, finds_by_hash_and_size)
{
    dedup_table *t = dedup_new();
    cr_assert_not_null(t);
    object_id_t a = obj(1), out;
    cr_assert_not(dedup_find(t, 42, 1000, &out));
    cr_assert_eq(dedup_add(t, 42, 1000, &a), 0);
    cr_assert(dedup_find(t, 42, 1000, &out));
    cr_assert_eq(memcmp(out.b, a.b, OBJECT_ID_SIZE), 0);
    cr_assert_not(dedup_find(t, 42, 1001, &out), "another size is another content");
    cr_assert_not(dedup_find(t, 43, 1000, &out), "another hash is another content");
    dedup_free(t);
}

Test(arg_dedup, newer_object_replaces_older_of_same_content)
{
    dedup_table *t = dedup_new();
    object_id_t a = obj(1), b = obj(2), out;
    cr_assert_eq(dedup_add(t, 5, 500, &a), 0);
    cr_assert_eq(dedup_add(t, 5, 500, &b), 0);
    cr_assert_eq(dedup_count(t), 1);
    cr_assert(dedup_find(t, 5, 500, &out));
    cr_assert_eq(memcmp(out.b, b.b, OBJECT_ID_SIZE), 0);
    dedup_forget(t, &a); /* the replaced one: nothing to forget */
    cr_assert(dedup_find(t, 5, 500, &out));
    dedup_free(t);
}

Test(arg_dedup, forgotten_with_its_object)
{
    dedup_table *t = dedup_new();
    object_id_t ids[100], out;
    for (uint32_t i = 0; i < 100; i++) {
        ids[i] = obj(i + 1);
        cr_assert_eq(dedup_add(t, i, 1 << 20, &ids[i]), 0);
    }
    cr_assert_eq(dedup_count(t), 100);
    for (uint32_t i = 0; i < 100; i += 2)
        dedup_forget(t, &ids[i]);
    cr_assert_eq(dedup_count(t), 50);
    for (uint32_t i = 0; i < 100; i++)
        cr_assert_eq(dedup_find(t, i, 1 << 20, &out), i % 2 == 1, "content %u", i);
    object_id_t stranger = obj(5000);
    dedup_forget(t, &stranger);
    cr_assert_eq(dedup_count(t), 50);
    dedup_free(t);
    dedup_free(NULL);
}
