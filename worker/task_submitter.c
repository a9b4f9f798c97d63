/*
 * task_submitter.c -- see task_submitter.h.
 *
 * A task's record (otask) lives in an id_map keyed by task id from submit
 * until its returns are known (or, as lineage, until its remote results are
 * released). Specs are built on the stack from the request and sent as one
 * SubmitTask frame, which the record keeps for retries. A deferred task keeps
 * its request, resolved arguments and inline bytes in one block until its
 * arguments are known, then is built and sent the same way.
 */
#include "task_submitter_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "frame.h"
#include "log.h"

#define OTASK_INITIAL_BUCKETS 256

/* ------------------------------------------------------------ pure parts */

tsub_arg_state tsub_arg_state_of(const ref_entry *e)
{
    if (e == NULL)
        return TSUB_ARG_READY;
    if (e->status != RAYC_OK)
        return TSUB_ARG_FAILED;
    if (e->owned && !e->sealed && !e->in_store)
        return TSUB_ARG_PENDING;
    return TSUB_ARG_READY;
}

void tsub_resolve_arg(tsub_arg *a, const ref_entry *e, size_t inline_max)
{
    if (e == NULL || !a->is_ref)
        return;
    if (!e->in_store && e->sealed && e->owned && e->size <= inline_max) {
        a->is_ref = false; /* inline the small value */
        a->data = e->data;
        a->size = e->size;
        return;
    }
    a->size = e->size;
    if (e->in_store) {
        a->node = e->node;
        a->has_node = true;
    }
}

int tsub_retries_for(int max_retries)
{
    return max_retries == 0 ? TSUB_DEFAULT_MAX_RETRIES : (max_retries < 0 ? 0 : max_retries);
}

bool tsub_should_retry(int status, bool retry_exceptions, bool cancelled, int retries_left)
{
    bool retryable = status == RAYC_EWORKER_DIED || status == RAYC_EOOM ||
                     status == RAYC_EOBJECT_LOST || (status == RAYC_ETASK && retry_exceptions);
    return retryable && !cancelled && retries_left != 0;
}

/* ------------------------------------------------------------ table */

task_submitter *tsub_new(const tsub_deps *deps)
{
    task_submitter *ts = calloc(1, sizeof(*ts));
    if (ts == NULL)
        return NULL;
    ts->d = *deps;
    if (id_map_init(&ts->tasks, ID_MAP_KEY_OFF(otask, hnode, id), TASK_ID_SIZE,
                    OTASK_INITIAL_BUCKETS) != 0) {
        free(ts);
        return NULL;
    }
    return ts;
}

static void otask_free(otask *t)
{
    free(t->frame);
    free(t->held);
    free(t->def);
    free(t);
}

void tsub_free(task_submitter *ts)
{
    if (ts == NULL)
        return;
    id_map_iter it;
    id_map_iter_init(&ts->tasks, &it);
    for (id_node *n; (n = id_map_iter_next(&ts->tasks, &it)) != NULL;)
        otask_free(ID_MAP_ENTRY(n, otask, hnode));
    id_map_destroy(&ts->tasks);
    tsub__streams_orphan(ts);
    for (int b = 0; b < FNAME_BUCKETS; b++)
        for (fname *f = ts->fnames[b], *next; f; f = next) {
            next = f->next;
            free(f);
        }
    free(ts);
}

size_t tsub_count(const task_submitter *ts)
{
    return id_map_count(&ts->tasks);
}

otask *tsub__find(task_submitter *ts, const uint8_t *id)
{
    return ID_MAP_ENTRY(id_map_find(&ts->tasks, id), otask, hnode);
}

static void deferred_remove(task_submitter *ts, otask *t)
{
    for (otask **pp = &ts->deferred; *pp; pp = &(*pp)->dnext) {
        if (*pp == t) {
            *pp = t->dnext;
            return;
        }
    }
}

/* ------------------------------------------------------------ ending */

/* Give back the references a task held on its arguments. mu held. */
static void release_held(task_submitter *ts, otask *t)
{
    for (size_t i = 0; i < t->nheld; i++) {
        ref_entry *e = reft_find(ts->d.refs, &t->held[i]);
        if (e && e->refs > 0) {
            e->refs--;
            reft_maybe_finalize(ts->d.refs, e);
        }
    }
    t->nheld = 0;
}

/* Every return of t becomes the error (status, message). mu held. */
void tsub__fail_returns(task_submitter *ts, otask *t, int status, const char *message)
{
    if (t->stream) {
        tsub__stream_fail(ts, t->stream, status, message);
        return;
    }
    for (uint32_t i = 1; i <= t->num_returns; i++) {
        object_id_t oid = object_id_for_return(&t->id, i);
        ref_entry *e = reft_find(ts->d.refs, &oid);
        if (e == NULL)
            continue;
        e->status = status;
        e->sealed = true;
        free(e->error);
        e->error = strdup(message);
    }
}

/* t's record goes (off the deferred list too, if it is there). mu held. */
void tsub__finish(task_submitter *ts, otask *t)
{
    if (t->def)
        deferred_remove(ts, t);
    release_held(ts, t);
    id_map_remove(&ts->tasks, &t->hnode);
    if (t->stream)
        tsub__stream_detach(t->stream); /* may free it (closed already) */
    otask_free(t);
}

/* ------------------------------------------------------------ sending */

/* Pack spec into a SubmitTask frame, keep it on t and send it. mu held. */
static int send_spec(task_submitter *ts, otask *t, Rpc__TaskSpec *spec)
{
    /* SubmitTask and PushTask are the same message: a spec. */
    Rpc__SubmitTask st = RPC__SUBMIT_TASK__INIT;
    Rpc__PushTask pt = RPC__PUSH_TASK__INIT;
    st.spec = pt.spec = spec;
    ProtobufCMessage *m = t->is_actor ? &pt.base : &st.base;
    size_t len = msg_frame_size(m);
    uint8_t *frame = malloc(len);
    if (frame == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    msg_encode(t->is_actor ? MSG_PUSH_TASK : MSG_SUBMIT_TASK, m, frame);
    free(t->frame);
    t->frame = frame;
    t->frame_len = len;
    t->submitted = true;
    tev_submitted(ts->d.events, spec);
    if (t->is_actor) {
        ts->d.actor_send(ts->d.actor_arg, &t->actor, &t->id, frame, len);
        return 0;
    }
    if (ts->d.direct && ts->d.direct(ts->d.direct_arg, &t->id, spec))
        return 0;
    /* Submits are batched: a driver firing thousands of tasks writes them in
     * a few writes, and the raylet wakes once per batch. */
    return cw_conn_send_batched(ts->d.raylet, frame, len);
}

static void fill_spec_args(Rpc__TaskSpec *s, const tsub_arg *args, size_t n, Rpc__TaskArg *store,
                           Rpc__TaskArg **ptrs)
{
    for (size_t i = 0; i < n; i++) {
        rpc__task_arg__init(&store[i]);
        if (args[i].is_ref) {
            store[i].is_ref = true;
            store[i].object_id.data = (uint8_t *)args[i].ref.b;
            store[i].object_id.len = OBJECT_ID_SIZE;
            store[i].size = args[i].size;
            if (args[i].has_node) {
                store[i].node_id.data = (uint8_t *)args[i].node.b;
                store[i].node_id.len = NODE_ID_SIZE;
            }
        } else {
            store[i].data.data = (uint8_t *)args[i].data;
            store[i].data.len = args[i].size;
        }
        ptrs[i] = &store[i];
    }
    s->n_args = n;
    s->args = ptrs;
}

/* Build t's spec from its request and resolved arguments (on the stack, or
 * the heap for many arguments) and send it. mu held. */
static int build_and_send(task_submitter *ts, otask *t, const tsub_request *rq,
                          const tsub_arg *args, size_t nargs)
{
    Rpc__TaskSpec spec = RPC__TASK_SPEC__INIT;
    Rpc__Resource rs[RES_MAX], *rps[RES_MAX];
    for (int i = 0; i < rq->demand.n; i++) {
        rpc__resource__init(&rs[i]);
        rs[i].name = (char *)rq->demand.name[i];
        rs[i].amount = rq->demand.amount[i];
        rps[i] = &rs[i];
    }
    spec.task_id.data = t->id.b;
    spec.task_id.len = TASK_ID_SIZE;
    spec.job_id = job_id_to_int(*ts->d.job);
    spec.function = (char *)t->function; /* packed, not changed */
    spec.num_returns = t->stream ? 1 : t->num_returns;
    if (t->stream)
        tsub__stream_spec(t->stream, &spec);
    spec.n_resources = (size_t)rq->demand.n;
    spec.resources = rps;
    spec.owner_id.data = ts->d.owner.b;
    spec.owner_id.len = WORKER_ID_SIZE;
    spec.owner_node_id.data = ts->d.node.b;
    spec.owner_node_id.len = NODE_ID_SIZE;
    if (t->is_actor) {
        spec.actor_id.data = t->actor.b;
        spec.actor_id.len = ACTOR_ID_SIZE;
    }
    if (rq->has_pg) {
        spec.pg_id.data = (uint8_t *)rq->pg;
        spec.pg_id.len = PG_ID_SIZE;
        spec.bundle_index = rq->bundle_index;
    }
    spec.name = (char *)rq->name;
    spec.max_retries = tsub_retries_for(rq->max_retries);
    spec.retry_exceptions = rq->retry_exceptions;
    spec.strategy = rq->strategy;
    spec.soft = rq->soft;
    if (rq->has_target) {
        spec.node_id.data = (uint8_t *)rq->target.b;
        spec.node_id.len = NODE_ID_SIZE;
    }
    Rpc__TaskArg stack_args[TSUB_STACK_ARGS], *targs = stack_args;
    Rpc__TaskArg *stack_ptrs[TSUB_STACK_ARGS], **ptrs = stack_ptrs;
    if (nargs > TSUB_STACK_ARGS) {
        targs = malloc(nargs * sizeof(*targs));
        ptrs = malloc(nargs * sizeof(*ptrs));
    }
    int rc;
    if (targs && ptrs) {
        fill_spec_args(&spec, args, nargs, targs, ptrs);
        rc = send_spec(ts, t, &spec);
    } else {
        rc = rayc__error(RAYC_ENOMEM, "out of memory");
    }
    if (targs != stack_args)
        free(targs);
    if (ptrs != stack_ptrs)
        free(ptrs);
    return rc;
}

/* A retry: same spec, next attempt number. mu held. */
static int resubmit_after(task_submitter *ts, otask *t, uint32_t delay_ms)
{
    Rpc__SubmitTask *st =
        (Rpc__SubmitTask *)msg_unpack(t->is_actor ? MSG_PUSH_TASK : MSG_SUBMIT_TASK,
                                      t->frame + FRAME_HDR_SIZE, t->frame_len - FRAME_HDR_SIZE);
    if (st == NULL)
        return RAYC_EPROTO;
    st->spec->attempt++;
    if (t->stream)
        tsub__stream_spec(t->stream, st->spec);
    st->spec->retry_delay_ms = delay_ms;
    int rc = send_spec(ts, t, st->spec);
    msg_free(&st->base);
    return rc;
}

static int resubmit(task_submitter *ts, otask *t)
{
    return resubmit_after(ts, t, 0);
}

/* The memory monitor killed an attempt: back off before the next one
 * (doubling from TSUB_OOM_BACKOFF_MS per OOM kill, up to 5 s), so the
 * node's memory can recover. */
static uint32_t oom_backoff(otask *t)
{
    uint32_t ms = TSUB_OOM_BACKOFF_MS;
    for (int i = 1; i < t->oom_kills && ms < 5000; i++)
        ms *= 2;
    return ms < 5000 ? ms : 5000;
}

/* ------------------------------------------------------------ deferred */

/* Keep a copy of the request, the arguments and their inline bytes until the
 * arguments are known: one block. -1 when out of memory. */
static int defer(task_submitter *ts, otask *t, const tsub_request *rq, const tsub_arg *args,
                 size_t nargs)
{
    tev_owner_state(ts->d.events, &t->id, 0, RPC__TASK_STATE__TASK_PENDING_ARGS, rq->function,
                    rq->name, 0, NULL);
    size_t bytes = 0, name_len = strlen(rq->name) + 1;
    for (size_t i = 0; i < nargs; i++)
        if (!args[i].is_ref)
            bytes += args[i].size;
    deferred *d = malloc(sizeof(*d) + nargs * sizeof(*args) + name_len + bytes);
    if (d == NULL)
        return -1;
    d->rq = *rq;
    d->nargs = nargs;
    d->args = (tsub_arg *)(d + 1);
    d->name_copy = (char *)(d->args + nargs);
    d->bytes = (uint8_t *)d->name_copy + name_len;
    memcpy(d->name_copy, rq->name, name_len);
    d->rq.name = d->name_copy;
    d->rq.function = t->function;
    size_t off = 0;
    for (size_t i = 0; i < nargs; i++) {
        d->args[i] = args[i];
        if (!args[i].is_ref) {
            if (args[i].size)
                memcpy(d->bytes + off, args[i].data, args[i].size);
            d->args[i].data = d->bytes + off;
            off += args[i].size;
        }
    }
    t->def = d;
    t->dnext = ts->deferred;
    ts->deferred = t;
    return 0;
}

/* Is every argument of a deferred task known? -1: one failed (its entry in
 * *failed), 0: still waiting, 1: ready (args resolved in place). mu held. */
static int resolve_deferred(task_submitter *ts, otask *t, ref_entry **failed)
{
    deferred *d = t->def;
    int ready = 1;
    for (size_t i = 0; i < d->nargs; i++) {
        if (!d->args[i].is_ref)
            continue;
        ref_entry *e = reft_find(ts->d.refs, &d->args[i].ref);
        tsub_arg_state st = tsub_arg_state_of(e);
        if (st == TSUB_ARG_FAILED) {
            *failed = e;
            return -1;
        }
        if (st == TSUB_ARG_PENDING)
            ready = 0;
    }
    if (ready == 0)
        return 0;
    for (size_t i = 0; i < d->nargs; i++)
        if (d->args[i].is_ref)
            tsub_resolve_arg(&d->args[i], reft_find(ts->d.refs, &d->args[i].ref), ts->d.inline_max);
    return 1;
}

/* Submit the deferred tasks whose arguments are now known; fail those whose
 * arguments failed (with the same root cause). Repeats until nothing moves,
 * as one failure can fail a chain. mu held. */
void tsub__run_deferred(task_submitter *ts)
{
    bool moved = true;
    while (moved) {
        moved = false;
        for (otask *t = ts->deferred, *next; t; t = next) {
            next = t->dnext;
            ref_entry *failed = NULL;
            int r = resolve_deferred(ts, t, &failed);
            if (r == 0)
                continue;
            deferred_remove(ts, t);
            moved = true;
            if (r < 0) {
                tev_owner_state(ts->d.events, &t->id, 0, RPC__TASK_STATE__TASK_FAILED, NULL, NULL,
                                failed->status, failed->error);
                tsub__fail_returns(ts, t, failed->status, failed->error ? failed->error : "");
                tsub__finish(ts, t);
                continue;
            }
            int rc = build_and_send(ts, t, &t->def->rq, t->def->args, t->def->nargs);
            free(t->def);
            t->def = NULL;
            if (rc != 0) {
                tsub__fail_returns(ts, t, rc, "could not submit the task to the raylet");
                tsub__finish(ts, t);
            }
        }
    }
}

/* ------------------------------------------------------------ submit */

/* The submitter's one copy of function name f; NULL when out of memory.
 * Kept until tsub_free. ts->d.mu held (threads submit at once). */
static const char *intern_function(task_submitter *ts, const char *f)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)f; *p; p++)
        h = (h ^ *p) * 16777619u;
    fname **head = &ts->fnames[h % FNAME_BUCKETS];
    for (fname *n = *head; n; n = n->next)
        if (strcmp(n->s, f) == 0)
            return n->s;
    size_t len = strlen(f) + 1;
    fname *n = malloc(sizeof(*n) + len);
    if (n == NULL)
        return NULL;
    memcpy(n->s, f, len);
    n->next = *head;
    *head = n;
    return n->s;
}

/* A record for a new task, not yet in the table. NULL when out of memory. */
static otask *new_otask(task_submitter *ts, const tsub_request *rq, size_t nargs)
{
    otask *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    /* Most tasks take no argument: no array then (free(NULL) is fine). */
    t->held = nargs ? calloc(nargs, sizeof(*t->held)) : NULL;
    if (nargs && t->held == NULL) {
        otask_free(t);
        return NULL;
    }
    t->id = task_id_random(*ts->d.job);
    t->num_returns = rq->num_returns;
    t->retries_left = tsub_retries_for(rq->max_retries);
    t->retry_exceptions = rq->retry_exceptions;
    if (rq->has_target) {
        t->hard_pin = !rq->soft;
        t->pin_node = rq->target;
    }
    if (rq->actor) {
        t->is_actor = true;
        t->actor = *rq->actor;
        t->retries_left = 0; /* the actor submitter decides (max_task_retries) */
    }
    return t;
}

/* The task holds a reference on each ref argument until it ends; resolve
 * the ones that are ready. *failed: an argument that stands for an error
 * (the last one); *pending: one is still being computed. mu held. */
static void take_args(task_submitter *ts, otask *t, tsub_arg *args, size_t nargs,
                      ref_entry **failed, bool *pending)
{
    for (size_t i = 0; i < nargs; i++) {
        tsub_arg *a = &args[i];
        if (!a->is_ref)
            continue;
        ref_entry *e = reft_get_or_add(ts->d.refs, &a->ref, NULL);
        if (e == NULL)
            continue;
        if (!a->handed)
            e->refs++; /* the task holds its argument until it ends */
        t->held[t->nheld++] = a->ref;
        switch (tsub_arg_state_of(e)) {
        case TSUB_ARG_FAILED:
            *failed = e;
            break;
        case TSUB_ARG_PENDING:
            *pending = true;
            break;
        case TSUB_ARG_READY:
            tsub_resolve_arg(a, e, ts->d.inline_max);
            break;
        }
    }
}

/* Entries for t's returns, each with the one reference handed out. mu held. */
static void add_returns(task_submitter *ts, otask *t, rayc_ref *returns)
{
    for (uint32_t i = 0; i < t->num_returns; i++) {
        object_id_t oid = object_id_for_return(&t->id, i + 1);
        ref_entry *e = reft_get_or_add(ts->d.refs, &oid, NULL);
        if (e) {
            e->owned = true;
            e->refs = 1;
        }
        memcpy(returns[i].id, oid.b, OBJECT_ID_SIZE);
    }
}

/* tsub_submit and tsub_submit_stream: returns for a task, *stream for a
 * generator. */
static int submit(task_submitter *ts, const tsub_request *rq, tsub_arg *args, size_t nargs,
                  rayc_ref *returns, rayc_stream **stream, bool *taken)
{
    *taken = false;
    otask *t = new_otask(ts, rq, nargs);
    if (t == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    pthread_mutex_lock(ts->d.mu);
    if ((t->function = intern_function(ts, rq->function)) == NULL ||
        (stream && (*stream = tsub__stream_new(ts, t, rq)) == NULL)) {
        pthread_mutex_unlock(ts->d.mu);
        otask_free(t);
        return rayc__error(RAYC_ENOMEM, "out of memory");
    }
    *taken = true;
    ref_entry *failed = NULL;
    bool pending = false;
    take_args(ts, t, args, nargs, &failed, &pending);
    if (returns)
        add_returns(ts, t, returns);
    id_map_insert(&ts->tasks, &t->hnode);
    int rc = 0;
    if (failed) {
        /* A dependency failed already: this task fails the same way, unrun. */
        tev_owner_state(ts->d.events, &t->id, 0, RPC__TASK_STATE__TASK_FAILED, rq->function,
                        rq->name, failed->status, failed->error);
        tsub__fail_returns(ts, t, failed->status, failed->error ? failed->error : "");
        tsub__finish(ts, t);
    } else if (t->is_actor) {
        /* Held for the actor submitter, which sends calls in order. */
        if (defer(ts, t, rq, args, nargs) != 0) {
            tsub__fail_returns(ts, t, RAYC_ENOMEM, "out of memory");
            tsub__finish(ts, t);
            rc = rayc__error(RAYC_ENOMEM, "out of memory");
        } else {
            deferred_remove(ts, t);
        }
    } else if (!pending) {
        rc = build_and_send(ts, t, rq, args, nargs);
        if (rc != 0) {
            tsub__fail_returns(ts, t, rc, "could not submit the task to the raylet");
            tsub__finish(ts, t);
            rc = rayc__error(rc, "rayc_submit: the raylet is unreachable");
        }
    } else if (defer(ts, t, rq, args, nargs) != 0) {
        tsub__fail_returns(ts, t, RAYC_ENOMEM, "out of memory");
        tsub__finish(ts, t);
        rc = rayc__error(RAYC_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(ts->d.mu);
    return rc;
}

int tsub_submit(task_submitter *ts, const tsub_request *rq, tsub_arg *args, size_t nargs,
                rayc_ref *returns, bool *taken)
{
    return submit(ts, rq, args, nargs, returns, NULL, taken);
}

int tsub_submit_stream(task_submitter *ts, const tsub_request *rq, tsub_arg *args, size_t nargs,
                       rayc_stream **out, bool *taken)
{
    *out = NULL;
    tsub_request srq = *rq;
    srq.streaming = true;
    srq.num_returns = 0; /* items instead */
    return submit(ts, &srq, args, nargs, NULL, out, taken);
}

int tsub_cancel(task_submitter *ts, const object_id_t *oid, bool force)
{
    task_id_t tid = object_id_task(oid);
    pthread_mutex_lock(ts->d.mu);
    otask *t = tsub__find(ts, tid.b);
    if (t == NULL) {
        pthread_mutex_unlock(ts->d.mu);
        return rayc__error(RAYC_ENOTFOUND, "rayc_cancel: no pending task of this process made it");
    }
    tsub__cancel(ts, t, force);
    pthread_mutex_unlock(ts->d.mu);
    return 0;
}

void tsub__cancel(task_submitter *ts, otask *t, bool force)
{
    t->cancelled = true;
    t->retries_left = 0;
    int direct = t->submitted && !t->done && !t->is_actor && ts->d.direct_cancel
                     ? ts->d.direct_cancel(ts->d.direct_arg, &t->id, force)
                     : TSUB_DIRECT_NOT_OURS;
    if (direct == TSUB_DIRECT_ASKED)
        return; /* asked its leased worker (or the raylet, by force) */
    if (!t->submitted || direct == TSUB_DIRECT_DROPPED) {
        tev_owner_state(ts->d.events, &t->id, 0, RPC__TASK_STATE__TASK_CANCELLED, NULL, NULL,
                        RAYC_ECANCELLED, "cancelled");
        deferred_remove(ts, t);
        tsub__fail_returns(ts, t, RAYC_ECANCELLED, "cancelled");
        tsub__finish(ts, t);
        tsub__run_deferred(ts);
    } else if (!t->done) {
        Rpc__CancelTask m = RPC__CANCEL_TASK__INIT;
        m.task_id.data = t->id.b;
        m.task_id.len = TASK_ID_SIZE;
        m.force = force;
        m.owner_id.data = ts->d.owner.b;
        m.owner_id.len = WORKER_ID_SIZE;
        cw_conn_send(ts->d.raylet, MSG_CANCEL_TASK, &m.base);
    }
}

bool tsub_direct_frame(task_submitter *ts, const task_id_t *id, const uint8_t **frame, size_t *len,
                       const char **function, bool *cancelled)
{
    otask *t = tsub__find(ts, id->b);
    if (t == NULL || t->done || t->frame == NULL)
        return false;
    if (frame) {
        *frame = t->frame;
        *len = t->frame_len;
    }
    if (function)
        *function = t->function;
    if (cancelled)
        *cancelled = t->cancelled;
    return true;
}

/* ------------------------------------------------------------ completion */

bool tsub__take_store(task_submitter *ts, ref_entry *e, uint64_t size, bool pinned, uint64_t offset,
                      const ProtobufCBinaryData *node)
{
    /* An offset we can trust only inside the arena. */
    bool in_arena = offset <= ts->d.arena_size && size <= ts->d.arena_size - offset;
    e->in_store = true;
    e->size = size;
    e->sealed = true;
    if (node->len == NODE_ID_SIZE)
        memcpy(e->node.b, node->data, NODE_ID_SIZE);
    e->remote = memcmp(e->node.b, ts->d.node.b, NODE_ID_SIZE) != 0;
    if (pinned)
        reft_took_pin(ts->d.refs, e, in_arena ? (void *)(ts->d.arena + offset) : NULL);
    return e->remote;
}

/* Take one store result of a finished task (pinned for us by our raylet
 * when pinned is set). True if it lives on another node. mu held. */
static bool take_store_result(task_submitter *ts, ref_entry *e, const Rpc__TaskReturn *r,
                              const Rpc__TaskDone *m)
{
    return tsub__take_store(ts, e, r->size, r->pinned, r->offset, &m->node_id);
}

/* The returns of a task that succeeded. True if one lives on another node
 * (keep the lineage). mu held. */
static bool take_results(task_submitter *ts, otask *t, const Rpc__TaskDone *m)
{
    bool remote = false;
    /* Returns the task never set are empty values. */
    for (uint32_t i = 1; i <= t->num_returns; i++) {
        object_id_t oid = object_id_for_return(&t->id, i);
        ref_entry *e = reft_find(ts->d.refs, &oid);
        if (e)
            e->sealed = true;
    }
    for (size_t i = 0; i < m->n_returns; i++) {
        Rpc__TaskReturn *r = m->returns[i];
        if (r->object_id.len != OBJECT_ID_SIZE)
            continue;
        object_id_t oid;
        memcpy(oid.b, r->object_id.data, OBJECT_ID_SIZE);
        ref_entry *e = reft_find(ts->d.refs, &oid);
        if (e == NULL || e->refs == 0) {
            /* Nobody holds this return any more: free it at once. */
            if (r->in_store)
                storec_delete(ts->d.store, &oid, r->pinned);
            continue;
        }
        if (r->in_store) {
            remote = take_store_result(ts, e, r, m) || remote;
        } else if (r->data.len > 0 && e->data != NULL && !e->in_store) {
            /* A re-run (retry, lineage) of a value we hold already: keep it,
             * readers may have views of it. */
        } else if (r->data.len > 0) {
            void *copy = malloc(r->data.len);
            if (copy == NULL) {
                e->status = RAYC_ENOMEM;
                continue;
            }
            memcpy(copy, r->data.data, r->data.len);
            e->data = copy;
            e->size = r->data.len;
        }
    }
    return remote;
}

int tsub_on_task_done(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    task_submitter *ts = arg;
    (void)type;
    pthread_mutex_lock(ts->d.mu);
    tsub_task_done_locked(ts, (Rpc__TaskDone *)msg);
    pthread_mutex_unlock(ts->d.mu);
    return 0;
}

void tsub_task_done_locked(task_submitter *ts, const Rpc__TaskDone *m)
{
    if (m->task_id.len != TASK_ID_SIZE)
        return;
    otask *t = tsub__find(ts, m->task_id.data);
    if (t == NULL)
        return;
    int status = m->status ? m->status->code : 0;
    const char *message = m->status && m->status->message ? m->status->message : "";
    bool retry = tsub_should_retry(status, t->retry_exceptions, t->cancelled, t->retries_left);
    tev_done(ts->d.events, m, retry);
    if (retry) {
        if (t->retries_left > 0)
            t->retries_left--;
        uint32_t delay = 0;
        if (status == RAYC_EOOM) {
            t->oom_kills++;
            delay = oom_backoff(t);
        }
        log_info("retrying %s%s after: %s", t->function, delay ? " (backing off)" : "", message);
        if (resubmit_after(ts, t, delay) == 0)
            return;
    }
    bool keep_lineage = false;
    if (status != RAYC_OK)
        tsub__fail_returns(ts, t, status, message);
    else if (t->stream)
        keep_lineage = tsub__stream_done(ts, t->stream, m->num_items);
    else
        keep_lineage = take_results(ts, t, m);
    if (keep_lineage && !t->cancelled && !t->is_actor) {
        /* Its results live on another node: keep the spec (and the
         * arguments it holds) to run it again if that node dies. */
        t->done = true;
    } else {
        tsub__finish(ts, t);
    }
    tsub__run_deferred(ts);
    if (ts->d.progress)
        ts->d.progress(ts->d.actor_arg);
}

/* ------------------------------------------------------------ actor calls */

int tsub_actor_send(task_submitter *ts, const task_id_t *id)
{
    otask *t = tsub__find(ts, id->b);
    if (t == NULL)
        return -1;
    if (t->def == NULL) {
        if (resubmit(ts, t) == 0)
            return 1;
        tsub__fail_returns(ts, t, RAYC_ENOMEM, "could not send the call again");
        tsub__finish(ts, t);
        return -1;
    }
    ref_entry *failed = NULL;
    int r = resolve_deferred(ts, t, &failed);
    if (r == 0)
        return 0;
    if (r < 0) {
        tsub__fail_returns(ts, t, failed->status, failed->error ? failed->error : "");
        tsub__finish(ts, t);
        return -1;
    }
    int rc = build_and_send(ts, t, &t->def->rq, t->def->args, t->def->nargs);
    free(t->def);
    t->def = NULL;
    if (rc != 0) {
        tsub__fail_returns(ts, t, rc, "could not send the call");
        tsub__finish(ts, t);
        return -1;
    }
    return 1;
}

bool tsub_actor_of(task_submitter *ts, const task_id_t *id, actor_id_t *actor)
{
    otask *t = tsub__find(ts, id->b);
    if (t == NULL || !t->is_actor || t->done)
        return false;
    *actor = t->actor;
    return true;
}

void tsub_actor_fail(task_submitter *ts, const task_id_t *id, int status, const char *message)
{
    otask *t = tsub__find(ts, id->b);
    if (t == NULL)
        return;
    tev_owner_state(ts->d.events, &t->id, (uint32_t)t->actor_retries,
                    status == RAYC_ECANCELLED ? RPC__TASK_STATE__TASK_CANCELLED
                                              : RPC__TASK_STATE__TASK_FAILED,
                    NULL, NULL, status, message);
    tsub__fail_returns(ts, t, status, message);
    tsub__finish(ts, t);
}

bool tsub_actor_retry(task_submitter *ts, const task_id_t *id, int max_task_retries)
{
    otask *t = tsub__find(ts, id->b);
    if (t == NULL || t->cancelled)
        return false;
    if (max_task_retries >= 0 && t->actor_retries >= max_task_retries)
        return false;
    t->actor_retries++;
    return true;
}

/* ------------------------------------------------------------ lineage */

/* Run a finished task again because one of its results was lost; its returns
 * become pending. false if there is no lineage for it. mu held. */
static bool reconstruct(task_submitter *ts, const object_id_t *oid)
{
    if (object_id_is_put(oid))
        return false;
    task_id_t tid = object_id_task(oid);
    otask *t = tsub__find(ts, tid.b);
    if (t && t->stream && !t->done && t->submitted && !t->cancelled) {
        /* An item of a generator that runs again (its node died): the
         * attempt under way yields it again. */
        ref_entry *e = reft_find(ts->d.refs, oid);
        if (e == NULL || object_id_index(oid) > t->stream->nitems)
            return false;
        e->sealed = e->in_store = e->remote = false;
        return true;
    }
    if (t == NULL || !t->done || t->frame == NULL)
        return false;
    /* Pinned hard to the node that held its result (and is gone): it cannot
     * run anywhere else, so the result is lost. */
    ref_entry *lost = reft_find(ts->d.refs, oid);
    if (t->hard_pin && lost && memcmp(lost->node.b, t->pin_node.b, NODE_ID_SIZE) == 0)
        return false;
    for (uint32_t i = 1; i <= t->num_returns; i++) {
        object_id_t rid = object_id_for_return(&t->id, i);
        ref_entry *e = reft_find(ts->d.refs, &rid);
        if (e == NULL || e->pinned)
            continue;
        e->sealed = false;
        e->in_store = false;
        e->remote = false;
    }
    if (t->stream)
        tsub__stream_rebuild(ts, t->stream);
    t->done = false;
    log_info("reconstructing %s: a result was lost with its node", t->function);
    if (resubmit(ts, t) != 0) {
        tsub__fail_returns(ts, t, RAYC_EOBJECT_LOST, "lost, and could not be rebuilt");
        tsub__finish(ts, t);
    }
    return true;
}

/* A node's death needs nothing here: results that lived there may have
 * copies elsewhere, so the next get or task that needs one pulls it (the
 * raylet skips dead nodes), and only when no copy is left does the raylet
 * answer ObjectLost, which rebuilds it from lineage (Ray's order: fetch
 * first, then rebuild) or makes it an error value. */
int tsub_on_object_lost(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    task_submitter *ts = arg;
    Rpc__ObjectLost *m = (Rpc__ObjectLost *)msg;
    (void)type;
    if (m->object_id.len != OBJECT_ID_SIZE)
        return 0;
    object_id_t id;
    memcpy(id.b, m->object_id.data, OBJECT_ID_SIZE);
    pthread_mutex_lock(ts->d.mu);
    ref_entry *e = reft_find(ts->d.refs, &id);
    if (e == NULL) /* a borrowed ref a get waits for (borrow.h): it needs the verdict */
        e = reft_get_or_add(ts->d.refs, &id, NULL);
    if (e && !e->pinned && e->status == RAYC_OK && (e->sealed || !e->owned) &&
        !(e->owned && reconstruct(ts, &e->id))) {
        e->status = RAYC_EOBJECT_LOST;
        e->sealed = true;
        free(e->error);
        e->error = strdup(m->message && *m->message ? m->message : "object lost");
    }
    pthread_mutex_unlock(ts->d.mu);
    return 0;
}

void tsub_lineage_release(task_submitter *ts, const object_id_t *oid)
{
    if (object_id_is_put(oid))
        return;
    task_id_t tid = object_id_task(oid);
    otask *t = tsub__find(ts, tid.b);
    if (t && t->stream) {
        if (tsub__stream_item_gone(t->stream, oid) && t->done)
            tsub__finish(ts, t);
        return;
    }
    if (t == NULL || !t->done)
        return;
    for (uint32_t i = 1; i <= t->num_returns; i++) {
        object_id_t rid = object_id_for_return(&t->id, i);
        ref_entry *e = reft_find(ts->d.refs, &rid);
        if (e && memcmp(e->id.b, oid->b, OBJECT_ID_SIZE) != 0 && (e->refs > 0 || e->views > 0))
            return; /* another result is still in use */
    }
    tsub__finish(ts, t);
}
