/*
 * gcs_session.h -- the raylet's session with the GCS: connect, register,
 * heartbeat, reconnect, the cluster view and requests other components make
 * to the GCS (Ray's GcsClient as a raylet sees it).
 *
 * State machine:
 *   CONNECTING --Hello/Handshake ok--> REGISTERING --RegisterNode ok--> REGISTERED
 *   any state --connection lost--> BACKOFF --timer--> CONNECTING
 * Until the first registration succeeds every failure is fatal (the user is
 * told at once that the head is unreachable or refused the token). After it,
 * a lost GCS is retried with exponential back-off for gcs_reconnect_timeout_ms
 * and the node re-registers under the same node id, keeping its workers and
 * objects.
 *
 * The session knows nothing of tasks or objects: what it reports (load) and
 * what it learns (view, dead nodes, ended jobs, fatal errors) go through the
 * hooks given at creation.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_GCS_SESSION_H
#define RAYC_GCS_SESSION_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ids.h"
#include "msg.h"
#include "plasma_store.h"
#include "util.h"

typedef struct gcs_session gcs_session;

/* One node of the cluster view (refreshed from every heartbeat reply). */
typedef struct {
    node_id_t id;
    char address[64]; /* ip:port of its raylet's peer listener */
    bool alive;
    res_set total, available;
} view_node;

/* The reply to a GCS request (NULL when the GCS connection was lost first).
 * Called exactly once; the reply lives only during the call. */
typedef void (*gs_reply_cb)(void *arg, ProtobufCMessage *reply);

/* What this node is (RegisterNode). Strings and total are borrowed and must
 * outlive the session. */
typedef struct {
    node_id_t node_id;
    const char *node_hex;
    const char *address;     /* ip:port of the raylet-to-raylet listener */
    const char *socket_path; /* local clients' socket */
    const char *hostname;
    const char *ready_path; /* written once at the first registration */
    const char *token;      /* cluster token */
    const res_set *total;
    uint64_t start_ms;
} gs_node;

#define GS_WAITS_MAX 4   /* lines on tasks waiting long, per heartbeat */
#define GS_WAIT_LEN  256 /* bytes per line, NUL included (the GCS keeps up to 255) */

/* The node's load as heartbeats report it. */
typedef struct {
    res_set available;
    plasma_stats store;
    uint64_t pending_tasks;
    uint64_t oom_kills; /* the memory monitor's kills so far */
    size_t n_waits;     /* why tasks wait long for their arguments */
    char waits[GS_WAITS_MAX][GS_WAIT_LEN];
    bool wants_view; /* tasks wait here that another node might run: report often */
} gs_load;

typedef struct {
    /* Fill in the current load (for every register and heartbeat). */
    void (*load)(void *arg, gs_load *out);
    /* A heartbeat reply replaced the view; nodes_changed: a node joined or left. */
    void (*view_changed)(void *arg, bool nodes_changed);
    /* Another node died (the view already shows it dead). */
    void (*node_died)(void *arg, const node_id_t *node);
    /* A job stopped running (its driver left, maybe on another node). */
    void (*job_ended)(void *arg, uint32_t job_id);
    /* The raylet must exit: reason is one line. */
    void (*fatal)(void *arg, const char *reason);
    /* Draining finished (or the GCS went away while draining): stop. */
    void (*stopped)(void *arg);
    /* The GCS asks this node to create an actor, or to kill one's worker. */
    void (*create_actor)(void *arg, const Rpc__ActorInfo *actor);
    void (*kill_actor)(void *arg, const Rpc__KillActorWorker *k);
    /* Placement groups: PrepareBundles, CommitBundles, ReturnBundles. */
    void (*pg_message)(void *arg, uint16_t type, const ProtobufCMessage *msg);
    /* `rayc logs` (issue 15): list or read this node's log files; may be NULL. */
    void (*log_request)(void *arg, const Rpc__LogRequest *rq);
} gs_hooks;

/* A session for node self (self's strings borrowed). Returns NULL with err
 * set on failure (bad --gcs-address, out of memory). */
gcs_session *gs_new(struct event_base *base, const rayc_config *cfg, const gs_node *self,
                    const gs_hooks *hooks, void *arg, char *err, size_t errlen);
/* Stop the timers, close the connection and fail every outstanding request
 * (callbacks get NULL); the view stays readable until gs_free. For the
 * raylet's teardown: nothing reconnects after it. */
void gs_stop(gcs_session *gs);
/* gs_stop, then free. NULL-safe. */
void gs_free(gcs_session *gs);

/* Connect and register. A failure before the first registration is fatal
 * (the fatal hook runs, maybe before this returns). */
void gs_start(gcs_session *gs);
/* Tell the GCS this node is leaving; the stopped hook runs when it answers
 * (or after 1 s). Returns -1 when not registered (nothing to drain). */
int gs_drain(gcs_session *gs);

/* True while registered with a live connection. */
bool gs_ready(const gcs_session *gs);
/* Send a request; cb gets the reply. The message's first field must be
 * req_id (assigned here). Returns 0, or -1 when not registered (cb is not
 * called). */
int gs_call(gcs_session *gs, uint16_t type, ProtobufCMessage *req, gs_reply_cb cb, void *arg);
/* Send a message that has no reply. Returns 0, or -1 when not registered. */
int gs_send(gcs_session *gs, uint16_t type, ProtobufCMessage *msg);

/* The view's entry for a node, or NULL if the node is unknown. */
const view_node *gs_view_node(const gcs_session *gs, const node_id_t *id);
/* The whole view: *n nodes (this one included once registered). */
const view_node *gs_view(const gcs_session *gs, int *n);

#endif
