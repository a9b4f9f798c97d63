/*
 * task_submitter.h -- the owner's side of tasks (Ray's task manager and
 * dependency resolver): submit, keep a task back until the returns it takes
 * as arguments are known, completions, retries, lineage reconstruction of
 * lost results, cancel.
 *
 * The process that submits a task owns its returns. Small arguments are
 * resolved here and travel inside the spec; an argument that is the return
 * of a task still running keeps the new task here (deferred) until that
 * return is known. Completions (TaskDone) arrive on the raylet connection
 * and are handled by whichever thread reads it; a failed attempt is
 * submitted again while retries remain. A finished task whose results live
 * on another node is kept (lineage) to run again if that node dies.
 *
 * Dependencies are passed in (tsub_deps): the reference table and the lock
 * that guards it and this submitter, the raylet connection, the store
 * client (to free results nobody holds). No global state.
 *
 * An actor submitter (calls to one actor go straight to its worker, in
 * order, with per-caller sequence numbers) belongs beside this one, not in
 * it: it can share tsub_arg resolution and the reference table, and
 * registers its own frame types with the router.
 *
 * Streaming generators (docs/generators.md): a generator's items arrive one
 * by one (StreamItem) before its completion, each an owned object (return
 * index + 1 of the task); the submitter keeps them in order in the task's
 * stream (rayc_stream, the caller's handle) and hands each out once, however
 * many attempts yield it. A failed generator ends with one error item. The
 * stream outlives its task record: it is freed by tsub_stream_close once
 * the task is finished too.
 *
 * Thread-safety: functions marked "mu held" are called with deps.mu held;
 * the frame handlers take it themselves.
 */
#ifndef RAYC_TASK_SUBMITTER_H
#define RAYC_TASK_SUBMITTER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_conn.h"
#include "ids.h"
#include "rayc.h"
#include "reference_table.h"
#include "store_client.h"
#include "task_events.h"
#include "util.h"

#define TSUB_DEFAULT_MAX_RETRIES 3   /* max_retries 0 means this many */
#define TSUB_STACK_ARGS          16  /* specs with more arguments allocate their arrays */
#define TSUB_OOM_BACKOFF_MS      200 /* first back-off after an OOM kill (then doubling) */

typedef struct task_submitter task_submitter;

typedef struct tsub_deps {
    pthread_mutex_t *mu; /* guards refs and the submitter's tables */
    ref_table *refs;
    cw_conn *raylet;
    store_client *store;
    const uint8_t *arena; /* the mapped store: results our raylet pinned for us */
    size_t arena_size;
    size_t inline_max;   /* arguments up to this size travel inside the spec */
    const job_id_t *job; /* read at each submit (a worker's job changes) */
    worker_id_t owner;   /* this process, in specs */
    node_id_t node;      /* its node */
    /* Actor calls (actor_submitter.h): a call's PushTask frame goes to its
     * actor's connection instead of the raylet (mu held); progress runs
     * after completions, when held-back calls may have become ready. */
    void (*actor_send)(void *arg, const actor_id_t *actor, const task_id_t *task,
                       const uint8_t *frame, size_t len);
    void (*progress)(void *arg);
    /* Streaming actor calls: a StreamAck goes to the actor's worker (mu held). */
    void (*stream_ack)(void *arg, const actor_id_t *actor, const Rpc__StreamAck *ack);
    void *actor_arg;
    /* The direct task path (direct_tasks.h), both mu held: direct takes a
     * task to push to a leased worker itself (false: it goes to the raylet);
     * direct_cancel is dtx_cancel. NULL: every task goes to the raylet. */
    bool (*direct)(void *arg, const task_id_t *id, const Rpc__TaskSpec *spec);
    /* TSUB_DIRECT_NOT_OURS, _DROPPED (not pushed yet: the submitter fails
     * it) or _ASKED (its worker, or the raylet by force, was asked). */
    int (*direct_cancel)(void *arg, const task_id_t *id, bool force);
    void *direct_arg;
    tev_buffer *events; /* task events (NULL: off) */
} tsub_deps;

enum { TSUB_DIRECT_NOT_OURS, TSUB_DIRECT_DROPPED, TSUB_DIRECT_ASKED };

/* One argument as the owner holds it until the spec is built. */
typedef struct tsub_arg {
    bool is_ref;
    bool has_node;
    bool handed;    /* is_ref: the caller hands its reference to the task (a put of a
                       large value); otherwise the task takes a reference of its own */
    node_id_t node; /* a node holding the ref's object (locality hint) */
    object_id_t ref;
    const void *data; /* inline bytes */
    size_t size;
} tsub_arg;

/* What a task's spec says besides its id and arguments. */
typedef struct tsub_request {
    const char *function; /* copied */
    const char *name;     /* copied; "" for none */
    uint32_t num_returns; /* >= 1 */
    int max_retries;      /* rayc_task_opts.max_retries: 0 default, -1 never */
    bool retry_exceptions;
    int strategy;
    bool soft;
    bool has_target; /* strategy RAYC_SCHED_NODE: target */
    node_id_t target;
    const actor_id_t *actor; /* a call of this actor's method: held back until
                                tsub_actor_send (in order, by the actor submitter) */
    bool has_pg;             /* run in placement group pg ... */
    uint8_t pg[PG_ID_SIZE];
    int bundle_index;      /* ... bundle (-1: any) */
    bool streaming;        /* a generator (tsub_submit_stream): items, no returns */
    uint32_t backpressure; /* generator_backpressure: unconsumed items it may get ahead */
    res_set demand;
} tsub_request;

/* ---------------------------------------------------------- pure parts */

/* Where an argument stands against the table entry of its ref. */
typedef enum {
    TSUB_ARG_READY,   /* known: its value or its store location */
    TSUB_ARG_PENDING, /* the return of an owned task still running */
    TSUB_ARG_FAILED,  /* stands for an error: the task fails the same way, unrun */
} tsub_arg_state;

/* Where a ref argument stands against e, the table entry of its ref (NULL:
 * not known here, i.e. borrowed: the raylet waits for it in the store, so it
 * is ready as far as the owner is concerned). */
tsub_arg_state tsub_arg_state_of(const ref_entry *e);
/* Resolve a ready ref argument in place: an owned, sealed inline value up to
 * inline_max becomes an inline argument (pointing at e's bytes); anything
 * else keeps the ref, with its size and the node holding it. e NULL: no
 * change. */
void tsub_resolve_arg(tsub_arg *a, const ref_entry *e, size_t inline_max);
/* Attempts after the first for rayc_task_opts.max_retries (0: default, <0: none). */
int tsub_retries_for(int max_retries);
/* Does a failed attempt with status get another one? */
bool tsub_should_retry(int status, bool retry_exceptions, bool cancelled, int retries_left);

/* ---------------------------------------------------------- the submitter */

/* NULL when out of memory. */
task_submitter *tsub_new(const tsub_deps *deps);
/* Free every task it holds (no messages, no hooks). NULL-safe. */
void tsub_free(task_submitter *ts);

/* Submit a task (mu NOT held): args[0..nargs) are resolved under mu, the
 * return refs are written to returns[0..num_returns), each one reference
 * the caller owns. Returns 0 when the task is sent, deferred, or failed at
 * once because an argument stands for an error (its returns are that
 * error). On another failure a code with rayc_last_error set; *taken says
 * whether the task took the handed references of args (then the returns
 * were handed out as errors, for the caller to release) or not (nothing
 * changed). */
int tsub_submit(task_submitter *ts, const tsub_request *rq, tsub_arg *args, size_t nargs,
                rayc_ref *returns, bool *taken);
/* Cancel the task that returns oid (mu NOT held): an unsent task fails at
 * once with RAYC_ECANCELLED; a sent one is cancelled at the raylet (force:
 * kill its worker). RAYC_ENOTFOUND if this process has no such task. */
int tsub_cancel(task_submitter *ts, const object_id_t *oid, bool force);
/* The last use of an owned result is gone: drop its task's lineage when no
 * other result of that task is in use. mu held. */
void tsub_lineage_release(task_submitter *ts, const object_id_t *oid);
/* Some stream of a generator is not freed yet (its items may arrive). mu held. */
bool tsub_has_streams(const task_submitter *ts);
/* Tasks this submitter holds (pending, deferred or kept as lineage). mu held. */
size_t tsub_count(const task_submitter *ts);

/* Actor calls, mu held. A call submitted with rq->actor is only recorded
 * (its arguments held) and its task id is *id_out of tsub_submit's returns.
 * tsub_actor_send builds and sends it once its arguments are known (or
 * sends its frame again, attempt + 1, after a restart): 1 sent, 0 its
 * arguments are still being computed, -1 it is over (an argument failed:
 * its returns are that error; or it is gone). */
int tsub_actor_send(task_submitter *ts, const task_id_t *id);
/* The call failed for good (status, message): its returns are the error. */
/* The actor whose call id is, while it is not finished: true with *actor.
 * mu held. */
bool tsub_actor_of(task_submitter *ts, const task_id_t *id, actor_id_t *actor);
void tsub_actor_fail(task_submitter *ts, const task_id_t *id, int status, const char *message);
/* May the call be sent again after its actor restarted? Counts the retry
 * (max_task_retries: -1 forever). */
bool tsub_actor_retry(task_submitter *ts, const task_id_t *id, int max_task_retries);

/* ---------------------------------------------------------- streams */

/* Submit a generator (rq->streaming; mu NOT held), as tsub_submit does a
 * task: *out is its stream, the caller's until tsub_stream_close. When an
 * argument stands for an error the stream holds that error item at once.
 * On a failure with *taken set, *out is a stream for the caller to close. */
int tsub_submit_stream(task_submitter *ts, const tsub_request *rq, tsub_arg *args, size_t nargs,
                       rayc_stream **out, bool *taken);
/* Hand out the next item of s (mu held): 0 with *out, one reference the
 * caller now owns; RAYC_EOF after the last item (every time); RAYC_ETIMEDOUT
 * when the next item has not arrived yet (the caller waits for frames and
 * asks again); RAYC_EINVAL once closed. With backpressure the worker learns
 * how many were taken. */
int tsub_stream_take(rayc_stream *s, object_id_t *out);
/* Close s (mu held): a generator still running is cancelled (it stops at its
 * next yield and its later items are freed on arrival), the items not taken
 * are released, and s is freed, now or when its task record goes. */
void tsub_stream_close(rayc_stream *s);
/* The task id of s's generator (rayc_cancel of any of its items cancels it). */
task_id_t tsub_stream_task(const rayc_stream *s);

/* Frame handlers (frame_router): TaskDone, ObjectLost, StreamItem. arg: the
 * submitter. */
int tsub_on_task_done(void *arg, uint16_t type, ProtobufCMessage *msg);
/* The same with mu held (a reader that took it for its own records too). */
void tsub_task_done_locked(task_submitter *ts, const Rpc__TaskDone *m);
void tsub_stream_item_locked(task_submitter *ts, Rpc__StreamItem *m);
int tsub_on_object_lost(void *arg, uint16_t type, ProtobufCMessage *msg);
int tsub_on_stream_item(void *arg, uint16_t type, ProtobufCMessage *msg);

/* For the direct task path (mu held): the SubmitTask frame of task id as
 * sent, its function and whether it was cancelled, each if asked for.
 * false if the task is gone or already finished. */
bool tsub_direct_frame(task_submitter *ts, const task_id_t *id, const uint8_t **frame, size_t *len,
                       const char **function, bool *cancelled);

#endif
