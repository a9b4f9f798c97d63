/*
 * task_executor.h -- the worker's side of tasks (rayc_worker): bind to a
 * job (environment, code libraries), queue the tasks the raylet pushes, run
 * them one at a time and report each (TaskDone); give queued tasks back when
 * the running one blocks in get/wait, so they cannot deadlock behind it.
 * Also the task side of the API: rayc_return, rayc_return_alloc, rayc_fail,
 * rayc_yield, rayc_yield_alloc (through the rayc_ctx it passes each task).
 * A generator's items go to its owner as it yields them (generator.c).
 *
 * Dependencies are passed in (tex_deps): the raylet connection, the store
 * client (store returns), and the few fields of the process it changes as
 * tasks start (the task whose puts are numbered, the job). An actor
 * executor (one actor instance per worker, ordered method calls) sits
 * beside it and registers its own frame types.
 *
 * Thread-safety: the queue has its own lock (frames arrive on whichever
 * thread reads the raylet connection); tasks run on the thread of tex_run,
 * which alone changes the running/blocked state.
 */
#ifndef RAYC_TASK_EXECUTOR_H
#define RAYC_TASK_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_conn.h"
#include "frame_router.h"
#include "ids.h"
#include "rayc.h"
#include "store_client.h"
#include "task_events.h"

#define TEX_GIVE_BACK_MAX 256 /* queued tasks handed back per WorkerBlocked */

typedef struct task_executor task_executor;

typedef struct tex_deps {
    cw_conn *raylet;
    store_client *store;
    uint8_t *arena;
    size_t inline_max;   /* returns up to this size travel inline */
    task_id_t *task;     /* set to the running task: its puts are numbered from it */
    uint32_t *put_index; /* reset at each task */
    job_id_t *job;       /* set when the worker is bound to a job */
    tev_buffer *events;  /* task events: the running task (NULL: off) */
    const char *token;   /* leases: owners prove it */
    const char *node_ip; /* leases: where owners connect */
    node_id_t node;      /* stamped on replies to owners: where store returns live */
} tex_deps;

/* How tex_run_spec runs a spec that is not a plain task: an actor's
 * constructor or method. */
typedef struct tex_how {
    /* The code to run (NULL: the task function named by the spec). Returns
     * 0, non-zero for a failure (rayc_fail's message, if it set one), or
     * RAYC_ENOTFOUND with rayc_last_error() naming what is missing. */
    int (*body)(void *arg, rayc_ctx *ctx, const Rpc__TaskSpec *spec, const rayc_buf *args,
                size_t nargs);
    void *body_arg;
    /* Where the TaskDone goes (NULL: the raylet). */
    void (*reply)(void *arg, const Rpc__TaskSpec *spec, Rpc__TaskDone *done);
    /* Where a generator's items go (NULL: the raylet), in order, before the
     * TaskDone. Called on the thread running it. */
    void (*item)(void *arg, const Rpc__TaskSpec *spec, Rpc__StreamItem *item);
    void *reply_arg;
    bool as_task;          /* number puts from it and tell the raylet when it blocks */
    uint64_t scheduled_us; /* task events: when the raylet pushed it (0: unknown) */
} tex_how;

/* An actor creation task arrived: fn takes the worker over (and p). */
typedef void (*tex_actor_fn)(void *arg, task_executor *x, Rpc__PushTask *p);

/* NULL when out of memory. */
task_executor *tex_new(const tex_deps *deps);
/* Route actor creation tasks to fn (the worker becomes the actor's). */
void tex_set_actor_handler(task_executor *x, tex_actor_fn fn, void *arg);
/* Run s (arguments loaded, returns made, TaskDone reported) with how (NULL:
 * as a task). Thread-safe for calls with how->as_task false. */
void tex_run_spec(task_executor *x, Rpc__TaskSpec *s, const tex_how *how);
/* True if the code running in ctx called rayc_fail. */
bool tex_failed(const rayc_ctx *ctx);
/* The symbol prefix+name of the job's code libraries, or NULL with err. */
void *tex_symbol(task_executor *x, const char *prefix, const char *name, char *err, size_t errlen);
/* Free the queue and the executor (the code libraries stay loaded). NULL-safe. */
void tex_free(task_executor *x);
/* The owner of a generator running or queued here took a.consumed of its
 * items (backpressure). Thread-safe. */
void tex_stream_ack(task_executor *x, const Rpc__StreamAck *a);
/* Route PushTask, BindJob, CancelTask and StreamAck to x. 0, or -1 if one is
 * taken. */
int tex_register(task_executor *x, frame_router *r);
/* Run pushed tasks until the raylet is gone; returns 0 then. */
int tex_run(task_executor *x);

/* The running task is about to wait (get/wait): tell the raylet, handing back
 * the queued tasks. No-op unless a task runs and has not blocked already. */
void tex_block(void *x);
/* The wait is over: tell the raylet the task goes on. No-op unless blocked. */
void tex_unblock(void *x);
/* A task runs and has not blocked: a wait should poll first (only a real wait
 * gives the CPU back). */
bool tex_running(void *x);

#endif
