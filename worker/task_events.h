/*
 * task_events.h -- a process's buffer of task events (issue 15): what this
 * driver or worker sees of each task attempt it owns or runs, sent to the
 * GCS as TaskEventBatch frames by a flusher thread about once a second, off
 * the hot path of submitting and running tasks.
 *
 * Recording only appends: under the buffer's own lock, the update goes at
 * the end of the current window as an event, its strings copied into the
 * window's arena. There are two windows: the flusher swaps them under the
 * lock, then, without it, folds the events of each attempt (task id,
 * attempt) into one record and encodes the records as the columns of a
 * TaskEventBatch. So a task submitted and finished within one window is one
 * record on the wire, and the hot path never looks anything up. A window
 * holding max_records events drops further updates and counts them per
 * job; the counts go with the next batch, and the GCS shows them.
 *
 * Who records what (docs/dashboard.md, "Task events"):
 *   - the owner (task_submitter.c): PENDING_ARGS, SUBMITTED (each attempt),
 *     and the end of each attempt from its TaskDone (FINISHED, FAILED with
 *     the error, CANCELLED, retried), with the times the worker put in the
 *     TaskDone: scheduled (raylet push), running, end, the worker's pid;
 *   - the executor (task_executor.c) names the task it runs (tev_running);
 *     a task still running at a flush is sent as RUNNING then (node, pid,
 *     start; the owner's record has its function), so long tasks show
 *     before they end without a record per short task.
 *
 * Every function accepts a NULL buffer (task events off) and does nothing.
 * Thread-safety: every function may be called from any thread, but
 * tev_running, which only the executor's thread calls.
 */
#ifndef RAYC_TASK_EVENTS_H
#define RAYC_TASK_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_conn.h"
#include "ids.h"
#include "msg.h"

#define TEV_BATCH_MAX     1000  /* attempts per TaskEventBatch frame (~75 KiB) */
#define TEV_FLUSH_AT      10000 /* a window of this many events is sent before its period ends */
#define TEV_MAX_DROP_JOBS 8     /* jobs whose drops are counted apart (more: with the first) */
#define TEV_STRING_MAX    1024  /* longer names and error messages are cut */

typedef struct tev_buffer tev_buffer;

/* The connection to send on, asked at each flush (the GCS may have
 * restarted and the process reconnected). NULL: none now (the batch is
 * counted as dropped). Called on the flusher thread. */
typedef cw_conn *(*tev_gcs_fn)(void *arg);

typedef struct tev_opts {
    int64_t interval_ms; /* flush period; <= 0: task events off (tev_new returns NULL) */
    size_t max_records;  /* events per window (0: TEV_FLUSH_AT * 10) */
} tev_opts;

/* Counters, for tests and logs. */
typedef struct tev_stats {
    uint64_t sent;    /* attempt records sent to the GCS */
    uint64_t dropped; /* updates dropped (window full) and records whose send failed */
    uint64_t batches; /* TaskEventBatch frames */
} tev_stats;

/* A buffer that ignores records until tev_attach. NULL when task events are
 * off (o->interval_ms <= 0) or out of memory. */
tev_buffer *tev_new(const tev_opts *o);
/* Start sending on what gcs(arg) returns (the flusher thread starts); node:
 * this process's node, where the tasks it runs run. 0; -1 when the thread
 * cannot start (records stay ignored). A second call does nothing. */
int tev_attach(tev_buffer *b, tev_gcs_fn gcs, void *arg, const node_id_t *node);
/* Send what is buffered now, stop the flusher and detach: later records are
 * ignored. Call before the GCS connections close. Idempotent. */
void tev_stop(tev_buffer *b);
/* tev_stop, then free. NULL-safe. */
void tev_free(tev_buffer *b);
/* Send what is buffered now and wait until it is written (tests). */
void tev_flush(tev_buffer *b);
void tev_get_stats(tev_buffer *b, tev_stats *out);

/* ------------------------------------------------------------ owner */

/* spec was sent to the raylet: SUBMITTED at now, with its function, name
 * and attempt. */
void tev_submitted(tev_buffer *b, const Rpc__TaskSpec *spec);
/* A state the owner decides alone, at now: TASK_PENDING_ARGS, or the end of
 * an attempt it never sent or could not send (TASK_FAILED with error_code
 * and error, TASK_CANCELLED). function and name may be NULL. */
void tev_owner_state(tev_buffer *b, const task_id_t *id, uint32_t attempt, int state,
                     const char *function, const char *name, int error_code, const char *error);
/* The attempt of m ended (its TaskDone reached the owner): FINISHED, FAILED
 * or CANCELLED by its status, with the worker's times and pid and the node;
 * retried: the owner submits the next attempt. */
void tev_done(tev_buffer *b, const Rpc__TaskDone *m, bool retried);

/* ------------------------------------------------------------ executor */

/* spec starts running at start_us (wall clock), pushed at scheduled_us
 * (0: unknown); NULL: nothing runs any more. Lock-free (a seqlock): the
 * executor thread is the only caller. Only spec's id and attempt are read,
 * during the call. */
void tev_running(tev_buffer *b, const Rpc__TaskSpec *spec, uint64_t scheduled_us,
                 uint64_t start_us);

#endif
