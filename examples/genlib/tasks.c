/*
 * Task library of the streaming-generator tests
 * (tests/integration/test_generators.c), the generators benchmarks and the
 * genlib driver: generators that yield numbers or pattern-filled buffers,
 * fail after some items, die mid-stream, run until their stream is closed;
 * tasks that consume items; and a Stream actor whose method yields.
 *
 * Arguments are uint64 in host order unless said otherwise; a "path" is a
 * file to which a task appends one line per event (O_APPEND, one write, so
 * lines of several workers never interleave): how tests see attempts and
 * stops from outside. Items of `size` > 8 bytes hold pattern(seed + i)
 * (tests/integration/pattern.h), so a wrong, shifted or duplicated item
 * never passes a check.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rayc.h"

#include "../../tests/integration/pattern.h"

/* ------------------------------------------------------------ helpers */

static uint64_t arg_u64(const rayc_buf *args, size_t nargs, size_t i, uint64_t dflt)
{
    uint64_t v = dflt;
    if (i < nargs && args[i].size >= sizeof(v))
        memcpy(&v, args[i].data, sizeof(v));
    return v;
}

static char *arg_str(const rayc_buf *b, char *out, size_t len)
{
    size_t n = b->size < len - 1 ? b->size : len - 1;
    memcpy(out, b->data, n);
    out[n] = '\0';
    return out;
}

static const char *node_hex(void)
{
    const char *n = getenv("RAYC_NODE_ID");
    return n && *n ? n : rayc_node_id();
}

static int append_line(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, line, strlen(line));
    close(fd);
    return n == (ssize_t)strlen(line) ? 0 : -1;
}

/* Lines of path that start with prefix. */
static int count_prefixed(const char *path, const char *prefix)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    fclose(f);
    return n;
}

static void nap_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Item i: 8 bytes holding i, or size bytes of pattern(seed + i), written
 * in place (large items straight into the store). */
static int yield_item(rayc_ctx *ctx, uint64_t i, uint64_t size, uint64_t seed)
{
    if (size <= 8)
        return rayc_yield(ctx, &i, sizeof(i));
    void *p = rayc_yield_alloc(ctx, size);
    if (p == NULL)
        return -1;
    pattern_fill(p, size, seed + i);
    return 0;
}

/* ------------------------------------------------------------ generators */

/* count(n [, size [, seed]]): items 0..n-1. */
static int count(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t n = arg_u64(args, nargs, 0, 0), size = arg_u64(args, nargs, 1, 8),
             seed = arg_u64(args, nargs, 2, 0);
    for (uint64_t i = 0; i < n; i++)
        if (yield_item(ctx, i, size, seed) != 0)
            return rayc_fail(ctx, "count: item %llu: %s", (unsigned long long)i, rayc_last_error());
    return 0;
}
RAYC_REMOTE(count)

/* count_nap(n, ms, path): item i, then `ms` of sleep, each; appends "yielded
 * <i>" to path after each item (tests see items arrive before the end). */
static int count_nap(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 3)
        return rayc_fail(ctx, "count_nap(n, ms, path)");
    uint64_t n = arg_u64(args, nargs, 0, 0), ms = arg_u64(args, nargs, 1, 0);
    char path[512], line[64];
    arg_str(&args[2], path, sizeof(path));
    for (uint64_t i = 0; i < n; i++) {
        if (rayc_yield(ctx, &i, sizeof(i)) != 0)
            return rayc_fail(ctx, "count_nap: %s", rayc_last_error());
        snprintf(line, sizeof(line), "yielded %llu\n", (unsigned long long)i);
        append_line(path, line);
        nap_ms(ms);
    }
    return 0;
}
RAYC_REMOTE(count_nap)

/* count_log(n, size, path): n items of `size` bytes (pattern(i)), copied
 * with rayc_yield; appends "yielded <i>" to path after each. */
static int count_log(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 3)
        return rayc_fail(ctx, "count_log(n, size, path)");
    uint64_t n = arg_u64(args, nargs, 0, 0), size = arg_u64(args, nargs, 1, 8);
    char path[512], line[64];
    arg_str(&args[2], path, sizeof(path));
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return rayc_fail(ctx, "count_log: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        pattern_fill(buf, size, i);
        if (rayc_yield(ctx, buf, size) != 0) {
            free(buf);
            return rayc_fail(ctx, "count_log: %s", rayc_last_error());
        }
        snprintf(line, sizeof(line), "yielded %llu\n", (unsigned long long)i);
        append_line(path, line);
    }
    free(buf);
    return 0;
}
RAYC_REMOTE(count_log)

/* count_fail(k [, size]): items 0..k-1, then fails "broke after k items". */
static int count_fail(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t k = arg_u64(args, nargs, 0, 0), size = arg_u64(args, nargs, 1, 8);
    for (uint64_t i = 0; i < k; i++)
        if (yield_item(ctx, i, size, 0) != 0)
            return rayc_fail(ctx, "count_fail: %s", rayc_last_error());
    return rayc_fail(ctx, "broke after %llu items", (unsigned long long)k);
}
RAYC_REMOTE(count_fail)

/* count_crash(n, k, path, size): appends "attempt <node>" to path; yields
 * items 0..n-1 (of `size` bytes). On the first attempt, after item k-1 it
 * waits until path holds a line "die" (the test writes it once it has taken
 * k items), then its worker dies. Deterministic, so a retry yields the same
 * items again. */
static int count_crash(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 4)
        return rayc_fail(ctx, "count_crash(n, k, path, size)");
    uint64_t n = arg_u64(args, nargs, 0, 0), k = arg_u64(args, nargs, 1, 0),
             size = arg_u64(args, nargs, 3, 8);
    char path[512], line[128];
    arg_str(&args[2], path, sizeof(path));
    snprintf(line, sizeof(line), "attempt %s\n", node_hex());
    append_line(path, line);
    bool first = count_prefixed(path, "attempt") == 1;
    for (uint64_t i = 0; i < n; i++) {
        if (yield_item(ctx, i, size, 0) != 0)
            return rayc_fail(ctx, "count_crash: %s", rayc_last_error());
        if (first && i + 1 == k) {
            /* A large item is sent at the next yield: send it now. */
            if (size > 8 && rayc_yield_alloc(ctx, 0) == NULL)
                return rayc_fail(ctx, "count_crash: %s", rayc_last_error());
            for (int w = 0; w < 6000 && count_prefixed(path, "die") == 0; w++)
                nap_ms(10);
            _exit(3);
        }
    }
    return 0;
}
RAYC_REMOTE(count_crash)

/* endless(size, path [, ms]): items of `size` bytes until a yield fails
 * (the stream was closed or cancelled), then appends "stopped <items> <code>"
 * to path and returns 0. ms: sleep between items. */
static int endless(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs < 2)
        return rayc_fail(ctx, "endless(size, path [, ms])");
    uint64_t size = arg_u64(args, nargs, 0, 8), ms = arg_u64(args, nargs, 2, 0);
    char path[512], line[128];
    arg_str(&args[1], path, sizeof(path));
    snprintf(line, sizeof(line), "started %s\n", node_hex());
    append_line(path, line);
    uint64_t i = 0;
    int rc;
    for (;; i++) {
        if (size <= 8) {
            rc = rayc_yield(ctx, &i, sizeof(i));
        } else {
            void *p = rayc_yield_alloc(ctx, size);
            rc = p ? 0 : -1;
            if (p)
                pattern_fill(p, size, i);
        }
        if (rc != 0)
            break;
        if (ms)
            nap_ms(ms);
    }
    const char *why = rayc_last_error();
    snprintf(line, sizeof(line), "stopped %llu %.60s\n", (unsigned long long)i, why);
    append_line(path, line);
    return 0;
}
RAYC_REMOTE(endless)

/* where_items(n): n items, each the hex id of the node it was made on. */
static int where_items(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t n = arg_u64(args, nargs, 0, 0);
    const char *me = node_hex();
    for (uint64_t i = 0; i < n; i++)
        if (rayc_yield(ctx, me, strlen(me)) != 0)
            return rayc_fail(ctx, "where_items: %s", rayc_last_error());
    return 0;
}
RAYC_REMOTE(where_items)

/* count_flaky(n, k, path): appends "attempt" to path; on the first attempt
 * yields items 0..k-1 and then fails ("flaky after k items"); on any later
 * attempt yields 0..n-1 and ends (retry_exceptions, issue 11). */
static int count_flaky(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 3)
        return rayc_fail(ctx, "count_flaky(n, k, path)");
    uint64_t n = arg_u64(args, nargs, 0, 0), k = arg_u64(args, nargs, 1, 0);
    char path[512];
    arg_str(&args[2], path, sizeof(path));
    bool first = count_prefixed(path, "attempt") == 0;
    append_line(path, "attempt\n");
    for (uint64_t i = 0; i < (first ? k : n); i++)
        if (rayc_yield(ctx, &i, sizeof(i)) != 0)
            return rayc_fail(ctx, "count_flaky: %s", rayc_last_error());
    if (first)
        return rayc_fail(ctx, "flaky after %llu items", (unsigned long long)k);
    return 0;
}
RAYC_REMOTE(count_flaky)

/* own_endless(node_hex, path, k [, wait]): a task that owns a generator:
 * submits endless(8, path, 20) pinned to node node_hex, takes k items, then
 * kills its own worker (SIGKILL): the generator's owner dies mid-stream.
 * With wait != 0 it appends "owner waits" and sleeps instead (a test kills
 * its node). */
static int own_endless(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 3 && nargs != 4)
        return rayc_fail(ctx, "own_endless(node_hex, path, k [, wait])");
    char node[128], path[512];
    arg_str(&args[0], node, sizeof(node));
    arg_str(&args[1], path, sizeof(path));
    uint64_t k = arg_u64(args, nargs, 2, 1), size = 8, ms = 20;
    rayc_arg a[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(path, strlen(path) + 1),
                    RAYC_VAL(&ms, sizeof(ms))};
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = node};
    rayc_stream *s;
    if (rayc_submit_stream("endless", a, 3, &o, &s) != 0)
        return rayc_fail(ctx, "submit: %s", rayc_last_error());
    for (uint64_t i = 0; i < k; i++) {
        rayc_ref r;
        if (rayc_stream_next(s, &r, -1) != 0)
            return rayc_fail(ctx, "stream: %s", rayc_last_error());
    }
    if (arg_u64(args, nargs, 3, 0)) { /* wait: its node is to die under it */
        append_line(path, "owner waits\n");
        for (;;)
            nap_ms(1000);
    }
    append_line(path, "owner dies\n");
    kill(getpid(), SIGKILL);
    return 0;
}
RAYC_REMOTE(own_endless)

/* ------------------------------------------------------------ borrowed refs */

/* A ref whose bytes came by value (issue 12: "copied by hand"). */
static int arg_ref(const rayc_buf *b, rayc_ref *r)
{
    if (b->size != sizeof(*r))
        return -1;
    memcpy(r, b->data, sizeof(*r));
    return 0;
}

/* get_ref(ref_bytes [, timeout_ms]): the value of a ref this process does
 * not own; fails "get: <code>: <message>" when the get fails. */
static int get_ref(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    rayc_ref r;
    if (nargs < 1 || arg_ref(&args[0], &r) != 0)
        return rayc_fail(ctx, "get_ref(ref_bytes [, timeout_ms])");
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, (int64_t)arg_u64(args, nargs, 1, 60000));
    if (rc != 0)
        return rayc_fail(ctx, "get: %s: %s", rayc_strerror(rc),
                         v.error ? v.error : rayc_last_error());
    rc = rayc_return(ctx, 0, v.data, v.size);
    rayc_value_release(&v);
    return rc;
}
RAYC_REMOTE(get_ref)

/* hold_ref(ref_bytes, path): borrows the ref (rayc_ref_retain), appends
 * "retained", waits (up to a minute) until path has a line "released" (the
 * owner dropped its own reference), gets the value, releases the ref and
 * returns the value. */
static int hold_ref(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    rayc_ref r;
    char path[512];
    if (nargs != 2 || arg_ref(&args[0], &r) != 0)
        return rayc_fail(ctx, "hold_ref(ref_bytes, path)");
    arg_str(&args[1], path, sizeof(path));
    rayc_ref_retain(r);
    append_line(path, "retained\n");
    for (int i = 0; i < 6000 && count_prefixed(path, "released") == 0; i++)
        nap_ms(10);
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, 60000);
    if (rc != 0) {
        rayc_ref_release(r);
        return rayc_fail(ctx, "get after the owner released: %s: %s", rayc_strerror(rc),
                         v.error ? v.error : rayc_last_error());
    }
    rc = rayc_return(ctx, 0, v.data, v.size);
    rayc_value_release(&v);
    rayc_ref_release(r);
    return rc;
}
RAYC_REMOTE(hold_ref)

/* pass_ref(ref_bytes, seed, node_hex): passes a ref it does not own on to
 * check(RAYC_REF(ref), seed) pinned to node node_hex and returns its result
 * (a borrowed ref as a task's argument). */
static int pass_ref(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    rayc_ref r;
    char node[128];
    if (nargs != 3 || arg_ref(&args[0], &r) != 0)
        return rayc_fail(ctx, "pass_ref(ref_bytes, seed, node_hex)");
    arg_str(&args[2], node, sizeof(node));
    rayc_arg a[] = {RAYC_REF(r), RAYC_VAL(args[1].data, args[1].size)};
    rayc_task_opts o = {
        .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = node, .max_retries = -1};
    rayc_ref out[2];
    if (rayc_submit("check", a, 2, &o, out) != 0)
        return rayc_fail(ctx, "submit: %s", rayc_last_error());
    rayc_value v;
    int rc = rayc_get(&out[0], 1, &v, 60000);
    if (rc == 0)
        rc = rayc_return(ctx, 0, v.data, v.size);
    else
        rc = rayc_fail(ctx, "check: %s: %s", rayc_strerror(rc),
                       v.error ? v.error : rayc_last_error());
    rayc_value_release(&v);
    rayc_ref_release(out[0]);
    rayc_ref_release(out[1]);
    return rc;
}
RAYC_REMOTE(pass_ref)

/* put_keep(size, seed): puts two objects, pattern(seed) and pattern(seed +
 * 1) of size bytes, and keeps their refs (this worker owns them until it
 * dies); returns both refs' bytes and this worker's pid (int64). */
static int put_keep(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t size = arg_u64(args, nargs, 0, 64), seed = arg_u64(args, nargs, 1, 0);
    void *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return rayc_fail(ctx, "out of memory");
    rayc_ref r[2];
    for (int i = 0; i < 2; i++) {
        pattern_fill(buf, size, seed + (uint64_t)i);
        if (rayc_put(buf, size, &r[i]) != 0) {
            free(buf);
            return rayc_fail(ctx, "put: %s", rayc_last_error());
        }
    }
    free(buf);
    uint8_t out[sizeof(r) + 8];
    int64_t pid = getpid();
    memcpy(out, r, sizeof(r));
    memcpy(out + sizeof(r), &pid, 8);
    return rayc_return(ctx, 0, out, sizeof(out));
}
RAYC_REMOTE(put_keep)

/* ------------------------------------------------------------ consumers */

/* plus(x [, y]): x + y (8-byte numbers; y defaults to 1000). */
static int plus(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs < 1 || args[0].size != 8)
        return rayc_fail(ctx, "plus wants an 8-byte number, got %zu bytes",
                         nargs ? args[0].size : 0);
    uint64_t v = arg_u64(args, nargs, 0, 0) + arg_u64(args, nargs, 1, 1000);
    return rayc_return(ctx, 0, &v, sizeof(v));
}
RAYC_REMOTE(plus)

/* check(buf, seed): returns size * 1000003 + seed when buf holds
 * pattern(seed), else fails naming the first wrong offset; the node it ran
 * on is the second return. */
static int check(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 2)
        return rayc_fail(ctx, "check(buf, seed)");
    uint64_t seed = arg_u64(args, nargs, 1, 0);
    long long bad = pattern_check(args[0].data, args[0].size, seed);
    if (bad >= 0)
        return rayc_fail(ctx, "check: byte %lld of %zu differs", bad, args[0].size);
    uint64_t v = (uint64_t)args[0].size * 1000003ULL + seed;
    int rc = rayc_return(ctx, 0, &v, sizeof(v));
    const char *me = node_hex();
    return rc ? rc : rayc_return(ctx, 1, me, strlen(me));
}
RAYC_REMOTE(check)

/* fnv(buf [, ms]): a 64-bit FNV-1a of buf (after sleeping ms, so many tasks
 * are pending at once). */
static int fnv(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs < 1)
        return rayc_fail(ctx, "fnv(buf [, ms])");
    nap_ms(arg_u64(args, nargs, 1, 0));
    uint64_t h = 1469598103934665603ULL;
    const uint8_t *p = args[0].data;
    for (size_t i = 0; i < args[0].size; i += 4096) /* one byte a page: cheap, and maps it all */
        h = (h ^ p[i]) * 1099511628211ULL;
    if (args[0].size)
        h = (h ^ p[args[0].size - 1]) * 1099511628211ULL;
    h ^= args[0].size;
    return rayc_return(ctx, 0, &h, sizeof(h));
}
RAYC_REMOTE(fnv)

/* sum_stream(n): a task that submits count(n) and consumes it itself,
 * returning the sum of its items (a nested stream: the owner is a worker). */
static int sum_stream(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    uint64_t n = arg_u64(args, nargs, 0, 0), sum = 0;
    rayc_arg a = RAYC_VAL(&n, sizeof(n));
    rayc_stream *s;
    int rc = rayc_submit_stream("count", &a, 1, NULL, &s);
    if (rc != 0)
        return rayc_fail(ctx, "submit: %s", rayc_last_error());
    rayc_ref r;
    while ((rc = rayc_stream_next(s, &r, -1)) == RAYC_OK) {
        rayc_value v;
        rc = rayc_get(&r, 1, &v, -1);
        if (rc == RAYC_OK && v.size == 8) {
            uint64_t x;
            memcpy(&x, v.data, 8);
            sum += x;
        }
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    rayc_stream_close(s);
    if (rc != RAYC_EOF)
        return rayc_fail(ctx, "stream: %s", rayc_strerror(rc));
    return rayc_return(ctx, 0, &sum, sizeof(sum));
}
RAYC_REMOTE(sum_stream)

/* ------------------------------------------------------------ an actor */

typedef struct {
    uint64_t base;
    uint64_t calls;
} stream_actor;

static void *stream_new(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)ctx;
    stream_actor *a = calloc(1, sizeof(*a));
    if (a)
        a->base = arg_u64(args, nargs, 0, 0);
    return a;
}

static void stream_free(void *self)
{
    free(self);
}
RAYC_ACTOR(Stream, stream_new, stream_free)

/* Stream.items(n [, size]): items base + calls*1000 + i, i < n (or size-byte
 * patterns seeded so); its state proves the calls ran in order on one
 * instance. */
static int items(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    stream_actor *a = self;
    uint64_t n = arg_u64(args, nargs, 0, 0), size = arg_u64(args, nargs, 1, 8);
    uint64_t first = a->base + a->calls++ * 1000;
    for (uint64_t i = 0; i < n; i++)
        if (yield_item(ctx, first + i, size, 0) != 0)
            return rayc_fail(ctx, "items: %s", rayc_last_error());
    return 0;
}
RAYC_METHOD(Stream, items)

/* Stream.items_fail(k): k items, then a failure; the actor lives on. */
static int items_fail(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self;
    uint64_t k = arg_u64(args, nargs, 0, 0);
    for (uint64_t i = 0; i < k; i++)
        if (rayc_yield(ctx, &i, sizeof(i)) != 0)
            return rayc_fail(ctx, "items_fail: %s", rayc_last_error());
    return rayc_fail(ctx, "broke after %llu items", (unsigned long long)k);
}
RAYC_METHOD(Stream, items_fail)

/* Stream.endless(path): items until the stream is closed, then appends
 * "stopped <items>" to path. */
static int actor_endless(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self;
    if (nargs != 1)
        return rayc_fail(ctx, "endless(path)");
    char path[512], line[128];
    arg_str(&args[0], path, sizeof(path));
    uint64_t i = 0;
    while (rayc_yield(ctx, &i, sizeof(i)) == 0)
        i++;
    snprintf(line, sizeof(line), "stopped %llu\n", (unsigned long long)i);
    append_line(path, line);
    return 0;
}
RAYC_METHOD_AS(Stream, endless, actor_endless)

/* Stream.calls(): how many items calls ran (a plain method). */
static int calls(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)args;
    (void)nargs;
    stream_actor *a = self;
    return rayc_return(ctx, 0, &a->calls, sizeof(a->calls));
}
RAYC_METHOD(Stream, calls)
