/*
 * actor_executor.h -- the worker's side of an actor (Ray's actor task
 * receiver). The raylet pushes the actor's creation task to a worker like
 * any task; this runs the class's constructor (RAYC_ACTOR) and, when it
 * succeeds, keeps the instance for the worker's life and serves calls
 * straight from the callers: a TCP listener on the node's address, the
 * cluster token's handshake, PushTask frames in, TaskDone frames out. The
 * raylet is off the path of each call.
 *
 * Calls from one connection (one caller process) run in the order they
 * arrive, one at a time across all callers unless the actor was created
 * with max_concurrency > 1: then that many threads run calls as they come.
 * Replies are batched per connection: a caller that sends many calls at once
 * gets their replies in few writes. Store returns are handed to their owner
 * through the raylet (ObjectOwner) before the reply leaves.
 *
 * ActorExit (the creator released the actor) ends the worker once the
 * calls received before it are done; the raylet reports the death as final.
 *
 * Thread-safety: one reader thread per caller connection, plus the pool for
 * max_concurrency > 1; the instance is shared by the calls, as in Ray.
 */
#ifndef RAYC_ACTOR_EXECUTOR_H
#define RAYC_ACTOR_EXECUTOR_H

#include "cw_conn.h"
#include "ids.h"
#include "task_executor.h"

typedef struct actor_exec_deps {
    cw_conn *raylet;
    const char *token;   /* callers prove it (may be "" on a token-less cluster) */
    const char *node_ip; /* where to listen */
    node_id_t node;      /* stamped on replies: where store returns live */
} actor_exec_deps;

/* Make x hand actor creation tasks to a new actor executor. 0, or -1 when
 * out of memory. */
int actor_exec_install(task_executor *x, const actor_exec_deps *d);

#endif
