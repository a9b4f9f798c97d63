/*
 * gcs_actor_manager.c -- the GCS's actor RPCs (Ray's GcsActorManager): one
 * handler per request over the pure actor table (gcs_actor.h). Every change
 * is persisted in GCS_TABLE_ACTORS before its reply goes out, and published
 * on CHANNEL_ACTOR, so a restarted GCS has every actor and subscribers
 * (callers, raylets) learn each state change.
 *
 * Placement (Ray's GCS actor scheduler): a waiting actor (PENDING_CREATION
 * or RESTARTING) goes to a node whose available resources fit its creation
 * task, preferring its owner's node, as a CreateActor frame to that node's
 * raylet, which leases it a dedicated worker and answers ActorCreated. A
 * worker that dies is reported as ActorDied; kills go to the raylet as
 * KillActorWorker. Actors that fit nowhere yet are placed again on every
 * health tick. Runs on the GCS loop thread.
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

/* ------------------------------------------------------------ task events */

/* An actor's creation shows in the task table (ACTOR_CREATION_TASK): one
 * attempt per incarnation, SUBMITTED when it waits for a node, SCHEDULED
 * when sent to one, FINISHED when ALIVE, FAILED or CANCELLED when it never
 * got there. The GCS reports these itself: it places actors. */
static void creation_event(gcs_server *srv, const Rpc__ActorInfo *a, uint32_t attempt, int state,
                           int code, const char *error, bool retried)
{
    if (srv->tasks == NULL || a == NULL || a->creation_spec.len == 0 ||
        a->actor_id.len != ACTOR_ID_SIZE)
        return;
    Rpc__TaskSpec *spec = rpc__task_spec__unpack(NULL, a->creation_spec.len, a->creation_spec.data);
    if (spec == NULL)
        return;
    if (spec->task_id.len == TASK_ID_SIZE) {
        gcs_task_creation c = {
            .attempt = attempt,
            .state = state,
            .now_us = wall_us(),
            .class_name = a->class_name,
            .name = a->name,
            .actor = (const actor_id_t *)a->actor_id.data,
            .node = a->node_id.len == NODE_ID_SIZE ? (const node_id_t *)a->node_id.data : NULL,
            .pid = state == RPC__TASK_STATE__TASK_FINISHED ? a->pid : 0,
            .error_code = code,
            .error = error,
            .retried = retried,
        };
        memcpy(c.id.b, spec->task_id.data, TASK_ID_SIZE);
        gcs_task_add_creation(srv->tasks, &c, srv->metrics);
    }
    rpc__task_spec__free_unpacked(spec, NULL);
}

/* An actor left a state: the attempt that was creating it ended (when it
 * had not, was_alive false) and, RESTARTING, the next one is SUBMITTED. */
static void creation_ended(gcs_server *srv, const Rpc__ActorInfo *a, uint32_t attempt,
                           bool was_alive, int end_state, int code, const char *why)
{
    bool again = a->state == RPC__ACTOR_STATE__ACTOR_RESTARTING;
    if (!was_alive)
        creation_event(srv, a, attempt, end_state, code, why, again);
    if (again)
        creation_event(srv, a, a->num_restarts, RPC__TASK_STATE__TASK_SUBMITTED, 0, NULL, false);
}

/* ------------------------------------------------------------ placement */

static double available(const Rpc__NodeInfo *n, const char *name)
{
    for (size_t i = 0; i < n->n_resources_available; i++)
        if (strcmp(n->resources_available[i]->name, name) == 0)
            return n->resources_available[i]->amount;
    return 0;
}

static bool fits(const Rpc__NodeInfo *n, const Rpc__TaskSpec *spec)
{
    for (size_t i = 0; i < spec->n_resources; i++)
        if (available(n, spec->resources[i]->name) + 1e-9 < spec->resources[i]->amount)
            return false;
    return true;
}

/* A node that can take a creation now: alive, connected, its demand free. */
static bool can_place(gcs_server *srv, const Rpc__NodeInfo *n, const Rpc__TaskSpec *spec)
{
    return n && n->state == RPC__NODE_STATE__NODE_ALIVE && fits(n, spec) &&
           gcs_server__raylet_of(srv, n->node_id.data) != NULL;
}

/* Whether c is a better home than best for an actor that holds nothing:
 * fewer actors (placed or alive), then its owner's node, then more CPU. */
static bool fewer_actors(gcs_server *srv, const Rpc__NodeInfo *c, const Rpc__NodeInfo *best,
                         const Rpc__TaskSpec *spec)
{
    if (best == NULL)
        return true;
    size_t nc = gcs_actor_on_node(srv->actors, (const node_id_t *)c->node_id.data);
    size_t nb = gcs_actor_on_node(srv->actors, (const node_id_t *)best->node_id.data);
    if (nc != nb)
        return nc < nb;
    bool own_c = spec->owner_node_id.len == NODE_ID_SIZE &&
                 memcmp(c->node_id.data, spec->owner_node_id.data, NODE_ID_SIZE) == 0;
    bool own_b = spec->owner_node_id.len == NODE_ID_SIZE &&
                 memcmp(best->node_id.data, spec->owner_node_id.data, NODE_ID_SIZE) == 0;
    if (own_c != own_b)
        return own_c;
    return available(c, "CPU") > available(best, "CPU");
}

/* Where the actor's creation task goes now. NULL: nowhere yet.
 *
 * An actor that holds resources for its life goes to its owner's node if
 * they are free there, else to the alive node with the most CPU free (Ray's
 * GCS actor scheduler prefers the owner's node for these). An actor that
 * holds nothing (Ray's default: 1 CPU to be placed, 0 held) leaves no trace
 * in the nodes' free resources, so "most free" would send every one to the
 * same node: it goes to the node, among those where its demand is free,
 * with the fewest actors (placed there or alive there), ties to its owner's
 * node and then the most CPU free. Ray picks a random node for these; the
 * count gives the same spread without the luck (30 actors on 3 nodes: 10
 * each). */
static const Rpc__NodeInfo *pick_node(gcs_server *srv, const Rpc__ActorInfo *a,
                                      const Rpc__TaskSpec *spec)
{
    if (spec->pg_id.len == PG_ID_SIZE) {
        /* In a placement group: its bundle's node, once the group has it. */
        node_id_t n;
        if (!gcs_pg_node_for(srv, spec->pg_id.data, spec->bundle_index, spec, &n))
            return NULL;
        const Rpc__NodeInfo *ni = gcs_node_get(srv->nodes, n.b, NODE_ID_SIZE);
        return ni && ni->state == RPC__NODE_STATE__NODE_ALIVE && gcs_server__raylet_of(srv, n.b)
                   ? ni
                   : NULL;
    }
    bool holds = a->n_resources > 0;
    if (holds && spec->owner_node_id.len == NODE_ID_SIZE) {
        const Rpc__NodeInfo *own = gcs_node_get(srv->nodes, spec->owner_node_id.data, NODE_ID_SIZE);
        if (can_place(srv, own, spec))
            return own;
    }
    size_t n = gcs_node_count(srv->nodes);
    const Rpc__NodeInfo **all = malloc((n ? n : 1) * sizeof(*all));
    if (all == NULL)
        return NULL;
    n = gcs_node_list(srv->nodes, all, n);
    const Rpc__NodeInfo *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const Rpc__NodeInfo *c = all[i];
        if (!can_place(srv, c, spec))
            continue;
        if (holds ? best == NULL || available(c, "CPU") > available(best, "CPU")
                  : fewer_actors(srv, c, best, spec))
            best = c;
    }
    free(all);
    return best;
}

/* Send a waiting, unplaced actor's creation to a node that fits it. */
static void place(gcs_server *srv, const Rpc__ActorInfo *a)
{
    /* No creation task (a record written by hand): nothing to run. */
    if (a == NULL || a->node_id.len != 0 || a->creation_spec.len == 0 ||
        (a->state != RPC__ACTOR_STATE__ACTOR_PENDING_CREATION &&
         a->state != RPC__ACTOR_STATE__ACTOR_RESTARTING))
        return;
    Rpc__TaskSpec *spec = rpc__task_spec__unpack(NULL, a->creation_spec.len, a->creation_spec.data);
    if (spec == NULL)
        return;
    const Rpc__NodeInfo *node = pick_node(srv, a, spec);
    rpc__task_spec__free_unpacked(spec, NULL);
    if (node == NULL)
        return;
    node_id_t nid;
    memcpy(nid.b, node->node_id.data, NODE_ID_SIZE);
    gcs_client *rl = gcs_server__raylet_of(srv, nid.b);
    actor_id_t id; /* placing replaces the record a points to */
    memcpy(id.b, a->actor_id.data, ACTOR_ID_SIZE);
    if (gcs_actor_placed(srv->actors, &id, &nid) != RAYC_OK)
        return;
    a = gcs_actor_get(srv->actors, &id);
    creation_event(srv, a, a->num_restarts, RPC__TASK_STATE__TASK_SCHEDULED, 0, NULL, false);
    Rpc__CreateActor m = RPC__CREATE_ACTOR__INIT;
    m.actor = (Rpc__ActorInfo *)a;
    gcs_server__send(rl, MSG_CREATE_ACTOR, &m.base);
}

/* The actor's worker (if it has one) is told to go: a kill, or its job ended. */
static void kill_worker_of(gcs_server *srv, const Rpc__ActorInfo *a)
{
    if (a == NULL || a->node_id.len != NODE_ID_SIZE)
        return;
    gcs_client *rl = gcs_server__raylet_of(srv, a->node_id.data);
    if (rl == NULL)
        return;
    Rpc__KillActorWorker k = RPC__KILL_ACTOR_WORKER__INIT;
    k.actor_id = a->actor_id;
    k.worker_id = a->worker_id;
    gcs_server__send(rl, MSG_KILL_ACTOR_WORKER, &k.base);
}

void gcs_actor_manager_tick(gcs_server *srv)
{
    const Rpc__ActorInfo *batch[256];
    size_t n = gcs_actor_unplaced(srv->actors, batch, ARRAY_SIZE(batch));
    actor_id_t ids[256];
    for (size_t i = 0; i < n; i++)
        memcpy(ids[i].b, batch[i]->actor_id.data, ACTOR_ID_SIZE);
    for (size_t i = 0; i < n; i++) /* place() replaces records: look each up again */
        place(srv, gcs_actor_get(srv->actors, &ids[i]));
}

/* An op with no client: the change is persisted and published, no reply. */
static void persist(gcs_server *srv, const Rpc__ActorInfo *a, const char *what)
{
    gcs_op *op = gcs_server__op_new(srv, NULL, 0, 0, NULL, what);
    actor_changed(op, a);
    gcs_server__op_commit(op);
}

void gcs_actor_rpc_created(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__ActorCreated *r = (const Rpc__ActorCreated *)m;
    gcs_server *srv = cl->srv;
    (void)req_id;
    if (r->actor_id.len != ACTOR_ID_SIZE || r->node_id.len != NODE_ID_SIZE ||
        r->worker_id.len != WORKER_ID_SIZE)
        return;
    const actor_id_t *id = (const actor_id_t *)r->actor_id.data;
    char hex[ID_HEX_MAX];
    id_hex(id->b, ACTOR_ID_SIZE, hex);
    const Rpc__ActorInfo *a = NULL;
    int status = r->status ? r->status->code : RAYC_OK;
    if (status != RAYC_OK) {
        /* The constructor failed (DEAD), or its worker died while it ran. */
        const char *why = r->status->message && r->status->message[0] ? r->status->message
                                                                      : rayc_strerror(status);
        bool again = status == RAYC_EWORKER_DIED || status == RAYC_EOOM;
        a = gcs_actor_get(srv->actors, id);
        uint32_t attempt = a ? a->num_restarts : 0;
        bool was_alive = a && a->state == RPC__ACTOR_STATE__ACTOR_ALIVE;
        if (gcs_actor_failed(srv->actors, id, why, again, wall_ms(), &a) != RAYC_OK)
            return;
        creation_ended(srv, a, attempt, was_alive, RPC__TASK_STATE__TASK_FAILED, status, why);
        log_info("actor %.12s: creation failed: %s (%s)", hex, why, gcs_actor_state_name(a->state));
        persist(srv, a, "actor creation failed");
        place(srv, a);
        return;
    }
    int rc = gcs_actor_created(srv->actors, id, (const node_id_t *)r->node_id.data,
                               (const worker_id_t *)r->worker_id.data, r->address, r->pid, &a);
    if (rc == RAYC_EINVAL || rc == RAYC_ENOTFOUND) {
        /* Killed meanwhile, or a second creation after a GCS restart. */
        Rpc__KillActorWorker k = RPC__KILL_ACTOR_WORKER__INIT;
        k.actor_id = r->actor_id;
        k.worker_id = r->worker_id;
        gcs_server__send(cl, MSG_KILL_ACTOR_WORKER, &k.base);
        return;
    }
    if (rc != RAYC_OK)
        return;
    log_info("actor %.12s (%s) is ALIVE at %s (pid %d)", hex, a->class_name, a->address, a->pid);
    creation_event(srv, a, a->num_restarts, RPC__TASK_STATE__TASK_FINISHED, 0, NULL, false);
    persist(srv, a, "actor created");
}

void gcs_actor_rpc_died(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__ActorDied *d = (const Rpc__ActorDied *)m;
    gcs_server *srv = cl->srv;
    (void)req_id;
    if (d->actor_id.len != ACTOR_ID_SIZE)
        return;
    const actor_id_t *id = (const actor_id_t *)d->actor_id.data;
    const Rpc__ActorInfo *a = gcs_actor_get(srv->actors, id);
    /* Only the incarnation that is ALIVE now can die: a report about an
     * older worker (killed for a restart already) changes nothing. */
    if (a == NULL || a->state != RPC__ACTOR_STATE__ACTOR_ALIVE ||
        a->worker_id.len != d->worker_id.len ||
        memcmp(a->worker_id.data, d->worker_id.data, d->worker_id.len) != 0)
        return;
    const char *cause = d->cause && d->cause[0] ? d->cause : "its worker died";
    if (gcs_actor_failed(srv->actors, id, cause, !d->no_restart, wall_ms(), &a) != RAYC_OK)
        return;
    creation_ended(srv, a, 0, true, 0, 0, NULL);
    char hex[ID_HEX_MAX];
    log_info("actor %.12s is %s: %s", id_hex(id->b, ACTOR_ID_SIZE, hex),
             gcs_actor_state_name(a->state), cause);
    persist(srv, a, "actor died");
    place(srv, a);
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
    creation_event(srv, a, a->num_restarts, RPC__TASK_STATE__TASK_SUBMITTED, 0, NULL, false);
    actor_changed(op, a);
    gcs_server__op_commit(op);
    place(srv, gcs_actor_get(srv->actors, (const actor_id_t *)req->actor->actor_id.data));
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
    const Rpc__ActorInfo *a = gcs_actor_get(srv->actors, id);
    kill_worker_of(srv, a);
    uint32_t attempt = a ? a->num_restarts : 0;
    bool was_alive = a && (a->state == RPC__ACTOR_STATE__ACTOR_ALIVE ||
                           a->state == RPC__ACTOR_STATE__ACTOR_DEAD);
    int rc = gcs_actor_failed(srv->actors, id, cause, !req->no_restart, wall_ms(), &a);
    if (rc != RAYC_OK) {
        gcs_server__reply_status(cl, MSG_KILL_ACTOR_REPLY, req_id, rc, "no such actor");
        return;
    }
    creation_ended(srv, a, attempt, was_alive, RPC__TASK_STATE__TASK_CANCELLED, RAYC_ECANCELLED,
                   cause);
    char hex[ID_HEX_MAX];
    log_info("actor %.12s is %s: %s", id_hex(id->b, ACTOR_ID_SIZE, hex),
             gcs_actor_state_name(a->state), cause);
    gcs_op *op =
        gcs_server__op_new(srv, cl, req_id, MSG_KILL_ACTOR_REPLY, finish_actor_op, "kill actor");
    memcpy(op->u.actor_id, id->b, ACTOR_ID_SIZE);
    actor_changed(op, a);
    gcs_server__op_commit(op);
    place(srv, a);
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
    gcs_op *op = arg;
    actor_changed(op, a);
    if (a->state == RPC__ACTOR_STATE__ACTOR_RESTARTING)
        creation_event(op->srv, a, a->num_restarts, RPC__TASK_STATE__TASK_SUBMITTED, 0, NULL,
                       false);
    if (a->state == RPC__ACTOR_STATE__ACTOR_DEAD)
        kill_worker_of(op->srv, a);
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
    if (n > 0) {
        log_info("%zu actors were on the dead node", n);
        gcs_actor_manager_tick(srv);
    }
}
