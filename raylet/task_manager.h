/*
 * task_manager.h -- the raylet's tasks, from arrival to completion: the
 * task table and the life cycle that wires placement, the dependency
 * manager and the lease manager together.
 *
 * A task arrives from its owner (SubmitTask) or from another raylet
 * (ForwardTask, spillback), is placed (placement.h), waits until its store
 * arguments are sealed in the local store (dependency_manager.h), then
 * queues in its scheduling class for a leased worker (lease.h). The worker
 * reports each task (TaskDone), which is forwarded to the owner; store
 * returns are handed to the owner in the store. A task the node can never
 * run stays queued as infeasible and its owner is told once. Retries are
 * the owner's decision: the raylet reports EWORKER_DIED.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_TASK_MANAGER_H
#define RAYC_TASK_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "client_registry.h"
#include "config.h"
#include "gcs_session.h"
#include "ids.h"
#include "job_table.h"
#include "memory_monitor.h"
#include "object_manager.h"
#include "peers.h"
#include "plasma_store.h"
#include "worker_pool.h"

#define TM_WAIT_REPORT_MS 2000 /* a dependency wait this long is reported (rayc status) */

typedef struct task_manager task_manager;

/* The components the task manager works with (all borrowed, all outliving
 * it). */
typedef struct {
    const rayc_config *cfg;
    node_id_t node_id;
    const res_set *total; /* the node's resources */
    plasma_store *store;
    gcs_session *gs; /* the cluster view */
    client_registry *clients;
    peers *peers;
    worker_pool *pool;
    job_table *jobs;
    object_manager *om;
    struct event_base *base; /* timers (retry back-off) */
} tm_deps;

/* NULL on allocation failure. */
task_manager *tm_new(const tm_deps *deps);
/* Frees every task it holds. NULL-safe. */
void tm_free(task_manager *tm);

/* Frames from local clients. Each takes the message over (conn_keep_msg is
 * called by the node manager) where it must outlive the call. */
void tm_submit(task_manager *tm, client *owner, Rpc__SubmitTask *m);
void tm_task_done(task_manager *tm, client *from, Rpc__TaskDone *m);
/* from: NULL when a peer raylet passes on an owner's cancel. */
void tm_cancel(task_manager *tm, client *from, Rpc__CancelTask *m);
void tm_worker_blocked(task_manager *tm, worker *w, Rpc__WorkerBlocked *m);
/* Streaming generators (docs/generators.md): an item from the worker running
 * the generator goes to its owner (a store item becomes the owner's); an
 * item from another raylet goes to the local owner; an owner's StreamAck
 * (from a local client or a peer raylet) goes where the generator runs: the
 * worker of a task held here, or the worker (and node) it names, for an
 * actor's method. */
void tm_stream_item(task_manager *tm, client *from, Rpc__StreamItem *m);
void tm_remote_stream_item(task_manager *tm, Rpc__StreamItem *m);
void tm_stream_ack(task_manager *tm, Rpc__StreamAck *a);
void tm_worker_unblocked(task_manager *tm, worker *w);
/* The worker gave back tasks it had queued (asked by a steal). */
void tm_tasks_given_back(task_manager *tm, worker *w, const Rpc__TasksGivenBack *m);

/* Multi-node: a task another raylet forwarded here (spillback; the message
 * is taken over), and the completion of a task this raylet forwarded, or of
 * a task owned here that ran elsewhere. */
void tm_forwarded(task_manager *tm, const node_id_t *from, Rpc__ForwardTask *m);
void tm_remote_done(task_manager *tm, Rpc__TaskDone *m);
/* The cluster view changed (nodes_changed: a node joined or left). */
void tm_view_changed(task_manager *tm, bool nodes_changed);
/* A node died: tasks forwarded there are reported to their owners as failed
 * (EWORKER_DIED: the owner retries them elsewhere). */
void tm_node_died(task_manager *tm, const node_id_t *node);
/* True while tasks wait here that another node might run: keep the view fresh. */
bool tm_wants_view(const task_manager *tm);

/* A job finished (its driver left, maybe on another node): its workers and
 * queued tasks here go. */
void tm_job_ended(task_manager *tm, uint32_t job_id);

/* Actors (docs/actors.md): the GCS asks this node to create one (its
 * creation task runs on a worker of its own, which then holds the actor),
 * or to kill one; an actor's worker says it exits on purpose (released). */
void tm_create_actor(task_manager *tm, const Rpc__ActorInfo *a);
void tm_kill_actor(task_manager *tm, const Rpc__KillActorWorker *k);
void tm_actor_exiting(task_manager *tm, worker *w, Rpc__ActorDied *d);
/* Placement groups: PrepareBundles (answered with BundlesPrepared),
 * CommitBundles and ReturnBundles from the GCS (lease.h has the pools). */
void tm_pg_message(task_manager *tm, uint16_t type, const ProtobufCMessage *msg);
/* Events from the worker pool and the client registry. */
void tm_worker_died(task_manager *tm, worker *w);
void tm_client_gone(task_manager *tm, client *cl);
/* Dispatch what can run now. Cheap when nothing changed. */
void tm_schedule(task_manager *tm);

/* The node's resources not held by leases now (heartbeats). */
const res_set *tm_available(const task_manager *tm);
/* Tasks queued or waiting on this node (for heartbeats and rayc status), and
 * how many of them no node resource could ever satisfy. */
uint64_t tm_pending(const task_manager *tm);
uint64_t tm_infeasible(const task_manager *tm);
/* Why the tasks that have waited longest for their arguments (over
 * TM_WAIT_REPORT_MS) still wait, oldest first, one line each into out (at
 * most max, at most GS_WAITS_MAX): for the heartbeat (`rayc status`).
 * Returns how many. */
size_t tm_waits(const task_manager *tm, char (*out)[GS_WAIT_LEN], size_t max);

/* The node's memory use u passed threshold: kill one worker by the memory
 * monitor's policy (memory_monitor.h); its task fails with RAYC_EOOM and
 * the owner retries it while its retries last. Returns the pid killed, or 0
 * when no worker runs a task. */
int tm_oom_kill(task_manager *tm, const char *node_hex, const mm_usage *u, double threshold);

#endif
