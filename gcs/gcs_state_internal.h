/*
 * gcs_state_internal.h -- what the state API's files share (gcs_state.c:
 * rows, filters, rendering, the node/job/object views; gcs_state_tasks.c:
 * the task and actor views). Not a public contract: only gcs_state*.c
 * include it.
 *
 * A view's builder appends rows (gcs_state__row_new) and fills their
 * values (gcs_state__set_*: copies; a failed allocation sets rs->oom, and
 * every setter accepts a NULL row so builders need not check each call).
 * Pure, GCS loop thread only, like gcs_state.h.
 */
#ifndef RAYC_GCS_STATE_INTERNAL_H
#define RAYC_GCS_STATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gcs_json.h"
#include "gcs_state.h"

enum { T_STR, T_NUM, T_BOOL, T_JSON };

typedef struct {
    const char *name;
    int type;
    bool table; /* shown in tables without --detail */
} col;

typedef struct {
    char **v;        /* one value per column (NULL: null) */
    const char *key; /* sort: primary (borrowed from v) */
    uint64_t num;    /* sort: secondary, descending */
} row;

typedef struct {
    const col *cols;
    int ncols;
    row *rows;
    size_t n, cap;
    bool oom;
    /* Streaming views (tasks: up to 100,000 records) filter and limit as
     * they build (row_filter), so a request costs rows for what it shows. */
    const gcs_state_query *q;
    const int *fc;
    size_t limit;
    size_t seen, matched;
} rowset;

/* Column counts of the views built in gcs_state_tasks.c (checked there). */
#define GCS_STATE__ACTOR_COLS         13
#define GCS_STATE__TASK_COLS          19
#define GCS_STATE__TASK_SUMMARY_COLS  10
#define GCS_STATE__ACTOR_SUMMARY_COLS 7

/* A new row of rs->ncols NULL values, or NULL (rs->oom set). */
char **gcs_state__row_new(rowset *rs);
/* Streaming views: keep the row just built only if it passes the filters
 * and the limit has room; counted either way. */
void gcs_state__row_filter(rowset *rs);
void gcs_state__set_str(rowset *rs, char **v, int c, const char *s);
void gcs_state__set_u64(rowset *rs, char **v, int c, uint64_t x);
void gcs_state__set_i64(rowset *rs, char **v, int c, int64_t x);
void gcs_state__set_dbl(rowset *rs, char **v, int c, double x);
/* Lowercase hex of id; "" for len 0. */
void gcs_state__set_hex(rowset *rs, char **v, int c, const uint8_t *id, size_t len);
/* Takes the writer's text. */
void gcs_state__set_json(rowset *rs, char **v, int c, gcs_json *j);

/* gcs_state_tasks.c: the task and actor views. */
extern const col gcs_state__actor_cols[GCS_STATE__ACTOR_COLS];
extern const col gcs_state__task_cols[GCS_STATE__TASK_COLS];
extern const col gcs_state__task_summary_cols[GCS_STATE__TASK_SUMMARY_COLS];
extern const col gcs_state__actor_summary_cols[GCS_STATE__ACTOR_SUMMARY_COLS];
void gcs_state__build_actors(const gcs_state_src *src, rowset *rs, const gcs_state_query *q);
void gcs_state__build_tasks(const gcs_state_src *src, rowset *rs, const gcs_state_query *q);
void gcs_state__build_task_summary(const gcs_state_src *src, rowset *rs, const gcs_state_query *q);
void gcs_state__build_actor_summary(const gcs_state_src *src, rowset *rs, const gcs_state_query *q);
/* What was dropped of the task records, after the rows of a task view:
 * JSON {"evicted": N, "lost": M, "by_job": [...]}, or a line per job. */
void gcs_state__render_dropped(gcs_json *j, const gcs_task_table *t, bool table);

#endif
