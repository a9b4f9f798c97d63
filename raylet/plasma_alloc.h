/*
 * plasma_alloc.h -- the block allocator of the plasma store's shared arena.
 *
 * A pure allocator over an arena of N bytes: it hands out byte offsets, never
 * pointers, makes no syscalls and never touches the arena itself. All of its
 * state (block descriptors, free lists, the offset index) lives in
 * raylet-private heap memory, so a client scribbling over the shared mapping
 * can corrupt object bytes but never the allocator.
 *
 * Design: two-level segregated fit (TLSF, Masmano et al. 2004) over 64-byte
 * units. Every block -- free or used -- has a descriptor in a pool, linked in
 * address order (the "boundary tags": neighbours are found in O(1), so a
 * freed block is merged with free neighbours at once and two free blocks are
 * never adjacent). Free blocks sit in 64 x 16 size classes with two bitmaps,
 * so alloc and free are O(1): the request is rounded up to the next class
 * boundary and the first non-empty class at or above it is taken (good fit,
 * every block there fits); only when that finds nothing, the request's own
 * class is scanned, so an allocation succeeds whenever any single free block
 * is large enough. A used block's descriptor is found from its offset
 * through an open-addressing index.
 *
 * Fragmentation: no internal waste beyond rounding to 64 bytes (the split
 * remainder returns to the free lists). External fragmentation, measured by
 * tests/unit/test_plasma_alloc.c and reported in docs/object_store.md, is
 * 1 - largest_free / free_bytes.
 *
 * Thread-safety: none; the store calls it from the raylet's loop thread only.
 */
#ifndef RAYC_PLASMA_ALLOC_H
#define RAYC_PLASMA_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLASMA_ALLOC_ALIGN 64 /* every offset and block size is a multiple of this */

typedef struct plasma_allocator plasma_allocator;

typedef struct {
    uint64_t capacity;     /* arena bytes managed (a multiple of PLASMA_ALLOC_ALIGN) */
    uint64_t used;         /* bytes in used blocks (requests rounded up to 64) */
    uint64_t free;         /* capacity - used */
    uint64_t largest_free; /* largest single free block: the biggest alloc that can succeed */
    uint64_t free_blocks;  /* number of free blocks (1 when nothing is allocated) */
    uint64_t used_blocks;  /* number of live allocations */
} plasma_alloc_info;

/* Called for every block in address order by plasma_alloc_walk(). */
typedef void (*plasma_alloc_walk_fn)(void *arg, uint64_t off, uint64_t size, bool is_free);

/* An allocator for an arena of `size` bytes (rounded down to 64; at least
 * 64). Returns NULL when size < 64 or on allocation failure. */
plasma_allocator *plasma_alloc_new(uint64_t size);
/* Free the allocator (not the arena). Accepts NULL. */
void plasma_alloc_destroy(plasma_allocator *a);

/* Allocate `size` bytes (0 counts as 1), 64-byte aligned. On success returns
 * 0 and stores the block's offset in *off. Returns RAYC_ESTORE_FULL when no
 * free block is large enough (nothing changes), RAYC_ENOMEM when the
 * allocator's own metadata cannot grow. */
int plasma_alloc(plasma_allocator *a, uint64_t size, uint64_t *off);
/* Free the block at `off`, merging it with free neighbours. Returns 0, or
 * RAYC_EINVAL when off is not the start of a used block (nothing changes). */
int plasma_free(plasma_allocator *a, uint64_t off);
/* Split the used block at `off` in two used blocks: [off, off + head) and
 * the rest, each freed on its own from then on. The plasma store carves
 * objects out of a client's put slab this way. head must be a non-zero
 * multiple of 64 smaller than the block. 0, RAYC_EINVAL (no such block, bad
 * head: nothing changes) or RAYC_ENOMEM (metadata cannot grow). */
int plasma_alloc_split(plasma_allocator *a, uint64_t off, uint64_t head);
/* Size in bytes (rounded to 64) of the used block at off; 0 if none. */
uint64_t plasma_alloc_block_size(const plasma_allocator *a, uint64_t off);

/* Current usage. largest_free costs a scan of the top size class only. */
void plasma_alloc_stats(const plasma_allocator *a, plasma_alloc_info *out);
/* Fragmentation in [0,1]: 1 - largest_free / free (0 when nothing is free). */
double plasma_alloc_fragmentation(const plasma_allocator *a);

/* Visit every block in address order (tests, debugging). */
void plasma_alloc_walk(const plasma_allocator *a, plasma_alloc_walk_fn fn, void *arg);
/* Verify every internal invariant (blocks tile the arena, no adjacent free
 * blocks, free lists and bitmaps agree, index complete). Returns 0 or -1. */
int plasma_alloc_check(const plasma_allocator *a);

#endif
