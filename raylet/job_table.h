/*
 * job_table.h -- what this raylet knows about jobs: their code packages
 * (fetched once from the GCS KV by content hash and cached under
 * <session>/code/), their environment, and where their driver runs.
 *
 * A job becomes known from its local driver (JobConfig, checked against the
 * GCS job table) or, for a task forwarded from another node, from the GCS job
 * table (jt_learn); either way it is set up from the GCS's record. Its code
 * is then fetched, and each package is checked against its hash (SHA-256)
 * before it is written to the cache and again, when cached already, before
 * workers are given its path. When a job becomes ready (or fails),
 * on_change runs so the scheduler can dispatch its waiting tasks.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_JOB_TABLE_H
#define RAYC_JOB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "gcs_session.h"
#include "ids.h"

typedef struct job_table job_table;

/* JOB_ENDED: ready, but the GCS said the job is over when this node learned
 * it (a task forwarded here crossed the job's end): only what outlives a
 * job (a detached actor's creation) may still run. */
enum { JOB_FETCHING, JOB_READY, JOB_FAILED, JOB_ENDED };

/* on_change(arg): a job became ready or failed. Code and job lookups go to
 * the GCS through gs (borrowed). NULL on allocation failure. */
job_table *jt_new(struct event_base *base, const rayc_config *cfg, gcs_session *gs,
                  void (*on_change)(void *arg), void *arg);
void jt_free(job_table *jt);

/* The verdict on a driver's JobConfig: refused NULL when the GCS bears it
 * out, else why not. */
typedef void (*jt_claim_cb)(void *arg, uint32_t job_id, const worker_id_t *driver,
                            const char *refused);

/* A local driver (worker id `driver`) says its job is job_id, with these code
 * packages (content hashes). Nothing is done on its word: the job is looked
 * up in the GCS job table, and cb(arg, ...) is called once with the verdict
 * -- refused unless the job exists, is RUNNING, was registered by this
 * driver and has exactly these code hashes. Then the job, if the GCS runs
 * it, is set up from the GCS's record (code and environment) unless it is
 * set up already. While the GCS is away the check is retried for up to a
 * minute. The job's tasks wait meanwhile. */
void jt_config(job_table *jt, uint32_t job_id, const worker_id_t *driver, char **hashes,
               size_t nhashes, jt_claim_cb cb, void *arg);
/* A task of job_id arrived from another node: look the job up in the GCS. */
void jt_learn(job_table *jt, uint32_t job_id);
/* JOB_FETCHING, JOB_READY, JOB_ENDED or JOB_FAILED (*error says why), or -1
 * if unknown. */
int jt_state(job_table *jt, uint32_t job_id, const char **error);
/* Send a worker what it needs to serve job_id (BindJob: libraries, env). */
void jt_bind(job_table *jt, uint32_t job_id, conn *worker_conn);
/* The node a job's driver runs on, when it is another node. */
bool jt_driver_node(job_table *jt, uint32_t job_id, node_id_t *node);
/* The job ended here. */
void jt_remove(job_table *jt, uint32_t job_id);

#endif
