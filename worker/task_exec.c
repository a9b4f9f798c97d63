/*
 * task_exec.c -- what rayc_worker does: bind to a job (environment, code),
 * run pushed tasks one at a time, and report each (TaskDone). Also the task
 * side of the API: rayc_return, rayc_return_alloc, rayc_fail, rayc_yield.
 *
 * Pushed tasks queue here (the raylet pipelines several per lease). When the
 * running task blocks in get/wait, core__block() hands the queued ones back
 * to the raylet so they run elsewhere and cannot deadlock behind it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "errors.h"
#include "log.h"
#include "util.h"

#define FN_BUCKETS 256
#define MAX_LIBS   64

typedef struct {
    bool set;
    bool in_store;
    bool sealed;
    bool existed; /* a copy was already here (a rebuilt task): written to scratch */
    object_id_t id;
    uint8_t *data; /* inline: heap buffer; store: arena */
    size_t size;
} ret_slot;

struct rayc_ctx {
    Rpc__TaskSpec *spec;
    task_id_t task;
    ret_slot *rets;
    size_t nrets;
    bool failed;
    char error[1024];
};

typedef struct fn_entry {
    char *name;
    rayc_fn fn;
    struct fn_entry *next;
} fn_entry;

/* Worker state: one process, one job at a time. */
static struct {
    pthread_mutex_t mu;
    Rpc__PushTask **queue; /* pushed, not started (ring) */
    size_t qhead, qlen, qcap;
    uint32_t job_id;
    void *libs[MAX_LIBS];
    size_t nlibs;
    char bind_error[512];
    fn_entry *fns[FN_BUCKETS];
} w = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------ task API */

static int check_index(rayc_ctx *ctx, size_t index)
{
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
    if (size <= rayc__core.inline_max) {
        r->data = malloc(size ? size : 1);
        if (r->data == NULL) {
            *rc = rayc__error(RAYC_ENOMEM, "out of memory for a %zu-byte return", size);
            return NULL;
        }
    } else {
        uint64_t off;
        *rc = core__store_create(&r->id, size, &off);
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
            r->data = rayc__core.arena + off;
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

int rayc_yield(rayc_ctx *ctx, const void *data, size_t size)
{
    (void)data;
    (void)size;
    if (ctx == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_yield: NULL context");
    return rayc__error(RAYC_EINVAL,
                       "rayc_yield: this task was not submitted with rayc_submit_stream");
}

/* ------------------------------------------------------------ code */

static uint64_t name_hash(const char *s)
{
    return id_hash(s, strlen(s));
}

/* Find a task function in the job's libraries (cached after the first
 * lookup). NULL with ctx-free error text in err when absent. */
static rayc_fn lookup(const char *name, char *err, size_t errlen)
{
    size_t b = name_hash(name) & (FN_BUCKETS - 1);
    for (fn_entry *e = w.fns[b]; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e->fn;
    if (w.bind_error[0]) {
        snprintf(err, errlen, "%s", w.bind_error);
        return NULL;
    }
    char sym[300];
    for (size_t i = 0; i < w.nlibs; i++) {
        snprintf(sym, sizeof(sym), "rayc__fn_%s", name);
        rayc_fn *fp = dlsym(w.libs[i], sym);
        if (fp == NULL)
            continue;
        snprintf(sym, sizeof(sym), "rayc__abi_%s", name);
        const int *abi = dlsym(w.libs[i], sym);
        if (abi == NULL || *abi != RAYC_ABI_VERSION) {
            snprintf(err, errlen, "function '%s' was built against rayc ABI %d; this worker is %d",
                     name, abi ? *abi : -1, RAYC_ABI_VERSION);
            return NULL;
        }
        fn_entry *e = malloc(sizeof(*e));
        if (e && (e->name = strdup(name)) != NULL) {
            e->fn = *fp;
            e->next = w.fns[b];
            w.fns[b] = e;
        } else {
            free(e);
        }
        return *fp;
    }
    snprintf(err, errlen, "function '%s' is not in any code library of job %u (%zu loaded)", name,
             w.job_id, w.nlibs);
    return NULL;
}

static void bind_job(Rpc__BindJob *b)
{
    w.job_id = b->job_id;
    rayc__core.job = job_id_from_int(b->job_id);
    for (size_t i = 0; i < b->n_env; i++) {
        char *eq = strchr(b->env[i], '=');
        if (eq == NULL || eq == b->env[i])
            continue;
        *eq = '\0';
        setenv(b->env[i], eq + 1, 1);
        *eq = '=';
    }
    for (size_t i = 0; i < b->n_code_paths && w.nlibs < MAX_LIBS; i++) {
        void *h = dlopen(b->code_paths[i], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            snprintf(w.bind_error, sizeof(w.bind_error), "cannot load code library: %s", dlerror());
            continue;
        }
        w.libs[w.nlibs++] = h;
    }
}

/* ------------------------------------------------------------ queue */

static int queue_push(Rpc__PushTask *p)
{
    if (w.qlen == w.qcap) {
        size_t cap = w.qcap ? w.qcap * 2 : 32;
        Rpc__PushTask **nq = malloc(cap * sizeof(*nq));
        if (nq == NULL)
            return -1;
        for (size_t i = 0; i < w.qlen; i++)
            nq[i] = w.queue[(w.qhead + i) % w.qcap];
        free(w.queue);
        w.queue = nq;
        w.qcap = cap;
        w.qhead = 0;
    }
    w.queue[(w.qhead + w.qlen) % w.qcap] = p;
    w.qlen++;
    return 0;
}

static Rpc__PushTask *queue_pop(void)
{
    if (w.qlen == 0)
        return NULL;
    Rpc__PushTask *p = w.queue[w.qhead];
    w.qhead = (w.qhead + 1) % w.qcap;
    w.qlen--;
    return p;
}

/* The running task blocks: hand back everything queued behind it. */
static size_t give_back(ProtobufCBinaryData *ids, size_t cap)
{
    pthread_mutex_lock(&w.mu);
    size_t n = 0;
    while (n < cap && w.qlen > 0) {
        Rpc__PushTask *p = queue_pop();
        ids[n].len = TASK_ID_SIZE;
        ids[n].data = malloc(TASK_ID_SIZE);
        if (ids[n].data)
            memcpy(ids[n++].data, p->spec->task_id.data, TASK_ID_SIZE);
        msg_free(&p->base);
    }
    pthread_mutex_unlock(&w.mu);
    return n;
}

static void report(rayc_ctx *ctx, int status, const char *message);

/* The owner cancelled a task pushed here: drop it if it has not started. */
static void cancel_queued(const Rpc__CancelTask *m)
{
    Rpc__PushTask *found = NULL;
    pthread_mutex_lock(&w.mu);
    for (size_t i = 0; i < w.qlen && found == NULL; i++) {
        size_t k = (w.qhead + i) % w.qcap;
        Rpc__PushTask *p = w.queue[k];
        if (m->task_id.len == TASK_ID_SIZE &&
            memcmp(p->spec->task_id.data, m->task_id.data, TASK_ID_SIZE) == 0) {
            found = p;
            for (size_t j = i; j + 1 < w.qlen; j++) /* close the gap, keep order */
                w.queue[(w.qhead + j) % w.qcap] = w.queue[(w.qhead + j + 1) % w.qcap];
            w.qlen--;
        }
    }
    pthread_mutex_unlock(&w.mu);
    if (found == NULL)
        return; /* running or done: a running task is only stopped by force */
    rayc_ctx ctx = {.spec = found->spec};
    char msg[300];
    snprintf(msg, sizeof(msg), "%s: cancelled", found->spec->function);
    report(&ctx, RAYC_ECANCELLED, msg);
    msg_free(&found->base);
}

static int on_frame(uint16_t type, ProtobufCMessage *msg)
{
    if (type == MSG_BIND_JOB) {
        bind_job((Rpc__BindJob *)msg);
        return 0;
    }
    if (type == MSG_CANCEL_TASK) {
        cancel_queued((Rpc__CancelTask *)msg);
        return 0;
    }
    if (type != MSG_PUSH_TASK)
        return 0;
    Rpc__PushTask *p = (Rpc__PushTask *)msg;
    if (p->spec == NULL || p->spec->task_id.len != TASK_ID_SIZE)
        return 0;
    if (rayc__core.blocked) {
        /* Pushed before the raylet saw we block: give it straight back. */
        ProtobufCBinaryData id = p->spec->task_id;
        Rpc__WorkerBlocked m = RPC__WORKER_BLOCKED__INIT;
        m.n_give_back = 1;
        m.give_back = &id;
        cw_conn_send(rayc__core.raylet, MSG_WORKER_BLOCKED, &m.base);
        return 0;
    }
    pthread_mutex_lock(&w.mu);
    int kept = queue_push(p) == 0;
    pthread_mutex_unlock(&w.mu);
    return kept;
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
    cw_conn_send(rayc__core.raylet, MSG_TASK_DONE, &done.base);
    free(heap);
    free(hptrs);
}

static void run_task(Rpc__PushTask *p)
{
    core_t *c = &rayc__core;
    Rpc__TaskSpec *s = p->spec;
    rayc_ctx ctx = {.spec = s};
    size_t nrefs = 0;
    memcpy(ctx.task.b, s->task_id.data, TASK_ID_SIZE);
    ret_slot stack_rets[8];
    ctx.nrets = s->num_returns ? s->num_returns : 1;
    ctx.rets = ctx.nrets <= 8 ? stack_rets : calloc(ctx.nrets, sizeof(*ctx.rets));
    rayc_buf stack_bufs[16],
        *bufs = s->n_args <= 16 ? stack_bufs : calloc(s->n_args, sizeof(*bufs));
    rayc_value stack_vals[16],
        *vals = s->n_args <= 16 ? stack_vals : calloc(s->n_args, sizeof(*vals));
    rayc_ref stack_refs[16],
        *refs = s->n_args <= 16 ? stack_refs : calloc(s->n_args, sizeof(*refs));
    size_t stack_map[16], *map = s->n_args <= 16 ? stack_map : calloc(s->n_args, sizeof(*map));
    if (!ctx.rets || !bufs || !vals || !refs || !map) {
        report(&ctx, RAYC_ENOMEM, "worker out of memory");
        goto out;
    }
    memset(ctx.rets, 0, ctx.nrets * sizeof(*ctx.rets));

    c->task = ctx.task;
    c->put_index = 0;
    c->in_task = true;

    /* Arguments: inline bytes from the spec; store objects zero-copy. */
    for (size_t i = 0; i < s->n_args; i++) {
        Rpc__TaskArg *a = s->args[i];
        if (a->is_ref && a->object_id.len == OBJECT_ID_SIZE) {
            memcpy(refs[nrefs].id, a->object_id.data, OBJECT_ID_SIZE);
            map[nrefs++] = i;
        } else {
            bufs[i].data = a->data.data;
            bufs[i].size = a->data.len;
        }
    }
    if (nrefs > 0) {
        int rc = rayc_get(refs, nrefs, vals, -1);
        if (rc != 0) {
            char msg[1100];
            snprintf(msg, sizeof(msg), "%s: argument unavailable: %s", s->function,
                     rayc_last_error());
            report(&ctx, rc == RAYC_ETASK ? RAYC_ETASK : RAYC_EOBJECT_LOST, msg);
            nrefs = 0;
            goto out;
        }
        for (size_t i = 0; i < nrefs; i++) {
            bufs[map[i]].data = vals[i].data;
            bufs[map[i]].size = vals[i].size;
        }
    }

    char err[512];
    rayc_fn fn = lookup(s->function, err, sizeof(err));
    if (fn == NULL) {
        report(&ctx, RAYC_ENOTFOUND, err);
        goto out;
    }
    int rc = fn(&ctx, bufs, s->n_args);
    if (rc != 0 || ctx.failed) {
        char msg[1400];
        if (ctx.failed)
            snprintf(msg, sizeof(msg), "%s: %s", s->function, ctx.error);
        else
            snprintf(msg, sizeof(msg), "%s: returned %d", s->function, rc);
        /* Store returns it made are freed (this worker still owns them). */
        Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
        ProtobufCBinaryData ids[64];
        for (size_t i = 0; i < ctx.nrets && del.n_object_ids < 64; i++)
            if (ctx.rets[i].in_store && !ctx.rets[i].existed)
                ids[del.n_object_ids++] = (ProtobufCBinaryData){OBJECT_ID_SIZE, ctx.rets[i].id.b};
        del.object_ids = ids;
        for (size_t i = 0; i < ctx.nrets; i++)
            if (ctx.rets[i].in_store && !ctx.rets[i].existed)
                core__send_seal(&ctx.rets[i].id);
        if (del.n_object_ids)
            cw_conn_send(c->raylet, MSG_DELETE_OBJECTS, &del.base);
        report(&ctx, RAYC_ETASK, msg);
        goto out;
    }
    for (size_t i = 0; i < ctx.nrets; i++)
        if (ctx.rets[i].in_store && !ctx.rets[i].existed)
            core__send_seal(&ctx.rets[i].id);
    report(&ctx, RAYC_OK, "");
out:
    for (size_t i = 0; i < nrefs; i++)
        rayc_value_release(&vals[i]);
    for (size_t i = 0; ctx.rets && i < ctx.nrets; i++)
        if (ctx.rets[i].set && (!ctx.rets[i].in_store || ctx.rets[i].existed))
            free(ctx.rets[i].data);
    c->in_task = false;
    core__unblock();
    if (ctx.rets != stack_rets)
        free(ctx.rets);
    if (bufs != stack_bufs)
        free(bufs);
    if (vals != stack_vals)
        free(vals);
    if (refs != stack_refs)
        free(refs);
    if (map != stack_map)
        free(map);
}

int core__worker_run(void)
{
    core_t *c = &rayc__core;
    c->worker_frame = on_frame;
    c->worker_give_back = give_back;
    for (;;) {
        pthread_mutex_lock(&w.mu);
        Rpc__PushTask *p = queue_pop();
        pthread_mutex_unlock(&w.mu);
        if (p == NULL) {
            if (cw_conn_pump(c->raylet, -1) != 0)
                return 0; /* the raylet is gone: so are we */
            continue;
        }
        run_task(p);
        msg_free(&p->base);
    }
}
