/*
 * tasks.c -- the task entry points of rayc.h: rayc_submit, rayc_cancel and
 * the streaming generators' rayc_submit_stream, rayc_stream_next and
 * rayc_stream_close. They validate, stage large values in the store, then
 * hand off to the task submitter (task_submitter.h), which owns everything
 * after that.
 */
#include <stdlib.h>
#include <string.h>

#include "arg_dedup.h"
#include "core.h"
#include "direct_tasks.h"
#include "errors.h"
#include "log.h"
#include "pg.h"
#include "task_submitter.h"
#include "util.h"

#define MAX_FUNCTION_NAME 200
#define MAX_NUM_RETURNS   10000
/* Reading back a stored argument to compare it: our own object, in the
 * store (restored if it was spilled). */
#define DEDUP_GET_TIMEOUT_MS 60000

/* Demand from options: CPU (default 1), GPU, memory, custom. */
static int build_resources(const rayc_task_opts *o, res_set *set)
{
    char err[256];
    memset(set, 0, sizeof(*set));
    double cpus = o && o->num_cpus > 0 ? o->num_cpus : 1;
    if (o && (o->num_cpus < 0 || o->num_gpus < 0))
        return rayc__error(RAYC_EINVAL, "num_cpus and num_gpus must be >= 0");
    res_set_amount(set, "CPU", cpus);
    if (o && o->num_gpus > 0)
        res_set_amount(set, "GPU", o->num_gpus);
    if (o && o->memory > 0)
        res_set_amount(set, "memory", (double)o->memory);
    if (o && o->resources && res_parse(set, o->resources, err, sizeof(err)) != 0)
        return rayc__error(RAYC_EINVAL, "resources: %s", err);
    return 0;
}

/* Check the call and turn the options into a request. */
static int build_request(const char *function, const rayc_arg *args, size_t nargs,
                         const rayc_task_opts *opts, tsub_request *rq)
{
    int num_returns = opts && opts->num_returns > 0 ? opts->num_returns : 1;
    if (function == NULL || *function == '\0' || strlen(function) > MAX_FUNCTION_NAME ||
        (nargs > 0 && args == NULL) || (opts && opts->num_returns < 0) ||
        num_returns > MAX_NUM_RETURNS)
        return rayc__error(RAYC_EINVAL, "rayc_submit: bad arguments");
    if (opts && opts->strategy == RAYC_SCHED_NODE &&
        (opts->node_id == NULL || strlen(opts->node_id) != 2 * NODE_ID_SIZE))
        return rayc__error(RAYC_EINVAL, "RAYC_SCHED_NODE needs a hex node_id");
    memset(rq, 0, offsetof(tsub_request, demand));
    int rc = build_resources(opts, &rq->demand);
    if (rc != 0)
        return rc;
    rq->function = function;
    rq->name = opts && opts->name ? opts->name : "";
    rq->num_returns = (uint32_t)num_returns;
    rq->max_retries = opts ? opts->max_retries : 0;
    rq->retry_exceptions = opts && opts->retry_exceptions;
    rq->strategy = opts ? opts->strategy : 0;
    rq->soft = opts && opts->soft;
    rq->has_target = opts && opts->strategy == RAYC_SCHED_NODE &&
                     id_from_hex(opts->node_id, rq->target.b, NODE_ID_SIZE) == 0;
    if (opts && opts->placement_group) {
        /* Pinned to its bundle's node, where the raylet runs it on the
         * bundle's resources. */
        rc = pg__task_target(opts->placement_group, opts->bundle_index, &rq->demand, &rq->target);
        if (rc != 0)
            return rc;
        rq->has_pg = true;
        memcpy(rq->pg, opts->placement_group->id, PG_ID_SIZE);
        rq->bundle_index = opts->bundle_index;
        rq->has_target = true;
        rq->strategy = RAYC_SCHED_NODE;
        rq->soft = false;
    }
    return 0;
}

/* Give back the store objects staged for large values of args[0..n). */
static void unstage_args(const tsub_arg *targs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (targs[i].handed) {
            rayc_ref r;
            memcpy(r.id, targs[i].ref.b, OBJECT_ID_SIZE);
            rayc_ref_release(r);
        }
    }
}

/* A reference to the stored object of this content, if one is still held
 * (by a pending task that was given the same bytes): checked byte for byte.
 * true with *out, a reference the caller now owns. */
static bool stored_copy(const void *data, size_t size, uint64_t hash, rayc_ref *out)
{
    core_t *c = &rayc__core;
    object_id_t oid;
    bool found = false;
    pthread_mutex_lock(&c->mu);
    if (dedup_find(c->dedup, hash, size, &oid)) {
        ref_entry *e = reft_find(&c->refs, &oid);
        if (e && e->refs > 0 && e->status == RAYC_OK && e->sealed && e->size == size) {
            e->refs++; /* ours now: the object cannot go while we compare */
            found = true;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (!found)
        return false;
    memcpy(out->id, oid.b, OBJECT_ID_SIZE);
    rayc_value v;
    bool same = rayc_get(out, 1, &v, DEDUP_GET_TIMEOUT_MS) == RAYC_OK && v.size == size &&
                memcmp(v.data, data, size) == 0;
    if (v.priv_)
        rayc_value_release(&v);
    if (!same)
        rayc_ref_release(*out);
    return same;
}

/* A large value in the store for one task: the object of the same content a
 * pending task holds, else a new one (recorded for the next task). */
static int stage_large(const void *data, size_t size, rayc_ref *out)
{
    core_t *c = &rayc__core;
    uint64_t hash = hash_bytes(data, size);
    if (stored_copy(data, size, hash, out))
        return 0;
    int rc = rayc_put(data, size, out);
    if (rc != 0)
        return rc;
    object_id_t oid;
    memcpy(oid.b, out->id, OBJECT_ID_SIZE);
    pthread_mutex_lock(&c->mu);
    if (dedup_add(c->dedup, hash, size, &oid) != 0)
        log_warn("out of memory: a large argument will be stored again for the next task");
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* The submitter's view of the arguments: values larger than inline_max are
 * put in the store first (once per distinct content while a task holds it,
 * see arg_dedup.h) and travel as refs the task is handed. On failure
 * nothing stays staged. */
static int stage_args(const rayc_arg *args, size_t nargs, size_t inline_max, tsub_arg *targs)
{
    for (size_t i = 0; i < nargs; i++) {
        tsub_arg *a = &targs[i];
        memset(a, 0, sizeof(*a));
        int rc = 0;
        if (args[i].kind == RAYC_ARG_VALUE && args[i].size > inline_max) {
            rayc_ref r;
            rc = args[i].data ? stage_large(args[i].data, args[i].size, &r)
                              : rayc__error(RAYC_EINVAL, "argument %zu: NULL data", i);
            if (rc == 0) {
                a->is_ref = a->handed = true;
                memcpy(a->ref.b, r.id, OBJECT_ID_SIZE);
            }
        } else if (args[i].kind != RAYC_ARG_VALUE && args[i].kind != RAYC_ARG_REF) {
            rc = rayc__error(RAYC_EINVAL, "argument %zu has an unknown kind", i);
        } else if (args[i].kind == RAYC_ARG_VALUE && args[i].size > 0 && !args[i].data) {
            rc = rayc__error(RAYC_EINVAL, "argument %zu: NULL data", i);
        } else if (args[i].kind == RAYC_ARG_VALUE) {
            a->data = args[i].data;
            a->size = args[i].size;
        } else {
            a->is_ref = true;
            memcpy(a->ref.b, args[i].ref.id, OBJECT_ID_SIZE);
        }
        if (rc != 0) {
            unstage_args(targs, i);
            return rc;
        }
    }
    return 0;
}

/* The one submit path of tasks and actor calls, plain or streaming: stage
 * the arguments, hand them to the submitter, and on failure give back
 * whatever the submitter did not take (staged objects, error returns, the
 * stream). */
int core__submit(const tsub_request *rq, const rayc_arg *args, size_t nargs, rayc_ref *returns,
                 rayc_stream **stream)
{
    core_t *c = &rayc__core;
    tsub_arg stack_args[TSUB_STACK_ARGS],
        *targs = nargs > TSUB_STACK_ARGS ? malloc(nargs * sizeof(*targs)) : stack_args;
    if (targs == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    int rc = stage_args(args, nargs, c->inline_max, targs);
    if (rc == 0) {
        bool taken;
        rayc_stream *s = NULL;
        rc = stream ? tsub_submit_stream(c->tasks, rq, targs, nargs, &s, &taken)
                    : tsub_submit(c->tasks, rq, targs, nargs, returns, &taken);
        if (rc == 0 && stream) {
            *stream = s;
        } else if (rc != 0 && taken && stream) {
            pthread_mutex_lock(&c->mu);
            tsub_stream_close(s);
            pthread_mutex_unlock(&c->mu);
        } else if (rc != 0 && taken) {
            /* The return refs were handed out (as errors): drop them. */
            for (uint32_t i = 0; i < rq->num_returns; i++)
                rayc_ref_release(returns[i]);
        } else if (rc != 0) {
            unstage_args(targs, nargs);
        }
    }
    if (targs != stack_args)
        free(targs);
    return rc;
}

int rayc_submit(const char *function, const rayc_arg *args, size_t nargs,
                const rayc_task_opts *opts, rayc_ref *returns)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    tsub_request rq;
    if (opts && opts->num_returns == RAYC_STREAMING)
        return rayc__error(RAYC_EINVAL, "rayc_submit: a generator is submitted with "
                                        "rayc_submit_stream");
    if (returns == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_submit: NULL returns");
    if ((rc = build_request(function, args, nargs, opts, &rq)) != 0)
        return rc;
    if (!core__has_symbol("rayc__fn_", function))
        return rayc__error(RAYC_ENOTFOUND,
                           "rayc_submit: function '%s' is not in the job's code libraries "
                           "(RAYC_REMOTE(%s) exports it)",
                           function, function);
    return core__submit(&rq, args, nargs, returns, NULL);
}

int rayc_cancel(rayc_ref ref, int force)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    object_id_t oid;
    memcpy(oid.b, ref.id, OBJECT_ID_SIZE);
    return tsub_cancel(rayc__core.tasks, &oid, force != 0);
}

/* ------------------------------------------------------------ streams */

int rayc_submit_stream(const char *function, const rayc_arg *args, size_t nargs,
                       const rayc_task_opts *opts, rayc_stream **out)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (out == NULL)
        return rayc__error(RAYC_EINVAL, "rayc_submit_stream: NULL out");
    *out = NULL;
    if (opts && opts->num_returns != 0 && opts->num_returns != RAYC_STREAMING)
        return rayc__error(RAYC_EINVAL, "rayc_submit_stream: num_returns must be 0 or "
                                        "RAYC_STREAMING");
    if (opts && opts->generator_backpressure < 0)
        return rayc__error(RAYC_EINVAL, "rayc_submit_stream: generator_backpressure < 0");
    rayc_task_opts o = opts ? *opts : (rayc_task_opts){0};
    o.num_returns = 0;
    tsub_request rq;
    if ((rc = build_request(function, args, nargs, &o, &rq)) != 0)
        return rc;
    rq.backpressure = (uint32_t)o.generator_backpressure;
    return core__submit(&rq, args, nargs, NULL, out);
}

int rayc_stream_next(rayc_stream *s, rayc_ref *out, int64_t timeout_ms)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (s == NULL || out == NULL || timeout_ms < -1)
        return rayc__error(RAYC_EINVAL, "rayc_stream_next: bad arguments");
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    bool blocked = false;
    object_id_t oid;
    pthread_mutex_lock(&c->mu);
    __atomic_add_fetch(&c->result_waiters, 1, __ATOMIC_SEQ_CST); /* see rayc_wait */
    for (int round = 0;; round++) {
        rc = tsub_stream_take(s, &oid);
        if (rc != RAYC_ETIMEDOUT)
            break;
        uint64_t now = now_ms();
        if (now >= deadline && round > 0)
            break;
        int64_t left =
            deadline == UINT64_MAX ? 1000 : (int64_t)(deadline > now ? deadline - now : 0);
        pthread_mutex_unlock(&c->mu);
        /* Read what has arrived first; only a real wait gives a task's CPU back. */
        if (round > 0 && !blocked && core__task_running()) {
            core__block();
            blocked = true;
        }
        int prc = cw_conn_pump(c->raylet, round == 0 ? 0 : (left > 1000 ? 1000 : left));
        pthread_mutex_lock(&c->mu);
        if (prc != 0) {
            rc = rayc__error(prc, "lost the raylet while waiting for a generator item");
            break;
        }
    }
    __atomic_sub_fetch(&c->result_waiters, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&c->mu);
    if (blocked)
        core__unblock();
    if (rc == 0) {
        memcpy(out->id, oid.b, OBJECT_ID_SIZE);
        return 0;
    }
    if (rc == RAYC_ETIMEDOUT)
        return rayc__error(RAYC_ETIMEDOUT, "rayc_stream_next: no item within %lld ms",
                           (long long)timeout_ms);
    if (rc == RAYC_EINVAL)
        return rayc__error(RAYC_EINVAL, "rayc_stream_next: the stream is closed");
    return rc == RAYC_EOF ? RAYC_EOF : rc;
}

void rayc_stream_close(rayc_stream *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&rayc__core.mu);
    tsub_stream_close(s);
    pthread_mutex_unlock(&rayc__core.mu);
}

/* The direct task path's counts (dtx_counts; zeros when it is off), for
 * tests and `rayc microbenchmark`. */
void core__direct_counts(uint64_t out[DTX_NCOUNTS])
{
    core_t *c = &rayc__core;
    memset(out, 0, DTX_NCOUNTS * sizeof(*out));
    pthread_mutex_lock(&c->mu);
    if (c->direct)
        dtx_counts(c->direct, out);
    pthread_mutex_unlock(&c->mu);
}
