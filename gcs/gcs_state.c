/*
 * gcs_state.c -- the state API's views; see gcs_state.h.
 *
 * A view is built in three steps: the resource's builder turns table
 * records into rows of text values (one per column), filters drop rows,
 * then the rows are rendered as JSON or as an aligned table. Requests are
 * rare and tables small next to the loop's budget, so clarity wins over
 * speed here: each value is its own string.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gcs_json.h"
#include "gcs_state_internal.h"
#include "ids.h"
#include "rayc.h"

/* --------------------------------------------------------------- rows */

char **gcs_state__row_new(rowset *rs)
{
    if (rs->oom)
        return NULL;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 32;
        row *nr = realloc(rs->rows, cap * sizeof(*nr));
        if (nr == NULL) {
            rs->oom = true;
            return NULL;
        }
        rs->rows = nr;
        rs->cap = cap;
    }
    char **v = calloc((size_t)rs->ncols, sizeof(*v));
    if (v == NULL) {
        rs->oom = true;
        return NULL;
    }
    rs->rows[rs->n++] = (row){v, NULL, 0};
    return v;
}

static bool row_matches(const rowset *rs, const row *r, const gcs_state_query *q, const int *fc);

/* Streaming views: the row just built stays only if it passes the filters
 * and the limit has room; it is counted either way. */
void gcs_state__row_filter(rowset *rs)
{
    if (rs->n == 0)
        return;
    row *r = &rs->rows[rs->n - 1];
    rs->seen++;
    bool ok = row_matches(rs, r, rs->q, rs->fc);
    rs->matched += ok;
    if (ok && rs->n <= rs->limit)
        return;
    for (int c = 0; c < rs->ncols; c++)
        free(r->v[c]);
    free(r->v);
    rs->n--;
}

static void rows_free(rowset *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        for (int c = 0; c < rs->ncols; c++)
            free(rs->rows[i].v[c]);
        free(rs->rows[i].v);
    }
    free(rs->rows);
    rs->rows = NULL;
    rs->n = rs->cap = 0;
}

void gcs_state__set_str(rowset *rs, char **v, int c, const char *s)
{
    if (v == NULL || s == NULL)
        return;
    v[c] = strdup(s);
    if (v[c] == NULL)
        rs->oom = true;
}

void gcs_state__set_u64(rowset *rs, char **v, int c, uint64_t x)
{
    char b[24];
    snprintf(b, sizeof(b), "%llu", (unsigned long long)x);
    gcs_state__set_str(rs, v, c, b);
}

void gcs_state__set_i64(rowset *rs, char **v, int c, int64_t x)
{
    char b[24];
    snprintf(b, sizeof(b), "%lld", (long long)x);
    gcs_state__set_str(rs, v, c, b);
}

void gcs_state__set_dbl(rowset *rs, char **v, int c, double x)
{
    char b[32];
    snprintf(b, sizeof(b), "%g", x);
    gcs_state__set_str(rs, v, c, b);
}

void gcs_state__set_hex(rowset *rs, char **v, int c, const uint8_t *id, size_t len)
{
    char hex[2 * GCS_OBJDIR_OWNER_MAX + 1];
    if (len > GCS_OBJDIR_OWNER_MAX)
        len = GCS_OBJDIR_OWNER_MAX;
    id_hex(id, len, hex);
    gcs_state__set_str(rs, v, c, len ? hex : "");
}

/* Takes the writer's text. */
void gcs_state__set_json(rowset *rs, char **v, int c, gcs_json *j)
{
    char *s = gcs_json_take(j, NULL);
    if (s == NULL) {
        rs->oom = true;
        return;
    }
    if (v)
        v[c] = s;
    else
        free(s);
}

static int col_index(const rowset *rs, const char *name)
{
    for (int c = 0; c < rs->ncols; c++)
        if (strcmp(rs->cols[c].name, name) == 0)
            return c;
    return -1;
}

/* ------------------------------------------------------------ resources */

static double res_amount(Rpc__Resource **r, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (r[i]->name && strcmp(r[i]->name, name) == 0)
            return r[i]->amount;
    return 0;
}

static void res_json(rowset *rs, char **v, int c, Rpc__Resource **r, size_t n)
{
    gcs_json j;
    gcs_json_init(&j);
    gcs_json_obj_begin(&j);
    for (size_t i = 0; i < n; i++) {
        gcs_json_key(&j, r[i]->name ? r[i]->name : "");
        gcs_json_dbl(&j, r[i]->amount);
    }
    gcs_json_obj_end(&j);
    gcs_state__set_json(rs, v, c, &j);
}

enum {
    N_ID,
    N_STATE,
    N_ADDRESS,
    N_HEAD,
    N_CPU,
    N_CPU_AVAIL,
    N_GPU,
    N_GPU_AVAIL,
    N_MEM,
    N_STORE_CAP,
    N_STORE_USED,
    N_OBJECTS,
    N_SPILLED,
    N_PENDING,
    N_HOST,
    N_RES,
    N_RES_AVAIL,
    N_START,
    N_END,
    N_HEARTBEAT,
    N_DEATH,
    N_SESSION,
    N_COLS
};
static const col node_cols[N_COLS] = {
    {"node_id", T_STR, true},
    {"state", T_STR, true},
    {"address", T_STR, true},
    {"is_head", T_BOOL, true},
    {"cpu_total", T_NUM, true},
    {"cpu_available", T_NUM, true},
    {"gpu_total", T_NUM, true},
    {"gpu_available", T_NUM, true},
    {"memory_total", T_NUM, false},
    {"store_capacity", T_NUM, true},
    {"store_used", T_NUM, true},
    {"store_objects", T_NUM, true},
    {"spilled_bytes", T_NUM, false},
    {"pending_tasks", T_NUM, true},
    {"hostname", T_STR, false},
    {"resources_total", T_JSON, false},
    {"resources_available", T_JSON, false},
    {"start_time_ms", T_NUM, false},
    {"end_time_ms", T_NUM, false},
    {"last_heartbeat_ms", T_NUM, false},
    {"death_reason", T_STR, false},
    {"session_dir", T_STR, false},
};

static void build_nodes(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    (void)q;
    size_t cap = src->nodes ? gcs_node_count(src->nodes) : 0;
    const Rpc__NodeInfo **list = malloc((cap ? cap : 1) * sizeof(*list));
    if (list == NULL) {
        rs->oom = true;
        return;
    }
    size_t n = cap ? gcs_node_list(src->nodes, list, cap) : 0;
    for (size_t i = 0; i < n; i++) {
        const Rpc__NodeInfo *x = list[i];
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        gcs_state__set_hex(rs, v, N_ID, x->node_id.data, x->node_id.len);
        gcs_state__set_str(rs, v, N_STATE,
                           x->state == RPC__NODE_STATE__NODE_ALIVE ? "ALIVE" : "DEAD");
        gcs_state__set_str(rs, v, N_ADDRESS, x->address);
        gcs_state__set_str(rs, v, N_HEAD, x->is_head ? "true" : "false");
        gcs_state__set_dbl(rs, v, N_CPU,
                           res_amount(x->resources_total, x->n_resources_total, "CPU"));
        gcs_state__set_dbl(rs, v, N_CPU_AVAIL,
                           res_amount(x->resources_available, x->n_resources_available, "CPU"));
        gcs_state__set_dbl(rs, v, N_GPU,
                           res_amount(x->resources_total, x->n_resources_total, "GPU"));
        gcs_state__set_dbl(rs, v, N_GPU_AVAIL,
                           res_amount(x->resources_available, x->n_resources_available, "GPU"));
        gcs_state__set_dbl(rs, v, N_MEM,
                           res_amount(x->resources_total, x->n_resources_total, "memory"));
        gcs_state__set_u64(rs, v, N_STORE_CAP, x->store_capacity);
        gcs_state__set_u64(rs, v, N_STORE_USED, x->store_used);
        gcs_state__set_u64(rs, v, N_OBJECTS, x->store_objects);
        gcs_state__set_u64(rs, v, N_SPILLED, x->spilled_bytes);
        gcs_state__set_u64(rs, v, N_PENDING, x->pending_tasks);
        gcs_state__set_str(rs, v, N_HOST, x->hostname);
        res_json(rs, v, N_RES, x->resources_total, x->n_resources_total);
        res_json(rs, v, N_RES_AVAIL, x->resources_available, x->n_resources_available);
        gcs_state__set_u64(rs, v, N_START, x->start_time_ms);
        gcs_state__set_u64(rs, v, N_END, x->end_time_ms);
        gcs_state__set_u64(rs, v, N_HEARTBEAT, x->last_heartbeat_ms);
        gcs_state__set_str(rs, v, N_DEATH, x->death_reason);
        gcs_state__set_str(rs, v, N_SESSION, x->session_dir);
    }
    free(list);
}

enum { J_ID, J_TYPE, J_STATE, J_PID, J_START, J_END, J_ENTRY, J_NS, J_NODE, J_MSG, J_COLS };
static const col job_cols[J_COLS] = {
    {"job_id", T_STR, true},     {"type", T_STR, true},          {"status", T_STR, true},
    {"driver_pid", T_NUM, true}, {"start_time_ms", T_NUM, true}, {"end_time_ms", T_NUM, false},
    {"entrypoint", T_STR, true}, {"namespace", T_STR, false},    {"node_id", T_STR, false},
    {"message", T_STR, false},
};

static const char *job_state_name(int s)
{
    switch (s) {
    case RPC__JOB_STATE__JOB_RUNNING:
        return "RUNNING";
    case RPC__JOB_STATE__JOB_FINISHED:
        return "SUCCEEDED";
    case RPC__JOB_STATE__JOB_FAILED:
        return "FAILED";
    }
    return "UNKNOWN";
}

/* Driver jobs (the GCS job table), then submissions. Ray's `list jobs`
 * shows both kinds: a submission's entrypoint usually starts a driver. */
static void build_jobs(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    (void)q;
    size_t cap = src->jobs ? gcs_job_count(src->jobs) : 0;
    const Rpc__JobInfo **list = malloc((cap ? cap : 1) * sizeof(*list));
    if (list == NULL) {
        rs->oom = true;
        return;
    }
    size_t n = cap ? gcs_job_list(src->jobs, list, cap) : 0;
    for (size_t i = 0; i < n; i++) {
        const Rpc__JobInfo *x = list[i];
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        gcs_state__set_u64(rs, v, J_ID, x->job_id);
        gcs_state__set_str(rs, v, J_TYPE, "DRIVER");
        gcs_state__set_str(rs, v, J_STATE, job_state_name(x->state));
        gcs_state__set_i64(rs, v, J_PID, x->driver_pid);
        gcs_state__set_u64(rs, v, J_START, x->start_time_ms);
        gcs_state__set_u64(rs, v, J_END, x->end_time_ms);
        gcs_state__set_str(rs, v, J_ENTRY, x->entrypoint);
        gcs_state__set_str(rs, v, J_NS, x->namespace_);
        gcs_state__set_hex(rs, v, J_NODE, x->node_id.data, x->node_id.len);
    }
    free(list);
    cap = src->subs ? gcs_jobsub_count(src->subs) : 0;
    const gcs_jobsub_info **subs = malloc((cap ? cap : 1) * sizeof(*subs));
    if (subs == NULL) {
        rs->oom = true;
        return;
    }
    n = cap ? gcs_jobsub_list(src->subs, subs, cap) : 0;
    for (size_t i = 0; i < n; i++) {
        const gcs_jobsub_info *x = subs[i];
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        gcs_state__set_str(rs, v, J_ID, x->id);
        gcs_state__set_str(rs, v, J_TYPE, "SUBMISSION");
        gcs_state__set_str(rs, v, J_STATE, gcs_jobsub_status_name(x->status));
        gcs_state__set_i64(rs, v, J_PID, x->pid);
        gcs_state__set_u64(rs, v, J_START, x->start_time_ms);
        gcs_state__set_u64(rs, v, J_END, x->end_time_ms);
        gcs_state__set_str(rs, v, J_ENTRY, x->entrypoint);
        gcs_state__set_str(rs, v, J_MSG, x->message);
    }
    free(subs);
}

enum { O_ID, O_SIZE, O_NODE, O_OWNER, O_COPIES, O_COLS };
static const col object_cols[O_COLS] = {
    {"object_id", T_STR, true}, {"size", T_NUM, true},   {"node_id", T_STR, true},
    {"owner_id", T_STR, true},  {"copies", T_NUM, true},
};

typedef struct {
    const gcs_objdir *d;
    rowset *rs;
} walk_arg;

static void on_location(void *arg, const Rpc__ObjectLocation *loc)
{
    walk_arg *w = arg;
    char **v = gcs_state__row_new(w->rs);
    if (v == NULL)
        return;
    gcs_state__set_hex(w->rs, v, O_ID, loc->object_id.data, loc->object_id.len);
    gcs_state__set_u64(w->rs, v, O_SIZE, loc->size);
    gcs_state__set_hex(w->rs, v, O_NODE, loc->node_id.data, loc->node_id.len);
    gcs_state__set_hex(w->rs, v, O_OWNER, loc->owner_id.data, loc->owner_id.len);
    gcs_state__set_u64(w->rs, v, O_COPIES,
                       gcs_objdir_count(w->d, loc->object_id.data, loc->object_id.len));
    w->rs->rows[w->rs->n - 1].num = loc->size;
}

/* One row per copy (object, node), biggest first. */
static void build_objects(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    (void)q;
    walk_arg w = {src->objdir, rs};
    if (src->objdir)
        gcs_objdir_walk(src->objdir, on_location, &w);
    for (size_t i = 0; i < rs->n; i++)
        rs->rows[i].key = rs->rows[i].v[O_ID];
}

static const col pg_cols[] = {
    {"placement_group_id", T_STR, true}, {"name", T_STR, true},      {"state", T_STR, true},
    {"strategy", T_STR, true},           {"bundles", T_JSON, false},
};

static void build_pgs(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    static const char *const states[] = {"PENDING", "CREATED", "REMOVED", "RESCHEDULING"};
    static const char *const strategies[] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};
    (void)q;
    for (size_t i = 0; i < src->npgs; i++) {
        const Rpc__PlacementGroupInfo *g = &src->pgs[i];
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        gcs_state__set_hex(rs, v, 0, g->pg_id.data, g->pg_id.len);
        gcs_state__set_str(rs, v, 1, g->name);
        gcs_state__set_str(rs, v, 2, (unsigned)g->state < 4 ? states[g->state] : "UNKNOWN");
        gcs_state__set_str(rs, v, 3,
                           (unsigned)g->strategy < 4 ? strategies[g->strategy] : "UNKNOWN");
        gcs_json j;
        gcs_json_init(&j);
        gcs_json_arr_begin(&j);
        for (size_t b = 0; b < g->n_bundles; b++) {
            const Rpc__Bundle *x = g->bundles[b];
            char hex[ID_HEX_MAX] = "";
            if (x->node_id.len == NODE_ID_SIZE)
                id_hex(x->node_id.data, NODE_ID_SIZE, hex);
            gcs_json_obj_begin(&j);
            gcs_json_key(&j, "index");
            gcs_json_u64(&j, x->index);
            gcs_json_key(&j, "node_id");
            gcs_json_str(&j, hex);
            gcs_json_key(&j, "resources");
            gcs_json_obj_begin(&j);
            for (size_t k = 0; k < x->n_resources; k++) {
                gcs_json_key(&j, x->resources[k]->name);
                gcs_json_dbl(&j, x->resources[k]->amount);
            }
            gcs_json_obj_end(&j);
            gcs_json_obj_end(&j);
        }
        gcs_json_arr_end(&j);
        gcs_state__set_json(rs, v, 4, &j);
    }
    for (size_t i = 0; i < rs->n; i++)
        rs->rows[i].key = rs->rows[i].v[0];
}

enum { S_NODE, S_OBJECTS, S_BYTES, S_COLS };
static const col summary_cols[S_COLS] = {
    {"node_id", T_STR, true}, {"objects", T_NUM, true}, {"bytes", T_NUM, true}};

/* Per node: copies and bytes; then a row "TOTAL" of distinct objects. */
static void build_summary(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    rowset copies = {object_cols, O_COLS, NULL, 0, 0, false};
    build_objects(src, &copies, q);
    if (copies.oom)
        rs->oom = true;
    uint64_t total_bytes = 0, total = 0;
    for (size_t i = 0; i < copies.n && !rs->oom; i++) {
        row *c = &copies.rows[i];
        size_t r;
        for (r = 0; r < rs->n; r++)
            if (strcmp(rs->rows[r].v[S_NODE], c->v[O_NODE]) == 0)
                break;
        if (r == rs->n) {
            char **v = gcs_state__row_new(rs);
            if (v == NULL)
                break;
            gcs_state__set_str(rs, v, S_NODE, c->v[O_NODE]);
            rs->rows[r].key = v[S_NODE];
        }
        rs->rows[r].num += c->num;
        uint64_t objs =
            strtoull(rs->rows[r].v[S_OBJECTS] ? rs->rows[r].v[S_OBJECTS] : "0", NULL, 10);
        free(rs->rows[r].v[S_OBJECTS]);
        free(rs->rows[r].v[S_BYTES]);
        rs->rows[r].v[S_OBJECTS] = rs->rows[r].v[S_BYTES] = NULL;
        gcs_state__set_u64(rs, rs->rows[r].v, S_OBJECTS, objs + 1);
        gcs_state__set_u64(rs, rs->rows[r].v, S_BYTES, rs->rows[r].num);
        /* Count an object once: at its first copy in walk order. */
        bool first = true;
        for (size_t k = 0; k < i; k++)
            if (strcmp(copies.rows[k].v[O_ID], c->v[O_ID]) == 0) {
                first = false;
                break;
            }
        if (first) {
            total++;
            total_bytes += c->num;
        }
    }
    rows_free(&copies);
    char **v = gcs_state__row_new(rs);
    if (v) {
        gcs_state__set_str(rs, v, S_NODE, "TOTAL");
        gcs_state__set_u64(rs, v, S_OBJECTS, total);
        gcs_state__set_u64(rs, v, S_BYTES, total_bytes);
        rs->rows[rs->n - 1].key = "~"; /* sorts after every hex id */
        rs->rows[rs->n - 1].num = 0;
    }
}

enum { M_GROUP, M_ID, M_SIZE, M_NODE, M_OWNER, M_COLS };
static const col memory_cols[M_COLS] = {{"group", T_STR, true},
                                        {"object_id", T_STR, true},
                                        {"size", T_NUM, true},
                                        {"node_id", T_STR, true},
                                        {"owner_id", T_STR, true}};

static bool by_owner(const gcs_state_query *q)
{
    return q->group_by && strcmp(q->group_by, "owner") == 0;
}

static void build_memory(const gcs_state_src *src, rowset *rs, const gcs_state_query *q)
{
    rowset copies = {object_cols, O_COLS, NULL, 0, 0, false};
    build_objects(src, &copies, q);
    if (copies.oom)
        rs->oom = true;
    for (size_t i = 0; i < copies.n && !rs->oom; i++) {
        row *c = &copies.rows[i];
        char **v = gcs_state__row_new(rs);
        if (v == NULL)
            break;
        gcs_state__set_str(rs, v, M_GROUP, by_owner(q) ? c->v[O_OWNER] : c->v[O_NODE]);
        gcs_state__set_str(rs, v, M_ID, c->v[O_ID]);
        gcs_state__set_str(rs, v, M_SIZE, c->v[O_SIZE]);
        gcs_state__set_str(rs, v, M_NODE, c->v[O_NODE]);
        gcs_state__set_str(rs, v, M_OWNER, c->v[O_OWNER]);
        rs->rows[rs->n - 1].key = v[M_GROUP];
        rs->rows[rs->n - 1].num = c->num;
    }
    rows_free(&copies);
}

/* ------------------------------------------------------------ rendering */

/* By key ascending (NULL keys keep build order first), then num descending. */
static int row_cmp(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->key && y->key) {
        int c = strcmp(x->key, y->key);
        if (c)
            return c;
    }
    if (x->num != y->num)
        return x->num > y->num ? -1 : 1;
    return 0;
}

/* Size descending, then key (object id) ascending. */
static int size_cmp(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->num != y->num)
        return x->num > y->num ? -1 : 1;
    return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static bool row_matches(const rowset *rs, const row *r, const gcs_state_query *q, const int *fc)
{
    for (int f = 0; f < q->nfilters; f++) {
        const char *v = r->v[fc[f]] ? r->v[fc[f]] : "";
        bool eq = strcasecmp(v, q->filters[f].value) == 0;
        if (eq == q->filters[f].negate)
            return false;
    }
    (void)rs;
    return true;
}

static void render_json(gcs_json *j, const rowset *rs, row *const *keep, size_t nkeep, size_t total,
                        size_t filtered, const gcs_task_table *dropped)
{
    gcs_json_obj_begin(j);
    gcs_json_key(j, "total");
    gcs_json_u64(j, total);
    gcs_json_key(j, "num_after_filter");
    gcs_json_u64(j, filtered);
    gcs_json_key(j, "result");
    gcs_json_arr_begin(j);
    for (size_t i = 0; i < nkeep; i++) {
        gcs_json_obj_begin(j);
        for (int c = 0; c < rs->ncols; c++) {
            const char *v = keep[i]->v[c];
            gcs_json_key(j, rs->cols[c].name);
            if (v == NULL)
                gcs_json_null(j);
            else if (rs->cols[c].type == T_STR)
                gcs_json_str(j, v);
            else
                gcs_json_raw(j, v);
        }
        gcs_json_obj_end(j);
    }
    gcs_json_arr_end(j);
    if (dropped)
        gcs_state__render_dropped(j, dropped, false);
    gcs_json_obj_end(j);
}

/* Table cells: control characters shown as '?', so a value cannot move the
 * terminal's cursor; empty values as "-". */
static size_t cell_width(const char *v)
{
    return v && *v ? strlen(v) : 1;
}

static void put_cell(gcs_json *j, const char *v, size_t width, bool last)
{
    const char *s = v && *v ? v : "-";
    size_t n = strlen(s);
    char *buf = malloc(n + width + 3);
    if (buf == NULL) {
        j->oom = true;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        buf[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (!last)
        while (k < width + 2)
            buf[k++] = ' ';
    buf[k] = '\0';
    gcs_json_raw(j, buf); /* the table is text: raw append, no separators */
    free(buf);
}

static void render_table(gcs_json *j, const rowset *rs, row *const *keep, size_t nkeep,
                         size_t filtered, bool detail, const gcs_task_table *dropped)
{
    size_t width[32] = {0};
    int shown[32], ns = 0;
    for (int c = 0; c < rs->ncols && ns < 32; c++)
        if (detail || rs->cols[c].table)
            shown[ns++] = c;
    for (int s = 0; s < ns; s++) {
        width[s] = strlen(rs->cols[shown[s]].name);
        for (size_t i = 0; i < nkeep; i++) {
            size_t w = cell_width(keep[i]->v[shown[s]]);
            if (w > width[s])
                width[s] = w;
        }
    }
    for (int s = 0; s < ns; s++) {
        char up[64];
        snprintf(up, sizeof(up), "%s", rs->cols[shown[s]].name);
        for (char *p = up; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        put_cell(j, up, width[s], s == ns - 1);
    }
    gcs_json_raw(j, "\n");
    for (size_t i = 0; i < nkeep; i++) {
        for (int s = 0; s < ns; s++)
            put_cell(j, keep[i]->v[shown[s]], width[s], s == ns - 1);
        gcs_json_raw(j, "\n");
    }
    if (nkeep < filtered) {
        char b[96];
        snprintf(b, sizeof(b), "(%zu of %zu shown; raise --limit to see more)\n", nkeep, filtered);
        gcs_json_raw(j, b);
    }
    if (dropped)
        gcs_state__render_dropped(j, dropped, true);
}

int gcs_state_add_filter(gcs_state_query *q, char *spec)
{
    if (q->nfilters >= GCS_STATE_MAX_FILTERS)
        return RAYC_EINVAL;
    char *eq = strchr(spec, '=');
    if (eq == NULL || eq == spec)
        return RAYC_EINVAL;
    bool negate = eq[-1] == '!';
    if (negate && eq - 1 == spec)
        return RAYC_EINVAL;
    *(negate ? eq - 1 : eq) = '\0';
    q->filters[q->nfilters++] = (gcs_state_filter){spec, eq + 1, negate};
    return 0;
}

/* Every view: its name in the URL, its columns and how its rows are built. */
typedef struct {
    const char *name;
    const col *cols;
    int ncols;
    void (*build)(const gcs_state_src *src, rowset *rs, const gcs_state_query *q);
    bool streaming;  /* the builder filters and limits (row_filter) */
    bool task_drops; /* show what was dropped of the task records */
} view;

#define NCOLS(cols) ((int)(sizeof(cols) / sizeof((cols)[0])))
static const view views[] = {
    {"nodes", node_cols, N_COLS, build_nodes},
    {"jobs", job_cols, J_COLS, build_jobs},
    {"objects", object_cols, O_COLS, build_objects},
    {"actors", gcs_state__actor_cols, GCS_STATE__ACTOR_COLS, gcs_state__build_actors},
    {"placement_groups", pg_cols, NCOLS(pg_cols), build_pgs},
    {"summary/objects", summary_cols, S_COLS, build_summary},
    {"memory", memory_cols, M_COLS, build_memory},
    {"tasks", gcs_state__task_cols, GCS_STATE__TASK_COLS, gcs_state__build_tasks, true, true},
    {"summary/tasks", gcs_state__task_summary_cols, GCS_STATE__TASK_SUMMARY_COLS,
     gcs_state__build_task_summary, false, true},
    {"summary/actors", gcs_state__actor_summary_cols, GCS_STATE__ACTOR_SUMMARY_COLS,
     gcs_state__build_actor_summary},
};

int gcs_state_render(const gcs_state_src *src, const char *resource, const gcs_state_query *q,
                     char **body, size_t *len, char *err, size_t errlen)
{
    rowset rs = {0};
    *body = NULL;
    *len = 0;
    const view *vw = NULL;
    for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++)
        if (strcmp(resource, views[i].name) == 0)
            vw = &views[i];
    if (vw == NULL) {
        snprintf(err, errlen, "unknown resource '%s'", resource);
        return RAYC_ENOTFOUND;
    }
    rs.cols = vw->cols, rs.ncols = vw->ncols;
    if (vw->build == build_memory && q->group_by && strcmp(q->group_by, "node") != 0 &&
        strcmp(q->group_by, "owner") != 0) {
        snprintf(err, errlen, "bad group_by '%s' (node or owner)", q->group_by);
        return RAYC_EINVAL;
    }
    int fc[GCS_STATE_MAX_FILTERS];
    for (int f = 0; f < q->nfilters; f++) {
        fc[f] = col_index(&rs, q->filters[f].key);
        if (fc[f] < 0) {
            snprintf(err, errlen, "unknown filter key '%s' for %s", q->filters[f].key, resource);
            return RAYC_EINVAL;
        }
    }
    size_t limit = q->limit ? q->limit : GCS_STATE_DEFAULT_LIMIT;
    if (vw->streaming) {
        rs.q = q;
        rs.fc = fc;
        rs.limit = limit;
    }
    vw->build(src, &rs, q);
    /* Objects: biggest first; memory: by group, biggest first; summary: by
     * node. Nodes and jobs keep their tables' order (no sort key). */
    if (rs.n > 1 && strcmp(resource, "objects") == 0) /* qsort's base must not be NULL */
        qsort(rs.rows, rs.n, sizeof(row), size_cmp);
    else if (rs.n > 1 && rs.rows[0].key)
        qsort(rs.rows, rs.n, sizeof(row), row_cmp);
    row **keep = malloc((rs.n ? rs.n : 1) * sizeof(*keep));
    if (keep == NULL || rs.oom) {
        free(keep);
        rows_free(&rs);
        return RAYC_ENOMEM;
    }
    size_t filtered = 0, nkeep = 0, total = rs.n;
    for (size_t i = 0; i < rs.n; i++) {
        if (!vw->streaming && !row_matches(&rs, &rs.rows[i], q, fc))
            continue;
        filtered++;
        if (nkeep < limit)
            keep[nkeep++] = &rs.rows[i];
    }
    if (vw->streaming) {
        total = rs.seen;
        filtered = rs.matched;
    }
    const gcs_task_table *dropped = vw->task_drops ? src->tasks : NULL;
    gcs_json j;
    gcs_json_init(&j);
    if (q->format == GCS_STATE_TABLE)
        render_table(&j, &rs, keep, nkeep, filtered, q->detail, dropped);
    else
        render_json(&j, &rs, keep, nkeep, total, filtered, dropped);
    free(keep);
    rows_free(&rs);
    *body = gcs_json_take(&j, len);
    return *body ? 0 : RAYC_ENOMEM;
}
