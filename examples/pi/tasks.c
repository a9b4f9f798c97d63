/* Task library of the pi example: sample() throws darts, sum() adds counts. */
#include <stdint.h>
#include <string.h>

#include "rayc.h"

/* splitmix64: a tiny, good-enough generator; each task seeds its own. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* sample(seed, n): how many of n uniform points of the unit square fall
 * inside the quarter circle. Returns a uint64. */
static int sample(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t seed, n;
    if (nargs != 2 || args[0].size != sizeof(seed) || args[1].size != sizeof(n))
        return rayc_fail(ctx, "sample wants (uint64 seed, uint64 n)");
    memcpy(&seed, args[0].data, sizeof(seed));
    memcpy(&n, args[1].data, sizeof(n));
    uint64_t inside = 0;
    for (uint64_t i = 0; i < n; i++) {
        double x = (double)(next(&seed) >> 11) * 0x1.0p-53;
        double y = (double)(next(&seed) >> 11) * 0x1.0p-53;
        inside += x * x + y * y <= 1.0;
    }
    return rayc_return(ctx, 0, &inside, sizeof(inside));
}
RAYC_REMOTE(sample)

/* sum(a, b, ...): the uint64 sum of its arguments. */
static int sum(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t total = 0, v;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].size != sizeof(v))
            return rayc_fail(ctx, "sum: argument %zu is %zu bytes", i, args[i].size);
        memcpy(&v, args[i].data, sizeof(v));
        total += v;
    }
    return rayc_return(ctx, 0, &total, sizeof(total));
}
RAYC_REMOTE(sum)
