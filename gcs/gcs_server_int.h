/*
 * gcs_server_int.h -- internals shared by gcs_server.c (life cycle,
 * connections, loading, health) and gcs_rpc.c (one handler per RPC).
 * Not for use outside gcs/.
 *
 * Clients: one gcs_client per accepted connection, reference counted so a
 * storage write still in flight when the connection closes can complete
 * (its reply is then dropped). The connection holds one reference, each
 * pending op another.
 *
 * Ops: a request that writes to storage becomes a gcs_op. Each write adds
 * to op->pending; gcs_server__op_commit drops the handler's own hold. When
 * the last write completes, op->finish sends the reply (status = the first
 * write error, if any). Ops without a client (health check, driver exit)
 * only log failures.
 * Thread-safety: everything runs on the GCS loop's thread.
 */
#ifndef RAYC_GCS_SERVER_INT_H
#define RAYC_GCS_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "listener.h"
#include "gcs_actor.h"
#include "gcs_job.h"
#include "gcs_kv.h"
#include "gcs_metrics.h"
#include "gcs_node.h"
#include "gcs_objdir.h"
#include "gcs_pubsub.h"
#include "gcs_server.h"
#include "gcs_storage.h"
#include "gcs_task.h"
#include "ids.h"

#define GCS_SLOW_HANDLER_US 10000 /* a handler running longer is logged */

typedef struct gcs_client gcs_client;
typedef struct gcs_op gcs_op;

struct gcs_client {
    gcs_server *srv;
    conn *c; /* NULL once the connection closed */
    int refs;
    int role; /* Rpc__Role */
    bool has_node;
    uint8_t node_id[NODE_ID_SIZE]; /* the node this connection registered */
    uint32_t *jobs;                /* jobs added on this (driver) connection */
    size_t njobs, capjobs;
    char name[64];
    gcs_client *prev, *next; /* srv->clients, while connected */
};

struct gcs_server {
    struct event_base *base;
    const rayc_config *cfg;
    char *token;
    gcs_storage *storage;
    gcs_node_table *nodes;
    gcs_job_table *jobs;
    gcs_actor_table *actors;
    const gcs_services *svc; /* the handlers (gcs_rpc.c) */
    struct gcs_map *pgs;     /* placement groups (gcs_pg.c) */
    uint64_t pg_round;       /* the last prepare round's req_id */
    uint64_t view_epoch;     /* random per start: heartbeat view versions are per epoch */
    gcs_kv_table *kv;
    gcs_objdir *objdir;
    gcs_pubsub *pubsub;
    gcs_task_table *tasks; /* issue 15: task events (gcs_task.h) */
    int listen_fd;
    int port;
    listener *listener; /* made once the tables are loaded */
    conn_gate gate;     /* connections still in their handshake */
    struct event *health_ev;
    gcs_client *clients;
    size_t max_frame;
    uint64_t heartbeat_interval_ms;
    uint64_t health_timeout_ms;
    int loads_pending;
    bool ready;
    bool stopping;
    char fatal[256];
    gcs_metrics *metrics;              /* issue 15: counters for /metrics (gcs_metrics.h) */
    struct gcs_task_store *task_store; /* issue 15: the task table in storage (NULL: memory) */
    /* issue 15: a raylet's LogReply goes to the dashboard (gcs_http_logs.c) */
    void (*log_reply)(void *arg, const Rpc__LogReply *r);
    void *log_reply_arg;
};

typedef void (*gcs_op_finish_fn)(gcs_op *op);

struct gcs_op {
    gcs_server *srv;
    gcs_client *client; /* holds a reference; NULL for internal ops */
    uint64_t req_id;
    uint16_t reply_type;
    int pending;             /* writes in flight + the handler's hold */
    int status;              /* first failure */
    char what[64];           /* for logs: "register node ab12..." */
    uint64_t start_us;       /* issue 15: first write issued (0: none), for /metrics */
    gcs_op_finish_fn finish; /* NULL: a status-only reply (or none) */
    /* Run when a write failed (not at shutdown), before finish: puts the
     * in-memory tables back as storage has them. undo_arg is freed after. */
    void (*undo)(gcs_op *op);
    void *undo_arg;
    size_t undo_len;
    union {
        uint32_t job_id;
        bool flag;
        uint8_t actor_id[ACTOR_ID_SIZE];
    } u;
};

/* Client references. unref frees the client at zero. */
void gcs_server__client_ref(gcs_client *cl);
void gcs_server__client_unref(gcs_client *cl);

/* The connection of node's raylet (NODE_ID_SIZE bytes), or NULL. */
gcs_client *gcs_server__raylet_of(gcs_server *srv, const uint8_t *node);
/* Queue m on the client's connection (dropped if it closed). */
void gcs_server__send(gcs_client *cl, uint16_t type, const ProtobufCMessage *m);
/* A reply of reply_type with only req_id and status set. */
void gcs_server__reply_status(gcs_client *cl, uint16_t reply_type, uint64_t req_id, int code,
                              const char *message);

/* A new op (client may be NULL). Never NULL: out of memory is fatal. */
gcs_op *gcs_server__op_new(gcs_server *srv, gcs_client *cl, uint64_t req_id, uint16_t reply_type,
                           gcs_op_finish_fn finish, const char *what);
void gcs_server__op_put(gcs_op *op, const char *table, const void *key, size_t klen,
                        const void *val, size_t vlen);
/* Persist a message (packed) under key. */
void gcs_server__op_put_msg(gcs_op *op, const char *table, const void *key, size_t klen,
                            const ProtobufCMessage *m);
/* Delete; an absent key counts as success. */
void gcs_server__op_del(gcs_op *op, const char *table, const void *key, size_t klen);
/* Record a failure detected by the handler itself. */
void gcs_server__op_fail(gcs_op *op, int status);
/* The handler is done issuing writes. */
void gcs_server__op_commit(gcs_op *op);

/* Serve a connected socket as the listener serves an accepted one (gate,
 * deadline, token). Takes fd (closed on failure). Used by on_accept, and by
 * tests/fuzz/fuzz_gcs.c to feed socketpairs. */
void gcs_server__accept(gcs_server *srv, int fd);

struct gcs_services {
    /* Serve one request frame from a ready connection. */
    void (*dispatch)(gcs_client *cl, uint16_t type, const ProtobufCMessage *m);
    /* A node just became DEAD (health check or drain): persist it, publish
     * it, drop and publish its object locations. Writes go into op. */
    void (*node_dead)(gcs_server *srv, const Rpc__NodeInfo *node, gcs_op *op);
    /* A connection closed: end the jobs its driver added. */
    void (*client_closed)(gcs_client *cl);
    /* Each health check: the managers' periodic work (waiting actors and
     * placement groups are placed, stuck rounds rolled back). */
    void (*tick)(gcs_server *srv);
};
/* gcs_rpc.c: a node just became DEAD; also reached through a drain. */
void gcs_rpc_node_dead(gcs_server *srv, const Rpc__NodeInfo *node, gcs_op *op);

/* gcs_actor_manager.c: the actor RPCs (handlers of gcs_rpc.c's table). */
void gcs_actor_rpc_register(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_actor_rpc_get(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_actor_rpc_kill(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_actor_rpc_list(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
/* Raylet reports (no reply): a constructor ran or failed; a worker died. */
void gcs_actor_rpc_created(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_actor_rpc_died(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
/* gcs_pg.c: placement groups. */
void gcs_pg_rpc_create(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_pg_rpc_get(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_pg_rpc_remove(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_pg_rpc_list(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
void gcs_pg_rpc_prepared(gcs_client *cl, const ProtobufCMessage *m, uint64_t req_id);
/* Rounds that timed out are rolled back; waiting groups are placed. */
void gcs_pg_tick(gcs_server *srv);
void gcs_pg_node_died(gcs_server *srv, const node_id_t *node);
void gcs_pg_job_ended(gcs_server *srv, uint32_t job_id);
/* The node of the committed bundle an actor's creation task (spec) of group
 * pg_id, bundle index (-1: any that fits) goes to. false: none (yet). */
bool gcs_pg_node_for(gcs_server *srv, const uint8_t *pg_id, int index, const Rpc__TaskSpec *spec,
                     node_id_t *out);
/* Every group as messages (the state API); free with gcs_pg_list_free. */
size_t gcs_pg_list(const gcs_server *srv, Rpc__PlacementGroupInfo *out, size_t cap);
void gcs_pg_list_free(Rpc__PlacementGroupInfo *infos, size_t n);
/* Place the waiting actors that fit nowhere before (health tick, new node). */
void gcs_actor_manager_tick(gcs_server *srv);
/* A job ended / a node died: its actors die or restart; writes go into op. */
void gcs_actor_manager_job_ended(gcs_server *srv, uint32_t job_id, gcs_op *op);
void gcs_actor_manager_node_died(gcs_server *srv, const node_id_t *node, gcs_op *op);

#endif
