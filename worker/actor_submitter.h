/*
 * actor_submitter.h -- the caller's side of actors (Ray's actor task
 * submitter): one handle per actor this process calls, which learns the
 * actor's address from the GCS, connects straight to its worker and sends
 * its calls there in the order they were made.
 *
 * Calls are task_submitter records (the reference table, argument holding,
 * completions and error values are shared with tasks); this keeps, per
 * actor, the calls not sent yet (in order: a call waits for the calls made
 * before it, and for its own arguments) and the calls sent on the current
 * connection. When the connection breaks the handle asks the GCS again:
 * RESTARTING or ALIVE somewhere else, the calls in flight are sent again
 * while max_task_retries allows, else they fail with RAYC_EACTOR_DIED; DEAD,
 * every call fails with the death cause.
 *
 * Threads: a resolver thread (started on first use) asks the GCS and
 * connects; each connection has a reader thread for the replies, which go
 * to the task submitter, then wake whoever waits on the raylet connection
 * (rayc_get, rayc_wait).
 * Thread-safety: everything under the core's mu (deps.mu), like the task
 * submitter.
 */
#ifndef RAYC_ACTOR_SUBMITTER_H
#define RAYC_ACTOR_SUBMITTER_H

#include <pthread.h>
#include <stdbool.h>

#include "cw_conn.h"
#include "ids.h"
#include "task_submitter.h"

typedef struct actor_submitter actor_submitter;

typedef struct asub_deps {
    pthread_mutex_t *mu;
    task_submitter *tasks;
    /* A GCS request (core__gcs_call): reconnects after a GCS restart. */
    int (*gcs_call)(uint16_t type, ProtobufCMessage *req, uint64_t *req_id, uint16_t reply_type,
                    ProtobufCMessage **reply, int timeout_ms);
    cw_conn *raylet;    /* woken when a reply arrives and someone waits there */
    const int *waiters; /* threads waiting for results on the raylet connection (mu) */
    const char *token;
    worker_id_t self;
    bool is_worker;
} asub_deps;

/* NULL when out of memory. */
actor_submitter *asub_new(const asub_deps *d);
/* Close every connection, stop the threads, free. NULL-safe. */
void asub_free(actor_submitter *as);

/* The task submitter's hooks (tsub_deps.actor_send, .progress); arg: as. */
void asub_send_hook(void *arg, const actor_id_t *actor, const task_id_t *task, const uint8_t *frame,
                    size_t len);
void asub_progress_hook(void *arg);
/* tsub_deps.stream_ack: a streaming call's ack goes through the raylets to
 * the actor's worker (its reader thread runs the call, so the direct
 * connection is not read meanwhile). mu held. */
void asub_stream_ack_hook(void *arg, const actor_id_t *actor, const Rpc__StreamAck *ack);

/* Direct reads (cw_conn.h): a thread in rayc_get whose missing results
 * (refs[i] with out[i].priv_ NULL) are all calls of one actor, all sent on
 * its live connection, reads that connection itself. asub_direct_enter
 * (mu held) returns the entered connection, or NULL when that is not the
 * case (then wait on the raylet connection). asub_direct_pump (mu NOT held)
 * reads for up to wait_ms: frames read, or RAYC_ECONN once it broke (the
 * calls then go the way of a broken connection: wait on the raylet
 * connection for them). asub_direct_leave (mu NOT held) ends it; the
 * connection may be freed from then on. */
typedef struct asub_direct asub_direct;
asub_direct *asub_direct_enter(actor_submitter *as, const rayc_ref *refs, size_t n,
                               const rayc_value *out);
int asub_direct_pump(asub_direct *d, int64_t wait_ms);
void asub_direct_leave(asub_direct *d);

/* A new actor this process created (mu NOT held): its handle starts
 * resolving. max_task_retries and detached come from its options. */
void asub_created(actor_submitter *as, const actor_id_t *id, int max_task_retries, bool detached);
/* A call was recorded by tsub_submit (mu held): queue it behind the calls
 * made before it and send what can go. */
void asub_call_added(actor_submitter *as, const actor_id_t *id, const task_id_t *task);
/* This process killed the actor for good (mu NOT held): calls made from
 * now on, and those in flight, fail at once with the cause. */
void asub_killed(actor_submitter *as, const actor_id_t *id, const char *cause);
/* The creator released its handle (mu NOT held): the actor exits once the
 * calls made before are done (nothing for a detached actor). */
void asub_release(actor_submitter *as, const actor_id_t *id);

#endif
