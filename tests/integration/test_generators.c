/*
 * test_generators.c -- streaming generators end to end on real daemons
 * (issue 11): items in order, handed out before the generator ends, EOF
 * every time after; an error after k items; a worker killed mid-stream
 * (retried: every item exactly once, in order; retries spent: the error
 * item); items passed to other tasks and waited on while the stream runs;
 * backpressure bounding the store; an early close stopping the generator
 * and freeing its CPU and its items; rayc_cancel of a generator; generators
 * on another node; a stream consumed inside a task; lineage rebuild of an
 * item lost with its node (3 nodes); streaming actor methods; and the
 * by-value dedup of large arguments (50 tasks, one 100 MiB value).
 *
 * Each test starts Redis + GCS + raylets through the harness and drives
 * them in-process with librayc; generators come from
 * build/examples/libgenlib_tasks.so (examples/genlib/tasks.c). Nothing here
 * asserts a duration: "before the end" is shown with generators that never
 * end unless closed, and "stopped" with lines the generator writes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "pattern.h"
#include "rayc.h"
#include "util.h"

#define KIB      ((uint64_t)1 << 10)
#define MIB      ((uint64_t)1 << 20)
#define SLACK_MS 30000  /* generous: a busy 2-vCPU machine; never a speed test */
#define LONG_MS  120000 /* for whole streams */
#define DEAD     RPC__NODE_STATE__NODE_DEAD
#define ALIVE    RPC__NODE_STATE__NODE_ALIVE

TestSuite(generators, .init = harness_setup, .fini = harness_teardown, .timeout = 300);

/* ============================================================ helpers */

static const char *genlib(void)
{
    return harness_example_lib("genlib");
}

static void driver_init(const harness_cluster *c)
{
    const char *code[] = {genlib(), NULL};
    harness_driver_init(c, code, NULL);
}

static void driver_shutdown(void)
{
    int rc = rayc_shutdown();
    cr_assert_eq(rc, RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
}

/* Redis, GCS and n raylets (each with extra[i] flags, may be NULL); the
 * driver on the first once every node is ALIVE and (several nodes) every
 * raylet has heard of every other in a heartbeat reply: a raylet answers
 * the owner of a task only on a node it knows. */
static void cluster(harness_cluster *c, int n, const char *const *extra[])
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    for (int i = 0; i < n; i++)
        harness_raylet_start(c, extra ? extra[i] : NULL);
    harness_wait_nodes_settled(c, SLACK_MS);
    driver_init(c);
}

/* One node with 2 CPUs and a store of `store` bytes (as a flag value). */
static void one_node(harness_cluster *c, const char *store_flag)
{
    const char *flags[] = {"--num-cpus=2", store_flag ? store_flag : "--object-store-memory=256M",
                           NULL};
    const char *const *extra[] = {flags};
    cluster(c, 1, extra);
}

static rayc_stream *submit_stream(const char *fn, const rayc_arg *args, size_t n,
                                  const rayc_task_opts *o)
{
    rayc_stream *s = NULL;
    int rc = rayc_submit_stream(fn, args, n, o, &s);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit_stream(%s): %s: %s", fn, rayc_strerror(rc),
                 rayc_last_error());
    cr_assert_not_null(s);
    return s;
}

static rayc_ref next_item(rayc_stream *s, const char *what)
{
    rayc_ref r;
    int rc = rayc_stream_next(s, &r, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: rayc_stream_next: %s: %s", what, rayc_strerror(rc),
                 rayc_last_error());
    return r;
}

/* The 8-byte number an item holds (asserts it is one). */
static uint64_t item_u64(rayc_ref r, const char *what)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: rayc_get: %s: %s", what, rayc_strerror(rc),
                 v.error ? v.error : rayc_last_error());
    cr_assert_eq(v.size, 8, "%s: an item of %zu bytes", what, v.size);
    uint64_t x;
    memcpy(&x, v.data, 8);
    rayc_value_release(&v);
    return x;
}

static void assert_eof(rayc_stream *s, const char *what)
{
    rayc_ref r;
    for (int i = 0; i < 3; i++) {
        int rc = rayc_stream_next(s, &r, LONG_MS);
        cr_assert_eq(rc, RAYC_EOF, "%s: after the last item, call %d gave %s (%s)", what, i + 1,
                     rayc_strerror(rc), rayc_last_error());
    }
}

static void append(const char *path, const char *line)
{
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(line, f);
    fclose(f);
}

static bool store_numbers(const harness_raylet *r, uint64_t *used, uint64_t *objects,
                          uint64_t *peak)
{
    Rpc__StoreStatsReply *s = harness_store_stats(r);
    if (s == NULL)
        return false;
    *used = s->used;
    *objects = s->objects;
    if (peak)
        *peak = s->peak_used;
    msg_free(&s->base);
    return true;
}

/* The store's high-water mark starts again now. */
static void reset_peak(const harness_raylet *r)
{
    Rpc__StoreStatsReply *s = harness_store_stats_reset_peak(r);
    cr_assert_not_null(s, "the raylet did not answer a store stats request");
    msg_free(&s->base);
}

static uint64_t store_peak(const harness_raylet *r)
{
    uint64_t used = 0, objects = 0, peak = 0;
    cr_assert(store_numbers(r, &used, &objects, &peak), "no store stats");
    return peak;
}

struct empty_arg {
    const harness_raylet *r;
    uint64_t used, objects;
};

static bool store_empty(void *arg)
{
    struct empty_arg *a = arg;
    return store_numbers(a->r, &a->used, &a->objects, NULL) && a->objects == 0;
}

static void assert_store_empties(const harness_raylet *r, const char *what)
{
    struct empty_arg a = {.r = r};
    cr_assert(harness_wait_until(store_empty, &a, SLACK_MS),
              "%s: the store still holds %llu objects (%llu bytes)", what,
              (unsigned long long)a.objects, (unsigned long long)a.used);
}

/* The value of a task returning an 8-byte number. */
static uint64_t get_u64(rayc_ref r, const char *what)
{
    uint64_t x = item_u64(r, what);
    rayc_ref_release(r);
    return x;
}

/* ============================================================ order and ends */

/* 1,000 small items arrive in order, each once; then EOF, and EOF again. */
Test(generators, items_in_order_then_eof_forever)
{
    harness_cluster c;
    one_node(&c, NULL);
    uint64_t n = 1000;
    rayc_arg a = RAYC_VAL(&n, 8);
    rayc_task_opts o = {.num_returns = RAYC_STREAMING};
    rayc_stream *s = submit_stream("count", &a, 1, &o);
    for (uint64_t i = 0; i < n; i++) {
        rayc_ref r = next_item(s, "count");
        uint64_t x = item_u64(r, "count item");
        cr_assert_eq(x, i, "item %llu holds %llu", (unsigned long long)i, (unsigned long long)x);
        rayc_ref_release(r);
    }
    assert_eof(s, "count(1000)");
    rayc_stream_close(s);
    driver_shutdown();
}

/* Items over the inline limit live in the store: byte-exact, zero-copy (two
 * gets give the same address), in order. */
Test(generators, large_items_in_store_byte_exact)
{
    harness_cluster c;
    one_node(&c, NULL);
    uint64_t n = 8, size = 3 * MIB + 5, seed = 900;
    rayc_arg a[] = {RAYC_VAL(&n, 8), RAYC_VAL(&size, 8), RAYC_VAL(&seed, 8)};
    rayc_stream *s = submit_stream("count", a, 3, NULL);
    for (uint64_t i = 0; i < n; i++) {
        rayc_ref r = next_item(s, "large count");
        rayc_value v, w;
        cr_assert_eq(rayc_get(&r, 1, &v, LONG_MS), RAYC_OK, "%s", rayc_last_error());
        cr_assert_eq(v.size, size);
        cr_assert_eq(pattern_check(v.data, v.size, seed + i), -1, "item %llu differs",
                     (unsigned long long)i);
        cr_assert_eq(rayc_get(&r, 1, &w, LONG_MS), RAYC_OK);
        cr_assert_eq(v.data, w.data, "two gets of a store item gave two copies");
        rayc_value_release(&w);
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    assert_eof(s, "large count");
    rayc_stream_close(s);
    assert_store_empties(&c.raylets[0], "every item released");
    driver_shutdown();
}

/* Items are handed out while the generator runs: `endless` never ends until
 * its stream is closed, yet its items arrive; with none in flight
 * rayc_stream_next times out (and gives nothing). */
Test(generators, items_arrive_before_the_generator_ends)
{
    harness_cluster c;
    one_node(&c, NULL);
    char path[HARNESS_PATH];
    harness_test_file(path, "endless.log");
    uint64_t size = 8;
    rayc_arg a[] = {RAYC_VAL(&size, 8), RAYC_VAL(path, strlen(path))};
    rayc_task_opts o = {.generator_backpressure = 1};
    rayc_stream *s = submit_stream("endless", a, 2, &o);
    for (uint64_t i = 0; i < 5; i++) {
        rayc_ref r = next_item(s, "endless");
        cr_assert_eq(item_u64(r, "endless item"), i);
        rayc_ref_release(r);
    }
    cr_assert_eq(harness_lines_with(path, "stopped"), 0, "the generator ended on its own");
    rayc_stream_close(s);

    /* A generator that sleeps a minute after its first item: the second is
     * not there within 300 ms. */
    char nap_path[HARNESS_PATH];
    harness_test_file(nap_path, "nap.log");
    uint64_t n = 2, ms = 60000;
    rayc_arg b[] = {RAYC_VAL(&n, 8), RAYC_VAL(&ms, 8), RAYC_VAL(nap_path, strlen(nap_path))};
    s = submit_stream("count_nap", b, 3, NULL);
    rayc_ref r = next_item(s, "count_nap");
    cr_assert_eq(item_u64(r, "count_nap item"), 0);
    rayc_ref_release(r);
    rayc_ref none;
    int rc = rayc_stream_next(s, &none, 300);
    cr_assert_eq(rc, RAYC_ETIMEDOUT, "a second item before it was yielded: %s", rayc_strerror(rc));
    rc = rayc_stream_next(s, &none, 0);
    cr_assert_eq(rc, RAYC_ETIMEDOUT, "poll: %s", rayc_strerror(rc));
    rayc_stream_close(s);
    driver_shutdown();
}

/* ============================================================ errors */

/* count_fail(5): items 0..4, then one item whose value is the error
 * (RAYC_ETASK, the message), then EOF. */
Test(generators, error_after_k_items)
{
    harness_cluster c;
    one_node(&c, NULL);
    uint64_t k = 5;
    rayc_arg a = RAYC_VAL(&k, 8);
    rayc_stream *s = submit_stream("count_fail", &a, 1, NULL);
    for (uint64_t i = 0; i < k; i++) {
        rayc_ref r = next_item(s, "count_fail");
        cr_assert_eq(item_u64(r, "count_fail item"), i);
        rayc_ref_release(r);
    }
    rayc_ref e = next_item(s, "count_fail error item");
    rayc_value v;
    int rc = rayc_get(&e, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_ETASK, "the error item: %s", rayc_strerror(rc));
    cr_assert_eq(v.status, RAYC_ETASK);
    cr_assert(v.error && strstr(v.error, "broke after 5 items"), "error message: %s",
              v.error ? v.error : "(none)");
    rayc_value_release(&v);
    int ready = 0;
    cr_assert_eq(rayc_wait(&e, 1, 1, 0, &ready), 1, "the error item is not ready");
    rayc_ref_release(e);
    assert_eof(s, "count_fail");
    rayc_stream_close(s);

    /* A task given the error item fails the same way, unrun. */
    s = submit_stream("count_fail", &a, 1, NULL);
    for (uint64_t i = 0; i < k; i++)
        rayc_ref_release(next_item(s, "count_fail again"));
    e = next_item(s, "count_fail error item again");
    rayc_arg pa = RAYC_REF(e);
    rayc_ref out;
    cr_assert_eq(rayc_submit("plus", &pa, 1, NULL, &out), RAYC_OK);
    rc = rayc_get(&out, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_ETASK, "a task of the error item: %s", rayc_strerror(rc));
    rayc_value_release(&v);
    rayc_ref_release(out);
    rayc_ref_release(e);
    rayc_stream_close(s);
    driver_shutdown();
}

/* The worker dies after item 6 was taken: the retry yields every item again
 * and the caller gets items 0..19 exactly once, in order (small and store
 * items). */
static void crash_mid_stream(uint64_t size)
{
    harness_cluster c;
    one_node(&c, NULL);
    char path[HARNESS_PATH];
    harness_test_file(path, size > 8 ? "crash_large.log" : "crash.log");
    uint64_t n = 20, k = 7;
    rayc_arg a[] = {RAYC_VAL(&n, 8), RAYC_VAL(&k, 8), RAYC_VAL(path, strlen(path)),
                    RAYC_VAL(&size, 8)};
    rayc_stream *s = submit_stream("count_crash", a, 4, NULL);
    for (uint64_t i = 0; i < n; i++) {
        if (i == k)
            append(path, "die\n"); /* the first attempt dies now */
        rayc_ref r = next_item(s, "count_crash");
        rayc_value v;
        int rc = rayc_get(&r, 1, &v, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "item %llu: %s: %s", (unsigned long long)i, rayc_strerror(rc),
                     v.error ? v.error : "");
        if (size > 8) {
            cr_assert_eq(v.size, size);
            cr_assert_eq(pattern_check(v.data, size, i), -1, "item %llu differs",
                         (unsigned long long)i);
        } else {
            uint64_t x;
            cr_assert_eq(v.size, 8);
            memcpy(&x, v.data, 8);
            cr_assert_eq(x, i, "item %llu holds %llu: delivered twice or out of order",
                         (unsigned long long)i, (unsigned long long)x);
        }
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    assert_eof(s, "count_crash");
    rayc_stream_close(s);
    cr_assert_eq(harness_lines_with(path, "attempt"), 2,
                 "want one attempt that died and one retry");
    driver_shutdown();
}

Test(generators, worker_killed_mid_stream_items_exactly_once)
{
    crash_mid_stream(8);
}

Test(generators, worker_killed_mid_stream_store_items_exactly_once)
{
    crash_mid_stream(300 * KIB);
}

/* Without retries the death is the stream's end: 7 items, then an item whose
 * value is RAYC_EWORKER_DIED naming the cause, then EOF. */
Test(generators, worker_killed_without_retries_gives_error_item)
{
    harness_cluster c;
    one_node(&c, NULL);
    char path[HARNESS_PATH];
    harness_test_file(path, "crash.log");
    uint64_t n = 20, k = 7, size = 8;
    rayc_arg a[] = {RAYC_VAL(&n, 8), RAYC_VAL(&k, 8), RAYC_VAL(path, strlen(path)),
                    RAYC_VAL(&size, 8)};
    rayc_task_opts o = {.max_retries = -1};
    rayc_stream *s = submit_stream("count_crash", a, 4, &o);
    for (uint64_t i = 0; i < k; i++)
        cr_assert_eq(get_u64(next_item(s, "count_crash"), "item"), i);
    append(path, "die\n");
    rayc_ref e = next_item(s, "the error item");
    rayc_value v;
    int rc = rayc_get(&e, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_EWORKER_DIED, "the error item: %s (%s)", rayc_strerror(rc),
                 v.error ? v.error : "");
    cr_assert(v.error && strstr(v.error, "died"), "cause: %s", v.error ? v.error : "(none)");
    rayc_value_release(&v);
    rayc_ref_release(e);
    assert_eof(s, "count_crash without retries");
    rayc_stream_close(s);
    cr_assert_eq(harness_lines_with(path, "attempt"), 1, "a generator without retries ran again");
    driver_shutdown();
}

/* ============================================================ items as refs */

/* While `endless` runs, its items go to other tasks (as arguments, inline
 * and from the store) and to rayc_wait. */
Test(generators, items_passed_to_tasks_while_the_stream_runs)
{
    harness_cluster c;
    const char *flags[] = {"--num-cpus=3", "--object-store-memory=256M", NULL};
    const char *const *extra[] = {flags};
    cluster(&c, 1, extra);
    char path[HARNESS_PATH], path2[HARNESS_PATH];
    harness_test_file(path, "small.log");
    harness_test_file(path2, "large.log");
    uint64_t small = 8, large = 200 * KIB;
    rayc_arg a[] = {RAYC_VAL(&small, 8), RAYC_VAL(path, strlen(path))};
    rayc_arg b[] = {RAYC_VAL(&large, 8), RAYC_VAL(path2, strlen(path2))};
    rayc_task_opts o = {.generator_backpressure = 2};
    rayc_stream *s = submit_stream("endless", a, 2, &o);
    rayc_stream *t = submit_stream("endless", b, 2, &o);
    rayc_ref outs[10], items[10];
    for (int i = 0; i < 5; i++) {
        items[i] = next_item(s, "small");
        items[5 + i] = next_item(t, "large");
        int ready[2] = {0, 0};
        rayc_ref both[2] = {items[i], items[5 + i]};
        cr_assert_eq(rayc_wait(both, 2, 2, SLACK_MS, ready), 2, "items are not ready");
        rayc_arg pa = RAYC_REF(items[i]);
        cr_assert_eq(rayc_submit("plus", &pa, 1, NULL, &outs[i]), RAYC_OK, "%s", rayc_last_error());
        uint64_t seed = (uint64_t)i;
        rayc_arg ca[] = {RAYC_REF(items[5 + i]), RAYC_VAL(&seed, 8)};
        rayc_task_opts two = {.num_returns = 2};
        rayc_ref cr[2];
        cr_assert_eq(rayc_submit("check", ca, 2, &two, cr), RAYC_OK, "%s", rayc_last_error());
        outs[5 + i] = cr[0];
        rayc_ref_release(cr[1]);
    }
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(get_u64(outs[i], "plus(item)"), (uint64_t)i + 1000);
        cr_assert_eq(get_u64(outs[5 + i], "check(item)"), large * 1000003ULL + (uint64_t)i);
    }
    /* Both generators still run: nothing ended them. */
    cr_assert_eq(harness_lines_with(path, "stopped") + harness_lines_with(path2, "stopped"), 0);
    rayc_stream_close(s);
    rayc_stream_close(t);
    for (int i = 0; i < 10; i++)
        rayc_ref_release(items[i]);
    driver_shutdown();
}

/* A task consumes a stream it submitted (its worker owns the items). */
Test(generators, stream_consumed_inside_a_task)
{
    harness_cluster c;
    one_node(&c, NULL);
    uint64_t n = 500;
    rayc_arg a = RAYC_VAL(&n, 8);
    rayc_ref r;
    cr_assert_eq(rayc_submit("sum_stream", &a, 1, NULL, &r), RAYC_OK);
    cr_assert_eq(get_u64(r, "sum_stream"), n * (n - 1) / 2);
    driver_shutdown();
}

/* ============================================================ backpressure */

/* 40 items of 4 MiB with backpressure 3, taken one at a time by a slow
 * reader: the store never holds more than the 3 unconsumed items, the one
 * being written and the one being read (plus 1 MiB of slack); without
 * backpressure the generator runs ahead and the store holds many more. */
static uint64_t stream_peak(const harness_cluster *c, int backpressure)
{
    uint64_t n = 40, size = 4 * MIB, seed = 77;
    rayc_arg a[] = {RAYC_VAL(&n, 8), RAYC_VAL(&size, 8), RAYC_VAL(&seed, 8)};
    rayc_task_opts o = {.generator_backpressure = backpressure};
    reset_peak(&c->raylets[0]);
    rayc_stream *s = submit_stream("count", a, 3, &o);
    for (uint64_t i = 0; i < n; i++) {
        rayc_ref r = next_item(s, "count 4 MiB");
        rayc_value v;
        cr_assert_eq(rayc_get(&r, 1, &v, LONG_MS), RAYC_OK, "%s", rayc_last_error());
        cr_assert_eq(pattern_check(v.data, v.size, seed + i), -1);
        struct timespec ts = {0, 20 * 1000000L}; /* a slow consumer */
        nanosleep(&ts, NULL);
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    assert_eof(s, "count 4 MiB");
    rayc_stream_close(s);
    return store_peak(&c->raylets[0]);
}

Test(generators, backpressure_bounds_the_store)
{
    harness_cluster c;
    one_node(&c, "--object-store-memory=512M");
    uint64_t bounded = stream_peak(&c, 3);
    cr_assert_leq(bounded, 5 * 4 * MIB + MIB,
                  "with backpressure 3 the store held %.1f MiB of 4 MiB items",
                  (double)bounded / (double)MIB);
    uint64_t free_running = stream_peak(&c, 0);
    cr_assert_gt(free_running, bounded,
                 "without backpressure the store peaked at %.1f MiB, with it at %.1f MiB",
                 (double)free_running / (double)MIB, (double)bounded / (double)MIB);
    driver_shutdown();
}

/* Flow control: a driver that reads nothing for a while holds a fast
 * generator of 100 KiB items at the window (32 MiB on their way, about 330
 * items) instead of having the raylet buffer them (it drops a client that
 * lets 128 MiB queue up); then every item arrives, in order. */
Test(generators, unread_stream_holds_the_generator_at_the_window)
{
    harness_cluster c;
    one_node(&c, NULL);
    char path[HARNESS_PATH];
    harness_test_file(path, "log.log");
    uint64_t n = 2000, size = 100 * KIB;
    rayc_arg a[] = {RAYC_VAL(&n, 8), RAYC_VAL(&size, 8), RAYC_VAL(path, strlen(path))};
    rayc_stream *s = submit_stream("count_log", a, 3, NULL);
    harness_lines la = {path, "yielded", 300};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS), "the generator did not start");
    struct timespec ts = {1, 0}; /* time to run ahead, if nothing held it */
    nanosleep(&ts, NULL);
    int ahead = harness_lines_with(path, "yielded");
    cr_assert_leq(ahead, 340, "%d items of 100 KiB went out unread (window: 32 MiB)", ahead);
    for (uint64_t i = 0; i < n; i++) {
        rayc_ref r = next_item(s, "count_log");
        rayc_value v;
        cr_assert_eq(rayc_get(&r, 1, &v, LONG_MS), RAYC_OK, "item %llu: %s", (unsigned long long)i,
                     rayc_last_error());
        cr_assert_eq(v.size, size);
        cr_assert_eq(pattern_check(v.data, size, i), -1, "item %llu differs",
                     (unsigned long long)i);
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    assert_eof(s, "count_log");
    rayc_stream_close(s);
    driver_shutdown();
}

/* ============================================================ close, cancel */

/* A task needing both CPUs of the node runs: nothing else holds one. */
static void assert_cpus_free(int ncpus, const char *what)
{
    rayc_task_opts o = {.num_cpus = ncpus};
    uint64_t x = 1;
    rayc_arg a = RAYC_VAL(&x, 8);
    rayc_ref r;
    cr_assert_eq(rayc_submit("plus", &a, 1, &o, &r), RAYC_OK);
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "%s: a task needing all %d CPUs did not run: %s", what, ncpus,
                 rayc_strerror(rc));
    rayc_value_release(&v);
    rayc_ref_release(r);
}

/* Closing a stream early stops the generator at its next yield (it says so
 * in its file), frees the items not taken (the store empties once the taken
 * ones are released) and gives its CPU back. */
Test(generators, early_close_frees_cpu_and_store)
{
    harness_cluster c;
    one_node(&c, NULL);
    char path[HARNESS_PATH];
    harness_test_file(path, "endless.log");
    uint64_t size = 1 * MIB;
    rayc_arg a[] = {RAYC_VAL(&size, 8), RAYC_VAL(path, strlen(path))};
    rayc_task_opts o = {.generator_backpressure = 4};
    rayc_stream *s = submit_stream("endless", a, 2, &o);
    rayc_ref taken[2] = {next_item(s, "endless"), next_item(s, "endless")};
    harness_lines la = {path, "started", 1};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS));
    rayc_stream_close(s);
    la = (harness_lines){path, "stopped", 1};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS),
              "the generator did not stop after its stream was closed");
    assert_cpus_free(2, "after close");
    /* The two items taken are still ours, and whole. */
    for (int i = 0; i < 2; i++) {
        rayc_value v;
        cr_assert_eq(rayc_get(&taken[i], 1, &v, SLACK_MS), RAYC_OK, "%s", rayc_last_error());
        cr_assert_eq(pattern_check(v.data, v.size, (uint64_t)i), -1);
        rayc_value_release(&v);
        rayc_ref_release(taken[i]);
    }
    assert_store_empties(&c.raylets[0], "after close");
    driver_shutdown();
}

/* rayc_cancel of one of its items cancels the generator: the items already
 * here, then an item whose value is RAYC_ECANCELLED, then EOF; with force
 * its worker is killed, with the same result. */
static void cancel_generator(int force)
{
    harness_cluster c;
    one_node(&c, NULL);
    char path[HARNESS_PATH];
    harness_test_file(path, "endless.log");
    uint64_t size = 8, ms = 5;
    rayc_arg a[] = {RAYC_VAL(&size, 8), RAYC_VAL(path, strlen(path)), RAYC_VAL(&ms, 8)};
    rayc_stream *s = submit_stream("endless", a, 3, NULL);
    rayc_ref first = next_item(s, "endless");
    cr_assert_eq(rayc_cancel(first, force), RAYC_OK, "rayc_cancel: %s", rayc_last_error());
    rayc_ref_release(first);
    uint64_t expect = 1;
    rayc_ref r;
    int rc;
    for (;;) {
        rc = rayc_stream_next(s, &r, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "before the cancel's error item: %s", rayc_strerror(rc));
        rayc_value v;
        rc = rayc_get(&r, 1, &v, LONG_MS);
        rayc_ref_release(r);
        if (rc != RAYC_OK) {
            cr_assert_eq(rc, RAYC_ECANCELLED, "the stream ended with %s (%s)", rayc_strerror(rc),
                         v.error ? v.error : "");
            rayc_value_release(&v);
            break;
        }
        uint64_t x;
        memcpy(&x, v.data, 8);
        cr_assert_eq(x, expect++, "items out of order after a cancel");
        rayc_value_release(&v);
    }
    assert_eof(s, "a cancelled generator");
    rayc_stream_close(s);
    if (!force) {
        harness_lines la = {path, "stopped", 1};
        cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS),
                  "the generator did not stop");
    }
    assert_cpus_free(2, "after a cancel");
    driver_shutdown();
}

Test(generators, cancel_stops_a_generator)
{
    cancel_generator(0);
}

Test(generators, cancel_force_kills_a_generator)
{
    cancel_generator(1);
}

/* ============================================================ other nodes */

static void wait_views(const harness_cluster *c)
{
    /* A task pinned to each node returns from it: the driver's raylet
     * knows every node. */
    for (int i = 0; i < c->nraylets; i++) {
        uint64_t n = 1;
        rayc_arg a = RAYC_VAL(&n, 8);
        rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = c->raylets[i].node_id};
        rayc_stream *s = submit_stream("where_items", &a, 1, &o);
        rayc_ref r = next_item(s, "where_items probe");
        rayc_value v;
        cr_assert_eq(rayc_get(&r, 1, &v, SLACK_MS), RAYC_OK, "%s", rayc_last_error());
        cr_assert(v.size == strlen(c->raylets[i].node_id) &&
                      memcmp(v.data, c->raylets[i].node_id, v.size) == 0,
                  "a generator pinned to node %d ran elsewhere", i);
        rayc_value_release(&v);
        rayc_ref_release(r);
        assert_eof(s, "where_items probe");
        rayc_stream_close(s);
    }
}

/* A generator on node 1: its small items (node ids) and its store items
 * reach the driver on node 0 in order; a store item goes on to a task on
 * node 2. */
Test(generators, generator_on_another_node)
{
    harness_cluster c;
    cluster(&c, 3, NULL);
    wait_views(&c);
    uint64_t n = 6;
    rayc_arg a = RAYC_VAL(&n, 8);
    rayc_task_opts on1 = {.strategy = RAYC_SCHED_NODE, .node_id = c.raylets[1].node_id};
    rayc_stream *s = submit_stream("where_items", &a, 1, &on1);
    for (uint64_t i = 0; i < n; i++) {
        rayc_ref r = next_item(s, "where_items");
        rayc_value v;
        cr_assert_eq(rayc_get(&r, 1, &v, SLACK_MS), RAYC_OK);
        cr_assert(v.size == strlen(c.raylets[1].node_id) &&
                  memcmp(v.data, c.raylets[1].node_id, v.size) == 0);
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    assert_eof(s, "where_items");
    rayc_stream_close(s);

    uint64_t size = 2 * MIB + 3, seed = 5000;
    rayc_arg b[] = {RAYC_VAL(&n, 8), RAYC_VAL(&size, 8), RAYC_VAL(&seed, 8)};
    rayc_task_opts bp = on1;
    bp.generator_backpressure = 2;
    s = submit_stream("count", b, 3, &bp);
    for (uint64_t i = 0; i < n; i++) {
        rayc_ref r = next_item(s, "count on node 1");
        rayc_value v;
        cr_assert_eq(rayc_get(&r, 1, &v, LONG_MS), RAYC_OK, "%s", rayc_last_error());
        cr_assert_eq(v.size, size);
        cr_assert_eq(pattern_check(v.data, size, seed + i), -1, "item %llu differs",
                     (unsigned long long)i);
        rayc_value_release(&v);
        if (i == n - 1) {
            uint64_t iseed = seed + i;
            rayc_arg ca[] = {RAYC_REF(r), RAYC_VAL(&iseed, 8)};
            rayc_task_opts on2 = {
                .num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id};
            rayc_ref cr[2];
            cr_assert_eq(rayc_submit("check", ca, 2, &on2, cr), RAYC_OK);
            cr_assert_eq(get_u64(cr[0], "check on node 2"), size * 1000003ULL + iseed);
            rayc_value nv;
            cr_assert_eq(rayc_get(&cr[1], 1, &nv, SLACK_MS), RAYC_OK);
            cr_assert(nv.size == strlen(c.raylets[2].node_id) &&
                          memcmp(nv.data, c.raylets[2].node_id, nv.size) == 0,
                      "check did not run on node 2");
            rayc_value_release(&nv);
            rayc_ref_release(cr[1]);
        }
        rayc_ref_release(r);
    }
    assert_eof(s, "count on node 1");
    rayc_stream_close(s);
    driver_shutdown();
}

/* ============================================================ lineage */

struct state_arg {
    const harness_cluster *c;
    const char *node;
    int want;
};

static bool node_in_state(void *arg)
{
    struct state_arg *a = arg;
    return harness_node_state(a->c, a->node) == a->want;
}

struct objects_arg {
    const harness_raylet *r;
    uint64_t want;
};

static bool objects_at_least(void *arg)
{
    struct objects_arg *a = arg;
    uint64_t used, objects;
    return store_numbers(a->r, &used, &objects, NULL) && objects >= a->want;
}

/* Three store items made on node 2 and never read there or anywhere: their
 * only copies die with node 2. A get of one runs the generator again on a
 * live node (lineage), which yields the same bytes; the other items are
 * rebuilt with it. */
Test(generators, lost_item_rebuilt_from_lineage)
{
    harness_cluster c;
    cluster(&c, 3, NULL);
    wait_views(&c);
    char path[HARNESS_PATH];
    harness_test_file(path, "producer.log");
    uint64_t n = 3, never = 1000, size = 300 * KIB;
    rayc_arg a[] = {RAYC_VAL(&n, 8), RAYC_VAL(&never, 8), RAYC_VAL(path, strlen(path)),
                    RAYC_VAL(&size, 8)};
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = c.raylets[2].node_id, .soft = 1};
    rayc_stream *s = submit_stream("count_crash", a, 4, &o);
    rayc_ref items[3];
    for (int i = 0; i < 3; i++)
        items[i] = next_item(s, "count_crash on node 2");
    assert_eof(s, "count_crash on node 2");
    rayc_stream_close(s);
    cr_assert_eq(harness_lines_with(path, "attempt"), 1);
    char *log = read_file(path, NULL);
    bool on2 = log && strstr(log, c.raylets[2].node_id) != NULL;
    free(log);
    cr_assert(on2, "the generator did not run on node 2");
    struct objects_arg oa = {&c.raylets[2], 3};
    cr_assert(harness_wait_until(objects_at_least, &oa, SLACK_MS), "node 2 holds no items");
    for (int k = 0; k < 2; k++) {
        uint64_t used, objects;
        cr_assert(store_numbers(&c.raylets[k], &used, &objects, NULL));
        cr_assert_eq(objects, 0, "node %d holds a copy of an item", k);
    }

    harness_kill9(c.raylets[2].proc);
    c.raylets[2].proc->any_exit = true;
    struct state_arg sa = {&c, c.raylets[2].node_id, DEAD};
    cr_assert(harness_wait_until(node_in_state, &sa, SLACK_MS + c.health_timeout_ms),
              "node 2 is not DEAD");

    for (int i = 2; i >= 0; i--) {
        rayc_value v;
        int rc = rayc_get(&items[i], 1, &v, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "item %d after its node died: %s: %s", i, rayc_strerror(rc),
                     v.error ? v.error : rayc_last_error());
        cr_assert_eq(v.size, size);
        cr_assert_eq(pattern_check(v.data, size, (uint64_t)i), -1, "rebuilt item %d differs", i);
        rayc_value_release(&v);
        rayc_ref_release(items[i]);
    }
    cr_assert_eq(harness_lines_with(path, "attempt"), 2, "the generator ran %d times, want 2",
                 harness_lines_with(path, "attempt"));
    driver_shutdown();
}

/* ============================================================ actors */

static rayc_stream *actor_stream(rayc_actor a, const char *method, const rayc_arg *args, size_t n,
                                 const rayc_task_opts *o)
{
    rayc_stream *s = NULL;
    int rc = rayc_actor_call_stream(a, method, args, n, o, &s);
    cr_assert_eq(rc, RAYC_OK, "rayc_actor_call_stream(%s): %s: %s", method, rayc_strerror(rc),
                 rayc_last_error());
    return s;
}

/* A generator method: its items come back in order as it yields them, its
 * calls run in order on the one instance, a failing one gives its items,
 * the error item and EOF (and the actor lives on), backpressure holds
 * across the direct connection, and a closed stream stops the method. */
Test(generators, streaming_actor_methods)
{
    harness_cluster c;
    one_node(&c, NULL);
    uint64_t base = 100;
    rayc_arg ca = RAYC_VAL(&base, 8);
    rayc_actor a;
    int rc = rayc_actor_create("Stream", &ca, 1, NULL, &a);
    cr_assert_eq(rc, RAYC_OK, "rayc_actor_create: %s", rayc_last_error());

    uint64_t n = 5;
    rayc_arg na = RAYC_VAL(&n, 8);
    for (uint64_t call = 0; call < 2; call++) {
        rayc_task_opts o = {.generator_backpressure = (int)call * 2};
        rayc_stream *s = actor_stream(a, "items", &na, 1, &o);
        for (uint64_t i = 0; i < n; i++)
            cr_assert_eq(get_u64(next_item(s, "Stream.items"), "actor item"),
                         base + call * 1000 + i);
        assert_eof(s, "Stream.items");
        rayc_stream_close(s);
    }

    uint64_t k = 3;
    rayc_arg ka = RAYC_VAL(&k, 8);
    rayc_stream *s = actor_stream(a, "items_fail", &ka, 1, NULL);
    for (uint64_t i = 0; i < k; i++)
        cr_assert_eq(get_u64(next_item(s, "Stream.items_fail"), "item"), i);
    rayc_ref e = next_item(s, "the error item");
    rayc_value v;
    rc = rayc_get(&e, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_ETASK, "the error item of a method: %s", rayc_strerror(rc));
    cr_assert(v.error && strstr(v.error, "broke after 3 items"), "%s", v.error ? v.error : "");
    rayc_value_release(&v);
    rayc_ref_release(e);
    assert_eof(s, "Stream.items_fail");
    rayc_stream_close(s);

    rayc_ref r;
    cr_assert_eq(rayc_actor_call(a, "calls", NULL, 0, NULL, &r), RAYC_OK);
    cr_assert_eq(get_u64(r, "Stream.calls"), 2, "the actor did not live on, or lost its state");

    /* Store items, with backpressure over a longer stream. */
    uint64_t m = 12, size = 300 * KIB;
    rayc_arg ma[] = {RAYC_VAL(&m, 8), RAYC_VAL(&size, 8)};
    rayc_task_opts bp = {.generator_backpressure = 2};
    s = actor_stream(a, "items", ma, 2, &bp);
    for (uint64_t i = 0; i < m; i++) {
        rayc_ref it = next_item(s, "Stream.items (store)");
        cr_assert_eq(rayc_get(&it, 1, &v, LONG_MS), RAYC_OK, "%s", rayc_last_error());
        cr_assert_eq(v.size, size);
        cr_assert_eq(pattern_check(v.data, size, base + 2000 + i), -1, "store item %llu differs",
                     (unsigned long long)i);
        rayc_value_release(&v);
        rayc_ref_release(it);
    }
    assert_eof(s, "Stream.items (store)");
    rayc_stream_close(s);

    /* Closing a method's stream stops it at its next yield. */
    char path[HARNESS_PATH];
    harness_test_file(path, "actor_endless.log");
    rayc_arg pa = RAYC_VAL(path, strlen(path));
    s = actor_stream(a, "endless", &pa, 1, &bp);
    for (uint64_t i = 0; i < 3; i++)
        cr_assert_eq(get_u64(next_item(s, "Stream.endless"), "item"), i);
    rayc_stream_close(s);
    harness_lines la = {path, "stopped", 1};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS),
              "the method did not stop after its stream was closed");
    cr_assert_eq(rayc_actor_call(a, "calls", NULL, 0, NULL, &r), RAYC_OK);
    cr_assert_eq(get_u64(r, "Stream.calls after close"), 3);
    cr_assert_eq(rayc_actor_kill(a, 1), RAYC_OK);
    driver_shutdown();
}

/* ============================================================ by-value dedup */

/* 50 tasks given the same 100 MiB by value: one copy in the store while
 * they run (Ray stores it 50 times), and none once they are done. Another
 * value is not taken for it. */
Test(generators, large_value_argument_stored_once, .timeout = 420)
{
    harness_cluster c;
    one_node(&c, "--object-store-memory=1G");
    size_t size = 100 * MIB;
    uint8_t *buf = malloc(size);
    cr_assert_not_null(buf);
    pattern_fill(buf, size, 31);
    reset_peak(&c.raylets[0]);
    enum { N = 50 };
    rayc_ref out[N];
    uint64_t ms = 20;
    for (int i = 0; i < N; i++) {
        rayc_arg a[] = {RAYC_VAL(buf, size), RAYC_VAL(&ms, 8)};
        cr_assert_eq(rayc_submit("fnv", a, 2, NULL, &out[i]), RAYC_OK, "submit %d: %s", i,
                     rayc_last_error());
    }
    uint64_t first = get_u64(out[0], "fnv 0");
    for (int i = 1; i < N; i++)
        cr_assert_eq(get_u64(out[i], "fnv"), first, "task %d saw other bytes", i);
    uint64_t peak = store_peak(&c.raylets[0]);
    cr_assert_leq(peak, 250 * MIB, "50 tasks of one 100 MiB value peaked the store at %.0f MiB",
                  (double)peak / (double)MIB);
    cr_assert_geq(peak, size, "the value never reached the store (%.0f MiB)",
                  (double)peak / (double)MIB);
    assert_store_empties(&c.raylets[0], "after the 50 tasks");

    /* One byte differs: another object, another result. */
    rayc_arg a[] = {RAYC_VAL(buf, size), RAYC_VAL(&ms, 8)};
    rayc_ref same, other;
    cr_assert_eq(rayc_submit("fnv", a, 2, NULL, &same), RAYC_OK);
    buf[size - 1] ^= 0xff;
    cr_assert_eq(rayc_submit("fnv", a, 2, NULL, &other), RAYC_OK);
    uint64_t hs = get_u64(same, "fnv same"), ho = get_u64(other, "fnv other");
    cr_assert_eq(hs, first);
    cr_assert_neq(ho, first, "a different value was taken for the stored one");
    free(buf);
    assert_store_empties(&c.raylets[0], "after the last tasks");
    driver_shutdown();
}
