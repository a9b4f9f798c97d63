/*
 * stream_relay.c -- the raylet's part in streaming generators
 * (docs/generators.md): items go from the worker running a generator to its
 * owner (here or on the owner's node), acks go from the owner to wherever
 * the generator runs. See task_manager.h (tm_stream_*). Runs in the
 * raylet's loop thread.
 */
#include <string.h>

#include "log.h"
#include "msg.h"
#include "task_manager_internal.h"

/* A local owner's store item is pinned for it on the way, as a store
 * result is (send_done): its first get of it is then a lookup in its own
 * memory. */
static void pin_for_owner(task_manager *tm, client *owner, const object_id_t *id,
                          protobuf_c_boolean *pinned, uint64_t *offset)
{
    plasma_view v;
    if (plasma_pin(tm->d.store, owner->pc, id, &v) == 0) {
        *pinned = true;
        *offset = v.off;
    }
}

/* Deliver an item to the owner of t: its local connection (the store copy
 * pinned for it), or the raylet of its node. */
static void send_item(task_manager *tm, const rtask *t, Rpc__StreamItem *m)
{
    if (t->remote_owner) {
        conn *c = peers_get(tm->d.peers, &t->owner_node);
        if (c)
            conn_send(c, MSG_STREAM_ITEM, &m->base);
        return;
    }
    client *owner = creg_by_worker(tm->d.clients, &t->owner);
    if (owner == NULL)
        return;
    if (m->in_store) {
        object_id_t oid = object_id_for_return(&t->id, m->index + 1);
        pin_for_owner(tm, owner, &oid, &m->pinned, &m->offset);
    }
    conn_send(owner->c, MSG_STREAM_ITEM, &m->base);
}

void tm_stream_item(task_manager *tm, client *from, Rpc__StreamItem *m)
{
    rtask *t = tm__find(tm, m->task_id.data, m->task_id.len);
    if (from->w == NULL || t == NULL || t->state != T_DISPATCHED || t->w != from->w ||
        !t->msg->spec->streaming) {
        log_warn("%s sent an item of a generator it was not running", conn_peer(from->c));
        return;
    }
    if (m->in_store) {
        /* The item belongs to the owner (fate-sharing), as a store return. */
        object_id_t oid = object_id_for_return(&t->id, m->index + 1);
        tm__give_to_owner(tm, t, &oid);
    }
    /* Stamp where a store item lives, and for the owner's raylet whose item
     * it is (the fields are the unpacked message's: lend them our bytes
     * while sending only). An inline item needs neither. */
    ProtobufCBinaryData sent_node = m->node_id, sent_owner = m->owner_id;
    if (m->in_store)
        m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, tm->d.node_id.b};
    if (t->remote_owner)
        m->owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, t->owner.b};
    send_item(tm, t, m);
    m->node_id = sent_node;
    m->owner_id = sent_owner;
}

void tm_remote_stream_item(task_manager *tm, Rpc__StreamItem *m)
{
    if (m->owner_id.len != WORKER_ID_SIZE)
        return;
    worker_id_t owner;
    memcpy(owner.b, m->owner_id.data, WORKER_ID_SIZE);
    client *cl = creg_by_worker(tm->d.clients, &owner);
    if (cl)
        conn_send(cl->c, MSG_STREAM_ITEM, &m->base);
}

/* An ack for a generator this raylet does not hold: an actor's method, which
 * runs on the worker the ack names (here, or on the node it names). */
static void stream_ack_to_worker(task_manager *tm, Rpc__StreamAck *a)
{
    if (a->worker_id.len != WORKER_ID_SIZE || a->node_id.len != NODE_ID_SIZE)
        return;
    if (memcmp(a->node_id.data, tm->d.node_id.b, NODE_ID_SIZE) != 0) {
        node_id_t node;
        memcpy(node.b, a->node_id.data, NODE_ID_SIZE);
        conn *c = peers_get(tm->d.peers, &node);
        if (c)
            conn_send(c, MSG_STREAM_ACK, &a->base);
        return;
    }
    worker_id_t w;
    memcpy(w.b, a->worker_id.data, WORKER_ID_SIZE);
    client *cl = creg_by_worker(tm->d.clients, &w);
    if (cl && cl->w)
        conn_send(cl->c, MSG_STREAM_ACK, &a->base);
}

void tm_stream_ack(task_manager *tm, Rpc__StreamAck *a)
{
    rtask *t = tm__find(tm, a->task_id.data, a->task_id.len);
    if (t == NULL) {
        stream_ack_to_worker(tm, a); /* (else the next attempt's spec carries the count) */
        return;
    }
    if (!t->msg->spec->streaming)
        return;
    if (a->consumed > t->stream_consumed)
        t->stream_consumed = a->consumed;
    if (t->state == T_DISPATCHED && t->w && t->w->cl) {
        conn_send(t->w->cl->c, MSG_STREAM_ACK, &a->base);
    } else if (t->state == T_FORWARDED) {
        conn *c = peers_get(tm->d.peers, &t->fwd_node);
        if (c)
            conn_send(c, MSG_STREAM_ACK, &a->base);
    }
}
