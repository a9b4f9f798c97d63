/*
 * plasma_slab.c -- put slabs: runs of the arena a client reserves once and
 * carves its small objects from without a round trip (docs/object_store.md,
 * "Put slabs"; plasma_store.h).
 *
 * A slab is one used allocator block. What the client has not turned into
 * objects yet is a list of pieces: at first the whole slab, then its tail.
 * Carving splits the piece's allocator block (plasma_alloc_split) so each
 * object becomes an ordinary block of its own: freed, evicted and spilled
 * like any other, and coalesced with its neighbours when freed. Clients may
 * announce objects in any order (threads write their objects in parallel),
 * so a carve can split a piece in two; the client's slab request gives back
 * only the tail past its bump pointer. A client that goes away frees every
 * piece it still has. A carve that would leave a client more than
 * PLASMA_SLAB_MAX_PIECES pieces is refused (RAYC_ENOMEM, logged).
 *
 * Runs in the raylet's single loop thread.
 */
#include "plasma_internal.h"

#include <inttypes.h>
#include <stdlib.h>

#include "errors.h"
#include "log.h"

/* Pieces a client may have: a few per thread that puts, plus one per object
 * it allocated with rayc_put_alloc and has not sealed. Bounds the linear
 * lookups a client can make the loop thread do. */
#define PLASMA_SLAB_MAX_PIECES 4096

/* Index of cl's piece holding [off, end), or -1. */
static int piece_of(const plasma_client *cl, uint64_t off, uint64_t end)
{
    for (uint32_t i = 0; i < cl->npieces; i++)
        if (cl->pieces[i].off <= off && end <= cl->pieces[i].end)
            return (int)i;
    return -1;
}

static int piece_add(plasma_client *cl, uint64_t off, uint64_t end)
{
    if (cl->npieces == PLASMA_SLAB_MAX_PIECES)
        return RAYC_ENOMEM;
    if (cl->npieces == cl->cap_pieces) {
        uint32_t cap = cl->cap_pieces ? cl->cap_pieces * 2 : 4;
        plasma__piece *p = realloc(cl->pieces, cap * sizeof(*p));
        if (p == NULL)
            return RAYC_ENOMEM;
        cl->pieces = p;
        cl->cap_pieces = cap;
    }
    cl->pieces[cl->npieces++] = (plasma__piece){off, end};
    return 0;
}

static void piece_remove(plasma_client *cl, int i)
{
    cl->pieces[i] = cl->pieces[--cl->npieces];
}

/* Make [off, end) of piece i a block of its own, out of the piece. The parts
 * before and after stay pieces. */
static int carve(plasma_store *s, plasma_client *cl, int i, uint64_t off, uint64_t end)
{
    plasma__piece p = cl->pieces[i];
    bool left = p.off < off, right = end < p.end;
    /* Room for the piece a middle carve adds, before anything changes: it
     * is the last slot from here on. */
    if (left && right && piece_add(cl, 0, 0) != 0)
        return RAYC_ENOMEM;
    int rc = left ? plasma_alloc_split(s->al, p.off, off - p.off) : 0;
    if (rc != 0) {
        if (right)
            cl->npieces--;
        return rc;
    }
    rc = right ? plasma_alloc_split(s->al, off, end - off) : 0;
    if (rc != 0) {
        if (left) { /* [p.off, off) and [off, p.end) are blocks now: two pieces */
            cl->pieces[i].end = off;
            cl->pieces[cl->npieces - 1] = (plasma__piece){off, p.end};
        }
        return rc;
    }
    if (left && right) {
        cl->pieces[i].end = off;
        cl->pieces[cl->npieces - 1] = (plasma__piece){end, p.end};
    } else if (left) {
        cl->pieces[i].end = off;
    } else if (right) {
        cl->pieces[i].off = end;
    } else {
        piece_remove(cl, i);
    }
    s->slab_bytes -= end - off;
    return 0;
}

int plasma_slab_grant(plasma_store *s, plasma_client *cl, uint64_t want, uint64_t ret_off,
                      uint64_t ret_end, uint64_t *off, uint64_t *size)
{
    *off = *size = 0;
    if (ret_end != 0) {
        int i = ret_off < ret_end && (ret_off & (PLASMA_ALLOC_ALIGN - 1)) == 0
                    ? piece_of(cl, ret_off, ret_end)
                    : -1;
        if (i < 0 || cl->pieces[i].end != ret_end)
            return rayc__error(RAYC_EINVAL,
                               "slab: [%" PRIu64 ", %" PRIu64 ") is not the tail of a slab piece",
                               ret_off, ret_end);
        int rc = carve(s, cl, i, ret_off, ret_end);
        if (rc != 0)
            return rayc__error(rc, "slab: cannot give back the tail: out of memory");
        CHECK(plasma_free(s->al, ret_off) == 0);
        plasma__settle(s); /* memory came back: waiting creates may fit now */
    }
    if (want == 0)
        return 0;
    uint64_t max = (s->cap / 64) & ~(uint64_t)(PLASMA_ALLOC_ALIGN - 1);
    uint64_t n = plasma__round_block(want < max ? want : max);
    plasma_alloc_info ai;
    plasma_alloc_stats(s->al, &ai);
    if (max == 0 || s->slab_bytes + n > s->cap / 8 || ai.free < n || ai.free - n < s->cap / 4)
        return rayc__error(RAYC_ESTORE_FULL, "slab: the store is short of memory");
    uint64_t at;
    int rc = plasma_alloc(s->al, n, &at);
    if (rc != 0)
        return rayc__error(rc, "slab: no free block of %" PRIu64 " bytes", n);
    if (piece_add(cl, at, at + n) != 0) {
        CHECK(plasma_free(s->al, at) == 0);
        return rayc__error(RAYC_ENOMEM, "slab: out of memory");
    }
    s->slab_bytes += n;
    *off = at;
    *size = n;
    return 0;
}

int plasma_slab_create(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t off,
                       uint64_t size)
{
    uint64_t n = plasma__round_block(size);
    int i =
        (off & (PLASMA_ALLOC_ALIGN - 1)) == 0 && off + n > off ? piece_of(cl, off, off + n) : -1;
    if (i < 0)
        return rayc__error(RAYC_EINVAL,
                           "slab: object at [%" PRIu64 ", +%" PRIu64 ") is not in a slab piece",
                           off, size);
    /* A taken id leaves the range in the slab: the client may still read
     * and write it, so it must not go to another object. */
    plasma__obj *o = plasma__tab_find(s, id);
    if ((o != NULL && o->state != PLASMA_ABSENT) || plasma__create_pending(s, id))
        return rayc__error(RAYC_EEXIST, "slab: object already exists");
    int rc = carve(s, cl, i, off, off + n);
    if (rc != 0)
        return rayc__error(rc, "slab: out of memory");
    rc = plasma__obj_install(s, cl, id, size, off, 0);
    if (rc != 0)
        return rayc__error(rc, "slab: out of memory");
    return 0;
}

void plasma__slab_free_all(plasma_store *s, plasma_client *cl)
{
    for (uint32_t i = 0; i < cl->npieces; i++) {
        CHECK(plasma_free(s->al, cl->pieces[i].off) == 0);
        s->slab_bytes -= cl->pieces[i].end - cl->pieces[i].off;
    }
    free(cl->pieces);
    cl->pieces = NULL;
    cl->npieces = cl->cap_pieces = 0;
}
