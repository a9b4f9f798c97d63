/*
 * dependency_manager.c -- waiting for tasks' arguments; see
 * dependency_manager.h. Runs in the raylet's loop thread.
 *
 *   dm_wait --(several nodes, first time)--> pull absent ones --all ended-->
 *   seal wait --all sealed--> done
 *             --DM_RECHECK_MS, some missing--> re-check: pull again / log --> seal wait
 */
#include "dependency_manager.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rayc.h"

#define STACK_IDS 16 /* argument ids gathered without an allocation */
#define PIN_MAX   64 /* arguments of a task that can be pinned (bits of rtask.pinned) */

struct dependency_manager {
    plasma_store *store;
    plasma_client *pc; /* the waits and the pins */
    dm_env env;
    bool closing;
};

static void wait_sealed(dependency_manager *dm, rtask *t);

static const char *state_name(enum plasma_state st)
{
    switch (st) {
    case PLASMA_ABSENT:
        return "absent here";
    case PLASMA_CREATED:
        return "being written here";
    case PLASMA_SEALED:
        return "sealed here";
    case PLASMA_SPILLED:
        return "spilled here";
    }
    return "?";
}

/* The store argument arg of t, as an id. false if it is not one. */
static bool arg_id(const rtask *t, size_t i, object_id_t *id)
{
    const Rpc__TaskArg *a = t->msg->spec->args[i];
    if (!a->is_ref || a->object_id.len != OBJECT_ID_SIZE)
        return false;
    memcpy(id->b, a->object_id.data, OBJECT_ID_SIZE);
    return true;
}

static void pull_one(dependency_manager *dm, rtask *t, size_t i, const object_id_t *id);
static void on_pulled(void *arg, const object_id_t *id, int status, const char *msg);

/* ---------------------------------------------------------------- pins */

/* A pulled argument arrived: pin it for t (the first unpinned argument
 * with that id), so it is not evicted before t runs. */
static void pin_arrived(dependency_manager *dm, rtask *t, const object_id_t *id)
{
    Rpc__TaskSpec *s = t->msg->spec;
    for (size_t i = 0; i < s->n_args && i < PIN_MAX; i++) {
        object_id_t a;
        if (!arg_id(t, i, &a) || (t->pinned & (1ull << i)) ||
            memcmp(a.b, id->b, OBJECT_ID_SIZE) != 0)
            continue;
        plasma_view v;
        if (plasma_pin(dm->store, dm->pc, id, &v) == 0)
            t->pinned |= 1ull << i;
        return;
    }
}

void dm_release(dependency_manager *dm, rtask *t)
{
    for (size_t i = 0; t->pinned != 0 && i < PIN_MAX; i++) {
        object_id_t id;
        if (!(t->pinned & (1ull << i)))
            continue;
        t->pinned &= ~(1ull << i);
        if (arg_id(t, i, &id))
            plasma_release(dm->store, dm->pc, &id);
    }
}

/* ---------------------------------------------------------------- waits */

/* Some arguments are still missing after a seal wait: log why (now and
 * then) and pull the absent ones again when other nodes exist. Then wait
 * again (through on_pulled). */
static void recheck(dependency_manager *dm, rtask *t, const bool *ready, size_t n)
{
    Rpc__TaskSpec *s = t->msg->spec;
    bool multi = dm->env.multi_node(dm->env.ctx);
    t->rounds++;
    bool say = (t->rounds & (t->rounds - 1)) == 0; /* rounds 1, 2, 4, 8, ... */
    t->pulls = 1;                                  /* held while starting them */
    t->pull_status = RAYC_OK;
    size_t k = 0;
    for (size_t i = 0; i < s->n_args && k < n; i++) {
        object_id_t id;
        if (!arg_id(t, i, &id) || ready[k++])
            continue;
        enum plasma_state st = plasma_object_state(dm->store, &id, NULL);
        bool again = st == PLASMA_ABSENT && multi;
        if (say) {
            char hex[ID_HEX_MAX];
            log_warn("task %s waits %u s for argument %s: %s; %s", s->function,
                     (unsigned)t->rounds * DM_RECHECK_MS / 1000, id_hex(id.b, OBJECT_ID_SIZE, hex),
                     state_name(st),
                     again                 ? "pulling it again"
                     : st == PLASMA_ABSENT ? "no other node to pull it from"
                                           : "waiting for its seal");
        }
        if (again)
            pull_one(dm, t, i, &id);
    }
    on_pulled(t, NULL, RAYC_OK, NULL);
}

static bool all_ready(const bool *ready, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ready[i])
            return false;
    return true;
}

static void on_sealed(void *arg, uint64_t tag, int status, const bool *ready, size_t n)
{
    dependency_manager *dm = arg;
    rtask *t = (rtask *)(uintptr_t)tag;
    if (dm->closing)
        return;
    if (status == RAYC_ECANCELLED && !t->cancelled) {
        t->dm = NULL;
        dm->env.done(dm->env.ctx, t, RAYC_EOBJECT_LOST, "its arguments can no longer arrive");
        return;
    }
    if (status == RAYC_OK && !t->cancelled && ready != NULL && !all_ready(ready, n)) {
        recheck(dm, t, ready, n);
        return;
    }
    t->deps_ready = true;
    t->dm = NULL;
    dm->env.done(dm->env.ctx, t, RAYC_OK, NULL);
}

/* One pull ended; when the last one has, wait for the seals. */
static void on_pulled(void *arg, const object_id_t *id, int status, const char *msg)
{
    rtask *t = arg;
    dependency_manager *dm = t->dm;
    if (status == RAYC_OK && id != NULL)
        pin_arrived(dm, t, id);
    if (status != RAYC_OK && t->pull_status == RAYC_OK) {
        t->pull_status = status;
        log_warn("task %s: argument unavailable: %s", t->msg->spec->function, msg ? msg : "");
    }
    if (status != RAYC_OK && id != NULL && !t->remote_owner) {
        /* Tell the owner which object is gone: if it made it, it rebuilds
         * it from lineage before it retries this task. */
        dm->env.lost(dm->env.ctx, t, id, msg ? msg : "object lost");
    }
    if (--t->pulls > 0)
        return;
    if (t->cancelled) {
        t->dm = NULL;
        dm->env.done(dm->env.ctx, t, RAYC_OK, NULL);
        return;
    }
    if (t->pull_status != RAYC_OK) {
        t->dm = NULL;
        dm->env.done(dm->env.ctx, t, RAYC_EOBJECT_LOST, "an argument was lost");
        return;
    }
    t->deps_pulled = true;
    wait_sealed(dm, t);
}

static void pull_one(dependency_manager *dm, rtask *t, size_t i, const object_id_t *id)
{
    const Rpc__TaskArg *a = t->msg->spec->args[i];
    node_id_t hint;
    bool has_hint = a->node_id.len == NODE_ID_SIZE;
    if (has_hint)
        memcpy(hint.b, a->node_id.data, NODE_ID_SIZE);
    t->pulls++;
    dm->env.pull(dm->env.ctx, id, has_hint ? &hint : NULL, on_pulled, t);
}

/* Pull the arguments absent here; on_pulled follows for the last one. */
static void pull_absent(dependency_manager *dm, rtask *t)
{
    Rpc__TaskSpec *s = t->msg->spec;
    t->pulls = 1; /* held while starting them */
    t->pull_status = RAYC_OK;
    for (size_t i = 0; i < s->n_args; i++) {
        object_id_t id;
        if (arg_id(t, i, &id) && plasma_object_state(dm->store, &id, NULL) == PLASMA_ABSENT)
            pull_one(dm, t, i, &id);
    }
    on_pulled(t, NULL, RAYC_OK, NULL);
}

/* Ask the store to answer once every store argument is sealed here, or
 * after DM_RECHECK_MS with what is still missing. */
static void wait_sealed(dependency_manager *dm, rtask *t)
{
    Rpc__TaskSpec *s = t->msg->spec;
    object_id_t stack_ids[STACK_IDS] = {{{0}}}, *ids = stack_ids;
    if (s->n_args > STACK_IDS && (ids = malloc(s->n_args * sizeof(*ids))) == NULL) {
        t->dm = NULL;
        dm->env.done(dm->env.ctx, t, RAYC_ENOMEM, "raylet out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_args; i++)
        if (arg_id(t, i, &ids[n]))
            n++;
    plasma_wait(dm->store, dm->pc, ids, n, n, DM_RECHECK_MS, on_sealed, dm, (uint64_t)(uintptr_t)t);
    if (ids != stack_ids)
        free(ids);
}

void dm_wait(dependency_manager *dm, rtask *t)
{
    t->state = T_WAITING_DEPS;
    t->dm = dm;
    if (!t->deps_pulled && dm->env.multi_node(dm->env.ctx)) {
        pull_absent(dm, t);
        return;
    }
    wait_sealed(dm, t);
}

dependency_manager *dm_new(plasma_store *store, const dm_env *env)
{
    dependency_manager *dm = calloc(1, sizeof(*dm));
    if (dm == NULL)
        return NULL;
    dm->store = store;
    dm->env = *env;
    dm->pc = plasma_client_new(store, NULL);
    if (dm->pc == NULL) {
        free(dm);
        return NULL;
    }
    return dm;
}

void dm_free(dependency_manager *dm)
{
    if (dm == NULL)
        return;
    dm->closing = true;
    plasma_client_free(dm->pc); /* drops every pin */
    free(dm);
}
