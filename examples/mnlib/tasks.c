/*
 * Task library of the multi-node integration tests
 * (tests/integration/test_multinode.c) and of the mnlib self-check driver.
 *
 * Every task that proves where it ran returns the hex id of its node (from
 * RAYC_NODE_ID, which the raylet sets in each worker it starts) as one of its
 * values, without a terminating NUL. Objects are filled with a pattern every
 * 8-byte word of which depends on (seed, position), so a shifted, truncated
 * or partly zeroed copy never passes a check.
 *
 * Numbers are int64 / uint64 in host order.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rayc.h"

/* The same pattern the multi-node tests check. */
#include "../../tests/integration/pattern.h"

/* ------------------------------------------------------------ helpers */

static uint64_t arg_u64(const rayc_buf *b)
{
    uint64_t v = 0;
    if (b->size >= sizeof(v))
        memcpy(&v, b->data, sizeof(v));
    return v;
}

static const char *node_hex(void)
{
    const char *n = getenv("RAYC_NODE_ID");
    return n && *n ? n : rayc_node_id();
}

/* Append one line to path with O_APPEND (one write: lines of concurrent
 * workers on several nodes never interleave): how the node-death tests see
 * that a task ran, where, and how many times. */
static int append_line(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, line, strlen(line));
    close(fd);
    return n == (ssize_t)strlen(line) ? 0 : -1;
}

static char *arg_path(const rayc_buf *b, char *out, size_t len)
{
    size_t n = b->size < len - 1 ? b->size : len - 1;
    memcpy(out, b->data, n);
    out[n] = '\0';
    return out;
}

static int return_node(rayc_ctx *ctx, size_t index)
{
    const char *n = node_hex();
    return rayc_return(ctx, index, n, strlen(n));
}

/* ------------------------------------------------------------ tasks */

/* where(...): the node id; arguments are ignored (they make tasks distinct). */
static int where(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)args;
    (void)nargs;
    return return_node(ctx, 0);
}
RAYC_REMOTE(where)

/* make_pattern(size, seed): 2 returns, the object of `size` bytes and the node id. */
static int make_pattern(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 2)
        return rayc_fail(ctx, "make_pattern wants (size, seed), got %zu arguments", nargs);
    uint64_t size = arg_u64(&args[0]), seed = arg_u64(&args[1]);
    if (size > 0) {
        void *buf = rayc_return_alloc(ctx, 0, size);
        if (buf == NULL)
            return rayc_fail(ctx, "make_pattern: cannot allocate %llu bytes: %s",
                             (unsigned long long)size, rayc_last_error());
        pattern_fill(buf, size, seed);
    }
    return return_node(ctx, 1);
}
RAYC_REMOTE(make_pattern)

/* check_pattern(obj, seed): 2 returns, int64 -1 when obj is the pattern of its
 * size (else the first bad offset) and the node id. */
static int check_pattern(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 2)
        return rayc_fail(ctx, "check_pattern wants (obj, seed), got %zu arguments", nargs);
    int64_t bad = pattern_check(args[0].data, args[0].size, arg_u64(&args[1]));
    int rc = rayc_return(ctx, 0, &bad, sizeof(bad));
    return rc ? rc : return_node(ctx, 1);
}
RAYC_REMOTE(check_pattern)

/* digest(obj, seed, salt): int64 (seed * 1000003 + salt) when obj is the
 * pattern of seed, else a failure naming the bad offset. One value, so a
 * driver can check thousands of results with one comparison each. */
static int digest(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 3)
        return rayc_fail(ctx, "digest wants (obj, seed, salt), got %zu arguments", nargs);
    uint64_t seed = arg_u64(&args[1]);
    int64_t bad = pattern_check(args[0].data, args[0].size, seed);
    if (bad >= 0)
        return rayc_fail(ctx, "digest: %zu-byte object differs from pattern %llu at %lld",
                         args[0].size, (unsigned long long)seed, (long long)bad);
    int64_t v = (int64_t)(seed * 1000003ULL + arg_u64(&args[2]));
    return rayc_return(ctx, 0, &v, sizeof(v));
}
RAYC_REMOTE(digest)

/* square(n): n * n (small tasks that need no store). */
static int square(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1 || args[0].size != sizeof(int64_t))
        return rayc_fail(ctx, "square wants one int64");
    int64_t n = (int64_t)arg_u64(&args[0]);
    int64_t v = n * n;
    return rayc_return(ctx, 0, &v, sizeof(v));
}
RAYC_REMOTE(square)

/* mark_pattern(size, seed, path): make_pattern that first appends
 * "<seed> <node id>\n" to path, so a test counts the attempts of each
 * producer and sees where each ran. 2 returns, like make_pattern. */
static int mark_pattern(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 3)
        return rayc_fail(ctx, "mark_pattern wants (size, seed, path), got %zu arguments", nargs);
    char path[4096], line[128];
    snprintf(line, sizeof(line), "%llu %s\n", (unsigned long long)arg_u64(&args[1]), node_hex());
    if (append_line(arg_path(&args[2], path, sizeof(path)), line) != 0)
        return rayc_fail(ctx, "mark_pattern: cannot append to %s", path);
    return make_pattern(ctx, args, 2);
}
RAYC_REMOTE(mark_pattern)

/* mark_nap(path, ms, slow_node): appends "<node id>\n" to path, then sleeps
 * ms milliseconds when it runs on slow_node (hex), else returns at once.
 * Returns the node id. A test kills slow_node while the task sleeps there
 * and sees the retry's line come from another node. */
static int mark_nap(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 3)
        return rayc_fail(ctx, "mark_nap wants (path, ms, slow_node), got %zu arguments", nargs);
    char path[4096], slow[128], line[128];
    snprintf(line, sizeof(line), "%s\n", node_hex());
    if (append_line(arg_path(&args[0], path, sizeof(path)), line) != 0)
        return rayc_fail(ctx, "mark_nap: cannot append to %s", path);
    if (strcmp(arg_path(&args[2], slow, sizeof(slow)), node_hex()) == 0) {
        uint64_t ms = arg_u64(&args[1]);
        struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                              .tv_nsec = (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    return return_node(ctx, 0);
}
RAYC_REMOTE(mark_nap)

/* shout(text): prints text on stdout (the raylet forwards worker output to
 * the driver, from any node); returns the node id. */
static int shout(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    char text[512];
    if (nargs != 1)
        return rayc_fail(ctx, "shout wants a string");
    printf("%s\n", arg_path(&args[0], text, sizeof(text)));
    fflush(stdout);
    return return_node(ctx, 0);
}
RAYC_REMOTE(shout)

/* nap(ms): sleeps ms milliseconds, returns the node id (a task that holds
 * its CPU: the job-end tests end a job while such tasks run and queue). */
static int nap(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs < 1)
        return rayc_fail(ctx, "nap wants (ms)");
    uint64_t ms = arg_u64(&args[0]);
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return return_node(ctx, 0);
}
RAYC_REMOTE(nap)

/* reduce_digest(obj_1, seed_1, ..., obj_k, seed_k): int64, the sum of
 * (seed_i * 1000003 + size_i) when every obj_i is the pattern of seed_i,
 * else a failure naming the first bad one (the soak's reduce). */
static int reduce_digest(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs == 0 || nargs % 2 != 0)
        return rayc_fail(ctx, "reduce_digest wants (obj, seed) pairs, got %zu arguments", nargs);
    uint64_t sum = 0;
    for (size_t i = 0; i < nargs; i += 2) {
        uint64_t seed = arg_u64(&args[i + 1]);
        long long bad = pattern_check(args[i].data, args[i].size, seed);
        if (bad >= 0)
            return rayc_fail(ctx,
                             "reduce_digest: input %zu (%zu bytes) differs from pattern %llu "
                             "at %lld",
                             i / 2, args[i].size, (unsigned long long)seed, bad);
        sum += seed * 1000003ULL + args[i].size;
    }
    int64_t v = (int64_t)sum;
    return rayc_return(ctx, 0, &v, sizeof(v));
}
RAYC_REMOTE(reduce_digest)
