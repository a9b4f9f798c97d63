/*
 * core_unsupported.c -- entry points of rayc.h whose features are not built
 * yet: streaming generators (rayc_submit_stream, rayc_stream_*,
 * rayc_actor_call_stream). They exist so programs written against the whole API link;
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

int rayc_actor_call_stream(rayc_actor actor, const char *method, const rayc_arg *args, size_t nargs,
                           const rayc_task_opts *opts, rayc_stream **out)
{
    (void)actor, (void)method, (void)args, (void)nargs, (void)opts;
    if (out)
        *out = NULL;
    return unsupported("streaming generators (rayc_actor_call_stream)");
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
