/*
 * dependency_manager.c -- waiting for tasks' arguments; see
 * dependency_manager.h. Runs in the raylet's loop thread.
 */
#include "dependency_manager.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rayc.h"

#define STACK_IDS 16 /* argument ids gathered without an allocation */

struct dependency_manager {
    plasma_store *store;
    plasma_client *pc; /* the waits */
    dm_env env;
    bool closing;
};

static void wait_sealed(dependency_manager *dm, rtask *t);

static void on_sealed(void *arg, uint64_t tag, int status, const bool *ready, size_t n)
{
    (void)ready;
    (void)n;
    dependency_manager *dm = arg;
    rtask *t = (rtask *)(uintptr_t)tag;
    if (dm->closing)
        return;
    t->deps_ready = true;
    t->dm = NULL;
    if (status == RAYC_ECANCELLED && !t->cancelled) {
        dm->env.done(dm->env.ctx, t, RAYC_EOBJECT_LOST, "its arguments can no longer arrive");
        return;
    }
    dm->env.done(dm->env.ctx, t, RAYC_OK, NULL);
}

/* One pull ended; when the last one has, wait for the seals. */
static void on_pulled(void *arg, const object_id_t *id, int status, const char *msg)
{
    rtask *t = arg;
    dependency_manager *dm = t->dm;
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

/* Pull the arguments absent here; on_pulled follows for the last one. */
static void pull_absent(dependency_manager *dm, rtask *t)
{
    Rpc__TaskSpec *s = t->msg->spec;
    t->pulls = 1; /* held while starting them */
    t->pull_status = RAYC_OK;
    for (size_t i = 0; i < s->n_args; i++) {
        Rpc__TaskArg *a = s->args[i];
        if (!a->is_ref || a->object_id.len != OBJECT_ID_SIZE)
            continue;
        object_id_t id;
        memcpy(id.b, a->object_id.data, OBJECT_ID_SIZE);
        if (plasma_object_state(dm->store, &id, NULL) != PLASMA_ABSENT)
            continue;
        node_id_t hint;
        bool has_hint = a->node_id.len == NODE_ID_SIZE;
        if (has_hint)
            memcpy(hint.b, a->node_id.data, NODE_ID_SIZE);
        t->pulls++;
        dm->env.pull(dm->env.ctx, &id, has_hint ? &hint : NULL, on_pulled, t);
    }
    on_pulled(t, NULL, RAYC_OK, NULL);
}

/* Ask the store to answer once every store argument is sealed here. */
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
        if (s->args[i]->is_ref && s->args[i]->object_id.len == OBJECT_ID_SIZE)
            memcpy(ids[n++].b, s->args[i]->object_id.data, OBJECT_ID_SIZE);
    plasma_wait(dm->store, dm->pc, ids, n, n, -1, on_sealed, dm, (uint64_t)(uintptr_t)t);
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
    plasma_client_free(dm->pc);
    free(dm);
}
