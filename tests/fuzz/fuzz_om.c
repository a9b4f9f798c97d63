/*
 * fuzz_om.c -- libFuzzer target for the raylet-to-raylet object transfer
 * protocol (raylet/object_manager.c): the handlers of PULL_REQUEST,
 * PULL_REPLY and OBJECT_CHUNK frames from peer raylets, and the pull state
 * machine behind them, against a small store (256 KiB: "store full",
 * eviction and spilling happen) with frames of at most 4 KiB (transfers take
 * several chunks).
 *
 * Two fake peer raylets, nodes A and B, are connections on socketpairs: the
 * raylet side is a real conn whose frames go to om_handle, as
 * node_manager.c routes them; this side writes fuzzer-chosen frames and
 * reads back what the object manager sends (every frame must unpack; chunks
 * must lie inside their object; replies inside the store). The GCS directory
 * is a queue of lookups the fuzzer answers (with A, B, this node, an
 * unknown node, or a lost GCS). Pulls are started by the fuzzer; every
 * pull's callback must run exactly once, at the latest when the object
 * manager is freed.
 *
 * Input: byte 0 picks the store's full-wait (0 or 1 ms); then records, each
 *   op    peer = op & 1, kind = (op >> 1) % K_COUNT, then its arguments
 *   (see run_op). Object ids are one byte (an index into a pool of 8 ids;
 *   bit 3 makes it malformed), sizes two bytes with a scale.
 * Seeds: FUZZ_WRITE_SEEDS=<dir> build/fuzz/fuzz_om writes a few and exits
 * (tests/fuzz/corpus_om/ holds them).
 * Build and run: make fuzz, or one target longer:
 *   make build/fuzz/fuzz_om && build/fuzz/fuzz_om -max_len=4096 \
 *       -max_total_time=3600 build/fuzz/corpus_om tests/fuzz/corpus_om
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"
#include "../../raylet/object_manager.h"
#include "../../raylet/plasma_store.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define NPEERS      2
#define NIDS        8
#define STORE_BYTES (256u << 10)
#define MAX_FRAME   4096 /* the peers' frame limit: objects move in chunks */
#define MAX_LOOKUPS 16   /* directory lookups waiting for an answer */
#define TURNS       8    /* loop turns after each record */

enum {
    K_PUT,     /* a local object (sealed) for peers to pull */
    K_PULL,    /* om_pull with a hint */
    K_REQUEST, /* PULL_REQUEST from the peer */
    K_REPLY,   /* PULL_REPLY from the peer */
    K_CHUNK,   /* OBJECT_CHUNK from the peer */
    K_LOOKUP,  /* answer the oldest directory lookup */
    K_RECONNECT /* the peer's connection closes; a new one opens */,
    K_DIED,   /* the peer's node dies (or comes back) */
    K_RAW,    /* a raw frame from the peer */
    K_DELETE, /* the local copy goes (evicted, freed) */
    K_COUNT
};

typedef struct harness harness;

typedef struct {
    harness *h;
    node_id_t node;
    bool alive;
    conn *c; /* the raylet's side; NULL once closed */
    int fd;  /* our side */
    frame_decoder dec;
    uint64_t last_req[NIDS]; /* req_id of the last PULL_REQUEST per pool id */
} fpeer;

typedef struct {
    gs_reply_cb cb;
    void *arg;
    size_t n;
    uint8_t ids[4][OBJECT_ID_SIZE];
} lookup;

struct harness {
    struct event_base *base;
    plasma_store *s;
    plasma_client *writer;
    object_manager *om;
    node_id_t self;
    fpeer p[NPEERS];
    lookup q[MAX_LOOKUPS];
    int nq;
    int pulls_open; /* callbacks still owed */
    const uint8_t *data;
    size_t size, pos;
};

static rayc_config cfg;
static char spill_dir[64];
static uint8_t id_pool[NIDS][OBJECT_ID_SIZE];

/* ---------------------------------------------------------------- input */

static uint8_t take(harness *h)
{
    return h->pos < h->size ? h->data[h->pos++] : 0;
}

static uint16_t take16(harness *h)
{
    uint16_t hi = take(h);
    return (uint16_t)(hi << 8 | take(h));
}

/* Sizes: small, a few chunks, near the store size, or absurd. */
static uint64_t take_size(harness *h)
{
    uint8_t scale = take(h);
    uint64_t v = take16(h);
    switch (scale & 3) {
    case 0:
        return v % 8192;
    case 1:
        return v << 2;
    case 2:
        return (uint64_t)STORE_BYTES + v - 32768;
    default:
        return UINT64_MAX - v;
    }
}

static ProtobufCBinaryData take_id(harness *h, int *index)
{
    uint8_t b = take(h);
    *index = b % NIDS;
    ProtobufCBinaryData id = {OBJECT_ID_SIZE, id_pool[b % NIDS]};
    if (b & 8)
        id.len = b & 16 ? 0 : 5;
    return id;
}

/* ---------------------------------------------------------------- peers */

/* Check one frame the object manager sent to a peer. */
static void check_sent(fpeer *p, const frame_t *f)
{
    if (f->type == MSG_OBJECT_CHUNK) {
        Rpc__ChunkHeader *hdr = NULL;
        const uint8_t *data;
        size_t len;
        REQUIRE(msg_chunk_split(f->payload, f->length, &hdr, &data, &len) == 0);
        REQUIRE(hdr->object_id.len == OBJECT_ID_SIZE);
        REQUIRE(hdr->total <= STORE_BYTES && hdr->offset <= hdr->total);
        REQUIRE(len <= hdr->total - hdr->offset);
        msg_free(&hdr->base);
        return;
    }
    ProtobufCMessage *m = msg_unpack(f->type, f->payload, f->length);
    REQUIRE(m != NULL);
    if (f->type == MSG_PULL_REQUEST) {
        Rpc__PullRequest *r = (Rpc__PullRequest *)m;
        REQUIRE(r->object_id.len == OBJECT_ID_SIZE);
        for (int i = 0; i < NIDS; i++)
            if (memcmp(r->object_id.data, id_pool[i], OBJECT_ID_SIZE) == 0)
                p->last_req[i] = r->req_id;
    } else if (f->type == MSG_PULL_REPLY) {
        Rpc__PullReply *r = (Rpc__PullReply *)m;
        REQUIRE(r->status != NULL);
        if (r->status->code == 0)
            REQUIRE(r->size <= STORE_BYTES);
    }
    msg_free(m);
}

static void drain(fpeer *p)
{
    while (p->fd >= 0) {
        size_t avail;
        uint8_t *buf = frame_decoder_space(&p->dec, 0, &avail);
        REQUIRE(buf != NULL);
        ssize_t n = read(p->fd, buf, avail);
        if (n <= 0)
            break;
        frame_decoder_commit(&p->dec, (size_t)n);
        frame_t f;
        int rc;
        while ((rc = frame_decoder_next(&p->dec, &f)) == 1)
            if (f.type != MSG_HELLO)
                check_sent(p, &f);
        REQUIRE(rc == 0);
    }
}

static void pump(harness *h)
{
    for (int i = 0; i < TURNS; i++) {
        event_base_loop(h->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
        for (int k = 0; k < NPEERS; k++)
            drain(&h->p[k]);
    }
}

/* Write a whole frame to the raylet side, running the loop while the socket
 * is full; the rest is dropped if the raylet stops reading. */
static void send_frame(harness *h, fpeer *p, uint16_t type, const void *payload, size_t len)
{
    uint8_t hdr[FRAME_HDR_SIZE];
    frame_hdr_encode(hdr, type, (uint32_t)len);
    const uint8_t *parts[2] = {hdr, payload};
    size_t lens[2] = {sizeof(hdr), len};
    for (int k = 0; k < 2; k++) {
        int stuck = 0;
        while (lens[k] > 0 && p->fd >= 0 && stuck < 8) {
            ssize_t n = write(p->fd, parts[k], lens[k]);
            if (n > 0) {
                parts[k] += n;
                lens[k] -= (size_t)n;
                stuck = 0;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                return;
            } else {
                pump(h);
                stuck++;
            }
        }
    }
}

static void send_msg(harness *h, fpeer *p, uint16_t type, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    REQUIRE(buf != NULL);
    protobuf_c_message_pack(m, buf);
    send_frame(h, p, type, buf, len);
    free(buf);
}

static void link_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    fpeer *p = conn_data(c);
    if (type == MSG_HANDSHAKE)
        return;
    bool served = om_handle(p->h->om, c, type, m);
    REQUIRE(served ||
            (type != MSG_PULL_REQUEST && type != MSG_PULL_REPLY && type != MSG_OBJECT_CHUNK));
    if (!served)
        conn_close(c); /* as node_manager.c does */
}

static void link_close(conn *c, int reason, const char *why)
{
    (void)reason, (void)why;
    fpeer *p = conn_data(c);
    p->c = NULL;
    om_peer_closed(p->h->om, c);
}

static const conn_handlers link_handlers = {link_frame, link_close};

static void peer_open(harness *h, fpeer *p)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    conn_opts o = {.max_frame = MAX_FRAME, .handshake_timeout_ms = -1};
    p->c = conn_accept(h->base, sv[0], &link_handlers, p, &o);
    REQUIRE(p->c != NULL);
    p->fd = sv[1];
    frame_decoder_init(&p->dec, FRAME_DEFAULT_MAX);
    memset(p->last_req, 0, sizeof(p->last_req));
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.version = MSG_PROTOCOL_VERSION;
    hs.role = RPC__ROLE__ROLE_RAYLET;
    hs.name = "peer";
    send_msg(h, p, MSG_HANDSHAKE, &hs.base);
}

static void peer_close(harness *h, fpeer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    pump(h); /* the raylet side sees EOF: om_peer_closed */
    if (p->c)
        conn_close(p->c);
    pump(h);
    frame_decoder_free(&p->dec);
}

/* ---------------------------------------------------------------- env */

static fpeer *peer_of(harness *h, const node_id_t *node)
{
    for (int k = 0; k < NPEERS; k++)
        if (memcmp(h->p[k].node.b, node->b, NODE_ID_SIZE) == 0)
            return &h->p[k];
    return NULL;
}

static conn *env_peer(void *ctx, const node_id_t *node)
{
    fpeer *p = peer_of(ctx, node);
    return p && p->alive ? p->c : NULL;
}

static bool env_alive(void *ctx, const node_id_t *node)
{
    fpeer *p = peer_of(ctx, node);
    return p && p->alive;
}

static int env_gcs_call(void *ctx, uint16_t type, ProtobufCMessage *req, gs_reply_cb cb, void *arg)
{
    harness *h = ctx;
    REQUIRE(type == MSG_GET_OBJECT_LOCATIONS_REQ);
    if (h->nq == MAX_LOOKUPS)
        return -1; /* "no GCS": the pull retries later */
    Rpc__GetObjectLocationsRequest *r = (Rpc__GetObjectLocationsRequest *)req;
    lookup *l = &h->q[h->nq++];
    *l = (lookup){.cb = cb, .arg = arg};
    for (size_t i = 0; i < r->n_object_ids && l->n < 4; i++) {
        REQUIRE(r->object_ids[i].len == OBJECT_ID_SIZE);
        memcpy(l->ids[l->n++], r->object_ids[i].data, OBJECT_ID_SIZE);
    }
    return 0;
}

/* Answer the oldest lookup: each id at the nodes the bits of `where` pick
 * (A, B, this node, an unknown node), or a lost GCS (NULL). */
static void answer_lookup(harness *h)
{
    uint8_t where = take(h);
    uint64_t size = take_size(h);
    if (h->nq == 0)
        return;
    lookup l = h->q[0];
    memmove(h->q, h->q + 1, (size_t)(--h->nq) * sizeof(h->q[0]));
    if (where == 0xff) {
        l.cb(l.arg, NULL);
        return;
    }
    node_id_t unknown;
    memset(unknown.b, 0x77, NODE_ID_SIZE);
    const node_id_t *nodes[4] = {&h->p[0].node, &h->p[1].node, &h->self, &unknown};
    Rpc__ObjectLocation locs[4 * 4], *ptrs[4 * 4];
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++)
        for (int k = 0; k < 4; k++) {
            if (!(where & (1 << k)))
                continue;
            rpc__object_location__init(&locs[n]);
            locs[n].object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, l.ids[i]};
            locs[n].node_id = (ProtobufCBinaryData){NODE_ID_SIZE, (uint8_t *)nodes[k]->b};
            locs[n].size = size;
            locs[n].removed = (where & 0x40) != 0;
            ptrs[n] = &locs[n];
            n++;
        }
    Rpc__GetObjectLocationsReply r = RPC__GET_OBJECT_LOCATIONS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.status = &st;
    r.locations = ptrs;
    r.n_locations = n;
    l.cb(l.arg, &r.base);
}

/* ---------------------------------------------------------------- ops */

static void on_pulled(void *arg, const object_id_t *id, int status, const char *msg)
{
    harness *h = arg;
    (void)id, (void)msg;
    REQUIRE(status == RAYC_OK || status == RAYC_EOBJECT_LOST || status == RAYC_ESTORE_FULL);
    REQUIRE(h->pulls_open > 0);
    h->pulls_open--;
}

static void put_local(harness *h, const ProtobufCBinaryData *b)
{
    uint64_t size = take_size(h), off;
    if (b->len != OBJECT_ID_SIZE || size > STORE_BYTES / 2)
        return;
    object_id_t id;
    memcpy(id.b, b->data, OBJECT_ID_SIZE);
    if (plasma_create(h->s, h->writer, &id, size, 0, &off) != 0)
        return;
    memset(plasma_store_base(h->s) + off, 0xab, size);
    REQUIRE(plasma_seal(h->s, h->writer, &id) == 0);
}

/* An OBJECT_CHUNK: u32 header length, ChunkHeader, then len data bytes. */
static void send_chunk(harness *h, fpeer *p, const ProtobufCBinaryData *id)
{
    Rpc__ChunkHeader hdr = RPC__CHUNK_HEADER__INIT;
    hdr.object_id = *id;
    hdr.offset = take_size(h);
    hdr.total = take_size(h);
    size_t len = (size_t)take(h) * 16;
    static uint8_t frame[4 + 128 + 255 * 16];
    size_t hl = rpc__chunk_header__pack(&hdr, frame + 4);
    frame[0] = 0, frame[1] = 0, frame[2] = (uint8_t)(hl >> 8), frame[3] = (uint8_t)hl;
    memset(frame + 4 + hl, 0xcd, len);
    send_frame(h, p, MSG_OBJECT_CHUNK, frame, 4 + hl + len);
}

static void send_reply(harness *h, fpeer *p, const ProtobufCBinaryData *id, int index)
{
    uint8_t flags = take(h);
    Rpc__PullReply r = RPC__PULL_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = flags & 1 ? p->last_req[index] : take(h);
    if (flags & 2)
        msg_status_set(&st, flags & 4 ? RAYC_ENOTFOUND : RAYC_ESTORE_FULL, "refused");
    r.status = flags & 8 ? NULL : &st;
    r.object_id = *id;
    r.size = take_size(h);
    uint8_t owner[WORKER_ID_SIZE];
    memset(owner, flags >> 4, sizeof(owner));
    if (flags & 0x10)
        r.owner_id = (ProtobufCBinaryData){flags & 0x20 ? 3 : WORKER_ID_SIZE, owner};
    send_msg(h, p, MSG_PULL_REPLY, &r.base);
}

static void run_op(harness *h)
{
    uint8_t op = take(h);
    fpeer *p = &h->p[op & 1];
    int index;
    ProtobufCBinaryData id = take_id(h, &index);
    object_id_t oid;
    memcpy(oid.b, id_pool[index], OBJECT_ID_SIZE);
    switch ((op >> 1) % K_COUNT) {
    case K_PUT:
        put_local(h, &id);
        break;
    case K_PULL: {
        uint8_t hint = take(h) % 4;
        const node_id_t *nodes[4] = {NULL, &h->p[0].node, &h->p[1].node, &h->self};
        h->pulls_open++;
        om_pull(h->om, &oid, nodes[hint], on_pulled, h);
        break;
    }
    case K_REQUEST: {
        Rpc__PullRequest r = RPC__PULL_REQUEST__INIT;
        r.req_id = take(h);
        r.object_id = id;
        send_msg(h, p, MSG_PULL_REQUEST, &r.base);
        break;
    }
    case K_REPLY:
        send_reply(h, p, &id, index);
        break;
    case K_CHUNK:
        send_chunk(h, p, &id);
        break;
    case K_LOOKUP:
        answer_lookup(h);
        break;
    case K_RECONNECT:
        peer_close(h, p);
        peer_open(h, p);
        break;
    case K_DIED:
        p->alive = !p->alive;
        if (!p->alive)
            om_node_died(h->om, &p->node);
        break;
    case K_RAW: {
        static const uint16_t types[] = {MSG_PULL_REQUEST, MSG_PULL_REPLY, MSG_OBJECT_CHUNK,
                                         MSG_DELETE_OBJECTS};
        uint16_t type = types[take(h) % 4];
        size_t len = take(h);
        if (len > h->size - h->pos)
            len = h->size - h->pos;
        send_frame(h, p, type, h->data + h->pos, len);
        h->pos += len;
        break;
    }
    default:
        plasma_delete(h->s, &oid);
        break;
    }
}

static void check_stats(const plasma_store *s)
{
    plasma_stats st;
    plasma_store_stats(s, &st);
    REQUIRE(st.used <= st.capacity && st.reserved <= st.capacity - st.used);
    REQUIRE(st.unsealed_objects <= st.objects && st.pinned_objects <= st.objects);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    harness h = {.data = data, .size = size, .pos = 1};
    h.base = event_base_new();
    REQUIRE(h.base != NULL);
    cfg.store_full_wait_ms = data[0] & 1;
    char err[256];
    h.s = plasma_store_new(h.base, &cfg, err, sizeof(err));
    REQUIRE(h.s != NULL);
    h.writer = plasma_client_new(h.s, NULL);
    memset(h.self.b, 0x11, NODE_ID_SIZE);
    for (int k = 0; k < NPEERS; k++) {
        memset(h.p[k].node.b, 0xa0 + k, NODE_ID_SIZE);
        h.p[k].alive = true;
        h.p[k].h = &h;
    }
    om_env env = {env_peer, env_alive, env_gcs_call, &h};
    h.om = om_new(h.base, &cfg, h.s, &h.self, &env);
    REQUIRE(h.om != NULL);
    for (int k = 0; k < NPEERS; k++)
        peer_open(&h, &h.p[k]);
    pump(&h);
    while (h.pos < h.size) {
        run_op(&h);
        pump(&h);
        check_stats(h.s);
    }
    for (int k = 0; k < NPEERS; k++)
        peer_close(&h, &h.p[k]);
    om_free(h.om);
    REQUIRE(h.pulls_open == 0); /* every pull's callback ran exactly once */
    /* Lookups nobody answered: the GCS session fails them at the raylet's
     * end (gs_stop), after its pulls are gone. */
    while (h.nq > 0) {
        lookup l = h.q[--h.nq];
        l.cb(l.arg, NULL);
    }
    plasma_client_free(h.writer);
    plasma_store_free(h.s);
    event_base_free(h.base);
    return 0;
}

/* ---------------------------------------------------------------- seeds */

static void seed_write(const char *dir, const char *name, const uint8_t *b, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(b, 1, n, f) == n);
    fclose(f);
}

#define OP(peer, kind) (uint8_t)((kind) << 1 | (peer))

static void write_seeds(const char *dir)
{
    /* clang-format off */
    /* peer A pulls a local 5000-byte object: PullReply and two chunks go out */
    const uint8_t serve[] = {0,
        OP(0, K_PUT), 1, 0, 0x13, 0x88,
        OP(0, K_REQUEST), 1, 7,
        OP(1, K_REQUEST), 2, 8};
    /* a pull with hint A; A answers the request with 100 bytes in one chunk */
    const uint8_t pull[] = {0,
        OP(0, K_PULL), 3, 1,
        OP(0, K_REPLY), 3, 0x11, 0, 0, 100,
        OP(0, K_CHUNK), 3, 0, 0, 0, 0, 0, 100, 6,
        OP(0, K_PULL), 3, 2};
    /* a pull without a hint: the directory says B, B is lost mid-transfer */
    const uint8_t lookup[] = {1,
        OP(1, K_PULL), 4, 0,
        OP(1, K_LOOKUP), 4, 0x02, 0, 0x10, 0,
        OP(1, K_REPLY), 4, 0x01, 1, 0x20, 0,
        OP(1, K_CHUNK), 4, 0, 0, 0, 0, 1, 0x20, 0, 32,
        OP(1, K_RECONNECT), 0,
        OP(1, K_LOOKUP), 4, 0xff, 0, 0, 0,
        OP(1, K_DIED), 0};
    /* clang-format on */
    seed_write(dir, "serve", serve, sizeof(serve));
    seed_write(dir, "pull", pull, sizeof(pull));
    seed_write(dir, "lookup", lookup, sizeof(lookup));
}

static void remove_spill_dir(void)
{
    rmdir(spill_dir); /* the store removed its files and its own subdirectory */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_init(getenv("FUZZ_LOG") ? NULL : "/dev/null", LOG_LEVEL_DEBUG);
    log_set_rate_limit(0);
    const char *dir = getenv("FUZZ_WRITE_SEEDS");
    if (dir) {
        write_seeds(dir);
        exit(0);
    }
    for (int i = 0; i < NIDS; i++) {
        memset(id_pool[i], 0, OBJECT_ID_SIZE);
        id_pool[i][0] = (uint8_t)(i + 1);
        id_pool[i][OBJECT_ID_SIZE - 1] = 0x5a;
    }
    snprintf(spill_dir, sizeof(spill_dir), "/tmp/rayc_fuzz_om_XXXXXX");
    REQUIRE(mkdtemp(spill_dir) != NULL);
    atexit(remove_spill_dir);
    config_defaults(&cfg);
    cfg.object_store_memory = STORE_BYTES;
    cfg.prefault_store = 0;
    cfg.max_frame_bytes = MAX_FRAME;
    free(cfg.spill_dir);
    cfg.spill_dir = strdup(spill_dir);
    return 0;
}
