/*
 * peers.c -- connections between raylets; see peers.h.
 * Runs in the raylet's loop thread.
 */
#include "peers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

typedef struct peer peer;

struct peers {
    struct event_base *base;
    const rayc_config *cfg;
    node_id_t self;
    const char *token;
    gcs_session *gs;
    peers_hooks hooks;
    void *arg;
    peer *list;
};

struct peer {
    peers *ps;
    conn *c;
    node_id_t node; /* zero until an accepted peer's handshake */
    bool outgoing;
    peer *prev, *next;
};

static void unlink_peer(peers *ps, peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        ps->list = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void on_peer_frame(conn *c, uint16_t type, ProtobufCMessage *msg)
{
    peer *p = conn_data(c);
    peers *ps = p->ps;
    if (type == MSG_HANDSHAKE) {
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
        r.id.data = ps->self.b;
        r.id.len = NODE_ID_SIZE;
        conn_send(c, MSG_HANDSHAKE_REPLY, &r.base);
        return;
    }
    if (type == MSG_HANDSHAKE_REPLY)
        return;
    ps->hooks.frame(ps->arg, c, &p->node, type, msg);
}

static void on_peer_close(conn *c, int reason, const char *why)
{
    peer *p = conn_data(c);
    (void)reason;
    if (p == NULL)
        return;
    peers *ps = p->ps;
    log_debug("raylet connection %s closed: %s", conn_peer(c), why);
    unlink_peer(ps, p);
    ps->hooks.closed(ps->arg, c);
    free(p);
}

static const conn_handlers peer_handlers = {on_peer_frame, on_peer_close};

static peer *add_peer(peers *ps, bool outgoing)
{
    peer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->ps = ps;
    p->outgoing = outgoing;
    p->next = ps->list;
    if (ps->list)
        ps->list->prev = p;
    ps->list = p;
    return p;
}

void peers_accept(peers *ps, int fd, conn_gate *gate)
{
    peer *p = add_peer(ps, false);
    if (p == NULL) {
        close(fd);
        return;
    }
    net_tcp_nodelay(fd);
    conn_opts o = {.max_frame = ps->cfg->max_frame_bytes,
                   .token = ps->token,
                   .require_auth = true,
                   .gate = gate};
    p->c = conn_accept(ps->base, fd, &peer_handlers, p, &o);
    if (p->c == NULL) {
        unlink_peer(ps, p);
        free(p);
    }
}

conn *peers_get(peers *ps, const node_id_t *node)
{
    if (memcmp(node->b, ps->self.b, NODE_ID_SIZE) == 0)
        return NULL;
    for (peer *p = ps->list; p; p = p->next)
        if (p->outgoing && !conn_is_closed(p->c) && memcmp(p->node.b, node->b, NODE_ID_SIZE) == 0)
            return p->c;
    const view_node *v = gs_view_node(ps->gs, node);
    if (v == NULL || !v->alive) {
        /* Not in our view yet (we joined a moment ago, and a node that
         * forwarded us a task wants its result): answer on the connection
         * it opened to us. */
        for (peer *p = ps->list; p; p = p->next)
            if (!p->outgoing && !conn_is_closed(p->c) &&
                memcmp(p->node.b, node->b, NODE_ID_SIZE) == 0)
                return p->c;
        return NULL;
    }
    char host[64];
    int port;
    if (parse_host_port(v->address, host, sizeof(host), &port) != 0)
        return NULL;
    int fd = net_tcp_connect_nb(host, port);
    if (fd < 0) {
        log_syserr(errno, "cannot connect to raylet %s", v->address);
        return NULL;
    }
    peer *p = add_peer(ps, true);
    if (p == NULL) {
        close(fd);
        return NULL;
    }
    p->node = *node;
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_RAYLET;
    hs.id.data = ps->self.b;
    hs.id.len = NODE_ID_SIZE;
    hs.pid = (int32_t)getpid();
    hs.name = "raylet";
    conn_opts o = {.max_frame = ps->cfg->max_frame_bytes, .token = ps->token, .handshake = &hs};
    p->c = conn_connect(ps->base, fd, &peer_handlers, p, &o);
    if (p->c == NULL) {
        unlink_peer(ps, p);
        free(p);
        return NULL;
    }
    return p->c;
}

void peers_node_died(peers *ps, const node_id_t *node)
{
    for (peer *p = ps->list; p; p = p->next)
        if (memcmp(p->node.b, node->b, NODE_ID_SIZE) == 0)
            conn_close(p->c);
}

void peers_close_all(peers *ps)
{
    if (ps == NULL)
        return;
    for (peer *p = ps->list; p; p = p->next)
        conn_close(p->c);
}

peers *peers_new(struct event_base *base, const rayc_config *cfg, const node_id_t *self,
                 const char *token, gcs_session *gs, const peers_hooks *hooks, void *arg)
{
    peers *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    ps->base = base;
    ps->cfg = cfg;
    ps->self = *self;
    ps->token = token;
    ps->gs = gs;
    ps->hooks = *hooks;
    ps->arg = arg;
    return ps;
}

void peers_free(peers *ps)
{
    free(ps);
}
