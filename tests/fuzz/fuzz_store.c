/*
 * fuzz_store.c -- libFuzzer target for the object-store protocol
 * (raylet/plasma_wire.c and the plasma store API under it): fuzzer-chosen
 * sequences of create / seal / get / wait / release / delete / slab / stats
 * requests from three clients against a small store (256 KiB, so eviction,
 * spilling and "store full" happen). Nothing a client sends may crash the
 * raylet, leak, or get a reply that points outside the arena.
 *
 * Clients 0 and 1 are local clients with a conn (accepted on a socketpair,
 * as node_manager.c does; replies are read back, unpacked and checked);
 * client 2 is a part of the raylet (no conn), which also uses the internal
 * API: evictable creates (pulled copies), pins, owners (local clients, and
 * remote owners by worker id: clients 0 and 1 have ids, so a delete of
 * theirs is done or refused by ownership).
 *
 * Input layout (structure-aware): byte 0 picks the store's full-wait (0 or
 * 1 ms); then records, each
 *   op     client = op % 3, kind = (op / 3) % 12
 *   then the kind's arguments (see run_op): object ids are one byte (an
 *   index into a pool of 8 ids; bit 3 makes the id malformed), sizes two
 *   bytes with a scale, kind 9 is a raw frame (type byte, u8 length,
 *   payload) unpacked and handed to plasma_handle as a peer would send it.
 * Slab offsets are relative to the client's last granted slab, read from
 * its SLAB_REPLY.
 *
 * Seeds: FUZZ_WRITE_SEEDS=<dir> build/fuzz/fuzz_store writes a few valid
 * sequences (tests/fuzz/corpus_store/ holds them) and exits.
 * Build and run: make fuzz FUZZ_SECONDS=60, or one target longer:
 *   make build/fuzz/fuzz_store && build/fuzz/fuzz_store -max_len=4096 \
 *       -max_total_time=3600 build/fuzz/corpus_store tests/fuzz/corpus_store
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
#include "../../raylet/plasma_store.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define NCLIENTS    3
#define NIDS        8
#define STORE_BYTES (256u << 10)
#define MAX_IDS     4 /* ids in one get/wait/release/delete */

enum {
    K_CREATE,
    K_SEAL,
    K_GET,
    K_WAIT,
    K_RELEASE,
    K_DELETE,
    K_SLAB,
    K_SLAB_OBJECT,
    K_STATS,
    K_RAW,
    K_RESET,
    K_INTERNAL,
    K_COUNT
};

typedef struct {
    plasma_client *pc;
    conn *c; /* NULL for the raylet's own client */
    int fd;  /* our end of the socketpair, -1 if none */
    frame_decoder dec;
    uint64_t slab_off, slab_size; /* last SLAB_REPLY */
} client;

typedef struct {
    struct event_base *base;
    plasma_store *s;
    client cl[NCLIENTS];
    const uint8_t *data;
    size_t size, pos;
} harness;

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

/* Sizes: small, page-ish, near the store size, or absurd (2^64 - small). */
static uint64_t take_size(harness *h)
{
    uint8_t scale = take(h);
    uint64_t v = take16(h);
    switch (scale & 3) {
    case 0:
        return v;
    case 1:
        return v << 4;
    case 2:
        return v << 8;
    default:
        return scale & 4 ? UINT64_MAX - v : (uint64_t)STORE_BYTES + v - 32768;
    }
}

static ProtobufCBinaryData take_id(harness *h)
{
    uint8_t b = take(h);
    ProtobufCBinaryData id = {OBJECT_ID_SIZE, id_pool[b % NIDS]};
    if (b & 8)
        id.len = b & 16 ? 0 : 5; /* malformed */
    return id;
}

static size_t take_ids(harness *h, ProtobufCBinaryData *ids)
{
    size_t n = take(h) % (MAX_IDS + 1);
    for (size_t i = 0; i < n; i++)
        ids[i] = take_id(h);
    return n;
}

static int64_t take_timeout(harness *h)
{
    static const int64_t t[] = {0, -1, 1, 0};
    return t[take(h) % 4];
}

/* ---------------------------------------------------------------- replies */

/* Check a reply the store sent to a client. */
static void check_reply(client *c, uint16_t type, ProtobufCMessage *m)
{
    switch (type) {
    case MSG_CREATE_OBJECT_REPLY: {
        Rpc__CreateObjectReply *r = (Rpc__CreateObjectReply *)m;
        REQUIRE(r->status != NULL);
        if (r->status->code == 0)
            REQUIRE(r->offset < STORE_BYTES);
        break;
    }
    case MSG_GET_OBJECTS_REPLY: {
        Rpc__GetObjectsReply *r = (Rpc__GetObjectsReply *)m;
        REQUIRE(r->status != NULL);
        for (size_t i = 0; i < r->n_objects; i++) {
            REQUIRE(r->objects[i]->offset <= STORE_BYTES);
            REQUIRE(r->objects[i]->size <= STORE_BYTES - r->objects[i]->offset);
        }
        break;
    }
    case MSG_SLAB_REPLY: {
        Rpc__SlabReply *r = (Rpc__SlabReply *)m;
        REQUIRE(r->status != NULL);
        if (r->status->code == 0 && r->size > 0) {
            REQUIRE(r->offset <= STORE_BYTES && r->size <= STORE_BYTES - r->offset);
            c->slab_off = r->offset;
            c->slab_size = r->size;
        }
        break;
    }
    default:
        break;
    }
}

static void drain(client *c)
{
    while (c->fd >= 0) {
        size_t avail;
        uint8_t *buf = frame_decoder_space(&c->dec, 0, &avail);
        REQUIRE(buf != NULL);
        ssize_t n = read(c->fd, buf, avail);
        if (n <= 0)
            break;
        frame_decoder_commit(&c->dec, (size_t)n);
        frame_t f;
        int rc;
        while ((rc = frame_decoder_next(&c->dec, &f)) == 1) {
            ProtobufCMessage *m = msg_unpack(f.type, f.payload, f.length);
            REQUIRE(m != NULL);
            check_reply(c, f.type, m);
            msg_free(m);
        }
        REQUIRE(rc == 0);
    }
}

static void pump(harness *h)
{
    for (int i = 0; i < 4; i++) {
        event_base_loop(h->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
        for (int c = 0; c < NCLIENTS; c++)
            drain(&h->cl[c]);
    }
}

static void check_stats(const plasma_store *s)
{
    plasma_stats st;
    plasma_store_stats(s, &st);
    REQUIRE(st.capacity == STORE_BYTES);
    REQUIRE(st.used <= st.capacity && st.reserved <= st.capacity - st.used);
    REQUIRE(st.unsealed_objects <= st.objects && st.pinned_objects <= st.objects);
    REQUIRE(st.spilled_objects <= st.objects);
}

/* ---------------------------------------------------------------- clients */

static void on_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    (void)c, (void)type, (void)m; /* we never write to the store's end */
}

static void on_close(conn *c, int reason, const char *why)
{
    (void)c, (void)reason, (void)why;
}

static const conn_handlers handlers = {on_frame, on_close};

static void client_open(harness *h, int i)
{
    client *c = &h->cl[i];
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    frame_decoder_init(&c->dec, FRAME_DEFAULT_MAX);
    if (i < 2) {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        conn_opts o = {.handshake_timeout_ms = -1};
        c->c = conn_accept(h->base, sv[0], &handlers, NULL, &o);
        REQUIRE(c->c != NULL);
        c->fd = sv[1];
    }
    c->pc = plasma_client_new(h->s, c->c);
    REQUIRE(c->pc != NULL);
    if (i < 2) { /* local clients have worker ids (deletes go by ownership) */
        worker_id_t w;
        memset(w.b, i + 1, WORKER_ID_SIZE);
        plasma_client_set_worker_id(c->pc, &w);
    }
}

static void client_close(harness *h, int i)
{
    client *c = &h->cl[i];
    plasma_client_free(c->pc);
    if (c->c)
        conn_close(c->c); /* freed from the loop */
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->pc = NULL;
    pump(h);
    frame_decoder_free(&c->dec);
}

/* ---------------------------------------------------------------- ops */

static void handle(harness *h, client *c, uint16_t type, ProtobufCMessage *m)
{
    REQUIRE(plasma_handle(h->s, c->pc, type, m));
}

static void run_internal(harness *h, client *c)
{
    uint8_t sub = take(h);
    ProtobufCBinaryData b = take_id(h);
    if (b.len != OBJECT_ID_SIZE)
        return;
    object_id_t id;
    memcpy(id.b, b.data, OBJECT_ID_SIZE);
    switch (sub % 5) {
    case 0: { /* a pulled copy: created evictable, then sealed */
        uint64_t off;
        if (plasma_create(h->s, c->pc, &id, take_size(h), PLASMA_EVICTABLE, &off) == 0) {
            REQUIRE(off < STORE_BYTES);
            if (sub & 0x80)
                plasma_seal(h->s, c->pc, &id);
        }
        break;
    }
    case 1: {
        plasma_view v;
        if (plasma_pin(h->s, c->pc, &id, &v) == 0)
            REQUIRE(v.off <= STORE_BYTES && v.size <= STORE_BYTES - v.off);
        break;
    }
    case 2:
        if (sub & 0x40) { /* a remote owner, by worker id: client 0's, 1's or unknown */
            worker_id_t w;
            memset(w.b, sub & 0x80 ? 0 : sub % 2 + 1, WORKER_ID_SIZE);
            plasma_set_remote_owner(h->s, &id, &w);
        } else {
            plasma_set_owner(h->s, &id, sub & 0x80 ? NULL : h->cl[sub % 2].pc);
        }
        break;
    case 3:
        plasma_set_evictable(h->s, &id, sub & 0x80);
        break;
    default:
        plasma_object_state(h->s, &id, NULL);
        break;
    }
}

static void run_op(harness *h)
{
    uint8_t op = take(h);
    int ci = op % NCLIENTS;
    client *c = &h->cl[ci];
    ProtobufCBinaryData ids[MAX_IDS];
    switch ((op / NCLIENTS) % K_COUNT) {
    case K_CREATE: {
        Rpc__CreateObjectRequest m = RPC__CREATE_OBJECT_REQUEST__INIT;
        m.req_id = op;
        m.object_id = take_id(h);
        m.size = take_size(h);
        handle(h, c, MSG_CREATE_OBJECT_REQ, &m.base);
        break;
    }
    case K_SEAL: {
        Rpc__SealObject m = RPC__SEAL_OBJECT__INIT;
        m.object_id = take_id(h);
        m.keep_pin = take(h) & 1;
        handle(h, c, MSG_SEAL_OBJECT, &m.base);
        break;
    }
    case K_GET: {
        Rpc__GetObjectsRequest m = RPC__GET_OBJECTS_REQUEST__INIT;
        m.n_object_ids = take_ids(h, ids);
        m.object_ids = ids;
        m.timeout_ms = take_timeout(h);
        handle(h, c, MSG_GET_OBJECTS_REQ, &m.base);
        break;
    }
    case K_WAIT: {
        Rpc__WaitObjectsRequest m = RPC__WAIT_OBJECTS_REQUEST__INIT;
        m.n_object_ids = take_ids(h, ids);
        m.object_ids = ids;
        m.num_returns = take(h) % (MAX_IDS + 2);
        m.timeout_ms = take_timeout(h);
        handle(h, c, MSG_WAIT_OBJECTS_REQ, &m.base);
        break;
    }
    case K_RELEASE: {
        Rpc__ReleaseObjects m = RPC__RELEASE_OBJECTS__INIT;
        m.n_object_ids = take_ids(h, ids);
        m.object_ids = ids;
        handle(h, c, MSG_RELEASE_OBJECTS, &m.base);
        break;
    }
    case K_DELETE: {
        Rpc__DeleteObjects m = RPC__DELETE_OBJECTS__INIT;
        m.n_object_ids = take_ids(h, ids);
        m.object_ids = ids;
        m.release_pins = take(h) & 1;
        handle(h, c, MSG_DELETE_OBJECTS, &m.base);
        break;
    }
    case K_SLAB: {
        Rpc__SlabRequest m = RPC__SLAB_REQUEST__INIT;
        m.req_id = op;
        m.size = take_size(h);
        uint8_t ret = take(h);
        if (ret & 1) { /* give back the tail of the last slab */
            uint64_t cut = c->slab_size ? (uint64_t)take16(h) % (c->slab_size + 1) : 0;
            m.return_offset = c->slab_off + cut;
            m.return_end = c->slab_off + c->slab_size;
        } else if (ret & 2) { /* any range */
            m.return_offset = take_size(h);
            m.return_end = take_size(h);
        }
        handle(h, c, MSG_SLAB_REQ, &m.base);
        break;
    }
    case K_SLAB_OBJECT: {
        Rpc__SlabObject m = RPC__SLAB_OBJECT__INIT;
        m.object_id = take_id(h);
        uint8_t flags = take(h);
        m.offset = flags & 4 ? take_size(h) : c->slab_off + take16(h);
        m.size = take_size(h);
        m.sealed = flags & 1;
        m.keep_pin = flags & 2;
        handle(h, c, MSG_SLAB_OBJECT, &m.base);
        break;
    }
    case K_STATS: {
        Rpc__StoreStatsRequest m = RPC__STORE_STATS_REQUEST__INIT;
        m.req_id = op;
        handle(h, c, MSG_STORE_STATS_REQ, &m.base);
        break;
    }
    case K_RAW: {
        uint16_t type = (uint16_t)(60 + take(h) % 40); /* the store's range and beyond */
        size_t len = take(h);
        if (len > h->size - h->pos)
            len = h->size - h->pos;
        ProtobufCMessage *m = msg_unpack(type, h->data + h->pos, len);
        h->pos += len;
        if (m) {
            plasma_handle(h->s, c->pc, type, m); /* false for types it does not serve */
            msg_free(m);
        }
        break;
    }
    case K_RESET: /* the client disconnects: fate-sharing, cancelled requests */
        client_close(h, ci);
        client_open(h, ci);
        break;
    default:
        run_internal(h, c);
        break;
    }
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
    for (int i = 0; i < NCLIENTS; i++)
        client_open(&h, i);
    while (h.pos < h.size) {
        run_op(&h);
        pump(&h);
        check_stats(h.s);
    }
    for (int i = 0; i < NCLIENTS; i++)
        client_close(&h, i);
    plasma_stats st;
    plasma_store_stats(h.s, &st);
    /* Every client is gone: what they owned or were creating is freed. */
    REQUIRE(st.unsealed_objects == 0 && st.reserved == 0 && st.pending_gets == 0);
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

#define OP(client, kind) (uint8_t)((kind)*NCLIENTS + (client))

static void write_seeds(const char *dir)
{
    /* clang-format off */
    /* create id0 (1 KiB), seal, get from the other client, release, delete */
    const uint8_t put_get[] = {0,
        OP(0, K_CREATE), 0, 0, 4, 0,
        OP(0, K_SEAL), 0, 0,
        OP(1, K_GET), 1, 0, 0,
        OP(1, K_RELEASE), 1, 0,
        OP(0, K_DELETE), 1, 0, 0,
        OP(0, K_STATS)};
    /* a get that waits (-1) for id1, then id1 is created and sealed */
    const uint8_t wait_then_put[] = {0,
        OP(1, K_GET), 2, 1, 2, 1,
        OP(1, K_WAIT), 2, 1, 2, 1, 1,
        OP(0, K_CREATE), 1, 1, 0, 64,
        OP(0, K_SEAL), 1, 1,
        OP(0, K_CREATE), 2, 0, 0, 8,
        OP(0, K_RESET)};
    /* a slab (the store grants 4 KiB), two objects carved in it, the tail given back */
    const uint8_t slab[] = {1,
        OP(0, K_SLAB), 2, 1, 0, 0,
        OP(0, K_SLAB_OBJECT), 3, 1, 0, 0, 0, 0, 128,
        OP(0, K_SLAB_OBJECT), 4, 0, 1, 0, 0, 0, 128,
        OP(0, K_SEAL), 4, 1,
        OP(1, K_GET), 2, 3, 4, 0,
        OP(0, K_SLAB), 0, 0, 0, 1, 0, 128};
    /* clang-format on */
    seed_write(dir, "put_get", put_get, sizeof(put_get));
    seed_write(dir, "wait_then_put", wait_then_put, sizeof(wait_then_put));
    seed_write(dir, "slab", slab, sizeof(slab));
    /* fill the store: spills and evictions, then a create that does not fit */
    uint8_t fill[256];
    size_t n = 0;
    fill[n++] = 1;
    for (uint8_t i = 0; i < 6; i++) {
        const uint8_t rec[] = {OP(0, K_CREATE), i, 2, 0, 200, OP(0, K_SEAL), i, 0};
        memcpy(fill + n, rec, sizeof(rec));
        n += sizeof(rec);
    }
    const uint8_t tail[] = {OP(2, K_INTERNAL), 0x82, 6, 1, 0, 100, OP(1, K_GET), 2, 0, 5, 0,
                            OP(0, K_CREATE),   7,    3, 0, 0};
    memcpy(fill + n, tail, sizeof(tail));
    n += sizeof(tail);
    seed_write(dir, "fill", fill, n);
}

static void remove_spill_dir(void)
{
    rmdir(spill_dir); /* the store removed its files */
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
    snprintf(spill_dir, sizeof(spill_dir), "/tmp/rayc_fuzz_store_XXXXXX");
    REQUIRE(mkdtemp(spill_dir) != NULL);
    atexit(remove_spill_dir);
    config_defaults(&cfg);
    cfg.object_store_memory = STORE_BYTES;
    cfg.prefault_store = 0;
    cfg.put_slab_bytes = 64 << 10;
    free(cfg.spill_dir);
    cfg.spill_dir = strdup(spill_dir);
    return 0;
}
