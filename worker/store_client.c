/*
 * store_client.c -- see store_client.h.
 *
 * Creates cost one round trip (the store picks the offset); seals, deletes
 * and releases are one-way. Objects up to a quarter of the put slab skip the
 * create: the client bump-allocates in its slab and announces the object at
 * seal (SlabObject), batched with other frames.
 */
#include "store_client.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"

struct store_client {
    cw_conn *conn;
    uint8_t *arena;
    size_t arena_size;
    storec_full_fn on_full;
    void *arg;
    /* Put slab: [slab_next, slab_end) of the arena is ours to write small
     * store objects into. Under mu. */
    pthread_mutex_t mu;
    uint64_t slab_next, slab_end;
    size_t slab_want;      /* bytes to ask for (put_slab_bytes); 0: no slabs */
    size_t slab_size;      /* size of the last slab granted */
    bool slab_busy;        /* a thread is asking for a new slab */
    uint32_t slab_backoff; /* puts before asking again after a refusal */
};

store_client *storec_new(cw_conn *conn, uint8_t *arena, size_t arena_size, size_t slab_bytes,
                         storec_full_fn on_full, void *arg)
{
    store_client *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    sc->conn = conn;
    sc->arena = arena;
    sc->arena_size = arena_size;
    sc->on_full = on_full;
    sc->arg = arg;
    pthread_mutex_init(&sc->mu, NULL);
    sc->slab_want = sc->slab_size = slab_bytes;
    return sc;
}

void storec_free(store_client *sc)
{
    if (sc == NULL)
        return;
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

/* ------------------------------------------------------------ one-way messages */

void storec_seal(store_client *sc, const object_id_t *id, bool keep_pin)
{
    Rpc__SealObject seal = RPC__SEAL_OBJECT__INIT;
    seal.object_id.data = (uint8_t *)id->b;
    seal.object_id.len = OBJECT_ID_SIZE;
    seal.keep_pin = keep_pin;
    cw_conn_send(sc->conn, MSG_SEAL_OBJECT, &seal.base);
}

void storec_delete(store_client *sc, const object_id_t *id, bool release_pin)
{
    ProtobufCBinaryData b = {OBJECT_ID_SIZE, (uint8_t *)id->b};
    Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
    del.n_object_ids = 1;
    del.object_ids = &b;
    del.release_pins = release_pin;
    int rc = cw_conn_send_batched_msg(sc->conn, MSG_DELETE_OBJECTS, &del.base);
    if (rc != 0) {
        char hex[ID_HEX_MAX];
        log_error("cannot tell the raylet to free object %s: %s",
                  id_hex(id->b, OBJECT_ID_SIZE, hex), rayc_strerror(rc));
    }
}

void storec_release(store_client *sc, const object_id_t *const *ids, size_t n)
{
    ProtobufCBinaryData b[64];
    Rpc__ReleaseObjects rel = RPC__RELEASE_OBJECTS__INIT;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 64 ? n - done : 64;
        for (size_t i = 0; i < k; i++) {
            b[i].data = (uint8_t *)ids[done + i]->b;
            b[i].len = OBJECT_ID_SIZE;
        }
        rel.n_object_ids = k;
        rel.object_ids = b;
        cw_conn_send(sc->conn, MSG_RELEASE_OBJECTS, &rel.base);
        done += k;
    }
}

int storec_on_late_get_reply(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    store_client *sc = arg;
    (void)type;
    Rpc__GetObjectsReply *r = (Rpc__GetObjectsReply *)msg;
    Rpc__ReleaseObjects rel = RPC__RELEASE_OBJECTS__INIT;
    ProtobufCBinaryData ids[64];
    for (size_t i = 0; i < r->n_objects && rel.n_object_ids < 64; i++)
        if (!r->objects[i]->status || r->objects[i]->status->code == 0)
            ids[rel.n_object_ids++] = r->objects[i]->object_id;
    rel.object_ids = ids;
    if (rel.n_object_ids)
        cw_conn_send(sc->conn, MSG_RELEASE_OBJECTS, &rel.base);
    return 0;
}

/* ------------------------------------------------------------ create */

int storec_create(store_client *sc, const object_id_t *id, size_t size, uint64_t *offset)
{
    for (int attempt = 0;; attempt++) {
        Rpc__CreateObjectRequest req = RPC__CREATE_OBJECT_REQUEST__INIT;
        req.req_id = cw_conn_next_id(sc->conn);
        req.object_id.data = (uint8_t *)id->b;
        req.object_id.len = OBJECT_ID_SIZE;
        req.size = size;
        ProtobufCMessage *m;
        int rc = cw_conn_call(sc->conn, req.req_id, MSG_CREATE_OBJECT_REQ, &req.base,
                              MSG_CREATE_OBJECT_REPLY, &m, -1);
        if (rc != 0)
            return rayc__error(rc, "object store unreachable: %s", rayc_strerror(rc));
        Rpc__CreateObjectReply *r = (Rpc__CreateObjectReply *)m;
        rc = r->status ? r->status->code : 0;
        if (rc == 0) {
            *offset = r->offset;
            if (r->offset + size > sc->arena_size)
                rc = rayc__error(RAYC_EPROTO, "store returned offset %llu outside the arena",
                                 (unsigned long long)r->offset);
        } else if (rc == RAYC_ESTORE_FULL && attempt == 0) {
            /* What we hold may be what the store lacks: cached pins and the
             * rest of our slab. Give them back and try once more. */
            bool held = sc->on_full && sc->on_full(sc->arg);
            held = storec_slab_give_back(sc) || held;
            if (held) {
                msg_free(m);
                continue;
            }
            rayc__error(rc, "%s", r->status->message[0] ? r->status->message : rayc_strerror(rc));
        } else {
            rayc__error(rc, "%s", r->status->message[0] ? r->status->message : rayc_strerror(rc));
        }
        msg_free(m);
        return rc;
    }
}

/* ------------------------------------------------------------ put slab */

/* Ask the raylet for a new slab, giving back [ret_off, ret_end). No lock
 * held. 0 with the grant, or a code. */
static int slab_request(store_client *sc, uint64_t want, uint64_t ret_off, uint64_t ret_end,
                        uint64_t *off, uint64_t *size)
{
    Rpc__SlabRequest req = RPC__SLAB_REQUEST__INIT;
    req.req_id = cw_conn_next_id(sc->conn);
    req.size = want;
    req.return_offset = ret_end > ret_off ? ret_off : 0;
    req.return_end = ret_end > ret_off ? ret_end : 0;
    ProtobufCMessage *m;
    int rc = cw_conn_call(sc->conn, req.req_id, MSG_SLAB_REQ, &req.base, MSG_SLAB_REPLY, &m, -1);
    if (rc != 0)
        return rc;
    Rpc__SlabReply *r = (Rpc__SlabReply *)m;
    rc = r->status ? r->status->code : 0;
    if (rc == 0 && (r->offset > sc->arena_size || r->size > sc->arena_size - r->offset)) {
        log_warn("raylet granted a put slab outside the arena: [%llu, +%llu)",
                 (unsigned long long)r->offset, (unsigned long long)r->size);
        rc = RAYC_EPROTO;
    }
    *off = r->offset;
    *size = r->size;
    msg_free(m);
    return rc;
}

bool storec_slab_take(store_client *sc, size_t size, uint64_t *off)
{
    uint64_t n = size == 0 ? 64 : ((uint64_t)size + 63) & ~(uint64_t)63; /* the store's blocks */
    pthread_mutex_lock(&sc->mu);
    bool ok = false;
    if (sc->slab_want == 0 || n > sc->slab_size / 4)
        goto out;
    if (n <= sc->slab_end - sc->slab_next) {
        *off = sc->slab_next;
        sc->slab_next += n;
        ok = true;
        goto out;
    }
    if (sc->slab_busy)
        goto out;
    if (sc->slab_backoff > 0) {
        sc->slab_backoff--;
        goto out;
    }
    sc->slab_busy = true;
    uint64_t ret_off = sc->slab_next, ret_end = sc->slab_end, got = 0, got_size = 0;
    sc->slab_next = sc->slab_end = 0;
    pthread_mutex_unlock(&sc->mu);
    int rc = slab_request(sc, sc->slab_want, ret_off, ret_end, &got, &got_size);
    pthread_mutex_lock(&sc->mu);
    sc->slab_busy = false;
    if (rc != 0) {
        /* Full, or short of memory: creates with a round trip meanwhile, which
         * evict, spill and wait as the store needs. */
        if (rc != RAYC_ESTORE_FULL)
            log_debug("no put slab: %s", rayc_last_error());
        sc->slab_backoff = STOREC_SLAB_BACKOFF;
        goto out;
    }
    sc->slab_size = got_size;
    sc->slab_next = got;
    sc->slab_end = got + got_size;
    if (n <= got_size) {
        *off = sc->slab_next;
        sc->slab_next += n;
        ok = true;
    }
out:
    pthread_mutex_unlock(&sc->mu);
    return ok;
}

bool storec_slab_give_back(store_client *sc)
{
    pthread_mutex_lock(&sc->mu);
    bool held = sc->slab_end > sc->slab_next;
    if (sc->slab_busy || !held) {
        pthread_mutex_unlock(&sc->mu);
        return held;
    }
    uint64_t ret_off = sc->slab_next, ret_end = sc->slab_end, off, size;
    sc->slab_next = sc->slab_end = 0;
    sc->slab_busy = true;
    sc->slab_backoff = STOREC_SLAB_BACKOFF;
    pthread_mutex_unlock(&sc->mu);
    int rc = slab_request(sc, 0, ret_off, ret_end, &off, &size);
    pthread_mutex_lock(&sc->mu);
    sc->slab_busy = false;
    pthread_mutex_unlock(&sc->mu);
    if (rc != 0)
        log_debug("giving back the put slab: %s", rayc_strerror(rc));
    return held;
}

void storec_slab_object(store_client *sc, const object_id_t *id, uint64_t off, size_t size)
{
    Rpc__SlabObject so = RPC__SLAB_OBJECT__INIT;
    so.object_id.data = (uint8_t *)id->b;
    so.object_id.len = OBJECT_ID_SIZE;
    so.offset = off;
    so.size = size;
    so.sealed = true;
    so.keep_pin = true;
    int rc = cw_conn_send_batched_msg(sc->conn, MSG_SLAB_OBJECT, &so.base);
    if (rc != 0) {
        char hex[ID_HEX_MAX];
        log_error("cannot tell the raylet of object %s: %s", id_hex(id->b, OBJECT_ID_SIZE, hex),
                  rayc_strerror(rc));
    }
}

/* ------------------------------------------------------------ get, wait */

int storec_get(store_client *sc, ProtobufCBinaryData *ids, size_t n, bool pull, int64_t timeout_ms,
               Rpc__GetObjectsReply **reply)
{
    if (pull) {
        Rpc__PullObjects p = RPC__PULL_OBJECTS__INIT;
        p.n_object_ids = n;
        p.object_ids = ids;
        cw_conn_send(sc->conn, MSG_PULL_OBJECTS, &p.base);
    }
    Rpc__GetObjectsRequest req = RPC__GET_OBJECTS_REQUEST__INIT;
    req.req_id = cw_conn_next_id(sc->conn);
    req.n_object_ids = n;
    req.object_ids = ids;
    req.timeout_ms = timeout_ms;
    ProtobufCMessage *m;
    /* The store enforces the timeout and answers either way; we wait for
     * that answer (a late reply would otherwise leave pins behind). */
    int rc = cw_conn_call(sc->conn, req.req_id, MSG_GET_OBJECTS_REQ, &req.base,
                          MSG_GET_OBJECTS_REPLY, &m, -1);
    if (rc != 0)
        return rayc__error(rc, "object store unreachable: %s", rayc_strerror(rc));
    Rpc__GetObjectsReply *r = (Rpc__GetObjectsReply *)m;
    rc = r->status ? r->status->code : 0;
    if (rc != 0) {
        rayc__error(rc, "%s", r->status->message[0] ? r->status->message : rayc_strerror(rc));
        msg_free(m);
        return rc;
    }
    *reply = r;
    return 0;
}

int storec_wait(store_client *sc, ProtobufCBinaryData *ids, size_t n, size_t want,
                int64_t timeout_ms, Rpc__WaitObjectsReply **reply)
{
    Rpc__WaitObjectsRequest req = RPC__WAIT_OBJECTS_REQUEST__INIT;
    req.req_id = cw_conn_next_id(sc->conn);
    req.n_object_ids = n;
    req.object_ids = ids;
    req.num_returns = (uint32_t)(want < n ? want : n);
    req.timeout_ms = timeout_ms;
    ProtobufCMessage *m;
    int rc = cw_conn_call(sc->conn, req.req_id, MSG_WAIT_OBJECTS_REQ, &req.base,
                          MSG_WAIT_OBJECTS_REPLY, &m, -1);
    if (rc != 0)
        return rayc__error(rc, "object store unreachable: %s", rayc_strerror(rc));
    *reply = (Rpc__WaitObjectsReply *)m;
    return 0;
}
