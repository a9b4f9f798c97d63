/*
 * task_executor.c -- see task_executor.h.
 *
 * Pushed tasks queue here (the raylet pipelines several per lease). When the
 * running task blocks in get/wait, tex_block() hands the queued ones back
 * to the raylet so they run elsewhere and cannot deadlock behind it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "task_executor_internal.h"
#include "task_log.h"

#include "rayc.h"
#include "errors.h"
#include "log.h"
#include "util.h"

/* ------------------------------------------------------------ task API */

static int check_index(rayc_ctx *ctx, size_t index)
{
    if (ctx && ctx->gen)
        return rayc__error(RAYC_EINVAL, "a generator has no returns: it yields items");
    if (ctx == NULL || index >= ctx->nrets)
        return rayc__error(RAYC_EINVAL, "return index %zu out of range (task has %zu)", index,
                           ctx ? ctx->nrets : 0);
    if (ctx->rets[index].set)
        return rayc__error(RAYC_EINVAL, "return %zu set twice", index);
    return 0;
}

/* Space for return index: inline heap buffer or a store object. */
static void *return_space(rayc_ctx *ctx, size_t index, size_t size, int *rc)
{
    ret_slot *r = &ctx->rets[index];
    r->id = object_id_for_return(&ctx->task, (uint32_t)index + 1);
    r->size = size;
    const tex_deps *d = &ctx->x->d;
    if (size <= d->inline_max) {
        r->data = malloc(size ? size : 1);
        if (r->data == NULL) {
            *rc = rayc__error(RAYC_ENOMEM, "out of memory for a %zu-byte return", size);
            return NULL;
        }
    } else {
        uint64_t off;
        *rc = storec_create(d->store, &r->id, size, &off);
        if (*rc == RAYC_EEXIST) {
            /* A task run again (lineage) on a node that already holds a copy
             * of its result: the copy is the result; this write goes nowhere. */
            r->data = malloc(size);
            if (r->data == NULL) {
                *rc = rayc__error(RAYC_ENOMEM, "out of memory for a %zu-byte return", size);
                return NULL;
            }
            r->existed = true;
            r->in_store = true;
        } else if (*rc != 0) {
            return NULL;
        } else {
            r->in_store = true;
            r->data = d->arena + off;
        }
    }
    r->set = true;
    *rc = 0;
    return r->data;
}

int rayc_return(rayc_ctx *ctx, size_t index, const void *data, size_t size)
{
    int rc = check_index(ctx, index);
    if (rc != 0)
        return rc;
    if (size > 0 && data == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_return: NULL data");
    void *p = return_space(ctx, index, size, &rc);
    if (p == NULL)
        return rc;
    if (size)
        memcpy(p, data, size);
    return 0;
}

void *rayc_return_alloc(rayc_ctx *ctx, size_t index, size_t size)
{
    int rc = check_index(ctx, index);
    if (rc != 0)
        return NULL;
    return return_space(ctx, index, size, &rc);
}

int rayc_fail(rayc_ctx *ctx, const char *fmt, ...)
{
    if (ctx == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
    va_end(ap);
    ctx->failed = true;
    return -1;
}

/* ------------------------------------------------------------ code */

static uint64_t name_hash(const char *s)
{
    return id_hash(s, strlen(s));
}

void *tex_symbol(task_executor *x, const char *prefix, const char *name, char *err, size_t errlen)
{
    if (x->bind_error[0]) {
        snprintf(err, errlen, "%s", x->bind_error);
        return NULL;
    }
    char sym[400];
    snprintf(sym, sizeof(sym), "%s%s", prefix, name);
    for (size_t i = 0; i < x->nlibs; i++) {
        void *p = dlsym(x->libs[i], sym);
        if (p)
            return p;
    }
    snprintf(err, errlen, "'%s' is not in any code library of job %u (%zu loaded)", name, x->job_id,
             x->nlibs);
    return NULL;
}

/* Find a task function in the job's libraries (cached after the first
 * lookup). NULL with ctx-free error text in err when absent. */
static rayc_fn lookup(task_executor *x, const char *name, char *err, size_t errlen)
{
    size_t b = name_hash(name) & (FN_BUCKETS - 1);
    for (fn_entry *e = x->fns[b]; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e->fn;
    if (x->bind_error[0]) {
        snprintf(err, errlen, "%s", x->bind_error);
        return NULL;
    }
    char sym[300];
    for (size_t i = 0; i < x->nlibs; i++) {
        snprintf(sym, sizeof(sym), "rayc__fn_%s", name);
        rayc_fn *fp = dlsym(x->libs[i], sym);
        if (fp == NULL)
            continue;
        snprintf(sym, sizeof(sym), "rayc__abi_%s", name);
        const int *abi = dlsym(x->libs[i], sym);
        if (abi == NULL || *abi != RAYC_ABI_VERSION) {
            snprintf(err, errlen, "function '%s' was built against rayc ABI %d; this worker is %d",
                     name, abi ? *abi : -1, RAYC_ABI_VERSION);
            return NULL;
        }
        fn_entry *e = malloc(sizeof(*e));
        if (e && (e->name = strdup(name)) != NULL) {
            e->fn = *fp;
            e->next = x->fns[b];
            x->fns[b] = e;
        } else {
            free(e);
        }
        return *fp;
    }
    snprintf(err, errlen, "function '%s' is not in any code library of job %u (%zu loaded)", name,
             x->job_id, x->nlibs);
    return NULL;
}

static int on_bind_job(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    task_executor *x = arg;
    Rpc__BindJob *b = (Rpc__BindJob *)msg;
    (void)type;
    x->job_id = b->job_id;
    *x->d.job = job_id_from_int(b->job_id);
    for (size_t i = 0; i < b->n_env; i++) {
        char *eq = strchr(b->env[i], '=');
        if (eq == NULL || eq == b->env[i])
            continue;
        *eq = '\0';
        setenv(b->env[i], eq + 1, 1);
        *eq = '=';
    }
    for (size_t i = 0; i < b->n_code_paths && x->nlibs < MAX_LIBS; i++) {
        void *h = dlopen(b->code_paths[i], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            snprintf(x->bind_error, sizeof(x->bind_error), "cannot load code library: %s",
                     dlerror());
            continue;
        }
        x->libs[x->nlibs++] = h;
    }
    return 0;
}

/* ------------------------------------------------------------ queue */

/* x->mu held. -1 when out of memory. */
static int queue_push(task_executor *x, Rpc__PushTask *p)
{
    if (x->qlen == x->qcap) {
        size_t cap = x->qcap ? x->qcap * 2 : 32;
        Rpc__PushTask **nq = malloc(cap * sizeof(*nq));
        if (nq == NULL)
            return -1;
        for (size_t i = 0; i < x->qlen; i++)
            nq[i] = x->queue[(x->qhead + i) % x->qcap];
        free(x->queue);
        x->queue = nq;
        x->qcap = cap;
        x->qhead = 0;
    }
    x->queue[(x->qhead + x->qlen) % x->qcap] = p;
    x->qlen++;
    return 0;
}

/* x->mu held. */
static Rpc__PushTask *queue_pop(task_executor *x)
{
    if (x->qlen == 0)
        return NULL;
    Rpc__PushTask *p = x->queue[x->qhead];
    x->qhead = (x->qhead + 1) % x->qcap;
    x->qlen--;
    return p;
}

/* The running task blocks: hand back everything queued behind it (up to
 * cap), their ids copied into store[]. */
static size_t give_back(task_executor *x, ProtobufCBinaryData *ids, task_id_t *store, size_t cap)
{
    pthread_mutex_lock(&x->mu);
    size_t n = 0;
    while (n < cap && x->qlen > 0) {
        Rpc__PushTask *p = queue_pop(x);
        memcpy(store[n].b, p->spec->task_id.data, TASK_ID_SIZE);
        ids[n].len = TASK_ID_SIZE;
        ids[n].data = store[n].b;
        n++;
        msg_free(&p->base);
    }
    pthread_mutex_unlock(&x->mu);
    return n;
}

static void report(rayc_ctx *ctx, int status, const char *message);

/* The owner cancelled a task pushed here: drop it if it has not started. */
static int on_cancel(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    task_executor *x = arg;
    const Rpc__CancelTask *m = (const Rpc__CancelTask *)msg;
    (void)type;
    Rpc__PushTask *found = NULL;
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < x->qlen && found == NULL; i++) {
        size_t k = (x->qhead + i) % x->qcap;
        Rpc__PushTask *p = x->queue[k];
        if (m->task_id.len == TASK_ID_SIZE &&
            memcmp(p->spec->task_id.data, m->task_id.data, TASK_ID_SIZE) == 0) {
            found = p;
            for (size_t j = i; j + 1 < x->qlen; j++) /* close the gap, keep order */
                x->queue[(x->qhead + j) % x->qcap] = x->queue[(x->qhead + j + 1) % x->qcap];
            x->qlen--;
        }
    }
    pthread_mutex_unlock(&x->mu);
    if (found == NULL) {
        /* Running or done: a running task is only stopped by force, but a
         * generator stops at its next yield. */
        if (m->task_id.len == TASK_ID_SIZE)
            tex__gen_cancel(x, m->task_id.data);
        return 0;
    }
    rayc_ctx ctx = {.x = x, .spec = found->spec};
    char text[300];
    snprintf(text, sizeof(text), "%s: cancelled", found->spec->function);
    report(&ctx, RAYC_ECANCELLED, text);
    msg_free(&found->base);
    return 0;
}

/* The owner took items of a generator: the running one may yield more; a
 * queued one starts with the count. */
static int on_stream_ack(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    (void)type;
    tex_stream_ack(arg, (const Rpc__StreamAck *)msg);
    return 0;
}

void tex_stream_ack(task_executor *x, const Rpc__StreamAck *a)
{
    if (a->task_id.len != TASK_ID_SIZE)
        return;
    pthread_mutex_lock(&x->mu);
    bool found = false;
    for (tex_gen *g = x->gens; g && !found; g = g->next) {
        if (memcmp(g->task.b, a->task_id.data, TASK_ID_SIZE) == 0) {
            if (a->consumed > g->consumed)
                g->consumed = a->consumed;
            if (a->attempt == g->attempt && a->received_bytes > g->acked_bytes)
                g->acked_bytes = a->received_bytes;
            if (a->cancel)
                g->cancelled = true;
            found = true;
        }
    }
    for (size_t i = 0; i < x->qlen && !found; i++) {
        Rpc__TaskSpec *s = x->queue[(x->qhead + i) % x->qcap]->spec;
        if (memcmp(s->task_id.data, a->task_id.data, TASK_ID_SIZE) == 0) {
            if (a->consumed > s->stream_consumed)
                s->stream_consumed = a->consumed;
            found = true;
        }
    }
    pthread_cond_broadcast(&x->gen_cv);
    pthread_mutex_unlock(&x->mu);
}

/* The raylet wants tasks queued here back (a CPU is free elsewhere while
 * they wait behind the running one): give back those not started. */
static int on_steal(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    task_executor *x = arg;
    const Rpc__StealTasks *m = (const Rpc__StealTasks *)msg;
    (void)type;
    ProtobufCBinaryData ids[TEX_GIVE_BACK_MAX];
    task_id_t store[TEX_GIVE_BACK_MAX];
    size_t cap = m->max < TEX_GIVE_BACK_MAX ? m->max : TEX_GIVE_BACK_MAX;
    size_t n = give_back(x, ids, store, cap);
    Rpc__TasksGivenBack r = RPC__TASKS_GIVEN_BACK__INIT;
    r.n_task_ids = n;
    r.task_ids = ids;
    cw_conn_send(x->d.raylet, MSG_TASKS_GIVEN_BACK, &r.base);
    return 0;
}

/* A pushed task: queue it (the message is kept until it has run). */
static int on_push_task(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    task_executor *x = arg;
    (void)type;
    Rpc__PushTask *p = (Rpc__PushTask *)msg;
    if (p->spec == NULL || p->spec->task_id.len != TASK_ID_SIZE)
        return 0;
    if (x->blocked) {
        /* Pushed before the raylet saw we block: give it straight back. */
        ProtobufCBinaryData id = p->spec->task_id;
        Rpc__WorkerBlocked m = RPC__WORKER_BLOCKED__INIT;
        m.n_give_back = 1;
        m.give_back = &id;
        cw_conn_send(x->d.raylet, MSG_WORKER_BLOCKED, &m.base);
        return 0;
    }
    pthread_mutex_lock(&x->mu);
    int kept = queue_push(x, p) == 0;
    pthread_mutex_unlock(&x->mu);
    return kept;
}

/* ------------------------------------------------------------ blocking */

void tex_block(void *arg)
{
    task_executor *x = arg;
    if (!x->in_task || x->blocked)
        return;
    x->blocked = true;
    ProtobufCBinaryData ids[TEX_GIVE_BACK_MAX];
    task_id_t store[TEX_GIVE_BACK_MAX];
    size_t n = give_back(x, ids, store, TEX_GIVE_BACK_MAX);
    if (x->lease)
        tex__lease_give_back(x->lease);
    Rpc__WorkerBlocked m = RPC__WORKER_BLOCKED__INIT;
    m.n_give_back = n;
    m.give_back = ids;
    cw_conn_send(x->d.raylet, MSG_WORKER_BLOCKED, &m.base);
}

void tex_unblock(void *arg)
{
    task_executor *x = arg;
    if (!x->blocked)
        return;
    x->blocked = false;
    Rpc__WorkerUnblocked m = RPC__WORKER_UNBLOCKED__INIT;
    cw_conn_send(x->d.raylet, MSG_WORKER_UNBLOCKED, &m.base);
}

bool tex_running(void *arg)
{
    task_executor *x = arg;
    return x->in_task && !x->blocked;
}

/* ------------------------------------------------------------ watcher */

static void *watcher_main(void *arg)
{
    task_executor *x = arg;
    for (;;) {
        pthread_mutex_lock(&x->mu);
        while (!x->watching && !x->stop_watcher)
            pthread_cond_wait(&x->watch_cv, &x->mu);
        bool stop = x->stop_watcher;
        pthread_mutex_unlock(&x->mu);
        if (stop || cw_conn_pump(x->d.raylet, 100) != 0)
            return NULL;
        tex__lease_poll(x);
    }
}

/* A task starts (on) or ended: the watcher reads the raylet meanwhile. */
void tex__watch(task_executor *x, bool on)
{
    pthread_mutex_lock(&x->mu);
    x->watching = on;
    if (on && !x->has_watcher)
        x->has_watcher = pthread_create(&x->watcher, NULL, watcher_main, x) == 0;
    if (on)
        pthread_cond_signal(&x->watch_cv);
    pthread_mutex_unlock(&x->mu);
}

/* ------------------------------------------------------------ running */

static void report(rayc_ctx *ctx, int status, const char *message)
{
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, status, message);
    Rpc__TaskDone done = RPC__TASK_DONE__INIT;
    done.task_id = ctx->spec->task_id;
    done.status = &st;
    done.owner_id = ctx->spec->owner_id;
    done.attempt = ctx->spec->attempt;
    done.num_items = ctx->gen ? ctx->gen->yielded : 0;
    done.scheduled_us = ctx->scheduled_us;
    done.start_us = ctx->start_us;
    done.end_us = wall_us();
    done.worker_pid = ctx->x->pid;
    Rpc__TaskReturn rs[16], *rps[16], *heap = NULL, **hptrs = NULL;
    Rpc__TaskReturn *r = rs, **rp = rps;
    if (status == RAYC_OK && ctx->nrets > 16) {
        heap = malloc(ctx->nrets * sizeof(*heap));
        hptrs = malloc(ctx->nrets * sizeof(*hptrs));
        if (heap && hptrs) {
            r = heap;
            rp = hptrs;
        } else {
            status = RAYC_ENOMEM;
            st.code = RAYC_ENOMEM;
            st.message = "out of memory reporting returns";
        }
    }
    if (status == RAYC_OK) {
        size_t n = 0;
        for (size_t i = 0; i < ctx->nrets; i++) {
            ret_slot *s = &ctx->rets[i];
            if (!s->set)
                continue;
            rpc__task_return__init(&r[n]);
            r[n].object_id.data = s->id.b;
            r[n].object_id.len = OBJECT_ID_SIZE;
            r[n].size = s->size;
            if (s->in_store) {
                r[n].in_store = true;
            } else {
                r[n].data.data = s->data;
                r[n].data.len = s->size;
            }
            rp[n] = &r[n];
            n++;
        }
        done.n_returns = n;
        done.returns = rp;
    }
    if (ctx->how && ctx->how->reply)
        ctx->how->reply(ctx->how->reply_arg, ctx->spec, &done);
    else
        cw_conn_send(ctx->x->d.raylet, MSG_TASK_DONE, &done.base);
    free(heap);
    free(hptrs);
}

/* The function failed: the store returns it made are freed (this worker
 * still owns them: sealed, then deleted), and the failure reported. */
static void report_failure(rayc_ctx *ctx, int rc)
{
    const tex_deps *d = &ctx->x->d;
    /* The task's name (rayc_task_opts.name) leads when it has one. */
    char who[512];
    if (ctx->spec->name && ctx->spec->name[0])
        snprintf(who, sizeof(who), "%s (%s)", ctx->spec->name, ctx->spec->function);
    else
        snprintf(who, sizeof(who), "%s", ctx->spec->function);
    const char *function = who;
    char text[1400];
    if (ctx->failed)
        snprintf(text, sizeof(text), "%s: %s", function, ctx->error);
    else
        snprintf(text, sizeof(text), "%s: returned %d", function, rc);
    Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
    ProtobufCBinaryData ids[64];
    for (size_t i = 0; i < ctx->nrets && del.n_object_ids < 64; i++)
        if (ctx->rets[i].in_store && !ctx->rets[i].existed)
            ids[del.n_object_ids++] = (ProtobufCBinaryData){OBJECT_ID_SIZE, ctx->rets[i].id.b};
    del.object_ids = ids;
    for (size_t i = 0; i < ctx->nrets; i++)
        if (ctx->rets[i].in_store && !ctx->rets[i].existed)
            storec_seal(d->store, &ctx->rets[i].id, false);
    if (del.n_object_ids)
        cw_conn_send(d->raylet, MSG_DELETE_OBJECTS, &del.base);
    report(ctx, RAYC_ETASK, text);
}

/* Per-run arrays: on the stack for small tasks. */
typedef struct {
    ret_slot rets[8];
    rayc_buf bufs[16];
    rayc_value vals[16];
    rayc_ref refs[16];
    size_t map[16];
} run_stack;

typedef struct {
    rayc_buf *bufs;   /* what the function gets */
    rayc_value *vals; /* views of the ref arguments */
    rayc_ref *refs;   /* the ref arguments */
    size_t *map;      /* refs[i] is argument map[i] */
    size_t nrefs;
} run_args;

/* Point the arrays at st or the heap. false when out of memory. */
static bool run_alloc(rayc_ctx *ctx, run_args *ra, run_stack *st, size_t nargs)
{
    ctx->rets = ctx->nrets <= 8 ? st->rets : calloc(ctx->nrets, sizeof(*ctx->rets));
    ra->bufs = nargs <= 16 ? st->bufs : calloc(nargs, sizeof(*ra->bufs));
    ra->vals = nargs <= 16 ? st->vals : calloc(nargs, sizeof(*ra->vals));
    ra->refs = nargs <= 16 ? st->refs : calloc(nargs, sizeof(*ra->refs));
    ra->map = nargs <= 16 ? st->map : calloc(nargs, sizeof(*ra->map));
    ra->nrefs = 0;
    if (ctx->rets)
        memset(ctx->rets, 0, ctx->nrets * sizeof(*ctx->rets));
    return ctx->rets && ra->bufs && ra->vals && ra->refs && ra->map;
}

static void run_release(rayc_ctx *ctx, run_args *ra, run_stack *st)
{
    for (size_t i = 0; i < ra->nrefs; i++)
        rayc_value_release(&ra->vals[i]);
    for (size_t i = 0; ctx->rets && i < ctx->nrets; i++)
        if (ctx->rets[i].set && (!ctx->rets[i].in_store || ctx->rets[i].existed))
            free(ctx->rets[i].data);
    if (ctx->rets != st->rets)
        free(ctx->rets);
    if (ra->bufs != st->bufs)
        free(ra->bufs);
    if (ra->vals != st->vals)
        free(ra->vals);
    if (ra->refs != st->refs)
        free(ra->refs);
    if (ra->map != st->map)
        free(ra->map);
}

/* Arguments: inline bytes from the spec; store objects zero-copy (a get,
 * which blocks the task while they are pulled). 0, or a reported failure. */
static int load_args(rayc_ctx *ctx, run_args *ra)
{
    Rpc__TaskSpec *s = ctx->spec;
    for (size_t i = 0; i < s->n_args; i++) {
        Rpc__TaskArg *a = s->args[i];
        if (a->is_ref && a->object_id.len == OBJECT_ID_SIZE) {
            memcpy(ra->refs[ra->nrefs].id, a->object_id.data, OBJECT_ID_SIZE);
            ra->map[ra->nrefs++] = i;
        } else {
            ra->bufs[i].data = a->data.data;
            ra->bufs[i].size = a->data.len;
        }
    }
    if (ra->nrefs == 0)
        return 0;
    int rc = rayc_get(ra->refs, ra->nrefs, ra->vals, -1);
    if (rc != 0) {
        char text[1100];
        snprintf(text, sizeof(text), "%s: argument unavailable: %s", s->function,
                 rayc_last_error());
        report(ctx, rc == RAYC_ETASK ? RAYC_ETASK : RAYC_EOBJECT_LOST, text);
        ra->nrefs = 0;
        return rc;
    }
    for (size_t i = 0; i < ra->nrefs; i++) {
        ra->bufs[ra->map[i]].data = ra->vals[i].data;
        ra->bufs[ra->map[i]].size = ra->vals[i].size;
    }
    return 0;
}

void tex_run_spec(task_executor *x, Rpc__TaskSpec *s, const tex_how *how)
{
    bool as_task = how == NULL || how->as_task;
    rayc_ctx ctx = {.x = x,
                    .spec = s,
                    .how = how,
                    .scheduled_us = how ? how->scheduled_us : 0,
                    .start_us = wall_us()};
    if (as_task) /* the executor's thread: the one writer of the running note */
        tev_running(x->d.events, s, ctx.scheduled_us, ctx.start_us);
    tlog_set_task(s, x->job_id);
    tex_gen gen;
    memcpy(ctx.task.b, s->task_id.data, TASK_ID_SIZE);
    ctx.nrets = s->streaming ? 0 : s->num_returns ? s->num_returns : 1;
    run_stack st;
    run_args ra;
    if (!run_alloc(&ctx, &ra, &st, s->n_args)) {
        report(&ctx, RAYC_ENOMEM, "worker out of memory");
        goto out;
    }
    if (as_task) {
        *x->d.task = ctx.task;
        *x->d.put_index = 0;
        x->in_task = true;
        tex__watch(x, true);
    }
    if (load_args(&ctx, &ra) != 0)
        goto out;
    char err[512];
    int rc;
    if (s->streaming)
        tex__gen_begin(&ctx, &gen);
    if (how && how->body) {
        rc = how->body(how->body_arg, &ctx, s, ra.bufs, s->n_args);
        if (rc == RAYC_ENOTFOUND && !ctx.failed) {
            if (ctx.gen)
                tex__gen_end(&ctx, false);
            report(&ctx, RAYC_ENOTFOUND, rayc_last_error());
            goto out;
        }
    } else {
        rayc_fn fn = lookup(x, s->function, err, sizeof(err));
        if (fn == NULL) {
            if (ctx.gen)
                tex__gen_end(&ctx, false);
            report(&ctx, RAYC_ENOTFOUND, err);
            goto out;
        }
        rc = fn(&ctx, ra.bufs, s->n_args);
    }
    if (ctx.gen && tex__gen_end(&ctx, rc == 0 && !ctx.failed)) {
        char text[300];
        snprintf(text, sizeof(text), "%s: cancelled", s->function);
        report(&ctx, RAYC_ECANCELLED, text);
        goto out;
    }
    if (rc != 0 || ctx.failed) {
        report_failure(&ctx, rc);
        goto out;
    }
    for (size_t i = 0; i < ctx.nrets; i++)
        if (ctx.rets[i].in_store && !ctx.rets[i].existed)
            storec_seal(x->d.store, &ctx.rets[i].id, false);
    report(&ctx, RAYC_OK, "");
out:
    if (as_task)
        tev_running(x->d.events, NULL, 0, 0);
    tlog_set_task(NULL, 0);
    run_release(&ctx, &ra, &st);
    if (as_task) {
        x->in_task = false;
        tex__watch(x, false);
        tex_unblock(x);
    }
}

static void run_task(task_executor *x, Rpc__PushTask *p)
{
    tex_how how = {.as_task = true, .scheduled_us = p->scheduled_us};
    tex_run_spec(x, p->spec, &how);
}

bool tex_failed(const rayc_ctx *ctx)
{
    return ctx->failed;
}

void tex_set_actor_handler(task_executor *x, tex_actor_fn fn, void *arg)
{
    x->actor_create = fn;
    x->actor_arg = arg;
}

rayc_actor rayc_actor_self(rayc_ctx *ctx)
{
    rayc_actor a;
    memset(&a, 0, sizeof(a));
    if (ctx && ctx->spec && ctx->spec->actor_id.len == sizeof(a.id))
        memcpy(a.id, ctx->spec->actor_id.data, sizeof(a.id));
    return a;
}

/* ------------------------------------------------------------ lifecycle */

task_executor *tex_new(const tex_deps *deps)
{
    task_executor *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->d = *deps;
    x->pid = (int32_t)getpid();
    x->lease_lfd = -1;
    x->lease_ufd = -1;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->gen_cv, NULL);
    pthread_cond_init(&x->watch_cv, NULL);
    return x;
}

void tex_free(task_executor *x)
{
    if (x == NULL)
        return;
    if (x->has_watcher) {
        pthread_mutex_lock(&x->mu);
        x->stop_watcher = true;
        pthread_cond_signal(&x->watch_cv);
        pthread_mutex_unlock(&x->mu);
        pthread_join(x->watcher, NULL);
    }
    if (x->lease_lfd >= 0)
        close(x->lease_lfd);
    if (x->lease_ufd >= 0)
        close(x->lease_ufd);
    while (x->qlen > 0) {
        Rpc__PushTask *p = queue_pop(x);
        msg_free(&p->base);
    }
    free(x->queue);
    for (size_t b = 0; b < FN_BUCKETS; b++) {
        for (fn_entry *e = x->fns[b], *n; e; e = n) {
            n = e->next;
            free(e->name);
            free(e);
        }
    }
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->gen_cv);
    free(x);
}

int tex_register(task_executor *x, frame_router *r)
{
    if (router_add(r, MSG_PUSH_TASK, on_push_task, x) != 0 ||
        router_add(r, MSG_BIND_JOB, on_bind_job, x) != 0 ||
        router_add(r, MSG_CANCEL_TASK, on_cancel, x) != 0 ||
        router_add(r, MSG_STREAM_ACK, on_stream_ack, x) != 0 ||
        router_add(r, MSG_STEAL_TASKS, on_steal, x) != 0)
        return -1;
    return 0;
}

int tex_run(task_executor *x)
{
    for (;;) {
        pthread_mutex_lock(&x->mu);
        Rpc__PushTask *p = queue_pop(x);
        pthread_mutex_unlock(&x->mu);
        if (p == NULL) {
            if (cw_conn_pump(x->d.raylet, -1) != 0)
                return 0; /* the raylet is gone: so are we */
            continue;
        }
        if (p->spec->lease) {
            tex__serve_lease(x, p);
            msg_free(&p->base);
            continue;
        }
        if (p->spec->actor_creation && x->actor_create) {
            /* The actor takes this worker over; the message is its now. */
            x->actor_create(x->actor_arg, x, p);
            continue;
        }
        run_task(x, p);
        msg_free(&p->base);
    }
}
