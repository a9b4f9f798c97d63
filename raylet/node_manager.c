/*
 * node_manager.c -- the raylet's GCS session, listeners and client dispatch.
 * Runs in the raylet's single event-loop thread.
 *
 * GCS session state machine:
 *   CONNECTING --Hello/Handshake ok--> REGISTERING --RegisterNode ok--> REGISTERED
 *   any state --connection lost--> BACKOFF --timer--> CONNECTING
 * Until the first registration succeeds every failure is fatal (the user is
 * told at once that the head is unreachable or refused the token). After it,
 * a lost GCS is retried with exponential back-off for gcs_reconnect_timeout_ms
 * and the node re-registers under the same node id, keeping its workers and
 * objects.
 */
#include "node_manager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "ids.h"
#include "log.h"
#include "net.h"
#include "object_manager.h"
#include "plasma_store.h"
#include "raylet_int.h"
#include "rayc.h"
#include "task_manager.h"
#include "worker_pool.h"
#include "util.h"

enum { GCS_BACKOFF, GCS_CONNECTING, GCS_REGISTERING, GCS_REGISTERED };

/* One object-location change waiting to be sent to the GCS. */
struct loc_rec {
    object_id_t id;
    worker_id_t owner;
    uint64_t size;
    bool removed;
    bool cancelled; /* an add undone by a remove in the same batch */
};

/* A pull a client asked for; the client is found again by id when it ends. */
struct client_pull {
    node_manager *nm;
    worker_id_t who;
};

/* A request a raylet module sent to the GCS, waiting for its reply. */
struct gcs_call {
    uint64_t req_id;
    nm_gcs_cb cb;
    void *arg;
    struct gcs_call *next;
};

static void gcs_connect(node_manager *nm);

/* ---------------------------------------------------------------- helpers */

/* End the raylet with a one-line reason (printed by main). */
static void die(node_manager *nm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die(node_manager *nm, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm->exit_reason, sizeof(nm->exit_reason), fmt, ap);
    va_end(ap);
    log_error("exiting: %s", nm->exit_reason);
    event_base_loopbreak(nm->base);
}

const char *nm_exit_reason(const node_manager *nm)
{
    return nm->exit_reason[0] ? nm->exit_reason : NULL;
}

static Rpc__Resource **resources_msg(const res_set *set, Rpc__Resource *storage,
                                     Rpc__Resource **ptrs)
{
    for (int i = 0; i < set->n; i++) {
        rpc__resource__init(&storage[i]);
        storage[i].name = (char *)set->name[i];
        storage[i].amount = set->amount[i];
        ptrs[i] = &storage[i];
    }
    return ptrs;
}

/* -------------------------------------------------------------- GCS session */

static void send_register(node_manager *nm)
{
    Rpc__Resource rt[RES_MAX], ra[RES_MAX];
    Rpc__Resource *pt[RES_MAX], *pa[RES_MAX];
    Rpc__NodeInfo ni = RPC__NODE_INFO__INIT;
    ni.node_id.data = nm->node_id.b;
    ni.node_id.len = NODE_ID_SIZE;
    ni.address = nm->address;
    ni.socket_path = nm->socket_path;
    ni.hostname = nm->hostname;
    ni.session_dir = nm->cfg->session_dir;
    ni.n_resources_total = (size_t)nm->total.n;
    ni.resources_total = resources_msg(&nm->total, rt, pt);
    ni.n_resources_available = (size_t)nm->available.n;
    ni.resources_available = resources_msg(&nm->available, ra, pa);
    ni.state = RPC__NODE_STATE__NODE_ALIVE;
    ni.start_time_ms = nm->start_ms;
    ni.is_head = nm->cfg->head;
    plasma_stats st;
    plasma_store_stats(nm->store, &st);
    ni.store_capacity = st.capacity;
    ni.store_used = st.used;
    ni.store_objects = st.objects;
    ni.spilled_bytes = st.spilled_bytes;

    Rpc__RegisterNodeRequest req = RPC__REGISTER_NODE_REQUEST__INIT;
    req.req_id = ++nm->next_req_id;
    req.node = &ni;
    nm->gcs_state = GCS_REGISTERING;
    conn_send(nm->gcs, MSG_REGISTER_NODE_REQ, &req.base);
}

static void send_heartbeat(node_manager *nm)
{
    Rpc__Resource ra[RES_MAX];
    Rpc__Resource *pa[RES_MAX];
    Rpc__HeartbeatRequest hb = RPC__HEARTBEAT_REQUEST__INIT;
    hb.req_id = ++nm->next_req_id;
    hb.node_id.data = nm->node_id.b;
    hb.node_id.len = NODE_ID_SIZE;
    hb.n_resources_available = (size_t)nm->available.n;
    hb.resources_available = resources_msg(&nm->available, ra, pa);
    plasma_stats st;
    plasma_store_stats(nm->store, &st);
    hb.store_capacity = st.capacity;
    hb.store_used = st.used;
    hb.store_objects = st.objects;
    hb.spilled_bytes = st.spilled_bytes;
    hb.pending_tasks = tm_pending(nm->tm);
    conn_send(nm->gcs, MSG_HEARTBEAT_REQ, &hb.base);
    nm->last_report_ms = now_ms();
    nm->last_reported = nm->available;
}

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node_manager *nm = arg;
    if (nm->gcs && nm->gcs_state == GCS_REGISTERED)
        send_heartbeat(nm);
}

static bool same_resources(const res_set *a, const res_set *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (res_get(b, a->name[i]) != a->amount[i])
            return false;
    return true;
}

/* Every 100 ms: report our load at once when it changed (Ray's resource
 * reports), so other raylets place work on current numbers. */
static void on_report_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node_manager *nm = arg;
    if (nm->gcs && nm->gcs_state == GCS_REGISTERED &&
        (!same_resources(&nm->available, &nm->last_reported) || tm_wants_view(nm->tm)))
        send_heartbeat(nm);
}

static void write_ready_file(node_manager *nm)
{
    char line[ID_HEX_MAX + 2];
    int n = snprintf(line, sizeof(line), "%s\n", nm->node_hex);
    if (write_file(nm->ready_path, line, (size_t)n, 0600) != 0)
        log_syserr(errno, "cannot write %s", nm->ready_path);
}

static void on_register_reply(node_manager *nm, Rpc__RegisterNodeReply *r)
{
    if (r->status && r->status->code != 0) {
        die(nm, "the GCS refused to register this node: %s", r->status->message);
        return;
    }
    nm->gcs_state = GCS_REGISTERED;
    nm->backoff_ms = 0;
    if (r->heartbeat_interval_ms > 0 && r->heartbeat_interval_ms != nm->heartbeat_ms) {
        nm->heartbeat_ms = r->heartbeat_interval_ms;
        event_del(nm->heartbeat_ev);
    }
    struct timeval tv = {(time_t)(nm->heartbeat_ms / 1000),
                         (suseconds_t)(nm->heartbeat_ms % 1000) * 1000};
    event_add(nm->heartbeat_ev, &tv);
    if (!nm->registered_once) {
        nm->registered_once = true;
        log_info("registered node %s with the GCS at %s:%d", nm->node_hex, nm->gcs_host,
                 nm->gcs_port);
        write_ready_file(nm);
    } else {
        log_info("re-registered node %s with the GCS", nm->node_hex);
    }
    Rpc__SubscribeRequest sub = RPC__SUBSCRIBE_REQUEST__INIT;
    sub.req_id = ++nm->next_req_id;
    sub.channels = RPC__CHANNEL__CHANNEL_NODE | RPC__CHANNEL__CHANNEL_JOB;
    conn_send(nm->gcs, MSG_SUBSCRIBE_REQ, &sub.base);
}

/* Replace the cluster view with the one the GCS sent. */
static void update_view(node_manager *nm, Rpc__HeartbeatReply *r)
{
    bool grew = false;
    if (r->n_view > (size_t)nm->nview) {
        view_node *v = realloc(nm->view, r->n_view * sizeof(*v));
        if (v == NULL)
            return;
        nm->view = v;
        grew = true;
    }
    int n = 0;
    for (size_t i = 0; i < r->n_view; i++) {
        Rpc__NodeInfo *ni = r->view[i];
        if (ni->node_id.len != NODE_ID_SIZE)
            continue;
        view_node *v = &nm->view[n++];
        memset(v, 0, sizeof(*v));
        memcpy(v->id.b, ni->node_id.data, NODE_ID_SIZE);
        snprintf(v->address, sizeof(v->address), "%s", ni->address);
        v->alive = ni->state == RPC__NODE_STATE__NODE_ALIVE;
        for (size_t k = 0; k < ni->n_resources_total; k++)
            res_set_amount(&v->total, ni->resources_total[k]->name, ni->resources_total[k]->amount);
        for (size_t k = 0; k < ni->n_resources_available; k++)
            res_set_amount(&v->available, ni->resources_available[k]->name,
                           ni->resources_available[k]->amount);
    }
    grew = grew || n != nm->nview;
    nm->nview = n;
    tm_view_changed(nm->tm, grew);
}

const view_node *nm_view_node(const node_manager *nm, const node_id_t *id)
{
    for (int i = 0; i < nm->nview; i++)
        if (memcmp(nm->view[i].id.b, id->b, NODE_ID_SIZE) == 0)
            return &nm->view[i];
    return NULL;
}

static void on_heartbeat_reply(node_manager *nm, Rpc__HeartbeatReply *r)
{
    if (r->status == NULL || r->status->code == 0) {
        update_view(nm, r);
        return;
    }
    if (r->status->code == RAYC_ENOTFOUND) {
        log_warn("the GCS does not know this node; registering again");
        send_register(nm);
        return;
    }
    die(nm, "the GCS declared this node dead: %s", r->status->message);
}

/* A node died: everything that depended on it moves or fails. */
static void node_died(node_manager *nm, const node_id_t *node)
{
    for (int i = 0; i < nm->nview; i++)
        if (memcmp(nm->view[i].id.b, node->b, NODE_ID_SIZE) == 0)
            nm->view[i].alive = false;
    peers_node_died(nm, node);
    om_node_died(nm->om, node);
    tm_node_died(nm->tm, node);
    Rpc__NodeDied nd = RPC__NODE_DIED__INIT;
    nd.node_id.data = (uint8_t *)node->b;
    nd.node_id.len = NODE_ID_SIZE;
    for (client *cl = nm->clients; cl; cl = cl->next)
        if (cl->pc)
            conn_send(cl->c, MSG_NODE_DIED, &nd.base);
}

static void on_pub(node_manager *nm, Rpc__PubMessage *m)
{
    if (m->channel == RPC__CHANNEL__CHANNEL_JOB && m->job &&
        m->job->state != RPC__JOB_STATE__JOB_RUNNING)
        tm_job_ended(nm->tm, m->job->job_id);
    if (m->channel == RPC__CHANNEL__CHANNEL_NODE && m->node &&
        m->node->node_id.len == NODE_ID_SIZE) {
        char hex[ID_HEX_MAX];
        id_hex(m->node->node_id.data, NODE_ID_SIZE, hex);
        bool alive = m->node->state == RPC__NODE_STATE__NODE_ALIVE;
        log_info("node %s at %s is %s", hex, m->node->address, alive ? "alive" : "dead");
        node_id_t id;
        memcpy(id.b, m->node->node_id.data, NODE_ID_SIZE);
        if (!alive && memcmp(id.b, nm->node_id.b, NODE_ID_SIZE) != 0)
            node_died(nm, &id);
    }
}

/* The req_id of a reply message (field 1 of every reply), 0 if none. */
static uint64_t reply_req_id(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_UINT64 || strcmp(f->name, "req_id") != 0)
        return 0;
    return *(const uint64_t *)((const char *)m + f->offset);
}

/* Hand a reply to the module that asked for it. false if nobody did. */
static bool finish_gcs_call(node_manager *nm, ProtobufCMessage *m)
{
    uint64_t id = reply_req_id(m);
    for (struct gcs_call **pp = &nm->gcs_calls; *pp; pp = &(*pp)->next) {
        struct gcs_call *call = *pp;
        if (call->req_id != id)
            continue;
        *pp = call->next;
        call->cb(nm, call->arg, m);
        free(call);
        return true;
    }
    return false;
}

/* The GCS connection is gone: every outstanding call gets NULL. */
static void fail_gcs_calls(node_manager *nm)
{
    while (nm->gcs_calls) {
        struct gcs_call *call = nm->gcs_calls;
        nm->gcs_calls = call->next;
        call->cb(nm, call->arg, NULL);
        free(call);
    }
}

int nm_gcs_call(node_manager *nm, uint16_t type, ProtobufCMessage *req, nm_gcs_cb cb, void *arg)
{
    if (nm->gcs == NULL || nm->gcs_state != GCS_REGISTERED)
        return -1;
    struct gcs_call *call = malloc(sizeof(*call));
    if (call == NULL)
        return -1;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(req->descriptor, 1);
    CHECK(f != NULL && f->type == PROTOBUF_C_TYPE_UINT64);
    call->req_id = ++nm->next_req_id;
    *(uint64_t *)((char *)req + f->offset) = call->req_id;
    call->cb = cb;
    call->arg = arg;
    call->next = nm->gcs_calls;
    nm->gcs_calls = call;
    conn_send(nm->gcs, type, req);
    return 0;
}

static void on_gcs_frame(conn *c, uint16_t type, ProtobufCMessage *msg)
{
    node_manager *nm = conn_data(c);
    switch (type) {
    case MSG_HANDSHAKE_REPLY:
        send_register(nm);
        break;
    case MSG_REGISTER_NODE_REPLY:
        on_register_reply(nm, (Rpc__RegisterNodeReply *)msg);
        break;
    case MSG_HEARTBEAT_REPLY:
        on_heartbeat_reply(nm, (Rpc__HeartbeatReply *)msg);
        break;
    case MSG_PUB_MESSAGE:
        on_pub(nm, (Rpc__PubMessage *)msg);
        break;
    case MSG_DRAIN_NODE_REPLY:
        if (nm->shutting_down)
            event_base_loopbreak(nm->base);
        break;
    case MSG_SUBSCRIBE_REPLY:
        break;
    default:
        if (!finish_gcs_call(nm, msg))
            log_warn("unexpected %s from the GCS", msg_name(type));
    }
}

static void schedule_reconnect(node_manager *nm)
{
    uint64_t max = (uint64_t)nm->cfg->gcs_reconnect_max_ms;
    nm->backoff_ms = nm->backoff_ms ? nm->backoff_ms * 2 : 100;
    if (nm->backoff_ms > max)
        nm->backoff_ms = max;
    struct timeval tv = {(time_t)(nm->backoff_ms / 1000),
                         (suseconds_t)(nm->backoff_ms % 1000) * 1000};
    nm->gcs_state = GCS_BACKOFF;
    event_add(nm->reconnect_ev, &tv);
}

static void on_gcs_close(conn *c, int reason, const char *why)
{
    node_manager *nm = conn_data(c);
    if (nm == NULL || nm->gcs != c)
        return;
    nm->gcs = NULL;
    event_del(nm->heartbeat_ev);
    fail_gcs_calls(nm);
    if (nm->shutting_down) {
        event_base_loopbreak(nm->base);
        return;
    }
    if (!nm->registered_once) {
        if (reason == CONN_EAUTH)
            die(nm, "the GCS at %s:%d refused this node: bad cluster token", nm->gcs_host,
                nm->gcs_port);
        else
            die(nm, "cannot reach the GCS at %s:%d: %s", nm->gcs_host, nm->gcs_port, why);
        return;
    }
    if (reason == CONN_EAUTH) {
        die(nm, "the GCS at %s:%d refused this node: bad cluster token", nm->gcs_host,
            nm->gcs_port);
        return;
    }
    if (nm->gcs_lost_at == 0) {
        nm->gcs_lost_at = now_ms();
        log_warn("lost the GCS at %s:%d (%s); reconnecting", nm->gcs_host, nm->gcs_port, why);
    }
    if (now_ms() - nm->gcs_lost_at > (uint64_t)nm->cfg->gcs_reconnect_timeout_ms) {
        die(nm, "no GCS at %s:%d for %lld ms; giving up", nm->gcs_host, nm->gcs_port,
            (long long)nm->cfg->gcs_reconnect_timeout_ms);
        return;
    }
    schedule_reconnect(nm);
}

static const conn_handlers gcs_handlers = {on_gcs_frame, on_gcs_close};

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcs_connect(arg);
}

static void gcs_connect(node_manager *nm)
{
    int fd = net_tcp_connect_nb(nm->gcs_host, nm->gcs_port);
    if (fd < 0) {
        if (!nm->registered_once) {
            die(nm, "cannot reach the GCS at %s:%d: %s", nm->gcs_host, nm->gcs_port,
                strerror(errno));
            return;
        }
        schedule_reconnect(nm);
        return;
    }
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_RAYLET;
    hs.id.data = nm->node_id.b;
    hs.id.len = NODE_ID_SIZE;
    hs.pid = (int32_t)getpid();
    hs.name = "raylet";
    conn_opts o = {.max_frame = nm->cfg->max_frame_bytes, .token = nm->token, .handshake = &hs};
    nm->gcs = conn_connect(nm->base, fd, &gcs_handlers, nm, &o);
    if (nm->gcs == NULL) {
        die(nm, "out of memory");
        return;
    }
    nm->gcs_state = GCS_CONNECTING;
    if (nm->gcs_lost_at)
        log_info("reconnecting to the GCS at %s:%d", nm->gcs_host, nm->gcs_port);
    nm->gcs_lost_at = nm->registered_once ? nm->gcs_lost_at : 0;
}

/* ------------------------------------------------------------ local clients */

static void client_unlink(client *cl)
{
    node_manager *nm = cl->nm;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        nm->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    nm->nclients--;
}

client *nm_client_by_worker(node_manager *nm, const worker_id_t *id)
{
    for (client *cl = nm->clients; cl; cl = cl->next)
        if (cl->pc && memcmp(cl->id.b, id->b, WORKER_ID_SIZE) == 0)
            return cl;
    return NULL;
}

client *nm_driver_of_job(node_manager *nm, uint32_t job_id)
{
    for (client *cl = nm->clients; cl; cl = cl->next)
        if (cl->role == RPC__ROLE__ROLE_DRIVER && cl->job_id == job_id)
            return cl;
    return NULL;
}

static void on_client_handshake(client *cl, Rpc__Handshake *hs)
{
    node_manager *nm = cl->nm;
    cl->role = hs->role;
    cl->pid = hs->pid;
    if (hs->id.len != WORKER_ID_SIZE || nm_client_by_worker(nm, (worker_id_t *)hs->id.data)) {
        log_warn("closing %s: missing or duplicate worker id", conn_peer(cl->c));
        conn_close(cl->c);
        return;
    }
    memcpy(cl->id.b, hs->id.data, WORKER_ID_SIZE);
    if (cl->role == RPC__ROLE__ROLE_WORKER &&
        (cl->w = wpool_connected(nm->pool, &cl->id, cl)) == NULL) {
        log_warn("closing %s: not a worker this raylet started", conn_peer(cl->c));
        conn_close(cl->c);
        return;
    }
    cl->pc = plasma_client_new(nm->store, cl->c);
    if (cl->pc == NULL) {
        conn_close(cl->c);
        return;
    }
    plasma_client_set_worker_id(cl->pc, &cl->id);
    Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.status = &st;
    r.id.data = nm->node_id.b;
    r.id.len = NODE_ID_SIZE;
    r.session_dir = nm->cfg->session_dir;
    r.num_fds = 1;
    r.store_size = plasma_store_capacity(nm->store);
    int fd = plasma_store_fd(nm->store);
    conn_send_fds(cl->c, MSG_HANDSHAKE_REPLY, &r.base, &fd, 1);
    if (cl->w)
        tm_schedule(nm->tm); /* a new idle worker: queued tasks can go to it */
}

/* A client's pull finished: tell it if the object cannot be had. */
static void on_client_pull_done(void *arg, const object_id_t *id, int status, const char *msg)
{
    struct client_pull *cp = arg;
    client *cl = nm_client_by_worker(cp->nm, &cp->who);
    free(cp);
    if (status == RAYC_OK || cl == NULL)
        return;
    Rpc__ObjectLost lost = RPC__OBJECT_LOST__INIT;
    lost.object_id.data = (uint8_t *)id->b;
    lost.object_id.len = OBJECT_ID_SIZE;
    lost.message = (char *)(msg ? msg : "object lost");
    conn_send(cl->c, MSG_OBJECT_LOST, &lost.base);
}

static void pull_for_client(client *cl, Rpc__PullObjects *m)
{
    if (cl->nm->nview <= 1)
        return; /* a one-node cluster has nowhere to pull from */
    for (size_t i = 0; i < m->n_object_ids; i++) {
        if (m->object_ids[i].len != OBJECT_ID_SIZE)
            continue;
        object_id_t id;
        memcpy(id.b, m->object_ids[i].data, OBJECT_ID_SIZE);
        if (plasma_object_state(cl->nm->store, &id, NULL) != PLASMA_ABSENT)
            continue;
        struct client_pull *cp = malloc(sizeof(*cp));
        if (cp == NULL)
            return;
        cp->nm = cl->nm;
        cp->who = cl->id;
        om_pull(cl->nm->om, &id, NULL, on_client_pull_done, cp);
    }
}

/* Free an owner's objects on the other nodes that hold copies (the GCS
 * directory knows where they are). */
static void on_free_locations(node_manager *nm, void *arg, ProtobufCMessage *reply)
{
    (void)arg;
    Rpc__GetObjectLocationsReply *r = (Rpc__GetObjectLocationsReply *)reply;
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_locations; i++) {
        Rpc__ObjectLocation *l = r->locations[i];
        if (l->removed || l->node_id.len != NODE_ID_SIZE || l->object_id.len != OBJECT_ID_SIZE)
            continue;
        node_id_t node;
        memcpy(node.b, l->node_id.data, NODE_ID_SIZE);
        conn *c = peers_get(nm, &node);
        if (c == NULL)
            continue;
        Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
        del.n_object_ids = 1;
        del.object_ids = &l->object_id;
        conn_send(c, MSG_DELETE_OBJECTS, &del.base);
    }
}

static void arm_loc_flush(node_manager *nm);

/* Owners' deletes wait for the next directory flush, so one GCS lookup per
 * batch finds the other nodes' copies (a driver freeing 100k objects a
 * second would otherwise cost the GCS 100k lookups). */
static void free_everywhere(node_manager *nm, Rpc__DeleteObjects *m)
{
    if (nm->nview <= 1)
        return;
    for (size_t i = 0; i < m->n_object_ids; i++) {
        if (m->object_ids[i].len != OBJECT_ID_SIZE)
            continue;
        if (nm->free_count == nm->free_cap) {
            size_t cap = nm->free_cap ? nm->free_cap * 2 : 256;
            object_id_t *n = realloc(nm->free_pending, cap * sizeof(*n));
            if (n == NULL) {
                log_error("out of memory queuing frees of other nodes' copies; dropping one");
                continue;
            }
            nm->free_pending = n;
            nm->free_cap = cap;
        }
        memcpy(nm->free_pending[nm->free_count++].b, m->object_ids[i].data, OBJECT_ID_SIZE);
    }
    arm_loc_flush(nm);
}

/* Ask the GCS where the queued deletes have copies (on_free_locations frees
 * them there), in requests of at most 4096 ids. */
static void send_frees(node_manager *nm)
{
    ProtobufCBinaryData *ids = malloc(4096 * sizeof(*ids));
    if (ids == NULL) {
        log_error("out of memory looking up %zu freed objects; retrying", nm->free_count);
        return;
    }
    for (size_t done = 0; done < nm->free_count;) {
        size_t k = nm->free_count - done < 4096 ? nm->free_count - done : 4096;
        for (size_t i = 0; i < k; i++)
            ids[i] = (ProtobufCBinaryData){OBJECT_ID_SIZE, nm->free_pending[done + i].b};
        Rpc__GetObjectLocationsRequest req = RPC__GET_OBJECT_LOCATIONS_REQUEST__INIT;
        req.n_object_ids = k;
        req.object_ids = ids;
        nm_gcs_call(nm, MSG_GET_OBJECT_LOCATIONS_REQ, &req.base, on_free_locations, NULL);
        done += k;
    }
    nm->free_count = 0;
    free(ids);
}

static void on_client_frame(conn *c, uint16_t type, ProtobufCMessage *msg)
{
    client *cl = conn_data(c);
    if (type == MSG_HANDSHAKE) {
        on_client_handshake(cl, (Rpc__Handshake *)msg);
        return;
    }
    if (cl->pc == NULL)
        return; /* handshake refused; closing */
    task_manager *tm = cl->nm->tm;
    switch (type) {
    case MSG_SUBMIT_TASK:
        conn_keep_msg(c);
        tm_submit(tm, cl, (Rpc__SubmitTask *)msg);
        return;
    case MSG_CANCEL_TASK:
        tm_cancel(tm, cl, (Rpc__CancelTask *)msg);
        return;
    case MSG_PULL_OBJECTS:
        pull_for_client(cl, (Rpc__PullObjects *)msg);
        return;
    case MSG_DELETE_OBJECTS:
        plasma_handle(cl->nm->store, cl->pc, type, msg);
        free_everywhere(cl->nm, (Rpc__DeleteObjects *)msg);
        return;
    case MSG_JOB_CONFIG:
        if (cl->role == RPC__ROLE__ROLE_DRIVER) {
            tm_job_config(tm, cl, (Rpc__JobConfig *)msg);
            return;
        }
        break;
    case MSG_TASK_DONE:
        if (cl->w) {
            tm_task_done(tm, cl, (Rpc__TaskDone *)msg);
            return;
        }
        break;
    case MSG_WORKER_BLOCKED:
        if (cl->w) {
            tm_worker_blocked(tm, cl->w, (Rpc__WorkerBlocked *)msg);
            return;
        }
        break;
    case MSG_WORKER_UNBLOCKED:
        if (cl->w) {
            tm_worker_unblocked(tm, cl->w);
            return;
        }
        break;
    default:
        if (plasma_handle(cl->nm->store, cl->pc, type, msg))
            return;
    }
    log_warn("closing %s: unexpected %s", conn_peer(c), msg_name(type));
    conn_close(c);
}

static void on_client_close(conn *c, int reason, const char *why)
{
    client *cl = conn_data(c);
    (void)reason;
    log_debug("client %s gone: %s", conn_peer(c), why);
    node_manager *nm = cl->nm;
    client_unlink(cl);
    if (cl->w)
        wpool_disconnected(nm->pool, cl->w);
    if (cl->pc)
        tm_client_gone(nm->tm, cl);
    plasma_client_free(cl->pc);
    free(cl);
    tm_schedule(nm->tm);
}

static const conn_handlers client_handlers = {on_client_frame, on_client_close};

static void on_unix_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    node_manager *nm = arg;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        close(fd);
        return;
    }
    cl->nm = nm;
    conn_opts o = {.max_frame = nm->cfg->max_frame_bytes};
    cl->c = conn_accept(nm->base, fd, &client_handlers, cl, &o);
    if (cl->c == NULL) {
        free(cl);
        return;
    }
    cl->next = nm->clients;
    if (nm->clients)
        nm->clients->prev = cl;
    nm->clients = cl;
    nm->nclients++;
}

static void on_tcp_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0)
        peers_accept(arg, fd);
}

/* -------------------------------------------------------- object directory */

/* The slot of id in the pending-adds index: where it is, or the empty slot
 * it would go to. */
static size_t loc_slot(const node_manager *nm, const object_id_t *id)
{
    size_t mask = nm->loc_adds_cap - 1;
    size_t i = (size_t)id_hash(id->b, OBJECT_ID_SIZE) & mask;
    while (nm->loc_adds[i] != 0 &&
           memcmp(nm->loc_pending[nm->loc_adds[i] - 1].id.b, id->b, OBJECT_ID_SIZE) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Index the add at loc_pending[k]; the index stays at most half full. */
static bool loc_index_add(node_manager *nm, size_t k)
{
    if ((k + 1) * 2 > nm->loc_adds_cap) {
        size_t cap = nm->loc_adds_cap ? nm->loc_adds_cap * 2 : 512;
        uint32_t *n = calloc(cap, sizeof(*n));
        if (n == NULL)
            return false;
        free(nm->loc_adds);
        nm->loc_adds = n;
        nm->loc_adds_cap = cap;
        for (size_t j = 0; j < k; j++)
            if (!nm->loc_pending[j].removed && !nm->loc_pending[j].cancelled)
                nm->loc_adds[loc_slot(nm, &nm->loc_pending[j].id)] = (uint32_t)j + 1;
    }
    nm->loc_adds[loc_slot(nm, &nm->loc_pending[k].id)] = (uint32_t)k + 1;
    return true;
}

/* Queue one location change; the batch goes to the GCS on the next flush.
 * An object freed before its add was sent (short-lived puts, at hundreds of
 * thousands a second) cancels the add and costs the GCS nothing. */
static void queue_location(node_manager *nm, const plasma_object_event *ev, bool removed)
{
    if (removed && nm->loc_adds_cap > 0) {
        size_t i = loc_slot(nm, &ev->id);
        uint32_t k = nm->loc_adds[i];
        if (k != 0 && !nm->loc_pending[k - 1].cancelled) {
            nm->loc_pending[k - 1].cancelled = true;
            return; /* the slot stays: it still marks the probe chain */
        }
    }
    if (nm->loc_count == nm->loc_cap) {
        size_t cap = nm->loc_cap ? nm->loc_cap * 2 : 256;
        struct loc_rec *n = realloc(nm->loc_pending, cap * sizeof(*n));
        if (n == NULL) {
            log_error("out of memory queuing object location updates; dropping one");
            return;
        }
        nm->loc_pending = n;
        nm->loc_cap = cap;
    }
    size_t k = nm->loc_count++;
    nm->loc_pending[k] =
        (struct loc_rec){.id = ev->id, .owner = ev->owner, .size = ev->size, .removed = removed};
    if (!removed && !loc_index_add(nm, k))
        log_warn("out of memory indexing object location updates");
    arm_loc_flush(nm);
}

static void arm_loc_flush(node_manager *nm)
{
    if (!evtimer_pending(nm->loc_flush_ev, NULL)) {
        int64_t ms = nm->cfg->object_directory_batch_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(nm->loc_flush_ev, &tv);
    }
}

static void on_object_sealed(void *arg, const plasma_object_event *ev)
{
    queue_location(arg, ev, false);
}

static void on_object_deleted(void *arg, const plasma_object_event *ev)
{
    queue_location(arg, ev, true);
}

/* Send the queued location changes in one message. */
static void send_locations(node_manager *nm)
{
    size_t n = nm->loc_count, m = 0;
    Rpc__ObjectLocation *locs = malloc(n * sizeof(*locs));
    Rpc__ObjectLocation **ptrs = malloc(n * sizeof(*ptrs));
    if (locs && ptrs) {
        for (size_t i = 0; i < n; i++) {
            struct loc_rec *r = &nm->loc_pending[i];
            if (r->cancelled)
                continue;
            rpc__object_location__init(&locs[m]);
            locs[m].object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, r->id.b};
            locs[m].owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, r->owner.b};
            locs[m].node_id = (ProtobufCBinaryData){NODE_ID_SIZE, nm->node_id.b};
            locs[m].size = r->size;
            locs[m].removed = r->removed;
            ptrs[m] = &locs[m];
            m++;
        }
        Rpc__ObjectLocationUpdate up = RPC__OBJECT_LOCATION_UPDATE__INIT;
        up.node_id = (ProtobufCBinaryData){NODE_ID_SIZE, nm->node_id.b};
        up.n_updates = m;
        up.updates = ptrs;
        if (m > 0)
            conn_send(nm->gcs, MSG_OBJECT_LOCATION_UPDATE, &up.base);
        nm->loc_count = 0;
        if (nm->loc_adds_cap > 0)
            memset(nm->loc_adds, 0, nm->loc_adds_cap * sizeof(*nm->loc_adds));
    } else {
        log_error("out of memory sending %zu object location updates; retrying", n);
    }
    free(locs);
    free(ptrs);
}

/* The directory batch is due: send the queued location changes in one
 * message, and look up the queued frees. Without a GCS they wait for the
 * next registration. */
static void on_loc_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node_manager *nm = arg;
    if (nm->loc_count == 0 && nm->free_count == 0)
        return;
    if (nm->gcs == NULL || nm->gcs_state != GCS_REGISTERED) {
        struct timeval tv = {0, 200000};
        evtimer_add(nm->loc_flush_ev, &tv);
        return;
    }
    /* Locations first: the lookup of the frees then sees this node's removals. */
    if (nm->loc_count > 0)
        send_locations(nm);
    if (nm->free_count > 0)
        send_frees(nm);
}

static const plasma_hooks store_hooks = {on_object_sealed, on_object_deleted};

/* ------------------------------------------------------------- life cycle */

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
    if (res_parse(&nm->total, cfg->resources, err, errlen) != 0)
        return -1;
    nm->available = nm->total;
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
    nm->unix_fd = nm->tcp_fd = -1;
    nm->start_ms = wall_ms();
    nm->heartbeat_ms = (uint64_t)cfg->heartbeat_interval_ms;
    nm->node_id = node_id_random();
    id_hex(nm->node_id.b, NODE_ID_SIZE, nm->node_hex);
    gethostname(nm->hostname, sizeof(nm->hostname) - 1);

    if (cfg->session_dir[0] == '\0') {
        snprintf(err, errlen, "--session-dir is required");
        goto fail;
    }
    if (parse_host_port(cfg->gcs_address, nm->gcs_host, sizeof(nm->gcs_host), &nm->gcs_port)) {
        snprintf(err, errlen, "--gcs-address must be HOST:PORT (got '%s')", cfg->gcs_address);
        goto fail;
    }
    if (auth_token_load(cfg->token, cfg->token_file, nm->token, sizeof(nm->token), err, errlen) !=
        0)
        goto fail;
    if (init_resources(nm, err, errlen) != 0)
        goto fail;
    snprintf(nm->socket_path, sizeof(nm->socket_path), "%s/sockets/raylet", cfg->session_dir);
    snprintf(nm->ready_path, sizeof(nm->ready_path), "%s/raylet.ready", cfg->session_dir);
    nm->store = plasma_store_new(base, cfg, err, errlen);
    if (nm->store == NULL)
        goto fail;
    plasma_store_set_hooks(nm->store, &nm->node_id, &store_hooks, nm);
    nm->self_pc = plasma_client_new(nm->store, NULL);
    nm->tm = tm_new(nm);
    if (nm->self_pc == NULL || nm->tm == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    nm->pool = wpool_new(nm, err, errlen);
    if (nm->pool == NULL)
        goto fail;
    nm->om = om_new(nm);
    nm->report_ev = event_new(base, -1, EV_PERSIST, on_report_timer, nm);
    if (nm->om == NULL || nm->report_ev == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    nm->reconnect_ev = evtimer_new(base, on_reconnect_timer, nm);
    nm->heartbeat_ev = event_new(base, -1, EV_PERSIST, on_heartbeat_timer, nm);
    nm->loc_flush_ev = evtimer_new(base, on_loc_flush, nm);
    if (!nm->reconnect_ev || !nm->heartbeat_ev || !nm->loc_flush_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return nm;
fail:
    nm_free(nm);
    return NULL;
}

int nm_start(node_manager *nm, char *err, size_t errlen)
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
    nm->unix_ev = event_new(nm->base, nm->unix_fd, EV_READ | EV_PERSIST, on_unix_accept, nm);
    nm->tcp_ev = event_new(nm->base, nm->tcp_fd, EV_READ | EV_PERSIST, on_tcp_accept, nm);
    event_add(nm->unix_ev, NULL);
    event_add(nm->tcp_ev, NULL);
    log_info("raylet %s: local socket %s, peers at %s, resources %s, object store %llu bytes "
             "(prefault took %llu us)",
             nm->node_hex, nm->socket_path, nm->address,
             res_format(&nm->total, (char[512]){0}, 512),
             (unsigned long long)plasma_store_capacity(nm->store),
             (unsigned long long)plasma_store_prefault_us(nm->store));
    wpool_prestart(nm->pool, (int)res_get(&nm->total, "CPU"));
    struct timeval report = {0, 100000};
    event_add(nm->report_ev, &report);
    gcs_connect(nm);
    if (nm->exit_reason[0]) {
        snprintf(err, errlen, "%s", nm->exit_reason);
        return -1;
    }
    return 0;
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node_manager *nm = arg;
    log_warn("no drain reply from the GCS; exiting anyway");
    event_base_loopbreak(nm->base);
}

void nm_shutdown(node_manager *nm)
{
    if (nm->shutting_down) {
        event_base_loopbreak(nm->base);
        return;
    }
    nm->shutting_down = true;
    log_info("shutting down");
    if (nm->gcs == NULL || nm->gcs_state != GCS_REGISTERED) {
        event_base_loopbreak(nm->base);
        return;
    }
    Rpc__DrainNodeRequest req = RPC__DRAIN_NODE_REQUEST__INIT;
    req.req_id = ++nm->next_req_id;
    req.node_id.data = nm->node_id.b;
    req.node_id.len = NODE_ID_SIZE;
    req.reason = "raylet stopped";
    conn_send(nm->gcs, MSG_DRAIN_NODE_REQ, &req.base);
    nm->drain_timeout_ev = evtimer_new(nm->base, on_drain_timeout, nm);
    struct timeval tv = {1, 0};
    if (nm->drain_timeout_ev)
        event_add(nm->drain_timeout_ev, &tv);
}

void nm_free(node_manager *nm)
{
    if (nm == NULL)
        return;
    /* Connections hold events on the base; the base is freed by main after
     * us, so close them and let their pending closers run first. */
    if (nm->gcs) {
        conn_set_data(nm->gcs, NULL);
        conn_close(nm->gcs);
    }
    fail_gcs_calls(nm);
    for (client *cl = nm->clients; cl; cl = cl->next)
        conn_close(cl->c);
    peers_free_all(nm);
    event_base_loop(nm->base, EVLOOP_NONBLOCK);
    if (nm->unix_fd >= 0) {
        close(nm->unix_fd);
        unlink(nm->socket_path);
    }
    if (nm->tcp_fd >= 0)
        close(nm->tcp_fd);
    if (nm->ready_path[0])
        unlink(nm->ready_path);
    if (nm->unix_ev)
        event_free(nm->unix_ev);
    if (nm->tcp_ev)
        event_free(nm->tcp_ev);
    if (nm->reconnect_ev)
        event_free(nm->reconnect_ev);
    if (nm->heartbeat_ev)
        event_free(nm->heartbeat_ev);
    if (nm->drain_timeout_ev)
        event_free(nm->drain_timeout_ev);
    if (nm->loc_flush_ev)
        event_free(nm->loc_flush_ev);
    free(nm->loc_pending);
    free(nm->loc_adds);
    free(nm->free_pending);
    if (nm->report_ev)
        event_free(nm->report_ev);
    free(nm->view);
    om_free(nm->om);
    wpool_free(nm->pool);
    tm_free(nm->tm);
    plasma_client_free(nm->self_pc);
    plasma_store_free(nm->store);
    free(nm);
}
