/*
 * actor_executor.c -- see actor_executor.h.
 *
 * Threads: the worker's main thread keeps pumping the raylet connection
 * (tex_run); an accept thread takes callers; each caller connection has a
 * reader thread that decodes its frames and, for max_concurrency 1, runs
 * each call itself under run_mu (so calls of one caller keep their order
 * and no two calls overlap), writing the replies of a batch of frames in one
 * write. With max_concurrency > 1 readers queue the calls for a pool.
 */
#include "actor_executor.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "direct_serve.h"
#include "errors.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "rayc.h"

#define METHOD_BUCKETS 64
#define READ_CHUNK     (64u << 10)

typedef struct actor_rt actor_rt;

/* One caller's connection. Freed by the last of its reader and the calls
 * queued from it. */
typedef struct caller {
    actor_rt *rt;
    int fd;
    pthread_mutex_t wmu; /* out, dead */
    uint8_t *out;
    size_t outlen, outcap;
    bool dead;
    int refs; /* rt->qmu */
} caller;

typedef struct call_item {
    caller *c;
    Rpc__PushTask *p;
    struct call_item *next;
} call_item;

typedef struct method {
    char *name;
    rayc_method_fn fn;
    struct method *next;
} method;

struct actor_rt {
    actor_exec_deps d;
    task_executor *x;
    Rpc__PushTask *creation; /* kept: the class, the actor id */
    const char *cls;
    void *self;
    rayc_actor_free_fn free_fn;
    int max_concurrency;
    pthread_mutex_t run_mu; /* max_concurrency 1: one call at a time */
    pthread_mutex_t mmu;    /* methods */
    method *methods[METHOD_BUCKETS];
    int lfd;
    char address[96];
    /* max_concurrency > 1 */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    call_item *qhead, *qtail;
    int running;
};

/* ------------------------------------------------------------ methods */

/* The class's method name (cached). NULL with rayc_last_error set. */
static rayc_method_fn method_of(actor_rt *rt, const char *name)
{
    size_t b = id_hash(name, strlen(name)) & (METHOD_BUCKETS - 1);
    pthread_mutex_lock(&rt->mmu);
    for (method *m = rt->methods[b]; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            pthread_mutex_unlock(&rt->mmu);
            return m->fn;
        }
    }
    char sym[300], err[512];
    snprintf(sym, sizeof(sym), "%s__", rt->cls);
    char prefix[320];
    snprintf(prefix, sizeof(prefix), "rayc__method_%s", sym);
    rayc_method_fn *fp = tex_symbol(rt->x, prefix, name, err, sizeof(err));
    rayc_method_fn fn = fp ? *fp : NULL;
    method *m = fn ? malloc(sizeof(*m)) : NULL;
    if (m && (m->name = strdup(name)) != NULL) {
        m->fn = fn;
        m->next = rt->methods[b];
        rt->methods[b] = m;
    } else {
        free(m);
    }
    pthread_mutex_unlock(&rt->mmu);
    if (fn == NULL)
        rayc__error(RAYC_ENOTFOUND, "actor class '%s' has no method '%s'", rt->cls, name);
    return fn;
}

/* ------------------------------------------------------------ replies */

/* Frame m into c's output buffer. */
static void queue_reply(caller *c, uint16_t type, const ProtobufCMessage *m)
{
    size_t len = msg_frame_size(m);
    pthread_mutex_lock(&c->wmu);
    if (c->outlen + len > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outlen + len)
            cap *= 2;
        uint8_t *nb = realloc(c->out, cap);
        if (nb == NULL) {
            pthread_mutex_unlock(&c->wmu);
            log_error("actor: out of memory for a reply; dropping the caller");
            shutdown(c->fd, SHUT_RDWR);
            return;
        }
        c->out = nb;
        c->outcap = cap;
    }
    msg_encode(type, m, c->out + c->outlen);
    c->outlen += len;
    pthread_mutex_unlock(&c->wmu);
}

/* Write what is queued for c. */
static void flush(caller *c)
{
    pthread_mutex_lock(&c->wmu);
    if (c->outlen > 0 && !c->dead) {
        if (net_write_all(c->fd, c->out, c->outlen) != 0) {
            c->dead = true;
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    c->outlen = 0;
    pthread_mutex_unlock(&c->wmu);
}

/* A call's TaskDone: its store returns go to their owner first, then the
 * reply to the caller, stamped with this node. */
static void call_reply(void *arg, const Rpc__TaskSpec *spec, Rpc__TaskDone *done)
{
    caller *c = arg;
    actor_rt *rt = c->rt;
    dserve_give_returns(rt->d.raylet, spec, done);
    done->node_id.data = rt->d.node.b;
    done->node_id.len = NODE_ID_SIZE;
    queue_reply(c, MSG_TASK_DONE, &done->base);
}

/* An item of a streaming call: a store item becomes the caller's first (as
 * a store return does), then the item goes out at once, stamped with this
 * node. */
static void call_stream_item(void *arg, const Rpc__TaskSpec *spec, Rpc__StreamItem *item)
{
    caller *c = arg;
    actor_rt *rt = c->rt;
    if (item->in_store) {
        task_id_t tid;
        memcpy(tid.b, spec->task_id.data, TASK_ID_SIZE);
        object_id_t oid = object_id_for_return(&tid, item->index + 1);
        ProtobufCBinaryData id = {OBJECT_ID_SIZE, oid.b};
        Rpc__ObjectOwner own = RPC__OBJECT_OWNER__INIT;
        own.owner_id = spec->owner_id;
        own.object_ids = &id;
        own.n_object_ids = 1;
        cw_conn_send(rt->d.raylet, MSG_OBJECT_OWNER, &own.base);
    }
    item->node_id.data = rt->d.node.b;
    item->node_id.len = NODE_ID_SIZE;
    queue_reply(c, MSG_STREAM_ITEM, &item->base);
    flush(c);
}

static int call_body(void *arg, rayc_ctx *ctx, const Rpc__TaskSpec *spec, const rayc_buf *args,
                     size_t nargs)
{
    actor_rt *rt = arg;
    rayc_method_fn fn = method_of(rt, spec->function);
    if (fn == NULL)
        return RAYC_ENOTFOUND;
    return fn(ctx, rt->self, args, nargs);
}

static void run_call(caller *c, Rpc__PushTask *p)
{
    tex_how how = {.body = call_body,
                   .body_arg = c->rt,
                   .reply = call_reply,
                   .item = call_stream_item,
                   .reply_arg = c};
    tex_run_spec(c->rt->x, p->spec, &how);
}

/* ------------------------------------------------------------ the pool */

static void caller_unref(caller *c)
{
    actor_rt *rt = c->rt;
    pthread_mutex_lock(&rt->qmu);
    int left = --c->refs;
    pthread_mutex_unlock(&rt->qmu);
    if (left > 0)
        return;
    close(c->fd);
    pthread_mutex_destroy(&c->wmu);
    free(c->out);
    free(c);
}

static void *pool_main(void *arg)
{
    actor_rt *rt = arg;
    for (;;) {
        pthread_mutex_lock(&rt->qmu);
        while (rt->qhead == NULL)
            pthread_cond_wait(&rt->qcv, &rt->qmu);
        call_item *it = rt->qhead;
        rt->qhead = it->next;
        if (rt->qhead == NULL)
            rt->qtail = NULL;
        rt->running++;
        pthread_mutex_unlock(&rt->qmu);
        run_call(it->c, it->p);
        msg_free(&it->p->base);
        /* Flush unless the next queued call is the same caller's: whoever
         * runs that one writes both replies at once. */
        pthread_mutex_lock(&rt->qmu);
        bool later = rt->qhead && rt->qhead->c == it->c;
        pthread_mutex_unlock(&rt->qmu);
        if (!later)
            flush(it->c);
        pthread_mutex_lock(&rt->qmu);
        rt->running--;
        pthread_cond_broadcast(&rt->qcv);
        pthread_mutex_unlock(&rt->qmu);
        caller_unref(it->c);
        free(it);
    }
    return NULL;
}

static void enqueue(caller *c, Rpc__PushTask *p)
{
    actor_rt *rt = c->rt;
    call_item *it = malloc(sizeof(*it));
    if (it == NULL) {
        msg_free(&p->base);
        return;
    }
    it->c = c;
    it->p = p;
    it->next = NULL;
    pthread_mutex_lock(&rt->qmu);
    c->refs++;
    if (rt->qtail)
        rt->qtail->next = it;
    else
        rt->qhead = it;
    rt->qtail = it;
    pthread_cond_signal(&rt->qcv);
    pthread_mutex_unlock(&rt->qmu);
}

/* ------------------------------------------------------------ exit */

/* The creator released the actor: once the calls before this one are done,
 * tell the raylet (the death is final) and end the process. */
static void exit_released(actor_rt *rt, const char *cause)
{
    pthread_mutex_lock(&rt->run_mu);
    pthread_mutex_lock(&rt->qmu);
    while (rt->qhead != NULL || rt->running > 0)
        pthread_cond_wait(&rt->qcv, &rt->qmu);
    pthread_mutex_unlock(&rt->qmu);
    Rpc__ActorDied d = RPC__ACTOR_DIED__INIT;
    d.actor_id = rt->creation->spec->actor_id;
    d.cause = (char *)(cause && *cause ? cause : "released by its creator");
    d.no_restart = true;
    cw_conn_send(rt->d.raylet, MSG_ACTOR_DIED, &d.base);
    cw_conn_flush(rt->d.raylet);
    if (rt->free_fn)
        rt->free_fn(rt->self);
    _exit(0);
}

/* ------------------------------------------------------------ connections */

/* One frame from a caller. false: close the connection. */
static bool on_frame(caller *c, const frame_t *f)
{
    actor_rt *rt = c->rt;
    if (f->type == MSG_ACTOR_EXIT) {
        flush(c);
        Rpc__ActorExit *e = (Rpc__ActorExit *)msg_unpack(f->type, f->payload, f->length);
        exit_released(rt, e ? e->cause : NULL);
    }
    if (f->type != MSG_PUSH_TASK)
        return false;
    Rpc__PushTask *p = (Rpc__PushTask *)msg_unpack(f->type, f->payload, f->length);
    if (p == NULL || p->spec == NULL || p->spec->task_id.len != TASK_ID_SIZE) {
        if (p)
            msg_free(&p->base);
        return false;
    }
    if (rt->max_concurrency > 1) {
        enqueue(c, p);
        return true;
    }
    pthread_mutex_lock(&rt->run_mu);
    run_call(c, p);
    pthread_mutex_unlock(&rt->run_mu);
    msg_free(&p->base);
    return true;
}

static void *reader_main(void *arg)
{
    caller *c = arg;
    net_tcp_nodelay(c->fd);
    frame_decoder dec;
    frame_decoder_init(&dec, FRAME_DEFAULT_MAX);
    net_spinner spin = {0};
    if (dserve_handshake(c->fd, c->rt->d.token) == 0) {
        for (;;) {
            size_t avail;
            uint8_t *buf = frame_decoder_space(&dec, READ_CHUNK, &avail);
            if (buf == NULL)
                break;
            /* The caller's next call often follows within microseconds:
             * look before sleeping (net_spin). */
            net_spin(c->fd, &spin);
            ssize_t n = read(c->fd, buf, avail);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            frame_decoder_commit(&dec, (size_t)n);
            frame_t f;
            int r;
            bool ok = true;
            while (ok && (r = frame_decoder_next(&dec, &f)) == 1)
                ok = on_frame(c, &f);
            flush(c);
            if (!ok || r < 0)
                break;
        }
    }
    frame_decoder_free(&dec);
    shutdown(c->fd, SHUT_RDWR);
    caller_unref(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    actor_rt *rt = arg;
    for (;;) {
        int fd = accept(rt->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                usleep(50000); /* out of descriptors: the backlog waits */
            continue;
        }
        caller *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->rt = rt;
        c->fd = fd;
        c->refs = 1;
        pthread_mutex_init(&c->wmu, NULL);
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 1u << 20);
        if (pthread_create(&th, &at, reader_main, c) != 0)
            caller_unref(c);
        pthread_attr_destroy(&at);
    }
    return NULL;
}

static int start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &at, fn, arg);
    pthread_attr_destroy(&at);
    return rc;
}

/* Listen for callers and start the threads that serve them. */
static int start_serving(actor_rt *rt)
{
    int port = 0;
    if (rt->d.token == NULL || rt->d.token[0] == '\0')
        return rayc__error(RAYC_EAUTH, "actor: this worker has no cluster token to check "
                                       "callers with (none in its session directory)");
    rt->lfd = net_tcp_listen(rt->d.node_ip, 0, 128, &port);
    if (rt->lfd < 0)
        return rayc__error(RAYC_EIO, "actor: cannot listen on %s: %s", rt->d.node_ip,
                           strerror(errno));
    snprintf(rt->address, sizeof(rt->address), "%s:%d", rt->d.node_ip, port);
    for (int i = 0; rt->max_concurrency > 1 && i < rt->max_concurrency; i++)
        if (start_thread(pool_main, rt) != 0)
            return rayc__error(RAYC_ENOMEM, "actor: cannot start its threads");
    if (start_thread(accept_main, rt) != 0)
        return rayc__error(RAYC_ENOMEM, "actor: cannot start its listener");
    return 0;
}

/* ------------------------------------------------------------ creation */

static int construct(void *arg, rayc_ctx *ctx, const Rpc__TaskSpec *spec, const rayc_buf *args,
                     size_t nargs)
{
    actor_rt *rt = arg;
    char err[512];
    (void)spec;
    const int *abi = tex_symbol(rt->x, "rayc__abi_", rt->cls, err, sizeof(err));
    rayc_actor_new_fn *newp = tex_symbol(rt->x, "rayc__new_", rt->cls, err, sizeof(err));
    if (newp == NULL || abi == NULL)
        return rayc__error(RAYC_ENOTFOUND, "actor class %s", err);
    if (*abi != RAYC_ABI_VERSION)
        return rayc_fail(ctx, "actor class '%s' was built against rayc ABI %d; this worker is %d",
                         rt->cls, *abi, RAYC_ABI_VERSION);
    rayc_actor_free_fn *freep = tex_symbol(rt->x, "rayc__free_", rt->cls, err, sizeof(err));
    rt->free_fn = freep ? *freep : NULL;
    rt->self = (*newp)(ctx, args, nargs);
    if (rt->self == NULL)
        return tex_failed(ctx) ? -1 : rayc_fail(ctx, "the constructor returned NULL");
    return 0;
}

/* The constructor's TaskDone goes to the raylet, with the address callers
 * use once it succeeded. */
static void creation_reply(void *arg, const Rpc__TaskSpec *spec, Rpc__TaskDone *done)
{
    actor_rt *rt = arg;
    Rpc__Status st = RPC__STATUS__INIT;
    (void)spec;
    if (done->status && done->status->code == RAYC_OK) {
        if (start_serving(rt) != 0) {
            msg_status_set(&st, RAYC_EIO, rayc_last_error());
            done->status = &st;
        } else {
            done->actor_address = rt->address;
        }
    }
    cw_conn_send(rt->d.raylet, MSG_TASK_DONE, &done->base);
}

static void on_create(void *arg, task_executor *x, Rpc__PushTask *p)
{
    actor_rt *rt = arg;
    rt->x = x;
    rt->creation = p;
    rt->cls = p->spec->function;
    rt->max_concurrency = p->spec->max_concurrency > 1 ? p->spec->max_concurrency : 1;
    tex_how how = {.body = construct,
                   .body_arg = rt,
                   .reply = creation_reply,
                   .reply_arg = rt,
                   .as_task = true,
                   .scheduled_us = p->scheduled_us};
    tex_run_spec(x, p->spec, &how);
}

int actor_exec_install(task_executor *x, const actor_exec_deps *d)
{
    actor_rt *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return -1;
    rt->d = *d;
    rt->lfd = -1;
    pthread_mutex_init(&rt->run_mu, NULL);
    pthread_mutex_init(&rt->mmu, NULL);
    pthread_mutex_init(&rt->qmu, NULL);
    pthread_cond_init(&rt->qcv, NULL);
    tex_set_actor_handler(x, on_create, rt);
    return 0;
}
