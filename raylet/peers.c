/*
 * peers.c -- TCP connections between raylets (token-checked), used for
 * spillback (ForwardTask), remote completions (TaskDone) and the object
 * manager. One outgoing connection per remote node, made on first use from
 * the cluster view's address; accepted connections are dispatched alike.
 * Runs in the raylet's loop thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "object_manager.h"
#include "raylet_int.h"
#include "task_manager.h"

struct peer {
    node_manager *nm;
    conn *c;
    node_id_t node; /* zero until an accepted peer's handshake */
    bool outgoing;
    peer *prev, *next;
};

static void unlink_peer(node_manager *nm, peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        nm->peers = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void on_peer_frame(conn *c, uint16_t type, ProtobufCMessage *msg)
{
    peer *p = conn_data(c);
    node_manager *nm = p->nm;
    switch (type) {
    case MSG_HANDSHAKE: {
        Rpc__Handshake *hs = (Rpc__Handshake *)msg;
        if (hs->role != RPC__ROLE__ROLE_RAYLET || hs->id.len != NODE_ID_SIZE) {
            log_warn("closing %s: peer port is for raylets only", conn_peer(c));
            conn_close(c);
            return;
        }
        memcpy(p->node.b, hs->id.data, NODE_ID_SIZE);
        Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
        Rpc__Status st = RPC__STATUS__INIT;
        r.status = &st;
        r.id.data = nm->node_id.b;
        r.id.len = NODE_ID_SIZE;
        conn_send(c, MSG_HANDSHAKE_REPLY, &r.base);
        return;
    }
    case MSG_HANDSHAKE_REPLY:
        return;
    case MSG_FORWARD_TASK:
        conn_keep_msg(c);
        tm_forwarded(nm->tm, &p->node, (Rpc__ForwardTask *)msg);
        return;
    case MSG_TASK_DONE:
        tm_remote_done(nm->tm, (Rpc__TaskDone *)msg);
        return;
    case MSG_CANCEL_TASK:
        tm_cancel(nm->tm, NULL, (Rpc__CancelTask *)msg);
        return;
    case MSG_WORKER_OUTPUT: {
        /* Output of a worker on that node whose job's driver is here. */
        Rpc__WorkerOutput *out = (Rpc__WorkerOutput *)msg;
        client *drv = nm_driver_of_job(nm, out->job_id);
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

static void on_peer_close(conn *c, int reason, const char *why)
{
    peer *p = conn_data(c);
    (void)reason;
    if (p == NULL)
        return;
    node_manager *nm = p->nm;
    log_debug("raylet connection %s closed: %s", conn_peer(c), why);
    unlink_peer(nm, p);
    om_peer_closed(nm->om, c);
    free(p);
}

static const conn_handlers peer_handlers = {on_peer_frame, on_peer_close};

static peer *add_peer(node_manager *nm, bool outgoing)
{
    peer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->nm = nm;
    p->outgoing = outgoing;
    p->next = nm->peers;
    if (nm->peers)
        nm->peers->prev = p;
    nm->peers = p;
    return p;
}

void peers_accept(node_manager *nm, int fd)
{
    peer *p = add_peer(nm, false);
    if (p == NULL) {
        close(fd);
        return;
    }
    net_tcp_nodelay(fd);
    conn_opts o = {.max_frame = nm->cfg->max_frame_bytes, .token = nm->token, .require_auth = true};
    p->c = conn_accept(nm->base, fd, &peer_handlers, p, &o);
    if (p->c == NULL) {
        unlink_peer(nm, p);
        free(p);
    }
}

conn *peers_get(node_manager *nm, const node_id_t *node)
{
    if (memcmp(node->b, nm->node_id.b, NODE_ID_SIZE) == 0)
        return NULL;
    for (peer *p = nm->peers; p; p = p->next)
        if (p->outgoing && !conn_is_closed(p->c) && memcmp(p->node.b, node->b, NODE_ID_SIZE) == 0)
            return p->c;
    const view_node *v = nm_view_node(nm, node);
    if (v == NULL || !v->alive)
        return NULL;
    char host[64];
    int port;
    if (parse_host_port(v->address, host, sizeof(host), &port) != 0)
        return NULL;
    int fd = net_tcp_connect_nb(host, port);
    if (fd < 0) {
        log_syserr(errno, "cannot connect to raylet %s", v->address);
        return NULL;
    }
    peer *p = add_peer(nm, true);
    if (p == NULL) {
        close(fd);
        return NULL;
    }
    p->node = *node;
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_RAYLET;
    hs.id.data = nm->node_id.b;
    hs.id.len = NODE_ID_SIZE;
    hs.pid = (int32_t)getpid();
    hs.name = "raylet";
    conn_opts o = {.max_frame = nm->cfg->max_frame_bytes, .token = nm->token, .handshake = &hs};
    p->c = conn_connect(nm->base, fd, &peer_handlers, p, &o);
    if (p->c == NULL) {
        unlink_peer(nm, p);
        free(p);
        return NULL;
    }
    return p->c;
}

const node_id_t *peers_node_of(conn *c)
{
    peer *p = conn_data(c);
    return &p->node;
}

void peers_node_died(node_manager *nm, const node_id_t *node)
{
    for (peer *p = nm->peers; p; p = p->next)
        if (memcmp(p->node.b, node->b, NODE_ID_SIZE) == 0)
            conn_close(p->c);
}

void peers_free_all(node_manager *nm)
{
    for (peer *p = nm->peers; p; p = p->next)
        conn_close(p->c);
}
