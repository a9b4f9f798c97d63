/*
 * gcs_task_store.c -- the task table in the GCS storage; see
 * gcs_task_store.h. Runs in the GCS event-loop thread only.
 */
#include "gcs_task_store.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rayc.h"

#define COMPACT_RECORDS 200000 /* stored records that force a compaction without a bound */
#define COMPACT_CHUNKS  1000   /* chunks that force one (a trickle of small flushes) */

struct gcs_task_store {
    gcs_storage *st;
    gcs_task_table *t;
    struct event *timer;
    uint64_t flushed;     /* table seq at the last flush */
    uint64_t first, next; /* live chunks: [first, next) */
    uint64_t stored;      /* records in the live chunks (copies counted) */
    uint64_t limit;       /* stored records that call for a compaction */
    uint64_t persisted, loaded;
    bool ready;   /* loaded: flushes may run */
    bool compact; /* the next flush rewrites the table and drops older chunks */
};

/* One chunk's put: how many records it carried. */
typedef struct {
    gcs_task_store *s;
    size_t n;
} put_arg;

static void key_of(uint64_t chunk, uint8_t key[8])
{
    for (int i = 7; i >= 0; i--, chunk >>= 8)
        key[i] = (uint8_t)chunk;
}

static uint64_t chunk_of(const uint8_t *key)
{
    uint64_t c = 0;
    for (int i = 0; i < 8; i++)
        c = c << 8 | key[i];
    return c;
}

static void on_put(void *arg, int status)
{
    put_arg *p = arg;
    if (status == RAYC_OK)
        p->s->persisted += p->n;
    else if (status != RAYC_ECANCELLED)
        log_warn("task table: a chunk of %zu records was not stored: %s", p->n,
                 rayc_strerror(status));
    free(p);
}

static void on_del(void *arg, int status)
{
    (void)arg;
    (void)status;
}

static void emit_chunk(void *arg, const Rpc__TaskEventBatch *b)
{
    gcs_task_store *s = arg;
    size_t len;
    uint8_t *buf = gcs_storage_pack(&b->base, &len);
    put_arg *p = malloc(sizeof(*p));
    if (buf == NULL || p == NULL) {
        free(buf);
        free(p);
        log_warn("task table: out of memory, a chunk is not stored");
        return;
    }
    *p = (put_arg){s, b->n_attempts};
    uint8_t key[8];
    key_of(s->next++, key);
    gcs_storage_put(s->st, GCS_TABLE_TASKS, key, sizeof(key), buf, len, on_put, p);
    s->stored += b->n_attempts;
    free(buf);
}

/* Write what changed since the last flush; or, compacting, the whole table
 * as fresh chunks, then drop the older ones (puts go first: a crash in
 * between leaves copies that merge, never a gap). */
static void flush(gcs_task_store *s)
{
    uint64_t seq = gcs_task_seq(s->t);
    if (!s->ready || (!s->compact && seq == s->flushed) || !gcs_storage_is_up(s->st))
        return;
    bool compact = s->compact || s->stored >= s->limit || s->next - s->first >= COMPACT_CHUNKS;
    uint64_t old_first = s->first, old_next = s->next;
    if (compact) {
        s->first = s->next;
        s->stored = 0;
    }
    long n = gcs_task_export(s->t, compact ? 0 : s->flushed, GCS_TASK_STORE_CHUNK, emit_chunk, s);
    if (n < 0) {
        log_warn("task table: out of memory, not stored this time");
        s->first = old_first; /* nothing went out: the old chunks stay live */
        return;
    }
    s->flushed = seq;
    s->compact = false;
    if (!compact)
        return;
    for (uint64_t c = old_first; c < old_next; c++) {
        uint8_t key[8];
        key_of(c, key);
        gcs_storage_del(s->st, GCS_TABLE_TASKS, key, sizeof(key), on_del, NULL);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg);
}

static int entry_cmp(const void *a, const void *b)
{
    const gcs_storage_entry *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static void on_loaded(void *arg, int status, const gcs_storage_entry *e, size_t n)
{
    gcs_task_store *s = arg;
    if (status == RAYC_ECANCELLED)
        return;
    if (status != RAYC_OK)
        log_warn("task table: cannot load it from storage (%s): starting empty",
                 rayc_strerror(status));
    gcs_storage_entry *sorted = n ? malloc(n * sizeof(*sorted)) : NULL;
    if (n && sorted == NULL) {
        log_warn("task table: out of memory loading it: starting empty");
        n = 0;
    }
    if (n) {
        memcpy(sorted, e, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), entry_cmp);
    }
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (sorted[i].key_len != 8)
            continue;
        uint64_t c = chunk_of(sorted[i].key);
        lo = c < lo ? c : lo;
        hi = c > hi ? c : hi;
        Rpc__TaskEventBatch *b =
            rpc__task_event_batch__unpack(NULL, sorted[i].val_len, sorted[i].val);
        if (b == NULL) {
            log_warn("task table: skipping a malformed stored chunk (%zu bytes)",
                     sorted[i].val_len);
            continue;
        }
        gcs_task_add_batch(s->t, b, NULL);
        s->loaded += b->task_ids.len / TASK_ID_SIZE;
        rpc__task_event_batch__free_unpacked(b, NULL);
    }
    free(sorted);
    if (lo != UINT64_MAX) {
        s->first = lo;
        s->next = hi + 1;
        s->compact = true; /* rewrite the table as loaded (bounded), drop the chunks read */
        log_info("task table: %llu records loaded from %zu stored chunks, %zu kept",
                 (unsigned long long)s->loaded, n, gcs_task_count(s->t));
    }
    s->ready = true;
}

gcs_task_store *gcs_task_store_new(struct event_base *base, gcs_storage *st, gcs_task_table *t,
                                   int64_t period_ms, size_t bound)
{
    gcs_task_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->st = st;
    s->t = t;
    s->limit = bound ? 2 * (uint64_t)bound : COMPACT_RECORDS;
    s->timer = event_new(base, -1, EV_PERSIST, on_timer, s);
    if (s->timer == NULL) {
        free(s);
        return NULL;
    }
    if (period_ms <= 0)
        period_ms = 1000;
    struct timeval tv = {(time_t)(period_ms / 1000), (suseconds_t)(period_ms % 1000) * 1000};
    event_add(s->timer, &tv);
    gcs_storage_get_all(st, GCS_TABLE_TASKS, on_loaded, s);
    return s;
}

void gcs_task_store_free(gcs_task_store *s)
{
    if (s == NULL)
        return;
    event_free(s->timer);
    free(s);
}

uint64_t gcs_task_store_persisted(const gcs_task_store *s)
{
    return s ? s->persisted : 0;
}

uint64_t gcs_task_store_loaded(const gcs_task_store *s)
{
    return s ? s->loaded : 0;
}
