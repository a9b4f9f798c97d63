/*
 * actor_host.c -- actors and placement-group bundles on this node (Ray's
 * raylet side of actors): the GCS asks for an actor (CreateActor), its
 * creation task runs here in a solo class, and the worker that ran it
 * belongs to the actor until it dies; bundles are resource pools of the
 * lease manager, reserved in two phases (Prepare/Commit, Return). See
 * task_manager.h (tm_create_actor, tm_kill_actor, tm_pg_message). Runs in
 * the raylet's loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "rayc.h"
#include "task_manager_internal.h"

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
void tm__actor_creation_failed(task_manager *tm, rtask *t, const Rpc__Status *st)
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
void tm__actor_creation_done(task_manager *tm, rtask *t, worker *w, Rpc__TaskDone *m)
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
        lease_dedicated(tm->lm, w);
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
    tm__free_task(tm, t);
    tm_schedule(tm);
}

void tm__actor_worker_died(task_manager *tm, worker *w)
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
    rtask *t = tm__new_task(tm, m, &bad);
    if (t == NULL) {
        actor_forget(tm, r);
        send_created(tm, a->actor_id.data, NULL, RAYC_EINVAL, bad ? bad : "duplicate", NULL);
        return;
    }
    t->actor_creation = true;
    t->actor_rec = r;
    /* Ray's default actor: 1 CPU (its demand) to be placed, none held, not
     * even while its constructor runs (lease.c grant). */
    t->place_only = r->held.n == 0 && !r->in_pg;
    t->no_forward = true; /* the GCS chose this node */
    t->remote_owner = true;
    jt_learn(tm->d.jobs, m->spec->job_id);
    tm__submit_common(tm, t);
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
