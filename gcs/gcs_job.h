/*
 * gcs_job.h -- the job table: job ids, drivers, RUNNING -> FINISHED/FAILED.
 * Pure state (callers persist it): no sockets, no storage.
 *
 * Job ids come from a counter (the GCS persists it in table meta, key
 * job_counter): an add with job_id 0 takes counter + 1. An add that names
 * its id is accepted if the id is free and moves the counter past it, so
 * later allocations never collide. Id 0 is never a job.
 *
 * Ownership: the table owns its JobInfo records; pointers it hands out are
 * valid until the next call that modifies the table or gcs_job_table_free.
 * Thread-safety: none; the table belongs to the GCS loop thread.
 */
#ifndef RAYC_GCS_JOB_H
#define RAYC_GCS_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rayc.pb-c.h"

#define GCS_JOB_COUNTER_KEY "job_counter" /* key in table meta */

typedef struct gcs_job_table gcs_job_table;

/* NULL on allocation failure. */
gcs_job_table *gcs_job_table_new(void);
void gcs_job_table_free(gcs_job_table *t); /* accepts NULL */

/* The last id handed out (0: none yet). */
uint32_t gcs_job_counter(const gcs_job_table *t);
/* Restore the counter from storage; it never moves backwards. */
void gcs_job_set_counter(gcs_job_table *t, uint32_t counter);

/* Add a RUNNING job from job (copied). job->job_id 0 allocates the next id.
 * start_time_ms defaults to wall_ms. *out gets the record.
 * Returns RAYC_OK, RAYC_EEXIST (the named id is taken), RAYC_EINVAL
 * (counter exhausted), or RAYC_ENOMEM (table and counter unchanged). */
int gcs_job_add(gcs_job_table *t, const Rpc__JobInfo *job, uint64_t wall_ms,
                const Rpc__JobInfo **out);

/* End a RUNNING job: FINISHED, or FAILED when failed; end_time_ms = wall_ms.
 * *changed (may be NULL) is false when the job had already ended (no-op).
 * Returns RAYC_OK, RAYC_ENOTFOUND or RAYC_ENOMEM. */
int gcs_job_finish(gcs_job_table *t, uint32_t job_id, bool failed, uint64_t wall_ms,
                   const Rpc__JobInfo **out, bool *changed);

/* Load a record from storage (packed JobInfo); moves the counter past its
 * id. Returns RAYC_OK, RAYC_EINVAL (does not unpack, id 0) or RAYC_ENOMEM. */
int gcs_job_load(gcs_job_table *t, const uint8_t *packed, size_t len);

/* Storage key of a job: 4 bytes big-endian. */
void gcs_job_key(uint32_t job_id, uint8_t out[4]);
/* The counter as stored in meta: decimal, NUL-terminated, in out[16]. */
void gcs_job_counter_format(uint32_t counter, char out[16]);
/* Parse a stored counter. 0 or -1 if malformed. */
int gcs_job_counter_parse(const uint8_t *s, size_t len, uint32_t *out);

const Rpc__JobInfo *gcs_job_get(const gcs_job_table *t, uint32_t job_id);
size_t gcs_job_count(const gcs_job_table *t);
/* Fill out[] with up to cap records, by job id. Returns the number written. */
size_t gcs_job_list(const gcs_job_table *t, const Rpc__JobInfo **out, size_t cap);

#endif
