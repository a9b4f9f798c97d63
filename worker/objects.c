/*
 * objects.c -- the object entry points of rayc.h: rayc_put, rayc_put_alloc,
 * rayc_put_seal, rayc_get, rayc_wait, rayc_value_release, rayc_ref_retain,
 * rayc_ref_release. Each validates, then works over the reference table
 * (reference_table.h) under core.mu and talks to the store through the
 * store client (store_client.h) without it.
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
#include "borrow.h"
#include "errors.h"
#include "log.h"
#include "util.h"

/* ------------------------------------------------------------------- put */

/* Puts are numbered per process (mu held), from the process's put task id:
 * the object id starts with this process's owner tag, so a borrower can
 * find the owner from the ref (ids.h). */
static object_id_t next_put_id(void)
{
    core_t *c = &rayc__core;
    static uint32_t puts;
    task_id_t t = task_id_for_puts(c->job);
    if (++puts > ~OBJECT_INDEX_PUT_FLAG)
        puts = 1;
    return object_id_for_put(&t, puts);
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
    /* The slab has its own lock (and may ask the raylet): before ours. */
    uint64_t off = 0;
    bool in_slab = !inline_value && storec_slab_take(c->store, size, &off);

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
    if (in_slab) {
        e->data = c->arena + off;
        e->in_slab = true;
    }
    pthread_mutex_unlock(&c->mu);

    if (!inline_value && !in_slab) {
        rc = storec_create(c->store, &id, size, &off);
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
            storec_slab_object(c->store, &id, (uint64_t)((uint8_t *)e->data - c->arena), e->size);
        else
            storec_seal(c->store, &id, true);
        e->in_slab = false;
        e->pinned = true;
    }
    reft_maybe_finalize(&c->refs, e);
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
    bool reg = false;
    if (e) {
        e->refs++;
        /* Someone else's object: the owner keeps it for us (borrow.h). */
        reg = !e->owned && !e->borrowed;
        e->borrowed = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (reg && borrow_register(c, &id) != 0) {
        pthread_mutex_lock(&c->mu);
        if ((e = reft_find(&c->refs, &id)) != NULL)
            e->borrowed = false;
        pthread_mutex_unlock(&c->mu);
    }
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
    bool unreg = false;
    if (e && e->refs > 0) {
        e->refs--;
        unreg = e->refs == 0 && e->borrowed;
        if (unreg)
            e->borrowed = false;
        reft_maybe_finalize(&c->refs, e);
    }
    pthread_mutex_unlock(&c->mu);
    if (unreg)
        borrow_unregister(c, &id);
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
    reft_maybe_finalize(&c->refs, e);
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
            reft_maybe_finalize(&rayc__core.refs, e);
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

/* Give back the pins of entries another thread pinned meanwhile. mu held. */
static void release_entries(ref_entry **es, size_t n)
{
    const object_id_t *ids[64];
    for (size_t i = 0; i < n; i++)
        ids[i] = &es[i]->id;
    storec_release(rayc__core.store, ids, n);
}

/* Take the pins of a GetObjects reply into the table. mu held. */
static void apply_get_reply(const Rpc__GetObjectsReply *r)
{
    core_t *c = &rayc__core;
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
    release_entries(dups, ndup);
}

/* Ask the store for up to MSG_STORE_MAX_IDS objects we do not have. mu NOT
 * held. Fills pins into the table on success; on timeout the store took no
 * pins. */
static int store_get_some(const rayc_ref *refs, const size_t *idx, size_t nmissing,
                          int64_t timeout_ms)
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
    /* A pull can fail (ObjectLost): wait in slices to notice. */
    if (maybe_remote && (timeout_ms < 0 || timeout_ms > 200))
        timeout_ms = 200;
    Rpc__GetObjectsReply *r;
    int rc = storec_get(c->store, ids, nmissing, maybe_remote, timeout_ms, &r);
    free_id_list(ids, stack_ids);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    apply_get_reply(r);
    pthread_mutex_unlock(&c->mu);
    msg_free(&r->base);
    return 0;
}

/* The same for any number of objects: the store takes MSG_STORE_MAX_IDS a
 * request, so a bigger get asks in pieces, each within what is left of
 * timeout_ms. A piece that timed out ends it (earlier pieces' pins stay in
 * the table, cached like any other). */
static int store_get(const rayc_ref *refs, const size_t *idx, size_t nmissing, int64_t timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    for (size_t done = 0; done < nmissing;) {
        size_t k = nmissing - done < MSG_STORE_MAX_IDS ? nmissing - done : MSG_STORE_MAX_IDS;
        uint64_t now = now_ms();
        int64_t left = deadline == UINT64_MAX ? -1 : (int64_t)(deadline > now ? deadline - now : 0);
        int rc = store_get_some(refs, idx + done, k, left);
        if (rc != 0)
            return rc;
        done += k;
    }
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

    int store_rounds = 0, direct_off = 0;
    /* Refs before `first` are all in out. After a round that found every
     * ref it looked at either here or still being computed here, the next
     * round looks from `first` only up to the first still computing: the
     * get returns only when all are in anyway, and results mostly arrive
     * in order, so a get of many task results costs O(n) lookups in all,
     * not O(n) per wake-up. */
    size_t first = 0;
    bool full = true;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        size_t nmissing = 0, nwait_inline = 0;
        for (size_t i = first; i < n; i++) {
            if (out[i].priv_) {
                first += i == first;
                continue;
            }
            object_id_t id;
            memcpy(id.b, refs[i].id, OBJECT_ID_SIZE);
            ref_entry *e = reft_find(&c->refs, &id);
            if (locally_ready(e)) {
                view_of(e, &out[i]);
                first += i == first;
            } else if (e && e->owned && !e->in_store) {
                nwait_inline++; /* a result being computed, our own put_alloc not sealed */
                if (!full)
                    break;
            } else {
                idx[nmissing++] = i;
            }
        }
        full = nmissing > 0;
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
            if (core__task_running() && left != 0) {
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
        /* Results of tasks still running: read the raylet connection (or
         * the actor's, core__wait_results) until their completions arrive
         * (another reader may deliver them too). */
        uint64_t wait = deadline == UINT64_MAX ? 1000 : deadline - now;
        int prc =
            core__wait_results(refs, n, out, (int64_t)(wait > 1000 ? 1000 : wait), &direct_off);
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
    Rpc__WaitObjectsReply *r;
    int rc = storec_wait(c->store, ids, n, want, timeout_ms, &r);
    free_id_list(ids, stack_ids);
    if (rc != 0)
        return rc;
    int st = r->status ? r->status->code : 0;
    if (st != 0 && st != RAYC_ETIMEDOUT) {
        rc = rayc__error(st, "%s", r->status->message);
    } else {
        for (size_t i = 0; i < n && i < r->n_ready; i++)
            if (r->ready[i])
                ready[idx[i]] = 1;
    }
    msg_free(&r->base);
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
    /* Counted before the first look at the results: replies read by an
     * actor's or a lease's reader then wake us (core.h). */
    __atomic_add_fetch(&c->result_waiters, 1, __ATOMIC_SEQ_CST);
    for (unsigned round = 0;;) {
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
            /* With results of running tasks also outstanding, or more unknown
             * refs than one request may name (asked a window at a time, in
             * turn), ask the store briefly and come back. */
            size_t from = 0, k = nunknown;
            if (nunknown > MSG_STORE_MAX_IDS) {
                from = (size_t)round * MSG_STORE_MAX_IDS % nunknown;
                k = nunknown - from < MSG_STORE_MAX_IDS ? nunknown - from : MSG_STORE_MAX_IDS;
            }
            bool brief = npending > 0 || k < nunknown;
            int64_t t = brief ? (left < 0 || left > 20 ? 20 : left) : left;
            size_t want = num_returns - nready < k ? num_returns - nready : k;
            rc = store_wait(refs, idx + from, k, want, t, ready);
            if (rc != 0)
                break;
            round++;
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
    __atomic_sub_fetch(&c->result_waiters, 1, __ATOMIC_SEQ_CST);
    if (idx != stack_idx)
        free(idx);
    return rc;
}
