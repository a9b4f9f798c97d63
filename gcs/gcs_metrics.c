/*
 * gcs_metrics.c -- counters, histograms and the Prometheus text; see
 * gcs_metrics.h. Fixed arrays: recording is a few adds on the hot path of
 * every request, with no allocation.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_metrics.h"
#include "gcs_task_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double bucket_le[GCS_METRICS_BUCKETS - 1] = {0.0001, 0.0005, 0.001, 0.005, 0.01,
                                                          0.05,   0.1,    0.5,   1.0};

/* Task queue and run times: from a millisecond to five minutes. */
static const double task_le[GCS_METRICS_BUCKETS - 1] = {0.001, 0.01, 0.1,  0.5,  1.0,
                                                        5.0,   10.0, 60.0, 300.0};

typedef struct {
    uint64_t buckets[GCS_METRICS_BUCKETS]; /* non-cumulative; rendered cumulative */
    uint64_t count;
    uint64_t sum_us;
} histo;

#define TASK_END_STATES 3 /* FINISHED, FAILED, CANCELLED */

#define HTTP_CLASSES 6 /* 1xx..5xx, other */

struct gcs_metrics {
    uint64_t requests[GCS_METRICS_MAX_TYPE];
    histo request_latency;
    uint64_t storage_ops, storage_failures;
    histo storage_latency;
    uint64_t http[HTTP_CLASSES];
    uint64_t tasks_ended[TASK_END_STATES];
    histo task_queue, task_run;
};

gcs_metrics *gcs_metrics_new(void)
{
    return calloc(1, sizeof(gcs_metrics));
}

void gcs_metrics_free(gcs_metrics *m)
{
    free(m);
}

static void observe_le(histo *h, uint64_t us, const double *le)
{
    int b = 0;
    while (b < GCS_METRICS_BUCKETS - 1 && (double)us / 1e6 > le[b])
        b++;
    h->buckets[b]++;
    h->count++;
    h->sum_us += us;
}

static void observe(histo *h, uint64_t us)
{
    observe_le(h, us, bucket_le);
}

void gcs_metrics_request(gcs_metrics *m, uint16_t type, uint64_t us)
{
    if (m == NULL)
        return;
    m->requests[type < GCS_METRICS_MAX_TYPE ? type : 0]++;
    observe(&m->request_latency, us);
}

void gcs_metrics_storage(gcs_metrics *m, uint64_t us, bool failed)
{
    if (m == NULL)
        return;
    m->storage_ops++;
    if (failed)
        m->storage_failures++;
    observe(&m->storage_latency, us);
}

void gcs_metrics_http(gcs_metrics *m, int status)
{
    if (m == NULL)
        return;
    int c = status / 100;
    m->http[c >= 1 && c <= 5 ? c - 1 : 5]++;
}

static void histo_render_le(FILE *f, const char *name, const char *help, const histo *h,
                            const double *le)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < GCS_METRICS_BUCKETS; b++) {
        cum += h->buckets[b];
        if (b < GCS_METRICS_BUCKETS - 1)
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, le[b], (unsigned long long)cum);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, (double)h->sum_us / 1e6, name,
            (unsigned long long)h->count);
}

static void histo_render(FILE *f, const char *name, const char *help, const histo *h)
{
    histo_render_le(f, name, help, h, bucket_le);
}

void gcs_metrics_task_ended(gcs_metrics *m, int state, uint64_t queue_us, uint64_t run_us)
{
    int i = state - RPC__TASK_STATE__TASK_FINISHED;
    if (m == NULL || i < 0 || i >= TASK_END_STATES)
        return;
    m->tasks_ended[i]++;
    if (queue_us != UINT64_MAX)
        observe_le(&m->task_queue, queue_us, task_le);
    if (run_us != UINT64_MAX)
        observe_le(&m->task_run, run_us, task_le);
}

/* Actors in the GCS actor table, by state. */
static void actor_metrics(FILE *f, const gcs_state_src *src)
{
    size_t n = src->actors ? gcs_actor_count(src->actors) : 0, counts[4] = {0};
    const Rpc__ActorInfo **list = malloc((n ? n : 1) * sizeof(*list));
    if (list == NULL)
        return;
    n = n ? gcs_actor_list(src->actors, list, n) : 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned)list[i]->state < 4)
            counts[list[i]->state]++;
    free(list);
    fprintf(f, "# HELP rayc_actors Actors in the GCS actor table, by state.\n"
               "# TYPE rayc_actors gauge\n");
    for (int s = 0; s < 4; s++)
        fprintf(f, "rayc_actors{state=\"%s\"} %zu\n", gcs_actor_state_name(s), counts[s]);
}

/* Tasks: the table's records by state, drops, and what ended since start. */
static void task_metrics(FILE *f, const gcs_metrics *m, const gcs_state_src *src)
{
    size_t counts[GCS_TASK_STATES];
    gcs_task_state_counts(src->tasks, counts);
    fprintf(f, "# HELP rayc_tasks Task attempts in the GCS task table, by latest state.\n"
               "# TYPE rayc_tasks gauge\n");
    for (int s = 1; s < GCS_TASK_STATES; s++)
        fprintf(f, "rayc_tasks{state=\"%s\"} %zu\n", gcs_task_state_name(s), counts[s]);
    fprintf(f, "# HELP rayc_tasks_ended_total Task attempts that ended, by how.\n"
               "# TYPE rayc_tasks_ended_total counter\n");
    for (int i = 0; i < TASK_END_STATES; i++)
        fprintf(f, "rayc_tasks_ended_total{state=\"%s\"} %llu\n",
                gcs_task_state_name(RPC__TASK_STATE__TASK_FINISHED + i),
                (unsigned long long)m->tasks_ended[i]);
    histo_render_le(f, "rayc_task_queue_duration_seconds",
                    "Time from a task's submission to the start of its run.", &m->task_queue,
                    task_le);
    histo_render_le(f, "rayc_task_run_duration_seconds", "Time a task attempt ran.", &m->task_run,
                    task_le);
    fprintf(f,
            "# HELP rayc_task_events_dropped_total Task records dropped: evicted from the "
            "bounded GCS table, or lost in a full process buffer.\n"
            "# TYPE rayc_task_events_dropped_total counter\n"
            "rayc_task_events_dropped_total{reason=\"evicted\"} %llu\n"
            "rayc_task_events_dropped_total{reason=\"lost\"} %llu\n",
            (unsigned long long)gcs_task_evicted(src->tasks),
            (unsigned long long)gcs_task_lost(src->tasks));
    fprintf(f,
            "# HELP rayc_task_records_persisted_total Task records whose writes to the GCS "
            "storage completed since the GCS started.\n"
            "# TYPE rayc_task_records_persisted_total counter\n"
            "rayc_task_records_persisted_total %llu\n"
            "# HELP rayc_task_records_loaded Task records read back from the GCS storage at "
            "start.\n"
            "# TYPE rayc_task_records_loaded gauge\n"
            "rayc_task_records_loaded %llu\n",
            (unsigned long long)gcs_task_store_persisted(src->task_store),
            (unsigned long long)gcs_task_store_loaded(src->task_store));
}

/* Per alive node, from its heartbeats: resources, object store, queue. */
/* x's id in hex into id, when x is an ALIVE node with a well-formed id. */
static bool alive_node_hex(const Rpc__NodeInfo *x, char id[ID_HEX_MAX])
{
    if (x->state != RPC__NODE_STATE__NODE_ALIVE || x->node_id.len != NODE_ID_SIZE)
        return false;
    id_hex(x->node_id.data, NODE_ID_SIZE, id);
    return true;
}

static uint64_t store_objects_of(const Rpc__NodeInfo *x)
{
    return x->store_objects;
}

static uint64_t pending_tasks_of(const Rpc__NodeInfo *x)
{
    return x->pending_tasks;
}

/* One gauge per ALIVE node: get(its record). */
static void node_gauge(FILE *f, const Rpc__NodeInfo *const *nodes, size_t n, const char *name,
                       const char *help, uint64_t (*get)(const Rpc__NodeInfo *))
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (size_t i = 0; i < n; i++) {
        char id[ID_HEX_MAX];
        if (!alive_node_hex(nodes[i], id))
            continue;
        fprintf(f, "%s{node=\"%s\"} %llu\n", name, id, (unsigned long long)get(nodes[i]));
    }
}

static void node_metrics(FILE *f, const Rpc__NodeInfo *const *nodes, size_t n)
{
    fprintf(f, "# HELP rayc_node_resource A node's resources (CPU, GPU, memory, custom).\n"
               "# TYPE rayc_node_resource gauge\n");
    for (size_t i = 0; i < n; i++) {
        const Rpc__NodeInfo *x = nodes[i];
        char id[ID_HEX_MAX];
        if (!alive_node_hex(x, id))
            continue;
        for (size_t r = 0; r < x->n_resources_total; r++) {
            double avail = 0;
            for (size_t k = 0; k < x->n_resources_available; k++)
                if (strcmp(x->resources_available[k]->name, x->resources_total[r]->name) == 0)
                    avail = x->resources_available[k]->amount;
            const char *name = x->resources_total[r]->name;
            bool plain = name[0] != '\0' && strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
                                                         "-.:/") == strlen(name);
            if (!plain)
                continue; /* no escaping needed in a label value */
            fprintf(f, "rayc_node_resource{node=\"%s\",resource=\"%s\",kind=\"total\"} %g\n", id,
                    name, x->resources_total[r]->amount);
            fprintf(f, "rayc_node_resource{node=\"%s\",resource=\"%s\",kind=\"available\"} %g\n",
                    id, name, avail);
        }
    }
    fprintf(f, "# HELP rayc_node_object_store_bytes A node's object store: capacity, bytes "
               "used, bytes spilled to disk.\n# TYPE rayc_node_object_store_bytes gauge\n");
    for (size_t i = 0; i < n; i++) {
        const Rpc__NodeInfo *x = nodes[i];
        char id[ID_HEX_MAX];
        if (!alive_node_hex(x, id))
            continue;
        fprintf(f,
                "rayc_node_object_store_bytes{node=\"%s\",kind=\"capacity\"} %llu\n"
                "rayc_node_object_store_bytes{node=\"%s\",kind=\"used\"} %llu\n"
                "rayc_node_object_store_bytes{node=\"%s\",kind=\"spilled\"} %llu\n",
                id, (unsigned long long)x->store_capacity, id, (unsigned long long)x->store_used,
                id, (unsigned long long)x->spilled_bytes);
    }
    node_gauge(f, nodes, n, "rayc_node_object_store_objects", "Objects in a node's store.",
               store_objects_of);
    node_gauge(f, nodes, n, "rayc_node_pending_tasks", "Tasks queued at a node's scheduler.",
               pending_tasks_of);
}

static void gauges(FILE *f, const gcs_state_src *src)
{
    size_t alive = 0, dead = 0, timeouts = 0;
    uint64_t oom = 0;
    size_t n = src->nodes ? gcs_node_count(src->nodes) : 0;
    const Rpc__NodeInfo **nodes = malloc((n ? n : 1) * sizeof(*nodes));
    if (nodes) {
        n = n ? gcs_node_list(src->nodes, nodes, n) : 0;
        for (size_t i = 0; i < n; i++) {
            oom += nodes[i]->oom_kills;
            if (nodes[i]->state == RPC__NODE_STATE__NODE_ALIVE) {
                alive++;
            } else {
                dead++;
                if (nodes[i]->death_reason &&
                    strncmp(nodes[i]->death_reason, "no heartbeat", 12) == 0)
                    timeouts++;
            }
        }
        node_metrics(f, nodes, n);
        free(nodes);
    }
    fprintf(f,
            "# HELP rayc_gcs_nodes Nodes known to the GCS, by state.\n"
            "# TYPE rayc_gcs_nodes gauge\n"
            "rayc_gcs_nodes{state=\"ALIVE\"} %zu\nrayc_gcs_nodes{state=\"DEAD\"} %zu\n",
            alive, dead);
    fprintf(f,
            "# HELP rayc_gcs_heartbeat_timeouts Nodes marked DEAD because their heartbeats "
            "stopped.\n# TYPE rayc_gcs_heartbeat_timeouts gauge\n"
            "rayc_gcs_heartbeat_timeouts %zu\n",
            timeouts);
    fprintf(f,
            "# HELP rayc_memory_monitor_kills Workers the raylets' memory monitors killed.\n"
            "# TYPE rayc_memory_monitor_kills counter\n"
            "rayc_memory_monitor_kills %llu\n",
            (unsigned long long)oom);

    size_t js[3] = {0, 0, 0};
    n = src->jobs ? gcs_job_count(src->jobs) : 0;
    const Rpc__JobInfo **jobs = malloc((n ? n : 1) * sizeof(*jobs));
    if (jobs) {
        n = n ? gcs_job_list(src->jobs, jobs, n) : 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned)jobs[i]->state < 3)
                js[jobs[i]->state]++;
        free(jobs);
    }
    fprintf(f,
            "# HELP rayc_gcs_jobs Driver jobs in the GCS job table, by state.\n"
            "# TYPE rayc_gcs_jobs gauge\n"
            "rayc_gcs_jobs{state=\"RUNNING\"} %zu\nrayc_gcs_jobs{state=\"SUCCEEDED\"} %zu\n"
            "rayc_gcs_jobs{state=\"FAILED\"} %zu\n",
            js[0], js[1], js[2]);
    size_t sc[5];
    gcs_jobsub_counts(src->subs, sc);
    fprintf(f, "# HELP rayc_gcs_submitted_jobs Submitted jobs, by status.\n"
               "# TYPE rayc_gcs_submitted_jobs gauge\n");
    for (int s = 0; s < 5; s++)
        fprintf(f, "rayc_gcs_submitted_jobs{status=\"%s\"} %zu\n", gcs_jobsub_status_name(s),
                sc[s]);
    fprintf(f,
            "# HELP rayc_gcs_object_directory_objects Objects with at least one copy in a "
            "node's store.\n# TYPE rayc_gcs_object_directory_objects gauge\n"
            "rayc_gcs_object_directory_objects %zu\n",
            src->objdir ? gcs_objdir_size(src->objdir) : 0);
}

char *gcs_metrics_render(const gcs_metrics *m, const gcs_state_src *src, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL)
        return NULL;
    gauges(f, src);
    actor_metrics(f, src);
    task_metrics(f, m, src);
    fprintf(f, "# HELP rayc_gcs_requests_total Requests served by the GCS, by message type.\n"
               "# TYPE rayc_gcs_requests_total counter\n");
    for (int t = 0; t < GCS_METRICS_MAX_TYPE; t++)
        if (m->requests[t])
            fprintf(f, "rayc_gcs_requests_total{type=\"%s\"} %llu\n",
                    t ? msg_name((uint16_t)t) : "OTHER", (unsigned long long)m->requests[t]);
    histo_render(f, "rayc_gcs_request_duration_seconds",
                 "Time the GCS spent in a request's handler.", &m->request_latency);
    fprintf(f,
            "# HELP rayc_gcs_storage_operations_total Writes to the GCS storage (Redis).\n"
            "# TYPE rayc_gcs_storage_operations_total counter\n"
            "rayc_gcs_storage_operations_total %llu\n"
            "# HELP rayc_gcs_storage_failures_total Storage writes that failed.\n"
            "# TYPE rayc_gcs_storage_failures_total counter\n"
            "rayc_gcs_storage_failures_total %llu\n",
            (unsigned long long)m->storage_ops, (unsigned long long)m->storage_failures);
    histo_render(f, "rayc_gcs_storage_duration_seconds",
                 "Time from a request's storage writes being issued to their completion.",
                 &m->storage_latency);
    static const char *const classes[HTTP_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
    fprintf(f, "# HELP rayc_dashboard_http_requests_total HTTP requests, by status class.\n"
               "# TYPE rayc_dashboard_http_requests_total counter\n");
    for (int c = 0; c < HTTP_CLASSES; c++)
        fprintf(f, "rayc_dashboard_http_requests_total{code=\"%s\"} %llu\n", classes[c],
                (unsigned long long)m->http[c]);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}
