/*
 * test_task_events.c -- a process's task event buffer (worker/task_events.h)
 * against a fake GCS: a thread on a Unix socket that does the handshake and
 * feeds every TaskEventBatch into the GCS's own table (gcs/gcs_task.h), so
 * the test reads what the GCS would keep: one record per attempt, folded
 * from the owner's updates, drops counted per job, the running probe.
 * Also prints what recording costs per task on this machine.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../gcs/gcs_task.h"
#include "../../worker/task_events.h"
#include "frame.h"
#include "rayc.h"
#include "util.h"

/* ------------------------------------------------------------ fake GCS */

static struct {
    pthread_mutex_t mu;
    gcs_task_table *table;
    int lfd;
    pthread_t thread;
    uint64_t batches;
    uint64_t received; /* attempt records, in all batches */
    char path[108];
} gcs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void send_msg(int fd, uint16_t type, const ProtobufCMessage *m)
{
    size_t len = msg_frame_size(m);
    uint8_t *buf = malloc(len);
    msg_encode(type, m, buf);
    cr_assert(write(fd, buf, len) == (ssize_t)len);
    free(buf);
}

static void *serve(void *arg)
{
    (void)arg;
    int fd = accept(gcs.lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    Rpc__Hello hello = RPC__HELLO__INIT;
    hello.version = MSG_PROTOCOL_VERSION;
    send_msg(fd, MSG_HELLO, &hello.base);
    frame_decoder d;
    frame_decoder_init(&d, 0);
    for (;;) {
        size_t avail;
        uint8_t *p = frame_decoder_space(&d, 1 << 16, &avail);
        ssize_t n = read(fd, p, avail);
        if (n <= 0)
            break;
        frame_decoder_commit(&d, (size_t)n);
        frame_t f;
        while (frame_decoder_next(&d, &f) == 1) {
            ProtobufCMessage *m = msg_unpack(f.type, f.payload, f.length);
            if (f.type == MSG_HANDSHAKE) {
                Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
                Rpc__Status st = RPC__STATUS__INIT;
                r.status = &st;
                send_msg(fd, MSG_HANDSHAKE_REPLY, &r.base);
            } else if (f.type == MSG_TASK_EVENTS && m) {
                pthread_mutex_lock(&gcs.mu);
                gcs_task_add_batch(gcs.table, (Rpc__TaskEventBatch *)m, NULL);
                gcs.batches++;
                gcs.received += ((Rpc__TaskEventBatch *)m)->task_ids.len / TASK_ID_SIZE;
                pthread_mutex_unlock(&gcs.mu);
            }
            msg_free(m);
        }
    }
    frame_decoder_free(&d);
    close(fd);
    return NULL;
}

static cw_conn *conn;
static tev_buffer *buf;

static cw_conn *the_conn(void *arg)
{
    (void)arg;
    return conn;
}
static node_id_t node;
static uint64_t base_us; /* the times of made-up TaskDones */

/* A buffer (max_records events per window) attached to a fresh fake GCS
 * whose table keeps per_job records per job (0: all). */
static void start_bounded(size_t max_records, size_t per_job)
{
    gcs.table = gcs_task_table_new(per_job, 0);
    snprintf(gcs.path, sizeof(gcs.path), "/tmp/tev-test-%d.sock", (int)getpid());
    unlink(gcs.path);
    gcs.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", gcs.path);
    cr_assert(bind(gcs.lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    cr_assert(listen(gcs.lfd, 1) == 0);
    pthread_create(&gcs.thread, NULL, serve, NULL);
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_DRIVER;
    int code;
    char err[256];
    bconn *b = bconn_open(NULL, 0, gcs.path, NULL, &hs, 5000, NULL, NULL, 0, NULL, &code, err,
                          sizeof(err));
    cr_assert_not_null(b, "%s", err);
    conn = cw_conn_new(b, NULL, NULL);
    tev_opts o = {.interval_ms = 50, .max_records = max_records};
    buf = tev_new(&o);
    cr_assert_not_null(buf);
    node = node_id_random();
    base_us = wall_us();
    cr_assert_eq(tev_attach(buf, the_conn, NULL, &node), 0);
}

static void start(size_t max_records)
{
    start_bounded(max_records, 0);
}

static void stop(void)
{
    tev_free(buf);
    buf = NULL;
    cw_conn_free(conn);
    pthread_join(gcs.thread, NULL);
    close(gcs.lfd);
    unlink(gcs.path);
    gcs_task_table_free(gcs.table);
    gcs.batches = gcs.received = 0;
}

TestSuite(task_events, .fini = stop, .timeout = 60);

/* ------------------------------------------------------------ helpers */

static Rpc__TaskSpec spec_of(const task_id_t *id, uint32_t attempt, const char *fn)
{
    Rpc__TaskSpec s = RPC__TASK_SPEC__INIT;
    s.task_id.data = (uint8_t *)id->b;
    s.task_id.len = TASK_ID_SIZE;
    s.attempt = attempt;
    s.function = (char *)fn;
    s.name = "";
    return s;
}

static Rpc__TaskDone done_of(const task_id_t *id, uint32_t attempt, Rpc__Status *st, int code,
                             const char *msg)
{
    rpc__status__init(st);
    st->code = code;
    st->message = (char *)msg;
    Rpc__TaskDone m = RPC__TASK_DONE__INIT;
    m.task_id.data = (uint8_t *)id->b;
    m.task_id.len = TASK_ID_SIZE;
    m.attempt = attempt;
    m.status = st;
    m.node_id.data = node.b;
    m.node_id.len = NODE_ID_SIZE;
    m.scheduled_us = base_us;
    m.start_us = m.scheduled_us + 10;
    m.end_us = m.scheduled_us + 20;
    m.worker_pid = 4242;
    return m;
}

struct found {
    const task_id_t *id;
    uint32_t attempt;
    gcs_task_info info;
    char function[64], error[128];
    bool hit;
};

static bool find_cb(void *arg, const gcs_task_info *x)
{
    struct found *f = arg;
    if (memcmp(x->id.b, f->id->b, TASK_ID_SIZE) != 0 || x->attempt != f->attempt)
        return true;
    f->info = *x;
    snprintf(f->function, sizeof(f->function), "%s", x->function);
    snprintf(f->error, sizeof(f->error), "%s", x->error);
    f->hit = true;
    return false;
}

static struct found find(const task_id_t *id, uint32_t attempt)
{
    struct found f = {.id = id, .attempt = attempt};
    pthread_mutex_lock(&gcs.mu);
    gcs_task_walk(gcs.table, false, find_cb, &f);
    pthread_mutex_unlock(&gcs.mu);
    return f;
}

/* Wait until the fake GCS holds n records. */
static void wait_count(size_t n)
{
    tev_flush(buf);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&gcs.mu);
        size_t have = gcs_task_count(gcs.table);
        pthread_mutex_unlock(&gcs.mu);
        if (have >= n)
            return;
        usleep(10000);
    }
    cr_assert_fail("the fake GCS never got %zu records", n);
}

/* ------------------------------------------------------------ tests */

Test(task_events, the_updates_of_an_attempt_fold_into_one_record)
{
    start(0);
    job_id_t job = job_id_from_int(7);
    task_id_t ok = task_id_random(job), bad = task_id_random(job), dep = task_id_random(job);
    Rpc__Status st;
    Rpc__TaskSpec s = spec_of(&ok, 0, "inc");
    tev_submitted(buf, &s);
    Rpc__TaskDone d = done_of(&ok, 0, &st, RAYC_OK, "");
    tev_done(buf, &d, false);

    /* Attempt 0 fails and is retried; attempt 1 succeeds. */
    s = spec_of(&bad, 0, "flaky");
    tev_submitted(buf, &s);
    d = done_of(&bad, 0, &st, RAYC_ETASK, "flaky: no luck");
    tev_done(buf, &d, true);
    s = spec_of(&bad, 1, "flaky");
    tev_submitted(buf, &s);
    d = done_of(&bad, 1, &st, RAYC_OK, "");
    tev_done(buf, &d, false);

    /* Waits for an argument, then is cancelled before it was ever sent. */
    tev_owner_state(buf, &dep, 0, RPC__TASK_STATE__TASK_PENDING_ARGS, "add", "sum", 0, NULL);
    tev_owner_state(buf, &dep, 0, RPC__TASK_STATE__TASK_CANCELLED, NULL, NULL, RAYC_ECANCELLED,
                    "cancelled");
    wait_count(4);

    struct found f = find(&ok, 0);
    cr_assert(f.hit);
    cr_assert_eq(f.info.state, RPC__TASK_STATE__TASK_FINISHED);
    cr_assert_str_eq(f.function, "inc");
    cr_assert_eq(f.info.job_id, 7);
    cr_assert(f.info.submitted_us && f.info.scheduled_us && f.info.running_us && f.info.end_us);
    cr_assert(f.info.has_node && memcmp(f.info.node.b, node.b, NODE_ID_SIZE) == 0);
    cr_assert_eq(f.info.worker_pid, 4242);

    f = find(&bad, 0);
    cr_assert(f.hit && f.info.state == RPC__TASK_STATE__TASK_FAILED && f.info.retried);
    cr_assert_eq(f.info.error_code, RAYC_ETASK);
    cr_assert_str_eq(f.error, "flaky: no luck");
    f = find(&bad, 1);
    cr_assert(f.hit && f.info.state == RPC__TASK_STATE__TASK_FINISHED && !f.info.retried);
    cr_assert_str_eq(f.function, "flaky");

    f = find(&dep, 0);
    cr_assert(f.hit && f.info.state == RPC__TASK_STATE__TASK_CANCELLED);
    cr_assert(f.info.pending_args_us && f.info.end_us && !f.info.running_us);
    cr_assert_str_eq(f.function, "add");
    cr_assert_eq(gcs_task_count(gcs.table), 4);

    tev_stats stats;
    tev_get_stats(buf, &stats);
    cr_assert_eq(stats.sent, 4, "%llu", (unsigned long long)stats.sent);
    cr_assert_eq(stats.dropped, 0);
}

Test(task_events, a_full_window_counts_what_it_drops_per_job)
{
    start(4); /* events */
    job_id_t job = job_id_from_int(3);
    for (int i = 0; i < 10; i++) {
        task_id_t id = task_id_random(job);
        Rpc__TaskSpec s = spec_of(&id, 0, "noop");
        tev_submitted(buf, &s);
    }
    wait_count(1);
    tev_flush(buf);
    gcs_task_job_stats js[4];
    pthread_mutex_lock(&gcs.mu);
    size_t nj = gcs_task_jobs(gcs.table, js, 4);
    size_t kept = gcs_task_count(gcs.table);
    pthread_mutex_unlock(&gcs.mu);
    cr_assert_eq(nj, 1);
    cr_assert_eq(js[0].job_id, 3);
    cr_assert_eq(kept + js[0].lost, 10, "kept %zu, lost %llu", kept,
                 (unsigned long long)js[0].lost);
    cr_assert(js[0].lost >= 2, "lost %llu", (unsigned long long)js[0].lost);
}

Test(task_events, a_running_task_is_reported_once_while_it_runs)
{
    start(0);
    task_id_t id = task_id_random(job_id_from_int(1));
    Rpc__TaskSpec s = spec_of(&id, 2, "nap");
    uint64_t t0 = wall_us();
    tev_running(buf, &s, t0 - 5, t0);
    wait_count(1);
    struct found f = find(&id, 2);
    cr_assert(f.hit && f.info.state == RPC__TASK_STATE__TASK_RUNNING);
    cr_assert_eq(f.info.running_us, t0);
    cr_assert_eq(f.info.scheduled_us, t0 - 5);
    cr_assert_eq(f.info.worker_pid, (int32_t)getpid());
    cr_assert(f.info.has_node && memcmp(f.info.node.b, node.b, NODE_ID_SIZE) == 0);
    tev_running(buf, NULL, 0, 0);
    tev_flush(buf);
    tev_stats stats;
    tev_get_stats(buf, &stats);
    cr_assert_eq(stats.sent, 1);
}

Test(task_events, off_or_stopped_records_nothing)
{
    tev_opts off = {.interval_ms = 0};
    cr_assert_null(tev_new(&off));
    task_id_t id = task_id_random(job_id_from_int(1));
    Rpc__TaskSpec s = spec_of(&id, 0, "x");
    tev_submitted(NULL, &s); /* NULL: a no-op */
    tev_running(NULL, &s, 0, 0);
    tev_free(NULL);

    start(0);
    tev_stop(buf);
    tev_submitted(buf, &s);
    tev_stats stats;
    tev_get_stats(buf, &stats);
    cr_assert_eq(stats.sent + stats.dropped, 0);
}

static double thread_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static double process_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Not a speed assertion: prints what the owner's two updates per task cost
 * on the hot path, and the CPU of the whole process per task: the hot path,
 * the flusher and the fake GCS's thread, which decodes each batch into a
 * table bounded like the GCS's (10,000 records per job). */
Test(task_events, prints_the_cost_per_task)
{
    start_bounded(0, 10000);
    enum { N = 200000 };
    task_id_t *ids = malloc(N * sizeof(*ids));
    job_id_t job = job_id_from_int(2);
    for (int i = 0; i < N; i++)
        ids[i] = task_id_random(job);
    Rpc__Status st;
    double p0 = process_ns(), t0 = thread_ns();
    for (int i = 0; i < N; i += 1000) {
        for (int k = i; k < i + 1000; k++) {
            Rpc__TaskSpec s = spec_of(&ids[k], 0, "small_value");
            tev_submitted(buf, &s);
        }
        for (int k = i; k < i + 1000; k++) {
            Rpc__TaskDone d = done_of(&ids[k], 0, &st, RAYC_OK, "");
            tev_done(buf, &d, false);
        }
        /* 200,000 tasks a second, twice a busy driver's: windows stay their
         * usual size. */
        usleep(5000);
    }
    double t1 = thread_ns();
    tev_flush(buf); /* everything is written to the socket when it returns */
    tev_stats stats;
    tev_get_stats(buf, &stats);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&gcs.mu);
        bool all = gcs.received == stats.sent;
        pthread_mutex_unlock(&gcs.mu);
        if (all)
            break;
        usleep(10000);
    }
    double p1 = process_ns();
    fprintf(stderr,
            "task events: %.0f ns per task on the hot path (submitted + done), %.0f ns per task "
            "in all (flusher and fake GCS included)\n",
            (t1 - t0) / N, (p1 - p0) / N);
    free(ids);
    /* An attempt whose updates fell in two windows is sent twice. */
    cr_assert_eq(stats.dropped, 0);
    cr_assert(stats.sent >= N, "%llu", (unsigned long long)stats.sent);
    pthread_mutex_lock(&gcs.mu);
    cr_assert_eq(gcs.received, stats.sent);
    cr_assert_eq(gcs_task_count(gcs.table), 10000);
    pthread_mutex_unlock(&gcs.mu);
}
