/*
 * direct_tasks.h -- the owner's side of the direct task path (Ray's direct
 * task transport; docs/tasks.md, "The direct task path").
 *
 * A task that needs nothing the raylet must arrange (all its arguments are
 * values, the default strategy, no placement group, not a generator, its
 * first attempt) is not sent to the raylet. The owner leases a worker for
 * the task's resource demand instead: the lease is a task of its own
 * (spec->lease) that the raylet queues, places, spills to another node and
 * grants like any task, answering with the worker's address. The owner
 * connects to that worker and pushes its tasks of that demand there; the
 * worker answers each with its TaskDone on the same connection. While
 * tasks keep coming the lease is kept; a lease idle for
 * direct_lease_idle_ms is given back by closing the connection.
 *
 * One task in flight per lease until the worker has answered one within
 * the last two milliseconds (it turns over short tasks): then up to
 * direct_tasks_in_flight, so nothing waits behind a long task
 * while another worker could be had. A worker whose task blocks in
 * get/wait hands back what waits behind it, which goes to another lease.
 * Tasks that wait longer than DTX_FALLBACK_MS for a first lease (a busy or
 * infeasible demand, a worker slow to start) go to the raylet as before,
 * and the demand stays on that path for a second.
 *
 * When a lease's worker dies, the raylet reports the lease failed with the
 * cause ("the worker running it (pid N) died (SIGKILL)", a memory-monitor
 * kill, a force-cancel): the tasks that were in flight there fail the same
 * way, and the task submitter retries them through the raylet as usual.
 *
 * Threads: calls marked "mu held" run under the core's mutex (dtx_deps.mu);
 * each lease's connection has a reader thread; one housekeeping thread
 * (started by the first task submitted) connects granted leases, gives
 * back idle ones and falls back.
 */
#ifndef RAYC_DIRECT_TASKS_H
#define RAYC_DIRECT_TASKS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cw_conn.h"
#include "ids.h"
#include "msg.h"
#include "rayc.h"
#include "task_submitter.h"

#define DTX_FALLBACK_MS 200 /* a demand without a lease this long goes to the raylet */

typedef struct dtx dtx;
typedef struct dtx_direct dtx_direct;

typedef struct dtx_deps {
    pthread_mutex_t *mu; /* the core's: the submitter's tables and ours */
    cw_conn *raylet;     /* woken when replies arrive and someone waits there */
    const int *waiters;  /* threads waiting for results on the raylet connection (mu) */
    task_submitter *tasks;
    const char *token; /* workers check our proof of it */
    worker_id_t self;
    node_id_t node;
    const job_id_t *job;
    bool is_worker;
    int in_flight; /* most tasks pipelined to one leased worker */
    int idle_ms;   /* a lease with nothing to do this long is given back */
} dtx_deps;

/* NULL when out of memory. */
dtx *dtx_new(const dtx_deps *d);
/* Give every lease back and stop the threads (mu NOT held). NULL-safe. */
void dtx_free(dtx *x);

/* Take task id (spec as sent; its SubmitTask frame is kept by the
 * submitter) to run on a leased worker. false: send it to the raylet. mu
 * held. */
bool dtx_submit(dtx *x, const task_id_t *id, const Rpc__TaskSpec *spec);
/* A TaskDone from the raylet: true if it is about one of our leases (then
 * it is taken care of here). mu NOT held. */
bool dtx_on_raylet_done(dtx *x, const Rpc__TaskDone *m);
/* Cancel task id if it is ours. Not pushed yet: it leaves our queue and
 * the caller fails it (TSUB_DIRECT_DROPPED). Pushed: its worker drops it
 * if it has not started it, and force kills the worker through the raylet
 * (TSUB_DIRECT_ASKED; the TaskDone says how it ended). TSUB_DIRECT_NOT_OURS
 * otherwise. mu held. */
int dtx_cancel(dtx *x, const task_id_t *id, bool force);

/* What the path did so far (mu held): tasks pushed to leased workers,
 * tasks that fell back to the raylet, leases asked for and granted. */
enum {
    DTX_PUSHED,
    DTX_FELL_BACK,
    DTX_LEASES_ASKED,
    DTX_LEASES_GRANTED,
    DTX_LEASES_LOCAL, /* connected over the worker's Unix socket */
    DTX_NCOUNTS
};
void dtx_counts(dtx *x, uint64_t out[DTX_NCOUNTS]);

/* rayc_get's wait for refs (see core__wait_results): when every ref not
 * in out yet is a return of a task in flight on one lease, read that
 * lease's connection on this thread. NULL otherwise. mu held. */
dtx_direct *dtx_direct_enter(dtx *x, const rayc_ref *refs, size_t n, const rayc_value *out);
/* Frames read (>= 0) or < 0 when the connection broke. mu NOT held. */
int dtx_direct_pump(dtx_direct *d, int64_t wait_ms);
void dtx_direct_leave(dtx_direct *d);

#endif
