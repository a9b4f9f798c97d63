/*
 * job_table.h -- what this raylet knows about jobs: their code packages
 * (fetched once from the GCS KV by content hash and cached under
 * <session>/code/), their environment, and where their driver runs.
 *
 * A job becomes known from its local driver (JobConfig) or, for a task
 * forwarded from another node, from the GCS job table (jt_learn). Its code is
 * then fetched; when a job becomes ready (or fails), on_change runs so the
 * scheduler can dispatch its waiting tasks.
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

enum { JOB_FETCHING, JOB_READY, JOB_FAILED };

/* on_change(arg): a job became ready or failed. Code and job lookups go to
 * the GCS through gs (borrowed). NULL on allocation failure. */
job_table *jt_new(struct event_base *base, const rayc_config *cfg, gcs_session *gs,
                  void (*on_change)(void *arg), void *arg);
void jt_free(job_table *jt);

/* A local driver's job: its code packages (content hashes) and environment.
 * A job already known is left as it is. */
void jt_config(job_table *jt, uint32_t job_id, char **hashes, size_t nhashes, char **env,
               size_t nenv);
/* A task of job_id arrived from another node: look the job up in the GCS. */
void jt_learn(job_table *jt, uint32_t job_id);
/* JOB_FETCHING, JOB_READY or JOB_FAILED (*error says why), or -1 if unknown. */
int jt_state(job_table *jt, uint32_t job_id, const char **error);
/* Send a worker what it needs to serve job_id (BindJob: libraries, env). */
void jt_bind(job_table *jt, uint32_t job_id, conn *worker_conn);
/* The node a job's driver runs on, when it is another node. */
bool jt_driver_node(job_table *jt, uint32_t job_id, node_id_t *node);
/* The job ended here. */
void jt_remove(job_table *jt, uint32_t job_id);

#endif
