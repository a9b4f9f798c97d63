/*
 * plasma_alloc.c -- TLSF allocator over 64-byte units; see plasma_alloc.h.
 * Runs in the raylet's single loop thread. No syscalls, no arena access.
 */
#include "plasma_alloc.h"

#include <stdlib.h>
#include <string.h>

#include "rayc.h"

#define UNIT_SHIFT 6 /* 64-byte units */
#define SL_LOG     4
#define SL_COUNT   (1 << SL_LOG) /* second-level classes per power of two */
#define FL_COUNT   64
#define NIL        UINT32_MAX

typedef struct {
    uint64_t off;          /* in units */
    uint64_t size;         /* in units; 0 marks a descriptor on the spare list */
    uint32_t prev, next;   /* neighbours in address order */
    uint32_t fprev, fnext; /* free list of its class (free blocks), spare list */
    bool free;
} blk;

struct plasma_allocator {
    uint64_t units; /* arena size in units */
    uint64_t used_units;
    uint64_t free_blocks, used_blocks;

    blk *b; /* descriptor pool, addressed by index so it can be realloc'd */
    uint32_t ncap, spare;

    uint64_t fl_map;
    uint32_t sl_map[FL_COUNT];
    uint32_t head[FL_COUNT][SL_COUNT];

    /* offset (units) -> descriptor of a used block; linear probing */
    uint32_t *idx;
    uint64_t idx_cap, idx_len; /* cap is a power of two, load <= 1/2 */
};

/* ------------------------------------------------------------ size classes */

static int msb(uint64_t v)
{
    return 63 - __builtin_clzll(v);
}

/* Class holding blocks of exactly n units. */
static void mapping(uint64_t n, int *fl, int *sl)
{
    if (n < SL_COUNT) {
        *fl = 0;
        *sl = (int)n;
    } else {
        int f = msb(n);
        *fl = f - SL_LOG + 1;
        *sl = (int)((n >> (f - SL_LOG)) - SL_COUNT);
    }
}

/* First class whose every block holds n units: round n up to the next class
 * boundary, then map. */
static void mapping_search(uint64_t n, int *fl, int *sl)
{
    if (n >= SL_COUNT)
        n += (1ull << (msb(n) - SL_LOG)) - 1;
    mapping(n, fl, sl);
}

static void free_insert(plasma_allocator *a, uint32_t i)
{
    int fl, sl;
    mapping(a->b[i].size, &fl, &sl);
    blk *x = &a->b[i];
    x->free = true;
    x->fprev = NIL;
    x->fnext = a->head[fl][sl];
    if (x->fnext != NIL)
        a->b[x->fnext].fprev = i;
    a->head[fl][sl] = i;
    a->fl_map |= 1ull << fl;
    a->sl_map[fl] |= 1u << sl;
    a->free_blocks++;
}

static void free_remove(plasma_allocator *a, uint32_t i)
{
    int fl, sl;
    blk *x = &a->b[i];
    mapping(x->size, &fl, &sl);
    if (x->fprev != NIL)
        a->b[x->fprev].fnext = x->fnext;
    else
        a->head[fl][sl] = x->fnext;
    if (x->fnext != NIL)
        a->b[x->fnext].fprev = x->fprev;
    if (a->head[fl][sl] == NIL) {
        a->sl_map[fl] &= ~(1u << sl);
        if (a->sl_map[fl] == 0)
            a->fl_map &= ~(1ull << fl);
    }
    x->free = false;
    a->free_blocks--;
}

/* A free block of at least n units, or NIL. */
static uint32_t find_free(const plasma_allocator *a, uint64_t n)
{
    int fl, sl;
    mapping_search(n, &fl, &sl);
    if (fl < FL_COUNT) {
        uint32_t slm = a->sl_map[fl] & (~0u << sl);
        if (slm == 0) {
            uint64_t flm = fl + 1 < FL_COUNT ? a->fl_map & (~0ull << (fl + 1)) : 0;
            if (flm != 0) {
                fl = __builtin_ctzll(flm);
                slm = a->sl_map[fl];
            }
        }
        if (slm != 0)
            return a->head[fl][__builtin_ctz(slm)];
    }
    /* Only blocks of n's own class may still fit: scan it. */
    mapping(n, &fl, &sl);
    for (uint32_t i = a->head[fl][sl]; i != NIL; i = a->b[i].fnext)
        if (a->b[i].size >= n)
            return i;
    return NIL;
}

/* ------------------------------------------------------------ descriptors */

static int reserve_desc(plasma_allocator *a)
{
    if (a->spare != NIL)
        return 0;
    uint32_t ncap = a->ncap ? a->ncap * 2 : 64;
    if (ncap <= a->ncap || ncap == NIL)
        return RAYC_ENOMEM;
    blk *nb = realloc(a->b, (size_t)ncap * sizeof(blk));
    if (nb == NULL)
        return RAYC_ENOMEM;
    a->b = nb;
    for (uint32_t i = a->ncap; i < ncap; i++) {
        nb[i].size = 0;
        nb[i].fnext = i + 1 < ncap ? i + 1 : NIL;
    }
    a->spare = a->ncap;
    a->ncap = ncap;
    return 0;
}

static uint32_t take_desc(plasma_allocator *a)
{
    uint32_t i = a->spare;
    a->spare = a->b[i].fnext;
    return i;
}

static void put_desc(plasma_allocator *a, uint32_t i)
{
    a->b[i].size = 0;
    a->b[i].fnext = a->spare;
    a->spare = i;
}

/* ------------------------------------------------------------ offset index */

static uint64_t slot_of(const plasma_allocator *a, uint64_t off)
{
    return (off * 0x9E3779B97F4A7C15ull >> 17) & (a->idx_cap - 1);
}

static int idx_grow(plasma_allocator *a)
{
    if ((a->idx_len + 1) * 2 <= a->idx_cap)
        return 0;
    uint64_t ncap = a->idx_cap ? a->idx_cap * 2 : 64;
    uint32_t *n = malloc(ncap * sizeof(uint32_t));
    if (n == NULL)
        return RAYC_ENOMEM;
    for (uint64_t i = 0; i < ncap; i++)
        n[i] = NIL;
    uint32_t *old = a->idx;
    uint64_t ocap = a->idx_cap;
    a->idx = n;
    a->idx_cap = ncap;
    for (uint64_t i = 0; i < ocap; i++) {
        if (old[i] == NIL)
            continue;
        uint64_t s = slot_of(a, a->b[old[i]].off);
        while (n[s] != NIL)
            s = (s + 1) & (ncap - 1);
        n[s] = old[i];
    }
    free(old);
    return 0;
}

static void idx_insert(plasma_allocator *a, uint32_t i)
{
    uint64_t s = slot_of(a, a->b[i].off);
    while (a->idx[s] != NIL)
        s = (s + 1) & (a->idx_cap - 1);
    a->idx[s] = i;
    a->idx_len++;
}

static uint64_t idx_find(const plasma_allocator *a, uint64_t off)
{
    if (a->idx_cap == 0)
        return UINT64_MAX;
    for (uint64_t s = slot_of(a, off);; s = (s + 1) & (a->idx_cap - 1)) {
        if (a->idx[s] == NIL)
            return UINT64_MAX;
        if (a->b[a->idx[s]].off == off)
            return s;
    }
}

/* Remove slot s with backward-shift deletion (no tombstones). */
static void idx_remove(plasma_allocator *a, uint64_t s)
{
    uint64_t mask = a->idx_cap - 1;
    uint64_t hole = s;
    for (uint64_t j = (s + 1) & mask; a->idx[j] != NIL; j = (j + 1) & mask) {
        uint64_t home = slot_of(a, a->b[a->idx[j]].off);
        /* j's entry may move into the hole if its home is not in (hole, j] */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            a->idx[hole] = a->idx[j];
            hole = j;
        }
    }
    a->idx[hole] = NIL;
    a->idx_len--;
}

/* ------------------------------------------------------------ public */

plasma_allocator *plasma_alloc_new(uint64_t size)
{
    uint64_t units = size >> UNIT_SHIFT;
    if (units == 0 || units >= (1ull << 57))
        return NULL;
    plasma_allocator *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->units = units;
    a->spare = NIL;
    for (int f = 0; f < FL_COUNT; f++)
        for (int s = 0; s < SL_COUNT; s++)
            a->head[f][s] = NIL;
    if (reserve_desc(a) != 0 || idx_grow(a) != 0)
        goto fail;
    uint32_t i = take_desc(a);
    a->b[i] = (blk){.off = 0, .size = units, .prev = NIL, .next = NIL};
    free_insert(a, i);
    return a;
fail:
    plasma_alloc_destroy(a);
    return NULL;
}

void plasma_alloc_destroy(plasma_allocator *a)
{
    if (a == NULL)
        return;
    free(a->b);
    free(a->idx);
    free(a);
}

/* Cut block i after its first n units (n < its size): the rest becomes a
 * new block, returned, linked in address order and in no list or index yet.
 * A descriptor must be reserved. */
static uint32_t cut(plasma_allocator *a, uint32_t i, uint64_t n)
{
    uint32_t r = take_desc(a);
    blk *x = &a->b[i];
    a->b[r] = (blk){.off = x->off + n, .size = x->size - n, .prev = i, .next = x->next};
    if (x->next != NIL)
        a->b[x->next].prev = r;
    x->next = r;
    x->size = n;
    return r;
}

int plasma_alloc(plasma_allocator *a, uint64_t size, uint64_t *off)
{
    if (size > (a->units << UNIT_SHIFT))
        return RAYC_ESTORE_FULL;
    uint64_t n = size == 0 ? 1 : (size + PLASMA_ALLOC_ALIGN - 1) >> UNIT_SHIFT;
    /* Grow metadata first so that nothing below can fail half-way. */
    if (reserve_desc(a) != 0 || idx_grow(a) != 0)
        return RAYC_ENOMEM;
    uint32_t i = find_free(a, n);
    if (i == NIL)
        return RAYC_ESTORE_FULL;
    free_remove(a, i);
    if (a->b[i].size > n)
        free_insert(a, cut(a, i, n));
    idx_insert(a, i);
    a->used_units += n;
    a->used_blocks++;
    *off = a->b[i].off << UNIT_SHIFT;
    return 0;
}

/* Merge block j (free, just removed from its list) into its left neighbour i. */
static void absorb(plasma_allocator *a, uint32_t i, uint32_t j)
{
    blk *x = &a->b[i], *y = &a->b[j];
    x->size += y->size;
    x->next = y->next;
    if (y->next != NIL)
        a->b[y->next].prev = i;
    put_desc(a, j);
}

int plasma_free(plasma_allocator *a, uint64_t off)
{
    if (off & (PLASMA_ALLOC_ALIGN - 1))
        return RAYC_EINVAL;
    uint64_t s = idx_find(a, off >> UNIT_SHIFT);
    if (s == UINT64_MAX)
        return RAYC_EINVAL;
    uint32_t i = a->idx[s];
    idx_remove(a, s);
    a->used_units -= a->b[i].size;
    a->used_blocks--;
    uint32_t nx = a->b[i].next;
    if (nx != NIL && a->b[nx].free) {
        free_remove(a, nx);
        absorb(a, i, nx);
    }
    uint32_t pv = a->b[i].prev;
    if (pv != NIL && a->b[pv].free) {
        free_remove(a, pv);
        absorb(a, pv, i);
        i = pv;
    }
    free_insert(a, i);
    return 0;
}

int plasma_alloc_split(plasma_allocator *a, uint64_t off, uint64_t head)
{
    if ((off | head) & (PLASMA_ALLOC_ALIGN - 1) || head == 0)
        return RAYC_EINVAL;
    uint64_t s = idx_find(a, off >> UNIT_SHIFT);
    if (s == UINT64_MAX)
        return RAYC_EINVAL;
    uint32_t i = a->idx[s];
    uint64_t n = head >> UNIT_SHIFT;
    if (n >= a->b[i].size)
        return RAYC_EINVAL;
    if (reserve_desc(a) != 0 || idx_grow(a) != 0)
        return RAYC_ENOMEM;
    idx_insert(a, cut(a, i, n));
    a->used_blocks++;
    return 0;
}

uint64_t plasma_alloc_block_size(const plasma_allocator *a, uint64_t off)
{
    if (off & (PLASMA_ALLOC_ALIGN - 1))
        return 0;
    uint64_t s = idx_find(a, off >> UNIT_SHIFT);
    return s == UINT64_MAX ? 0 : a->b[a->idx[s]].size << UNIT_SHIFT;
}

void plasma_alloc_stats(const plasma_allocator *a, plasma_alloc_info *out)
{
    memset(out, 0, sizeof(*out));
    out->capacity = a->units << UNIT_SHIFT;
    out->used = a->used_units << UNIT_SHIFT;
    out->free = out->capacity - out->used;
    out->free_blocks = a->free_blocks;
    out->used_blocks = a->used_blocks;
    if (a->fl_map == 0)
        return;
    /* The largest block lives in the highest non-empty class. */
    int fl = msb(a->fl_map);
    int sl = 31 - __builtin_clz(a->sl_map[fl]);
    uint64_t best = 0;
    for (uint32_t i = a->head[fl][sl]; i != NIL; i = a->b[i].fnext)
        if (a->b[i].size > best)
            best = a->b[i].size;
    out->largest_free = best << UNIT_SHIFT;
}

double plasma_alloc_fragmentation(const plasma_allocator *a)
{
    plasma_alloc_info st;
    plasma_alloc_stats(a, &st);
    if (st.free == 0)
        return 0.0;
    return 1.0 - (double)st.largest_free / (double)st.free;
}

void plasma_alloc_walk(const plasma_allocator *a, plasma_alloc_walk_fn fn, void *arg)
{
    /* The block at offset 0 is the one with no left neighbour. */
    for (uint32_t i = 0; i < a->ncap; i++) {
        if (a->b[i].size == 0 || a->b[i].prev != NIL)
            continue;
        for (uint32_t j = i; j != NIL; j = a->b[j].next)
            fn(arg, a->b[j].off << UNIT_SHIFT, a->b[j].size << UNIT_SHIFT, a->b[j].free);
        return;
    }
}

int plasma_alloc_check(const plasma_allocator *a)
{
    uint32_t first = NIL;
    for (uint32_t i = 0; i < a->ncap; i++)
        if (a->b[i].size != 0 && a->b[i].prev == NIL) {
            if (first != NIL)
                return -1;
            first = i;
        }
    if (first == NIL || a->b[first].off != 0)
        return -1;
    uint64_t pos = 0, used = 0, nfree = 0, nused = 0;
    bool prev_free = false;
    for (uint32_t j = first, p = NIL; j != NIL; p = j, j = a->b[j].next) {
        const blk *x = &a->b[j];
        if (x->off != pos || x->size == 0 || x->prev != p)
            return -1;
        if (x->free) {
            if (prev_free)
                return -1; /* two adjacent free blocks: a missed merge */
            int fl, sl;
            mapping(x->size, &fl, &sl);
            uint32_t k = a->head[fl][sl];
            while (k != NIL && k != j)
                k = a->b[k].fnext;
            if (k == NIL || !(a->fl_map >> fl & 1) || !(a->sl_map[fl] >> sl & 1))
                return -1;
            nfree++;
        } else {
            if (idx_find(a, x->off) == UINT64_MAX)
                return -1;
            used += x->size;
            nused++;
        }
        prev_free = x->free;
        pos += x->size;
    }
    if (pos != a->units || used != a->used_units || nfree != a->free_blocks ||
        nused != a->used_blocks || nused != a->idx_len)
        return -1;
    /* Every list entry is a free block of the right class. */
    uint64_t listed = 0;
    for (int f = 0; f < FL_COUNT; f++)
        for (int s = 0; s < SL_COUNT; s++)
            for (uint32_t k = a->head[f][s]; k != NIL; k = a->b[k].fnext) {
                int fl, sl;
                mapping(a->b[k].size, &fl, &sl);
                if (!a->b[k].free || fl != f || sl != s)
                    return -1;
                listed++;
            }
    return listed == nfree ? 0 : -1;
}
