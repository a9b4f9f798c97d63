/*
 * core_objects.c -- rayc_put / rayc_get / rayc_wait and reference counting.
 *
 * Small values (<= inline_max) live in this process's memory. Larger ones are
 * created in the node's plasma arena, written in place and sealed: one round
 * trip (create) plus one one-way message (seal). A get of a store object
 * returns a pointer into the mapped arena (zero copy); the store pin it takes
 * is kept in a small LRU cache after the value is released, so getting the
 * same object again costs no round trip.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "errors.h"
#include "log.h"
#include "util.h"

/* ----------------------------------------------------------- store messages */

static void send_seal(const object_id_t *id, bool keep_pin);
static void slab_give_back(void);

/* Tell the store this client no longer needs its pins on these objects. */
static void send_release(ref_entry **es, size_t n)
{
    if (n == 0)
        return;
    ProtobufCBinaryData ids[64];
    Rpc__ReleaseObjects rel = RPC__RELEASE_OBJECTS__INIT;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 64 ? n - done : 64;
        for (size_t i = 0; i < k; i++) {
            ids[i].data = es[done + i]->id.b;
            ids[i].len = OBJECT_ID_SIZE;
        }
        rel.n_object_ids = k;
        rel.object_ids = ids;
        cw_conn_send(rayc__core.raylet, MSG_RELEASE_OBJECTS, &rel.base);
        done += k;
    }
}

void core__send_delete(const object_id_t *id, bool release_pins)
{
    ProtobufCBinaryData b = {OBJECT_ID_SIZE, (uint8_t *)id->b};
    Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
    del.n_object_ids = 1;
    del.object_ids = &b;
    del.release_pins = release_pins;
    int rc = cw_conn_send_batched_msg(rayc__core.raylet, MSG_DELETE_OBJECTS, &del.base);
    if (rc != 0) {
        char hex[ID_HEX_MAX];
        log_error("cannot tell the raylet to free object %s: %s",
                  id_hex(id->b, OBJECT_ID_SIZE, hex), rayc_strerror(rc));
    }
}

/* The owner is done with a store object: the store frees it (once nobody
 * pins it), and drops our own pin with it. */
static void send_delete(ref_entry *e)
{
    core__send_delete(&e->id, e->pinned);
    e->deleted = true;
    e->pinned = false;
}

/* Give back the pins of batch[0..n); entries nobody uses any more go. */
static void unpin_batch(ref_entry **batch, size_t n)
{
    core_t *c = &rayc__core;
    send_release(batch, n);
    for (size_t i = 0; i < n; i++) {
        ref_entry *e = batch[i];
        e->pinned = false;
        if (e->refs > 0) {
            e->data = NULL; /* still referenced: the next get pins it again */
            continue;
        }
        object_id_t id = e->id;
        bool owned = e->owned;
        reft_remove(&c->refs, e);
        if (owned)
            core__lineage_release(&id);
    }
}

void core__trim_pin_cache(bool everything)
{
    core_t *c = &rayc__core;
    ref_entry *batch[64];
    size_t n = 0;
    /* Over a bound, trim well below it (to 7/8) so one ReleaseObjects carries
     * many pins instead of one per put. The newest pin stays even if it alone
     * is over the byte bound: one large object read again and again must not
     * cost a round trip each. */
    if (!everything && c->refs.cache_count <= c->cache_max_objects &&
        (c->refs.cache_bytes <= c->cache_max_bytes || c->refs.cache_count <= 1))
        return;
    size_t max_objects = c->cache_max_objects / 8 * 7, max_bytes = c->cache_max_bytes / 8 * 7;
    while (c->refs.cache_head && (everything || c->refs.cache_count > max_objects ||
                                  (c->refs.cache_bytes > max_bytes && c->refs.cache_count > 1))) {
        ref_entry *e = reft_cache_oldest(&c->refs);
        reft_cache_remove(&c->refs, e);
        batch[n++] = e;
        if (n == 64) {
            unpin_batch(batch, n);
            n = 0;
        }
    }
    unpin_batch(batch, n);
}

/* The last view or reference of an entry went. A store pin with no view is
 * kept in a small LRU cache (so getting the object again costs no round
 * trip) but never held beyond it: a pinned object cannot be spilled. */
void core__maybe_finalize(ref_entry *e)
{
    core_t *c = &rayc__core;
    if (e->views > 0)
        return;
    if (e->refs == 0 && e->in_store && e->owned && !e->deleted)
        send_delete(e);
    if (e->in_store && e->pinned && e->refs > 0) {
        /* Only objects we reference: a pin on someone else's object would
         * keep it alive after its owner freed it. */
        reft_cache_add(&c->refs, e);
        core__trim_pin_cache(false);
        return;
    }
    if (e->refs > 0)
        return;
    if (e->cached)
        reft_cache_remove(&c->refs, e);
    if (e->pinned)
        send_release(&e, 1);
    object_id_t id = e->id;
    bool owned = e->owned;
    reft_remove(&c->refs, e);
    if (owned)
        core__lineage_release(&id);
}

void core__took_pin(ref_entry *e, void *data)
{
    core_t *c = &rayc__core;
    if (e->pinned || data == NULL) { /* one pin per entry: this one is extra */
        send_release(&e, 1);
        return;
    }
    e->pinned = true;
    e->data = data;
    e->remote = false;
    if (e->views == 0) {
        reft_cache_add(&c->refs, e);
        core__trim_pin_cache(false);
    }
}

/* ------------------------------------------------------------------- put */

static object_id_t next_put_id(void)
{
    core_t *c = &rayc__core;
    return object_id_for_put(&c->task, ++c->put_index);
}

/* The store is full: give back our cached pins and the rest of our put
 * slab. True if there was any. mu NOT held. */
static bool give_back_memory(void)
{
    core_t *c = &rayc__core;
    pthread_mutex_lock(&c->mu);
    bool held = c->refs.cache_count > 0 || c->slab_end > c->slab_next;
    core__trim_pin_cache(true);
    slab_give_back();
    pthread_mutex_unlock(&c->mu);
    return held;
}

/* Create a store object of size bytes. mu is NOT held. Returns 0 with the
 * arena offset, or a code (RAYC_ESTORE_FULL with the store's message). */
int core__store_create(const object_id_t *id, size_t size, uint64_t *offset)
{
    core_t *c = &rayc__core;
    for (int attempt = 0;; attempt++) {
        Rpc__CreateObjectRequest req = RPC__CREATE_OBJECT_REQUEST__INIT;
        req.req_id = cw_conn_next_id(c->raylet);
        req.object_id.data = (uint8_t *)id->b;
        req.object_id.len = OBJECT_ID_SIZE;
        req.size = size;
        ProtobufCMessage *m;
        int rc = cw_conn_call(c->raylet, req.req_id, MSG_CREATE_OBJECT_REQ, &req.base,
                              MSG_CREATE_OBJECT_REPLY, &m, -1);
        if (rc != 0)
            return rayc__error(rc, "object store unreachable: %s", rayc_strerror(rc));
        Rpc__CreateObjectReply *r = (Rpc__CreateObjectReply *)m;
        rc = r->status ? r->status->code : 0;
        if (rc == 0) {
            *offset = r->offset;
            if (r->offset + size > c->arena_size)
                rc = rayc__error(RAYC_EPROTO, "store returned offset %llu outside the arena",
                                 (unsigned long long)r->offset);
        } else if (rc == RAYC_ESTORE_FULL && attempt == 0 && give_back_memory()) {
            msg_free(m); /* what we held may have been what the store lacked */
            continue;
        } else {
            rayc__error(rc, "%s", r->status->message[0] ? r->status->message : rayc_strerror(rc));
        }
        msg_free(m);
        return rc;
    }
}

void core__send_seal(const object_id_t *id)
{
    send_seal(id, false);
}

/* Seal a store object; with keep_pin the store pins it for us at once. */
static void send_seal(const object_id_t *id, bool keep_pin)
{
    Rpc__SealObject seal = RPC__SEAL_OBJECT__INIT;
    seal.object_id.data = (uint8_t *)id->b;
    seal.object_id.len = OBJECT_ID_SIZE;
    seal.keep_pin = keep_pin;
    cw_conn_send(rayc__core.raylet, MSG_SEAL_OBJECT, &seal.base);
}

/* ------------------------------------------------------------ put slab */

/* Ask the raylet for a new slab, giving back [ret_off, ret_end). mu NOT
 * held. 0 with the grant, or a code. */
static int slab_request(uint64_t want, uint64_t ret_off, uint64_t ret_end, uint64_t *off,
                        uint64_t *size)
{
    core_t *c = &rayc__core;
    Rpc__SlabRequest req = RPC__SLAB_REQUEST__INIT;
    req.req_id = cw_conn_next_id(c->raylet);
    req.size = want;
    req.return_offset = ret_end > ret_off ? ret_off : 0;
    req.return_end = ret_end > ret_off ? ret_end : 0;
    ProtobufCMessage *m;
    int rc = cw_conn_call(c->raylet, req.req_id, MSG_SLAB_REQ, &req.base, MSG_SLAB_REPLY, &m, -1);
    if (rc != 0)
        return rc;
    Rpc__SlabReply *r = (Rpc__SlabReply *)m;
    rc = r->status ? r->status->code : 0;
    if (rc == 0 && (r->offset > c->arena_size || r->size > c->arena_size - r->offset)) {
        log_warn("raylet granted a put slab outside the arena: [%llu, +%llu)",
                 (unsigned long long)r->offset, (unsigned long long)r->size);
        rc = RAYC_EPROTO;
    }
    *off = r->offset;
    *size = r->size;
    msg_free(m);
    return rc;
}

/* Take size bytes for a store object from our put slab, asking the raylet
 * for a new slab when this one is used up. mu held (dropped while asking).
 * True with *off; false: create the object with a round trip instead (too
 * big for slabs, slabs off or refused, another thread is asking). */
static bool slab_take(size_t size, uint64_t *off)
{
    core_t *c = &rayc__core;
    uint64_t n = size == 0 ? 64 : ((uint64_t)size + 63) & ~(uint64_t)63; /* the store's blocks */
    if (c->slab_want == 0 || n > c->slab_size / 4)
        return false;
    if (n <= c->slab_end - c->slab_next) {
        *off = c->slab_next;
        c->slab_next += n;
        return true;
    }
    if (c->slab_busy)
        return false;
    if (c->slab_backoff > 0) {
        c->slab_backoff--;
        return false;
    }
    c->slab_busy = true;
    uint64_t ret_off = c->slab_next, ret_end = c->slab_end, got = 0, got_size = 0;
    c->slab_next = c->slab_end = 0;
    pthread_mutex_unlock(&c->mu);
    int rc = slab_request(c->slab_want, ret_off, ret_end, &got, &got_size);
    pthread_mutex_lock(&c->mu);
    c->slab_busy = false;
    if (rc != 0) {
        /* Full, or short of memory: creates with a round trip meanwhile, which
         * evict, spill and wait as the store needs. */
        if (rc != RAYC_ESTORE_FULL)
            log_debug("no put slab: %s", rayc_last_error());
        c->slab_backoff = 64;
        return false;
    }
    c->slab_size = got_size;
    c->slab_next = got;
    c->slab_end = got + got_size;
    if (n > got_size)
        return false;
    *off = c->slab_next;
    c->slab_next += n;
    return true;
}

/* Give the unused rest of our slab back to the store (it is short of
 * memory) and ask for no new one for a while. mu held (dropped meanwhile). */
static void slab_give_back(void)
{
    core_t *c = &rayc__core;
    if (c->slab_busy || c->slab_end <= c->slab_next)
        return;
    uint64_t ret_off = c->slab_next, ret_end = c->slab_end, off, size;
    c->slab_next = c->slab_end = 0;
    c->slab_busy = true;
    c->slab_backoff = 64;
    pthread_mutex_unlock(&c->mu);
    int rc = slab_request(0, ret_off, ret_end, &off, &size);
    pthread_mutex_lock(&c->mu);
    c->slab_busy = false;
    if (rc != 0)
        log_debug("giving back the put slab: %s", rayc_strerror(rc));
}

/* Announce a store object written into our slab, sealed, keeping our pin.
 * Batched: a burst of puts costs a few writes. mu held (orders it before
 * the release of the pin). */
static void send_slab_object(const ref_entry *e)
{
    core_t *c = &rayc__core;
    Rpc__SlabObject so = RPC__SLAB_OBJECT__INIT;
    so.object_id.data = (uint8_t *)e->id.b;
    so.object_id.len = OBJECT_ID_SIZE;
    so.offset = (uint64_t)((uint8_t *)e->data - c->arena);
    so.size = e->size;
    so.sealed = true;
    so.keep_pin = true;
    int rc = cw_conn_send_batched_msg(c->raylet, MSG_SLAB_OBJECT, &so.base);
    if (rc != 0) {
        char hex[ID_HEX_MAX];
        log_error("cannot tell the raylet of object %s: %s", id_hex(e->id.b, OBJECT_ID_SIZE, hex),
                  rayc_strerror(rc));
    }
}

/* Reserve an id and an entry for a new owned object; mu held. */
static ref_entry *new_owned(object_id_t *id, int *rc)
{
    *id = next_put_id();
    ref_entry *e = reft_get_or_add(&rayc__core.refs, id, NULL);
    if (e == NULL) {
        *rc = rayc__error(RAYC_ENOMEM, "out of memory");
        return NULL;
    }
    e->owned = true;
    e->refs = 1;
    return e;
}

/* Allocate an object of size bytes for the caller to fill; sealed = false. */
static int put_begin(size_t size, void **buf, rayc_ref *out)
{
    core_t *c = &rayc__core;
    object_id_t id;
    int rc = 0;
    bool inline_value = size <= c->inline_max;
    void *heap = NULL;
    if (inline_value && (heap = malloc(size ? size : 1)) == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory for a %zu-byte object", size);

    pthread_mutex_lock(&c->mu);
    ref_entry *e = new_owned(&id, &rc);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        free(heap);
        return rc;
    }
    e->size = size;
    e->in_store = !inline_value;
    e->node = c->node_id;
    e->data = heap;
    e->views = 1; /* the writer's view, until sealed */
    uint64_t off = 0;
    bool in_slab = !inline_value && slab_take(size, &off);
    if (in_slab) {
        e->data = c->arena + off;
        e->in_slab = true;
    }
    pthread_mutex_unlock(&c->mu);

    if (!inline_value && !in_slab) {
        rc = core__store_create(&id, size, &off);
        pthread_mutex_lock(&c->mu);
        if (rc != 0) {
            e->views = 0;
            e->refs = 0;
            e->in_store = false; /* nothing was created: drop quietly */
            reft_remove(&c->refs, e);
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
        e->data = c->arena + off;
        pthread_mutex_unlock(&c->mu);
    }
    *buf = e->data;
    memcpy(out->id, id.b, OBJECT_ID_SIZE);
    return 0;
}

int rayc_put_alloc(size_t size, void **buf, rayc_ref *out)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (buf == NULL || out == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_put_alloc: NULL argument");
    return put_begin(size, buf, out);
}

int rayc_put_seal(rayc_ref ref)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    object_id_t id;
    memcpy(id.b, ref.id, OBJECT_ID_SIZE);
    pthread_mutex_lock(&c->mu);
    ref_entry *e = reft_find(&c->refs, &id);
    if (e == NULL || !e->owned || e->sealed) {
        pthread_mutex_unlock(&c->mu);
        return rayc__error(RAYC_EINVAL, "rayc_put_seal: not an unsealed object of this process");
    }
    e->sealed = true;
    e->views--;
    bool store = e->in_store;
    /* A store object: the seal keeps our pin, so our own gets need no round
     * trip; the pin cache gives it back when it is over its bounds. The seal
     * goes out before the pin can be released (both under mu, in order). */
    if (store) {
        if (e->in_slab)
            send_slab_object(e);
        else
            send_seal(&id, true);
        e->in_slab = false;
        e->pinned = true;
    }
    core__maybe_finalize(e);
    pthread_cond_broadcast(&c->sealed_cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int rayc_put(const void *data, size_t size, rayc_ref *out)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if ((data == NULL && size > 0) || out == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_put: NULL argument");
    void *buf;
    rc = put_begin(size, &buf, out);
    if (rc != 0)
        return rc;
    if (size)
        memcpy(buf, data, size);
    return rayc_put_seal(*out);
}

/* ------------------------------------------------------------- references */

void rayc_ref_retain(rayc_ref ref)
{
    core_t *c = &rayc__core;
    if (core__check_init() != 0)
        return;
    object_id_t id;
    memcpy(id.b, ref.id, OBJECT_ID_SIZE);
    pthread_mutex_lock(&c->mu);
    ref_entry *e = reft_get_or_add(&c->refs, &id, NULL);
    if (e)
        e->refs++;
    pthread_mutex_unlock(&c->mu);
}

void rayc_ref_release(rayc_ref ref)
{
    core_t *c = &rayc__core;
    if (core__check_init() != 0)
        return;
    object_id_t id;
    memcpy(id.b, ref.id, OBJECT_ID_SIZE);
    pthread_mutex_lock(&c->mu);
    ref_entry *e = reft_find(&c->refs, &id);
    if (e && e->refs > 0) {
        e->refs--;
        core__maybe_finalize(e);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ get */

static void view_of(ref_entry *e, rayc_value *v)
{
    e->views++;
    if (e->cached)
        reft_cache_remove(&rayc__core.refs, e);
    v->data = e->data;
    v->size = e->size;
    v->status = e->status;
    v->error = e->error;
    v->priv_ = e;
}

void rayc_value_release(rayc_value *v)
{
    core_t *c = &rayc__core;
    if (v == NULL || v->priv_ == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    ref_entry *e = v->priv_;
    e->views--;
    core__maybe_finalize(e);
    pthread_mutex_unlock(&c->mu);
    memset(v, 0, sizeof(*v));
}

/* Ready for a local view: inline and sealed, or a store object we pin. */
static bool locally_ready(const ref_entry *e)
{
    if (e == NULL)
        return false;
    if (e->status != RAYC_OK)
        return true;
    return e->in_store ? e->pinned : e->sealed;
}

/* Undo the views handed out so far (a get that times out leaves nothing). */
static void undo_views(rayc_value *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i].priv_) {
            ref_entry *e = out[i].priv_;
            e->views--;
            core__maybe_finalize(e);
        }
        memset(&out[i], 0, sizeof(out[i]));
    }
}

/* The ids of refs[idx[0..n)] as protobuf bytes fields, in stack (32 entries)
 * or, for more, a heap array. NULL when out of memory. Free with
 * free_id_list(). */
static ProtobufCBinaryData *id_list(const rayc_ref *refs, const size_t *idx, size_t n,
                                    ProtobufCBinaryData *stack)
{
    ProtobufCBinaryData *ids = n > 32 ? malloc(n * sizeof(*ids)) : stack;
    for (size_t i = 0; ids && i < n; i++) {
        ids[i].data = (uint8_t *)refs[idx[i]].id;
        ids[i].len = OBJECT_ID_SIZE;
    }
    return ids;
}

static void free_id_list(ProtobufCBinaryData *ids, ProtobufCBinaryData *stack)
{
    if (ids != stack)
        free(ids);
}

/* Ask the store for objects we do not have. mu NOT held. Fills pins into the
 * table on success; on timeout the store took no pins. */
static int store_get(const rayc_ref *refs, const size_t *idx, size_t nmissing, int64_t timeout_ms)
{
    core_t *c = &rayc__core;
    ProtobufCBinaryData stack_ids[32], *ids = id_list(refs, idx, nmissing, stack_ids);
    if (ids == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    /* Objects this process does not know to be here may be on other nodes:
     * ask the raylet to pull them (it ignores the ones it has). */
    bool maybe_remote = false;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < nmissing && !maybe_remote; i++) {
        object_id_t id;
        memcpy(id.b, refs[idx[i]].id, OBJECT_ID_SIZE);
        ref_entry *e = reft_find(&c->refs, &id);
        maybe_remote = e == NULL || !e->owned || e->remote;
    }
    pthread_mutex_unlock(&c->mu);
    if (maybe_remote) {
        Rpc__PullObjects pull = RPC__PULL_OBJECTS__INIT;
        pull.n_object_ids = nmissing;
        pull.object_ids = ids;
        cw_conn_send(c->raylet, MSG_PULL_OBJECTS, &pull.base);
        /* A pull can fail (ObjectLost): wait in slices to notice. */
        if (timeout_ms < 0 || timeout_ms > 200)
            timeout_ms = 200;
    }
    Rpc__GetObjectsRequest req = RPC__GET_OBJECTS_REQUEST__INIT;
    req.req_id = cw_conn_next_id(c->raylet);
    req.n_object_ids = nmissing;
    req.object_ids = ids;
    req.timeout_ms = timeout_ms;
    ProtobufCMessage *m;
    /* The store enforces the timeout and answers either way; we wait for
     * that answer (a late reply would otherwise leave pins behind). */
    int rc = cw_conn_call(c->raylet, req.req_id, MSG_GET_OBJECTS_REQ, &req.base,
                          MSG_GET_OBJECTS_REPLY, &m, -1);
    free_id_list(ids, stack_ids);
    if (rc != 0)
        return rayc__error(rc, "object store unreachable: %s", rayc_strerror(rc));
    Rpc__GetObjectsReply *r = (Rpc__GetObjectsReply *)m;
    rc = r->status ? r->status->code : 0;
    if (rc != 0) {
        rayc__error(rc, "%s", r->status->message[0] ? r->status->message : rayc_strerror(rc));
        msg_free(m);
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    ref_entry *dups[64];
    size_t ndup = 0;
    for (size_t i = 0; i < r->n_objects; i++) {
        Rpc__ObjectView *ov = r->objects[i];
        if (ov->object_id.len != OBJECT_ID_SIZE || ov->offset + ov->size > c->arena_size)
            continue;
        object_id_t id;
        memcpy(id.b, ov->object_id.data, OBJECT_ID_SIZE);
        ref_entry *e = reft_get_or_add(&c->refs, &id, NULL);
        if (e == NULL)
            continue;
        int st = ov->status ? ov->status->code : 0;
        if (st != 0) {
            e->status = st;
            free(e->error);
            e->error = strdup(ov->status->message);
            continue;
        }
        if (e->pinned) {
            /* Another thread pinned it meanwhile: give our extra pin back. */
            if (ndup < 64)
                dups[ndup++] = e;
            continue;
        }
        e->in_store = true;
        e->sealed = true;
        e->pinned = true;
        e->remote = false;
        e->node = c->node_id;
        e->data = c->arena + ov->offset;
        e->size = ov->size;
    }
    send_release(dups, ndup);
    pthread_mutex_unlock(&c->mu);
    msg_free(m);
    return 0;
}

int rayc_get(const rayc_ref *refs, size_t n, rayc_value *out, int64_t timeout_ms)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if ((n > 0 && (refs == NULL || out == NULL)) || timeout_ms < -1)
        return rayc__error(RAYC_EINVAL, "rayc_get: bad arguments");
    memset(out, 0, n * sizeof(*out));
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    size_t stack_idx[32], *idx = n > 32 ? malloc(n * sizeof(*idx)) : stack_idx;
    if (idx == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");

    int store_rounds = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        size_t nmissing = 0, nwait_inline = 0;
        for (size_t i = 0; i < n; i++) {
            if (out[i].priv_)
                continue;
            object_id_t id;
            memcpy(id.b, refs[i].id, OBJECT_ID_SIZE);
            ref_entry *e = reft_find(&c->refs, &id);
            if (locally_ready(e))
                view_of(e, &out[i]);
            else if (e && e->owned && !e->in_store)
                nwait_inline++; /* our own put_alloc, not sealed yet */
            else
                idx[nmissing++] = i;
        }
        if (nmissing == 0 && nwait_inline == 0) {
            rc = 0;
            break;
        }
        uint64_t now = now_ms();
        if (nmissing > 0) {
            /* The store answered OK for these before, yet they are not here:
             * a broken reply. Do not spin on it. */
            if (store_rounds++ == 3) {
                rc = rayc__error(RAYC_EPROTO, "rayc_get: the store keeps omitting objects");
                break;
            }
            int64_t left = timeout_ms < 0 ? -1 : (int64_t)(deadline > now ? deadline - now : 0);
            pthread_mutex_unlock(&c->mu);
            if (c->is_worker && c->in_task && !c->blocked && left != 0) {
                /* Poll first: only a real wait gives the CPU back. */
                rc = store_get(refs, idx, nmissing, 0);
                if (rc == RAYC_ETIMEDOUT) {
                    core__block();
                    rc = store_get(refs, idx, nmissing, left);
                }
            } else {
                rc = store_get(refs, idx, nmissing, left);
            }
            pthread_mutex_lock(&c->mu);
            if (rc == RAYC_ETIMEDOUT && now_ms() < deadline) {
                store_rounds = 0; /* a slice of a longer wait, not a broken reply */
                continue;
            }
            if (rc != 0)
                break;
            continue; /* pick up what arrived */
        }
        if (now >= deadline) {
            rc = RAYC_ETIMEDOUT;
            break;
        }
        /* Results of tasks still running: read the raylet connection until
         * their completions arrive (another reader may deliver them too). */
        uint64_t wait = deadline == UINT64_MAX ? 1000 : deadline - now;
        pthread_mutex_unlock(&c->mu);
        core__block();
        int prc = cw_conn_pump(c->raylet, (int64_t)(wait > 1000 ? 1000 : wait));
        pthread_mutex_lock(&c->mu);
        if (prc != 0) {
            rc = rayc__error(prc, "lost the raylet while waiting for results");
            break;
        }
    }
    if (rc != 0)
        undo_views(out, n);
    pthread_mutex_unlock(&c->mu);
    core__unblock();
    if (idx != stack_idx)
        free(idx);
    if (rc == RAYC_ETIMEDOUT)
        return rayc__error(RAYC_ETIMEDOUT, "rayc_get: not every object was ready within %lld ms",
                           (long long)timeout_ms);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (out[i].status != RAYC_OK)
            return rayc__error(out[i].status, "%s", out[i].error ? out[i].error : "");
    return 0;
}

/* ------------------------------------------------------------------ wait */

/* Readiness for rayc_wait without asking anyone: 1 ready, 0 an owned result
 * still being computed (its completion will tell), -1 unknown here (the store
 * will tell). mu held. */
static int wait_state(const ref_entry *e)
{
    if (e == NULL)
        return -1;
    if (e->status != RAYC_OK || e->sealed || e->pinned)
        return 1;
    return e->owned ? 0 : -1;
}

/* Ask the store which of the unknown refs are sealed, waiting up to
 * timeout_ms for `want` of them. mu NOT held. */
static int store_wait(const rayc_ref *refs, const size_t *idx, size_t n, size_t want,
                      int64_t timeout_ms, int *ready)
{
    core_t *c = &rayc__core;
    ProtobufCBinaryData stack_ids[32], *ids = id_list(refs, idx, n, stack_ids);
    if (ids == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    Rpc__WaitObjectsRequest req = RPC__WAIT_OBJECTS_REQUEST__INIT;
    req.req_id = cw_conn_next_id(c->raylet);
    req.n_object_ids = n;
    req.object_ids = ids;
    req.num_returns = (uint32_t)(want < n ? want : n);
    req.timeout_ms = timeout_ms;
    ProtobufCMessage *m;
    int rc = cw_conn_call(c->raylet, req.req_id, MSG_WAIT_OBJECTS_REQ, &req.base,
                          MSG_WAIT_OBJECTS_REPLY, &m, -1);
    free_id_list(ids, stack_ids);
    if (rc != 0)
        return rayc__error(rc, "object store unreachable: %s", rayc_strerror(rc));
    Rpc__WaitObjectsReply *r = (Rpc__WaitObjectsReply *)m;
    int st = r->status ? r->status->code : 0;
    if (st != 0 && st != RAYC_ETIMEDOUT) {
        rc = rayc__error(st, "%s", r->status->message);
    } else {
        for (size_t i = 0; i < n && i < r->n_ready; i++)
            if (r->ready[i])
                ready[idx[i]] = 1;
    }
    msg_free(m);
    return rc;
}

int rayc_wait(const rayc_ref *refs, size_t n, size_t num_returns, int64_t timeout_ms, int *ready)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if ((n > 0 && (refs == NULL || ready == NULL)) || num_returns > n || timeout_ms < -1)
        return rayc__error(RAYC_EINVAL, "rayc_wait: bad arguments (num_returns %zu of %zu)",
                           num_returns, n);
    size_t stack_idx[32], *idx = n > 32 ? malloc(n * sizeof(*idx)) : stack_idx;
    if (idx == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    memset(ready, 0, n * sizeof(*ready));
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t nready = 0, nunknown = 0, npending = 0;
        pthread_mutex_lock(&c->mu);
        for (size_t i = 0; i < n; i++) {
            if (ready[i]) {
                nready++;
                continue;
            }
            object_id_t id;
            memcpy(id.b, refs[i].id, OBJECT_ID_SIZE);
            int st = wait_state(reft_find(&c->refs, &id));
            if (st == 1) {
                ready[i] = 1;
                nready++;
            } else if (st == 0) {
                npending++;
            } else {
                idx[nunknown++] = i;
            }
        }
        pthread_mutex_unlock(&c->mu);
        uint64_t now = now_ms();
        if (nready >= num_returns || now >= deadline || (npending == 0 && nunknown == 0)) {
            rc = (int)nready;
            break;
        }
        int64_t left = deadline == UINT64_MAX ? -1 : (int64_t)(deadline - now);
        core__block();
        if (nunknown > 0) {
            /* With results of running tasks also outstanding, ask the store
             * briefly and go back to reading completions. */
            int64_t t = npending > 0 ? (left < 0 || left > 20 ? 20 : left) : left;
            rc = store_wait(refs, idx, nunknown, num_returns - nready, t, ready);
            if (rc != 0)
                break;
        }
        if (npending > 0) {
            int prc = cw_conn_pump(c->raylet, left < 0 || left > 1000 ? 1000 : left);
            if (prc != 0) {
                rc = rayc__error(prc, "lost the raylet while waiting for results");
                break;
            }
        }
    }
    core__unblock();
    if (idx != stack_idx)
        free(idx);
    return rc;
}
