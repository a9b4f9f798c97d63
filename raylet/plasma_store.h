/*
 * plasma_store.h -- the raylet's shared-memory object store (DESIGN.md
 * section 6, "Plasma store"; docs/object_store.md).
 *
 * One arena per node: a memfd of `object_store_memory` bytes, mapped once by
 * the raylet (and once by each local client, which receives the fd with
 * SCM_RIGHTS from the raylet). Objects are blocks of the arena handed out by
 * plasma_alloc; a client writes its object in place at the returned offset,
 * seals it, and from then on it is immutable. A get of a sealed object
 * returns an offset: no copy, no per-object syscall.
 *
 * Object states:
 *   CREATED  space allocated, the creator is writing; invisible to gets
 *   SEALED   immutable, in the arena
 *   SPILLED  immutable, its bytes are in a file under spill_dir; a get
 *            restores it into the arena first
 * An object leaves the store when its owner deletes it (at once if nobody
 * pins it, else when the last pin goes), when its owner disconnects
 * (fate-sharing), when it is evicted (only objects created with
 * PLASMA_EVICTABLE, i.e. secondary copies), or -- if still CREATED -- when its
 * creator disconnects.
 *
 * Clients: every user of the store is a plasma_client -- a local worker or
 * driver (with its conn), or a part of the raylet itself (conn NULL). Pins
 * and ownership are per client and are dropped when the client is freed.
 *
 * Memory pressure, on a create or restore that does not fit: evict
 * evictable unpinned objects LRU; then spill sealed unpinned objects LRU;
 * (on the I/O thread: the object stays readable until its write is done)
 * then (creates from plasma_create_async and restores) wait up to
 * store_full_wait_ms, retried whenever pins are released or objects freed;
 * then fail with RAYC_ESTORE_FULL and a message that says where the memory is.
 * Objects that a pending get waits for are never evicted or spilled, nor are
 * pinned or unsealed ones. Nothing stored is ever lost or corrupted.
 *
 * Callbacks (create/get/wait) are each called exactly once: with the result,
 * with RAYC_ETIMEDOUT, or with RAYC_ECANCELLED when their client is freed or
 * the store destroyed. They may run before the call that registered them
 * returns (when the answer is known at once). They may call back into the
 * store, but must not free the store.
 *
 * Thread-safety: none. Everything runs in the raylet's single loop thread;
 * timers run on the event_base given to plasma_store_new(). Two other
 * threads: the start-up pre-fault helper, which only touches the arena's
 * page tables (see plasma_store.c), and, after plasma_store_start_io(), the
 * spill I/O thread (plasma_io.h), which only reads and writes the bytes of
 * the objects it spills or restores and their files.
 */
#ifndef RAYC_PLASMA_STORE_H
#define RAYC_PLASMA_STORE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "ids.h"
#include "msg.h"

enum plasma_state {
    PLASMA_ABSENT = 0, /* not in this store */
    PLASMA_CREATED = 1,
    PLASMA_SEALED = 2,
    PLASMA_SPILLED = 3,
};

enum plasma_create_flags {
    PLASMA_EVICTABLE = 1 << 0, /* a secondary copy: may be evicted when unpinned */
};

/* Objects the pending gets and waits of one local client may name at once
 * (twice MSG_STORE_MAX_IDS): a get or wait that would pass it is refused with
 * RAYC_EINVAL, so one connection cannot make the store hold more than ~40
 * MB of waiting entries. */
#define PLASMA_CLIENT_MAX_WAITING (2u * MSG_STORE_MAX_IDS)

typedef struct plasma_store plasma_store;
typedef struct plasma_client plasma_client;

/* A view of one object returned by a get: valid until released. */
typedef struct {
    object_id_t id;
    int status;    /* RAYC_OK, or why this object is not returned */
    uint64_t off;  /* offset into the arena */
    uint64_t size; /* object bytes (the block may be larger) */
} plasma_view;

/* What a seal/delete hook is told: enough for an ObjectLocation update. */
typedef struct {
    object_id_t id;
    node_id_t node;
    uint64_t size;
    worker_id_t owner; /* the owner's worker id; all zero when unknown */
} plasma_object_event;

typedef struct {
    /* An object became sealed here (created locally or received), or the
     * owner of one announced already changed (a task's return handed to its
     * submitter): the same event again, with the new owner. */
    void (*on_object_sealed)(void *arg, const plasma_object_event *ev);
    /* A sealed object left this node (deleted, evicted, owner died). Spilled
     * objects are still on this node. */
    void (*on_object_deleted)(void *arg, const plasma_object_event *ev);
} plasma_hooks;

typedef struct {
    uint64_t capacity;          /* arena bytes */
    uint64_t used;              /* bytes of the arena objects use */
    uint64_t reserved;          /* bytes in clients' put slabs, not carved yet */
    uint64_t objects;           /* objects in the store (created, sealed or spilled) */
    uint64_t unsealed_objects;  /* CREATED */
    uint64_t pinned_objects;    /* sealed and pinned by a client */
    uint64_t spilled_objects;   /* now on disk */
    uint64_t spilled_bytes;     /* now on disk */
    uint64_t evictions;         /* evicted since start */
    uint64_t spills;            /* spill operations since start */
    uint64_t restores;          /* restore operations since start */
    uint64_t largest_free;      /* the biggest object that fits without pressure */
    uint64_t free_blocks;       /* allocator fragmentation indicator */
    uint64_t pending_creates;   /* creates waiting for space */
    uint64_t pending_gets;      /* gets and waits not answered yet */
    uint64_t peak_used;         /* highest `used` since start or plasma_store_reset_peak */
    uint64_t spilling_objects;  /* being written to their spill files now */
    uint64_t restoring_objects; /* being read back now */
} plasma_stats;

/* ------------------------------------------------------------ the store */

/* Create the store: a memfd of cfg->object_store_memory bytes (0: 30% of
 * RAM; rounded down to pages), mapped read/write. When cfg->prefault_store,
 * a helper thread pre-faults every page in the background
 * (MADV_POPULATE_WRITE: contents untouched, so the store is usable at once);
 * the time it took is logged and returned by plasma_store_prefault_us().
 * Spill files go to a subdirectory of cfg->spill_dir named after the
 * session dir (raylet-<pid> without one: a spill dir may be shared, and only
 * this store's own files are swept), else <cfg->session_dir>/spill, else
 * /tmp/rayc-spill-<pid>. Timers run on base.
 * Returns NULL with err set on failure (memfd, mmap, spill dir). */
plasma_store *plasma_store_new(struct event_base *base, const rayc_config *cfg, char *err,
                               size_t errlen);
/* Destroy: frees every client still present (their pending callbacks get
 * RAYC_ECANCELLED), unmaps the arena, closes the memfd, removes spill files.
 * Accepts NULL. Not from inside a store callback. */
void plasma_store_free(plasma_store *s);

/* Spill and restore on an I/O thread from now on (plasma_io.h): the loop
 * no longer waits for the disk. Until this is called (unit tests, fuzzers)
 * they run synchronously, inside the call that needs them. The thread is
 * joined by plasma_store_free(). Returns 0, or -1 with err set (the store
 * keeps working synchronously). */
int plasma_store_start_io(plasma_store *s, char *err, size_t errlen);

/* The arena's memfd, for clients (SCM_RIGHTS). Owned by the store. */
int plasma_store_fd(const plasma_store *s);
uint64_t plasma_store_capacity(const plasma_store *s);
/* The raylet's own mapping of the arena (object manager transfers). */
uint8_t *plasma_store_base(const plasma_store *s);
/* Microseconds the background pre-fault took; 0 while it runs or when
 * disabled. The only store call that is safe from any thread. */
uint64_t plasma_store_prefault_us(const plasma_store *s);

/* Hooks for object-directory updates; node is reported in every event.
 * Hooks must not call back into the store. */
void plasma_store_set_hooks(plasma_store *s, const node_id_t *node, const plasma_hooks *h,
                            void *arg);
void plasma_store_stats(const plasma_store *s, plasma_stats *out);
/* Start the high-water mark (plasma_stats.peak_used) again from the current use. */
void plasma_store_reset_peak(plasma_store *s);

/* ------------------------------------------------------------ clients */

/* A client of the store: c is the local connection (frames come through
 * plasma_handle and replies go out on it), or NULL for parts of the raylet.
 * The client does not own c. Returns NULL on allocation failure. */
plasma_client *plasma_client_new(plasma_store *s, conn *c);
/* The client is gone: cancel its pending requests (callbacks get
 * RAYC_ECANCELLED; nothing is sent on its conn), drop its pins, abort its
 * unsealed creates and delete every object it owns (deferred while other
 * clients pin them). Accepts NULL. */
void plasma_client_free(plasma_client *cl);
/* Record the worker id reported in object events for objects cl owns. */
void plasma_client_set_worker_id(plasma_client *cl, const worker_id_t *id);
conn *plasma_client_conn(const plasma_client *cl);

/* Handle one frame from a local client: CREATE_OBJECT_REQ, SEAL_OBJECT,
 * GET_OBJECTS_REQ, WAIT_OBJECTS_REQ, RELEASE_OBJECTS, DELETE_OBJECTS,
 * STORE_STATS_REQ. Replies go out with conn_send on cl's conn (now or when a
 * pending request completes). Malformed ids, and a get or wait of more than
 * MSG_STORE_MAX_IDS objects or past PLASMA_CLIENT_MAX_WAITING, get a
 * RAYC_EINVAL reply (or a logged warning for messages without replies).
 * Returns false, doing nothing, for any other type. */
bool plasma_handle(plasma_store *s, plasma_client *cl, uint16_t type, ProtobufCMessage *msg);

/* ------------------------------------------------------------ internal API */

typedef void (*plasma_create_cb)(void *arg, uint64_t tag, int status, uint64_t off,
                                 const char *msg);
typedef void (*plasma_get_cb)(void *arg, uint64_t tag, int status, const plasma_view *views,
                              size_t n);
typedef void (*plasma_wait_cb)(void *arg, uint64_t tag, int status, const bool *ready, size_t n);

/* Create an object of size bytes owned (and created) by cl, without waiting:
 * evicts and spills if needed. Returns 0 with *off set, RAYC_EEXIST,
 * RAYC_ESTORE_FULL (message in rayc_last_error()), RAYC_ENOMEM. With the
 * I/O thread running, a create that needs a spill returns RAYC_ESTORE_FULL
 * once the spill is under way (plasma_create_async waits for it). */
int plasma_create(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                  unsigned flags, uint64_t *off);
/* Same, but a create that does not fit waits up to store_full_wait_ms for
 * space. cb(arg, tag, status, off, msg) is called exactly once. */
void plasma_create_async(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t size,
                         unsigned flags, plasma_create_cb cb, void *arg, uint64_t tag);
/* Seal a CREATED object: it becomes immutable and visible; waiting gets are
 * answered. Only its creator may seal it (another client could otherwise
 * publish bytes still being written). Returns 0, RAYC_ENOTFOUND (no such
 * object), RAYC_EINVAL (already sealed, or cl is not the creator). The
 * creator's write pin is dropped. */
int plasma_seal(plasma_store *s, plasma_client *cl, const object_id_t *id);
/* Same; with keep_pin, and cl the creator, its write pin stays as a read pin
 * (released like a get's): the object is never unpinned in between, so it
 * cannot be spilled before the creator reads it again. */
int plasma_seal_keep(plasma_store *s, plasma_client *cl, const object_id_t *id, bool keep_pin);
/* Put slabs (docs/object_store.md): a client reserves a run of the arena
 * and writes small objects into it before telling the store, so a put costs
 * no round trip. The store tracks what is not carved yet; a client's slab
 * goes back to the free memory when it returns it or is freed.
 *
 * Give back [ret_off, ret_end) (the uncarved tail of a slab piece; ret_end 0:
 * nothing), then reserve up to `want` bytes: the store grants at most
 * capacity/64 per slab and capacity/8 in all slabs, and only while a quarter
 * of the store stays free, never evicting or spilling for it. Returns 0 with
 * *off and *size (0 when want is 0), RAYC_EINVAL (bad return range: nothing
 * is granted), RAYC_ESTORE_FULL (no slab now). */
int plasma_slab_grant(plasma_store *s, plasma_client *cl, uint64_t want, uint64_t ret_off,
                      uint64_t ret_end, uint64_t *off, uint64_t *size);
/* Turn [off, off + size) of cl's slab into a CREATED object of cl (with its
 * write pin), as plasma_create would. Returns 0, RAYC_EINVAL (not inside an
 * uncarved piece of cl's slab: nothing changes), RAYC_EEXIST (the id is
 * taken: the range stays in cl's slab, which it may still be using, until cl
 * is freed), RAYC_ENOMEM (also: cl's slab is split in too many pieces). */
int plasma_slab_create(plasma_store *s, plasma_client *cl, const object_id_t *id, uint64_t off,
                       uint64_t size);
/* Get n objects: cb runs once all are sealed and in the arena (each pinned
 * once for cl), or after timeout_ms (-1: never; 0: answer now) with
 * RAYC_ETIMEDOUT and nothing pinned. Spilled objects are restored. Absent
 * objects are waited for. */
void plasma_get(plasma_store *s, plasma_client *cl, const object_id_t *ids, size_t n,
                int64_t timeout_ms, plasma_get_cb cb, void *arg, uint64_t tag);
/* Wait until num_returns of the objects are sealed here (in the arena or
 * spilled) or timeout_ms passes; cb gets RAYC_OK and the ready flags either
 * way. Pins nothing. */
void plasma_wait(plasma_store *s, plasma_client *cl, const object_id_t *ids, size_t n,
                 size_t num_returns, int64_t timeout_ms, plasma_wait_cb cb, void *arg,
                 uint64_t tag);
/* Pin a sealed object now (restoring it if spilled and it fits). Returns 0
 * with *view set, RAYC_ENOTFOUND (absent, unsealed or deleted),
 * RAYC_ESTORE_FULL or RAYC_EIO (restore failed), RAYC_EBUSY (spilled: a
 * restore runs on the I/O thread now; plasma_get waits for it). */
int plasma_pin(plasma_store *s, plasma_client *cl, const object_id_t *id, plasma_view *view);
/* Drop one pin cl holds on id. Returns 0 or RAYC_ENOTFOUND. */
int plasma_release(plasma_store *s, plasma_client *cl, const object_id_t *id);
/* The owner dropped its last reference: free now if unpinned, else when the
 * last pin goes (the object is invisible to new gets meanwhile). For the
 * raylet's own use (its peers, dead owners). Returns 0 or RAYC_ENOTFOUND. */
int plasma_delete(plasma_store *s, const object_id_t *id);
/* The same, asked by the local client cl: done only when cl owns the object
 * (it is its owner, or the object's recorded owner id is cl's worker id, as
 * for a copy pulled for it). Returns 0, RAYC_ENOTFOUND, or RAYC_EINVAL
 * (someone else's object: nothing changes). */
int plasma_delete_by(plasma_store *s, plasma_client *cl, const object_id_t *id);
/* Make owner (NULL: nobody, the raylet keeps it) the object's owner: it is
 * deleted when owner is freed, and owner may delete it. Returns 0 or
 * RAYC_ENOTFOUND. */
int plasma_set_owner(plasma_store *s, const object_id_t *id, plasma_client *owner);
/* The object's owner is not a client of this store (a task's submitter on
 * another node, the owner of a pulled copy): nobody here deletes it with a
 * client, and the client whose worker id is owner_id (all zero: unknown) may
 * delete it. Returns 0 or RAYC_ENOTFOUND. */
int plasma_set_remote_owner(plasma_store *s, const object_id_t *id, const worker_id_t *owner_id);
/* The recorded owner id of an object here (all zero: unknown). false when
 * the object is not in the store. */
bool plasma_object_owner(const plasma_store *s, const object_id_t *id, worker_id_t *owner_id);
/* True if id is a sealed secondary copy here (evictable when unpinned). */
bool plasma_object_is_copy(const plasma_store *s, const object_id_t *id);
/* The objects here of job job_id's normal tasks and driver puts that no
 * local client owns (pulled copies, results kept for a remote owner): what
 * nobody here frees once the job ended. *out is a malloc'd array (the
 * caller frees it; NULL when none); returns how many. Deleting them is the
 * caller's (plasma_delete). */
size_t plasma_job_orphans(const plasma_store *s, uint32_t job_id, object_id_t **out);
/* Mark an object evictable (a secondary copy) or not. 0 or RAYC_ENOTFOUND. */
int plasma_set_evictable(plasma_store *s, const object_id_t *id, bool evictable);
/* The object's state and size (size may be NULL). */
enum plasma_state plasma_object_state(const plasma_store *s, const object_id_t *id, uint64_t *size);
/* Write the "store is full" explanation for a request of size bytes. */
void plasma_store_full_message(const plasma_store *s, uint64_t size, char *buf, size_t len);

#endif
