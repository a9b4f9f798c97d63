/*
 * raylet_int.h -- state shared by the raylet's modules (node_manager.c,
 * worker_pool.c, task_manager.c). Not a public interface: one raylet, one
 * event-loop thread, one node_manager struct passed explicitly.
 */
#ifndef RAYC_RAYLET_INT_H
#define RAYC_RAYLET_INT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "ids.h"
#include "plasma_store.h"
#include "util.h"

typedef struct node_manager node_manager;
typedef struct client client;
typedef struct worker worker;
typedef struct task_manager task_manager;
typedef struct worker_pool worker_pool;
typedef struct object_manager object_manager;
typedef struct peer peer;

/* One node of the cluster view (refreshed from every heartbeat reply). */
typedef struct {
    node_id_t id;
    char address[64]; /* ip:port of its raylet's peer listener */
    bool alive;
    res_set total, available;
} view_node;

/* A local connection: a driver or a worker. */
struct client {
    node_manager *nm;
    conn *c;
    int role; /* RPC__ROLE__ROLE_DRIVER / ROLE_WORKER */
    worker_id_t id;
    int pid;
    uint32_t job_id; /* drivers: the job they registered (JobConfig) */
    plasma_client *pc;
    worker *w; /* role WORKER: the pool's record */
    bool warned_infeasible;
    client *prev, *next;
};

/* Callback for a GCS request made by a raylet module: the reply (NULL when
 * the GCS connection was lost first). Called exactly once. */
typedef void (*nm_gcs_cb)(node_manager *nm, void *arg, ProtobufCMessage *reply);

struct node_manager {
    struct event_base *base;
    const rayc_config *cfg;
    node_id_t node_id;
    char node_hex[ID_HEX_MAX];
    char token[AUTH_TOKEN_LEN + 64];
    char gcs_host[256];
    int gcs_port;
    char hostname[256];
    char socket_path[1024];
    char ready_path[1024];
    char address[64]; /* ip:port of the raylet-to-raylet listener */
    res_set total, available;
    uint64_t start_ms;

    /* GCS session */
    conn *gcs;
    int gcs_state;
    bool registered_once;
    uint64_t gcs_lost_at;
    uint64_t backoff_ms;
    uint64_t heartbeat_ms;
    uint64_t next_req_id;
    struct gcs_call *gcs_calls; /* requests waiting for a reply */
    struct event *reconnect_ev, *heartbeat_ev, *drain_timeout_ev;
    bool shutting_down;

    /* listeners and local clients */
    int unix_fd, tcp_fd;
    struct event *unix_ev, *tcp_ev;
    client *clients;
    int nclients;

    /* object store and its directory updates, batched to the GCS */
    plasma_store *store;
    plasma_client *self_pc; /* the raylet's own store client (dependency waits) */
    struct loc_rec *loc_pending;
    size_t loc_count, loc_cap;
    uint32_t *loc_adds; /* id -> 1 + index of its pending add (0: empty) */
    size_t loc_adds_cap;
    object_id_t *free_pending; /* owners' deletes to look up other copies of */
    size_t free_count, free_cap;
    struct event *loc_flush_ev;

    worker_pool *pool;
    task_manager *tm;
    object_manager *om;

    /* cluster view and connections to other raylets */
    view_node *view;
    int nview;
    peer *peers;
    uint64_t last_report_ms;
    res_set last_reported;
    struct event *report_ev;

    char exit_reason[256];
};

/* node_manager.c */
client *nm_client_by_worker(node_manager *nm, const worker_id_t *id);
/* Send a request to the GCS; cb gets the reply. Returns 0, or -1 when there
 * is no GCS connection (cb is not called). req_id is assigned here: the
 * message's first field must be req_id. */
int nm_gcs_call(node_manager *nm, uint16_t type, ProtobufCMessage *req, nm_gcs_cb cb, void *arg);
/* The local driver of a job, or NULL. */
client *nm_driver_of_job(node_manager *nm, uint32_t job_id);
/* The view's entry for a node, or NULL if the node is unknown. */
const view_node *nm_view_node(const node_manager *nm, const node_id_t *id);

/* peers.c: connections to other raylets (token-checked TCP). */
/* The connection to a live node, made on first use from the view's address.
 * NULL when the node is unknown, dead, or this node. Frames it receives are
 * dispatched like those of accepted peer connections. */
conn *peers_get(node_manager *nm, const node_id_t *node);
/* An accepted raylet connection (after the TCP accept). */
void peers_accept(node_manager *nm, int fd);
/* A node died: drop our connections to it. */
void peers_node_died(node_manager *nm, const node_id_t *node);
void peers_free_all(node_manager *nm);
/* The node at the other end of a peer connection (zero before its handshake). */
const node_id_t *peers_node_of(conn *c);

#endif
