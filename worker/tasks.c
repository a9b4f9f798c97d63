/*
 * tasks.c -- the task entry points of rayc.h: rayc_submit and rayc_cancel.
 * They validate, stage large values in the store, then hand off to the task
 * submitter (task_submitter.h), which owns everything after that.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "errors.h"
#include "pg.h"
#include "task_submitter.h"

#define MAX_FUNCTION_NAME 200
#define MAX_NUM_RETURNS   10000

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
                         const rayc_task_opts *opts, const rayc_ref *returns, tsub_request *rq)
{
    int num_returns = opts && opts->num_returns > 0 ? opts->num_returns : 1;
    if (function == NULL || *function == '\0' || strlen(function) > MAX_FUNCTION_NAME ||
        (nargs > 0 && args == NULL) || returns == NULL || (opts && opts->num_returns < 0) ||
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
static void unstage(const tsub_arg *targs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (targs[i].handed) {
            rayc_ref r;
            memcpy(r.id, targs[i].ref.b, OBJECT_ID_SIZE);
            rayc_ref_release(r);
        }
    }
}

/* The submitter's view of the arguments: values larger than inline_max are
 * put in the store first (once) and travel as refs the task is handed. On
 * failure nothing stays staged. */
static int stage_args(const rayc_arg *args, size_t nargs, size_t inline_max, tsub_arg *targs)
{
    for (size_t i = 0; i < nargs; i++) {
        tsub_arg *a = &targs[i];
        memset(a, 0, sizeof(*a));
        int rc = 0;
        if (args[i].kind == RAYC_ARG_VALUE && args[i].size > inline_max) {
            rayc_ref r;
            rc = rayc_put(args[i].data, args[i].size, &r);
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
            unstage(targs, i);
            return rc;
        }
    }
    return 0;
}

int rayc_submit(const char *function, const rayc_arg *args, size_t nargs,
                const rayc_task_opts *opts, rayc_ref *returns)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    tsub_request rq;
    if ((rc = build_request(function, args, nargs, opts, returns, &rq)) != 0)
        return rc;
    tsub_arg stack_args[TSUB_STACK_ARGS],
        *targs = nargs > TSUB_STACK_ARGS ? malloc(nargs * sizeof(*targs)) : stack_args;
    if (targs == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    rc = stage_args(args, nargs, c->inline_max, targs);
    if (rc == 0) {
        bool taken;
        rc = tsub_submit(c->tasks, &rq, targs, nargs, returns, &taken);
        if (rc != 0 && taken) {
            /* The return refs were handed out (as errors): drop them. */
            for (uint32_t i = 0; i < rq.num_returns; i++)
                rayc_ref_release(returns[i]);
        } else if (rc != 0) {
            unstage(targs, nargs);
        }
    }
    if (targs != stack_args)
        free(targs);
    return rc;
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
