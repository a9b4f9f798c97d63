/*
 * object_serving.c -- the object manager's serving half: a PullRequest from
 * another raylet is answered with the object's size, then its chunks are
 * queued straight from the arena (conn_send_raw_ref: no copy), the object
 * pinned until the last chunk is written; an object spilled here is served
 * once its restore (on the store's I/O thread) is done. See
 * object_manager.h. Runs in the raylet's loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "object_manager_internal.h"
#include "rayc.h"

#define RESTORE_WAIT_MS 20000 /* a pull of a spilled object waits at most this long */

/* A pull of an object being restored from this node's disk: served when the
 * store's get (which waits for the restore) answers. */
typedef struct restoring {
    object_manager *om;
    conn *c; /* NULL once the peer closed */
    uint64_t req_id;
    object_id_t id;
    struct restoring *prev, *next;
} restoring;

/* An object being served: pinned until its last chunk has been written. */
typedef struct serve {
    object_manager *om; /* NULL after om_free: the pin went with om->pc */
    object_id_t id;
    uint32_t refs; /* chunks queued + 1 while queuing */
    struct serve *prev, *next;
} serve;

static void serve_unref(serve *s)
{
    if (--s->refs > 0)
        return;
    object_manager *om = s->om;
    if (om) {
        plasma_release(om->store, om->pc, &s->id);
        if (s->prev)
            s->prev->next = s->next;
        else
            om->serves = s->next;
        if (s->next)
            s->next->prev = s->prev;
    }
    free(s);
}

/* libevent is done with one chunk's bytes. */
static void on_chunk_sent(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    serve_unref(arg);
}

static void serve_reply(object_manager *om, conn *c, uint64_t req_id, const object_id_t *id,
                        int code, const char *msg, uint64_t size)
{
    Rpc__PullReply r = RPC__PULL_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, code, msg);
    r.req_id = req_id;
    r.status = &st;
    r.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, (uint8_t *)id->b};
    r.size = size;
    worker_id_t owner;
    if (code == RAYC_OK && plasma_object_owner(om->store, id, &owner))
        r.owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, owner.b};
    conn_send(c, MSG_PULL_REPLY, &r.base);
}

/* Reply with the size of the object pinned (view v, one pin of om->pc),
 * then queue every chunk straight from the arena; TCP flow control paces
 * them. The pin is dropped by the last chunk's cleanup (run also when the
 * connection closes first). */
static void serve_pinned(object_manager *om, conn *c, uint64_t req_id, const object_id_t *id,
                         const plasma_view *v)
{
    serve *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        plasma_release(om->store, om->pc, id);
        serve_reply(om, c, req_id, id, RAYC_ENOMEM, "raylet out of memory", 0);
        return;
    }
    serve_reply(om, c, req_id, id, RAYC_OK, "", v->size);
    s->om = om;
    s->id = *id;
    s->refs = 1;
    s->next = om->serves;
    if (om->serves)
        om->serves->prev = s;
    om->serves = s;
    const uint8_t *src = plasma_store_base(om->store) + v->off;
    Rpc__ChunkHeader h = RPC__CHUNK_HEADER__INIT;
    h.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, s->id.b};
    h.total = v->size;
    uint8_t hb[4 + 128];
    for (uint64_t off = 0; off < v->size;) {
        size_t n = v->size - off < om->chunk ? (size_t)(v->size - off) : om->chunk;
        h.offset = off;
        size_t hl = rpc__chunk_header__pack(&h, hb + 4);
        hb[0] = (uint8_t)(hl >> 24), hb[1] = (uint8_t)(hl >> 16);
        hb[2] = (uint8_t)(hl >> 8), hb[3] = (uint8_t)hl;
        s->refs++;
        if (conn_send_raw_ref(c, MSG_OBJECT_CHUNK, hb, 4 + hl, src + off, n, on_chunk_sent, s) !=
            0) {
            s->refs--;
            break;
        }
        om->bytes_out += n;
        off += n;
    }
    serve_unref(s);
}

/* The get of a pull waiting for a restore answered (or was cancelled with
 * om->pc). */
static void on_restored(void *arg, uint64_t tag, int status, const plasma_view *views, size_t n)
{
    (void)tag;
    restoring *rs = arg;
    object_manager *om = rs->om;
    if (rs->prev)
        rs->prev->next = rs->next;
    else
        om->restorings = rs->next;
    if (rs->next)
        rs->next->prev = rs->prev;
    if (status == RAYC_OK && n == 1 && rs->c != NULL && !om->closing)
        serve_pinned(om, rs->c, rs->req_id, &rs->id, &views[0]);
    else if (status == RAYC_OK && n == 1)
        plasma_release(om->store, om->pc, &rs->id);
    else if (rs->c != NULL && !om->closing)
        serve_reply(om, rs->c, rs->req_id, &rs->id, status, "restoring the spilled object failed",
                    0);
    free(rs);
}

/* The object is spilled here and being restored: wait for it. */
static void serve_after_restore(object_manager *om, conn *c, uint64_t req_id, const object_id_t *id)
{
    restoring *rs = calloc(1, sizeof(*rs));
    if (rs == NULL) {
        serve_reply(om, c, req_id, id, RAYC_ENOMEM, "raylet out of memory", 0);
        return;
    }
    *rs = (restoring){.om = om, .c = c, .req_id = req_id, .id = *id, .next = om->restorings};
    if (om->restorings)
        om->restorings->prev = rs;
    om->restorings = rs;
    /* within the puller's stall timeout (the same knob cluster-wide) */
    uint64_t wait = om->stall_ms * 2 / 3 < RESTORE_WAIT_MS ? om->stall_ms * 2 / 3 : RESTORE_WAIT_MS;
    plasma_get(om->store, om->pc, id, 1, (int64_t)wait, on_restored, rs, req_id);
}

void om__serve_pull(object_manager *om, conn *c, const Rpc__PullRequest *req)
{
    if (req->object_id.len != OBJECT_ID_SIZE) {
        om__protocol_error(om, c, "PullRequest with a malformed object id");
        return;
    }
    object_id_t id;
    memcpy(id.b, req->object_id.data, OBJECT_ID_SIZE);
    plasma_view v;
    int rc = plasma_pin(om->store, om->pc, &id, &v);
    plasma_stats st = {0};
    if (rc == RAYC_ESTORE_FULL) /* spilled, no room: wait only while spills make room */
        plasma_store_stats(om->store, &st);
    if (rc == RAYC_EBUSY || (rc == RAYC_ESTORE_FULL && st.spilling_objects > 0))
        serve_after_restore(om, c, req->req_id, &id);
    else if (rc != 0)
        serve_reply(om, c, req->req_id, &id, rc, rayc_last_error(), 0);
    else
        serve_pinned(om, c, req->req_id, &id, &v);
}

void om__serving_stop(object_manager *om)
{
    for (serve *s = om->serves; s; s = s->next)
        s->om = NULL;
}

void om__serving_peer_closed(object_manager *om, conn *c)
{
    for (restoring *rs = om->restorings; rs; rs = rs->next)
        if (rs->c == c)
            rs->c = NULL;
}
