/*
 * gcs_timeline.c -- Chrome trace events of task runs; see gcs_timeline.h.
 *
 * Two walks of the task table: the first finds the lanes (nodes, and the
 * workers on each), which are written first as metadata events; the second
 * writes a slice per run. Runs in the GCS event-loop thread only.
 */
#include "gcs_timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_json.h"

typedef struct {
    node_id_t node;
    bool has_node;
    int32_t pid;
} lane;

typedef struct {
    uint32_t job_id;
    uint64_t now_us;
    const Rpc__NodeInfo **nodes;
    size_t nnodes;
    node_id_t *extra; /* nodes the table no longer knows, after nodes[] */
    size_t nextra, extracap;
    lane *lanes; /* distinct (node, pid), in order of first run */
    size_t nlanes, lanecap;
    gcs_json *j;
    bool oom;
} tl;

static bool wanted(const tl *t, const gcs_task_info *x)
{
    return x->running_us != 0 && (t->job_id == 0 || x->job_id == t->job_id);
}

/* The process lane of a node: its place in the node table (or after it)
 * plus one; 0 for "unknown node". */
static int node_pid(tl *t, const gcs_task_info *x)
{
    if (!x->has_node)
        return 0;
    for (size_t i = 0; i < t->nnodes; i++)
        if (t->nodes[i]->node_id.len == NODE_ID_SIZE &&
            memcmp(t->nodes[i]->node_id.data, x->node.b, NODE_ID_SIZE) == 0)
            return (int)i + 1;
    for (size_t i = 0; i < t->nextra; i++)
        if (memcmp(t->extra[i].b, x->node.b, NODE_ID_SIZE) == 0)
            return (int)(t->nnodes + i) + 1;
    if (t->nextra == t->extracap) {
        size_t cap = t->extracap ? t->extracap * 2 : 8;
        node_id_t *ne = realloc(t->extra, cap * sizeof(*ne));
        if (ne == NULL) {
            t->oom = true;
            return 0;
        }
        t->extra = ne;
        t->extracap = cap;
    }
    t->extra[t->nextra++] = x->node;
    return (int)(t->nnodes + t->nextra);
}

static bool find_lanes(void *arg, const gcs_task_info *x)
{
    tl *t = arg;
    if (!wanted(t, x))
        return true;
    node_pid(t, x); /* registers a node the table has forgotten */
    for (size_t i = t->nlanes; i > 0; i--) {
        const lane *l = &t->lanes[i - 1];
        if (l->pid == x->worker_pid && l->has_node == x->has_node &&
            (!x->has_node || memcmp(l->node.b, x->node.b, NODE_ID_SIZE) == 0))
            return true;
    }
    if (t->nlanes == t->lanecap) {
        size_t cap = t->lanecap ? t->lanecap * 2 : 16;
        lane *nl = realloc(t->lanes, cap * sizeof(*nl));
        if (nl == NULL) {
            t->oom = true;
            return false;
        }
        t->lanes = nl;
        t->lanecap = cap;
    }
    t->lanes[t->nlanes++] = (lane){x->node, x->has_node, x->worker_pid};
    return true;
}

static void meta(gcs_json *j, const char *what, int pid, int64_t tid, bool has_tid,
                 const char *name, int sort)
{
    gcs_json_obj_begin(j);
    gcs_json_key(j, "ph");
    gcs_json_str(j, "M");
    gcs_json_key(j, "name");
    gcs_json_str(j, what);
    gcs_json_key(j, "pid");
    gcs_json_i64(j, pid);
    if (has_tid) {
        gcs_json_key(j, "tid");
        gcs_json_i64(j, tid);
    }
    gcs_json_key(j, "args");
    gcs_json_obj_begin(j);
    gcs_json_key(j, strcmp(what, "process_sort_index") == 0 ? "sort_index" : "name");
    if (name)
        gcs_json_str(j, name);
    else
        gcs_json_i64(j, sort);
    gcs_json_obj_end(j);
    gcs_json_obj_end(j);
}

static void write_lanes(tl *t)
{
    gcs_json *j = t->j;
    size_t nn = t->nnodes + t->nextra;
    bool *used = calloc(nn + 1, sizeof(*used));
    if (used == NULL) {
        t->oom = true;
        return;
    }
    for (size_t i = 0; i < t->nlanes; i++) {
        gcs_task_info x = {.has_node = t->lanes[i].has_node, .node = t->lanes[i].node};
        used[node_pid(t, &x)] = true;
    }
    for (size_t p = 0; p <= nn; p++) {
        if (!used[p])
            continue;
        char name[ID_HEX_MAX + 300], hex[ID_HEX_MAX];
        if (p == 0) {
            snprintf(name, sizeof(name), "unknown node");
        } else if (p <= t->nnodes) {
            const Rpc__NodeInfo *n = t->nodes[p - 1];
            id_hex(n->node_id.data, NODE_ID_SIZE, hex);
            snprintf(name, sizeof(name), "node %.12s %s%s", hex, n->address,
                     n->is_head ? " (head)" : "");
        } else {
            id_hex(t->extra[p - 1 - t->nnodes].b, NODE_ID_SIZE, hex);
            snprintf(name, sizeof(name), "node %.12s", hex);
        }
        meta(j, "process_name", (int)p, 0, false, name, 0);
        meta(j, "process_sort_index", (int)p, 0, false, NULL, (int)p);
    }
    free(used);
    for (size_t i = 0; i < t->nlanes; i++) {
        gcs_task_info x = {.has_node = t->lanes[i].has_node, .node = t->lanes[i].node};
        char name[64];
        if (t->lanes[i].pid)
            snprintf(name, sizeof(name), "worker %d", (int)t->lanes[i].pid);
        else
            snprintf(name, sizeof(name), "worker (pid unknown)");
        meta(j, "thread_name", node_pid(t, &x), t->lanes[i].pid, true, name, 0);
    }
}

static bool write_slice(void *arg, const gcs_task_info *x)
{
    tl *t = arg;
    if (!wanted(t, x))
        return true;
    gcs_json *j = t->j;
    bool ended = gcs_task_state_is_end(x->state) && x->end_us >= x->running_us;
    uint64_t end = ended ? x->end_us : (t->now_us > x->running_us ? t->now_us : x->running_us);
    char hex[ID_HEX_MAX];
    gcs_json_obj_begin(j);
    gcs_json_key(j, "ph");
    gcs_json_str(j, "X");
    gcs_json_key(j, "name");
    gcs_json_str(j, x->name[0] ? x->name : x->function[0] ? x->function : "task");
    gcs_json_key(j, "cat");
    gcs_json_str(j, "task");
    gcs_json_key(j, "pid");
    gcs_json_i64(j, node_pid(t, x));
    gcs_json_key(j, "tid");
    gcs_json_i64(j, x->worker_pid);
    gcs_json_key(j, "ts");
    gcs_json_u64(j, x->running_us);
    gcs_json_key(j, "dur");
    gcs_json_u64(j, end - x->running_us);
    gcs_json_key(j, "args");
    gcs_json_obj_begin(j);
    gcs_json_key(j, "task_id");
    gcs_json_str(j, id_hex(x->id.b, TASK_ID_SIZE, hex));
    gcs_json_key(j, "attempt");
    gcs_json_u64(j, x->attempt);
    gcs_json_key(j, "job_id");
    gcs_json_u64(j, x->job_id);
    gcs_json_key(j, "function");
    gcs_json_str(j, x->function);
    gcs_json_key(j, "state");
    gcs_json_str(j, gcs_task_state_name(x->state));
    if (x->submitted_us && x->submitted_us <= x->running_us) {
        gcs_json_key(j, "queued_us");
        gcs_json_u64(j, x->running_us - x->submitted_us);
    }
    if (x->error[0]) {
        gcs_json_key(j, "error");
        gcs_json_str(j, x->error);
    }
    gcs_json_obj_end(j);
    gcs_json_obj_end(j);
    return !j->oom;
}

char *gcs_timeline_render(const gcs_task_table *tasks, const gcs_node_table *nodes, uint32_t job_id,
                          uint64_t now_us, size_t *len)
{
    gcs_json j;
    gcs_json_init(&j);
    tl t = {.job_id = job_id, .now_us = now_us, .j = &j};
    size_t cap = nodes ? gcs_node_count(nodes) : 0;
    t.nodes = malloc((cap ? cap : 1) * sizeof(*t.nodes));
    if (t.nodes == NULL)
        return NULL;
    t.nnodes = cap ? gcs_node_list(nodes, t.nodes, cap) : 0;
    gcs_task_walk(tasks, false, find_lanes, &t);
    gcs_json_obj_begin(&j);
    gcs_json_key(&j, "displayTimeUnit");
    gcs_json_str(&j, "ms");
    gcs_json_key(&j, "traceEvents");
    gcs_json_arr_begin(&j);
    if (!t.oom)
        write_lanes(&t);
    if (!t.oom)
        gcs_task_walk(tasks, false, write_slice, &t);
    gcs_json_arr_end(&j);
    gcs_json_obj_end(&j);
    free(t.nodes);
    free(t.extra);
    free(t.lanes);
    if (t.oom) {
        gcs_json_free(&j);
        return NULL;
    }
    return gcs_json_take(&j, len);
}
