/*
 * gcs_task_store.h -- the task table (gcs_task.h) kept in the GCS storage,
 * so that a restarted GCS (the supervisor restarts one that died, kill -9
 * included) still lists the task attempts it had.
 *
 * Storage table GCS_TABLE_TASKS ("tasks"): chunk number (8 bytes,
 * big-endian) -> a TaskEventBatch of up to GCS_TASK_STORE_CHUNK records.
 * Every flush period the records changed since the last flush go out as new
 * chunks (a record changed often is written once per period, not per
 * event). Chunks are read back in order through gcs_task_add_batch, whose
 * merge makes a later copy of a record win. Bounded like the table: when
 * the stored records pass twice the table's bound (or at the first flush
 * after loading), the whole table is written as fresh chunks and every
 * older chunk deleted, so storage holds at most about three times what the
 * table holds. What changed in the last period before a crash is lost;
 * per-job drop counts are not stored (they restart at zero).
 *
 * Runs on the GCS loop thread (a timer on its event base).
 */
#ifndef RAYC_GCS_TASK_STORE_H
#define RAYC_GCS_TASK_STORE_H

#include <event2/event.h>
#include <stdint.h>

#include "gcs_storage.h"
#include "gcs_task.h"

#define GCS_TABLE_TASKS      "tasks" /* chunk number (8 B big-endian) -> TaskEventBatch */
#define GCS_TASK_STORE_CHUNK 1000    /* records per chunk */

typedef struct gcs_task_store gcs_task_store;

/* Load the stored chunks into t (asynchronously; events that arrive
 * meanwhile merge as usual), then flush every period_ms (<= 0: 1000).
 * bound: the table's total bound (0: none; compaction then happens at 200,000
 * stored records). NULL when out of memory. st and t must outlive the store. */
gcs_task_store *gcs_task_store_new(struct event_base *base, gcs_storage *st, gcs_task_table *t,
                                   int64_t period_ms, size_t bound);
/* Stop flushing (writes in flight complete or are cancelled with the
 * storage). NULL-safe. */
void gcs_task_store_free(gcs_task_store *s);

/* Records whose writes storage has confirmed since start (for /metrics and
 * tests), and records loaded at start. */
uint64_t gcs_task_store_persisted(const gcs_task_store *s);
uint64_t gcs_task_store_loaded(const gcs_task_store *s);

#endif
