/*
 * plasma_object.c -- the object table, LRU lists, ownership, pins, freeing and the
 * memory-pressure policy (evict, then spill; restore on demand) of the plasma
 * store.
 * Runs in the raylet's single loop thread. See plasma_internal.h.
 */
#include "plasma_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "util.h"

uint64_t plasma__round_block(uint64_t size)
{
    uint64_t n = size == 0 ? 1 : size;
    if (n > UINT64_MAX - (PLASMA_ALLOC_ALIGN - 1))
        return UINT64_MAX; /* saturate: no size wraps round to a small block */
    return (n + PLASMA_ALLOC_ALIGN - 1) & ~(uint64_t)(PLASMA_ALLOC_ALIGN - 1);
}

/* ------------------------------------------------------------ object table */

static uint64_t tab_slot(const plasma_store *s, uint64_t h)
{
    return h & (s->tab_cap - 1);
}

plasma__obj *plasma__tab_find(const plasma_store *s, const object_id_t *id)
{
    uint64_t h = id_hash(id->b, OBJECT_ID_SIZE);
    for (uint64_t i = tab_slot(s, h);; i = (i + 1) & (s->tab_cap - 1)) {
        plasma__obj *o = s->tab[i];
        if (o == NULL)
            return NULL;
        if (o->hash == h && memcmp(o->id.b, id->b, OBJECT_ID_SIZE) == 0)
            return o;
    }
}

static void tab_place(plasma__obj **tab, uint64_t cap, plasma__obj *o)
{
    uint64_t i = o->hash & (cap - 1);
    while (tab[i] != NULL)
        i = (i + 1) & (cap - 1);
    tab[i] = o;
}

static int tab_resize(plasma_store *s, uint64_t ncap)
{
    plasma__obj **n = calloc(ncap, sizeof(*n));
    if (n == NULL)
        return RAYC_ENOMEM;
    for (uint64_t i = 0; i < s->tab_cap; i++)
        if (s->tab[i] != NULL)
            tab_place(n, ncap, s->tab[i]);
    free(s->tab);
    s->tab = n;
    s->tab_cap = ncap;
    return 0;
}

static int tab_insert(plasma_store *s, plasma__obj *o)
{
    if ((s->tab_len + 1) * 2 > s->tab_cap && tab_resize(s, s->tab_cap * 2) != 0)
        return RAYC_ENOMEM;
    tab_place(s->tab, s->tab_cap, o);
    s->tab_len++;
    return 0;
}

/* A table grown for a burst (a client waiting for many unknown ids) gives
 * its memory back once the burst is gone: shrink when at most 1/8 full. */
static void tab_maybe_shrink(plasma_store *s)
{
    if (s->tab_cap > PLASMA_TAB_MIN && s->tab_len * 8 <= s->tab_cap &&
        tab_resize(s, s->tab_cap / 2) == 0) /* a quarter full; failing, it stays */
        s->trim_due = true;
}

static void tab_remove(plasma_store *s, plasma__obj *o)
{
    uint64_t mask = s->tab_cap - 1, hole = tab_slot(s, o->hash);
    while (s->tab[hole] != o)
        hole = (hole + 1) & mask;
    for (uint64_t j = (hole + 1) & mask; s->tab[j] != NULL; j = (j + 1) & mask) {
        uint64_t home = tab_slot(s, s->tab[j]->hash);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            s->tab[hole] = s->tab[j];
            hole = j;
        }
    }
    s->tab[hole] = NULL;
    s->tab_len--;
    tab_maybe_shrink(s);
}

/* The entry for id, creating an ABSENT one (a place for waiters) if needed. */
plasma__obj *plasma__obj_lookup_or_add(plasma_store *s, const object_id_t *id)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o != NULL)
        return o;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->id = *id;
    o->hash = id_hash(id->b, OBJECT_ID_SIZE);
    if (tab_insert(s, o) != 0) {
        free(o);
        return NULL;
    }
    return o;
}

/* Forget an ABSENT entry nobody waits for. */
void plasma__obj_gc(plasma_store *s, plasma__obj *o)
{
    if (o->state != PLASMA_ABSENT || o->nwaiters != 0 || o->restore != NULL)
        return;
    tab_remove(s, o);
    free(o);
}

bool plasma__obj_visible(const plasma__obj *o)
{
    return o->state != PLASMA_ABSENT && !o->delete_pending;
}

/* Job bytes [20, 24) of an object id (ids.h: TaskID = 8 unique + ActorID,
 * ActorID = 12 unique + JobID); bytes [8, 20) are zero for the job's normal
 * tasks and the driver's puts (nil actor). */
#define OID_ACTOR_OFF 8
#define OID_JOB_OFF   20

static bool orphan_of_job(const plasma__obj *o, const uint8_t job[JOB_ID_SIZE])
{
    static const uint8_t nil[OID_JOB_OFF - OID_ACTOR_OFF];
    return o->state != PLASMA_ABSENT && !o->delete_pending && o->owner == NULL &&
           memcmp(o->id.b + OID_JOB_OFF, job, JOB_ID_SIZE) == 0 &&
           memcmp(o->id.b + OID_ACTOR_OFF, nil, sizeof(nil)) == 0;
}

bool plasma_object_is_copy(const plasma_store *s, const object_id_t *id)
{
    const plasma__obj *o = plasma__tab_find(s, id);
    return o != NULL && o->state == PLASMA_SEALED && o->evictable && !o->delete_pending;
}

size_t plasma_job_orphans(const plasma_store *s, uint32_t job_id, object_id_t **out)
{
    job_id_t j = job_id_from_int(job_id);
    size_t n = 0, cap = 0;
    *out = NULL;
    for (uint64_t i = 0; i < s->tab_cap; i++) {
        const plasma__obj *o = s->tab[i];
        if (o == NULL || !orphan_of_job(o, j.b))
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            object_id_t *m = realloc(*out, ncap * sizeof(*m));
            if (m == NULL)
                break; /* what fits now; the rest waits for eviction */
            *out = m;
            cap = ncap;
        }
        (*out)[n++] = o->id;
    }
    return n;
}

/* ------------------------------------------------------------ LRU, owners */

void plasma__lru_remove(plasma_store *s, plasma__obj *o)
{
    if (o->lru == LRU_NONE)
        return;
    int l = o->lru;
    if (o->lru_prev)
        o->lru_prev->lru_next = o->lru_next;
    else
        s->lru_head[l] = o->lru_next;
    if (o->lru_next)
        o->lru_next->lru_prev = o->lru_prev;
    else
        s->lru_tail[l] = o->lru_prev;
    o->lru_prev = o->lru_next = NULL;
    o->lru = LRU_NONE;
    s->lru_bytes[l] -= plasma__round_block(o->size);
}

/* Put o at the most-recent end of its list if it is reclaimable: sealed, in
 * the arena, unpinned, not awaiting deletion and not being spilled. */
void plasma__lru_touch(plasma_store *s, plasma__obj *o)
{
    plasma__lru_remove(s, o);
    if (o->state != PLASMA_SEALED || o->pins != 0 || o->delete_pending || o->io != NULL)
        return;
    int l = o->evictable ? LRU_EVICT : LRU_SPILL;
    o->lru = (uint8_t)l;
    o->lru_prev = s->lru_tail[l];
    o->lru_next = NULL;
    if (s->lru_tail[l])
        s->lru_tail[l]->lru_next = o;
    else
        s->lru_head[l] = o;
    s->lru_tail[l] = o;
    s->lru_bytes[l] += plasma__round_block(o->size);
}

void plasma__owner_unlink(plasma__obj *o)
{
    plasma_client *cl = o->owner;
    if (cl == NULL)
        return;
    if (o->own_prev)
        o->own_prev->own_next = o->own_next;
    else
        cl->owned = o->own_next;
    if (o->own_next)
        o->own_next->own_prev = o->own_prev;
    o->own_prev = o->own_next = NULL;
    o->owner = NULL;
}

void plasma__owner_link(plasma__obj *o, plasma_client *cl)
{
    plasma__owner_unlink(o);
    if (cl == NULL)
        return;
    o->owner = cl;
    o->owner_id = cl->wid;
    o->own_next = cl->owned;
    if (cl->owned)
        cl->owned->own_prev = o;
    cl->owned = o;
}

void plasma__emit(plasma_store *s, plasma__obj *o, bool sealed)
{
    void (*fn)(void *, const plasma_object_event *) =
        sealed ? s->hooks.on_object_sealed : s->hooks.on_object_deleted;
    if (fn == NULL)
        return;
    plasma_object_event ev = {.id = o->id, .node = s->node, .size = o->size, .owner = o->owner_id};
    fn(s->hook_arg, &ev);
}

/* ------------------------------------------------------------ freeing */

void plasma__space_unlink(plasma_store *s, plasma__space *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        s->sq_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        s->sq_tail = q->prev;
    q->prev = q->next = NULL;
    if (q->timer) {
        event_free(q->timer);
        q->timer = NULL;
    }
    if (q->kind == SPACE_CREATE)
        s->npending_creates--;
}

/* Remove o's bytes from the store (arena block or spill file) and make it
 * ABSENT; waiters stay. Requires no pins. */
void plasma__obj_drop(plasma_store *s, plasma__obj *o)
{
    CHECK(o->pins == 0);
    if (o->io != NULL) /* the I/O thread still uses its block: freed when that job is done */
        plasma__io_detach(s, o);
    else if (o->state == PLASMA_CREATED || o->state == PLASMA_SEALED)
        CHECK(plasma_free(s->al, o->off) == 0);
    if (o->state == PLASMA_CREATED)
        s->nunsealed--;
    if (o->state == PLASMA_SPILLED) {
        plasma__spill_file_remove(s, &o->id);
        s->nspilled--;
        s->spilled_bytes -= o->size;
    }
    if (o->restore != NULL) {
        plasma__space_unlink(s, o->restore);
        free(o->restore);
        o->restore = NULL;
    }
    plasma__lru_remove(s, o);
    if (o->announced)
        plasma__emit(s, o, false);
    plasma__owner_unlink(o);
    s->nobjects--;
    o->state = PLASMA_ABSENT;
    o->creator = NULL;
    o->evictable = o->delete_pending = o->announced = false;
    o->size = o->off = 0;
    memset(&o->owner_id, 0, sizeof(o->owner_id));
    s->space_dirty = true;
    plasma__notify(s, o);
    plasma__obj_gc(s, o);
}

/* The owner is done with o: free it now, or when its last pin goes. */
void plasma__obj_delete(plasma_store *s, plasma__obj *o)
{
    if (o->delete_pending)
        return;
    if (o->pins == 0) {
        plasma__obj_drop(s, o);
        return;
    }
    o->delete_pending = true;
    plasma__lru_remove(s, o);
    plasma__notify(s, o); /* invisible to gets and waits from now on */
}

/* ------------------------------------------------------------ pins */

plasma__pin *plasma__pin_find(const plasma__obj *o, const plasma_client *cl)
{
    for (plasma__pin *p = o->pinl; p; p = p->onext)
        if (p->cl == cl)
            return p;
    return NULL;
}

int plasma__pin_add(plasma_store *s, plasma_client *cl, plasma__obj *o)
{
    plasma__pin *p = plasma__pin_find(o, cl);
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            return RAYC_ENOMEM;
        p->o = o;
        p->cl = cl;
        p->onext = o->pinl;
        o->pinl = p;
        p->cnext = cl->pins;
        if (cl->pins)
            cl->pins->cprev = p;
        cl->pins = p;
    }
    p->count++;
    if (o->pins++ == 0) {
        s->npinned++;
        plasma__lru_remove(s, o);
    }
    return 0;
}

/* Drop k of the pins in p (p is freed when none are left). */
void plasma__pin_drop(plasma_store *s, plasma__pin *p, uint32_t k)
{
    plasma__obj *o = p->o;
    CHECK(k <= p->count && k <= o->pins);
    p->count -= k;
    o->pins -= k;
    if (p->count == 0) {
        plasma__pin **pp = &o->pinl;
        while (*pp != p)
            pp = &(*pp)->onext;
        *pp = p->onext;
        if (p->cprev)
            p->cprev->cnext = p->cnext;
        else
            p->cl->pins = p->cnext;
        if (p->cnext)
            p->cnext->cprev = p->cprev;
        free(p);
    }
    if (o->pins > 0)
        return;
    s->npinned--;
    s->space_dirty = true;
    if (o->delete_pending)
        plasma__obj_drop(s, o);
    else
        plasma__lru_touch(s, o);
}

/* ------------------------------------------------------------ pressure */

/* The least recently used reclaimable object of list l nobody waits to get. */
static plasma__obj *pick_victim(plasma_store *s, int l)
{
    for (plasma__obj *o = s->lru_head[l]; o; o = o->lru_next)
        if (o->nget == 0)
            return o;
    return NULL;
}

/* Allocate size bytes, evicting then spilling LRU objects while it does not
 * fit. Gives up before touching anything when even reclaiming everything
 * reclaimable could not make room. Spills run on the I/O thread: once the
 * bytes being spilled would make room, it returns RAYC_ESTORE_FULL and the
 * caller waits (their completion retries the creates and restores waiting
 * for space); without the thread they are done before this goes on. */
int plasma__make_room(plasma_store *s, uint64_t size, uint64_t *off)
{
    for (;;) {
        int rc = plasma_alloc(s->al, size, off);
        if (rc != RAYC_ESTORE_FULL)
            return rc;
        plasma_alloc_info ai;
        plasma_alloc_stats(s->al, &ai);
        bool can_spill = now_ms() >= s->spill_pause_until;
        uint64_t need = plasma__round_block(size);
        uint64_t reclaimable = ai.free + s->lru_bytes[LRU_EVICT] + s->spilling_bytes +
                               (can_spill ? s->lru_bytes[LRU_SPILL] : 0);
        if (reclaimable < need)
            return RAYC_ESTORE_FULL;
        plasma__obj *v = pick_victim(s, LRU_EVICT);
        if (v != NULL) {
            s->evictions++;
            plasma__obj_drop(s, v);
            continue;
        }
        if (s->spilling_bytes > 0 && ai.free + s->spilling_bytes >= need)
            return RAYC_ESTORE_FULL; /* enough is on its way out */
        v = can_spill ? pick_victim(s, LRU_SPILL) : NULL;
        if (v == NULL || plasma__spill_start(s, v) != 0)
            return RAYC_ESTORE_FULL;
    }
}

/* Objects' bytes now: the allocator's used blocks less the put slabs not
 * carved into objects yet. */
uint64_t plasma__objects_used(const plasma_store *s)
{
    plasma_alloc_info ai;
    plasma_alloc_stats(s->al, &ai);
    return ai.used - s->slab_bytes;
}

/* The high-water mark of objects_used, kept next to the allocations that
 * raise it (creates and restores). */
void plasma__note_peak(plasma_store *s)
{
    uint64_t used = plasma__objects_used(s);
    if (used > s->peak_used)
        s->peak_used = used;
}

void plasma_store_full_message(const plasma_store *s, uint64_t size, char *buf, size_t len)
{
    uint64_t pn = 0, pb = 0, un = 0, ub = 0, hn = 0, hb = 0;
    for (uint64_t i = 0; i < s->tab_cap; i++) {
        const plasma__obj *o = s->tab[i];
        if (o == NULL)
            continue;
        if (o->state == PLASMA_CREATED) {
            un++;
            ub += o->size;
        } else if (o->state == PLASMA_SEALED && o->pins > 0) {
            pn++;
            pb += o->size;
        } else if (o->state == PLASMA_SEALED) {
            hn++;
            hb += o->size;
        }
    }
    plasma_alloc_info ai;
    plasma_alloc_stats(s->al, &ai);
    snprintf(buf, len,
             "object store full: cannot allocate %" PRIu64 " bytes; capacity %" PRIu64
             " bytes, %" PRIu64 " used (largest free block %" PRIu64 "): %" PRIu64
             " objects pinned (%" PRIu64 " bytes), %" PRIu64 " unsealed (%" PRIu64
             " bytes), %" PRIu64 " held unpinned (%" PRIu64 " bytes), %" PRIu64 " spilled (%" PRIu64
             " bytes), %" PRIu64 " bytes reserved by clients' put slabs",
             size, s->cap, ai.used, ai.largest_free, pn, pb, un, ub, hn, hb, s->nspilled,
             s->spilled_bytes, s->slab_bytes);
}

/* ------------------------------------------------------------ get / wait */

bool plasma__slot_ready(const plasma__slot *sl)
{
    const plasma__obj *o = sl->o;
    if (!plasma__obj_visible(o))
        return false;
    if (sl->r->kind == REQ_GET)
        return o->state == PLASMA_SEALED;
    return o->state == PLASMA_SEALED || o->state == PLASMA_SPILLED;
}

bool plasma__req_complete(const plasma__req *r)
{
    return r->kind == REQ_GET ? r->nready == r->n : r->nready >= r->num_returns;
}

void plasma__queue_req(plasma_store *s, plasma__req *r)
{
    if (r->queued)
        return;
    r->queued = true;
    r->qnext = NULL;
    if (s->rq_tail)
        s->rq_tail->qnext = r;
    else
        s->rq_head = r;
    s->rq_tail = r;
}

/* o changed state: refresh the readiness of everyone waiting on it. */
void plasma__notify(plasma_store *s, plasma__obj *o)
{
    for (plasma__slot *sl = o->waiters; sl; sl = sl->next) {
        bool now = plasma__slot_ready(sl);
        if (now == sl->ready)
            continue;
        sl->ready = now;
        if (now)
            sl->r->nready++;
        else
            sl->r->nready--;
        if (plasma__req_complete(sl->r))
            plasma__queue_req(s, sl->r);
    }
}
