/*
 * task_manager.c -- the raylet's task table and task life cycle; see
 * task_manager.h. Runs in the raylet's loop thread.
 *
 *   arrival --place--> forwarded (another node) | infeasible (kept) |
 *   here --dependency manager--> ready (class queue) --lease manager-->
 *   dispatched (worker) --TaskDone--> owner
 */
#include "task_manager.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dependency_manager.h"
#include "lease.h"
#include "memory_monitor.h"
#include "log.h"
#include "msg.h"
#include "placement.h"
#include "rayc.h"
#include "task.h"

#define TASK_BUCKETS 4096 /* initial task table size; grows by doubling */

/* An actor this node creates or holds (Ray's raylet side of actors). */
typedef struct ractor {
    actor_id_t id;
    worker *w; /* its worker, once the constructor ran */
    res_set held;
    bool detached;
    bool exiting; /* killed or released: its death is not reported again */
    bool in_pg;   /* lives in bundle pool_index of placement group pg */
    uint8_t pg[PG_ID_SIZE];
    int bundle_index;
    uint32_t pool_index;
    struct ractor *next;
} ractor;

struct task_manager {
    tm_deps d;
    ractor *actors;
    id_map tasks;      /* rtask by id */
    rtask *infeasible; /* doubly linked through next/prev */
    uint64_t n_infeasible;
    uint64_t n_forwarded;
    uint64_t n_generators; /* streaming tasks in the table */
    placement *pl;
    dependency_manager *dm;
    lease_mgr *lm;
};

static void make_ready(task_manager *tm, rtask *t);

/* ---------------------------------------------------------------- task table */

static rtask *task_find(task_manager *tm, const uint8_t *id, size_t len)
{
    if (len != TASK_ID_SIZE)
        return NULL;
    return ID_MAP_ENTRY(id_map_find(&tm->tasks, id), rtask, hnode);
}

static void task_free(task_manager *tm, rtask *t)
{
    if (t->msg->spec->streaming)
        tm->n_generators--; /* counted by task_init, which every task passed */
    dm_release(tm->dm, t);
    id_map_remove(&tm->tasks, &t->hnode);
    msg_free(&t->msg->base);
    free(t);
}

/* Tasks no node can run now wait here; they are placed again whenever the
 * cluster view gains a node. */
static void infeasible_push(task_manager *tm, rtask *t)
{
    t->state = T_INFEASIBLE;
    t->prev = NULL;
    t->next = tm->infeasible;
    if (tm->infeasible)
        tm->infeasible->prev = t;
    tm->infeasible = t;
    tm->n_infeasible++;
}

static void infeasible_remove(task_manager *tm, rtask *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        tm->infeasible = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    tm->n_infeasible--;
}

/* ---------------------------------------------------------------- owners */

/* Deliver a completion to the task's owner: its local connection, or the
 * raylet of its node. */
static void actor_creation_failed(task_manager *tm, rtask *t, const Rpc__Status *st);

static void send_done(task_manager *tm, rtask *t, Rpc__TaskDone *done)
{
    if (t->actor_creation) {
        actor_creation_failed(tm, t, done->status);
        return;
    }
    if (t->remote_owner) {
        conn *c = peers_get(tm->d.peers, &t->owner_node);
        if (c)
            conn_send(c, MSG_TASK_DONE, &done->base);
        return;
    }
    client *owner = creg_by_worker(tm->d.clients, &t->owner);
    if (owner == NULL)
        return;
    /* Store results here are pinned for the owner on the way: its first get
     * of them is then a lookup in its own memory, not a round trip. */
    for (size_t i = 0; i < done->n_returns; i++) {
        Rpc__TaskReturn *r = done->returns[i];
        object_id_t id;
        plasma_view v;
        if (!r->in_store || r->object_id.len != OBJECT_ID_SIZE)
            continue;
        memcpy(id.b, r->object_id.data, OBJECT_ID_SIZE);
        if (plasma_pin(tm->d.store, owner->pc, &id, &v) == 0) {
            r->pinned = true;
            r->offset = v.off;
        }
    }
    conn_send(owner->c, MSG_TASK_DONE, &done->base);
}

/* Tell a task's owner how it ended. status != OK: every return is that error. */
static void report(task_manager *tm, rtask *t, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(task_manager *tm, rtask *t, int status, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, status, message);
    Rpc__TaskDone done = RPC__TASK_DONE__INIT;
    done.task_id.data = t->id.b;
    done.task_id.len = TASK_ID_SIZE;
    done.status = &st;
    done.owner_id.data = t->owner.b;
    done.owner_id.len = WORKER_ID_SIZE;
    done.attempt = t->msg->spec->attempt;
    done.node_id.data = tm->d.node_id.b;
    done.node_id.len = NODE_ID_SIZE;
    send_done(tm, t, &done);
}

/* The task cannot run: report and forget it. */
static void fail_task(task_manager *tm, rtask *t, int status, const char *msg)
{
    report(tm, t, status, "%s", msg);
    task_free(tm, t);
}

/* ---------------------------------------------------------------- neighbours */

/* Send a task to another raylet, which runs or queues it there. Keeps a
 * record here so the owner hears of it if that node dies. */
static bool forward(void *arg, rtask *t, const node_id_t *node)
{
    task_manager *tm = arg;
    conn *c = peers_get(tm->d.peers, node);
    if (c == NULL)
        return false;
    Rpc__ForwardTask f = RPC__FORWARD_TASK__INIT;
    task_stamp_stream(t);
    f.spec = t->msg->spec;
    f.from_node.data = tm->d.node_id.b;
    f.from_node.len = NODE_ID_SIZE;
    if (conn_send(c, MSG_FORWARD_TASK, &f.base) != 0)
        return false;
    t->state = T_FORWARDED;
    t->fwd_node = *node;
    tm->n_forwarded++;
    return true;
}

static worker *env_idle_worker(void *ctx, uint32_t job_id)
{
    task_manager *tm = ctx;
    return wpool_idle_for_job(tm->d.pool, job_id);
}

static void env_want_workers(void *ctx, int n)
{
    task_manager *tm = ctx;
    wpool_want(tm->d.pool, n);
}

static void env_set_leased(void *ctx, worker *w, bool leased)
{
    task_manager *tm = ctx;
    if (leased)
        wpool_lease(tm->d.pool, w);
    else if (w->actor)
        wpool_dedicate(tm->d.pool, w);
    else
        wpool_unlease(tm->d.pool, w);
}

static void env_set_blocked(void *ctx, worker *w, bool blocked)
{
    task_manager *tm = ctx;
    wpool_set_blocked(tm->d.pool, w, blocked);
}

static int env_job_state(void *ctx, uint32_t job_id, const char **error)
{
    task_manager *tm = ctx;
    return jt_state(tm->d.jobs, job_id, error);
}

static void env_bind(void *ctx, worker *w, uint32_t job_id)
{
    task_manager *tm = ctx;
    jt_bind(tm->d.jobs, job_id, w->cl->c);
    wpool_bind(tm->d.pool, w, job_id);
}

static void env_push(void *ctx, worker *w, rtask *t)
{
    (void)ctx;
    Rpc__PushTask p = RPC__PUSH_TASK__INIT;
    task_stamp_stream(t);
    p.spec = t->msg->spec;
    p.scheduled_us = wall_us(); /* task events: SCHEDULED here */
    conn_send(w->cl->c, MSG_PUSH_TASK, &p.base);
}

/* Busy here: another node may have room (spillback). */
static bool env_spill(void *ctx, rtask *t)
{
    task_manager *tm = ctx;
    if (t->no_forward || place_nodes(tm->pl) <= 1)
        return false;
    return place_task(tm->pl, t, true) == SCHED_FORWARD;
}

static void env_fail(void *ctx, rtask *t, int status, const char *msg)
{
    fail_task(ctx, t, status, msg);
}

static void env_steal(void *ctx, worker *w, int n)
{
    (void)ctx;
    if (w->cl == NULL)
        return;
    Rpc__StealTasks m = RPC__STEAL_TASKS__INIT;
    m.max = (uint32_t)n;
    conn_send(w->cl->c, MSG_STEAL_TASKS, &m.base);
}

static void env_kill(void *ctx, worker *w)
{
    task_manager *tm = ctx;
    wpool_kill(tm->d.pool, w);
}

static void pull(void *ctx, const object_id_t *id, const node_id_t *hint, dm_pulled_cb cb,
                 void *arg)
{
    task_manager *tm = ctx;
    om_pull(tm->d.om, id, hint, cb, arg);
}

static bool multi_node(void *ctx)
{
    task_manager *tm = ctx;
    int n = 0;
    gs_view(tm->d.gs, &n);
    return n > 1;
}

/* Tell the owner which argument is gone: if it made it, it rebuilds it from
 * lineage before it retries the task. */
static void arg_lost(void *ctx, rtask *t, const object_id_t *id, const char *msg)
{
    task_manager *tm = ctx;
    client *owner = creg_by_worker(tm->d.clients, &t->owner);
    if (owner == NULL)
        return;
    Rpc__ObjectLost lost = RPC__OBJECT_LOST__INIT;
    lost.object_id.data = (uint8_t *)id->b;
    lost.object_id.len = OBJECT_ID_SIZE;
    lost.message = (char *)msg;
    conn_send(owner->c, MSG_OBJECT_LOST, &lost.base);
}

/* The dependency wait of t ended. */
static void deps_done(void *ctx, rtask *t, int status, const char *msg)
{
    task_manager *tm = ctx;
    if (t->cancelled) { /* reported when it was cancelled */
        task_free(tm, t);
        return;
    }
    if (status != RAYC_OK) {
        report(tm, t, status, "%s: %s", t->msg->spec->function, msg);
        task_free(tm, t);
        return;
    }
    make_ready(tm, t);
    tm_schedule(tm);
}

/* ---------------------------------------------------------------- placement */

/* Warn once per owner that a task needs what no node has. */
static void warn_infeasible(task_manager *tm, rtask *t)
{
    char want[512], have[512];
    log_warn("task %s is infeasible: needs %s, node has %s", t->msg->spec->function,
             res_format(&t->demand, want, sizeof(want)),
             res_format(tm->d.total, have, sizeof(have)));
    client *owner = creg_by_worker(tm->d.clients, &t->owner);
    if (owner && !owner->warned_infeasible) {
        owner->warned_infeasible = true;
        creg_notice(owner,
                    "task %s needs %s, which no node of the cluster has (this node: %s); it "
                    "stays pending until such a node joins",
                    t->msg->spec->function, want, have);
    }
}

/* Place a task whose arguments are here (or that has none): forward it,
 * keep it as infeasible, fail it, or queue it for a worker. */
static void make_ready(task_manager *tm, rtask *t)
{
    int where = place_task(tm->pl, t, false);
    switch (where) {
    case SCHED_FORWARD:
        return;
    case PLACE_DEAD_TARGET:
        report(tm, t, RAYC_EINVAL, "%s: pinned (RAYC_SCHED_NODE, not soft) to a node that is dead",
               t->msg->spec->function);
        task_free(tm, t);
        return;
    case PLACE_UNKNOWN_TARGET:
        /* Waits with the infeasible tasks, without the resource warning:
         * nothing is missing but the node. */
        infeasible_push(tm, t);
        log_info("task %s waits for the node it is pinned to to join", t->msg->spec->function);
        return;
    case SCHED_INFEASIBLE:
        infeasible_push(tm, t);
        warn_infeasible(tm, t);
        return;
    }
    int rc = lease_enqueue(tm->lm, t, false);
    if (rc == RAYC_ENOTFOUND) {
        report(tm, t, RAYC_EINVAL,
               "%s: its placement group has no such bundle reserved on this node (removed?)",
               t->msg->spec->function);
        task_free(tm, t);
    } else if (rc != 0) {
        report(tm, t, RAYC_ENOMEM, "raylet out of memory");
        task_free(tm, t);
    }
}

/* ---------------------------------------------------------------- arrival */

/* Checks shared by local submissions and forwarded tasks. NULL (message
 * freed) when the spec is unusable or a duplicate. */
static rtask *new_task(task_manager *tm, Rpc__SubmitTask *m, const char **bad)
{
    Rpc__TaskSpec *s = m->spec;
    *bad = NULL;
    if (s == NULL || s->task_id.len != TASK_ID_SIZE || s->function == NULL ||
        s->function[0] == '\0' || s->owner_id.len != WORKER_ID_SIZE || s->num_returns == 0 ||
        s->num_returns > 10000) {
        *bad = "malformed task spec";
        msg_free(&m->base);
        return NULL;
    }
    if (task_find(tm, s->task_id.data, TASK_ID_SIZE)) {
        log_warn("task submitted twice; ignoring the second copy");
        msg_free(&m->base);
        return NULL;
    }
    rtask *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        msg_free(&m->base);
        return NULL;
    }
    t->msg = m;
    return t;
}

/* Fill in t from its spec and put it in the table. Returns its number of
 * store arguments, or -1 with err set when the spec is unusable. */
static int task_init(task_manager *tm, rtask *t, char *err, size_t errlen)
{
    Rpc__TaskSpec *s = t->msg->spec;
    memcpy(t->id.b, s->task_id.data, TASK_ID_SIZE);
    memcpy(t->owner.b, s->owner_id.data, WORKER_ID_SIZE);
    t->job_id = s->job_id;
    id_map_insert(&tm->tasks, &t->hnode);
    if (s->streaming)
        tm->n_generators++;
    for (size_t i = 0; i < s->n_resources; i++) {
        Rpc__Resource *r = s->resources[i];
        if (r->amount < 0 || res_set_amount(&t->demand, r->name, r->amount) != 0)
            snprintf(err, errlen, "bad resource demand '%s'", r->name);
    }
    if (err[0])
        return -1;
    int nrefs = 0;
    for (size_t i = 0; i < s->n_args; i++) {
        Rpc__TaskArg *a = s->args[i];
        if (!a->is_ref)
            continue;
        if (a->object_id.len != OBJECT_ID_SIZE) {
            snprintf(err, errlen, "bad object id in argument %zu", i);
            return -1;
        }
        nrefs++;
    }
    return nrefs;
}

static void submit_common(task_manager *tm, rtask *t)
{
    char err[256] = "";
    int nrefs = task_init(tm, t, err, sizeof(err));
    if (nrefs < 0) {
        report(tm, t, RAYC_EINVAL, "%s: %s", t->msg->spec->function, err);
        task_free(tm, t);
    } else if (nrefs > 0 && !t->no_forward && place_nodes(tm->pl) > 1) {
        /* Place first: the arguments are fetched only where it runs. */
        t->state = T_READY;
        int where = place_task(tm->pl, t, false);
        if (where == SCHED_INFEASIBLE || where == PLACE_DEAD_TARGET ||
            where == PLACE_UNKNOWN_TARGET) {
            make_ready(tm, t); /* infeasible list (placed again on view changes), or failed */
        } else if (where != SCHED_FORWARD) {
            t->no_forward = true;
            dm_wait(tm->dm, t);
        }
    } else if (nrefs > 0) {
        dm_wait(tm->dm, t);
    } else {
        make_ready(tm, t);
        tm_schedule(tm);
    }
}

void tm_forwarded(task_manager *tm, const node_id_t *from, Rpc__ForwardTask *f)
{
    /* Re-wrap as a SubmitTask so both paths own the same message type. */
    Rpc__SubmitTask *m = malloc(sizeof(*m));
    if (m == NULL) {
        msg_free(&f->base);
        return;
    }
    rpc__submit_task__init(m);
    m->spec = f->spec;
    f->spec = NULL;
    msg_free(&f->base);
    /* m was not allocated by protobuf-c's unpacker but its free routine only
     * calls the allocator on each owned field, so freeing it is the same. */
    const char *bad;
    rtask *t = new_task(tm, m, &bad);
    if (t == NULL) {
        if (bad)
            log_warn("dropping a forwarded task: %s", bad);
        return;
    }
    Rpc__TaskSpec *s = m->spec;
    t->remote_owner = true;
    t->no_forward = true;
    jt_learn(tm->d.jobs, s->job_id);
    if (s->owner_node_id.len == NODE_ID_SIZE)
        memcpy(t->owner_node.b, s->owner_node_id.data, NODE_ID_SIZE);
    else
        t->owner_node = *from;
    submit_common(tm, t);
}

/* A retry's back-off is over: it goes on as if it just arrived. */
struct delayed {
    task_manager *tm;
    task_id_t id;
};

static void on_delay_done(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *d = arg;
    (void)fd, (void)what;
    rtask *t = task_find(d->tm, d->id.b, TASK_ID_SIZE);
    if (t && t->state == T_DELAYED) {
        t->state = T_WAITING_DEPS;
        id_map_remove(&d->tm->tasks, &t->hnode); /* submit_common inserts it again */
        submit_common(d->tm, t);
    }
    free(d);
}

/* Hold a retry for its back-off (spec.retry_delay_ms). true if held. */
static bool hold_for_backoff(task_manager *tm, rtask *t)
{
    uint32_t ms = t->msg->spec->retry_delay_ms;
    struct delayed *d = ms && tm->d.base ? malloc(sizeof(*d)) : NULL;
    if (d == NULL)
        return false;
    d->tm = tm;
    memcpy(d->id.b, t->msg->spec->task_id.data, TASK_ID_SIZE);
    t->id = d->id;
    t->state = T_DELAYED;
    id_map_insert(&tm->tasks, &t->hnode);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (event_base_once(tm->d.base, -1, EV_TIMEOUT, on_delay_done, d, &tv) != 0) {
        id_map_remove(&tm->tasks, &t->hnode);
        free(d);
        return false;
    }
    return true;
}

void tm_submit(task_manager *tm, client *owner, Rpc__SubmitTask *m)
{
    /* A client submits in its own name only: the spec's owner owns the
     * returns (and may delete them). */
    if (m->spec && m->spec->owner_id.len == WORKER_ID_SIZE &&
        memcmp(m->spec->owner_id.data, owner->id.b, WORKER_ID_SIZE) != 0) {
        log_warn("closing %s: it submitted a task in another worker's name", conn_peer(owner->c));
        msg_free(&m->base);
        conn_close(owner->c);
        return;
    }
    const char *bad;
    rtask *t = new_task(tm, m, &bad);
    if (t == NULL) {
        if (bad) {
            log_warn("closing %s: %s", conn_peer(owner->c), bad);
            conn_close(owner->c);
        }
        return;
    }
    if (hold_for_backoff(tm, t))
        return;
    submit_common(tm, t);
}

/* ---------------------------------------------------------------- actors */

/* The live record of actor id (a killed one may linger until its worker
 * is gone), or NULL. */
static ractor *actor_find(task_manager *tm, const uint8_t *id)
{
    for (ractor *r = tm->actors; r; r = r->next)
        if (!r->exiting && memcmp(r->id.b, id, ACTOR_ID_SIZE) == 0)
            return r;
    return NULL;
}

static void actor_forget(task_manager *tm, ractor *gone)
{
    for (ractor **pp = &tm->actors; *pp; pp = &(*pp)->next) {
        if (*pp == gone) {
            *pp = gone->next;
            free(gone);
            return;
        }
    }
}

static void send_created(task_manager *tm, const uint8_t *actor_id, const worker *w, int status,
                         const char *message, const char *address)
{
    Rpc__ActorCreated c = RPC__ACTOR_CREATED__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, status, message);
    c.actor_id.data = (uint8_t *)actor_id;
    c.actor_id.len = ACTOR_ID_SIZE;
    c.status = &st;
    c.node_id.data = tm->d.node_id.b;
    c.node_id.len = NODE_ID_SIZE;
    if (w) {
        c.worker_id.data = (uint8_t *)w->id.b;
        c.worker_id.len = WORKER_ID_SIZE;
        c.pid = w->pid;
    } else {
        static const uint8_t none[WORKER_ID_SIZE];
        c.worker_id.data = (uint8_t *)none;
        c.worker_id.len = WORKER_ID_SIZE;
    }
    c.address = (char *)(address ? address : "");
    gs_send(tm->d.gs, MSG_ACTOR_CREATED, &c.base);
}

/* The creation never ran (its arguments or code could not be had, its
 * worker died): the GCS decides (a dead worker restarts it). */
static void actor_creation_failed(task_manager *tm, rtask *t, const Rpc__Status *st)
{
    ractor *r = t->actor_rec;
    t->actor_rec = NULL;
    if (r == NULL)
        return;
    if (!r->exiting)
        send_created(tm, r->id.b, NULL, st ? st->code : RAYC_EIO,
                     st ? st->message : "creation failed", NULL);
    actor_forget(tm, r);
}

/* The constructor ran on w: the worker is the actor's from now on and holds
 * the actor's resources; the GCS learns where it answers. */
static void actor_creation_done(task_manager *tm, rtask *t, worker *w, Rpc__TaskDone *m)
{
    const uint8_t *id = t->msg->spec->actor_id.data;
    ractor *r = t->actor_rec;
    t->actor_rec = NULL;
    int status = m->status ? m->status->code : RAYC_OK;
    bool ok = status == RAYC_OK && m->actor_address && m->actor_address[0] && r && !r->exiting;
    if (ok) {
        r->w = w;
        w->actor = r;
        w->keep_on_job_end = r->detached;
    }
    lease_task_done(tm->lm, t); /* the lease ends; the worker goes W_ACTOR (env_set_leased) */
    if (ok) {
        if (r->in_pg) {
            if (lease_pool_hold(tm->lm, r->pg, r->bundle_index, &r->held, &r->pool_index) != 0)
                log_warn("an actor's bundle cannot hold its resources any more");
        } else {
            lease_hold(tm->lm, &r->held);
        }
        send_created(tm, id, w, RAYC_OK, NULL, m->actor_address);
    } else {
        /* A failed constructor leaves a worker in an unknown state: end it. */
        wpool_kill(tm->d.pool, w);
        if (r == NULL || !r->exiting)
            send_created(tm, id, w, status ? status : RAYC_EIO,
                         m->status && m->status->message ? m->status->message : "no address", NULL);
        if (r)
            actor_forget(tm, r);
    }
    task_free(tm, t);
    tm_schedule(tm);
}

static void actor_worker_died(task_manager *tm, worker *w)
{
    ractor *r = w->actor;
    w->actor = NULL;
    if (r->in_pg)
        lease_pool_unhold(tm->lm, r->pg, r->pool_index, &r->held);
    else
        lease_unhold(tm->lm, &r->held);
    if (!r->exiting) {
        char cause[128];
        char how[64];
        wpool_exit_text(w, how, sizeof(how));
        snprintf(cause, sizeof(cause), "its worker (pid %d) died%s%s%s", (int)w->pid,
                 how[0] ? " (" : "", how, how[0] ? ")" : "");
        Rpc__ActorDied d = RPC__ACTOR_DIED__INIT;
        d.actor_id.data = r->id.b;
        d.actor_id.len = ACTOR_ID_SIZE;
        d.worker_id.data = w->id.b;
        d.worker_id.len = WORKER_ID_SIZE;
        d.cause = cause;
        gs_send(tm->d.gs, MSG_ACTOR_DIED, &d.base);
    }
    actor_forget(tm, r);
}

void tm_create_actor(task_manager *tm, const Rpc__ActorInfo *a)
{
    if (a == NULL || a->actor_id.len != ACTOR_ID_SIZE)
        return;
    ractor *r = actor_find(tm, a->actor_id.data);
    if (r)
        return; /* asked again (a GCS restart): it is being made, or lives */
    Rpc__TaskSpec *spec = rpc__task_spec__unpack(NULL, a->creation_spec.len, a->creation_spec.data);
    Rpc__SubmitTask wrap = RPC__SUBMIT_TASK__INIT;
    wrap.spec = spec;
    uint8_t *buf = NULL;
    size_t len = spec ? rpc__submit_task__get_packed_size(&wrap) : 0;
    Rpc__SubmitTask *m = NULL;
    if (spec && (buf = malloc(len)) != NULL) {
        rpc__submit_task__pack(&wrap, buf);
        m = (Rpc__SubmitTask *)msg_unpack(MSG_SUBMIT_TASK, buf, len);
    }
    free(buf);
    if (spec)
        rpc__task_spec__free_unpacked(spec, NULL);
    r = calloc(1, sizeof(*r));
    if (m == NULL || r == NULL || !m->spec->actor_creation) {
        free(r);
        if (m)
            msg_free(&m->base);
        send_created(tm, a->actor_id.data, NULL, RAYC_EINVAL, "unusable creation task", NULL);
        return;
    }
    memcpy(r->id.b, a->actor_id.data, ACTOR_ID_SIZE);
    r->detached = a->detached;
    if (m->spec->pg_id.len == PG_ID_SIZE) {
        r->in_pg = true;
        memcpy(r->pg, m->spec->pg_id.data, PG_ID_SIZE);
        r->bundle_index = m->spec->bundle_index;
    }
    for (size_t i = 0; i < a->n_resources; i++)
        res_set_amount(&r->held, a->resources[i]->name, a->resources[i]->amount);
    r->next = tm->actors;
    tm->actors = r;
    const char *bad;
    rtask *t = new_task(tm, m, &bad);
    if (t == NULL) {
        actor_forget(tm, r);
        send_created(tm, a->actor_id.data, NULL, RAYC_EINVAL, bad ? bad : "duplicate", NULL);
        return;
    }
    t->actor_creation = true;
    t->actor_rec = r;
    t->no_forward = true; /* the GCS chose this node */
    t->remote_owner = true;
    jt_learn(tm->d.jobs, m->spec->job_id);
    submit_common(tm, t);
}

void tm_kill_actor(task_manager *tm, const Rpc__KillActorWorker *k)
{
    if (k->actor_id.len != ACTOR_ID_SIZE)
        return;
    ractor *r = actor_find(tm, k->actor_id.data);
    if (r == NULL)
        return;
    if (r->w && k->worker_id.len == WORKER_ID_SIZE &&
        memcmp(r->w->id.b, k->worker_id.data, WORKER_ID_SIZE) != 0 &&
        memcmp(k->worker_id.data, (uint8_t[WORKER_ID_SIZE]){0}, WORKER_ID_SIZE) != 0)
        return;        /* about another incarnation */
    r->exiting = true; /* freed when its worker is gone (or its creation ends) */
    if (r->w)
        wpool_kill(tm->d.pool, r->w);
}

void tm_actor_exiting(task_manager *tm, worker *w, Rpc__ActorDied *d)
{
    ractor *r = w->actor;
    if (r == NULL)
        return;
    r->exiting = true;
    /* A message of our own: d's fields belong to its unpacker. */
    Rpc__ActorDied out = RPC__ACTOR_DIED__INIT;
    out.actor_id.data = r->id.b;
    out.actor_id.len = ACTOR_ID_SIZE;
    out.worker_id.data = w->id.b;
    out.worker_id.len = WORKER_ID_SIZE;
    out.cause = d->cause && d->cause[0] ? d->cause : "released by its creator";
    out.no_restart = true;
    gs_send(tm->d.gs, MSG_ACTOR_DIED, &out.base);
}

/* ---------------------------------------------------------------- placement groups */

/* The bundle goes: its actors die for good ("its placement group was
 * removed"), told to the GCS before their workers are killed. */
static void actors_of_bundle_die(task_manager *tm, const uint8_t *pg, uint32_t index)
{
    for (ractor *r = tm->actors; r; r = r->next) {
        if (!r->in_pg || r->exiting || r->w == NULL || r->pool_index != index ||
            memcmp(r->pg, pg, PG_ID_SIZE) != 0)
            continue;
        Rpc__ActorDied d = RPC__ACTOR_DIED__INIT;
        d.actor_id.data = r->id.b;
        d.actor_id.len = ACTOR_ID_SIZE;
        d.worker_id.data = r->w->id.b;
        d.worker_id.len = WORKER_ID_SIZE;
        d.cause = "its placement group was removed";
        d.no_restart = true;
        gs_send(tm->d.gs, MSG_ACTOR_DIED, &d.base);
        r->exiting = true;
        wpool_kill(tm->d.pool, r->w);
    }
}

void tm_pg_message(task_manager *tm, uint16_t type, const ProtobufCMessage *msg)
{
    switch (type) {
    case MSG_PREPARE_BUNDLES: {
        const Rpc__PrepareBundles *m = (const Rpc__PrepareBundles *)msg;
        int rc = m->pg_id.len == PG_ID_SIZE ? 0 : RAYC_EINVAL;
        size_t done = 0;
        for (; rc == 0 && done < m->n_bundles; done++) {
            res_set r;
            memset(&r, 0, sizeof(r));
            const Rpc__Bundle *b = m->bundles[done];
            for (size_t k = 0; k < b->n_resources && rc == 0; k++)
                if (b->resources[k]->amount < 0 ||
                    res_set_amount(&r, b->resources[k]->name, b->resources[k]->amount) != 0)
                    rc = RAYC_EINVAL;
            if (rc == 0)
                rc = lease_pool_prepare(tm->lm, m->pg_id.data, b->index, &r);
        }
        if (rc != 0) /* all or nothing on this node */
            for (size_t i = 0; i + 1 < done; i++)
                lease_pool_return(tm->lm, m->pg_id.data, m->bundles[i]->index);
        Rpc__BundlesPrepared r = RPC__BUNDLES_PREPARED__INIT;
        Rpc__Status st = RPC__STATUS__INIT;
        msg_status_set(&st, rc, rc ? "not enough free resources on this node" : NULL);
        r.req_id = m->req_id;
        r.pg_id = m->pg_id;
        r.status = &st;
        gs_send(tm->d.gs, MSG_BUNDLES_PREPARED, &r.base);
        break;
    }
    case MSG_COMMIT_BUNDLES: {
        const Rpc__CommitBundles *m = (const Rpc__CommitBundles *)msg;
        if (m->pg_id.len == PG_ID_SIZE)
            for (size_t i = 0; i < m->n_indexes; i++)
                lease_pool_commit(tm->lm, m->pg_id.data, m->indexes[i]);
        break;
    }
    case MSG_RETURN_BUNDLES: {
        const Rpc__ReturnBundles *m = (const Rpc__ReturnBundles *)msg;
        if (m->pg_id.len == PG_ID_SIZE)
            for (size_t i = 0; i < m->n_indexes; i++) {
                actors_of_bundle_die(tm, m->pg_id.data, m->indexes[i]);
                lease_pool_return(tm->lm, m->pg_id.data, m->indexes[i]);
            }
        break;
    }
    }
    tm_schedule(tm);
}

/* ---------------------------------------------------------------- completion */

void tm_task_done(task_manager *tm, client *from, Rpc__TaskDone *m)
{
    worker *w = from->w;
    rtask *t = task_find(tm, m->task_id.data, m->task_id.len);
    if (w == NULL || t == NULL || t->state != T_DISPATCHED || t->w != w) {
        log_warn("%s reported a task it was not running", conn_peer(from->c));
        return;
    }
    if (t->actor_creation) {
        actor_creation_done(tm, t, w, m);
        return;
    }
    if (m->status && m->status->code != RAYC_OK)
        log_info("task %s (job %u, attempt %u) failed on worker pid %d: %s",
                 t->msg->spec->name && t->msg->spec->name[0] ? t->msg->spec->name
                                                             : t->msg->spec->function,
                 t->job_id, t->msg->spec->attempt, (int)w->pid,
                 m->status->message ? m->status->message : rayc_strerror(m->status->code));
    lease_task_done(tm->lm, t);
    /* Store returns now belong to the owner (fate-sharing), or die with it. */
    client *owner = t->remote_owner ? NULL : creg_by_worker(tm->d.clients, &t->owner);
    for (size_t i = 0; i < m->n_returns; i++) {
        Rpc__TaskReturn *r = m->returns[i];
        if (!r->in_store || r->object_id.len != OBJECT_ID_SIZE)
            continue;
        object_id_t oid;
        memcpy(oid.b, r->object_id.data, OBJECT_ID_SIZE);
        if (owner && owner->pc)
            plasma_set_owner(tm->d.store, &oid, owner->pc);
        else if (t->remote_owner)
            plasma_set_remote_owner(tm->d.store, &oid, &t->owner); /* kept for it */
        else
            plasma_delete(tm->d.store, &oid);
    }
    /* Stamp where store returns live. The field belongs to the unpacked
     * message (freed with it), so lend it our bytes only while packing. */
    ProtobufCBinaryData sent_node = m->node_id;
    m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, tm->d.node_id.b};
    m->attempt = t->msg->spec->attempt;
    send_done(tm, t, m);
    m->node_id = sent_node;
    task_free(tm, t);
    tm_schedule(tm);
}

/* ---------------------------------------------------------------- generators */

/* A local owner's store item is pinned for it on the way, as a store
 * result is (send_done): its first get of it is then a lookup in its own
 * memory. */
static void pin_for_owner(task_manager *tm, client *owner, const object_id_t *id,
                          protobuf_c_boolean *pinned, uint64_t *offset)
{
    plasma_view v;
    if (plasma_pin(tm->d.store, owner->pc, id, &v) == 0) {
        *pinned = true;
        *offset = v.off;
    }
}

/* Deliver an item to the owner of t: its local connection (the store copy
 * pinned for it), or the raylet of its node. */
static void send_item(task_manager *tm, const rtask *t, Rpc__StreamItem *m)
{
    if (t->remote_owner) {
        conn *c = peers_get(tm->d.peers, &t->owner_node);
        if (c)
            conn_send(c, MSG_STREAM_ITEM, &m->base);
        return;
    }
    client *owner = creg_by_worker(tm->d.clients, &t->owner);
    if (owner == NULL)
        return;
    if (m->in_store) {
        object_id_t oid = object_id_for_return(&t->id, m->index + 1);
        pin_for_owner(tm, owner, &oid, &m->pinned, &m->offset);
    }
    conn_send(owner->c, MSG_STREAM_ITEM, &m->base);
}

void tm_stream_item(task_manager *tm, client *from, Rpc__StreamItem *m)
{
    rtask *t = task_find(tm, m->task_id.data, m->task_id.len);
    if (from->w == NULL || t == NULL || t->state != T_DISPATCHED || t->w != from->w ||
        !t->msg->spec->streaming) {
        log_warn("%s sent an item of a generator it was not running", conn_peer(from->c));
        return;
    }
    if (m->in_store) {
        /* The item belongs to the owner (fate-sharing), as a store return. */
        object_id_t oid = object_id_for_return(&t->id, m->index + 1);
        client *owner = t->remote_owner ? NULL : creg_by_worker(tm->d.clients, &t->owner);
        if (owner && owner->pc)
            plasma_set_owner(tm->d.store, &oid, owner->pc);
        else if (t->remote_owner)
            plasma_set_remote_owner(tm->d.store, &oid, &t->owner); /* kept for it */
        else
            plasma_delete(tm->d.store, &oid);
    }
    /* Stamp where a store item lives, and for the owner's raylet whose item
     * it is (the fields are the unpacked message's: lend them our bytes
     * while sending only). An inline item needs neither. */
    ProtobufCBinaryData sent_node = m->node_id, sent_owner = m->owner_id;
    if (m->in_store)
        m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, tm->d.node_id.b};
    if (t->remote_owner)
        m->owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, t->owner.b};
    send_item(tm, t, m);
    m->node_id = sent_node;
    m->owner_id = sent_owner;
}

void tm_remote_stream_item(task_manager *tm, Rpc__StreamItem *m)
{
    if (m->owner_id.len != WORKER_ID_SIZE)
        return;
    worker_id_t owner;
    memcpy(owner.b, m->owner_id.data, WORKER_ID_SIZE);
    client *cl = creg_by_worker(tm->d.clients, &owner);
    if (cl)
        conn_send(cl->c, MSG_STREAM_ITEM, &m->base);
}

/* An ack for a generator this raylet does not hold: an actor's method, which
 * runs on the worker the ack names (here, or on the node it names). */
static void stream_ack_to_worker(task_manager *tm, Rpc__StreamAck *a)
{
    if (a->worker_id.len != WORKER_ID_SIZE || a->node_id.len != NODE_ID_SIZE)
        return;
    if (memcmp(a->node_id.data, tm->d.node_id.b, NODE_ID_SIZE) != 0) {
        node_id_t node;
        memcpy(node.b, a->node_id.data, NODE_ID_SIZE);
        conn *c = peers_get(tm->d.peers, &node);
        if (c)
            conn_send(c, MSG_STREAM_ACK, &a->base);
        return;
    }
    worker_id_t w;
    memcpy(w.b, a->worker_id.data, WORKER_ID_SIZE);
    client *cl = creg_by_worker(tm->d.clients, &w);
    if (cl && cl->w)
        conn_send(cl->c, MSG_STREAM_ACK, &a->base);
}

void tm_stream_ack(task_manager *tm, Rpc__StreamAck *a)
{
    rtask *t = task_find(tm, a->task_id.data, a->task_id.len);
    if (t == NULL) {
        stream_ack_to_worker(tm, a); /* (else the next attempt's spec carries the count) */
        return;
    }
    if (!t->msg->spec->streaming)
        return;
    if (a->consumed > t->stream_consumed)
        t->stream_consumed = a->consumed;
    if (t->state == T_DISPATCHED && t->w && t->w->cl) {
        conn_send(t->w->cl->c, MSG_STREAM_ACK, &a->base);
    } else if (t->state == T_FORWARDED) {
        conn *c = peers_get(tm->d.peers, &t->fwd_node);
        if (c)
            conn_send(c, MSG_STREAM_ACK, &a->base);
    }
}

void tm_worker_died(task_manager *tm, worker *w)
{
    if (w->actor)
        actor_worker_died(tm, w);
    lease_worker_died(tm->lm, w);
}

/* ---------------------------------------------------------------- control */

void tm_cancel(task_manager *tm, client *from, Rpc__CancelTask *m)
{
    (void)from;
    rtask *t = task_find(tm, m->task_id.data, m->task_id.len);
    if (t == NULL || t->cancelled)
        return;
    switch (t->state) {
    case T_WAITING_DEPS:
        t->cancelled = true; /* freed when the dependency wait ends */
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        break;
    case T_READY:
        lease_dequeue(tm->lm, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        task_free(tm, t);
        break;
    case T_INFEASIBLE:
        infeasible_remove(tm, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        task_free(tm, t);
        break;
    case T_DELAYED:
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        task_free(tm, t); /* the timer finds nothing */
        break;
    case T_FORWARDED: {
        conn *c = peers_get(tm->d.peers, &t->fwd_node);
        if (c)
            conn_send(c, MSG_CANCEL_TASK, &m->base);
        break;
    }
    case T_DISPATCHED:
        if (m->force) {
            t->cancelled = true;
            wpool_kill(tm->d.pool, t->w);
        } else if (t->w->cl) {
            /* It may still wait in the worker's pipeline: the worker drops
             * it and reports it cancelled if it has not started it. */
            conn_send(t->w->cl->c, MSG_CANCEL_TASK, &m->base);
        }
        break;
    }
}

void tm_worker_blocked(task_manager *tm, worker *w, Rpc__WorkerBlocked *m)
{
    if (!lease_held(tm->lm, w))
        return;
    /* Hand back what it has not started, to run on other workers. A worker
     * that is already blocked sends this again for tasks pushed to it just
     * after it blocked: those must be taken back too. */
    for (size_t i = m->n_give_back; i > 0; i--) {
        ProtobufCBinaryData *id = &m->give_back[i - 1];
        rtask *t = task_find(tm, id->data, id->len);
        if (t == NULL || t->w != w || t->state != T_DISPATCHED)
            continue;
        lease_take_back(tm->lm, t);
    }
    lease_worker_blocked(tm->lm, w);
    tm_schedule(tm);
}

void tm_tasks_given_back(task_manager *tm, worker *w, const Rpc__TasksGivenBack *m)
{
    for (size_t i = 0; i < m->n_task_ids; i++) {
        rtask *t = task_find(tm, m->task_ids[i].data, m->task_ids[i].len);
        if (t && t->state == T_DISPATCHED && t->w == w)
            lease_take_back(tm->lm, t);
    }
    tm_schedule(tm);
}

void tm_worker_unblocked(task_manager *tm, worker *w)
{
    lease_worker_unblocked(tm->lm, w);
}

/* Whose tasks drop_owned drops: an owner's, or a whole job's. */
struct drop_match {
    task_manager *tm;
    const worker_id_t *owner;
    uint32_t job_id;
    bool job_end;
};

static bool owned_by(void *arg, const rtask *t)
{
    const struct drop_match *m = arg;
    /* An actor's creation belongs to the GCS, which kills what must die. */
    if (t->actor_creation)
        return false;
    return memcmp(t->owner.b, m->owner->b, WORKER_ID_SIZE) == 0 ||
           (m->job_end && t->job_id == m->job_id);
}

static void drop_task(void *arg, rtask *t)
{
    const struct drop_match *m = arg;
    task_free(m->tm, t);
}

/* Drop the queued and infeasible tasks of an owner that left (their results
 * have nowhere to go), or of a job that ended. */
static void drop_owned(task_manager *tm, const worker_id_t *owner, uint32_t job_id, bool job_end)
{
    struct drop_match m = {tm, owner, job_id, job_end};
    lease_dequeue_if(tm->lm, owned_by, drop_task, &m);
    for (rtask *t = tm->infeasible, *next; t; t = next) {
        next = t->next;
        if (owned_by(&m, t)) {
            infeasible_remove(tm, t);
            task_free(tm, t);
        }
    }
}

/* Generators running here for an owner that is gone: nobody takes their
 * items (nor acknowledges them), so they stop at their next yield. */
static void cancel_generators_of(task_manager *tm, const worker_id_t *owner)
{
    if (tm->n_generators == 0)
        return;
    id_map_iter it;
    id_map_iter_init(&tm->tasks, &it);
    for (id_node *n; (n = id_map_iter_next(&tm->tasks, &it)) != NULL;) {
        rtask *t = ID_MAP_ENTRY(n, rtask, hnode);
        if (t->state != T_DISPATCHED || !t->msg->spec->streaming || t->remote_owner ||
            t->w == NULL || t->w->cl == NULL || memcmp(t->owner.b, owner->b, WORKER_ID_SIZE) != 0)
            continue;
        Rpc__CancelTask m = RPC__CANCEL_TASK__INIT;
        m.task_id.data = t->id.b;
        m.task_id.len = TASK_ID_SIZE;
        conn_send(t->w->cl->c, MSG_CANCEL_TASK, &m.base);
    }
}

void tm_client_gone(task_manager *tm, client *cl)
{
    bool job_end = cl->role == RPC__ROLE__ROLE_DRIVER && cl->job_id != 0;
    cancel_generators_of(tm, &cl->id);
    drop_owned(tm, &cl->id, cl->job_id, job_end);
    if (!job_end)
        return;
    tm_job_ended(tm, cl->job_id);
}

void tm_job_ended(task_manager *tm, uint32_t job_id)
{
    /* The driver is gone: its job ends, and so do the job's workers and
     * whatever of it still waits here. */
    worker_id_t nobody;
    memset(&nobody, 0xff, sizeof(nobody));
    drop_owned(tm, &nobody, job_id, true);
    wpool_kill_job(tm->d.pool, job_id);
    jt_remove(tm->d.jobs, job_id);
}

/* ---------------------------------------------------------------- multi-node */

void tm_remote_done(task_manager *tm, Rpc__TaskDone *m)
{
    rtask *t = task_find(tm, m->task_id.data, m->task_id.len);
    if (t && t->state == T_FORWARDED) {
        tm->n_forwarded--;
        task_free(tm, t);
    }
    if (m->owner_id.len != WORKER_ID_SIZE)
        return;
    worker_id_t owner;
    memcpy(owner.b, m->owner_id.data, WORKER_ID_SIZE);
    client *cl = creg_by_worker(tm->d.clients, &owner);
    if (cl)
        conn_send(cl->c, MSG_TASK_DONE, &m->base);
}

static void refresh_view(task_manager *tm)
{
    int n = 0;
    const view_node *v = gs_view(tm->d.gs, &n);
    place_set_view(tm->pl, v, n);
}

void tm_view_changed(task_manager *tm, bool nodes_changed)
{
    refresh_view(tm);
    if (nodes_changed) {
        /* A new node may have what an infeasible task needs. */
        for (rtask *t = tm->infeasible, *next; t; t = next) {
            next = t->next;
            if (t->no_forward)
                continue;
            infeasible_remove(tm, t);
            t->state = T_READY;
            int where = place_task(tm->pl, t, false);
            if (where == SCHED_FORWARD)
                continue;
            if (where == SCHED_WAIT && !t->deps_ready && task_has_ref_args(t)) {
                t->no_forward = true;
                dm_wait(tm->dm, t); /* runs here: fetch its arguments first */
                continue;
            }
            make_ready(tm, t); /* back to infeasible, failed, or queued here */
        }
    }
    tm_schedule(tm);
}

void tm_node_died(task_manager *tm, const node_id_t *node)
{
    id_map_iter it;
    id_map_iter_init(&tm->tasks, &it);
    for (id_node *n; (n = id_map_iter_next(&tm->tasks, &it)) != NULL;) {
        rtask *t = ID_MAP_ENTRY(n, rtask, hnode);
        if (t->state != T_FORWARDED || memcmp(t->fwd_node.b, node->b, NODE_ID_SIZE) != 0)
            continue;
        tm->n_forwarded--;
        char hex[ID_HEX_MAX];
        report(tm, t, RAYC_EWORKER_DIED, "%s: node %.12s died before it finished",
               t->msg->spec->function, id_hex(node->b, NODE_ID_SIZE, hex));
        task_free(tm, t);
    }
    refresh_view(tm);
    tm_schedule(tm);
}

bool tm_wants_view(const task_manager *tm)
{
    if (place_nodes(tm->pl) <= 1)
        return false;
    return lease_queued(tm->lm) > 0 || tm->infeasible != NULL;
}

/* ---------------------------------------------------------------- state */

void tm_schedule(task_manager *tm)
{
    lease_schedule(tm->lm);
}

const res_set *tm_available(const task_manager *tm)
{
    return lease_available(tm->lm);
}

uint64_t tm_pending(const task_manager *tm)
{
    return id_map_count(&tm->tasks);
}

uint64_t tm_infeasible(const task_manager *tm)
{
    return tm->n_infeasible;
}

task_manager *tm_new(const tm_deps *deps)
{
    task_manager *tm = calloc(1, sizeof(*tm));
    if (tm == NULL)
        return NULL;
    tm->d = *deps;
    if (id_map_init(&tm->tasks, ID_MAP_KEY_OFF(rtask, hnode, id), TASK_ID_SIZE, TASK_BUCKETS) != 0)
        goto fail;
    int in_flight = (int)deps->cfg->max_tasks_in_flight_per_worker;
    lease_env le = {
        .idle_worker = env_idle_worker,
        .want_workers = env_want_workers,
        .set_leased = env_set_leased,
        .set_blocked = env_set_blocked,
        .job_state = env_job_state,
        .bind = env_bind,
        .push = env_push,
        .spill = env_spill,
        .fail = env_fail,
        .kill = env_kill,
        .steal = env_steal,
        .ctx = tm,
    };
    tm->lm = lease_new(deps->total, in_flight, &le);
    if (tm->lm == NULL)
        goto fail;
    dm_env de = {pull, multi_node, arg_lost, deps_done, tm};
    tm->dm = dm_new(deps->store, &de);
    tm->pl = place_new(&deps->node_id, lease_total(tm->lm), lease_available(tm->lm), forward, tm);
    if (tm->dm == NULL || tm->pl == NULL)
        goto fail;
    return tm;
fail:
    tm_free(tm);
    return NULL;
}

void tm_free(task_manager *tm)
{
    if (tm == NULL)
        return;
    dm_free(tm->dm); /* its waits end without calling back */
    id_map_iter it;
    id_map_iter_init(&tm->tasks, &it);
    for (id_node *n; (n = id_map_iter_next(&tm->tasks, &it)) != NULL;) {
        rtask *t = ID_MAP_ENTRY(n, rtask, hnode);
        msg_free(&t->msg->base);
        free(t);
    }
    id_map_destroy(&tm->tasks);
    place_free(tm->pl);
    lease_free(tm->lm);
    for (ractor *r = tm->actors, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    free(tm);
}

/* ---------------------------------------------------------------- memory monitor */

#define OOM_MAX_CANDIDATES 256
#define MIB                (1024.0 * 1024.0)

/* Resident bytes of a process (0 when unknown). */
static uint64_t proc_rss(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long long size = 0, resident = 0;
    int ok = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return ok == 2 ? (uint64_t)resident * 4096 : 0;
}

int tm_oom_kill(task_manager *tm, const char *node_hex, const mm_usage *u, double threshold)
{
    mm_worker cand[OOM_MAX_CANDIDATES];
    worker *ws[OOM_MAX_CANDIDATES];
    size_t n = lease_running(tm->lm, cand, ws, OOM_MAX_CANDIDATES);
    int v = mm_pick_victim(cand, n);
    if (v < 0)
        return 0;
    char why[320];
    snprintf(why, sizeof(why),
             "the task was killed because node %.12s ran out of memory: used %.0f of %.0f MiB, "
             "threshold %.2f; the task's worker used %.0f MiB",
             node_hex, (double)u->used / MIB, (double)u->total / MIB, threshold,
             (double)proc_rss(cand[v].pid) / MIB);
    lease_mark_oom(tm->lm, ws[v], why);
    log_warn("memory monitor: killing worker pid %d (%s task): %s", cand[v].pid,
             cand[v].retriable ? "retriable" : "non-retriable", why);
    kill(cand[v].pid, SIGKILL);
    return cand[v].pid;
}
