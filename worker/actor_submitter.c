/*
 * actor_submitter.c -- see actor_submitter.h.
 *
 * A handle's calls move through three lists, all task ids in call order:
 * pending (made, not sent: waiting for the connection, for an earlier call
 * or for their arguments), inflight (sent on the current connection, no
 * reply yet) and limbo (in flight when the connection broke: their fate
 * waits for what the GCS says about the actor).
 */
#include "actor_submitter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "id_map.h"
#include "idq.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define GCS_TIMEOUT_MS     5000
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS     5
#define BACKOFF_MAX_MS     200
#define WRITE_DEPTH        4 /* see asub_send_hook */

enum { H_RESOLVING = 0, H_CONNECTED = 1, H_DEAD = 2 };

typedef struct handle {
    actor_id_t id;
    id_node hnode;
    int state;
    bool busy;    /* the resolver works on it (mu released) */
    bool blocked; /* on as->blocked: its first pending call waits for arguments */
    bool detached, released, exit_sent;
    int max_task_retries;
    int write_depth; /* calls written in flight past which sends only queue */
    char *cause;     /* H_DEAD */
    cw_conn *conn;
    struct asub_direct *reader; /* conn's reader thread's argument */
    node_id_t node;             /* where the connected incarnation runs (streams' acks) */
    worker_id_t worker;         /* ... and its worker */
    idq pending, inflight, limbo;
    uint64_t next_try_ms;
    int backoff_ms;
    struct handle *next_all, *next_blocked;
} handle;

struct actor_submitter {
    asub_deps d;
    id_map handles;
    handle *all, *blocked;
    pthread_t resolver;
    bool has_resolver, stop;
    pthread_cond_t cv; /* with d.mu: a handle needs resolving; readers ended */
    int readers;       /* live connection reader threads */
};

struct asub_direct { /* a connection's reader thread's argument */
    actor_submitter *as;
    struct handle *h;
    cw_conn *conn;
    bool replied; /* a reply arrived in this read: wake the waiters once */
};
typedef struct asub_direct reader_arg;

/* ------------------------------------------------------------ handles */

static handle *find(actor_submitter *as, const actor_id_t *id)
{
    return ID_MAP_ENTRY(id_map_find(&as->handles, id->b), handle, hnode);
}

static void wake_resolver(actor_submitter *as);

/* mu held. NULL when out of memory. */
static handle *get_or_add(actor_submitter *as, const actor_id_t *id)
{
    handle *h = find(as, id);
    if (h)
        return h;
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->id = *id;
    h->state = H_RESOLVING;
    h->backoff_ms = BACKOFF_MIN_MS;
    id_map_insert(&as->handles, &h->hnode);
    h->next_all = as->all;
    as->all = h;
    wake_resolver(as);
    return h;
}

static void fail_queue(actor_submitter *as, idq *q, const char *text)
{
    while (q->len > 0) {
        task_id_t id = *idq_at(q, 0);
        idq_pop(q);
        tsub_actor_fail(as->d.tasks, &id, RAYC_EACTOR_DIED, text);
    }
}

/* The actor is dead for good: every call fails with why. mu held. */
static void set_dead(actor_submitter *as, handle *h, const char *cause)
{
    char hex[ID_HEX_MAX], text[600];
    snprintf(text, sizeof(text), "actor %.12s died: %s", id_hex(h->id.b, ACTOR_ID_SIZE, hex),
             cause);
    h->state = H_DEAD;
    free(h->cause);
    h->cause = strdup(text);
    fail_queue(as, &h->limbo, text);
    fail_queue(as, &h->inflight, text);
    fail_queue(as, &h->pending, text);
}

/* Send what can go, in order. mu held. */
static void pump(actor_submitter *as, handle *h)
{
    if (h->state == H_DEAD) {
        fail_queue(as, &h->pending, h->cause ? h->cause : "the actor died");
        return;
    }
    if (h->state != H_CONNECTED)
        return;
    while (h->pending.len > 0) {
        task_id_t id = *idq_at(&h->pending, 0);
        int r = tsub_actor_send(as->d.tasks, &id);
        if (r == 0) {
            if (!h->blocked) {
                h->blocked = true;
                h->next_blocked = as->blocked;
                as->blocked = h;
            }
            return;
        }
        idq_pop(&h->pending);
    }
    if (h->released && !h->exit_sent && h->conn) {
        Rpc__ActorExit e = RPC__ACTOR_EXIT__INIT;
        e.cause = "released by its creator";
        cw_conn_send_batched_msg(h->conn, MSG_ACTOR_EXIT, &e.base);
        h->exit_sent = true;
    }
}

void asub_send_hook(void *arg, const actor_id_t *actor, const task_id_t *task, const uint8_t *frame,
                    size_t len)
{
    actor_submitter *as = arg;
    handle *h = find(as, actor);
    if (h == NULL)
        return;
    /* A call with few ahead of it is written now, by its caller (with
     * whatever queued before it). Behind write_depth written calls (at
     * least the actor's max_concurrency, so none of its threads waits for
     * a call we hold back) a call only joins the queue: a reply to one of
     * those wakes our reader, which writes the queue in one go
     * (after_read). A burst of calls costs a write per batch, not per
     * call, and no thread hand-off. */
    if (h->conn &&
        (h->inflight.len < (size_t)h->write_depth ? cw_conn_send_nb(h->conn, frame, len)
                                                  : cw_conn_queue(h->conn, frame, len)) == 0)
        idq_push(&h->inflight, task);
    else
        idq_push(&h->limbo, task); /* decided once the GCS says how the actor is */
}

void asub_stream_ack_hook(void *arg, const actor_id_t *actor, const Rpc__StreamAck *ack)
{
    actor_submitter *as = arg;
    handle *h = find(as, actor);
    if (h == NULL || h->state != H_CONNECTED)
        return; /* a call sent again after a restart starts over anyway */
    Rpc__StreamAck a = *ack;
    a.worker_id = (ProtobufCBinaryData){WORKER_ID_SIZE, h->worker.b};
    a.node_id = (ProtobufCBinaryData){NODE_ID_SIZE, h->node.b};
    cw_conn_send_batched_msg(as->d.raylet, MSG_STREAM_ACK, &a.base);
}

void asub_progress_hook(void *arg)
{
    actor_submitter *as = arg;
    handle *list = as->blocked;
    as->blocked = NULL;
    for (handle *h = list, *next; h; h = next) {
        next = h->next_blocked;
        h->blocked = false;
        pump(as, h);
    }
}

void asub_call_added(actor_submitter *as, const actor_id_t *id, const task_id_t *task)
{
    handle *h = get_or_add(as, id);
    if (h == NULL) {
        tsub_actor_fail(as->d.tasks, task, RAYC_ENOMEM, "out of memory");
        return;
    }
    if (idq_push(&h->pending, task) != 0) {
        tsub_actor_fail(as->d.tasks, task, RAYC_ENOMEM, "out of memory");
        return;
    }
    if (h->pending.len == 1)
        pump(as, h);
}

void asub_created(actor_submitter *as, const actor_id_t *id, int max_task_retries, bool detached)
{
    pthread_mutex_lock(as->d.mu);
    handle *h = get_or_add(as, id);
    if (h) {
        h->max_task_retries = max_task_retries;
        h->detached = detached;
    }
    pthread_mutex_unlock(as->d.mu);
}

void asub_killed(actor_submitter *as, const actor_id_t *id, const char *cause)
{
    pthread_mutex_lock(as->d.mu);
    handle *h = get_or_add(as, id);
    if (h && h->state != H_DEAD) {
        if (h->conn)
            cw_conn_shutdown(h->conn); /* its reader frees it */
        h->conn = NULL;
        h->reader = NULL;
        set_dead(as, h, cause);
    }
    pthread_mutex_unlock(as->d.mu);
}

void asub_release(actor_submitter *as, const actor_id_t *id)
{
    pthread_mutex_lock(as->d.mu);
    handle *h = get_or_add(as, id);
    if (h && !h->detached) {
        h->released = true;
        pump(as, h);
    }
    pthread_mutex_unlock(as->d.mu);
}

/* ------------------------------------------------------------ replies */

/* A frame from an actor's worker; mu held (cw_conn_set_async_lock). */
static int on_actor_frame(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    reader_arg *ra = arg;
    actor_submitter *as = ra->as;
    if (type == MSG_STREAM_ITEM) { /* an item of a streaming call */
        tsub_stream_item_locked(as->d.tasks, (Rpc__StreamItem *)msg);
        cw_conn_wake(as->d.raylet);
        return 0;
    }
    if (type != MSG_TASK_DONE)
        return 0;
    Rpc__TaskDone *m = (Rpc__TaskDone *)msg;
    if (m->task_id.len != TASK_ID_SIZE)
        return 0;
    idq_remove(&ra->h->inflight, m->task_id.data);
    tsub_task_done_locked(as->d.tasks, m);
    __atomic_store_n(&ra->replied, true, __ATOMIC_RELAXED);
    return 0;
}

/* Replies arrived since the last look: write the calls queued behind them
 * (asub_send_hook), and wake the threads waiting on the raylet connection
 * for them, once. */
static void after_read(actor_submitter *as, reader_arg *ra)
{
    if (!__atomic_exchange_n(&ra->replied, false, __ATOMIC_RELAXED))
        return;
    cw_conn_flush_nb(ra->conn); /* a reader never waits to write */
    /* A thread that starts waiting counts itself under mu before it lets go
     * of it, and a reply is recorded under mu before this looks: no reply
     * goes unseen. No one waiting (a caller reading its reply itself): no
     * wake-up of the raylet connection's reader for nothing. */
    if (as->d.waiters == NULL || __atomic_load_n(as->d.waiters, __ATOMIC_SEQ_CST) > 0)
        cw_conn_wake(as->d.raylet);
}

/* Read one connection's replies until it breaks; then the handle asks the
 * GCS again, and the calls in flight wait in limbo for the answer. */
static void *reader_main(void *arg)
{
    reader_arg *ra = arg;
    actor_submitter *as = ra->as;
    while (cw_conn_pump_background(ra->conn) == 0)
        after_read(as, ra); /* one wake-up per read, however many replies it brought */
    pthread_mutex_lock(as->d.mu);
    handle *h = ra->h;
    if (h->conn == ra->conn) {
        h->conn = NULL;
        h->reader = NULL;
        while (h->inflight.len > 0) {
            idq_push(&h->limbo, idq_at(&h->inflight, 0));
            idq_pop(&h->inflight);
        }
        if (h->state == H_CONNECTED) {
            h->state = H_RESOLVING;
            h->next_try_ms = 0;
            h->backoff_ms = BACKOFF_MIN_MS;
        }
        wake_resolver(as);
    }
    pthread_mutex_unlock(as->d.mu);
    cw_conn_free(ra->conn);
    pthread_mutex_lock(as->d.mu);
    as->readers--;
    pthread_cond_broadcast(&as->cv);
    pthread_mutex_unlock(as->d.mu);
    free(ra);
    return NULL;
}

/* ------------------------------------------------------------ direct reads */

asub_direct *asub_direct_enter(actor_submitter *as, const rayc_ref *refs, size_t n,
                               const rayc_value *out)
{
    handle *h = NULL;
    for (size_t i = 0; i < n; i++) {
        if (out[i].priv_)
            continue;
        actor_id_t actor;
        task_id_t task = object_id_task((const object_id_t *)refs[i].id);
        if (!tsub_actor_of(as->d.tasks, &task, &actor))
            return NULL;
        if (h == NULL)
            h = find(as, &actor);
        if (h == NULL || memcmp(h->id.b, actor.b, ACTOR_ID_SIZE) != 0)
            return NULL;
    }
    /* Every call of the handle sent on a live connection: all their replies
     * come on it, and nothing they wait for comes from the raylet. */
    if (h == NULL || h->state != H_CONNECTED || h->conn == NULL || h->pending.len > 0 ||
        h->reader == NULL)
        return NULL;
    cw_conn_enter(h->conn);
    return h->reader;
}

int asub_direct_pump(asub_direct *d, int64_t wait_ms)
{
    int rc = cw_conn_pump_direct(d->conn, wait_ms);
    after_read(d->as, d);
    return rc;
}

void asub_direct_leave(asub_direct *d)
{
    cw_conn_leave(d->conn);
}

/* ------------------------------------------------------------ resolving */

static void wake_resolver(actor_submitter *as)
{
    pthread_cond_broadcast(&as->cv);
}

/* The calls in flight when the last connection broke: sent again after the
 * restart while max_task_retries allows, else failed with why. mu held. */
static void settle_limbo(actor_submitter *as, handle *h, const char *why)
{
    char hex[ID_HEX_MAX], text[600];
    snprintf(text, sizeof(text), "actor %.12s died while running the call (%s); it restarts",
             id_hex(h->id.b, ACTOR_ID_SIZE, hex), why && *why ? why : "its worker died");
    /* Back to the front of pending, keeping their order. */
    while (h->limbo.len > 0) {
        task_id_t id = *idq_at(&h->limbo, h->limbo.len - 1);
        h->limbo.len--;
        if (tsub_actor_retry(as->d.tasks, &id, h->max_task_retries))
            idq_push_front(&h->pending, &id);
        else
            tsub_actor_fail(as->d.tasks, &id, RAYC_EACTOR_DIED, text);
    }
}

/* Ask the GCS about h (mu NOT held); returns the record or NULL (retry). */
static Rpc__ActorReply *ask_gcs(actor_submitter *as, const handle *h)
{
    Rpc__GetActorRequest req = RPC__GET_ACTOR_REQUEST__INIT;
    req.actor_id.data = (uint8_t *)h->id.b;
    req.actor_id.len = ACTOR_ID_SIZE;
    ProtobufCMessage *m = NULL;
    if (as->d.gcs_call(MSG_GET_ACTOR_REQ, &req.base, &req.req_id, MSG_GET_ACTOR_REPLY, &m,
                       GCS_TIMEOUT_MS) != 0)
        return NULL;
    return (Rpc__ActorReply *)m;
}

/* Connect to the actor's worker at address. NULL on failure. */
static cw_conn *connect_actor(actor_submitter *as, const char *address, reader_arg *ra)
{
    char err[256];
    cw_conn *c = cw_conn_dial(address, as->d.token, as->d.self.b, as->d.is_worker,
                              CONNECT_TIMEOUT_MS, on_actor_frame, ra, err, sizeof(err));
    if (c == NULL)
        log_debug("actor at %s: %s", address, err);
    else
        cw_conn_set_async_lock(c, as->d.mu); /* on_actor_frame runs with it */
    return c;
}

/* Try again later (the GCS is away, the actor is being created). mu held. */
static void retry_later(handle *h)
{
    h->next_try_ms = now_ms() + (uint64_t)h->backoff_ms;
    h->backoff_ms = h->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : h->backoff_ms * 2;
}

/* One resolution step for h (mu NOT held on entry or exit; h->busy). */
static void resolve(actor_submitter *as, handle *h)
{
    Rpc__ActorReply *r = ask_gcs(as, h);
    const Rpc__ActorInfo *a = r ? r->actor : NULL;
    int status = r && r->status ? r->status->code : (r ? RAYC_OK : RAYC_ECONN);
    cw_conn *conn = NULL;
    reader_arg *ra = NULL;
    if (a && a->state == RPC__ACTOR_STATE__ACTOR_ALIVE && a->address && a->address[0]) {
        ra = calloc(1, sizeof(*ra));
        if (ra) {
            ra->as = as;
            ra->h = h;
            conn = connect_actor(as, a->address, ra);
        }
    }
    pthread_mutex_lock(as->d.mu);
    if (a) {
        h->max_task_retries = a->max_task_retries;
        h->detached = a->detached;
    }
    if (status == RAYC_ENOTFOUND) {
        set_dead(as, h, "no such actor");
    } else if (a && a->state == RPC__ACTOR_STATE__ACTOR_DEAD) {
        set_dead(as, h, a->death_cause && *a->death_cause ? a->death_cause : "it died");
    } else if (conn) {
        ra->conn = conn;
        h->conn = conn;
        h->write_depth = a->max_concurrency > WRITE_DEPTH ? a->max_concurrency : WRITE_DEPTH;
        h->reader = ra;
        h->state = H_CONNECTED;
        if (a->node_id.len == NODE_ID_SIZE)
            memcpy(h->node.b, a->node_id.data, NODE_ID_SIZE);
        if (a->worker_id.len == WORKER_ID_SIZE)
            memcpy(h->worker.b, a->worker_id.data, WORKER_ID_SIZE);
        h->backoff_ms = BACKOFF_MIN_MS;
        settle_limbo(as, h, a->death_cause);
        as->readers++;
        if (thread_detached(reader_main, ra, 256u << 10) != 0) {
            as->readers--;
            h->conn = NULL;
            h->reader = NULL;
            h->state = H_RESOLVING;
            cw_conn_free(conn);
            free(ra);
            retry_later(h);
        } else {
            pump(as, h);
        }
        ra = NULL;
    } else {
        if (a && a->state == RPC__ACTOR_STATE__ACTOR_RESTARTING)
            settle_limbo(as, h, a->death_cause);
        retry_later(h);
    }
    pthread_mutex_unlock(as->d.mu);
    free(ra);
    if (r)
        msg_free(&r->base);
}

static void *resolver_main(void *arg)
{
    actor_submitter *as = arg;
    pthread_mutex_lock(as->d.mu);
    while (!as->stop) {
        uint64_t now = now_ms(), next = now + 1000;
        handle *pick = NULL;
        for (handle *h = as->all; h; h = h->next_all) {
            if (h->state != H_RESOLVING || h->busy)
                continue;
            if (h->next_try_ms <= now) {
                pick = h;
                break;
            }
            if (h->next_try_ms < next)
                next = h->next_try_ms;
        }
        if (pick == NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = next - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&as->cv, as->d.mu, &ts);
            continue;
        }
        pick->busy = true;
        pthread_mutex_unlock(as->d.mu);
        resolve(as, pick);
        pthread_mutex_lock(as->d.mu);
        pick->busy = false;
    }
    pthread_mutex_unlock(as->d.mu);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

actor_submitter *asub_new(const asub_deps *d)
{
    actor_submitter *as = calloc(1, sizeof(*as));
    if (as == NULL)
        return NULL;
    as->d = *d;
    if (id_map_init(&as->handles, ID_MAP_KEY_OFF(handle, hnode, id), ACTOR_ID_SIZE, 64) != 0) {
        free(as);
        return NULL;
    }
    pthread_cond_init(&as->cv, NULL);
    if (pthread_create(&as->resolver, NULL, resolver_main, as) != 0) {
        id_map_destroy(&as->handles);
        pthread_cond_destroy(&as->cv);
        free(as);
        return NULL;
    }
    as->has_resolver = true;
    return as;
}

void asub_free(actor_submitter *as)
{
    if (as == NULL)
        return;
    pthread_mutex_lock(as->d.mu);
    as->stop = true;
    pthread_cond_broadcast(&as->cv);
    for (handle *h = as->all; h; h = h->next_all)
        if (h->conn)
            cw_conn_shutdown(h->conn);
    pthread_mutex_unlock(as->d.mu);
    if (as->has_resolver)
        pthread_join(as->resolver, NULL);
    pthread_mutex_lock(as->d.mu);
    while (as->readers > 0)
        pthread_cond_wait(&as->cv, as->d.mu);
    pthread_mutex_unlock(as->d.mu);
    for (handle *h = as->all, *next; h; h = next) {
        next = h->next_all;
        free(h->pending.v);
        free(h->inflight.v);
        free(h->limbo.v);
        free(h->cause);
        free(h);
    }
    id_map_destroy(&as->handles);
    pthread_cond_destroy(&as->cv);
    free(as);
}
