/* test_conn.c -- framed, handshaken connections over real sockets and a real
 * event loop (common/conn.h), plus the blocking client (common/bconn.h).
 *
 * Each test runs in its own criterion fork: one event_base, a server that
 * accepts on a loopback TCP or Unix listener (or one end of a socketpair),
 * and clients that are either conns on the same loop or raw sockets that
 * write hand-made bytes. Every test closes everything and runs the loop until
 * every on_close has fired, so valgrind sees no leaks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bconn.h"
#include "conn.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "rayc.h"
#include "util.h"

#define TOKEN     "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
#define MAX_PEERS 16

/* What one end of a connection has seen. */
/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(conn, .timeout = 30);

typedef struct {
    conn *c;
    int frames; /* frames handed to on_frame */
    int closes; /* on_close calls (must end up 1) */
    int reason; /* on_close reason */
    char why[160];
    bool got_handshake, got_reply;
    int role;
    char name[32];
    uint64_t next_req; /* KV_PUT req_ids must arrive as 0, 1, 2, ... */
    bool out_of_order;
    uint64_t last_get_req;
} peer;

static struct event_base *base;
static struct event *tick, *acceptor;
static int listen_fd = -1;
static peer srv[MAX_PEERS];
static int nsrv;
static conn_opts srv_opts;
static int reply_fd = -1; /* when >= 0, the server's HandshakeReply carries it */
static bool echo_puts;    /* the server answers every KV_PUT */

/* ------------------------------------------------------------ helpers */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

static void srv_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    peer *p = conn_data(c);
    p->frames++;
    if (type == MSG_HANDSHAKE) {
        Rpc__Handshake *hs = (Rpc__Handshake *)m;
        p->got_handshake = true;
        p->role = hs->role;
        snprintf(p->name, sizeof(p->name), "%s", hs->name);
        Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
        Rpc__Status st = RPC__STATUS__INIT;
        r.status = &st;
        if (reply_fd >= 0) {
            r.num_fds = 1;
            cr_assert_eq(conn_send_fds(c, MSG_HANDSHAKE_REPLY, &r.base, &reply_fd, 1), 0);
        } else {
            cr_assert_eq(conn_send(c, MSG_HANDSHAKE_REPLY, &r.base), 0);
        }
        return;
    }
    if (type == MSG_KV_PUT_REQ) {
        Rpc__KvPutRequest *req = (Rpc__KvPutRequest *)m;
        if (req->req_id != p->next_req)
            p->out_of_order = true;
        p->next_req++;
        if (echo_puts) {
            Rpc__KvPutReply r = RPC__KV_PUT_REPLY__INIT;
            r.req_id = req->req_id;
            r.added = true;
            conn_send(c, MSG_KV_PUT_REPLY, &r.base);
        }
        return;
    }
    if (type == MSG_KV_GET_REQ) {
        Rpc__KvGetRequest *req = (Rpc__KvGetRequest *)m;
        p->last_get_req = req->req_id;
        Rpc__KvGetReply r = RPC__KV_GET_REPLY__INIT;
        Rpc__Status st = RPC__STATUS__INIT;
        r.req_id = req->req_id;
        r.status = &st;
        r.value.data = (uint8_t *)"value";
        r.value.len = 5;
        conn_send(c, MSG_KV_GET_REPLY, &r.base);
    }
}

static void any_close(conn *c, int reason, const char *why)
{
    peer *p = conn_data(c);
    p->closes++;
    p->reason = reason;
    snprintf(p->why, sizeof(p->why), "%s", why);
    p->c = NULL;
}

static const conn_handlers srv_h = {srv_frame, any_close};

static void cli_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    peer *p = conn_data(c);
    p->frames++;
    if (type == MSG_HANDSHAKE_REPLY)
        p->got_reply = true;
    if (type == MSG_KV_PUT_REPLY) {
        Rpc__KvPutReply *r = (Rpc__KvPutReply *)m;
        if (r->req_id != p->next_req)
            p->out_of_order = true;
        p->next_req++;
    }
    if (type == MSG_KV_GET_REPLY)
        p->last_get_req = ((Rpc__KvGetReply *)m)->req_id;
}

static const conn_handlers cli_h = {cli_frame, any_close};

static peer *new_srv_peer(void)
{
    cr_assert_lt(nsrv, MAX_PEERS);
    peer *p = &srv[nsrv++];
    memset(p, 0, sizeof(*p));
    return p;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    int s = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0)
        return;
    peer *p = new_srv_peer();
    p->c = conn_accept(base, s, &srv_h, p, &srv_opts);
    cr_assert_not_null(p->c);
}

/* A fresh loop; the server listens on loopback TCP (port in *port) or, when
 * unix_path is given, on that Unix socket. */
static void setup_loop(void)
{
    log_set_level(LOG_LEVEL_FATAL); /* protocol errors are expected here */
    base = event_base_new();
    cr_assert_not_null(base);
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    event_add(tick, &tv);
    nsrv = 0;
    memset(&srv_opts, 0, sizeof(srv_opts));
    reply_fd = -1;
    echo_puts = false;
}

static int listen_tcp(void)
{
    int port = 0;
    listen_fd = net_tcp_listen("127.0.0.1", 0, 16, &port);
    cr_assert_geq(listen_fd, 0, "listen: %s", strerror(errno));
    net_set_nonblock(listen_fd, true);
    acceptor = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(acceptor, NULL);
    return port;
}

static void listen_unix(const char *path)
{
    listen_fd = net_unix_listen(path, 0600, 16);
    cr_assert_geq(listen_fd, 0, "listen %s: %s", path, strerror(errno));
    net_set_nonblock(listen_fd, true);
    acceptor = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(acceptor, NULL);
}

/* One turn of the loop that returns within 50 ms even when nothing
 * happens, so a deadline around it is always checked. */
static void loop_turn(void)
{
    struct timeval tv = {0, 50000};
    event_base_loopexit(base, &tv);
    event_base_loop(base, EVLOOP_ONCE);
}

/* Run the loop until cond() holds; fail after 5 s. */
static void run_until(bool (*cond)(void *), void *arg, const char *what)
{
    uint64_t deadline = now_ms() + 5000;
    while (!cond(arg)) {
        cr_assert_lt(now_ms(), deadline, "timed out waiting for %s", what);
        loop_turn();
    }
}

/* Run the loop until expr holds; fail after 5 s (never hang). */
#define LOOP_UNTIL(expr)                                                                           \
    do {                                                                                           \
        uint64_t deadline_ = now_ms() + 5000;                                                      \
        while (!(expr)) {                                                                          \
            cr_assert_lt(now_ms(), deadline_, "timed out waiting for %s", #expr);                  \
            loop_turn();                                                                           \
        }                                                                                          \
    } while (0)

static bool is_closed(void *arg)
{
    return ((peer *)arg)->closes > 0;
}

static bool is_ready(void *arg)
{
    peer *p = arg;
    return p->got_reply || p->closes > 0;
}

static bool all_srv_closed(void *arg)
{
    (void)arg;
    for (int i = 0; i < nsrv; i++)
        if (srv[i].closes == 0)
            return false;
    return true;
}

static bool nsrv_at_least(void *arg)
{
    return nsrv >= *(int *)arg;
}

/* Close whatever is still open, wait for every on_close, free the loop. */
static void teardown_loop(peer *clients, int nclients)
{
    for (int i = 0; i < nclients; i++)
        if (clients[i].c)
            conn_close(clients[i].c);
    for (int i = 0; i < nsrv; i++)
        if (srv[i].c)
            conn_close(srv[i].c);
    for (int i = 0; i < nclients; i++)
        run_until(is_closed, &clients[i], "client close");
    run_until(all_srv_closed, NULL, "server closes");
    for (int i = 0; i < nclients; i++)
        cr_assert_eq(clients[i].closes, 1, "on_close exactly once");
    for (int i = 0; i < nsrv; i++)
        cr_assert_eq(srv[i].closes, 1, "on_close exactly once");
    if (acceptor) {
        event_free(acceptor);
        acceptor = NULL;
    }
    if (listen_fd >= 0) {
        close(listen_fd);
        listen_fd = -1;
    }
    event_free(tick);
    event_base_free(base);
    base = NULL;
}

/* A connecting conn over loopback TCP with the given token. */
static void connect_tcp(peer *p, int port, const char *token, const char *name)
{
    memset(p, 0, sizeof(*p));
    int fd = net_tcp_connect("127.0.0.1", port, 1000);
    cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_DRIVER;
    hs.name = (char *)name;
    conn_opts o = {.token = token, .handshake = &hs};
    p->c = conn_connect(base, fd, &cli_h, p, &o);
    cr_assert_not_null(p->c);
}

static peer *srv_by_name(const char *name)
{
    for (int i = 0; i < nsrv; i++)
        if (strcmp(srv[i].name, name) == 0)
            return &srv[i];
    return NULL;
}

/* Bytes of one frame carrying m. Caller frees. */
static uint8_t *encode(uint16_t type, const ProtobufCMessage *m, size_t *len)
{
    *len = msg_frame_size(m);
    uint8_t *b = malloc(*len);
    cr_assert_eq(msg_encode(type, m, b), *len);
    return b;
}

static void write_frame(int fd, uint16_t type, const ProtobufCMessage *m)
{
    size_t n;
    uint8_t *b = encode(type, m, &n);
    cr_assert_eq(net_write_all(fd, b, n), 0);
    free(b);
}

static void write_handshake(int fd)
{
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.version = MSG_PROTOCOL_VERSION;
    hs.name = "raw";
    write_frame(fd, MSG_HANDSHAKE, &hs.base);
}

/* Read a closed raw socket to EOF; return the frame types seen (up to max)
 * and, for a HandshakeReply, its status code in *reply_code. */
static int read_until_eof(int fd, uint16_t *types, int max, int *reply_code)
{
    frame_decoder d;
    frame_decoder_init(&d, 0);
    int n = 0;
    uint8_t buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == ECONNRESET)
            break;
        cr_assert_geq(r, 0, "read: %s", strerror(errno));
        if (r == 0)
            break;
        frame_decoder_feed(&d, buf, (size_t)r);
        frame_t f;
        while (frame_decoder_next(&d, &f) == 1) {
            if (n < max)
                types[n] = f.type;
            n++;
            ProtobufCMessage *m = msg_unpack(f.type, f.payload, f.length);
            cr_assert_not_null(m, "server sent a frame that does not unpack");
            if (f.type == MSG_HANDSHAKE_REPLY && reply_code) {
                Rpc__HandshakeReply *hr = (Rpc__HandshakeReply *)m;
                *reply_code = hr->status ? hr->status->code : 0;
            }
            msg_free(m);
        }
    }
    frame_decoder_free(&d);
    return n;
}

/* ------------------------------------------------------------ tests */

Test(conn, handshake_ok_with_token)
{
    setup_loop();
    srv_opts.require_auth = true;
    srv_opts.token = TOKEN;
    int port = listen_tcp();
    peer cli;
    connect_tcp(&cli, port, TOKEN, "good");
    cr_assert_not(conn_is_ready(cli.c));
    run_until(is_ready, &cli, "handshake");
    cr_assert_eq(cli.closes, 0, "closed: %s", cli.why);
    cr_assert(cli.got_reply);
    cr_assert(conn_is_ready(cli.c));
    cr_assert_eq(nsrv, 1);
    cr_assert(srv[0].got_handshake);
    cr_assert(conn_is_ready(srv[0].c));
    cr_assert_str_eq(srv[0].name, "good", "the handshake template reached the server");
    cr_assert_eq(srv[0].role, RPC__ROLE__ROLE_DRIVER);
    cr_assert(strncmp(conn_peer(srv[0].c), "tcp 127.0.0.1:", 14) == 0, "%s", conn_peer(srv[0].c));

    /* A request and its reply after the handshake. */
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    req.req_id = 77;
    req.ns = "ns";
    cr_assert_eq(conn_send(cli.c, MSG_KV_GET_REQ, &req.base), 0);
    LOOP_UNTIL(cli.last_get_req == 77);
    cr_assert_eq(srv[0].last_get_req, 77);

    /* A local close: on_close(CONN_LOCAL) here, EOF on the other side. */
    conn *c = cli.c;
    conn_close(c);
    conn_close(c); /* twice is safe */
    cr_assert(conn_is_closed(c));
    cr_assert_eq(conn_send(c, MSG_KV_GET_REQ, &req.base), -1, "no sends after close");
    cr_assert_eq(cli.closes, 0, "on_close comes later, from the loop");
    run_until(is_closed, &cli, "client close");
    cr_assert_eq(cli.reason, CONN_LOCAL);
    run_until(is_closed, &srv[0], "server sees EOF");
    cr_assert_eq(srv[0].reason, CONN_EOF, "%s", srv[0].why);
    teardown_loop(&cli, 1);
}

Test(conn, wrong_token_refused_while_server_keeps_serving)
{
    setup_loop();
    srv_opts.require_auth = true;
    srv_opts.token = TOKEN;
    int port = listen_tcp();
    peer bad, nothing, good;
    connect_tcp(&bad, port, "not-the-token", "bad");
    connect_tcp(&nothing, port, NULL, "none");
    run_until(is_closed, &bad, "refusal");
    run_until(is_closed, &nothing, "refusal");
    cr_assert_eq(bad.reason, CONN_EAUTH, "%d %s", bad.reason, bad.why);
    cr_assert(strstr(bad.why, "bad cluster token") != NULL, "%s", bad.why);
    cr_assert_not(bad.got_reply, "a refusal is not handed up as a frame");
    cr_assert_eq(nothing.reason, CONN_EAUTH, "no token is refused too: %s", nothing.why);
    int two = 2;
    run_until(nsrv_at_least, &two, "accepts");
    run_until(all_srv_closed, NULL, "server side of the refused conns");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(srv[i].reason, CONN_EAUTH, "server side: %d %s", srv[i].reason, srv[i].why);
        cr_assert_not(srv[i].got_handshake, "refused handshakes are not handed up");
    }

    /* The loop still serves a client with the right token. */
    connect_tcp(&good, port, TOKEN, "good");
    run_until(is_ready, &good, "good handshake");
    cr_assert_eq(good.closes, 0, "%s", good.why);
    peer *s = srv_by_name("good");
    cr_assert_not_null(s);
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    req.req_id = 5;
    conn_send(good.c, MSG_KV_GET_REQ, &req.base);
    LOOP_UNTIL(good.last_get_req == 5);
    teardown_loop(&good, 1);
    cr_assert_eq(bad.closes, 1);
    cr_assert_eq(nothing.closes, 1);
}

Test(conn, bad_proof_gets_an_eauth_reply_then_close)
{
    /* A raw client: read the Hello, answer with a wrong proof, and check the
     * bytes that come back are a HandshakeReply with RAYC_EAUTH, then EOF. */
    setup_loop();
    srv_opts.require_auth = true;
    srv_opts.token = TOKEN;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer *p = new_srv_peer();
    p->c = conn_accept(base, sv[0], &srv_h, p, &srv_opts);
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.version = MSG_PROTOCOL_VERSION;
    uint8_t proof[32] = {1, 2, 3};
    hs.proof.data = proof;
    hs.proof.len = sizeof(proof);
    write_frame(sv[1], MSG_HANDSHAKE, &hs.base);
    /* More bytes after the refused handshake are ignored, not a second error. */
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    write_frame(sv[1], MSG_KV_GET_REQ, &req.base);
    run_until(is_closed, p, "refusal");
    cr_assert_eq(p->reason, CONN_EAUTH, "%d %s", p->reason, p->why);
    cr_assert_eq(p->frames, 0);
    uint16_t types[8];
    int code = 0;
    int n = read_until_eof(sv[1], types, 8, &code);
    cr_assert_eq(n, 2, "Hello and HandshakeReply, got %d frames", n);
    cr_assert_eq(types[0], MSG_HELLO);
    cr_assert_eq(types[1], MSG_HANDSHAKE_REPLY);
    cr_assert_eq(code, RAYC_EAUTH);
    close(sv[1]);
    teardown_loop(NULL, 0);
}

Test(conn, hello_carries_a_nonce_only_when_auth_is_required)
{
    for (int auth = 0; auth < 2; auth++) {
        setup_loop();
        srv_opts.require_auth = auth;
        srv_opts.token = TOKEN;
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        peer *p = new_srv_peer();
        p->c = conn_accept(base, sv[0], &srv_h, p, &srv_opts);
        LOOP_UNTIL(conn_pending_output(p->c) == 0);
        uint8_t buf[256];
        ssize_t r = read(sv[1], buf, sizeof(buf));
        cr_assert_gt(r, FRAME_HDR_SIZE);
        uint16_t type;
        uint32_t len;
        cr_assert_eq(frame_hdr_decode(buf, 1024, &type, &len), 0);
        cr_assert_eq(type, MSG_HELLO);
        cr_assert_eq((size_t)r, FRAME_HDR_SIZE + len);
        Rpc__Hello *h = (Rpc__Hello *)msg_unpack(type, buf + FRAME_HDR_SIZE, len);
        cr_assert_not_null(h);
        cr_assert_eq(h->version, MSG_PROTOCOL_VERSION);
        cr_assert_eq(h->nonce.len, auth ? 32u : 0u);
        msg_free(&h->base);
        close(sv[1]);
        teardown_loop(NULL, 0);
    }
}

Test(conn, frame_before_handshake_closes)
{
    setup_loop();
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer *p = new_srv_peer();
    p->c = conn_accept(base, sv[0], &srv_h, p, &srv_opts);
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    write_frame(sv[1], MSG_KV_GET_REQ, &req.base);
    run_until(is_closed, p, "protocol error");
    cr_assert_eq(p->reason, CONN_EPROTO, "%d %s", p->reason, p->why);
    cr_assert(strstr(p->why, "HANDSHAKE") != NULL, "%s", p->why);
    cr_assert_eq(p->frames, 0, "nothing handed up");
    uint16_t types[4];
    cr_assert_eq(read_until_eof(sv[1], types, 4, NULL), 1, "only the Hello, then EOF");
    cr_assert_eq(types[0], MSG_HELLO);
    close(sv[1]);
    teardown_loop(NULL, 0);
}

/* One way of breaking the protocol after a good handshake. */
typedef struct {
    const char *what;
    uint8_t bytes[64];
    size_t len;
} bad_input;

static void run_protocol_error(const bad_input *bad)
{
    setup_loop();
    srv_opts.max_frame = 1024;
    int port = listen_tcp();
    peer good;
    connect_tcp(&good, port, NULL, "good");
    run_until(is_ready, &good, "good handshake");
    cr_assert_eq(good.closes, 0, "%s", good.why);

    /* The offender: a raw socket that handshakes, then misbehaves. */
    int fd = net_tcp_connect("127.0.0.1", port, 1000);
    cr_assert_geq(fd, 0);
    write_handshake(fd);
    cr_assert_eq(net_write_all(fd, bad->bytes, bad->len), 0);
    int two = 2;
    run_until(nsrv_at_least, &two, "accept");
    peer *off = &srv[1]; /* "good" was accepted before we connected */
    run_until(is_closed, off, bad->what);
    cr_assert_eq(off->reason, CONN_EPROTO, "%s: %d %s", bad->what, off->reason, off->why);
    cr_assert_str_eq(off->name, "raw");
    cr_assert_eq(off->frames, 1, "%s: only the handshake was handed up", bad->what);
    /* The offender sees its connection end. Output still queued when the
     * error is found is dropped, so it may miss the Hello or the reply. */
    uint16_t types[4];
    int n = read_until_eof(fd, types, 4, NULL);
    cr_assert_leq(n, 2, "%s: got %d frames", bad->what, n);
    if (n >= 1)
        cr_assert_eq(types[0], MSG_HELLO);
    if (n == 2)
        cr_assert_eq(types[1], MSG_HANDSHAKE_REPLY);
    close(fd);

    /* The other connection is untouched. */
    peer *s = srv_by_name("good");
    cr_assert_eq(s->closes, 0);
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    req.req_id = 9;
    cr_assert_eq(conn_send(good.c, MSG_KV_GET_REQ, &req.base), 0);
    LOOP_UNTIL(good.last_get_req == 9);
    cr_assert_eq(s->last_get_req, 9);
    teardown_loop(&good, 1);
}

static size_t hdr(uint8_t *b, uint16_t type, uint32_t len)
{
    frame_hdr_encode(b, type, len);
    return FRAME_HDR_SIZE;
}

Test(conn, unknown_type_closes_only_that_conn)
{
    bad_input b = {.what = "unknown type"};
    b.len = hdr(b.bytes, 999, 0);
    run_protocol_error(&b);
}

Test(conn, malformed_payload_closes_only_that_conn)
{
    bad_input b = {.what = "malformed payload"};
    b.len = hdr(b.bytes, MSG_KV_GET_REQ, 3);
    /* field 3 (bytes) claims 5 bytes, only 1 follows */
    b.bytes[b.len++] = 0x1a;
    b.bytes[b.len++] = 0x05;
    b.bytes[b.len++] = 'x';
    run_protocol_error(&b);
}

Test(conn, invalid_wire_type_closes_only_that_conn)
{
    bad_input b = {.what = "wire type 7"};
    b.len = hdr(b.bytes, MSG_KV_GET_REQ, 1);
    b.bytes[b.len++] = 0x0f;
    run_protocol_error(&b);
}

Test(conn, oversized_frame_closes_only_that_conn)
{
    bad_input b = {.what = "oversized frame"};
    b.len = hdr(b.bytes, MSG_KV_PUT_REQ, 1025); /* max_frame is 1024 */
    run_protocol_error(&b);
}

Test(conn, bad_magic_closes_only_that_conn)
{
    bad_input b = {.what = "bad magic"};
    memcpy(b.bytes, "GET / HTTP/1.1\r\n\r\n", 18);
    b.len = 18;
    run_protocol_error(&b);
}

Test(conn, second_handshake_closes_only_that_conn)
{
    bad_input b = {.what = "handshake twice"};
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.version = MSG_PROTOCOL_VERSION;
    size_t n;
    uint8_t *f = encode(MSG_HANDSHAKE, &hs.base, &n);
    cr_assert_leq(n, sizeof(b.bytes));
    memcpy(b.bytes, f, n);
    b.len = n;
    free(f);
    run_protocol_error(&b);
}

Test(conn, peer_closing_mid_frame_is_a_protocol_error)
{
    setup_loop();
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer *p = new_srv_peer();
    p->c = conn_accept(base, sv[0], &srv_h, p, &srv_opts);
    write_handshake(sv[1]);
    uint8_t h[FRAME_HDR_SIZE];
    hdr(h, MSG_KV_GET_REQ, 100);
    cr_assert_eq(net_write_all(sv[1], h, sizeof(h)), 0);
    shutdown(sv[1], SHUT_WR);
    run_until(is_closed, p, "close");
    cr_assert_eq(p->reason, CONN_EPROTO, "%d %s", p->reason, p->why);
    cr_assert(p->got_handshake);
    close(sv[1]);
    teardown_loop(NULL, 0);
}

static bool got_n_puts(void *arg)
{
    peer *p = arg;
    return p->next_req >= 10000 || p->closes > 0;
}

Test(conn, many_frames_in_one_turn_arrive_in_order)
{
    enum { N = 10000 };
    setup_loop();
    echo_puts = true;
    int port = listen_tcp();
    peer cli;
    connect_tcp(&cli, port, NULL, "many");
    run_until(is_ready, &cli, "handshake");
    cr_assert_eq(cli.closes, 0, "%s", cli.why);
    cli.next_req = 0;
    uint8_t value[100];
    memset(value, 'v', sizeof(value));
    for (int i = 0; i < N; i++) {
        Rpc__KvPutRequest req = RPC__KV_PUT_REQUEST__INIT;
        req.req_id = (uint64_t)i;
        req.ns = "ns";
        req.value.data = value;
        req.value.len = sizeof(value);
        cr_assert_eq(conn_send(cli.c, MSG_KV_PUT_REQ, &req.base), 0);
    }
    /* Nothing is written inside conn_send: it all waits for the loop. */
    cr_assert_geq(conn_pending_output(cli.c), N * 100);
    peer *s = srv_by_name("many");
    cr_assert_not_null(s);
    run_until(got_n_puts, s, "requests");
    cr_assert_eq(s->closes, 0, "%s", s->why);
    cr_assert_eq(s->next_req, N);
    cr_assert_not(s->out_of_order);
    run_until(got_n_puts, &cli, "replies");
    cr_assert_eq(cli.next_req, N);
    cr_assert_not(cli.out_of_order);
    cr_assert_eq(conn_pending_output(cli.c), 0);
    teardown_loop(&cli, 1);
}

Test(conn, close_after_flush_delivers_queued_frames)
{
    setup_loop();
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer *p = new_srv_peer();
    p->c = conn_accept(base, sv[0], &srv_h, p, &srv_opts);
    Rpc__KvGetReply r = RPC__KV_GET_REPLY__INIT;
    for (int i = 0; i < 3; i++)
        conn_send(p->c, MSG_KV_GET_REPLY, &r.base);
    conn_close_after_flush(p->c);
    cr_assert_eq(conn_send(p->c, MSG_KV_GET_REPLY, &r.base), -1, "closing: no new frames");
    run_until(is_closed, p, "close");
    cr_assert_eq(p->reason, CONN_LOCAL);
    uint16_t types[8];
    cr_assert_eq(read_until_eof(sv[1], types, 8, NULL), 4, "Hello + 3 replies");
    close(sv[1]);
    teardown_loop(NULL, 0);
}

/* ---------------------------------------------- descriptors and bconn */

typedef struct {
    char path[128];
    atomic_int done;
    int rc;
    int nfds;
    int fd;
    char content[32];
    uint32_t num_fds;
    int call_rc;
    uint64_t call_req;
    int code;
    char err[256];
} bclient;

static void *bclient_main(void *arg)
{
    bclient *b = arg;
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_WORKER;
    hs.name = "bconn";
    Rpc__HandshakeReply *reply = NULL;
    int fds[4] = {-1, -1, -1, -1};
    bconn *c = bconn_open(NULL, 0, b->path, NULL, &hs, 3000, &reply, fds, 4, &b->nfds, &b->code,
                          b->err, sizeof(b->err));
    if (c == NULL) {
        b->rc = -1;
        atomic_store(&b->done, 1);
        return NULL;
    }
    b->num_fds = reply->num_fds;
    msg_free(&reply->base);
    b->fd = fds[0];
    if (b->nfds == 1) {
        ssize_t r = pread(fds[0], b->content, sizeof(b->content) - 1, 0);
        if (r > 0)
            b->content[r] = '\0';
    }
    /* And a request/reply round trip on the same connection. */
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    req.req_id = 4242;
    ProtobufCMessage *m = NULL;
    b->call_rc = bconn_call(c, MSG_KV_GET_REQ, &req.base, MSG_KV_GET_REPLY, &m, 3000);
    if (m) {
        b->call_req = ((Rpc__KvGetReply *)m)->req_id;
        msg_free(m);
    }
    for (int i = 0; i < b->nfds; i++)
        close(fds[i]);
    bconn_close(c);
    atomic_store(&b->done, 1);
    return NULL;
}

static bool bclient_done(void *arg)
{
    return atomic_load(&((bclient *)arg)->done) != 0;
}

Test(conn, send_fds_reaches_bconn_open)
{
    setup_loop();
    char dir[] = "/tmp/rayc_test_conn_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    bclient b = {0};
    snprintf(b.path, sizeof(b.path), "%s/sock", dir);
    listen_unix(b.path);

    int mfd = memfd_create("rayc-test", MFD_CLOEXEC);
    cr_assert_geq(mfd, 0);
    cr_assert_eq(write(mfd, "shared bytes", 12), 12);
    reply_fd = mfd;

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, bclient_main, &b), 0);
    run_until(bclient_done, &b, "blocking client");
    pthread_join(th, NULL);
    cr_assert_eq(b.rc, 0, "bconn_open: %d %s", b.code, b.err);
    cr_assert_eq(b.num_fds, 1);
    cr_assert_eq(b.nfds, 1, "one descriptor arrived");
    cr_assert_neq(b.fd, mfd, "a new descriptor, not the same number");
    cr_assert_str_eq(b.content, "shared bytes", "the descriptor is the memfd");
    cr_assert_eq(b.call_rc, 0, "bconn_call: %s", rayc_strerror(b.call_rc));
    cr_assert_eq(b.call_req, 4242);
    peer *s = srv_by_name("bconn");
    cr_assert_not_null(s);
    cr_assert_eq(s->role, RPC__ROLE__ROLE_WORKER);
    run_until(all_srv_closed, NULL, "server sees the client go");
    cr_assert_eq(s->reason, CONN_EOF, "%s", s->why);
    close(mfd);
    teardown_loop(NULL, 0);
    unlink(b.path);
    rmdir(dir);
}

/* The stream a peer read, and where descriptors came with it. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int nfds, fd;
    size_t fds_from, fds_to; /* the bytes of the recv the descriptor came with */
} stream;

/* Read what is there (non-blocking), keeping the bytes and noting the
 * descriptors. */
static void read_stream(int sock, stream *st)
{
    for (;;) {
        if (st->cap - st->len < 65536) {
            st->cap = st->cap * 2 + 65536;
            st->buf = realloc(st->buf, st->cap);
            cr_assert_not_null(st->buf);
        }
        int fds[4], nfds = 0;
        ssize_t n = net_recv_fds(sock, st->buf + st->len, st->cap - st->len, fds, 4, &nfds);
        if (n <= 0)
            return;
        if (nfds > 0) {
            st->nfds += nfds;
            st->fd = fds[0];
            st->fds_from = st->len;
            st->fds_to = st->len + (size_t)n;
        }
        st->len += (size_t)n;
    }
}

/* Offset of the first frame of this type in the stream, or -1 (not all
 * there yet). */
static long frame_offset(const stream *st, uint16_t want)
{
    size_t off = 0;
    while (off + FRAME_HDR_SIZE <= st->len) {
        uint16_t type;
        uint32_t len;
        cr_assert_eq(frame_hdr_decode(st->buf + off, FRAME_DEFAULT_MAX, &type, &len), 0);
        if (off + FRAME_HDR_SIZE + len > st->len)
            return -1;
        if (type == want)
            return (long)off;
        off += FRAME_HDR_SIZE + len;
    }
    return -1;
}

/* Issue 13: descriptors queued behind output a slow peer has not read yet.
 * Before, conn_send_fds made the socket blocking and wrote out everything
 * queued first: the raylet's loop stalled until that client read. */
Test(conn, send_fds_queues_behind_unread_output_without_blocking)
{
    setup_loop();
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(net_set_nonblock(sv[1], true), 0);
    peer *p = new_srv_peer();
    p->c = conn_accept(base, sv[0], &srv_h, p, &srv_opts);
    static uint8_t big[256 << 10];
    Rpc__KvGetReply r = RPC__KV_GET_REPLY__INIT;
    r.value = (ProtobufCBinaryData){sizeof(big), big};
    for (int i = 0; i < 16; i++) /* 4 MiB: far more than a socket buffer */
        cr_assert_eq(conn_send(p->c, MSG_KV_GET_REPLY, &r.base), 0);
    for (int i = 0; i < 5; i++)
        loop_turn(); /* the socket fills up; the peer reads nothing */
    int mfd = memfd_create("rayc-test", MFD_CLOEXEC);
    cr_assert_geq(mfd, 0);
    cr_assert_eq(write(mfd, "shared bytes", 12), 12);
    Rpc__HandshakeReply hr = RPC__HANDSHAKE_REPLY__INIT;
    hr.num_fds = 1;
    cr_assert_eq(conn_send_fds(p->c, MSG_HANDSHAKE_REPLY, &hr.base, &mfd, 1), 0);
    close(mfd); /* the conn keeps its own */
    Rpc__StoreStatsReply after = RPC__STORE_STATS_REPLY__INIT;
    cr_assert_eq(conn_send(p->c, MSG_STORE_STATS_REPLY, &after.base), 0);
    stream st = {0};
    LOOP_UNTIL((read_stream(sv[1], &st), frame_offset(&st, MSG_STORE_STATS_REPLY) >= 0));
    long at = frame_offset(&st, MSG_HANDSHAKE_REPLY);
    cr_assert_eq(st.nfds, 1, "one descriptor arrived");
    cr_assert((size_t)at >= st.fds_from && (size_t)at < st.fds_to,
              "the descriptor came with bytes [%zu, %zu), the reply starts at %ld", st.fds_from,
              st.fds_to, at);
    /* The read that brought it ends with the reply: librayc hands the socket
     * to another reader after the handshake and must not have read past it. */
    size_t end = (size_t)at + msg_frame_size(&hr.base);
    cr_assert_eq(st.fds_to, end, "the descriptor's read ends at %zu, the reply at %zu", st.fds_to,
                 end);
    char content[16] = "";
    cr_assert_eq(pread(st.fd, content, 12, 0), 12);
    cr_assert_str_eq(content, "shared bytes");
    close(st.fd);
    free(st.buf);
    close(sv[1]);
    run_until(is_closed, p, "close");
    teardown_loop(NULL, 0);
}

static void *bclient_wrong_token(void *arg)
{
    bclient *b = arg;
    int port = atoi(b->path);
    Rpc__HandshakeReply *reply = NULL;
    bconn *c = bconn_open("127.0.0.1", port, NULL, "wrong", NULL, 3000, &reply, NULL, 0, NULL,
                          &b->code, b->err, sizeof(b->err));
    b->rc = c ? 0 : -1;
    bconn_close(c);
    atomic_store(&b->done, 1);
    return NULL;
}

Test(conn, bconn_open_with_wrong_token_fails_with_eauth)
{
    setup_loop();
    srv_opts.require_auth = true;
    srv_opts.token = TOKEN;
    int port = listen_tcp();
    bclient b = {0};
    snprintf(b.path, sizeof(b.path), "%d", port);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, bclient_wrong_token, &b), 0);
    run_until(bclient_done, &b, "blocking client");
    pthread_join(th, NULL);
    cr_assert_eq(b.rc, -1);
    cr_assert_eq(b.code, RAYC_EAUTH, "%d %s", b.code, b.err);
    run_until(all_srv_closed, NULL, "server side");
    cr_assert_eq(srv[0].reason, CONN_EAUTH);
    teardown_loop(NULL, 0);
}
