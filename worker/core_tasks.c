/*
 * core_tasks.c -- the owner's side of tasks: rayc_submit, argument
 * resolution, completions, retries and rayc_cancel.
 *
 * The process that submits a task owns its returns. Small arguments are
 * resolved here and travel inside the spec; an argument that is the return
 * of a task still running keeps the new task here (deferred) until that
 * return is known. Completions (TaskDone) arrive on the raylet connection and
 * are handled by whichever thread is reading it (cw_conn's leader); a failed
 * attempt is submitted again while retries remain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "errors.h"
#include "frame.h"
#include "log.h"
#include "util.h"

#define DEFAULT_MAX_RETRIES 3
#define OTASK_BUCKETS       4096

/* One argument as the owner holds it until the spec is built. */
typedef struct {
    bool is_ref;
    bool has_node;
    node_id_t node; /* a node holding the ref's object (locality hint) */
    object_id_t ref;
    const void *data; /* inline bytes (points into arg_copy or an entry) */
    size_t size;
} oarg;

typedef struct otask {
    task_id_t id;
    uint32_t num_returns;
    int retries_left;
    bool retry_exceptions;
    bool cancelled;
    bool submitted;
    bool done;     /* finished; kept as lineage while its remote results are referenced */
    bool hard_pin; /* RAYC_SCHED_NODE without soft: runs only on pin_node */
    node_id_t pin_node;
    uint8_t *frame; /* the SubmitTask frame as sent (kept for retries) */
    size_t frame_len;
    char *function;
    /* References this task holds until it ends: its ref arguments. */
    object_id_t *held;
    size_t nheld;
    /* Deferred tasks only: the arguments and the options to build the spec. */
    oarg *args;
    size_t nargs;
    uint8_t *arg_copy;
    Rpc__TaskSpec *tmpl; /* spec without args (heap copy) */
    struct otask *hnext, *dnext;
} otask;

/* ------------------------------------------------------------ table */

int core__tasks_init(void)
{
    core_t *c = &rayc__core;
    c->n_otask_buckets = OTASK_BUCKETS;
    c->otasks = calloc(c->n_otask_buckets, sizeof(*c->otasks));
    c->n_otasks = 0;
    c->deferred = NULL;
    c->warned = false;
    return c->otasks ? 0 : -1;
}

static void otask_free(otask *t)
{
    free(t->frame);
    free(t->function);
    free(t->held);
    free(t->args);
    free(t->arg_copy);
    if (t->tmpl)
        msg_free(&t->tmpl->base);
    free(t);
}

void core__tasks_destroy(void)
{
    core_t *c = &rayc__core;
    for (size_t i = 0; c->otasks && i < c->n_otask_buckets; i++) {
        for (otask *t = c->otasks[i], *n; t; t = n) {
            n = t->hnext;
            otask_free(t);
        }
    }
    free(c->otasks);
    c->otasks = NULL;
    c->deferred = NULL;
    c->n_otasks = 0;
}

static size_t obucket(const task_id_t *id)
{
    return id_hash(id->b, TASK_ID_SIZE) & (rayc__core.n_otask_buckets - 1);
}

static otask *otask_find(const uint8_t *id)
{
    task_id_t t;
    memcpy(t.b, id, TASK_ID_SIZE);
    for (otask *o = rayc__core.otasks[obucket(&t)]; o; o = o->hnext)
        if (memcmp(o->id.b, id, TASK_ID_SIZE) == 0)
            return o;
    return NULL;
}

static void otask_insert(otask *t)
{
    core_t *c = &rayc__core;
    size_t b = obucket(&t->id);
    t->hnext = c->otasks[b];
    c->otasks[b] = t;
    c->n_otasks++;
}

static void otask_remove(otask *t)
{
    core_t *c = &rayc__core;
    for (otask **pp = &c->otasks[obucket(&t->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == t) {
            *pp = t->hnext;
            c->n_otasks--;
            return;
        }
    }
}

static void deferred_remove(otask *t)
{
    for (otask **pp = &rayc__core.deferred; *pp; pp = &(*pp)->dnext) {
        if (*pp == t) {
            *pp = t->dnext;
            return;
        }
    }
}

/* ------------------------------------------------------------ ending */

/* Give back the references a task held on its arguments. mu held. */
static void release_held(otask *t)
{
    for (size_t i = 0; i < t->nheld; i++) {
        ref_entry *e = reft_find(&rayc__core.refs, &t->held[i]);
        if (e && e->refs > 0) {
            e->refs--;
            core__maybe_finalize(e);
        }
    }
    t->nheld = 0;
}

/* Every return of t becomes the error (status, message). mu held. */
static void fail_returns(otask *t, int status, const char *message)
{
    for (uint32_t i = 1; i <= t->num_returns; i++) {
        object_id_t oid = object_id_for_return(&t->id, i);
        ref_entry *e = reft_find(&rayc__core.refs, &oid);
        if (e == NULL)
            continue;
        e->status = status;
        e->sealed = true;
        free(e->error);
        e->error = strdup(message);
    }
}

static void finish(otask *t)
{
    release_held(t);
    otask_remove(t);
    otask_free(t);
}

/* ------------------------------------------------------------ sending */

static void fill_spec_args(Rpc__TaskSpec *s, const oarg *args, size_t n, Rpc__TaskArg *store,
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

/* Pack spec into a SubmitTask frame, keep it on t and send it. mu held. */
static int send_spec(otask *t, Rpc__TaskSpec *spec)
{
    Rpc__SubmitTask st = RPC__SUBMIT_TASK__INIT;
    st.spec = spec;
    size_t len = msg_frame_size(&st.base);
    uint8_t *frame = malloc(len);
    if (frame == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    msg_encode(MSG_SUBMIT_TASK, &st.base, frame);
    free(t->frame);
    t->frame = frame;
    t->frame_len = len;
    t->submitted = true;
    /* Submits are batched: a driver firing thousands of tasks writes them in
     * a few writes, and the raylet wakes once per batch. */
    return cw_conn_send_batched(rayc__core.raylet, frame, len);
}

/* A retry: same spec, next attempt number. mu held. */
static int resubmit(otask *t)
{
    Rpc__SubmitTask *st = (Rpc__SubmitTask *)msg_unpack(MSG_SUBMIT_TASK, t->frame + FRAME_HDR_SIZE,
                                                        t->frame_len - FRAME_HDR_SIZE);
    if (st == NULL)
        return RAYC_EPROTO;
    st->spec->attempt++;
    int rc = send_spec(t, st->spec);
    msg_free(&st->base);
    return rc;
}

/* ------------------------------------------------------------ deferred */

/* Is every argument of a deferred task known? -1: one failed (its entry in
 * *failed), 0: still waiting, 1: ready (args resolved in place). mu held. */
static int resolve_args(otask *t, ref_entry **failed)
{
    int ready = 1;
    for (size_t i = 0; i < t->nargs; i++) {
        oarg *a = &t->args[i];
        if (!a->is_ref)
            continue;
        ref_entry *e = reft_find(&rayc__core.refs, &a->ref);
        if (e == NULL)
            continue; /* borrowed: the raylet waits for it in the store */
        if (e->status != RAYC_OK) {
            *failed = e;
            return -1;
        }
        if (e->owned && !e->sealed && !e->in_store)
            ready = 0;
    }
    if (ready == 0)
        return 0;
    for (size_t i = 0; i < t->nargs; i++) {
        oarg *a = &t->args[i];
        ref_entry *e = a->is_ref ? reft_find(&rayc__core.refs, &a->ref) : NULL;
        if (e && !e->in_store && e->sealed && e->size <= rayc__core.inline_max) {
            a->is_ref = false; /* inline the small value */
            a->data = e->data;
            a->size = e->size;
        } else if (e) {
            a->size = e->size;
            if (e->in_store)
                a->node = e->node, a->has_node = true;
        }
    }
    return 1;
}

/* Submit the deferred tasks whose arguments are now known; fail those whose
 * arguments failed (with the same root cause). Repeats until nothing moves,
 * as one failure can fail a chain. mu held. */
static void run_deferred(void)
{
    core_t *c = &rayc__core;
    bool moved = true;
    while (moved) {
        moved = false;
        for (otask *t = c->deferred, *next; t; t = next) {
            next = t->dnext;
            ref_entry *failed = NULL;
            int r = resolve_args(t, &failed);
            if (r == 0)
                continue;
            deferred_remove(t);
            moved = true;
            if (r < 0) {
                fail_returns(t, failed->status, failed->error ? failed->error : "");
                finish(t);
                continue;
            }
            Rpc__TaskArg stack_args[16], *args = stack_args;
            Rpc__TaskArg *stack_ptrs[16], **ptrs = stack_ptrs;
            if (t->nargs > 16) {
                args = malloc(t->nargs * sizeof(*args));
                ptrs = malloc(t->nargs * sizeof(*ptrs));
            }
            int rc = RAYC_ENOMEM;
            if (args && ptrs) {
                fill_spec_args(t->tmpl, t->args, t->nargs, args, ptrs);
                rc = send_spec(t, t->tmpl);
                t->tmpl->n_args = 0;
                t->tmpl->args = NULL;
            }
            if (args != stack_args)
                free(args);
            if (ptrs != stack_ptrs)
                free(ptrs);
            if (rc != 0) {
                fail_returns(t, rc, "could not submit the task to the raylet");
                finish(t);
            }
        }
    }
    pthread_cond_broadcast(&c->sealed_cv);
}

/* ------------------------------------------------------------ completion */

static void on_task_done(Rpc__TaskDone *m)
{
    core_t *c = &rayc__core;
    if (m->task_id.len != TASK_ID_SIZE)
        return;
    pthread_mutex_lock(&c->mu);
    otask *t = otask_find(m->task_id.data);
    if (t == NULL) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    int status = m->status ? m->status->code : 0;
    const char *message = m->status && m->status->message ? m->status->message : "";
    bool retryable = (status == RAYC_EWORKER_DIED || status == RAYC_EOBJECT_LOST ||
                      (status == RAYC_ETASK && t->retry_exceptions));
    if (retryable && !t->cancelled && t->retries_left != 0) {
        if (t->retries_left > 0)
            t->retries_left--;
        log_info("retrying %s after: %s", t->function, message);
        if (resubmit(t) == 0) {
            pthread_mutex_unlock(&c->mu);
            return;
        }
    }
    bool keep_lineage = false;
    if (status != RAYC_OK) {
        fail_returns(t, status, message);
    } else {
        /* Returns the task never set are empty values. */
        for (uint32_t i = 1; i <= t->num_returns; i++) {
            object_id_t oid = object_id_for_return(&t->id, i);
            ref_entry *e = reft_find(&c->refs, &oid);
            if (e)
                e->sealed = true;
        }
        for (size_t i = 0; i < m->n_returns; i++) {
            Rpc__TaskReturn *r = m->returns[i];
            if (r->object_id.len != OBJECT_ID_SIZE)
                continue;
            object_id_t oid;
            memcpy(oid.b, r->object_id.data, OBJECT_ID_SIZE);
            ref_entry *e = reft_find(&c->refs, &oid);
            /* Our raylet pinned a store result for us (an offset we can
             * trust only inside the arena). */
            bool pinned = r->in_store && r->pinned && r->offset <= c->arena_size &&
                          r->size <= c->arena_size - r->offset;
            if (e == NULL || e->refs == 0) {
                /* Nobody holds this return any more: free it at once. */
                if (r->in_store)
                    core__send_delete(&oid, r->pinned);
                continue;
            }
            if (r->in_store) {
                e->in_store = true;
                e->size = r->size;
                e->sealed = true;
                if (m->node_id.len == NODE_ID_SIZE)
                    memcpy(e->node.b, m->node_id.data, NODE_ID_SIZE);
                e->remote = memcmp(e->node.b, c->node_id.b, NODE_ID_SIZE) != 0;
                keep_lineage = keep_lineage || e->remote;
                if (r->pinned)
                    core__took_pin(e, pinned ? c->arena + r->offset : NULL);
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
    }
    if (keep_lineage && !t->cancelled) {
        /* Its results live on another node: keep the spec (and the
         * arguments it holds) to run it again if that node dies. */
        t->done = true;
    } else {
        finish(t);
    }
    run_deferred();
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------ lineage */

/* Run a finished task again because one of its results was lost; its returns
 * become pending. false if there is no lineage for it. mu held. */
static bool reconstruct(const object_id_t *oid)
{
    core_t *c = &rayc__core;
    if (object_id_is_put(oid))
        return false;
    task_id_t tid = object_id_task(oid);
    otask *t = otask_find(tid.b);
    if (t == NULL || !t->done || t->frame == NULL)
        return false;
    /* Pinned hard to the node that held its result (and is gone): it cannot
     * run anywhere else, so the result is lost. */
    ref_entry *lost = reft_find(&c->refs, oid);
    if (t->hard_pin && lost && memcmp(lost->node.b, t->pin_node.b, NODE_ID_SIZE) == 0)
        return false;
    for (uint32_t i = 1; i <= t->num_returns; i++) {
        object_id_t rid = object_id_for_return(&t->id, i);
        ref_entry *e = reft_find(&c->refs, &rid);
        if (e == NULL || e->pinned)
            continue;
        e->sealed = false;
        e->in_store = false;
        e->remote = false;
    }
    t->done = false;
    log_info("reconstructing %s: a result was lost with its node", t->function);
    if (resubmit(t) != 0) {
        fail_returns(t, RAYC_EOBJECT_LOST, "lost, and could not be rebuilt");
        finish(t);
    }
    return true;
}

/* An object this process refers to is gone: rebuild it from its lineage, or
 * make it an error value. mu held. */
static void object_gone(ref_entry *e, const char *why)
{
    if (e->owned && reconstruct(&e->id))
        return;
    e->status = RAYC_EOBJECT_LOST;
    e->sealed = true;
    free(e->error);
    e->error = strdup(why);
}

/* A node's death needs nothing here: results that lived there may have
 * copies elsewhere, so the next get or task that needs one pulls it (the
 * raylet skips dead nodes), and only when no copy is left does the raylet
 * answer ObjectLost, which rebuilds it from lineage (Ray's order: fetch
 * first, then rebuild). */
static void on_object_lost(Rpc__ObjectLost *m)
{
    core_t *c = &rayc__core;
    if (m->object_id.len != OBJECT_ID_SIZE)
        return;
    object_id_t id;
    memcpy(id.b, m->object_id.data, OBJECT_ID_SIZE);
    pthread_mutex_lock(&c->mu);
    ref_entry *e = reft_find(&c->refs, &id);
    if (e && !e->pinned && e->status == RAYC_OK && (e->sealed || !e->owned))
        object_gone(e, m->message && *m->message ? m->message : "object lost");
    pthread_cond_broadcast(&c->sealed_cv);
    pthread_mutex_unlock(&c->mu);
}

void core__lineage_release(const object_id_t *oid)
{
    if (object_id_is_put(oid))
        return;
    task_id_t tid = object_id_task(oid);
    otask *t = otask_find(tid.b);
    if (t == NULL || !t->done)
        return;
    for (uint32_t i = 1; i <= t->num_returns; i++) {
        object_id_t rid = object_id_for_return(&t->id, i);
        ref_entry *e = reft_find(&rayc__core.refs, &rid);
        if (e && memcmp(e->id.b, oid->b, OBJECT_ID_SIZE) != 0 && (e->refs > 0 || e->views > 0))
            return; /* another result is still in use */
    }
    finish(t);
}

/* Print a worker's output line by line, prefixed like Ray: (pid=.., node=..). */
static void on_worker_output(Rpc__WorkerOutput *m)
{
    if (rayc__core.log_to_driver == -1)
        return;
    FILE *f = m->is_err ? stderr : stdout;
    const char *p = (const char *)m->data.data, *end = p + m->data.len;
    flockfile(f);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        fprintf(f, "(pid=%d, node=%.8s) %.*s\n", m->pid, m->node, (int)n, p);
        p += n + (nl ? 1 : 0);
    }
    fflush(f);
    funlockfile(f);
}

int core__on_async(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    (void)arg;
    core_t *c = &rayc__core;
    switch (type) {
    case MSG_TASK_DONE:
        on_task_done((Rpc__TaskDone *)msg);
        return 0;
    case MSG_WORKER_OUTPUT:
        on_worker_output((Rpc__WorkerOutput *)msg);
        return 0;
    case MSG_NODE_DIED:
        return 0; /* see on_object_lost */
    case MSG_OBJECT_LOST:
        on_object_lost((Rpc__ObjectLost *)msg);
        return 0;
    case MSG_CLUSTER_NOTICE:
        fprintf(stderr, "rayc: %s\n", ((Rpc__ClusterNotice *)msg)->message);
        return 0;
    case MSG_GET_OBJECTS_REPLY: {
        /* A get that gave up before the store answered: drop the pins. */
        Rpc__GetObjectsReply *r = (Rpc__GetObjectsReply *)msg;
        Rpc__ReleaseObjects rel = RPC__RELEASE_OBJECTS__INIT;
        ProtobufCBinaryData ids[64];
        for (size_t i = 0; i < r->n_objects && rel.n_object_ids < 64; i++)
            if (!r->objects[i]->status || r->objects[i]->status->code == 0)
                ids[rel.n_object_ids++] = r->objects[i]->object_id;
        rel.object_ids = ids;
        if (rel.n_object_ids)
            cw_conn_send(c->raylet, MSG_RELEASE_OBJECTS, &rel.base);
        return 0;
    }
    default:
        if (c->worker_frame)
            return c->worker_frame(type, msg);
        return 0;
    }
}

/* ------------------------------------------------------------ submit */

/* Demand from options: CPU (default 1), GPU, memory, custom. */
static int build_resources(const rayc_task_opts *o, res_set *set)
{
    char err[256];
    memset(set, 0, sizeof(*set));
    double cpus = o && o->num_cpus > 0 ? o->num_cpus : 1;
    if (o && (o->num_cpus < 0 || o->num_gpus < 0))
        return rayc__error(RAYC_EINVAL, "num_cpus and num_gpus must be >= 0");
    res_set_amount(set, "CPU", cpus);
    if (o && o->num_gpus > 0)
        res_set_amount(set, "GPU", o->num_gpus);
    if (o && o->memory > 0)
        res_set_amount(set, "memory", (double)o->memory);
    if (o && o->resources && res_parse(set, o->resources, err, sizeof(err)) != 0)
        return rayc__error(RAYC_EINVAL, "resources: %s", err);
    return 0;
}

int rayc_submit(const char *function, const rayc_arg *args, size_t nargs,
                const rayc_task_opts *opts, rayc_ref *returns)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    int num_returns = opts && opts->num_returns > 0 ? opts->num_returns : 1;
    if (function == NULL || *function == '\0' || strlen(function) > 200 ||
        (nargs > 0 && args == NULL) || returns == NULL || (opts && opts->num_returns < 0) ||
        num_returns > 10000)
        return rayc__error(RAYC_EINVAL, "rayc_submit: bad arguments");
    if (opts && opts->strategy == RAYC_SCHED_NODE &&
        (opts->node_id == NULL || strlen(opts->node_id) != 2 * NODE_ID_SIZE))
        return rayc__error(RAYC_EINVAL, "RAYC_SCHED_NODE needs a hex node_id");
    res_set demand;
    if ((rc = build_resources(opts, &demand)) != 0)
        return rc;

    /* Large values go to the store first (once), then travel as refs. */
    rayc_ref stack_puts[8], *puts = stack_puts;
    bool stack_isput[8], *isput = stack_isput;
    if (nargs > 8) {
        puts = calloc(nargs, sizeof(*puts));
        isput = calloc(nargs, sizeof(*isput));
        if (!puts || !isput) {
            rc = rayc__error(RAYC_ENOMEM, "out of memory");
            goto out_puts;
        }
    } else {
        memset(stack_isput, 0, sizeof(stack_isput));
    }
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].kind == RAYC_ARG_VALUE && args[i].size > c->inline_max) {
            if ((rc = rayc_put(args[i].data, args[i].size, &puts[i])) != 0)
                goto out_puts;
            isput[i] = true;
        } else if (args[i].kind != RAYC_ARG_VALUE && args[i].kind != RAYC_ARG_REF) {
            rc = rayc__error(RAYC_EINVAL, "argument %zu has an unknown kind", i);
            goto out_puts;
        } else if (args[i].kind == RAYC_ARG_VALUE && args[i].size > 0 && !args[i].data) {
            rc = rayc__error(RAYC_EINVAL, "argument %zu: NULL data", i);
            goto out_puts;
        }
    }

    otask *t = calloc(1, sizeof(*t));
    oarg stack_oargs[16], *oargs = nargs > 16 ? calloc(nargs, sizeof(*oargs)) : stack_oargs;
    object_id_t *held = calloc(nargs ? nargs : 1, sizeof(*held));
    if (!t || !oargs || !held || !(t->function = strdup(function))) {
        free(held);
        if (oargs != stack_oargs)
            free(oargs);
        if (t)
            free(t->function);
        free(t);
        rc = rayc__error(RAYC_ENOMEM, "out of memory");
        goto out_puts;
    }
    t->id = task_id_random(c->job);
    t->num_returns = (uint32_t)num_returns;
    int max_retries = opts ? opts->max_retries : 0;
    t->retries_left = max_retries == 0 ? DEFAULT_MAX_RETRIES : (max_retries < 0 ? 0 : max_retries);
    t->retry_exceptions = opts && opts->retry_exceptions;
    t->held = held;

    pthread_mutex_lock(&c->mu);
    bool pending = false;
    ref_entry *failed = NULL;
    for (size_t i = 0; i < nargs; i++) {
        oarg *a = &oargs[i];
        memset(a, 0, sizeof(*a));
        if (args[i].kind == RAYC_ARG_VALUE && !isput[i]) {
            a->data = args[i].data;
            a->size = args[i].size;
            continue;
        }
        a->is_ref = true;
        memcpy(a->ref.b, isput[i] ? puts[i].id : args[i].ref.id, OBJECT_ID_SIZE);
        ref_entry *e = reft_get_or_add(&c->refs, &a->ref, NULL);
        if (e == NULL)
            continue;
        if (!isput[i])
            e->refs++; /* the task holds its argument until it ends */
        t->held[t->nheld++] = a->ref;
        if (e->status != RAYC_OK)
            failed = e;
        else if (e->owned && !e->sealed && !e->in_store)
            pending = true;
        else if (!e->in_store && e->sealed && e->owned && e->size <= c->inline_max) {
            a->is_ref = false;
            a->data = e->data;
            a->size = e->size;
        } else {
            a->size = e->size;
            if (e->in_store)
                a->node = e->node, a->has_node = true;
        }
    }
    for (int i = 0; i < num_returns; i++) {
        object_id_t oid = object_id_for_return(&t->id, (uint32_t)i + 1);
        ref_entry *e = reft_get_or_add(&c->refs, &oid, NULL);
        if (e) {
            e->owned = true;
            e->refs = 1;
        }
        memcpy(returns[i].id, oid.b, OBJECT_ID_SIZE);
    }
    otask_insert(t);

    Rpc__TaskSpec spec = RPC__TASK_SPEC__INIT;
    Rpc__Resource rs[RES_MAX], *rps[RES_MAX];
    for (int i = 0; i < demand.n; i++) {
        rpc__resource__init(&rs[i]);
        rs[i].name = demand.name[i];
        rs[i].amount = demand.amount[i];
        rps[i] = &rs[i];
    }
    uint8_t target[NODE_ID_SIZE];
    spec.task_id.data = t->id.b;
    spec.task_id.len = TASK_ID_SIZE;
    spec.job_id = job_id_to_int(c->job);
    spec.function = (char *)function;
    spec.num_returns = (uint32_t)num_returns;
    spec.n_resources = (size_t)demand.n;
    spec.resources = rps;
    spec.owner_id.data = c->worker_id.b;
    spec.owner_id.len = WORKER_ID_SIZE;
    spec.owner_node_id.data = c->node_id.b;
    spec.owner_node_id.len = NODE_ID_SIZE;
    spec.name = (char *)(opts && opts->name ? opts->name : "");
    spec.max_retries = t->retries_left;
    spec.retry_exceptions = t->retry_exceptions;
    spec.strategy = opts ? opts->strategy : 0;
    spec.soft = opts && opts->soft;
    if (opts && opts->strategy == RAYC_SCHED_NODE &&
        id_from_hex(opts->node_id, target, NODE_ID_SIZE) == 0) {
        spec.node_id.data = target;
        spec.node_id.len = NODE_ID_SIZE;
        t->hard_pin = !opts->soft;
        memcpy(t->pin_node.b, target, NODE_ID_SIZE);
    }

    if (failed) {
        /* A dependency failed already: this task fails the same way, unrun. */
        fail_returns(t, failed->status, failed->error ? failed->error : "");
        finish(t);
        rc = 0;
    } else if (!pending) {
        Rpc__TaskArg stack_args[16], *targs = stack_args;
        Rpc__TaskArg *stack_ptrs[16], **ptrs = stack_ptrs;
        if (nargs > 16) {
            targs = malloc(nargs * sizeof(*targs));
            ptrs = malloc(nargs * sizeof(*ptrs));
        }
        if (targs && ptrs) {
            fill_spec_args(&spec, oargs, nargs, targs, ptrs);
            rc = send_spec(t, &spec);
        } else {
            rc = rayc__error(RAYC_ENOMEM, "out of memory");
        }
        if (targs != stack_args)
            free(targs);
        if (ptrs != stack_ptrs)
            free(ptrs);
        if (rc != 0) {
            fail_returns(t, rc, "could not submit the task to the raylet");
            finish(t);
            rc = rayc__error(rc, "rayc_submit: the raylet is unreachable");
        }
    } else {
        /* Keep a heap copy of the spec and of inline argument bytes until the
         * arguments are known. */
        size_t total = 0;
        for (size_t i = 0; i < nargs; i++)
            if (!oargs[i].is_ref)
                total += oargs[i].size;
        Rpc__SubmitTask st = RPC__SUBMIT_TASK__INIT;
        st.spec = &spec;
        size_t plen = protobuf_c_message_get_packed_size(&st.base);
        uint8_t *packed = malloc(plen ? plen : 1);
        t->args = malloc(nargs * sizeof(*t->args));
        t->arg_copy = malloc(total ? total : 1);
        if (packed && t->args && t->arg_copy) {
            protobuf_c_message_pack(&st.base, packed);
            Rpc__SubmitTask *copy = (Rpc__SubmitTask *)msg_unpack(MSG_SUBMIT_TASK, packed, plen);
            if (copy) {
                t->tmpl = copy->spec;
                copy->spec = NULL;
                msg_free(&copy->base);
            }
        }
        free(packed);
        if (t->tmpl == NULL) {
            fail_returns(t, RAYC_ENOMEM, "out of memory");
            finish(t);
            rc = rayc__error(RAYC_ENOMEM, "out of memory");
        } else {
            size_t off = 0;
            for (size_t i = 0; i < nargs; i++) {
                t->args[i] = oargs[i];
                if (!oargs[i].is_ref) {
                    memcpy(t->arg_copy + off, oargs[i].data, oargs[i].size);
                    t->args[i].data = t->arg_copy + off;
                    off += oargs[i].size;
                }
            }
            t->nargs = nargs;
            t->dnext = c->deferred;
            c->deferred = t;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (oargs != stack_oargs)
        free(oargs);
    if (rc == 0) {
        if (puts != stack_puts)
            free(puts);
        if (isput != stack_isput)
            free(isput);
        return 0;
    }
    /* On failure the return refs are still handed out (as errors); drop them. */
    for (int i = 0; i < num_returns; i++)
        rayc_ref_release(returns[i]);
    return rc;
out_puts:
    for (size_t i = 0; i < nargs; i++)
        if (isput && isput[i])
            rayc_ref_release(puts[i]);
    if (puts != stack_puts)
        free(puts);
    if (isput != stack_isput)
        free(isput);
    return rc;
}

int rayc_cancel(rayc_ref ref, int force)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    object_id_t oid;
    memcpy(oid.b, ref.id, OBJECT_ID_SIZE);
    task_id_t tid = object_id_task(&oid);
    pthread_mutex_lock(&c->mu);
    otask *t = otask_find(tid.b);
    if (t == NULL) {
        pthread_mutex_unlock(&c->mu);
        return rayc__error(RAYC_ENOTFOUND, "rayc_cancel: no pending task of this process made it");
    }
    t->cancelled = true;
    t->retries_left = 0;
    if (!t->submitted) {
        deferred_remove(t);
        fail_returns(t, RAYC_ECANCELLED, "cancelled");
        finish(t);
        run_deferred();
    } else {
        Rpc__CancelTask m = RPC__CANCEL_TASK__INIT;
        m.task_id.data = tid.b;
        m.task_id.len = TASK_ID_SIZE;
        m.force = force != 0;
        m.owner_id.data = c->worker_id.b;
        m.owner_id.len = WORKER_ID_SIZE;
        cw_conn_send(c->raylet, MSG_CANCEL_TASK, &m.base);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ------------------------------------------------------------ blocking */

void core__block(void)
{
    core_t *c = &rayc__core;
    if (!c->is_worker || !c->in_task || c->blocked)
        return;
    c->blocked = true;
    ProtobufCBinaryData ids[256];
    size_t n = c->worker_give_back ? c->worker_give_back(ids, 256) : 0;
    Rpc__WorkerBlocked m = RPC__WORKER_BLOCKED__INIT;
    m.n_give_back = n;
    m.give_back = ids;
    cw_conn_send(c->raylet, MSG_WORKER_BLOCKED, &m.base);
}

void core__unblock(void)
{
    core_t *c = &rayc__core;
    if (!c->blocked)
        return;
    c->blocked = false;
    Rpc__WorkerUnblocked m = RPC__WORKER_UNBLOCKED__INIT;
    cw_conn_send(c->raylet, MSG_WORKER_UNBLOCKED, &m.base);
}
