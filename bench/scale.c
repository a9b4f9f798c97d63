/*
 * scale.c -- the scale envelope of rayc on one machine (issue 17): many
 * simulated nodes, a million queued tasks, a million owned objects, a
 * hundred thousand store objects, a thousand actors. Each case starts its own
 * cluster under a private mkdtemp root, measures, and stops it.
 *
 *   build/bench/scale CASE [N] [CASE [N]]... [--hold=SECONDS] [--actors=M]
 *
 *   nodes N          (200)  N raylets (num_cpus=1, a 32 MiB store, no
 *                           pre-fault) join one GCS: time until the GCS lists
 *                           all ALIVE; a hold of --hold seconds (60; the
 *                           issue's figure is 300) that must see no node die,
 *                           over which the GCS's CPU (utime+stime of
 *                           /proc/<pid>/stat), its RSS and its socket bytes
 *                           (rchar/wchar of /proc/<pid>/io: heartbeats in,
 *                           replies out, nothing else talks to an idle GCS)
 *                           are measured; `rayc status` latency (5 runs); then
 *                           10,000 SPREAD `where` tasks and the distinct
 *                           nodes they ran on. The head comes from `rayc
 *                           start --head`; the other raylets are exec'd
 *                           directly, all at once (see start_workers).
 *                           --actors=M: then M actors across the cluster
 *                           (creation rate, how many nodes host one).
 *   queue N      (1000000)  one driver submits N no-op tasks at once to a
 *                           2-CPU node while an actor holds both CPUs, so
 *                           all of them queue: submit time, peak raylet
 *                           RssAnon per queued task, driver RssAnon per
 *                           task; then the actor is killed: the drain rate
 *                           from a full queue.
 *   objects N    (1000000)  one driver holds N 8-byte puts (owner memory):
 *                           driver RssAnon per object.
 *   store-objects N (100000) the same with RAYC_INLINE_OBJECT_MAX=0, so each
 *                           put is a store object: raylet RssAnon per object.
 *   actors N        (1000)  N actors (0 CPUs held) on one 2-CPU node, each
 *                           answering one call: creation rate; RSS, RssAnon
 *                           and PSS per idle actor worker.
 *
 * Memory per item is a difference of RssAnon (private heap, not the shared
 * store arena) before and after, divided by the items. Nothing here asserts
 * on timing; a case that cannot run prints `<case> failed: <why>`, and the
 * exit status is non-zero only then. Every cluster is stopped on success,
 * failure and SIGINT/SIGTERM/SIGHUP; a guardian process (bench_cluster.h)
 * stops them if this process dies any other way.
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#include "bench_cluster.h"
#include "rayc.h"

#define MIB             ((size_t)1 << 20)
#define CALL_TIMEOUT_MS 600000
#define START_TIMEOUT_S 180
#define SPREAD_TASKS    10000
#define STATUS_RUNS     5
#define GET_CHUNK       10000

typedef struct {
    char dir[PATH_MAX];
    char session[PATH_MAX];
    char id[80];
    pid_t raylet;
} node_t;

typedef struct {
    int index;
    int port;
    char address[64];
    char token[PATH_MAX + 32];
    node_t *nodes; /* [0] is the head */
    int nnodes, cap;
    pid_t gcs;
    int inited;
} cluster_t;

static struct {
    int hold_s;
    long node_actors; /* nodes case: actors created across the cluster after the tasks */
    char exe_dir[PATH_MAX];
    char mnlib[PATH_MAX + 64], benchlib[PATH_MAX + 64];
    char err[1024];
    int failed, nclusters;
} S = {.hold_s = 60};

static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.err, sizeof(S.err), fmt, ap);
    va_end(ap);
    return -1;
}

static int fail(int rc, const char *call)
{
    return failf("%s: %s (%s)", call, rayc_strerror(rc), rayc_last_error());
}

static double mib(double bytes)
{
    return bytes / (double)MIB;
}

/* ------------------------------------------------------------- cluster */

static int node_session(node_t *n)
{
    char why[PATH_MAX + 128];
    if (bc_node_session(n->dir, n->session, sizeof(n->session), n->id, sizeof(n->id), &n->raylet,
                        why, sizeof(why)) != 0)
        return failf("%s", why);
    return 0;
}

static node_t *new_node(cluster_t *c)
{
    if (c->nnodes == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        node_t *n = realloc(c->nodes, (size_t)cap * sizeof(*n));
        if (n == NULL)
            return NULL;
        c->nodes = n;
        c->cap = cap;
    }
    node_t *n = &c->nodes[c->nnodes];
    memset(n, 0, sizeof(*n));
    snprintf(n->dir, sizeof(n->dir), "%s/c%d-n%d", bc.root, c->index, c->nnodes);
    return mkdir(n->dir, 0700) == 0 ? n : NULL;
}

/* The head: Redis, the GCS and a raylet of `cpus` CPUs and `store` bytes. */
static int start_head(cluster_t *c, int cpus, size_t store)
{
    node_t *n = new_node(c);
    if (n == NULL)
        return failf("cannot make a node directory under %s", bc.root);
    char tdir[PATH_MAX + 32], cpu[32], st[64], port[32], why[1024], tag[32];
    snprintf(tdir, sizeof(tdir), "--temp-dir=%s", n->dir);
    snprintf(cpu, sizeof(cpu), "--num-cpus=%d", cpus);
    snprintf(st, sizeof(st), "--object-store-memory=%zu", store);
    snprintf(tag, sizeof(tag), "c%d-head", c->index);
    int rc = -1;
    for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
        if ((c->port = bc_free_port()) <= 0)
            return failf("no free TCP port on 127.0.0.1");
        snprintf(port, sizeof(port), "--port=%d", c->port);
        char *args[] = {"start", "--head", tdir, port, cpu, st, NULL};
        rc = bc_rayc(tag, why, sizeof(why), START_TIMEOUT_S, args);
        if (rc != 0 && !strstr(why, "in use"))
            break;
    }
    if (rc != 0)
        return failf("rayc start --head: %s", why);
    if (node_session(n) != 0)
        return -1;
    snprintf(c->address, sizeof(c->address), "127.0.0.1:%d", c->port);
    snprintf(c->token, sizeof(c->token), "%s/token", n->session);
    char path[PATH_MAX + 64], buf[64];
    snprintf(path, sizeof(path), "%s/gcs_server.pid", n->session);
    if (bc_read_text(path, buf, sizeof(buf)) != 0 || (c->gcs = (pid_t)atoi(buf)) <= 0)
        return failf("%s: cannot read the GCS's pid", path);
    c->nnodes++;
    return 0;
}

/* `count` more raylets joining c, exec'd directly the way `rayc start
 * --address` runs them (own session and process group, output into
 * <session>/logs/raylet.err, pid in <session>/raylet.pid, <dir>/session_latest
 * naming the session), but without the shell: on a loaded 2-core machine
 * each of its ~30 forks costs up to a second. All are started at once (a
 * registration burst); then each must write raylet.ready within
 * START_TIMEOUT_S. */
static int start_workers(cluster_t *c, int count, int cpus, size_t store)
{
    char bin[PATH_MAX + 64], addr[96], tok[PATH_MAX + 64], cpu[32], st[64], token[256];
    snprintf(bin, sizeof(bin), "%s/raylet", bc.bin_dir);
    snprintf(addr, sizeof(addr), "--gcs-address=%s", c->address);
    if (bc_read_text(c->token, token, sizeof(token)) != 0 || !token[0])
        return failf("%s: cannot read the cluster token", c->token);
    snprintf(cpu, sizeof(cpu), "--num-cpus=%d", cpus);
    snprintf(st, sizeof(st), "--object-store-memory=%zu", store);
    char **env = bc_env();
    if (env == NULL)
        return failf("out of memory");
    int first = c->nnodes, rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        node_t *n = new_node(c);
        if (n == NULL) {
            rc = failf("cannot make a node directory under %s", bc.root);
            break;
        }
        char path[PATH_MAX + 64], sdir[PATH_MAX + 32];
        snprintf(n->session, sizeof(n->session), "%s/session_scale", n->dir);
        snprintf(sdir, sizeof(sdir), "--session-dir=%s", n->session);
        snprintf(path, sizeof(path), "%s/session_latest", n->dir);
        if (mkdir(n->session, 0700) != 0 || symlink(n->session, path) != 0) {
            rc = failf("%s: %s", n->session, strerror(errno));
            break;
        }
        snprintf(path, sizeof(path), "%s/logs", n->session);
        mkdir(path, 0700);
        snprintf(path, sizeof(path), "%s/sockets", n->session);
        mkdir(path, 0700);
        /* The session's token, as `rayc start` writes it: actor workers
         * check their callers with it. */
        snprintf(tok, sizeof(tok), "--token-file=%s/token", n->session);
        snprintf(path, sizeof(path), "%s/token", n->session);
        int tfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (tfd < 0 || dprintf(tfd, "%s\n", token) < 0) {
            if (tfd >= 0)
                close(tfd);
            rc = failf("%s: %s", path, strerror(errno));
            break;
        }
        close(tfd);
        snprintf(path, sizeof(path), "%s/logs/raylet.err", n->session);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = failf("%s: %s", path, strerror(errno));
            break;
        }
        char *argv[] = {bin, addr, tok, sdir, "--node-ip-address=127.0.0.1", cpu, st, NULL};
        n->raylet = bc_spawn(bin, argv, env, fd, true);
        int e = n->raylet < 0 ? errno : 0;
        close(fd);
        if (e != 0) {
            rc = failf("cannot run %s: %s", bin, strerror(e));
            break;
        }
        c->nnodes++;
        snprintf(path, sizeof(path), "%s/raylet.pid", n->session);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%d\n", (int)n->raylet);
            fclose(f);
        }
    }
    free(env);
    double deadline = now_s() + START_TIMEOUT_S;
    for (int i = first; i < c->nnodes && rc == 0; i++) {
        node_t *n = &c->nodes[i];
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/raylet.ready", n->session);
        while (rc == 0 && (bc_read_text(path, n->id, sizeof(n->id)) != 0 || !n->id[0])) {
            int st_;
            if (waitpid(n->raylet, &st_, WNOHANG) == n->raylet) {
                char why[1024];
                snprintf(path, sizeof(path), "%s/logs/raylet.err", n->session);
                bc_last_line(path, why, sizeof(why));
                rc = failf("raylet %d exited: %s", i, why);
            } else if (now_s() > deadline) {
                rc = failf("raylet %d not ready after %d s", i, START_TIMEOUT_S);
            } else {
                sleep_ms(20);
            }
        }
    }
    return rc;
}

/* Stop the raylets start_workers started (SIGTERM, up to 60 s, then the
 * sweep's SIGKILL): `rayc stop` knows only the sessions it made. */
static void stop_workers(cluster_t *c)
{
    for (int i = 1; i < c->nnodes; i++)
        if (c->nodes[i].raylet > 0)
            kill(c->nodes[i].raylet, SIGTERM);
    double deadline = now_s() + 60;
    for (int i = 1; i < c->nnodes; i++) {
        while (c->nodes[i].raylet > 0 && now_s() < deadline) {
            int st;
            pid_t r = waitpid(c->nodes[i].raylet, &st, WNOHANG);
            if (r == c->nodes[i].raylet || (r < 0 && errno == ECHILD))
                break;
            sleep_ms(20);
        }
    }
}

/* Attach this process as a driver to the head's raylet. */
static int attach(cluster_t *c)
{
    setenv("RAYC_TEMP_DIR", c->nodes[0].dir, 1);
    setenv("RAYC_TOKEN_FILE", c->token, 1);
    const char *code[] = {S.mnlib, S.benchlib, NULL};
    rayc_init_opts o = {.address = c->address, .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    if (rc != 0)
        return fail(rc, "rayc_init");
    c->inited = 1;
    return 0;
}

static void cluster_down(cluster_t *c)
{
    if (c->inited) {
        int rc = rayc_shutdown();
        if (rc != 0)
            fprintf(stderr, "scale: rayc_shutdown: %s (%s)\n", rayc_strerror(rc),
                    rayc_last_error());
        c->inited = 0;
    }
    double t0 = now_s();
    stop_workers(c);
    char why[1024];
    if (bc_stop_all(why, sizeof(why)) != 0)
        fprintf(stderr, "scale: rayc stop: %s\n", why);
    printf("    (%d nodes stopped in %.1f s)\n", c->nnodes, now_s() - t0);
    free(c->nodes);
    memset(c, 0, sizeof(*c));
}

static cluster_t *cluster_new(void)
{
    cluster_t *c = calloc(1, sizeof(*c));
    if (c)
        c->index = S.nclusters++;
    return c;
}

/* ALIVE nodes in the GCS's view; -1 with S.err set on failure. */
static int alive_nodes(rayc_node_info *buf, size_t cap)
{
    size_t count = 0;
    int rc = rayc_nodes(buf, cap, &count);
    if (rc != 0)
        return fail(rc, "rayc_nodes");
    int alive = 0;
    for (size_t i = 0; i < count && i < cap; i++)
        alive += buf[i].alive != 0;
    return alive;
}

static void report(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-32s ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

static void case_failed(const char *name)
{
    printf("%s failed: %s\n", name, S.err);
    fflush(stdout);
    S.failed = 1;
}

/* ----------------------------------------------------- sampler thread */

/* Peak RssAnon of a pid (0: this process) sampled every 10 ms. */
typedef struct {
    pid_t pid[2];
    unsigned long long peak[2];
    volatile int stop;
    pthread_t th;
} sampler;

static void *sampler_main(void *p)
{
    sampler *s = p;
    while (!s->stop) {
        for (int i = 0; i < 2; i++) {
            unsigned long long v = bc_proc_kb(s->pid[i], "status", "RssAnon");
            if (v > s->peak[i])
                s->peak[i] = v;
        }
        sleep_ms(10);
    }
    return NULL;
}

static void sampler_start(sampler *s, pid_t raylet)
{
    memset(s, 0, sizeof(*s));
    s->pid[0] = raylet;
    s->pid[1] = 0;
    pthread_create(&s->th, NULL, sampler_main, s);
}

static void sampler_stop(sampler *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
}

/* --------------------------------------------------------- case: queue */

/* Get refs[0, n) in chunks, releasing values and refs as they come. */
static int drain(rayc_ref *refs, long n, rayc_value *vals)
{
    for (long i = 0; i < n; i += GET_CHUNK) {
        size_t k = (size_t)(n - i < GET_CHUNK ? n - i : GET_CHUNK);
        int rc = rayc_get(refs + i, k, vals, CALL_TIMEOUT_MS);
        if (rc != 0)
            return fail(rc, "rayc_get(a chunk of results)");
        for (size_t j = 0; j < k; j++) {
            rayc_value_release(&vals[j]);
            rayc_ref_release(refs[i + (long)j]);
        }
    }
    return 0;
}

/* An actor holding every CPU of the node, answering: tasks submitted now
 * queue in the raylet until it is killed. */
static int block_cpus(rayc_actor *blocker, double cpus)
{
    rayc_actor_opts o = {.num_cpus = cpus};
    int rc = rayc_actor_create("Bench", NULL, 0, &o, blocker);
    if (rc != 0)
        return fail(rc, "rayc_actor_create(Bench, every CPU)");
    rayc_ref r;
    rayc_value v;
    if ((rc = rayc_actor_call(*blocker, "small_value", NULL, 0, NULL, &r)) != 0)
        return fail(rc, "rayc_actor_call(small_value)");
    rc = rayc_get(&r, 1, &v, CALL_TIMEOUT_MS);
    rayc_ref_release(r);
    if (rc != 0)
        return fail(rc, "rayc_get(the blocker's answer)");
    rayc_value_release(&v);
    return 0;
}

/* n no-op tasks submitted while an actor holds both CPUs, so all of them
 * queue in the raylet (its RssAnon growth is per queued task); then the
 * actor is killed and the queue drains from full. */
static void case_queue(long n)
{
    cluster_t *c = cluster_new();
    rayc_ref *refs = calloc((size_t)n, sizeof(*refs));
    rayc_value *vals = calloc(GET_CHUNK, sizeof(*vals));
    long submitted = 0;
    rayc_actor blocker;
    if (c == NULL || refs == NULL || vals == NULL) {
        failf("out of memory");
        goto failed;
    }
    if (start_head(c, 2, 256 * MIB) != 0 || attach(c) != 0)
        goto failed;
    /* Warm-up: the workers are up and the code loaded. */
    for (int i = 0; i < 1000; i++) {
        int rc = rayc_submit("noop", NULL, 0, NULL, &refs[i]);
        if (rc != 0) {
            fail(rc, "rayc_submit(noop)");
            for (int j = 0; j < i; j++)
                rayc_ref_release(refs[j]);
            goto failed;
        }
    }
    if (drain(refs, 1000, vals) != 0 || block_cpus(&blocker, 2) != 0)
        goto failed;
    /* Touched (not zeros: a memset of calloc memory to 0 may be elided), so
     * the array is not part of the growth measured below. */
    memset(refs, 0xff, (size_t)n * sizeof(*refs));
    sleep_ms(500);
    pid_t raylet = c->nodes[0].raylet;
    unsigned long long r0 = bc_proc_kb(raylet, "status", "RssAnon");
    unsigned long long d0 = bc_proc_kb(0, "status", "RssAnon");
    sampler sm;
    sampler_start(&sm, raylet);
    double t0 = now_s();
    for (; submitted < n; submitted++) {
        int rc = rayc_submit("noop", NULL, 0, NULL, &refs[submitted]);
        if (rc != 0) {
            fail(rc, "rayc_submit(noop)");
            break;
        }
    }
    double t1 = now_s();
    unsigned long long d1 = bc_proc_kb(0, "status", "RssAnon");
    /* The raylet has every task once its RssAnon stops growing. */
    for (unsigned long long last = 0; submitted == n && sm.peak[0] != last;) {
        last = sm.peak[0];
        sleep_ms(1000);
    }
    double t2 = now_s();
    int drc = submitted == n ? rayc_actor_kill(blocker, 1) : -1;
    if (drc == 0)
        drc = drain(refs, n, vals);
    double t3 = now_s();
    sampler_stop(&sm);
    if (drc != 0) {
        for (long i = 0; i < submitted && submitted < n; i++)
            rayc_ref_release(refs[i]);
        goto failed;
    }
    report("queue.submit",
           "%.2f s for %ld tasks (%.0f tasks/s), all queued %.1f s after the "
           "first",
           t1 - t0, n, (double)n / (t1 - t0), t2 - t0);
    report("queue.drain",
           "%.0f tasks/s from a full queue (%.1f s from the blocker's kill to "
           "the last result)",
           (double)n / (t3 - t2), t3 - t2);
    report("queue.raylet_rss", "%.0f B per queued task (peak RssAnon %.1f MiB, %.1f MiB before)",
           (double)(sm.peak[0] - r0) / (double)n, mib((double)sm.peak[0]), mib((double)r0));
    report("queue.driver_rss",
           "%.0f B per task at the end of the submit, %.0f B at the peak "
           "(RssAnon %.1f -> %.1f MiB, peak %.1f MiB)",
           (double)(d1 - d0) / (double)n, (double)(sm.peak[1] - d0) / (double)n, mib((double)d0),
           mib((double)d1), mib((double)sm.peak[1]));
    goto out;
failed:
    case_failed("queue");
out:
    if (c)
        cluster_down(c);
    free(c);
    free(refs);
    free(vals);
}

#include "scale_nodes.h"

/* ------------------------------------------------------ case: objects */

/* n 8-byte puts held by this driver: the owner's (and the raylet's) RssAnon
 * growth per object. */
static void put_objects(long n, int store)
{
    const char *name = store ? "store-objects" : "objects";
    cluster_t *c = cluster_new();
    rayc_ref *refs = calloc((size_t)n, sizeof(*refs));
    long made = 0;
    if (c == NULL || refs == NULL) {
        failf("out of memory");
        goto failed;
    }
    memset(refs, 0xff, (size_t)n * sizeof(*refs)); /* touched, as in case_queue */
    size_t st = store ? (size_t)256 * MIB + (size_t)n * 256 : 64 * MIB;
    if (store)
        setenv("RAYC_INLINE_OBJECT_MAX", "0", 1); /* read by rayc_init */
    int rc = start_head(c, 1, st) == 0 ? attach(c) : -1;
    unsetenv("RAYC_INLINE_OBJECT_MAX");
    if (rc != 0)
        goto failed;
    sleep_ms(500);
    pid_t raylet = c->nodes[0].raylet;
    unsigned long long r0 = bc_proc_kb(raylet, "status", "RssAnon");
    unsigned long long d0 = bc_proc_kb(0, "status", "RssAnon");
    double t0 = now_s();
    for (; made < n; made++) {
        uint64_t v = (uint64_t)made;
        if ((rc = rayc_put(&v, sizeof(v), &refs[made])) != 0) {
            fail(rc, "rayc_put");
            break;
        }
    }
    double t1 = now_s();
    sleep_ms(1000); /* the raylet has taken every seal */
    unsigned long long r1 = bc_proc_kb(raylet, "status", "RssAnon");
    unsigned long long d1 = bc_proc_kb(0, "status", "RssAnon");
    for (long i = 0; i < made; i++)
        rayc_ref_release(refs[i]);
    if (made < n)
        goto failed;
    char key[48];
    snprintf(key, sizeof(key), "%s.put", name);
    report(key, "%.2f s for %ld 8-byte puts (%.0f puts/s)", t1 - t0, n, (double)n / (t1 - t0));
    snprintf(key, sizeof(key), "%s.driver_rss", name);
    report(key, "%.0f B per object (RssAnon %.1f -> %.1f MiB)",
           ((double)d1 - (double)d0) / (double)n, mib((double)d0), mib((double)d1));
    snprintf(key, sizeof(key), "%s.raylet_rss", name);
    report(key, "%.0f B per object (RssAnon %.1f -> %.1f MiB)",
           ((double)r1 - (double)r0) / (double)n, mib((double)r0), mib((double)r1));
    goto out;
failed:
    case_failed(name);
out:
    if (c)
        cluster_down(c);
    free(c);
    free(refs);
}

static void case_objects(long n)
{
    put_objects(n, 0);
}

static void case_store_objects(long n)
{
    put_objects(n, 1);
}

/* ------------------------------------------------------- case: actors */

static void case_actors(long n)
{
    cluster_t *c = cluster_new();
    rayc_actor *actors = calloc((size_t)n, sizeof(*actors));
    rayc_ref *refs = calloc((size_t)n, sizeof(*refs));
    rayc_value *vals = calloc(GET_CHUNK, sizeof(*vals));
    long made = 0, called = 0;
    if (c == NULL || actors == NULL || refs == NULL || vals == NULL) {
        failf("out of memory");
        goto failed;
    }
    if (start_head(c, 2, 64 * MIB) != 0 || attach(c) != 0)
        goto failed;
    sleep_ms(500);
    pid_t raylet = c->nodes[0].raylet;
    unsigned long long r0 = bc_proc_kb(raylet, "status", "RssAnon");
    double t0 = now_s();
    int rc = 0;
    for (; made < n && rc == 0; made++)
        if ((rc = rayc_actor_create("Bench", NULL, 0, NULL, &actors[made])) != 0) {
            fail(rc, "rayc_actor_create(Bench)");
            break;
        }
    double t1 = now_s();
    for (; rc == 0 && called < n; called++)
        if ((rc = rayc_actor_call(actors[called], "small_value", NULL, 0, NULL, &refs[called])) !=
            0)
            fail(rc, "rayc_actor_call(small_value)");
    if (rc == 0 && drain(refs, n, vals) != 0)
        rc = -1;
    double t2 = now_s();
    if (rc != 0) {
        for (long i = 0; i < called; i++)
            rayc_ref_release(refs[i]);
        goto failed;
    }
    sleep_ms(2000); /* idle */
    unsigned long long ws[5] = {0};
    bc_each_process(bc.root, "rayc_worker", sum_rss, ws);
    long long rt = bc_proc_ticks(raylet);
    unsigned long long r1 = bc_proc_kb(raylet, "status", "RssAnon");
    double k = ws[3] ? (double)ws[3] : 1;
    report("actors.create",
           "%.1f s until all %ld answered (%.0f actors/s; the create calls took "
           "%.2f s)",
           t2 - t0, n, (double)n / (t2 - t0), t1 - t0);
    report("actors.worker_rss",
           "%llu worker processes: %.2f MiB VmRSS, %.2f MiB RssAnon, "
           "%.2f MiB PSS each (mean)",
           ws[3], mib((double)ws[0] / k), mib((double)ws[1] / k), mib((double)ws[2] / k));
    report("actors.cpu",
           "%.0f ms of CPU per actor worker (utime+stime, start-up and one call); "
           "the raylet %.1f s in all",
           1000.0 * (double)ws[4] / (double)sysconf(_SC_CLK_TCK) / k,
           (double)rt / (double)sysconf(_SC_CLK_TCK));
    report("actors.raylet_rss", "%.0f B per actor (RssAnon %.1f -> %.1f MiB)",
           ((double)r1 - (double)r0) / (double)n, mib((double)r0), mib((double)r1));
    goto out;
failed:
    case_failed("actors");
out:
    for (long i = 0; i < made; i++)
        rayc_actor_release(actors[i]);
    if (c)
        cluster_down(c);
    free(c);
    free(actors);
    free(refs);
    free(vals);
}

/* ------------------------------------------------------------------- main */

static volatile pid_t case_child; /* the process running the current case */

/* Interrupted: the case's process goes first (it would go on measuring and
 * hold the guardian's pipe open), then the guardian stops the clusters. */
static void on_signal(int sig)
{
    if (case_child > 0)
        kill(case_child, SIGKILL);
    bc_on_signal(sig);
}

typedef struct {
    const char *name;
    long dflt;
    void (*run)(long n);
} scale_case;

static const scale_case CASES[] = {
    {"nodes", 200, case_nodes},         {"queue", 1000000, case_queue},
    {"objects", 1000000, case_objects}, {"store-objects", 100000, case_store_objects},
    {"actors", 1000, case_actors},
};
#define NCASES ((int)(sizeof(CASES) / sizeof(CASES[0])))

static void usage(FILE *o)
{
    fprintf(o, "usage: scale CASE [N] [CASE [N]]... [--hold=SECONDS] [--actors=M]\n"
               "cases (default N): nodes (200), queue (1000000), objects (1000000),\n"
               "                   store-objects (100000), actors (1000), all\n");
}

static const char *find_files(void)
{
    static char why[PATH_MAX + 128];
    char exe[PATH_MAX], p[PATH_MAX + 64];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (l <= 0)
        return "readlink /proc/self/exe failed";
    exe[l] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(S.exe_dir, sizeof(S.exe_dir), "%s", exe);
    snprintf(p, sizeof(p), "%s/../../scripts/rayc", S.exe_dir);
    char *real = realpath(p, NULL);
    if (real == NULL) {
        snprintf(why, sizeof(why), "no rayc CLI at %s", p);
        return why;
    }
    snprintf(bc.script, sizeof(bc.script), "%s", real);
    free(real);
    snprintf(p, sizeof(p), "%s/../bin", S.exe_dir);
    if ((real = realpath(p, NULL)) == NULL) {
        snprintf(why, sizeof(why), "no daemon directory %s (run 'make')", p);
        return why;
    }
    snprintf(bc.bin_dir, sizeof(bc.bin_dir), "%s", real);
    free(real);
    snprintf(S.mnlib, sizeof(S.mnlib), "%s/../examples/libmnlib_tasks.so", S.exe_dir);
    snprintf(S.benchlib, sizeof(S.benchlib), "%s/libbench_tasks.so", S.exe_dir);
    const char *need[] = {S.mnlib, S.benchlib, NULL};
    for (const char **f = need; *f; f++)
        if (access(*f, R_OK) != 0) {
            snprintf(why, sizeof(why), "%s is missing (run 'make')", *f);
            return why;
        }
    return NULL;
}

static void print_header(void)
{
    char host[256] = "", date[64], la[64];
    gethostname(host, sizeof(host) - 1);
    struct utsname u;
    uname(&u);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);
    bc_loadavg(la, sizeof(la));
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("rayc scale benchmark, %s\n", date);
    printf("machine: %s, %ld vCPU, %.1f GiB memory, %s %s; load average %s; "
           "open files limit %llu\n\n",
           host, sysconf(_SC_NPROCESSORS_ONLN),
           (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1 << 30), u.sysname,
           u.release, la, (unsigned long long)rl.rlim_cur);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long ns[NCASES];
    int want[NCASES] = {0}, any = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int ok = 0;
        if (strncmp(a, "--hold=", 7) == 0) {
            S.hold_s = atoi(a + 7);
            ok = S.hold_s >= 0;
        } else if (strncmp(a, "--actors=", 9) == 0) {
            S.node_actors = atol(a + 9);
            ok = S.node_actors >= 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            for (int c = 0; c < NCASES; c++) {
                if (strcmp(a, CASES[c].name) != 0 && strcmp(a, "all") != 0)
                    continue;
                want[c] = any = ok = 1;
                ns[c] = CASES[c].dflt;
                if (strcmp(a, "all") != 0 && i + 1 < argc && isdigit((unsigned char)argv[i + 1][0]))
                    ns[c] = atol(argv[++i]);
                if (ns[c] < 1)
                    ok = 0;
            }
        }
        if (!ok) {
            fprintf(stderr, "scale: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!any) {
        /* `make bench` runs every benchmark without arguments: the heavy
         * runs here are on request only. */
        printf("scale: no case given, nothing run (see --help; `make bench-scale` runs all)\n");
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    bc.name = "scale";
    const char *why = find_files();
    if (why) {
        printf("skipped: %s\n", why);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(bc.root, sizeof(bc.root), "%s/rayc-scale-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(bc.root) == NULL) {
        printf("skipped: mkdtemp %s: %s\n", bc.root, strerror(errno));
        return 0;
    }
    char logs[PATH_MAX + 16];
    snprintf(logs, sizeof(logs), "%s/logs", bc.root);
    mkdir(logs, 0700);
    /* Small stores need no pre-fault, and 200 pre-fault threads would only
     * compete with the measurements. */
    bc.extra[bc.nextra++] = "RAYC_PREFAULT_STORE=0";
    bc_start_guardian();
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    print_header();
    /* Each case in its own child process: memory a case freed stays in the
     * heap and would hide the next case's growth. */
    for (int c = 0; c < NCASES; c++) {
        if (!want[c])
            continue;
        printf("== %s %ld\n", CASES[c].name, ns[c]);
        fflush(NULL);
        S.nclusters = 10 * c; /* node directories of each case's clusters stay apart */
        pid_t pid = fork();
        if (pid == 0) {
            /* The parent answers signals and keeps the guardian's pipe. */
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            close(bc.guard_fd);
            bc.guard_fd = -1;
            CASES[c].run(ns[c]);
            fflush(NULL);
            _exit(S.failed);
        }
        case_child = pid;
        int st = 0;
        while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        case_child = 0;
        if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (pid < 0 || !WIFEXITED(st))
                printf("%s failed: %s\n", CASES[c].name,
                       pid < 0 ? strerror(errno) : "the case's process died");
            S.failed = 1;
            char swhy[1024];
            bc_stop_all(swhy, sizeof(swhy)); /* what a dead case left */
        }
        printf("\n");
    }
    char la[64];
    bc_loadavg(la, sizeof(la));
    printf("load average at the end: %s\n", la);
    bc_remove_root();
    bc_guardian_done();
    return S.failed;
}
