/*
 * gcs_timeline.h -- `rayc timeline`: the task table's runs as Chrome trace
 * event JSON (the "JSON Object Format" that chrome://tracing and Perfetto
 * open), served at /api/v0/timeline.
 *
 *   {"displayTimeUnit": "ms", "traceEvents": [
 *     {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "node 3f2a..."}},
 *     {"ph": "M", "name": "thread_name", "pid": 1, "tid": 4242, "args": {"name": "worker 4242"}},
 *     {"ph": "X", "name": "inc", "cat": "task", "pid": 1, "tid": 4242,
 *      "ts": <start, us>, "dur": <us>, "args": {"task_id": ..., "state": ...}}, ...]}
 *
 * One process lane per node (pid: the node's place in the node table, from
 * 1), one thread lane per worker (tid: its pid), one complete ("X") slice
 * per task attempt that ran: from RUNNING to its end, or to now while it
 * still runs. Attempts that never started have no slice. Times are
 * wall-clock microseconds since the epoch.
 *
 * Pure: reads the tables it is given. Thread-safety: none (GCS loop).
 */
#ifndef RAYC_GCS_TIMELINE_H
#define RAYC_GCS_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "gcs_node.h"
#include "gcs_task.h"

/* The trace of job_id's attempts (0: every job) into a new NUL-terminated
 * buffer (*len bytes; the caller frees). nodes may be NULL (lanes are then
 * named by node id only). now_us closes the slices of running attempts.
 * NULL when out of memory. */
char *gcs_timeline_render(const gcs_task_table *tasks, const gcs_node_table *nodes, uint32_t job_id,
                          uint64_t now_us, size_t *len);

#endif
