/*
 * gcs_task.h -- the GCS's table of task attempts, built from the task
 * events drivers and workers send (TaskEventBatch, worker/task_events.h).
 * Read by the state API (tasks, summary/tasks), /metrics and the timeline.
 *
 * One record per attempt (task id, attempt number). The owner and the
 * executor of an attempt each send what they saw; their records merge: the
 * latest state wins (states only move forward: PENDING_ARGS < SUBMITTED <
 * SCHEDULED < RUNNING < an end), each state keeps the first time anyone saw
 * it, names and errors fill in when missing.
 *
 * Bounded: at most per_job records per job and total records in all. A new
 * attempt over a bound drops the oldest record (first seen first) of its job,
 * or of the whole table, and counts it as evicted for that job. Events a
 * process could not buffer are counted per job as lost. Both counts are
 * shown by `rayc list tasks` / `summary tasks` and /metrics. The table
 * lives in memory; gcs_task_store.h keeps a copy in the GCS storage
 * (gcs_task_export, read back with gcs_task_add_batch).
 *
 * Thread-safety: none; runs on the GCS loop thread.
 */
#ifndef RAYC_GCS_TASK_H
#define RAYC_GCS_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "msg.h"

#define GCS_TASK_STATES 8 /* Rpc__TaskState values 0..7 */

struct gcs_metrics;
typedef struct gcs_task_table gcs_task_table;

/* One attempt, as the views read it. Strings are never NULL ("" for none). */
typedef struct gcs_task_info {
    task_id_t id;
    uint32_t attempt;
    uint32_t job_id;
    int state; /* Rpc__TaskState */
    uint64_t pending_args_us, submitted_us, scheduled_us, running_us, end_us;
    bool has_node;
    node_id_t node;
    bool has_actor; /* an actor call (or creation): of this actor */
    actor_id_t actor;
    bool actor_creation; /* the creation of actor (ACTOR_CREATION_TASK) */
    int32_t worker_pid;
    int32_t error_code;
    bool retried;
    const char *function, *name, *error;
} gcs_task_info;

/* What the table knows about one job's records. */
typedef struct gcs_task_job_stats {
    uint32_t job_id;
    size_t tasks;     /* records kept */
    uint64_t evicted; /* records dropped to stay within the bounds */
    uint64_t lost;    /* events the job's processes could not buffer */
} gcs_task_job_stats;

/* Bounds: per_job and total records (0: no bound). NULL when out of memory. */
gcs_task_table *gcs_task_table_new(size_t per_job, size_t total);
void gcs_task_table_free(gcs_task_table *t); /* NULL-safe */

/* Merge a batch (its columns: see TaskEventBatch in proto/rayc.proto). m
 * (may be NULL) hears of every attempt that reaches an end:
 * gcs_metrics_task_ended. A batch whose columns disagree on the number of
 * attempts is dropped whole (logged); a reference outside its dictionary
 * reads as none. */
void gcs_task_add_batch(gcs_task_table *t, const Rpc__TaskEventBatch *b, struct gcs_metrics *m);

/* job_id ended: its attempts that have not ended (their owner is gone with
 * it, or never said) become CANCELLED at now_us, with the error "its job
 * ended first". m (may be NULL) counts them as ended. */
void gcs_task_job_ended(gcs_task_table *t, uint32_t job_id, uint64_t now_us, struct gcs_metrics *m);

/* An actor's creation, as the GCS sees it (gcs_actor_manager.c): one
 * attempt per incarnation (attempt = restarts so far). */
typedef struct gcs_task_creation {
    task_id_t id; /* the creation TaskSpec's */
    uint32_t attempt;
    int state;       /* SUBMITTED, SCHEDULED, FINISHED, FAILED, CANCELLED */
    uint64_t now_us; /* the time of that state */
    const char *class_name, *name;
    const actor_id_t *actor;
    const node_id_t *node; /* NULL: none yet */
    int32_t pid;
    int32_t error_code;
    const char *error; /* NULL: none */
    bool retried;      /* the next attempt follows */
} gcs_task_creation;

/* Merge an actor creation's state change into its record, like an event
 * of a batch (the record is marked actor_creation). */
void gcs_task_add_creation(gcs_task_table *t, const gcs_task_creation *c, struct gcs_metrics *m);

/* "NORMAL_TASK", "ACTOR_CREATION_TASK" or "ACTOR_TASK" (Ray's names). */
const char *gcs_task_type_name(const gcs_task_info *ti);

size_t gcs_task_count(const gcs_task_table *t);
/* Records by latest state: counts[Rpc__TaskState]. */
void gcs_task_state_counts(const gcs_task_table *t, size_t counts[GCS_TASK_STATES]);
/* fn for each record, oldest first (newest first with newest_first); stops
 * when fn returns false. ti lives during the call. */
void gcs_task_walk(const gcs_task_table *t, bool newest_first,
                   bool (*fn)(void *arg, const gcs_task_info *ti), void *arg);
/* Per-job stats into out[0..cap), by job id; returns how many jobs there are. */
size_t gcs_task_jobs(const gcs_task_table *t, gcs_task_job_stats *out, size_t cap);
/* Sums over the jobs. */
uint64_t gcs_task_evicted(const gcs_task_table *t);
uint64_t gcs_task_lost(const gcs_task_table *t);

/* Persistence (gcs_task_store.h). Every change to a record stamps it with
 * the table's next sequence number; gcs_task_seq is the latest. */
uint64_t gcs_task_seq(const gcs_task_table *t);
/* The records changed after since (0: all), oldest first, as TaskEventBatch
 * messages of at most per_batch attempts (0: 1000) that gcs_task_add_batch
 * reads back: emit gets each one, valid during the call (it points into the
 * table: emit must not change it). Per-job drop counts are not exported.
 * Returns how many records went out, or RAYC_ENOMEM (nothing did). */
long gcs_task_export(const gcs_task_table *t, uint64_t since, size_t per_batch,
                     void (*emit)(void *arg, const Rpc__TaskEventBatch *b), void *arg);

/* "FINISHED", ...; "NIL" for 0, "UNKNOWN" out of range. */
const char *gcs_task_state_name(int state);
/* true for FINISHED, FAILED and CANCELLED. */
bool gcs_task_state_is_end(int state);

#endif
