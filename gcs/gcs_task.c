/*
 * gcs_task.c -- the table of task attempts; see gcs_task.h.
 *
 * Records live in an id_map keyed by (task id, attempt) and on two lists in
 * the order they were first seen: the table's (for the total bound and for
 * walks) and their job's (for the per-job bound). Jobs are a small id_map of
 * their own, kept while they have records or counts to show.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_task.h"

#include <stdlib.h>
#include <string.h>

#include "gcs_metrics.h"
#include "id_map.h"
#include "log.h"
#include "rayc.h"

#define KEY_SIZE    (TASK_ID_SIZE + 4)
#define STR_BUCKETS 1024 /* interned strings: function names repeat */

typedef struct job_tasks job_tasks;

/* An interned string (function names and task names repeat by the
 * thousand): records hold a reference. */
typedef struct istr {
    struct istr *next;
    uint64_t hash;
    uint32_t refs;
    char s[];
} istr;

typedef struct entry {
    uint8_t key[KEY_SIZE]; /* task id, attempt (little-endian) */
    id_node hnode;
    gcs_task_info info; /* function, name: fn->s, nm->s; error: owned */
    istr *fn, *nm;
    struct entry *prev, *next;   /* the table's list, oldest first */
    struct entry *jprev, *jnext; /* the job's list */
    job_tasks *job;
    uint64_t mseq; /* the table's seq at its last change (gcs_task_export) */
} entry;

struct job_tasks {
    uint8_t key[JOB_ID_SIZE];
    id_node hnode;
    gcs_task_job_stats st;
    entry *head, *tail;
};

struct gcs_task_table {
    id_map tasks; /* entry */
    id_map jobs;  /* job_tasks */
    entry *head, *tail;
    size_t per_job, total;
    size_t counts[GCS_TASK_STATES];
    istr *strs[STR_BUCKETS];
    entry *spare; /* an evicted record, reused by the next new one */
    uint64_t seq; /* changes so far: each change stamps its record */
};

/* ------------------------------------------------------------ strings */

static uint64_t str_hash_bytes(const void *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (const uint8_t *b = p; n--; b++)
        h = (h ^ *b) * 1099511628211ull;
    return h;
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* A reference to the interned copy of s (NULL for "", or out of memory). */
static istr *str_get(gcs_task_table *t, const char *s)
{
    if (s == NULL || *s == '\0')
        return NULL;
    uint64_t h = str_hash(s);
    istr **b = &t->strs[h & (STR_BUCKETS - 1)];
    for (istr *x = *b; x; x = x->next)
        if (x->hash == h && strcmp(x->s, s) == 0) {
            x->refs++;
            return x;
        }
    size_t n = strlen(s) + 1;
    istr *x = malloc(sizeof(*x) + n);
    if (x == NULL)
        return NULL;
    x->hash = h;
    x->refs = 1;
    memcpy(x->s, s, n);
    x->next = *b;
    *b = x;
    return x;
}

static void str_put(gcs_task_table *t, istr *x)
{
    if (x == NULL || --x->refs > 0)
        return;
    for (istr **p = &t->strs[x->hash & (STR_BUCKETS - 1)]; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    free(x);
}

const char *gcs_task_state_name(int state)
{
    static const char *const names[GCS_TASK_STATES] = {"NIL",       "PENDING_ARGS", "SUBMITTED",
                                                       "SCHEDULED", "RUNNING",      "FINISHED",
                                                       "FAILED",    "CANCELLED"};
    return state >= 0 && state < GCS_TASK_STATES ? names[state] : "UNKNOWN";
}

bool gcs_task_state_is_end(int state)
{
    return state == RPC__TASK_STATE__TASK_FINISHED || state == RPC__TASK_STATE__TASK_FAILED ||
           state == RPC__TASK_STATE__TASK_CANCELLED;
}

/* ------------------------------------------------------------ lifecycle */

gcs_task_table *gcs_task_table_new(size_t per_job, size_t total)
{
    gcs_task_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->per_job = per_job;
    t->total = total;
    if (id_map_init(&t->tasks, ID_MAP_KEY_OFF(entry, hnode, key), KEY_SIZE, 1024) != 0 ||
        id_map_init(&t->jobs, ID_MAP_KEY_OFF(job_tasks, hnode, key), JOB_ID_SIZE, 16) != 0) {
        gcs_task_table_free(t);
        return NULL;
    }
    return t;
}

/* Drop what e holds (its strings), keeping its memory. */
static void entry_clear(gcs_task_table *t, entry *e)
{
    str_put(t, e->fn);
    str_put(t, e->nm);
    free((char *)e->info.error);
    memset(e, 0, sizeof(*e));
}

void gcs_task_table_free(gcs_task_table *t)
{
    if (t == NULL)
        return;
    for (entry *e = t->head, *n; e; e = n) {
        n = e->next;
        free((char *)e->info.error);
        free(e);
    }
    free(t->spare);
    for (size_t b = 0; b < STR_BUCKETS; b++)
        for (istr *x = t->strs[b], *n; x; x = n) {
            n = x->next;
            free(x);
        }
    id_map_iter it;
    id_map_iter_init(&t->jobs, &it);
    for (id_node *n; (n = id_map_iter_next(&t->jobs, &it)) != NULL;)
        free(ID_MAP_ENTRY(n, job_tasks, hnode));
    id_map_destroy(&t->tasks);
    id_map_destroy(&t->jobs);
    free(t);
}

/* ------------------------------------------------------------ jobs */

static job_tasks *job_get(gcs_task_table *t, uint32_t job_id)
{
    uint8_t key[JOB_ID_SIZE];
    job_id_t j = job_id_from_int(job_id);
    memcpy(key, j.b, JOB_ID_SIZE);
    job_tasks *jt = ID_MAP_ENTRY(id_map_find(&t->jobs, key), job_tasks, hnode);
    if (jt)
        return jt;
    jt = calloc(1, sizeof(*jt));
    if (jt == NULL)
        return NULL;
    memcpy(jt->key, key, JOB_ID_SIZE);
    jt->st.job_id = job_id;
    id_map_insert(&t->jobs, &jt->hnode);
    return jt;
}

/* ------------------------------------------------------------ records */

static void unlink_entry(gcs_task_table *t, entry *e)
{
    *(e->prev ? &e->prev->next : &t->head) = e->next;
    *(e->next ? &e->next->prev : &t->tail) = e->prev;
    job_tasks *j = e->job;
    *(e->jprev ? &e->jprev->jnext : &j->head) = e->jnext;
    *(e->jnext ? &e->jnext->jprev : &j->tail) = e->jprev;
    j->st.tasks--;
    t->counts[e->info.state]--;
    id_map_remove(&t->tasks, &e->hnode);
}

/* Drop the oldest record of j (or of the table when j is NULL); its memory
 * is kept for the next new record. */
static void evict(gcs_task_table *t, job_tasks *j)
{
    entry *e = j ? j->head : t->head;
    if (e == NULL)
        return;
    e->job->st.evicted++;
    unlink_entry(t, e);
    entry_clear(t, e);
    free(t->spare);
    t->spare = e;
}

static entry *entry_new(gcs_task_table *t, const uint8_t *key, uint32_t job_id)
{
    job_tasks *j = job_get(t, job_id);
    if (j == NULL)
        return NULL;
    if (t->per_job && j->st.tasks >= t->per_job)
        evict(t, j);
    if (t->total && id_map_count(&t->tasks) >= t->total)
        evict(t, NULL);
    entry *e = t->spare ? t->spare : calloc(1, sizeof(*e));
    t->spare = NULL;
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, KEY_SIZE);
    memcpy(e->info.id.b, key, TASK_ID_SIZE);
    memcpy(&e->info.attempt, key + TASK_ID_SIZE, 4);
    e->info.job_id = job_id;
    e->job = j;
    e->prev = t->tail;
    *(t->tail ? &t->tail->next : &t->head) = e;
    t->tail = e;
    e->jprev = j->tail;
    *(j->tail ? &j->tail->jnext : &j->head) = e;
    j->tail = e;
    j->st.tasks++;
    t->counts[0]++;
    id_map_insert(&t->tasks, &e->hnode);
    return e;
}

static void first_time(uint64_t *have, uint64_t got)
{
    if (got && (*have == 0 || got < *have))
        *have = got;
}

/* One attempt of a batch, its columns gathered (strings interned once per
 * batch: refs point into the batch's dictionary). */
typedef struct {
    int state;
    uint64_t ts[5]; /* pending args, submitted, scheduled, running, end */
    istr *fn, *nm;
    const char *error;
    const uint8_t *node;
    const uint8_t *actor;
    int32_t pid, error_code;
    bool retried, actor_creation;
} update;

static void merge(gcs_task_table *t, entry *e, const update *u, struct gcs_metrics *m)
{
    gcs_task_info *x = &e->info;
    bool ended = gcs_task_state_is_end(x->state);
    e->mseq = ++t->seq;
    if (u->state > x->state) {
        t->counts[x->state]--;
        t->counts[u->state]++;
        x->state = u->state;
    }
    first_time(&x->pending_args_us, u->ts[0]);
    first_time(&x->submitted_us, u->ts[1]);
    first_time(&x->scheduled_us, u->ts[2]);
    first_time(&x->running_us, u->ts[3]);
    first_time(&x->end_us, u->ts[4]);
    if (e->fn == NULL && u->fn) {
        e->fn = u->fn;
        e->fn->refs++;
    }
    if (e->nm == NULL && u->nm) {
        e->nm = u->nm;
        e->nm->refs++;
    }
    if (x->error == NULL && u->error && *u->error)
        x->error = strdup(u->error);
    if (u->node) {
        memcpy(x->node.b, u->node, NODE_ID_SIZE);
        x->has_node = true;
    }
    if (u->actor) {
        memcpy(x->actor.b, u->actor, ACTOR_ID_SIZE);
        x->has_actor = true;
    }
    if (u->pid)
        x->worker_pid = u->pid;
    if (u->error_code)
        x->error_code = u->error_code;
    if (u->retried)
        x->retried = true;
    if (u->actor_creation)
        x->actor_creation = true;
    if (!ended && gcs_task_state_is_end(x->state) && m) {
        uint64_t queued = x->running_us && x->submitted_us && x->running_us > x->submitted_us
                              ? x->running_us - x->submitted_us
                              : 0;
        uint64_t ran =
            x->end_us && x->running_us && x->end_us > x->running_us ? x->end_us - x->running_us : 0;
        gcs_metrics_task_ended(m, x->state, x->running_us ? queued : UINT64_MAX,
                               x->running_us ? ran : UINT64_MAX);
    }
}

/* Column i of n entries, or 0 when the column is absent. */
#define COL(b, field, i) ((b)->n_##field ? (b)->field[i] : 0)

/* A reference into a dictionary of size n: the index, or -1 (none or bad). */
static long dict_ref(uint32_t ref, size_t n)
{
    return ref >= 1 && ref <= n ? (long)ref - 1 : -1;
}

void gcs_task_add_batch(gcs_task_table *t, const Rpc__TaskEventBatch *b, struct gcs_metrics *m)
{
    size_t n = b->task_ids.len / TASK_ID_SIZE, nnodes = b->node_ids.len / NODE_ID_SIZE,
           nactors = b->actor_ids.len / ACTOR_ID_SIZE;
    /* Every column has n entries, or none (all zero). */
    size_t lens[] = {b->n_attempts,     b->n_states,     b->n_pending_args_us, b->n_submitted_us,
                     b->n_scheduled_us, b->n_running_us, b->n_end_us,          b->n_function_refs,
                     b->n_name_refs,    b->n_node_refs,  b->n_worker_pids,     b->n_error_codes,
                     b->n_error_refs,   b->n_flags,      b->n_actor_refs};
    for (size_t c = 0; c < sizeof(lens) / sizeof(lens[0]); c++)
        if (lens[c] != 0 && lens[c] != n) {
            log_warn("task events: a batch of %zu attempts has a column of %zu: dropped", n,
                     lens[c]);
            return;
        }
    istr **strs = calloc(b->n_strings ? b->n_strings : 1, sizeof(*strs));
    if (strs == NULL) {
        log_warn("task events: out of memory, a batch is dropped");
        return;
    }
    for (size_t i = 0; i < b->n_strings; i++)
        strs[i] = str_get(t, b->strings[i]); /* one reference, dropped below */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *id = b->task_ids.data + i * TASK_ID_SIZE;
        uint32_t attempt = COL(b, attempts, i), state = COL(b, states, i);
        long fn = dict_ref(COL(b, function_refs, i), b->n_strings);
        long nm = dict_ref(COL(b, name_refs, i), b->n_strings);
        long er = dict_ref(COL(b, error_refs, i), b->n_strings);
        long nd = dict_ref(COL(b, node_refs, i), nnodes);
        long ac = dict_ref(COL(b, actor_refs, i), nactors);
        update u = {
            .state = state < GCS_TASK_STATES ? (int)state : 0,
            .ts = {COL(b, pending_args_us, i), COL(b, submitted_us, i), COL(b, scheduled_us, i),
                   COL(b, running_us, i), COL(b, end_us, i)},
            .fn = fn >= 0 ? strs[fn] : NULL,
            .nm = nm >= 0 ? strs[nm] : NULL,
            .error = er >= 0 ? b->strings[er] : NULL,
            .node = nd >= 0 ? b->node_ids.data + nd * NODE_ID_SIZE : NULL,
            .actor = ac >= 0 ? b->actor_ids.data + ac * ACTOR_ID_SIZE : NULL,
            .pid = COL(b, worker_pids, i),
            .error_code = COL(b, error_codes, i),
            .retried = (COL(b, flags, i) & RPC__TASK_EVENT_FLAG__TASK_EVENT_RETRIED) != 0,
            .actor_creation =
                (COL(b, flags, i) & RPC__TASK_EVENT_FLAG__TASK_EVENT_ACTOR_CREATION) != 0,
        };
        uint8_t key[KEY_SIZE];
        memcpy(key, id, TASK_ID_SIZE);
        memcpy(key + TASK_ID_SIZE, &attempt, 4);
        entry *e = ID_MAP_ENTRY(id_map_find(&t->tasks, key), entry, hnode);
        if (e == NULL) {
            task_id_t tid;
            memcpy(tid.b, id, TASK_ID_SIZE);
            /* The job of a task is part of its id. */
            e = entry_new(t, key, job_id_to_int(task_id_job(&tid)));
            if (e == NULL) {
                log_warn("task events: out of memory, an event is dropped");
                continue;
            }
        }
        merge(t, e, &u, m);
    }
    for (size_t i = 0; i < b->n_strings; i++)
        str_put(t, strs[i]);
    free(strs);
    size_t nd = b->n_dropped_jobs < b->n_dropped_counts ? b->n_dropped_jobs : b->n_dropped_counts;
    for (size_t i = 0; i < nd; i++) {
        job_tasks *j = job_get(t, b->dropped_jobs[i]);
        if (j)
            j->st.lost += b->dropped_counts[i];
    }
}

void gcs_task_add_creation(gcs_task_table *t, const gcs_task_creation *c, struct gcs_metrics *m)
{
    if (c->state <= 0 || c->state >= GCS_TASK_STATES)
        return;
    update u = {
        .state = c->state,
        .fn = str_get(t, c->class_name),
        .nm = str_get(t, c->name && c->name[0] ? c->name : c->class_name),
        .error = c->error,
        .node = c->node ? c->node->b : NULL,
        .actor = c->actor ? c->actor->b : NULL,
        .pid = c->pid,
        .error_code = c->error_code,
        .retried = c->retried,
        .actor_creation = true,
    };
    /* The time goes to the state's slot: submitted, scheduled, or the end. */
    int slot = gcs_task_state_is_end(c->state) ? 4 : c->state - 1;
    if (slot >= 0 && slot < 5)
        u.ts[slot] = c->now_us;
    uint8_t key[KEY_SIZE];
    memcpy(key, c->id.b, TASK_ID_SIZE);
    memcpy(key + TASK_ID_SIZE, &c->attempt, 4);
    entry *e = ID_MAP_ENTRY(id_map_find(&t->tasks, key), entry, hnode);
    if (e == NULL)
        e = entry_new(t, key, job_id_to_int(task_id_job(&c->id)));
    if (e)
        merge(t, e, &u, m);
    str_put(t, u.fn);
    str_put(t, u.nm);
}

const char *gcs_task_type_name(const gcs_task_info *ti)
{
    return ti->actor_creation ? "ACTOR_CREATION_TASK"
           : ti->has_actor    ? "ACTOR_TASK"
                              : "NORMAL_TASK";
}

void gcs_task_job_ended(gcs_task_table *t, uint32_t job_id, uint64_t now_us, struct gcs_metrics *m)
{
    uint8_t key[JOB_ID_SIZE];
    job_id_t j = job_id_from_int(job_id);
    memcpy(key, j.b, JOB_ID_SIZE);
    job_tasks *jt = ID_MAP_ENTRY(id_map_find(&t->jobs, key), job_tasks, hnode);
    for (entry *e = jt ? jt->head : NULL; e; e = e->jnext) {
        gcs_task_info *x = &e->info;
        if (gcs_task_state_is_end(x->state))
            continue;
        e->mseq = ++t->seq;
        t->counts[x->state]--;
        x->state = RPC__TASK_STATE__TASK_CANCELLED;
        t->counts[x->state]++;
        x->end_us = now_us;
        x->error_code = RAYC_ECANCELLED;
        if (x->error == NULL)
            x->error = strdup("its job ended first");
        if (m)
            gcs_metrics_task_ended(m, x->state, UINT64_MAX, UINT64_MAX);
    }
}

/* ------------------------------------------------------------ reading */

size_t gcs_task_count(const gcs_task_table *t)
{
    return t ? id_map_count(&t->tasks) : 0;
}

void gcs_task_state_counts(const gcs_task_table *t, size_t counts[GCS_TASK_STATES])
{
    for (int s = 0; s < GCS_TASK_STATES; s++)
        counts[s] = t ? t->counts[s] : 0;
}

void gcs_task_walk(const gcs_task_table *t, bool newest_first,
                   bool (*fn)(void *arg, const gcs_task_info *ti), void *arg)
{
    if (t == NULL)
        return;
    for (const entry *e = newest_first ? t->tail : t->head; e;
         e = newest_first ? e->prev : e->next) {
        gcs_task_info x = e->info;
        x.function = e->fn ? e->fn->s : "";
        x.name = e->nm ? e->nm->s : "";
        x.error = x.error ? x.error : "";
        if (!fn(arg, &x))
            return;
    }
}

static int stats_cmp(const void *a, const void *b)
{
    const gcs_task_job_stats *x = a, *y = b;
    return x->job_id < y->job_id ? -1 : x->job_id > y->job_id;
}

size_t gcs_task_jobs(const gcs_task_table *t, gcs_task_job_stats *out, size_t cap)
{
    if (t == NULL)
        return 0;
    size_t n = 0;
    id_map_iter it;
    id_map_iter_init(&t->jobs, &it);
    for (id_node *nd; (nd = id_map_iter_next(&t->jobs, &it)) != NULL; n++)
        if (n < cap)
            out[n] = ID_MAP_ENTRY(nd, job_tasks, hnode)->st;
    if (out && n > 1)
        qsort(out, n < cap ? n : cap, sizeof(*out), stats_cmp);
    return n;
}

uint64_t gcs_task_evicted(const gcs_task_table *t)
{
    uint64_t sum = 0;
    if (t == NULL)
        return 0;
    id_map_iter it;
    id_map_iter_init(&t->jobs, &it);
    for (id_node *nd; (nd = id_map_iter_next(&t->jobs, &it)) != NULL;)
        sum += ID_MAP_ENTRY(nd, job_tasks, hnode)->st.evicted;
    return sum;
}

uint64_t gcs_task_lost(const gcs_task_table *t)
{
    uint64_t sum = 0;
    if (t == NULL)
        return 0;
    id_map_iter it;
    id_map_iter_init(&t->jobs, &it);
    for (id_node *nd; (nd = id_map_iter_next(&t->jobs, &it)) != NULL;)
        sum += ID_MAP_ENTRY(nd, job_tasks, hnode)->st.lost;
    return sum;
}

/* ------------------------------------------------------------ export */

/* A TaskEventBatch being filled (gcs_task_export): columns of cap
 * attempts, and the dictionaries, deduplicated through small open-addressed
 * slot tables (interned strings by pointer, actor ids by value). */
typedef struct {
    size_t cap, n, slots;
    Rpc__TaskEventBatch b;
    const istr **str_keys; /* slots: interned string -> its index + 1 */
    uint32_t *str_vals;
    uint32_t *actor_slots; /* slots: actor index + 1 */
} exporter;

static void exporter_free(exporter *x)
{
    Rpc__TaskEventBatch *b = &x->b;
    free(b->task_ids.data);
    free(b->attempts);
    free(b->states);
    free(b->pending_args_us);
    free(b->submitted_us);
    free(b->scheduled_us);
    free(b->running_us);
    free(b->end_us);
    free(b->function_refs);
    free(b->name_refs);
    free(b->node_refs);
    free(b->worker_pids);
    free(b->error_codes);
    free(b->error_refs);
    free(b->flags);
    free(b->actor_refs);
    free(b->strings);
    free(b->node_ids.data);
    free(b->actor_ids.data);
    free(x->str_keys);
    free(x->str_vals);
    free(x->actor_slots);
}

static int exporter_init(exporter *x, size_t cap)
{
    memset(x, 0, sizeof(*x));
    x->cap = cap;
    x->slots = 1;
    while (x->slots < 4 * cap)
        x->slots *= 2;
    Rpc__TaskEventBatch *b = &x->b;
    rpc__task_event_batch__init(b);
    b->task_ids.data = malloc(cap * TASK_ID_SIZE);
    b->attempts = malloc(cap * sizeof(uint32_t));
    b->states = malloc(cap * sizeof(uint32_t));
    b->pending_args_us = malloc(cap * sizeof(uint64_t));
    b->submitted_us = malloc(cap * sizeof(uint64_t));
    b->scheduled_us = malloc(cap * sizeof(uint64_t));
    b->running_us = malloc(cap * sizeof(uint64_t));
    b->end_us = malloc(cap * sizeof(uint64_t));
    b->function_refs = malloc(cap * sizeof(uint32_t));
    b->name_refs = malloc(cap * sizeof(uint32_t));
    b->node_refs = malloc(cap * sizeof(uint32_t));
    b->worker_pids = malloc(cap * sizeof(int32_t));
    b->error_codes = malloc(cap * sizeof(int32_t));
    b->error_refs = malloc(cap * sizeof(uint32_t));
    b->flags = malloc(cap * sizeof(uint32_t));
    b->actor_refs = malloc(cap * sizeof(uint32_t));
    b->strings = malloc(3 * cap * sizeof(char *));
    b->node_ids.data = malloc(cap * NODE_ID_SIZE);
    b->actor_ids.data = malloc(cap * ACTOR_ID_SIZE);
    x->str_keys = calloc(x->slots, sizeof(*x->str_keys));
    x->str_vals = calloc(x->slots, sizeof(*x->str_vals));
    x->actor_slots = calloc(x->slots, sizeof(*x->actor_slots));
    if (!b->task_ids.data || !b->attempts || !b->states || !b->pending_args_us ||
        !b->submitted_us || !b->scheduled_us || !b->running_us || !b->end_us || !b->function_refs ||
        !b->name_refs || !b->node_refs || !b->worker_pids || !b->error_codes || !b->error_refs ||
        !b->flags || !b->actor_refs || !b->strings || !b->node_ids.data || !b->actor_ids.data ||
        !x->str_keys || !x->str_vals || !x->actor_slots) {
        exporter_free(x);
        return RAYC_ENOMEM;
    }
    return RAYC_OK;
}

/* Start the next batch: empty columns and dictionaries. */
static void exporter_reset(exporter *x)
{
    Rpc__TaskEventBatch *b = &x->b;
    x->n = 0;
    b->task_ids.len = b->node_ids.len = b->actor_ids.len = 0;
    b->n_strings = 0;
    memset(x->str_keys, 0, x->slots * sizeof(*x->str_keys));
    memset(x->actor_slots, 0, x->slots * sizeof(*x->actor_slots));
}

/* The dictionary reference (index + 1) of an interned string; 0 for none. */
static uint32_t ref_str(exporter *x, const istr *s)
{
    if (s == NULL)
        return 0;
    size_t i = (size_t)s->hash & (x->slots - 1);
    for (; x->str_keys[i]; i = (i + 1) & (x->slots - 1))
        if (x->str_keys[i] == s)
            return x->str_vals[i];
    x->b.strings[x->b.n_strings++] = (char *)s->s;
    x->str_keys[i] = s;
    x->str_vals[i] = (uint32_t)x->b.n_strings;
    return x->str_vals[i];
}

static uint32_t ref_node(exporter *x, const node_id_t *n)
{
    size_t count = x->b.node_ids.len / NODE_ID_SIZE;
    for (size_t i = count; i > 0; i--) /* few nodes: the last used first */
        if (memcmp(x->b.node_ids.data + (i - 1) * NODE_ID_SIZE, n->b, NODE_ID_SIZE) == 0)
            return (uint32_t)i;
    memcpy(x->b.node_ids.data + x->b.node_ids.len, n->b, NODE_ID_SIZE);
    x->b.node_ids.len += NODE_ID_SIZE;
    return (uint32_t)count + 1;
}

static uint32_t ref_actor(exporter *x, const actor_id_t *a)
{
    size_t i = (size_t)str_hash_bytes(a->b, ACTOR_ID_SIZE) & (x->slots - 1);
    for (; x->actor_slots[i]; i = (i + 1) & (x->slots - 1))
        if (memcmp(x->b.actor_ids.data + (x->actor_slots[i] - 1) * ACTOR_ID_SIZE, a->b,
                   ACTOR_ID_SIZE) == 0)
            return x->actor_slots[i];
    memcpy(x->b.actor_ids.data + x->b.actor_ids.len, a->b, ACTOR_ID_SIZE);
    x->b.actor_ids.len += ACTOR_ID_SIZE;
    x->actor_slots[i] = (uint32_t)(x->b.actor_ids.len / ACTOR_ID_SIZE);
    return x->actor_slots[i];
}

static void exporter_add(exporter *x, const entry *e)
{
    Rpc__TaskEventBatch *b = &x->b;
    const gcs_task_info *ti = &e->info;
    size_t i = x->n++;
    memcpy(b->task_ids.data + i * TASK_ID_SIZE, ti->id.b, TASK_ID_SIZE);
    b->task_ids.len += TASK_ID_SIZE;
    b->attempts[i] = ti->attempt;
    b->states[i] = (uint32_t)ti->state;
    b->pending_args_us[i] = ti->pending_args_us;
    b->submitted_us[i] = ti->submitted_us;
    b->scheduled_us[i] = ti->scheduled_us;
    b->running_us[i] = ti->running_us;
    b->end_us[i] = ti->end_us;
    b->function_refs[i] = ref_str(x, e->fn);
    b->name_refs[i] = ref_str(x, e->nm);
    b->node_refs[i] = ti->has_node ? ref_node(x, &ti->node) : 0;
    b->worker_pids[i] = ti->worker_pid;
    b->error_codes[i] = ti->error_code;
    b->error_refs[i] = 0;
    if (ti->error && ti->error[0]) { /* rarely shared: not deduplicated */
        b->strings[b->n_strings++] = (char *)ti->error;
        b->error_refs[i] = (uint32_t)b->n_strings;
    }
    b->flags[i] = (ti->retried ? RPC__TASK_EVENT_FLAG__TASK_EVENT_RETRIED : 0) |
                  (ti->actor_creation ? RPC__TASK_EVENT_FLAG__TASK_EVENT_ACTOR_CREATION : 0);
    b->actor_refs[i] = ti->has_actor ? ref_actor(x, &ti->actor) : 0;
}

static void exporter_emit(exporter *x, void (*emit)(void *, const Rpc__TaskEventBatch *), void *arg)
{
    Rpc__TaskEventBatch *b = &x->b;
    size_t n = x->n;
    b->n_attempts = b->n_states = b->n_pending_args_us = b->n_submitted_us = n;
    b->n_scheduled_us = b->n_running_us = b->n_end_us = b->n_function_refs = n;
    b->n_name_refs = b->n_node_refs = b->n_worker_pids = b->n_error_codes = n;
    b->n_error_refs = b->n_flags = b->n_actor_refs = n;
    emit(arg, b);
    exporter_reset(x);
}

uint64_t gcs_task_seq(const gcs_task_table *t)
{
    return t ? t->seq : 0;
}

long gcs_task_export(const gcs_task_table *t, uint64_t since, size_t per_batch,
                     void (*emit)(void *arg, const Rpc__TaskEventBatch *b), void *arg)
{
    if (t == NULL)
        return 0;
    exporter x;
    if (exporter_init(&x, per_batch ? per_batch : 1000) != RAYC_OK)
        return RAYC_ENOMEM;
    long total = 0;
    for (const entry *e = t->head; e; e = e->next) {
        if (e->mseq <= since)
            continue;
        exporter_add(&x, e);
        total++;
        if (x.n == x.cap)
            exporter_emit(&x, emit, arg);
    }
    if (x.n)
        exporter_emit(&x, emit, arg);
    exporter_free(&x);
    return total;
}
