/*
 * plasma_internal.h -- what the files of the plasma store share: the object
 * entry, pins, pending requests and the store itself. Not for other modules:
 * they use plasma_store.h.
 *
 * The store is split by concern:
 *   plasma_object.c   object table, LRU lists, ownership, pins, freeing, and
 *                     the memory-pressure policy (evict, spill, restore)
 *   plasma_request.c  pending gets and waits, and settle(): the one place
 *                     that answers requests and retries waiting creates
 *   plasma_store.c    the arena, clients, create/seal/pin/release/delete
 *   plasma_wire.c     frames from local clients (plasma_handle)
 *   plasma_slab.c     put slabs: runs of the arena a client carves objects from
 *   plasma_spilling.c starting spills and restores, finishing them when done
 *   plasma_io.c       the I/O thread that runs them (plasma_io.h)
 *   plasma_spill.c    spill files; plasma_alloc.c the arena allocator
 *
 * Invariants:
 *   - an object is in an LRU list iff it is SEALED, unpinned, not
 *     delete-pending and not being spilled (list EVICT if evictable, else
 *     SPILL);
 *   - a CREATED object always holds one pin of its creator (the write pin);
 *     creator is non-NULL exactly while CREATED;
 *   - when owner is non-NULL, owner_id is owner->wid; a local client may
 *     delete an object only when it is its owner (plasma_delete_by);
 *   - an ABSENT entry exists only while someone waits on it (waiters or a
 *     queued restore) and holds no memory;
 *   - every piece of a client's slab is one used allocator block that no
 *     object uses, and s->slab_bytes is the sum of all pieces' sizes;
 *   - a slot is "ready" iff plasma__slot_ready() says so, and r->nready
 *     counts the ready slots of r (kept by plasma__notify on every change);
 *   - o->io is set exactly while a spill or restore of o is in flight; such
 *     an o is in no LRU list, and its arena block (the spill's source, the
 *     restore's destination) is not freed before the job is done.
 *
 * Thread-safety: none; the raylet's loop thread only (the I/O thread of
 * plasma_io.c touches only its jobs' bytes and files).
 */
#ifndef RAYC_PLASMA_INTERNAL_H
#define RAYC_PLASMA_INTERNAL_H

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "plasma_alloc.h"
#include "plasma_io.h"
#include "plasma_spill.h"
#include "plasma_store.h"

#define SPILL_PAUSE_MS 1000 /* after a failed spill write, do not try again for this long */
#define PLASMA_TAB_MIN 1024 /* slots of the object table; it never shrinks below */

enum { LRU_NONE = 0, LRU_EVICT = 1, LRU_SPILL = 2 };
enum { REQ_GET, REQ_WAIT };
enum { SPACE_CREATE, SPACE_RESTORE };

typedef struct plasma__obj plasma__obj;
typedef struct plasma__pin plasma__pin;
typedef struct plasma__req plasma__req;
typedef struct plasma__space plasma__space;

/* cl holds count pins on o. Linked in o's list and in cl's list. */
struct plasma__pin {
    plasma__obj *o;
    plasma_client *cl;
    uint32_t count;
    plasma__pin *onext;
    plasma__pin *cprev, *cnext;
};

/* One object of a pending get or wait, linked in the object's waiter list. */
typedef struct plasma__slot {
    plasma__req *r;
    plasma__obj *o;
    bool ready;
    struct plasma__slot *prev, *next;
} plasma__slot;

/* A pending get or wait. One allocation: the struct, n slots, n outputs. */
struct plasma__req {
    int kind;
    plasma_client *cl;
    union {
        plasma_get_cb get;
        plasma_wait_cb wait;
    } cb;
    void *arg;
    uint64_t tag;
    size_t n, nready, num_returns;
    int error;      /* a restore failed: answer with this */
    bool timed_out; /* the timer fired (or timeout 0) */
    bool queued;    /* in the store's ready queue */
    struct event *timer;
    plasma__req *qnext;
    plasma__req *cprev, *cnext;
    plasma_view *views; /* GET: n views */
    bool *flags;        /* WAIT: n flags */
    plasma__slot slots[];
};

/* A create or restore waiting for arena space. */
struct plasma__space {
    int kind;
    plasma_store *s;
    plasma_client *cl; /* CREATE */
    plasma__obj *o;    /* RESTORE */
    object_id_t id;
    uint64_t size;
    unsigned flags;
    plasma_create_cb cb;
    void *arg;
    uint64_t tag;
    struct event *timer;
    int status; /* when done */
    uint64_t off;
    char msg[384];
    plasma__space *prev, *next;
};

struct plasma__obj {
    object_id_t id;
    uint64_t hash;
    uint8_t state;
    uint8_t lru;
    bool evictable, delete_pending, announced;
    uint64_t size; /* object bytes */
    uint64_t off;  /* arena offset while CREATED/SEALED */
    plasma_client *creator, *owner;
    worker_id_t owner_id; /* the owner's worker id, also when it is remote (zero: unknown) */
    uint32_t pins;
    plasma__pin *pinl;
    plasma__obj *own_prev, *own_next;
    plasma__obj *lru_prev, *lru_next;
    plasma__slot *waiters;
    uint32_t nwaiters, nget;
    plasma__space *restore;
    plasma_io_job *io; /* a spill or restore in flight (plasma_spilling.c) */
};

/* A part of a client's put slab no object has been carved from yet: the
 * used allocator block [off, end), the client's to write. */
typedef struct {
    uint64_t off, end;
} plasma__piece;

struct plasma_client {
    plasma_store *s;
    conn *c;
    worker_id_t wid;
    plasma__piece *pieces; /* usually one: the slab's uncarved tail */
    uint32_t npieces, cap_pieces;
    plasma__pin *pins;
    plasma__obj *owned;
    plasma__req *reqs;
    uint64_t nwaiting; /* objects its pending gets and waits name */
    plasma_client *prev, *next;
};

struct plasma_store {
    struct event_base *base;
    int fd;
    uint8_t *mem;
    uint64_t cap;
    /* pre-fault thread (see plasma_store.c): the one thread besides the loop */
    pthread_t prefault_thread;
    bool prefault_started;
    _Atomic bool prefault_stop;
    _Atomic uint64_t prefault_us; /* 0 until the pre-fault finished */
    int64_t full_wait_ms;
    plasma_allocator *al;
    plasma_spill *sp;
    plasma_io *io; /* spill I/O: on its thread once plasma_store_start_io() ran */

    plasma__obj **tab; /* open addressing, linear probing; load <= 1/2 */
    uint64_t tab_cap, tab_len;

    plasma__obj *lru_head[3], *lru_tail[3];
    uint64_t lru_bytes[3];

    plasma__space *sq_head, *sq_tail; /* waiting for space, FIFO */
    plasma__space *done_head;         /* answered, callbacks pending */
    plasma__req *rq_head, *rq_tail;   /* gets/waits to answer */
    plasma_client *clients;

    bool settling, space_dirty;
    bool trim_due; /* the object table shrank: give freed heap back (settle) */
    uint64_t spill_pause_until;
    struct event *pause_timer; /* retries what waits for space when a pause ends */

    uint64_t slab_bytes; /* in all clients' pieces */
    uint64_t nobjects, nunsealed, npinned, nspilled, spilled_bytes;
    uint64_t evictions, spills, restores, npending_reqs, npending_creates;
    uint64_t peak_used; /* highest stats.used since start or plasma_store_reset_peak */
    uint64_t spilling_bytes, nspilling, nrestoring; /* jobs in flight (blocks rounded) */

    plasma_hooks hooks;
    void *hook_arg;
    node_id_t node;
};

/* plasma_object.c */
uint64_t plasma__round_block(uint64_t size);
plasma__obj *plasma__tab_find(const plasma_store *s, const object_id_t *id);
plasma__obj *plasma__obj_lookup_or_add(plasma_store *s, const object_id_t *id);
void plasma__obj_gc(plasma_store *s, plasma__obj *o);
bool plasma__obj_visible(const plasma__obj *o);
void plasma__lru_remove(plasma_store *s, plasma__obj *o);
void plasma__lru_touch(plasma_store *s, plasma__obj *o);
void plasma__owner_unlink(plasma__obj *o);
void plasma__owner_link(plasma__obj *o, plasma_client *cl);
void plasma__emit(plasma_store *s, plasma__obj *o, bool sealed);
void plasma__space_unlink(plasma_store *s, plasma__space *q);
void plasma__obj_drop(plasma_store *s, plasma__obj *o);
void plasma__obj_delete(plasma_store *s, plasma__obj *o);
plasma__pin *plasma__pin_find(const plasma__obj *o, const plasma_client *cl);
int plasma__pin_add(plasma_store *s, plasma_client *cl, plasma__obj *o);
void plasma__pin_drop(plasma_store *s, plasma__pin *p, uint32_t k);
int plasma__make_room(plasma_store *s, uint64_t size, uint64_t *off);
/* Bytes of the arena objects use (allocator's used blocks less put slabs). */
uint64_t plasma__objects_used(const plasma_store *s);
/* Objects now use more of the arena than ever: raise peak_used. */
void plasma__note_peak(plasma_store *s);
bool plasma__slot_ready(const plasma__slot *sl);
bool plasma__req_complete(const plasma__req *r);
void plasma__queue_req(plasma_store *s, plasma__req *r);
void plasma__notify(plasma_store *s, plasma__obj *o);

/* plasma_spilling.c */
/* Start writing o (SEALED, unpinned) to its spill file. 0 or RAYC_ENOMEM. */
int plasma__spill_start(plasma_store *s, plasma__obj *o);
/* Start bringing a spilled o back into the arena, byte-exact: 0 (started or
 * in flight; failures reach the gets waiting for o), RAYC_ESTORE_FULL (no
 * room yet), RAYC_ENOMEM. */
int plasma__restore_one(plasma_store *s, plasma__obj *o);
/* Remove the spill file of id, behind the I/O jobs submitted before. */
void plasma__spill_file_remove(plasma_store *s, const object_id_t *id);
/* o leaves while its job runs: the job frees what it still uses when done. */
void plasma__io_detach(plasma_store *s, plasma__obj *o);
/* plasma_io's done callback (arg: the store). */
void plasma__io_done(void *arg, plasma_io_job *job);

/* plasma_request.c */
void plasma__req_detach(plasma_store *s, plasma__req *r);
void plasma__settle(plasma_store *s);

/* plasma_slab.c */
void plasma__slab_free_all(plasma_store *s, plasma_client *cl);

/* plasma_store.c */
/* cl owns o: by pointer, or by its (non-zero) worker id for a remote owner. */
bool plasma__may_delete(const plasma__obj *o, const plasma_client *cl);
/* A create of id waits for space. */
bool plasma__create_pending(const plasma_store *s, const object_id_t *id);
int plasma__obj_install(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                        uint64_t off, unsigned flags);
int plasma__create_now(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                       unsigned flags, uint64_t *off_out, char *msg, size_t len);

#endif
