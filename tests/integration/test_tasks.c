/*
 * test_tasks.c -- issue 4's acceptance tests: tasks end to end on a real
 * embedded cluster (rayc_init with address "local": rayc start --head, GCS,
 * Redis, raylet, workers), one per test, in the harness's private temp dir.
 *
 * The task functions live in examples/testlib/tasks.c (built as
 * build/examples/libtestlib_tasks.so). Every daemon the cluster starts
 * inherits RAYC_HARNESS_TAG, so the harness's teardown finds and reports any
 * survivor; each test also checks that the embedded cluster's temp dir
 * (/tmp/rayc-embedded-*) is gone after rayc_shutdown.
 *
 * RAYC_BIN_DIR overrides where the daemons come from (default: the build's
 * bin dir). Nothing here asserts a timing: waits poll with generous limits.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define LONG_MS     120000 /* a get that should succeed: generous, never a speed test */
#define STORE_BYTES (256u << 20)

static void fini(void);
TestSuite(tasks, .init = harness_setup, .fini = fini, .timeout = 300);

/* ------------------------------------------------------------ cluster */

static bool g_up;                 /* rayc_init succeeded, no rayc_shutdown yet */
static char g_root[HARNESS_PATH]; /* the embedded cluster's /tmp/rayc-embedded-* */

static void pathf(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < len, "path too long");
}

/* The embedded cluster's root: argv[5] of the keeper ("sh -c SCRIPT
 * rayc-embedded CLI ROOT ...") that `parent` started. */
static bool find_root(pid_t parent, char *out, size_t len)
{
    DIR *d = opendir("/proc");
    bool found = false;
    struct dirent *e;
    while (!found && d && (e = readdir(d)) != NULL) {
        char path[300], *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        char *st = read_file(path, NULL);
        char *rp = st ? strrchr(st, ')') : NULL;
        int ppid = -1;
        if (rp)
            sscanf(rp + 2, "%*c %d", &ppid);
        free(st);
        if (ppid != parent)
            continue;
        size_t n;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        char *cmd = read_file(path, &n);
        const char *argv[8] = {0};
        int argc = 0;
        for (size_t off = 0; cmd && off < n && argc < 8; off += strlen(cmd + off) + 1)
            argv[argc++] = cmd + off;
        if (argc >= 6 && strcmp(argv[3], "rayc-embedded") == 0) {
            snprintf(out, len, "%s", argv[5]);
            found = true;
        }
        free(cmd);
    }
    if (d)
        closedir(d);
    return found;
}

/* Environment every cluster of this test inherits: the harness tag (so the
 * teardown sees our daemons), a private RAYC_TEMP_DIR, the bin dir. */
static void cluster_env(void)
{
    char temp[HARNESS_PATH], bin[HARNESS_PATH];
    pathf(temp, sizeof(temp), "%s/rayc", harness_dir());
    mkdir(temp, 0700);
    setenv("RAYC_HARNESS_TAG", harness_dir(), 1);
    setenv("RAYC_TEMP_DIR", temp, 1);
    unsetenv("RAYC_ADDRESS");
    pathf(bin, sizeof(bin), "%s/bin", harness_build());
    setenv("RAYC_BIN_DIR", bin, 0);
}

static const char *testlib(void)
{
    static char lib[HARNESS_PATH];
    pathf(lib, sizeof(lib), "%s/examples/libtestlib_tasks.so", harness_build());
    cr_assert(access(lib, R_OK) == 0, "%s missing (make builds it)", lib);
    return lib;
}

/* An embedded cluster with num_cpus CPUs (0: all) and env for the job. */
static void start_env(double cpus, const char *const *env)
{
    cluster_env();
    const char *code[] = {testlib(), NULL};
    rayc_init_opts o = {.address = "local",
                        .code = code,
                        .env = env,
                        .num_cpus = cpus,
                        .object_store_memory = STORE_BYTES};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
    g_up = true;
    cr_assert(find_root(getpid(), g_root, sizeof(g_root)), "no embedded cluster keeper found");
}

static void start(double cpus)
{
    start_env(cpus, NULL);
}

static bool root_gone(void *arg)
{
    return access((const char *)arg, F_OK) != 0;
}

static int root_procs(const char *root, bool do_kill, char *who, size_t len);

/* Nothing tagged with this test's dir, and nothing naming the cluster's root. */
static bool no_survivors(void *arg)
{
    const char *root = arg;
    return harness_survivors(NULL, 0) == 0 &&
           (root == NULL || root[0] == '\0' || root_procs(root, false, NULL, 0) == 0);
}

/* rayc_shutdown, then nothing of the cluster may remain: no process, no dir. */
static void stop(void)
{
    if (!g_up)
        return;
    g_up = false;
    cr_assert_eq(rayc_shutdown(), RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
    char who[2048];
    bool gone = harness_wait_until(no_survivors, g_root, 30000);
    if (!gone && g_root[0])
        root_procs(g_root, false, who, sizeof(who));
    else
        harness_survivors(who, sizeof(who));
    cr_assert(gone, "survivors after rayc_shutdown: %s", who);
    if (g_root[0]) {
        cr_assert(harness_wait_until(root_gone, g_root, 30000), "%s remains after rayc_shutdown",
                  g_root);
        g_root[0] = '\0';
    }
}

/* Processes whose command line names root (Redis rewrites its environment,
 * so the harness tag misses it; its socket path names the root). With
 * do_kill, SIGKILL them. Returns how many there were; their pids go in who. */
static int root_procs(const char *root, bool do_kill, char *who, size_t len)
{
    int n = 0;
    size_t off = 0;
    if (who && len)
        who[0] = '\0';
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid())
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        size_t clen;
        char *cmd = read_file(path, &clen);
        for (size_t i = 0; cmd && i + 1 < clen; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        if (cmd && clen && strstr(cmd, root)) {
            n++;
            if (who && off < len)
                off += (size_t)snprintf(who + off, len - off, "[%ld] %.80s; ", pid, cmd);
            if (do_kill)
                kill((pid_t)pid, SIGKILL);
        }
        free(cmd);
    }
    if (d)
        closedir(d);
    return n;
}

static void fini(void)
{
    if (g_up) {
        g_up = false;
        rayc_shutdown();
    }
    char root[HARNESS_PATH];
    snprintf(root, sizeof(root), "%s", g_root);
    harness_teardown();
    if (root[0] == '\0')
        return;
    bool gone = harness_wait_until(root_gone, root, 30000);
    char who[2048];
    int left = root_procs(root, true, who, sizeof(who));
    if (!gone) {
        char cmd[HARNESS_PATH + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        (void)!system(cmd);
    }
    if (!gone || left > 0)
        harness_fail_teardown("the embedded cluster left %s%s%d process(es): %s", root,
                              gone ? " removed, " : " behind and ", left, who);
}

/* ------------------------------------------------------------ helpers */

#define ARG_STR(s) RAYC_VAL((s), strlen(s) + 1)
#define ARG_I64(p) RAYC_VAL((p), sizeof(int64_t))

static rayc_ref submit(const char *fn, const rayc_arg *args, size_t n, const rayc_task_opts *o)
{
    rayc_ref r;
    int rc = rayc_submit(fn, args, n, o, &r);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit(%s): %s: %s", fn, rayc_strerror(rc), rayc_last_error());
    return r;
}

/* Get one value; returns the code, *v filled (release it). */
static int get1(rayc_ref r, rayc_value *v, int64_t timeout_ms)
{
    memset(v, 0, sizeof(*v));
    return rayc_get(&r, 1, v, timeout_ms);
}

/* Get an int64 result that must succeed; releases the ref. */
static int64_t get_i64(rayc_ref r)
{
    rayc_value v;
    int rc = get1(r, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "rayc_get: %s: %s (%s)", rayc_strerror(rc), rayc_last_error(),
                 v.error ? v.error : "");
    cr_assert_eq(v.size, sizeof(int64_t), "want an int64, got %zu bytes", v.size);
    int64_t x;
    memcpy(&x, v.data, sizeof(x));
    rayc_value_release(&v);
    rayc_ref_release(r);
    return x;
}

/* Get a result that must fail with `want`; returns its error text (malloc'd). */
static char *get_err(rayc_ref r, int want)
{
    rayc_value v;
    int rc = get1(r, &v, LONG_MS);
    cr_assert_eq(rc, want, "rayc_get: want %s, got %s: %s", rayc_strerror(want), rayc_strerror(rc),
                 rayc_last_error());
    cr_assert_eq(v.status, want);
    char *msg = strdup(v.error ? v.error : "");
    rayc_value_release(&v);
    rayc_ref_release(r);
    return msg;
}

static uint64_t fnv1a(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void tmp_path(char *out, size_t len, const char *name)
{
    pathf(out, len, "%s/%s", harness_dir(), name);
}

/* Redirect fd (1 or 2) into a file; returns the saved fd. */
static int capture(int fd, const char *path)
{
    fflush(fd == 1 ? stdout : stderr);
    int saved = dup(fd);
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && f >= 0);
    dup2(f, fd);
    close(f);
    return saved;
}

static void restore(int fd, int saved)
{
    fflush(fd == 1 ? stdout : stderr);
    dup2(saved, fd);
    close(saved);
}

struct contains_arg {
    const char *path, *needle;
};

static bool file_contains(void *arg)
{
    struct contains_arg *a = arg;
    fflush(stdout);
    fflush(stderr);
    char *s = read_file(a->path, NULL);
    bool ok = s && strstr(s, a->needle) != NULL;
    free(s);
    return ok;
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ------------------------------------------------------------ code shipping */

Test(tasks, code_shipping_and_unknown_function)
{
    start(2);
    rayc_arg a = ARG_STR("shipped");
    rayc_value v;
    rayc_ref r = submit("echo", &a, 1, NULL);
    cr_assert_eq(get1(r, &v, LONG_MS), RAYC_OK, "echo: %s", rayc_last_error());
    cr_assert_str_eq((const char *)v.data, "shipped");
    rayc_value_release(&v);
    rayc_ref_release(r);

    /* The driver knows its libraries: a misspelled function fails at once. */
    rayc_ref bad;
    int rc = rayc_submit("no_such_function_xyz", NULL, 0, NULL, &bad);
    cr_assert_eq(rc, RAYC_ENOTFOUND, "submit of an unknown function: %s", rayc_strerror(rc));
    cr_assert(strstr(rayc_last_error(), "no_such_function_xyz") != NULL,
              "message does not name it: %s", rayc_last_error());

    /* The worker survives: later tasks run (as many as there are workers). */
    for (int i = 0; i < 4; i++) {
        int64_t x = i;
        rayc_arg ai = ARG_I64(&x);
        cr_assert_eq(get_i64(submit("inc", &ai, 1, NULL)), i + 1);
    }
    stop();
}

/* ------------------------------------------------------------ env */

Test(tasks, env_reaches_tasks)
{
    const char *env[] = {"RAYC_TEST_GREETING=hello tasks", "RAYC_TEST_EMPTY=", NULL};
    start_env(2, env);
    rayc_arg a = ARG_STR("RAYC_TEST_GREETING");
    rayc_value v;
    rayc_ref r = submit("env", &a, 1, NULL);
    cr_assert_eq(get1(r, &v, LONG_MS), RAYC_OK, "env: %s (%s)", rayc_last_error(),
                 v.error ? v.error : "");
    cr_assert_str_eq((const char *)v.data, "hello tasks");
    rayc_value_release(&v);
    rayc_ref_release(r);

    rayc_arg b = ARG_STR("RAYC_TEST_EMPTY");
    r = submit("env", &b, 1, NULL);
    cr_assert_eq(get1(r, &v, LONG_MS), RAYC_OK, "env: %s (%s)", rayc_last_error(),
                 v.error ? v.error : "");
    cr_assert_str_eq((const char *)v.data, "");
    rayc_value_release(&v);
    rayc_ref_release(r);
    stop();
}

/* Workers (started by a raylet started by the embedded cluster) inherit the
 * harness's sanitizer log path, so their sanitizer reports fail the test. */
Test(tasks, workers_inherit_sanitizer_log_path)
{
    start(1);
    char want[HARNESS_PATH];
    pathf(want, sizeof(want), "log_path=%s/san/asan", harness_dir());
    rayc_arg a = ARG_STR("ASAN_OPTIONS");
    rayc_value v;
    rayc_ref r = submit("env", &a, 1, NULL);
    cr_assert_eq(get1(r, &v, LONG_MS), RAYC_OK, "env: %s (%s)", rayc_last_error(),
                 v.error ? v.error : "");
    cr_assert(strstr((const char *)v.data, want), "a worker's ASAN_OPTIONS is %s, want %s",
              (const char *)v.data, want);
    rayc_value_release(&v);
    rayc_ref_release(r);
    stop();
}

/* ------------------------------------------------------------ output */

Test(tasks, worker_output_streamed_to_driver)
{
    char out[HARNESS_PATH], err[HARNESS_PATH];
    tmp_path(out, sizeof(out), "driver.stdout");
    tmp_path(err, sizeof(err), "driver.stderr");
    start(2);
    int so = capture(1, out), se = capture(2, err);
    rayc_arg a = ARG_STR("marker-7f3a");
    int64_t pid = get_i64(submit("say", &a, 1, NULL));

    char want_out[256], want_err[256];
    snprintf(want_out, sizeof(want_out), "(pid=%lld, node=%.8s) marker-7f3a\n", (long long)pid,
             rayc_node_id());
    snprintf(want_err, sizeof(want_err), "(pid=%lld, node=%.8s) err:marker-7f3a\n", (long long)pid,
             rayc_node_id());
    struct contains_arg co = {out, want_out}, ce = {err, want_err};
    bool got_out = harness_wait_until(file_contains, &co, 20000);
    bool got_err = harness_wait_until(file_contains, &ce, 20000);
    restore(1, so);
    restore(2, se);
    char *o = read_file(out, NULL), *e = read_file(err, NULL);
    cr_assert(got_out, "driver stdout lacks [%s]; it has [%s]", want_out, o ? o : "");
    cr_assert(got_err, "driver stderr lacks [%s]; it has [%s]", want_err, e ? e : "");
    free(o);
    free(e);
    stop();
}

/* A line written in two parts reaches the driver whole: the raylet keeps
 * the unfinished part (in a buffer it makes at the first such line). */
Test(tasks, worker_output_line_in_two_writes_arrives_whole)
{
    char out[HARNESS_PATH];
    tmp_path(out, sizeof(out), "driver.stdout");
    start(1);
    int so = capture(1, out);
    rayc_arg a = ARG_STR("split-marker-51c9");
    int64_t pid = get_i64(submit("say_split", &a, 1, NULL));
    char want[256];
    snprintf(want, sizeof(want), "(pid=%lld, node=%.8s) split-marker-51c9\n", (long long)pid,
             rayc_node_id());
    struct contains_arg co = {out, want};
    bool got = harness_wait_until(file_contains, &co, 20000);
    restore(1, so);
    char *o = read_file(out, NULL);
    cr_assert(got, "driver stdout lacks [%s]; it has [%s]", want, o ? o : "");
    free(o);
    stop();
}

/* ------------------------------------------------------------ resources */

Test(tasks, two_cpu_task_runs_on_two_cpu_node)
{
    start(2);
    rayc_task_opts o = {.num_cpus = 2};
    int64_t x = 41;
    rayc_arg a = ARG_I64(&x);
    cr_assert_eq(get_i64(submit("inc", &a, 1, &o)), 42);
    stop();
}

Test(tasks, infeasible_task_pends_warns_once_and_cancels)
{
    char err[HARNESS_PATH];
    tmp_path(err, sizeof(err), "driver.stderr");
    start(2);
    int se = capture(2, err);
    rayc_task_opts o = {.resources = "unobtainium=1"};
    rayc_ref r1 = submit("noop", NULL, 0, &o);
    rayc_ref r2 = submit("noop", NULL, 0, &o);
    rayc_value v;
    int rc1 = get1(r1, &v, 2000);
    rayc_value_release(&v);
    int rc2 = get1(r2, &v, 500);
    rayc_value_release(&v);
    /* The warning reaches the driver asynchronously: wait for it, then give
     * a second one the chance to show up too. */
    struct contains_arg ce = {err, "unobtainium"};
    bool warned = harness_wait_until(file_contains, &ce, 20000);
    int64_t x = 1;
    rayc_arg a = ARG_I64(&x);
    int64_t feasible = get_i64(submit("inc", &a, 1, NULL)); /* a round trip after it */
    restore(2, se);
    cr_assert_eq(rc1, RAYC_ETIMEDOUT, "first get: %s", rayc_strerror(rc1));
    cr_assert_eq(rc2, RAYC_ETIMEDOUT, "second get: %s", rayc_strerror(rc2));
    cr_assert_eq(feasible, 2, "a feasible task behind infeasible ones did not run");
    char *e = read_file(err, NULL);
    cr_assert(warned, "no warning on the driver's stderr: [%s]", e ? e : "");
    cr_assert_eq(count_substr(e, "unobtainium"), 1, "want one warning, stderr: [%s]", e);
    free(e);

    cr_assert_eq(rayc_cancel(r1, 0), RAYC_OK, "cancel: %s", rayc_last_error());
    free(get_err(r1, RAYC_ECANCELLED));
    cr_assert_eq(rayc_cancel(r2, 1), RAYC_OK, "force cancel: %s", rayc_last_error());
    free(get_err(r2, RAYC_ECANCELLED));
    stop();
}

/* ------------------------------------------------------------ dependencies */

Test(tasks, one_mib_value_arrives_intact)
{
    start(2);
    size_t n = 1u << 20;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 131 + (i >> 9));
    rayc_arg a = RAYC_VAL(buf, n);
    rayc_ref r = submit("digest", &a, 1, NULL);
    uint64_t want[2] = {n, fnv1a(buf, n)};
    memset(buf, 0, n); /* copied at submit */
    free(buf);
    rayc_value v;
    cr_assert_eq(get1(r, &v, LONG_MS), RAYC_OK, "digest: %s", rayc_last_error());
    cr_assert_eq(v.size, sizeof(want));
    cr_assert_eq(memcmp(v.data, want, sizeof(want)), 0, "the 1 MiB argument changed on the way");
    rayc_value_release(&v);
    rayc_ref_release(r);
    stop();
}

static size_t store_used(void)
{
    rayc_node_info n[4];
    size_t count = 0;
    cr_assert_eq(rayc_nodes(n, 4, &count), RAYC_OK, "rayc_nodes: %s", rayc_last_error());
    cr_assert(count >= 1);
    return n[0].store_used;
}

/* The embedded raylet's store, asked directly on its socket (rayc_nodes'
 * numbers lag a heartbeat behind). Free with msg_free(). */
static Rpc__StoreStatsReply *raylet_store(void)
{
    harness_raylet r;
    memset(&r, 0, sizeof(r));
    char sock[HARNESS_PATH];
    pathf(sock, sizeof(sock), "%s/session_latest/sockets/raylet", g_root);
    cr_assert(realpath(sock, r.socket) != NULL, "%s: %s", sock, strerror(errno));
    Rpc__StoreStatsReply *st = harness_store_stats(&r);
    cr_assert_not_null(st, "the raylet at %s gave no store stats", r.socket);
    return st;
}

static bool store_has(void *arg)
{
    return store_used() >= *(size_t *)arg;
}

Test(tasks, one_put_ref_shared_by_1000_tasks)
{
    start(2);
    size_t n = 10u << 20;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i ^ (i >> 13));
    /* What sample() computes: fnv1a over every 4096th byte and the last. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i += 4096)
        h = (h ^ buf[i]) * 1099511628211ULL;
    h = (h ^ buf[n - 1]) * 1099511628211ULL;
    rayc_ref big;
    cr_assert_eq(rayc_put(buf, n, &big), RAYC_OK, "put: %s", rayc_last_error());
    free(buf);
    cr_assert(harness_wait_until(store_has, &n, 20000),
              "store_used %zu never showed the 10 MiB put", store_used());
    size_t before = store_used();

    enum { N = 1000 };
    static rayc_ref refs[N];
    rayc_arg a = RAYC_REF(big);
    for (int i = 0; i < N; i++)
        refs[i] = submit("sample", &a, 1, NULL);
    static rayc_value vals[N];
    int rc = rayc_get(refs, N, vals, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "get: %s: %s", rayc_strerror(rc), rayc_last_error());
    for (int i = 0; i < N; i++) {
        uint64_t got[2];
        cr_assert_eq(vals[i].size, sizeof(got));
        memcpy(got, vals[i].data, sizeof(got));
        cr_assert(got[0] == n && got[1] == h, "task %d saw different bytes", i);
        rayc_value_release(&vals[i]);
        rayc_ref_release(refs[i]);
    }
    /* The store itself, not a heartbeat sample: still the one object and
     * its bytes (a copy for any task would be a second object). */
    Rpc__StoreStatsReply *st = raylet_store();
    cr_assert_eq(st->objects, 1, "the store holds %llu objects after the tasks, want the one put",
                 (unsigned long long)st->objects);
    cr_assert(st->used >= n && st->used < before + n / 2,
              "store use changed with the tasks: %zu before, %llu after (a copy would be %zu)",
              before, (unsigned long long)st->used, n);
    cr_assert_eq(st->spilled_objects, 0);
    msg_free(&st->base);
    rayc_ref_release(big);
    stop();
}

Test(tasks, chain_a_b_c)
{
    start(2);
    int64_t zero = 0;
    rayc_arg a0 = ARG_I64(&zero);
    rayc_ref a = submit("inc", &a0, 1, NULL);
    rayc_arg ab = RAYC_REF(a);
    rayc_ref b = submit("inc", &ab, 1, NULL);
    rayc_arg bc = RAYC_REF(b);
    rayc_ref c = submit("inc", &bc, 1, NULL);
    rayc_ref_release(a);
    rayc_ref_release(b);
    cr_assert_eq(get_i64(c), 3);
    stop();
}

static void check_multi(size_t big)
{
    rayc_task_opts o = {.num_returns = 3};
    int64_t size = (int64_t)big;
    rayc_arg a = ARG_I64(&size);
    rayc_ref r[3];
    int rc = rayc_submit("multi", &a, 1, &o, r);
    cr_assert_eq(rc, RAYC_OK, "submit: %s", rayc_last_error());
    rayc_value v[3];
    memset(v, 0, sizeof(v));
    rc = rayc_get(r, 3, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "get: %s: %s (%s)", rayc_strerror(rc), rayc_last_error(),
                 v[0].error ? v[0].error : "");
    cr_assert_eq(v[0].size, 8);
    cr_assert_str_eq((const char *)v[0].data, "small-0");
    cr_assert_eq(v[2].size, 8);
    cr_assert_str_eq((const char *)v[2].data, "small-2");
    cr_assert_eq(v[1].size, big, "return 1 is %zu bytes, want %zu", v[1].size, big);
    const uint8_t *p = v[1].data;
    for (size_t i = 0; i < big; i++)
        cr_assert_eq(p[i], (uint8_t)((i * 7 + 3) & 0xff), "return 1 byte %zu differs", i);
    for (int i = 0; i < 3; i++) {
        rayc_value_release(&v[i]);
        rayc_ref_release(r[i]);
    }
}

static bool store_empty(void *arg)
{
    (void)arg;
    return store_used() == 0;
}

Test(tasks, multiple_returns_small_and_large)
{
    start(2);
    check_multi(1000);      /* rayc_return_alloc of a small value: inline */
    check_multi(300 << 10); /* > 100 KiB: a store object written in place */
    check_multi(3u << 20);
    /* The raylet pins store results for their owner with the completion;
     * released refs give those pins back and the store empties. */
    cr_assert(harness_wait_until(store_empty, NULL, LONG_MS), "the store still holds %zu bytes",
              store_used());
    stop();
}

/* Results the driver holds, more than the store holds: the raylet pins each
 * for the owner as it completes, yet the store can still spill the older
 * ones for the newer, and every result reads back exact. */
Test(tasks, held_store_results_past_the_store_spill)
{
    start(2);
    enum { N = 40 };
    const size_t big = 10u << 20; /* 40 x 10 MiB in a 256 MiB store */
    static rayc_ref r[N][3];
    rayc_task_opts o = {.num_returns = 3};
    int64_t size = (int64_t)big;
    rayc_arg a = ARG_I64(&size);
    for (int i = 0; i < N; i++) {
        int rc = rayc_submit("multi", &a, 1, &o, r[i]);
        cr_assert_eq(rc, RAYC_OK, "submit %d: %s", i, rayc_last_error());
    }
    for (int i = 0; i < N; i++) {
        rayc_value v;
        int rc = get1(r[i][1], &v, LONG_MS);
        cr_assert_eq(rc, RAYC_OK, "result %d: %s: %s", i, rayc_strerror(rc), rayc_last_error());
        cr_assert_eq(v.size, big);
        const uint8_t *p = v.data;
        for (size_t k = 0; k < big; k += 4093)
            cr_assert_eq(p[k], (uint8_t)((k * 7 + 3) & 0xff), "result %d byte %zu differs", i, k);
        rayc_value_release(&v);
    }
    /* 400 MiB of held results in a 256 MiB store: some of them spilled. */
    Rpc__StoreStatsReply *st = raylet_store();
    cr_assert_gt(st->spilled_objects, 0, "nothing spilled (store %llu of %llu used)",
                 (unsigned long long)st->used, (unsigned long long)st->capacity);
    msg_free(&st->base);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 3; j++)
            rayc_ref_release(r[i][j]);
    cr_assert(harness_wait_until(store_empty, NULL, LONG_MS), "the store still holds %zu bytes",
              store_used());
    stop();
}

/* ------------------------------------------------------------ failures */

Test(tasks, rayc_fail_gives_etask_with_function_and_message)
{
    start(2);
    char *msg = get_err(submit("fail_msg", NULL, 0, NULL), RAYC_ETASK);
    cr_assert(strstr(msg, "fail_msg: boom 7") != NULL, "message: %s", msg);
    free(msg);
    /* A task's name (rayc_task_opts.name) leads its error. */
    rayc_task_opts named = {.name = "nightly-report"};
    msg = get_err(submit("fail_msg", NULL, 0, &named), RAYC_ETASK);
    cr_assert(strstr(msg, "nightly-report (fail_msg): boom 7") != NULL, "message: %s", msg);
    free(msg);
    stop();
}

Test(tasks, nonzero_return_names_the_code)
{
    start(2);
    char *msg = get_err(submit("ret_code", NULL, 0, NULL), RAYC_ETASK);
    cr_assert(strstr(msg, "ret_code") != NULL && strstr(msg, "42") != NULL, "message: %s", msg);
    free(msg);
    stop();
}

Test(tasks, dependent_of_failed_task_fails_unrun)
{
    start(2);
    char f1[HARNESS_PATH], f2[HARNESS_PATH];
    tmp_path(f1, sizeof(f1), "ran1");
    tmp_path(f2, sizeof(f2), "ran2");
    /* Submitted while the failing task may still run (deferred path) ... */
    rayc_ref bad = submit("fail_msg", NULL, 0, NULL);
    rayc_arg a1[] = {RAYC_REF(bad), ARG_STR(f1)};
    rayc_ref dep1 = submit("touch", a1, 2, NULL);
    char *m1 = get_err(dep1, RAYC_ETASK);
    /* ... and after it is known to have failed. */
    rayc_arg a2[] = {RAYC_REF(bad), ARG_STR(f2)};
    rayc_ref dep2 = submit("touch", a2, 2, NULL);
    char *m2 = get_err(dep2, RAYC_ETASK);
    cr_assert(strstr(m1, "fail_msg: boom 7") != NULL, "root cause lost: %s", m1);
    cr_assert(strstr(m2, "fail_msg: boom 7") != NULL, "root cause lost: %s", m2);
    rayc_ref_release(bad);
    /* A later task proves the workers were free to run touch() had it been sent. */
    int64_t x = 0;
    rayc_arg ax = ARG_I64(&x);
    cr_assert_eq(get_i64(submit("inc", &ax, 1, NULL)), 1);
    cr_assert(access(f1, F_OK) != 0, "the dependent task ran");
    cr_assert(access(f2, F_OK) != 0, "the dependent task ran");
    free(m1);
    free(m2);
    stop();
}

/* One crash mode: max_retries=2 -> 3 attempts, then RAYC_EWORKER_DIED with
 * a message saying how the worker ended (how). */
static void crash_mode(const char *mode, const char *how)
{
    char counter[HARNESS_PATH];
    pathf(counter, sizeof(counter), "%s/attempts-%s", harness_dir(), mode);
    rayc_task_opts o = {.max_retries = 2};
    rayc_arg a[] = {ARG_STR(counter), ARG_STR(mode)};
    char *msg = get_err(submit("crash", a, 2, &o), RAYC_EWORKER_DIED);
    cr_assert_eq(harness_lines_with(counter, ""), 3, "%s: want 3 attempts, counted %d (%s)", mode,
                 harness_lines_with(counter, ""), msg);
    cr_assert(strstr(msg, how), "%s: the error does not say '%s': %s", mode, how, msg);
    free(msg);
}

Test(tasks, crashing_task_retried_then_worker_died)
{
    start(2);
    crash_mode("abort", "killed by SIGABRT");
    /* Under ASan the sanitizer catches the SIGSEGV and exits with code 1. */
    crash_mode("segv", getenv("RAYC_TEST_SANITIZER") ? "exited with code 1" : "killed by SIGSEGV");
    crash_mode("exit3", "exited with code 3");
    crash_mode("kill9", "killed by SIGKILL");
    /* Default retries (3): a crash on attempt 1 and success on attempt 2. */
    char counter[HARNESS_PATH];
    tmp_path(counter, sizeof(counter), "attempts-recover");
    int64_t ok_from = 2;
    rayc_arg a[] = {ARG_STR(counter), ARG_STR("abort"), ARG_I64(&ok_from)};
    cr_assert_eq(get_i64(submit("crash", a, 3, NULL)), 2);
    /* max_retries -1: no retry at all. */
    tmp_path(counter, sizeof(counter), "attempts-none");
    rayc_task_opts none = {.max_retries = -1};
    rayc_arg b[] = {ARG_STR(counter), ARG_STR("exit3")};
    free(get_err(submit("crash", b, 2, &none), RAYC_EWORKER_DIED));
    cr_assert_eq(harness_lines_with(counter, ""), 1);
    stop();
}

/* A code "library" that is not one fails rayc_init, naming the path and the
 * loader's message; nothing of the cluster it started stays behind. */
Test(tasks, rayc_init_refuses_a_file_that_is_not_a_library)
{
    cluster_env();
    char fake[HARNESS_PATH];
    pathf(fake, sizeof(fake), "%s/notalib.so", harness_dir());
    FILE *f = fopen(fake, "w");
    cr_assert(f != NULL);
    fputs("not an ELF file\n", f);
    fclose(f);
    const char *code[] = {fake, NULL};
    rayc_init_opts o = {
        .address = "local", .code = code, .num_cpus = 1, .object_store_memory = STORE_BYTES};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_EINVAL, "rayc_init with a non-library: %s", rayc_strerror(rc));
    cr_assert(strstr(rayc_last_error(), "notalib.so") &&
                  strstr(rayc_last_error(), "cannot be loaded"),
              "message: %s", rayc_last_error());
    const char *missing[] = {"no/such/lib.so", NULL};
    o.code = missing;
    rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_ENOTFOUND, "rayc_init with a missing library: %s", rayc_strerror(rc));
    cr_assert(strstr(rayc_last_error(), "no/such/lib.so"), "message: %s", rayc_last_error());
}

/* No head-of-line blocking: on a 2-CPU node, one long task then ten short
 * ones. Pipelining may queue short ones behind the long one; the raylet
 * takes them back when the other CPU is free, so all ten end while the long
 * one still runs (an order, not a duration: the long one takes 15 s, the
 * ten take about 2 s of one CPU). */
Test(tasks, short_tasks_are_not_stuck_behind_a_long_one)
{
    start(2);
    int64_t long_ms = 15000, short_ms = 200;
    rayc_arg la[] = {ARG_STR(""), ARG_I64(&long_ms)};
    rayc_ref slow = submit("nap", la, 2, NULL);
    rayc_ref quick[10];
    rayc_arg sa[] = {ARG_STR(""), ARG_I64(&short_ms)};
    for (int i = 0; i < 10; i++)
        quick[i] = submit("nap", sa, 2, NULL);
    rayc_value v[10];
    int rc = rayc_get(quick, 10, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "the short tasks: %s", rayc_last_error());
    for (int i = 0; i < 10; i++) {
        rayc_value_release(&v[i]);
        rayc_ref_release(quick[i]);
    }
    int ready = 0;
    cr_assert_eq(rayc_wait(&slow, 1, 1, 0, &ready), 0,
                 "the long task ended before the short ones: they waited behind it");
    cr_assert_eq(rayc_cancel(slow, 1), RAYC_OK);
    rayc_value lv;
    rayc_get(&slow, 1, &lv, LONG_MS);
    rayc_value_release(&lv);
    rayc_ref_release(slow);
    stop();
}

Test(tasks, retry_exceptions_retries_rayc_fail)
{
    start(2);
    char c1[HARNESS_PATH], c2[HARNESS_PATH];
    tmp_path(c1, sizeof(c1), "flaky-retried");
    tmp_path(c2, sizeof(c2), "flaky-plain");
    int64_t three = 3;
    rayc_task_opts o = {.retry_exceptions = 1, .max_retries = 3};
    rayc_arg a[] = {ARG_STR(c1), ARG_I64(&three)};
    cr_assert_eq(get_i64(submit("flaky", a, 2, &o)), 3);
    cr_assert_eq(harness_lines_with(c1, ""), 3);
    /* Without retry_exceptions an application error is final. */
    rayc_arg b[] = {ARG_STR(c2), ARG_I64(&three)};
    char *msg = get_err(submit("flaky", b, 2, NULL), RAYC_ETASK);
    cr_assert(strstr(msg, "flaky attempt 1") != NULL, "message: %s", msg);
    cr_assert_eq(harness_lines_with(c2, ""), 1);
    free(msg);
    stop();
}

Test(tasks, cancel_queued_task)
{
    start(1);
    char busy[HARNESS_PATH], queued[HARNESS_PATH];
    tmp_path(busy, sizeof(busy), "busy");
    tmp_path(queued, sizeof(queued), "queued");
    int64_t long_ms = 3000, short_ms = 1;
    rayc_arg a[] = {ARG_STR(busy), ARG_I64(&long_ms)};
    rayc_ref blocker = submit("nap", a, 2, NULL);
    harness_lines started = {busy, "", 1};
    cr_assert(harness_wait_until(harness_has_lines, &started, 60000),
              "the first task never started");
    rayc_arg b[] = {ARG_STR(queued), ARG_I64(&short_ms)};
    rayc_ref q = submit("nap", b, 2, NULL);
    cr_assert_eq(rayc_cancel(q, 0), RAYC_OK, "cancel: %s", rayc_last_error());
    free(get_err(q, RAYC_ECANCELLED));
    cr_assert_eq(get_i64(blocker), long_ms);
    cr_assert_eq(harness_lines_with(queued, ""), 0, "the cancelled task ran");
    stop();
}

/* Two tasks that can only finish together (a rendezvous) finish on a
 * 2-CPU node: both CPUs run tasks at once. */
static void two_run_together(const char *name)
{
    char meet[HARNESS_PATH];
    tmp_path(meet, sizeof(meet), name);
    int64_t two = 2, limit = 60000;
    rayc_arg m[] = {ARG_STR(meet), ARG_I64(&two), ARG_I64(&limit)};
    rayc_ref both[2] = {submit("rendezvous", m, 3, NULL), submit("rendezvous", m, 3, NULL)};
    rayc_value v[2];
    int rc = rayc_get(both, 2, v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "two tasks on two CPUs did not run at once: %s (%s / %s)",
                 rayc_last_error(), v[0].error ? v[0].error : "", v[1].error ? v[1].error : "");
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    rayc_ref_release(both[0]);
    rayc_ref_release(both[1]);
}

Test(tasks, two_tasks_run_at_once_on_two_cpus)
{
    start(2);
    two_run_together("rendezvous");
    stop();
}

/* When a CPU is free but no idle worker exists (here: the pool lost a worker
 * to a force-cancel), a ready task waits for a new worker, not in the
 * pipeline of a worker running another task (once a known bug of
 * raylet/lease.c schedule_class). */
Test(tasks, free_cpu_used_after_a_worker_dies)
{
    start(2);
    char counter[HARNESS_PATH];
    tmp_path(counter, sizeof(counter), "napping");
    int64_t ms = 600000;
    rayc_arg a[] = {ARG_STR(counter), ARG_I64(&ms)};
    rayc_ref r = submit("nap", a, 2, NULL);
    harness_lines started = {counter, "", 1};
    cr_assert(harness_wait_until(harness_has_lines, &started, 60000), "the task never started");
    cr_assert_eq(rayc_cancel(r, 1), RAYC_OK, "cancel: %s", rayc_last_error());
    free(get_err(r, RAYC_ECANCELLED));
    two_run_together("rendezvous");
    stop();
}

Test(tasks, force_cancel_running_task_not_retried)
{
    start(2);
    char counter[HARNESS_PATH];
    tmp_path(counter, sizeof(counter), "napping");
    int64_t ms = 600000;
    rayc_task_opts o = {.max_retries = 3};
    rayc_arg a[] = {ARG_STR(counter), ARG_I64(&ms)};
    rayc_ref r = submit("nap", a, 2, &o);
    harness_lines started = {counter, "", 1};
    cr_assert(harness_wait_until(harness_has_lines, &started, 60000), "the task never started");
    cr_assert_eq(rayc_cancel(r, 1), RAYC_OK, "cancel: %s", rayc_last_error());
    rayc_value v;
    cr_assert_eq(get1(r, &v, LONG_MS), RAYC_ECANCELLED, "%s", rayc_last_error());
    rayc_value_release(&v);
    /* Round trips after it: a retry would have been submitted by now. */
    for (int i = 0; i < 3; i++) {
        int64_t x = i;
        rayc_arg ax = ARG_I64(&x);
        cr_assert_eq(get_i64(submit("inc", &ax, 1, NULL)), i + 1);
    }
    /* The owner's answer is final: the ref did not become pending again
     * (a retry would make it so). */
    free(get_err(r, RAYC_ECANCELLED));
    stop();
    /* Every process of the cluster is gone: any attempt that started left
     * its line. */
    cr_assert_eq(harness_lines_with(counter, ""), 1, "the force-cancelled task was retried");
}

/* ------------------------------------------------------------ nested */

Test(tasks, nested_fib_12_on_two_cpus)
{
    start(2);
    int64_t n = 12;
    rayc_arg a = ARG_I64(&n);
    rayc_ref r = submit("fib", &a, 1, NULL);
    rayc_value v;
    int rc = get1(r, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "fib(12): %s: %s (%s)", rayc_strerror(rc), rayc_last_error(),
                 v.error ? v.error : "");
    int64_t got;
    memcpy(&got, v.data, sizeof(got));
    cr_assert_eq(got, 144);
    rayc_value_release(&v);
    rayc_ref_release(r);
    stop();
}

/* ------------------------------------------------------------ embedded */

Test(tasks, embedded_cluster_from_null_opts)
{
    cluster_env();
    int rc = rayc_init(NULL);
    cr_assert_eq(rc, RAYC_OK, "rayc_init(NULL): %s", rayc_last_error());
    g_up = true;
    cr_assert(find_root(getpid(), g_root, sizeof(g_root)), "rayc_init(NULL) started no cluster");
    rayc_node_info n[4];
    size_t count = 0;
    cr_assert_eq(rayc_nodes(n, 4, &count), RAYC_OK, "rayc_nodes: %s", rayc_last_error());
    cr_assert_eq(count, 1);
    cr_assert(n[0].alive);
    cr_assert_str_eq(n[0].node_id, rayc_node_id());
    stop(); /* asserts the dir and every process are gone */
}

static bool pid_gone(void *arg)
{
    return kill(*(pid_t *)arg, 0) != 0;
}

Test(tasks, killed_driver_leaves_nothing)
{
    cluster_env();
    char ready[HARNESS_PATH], napf[HARNESS_PATH];
    tmp_path(ready, sizeof(ready), "driver.ready");
    tmp_path(napf, sizeof(napf), "driver.nap");
    const char *lib = testlib();
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        const char *code[] = {lib, NULL};
        rayc_init_opts o = {
            .address = "local", .code = code, .num_cpus = 2, .object_store_memory = STORE_BYTES};
        if (rayc_init(&o) != RAYC_OK)
            _exit(2);
        int64_t ms = 600000;
        rayc_arg a[] = {ARG_STR(napf), ARG_I64(&ms)};
        rayc_ref r, big;
        if (rayc_submit("nap", a, 2, NULL, &r) != RAYC_OK)
            _exit(3);
        static char blob[1 << 20];
        if (rayc_put(blob, sizeof(blob), &big) != RAYC_OK)
            _exit(4);
        write_file(ready, "1", 1, 0600);
        for (;;)
            pause();
    }
    harness_lines started = {napf, "", 1};
    bool ok = harness_wait_until(harness_has_lines, &started, 90000);
    char root[HARNESS_PATH] = "";
    bool have_root = find_root(child, root, sizeof(root));
    kill(child, SIGKILL);
    int st;
    waitpid(child, &st, 0);
    cr_assert(ok, "the child driver never got its task running (exit %d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert(have_root, "no embedded cluster of the child found");
    cr_assert(harness_wait_until(root_gone, root, 30000), "%s remains after kill -9 of the driver",
              root);
    char who[2048];
    cr_assert(harness_wait_until(no_survivors, root, 30000), "survivors: %s",
              (harness_survivors(who, sizeof(who)), who));
    (void)pid_gone;
}

/* ------------------------------------------------------------ stress */

/* A field of /proc/<pid>/status (kB) of the daemon in <session>/<name>.pid. */
static long status_kb(const char *session, const char *name, const char *field)
{
    char path[HARNESS_PATH + 64];
    snprintf(path, sizeof(path), "%s/%s.pid", session, name);
    char *s = read_file(path, NULL);
    cr_assert(s != NULL, "no %s", path);
    int pid = atoi(s);
    free(s);
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    s = read_file(path, NULL);
    cr_assert(s != NULL, "%s (pid %d) is gone", name, pid);
    char *p = strstr(s, field);
    cr_assert(p != NULL, "no %s in %s", field, path);
    long kb = strtol(p + strlen(field), NULL, 10);
    free(s);
    return kb;
}

/* worker/core.h: tasks pushed to leased workers, fell back to the raylet,
 * leases asked for, granted, connected over a Unix socket. */
void core__direct_counts(uint64_t out[5]);

/* A field of this process's /proc/self/status (kB). */
static long self_kb(const char *field)
{
    char *s = read_file("/proc/self/status", NULL);
    cr_assert(s != NULL);
    char *p = strstr(s, field);
    cr_assert(p != NULL, "no %s in /proc/self/status", field);
    long kb = strtol(p + strlen(field), NULL, 10);
    free(s);
    return kb;
}

#ifndef STRESS_WAVES
#define STRESS_WAVES 20
#endif
#define WAVE 10000

/* The peak over the first quarter of the waves (from wave 1), then the
 * last wave's: a per-task leak shows as growth over the remaining three
 * quarters of the tasks. */
typedef struct {
    long early, last;
} mem_track;

static void mem_take(mem_track *m, long kb, int wave, int waves)
{
    if (wave >= 1 && wave < (waves + 3) / 4 && kb > m->early)
        m->early = kb;
    m->last = kb;
}

/* Grew by more than 10% (and slack kB) from the early peak? */
static bool mem_grew(const mem_track *m, long slack)
{
    long s = m->early / 10 > slack ? m->early / 10 : slack;
    return m->last > m->early + s;
}

/* 200,000 no-op tasks in waves of 10,000, each wave got and released, on the
 * raylet's path (direct = false: every task queued, dispatched and ended by
 * the raylet) or the direct path (the owner pushes them to leased workers).
 * Checked: the GCS (which takes every task's events) and the driver stay
 * flat on both; the raylet on its path. On the direct path the raylet's
 * share varies (a demand without a lease for 200 ms goes to it for 1 s, and
 * its heap then grows to the deepest queue it has held), so its memory says
 * nothing there. */
static void stress_waves(bool direct)
{
    harness_slow_test();
    /* Task events every 50 ms, so the GCS takes them through every wave: on
     * the direct path the 20 waves take about 2 s, and with the default 1 s
     * the early waves would end before the GCS's task table got anything
     * (it then fills to its per-job bound, 10,000 = one wave, and stays). */
    setenv("RAYC_TASK_EVENTS_REPORT_MS", "50", 1);
    if (!direct)
        setenv("RAYC_DIRECT_TASK_PATH", "0", 1);
    start(2);
    unsetenv("RAYC_TASK_EVENTS_REPORT_MS");
    unsetenv("RAYC_DIRECT_TASK_PATH");
    char session[HARNESS_PATH];
    pathf(session, sizeof(session), "%s/session_latest", g_root);
    static rayc_ref refs[WAVE];
    static rayc_value vals[WAVE];
    mem_track raylet = {0}, anon = {0}, gcs = {0}, driver = {0};
    uint64_t t0 = now_ms();
    /* The direct path runs three times the waves in less time than the
     * raylet's path runs its 20: the driver's heap (glibc arenas of the
     * lease reader threads) moves by a few MiB from run to run, and more
     * tasks make a small per-task leak stand out over that. */
    int waves = direct ? 3 * STRESS_WAVES : STRESS_WAVES;
    const char *w = getenv("RAYC_STRESS_WAVES");
    if (w && atoi(w) >= 3)
        waves = atoi(w);
    for (int wave = 0; wave < waves; wave++) {
        for (int i = 0; i < WAVE; i++) {
            int64_t x = (int64_t)wave * WAVE + i;
            rayc_arg a = ARG_I64(&x);
            refs[i] = submit("inc", &a, 1, NULL);
        }
        int rc = rayc_get(refs, WAVE, vals, 300000);
        cr_assert_eq(rc, RAYC_OK, "wave %d: %s: %s", wave, rayc_strerror(rc), rayc_last_error());
        for (int i = 0; i < WAVE; i++) {
            int64_t got;
            cr_assert_eq(vals[i].size, sizeof(got));
            memcpy(&got, vals[i].data, sizeof(got));
            cr_assert_eq(got, (int64_t)wave * WAVE + i + 1, "wave %d task %d", wave, i);
            rayc_value_release(&vals[i]);
            rayc_ref_release(refs[i]);
        }
        if (wave == 0)
            usleep(300 * 1000); /* a few flushes: the GCS's table is full */
        /* Resident memory without the shared store arena (RssShmem): the
         * store is pre-faulted in the background, so its pages keep arriving
         * during the test and say nothing about a per-task leak. */
        mem_take(&raylet,
                 status_kb(session, "raylet", "VmRSS:") - status_kb(session, "raylet", "RssShmem:"),
                 wave, waves);
        mem_take(&anon, status_kb(session, "raylet", "RssAnon:"), wave, waves);
        mem_take(&gcs, status_kb(session, "gcs_server", "VmRSS:"), wave, waves);
        mem_take(&driver, self_kb("RssAnon:"), wave, waves);
    }
    uint64_t c[5];
    core__direct_counts(c);
    fprintf(stderr,
            "stress (%s path): %d tasks in %.1f s (%" PRIu64 " pushed to leased workers, %" PRIu64
            " fell back to the raylet; %" PRIu64 " of %" PRIu64 " leases granted); resident "
            "memory early peak / last: raylet %ld / %ld kB without the store (RssAnon %ld / "
            "%ld), gcs %ld / %ld kB, driver RssAnon %ld / %ld kB\n",
            direct ? "direct" : "raylet", waves * WAVE, (double)(now_ms() - t0) / 1000.0, c[0],
            c[1], c[3], c[2], raylet.early, raylet.last, anon.early, anon.last, gcs.early, gcs.last,
            driver.early, driver.last);
    if (getenv("RAYC_TEST_SANITIZER")) {
        /* ASan's allocator keeps freed memory in caches and quarantine, so
         * resident size says nothing about leaks there (LeakSanitizer does);
         * flatness is checked in the normal build. */
        fprintf(stderr, "stress: memory flatness not checked under sanitizers\n");
        stop();
        return;
    }
    if (!direct) {
        cr_assert(!mem_grew(&raylet, 0), "raylet grew from %ld kB (early waves) to %ld kB",
                  raylet.early, raylet.last);
        /* Its own heap (RssAnon) must stay flat too (at least 2 MiB of slack). */
        cr_assert(!mem_grew(&anon, 2048), "raylet heap grew from %ld kB (early waves) to %ld kB",
                  anon.early, anon.last);
    }
    cr_assert(!mem_grew(&gcs, 0), "GCS grew from %ld kB (early waves) to %ld kB", gcs.early,
              gcs.last);
    cr_assert(!mem_grew(&driver, 4096),
              "the driver's heap grew from %ld kB (early waves) to %ld kB", driver.early,
              driver.last);
    stop();
}

Test(tasks, slow_stress_200k_noop_tasks_memory_flat_raylet_path, .timeout = 900)
{
    stress_waves(false);
}

Test(tasks, slow_stress_200k_noop_tasks_memory_flat_direct_path, .timeout = 900)
{
    stress_waves(true);
}
