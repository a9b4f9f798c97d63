/*
 * plasma_store.c -- the plasma store: arena (memfd), clients, and
 * create/seal/pin/release/delete; see plasma_store.h and docs/object_store.md.
 * Runs in the raylet's single loop thread. See plasma_internal.h.
 */
#include "plasma_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "util.h"

/* ------------------------------------------------------------ create / seal */

bool plasma__create_pending(const plasma_store *s, const object_id_t *id)
{
    for (const plasma__space *q = s->sq_head; q; q = q->next)
        if (q->kind == SPACE_CREATE && memcmp(q->id.b, id->b, OBJECT_ID_SIZE) == 0)
            return true;
    return false;
}

/* Try to create now. On failure msg (if given) explains. */
int plasma__create_now(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                       unsigned flags, uint64_t *off_out, char *msg, size_t len)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if ((o && o->state != PLASMA_ABSENT)) {
        snprintf(msg, len, "object already exists");
        return RAYC_EEXIST;
    }
    if (plasma__round_block(size) > s->cap) {
        snprintf(msg, len,
                 "object of %" PRIu64 " bytes is larger than the whole object store (%" PRIu64
                 " bytes)",
                 size, s->cap);
        return RAYC_ESTORE_FULL;
    }
    uint64_t off;
    int rc = plasma__make_room(s, size, &off);
    if (rc != 0) {
        if (rc == RAYC_ESTORE_FULL)
            plasma_store_full_message(s, size, msg, len);
        else
            snprintf(msg, len, "out of memory");
        return rc;
    }
    rc = plasma__obj_install(s, cl, id, size, off, flags);
    if (rc != 0) {
        snprintf(msg, len, "out of memory");
        return rc;
    }
    *off_out = off;
    return 0;
}

/* A new CREATED object of cl in the block at off (which it now owns). On
 * failure the block is freed. */
int plasma__obj_install(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                        uint64_t off, unsigned flags)
{
    plasma__obj *o = plasma__obj_lookup_or_add(s, id);
    if (o == NULL) {
        CHECK(plasma_free(s->al, off) == 0);
        return RAYC_ENOMEM;
    }
    o->state = PLASMA_CREATED;
    o->size = size;
    o->off = off;
    o->evictable = (flags & PLASMA_EVICTABLE) != 0;
    o->creator = cl;
    plasma__owner_link(o, cl);
    s->nobjects++;
    s->nunsealed++;
    if (plasma__pin_add(s, cl, o) != 0) { /* the creator's write plasma__pin */
        o->creator = NULL;
        o->delete_pending = false;
        s->nunsealed--;
        CHECK(plasma_free(s->al, off) == 0);
        plasma__owner_unlink(o);
        s->nobjects--;
        o->state = PLASMA_ABSENT;
        plasma__obj_gc(s, o);
        return RAYC_ENOMEM;
    }
    plasma__note_peak(s);
    return 0;
}

int plasma_create(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                  unsigned flags, uint64_t *off)
{
    char msg[384];
    if (plasma__create_pending(s, id))
        return rayc__error(RAYC_EEXIST, "object is being created");
    int rc = plasma__create_now(s, cl, id, size, flags, off, msg, sizeof(msg));
    if (rc != 0)
        rayc__error(rc, "%s", msg);
    plasma__settle(s);
    return rc;
}

static void on_space_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    plasma__space *q = arg;
    plasma_store *s = q->s;
    plasma_store_full_message(s, q->size, q->msg, sizeof(q->msg));
    log_warn("plasma: create waited %" PRId64 " ms: %s", s->full_wait_ms, q->msg);
    plasma__space_unlink(s, q);
    q->status = RAYC_ESTORE_FULL;
    q->next = s->done_head;
    s->done_head = q;
    plasma__settle(s);
}

void plasma_create_async(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                         unsigned flags, plasma_create_cb cb, void *arg, uint64_t tag)
{
    char msg[384];
    uint64_t off = 0;
    if (plasma__create_pending(s, id)) {
        cb(arg, tag, RAYC_EEXIST, 0, "object is being created");
        return;
    }
    int rc = plasma__create_now(s, cl, id, size, flags, &off, msg, sizeof(msg));
    bool too_big = plasma__round_block(size) > s->cap;
    if (rc != RAYC_ESTORE_FULL || too_big || s->full_wait_ms <= 0) {
        plasma__settle(s);
        cb(arg, tag, rc, off, rc == 0 ? "" : msg);
        return;
    }
    plasma__space *q = calloc(1, sizeof(*q));
    if (q != NULL)
        q->timer = evtimer_new(s->base, on_space_timer, q);
    int64_t ms = s->full_wait_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (q == NULL || q->timer == NULL || evtimer_add(q->timer, &tv) != 0) {
        if (q && q->timer)
            event_free(q->timer);
        free(q);
        cb(arg, tag, RAYC_ENOMEM, 0, "out of memory");
        return;
    }
    log_info("plasma: store full, create of %" PRIu64 " bytes waits up to %" PRId64 " ms", size,
             ms);
    *q = (plasma__space){.kind = SPACE_CREATE,
                         .s = s,
                         .cl = cl,
                         .id = *id,
                         .size = size,
                         .flags = flags,
                         .cb = cb,
                         .arg = arg,
                         .tag = tag,
                         .timer = q->timer};
    q->prev = s->sq_tail;
    if (s->sq_tail)
        s->sq_tail->next = q;
    else
        s->sq_head = q;
    s->sq_tail = q;
    s->npending_creates++;
    plasma__settle(s);
}

int plasma_seal(plasma_store *s, plasma_client *cl, const object_id_t *id)
{
    return plasma_seal_keep(s, cl, id, false);
}

int plasma_seal_keep(plasma_store *s, plasma_client *cl, const object_id_t *id, bool keep_pin)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || o->state == PLASMA_ABSENT)
        return rayc__error(RAYC_ENOTFOUND, "seal: no such object");
    if (o->state != PLASMA_CREATED)
        return rayc__error(RAYC_EINVAL, "seal: object is already sealed");
    if (o->creator != cl)
        return rayc__error(RAYC_EINVAL, "seal: only the client that created an object seals it");
    plasma_client *creator = o->creator;
    o->state = PLASMA_SEALED;
    o->creator = NULL;
    s->nunsealed--;
    if (!o->delete_pending) {
        o->announced = true;
        plasma__emit(s, o, true);
        plasma__notify(s, o);
    }
    /* Kept, the write pin becomes the creator's read pin with no moment
     * unpinned: settle() below may spill whatever is unpinned. */
    if (!keep_pin)
        plasma__pin_drop(s, plasma__pin_find(o, creator), 1);
    plasma__settle(s);
    return 0;
}

/* ------------------------------------------------------------ pin / release / delete */

int plasma_pin(plasma_store *s, plasma_client *cl, const object_id_t *id, plasma_view *view)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || !plasma__obj_visible(o) || o->state == PLASMA_CREATED)
        return rayc__error(RAYC_ENOTFOUND, "pin: object is not sealed here");
    int rc = 0;
    if (o->state == PLASMA_SPILLED) {
        if (o->restore != NULL)
            rc = RAYC_ESTORE_FULL;
        else
            rc = plasma__restore_one(s, o);
        if (rc == RAYC_ESTORE_FULL) {
            char msg[384];
            plasma_store_full_message(s, o->size, msg, sizeof(msg));
            rayc__error(rc, "%s", msg);
        } else if (rc == 0 && o->io != NULL) {
            rc = rayc__error(RAYC_EBUSY, "pin: the object is being restored; get it instead");
        } else if (rc == 0 && o->state != PLASMA_SEALED) {
            rc = rayc__error(RAYC_EIO, "pin: restoring the object failed");
        }
    }
    if (rc == 0)
        rc = plasma__pin_add(s, cl, o);
    if (rc == 0)
        *view = (plasma_view){.id = o->id, .status = RAYC_OK, .off = o->off, .size = o->size};
    plasma__settle(s);
    return rc;
}

int plasma_release(plasma_store *s, plasma_client *cl, const object_id_t *id)
{
    plasma__obj *o = plasma__tab_find(s, id);
    plasma__pin *p = o ? plasma__pin_find(o, cl) : NULL;
    if (p == NULL)
        return rayc__error(RAYC_ENOTFOUND, "release: object is not pinned by this client");
    if (o->state == PLASMA_CREATED && o->creator == cl && p->count == 1)
        return rayc__error(RAYC_EINVAL, "release: object is not sealed yet");
    plasma__pin_drop(s, p, 1);
    plasma__settle(s);
    return 0;
}

int plasma_delete(plasma_store *s, const object_id_t *id)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || o->state == PLASMA_ABSENT)
        return rayc__error(RAYC_ENOTFOUND, "delete: no such object");
    plasma__obj_delete(s, o);
    plasma__settle(s);
    return 0;
}

int plasma_delete_by(plasma_store *s, plasma_client *cl, const object_id_t *id)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || o->state == PLASMA_ABSENT)
        return rayc__error(RAYC_ENOTFOUND, "delete: no such object");
    if (!plasma__may_delete(o, cl))
        return rayc__error(RAYC_EINVAL, "delete: only the owner of an object deletes it");
    plasma__obj_delete(s, o);
    plasma__settle(s);
    return 0;
}

bool plasma__may_delete(const plasma__obj *o, const plasma_client *cl)
{
    if (o->owner == cl)
        return true;
    return !id_is_nil(cl->wid.b, WORKER_ID_SIZE) &&
           memcmp(o->owner_id.b, cl->wid.b, WORKER_ID_SIZE) == 0;
}

/* Give o to owner (a local client, or NULL) known as owner_id. A sealed
 * object announced already is announced again, so that the directory's
 * entry names its new owner (whose deletes it then spreads). */
static void change_owner(plasma_store *s, plasma__obj *o, plasma_client *owner,
                         const worker_id_t *owner_id)
{
    bool changed = memcmp(o->owner_id.b, owner_id->b, WORKER_ID_SIZE) != 0;
    plasma__owner_link(o, owner);
    o->owner_id = *owner_id;
    if (changed && o->announced && !o->delete_pending)
        plasma__emit(s, o, true);
}

int plasma_set_owner(plasma_store *s, const object_id_t *id, plasma_client *owner)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || o->state == PLASMA_ABSENT)
        return rayc__error(RAYC_ENOTFOUND, "set owner: no such object");
    worker_id_t nobody = {{0}};
    change_owner(s, o, owner, owner ? &owner->wid : &nobody);
    return 0;
}

int plasma_set_remote_owner(plasma_store *s, const object_id_t *id, const worker_id_t *owner_id)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || o->state == PLASMA_ABSENT)
        return rayc__error(RAYC_ENOTFOUND, "set owner: no such object");
    change_owner(s, o, NULL, owner_id);
    return 0;
}

bool plasma_object_owner(const plasma_store *s, const object_id_t *id, worker_id_t *owner_id)
{
    const plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || o->state == PLASMA_ABSENT)
        return false;
    *owner_id = o->owner_id;
    return true;
}

int plasma_set_evictable(plasma_store *s, const object_id_t *id, bool evictable)
{
    plasma__obj *o = plasma__tab_find(s, id);
    if (o == NULL || o->state == PLASMA_ABSENT)
        return rayc__error(RAYC_ENOTFOUND, "set evictable: no such object");
    o->evictable = evictable;
    if (o->lru != LRU_NONE)
        plasma__lru_touch(s, o);
    plasma__settle(s);
    return 0;
}

enum plasma_state plasma_object_state(const plasma_store *s, const object_id_t *id, uint64_t *size)
{
    const plasma__obj *o = plasma__tab_find(s, id);
    if (size)
        *size = o ? o->size : 0;
    return o ? (enum plasma_state)o->state : PLASMA_ABSENT;
}

/* ------------------------------------------------------------ clients */

plasma_client *plasma_client_new(plasma_store *s, conn *c)
{
    plasma_client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return NULL;
    cl->s = s;
    cl->c = c;
    cl->next = s->clients;
    if (s->clients)
        s->clients->prev = cl;
    s->clients = cl;
    return cl;
}

void plasma_client_set_worker_id(plasma_client *cl, const worker_id_t *id)
{
    cl->wid = *id;
}

conn *plasma_client_conn(const plasma_client *cl)
{
    return cl->c;
}

void plasma_client_free(plasma_client *cl)
{
    if (cl == NULL)
        return;
    plasma_store *s = cl->s;
    /* Pending gets and waits: detached now, told after the client is gone. */
    plasma__req *cancelled = NULL;
    while (cl->reqs) {
        plasma__req *r = cl->reqs;
        if (r->queued) { /* take it out of the ready queue */
            plasma__req **pp = &s->rq_head, *prev = NULL;
            while (*pp != r)
                prev = *pp, pp = &(*pp)->qnext;
            *pp = r->qnext;
            if (s->rq_tail == r)
                s->rq_tail = prev;
            r->queued = false;
        }
        plasma__req_detach(s, r);
        r->cl = NULL;
        r->qnext = cancelled;
        cancelled = r;
    }
    plasma__space *dead = NULL;
    for (plasma__space *q = s->sq_head, *next; q; q = next) {
        next = q->next;
        if (q->kind == SPACE_CREATE && q->cl == cl) {
            plasma__space_unlink(s, q);
            q->next = dead;
            dead = q;
        }
    }
    for (plasma__space **pp = &s->done_head; *pp;) { /* answered but not yet told */
        plasma__space *q = *pp;
        if (q->cl == cl) {
            *pp = q->next;
            /* a create that succeeded is aborted with the client's pins below */
            q->next = dead;
            dead = q;
        } else {
            pp = &q->next;
        }
    }
    /* Pins; an unsealed create of this client is aborted with its write pin. */
    while (cl->pins) {
        plasma__pin *p = cl->pins;
        if (p->o->state == PLASMA_CREATED && p->o->creator == cl)
            p->o->delete_pending = true;
        plasma__pin_drop(s, p, p->count);
    }
    /* Fate-sharing: what it owns goes with it. */
    while (cl->owned) {
        plasma__obj *o = cl->owned;
        plasma__owner_unlink(o);
        plasma__obj_delete(s, o);
    }
    plasma__slab_free_all(s, cl);
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        s->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    free(cl);
    while (cancelled) {
        plasma__req *r = cancelled;
        cancelled = r->qnext;
        if (r->kind == REQ_GET)
            r->cb.get(r->arg, r->tag, RAYC_ECANCELLED, NULL, 0);
        else
            r->cb.wait(r->arg, r->tag, RAYC_ECANCELLED, NULL, 0);
        free(r);
    }
    while (dead) {
        plasma__space *q = dead;
        dead = q->next;
        q->cb(q->arg, q->tag, RAYC_ECANCELLED, 0, "client disconnected");
        free(q);
    }
    plasma__settle(s);
}

/* ------------------------------------------------------------ the store */

/* Pre-faulting: allocating and zeroing the arena's pages costs about
 * 1-4 s per GiB on our 2-vCPU VMs (measured: docs/object_store.md), far too
 * long to block the raylet's start. So a helper thread populates the pages
 * with madvise(MADV_POPULATE_WRITE), which faults pages in without changing
 * their contents -- safe while clients already write objects -- in 2 MiB
 * steps, stopping early when the store is freed. On kernels without it the
 * thread reads one byte a page instead (a read fault on shmem allocates the
 * page too). This thread never touches store state other than its own
 * atomics, and the loop thread never waits for it except in
 * plasma_store_free().
 *
 * Priority: nice 19, not SCHED_IDLE, and small steps. Each step holds the
 * process's mmap lock; the loop thread needs that lock too (every large
 * malloc is an mmap, every first touch of an arena page a fault), and on a
 * busy machine a SCHED_IDLE thread may not run for seconds while it holds
 * it: a raylet stalled that way missed its heartbeats and was declared dead
 * (64 MiB steps at idle priority, seen in test_multinode). */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PREFAULT_STEP (2ull << 20)

static void *prefault_main(void *arg)
{
    plasma_store *s = arg;
    /* The lowest normal priority: the pre-fault takes little CPU from the
     * tasks of a freshly started node, yet is never starved while it holds
     * the mmap lock (see above). */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    uint64_t t0 = now_us();
    long page = sysconf(_SC_PAGESIZE);
    bool use_madvise = true;
    for (uint64_t off = 0; off < s->cap && !atomic_load(&s->prefault_stop); off += PREFAULT_STEP) {
        uint64_t n = s->cap - off < PREFAULT_STEP ? s->cap - off : PREFAULT_STEP;
        if (use_madvise && madvise(s->mem + off, n, MADV_POPULATE_WRITE) != 0)
            use_madvise = false;
        if (!use_madvise)
            for (uint64_t i = 0; i < n; i += (uint64_t)page)
                (void)*(volatile uint8_t *)(s->mem + off + i);
    }
    if (atomic_load(&s->prefault_stop))
        return NULL;
    uint64_t us = now_us() - t0;
    log_info("plasma: pre-faulted %" PRIu64 " MiB in %" PRIu64 " ms (%.2f GB/s)%s", s->cap >> 20,
             us / 1000, (double)s->cap / 1e3 / (double)(us ? us : 1),
             use_madvise ? "" : " by reading pages");
    atomic_store(&s->prefault_us, us ? us : 1);
    return NULL;
}

static int open_arena(plasma_store *s, const rayc_config *cfg, char *err, size_t errlen)
{
    uint64_t ram = sys_memory_bytes();
    uint64_t cap = cfg->object_store_memory ? cfg->object_store_memory : ram / 10 * 3;
    long page = sysconf(_SC_PAGESIZE);
    cap &= ~(uint64_t)(page - 1);
    if (cap < (uint64_t)page) {
        snprintf(err, errlen, "object_store_memory %" PRIu64 " is smaller than a page",
                 cfg->object_store_memory);
        return -1;
    }
    if (ram && cap > ram / 10 * 8)
        log_warn("plasma: object store of %" PRIu64 " bytes is over 80%% of RAM (%" PRIu64 ")", cap,
                 ram);
    s->fd = memfd_create("rayc-plasma", MFD_CLOEXEC);
    if (s->fd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    if (ftruncate(s->fd, (off_t)cap) != 0) {
        snprintf(err, errlen, "sizing the object store to %" PRIu64 " bytes: %s", cap,
                 strerror(errno));
        return -1;
    }
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap of the %" PRIu64 "-byte object store: %s", cap,
                 strerror(errno));
        return -1;
    }
    s->mem = p;
    s->cap = cap;
    if (cfg->prefault_store) {
        int rc = pthread_create(&s->prefault_thread, NULL, prefault_main, s);
        if (rc != 0)
            log_syserr(rc, "plasma: cannot start the pre-fault thread; pages fault on first use");
        s->prefault_started = rc == 0;
    }
    return 0;
}

/* Where this store spills. A spill_dir given may be shared by other
 * sessions and nodes (one disk for all): this store uses its own
 * subdirectory there, named after its session dir, so that sweeping stale
 * files at start (a crashed raylet of this session) touches nothing of
 * theirs. */
static void spill_dir_of(const rayc_config *cfg, char *dir, size_t len)
{
    bool session = cfg->session_dir && cfg->session_dir[0];
    if (cfg->spill_dir && cfg->spill_dir[0] && session) {
        char own[1024];
        snprintf(own, sizeof(own), "%s", cfg->session_dir);
        for (size_t n = strlen(own); n > 1 && own[n - 1] == '/'; n--)
            own[n - 1] = '\0';
        const char *slash = strrchr(own, '/');
        snprintf(dir, len, "%s/%s", cfg->spill_dir, slash ? slash + 1 : own);
    } else if (cfg->spill_dir && cfg->spill_dir[0]) {
        snprintf(dir, len, "%s/raylet-%d", cfg->spill_dir, (int)getpid());
    } else if (session) {
        snprintf(dir, len, "%s/spill", cfg->session_dir);
    } else {
        snprintf(dir, len, "/tmp/rayc-spill-%d", (int)getpid());
    }
}

/* Spills or restores finished on the I/O thread: answer what waited for
 * them (completions inline, without the thread, are settled by the entry
 * point that started them). */
static void on_io_batch(void *arg)
{
    plasma_store *s = arg;
    uint64_t now = now_ms();
    /* A failed write paused spilling: whoever waits for space tries again
     * when the pause is over (else only at their own timeout). */
    if (s->spill_pause_until > now && s->sq_head != NULL && s->pause_timer != NULL) {
        uint64_t ms = s->spill_pause_until - now + 20; /* timers may fire a tick early */
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(s->pause_timer, &tv);
    }
    plasma__settle(s);
}

static void on_pause_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    plasma_store *s = arg;
    s->space_dirty = true;
    plasma__settle(s);
}

plasma_store *plasma_store_new(struct event_base *base, const rayc_config *cfg, char *err,
                               size_t errlen)
{
    plasma_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->fd = -1;
    s->full_wait_ms = cfg->store_full_wait_ms;
    if (open_arena(s, cfg, err, errlen) != 0)
        goto fail;
    char dir[4096];
    spill_dir_of(cfg, dir, sizeof(dir));
    s->sp = plasma_spill_open(dir, err, errlen);
    if (s->sp == NULL)
        goto fail;
    s->al = plasma_alloc_new(s->cap);
    s->tab_cap = PLASMA_TAB_MIN;
    s->tab = calloc(s->tab_cap, sizeof(*s->tab));
    s->io = plasma_io_new(base, s->sp, cfg->spill_hold_file, plasma__io_done, on_io_batch, s);
    s->pause_timer = evtimer_new(base, on_pause_over, s);
    if (s->al == NULL || s->tab == NULL || s->io == NULL || s->pause_timer == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    log_info("plasma: object store of %" PRIu64 " bytes, spill dir %s", s->cap, dir);
    return s;
fail:
    plasma_store_free(s);
    return NULL;
}

void plasma_store_free(plasma_store *s)
{
    if (s == NULL)
        return;
    if (s->prefault_started) {
        atomic_store(&s->prefault_stop, true);
        pthread_join(s->prefault_thread, NULL);
    }
    /* Joins the I/O thread; jobs not done finish here (spills that did not
     * run keep their objects in memory, for the frees below, whose file
     * removals then run inline). */
    plasma_io_stop(s->io);
    if (s->pause_timer)
        event_free(s->pause_timer);
    s->pause_timer = NULL;
    while (s->clients)
        plasma_client_free(s->clients);
    while (s->sq_head) { /* restores only: creates belonged to clients */
        plasma__space *q = s->sq_head;
        plasma__space_unlink(s, q);
        if (q->o)
            q->o->restore = NULL;
        free(q);
    }
    for (uint64_t i = 0; s->tab && i < s->tab_cap; i++)
        free(s->tab[i]);
    free(s->tab);
    plasma_alloc_destroy(s->al);
    plasma_io_free(s->io);
    plasma_spill_close(s->sp);
    if (s->mem)
        munmap(s->mem, s->cap);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

int plasma_store_start_io(plasma_store *s, char *err, size_t errlen)
{
    if (plasma_io_start(s->io, err, errlen) != 0)
        return -1;
    log_info("plasma: spilling and restoring on an I/O thread");
    return 0;
}

int plasma_store_fd(const plasma_store *s)
{
    return s->fd;
}

uint64_t plasma_store_capacity(const plasma_store *s)
{
    return s->cap;
}

uint8_t *plasma_store_base(const plasma_store *s)
{
    return s->mem;
}

uint64_t plasma_store_prefault_us(const plasma_store *s)
{
    return atomic_load(&((plasma_store *)s)->prefault_us);
}

void plasma_store_set_hooks(plasma_store *s, const node_id_t *node, const plasma_hooks *h,
                            void *arg)
{
    if (node)
        s->node = *node;
    memset(&s->hooks, 0, sizeof(s->hooks));
    if (h)
        s->hooks = *h;
    s->hook_arg = arg;
}

void plasma_store_stats(const plasma_store *s, plasma_stats *out)
{
    plasma_alloc_info ai;
    plasma_alloc_stats(s->al, &ai);
    *out = (plasma_stats){
        .capacity = s->cap,
        .used = ai.used - s->slab_bytes,
        .reserved = s->slab_bytes,
        .objects = s->nobjects,
        .unsealed_objects = s->nunsealed,
        .pinned_objects = s->npinned - s->nunsealed,
        .spilled_objects = s->nspilled,
        .spilled_bytes = s->spilled_bytes,
        .evictions = s->evictions,
        .spills = s->spills,
        .restores = s->restores,
        .largest_free = ai.largest_free,
        .free_blocks = ai.free_blocks,
        .pending_creates = s->npending_creates,
        .pending_gets = s->npending_reqs,
        .peak_used = s->peak_used,
        .spilling_objects = s->nspilling,
        .restoring_objects = s->nrestoring,
    };
}

void plasma_store_reset_peak(plasma_store *s)
{
    s->peak_used = plasma__objects_used(s);
}
