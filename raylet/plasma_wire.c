/*
 * plasma_wire.c -- frames from local clients to the plasma store
 * (proto/rayc.proto, "local clients <-> plasma store"): plasma_handle()
 * turns each request into a call of the store's internal API and each
 * answer into a reply frame on the client's conn.
 *
 * Replies echo req_id and carry a Status. A request with a malformed object
 * id gets RAYC_EINVAL; messages without a reply (SEAL, RELEASE, DELETE) with
 * a bad id are logged and dropped. A client seals only what it created and
 * deletes only what it owns; other seals and deletes are logged and ignored.
 * Nothing a client sends can crash the raylet: every length comes from the
 * unpacked message and is checked.
 * Callbacks that arrive with RAYC_ECANCELLED belong to a client that is gone:
 * they send nothing and do not touch the client.
 *
 * Runs in the raylet's single loop thread.
 */
#include "plasma_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "msg.h"

static bool id_of(ProtobufCBinaryData b, object_id_t *out)
{
    if (b.len != OBJECT_ID_SIZE || b.data == NULL)
        return false;
    memcpy(out->b, b.data, OBJECT_ID_SIZE);
    return true;
}

/* The ids of a request, or NULL (with *bad set when one is malformed). The
 * caller frees the array. */
static object_id_t *ids_of(const ProtobufCBinaryData *v, size_t n, bool *bad)
{
    *bad = false;
    object_id_t *ids = malloc((n ? n : 1) * sizeof(*ids));
    if (ids == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!id_of(v[i], &ids[i])) {
            *bad = true;
            free(ids);
            return NULL;
        }
    return ids;
}

static void send_reply(plasma_client *cl, uint16_t type, const ProtobufCMessage *m)
{
    conn *c = plasma_client_conn(cl);
    if (c != NULL)
        conn_send(c, type, m);
}

static const char *peer_of(const plasma_client *cl)
{
    conn *c = plasma_client_conn(cl);
    return c ? conn_peer(c) : "raylet";
}

/* ------------------------------------------------------------ create */

static void on_created(void *arg, uint64_t tag, int status, uint64_t off, const char *msg)
{
    if (status == RAYC_ECANCELLED)
        return;
    plasma_client *cl = arg;
    Rpc__CreateObjectReply r = RPC__CREATE_OBJECT_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, status, status ? msg : NULL);
    r.req_id = tag;
    r.status = &st;
    r.offset = off;
    send_reply(cl, MSG_CREATE_OBJECT_REPLY, &r.base);
}

static void handle_create(plasma_store *s, plasma_client *cl, Rpc__CreateObjectRequest *m)
{
    object_id_t id;
    if (!id_of(m->object_id, &id)) {
        on_created(cl, m->req_id, RAYC_EINVAL, 0, "object id must be 28 bytes");
        return;
    }
    plasma_create_async(s, cl, &id, m->size, 0, on_created, cl, m->req_id);
}

/* ------------------------------------------------------------ put slabs */

static void handle_slab(plasma_store *s, plasma_client *cl, Rpc__SlabRequest *m)
{
    Rpc__SlabReply r = RPC__SLAB_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    uint64_t off, size;
    int rc = plasma_slab_grant(s, cl, m->size, m->return_offset, m->return_end, &off, &size);
    msg_status_set(&st, rc, rc ? rayc_last_error() : NULL);
    r.req_id = m->req_id;
    r.status = &st;
    r.offset = off;
    r.size = size;
    send_reply(cl, MSG_SLAB_REPLY, &r.base);
}

/* An object written into the sender's slab; sealed already unless it came
 * from rayc_put_alloc. No reply: a bad one is logged (and the client finds
 * the object missing). */
static void handle_slab_object(plasma_store *s, plasma_client *cl, Rpc__SlabObject *m)
{
    object_id_t id;
    if (!id_of(m->object_id, &id)) {
        log_warn("plasma: %s sent SLAB_OBJECT with a %zu-byte id", peer_of(cl), m->object_id.len);
        return;
    }
    if (plasma_slab_create(s, cl, &id, m->offset, m->size) != 0) {
        log_warn("plasma: %s: %s", peer_of(cl), rayc_last_error());
        return;
    }
    if (m->sealed && plasma_seal_keep(s, cl, &id, m->keep_pin) != 0)
        log_warn("plasma: %s: %s", peer_of(cl), rayc_last_error());
}

/* ------------------------------------------------------------ get */

static void on_got(void *arg, uint64_t tag, int status, const plasma_view *views, size_t n)
{
    if (status == RAYC_ECANCELLED)
        return;
    plasma_client *cl = arg;
    Rpc__GetObjectsReply r = RPC__GET_OBJECTS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT, ok = RPC__STATUS__INIT;
    r.req_id = tag;
    r.status = &st;
    Rpc__ObjectView *ov = NULL;
    Rpc__ObjectView **pv = NULL;
    if (status == RAYC_OK && n > 0) {
        ov = malloc(n * sizeof(*ov));
        pv = malloc(n * sizeof(*pv));
        if (ov == NULL || pv == NULL) {
            /* Cannot describe the pins: give them back and say so. */
            for (size_t i = 0; i < n; i++)
                plasma_release(cl->s, cl, &views[i].id);
            status = RAYC_ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++) {
                Rpc__ObjectView v = RPC__OBJECT_VIEW__INIT;
                v.object_id.data = (uint8_t *)views[i].id.b;
                v.object_id.len = OBJECT_ID_SIZE;
                v.status = &ok;
                v.offset = views[i].off;
                v.size = views[i].size;
                ov[i] = v;
                pv[i] = &ov[i];
            }
            r.n_objects = n;
            r.objects = pv;
        }
    }
    char msg[96] = "";
    if (status == RAYC_ETIMEDOUT)
        snprintf(msg, sizeof(msg), "%zu objects not all available before the timeout", n);
    else if (status != RAYC_OK)
        snprintf(msg, sizeof(msg), "%s", rayc_strerror(status));
    msg_status_set(&st, status, msg);
    send_reply(cl, MSG_GET_OBJECTS_REPLY, &r.base);
    free(ov);
    free(pv);
}

/* Why a get or wait of n objects is refused (written to why), or false when
 * it is within the client's limits. */
static bool too_many(const plasma_client *cl, size_t n, char *why, size_t len)
{
    if (n > MSG_STORE_MAX_IDS) {
        snprintf(why, len, "a get or wait names at most %d objects, not %zu", MSG_STORE_MAX_IDS, n);
        return true;
    }
    if (cl->nwaiting + n > PLASMA_CLIENT_MAX_WAITING) {
        snprintf(why, len,
                 "a client's pending gets and waits name at most %u objects (%" PRIu64
                 " now, %zu more asked)",
                 PLASMA_CLIENT_MAX_WAITING, cl->nwaiting, n);
        return true;
    }
    return false;
}

static void refuse_get(plasma_client *cl, uint64_t tag, const char *why)
{
    Rpc__GetObjectsReply r = RPC__GET_OBJECTS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, RAYC_EINVAL, why);
    r.req_id = tag;
    r.status = &st;
    send_reply(cl, MSG_GET_OBJECTS_REPLY, &r.base);
}

static void handle_get(plasma_store *s, plasma_client *cl, Rpc__GetObjectsRequest *m)
{
    char why[160];
    if (too_many(cl, m->n_object_ids, why, sizeof(why))) {
        log_warn("plasma: %s: %s", peer_of(cl), why);
        refuse_get(cl, m->req_id, why);
        return;
    }
    bool bad;
    object_id_t *ids = ids_of(m->object_ids, m->n_object_ids, &bad);
    if (ids == NULL) {
        on_got(cl, m->req_id, bad ? RAYC_EINVAL : RAYC_ENOMEM, NULL, 0);
        return;
    }
    plasma_get(s, cl, ids, m->n_object_ids, m->timeout_ms < 0 ? -1 : m->timeout_ms, on_got, cl,
               m->req_id);
    free(ids);
}

/* ------------------------------------------------------------ wait */

static void on_waited(void *arg, uint64_t tag, int status, const bool *ready, size_t n)
{
    if (status == RAYC_ECANCELLED)
        return;
    plasma_client *cl = arg;
    Rpc__WaitObjectsReply r = RPC__WAIT_OBJECTS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    protobuf_c_boolean *flags = NULL;
    if (status == RAYC_OK && n > 0) {
        flags = malloc(n * sizeof(*flags));
        if (flags == NULL) {
            status = RAYC_ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++)
                flags[i] = ready[i];
            r.n_ready = n;
            r.ready = flags;
        }
    }
    msg_status_set(&st, status, status ? rayc_strerror(status) : NULL);
    r.req_id = tag;
    r.status = &st;
    send_reply(cl, MSG_WAIT_OBJECTS_REPLY, &r.base);
    free(flags);
}

static void refuse_wait(plasma_client *cl, uint64_t tag, const char *why)
{
    Rpc__WaitObjectsReply r = RPC__WAIT_OBJECTS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, RAYC_EINVAL, why);
    r.req_id = tag;
    r.status = &st;
    send_reply(cl, MSG_WAIT_OBJECTS_REPLY, &r.base);
}

static void handle_wait(plasma_store *s, plasma_client *cl, Rpc__WaitObjectsRequest *m)
{
    char why[160];
    if (too_many(cl, m->n_object_ids, why, sizeof(why))) {
        log_warn("plasma: %s: %s", peer_of(cl), why);
        refuse_wait(cl, m->req_id, why);
        return;
    }
    bool bad;
    object_id_t *ids = ids_of(m->object_ids, m->n_object_ids, &bad);
    if (ids == NULL) {
        on_waited(cl, m->req_id, bad ? RAYC_EINVAL : RAYC_ENOMEM, NULL, 0);
        return;
    }
    plasma_wait(s, cl, ids, m->n_object_ids, m->num_returns, m->timeout_ms < 0 ? -1 : m->timeout_ms,
                on_waited, cl, m->req_id);
    free(ids);
}

/* ------------------------------------------------------------ no-reply messages */

static void handle_seal(plasma_store *s, plasma_client *cl, Rpc__SealObject *m)
{
    object_id_t id;
    if (!id_of(m->object_id, &id)) {
        log_warn("plasma: %s sent SEAL_OBJECT with a %zu-byte id", peer_of(cl), m->object_id.len);
        return;
    }
    /* The creator reads what it made without a round trip: it keeps a pin,
     * given back with RELEASE_OBJECTS like the pin of a get. */
    if (plasma_seal_keep(s, cl, &id, m->keep_pin) != 0)
        log_warn("plasma: %s: %s", peer_of(cl), rayc_last_error());
}

static void handle_release(plasma_store *s, plasma_client *cl, Rpc__ReleaseObjects *m)
{
    for (size_t i = 0; i < m->n_object_ids; i++) {
        object_id_t id;
        if (!id_of(m->object_ids[i], &id)) {
            log_warn("plasma: %s sent RELEASE_OBJECTS with a bad id", peer_of(cl));
            continue;
        }
        if (plasma_release(s, cl, &id) != 0)
            log_debug("plasma: %s: %s", peer_of(cl), rayc_last_error());
    }
}

static void handle_delete(plasma_store *s, plasma_client *cl, Rpc__DeleteObjects *m)
{
    for (size_t i = 0; i < m->n_object_ids; i++) {
        object_id_t id;
        if (!id_of(m->object_ids[i], &id)) {
            log_warn("plasma: %s sent DELETE_OBJECTS with a bad id", peer_of(cl));
            continue;
        }
        if (m->release_pins && plasma_release(s, cl, &id) != 0)
            log_debug("plasma: %s: %s", peer_of(cl), rayc_last_error());
        int rc = plasma_delete_by(s, cl, &id);
        if (rc == RAYC_EINVAL)
            log_warn("plasma: %s: %s", peer_of(cl), rayc_last_error());
        else if (rc != 0)
            log_debug("plasma: %s: %s", peer_of(cl), rayc_last_error());
    }
}

static void handle_stats(plasma_store *s, plasma_client *cl, Rpc__StoreStatsRequest *m)
{
    plasma_stats st;
    plasma_store_stats(s, &st);
    Rpc__StoreStatsReply r = RPC__STORE_STATS_REPLY__INIT;
    Rpc__Status ok = RPC__STATUS__INIT;
    r.req_id = m->req_id;
    r.status = &ok;
    r.capacity = st.capacity;
    r.used = st.used;
    r.objects = st.objects;
    r.spilled_bytes = st.spilled_bytes;
    r.spilled_objects = st.spilled_objects;
    r.evicted_objects = st.evictions;
    r.restored_objects = st.restores;
    r.reserved = st.reserved;
    r.peak_used = st.peak_used;
    r.spilling_objects = st.spilling_objects;
    r.restoring_objects = st.restoring_objects;
    send_reply(cl, MSG_STORE_STATS_REPLY, &r.base);
    if (m->reset_peak)
        plasma_store_reset_peak(s);
}

bool plasma_handle(plasma_store *s, plasma_client *cl, uint16_t type, ProtobufCMessage *msg)
{
    switch (type) {
    case MSG_CREATE_OBJECT_REQ:
        handle_create(s, cl, (Rpc__CreateObjectRequest *)msg);
        return true;
    case MSG_SLAB_REQ:
        handle_slab(s, cl, (Rpc__SlabRequest *)msg);
        return true;
    case MSG_SLAB_OBJECT:
        handle_slab_object(s, cl, (Rpc__SlabObject *)msg);
        return true;
    case MSG_SEAL_OBJECT:
        handle_seal(s, cl, (Rpc__SealObject *)msg);
        return true;
    case MSG_GET_OBJECTS_REQ:
        handle_get(s, cl, (Rpc__GetObjectsRequest *)msg);
        return true;
    case MSG_WAIT_OBJECTS_REQ:
        handle_wait(s, cl, (Rpc__WaitObjectsRequest *)msg);
        return true;
    case MSG_RELEASE_OBJECTS:
        handle_release(s, cl, (Rpc__ReleaseObjects *)msg);
        return true;
    case MSG_DELETE_OBJECTS:
        handle_delete(s, cl, (Rpc__DeleteObjects *)msg);
        return true;
    case MSG_STORE_STATS_REQ:
        handle_stats(s, cl, (Rpc__StoreStatsRequest *)msg);
        return true;
    default:
        return false;
    }
}
