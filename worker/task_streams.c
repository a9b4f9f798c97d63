/*
 * task_streams.c -- the owner's side of streaming generators: the stream of
 * each generator task (see task_submitter.h, "Streaming generators", and
 * docs/generators.md).
 *
 * Items arrive as StreamItem frames, in order, before the attempt's
 * TaskDone: item k (0-based) is return k + 1 of the task. A retried attempt
 * (worker death) or a rebuild (an item lost with its node) yields the items
 * again from the first: the stream keeps only the first copy of each
 * (generators are deterministic, as in Ray), except that an item waiting to
 * be rebuilt takes the new copy. The stream hands items out in order, one
 * reference each, then the error item when the generator failed for good,
 * then RAYC_EOF. With backpressure every item taken is acknowledged to the
 * worker (StreamAck) so it may yield more.
 *
 * Runs under the submitter's lock (deps.mu) like the rest of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "task_submitter_internal.h"

/* ------------------------------------------------------------ records */

rayc_stream *tsub__stream_new(task_submitter *ts, otask *t, const tsub_request *rq)
{
    rayc_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ts = ts;
    s->task = t->id;
    s->backpressure = rq->backpressure;
    s->is_actor = rq->actor != NULL;
    if (rq->actor)
        s->actor = *rq->actor;
    s->next = ts->streams;
    if (ts->streams)
        ts->streams->prev = s;
    ts->streams = s;
    t->stream = s;
    return s;
}

static void stream_free(rayc_stream *s)
{
    task_submitter *ts = s->ts;
    if (ts) {
        if (s->prev)
            s->prev->next = s->next;
        else
            ts->streams = s->next;
        if (s->next)
            s->next->prev = s->prev;
    }
    free(s);
}

void tsub__stream_detach(rayc_stream *s)
{
    s->task_gone = true;
    s->ended = true;
    if (s->closed)
        stream_free(s);
}

bool tsub_has_streams(const task_submitter *ts)
{
    return ts->streams != NULL;
}

void tsub__streams_orphan(task_submitter *ts)
{
    for (rayc_stream *s = ts->streams, *next; s; s = next) {
        next = s->next;
        s->ts = NULL;
        s->task_gone = s->ended = true;
        s->prev = s->next = NULL;
        if (s->closed)
            free(s);
    }
    ts->streams = NULL;
}

task_id_t tsub_stream_task(const rayc_stream *s)
{
    return s->task;
}

/* The entry of item index (1-based return index). mu held. */
static ref_entry *item_entry(task_submitter *ts, const rayc_stream *s, uint32_t index)
{
    object_id_t oid = object_id_for_return(&s->task, index);
    return reft_find(ts->d.refs, &oid);
}

/* Drop the stream's reference on return index. mu held. */
static void release_item(task_submitter *ts, rayc_stream *s, uint32_t index)
{
    ref_entry *e = item_entry(ts, s, index);
    if (e && e->refs > 0) {
        e->refs--;
        reft_maybe_finalize(ts->d.refs, e);
    }
}

/* ------------------------------------------------------------ ending */

/* A new owned, sealed entry for return index that stands for an error. */
static void add_error_item(task_submitter *ts, rayc_stream *s, int status, const char *message)
{
    object_id_t oid = object_id_for_return(&s->task, s->nitems + 1);
    ref_entry *e = reft_get_or_add(ts->d.refs, &oid, NULL);
    if (e == NULL) {
        log_error("stream: out of memory for an error item");
        return;
    }
    e->owned = true;
    e->refs = 1;
    e->sealed = true;
    e->status = status;
    free(e->error);
    e->error = strdup(message);
    s->failed = true;
}

/* Items being rebuilt (unsealed) that will not come: lost, with why. */
static void fail_pending_items(task_submitter *ts, rayc_stream *s, int status, const char *why)
{
    for (uint32_t i = 1; i <= s->nitems; i++) {
        ref_entry *e = item_entry(ts, s, i);
        if (e == NULL || e->sealed || e->status != RAYC_OK)
            continue;
        e->status = status;
        e->sealed = true;
        free(e->error);
        e->error = strdup(why);
    }
}

void tsub__stream_fail(task_submitter *ts, rayc_stream *s, int status, const char *message)
{
    if (s->ended) {
        fail_pending_items(ts, s, status, message);
        return;
    }
    s->ended = true;
    if (!s->closed)
        add_error_item(ts, s, status, message);
}

bool tsub__stream_done(task_submitter *ts, rayc_stream *s, uint32_t num_items)
{
    if (s->ended) {
        /* A rebuild that did not yield what it was rebuilding. */
        fail_pending_items(ts, s, RAYC_EOBJECT_LOST,
                           "a generator item was lost with its node and not yielded again");
    } else {
        s->ended = true;
        if (num_items > s->nitems && !s->closed) {
            char why[160];
            snprintf(why, sizeof(why), "the generator yielded %u items; only %u arrived", num_items,
                     s->nitems);
            add_error_item(ts, s, RAYC_EOBJECT_LOST, why);
        }
    }
    return s->remote && s->alive > 0;
}

bool tsub__stream_item_gone(rayc_stream *s, const object_id_t *oid)
{
    uint32_t index = object_id_index(oid);
    if (index >= 1 && index <= s->nitems && s->alive > 0)
        s->alive--;
    return s->alive == 0;
}

void tsub__stream_rebuild(task_submitter *ts, rayc_stream *s)
{
    for (uint32_t i = 1; i <= s->nitems; i++) {
        ref_entry *e = item_entry(ts, s, i);
        if (e == NULL || !e->in_store || !e->remote || e->pinned || e->status != RAYC_OK)
            continue;
        e->sealed = e->in_store = e->remote = false;
    }
}

void tsub__stream_spec(const rayc_stream *s, Rpc__TaskSpec *spec)
{
    spec->streaming = true;
    /* A stream nobody reads any more (ended, closed) must not wait for acks. */
    spec->generator_backpressure = s->ended || s->closed ? 0 : s->backpressure;
    spec->stream_consumed = s->taken < s->nitems ? s->taken : s->nitems;
}

/* ------------------------------------------------------------ the caller */

/* Tell the generator's worker how many items were taken (backpressure) and
 * received (flow control); with cancel, that the stream is closed. */
static void send_ack(task_submitter *ts, rayc_stream *s, bool cancel)
{
    Rpc__StreamAck a = RPC__STREAM_ACK__INIT;
    a.cancel = cancel;
    a.task_id.data = s->task.b;
    a.task_id.len = TASK_ID_SIZE;
    a.consumed = s->taken < s->nitems ? s->taken : s->nitems;
    a.attempt = s->attempt;
    a.received_bytes = s->recv_bytes;
    s->recv_acked = s->recv_bytes;
    if (s->is_actor) {
        if (ts->d.stream_ack)
            ts->d.stream_ack(ts->d.actor_arg, &s->actor, &a);
        return;
    }
    cw_conn_send_batched_msg(ts->d.raylet, MSG_STREAM_ACK, &a.base);
}

int tsub_stream_take(rayc_stream *s, object_id_t *out)
{
    if (s->closed)
        return RAYC_EINVAL;
    if (s->taken < s->nitems + (s->failed ? 1u : 0u)) {
        *out = object_id_for_return(&s->task, ++s->taken);
        if (s->backpressure > 0 && s->ts && !s->ended)
            send_ack(s->ts, s, false);
        return 0;
    }
    return s->ended ? RAYC_EOF : RAYC_ETIMEDOUT;
}

void tsub_stream_close(rayc_stream *s)
{
    task_submitter *ts = s->ts;
    if (s->closed)
        return;
    s->closed = true;
    if (ts) {
        uint32_t total = s->nitems + (s->failed ? 1u : 0u);
        for (uint32_t i = s->taken + 1; i <= total; i++)
            release_item(ts, s, i);
        s->taken = total;
    }
    if (ts == NULL || s->task_gone) {
        stream_free(s);
        return;
    }
    otask *t = s->ended ? NULL : tsub__find(ts, s->task.b);
    if (t && s->is_actor && t->submitted) {
        /* An actor's raylet does not know the call: the ack path tells the
         * worker running it. */
        t->cancelled = true;
        send_ack(ts, s, true);
    } else if (t) {
        tsub__cancel(ts, t, false); /* may finish t, and so free s */
    }
}

/* ------------------------------------------------------------ items */

/* e takes the value an item frame carries. True if it lives on another node. */
static bool take_item(task_submitter *ts, ref_entry *e, const Rpc__StreamItem *m)
{
    if (m->in_store)
        return tsub__take_store(ts, e, m->size, m->pinned, m->offset, &m->node_id);
    if (e->data == NULL || e->in_store) {
        void *copy = malloc(m->data.len ? m->data.len : 1);
        if (copy == NULL) {
            e->status = RAYC_ENOMEM;
            e->sealed = true;
            return false;
        }
        if (m->data.len)
            memcpy(copy, m->data.data, m->data.len);
        e->data = copy;
        e->size = m->data.len;
        e->in_store = false;
    } /* else a rebuilt copy of a value we hold: keep ours, readers may view it */
    e->sealed = true;
    return false;
}

/* An item frame nobody wants (closed stream, unknown task): a store copy
 * made for us is freed, or (an item we still hold) only the extra pin. */
static void drop_item(task_submitter *ts, const object_id_t *oid, const Rpc__StreamItem *m,
                      bool still_ours)
{
    if (!m->in_store)
        return;
    if (!still_ours) {
        storec_delete(ts->d.store, oid, m->pinned);
    } else if (m->pinned) {
        const object_id_t *ids[1] = {oid};
        storec_release(ts->d.store, ids, 1);
    }
}

/* An item again (retry, rebuild): only an item waiting to be rebuilt takes
 * it. True if the rebuilt item may unblock deferred tasks. */
static bool again(task_submitter *ts, rayc_stream *s, const object_id_t *oid,
                  const Rpc__StreamItem *m)
{
    ref_entry *e = reft_find(ts->d.refs, oid);
    if (e == NULL) {
        drop_item(ts, oid, m, false); /* released by the caller already */
        return false;
    }
    if (!e->sealed && e->status == RAYC_OK) {
        s->remote = take_item(ts, e, m) || s->remote;
        return true;
    }
    /* Ours already; a store copy on another node is as good as the one we
     * know of (which may be on a dead node): point at the newest. */
    if (m->in_store && e->in_store && e->remote && !e->pinned && m->node_id.len == NODE_ID_SIZE)
        memcpy(e->node.b, m->node_id.data, NODE_ID_SIZE);
    drop_item(ts, oid, m, true);
    return false;
}

/* The next item of s: a new owned entry holding the stream's reference. */
static void add_item(task_submitter *ts, rayc_stream *s, const object_id_t *oid,
                     const Rpc__StreamItem *m)
{
    s->nitems++;
    if (s->closed) {
        drop_item(ts, oid, m, false);
        return;
    }
    ref_entry *e = reft_get_or_add(ts->d.refs, oid, NULL);
    if (e == NULL) {
        drop_item(ts, oid, m, false);
        add_error_item(ts, s, RAYC_ENOMEM, "out of memory for a generator item");
        s->ended = true;
        return;
    }
    e->owned = true;
    e->refs = 1;
    s->alive++;
    s->remote = take_item(ts, e, m) || s->remote;
}

/* Flow control: the worker learns every quarter window what arrived. */
static void count_received(task_submitter *ts, rayc_stream *s, const Rpc__StreamItem *m)
{
    if (m->attempt < s->attempt)
        return; /* a late item of an attempt that is over */
    if (m->attempt > s->attempt) {
        s->attempt = m->attempt;
        s->recv_bytes = s->recv_acked = 0;
    }
    s->recv_bytes += STREAM_ITEM_COST(m);
    if (s->recv_bytes - s->recv_acked >= STREAM_WINDOW_BYTES / 4)
        send_ack(ts, s, false);
}

int tsub_on_stream_item(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    task_submitter *ts = arg;
    (void)type;
    pthread_mutex_lock(ts->d.mu);
    tsub_stream_item_locked(ts, (Rpc__StreamItem *)msg);
    pthread_mutex_unlock(ts->d.mu);
    return 0;
}

void tsub_stream_item_locked(task_submitter *ts, Rpc__StreamItem *m)
{
    if (m->task_id.len != TASK_ID_SIZE || m->index >= OBJECT_INDEX_PUT_FLAG - 2)
        return;
    task_id_t tid;
    memcpy(tid.b, m->task_id.data, TASK_ID_SIZE);
    object_id_t oid = object_id_for_return(&tid, m->index + 1);
    otask *t = tsub__find(ts, tid.b);
    rayc_stream *s = t ? t->stream : NULL;
    bool moved = false;
    if (s)
        count_received(ts, s, m);
    if (s == NULL || (s->ended && m->index >= s->nitems) || m->index > s->nitems) {
        /* Not a stream of ours, or out of order (which the one path its
         * items take rules out): nothing is handed out; a copy of an item
         * we hold keeps its object. */
        log_warn("dropping generator item %u of a task %s", m->index,
                 s ? "whose stream is further back" : "that is not running here");
        drop_item(ts, &oid, m, reft_find(ts->d.refs, &oid) != NULL || (s && m->index > s->nitems));
    } else if (m->index < s->nitems)
        moved = again(ts, s, &oid, m);
    else
        add_item(ts, s, &oid, m);
    if (moved)
        tsub__run_deferred(ts);
}
