/* test_conn_limits.c -- what a hostile peer cannot make a daemon do
 * (common/conn.h, common/msg.h, common/listener.h, gcs/gcs_kv.h): frames
 * before the handshake are small and of the one expected type (checked
 * before any unpack), an accepted peer has a handshake deadline, a gate caps
 * unauthenticated connections, a peer that does not read is closed at its
 * output cap, decoding has a heap budget, running out of descriptors pauses
 * accept instead of spinning, and code packages are content-addressed.
 *
 * Each test runs in its own criterion fork with one event_base; servers take
 * one end of a socketpair and the test writes raw bytes to the other. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "frame.h"
#include "../../gcs/gcs_http.h"
#include "../../gcs/gcs_kv.h"
#include "../../gcs/gcs_storage.h"
#include "ids.h"
#include "listener.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "rayc.h"
#include "sha256.h"
#include "util.h"

typedef struct {
    int frames;
    int closes;
    int reason;
    char why[160];
} seen;

static struct event_base *base;

static void on_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    (void)type, (void)m;
    ((seen *)conn_data(c))->frames++;
}

static void on_close(conn *c, int reason, const char *why)
{
    seen *s = conn_data(c);
    s->closes++;
    s->reason = reason;
    snprintf(s->why, sizeof(s->why), "%s", why);
}

static const conn_handlers handlers = {on_frame, on_close};

static void setup(void)
{
    log_set_level(LOG_LEVEL_FATAL); /* protocol errors are expected here */
    signal(SIGPIPE, SIG_IGN);       /* as in the daemons: a closed peer is EPIPE */
    base = event_base_new();
    cr_assert_not_null(base);
}

static void teardown(void)
{
    event_base_free(base);
}

/* Run the loop until *flag is non-zero or 5 s pass. */
static void run_until(const int *flag)
{
    uint64_t deadline = now_ms() + 5000;
    while (*flag == 0 && now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
}

/* An accepted server conn on one end of a socketpair; *peer_fd is the other. */
static conn *accept_pair(seen *s, const conn_opts *o, int *peer_fd)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    conn *c = conn_accept(base, sv[0], &handlers, s, o);
    *peer_fd = sv[1];
    return c;
}

static void write_all(int fd, const void *p, size_t n)
{
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
}

TestSuite(conn_limits, .init = setup, .fini = teardown, .timeout = 30);

Test(conn_limits, frame_over_preauth_limit_closes_before_buffering)
{
    seen s = {0};
    conn_opts o = {.token = "t", .require_auth = true};
    int fd;
    cr_assert_not_null(accept_pair(&s, &o, &fd));
    uint8_t hdr[FRAME_HDR_SIZE];
    frame_hdr_encode(hdr, MSG_HANDSHAKE, 8u << 20); /* announces 8 MiB */
    write_all(fd, hdr, sizeof(hdr));
    run_until(&s.closes);
    cr_assert_eq(s.closes, 1);
    cr_assert_eq(s.reason, CONN_EPROTO, "why: %s", s.why);
    cr_assert_eq(s.frames, 0);
    close(fd);
}

Test(conn_limits, wrong_type_before_handshake_is_refused_unread)
{
    /* A payload that would not even unpack: the refusal names the type, so
     * the type was checked before any unpack was tried. */
    seen s = {0};
    conn_opts o = {.token = "t", .require_auth = true};
    int fd;
    cr_assert_not_null(accept_pair(&s, &o, &fd));
    uint8_t frame[FRAME_HDR_SIZE + 8];
    frame_hdr_encode(frame, MSG_LIST_NODES_REQ, 8);
    memset(frame + FRAME_HDR_SIZE, 0xff, 8);
    write_all(fd, frame, sizeof(frame));
    run_until(&s.closes);
    cr_assert_eq(s.reason, CONN_EPROTO);
    cr_assert(strstr(s.why, "expected HANDSHAKE") != NULL, "why: %s", s.why);
    cr_assert(strstr(s.why, "malformed") == NULL, "why: %s", s.why);
    close(fd);
}

Test(conn_limits, silent_peer_hits_the_handshake_deadline)
{
    seen s = {0};
    conn_opts o = {.token = "t", .require_auth = true, .handshake_timeout_ms = 100};
    int fd;
    cr_assert_not_null(accept_pair(&s, &o, &fd));
    run_until(&s.closes);
    cr_assert_eq(s.closes, 1);
    cr_assert(strstr(s.why, "deadline") != NULL, "why: %s", s.why);
    close(fd);
}

/* A connecting conn that completes the handshake with `srv`. */
static conn *connect_pair(seen *cs, seen *ss, conn_opts *so, conn **server)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    *server = conn_accept(base, sv[0], &handlers, ss, so);
    cr_assert_not_null(*server);
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    conn_opts co = {.token = "t", .handshake = &hs};
    return conn_connect(base, sv[1], &handlers, cs, &co);
}

Test(conn_limits, gate_caps_unauthenticated_and_frees_on_handshake)
{
    conn_gate gate;
    conn_gate_init(&gate, 2);
    seen s[3] = {{0}};
    conn_opts o = {.token = "t", .require_auth = true, .gate = &gate};
    int fd[3];
    cr_assert_not_null(accept_pair(&s[0], &o, &fd[0]));
    cr_assert_not_null(accept_pair(&s[1], &o, &fd[1]));
    cr_assert_eq(gate.unauthed, 2);
    cr_assert_null(accept_pair(&s[2], &o, &fd[2]), "a third unauthenticated peer is refused");
    cr_assert_eq(errno, EBUSY);
    cr_assert_eq(gate.refused, 1);
    close(fd[2]);

    /* One closes: its place is free again. */
    close(fd[0]);
    run_until(&s[0].closes);
    cr_assert_eq(gate.unauthed, 1);

    /* One completes its handshake: it leaves the count. */
    seen cs = {0}, ss = {0};
    conn *server;
    conn *client = connect_pair(&cs, &ss, &o, &server);
    cr_assert_eq(gate.unauthed, 2);
    uint64_t deadline = now_ms() + 5000;
    while (!conn_is_ready(server) && now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert(conn_is_ready(server));
    cr_assert_eq(gate.unauthed, 1);
    conn_close(client);
    conn_close(server);
    close(fd[1]);
    run_until(&s[1].closes);
    cr_assert_eq(gate.unauthed, 0);
    run_until(&ss.closes);
}

Test(conn_limits, peer_that_does_not_read_is_closed_at_the_output_cap)
{
    seen cs = {0}, ss = {0};
    conn_opts so = {.token = "t", .require_auth = true, .max_output = 64 << 10};
    conn *server;
    conn *client = connect_pair(&cs, &ss, &so, &server);
    uint64_t deadline = now_ms() + 5000;
    while (!conn_is_ready(server) && now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert(conn_is_ready(server));
    /* The client's loop never runs again: it reads nothing. */
    char blob[4096];
    memset(blob, 'x', sizeof(blob));
    Rpc__KvGetReply r = RPC__KV_GET_REPLY__INIT;
    r.value.data = (uint8_t *)blob;
    r.value.len = sizeof(blob);
    int sent = 0, rc = 0;
    while (sent < 100000 && (rc = conn_send(server, MSG_KV_GET_REPLY, &r.base)) == 0) {
        sent++;
        if (sent % 16 == 0) /* let the socket take what it can */
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    cr_assert_eq(rc, -1, "sends are refused once the queue is over the cap");
    cr_assert_lt(sent, 100000);
    run_until(&ss.closes);
    cr_assert_eq(ss.reason, CONN_EPROTO);
    cr_assert(strstr(ss.why, "does not read") != NULL, "why: %s", ss.why);
    run_until(&cs.closes); /* the client sees the close (and is freed) */
    cr_assert_eq(cs.closes, 1);
    (void)client;
}

Test(conn_limits, decode_budget_refuses_amplification)
{
    /* 100,000 empty NodeInfo: 2 wire bytes each, far more in memory. */
    enum { N = 100000 };
    Rpc__NodeInfo *nodes = calloc(N, sizeof(*nodes));
    Rpc__NodeInfo **ptrs = calloc(N, sizeof(*ptrs));
    for (int i = 0; i < N; i++) {
        rpc__node_info__init(&nodes[i]);
        ptrs[i] = &nodes[i];
    }
    Rpc__ListNodesReply r = RPC__LIST_NODES_REPLY__INIT;
    r.nodes = ptrs;
    r.n_nodes = N;
    size_t len = protobuf_c_message_get_packed_size(&r.base);
    uint8_t *buf = malloc(len);
    protobuf_c_message_pack(&r.base, buf);
    cr_assert_lt(len, 4 * N, "the wire form is small");
    cr_assert_gt(sizeof(Rpc__NodeInfo) * N, MSG_DECODE_BUDGET(len), "precondition: it amplifies");
    cr_assert_null(msg_unpack(MSG_LIST_NODES_REPLY, buf, len));

    /* The same message with real content fits its budget. */
    r.n_nodes = 3;
    for (int i = 0; i < 3; i++) {
        nodes[i].address = "127.0.0.1:1234";
        nodes[i].hostname = "node";
    }
    len = protobuf_c_message_pack(&r.base, buf);
    ProtobufCMessage *m = msg_unpack(MSG_LIST_NODES_REPLY, buf, len);
    cr_assert_not_null(m);
    cr_assert_eq(((Rpc__ListNodesReply *)m)->n_nodes, 3);
    msg_free(m);
    free(buf);
    free(ptrs);
    free(nodes);
}

/* ------------------------------------------------------------ listener */

static int accepted = -1;

static void got_conn(void *arg, int fd)
{
    (void)arg;
    accepted = fd;
}

Test(conn_limits, out_of_descriptors_pauses_accept_then_recovers)
{
    /* valgrind keeps descriptors of its own below the soft limit. */
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload"))
        cr_skip_test("descriptor limits do not hold under valgrind");
    int port;
    int lfd = net_tcp_listen("127.0.0.1", 0, 16, &port);
    cr_assert_geq(lfd, 0);
    net_set_nonblock(lfd, true);
    listener *l = listener_new(base, lfd, "test", got_conn, NULL);
    cr_assert_not_null(l);
    int client = net_tcp_connect("127.0.0.1", port, 2000);
    cr_assert_geq(client, 0);

    /* Use up every descriptor: accept then fails with EMFILE. */
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = 64; /* the soft limit only (valgrind refuses a lower hard one) */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int hogs[64], nhogs = 0;
    while (nhogs < 64 && (hogs[nhogs] = dup(0)) >= 0)
        nhogs++;
    cr_assert_eq(errno, EMFILE);

    /* A level-triggered listener would run on_readable every turn; paused,
     * the loop sleeps until the retry timer. */
    for (int i = 0; i < 200; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert_geq(listener_pauses(l), 1);
    cr_assert_leq(listener_pauses(l), 3, "no spin: %llu pauses in 200 loop turns",
                  (unsigned long long)listener_pauses(l));
    cr_assert_eq(accepted, -1);

    close(hogs[--nhogs]);
    uint64_t deadline = now_ms() + 5000;
    while (accepted < 0 && now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    cr_assert_geq(accepted, 0, "accepted once a descriptor was free");
    close(accepted);
    while (nhogs > 0)
        close(hogs[--nhogs]);
    close(client);
    listener_free(l);
    close(lfd);
}

/* ------------------------------------------------------------ code packages */

Test(conn_limits, code_packages_are_content_addressed)
{
    gcs_kv_table *t = gcs_kv_table_new();
    const char *lib = "ELF pretend library";
    uint8_t d[SHA256_SIZE];
    char hex[2 * SHA256_SIZE + 1];
    sha256(lib, strlen(lib), d);
    id_hex(d, SHA256_SIZE, hex);
    const char *other = "another library";
    bool added, written;
    cr_assert_eq(gcs_kv_put(t, GCS_KV_CODE_NS, (const uint8_t *)hex, strlen(hex),
                            (const uint8_t *)other, strlen(other), true, &added, &written),
                 RAYC_EINVAL, "bytes under another library's hash are refused");
    cr_assert_not(written);
    cr_assert_eq(gcs_kv_put(t, GCS_KV_CODE_NS, (const uint8_t *)"short", 5, (const uint8_t *)lib,
                            strlen(lib), false, NULL, NULL),
                 RAYC_EINVAL);
    cr_assert_eq(gcs_kv_put(t, GCS_KV_CODE_NS, (const uint8_t *)hex, strlen(hex),
                            (const uint8_t *)lib, strlen(lib), false, &added, &written),
                 RAYC_OK);
    cr_assert(added && written);
    cr_assert_eq(gcs_kv_put(t, GCS_KV_CODE_NS, (const uint8_t *)hex, strlen(hex),
                            (const uint8_t *)lib, strlen(lib), true, &added, &written),
                 RAYC_OK);
    cr_assert_not(written, "an existing package is never rewritten");
    /* Other namespaces are unchanged: any key, overwrites allowed. */
    cr_assert_eq(
        gcs_kv_put(t, "ns", (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, true, NULL, NULL),
        RAYC_OK);
    gcs_kv_table_free(t);
}

/* ------------------------------------------------------------ dashboard */

static int libevent_warnings;

static void count_libevent_log(int severity, const char *msg)
{
    (void)msg;
    if (severity >= EVENT_LOG_WARN)
        libevent_warnings++;
}

/* The dashboard's HTTP listener (evhttp) out of descriptors. Before, its
 * accept failed and it was called again at once, every loop turn (100% CPU
 * and a libevent warning each time). */
Test(conn_limits, dashboard_out_of_descriptors_pauses_accept_then_recovers)
{
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload"))
        cr_skip_test("descriptor limits do not hold under valgrind");
    rayc_config cfg;
    config_defaults(&cfg);
    cfg.port = 0;
    char err[256];
    gcs_server *srv = gcs_server_new(base, &cfg, "token", gcs_storage_memory_new(base),
                                     &gcs_rpc_services, err, sizeof(err));
    cr_assert_not_null(srv, "%s", err);
    gcs_http *h = gcs_http_new(base, srv, "127.0.0.1", 0, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    int client = net_tcp_connect("127.0.0.1", gcs_http_port(h), 2000);
    cr_assert_geq(client, 0);

    struct rlimit rl, saved;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    rl = saved;
    rl.rlim_cur = 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int hogs[64], nhogs = 0;
    while (nhogs < 64 && (hogs[nhogs] = dup(0)) >= 0)
        nhogs++;
    cr_assert_eq(errno, EMFILE);
    event_set_log_callback(count_libevent_log);
    for (int i = 0; i < 200; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    event_set_log_callback(NULL);
    uint64_t pauses = gcs_http_accept_pauses(h);
    /* Descriptors back before asserting: criterion reports through them. */
    while (nhogs > 0)
        close(hogs[--nhogs]);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    cr_assert_eq(libevent_warnings, 0, "accept retried %d times in 200 loop turns",
                 libevent_warnings);
    cr_assert_geq(pauses, 1);
    cr_assert_leq(pauses, 3, "no spin: %llu pauses in 200 loop turns", (unsigned long long)pauses);

    /* With a descriptor free again, the request is served (401: no token). */
    const char *get = "GET /api/version HTTP/1.0\r\n\r\n";
    cr_assert_eq(net_write_all(client, get, strlen(get)), 0);
    net_set_nonblock(client, true);
    char reply[256] = "";
    size_t got = 0;
    uint64_t deadline = now_ms() + 5000;
    while (strstr(reply, "\r\n") == NULL && now_ms() < deadline) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ssize_t n = read(client, reply + got, sizeof(reply) - 1 - got);
        if (n > 0)
            got += (size_t)n;
        usleep(1000);
    }
    cr_assert(strstr(reply, "HTTP/1.") == reply, "no answer once descriptors were free: '%s'",
              reply);
    close(client);
    gcs_http_free(h);
    gcs_server_free(srv);
    config_free(&cfg);
}
