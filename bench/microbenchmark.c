/*
 * microbenchmark.c -- Ray's `ray microbenchmark` for rayc, with Ray's case
 * names, so the numbers compare line by line with Ray's published figures.
 *
 *   build/bench/microbenchmark [--trials=5] [--seconds=1] [--only=SUBSTRING]
 *                              [--json] [--store=BYTES] [--clients=4]
 *                              [--address=HOST:PORT|auto|local] [--list]
 *
 * Cluster: --address, else $RAYC_ADDRESS, else "local" (a private embedded
 * cluster whose store is --store bytes, default 2 GiB). Before the first case
 * it waits (up to 120 s, not for a HOST:PORT address) until the raylet has
 * pre-faulted its store, and prints what that cost. Each case runs a short
 * warm-up, then --trials trials of about --seconds each, and prints
 *   <name> per second <mean> +- <stddev>
 * (population stddev over the trials, as Ray's timeit does). --json writes one
 * JSON document to stdout instead and the human output to stderr.
 *
 * Two cases need a second process, which this binary provides by re-executing
 * itself (internal flags --child-case=NAME and --child-multi):
 *   single_client_put_calls_Plasma_Store_small runs with
 *     RAYC_INLINE_OBJECT_MAX=0 (read by rayc_init), so 8-byte puts go to the
 *     store, as every ray.put does;
 *   multi_client_tasks_async runs --clients driver processes, each its own
 *     rayc_init on the same cluster (Ray uses several drivers too).
 * They join the same cluster: the given address, or for "local" the embedded
 * session found through the keeper process librayc started.
 *
 * Task cases need rayc_submit and build/bench/libbench_tasks.so (from
 * bench/lib/bench_tasks.c); until both exist they print "skipped: <why>".
 *
 * The generators section (bench_generators.h): the item rate of a generator
 * of 8-byte items, Modin's 64 x 16 MiB partitions as a list and as a stream
 * (time to the first partition, total time, the store's peak), and 50 tasks
 * given one 100 MiB value (the store's peak). Its measured rows print
 *   <name> <mean> +- <stddev> <unit>
 * (one figure per trial, not a rate).
 * Nothing here asserts on timing.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "rayc.h"

extern char **environ;

#define GIB_BYTES              ((size_t)1 << 30)
#define GB_PER_GIB             1.073741824 /* Ray reports decimal gigabytes */
#define MAX_TRIALS             100
#define MAX_CLIENTS            64
#define BATCH                  1000  /* tasks per async batch, as in Ray */
#define ACTORS_MAX             64    /* actors one case creates */
#define N_ACTORS               4     /* 1_n / n_n: actors (and calling threads) */
#define CREATE_BATCH           50    /* actors per creation round */
#define CALL_TIMEOUT_MS        60000 /* no call in a benchmark may hang forever */
#define CHILD_START_TIMEOUT_MS 120000
#define CHECK_FAILED           (-1000) /* a run function's own check failed (see B.err) */

/* ------------------------------------------------------------------ state */

typedef struct {
    double mean, p50, p99, min, max;
    size_t n;
} lat_stats;

enum {
    LAT_NONE = 0,
    LAT_FIRST_CACHED = 1, /* single_client_get_object_latency_1GiB */
    LAT_FIRST_ONLY = 2,   /* ..._other_process: first gets only */
};

typedef struct {
    const char *name;
    char status; /* 'o' ok, 's' skipped, 'f' failed */
    char msg[1024];
    const char *unit; /* what one "per second" counts */
    int n;
    double rates[MAX_TRIALS];
    double mean, sd;
    int latency;      /* LAT_*: latency stats instead of rates */
    lat_stats first;  /* both latency rows: the first rayc_get of each object */
    lat_stats cached; /* LAT_FIRST_CACHED only: the gets that find the pin cached */
    int measure;      /* K_MEASURE: rates[] hold figures in `unit`, not rates */
    double ray;       /* Ray's published figure on 64 vCPUs, 0: none */
} result;

static struct {
    int trials;
    double seconds;
    const char *only;
    int json;
    size_t store;
    int clients;
    const char *address;
    const char *child_case;
    int child_multi;
    char exe[PATH_MAX];
    char code_path[PATH_MAX + 32];
    int have_code;
    size_t inline_max;
    unsigned char *big; /* 1 GiB source buffer, touched */
    char embedded_root[PATH_MAX];
    long prefault_ms;       /* the store's pre-fault took this long; -1: unknown */
    long prefault_mib;      /* its size */
    double prefault_wait_s; /* how long we waited for it before measuring */
    FILE *out;              /* human-readable output */
    char err[1024];         /* why the last run function failed */
} B = {.trials = 5, .seconds = 1.0, .store = (size_t)2 << 30, .clients = 4, .prefault_ms = -1};

/* Record why a rayc call failed (call name, code, detail) and pass rc on.
 * Takes the detail before any other rayc call can replace it. */
static int fail(int rc, const char *call)
{
    snprintf(B.err, sizeof(B.err), "%s: %s (%s)", call, rayc_strerror(rc), rayc_last_error());
    return rc;
}

static int check_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int check_failed(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(B.err, sizeof(B.err), fmt, ap);
    va_end(ap);
    return CHECK_FAILED;
}

/* ------------------------------------------------------ object run functions */

typedef struct {
    size_t size;
    unsigned char *buf;
    rayc_ref ref;
    int have_ref;
    int units_per_batch; /* task cases: what one iteration counts */
    rayc_ref refs[BATCH];
    rayc_value vals[BATCH];
    int ready[BATCH];
    rayc_actor actors[ACTORS_MAX]; /* actor cases: killed with the state */
    int nactors;
    int with_arg;
} state;

static state *state_new(size_t size)
{
    state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->size = size;
    if (size) {
        s->buf = malloc(size);
        if (s->buf == NULL) {
            free(s);
            return NULL;
        }
        for (size_t i = 0; i < size; i++)
            s->buf[i] = (unsigned char)(i * 31 + 7);
    }
    return s;
}

static void state_free(void *p)
{
    state *s = p;
    if (s == NULL)
        return;
    if (s->have_ref)
        rayc_ref_release(s->ref);
    for (int i = 0; i < s->nactors; i++)
        rayc_actor_kill(s->actors[i], 1);
    free(s->buf);
    free(s);
}

static int setup_sized(void **st, size_t size)
{
    if ((*st = state_new(size)) == NULL)
        return check_failed("out of memory for a %zu-byte buffer", size);
    return 0;
}

/* Just over the inline threshold: the smallest object that goes to plasma. */
static int setup_put_store(void **st)
{
    return setup_sized(st, B.inline_max + 1);
}
/* Ray's put(0): a few bytes; in plasma because the child has inline max 0. */
static int setup_put_small(void **st)
{
    if (B.inline_max != 0)
        return check_failed("needs RAYC_INLINE_OBJECT_MAX=0 (have %zu)", B.inline_max);
    return setup_sized(st, 8);
}

static int run_put(void *p, double *units)
{
    state *s = p;
    rayc_ref ref;
    int rc = rayc_put(s->buf, s->size, &ref);
    if (rc != 0)
        return fail(rc, "rayc_put");
    rayc_ref_release(ref);
    *units += 1;
    return 0;
}

static int setup_get(void **st, size_t size)
{
    int rc = setup_sized(st, size);
    if (rc != 0)
        return rc;
    state *s = *st;
    rc = rayc_put(s->buf, s->size, &s->ref);
    if (rc != 0) {
        fail(rc, "rayc_put");
        state_free(s);
        *st = NULL;
        return rc;
    }
    s->have_ref = 1;
    return 0;
}
static int setup_get_inline(void **st)
{
    return setup_get(st, 8);
}
static int setup_get_store(void **st)
{
    return setup_get(st, B.inline_max + 1);
}

static int run_get(void *p, double *units)
{
    state *s = p;
    rayc_value v;
    int rc = rayc_get(&s->ref, 1, &v, CALL_TIMEOUT_MS);
    if (rc != 0)
        return fail(rc, "rayc_get");
    size_t size = v.size;
    rayc_value_release(&v);
    if (size != s->size)
        return check_failed("rayc_get returned %zu bytes, put %zu", size, s->size);
    *units += 1;
    return 0;
}

static int ensure_big(void)
{
    if (B.big)
        return 0;
    B.big = malloc(GIB_BYTES);
    if (B.big == NULL)
        return check_failed("out of memory for the 1 GiB source buffer");
    memset(B.big, 0x5a, GIB_BYTES); /* touched: we measure the store, not page faults */
    B.big[0] = 1;
    B.big[GIB_BYTES - 1] = 2;
    return 0;
}

static int setup_put_gb(void **st)
{
    *st = NULL;
    return ensure_big();
}

static int run_put_gb(void *p, double *units)
{
    (void)p;
    rayc_ref ref;
    int rc = rayc_put(B.big, GIB_BYTES, &ref);
    if (rc != 0)
        return fail(rc, "rayc_put(1 GiB)");
    rayc_ref_release(ref);
    *units += GB_PER_GIB;
    return 0;
}

/* -------------------------------------------------------- task run functions */

static int have_tasks(void)
{
    if (!B.have_code)
        return check_failed("%s not found (build it from bench/lib/bench_tasks.c)", B.code_path);
    return 0;
}

static int setup_tasks(void **st, int units_per_batch)
{
    int rc = have_tasks();
    if (rc != 0)
        return rc;
    rc = setup_sized(st, 0);
    if (rc == 0)
        ((state *)*st)->units_per_batch = units_per_batch;
    return rc;
}
static int setup_tasks_per_task(void **st)
{
    return setup_tasks(st, BATCH);
}
static int setup_tasks_per_batch(void **st)
{
    return setup_tasks(st, 1);
}

/* Ray: ray.get(small_value.remote()) */
static int run_task_sync(void *p, double *units)
{
    (void)p;
    rayc_ref ref;
    int rc = rayc_submit("small_value", NULL, 0, NULL, &ref);
    if (rc != 0)
        return fail(rc, "rayc_submit(small_value)");
    rayc_value v;
    rc = rayc_get(&ref, 1, &v, CALL_TIMEOUT_MS);
    if (rc != 0) {
        fail(rc, "rayc_get(small_value result)");
        rayc_ref_release(ref);
        return rc;
    }
    size_t size = v.size;
    rayc_value_release(&v);
    rayc_ref_release(ref);
    if (size != 8)
        return check_failed("small_value returned %zu bytes, not 8", size);
    *units += 1;
    return 0;
}

static void release_refs(rayc_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rayc_ref_release(refs[i]);
}

static int submit_batch(state *s, const char *fn)
{
    for (size_t i = 0; i < BATCH; i++) {
        int rc = rayc_submit(fn, NULL, 0, NULL, &s->refs[i]);
        if (rc != 0) {
            fail(rc, fn[0] == 'n' ? "rayc_submit(noop)" : "rayc_submit(small_value)");
            release_refs(s->refs, i);
            return rc;
        }
    }
    return 0;
}

/* Ray: ray.get([small_value.remote() for _ in range(1000)]) */
static int run_task_batch(void *p, double *units)
{
    state *s = p;
    int rc = submit_batch(s, "small_value");
    if (rc != 0)
        return rc;
    rc = rayc_get(s->refs, BATCH, s->vals, CALL_TIMEOUT_MS);
    if (rc != 0) {
        fail(rc, "rayc_get(1000 small_value results)");
        release_refs(s->refs, BATCH);
        return rc;
    }
    size_t bad = 0;
    for (size_t i = 0; i < BATCH; i++) {
        bad += s->vals[i].size != 8;
        rayc_value_release(&s->vals[i]);
    }
    release_refs(s->refs, BATCH);
    if (bad)
        return check_failed("%zu of %d small_value results were not 8 bytes", bad, BATCH);
    *units += s->units_per_batch;
    return 0;
}

/* Ray: not_ready = [small_value.remote() ...]; 1000 x ray.wait(not_ready).
 * Each call takes one ready ref out, as Ray's num_returns=1 wait does. */
static int run_wait_1k(void *p, double *units)
{
    state *s = p;
    int rc = submit_batch(s, "noop");
    if (rc != 0)
        return rc;
    size_t n = BATCH;
    while (n > 0) {
        rc = rayc_wait(s->refs, n, 1, CALL_TIMEOUT_MS, s->ready);
        if (rc <= 0) {
            if (rc == 0)
                check_failed("rayc_wait: nothing ready after %d ms", CALL_TIMEOUT_MS);
            else
                fail(rc, "rayc_wait");
            release_refs(s->refs, n);
            return rc == 0 ? CHECK_FAILED : rc;
        }
        size_t i = 0;
        while (!s->ready[i])
            i++;
        rayc_ref_release(s->refs[i]);
        s->refs[i] = s->refs[--n];
    }
    *units += 1;
    return 0;
}

/* ------------------------------------------------------ actor run functions */

/* Create n Bench actors (max_concurrency mc) and wait until each answers. */
static int make_actors(state *s, int n, int mc)
{
    rayc_actor_opts o = {.max_concurrency = mc};
    for (int i = 0; i < n; i++) {
        int rc = rayc_actor_create("Bench", NULL, 0, &o, &s->actors[s->nactors]);
        if (rc != 0)
            return fail(rc, "rayc_actor_create(Bench)");
        s->nactors++;
    }
    for (int i = s->nactors - n; i < s->nactors; i++) {
        rayc_ref r;
        rayc_value v;
        int rc = rayc_actor_call(s->actors[i], "small_value", NULL, 0, NULL, &r);
        if (rc == 0)
            rc = rayc_get(&r, 1, &v, CALL_TIMEOUT_MS);
        if (rc != 0)
            return fail(rc, "the first call of a new actor");
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    return 0;
}

static int setup_actor(void **st, int n, int mc, int units_per_batch)
{
    int rc = setup_tasks(st, units_per_batch);
    if (rc == 0)
        rc = make_actors(*st, n, mc);
    return rc;
}
static int setup_one_actor(void **st)
{
    return setup_actor(st, 1, 1, BATCH);
}
static int setup_one_concurrent_actor(void **st)
{
    return setup_actor(st, 1, 16, BATCH);
}
static int setup_n_actors(void **st)
{
    return setup_actor(st, N_ACTORS, 1, BATCH);
}
static int setup_n_actors_arg(void **st)
{
    int rc = setup_actor(st, N_ACTORS, 1, BATCH);
    if (rc == 0)
        ((state *)*st)->with_arg = 1;
    return rc;
}
static int setup_creation(void **st)
{
    return setup_tasks(st, CREATE_BATCH);
}

/* Ray: ray.get(actor.small_value.remote()) */
static int run_actor_sync(void *p, double *units)
{
    state *s = p;
    rayc_ref r;
    rayc_value v;
    int rc = rayc_actor_call(s->actors[0], "small_value", NULL, 0, NULL, &r);
    if (rc != 0)
        return fail(rc, "rayc_actor_call");
    rc = rayc_get(&r, 1, &v, CALL_TIMEOUT_MS);
    size_t size = v.size;
    if (rc == 0)
        rayc_value_release(&v);
    rayc_ref_release(r);
    if (rc != 0)
        return fail(rc, "rayc_get(an actor call)");
    if (size != 8)
        return check_failed("small_value returned %zu bytes, not 8", size);
    *units += 1;
    return 0;
}

/* One batch of BATCH calls from this thread over actors[first, first + n),
 * round robin, then a get of all of them. */
static int actor_batch(state *s, int first, int n, rayc_ref *refs, rayc_value *vals)
{
    uint64_t arg = 42;
    rayc_arg a = RAYC_VAL(&arg, sizeof(arg));
    for (size_t i = 0; i < BATCH; i++) {
        int rc = rayc_actor_call(s->actors[first + (int)(i % (size_t)n)], "small_value", &a,
                                 s->with_arg ? 1 : 0, NULL, &refs[i]);
        if (rc != 0) {
            release_refs(refs, i);
            return fail(rc, "rayc_actor_call");
        }
    }
    int rc = rayc_get(refs, BATCH, vals, CALL_TIMEOUT_MS);
    if (rc != 0) {
        fail(rc, "rayc_get(1000 actor calls)");
        release_refs(refs, BATCH);
        return rc;
    }
    size_t bad = 0;
    for (size_t i = 0; i < BATCH; i++) {
        bad += vals[i].size != 8;
        rayc_value_release(&vals[i]);
    }
    release_refs(refs, BATCH);
    return bad ? check_failed("%zu of %d actor results were not 8 bytes", bad, BATCH) : 0;
}

/* Ray: ray.get([actor.small_value.remote() for _ in range(1000)]), over
 * every actor of the state (1_1: one; 1_n: N_ACTORS). */
static int run_actor_batch(void *p, double *units)
{
    state *s = p;
    int rc = actor_batch(s, 0, s->nactors, s->refs, s->vals);
    if (rc == 0)
        *units += s->units_per_batch;
    return rc;
}

typedef struct {
    state *s;
    int index;
    int rc;
    rayc_ref refs[BATCH];
    rayc_value vals[BATCH];
} nn_thread;

static void *nn_main(void *p)
{
    nn_thread *t = p;
    t->rc = actor_batch(t->s, t->index, 1, t->refs, t->vals);
    return NULL;
}

/* n callers, each with its own actor, calling at once (Ray's n_n: n driver
 * processes; here n threads of one driver, each its own caller of its own
 * actor). */
static int run_actor_nn(void *p, double *units)
{
    state *s = p;
    static nn_thread th[N_ACTORS];
    pthread_t tid[N_ACTORS];
    for (int i = 0; i < N_ACTORS; i++) {
        th[i] = (nn_thread){.s = s, .index = i};
        pthread_create(&tid[i], NULL, nn_main, &th[i]);
    }
    int rc = 0;
    for (int i = 0; i < N_ACTORS; i++) {
        pthread_join(tid[i], NULL);
        if (th[i].rc != 0)
            rc = th[i].rc;
    }
    if (rc == 0)
        *units += (double)N_ACTORS * BATCH;
    return rc;
}

/* Actor creation: CREATE_BATCH new actors, each answering its first call,
 * then killed. */
static int run_actor_creation(void *p, double *units)
{
    state *s = p;
    s->nactors = 0;
    int rc = make_actors(s, CREATE_BATCH, 1);
    for (int i = 0; i < s->nactors; i++)
        rayc_actor_kill(s->actors[i], 1);
    s->nactors = 0;
    if (rc == 0)
        *units += CREATE_BATCH;
    return rc;
}

/* Ray's placement_group_create/removal: a one-bundle group created, waited
 * for (reserved on a raylet in two phases) and removed. */
static int run_pg_create_remove(void *p, double *units)
{
    (void)p;
    const char *b[] = {"CPU=0.01"};
    rayc_pg pg;
    int rc = rayc_pg_create(b, 1, RAYC_PG_PACK, NULL, &pg);
    if (rc != 0)
        return fail(rc, "rayc_pg_create");
    if ((rc = rayc_pg_wait(pg, CALL_TIMEOUT_MS)) != 0)
        return fail(rc, "rayc_pg_wait");
    if ((rc = rayc_pg_remove(pg)) != 0)
        return fail(rc, "rayc_pg_remove");
    *units += 1;
    return 0;
}

/* ------------------------------------------------------------------ cases */

/* The generators section (issue 11): its setup/run functions. */
#include "bench_generators.h"

typedef enum { K_RATE, K_LATENCY, K_LATENCY_OTHER, K_CHILD_ENV, K_MULTI, K_MEASURE } case_kind;

typedef struct {
    const char *name;
    case_kind kind;
    int task;
    const char *unit;
    unsigned batch; /* iterations between clock reads */
    int (*setup)(void **st);
    int (*run)(void *st, double *units);
    double ray; /* Ray's published figure (64 vCPUs), 0 none */
} bench_case;

static const bench_case CASES[] = {
    {"single_client_get_calls", K_RATE, 0, "gets", 256, setup_get_inline, run_get, 10620},
    {"single_client_get_calls_Plasma_Store", K_RATE, 0, "gets", 256, setup_get_store, run_get,
     10620},
    {"single_client_put_calls_Plasma_Store", K_RATE, 0, "puts", 8, setup_put_store, run_put, 5173},
    {"single_client_put_calls_Plasma_Store_small", K_CHILD_ENV, 0, "puts", 8, setup_put_small,
     run_put, 5173},
    {"single_client_put_gigabytes", K_RATE, 0, "GB", 1, setup_put_gb, run_put_gb, 19.9},
    {"single_client_get_object_latency_1GiB", K_LATENCY, 0, "us", 1, NULL, NULL, 0},
    {"single_client_get_object_latency_1GiB_other_process", K_LATENCY_OTHER, 1, "us", 1, NULL, NULL,
     0},
    {"single_client_tasks_sync", K_RATE, 1, "tasks", 1, setup_tasks_per_task, run_task_sync, 981},
    {"single_client_tasks_async", K_RATE, 1, "tasks", 1, setup_tasks_per_task, run_task_batch,
     8041},
    {"multi_client_tasks_async", K_MULTI, 1, "tasks", 1, NULL, NULL, 21230},
    {"single_client_tasks_and_get_batch", K_RATE, 1, "batches of 1000 tasks", 1,
     setup_tasks_per_batch, run_task_batch, 0},
    {"single_client_wait_1k_refs", K_RATE, 1, "rounds of 1000 waits", 1, setup_tasks_per_task,
     run_wait_1k, 0},
    {"1_1_actor_calls_sync", K_RATE, 1, "calls", 64, setup_one_actor, run_actor_sync, 2012},
    {"1_1_actor_calls_async", K_RATE, 1, "calls", 1, setup_one_actor, run_actor_batch, 8664},
    {"1_1_actor_calls_concurrent", K_RATE, 1, "calls", 1, setup_one_concurrent_actor,
     run_actor_batch, 0},
    {"1_n_actor_calls_async", K_RATE, 1, "calls", 1, setup_n_actors, run_actor_batch, 0},
    {"n_n_actor_calls_async", K_RATE, 1, "calls", 1, setup_n_actors, run_actor_nn, 27376},
    {"n_n_actor_calls_with_arg_async", K_RATE, 1, "calls", 1, setup_n_actors_arg, run_actor_nn, 0},
    {"actor_creation", K_RATE, 1, "actors", 1, setup_creation, run_actor_creation, 0},
    {"placement_group_create_removal", K_RATE, 1, "groups", 1, setup_tasks_per_batch,
     run_pg_create_remove, 765},
    /* generators (bench_generators.h) */
    {"generator_items_8B", K_RATE, 1, "items", 1, setup_gen_items, run_gen_items, 0},
    {"generators_modin_list_first_partition", K_MEASURE, 1, "s", 1, setup_modin_list_first,
     gen_row_value, 0},
    {"generators_modin_list_total", K_MEASURE, 1, "s", 1, setup_modin_list_total, gen_row_value, 0},
    {"generators_modin_list_peak_store", K_MEASURE, 1, "MiB", 1, setup_modin_list_peak,
     gen_row_value, 0},
    {"generators_modin_stream_bp4_first_partition", K_MEASURE, 1, "s", 1, setup_modin_stream_first,
     gen_row_value, 0},
    {"generators_modin_stream_bp4_total", K_MEASURE, 1, "s", 1, setup_modin_stream_total,
     gen_row_value, 0},
    {"generators_modin_stream_bp4_peak_store", K_MEASURE, 1, "MiB", 1, setup_modin_stream_peak,
     gen_row_value, 0},
    {"generators_dedup_50x100MiB_peak_store", K_MEASURE, 1, "MiB", 1, setup_dedup_peak,
     gen_row_value, 0},
    {"generators_dedup_50x100MiB_total", K_MEASURE, 1, "s", 1, setup_dedup_total, gen_row_value, 0},
};
#define NCASES (sizeof(CASES) / sizeof(CASES[0]))

static void finish_rates(result *r)
{
    double sum = 0, sq = 0;
    for (int i = 0; i < r->n; i++)
        sum += r->rates[i];
    r->mean = r->n ? sum / r->n : 0;
    for (int i = 0; i < r->n; i++)
        sq += (r->rates[i] - r->mean) * (r->rates[i] - r->mean);
    r->sd = r->n ? sqrt(sq / r->n) : 0;
    r->status = 'o';
}

static void set_status(result *r, char status, const char *msg)
{
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

static void run_rate(const bench_case *c, result *r)
{
    void *st = NULL;
    double units = 0;
    int rc = c->setup ? c->setup(&st) : 0;
    /* The first call decides "skipped" for task cases (the task system may
     * not exist yet); for object cases every failure is a failure. */
    if (rc == 0)
        rc = c->run(st, &units);
    if (rc != 0) {
        set_status(r, c->task ? 's' : 'f', B.err);
        goto out;
    }
    for (double t0 = now_s(); now_s() - t0 < B.seconds * 0.1;) /* warm-up */
        if ((rc = c->run(st, &units)) != 0)
            goto failed;
    for (int t = 0; t < B.trials; t++) {
        units = 0;
        double t0 = now_s(), el;
        do {
            for (unsigned k = 0; k < c->batch; k++)
                if ((rc = c->run(st, &units)) != 0)
                    goto failed;
        } while ((el = now_s() - t0) < B.seconds);
        r->rates[r->n++] = units / el;
    }
    finish_rates(r);
    goto out;
failed:
    set_status(r, 'f', B.err);
out:
    state_free(st);
}

/* A measured row: one figure per trial (setup measured them). */
static void run_measure(const bench_case *c, result *r)
{
    void *st = NULL;
    int rc = c->setup(&st);
    for (int t = 0; rc == 0 && t < B.trials; t++)
        rc = c->run(st, &r->rates[r->n++]);
    if (rc != 0) {
        set_status(r, c->task ? 's' : 'f', B.err);
        return;
    }
    finish_rates(r);
    r->measure = 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static lat_stats lat_of(double *v, size_t n)
{
    lat_stats s = {0};
    if (n == 0)
        return s;
    qsort(v, n, sizeof(*v), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    size_t i99 = (size_t)ceil(0.99 * (double)n);
    s.n = n;
    s.mean = sum / (double)n;
    s.p50 = v[(n - 1) / 2];
    s.p99 = v[i99 ? i99 - 1 : 0];
    s.min = v[0];
    s.max = v[n - 1];
    return s;
}

/* single_client_get_object_latency_1GiB: put a 1 GiB object (untimed), time
 * the first rayc_get (a round trip to the store for a pin) and then 1000
 * gets that find the pin cached in this process. */
static void run_latency(const bench_case *c, result *r)
{
    (void)c;
    enum { CACHED_PER_OBJECT = 1000 };
    size_t nf = 0, nc = 0, cap_f = 64, cap_c = 64 * CACHED_PER_OBJECT;
    double *first = malloc(cap_f * sizeof(double)), *cached = malloc(cap_c * sizeof(double));
    int rc = ensure_big();
    if (first == NULL || cached == NULL)
        rc = check_failed("out of memory");
    for (int t = 0; rc == 0 && t < B.trials; t++) {
        double t0 = now_s();
        do {
            rayc_ref ref;
            rayc_value v;
            if ((rc = rayc_put(B.big, GIB_BYTES, &ref)) != 0) {
                fail(rc, "rayc_put(1 GiB)");
                break;
            }
            double a = now_s();
            rc = rayc_get(&ref, 1, &v, CALL_TIMEOUT_MS);
            double b = now_s();
            if (rc != 0) {
                fail(rc, "rayc_get(1 GiB, first)");
                rayc_ref_release(ref);
                break;
            }
            const unsigned char *d = v.data;
            if (v.size != GIB_BYTES || d[0] != 1 || d[GIB_BYTES / 2] != 0x5a ||
                d[GIB_BYTES - 1] != 2)
                rc = check_failed("rayc_get(1 GiB): wrong size (%zu) or bytes", v.size);
            rayc_value_release(&v);
            if (nf == cap_f) {
                double *g = realloc(first, (cap_f *= 2) * sizeof(double));
                if (g == NULL)
                    rc = check_failed("out of memory");
                else
                    first = g;
            }
            if (rc == 0)
                first[nf++] = (b - a) * 1e6;
            for (int k = 0; rc == 0 && k < CACHED_PER_OBJECT; k++) {
                a = now_s();
                rc = rayc_get(&ref, 1, &v, CALL_TIMEOUT_MS);
                b = now_s();
                if (rc != 0) {
                    fail(rc, "rayc_get(1 GiB, cached)");
                    break;
                }
                rayc_value_release(&v);
                if (nc == cap_c) {
                    double *g = realloc(cached, (cap_c *= 2) * sizeof(double));
                    if (g == NULL) {
                        rc = check_failed("out of memory");
                        break;
                    }
                    cached = g;
                }
                cached[nc++] = (b - a) * 1e6;
            }
            rayc_ref_release(ref);
        } while (rc == 0 && now_s() - t0 < B.seconds);
    }
    if (rc != 0) {
        set_status(r, 'f', B.err);
    } else {
        r->latency = LAT_FIRST_CACHED;
        r->first = lat_of(first, nf);
        r->cached = lat_of(cached, nc);
        r->status = 'o';
    }
    free(first);
    free(cached);
}

/* Append x to the growable array *v (*n used of *cap); CHECK_FAILED when
 * out of memory. */
static int push_sample(double **v, size_t *n, size_t *cap, double x)
{
    if (*n == *cap) {
        double *g = realloc(*v, (*cap *= 2) * sizeof(double));
        if (g == NULL)
            return check_failed("out of memory");
        *v = g;
    }
    (*v)[(*n)++] = x;
    return 0;
}

/* Fewest first gets the _other_process row takes over all trials: each
 * sample costs a 1 GiB fill by the worker (~0.1-0.5 s), so a trial of
 * --seconds may hold only a few. */
#define OTHER_MIN_SAMPLES 10

/* single_client_get_object_latency_1GiB_other_process: a worker task
 * (make_object in bench_tasks.c) writes a 1 GiB object into the store and
 * seals it; the driver waits until it is ready (untimed), then times only
 * its first rayc_get, which has no cached pin in this process (one round
 * trip to the raylet), and checks the size and the three marker bytes. The
 * task is pinned to this driver's node (RAYC_SCHED_NODE). A new object each
 * time; each trial runs for --seconds and for at least its share of
 * OTHER_MIN_SAMPLES objects. Until rayc_submit or libbench_tasks.so works,
 * the case is skipped. */
static void run_latency_other(const bench_case *c, result *r)
{
    (void)c;
    size_t nf = 0, cap_f = 64;
    double *first = malloc(cap_f * sizeof(double));
    int rc = have_tasks(), skip = rc != 0;
    if (rc == 0 && first == NULL)
        rc = check_failed("out of memory");
    int min_per_trial = (OTHER_MIN_SAMPLES + B.trials - 1) / B.trials;
    /* Pinned to this node: on a multi-node cluster the get must stay a local
     * pin, not a transfer. */
    rayc_task_opts topts = {.strategy = RAYC_SCHED_NODE, .node_id = rayc_node_id(), .soft = 0};
    if (rc == 0 && (topts.node_id == NULL || !*topts.node_id))
        rc = check_failed("rayc_node_id: no node id for this driver");
    uint64_t size = GIB_BYTES, seed = 0;
    for (int t = 0; rc == 0 && t < B.trials; t++) {
        double t0 = now_s();
        int k = 0;
        do {
            rayc_ref ref;
            rayc_value v = {0};
            int ready = 0;
            seed++;
            rayc_arg args[2] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
            if ((rc = rayc_submit("make_object", args, 2, &topts, &ref)) != 0) {
                fail(rc, "rayc_submit(make_object)");
                skip = nf == 0; /* the first call decides "skipped", as in run_rate */
                break;
            }
            rc = rayc_wait(&ref, 1, 1, CALL_TIMEOUT_MS, &ready);
            if (rc != 1) {
                if (rc >= 0)
                    rc = check_failed("rayc_wait(make_object 1 GiB): not ready after %d ms",
                                      CALL_TIMEOUT_MS);
                else
                    fail(rc, "rayc_wait(make_object 1 GiB)");
                rayc_ref_release(ref);
                break;
            }
            double a = now_s();
            rc = rayc_get(&ref, 1, &v, CALL_TIMEOUT_MS);
            double b = now_s();
            if (rc != 0) {
                fail(rc, "rayc_get(1 GiB from make_object, first)");
                if (v.status != 0 && v.error) /* the task's own message says more */
                    snprintf(B.err + strlen(B.err), sizeof(B.err) - strlen(B.err), ": %s", v.error);
                rayc_value_release(&v);
                rayc_ref_release(ref);
                break;
            }
            const unsigned char *d = v.data;
            unsigned char s0 = (unsigned char)seed;
            if (v.size != GIB_BYTES || d[0] != s0 || d[GIB_BYTES / 2] != (s0 ^ 0xff) ||
                d[GIB_BYTES - 1] != (unsigned char)(s0 + 1) || d[1] != 0x5a ||
                d[GIB_BYTES - 2] != 0x5a)
                rc = check_failed("rayc_get(1 GiB from make_object): wrong size (%zu) or bytes",
                                  v.size);
            rayc_value_release(&v);
            rayc_ref_release(ref);
            if (rc == 0)
                rc = push_sample(&first, &nf, &cap_f, (b - a) * 1e6);
            k++;
        } while (rc == 0 && (now_s() - t0 < B.seconds || k < min_per_trial));
    }
    if (rc != 0) {
        set_status(r, skip ? 's' : 'f', B.err);
    } else {
        r->latency = LAT_FIRST_ONLY;
        r->first = lat_of(first, nf);
        r->status = 'o';
    }
    free(first);
}

/* ------------------------------------------------------ child processes */

typedef struct {
    pid_t pid;
    int to, from; /* its stdin, its stdout */
    char buf[4096];
    size_t len;
} child_t;

/* The address a child uses to join our cluster, and the env it needs. */
static const char *child_address(char *env_tmp, size_t len)
{
    env_tmp[0] = '\0';
    if (B.embedded_root[0]) {
        snprintf(env_tmp, len, "RAYC_TEMP_DIR=%s", B.embedded_root);
        return "auto";
    }
    return B.address;
}

static int spawn_child(child_t *ch, char *const argv[], const char *const extra_env[])
{
    size_t n = 0, nextra = 0;
    while (environ[n])
        n++;
    while (extra_env[nextra])
        nextra++;
    char **envp = calloc(n + nextra + 1, sizeof(char *));
    if (envp == NULL)
        return check_failed("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int overridden = 0;
        for (size_t j = 0; j < nextra; j++) {
            size_t kl = strcspn(extra_env[j], "=") + 1;
            overridden |= strncmp(environ[i], extra_env[j], kl) == 0;
        }
        if (!overridden)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < nextra; j++)
        envp[k++] = (char *)extra_env[j];
    envp[k] = NULL;

    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) {
        free(envp);
        return check_failed("pipe: %s", strerror(errno));
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        free(envp);
        return check_failed("pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    int err = posix_spawn(&ch->pid, B.exe, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(in[0]);
    close(out[1]);
    if (err != 0) {
        close(in[1]);
        close(out[0]);
        ch->pid = -1;
        return check_failed("spawning %s: %s", B.exe, strerror(err));
    }
    ch->to = in[1];
    ch->from = out[0];
    ch->len = 0;
    return 0;
}

/* One line from a child, waiting until the deadline (now_s() clock). */
static int child_line(child_t *ch, char *line, size_t cap, double deadline)
{
    for (;;) {
        char *nl = memchr(ch->buf, '\n', ch->len);
        if (nl) {
            size_t l = (size_t)(nl - ch->buf);
            snprintf(line, cap, "%.*s", (int)l, ch->buf);
            memmove(ch->buf, nl + 1, ch->len - l - 1);
            ch->len -= l + 1;
            return 0;
        }
        if (ch->len == sizeof(ch->buf))
            ch->len = 0; /* an overlong line: drop it */
        double left = deadline - now_s();
        if (left <= 0)
            return check_failed("child %d: no answer in time", (int)ch->pid);
        struct pollfd pfd = {.fd = ch->from, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno != EINTR)
            return check_failed("poll: %s", strerror(errno));
        if (pr <= 0)
            continue;
        ssize_t got = read(ch->from, ch->buf + ch->len, sizeof(ch->buf) - ch->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return check_failed("child %d exited without answering", (int)ch->pid);
        ch->len += (size_t)got;
    }
}

static void child_send(child_t *ch, const char *msg)
{
    size_t l = strlen(msg);
    if (write(ch->to, msg, l) != (ssize_t)l) {
        /* it died: its next read reports that */
    }
}

static void child_end(child_t *ch)
{
    if (ch->pid <= 0)
        return;
    close(ch->to);
    int status;
    for (double deadline = now_s() + 30; waitpid(ch->pid, &status, WNOHANG) == 0;) {
        if (now_s() > deadline) {
            kill(ch->pid, SIGKILL);
            waitpid(ch->pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    close(ch->from);
    ch->pid = -1;
}

static void fmt_flag(char *buf, size_t len, const char *name, const char *value)
{
    snprintf(buf, len, "--%s=%s", name, value);
}

/* A case that must run in a process whose env has RAYC_INLINE_OBJECT_MAX=0. */
static void run_child_env(const bench_case *c, result *r)
{
    if (B.inline_max == 0) {
        run_rate(c, r);
        return;
    }
    char a_case[256], a_trials[64], a_secs[64], a_addr[PATH_MAX], tmp_env[PATH_MAX + 32];
    const char *addr = child_address(tmp_env, sizeof(tmp_env));
    fmt_flag(a_case, sizeof(a_case), "child-case", c->name);
    snprintf(a_trials, sizeof(a_trials), "--trials=%d", B.trials);
    snprintf(a_secs, sizeof(a_secs), "--seconds=%g", B.seconds);
    fmt_flag(a_addr, sizeof(a_addr), "address", addr);
    char *argv[] = {B.exe, a_case, a_trials, a_secs, a_addr, NULL};
    const char *env[] = {"RAYC_INLINE_OBJECT_MAX=0", tmp_env[0] ? tmp_env : NULL, NULL};
    child_t ch = {.pid = -1};
    if (spawn_child(&ch, argv, env) != 0) {
        set_status(r, 'f', B.err);
        return;
    }
    char line[4096];
    double deadline = now_s() + CHILD_START_TIMEOUT_MS / 1000.0 + B.trials * B.seconds * 10;
    int rc;
    while ((rc = child_line(&ch, line, sizeof(line), deadline)) == 0 && line[0] != '@') {
    }
    if (rc != 0) {
        set_status(r, 'f', B.err);
    } else if (strncmp(line, "@ok ", 4) == 0) {
        char *p = line + 4, *end;
        long n = strtol(p, &end, 10);
        for (long i = 0; i < n && i < MAX_TRIALS; i++, p = end)
            r->rates[r->n++] = strtod(end, &end);
        finish_rates(r);
    } else {
        set_status(r, line[1] == 's' ? 's' : 'f', strchr(line, ' ') ? strchr(line, ' ') + 1 : "");
    }
    child_end(&ch);
}

/* multi_client_tasks_async: --clients driver processes, each submitting
 * batches of 1000 small_value tasks and getting them, all at once; the rate
 * is all their tasks over the wall time from "go" to the last "done". */
static void run_multi(const bench_case *c, result *r)
{
    (void)c;
    if (have_tasks() != 0) {
        set_status(r, 's', B.err);
        return;
    }
    int n = B.clients;
    child_t ch[MAX_CLIENTS];
    char a_addr[PATH_MAX], tmp_env[PATH_MAX + 32], line[4096], cmd[64];
    const char *addr = child_address(tmp_env, sizeof(tmp_env));
    fmt_flag(a_addr, sizeof(a_addr), "address", addr);
    char *argv[] = {B.exe, "--child-multi", a_addr, NULL};
    const char *env[] = {tmp_env[0] ? tmp_env : NULL, NULL};
    int started = 0, rc = 0;
    char status = 'f';
    for (; started < n; started++)
        if ((rc = spawn_child(&ch[started], argv, env)) != 0)
            break;
    double deadline = now_s() + CHILD_START_TIMEOUT_MS / 1000.0;
    for (int i = 0; rc == 0 && i < started; i++) {
        if ((rc = child_line(&ch[i], line, sizeof(line), deadline)) != 0)
            break;
        if (strcmp(line, "ready") != 0) {
            rc = check_failed("client %d: %s", i, line);
            status = 's'; /* rayc_init of a client: its "first call" */
        }
    }
    /* Warm-up round (first submits: "skipped" if they fail), then trials. */
    for (int t = -1; rc == 0 && t < B.trials; t++) {
        double secs = t < 0 ? B.seconds * 0.2 : B.seconds;
        snprintf(cmd, sizeof(cmd), "go %g\n", secs);
        double t0 = now_s(), tasks = 0;
        for (int i = 0; i < started; i++)
            child_send(&ch[i], cmd);
        for (int i = 0; i < started; i++) {
            double d = now_s() + secs * 10 + CALL_TIMEOUT_MS / 1000.0 * 2;
            if ((rc = child_line(&ch[i], line, sizeof(line), d)) != 0)
                break;
            double got;
            if (sscanf(line, "done %lf", &got) == 1) {
                tasks += got;
            } else {
                rc = check_failed("client %d: %s", i, line);
                status = t < 0 ? 's' : 'f';
            }
        }
        double el = now_s() - t0;
        if (rc == 0 && t >= 0)
            r->rates[r->n++] = tasks / el;
    }
    if (rc == 0)
        finish_rates(r);
    else
        set_status(r, status, B.err);
    for (int i = 0; i < started; i++)
        child_send(&ch[i], "quit\n");
    for (int i = 0; i < started; i++)
        child_end(&ch[i]);
}

/* The child side of multi_client_tasks_async: stdin commands, stdout answers. */
static int child_multi_main(void)
{
    void *st = NULL;
    int rc = setup_tasks_per_task(&st);
    if (rc != 0) {
        printf("error %s\n", B.err);
        fflush(stdout);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        double secs;
        if (sscanf(line, "go %lf", &secs) != 1)
            break;
        double units = 0, t0 = now_s();
        rc = 0;
        do
            rc = run_task_batch(st, &units);
        while (rc == 0 && now_s() - t0 < secs);
        if (rc != 0)
            printf("error %s\n", B.err);
        else
            printf("done %.0f\n", units);
        fflush(stdout);
    }
    state_free(st);
    return rc != 0;
}

/* ------------------------------------------------------------------ output */

typedef struct {
    char host[256], cpu[256], kernel[256], date[64];
    long nproc;
    unsigned long long mem;
} machine;

static void machine_info(machine *m)
{
    memset(m, 0, sizeof(*m));
    gethostname(m->host, sizeof(m->host) - 1);
    m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
    m->mem =
        (unsigned long long)sysconf(_SC_PHYS_PAGES) * (unsigned long long)sysconf(_SC_PAGESIZE);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname, u.release, u.machine);
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            char *v = strchr(line, ':') + 1;
            while (*v == ' ')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(m->cpu, sizeof(m->cpu), "%s", v);
            break;
        }
    }
    if (f)
        fclose(f);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(m->date, sizeof(m->date), "%Y-%m-%d %H:%M UTC", &tm);
}

/* Whether the raylet of session dir `session` runs with the pre-fault off:
 * RAYC_PREFAULT_STORE or --prefault-store set to 0/false/no in its
 * environment or arguments (the arguments win, as in the raylet). */
static int prefault_off(const char *session)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/raylet.pid", session);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 0)
        return 0;
    int off = 0;
    const char *files[2] = {"environ", "cmdline"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/proc/%ld/%s", pid, files[i]);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        char *ent = NULL;
        size_t cap = 0;
        while (getdelim(&ent, &cap, '\0', f) > 0) {
            const char *v = NULL;
            if (i == 0 && strncmp(ent, "RAYC_PREFAULT_STORE=", 20) == 0)
                v = ent + 20;
            else if (i == 1 && (strncasecmp(ent, "--prefault-store=", 17) == 0 ||
                                strncasecmp(ent, "--prefault_store=", 17) == 0))
                v = ent + 17;
            if (v)
                off =
                    strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0;
        }
        free(ent);
        fclose(f);
    }
    return off;
}

/* The raylet pre-faults its store in an low-priority (nice 19) background thread
 * after it starts; measuring before that ends measures page faults (and
 * competes with the thread). Wait for its "pre-faulted" log line in this
 * node's session (<RAYC_TEMP_DIR>/session_latest for "auto", the embedded
 * root's for "local"), up to PREFAULT_TIMEOUT_S, and print a `store:` line. */
#define PREFAULT_TIMEOUT_S 120
static void wait_prefault(FILE *o)
{
    char link[PATH_MAX + 32];
    if (strcmp(B.address, "local") == 0) {
        if (!B.embedded_root[0]) {
            fprintf(o, "store: did not wait for the pre-fault (the embedded cluster's "
                       "--temp-dir was not found)\n");
            return;
        }
        snprintf(link, sizeof(link), "%s/session_latest", B.embedded_root);
    } else if (strcmp(B.address, "auto") == 0) {
        const char *t = getenv("RAYC_TEMP_DIR");
        snprintf(link, sizeof(link), "%s/session_latest", t && *t ? t : "/tmp/rayc");
    } else {
        fprintf(o,
                "store: did not wait for the pre-fault (address %s: its session directory "
                "is not known here)\n",
                B.address);
        return;
    }
    char *session = realpath(link, NULL);
    if (session == NULL) {
        fprintf(o, "store: did not wait for the pre-fault (%s: %s)\n", link, strerror(errno));
        return;
    }
    if (prefault_off(session)) {
        fprintf(o, "store: not pre-faulted (RAYC_PREFAULT_STORE=0 for the raylet)\n");
        free(session);
        return;
    }
    fflush(o);
    double t0 = now_s();
    long mib = 0;
    long ms = bench_prefault_ms(session, PREFAULT_TIMEOUT_S, &mib);
    B.prefault_wait_s = now_s() - t0;
    if (ms >= 0) {
        B.prefault_ms = ms;
        B.prefault_mib = mib;
        fprintf(o, "store: pre-faulted %ld MiB in %ld ms (waited %.1f s before measuring)\n", mib,
                ms, B.prefault_wait_s);
    } else if (ms == -2) {
        fprintf(o,
                "store: not pre-faulted (the raylet could not start its pre-fault thread; "
                "see %s/logs/raylet.out)\n",
                session);
    } else {
        fprintf(o,
                "store: not pre-faulted (no \"plasma: pre-faulted\" line in "
                "%s/logs/raylet.out after %.0f s)\n",
                session, B.prefault_wait_s);
    }
    free(session);
}

static void print_header(const machine *m)
{
    FILE *o = B.out;
    fprintf(o, "rayc microbenchmark, %s\n", m->date);
    fprintf(o, "machine: %s, %ld vCPU (nproc), %.1f GiB memory, %s, %s\n", m->host, m->nproc,
            (double)m->mem / (double)GIB_BYTES, m->cpu[0] ? m->cpu : "unknown CPU", m->kernel);
    rayc_node_info nodes[16];
    size_t count = 0;
    int rc = rayc_nodes(nodes, 16, &count);
    if (rc != 0) {
        fprintf(o, "cluster: %s (rayc_nodes: %s: %s)\n", B.address, rayc_strerror(rc),
                rayc_last_error());
    } else {
        double cpus = 0;
        size_t store = 0;
        for (size_t i = 0; i < count && i < 16; i++) {
            cpus += nodes[i].cpus_total;
            store += nodes[i].store_capacity;
        }
        fprintf(o, "cluster: %s%s, %zu node(s), %g CPUs, store %.2f GiB\n", B.address,
                B.embedded_root[0] ? " (embedded)" : "", count, cpus,
                (double)store / (double)GIB_BYTES);
    }
    wait_prefault(o);
    fprintf(o, "config: %d trials x %g s, inline threshold %zu bytes, %d multi clients\n\n",
            B.trials, B.seconds, B.inline_max, B.clients);
    fflush(o);
}

static void print_result(const result *r)
{
    FILE *o = B.out;
    if (r->status == 's')
        fprintf(o, "%s skipped: %s\n", r->name, r->msg);
    else if (r->status == 'f')
        fprintf(o, "%s failed: %s\n", r->name, r->msg);
    else if (r->latency) {
        const lat_stats *s[2] = {&r->first, &r->cached};
        const char *what[2] = {"first get", "cached-pin get"};
        for (int i = 0; i < (r->latency == LAT_FIRST_CACHED ? 2 : 1); i++)
            fprintf(o, "%s %s us: mean %.2f p50 %.2f p99 %.2f (n=%zu)\n", r->name, what[i],
                    s[i]->mean, s[i]->p50, s[i]->p99, s[i]->n);
    } else if (r->measure)
        fprintf(o, "%s %.3f +- %.3f %s\n", r->name, r->mean, r->sd, r->unit);
    else
        fprintf(o, "%s per second %.2f +- %.2f\n", r->name, r->mean, r->sd);
    fflush(o);
}

static void print_table(const result *rs, size_t n)
{
    FILE *o = B.out;
    int w = 44; /* the case column: as wide as the longest name shown */
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(rs[i].name) > w)
            w = (int)strlen(rs[i].name);
    fprintf(o, "\n%-*s %16s %16s %9s\n", w, "case", "rayc (this host)", "Ray (64 vCPU)",
            "rayc/Ray");
    for (size_t i = 0; i < n; i++) {
        const result *r = &rs[i];
        char mine[64], ray[32] = "-", ratio[32] = "-";
        if (r->status == 's')
            snprintf(mine, sizeof(mine), "skipped");
        else if (r->status == 'f')
            snprintf(mine, sizeof(mine), "failed");
        else if (r->latency == LAT_FIRST_CACHED)
            snprintf(mine, sizeof(mine), "%.1f/%.2f us", r->first.p50, r->cached.p50);
        else if (r->latency)
            snprintf(mine, sizeof(mine), "%.1f us", r->first.p50);
        else if (r->measure)
            snprintf(mine, sizeof(mine), "%.3f %s", r->mean, r->unit);
        else
            snprintf(mine, sizeof(mine), "%.2f", r->mean);
        if (r->ray > 0) {
            snprintf(ray, sizeof(ray), "%.*f", r->ray < 100 ? 1 : 0, r->ray);
            if (r->status == 'o' && !r->latency)
                snprintf(ratio, sizeof(ratio), "%.2fx", r->mean / r->ray);
        }
        fprintf(o, "%-*s %16s %16s %9s\n", w, r->name, mine, ray, ratio);
    }
    fprintf(o, "(latency rows: p50 of first get / cached-pin get of an object this process "
               "put; _other_process: p50 of the first get of an object a worker put. Ray's "
               "figures are from its published microbenchmark on a 64-vCPU machine)\n");
    fflush(o);
}

static void json_str(FILE *o, const char *s)
{
    fputc('"', o);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(o, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(o, "\\u%04x", ch);
        else
            fputc(ch, o);
    }
    fputc('"', o);
}

static void json_lat(FILE *o, const char *key, const lat_stats *s)
{
    fprintf(o,
            ", \"%s\": {\"mean\": %.3f, \"p50\": %.3f, \"p99\": %.3f, \"min\": %.3f, "
            "\"max\": %.3f, \"n\": %zu}",
            key, s->mean, s->p50, s->p99, s->min, s->max, s->n);
}

static void print_json(const machine *m, const result *rs, size_t n)
{
    FILE *o = stdout;
    fprintf(o, "{\"machine\": {\"host\": ");
    json_str(o, m->host);
    fprintf(o, ", \"nproc\": %ld, \"memory_bytes\": %llu, \"cpu\": ", m->nproc, m->mem);
    json_str(o, m->cpu);
    fprintf(o, ", \"kernel\": ");
    json_str(o, m->kernel);
    fprintf(o, ", \"date\": ");
    json_str(o, m->date);
    fprintf(o, "},\n \"config\": {\"address\": ");
    json_str(o, B.address);
    fprintf(o,
            ", \"trials\": %d, \"seconds\": %g, \"store_bytes\": %zu, \"clients\": %d, "
            "\"inline_object_max\": %zu",
            B.trials, B.seconds, B.store, B.clients, B.inline_max);
    if (B.prefault_ms >= 0)
        fprintf(o, ", \"prefault_ms\": %ld, \"prefault_mib\": %ld", B.prefault_ms, B.prefault_mib);
    else
        fprintf(o, ", \"prefault_ms\": null");
    fprintf(o, ", \"prefault_wait_s\": %.3f},\n \"results\": [", B.prefault_wait_s);
    for (size_t i = 0; i < n; i++) {
        const result *r = &rs[i];
        fprintf(o, "%s\n  {\"name\": ", i ? "," : "");
        json_str(o, r->name);
        fprintf(o, ", \"status\": \"%s\"",
                r->status == 'o'   ? "ok"
                : r->status == 's' ? "skipped"
                                   : "failed");
        if (r->status != 'o') {
            fprintf(o, ", \"message\": ");
            json_str(o, r->msg);
        } else if (r->latency) {
            json_lat(o, "first_get_us", &r->first);
            if (r->latency == LAT_FIRST_CACHED)
                json_lat(o, "cached_get_us", &r->cached);
        } else {
            fprintf(o, ", \"unit\": ");
            json_str(o, r->unit);
            fprintf(o, ", \"%s\": %.3f, \"stddev\": %.3f, \"trials\": [",
                    r->measure ? "mean" : "per_second", r->mean, r->sd);
            for (int t = 0; t < r->n; t++)
                fprintf(o, "%s%.3f", t ? ", " : "", r->rates[t]);
            fprintf(o, "]");
        }
        if (r->ray > 0)
            fprintf(o, ", \"ray_64vcpu\": %g", r->ray);
        fprintf(o, "}");
    }
    fprintf(o, "\n]}\n");
    fflush(o);
}

/* worker/core.h: the direct task path's counts (pushed, fell back, leases
 * asked, granted). */
void core__direct_counts(uint64_t out[5]);

/* ------------------------------------------------------------------- main */

/* rayc_init("local") leaves a keeper shell (our child) whose arguments name
 * the embedded cluster's --temp-dir; other processes join it with
 * RAYC_TEMP_DIR=<that dir> and address "auto". */
static void find_embedded_root(void)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && !B.embedded_root[0]) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char path[300], buf[8192];
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t l = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[l] = '\0';
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        if (rp == NULL || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != getpid())
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        l = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[l] = '\0';
        for (size_t i = 0; i < l; i += strlen(buf + i) + 1)
            if (strncmp(buf + i, "--temp-dir=", 11) == 0)
                snprintf(B.embedded_root, sizeof(B.embedded_root), "%s", buf + i + 11);
    }
    if (d)
        closedir(d);
}

static void usage(FILE *o)
{
    fprintf(o,
            "usage: microbenchmark [--trials=N] [--seconds=S] [--only=SUBSTRING] [--json]\n"
            "                      [--store=BYTES] [--clients=N] [--address=HOST:PORT|auto|local]\n"
            "                      [--list]\n");
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int ok = 1;
        if (strncmp(a, "--trials=", 9) == 0) {
            B.trials = atoi(a + 9);
            ok = B.trials >= 1 && B.trials <= MAX_TRIALS;
        } else if (strncmp(a, "--seconds=", 10) == 0) {
            B.seconds = strtod(a + 10, NULL);
            ok = B.seconds > 0;
        } else if (strncmp(a, "--only=", 7) == 0) {
            B.only = a + 7;
        } else if (strcmp(a, "--json") == 0) {
            B.json = 1;
        } else if (strncmp(a, "--store=", 8) == 0) {
            B.store = parse_size(a + 8, &ok);
        } else if (strncmp(a, "--clients=", 10) == 0) {
            B.clients = atoi(a + 10);
            ok = B.clients >= 1 && B.clients <= MAX_CLIENTS;
        } else if (strncmp(a, "--address=", 10) == 0) {
            B.address = a + 10;
        } else if (strncmp(a, "--child-case=", 13) == 0) {
            B.child_case = a + 13;
        } else if (strcmp(a, "--child-multi") == 0) {
            B.child_multi = 1;
        } else if (strcmp(a, "--list") == 0) {
            for (size_t c = 0; c < NCASES; c++)
                printf("%s\n", CASES[c].name);
            exit(0);
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "microbenchmark: bad argument '%s'\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    int child = B.child_case || B.child_multi;
    B.out = B.json || child ? stderr : stdout;
    signal(SIGPIPE, SIG_IGN);

    const char *im = getenv("RAYC_INLINE_OBJECT_MAX");
    int ok = 1;
    B.inline_max = im && *im ? parse_size(im, &ok) : (size_t)100 << 10;
    if (!ok) {
        fprintf(stderr, "microbenchmark: bad RAYC_INLINE_OBJECT_MAX '%s'\n", im);
        return 2;
    }
    ssize_t l = readlink("/proc/self/exe", B.exe, sizeof(B.exe) - 1);
    if (l <= 0) {
        fprintf(stderr, "microbenchmark: readlink /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    B.exe[l] = '\0';
    snprintf(B.code_path, sizeof(B.code_path), "%.*s/libbench_tasks.so",
             (int)(strrchr(B.exe, '/') - B.exe), B.exe);
    B.have_code = access(B.code_path, R_OK) == 0;
    if (B.address == NULL || !*B.address)
        B.address = getenv("RAYC_ADDRESS");
    if (B.address == NULL || !*B.address)
        B.address = "local";

    const char *code[] = {B.code_path, NULL};
    rayc_init_opts opts = {0};
    opts.address = B.address;
    opts.code = B.have_code ? code : NULL;
    opts.object_store_memory = B.store;
    int rc = rayc_init(&opts);
    if (rc != 0) {
        const char *why = rayc_last_error();
        if (B.child_case)
            printf("@fail rayc_init(%s): %s (%s)\n", B.address, rayc_strerror(rc), why);
        else if (B.child_multi)
            printf("error rayc_init(%s): %s (%s)\n", B.address, rayc_strerror(rc), why);
        else /* a child's parent reports it */
            fprintf(stderr, "microbenchmark: rayc_init(address=%s): %s (%s)\n", B.address,
                    rayc_strerror(rc), why);
        return 1;
    }
    if (strcmp(B.address, "local") == 0)
        find_embedded_root();

    int status = 0;
    if (B.child_multi) {
        status = child_multi_main();
    } else if (B.child_case) {
        result r = {.name = B.child_case};
        const bench_case *c = NULL;
        for (size_t i = 0; i < NCASES; i++)
            if (strcmp(CASES[i].name, B.child_case) == 0)
                c = &CASES[i];
        if (c == NULL) {
            set_status(&r, 'f', "no such case");
        } else {
            r.name = c->name;
            run_rate(c, &r);
        }
        if (r.status == 'o') {
            printf("@ok %d", r.n);
            for (int t = 0; t < r.n; t++)
                printf(" %.6f", r.rates[t]);
            printf("\n");
        } else {
            printf("@%s %s\n", r.status == 's' ? "skip" : "fail", r.msg);
        }
        fflush(stdout);
        status = r.status == 'f';
    } else {
        machine m;
        machine_info(&m);
        print_header(&m);
        result rs[NCASES];
        size_t nr = 0;
        for (size_t i = 0; i < NCASES; i++) {
            const bench_case *c = &CASES[i];
            if (B.only && !strstr(c->name, B.only))
                continue;
            result *r = &rs[nr++];
            memset(r, 0, sizeof(*r));
            r->name = c->name;
            r->unit = c->unit;
            r->ray = c->ray;
            switch (c->kind) {
            case K_RATE:
                run_rate(c, r);
                break;
            case K_LATENCY:
                run_latency(c, r);
                break;
            case K_LATENCY_OTHER:
                run_latency_other(c, r);
                break;
            case K_CHILD_ENV:
                run_child_env(c, r);
                break;
            case K_MULTI:
                run_multi(c, r);
                break;
            case K_MEASURE:
                run_measure(c, r);
                break;
            }
            print_result(r);
            status |= r->status == 'f';
        }
        print_table(rs, nr);
        if (B.json)
            print_json(&m, rs, nr);
    }
    uint64_t dc[5];
    core__direct_counts(dc);
    if (!B.json)
        printf("direct task path (this driver): %llu tasks pushed to leased workers, %llu sent "
               "through the raylet after waiting for a lease, %llu of %llu leases granted, %llu "
               "of them over a Unix socket\n",
               (unsigned long long)dc[0], (unsigned long long)dc[1], (unsigned long long)dc[3],
               (unsigned long long)dc[2], (unsigned long long)dc[4]);
    free(B.big);
    rc = rayc_shutdown();
    if (rc != 0) {
        fprintf(stderr, "microbenchmark: rayc_shutdown: %s (%s)\n", rayc_strerror(rc),
                rayc_last_error());
        status = 1;
    }
    return status;
}
