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
#include "rayc.h"
#include "sched.h"
#include "worker_pool.h"

#define TASK_BUCKETS 4096 /* grows by doubling */

enum { T_WAITING_DEPS, T_READY, T_DISPATCHED, T_INFEASIBLE };

typedef struct sclass sclass;

typedef struct rtask {
    task_id_t id;
    Rpc__SubmitTask *msg; /* owned; msg->spec is the spec */
    res_set demand;
    worker_id_t owner;
    uint32_t job_id;
    int state;
    bool cancelled; /* cancelled while waiting for deps or while running */
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

enum { JOB_FETCHING, JOB_READY, JOB_FAILED };

typedef struct rjob {
    uint32_t job_id;
    int state;
    char **hashes;
    size_t nhashes;
    char **env;
    size_t nenv;
    char **paths; /* cached libraries, once fetched */
    size_t fetched;
    char error[256];
    struct rjob *next;
} rjob;

struct task_manager {
    node_manager *nm;
    rtask **buckets;
    size_t nbuckets, ntasks;
    sclass *classes;
    rtask *infeasible; /* doubly linked through next/prev */
    uint64_t n_infeasible;
    rjob *jobs;
    char code_dir[1100];
    int in_flight; /* max tasks pipelined to one worker */
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
static void report(task_manager *tm, rtask *t, int status, const char *fmt, ...)
{
    client *owner = nm_client_by_worker(tm->nm, &t->owner);
    if (owner == NULL)
        return;
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
    conn_send(owner->c, MSG_TASK_DONE, &done.base);
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

/* ------------------------------------------------------------ jobs and code */

static rjob *job_find(task_manager *tm, uint32_t job_id)
{
    for (rjob *j = tm->jobs; j; j = j->next)
        if (j->job_id == job_id)
            return j;
    return NULL;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void job_free(rjob *j)
{
    free_strv(j->hashes, j->nhashes);
    free_strv(j->env, j->nenv);
    free_strv(j->paths, j->nhashes);
    free(j);
}

static char **copy_strv(char **src, size_t n)
{
    char **v = calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; v && i < n; i++)
        if ((v[i] = strdup(src[i])) == NULL) {
            free_strv(v, i);
            return NULL;
        }
    return v;
}

/* A content hash names a file: only hex is acceptable. */
static bool valid_hash(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

struct fetch {
    task_manager *tm;
    uint32_t job_id;
    size_t index;
};

static void job_failed(task_manager *tm, rjob *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_failed(task_manager *tm, rjob *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->error, sizeof(j->error), fmt, ap);
    va_end(ap);
    j->state = JOB_FAILED;
    log_error("job %u: %s", j->job_id, j->error);
    tm_schedule(tm);
}

static void code_fetched(task_manager *tm, rjob *j)
{
    if (++j->fetched == j->nhashes) {
        j->state = JOB_READY;
        log_info("job %u: %zu code package(s) ready", j->job_id, j->nhashes);
        tm_schedule(tm);
    }
}

static void on_code_reply(node_manager *nm, void *arg, ProtobufCMessage *reply)
{
    (void)nm;
    struct fetch *f = arg;
    task_manager *tm = f->tm;
    rjob *j = job_find(tm, f->job_id);
    size_t i = f->index;
    free(f);
    if (j == NULL || j->state != JOB_FETCHING)
        return;
    Rpc__KvGetReply *r = (Rpc__KvGetReply *)reply;
    if (r == NULL) {
        job_failed(tm, j, "lost the GCS while fetching code package %s", j->hashes[i]);
        return;
    }
    if (r->status && r->status->code != 0) {
        job_failed(tm, j, "code package %s is not in the GCS: %s", j->hashes[i],
                   r->status->message);
        return;
    }
    if (write_file(j->paths[i], r->value.data, r->value.len, 0700) != 0) {
        job_failed(tm, j, "cannot cache code package at %s: %s", j->paths[i], strerror(errno));
        return;
    }
    code_fetched(tm, j);
}

void tm_job_config(task_manager *tm, client *driver, Rpc__JobConfig *m)
{
    driver->job_id = m->job_id;
    rjob *j = job_find(tm, m->job_id);
    if (j != NULL)
        return; /* a second driver connection of the same job */
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    j->job_id = m->job_id;
    j->nhashes = m->n_code_hashes;
    j->hashes = copy_strv(m->code_hashes, m->n_code_hashes);
    j->nenv = m->n_env;
    j->env = copy_strv(m->env, m->n_env);
    j->paths = calloc(j->nhashes ? j->nhashes : 1, sizeof(char *));
    j->next = tm->jobs;
    tm->jobs = j;
    j->state = JOB_FETCHING;
    if (!j->hashes || !j->env || !j->paths) {
        job_failed(tm, j, "out of memory");
        return;
    }
    mkdir_p(tm->code_dir, 0700);
    for (size_t i = 0; i < j->nhashes; i++) {
        char path[1400];
        if (!valid_hash(j->hashes[i])) {
            job_failed(tm, j, "bad code package name '%s'", j->hashes[i]);
            return;
        }
        snprintf(path, sizeof(path), "%s/%s.so", tm->code_dir, j->hashes[i]);
        j->paths[i] = strdup(path);
    }
    if (j->nhashes == 0) {
        j->state = JOB_READY;
        return;
    }
    for (size_t i = 0; i < j->nhashes; i++) {
        if (access(j->paths[i], R_OK) == 0) { /* cached on this node already */
            code_fetched(tm, j);
            continue;
        }
        struct fetch *f = malloc(sizeof(*f));
        Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
        req.ns = "code";
        req.key.data = (uint8_t *)j->hashes[i];
        req.key.len = strlen(j->hashes[i]);
        if (f == NULL) {
            job_failed(tm, j, "out of memory");
            return;
        }
        *f = (struct fetch){tm, j->job_id, i};
        if (nm_gcs_call(tm->nm, MSG_KV_GET_REQ, &req.base, on_code_reply, f) != 0) {
            free(f);
            job_failed(tm, j, "no GCS connection to fetch code package %s", j->hashes[i]);
            return;
        }
    }
}

static void send_bind(task_manager *tm, worker *w, rjob *j)
{
    (void)tm;
    Rpc__BindJob b = RPC__BIND_JOB__INIT;
    b.job_id = j->job_id;
    b.n_code_paths = j->nhashes;
    b.code_paths = j->paths;
    b.n_env = j->nenv;
    b.env = j->env;
    conn_send(w->cl->c, MSG_BIND_JOB, &b.base);
    w->job_id = j->job_id;
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
    rjob *j = job_find(tm, c->job_id);
    if (j == NULL || j->state == JOB_FETCHING)
        return 0;
    if (j->state == JOB_FAILED) {
        while (c->head) {
            rtask *t = c->head;
            class_remove(c, t);
            report(tm, t, RAYC_ENOTFOUND, "%s: job code unavailable: %s",
                   t->msg->spec->function, j->error);
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
                if (idle->job_id == 0)
                    send_bind(tm, idle, j);
                sched_acquire(&nm->available, &c->demand);
                idle->lease = c->demand;
                idle->state = W_LEASED;
                w = idle;
            } else if (w == NULL) {
                /* Resources free but no idle worker: ask for one per task
                 * that could start now. */
                return sched_fits(&nm->available, &c->demand) ? (int)c->count : 0;
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

static void make_ready(task_manager *tm, rtask *t)
{
    node_manager *nm = tm->nm;
    if (!sched_feasible(&nm->total, &t->demand)) {
        t->state = T_INFEASIBLE;
        t->prev = NULL;
        t->next = tm->infeasible;
        if (tm->infeasible)
            tm->infeasible->prev = t;
        tm->infeasible = t;
        tm->n_infeasible++;
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

static void on_deps_ready(void *arg, uint64_t tag, int status, const bool *ready, size_t n)
{
    (void)ready;
    (void)n;
    task_manager *tm = arg;
    rtask *t = (rtask *)(uintptr_t)tag;
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

void tm_submit(task_manager *tm, client *owner, Rpc__SubmitTask *m)
{
    node_manager *nm = tm->nm;
    Rpc__TaskSpec *s = m->spec;
    rtask *t = NULL;
    char err[256] = "";
    if (s == NULL || s->task_id.len != TASK_ID_SIZE || s->function == NULL ||
        s->function[0] == '\0' || s->owner_id.len != WORKER_ID_SIZE || s->num_returns == 0 ||
        s->num_returns > 10000) {
        log_warn("closing %s: malformed task spec", conn_peer(owner->c));
        msg_free(&m->base);
        conn_close(owner->c);
        return;
    }
    if (task_find(tm, s->task_id.data, TASK_ID_SIZE)) {
        log_warn("task submitted twice; ignoring the second copy");
        msg_free(&m->base);
        return;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        msg_free(&m->base);
        return;
    }
    t->msg = m;
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
    } else if (nrefs > 0) {
        t->state = T_WAITING_DEPS;
        plasma_wait(nm->store, nm->self_pc, ids, nrefs, nrefs, -1, on_deps_ready, tm,
                    (uint64_t)(uintptr_t)t);
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
    client *owner = nm_client_by_worker(nm, &t->owner);
    for (size_t i = 0; i < m->n_returns; i++) {
        Rpc__TaskReturn *r = m->returns[i];
        if (!r->in_store || r->object_id.len != OBJECT_ID_SIZE)
            continue;
        object_id_t oid;
        memcpy(oid.b, r->object_id.data, OBJECT_ID_SIZE);
        if (owner && owner->pc)
            plasma_set_owner(nm->store, &oid, owner->pc);
        else
            plasma_delete(nm->store, &oid);
    }
    if (owner) {
        /* Stamp where store returns live. The field belongs to the unpacked
         * message (freed with it), so lend it our bytes only while packing. */
        ProtobufCBinaryData sent_node = m->node_id;
        m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, nm->node_id.b};
        m->attempt = t->msg->spec->attempt;
        conn_send(owner->c, MSG_TASK_DONE, &m->base);
        m->node_id = sent_node;
    }
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
        class_remove(t->cls, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        task_free(tm, t);
        break;
    case T_INFEASIBLE:
        infeasible_remove(tm, t);
        report(tm, t, RAYC_ECANCELLED, "%s: cancelled", t->msg->spec->function);
        task_free(tm, t);
        break;
    case T_DISPATCHED:
        if (m->force) {
            t->cancelled = true;
            wpool_kill(tm->nm->pool, t->w);
        }
        break;
    }
}

void tm_worker_blocked(task_manager *tm, worker *w, Rpc__WorkerBlocked *m)
{
    node_manager *nm = tm->nm;
    if (w->state != W_LEASED || w->blocked)
        return;
    /* Hand back what it has not started, to run on other workers. */
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
    w->blocked = true;
    w->blocked_cpu = res_get(&w->lease, "CPU");
    res_set_amount(&nm->available, "CPU", res_get(&nm->available, "CPU") + w->blocked_cpu);
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
        if (memcmp(t->owner.b, owner->b, WORKER_ID_SIZE) == 0 ||
            (job_end && t->job_id == job_id)) {
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
    /* The driver is gone: its job ends, and so do the job's workers. */
    wpool_kill_job(tm->nm->pool, cl->job_id);
    for (rjob **pp = &tm->jobs; *pp; pp = &(*pp)->next) {
        if ((*pp)->job_id == cl->job_id) {
            rjob *j = *pp;
            *pp = j->next;
            job_free(j);
            break;
        }
    }
}

uint64_t tm_pending(const task_manager *tm)
{
    return tm->ntasks;
}

uint64_t tm_infeasible(const task_manager *tm)
{
    return tm->n_infeasible;
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
    snprintf(tm->code_dir, sizeof(tm->code_dir), "%s/code", nm->cfg->session_dir);
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
    for (sclass *c = tm->classes, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    for (rjob *j = tm->jobs, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    free(tm);
}
