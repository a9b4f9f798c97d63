/*
 * gcs_pg_policy.c -- see gcs_pg_policy.h.
 *
 * PACK and SPREAD are greedy over the bundles, largest first (by CPU), on a
 * copy of the nodes' available resources; STRICT_PACK sums the bundles and
 * looks for one node; STRICT_SPREAD is a bipartite matching (augmenting
 * paths), so it finds a placement whenever one exists.
 */
#include "gcs_pg_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *gcs_pg_strategy_name(int strategy)
{
    static const char *const names[] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};
    return strategy >= 0 && strategy < 4 ? names[strategy] : NULL;
}

int gcs_pg_parse_bundles(const char *const *specs, size_t n, res_set *bundles, char *err,
                         size_t errlen)
{
    if (n == 0) {
        snprintf(err, errlen, "a placement group needs at least one bundle");
        return -1;
    }
    if (n > GCS_PG_MAX_BUNDLES) {
        snprintf(err, errlen, "%zu bundles: at most %d", n, GCS_PG_MAX_BUNDLES);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char why[128];
        memset(&bundles[i], 0, sizeof(bundles[i]));
        if (specs[i] == NULL || res_parse(&bundles[i], specs[i], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "bundle %zu (\"%s\"): %s", i, specs[i] ? specs[i] : "",
                     specs[i] ? why : "missing");
            return -1;
        }
        bool any = false;
        for (int k = 0; k < bundles[i].n; k++)
            any |= bundles[i].amount[k] > 0;
        if (!any) {
            snprintf(err, errlen, "bundle %zu (\"%s\") asks for no resource", i, specs[i]);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ resources */

static bool fits(const res_set *avail, const res_set *want)
{
    for (int i = 0; i < want->n; i++)
        if (want->amount[i] > 0 && res_get(avail, want->name[i]) + 1e-9 < want->amount[i])
            return false;
    return true;
}

static void take(res_set *avail, const res_set *want)
{
    for (int i = 0; i < want->n; i++)
        if (want->amount[i] > 0)
            res_set_amount(avail, want->name[i], res_get(avail, want->name[i]) - want->amount[i]);
}

/* ------------------------------------------------------------ strategies */

/* STRICT_PACK: the sum of the bundles on the alive node it fits best
 * (least CPU left over). */
static int strict_pack(const gcs_pg_node *nodes, size_t nn, const res_set *b, size_t n, int *out)
{
    res_set sum;
    memset(&sum, 0, sizeof(sum));
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < b[i].n; k++)
            res_set_amount(&sum, b[i].name[k], res_get(&sum, b[i].name[k]) + b[i].amount[k]);
    int best = -1;
    double best_left = 0;
    for (size_t j = 0; j < nn; j++) {
        if (!nodes[j].alive || !fits(&nodes[j].available, &sum))
            continue;
        double left = res_get(&nodes[j].available, "CPU") - res_get(&sum, "CPU");
        if (best < 0 || left < best_left) {
            best = (int)j;
            best_left = left;
        }
    }
    if (best < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = best;
    return 0;
}

/* Bundle indexes, largest CPU demand first (greedy placement order); arg is
 * the bundle array. */
static int by_cpu_desc(const void *a, const void *b, void *arg)
{
    const res_set *bundles = arg;
    double x = res_get(&bundles[*(const int *)a], "CPU");
    double y = res_get(&bundles[*(const int *)b], "CPU");
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

/* PACK (pack = true) or SPREAD: each bundle to the fitting node holding the
 * most (PACK) or fewest (SPREAD) of this group's bundles so far; ties go to
 * the node with the most CPU available. */
static int greedy(const gcs_pg_node *nodes, size_t nn, const res_set *b, size_t n, bool pack,
                  int *out)
{
    res_set *avail = malloc(nn * sizeof(*avail));
    int *count = calloc(nn, sizeof(*count));
    int *order = malloc(n * sizeof(*order));
    int rc = -1;
    if (avail == NULL || count == NULL || order == NULL)
        goto done;
    for (size_t j = 0; j < nn; j++)
        avail[j] = nodes[j].available;
    for (size_t i = 0; i < n; i++)
        order[i] = (int)i;
    qsort_r(order, n, sizeof(*order), by_cpu_desc, (void *)b);
    for (size_t k = 0; k < n; k++) {
        const res_set *want = &b[order[k]];
        int best = -1;
        for (size_t j = 0; j < nn; j++) {
            if (!nodes[j].alive || !fits(&avail[j], want))
                continue;
            if (best < 0) {
                best = (int)j;
                continue;
            }
            int d = pack ? count[j] - count[best] : count[best] - count[j];
            if (d > 0 || (d == 0 && res_get(&avail[j], "CPU") > res_get(&avail[best], "CPU")))
                best = (int)j;
        }
        if (best < 0)
            goto done;
        take(&avail[best], want);
        count[best]++;
        out[order[k]] = best;
    }
    rc = 0;
done:
    free(avail);
    free(count);
    free(order);
    return rc;
}

/* Augmenting path from bundle i (Kuhn's algorithm). */
static bool augment(size_t i, const bool *ok, size_t nn, int *node_of_bundle, int *bundle_of_node,
                    bool *seen)
{
    for (size_t j = 0; j < nn; j++) {
        if (!ok[i * nn + j] || seen[j])
            continue;
        seen[j] = true;
        if (bundle_of_node[j] < 0 ||
            augment((size_t)bundle_of_node[j], ok, nn, node_of_bundle, bundle_of_node, seen)) {
            bundle_of_node[j] = (int)i;
            node_of_bundle[i] = (int)j;
            return true;
        }
    }
    return false;
}

/* STRICT_SPREAD: one bundle per node, each where it fits alone. */
static int strict_spread(const gcs_pg_node *nodes, size_t nn, const res_set *b, size_t n, int *out)
{
    if (n > nn)
        return -1;
    bool *ok = malloc(n * nn * sizeof(*ok));
    int *bundle_of_node = malloc(nn * sizeof(*bundle_of_node));
    bool *seen = malloc(nn * sizeof(*seen));
    int rc = -1;
    if (ok == NULL || bundle_of_node == NULL || seen == NULL)
        goto done;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nn; j++)
            ok[i * nn + j] = nodes[j].alive && fits(&nodes[j].available, &b[i]);
    for (size_t j = 0; j < nn; j++)
        bundle_of_node[j] = -1;
    for (size_t i = 0; i < n; i++) {
        memset(seen, 0, nn * sizeof(*seen));
        if (!augment(i, ok, nn, out, bundle_of_node, seen))
            goto done;
    }
    rc = 0;
done:
    free(ok);
    free(bundle_of_node);
    free(seen);
    return rc;
}

int gcs_pg_place(const gcs_pg_node *nodes, size_t nnodes, const res_set *bundles, size_t n,
                 int strategy, int *out)
{
    switch (strategy) {
    case GCS_PG_STRICT_PACK:
        return strict_pack(nodes, nnodes, bundles, n, out);
    case GCS_PG_PACK:
        /* One node when the whole group fits there, else as few as greedy finds. */
        if (strict_pack(nodes, nnodes, bundles, n, out) == 0)
            return 0;
        return greedy(nodes, nnodes, bundles, n, true, out);
    case GCS_PG_SPREAD:
        return greedy(nodes, nnodes, bundles, n, false, out);
    case GCS_PG_STRICT_SPREAD:
        return strict_spread(nodes, nnodes, bundles, n, out);
    default:
        return -2;
    }
}
