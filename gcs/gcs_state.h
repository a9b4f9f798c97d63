/*
 * gcs_state.h -- the state API: read-only views over the GCS tables (nodes,
 * jobs, objects, placement groups; a summary of objects; the per-object
 * memory view), filtered, limited, and rendered as JSON or as a text table.
 * Served over HTTP by gcs_http.c (/api/v0/<resource>) and printed by the
 * `rayc list|summary|memory` verbs.
 *
 * Every resource is a fixed list of columns (name, type, shown in tables)
 * and a row builder over the tables; filters, limits and rendering are
 * shared. A new resource (tasks, actors, once workers report task events)
 * is one column list and one builder in gcs_state.c (or gcs_state_tasks.c).
 *
 * JSON shape: {"total": N, "num_after_filter": F, "result": [{...}, ...]}
 * where total counts rows before filtering and result holds at most limit
 * rows. Numbers are JSON numbers, nested values (resources) JSON objects.
 *
 * Pure: reads the tables it is given, no sockets, no clock.
 * Thread-safety: none; runs on the GCS loop thread.
 */
#ifndef RAYC_GCS_STATE_H
#define RAYC_GCS_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "gcs_actor.h"
#include "gcs_job.h"
#include "gcs_jobsub.h"
#include "gcs_node.h"
#include "gcs_objdir.h"
#include "gcs_task.h"

#define GCS_STATE_MAX_FILTERS   8
#define GCS_STATE_DEFAULT_LIMIT 100 /* Ray's default */
#define GCS_STATE_MAX_LIMIT     100000

enum { GCS_STATE_JSON, GCS_STATE_TABLE };

/* What the views read (any table may be NULL: empty). */
typedef struct {
    const gcs_node_table *nodes;
    const gcs_job_table *jobs;
    const gcs_objdir *objdir;
    const gcs_jobsub *subs;
    const gcs_actor_table *actors;
    const Rpc__PlacementGroupInfo *pgs; /* placement groups (gcs_pg_list) */
    size_t npgs;
    const gcs_task_table *tasks;
    const struct gcs_task_store *task_store; /* may be NULL: the table is not stored */
} gcs_state_src;

typedef struct {
    const char *key, *value; /* borrowed */
    bool negate;             /* key!=value */
} gcs_state_filter;

typedef struct {
    gcs_state_filter filters[GCS_STATE_MAX_FILTERS];
    int nfilters;
    size_t limit;         /* 0: GCS_STATE_DEFAULT_LIMIT */
    int format;           /* GCS_STATE_JSON or GCS_STATE_TABLE */
    bool detail;          /* tables: every column, not only the main ones */
    const char *group_by; /* memory: "node" (default) or "owner" */
} gcs_state_query;

/* Add a filter parsed from "key=value" or "key!=value" (spec is borrowed and
 * modified in place). Returns 0, or RAYC_EINVAL (malformed, too many). */
int gcs_state_add_filter(gcs_state_query *q, char *spec);

/* Render resource ("nodes", "jobs", "objects", "actors", "tasks",
 * "placement_groups", "summary/objects", "summary/tasks", "summary/actors",
 * "memory") into a new NUL-terminated buffer *body (*len bytes; the caller
 * frees). Returns 0; RAYC_ENOTFOUND for an unknown resource; RAYC_EINVAL for
 * a filter on an unknown column or a bad group_by (err says which);
 * RAYC_ENOMEM.
 *
 * "tasks" shows the newest records that pass the filters (up to the limit),
 * oldest first. Its JSON and that of "summary/tasks" carry what was dropped
 * of the task records: "dropped": {"evicted": N, "lost": M, "by_job":
 * [{"job_id", "tasks", "evicted", "lost"}, ...]} (tables: a line per job). */
int gcs_state_render(const gcs_state_src *src, const char *resource, const gcs_state_query *q,
                     char **body, size_t *len, char *err, size_t errlen);

#endif
