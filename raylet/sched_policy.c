/*
 * sched_policy.c -- the scheduling policy (see sched_policy.h and docs/scheduling.md).
 *
 * Pure: the only state is what the caller passes in. The view's cursor and
 * rng are advanced here so that SPREAD and tie breaks are fair across calls
 * without any global.
 */
#include "sched_policy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rayc.h"

/* ------------------------------------------------------------ resources */

/* a <= b, allowing for the rounding of sums of fractions. */
static bool le_eps(double a, double b)
{
    return a <= b + SCHED_EPS;
}

static bool covers(const res_set *have, const res_set *demand)
{
    for (int i = 0; i < demand->n; i++) {
        double want = demand->amount[i];
        if (want <= SCHED_EPS)
            continue;
        if (!le_eps(want, res_get(have, demand->name[i])))
            return false;
    }
    return true;
}

bool sched_fits(const res_set *available, const res_set *demand)
{
    return covers(available, demand);
}

bool sched_feasible(const res_set *total, const res_set *demand)
{
    return covers(total, demand);
}

/* Index of name in set, or -1. */
static int res_index(const res_set *set, const char *name)
{
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->name[i], name) == 0)
            return i;
    return -1;
}

void sched_acquire(res_set *available, const res_set *demand)
{
    for (int i = 0; i < demand->n; i++) {
        double want = demand->amount[i];
        if (want <= 0)
            continue;
        int k = res_index(available, demand->name[i]);
        if (k < 0) {
            /* Accounting must stay balanced for the later release; if the
             * set is full there is nowhere to record it and the release
             * (capped at total) is harmless. */
            (void)res_set_amount(available, demand->name[i], -want);
            continue;
        }
        double left = available->amount[k] - want;
        available->amount[k] = fabs(left) <= SCHED_EPS ? 0 : left;
    }
}

void sched_release(res_set *available, const res_set *total, const res_set *demand)
{
    for (int i = 0; i < demand->n; i++) {
        double give = demand->amount[i];
        if (give <= 0)
            continue;
        const char *name = demand->name[i];
        double cap = res_get(total, name);
        double now = res_get(available, name) + give;
        if (now >= cap - SCHED_EPS)
            now = cap;
        else if (fabs(now) <= SCHED_EPS)
            now = 0;
        /* A name neither set has stays absent (it is 0 either way). */
        if (res_index(available, name) >= 0 || now != 0)
            (void)res_set_amount(available, name, now);
    }
}

double sched_utilization(const sched_node *n)
{
    double worst = 0;
    for (int i = 0; i < n->total.n; i++) {
        double total = n->total.amount[i];
        if (total <= SCHED_EPS)
            continue;
        double used = (total - res_get(&n->available, n->total.name[i])) / total;
        if (used > worst)
            worst = used;
    }
    return worst > 1 ? 1 : worst;
}

int sched_find_node(const sched_view *v, const node_id_t *id)
{
    for (int i = 0; i < v->n; i++)
        if (memcmp(v->nodes[i].id.b, id->b, NODE_ID_SIZE) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------ demand */

static bool bad_amount(double x)
{
    return !isfinite(x) || x < 0;
}

int sched_demand_from_opts(res_set *demand, double num_cpus, double num_gpus, size_t memory,
                           const char *resources, char *err, size_t errlen)
{
    memset(demand, 0, sizeof(*demand));
    if (bad_amount(num_cpus) || bad_amount(num_gpus)) {
        snprintf(err, errlen, "num_cpus and num_gpus must be finite and >= 0 (got %g, %g)",
                 num_cpus, num_gpus);
        return -1;
    }
    res_set custom = {0};
    if (res_parse(&custom, resources, err, errlen) != 0)
        return -1;
    for (int i = 0; i < custom.n; i++) {
        const char *name = custom.name[i];
        if (strcmp(name, "CPU") == 0 || strcmp(name, "GPU") == 0 || strcmp(name, "memory") == 0) {
            snprintf(err, errlen, "'%s' in resources: use num_cpus, num_gpus or memory", name);
            return -1;
        }
    }
    /* Tasks always hold at least one CPU so a node never runs more tasks at
     * once than it has cores (Ray's default for tasks). */
    res_set_amount(demand, "CPU", num_cpus > 0 ? num_cpus : 1.0);
    if (num_gpus > 0)
        res_set_amount(demand, "GPU", num_gpus);
    if (memory > 0)
        res_set_amount(demand, "memory", (double)memory);
    for (int i = 0; i < custom.n; i++) {
        if (res_set_amount(demand, custom.name[i], custom.amount[i]) != 0) {
            snprintf(err, errlen, "too many resources (at most %d)", RES_MAX);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ policy */

static uint64_t next_rand(sched_view *v)
{
    uint64_t x = v->rng ? v->rng : 0x9e3779b97f4a7c15ull; /* xorshift64 never leaves 0 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v->rng = x;
    return x;
}

static bool is_local(const sched_view *v, int i)
{
    return i == v->local;
}

static bool alive_fits(const sched_view *v, int i, const res_set *demand)
{
    return v->nodes[i].alive && sched_fits(&v->nodes[i].available, demand);
}

static bool alive_feasible(const sched_view *v, int i, const res_set *demand)
{
    return v->nodes[i].alive && sched_feasible(&v->nodes[i].total, demand);
}

typedef bool (*node_pred)(const sched_view *v, int i, const res_set *demand);

/* The least utilised node satisfying pred: the local node if it is among
 * the least, else one of the tied nodes chosen uniformly (reservoir sampling
 * over the view's rng). -1 if no node satisfies pred. */
static int least_utilised(sched_view *v, const res_set *demand, node_pred pred)
{
    int best = -1, ties = 0;
    double best_u = 0;
    for (int i = 0; i < v->n; i++) {
        if (!pred(v, i, demand))
            continue;
        double u = sched_utilization(&v->nodes[i]);
        if (best < 0 || u < best_u - SCHED_EPS) {
            best = i;
            best_u = u;
            ties = 1;
        } else if (fabs(u - best_u) <= SCHED_EPS && !is_local(v, best)) {
            if (is_local(v, i))
                best = i;
            else if (next_rand(v) % (uint64_t)++ties == 0)
                best = i;
        }
    }
    return best;
}

/* The alive node that fits now and holds the most argument bytes (at least
 * one); ties: the local node, then the least utilised, then the first. */
static int most_local_bytes(const sched_view *v, const res_set *demand, const uint64_t *locality)
{
    int best = -1;
    for (int i = 0; i < v->n; i++) {
        if (locality[i] == 0 || !alive_fits(v, i, demand))
            continue;
        if (best < 0 || locality[i] > locality[best]) {
            best = i;
        } else if (locality[i] == locality[best] && !is_local(v, best)) {
            if (is_local(v, i) ||
                sched_utilization(&v->nodes[i]) < sched_utilization(&v->nodes[best]) - SCHED_EPS)
                best = i;
        }
    }
    return best;
}

/* Outcome for a node that can run the task now. */
static int run_at(const sched_view *v, int i, int *target)
{
    *target = i;
    return is_local(v, i) ? SCHED_RUN_LOCAL : SCHED_FORWARD;
}

static int wait_at(int i, int *target)
{
    *target = i;
    return SCHED_WAIT;
}

static int infeasible(int *target)
{
    *target = -1;
    return SCHED_INFEASIBLE;
}

static int place_default(sched_view *v, const res_set *demand, const uint64_t *locality,
                         int *target)
{
    int local = v->local;
    bool has_local = local >= 0 && local < v->n;

    /* Another node with room holds more of the arguments: run there
     * (Ray's locality-aware leasing), before any preference for here. */
    int near = locality != NULL ? most_local_bytes(v, demand, locality) : -1;
    if (near >= 0 && !is_local(v, near) && (!has_local || locality[near] > locality[local]))
        return run_at(v, near, target);

    if (has_local && alive_fits(v, local, demand) &&
        sched_utilization(&v->nodes[local]) < SCHED_SPREAD_THRESHOLD - SCHED_EPS)
        return run_at(v, local, target);

    if (near >= 0)
        return run_at(v, near, target);

    int i = least_utilised(v, demand, alive_fits);
    if (i >= 0)
        return run_at(v, i, target);

    /* Busy everywhere. Queue locally when this node can ever run it: it
     * will free up, and queueing here keeps the decision with this raylet. */
    if (has_local && alive_feasible(v, local, demand))
        return wait_at(local, target);
    i = least_utilised(v, demand, alive_feasible);
    if (i >= 0)
        return wait_at(i, target);
    return infeasible(target);
}

/* The first node after the cursor, in round-robin order, satisfying pred;
 * moves the cursor to it. -1 (cursor unchanged) if none does. */
static int round_robin(sched_view *v, const res_set *demand, node_pred pred)
{
    uint64_t n = (uint64_t)v->n;
    for (uint64_t k = 1; k <= n; k++) {
        int i = (int)((v->cursor + k) % n);
        if (pred(v, i, demand)) {
            v->cursor = (uint64_t)i;
            return i;
        }
    }
    return -1;
}

static int place_spread(sched_view *v, const res_set *demand, int *target)
{
    int i = round_robin(v, demand, alive_fits);
    if (i >= 0)
        return run_at(v, i, target);
    i = round_robin(v, demand, alive_feasible);
    if (i >= 0)
        return wait_at(i, target);
    return infeasible(target);
}

static int place_node(sched_view *v, const sched_req *r, const uint64_t *locality, int *target)
{
    int i = r->has_node ? sched_find_node(v, &r->node) : -1;
    if (i >= 0 && alive_feasible(v, i, &r->demand)) {
        if (!is_local(v, i))
            return run_at(v, i, target); /* FORWARD: it runs or queues there */
        if (sched_fits(&v->nodes[i].available, &r->demand))
            return run_at(v, i, target);
        return wait_at(i, target);
    }
    if (r->soft)
        return place_default(v, &r->demand, locality, target);
    return infeasible(target);
}

int sched_place(sched_view *v, const sched_req *r, const uint64_t *locality, int *target)
{
    if (target != NULL)
        *target = -1;
    if (v == NULL || r == NULL || target == NULL || v->n < 0 || (v->n > 0 && v->nodes == NULL))
        return SCHED_EINVAL;
    switch (r->strategy) {
    case RAYC_SCHED_DEFAULT:
        return place_default(v, &r->demand, locality, target);
    case RAYC_SCHED_SPREAD:
        return place_spread(v, &r->demand, target);
    case RAYC_SCHED_NODE:
        return place_node(v, r, locality, target);
    default:
        return SCHED_EINVAL;
    }
}

const char *sched_outcome_name(int outcome)
{
    switch (outcome) {
    case SCHED_RUN_LOCAL:
        return "RUN_LOCAL";
    case SCHED_FORWARD:
        return "FORWARD";
    case SCHED_WAIT:
        return "WAIT";
    case SCHED_INFEASIBLE:
        return "INFEASIBLE";
    default:
        return "EINVAL";
    }
}
