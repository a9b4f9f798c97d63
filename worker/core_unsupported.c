/*
 * core_unsupported.c -- entry points of rayc.h whose features are not built
 * yet: actors (rayc_actor_*) and streaming generators (rayc_submit_stream,
 * rayc_stream_*). They exist so programs written against the whole API link;
 * each fails with RAYC_EINVAL and says so in rayc_last_error(). See the
 * README's status section.
 */
#include <stdlib.h>

#include "core.h"
#include "errors.h"

static int unsupported(const char *what)
{
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    return rayc__error(RAYC_EINVAL, "%s: this rayc build does not support it yet", what);
}

int rayc_actor_create(const char *cls, const rayc_arg *args, size_t nargs,
                      const rayc_actor_opts *opts, rayc_actor *out)
{
    (void)cls, (void)args, (void)nargs, (void)opts, (void)out;
    return unsupported("actors (rayc_actor_create)");
}

int rayc_actor_call(rayc_actor actor, const char *method, const rayc_arg *args, size_t nargs,
                    const rayc_task_opts *opts, rayc_ref *returns)
{
    (void)actor, (void)method, (void)args, (void)nargs, (void)opts, (void)returns;
    return unsupported("actors (rayc_actor_call)");
}

int rayc_actor_get(const char *name, const char *namespace_, rayc_actor *out)
{
    (void)name, (void)namespace_, (void)out;
    return unsupported("actors (rayc_actor_get)");
}

int rayc_actor_kill(rayc_actor actor, int no_restart)
{
    (void)actor, (void)no_restart;
    return unsupported("actors (rayc_actor_kill)");
}

int rayc_submit_stream(const char *function, const rayc_arg *args, size_t nargs,
                       const rayc_task_opts *opts, rayc_stream **out)
{
    (void)function, (void)args, (void)nargs, (void)opts;
    if (out)
        *out = NULL;
    return unsupported("streaming generators (rayc_submit_stream)");
}

int rayc_stream_next(rayc_stream *s, rayc_ref *out, int64_t timeout_ms)
{
    (void)s, (void)out, (void)timeout_ms;
    return unsupported("streaming generators (rayc_stream_next)");
}

void rayc_stream_close(rayc_stream *s)
{
    (void)s;
}
