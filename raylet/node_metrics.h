/*
 * node_metrics.h -- what a raylet shows on its /metrics (--metrics-port,
 * metrics_server.h): its object store, spilling, transfers, workers, the
 * tasks its workers ran and its scheduler queue, as Prometheus text.
 * Names start with rayc_raylet_ and carry a node="<hex>" label, so several
 * raylets scraped into one Prometheus stay apart. The workers' own numbers
 * come through their raylet (the tasks they ran, how they ended, their
 * starts and deaths); workers serve no endpoint of their own.
 *
 * Pure: formats the numbers it is given. Thread-safety: none needed.
 */
#ifndef RAYC_NODE_METRICS_H
#define RAYC_NODE_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "plasma_store.h"
#include "util.h"

typedef struct {
    const char *node_hex;
    plasma_stats store;
    uint64_t bytes_in, bytes_out, pulls_done, pulls_failed; /* object manager */
    int workers_alive, workers_starting;
    uint64_t workers_started, workers_died;
    uint64_t tasks_submitted;     /* specs local owners sent here */
    uint64_t tasks_forwarded;     /* specs other raylets sent here */
    uint64_t tasks_ok;            /* TaskDone from this node's workers: OK */
    uint64_t tasks_failed;        /* ... with an error */
    uint64_t pending, infeasible; /* the scheduler's queue */
    uint64_t oom_kills;
    const res_set *total, *available;
} node_metrics_src;

/* Write every metric of s to f. */
void node_metrics_write(FILE *f, const node_metrics_src *s);

#endif
