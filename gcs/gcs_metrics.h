/*
 * gcs_metrics.h -- the GCS's Prometheus metrics, served as text at /metrics
 * on the dashboard port. Every name starts with rayc_.
 *
 * Counters and histograms are recorded by the GCS as it works (requests by
 * message type with handler latency, storage operations with latency, HTTP
 * requests by status, task attempts that ended with their queue and run
 * times); gauges (nodes by state, jobs by state, object directory size,
 * heartbeat timeouts, tasks by state, each node's resources, store and
 * queue from its heartbeats) are read from the tables at scrape time, so
 * they are never stale.
 *
 * Thread-safety: none; recorded and rendered on the GCS loop thread.
 */
#ifndef RAYC_GCS_METRICS_H
#define RAYC_GCS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gcs_state.h"

#define GCS_METRICS_MAX_TYPE 256 /* frame types counted individually below this */
#define GCS_METRICS_BUCKETS  10  /* latency buckets, +Inf included */

typedef struct gcs_metrics gcs_metrics;

/* NULL on allocation failure. */
gcs_metrics *gcs_metrics_new(void);
void gcs_metrics_free(gcs_metrics *m); /* accepts NULL */

/* A request of frame type `type` handled in us microseconds. m may be NULL. */
void gcs_metrics_request(gcs_metrics *m, uint16_t type, uint64_t us);
/* A storage operation that took us microseconds (failed or not). m may be NULL. */
void gcs_metrics_storage(gcs_metrics *m, uint64_t us, bool failed);
/* An HTTP request answered with status. m may be NULL. */
void gcs_metrics_http(gcs_metrics *m, int status);
/* A task attempt reached an end (state: Rpc__TaskState FINISHED, FAILED or
 * CANCELLED) after queue_us from submission to start and run_us from start
 * to end (UINT64_MAX: not known). m may be NULL. */
void gcs_metrics_task_ended(gcs_metrics *m, int state, uint64_t queue_us, uint64_t run_us);

/* The exposition text (format 0.0.4) into a new buffer (the caller frees),
 * NULL when out of memory. src gives the tables for the gauges. */
char *gcs_metrics_render(const gcs_metrics *m, const gcs_state_src *src, size_t *len);

#endif
