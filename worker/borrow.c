/*
 * borrow.c -- borrowed refs in librayc, both sides (issue 12; docs/objects.md,
 * "Borrowing"; the raylets' part is raylet/owner_relay.h).
 *
 * Owner side: the raylet relays OwnerRequests from other processes that hold
 * one of our refs. A get is answered with the value when it lives only in
 * our memory (the entry is then "lent": releasing it frees the copies the
 * borrowers' nodes made), "in a store" (their pull fetches it), "not made
 * yet", or "freed by its owner". A borrow adds a borrower: the object stays
 * until every borrower has released it, even after our own last reference.
 *
 * Borrower side: the first rayc_ref_retain of a ref we do not own registers
 * us with its owner (one round trip through the raylets, waited for, so
 * that the owner cannot free the object after the retain returned); the
 * release of the last reference unregisters us.
 *
 * Thread-safety: handlers run on the connection's reading thread and take
 * the core's lock; borrow_register waits without it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "borrow.h"

#include "errors.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"

#define BORROW_WAIT_MS 30000 /* longest wait for an owner's answer to a retain */

enum { OP_GET = 0, OP_BORROW = 1, OP_UNBORROW = 2 };
enum { ST_INLINE = 0, ST_IN_STORE = 1, ST_PENDING = 2 };

/* Fill the answer to op on entry e (mu held). *copy: the value's bytes for
 * an inline answer (the caller frees it). */
static int answer(ref_entry *e, uint32_t op, Rpc__OwnerReply *r, char *text, size_t len,
                  void **copy)
{
    bool have = e && e->owned && !e->deleted && (e->refs > 0 || e->borrows > 0 || e->views > 0);
    if (op == OP_UNBORROW) {
        if (e && e->owned && e->borrows > 0)
            e->borrows--;
        return 0;
    }
    if (!have) {
        snprintf(text, len, "freed by its owner");
        return RAYC_EOBJECT_LOST;
    }
    if (op == OP_BORROW) {
        e->borrows++;
        return 0;
    }
    if (e->status != RAYC_OK) {
        snprintf(text, len, "%s", e->error ? e->error : rayc_strerror(e->status));
        return e->status;
    }
    if (!e->sealed) {
        r->state = ST_PENDING;
    } else if (e->in_store) {
        r->state = ST_IN_STORE;
    } else {
        *copy = malloc(e->size ? e->size : 1);
        if (*copy == NULL) {
            snprintf(text, len, "its owner is out of memory");
            return RAYC_ENOMEM;
        }
        memcpy(*copy, e->data, e->size);
        r->state = ST_INLINE;
        r->data = (ProtobufCBinaryData){e->size, *copy};
        e->lent = true;
    }
    return 0;
}

int borrow_on_owner_request(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    core_t *c = arg;
    Rpc__OwnerRequest *m = (Rpc__OwnerRequest *)msg;
    (void)type;
    if (m->object_id.len != OBJECT_ID_SIZE)
        return 0;
    object_id_t id;
    memcpy(id.b, m->object_id.data, OBJECT_ID_SIZE);
    Rpc__OwnerReply r = RPC__OWNER_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    char text[512] = "";
    void *copy = NULL;
    pthread_mutex_lock(&c->mu);
    ref_entry *e = reft_find(&c->refs, &id);
    st.code = answer(e, m->op, &r, text, sizeof(text), &copy);
    if (e && m->op == OP_UNBORROW)
        reft_maybe_finalize(&c->refs, e);
    pthread_mutex_unlock(&c->mu);
    st.message = text;
    r.req_id = m->req_id;
    r.object_id = m->object_id;
    r.status = &st;
    r.node_id = m->node_id; /* where the raylet sends it */
    cw_conn_send_batched_msg(c->raylet, MSG_OWNER_REPLY, &r.base);
    free(copy);
    return 0;
}

int borrow_on_stray_reply(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    (void)arg, (void)type, (void)msg; /* an unborrow's answer, or a late one */
    return 0;
}

int borrow_register(core_t *c, const object_id_t *id)
{
    Rpc__OwnerRequest m = RPC__OWNER_REQUEST__INIT;
    uint64_t req = cw_conn_next_id(c->raylet);
    m.req_id = req;
    m.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, (uint8_t *)id->b};
    m.op = OP_BORROW;
    ProtobufCMessage *reply = NULL;
    int rc = cw_conn_call(c->raylet, req, MSG_OWNER_REQUEST, &m.base, MSG_OWNER_REPLY, &reply,
                          BORROW_WAIT_MS);
    if (rc != 0)
        return rayc__error(rc, "rayc_ref_retain: no answer from the object's owner");
    Rpc__OwnerReply *r = (Rpc__OwnerReply *)reply;
    rc = r->status ? r->status->code : 0;
    if (rc != 0)
        rayc__error(rc, "rayc_ref_retain: %s", r->status->message ? r->status->message : "");
    msg_free(reply);
    return rc;
}

void borrow_unregister(core_t *c, const object_id_t *id)
{
    Rpc__OwnerRequest m = RPC__OWNER_REQUEST__INIT;
    m.req_id = cw_conn_next_id(c->raylet);
    m.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, (uint8_t *)id->b};
    m.op = OP_UNBORROW;
    cw_conn_send_batched_msg(c->raylet, MSG_OWNER_REQUEST, &m.base);
}

/* ------------------------------------------------------------ the driver's service */

static void *service_main(void *arg)
{
    core_t *c = arg;
    struct timespec ts = {0, BORROW_SERVICE_MS * 1000000L};
    while (!__atomic_load_n(&c->owner_svc_stop, __ATOMIC_ACQUIRE)) {
        nanosleep(&ts, NULL);
        /* Not while a stream is open: reading would take in (and
         * acknowledge) items the program has not asked for, and a stream
         * must hold its generator at the flow-control window while the
         * program reads nothing (docs/generators.md). */
        pthread_mutex_lock(&c->mu);
        bool streams = c->tasks && tsub_has_streams(c->tasks);
        pthread_mutex_unlock(&c->mu);
        if (!streams && cw_conn_pump(c->raylet, 0) != 0)
            break;
    }
    return NULL;
}

int borrow_service_start(core_t *c)
{
    if (c->has_owner_svc)
        return 0;
    c->owner_svc_stop = 0;
    if (pthread_create(&c->owner_svc, NULL, service_main, c) != 0)
        return -1;
    c->has_owner_svc = true;
    return 0;
}

void borrow_service_stop(core_t *c)
{
    if (c == NULL || !c->has_owner_svc)
        return;
    __atomic_store_n(&c->owner_svc_stop, 1, __ATOMIC_RELEASE);
    pthread_join(c->owner_svc, NULL);
    c->has_owner_svc = false;
}
