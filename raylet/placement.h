/*
 * placement.h -- where a task runs: here, on another node (spillback), or
 * nowhere yet (infeasible). A thin layer over the pure policy of
 * sched_policy.h: it keeps the policy's copy of the cluster view (this
 * node's entry read live from the lease manager's accounting), adds what
 * the policy does not know (hard pins to dead or unknown nodes, one hop
 * only, argument locality from the spec) and carries out a forward through
 * the callback it was given.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_PLACEMENT_H
#define RAYC_PLACEMENT_H

#include <stdbool.h>

#include "gcs_session.h"
#include "sched_policy.h"
#include "task.h"

/* place_task outcomes besides SCHED_WAIT, SCHED_FORWARD, SCHED_INFEASIBLE: */
#define PLACE_DEAD_TARGET    100 /* pinned hard to a node the view shows dead */
#define PLACE_UNKNOWN_TARGET 101 /* pinned hard to a node not in the view yet */

typedef struct placement placement;

/* Send t to node (ForwardTask). Returns false if the node cannot be reached
 * (t stays here); true when t left: the callee marks it T_FORWARDED. */
typedef bool (*place_forward_cb)(void *arg, rtask *t, const node_id_t *node);

/* total and available are this node's accounting (borrowed, read at every
 * placement). NULL on allocation failure. */
placement *place_new(const node_id_t *self, const res_set *total, const res_set *available,
                     place_forward_cb forward, void *arg);
void place_free(placement *pl);
/* What tasks queued here will take (borrowed, read at every placement):
 * counted against this node's available resources, as forwards count
 * against other nodes until their next report. */
void place_set_queued(placement *pl, const res_set *queued);
/* pressed(arg): this node's store is under pressure (its dependency manager
 * holds its whole budget of pulled arguments or queues tasks for it). Then
 * a DEFAULT task with store arguments that would stay here goes to another
 * node with room now, when one has. */
void place_set_pressure(placement *pl, bool (*pressed)(void *arg), void *arg);

/* Replace the policy's view with n nodes (copied). */
void place_set_view(placement *pl, const view_node *nodes, int n);
/* A task forwarded to node finished there: its demand, counted against
 * node since the forward, is given back now (the view's next report may
 * not show the difference: the task may have begun and ended between two). */
void place_forward_done(placement *pl, const node_id_t *node, const res_set *demand);
/* Nodes in the view (this one included). */
int place_nodes(const placement *pl);

/* Where should t run? Returns SCHED_WAIT (here: queue it), SCHED_FORWARD
 * (forwarded: t is T_FORWARDED), SCHED_INFEASIBLE (no node can run it now),
 * PLACE_DEAD_TARGET or PLACE_UNKNOWN_TARGET. A spillback (t queued here,
 * this node busy) moves t only to a node with room now: queueing it at
 * another busy node would hand SPREAD's round robin every task that waits
 * here, until this node had none of them. After a forward the demand is
 * counted against the target until the next view says otherwise. */
int place_task(placement *pl, rtask *t, bool spillback);

#endif
