/*
 * fuzz_gcs.c -- libFuzzer target for every GCS message handler: a real
 * gcs_server (memory storage, its own event_base) per input, fed frames over
 * socketpairs. Nothing a peer sends may crash the GCS, leak, hang it, or
 * make it send a frame that does not unpack.
 *
 * Each input gets three connections, accepted through the listener's own
 * path (gcs_server__accept: gate, deadline, token):
 *   conn 0  pre-handshake: the fuzzer's bytes straight after Hello
 *   conn 1  post-handshake, role = byte 0 of the input (unknown, raylet,
 *           driver, worker, cli): a valid Handshake with the right token
 *           first, then the fuzzer's frames
 *   conn 2  post-handshake as a raylet (pub/sub peers, node deaths)
 *
 * Input layout (structure-aware, so mutations stay frames): byte 0 picks the
 * role of conn 1; then records, each
 *   op      conn = op % 3, kind = (op / 3) % 4
 *   kind 0/1: a frame: type byte (an index into the MSG_TYPES table, or
 *           beyond it a raw frame type), u16 big-endian length, payload;
 *           the harness writes the header
 *   kind 2: raw bytes: u8 length, bytes written verbatim (bad headers,
 *           split frames)
 *   kind 3: close the connection from the peer's side
 * After each record the loop runs until quiet and every reply is read back,
 * decoded and unpacked.
 *
 * Seeds: FUZZ_WRITE_SEEDS=<dir> build/fuzz/fuzz_gcs writes one file per
 * request type (tests/fuzz/corpus_gcs/ holds them) and exits.
 * Build and run: make fuzz FUZZ_SECONDS=60, or longer on one target:
 *   make build/fuzz/fuzz_gcs && build/fuzz/fuzz_gcs -max_len=8192 \
 *       -max_total_time=3600 build/fuzz/corpus_gcs tests/fuzz/corpus_gcs
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "../../gcs/gcs_server.h"
#include "../../gcs/gcs_server_int.h"
#include "../../gcs/gcs_storage.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define NCONN       3
#define QUIET_TURNS 4   /* loop turns in a row with nothing read back = quiet */
#define MAX_TURNS   256 /* per record: bounds a handler that keeps the loop busy */
#define TOKEN       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const uint16_t types[] = {
#define T(num, NAME, lower) MSG_##NAME,
    MSG_TYPES(T)
#undef T
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

typedef struct {
    int fd; /* our end; -1 once closed */
    frame_decoder dec;
} peer;

typedef struct {
    struct event_base *base;
    gcs_server *srv;
    peer p[NCONN];
} harness;

/* Read what the server sent; every frame must unpack. Returns bytes read. */
static size_t drain(peer *p)
{
    size_t total = 0;
    while (p->fd >= 0) {
        size_t avail;
        uint8_t *buf = frame_decoder_space(&p->dec, 0, &avail);
        REQUIRE(buf != NULL);
        ssize_t n = read(p->fd, buf, avail);
        if (n <= 0)
            break;
        frame_decoder_commit(&p->dec, (size_t)n);
        total += (size_t)n;
        frame_t f;
        int rc;
        while ((rc = frame_decoder_next(&p->dec, &f)) == 1) {
            ProtobufCMessage *m = msg_unpack(f.type, f.payload, f.length);
            REQUIRE(m != NULL); /* the GCS only sends well-formed frames */
            msg_free(m);
        }
        REQUIRE(rc == 0);
    }
    return total;
}

/* Run the loop until no reply arrives for QUIET_TURNS turns. */
static void pump(harness *h)
{
    int quiet = 0;
    for (int i = 0; i < MAX_TURNS && quiet < QUIET_TURNS; i++) {
        event_base_loop(h->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
        size_t got = 0;
        for (int c = 0; c < NCONN; c++)
            got += drain(&h->p[c]);
        quiet = got ? 0 : quiet + 1;
    }
}

/* Write all of buf to the server, running the loop when the socket is full.
 * Gives up (drops the rest) when the server stops reading. */
static void send_bytes(harness *h, peer *p, const uint8_t *buf, size_t len)
{
    int stuck = 0;
    while (len > 0 && p->fd >= 0 && stuck < 8) {
        ssize_t n = write(p->fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            stuck = 0;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return; /* EPIPE: the server closed it */
        pump(h);
        stuck++;
    }
}

static void send_frame(harness *h, peer *p, uint16_t type, const uint8_t *payload, size_t len)
{
    uint8_t hdr[FRAME_HDR_SIZE];
    frame_hdr_encode(hdr, type, (uint32_t)len);
    send_bytes(h, p, hdr, sizeof(hdr));
    send_bytes(h, p, payload, len);
}

static void send_msg(harness *h, peer *p, uint16_t type, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    REQUIRE(buf != NULL);
    protobuf_c_message_pack(m, buf);
    send_frame(h, p, type, buf, len);
    free(buf);
}

/* Read Hello, answer with a valid Handshake of `role`. Before any pump():
 * drain() would consume the Hello. */
static void handshake(harness *h, peer *p, int role)
{
    frame_t f;
    int rc = 0;
    for (int i = 0; i < MAX_TURNS && (rc = frame_decoder_next(&p->dec, &f)) == 0; i++) {
        event_base_loop(h->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
        size_t avail;
        uint8_t *buf = frame_decoder_space(&p->dec, 0, &avail);
        ssize_t n = read(p->fd, buf, avail);
        if (n > 0)
            frame_decoder_commit(&p->dec, (size_t)n);
    }
    REQUIRE(rc == 1 && f.type == MSG_HELLO);
    Rpc__Hello *hello = (Rpc__Hello *)msg_unpack(f.type, f.payload, f.length);
    REQUIRE(hello != NULL && hello->nonce.len == AUTH_NONCE_LEN);
    uint8_t proof[AUTH_PROOF_LEN];
    auth_proof(TOKEN, hello->nonce.data, hello->nonce.len, proof);
    msg_free(&hello->base);
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.version = MSG_PROTOCOL_VERSION;
    hs.role = role;
    hs.proof.data = proof;
    hs.proof.len = sizeof(proof);
    hs.pid = 1;
    hs.name = "fuzz";
    send_msg(h, p, MSG_HANDSHAKE, &hs.base);
}

static void connect_peer(harness *h, peer *p)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    p->fd = sv[1];
    frame_decoder_init(&p->dec, FRAME_DEFAULT_MAX);
    gcs_server__accept(h->srv, sv[0]);
}

static void close_peer(peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static rayc_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    harness h = {0};
    h.base = event_base_new();
    REQUIRE(h.base != NULL);
    char err[256];
    h.srv = gcs_server_new(h.base, &cfg, TOKEN, gcs_storage_memory_new(h.base), &gcs_rpc_services,
                           err, sizeof(err));
    REQUIRE(h.srv != NULL);
    for (int i = 0; i < MAX_TURNS && !gcs_server_is_ready(h.srv); i++)
        event_base_loop(h.base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
    REQUIRE(gcs_server_is_ready(h.srv));
    for (int c = 0; c < NCONN; c++)
        connect_peer(&h, &h.p[c]);
    handshake(&h, &h.p[1], data[0] % 5);
    handshake(&h, &h.p[2], RPC__ROLE__ROLE_RAYLET);
    pump(&h);

    size_t pos = 1;
    while (pos < size) {
        uint8_t op = data[pos++];
        peer *p = &h.p[op % NCONN];
        switch ((op / NCONN) % 4) {
        case 0:
        case 1: {
            if (size - pos < 3) {
                pos = size;
                break;
            }
            uint8_t t = data[pos];
            uint16_t type = t < NTYPES ? types[t] : t;
            size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];
            pos += 3;
            if (len > size - pos)
                len = size - pos;
            send_frame(&h, p, type, data + pos, len);
            pos += len;
            break;
        }
        case 2: {
            size_t len = pos < size ? data[pos++] : 0;
            if (len > size - pos)
                len = size - pos;
            send_bytes(&h, p, data + pos, len);
            pos += len;
            break;
        }
        case 3:
            close_peer(p);
            break;
        }
        pump(&h);
    }

    for (int c = 0; c < NCONN; c++)
        close_peer(&h.p[c]);
    pump(&h);
    gcs_server_free(h.srv);
    event_base_free(h.base);
    for (int c = 0; c < NCONN; c++)
        frame_decoder_free(&h.p[c].dec);
    return 0;
}

/* ---------------------------------------------------------------- seeds */

typedef struct {
    uint8_t buf[8192];
    size_t len;
} seed;

static void seed_frame(seed *s, int conn, uint16_t type, const ProtobufCMessage *m)
{
    size_t t = 0;
    while (t < NTYPES && types[t] != type)
        t++;
    REQUIRE(t < NTYPES);
    size_t len = protobuf_c_message_get_packed_size(m);
    REQUIRE(s->len + 4 + len <= sizeof(s->buf));
    s->buf[s->len++] = (uint8_t)conn; /* kind 0 */
    s->buf[s->len++] = (uint8_t)t;
    s->buf[s->len++] = (uint8_t)(len >> 8);
    s->buf[s->len++] = (uint8_t)len;
    s->len += protobuf_c_message_pack(m, s->buf + s->len);
}

static void seed_write(const char *dir, const char *name, const seed *s)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(s->buf, 1, s->len, f) == s->len);
    fclose(f);
}

/* A raylet (conn 2) that registers, so node-scoped requests find a node. */
static uint8_t node_id[NODE_ID_SIZE] = {0x11, 0x22, 0x33};

static void seed_register(seed *s)
{
    Rpc__NodeInfo node = RPC__NODE_INFO__INIT;
    node.node_id.data = node_id;
    node.node_id.len = sizeof(node_id);
    node.address = "127.0.0.1:1234";
    node.hostname = "fuzz";
    Rpc__Resource cpu = RPC__RESOURCE__INIT;
    cpu.name = "CPU";
    cpu.amount = 4;
    Rpc__Resource *res[] = {&cpu};
    node.n_resources_total = 1;
    node.resources_total = res;
    Rpc__RegisterNodeRequest r = RPC__REGISTER_NODE_REQUEST__INIT;
    r.req_id = 1;
    r.node = &node;
    seed_frame(s, 2, MSG_REGISTER_NODE_REQ, &r.base);
}

static void write_seeds(const char *dir)
{
    uint8_t oid[OBJECT_ID_SIZE] = {0xaa, 0xbb};
    uint8_t aid[ACTOR_ID_SIZE] = {0x01, 0x02, [12] = 0, 0, 0, 1};
    seed s;
#define SEED(name, role, body)                                                                     \
    do {                                                                                           \
        s.len = 0;                                                                                 \
        s.buf[s.len++] = (role);                                                                   \
        body;                                                                                      \
        seed_write(dir, name, &s);                                                                 \
    } while (0)

    SEED("register_heartbeat", RPC__ROLE__ROLE_CLI, {
        seed_register(&s);
        Rpc__HeartbeatRequest hb = RPC__HEARTBEAT_REQUEST__INIT;
        hb.req_id = 2;
        hb.node_id.data = node_id;
        hb.node_id.len = sizeof(node_id);
        seed_frame(&s, 2, MSG_HEARTBEAT_REQ, &hb.base);
        Rpc__ListNodesRequest ln = RPC__LIST_NODES_REQUEST__INIT;
        seed_frame(&s, 1, MSG_LIST_NODES_REQ, &ln.base);
        Rpc__DrainNodeRequest dr = RPC__DRAIN_NODE_REQUEST__INIT;
        dr.node_id = hb.node_id;
        dr.reason = "fuzz";
        seed_frame(&s, 1, MSG_DRAIN_NODE_REQ, &dr.base);
    });
    SEED("jobs", RPC__ROLE__ROLE_DRIVER, {
        Rpc__JobInfo job = RPC__JOB_INFO__INIT;
        job.entrypoint = "fuzz";
        job.driver_pid = 7;
        Rpc__AddJobRequest aj = RPC__ADD_JOB_REQUEST__INIT;
        aj.req_id = 1;
        aj.job = &job;
        seed_frame(&s, 1, MSG_ADD_JOB_REQ, &aj.base);
        Rpc__ListJobsRequest lj = RPC__LIST_JOBS_REQUEST__INIT;
        seed_frame(&s, 1, MSG_LIST_JOBS_REQ, &lj.base);
        Rpc__FinishJobRequest fj = RPC__FINISH_JOB_REQUEST__INIT;
        fj.job_id = 1;
        seed_frame(&s, 1, MSG_FINISH_JOB_REQ, &fj.base);
    });
    SEED("kv", RPC__ROLE__ROLE_DRIVER, {
        Rpc__KvPutRequest put = RPC__KV_PUT_REQUEST__INIT;
        put.ns = "fun";
        put.key.data = (uint8_t *)"k";
        put.key.len = 1;
        put.value.data = (uint8_t *)"value";
        put.value.len = 5;
        seed_frame(&s, 1, MSG_KV_PUT_REQ, &put.base);
        Rpc__KvGetRequest get = RPC__KV_GET_REQUEST__INIT;
        get.ns = "fun";
        get.key = put.key;
        seed_frame(&s, 1, MSG_KV_GET_REQ, &get.base);
        Rpc__KvExistsRequest ex = RPC__KV_EXISTS_REQUEST__INIT;
        ex.ns = "fun";
        ex.key = put.key;
        seed_frame(&s, 1, MSG_KV_EXISTS_REQ, &ex.base);
        Rpc__KvDelRequest del = RPC__KV_DEL_REQUEST__INIT;
        del.ns = "fun";
        del.key = put.key;
        seed_frame(&s, 1, MSG_KV_DEL_REQ, &del.base);
        put.ns = "code";
        seed_frame(&s, 1, MSG_KV_PUT_REQ, &put.base);
    });
    SEED("objects", RPC__ROLE__ROLE_CLI, {
        Rpc__SubscribeRequest sub = RPC__SUBSCRIBE_REQUEST__INIT;
        sub.channels = 15;
        seed_frame(&s, 1, MSG_SUBSCRIBE_REQ, &sub.base);
        seed_register(&s);
        Rpc__ObjectLocation loc = RPC__OBJECT_LOCATION__INIT;
        loc.object_id.data = oid;
        loc.object_id.len = sizeof(oid);
        loc.size = 100;
        Rpc__ObjectLocation *locs[] = {&loc};
        Rpc__ObjectLocationUpdate up = RPC__OBJECT_LOCATION_UPDATE__INIT;
        up.node_id.data = node_id;
        up.node_id.len = sizeof(node_id);
        up.n_updates = 1;
        up.updates = locs;
        seed_frame(&s, 2, MSG_OBJECT_LOCATION_UPDATE, &up.base);
        Rpc__GetObjectLocationsRequest gl = RPC__GET_OBJECT_LOCATIONS_REQUEST__INIT;
        ProtobufCBinaryData ids[] = {loc.object_id};
        gl.n_object_ids = 1;
        gl.object_ids = ids;
        seed_frame(&s, 1, MSG_GET_OBJECT_LOCATIONS_REQ, &gl.base);
        loc.removed = true;
        seed_frame(&s, 2, MSG_OBJECT_LOCATION_UPDATE, &up.base);
        s.buf[s.len++] = 3 * 3 + 2; /* kind 3: the raylet goes away */
    });
    SEED("actors", RPC__ROLE__ROLE_DRIVER, {
        Rpc__JobInfo job = RPC__JOB_INFO__INIT;
        Rpc__AddJobRequest aj = RPC__ADD_JOB_REQUEST__INIT;
        aj.job = &job;
        seed_frame(&s, 1, MSG_ADD_JOB_REQ, &aj.base);
        seed_register(&s);
        Rpc__ActorInfo a = RPC__ACTOR_INFO__INIT;
        a.actor_id.data = aid;
        a.actor_id.len = sizeof(aid);
        a.job_id = 1;
        a.class_name = "Counter";
        a.name = "c";
        a.max_restarts = 1;
        Rpc__RegisterActorRequest ra = RPC__REGISTER_ACTOR_REQUEST__INIT;
        ra.req_id = 3;
        ra.actor = &a;
        seed_frame(&s, 1, MSG_REGISTER_ACTOR_REQ, &ra.base);
        Rpc__GetActorRequest ga = RPC__GET_ACTOR_REQUEST__INIT;
        ga.name = "c";
        seed_frame(&s, 1, MSG_GET_ACTOR_REQ, &ga.base);
        Rpc__ListActorsRequest la = RPC__LIST_ACTORS_REQUEST__INIT;
        seed_frame(&s, 1, MSG_LIST_ACTORS_REQ, &la.base);
        Rpc__KillActorRequest ka = RPC__KILL_ACTOR_REQUEST__INIT;
        ka.actor_id = a.actor_id;
        seed_frame(&s, 1, MSG_KILL_ACTOR_REQ, &ka.base);
        s.buf[s.len++] = 3 * 3 + 1; /* the driver goes away: its job ends */
    });
    SEED("preauth", 0, {
        Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
        hs.version = MSG_PROTOCOL_VERSION;
        uint8_t bad_proof[AUTH_PROOF_LEN] = {1};
        hs.proof.data = bad_proof;
        hs.proof.len = sizeof(bad_proof);
        seed_frame(&s, 0, MSG_HANDSHAKE, &hs.base);
        Rpc__ListNodesRequest ln = RPC__LIST_NODES_REQUEST__INIT;
        seed_frame(&s, 0, MSG_LIST_NODES_REQ, &ln.base);
        s.buf[s.len++] = 2 * 3 + 1; /* raw bytes on conn 1: a bad header */
        s.buf[s.len++] = 12;
        memcpy(s.buf + s.len, "RAYC\0\1\0\x0e\x7f\xff\xff\xff", 12);
        s.len += 12;
    });
#undef SEED
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    /* Format every log line (into /dev/null, or stderr with FUZZ_LOG=1 to
     * follow a reproducer): formats see hostile strings. */
    log_init(getenv("FUZZ_LOG") ? NULL : "/dev/null", LOG_LEVEL_DEBUG);
    log_set_rate_limit(0);
    config_defaults(&cfg);
    cfg.port = 0;
    const char *dir = getenv("FUZZ_WRITE_SEEDS");
    if (dir) {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}
