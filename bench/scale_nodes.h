/*
 * scale_nodes.h -- the `nodes` case of bench/scale.c (issue 17): N raylets
 * joining one GCS, a hold checked for false deaths while the GCS's CPU and
 * socket bytes are measured, `rayc status` latency, 10,000 SPREAD tasks.
 * Included by scale.c after its state, cluster helpers and report(), whose
 * names it uses (like bench_generators.h in microbenchmark.c).
 */
#ifndef RAYC_SCALE_NODES_H
#define RAYC_SCALE_NODES_H

/* --------------------------------------------------------- case: nodes */

static void sum_rss(pid_t pid, void *arg)
{
    unsigned long long *s = arg;
    s[0] += bc_proc_kb(pid, "status", "VmRSS");
    s[1] += bc_proc_kb(pid, "status", "RssAnon");
    s[2] += bc_proc_kb(pid, "smaps_rollup", "Pss");
    s[3]++;
    long long t = bc_proc_ticks(pid);
    s[4] += t > 0 ? (unsigned long long)t : 0;
}

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n > 2 ? n - 2 : n;
}

/* Wait until the GCS lists `want` nodes ALIVE (up to timeout_s). */
static int wait_alive(rayc_node_info *buf, size_t cap, int want, int timeout_s)
{
    double deadline = now_s() + timeout_s;
    int alive;
    while ((alive = alive_nodes(buf, cap)) != want) {
        if (alive < 0)
            return -1;
        if (now_s() > deadline)
            return failf("%d of %d nodes ALIVE after %d s", alive, want, timeout_s);
        sleep_ms(200);
    }
    return 0;
}

/* The hold: nothing talks to the GCS but the raylets' heartbeats; measure
 * its CPU and socket bytes, then check that every node is still ALIVE. */
static int nodes_hold(cluster_t *c, rayc_node_info *buf, size_t cap)
{
    unsigned long long r0 = 0, w0 = 0, r1 = 0, w1 = 0;
    long long tk0 = bc_proc_ticks(c->gcs);
    bc_proc_io(c->gcs, &r0, &w0);
    double h0 = now_s();
    int gone = 0;
    while (now_s() - h0 < S.hold_s) {
        sleep_ms(1000);
        gone = 0;
        for (int i = 0; i < c->nnodes; i++)
            gone += kill(c->nodes[i].raylet, 0) != 0;
    }
    double el = now_s() - h0;
    long long tk1 = bc_proc_ticks(c->gcs);
    bc_proc_io(c->gcs, &r1, &w1);
    int alive = alive_nodes(buf, cap);
    if (alive < 0)
        return -1;
    double n = c->nnodes, hz = (double)sysconf(_SC_CLK_TCK);
    report("nodes.hold", "%.0f s: %d of %d ALIVE at the end (%d raylets exited, %d false deaths)",
           el, alive, c->nnodes, gone, c->nnodes - alive - gone);
    report("nodes.gcs_cpu_idle", "%.1f %% of one core (utime+stime over the hold)",
           100.0 * (double)(tk1 - tk0) / hz / el);
    report("nodes.gcs_rss", "%.1f MiB VmRSS, %.1f MiB RssAnon, %d open fds",
           mib((double)bc_proc_kb(c->gcs, "status", "VmRSS")),
           mib((double)bc_proc_kb(c->gcs, "status", "RssAnon")), count_fds(c->gcs));
    report("nodes.gcs_bytes_per_node", "%.0f B/s in (heartbeats), %.0f B/s out (replies) per node",
           (double)(r1 - r0) / el / n, (double)(w1 - w0) / el / n);
    unsigned long long rs[5] = {0}, ws[5] = {0};
    for (int i = 0; i < c->nnodes; i++)
        sum_rss(c->nodes[i].raylet, rs);
    bc_each_process(bc.root, "rayc_worker", sum_rss, ws);
    report("nodes.raylet_rss", "%.1f MiB VmRSS, %.1f MiB RssAnon, %.1f MiB PSS per raylet (mean)",
           mib((double)rs[0] / n), mib((double)rs[1] / n), mib((double)rs[2] / n));
    report("nodes.idle_workers", "%llu prestarted workers, %.1f MiB PSS each (mean)", ws[3],
           ws[3] ? mib((double)ws[2] / (double)ws[3]) : 0.0);
    if (alive != c->nnodes)
        return failf("%d of %d nodes died during the hold", c->nnodes - alive, c->nnodes);
    return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int nodes_status(cluster_t *c)
{
    char tdir[PATH_MAX + 32], why[1024];
    snprintf(tdir, sizeof(tdir), "--temp-dir=%s", c->nodes[0].dir);
    char *args[] = {"status", tdir, NULL};
    double t[STATUS_RUNS];
    for (int i = 0; i < STATUS_RUNS; i++) {
        double t0 = now_s();
        if (bc_rayc("status", why, sizeof(why), 60, args) != 0)
            return failf("rayc status: %s", why);
        t[i] = now_s() - t0;
    }
    qsort(t, STATUS_RUNS, sizeof(t[0]), cmp_dbl);
    report("nodes.rayc_status", "%.3f s median, %.3f s max of %d runs", t[STATUS_RUNS / 2],
           t[STATUS_RUNS - 1], STATUS_RUNS);
    return 0;
}

static int nodes_spread(cluster_t *c)
{
    rayc_ref *refs = calloc(SPREAD_TASKS, sizeof(*refs));
    rayc_value *vals = calloc(SPREAD_TASKS, sizeof(*vals));
    char *used = calloc((size_t)c->nnodes, 1);
    int rc = 0, submitted = 0;
    if (refs == NULL || vals == NULL || used == NULL) {
        rc = failf("out of memory");
        goto out;
    }
    rayc_task_opts o = {.strategy = RAYC_SCHED_SPREAD};
    double t0 = now_s();
    for (; submitted < SPREAD_TASKS; submitted++)
        if ((rc = rayc_submit("where", NULL, 0, &o, &refs[submitted])) != 0) {
            fail(rc, "rayc_submit(where, SPREAD)");
            goto out;
        }
    rc = rayc_get(refs, SPREAD_TASKS, vals, CALL_TIMEOUT_MS);
    double el = now_s() - t0;
    if (rc != 0) {
        fail(rc, "rayc_get(10000 SPREAD tasks)");
        goto out;
    }
    int distinct = 0, unknown = 0;
    for (int i = 0; i < SPREAD_TASKS; i++) {
        int k = 0;
        while (k < c->nnodes && (strlen(c->nodes[k].id) != vals[i].size ||
                                 memcmp(c->nodes[k].id, vals[i].data, vals[i].size) != 0))
            k++;
        if (k == c->nnodes)
            unknown++;
        else if (!used[k]) {
            used[k] = 1;
            distinct++;
        }
        rayc_value_release(&vals[i]);
    }
    report("nodes.spread", "%d tasks ran on %d distinct of %d nodes in %.1f s (%.0f tasks/s)%s",
           SPREAD_TASKS, distinct, c->nnodes, el, SPREAD_TASKS / el,
           unknown ? "; some on an unknown node" : "");
out:
    for (int i = 0; i < submitted; i++)
        rayc_ref_release(refs[i]);
    free(refs);
    free(vals);
    free(used);
    return rc ? -1 : 0;
}

/* Workers per raylet: hosts[0] raylets, then (pid, workers) pairs. */
static void count_hosts(pid_t pid, void *arg)
{
    int *hosts = arg;
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (bc_read_text(path, buf, sizeof(buf)) != 0)
        return;
    const char *p = strrchr(buf, ')');
    int ppid = 0;
    if (p && sscanf(p + 2, "%*c %d", &ppid) == 1)
        for (int i = 0; hosts[0] >= 0 && i < hosts[0]; i++)
            if (hosts[2 * i + 1] == ppid)
                hosts[2 * i + 2]++;
}

/* n Bench actors across the cluster (the GCS places them), each answering
 * one call: the creation rate and how many nodes host an actor worker. */
static int nodes_actors(cluster_t *c, long n)
{
    rayc_actor *actors = calloc((size_t)n, sizeof(*actors));
    rayc_ref *refs = calloc((size_t)n, sizeof(*refs));
    rayc_value *vals = calloc(GET_CHUNK, sizeof(*vals));
    int *hosts = calloc(2 * (size_t)c->nnodes + 1, sizeof(*hosts));
    long made = 0, called = 0;
    int rc = 0;
    if (actors == NULL || refs == NULL || vals == NULL || hosts == NULL) {
        rc = failf("out of memory");
        goto out;
    }
    double t0 = now_s();
    for (; made < n && rc == 0; made++)
        if ((rc = rayc_actor_create("Bench", NULL, 0, NULL, &actors[made])) != 0) {
            fail(rc, "rayc_actor_create(Bench)");
            break;
        }
    for (; rc == 0 && called < n; called++)
        if ((rc = rayc_actor_call(actors[called], "small_value", NULL, 0, NULL, &refs[called])) !=
            0)
            fail(rc, "rayc_actor_call(small_value)");
    if (rc == 0 && drain(refs, n, vals) != 0)
        rc = -1;
    double el = now_s() - t0;
    if (rc != 0) {
        for (long i = 0; i < called; i++)
            rayc_ref_release(refs[i]);
        goto out;
    }
    /* A worker's parent is its raylet (posix_spawn): workers per raylet,
     * the prestarted one (and task workers not yet idled out) included. */
    hosts[0] = c->nnodes;
    for (int i = 0; i < c->nnodes; i++)
        hosts[2 * i + 1] = (int)c->nodes[i].raylet;
    bc_each_process(bc.root, "rayc_worker", count_hosts, hosts);
    int lo = INT_MAX, hi = 0, total = 0;
    for (int i = 0; i < c->nnodes; i++) {
        int w = hosts[2 * i + 2];
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
        total += w;
    }
    report("nodes.actors",
           "%ld actors answering after %.1f s (%.0f actors/s); worker processes "
           "per raylet: %d to %d (%d in all, prestarted ones included)",
           n, el, (double)n / el, lo, hi, total);
    /* What the actors cost where they live, once they answered. */
    unsigned long long ws[5] = {0}, rs[5] = {0};
    bc_each_process(bc.root, "rayc_worker", sum_rss, ws);
    for (int i = 0; i < c->nnodes; i++)
        sum_rss(c->nodes[i].raylet, rs);
    double nw = ws[3] ? (double)ws[3] : 1, hz = (double)sysconf(_SC_CLK_TCK);
    report("nodes.actor_memory",
           "worker process (mean of %llu): %.2f MiB VmRSS, %.2f MiB RssAnon, %.2f MiB PSS, "
           "%.1f ms CPU; raylet %.1f MiB RssAnon (mean); GCS %.1f MiB RssAnon, %d open fds; "
           "driver %.1f MiB RssAnon, %llu threads",
           ws[3], mib((double)ws[0] / nw), mib((double)ws[1] / nw), mib((double)ws[2] / nw),
           1000.0 * (double)ws[4] / hz / nw, mib((double)rs[1] / (double)c->nnodes),
           mib((double)bc_proc_kb(c->gcs, "status", "RssAnon")), count_fds(c->gcs),
           mib((double)bc_proc_kb(0, "status", "RssAnon")),
           bc_proc_kb(0, "status", "Threads") / 1024);
out:
    for (long i = 0; i < made; i++)
        rayc_actor_release(actors[i]);
    free(actors);
    free(refs);
    free(vals);
    free(hosts);
    return rc ? -1 : 0;
}

static void case_nodes(long n)
{
    cluster_t *c = cluster_new();
    size_t cap = (size_t)n + 16;
    rayc_node_info *buf = calloc(cap, sizeof(*buf));
    if (c == NULL || buf == NULL) {
        failf("out of memory");
        goto failed;
    }
    double t0 = now_s();
    if (start_head(c, 1, 32 * MIB) != 0 || attach(c) != 0)
        goto failed;
    double t1 = now_s();
    if (start_workers(c, (int)n - 1, 1, 32 * MIB) != 0)
        goto failed;
    double t2 = now_s();
    if (wait_alive(buf, cap, (int)n, 120) != 0)
        goto failed;
    double t3 = now_s();
    /* Settle: the joins' deltas (every raylet learns of every other) are
     * over after a heartbeat or two; the hold measures the steady state. */
    sleep_ms(3000);
    report("nodes.start",
           "head (rayc start --head) %.1f s; %ld more raylets (1 CPU, 32 MiB "
           "store each) all ready %.1f s after their start",
           t1 - t0, n - 1, t2 - t1);
    report("nodes.all_alive", "%.1f s after the raylets' start (GCS lists all %ld ALIVE)", t3 - t1,
           n);
    if (nodes_hold(c, buf, cap) != 0 || nodes_status(c) != 0 || nodes_spread(c) != 0 ||
        (S.node_actors > 0 && nodes_actors(c, S.node_actors) != 0))
        goto failed;
    goto out;
failed:
    case_failed("nodes");
out:
    if (c)
        cluster_down(c);
    free(c);
    free(buf);
}

#endif
