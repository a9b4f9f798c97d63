/*
 * Actor classes of the actor integration tests (tests/integration/
 * test_actors.c) and of the actorlib self-check driver. Numbers are int64 in
 * host order.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "rayc.h"

#define MAX_CALLERS 16

static int64_t arg_i64(const rayc_buf *b)
{
    int64_t v = 0;
    if (b->size >= sizeof(v))
        memcpy(&v, b->data, sizeof(v));
    return v;
}

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int ret_i64(rayc_ctx *ctx, int64_t v)
{
    return rayc_return(ctx, 0, &v, sizeof(v));
}

/* ------------------------------------------------------------ Counter */

typedef struct {
    int64_t value;
    int64_t last_seq[MAX_CALLERS]; /* append(): the last sequence number per caller */
} counter;

/* Counter(start): a negative start fails the constructor. */
static void *counter_new(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    int64_t start = nargs > 0 ? arg_i64(&args[0]) : 0;
    if (start < 0) {
        rayc_fail(ctx, "Counter: negative start %lld", (long long)start);
        return NULL;
    }
    counter *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->value = start;
    for (int i = 0; i < MAX_CALLERS; i++)
        c->last_seq[i] = -1;
    return c;
}

static void counter_free(void *self)
{
    free(self);
}

/* incr(by = 1) -> the new value */
static int incr(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    counter *c = self;
    c->value += nargs > 0 ? arg_i64(&args[0]) : 1;
    return ret_i64(ctx, c->value);
}

static int get(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)args, (void)nargs;
    return ret_i64(ctx, ((counter *)self)->value);
}

static int pid(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self, (void)args, (void)nargs;
    return ret_i64(ctx, (int64_t)getpid());
}

/* node() -> the hex id of the node the actor runs on */
static int node(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self, (void)args, (void)nargs;
    const char *id = getenv("RAYC_NODE_ID");
    return rayc_return(ctx, 0, id ? id : "", id ? strlen(id) : 0);
}

static int fail(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self, (void)args, (void)nargs;
    return rayc_fail(ctx, "fail: on purpose");
}

/* append(caller, seq) -> 1 if seq is the caller's next number, else 0 */
static int append(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    counter *c = self;
    if (nargs != 2)
        return rayc_fail(ctx, "append takes (caller, seq)");
    int64_t who = arg_i64(&args[0]), seq = arg_i64(&args[1]);
    if (who < 0 || who >= MAX_CALLERS)
        return rayc_fail(ctx, "caller %lld out of range", (long long)who);
    int64_t ok = seq == c->last_seq[who] + 1;
    c->last_seq[who] = seq;
    return ret_i64(ctx, ok);
}

/* nap(ms) -> {start_us, end_us} of the nap, as the method saw them */
static int nap(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self;
    int64_t ms = nargs > 0 ? arg_i64(&args[0]) : 100;
    int64_t span[2];
    span[0] = now_us();
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    span[1] = now_us();
    return rayc_return(ctx, 0, span, sizeof(span));
}

/* big(n) -> n bytes, byte i = i mod 251 (a store object past the inline size) */
static int big(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self;
    int64_t n = nargs > 0 ? arg_i64(&args[0]) : 0;
    uint8_t *p = rayc_return_alloc(ctx, 0, (size_t)n);
    if (p == NULL && n > 0)
        return rayc_fail(ctx, "big: %s", rayc_last_error());
    for (int64_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i % 251);
    return 0;
}

/* size(x) -> the size of its argument (a value or a ref's object) */
static int size(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self;
    return ret_i64(ctx, nargs > 0 ? (int64_t)args[0].size : -1);
}

/* self_id() -> the bytes of rayc_actor_self */
static int self_id(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self, (void)args, (void)nargs;
    rayc_actor a = rayc_actor_self(ctx);
    return rayc_return(ctx, 0, a.id, sizeof(a.id));
}

/* fnv(buf [, ms]) -> a 64-bit FNV-1a of one byte a page of buf and its size,
 * after sleeping ms (so that many calls are pending at once) */
static int fnv(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)self;
    if (nargs < 1)
        return rayc_fail(ctx, "fnv(buf [, ms])");
    int64_t ms = nargs > 1 ? arg_i64(&args[1]) : 0;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    uint64_t h = 1469598103934665603ULL;
    const uint8_t *p = args[0].data;
    for (size_t i = 0; i < args[0].size; i += 4096)
        h = (h ^ p[i]) * 1099511628211ULL;
    if (args[0].size)
        h = (h ^ p[args[0].size - 1]) * 1099511628211ULL;
    h ^= args[0].size;
    return rayc_return(ctx, 0, &h, sizeof(h));
}

RAYC_ACTOR(Counter, counter_new, counter_free)
RAYC_METHOD(Counter, incr)
RAYC_METHOD(Counter, get)
RAYC_METHOD(Counter, pid)
RAYC_METHOD(Counter, node)
RAYC_METHOD(Counter, fail)
RAYC_METHOD(Counter, append)
RAYC_METHOD(Counter, nap)
RAYC_METHOD(Counter, big)
RAYC_METHOD(Counter, size)
RAYC_METHOD(Counter, self_id)
RAYC_METHOD(Counter, fnv)

/* ------------------------------------------------------------ Gauge */

/* A second class with a method of the same name as Counter's: method names
 * are per class. */
typedef struct {
    int64_t level;
} gauge;

static void *gauge_new(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)ctx;
    gauge *g = calloc(1, sizeof(*g));
    if (g)
        g->level = nargs > 0 ? arg_i64(&args[0]) * 1000 : 0;
    return g;
}

static int gauge_get(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    (void)args, (void)nargs;
    return ret_i64(ctx, ((gauge *)self)->level);
}

RAYC_ACTOR(Gauge, gauge_new, free)
RAYC_METHOD_AS(Gauge, get, gauge_get)

/* ------------------------------------------------------------ tasks */

/* call_incr(actor) -> what actor.incr(1) answered: an actor handle passed to
 * a task works from the worker running it. */
static int call_incr(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1 || args[0].size != sizeof(rayc_actor))
        return rayc_fail(ctx, "call_incr takes an actor handle");
    rayc_actor a;
    memcpy(&a, args[0].data, sizeof(a));
    rayc_ref r;
    int rc = rayc_actor_call(a, "incr", NULL, 0, NULL, &r);
    if (rc != RAYC_OK)
        return rayc_fail(ctx, "call: %s", rayc_last_error());
    rayc_value v;
    rc = rayc_get(&r, 1, &v, 60000);
    if (rc != RAYC_OK) {
        rayc_ref_release(r);
        return rayc_fail(ctx, "get: %s", rayc_last_error());
    }
    rc = rayc_return(ctx, 0, v.data, v.size);
    rayc_value_release(&v);
    rayc_ref_release(r);
    return rc;
}
RAYC_REMOTE(call_incr)
