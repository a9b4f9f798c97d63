/*
 * actors.c -- the actor entry points of rayc.h. Creation, lookup and kill
 * are GCS requests; calls are task submitter records sent by the actor
 * submitter (actor_submitter.h) straight to the actor's worker.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "actor_submitter.h"
#include "core.h"
#include "errors.h"
#include "msg.h"
#include "pg.h"
#include "task_submitter.h"

#define MAX_CLASS_NAME 200
#define GCS_TIMEOUT_MS 10000

/* A GCS request with an ActorReply. The reply (free with msg_free) or NULL
 * with rayc_last_error set. */
static Rpc__ActorReply *gcs_actor_call(uint16_t type, ProtobufCMessage *req, uint64_t *req_id,
                                       uint16_t reply_type)
{
    ProtobufCMessage *m = NULL;
    int rc = core__gcs_call(type, req, req_id, reply_type, &m, GCS_TIMEOUT_MS);
    if (rc != 0) {
        rayc__error(rc, "the GCS did not answer: %s", rayc_strerror(rc));
        return NULL;
    }
    return (Rpc__ActorReply *)m;
}

/* Placement demand and held resources: Ray's defaults (1 CPU to be placed,
 * none held) unless the options name some, which are held for life. */
static int actor_resources(const rayc_actor_opts *o, res_set *held, res_set *demand)
{
    char err[256];
    memset(held, 0, sizeof(*held));
    if (o && (o->num_cpus < 0 || o->num_gpus < 0))
        return rayc__error(RAYC_EINVAL, "num_cpus and num_gpus must be >= 0");
    if (o && o->num_cpus > 0)
        res_set_amount(held, "CPU", o->num_cpus);
    if (o && o->num_gpus > 0)
        res_set_amount(held, "GPU", o->num_gpus);
    if (o && o->resources && res_parse(held, o->resources, err, sizeof(err)) != 0)
        return rayc__error(RAYC_EINVAL, "resources: %s", err);
    *demand = *held;
    if (held->n == 0)
        res_set_amount(demand, "CPU", 1);
    return 0;
}

static void fill_resources(const res_set *set, Rpc__Resource *rs, Rpc__Resource **ptrs)
{
    for (int i = 0; i < set->n; i++) {
        rpc__resource__init(&rs[i]);
        rs[i].name = (char *)set->name[i];
        rs[i].amount = set->amount[i];
        ptrs[i] = &rs[i];
    }
}

/* The creation arguments travel inside the creation task: values as they
 * are, refs as their values (fetched now), so the actor can be re-created
 * from its record alone after its creator is gone. */
static int creation_args(const rayc_arg *args, size_t nargs, Rpc__TaskArg *ta, Rpc__TaskArg **tp,
                         rayc_value *vals)
{
    for (size_t i = 0; i < nargs; i++) {
        rpc__task_arg__init(&ta[i]);
        tp[i] = &ta[i];
        if (args[i].kind == RAYC_ARG_REF) {
            int rc = rayc_get(&args[i].ref, 1, &vals[i], -1);
            if (rc != 0)
                return rayc__error(rc, "actor argument %zu: %s", i, rayc_last_error());
            ta[i].data.data = (uint8_t *)vals[i].data;
            ta[i].data.len = vals[i].size;
        } else if (args[i].kind == RAYC_ARG_VALUE && (args[i].data || args[i].size == 0)) {
            ta[i].data.data = (uint8_t *)args[i].data;
            ta[i].data.len = args[i].size;
        } else {
            return rayc__error(RAYC_EINVAL, "actor argument %zu is malformed", i);
        }
    }
    return 0;
}

/* Pack the creation task of actor id (class cls) into info->creation_spec. */
static int pack_creation(const char *cls, const actor_id_t *id, const rayc_arg *args, size_t nargs,
                         const rayc_actor_opts *o, const res_set *demand, ProtobufCBinaryData *out)
{
    core_t *c = &rayc__core;
    Rpc__TaskArg *ta = calloc(nargs ? nargs : 1, sizeof(*ta));
    Rpc__TaskArg **tp = calloc(nargs ? nargs : 1, sizeof(*tp));
    rayc_value *vals = calloc(nargs ? nargs : 1, sizeof(*vals));
    int rc = ta && tp && vals ? creation_args(args, nargs, ta, tp, vals)
                              : rayc__error(RAYC_ENOMEM, "out of memory");
    if (rc == 0) {
        task_id_t tid = task_id_for_actor(id);
        Rpc__Resource rs[RES_MAX], *rps[RES_MAX];
        fill_resources(demand, rs, rps);
        Rpc__TaskSpec spec = RPC__TASK_SPEC__INIT;
        spec.task_id.data = tid.b;
        spec.task_id.len = TASK_ID_SIZE;
        spec.job_id = job_id_to_int(c->job);
        spec.function = (char *)cls;
        spec.n_args = nargs;
        spec.args = tp;
        spec.num_returns = 1;
        spec.n_resources = (size_t)demand->n;
        spec.resources = rps;
        spec.owner_id.data = c->worker_id.b;
        spec.owner_id.len = WORKER_ID_SIZE;
        spec.owner_node_id.data = c->node_id.b;
        spec.owner_node_id.len = NODE_ID_SIZE;
        spec.actor_id.data = (uint8_t *)id->b;
        spec.actor_id.len = ACTOR_ID_SIZE;
        spec.actor_creation = true;
        spec.max_concurrency = o ? o->max_concurrency : 0;
        spec.detached = o && o->detached;
        if (o && o->placement_group) {
            spec.pg_id.data = (uint8_t *)o->placement_group->id;
            spec.pg_id.len = PG_ID_SIZE;
            spec.bundle_index = o->bundle_index;
        }
        out->len = rpc__task_spec__get_packed_size(&spec);
        out->data = malloc(out->len ? out->len : 1);
        if (out->data == NULL)
            rc = rayc__error(RAYC_ENOMEM, "out of memory");
        else
            rpc__task_spec__pack(&spec, out->data);
    }
    for (size_t i = 0; vals && i < nargs; i++)
        rayc_value_release(&vals[i]);
    free(ta);
    free(tp);
    free(vals);
    return rc;
}

/* A driver knows its code libraries: an unknown class is RAYC_ENOTFOUND at
 * once (a worker, which does not, learns it when the constructor runs). */
static int check_class(const char *cls)
{
    if (core__has_symbol("rayc__new_", cls))
        return 0;
    return rayc__error(RAYC_ENOTFOUND,
                       "rayc_actor_create: actor class '%s' is not in the job's code libraries "
                       "(RAYC_ACTOR(%s, ...) exports it)",
                       cls, cls);
}

int rayc_actor_create(const char *cls, const rayc_arg *args, size_t nargs,
                      const rayc_actor_opts *opts, rayc_actor *out)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (cls == NULL || *cls == '\0' || strlen(cls) > MAX_CLASS_NAME || out == NULL ||
        (nargs > 0 && args == NULL) || (opts && opts->max_concurrency < 0))
        return rayc__error(RAYC_EINVAL, "rayc_actor_create: bad arguments");
    if (opts && opts->get_if_exists && (opts->name == NULL || *opts->name == '\0'))
        return rayc__error(RAYC_EINVAL, "rayc_actor_create: get_if_exists needs a name");
    res_set held, demand;
    if ((rc = actor_resources(opts, &held, &demand)) != 0 || (rc = check_class(cls)) != 0)
        return rc;
    node_id_t bundle_node;
    if (opts && opts->placement_group &&
        (rc = pg__task_target(opts->placement_group, opts->bundle_index, &demand, &bundle_node)) !=
            0)
        return rc;
    actor_submitter *as = core__actors();
    if (as == NULL)
        return RAYC_ENOMEM;
    actor_id_t id = actor_id_random(c->job);
    Rpc__ActorInfo info = RPC__ACTOR_INFO__INIT;
    if ((rc = pack_creation(cls, &id, args, nargs, opts, &demand, &info.creation_spec)) != 0)
        return rc;
    Rpc__Resource rs[RES_MAX], *rps[RES_MAX];
    fill_resources(&held, rs, rps);
    info.actor_id.data = id.b;
    info.actor_id.len = ACTOR_ID_SIZE;
    info.job_id = job_id_to_int(c->job);
    info.class_name = (char *)cls;
    info.name = (char *)(opts && opts->name ? opts->name : "");
    info.namespace_ = c->namespace_;
    info.detached = opts && opts->detached;
    info.max_restarts = opts ? opts->max_restarts : 0;
    info.max_task_retries = opts ? opts->max_task_retries : 0;
    info.max_concurrency = opts && opts->max_concurrency > 1 ? opts->max_concurrency : 1;
    info.owner_id.data = c->worker_id.b;
    info.owner_id.len = WORKER_ID_SIZE;
    info.n_resources = (size_t)held.n;
    info.resources = rps;
    Rpc__RegisterActorRequest req = RPC__REGISTER_ACTOR_REQUEST__INIT;
    req.actor = &info;
    req.get_if_exists = opts && opts->get_if_exists;
    Rpc__ActorReply *r =
        gcs_actor_call(MSG_REGISTER_ACTOR_REQ, &req.base, &req.req_id, MSG_REGISTER_ACTOR_REPLY);
    free(info.creation_spec.data);
    if (r == NULL)
        return rayc_last_error()[0] ? RAYC_ECONN : RAYC_ECONN;
    rc = r->status ? r->status->code : 0;
    if (rc != 0) {
        rc = rayc__error(rc, "rayc_actor_create(%s): %s", cls,
                         r->status->message && *r->status->message ? r->status->message
                                                                   : rayc_strerror(rc));
    } else if (r->actor && r->actor->actor_id.len == ACTOR_ID_SIZE) {
        memcpy(id.b, r->actor->actor_id.data, ACTOR_ID_SIZE); /* get_if_exists: the holder */
        memcpy(out->id, id.b, ACTOR_ID_SIZE);
        asub_created(as, &id, r->actor->max_task_retries, r->actor->detached);
    }
    msg_free(&r->base);
    return rc;
}

int rayc_actor_call(rayc_actor actor, const char *method, const rayc_arg *args, size_t nargs,
                    const rayc_task_opts *opts, rayc_ref *returns)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    int num_returns = opts && opts->num_returns > 0 ? opts->num_returns : 1;
    if (method == NULL || *method == '\0' || strlen(method) > MAX_CLASS_NAME || returns == NULL ||
        (nargs > 0 && args == NULL) || (opts && opts->num_returns < 0) || num_returns > 10000)
        return rayc__error(RAYC_EINVAL, "rayc_actor_call: bad arguments");
    actor_submitter *as = core__actors();
    if (as == NULL)
        return RAYC_ENOMEM;
    actor_id_t id;
    memcpy(id.b, actor.id, ACTOR_ID_SIZE);
    tsub_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.function = method;
    rq.name = opts && opts->name ? opts->name : "";
    rq.num_returns = (uint32_t)num_returns;
    rq.retry_exceptions = opts && opts->retry_exceptions;
    rq.actor = &id;
    rc = core__submit(&rq, args, nargs, returns, NULL);
    if (rc == 0) {
        task_id_t tid = object_id_task((const object_id_t *)returns[0].id);
        pthread_mutex_lock(&c->mu);
        asub_call_added(as, &id, &tid);
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* A streaming call: a generator method whose items come back on the
 * actor's connection as it yields them (docs/generators.md). The stream is
 * the task submitter's; the call goes out in order with the others. */
int rayc_actor_call_stream(rayc_actor actor, const char *method, const rayc_arg *args, size_t nargs,
                           const rayc_task_opts *opts, rayc_stream **out)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (out)
        *out = NULL;
    if (method == NULL || *method == '\0' || strlen(method) > MAX_CLASS_NAME || out == NULL ||
        (nargs > 0 && args == NULL) ||
        (opts && opts->num_returns != 0 && opts->num_returns != RAYC_STREAMING) ||
        (opts && opts->generator_backpressure < 0))
        return rayc__error(RAYC_EINVAL, "rayc_actor_call_stream: bad arguments");
    actor_submitter *as = core__actors();
    if (as == NULL)
        return RAYC_ENOMEM;
    actor_id_t id;
    memcpy(id.b, actor.id, ACTOR_ID_SIZE);
    tsub_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.function = method;
    rq.name = opts && opts->name ? opts->name : "";
    rq.retry_exceptions = opts && opts->retry_exceptions;
    rq.backpressure = opts ? (uint32_t)opts->generator_backpressure : 0;
    rq.actor = &id;
    rayc_stream *s;
    rc = core__submit(&rq, args, nargs, NULL, &s);
    if (rc == 0) {
        task_id_t tid = tsub_stream_task(s);
        pthread_mutex_lock(&c->mu);
        asub_call_added(as, &id, &tid);
        pthread_mutex_unlock(&c->mu);
        *out = s;
    }
    return rc;
}

int rayc_actor_get(const char *name, const char *namespace_, rayc_actor *out)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (name == NULL || *name == '\0' || out == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_actor_get: bad arguments");
    Rpc__GetActorRequest req = RPC__GET_ACTOR_REQUEST__INIT;
    req.name = (char *)name;
    req.namespace_ = (char *)(namespace_ ? namespace_ : c->namespace_);
    Rpc__ActorReply *r =
        gcs_actor_call(MSG_GET_ACTOR_REQ, &req.base, &req.req_id, MSG_GET_ACTOR_REPLY);
    if (r == NULL)
        return RAYC_ECONN;
    rc = r->status ? r->status->code : 0;
    if (rc == 0 && r->actor && r->actor->actor_id.len == ACTOR_ID_SIZE)
        memcpy(out->id, r->actor->actor_id.data, ACTOR_ID_SIZE);
    else if (rc == 0)
        rc = RAYC_ENOTFOUND;
    if (rc != 0)
        rayc__error(rc, "no actor named '%s' in namespace '%s'", name, req.namespace_);
    msg_free(&r->base);
    return rc;
}

int rayc_actor_kill(rayc_actor actor, int no_restart)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    Rpc__KillActorRequest req = RPC__KILL_ACTOR_REQUEST__INIT;
    req.actor_id.data = actor.id;
    req.actor_id.len = ACTOR_ID_SIZE;
    req.no_restart = no_restart != 0;
    Rpc__ActorReply *r =
        gcs_actor_call(MSG_KILL_ACTOR_REQ, &req.base, &req.req_id, MSG_KILL_ACTOR_REPLY);
    if (r == NULL)
        return RAYC_ECONN;
    rc = r->status ? r->status->code : 0;
    if (rc != 0)
        rayc__error(rc, "rayc_actor_kill: %s", r->status->message ? r->status->message : "");
    else if (no_restart && r->actor && r->actor->state == RPC__ACTOR_STATE__ACTOR_DEAD) {
        /* Dead for good: this process's calls fail now, not when the
         * worker's end reaches us. */
        actor_submitter *as = core__actors();
        actor_id_t id;
        memcpy(id.b, actor.id, ACTOR_ID_SIZE);
        if (as)
            asub_killed(as, &id, r->actor->death_cause);
    }
    msg_free(&r->base);
    return rc;
}

int rayc_actor_release(rayc_actor actor)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    actor_submitter *as = core__actors();
    if (as == NULL)
        return RAYC_ENOMEM;
    actor_id_t id;
    memcpy(id.b, actor.id, ACTOR_ID_SIZE);
    asub_release(as, &id);
    return 0;
}

int rayc_actor_state(rayc_actor actor, char *state, size_t cap)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (state == NULL || cap == 0)
        return rayc__error(RAYC_EINVAL, "rayc_actor_state: bad arguments");
    Rpc__GetActorRequest req = RPC__GET_ACTOR_REQUEST__INIT;
    req.actor_id.data = actor.id;
    req.actor_id.len = ACTOR_ID_SIZE;
    Rpc__ActorReply *r =
        gcs_actor_call(MSG_GET_ACTOR_REQ, &req.base, &req.req_id, MSG_GET_ACTOR_REPLY);
    if (r == NULL)
        return RAYC_ECONN;
    rc = r->status ? r->status->code : 0;
    if (rc == 0 && r->actor) {
        static const char *names[] = {"PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"};
        int s = (int)r->actor->state;
        const char *n = s >= 0 && s < 4 ? names[s] : "UNKNOWN";
        if (s == RPC__ACTOR_STATE__ACTOR_DEAD)
            snprintf(state, cap, "%s: %s", n, r->actor->death_cause);
        else
            snprintf(state, cap, "%s", n);
    } else {
        rc = rayc__error(rc ? rc : RAYC_ENOTFOUND, "no such actor");
    }
    msg_free(&r->base);
    return rc;
}
