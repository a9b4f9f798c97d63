/*
 * test_actors.c -- actors end to end on real daemons (issue 10): creation
 * and ordered calls from several threads, per-class methods, unknown
 * methods and classes, a failing constructor, a failing method the actor
 * survives, names and get_if_exists, detached actors outliving their job and
 * found by a second driver, kill (final and with restart), kill -9 of the
 * actor's worker (restart, restarts exhausted, in-flight calls retried or
 * failed by max_task_retries), resources held for the actor's life and given
 * back, max_concurrency overlap, handles passed to tasks, release, store
 * returns, a raylet kill -9 in a 3-node cluster (restart on another node),
 * default actors spread over 3 nodes by count, and a GCS kill -9 while calls
 * run (no call fails).
 *
 * Each test starts its own Redis + GCS + raylets through the harness and
 * drives them in-process with librayc; actor classes come from
 * build/examples/libactorlib_tasks.so (examples/actorlib/tasks.c). Nothing
 * here asserts a duration: the concurrency test compares the timestamps
 * the methods recorded.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define SLACK_MS 30000 /* generous: a busy 2-vCPU machine; never a speed test */

TestSuite(actors, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

/* ============================================================ helpers */

static void msleep(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *actorlib(void)
{
    static char path[HARNESS_PATH];
    snprintf(path, sizeof(path), "%s/examples/libactorlib_tasks.so", harness_build());
    cr_assert(access(path, R_OK) == 0, "%s missing (make builds it)", path);
    return path;
}

static void driver_init_ns(const harness_cluster *c, const char *ns)
{
    const char *code[] = {actorlib(), NULL};
    harness_driver_init(c, code, ns);
}

/* Redis, GCS and n raylets (each with extra[i] flags, may be NULL), and a
 * driver on the first. */
static void cluster(harness_cluster *c, int n, const char *const *extra[])
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    for (int i = 0; i < n; i++)
        harness_raylet_start(c, extra ? extra[i] : NULL);
    driver_init_ns(c, "tests");
}

static rayc_actor create(const char *cls, int64_t start, const rayc_actor_opts *o)
{
    rayc_arg arg = RAYC_VAL(&start, sizeof(start));
    rayc_actor a;
    int rc = rayc_actor_create(cls, &arg, 1, o, &a);
    cr_assert_eq(rc, RAYC_OK, "rayc_actor_create(%s): %s: %s", cls, rayc_strerror(rc),
                 rayc_last_error());
    return a;
}

static rayc_ref call(rayc_actor a, const char *method, const rayc_arg *args, size_t n)
{
    rayc_ref r;
    int rc = rayc_actor_call(a, method, args, n, NULL, &r);
    cr_assert_eq(rc, RAYC_OK, "rayc_actor_call(%s): %s: %s", method, rayc_strerror(rc),
                 rayc_last_error());
    return r;
}

/* Get an int64 result; *status gets the value's status (message in err). */
static int64_t result(rayc_ref r, int *status, char *err, size_t errlen)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, SLACK_MS);
    cr_assert_neq(rc, RAYC_ETIMEDOUT, "a call did not end within %d ms", SLACK_MS);
    int64_t out = -1;
    *status = v.status;
    if (err)
        snprintf(err, errlen, "%s", v.error ? v.error : "");
    if (v.status == RAYC_OK && v.size == sizeof(out))
        memcpy(&out, v.data, sizeof(out));
    rayc_value_release(&v);
    rayc_ref_release(r);
    return out;
}

/* The int64 answer of method(arg...) (asserts success). */
static int64_t call_i64(rayc_actor a, const char *method, const int64_t *arg)
{
    rayc_arg args[1] = {RAYC_VAL(arg, arg ? sizeof(*arg) : 0)};
    int status;
    char err[512];
    int64_t v = result(call(a, method, args, arg ? 1 : 0), &status, err, sizeof(err));
    cr_assert_eq(status, RAYC_OK, "%s: %s: %s", method, rayc_strerror(status), err);
    return v;
}

static void state_of(rayc_actor a, char *buf, size_t len)
{
    int rc = rayc_actor_state(a, buf, len);
    cr_assert_eq(rc, RAYC_OK, "rayc_actor_state: %s", rayc_last_error());
}

typedef struct {
    rayc_actor a;
    const char *prefix;
} state_want;

static bool state_is(void *arg)
{
    state_want *w = arg;
    char buf[512];
    return rayc_actor_state(w->a, buf, sizeof(buf)) == RAYC_OK &&
           strncmp(buf, w->prefix, strlen(w->prefix)) == 0;
}

static void wait_state(rayc_actor a, const char *prefix)
{
    state_want w = {a, prefix};
    char buf[512] = "";
    bool ok = harness_wait_until(state_is, &w, SLACK_MS);
    rayc_actor_state(a, buf, sizeof(buf));
    cr_assert(ok, "the actor is %s, not %s", buf, prefix);
}

/* ============================================================ basics */

#define THREADS    4
#define PER_THREAD 500

typedef struct {
    rayc_actor a;
    int64_t who;
    int out_of_order;
    int failed;
} caller_arg;

static void *caller_main(void *p)
{
    caller_arg *c = p;
    rayc_ref refs[PER_THREAD];
    for (int64_t i = 0; i < PER_THREAD; i++) {
        rayc_arg args[2] = {RAYC_VAL(&c->who, sizeof(c->who)), RAYC_VAL(&i, sizeof(i))};
        if (rayc_actor_call(c->a, "append", args, 2, NULL, &refs[i]) != RAYC_OK) {
            c->failed++;
            refs[i] = (rayc_ref){{0}};
        }
    }
    for (int i = 0; i < PER_THREAD; i++) {
        rayc_value v;
        if (rayc_get(&refs[i], 1, &v, SLACK_MS) != RAYC_OK) {
            c->failed++;
        } else {
            int64_t ok = 0;
            memcpy(&ok, v.data, sizeof(ok));
            c->out_of_order += ok != 1;
        }
        rayc_value_release(&v);
        rayc_ref_release(refs[i]);
    }
    return NULL;
}

Test(actors, calls_from_four_threads_keep_each_callers_order)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor a = create("Counter", 0, NULL);
    pthread_t th[THREADS];
    caller_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (caller_arg){.a = a, .who = i};
        pthread_create(&th[i], NULL, caller_main, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].failed, 0, "thread %d: %d calls failed", i, args[i].failed);
        cr_assert_eq(args[i].out_of_order, 0, "thread %d: %d calls ran out of order", i,
                     args[i].out_of_order);
    }
    /* State is kept between calls: 5 increments of a Counter(10). */
    rayc_actor b = create("Counter", 10, NULL);
    for (int i = 0; i < 4; i++)
        call_i64(b, "incr", NULL);
    cr_assert_eq(call_i64(b, "incr", NULL), 15);
    rayc_shutdown();
}

Test(actors, methods_are_per_class_and_unknown_names_are_clear_errors)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor counter = create("Counter", 7, NULL), gauge = create("Gauge", 7, NULL);
    cr_assert_eq(call_i64(counter, "get", NULL), 7, "Counter.get");
    cr_assert_eq(call_i64(gauge, "get", NULL), 7000, "Gauge.get is Gauge's own");

    int status;
    char err[512];
    result(call(counter, "no_such_method", NULL, 0), &status, err, sizeof(err));
    cr_assert_eq(status, RAYC_ENOTFOUND, "an unknown method: %s (%s)", rayc_strerror(status), err);
    cr_assert(strstr(err, "no_such_method") && strstr(err, "Counter"), "message: %s", err);
    cr_assert_eq(call_i64(counter, "incr", NULL), 8, "the actor lives on after a bad call");

    /* An unknown class: the driver knows its libraries and says so at once. */
    rayc_actor ghost;
    int64_t zero = 0;
    rayc_arg zarg = RAYC_VAL(&zero, sizeof(zero));
    int rc = rayc_actor_create("NoSuchClass", &zarg, 1, NULL, &ghost);
    cr_assert_eq(rc, RAYC_ENOTFOUND, "create of an unknown class: %s", rayc_strerror(rc));
    cr_assert(strstr(rayc_last_error(), "NoSuchClass"), "message: %s", rayc_last_error());
    rayc_shutdown();

    /* A driver without the library (a worker is one): the actor is DEAD,
     * and calls say which class. */
    setenv("RAYC_TOKEN_FILE", c.token_file, 1);
    rayc_init_opts bare = {.address = c.address, .log_to_driver = -1};
    cr_assert_eq(rayc_init(&bare), RAYC_OK, "%s", rayc_last_error());
    ghost = create("NoSuchClass", 0, NULL);
    result(call(ghost, "get", NULL, 0), &status, err, sizeof(err));
    cr_assert_eq(status, RAYC_EACTOR_DIED, "a call of an unknown class: %s", rayc_strerror(status));
    cr_assert(strstr(err, "NoSuchClass"), "message: %s", err);
    char st[512];
    state_of(ghost, st, sizeof(st));
    cr_assert(strncmp(st, "DEAD", 4) == 0 && strstr(st, "NoSuchClass"), "state: %s", st);
    rayc_shutdown();
}

Test(actors, failed_constructor_kills_the_actor_and_failed_method_does_not)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor bad = create("Counter", -5, NULL);
    int status;
    char err[512];
    result(call(bad, "get", NULL, 0), &status, err, sizeof(err));
    cr_assert_eq(status, RAYC_EACTOR_DIED, "%s", rayc_strerror(status));
    cr_assert(strstr(err, "negative start -5"), "the constructor's message is kept: %s", err);
    char st[512];
    state_of(bad, st, sizeof(st));
    cr_assert(strstr(st, "DEAD") && strstr(st, "negative start"), "state: %s", st);

    rayc_actor good = create("Counter", 1, NULL);
    result(call(good, "fail", NULL, 0), &status, err, sizeof(err));
    cr_assert_eq(status, RAYC_ETASK, "a failing method gives RAYC_ETASK, not %s",
                 rayc_strerror(status));
    cr_assert(strstr(err, "on purpose"), "message: %s", err);
    cr_assert_eq(call_i64(good, "incr", NULL), 2, "the actor lives on");
    wait_state(good, "ALIVE");
    rayc_shutdown();
}

Test(actors, store_returns_and_ref_arguments)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor a = create("Counter", 0, NULL);
    int64_t n = 3 << 20; /* past the inline size: a store object, read zero-copy */
    rayc_arg arg = RAYC_VAL(&n, sizeof(n));
    rayc_ref r = call(a, "big", &arg, 1);
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "big: %s", rayc_last_error());
    cr_assert_eq(v.size, (size_t)n);
    const uint8_t *p = v.data;
    for (int64_t i = 0; i < n; i += 4093)
        cr_assert_eq(p[i], (uint8_t)(i % 251), "byte %lld", (long long)i);
    rayc_value_release(&v);
    /* The result passed by ref to another call of the actor. */
    rayc_arg byref = RAYC_REF(r);
    int status;
    int64_t size = result(call(a, "size", &byref, 1), &status, NULL, 0);
    cr_assert_eq(status, RAYC_OK);
    cr_assert_eq(size, n, "the ref argument arrived whole (%lld bytes)", (long long)size);
    rayc_ref_release(r);
    /* A handle passed to a task: the worker calls the actor itself. */
    rayc_arg h = RAYC_VAL(&a, sizeof(a));
    rayc_ref t;
    rc = rayc_submit("call_incr", &h, 1, NULL, &t);
    cr_assert_eq(rc, RAYC_OK, "%s", rayc_last_error());
    cr_assert_eq(result(t, &status, NULL, 0), 1, "incr from a task");
    cr_assert_eq(call_i64(a, "get", NULL), 1);
    /* rayc_actor_self inside a method is the actor. */
    rayc_value sv;
    rayc_ref s = call(a, "self_id", NULL, 0);
    cr_assert_eq(rayc_get(&s, 1, &sv, SLACK_MS), RAYC_OK);
    cr_assert(sv.size == sizeof(a.id) && memcmp(sv.data, a.id, sizeof(a.id)) == 0);
    rayc_value_release(&sv);
    rayc_ref_release(s);
    rayc_shutdown();
}

/* A burst of calls with large arguments and large results: the caller's
 * writes must never wait on an actor that waits for the caller to read its
 * replies (both sides' socket buffers full). Each call's argument differs,
 * so none is shared through the store (arg_dedup.h). */
Test(actors, burst_of_large_arguments_and_results_does_not_deadlock)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor a = create("Counter", 0, NULL);
    enum { CALLS = 1000, BYTES = 50000 };
    static rayc_ref r[CALLS];
    static uint8_t arg[BYTES];
    for (int i = 0; i < CALLS; i++) {
        if (i % 2 == 0) {
            int64_t n = BYTES;
            rayc_arg x = RAYC_VAL(&n, sizeof(n));
            r[i] = call(a, "big", &x, 1);
        } else {
            memcpy(arg, &i, sizeof(i));
            rayc_arg x = RAYC_VAL(arg, sizeof(arg));
            r[i] = call(a, "size", &x, 1);
        }
    }
    for (int i = 0; i < CALLS; i++) {
        rayc_value v;
        int rc = rayc_get(&r[i], 1, &v, SLACK_MS);
        cr_assert_eq(rc, RAYC_OK, "call %d: %s: %s", i, rayc_strerror(rc), rayc_last_error());
        cr_assert_eq(v.status, RAYC_OK, "call %d: %s", i, v.error ? v.error : "");
        if (i % 2 == 0) {
            cr_assert_eq(v.size, (size_t)BYTES, "call %d returned %zu bytes", i, v.size);
        } else {
            int64_t got;
            cr_assert_eq(v.size, sizeof(got));
            memcpy(&got, v.data, sizeof(got));
            cr_assert_eq(got, BYTES, "call %d saw an argument of %lld bytes", i, (long long)got);
        }
        rayc_value_release(&v);
        rayc_ref_release(r[i]);
    }
    rayc_shutdown();
}

/* ============================================================ names */

Test(actors, names_get_if_exists_and_detached_actors_outlive_their_job)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor_opts named = {.name = "counter"};
    rayc_actor a = create("Counter", 1, &named);
    rayc_actor b;
    int64_t start = 0;
    rayc_arg arg = RAYC_VAL(&start, sizeof(start));
    int rc = rayc_actor_create("Counter", &arg, 1, &named, &b);
    cr_assert_eq(rc, RAYC_EEXIST, "a taken name: %s", rayc_strerror(rc));
    rayc_actor_opts again = {.name = "counter", .get_if_exists = 1};
    rc = rayc_actor_create("Counter", &arg, 1, &again, &b);
    cr_assert_eq(rc, RAYC_OK, "get_if_exists: %s", rayc_last_error());
    cr_assert(memcmp(a.id, b.id, sizeof(a.id)) == 0, "get_if_exists hands back the holder");
    rayc_actor found;
    cr_assert_eq(rayc_actor_get("counter", NULL, &found), RAYC_OK, "%s", rayc_last_error());
    cr_assert_eq(call_i64(found, "incr", NULL), 2);
    cr_assert_eq(rayc_actor_get("counter", "another-namespace", &found), RAYC_ENOTFOUND);

    rayc_actor_opts keep = {.name = "keeper", .detached = 1};
    rayc_actor k = create("Counter", 100, &keep);
    cr_assert_eq(call_i64(k, "incr", NULL), 101);
    rayc_shutdown(); /* the job ends: "counter" dies, "keeper" lives on */

    driver_init_ns(&c, "tests"); /* a second driver of the namespace */
    rayc_actor k2;
    cr_assert_eq(rayc_actor_get("keeper", NULL, &k2), RAYC_OK, "%s", rayc_last_error());
    cr_assert_eq(call_i64(k2, "incr", NULL), 102, "the detached actor kept its state");
    cr_assert_eq(rayc_actor_get("counter", NULL, &found), RAYC_ENOTFOUND,
                 "a non-detached actor dies with its job");
    wait_state(a, "DEAD: its job ended");
    cr_assert_eq(rayc_actor_kill(k2, 1), RAYC_OK);
    wait_state(k2, "DEAD: killed by rayc_actor_kill");
    int status;
    char err[512];
    result(call(k2, "get", NULL, 0), &status, err, sizeof(err));
    cr_assert_eq(status, RAYC_EACTOR_DIED);
    cr_assert(strstr(err, "killed by rayc_actor_kill"), "cause: %s", err);
    rayc_shutdown();
}

/* ============================================================ faults */

Test(actors, worker_kill9_restarts_the_actor_until_restarts_run_out)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor_opts o = {.max_restarts = 1};
    rayc_actor a = create("Counter", 10, &o);
    cr_assert_eq(call_i64(a, "incr", NULL), 11);
    int64_t pid1 = call_i64(a, "pid", NULL);
    cr_assert_eq(kill((pid_t)pid1, SIGKILL), 0);
    /* Restarted: the constructor ran again with its arguments. */
    int64_t pid2 = -1;
    for (int i = 0; i < 100 && (pid2 < 0 || pid2 == pid1); i++) {
        int status;
        pid2 = result(call(a, "pid", NULL, 0), &status, NULL, 0);
        if (status != RAYC_OK)
            pid2 = -1;
    }
    cr_assert(pid2 > 0 && pid2 != pid1, "restarted in a new process (%lld, was %lld)",
              (long long)pid2, (long long)pid1);
    cr_assert_eq(call_i64(a, "get", NULL), 10, "the constructor ran again");
    cr_assert_eq(kill((pid_t)pid2, SIGKILL), 0);
    wait_state(a, "DEAD");
    char st[512];
    state_of(a, st, sizeof(st));
    cr_assert(strstr(st, "died"), "cause: %s", st);
    int status;
    char err[512];
    result(call(a, "get", NULL, 0), &status, err, sizeof(err));
    cr_assert_eq(status, RAYC_EACTOR_DIED, "%s", rayc_strerror(status));
    rayc_shutdown();
}

Test(actors, in_flight_calls_are_retried_only_with_max_task_retries)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor_opts retry = {.max_restarts = -1, .max_task_retries = -1};
    rayc_actor_opts noretry = {.max_restarts = -1};
    rayc_actor a = create("Counter", 0, &retry), b = create("Counter", 0, &noretry);
    int64_t pa = call_i64(a, "pid", NULL), pb = call_i64(b, "pid", NULL);
    int64_t ms = 3000;
    rayc_arg arg = RAYC_VAL(&ms, sizeof(ms));
    rayc_ref ra = call(a, "nap", &arg, 1), rb = call(b, "nap", &arg, 1);
    msleep(500); /* the naps have started (or are on their way: either is a call in flight) */
    kill((pid_t)pa, SIGKILL);
    kill((pid_t)pb, SIGKILL);
    rayc_value v;
    int rc = rayc_get(&ra, 1, &v, SLACK_MS);
    cr_assert_eq(rc, RAYC_OK, "retried after the restart: %s", rayc_last_error());
    rayc_value_release(&v);
    rc = rayc_get(&rb, 1, &v, SLACK_MS);
    cr_assert_eq(rc, RAYC_EACTOR_DIED, "without retries the call fails: %s", rayc_strerror(rc));
    rayc_value_release(&v);
    rayc_ref_release(ra);
    rayc_ref_release(rb);
    cr_assert_eq(call_i64(b, "incr", NULL), 1, "b restarted and answers new calls");
    rayc_shutdown();
}

/* ============================================================ resources */

static double cpus_available(void)
{
    rayc_node_info n[4];
    size_t count = 0;
    cr_assert_eq(rayc_nodes(n, 4, &count), RAYC_OK);
    return count ? n[0].cpus_available : -1;
}

static bool cpus_are(void *arg)
{
    return cpus_available() == *(double *)arg;
}

Test(actors, resources_are_held_for_life_and_given_back)
{
    harness_cluster c;
    const char *two[] = {"--num-cpus=2", NULL};
    const char *const *extra[] = {two};
    cluster(&c, 1, extra);
    double want = 2;
    cr_assert(harness_wait_until(cpus_are, &want, SLACK_MS), "2 CPUs free at first");
    rayc_actor_opts o = {.num_cpus = 1};
    rayc_actor a = create("Counter", 0, &o);
    call_i64(a, "get", NULL);
    want = 1;
    cr_assert(harness_wait_until(cpus_are, &want, SLACK_MS), "the actor holds 1 CPU (free: %g)",
              cpus_available());
    rayc_actor d = create("Counter", 0, NULL); /* default: none held once created */
    call_i64(d, "get", NULL);
    msleep(500);
    cr_assert_eq(cpus_available(), 1, "a default actor holds no CPU");
    cr_assert_eq(rayc_actor_kill(a, 1), RAYC_OK);
    want = 2;
    cr_assert(harness_wait_until(cpus_are, &want, SLACK_MS), "given back on death (free: %g)",
              cpus_available());
    rayc_shutdown();
}

Test(actors, max_concurrency_runs_calls_side_by_side)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor_opts o = {.max_concurrency = 2};
    rayc_actor a = create("Counter", 0, &o), one = create("Counter", 0, NULL);
    int64_t ms = 1000;
    rayc_arg arg = RAYC_VAL(&ms, sizeof(ms));
    rayc_ref r[4] = {call(a, "nap", &arg, 1), call(a, "nap", &arg, 1), call(one, "nap", &arg, 1),
                     call(one, "nap", &arg, 1)};
    rayc_value v[4];
    cr_assert_eq(rayc_get(r, 4, v, SLACK_MS), RAYC_OK, "%s", rayc_last_error());
    int64_t s[4][2];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(v[i].size, sizeof(s[i]));
        memcpy(s[i], v[i].data, sizeof(s[i]));
        rayc_value_release(&v[i]);
        rayc_ref_release(r[i]);
    }
    /* max_concurrency 2: each nap began before the other ended. */
    cr_assert(s[0][0] < s[1][1] && s[1][0] < s[0][1], "the two naps did not overlap");
    /* max_concurrency 1: one after the other, in call order. */
    cr_assert(s[3][0] >= s[2][1], "the default actor overlapped two calls");
    rayc_shutdown();
}

Test(actors, release_lets_queued_calls_finish_then_the_actor_exits)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor a = create("Counter", 0, NULL);
    rayc_ref r[20];
    for (int i = 0; i < 20; i++)
        r[i] = call(a, "incr", NULL, 0);
    cr_assert_eq(rayc_actor_release(a), RAYC_OK);
    for (int i = 0; i < 20; i++) {
        int status;
        char err[256];
        int64_t got = result(r[i], &status, err, sizeof(err));
        cr_assert_eq(status, RAYC_OK, "call %d after release: %s", i, err);
        cr_assert_eq(got, i + 1);
    }
    wait_state(a, "DEAD: released by its creator");

    /* rayc status counts actors by state. */
    rayc_actor b = create("Counter", 0, NULL);
    call_i64(b, "get", NULL);
    char addr[96], tok[HARNESS_PATH + 16];
    snprintf(addr, sizeof(addr), "--address=%s", c.address);
    snprintf(tok, sizeof(tok), "--token-file=%s", c.token_file);
    const char *args[] = {"status", addr, tok, NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(harness_ctl(&out, &err, args), 0, "rayc_ctl status: %s", err);
    cr_assert(strstr(out, "Actors: 1 alive, 0 restarting, 0 pending creation, 1 dead"),
              "status: %s", out);
    free(out);
    free(err);
    rayc_shutdown();
}

/* ============================================================ cluster faults */

Test(actors, raylet_kill9_restarts_the_actor_on_another_node)
{
    harness_cluster c;
    const char *head[] = {"--num-cpus=1", NULL};
    const char *host[] = {"--num-cpus=1", "--resources=actorhost=1", NULL};
    const char *const *extra[] = {head, host, host};
    cluster(&c, 3, extra);
    rayc_actor_opts o = {.max_restarts = 1, .resources = "actorhost=1"};
    rayc_actor a = create("Counter", 5, &o);
    rayc_value v;
    rayc_ref r = call(a, "node", NULL, 0);
    cr_assert_eq(rayc_get(&r, 1, &v, SLACK_MS), RAYC_OK, "%s", rayc_last_error());
    char first[ID_HEX_MAX] = "";
    snprintf(first, sizeof(first), "%.*s", (int)v.size, (const char *)v.data);
    rayc_value_release(&v);
    rayc_ref_release(r);
    int victim = strcmp(first, c.raylets[1].node_id) == 0 ? 1 : 2;
    cr_assert(strcmp(first, c.raylets[victim].node_id) == 0, "the actor runs on a host node");
    harness_kill9(c.raylets[victim].proc);
    /* The GCS sees the node die, and the actor comes back on the other host. */
    char now[ID_HEX_MAX] = "";
    for (int i = 0; i < 300; i++) {
        rayc_ref q;
        if (rayc_actor_call(a, "node", NULL, 0, NULL, &q) != RAYC_OK)
            break;
        if (rayc_get(&q, 1, &v, SLACK_MS) == RAYC_OK) {
            snprintf(now, sizeof(now), "%.*s", (int)v.size, (const char *)v.data);
            rayc_value_release(&v);
            rayc_ref_release(q);
            break;
        }
        rayc_value_release(&v);
        rayc_ref_release(q);
        msleep(100);
    }
    cr_assert_str_eq(now, c.raylets[3 - victim].node_id, "restarted on the other host node");
    cr_assert_eq(call_i64(a, "get", NULL), 5, "its constructor ran again there");
    rayc_shutdown();
}

/* Actors that hold nothing (Ray's default) leave the nodes' free resources
 * as they were, so the GCS balances them by count: 30 on 3 nodes get a
 * fair share each (the GCS placed 612 of 1,000 on one node before). */
Test(actors, default_actors_spread_over_the_nodes_by_count)
{
    harness_cluster c;
    cluster(&c, 3, NULL);
    enum { N = 30 };
    rayc_actor as[N];
    for (int i = 0; i < N; i++)
        as[i] = create("Counter", i, NULL);
    int per_node[3] = {0};
    for (int i = 0; i < N; i++) {
        rayc_value v;
        rayc_ref r = call(as[i], "node", NULL, 0);
        cr_assert_eq(rayc_get(&r, 1, &v, SLACK_MS), RAYC_OK, "%s", rayc_last_error());
        char where[ID_HEX_MAX] = "";
        snprintf(where, sizeof(where), "%.*s", (int)v.size, (const char *)v.data);
        rayc_value_release(&v);
        rayc_ref_release(r);
        int k = 0;
        while (k < 3 && strcmp(where, c.raylets[k].node_id) != 0)
            k++;
        cr_assert(k < 3, "actor %d runs on %s, not one of the cluster's nodes", i, where);
        per_node[k]++;
    }
    int lo = N, hi = 0;
    for (int k = 0; k < 3; k++) {
        lo = per_node[k] < lo ? per_node[k] : lo;
        hi = per_node[k] > hi ? per_node[k] : hi;
    }
    cr_assert(hi - lo <= 2, "actors per node: %d, %d, %d (not balanced)", per_node[0], per_node[1],
              per_node[2]);
    rayc_shutdown();
}

typedef struct {
    rayc_actor a;
    volatile int stop;
    int calls, failures;
    char last_error[256];
} pounder;

static void *pound(void *p)
{
    pounder *x = p;
    while (!x->stop) {
        rayc_ref r;
        if (rayc_actor_call(x->a, "incr", NULL, 0, NULL, &r) != RAYC_OK) {
            x->failures++;
            continue;
        }
        rayc_value v;
        if (rayc_get(&r, 1, &v, SLACK_MS) != RAYC_OK) {
            x->failures++;
            snprintf(x->last_error, sizeof(x->last_error), "%s", rayc_last_error());
        }
        rayc_value_release(&v);
        rayc_ref_release(r);
        x->calls++;
    }
    return NULL;
}

Test(actors, gcs_kill9_and_restart_while_calls_run_fails_no_call)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    pounder x = {.a = create("Counter", 0, NULL)};
    call_i64(x.a, "get", NULL);
    pthread_t th;
    pthread_create(&th, NULL, pound, &x);
    msleep(300);
    harness_kill9(c.gcs);
    msleep(500);
    int during = x.calls;
    harness_gcs_restart(&c);
    msleep(500);
    x.stop = 1;
    pthread_join(th, NULL);
    cr_assert_eq(x.failures, 0, "%d of %d calls failed: %s", x.failures, x.calls, x.last_error);
    cr_assert_gt(x.calls, during, "calls went on after the GCS came back");
    cr_assert_eq(call_i64(x.a, "get", NULL), x.calls, "every call ran once");
    /* Creation works again once the GCS is back. */
    rayc_actor b = create("Counter", 3, NULL);
    cr_assert_eq(call_i64(b, "incr", NULL), 4);
    rayc_shutdown();
}

/* ============================================================ scale */

#define THOUSAND 1000

Test(actors, slow_thousand_actors_on_one_two_cpu_node, .timeout = 900)
{
    harness_slow_test();
    raise_fd_limit(); /* this driver holds a connection per actor */
    harness_cluster c;
    const char *two[] = {"--num-cpus=2", NULL};
    const char *const *extra[] = {two};
    cluster(&c, 1, extra);
    static rayc_actor a[THOUSAND];
    static rayc_ref r[THOUSAND];
    for (int i = 0; i < THOUSAND; i++)
        a[i] = create("Counter", i, NULL);
    for (int i = 0; i < THOUSAND; i++)
        r[i] = call(a[i], "get", NULL, 0);
    for (int i = 0; i < THOUSAND; i++) {
        rayc_value v;
        int rc = rayc_get(&r[i], 1, &v, 600000);
        cr_assert_eq(rc, RAYC_OK, "actor %d: %s", i, rayc_last_error());
        int64_t got;
        memcpy(&got, v.data, sizeof(got));
        cr_assert_eq(got, i, "actor %d answered %lld", i, (long long)got);
        rayc_value_release(&v);
        rayc_ref_release(r[i]);
    }
    rayc_shutdown();
}

/* rayc_actor_kill(a, 0) kills the worker and lets the actor restart: a new
 * process, its constructor run again (docs/actors.md). */
Test(actors, kill_without_no_restart_restarts_the_actor)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    rayc_actor_opts o = {.max_restarts = 1};
    rayc_actor a = create("Counter", 3, &o);
    cr_assert_eq(call_i64(a, "incr", NULL), 4);
    int64_t pid1 = call_i64(a, "pid", NULL);
    cr_assert_eq(rayc_actor_kill(a, 0), RAYC_OK, "%s", rayc_last_error());
    int64_t pid2 = -1;
    for (int i = 0; i < 200 && (pid2 < 0 || pid2 == pid1); i++) {
        int status;
        pid2 = result(call(a, "pid", NULL, 0), &status, NULL, 0);
        if (status != RAYC_OK)
            pid2 = -1;
    }
    cr_assert(pid2 > 0 && pid2 != pid1, "no restart after rayc_actor_kill(a, 0)");
    cr_assert_eq(call_i64(a, "get", NULL), 3, "the constructor ran again");
    wait_state(a, "ALIVE");
    rayc_shutdown();
}

/* The store's high-water mark of the raylet r since the last reset (reset
 * says to start again now). */
static uint64_t store_peak(const harness_raylet *r, bool reset)
{
    Rpc__StoreStatsReply *s = reset ? harness_store_stats_reset_peak(r) : harness_store_stats(r);
    cr_assert_not_null(s, "the raylet did not answer a store stats request");
    uint64_t peak = s->peak_used;
    msg_free(&s->base);
    return peak;
}

/* 50 calls given the same 100 MiB by value store it once (the staging of
 * tasks, with its by-value dedup); a value that differs by one byte is not
 * taken for it. */
Test(actors, large_value_argument_of_many_calls_stored_once, .timeout = 420)
{
    harness_cluster c;
    cluster(&c, 1,
            (const char *const *[]){(const char *const[]){"--object-store-memory=1G", NULL}});
    rayc_actor a = create("Counter", 0, NULL);
    size_t size = 100u << 20;
    uint8_t *buf = malloc(size);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 7 + (i >> 12));
    store_peak(&c.raylets[0], true);
    enum { N = 50 };
    rayc_ref out[N + 1];
    int64_t ms = 20;
    rayc_arg args[] = {RAYC_VAL(buf, size), RAYC_VAL(&ms, sizeof(ms))};
    for (int i = 0; i < N; i++)
        out[i] = call(a, "fnv", args, 2);
    int status;
    int64_t first = result(out[0], &status, NULL, 0);
    cr_assert_eq(status, RAYC_OK);
    for (int i = 1; i < N; i++) {
        cr_assert_eq(result(out[i], &status, NULL, 0), first, "call %d saw other bytes", i);
        cr_assert_eq(status, RAYC_OK);
    }
    uint64_t peak = store_peak(&c.raylets[0], false);
    cr_assert_leq(peak, 250u << 20, "50 calls of one 100 MiB value peaked the store at %llu MiB",
                  (unsigned long long)(peak >> 20));
    cr_assert_geq(peak, size, "the value never reached the store");
    buf[size - 1] ^= 0xff;
    out[N] = call(a, "fnv", args, 2);
    cr_assert_neq(result(out[N], &status, NULL, 0), first, "a different value was taken");
    free(buf);
    cr_assert_eq(rayc_actor_kill(a, 1), RAYC_OK);
    rayc_shutdown();
}

/* The parent of pid (field 4 of /proc/<pid>/stat), or -1 when it is gone. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    char state;
    int ppid;
    if (p == NULL || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || state == 'Z')
        return -1;
    return (pid_t)ppid;
}

/* The children of the raylet that are its worker zygote. */
static int zygotes_of(pid_t raylet)
{
    int count = 0;
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int pid = atoi(e->d_name);
        char path[300], cmd[64] = "";
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (f == NULL)
            continue;
        size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        if (n > 12 && strcmp(cmd + 12, "--zygote") == 0 && parent_of(pid) == raylet)
            count++;
    }
    closedir(d);
    return count;
}

struct one_zygote {
    pid_t raylet;
    int count;
};

static bool one_zygote(void *arg)
{
    struct one_zygote *z = arg;
    z->count = zygotes_of(z->raylet);
    return z->count == 1;
}

struct pids_gone {
    const pid_t *pids;
    int n;
};

static bool pids_gone(void *arg)
{
    struct pids_gone *g = arg;
    for (int i = 0; i < g->n; i++)
        if (parent_of(g->pids[i]) > 0)
            return false;
    return true;
}

/* Workers are forked by the raylet's zygote: each actor's worker is a
 * process of its own (its own pid, answering on its own connection), a
 * child of the raylet like an exec'ed worker, and dies with the raylet. */
Test(actors, zygote_forked_workers_are_the_raylets_own_children)
{
    harness_cluster c;
    cluster(&c, 1, NULL);
    pid_t raylet = c.raylets[0].proc->pid;
    enum { N = 4 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        rayc_actor a = create("Counter", i, NULL);
        pids[i] = (pid_t)call_i64(a, "pid", NULL);
        cr_assert_eq(call_i64(a, "get", NULL), i, "actor %d answers on its own connection", i);
        for (int j = 0; j < i; j++)
            cr_assert_neq(pids[i], pids[j], "actors %d and %d share a process", i, j);
        cr_assert_eq(parent_of(pids[i]), raylet, "worker %d is not the raylet's child", i);
    }
    /* A worker forked a moment ago shows the zygote's command line until
     * it clears it: look until the count settles. */
    struct one_zygote z = {raylet, 0};
    cr_assert(harness_wait_until(one_zygote, &z, SLACK_MS),
              "the raylet should have one worker zygote, has %d", z.count);
    c.raylets[0].proc->any_exit = true;
    harness_kill9(c.raylets[0].proc);
    struct pids_gone g = {pids, N};
    cr_assert(harness_wait_until(pids_gone, &g, SLACK_MS), "workers outlived their raylet");
    rayc_shutdown();
}
