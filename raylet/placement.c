/*
 * placement.c -- where a task runs; see placement.h.
 * Runs in the raylet's loop thread.
 */
#include "placement.h"

#include <stdlib.h>
#include <string.h>

#include "rayc.h"

#define LOCALITY_MAX 16 /* nodes for which argument locality is counted */

struct placement {
    node_id_t self;
    const res_set *total, *available;
    const res_set *queued;      /* demand queued here, not leased yet (NULL: none) */
    bool (*pressed)(void *arg); /* this node's store is full of pinned arguments */
    void *pressed_arg;
    place_forward_cb forward;
    void *arg;
    sched_view sv; /* the policy's view; nodes[local] kept current */
    sched_node *nodes;
    int cap;
};

placement *place_new(const node_id_t *self, const res_set *total, const res_set *available,
                     place_forward_cb forward, void *arg)
{
    placement *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return NULL;
    pl->self = *self;
    pl->total = total;
    pl->available = available;
    pl->forward = forward;
    pl->arg = arg;
    pl->sv.local = -1;
    return pl;
}

void place_free(placement *pl)
{
    if (pl == NULL)
        return;
    free(pl->nodes);
    free(pl);
}

void place_set_view(placement *pl, const view_node *nodes, int n)
{
    if (n > pl->cap) {
        sched_node *sn = realloc(pl->nodes, (size_t)n * sizeof(*sn));
        if (sn == NULL)
            return;
        pl->nodes = sn;
        pl->cap = n;
    }
    pl->sv.nodes = pl->nodes;
    pl->sv.n = n;
    pl->sv.local = -1;
    for (int i = 0; i < n; i++) {
        sched_node *sn = &pl->nodes[i];
        sn->id = nodes[i].id;
        sn->total = nodes[i].total;
        sn->available = nodes[i].available;
        sn->alive = nodes[i].alive;
        if (memcmp(sn->id.b, pl->self.b, NODE_ID_SIZE) == 0)
            pl->sv.local = i;
    }
}

void place_set_queued(placement *pl, const res_set *queued)
{
    pl->queued = queued;
}

void place_set_pressure(placement *pl, bool (*pressed)(void *arg), void *arg)
{
    pl->pressed = pressed;
    pl->pressed_arg = arg;
}

/* A DEFAULT task with store arguments that the policy keeps here while this
 * node's store is under pressure goes to another node with room now, if
 * any (else it stays): its arguments would only wait for room here. */
static int spill_pressed(placement *pl, const rtask *t, const sched_req *req, const uint64_t *loc,
                         int rc, int *target)
{
    if (pl->pressed == NULL || t->msg->spec->strategy != RAYC_SCHED_DEFAULT || *target < 0 ||
        *target != pl->sv.local || !task_has_ref_args(t) || !pl->pressed(pl->pressed_arg))
        return rc;
    sched_node *me = &pl->nodes[pl->sv.local];
    bool alive = me->alive;
    me->alive = false;
    int other = -1;
    int rc2 = sched_place(&pl->sv, req, loc, &other);
    me->alive = alive;
    if (rc2 != SCHED_FORWARD)
        return rc;
    *target = other;
    return rc2;
}

void place_forward_done(placement *pl, const node_id_t *node, const res_set *demand)
{
    int i = sched_find_node(&pl->sv, node);
    if (i >= 0 && i != pl->sv.local)
        sched_release(&pl->nodes[i].available, &pl->nodes[i].total, demand);
}

int place_nodes(const placement *pl)
{
    return pl->sv.n;
}

/* A hard pin to another node: PLACE_DEAD_TARGET or PLACE_UNKNOWN_TARGET when
 * that node cannot take it now, else 0. */
static int check_pin(const placement *pl, const rtask *t)
{
    const Rpc__TaskSpec *s = t->msg->spec;
    if (t->no_forward || s->strategy != RAYC_SCHED_NODE || s->soft ||
        s->node_id.len != NODE_ID_SIZE || memcmp(s->node_id.data, pl->self.b, NODE_ID_SIZE) == 0)
        return 0;
    node_id_t target;
    memcpy(target.b, s->node_id.data, NODE_ID_SIZE);
    int i = sched_find_node(&pl->sv, &target);
    if (i < 0)
        return PLACE_UNKNOWN_TARGET; /* placed again when the view shows it */
    return pl->nodes[i].alive ? 0 : PLACE_DEAD_TARGET;
}

/* Bytes of t's store arguments each node holds, for DEFAULT tasks in small
 * clusters: stack_loc when any are known, else NULL. */
static const uint64_t *locality(const placement *pl, const rtask *t, uint64_t *stack_loc)
{
    const Rpc__TaskSpec *s = t->msg->spec;
    const uint64_t *loc = NULL;
    if (s->strategy != RAYC_SCHED_DEFAULT || pl->sv.n > LOCALITY_MAX)
        return NULL;
    memset(stack_loc, 0, LOCALITY_MAX * sizeof(*stack_loc));
    for (size_t i = 0; i < s->n_args; i++) {
        const Rpc__TaskArg *a = s->args[i];
        if (!a->is_ref || a->node_id.len != NODE_ID_SIZE)
            continue;
        for (int k = 0; k < pl->sv.n; k++)
            if (memcmp(pl->nodes[k].id.b, a->node_id.data, NODE_ID_SIZE) == 0)
                stack_loc[k] += a->size, loc = stack_loc;
    }
    return loc;
}

int place_task(placement *pl, rtask *t, bool spillback)
{
    const Rpc__TaskSpec *s = t->msg->spec;
    bool feasible_here = sched_feasible(pl->total, t->demand);
    int pin = check_pin(pl, t);
    if (pin != 0)
        return pin;
    if (t->no_forward || pl->sv.local < 0 || pl->sv.n <= 1)
        return feasible_here ? SCHED_WAIT : SCHED_INFEASIBLE;
    pl->nodes[pl->sv.local].available = *pl->available;
    if (pl->queued)
        sched_acquire(&pl->nodes[pl->sv.local].available, pl->queued);
    pl->nodes[pl->sv.local].total = *pl->total;
    sched_req req = {.demand = *t->demand, .strategy = s->strategy, .soft = s->soft};
    if (s->strategy == RAYC_SCHED_NODE && s->node_id.len == NODE_ID_SIZE) {
        req.has_node = true;
        memcpy(req.node.b, s->node_id.data, NODE_ID_SIZE);
    }
    uint64_t stack_loc[LOCALITY_MAX];
    const uint64_t *loc = locality(pl, t, stack_loc);
    int target = -1;
    uint64_t cursor = pl->sv.cursor;
    int rc = sched_place(&pl->sv, &req, loc, &target);
    if (!spillback)
        rc = spill_pressed(pl, t, &req, loc, rc, &target);
    bool room = rc == SCHED_FORWARD || rc == SCHED_RUN_LOCAL;
    if (spillback && !room)
        pl->sv.cursor = cursor; /* not moved: SPREAD's turn is not used up */
    if ((room || (rc == SCHED_WAIT && !spillback)) && target >= 0 && target != pl->sv.local) {
        if (pl->forward(pl->arg, t, &pl->nodes[target].id)) {
            /* Count it against that node until its next report says otherwise. */
            sched_acquire(&pl->nodes[target].available, t->demand);
            return SCHED_FORWARD;
        }
        return feasible_here ? SCHED_WAIT : SCHED_INFEASIBLE;
    }
    if (rc == SCHED_INFEASIBLE || rc < 0)
        return SCHED_INFEASIBLE;
    return SCHED_WAIT;
}
