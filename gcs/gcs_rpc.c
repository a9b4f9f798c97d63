/*
 * gcs_rpc.c -- one handler per GCS RPC, grouped like Ray's gcs_*_manager:
 * nodes, jobs, KV, pub/sub, object directory. A handler validates the
 * request, changes the in-memory table (the authority while the GCS runs),
 * publishes what changed, and persists it; the reply to a write goes out
 * when the storage write completes (gcs_op). A storage failure becomes an
 * error status in the reply, never a crash.
 * Runs in the GCS event-loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_server_int.h"
#include "log.h"
#include "rayc.h"
#include "util.h"

#define ROLE(r)  (1u << RPC__ROLE__ROLE_##r)
#define ANY_ROLE (ROLE(RAYLET) | ROLE(DRIVER) | ROLE(WORKER) | ROLE(CLI) | ROLE(UNKNOWN))

typedef void (*handler_fn)(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);

typedef struct {
    uint16_t reply_type; /* 0: the request has no reply */
    unsigned roles;      /* handshake roles allowed to send it */
    handler_fn fn;
} handler;

static char *hex12(const uint8_t *id, size_t len, char out[ID_HEX_MAX])
{
    if (len > NODE_ID_SIZE)
        len = NODE_ID_SIZE;
    id_hex(id, len, out);
    out[len < 6 ? 2 * len : 12] = '\0';
    return out;
}

/* ------------------------------------------------------------------ nodes */

static void finish_register(gcs_op *op)
{
    Rpc__RegisterNodeReply r = RPC__REGISTER_NODE_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, op->status, op->status ? "storage write failed" : NULL);
    r.req_id = op->req_id;
    r.status = &st;
    r.health_timeout_ms = op->srv->health_timeout_ms;
    r.heartbeat_interval_ms = op->srv->heartbeat_interval_ms;
    gcs_server__send(op->client, MSG_REGISTER_NODE_REPLY, &r.base);
}

static void handle_register_node(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__RegisterNodeRequest *req = (const Rpc__RegisterNodeRequest *)m;
    gcs_server *srv = cl->srv;
    const Rpc__NodeInfo *node;
    bool is_new;
    char hex[ID_HEX_MAX];
    if (req->node == NULL || req->node->node_id.len != NODE_ID_SIZE) {
        gcs_server__reply_status(cl, MSG_REGISTER_NODE_REPLY, req_id, RAYC_EINVAL,
                                 "node id must be 28 bytes");
        return;
    }
    int rc = gcs_node_register(srv->nodes, req->node, now_ms(), wall_ms(), &node, &is_new);
    if (rc != RAYC_OK) {
        const char *why = rc == RAYC_EINVAL ? GCS_NODE_DEAD_MSG : rayc_strerror(rc);
        log_warn("refused registration of node %s from %s: %s",
                 hex12(req->node->node_id.data, NODE_ID_SIZE, hex), conn_peer(cl->c), why);
        gcs_server__reply_status(cl, MSG_REGISTER_NODE_REPLY, req_id, rc, why);
        return;
    }
    cl->has_node = true;
    memcpy(cl->node_id, node->node_id.data, NODE_ID_SIZE);
    log_info("node %s %s at %s (%s)", hex12(node->node_id.data, NODE_ID_SIZE, hex),
             is_new ? "registered" : "re-registered", node->address, conn_peer(cl->c));
    gcs_pubsub_publish_node(srv->pubsub, node);
    gcs_op *op = gcs_server__op_new(srv, cl, req_id, MSG_REGISTER_NODE_REPLY, finish_register,
                                    "register node");
    gcs_server__op_put_msg(op, GCS_TABLE_NODES, node->node_id.data, NODE_ID_SIZE, &node->base);
    gcs_server__op_commit(op);
    gcs_actor_manager_tick(srv); /* actors that fit nowhere may fit here */
    gcs_pg_tick(srv);
}

/* Heartbeats are not persisted: the load is volatile, and a restarted GCS
 * resets every node's heartbeat clock anyway. */
/* Every node (ALIVE and DEAD) as a borrowed array for a reply: the entries
 * stay owned by the node table; the caller frees the array. NULL when out of
 * memory. */
/* The nodes changed after view version `since` (0: all), in a new array. */
static Rpc__NodeInfo **list_nodes_since(gcs_server *srv, uint64_t since, size_t *n)
{
    size_t cap = since > 0 && since >= gcs_node_view_version(srv->nodes)
                     ? 0 /* an idle cluster's delta: empty */
                     : gcs_node_count(srv->nodes);
    const Rpc__NodeInfo **nodes = malloc((cap ? cap : 1) * sizeof(*nodes));
    if (nodes == NULL)
        return NULL;
    *n = gcs_node_list_since(srv->nodes, since, nodes, cap);
    return (Rpc__NodeInfo **)nodes;
}

static Rpc__NodeInfo **list_nodes(gcs_server *srv, size_t *n)
{
    return list_nodes_since(srv, 0, n);
}

static void handle_heartbeat(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__HeartbeatRequest *req = (const Rpc__HeartbeatRequest *)m;
    gcs_server *srv = cl->srv;
    const Rpc__NodeInfo *node = gcs_node_get(srv->nodes, req->node_id.data, req->node_id.len);
    int rc;
    const char *why = NULL;
    if (node && node->state == RPC__NODE_STATE__NODE_DEAD) {
        rc = RAYC_EINVAL;
        why = GCS_NODE_DEAD_MSG;
    } else if (node == NULL || !cl->has_node ||
               memcmp(cl->node_id, req->node_id.data, NODE_ID_SIZE) != 0) {
        rc = RAYC_ENOTFOUND;
        why = "node not registered on this connection: register again";
    } else {
        rc = gcs_node_heartbeat(srv->nodes, req, now_ms(), wall_ms());
        if (rc == RAYC_ENOMEM)
            why = "out of memory";
    }
    if (rc != RAYC_OK) {
        gcs_server__reply_status(cl, MSG_HEARTBEAT_REPLY, req_id, rc, why);
        return;
    }
    /* The reply carries the cluster view, so each raylet can place work on
     * the others (spillback): what changed since the raylet's version when
     * it holds one of this epoch, else every node. Idle nodes then cost a
     * few bytes a heartbeat, not the whole table times the cluster. */
    uint64_t version = gcs_node_view_version(srv->nodes);
    bool delta =
        req->view_epoch == srv->view_epoch && req->view_version > 0 && req->view_version <= version;
    size_t n;
    Rpc__NodeInfo **nodes = list_nodes_since(srv, delta ? req->view_version : 0, &n);
    Rpc__HeartbeatReply r = RPC__HEARTBEAT_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req_id;
    r.status = &st;
    if (nodes) {
        r.n_view = n;
        r.view = nodes;
        r.view_epoch = srv->view_epoch;
        r.view_version = version;
        r.view_delta = delta;
    }
    gcs_server__send(cl, MSG_HEARTBEAT_REPLY, &r.base);
    free(nodes);
}

static void handle_list_nodes(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    (void)m;
    size_t n;
    Rpc__NodeInfo **nodes = list_nodes(cl->srv, &n);
    if (nodes == NULL) {
        gcs_server__reply_status(cl, MSG_LIST_NODES_REPLY, req_id, RAYC_ENOMEM, "out of memory");
        return;
    }
    Rpc__ListNodesReply r = RPC__LIST_NODES_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req_id;
    r.status = &st;
    r.n_nodes = n;
    r.nodes = nodes;
    gcs_server__send(cl, MSG_LIST_NODES_REPLY, &r.base);
    free(nodes);
}

/* Collects the locations a dead node loses, for one batched publish. */
typedef struct {
    gcs_op *op;
    size_t n, cap;
    struct lost {
        uint8_t object_id[OBJECT_ID_SIZE];
        uint8_t node_id[NODE_ID_SIZE];
    } * lost;
} lost_set;

static void on_location_lost(void *arg, const Rpc__ObjectLocation *loc)
{
    lost_set *ls = arg;
    uint8_t key[GCS_OBJDIR_KEY_SIZE];
    gcs_objdir_storage_key(loc->object_id.data, loc->node_id.data, key);
    gcs_server__op_del(ls->op, GCS_TABLE_OBJECTS, key, sizeof(key));
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 64;
        struct lost *nl = realloc(ls->lost, cap * sizeof(*nl));
        if (nl == NULL)
            return; /* the publish misses it; the directory is still right */
        ls->lost = nl;
        ls->cap = cap;
    }
    memcpy(ls->lost[ls->n].object_id, loc->object_id.data, OBJECT_ID_SIZE);
    memcpy(ls->lost[ls->n].node_id, loc->node_id.data, NODE_ID_SIZE);
    ls->n++;
}

void gcs_rpc_node_dead(gcs_server *srv, const Rpc__NodeInfo *node, gcs_op *op)
{
    char hex[ID_HEX_MAX];
    log_warn("node %s (%s) is DEAD: %s", hex12(node->node_id.data, NODE_ID_SIZE, hex),
             node->address, node->death_reason);
    gcs_pubsub_publish_node(srv->pubsub, node);
    gcs_server__op_put_msg(op, GCS_TABLE_NODES, node->node_id.data, NODE_ID_SIZE, &node->base);
    gcs_pg_node_died(srv, (const node_id_t *)node->node_id.data);

    lost_set ls = {.op = op};
    gcs_objdir_remove_node(srv->objdir, node->node_id.data, NODE_ID_SIZE, on_location_lost, &ls);
    if (ls.n > 0) {
        Rpc__ObjectLocation *msgs = calloc(ls.n, sizeof(*msgs));
        Rpc__ObjectLocation **ptrs = calloc(ls.n, sizeof(*ptrs));
        if (msgs && ptrs) {
            for (size_t i = 0; i < ls.n; i++) {
                Rpc__ObjectLocation init = RPC__OBJECT_LOCATION__INIT;
                msgs[i] = init;
                msgs[i].object_id.data = ls.lost[i].object_id;
                msgs[i].object_id.len = OBJECT_ID_SIZE;
                msgs[i].node_id.data = ls.lost[i].node_id;
                msgs[i].node_id.len = NODE_ID_SIZE;
                msgs[i].removed = true;
                ptrs[i] = &msgs[i];
            }
            gcs_pubsub_publish_objects(srv->pubsub, ptrs, ls.n);
        }
        free(msgs);
        free(ptrs);
        log_info("node %s: dropped %zu object locations", hex, ls.n);
    }
    free(ls.lost);
    if (node->node_id.len == NODE_ID_SIZE)
        gcs_actor_manager_node_died(srv, (const node_id_t *)node->node_id.data, op);
}

static void handle_drain_node(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__DrainNodeRequest *req = (const Rpc__DrainNodeRequest *)m;
    gcs_server *srv = cl->srv;
    const Rpc__NodeInfo *node;
    bool changed;
    int rc = gcs_node_drain(srv->nodes, req->node_id.data, req->node_id.len, req->reason, wall_ms(),
                            &node, &changed);
    if (rc != RAYC_OK) {
        gcs_server__reply_status(cl, MSG_DRAIN_NODE_REPLY, req_id, rc,
                                 rc == RAYC_ENOTFOUND ? "no such node" : rayc_strerror(rc));
        return;
    }
    gcs_op *op = gcs_server__op_new(srv, cl, req_id, MSG_DRAIN_NODE_REPLY, NULL, "drain node");
    if (changed)
        gcs_rpc_node_dead(srv, node, op);
    gcs_server__op_commit(op);
}

/* ------------------------------------------------------------------- jobs */

static void finish_add_job(gcs_op *op)
{
    Rpc__AddJobReply r = RPC__ADD_JOB_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, op->status, op->status ? "storage write failed" : NULL);
    r.req_id = op->req_id;
    r.status = &st;
    r.job_id = op->status == RAYC_OK ? op->u.job_id : 0;
    gcs_server__send(op->client, MSG_ADD_JOB_REPLY, &r.base);
}

static void persist_job(gcs_op *op, const Rpc__JobInfo *job)
{
    uint8_t key[4];
    gcs_job_key(job->job_id, key);
    gcs_server__op_put_msg(op, GCS_TABLE_JOBS, key, sizeof(key), &job->base);
}

static void handle_add_job(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__AddJobRequest *req = (const Rpc__AddJobRequest *)m;
    gcs_server *srv = cl->srv;
    const Rpc__JobInfo *job;
    int rc = gcs_job_add(srv->jobs, req->job, wall_ms(), &job);
    if (rc != RAYC_OK) {
        gcs_server__reply_status(cl, MSG_ADD_JOB_REPLY, req_id, rc,
                                 rc == RAYC_EEXIST ? "job id already used" : rayc_strerror(rc));
        return;
    }
    /* A driver's jobs end when its connection does. */
    if (cl->role == RPC__ROLE__ROLE_DRIVER) {
        if (cl->njobs == cl->capjobs) {
            size_t cap = cl->capjobs ? cl->capjobs * 2 : 4;
            uint32_t *nj = realloc(cl->jobs, cap * sizeof(*nj));
            if (nj) {
                cl->jobs = nj;
                cl->capjobs = cap;
            }
        }
        if (cl->njobs < cl->capjobs)
            cl->jobs[cl->njobs++] = job->job_id;
    }
    log_info("job %u added (driver pid %d, %s)", job->job_id, job->driver_pid,
             job->entrypoint && *job->entrypoint ? job->entrypoint : "no entrypoint");
    gcs_pubsub_publish_job(srv->pubsub, job);
    gcs_op *op = gcs_server__op_new(srv, cl, req_id, MSG_ADD_JOB_REPLY, finish_add_job, "add job");
    op->u.job_id = job->job_id;
    char counter[16];
    gcs_job_counter_format(gcs_job_counter(srv->jobs), counter);
    gcs_server__op_put(op, GCS_TABLE_META, GCS_JOB_COUNTER_KEY, strlen(GCS_JOB_COUNTER_KEY),
                       counter, strlen(counter));
    persist_job(op, job);
    gcs_server__op_commit(op);
}

/* End a job (request or driver exit); writes go into op. */
static int end_job(gcs_server *srv, uint32_t job_id, bool failed, gcs_op *op, const char *why)
{
    const Rpc__JobInfo *job;
    bool changed;
    int rc = gcs_job_finish(srv->jobs, job_id, failed, wall_ms(), &job, &changed);
    if (rc != RAYC_OK || !changed)
        return rc;
    log_info("job %u %s (%s)", job_id, failed ? "failed" : "finished", why);
    gcs_task_job_ended(srv->tasks, job_id, wall_us(), srv->metrics);
    gcs_pubsub_publish_job(srv->pubsub, job);
    persist_job(op, job);
    gcs_actor_manager_job_ended(srv, job_id, op);
    gcs_pg_job_ended(srv, job_id);
    return RAYC_OK;
}

static void handle_finish_job(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__FinishJobRequest *req = (const Rpc__FinishJobRequest *)m;
    gcs_op *op = gcs_server__op_new(cl->srv, cl, req_id, MSG_FINISH_JOB_REPLY, NULL, "finish job");
    int rc = end_job(cl->srv, req->job_id, req->failed, op, "request");
    if (rc != RAYC_OK)
        gcs_server__op_fail(op, rc);
    gcs_server__op_commit(op);
}

static void client_closed(gcs_client *cl)
{
    if (cl->njobs == 0)
        return;
    gcs_op *op = gcs_server__op_new(cl->srv, NULL, 0, 0, NULL, "finish jobs of a driver");
    for (size_t i = 0; i < cl->njobs; i++)
        end_job(cl->srv, cl->jobs[i], false, op, "driver disconnected");
    cl->njobs = 0;
    gcs_server__op_commit(op);
}

static void handle_list_jobs(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    (void)m;
    gcs_server *srv = cl->srv;
    size_t n = gcs_job_count(srv->jobs);
    const Rpc__JobInfo **jobs = malloc((n ? n : 1) * sizeof(*jobs));
    if (jobs == NULL) {
        gcs_server__reply_status(cl, MSG_LIST_JOBS_REPLY, req_id, RAYC_ENOMEM, "out of memory");
        return;
    }
    n = gcs_job_list(srv->jobs, jobs, n);
    Rpc__ListJobsReply r = RPC__LIST_JOBS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req_id;
    r.status = &st;
    r.n_jobs = n;
    r.jobs = (Rpc__JobInfo **)jobs;
    gcs_server__send(cl, MSG_LIST_JOBS_REPLY, &r.base);
    free(jobs);
}

/* --------------------------------------------------------------------- KV */

static void finish_kv_put(gcs_op *op)
{
    Rpc__KvPutReply r = RPC__KV_PUT_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, op->status, op->status ? "storage write failed" : NULL);
    r.req_id = op->req_id;
    r.status = &st;
    r.added = op->u.flag;
    gcs_server__send(op->client, MSG_KV_PUT_REPLY, &r.base);
}

static void finish_kv_del(gcs_op *op)
{
    Rpc__KvDelReply r = RPC__KV_DEL_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, op->status, op->status ? "storage write failed" : NULL);
    r.req_id = op->req_id;
    r.status = &st;
    r.deleted = op->u.flag;
    gcs_server__send(op->client, MSG_KV_DEL_REPLY, &r.base);
}

/* A put of a new key failed in storage: forget the key, so a retry adds it
 * again instead of finding it "already there" until the next restart. */
static void undo_kv_add(gcs_op *op)
{
    gcs_kv_forget(op->srv->kv, op->undo_arg, op->undo_len);
}

static void handle_kv_put(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__KvPutRequest *req = (const Rpc__KvPutRequest *)m;
    gcs_server *srv = cl->srv;
    bool added, written;
    int rc = gcs_kv_put(srv->kv, req->ns, req->key.data, req->key.len, req->value.data,
                        req->value.len, req->overwrite, &added, &written);
    if (rc != RAYC_OK) {
        gcs_server__reply_status(
            cl, MSG_KV_PUT_REPLY, req_id, rc,
            rc == RAYC_EINVAL ? "code package refused: its key is not the SHA-256 of its bytes"
                              : rayc_strerror(rc));
        return;
    }
    gcs_op *op = gcs_server__op_new(srv, cl, req_id, MSG_KV_PUT_REPLY, finish_kv_put, "kv put");
    op->u.flag = added;
    if (written) {
        size_t sklen;
        uint8_t *sk = gcs_kv_storage_key(req->ns, req->key.data, req->key.len, &sklen);
        if (sk == NULL) {
            gcs_server__op_fail(op, RAYC_ENOMEM);
        } else {
            gcs_server__op_put(op, GCS_TABLE_KV, sk, sklen, req->value.data, req->value.len);
            if (added) { /* a new key whose write fails must not stay in memory */
                op->undo = undo_kv_add;
                op->undo_arg = sk;
                op->undo_len = sklen;
                sk = NULL;
            }
        }
        free(sk);
    }
    gcs_server__op_commit(op);
}

static void handle_kv_get(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__KvGetRequest *req = (const Rpc__KvGetRequest *)m;
    const uint8_t *val = NULL;
    size_t vlen = 0;
    int rc = gcs_kv_get(cl->srv->kv, req->ns, req->key.data, req->key.len, &val, &vlen);
    Rpc__KvGetReply r = RPC__KV_GET_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, rc, rc == RAYC_ENOTFOUND ? "no such key" : rc ? rayc_strerror(rc) : NULL);
    r.req_id = req_id;
    r.status = &st;
    if (rc == RAYC_OK) {
        r.value.data = (uint8_t *)val;
        r.value.len = vlen;
    }
    gcs_server__send(cl, MSG_KV_GET_REPLY, &r.base);
}

static void handle_kv_del(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__KvDelRequest *req = (const Rpc__KvDelRequest *)m;
    gcs_server *srv = cl->srv;
    int rc = gcs_kv_del(srv->kv, req->ns, req->key.data, req->key.len);
    if (rc == RAYC_ENOMEM) {
        gcs_server__reply_status(cl, MSG_KV_DEL_REPLY, req_id, rc, rayc_strerror(rc));
        return;
    }
    gcs_op *op = gcs_server__op_new(srv, cl, req_id, MSG_KV_DEL_REPLY, finish_kv_del, "kv del");
    op->u.flag = rc == RAYC_OK;
    if (rc == RAYC_OK) {
        size_t sklen;
        uint8_t *sk = gcs_kv_storage_key(req->ns, req->key.data, req->key.len, &sklen);
        if (sk == NULL)
            gcs_server__op_fail(op, RAYC_ENOMEM);
        else
            gcs_server__op_del(op, GCS_TABLE_KV, sk, sklen);
        free(sk);
    }
    gcs_server__op_commit(op);
}

static void handle_kv_exists(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__KvExistsRequest *req = (const Rpc__KvExistsRequest *)m;
    Rpc__KvExistsReply r = RPC__KV_EXISTS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req_id;
    r.status = &st;
    r.exists = gcs_kv_exists(cl->srv->kv, req->ns, req->key.data, req->key.len);
    gcs_server__send(cl, MSG_KV_EXISTS_REPLY, &r.base);
}

/* ---------------------------------------------------------------- pub/sub */

static void handle_subscribe(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__SubscribeRequest *req = (const Rpc__SubscribeRequest *)m;
    int rc = gcs_pubsub_subscribe(cl->srv->pubsub, cl, req->channels);
    gcs_server__reply_status(cl, MSG_SUBSCRIBE_REPLY, req_id, rc,
                             rc == RAYC_EINVAL ? "unknown channel bits"
                             : rc              ? rayc_strerror(rc)
                                               : NULL);
}

/* ------------------------------------------------------- object directory */

/* Raylet -> GCS, batched, no reply. Updates from a node that is not ALIVE
 * are dropped: a late batch must not resurrect a dead node's copies. */
static void handle_object_location_update(gcs_client *cl, const ProtobufCMessage *m,
                                          uint64_t req_id)
{
    (void)req_id;
    const Rpc__ObjectLocationUpdate *req = (const Rpc__ObjectLocationUpdate *)m;
    gcs_server *srv = cl->srv;
    size_t n = req->n_updates;
    if (n == 0)
        return;
    Rpc__ObjectLocation *locs = calloc(n, sizeof(*locs));
    Rpc__ObjectLocation **changed = calloc(n, sizeof(*changed));
    if (locs == NULL || changed == NULL) {
        log_error("out of memory: dropped %zu object location updates", n);
        free(locs);
        free(changed);
        return;
    }
    gcs_op *op = gcs_server__op_new(srv, NULL, 0, 0, NULL, "object location update");
    size_t nchanged = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        locs[i] = *req->updates[i];
        if (locs[i].node_id.len == 0)
            locs[i].node_id = req->node_id;
        if (!gcs_node_is_alive(srv->nodes, locs[i].node_id.data, locs[i].node_id.len)) {
            bad++;
            continue;
        }
        int rc = gcs_objdir_apply(srv->objdir, &locs[i]);
        if (rc < 0) {
            bad++;
            continue;
        }
        if (rc == 0)
            continue;
        uint8_t key[GCS_OBJDIR_KEY_SIZE];
        gcs_objdir_storage_key(locs[i].object_id.data, locs[i].node_id.data, key);
        if (locs[i].removed) {
            gcs_server__op_del(op, GCS_TABLE_OBJECTS, key, sizeof(key));
        } else {
            Rpc__ObjectLocation stored = locs[i];
            stored.removed = false;
            gcs_server__op_put_msg(op, GCS_TABLE_OBJECTS, key, sizeof(key), &stored.base);
        }
        changed[nchanged++] = &locs[i];
    }
    if (bad)
        log_warn("%s: ignored %zu object location updates (bad ids or node not alive)",
                 conn_peer(cl->c), bad);
    gcs_pubsub_publish_objects(srv->pubsub, changed, nchanged);
    gcs_server__op_commit(op);
    free(locs);
    free(changed);
}

static void handle_get_object_locations(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    const Rpc__GetObjectLocationsRequest *req = (const Rpc__GetObjectLocationsRequest *)m;
    gcs_objdir *d = cl->srv->objdir;
    size_t total = 0;
    for (size_t i = 0; i < req->n_object_ids; i++)
        total += gcs_objdir_count(d, req->object_ids[i].data, req->object_ids[i].len);
    Rpc__ObjectLocation *locs = calloc(total ? total : 1, sizeof(*locs));
    Rpc__ObjectLocation **ptrs = calloc(total ? total : 1, sizeof(*ptrs));
    if (locs == NULL || ptrs == NULL) {
        free(locs);
        free(ptrs);
        gcs_server__reply_status(cl, MSG_GET_OBJECT_LOCATIONS_REPLY, req_id, RAYC_ENOMEM,
                                 "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < req->n_object_ids; i++)
        n +=
            gcs_objdir_get(d, req->object_ids[i].data, req->object_ids[i].len, locs + n, total - n);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &locs[i];
    Rpc__GetObjectLocationsReply r = RPC__GET_OBJECT_LOCATIONS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req_id;
    r.status = &st;
    r.n_locations = n;
    r.locations = ptrs;
    gcs_server__send(cl, MSG_GET_OBJECT_LOCATIONS_REPLY, &r.base);
    free(locs);
    free(ptrs);
}

/* ----------------------------------------------------------- task events */

/* Drivers and workers report task attempts in batches (no reply). */
static void handle_task_events(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    (void)req_id;
    gcs_task_add_batch(cl->srv->tasks, (const Rpc__TaskEventBatch *)m, cl->srv->metrics);
}

/* A raylet's answer to a dashboard's LogRequest (`rayc logs`). */
static void handle_log_reply(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id)
{
    (void)req_id;
    if (cl->srv->log_reply)
        cl->srv->log_reply(cl->srv->log_reply_arg, (const Rpc__LogReply *)m);
}

/* --------------------------------------------------------------- dispatch */

static const handler handlers[] = {
    [MSG_REGISTER_NODE_REQ] = {MSG_REGISTER_NODE_REPLY, ROLE(RAYLET), handle_register_node},
    [MSG_HEARTBEAT_REQ] = {MSG_HEARTBEAT_REPLY, ROLE(RAYLET), handle_heartbeat},
    [MSG_LIST_NODES_REQ] = {MSG_LIST_NODES_REPLY, ANY_ROLE, handle_list_nodes},
    [MSG_DRAIN_NODE_REQ] = {MSG_DRAIN_NODE_REPLY, ANY_ROLE, handle_drain_node},
    [MSG_ADD_JOB_REQ] = {MSG_ADD_JOB_REPLY, ANY_ROLE, handle_add_job},
    [MSG_FINISH_JOB_REQ] = {MSG_FINISH_JOB_REPLY, ANY_ROLE, handle_finish_job},
    [MSG_LIST_JOBS_REQ] = {MSG_LIST_JOBS_REPLY, ANY_ROLE, handle_list_jobs},
    [MSG_TASK_EVENTS] = {0, ROLE(DRIVER) | ROLE(WORKER), handle_task_events},
    [MSG_KV_PUT_REQ] = {MSG_KV_PUT_REPLY, ANY_ROLE, handle_kv_put},
    [MSG_KV_GET_REQ] = {MSG_KV_GET_REPLY, ANY_ROLE, handle_kv_get},
    [MSG_KV_DEL_REQ] = {MSG_KV_DEL_REPLY, ANY_ROLE, handle_kv_del},
    [MSG_KV_EXISTS_REQ] = {MSG_KV_EXISTS_REPLY, ANY_ROLE, handle_kv_exists},
    [MSG_SUBSCRIBE_REQ] = {MSG_SUBSCRIBE_REPLY, ANY_ROLE, handle_subscribe},
    [MSG_OBJECT_LOCATION_UPDATE] = {0, ROLE(RAYLET), handle_object_location_update},
    [MSG_GET_OBJECT_LOCATIONS_REQ] = {MSG_GET_OBJECT_LOCATIONS_REPLY, ANY_ROLE,
                                      handle_get_object_locations},
    [MSG_REGISTER_ACTOR_REQ] = {MSG_REGISTER_ACTOR_REPLY, ANY_ROLE, gcs_actor_rpc_register},
    [MSG_GET_ACTOR_REQ] = {MSG_GET_ACTOR_REPLY, ANY_ROLE, gcs_actor_rpc_get},
    [MSG_KILL_ACTOR_REQ] = {MSG_KILL_ACTOR_REPLY, ANY_ROLE, gcs_actor_rpc_kill},
    [MSG_LIST_ACTORS_REQ] = {MSG_LIST_ACTORS_REPLY, ANY_ROLE, gcs_actor_rpc_list},
    [MSG_ACTOR_CREATED] = {0, ROLE(RAYLET), gcs_actor_rpc_created},
    [MSG_ACTOR_DIED] = {0, ROLE(RAYLET), gcs_actor_rpc_died},
    [MSG_CREATE_PG_REQ] = {MSG_CREATE_PG_REPLY, ANY_ROLE, gcs_pg_rpc_create},
    [MSG_GET_PG_REQ] = {MSG_GET_PG_REPLY, ANY_ROLE, gcs_pg_rpc_get},
    [MSG_REMOVE_PG_REQ] = {MSG_REMOVE_PG_REPLY, ANY_ROLE, gcs_pg_rpc_remove},
    [MSG_LIST_PGS_REQ] = {MSG_LIST_PGS_REPLY, ANY_ROLE, gcs_pg_rpc_list},
    [MSG_BUNDLES_PREPARED] = {0, ROLE(RAYLET), gcs_pg_rpc_prepared},
    [MSG_LOG_REPLY] = {0, ROLE(RAYLET), handle_log_reply},
};

/* Every request but OBJECT_LOCATION_UPDATE has req_id as a uint64 field. */
static uint64_t req_id_of(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "req_id");
    if (f == NULL || f->type != PROTOBUF_C_TYPE_UINT64)
        return 0;
    return *(const uint64_t *)((const char *)m + f->offset);
}

static void dispatch(gcs_client *cl, uint16_t type, const ProtobufCMessage *m)
{
    const handler *h = type < ARRAY_SIZE(handlers) ? &handlers[type] : NULL;
    if (h == NULL || h->fn == NULL) {
        /* A frame meant for a raylet, or a reply: not ours to serve. */
        log_warn("%s sent %s, which the GCS does not serve: closing", conn_peer(cl->c),
                 msg_name(type));
        conn_close(cl->c);
        return;
    }
    uint64_t req_id = req_id_of(m);
    unsigned role_bit = cl->role >= 0 && cl->role < 32 ? 1u << cl->role : 0;
    if ((h->roles & role_bit) == 0) {
        log_warn("%s sent %s, which its role may not send", conn_peer(cl->c), msg_name(type));
        if (h->reply_type)
            gcs_server__reply_status(cl, h->reply_type, req_id, RAYC_EINVAL,
                                     "request not allowed for this connection's role");
        return;
    }
    h->fn(cl, m, req_id);
}

static void tick(gcs_server *srv)
{
    gcs_actor_manager_tick(srv);
    gcs_pg_tick(srv);
}

const gcs_services gcs_rpc_services = {
    .dispatch = dispatch,
    .node_dead = gcs_rpc_node_dead,
    .client_closed = client_closed,
    .tick = tick,
};
