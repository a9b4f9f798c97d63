/*
 * lease.h -- the lease manager: this node's resource accounting, the queues
 * of tasks ready to run (one per scheduling class: job + resource demand)
 * and the leases of workers to those classes (Ray's local task manager and
 * worker leases).
 *
 * A lease grants an idle worker to a class: it holds the class's resources
 * and up to in_flight tasks of that class are pipelined to the worker. When
 * the worker's pipeline empties the lease ends and the resources come back.
 * A worker blocked in get/wait gives its CPU back until it is unblocked
 * (taking it back may overcommit the node for a while, on purpose). A class
 * the node is too busy for offers its head task to other nodes (spill).
 *
 * The lease state (resources held, blocked CPU, the tasks pushed) lives
 * here, in one record per worker kept from its first lease to its death;
 * the worker pool only learns that a worker is leased, idle or blocked.
 * Everything else the lease manager needs is in lease_env, so it runs
 * without sockets, processes or a GCS. An actor manager would lease
 * dedicated workers through the same accounting.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_LEASE_H
#define RAYC_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory_monitor.h"
#include "task.h"
#include "util.h"
#include "worker_pool.h"

typedef struct lease_mgr lease_mgr;

/* The lease manager's neighbours. */
typedef struct {
    /* An idle worker for job_id (bound to it, else unbound), or NULL. */
    worker *(*idle_worker)(void *ctx, uint32_t job_id);
    /* n tasks have resources but no worker: start up to n workers. */
    void (*want_workers)(void *ctx, int n);
    /* The worker's lease began or ended (the pool's idle/leased state). */
    void (*set_leased)(void *ctx, worker *w, bool leased);
    /* The worker blocked in get/wait, or no longer is. */
    void (*set_blocked)(void *ctx, worker *w, bool blocked);
    /* The job's code state: JOB_FETCHING, JOB_READY, JOB_FAILED (*error
     * says why) or -1 if the job is unknown (job_table.h). */
    int (*job_state)(void *ctx, uint32_t job_id, const char **error);
    /* Bind an unbound idle worker to job_id (sets w->job_id). */
    void (*bind)(void *ctx, worker *w, uint32_t job_id);
    /* Send t to the worker w. */
    void (*push)(void *ctx, worker *w, rtask *t);
    /* t (out of its queue) waits while this node is busy: run it on another
     * node with room now. true if it left (the callee owns it then). */
    bool (*spill)(void *ctx, rtask *t);
    /* t cannot run: tell its owner status and msg, and free it. */
    void (*fail)(void *ctx, rtask *t, int status, const char *msg);
    /* Kill w (its placement group bundle was removed). */
    void (*kill)(void *ctx, worker *w);
    /* Ask w to give back up to n tasks queued behind its running one
     * (answered by lease_take_back of each). NULL: never. */
    void (*steal)(void *ctx, worker *w, int n);
    void *ctx;
} lease_env;

/* A lease manager for a node with `total` resources (copied; all of them
 * available at first) and in_flight tasks per leased worker (at least 1).
 * NULL on allocation failure. */
lease_mgr *lease_new(const res_set *total, int in_flight, const lease_env *env);
/* Frees the classes and lease records (not the tasks). NULL-safe. */
void lease_free(lease_mgr *lm);

/* The node's resources, and what is not held by leases now. The pointers
 * stay valid for the manager's life (placement reads them). */
const res_set *lease_total(const lease_mgr *lm);
const res_set *lease_available(const lease_mgr *lm);
/* What the tasks queued here (outside placement-group bundles) will take
 * once leased: placement counts it against this node, so a burst of tasks
 * placed before any lease is granted does not all see the node free. */
const res_set *lease_queued_demand(const lease_mgr *lm);

/* Queue t (state T_READY) in its class, at the front (a task given back)
 * or the back. Returns 0, or RAYC_ENOMEM (t is not queued). */
int lease_enqueue(lease_mgr *lm, rtask *t, bool front);
/* Take a queued task out of its queue (cancelled, owner gone). */
void lease_dequeue(lease_mgr *lm, rtask *t);
/* Take every queued task that match accepts out of its queue and hand it
 * to drop (which may free it). */
void lease_dequeue_if(lease_mgr *lm, bool (*match)(void *arg, const rtask *t),
                      void (*drop)(void *arg, rtask *t), void *arg);
/* Tasks queued (ready, waiting for a worker). */
size_t lease_queued(const lease_mgr *lm);

/* Dispatch what can run now: push queued tasks to leased workers with room,
 * grant new leases to idle workers while resources allow, ask for workers,
 * spill what waits for a busy node. */
void lease_schedule(lease_mgr *lm);

/* Placement-group bundles (two-phase, coordinated by the GCS): prepare
 * takes r out of the node's available resources into a pool of its own
 * (0, or RAYC_EBUSY when the node has not that much free); commit makes the
 * pool usable by tasks naming the group (lease_enqueue: a task of a group
 * with no committed bundle here is RAYC_ENOTFOUND); return fails the
 * bundle's queued tasks, kills the workers running in it and gives its
 * resources back. */
int lease_pool_prepare(lease_mgr *lm, const uint8_t *pg, uint32_t index, const res_set *r);
void lease_pool_commit(lease_mgr *lm, const uint8_t *pg, uint32_t index);
void lease_pool_return(lease_mgr *lm, const uint8_t *pg, uint32_t index);
/* An actor of group pg holds r for its life from a committed bundle here
 * (index, or -1: the first with room); *used is its index. 0 or
 * RAYC_ENOTFOUND. Unhold gives it back (nothing if the bundle is gone). */
int lease_pool_hold(lease_mgr *lm, const uint8_t *pg, int index, const res_set *r, uint32_t *used);
void lease_pool_unhold(lease_mgr *lm, const uint8_t *pg, uint32_t index, const res_set *r);
/* Resources an actor holds for its life (outside any lease): taken from
 * the node's available set, and given back when it dies. */
void lease_hold(lease_mgr *lm, const res_set *r);
void lease_unhold(lease_mgr *lm, const res_set *r);
/* w's lease ended and it holds an actor for its life from now on, never
 * leased again: its lease record goes, so dispatch, which walks the lease
 * records, costs nothing per actor on the node. */
void lease_dedicated(lease_mgr *lm, worker *w);
/* True if w holds a lease. */
bool lease_held(const lease_mgr *lm, const worker *w);
/* t's worker reported it done: it leaves the pipeline, and the lease ends
 * when the pipeline is empty. */
void lease_task_done(lease_mgr *lm, rtask *t);
/* A blocked worker gives back t, which it has not started: t goes to the
 * front of its class queue (T_READY). */
void lease_take_back(lease_mgr *lm, rtask *t);
/* The worker's task blocks in get/wait: its CPU goes back to the node. */
void lease_worker_blocked(lease_mgr *lm, worker *w);
/* ... and is unblocked: it takes its CPU back, even past the total. */
void lease_worker_unblocked(lease_mgr *lm, worker *w);
/* The worker died: each task pushed to it fails (RAYC_ECANCELLED if it was
 * cancelled, RAYC_EOOM if the memory monitor killed it, else
 * RAYC_EWORKER_DIED), then its lease ends. */
void lease_worker_died(lease_mgr *lm, worker *w);

/* The memory monitor's candidates: each leased worker running a task (and
 * not already being killed), with its owner, since when the task runs and
 * whether it has retries left; ws[i] is the worker of out[i]. Returns how
 * many (at most cap). */
size_t lease_running(const lease_mgr *lm, mm_worker *out, worker **ws, size_t cap);
/* The memory monitor is about to kill w: its tasks fail with RAYC_EOOM and
 * `why` (copied) instead of RAYC_EWORKER_DIED. */
void lease_mark_oom(lease_mgr *lm, worker *w, const char *why);

#endif
