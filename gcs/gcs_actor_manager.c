/*
 * gcs_actor_manager.c -- the GCS's actor RPCs (Ray's GcsActorManager): one
 * handler per request over the pure actor table (gcs_actor.h). Every change
 * is persisted in GCS_TABLE_ACTORS before its reply goes out, and published
 * on CHANNEL_ACTOR, so a restarted GCS has every actor and subscribers
 * (callers, raylets) learn each state change.
 *
 * Placement of an actor on a node and its worker are the raylet's part (not
 * built yet: see docs/actors.md); until then actors stay PENDING_CREATION.
 * Runs on the GCS loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "gcs_actor.h"
#include "gcs_server_int.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define KILL_CAUSE "killed by rayc_actor_kill"

/* Persist and publish one actor's record; the write goes into op. */
static void actor_changed(gcs_op *op, const Rpc__ActorInfo *a)
{
    gcs_server__op_put_msg(op, GCS_TABLE_ACTORS, a->actor_id.data, ACTOR_ID_SIZE, &a->base);
    gcs_pubsub_publish_actor(op->srv->pubsub, a);
}

/* The reply to each actor RPC: status and the actor's record (may be NULL). */
static void send_actor_reply(gcs_client *cl, uint16_t type, uint64_t req_id, int code,
                             const char *message, const Rpc__ActorInfo *a)
{
    Rpc__ActorReply r = RPC__ACTOR_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, code, message);
    r.req_id = req_id;
    r.status = &st;
    r.actor = (Rpc__ActorInfo *)a;
    gcs_server__send(cl, type, &r.base);
}

/* An op's reply: the actor's record as it is once the writes are done. */
static void finish_actor_op(gcs_op *op)
{
    send_actor_reply(op->client, op->reply_type, op->req_id, op->status,
                     op->status ? "storage write failed" : NULL,
                     gcs_actor_get(op->srv->actors, (const actor_id_t *)op->u.actor_id));
}

void gcs_actor_rpc_register(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__RegisterActorRequest *req = (const Rpc__RegisterActorRequest *)m;
    gcs_server *srv = cl->srv;
    if (req->actor == NULL) {
        send_actor_reply(cl, MSG_REGISTER_ACTOR_REPLY, req_id, RAYC_EINVAL,
                         "no actor in the request", NULL);
        return;
    }
    const Rpc__ActorInfo *a;
    int rc = gcs_actor_register(srv->actors, req->actor, wall_ms(), &a);
    if (rc == RAYC_EEXIST) {
        /* The same id again is a retry (say, after a GCS restart): idempotent. */
        bool same_id = memcmp(a->actor_id.data, req->actor->actor_id.data, ACTOR_ID_SIZE) == 0;
        if (same_id || req->get_if_exists)
            send_actor_reply(cl, MSG_REGISTER_ACTOR_REPLY, req_id, RAYC_OK, NULL, a);
        else
            send_actor_reply(cl, MSG_REGISTER_ACTOR_REPLY, req_id, RAYC_EEXIST,
                             "an actor of that name exists in the namespace", a);
        return;
    }
    if (rc != RAYC_OK) {
        send_actor_reply(cl, MSG_REGISTER_ACTOR_REPLY, req_id, rc,
                         rc == RAYC_EINVAL ? "an actor needs a 16-byte id and a class"
                                           : rayc_strerror(rc),
                         NULL);
        return;
    }
    char hex[ID_HEX_MAX];
    log_info("actor %.12s (%s%s%s) registered by job %u",
             id_hex(a->actor_id.data, ACTOR_ID_SIZE, hex), a->class_name,
             a->name[0] ? ", name " : "", a->name, a->job_id);
    gcs_op *op = gcs_server__op_new(srv, cl, req_id, MSG_REGISTER_ACTOR_REPLY, finish_actor_op,
                                    "register actor");
    memcpy(op->u.actor_id, a->actor_id.data, ACTOR_ID_SIZE);
    actor_changed(op, a);
    gcs_server__op_commit(op);
}

void gcs_actor_rpc_get(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__GetActorRequest *req = (const Rpc__GetActorRequest *)m;
    const gcs_actor_table *t = cl->srv->actors;
    const Rpc__ActorInfo *a = NULL;
    if (req->actor_id.len == ACTOR_ID_SIZE)
        a = gcs_actor_get(t, (const actor_id_t *)req->actor_id.data);
    else if (req->name && req->name[0])
        a = gcs_actor_by_name(t, req->namespace_, req->name);
    send_actor_reply(cl, MSG_GET_ACTOR_REPLY, req_id, a ? RAYC_OK : RAYC_ENOTFOUND,
                     a ? NULL : "no such actor", a);
}

void gcs_actor_rpc_kill(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__KillActorRequest *req = (const Rpc__KillActorRequest *)m;
    gcs_server *srv = cl->srv;
    if (req->actor_id.len != ACTOR_ID_SIZE) {
        gcs_server__reply_status(cl, MSG_KILL_ACTOR_REPLY, req_id, RAYC_EINVAL,
                                 "an actor id is 16 bytes");
        return;
    }
    const actor_id_t *id = (const actor_id_t *)req->actor_id.data;
    const char *cause = req->cause && req->cause[0] ? req->cause : KILL_CAUSE;
    const Rpc__ActorInfo *a;
    int rc = gcs_actor_failed(srv->actors, id, cause, !req->no_restart, wall_ms(), &a);
    if (rc != RAYC_OK) {
        gcs_server__reply_status(cl, MSG_KILL_ACTOR_REPLY, req_id, rc, "no such actor");
        return;
    }
    char hex[ID_HEX_MAX];
    log_info("actor %.12s is %s: %s", id_hex(id->b, ACTOR_ID_SIZE, hex),
             gcs_actor_state_name(a->state), cause);
    gcs_op *op =
        gcs_server__op_new(srv, cl, req_id, MSG_KILL_ACTOR_REPLY, finish_actor_op, "kill actor");
    memcpy(op->u.actor_id, id->b, ACTOR_ID_SIZE);
    actor_changed(op, a);
    gcs_server__op_commit(op);
}

void gcs_actor_rpc_list(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__ListActorsRequest *req = (const Rpc__ListActorsRequest *)m;
    const gcs_actor_table *t = cl->srv->actors;
    size_t n = gcs_actor_count(t);
    const Rpc__ActorInfo **all = malloc((n ? n : 1) * sizeof(*all));
    if (all == NULL) {
        gcs_server__reply_status(cl, MSG_LIST_ACTORS_REPLY, req_id, RAYC_ENOMEM, "out of memory");
        return;
    }
    n = gcs_actor_list(t, all, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (req->job_id == 0 || all[i]->job_id == req->job_id)
            all[k++] = all[i];
    Rpc__ListActorsReply r = RPC__LIST_ACTORS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req_id;
    r.status = &st;
    r.n_actors = k;
    r.actors = (Rpc__ActorInfo **)all;
    gcs_server__send(cl, MSG_LIST_ACTORS_REPLY, &r.base);
    free(all);
}

/* ------------------------------------------------------------ bulk changes */

static void bulk_changed(void *arg, const Rpc__ActorInfo *a)
{
    actor_changed(arg, a);
}

void gcs_actor_manager_job_ended(gcs_server *srv, uint32_t job_id, gcs_op *op)
{
    size_t n = gcs_actor_job_ended(srv->actors, job_id, wall_ms(), bulk_changed, op);
    if (n > 0)
        log_info("job %u ended: %zu of its actors are DEAD", job_id, n);
}

void gcs_actor_manager_node_died(gcs_server *srv, const node_id_t *node, gcs_op *op)
{
    size_t n = gcs_actor_node_died(srv->actors, node, wall_ms(), bulk_changed, op);
    if (n > 0)
        log_info("%zu actors were on the dead node", n);
}
