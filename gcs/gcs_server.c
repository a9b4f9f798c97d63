/*
 * gcs_server.c -- the GCS daemon's life cycle: listener, client
 * connections, ops (storage writes behind a reply), table loading at start,
 * the health-check timer, and shutdown. Request handlers are in gcs_rpc.c.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_server.h"

#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gcs_map.h"
#include "gcs_pg_table.h"
#include "gcs_server_int.h"
#include "gcs_task_store.h"
#include "log.h"
#include "net.h"
#include "rayc.h"
#include "util.h"

#define LISTEN_BACKLOG       511
#define HEALTH_MIN_PERIOD_MS 50
#define SHUTDOWN_LOOP_TURNS  64          /* loop turns allowed for connections to close */
#define GCS_MAX_UNAUTHED     128         /* connections in their handshake at once */
#define GCS_MAX_OUTPUT       (64u << 20) /* replies queued to a peer that does not read */

/* ---------------------------------------------------------------- clients */

void gcs_server__client_ref(gcs_client *cl)
{
    cl->refs++;
}

void gcs_server__client_unref(gcs_client *cl)
{
    CHECK(cl->refs > 0);
    if (--cl->refs > 0)
        return;
    free(cl->jobs);
    free(cl);
}

void gcs_server__send(gcs_client *cl, uint16_t type, const ProtobufCMessage *m)
{
    if (cl == NULL || cl->c == NULL || conn_is_closed(cl->c))
        return;
    conn_send(cl->c, type, m);
}

/* Every reply type has req_id = 1 and status = 2; build any of them from its
 * descriptor so every error path answers with the right type. */
void gcs_server__reply_status(gcs_client *cl, uint16_t reply_type, uint64_t req_id, int code,
                              const char *message)
{
    const ProtobufCMessageDescriptor *d = msg_descriptor(reply_type);
    if (d == NULL || cl == NULL || cl->c == NULL)
        return;
    union {
        max_align_t align;
        uint8_t bytes[512];
    } buf;
    CHECK(d->sizeof_message <= sizeof(buf));
    protobuf_c_message_init(d, &buf);
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, code, message);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(d, "req_id");
    if (f && f->type == PROTOBUF_C_TYPE_UINT64)
        *(uint64_t *)(buf.bytes + f->offset) = req_id;
    f = protobuf_c_message_descriptor_get_field_by_name(d, "status");
    if (f && f->type == PROTOBUF_C_TYPE_MESSAGE)
        *(Rpc__Status **)(buf.bytes + f->offset) = &st;
    gcs_server__send(cl, reply_type, (ProtobufCMessage *)&buf);
}

/* -------------------------------------------------------------------- ops */

gcs_op *gcs_server__op_new(gcs_server *srv, gcs_client *cl, uint64_t req_id, uint16_t reply_type,
                           gcs_op_finish_fn finish, const char *what)
{
    gcs_op *op = calloc(1, sizeof(*op));
    CHECK(op != NULL);
    op->srv = srv;
    op->client = cl;
    if (cl)
        gcs_server__client_ref(cl);
    op->req_id = req_id;
    op->reply_type = reply_type;
    op->finish = finish;
    op->pending = 1;
    snprintf(op->what, sizeof(op->what), "%s", what ? what : "");
    return op;
}

static void op_release(gcs_op *op)
{
    if (--op->pending > 0)
        return;
    if (op->start_us && op->status != RAYC_ECANCELLED)
        gcs_metrics_storage(op->srv->metrics, now_us() - op->start_us, op->status != RAYC_OK);
    if (op->status != RAYC_OK && op->status != RAYC_ECANCELLED) {
        log_error("%s: storage write failed: %s (%s)", op->what, rayc_strerror(op->status),
                  gcs_storage_errstr(op->srv->storage));
        if (op->undo)
            op->undo(op);
    }
    if (op->client) {
        if (op->finish)
            op->finish(op);
        else if (op->reply_type)
            gcs_server__reply_status(op->client, op->reply_type, op->req_id, op->status,
                                     op->status ? "storage write failed" : "");
        gcs_server__client_unref(op->client);
    }
    free(op->undo_arg);
    free(op);
}

void gcs_server__op_fail(gcs_op *op, int status)
{
    if (op->status == RAYC_OK)
        op->status = status;
}

static void on_op_write(void *arg, int status)
{
    gcs_op *op = arg;
    if (status != RAYC_OK)
        gcs_server__op_fail(op, status);
    op_release(op);
}

static void on_op_delete(void *arg, int status)
{
    on_op_write(arg, status == RAYC_ENOTFOUND ? RAYC_OK : status);
}

void gcs_server__op_put(gcs_op *op, const char *table, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
    op->pending++;
    if (op->start_us == 0)
        op->start_us = now_us();
    gcs_storage_put(op->srv->storage, table, key, klen, val, vlen, on_op_write, op);
}

void gcs_server__op_put_msg(gcs_op *op, const char *table, const void *key, size_t klen,
                            const ProtobufCMessage *m)
{
    size_t len;
    uint8_t *buf = gcs_storage_pack(m, &len);
    if (buf == NULL) {
        gcs_server__op_fail(op, RAYC_ENOMEM);
        return;
    }
    gcs_server__op_put(op, table, key, klen, buf, len);
    free(buf);
}

void gcs_server__op_del(gcs_op *op, const char *table, const void *key, size_t klen)
{
    op->pending++;
    if (op->start_us == 0)
        op->start_us = now_us();
    gcs_storage_del(op->srv->storage, table, key, klen, on_op_delete, op);
}

void gcs_server__op_commit(gcs_op *op)
{
    op_release(op);
}

/* ------------------------------------------------------------ connections */

static const char *role_name(int role)
{
    switch (role) {
    case RPC__ROLE__ROLE_RAYLET:
        return "raylet";
    case RPC__ROLE__ROLE_DRIVER:
        return "driver";
    case RPC__ROLE__ROLE_WORKER:
        return "worker";
    case RPC__ROLE__ROLE_CLI:
        return "cli";
    }
    return "unknown";
}

static void on_handshake(gcs_client *cl, const Rpc__Handshake *hs)
{
    cl->role = hs->role;
    snprintf(cl->name, sizeof(cl->name), "%s", hs->name ? hs->name : "");
    log_info("%s connected: %s pid %d%s%s", conn_peer(cl->c), role_name(cl->role), hs->pid,
             cl->name[0] ? " " : "", cl->name);
    Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, RAYC_OK, NULL);
    r.status = &st;
    gcs_server__send(cl, MSG_HANDSHAKE_REPLY, &r.base);
}

static void on_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    gcs_client *cl = conn_data(c);
    if (type == MSG_HANDSHAKE) {
        on_handshake(cl, (const Rpc__Handshake *)m);
        return;
    }
    gcs_metrics *metrics = cl->srv->metrics;
    uint64_t t0 = now_us();
    cl->srv->svc->dispatch(cl, type, m);
    uint64_t dt = now_us() - t0;
    gcs_metrics_request(metrics, type, dt);
    if (dt > GCS_SLOW_HANDLER_US)
        log_warn("slow handler: %s from %s took %llu us", msg_name(type), conn_peer(c),
                 (unsigned long long)dt);
}

static void on_close(conn *c, int reason, const char *why)
{
    gcs_client *cl = conn_data(c);
    gcs_server *srv = cl->srv;
    if (reason == CONN_EPROTO || reason == CONN_EIO)
        log_warn("%s (%s) disconnected: %s", conn_peer(c), role_name(cl->role), why);
    else
        log_info("%s (%s) disconnected", conn_peer(c), role_name(cl->role));
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        srv->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    cl->prev = cl->next = NULL;
    gcs_pubsub_unsubscribe(srv->pubsub, cl);
    if (!srv->stopping)
        srv->svc->client_closed(cl);
    cl->c = NULL;
    gcs_server__client_unref(cl);
}

static const conn_handlers client_handlers = {on_frame, on_close};

/* A new connection from the listener. Until its handshake it counts against
 * the gate (a cap on unauthenticated peers) and has a deadline; after it, a
 * peer that stops reading its replies is closed at GCS_MAX_OUTPUT. */
void gcs_server__accept(gcs_server *srv, int fd)
{
    gcs_client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        log_error("out of memory accepting a connection");
        close(fd);
        return;
    }
    cl->srv = srv;
    cl->refs = 1;
    conn_opts opts = {.max_frame = srv->max_frame,
                      .max_output = GCS_MAX_OUTPUT,
                      .gate = &srv->gate,
                      .token = srv->token,
                      .require_auth = true};
    cl->c = conn_accept(srv->base, fd, &client_handlers, cl, &opts);
    if (cl->c == NULL) {
        if (errno == EBUSY) {
            if ((srv->gate.refused & (srv->gate.refused - 1)) == 0) /* 1, 2, 4, 8, ... */
                log_warn("refused a connection: %d still in their handshake (%llu refused)",
                         srv->gate.unauthed, (unsigned long long)srv->gate.refused);
        } else {
            log_error("cannot set up a connection");
        }
        free(cl);
        return;
    }
    cl->next = srv->clients;
    if (srv->clients)
        srv->clients->prev = cl;
    srv->clients = cl;
}

static void on_accept(void *arg, int fd)
{
    net_tcp_nodelay(fd);
    gcs_server__accept(arg, fd);
}

/* ---------------------------------------------------------------- health */

static void on_node_dead(void *arg, const Rpc__NodeInfo *node)
{
    gcs_server *srv = arg;
    char hex[ID_HEX_MAX];
    id_hex(node->node_id.data, node->node_id.len, hex);
    char what[64];
    snprintf(what, sizeof(what), "node %.12s died", hex);
    gcs_op *op = gcs_server__op_new(srv, NULL, 0, 0, NULL, what);
    srv->svc->node_dead(srv, node, op);
    gcs_server__op_commit(op);
}

static void on_health(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcs_server *srv = arg;
    gcs_node_check_health(srv->nodes, now_ms(), srv->health_timeout_ms, on_node_dead, srv);
    srv->svc->tick(srv);
}

/* --------------------------------------------------------------- loading */

static void load_failed(gcs_server *srv, const char *table, int status)
{
    if (srv->fatal[0] == '\0')
        snprintf(srv->fatal, sizeof(srv->fatal), "cannot load table %s from %s storage: %s%s%s",
                 table, gcs_storage_kind(srv->storage), rayc_strerror(status),
                 gcs_storage_errstr(srv->storage)[0] ? ": " : "", gcs_storage_errstr(srv->storage));
    event_base_loopbreak(srv->base);
}

static void load_done(gcs_server *srv)
{
    if (--srv->loads_pending > 0 || srv->fatal[0])
        return;
    srv->ready = true;
    srv->listener = listener_new(srv->base, srv->listen_fd, "gcs", on_accept, srv);
    if (srv->listener == NULL) {
        snprintf(srv->fatal, sizeof(srv->fatal), "out of memory");
        event_base_loopbreak(srv->base);
        return;
    }
    uint64_t period = srv->heartbeat_interval_ms / 2;
    if (period < HEALTH_MIN_PERIOD_MS)
        period = HEALTH_MIN_PERIOD_MS;
    struct timeval tv = {(time_t)(period / 1000), (suseconds_t)(period % 1000) * 1000};
    event_add(srv->health_ev, &tv);
    log_info("GCS ready on %s:%d (%s storage): %zu nodes (%zu alive), %zu jobs (counter %u), "
             "%zu actors, %zu kv entries, %zu objects",
             srv->cfg->node_ip_address, srv->port, gcs_storage_kind(srv->storage),
             gcs_node_count(srv->nodes), gcs_node_alive_count(srv->nodes), gcs_job_count(srv->jobs),
             gcs_job_counter(srv->jobs), gcs_actor_count(srv->actors), gcs_kv_count(srv->kv),
             gcs_objdir_size(srv->objdir));
}

static void on_storage_del(void *arg, int status)
{
    (void)arg;
    (void)status;
}

#define LOADER(name, table, body)                                                                  \
    static void name(void *arg, int status, const gcs_storage_entry *e, size_t n)                  \
    {                                                                                              \
        gcs_server *srv = arg;                                                                     \
        if (status != RAYC_OK) {                                                                   \
            load_failed(srv, table, status);                                                       \
            return;                                                                                \
        }                                                                                          \
        for (size_t i = 0; i < n; i++) {                                                           \
            int rc = (body);                                                                       \
            if (rc == RAYC_ENOMEM) {                                                               \
                load_failed(srv, table, rc);                                                       \
                return;                                                                            \
            }                                                                                      \
            if (rc != RAYC_OK)                                                                     \
                log_warn("skipping a malformed %s record (%zu bytes)", table, e[i].val_len);       \
        }                                                                                          \
        load_done(srv);                                                                            \
    }

LOADER(load_nodes, GCS_TABLE_NODES, gcs_node_load(srv->nodes, e[i].val, e[i].val_len, now_ms()))
LOADER(load_jobs, GCS_TABLE_JOBS, gcs_job_load(srv->jobs, e[i].val, e[i].val_len))
LOADER(load_actors, GCS_TABLE_ACTORS, gcs_actor_load(srv->actors, e[i].val, e[i].val_len))
LOADER(load_pgs, GCS_TABLE_PGS, gcs_pg_table_load(srv->pgs, e[i].val, e[i].val_len))
LOADER(load_kv, GCS_TABLE_KV, gcs_kv_load(srv->kv, e[i].key, e[i].key_len, e[i].val, e[i].val_len))

/* Locations on nodes that are no longer alive are stale: drop them. */
static int load_location(gcs_server *srv, const gcs_storage_entry *e)
{
    if (e->key_len == GCS_OBJDIR_KEY_SIZE &&
        !gcs_node_is_alive(srv->nodes, e->key + OBJECT_ID_SIZE, NODE_ID_SIZE)) {
        gcs_storage_del(srv->storage, GCS_TABLE_OBJECTS, e->key, e->key_len, on_storage_del, NULL);
        return RAYC_OK;
    }
    return gcs_objdir_load(srv->objdir, e->val, e->val_len);
}
LOADER(load_objects, GCS_TABLE_OBJECTS, load_location(srv, &e[i]))

static int load_meta_entry(gcs_server *srv, const gcs_storage_entry *e)
{
    uint32_t counter;
    if (e->key_len == strlen(GCS_JOB_COUNTER_KEY) &&
        memcmp(e->key, GCS_JOB_COUNTER_KEY, e->key_len) == 0) {
        if (gcs_job_counter_parse(e->val, e->val_len, &counter) != 0)
            return RAYC_EINVAL;
        gcs_job_set_counter(srv->jobs, counter);
    }
    return RAYC_OK;
}
LOADER(load_meta, GCS_TABLE_META, load_meta_entry(srv, &e[i]))

/* Nodes first: object locations are checked against node states. */
static void start_loading(gcs_server *srv)
{
    srv->loads_pending = 7;
    gcs_storage_get_all(srv->storage, GCS_TABLE_PGS, load_pgs, srv);
    gcs_storage_get_all(srv->storage, GCS_TABLE_NODES, load_nodes, srv);
    gcs_storage_get_all(srv->storage, GCS_TABLE_JOBS, load_jobs, srv);
    gcs_storage_get_all(srv->storage, GCS_TABLE_ACTORS, load_actors, srv);
    gcs_storage_get_all(srv->storage, GCS_TABLE_KV, load_kv, srv);
    gcs_storage_get_all(srv->storage, GCS_TABLE_OBJECTS, load_objects, srv);
    gcs_storage_get_all(srv->storage, GCS_TABLE_META, load_meta, srv);
}

/* -------------------------------------------------------------- lifecycle */

static void publish_send(void *sub, const Rpc__PubMessage *m)
{
    gcs_server__send(sub, MSG_PUB_MESSAGE, &m->base);
}

gcs_server *gcs_server_new(struct event_base *base, const rayc_config *cfg, const char *token,
                           gcs_storage *storage, const gcs_services *svc, char *err, size_t errlen)
{
    gcs_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        gcs_storage_free(storage);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->base = base;
    srv->cfg = cfg;
    srv->storage = storage;
    srv->svc = svc;
    srv->listen_fd = -1;
    srv->max_frame = cfg->max_frame_bytes;
    conn_gate_init(&srv->gate, GCS_MAX_UNAUTHED);
    srv->heartbeat_interval_ms =
        cfg->heartbeat_interval_ms > 0 ? (uint64_t)cfg->heartbeat_interval_ms : 1000;
    srv->health_timeout_ms = cfg->health_timeout_ms > 0 ? (uint64_t)cfg->health_timeout_ms : 10000;
    srv->token = strdup(token ? token : "");
    srv->nodes = gcs_node_table_new();
    srv->jobs = gcs_job_table_new();
    srv->actors = gcs_actor_table_new();
    srv->pgs = gcs_pg_table_new();
    id_random_bytes(&srv->view_epoch, sizeof(srv->view_epoch));
    srv->view_epoch |= 1; /* never 0, which a raylet sends when it has no view */
    srv->kv = gcs_kv_table_new();
    srv->objdir = gcs_objdir_new();
    srv->pubsub = gcs_pubsub_new(publish_send);
    srv->health_ev = event_new(base, -1, EV_PERSIST, on_health, srv);
    srv->metrics = gcs_metrics_new();
    srv->tasks = gcs_task_table_new(
        cfg->task_events_max_per_job > 0 ? (size_t)cfg->task_events_max_per_job : 0,
        cfg->task_events_max_total > 0 ? (size_t)cfg->task_events_max_total : 0);
    if (!srv->token || !srv->nodes || !srv->jobs || !srv->actors || !srv->pgs || !srv->kv ||
        !srv->objdir || !srv->pubsub || !srv->health_ev || !srv->metrics || !srv->tasks) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "bad port %lld", (long long)cfg->port);
        goto fail;
    }
    srv->listen_fd =
        net_tcp_listen(cfg->node_ip_address, (int)cfg->port, LISTEN_BACKLOG, &srv->port);
    if (srv->listen_fd < 0) {
        if (errno == EADDRINUSE)
            snprintf(err, errlen, "port %lld is in use", (long long)cfg->port);
        else
            snprintf(err, errlen, "cannot listen on %s:%lld: %s", cfg->node_ip_address,
                     (long long)cfg->port, strerror(errno));
        goto fail;
    }
    net_set_nonblock(srv->listen_fd, true);
    start_loading(srv);
    /* The task table survives a restart in Redis (not in memory storage). */
    if (cfg->task_events_report_ms > 0 && cfg->task_events_persist &&
        strcmp(gcs_storage_kind(storage), "redis") == 0 &&
        (srv->task_store = gcs_task_store_new(
             base, storage, srv->tasks, cfg->task_events_report_ms,
             (size_t)(cfg->task_events_max_total > 0 ? cfg->task_events_max_total : 0))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return srv;
fail:
    gcs_server_free(srv);
    return NULL;
}

void gcs_server_stop(gcs_server *srv)
{
    event_base_loopbreak(srv->base);
}

const char *gcs_server_fatal(const gcs_server *srv)
{
    return srv->fatal[0] ? srv->fatal : NULL;
}

bool gcs_server_is_ready(const gcs_server *srv)
{
    return srv->ready;
}

int gcs_server_port(const gcs_server *srv)
{
    return srv->port;
}

/* Order matters: connections close first (their on_close runs from the
 * loop), then the storage is freed, which completes every op still in
 * flight (ECANCELLED) while the tables they touch still exist. */
void gcs_server_free(gcs_server *srv)
{
    if (srv == NULL)
        return;
    srv->stopping = true;
    listener_free(srv->listener);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->health_ev)
        event_free(srv->health_ev);
    for (gcs_client *cl = srv->clients; cl; cl = cl->next)
        conn_close(cl->c);
    for (int i = 0; i < SHUTDOWN_LOOP_TURNS && srv->clients; i++)
        event_base_loop(srv->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
    if (srv->clients)
        log_warn("some connections did not close before shutdown");
    gcs_storage_free(srv->storage);
    gcs_task_store_free(srv->task_store); /* after its writes were cancelled */
    gcs_pubsub_free(srv->pubsub);
    gcs_objdir_free(srv->objdir);
    gcs_kv_table_free(srv->kv);
    gcs_job_table_free(srv->jobs);
    gcs_actor_table_free(srv->actors);
    gcs_map_free(srv->pgs);
    gcs_node_table_free(srv->nodes);
    gcs_metrics_free(srv->metrics);
    gcs_task_table_free(srv->tasks);
    if (srv->token) {
        memset(srv->token, 0, strlen(srv->token));
        free(srv->token);
    }
    free(srv);
}

gcs_client *gcs_server__raylet_of(gcs_server *srv, const uint8_t *node)
{
    for (gcs_client *cl = srv->clients; cl; cl = cl->next)
        if (cl->c && cl->role == RPC__ROLE__ROLE_RAYLET && cl->has_node &&
            memcmp(cl->node_id, node, NODE_ID_SIZE) == 0)
            return cl;
    return NULL;
}
