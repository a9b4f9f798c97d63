/*
 * bench_tasks.c -- task functions for bench/microbenchmark.c (Ray's
 * `small_value` and a no-op). Built as build/bench/libbench_tasks.so; the
 * benchmark finds it next to its own binary and names it in
 * rayc_init_opts.code. Workers resolve rayc_return from the rayc_worker
 * binary, so this library links nothing.
 */
#include "rayc.h"

/* Returns nothing: the return is an empty value. */
static int noop(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)ctx;
    (void)args;
    (void)nargs;
    return 0;
}
RAYC_REMOTE(noop)

/* Returns 8 bytes, like Ray's `return b"ok"` (an inline value). */
static int small_value(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    static const char value[8] = "ok";
    (void)args;
    (void)nargs;
    return rayc_return(ctx, 0, value, sizeof(value));
}
RAYC_REMOTE(small_value)
