/*
 * bench_generators.h -- the `generators` section of bench/microbenchmark.c
 * (issue 11). Included by microbenchmark.c after its state, result type and
 * helpers (B, fail, check_failed, have_tasks), whose names it uses; its
 * functions are the cases' setup/run functions.
 *
 *   generator_items_8B             items/s of one generator yielding 8-byte
 *       items (bench_tasks `gen_items`), each taken with rayc_stream_next and
 *       released; 50,000 items a stream.
 *   generators_modin_*             Modin's case: a task makes 64 partitions of
 *       16 MiB (`partitions`, num_returns = 64) and the driver consumes them one
 *       by one (a get, a pass over every word, a release), against the same
 *       partitions yielded one by one (`partitions_stream`) with
 *       generator_backpressure 4: time to the first partition, total time and
 *       the store's peak use (its high-water mark, StoreStats.peak_used,
 *       reset before each run); one untimed run of each first.
 *   generators_dedup_50x100MiB_*   50 tasks given the same 100 MiB buffer by
 *       value (`sample`): the store's peak and the time from the first submit
 *       to the last result.
 *
 * The peak needs the raylet of this machine's session (address "local" or
 * "auto"): the section asks its socket for store statistics, as `rayc status`
 * does, so the benchmark links libcommon for the framing. Nothing here
 * asserts on timing.
 */
#ifndef RAYC_BENCH_GENERATORS_H
#define RAYC_BENCH_GENERATORS_H

#include "bconn.h"
#include "ids.h"
#include "msg.h"

#define GEN_ITEMS_PER_STREAM 50000
#define MODIN_PARTS          64
#define MODIN_PART_SIZE      ((uint64_t)16 << 20)
#define MODIN_BACKPRESSURE   4
#define DEDUP_TASKS          50
#define DEDUP_SIZE           ((size_t)100 << 20)
#define MIB_F                (1024.0 * 1024.0)

/* ------------------------------------------------------------ store statistics */

/* The session dir of the cluster we run on, or NULL (a HOST:PORT address). */
static const char *gen_session_link(char *buf, size_t len)
{
    if (strcmp(B.address, "local") == 0 && B.embedded_root[0]) {
        snprintf(buf, len, "%s/session_latest", B.embedded_root);
    } else if (strcmp(B.address, "auto") == 0) {
        const char *t = getenv("RAYC_TEMP_DIR");
        snprintf(buf, len, "%s/session_latest", t && *t ? t : "/tmp/rayc");
    } else {
        return NULL;
    }
    return buf;
}

/* The local store's use and high-water mark (reset afterwards when asked).
 * 0, or CHECK_FAILED with B.err set. */
static int gen_store_stats(int reset_peak, uint64_t *used, uint64_t *peak)
{
    char link[PATH_MAX + 32], sock[PATH_MAX + 64];
    if (gen_session_link(link, sizeof(link)) == NULL)
        return check_failed("the store's peak needs this machine's session (--address=local "
                            "or auto)");
    char *session = realpath(link, NULL);
    if (session == NULL)
        return check_failed("%s: %s", link, strerror(errno));
    snprintf(sock, sizeof(sock), "%s/sockets/raylet", session);
    free(session);
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    worker_id_t id = worker_id_random();
    hs.role = RPC__ROLE__ROLE_CLI;
    hs.id.data = id.b;
    hs.id.len = WORKER_ID_SIZE;
    hs.pid = (int32_t)getpid();
    hs.name = "microbenchmark";
    int fds[2], nfds = 0, code = 0;
    char err[256];
    bconn *b =
        bconn_open(NULL, 0, sock, NULL, &hs, 5000, NULL, fds, 2, &nfds, &code, err, sizeof(err));
    if (b == NULL)
        return check_failed("raylet %s: %s", sock, err);
    for (int i = 0; i < nfds; i++)
        close(fds[i]); /* the arena: only the numbers are wanted */
    Rpc__StoreStatsRequest req = RPC__STORE_STATS_REQUEST__INIT;
    req.req_id = 1;
    req.reset_peak = reset_peak != 0;
    ProtobufCMessage *m = NULL;
    int rc = bconn_call(b, MSG_STORE_STATS_REQ, &req.base, MSG_STORE_STATS_REPLY, &m, 10000);
    bconn_close(b);
    if (rc != 0)
        return check_failed("store stats: %s", rayc_strerror(rc));
    Rpc__StoreStatsReply *r = (Rpc__StoreStatsReply *)m;
    if (used)
        *used = r->used;
    if (peak)
        *peak = r->peak_used;
    msg_free(m);
    return 0;
}

/* ------------------------------------------------------------ item rate */

static int setup_gen_items(void **st)
{
    *st = NULL;
    return have_tasks();
}

static int run_gen_items(void *p, double *units)
{
    (void)p;
    uint64_t n = GEN_ITEMS_PER_STREAM;
    rayc_arg a = RAYC_VAL(&n, sizeof(n));
    rayc_stream *s;
    int rc = rayc_submit_stream("gen_items", &a, 1, NULL, &s);
    if (rc != 0)
        return fail(rc, "rayc_submit_stream(gen_items)");
    rayc_ref r;
    uint64_t got = 0;
    while ((rc = rayc_stream_next(s, &r, CALL_TIMEOUT_MS)) == RAYC_OK) {
        rayc_ref_release(r);
        got++;
    }
    rayc_stream_close(s);
    if (rc != RAYC_EOF)
        return fail(rc, "rayc_stream_next");
    if (got != n)
        return check_failed("a stream of %llu items gave %llu", (unsigned long long)n,
                            (unsigned long long)got);
    *units += (double)got;
    return 0;
}

/* ------------------------------------------------------------ Modin */

/* What the driver does with a partition: one pass over its words. */
static uint64_t consume_partition(const rayc_value *v)
{
    const uint64_t *w = v->data;
    uint64_t sum = 0;
    for (size_t k = 0; k < v->size / 8; k++)
        sum += w[k];
    return sum;
}

enum {
    M_LIST_FIRST,
    M_LIST_TOTAL,
    M_LIST_PEAK,
    M_STREAM_FIRST,
    M_STREAM_TOTAL,
    M_STREAM_PEAK,
    M_DEDUP_PEAK,
    M_DEDUP_TOTAL,
    M_METRICS
};

/* Every trial's figures, measured once for all the rows that show them. */
static struct {
    int modin_done, dedup_done; /* 1 measured, -1 failed (err) */
    char modin_err[1024], dedup_err[1024];
    int n[M_METRICS];
    double v[M_METRICS][MAX_TRIALS];
} G;

/* Get partition i (of the list or the stream), consume it, release it. */
static int take_partition(rayc_ref r, uint64_t *sink)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, CALL_TIMEOUT_MS);
    if (rc != 0)
        return fail(rc, "rayc_get(partition)");
    if (v.size != MODIN_PART_SIZE) {
        rayc_value_release(&v);
        return check_failed("a partition of %zu bytes", v.size);
    }
    *sink += consume_partition(&v);
    rayc_value_release(&v);
    rayc_ref_release(r);
    return 0;
}

/* One run: the list (stream == 0) or the stream; n partitions. */
static int modin_run(int stream, uint64_t n, double *first, double *total, double *peak_mib)
{
    uint64_t size = MODIN_PART_SIZE, sink = 0, peak = 0;
    rayc_arg a[] = {RAYC_VAL(&n, sizeof(n)), RAYC_VAL(&size, sizeof(size))};
    int rc = gen_store_stats(1, NULL, NULL);
    if (rc != 0)
        return rc;
    double t0 = now_s();
    *first = -1;
    if (stream) {
        rayc_task_opts o = {.num_returns = RAYC_STREAMING,
                            .generator_backpressure = MODIN_BACKPRESSURE};
        rayc_stream *s;
        if ((rc = rayc_submit_stream("partitions_stream", a, 2, &o, &s)) != 0)
            return fail(rc, "rayc_submit_stream(partitions_stream)");
        rayc_ref r;
        uint64_t got = 0;
        int nrc;
        while (rc == 0 && (nrc = rayc_stream_next(s, &r, CALL_TIMEOUT_MS)) == RAYC_OK) {
            rc = take_partition(r, &sink);
            if (got++ == 0)
                *first = now_s() - t0;
        }
        rayc_stream_close(s);
        if (rc != 0)
            return rc;
        if (nrc != RAYC_EOF)
            return fail(nrc, "rayc_stream_next");
        if (got != n)
            return check_failed("the stream gave %llu of %llu partitions", (unsigned long long)got,
                                (unsigned long long)n);
    } else {
        rayc_task_opts o = {.num_returns = (int)n};
        rayc_ref refs[MODIN_PARTS];
        if ((rc = rayc_submit("partitions", a, 2, &o, refs)) != 0)
            return fail(rc, "rayc_submit(partitions)");
        for (uint64_t i = 0; i < n; i++) {
            if (rc == 0)
                rc = take_partition(refs[i], &sink);
            else
                rayc_ref_release(refs[i]);
            if (i == 0)
                *first = now_s() - t0;
        }
        if (rc != 0)
            return rc;
    }
    *total = now_s() - t0;
    if ((rc = gen_store_stats(0, NULL, &peak)) != 0)
        return rc;
    *peak_mib = (double)peak / MIB_F;
    if (sink == 0x5eed) /* keep the consumer's pass */
        fprintf(B.out, " ");
    return 0;
}

/* B.trials runs of each, alternating, after one untimed run of each (the
 * first pass of a process over 1 GiB of the arena maps its pages: that is
 * not what is measured). */
static int modin_measure(void)
{
    if (G.modin_done)
        return G.modin_done > 0 ? 0 : check_failed("%s", G.modin_err);
    double f, t, p;
    int rc = have_tasks();
    if (rc == 0)
        rc = modin_run(0, MODIN_PARTS, &f, &t, &p);
    if (rc == 0)
        rc = modin_run(1, MODIN_PARTS, &f, &t, &p);
    for (int k = 0; rc == 0 && k < B.trials; k++) {
        for (int stream = 0; rc == 0 && stream < 2; stream++) {
            rc = modin_run(stream, MODIN_PARTS, &f, &t, &p);
            int base = stream ? M_STREAM_FIRST : M_LIST_FIRST;
            if (rc == 0) {
                G.v[base][G.n[base]++] = f;
                G.v[base + 1][G.n[base + 1]++] = t;
                G.v[base + 2][G.n[base + 2]++] = p;
            }
        }
    }
    G.modin_done = rc == 0 ? 1 : -1;
    if (rc != 0)
        snprintf(G.modin_err, sizeof(G.modin_err), "%s", B.err);
    return rc;
}

/* ------------------------------------------------------------ dedup */

static int dedup_run(unsigned char *buf, double *total, double *peak_mib)
{
    rayc_ref out[DEDUP_TASKS];
    uint64_t peak = 0;
    int rc = gen_store_stats(1, NULL, NULL);
    if (rc != 0)
        return rc;
    double t0 = now_s();
    int n = 0;
    for (; n < DEDUP_TASKS && rc == 0; n++) {
        rayc_arg a = RAYC_VAL(buf, DEDUP_SIZE);
        if ((rc = rayc_submit("sample", &a, 1, NULL, &out[n])) != 0) {
            fail(rc, "rayc_submit(sample)");
            break;
        }
    }
    uint64_t first = 0;
    for (int i = 0; i < n; i++) {
        rayc_value v;
        int grc = rc == 0 ? rayc_get(&out[i], 1, &v, CALL_TIMEOUT_MS) : -1;
        if (grc == 0) {
            uint64_t h;
            memcpy(&h, v.data, sizeof(h));
            if (i == 0)
                first = h;
            else if (h != first)
                rc = check_failed("task %d saw other bytes", i);
            rayc_value_release(&v);
        } else if (rc == 0) {
            rc = fail(grc, "rayc_get(sample)");
        }
        rayc_ref_release(out[i]);
    }
    if (rc != 0)
        return rc;
    *total = now_s() - t0;
    if ((rc = gen_store_stats(0, NULL, &peak)) != 0)
        return rc;
    *peak_mib = (double)peak / MIB_F;
    return 0;
}

static int dedup_measure(void)
{
    if (G.dedup_done)
        return G.dedup_done > 0 ? 0 : check_failed("%s", G.dedup_err);
    unsigned char *buf = malloc(DEDUP_SIZE);
    int rc = buf ? 0 : check_failed("out of memory for 100 MiB");
    if (rc == 0)
        rc = have_tasks();
    for (size_t i = 0; rc == 0 && i < DEDUP_SIZE; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 12));
    for (int k = 0; rc == 0 && k < B.trials; k++) {
        double t, p;
        buf[0] = (unsigned char)k; /* each trial another value: nothing left from the last */
        rc = dedup_run(buf, &t, &p);
        if (rc == 0) {
            G.v[M_DEDUP_TOTAL][G.n[M_DEDUP_TOTAL]++] = t;
            G.v[M_DEDUP_PEAK][G.n[M_DEDUP_PEAK]++] = p;
        }
    }
    free(buf);
    G.dedup_done = rc == 0 ? 1 : -1;
    if (rc != 0)
        snprintf(G.dedup_err, sizeof(G.dedup_err), "%s", B.err);
    return rc;
}

/* ------------------------------------------------------------ the rows */

/* A measured row (K_MEASURE): setup measures its experiment once (all its
 * rows' figures), run hands out trial t's figure of one metric. */
typedef struct {
    int metric, next;
} gen_row;

static gen_row gen_rows[M_METRICS];

static int gen_row_setup(void **st, int metric)
{
    int rc = metric >= M_DEDUP_PEAK ? dedup_measure() : modin_measure();
    gen_rows[metric] = (gen_row){metric, 0};
    *st = &gen_rows[metric];
    return rc;
}

static int gen_row_value(void *p, double *value)
{
    gen_row *r = p;
    if (r->next >= G.n[r->metric])
        return check_failed("no figure for trial %d", r->next);
    *value = G.v[r->metric][r->next++];
    return 0;
}

#define GEN_ROW_SETUP(name, metric)                                                                \
    static int name(void **st)                                                                     \
    {                                                                                              \
        return gen_row_setup(st, metric);                                                          \
    }
GEN_ROW_SETUP(setup_modin_list_first, M_LIST_FIRST)
GEN_ROW_SETUP(setup_modin_list_total, M_LIST_TOTAL)
GEN_ROW_SETUP(setup_modin_list_peak, M_LIST_PEAK)
GEN_ROW_SETUP(setup_modin_stream_first, M_STREAM_FIRST)
GEN_ROW_SETUP(setup_modin_stream_total, M_STREAM_TOTAL)
GEN_ROW_SETUP(setup_modin_stream_peak, M_STREAM_PEAK)
GEN_ROW_SETUP(setup_dedup_peak, M_DEDUP_PEAK)
GEN_ROW_SETUP(setup_dedup_total, M_DEDUP_TOTAL)

#endif
