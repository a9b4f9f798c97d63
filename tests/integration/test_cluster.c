/*
 * test_cluster.c -- the foundation's acceptance tests, on real processes:
 * redis-server, gcs_server and raylets on loopback (random free ports), and
 * the `rayc` CLI. Each test starts its own daemons in a private temp dir; the
 * harness stops them and checks that none survives.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "net.h"
#include "rayc.h"
#include "util.h"

#define ALIVE    RPC__NODE_STATE__NODE_ALIVE
#define DEAD     RPC__NODE_STATE__NODE_DEAD
#define SLACK_MS 15000 /* generous: a busy 2-vCPU machine; never a speed test */

TestSuite(cluster, .init = harness_setup, .fini = harness_teardown, .timeout = 180);
TestSuite(cli, .init = harness_setup, .fini = harness_teardown, .timeout = 180);

/* ------------------------------------------------------------ helpers */

struct count_arg {
    harness_cluster *c;
    int state, want;
};

static bool count_is(void *arg)
{
    struct count_arg *a = arg;
    return harness_count_nodes(a->c, a->state) == a->want;
}

static void wait_alive(harness_cluster *c, int n)
{
    struct count_arg a = {c, ALIVE, n};
    cr_assert(harness_wait_until(count_is, &a, SLACK_MS), "expected %d ALIVE nodes, have %d", n,
              harness_count_nodes(c, ALIVE));
}

static int count_lines(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        if (*p == '\n')
            n++;
    if (*s && s[strlen(s) - 1] != '\n')
        n++;
    return n;
}

/* One line "rayc: ..." / "rayc_ctl: ..." on stderr. */
static void assert_one_line(const char *err, const char *prefix)
{
    cr_assert_eq(count_lines(err), 1, "want one line on stderr, got: [%s]", err);
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "want '%s...', got: %s", prefix, err);
}

static int ctl(harness_cluster *c, char **out, char **err, const char *cmd, const char *extra)
{
    char addr[96], tok[HARNESS_PATH + 16];
    snprintf(addr, sizeof(addr), "--address=%s", c->address);
    snprintf(tok, sizeof(tok), "--token-file=%s", c->token_file);
    const char *args[] = {cmd, addr, tok, extra, NULL};
    return harness_ctl(out, err, args);
}

/* Lines of `rayc_ctl nodes --format=tsv` whose state column is `state`. */
static int tsv_count(const char *tsv, const char *state)
{
    int n = 0;
    char *copy = strdup(tsv), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f1 = strchr(line, '\t');
        char *f2 = f1 ? strchr(f1 + 1, '\t') : NULL;
        char *f3 = f2 ? strchr(f2 + 1, '\t') : NULL;
        if (f2 && f3 && (size_t)(f3 - f2 - 1) == strlen(state) &&
            strncmp(f2 + 1, state, strlen(state)) == 0)
            n++;
    }
    free(copy);
    return n;
}

static uint32_t add_job(harness_cluster *c, const char *entrypoint)
{
    int code;
    char err[256];
    bconn *b = harness_connect(c, NULL, &code, err, sizeof(err));
    cr_assert(b != NULL, "connect: %s", err);
    Rpc__JobInfo job = RPC__JOB_INFO__INIT;
    job.entrypoint = (char *)entrypoint;
    job.driver_pid = (int32_t)getpid();
    job.start_time_ms = wall_ms();
    Rpc__AddJobRequest req = RPC__ADD_JOB_REQUEST__INIT;
    req.req_id = 7;
    req.job = &job;
    ProtobufCMessage *m = NULL;
    cr_assert_eq(bconn_call(b, MSG_ADD_JOB_REQ, &req.base, MSG_ADD_JOB_REPLY, &m, 5000), 0);
    Rpc__AddJobReply *r = (Rpc__AddJobReply *)m;
    cr_assert(r->status == NULL || r->status->code == 0, "ADD_JOB refused: %s",
              r->status ? r->status->message : "");
    uint32_t id = r->job_id;
    cr_assert_neq(id, 0, "the GCS allocated job id 0");
    msg_free(m);
    bconn_close(b);
    return id;
}

static bool job_listed(harness_cluster *c, uint32_t id, const char *entrypoint)
{
    int code;
    char err[256];
    bconn *b = harness_connect(c, NULL, &code, err, sizeof(err));
    if (b == NULL)
        return false;
    Rpc__ListJobsRequest req = RPC__LIST_JOBS_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    bool found = false;
    if (bconn_call(b, MSG_LIST_JOBS_REQ, &req.base, MSG_LIST_JOBS_REPLY, &m, 5000) == 0) {
        Rpc__ListJobsReply *r = (Rpc__ListJobsReply *)m;
        for (size_t i = 0; i < r->n_jobs; i++)
            if (r->jobs[i]->job_id == id && strcmp(r->jobs[i]->entrypoint, entrypoint) == 0)
                found = true;
        msg_free(m);
    }
    bconn_close(b);
    return found;
}

/* ------------------------------------------------------------ cluster */

Test(cluster, three_nodes_alive)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    for (int i = 0; i < 3; i++)
        harness_raylet_start(&c, NULL);
    wait_alive(&c, 3);
    cr_assert_eq(harness_count_nodes(&c, DEAD), 0);

    char *out, *err;
    cr_assert_eq(ctl(&c, &out, &err, "nodes", "--format=tsv"), 0, "rayc_ctl nodes: %s", err);
    cr_assert_eq(tsv_count(out, "ALIVE"), 3, "tsv:\n%s", out);
    for (int i = 0; i < 3; i++)
        cr_assert(strstr(out, c.raylets[i].node_id) != NULL, "node %s missing:\n%s",
                  c.raylets[i].node_id, out);
    free(out);
    free(err);

    cr_assert_eq(ctl(&c, &out, &err, "status", NULL), 0, "rayc_ctl status: %s", err);
    cr_assert(strstr(out, "3 alive nodes, 0 dead") != NULL, "status:\n%s", out);
    free(out);
    free(err);
}

Test(cluster, killed_raylet_becomes_dead)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    harness_raylet *victim = harness_raylet_start(&c, NULL);
    wait_alive(&c, 2);

    uint64_t t0 = now_ms();
    harness_kill9(victim->proc);
    while (harness_node_state(&c, victim->node_id) != DEAD) {
        cr_assert(now_ms() - t0 < (uint64_t)(c.health_timeout_ms + SLACK_MS),
                  "node %s still not DEAD %llu ms after kill -9 (timeout %d ms)", victim->node_id,
                  (unsigned long long)(now_ms() - t0), c.health_timeout_ms);
        usleep(20000);
    }
    cr_assert_eq(harness_node_state(&c, c.raylets[0].node_id), ALIVE);
    cr_assert_eq(harness_count_nodes(&c, ALIVE), 1);
    cr_assert(harness_alive(c.gcs), "the GCS died");
}

struct hb_arg {
    harness_cluster *c;
    uint64_t after;
};

/* Every node ALIVE, ids unique, and each heartbeat newer than `after`. */
static bool reregistered(void *arg)
{
    struct hb_arg *a = arg;
    Rpc__ListNodesReply *r = harness_list_nodes(a->c);
    if (r == NULL)
        return false;
    bool ok = (int)r->n_nodes == a->c->nraylets;
    for (size_t i = 0; ok && i < r->n_nodes; i++)
        ok = r->nodes[i]->state == ALIVE && r->nodes[i]->last_heartbeat_ms > a->after;
    msg_free(&r->base);
    return ok;
}

Test(cluster, gcs_restart_keeps_state)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    harness_raylet_start(&c, NULL);
    wait_alive(&c, 2);
    uint32_t job = add_job(&c, "acceptance-driver");
    char *out, *err;
    cr_assert_eq(ctl(&c, &out, &err, "kv-put", "--ns=test"), 2, "kv-put without key must fail");
    free(out);
    free(err);
    {
        char addr[96], tok[HARNESS_PATH + 16];
        snprintf(addr, sizeof(addr), "--address=%s", c.address);
        snprintf(tok, sizeof(tok), "--token-file=%s", c.token_file);
        const char *put[] = {"kv-put", addr, tok, "--ns=test", "--key=answer", "--value=42", NULL};
        cr_assert_eq(harness_ctl(&out, &err, put), 0, "kv-put: %s", err);
        free(out);
        free(err);
    }

    harness_kill9(c.gcs);
    uint64_t restarted = wall_ms();
    harness_gcs_restart(&c);

    struct hb_arg a = {&c, restarted};
    cr_assert(harness_wait_until(reregistered, &a, c.health_timeout_ms + SLACK_MS),
              "raylets did not re-register with the restarted GCS");
    for (int i = 0; i < c.nraylets; i++)
        cr_assert_eq(harness_node_state(&c, c.raylets[i].node_id), ALIVE, "node %s",
                     c.raylets[i].node_id);
    cr_assert_eq(harness_count_nodes(&c, ALIVE), 2, "duplicate or missing nodes");
    cr_assert_eq(harness_count_nodes(&c, DEAD), 0);
    cr_assert(job_listed(&c, job, "acceptance-driver"), "job %u lost across the restart", job);

    char addr[96], tok[HARNESS_PATH + 16];
    snprintf(addr, sizeof(addr), "--address=%s", c.address);
    snprintf(tok, sizeof(tok), "--token-file=%s", c.token_file);
    const char *get[] = {"kv-get", addr, tok, "--ns=test", "--key=answer", NULL};
    cr_assert_eq(harness_ctl(&out, &err, get), 0, "kv-get: %s", err);
    cr_assert_str_eq(out, "42");
    free(out);
    free(err);
    for (int i = 0; i < c.nraylets; i++)
        cr_assert(harness_alive(c.raylets[i].proc), "raylet %d died", i);
}

Test(cluster, wrong_token_refused)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    char wrong[AUTH_TOKEN_LEN + 1];
    auth_token_generate(wrong);

    /* rayc_ctl ping: right token accepted, wrong one refused and named. */
    char *out, *err;
    cr_assert_eq(ctl(&c, &out, &err, "ping", NULL), 0, "ping: %s", err);
    free(out);
    free(err);
    char addr[96], tok[128];
    snprintf(addr, sizeof(addr), "--address=%s", c.address);
    snprintf(tok, sizeof(tok), "--token=%s", wrong);
    const char *ping[] = {"ping", addr, tok, NULL};
    cr_assert_neq(harness_ctl(&out, &err, ping), 0, "a wrong token was accepted");
    assert_one_line(err, "rayc_ctl: ");
    cr_assert(strstr(err, "token") != NULL, "reason does not name the token: %s", err);
    free(out);
    free(err);

    /* In-process handshake: RAYC_EAUTH. */
    int code = 0;
    char why[256];
    bconn *b = harness_connect(&c, wrong, &code, why, sizeof(why));
    cr_assert_null(b);
    cr_assert_eq(code, RAYC_EAUTH, "code %d (%s)", code, why);

    /* A raylet with a wrong token exits non-zero with one clear line. */
    harness_proc *r = harness_raylet_spawn(&c, wrong, NULL);
    int rc = harness_wait_exit(r, 30000 + SLACK_MS);
    cr_assert(rc > 0, "raylet with a wrong token: exit %d", rc);
    char *text = read_file(r->out, NULL);
    cr_assert_not_null(text);
    rstrip(text);
    assert_one_line(text, "raylet: ");
    cr_assert(strstr(text, "token") != NULL, "reason does not name the token: %s", text);
    free(text);

    /* rayc start --address with a bad token fails with one line. */
    const char *join[] = {"start", addr, tok, "--num-cpus=1", "--object-store-memory=32M", NULL};
    rc = harness_rayc(&out, &err, join);
    cr_assert_neq(rc, 0, "rayc start with a bad token succeeded:\n%s", out);
    assert_one_line(err, "rayc: ");
    cr_assert(strstr(err, "token") != NULL, "%s", err);
    free(out);
    free(err);

    cr_assert_eq(harness_count_nodes(&c, ALIVE), 1, "a refused raylet was registered");
}

/* Read the server's Hello: proof that a listener still serves. */
static bool hello_from_unix(const char *path)
{
    int fd = net_unix_connect(path);
    if (fd < 0)
        return false;
    uint8_t hdr[FRAME_HDR_SIZE];
    bool ok = net_read_all(fd, hdr, sizeof(hdr)) == 0;
    uint16_t type = 0;
    uint32_t len = 0;
    ok = ok && frame_hdr_decode(hdr, FRAME_DEFAULT_MAX, &type, &len) == 0 && type == MSG_HELLO;
    close(fd);
    return ok;
}

Test(cluster, garbage_is_refused)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    wait_alive(&c, 1);

    uint8_t junk[4096];
    id_random_bytes(junk, sizeof(junk));
    uint8_t big[FRAME_HDR_SIZE];
    frame_hdr_encode(big, MSG_HANDSHAKE, 0xfffffff0u); /* far over max_frame_bytes */
    uint8_t early[FRAME_HDR_SIZE + 4];                 /* a valid frame before the handshake */
    frame_hdr_encode(early, MSG_LIST_NODES_REQ, 4);
    memset(early + FRAME_HDR_SIZE, 0, 4);

    for (int round = 0; round < 3; round++) {
        cr_assert(harness_send_garbage_tcp(c.port, junk, sizeof(junk), 5000),
                  "GCS kept a connection that sent random bytes");
        cr_assert(harness_send_garbage_tcp(c.port, big, sizeof(big), 5000),
                  "GCS kept a connection that announced an oversized frame");
        cr_assert(harness_send_garbage_tcp(c.port, early, sizeof(early), 5000),
                  "GCS served a request before the handshake");
        cr_assert(harness_send_garbage_unix(r->socket, junk, sizeof(junk), 5000),
                  "raylet kept a connection that sent random bytes");
        cr_assert(harness_send_garbage_unix(r->socket, big, sizeof(big), 5000),
                  "raylet kept a connection that announced an oversized frame");
    }

    cr_assert(harness_alive(c.gcs), "the GCS died");
    cr_assert(harness_alive(r->proc), "the raylet died");
    int code;
    char why[256];
    bconn *b = harness_connect(&c, NULL, &code, why, sizeof(why));
    cr_assert_not_null(b, "GCS handshake after garbage: %s", why);
    bconn_close(b);
    cr_assert(hello_from_unix(r->socket), "the raylet's socket no longer serves");
    cr_assert_eq(harness_node_state(&c, r->node_id), ALIVE);
}

/* ------------------------------------------------------------ CLI */

static bool ours_gone(void *arg)
{
    (void)arg;
    return harness_survivors(NULL, 0) == 0;
}

Test(cli, start_join_status_stop)
{
    char port[32], node2[HARNESS_PATH + 32];
    int p = harness_free_port();
    snprintf(port, sizeof(port), "--port=%d", p);
    snprintf(node2, sizeof(node2), "--temp-dir=%s/node2", harness_dir());

    char *out, *err;
    const char *head[] = {"start", "--head", port, "--num-cpus=1", "--object-store-memory=32M",
                          NULL};
    cr_assert_eq(harness_rayc(&out, &err, head), 0, "rayc start --head: %s", err);
    char join_cmd[128];
    snprintf(join_cmd, sizeof(join_cmd), "rayc start --address=127.0.0.1:%d --token-file=", p);
    cr_assert(strstr(out, join_cmd) != NULL, "no join command in:\n%s", out);
    /* The token is never printed, nor put on a command line (ps shows it). */
    char tpath[HARNESS_PATH + 32];
    snprintf(tpath, sizeof(tpath), "%s/rayc/session_latest/token", harness_dir());
    char *token = read_file(tpath, NULL);
    cr_assert_not_null(token, "%s", tpath);
    rstrip(token);
    cr_assert(strstr(out, token) == NULL, "the banner shows the token:\n%s", out);
    free(token);
    free(out);
    free(err);

    /* The joining node takes the token of the local session (session_latest). */
    char addr[64];
    snprintf(addr, sizeof(addr), "--address=127.0.0.1:%d", p);
    const char *join[] = {"start", addr, node2, "--num-cpus=1", "--object-store-memory=32M", NULL};
    cr_assert_eq(harness_rayc(&out, &err, join), 0, "rayc start --address: %s", err);
    free(out);
    free(err);

    const char *status[] = {"status", addr, NULL};
    cr_assert_eq(harness_rayc(&out, &err, status), 0, "rayc status: %s", err);
    cr_assert(strstr(out, "2 alive nodes, 0 dead") != NULL, "status:\n%s", out);
    free(out);
    free(err);

    const char *stop[] = {"stop", NULL};
    cr_assert_eq(harness_rayc(&out, &err, stop), 0, "rayc stop: %s", err);
    free(out);
    free(err);
    char who[2048];
    cr_assert(harness_wait_until(ours_gone, NULL, 5000), "rayc stop left: %s",
              (harness_survivors(who, sizeof(who)), who));

    /* A second stop has nothing to do and says so. */
    cr_assert_eq(harness_rayc(&out, &err, stop), 0);
    cr_assert(strstr(out, "no running") != NULL, "%s", out);
    free(out);
    free(err);
}

Test(cli, bad_flags_one_line)
{
    const char *cases[][4] = {
        {"start", "--head", "--bogus", NULL},
        {"start", "--head", "--port", NULL},
        {"start", "--head", "--port=notaport", NULL},
        {"start", NULL},
        {"stop", "--now", NULL},
        {"status", "--verbose", NULL},
        {"frobnicate", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out, *err;
        int rc = harness_rayc(&out, &err, cases[i]);
        cr_assert_eq(rc, 2, "case %zu (%s %s): exit %d, want 2 (usage error)", i, cases[i][0],
                     cases[i][1] ? cases[i][1] : "", rc);
        assert_one_line(err, "rayc: ");
        free(out);
        free(err);
    }
    char *out, *err;
    const char *help[] = {"start", "--help", NULL};
    cr_assert_eq(harness_rayc(&out, &err, help), 0);
    cr_assert(strstr(out, "--num-cpus") != NULL);
    free(out);
    free(err);
    cr_assert_eq(harness_survivors(NULL, 0), 0);
}

Test(cli, port_in_use_one_line)
{
    int port = 0;
    int fd = net_tcp_listen("127.0.0.1", 0, 1, &port);
    cr_assert(fd >= 0);
    char flag[32];
    snprintf(flag, sizeof(flag), "--port=%d", port);
    const char *head[] = {"start", "--head", flag, NULL};
    char *out, *err;
    int rc = harness_rayc(&out, &err, head);
    close(fd);
    cr_assert_neq(rc, 0, "rayc start on a busy port succeeded:\n%s", out);
    assert_one_line(err, "rayc: ");
    cr_assert(strstr(err, "in use") != NULL, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(harness_survivors(NULL, 0), 0);
}

Test(cli, join_unreachable_head_one_line)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "--address=127.0.0.1:%d", harness_free_port());
    char tok[AUTH_TOKEN_LEN + 16];
    char t[AUTH_TOKEN_LEN + 1];
    auth_token_generate(t);
    snprintf(tok, sizeof(tok), "--token=%s", t);
    const char *join[] = {"start", addr, tok, NULL};
    char *out, *err;
    cr_assert_neq(harness_rayc(&out, &err, join), 0);
    assert_one_line(err, "rayc: ");
    cr_assert(strstr(err, "unreachable") != NULL, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(harness_survivors(NULL, 0), 0);
}

/* The plumbing that makes a daemon's sanitizer report fail its test: a
 * process the harness starts inherits ASAN_OPTIONS / UBSAN_OPTIONS whose
 * log_path is under the test dir, and what it writes there is found (the
 * teardown would fail the test on it; this test removes it first). */
Test(cluster, sanitizer_report_of_a_child_is_found)
{
    char msg[4096];
    cr_assert_eq(harness_sanitizer_reports(msg, sizeof(msg)), 0, "reports before anything ran:%s",
                 msg);
    char *argv[] = {"/bin/sh", "-c",
                    "for v in \"$ASAN_OPTIONS\" \"$UBSAN_OPTIONS\"; do "
                    "p=${v##*log_path=}; p=${p%%:*}; "
                    "echo \"==$$==ERROR: fake report for $p\" > \"$p.$$\"; done",
                    NULL};
    harness_proc *p = harness_spawn("fake_sanitized", NULL, argv);
    cr_assert_eq(harness_wait_exit(p, 10000), 0);
    cr_assert_eq(harness_sanitizer_reports(msg, sizeof(msg)), 2,
                 "want one ASan and one UBSan report:%s", msg);
    cr_assert(strstr(msg, "/san/asan") && strstr(msg, "/san/ubsan"), "%s", msg);
    harness_sanitizer_forget();
    cr_assert_eq(harness_sanitizer_reports(msg, sizeof(msg)), 0);
}

/* ------------------------------------------------------------ GCS and Redis */

/* Run a second gcs_server against this cluster's Redis with one flag
 * changed; it must fail to start with exit 1 and one line "gcs_server: ..."
 * on stderr (docs/contracts.md, docs/gcs.md). Returns that line. */
static char *gcs_start_fails(harness_cluster *c, const char *redis_flag, const char *pw_flag)
{
    char a[4][HARNESS_PATH + 64], session[HARNESS_PATH];
    snprintf(session, sizeof(session), "%s/gcs2", harness_dir());
    cr_assert(mkdir_p(session, 0700) == 0);
    snprintf(a[0], sizeof(a[0]), "%s/bin/gcs_server", harness_build());
    snprintf(a[1], sizeof(a[1]), "--port=%d", harness_free_port());
    snprintf(a[2], sizeof(a[2]), "--session-dir=%s", session);
    snprintf(a[3], sizeof(a[3]), "--token-file=%s", c->token_file);
    char *argv[] = {
        a[0], a[1], a[2], a[3], (char *)redis_flag, (char *)pw_flag, "--node-ip-address=127.0.0.1",
        NULL};
    char *out, *err;
    int rc = harness_run(argv, &out, &err, 60000);
    cr_assert_eq(rc, 1, "gcs_server %s %s: exit %d, want 1 (stderr: %s)", redis_flag, pw_flag, rc,
                 err);
    rstrip(err);
    assert_one_line(err, "gcs_server: ");
    free(out);
    return err;
}

Test(cluster, gcs_one_line_when_redis_unreachable)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    char sock[HARNESS_PATH + 32], pw[HARNESS_PATH + 32];
    snprintf(sock, sizeof(sock), "--redis-socket=%s/no-such-redis.sock", harness_dir());
    snprintf(pw, sizeof(pw), "--redis-password-file=%s", c.redis_password_file);
    char *err = gcs_start_fails(&c, sock, pw);
    cr_assert(strstr(err, "redis") || strstr(err, "Redis"), "the line does not name Redis: %s",
              err);
    free(err);
}

Test(cluster, gcs_one_line_when_redis_password_wrong)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    char wrong[HARNESS_PATH], sock[HARNESS_PATH + 32], pw[HARNESS_PATH + 32];
    snprintf(wrong, sizeof(wrong), "%s/wrong.password", harness_dir());
    cr_assert(write_file(wrong, "not-the-password", 16, 0600) == 0);
    snprintf(sock, sizeof(sock), "--redis-socket=%s", c.redis_socket);
    snprintf(pw, sizeof(pw), "--redis-password-file=%s", wrong);
    char *err = gcs_start_fails(&c, sock, pw);
    cr_assert(strcasestr(err, "password") || strcasestr(err, "auth"),
              "the line does not say the password is wrong: %s", err);
    free(err);
}

struct job_arg {
    harness_cluster *c;
    uint32_t id;
};

/* ADD_JOB succeeds (the GCS can write to Redis again). */
static bool job_added(void *arg)
{
    struct job_arg *a = arg;
    int code;
    char err[256];
    bconn *b = harness_connect(a->c, NULL, &code, err, sizeof(err));
    if (b == NULL)
        return false;
    Rpc__JobInfo job = RPC__JOB_INFO__INIT;
    job.entrypoint = "after-redis-came-back";
    job.driver_pid = (int32_t)getpid();
    Rpc__AddJobRequest req = RPC__ADD_JOB_REQUEST__INIT;
    req.req_id = 8;
    req.job = &job;
    ProtobufCMessage *m = NULL;
    bool ok = false;
    if (bconn_call(b, MSG_ADD_JOB_REQ, &req.base, MSG_ADD_JOB_REPLY, &m, 5000) == 0) {
        Rpc__AddJobReply *r = (Rpc__AddJobReply *)m;
        ok = (r->status == NULL || r->status->code == 0) && r->job_id != 0;
        a->id = r->job_id;
        msg_free(m);
    }
    bconn_close(b);
    return ok;
}

/* Redis dies under a running GCS: the GCS stays up and keeps answering
 * reads from memory; writes work again once Redis is back, and the node
 * registered before survives it all (docs/gcs.md, "Redis connection loss"). */
Test(cluster, redis_lost_while_gcs_runs)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    wait_alive(&c, 1);
    harness_kill9(c.redis);
    /* Reads are served while Redis is gone. */
    Rpc__ListNodesReply *r = harness_list_nodes(&c);
    cr_assert_not_null(r, "the GCS does not answer LIST_NODES without Redis");
    cr_assert_eq(r->n_nodes, 1);
    msg_free(&r->base);
    cr_assert(harness_alive(c.gcs), "the GCS exited when Redis died");
    /* Redis comes back (same config, its AOF): writes succeed again. */
    c.redis = harness_restart(c.redis);
    struct job_arg a = {&c, 0};
    cr_assert(harness_wait_until(job_added, &a, SLACK_MS), "ADD_JOB never worked again");
    cr_assert(job_listed(&c, a.id, "after-redis-came-back"));
    cr_assert(harness_alive(c.gcs), "the GCS exited");
    wait_alive(&c, 1);
}

/* ------------------------------------------------------------ security */

/* The raylet's TCP port (for other raylets) requires the cluster token too. */
Test(cluster, raylet_tcp_requires_the_token)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    Rpc__ListNodesReply *r = harness_list_nodes(&c);
    cr_assert(r && r->n_nodes == 1);
    char host[64];
    snprintf(host, sizeof(host), "%s", r->nodes[0]->address);
    msg_free(&r->base);
    char *colon = strrchr(host, ':');
    cr_assert_not_null(colon, "raylet address %s", host);
    *colon = '\0';
    int port = atoi(colon + 1);
    cr_assert_gt(port, 0);

    char wrong[AUTH_TOKEN_LEN + 1];
    auth_token_generate(wrong);
    for (int i = 0; i < 2; i++) {
        Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
        hs.role = RPC__ROLE__ROLE_RAYLET;
        hs.pid = (int32_t)getpid();
        hs.name = "harness";
        uint8_t id[NODE_ID_SIZE];
        memset(id, 0x5a, sizeof(id)); /* a node id the port accepts */
        hs.id.data = id;
        hs.id.len = NODE_ID_SIZE;
        int code = 0;
        char err[256] = "";
        bconn *b = bconn_open(host, port, NULL, i == 0 ? wrong : c.token, &hs, 5000, NULL, NULL, 0,
                              NULL, &code, err, sizeof(err));
        if (i == 0) {
            cr_assert_null(b, "the raylet's TCP port accepted a wrong token");
            cr_assert_eq(code, RAYC_EAUTH, "code %d (%s)", code, err);
        } else {
            cr_assert_not_null(b, "the right token was refused: %d %s", code, err);
        }
        bconn_close(b);
    }
    cr_assert(harness_alive(c.raylets[0].proc));
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return st.st_mode & 0777;
}

/* Entries under dir (recursively, symlinks not followed); the first whose
 * mode lets group or others in goes to bad. */
static int walk_private(const char *dir, char *bad, size_t badlen)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[HARNESS_PATH + 64];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0 || S_ISLNK(st.st_mode))
            continue;
        n++;
        if ((st.st_mode & 0077) != 0 && bad[0] == '\0')
            snprintf(bad, badlen, "%s (%o)", p, (unsigned)(st.st_mode & 07777));
        if (S_ISDIR(st.st_mode))
            n += walk_private(p, bad, badlen);
    }
    closedir(d);
    return n;
}

/* What the CLI creates is private: session dir 0700, token and Redis
 * password 0600, the raylet's Unix socket 0600 (docs/contracts.md). */
Test(cli, session_files_are_private)
{
    char *out, *err, port[32];
    snprintf(port, sizeof(port), "--port=%d", harness_free_port());
    const char *start[] = {"start", "--head", port, "--num-cpus=1", "--object-store-memory=32M",
                           NULL};
    int rc = harness_rayc(&out, &err, start);
    cr_assert_eq(rc, 0, "rayc start --head: %s", err);
    free(out);
    free(err);
    char link[HARNESS_PATH + 32], session[HARNESS_PATH], path[HARNESS_PATH + 64];
    snprintf(link, sizeof(link), "%s/rayc/session_latest", harness_dir());
    cr_assert(realpath(link, session) != NULL, "%s: %s", link, strerror(errno));
    cr_assert_eq(mode_of(session), 0700, "session dir mode %o", mode_of(session));
    snprintf(path, sizeof(path), "%s/token", session);
    cr_assert_eq(mode_of(path), 0600, "token mode %o", mode_of(path));
    snprintf(path, sizeof(path), "%s/redis.password", session);
    cr_assert_eq(mode_of(path), 0600, "redis.password mode %o", mode_of(path));
    snprintf(path, sizeof(path), "%s/sockets/raylet", session);
    cr_assert_eq(mode_of(path) & 0077, 0, "the raylet socket is open to others: %o", mode_of(path));
    snprintf(path, sizeof(path), "%s/sockets", session);
    cr_assert_eq(mode_of(path) & 0077, 0, "sockets dir mode %o", mode_of(path));
    /* Nothing of the session (logs, Redis's files, spill and sockets
     * included) is open to group or others. */
    char open_to_others[HARNESS_PATH + 64] = "";
    int n = walk_private(session, open_to_others, sizeof(open_to_others));
    cr_assert_gt(n, 10, "only %d entries under %s", n, session);
    cr_assert_str_empty(open_to_others, "open to group or others: %s", open_to_others);
    const char *stop[] = {"stop", NULL};
    cr_assert_eq(harness_rayc(&out, &err, stop), 0, "rayc stop: %s", err);
    free(out);
    free(err);
}

/* ------------------------------------------------------------ CLI lifecycle */

/* A PATH of symlinks to every program of /usr/bin and /bin except
 * redis-server: `rayc start --head` must say it is missing, in one line. */
Test(cli, redis_server_missing_one_line)
{
    char dir[HARNESS_PATH];
    snprintf(dir, sizeof(dir), "%s/path", harness_dir());
    cr_assert_eq(mkdir(dir, 0700), 0);
    const char *from[] = {"/usr/local/bin", "/usr/bin", "/bin", NULL};
    for (int k = 0; from[k]; k++) {
        DIR *d = opendir(from[k]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || strncmp(e->d_name, "redis-server", 12) == 0)
                continue;
            char src[HARNESS_PATH + 300], dst[HARNESS_PATH + 300];
            snprintf(src, sizeof(src), "%s/%s", from[k], e->d_name);
            snprintf(dst, sizeof(dst), "%s/%s", dir, e->d_name);
            (void)!symlink(src, dst); /* the first of a name wins */
        }
        if (d)
            closedir(d);
    }
    char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", dir, 1);
    char *out, *err, port[32];
    snprintf(port, sizeof(port), "--port=%d", harness_free_port());
    const char *start[] = {"start", "--head", port, "--num-cpus=1", NULL};
    int rc = harness_rayc(&out, &err, start);
    if (old) {
        setenv("PATH", old, 1);
        free(old);
    }
    cr_assert_eq(rc, 1, "rayc start --head without redis-server: exit %d (%s)", rc, err);
    rstrip(err);
    assert_one_line(err, "rayc: redis-server is missing");
    free(out);
    free(err);
    cr_assert_eq(harness_survivors(NULL, 0), 0, "a failed start left processes");
}

static int start_head(char *port_flag, size_t len)
{
    int p = harness_free_port();
    snprintf(port_flag, len, "--port=%d", p);
    char *out, *err;
    const char *head[] = {"start", "--head", port_flag, "--num-cpus=1", "--object-store-memory=32M",
                          NULL};
    cr_assert_eq(harness_rayc(&out, &err, head), 0, "rayc start --head: %s", err);
    free(out);
    free(err);
    return p;
}

/* `rayc stop --force` kills every daemon of the session at once. */
Test(cli, stop_force_leaves_nothing)
{
    char port[32];
    start_head(port, sizeof(port));
    cr_assert_gt(harness_survivors(NULL, 0), 0, "no daemon runs after rayc start");
    char *out, *err;
    const char *stop[] = {"stop", "--force", NULL};
    cr_assert_eq(harness_rayc(&out, &err, stop), 0, "rayc stop --force: %s", err);
    free(out);
    free(err);
    char who[2048];
    cr_assert(harness_wait_until(ours_gone, NULL, 5000), "rayc stop --force left: %s",
              (harness_survivors(who, sizeof(who)), who));
}

static bool file_exists(void *arg)
{
    return access((const char *)arg, F_OK) == 0;
}

static bool says_foreground(void *arg)
{
    char *text = read_file(((harness_proc *)arg)->out, NULL);
    bool yes = text && strstr(text, "running in the foreground");
    free(text);
    return yes;
}

/* `rayc start --head --block` in the foreground, with the harness's CLI
 * environment; waits until its raylet is ready. Returns the session dir. */
static harness_proc *start_blocking(char *session, size_t len)
{
    char temp[HARNESS_PATH], bin[HARNESS_PATH], port[32];
    snprintf(temp, sizeof(temp), "%s/rayc", harness_dir());
    snprintf(bin, sizeof(bin), "%s/bin", harness_build());
    snprintf(port, sizeof(port), "--port=%d", harness_free_port());
    setenv("RAYC_TEMP_DIR", temp, 1);
    setenv("RAYC_BIN_DIR", bin, 1);
    char *argv[] = {
        (char *)harness_rayc_script(), "start", "--head", "--block", port, "--num-cpus=1",
        "--object-store-memory=32M",   NULL};
    harness_proc *p = harness_spawn("rayc_block", NULL, argv);
    unsetenv("RAYC_TEMP_DIR");
    unsetenv("RAYC_BIN_DIR");
    char link[HARNESS_PATH + 32], ready[HARNESS_PATH + 32];
    snprintf(link, sizeof(link), "%s/session_latest", temp);
    snprintf(ready, sizeof(ready), "%s/raylet.ready", link);
    cr_assert(harness_wait_until(file_exists, ready, SLACK_MS), "rayc start --block never ready");
    /* Ready, and in its foreground loop (its signal handling is set). */
    cr_assert(harness_wait_until(says_foreground, p, SLACK_MS), "rayc start --block never said it "
                                                                "runs in the foreground");
    cr_assert(realpath(link, session) != NULL && strlen(session) < len);
    cr_assert(harness_alive(p), "rayc start --block returned");
    return p;
}

/* --block: when a daemon of the node dies, rayc stops the others and exits
 * 1 (docs/cli.md). */
Test(cli, block_exits_1_when_a_daemon_dies)
{
    char session[PATH_MAX];
    harness_proc *p = start_blocking(session, sizeof(session));
    char pidfile[PATH_MAX + 16];
    snprintf(pidfile, sizeof(pidfile), "%s/raylet.pid", session);
    char *s = read_file(pidfile, NULL);
    cr_assert_not_null(s, "no %s", pidfile);
    int pid = atoi(s);
    free(s);
    cr_assert_gt(pid, 0);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    p->any_exit = true; /* checked here */
    /* rayc stop gives each group of daemons up to 10 s (RAYC_STOP_TIMEOUT). */
    int code = harness_wait_exit(p, 60000);
    cr_assert_eq(code, 1, "rayc start --block after its raylet died: exit %d", code);
    char who[2048];
    cr_assert(harness_wait_until(ours_gone, NULL, 10000), "daemons left after --block exited: %s",
              (harness_survivors(who, sizeof(who)), who));
}

/* --block: SIGTERM stops the node's daemons and exits 0. */
Test(cli, block_sigterm_stops_the_node)
{
    char session[PATH_MAX];
    harness_proc *p = start_blocking(session, sizeof(session));
    cr_assert_eq(kill(p->pid, SIGTERM), 0);
    int code = harness_wait_exit(p, 60000);
    cr_assert_eq(code, 0, "rayc start --block on SIGTERM: exit %d", code);
    char who[2048];
    cr_assert(harness_wait_until(ours_gone, NULL, 10000), "daemons left after --block exited: %s",
              (harness_survivors(who, sizeof(who)), who));
}

/* A directory of another user (nobody), for the owner checks: only root can
 * make one. */
static void foreign_dir(char *out, size_t len, const char *name)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to make a directory of another user");
    snprintf(out, len, "%s/%s", harness_dir(), name);
    cr_assert_eq(mkdir(out, 0777), 0, "%s: %s", out, strerror(errno));
    cr_assert_eq(chown(out, 65534, 65534), 0, "chown %s: %s", out, strerror(errno));
}

/* Issue 13: a temp dir (default /tmp/rayc) made by another user could hold
 * their session_latest (their cluster, their token) or a registry of pids
 * for `rayc stop`; before, rayc used it. */
Test(cli, a_temp_dir_of_another_user_is_refused)
{
    char dir[HARNESS_PATH], flag[HARNESS_PATH + 16], port[32];
    foreign_dir(dir, sizeof(dir), "foreign");
    snprintf(flag, sizeof(flag), "--temp-dir=%s", dir);
    snprintf(port, sizeof(port), "--port=%d", harness_free_port());
    const char *start[] = {
        "start", "--head", port, flag, "--num-cpus=1", "--object-store-memory=32M", NULL};
    const char *status[] = {"status", flag, NULL};
    const char *stop[] = {"stop", flag, NULL};
    const char *const *cmds[] = {start, status, stop};
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
        char *out, *err;
        int rc = harness_rayc(&out, &err, cmds[i]);
        cr_assert_eq(rc, 1, "rayc %s in another user's dir: exit %d\n%s%s", cmds[i][0], rc, out,
                     err);
        cr_assert(strstr(err, "belongs to another user") != NULL, "%s", err);
        assert_one_line(err, "rayc: ");
        free(out);
        free(err);
    }
    /* The state and job commands read the dashboard's address and the token
     * through session_latest: not another user's. */
    char session[HARNESS_PATH + 16], link[HARNESS_PATH + 32], path[HARNESS_PATH + 64];
    snprintf(session, sizeof(session), "%s/session_1", dir);
    snprintf(link, sizeof(link), "%s/session_latest", dir);
    snprintf(path, sizeof(path), "%s/dashboard_address", session);
    cr_assert_eq(mkdir(session, 0755), 0);
    cr_assert_eq(write_file(path, "127.0.0.1:1", 11, 0644), 0);
    cr_assert_eq(symlink(session, link), 0);
    cr_assert_eq(lchown(link, 65534, 65534), 0);
    cr_assert_eq(chown(session, 65534, 65534), 0);
    char *out, *err, state[HARNESS_PATH];
    snprintf(state, sizeof(state), "%s/bin/rayc_state", harness_build());
    setenv("RAYC_TEMP_DIR", dir, 1);
    char *const argv[] = {state, "list", "nodes", NULL};
    int rc = harness_run(argv, &out, &err, 30000);
    unsetenv("RAYC_TEMP_DIR");
    cr_assert_eq(rc, 1, "rayc list nodes: exit %d\n%s%s", rc, out, err);
    cr_assert(strstr(err, "belongs to another user") != NULL, "%s", err);
    free(out);
    free(err);
}

/* `rayc status --token=T` still works, but hands rayc_ctl a token file: a
 * token on a command line is visible to every user (ps). */
Test(cli, status_does_not_put_the_token_on_a_command_line)
{
    char bin[HARNESS_PATH], ctl_path[HARNESS_PATH + 16], args[HARNESS_PATH + 16];
    snprintf(bin, sizeof(bin), "%s/fakebin", harness_dir());
    cr_assert_eq(mkdir(bin, 0700), 0);
    snprintf(args, sizeof(args), "%s/args", bin);
    snprintf(ctl_path, sizeof(ctl_path), "%s/rayc_ctl", bin);
    char script[3 * HARNESS_PATH];
    snprintf(script, sizeof(script),
             "#!/bin/sh\nprintf '%%s\\n' \"$@\" >%s\nfor a in \"$@\"; do case $a in "
             "--token-file=*) cat \"${a#--token-file=}\" >>%s;; esac; done\n",
             args, args);
    cr_assert_eq(write_file(ctl_path, script, strlen(script), 0700), 0);
    setenv("RAYC_BIN_DIR", bin, 1);
    char *const argv[] = {(char *)harness_rayc_script(), "status", "--address=127.0.0.1:1",
                          "--token=s3cr3t-token-value", NULL};
    char *out, *err;
    int rc = harness_run(argv, &out, &err, 30000);
    unsetenv("RAYC_BIN_DIR");
    cr_assert_eq(rc, 0, "rayc status: %s", err);
    free(out);
    free(err);
    char *seen = read_file(args, NULL);
    cr_assert_not_null(seen, "the fake rayc_ctl did not run");
    char *token_line = strstr(seen, "s3cr3t-token-value");
    cr_assert_not_null(token_line, "the token did not reach rayc_ctl:\n%s", seen);
    cr_assert(strstr(seen, "--token=") == NULL, "the token is on rayc_ctl's command line:\n%s",
              seen);
    cr_assert(strstr(seen, "--token-file=") != NULL, "%s", seen);
    free(seen);
}
