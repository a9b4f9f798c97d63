/* test_id_map.c -- the intrusive id-keyed hash table (common/id_map.h),
 * checked against a plain array as the reference model. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "id_map.h"
#include "ids.h"

typedef struct entry {
    int value;
    id_node hnode; /* deliberately after the value: key_off is negative */
    object_id_t id;
} entry;

static id_map make_map(size_t initial)
{
    id_map m;
    cr_assert_eq(id_map_init(&m, ID_MAP_KEY_OFF(entry, hnode, id), OBJECT_ID_SIZE, initial), 0);
    return m;
}

static entry *find(id_map *m, const object_id_t *id)
{
    return ID_MAP_ENTRY(id_map_find(m, id), entry, hnode);
}

Test(id_map, empty_map_finds_nothing)
{
    id_map m = make_map(0);
    object_id_t id;
    id_random_bytes(&id, sizeof(id));
    cr_assert_null(find(&m, &id));
    cr_assert_null(id_map_remove_key(&m, &id));
    cr_assert_eq(id_map_count(&m), 0);
    cr_assert_eq(m.nbuckets, 8, "initial size rounds up to at least 8");
    id_map_destroy(&m);
}

Test(id_map, insert_find_remove_grow)
{
    enum { N = 5000 };
    id_map m = make_map(8);
    entry *e = calloc(N, sizeof(*e));
    for (int i = 0; i < N; i++) {
        e[i].value = i;
        id_random_bytes(&e[i].id, sizeof(e[i].id));
        id_map_insert(&m, &e[i].hnode);
    }
    cr_assert_eq(id_map_count(&m), N);
    cr_assert_geq(m.nbuckets, N, "the table grew with its load");
    for (int i = 0; i < N; i++)
        cr_assert_eq(find(&m, &e[i].id), &e[i]);
    for (int i = 0; i < N; i += 2)
        cr_assert(id_map_remove(&m, &e[i].hnode));
    cr_assert_not(id_map_remove(&m, &e[0].hnode), "a second remove is refused");
    for (int i = 0; i < N; i++)
        cr_assert_eq(find(&m, &e[i].id), i % 2 ? &e[i] : NULL);
    cr_assert_eq(ID_MAP_ENTRY(id_map_remove_key(&m, &e[1].id), entry, hnode), &e[1]);
    cr_assert_eq(id_map_count(&m), N / 2 - 1);
    id_map_destroy(&m);
    free(e);
}

Test(id_map, keys_differing_in_last_bytes)
{
    /* Object ids of one task differ only in their last four bytes. */
    id_map m = make_map(8);
    entry e[64];
    task_id_t t = task_id_random(job_id_from_int(7));
    for (int i = 0; i < 64; i++) {
        e[i].id = object_id_for_return(&t, (uint32_t)i + 1);
        id_map_insert(&m, &e[i].hnode);
    }
    for (int i = 0; i < 64; i++)
        cr_assert_eq(find(&m, &e[i].id), &e[i]);
    id_map_destroy(&m);
}

Test(id_map, walk_visits_each_once_and_may_remove)
{
    enum { N = 300 };
    id_map m = make_map(8);
    entry *e = calloc(N, sizeof(*e));
    for (int i = 0; i < N; i++) {
        e[i].value = i;
        id_random_bytes(&e[i].id, sizeof(e[i].id));
        id_map_insert(&m, &e[i].hnode);
    }
    int seen[N] = {0};
    id_map_iter it;
    id_map_iter_init(&m, &it);
    for (id_node *n; (n = id_map_iter_next(&m, &it)) != NULL;) {
        entry *x = ID_MAP_ENTRY(n, entry, hnode);
        seen[x->value]++;
        if (x->value % 3 == 0)
            cr_assert(id_map_remove(&m, n));
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "entry %d visited %d times", i, seen[i]);
    cr_assert_eq(id_map_count(&m), N - (N + 2) / 3);
    id_map_destroy(&m);
    free(e);
}

Test(id_map, destroy_accepts_zeroed_and_twice)
{
    id_map m;
    memset(&m, 0, sizeof(m));
    id_map_destroy(&m);
    m = make_map(16);
    id_map_destroy(&m);
    id_map_destroy(&m);
    cr_assert_null(m.buckets);
}
