/*
 * task_manager.c -- local task scheduling; see task_manager.h.
 * Runs in the raylet's loop thread.
 */
#include "task_manager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "job_table.h"
#include "object_manager.h"
#include "rayc.h"
#include "sched_policy.h"
#include "worker_pool.h"

#define TASK_BUCKETS 4096 /* grows by doubling */

enum { T_WAITING_DEPS, T_READY, T_DISPATCHED, T_INFEASIBLE, T_FORWARDED };

/* place(): a hard node pin to a node the cluster knows is dead, or to one
 * this raylet has not heard of yet (it waits for the view to show it). */
#define SCHED_DEAD_TARGET    100
#define SCHED_UNKNOWN_TARGET 101

typedef struct sclass sclass;
struct rtask;
static void start_deps(struct task_manager *tm, struct rtask *t);
static void submit_common(struct task_manager *tm, struct rtask *t);
static int place(struct task_manager *tm, struct rtask *t, bool spillback);
static void wait_deps(struct task_manager *tm, struct rtask *t, const object_id_t *ids,
                      size_t nrefs);

typedef struct rtask {
    task_id_t id;
    Rpc__SubmitTask *msg; /* owned; msg->spec is the spec */
    res_set demand;
    worker_id_t owner;
    uint32_t job_id;
    int state;
    bool cancelled;    /* cancelled while waiting for deps or while running */
    bool remote_owner; /* forwarded here: the owner lives on owner_node */
    bool no_forward;   /* run here: never forward again (one hop) */
    node_id_t owner_node;
    node_id_t fwd_node; /* T_FORWARDED: where it went */
    int pulls;          /* store arguments still being pulled here */
    int pull_status;
    bool deps_pulled;
    bool deps_ready; /* its store arguments were all sealed here */
    struct task_manager *tm;
    sclass *cls;
    worker *w;
    struct rtask *next; /* class queue, worker list, or infeasible list */
    struct rtask *prev;
    struct rtask *hnext;
} rtask;

struct sclass {
    uint32_t job_id;
    res_set demand;
    rtask *head, *tail;
    size_t count;
    sclass *next;
};

struct task_manager {
    node_manager *nm;
    rtask **buckets;
    size_t nbuckets, ntasks;
    sclass *classes;
    rtask *infeasible; /* doubly linked through next/prev */
    uint64_t n_infeasible;
    job_table *jobs;
    int in_flight; /* max tasks pipelined to one worker */
    /* placement: the cluster view as the policy sees it (local entry kept
     * current), rebuilt when the view changes */
    sched_view sv;
    sched_node *snodes;
    int nsnodes;
    uint64_t n_forwarded;
};

/* ------------------------------------------------------------ task table */

static size_t bucket_of(const task_manager *tm, const task_id_t *id)
{
    return id_hash(id->b, TASK_ID_SIZE) & (tm->nbuckets - 1);
}

static rtask *task_find(task_manager *tm, const uint8_t *id, size_t len)
{
    if (len != TASK_ID_SIZE)
        return NULL;
    task_id_t t;
    memcpy(t.b, id, TASK_ID_SIZE);
    for (rtask *r = tm->buckets[bucket_of(tm, &t)]; r; r = r->hnext)
        if (memcmp(r->id.b, id, TASK_ID_SIZE) == 0)
            return r;
    return NULL;
}

static void task_table_grow(task_manager *tm)
{
    size_t n = tm->nbuckets * 2;
    rtask **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return;
    for (size_t i = 0; i < tm->nbuckets; i++) {
        for (rtask *r = tm->buckets[i], *next; r; r = next) {
            next = r->hnext;
            size_t s = id_hash(r->id.b, TASK_ID_SIZE) & (n - 1);
            r->hnext = nb[s];
            nb[s] = r;
        }
    }
    free(tm->buckets);
    tm->buckets = nb;
    tm->nbuckets = n;
}

static void task_insert(task_manager *tm, rtask *t)
{
    if (tm->ntasks >= tm->nbuckets)
        task_table_grow(tm);
    size_t s = bucket_of(tm, &t->id);
    t->hnext = tm->buckets[s];
    tm->buckets[s] = t;
    tm->ntasks++;
}

static void task_free(task_manager *tm, rtask *t)
{
    for (rtask **pp = &tm->buckets[bucket_of(tm, &t->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == t) {
            *pp = t->hnext;
            tm->ntasks--;
            break;
        }
    }
    msg_free(&t->msg->base);
    free(t);
}

/* ------------------------------------------------------------ class queues */

static bool same_demand(const res_set *a, const res_set *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (res_get(b, a->name[i]) != a->amount[i])
            return false;
    return true;
}

static sclass *class_for(task_manager *tm, uint32_t job_id, const res_set *demand)
{
    for (sclass *c = tm->classes; c; c = c->next)
        if (c->job_id == job_id && same_demand(&c->demand, demand))
            return c;
    sclass *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->job_id = job_id;
    c->demand = *demand;
    c->next = tm->classes;
    tm->classes = c;
    return c;
}

static void class_push(sclass *c, rtask *t, bool front)
{
    t->cls = c;
    t->prev = t->next = NULL;
    if (c->head == NULL) {
        c->head = c->tail = t;
    } else if (front) {
        t->next = c->head;
        c->head->prev = t;
        c->head = t;
    } else {
        t->prev = c->tail;
        c->tail->next = t;
        c->tail = t;
    }
    c->count++;
}

static void class_remove(sclass *c, rtask *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        c->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        c->tail = t->prev;
    t->prev = t->next = NULL;
    c->count--;
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

/* ------------------------------------------------------------ owners */

/* Tell a task's owner how it ended. status != OK: every return is that error. */
static void report(task_manager *tm, rtask *t, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Deliver a completion to the task's owner: its local connection, or the
 * raylet of its node. */
static void send_done(task_manager *tm, rtask *t, Rpc__TaskDone *done)
{
    if (t->remote_owner) {
        conn *c = peers_get(tm->nm, &t->owner_node);
        if (c)
            conn_send(c, MSG_TASK_DONE, &done->base);
        return;
    }
    client *owner = nm_client_by_worker(tm->nm, &t->owner);
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
        if (plasma_pin(tm->nm->store, owner->pc, &id, &v) == 0) {
            r->pinned = true;
            r->offset = v.off;
        }
    }
    conn_send(owner->c, MSG_TASK_DONE, &done->base);
}

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
    done.node_id.data = tm->nm->node_id.b;
    done.node_id.len = NODE_ID_SIZE;
    send_done(tm, t, &done);
}

static void notice(client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(client *cl, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    Rpc__ClusterNotice n = RPC__CLUSTER_NOTICE__INIT;
    n.message = message;
    conn_send(cl->c, MSG_CLUSTER_NOTICE, &n.base);
}

/* ------------------------------------------------------------ dispatch */

static void push(task_manager *tm, worker *w, rtask *t)
{
    (void)tm;
    Rpc__PushTask p = RPC__PUSH_TASK__INIT;
    p.spec = t->msg->spec;
    conn_send(w->cl->c, MSG_PUSH_TASK, &p.base);
    t->state = T_DISPATCHED;
    t->w = w;
    t->next = NULL;
    t->prev = w->tasks_tail;
    if (w->tasks_tail)
        w->tasks_tail->next = t;
    else
        w->tasks_head = t;
    w->tasks_tail = t;
    w->depth++;
}

static void worker_list_remove(worker *w, rtask *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        w->tasks_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        w->tasks_tail = t->prev;
    t->prev = t->next = NULL;
    w->depth--;
}

/* A leased worker of this class with room in its pipeline. */
static worker *leased_with_room(task_manager *tm, sclass *c)
{
    worker *best = NULL;
    for (worker *w = wpool_first(tm->nm->pool); w; w = w->next) {
        if (w->state != W_LEASED || w->blocked || w->exiting || w->job_id != c->job_id ||
            w->depth >= tm->in_flight || !same_demand(&w->lease, &c->demand))
            continue;
        if (best == NULL || w->depth < best->depth)
            best = w;
    }
    return best;
}

/* Dispatch from one class queue while workers and resources allow.
 * Returns how many workers the class still wants started. */
static int schedule_class(task_manager *tm, sclass *c)
{
    node_manager *nm = tm->nm;
    const char *job_error = "";
    int job_state = jt_state(tm->jobs, c->job_id, &job_error);
    if (job_state < 0 || job_state == JOB_FETCHING)
        return 0;
    if (job_state == JOB_FAILED) {
        while (c->head) {
            rtask *t = c->head;
            class_remove(c, t);
            report(tm, t, RAYC_ENOTFOUND, "%s: job code unavailable: %s", t->msg->spec->function,
                   job_error);
            task_free(tm, t);
        }
        return 0;
    }
    while (c->head) {
        worker *w = leased_with_room(tm, c);
        if (w == NULL || w->depth > 0) {
            /* Prefer a new lease (parallelism) over deepening a pipeline. */
            worker *idle = NULL;
            if (sched_fits(&nm->available, &c->demand) &&
                (idle = wpool_idle_for_job(nm->pool, c->job_id)) != NULL) {
                if (idle->job_id == 0) {
                    jt_bind(tm->jobs, c->job_id, idle->cl->c);
                    idle->job_id = c->job_id;
                }
                sched_acquire(&nm->available, &c->demand);
                idle->lease = c->demand;
                idle->state = W_LEASED;
                w = idle;
            } else if (w == NULL) {
                if (sched_fits(&nm->available, &c->demand)) {
                    /* Resources free but no idle worker: ask for one per
                     * task that could start now. */
                    return (int)c->count;
                }
                /* Busy here: another node may have room (spillback). */
                rtask *t = c->head;
                if (t->no_forward || tm->sv.n <= 1)
                    return 0;
                class_remove(c, t);
                if (place(tm, t, true) == SCHED_FORWARD)
                    continue;
                class_push(c, t, true);
                return 0;
            }
        }
        rtask *t = c->head;
        class_remove(c, t);
        push(tm, w, t);
    }
    return 0;
}

void tm_schedule(task_manager *tm)
{
    node_manager *nm = tm->nm;
    int want = 0;
    for (sclass **pp = &tm->classes; *pp;) {
        sclass *c = *pp;
        want += schedule_class(tm, c);
        if (c->head == NULL) { /* drop empty classes: they are cheap to remake */
            *pp = c->next;
            free(c);
            continue;
        }
        pp = &c->next;
    }
    /* Start workers for tasks that have resources but no worker, counting
     * the ones already starting. */
    for (int i = wpool_starting(nm->pool); i < want && wpool_size(nm->pool) < wpool_max(nm->pool);
         i++)
        if (wpool_start(nm->pool) == NULL)
            break;
}

/* ------------------------------------------------------------ arrival */

/* Rebuild the policy's copy of the view from the node manager's. */
static void rebuild_view(task_manager *tm)
{
    node_manager *nm = tm->nm;
    if (nm->nview > tm->nsnodes) {
        sched_node *n = realloc(tm->snodes, (size_t)nm->nview * sizeof(*n));
        if (n == NULL)
            return;
        tm->snodes = n;
    }
    tm->nsnodes = nm->nview;
    tm->sv.nodes = tm->snodes;
    tm->sv.n = nm->nview;
    tm->sv.local = -1;
    for (int i = 0; i < nm->nview; i++) {
        sched_node *sn = &tm->snodes[i];
        sn->id = nm->view[i].id;
        sn->total = nm->view[i].total;
        sn->available = nm->view[i].available;
        sn->alive = nm->view[i].alive;
        if (memcmp(sn->id.b, nm->node_id.b, NODE_ID_SIZE) == 0)
            tm->sv.local = i;
    }
}

/* Send a task to another raylet, which runs or queues it there. Keeps a
 * record here so the owner hears of it if that node dies. Returns false if
 * the node cannot be reached (the task stays here). */
static bool forward(task_manager *tm, rtask *t, int target)
{
    node_manager *nm = tm->nm;
    sched_node *sn = &tm->snodes[target];
    conn *c = peers_get(nm, &sn->id);
    if (c == NULL)
        return false;
    Rpc__ForwardTask f = RPC__FORWARD_TASK__INIT;
    f.spec = t->msg->spec;
    f.from_node.data = nm->node_id.b;
    f.from_node.len = NODE_ID_SIZE;
    if (conn_send(c, MSG_FORWARD_TASK, &f.base) != 0)
        return false;
    /* Count it against that node until its next report says otherwise. */
    sched_acquire(&sn->available, &t->demand);
    t->state = T_FORWARDED;
    t->fwd_node = sn->id;
    tm->n_forwarded++;
    return true;
}

/* Where should t run? Returns SCHED_RUN_LOCAL/SCHED_WAIT (here),
 * SCHED_FORWARD (sent away: t is T_FORWARDED) or SCHED_INFEASIBLE. A
 * spillback (t queued here, this node busy) moves t only to a node with room
 * now: queueing it at another busy node would hand SPREAD's round robin every
 * task that waits here, until this node had none of them. */
static int place(task_manager *tm, rtask *t, bool spillback)
{
    node_manager *nm = tm->nm;
    Rpc__TaskSpec *s = t->msg->spec;
    bool feasible_here = sched_feasible(&nm->total, &t->demand);
    if (!t->no_forward && s->strategy == RAYC_SCHED_NODE && !s->soft &&
        s->node_id.len == NODE_ID_SIZE &&
        memcmp(s->node_id.data, nm->node_id.b, NODE_ID_SIZE) != 0) {
        /* Pinned hard to another node: only there, and never to a dead one. */
        node_id_t target;
        memcpy(target.b, s->node_id.data, NODE_ID_SIZE);
        const view_node *v = nm_view_node(nm, &target);
        if (v && !v->alive)
            return SCHED_DEAD_TARGET;
        if (v == NULL)
            return SCHED_UNKNOWN_TARGET; /* placed again when the view shows it */
    }
    if (t->no_forward || tm->sv.local < 0 || tm->sv.n <= 1)
        return feasible_here ? SCHED_WAIT : SCHED_INFEASIBLE;
    /* Fast path: default tasks that fit here while we are lightly loaded. */
    tm->snodes[tm->sv.local].available = nm->available;
    tm->snodes[tm->sv.local].total = nm->total;
    sched_req req = {.demand = t->demand, .strategy = s->strategy, .soft = s->soft};
    if (s->strategy == RAYC_SCHED_NODE && s->node_id.len == NODE_ID_SIZE) {
        req.has_node = true;
        memcpy(req.node.b, s->node_id.data, NODE_ID_SIZE);
    }
    uint64_t stack_loc[16], *loc = NULL;
    if (s->strategy == RAYC_SCHED_DEFAULT && tm->sv.n <= 16) {
        memset(stack_loc, 0, sizeof(stack_loc));
        for (size_t i = 0; i < s->n_args; i++) {
            Rpc__TaskArg *a = s->args[i];
            if (!a->is_ref || a->node_id.len != NODE_ID_SIZE)
                continue;
            for (int k = 0; k < tm->sv.n; k++)
                if (memcmp(tm->snodes[k].id.b, a->node_id.data, NODE_ID_SIZE) == 0)
                    stack_loc[k] += a->size, loc = stack_loc;
        }
    }
    int target = -1;
    uint64_t cursor = tm->sv.cursor;
    int rc = sched_place(&tm->sv, &req, loc, &target);
    bool room = rc == SCHED_FORWARD || rc == SCHED_RUN_LOCAL;
    if (spillback && !room)
        tm->sv.cursor = cursor; /* not moved: SPREAD's turn is not used up */
    if ((room || (rc == SCHED_WAIT && !spillback)) && target >= 0 && target != tm->sv.local) {
        if (forward(tm, t, target))
            return SCHED_FORWARD;
        return feasible_here ? SCHED_WAIT : SCHED_INFEASIBLE;
    }
    if (rc == SCHED_INFEASIBLE || rc < 0)
        return SCHED_INFEASIBLE;
    return SCHED_WAIT;
}

static void make_ready(task_manager *tm, rtask *t)
{
    node_manager *nm = tm->nm;
    int where = place(tm, t, false);
    if (where == SCHED_FORWARD)
        return;
    if (where == SCHED_DEAD_TARGET) {
        report(tm, t, RAYC_EINVAL, "%s: pinned (RAYC_SCHED_NODE, not soft) to a node that is dead",
               t->msg->spec->function);
        task_free(tm, t);
        return;
    }
    if (where == SCHED_UNKNOWN_TARGET) {
        /* Waits with the infeasible tasks, without the resource warning:
         * nothing is missing but the node. */
        infeasible_push(tm, t);
        log_info("task %s waits for the node it is pinned to to join", t->msg->spec->function);
        return;
    }
    if (where == SCHED_INFEASIBLE) {
        infeasible_push(tm, t);
        client *owner = nm_client_by_worker(nm, &t->owner);
        char want[512], have[512];
        log_warn("task %s is infeasible: needs %s, node has %s", t->msg->spec->function,
                 res_format(&t->demand, want, sizeof(want)),
                 res_format(&nm->total, have, sizeof(have)));
        if (owner && !owner->warned_infeasible) {
            owner->warned_infeasible = true;
            notice(owner,
                   "task %s needs %s, which no node of the cluster has (this node: %s); it "
                   "stays pending until such a node joins",
                   t->msg->spec->function, want, have);
        }
        return;
    }
    sclass *c = class_for(tm, t->job_id, &t->demand);
    if (c == NULL) {
        report(tm, t, RAYC_ENOMEM, "raylet out of memory");
        task_free(tm, t);
        return;
    }
    t->state = T_READY;
    class_push(c, t, false);
}

static bool has_ref_args(const rtask *t)
{
    for (size_t i = 0; i < t->msg->spec->n_args; i++)
        if (t->msg->spec->args[i]->is_ref)
            return true;
    return false;
}

static void on_deps_ready(void *arg, uint64_t tag, int status, const bool *ready, size_t n)
{
    (void)ready;
    (void)n;
    task_manager *tm = arg;
    rtask *t = (rtask *)(uintptr_t)tag;
    t->deps_ready = true;
    if (t->cancelled || status == RAYC_ECANCELLED) {
        if (!t->cancelled)
            report(tm, t, RAYC_EOBJECT_LOST, "%s: its arguments can no longer arrive",
                   t->msg->spec->function);
        task_free(tm, t);
        return;
    }
    make_ready(tm, t);
    tm_schedule(tm);
}

/* Its store arguments are all here (or could not be had). */
static void on_args_pulled(void *arg, const object_id_t *id, int status, const char *msg)
{
    rtask *t = arg;
    if (status != RAYC_OK && t->pull_status == RAYC_OK) {
        t->pull_status = status;
        log_warn("task %s: argument unavailable: %s", t->msg->spec->function, msg ? msg : "");
    }
    if (status != RAYC_OK && id != NULL && !t->remote_owner) {
        /* Tell the owner which object is gone: if it made it, it rebuilds
         * it from lineage before it retries this task. */
        client *owner = nm_client_by_worker(t->tm->nm, &t->owner);
        if (owner) {
            Rpc__ObjectLost lost = RPC__OBJECT_LOST__INIT;
            lost.object_id.data = (uint8_t *)id->b;
            lost.object_id.len = OBJECT_ID_SIZE;
            lost.message = (char *)(msg ? msg : "object lost");
            conn_send(owner->c, MSG_OBJECT_LOST, &lost.base);
        }
    }
    if (--t->pulls > 0)
        return;
    task_manager *tm = t->tm;
    if (t->cancelled) {
        task_free(tm, t);
        return;
    }
    if (t->pull_status != RAYC_OK) {
        report(tm, t, RAYC_EOBJECT_LOST, "%s: an argument was lost", t->msg->spec->function);
        task_free(tm, t);
        return;
    }
    t->deps_pulled = true;
    start_deps(tm, t);
}

/* Wait until every store argument is sealed in the local store, pulling the
 * ones that are elsewhere first. */
static void wait_deps(task_manager *tm, rtask *t, const object_id_t *ids, size_t nrefs)
{
    node_manager *nm = tm->nm;
    t->state = T_WAITING_DEPS;
    t->tm = tm;
    if (!t->deps_pulled && nm->nview > 1) {
        Rpc__TaskSpec *s = t->msg->spec;
        t->pulls = 1; /* held while starting them */
        t->pull_status = RAYC_OK;
        for (size_t i = 0; i < s->n_args; i++) {
            Rpc__TaskArg *a = s->args[i];
            if (!a->is_ref || a->object_id.len != OBJECT_ID_SIZE)
                continue;
            object_id_t id;
            memcpy(id.b, a->object_id.data, OBJECT_ID_SIZE);
            if (plasma_object_state(nm->store, &id, NULL) != PLASMA_ABSENT)
                continue;
            node_id_t hint;
            bool has_hint = a->node_id.len == NODE_ID_SIZE;
            if (has_hint)
                memcpy(hint.b, a->node_id.data, NODE_ID_SIZE);
            t->pulls++;
            om_pull(nm->om, &id, has_hint ? &hint : NULL, on_args_pulled, t);
        }
        on_args_pulled(t, NULL, RAYC_OK, NULL);
        return;
    }
    plasma_wait(nm->store, nm->self_pc, ids, nrefs, nrefs, -1, on_deps_ready, tm,
                (uint64_t)(uintptr_t)t);
}

static void start_deps(task_manager *tm, rtask *t)
{
    Rpc__TaskSpec *s = t->msg->spec;
    object_id_t stack_ids[16] = {{{0}}}, *ids = stack_ids;
    if (s->n_args > 16 && (ids = malloc(s->n_args * sizeof(*ids))) == NULL) {
        report(tm, t, RAYC_ENOMEM, "raylet out of memory");
        task_free(tm, t);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_args; i++)
        if (s->args[i]->is_ref && s->args[i]->object_id.len == OBJECT_ID_SIZE)
            memcpy(ids[n++].b, s->args[i]->object_id.data, OBJECT_ID_SIZE);
    wait_deps(tm, t, ids, n);
    if (ids != stack_ids)
        free(ids);
}

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
    t->tm = tm;
    return t;
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
    jt_learn(tm->jobs, s->job_id);
    if (s->owner_node_id.len == NODE_ID_SIZE)
        memcpy(t->owner_node.b, s->owner_node_id.data, NODE_ID_SIZE);
    else
        t->owner_node = *from;
    submit_common(tm, t);
}

void tm_submit(task_manager *tm, client *owner, Rpc__SubmitTask *m)
{
    const char *bad;
    rtask *t = new_task(tm, m, &bad);
    if (t == NULL) {
        if (bad) {
            log_warn("closing %s: %s", conn_peer(owner->c), bad);
            conn_close(owner->c);
        }
        return;
    }
    submit_common(tm, t);
}

static void submit_common(task_manager *tm, rtask *t)
{
    node_manager *nm = tm->nm;
    Rpc__SubmitTask *m = t->msg;
    Rpc__TaskSpec *s = m->spec;
    char err[256] = "";
    memcpy(t->id.b, s->task_id.data, TASK_ID_SIZE);
    memcpy(t->owner.b, s->owner_id.data, WORKER_ID_SIZE);
    t->job_id = s->job_id;
    for (size_t i = 0; i < s->n_resources; i++) {
        Rpc__Resource *r = s->resources[i];
        if (r->amount < 0 || res_set_amount(&t->demand, r->name, r->amount) != 0)
            snprintf(err, sizeof(err), "bad resource demand '%s'", r->name);
    }
    task_insert(tm, t);
    if (err[0]) {
        report(tm, t, RAYC_EINVAL, "%s: %s", s->function, err);
        task_free(tm, t);
        return;
    }
    /* Store arguments must be sealed here before the task may run. */
    object_id_t stack_ids[16], *ids = stack_ids;
    size_t nrefs = 0;
    for (size_t i = 0; i < s->n_args; i++)
        if (s->args[i]->is_ref)
            nrefs++;
    if (nrefs > 16 && (ids = malloc(nrefs * sizeof(*ids))) == NULL) {
        report(tm, t, RAYC_ENOMEM, "raylet out of memory");
        task_free(tm, t);
        return;
    }
    nrefs = 0;
    for (size_t i = 0; i < s->n_args; i++) {
        Rpc__TaskArg *a = s->args[i];
        if (!a->is_ref)
            continue;
        if (a->object_id.len != OBJECT_ID_SIZE) {
            snprintf(err, sizeof(err), "bad object id in argument %zu", i);
            break;
        }
        memcpy(ids[nrefs++].b, a->object_id.data, OBJECT_ID_SIZE);
    }
    if (err[0]) {
        report(tm, t, RAYC_EINVAL, "%s: %s", s->function, err);
        task_free(tm, t);
    } else if (nrefs > 0 && !t->no_forward && nm->nview > 1) {
        /* Place first: the arguments are fetched only where it runs. */
        t->state = T_READY;
        int where = place(tm, t, false);
        if (where == SCHED_INFEASIBLE || where == SCHED_DEAD_TARGET ||
            where == SCHED_UNKNOWN_TARGET) {
            make_ready(tm, t); /* infeasible list (placed again on view changes), or failed */
        } else if (where != SCHED_FORWARD) {
            t->no_forward = true;
            wait_deps(tm, t, ids, nrefs);
        }
    } else if (nrefs > 0) {
        wait_deps(tm, t, ids, nrefs);
    } else {
        make_ready(tm, t);
        tm_schedule(tm);
    }
    if (ids != stack_ids)
        free(ids);
}

/* ------------------------------------------------------------ completion */

static void lease_release(task_manager *tm, worker *w)
{
    node_manager *nm = tm->nm;
    if (w->state != W_LEASED)
        return;
    res_set give = w->lease;
    if (w->blocked)
        res_set_amount(&give, "CPU", res_get(&give, "CPU") - w->blocked_cpu);
    sched_release(&nm->available, &nm->total, &give);
    w->blocked = false;
    w->blocked_cpu = 0;
    memset(&w->lease, 0, sizeof(w->lease));
    w->state = W_IDLE;
    w->idle_since = now_ms();
}

void tm_task_done(task_manager *tm, client *from, Rpc__TaskDone *m)
{
    node_manager *nm = tm->nm;
    worker *w = from->w;
    rtask *t = task_find(tm, m->task_id.data, m->task_id.len);
    if (w == NULL || t == NULL || t->state != T_DISPATCHED || t->w != w) {
        log_warn("%s reported a task it was not running", conn_peer(from->c));
        return;
    }
    worker_list_remove(w, t);
    /* Store returns now belong to the owner (fate-sharing), or die with it. */
    client *owner = t->remote_owner ? NULL : nm_client_by_worker(nm, &t->owner);
    for (size_t i = 0; i < m->n_returns; i++) {
        Rpc__TaskReturn *r = m->returns[i];
        if (!r->in_store || r->object_id.len != OBJECT_ID_SIZE)
            continue;
        object_id_t oid;
        memcpy(oid.b, r->object_id.data, OBJECT_ID_SIZE);
        if (owner && owner->pc)
            plasma_set_owner(nm->store, &oid, owner->pc);
        else if (t->remote_owner)
            plasma_set_owner(nm->store, &oid, NULL); /* kept for the remote owner */
        else
            plasma_delete(nm->store, &oid);
    }
    /* Stamp where store returns live. The field belongs to the unpacked
     * message (freed with it), so lend it our bytes only while packing. */
    ProtobufCBinaryData sent_node = m->node_id;
    m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, nm->node_id.b};
    m->attempt = t->msg->spec->attempt;
    send_done(tm, t, m);
    m->node_id = sent_node;
    task_free(tm, t);
    if (w->depth == 0)
        lease_release(tm, w);
    tm_schedule(tm);
}

void tm_worker_died(task_manager *tm, worker *w)
{
    while (w->tasks_head) {
        rtask *t = w->tasks_head;
        worker_list_remove(w, t);
        if (t->cancelled)
            report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        else
            report(tm, t, RAYC_EWORKER_DIED, "%s: the worker running it (pid %d) died",
                   t->msg->spec->function, (int)w->pid);
        task_free(tm, t);
    }
    lease_release(tm, w);
    w->state = W_DEAD;
}

/* ------------------------------------------------------------ control */

void tm_cancel(task_manager *tm, client *from, Rpc__CancelTask *m)
{
    (void)from; /* NULL when a peer raylet passes on an owner's cancel */
    rtask *t = task_find(tm, m->task_id.data, m->task_id.len);
    if (t == NULL || t->cancelled)
        return;
    switch (t->state) {
    case T_WAITING_DEPS:
        t->cancelled = true; /* freed when the dependency wait ends */
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        break;
    case T_READY:
        class_remove(t->cls, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        task_free(tm, t);
        break;
    case T_INFEASIBLE:
        infeasible_remove(tm, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        task_free(tm, t);
        break;
    case T_FORWARDED: {
        conn *c = peers_get(tm->nm, &t->fwd_node);
        if (c)
            conn_send(c, MSG_CANCEL_TASK, &m->base);
        break;
    }
    case T_DISPATCHED:
        if (m->force) {
            t->cancelled = true;
            wpool_kill(tm->nm->pool, t->w);
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
    node_manager *nm = tm->nm;
    if (w->state != W_LEASED)
        return;
    /* Hand back what it has not started, to run on other workers. A worker
     * that is already blocked sends this again for tasks pushed to it just
     * after it blocked: those must be taken back too. */
    for (size_t i = m->n_give_back; i > 0; i--) {
        ProtobufCBinaryData *id = &m->give_back[i - 1];
        rtask *t = task_find(tm, id->data, id->len);
        if (t == NULL || t->w != w || t->state != T_DISPATCHED)
            continue;
        worker_list_remove(w, t);
        sclass *c = class_for(tm, t->job_id, &t->demand);
        if (c == NULL)
            continue;
        t->w = NULL;
        t->state = T_READY;
        class_push(c, t, true);
    }
    if (!w->blocked) {
        w->blocked = true;
        w->blocked_cpu = res_get(&w->lease, "CPU");
        res_set_amount(&nm->available, "CPU", res_get(&nm->available, "CPU") + w->blocked_cpu);
    }
    tm_schedule(tm);
}

void tm_worker_unblocked(task_manager *tm, worker *w)
{
    node_manager *nm = tm->nm;
    if (!w->blocked)
        return;
    /* Take the CPU back even if that oversubscribes the node for a while:
     * the running task must go on. */
    res_set_amount(&nm->available, "CPU", res_get(&nm->available, "CPU") - w->blocked_cpu);
    w->blocked = false;
    w->blocked_cpu = 0;
}

/* Drop queued tasks of an owner that left (its results have nowhere to go). */
static void drop_owned(task_manager *tm, const worker_id_t *owner, uint32_t job_id, bool job_end)
{
    for (sclass *c = tm->classes; c; c = c->next) {
        for (rtask *t = c->head, *next; t; t = next) {
            next = t->next;
            if (memcmp(t->owner.b, owner->b, WORKER_ID_SIZE) == 0 ||
                (job_end && t->job_id == job_id)) {
                class_remove(c, t);
                task_free(tm, t);
            }
        }
    }
    for (rtask *t = tm->infeasible, *next; t; t = next) {
        next = t->next;
        if (memcmp(t->owner.b, owner->b, WORKER_ID_SIZE) == 0 || (job_end && t->job_id == job_id)) {
            infeasible_remove(tm, t);
            task_free(tm, t);
        }
    }
}

void tm_client_gone(task_manager *tm, client *cl)
{
    bool job_end = cl->role == RPC__ROLE__ROLE_DRIVER && cl->job_id != 0;
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
    wpool_kill_job(tm->nm->pool, job_id);
    jt_remove(tm->jobs, job_id);
}

/* ------------------------------------------------------------ multi-node */

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
    client *cl = nm_client_by_worker(tm->nm, &owner);
    if (cl)
        conn_send(cl->c, MSG_TASK_DONE, &m->base);
}

void tm_view_changed(task_manager *tm, bool nodes_changed)
{
    rebuild_view(tm);
    if (nodes_changed) {
        /* A new node may have what an infeasible task needs. */
        for (rtask *t = tm->infeasible, *next; t; t = next) {
            next = t->next;
            if (t->no_forward)
                continue;
            infeasible_remove(tm, t);
            t->state = T_READY;
            int where = place(tm, t, false);
            if (where == SCHED_FORWARD)
                continue;
            if ((where == SCHED_WAIT || where == SCHED_RUN_LOCAL) && !t->deps_ready &&
                has_ref_args(t)) {
                t->no_forward = true;
                start_deps(tm, t); /* runs here: fetch its arguments first */
                continue;
            }
            make_ready(tm, t); /* back to infeasible, failed, or queued here */
        }
    }
    tm_schedule(tm);
}

void tm_node_died(task_manager *tm, const node_id_t *node)
{
    for (size_t i = 0; i < tm->nbuckets; i++) {
        for (rtask *t = tm->buckets[i], *next; t; t = next) {
            next = t->hnext;
            if (t->state != T_FORWARDED || memcmp(t->fwd_node.b, node->b, NODE_ID_SIZE) != 0)
                continue;
            tm->n_forwarded--;
            char hex[ID_HEX_MAX];
            report(tm, t, RAYC_EWORKER_DIED, "%s: node %.12s died before it finished",
                   t->msg->spec->function, id_hex(node->b, NODE_ID_SIZE, hex));
            task_free(tm, t);
        }
    }
    rebuild_view(tm);
    tm_schedule(tm);
}

bool tm_wants_view(const task_manager *tm)
{
    if (tm->sv.n <= 1)
        return false;
    for (sclass *c = tm->classes; c; c = c->next)
        if (c->head)
            return true;
    return tm->infeasible != NULL;
}

bool tm_job_driver_node(task_manager *tm, uint32_t job_id, node_id_t *node)
{
    return jt_driver_node(tm->jobs, job_id, node);
}

void tm_job_config(task_manager *tm, client *driver, Rpc__JobConfig *m)
{
    driver->job_id = m->job_id;
    jt_config(tm->jobs, m->job_id, m->code_hashes, m->n_code_hashes, m->env, m->n_env);
}

uint64_t tm_pending(const task_manager *tm)
{
    return tm->ntasks;
}

uint64_t tm_infeasible(const task_manager *tm)
{
    return tm->n_infeasible;
}

/* A job's code became ready (or failed): its waiting tasks can move. */
static void on_job_change(void *arg)
{
    tm_schedule(arg);
}

task_manager *tm_new(node_manager *nm)
{
    task_manager *tm = calloc(1, sizeof(*tm));
    if (tm == NULL)
        return NULL;
    tm->nm = nm;
    tm->nbuckets = TASK_BUCKETS;
    tm->buckets = calloc(tm->nbuckets, sizeof(*tm->buckets));
    if (tm->buckets == NULL) {
        free(tm);
        return NULL;
    }
    tm->jobs = jt_new(nm, on_job_change, tm);
    if (tm->jobs == NULL) {
        free(tm->buckets);
        free(tm);
        return NULL;
    }
    tm->in_flight = nm->cfg->max_tasks_in_flight_per_worker > 0
                        ? (int)nm->cfg->max_tasks_in_flight_per_worker
                        : 1;
    return tm;
}

void tm_free(task_manager *tm)
{
    if (tm == NULL)
        return;
    for (size_t i = 0; i < tm->nbuckets; i++) {
        for (rtask *t = tm->buckets[i], *next; t; t = next) {
            next = t->hnext;
            msg_free(&t->msg->base);
            free(t);
        }
    }
    free(tm->buckets);
    free(tm->snodes);
    for (sclass *c = tm->classes, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    jt_free(tm->jobs);
    free(tm);
}
