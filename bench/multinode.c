/*
 * multinode.c -- multi-node benchmarks of rayc: a 3-node cluster on this
 * machine, driven through the public API (rayc.h, -lrayc).
 *
 *   build/bench/multinode [--trials=3] [--failure-trials=1] [--only=SUBSTRING]
 *                         [--health-timeout-ms=default[,MS...]] [--store=3G] [--list]
 *
 * The binary starts its own cluster with scripts/rayc (found as
 * <this binary's dir>/../../scripts/rayc, daemons in <dir>/../bin): a head and
 * two more raylets, each with its own --temp-dir under a private mkdtemp root,
 * 2 CPUs and a 3 GiB store each, the GCS on a free port. Every `rayc` call runs
 * with RAYC_TEMP_DIR=<that root>, so `rayc stop` only ever stops this cluster.
 * It attaches as a driver to the head's raylet (rayc_init with
 * address 127.0.0.1:<port> and RAYC_TOKEN_FILE), waits until every node runs
 * a pinned task and (when a case uses the stores) until every raylet has
 * pre-faulted its store (an low-priority (nice 19) background thread that otherwise
 * competes with the measurements), and runs:
 *
 *   cross_node_transfer_1GiB, _100MiB   GB/s (10^9 bytes) of one rayc_get on the
 *       head of an object that a task pinned to node 1 (RAYC_SCHED_NODE) made
 *       with mnlib's make_pattern: directory lookup + pull + seal. A fresh
 *       object each trial, after one untimed warm-up transfer; every copy is
 *       checked against the pattern after the clock stops.
 *   multi_node_tasks_spread             tasks/s: 10,000 mnlib `where` tasks
 *       (each returns its node's id) with RAYC_SCHED_SPREAD, all submitted,
 *       then all got in one rayc_get; also how many ran on each node.
 *   node_failure_recovery               seconds: 60 testlib `nap` tasks of
 *       200 ms (mnlib has no sleeping task) SPREAD over the nodes; once the
 *       first results are in, the last non-head raylet is killed with SIGKILL.
 *       Reported: kill -> every result in (node_failure_recovery), kill ->
 *       the GCS lists the node DEAD (..._marked_dead, rayc_nodes polled every
 *       20 ms), and the same batch without a kill (..._no_kill).
 *
 * The health timeout is the daemons' default (10 s) unless
 * --health-timeout-ms names others: the first entry is used for the first
 * cluster (all cases), every further entry starts a fresh cluster, with
 * RAYC_HEALTH_TIMEOUT_MS=<ms> in the environment of every daemon, that runs
 * only the failure case.
 *
 * Each line reads `<name> <mean> +- <stddev> <unit> (n=<trials>)`, the stddev
 * over the trials (population, as Ray's timeit). If the cluster cannot be
 * started (no binaries, no Redis, too little memory, ...) the binary prints
 * `skipped: <reason>` and exits 0. It always stops the cluster: on success,
 * on a failure, and on SIGINT/SIGTERM/SIGHUP; a guardian process (forked
 * before anything starts) also stops it if this process dies any other way.
 * Exit status is non-zero only when a case failed.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_cluster.h"
#include "rayc.h"

/* The pattern mnlib's make_pattern writes. */
#include "../tests/integration/pattern.h"

extern char **environ;

#define GIB               ((size_t)1 << 30)
#define MIB               ((size_t)1 << 20)
#define MAX_TRIALS        50
#define MAX_NODES         16
#define MAX_CLUSTERS      4
#define NODE_CPUS         2
#define SPREAD_TASKS      10000
#define SPREAD_WARMUP     600
#define NAP_TASKS         60
#define NAP_MS            200
#define POLL_MS           20
#define CALL_TIMEOUT_MS   120000 /* no call may hang forever */
#define START_TIMEOUT_S   120    /* one `rayc start` */
#define STOP_TIMEOUT_S    60     /* one `rayc stop` */
#define DEFAULT_HEALTH_MS 10000  /* common/config.h: health_timeout_ms */

/* ------------------------------------------------------------------ state */

typedef struct {
    char name[96];
    const char *unit;
    char status; /* 'o' ok, 's' skipped, 'f' failed */
    char msg[1024];
    int n;
    double v[MAX_TRIALS];
    double mean, sd;
    char note[768];
} result;

typedef struct {
    char dir[PATH_MAX];     /* its --temp-dir */
    char session[PATH_MAX]; /* <dir>/session_latest, resolved */
    char id[80];            /* hex node id (session/raylet.ready) */
    pid_t raylet;           /* session/raylet.pid */
    int killed;
} node_t;

typedef struct {
    int index;     /* names its node dirs c<index>-... */
    int health_ms; /* 0: the daemons' default */
    int port;
    char address[64];
    char token[PATH_MAX + 32];
    node_t nodes[MAX_NODES]; /* [0] is the head */
    int nnodes;
    int inited; /* rayc_init done */
} cluster_t;

static struct {
    int trials, failure_trials;
    const char *only;
    size_t store;
    int health[MAX_CLUSTERS]; /* 0: default */
    int nhealth;
    char exe_dir[PATH_MAX];
    char mnlib[PATH_MAX + 64];
    char testlib[PATH_MAX + 64];
    int have_testlib;
    char err[1024];
    int failed;
} B = {.trials = 3, .failure_trials = 1, .store = 3 * GIB};

/* Record why a rayc call failed (call, code, detail) and pass rc on. */
static int fail(int rc, const char *call)
{
    snprintf(B.err, sizeof(B.err), "%s: %s (%s)", call, rayc_strerror(rc), rayc_last_error());
    return rc;
}

static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(B.err, sizeof(B.err), fmt, ap);
    va_end(ap);
    return -1;
}

static void set_status(result *r, char status, const char *msg)
{
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

static void finish(result *r)
{
    double s = 0, ss = 0;
    for (int i = 0; i < r->n; i++)
        s += r->v[i];
    r->mean = r->n ? s / r->n : 0;
    for (int i = 0; i < r->n; i++)
        ss += (r->v[i] - r->mean) * (r->v[i] - r->mean);
    r->sd = r->n ? sqrt(ss / r->n) : 0;
    r->status = 'o';
}

static void print_result(const result *r)
{
    if (r->status == 's')
        printf("%s skipped: %s\n", r->name, r->msg);
    else if (r->status == 'f')
        printf("%s failed: %s\n", r->name, r->msg);
    else
        printf("%s %.2f +- %.2f %s (n=%d)\n", r->name, r->mean, r->sd, r->unit, r->n);
    if (r->note[0])
        printf("    %s\n", r->note);
    fflush(stdout);
    if (r->status == 'f')
        B.failed = 1;
}

static unsigned long long mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024ULL;
}

/* --------------------------------------------------------- child processes */

/* Environment for `rayc`: ours without the RAYC_ variables this benchmark
 * sets itself, plus those. */
static char **rayc_env(const cluster_t *c)
{
    static const char *drop[] = {"RAYC_TEMP_DIR=",
                                 "RAYC_BIN_DIR=",
                                 "RAYC_ADDRESS=",
                                 "RAYC_HEALTH_TIMEOUT_MS=",
                                 "RAYC_TOKEN=",
                                 "RAYC_TOKEN_FILE=",
                                 NULL};
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 4, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (const char **d = drop; *d && !skip; d++)
            skip = strncmp(environ[i], *d, strlen(*d)) == 0;
        if (!skip)
            env[k++] = environ[i];
    }
    static char tmp[PATH_MAX + 32], bin[PATH_MAX + 64], health[64];
    snprintf(tmp, sizeof(tmp), "RAYC_TEMP_DIR=%s", bc.root);
    snprintf(bin, sizeof(bin), "RAYC_BIN_DIR=%s", bc.bin_dir);
    env[k++] = tmp;
    env[k++] = bin;
    if (c && c->health_ms > 0) {
        snprintf(health, sizeof(health), "RAYC_HEALTH_TIMEOUT_MS=%d", c->health_ms);
        env[k++] = health;
    }
    env[k] = NULL;
    return env;
}

/* Run argv (via PATH) with env, stdin /dev/null, stdout and stderr into out
 * (the tail is kept). Returns the exit status, or -1 (out says why). */
static int run_cmd(char *const argv[], char *const env[], char *out, size_t outlen, int timeout_s)
{
    out[0] = '\0';
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(out, outlen, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawnattr_init(&at);
    sigset_t def, none;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGHUP);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setpgroup(&at, 0); /* Ctrl-C is ours to handle, not its */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        snprintf(out, outlen, "cannot run %s: %s", argv[0], strerror(rc));
        return -1;
    }
    size_t used = 0;
    double deadline = now_s() + timeout_s;
    int timed_out = 0;
    for (;;) {
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            break;
        }
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int pr = poll(&pf, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char buf[4096];
        ssize_t got = read(p[0], buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (used + (size_t)got >= outlen) { /* keep the tail */
            size_t keep = outlen / 2 > (size_t)got ? outlen / 2 : 0;
            if (keep > used)
                keep = used;
            memmove(out, out + used - keep, keep);
            used = keep;
            if ((size_t)got >= outlen - used)
                got = (ssize_t)(outlen - used - 1);
        }
        memcpy(out + used, buf, (size_t)got);
        used += (size_t)got;
        out[used] = '\0';
    }
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        snprintf(out + used, outlen - used, "\n%s: no answer within %d s; killed it", argv[0],
                 timeout_s);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The last non-empty line of s. */
static const char *last_line(char *s)
{
    size_t l = strlen(s);
    while (l > 0 && isspace((unsigned char)s[l - 1]))
        s[--l] = '\0';
    char *nl = strrchr(s, '\n');
    return nl ? nl + 1 : s;
}

/* `rayc ARGS...` (NULL-terminated) for cluster c. */
static int rayc_cli(const cluster_t *c, char *out, size_t outlen, int timeout_s, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = "bash";
    argv[n++] = bc.script;
    va_list ap;
    va_start(ap, timeout_s);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char **env = rayc_env(c);
    if (env == NULL) {
        snprintf(out, outlen, "out of memory");
        return -1;
    }
    int rc = run_cmd(argv, env, out, outlen, timeout_s);
    free(env);
    return rc;
}

/* ------------------------------------------------------------- cleanup */

/* ------------------------------------------------------------- cluster */

/* Read a started node's session: its id and raylet pid. */
static int node_session(node_t *n)
{
    char why[PATH_MAX + 128];
    if (bc_node_session(n->dir, n->session, sizeof(n->session), n->id, sizeof(n->id), &n->raylet,
                        why, sizeof(why)) != 0)
        return failf("%s", why);
    return 0;
}

/* Start one node (the head when c has none yet). 0, or -1 with B.err set. */
static int start_node(cluster_t *c)
{
    if (c->nnodes >= MAX_NODES)
        return failf("too many nodes");
    node_t *n = &c->nodes[c->nnodes];
    memset(n, 0, sizeof(*n));
    int head = c->nnodes == 0;
    if (head)
        snprintf(n->dir, sizeof(n->dir), "%s/c%d-head", bc.root, c->index);
    else
        snprintf(n->dir, sizeof(n->dir), "%s/c%d-n%d", bc.root, c->index, c->nnodes);
    if (mkdir(n->dir, 0700) != 0)
        return failf("mkdir %s: %s", n->dir, strerror(errno));
    char tdir[PATH_MAX + 32], cpus[32], store[64], port[32], addr[96], tok[PATH_MAX + 64];
    char out[16384];
    snprintf(tdir, sizeof(tdir), "--temp-dir=%s", n->dir);
    snprintf(cpus, sizeof(cpus), "--num-cpus=%d", NODE_CPUS);
    snprintf(store, sizeof(store), "--object-store-memory=%zu", B.store);
    int rc;
    if (head) {
        for (int attempt = 0;; attempt++) {
            c->port = bc_free_port();
            if (c->port <= 0)
                return failf("cannot find a free TCP port on 127.0.0.1");
            snprintf(port, sizeof(port), "--port=%d", c->port);
            rc = rayc_cli(c, out, sizeof(out), START_TIMEOUT_S, "start", "--head", tdir, port, cpus,
                          store, NULL);
            /* Another process may take the port between our probe and the GCS. */
            if (rc == 0 || attempt >= 2 || !strstr(out, "in use"))
                break;
        }
        snprintf(c->address, sizeof(c->address), "127.0.0.1:%d", c->port);
    } else {
        snprintf(addr, sizeof(addr), "--address=%s", c->address);
        snprintf(tok, sizeof(tok), "--token-file=%s", c->token);
        rc = rayc_cli(c, out, sizeof(out), START_TIMEOUT_S, "start", addr, tdir, tok, cpus, store,
                      NULL);
    }
    if (rc != 0)
        return failf("rayc start%s: %s", head ? " --head" : "", last_line(out));
    if (node_session(n) != 0)
        return -1;
    if (head)
        snprintf(c->token, sizeof(c->token), "%s/token", n->session);
    c->nnodes++;
    return 0;
}

static node_t *find_node(cluster_t *c, const void *id, size_t len)
{
    for (int i = 0; i < c->nnodes; i++)
        if (strlen(c->nodes[i].id) == len && memcmp(c->nodes[i].id, id, len) == 0)
            return &c->nodes[i];
    return NULL;
}

/* The GCS's view of a node: 1 alive, 0 dead, -1 not listed, or a rayc code. */
static int node_alive(const char *id)
{
    rayc_node_info nodes[MAX_NODES * MAX_CLUSTERS];
    size_t count = 0;
    int rc = rayc_nodes(nodes, MAX_NODES * MAX_CLUSTERS, &count);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < count && i < MAX_NODES * MAX_CLUSTERS; i++)
        if (strcmp(nodes[i].node_id, id) == 0)
            return nodes[i].alive ? 1 : 0;
    return -1;
}

/* Wait until the GCS lists node n alive, then run `where` pinned to it: that
 * returns once the head's raylet knows the node and a worker runs there. */
static int node_alive_wait(node_t *n)
{
    double deadline = now_s() + 30;
    int a;
    while ((a = node_alive(n->id)) != 1) {
        if (a < -1)
            return fail(a, "rayc_nodes");
        if (now_s() > deadline)
            return failf("node %s is not ALIVE in the GCS 30 s after it started", n->id);
        sleep_ms(50);
    }
    return 0;
}

static int node_ready(node_t *n)
{
    if (node_alive_wait(n) != 0)
        return -1;
    rayc_task_opts o = {.strategy = RAYC_SCHED_NODE, .node_id = n->id};
    rayc_ref ref;
    int rc = rayc_submit("where", NULL, 0, &o, &ref);
    if (rc != 0)
        return fail(rc, "rayc_submit(where, pinned)");
    rayc_value v;
    rc = rayc_get(&ref, 1, &v, CALL_TIMEOUT_MS);
    rayc_ref_release(ref);
    if (rc != 0)
        return fail(rc, "rayc_get(where, pinned)");
    int same = v.size == strlen(n->id) && memcmp(v.data, n->id, v.size) == 0;
    rayc_value_release(&v);
    return same ? 0 : failf("a task pinned to %s ran elsewhere", n->id);
}

/* Start head + 2 raylets and attach the driver. 0, or -1 with B.err set. */
static int cluster_up(cluster_t *c, int wait_prefault)
{
    double t0 = now_s();
    for (int i = 0; i < 3; i++)
        if (start_node(c) != 0)
            return -1;
    double t1 = now_s();
    /* The driver attaches to the head's raylet: it prefers the raylet of the
     * session RAYC_TEMP_DIR names. */
    setenv("RAYC_TEMP_DIR", c->nodes[0].dir, 1);
    setenv("RAYC_TOKEN_FILE", c->token, 1);
    const char *code[] = {B.mnlib, B.have_testlib ? B.testlib : NULL, NULL};
    rayc_init_opts o = {.address = c->address, .code = code};
    int rc = rayc_init(&o);
    if (rc != 0)
        return fail(rc, "rayc_init");
    c->inited = 1;
    if (strcmp(rayc_node_id(), c->nodes[0].id) != 0)
        return failf("the driver attached to node %s, not to the head %s", rayc_node_id(),
                     c->nodes[0].id);
    for (int i = 0; i < c->nnodes; i++)
        if (node_alive_wait(&c->nodes[i]) != 0)
            return -1;
    /* Raylets learn of new nodes from heartbeat replies (1 s apart); a task
     * pinned to a node the head's raylet has not heard of yet draws an
     * "infeasible" warning (though it waits), so give them one round. */
    sleep_ms(1200);
    for (int i = 0; i < c->nnodes; i++)
        if (node_ready(&c->nodes[i]) != 0)
            return -1;
    printf("cluster %d: GCS %s, 3 nodes on this machine, %d CPUs and a %.2f GiB store each, "
           "health timeout %d ms%s\n",
           c->index, c->address, NODE_CPUS, (double)B.store / (double)GIB,
           c->health_ms ? c->health_ms : DEFAULT_HEALTH_MS,
           c->health_ms ? " (RAYC_HEALTH_TIMEOUT_MS for every daemon)" : " (the default)");
    for (int i = 0; i < c->nnodes; i++)
        printf("  node %d%s: %.16s...\n", i, i ? "" : " (head; the driver's node)", c->nodes[i].id);
    double t2 = now_s();
    long pf[MAX_NODES];
    printf("  started in %.1f s, ready for tasks after %.1f s", t1 - t0, t2 - t0);
    if (wait_prefault) {
        for (int i = 0; i < c->nnodes; i++)
            pf[i] = bench_prefault_ms(c->nodes[i].session, 60, NULL);
        printf(", stores pre-faulted after %.1f s (", now_s() - t0);
        for (int i = 0; i < c->nnodes; i++)
            printf(pf[i] >= 0 ? "%s%ld ms" : "%snot reported", i ? ", " : "", pf[i]);
        printf(")");
    } else {
        printf(" (not waiting for the stores' pre-fault: no case here uses them)");
    }
    printf("\n\n");
    fflush(stdout);
    return 0;
}

static void cluster_down(cluster_t *c)
{
    if (c->inited) {
        int rc = rayc_shutdown();
        if (rc != 0)
            fprintf(stderr, "multinode: rayc_shutdown: %s (%s)\n", rayc_strerror(rc),
                    rayc_last_error());
        c->inited = 0;
    }
    char why[1024];
    if (bc_stop_all(why, sizeof(why)) != 0)
        fprintf(stderr, "multinode: rayc stop: %s\n", why);
}

/* ----------------------------------------------------- case 1: transfer */

static void case_transfer(cluster_t *c, size_t size, result *r)
{
    node_t *b = &c->nodes[1];
    rayc_task_opts o = {.num_returns = 2, .strategy = RAYC_SCHED_NODE, .node_id = b->id};
    double warm = 0;
    for (int t = -1; t < B.trials; t++) {
        uint64_t sz = size, seed = 1000 + (uint64_t)size / MIB + (uint64_t)(t + 1);
        rayc_arg a[] = {RAYC_VAL(&sz, sizeof(sz)), RAYC_VAL(&seed, sizeof(seed))};
        rayc_ref refs[2];
        int rc = rayc_submit("make_pattern", a, 2, &o, refs);
        if (rc != 0) {
            set_status(r, 'f', (fail(rc, "rayc_submit(make_pattern)"), B.err));
            return;
        }
        /* The node id comes back when the task is done and its object sealed on B. */
        rayc_value w, v;
        rc = rayc_get(&refs[1], 1, &w, CALL_TIMEOUT_MS);
        if (rc != 0) {
            fail(rc, "rayc_get(make_pattern's node id)");
            goto bad;
        }
        int on_b = w.size == strlen(b->id) && memcmp(w.data, b->id, w.size) == 0;
        rayc_value_release(&w);
        if (!on_b) {
            failf("make_pattern pinned to node 1 ran elsewhere");
            goto bad;
        }
        double t0 = now_s();
        rc = rayc_get(&refs[0], 1, &v, CALL_TIMEOUT_MS);
        double el = now_s() - t0;
        if (rc != 0) {
            fail(rc, "rayc_get(object on node 1)");
            goto bad;
        }
        long long off = v.size == size ? pattern_check(v.data, size, seed) : -2;
        rayc_value_release(&v);
        if (off != -1) {
            if (off == -2)
                failf("got %zu bytes, want %zu", v.size, size);
            else
                failf("the copy differs from the pattern at byte %lld", off);
            goto bad;
        }
        rayc_ref_release(refs[0]);
        rayc_ref_release(refs[1]);
        double gbs = (double)size / 1e9 / el;
        if (t < 0)
            warm = gbs;
        else
            r->v[r->n++] = gbs;
        continue;
    bad:
        rayc_ref_release(refs[0]);
        rayc_ref_release(refs[1]);
        set_status(r, 'f', B.err);
        return;
    }
    finish(r);
    snprintf(r->note, sizeof(r->note),
             "made on node 1 by make_pattern, got on the head; untimed warm-up transfer: %.2f "
             "GB/s; every copy matched the pattern",
             warm);
}

/* ----------------------------------------------------- case 2: spread */

static void case_spread(cluster_t *c, result *r)
{
    rayc_ref *refs = calloc(SPREAD_TASKS, sizeof(*refs));
    rayc_value *vals = calloc(SPREAD_TASKS, sizeof(*vals));
    if (refs == NULL || vals == NULL) {
        set_status(r, 'f', "out of memory");
        goto out;
    }
    rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
    long per[MAX_NODES] = {0}, other = 0;
    for (int t = -1; t < B.trials; t++) {
        int n = t < 0 ? SPREAD_WARMUP : SPREAD_TASKS, submitted = 0, rc = 0;
        double t0 = now_s();
        for (; submitted < n; submitted++)
            if ((rc = rayc_submit("where", NULL, 0, &o, &refs[submitted])) != 0)
                break;
        if (rc == 0)
            rc = rayc_get(refs, (size_t)n, vals, CALL_TIMEOUT_MS);
        double el = now_s() - t0;
        if (rc != 0) {
            fail(rc, submitted < n ? "rayc_submit(where, SPREAD)" : "rayc_get(10000 refs)");
            for (int i = 0; i < submitted; i++)
                rayc_ref_release(refs[i]);
            set_status(r, 'f', B.err);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            if (t >= 0) {
                node_t *nd = find_node(c, vals[i].data, vals[i].size);
                if (nd)
                    per[nd - c->nodes]++;
                else
                    other++;
            }
            rayc_value_release(&vals[i]);
            rayc_ref_release(refs[i]);
        }
        if (t >= 0)
            r->v[r->n++] = n / el;
    }
    finish(r);
    int l = snprintf(r->note, sizeof(r->note), "%d x %d tasks ran on: ", B.trials, SPREAD_TASKS);
    for (int i = 0; i < c->nnodes && l < (int)sizeof(r->note); i++)
        l += snprintf(r->note + l, sizeof(r->note) - (size_t)l, "%snode %d %ld", i ? ", " : "", i,
                      per[i]);
    if (other && l < (int)sizeof(r->note))
        snprintf(r->note + l, sizeof(r->note) - (size_t)l, ", unknown node %ld", other);
out:
    free(refs);
    free(vals);
}

/* ----------------------------------------------------- case 3: failure */

/* Submit the nap batch. 0, or a rayc code (B.err set). */
static int submit_naps(rayc_ref *refs, int n)
{
    rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
    const char *path = "";
    int64_t ms = NAP_MS;
    rayc_arg a[] = {RAYC_VAL(path, 1), RAYC_VAL(&ms, sizeof(ms))};
    for (int i = 0; i < n; i++) {
        int rc = rayc_submit("nap", a, 2, &o, &refs[i]);
        if (rc != 0) {
            fail(rc, "rayc_submit(nap, SPREAD)");
            for (int j = 0; j < i; j++)
                rayc_ref_release(refs[j]);
            return rc;
        }
    }
    return 0;
}

/* Get and release the batch; counts values that are errors (first one in B.err). */
static int collect_naps(rayc_ref *refs, int n, int *errors)
{
    rayc_value v[NAP_TASKS];
    int rc = rayc_get(refs, (size_t)n, v, CALL_TIMEOUT_MS);
    *errors = 0;
    if (rc == RAYC_ETIMEDOUT) {
        fail(rc, "rayc_get(nap results)");
        for (int i = 0; i < n; i++)
            rayc_ref_release(refs[i]);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        if (v[i].status != RAYC_OK && (*errors)++ == 0)
            failf("task %d: %s (%s)", i, rayc_strerror(v[i].status), v[i].error ? v[i].error : "");
        rayc_value_release(&v[i]);
        rayc_ref_release(refs[i]);
    }
    return 0;
}

/* Workers the killed raylet left behind (they name its session): how many
 * were still there `grace_ms` after the kill; they are killed then. */
static int orphans(const node_t *n, int grace_ms)
{
    sleep_ms(grace_ms);
    int left = bc_sweep(n->session, 0);
    if (left)
        bc_sweep(n->session, SIGKILL);
    return left;
}

static void case_failure(cluster_t *c, result *rec, result *dead, result *base)
{
    rayc_ref refs[NAP_TASKS];
    int health = c->health_ms ? c->health_ms : DEFAULT_HEALTH_MS;
    char notes[MAX_TRIALS][160];
    for (int t = 0; t < B.failure_trials; t++) {
        /* The victim: the newest non-head node; a killed one is replaced first. */
        node_t *v = &c->nodes[c->nnodes - 1];
        if (v->killed) {
            if (start_node(c) != 0 || node_alive_wait(&c->nodes[c->nnodes - 1]) != 0)
                goto failed;
            sleep_ms(1200);
            if (node_ready(&c->nodes[c->nnodes - 1]) != 0)
                goto failed;
            v = &c->nodes[c->nnodes - 1];
        }
        int errors = 0;
        /* The same batch without a kill. */
        double t0 = now_s();
        if (submit_naps(refs, NAP_TASKS) != 0 || collect_naps(refs, NAP_TASKS, &errors) != 0)
            goto failed;
        if (errors)
            goto failed;
        base->v[base->n++] = now_s() - t0;

        if (submit_naps(refs, NAP_TASKS) != 0)
            goto failed;
        int ready[NAP_TASKS];
        int got = rayc_wait(refs, NAP_TASKS, 1, CALL_TIMEOUT_MS, ready);
        if (got < 1) {
            fail(got < 0 ? got : RAYC_ETIMEDOUT, "rayc_wait(first nap)");
            collect_naps(refs, NAP_TASKS, &errors);
            goto failed;
        }
        got = rayc_wait(refs, NAP_TASKS, NAP_TASKS, 0, ready);
        double tk = now_s();
        if (kill(v->raylet, SIGKILL) != 0) {
            failf("kill -9 %d (raylet of node %d): %s", (int)v->raylet, c->nnodes - 1,
                  strerror(errno));
            collect_naps(refs, NAP_TASKS, &errors);
            goto failed;
        }
        v->killed = 1;
        B.err[0] = '\0';
        int done_at_kill = got, done_before_dead = -1, n = got;
        double t_dead = -1, t_all = -1, deadline = tk + health / 1000.0 + 90;
        while ((t_dead < 0 || t_all < 0) && now_s() < deadline) {
            if (t_all < 0) {
                n = rayc_wait(refs, NAP_TASKS, NAP_TASKS, POLL_MS, ready);
                if (n < 0) {
                    fail(n, "rayc_wait(naps)");
                    break;
                }
                if (n == NAP_TASKS)
                    t_all = now_s();
            } else {
                sleep_ms(POLL_MS);
            }
            if (t_dead < 0) {
                int a = node_alive(v->id);
                if (a == 0) {
                    t_dead = now_s();
                    done_before_dead = n;
                } else if (a < -1) {
                    fail(a, "rayc_nodes");
                    break;
                }
            }
        }
        int waited_ok = B.err[0] == '\0';
        int crc = collect_naps(refs, NAP_TASKS, &errors);
        int left = orphans(v, 1000);
        if (t_all < 0 || t_dead < 0) {
            if (waited_ok)
                failf("after %.0f s: %s", deadline - tk,
                      t_all < 0 ? "results still missing" : "the node is still not DEAD");
            goto failed;
        }
        if (crc != 0 || errors) {
            char e[1024];
            snprintf(e, sizeof(e), "%s", B.err);
            failf("%d of %d tasks failed after the kill; first: %s", errors, NAP_TASKS, e);
            goto failed;
        }
        rec->v[rec->n++] = t_all - tk;
        dead->v[dead->n++] = t_dead - tk;
        snprintf(notes[t], sizeof(notes[t]), "%d/%d done at the kill, %d when marked DEAD%s",
                 done_at_kill, NAP_TASKS, done_before_dead,
                 left ? "; the killed raylet's workers were still alive 1 s later" : "");
    }
    finish(rec);
    finish(dead);
    finish(base);
    snprintf(base->note, sizeof(base->note),
             "%d testlib nap(%d ms) tasks SPREAD over 3 nodes x %d CPUs, no kill", NAP_TASKS,
             NAP_MS, NODE_CPUS);
    {
        int l = snprintf(rec->note, sizeof(rec->note),
                         "kill -9 of the newest non-head raylet -> all %d results in; health "
                         "timeout %d ms; ",
                         NAP_TASKS, health);
        for (int t = 0; t < B.failure_trials && l < (int)sizeof(rec->note); t++)
            l += snprintf(rec->note + l, sizeof(rec->note) - (size_t)l, "%s%s", t ? "; " : "",
                          notes[t]);
    }
    snprintf(dead->note, sizeof(dead->note),
             "kill -9 -> rayc_nodes() lists the node dead (polled every %d ms)", POLL_MS);
    return;
failed:
    set_status(rec, 'f', B.err);
    set_status(dead, 'f', B.err);
    if (base->status != 'o')
        set_status(base, 'f', B.err);
}

/* ------------------------------------------------------------------- main */

enum { C_TRANSFER_1G, C_TRANSFER_100M, C_SPREAD, C_FAIL, C_FAIL_DEAD, C_FAIL_BASE, NRESULTS };

static const struct {
    const char *name, *unit;
} RESULTS[NRESULTS] = {
    [C_TRANSFER_1G] = {"cross_node_transfer_1GiB", "GB/s"},
    [C_TRANSFER_100M] = {"cross_node_transfer_100MiB", "GB/s"},
    [C_SPREAD] = {"multi_node_tasks_spread", "tasks/s"},
    [C_FAIL] = {"node_failure_recovery", "s"},
    [C_FAIL_DEAD] = {"node_failure_recovery_marked_dead", "s"},
    [C_FAIL_BASE] = {"node_failure_recovery_no_kill", "s"},
};

static int selected(int i)
{
    return B.only == NULL || strstr(RESULTS[i].name, B.only) != NULL;
}

static int failure_selected(void)
{
    return selected(C_FAIL) || selected(C_FAIL_DEAD) || selected(C_FAIL_BASE);
}

static void usage(FILE *o)
{
    fprintf(o, "usage: multinode [--trials=N] [--failure-trials=N] [--only=SUBSTRING]\n"
               "                 [--health-timeout-ms=default[,MS...]] [--store=BYTES] [--list]\n");
}

static int parse_health(const char *s)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    B.nhealth = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (B.nhealth >= MAX_CLUSTERS)
            return -1;
        int ms = strcmp(tok, "default") == 0 ? 0 : atoi(tok);
        if (ms < 0 || (ms == 0 && strcmp(tok, "default") != 0 && strcmp(tok, "0") != 0))
            return -1;
        B.health[B.nhealth++] = ms;
    }
    return B.nhealth > 0 ? 0 : -1;
}

static int parse_args(int argc, char **argv)
{
    B.nhealth = 1; /* the default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int ok = 1;
        if (strncmp(a, "--trials=", 9) == 0) {
            B.trials = atoi(a + 9);
            ok = B.trials >= 1 && B.trials <= MAX_TRIALS;
        } else if (strncmp(a, "--failure-trials=", 17) == 0) {
            B.failure_trials = atoi(a + 17);
            ok = B.failure_trials >= 1 && B.failure_trials <= 10;
        } else if (strncmp(a, "--only=", 7) == 0) {
            B.only = a + 7;
        } else if (strncmp(a, "--health-timeout-ms=", 20) == 0) {
            ok = parse_health(a + 20) == 0;
        } else if (strncmp(a, "--store=", 8) == 0) {
            B.store = parse_size(a + 8, &ok);
            ok = ok && B.store >= 1200 * MIB; /* a 1 GiB object must fit */
        } else if (strcmp(a, "--list") == 0) {
            for (int c = 0; c < NRESULTS; c++)
                printf("%s\n", RESULTS[c].name);
            exit(0);
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "multinode: bad argument '%s'\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* What this binary needs next to it; NULL when all is there, else why not. */
static const char *find_files(void)
{
    static char why[PATH_MAX + 128];
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (l <= 0) {
        snprintf(why, sizeof(why), "readlink /proc/self/exe: %s", strerror(errno));
        return why;
    }
    exe[l] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(B.exe_dir, sizeof(B.exe_dir), "%s", exe);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/../../scripts/rayc", B.exe_dir);
    char *real = realpath(p, NULL);
    if (real == NULL) {
        snprintf(why, sizeof(why), "no rayc CLI at %s", p);
        return why;
    }
    snprintf(bc.script, sizeof(bc.script), "%s", real);
    free(real);
    snprintf(p, sizeof(p), "%s/../bin", B.exe_dir);
    if ((real = realpath(p, NULL)) == NULL) {
        snprintf(why, sizeof(why), "no daemon directory %s (run 'make')", p);
        return why;
    }
    snprintf(bc.bin_dir, sizeof(bc.bin_dir), "%s", real);
    free(real);
    static const char *bins[] = {"gcs_server", "raylet", "rayc_worker", "rayc_ctl", NULL};
    for (const char **b = bins; *b; b++) {
        snprintf(p, sizeof(p), "%s/%s", bc.bin_dir, *b);
        if (access(p, X_OK) != 0) {
            snprintf(why, sizeof(why), "%s is missing (run 'make')", p);
            return why;
        }
    }
    snprintf(B.mnlib, sizeof(B.mnlib), "%s/../examples/libmnlib_tasks.so", B.exe_dir);
    if (access(B.mnlib, R_OK) != 0) {
        snprintf(why, sizeof(why), "%s is missing (run 'make')", B.mnlib);
        return why;
    }
    snprintf(B.testlib, sizeof(B.testlib), "%s/../examples/libtestlib_tasks.so", B.exe_dir);
    B.have_testlib = access(B.testlib, R_OK) == 0;
    return NULL;
}

static void print_header(void)
{
    char host[256] = "", cpu[256] = "", date[64], la[64];
    gethostname(host, sizeof(host) - 1);
    struct utsname u;
    char kernel[300] = "";
    if (uname(&u) == 0)
        snprintf(kernel, sizeof(kernel), "%s %s %s", u.sysname, u.release, u.machine);
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(cpu, sizeof(cpu), "%s", v);
            break;
        }
    }
    if (f)
        fclose(f);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);
    bc_loadavg(la, sizeof(la));
    printf("rayc multinode benchmark, %s\n", date);
    printf("machine: %s, %ld vCPU (nproc), %.1f GiB memory, %s, %s; load average %s\n", host,
           sysconf(_SC_NPROCESSORS_ONLN),
           (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (double)GIB,
           cpu[0] ? cpu : "unknown CPU", kernel, la);
    printf("config: %d trials (transfer, spread), %d failure trial(s) per health timeout\n\n",
           B.trials, B.failure_trials);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    int want_1g = selected(C_TRANSFER_1G), want_100m = selected(C_TRANSFER_100M),
        want_spread = selected(C_SPREAD), want_fail = failure_selected();
    if (!want_1g && !want_100m && !want_spread && !want_fail) {
        printf("multinode: no case matches --only=%s (see --list)\n", B.only);
        return 0;
    }
    const char *why = find_files();
    if (why) {
        printf("skipped: %s\n", why);
        return 0;
    }
    unsigned long long need = 3ULL * B.store + GIB, avail = mem_available();
    if (avail && avail < need) {
        printf("skipped: %.1f GiB of memory available, the 3 object stores need %.1f GiB "
               "(--store=BYTES makes them smaller)\n",
               (double)avail / (double)GIB, (double)need / (double)GIB);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(bc.root, sizeof(bc.root), "%s/rayc-mnbench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(bc.root) == NULL) {
        printf("skipped: mkdtemp %s: %s\n", bc.root, strerror(errno));
        return 0;
    }
    char logs[PATH_MAX + 16];
    snprintf(logs, sizeof(logs), "%s/logs", bc.root); /* bc_rayc's output */
    mkdir(logs, 0700);
    bc.name = "multinode";
    bc_start_guardian();
    struct sigaction sa = {.sa_handler = bc_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    print_header();
    result rs[MAX_CLUSTERS][NRESULTS];
    memset(rs, 0, sizeof(rs));
    int status = 0;
    for (int k = 0; k < B.nhealth; k++) {
        /* The first cluster runs every selected case, later ones only the failure case. */
        int do_fail = want_fail, any = do_fail || (k == 0 && (want_1g || want_100m || want_spread));
        if (!any)
            continue;
        result *r = rs[k];
        for (int i = 0; i < NRESULTS; i++) {
            if (B.health[k])
                snprintf(r[i].name, sizeof(r[i].name), "%s[health=%dms]", RESULTS[i].name,
                         B.health[k]);
            else
                snprintf(r[i].name, sizeof(r[i].name), "%s", RESULTS[i].name);
            r[i].unit = RESULTS[i].unit;
        }
        cluster_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            printf("multinode: out of memory\n");
            status = 1;
            break;
        }
        c->index = k;
        c->health_ms = B.health[k];
        B.err[0] = '\0';
        if (cluster_up(c, k == 0 && (want_1g || want_100m || want_spread)) != 0) {
            char e[1024];
            snprintf(e, sizeof(e), "%s", B.err);
            cluster_down(c);
            free(c);
            if (k == 0) {
                printf("skipped: cannot start a 3-node cluster: %s\n", e);
                break;
            }
            printf("cluster %d (health timeout %d ms) skipped: %s\n", k, B.health[k], e);
            continue;
        }
        if (k == 0 && want_1g) {
            case_transfer(c, GIB, &r[C_TRANSFER_1G]);
            print_result(&r[C_TRANSFER_1G]);
        }
        if (k == 0 && want_100m) {
            case_transfer(c, 100 * MIB, &r[C_TRANSFER_100M]);
            print_result(&r[C_TRANSFER_100M]);
        }
        if (k == 0 && want_spread) {
            case_spread(c, &r[C_SPREAD]);
            print_result(&r[C_SPREAD]);
        }
        if (do_fail) {
            if (!B.have_testlib) {
                for (int i = C_FAIL; i <= C_FAIL_BASE; i++)
                    set_status(&r[i], 's',
                               "needs nap() from build/examples/libtestlib_tasks.so "
                               "(mnlib has no sleeping task); run 'make'");
            } else {
                case_failure(c, &r[C_FAIL], &r[C_FAIL_DEAD], &r[C_FAIL_BASE]);
            }
            print_result(&r[C_FAIL]);
            print_result(&r[C_FAIL_DEAD]);
            print_result(&r[C_FAIL_BASE]);
        }
        double t0 = now_s();
        cluster_down(c);
        printf("cluster %d stopped in %.1f s\n\n", k, now_s() - t0);
        free(c);
    }
    char la[64];
    bc_loadavg(la, sizeof(la));
    printf("load average at the end: %s\n", la);
    bc_remove_root();
    bc_guardian_done();
    return status || B.failed;
}
