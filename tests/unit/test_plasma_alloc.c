/*
 * test_plasma_alloc.c -- the arena allocator against a reference model: a
 * byte map of the arena (one entry per 64-byte unit) that knows which units
 * are free. Long random alloc/free sequences check that blocks never overlap,
 * every unit is accounted for, an allocation fails only when no free run is
 * large enough, and freeing everything leaves one free block. The
 * fragmentation test prints the numbers quoted in docs/object_store.md.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../raylet/plasma_alloc.h"
#include "rayc.h"

#define UNIT PLASMA_ALLOC_ALIGN

/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(plasma_alloc, .timeout = 120); /* the fragmentation test runs long under ASan */

typedef struct {
    uint64_t off, size; /* size: block size in bytes */
} live;

typedef struct {
    uint64_t units;
    uint32_t *owner; /* 0 free, else index+1 into live */
    live *lv;
    size_t nlive, cap;
} model;

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void model_init(model *m, uint64_t bytes)
{
    m->units = bytes / UNIT;
    m->owner = calloc(m->units, sizeof(uint32_t));
    m->cap = m->units;
    m->lv = calloc(m->cap, sizeof(live));
    m->nlive = 0;
    cr_assert_not_null(m->owner);
}

static void model_free(model *m)
{
    free(m->owner);
    free(m->lv);
}

/* Largest free run and number of free runs in the model. */
static void model_runs(const model *m, uint64_t *largest, uint64_t *runs, uint64_t *free_units)
{
    *largest = *runs = *free_units = 0;
    uint64_t cur = 0;
    for (uint64_t i = 0; i <= m->units; i++) {
        if (i < m->units && m->owner[i] == 0) {
            cur++;
            (*free_units)++;
            continue;
        }
        if (cur > 0) {
            (*runs)++;
            if (cur > *largest)
                *largest = cur;
        }
        cur = 0;
    }
}

static int do_alloc(plasma_allocator *a, model *m, uint64_t req)
{
    uint64_t off;
    int rc = plasma_alloc(a, req, &off);
    if (rc != 0) {
        cr_assert_eq(rc, RAYC_ESTORE_FULL);
        uint64_t largest, runs, fu;
        model_runs(m, &largest, &runs, &fu);
        uint64_t need = req == 0 ? 1 : (req + UNIT - 1) / UNIT;
        cr_assert_lt(largest, need, "alloc of %lu failed with a free run of %lu units",
                     (unsigned long)req, (unsigned long)largest);
        return rc;
    }
    uint64_t bs = plasma_alloc_block_size(a, off);
    cr_assert_eq(off % UNIT, 0);
    cr_assert_geq(bs, req);
    cr_assert_lt(bs, req + UNIT + (req == 0 ? UNIT : 0));
    cr_assert_leq(off + bs, m->units * UNIT);
    size_t k = m->nlive++;
    m->lv[k] = (live){off, bs};
    for (uint64_t u = off / UNIT; u < (off + bs) / UNIT; u++) {
        cr_assert_eq(m->owner[u], 0, "unit %lu handed out twice", (unsigned long)u);
        m->owner[u] = (uint32_t)k + 1;
    }
    return 0;
}

static void do_free(plasma_allocator *a, model *m, size_t k)
{
    live l = m->lv[k];
    cr_assert_eq(plasma_free(a, l.off), 0);
    for (uint64_t u = l.off / UNIT; u < (l.off + l.size) / UNIT; u++)
        m->owner[u] = 0;
    /* move the last live entry into slot k */
    size_t last = --m->nlive;
    if (k != last) {
        m->lv[k] = m->lv[last];
        for (uint64_t u = m->lv[k].off / UNIT; u < (m->lv[k].off + m->lv[k].size) / UNIT; u++)
            m->owner[u] = (uint32_t)k + 1;
    }
}

/* Split live block k at a random unit boundary (the store's slab carving):
 * the model gets a second live entry for the tail. */
static void do_split(plasma_allocator *a, model *m, size_t k)
{
    live l = m->lv[k];
    uint64_t units = l.size / UNIT;
    if (units < 2) {
        cr_assert_eq(plasma_alloc_split(a, l.off, UNIT), RAYC_EINVAL,
                     "a one-unit block cannot be split");
        return;
    }
    uint64_t head = (1 + rnd() % (units - 1)) * UNIT;
    cr_assert_eq(plasma_alloc_split(a, l.off, head), 0);
    cr_assert_eq(plasma_alloc_block_size(a, l.off), head);
    cr_assert_eq(plasma_alloc_block_size(a, l.off + head), l.size - head);
    m->lv[k].size = head;
    size_t t = m->nlive++;
    m->lv[t] = (live){l.off + head, l.size - head};
    for (uint64_t u = (l.off + head) / UNIT; u < (l.off + l.size) / UNIT; u++)
        m->owner[u] = (uint32_t)t + 1;
}

typedef struct {
    const model *m;
    uint64_t pos, used_blocks;
} walk_ctx;

static void walk_cb(void *arg, uint64_t off, uint64_t size, bool is_free)
{
    walk_ctx *w = arg;
    cr_assert_eq(off, w->pos, "blocks do not tile the arena");
    for (uint64_t u = off / UNIT; u < (off + size) / UNIT; u++)
        cr_assert_eq(w->m->owner[u] == 0, is_free, "unit %lu: model and allocator disagree",
                     (unsigned long)u);
    if (!is_free) {
        uint32_t k = w->m->owner[off / UNIT] - 1;
        cr_assert_eq(w->m->lv[k].off, off);
        cr_assert_eq(w->m->lv[k].size, size);
        w->used_blocks++;
    }
    w->pos = off + size;
}

static void check_against(plasma_allocator *a, const model *m)
{
    cr_assert_eq(plasma_alloc_check(a), 0, "allocator invariants broken");
    walk_ctx w = {.m = m};
    plasma_alloc_walk(a, walk_cb, &w);
    cr_assert_eq(w.pos, m->units * UNIT);
    cr_assert_eq(w.used_blocks, m->nlive);
    plasma_alloc_info st;
    plasma_alloc_stats(a, &st);
    uint64_t largest, runs, fu;
    model_runs(m, &largest, &runs, &fu);
    cr_assert_eq(st.free, fu * UNIT);
    cr_assert_eq(st.used + st.free, st.capacity);
    cr_assert_eq(st.free_blocks, runs, "free blocks %lu, model runs %lu",
                 (unsigned long)st.free_blocks, (unsigned long)runs);
    cr_assert_eq(st.largest_free, largest * UNIT);
    cr_assert_eq(st.used_blocks, m->nlive);
}

/* A size drawn log-uniformly from [1, max]. */
static uint64_t log_size(uint64_t max)
{
    int bits = 64 - __builtin_clzll(max);
    uint64_t hi = 1ull << (rnd() % (uint64_t)bits);
    uint64_t s = hi + rnd() % hi;
    return s > max ? max : s;
}

Test(plasma_alloc, basics)
{
    cr_assert_null(plasma_alloc_new(10));
    plasma_allocator *a = plasma_alloc_new(4096 + 10);
    cr_assert_not_null(a);
    plasma_alloc_info st;
    plasma_alloc_stats(a, &st);
    cr_assert_eq(st.capacity, 4096);
    cr_assert_eq(st.free_blocks, 1);
    cr_assert_eq(st.largest_free, 4096);

    uint64_t off, off2;
    cr_assert_eq(plasma_alloc(a, 0, &off), 0);
    cr_assert_eq(plasma_alloc_block_size(a, off), 64);
    cr_assert_eq(plasma_alloc(a, 4097, &off2), RAYC_ESTORE_FULL);
    cr_assert_eq(plasma_alloc(a, 4096 - 64, &off2), 0);
    cr_assert_eq(plasma_alloc(a, 1, &off2), RAYC_ESTORE_FULL);
    cr_assert_eq(plasma_free(a, off + 64 * 100), RAYC_EINVAL);
    cr_assert_eq(plasma_free(a, off + 1), RAYC_EINVAL);
    cr_assert_eq(plasma_free(a, off), 0);
    cr_assert_eq(plasma_free(a, off), RAYC_EINVAL, "double free must be refused");
    cr_assert_eq(plasma_free(a, off2), 0);

    /* split: bad offsets and heads are refused; the halves free on their own */
    cr_assert_eq(plasma_alloc(a, 64 * 10, &off), 0);
    cr_assert_eq(plasma_alloc_split(a, off + 64, 64), RAYC_EINVAL);
    cr_assert_eq(plasma_alloc_split(a, off, 0), RAYC_EINVAL);
    cr_assert_eq(plasma_alloc_split(a, off, 32), RAYC_EINVAL);
    cr_assert_eq(plasma_alloc_split(a, off, 64 * 10), RAYC_EINVAL);
    cr_assert_eq(plasma_alloc_split(a, off, 64 * 3), 0);
    cr_assert_eq(plasma_alloc_check(a), 0);
    plasma_alloc_stats(a, &st);
    cr_assert_eq(st.used_blocks, 2);
    cr_assert_eq(st.used, 64 * 10);
    cr_assert_eq(plasma_free(a, off + 64 * 3), 0);
    cr_assert_eq(plasma_alloc_block_size(a, off), 64 * 3);
    cr_assert_eq(plasma_free(a, off), 0);
    plasma_alloc_stats(a, &st);
    cr_assert_eq(st.free_blocks, 1);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(plasma_alloc_check(a), 0);
    plasma_alloc_destroy(a);
    plasma_alloc_destroy(NULL);
}

/* The good-fit search rounds up; the fallback scan must still find a block
 * that fits exactly. */
Test(plasma_alloc, exact_fit_of_odd_sizes)
{
    plasma_allocator *a = plasma_alloc_new(64 * 1000);
    uint64_t o1, o2, o3;
    cr_assert_eq(plasma_alloc(a, 64 * 101, &o1), 0);
    cr_assert_eq(plasma_alloc(a, 64, &o2), 0);
    cr_assert_eq(plasma_alloc(a, 64 * 898, &o3), 0); /* fills the arena */
    cr_assert_eq(plasma_free(a, o1), 0);             /* a free block of 101 units */
    uint64_t off;
    cr_assert_eq(plasma_alloc(a, 64 * 101, &off), 0, "exact fit must succeed");
    cr_assert_eq(off, o1);
    cr_assert_eq(plasma_alloc_check(a), 0);
    plasma_alloc_destroy(a);
}

Test(plasma_alloc, random_against_model)
{
    const uint64_t bytes = 1 << 20;
    plasma_allocator *a = plasma_alloc_new(bytes);
    model m;
    model_init(&m, bytes);
    for (int round = 0; round < 200000; round++) {
        bool grow = m.nlive == 0 || (rnd() % 100) < 55;
        if (!grow && rnd() % 10 == 0) {
            do_split(a, &m, rnd() % m.nlive);
        } else if (grow) {
            uint64_t req = (rnd() % 8 == 0) ? rnd() % 64 : log_size(bytes / 8);
            do_alloc(a, &m, req);
        } else {
            do_free(a, &m, rnd() % m.nlive);
        }
        if (round % 997 == 0)
            check_against(a, &m);
    }
    check_against(a, &m);
    while (m.nlive > 0)
        do_free(a, &m, rnd() % m.nlive);
    check_against(a, &m);
    plasma_alloc_info st;
    plasma_alloc_stats(a, &st);
    cr_assert_eq(st.free_blocks, 1, "freeing everything must coalesce into one block");
    cr_assert_eq(st.largest_free, bytes);
    model_free(&m);
    plasma_alloc_destroy(a);
}

Test(plasma_alloc, many_small_blocks)
{
    const uint64_t bytes = 64 * 50000;
    plasma_allocator *a = plasma_alloc_new(bytes);
    model m;
    model_init(&m, bytes);
    for (int i = 0; i < 50000; i++)
        cr_assert_eq(do_alloc(a, &m, 1 + rnd() % 64), 0);
    uint64_t off;
    cr_assert_eq(plasma_alloc(a, 1, &off), RAYC_ESTORE_FULL);
    check_against(a, &m);
    /* free every other block: 25000 free blocks, none adjacent */
    for (size_t k = 0; k < m.nlive; k++)
        if ((m.lv[k].off / 64) % 2 == 0)
            do_free(a, &m, k--);
    check_against(a, &m);
    cr_assert_eq(plasma_alloc(a, 65, &off), RAYC_ESTORE_FULL);
    while (m.nlive > 0)
        do_free(a, &m, m.nlive - 1);
    check_against(a, &m);
    model_free(&m);
    plasma_alloc_destroy(a);
}

/* Steady state near a target fill: objects of log-uniform sizes (64 B to
 * 1/64 of the arena) arrive and leave at random. Reports the fragmentation
 * 1 - largest_free/free and how often a request that fits in the free bytes
 * fails for want of a contiguous block. */
static void frag_run(double fill, double *mean_frag, double *max_frag, double *fail_rate)
{
    const uint64_t bytes = 64 << 20;
    plasma_allocator *a = plasma_alloc_new(bytes);
    live *lv = calloc(1 << 20, sizeof(live));
    size_t n = 0;
    double sum = 0, mx = 0;
    uint64_t samples = 0, tries = 0, fails = 0;
    for (int i = 0; i < 400000; i++) {
        plasma_alloc_info st;
        plasma_alloc_stats(a, &st);
        if ((double)st.used < fill * (double)bytes || n == 0) {
            uint64_t req = log_size(bytes / 64);
            uint64_t off;
            if (req <= st.free) {
                tries++;
                if (plasma_alloc(a, req, &off) == 0)
                    lv[n++] = (live){off, req};
                else
                    fails++;
            }
        } else {
            size_t k = rnd() % n;
            cr_assert_eq(plasma_free(a, lv[k].off), 0);
            lv[k] = lv[--n];
        }
        if (i > 50000 && i % 100 == 0) {
            double f = plasma_alloc_fragmentation(a);
            sum += f;
            if (f > mx)
                mx = f;
            samples++;
        }
    }
    cr_assert_eq(plasma_alloc_check(a), 0);
    *mean_frag = sum / (double)samples;
    *max_frag = mx;
    *fail_rate = tries ? (double)fails / (double)tries : 0;
    free(lv);
    plasma_alloc_destroy(a);
}

Test(plasma_alloc, fragmentation_bound)
{
    const double fills[] = {0.5, 0.75, 0.9};
    const double max_fail[] = {0.001, 0.02, 0.35}; /* at 90% full, big objects need pressure */
    for (size_t i = 0; i < 3; i++) {
        double mean, mx, fail;
        frag_run(fills[i], &mean, &mx, &fail);
        fprintf(stderr,
                "plasma_alloc fragmentation at %.0f%% fill: mean %.3f, max %.3f, "
                "failed fitting allocs %.2f%%\n",
                fills[i] * 100, mean, mx, fail * 100);
        /* The bound that matters to the store: a request that fits in the
         * free bytes almost never fails for want of a contiguous block
         * (measured values are in docs/object_store.md). */
        cr_assert_lt(fail, max_fail[i], "%.2f%% of fitting allocs failed at fill %.2f", fail * 100,
                     fills[i]);
    }
}
