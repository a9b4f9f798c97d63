/*
 * task_executor_internal.h -- what task_executor.c (running tasks) and
 * generator.c (rayc_yield and the worker's side of streams) share. Not for
 * other modules: they go through task_executor.h.
 *
 * A generator that runs has a tex_gen in its rayc_ctx, listed in x->gens
 * while it runs, so that acks (StreamAck) and cancels arriving on whichever
 * thread reads the connection find it; its counters that those frames change
 * are guarded by x->mu, the rest belongs to the thread running it.
 */
#ifndef RAYC_TASK_EXECUTOR_INTERNAL_H
#define RAYC_TASK_EXECUTOR_INTERNAL_H

#include <pthread.h>

#include "task_executor.h"

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

/* A running generator. */
typedef struct tex_gen {
    task_id_t task;
    uint32_t backpressure; /* yield waits while this many items are not consumed (0: never) */
    uint32_t consumed;     /* x->mu: items the owner has taken (StreamAck) */
    uint64_t acked_bytes;  /* x->mu: STREAM_ITEM_COST of items the owner received */
    uint32_t attempt;      /* acks of other attempts are not about our items */
    uint64_t sent_bytes;   /* STREAM_ITEM_COST of items sent */
    bool cancelled;        /* x->mu: the owner closed or cancelled the stream */
    uint32_t yielded;      /* items sent */
    uint64_t polled_ms;    /* when the connection was last read for acks and cancels */
    /* The rayc_yield_alloc item, sent at the next yield or the end. */
    bool pending;
    bool pending_in_store;
    bool pending_existed; /* a copy was already here: written to scratch */
    uint8_t *pending_data;
    size_t pending_size;
    struct tex_gen *next; /* x->gens */
} tex_gen;

struct rayc_ctx {
    task_executor *x;
    Rpc__TaskSpec *spec;
    const tex_how *how; /* NULL: a task pushed by the raylet */
    task_id_t task;
    ret_slot *rets;
    size_t nrets;
    bool failed;
    tex_gen *gen; /* generators only */
    char error[1024];
    uint64_t scheduled_us, start_us; /* task events: back to the owner in TaskDone */
};

typedef struct fn_entry {
    char *name;
    rayc_fn fn;
    struct fn_entry *next;
} fn_entry;

/* Worker state: one process, one job at a time. */
struct task_executor {
    tex_deps d;
    pthread_mutex_t mu;    /* the queue, gens */
    Rpc__PushTask **queue; /* pushed, not started (ring) */
    size_t qhead, qlen, qcap;
    bool in_task; /* the tex_run thread runs a task */
    /* While a task runs, the main thread does not read the raylet's frames:
     * the watcher thread does (a steal or cancel of queued tasks, pushes,
     * a generator's acks and cancel). */
    pthread_t watcher;
    bool has_watcher, stop_watcher, watching;
    pthread_cond_t watch_cv; /* with mu: a task started, or stop */
    bool blocked;            /* ... which told the raylet it blocks */
    uint32_t job_id;
    void *libs[MAX_LIBS];
    size_t nlibs;
    char bind_error[512];
    fn_entry *fns[FN_BUCKETS];
    tex_actor_fn actor_create; /* PushTasks that create an actor go here */
    void *actor_arg;
    int32_t pid;
    struct lease_conn *lease; /* the owner this worker is leased to serves now (lease_server.c) */
    int lease_lfd;            /* where owners connect (-1: not listening yet) */
    char lease_address[96];
    int lease_ufd; /* ... owners on this node (-1: none), at lease_local */
    char lease_local[64];
    tex_gen *gens;         /* generators running now */
    pthread_cond_t gen_cv; /* a generator's counters changed (acks, cancel) */
};

/* task_executor.c: while on, the watcher thread reads the raylet's frames. */
void tex__watch(task_executor *x, bool on);

/* lease_server.c */
/* p is a worker lease: serve its owner until it is done (p stays the
 * caller's). Runs on the executor's thread. */
void tex__serve_lease(task_executor *x, Rpc__PushTask *p);
/* The running task blocks: hand the owner back the tasks it sent that have
 * not started (TasksGivenBack), so none waits behind it. */
void tex__lease_give_back(struct lease_conn *lc);
/* While a task runs (the watcher thread): take the owner's cancels and
 * steals of what is queued here. */
void tex__lease_poll(task_executor *x);

/* generator.c */
/* ctx runs a generator (spec->streaming): list its gen (storage g). */
void tex__gen_begin(rayc_ctx *ctx, tex_gen *g);
/* The generator returned: ok, its last rayc_yield_alloc item is sent, else
 * dropped; it leaves the list. Returns true if the owner cancelled it. */
bool tex__gen_end(rayc_ctx *ctx, bool ok);
/* Find the running generator of task id and mark it cancelled (x->mu NOT
 * held). True if there was one. */
bool tex__gen_cancel(task_executor *x, const uint8_t *task_id);

#endif
