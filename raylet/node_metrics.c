/*
 * node_metrics.c -- a raylet's Prometheus text; see node_metrics.h.
 */
#include "node_metrics.h"

#include <inttypes.h>
#include <string.h>

/* HELP and TYPE lines of one metric. */
static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const node_metrics_src *s, const char *name, const char *type,
                const char *help, uint64_t v)
{
    head(f, name, type, help);
    fprintf(f, "%s{node=\"%s\"} %" PRIu64 "\n", name, s->node_hex, v);
}

/* name{node, label="k_i"} v_i for each of n (label, value) pairs. */
static void labelled(FILE *f, const node_metrics_src *s, const char *name, const char *type,
                     const char *help, const char *label, const char *const *keys,
                     const uint64_t *vals, int n)
{
    head(f, name, type, help);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s{node=\"%s\",%s=\"%s\"} %" PRIu64 "\n", name, s->node_hex, label, keys[i],
                vals[i]);
}

static void store_metrics(FILE *f, const node_metrics_src *s)
{
    const plasma_stats *p = &s->store;
    static const char *const bytes_k[] = {"capacity", "used", "reserved", "spilled", "peak_used"};
    uint64_t bytes_v[] = {p->capacity, p->used, p->reserved, p->spilled_bytes, p->peak_used};
    labelled(f, s, "rayc_raylet_object_store_bytes", "gauge",
             "The node's object store: arena capacity, bytes used, reserved by put slabs, "
             "spilled to disk, the high-water mark.",
             "kind", bytes_k, bytes_v, 5);
    static const char *const obj_k[] = {"all", "unsealed", "pinned", "spilled"};
    uint64_t obj_v[] = {p->objects, p->unsealed_objects, p->pinned_objects, p->spilled_objects};
    labelled(f, s, "rayc_raylet_object_store_objects", "gauge",
             "Objects in the node's store, by state (all counts every one).", "state", obj_k, obj_v,
             4);
    one(f, s, "rayc_raylet_object_store_evictions_total", "counter",
        "Objects evicted from the store since the raylet started.", p->evictions);
    one(f, s, "rayc_raylet_object_spills_total", "counter",
        "Spill operations (objects written to disk) since the raylet started.", p->spills);
    one(f, s, "rayc_raylet_object_restores_total", "counter",
        "Restore operations (spilled objects read back) since the raylet started.", p->restores);
    static const char *const wait_k[] = {"create", "get"};
    uint64_t wait_v[] = {p->pending_creates, p->pending_gets};
    labelled(f, s, "rayc_raylet_object_store_waiting", "gauge",
             "Store requests waiting: creates for space, gets and waits for objects.", "kind",
             wait_k, wait_v, 2);
}

static void transfer_metrics(FILE *f, const node_metrics_src *s)
{
    static const char *const dir_k[] = {"in", "out"};
    uint64_t dir_v[] = {s->bytes_in, s->bytes_out};
    labelled(f, s, "rayc_raylet_transfer_bytes_total", "counter",
             "Object bytes received from and sent to other nodes.", "direction", dir_k, dir_v, 2);
    static const char *const pull_k[] = {"done", "failed"};
    uint64_t pull_v[] = {s->pulls_done, s->pulls_failed};
    labelled(f, s, "rayc_raylet_pulls_total", "counter",
             "Objects pulled from other nodes, by outcome.", "result", pull_k, pull_v, 2);
}

static void worker_task_metrics(FILE *f, const node_metrics_src *s)
{
    static const char *const w_k[] = {"alive", "starting"};
    uint64_t w_v[] = {(uint64_t)s->workers_alive, (uint64_t)s->workers_starting};
    labelled(f, s, "rayc_raylet_workers", "gauge",
             "Worker processes of the node (alive counts starting ones too).", "state", w_k, w_v,
             2);
    one(f, s, "rayc_raylet_workers_started_total", "counter", "Worker processes started.",
        s->workers_started);
    one(f, s, "rayc_raylet_workers_died_total", "counter",
        "Worker processes that exited or were killed.", s->workers_died);
    static const char *const in_k[] = {"local", "forwarded"};
    uint64_t in_v[] = {s->tasks_submitted, s->tasks_forwarded};
    labelled(f, s, "rayc_raylet_tasks_received_total", "counter",
             "Task specs received: from local owners, from other raylets.", "source", in_k, in_v,
             2);
    static const char *const done_k[] = {"ok", "failed"};
    uint64_t done_v[] = {s->tasks_ok, s->tasks_failed};
    labelled(f, s, "rayc_raylet_tasks_done_total", "counter",
             "Tasks and actor creations the node's workers reported done, by status.", "status",
             done_k, done_v, 2);
    static const char *const q_k[] = {"pending", "infeasible"};
    uint64_t q_v[] = {s->pending, s->infeasible};
    labelled(f, s, "rayc_raylet_scheduler_tasks", "gauge",
             "Tasks in the node's scheduler queue: waiting, and fitting no node.", "state", q_k,
             q_v, 2);
    one(f, s, "rayc_raylet_oom_kills_total", "counter", "Workers the memory monitor killed.",
        s->oom_kills);
}

static void resource_metrics(FILE *f, const node_metrics_src *s)
{
    head(f, "rayc_raylet_resource", "gauge", "The node's resources, total and available.");
    const res_set *sets[] = {s->total, s->available};
    static const char *const kinds[] = {"total", "available"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; sets[k] && i < sets[k]->n; i++)
            if (strpbrk(sets[k]->name[i], "\"\\\n") == NULL) /* a label value as is */
                fprintf(f, "rayc_raylet_resource{node=\"%s\",resource=\"%s\",kind=\"%s\"} %g\n",
                        s->node_hex, sets[k]->name[i], kinds[k], sets[k]->amount[i]);
}

void node_metrics_write(FILE *f, const node_metrics_src *s)
{
    store_metrics(f, s);
    transfer_metrics(f, s);
    worker_task_metrics(f, s);
    resource_metrics(f, s);
}
