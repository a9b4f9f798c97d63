/*
 * task_submitter_internal.h -- what task_submitter.c (tasks: submit,
 * retries, lineage, cancel) and task_streams.c (the streams of generators)
 * share: the task record, the stream record and a few helpers. Not for other
 * modules: they go through task_submitter.h.
 *
 * Invariants (all under deps.mu):
 *   - a task is in ts->tasks from submit until finish(); a generator's
 *     record points to its stream (t->stream) and the stream lists nothing
 *     back but the task id;
 *   - items of a stream are returns 1..nitems of its task, the error item
 *     (failed) is return nitems + 1; each has an owned ref entry holding one
 *     reference for the stream until it is taken (then the caller's);
 *   - a stream is freed once it is closed and its task is gone (or the
 *     submitter is: rayc_shutdown), never earlier.
 */
#ifndef RAYC_TASK_SUBMITTER_INTERNAL_H
#define RAYC_TASK_SUBMITTER_INTERNAL_H

#include "task_submitter.h"

#include "id_map.h"

/* A deferred task's copy of what its spec needs: the request (its name in
 * name_copy), the arguments (inline bytes in bytes). One allocation. */
typedef struct deferred {
    tsub_request rq;
    size_t nargs;
    tsub_arg *args;
    char *name_copy;
    uint8_t *bytes;
} deferred;

typedef struct otask {
    task_id_t id;
    id_node hnode;
    uint32_t num_returns; /* 0 for a generator (its items are in stream) */
    int retries_left;
    bool retry_exceptions;
    bool cancelled;
    bool submitted;
    bool done;     /* finished; kept as lineage while its remote results are referenced */
    bool hard_pin; /* RAYC_SCHED_NODE without soft: runs only on pin_node */
    bool is_actor; /* a call of actor's method */
    int oom_kills; /* attempts the memory monitor killed */
    int actor_retries;
    actor_id_t actor;
    node_id_t pin_node;
    uint8_t *frame; /* the SubmitTask frame as sent (kept for retries) */
    size_t frame_len;
    const char *function; /* interned in the submitter (tsub__function) */
    /* References this task holds until it ends: its ref arguments. */
    object_id_t *held;
    size_t nheld;
    deferred *def;       /* deferred tasks only */
    struct otask *dnext; /* deferred list */
    rayc_stream *stream; /* generators only */
} otask;

/* A generator's stream: the caller's handle (rayc_stream). */
struct rayc_stream {
    task_submitter *ts; /* NULL once the submitter is gone (rayc_shutdown) */
    task_id_t task;
    uint32_t backpressure;
    uint32_t nitems;     /* items arrived, in order: returns 1..nitems */
    uint32_t taken;      /* handed out (items, then the error item) */
    uint32_t alive;      /* item entries not gone yet: the task's lineage is kept while > 0 */
    uint32_t attempt;    /* the newest attempt items came from */
    uint64_t recv_bytes; /* STREAM_ITEM_COST of its items received (flow control) */
    uint64_t recv_acked; /* ... when the last StreamAck went out */
    bool failed;         /* the error item (return nitems + 1) follows the items */
    bool ended;          /* no item comes after nitems */
    bool closed;         /* tsub_stream_close ran */
    bool task_gone;      /* its task record is finished */
    bool remote;         /* an item lives in another node's store */
    bool is_actor;       /* acks go to the worker of actor */
    actor_id_t actor;
    struct rayc_stream *prev, *next; /* ts->streams */
};

/* A function name, kept once for every task that calls it: a driver with a
 * million queued tasks calls a handful of functions. */
typedef struct fname {
    struct fname *next;
    char s[];
} fname;
#define FNAME_BUCKETS 64

struct task_submitter {
    tsub_deps d;
    id_map tasks;                 /* otask by id */
    otask *deferred;              /* waiting for arguments still being computed */
    rayc_stream *streams;         /* every stream not freed yet */
    fname *fnames[FNAME_BUCKETS]; /* every function name submitted, until tsub_free */
};

/* task_submitter.c, mu held */
otask *tsub__find(task_submitter *ts, const uint8_t *task_id);
/* t's record goes (off the deferred list too, if it is there). */
void tsub__finish(task_submitter *ts, otask *t);
/* Every return of t (or its stream) becomes the error (status, message). */
void tsub__fail_returns(task_submitter *ts, otask *t, int status, const char *message);
/* Cancel t: unsent, it fails at once (ECANCELLED); sent, its raylet (or
 * actor) is asked to stop it. t may be finished on return. */
void tsub__cancel(task_submitter *ts, otask *t, bool force);
/* Submit the deferred tasks whose arguments became known. */
void tsub__run_deferred(task_submitter *ts);
/* e becomes a sealed store object of `size` bytes on node (pinned for us at
 * offset when pinned). True if it lives on another node. */
bool tsub__take_store(task_submitter *ts, ref_entry *e, uint64_t size, bool pinned, uint64_t offset,
                      const ProtobufCBinaryData *node);

/* task_streams.c, mu held */
/* A new stream for t (linked to ts). NULL when out of memory. */
rayc_stream *tsub__stream_new(task_submitter *ts, otask *t, const tsub_request *rq);
/* The generator failed for good: its error item follows the items (or,
 * after a rebuild, the items it was remaking are that error). */
void tsub__stream_fail(task_submitter *ts, rayc_stream *s, int status, const char *message);
/* The generator's attempt succeeded with num_items items: the stream ends
 * (after a rebuild, items still missing are lost). True if an item lives on
 * another node (keep the lineage). */
bool tsub__stream_done(task_submitter *ts, rayc_stream *s, uint32_t num_items);
/* t's record is going: the stream no longer has a task. */
void tsub__stream_detach(rayc_stream *s);
/* A stream item's entry went (lineage bookkeeping). True when no item entry
 * is left. */
bool tsub__stream_item_gone(rayc_stream *s, const object_id_t *oid);
/* A rebuild: the items in other nodes' stores become pending again. */
void tsub__stream_rebuild(task_submitter *ts, rayc_stream *s);
/* Fill a resent spec's stream fields (what the caller consumed so far). */
void tsub__stream_spec(const rayc_stream *s, Rpc__TaskSpec *spec);
/* Detach every stream (the submitter is being freed). */
void tsub__streams_orphan(task_submitter *ts);

#endif
