/*
 * gcs_state_tasks.c -- the state API's task and actor views (rows of the
 * task table built from task events, the actor table, their summaries);
 * see gcs_state.h for the shapes and gcs_state_internal.h for the helpers.
 * Pure; runs in the GCS event-loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_state_internal.h"
#include "ids.h"
#include "rayc.h"

enum {
    A_ID,
    A_CLASS,
    A_STATE,
    A_NAME,
    A_NS,
    A_JOB,
    A_NODE,
    A_PID,
    A_RESTARTS,
    A_DETACHED,
    A_DEATH,
    A_START,
    A_END,
    A_COLS
};
const col gcs_state__actor_cols[A_COLS] = {
    {"actor_id", T_STR, true},     {"class_name", T_STR, true},   {"state", T_STR, true},
    {"name", T_STR, true},         {"namespace", T_STR, false},   {"job_id", T_NUM, true},
    {"node_id", T_STR, false},     {"pid", T_NUM, true},          {"num_restarts", T_NUM, true},
    {"is_detached", T_STR, false}, {"death_cause", T_STR, false}, {"start_time_ms", T_NUM, false},
    {"end_time_ms", T_NUM, false},
};

/* The GCS actor table, by actor id. */
void gcs_state__build_actors(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    (void)q;
    size_t cap = src->actors ? gcs_actor_count(src->actors) : 0;
    const Rpc__ActorInfo **list = malloc((cap ? cap : 1) * sizeof(*list));
    if (list == NULL) {
        rs->oom = true;
        return;
    }
    size_t n = cap ? gcs_actor_list(src->actors, list, cap) : 0;
    for (size_t i = 0; i < n; i++) {
        const Rpc__ActorInfo *x = list[i];
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        gcs_state__set_hex(rs, v, A_ID, x->actor_id.data, x->actor_id.len);
        gcs_state__set_str(rs, v, A_CLASS, x->class_name);
        gcs_state__set_str(rs, v, A_STATE, gcs_actor_state_name(x->state));
        gcs_state__set_str(rs, v, A_NAME, x->name);
        gcs_state__set_str(rs, v, A_NS, x->namespace_);
        gcs_state__set_u64(rs, v, A_JOB, x->job_id);
        gcs_state__set_hex(rs, v, A_NODE, x->node_id.data, x->node_id.len);
        gcs_state__set_i64(rs, v, A_PID, x->pid);
        gcs_state__set_u64(rs, v, A_RESTARTS, x->num_restarts);
        gcs_state__set_str(rs, v, A_DETACHED, x->detached ? "true" : "false");
        gcs_state__set_str(rs, v, A_DEATH, x->death_cause);
        gcs_state__set_u64(rs, v, A_START, x->start_time_ms);
        gcs_state__set_u64(rs, v, A_END, x->end_time_ms);
    }
    free(list);
    for (size_t i = 0; i < rs->n; i++)
        rs->rows[i].key = rs->rows[i].v[A_ID];
}

/* ------------------------------------------------------------ tasks */

enum {
    T_ID,
    T_ATTEMPT,
    T_NAME,
    T_FUNC,
    T_TYPE,
    T_STATE,
    T_JOB,
    T_NODE,
    T_PID,
    T_ERR_TYPE,
    T_ERR_MSG,
    T_RETRIED,
    T_ACTOR,
    T_PENDING,
    T_SUBMITTED,
    T_SCHEDULED,
    T_START,
    T_END,
    T_DURATION,
    T_COLS
};
const col gcs_state__task_cols[T_COLS] = {
    {"task_id", T_STR, true},
    {"attempt_number", T_NUM, true},
    {"name", T_STR, true},
    {"func_or_class_name", T_STR, true},
    {"type", T_STR, true},
    {"state", T_STR, true},
    {"job_id", T_NUM, true},
    {"node_id", T_STR, true},
    {"worker_pid", T_NUM, true},
    {"error_type", T_STR, true},
    {"error_message", T_STR, false},
    {"is_retried", T_BOOL, false},
    {"actor_id", T_STR, false},
    {"pending_args_time_ms", T_NUM, false},
    {"submitted_time_ms", T_NUM, false},
    {"scheduled_time_ms", T_NUM, false},
    {"start_time_ms", T_NUM, false},
    {"end_time_ms", T_NUM, false},
    {"duration_ms", T_NUM, false},
};

/* "RAYC_EWORKER_DIED" for RAYC_EWORKER_DIED; "" for 0. */
static const char *error_type(int code)
{
    if (code == 0)
        return "";
    switch (code) {
#define ERR__NAME(name, value, msg)                                                                \
    case value:                                                                                    \
        return "RAYC_" #name;
        RAYC_ERRNO_MAP(ERR__NAME)
#undef ERR__NAME
    }
    return "UNKNOWN";
}

static void set_ms(rowset *rs, char **v, int c, uint64_t us)
{
    if (us)
        gcs_state__set_u64(rs, v, c, us / 1000);
}

static bool on_task(void *arg, const gcs_task_info *x)
{
    rowset *rs = arg;
    char **v = gcs_state__row_new(rs);
    if (v == NULL)
        return false;
    gcs_state__set_hex(rs, v, T_ID, x->id.b, TASK_ID_SIZE);
    gcs_state__set_u64(rs, v, T_ATTEMPT, x->attempt);
    gcs_state__set_str(rs, v, T_NAME, x->name);
    gcs_state__set_str(rs, v, T_FUNC, x->function);
    gcs_state__set_str(rs, v, T_TYPE, gcs_task_type_name(x));
    gcs_state__set_str(rs, v, T_STATE, gcs_task_state_name(x->state));
    gcs_state__set_u64(rs, v, T_JOB, x->job_id);
    gcs_state__set_hex(rs, v, T_NODE, x->node.b, x->has_node ? NODE_ID_SIZE : 0);
    gcs_state__set_i64(rs, v, T_PID, x->worker_pid);
    gcs_state__set_str(rs, v, T_ERR_TYPE, error_type(x->error_code));
    gcs_state__set_str(rs, v, T_ERR_MSG, x->error);
    gcs_state__set_str(rs, v, T_RETRIED, x->retried ? "true" : "false");
    gcs_state__set_hex(rs, v, T_ACTOR, x->actor.b, x->has_actor ? ACTOR_ID_SIZE : 0);
    set_ms(rs, v, T_PENDING, x->pending_args_us);
    set_ms(rs, v, T_SUBMITTED, x->submitted_us);
    set_ms(rs, v, T_SCHEDULED, x->scheduled_us);
    set_ms(rs, v, T_START, x->running_us);
    set_ms(rs, v, T_END, x->end_us);
    if (x->running_us && x->end_us >= x->running_us)
        gcs_state__set_dbl(rs, v, T_DURATION, (double)(x->end_us - x->running_us) / 1000.0);
    gcs_state__row_filter(rs);
    return !rs->oom;
}

/* The newest records that pass the filters, up to the limit, shown oldest
 * first (a tail of the table, like a log). */
void gcs_state__build_tasks(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    (void)q;
    gcs_task_walk(src->tasks, true, on_task, rs);
    for (size_t i = 0; i < rs->n / 2; i++) {
        row tmp = rs->rows[i];
        rs->rows[i] = rs->rows[rs->n - 1 - i];
        rs->rows[rs->n - 1 - i] = tmp;
    }
}

enum {
    TS_JOB,
    TS_FUNC,
    TS_TOTAL,
    TS_PENDING_ARGS,
    TS_SUBMITTED,
    TS_SCHEDULED,
    TS_RUNNING,
    TS_FINISHED,
    TS_FAILED,
    TS_CANCELLED,
    TS_COLS
};
const col gcs_state__task_summary_cols[TS_COLS] = {
    {"job_id", T_NUM, true},       {"func_or_class_name", T_STR, true}, {"total", T_NUM, true},
    {"pending_args", T_NUM, true}, {"submitted", T_NUM, true},          {"scheduled", T_NUM, true},
    {"running", T_NUM, true},      {"finished", T_NUM, true},           {"failed", T_NUM, true},
    {"cancelled", T_NUM, true},
};

typedef struct {
    uint32_t job;
    const char *function; /* borrowed from the table */
    uint64_t counts[GCS_TASK_STATES];
} task_group;

typedef struct {
    task_group *g;
    size_t n, cap;
    bool oom;
} task_groups;

static bool on_task_group(void *arg, const gcs_task_info *x)
{
    task_groups *gs = arg;
    size_t i;
    /* Few distinct functions per job: a linear scan from the last used. */
    for (i = gs->n; i > 0; i--)
        if (gs->g[i - 1].job == x->job_id && strcmp(gs->g[i - 1].function, x->function) == 0)
            break;
    if (i == 0) {
        if (gs->n == gs->cap) {
            size_t cap = gs->cap ? gs->cap * 2 : 16;
            task_group *ng = realloc(gs->g, cap * sizeof(*ng));
            if (ng == NULL) {
                gs->oom = true;
                return false;
            }
            gs->g = ng;
            gs->cap = cap;
        }
        gs->g[gs->n] = (task_group){x->job_id, x->function, {0}};
        i = ++gs->n;
    }
    if (x->state >= 0 && x->state < GCS_TASK_STATES)
        gs->g[i - 1].counts[x->state]++;
    return true;
}

/* Per (job, function): attempts by latest state. */
void gcs_state__build_task_summary(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    (void)q;
    task_groups gs = {0};
    gcs_task_walk(src->tasks, false, on_task_group, &gs);
    rs->oom |= gs.oom;
    for (size_t i = 0; i < gs.n; i++) {
        task_group *g = &gs.g[i];
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        uint64_t total = 0;
        for (int s = 0; s < GCS_TASK_STATES; s++)
            total += g->counts[s];
        gcs_state__set_u64(rs, v, TS_JOB, g->job);
        gcs_state__set_str(rs, v, TS_FUNC, g->function);
        gcs_state__set_u64(rs, v, TS_TOTAL, total);
        for (int s = RPC__TASK_STATE__TASK_PENDING_ARGS; s <= RPC__TASK_STATE__TASK_CANCELLED; s++)
            gcs_state__set_u64(rs, v, TS_PENDING_ARGS + s - RPC__TASK_STATE__TASK_PENDING_ARGS,
                               g->counts[s]);
    }
    free(gs.g);
}

enum { AS_CLASS, AS_JOB, AS_TOTAL, AS_PENDING, AS_ALIVE, AS_RESTARTING, AS_DEAD, AS_COLS };
const col gcs_state__actor_summary_cols[AS_COLS] = {
    {"class_name", T_STR, true}, {"job_id", T_NUM, true},
    {"total", T_NUM, true},      {"pending_creation", T_NUM, true},
    {"alive", T_NUM, true},      {"restarting", T_NUM, true},
    {"dead", T_NUM, true},
};

/* Per (class, job): actors by state. */
void gcs_state__build_actor_summary(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    (void)q;
    size_t cap = src->actors ? gcs_actor_count(src->actors) : 0;
    const Rpc__ActorInfo **list = malloc((cap ? cap : 1) * sizeof(*list));
    uint64_t(*counts)[4] = calloc(cap ? cap : 1, sizeof(*counts));
    size_t *first = calloc(cap ? cap : 1, sizeof(*first)); /* group -> its first actor */
    if (list == NULL || counts == NULL || first == NULL) {
        rs->oom = true;
        free(list);
        free(counts);
        free(first);
        return;
    }
    size_t n = cap ? gcs_actor_list(src->actors, list, cap) : 0, ngroups = 0;
    for (size_t i = 0; i < n; i++) {
        size_t g;
        for (g = 0; g < ngroups; g++)
            if (list[first[g]]->job_id == list[i]->job_id &&
                strcmp(list[first[g]]->class_name, list[i]->class_name) == 0)
                break;
        if (g == ngroups)
            first[ngroups++] = i;
        if ((unsigned)list[i]->state < 4)
            counts[g][list[i]->state]++;
    }
    for (size_t g = 0; g < ngroups; g++) {
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        const Rpc__ActorInfo *a = list[first[g]];
        gcs_state__set_str(rs, v, AS_CLASS, a->class_name);
        gcs_state__set_u64(rs, v, AS_JOB, a->job_id);
        gcs_state__set_u64(rs, v, AS_TOTAL,
                           counts[g][0] + counts[g][1] + counts[g][2] + counts[g][3]);
        for (int s = 0; s < 4; s++)
            gcs_state__set_u64(rs, v, AS_PENDING + s, counts[g][s]);
        rs->rows[rs->n - 1].key = v[AS_CLASS];
    }
    free(list);
    free(counts);
    free(first);
}

/* What was dropped of the task records, after the rows of a task view:
 * JSON {"evicted": N, "lost": M, "by_job": [...]}, or a line per job. */
void gcs_state__render_dropped(gcs_json *j, const gcs_task_table *t, bool table)
{
    size_t n = gcs_task_jobs(t, NULL, 0);
    gcs_task_job_stats *st = calloc(n ? n : 1, sizeof(*st));
    if (st == NULL) {
        j->oom = true;
        return;
    }
    n = gcs_task_jobs(t, st, n);
    if (!table) {
        gcs_json_key(j, "dropped");
        gcs_json_obj_begin(j);
        gcs_json_key(j, "evicted");
        gcs_json_u64(j, gcs_task_evicted(t));
        gcs_json_key(j, "lost");
        gcs_json_u64(j, gcs_task_lost(t));
        gcs_json_key(j, "by_job");
        gcs_json_arr_begin(j);
    }
    for (size_t i = 0; i < n; i++) {
        if (st[i].evicted == 0 && st[i].lost == 0)
            continue;
        if (table) {
            char b[200];
            snprintf(b, sizeof(b),
                     "(job %u: %llu task records evicted from the GCS table, %llu task events "
                     "lost in full process buffers)\n",
                     st[i].job_id, (unsigned long long)st[i].evicted,
                     (unsigned long long)st[i].lost);
            gcs_json_raw(j, b);
            continue;
        }
        gcs_json_obj_begin(j);
        gcs_json_key(j, "job_id");
        gcs_json_u64(j, st[i].job_id);
        gcs_json_key(j, "tasks");
        gcs_json_u64(j, st[i].tasks);
        gcs_json_key(j, "evicted");
        gcs_json_u64(j, st[i].evicted);
        gcs_json_key(j, "lost");
        gcs_json_u64(j, st[i].lost);
        gcs_json_obj_end(j);
    }
    if (!table) {
        gcs_json_arr_end(j);
        gcs_json_obj_end(j);
    }
    free(st);
}

_Static_assert(A_COLS == GCS_STATE__ACTOR_COLS, "actor columns");
_Static_assert(T_COLS == GCS_STATE__TASK_COLS, "task columns");
_Static_assert(TS_COLS == GCS_STATE__TASK_SUMMARY_COLS, "task summary columns");
_Static_assert(AS_COLS == GCS_STATE__ACTOR_SUMMARY_COLS, "actor summary columns");
