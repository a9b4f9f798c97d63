/*
 * sched_policy.h -- the raylet's scheduling policy: where a task should run, given
 * its resource demand, its strategy and this raylet's view of the cluster.
 *
 * Pure functions over plain data: no sockets, no event loop, no globals, no
 * allocation. The raylet keeps a sched_view (refreshed from the GCS resource
 * reports and updated by its own grants and forwards), asks sched_place for a
 * decision and carries it out. docs/scheduling.md explains the policy and its
 * numbers.
 *
 * Resources are res_set (common/util.h): named amounts "CPU", "GPU",
 * "memory" (bytes) and custom names. A name missing from a set counts as 0.
 * Amounts are doubles; every comparison allows SCHED_EPS so that fractional
 * demands (0.1 + 0.2 CPU) add up as a person would expect.
 *
 * Thread-safety: none needed for the functions themselves; a sched_view is
 * mutated by sched_place (cursor, rng), so one view belongs to one thread
 * (the raylet's loop).
 *
 * Named sched_policy.h, not sched.h, so that it never shadows the C
 * library's <sched.h>.
 */
#ifndef RAYC_SCHED_POLICY_H
#define RAYC_SCHED_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "util.h"

#define SCHED_EPS              1e-9 /* tolerance of every amount comparison */
#define SCHED_SPREAD_THRESHOLD 0.5  /* DEFAULT keeps tasks local below this utilisation */

/* Outcomes of sched_place. */
enum {
    SCHED_RUN_LOCAL = 0,  /* grant on this node now (*target = local) */
    SCHED_FORWARD = 1,    /* spill back to node *target (remote) */
    SCHED_WAIT = 2,       /* feasible but busy: queue at *target (forward first if remote) */
    SCHED_INFEASIBLE = 3, /* no alive node could ever run it (*target = -1): keep and report */
};
#define SCHED_EINVAL (-1) /* sched_place: bad arguments or unknown strategy */

/* One node of the cluster view. `available` may dip below zero when a
 * blocked worker takes its CPU back (see sched_acquire); such a node fits
 * nothing until tasks finish. */
typedef struct {
    node_id_t id;
    res_set total, available;
    bool alive; /* dead (or draining) nodes are never chosen */
} sched_node;

/* The raylet's view of the cluster. nodes[local] is this raylet; a local
 * index outside [0, n) means "no local node" (every placement is remote).
 * cursor and rng are policy state owned by the view: start them at any value
 * (rng 0 is replaced by a fixed seed) and let sched_place advance them. */
typedef struct {
    sched_node *nodes;
    int n;
    int local;       /* index of this node */
    uint64_t cursor; /* SPREAD round robin state: the index chosen last */
    uint64_t rng;    /* xorshift64 state for tie breaks */
} sched_view;

/* What a task asks for. */
typedef struct {
    res_set demand;
    int strategy;   /* RAYC_SCHED_DEFAULT, RAYC_SCHED_SPREAD or RAYC_SCHED_NODE */
    bool has_node;  /* RAYC_SCHED_NODE: node holds the target */
    node_id_t node; /* RAYC_SCHED_NODE target */
    bool soft;      /* RAYC_SCHED_NODE: fall back to DEFAULT if the target cannot run it */
} sched_req;

/*
 * Decide where a task goes. Only reads resources: granting a RUN_LOCAL means
 * the caller then calls sched_acquire on the local node; after a FORWARD the
 * caller should also subtract the demand from its copy of the target (so a
 * burst of decisions made before the next resource report does not all pick
 * the same node) and let the next report correct it.
 *
 * locality: NULL, or v->n counters of the bytes of the task's store arguments
 * each node already holds (index = node).
 *
 * DEFAULT (Ray's hybrid policy, locality first):
 *   0. with locality: another alive node that fits now and holds more of the
 *      task's argument bytes than this one (the most; ties: the least
 *      utilised) -> FORWARD there;
 *   1. local alive, fits now, utilisation < SCHED_SPREAD_THRESHOLD -> RUN_LOCAL;
 *   2. with locality: the alive node that fits now holding the most argument
 *      bytes, if any holds some (ties: local, then the least utilised);
 *   3. the least utilised alive node that fits now; ties go to the local node,
 *      else to a random one of the tied nodes (v->rng), so equal nodes share
 *      the load;
 *   4. nothing fits now: local feasible -> WAIT locally; else WAIT at the least
 *      utilised feasible alive node (random among ties); else INFEASIBLE.
 * SPREAD: the next alive node that fits now in round-robin order after
 *   v->cursor (which becomes the chosen index); none fits -> WAIT at the next
 *   feasible alive node in that order; none feasible -> INFEASIBLE.
 * NODE: the target alive and feasible -> RUN_LOCAL (local, fits now), WAIT
 *   (local, busy) or FORWARD (remote: it queues there). Target dead, unknown,
 *   absent or infeasible -> DEFAULT when soft, else INFEASIBLE.
 *
 * Returns a SCHED_* outcome with *target set (local index for RUN_LOCAL and a
 * local WAIT, the remote index for FORWARD and a remote WAIT, -1 for
 * INFEASIBLE), or SCHED_EINVAL (NULL argument, n < 0, unknown strategy) with
 * *target = -1 when target is not NULL.
 */
int sched_place(sched_view *v, const sched_req *r, const uint64_t *locality, int *target);

/* True if every amount in demand is available now (a name missing from
 * available counts as 0; zero demands always fit). */
bool sched_fits(const res_set *available, const res_set *demand);
/* True if the node could ever run the demand: sched_fits against its total. */
bool sched_feasible(const res_set *total, const res_set *demand);
/* Take demand out of available. Does not check sched_fits first: the result
 * may go negative (a blocked worker retaking its CPU overcommits the node on
 * purpose); values within SCHED_EPS of zero snap to zero. A name that
 * available lacks is added (as a negative amount) if there is room. */
void sched_acquire(res_set *available, const res_set *demand);
/* Give demand back to available, never above total (a name total lacks
 * ends at 0); values within SCHED_EPS of total snap to total, so repeated
 * fractional grants do not drift. */
void sched_release(res_set *available, const res_set *total, const res_set *demand);
/* Critical resource utilisation: the largest (total - available) / total over
 * the resources the node has (total > 0), clamped to [0, 1]; 0 for a node
 * with no resources. */
double sched_utilization(const sched_node *n);

/* Index of the node with this id in the view, or -1. */
int sched_find_node(const sched_view *v, const node_id_t *id);

/*
 * Build a task's demand from rayc_task_opts fields (demand is cleared
 * first): num_cpus (0 means 1 CPU), num_gpus (0: no GPU entry), memory in
 * bytes (0: no entry), and resources "name=amount,..." for custom resources.
 * Returns 0, or -1 with a one-line reason in err (a negative or non-finite
 * amount, a malformed resources string, "CPU"/"GPU"/"memory" inside
 * resources -- use the dedicated fields -- or too many names); demand is then
 * unspecified.
 */
int sched_demand_from_opts(res_set *demand, double num_cpus, double num_gpus, size_t memory,
                           const char *resources, char *err, size_t errlen);

/* "RUN_LOCAL", "FORWARD", "WAIT", "INFEASIBLE" or "EINVAL", for logs. */
const char *sched_outcome_name(int outcome);

#endif
