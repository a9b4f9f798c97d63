/*
 * lease.c -- resource accounting, class queues and worker leases; see
 * lease.h. Runs in the raylet's loop thread.
 */
#include "lease.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_table.h"
#include "rayc.h"
#include "sched_policy.h"

#define LEASE_STEAL_AFTER_MS 100 /* a head running this long may be long: never queue behind it */

/* A scheduling class: the ready tasks of one job with one demand, in order. */
/* A placement-group bundle reserved on this node: its own resources, taken
 * out of the node's when it was prepared. Tasks of the bundle lease from
 * it instead of from the node. */
typedef struct lease_pool {
    uint8_t pg[PG_ID_SIZE];
    uint32_t index;
    res_set total, available;
    bool committed; /* prepared only: not usable yet */
    struct lease_pool *next;
} lease_pool;

typedef struct sclass {
    uint32_t job_id;
    bool solo;        /* actor creations, generators: one task per lease, no pipelining */
    bool place_only;  /* creations of actors that hold nothing: demand checked, not held */
    lease_pool *pool; /* NULL: the node's resources */
    res_set demand;
    rtask *head, *tail;
    size_t count;
    struct sclass *next;
} sclass;

/* The lease state of one worker, from its first lease until it dies. */
typedef struct lease {
    worker *w;
    bool active;      /* holds a lease now */
    bool solo;        /* granted to a solo class (an actor's creation, a generator) */
    lease_pool *pool; /* the bundle it holds resources of (NULL: the node) */
    res_set held;     /* resources the lease holds */
    bool blocked;     /* its running task waits in get/wait; CPU given back */
    double blocked_cpu;
    int depth;           /* tasks pushed and not done */
    rtask *head, *tail;  /* pushed tasks, in order */
    uint64_t head_since; /* when the head task (the one running) became the head */
    bool steal_asked;    /* its worker was asked to give back queued tasks */
    char oom[320];       /* set when the memory monitor kills the worker: its tasks' error */
    struct lease *prev, *next;
} lease;

struct lease_mgr {
    lease_env env;
    res_set total, available;
    int in_flight;
    sclass *classes;
    lease_pool *pools;
    size_t queued;
    res_set queued_demand; /* what the queued tasks outside bundles will take */
    lease *leases;         /* every worker leased at least once and alive */
};

/* Where a class's leases take resources from. */
static res_set *avail_of(lease_mgr *lm, lease_pool *pool)
{
    return pool ? &pool->available : &lm->available;
}

/* ---------------------------------------------------------------- class queues */

static sclass *class_for(lease_mgr *lm, const rtask *t, lease_pool *pool)
{
    bool solo = task_solo(t), place_only = t->place_only && pool == NULL;
    sclass **tail = &lm->classes;
    for (sclass *c = lm->classes; c; c = c->next) {
        if (c->job_id == t->job_id && c->solo == solo && c->place_only == place_only &&
            c->pool == pool && res_equal(&c->demand, t->demand))
            return c;
        tail = &c->next;
    }
    sclass *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    const res_set *demand = t->demand;
    c->job_id = t->job_id;
    c->solo = solo;
    c->place_only = place_only;
    c->pool = pool;
    c->demand = *demand;
    /* Last: classes are served oldest first, so a job that keeps asking
     * (an owner giving a lease back and asking again) queues behind the
     * jobs that already wait. */
    *tail = c;
    return c;
}

/* Add (sign 1) or take away (-1) a queued task's demand in queued_demand;
 * bundle classes use their own pools, not the node's resources, and actor
 * creations that hold nothing will take nothing. */
static void count_queued(lease_mgr *lm, const sclass *c, double sign)
{
    if (c->pool != NULL || c->place_only)
        return;
    if (sign < 0 && lm->queued == 0) {
        lm->queued_demand.n = 0; /* empty again: no rounding drift carried on */
        return;
    }
    for (int i = 0; i < c->demand.n; i++) {
        const char *name = c->demand.name[i];
        res_set_amount(&lm->queued_demand, name,
                       res_get(&lm->queued_demand, name) + sign * c->demand.amount[i]);
    }
}

static void class_push(lease_mgr *lm, sclass *c, rtask *t, bool front)
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
    lm->queued++;
    count_queued(lm, c, 1);
}

static void class_remove(lease_mgr *lm, sclass *c, rtask *t)
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
    t->cls = NULL;
    c->count--;
    lm->queued--;
    count_queued(lm, c, -1);
}

/* The committed bundle of group pg on this node a task of bundle index
 * (-1: any that could ever fit demand) runs in, or NULL. */
static lease_pool *pool_for(lease_mgr *lm, const uint8_t *pg, int index, const res_set *demand)
{
    for (lease_pool *p = lm->pools; p; p = p->next)
        if (p->committed && memcmp(p->pg, pg, PG_ID_SIZE) == 0 &&
            (index < 0 ? sched_fits(&p->total, demand) : p->index == (uint32_t)index))
            return p;
    return NULL;
}

static lease_pool *pool_find(lease_mgr *lm, const uint8_t *pg, uint32_t index, lease_pool ***pp)
{
    for (lease_pool **it = &lm->pools; *it; it = &(*it)->next) {
        if (memcmp((*it)->pg, pg, PG_ID_SIZE) == 0 && (*it)->index == index) {
            if (pp)
                *pp = it;
            return *it;
        }
    }
    return NULL;
}

int lease_pool_prepare(lease_mgr *lm, const uint8_t *pg, uint32_t index, const res_set *r)
{
    if (pool_find(lm, pg, index, NULL))
        return 0; /* asked again (a GCS retry): already held */
    if (!sched_fits(&lm->available, r))
        return RAYC_EBUSY;
    lease_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return RAYC_ENOMEM;
    memcpy(p->pg, pg, PG_ID_SIZE);
    p->index = index;
    p->total = p->available = *r;
    sched_acquire(&lm->available, r);
    p->next = lm->pools;
    lm->pools = p;
    return 0;
}

int lease_pool_hold(lease_mgr *lm, const uint8_t *pg, int index, const res_set *r, uint32_t *used)
{
    for (lease_pool *p = lm->pools; p; p = p->next) {
        if (!p->committed || memcmp(p->pg, pg, PG_ID_SIZE) != 0 ||
            (index >= 0 && p->index != (uint32_t)index) ||
            (index < 0 && !sched_fits(&p->available, r)))
            continue;
        sched_acquire(&p->available, r);
        *used = p->index;
        return 0;
    }
    return RAYC_ENOTFOUND;
}

void lease_pool_unhold(lease_mgr *lm, const uint8_t *pg, uint32_t index, const res_set *r)
{
    lease_pool *p = pool_find(lm, pg, index, NULL);
    if (p)
        sched_release(&p->available, &p->total, r);
}

void lease_pool_commit(lease_mgr *lm, const uint8_t *pg, uint32_t index)
{
    lease_pool *p = pool_find(lm, pg, index, NULL);
    if (p)
        p->committed = true;
}

static void fail_pool_class(lease_mgr *lm, sclass *c)
{
    while (c->head) {
        rtask *t = c->head;
        class_remove(lm, c, t);
        char msg[300];
        snprintf(msg, sizeof(msg), "%s: its placement group bundle was removed",
                 t->msg->spec->function);
        lm->env.fail(lm->env.ctx, t, RAYC_ECANCELLED, msg);
    }
}

void lease_pool_return(lease_mgr *lm, const uint8_t *pg, uint32_t index)
{
    lease_pool **pp;
    lease_pool *p = pool_find(lm, pg, index, &pp);
    if (p == NULL)
        return;
    /* Queued tasks of the bundle fail; workers running in it are killed
     * (their tasks fail when they die); the resources go back to the node. */
    for (sclass *c = lm->classes; c; c = c->next)
        if (c->pool == p) {
            fail_pool_class(lm, c);
            c->pool = NULL; /* empty now: dropped at the next schedule */
            c->job_id = UINT32_MAX;
        }
    for (lease *l = lm->leases; l; l = l->next) {
        if (l->pool != p)
            continue;
        l->pool = NULL;
        if (l->active) {
            /* Its held resources were the bundle's: nothing returns to the node
             * when this lease ends. */
            memset(&l->held, 0, sizeof(l->held));
            l->blocked_cpu = 0;
            lm->env.kill(lm->env.ctx, l->w);
        }
    }
    sched_release(&lm->available, &lm->total, &p->total);
    *pp = p->next;
    free(p);
}

int lease_enqueue(lease_mgr *lm, rtask *t, bool front)
{
    /* A task of a placement group runs on its bundle's resources. */
    lease_pool *pool = NULL;
    const Rpc__TaskSpec *s = t->msg->spec;
    if (s->pg_id.len == PG_ID_SIZE) {
        pool = pool_for(lm, s->pg_id.data, s->bundle_index, t->demand);
        if (pool == NULL)
            return RAYC_ENOTFOUND;
    }
    /* An actor's creation gets a worker of its own: the worker is the
     * actor's afterwards, so nothing may queue behind it. Nor behind a
     * generator, which may run (or wait for its consumer) for long. */
    sclass *c = class_for(lm, t, pool);
    if (c == NULL)
        return RAYC_ENOMEM;
    t->state = T_READY;
    class_push(lm, c, t, front);
    return 0;
}

void lease_dequeue(lease_mgr *lm, rtask *t)
{
    if (t->cls)
        class_remove(lm, t->cls, t);
}

void lease_dequeue_if(lease_mgr *lm, bool (*match)(void *arg, const rtask *t),
                      void (*drop)(void *arg, rtask *t), void *arg)
{
    for (sclass *c = lm->classes; c; c = c->next) {
        for (rtask *t = c->head, *next; t; t = next) {
            next = t->next;
            if (!match(arg, t))
                continue;
            class_remove(lm, c, t);
            drop(arg, t);
        }
    }
}

size_t lease_queued(const lease_mgr *lm)
{
    return lm->queued;
}

/* ---------------------------------------------------------------- leases */

static lease *lease_of(const worker *w)
{
    return w->lease;
}

/* The worker's lease record, made at its first lease (kept until it dies,
 * so leases cost no allocation after that). NULL when out of memory. */
static lease *record_for(lease_mgr *lm, worker *w)
{
    if (w->lease)
        return w->lease;
    lease *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->w = w;
    l->next = lm->leases;
    if (lm->leases)
        lm->leases->prev = l;
    lm->leases = l;
    w->lease = l;
    return l;
}

/* Forget a worker's lease record (it died, or holds an actor for life):
 * the scans of dispatch (leased_with_room, steal_queued) skip no record
 * per actor this way. */
static void record_drop(lease_mgr *lm, lease *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        lm->leases = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->w->lease = NULL;
    free(l);
}

static void pipeline_push(lease *l, rtask *t)
{
    t->state = T_DISPATCHED;
    t->w = l->w;
    t->next = NULL;
    t->prev = l->tail;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t, l->head_since = now_ms();
    l->tail = t;
    l->depth++;
}

static void pipeline_remove(lease *l, rtask *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next, l->head_since = now_ms(), l->steal_asked = false;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    t->prev = t->next = NULL;
    l->depth--;
}

/* The lease ends: its resources (less the CPU a blocked task gave back
 * already) return to the node and the worker is idle. */
static void lease_end(lease_mgr *lm, lease *l)
{
    if (!l->active)
        return;
    res_set give = l->held;
    if (l->blocked)
        res_set_amount(&give, "CPU", res_get(&give, "CPU") - l->blocked_cpu);
    sched_release(avail_of(lm, l->pool), l->pool ? &l->pool->total : &lm->total, &give);
    if (l->blocked)
        lm->env.set_blocked(lm->env.ctx, l->w, false);
    l->blocked = false;
    l->blocked_cpu = 0;
    memset(&l->held, 0, sizeof(l->held));
    l->active = false;
    lm->env.set_leased(lm->env.ctx, l->w, false);
}

/* Grant a new lease for class c to an idle worker, if resources and a
 * worker allow. Returns the leased worker's record or NULL. The creation
 * of an actor that holds nothing (place_only) needs its demand free, as
 * Ray's placement resources, but its lease holds none of it: Ray's default
 * actor needs 1 CPU to be placed and 0 to run, its constructor included,
 * so a node creates many at once, each bound only by its worker's start. */
static lease *grant(lease_mgr *lm, sclass *c)
{
    if (!sched_fits(avail_of(lm, c->pool), &c->demand))
        return NULL;
    worker *w = lm->env.idle_worker(lm->env.ctx, c->job_id);
    if (w == NULL)
        return NULL;
    lease *l = record_for(lm, w);
    if (l == NULL)
        return NULL;
    if (w->job_id == 0)
        lm->env.bind(lm->env.ctx, w, c->job_id);
    if (c->place_only) {
        memset(&l->held, 0, sizeof(l->held));
    } else {
        sched_acquire(avail_of(lm, c->pool), &c->demand);
        l->held = c->demand;
    }
    l->solo = c->solo;
    l->pool = c->pool;
    l->active = true;
    lm->env.set_leased(lm->env.ctx, w, true);
    return l;
}

/* A leased worker of this class with room in its pipeline (the shallowest). */
static lease *leased_with_room(lease_mgr *lm, const sclass *c)
{
    lease *best = NULL;
    if (c->solo)
        return NULL;
    uint64_t now = now_ms();
    for (lease *l = lm->leases; l; l = l->next) {
        /* Never queue behind a task that has run for a while: it may be
         * long, and the task would wait though a CPU frees up elsewhere. */
        if (l->depth > 0 && now - l->head_since >= LEASE_STEAL_AFTER_MS)
            continue;
        if (!l->active || l->blocked || l->w->exiting || l->w->job_id != c->job_id || l->solo ||
            l->pool != c->pool || l->depth >= lm->in_flight || !res_equal(&l->held, &c->demand))
            continue;
        if (best == NULL || l->depth < best->depth)
            best = l;
    }
    return best;
}

/* ---------------------------------------------------------------- dispatch */

/* The job's code could not be had: every task of the class fails. */
static void fail_class(lease_mgr *lm, sclass *c, const char *job_error)
{
    while (c->head) {
        rtask *t = c->head;
        class_remove(lm, c, t);
        char msg[512];
        snprintf(msg, sizeof(msg), "%s: job code unavailable: %s", t->msg->spec->function,
                 job_error);
        lm->env.fail(lm->env.ctx, t, RAYC_ENOTFOUND, msg);
    }
}

/* Dispatch from one class queue while workers and resources allow.
 * Returns how many workers the class still wants started. */
static int schedule_class(lease_mgr *lm, sclass *c)
{
    const char *job_error = "";
    int job_state = lm->env.job_state(lm->env.ctx, c->job_id, &job_error);
    if (job_state < 0 || job_state == JOB_FETCHING)
        return 0;
    /* A job that ended before its task got here: the task has nowhere to
     * report (a detached actor's creation, solo, outlives its job). */
    if (job_state == JOB_FAILED || (job_state == JOB_ENDED && !c->solo)) {
        fail_class(lm, c, job_error);
        return 0;
    }
    while (c->head) {
        lease *l = leased_with_room(lm, c);
        if (l == NULL || l->depth > 0) {
            /* Prefer a new lease (parallelism) over deepening a pipeline. */
            lease *fresh = grant(lm, c);
            if (fresh) {
                l = fresh;
            } else if (l != NULL && sched_fits(avail_of(lm, c->pool), &c->demand)) {
                /* Resources are free but no worker is idle: start one rather
                 * than queue behind a task that may run for long. Pipelines
                 * only deepen when the node has no room for another lease. */
                return (int)c->count;
            } else if (l == NULL) {
                if (sched_fits(avail_of(lm, c->pool), &c->demand)) {
                    /* Resources free but no idle worker: ask for one per
                     * task that could start now. */
                    return (int)c->count;
                }
                /* Busy here: another node may have room (spillback). */
                rtask *t = c->head;
                class_remove(lm, c, t);
                if (lm->env.spill(lm->env.ctx, t))
                    continue;
                class_push(lm, c, t, true);
                return 0;
            }
        }
        rtask *t = c->head;
        class_remove(lm, c, t);
        lm->env.push(lm->env.ctx, l->w, t);
        pipeline_push(l, t);
    }
    return 0;
}

/* Room for another lease of the same demand while a worker holds tasks
 * queued behind a task running for a while: ask that worker to give them
 * back, so they run on a new lease (no head-of-line blocking behind a long
 * task). Not for solo leases (actor creations). */
static void steal_queued(lease_mgr *lm)
{
    uint64_t now = now_ms();
    for (lease *l = lm->leases; l; l = l->next) {
        if (!l->active || l->solo || l->steal_asked || l->depth < 2 ||
            now - l->head_since < LEASE_STEAL_AFTER_MS ||
            !sched_fits(avail_of(lm, l->pool), &l->held))
            continue;
        l->steal_asked = true;
        lm->env.steal(lm->env.ctx, l->w, l->depth - 1);
    }
}

void lease_hold(lease_mgr *lm, const res_set *r)
{
    sched_acquire(&lm->available, r);
}

void lease_unhold(lease_mgr *lm, const res_set *r)
{
    sched_release(&lm->available, &lm->total, r);
}

void lease_schedule(lease_mgr *lm)
{
    int want = 0;
    for (sclass **pp = &lm->classes; *pp;) {
        sclass *c = *pp;
        want += schedule_class(lm, c);
        if (c->head == NULL) { /* drop empty classes: they are cheap to remake */
            *pp = c->next;
            free(c);
            continue;
        }
        pp = &c->next;
    }
    if (lm->env.steal)
        steal_queued(lm);
    if (want > 0)
        lm->env.want_workers(lm->env.ctx, want);
}

/* ---------------------------------------------------------------- worker events */

bool lease_held(const lease_mgr *lm, const worker *w)
{
    (void)lm;
    const lease *l = lease_of(w);
    return l != NULL && l->active;
}

void lease_task_done(lease_mgr *lm, rtask *t)
{
    lease *l = lease_of(t->w);
    pipeline_remove(l, t);
    t->w = NULL;
    if (l->depth == 0)
        lease_end(lm, l);
}

void lease_take_back(lease_mgr *lm, rtask *t)
{
    lease *l = lease_of(t->w);
    sclass *c = class_for(lm, t, l->pool);
    if (c == NULL)
        return;             /* out of memory: it stays with the worker */
    l->steal_asked = false; /* what comes back may be stolen again later */
    pipeline_remove(l, t);
    t->w = NULL;
    t->state = T_READY;
    class_push(lm, c, t, true);
}

void lease_worker_blocked(lease_mgr *lm, worker *w)
{
    lease *l = lease_of(w);
    if (l == NULL || !l->active || l->blocked)
        return;
    l->blocked = true;
    l->blocked_cpu = res_get(&l->held, "CPU");
    res_set *avail = avail_of(lm, l->pool);
    res_set_amount(avail, "CPU", res_get(avail, "CPU") + l->blocked_cpu);
    lm->env.set_blocked(lm->env.ctx, w, true);
}

void lease_worker_unblocked(lease_mgr *lm, worker *w)
{
    lease *l = lease_of(w);
    if (l == NULL || !l->blocked)
        return;
    /* Take the CPU back even if that oversubscribes the node for a while:
     * the running task must go on. */
    res_set *avail = avail_of(lm, l->pool);
    res_set_amount(avail, "CPU", res_get(avail, "CPU") - l->blocked_cpu);
    l->blocked = false;
    l->blocked_cpu = 0;
    lm->env.set_blocked(lm->env.ctx, w, false);
}

void lease_worker_died(lease_mgr *lm, worker *w)
{
    lease *l = lease_of(w);
    if (l == NULL)
        return;
    while (l->head) {
        rtask *t = l->head;
        pipeline_remove(l, t);
        t->w = NULL;
        char msg[512];
        if (t->cancelled || t->cancel_asked) {
            snprintf(msg, sizeof(msg), "%s: cancelled", t->msg->spec->function);
            lm->env.fail(lm->env.ctx, t, RAYC_ECANCELLED, msg);
        } else if (l->oom[0]) {
            snprintf(msg, sizeof(msg), "%s: %s", t->msg->spec->function, l->oom);
            lm->env.fail(lm->env.ctx, t, RAYC_EOOM, msg);
        } else {
            char how[64];
            wpool_exit_text(w, how, sizeof(how));
            snprintf(msg, sizeof(msg), "%s: the worker running it (pid %d) died%s%s%s",
                     t->msg->spec->function, (int)w->pid, how[0] ? " (" : "", how,
                     how[0] ? ")" : "");
            lm->env.fail(lm->env.ctx, t, RAYC_EWORKER_DIED, msg);
        }
    }
    l->oom[0] = '\0';
    lease_end(lm, l);
    record_drop(lm, l);
}

void lease_dedicated(lease_mgr *lm, worker *w)
{
    lease *l = lease_of(w);
    if (l != NULL && !l->active && l->head == NULL)
        record_drop(lm, l);
}

/* ---------------------------------------------------------------- life cycle */

const res_set *lease_total(const lease_mgr *lm)
{
    return &lm->total;
}

const res_set *lease_available(const lease_mgr *lm)
{
    return &lm->available;
}

const res_set *lease_queued_demand(const lease_mgr *lm)
{
    return &lm->queued_demand;
}

lease_mgr *lease_new(const res_set *total, int in_flight, const lease_env *env)
{
    lease_mgr *lm = calloc(1, sizeof(*lm));
    if (lm == NULL)
        return NULL;
    lm->env = *env;
    lm->total = *total;
    lm->available = *total;
    lm->in_flight = in_flight > 0 ? in_flight : 1;
    return lm;
}

void lease_free(lease_mgr *lm)
{
    if (lm == NULL)
        return;
    for (sclass *c = lm->classes, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    for (lease *l = lm->leases, *next; l; l = next) {
        next = l->next;
        free(l); /* its worker may be gone already: not touched */
    }
    for (lease_pool *p = lm->pools, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    free(lm);
}

/* ---------------------------------------------------------------- memory monitor */

/* A stable key per owner (the worker id's first 8 bytes). */
static uint64_t owner_key(const worker_id_t *id)
{
    uint64_t k;
    memcpy(&k, id->b, sizeof(k));
    return k;
}

size_t lease_running(const lease_mgr *lm, mm_worker *out, worker **ws, size_t cap)
{
    size_t n = 0;
    for (const lease *l = lm->leases; l && n < cap; l = l->next) {
        const rtask *t = l->head;
        if (t == NULL || l->oom[0])
            continue; /* idle, or already being killed */
        const Rpc__TaskSpec *spec = t->msg->spec;
        out[n] = (mm_worker){
            .pid = (int)l->w->pid,
            .owner = owner_key(&t->owner),
            .started_ms = l->head_since,
            .retriable = spec->max_retries > 0, /* the owner sends the retries it has left */
        };
        ws[n++] = l->w;
    }
    return n;
}

void lease_mark_oom(lease_mgr *lm, worker *w, const char *why)
{
    (void)lm;
    lease *l = lease_of(w);
    if (l)
        snprintf(l->oom, sizeof(l->oom), "%s", why);
}
