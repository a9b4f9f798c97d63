/* test_reference_table.c -- librayc's reference table (worker/reference_table.h):
 * entries, the free list, finalisation, and the pin cache with its bounds,
 * observed through recording hooks instead of a store. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "rayc.h"
#include "../../worker/reference_table.h"

#define MAX_SEEN 4096

/* What the hooks were asked to do, in order. */
static struct {
    object_id_t released[MAX_SEEN];
    size_t nreleased, release_calls, max_batch;
    object_id_t deleted[MAX_SEEN];
    bool deleted_pin[MAX_SEEN];
    size_t ndeleted;
    object_id_t gone[MAX_SEEN];
    size_t ngone;
} seen;

static void rec_release(void *arg, ref_entry *const *es, size_t n)
{
    (void)arg;
    seen.release_calls++;
    if (n > seen.max_batch)
        seen.max_batch = n;
    for (size_t i = 0; i < n && seen.nreleased < MAX_SEEN; i++)
        seen.released[seen.nreleased++] = es[i]->id;
}

static void rec_delete(void *arg, const object_id_t *id, bool release_pin)
{
    (void)arg;
    seen.deleted_pin[seen.ndeleted] = release_pin;
    seen.deleted[seen.ndeleted++] = *id;
}

static void rec_gone(void *arg, const object_id_t *id)
{
    (void)arg;
    seen.gone[seen.ngone++] = *id;
}

static ref_table t;

static void setup(void)
{
    memset(&seen, 0, sizeof(seen));
    reft_hooks h = {
        .release_pins = rec_release, .delete_object = rec_delete, .owned_gone = rec_gone};
    cr_assert_eq(reft_init(&t, &h), 0);
}

static void teardown(void)
{
    reft_destroy(&t);
}

static object_id_t oid(uint32_t i)
{
    task_id_t task = task_id_for_driver(job_id_from_int(1));
    return object_id_for_put(&task, i);
}

static bool same(const object_id_t *a, const object_id_t *b)
{
    return memcmp(a->b, b->b, OBJECT_ID_SIZE) == 0;
}

/* A store object this process references and pins, with no view out. */
static ref_entry *pinned_ref(uint32_t i, size_t size)
{
    object_id_t id = oid(i);
    ref_entry *e = reft_get_or_add(&t, &id, NULL);
    cr_assert_not_null(e);
    e->refs = 1;
    e->in_store = true;
    e->sealed = true;
    e->size = size;
    static uint8_t arena[64];
    reft_took_pin(&t, e, arena);
    return e;
}

TestSuite(reference_table, .init = setup, .fini = teardown);

Test(reference_table, add_find_remove_and_recycle)
{
    object_id_t a = oid(1), b = oid(2);
    bool added = false;
    ref_entry *ea = reft_get_or_add(&t, &a, &added);
    cr_assert(added);
    cr_assert_eq(reft_get_or_add(&t, &a, &added), ea);
    cr_assert_not(added);
    cr_assert_null(reft_find(&t, &b));
    cr_assert_eq(reft_count(&t), 1);
    ea->data = malloc(16); /* inline payload: freed with the entry */
    ea->error = strdup("boom");
    reft_remove(&t, ea);
    cr_assert_null(reft_find(&t, &a));
    cr_assert_eq(reft_count(&t), 0);
    ref_entry *eb = reft_get_or_add(&t, &b, NULL);
    cr_assert_eq(eb, ea, "removed entries are reused from the free list");
    cr_assert_eq(eb->refs, 0);
    cr_assert_null(eb->data);
    cr_assert_null(eb->error);
    cr_assert(same(&eb->id, &b));
    cr_assert_eq(seen.ngone + seen.ndeleted + seen.release_calls, 0, "remove calls no hook");
}

Test(reference_table, grows_past_its_initial_buckets)
{
    const uint32_t n = 5 * REFT_INITIAL_BUCKETS;
    for (uint32_t i = 1; i <= n; i++) {
        object_id_t id = oid(i);
        ref_entry *e = reft_get_or_add(&t, &id, NULL);
        cr_assert_not_null(e);
        e->refs = (int32_t)i;
    }
    cr_assert_eq(reft_count(&t), n);
    cr_assert_gt(t.map.nbuckets, REFT_INITIAL_BUCKETS);
    for (uint32_t i = 1; i <= n; i++) {
        object_id_t id = oid(i);
        ref_entry *e = reft_find(&t, &id);
        cr_assert_not_null(e);
        cr_assert_eq(e->refs, (int32_t)i);
    }
}

Test(reference_table, unused_entry_goes_and_owned_ones_are_reported)
{
    object_id_t a = oid(1), b = oid(2);
    ref_entry *ea = reft_get_or_add(&t, &a, NULL);
    ea->sealed = true; /* a borrowed inline value, released */
    reft_maybe_finalize(&t, ea);
    cr_assert_null(reft_find(&t, &a));
    cr_assert_eq(seen.ngone, 0, "a borrowed object is nobody's lineage");

    ref_entry *eb = reft_get_or_add(&t, &b, NULL);
    eb->owned = true;
    eb->sealed = true;
    eb->views = 1;
    reft_maybe_finalize(&t, eb);
    cr_assert_not_null(reft_find(&t, &b), "a view keeps the entry");
    eb->views = 0;
    reft_maybe_finalize(&t, eb);
    cr_assert_null(reft_find(&t, &b));
    cr_assert_eq(seen.ngone, 1);
    cr_assert(same(&seen.gone[0], &b));
    cr_assert_eq(seen.ndeleted, 0, "inline objects are not in the store");
}

Test(reference_table, owner_deletes_its_store_object_with_its_pin)
{
    ref_entry *e = pinned_ref(7, 100);
    e->owned = true;
    cr_assert_eq(t.cache_count, 1, "pinned and referenced: cached");
    e->refs = 0;
    reft_maybe_finalize(&t, e);
    cr_assert_eq(seen.ndeleted, 1);
    object_id_t id = oid(7);
    cr_assert(same(&seen.deleted[0], &id));
    cr_assert(seen.deleted_pin[0], "the delete drops our pin too");
    cr_assert_eq(seen.nreleased, 0, "no separate release for a deleted object");
    cr_assert_null(reft_find(&t, &id));
    cr_assert_eq(t.cache_count, 0);
    cr_assert_eq(t.cache_bytes, 0);
    cr_assert_eq(seen.ngone, 1);
}

Test(reference_table, borrowed_pin_is_released_with_the_last_ref)
{
    ref_entry *e = pinned_ref(3, 10);
    e->refs = 0;
    reft_maybe_finalize(&t, e);
    object_id_t id = oid(3);
    cr_assert_eq(seen.nreleased, 1);
    cr_assert(same(&seen.released[0], &id));
    cr_assert_eq(seen.ndeleted, 0, "not ours to delete");
    cr_assert_null(reft_find(&t, &id));
}

Test(reference_table, cache_bounded_by_objects_trims_oldest_to_seven_eighths)
{
    reft_set_cache_bounds(&t, 8, SIZE_MAX);
    for (uint32_t i = 1; i <= 8; i++)
        pinned_ref(i, 10);
    cr_assert_eq(t.cache_count, 8);
    cr_assert_eq(seen.release_calls, 0, "at the bound: nothing given back");
    pinned_ref(9, 10);
    cr_assert_eq(t.cache_count, 7, "over the bound: down to 7/8 of it");
    cr_assert_eq(seen.release_calls, 1, "in one batch");
    cr_assert_eq(seen.nreleased, 2);
    object_id_t o1 = oid(1), o2 = oid(2);
    cr_assert(same(&seen.released[0], &o1), "oldest first");
    cr_assert(same(&seen.released[1], &o2));
    ref_entry *e1 = reft_find(&t, &o1);
    cr_assert_not_null(e1, "still referenced: the entry stays, unpinned");
    cr_assert_not(e1->pinned);
    cr_assert_null(e1->data);
    cr_assert_not(e1->cached);
}

Test(reference_table, cache_bounded_by_bytes_keeps_the_newest_pin)
{
    reft_set_cache_bounds(&t, 1024, 1000);
    pinned_ref(1, 400);
    pinned_ref(2, 400);
    cr_assert_eq(t.cache_bytes, 800);
    pinned_ref(3, 400);
    cr_assert_eq(t.cache_count, 2, "1200 > 1000: trimmed to <= 875");
    cr_assert_eq(t.cache_bytes, 800);
    object_id_t o1 = oid(1);
    cr_assert(same(&seen.released[0], &o1));

    reft_trim_cache(&t, true);
    cr_assert_eq(t.cache_count, 0);
    pinned_ref(4, 5000);
    cr_assert_eq(t.cache_count, 1, "one object over the byte bound alone stays cached");
    cr_assert_eq(t.cache_bytes, 5000);
    pinned_ref(5, 10);
    cr_assert_eq(t.cache_count, 1, "the older large one goes");
    object_id_t o5 = oid(5);
    cr_assert_eq(reft_cache_oldest(&t), reft_find(&t, &o5));
}

Test(reference_table, trim_everything_in_batches)
{
    const uint32_t n = 3 * REFT_RELEASE_BATCH + 5;
    reft_set_cache_bounds(&t, 10 * n, SIZE_MAX);
    for (uint32_t i = 1; i <= n; i++)
        pinned_ref(i, 1);
    cr_assert_eq(t.cache_count, n);
    reft_trim_cache(&t, true);
    cr_assert_eq(t.cache_count, 0);
    cr_assert_eq(t.cache_bytes, 0);
    cr_assert_eq(seen.nreleased, n);
    cr_assert_eq(seen.release_calls, 4);
    cr_assert_eq(seen.max_batch, REFT_RELEASE_BATCH);
    cr_assert_eq(reft_count(&t), n, "referenced entries stay, unpinned");
}

Test(reference_table, second_pin_and_bad_pins_are_given_back)
{
    ref_entry *e = pinned_ref(1, 10);
    void *data = e->data;
    static uint8_t other[8];
    reft_took_pin(&t, e, other);
    cr_assert_eq(seen.nreleased, 1, "one pin per entry");
    cr_assert_eq(e->data, data);
    cr_assert_eq(t.cache_count, 1);

    object_id_t id = oid(2);
    ref_entry *f = reft_get_or_add(&t, &id, NULL);
    f->refs = 1;
    reft_took_pin(&t, f, NULL);
    cr_assert_eq(seen.nreleased, 2, "an offset outside the arena: released");
    cr_assert_not(f->pinned);
}

Test(reference_table, a_viewed_object_is_not_cached)
{
    object_id_t id = oid(1);
    ref_entry *e = reft_get_or_add(&t, &id, NULL);
    e->refs = 1;
    e->views = 1;
    e->in_store = true;
    static uint8_t arena[8];
    reft_took_pin(&t, e, arena);
    cr_assert(e->pinned);
    cr_assert_eq(t.cache_count, 0);
    e->views = 0;
    reft_maybe_finalize(&t, e);
    cr_assert_eq(t.cache_count, 1, "the last view went: the pin is cached");
    reft_cache_remove(&t, e);
    cr_assert_eq(t.cache_count, 0);
    cr_assert_eq(t.cache_bytes, 0);
}

/* Borrowing (docs/objects.md): registered borrowers keep an owned object
 * after the owner's last reference; an inline value sent to a borrower's
 * node ("lent") is deleted (its copies) when it finally goes. */
Test(reference_table, borrowers_keep_an_owned_object_and_lent_values_are_deleted)
{
    object_id_t a = oid(11);
    ref_entry *e = reft_get_or_add(&t, &a, NULL);
    e->owned = true;
    e->sealed = true;
    e->lent = true;
    e->refs = 0;
    e->borrows = 2;
    reft_maybe_finalize(&t, e);
    cr_assert_not_null(reft_find(&t, &a), "borrowers keep it");
    cr_assert_eq(seen.ndeleted, 0);
    e->borrows = 0;
    reft_maybe_finalize(&t, e);
    cr_assert_null(reft_find(&t, &a), "the last borrower gone: freed");
    cr_assert_eq(seen.ndeleted, 1, "a lent inline value's copies are deleted");
    cr_assert(same(&seen.deleted[0], &a));
    cr_assert_not(seen.deleted_pin[0]);

    ref_entry *s = pinned_ref(12, 100); /* a store object, borrowed */
    s->owned = true;
    s->borrows = 1;
    s->refs = 0;
    reft_maybe_finalize(&t, s);
    cr_assert_eq(seen.ndeleted, 1, "a borrowed store object is not deleted");
    s->borrows = 0;
    reft_maybe_finalize(&t, s);
    cr_assert_eq(seen.ndeleted, 2);
}
