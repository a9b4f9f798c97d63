/*
 * task_manager_internal.h -- what the task manager's files share: the task
 * manager itself (task_manager.c: the table and a task's life cycle), its
 * actor side (actor_host.c: actors and placement-group bundles on this
 * node) and its generator relay (stream_relay.c: items and acks of
 * streaming tasks). Not for other components: they see task_manager.h.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_TASK_MANAGER_INTERNAL_H
#define RAYC_TASK_MANAGER_INTERNAL_H

#include "demand.h"
#include "dependency_manager.h"
#include "lease.h"
#include "placement.h"
#include "task.h"
#include "task_manager.h"

/* An actor this node creates or holds (Ray's raylet side of actors). */
typedef struct ractor {
    actor_id_t id;
    worker *w; /* its worker, once the constructor ran */
    res_set held;
    bool detached;
    bool exiting; /* killed or released: its death is not reported again */
    bool in_pg;   /* lives in bundle pool_index of placement group pg */
    uint8_t pg[PG_ID_SIZE];
    int bundle_index;
    uint32_t pool_index;
    struct ractor *next;
} ractor;

struct task_manager {
    tm_deps d;
    ractor *actors;
    id_map tasks;      /* rtask by id */
    rtask *infeasible; /* doubly linked through next/prev */
    uint64_t n_infeasible;
    uint64_t n_forwarded;
    uint64_t n_generators; /* streaming tasks in the table */
    placement *pl;
    dependency_manager *dm;
    lease_mgr *lm;
    demand_table *demands; /* the tasks' interned demands */
};

/* task_manager.c */
/* The task with this id, or NULL (also for a malformed id). */
rtask *tm__find(task_manager *tm, const uint8_t *id, size_t len);
/* Removes t from the table (and its dependency waits) and frees it. */
void tm__free_task(task_manager *tm, rtask *t);
/* A task record for m, or NULL (message freed, *bad says why when the spec
 * is unusable) for a malformed spec or a duplicate. */
rtask *tm__new_task(task_manager *tm, Rpc__SubmitTask *m, const char **bad);
/* Enters t in the table and starts it: placement, arguments, queue. */
void tm__submit_common(task_manager *tm, rtask *t);
/* Store object id, returned or yielded by t, belongs to t's owner from now
 * on (fate-sharing): pinned for a local owner, kept for a remote one, or
 * deleted when the owner is gone. */
void tm__give_to_owner(task_manager *tm, const rtask *t, const object_id_t *id);
/* task_oom.c: hold a retry for its back-off (spec.retry_delay_ms), then
 * submit it as if it just arrived. true if held. */
bool tm__hold_for_backoff(task_manager *tm, rtask *t);

/* actor_host.c */
/* The actor creation t never ran (its arguments or code could not be had,
 * its worker died): the GCS is told and decides. */
void tm__actor_creation_failed(task_manager *tm, rtask *t, const Rpc__Status *st);
/* The creation task t finished on w (TaskDone m): w is the actor's worker
 * from now on, or is ended when the constructor failed. */
void tm__actor_creation_done(task_manager *tm, rtask *t, worker *w, Rpc__TaskDone *m);
/* w, an actor's worker, is gone: its resources come back, the GCS is told. */
void tm__actor_worker_died(task_manager *tm, worker *w);

#endif
