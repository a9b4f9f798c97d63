/*
 * rayc.h -- the public C API of rayc, a distributed execution engine in the
 * architecture of Ray. One header, one library (librayc, -lrayc).
 *
 * Conventions
 *   - Every call returns int: RAYC_OK (0) or a negative RAYC_E* code.
 *     rayc_strerror(code) names a code; rayc_last_error() gives the detailed
 *     message of the calling thread's last failure.
 *   - Every call is thread-safe.
 *   - Each rayc_ref an API call hands you is one reference you own; give it
 *     back with rayc_ref_release().
 */
#ifndef RAYC_H
#define RAYC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RAYC_ABI_VERSION 1

/* Public entry points are the only symbols librayc exports. */
#define RAYC_PUBLIC __attribute__((visibility("default")))

/* ------------------------------------------------------------ error codes */

/* clang-format off */
/* X(name, value, message) -- the one table of codes; rayc_strerror() uses it. */
#define RAYC_ERRNO_MAP(X)                                                          \
    X(OK, 0, "success")                                                            \
    X(EINVAL, -1, "invalid argument")                                              \
    X(ETIMEDOUT, -2, "timed out")                                                  \
    X(ETASK, -3, "the task failed with an application error")                      \
    X(EWORKER_DIED, -4, "the worker running the task died")                        \
    X(EACTOR_DIED, -5, "the actor died")                                           \
    X(EOBJECT_LOST, -6, "the object was lost")                                     \
    X(ECANCELLED, -7, "the task was cancelled")                                    \
    X(ESTORE_FULL, -8, "the object store is full")                                 \
    X(ECONN, -9, "connection failed or lost")                                      \
    X(ENOTFOUND, -10, "not found")                                                 \
    X(EOF, -11, "end of stream")                                                   \
    X(ENOMEM, -12, "out of memory")                                                \
    X(EPROTO, -13, "protocol error")                                               \
    X(EAUTH, -14, "authentication failed (bad cluster token)")                     \
    X(EEXIST, -15, "already exists")                                               \
    X(EIO, -16, "input/output error")                                              \
    X(ENOTINIT, -17, "rayc_init has not been called")                              \
    X(EBUSY, -18, "resource busy")                                                 \
    X(EOOM, -19, "the task was killed because its node ran out of memory")
/* clang-format on */

enum {
#define RAYC__ENUM(name, value, msg) RAYC_##name = value,
    RAYC_ERRNO_MAP(RAYC__ENUM)
#undef RAYC__ENUM
};

/* Name of a code ("the object store is full"); never NULL. */
RAYC_PUBLIC const char *rayc_strerror(int code);
/* Detailed message of this thread's last failing call; "" if none. */
RAYC_PUBLIC const char *rayc_last_error(void);

/* ---------------------------------------------------------- start / stop */

typedef struct {
    const char *address;        /* "HOST:PORT", "auto" (this machine's session), "local" (new
                                   embedded cluster); NULL: $RAYC_ADDRESS, else "auto", else
                                   "local" */
    const char *const *code;    /* NULL-terminated paths of shared libraries with task functions
                                   and actor classes */
    const char *const *env;     /* NULL-terminated "KEY=VALUE" set in every worker of this job */
    const char *namespace_;     /* for named actors; NULL: a fresh anonymous namespace */
    double num_cpus;            /* embedded cluster only; 0: all cores */
    size_t object_store_memory; /* embedded cluster only; 0: default */
    int log_to_driver;          /* stream worker output here (default on: -1 means off) */
} rayc_init_opts;

RAYC_PUBLIC int rayc_init(const rayc_init_opts *opts); /* opts may be NULL */
RAYC_PUBLIC int rayc_shutdown(void);        /* ends the job; frees its objects and workers */
RAYC_PUBLIC const char *rayc_node_id(void); /* hex id of the node this process runs on */

typedef struct {
    char node_id[57]; /* hex */
    char address[64]; /* "IP:PORT" where this node's raylet listens for other raylets */
    int alive;
    double cpus_total, cpus_available, gpus_total, gpus_available;
    size_t store_capacity, store_used;
} rayc_node_info;
RAYC_PUBLIC int rayc_nodes(rayc_node_info *out, size_t cap, size_t *count);

/* ---------------------------------------------------------------- objects */

typedef struct {
    uint8_t id[28];
} rayc_ref; /* plain value; copy freely */

typedef struct {
    const void *data; /* zero-copy view for store objects; valid until released */
    size_t size;
    int status;        /* RAYC_OK, or why this value is an error */
    const char *error; /* the task's error message when status != RAYC_OK */
    void *priv_;
} rayc_value;

RAYC_PUBLIC int rayc_put(const void *data, size_t size, rayc_ref *out);
RAYC_PUBLIC int rayc_put_alloc(size_t size, void **buf, rayc_ref *out); /* write in place, then: */
RAYC_PUBLIC int rayc_put_seal(rayc_ref ref);
/* RAYC_OK when every value is OK, else the first failing value's code; each
 * out[i].status says which. timeout_ms -1: forever. On RAYC_ETIMEDOUT nothing
 * is left half-done: no value is handed out. */
RAYC_PUBLIC int rayc_get(const rayc_ref *refs, size_t n, rayc_value *out, int64_t timeout_ms);
RAYC_PUBLIC void rayc_value_release(rayc_value *v);
/* Returns how many are ready (>= 0), or a negative code. */
RAYC_PUBLIC int rayc_wait(const rayc_ref *refs, size_t n, size_t num_returns, int64_t timeout_ms,
                          int *ready /* n flags out */);
/* One more reference. On a ref this process does not own (its bytes came
 * from elsewhere), the first retain also registers it with the object's
 * owner as a borrower, waiting for the owner's answer: the owner keeps the
 * object until the last borrower's references are released too
 * (docs/objects.md, "Borrowing"). */
RAYC_PUBLIC void rayc_ref_retain(rayc_ref ref);
RAYC_PUBLIC void
rayc_ref_release(rayc_ref ref); /* each ref an API call hands you is one reference you own */

/* ------------------------------------------------------------------ tasks */

typedef struct {
    enum { RAYC_ARG_VALUE, RAYC_ARG_REF } kind;
    const void *data; /* RAYC_ARG_VALUE: copied at submit */
    size_t size;
    rayc_ref ref; /* RAYC_ARG_REF: the task gets the object's bytes */
} rayc_arg;
#define RAYC_VAL(ptr, len) ((rayc_arg){.kind = RAYC_ARG_VALUE, .data = (ptr), .size = (len)})
#define RAYC_REF(r)        ((rayc_arg){.kind = RAYC_ARG_REF, .ref = (r)})

/* A placement group (see "placement groups" below). */
typedef struct {
    uint8_t id[18];
} rayc_pg;

#define RAYC_STREAMING (-1)
enum { RAYC_SCHED_DEFAULT = 0, RAYC_SCHED_SPREAD = 1, RAYC_SCHED_NODE = 2 };

typedef struct {
    int num_returns; /* 0 means 1; RAYC_STREAMING for a generator */
    double num_cpus; /* 0 means 1 for tasks */
    double num_gpus;
    const char *resources; /* "name=amount,name=amount" */
    size_t memory;
    int max_retries;                /* system failures; 0 means default (3); -1 none */
    int retry_exceptions;           /* also retry application errors */
    int strategy;                   /* RAYC_SCHED_DEFAULT, RAYC_SCHED_SPREAD, RAYC_SCHED_NODE */
    const char *node_id;            /* hex, for RAYC_SCHED_NODE */
    int soft;                       /* node affinity may fall back */
    const char *name;               /* shown in listings and timelines */
    const rayc_pg *placement_group; /* run inside this group's bundle ... */
    int bundle_index;               /* ... of this index (-1: any bundle of the group) */
    int generator_backpressure;     /* streams: >0 makes rayc_yield wait while that many
                                       yielded items are not yet taken by rayc_stream_next; 0: no
                                       limit */
} rayc_task_opts;

RAYC_PUBLIC int rayc_submit(const char *function, const rayc_arg *args, size_t nargs,
                            const rayc_task_opts *opts /* NULL: defaults */,
                            rayc_ref *returns /* num_returns */);
RAYC_PUBLIC int rayc_cancel(rayc_ref ref, int force);

/* Streaming generators (docs/generators.md). The function yields items with
 * rayc_yield / rayc_yield_alloc; each item is an object of its own, owned by
 * the caller and handed out as soon as it is yielded, in order, once each
 * (also across retries of a worker that died). A generator that fails after
 * k items gives k items, then one item whose value is the error, then EOF.
 * opts->num_returns: 0 or RAYC_STREAMING. */
typedef struct rayc_stream rayc_stream;
RAYC_PUBLIC int rayc_submit_stream(const char *function, const rayc_arg *args, size_t nargs,
                                   const rayc_task_opts *opts, rayc_stream **out);
/* The next item: RAYC_OK with *out (a reference you own), RAYC_ETIMEDOUT when
 * none arrived within timeout_ms (-1: forever, 0: poll), RAYC_EOF after the
 * last item, every time after that too. */
RAYC_PUBLIC int rayc_stream_next(rayc_stream *s, rayc_ref *out,
                                 int64_t timeout_ms); /* RAYC_EOF at the end */
/* Free the stream; before the end it cancels the generator (it stops at its
 * next yield) and frees the items not taken. Items taken stay yours. Call it
 * once for every stream, also after RAYC_EOF. rayc_cancel(item, force) of
 * any item cancels the generator too. */
RAYC_PUBLIC void rayc_stream_close(rayc_stream *s);

/* -------------------------------------------------------------- task code */

typedef struct rayc_ctx rayc_ctx;
typedef struct {
    const void *data;
    size_t size;
} rayc_buf;

/* A task: args are the argument bytes, valid until it returns. 0 = success. */
typedef int (*rayc_fn)(rayc_ctx *ctx, const rayc_buf *args, size_t nargs);

RAYC_PUBLIC int rayc_return(rayc_ctx *ctx, size_t index, const void *data, size_t size);
RAYC_PUBLIC void *rayc_return_alloc(rayc_ctx *ctx, size_t index,
                                    size_t size); /* written in place */
/* A generator's next item (copied). Waits while generator_backpressure items
 * are not yet taken. RAYC_ECANCELLED once the caller closed or cancelled the
 * stream: return then. RAYC_EINVAL in a task that is not a generator. */
RAYC_PUBLIC int rayc_yield(rayc_ctx *ctx, const void *data, size_t size); /* streaming item */
/* The next item, written in place (large ones straight into the store); it
 * is sent at the next rayc_yield* or when the function returns 0 (a failing
 * generator drops it). NULL with rayc_last_error() set when it cannot be
 * had (RAYC_ECANCELLED, store full, not a generator). */
RAYC_PUBLIC void *rayc_yield_alloc(rayc_ctx *ctx, size_t size);
RAYC_PUBLIC int rayc_fail(rayc_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))); /* `return rayc_fail(ctx, ...);` */

typedef void *(*rayc_actor_new_fn)(rayc_ctx *ctx, const rayc_buf *args, size_t nargs);
typedef int (*rayc_method_fn)(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs);
typedef void (*rayc_actor_free_fn)(void *self);

/* clang-format off */
/* Symbols a task library exports; the worker finds them with dlsym(). */
#define RAYC__EXPORT __attribute__((visibility("default"), used))
#define RAYC_REMOTE(fn)                                                                     \
    RAYC__EXPORT const int rayc__abi_##fn = RAYC_ABI_VERSION;                               \
    RAYC__EXPORT rayc_fn rayc__fn_##fn = (fn);
#define RAYC_ACTOR(Class, new_fn, free_fn)                                                  \
    RAYC__EXPORT const int rayc__abi_##Class = RAYC_ABI_VERSION;                            \
    RAYC__EXPORT rayc_actor_new_fn rayc__new_##Class = (new_fn);                            \
    RAYC__EXPORT rayc_actor_free_fn rayc__free_##Class = (free_fn);
#define RAYC_METHOD(Class, method_fn)                                                       \
    RAYC__EXPORT rayc_method_fn rayc__method_##Class##__##method_fn = (method_fn);
/* Callable as "name": two classes of one file can both have a "get". */
#define RAYC_METHOD_AS(Class, name, method_fn)                                              \
    RAYC__EXPORT rayc_method_fn rayc__method_##Class##__##name = (method_fn);
/* clang-format on */

/* ----------------------------------------------------------------- actors */

typedef struct {
    uint8_t id[16];
} rayc_actor;
typedef struct {
    const char *name;     /* named actor, found with rayc_actor_get */
    int detached;         /* outlives its job */
    int max_restarts;     /* 0 none, -1 unbounded */
    int max_task_retries; /* retry calls across restarts (-1 unbounded) */
    int max_concurrency;  /* >1: calls run on that many threads */
    double num_cpus;      /* held for the actor's life (0: 1 CPU to be placed, none held) */
    double num_gpus;
    const char *resources;
    int get_if_exists; /* with name: hand back the live actor of that name instead of EEXIST */
    const rayc_pg *placement_group; /* live inside this group's bundle ... */
    int bundle_index;               /* ... of this index (-1: any bundle that fits) */
} rayc_actor_opts;

RAYC_PUBLIC int rayc_actor_create(const char *cls, const rayc_arg *args, size_t nargs,
                                  const rayc_actor_opts *opts, rayc_actor *out);
RAYC_PUBLIC int rayc_actor_call(rayc_actor actor, const char *method, const rayc_arg *args,
                                size_t nargs, const rayc_task_opts *opts, rayc_ref *returns);
RAYC_PUBLIC int rayc_actor_get(const char *name, const char *namespace_, rayc_actor *out);
RAYC_PUBLIC int rayc_actor_kill(rayc_actor actor, int no_restart);
/* The creator's handle: a non-detached actor whose creator released it (or
 * whose job ended) exits once the calls sent before are done. */
RAYC_PUBLIC int rayc_actor_release(rayc_actor actor);
RAYC_PUBLIC int rayc_actor_call_stream(rayc_actor actor, const char *method, const rayc_arg *args,
                                       size_t nargs, const rayc_task_opts *opts, rayc_stream **out);
RAYC_PUBLIC rayc_actor rayc_actor_self(rayc_ctx *ctx); /* inside a method: the actor running it */
/* "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD: <cause>". */
RAYC_PUBLIC int rayc_actor_state(rayc_actor actor, char *state, size_t cap);

/* ------------------------------------------------------- placement groups */

/* Bundles of resources reserved across the cluster atomically, with Ray's
 * strategies. Each bundle spec is "CPU=1,GPU=0,name=amount". */
enum { RAYC_PG_PACK = 0, RAYC_PG_SPREAD = 1, RAYC_PG_STRICT_PACK = 2, RAYC_PG_STRICT_SPREAD = 3 };

RAYC_PUBLIC int rayc_pg_create(const char *const *bundles, size_t nbundles, int strategy,
                               const char *name /* may be NULL */, rayc_pg *out);
/* RAYC_OK once every bundle is reserved; RAYC_ETIMEDOUT while it cannot be. */
RAYC_PUBLIC int rayc_pg_wait(rayc_pg pg, int64_t timeout_ms);
/* Frees the bundles; tasks running in them are killed (Ray's semantics). */
RAYC_PUBLIC int rayc_pg_remove(rayc_pg pg);
/* The hex id of the node bundle `bundle` is reserved on. */
RAYC_PUBLIC int rayc_pg_bundle_node(rayc_pg pg, size_t bundle, char node_id[57]);

#ifdef __cplusplus
}
#endif
#endif /* RAYC_H */
