/*
 * generator.c -- the worker's side of streaming generators (docs/
 * generators.md): rayc_yield and rayc_yield_alloc.
 *
 * Each item is sent to the owner the moment it is yielded: a StreamItem
 * frame to the raylet (batched with the frames of a burst, so a fast
 * generator of small items costs few writes), which passes it on to the
 * owner; a large item is sealed in the store first and the frame says so.
 * Item k of an attempt is return k + 1 of the task: a retry yields the same
 * ids again and the owner keeps the first copy of each.
 *
 * Backpressure: with generator_backpressure = k, a yield waits while k items
 * are sent and not yet consumed (StreamAck from the owner). Flow control:
 * it also waits while more than STREAM_WINDOW_BYTES of items are on their
 * way (msg.h): an owner that does not read holds the generator up. Cancel: a
 * CancelTask for a running generator marks it; its next yield returns
 * RAYC_ECANCELLED. Both arrive on the raylet connection, which the
 * executor's watcher thread reads while task code runs; a yield that must
 * wait reads it too (cw_conn_pump: it waits for the watcher's reads), and
 * otherwise does so at most every GEN_POLL_MS without waiting, so a
 * generator stops soon after its stream is closed. An actor's method learns
 * of both from the actor's main thread (gen_cv).
 *
 * Threading: a generator yields from the thread that runs it; acks and
 * cancels may be read by any thread (x->mu guards what they change).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "log.h"
#include "task_executor_internal.h"
#include "util.h"

#define GEN_POLL_MS 2   /* a yield reads the connection at most this often unless it waits */
#define GEN_WAIT_MS 100 /* one slice of a backpressure wait */
/* Item k is return k + 1 of the task: object indexes stop below the put flag. */
#define GEN_MAX_ITEMS (OBJECT_INDEX_PUT_FLAG - 2)

/* ------------------------------------------------------------ the list */

void tex__gen_begin(rayc_ctx *ctx, tex_gen *g)
{
    task_executor *x = ctx->x;
    memset(g, 0, sizeof(*g));
    memcpy(g->task.b, ctx->spec->task_id.data, TASK_ID_SIZE);
    g->backpressure = ctx->spec->generator_backpressure;
    g->consumed = ctx->spec->stream_consumed;
    g->attempt = ctx->spec->attempt;
    g->polled_ms = now_ms();
    pthread_mutex_lock(&x->mu);
    g->next = x->gens;
    x->gens = g;
    pthread_mutex_unlock(&x->mu);
    ctx->gen = g;
}

bool tex__gen_cancel(task_executor *x, const uint8_t *task_id)
{
    bool found = false;
    pthread_mutex_lock(&x->mu);
    for (tex_gen *g = x->gens; g && !found; g = g->next) {
        if (memcmp(g->task.b, task_id, TASK_ID_SIZE) == 0) {
            g->cancelled = true;
            found = true;
        }
    }
    pthread_cond_broadcast(&x->gen_cv);
    pthread_mutex_unlock(&x->mu);
    return found;
}

/* ------------------------------------------------------------ items */

/* The owner learns of the next item (inline bytes, or a sealed store
 * object of size bytes). */
static int send_item(rayc_ctx *ctx, const void *data, size_t size, bool in_store)
{
    tex_gen *g = ctx->gen;
    Rpc__StreamItem m = RPC__STREAM_ITEM__INIT;
    m.task_id = ctx->spec->task_id;
    /* No owner id: the raylet knows the task's owner (and adds it for the
     * owner's raylet when the owner is on another node). */
    m.attempt = ctx->spec->attempt;
    m.index = g->yielded;
    m.size = size;
    m.in_store = in_store;
    if (!in_store) {
        m.data.data = (uint8_t *)data;
        m.data.len = size;
    }
    if (ctx->how && ctx->how->item) {
        ctx->how->item(ctx->how->reply_arg, ctx->spec, &m);
    } else if (cw_conn_send_batched_msg(ctx->x->d.raylet, MSG_STREAM_ITEM, &m.base) != 0) {
        return rayc__error(RAYC_ECONN, "rayc_yield: lost the raylet");
    }
    g->yielded++;
    g->sent_bytes += STREAM_ITEM_COST(&m);
    return 0;
}

static object_id_t next_item_id(const rayc_ctx *ctx)
{
    return object_id_for_return(&ctx->task, ctx->gen->yielded + 1);
}

/* A store object for the next item, to write at the returned address. A
 * copy already here (a rebuild on the node that holds the item) is the
 * item: the writes go to scratch memory (*existed). NULL with *rc. */
static uint8_t *store_space(rayc_ctx *ctx, size_t size, bool *existed, int *rc)
{
    const tex_deps *d = &ctx->x->d;
    object_id_t id = next_item_id(ctx);
    uint64_t off;
    *existed = false;
    *rc = storec_create(d->store, &id, size, &off);
    if (*rc == RAYC_EEXIST) {
        uint8_t *scratch = malloc(size);
        if (scratch == NULL) {
            *rc = rayc__error(RAYC_ENOMEM, "out of memory for a %zu-byte item", size);
            return NULL;
        }
        *existed = true;
        *rc = 0;
        return scratch;
    }
    return *rc == 0 ? d->arena + off : NULL;
}

/* The store item at p is written: seal it (or drop the scratch) and send. */
static int send_store_item(rayc_ctx *ctx, uint8_t *p, size_t size, bool existed)
{
    object_id_t id = next_item_id(ctx);
    if (existed)
        free(p);
    else
        storec_seal(ctx->x->d.store, &id, false);
    return send_item(ctx, NULL, size, true);
}

/* Send the rayc_yield_alloc item, if one waits. */
static int flush_pending(rayc_ctx *ctx)
{
    tex_gen *g = ctx->gen;
    if (!g->pending)
        return 0;
    g->pending = false;
    if (g->pending_in_store)
        return send_store_item(ctx, g->pending_data, g->pending_size, g->pending_existed);
    int rc = send_item(ctx, g->pending_data, g->pending_size, false);
    free(g->pending_data);
    return rc;
}

/* The generator failed or was cancelled: its unsent item is freed. */
static void drop_pending(rayc_ctx *ctx)
{
    tex_gen *g = ctx->gen;
    if (!g->pending)
        return;
    g->pending = false;
    if (g->pending_in_store && !g->pending_existed) {
        object_id_t id = next_item_id(ctx);
        storec_seal(ctx->x->d.store, &id, false);
        storec_delete(ctx->x->d.store, &id, false);
    } else {
        free(g->pending_data);
    }
}

bool tex__gen_end(rayc_ctx *ctx, bool ok)
{
    task_executor *x = ctx->x;
    tex_gen *g = ctx->gen;
    pthread_mutex_lock(&x->mu);
    bool cancelled = g->cancelled;
    for (tex_gen **pp = &x->gens; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    pthread_mutex_unlock(&x->mu);
    if (ok && !cancelled && flush_pending(ctx) != 0)
        log_warn("generator %s: its last item could not be sent", ctx->spec->function);
    drop_pending(ctx);
    return cancelled;
}

/* ------------------------------------------------------------ waiting */

/* Read frames for up to ms: on the raylet connection for a task (someone
 * must read it), else (an actor's method, whose acks another thread reads)
 * wait for a change. 0, or RAYC_ECONN. */
static int read_frames(rayc_ctx *ctx, int ms)
{
    task_executor *x = ctx->x;
    if (ctx->how == NULL || ctx->how->item == NULL)
        return cw_conn_pump(x->d.raylet, ms);
    if (ms == 0)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&x->mu);
    pthread_cond_timedwait(&x->gen_cv, &x->mu, &ts);
    pthread_mutex_unlock(&x->mu);
    return 0;
}

/* Before an item: not cancelled, and room under the backpressure bound
 * (waiting for acks while there is none). 0 or a code. */
static int wait_room(rayc_ctx *ctx, const char *what)
{
    task_executor *x = ctx->x;
    tex_gen *g = ctx->gen;
    for (;;) {
        pthread_mutex_lock(&x->mu);
        uint32_t consumed = g->consumed;
        uint64_t acked = g->acked_bytes;
        bool cancelled = g->cancelled;
        pthread_mutex_unlock(&x->mu);
        if (cancelled)
            return rayc__error(RAYC_ECANCELLED, "%s: the stream was closed or cancelled", what);
        bool full = (g->backpressure > 0 && g->yielded - consumed >= g->backpressure) ||
                    g->sent_bytes - acked > STREAM_WINDOW_BYTES;
        uint64_t now = now_ms();
        if (!full && now - g->polled_ms < GEN_POLL_MS)
            return 0;
        g->polled_ms = now;
        if (read_frames(ctx, full ? GEN_WAIT_MS : 0) != 0)
            return rayc__error(RAYC_ECONN, "%s: lost the raylet", what);
    }
}

/* Common start of rayc_yield*: a generator, its previous item sent, room. */
static int yield_ready(rayc_ctx *ctx, const char *what)
{
    if (ctx == NULL)
        return rayc__error(RAYC_EINVAL, "%s: NULL context", what);
    if (ctx->gen == NULL)
        return rayc__error(RAYC_EINVAL, "%s: this task was not submitted with rayc_submit_stream",
                           what);
    int rc = flush_pending(ctx);
    if (rc == 0 && ctx->gen->yielded >= GEN_MAX_ITEMS)
        rc = rayc__error(RAYC_EINVAL, "%s: a generator yields at most %u items", what,
                         GEN_MAX_ITEMS);
    return rc != 0 ? rc : wait_room(ctx, what);
}

/* ------------------------------------------------------------ task API */

int rayc_yield(rayc_ctx *ctx, const void *data, size_t size)
{
    if (size > 0 && data == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_yield: NULL data");
    int rc = yield_ready(ctx, "rayc_yield");
    if (rc != 0)
        return rc;
    if (size <= ctx->x->d.inline_max)
        return send_item(ctx, data, size, false);
    bool existed;
    uint8_t *p = store_space(ctx, size, &existed, &rc);
    if (p == NULL)
        return rc;
    memcpy(p, data, size);
    return send_store_item(ctx, p, size, existed);
}

void *rayc_yield_alloc(rayc_ctx *ctx, size_t size)
{
    if (yield_ready(ctx, "rayc_yield_alloc") != 0)
        return NULL;
    tex_gen *g = ctx->gen;
    int rc = 0;
    uint8_t *p;
    bool in_store = size > ctx->x->d.inline_max, existed = false;
    if (in_store) {
        p = store_space(ctx, size, &existed, &rc);
    } else if ((p = malloc(size ? size : 1)) == NULL) {
        rayc__error(RAYC_ENOMEM, "out of memory for a %zu-byte item", size);
    }
    if (p == NULL)
        return NULL;
    g->pending = true;
    g->pending_in_store = in_store;
    g->pending_existed = existed;
    g->pending_data = p;
    g->pending_size = size;
    return p;
}
