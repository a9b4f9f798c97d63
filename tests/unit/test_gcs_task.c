/*
 * test_gcs_task.c -- the GCS's task table (gcs/gcs_task.h) over hand-built
 * TaskEventBatch columns: merging the owner's and the executor's records,
 * the per-job bound with its eviction count, lost events, a job's end;
 * then the views over it (tasks, summary/tasks: gcs_state.h) and the
 * Chrome trace (gcs_timeline.h).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../gcs/gcs_state.h"
#include "../../gcs/gcs_task.h"
#include "../../gcs/gcs_timeline.h"
#include "rayc.h"

#define MAXN 64

/* A batch being built: one attempt per add(). */
typedef struct {
    Rpc__TaskEventBatch b;
    uint8_t ids[MAXN * TASK_ID_SIZE];
    uint32_t attempts[MAXN], states[MAXN], fn[MAXN], name[MAXN], node[MAXN], err[MAXN], flags[MAXN];
    uint64_t ts[5][MAXN];
    int32_t pids[MAXN], codes[MAXN];
    char *strings[8];
    uint8_t nodes[2 * NODE_ID_SIZE];
    size_t n;
} batch;

static void batch_init(batch *x)
{
    memset(x, 0, sizeof(*x));
    rpc__task_event_batch__init(&x->b);
    x->strings[0] = "inc";
    x->strings[1] = "nap";
    x->strings[2] = "boom";
    x->strings[3] = "named";
    x->b.n_strings = 4;
    x->b.strings = x->strings;
    memset(x->nodes, 0x11, NODE_ID_SIZE);
    memset(x->nodes + NODE_ID_SIZE, 0x22, NODE_ID_SIZE);
    x->b.node_ids = (ProtobufCBinaryData){sizeof(x->nodes), x->nodes};
}

/* fn, name, err: dictionary refs (1-based, 0 none); node: 1 or 2, 0 none;
 * ts: submitted, running, end (0: unset). */
static void add(batch *x, const task_id_t *id, uint32_t attempt, int state, uint32_t fn,
                uint32_t name, uint32_t node, int32_t pid, uint64_t sub, uint64_t run, uint64_t end,
                int code, uint32_t err, bool retried)
{
    size_t i = x->n++;
    memcpy(x->ids + i * TASK_ID_SIZE, id->b, TASK_ID_SIZE);
    x->attempts[i] = attempt;
    x->states[i] = (uint32_t)state;
    x->fn[i] = fn;
    x->name[i] = name;
    x->node[i] = node;
    x->pids[i] = pid;
    x->ts[1][i] = sub;
    x->ts[3][i] = run;
    x->ts[4][i] = end;
    x->codes[i] = code;
    x->err[i] = err;
    x->flags[i] = retried ? RPC__TASK_EVENT_FLAG__TASK_EVENT_RETRIED : 0;
}

static const Rpc__TaskEventBatch *done(batch *x)
{
    Rpc__TaskEventBatch *b = &x->b;
    size_t n = x->n;
    b->task_ids = (ProtobufCBinaryData){n * TASK_ID_SIZE, x->ids};
#define COL(f, a)                                                                                  \
    b->n_##f = n;                                                                                  \
    b->f = (a)
    COL(attempts, x->attempts);
    COL(states, x->states);
    COL(pending_args_us, x->ts[0]);
    COL(submitted_us, x->ts[1]);
    COL(scheduled_us, x->ts[2]);
    COL(running_us, x->ts[3]);
    COL(end_us, x->ts[4]);
    COL(function_refs, x->fn);
    COL(name_refs, x->name);
    COL(node_refs, x->node);
    COL(worker_pids, x->pids);
    COL(error_codes, x->codes);
    COL(error_refs, x->err);
    COL(flags, x->flags);
#undef COL
    return b;
}

static char *render(const gcs_task_table *t, const char *res, gcs_state_query *q)
{
    gcs_state_src src = {.tasks = t};
    char *body, err[256];
    size_t len;
    int rc = gcs_state_render(&src, res, q, &body, &len, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", res, err);
    return body;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

#define T0 1700000000000000ull

Test(gcs_task, owner_and_executor_records_of_an_attempt_merge)
{
    gcs_task_table *t = gcs_task_table_new(0, 0);
    task_id_t a = task_id_random(job_id_from_int(1)), b = task_id_random(job_id_from_int(1));
    batch x;
    /* The executor's RUNNING (no function) comes first, then the owner's. */
    batch_init(&x);
    add(&x, &a, 0, RPC__TASK_STATE__TASK_RUNNING, 0, 0, 1, 77, 0, T0 + 10, 0, 0, 0, false);
    gcs_task_add_batch(t, done(&x), NULL);
    batch_init(&x);
    add(&x, &a, 0, RPC__TASK_STATE__TASK_FINISHED, 1, 0, 1, 77, T0, T0 + 12, T0 + 50, 0, 0, false);
    /* b failed, was retried, and its second attempt ran. */
    add(&x, &b, 0, RPC__TASK_STATE__TASK_FAILED, 3, 4, 2, 78, T0, T0 + 1, T0 + 2, RAYC_ETASK, 3,
        true);
    add(&x, &b, 1, RPC__TASK_STATE__TASK_FINISHED, 3, 4, 2, 79, T0 + 3, T0 + 4, T0 + 5, 0, 0,
        false);
    gcs_task_add_batch(t, done(&x), NULL);
    cr_assert_eq(gcs_task_count(t), 3);
    size_t counts[GCS_TASK_STATES];
    gcs_task_state_counts(t, counts);
    cr_assert_eq(counts[RPC__TASK_STATE__TASK_FINISHED], 2);
    cr_assert_eq(counts[RPC__TASK_STATE__TASK_FAILED], 1);
    cr_assert_eq(counts[RPC__TASK_STATE__TASK_RUNNING], 0);

    gcs_state_query q = {0};
    char f1[] = "func_or_class_name=inc";
    gcs_state_add_filter(&q, f1);
    char *s = render(t, "tasks", &q);
    cr_assert(strstr(s, "\"state\":\"FINISHED\"") && strstr(s, "\"worker_pid\":77") &&
                  strstr(s, "\"start_time_ms\":1700000000000,") && strstr(s, "11111111"),
              "%s", s);
    cr_assert(strstr(s, "\"duration_ms\":0.04"), "the first RUNNING time wins: %s", s);
    free(s);

    gcs_state_query q2 = {0};
    char f2[] = "name=named", f3[] = "is_retried=true";
    gcs_state_add_filter(&q2, f2);
    gcs_state_add_filter(&q2, f3);
    s = render(t, "tasks", &q2);
    cr_assert_eq(count(s, "\"task_id\""), 1, "%s", s);
    cr_assert(strstr(s, "\"error_type\":\"RAYC_ETASK\"") &&
                  strstr(s, "\"error_message\":\"boom\"") && strstr(s, "\"attempt_number\":0"),
              "%s", s);
    free(s);

    gcs_state_query sq = {0};
    s = render(t, "summary/tasks", &sq);
    cr_assert(strstr(s, "\"func_or_class_name\":\"inc\",\"total\":1,") &&
                  strstr(s, "\"func_or_class_name\":\"boom\",\"total\":2,"),
              "%s", s);
    free(s);

    /* The trace: a lane per (node, worker), a slice per run. */
    size_t len;
    char *tr = gcs_timeline_render(t, NULL, 0, T0 + 100, &len);
    cr_assert_not_null(tr);
    cr_assert(strncmp(tr, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", 39) == 0, "%s", tr);
    cr_assert_eq(count(tr, "\"ph\":\"X\""), 3, "%s", tr);
    cr_assert_eq(count(tr, "\"name\":\"thread_name\""), 3, "%s", tr);
    cr_assert_eq(count(tr, "\"name\":\"process_name\""), 2, "%s", tr);
    cr_assert(strstr(tr, "\"ts\":1700000000000010,\"dur\":40"), "%s", tr);
    free(tr);
    tr = gcs_timeline_render(t, NULL, 2, T0 + 100, &len);
    cr_assert_eq(count(tr, "\"ph\":\"X\""), 0, "%s", tr);
    free(tr);
    gcs_task_table_free(t);
}

Test(gcs_task, per_job_bound_evicts_the_oldest_and_counts)
{
    gcs_task_table *t = gcs_task_table_new(5, 8);
    task_id_t ids[12];
    batch x;
    batch_init(&x);
    for (int i = 0; i < 12; i++) {
        ids[i] = task_id_random(job_id_from_int(i < 9 ? 1 : 2));
        add(&x, &ids[i], 0, RPC__TASK_STATE__TASK_SUBMITTED, 1, 0, 0, 0, T0 + (uint64_t)i, 0, 0, 0,
            0, false);
    }
    uint32_t jobs[] = {1};
    uint64_t lost[] = {42};
    x.b.n_dropped_jobs = x.b.n_dropped_counts = 1;
    x.b.dropped_jobs = jobs;
    x.b.dropped_counts = lost;
    gcs_task_add_batch(t, done(&x), NULL);
    /* job 1: 9 attempts, 5 kept; job 2: 3, and the total bound of 8 takes
     * none of job 1's last five (5 + 3 = 8). */
    cr_assert_eq(gcs_task_count(t), 8);
    gcs_task_job_stats st[4];
    cr_assert_eq(gcs_task_jobs(t, st, 4), 2);
    cr_assert_eq(st[0].job_id, 1);
    cr_assert_eq(st[0].tasks, 5);
    cr_assert_eq(st[0].evicted, 4);
    cr_assert_eq(st[0].lost, 42);
    cr_assert_eq(st[1].tasks, 3);
    cr_assert_eq(gcs_task_evicted(t), 4);
    cr_assert_eq(gcs_task_lost(t), 42);

    gcs_state_query q = {.limit = 2};
    char *s = render(t, "tasks", &q);
    cr_assert(strstr(s, "\"total\":8,\"num_after_filter\":8,"), "%s", s);
    cr_assert_eq(count(s, "\"task_id\""), 2, "%s", s);
    char hex[ID_HEX_MAX];
    cr_assert(strstr(s, id_hex(ids[11].b, TASK_ID_SIZE, hex)), "the newest are shown: %s", s);
    cr_assert(strstr(s, "\"dropped\":{\"evicted\":4,\"lost\":42,\"by_job\":[{\"job_id\":1,"
                        "\"tasks\":5,\"evicted\":4,\"lost\":42}]}"),
              "%s", s);
    free(s);
    gcs_state_query tq = {.format = GCS_STATE_TABLE};
    s = render(t, "tasks", &tq);
    cr_assert(strstr(s, "(job 1: 4 task records evicted from the GCS table, 42 task events lost"),
              "%s", s);
    free(s);

    /* Job 1 ends: its attempts that never ended are cancelled. */
    gcs_task_job_ended(t, 1, T0 + 1000, NULL);
    size_t counts[GCS_TASK_STATES];
    gcs_task_state_counts(t, counts);
    cr_assert_eq(counts[RPC__TASK_STATE__TASK_CANCELLED], 5);
    cr_assert_eq(counts[RPC__TASK_STATE__TASK_SUBMITTED], 3);
    gcs_task_table_free(t);
}

Test(gcs_task, a_batch_with_columns_that_disagree_is_dropped)
{
    gcs_task_table *t = gcs_task_table_new(0, 0);
    task_id_t a = task_id_random(job_id_from_int(1));
    batch x;
    batch_init(&x);
    add(&x, &a, 0, RPC__TASK_STATE__TASK_SUBMITTED, 9 /* no such string */, 0, 7 /* no node */, 0,
        T0, 0, 0, 0, 0, false);
    gcs_task_add_batch(t, done(&x), NULL);
    cr_assert_eq(gcs_task_count(t), 1, "a bad reference reads as none");
    batch_init(&x);
    add(&x, &a, 1, RPC__TASK_STATE__TASK_SUBMITTED, 1, 0, 0, 0, T0, 0, 0, 0, 0, false);
    done(&x);
    x.b.n_states = 2; /* a column longer than the ids */
    gcs_task_add_batch(t, &x.b, NULL);
    cr_assert_eq(gcs_task_count(t), 1);
    gcs_task_table_free(t);
}

/* Export (gcs_task_store.h's chunks): packed, unpacked and added to a new
 * table, the records read back the same; since a sequence number, only
 * what changed after it goes out. */
static void copy_into(void *arg, const Rpc__TaskEventBatch *b)
{
    uint8_t buf[1 << 16];
    size_t len = rpc__task_event_batch__pack(b, buf);
    cr_assert(len < sizeof(buf));
    Rpc__TaskEventBatch *u = rpc__task_event_batch__unpack(NULL, len, buf);
    cr_assert_not_null(u);
    cr_assert(u->task_ids.len <= 2 * TASK_ID_SIZE, "per_batch holds");
    gcs_task_add_batch(arg, u, NULL);
    rpc__task_event_batch__free_unpacked(u, NULL);
}

Test(gcs_task, export_reads_back_the_same_records)
{
    gcs_task_table *t = gcs_task_table_new(0, 0), *t2 = gcs_task_table_new(0, 0);
    task_id_t a = task_id_random(job_id_from_int(1)), b = task_id_random(job_id_from_int(2));
    batch x;
    batch_init(&x);
    add(&x, &a, 0, RPC__TASK_STATE__TASK_FINISHED, 1, 0, 1, 77, T0, T0 + 12, T0 + 50, 0, 0, false);
    add(&x, &b, 0, RPC__TASK_STATE__TASK_FAILED, 3, 4, 2, 78, T0, T0 + 1, T0 + 2, RAYC_ETASK, 3,
        true);
    add(&x, &b, 1, RPC__TASK_STATE__TASK_RUNNING, 3, 4, 2, 79, T0 + 3, T0 + 4, 0, 0, 0, false);
    gcs_task_add_batch(t, done(&x), NULL);
    actor_id_t actor = actor_id_random(job_id_from_int(1));
    node_id_t node;
    memset(node.b, 0x33, NODE_ID_SIZE);
    gcs_task_creation c = {.id = task_id_for_actor(&actor),
                           .state = RPC__TASK_STATE__TASK_FINISHED,
                           .now_us = T0 + 9,
                           .class_name = "Counter",
                           .actor = &actor,
                           .node = &node,
                           .pid = 99};
    gcs_task_add_creation(t, &c, NULL);
    cr_assert_eq(gcs_task_export(t, 0, 2, copy_into, t2), 4);
    cr_assert_eq(gcs_task_count(t2), 4);
    gcs_state_query q = {.limit = 100, .detail = true};
    char *s1 = render(t, "tasks", &q), *s2 = render(t2, "tasks", &q);
    cr_assert_str_eq(s1, s2);
    cr_assert_eq(count(s2, "\"type\":\"ACTOR_CREATION_TASK\""), 1, "%s", s2);
    cr_assert_eq(count(s2, "\"is_retried\":true"), 1, "%s", s2);
    free(s1);
    free(s2);

    /* Since: only b's second attempt changed. */
    uint64_t seq = gcs_task_seq(t);
    batch_init(&x);
    add(&x, &b, 1, RPC__TASK_STATE__TASK_FINISHED, 0, 0, 0, 0, 0, 0, T0 + 8, 0, 0, false);
    gcs_task_add_batch(t, done(&x), NULL);
    cr_assert_eq(gcs_task_export(t, seq, 2, copy_into, t2), 1);
    size_t counts[GCS_TASK_STATES];
    gcs_task_state_counts(t2, counts);
    cr_assert_eq(counts[RPC__TASK_STATE__TASK_FINISHED], 3);
    cr_assert_eq(gcs_task_export(t, gcs_task_seq(t), 2, copy_into, t2), 0);
    gcs_task_table_free(t);
    gcs_task_table_free(t2);
}
