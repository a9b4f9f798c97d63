/*
 * dependency_manager.c -- waiting for tasks' arguments; see
 * dependency_manager.h. Runs in the raylet's loop thread.
 *
 *   dm_wait --(several nodes, first time)--> pull absent ones --all ended-->
 *   seal wait --all sealed--> pin the copies --> done
 *             --DM_RECHECK_MS, some missing--> re-check: pull again / log --> seal wait
 */
#include "dependency_manager.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rayc.h"
#include "util.h"

#define STACK_IDS    16         /* argument ids gathered without an allocation */
#define PIN_MAX      64         /* arguments of a task that can be pinned (bits of rtask.pinned) */
#define UNKNOWN_SIZE (1u << 20) /* what an argument of unknown size counts against the budget */
#define MIB          (1024.0 * 1024.0)

struct dependency_manager {
    plasma_store *store;
    plasma_client *pc; /* the waits and the pins */
    dm_env env;
    bool closing;
    /* admission: tasks whose arguments must be pulled start pulling only
     * while the bytes admitted tasks hold (held) fit the budget */
    uint64_t budget, held;
    uint32_t nadmitted;
    rtask *qhead, *qtail;
    uint32_t nqueued;
    struct event *kick; /* admits from the queue (soon after a release; then every
                           DM_RECHECK_MS while tasks are queued) */
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

static void queue_remove(dependency_manager *dm, rtask *t);
static void kick_soon(dependency_manager *dm);

/* Every argument of t is here: pin for it the secondary copies it did not
 * pull itself (pulled for another task or a get before it came), so they
 * cannot be evicted before it runs either. Primary copies stay unpinned:
 * they are only ever spilled, and a worker's get restores them. */
static void pin_copies(dependency_manager *dm, rtask *t)
{
    Rpc__TaskSpec *s = t->msg->spec;
    for (size_t i = 0; i < s->n_args && i < PIN_MAX; i++) {
        object_id_t id;
        plasma_view v;
        if ((t->pinned & (1ull << i)) || !arg_id(t, i, &id) ||
            !plasma_object_is_copy(dm->store, &id))
            continue;
        if (plasma_pin(dm->store, dm->pc, &id, &v) == 0)
            t->pinned |= 1ull << i;
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
    if (t->queued)
        queue_remove(dm, t);
    if (t->admitted) {
        t->admitted = false;
        dm->held -= t->dm_bytes;
        dm->nadmitted--;
        if (dm->qhead)
            kick_soon(dm); /* not from here: the caller may be in the middle of a walk */
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
            log_warn("task %s waits %llu s for argument %s: %s; %s", s->function,
                     (unsigned long long)((now_ms() - t->wait_since) / 1000),
                     id_hex(id.b, OBJECT_ID_SIZE, hex), state_name(st),
                     again && t->store_full ? "store full, pulling it again"
                     : again                ? "pulling it again"
                     : st == PLASMA_ABSENT  ? "no other node to pull it from"
                                            : "waiting for its seal");
        }
        if (again)
            pull_one(dm, t, i, &id);
    }
    t->store_full = false;
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
    if (status == RAYC_OK && !t->cancelled)
        pin_copies(dm, t);
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
    if (status == RAYC_ESTORE_FULL) {
        /* No room here now: not lost. The seal wait's re-check pulls it
         * again (and says so) while the task waits. */
        t->store_full = true;
        status = RAYC_OK;
        id = NULL;
    }
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

/* ---------------------------------------------------------------- admission */

/* Bytes of t's store arguments absent here (its pulls would bring them). */
static uint64_t absent_bytes(dependency_manager *dm, const rtask *t)
{
    Rpc__TaskSpec *s = t->msg->spec;
    uint64_t n = 0;
    for (size_t i = 0; i < s->n_args; i++) {
        object_id_t id;
        if (arg_id(t, i, &id) && plasma_object_state(dm->store, &id, NULL) == PLASMA_ABSENT)
            n += s->args[i]->size ? s->args[i]->size : UNKNOWN_SIZE;
    }
    return n;
}

/* Whether need more bytes fit the budget. The first task always fits: a
 * task with arguments over the whole budget runs alone rather than never. */
static bool fits(const dependency_manager *dm, uint64_t need)
{
    return dm->held == 0 || (dm->held <= dm->budget && need <= dm->budget - dm->held);
}

static void admit(dependency_manager *dm, rtask *t, uint64_t need)
{
    t->admitted = true;
    t->dm_bytes = need;
    dm->held += need;
    dm->nadmitted++;
}

static void queue_remove(dependency_manager *dm, rtask *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        dm->qhead = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        dm->qtail = t->prev;
    t->next = t->prev = NULL;
    t->queued = false;
    dm->nqueued--;
}

static void queue_push(dependency_manager *dm, rtask *t)
{
    t->queued = true;
    t->next = NULL;
    t->prev = dm->qtail;
    if (dm->qtail)
        dm->qtail->next = t;
    else
        dm->qhead = t;
    dm->qtail = t;
    dm->nqueued++;
    if (dm->nqueued == 1)
        kick_soon(dm);
}

static void kick_after(dependency_manager *dm, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (dm->kick)
        evtimer_add(dm->kick, &tv);
}

static void kick_soon(dependency_manager *dm)
{
    kick_after(dm, 0);
}

/* Admit queued tasks, oldest first, while they fit; say now and then why
 * the rest waits. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dependency_manager *dm = arg;
    while (dm->qhead) {
        rtask *t = dm->qhead;
        uint64_t need = absent_bytes(dm, t);
        if (!fits(dm, need))
            break;
        queue_remove(dm, t);
        admit(dm, t, need);
        pull_absent(dm, t);
    }
    if (dm->qhead == NULL)
        return;
    rtask *t = dm->qhead;
    t->rounds++;
    if ((t->rounds & (t->rounds - 1)) == 0)
        log_warn("task %s waits %llu s to pull its arguments (%.1f MiB): %u tasks here hold "
                 "%.1f MiB of pulled arguments, the budget is %.1f MiB; %u tasks wait so",
                 t->msg->spec->function, (unsigned long long)((now_ms() - t->wait_since) / 1000),
                 (double)absent_bytes(dm, t) / MIB, dm->nadmitted, (double)dm->held / MIB,
                 (double)dm->budget / MIB, dm->nqueued);
    kick_after(dm, DM_RECHECK_MS);
}

bool dm_pressed(const dependency_manager *dm)
{
    return dm->qhead != NULL || dm->held >= dm->budget;
}

void dm_cancel(dependency_manager *dm, rtask *t)
{
    if (!t->queued)
        return; /* a wait in progress ends by itself (t->cancelled) */
    queue_remove(dm, t);
    t->dm = NULL;
    dm->env.done(dm->env.ctx, t, RAYC_OK, NULL);
}

size_t dm_describe(const dependency_manager *dm, const rtask *t, char *buf, size_t len)
{
    if (t->state != T_WAITING_DEPS || len == 0)
        return 0;
    unsigned long long secs = (now_ms() - t->wait_since) / 1000;
    if (t->queued)
        return (size_t)snprintf(buf, len,
                                "task %s waits %llu s to pull its arguments: the store is full "
                                "of arguments pinned for tasks here (%.1f MiB, budget %.1f MiB)",
                                t->msg->spec->function, secs, (double)dm->held / MIB,
                                (double)dm->budget / MIB);
    Rpc__TaskSpec *s = t->msg->spec;
    for (size_t i = 0; i < s->n_args; i++) {
        object_id_t id;
        if (!arg_id(t, i, &id))
            continue;
        enum plasma_state st = plasma_object_state(dm->store, &id, NULL);
        if (st == PLASMA_SEALED || st == PLASMA_SPILLED)
            continue;
        char hex[ID_HEX_MAX];
        return (size_t)snprintf(buf, len, "task %s waits %llu s for object %s: %s", s->function,
                                secs, id_hex(id.b, OBJECT_ID_SIZE, hex),
                                t->store_full          ? "store full"
                                : st == PLASMA_CREATED ? "being written here"
                                : t->pulls > 0         ? "being pulled"
                                                       : "no copy reachable");
    }
    return (size_t)snprintf(buf, len, "task %s waits %llu s for its arguments' seals", s->function,
                            secs);
}

void dm_wait(dependency_manager *dm, rtask *t)
{
    t->state = T_WAITING_DEPS;
    t->dm = dm;
    if (t->wait_since == 0)
        t->wait_since = now_ms();
    if (!t->deps_pulled && dm->env.multi_node(dm->env.ctx)) {
        if (!t->admitted) {
            uint64_t need = absent_bytes(dm, t);
            if (need > 0 && (dm->qhead != NULL || !fits(dm, need))) {
                queue_push(dm, t);
                return;
            }
            admit(dm, t, need);
        }
        pull_absent(dm, t);
        return;
    }
    wait_sealed(dm, t);
}

dependency_manager *dm_new(struct event_base *base, plasma_store *store, const dm_env *env)
{
    dependency_manager *dm = calloc(1, sizeof(*dm));
    if (dm == NULL)
        return NULL;
    dm->store = store;
    dm->env = *env;
    dm->budget = base ? plasma_store_capacity(store) / DM_PIN_SHARE : UINT64_MAX;
    dm->pc = plasma_client_new(store, NULL);
    if (base)
        dm->kick = evtimer_new(base, on_kick, dm);
    if (dm->pc == NULL || (base && dm->kick == NULL)) {
        dm_free(dm);
        return NULL;
    }
    return dm;
}

void dm_free(dependency_manager *dm)
{
    if (dm == NULL)
        return;
    dm->closing = true;
    if (dm->kick)
        event_free(dm->kick);
    plasma_client_free(dm->pc); /* drops every pin */
    free(dm);
}
