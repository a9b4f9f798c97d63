/*
 * client_registry.c -- local drivers and workers; see client_registry.h.
 * Runs in the raylet's loop thread.
 */
#include "client_registry.h"

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"

struct client_registry {
    struct event_base *base;
    const rayc_config *cfg;
    plasma_store *store;
    node_id_t self;
    creg_hooks hooks;
    void *arg;
    client *clients;
    int nclients;
};

static void client_unlink(client *cl)
{
    client_registry *reg = cl->reg;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        reg->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    reg->nclients--;
}

client *creg_by_worker(client_registry *reg, const worker_id_t *id)
{
    for (client *cl = reg->clients; cl; cl = cl->next)
        if (cl->pc && memcmp(cl->id.b, id->b, WORKER_ID_SIZE) == 0)
            return cl;
    return NULL;
}

client *creg_by_owner_tag(client_registry *reg, const object_id_t *id)
{
    for (client *cl = reg->clients; cl; cl = cl->next)
        if (cl->pc && id_owner_tag_matches(id->b, &cl->id))
            return cl;
    return NULL;
}

client *creg_driver_of_job(client_registry *reg, uint32_t job_id)
{
    for (client *cl = reg->clients; cl; cl = cl->next)
        if (cl->role == RPC__ROLE__ROLE_DRIVER && cl->job_id == job_id)
            return cl;
    return NULL;
}

void creg_broadcast(client_registry *reg, uint16_t type, ProtobufCMessage *msg)
{
    for (client *cl = reg->clients; cl; cl = cl->next)
        if (cl->pc)
            conn_send(cl->c, type, msg);
}

void creg_notice(client *cl, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    Rpc__ClusterNotice n = RPC__CLUSTER_NOTICE__INIT;
    n.message = message;
    conn_send(cl->c, MSG_CLUSTER_NOTICE, &n.base);
}

static void on_handshake(client *cl, Rpc__Handshake *hs)
{
    client_registry *reg = cl->reg;
    cl->role = hs->role;
    cl->pid = hs->pid;
    if (hs->id.len != WORKER_ID_SIZE || creg_by_worker(reg, (worker_id_t *)hs->id.data)) {
        log_warn("closing %s: missing or duplicate worker id", conn_peer(cl->c));
        conn_close(cl->c);
        return;
    }
    memcpy(cl->id.b, hs->id.data, WORKER_ID_SIZE);
    if (!reg->hooks.hello(reg->arg, cl)) {
        conn_close(cl->c);
        return;
    }
    cl->pc = plasma_client_new(reg->store, cl->c);
    if (cl->pc == NULL) {
        conn_close(cl->c);
        return;
    }
    plasma_client_set_worker_id(cl->pc, &cl->id);
    Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.status = &st;
    r.id.data = reg->self.b;
    r.id.len = NODE_ID_SIZE;
    r.session_dir = reg->cfg->session_dir;
    r.num_fds = 1;
    r.store_size = plasma_store_capacity(reg->store);
    int fd = plasma_store_fd(reg->store);
    conn_send_fds(cl->c, MSG_HANDSHAKE_REPLY, &r.base, &fd, 1);
    reg->hooks.ready(reg->arg, cl);
}

static void on_client_frame(conn *c, uint16_t type, ProtobufCMessage *msg)
{
    client *cl = conn_data(c);
    if (type == MSG_HANDSHAKE) {
        on_handshake(cl, (Rpc__Handshake *)msg);
        return;
    }
    if (cl->pc == NULL)
        return; /* handshake refused; closing */
    cl->reg->hooks.frame(cl->reg->arg, cl, type, msg);
}

static void on_client_close(conn *c, int reason, const char *why)
{
    client *cl = conn_data(c);
    (void)reason;
    log_debug("client %s gone: %s", conn_peer(c), why);
    client_registry *reg = cl->reg;
    client_unlink(cl);
    reg->hooks.closed(reg->arg, cl);
    plasma_client_free(cl->pc);
    free(cl);
}

static const conn_handlers client_handlers = {on_client_frame, on_client_close};

void creg_accept(client_registry *reg, int fd, conn_gate *gate)
{
    client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        close(fd);
        return;
    }
    cl->reg = reg;
    conn_opts o = {
        .max_frame = reg->cfg->max_frame_bytes, .max_output = CREG_MAX_OUTPUT, .gate = gate};
    cl->c = conn_accept(reg->base, fd, &client_handlers, cl, &o);
    if (cl->c == NULL) {
        if (errno == EBUSY && (gate->refused & (gate->refused - 1)) == 0) /* 1, 2, 4, ... */
            log_warn("refused a local connection: %d still in their handshake (%llu refused)",
                     gate->unauthed, (unsigned long long)gate->refused);
        free(cl);
        return;
    }
    cl->next = reg->clients;
    if (reg->clients)
        reg->clients->prev = cl;
    reg->clients = cl;
    reg->nclients++;
}

client_registry *creg_new(struct event_base *base, const rayc_config *cfg, plasma_store *store,
                          const node_id_t *self, const creg_hooks *hooks, void *arg)
{
    client_registry *reg = calloc(1, sizeof(*reg));
    if (reg == NULL)
        return NULL;
    reg->base = base;
    reg->cfg = cfg;
    reg->store = store;
    reg->self = *self;
    reg->hooks = *hooks;
    reg->arg = arg;
    return reg;
}

void creg_close_all(client_registry *reg)
{
    if (reg == NULL)
        return;
    for (client *cl = reg->clients; cl; cl = cl->next)
        conn_close(cl->c);
}

void creg_free(client_registry *reg)
{
    free(reg);
}
