/*
 * task_manager.h -- the raylet's local task scheduling: queues, dependency
 * waits, worker leases, completions, cancellation, job code.
 *
 * A task arrives from its owner (SubmitTask), waits until its store
 * arguments are sealed in the local store, then queues in its scheduling
 * class (job + resource demand). Dispatch leases a worker for a class: the
 * lease holds the class's resources, and up to max_tasks_in_flight_per_worker
 * tasks of that class are pipelined to the leased worker. The worker reports
 * each task (TaskDone), which is forwarded to the owner; store returns are
 * handed to the owner in the store. A worker that blocks in get/wait gives
 * its CPU back and hands back the tasks it has not started. A task the node
 * can never run stays queued as infeasible and its owner is told once.
 * Retries are the owner's decision: the raylet reports EWORKER_DIED.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_TASK_MANAGER_H
#define RAYC_TASK_MANAGER_H

#include "raylet_int.h"

task_manager *tm_new(node_manager *nm);
void tm_free(task_manager *tm);

/* Frames from local clients. Each takes the message over (conn_keep_msg is
 * called by the node manager) where it must outlive the call. */
void tm_submit(task_manager *tm, client *owner, Rpc__SubmitTask *m);
void tm_task_done(task_manager *tm, client *from, Rpc__TaskDone *m);
void tm_cancel(task_manager *tm, client *from, Rpc__CancelTask *m);
void tm_worker_blocked(task_manager *tm, worker *w, Rpc__WorkerBlocked *m);
void tm_worker_unblocked(task_manager *tm, worker *w);
void tm_job_config(task_manager *tm, client *driver, Rpc__JobConfig *m);

/* Multi-node: a task another raylet forwarded here (spillback), and the
 * completion of a task this raylet forwarded, or of a task owned here that
 * ran elsewhere. */
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

/* The node a job's driver runs on, when it is another node. */
bool tm_job_driver_node(task_manager *tm, uint32_t job_id, node_id_t *node);

/* Events from the worker pool and the node manager. */
void tm_worker_died(task_manager *tm, worker *w);
void tm_client_gone(task_manager *tm, client *cl);
/* Dispatch what can run now. Cheap when nothing changed. */
void tm_schedule(task_manager *tm);

/* Tasks queued or waiting on this node (for heartbeats and rayc status), and
 * how many of them no node resource could ever satisfy. */
uint64_t tm_pending(const task_manager *tm);
uint64_t tm_infeasible(const task_manager *tm);

#endif
