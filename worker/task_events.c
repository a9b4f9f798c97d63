/*
 * task_events.c -- see task_events.h.
 *
 * The hot path only appends: an update becomes an event (a partial record)
 * at the end of the current window, its strings copied into the window's
 * arena. The flusher, once it has swapped the windows, folds the events of
 * an attempt into one record (an open-addressing index over the records, in
 * a tight loop that keeps it in cache), then encodes the records as
 * columns. Lookups on the hot path cost cache misses between the other
 * processes' work; in the flusher they do not. Arrays are kept between
 * windows and grow by doubling up to max_records, so a steady stream
 * allocates nothing.
 */
#include "task_events.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "util.h"

enum { TS_PENDING, TS_SUBMITTED, TS_SCHEDULED, TS_RUNNING, TS_END, TS_COUNT };

/* An event (what one update says) or a record (the events of one attempt
 * folded together): the same fields. */
typedef struct {
    task_id_t id;
    uint32_t attempt;
    uint8_t state; /* Rpc__TaskState: the highest seen */
    bool retried;
    bool has_node;
    int32_t pid;
    int32_t error_code;
    uint32_t fn, name, err; /* offset + 1 in the window's arena; 0: none */
    uint32_t actor;         /* offset + 1 of an actor call's actor id (16 bytes) in the arena */
    uint64_t ts[TS_COUNT];
    node_id_t node;
} rec;

/* Where updates go: events in arrival order. */
typedef struct {
    rec *recs;
    size_t n, cap;
    char *arena;
    size_t alen, acap;
    uint32_t drop_jobs[TEV_MAX_DROP_JOBS];
    uint64_t drop_counts[TEV_MAX_DROP_JOBS];
    int ndrops;
} window;

/* The flusher's fold of a window: one record per attempt. */
typedef struct {
    rec *recs;
    size_t n, cap;
    uint32_t *index; /* record number + 1; 0: empty */
    size_t icap;     /* a power of two, >= 2 * cap */
} folded;

/* What one update brings to its attempt's record. */
typedef struct {
    const uint8_t *id;
    uint32_t attempt;
    int state;
    int ts_slot; /* where now_us goes, or -1 */
    uint64_t now_us;
    uint64_t scheduled_us, running_us, end_us; /* 0: not given */
    const char *function, *name, *error;
    int error_code;
    bool retried;
    const uint8_t *node;  /* NODE_ID_SIZE bytes or NULL */
    const uint8_t *actor; /* ACTOR_ID_SIZE bytes or NULL */
    int32_t pid;
} update;

struct tev_buffer {
    pthread_mutex_t mu; /* everything below but fold and cols */
    pthread_cond_t cv;  /* the flusher's wake-up (CLOCK_MONOTONIC) */
    pthread_cond_t done_cv;
    window win[2];
    int active;     /* win[active] takes events */
    tev_gcs_fn gcs; /* the connection to send on, asked at each flush */
    void *gcs_arg;
    bool attached, stopping, has_thread;
    bool flush_asked;
    bool idle; /* the flusher sleeps with no deadline: nothing to send, nothing runs unreported */
    uint64_t flushes_done;
    pthread_t thread;
    int64_t interval_ms;
    size_t max_records;
    node_id_t node;
    int32_t pid;
    tev_stats stats;
    /* The executor's running task (tev_running), published without a lock:
     * a seqlock, the executor its only writer; the flusher retries a read
     * that overlapped a write. Fields are accessed as relaxed atomics. */
    struct {
        uint32_t seq; /* odd while being written */
        uint32_t attempt;
        uint64_t id[TASK_ID_SIZE / 8];
        uint64_t scheduled_us, start_us; /* start_us 0: nothing runs */
    } run;
    /* the flusher's: the run it reported last (reported once) */
    uint64_t reported_id[TASK_ID_SIZE / 8];
    uint32_t reported_attempt;
    uint64_t reported_start;
    /* the flusher's alone */
    folded fold;
    struct tev_columns *cols; /* encoding space, made on first use */
};

/* ------------------------------------------------------------ windows */

static uint64_t key_hash(const uint8_t *id, uint32_t attempt)
{
    uint64_t h;
    memcpy(&h, id, sizeof(h)); /* the random part of a task id */
    h ^= (uint64_t)attempt * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static void window_free(window *w)
{
    free(w->recs);
    free(w->arena);
    memset(w, 0, sizeof(*w));
}

static void window_reset(window *w)
{
    w->n = 0;
    w->alen = 0;
    w->ndrops = 0;
}

/* Room for one more event: grow up to max. false when full. */
static bool window_room(window *w, size_t max)
{
    if (w->n < w->cap)
        return true;
    if (w->cap >= max)
        return false;
    size_t cap = w->cap ? w->cap * 2 : 256;
    if (cap > max)
        cap = max;
    rec *r = realloc(w->recs, cap * sizeof(*r));
    if (r == NULL)
        return false;
    w->recs = r;
    w->cap = cap;
    return true;
}

/* A copy of s in the arena: its offset + 1, or 0 (none, or no memory). */
static uint32_t arena_add(window *w, const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    size_t len = strnlen(s, TEV_STRING_MAX - 1);
    if (w->alen + len + 1 > w->acap) {
        size_t cap = w->acap ? w->acap : 4096;
        while (cap < w->alen + len + 1)
            cap *= 2;
        if (cap > UINT32_MAX - 1)
            return 0;
        char *a = realloc(w->arena, cap);
        if (a == NULL)
            return 0;
        w->arena = a;
        w->acap = cap;
    }
    uint32_t off = (uint32_t)w->alen;
    memcpy(w->arena + off, s, len);
    w->arena[off + len] = '\0';
    w->alen += len + 1;
    return off + 1;
}

/* A copy of n bytes in the arena: their offset + 1, or 0 (no memory). */
static uint32_t arena_bytes(window *w, const uint8_t *b, size_t n)
{
    if (w->alen + n > w->acap) {
        size_t cap = w->acap ? w->acap : 4096;
        while (cap < w->alen + n)
            cap *= 2;
        if (cap > UINT32_MAX - 1)
            return 0;
        char *a = realloc(w->arena, cap);
        if (a == NULL)
            return 0;
        w->arena = a;
        w->acap = cap;
    }
    uint32_t off = (uint32_t)w->alen;
    memcpy(w->arena + off, b, n);
    w->alen += n;
    return off + 1;
}

static void count_drop(window *w, uint32_t job)
{
    int i;
    for (i = 0; i < w->ndrops; i++)
        if (w->drop_jobs[i] == job)
            break;
    if (i == w->ndrops) {
        if (w->ndrops == TEV_MAX_DROP_JOBS)
            i = 0; /* lumped in with the first */
        else
            w->drop_jobs[w->ndrops++] = job;
    }
    w->drop_counts[i]++;
}

/* Append u to the active window as an event. b->mu held. */
static void append(tev_buffer *b, const update *u)
{
    window *w = &b->win[b->active];
    if (!window_room(w, b->max_records)) {
        task_id_t tid;
        memcpy(tid.b, u->id, TASK_ID_SIZE);
        count_drop(w, job_id_to_int(task_id_job(&tid)));
        b->stats.dropped++;
        return;
    }
    rec *r = &w->recs[w->n++];
    memcpy(r->id.b, u->id, TASK_ID_SIZE);
    r->attempt = u->attempt;
    r->state = (uint8_t)u->state;
    r->retried = u->retried;
    r->has_node = u->node != NULL;
    if (u->node)
        memcpy(r->node.b, u->node, NODE_ID_SIZE);
    r->pid = u->pid;
    r->error_code = u->error_code;
    r->fn = arena_add(w, u->function);
    r->name = arena_add(w, u->name);
    r->err = arena_add(w, u->error);
    r->actor = u->actor ? arena_bytes(w, u->actor, ACTOR_ID_SIZE) : 0;
    memset(r->ts, 0, sizeof(r->ts));
    r->ts[TS_SCHEDULED] = u->scheduled_us;
    r->ts[TS_RUNNING] = u->running_us;
    r->ts[TS_END] = u->end_us;
    if (u->ts_slot >= 0)
        r->ts[u->ts_slot] = u->now_us;
    if (w->n == TEV_FLUSH_AT && !b->flush_asked) {
        b->flush_asked = true;
        pthread_cond_signal(&b->cv);
    } else if (b->idle) {
        pthread_cond_signal(&b->cv); /* the first event after a quiet spell */
    }
}

static void record(tev_buffer *b, const update *u)
{
    pthread_mutex_lock(&b->mu);
    if (b->attached)
        append(b, u);
    pthread_mutex_unlock(&b->mu);
}

/* ------------------------------------------------------------ folding */

static void set_ts(rec *r, int slot, uint64_t us)
{
    if (us && (r->ts[slot] == 0 || us < r->ts[slot]))
        r->ts[slot] = us; /* first sight wins */
}

/* Fold event e into r, the record of its attempt. */
static void fold_into(rec *r, const rec *e)
{
    if (e->state > r->state)
        r->state = e->state;
    for (int t = 0; t < TS_COUNT; t++)
        set_ts(r, t, e->ts[t]);
    if (r->fn == 0)
        r->fn = e->fn;
    if (r->name == 0)
        r->name = e->name;
    if (r->err == 0)
        r->err = e->err;
    if (r->actor == 0)
        r->actor = e->actor;
    if (e->error_code)
        r->error_code = e->error_code;
    if (e->retried)
        r->retried = true;
    if (e->has_node) {
        r->node = e->node;
        r->has_node = true;
    }
    if (e->pid)
        r->pid = e->pid;
}

/* One record per attempt of w's events, in f. false when out of memory. */
static bool fold_window(folded *f, const window *w)
{
    if (f->cap < w->n) {
        size_t cap = w->n, icap = 16;
        while (icap < 2 * cap)
            icap <<= 1;
        rec *r = realloc(f->recs, cap * sizeof(*r));
        if (r == NULL)
            return false;
        f->recs = r;
        uint32_t *ix = malloc(icap * sizeof(*ix));
        if (ix == NULL)
            return false;
        free(f->index);
        f->index = ix;
        f->icap = icap;
        f->cap = cap;
    }
    f->n = 0;
    if (w->n == 0)
        return true;
    memset(f->index, 0, f->icap * sizeof(*f->index));
    size_t mask = f->icap - 1;
    for (size_t i = 0; i < w->n; i++) {
        const rec *e = &w->recs[i];
        size_t s = key_hash(e->id.b, e->attempt) & mask;
        rec *r = NULL;
        for (; f->index[s]; s = (s + 1) & mask) {
            rec *c = &f->recs[f->index[s] - 1];
            if (c->attempt == e->attempt && memcmp(c->id.b, e->id.b, TASK_ID_SIZE) == 0) {
                r = c;
                break;
            }
        }
        if (r) {
            fold_into(r, e);
        } else {
            f->recs[f->n] = *e;
            f->index[s] = (uint32_t)++f->n;
        }
    }
    return true;
}

/* ------------------------------------------------------------ sending */

static const char *astr(const window *w, uint32_t off)
{
    return off ? w->arena + off - 1 : "";
}

#define DICT_SLOTS 16384 /* a power of two, > 3 * TEV_BATCH_MAX strings */
_Static_assert((DICT_SLOTS & (DICT_SLOTS - 1)) == 0 && DICT_SLOTS > 3 * TEV_BATCH_MAX,
               "dictionary slots");

/* The flusher's columns for one TaskEventBatch (TEV_BATCH_MAX attempts),
 * made on first use and kept. */
struct tev_columns {
    uint8_t ids[TEV_BATCH_MAX * TASK_ID_SIZE];
    uint32_t attempts[TEV_BATCH_MAX], states[TEV_BATCH_MAX];
    uint64_t ts[TS_COUNT][TEV_BATCH_MAX];
    uint32_t fn[TEV_BATCH_MAX], name[TEV_BATCH_MAX], node[TEV_BATCH_MAX], err[TEV_BATCH_MAX];
    int32_t pids[TEV_BATCH_MAX], codes[TEV_BATCH_MAX];
    uint32_t flags[TEV_BATCH_MAX];
    /* dictionaries: strings by content (open addressing), nodes by scan */
    char *strings[3 * TEV_BATCH_MAX];
    uint32_t nstrings;
    uint32_t slots[DICT_SLOTS]; /* string index + 1; 0: empty */
    uint8_t nodes[TEV_BATCH_MAX * NODE_ID_SIZE];
    uint32_t nnodes;
    uint32_t actor[TEV_BATCH_MAX];
    uint8_t actors[TEV_BATCH_MAX * ACTOR_ID_SIZE];
    uint32_t nactors;
};

/* The dictionary reference of s (index + 1), adding it; 0 for "". */
static uint32_t dict_string(struct tev_columns *c, const char *s)
{
    if (*s == '\0')
        return 0;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = s; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    size_t mask = ARRAY_SIZE(c->slots) - 1, i = h & mask;
    for (; c->slots[i]; i = (i + 1) & mask)
        if (strcmp(c->strings[c->slots[i] - 1], s) == 0)
            return c->slots[i];
    c->strings[c->nstrings++] = (char *)s;
    c->slots[i] = c->nstrings;
    return c->nstrings;
}

static uint32_t dict_actor(struct tev_columns *c, const uint8_t *a)
{
    for (uint32_t i = c->nactors; i > 0; i--) /* few actors per batch: the latest first */
        if (memcmp(c->actors + (i - 1) * ACTOR_ID_SIZE, a, ACTOR_ID_SIZE) == 0)
            return i;
    memcpy(c->actors + c->nactors * ACTOR_ID_SIZE, a, ACTOR_ID_SIZE);
    return ++c->nactors;
}

static uint32_t dict_node(struct tev_columns *c, const node_id_t *n)
{
    for (uint32_t i = c->nnodes; i > 0; i--) /* a handful: the latest first */
        if (memcmp(c->nodes + (i - 1) * NODE_ID_SIZE, n->b, NODE_ID_SIZE) == 0)
            return i;
    memcpy(c->nodes + c->nnodes * NODE_ID_SIZE, n->b, NODE_ID_SIZE);
    return ++c->nnodes;
}

/* Columns of recs[0..k) of w into c; the batch points at them. */
static void fill_batch(struct tev_columns *c, const window *w, const rec *recs, size_t k,
                       Rpc__TaskEventBatch *batch)
{
    c->nstrings = c->nnodes = c->nactors = 0;
    bool any_actor = false;
    memset(c->slots, 0, sizeof(c->slots));
    for (size_t i = 0; i < k; i++) {
        const rec *r = &recs[i];
        memcpy(c->ids + i * TASK_ID_SIZE, r->id.b, TASK_ID_SIZE);
        c->attempts[i] = r->attempt;
        c->states[i] = r->state;
        for (int t = 0; t < TS_COUNT; t++)
            c->ts[t][i] = r->ts[t];
        c->fn[i] = dict_string(c, astr(w, r->fn));
        c->name[i] = dict_string(c, astr(w, r->name));
        c->err[i] = dict_string(c, astr(w, r->err));
        c->node[i] = r->has_node ? dict_node(c, &r->node) : 0;
        c->actor[i] = r->actor ? dict_actor(c, (const uint8_t *)w->arena + r->actor - 1) : 0;
        any_actor |= r->actor != 0;
        c->pids[i] = r->pid;
        c->codes[i] = r->error_code;
        c->flags[i] = r->retried ? RPC__TASK_EVENT_FLAG__TASK_EVENT_RETRIED : 0;
    }
    batch->task_ids.data = c->ids;
    batch->task_ids.len = k * TASK_ID_SIZE;
#define COLUMN(field, array)                                                                       \
    do {                                                                                           \
        batch->n_##field = k;                                                                      \
        batch->field = (array);                                                                    \
    } while (0)
    COLUMN(attempts, c->attempts);
    COLUMN(states, c->states);
    COLUMN(pending_args_us, c->ts[TS_PENDING]);
    COLUMN(submitted_us, c->ts[TS_SUBMITTED]);
    COLUMN(scheduled_us, c->ts[TS_SCHEDULED]);
    COLUMN(running_us, c->ts[TS_RUNNING]);
    COLUMN(end_us, c->ts[TS_END]);
    COLUMN(function_refs, c->fn);
    COLUMN(name_refs, c->name);
    COLUMN(node_refs, c->node);
    COLUMN(worker_pids, c->pids);
    COLUMN(error_codes, c->codes);
    COLUMN(error_refs, c->err);
    COLUMN(flags, c->flags);
    if (any_actor) /* a column of zeros is left out */
        COLUMN(actor_refs, c->actor);
#undef COLUMN
    batch->n_strings = c->nstrings;
    batch->strings = c->strings;
    batch->node_ids.data = c->nodes;
    batch->node_ids.len = (size_t)c->nnodes * NODE_ID_SIZE;
    batch->actor_ids.data = c->actors;
    batch->actor_ids.len = (size_t)c->nactors * ACTOR_ID_SIZE;
}

/* Fold w, encode its records in batches of TEV_BATCH_MAX and send them.
 * No lock held: w is the flusher's alone once swapped out. Returns the
 * attempts sent; *lost counts the others. */
static uint64_t send_window(tev_buffer *b, cw_conn *gcs, const window *w, uint64_t *lost)
{
    if (b->cols == NULL)
        b->cols = malloc(sizeof(*b->cols));
    if (b->cols == NULL || !fold_window(&b->fold, w)) {
        *lost += w->n;
        return 0;
    }
    const folded *f = &b->fold;
    uint64_t sent = 0;
    size_t i = 0;
    bool first = true;
    while (i < f->n || first) {
        size_t k = f->n - i < TEV_BATCH_MAX ? f->n - i : TEV_BATCH_MAX;
        Rpc__TaskEventBatch batch = RPC__TASK_EVENT_BATCH__INIT;
        fill_batch(b->cols, w, f->recs + i, k, &batch);
        i += k;
        batch.pid = b->pid;
        if (first && w->ndrops) {
            batch.n_dropped_jobs = batch.n_dropped_counts = (size_t)w->ndrops;
            batch.dropped_jobs = (uint32_t *)w->drop_jobs;
            batch.dropped_counts = (uint64_t *)w->drop_counts;
        }
        first = false;
        if (k == 0 && batch.n_dropped_jobs == 0)
            break;
        if (cw_conn_send(gcs, MSG_TASK_EVENTS, &batch.base) == 0) {
            sent += k;
            pthread_mutex_lock(&b->mu);
            b->stats.batches++;
            pthread_mutex_unlock(&b->mu);
        } else {
            *lost += k;
        }
    }
    return sent;
}

/* The running task, once, as RUNNING into the active window (its function
 * and name come from the owner's record at the GCS). b->mu held. */
static void probe_running(tev_buffer *b)
{
    uint64_t id[TASK_ID_SIZE / 8], sched, start;
    uint32_t attempt, s1, s2;
    do {
        s1 = __atomic_load_n(&b->run.seq, __ATOMIC_ACQUIRE);
        for (size_t i = 0; i < TASK_ID_SIZE / 8; i++)
            id[i] = __atomic_load_n(&b->run.id[i], __ATOMIC_RELAXED);
        attempt = __atomic_load_n(&b->run.attempt, __ATOMIC_RELAXED);
        sched = __atomic_load_n(&b->run.scheduled_us, __ATOMIC_RELAXED);
        start = __atomic_load_n(&b->run.start_us, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&b->run.seq, __ATOMIC_RELAXED);
    } while ((s1 & 1) || s1 != s2);
    /* Only a run that has lasted a flush period: a short one ends before
     * anyone asks, and the owner reports it whole. (A RUNNING record that
     * reached the GCS after its FINISHED one was evicted would stay.) */
    if (start == 0 || wall_us() - start < (uint64_t)b->interval_ms * 1000 ||
        (start == b->reported_start && attempt == b->reported_attempt &&
         memcmp(id, b->reported_id, sizeof(id)) == 0))
        return;
    memcpy(b->reported_id, id, sizeof(id));
    b->reported_attempt = attempt;
    b->reported_start = start;
    update u = {
        .id = (const uint8_t *)id,
        .attempt = attempt,
        .state = RPC__TASK_STATE__TASK_RUNNING,
        .ts_slot = -1,
        .scheduled_us = sched,
        .running_us = start,
        .node = b->node.b,
        .pid = b->pid,
    };
    append(b, &u);
}

/* Swap the windows and send the full one. b->mu held on entry and exit;
 * released while sending. */
static void flush_locked(tev_buffer *b)
{
    probe_running(b);
    window *w = &b->win[b->active];
    b->active ^= 1;
    b->flush_asked = false;
    tev_gcs_fn get = b->gcs;
    void *arg = b->gcs_arg;
    pthread_mutex_unlock(&b->mu);
    uint64_t lost = 0, sent = 0;
    cw_conn *gcs = w->n || w->ndrops ? get(arg) : NULL;
    if (gcs)
        sent = send_window(b, gcs, w, &lost);
    else
        lost = w->n;
    window_reset(w);
    pthread_mutex_lock(&b->mu);
    b->stats.sent += sent;
    b->stats.dropped += lost;
    b->flushes_done++;
    pthread_cond_broadcast(&b->done_cv);
}

/* Nothing for the flusher to do until an event comes or a task starts
 * (an idle worker, an actor between calls, should not wake). b->mu held. */
static bool quiet(tev_buffer *b)
{
    uint64_t start = __atomic_load_n(&b->run.start_us, __ATOMIC_SEQ_CST);
    return !b->flush_asked && b->win[b->active].n == 0 &&
           (start == 0 || start == b->reported_start);
}

static void *flusher(void *arg)
{
    tev_buffer *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stopping) {
        if (quiet(b)) {
            /* Published before looking again: tev_running, which writes
             * first and then looks at idle, cannot slip between. */
            __atomic_store_n(&b->idle, true, __ATOMIC_SEQ_CST);
            if (quiet(b) && !b->stopping)
                pthread_cond_wait(&b->cv, &b->mu);
            __atomic_store_n(&b->idle, false, __ATOMIC_SEQ_CST);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)b->interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        while (!b->stopping && !b->flush_asked) {
            int rc = pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            if (rc == ETIMEDOUT)
                break;
        }
        flush_locked(b);
    }
    flush_locked(b); /* what came in while the last batch was sent */
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

tev_buffer *tev_new(const tev_opts *o)
{
    if (o == NULL || o->interval_ms <= 0)
        return NULL;
    tev_buffer *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&b->done_cv, NULL);
    b->interval_ms = o->interval_ms;
    b->max_records = o->max_records ? o->max_records : (size_t)TEV_FLUSH_AT * 10;
    b->pid = (int32_t)getpid();
    return b;
}

int tev_attach(tev_buffer *b, tev_gcs_fn gcs, void *arg, const node_id_t *node)
{
    if (b == NULL || gcs == NULL)
        return -1;
    pthread_mutex_lock(&b->mu);
    int rc = 0;
    if (!b->has_thread) {
        b->gcs = gcs;
        b->gcs_arg = arg;
        b->node = *node;
        b->stopping = false;
        rc = pthread_create(&b->thread, NULL, flusher, b) == 0 ? 0 : -1;
        b->has_thread = rc == 0;
        b->attached = rc == 0;
    }
    pthread_mutex_unlock(&b->mu);
    if (rc != 0)
        log_warn("task events off: cannot start their flusher thread");
    return rc;
}

void tev_stop(tev_buffer *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    bool join = b->has_thread;
    b->stopping = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (join)
        pthread_join(b->thread, NULL);
    pthread_mutex_lock(&b->mu);
    b->has_thread = false;
    b->attached = false;
    b->gcs = NULL;
    pthread_mutex_unlock(&b->mu);
}

void tev_free(tev_buffer *b)
{
    if (b == NULL)
        return;
    tev_stop(b);
    window_free(&b->win[0]);
    window_free(&b->win[1]);
    free(b->fold.recs);
    free(b->fold.index);
    free(b->cols);
    pthread_cond_destroy(&b->cv);
    pthread_cond_destroy(&b->done_cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void tev_flush(tev_buffer *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    if (b->has_thread && !b->stopping) {
        /* Two rounds: the one under way may have swapped before our
         * records came in. */
        uint64_t want = b->flushes_done + 2;
        while (b->has_thread && !b->stopping && b->flushes_done < want) {
            b->flush_asked = true;
            pthread_cond_signal(&b->cv);
            pthread_cond_wait(&b->done_cv, &b->mu);
        }
    }
    pthread_mutex_unlock(&b->mu);
}

void tev_get_stats(tev_buffer *b, tev_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    *out = b->stats;
    pthread_mutex_unlock(&b->mu);
}

/* ------------------------------------------------------------ records */

void tev_submitted(tev_buffer *b, const Rpc__TaskSpec *spec)
{
    if (b == NULL || spec->task_id.len != TASK_ID_SIZE)
        return;
    update u = {
        .id = spec->task_id.data,
        .attempt = spec->attempt,
        .state = RPC__TASK_STATE__TASK_SUBMITTED,
        .ts_slot = TS_SUBMITTED,
        .now_us = wall_us(),
        .function = spec->function,
        .name = spec->name,
        .actor = spec->actor_id.len == ACTOR_ID_SIZE ? spec->actor_id.data : NULL,
    };
    record(b, &u);
}

void tev_owner_state(tev_buffer *b, const task_id_t *id, uint32_t attempt, int state,
                     const char *function, const char *name, int error_code, const char *error)
{
    if (b == NULL)
        return;
    update u = {
        .id = id->b,
        .attempt = attempt,
        .state = state,
        .ts_slot = state == RPC__TASK_STATE__TASK_PENDING_ARGS ? TS_PENDING : TS_END,
        .now_us = wall_us(),
        .function = function,
        .name = name,
        .error = error,
        .error_code = error_code,
    };
    record(b, &u);
}

void tev_done(tev_buffer *b, const Rpc__TaskDone *m, bool retried)
{
    if (b == NULL || m->task_id.len != TASK_ID_SIZE)
        return;
    int code = m->status ? m->status->code : 0;
    update u = {
        .id = m->task_id.data,
        .attempt = m->attempt,
        .state = code == RAYC_OK           ? RPC__TASK_STATE__TASK_FINISHED
                 : code == RAYC_ECANCELLED ? RPC__TASK_STATE__TASK_CANCELLED
                                           : RPC__TASK_STATE__TASK_FAILED,
        .ts_slot = m->end_us ? -1 : TS_END,
        .now_us = m->end_us ? 0 : wall_us(),
        .scheduled_us = m->scheduled_us,
        .running_us = m->start_us,
        .end_us = m->end_us,
        .error = code != RAYC_OK && m->status ? m->status->message : NULL,
        .error_code = code,
        .retried = retried,
        .node = m->node_id.len == NODE_ID_SIZE ? m->node_id.data : NULL,
        .pid = m->worker_pid,
    };
    record(b, &u);
}

void tev_running(tev_buffer *b, const Rpc__TaskSpec *spec, uint64_t scheduled_us, uint64_t start_us)
{
    if (b == NULL || (spec && spec->task_id.len != TASK_ID_SIZE))
        return;
    uint64_t id[TASK_ID_SIZE / 8] = {0};
    if (spec)
        memcpy(id, spec->task_id.data, TASK_ID_SIZE);
    __atomic_fetch_add(&b->run.seq, 1, __ATOMIC_ACQ_REL); /* odd: writing */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (size_t i = 0; i < TASK_ID_SIZE / 8; i++)
        __atomic_store_n(&b->run.id[i], id[i], __ATOMIC_RELAXED);
    __atomic_store_n(&b->run.attempt, spec ? spec->attempt : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->run.scheduled_us, scheduled_us, __ATOMIC_RELAXED);
    __atomic_store_n(&b->run.start_us, spec ? start_us : 0, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&b->run.seq, 1, __ATOMIC_RELEASE);
    /* A flusher asleep for lack of work must see a task that may run long
     * (quiet() reads start_us after publishing idle). */
    if (spec && __atomic_load_n(&b->idle, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&b->mu);
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
}
