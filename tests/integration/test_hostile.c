/* test_hostile.c -- hostile peers against live daemons (issue 13): what an
 * unauthenticated client sends before its handshake is small, of the one
 * expected type, and bounded in time, on the GCS's TCP port, the raylet's
 * TCP port and the raylet's Unix socket; after every probe the daemons still
 * serve; a local client cannot submit a task in another client's name, nor
 * make the raylet hold more than a bounded number of entries for ids it
 * waits for (and they go with its connection). The limits themselves are
 * unit-tested in test_conn_limits.c and test_plasma_limits.c. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "rayc.h"
#include "sha256.h"
#include "util.h"

TestSuite(hostile, .init = harness_setup, .fini = harness_teardown, .timeout = 180);

/* The raylet's TCP port, from its node's address in the GCS. */
static int raylet_tcp_port(harness_cluster *c)
{
    Rpc__ListNodesReply *r = harness_list_nodes(c);
    cr_assert_not_null(r);
    cr_assert_eq(r->n_nodes, 1);
    const char *colon = strrchr(r->nodes[0]->address, ':');
    cr_assert_not_null(colon);
    int port = atoi(colon + 1);
    msg_free(&r->base);
    return port;
}

static void header(uint8_t out[FRAME_HDR_SIZE], uint16_t type, uint32_t len)
{
    frame_hdr_encode(out, type, len);
}

Test(hostile, big_frames_before_the_handshake_are_refused_at_once)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    uint8_t hdr[FRAME_HDR_SIZE];
    header(hdr, MSG_HANDSHAKE, 64u << 20); /* announces 64 MiB, sends nothing more */
    /* Before: the daemon reserved 64 MiB and waited for the rest forever. */
    cr_assert(harness_send_garbage_tcp(c.port, hdr, sizeof(hdr), 3000), "GCS kept the connection");
    cr_assert(harness_send_garbage_tcp(raylet_tcp_port(&c), hdr, sizeof(hdr), 3000),
              "raylet TCP kept the connection");
    cr_assert(harness_send_garbage_unix(r->socket, hdr, sizeof(hdr), 3000),
              "raylet socket kept the connection");
    cr_assert_eq(harness_count_nodes(&c, RPC__NODE_STATE__NODE_ALIVE), 1, "still serving");
}

Test(hostile, other_frames_before_the_handshake_are_refused)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    uint8_t frame[FRAME_HDR_SIZE + 2] = {0};
    header(frame, MSG_LIST_NODES_REQ, 2);
    cr_assert(harness_send_garbage_tcp(c.port, frame, sizeof(frame), 3000));
    header(frame, MSG_STORE_STATS_REQ, 2);
    cr_assert(harness_send_garbage_unix(r->socket, frame, sizeof(frame), 3000));
    cr_assert_eq(harness_count_nodes(&c, RPC__NODE_STATE__NODE_ALIVE), 1, "still serving");
}

Test(hostile, silent_peers_are_closed_at_the_handshake_deadline)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    /* Nothing sent: the deadline (10 s) closes both. */
    cr_assert(harness_send_garbage_tcp(c.port, "", 0, 30000), "GCS kept a silent peer");
    cr_assert(harness_send_garbage_unix(r->socket, "", 0, 30000), "raylet kept a silent peer");
    cr_assert_eq(harness_count_nodes(&c, RPC__NODE_STATE__NODE_ALIVE), 1, "still serving");
}

/* The closing of a connection: every frame read until it ends. true when the
 * raylet closed it within timeout_ms. */
static bool closed_by_peer(bconn *b, int timeout_ms)
{
    for (;;) {
        uint16_t type;
        ProtobufCMessage *m = NULL;
        int rc = bconn_recv(b, &type, &m, timeout_ms);
        if (rc == RAYC_ECONN)
            return true;
        if (rc != 0)
            return false;
        msg_free(m);
    }
}

Test(hostile, a_local_client_submits_only_in_its_own_name)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    bconn *b = harness_local_connect(r, RPC__ROLE__ROLE_DRIVER);
    cr_assert_not_null(b);
    task_id_t task = task_id_random(job_id_from_int(1));
    worker_id_t victim = worker_id_random();
    Rpc__TaskSpec spec = RPC__TASK_SPEC__INIT;
    spec.task_id = (ProtobufCBinaryData){TASK_ID_SIZE, task.b};
    spec.job_id = 1;
    spec.function = "nap";
    spec.num_returns = 1;
    spec.owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, victim.b};
    Rpc__SubmitTask sub = RPC__SUBMIT_TASK__INIT;
    sub.spec = &spec;
    cr_assert_eq(bconn_send(b, MSG_SUBMIT_TASK, &sub.base), 0);
    cr_assert_eq(bconn_flush(b), 0);
    /* Before: accepted; the returns would have been the victim's. */
    cr_assert(closed_by_peer(b, 10000), "the raylet kept a client that submits as another");
    bconn_close(b);
    Rpc__StoreStatsReply *st = harness_store_stats(r);
    cr_assert_not_null(st, "the raylet still serves");
    msg_free(&st->base);
}

/* Anonymous resident memory of a process in KiB (not the object store's
 * shared pages, which the pre-fault thread fills); -1 when unreadable. */
static long rss_anon_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *s = read_file(path, NULL);
    const char *p = s ? strstr(s, "RssAnon:") : NULL;
    long kib = p ? atol(p + strlen("RssAnon:")) : -1;
    free(s);
    return kib;
}

/* A GET of n random ids (never created), waiting forever. */
static Rpc__GetObjectsRequest *get_of_random_ids(size_t n)
{
    Rpc__GetObjectsRequest *req = calloc(1, sizeof(*req));
    ProtobufCBinaryData *b = calloc(n, sizeof(*b));
    uint8_t *ids = malloc(n * OBJECT_ID_SIZE);
    cr_assert(req && b && ids);
    id_random_bytes(ids, n * OBJECT_ID_SIZE);
    for (size_t i = 0; i < n; i++)
        b[i] = (ProtobufCBinaryData){OBJECT_ID_SIZE, ids + i * OBJECT_ID_SIZE};
    rpc__get_objects_request__init(req);
    req->n_object_ids = n;
    req->object_ids = b;
    req->timeout_ms = -1;
    return req;
}

static void free_get(Rpc__GetObjectsRequest *req)
{
    free(req->object_ids[0].data);
    free(req->object_ids);
    free(req);
}

/* A GET the raylet must refuse at once: the reply's status message. */
static void get_refused(bconn *b, size_t n, const char *why)
{
    Rpc__GetObjectsRequest *req = get_of_random_ids(n);
    req->req_id = n;
    ProtobufCMessage *m = NULL;
    int rc = bconn_call(b, MSG_GET_OBJECTS_REQ, &req->base, MSG_GET_OBJECTS_REPLY, &m, 20000);
    free_get(req);
    cr_assert_eq(rc, 0, "no answer to a get of %zu unknown ids: %s", n, rayc_strerror(rc));
    Rpc__GetObjectsReply *r = (Rpc__GetObjectsReply *)m;
    cr_assert_eq(r->status->code, RAYC_EINVAL);
    cr_assert(strstr(r->status->message, why) != NULL, "%s", r->status->message);
    msg_free(m);
}

struct rss_arg {
    pid_t pid;
    long below_kib, now_kib;
};

static bool rss_below(void *arg)
{
    struct rss_arg *a = arg;
    a->now_kib = rss_anon_kib(a->pid);
    return a->now_kib >= 0 && a->now_kib < a->below_kib;
}

Test(hostile, gets_of_unknown_ids_are_bounded_and_released)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    pid_t pid = r->proc->pid;
    bconn *b = harness_local_connect(r, RPC__ROLE__ROLE_DRIVER);
    cr_assert_not_null(b);
    long base = rss_anon_kib(pid);
    cr_assert_gt(base, 0);
    /* Before: one 15 MB get of 500k ids took the raylet +151 MB. */
    get_refused(b, 500000, "at most 65536 objects");
    for (int i = 0; i < 2; i++) { /* the most one client may wait for */
        Rpc__GetObjectsRequest *req = get_of_random_ids(MSG_STORE_MAX_IDS);
        cr_assert_eq(bconn_send(b, MSG_GET_OBJECTS_REQ, &req->base), 0);
        free_get(req);
    }
    get_refused(b, MSG_STORE_MAX_IDS, "pending gets and waits");
    Rpc__StoreStatsReply *st = harness_store_stats(r);
    cr_assert_not_null(st, "the raylet still serves");
    msg_free(&st->base);
    /* Sizes hold for the normal allocator only (ASan pads and quarantines). */
    bool sizes = getenv("RAYC_TEST_SANITIZER") == NULL;
    long peak = rss_anon_kib(pid);
    cr_log_info("raylet: %ld KiB before, +%ld KiB with the gets", base, peak - base);
    cr_assert(!sizes || peak - base < (64 << 10), "the raylet grew by %ld KiB", peak - base);
    bconn_close(b);
    /* The waiting entries go with the connection. */
    struct rss_arg a = {pid, base + (16 << 10), 0};
    cr_assert(!sizes || harness_wait_until(rss_below, &a, 10000),
              "after the close the raylet holds %ld KiB more than before", a.now_kib - base);
}

struct pull_arg {
    harness_raylet *r;
    bconn *b;
    char log[HARNESS_PATH + 32];
};

/* Ask for one pull too many; true once the raylet (knowing another node, so
 * that it pulls at all) said it refused it. */
static bool big_pull_refused(void *arg)
{
    struct pull_arg *a = arg;
    Rpc__GetObjectsRequest *ids = get_of_random_ids(MSG_STORE_MAX_IDS + 1);
    Rpc__PullObjects p = RPC__PULL_OBJECTS__INIT;
    p.n_object_ids = ids->n_object_ids;
    p.object_ids = ids->object_ids;
    cr_assert_eq(bconn_send(a->b, MSG_PULL_OBJECTS, &p.base), 0);
    free_get(ids);
    Rpc__StoreStatsRequest req = RPC__STORE_STATS_REQUEST__INIT; /* handled after the pull */
    ProtobufCMessage *m = NULL;
    cr_assert_eq(bconn_call(a->b, MSG_STORE_STATS_REQ, &req.base, MSG_STORE_STATS_REPLY, &m, 20000),
                 0);
    msg_free(m);
    return harness_file_contains(a->log, "objects at once (at most 65536): none pulled");
}

Test(hostile, a_pull_of_too_many_ids_is_refused)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    harness_raylet_start(&c, NULL);
    struct pull_arg a = {.r = r, .b = harness_local_connect(r, RPC__ROLE__ROLE_DRIVER)};
    cr_assert_not_null(a.b);
    snprintf(a.log, sizeof(a.log), "%s/logs/raylet.out", r->session);
    /* Before: a pull record and GCS lookups for every id, for seconds. */
    cr_assert(harness_wait_until(big_pull_refused, &a, 30000), "no refusal in %s", a.log);
    bconn_close(a.b);
    cr_assert_eq(harness_count_nodes(&c, RPC__NODE_STATE__NODE_ALIVE), 2, "still serving");
}

/* ------------------------------------------------------------ jobs and code */

static const char *examples_lib(const char *name)
{
    static char path[2][HARNESS_PATH];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof(path[k]), "%s/examples/lib%s_tasks.so", harness_build(), name);
    cr_assert(access(path[k], R_OK) == 0, "%s missing", path[k]);
    return path[k];
}

/* An in-process driver of cluster c that ships lib. */
static void driver_init(const harness_cluster *c, const char *lib)
{
    const char *code[] = {lib, NULL};
    harness_driver_init(c, code, NULL);
}

/* Run where() (mnlib) and return its status; *job is the driver's job id. */
static int run_where(uint32_t *job, char *err, size_t len)
{
    rayc_ref ref;
    int rc = rayc_submit("where", NULL, 0, NULL, &ref);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit: %s", rayc_last_error());
    object_id_t oid;
    memcpy(oid.b, ref.id, OBJECT_ID_SIZE);
    task_id_t t = object_id_task(&oid);
    if (job)
        *job = job_id_to_int(task_id_job(&t));
    rayc_value v;
    rc = rayc_get(&ref, 1, &v, 120000);
    snprintf(err, len, "%s", rc ? rayc_last_error() : "");
    if (rc == 0)
        rayc_value_release(&v);
    rayc_ref_release(ref);
    return rc;
}

static void send_job_config(bconn *b, uint32_t job, char **hashes, size_t n)
{
    Rpc__JobConfig jc = RPC__JOB_CONFIG__INIT;
    jc.job_id = job;
    jc.code_hashes = hashes;
    jc.n_code_hashes = n;
    cr_assert_eq(bconn_send(b, MSG_JOB_CONFIG, &jc.base), 0);
    cr_assert_eq(bconn_flush(b), 0);
}

Test(hostile, another_drivers_job_config_is_refused_and_the_job_lives_on)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    driver_init(&c, examples_lib("mnlib"));
    uint32_t job;
    char err[512];
    cr_assert_eq(run_where(&job, err, sizeof(err)), RAYC_OK, "%s", err);
    /* A local client says the driver's job is its own. Before: taken at its
     * word; its exit then ended the job here (workers killed, job gone). */
    bconn *b = harness_local_connect(r, RPC__ROLE__ROLE_DRIVER);
    cr_assert_not_null(b);
    send_job_config(b, job, NULL, 0);
    cr_assert(closed_by_peer(b, 20000), "the raylet kept a client claiming another's job");
    bconn_close(b);
    cr_assert_eq(run_where(NULL, err, sizeof(err)), RAYC_OK, "the job did not survive: %s", err);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}

/* Register a job at the GCS as driver `me` with these code hashes. */
static uint32_t add_job_as(const harness_cluster *c, const worker_id_t *me, char **hashes, size_t n)
{
    int code;
    char err[256];
    bconn *g = harness_connect(c, NULL, &code, err, sizeof(err));
    cr_assert_not_null(g, "%s", err);
    Rpc__JobInfo ji = RPC__JOB_INFO__INIT;
    ji.driver_id = (ProtobufCBinaryData){WORKER_ID_SIZE, (uint8_t *)me->b};
    ji.code_hashes = hashes;
    ji.n_code_hashes = n;
    Rpc__AddJobRequest req = RPC__ADD_JOB_REQUEST__INIT;
    req.req_id = 1;
    req.job = &ji;
    ProtobufCMessage *m = NULL;
    cr_assert_eq(bconn_call(g, MSG_ADD_JOB_REQ, &req.base, MSG_ADD_JOB_REPLY, &m, 10000), 0);
    Rpc__AddJobReply *rep = (Rpc__AddJobReply *)m;
    cr_assert_eq(rep->status->code, 0, "%s", rep->status->message);
    uint32_t job = rep->job_id;
    msg_free(m);
    bconn_close(g);
    return job;
}

/* A local client with worker id `me`. */
static bconn *local_as(const harness_raylet *r, const worker_id_t *me)
{
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_DRIVER;
    hs.id = (ProtobufCBinaryData){WORKER_ID_SIZE, (uint8_t *)me->b};
    hs.name = "hostile";
    int fds[2], nfds = 0, code = 0;
    char err[256];
    bconn *b = bconn_open(NULL, 0, r->socket, NULL, &hs, 5000, NULL, fds, 2, &nfds, &code, err,
                          sizeof(err));
    cr_assert_not_null(b, "%s", err);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return b;
}

Test(hostile, a_job_config_must_match_the_gcs_job_table)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    worker_id_t me = worker_id_random();
    char *none[] = {NULL};
    uint32_t job = add_job_as(&c, &me, none, 0);
    char other[2 * 32 + 1];
    memset(other, 'a', 64);
    other[64] = '\0';
    char *hashes[] = {other};
    struct {
        uint32_t job;
        char **hashes;
        size_t n;
        const char *what;
    } lies[] = {
        {job, hashes, 1, "other code packages than the job's"},
        {job + 1000, NULL, 0, "a job the GCS does not know"},
    };
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        bconn *b = local_as(r, &me);
        send_job_config(b, lies[i].job, lies[i].hashes, lies[i].n);
        /* Before: accepted as sent. */
        cr_assert(closed_by_peer(b, 20000), "the raylet accepted %s", lies[i].what);
        bconn_close(b);
    }
    /* The truth is accepted: every driver of the other suites says it. */
}

/* SHA-256 of a file in hex: the name of the code package it is. */
static void package_hash(const char *path, char hex[2 * SHA256_SIZE + 1])
{
    size_t len;
    char *data = read_file(path, &len);
    cr_assert_not_null(data, "cannot read %s", path);
    uint8_t d[SHA256_SIZE];
    sha256(data, len, d);
    id_hex(d, SHA256_SIZE, hex);
    free(data);
}

Test(hostile, a_cached_package_that_does_not_match_its_hash_is_fetched_again)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    const char *lib = examples_lib("mnlib");
    char hash[2 * SHA256_SIZE + 1], dir[HARNESS_PATH + 8], path[HARNESS_PATH + 96];
    package_hash(lib, hash);
    /* Another library where the raylet caches mnlib: before, workers ran it. */
    snprintf(dir, sizeof(dir), "%s/code", r->session);
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/%s.so", dir, hash);
    size_t len;
    char *other = read_file(examples_lib("testlib"), &len);
    cr_assert_not_null(other);
    cr_assert_eq(write_file(path, other, len, 0700), 0);
    free(other);
    driver_init(&c, lib);
    char err[512];
    cr_assert_eq(run_where(NULL, err, sizeof(err)), RAYC_OK, "%s", err);
    char now[2 * SHA256_SIZE + 1];
    package_hash(path, now);
    cr_assert_str_eq(now, hash, "the cache holds mnlib again");
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}

/* Write value under key of the GCS's Redis table `table`, behind its back. */
static void redis_hset(const harness_cluster *c, const char *table, const void *key, size_t klen,
                       const void *val, size_t vlen)
{
    char *pw = read_file(c->redis_password_file, NULL);
    cr_assert_not_null(pw);
    rstrip(pw);
    redisContext *rc = redisConnectUnix(c->redis_socket);
    cr_assert(rc != NULL && rc->err == 0, "redis: %s", rc ? rc->errstr : "no memory");
    redisReply *rep = redisCommand(rc, "AUTH %s", pw);
    cr_assert(rep != NULL && rep->type != REDIS_REPLY_ERROR, "redis AUTH refused");
    freeReplyObject(rep);
    rep = redisCommand(rc, "HSET rayc:%s %b %b", table, key, klen, val, vlen);
    cr_assert(rep != NULL && rep->type != REDIS_REPLY_ERROR, "redis HSET refused");
    freeReplyObject(rep);
    redisFree(rc);
    free(pw);
}

Test(hostile, a_package_that_does_not_match_its_hash_is_not_run)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    const char *lib = examples_lib("mnlib");
    char hash[2 * SHA256_SIZE + 1];
    package_hash(lib, hash);
    /* mnlib's name, another library's bytes, in the GCS's storage (the GCS
     * itself refuses such a put): what a GCS restart then serves. */
    char key[5 + 2 * SHA256_SIZE];
    memcpy(key, "code", 5); /* "code\0<hash>" */
    memcpy(key + 5, hash, 2 * SHA256_SIZE);
    size_t len;
    char *other = read_file(examples_lib("testlib"), &len);
    cr_assert_not_null(other);
    redis_hset(&c, "kv", key, sizeof(key), other, len);
    free(other);
    harness_gcs_restart(&c);
    harness_raylet_start(&c, NULL);
    driver_init(&c, lib); /* finds the package there: no upload */
    char err[512];
    /* Before: the raylet cached the other library and workers loaded it. */
    cr_assert_neq(run_where(NULL, err, sizeof(err)), RAYC_OK, "a task ran");
    cr_assert(strstr(err, "does not match its hash") != NULL, "%s", err);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}

/* ------------------------------------------------------------ temp dirs */

/* Issue 13: another user's temp root (say, a /tmp/rayc made before ours)
 * with a session_latest naming their cluster and token. Before, a driver
 * with no address followed it and ran its jobs there. */
Test(hostile, a_driver_does_not_follow_another_users_session)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to make files of another user");
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    char root[HARNESS_PATH], session[HARNESS_PATH + 32], path[HARNESS_PATH + 64];
    snprintf(root, sizeof(root), "%s/theirs", harness_dir());
    snprintf(session, sizeof(session), "%s/session_1", root);
    cr_assert_eq(mkdir(root, 0755), 0);
    cr_assert_eq(mkdir(session, 0755), 0);
    snprintf(path, sizeof(path), "%s/gcs_address", session);
    cr_assert_eq(write_file(path, c.address, strlen(c.address), 0644), 0);
    snprintf(path, sizeof(path), "%s/token", session);
    cr_assert_eq(write_file(path, c.token, strlen(c.token), 0644), 0);
    const char *names[] = {"gcs_address", "token"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", session, names[i]);
        cr_assert_eq(chown(path, 65534, 65534), 0);
    }
    snprintf(path, sizeof(path), "%s/session_latest", root);
    cr_assert_eq(symlink(session, path), 0);
    cr_assert_eq(lchown(path, 65534, 65534), 0);
    cr_assert_eq(chown(session, 65534, 65534), 0);
    cr_assert_eq(chown(root, 65534, 65534), 0);

    setenv("RAYC_TEMP_DIR", root, 1);
    unsetenv("RAYC_ADDRESS");
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_TOKEN_FILE");
    int rc = rayc_init(NULL);
    if (rc == RAYC_OK)
        rayc_shutdown();
    cr_assert_neq(rc, RAYC_OK, "the driver joined the cluster of another user's session");
    cr_assert(strstr(rayc_last_error(), "belongs to another user") != NULL, "%s",
              rayc_last_error());
}

/* ------------------------------------------------------------ object owners */

struct objects_arg {
    const harness_raylet *r;
    uint64_t want, now;
};

static bool store_objects_are(void *arg)
{
    struct objects_arg *a = arg;
    Rpc__StoreStatsReply *st = harness_store_stats(a->r);
    cr_assert_not_null(st, "the raylet does not answer");
    a->now = st->objects;
    msg_free(&st->base);
    return a->now == a->want;
}

/* A worker's ObjectOwner frame (an actor call's returns change hands) names
 * an object of the driver's. Before: taken at its word, the object became
 * the named owner's: the driver's delete was refused from then on and the
 * object outlived it. Now only what the worker owns changes hands. */
Test(hostile, a_worker_gives_away_only_objects_it_owns)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    driver_init(&c, examples_lib("testlib"));
    struct objects_arg a = {.r = r};
    (void)store_objects_are(&a); /* a.now: objects before */
    uint64_t before = a.now;
    /* the driver's object: in the store (larger than the inline maximum) */
    size_t size = 1 << 20;
    void *buf;
    rayc_ref x;
    cr_assert_eq(rayc_put_alloc(size, &buf, &x), RAYC_OK, "%s", rayc_last_error());
    memset(buf, 0x5a, size);
    cr_assert_eq(rayc_put_seal(x), RAYC_OK);
    worker_id_t thief = worker_id_random();
    rayc_arg args[2] = {RAYC_VAL(x.id, OBJECT_ID_SIZE), RAYC_VAL(thief.b, WORKER_ID_SIZE)};
    rayc_ref ref;
    cr_assert_eq(rayc_submit("forge_owner", args, 2, NULL, &ref), RAYC_OK, "%s", rayc_last_error());
    rayc_value v;
    int rc = rayc_get(&ref, 1, &v, 60000);
    cr_assert_eq(rc, RAYC_OK, "forge_owner: %s: %s", rayc_strerror(rc), rayc_last_error());
    rayc_value_release(&v);
    rayc_ref_release(ref);
    char log[HARNESS_PATH + 32];
    snprintf(log, sizeof(log), "%s/logs/raylet.out", r->session);
    /* Still the driver's: its release frees it. */
    rayc_ref_release(x);
    a.want = before;
    cr_assert(harness_wait_until(store_objects_are, &a, 15000),
              "the driver's object stayed after its release (%llu objects, %llu before)",
              (unsigned long long)a.now, (unsigned long long)before);
    cr_assert(harness_file_contains(log, "objects the worker does not own here: not given away"),
              "no refusal logged in %s", log);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}
