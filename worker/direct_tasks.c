/*
 * direct_tasks.c -- see direct_tasks.h.
 *
 * A pool per resource demand holds the tasks waiting for room on a lease
 * (pending, in submit order) and the pool's leases. A lease moves through
 * REQUESTED (its SubmitTask went to the raylet), CONNECTING (granted: the
 * housekeeper connects), READY (tasks go out; each in flight is on its
 * inflight queue) and BROKEN (its connection ended: what was in flight
 * waits in limbo for the raylet's word on the worker, then fails with it).
 * A lease we give back or that broke with nothing in flight is freed by
 * its reader thread.
 */
#include "direct_tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "frame.h"
#include "idq.h"
#include "log.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 5000
#define CHURN_US           2000 /* a worker that answered this recently turns tasks over */
#define OFF_MS             1000 /* a demand that fell back stays on the raylet's path */
#define LIMBO_MS           5000 /* the raylet's word on a broken lease waited for at most */
#define MAX_LEASES         64   /* per demand */
#define MAX_REQUESTS       2    /* lease requests of one demand in the raylet at once */
#define LEASE_FUNCTION     "rayc.lease"
#define STEAL_MS           100  /* tasks queued behind one running this long are asked back */
#define ROTATE_MS          1000 /* a lease kept this long is given back and asked for again */
#define WRITE_DEPTH        4    /* tasks in flight on a lease past which submits only queue */

enum { L_REQUESTED, L_CONNECTING, L_READY, L_BROKEN };

typedef struct dpool dpool;

typedef struct dlease {
    task_id_t id; /* the lease's own task id */
    dtx *x;
    dpool *pool;
    int state;
    char address[96];
    char local[64]; /* its worker's Unix socket, when on our node ("": none) */
    cw_conn *conn;
    idq inflight, limbo;
    uint64_t requested_ms, granted_ms, idle_ms, broken_ms, last_done_us;
    bool blocked;           /* its worker gave tasks back: nothing more until it answers */
    bool steal_sent;        /* asked for what waits behind its running task */
    uint64_t busy_since_ms; /* its oldest task in flight went out or became the head */
    bool returning;         /* we closed it */
    bool reading;           /* its reader thread runs */
    bool replied;           /* a reply arrived in this read: wake the waiters once */
    bool queued;            /* frames queued on conn for the reader to write (flush_queued) */
    bool settling; /* someone fails its limbo now (mu dropped meanwhile): only they free it */
    int end_code;  /* the raylet's word on its end (0: none yet) */
    char *end_text;
    struct dlease *next;
} dlease;

struct dpool {
    res_set demand;
    idq pending;
    dlease *leases;
    int requests; /* leases REQUESTED */
    uint64_t off_until_ms;
    uint64_t lost_ms; /* when a lease it held last went away */
    struct dpool *next;
};

struct dtx_direct {
    dtx *x;
    dlease *l;
    cw_conn *conn;
};

struct dtx {
    dtx_deps d;
    dpool *pools;
    pthread_t keeper;
    bool has_keeper, stop;
    pthread_cond_t cv;     /* with d.mu: the housekeeper has work; a reader ended */
    uint64_t keeper_at_ms; /* when the housekeeper looks next (UINT64_MAX: when woken) */
    int readers;
    int calls; /* threads in dtx_on_raylet_done (it drops mu while settling) */
    uint64_t n_direct, n_fallback, n_granted, n_requested, n_local;
};

/* ------------------------------------------------------------ eligibility */

/* Only what the raylet need not arrange goes direct (see the header). */
static bool eligible(const Rpc__TaskSpec *s)
{
    if (s->attempt != 0 || s->retry_delay_ms || s->streaming || s->actor_creation ||
        s->actor_id.len || s->lease || s->pg_id.len || s->node_id.len ||
        s->strategy != RAYC_SCHED_DEFAULT)
        return false;
    for (size_t i = 0; i < s->n_args; i++)
        if (s->args[i]->is_ref)
            return false;
    return true;
}

/* Does spec ask for exactly p's demand? (No res_set is built per task:
 * specs of one demand list the same resources in the same order.) */
static bool demand_is(const dpool *p, const Rpc__TaskSpec *s)
{
    if (s->n_resources != (size_t)p->demand.n)
        return false;
    for (size_t i = 0; i < s->n_resources; i++)
        if (s->resources[i]->amount != p->demand.amount[i] ||
            strcmp(s->resources[i]->name, p->demand.name[i]) != 0)
            return false;
    return true;
}

/* ------------------------------------------------------------ leases */

static dpool *pool_for(dtx *x, const Rpc__TaskSpec *s)
{
    for (dpool *p = x->pools; p; p = p->next)
        if (demand_is(p, s))
            return p;
    dpool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < s->n_resources; i++) {
        Rpc__Resource *r = s->resources[i];
        if (p->demand.n == RES_MAX || strlen(r->name) >= RES_NAME_MAX) {
            free(p);
            return NULL;
        }
        snprintf(p->demand.name[p->demand.n], RES_NAME_MAX, "%s", r->name);
        p->demand.amount[p->demand.n++] = r->amount;
    }
    p->next = x->pools;
    x->pools = p;
    return p;
}

static dlease *lease_find(dtx *x, const uint8_t *id)
{
    for (dpool *p = x->pools; p; p = p->next)
        for (dlease *l = p->leases; l; l = l->next)
            if (memcmp(l->id.b, id, TASK_ID_SIZE) == 0)
                return l;
    return NULL;
}

static void lease_unlink(dlease *l)
{
    for (dlease **pp = &l->pool->leases; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    if (l->state == L_REQUESTED)
        l->pool->requests--;
    else
        l->pool->lost_ms = now_ms();
    idq_free(&l->inflight);
    idq_free(&l->limbo);
    free(l->end_text);
    free(l);
}

/* Ask the raylet for a lease of p's demand. mu held. */
static void request_lease(dtx *x, dpool *p)
{
    dlease *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return;
    l->id = task_id_random(*x->d.job);
    l->x = x;
    l->pool = p;
    l->state = L_REQUESTED;
    l->requested_ms = now_ms();
    Rpc__Resource rs[RES_MAX], *rps[RES_MAX];
    for (int i = 0; i < p->demand.n; i++) {
        rpc__resource__init(&rs[i]);
        rs[i].name = p->demand.name[i];
        rs[i].amount = p->demand.amount[i];
        rps[i] = &rs[i];
    }
    Rpc__TaskSpec s = RPC__TASK_SPEC__INIT;
    s.task_id = (ProtobufCBinaryData){TASK_ID_SIZE, l->id.b};
    s.job_id = job_id_to_int(*x->d.job);
    s.function = LEASE_FUNCTION;
    s.num_returns = 1;
    s.n_resources = (size_t)p->demand.n;
    s.resources = rps;
    s.owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, x->d.self.b};
    s.owner_node_id = (ProtobufCBinaryData){NODE_ID_SIZE, x->d.node.b};
    s.max_retries = -1; /* no retry: a lease that fails is asked for again */
    s.lease = true;
    Rpc__SubmitTask st = RPC__SUBMIT_TASK__INIT;
    st.spec = &s;
    if (cw_conn_send_batched_msg(x->d.raylet, MSG_SUBMIT_TASK, &st.base) != 0) {
        free(l);
        return;
    }
    l->next = p->leases;
    p->leases = l;
    p->requests++;
    x->n_requested++;
}

/* A lease request we no longer want (mu held): the raylet drops it if it
 * still queues it; a grant that crosses it is given back at once. */
static void cancel_request(dtx *x, dlease *l)
{
    Rpc__CancelTask m = RPC__CANCEL_TASK__INIT;
    m.task_id = (ProtobufCBinaryData){TASK_ID_SIZE, l->id.b};
    m.owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, x->d.self.b};
    cw_conn_send_batched_msg(x->d.raylet, MSG_CANCEL_TASK, &m.base);
}

/* ------------------------------------------------------------ sending */

/* How many more tasks l may take now (now in us). A lease kept for
 * ROTATE_MS takes no more: once it is drained it is given back, and the
 * next lease is asked for behind the other owners waiting at the raylet
 * (fair sharing of a busy node). */
static size_t room(const dtx *x, const dlease *l, uint64_t now)
{
    if (l->state != L_READY || l->blocked || l->returning || l->conn == NULL ||
        now / 1000 - l->granted_ms >= ROTATE_MS)
        return 0;
    size_t depth = l->last_done_us && now - l->last_done_us < CHURN_US ? (size_t)x->d.in_flight : 1;
    return depth > l->inflight.len ? depth - l->inflight.len : 0;
}

/* Have the housekeeper look at_ms at the latest (mu held). Woken only if it
 * would look later: a task's reply must not wake it each time. */
static void wake_keeper_by(dtx *x, uint64_t at_ms)
{
    if (x->keeper_at_ms > at_ms)
        pthread_cond_signal(&x->cv);
}

/* Send the head of p's pending queue on l; defer: only queue it, for
 * the reader to write with the rest (flush_queued). false if l took
 * nothing. */
static bool send_one(dtx *x, dpool *p, dlease *l, bool defer)
{
    while (p->pending.len > 0) {
        task_id_t id = *idq_at(&p->pending, 0);
        idq_pop(&p->pending);
        const uint8_t *frame;
        size_t len;
        if (!tsub_direct_frame(x->d.tasks, &id, &frame, &len, NULL, NULL))
            continue; /* cancelled meanwhile */
        /* Behind WRITE_DEPTH written tasks a frame only joins the queue:
         * the reply to one of those wakes our reader, which writes the
         * queue in one go (after_read); anything we write directly
         * (a steal, a cancel, a task with little ahead of it) writes the
         * queue first. So a burst of submits costs a write per batch, not
         * per task, and no thread hand-off. */
        bool queue = defer || l->inflight.len >= WRITE_DEPTH;
        /* Never a blocking write: we may hold mu, which our reader needs
         * to take the replies the worker may be blocked writing to us. */
        int rc = queue ? cw_conn_queue(l->conn, frame, len) : cw_conn_send_nb(l->conn, frame, len);
        l->queued |= queue && rc == 0;
        if (rc != 0) {
            idq_push_front(&p->pending, &id);
            return false;
        }
        idq_push(&l->inflight, &id);
        x->n_direct++;
        l->idle_ms = 0;
        if (l->inflight.len == 1)
            l->busy_since_ms = now_ms();
        else if (l->inflight.len == 2) /* a task waits behind another: watch it */
            wake_keeper_by(x, l->busy_since_ms + STEAL_MS);
        return true;
    }
    return false;
}

/* Send p's pending tasks to the raylet (no lease to be had soon). mu held. */
static void fall_back(dtx *x, dpool *p)
{
    while (p->pending.len > 0) {
        task_id_t id = *idq_at(&p->pending, 0);
        idq_pop(&p->pending);
        const uint8_t *frame;
        size_t len;
        if (tsub_direct_frame(x->d.tasks, &id, &frame, &len, NULL, NULL)) {
            cw_conn_send_batched(x->d.raylet, frame, len);
            x->n_fallback++;
        }
    }
    p->off_until_ms = now_ms() + OFF_MS;
    for (dlease *l = p->leases; l; l = l->next)
        if (l->state == L_REQUESTED)
            cancel_request(x, l);
}

/* Spread p's pending tasks over its leases with room, one at a time so
 * they share; ask for another lease while tasks still wait. defer: see
 * send_one. mu held. */
static void pump_as(dtx *x, dpool *p, bool defer)
{
    uint64_t now = now_us();
    bool moved = true;
    while (p->pending.len > 0 && moved) {
        moved = false;
        for (dlease *l = p->leases; l && p->pending.len > 0; l = l->next)
            if (room(x, l, now) > 0 && send_one(x, p, l, defer))
                moved = true;
    }
    if (p->pending.len == 0 || p->requests >= MAX_REQUESTS)
        return;
    int n = 0;
    for (dlease *l = p->leases; l; l = l->next)
        n++;
    if (n < MAX_LEASES)
        request_lease(x, p);
}

static void pump(dtx *x, dpool *p)
{
    pump_as(x, p, false);
}

/* Write what pump_as(defer) queued on p's leases. mu held. */
static void flush_queued(dpool *p)
{
    for (dlease *l = p->leases; l; l = l->next) {
        if (l->queued && l->conn)
            cw_conn_flush_nb(l->conn);
        l->queued = false;
    }
}

static void *keeper_main(void *arg);

/* Does p hold a lease (granted, whatever its state now)? A pool with one
 * never falls back; the housekeeper is woken when its last one goes. */
static bool leased(const dpool *p)
{
    for (const dlease *l = p->leases; l; l = l->next)
        if (l->state != L_REQUESTED)
            return true;
    return false;
}

bool dtx_submit(dtx *x, const task_id_t *id, const Rpc__TaskSpec *spec)
{
    if (!eligible(spec))
        return false;
    /* Most workers (every actor's) never submit a task: no thread for
     * them until one does. Without it, tasks go through the raylet. */
    if (!x->has_keeper && !x->stop)
        x->has_keeper = pthread_create(&x->keeper, NULL, keeper_main, x) == 0;
    if (!x->has_keeper)
        return false;
    dpool *p = pool_for(x, spec);
    if (p == NULL || now_ms() < p->off_until_ms || idq_push(&p->pending, id) != 0)
        return false;
    pump(x, p);
    if (p->pending.len > 0 && p->requests > 0 && !leased(p))
        pthread_cond_signal(&x->cv); /* the housekeeper times the fallback */
    return true;
}

/* ------------------------------------------------------------ endings */

/* The tasks in l's limbo fail as its worker did (or, if they were
 * cancelled, as cancelled); the submitter retries what it may. mu held on
 * entry and exit, dropped meanwhile. */
static void settle_limbo(dtx *x, dlease *l, int code, const char *text)
{
    const char *why = strchr(text, ':'); /* "rayc.lease: the worker ... died" */
    why = why ? why + 2 : text;
    while (l->limbo.len > 0) {
        task_id_t id = *idq_at(&l->limbo, 0);
        idq_pop(&l->limbo);
        const char *fn = NULL;
        bool cancelled = false;
        if (!tsub_direct_frame(x->d.tasks, &id, NULL, NULL, &fn, &cancelled))
            continue;
        char msg[600];
        int c = cancelled ? RAYC_ECANCELLED : code == RAYC_ECANCELLED ? RAYC_EWORKER_DIED : code;
        if (cancelled)
            snprintf(msg, sizeof(msg), "%s: cancelled", fn);
        else if (code == RAYC_ECANCELLED)
            snprintf(msg, sizeof(msg), "%s: its worker was killed to cancel another task", fn);
        else
            snprintf(msg, sizeof(msg), "%s: %s", fn, why);
        Rpc__Status st = RPC__STATUS__INIT;
        msg_status_set(&st, c, msg);
        Rpc__TaskDone d = RPC__TASK_DONE__INIT;
        d.task_id = (ProtobufCBinaryData){TASK_ID_SIZE, id.b};
        d.status = &st;
        d.owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, x->d.self.b};
        pthread_mutex_unlock(x->d.mu);
        tsub_on_task_done(x->d.tasks, MSG_TASK_DONE, &d.base);
        pthread_mutex_lock(x->d.mu);
    }
}

/* l's connection ended and its reader is gone. mu held. */
static void lease_broken(dtx *x, dlease *l)
{
    l->conn = NULL;
    while (l->inflight.len > 0) {
        idq_push(&l->limbo, idq_at(&l->inflight, 0));
        idq_pop(&l->inflight);
    }
    dpool *p = l->pool;
    if (l->limbo.len == 0) {
        lease_unlink(l);
    } else if (l->end_code != 0) {
        l->settling = true;
        settle_limbo(x, l, l->end_code, l->end_text ? l->end_text : "");
        lease_unlink(l);
    } else {
        l->state = L_BROKEN;
        l->broken_ms = now_ms();
        pthread_cond_signal(&x->cv);
    }
    pump(x, p);
}

bool dtx_on_raylet_done(dtx *x, const Rpc__TaskDone *m)
{
    if (m->task_id.len != TASK_ID_SIZE)
        return false;
    pthread_mutex_lock(x->d.mu);
    dlease *l = lease_find(x, m->task_id.data);
    if (l == NULL || x->stop) {
        pthread_mutex_unlock(x->d.mu);
        return l != NULL;
    }
    x->calls++; /* dtx_free waits for us: settle_limbo lets go of mu */
    int code = m->status ? m->status->code : RAYC_OK;
    const char *text = m->status && m->status->message ? m->status->message : "";
    dpool *p = l->pool;
    if (l->state == L_REQUESTED) {
        p->requests--;
        if (code == RAYC_OK && m->actor_address && m->actor_address[0]) {
            snprintf(l->address, sizeof(l->address), "%s", m->actor_address);
            bool here = m->node_id.len == NODE_ID_SIZE &&
                        memcmp(m->node_id.data, x->d.node.b, NODE_ID_SIZE) == 0;
            snprintf(l->local, sizeof(l->local), "%s",
                     here && m->local_address ? m->local_address : "");
            l->state = L_CONNECTING;
            x->n_granted++;
            pthread_cond_signal(&x->cv);
        } else {
            l->state = L_BROKEN; /* lease_unlink counts no request */
            lease_unlink(l);
            if (code != RAYC_ECANCELLED)
                log_info("a worker lease failed (%s): its tasks go through the raylet", text);
            bool leased = false;
            for (dlease *o = p->leases; o; o = o->next)
                leased |= o->state != L_REQUESTED;
            if (!leased)
                fall_back(x, p);
        }
    } else if (code != RAYC_OK && l->end_code == 0) {
        /* Its worker died (or was killed): what it ran fails with that. */
        l->end_code = code;
        l->end_text = strdup(text);
        if (l->state == L_BROKEN && !l->settling) {
            l->settling = true;
            settle_limbo(x, l, code, text);
            lease_unlink(l);
            pump(x, p);
        }
    }
    x->calls--;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(x->d.mu);
    return true;
}

int dtx_cancel(dtx *x, const task_id_t *id, bool force)
{
    for (dpool *p = x->pools; p; p = p->next) {
        if (idq_remove(&p->pending, id->b))
            return TSUB_DIRECT_DROPPED;
        for (dlease *l = p->leases; l; l = l->next) {
            bool found = false;
            for (size_t i = 0; i < l->inflight.len && !found; i++)
                found = memcmp(idq_at(&l->inflight, i)->b, id->b, TASK_ID_SIZE) == 0;
            if (!found)
                continue;
            Rpc__CancelTask m = RPC__CANCEL_TASK__INIT;
            m.owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, x->d.self.b};
            if (force) { /* the raylet kills the worker: the lease ends cancelled */
                m.task_id = (ProtobufCBinaryData){TASK_ID_SIZE, l->id.b};
                m.force = true;
                cw_conn_send(x->d.raylet, MSG_CANCEL_TASK, &m.base);
            } else if (l->conn) {
                m.task_id = (ProtobufCBinaryData){TASK_ID_SIZE, (uint8_t *)id->b};
                cw_conn_send(l->conn, MSG_CANCEL_TASK, &m.base);
            }
            return TSUB_DIRECT_ASKED;
        }
    }
    return TSUB_DIRECT_NOT_OURS;
}

/* ------------------------------------------------------------ replies */

/* A frame from a leased worker; mu held (cw_conn_set_async_lock). */
static int on_lease_frame(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    dlease *l = arg;
    dtx *x = l->x;
    if (type == MSG_TASKS_GIVEN_BACK) {
        /* Its running task blocks: what waits behind it goes elsewhere,
         * first in line. */
        Rpc__TasksGivenBack *g = (Rpc__TasksGivenBack *)msg;
        l->last_done_us = 0;
        for (size_t i = g->n_task_ids; i > 0; i--) {
            ProtobufCBinaryData *id = &g->task_ids[i - 1];
            if (id->len != TASK_ID_SIZE || !idq_remove(&l->inflight, id->data))
                continue;
            idq_push_front(&l->pool->pending, (const task_id_t *)id->data);
        }
        /* Nothing more for it until its running task ends (its TaskDone
         * clears this). A steal answered after that task ended (the worker
         * read our request between two tasks) leaves nothing running. */
        l->blocked = l->inflight.len > 0;
        pump(x, l->pool);
        /* What we queued behind the tasks given back is written by
         * after_read: no reply may come to carry it (the worker may have
         * given back all it had). */
        __atomic_store_n(&l->replied, true, __ATOMIC_RELAXED);
        return 0;
    }
    if (type != MSG_TASK_DONE)
        return 0;
    Rpc__TaskDone *m = (Rpc__TaskDone *)msg;
    if (m->task_id.len != TASK_ID_SIZE)
        return 0;
    bool ours = idq_remove(&l->inflight, m->task_id.data);
    l->last_done_us = now_us();
    l->busy_since_ms = l->last_done_us / 1000;
    l->blocked = false;
    l->steal_sent = false;
    if (ours) {
        tsub_task_done_locked(x->d.tasks, m);
        __atomic_store_n(&l->replied, true, __ATOMIC_RELAXED);
    }
    return 0;
}

/* Replies arrived since the last look: send what waits, and wake the
 * threads waiting on the raylet connection for them, once per read. */
static void after_read(dtx *x, dlease *l)
{
    if (!__atomic_exchange_n(&l->replied, false, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(x->d.mu);
    pump_as(x, l->pool, true); /* written below, in one write per lease */
    /* Ours is written after mu is let go (its reader frees it: we do);
     * the others the pump gave to, now. */
    bool ours = l->queued;
    l->queued = false;
    flush_queued(l->pool);
    cw_conn *conn = ours ? l->conn : NULL;
    if (l->inflight.len == 0 && l->pool->pending.len == 0) {
        l->idle_ms = now_ms();
        wake_keeper_by(x, l->idle_ms + (uint64_t)x->d.idle_ms); /* to give it back */
    } else if (l->inflight.len == 0 && now_ms() - l->granted_ms >= ROTATE_MS) {
        pthread_cond_signal(&x->cv); /* drained for its rotation */
    }
    pthread_mutex_unlock(x->d.mu);
    if (conn)
        cw_conn_flush_nb(conn); /* a reader never waits to write */
    /* See asub's wake_waiters: only if a thread waits on the raylet's. */
    if (x->d.waiters == NULL || __atomic_load_n(x->d.waiters, __ATOMIC_SEQ_CST) > 0)
        cw_conn_wake(x->d.raylet);
}

static void *reader_main(void *arg)
{
    dlease *l = arg;
    dtx *x = l->x;
    cw_conn *conn = l->conn;
    while (cw_conn_pump_background(conn) == 0)
        after_read(x, l);
    after_read(x, l);
    pthread_mutex_lock(x->d.mu);
    l->conn = NULL; /* nothing more is sent on it */
    pthread_mutex_unlock(x->d.mu);
    cw_conn_free(conn); /* waits for direct readers (dtx_direct_leave) */
    pthread_mutex_lock(x->d.mu);
    l->reading = false;
    lease_broken(x, l); /* may free l */
    pthread_mutex_unlock(x->d.mu);
    cw_conn_wake(x->d.raylet); /* what failed in limbo is known now */
    pthread_mutex_lock(x->d.mu);
    x->readers--; /* x may be freed once we let go of mu */
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(x->d.mu);
    return NULL;
}

/* ------------------------------------------------------------ direct reads */

dtx_direct *dtx_direct_enter(dtx *x, const rayc_ref *refs, size_t n, const rayc_value *out)
{
    size_t waiting = 0;
    for (size_t i = 0; i < n; i++)
        waiting += out[i].priv_ == NULL;
    if (waiting > (size_t)x->d.in_flight)
        return NULL; /* more than one lease holds: replies come on several connections */
    dlease *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (out[i].priv_)
            continue;
        task_id_t task = object_id_task((const object_id_t *)refs[i].id);
        dlease *l = found;
        bool in = false;
        for (size_t k = 0; l && k < l->inflight.len && !in; k++)
            in = memcmp(idq_at(&l->inflight, k)->b, task.b, TASK_ID_SIZE) == 0;
        if (in)
            continue;
        if (found != NULL)
            return NULL;
        for (dpool *p = x->pools; p && !found; p = p->next)
            for (l = p->leases; l && !found; l = l->next)
                for (size_t k = 0; k < l->inflight.len && !found; k++)
                    if (memcmp(idq_at(&l->inflight, k)->b, task.b, TASK_ID_SIZE) == 0)
                        found = l;
        if (found == NULL)
            return NULL;
    }
    if (found == NULL || found->state != L_READY || found->conn == NULL || !found->reading)
        return NULL;
    dtx_direct *d = malloc(sizeof(*d));
    if (d == NULL)
        return NULL;
    d->x = x;
    d->l = found;
    d->conn = found->conn;
    cw_conn_enter(d->conn);
    return d;
}

int dtx_direct_pump(dtx_direct *d, int64_t wait_ms)
{
    int rc = cw_conn_pump_direct(d->conn, wait_ms);
    if (rc >= 0)
        after_read(d->x, d->l);
    return rc;
}

void dtx_direct_leave(dtx_direct *d)
{
    cw_conn_leave(d->conn);
    free(d);
}

/* ------------------------------------------------------------ housekeeping */

/* Connect to a granted lease's worker (mu NOT held). NULL on failure. */
static cw_conn *connect_worker(dtx *x, dlease *l, const char *address)
{
    char err[256];
    cw_conn *c = cw_conn_dial(address, x->d.token, x->d.self.b, x->d.is_worker, CONNECT_TIMEOUT_MS,
                              on_lease_frame, l, err, sizeof(err));
    if (c == NULL)
        log_info("leased worker at %s: %s", address, err);
    else
        cw_conn_set_async_lock(c, x->d.mu); /* on_lease_frame runs with it */
    return c;
}

/* Connect l (CONNECTING; mu held on entry and exit, dropped meanwhile). */
static void connect_lease(dtx *x, dlease *l)
{
    char address[96], local[64];
    snprintf(address, sizeof(address), "%s", l->address);
    snprintf(local, sizeof(local), "%s", l->local);
    l->state = L_READY; /* not yet usable: conn is NULL */
    pthread_mutex_unlock(x->d.mu);
    /* Its Unix socket if it is on our node and we see it (not from another
     * network namespace), else TCP. */
    cw_conn *c = local[0] ? connect_worker(x, l, local) : NULL;
    bool here = c != NULL;
    if (c == NULL)
        c = connect_worker(x, l, address);
    pthread_mutex_lock(x->d.mu);
    x->n_local += here;
    if (c == NULL || x->stop) {
        cw_conn_free(c); /* the worker gives the lease back when no one comes */
        lease_unlink(l);
        return;
    }
    l->conn = c;
    l->reading = true;
    x->readers++;
    if (thread_detached(reader_main, l, 256u << 10) != 0) {
        x->readers--;
        l->reading = false;
        l->conn = NULL;
        cw_conn_free(c);
        lease_unlink(l);
        return;
    }
    l->idle_ms = l->granted_ms = now_ms();
    pump(x, l->pool);
}

/* One round of housekeeping; returns when to look again (ms from now,
 * -1: when woken). mu held. */
static int64_t keep(dtx *x)
{
    uint64_t now = now_ms();
    int64_t next = -1;
#define SOONER(at) (next = (next < 0 || (int64_t)((at)-now) < next) ? (int64_t)((at)-now) : next)
    for (dpool *p = x->pools; p; p = p->next) {
        bool leased = false, stale = false;
        for (dlease *l = p->leases, *nx; l; l = nx) {
            nx = l->next;
            if (l->state == L_CONNECTING) {
                connect_lease(x, l);
                return 0; /* the lists may have changed meanwhile */
            }
            if (l->state == L_REQUESTED) {
                /* Waited for DTX_FALLBACK_MS with no other lease: a request
                 * queued behind our own leases waits from when the last of
                 * them went (e.g. rotated), not from when it was made. */
                uint64_t since = l->requested_ms > p->lost_ms ? l->requested_ms : p->lost_ms;
                if (now - since >= DTX_FALLBACK_MS)
                    stale = true;
                else
                    SOONER(since + DTX_FALLBACK_MS);
                continue;
            }
            leased = true;
            if (l->state == L_BROKEN) {
                if (l->settling)
                    continue;
                if (now - l->broken_ms >= LIMBO_MS) {
                    l->settling = true;
                    settle_limbo(x, l, RAYC_EWORKER_DIED,
                                 "lost the connection to the worker running it");
                    lease_unlink(l);
                    return 0;
                }
                SOONER(l->broken_ms + LIMBO_MS);
                continue;
            }
            if (l->conn && !l->returning && l->inflight.len >= 2 && !l->steal_sent) {
                /* Tasks wait behind one that may be long: ask for them
                 * back, to run on another lease. */
                uint64_t at = l->busy_since_ms + STEAL_MS;
                if (now >= at) {
                    Rpc__StealTasks st = RPC__STEAL_TASKS__INIT;
                    st.max = (uint32_t)(l->inflight.len - 1);
                    cw_conn_send(l->conn, MSG_STEAL_TASKS, &st.base);
                    l->steal_sent = true;
                } else {
                    SOONER(at);
                }
            }
            if (l->conn && !l->returning && l->inflight.len == 0 &&
                now - l->granted_ms >= ROTATE_MS) {
                l->returning = true; /* rotated (see room) */
                cw_conn_shutdown(l->conn);
                pump(x, p);
                return 0;
            }
            if (l->conn && !l->returning && l->inflight.len == 0 && p->pending.len == 0 &&
                l->idle_ms) {
                uint64_t at = l->idle_ms + (uint64_t)x->d.idle_ms;
                if (now >= at) {
                    l->returning = true; /* the worker ends the lease when we close */
                    cw_conn_shutdown(l->conn);
                } else {
                    SOONER(at);
                }
            } else if (l->conn && !l->returning) {
                /* In use: look again when it could have idled out (its
                 * replies wake us only when we would look later). */
                SOONER(now + (uint64_t)(x->d.idle_ms > 0 ? x->d.idle_ms : 1));
            }
        }
        if (stale && !leased && p->pending.len > 0)
            fall_back(x, p);
    }
#undef SOONER
    return next;
}

static void *keeper_main(void *arg)
{
    dtx *x = arg;
    pthread_mutex_lock(x->d.mu);
    while (!x->stop) {
        int64_t next = keep(x);
        if (next == 0)
            continue;
        if (next < 0) {
            x->keeper_at_ms = UINT64_MAX;
            pthread_cond_wait(&x->cv, x->d.mu);
        } else {
            x->keeper_at_ms = now_ms() + (uint64_t)next;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += next / 1000;
            ts.tv_nsec += (next % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&x->cv, x->d.mu, &ts);
        }
        x->keeper_at_ms = 0; /* looking now */
    }
    pthread_mutex_unlock(x->d.mu);
    return NULL;
}

/* ------------------------------------------------------------ life cycle */

void dtx_counts(dtx *x, uint64_t out[DTX_NCOUNTS])
{
    out[DTX_PUSHED] = x->n_direct;
    out[DTX_FELL_BACK] = x->n_fallback;
    out[DTX_LEASES_ASKED] = x->n_requested;
    out[DTX_LEASES_GRANTED] = x->n_granted;
    out[DTX_LEASES_LOCAL] = x->n_local;
}

dtx *dtx_new(const dtx_deps *d)
{
    dtx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->d = *d;
    if (x->d.in_flight < 1)
        x->d.in_flight = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->cv, &ca);
    pthread_condattr_destroy(&ca);
    return x; /* the housekeeper starts with the first task (dtx_submit) */
}

void dtx_free(dtx *x)
{
    if (x == NULL)
        return;
    pthread_mutex_lock(x->d.mu);
    x->stop = true;
    pthread_cond_broadcast(&x->cv);
    for (dpool *p = x->pools; p; p = p->next)
        for (dlease *l = p->leases; l; l = l->next)
            if (l->conn) {
                l->returning = true;
                cw_conn_shutdown(l->conn);
            }
    while (x->readers > 0 || x->calls > 0)
        pthread_cond_wait(&x->cv, x->d.mu);
    pthread_mutex_unlock(x->d.mu);
    if (x->has_keeper)
        pthread_join(x->keeper, NULL);
    for (dpool *p = x->pools, *np; p; p = np) {
        np = p->next;
        while (p->leases)
            lease_unlink(p->leases);
        idq_free(&p->pending);
        free(p);
    }
    pthread_cond_destroy(&x->cv);
    free(x);
}
