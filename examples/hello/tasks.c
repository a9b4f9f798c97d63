/* Task library of the hello example: a() and b() make numbers, c() adds them. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rayc.h"

static int a(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)args;
    (void)nargs;
    int64_t v = 20;
    return rayc_return(ctx, 0, &v, sizeof(v));
}
RAYC_REMOTE(a)

static int b(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)args;
    (void)nargs;
    int64_t v = 22;
    return rayc_return(ctx, 0, &v, sizeof(v));
}
RAYC_REMOTE(b)

static int c(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    int64_t x, y;
    if (nargs != 2 || args[0].size != sizeof(x) || args[1].size != sizeof(y))
        return rayc_fail(ctx, "c wants two int64 arguments, got %zu", nargs);
    memcpy(&x, args[0].data, sizeof(x));
    memcpy(&y, args[1].data, sizeof(y));
    printf("c: adding %lld and %lld\n", (long long)x, (long long)y);
    int64_t sum = x + y;
    return rayc_return(ctx, 0, &sum, sizeof(sum));
}
RAYC_REMOTE(c)
