/*
 * task_manager.c -- the raylet's task table and task life cycle; see
 * task_manager.h. Runs in the raylet's loop thread.
 *
 *   arrival --place--> forwarded (another node) | infeasible (kept) |
 *   here --dependency manager--> ready (class queue) --lease manager-->
 *   dispatched (worker) --TaskDone--> owner
 */
#include "task_manager_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory_monitor.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"

#define TASK_BUCKETS 4096 /* initial task table size; grows by doubling */

static void make_ready(task_manager *tm, rtask *t);

/* ---------------------------------------------------------------- task table */

rtask *tm__find(task_manager *tm, const uint8_t *id, size_t len)
{
    if (len != TASK_ID_SIZE)
        return NULL;
    return ID_MAP_ENTRY(id_map_find(&tm->tasks, id), rtask, hnode);
}

void tm__free_task(task_manager *tm, rtask *t)
{
    if (t->msg->spec->streaming)
        tm->n_generators--; /* counted by task_init, which every task passed */
    dm_release(tm->dm, t);
    id_map_remove(&tm->tasks, &t->hnode);
    demand_release(tm->demands, t->demand);
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

static void send_done(task_manager *tm, rtask *t, Rpc__TaskDone *done)
{
    if (t->actor_creation) {
        tm__actor_creation_failed(tm, t, done->status);
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
    tm__free_task(tm, t);
}

void tm__give_to_owner(task_manager *tm, const rtask *t, const object_id_t *id)
{
    client *owner = t->remote_owner ? NULL : creg_by_worker(tm->d.clients, &t->owner);
    if (owner && owner->pc)
        plasma_set_owner(tm->d.store, id, owner->pc);
    else if (t->remote_owner)
        plasma_set_remote_owner(tm->d.store, id, &t->owner); /* kept for it */
    else
        plasma_delete(tm->d.store, id);
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

static bool store_pressed(void *ctx)
{
    task_manager *tm = ctx;
    return dm_pressed(tm->dm);
}

/* The dependency wait of t ended. */
static void deps_done(void *ctx, rtask *t, int status, const char *msg)
{
    task_manager *tm = ctx;
    if (t->cancelled) { /* reported when it was cancelled */
        tm__free_task(tm, t);
        return;
    }
    if (status != RAYC_OK) {
        report(tm, t, status, "%s: %s", t->msg->spec->function, msg);
        tm__free_task(tm, t);
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
             res_format(t->demand, want, sizeof(want)),
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
        tm__free_task(tm, t);
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
        tm__free_task(tm, t);
    } else if (rc != 0) {
        report(tm, t, RAYC_ENOMEM, "raylet out of memory");
        tm__free_task(tm, t);
    }
}

/* ---------------------------------------------------------------- arrival */

/* Checks shared by local submissions and forwarded tasks. NULL (message
 * freed) when the spec is unusable or a duplicate. */
rtask *tm__new_task(task_manager *tm, Rpc__SubmitTask *m, const char **bad)
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
    if (tm__find(tm, s->task_id.data, TASK_ID_SIZE)) {
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
    res_set demand = {0};
    for (size_t i = 0; i < s->n_resources; i++) {
        Rpc__Resource *r = s->resources[i];
        if (r->amount < 0 || res_set_amount(&demand, r->name, r->amount) != 0)
            snprintf(err, errlen, "bad resource demand '%s'", r->name);
    }
    if (err[0])
        return -1;
    if ((t->demand = demand_intern(tm->demands, &demand)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
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

void tm__submit_common(task_manager *tm, rtask *t)
{
    char err[256] = "";
    int nrefs = task_init(tm, t, err, sizeof(err));
    if (nrefs < 0) {
        report(tm, t, RAYC_EINVAL, "%s: %s", t->msg->spec->function, err);
        tm__free_task(tm, t);
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
    rtask *t = tm__new_task(tm, m, &bad);
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
    tm__submit_common(tm, t);
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
    rtask *t = tm__new_task(tm, m, &bad);
    if (t == NULL) {
        if (bad) {
            log_warn("closing %s: %s", conn_peer(owner->c), bad);
            conn_close(owner->c);
        }
        return;
    }
    if (tm__hold_for_backoff(tm, t))
        return;
    tm__submit_common(tm, t);
}

/* ---------------------------------------------------------------- completion */

/* A worker lease's TaskDone: the first (OK, with the worker's address)
 * goes to the owner and the lease stays; the second says the owner is done
 * with it. true if handled here (a failure ends it as any task's does). */
static bool lease_step(task_manager *tm, rtask *t, Rpc__TaskDone *m)
{
    if (t->lease_granted) {
        lease_task_done(tm->lm, t);
        tm__free_task(tm, t);
        tm_schedule(tm);
        return true;
    }
    if (m->status == NULL || m->status->code != RAYC_OK)
        return false;
    t->lease_granted = true;
    ProtobufCBinaryData sent_node = m->node_id;
    m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, tm->d.node_id.b};
    m->attempt = t->msg->spec->attempt;
    send_done(tm, t, m);
    m->node_id = sent_node;
    return true;
}

void tm_task_done(task_manager *tm, client *from, Rpc__TaskDone *m)
{
    worker *w = from->w;
    rtask *t = tm__find(tm, m->task_id.data, m->task_id.len);
    if (w == NULL || t == NULL || t->state != T_DISPATCHED || t->w != w) {
        log_warn("%s reported a task it was not running", conn_peer(from->c));
        return;
    }
    if (t->actor_creation) {
        tm__actor_creation_done(tm, t, w, m);
        return;
    }
    if (t->msg->spec->lease && lease_step(tm, t, m))
        return;
    if (m->status && m->status->code != RAYC_OK)
        log_info("task %s (job %u, attempt %u) failed on worker pid %d: %s",
                 t->msg->spec->name && t->msg->spec->name[0] ? t->msg->spec->name
                                                             : t->msg->spec->function,
                 t->job_id, t->msg->spec->attempt, (int)w->pid,
                 m->status->message ? m->status->message : rayc_strerror(m->status->code));
    lease_task_done(tm->lm, t);
    /* Store returns now belong to the owner (fate-sharing), or die with it. */
    for (size_t i = 0; i < m->n_returns; i++) {
        Rpc__TaskReturn *r = m->returns[i];
        if (!r->in_store || r->object_id.len != OBJECT_ID_SIZE)
            continue;
        object_id_t oid;
        memcpy(oid.b, r->object_id.data, OBJECT_ID_SIZE);
        tm__give_to_owner(tm, t, &oid);
    }
    /* Stamp where store returns live. The field belongs to the unpacked
     * message (freed with it), so lend it our bytes only while packing. */
    ProtobufCBinaryData sent_node = m->node_id;
    m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, tm->d.node_id.b};
    m->attempt = t->msg->spec->attempt;
    send_done(tm, t, m);
    m->node_id = sent_node;
    tm__free_task(tm, t);
    tm_schedule(tm);
}

void tm_worker_died(task_manager *tm, worker *w)
{
    if (w->actor)
        tm__actor_worker_died(tm, w);
    lease_worker_died(tm->lm, w);
}

/* ---------------------------------------------------------------- control */

void tm_cancel(task_manager *tm, client *from, Rpc__CancelTask *m)
{
    (void)from;
    rtask *t = tm__find(tm, m->task_id.data, m->task_id.len);
    if (t == NULL || t->cancelled)
        return;
    switch (t->state) {
    case T_WAITING_DEPS:
        t->cancelled = true; /* freed when the dependency wait ends */
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        dm_cancel(tm->dm, t); /* at once if it waits for admission */
        break;
    case T_READY:
        lease_dequeue(tm->lm, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        tm__free_task(tm, t);
        break;
    case T_INFEASIBLE:
        infeasible_remove(tm, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        tm__free_task(tm, t);
        break;
    case T_DELAYED:
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        tm__free_task(tm, t); /* the timer finds nothing */
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
             * it and reports it cancelled if it has not started it. Should
             * the worker die first (a force-cancel of the task it runs), it
             * is reported cancelled too, never retried (issue 12 item 3). */
            t->cancel_asked = true;
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
        rtask *t = tm__find(tm, id->data, id->len);
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
        rtask *t = tm__find(tm, m->task_ids[i].data, m->task_ids[i].len);
        if (t && t->state == T_DISPATCHED && t->w == w) {
            lease_take_back(tm->lm, t);
            if (t->cancel_asked && t->state == T_READY) {
                /* Given back before the worker read our cancel of it. */
                lease_dequeue(tm->lm, t);
                report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
                tm__free_task(tm, t);
            }
        }
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
    tm__free_task(m->tm, t);
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
            tm__free_task(tm, t);
        }
    }
}

/* Generators of an owner that is gone (a local client that exited, or any
 * owner on a node that died: owner_node): nobody takes their items (nor
 * acknowledges them), so they stop at their next yield. Those running here
 * are told by their worker; those forwarded to another node by that node's
 * raylet, which tells its worker (issue 11). */
static void cancel_generators_of(task_manager *tm, const worker_id_t *owner,
                                 const node_id_t *owner_node)
{
    if (tm->n_generators == 0)
        return;
    id_map_iter it;
    id_map_iter_init(&tm->tasks, &it);
    for (id_node *n; (n = id_map_iter_next(&tm->tasks, &it)) != NULL;) {
        rtask *t = ID_MAP_ENTRY(n, rtask, hnode);
        if (!t->msg->spec->streaming)
            continue;
        if (owner_node ? !t->remote_owner || memcmp(t->owner_node.b, owner_node->b, NODE_ID_SIZE)
                       : t->remote_owner || memcmp(t->owner.b, owner->b, WORKER_ID_SIZE))
            continue;
        Rpc__CancelTask m = RPC__CANCEL_TASK__INIT;
        m.task_id.data = t->id.b;
        m.task_id.len = TASK_ID_SIZE;
        if (t->state == T_DISPATCHED && t->w && t->w->cl) {
            conn_send(t->w->cl->c, MSG_CANCEL_TASK, &m.base);
        } else if (t->state == T_FORWARDED) {
            conn *c = peers_get(tm->d.peers, &t->fwd_node);
            if (c)
                conn_send(c, MSG_CANCEL_TASK, &m.base);
        }
    }
}

void tm_client_gone(task_manager *tm, client *cl)
{
    bool job_end = cl->role == RPC__ROLE__ROLE_DRIVER && cl->job_id != 0;
    cancel_generators_of(tm, &cl->id, NULL);
    drop_owned(tm, &cl->id, cl->job_id, job_end);
    if (!job_end)
        return;
    tm_job_ended(tm, cl->job_id);
}

/* The job's tasks here in every other state: a record of a task forwarded
 * elsewhere (that node drops the task itself), a retry held for its
 * back-off, a wait for arguments (at once when it waits for admission, else
 * at its next step, at most DM_RECHECK_MS away: the pins it holds go then).
 * Running ones end with their workers (wpool_kill_job). */
static void drop_job(task_manager *tm, uint32_t job_id)
{
    id_map_iter it;
    id_map_iter_init(&tm->tasks, &it);
    for (id_node *n; (n = id_map_iter_next(&tm->tasks, &it)) != NULL;) {
        rtask *t = ID_MAP_ENTRY(n, rtask, hnode);
        if (t->job_id != job_id || t->actor_creation)
            continue;
        if (t->state == T_WAITING_DEPS) {
            t->cancelled = true; /* freed when the wait ends, unreported */
            dm_cancel(tm->dm, t);
        } else if (t->state == T_FORWARDED || t->state == T_DELAYED) {
            tm->n_forwarded -= t->state == T_FORWARDED;
            tm__free_task(tm, t);
        }
    }
}

/* The job's objects that nobody here will free: pulled copies and results
 * kept for owners on other nodes (issue 12: a job leaves no copy behind). */
static void free_job_objects(task_manager *tm, uint32_t job_id)
{
    object_id_t *ids;
    size_t n = plasma_job_orphans(tm->d.store, job_id, &ids);
    for (size_t i = 0; i < n; i++)
        plasma_delete(tm->d.store, &ids[i]);
    free(ids);
    if (n > 0)
        log_info("job %u ended: freed %zu of its objects here", job_id, n);
}

void tm_job_ended(task_manager *tm, uint32_t job_id)
{
    /* The driver is gone: its job ends, and so do the job's workers and
     * whatever of it is still here, in any state. */
    worker_id_t nobody;
    memset(&nobody, 0xff, sizeof(nobody));
    drop_owned(tm, &nobody, job_id, true);
    drop_job(tm, job_id);
    wpool_kill_job(tm->d.pool, job_id);
    jt_remove(tm->d.jobs, job_id);
    free_job_objects(tm, job_id);
}

/* ---------------------------------------------------------------- multi-node */

void tm_remote_done(task_manager *tm, Rpc__TaskDone *m)
{
    rtask *t = tm__find(tm, m->task_id.data, m->task_id.len);
    if (t && t->state == T_FORWARDED) {
        tm->n_forwarded--;
        place_forward_done(tm->pl, &t->fwd_node, t->demand);
        tm__free_task(tm, t);
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
        tm__free_task(tm, t);
    }
    cancel_generators_of(tm, NULL, node);
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

size_t tm_waits(const task_manager *tm, char (*out)[GS_WAIT_LEN], size_t max)
{
    /* The oldest waits first: a small insertion sort over at most max. */
    const rtask *pick[GS_WAITS_MAX];
    size_t n = 0;
    uint64_t old = now_ms() - TM_WAIT_REPORT_MS;
    if (max > GS_WAITS_MAX)
        max = GS_WAITS_MAX;
    id_map_iter it;
    id_map_iter_init(&tm->tasks, &it);
    for (id_node *nd; (nd = id_map_iter_next(&tm->tasks, &it)) != NULL;) {
        const rtask *t = ID_MAP_ENTRY(nd, rtask, hnode);
        if (t->state != T_WAITING_DEPS || t->cancelled || t->wait_since == 0 || t->wait_since > old)
            continue;
        if (max == 0 || (n == max && t->wait_since >= pick[max - 1]->wait_since))
            continue;
        size_t k = n < max ? n++ : max - 1; /* full: the youngest drops out */
        for (; k > 0 && pick[k - 1]->wait_since > t->wait_since; k--)
            pick[k] = pick[k - 1];
        pick[k] = t;
    }
    for (size_t i = 0; i < n; i++)
        dm_describe(tm->dm, pick[i], out[i], GS_WAIT_LEN);
    return n;
}

task_manager *tm_new(const tm_deps *deps)
{
    task_manager *tm = calloc(1, sizeof(*tm));
    if (tm == NULL)
        return NULL;
    tm->d = *deps;
    if ((tm->demands = demand_table_new()) == NULL)
        goto fail;
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
    tm->dm = dm_new(deps->base, deps->store, &de);
    tm->pl = place_new(&deps->node_id, lease_total(tm->lm), lease_available(tm->lm), forward, tm);
    if (tm->dm == NULL || tm->pl == NULL)
        goto fail;
    place_set_queued(tm->pl, lease_queued_demand(tm->lm));
    place_set_pressure(tm->pl, store_pressed, tm);
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
    demand_table_free(tm->demands);
    place_free(tm->pl);
    lease_free(tm->lm);
    for (ractor *r = tm->actors, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    free(tm);
}
