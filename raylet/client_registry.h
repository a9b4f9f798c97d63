/*
 * client_registry.h -- the raylet's local clients: drivers and workers
 * connected on its Unix socket.
 *
 * The registry accepts a connection, answers its handshake (node id,
 * session dir, the object store's fd by SCM_RIGHTS) and gives it a store
 * client; every later frame goes to the frame hook. It finds clients by
 * worker id and drivers by job. Which frames mean what is its user's
 * business (the node manager routes them).
 *
 * Ownership: the registry owns each client from accept to close; the closed
 * hook is the last moment a client may be used.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_CLIENT_REGISTRY_H
#define RAYC_CLIENT_REGISTRY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "ids.h"
#include "plasma_store.h"

typedef struct client_registry client_registry;
typedef struct client client;
struct worker;

/* A local connection: a driver or a worker. Fields are read by the raylet's
 * components; the registry sets c, role, id, pid and pc, its user the rest. */
struct client {
    conn *c;
    int role; /* RPC__ROLE__ROLE_DRIVER / ROLE_WORKER */
    worker_id_t id;
    int pid;
    uint32_t job_id;   /* drivers: the job they registered (JobConfig) */
    plasma_client *pc; /* NULL until the handshake is accepted */
    struct worker *w;  /* role WORKER: the pool's record */
    bool warned_infeasible;
    uint32_t npulls; /* pulls it asked for (PULL_OBJECTS), in flight */
    /* registry-private */
    client_registry *reg;
    client *prev, *next;
};

typedef struct {
    /* A handshake with a new, unique worker id: return false to refuse the
     * client (it is closed). Runs before the client has a store client. */
    bool (*hello)(void *arg, client *cl);
    /* The handshake reply has gone out: the client is usable. */
    void (*ready)(void *arg, client *cl);
    /* A frame after the handshake. The message lives during the call unless
     * conn_keep_msg(cl->c) is called. */
    void (*frame)(void *arg, client *cl, uint16_t type, ProtobufCMessage *msg);
    /* The connection closed; the client is freed when this returns. */
    void (*closed)(void *arg, client *cl);
} creg_hooks;

/* Returns NULL on allocation failure. store and cfg are borrowed. */
client_registry *creg_new(struct event_base *base, const rayc_config *cfg, plasma_store *store,
                          const node_id_t *self, const creg_hooks *hooks, void *arg);
/* Close every client (their closed hooks run from the loop) and free the
 * registry once they are gone: call creg_close_all, run the loop, then this.
 * NULL-safe. */
void creg_free(client_registry *reg);
void creg_close_all(client_registry *reg);

/* Bytes of replies queued to a local client that does not read before it is
 * closed (a client asking STORE_STATS in a loop without reading). */
#define CREG_MAX_OUTPUT (128u << 20)

/* A connection accepted on the Unix socket (the registry owns fd now). Until
 * its handshake it counts against gate (refused when the gate is full). */
void creg_accept(client_registry *reg, int fd, conn_gate *gate);

/* The registered client with this worker id, or NULL. */
client *creg_by_worker(client_registry *reg, const worker_id_t *id);
/* The registered client whose owner tag starts object (or task) id id: the
 * id's owner, if it is here (ids.h). NULL if none. */
client *creg_by_owner_tag(client_registry *reg, const object_id_t *id);
/* The local driver of a job, or NULL. */
client *creg_driver_of_job(client_registry *reg, uint32_t job_id);
/* Send msg to every registered client. */
void creg_broadcast(client_registry *reg, uint16_t type, ProtobufCMessage *msg);
/* Send a ClusterNotice (a one-line message the driver prints). */
void creg_notice(client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
