/*
 * gcs_session.c -- the raylet's GCS session; see gcs_session.h.
 * Runs in the raylet's single event-loop thread.
 */
#include "gcs_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "net.h"
#include "rayc.h"

enum { GCS_BACKOFF, GCS_CONNECTING, GCS_REGISTERING, GCS_REGISTERED };

#define REPORT_MS 100 /* resource reports when the load changed */

/* A request a raylet component sent to the GCS, waiting for its reply. */
struct gcs_call {
    uint64_t req_id;
    gs_reply_cb cb;
    void *arg;
    struct gcs_call *next;
};

struct gcs_session {
    struct event_base *base;
    const rayc_config *cfg;
    gs_node self;
    gs_hooks hooks;
    void *arg;
    char host[256];
    int port;

    conn *c;
    int state;
    bool registered_once;
    bool draining;
    uint64_t lost_at;
    uint64_t backoff_ms;
    uint64_t heartbeat_ms;
    uint64_t next_req_id;
    struct gcs_call *calls; /* requests waiting for a reply */
    struct event *reconnect_ev, *heartbeat_ev, *report_ev, *drain_timeout_ev;
    res_set last_reported;

    view_node *view;
    int nview;
    uint64_t view_epoch, view_version; /* of the view held: heartbeats ask for changes since */
};

static void gcs_connect(gcs_session *gs);

/* ---------------------------------------------------------------- helpers */

static void fatal(gcs_session *gs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fatal(gcs_session *gs, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    gs->hooks.fatal(gs->arg, reason);
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

static void timer_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
}

/* ---------------------------------------------------------------- register, heartbeat */

static void send_register(gcs_session *gs)
{
    Rpc__Resource rt[RES_MAX], ra[RES_MAX];
    Rpc__Resource *pt[RES_MAX], *pa[RES_MAX];
    gs_load load = {0};
    gs->hooks.load(gs->arg, &load);
    Rpc__NodeInfo ni = RPC__NODE_INFO__INIT;
    ni.node_id.data = gs->self.node_id.b;
    ni.node_id.len = NODE_ID_SIZE;
    ni.address = (char *)gs->self.address;
    ni.socket_path = (char *)gs->self.socket_path;
    ni.hostname = (char *)gs->self.hostname;
    ni.session_dir = gs->cfg->session_dir;
    ni.n_resources_total = (size_t)gs->self.total->n;
    ni.resources_total = resources_msg(gs->self.total, rt, pt);
    ni.n_resources_available = (size_t)load.available.n;
    ni.resources_available = resources_msg(&load.available, ra, pa);
    ni.state = RPC__NODE_STATE__NODE_ALIVE;
    ni.start_time_ms = gs->self.start_ms;
    ni.is_head = gs->cfg->head;
    ni.store_capacity = load.store.capacity;
    ni.store_used = load.store.used;
    ni.store_objects = load.store.objects;
    ni.spilled_bytes = load.store.spilled_bytes;

    Rpc__RegisterNodeRequest req = RPC__REGISTER_NODE_REQUEST__INIT;
    req.req_id = ++gs->next_req_id;
    req.node = &ni;
    gs->state = GCS_REGISTERING;
    conn_send(gs->c, MSG_REGISTER_NODE_REQ, &req.base);
}

static void send_heartbeat(gcs_session *gs, const gs_load *load)
{
    Rpc__Resource ra[RES_MAX];
    Rpc__Resource *pa[RES_MAX];
    Rpc__HeartbeatRequest hb = RPC__HEARTBEAT_REQUEST__INIT;
    hb.req_id = ++gs->next_req_id;
    hb.node_id.data = gs->self.node_id.b;
    hb.node_id.len = NODE_ID_SIZE;
    hb.n_resources_available = (size_t)load->available.n;
    hb.resources_available = resources_msg(&load->available, ra, pa);
    hb.store_capacity = load->store.capacity;
    hb.store_used = load->store.used;
    hb.store_objects = load->store.objects;
    hb.spilled_bytes = load->store.spilled_bytes;
    hb.pending_tasks = load->pending_tasks;
    hb.oom_kills = load->oom_kills;
    char *waits[GS_WAITS_MAX];
    for (size_t i = 0; i < load->n_waits && i < GS_WAITS_MAX; i++)
        waits[i] = (char *)load->waits[i];
    hb.n_waits = load->n_waits < GS_WAITS_MAX ? load->n_waits : GS_WAITS_MAX;
    hb.waits = waits;
    hb.view_epoch = gs->view_epoch;
    hb.view_version = gs->view_version;
    conn_send(gs->c, MSG_HEARTBEAT_REQ, &hb.base);
    gs->last_reported = load->available;
}

static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcs_session *gs = arg;
    if (gs_ready(gs)) {
        gs_load load = {0};
        gs->hooks.load(gs->arg, &load);
        send_heartbeat(gs, &load);
    }
}

/* Every 100 ms: report our load at once when it changed (Ray's resource
 * reports), so other raylets place work on current numbers. */
static void on_report_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcs_session *gs = arg;
    if (!gs_ready(gs))
        return;
    gs_load load = {0};
    gs->hooks.load(gs->arg, &load);
    if (!res_equal(&load.available, &gs->last_reported) || load.wants_view)
        send_heartbeat(gs, &load);
}

static void write_ready_file(gcs_session *gs)
{
    char line[ID_HEX_MAX + 2];
    int n = snprintf(line, sizeof(line), "%s\n", gs->self.node_hex);
    if (write_file(gs->self.ready_path, line, (size_t)n, 0600) != 0)
        log_syserr(errno, "cannot write %s", gs->self.ready_path);
}

static void on_register_reply(gcs_session *gs, Rpc__RegisterNodeReply *r)
{
    if (r->status && r->status->code != 0) {
        fatal(gs, "the GCS refused to register this node: %s", r->status->message);
        return;
    }
    gs->state = GCS_REGISTERED;
    gs->backoff_ms = 0;
    if (r->heartbeat_interval_ms > 0 && r->heartbeat_interval_ms != gs->heartbeat_ms) {
        gs->heartbeat_ms = r->heartbeat_interval_ms;
        event_del(gs->heartbeat_ev);
    }
    timer_ms(gs->heartbeat_ev, gs->heartbeat_ms);
    if (!gs->registered_once) {
        gs->registered_once = true;
        log_info("registered node %s with the GCS at %s:%d", gs->self.node_hex, gs->host, gs->port);
        write_ready_file(gs);
    } else {
        log_info("re-registered node %s with the GCS", gs->self.node_hex);
    }
    Rpc__SubscribeRequest sub = RPC__SUBSCRIBE_REQUEST__INIT;
    sub.req_id = ++gs->next_req_id;
    sub.channels = RPC__CHANNEL__CHANNEL_NODE | RPC__CHANNEL__CHANNEL_JOB;
    conn_send(gs->c, MSG_SUBSCRIBE_REQ, &sub.base);
}

/* ---------------------------------------------------------------- cluster view */

/* One node of a reply into v. */
static void fill_view_node(view_node *v, const Rpc__NodeInfo *ni)
{
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

static int view_index(const gcs_session *gs, const uint8_t *id)
{
    for (int i = 0; i < gs->nview; i++)
        if (memcmp(gs->view[i].id.b, id, NODE_ID_SIZE) == 0)
            return i;
    return -1;
}

/* Take the cluster view the GCS sent: the whole view, or (view_delta) the
 * nodes changed since the version we hold, merged by node id. An idle
 * cluster's delta is empty and changes nothing. */
static void update_view(gcs_session *gs, Rpc__HeartbeatReply *r)
{
    bool delta = r->view_delta && r->view_epoch == gs->view_epoch && gs->view_version > 0;
    if (delta && r->n_view == 0) {
        gs->view_version = r->view_version;
        /* Nothing changed, but placement counted its forwards against the
         * nodes it sent tasks to: it takes the reports again. */
        gs->hooks.view_changed(gs->arg, false);
        return;
    }
    size_t need = delta ? (size_t)gs->nview + r->n_view : r->n_view;
    bool grew;
    if (need > (size_t)gs->nview) {
        view_node *v = realloc(gs->view, need * sizeof(*v));
        if (v == NULL)
            return; /* keep the old view and version: the next heartbeat retries */
        gs->view = v;
    }
    int n = delta ? gs->nview : 0;
    for (size_t i = 0; i < r->n_view; i++) {
        Rpc__NodeInfo *ni = r->view[i];
        if (ni->node_id.len != NODE_ID_SIZE)
            continue;
        int k = delta ? view_index(gs, ni->node_id.data) : -1;
        if (k < 0)
            k = n++; /* full view: in order; delta: a node new to us */
        fill_view_node(&gs->view[k], ni);
    }
    grew = n != gs->nview;
    gs->nview = n;
    gs->view_epoch = r->view_epoch;
    gs->view_version = r->view_version;
    gs->hooks.view_changed(gs->arg, grew);
}

const view_node *gs_view_node(const gcs_session *gs, const node_id_t *id)
{
    for (int i = 0; i < gs->nview; i++)
        if (memcmp(gs->view[i].id.b, id->b, NODE_ID_SIZE) == 0)
            return &gs->view[i];
    return NULL;
}

const view_node *gs_view(const gcs_session *gs, int *n)
{
    *n = gs->nview;
    return gs->view;
}

static void on_heartbeat_reply(gcs_session *gs, Rpc__HeartbeatReply *r)
{
    /* Draining: the GCS marks us DEAD on purpose, and a heartbeat sent
     * before it saw the drain is answered so. The drain reply ends us. */
    if (gs->draining)
        return;
    if (r->status == NULL || r->status->code == 0) {
        update_view(gs, r);
        return;
    }
    if (r->status->code == RAYC_ENOTFOUND) {
        log_warn("the GCS does not know this node; registering again");
        send_register(gs);
        return;
    }
    fatal(gs, "the GCS declared this node dead: %s", r->status->message);
}

static void on_pub(gcs_session *gs, Rpc__PubMessage *m)
{
    if (m->channel == RPC__CHANNEL__CHANNEL_JOB && m->job &&
        m->job->state != RPC__JOB_STATE__JOB_RUNNING)
        gs->hooks.job_ended(gs->arg, m->job->job_id);
    if (m->channel == RPC__CHANNEL__CHANNEL_NODE && m->node &&
        m->node->node_id.len == NODE_ID_SIZE) {
        char hex[ID_HEX_MAX];
        id_hex(m->node->node_id.data, NODE_ID_SIZE, hex);
        bool alive = m->node->state == RPC__NODE_STATE__NODE_ALIVE;
        log_info("node %s at %s is %s", hex, m->node->address, alive ? "alive" : "dead");
        node_id_t id;
        memcpy(id.b, m->node->node_id.data, NODE_ID_SIZE);
        if (alive || memcmp(id.b, gs->self.node_id.b, NODE_ID_SIZE) == 0)
            return;
        for (int i = 0; i < gs->nview; i++)
            if (memcmp(gs->view[i].id.b, id.b, NODE_ID_SIZE) == 0)
                gs->view[i].alive = false;
        gs->hooks.node_died(gs->arg, &id);
    }
}

/* ---------------------------------------------------------------- requests */

/* The req_id of a reply message (field 1 of every reply), 0 if none. */
static uint64_t reply_req_id(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_UINT64 || strcmp(f->name, "req_id") != 0)
        return 0;
    return *(const uint64_t *)((const char *)m + f->offset);
}

/* Hand a reply to the component that asked for it. false if nobody did. */
static bool finish_call(gcs_session *gs, ProtobufCMessage *m)
{
    uint64_t id = reply_req_id(m);
    for (struct gcs_call **pp = &gs->calls; *pp; pp = &(*pp)->next) {
        struct gcs_call *call = *pp;
        if (call->req_id != id)
            continue;
        *pp = call->next;
        call->cb(call->arg, m);
        free(call);
        return true;
    }
    return false;
}

/* The GCS connection is gone: every outstanding call gets NULL. */
static void fail_calls(gcs_session *gs)
{
    while (gs->calls) {
        struct gcs_call *call = gs->calls;
        gs->calls = call->next;
        call->cb(call->arg, NULL);
        free(call);
    }
}

bool gs_ready(const gcs_session *gs)
{
    return gs->c != NULL && gs->state == GCS_REGISTERED;
}

int gs_call(gcs_session *gs, uint16_t type, ProtobufCMessage *req, gs_reply_cb cb, void *arg)
{
    if (!gs_ready(gs))
        return -1;
    struct gcs_call *call = malloc(sizeof(*call));
    if (call == NULL)
        return -1;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(req->descriptor, 1);
    CHECK(f != NULL && f->type == PROTOBUF_C_TYPE_UINT64);
    call->req_id = ++gs->next_req_id;
    *(uint64_t *)((char *)req + f->offset) = call->req_id;
    call->cb = cb;
    call->arg = arg;
    call->next = gs->calls;
    gs->calls = call;
    conn_send(gs->c, type, req);
    return 0;
}

int gs_send(gcs_session *gs, uint16_t type, ProtobufCMessage *msg)
{
    if (!gs_ready(gs))
        return -1;
    return conn_send(gs->c, type, msg);
}

/* ---------------------------------------------------------------- connection */

static void on_gcs_frame(conn *c, uint16_t type, ProtobufCMessage *msg)
{
    gcs_session *gs = conn_data(c);
    switch (type) {
    case MSG_HANDSHAKE_REPLY:
        send_register(gs);
        break;
    case MSG_REGISTER_NODE_REPLY:
        on_register_reply(gs, (Rpc__RegisterNodeReply *)msg);
        break;
    case MSG_HEARTBEAT_REPLY:
        on_heartbeat_reply(gs, (Rpc__HeartbeatReply *)msg);
        break;
    case MSG_PUB_MESSAGE:
        on_pub(gs, (Rpc__PubMessage *)msg);
        break;
    case MSG_DRAIN_NODE_REPLY:
        if (gs->draining)
            gs->hooks.stopped(gs->arg);
        break;
    case MSG_SUBSCRIBE_REPLY:
        break;
    case MSG_CREATE_ACTOR:
        gs->hooks.create_actor(gs->arg, ((Rpc__CreateActor *)msg)->actor);
        break;
    case MSG_KILL_ACTOR_WORKER:
        gs->hooks.kill_actor(gs->arg, (Rpc__KillActorWorker *)msg);
        break;
    case MSG_PREPARE_BUNDLES:
    case MSG_COMMIT_BUNDLES:
    case MSG_RETURN_BUNDLES:
        gs->hooks.pg_message(gs->arg, type, msg);
        break;
    case MSG_LOG_REQUEST:
        if (gs->hooks.log_request)
            gs->hooks.log_request(gs->arg, (Rpc__LogRequest *)msg);
        break;
    default:
        if (!finish_call(gs, msg))
            log_warn("unexpected %s from the GCS", msg_name(type));
    }
}

static void schedule_reconnect(gcs_session *gs)
{
    uint64_t max = (uint64_t)gs->cfg->gcs_reconnect_max_ms;
    gs->backoff_ms = gs->backoff_ms ? gs->backoff_ms * 2 : 100;
    if (gs->backoff_ms > max)
        gs->backoff_ms = max;
    gs->state = GCS_BACKOFF;
    timer_ms(gs->reconnect_ev, gs->backoff_ms);
}

static void on_gcs_close(conn *c, int reason, const char *why)
{
    gcs_session *gs = conn_data(c);
    if (gs == NULL || gs->c != c)
        return;
    gs->c = NULL;
    event_del(gs->heartbeat_ev);
    fail_calls(gs);
    if (gs->draining) {
        gs->hooks.stopped(gs->arg);
        return;
    }
    if (reason == CONN_EAUTH) {
        fatal(gs, "the GCS at %s:%d refused this node: bad cluster token", gs->host, gs->port);
        return;
    }
    if (!gs->registered_once) {
        fatal(gs, "cannot reach the GCS at %s:%d: %s", gs->host, gs->port, why);
        return;
    }
    if (gs->lost_at == 0) {
        gs->lost_at = now_ms();
        log_warn("lost the GCS at %s:%d (%s); reconnecting", gs->host, gs->port, why);
    }
    if (now_ms() - gs->lost_at > (uint64_t)gs->cfg->gcs_reconnect_timeout_ms) {
        fatal(gs, "no GCS at %s:%d for %lld ms; giving up", gs->host, gs->port,
              (long long)gs->cfg->gcs_reconnect_timeout_ms);
        return;
    }
    schedule_reconnect(gs);
}

static const conn_handlers gcs_handlers = {on_gcs_frame, on_gcs_close};

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcs_connect(arg);
}

static void gcs_connect(gcs_session *gs)
{
    int fd = net_tcp_connect_nb(gs->host, gs->port);
    if (fd < 0) {
        if (!gs->registered_once) {
            fatal(gs, "cannot reach the GCS at %s:%d: %s", gs->host, gs->port, strerror(errno));
            return;
        }
        schedule_reconnect(gs);
        return;
    }
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_RAYLET;
    hs.id.data = gs->self.node_id.b;
    hs.id.len = NODE_ID_SIZE;
    hs.pid = (int32_t)getpid();
    hs.name = "raylet";
    conn_opts o = {
        .max_frame = gs->cfg->max_frame_bytes, .token = gs->self.token, .handshake = &hs};
    gs->c = conn_connect(gs->base, fd, &gcs_handlers, gs, &o);
    if (gs->c == NULL) {
        fatal(gs, "out of memory");
        return;
    }
    gs->state = GCS_CONNECTING;
    if (gs->lost_at)
        log_info("reconnecting to the GCS at %s:%d", gs->host, gs->port);
    gs->lost_at = gs->registered_once ? gs->lost_at : 0;
}

void gs_start(gcs_session *gs)
{
    timer_ms(gs->report_ev, REPORT_MS);
    gcs_connect(gs);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcs_session *gs = arg;
    log_warn("no drain reply from the GCS; exiting anyway");
    gs->hooks.stopped(gs->arg);
}

int gs_drain(gcs_session *gs)
{
    if (!gs_ready(gs))
        return -1;
    gs->draining = true;
    event_del(gs->heartbeat_ev); /* no heartbeat of a node being drained */
    Rpc__DrainNodeRequest req = RPC__DRAIN_NODE_REQUEST__INIT;
    req.req_id = ++gs->next_req_id;
    req.node_id.data = gs->self.node_id.b;
    req.node_id.len = NODE_ID_SIZE;
    req.reason = "raylet stopped";
    conn_send(gs->c, MSG_DRAIN_NODE_REQ, &req.base);
    timer_ms(gs->drain_timeout_ev, 1000);
    return 0;
}

/* ---------------------------------------------------------------- life cycle */

gcs_session *gs_new(struct event_base *base, const rayc_config *cfg, const gs_node *self,
                    const gs_hooks *hooks, void *arg, char *err, size_t errlen)
{
    gcs_session *gs = calloc(1, sizeof(*gs));
    if (gs == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    gs->base = base;
    gs->cfg = cfg;
    gs->self = *self;
    gs->hooks = *hooks;
    gs->arg = arg;
    gs->heartbeat_ms = (uint64_t)cfg->heartbeat_interval_ms;
    if (parse_host_port(cfg->gcs_address, gs->host, sizeof(gs->host), &gs->port)) {
        snprintf(err, errlen, "--gcs-address must be HOST:PORT (got '%s')", cfg->gcs_address);
        goto fail;
    }
    gs->reconnect_ev = evtimer_new(base, on_reconnect_timer, gs);
    gs->heartbeat_ev = event_new(base, -1, EV_PERSIST, on_heartbeat_timer, gs);
    gs->report_ev = event_new(base, -1, EV_PERSIST, on_report_timer, gs);
    gs->drain_timeout_ev = evtimer_new(base, on_drain_timeout, gs);
    if (!gs->reconnect_ev || !gs->heartbeat_ev || !gs->report_ev || !gs->drain_timeout_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return gs;
fail:
    gs_free(gs);
    return NULL;
}

void gs_stop(gcs_session *gs)
{
    /* No timer may fire after a stop: a heartbeat on the closed connection,
     * or a reconnect, would outlive the session's owner (seen under ASan). */
    struct event *timers[] = {gs->reconnect_ev, gs->heartbeat_ev, gs->report_ev,
                              gs->drain_timeout_ev};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
        if (timers[i])
            event_del(timers[i]);
    if (gs->c) {
        conn_set_data(gs->c, NULL);
        conn_close(gs->c);
        gs->c = NULL;
    }
    fail_calls(gs);
}

void gs_free(gcs_session *gs)
{
    if (gs == NULL)
        return;
    gs_stop(gs);
    if (gs->reconnect_ev)
        event_free(gs->reconnect_ev);
    if (gs->heartbeat_ev)
        event_free(gs->heartbeat_ev);
    if (gs->report_ev)
        event_free(gs->report_ev);
    if (gs->drain_timeout_ev)
        event_free(gs->drain_timeout_ev);
    free(gs->view);
    free(gs);
}
