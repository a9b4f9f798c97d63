/*
 * task.h -- a task as the raylet's task components see it.
 *
 * One record per task this raylet holds, from SubmitTask (or ForwardTask)
 * until its completion goes to the owner. The task manager creates and
 * frees it and keeps it in its table; the other components each own a few
 * fields, as marked, and only read the rest:
 *   task manager       id, msg, demand, owner, job_id, state, cancelled,
 *                      remote_owner, no_forward, owner_node, fwd_node, hnode
 *   dependency manager dm, pulls, pull_status, deps_pulled, deps_ready, rounds,
 *                      pinned, admitted, queued, store_full, dm_bytes, wait_since
 *   lease manager      cls, w, next, prev (class queue or worker pipeline)
 * The infeasible list of the task manager and the dependency manager's
 * admission queue reuse next/prev: a task is on at most one list at a time.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_TASK_H
#define RAYC_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "id_map.h"
#include "ids.h"
#include "msg.h"
#include "util.h"

/* Where a task is in its life here. */
enum task_state {
    T_WAITING_DEPS = 0, /* its store arguments are being made local */
    T_READY = 1,        /* queued in its scheduling class for a worker */
    T_DISPATCHED = 2,   /* pushed to a leased worker */
    T_INFEASIBLE = 3,   /* no node can run it now; placed again on view changes */
    T_FORWARDED = 4,    /* sent to fwd_node (spillback); kept to report its death */
    T_DELAYED = 5,      /* a retry held for its back-off (spec.retry_delay_ms) */
};

struct sclass;
struct worker;

typedef struct rtask {
    task_id_t id;
    Rpc__SubmitTask *msg;  /* owned; msg->spec is the spec */
    const res_set *demand; /* interned (demand.h): shared by the tasks of one demand */
    worker_id_t owner;
    uint32_t job_id;
    int state;           /* enum task_state */
    bool cancelled;      /* cancelled while waiting for deps or while running */
    bool cancel_asked;   /* a soft cancel went to its worker: if that worker dies, cancelled */
    bool remote_owner;   /* forwarded here: the owner lives on owner_node */
    bool no_forward;     /* run here: never forward again (one hop) */
    bool actor_creation; /* an actor's constructor: its end goes to the GCS */
    bool lease_granted;  /* a worker lease (spec->lease) its worker serves now */
    void *actor_rec;     /* ... and the task manager's record of that actor */
    bool place_only;     /* ... of an actor that holds nothing: its demand must be free to
                            place it, but its lease holds none (Ray's placement resources) */
    node_id_t owner_node;
    node_id_t fwd_node;       /* T_FORWARDED: where it went */
    uint32_t stream_consumed; /* generators: items the owner took (StreamAck), for the
                                 spec when it is pushed or forwarded */
    id_node hnode;            /* the task manager's table */

    /* dependency manager */
    struct dependency_manager *dm; /* set while it waits */
    int pulls;                     /* store arguments still being pulled here */
    int pull_status;
    bool deps_pulled;
    bool deps_ready;     /* its store arguments were all sealed here */
    uint16_t rounds;     /* seal waits that ended with arguments still missing */
    uint64_t pinned;     /* bit i: argument i (of the first 64) pinned for it here */
    bool admitted;       /* its pulls count against the pin budget (dm_bytes) */
    bool queued;         /* waits for the pin budget (dm's queue, through next/prev) */
    bool store_full;     /* a pull of one of its arguments found no room */
    uint64_t dm_bytes;   /* bytes of its arguments that were absent when admitted */
    uint64_t wait_since; /* now_ms() when its wait began */

    /* lease manager */
    struct sclass *cls; /* T_READY: its class queue */
    struct worker *w;   /* T_DISPATCHED: the worker running it */
    struct rtask *next, *prev;
} rtask;

/* Runs alone on its worker (no task pipelined behind it): an actor's
 * creation, a generator. */
static inline bool task_solo(const rtask *t)
{
    return t->msg->spec->actor_creation || t->msg->spec->streaming || t->msg->spec->lease;
}

/* A generator's spec carries what its owner consumed so far: the acks that
 * reached this raylet while it waited here. */
static inline void task_stamp_stream(rtask *t)
{
    Rpc__TaskSpec *s = t->msg->spec;
    if (s->streaming && t->stream_consumed > s->stream_consumed)
        s->stream_consumed = t->stream_consumed;
}

/* True if the task takes any argument by reference (from the store). */
static inline bool task_has_ref_args(const rtask *t)
{
    for (size_t i = 0; i < t->msg->spec->n_args; i++)
        if (t->msg->spec->args[i]->is_ref)
            return true;
    return false;
}

#endif
