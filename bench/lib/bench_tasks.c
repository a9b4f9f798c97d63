/*
 * bench_tasks.c -- task functions for bench/microbenchmark.c (Ray's
 * `small_value`, a no-op, and `make_object`, a store object made by a worker
 * process). Built as build/bench/libbench_tasks.so; the
 * benchmark finds it next to its own binary and names it in
 * rayc_init_opts.code. Workers resolve rayc_return from the rayc_worker
 * binary, so this library links nothing.
 */
#include <stdint.h>
#include <string.h>

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

/* make_object(size, seed): returns one object of `size` bytes (a uint64 in
 * host order), written in place in the store: every byte 0x5a except three
 * markers derived from `seed` (a uint64; its low byte counts), which the
 * driver checks after its get:
 *   byte 0 = seed, byte size/2 = seed ^ 0xff, byte size-1 = seed + 1
 * (size/2 wins over 0 and size-1 for tiny sizes). */
static int make_object(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t size = 0, seed = 0;
    if (nargs != 2 || args[0].size != sizeof(size) || args[1].size != sizeof(seed))
        return rayc_fail(ctx, "make_object wants (uint64 size, uint64 seed)");
    memcpy(&size, args[0].data, sizeof(size));
    memcpy(&seed, args[1].data, sizeof(seed));
    if (size == 0)
        return 0; /* an empty value */
    unsigned char *p = rayc_return_alloc(ctx, 0, (size_t)size);
    if (p == NULL)
        return rayc_fail(ctx, "make_object: cannot allocate %llu bytes: %s",
                         (unsigned long long)size, rayc_last_error());
    memset(p, 0x5a, (size_t)size);
    p[0] = (unsigned char)seed;
    p[size - 1] = (unsigned char)(seed + 1);
    p[size / 2] = (unsigned char)(seed ^ 0xff);
    return 0;
}
RAYC_REMOTE(make_object)

/* ------------------------------------------------------------ actors */

/* Bench: Ray's microbenchmark actor (a class whose methods do nothing). */
static void *bench_new(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    static int instance;
    (void)ctx, (void)args, (void)nargs;
    return &instance;
}

static void bench_free(void *self)
{
    (void)self;
}

/* small_value(): 8 bytes, like the task of the same name. */
static int bench_small_value(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    static const char value[8] = "ok";
    (void)self, (void)args, (void)nargs;
    return rayc_return(ctx, 0, value, sizeof(value));
}

RAYC_ACTOR(Bench, bench_new, bench_free)
RAYC_METHOD_AS(Bench, small_value, bench_small_value)
