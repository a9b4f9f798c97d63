/*
 * node_manager.c -- the raylet's wiring: creates the components, connects
 * their callbacks, listens, and routes frames; see node_manager.h.
 * Runs in the raylet's single event-loop thread.
 *
 * Who talks to whom (each arrow a direct call; everything flowing back is a
 * callback given here):
 *   task_manager -> placement, dependency_manager, lease, job_table,
 *                   client_registry, peers, worker_pool, object_manager
 *   object_manager, object_directory, job_table, peers -> gcs_session
 *   object_directory -> peers
 */
#include "node_manager.h"
#include "owner_relay.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "client_registry.h"
#include "conn.h"
#include "gcs_session.h"
#include "ids.h"
#include "job_table.h"
#include "listener.h"
#include "log.h"
#include "log_files.h"
#include "memory_monitor.h"
#include "metrics_server.h"
#include "node_metrics.h"
#include "net.h"
#include "object_directory.h"
#include "object_manager.h"
#include "peers.h"
#include "plasma_store.h"
#include "rayc.h"
#include "task_manager.h"
#include "util.h"
#include "worker_pool.h"

#define RAYLET_MAX_UNAUTHED 128 /* connections in their handshake at once */

struct node_manager {
    struct event_base *base;
    const rayc_config *cfg;
    node_id_t node_id;
    char node_hex[ID_HEX_MAX];
    char token[AUTH_TOKEN_LEN + 64];
    char hostname[256];
    char socket_path[1024];
    char ready_path[1024];
    char address[64]; /* ip:port of the raylet-to-raylet listener */
    char log_dir[1100];
    char env[5][1100]; /* workers' RAYC_RAYLET_SOCKET, RAYC_NODE_ID, RAYC_SESSION_DIR,
                          RAYC_NODE_IP (where an actor's worker takes calls), RAYC_GCS_ADDRESS */
    const char *envp[6];
    res_set total;
    uint64_t start_ms;
    bool shutting_down;

    int unix_fd, tcp_fd;
    listener *unix_l, *tcp_l; /* pause on EMFILE instead of spinning */
    conn_gate gate;

    plasma_store *store;
    gcs_session *gs;
    peers *peers;
    object_directory *odir;
    client_registry *clients;
    worker_pool *pool;
    job_table *jobs;
    object_manager *om;
    task_manager *tm;
    owner_relay *orel; /* borrowed refs: the way to their owners */

    /* memory monitor: sample every memory_monitor_refresh_ms */
    struct event *memory_ev;
    uint64_t memory_quiet_until; /* after a kill: let the memory go first */
    uint64_t oom_kills;

    /* --metrics-port (issue 15): the endpoint and what only the wiring sees */
    metrics_server *metrics;
    uint64_t tasks_submitted, tasks_forwarded, tasks_ok, tasks_failed, workers_died;

    char exit_reason[256];
};

/* A pull a client asked for; the client is found again by id when it ends. */
struct client_pull {
    node_manager *nm;
    worker_id_t who;
};

/* End the raylet with a one-line reason (printed by main). */
static void die(node_manager *nm, const char *reason)
{
    snprintf(nm->exit_reason, sizeof(nm->exit_reason), "%s", reason);
    log_error("exiting: %s", nm->exit_reason);
    event_base_loopbreak(nm->base);
}

const char *nm_exit_reason(const node_manager *nm)
{
    return nm->exit_reason[0] ? nm->exit_reason : NULL;
}

/* ---------------------------------------------------------------- GCS session */

static void gs_on_load(void *arg, gs_load *out)
{
    node_manager *nm = arg;
    out->available = *tm_available(nm->tm);
    plasma_store_stats(nm->store, &out->store);
    out->pending_tasks = tm_pending(nm->tm);
    out->oom_kills = nm->oom_kills;
    out->wants_view = tm_wants_view(nm->tm);
    out->n_waits = tm_waits(nm->tm, out->waits, GS_WAITS_MAX);
}

static void gs_on_view_changed(void *arg, bool nodes_changed)
{
    node_manager *nm = arg;
    tm_view_changed(nm->tm, nodes_changed);
}

/* A node died: everything that depended on it moves or fails. */
static void gs_on_node_died(void *arg, const node_id_t *node)
{
    node_manager *nm = arg;
    peers_node_died(nm->peers, node);
    om_node_died(nm->om, node);
    orel_node_died(nm->orel, node);
    tm_node_died(nm->tm, node);
    Rpc__NodeDied nd = RPC__NODE_DIED__INIT;
    nd.node_id.data = (uint8_t *)node->b;
    nd.node_id.len = NODE_ID_SIZE;
    creg_broadcast(nm->clients, MSG_NODE_DIED, &nd.base);
}

static void gs_on_job_ended(void *arg, uint32_t job_id)
{
    node_manager *nm = arg;
    tm_job_ended(nm->tm, job_id);
}

static void gs_on_fatal(void *arg, const char *reason)
{
    die(arg, reason);
}

static void gs_on_stopped(void *arg)
{
    node_manager *nm = arg;
    event_base_loopbreak(nm->base);
}

static void gs_on_create_actor(void *arg, const Rpc__ActorInfo *actor)
{
    node_manager *nm = arg;
    tm_create_actor(nm->tm, actor);
}

static void gs_on_kill_actor(void *arg, const Rpc__KillActorWorker *k)
{
    node_manager *nm = arg;
    tm_kill_actor(nm->tm, k);
}

static void gs_on_pg_message(void *arg, uint16_t type, const ProtobufCMessage *msg)
{
    node_manager *nm = arg;
    tm_pg_message(nm->tm, type, msg);
}

/* `rayc logs`: the GCS relays a dashboard request for this node's logs. */
static void gs_on_log_request(void *arg, const Rpc__LogRequest *rq)
{
    node_manager *nm = arg;
    log_answer a;
    log_files_answer(nm->log_dir, rq, &a);
    gs_send(nm->gs, MSG_LOG_REPLY, &a.reply.base);
    log_answer_free(&a);
}

static const gs_hooks gcs_hooks = {
    .load = gs_on_load,
    .view_changed = gs_on_view_changed,
    .node_died = gs_on_node_died,
    .job_ended = gs_on_job_ended,
    .fatal = gs_on_fatal,
    .stopped = gs_on_stopped,
    .create_actor = gs_on_create_actor,
    .kill_actor = gs_on_kill_actor,
    .pg_message = gs_on_pg_message,
    .log_request = gs_on_log_request,
};

/* ---------------------------------------------------------------- local clients */

static bool client_hello(void *arg, client *cl)
{
    node_manager *nm = arg;
    if (cl->role == RPC__ROLE__ROLE_WORKER &&
        (cl->w = wpool_connected(nm->pool, &cl->id, cl)) == NULL) {
        log_warn("closing %s: not a worker this raylet started", conn_peer(cl->c));
        return false;
    }
    return true;
}

static void client_ready(void *arg, client *cl)
{
    node_manager *nm = arg;
    if (cl->w)
        tm_schedule(nm->tm); /* a new idle worker: queued tasks can go to it */
}

/* A client's pull finished: tell it if the object cannot be had. */
static void on_client_pull_done(void *arg, const object_id_t *id, int status, const char *msg)
{
    struct client_pull *cp = arg;
    client *cl = creg_by_worker(cp->nm->clients, &cp->who);
    free(cp);
    if (cl && cl->npulls > 0)
        cl->npulls--;
    if (status == RAYC_OK || cl == NULL)
        return;
    Rpc__ObjectLost lost = RPC__OBJECT_LOST__INIT;
    lost.object_id.data = (uint8_t *)id->b;
    lost.object_id.len = OBJECT_ID_SIZE;
    lost.message = (char *)(msg ? msg : "object lost");
    conn_send(cl->c, MSG_OBJECT_LOST, &lost.base);
}

/* Pull what a client asks for and this node lacks. Each pull costs a record
 * and GCS lookups for seconds, so a client has at most
 * PLASMA_CLIENT_MAX_WAITING in flight, asked at most MSG_STORE_MAX_IDS at a
 * time; the rest is not pulled (logged). */
static void pull_for_client(node_manager *nm, client *cl, Rpc__PullObjects *m)
{
    /* Objects of other owners that are not here: their owner may hold them
     * in its memory only, or be gone (owner_relay.h). */
    for (size_t i = 0; i < m->n_object_ids && i < OREL_PER_REQUEST; i++) {
        object_id_t id;
        if (m->object_ids[i].len != OBJECT_ID_SIZE)
            continue;
        memcpy(id.b, m->object_ids[i].data, OBJECT_ID_SIZE);
        if (plasma_object_state(nm->store, &id, NULL) == PLASMA_ABSENT)
            orel_get(nm->orel, cl, &id);
    }
    int nview = 0;
    gs_view(nm->gs, &nview);
    if (nview <= 1)
        return; /* a one-node cluster has nowhere to pull from */
    if (m->n_object_ids > MSG_STORE_MAX_IDS) {
        log_warn("%s asked to pull %zu objects at once (at most %d): none pulled", conn_peer(cl->c),
                 m->n_object_ids, MSG_STORE_MAX_IDS);
        return;
    }
    for (size_t i = 0; i < m->n_object_ids; i++) {
        if (cl->npulls >= PLASMA_CLIENT_MAX_WAITING) {
            log_warn("%s has %u pulls in flight: %zu more not pulled", conn_peer(cl->c), cl->npulls,
                     m->n_object_ids - i);
            return;
        }
        if (m->object_ids[i].len != OBJECT_ID_SIZE)
            continue;
        object_id_t id;
        memcpy(id.b, m->object_ids[i].data, OBJECT_ID_SIZE);
        if (plasma_object_state(nm->store, &id, NULL) != PLASMA_ABSENT)
            continue;
        struct client_pull *cp = malloc(sizeof(*cp));
        if (cp == NULL)
            return;
        cp->nm = nm;
        cp->who = cl->id;
        cl->npulls++;
        om_pull(nm->om, &id, NULL, on_client_pull_done, cp);
    }
}

/* An actor's worker made these store objects (call returns): they belong
 * to the caller, as a task's returns do (fate-sharing with a local owner;
 * kept for a remote one until it frees them). Only objects the worker owns
 * now (it created them, or they were handed to it) change hands: a worker
 * cannot take another client's object from it, which would let it keep
 * the object alive past its owner or stop its owner from freeing it. */
static void give_to_owner(node_manager *nm, client *cl, const Rpc__ObjectOwner *m)
{
    if (m->owner_id.len != WORKER_ID_SIZE)
        return;
    worker_id_t id;
    memcpy(id.b, m->owner_id.data, WORKER_ID_SIZE);
    client *owner = creg_by_worker(nm->clients, &id);
    size_t refused = 0;
    for (size_t i = 0; i < m->n_object_ids; i++) {
        object_id_t oid;
        worker_id_t now;
        if (m->object_ids[i].len != OBJECT_ID_SIZE) {
            refused++;
            continue;
        }
        memcpy(oid.b, m->object_ids[i].data, OBJECT_ID_SIZE);
        if (!plasma_object_owner(nm->store, &oid, &now) ||
            memcmp(now.b, cl->id.b, WORKER_ID_SIZE) != 0) {
            refused++;
            continue;
        }
        if (owner && owner->pc)
            plasma_set_owner(nm->store, &oid, owner->pc);
        else
            plasma_set_remote_owner(nm->store, &oid, &id); /* kept for it */
    }
    if (refused > 0)
        log_warn("%s: ObjectOwner names %zu of %zu objects the worker does not own here: not "
                 "given away",
                 conn_peer(cl->c), refused, m->n_object_ids);
}

/* The GCS's verdict on a driver's JobConfig. Only a driver the GCS knows as
 * the job's becomes its driver here (gets its workers' output; its exit ends
 * the job here); another is closed. A driver gone before the verdict ended
 * its job already, unless the job was not its own yet: end it now. */
static void on_job_claim(void *arg, uint32_t job_id, const worker_id_t *driver, const char *refused)
{
    node_manager *nm = arg;
    client *cl = creg_by_worker(nm->clients, driver);
    if (refused != NULL) {
        log_warn("%s: JobConfig of job %u refused: %s", cl ? conn_peer(cl->c) : "a driver", job_id,
                 refused);
        if (cl != NULL)
            conn_close(cl->c);
    } else if (cl != NULL && cl->role == RPC__ROLE__ROLE_DRIVER) {
        cl->job_id = job_id;
    } else {
        tm_job_ended(nm->tm, job_id);
    }
}

/* Frames that only a worker may send. false if cl is not one. */
static bool worker_frame(node_manager *nm, client *cl, uint16_t type, ProtobufCMessage *msg)
{
    if (cl->w == NULL)
        return false;
    switch (type) {
    case MSG_TASK_DONE: {
        const Rpc__TaskDone *d = (const Rpc__TaskDone *)msg;
        if (d->status == NULL || d->status->code == RAYC_OK)
            nm->tasks_ok++;
        else
            nm->tasks_failed++;
        tm_task_done(nm->tm, cl, (Rpc__TaskDone *)msg);
        return true;
    }
    case MSG_WORKER_BLOCKED:
        tm_worker_blocked(nm->tm, cl->w, (Rpc__WorkerBlocked *)msg);
        return true;
    case MSG_WORKER_UNBLOCKED:
        tm_worker_unblocked(nm->tm, cl->w);
        return true;
    case MSG_ACTOR_DIED:
        tm_actor_exiting(nm->tm, cl->w, (Rpc__ActorDied *)msg);
        return true;
    case MSG_TASKS_GIVEN_BACK:
        tm_tasks_given_back(nm->tm, cl->w, (Rpc__TasksGivenBack *)msg);
        return true;
    case MSG_OBJECT_OWNER:
        give_to_owner(nm, cl, (Rpc__ObjectOwner *)msg);
        return true;
    case MSG_STREAM_ITEM:
        tm_stream_item(nm->tm, cl, (Rpc__StreamItem *)msg);
        return true;
    }
    return false;
}

static void client_frame(void *arg, client *cl, uint16_t type, ProtobufCMessage *msg)
{
    node_manager *nm = arg;
    switch (type) {
    case MSG_SUBMIT_TASK:
        nm->tasks_submitted++;
        conn_keep_msg(cl->c);
        tm_submit(nm->tm, cl, (Rpc__SubmitTask *)msg);
        return;
    case MSG_CANCEL_TASK:
        tm_cancel(nm->tm, cl, (Rpc__CancelTask *)msg);
        return;
    case MSG_STREAM_ACK:
        tm_stream_ack(nm->tm, (Rpc__StreamAck *)msg);
        return;
    case MSG_PULL_OBJECTS:
        pull_for_client(nm, cl, (Rpc__PullObjects *)msg);
        return;
    case MSG_DELETE_OBJECTS: {
        /* Here and on other nodes, only what cl owns is freed. */
        Rpc__DeleteObjects *del = (Rpc__DeleteObjects *)msg;
        plasma_handle(nm->store, cl->pc, type, msg);
        odir_free_everywhere(nm->odir, &cl->id, del->object_ids, del->n_object_ids);
        orel_owner_deleted(nm->orel, cl, del->object_ids, del->n_object_ids);
        return;
    }
    case MSG_OWNER_REQUEST:
    case MSG_OWNER_REPLY:
        orel_client_frame(nm->orel, cl, type, msg);
        return;
    case MSG_JOB_CONFIG:
        if (cl->role == RPC__ROLE__ROLE_DRIVER) {
            Rpc__JobConfig *jc = (Rpc__JobConfig *)msg;
            jt_config(nm->jobs, jc->job_id, &cl->id, jc->code_hashes, jc->n_code_hashes,
                      on_job_claim, nm);
            return;
        }
        break;
    case MSG_TASK_DONE:
    case MSG_WORKER_BLOCKED:
    case MSG_WORKER_UNBLOCKED:
    case MSG_ACTOR_DIED:
    case MSG_OBJECT_OWNER:
    case MSG_STREAM_ITEM:
    case MSG_TASKS_GIVEN_BACK:
        if (worker_frame(nm, cl, type, msg))
            return;
        break;
    default:
        if (plasma_handle(nm->store, cl->pc, type, msg))
            return;
    }
    log_warn("closing %s: unexpected %s", conn_peer(cl->c), msg_name(type));
    conn_close(cl->c);
}

static void client_closed(void *arg, client *cl)
{
    node_manager *nm = arg;
    if (cl->w)
        wpool_disconnected(nm->pool, cl->w);
    if (cl->pc)
        tm_client_gone(nm->tm, cl);
    tm_schedule(nm->tm);
}

static const creg_hooks client_hooks = {client_hello, client_ready, client_frame, client_closed};

/* ---------------------------------------------------------------- peers */

static void peer_frame(void *arg, conn *c, const node_id_t *from, uint16_t type,
                       ProtobufCMessage *msg)
{
    node_manager *nm = arg;
    switch (type) {
    case MSG_FORWARD_TASK:
        nm->tasks_forwarded++;
        conn_keep_msg(c);
        tm_forwarded(nm->tm, from, (Rpc__ForwardTask *)msg);
        return;
    case MSG_TASK_DONE:
        tm_remote_done(nm->tm, (Rpc__TaskDone *)msg);
        return;
    case MSG_STREAM_ITEM:
        tm_remote_stream_item(nm->tm, (Rpc__StreamItem *)msg);
        return;
    case MSG_STREAM_ACK:
        tm_stream_ack(nm->tm, (Rpc__StreamAck *)msg);
        return;
    case MSG_CANCEL_TASK:
        tm_cancel(nm->tm, NULL, (Rpc__CancelTask *)msg);
        return;
    case MSG_OWNER_REQUEST:
    case MSG_OWNER_REPLY:
        orel_peer_frame(nm->orel, from, type, msg);
        return;
    case MSG_WORKER_OUTPUT: {
        /* Output of a worker on that node whose job's driver is here. */
        Rpc__WorkerOutput *out = (Rpc__WorkerOutput *)msg;
        client *drv = creg_driver_of_job(nm->clients, out->job_id);
        if (drv)
            conn_send(drv->c, MSG_WORKER_OUTPUT, &out->base);
        return;
    }
    case MSG_DELETE_OBJECTS: {
        /* The owner freed these: drop our copies. */
        Rpc__DeleteObjects *del = (Rpc__DeleteObjects *)msg;
        for (size_t i = 0; i < del->n_object_ids; i++) {
            if (del->object_ids[i].len != OBJECT_ID_SIZE)
                continue;
            object_id_t id;
            memcpy(id.b, del->object_ids[i].data, OBJECT_ID_SIZE);
            plasma_delete(nm->store, &id);
        }
        return;
    }
    default:
        if (om_handle(nm->om, c, type, msg))
            return;
    }
    log_warn("closing %s: unexpected %s from a raylet", conn_peer(c), msg_name(type));
    conn_close(c);
}

static void peer_closed(void *arg, conn *c)
{
    node_manager *nm = arg;
    om_peer_closed(nm->om, c);
}

static const peers_hooks peer_hooks = {peer_frame, peer_closed};

/* ---------------------------------------------------------------- worker pool */

/* A line of a worker's output goes to its job's driver, here or on the
 * driver's node. */
static void pool_output(void *arg, worker *w, bool is_err, const char *data, size_t n)
{
    node_manager *nm = arg;
    Rpc__WorkerOutput out = RPC__WORKER_OUTPUT__INIT;
    out.pid = w->pid;
    out.node = nm->node_hex;
    out.is_err = is_err;
    out.data.data = (uint8_t *)data;
    out.data.len = n;
    out.job_id = w->job_id;
    client *drv = creg_driver_of_job(nm->clients, w->job_id);
    if (drv) {
        conn_send(drv->c, MSG_WORKER_OUTPUT, &out.base);
        return;
    }
    /* The driver is on another node: its raylet passes the lines on. */
    node_id_t node;
    conn *c;
    if (jt_driver_node(nm->jobs, w->job_id, &node) && (c = peers_get(nm->peers, &node)) != NULL)
        conn_send(c, MSG_WORKER_OUTPUT, &out.base);
}

static void pool_died(void *arg, worker *w)
{
    node_manager *nm = arg;
    nm->workers_died++;
    tm_worker_died(nm->tm, w);
}

static void pool_reaped(void *arg)
{
    node_manager *nm = arg;
    tm_schedule(nm->tm);
}

static const wpool_hooks pool_hooks = {pool_output, pool_died, pool_reaped};

/* ---------------------------------------------------------------- object manager, jobs */

static conn *om_peer(void *ctx, const node_id_t *node)
{
    node_manager *nm = ctx;
    return peers_get(nm->peers, node);
}

static bool om_node_alive(void *ctx, const node_id_t *node)
{
    node_manager *nm = ctx;
    const view_node *v = gs_view_node(nm->gs, node);
    return v != NULL && v->alive;
}

static void om_no_holder(void *ctx, const object_id_t *id)
{
    node_manager *nm = ctx;
    orel_get(nm->orel, NULL, id); /* a task's argument may be a borrowed inline object */
}

static void orel_keep_pulling(void *ctx, const object_id_t *id)
{
    node_manager *nm = ctx;
    om_keep(nm->om, id);
}

static int om_gcs_call(void *ctx, uint16_t type, ProtobufCMessage *req, gs_reply_cb cb, void *arg)
{
    node_manager *nm = ctx;
    return gs_call(nm->gs, type, req, cb, arg);
}

/* A job's code became ready (or failed): its waiting tasks can move. */
static void on_job_change(void *arg)
{
    node_manager *nm = arg;
    if (nm->tm)
        tm_schedule(nm->tm);
}

/* ---------------------------------------------------------------- listeners */

/* New connections from the listeners. Until their handshake they count
 * against one gate for both sockets (a cap on unauthenticated peers). */
static void on_unix_accept(void *arg, int fd)
{
    node_manager *nm = arg;
    creg_accept(nm->clients, fd, &nm->gate);
}

static void on_tcp_accept(void *arg, int fd)
{
    node_manager *nm = arg;
    peers_accept(nm->peers, fd, &nm->gate);
}

/* ---------------------------------------------------------------- life cycle */

static int init_resources(node_manager *nm, char *err, size_t errlen)
{
    const rayc_config *cfg = nm->cfg;
    double cpus = cfg->num_cpus < 0 ? sys_num_cpus() : cfg->num_cpus;
    uint64_t mem = cfg->memory ? cfg->memory : sys_memory_bytes() / 10 * 7;
    if (cfg->num_gpus < 0) {
        snprintf(err, errlen, "--num-gpus must be >= 0");
        return -1;
    }
    res_set_amount(&nm->total, "CPU", cpus);
    res_set_amount(&nm->total, "GPU", cfg->num_gpus);
    res_set_amount(&nm->total, "memory", (double)mem);
    return res_parse(&nm->total, cfg->resources, err, errlen);
}

/* Identity, paths and resources, before any component exists. */
static int init_self(node_manager *nm, char *err, size_t errlen)
{
    const rayc_config *cfg = nm->cfg;
    nm->unix_fd = nm->tcp_fd = -1;
    nm->start_ms = wall_ms();
    nm->node_id = node_id_random();
    id_hex(nm->node_id.b, NODE_ID_SIZE, nm->node_hex);
    gethostname(nm->hostname, sizeof(nm->hostname) - 1);
    if (cfg->session_dir[0] == '\0') {
        snprintf(err, errlen, "--session-dir is required");
        return -1;
    }
    if (auth_token_load(cfg->token, cfg->token_file, nm->token, sizeof(nm->token), err, errlen) !=
        0)
        return -1;
    if (init_resources(nm, err, errlen) != 0)
        return -1;
    snprintf(nm->socket_path, sizeof(nm->socket_path), "%s/sockets/raylet", cfg->session_dir);
    snprintf(nm->ready_path, sizeof(nm->ready_path), "%s/raylet.ready", cfg->session_dir);
    snprintf(nm->log_dir, sizeof(nm->log_dir), "%s/logs", cfg->session_dir);
    snprintf(nm->env[0], sizeof(nm->env[0]), "RAYC_RAYLET_SOCKET=%s", nm->socket_path);
    snprintf(nm->env[1], sizeof(nm->env[1]), "RAYC_NODE_ID=%s", nm->node_hex);
    snprintf(nm->env[2], sizeof(nm->env[2]), "RAYC_SESSION_DIR=%s", cfg->session_dir);
    snprintf(nm->env[3], sizeof(nm->env[3]), "RAYC_NODE_IP=%s", cfg->node_ip_address);
    snprintf(nm->env[4], sizeof(nm->env[4]), "RAYC_GCS_ADDRESS=%s", cfg->gcs_address);
    for (int i = 0; i < 5; i++)
        nm->envp[i] = nm->env[i];
    return 0;
}

static worker_pool *new_pool(node_manager *nm, char *err, size_t errlen)
{
    double cpus = res_get(&nm->total, "CPU");
    wpool_opts o = {
        .base = nm->base,
        .log_dir = nm->log_dir,
        .env = nm->envp,
        .prestart = (int)cpus,
        .max = nm->cfg->max_workers > 0 ? (int)nm->cfg->max_workers : (int)(cpus * 4) + 16,
        .idle_timeout_ms = nm->cfg->idle_worker_timeout_ms,
        .zygote = nm->cfg->worker_zygote,
    };
    return wpool_new(&o, &pool_hooks, nm, err, errlen);
}

/* The components, each given only what it uses. */
static int init_components(node_manager *nm, char *err, size_t errlen)
{
    struct event_base *base = nm->base;
    const rayc_config *cfg = nm->cfg;
    gs_node self = {nm->node_id,    nm->node_hex, nm->address, nm->socket_path, nm->hostname,
                    nm->ready_path, nm->token,    &nm->total,  nm->start_ms};
    if ((nm->store = plasma_store_new(base, cfg, err, errlen)) == NULL ||
        plasma_store_start_io(nm->store, err, errlen) != 0 ||
        (nm->gs = gs_new(base, cfg, &self, &gcs_hooks, nm, err, errlen)) == NULL ||
        (nm->pool = new_pool(nm, err, errlen)) == NULL)
        return -1;
    nm->peers = peers_new(base, cfg, &nm->node_id, nm->token, nm->gs, &peer_hooks, nm);
    nm->odir = odir_new(base, cfg, &nm->node_id, nm->gs, nm->peers);
    nm->clients = creg_new(base, cfg, nm->store, &nm->node_id, &client_hooks, nm);
    nm->jobs = jt_new(nm->base, cfg, nm->gs, on_job_change, nm);
    om_env oe = {om_peer, om_node_alive, om_gcs_call, nm, om_no_holder};
    nm->om = om_new(base, cfg, nm->store, &nm->node_id, &oe);
    orel_env re = {nm->clients, nm->gs, nm->store, om_peer, orel_keep_pulling, nm};
    nm->orel = orel_new(base, &nm->node_id, &re);
    if (!nm->peers || !nm->odir || !nm->clients || !nm->jobs || !nm->om || !nm->orel) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    plasma_store_set_hooks(nm->store, &nm->node_id, odir_store_hooks(), nm->odir);
    tm_deps d = {cfg,       nm->node_id, &nm->total, nm->store, nm->gs,  nm->clients,
                 nm->peers, nm->pool,    nm->jobs,   nm->om,    nm->base};
    if ((nm->tm = tm_new(&d)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

node_manager *nm_new(struct event_base *base, const rayc_config *cfg, char *err, size_t errlen)
{
    node_manager *nm = calloc(1, sizeof(*nm));
    if (nm == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    nm->base = base;
    nm->cfg = cfg;
    if (init_self(nm, err, errlen) != 0 || init_components(nm, err, errlen) != 0) {
        nm_free(nm);
        return NULL;
    }
    return nm;
}

static int listen_all(node_manager *nm, char *err, size_t errlen)
{
    const rayc_config *cfg = nm->cfg;
    char dir[1100];
    snprintf(dir, sizeof(dir), "%s/sockets", cfg->session_dir);
    if (mkdir_p(dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    nm->unix_fd = net_unix_listen(nm->socket_path, 0600, 512);
    if (nm->unix_fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", nm->socket_path, strerror(errno));
        return -1;
    }
    int port = 0;
    nm->tcp_fd = net_tcp_listen(cfg->node_ip_address, (int)cfg->raylet_port, 128, &port);
    if (nm->tcp_fd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%lld: %s", cfg->node_ip_address,
                 (long long)cfg->raylet_port, strerror(errno));
        return -1;
    }
    snprintf(nm->address, sizeof(nm->address), "%s:%d", cfg->node_ip_address, port);
    net_set_nonblock(nm->unix_fd, true);
    net_set_nonblock(nm->tcp_fd, true);
    conn_gate_init(&nm->gate, RAYLET_MAX_UNAUTHED);
    nm->unix_l = listener_new(nm->base, nm->unix_fd, "raylet unix socket", on_unix_accept, nm);
    nm->tcp_l = listener_new(nm->base, nm->tcp_fd, "raylet tcp", on_tcp_accept, nm);
    if (nm->unix_l == NULL || nm->tcp_l == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- memory monitor */

#define OOM_QUIET_MS 1000 /* after a kill, the next one waits this long */

/* Ray's OOM killer: when the node's memory use passes the threshold, kill
 * one worker (memory_monitor.h picks it) before the kernel's OOM killer
 * picks something worse, such as this raylet. */
static void on_memory_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node_manager *nm = arg;
    mm_usage u;
    if (now_ms() < nm->memory_quiet_until || mm_read(&MM_SYSTEM_PATHS, &u) != 0 ||
        !mm_over(&u, nm->cfg->memory_usage_threshold))
        return;
    if (tm_oom_kill(nm->tm, nm->node_hex, &u, nm->cfg->memory_usage_threshold) > 0) {
        nm->oom_kills++;
        nm->memory_quiet_until = now_ms() + OOM_QUIET_MS;
    }
}

static int start_memory_monitor(node_manager *nm)
{
    int64_t ms = nm->cfg->memory_monitor_refresh_ms;
    if (ms <= 0)
        return 0;
    nm->memory_ev = event_new(nm->base, -1, EV_PERSIST, on_memory_tick, nm);
    if (nm->memory_ev == NULL)
        return -1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return event_add(nm->memory_ev, &tv);
}

/* GET /metrics: the components' numbers, read at scrape time. */
static void write_metrics(void *arg, FILE *f)
{
    node_manager *nm = arg;
    node_metrics_src s = {
        .node_hex = nm->node_hex,
        .workers_alive = wpool_size(nm->pool),
        .workers_starting = wpool_starting(nm->pool),
        .workers_started = wpool_started(nm->pool),
        .workers_died = nm->workers_died,
        .tasks_submitted = nm->tasks_submitted,
        .tasks_forwarded = nm->tasks_forwarded,
        .tasks_ok = nm->tasks_ok,
        .tasks_failed = nm->tasks_failed,
        .pending = tm_pending(nm->tm),
        .infeasible = tm_infeasible(nm->tm),
        .oom_kills = nm->oom_kills,
        .total = &nm->total,
        .available = tm_available(nm->tm),
    };
    plasma_store_stats(nm->store, &s.store);
    om_stats(nm->om, &s.bytes_in, &s.bytes_out, &s.pulls_done, &s.pulls_failed);
    node_metrics_write(f, &s);
}

/* --metrics-port: a port that cannot be bound is logged, not fatal (like
 * the dashboard: the node matters more than its numbers). */
static void start_metrics(node_manager *nm)
{
    if (nm->cfg->metrics_port < 0)
        return;
    char err[256];
    nm->metrics = msrv_new(nm->base, nm->cfg->node_ip_address, (int)nm->cfg->metrics_port,
                           nm->token, write_metrics, nm, err, sizeof(err));
    if (nm->metrics == NULL)
        log_error("metrics disabled: %s", err);
    else
        log_info("metrics at http://%s:%d/metrics (token required)", nm->cfg->node_ip_address,
                 msrv_port(nm->metrics));
}

int nm_start(node_manager *nm, char *err, size_t errlen)
{
    if (listen_all(nm, err, errlen) != 0)
        return -1;
    log_info("raylet %s: local socket %s, peers at %s, resources %s, object store %llu bytes "
             "(prefault took %llu us)",
             nm->node_hex, nm->socket_path, nm->address,
             res_format(&nm->total, (char[512]){0}, 512),
             (unsigned long long)plasma_store_capacity(nm->store),
             (unsigned long long)plasma_store_prefault_us(nm->store));
    wpool_prestart(nm->pool, (int)res_get(&nm->total, "CPU"));
    start_metrics(nm);
    if (start_memory_monitor(nm) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    gs_start(nm->gs);
    if (nm->exit_reason[0]) {
        snprintf(err, errlen, "%s", nm->exit_reason);
        return -1;
    }
    return 0;
}

void nm_shutdown(node_manager *nm)
{
    if (nm->shutting_down) {
        event_base_loopbreak(nm->base);
        return;
    }
    nm->shutting_down = true;
    log_info("shutting down");
    if (nm->om)
        om_shutdown(nm->om);
    if (gs_drain(nm->gs) != 0)
        event_base_loopbreak(nm->base);
}

void nm_free(node_manager *nm)
{
    if (nm == NULL)
        return;
    /* Connections hold events on the base; the base is freed by main after
     * us, so close them and let their pending closers run first. */
    /* Stop accepting first: the loop turn below would otherwise accept a
     * connection nobody closes (a leak seen under ASan). */
    nm->shutting_down = true; /* a signal now only breaks the loop turns below */
    listener_free(nm->unix_l);
    listener_free(nm->tcp_l);
    nm->unix_l = nm->tcp_l = NULL;
    msrv_free(nm->metrics);
    nm->metrics = NULL;
    if (nm->gs)
        gs_stop(nm->gs);
    creg_close_all(nm->clients);
    peers_close_all(nm->peers);
    /* A closer may activate another (a conn closed from an on_close): a few
     * turns let every one run, so nothing is left for the base's free. */
    for (int i = 0; i < 8; i++)
        event_base_loop(nm->base, EVLOOP_NONBLOCK);
    if (nm->memory_ev)
        event_free(nm->memory_ev);
    if (nm->unix_fd >= 0) {
        close(nm->unix_fd);
        unlink(nm->socket_path);
    }
    if (nm->tcp_fd >= 0)
        close(nm->tcp_fd);
    if (nm->ready_path[0])
        unlink(nm->ready_path);
    orel_free(nm->orel);
    om_free(nm->om);
    wpool_free(nm->pool);
    tm_free(nm->tm);
    jt_free(nm->jobs);
    creg_free(nm->clients);
    odir_free(nm->odir);
    peers_free(nm->peers);
    gs_free(nm->gs);
    plasma_store_free(nm->store);
    free(nm);
}
