/*
 * test_om_transfer.c -- the object manager (raylet/object_manager.c) moving
 * objects between three in-process "nodes": each has its own plasma store
 * and object manager on one event_base, joined by real conns over
 * socketpairs; plus its pure helpers (chunk planning and checks, back-off).
 *
 * Fake neighbours: each node's om_env gives the object manager the three
 * things it needs from the rest of the raylet -- node_alive (the cluster
 * view), gcs_call (a fake GCS object directory fed by the stores'
 * seal/delete hooks) and peer (socketpair links made on first use).
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"
#include "../../raylet/object_manager.h"
#include "../../raylet/plasma_store.h"

#define MIB    (1u << 20)
#define NNODES 3
#define NLINKS 32
#define NDIR   64

/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(om_pure, .timeout = 30);

/* What the object manager of one in-process node is built from. */
typedef struct {
    struct event_base *base;
    const rayc_config *cfg;
    node_id_t node_id;
    plasma_store *store;
    object_manager *om;
} fake_nm;

typedef struct tnode {
    fake_nm nm;
    plasma_client *writer; /* creates the primary copies */
    bool alive;
    bool rogue;             /* answers PullRequests with a broken stream */
    bool silent;            /* never answers PullRequests */
    int requests;           /* PullRequests it received */
    int close_after_chunks; /* > 0: close its links after this many chunks in */
    char spill[64];
} tnode;

typedef struct tlink {
    tnode *self, *other;
    conn *c; /* NULL once closed */
    bool outgoing;
    int chunks; /* OBJECT_CHUNK frames received */
} tlink;

static struct event_base *base;
static rayc_config cfg_big, cfg_small;
static tnode nodes[NNODES];
static tlink links[NLINKS];
static int nlinks;
static struct {
    object_id_t id;
    node_id_t node;
    uint64_t size;
} dir[NDIR];
static int ndir;
static bool dir_auto = true; /* seals reach the directory */
static int lookups;
static int gcs_pending; /* fake GCS replies not delivered yet */

/* ------------------------------------------------------------ seams */

static tnode *node_by_id(const node_id_t *id)
{
    for (int i = 0; i < NNODES; i++)
        if (memcmp(nodes[i].nm.node_id.b, id->b, NODE_ID_SIZE) == 0)
            return &nodes[i];
    return NULL;
}

static bool node_alive(void *ctx, const node_id_t *id)
{
    (void)ctx;
    tnode *t = node_by_id(id);
    return t != NULL && t->alive;
}

struct gcs_call {
    gs_reply_cb cb;
    void *arg;
    object_id_t id;
};

static void answer_lookup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gcs_call *call = arg;
    Rpc__ObjectLocation locs[NDIR], *ptrs[NDIR];
    size_t n = 0;
    for (int i = 0; i < ndir; i++) {
        if (memcmp(dir[i].id.b, call->id.b, OBJECT_ID_SIZE) != 0)
            continue;
        rpc__object_location__init(&locs[n]);
        locs[n].object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, dir[i].id.b};
        locs[n].node_id = (ProtobufCBinaryData){NODE_ID_SIZE, dir[i].node.b};
        locs[n].size = dir[i].size;
        ptrs[n] = &locs[n];
        n++;
    }
    Rpc__GetObjectLocationsReply r = RPC__GET_OBJECT_LOCATIONS_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.status = &st;
    r.n_locations = n;
    r.locations = ptrs;
    gcs_pending--;
    call->cb(call->arg, &r.base);
    free(call);
}

static int gcs_call(void *ctx, uint16_t type, ProtobufCMessage *req, gs_reply_cb cb, void *arg)
{
    (void)ctx;
    cr_assert_eq(type, MSG_GET_OBJECT_LOCATIONS_REQ);
    Rpc__GetObjectLocationsRequest *q = (Rpc__GetObjectLocationsRequest *)req;
    cr_assert_eq(q->n_object_ids, 1);
    cr_assert_eq(q->object_ids[0].len, OBJECT_ID_SIZE);
    struct gcs_call *call = malloc(sizeof(*call));
    cr_assert_not_null(call);
    *call = (struct gcs_call){cb, arg};
    memcpy(call->id.b, q->object_ids[0].data, OBJECT_ID_SIZE);
    lookups++;
    gcs_pending++;
    struct timeval tv = {0, 1000};
    cr_assert_eq(event_base_once(base, -1, EV_TIMEOUT, answer_lookup, call, &tv), 0);
    return 0;
}

static void dir_add(const object_id_t *id, const node_id_t *node, uint64_t size)
{
    cr_assert_lt(ndir, NDIR);
    dir[ndir].id = *id;
    dir[ndir].node = *node;
    dir[ndir].size = size;
    ndir++;
}

static void on_sealed(void *arg, const plasma_object_event *ev)
{
    (void)arg;
    if (dir_auto)
        dir_add(&ev->id, &ev->node, ev->size);
}

static void on_deleted(void *arg, const plasma_object_event *ev)
{
    (void)arg;
    for (int i = 0; i < ndir; i++)
        if (memcmp(dir[i].id.b, ev->id.b, OBJECT_ID_SIZE) == 0 &&
            memcmp(dir[i].node.b, ev->node.b, NODE_ID_SIZE) == 0)
            dir[i--] = dir[--ndir];
}

static const plasma_hooks hooks = {on_sealed, on_deleted};

/* A rogue holder: says 1 MiB follows, then sends a chunk out of order. */
static void rogue_reply(conn *c, const Rpc__PullRequest *req)
{
    static uint8_t junk[4096];
    Rpc__PullReply r = RPC__PULL_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    r.req_id = req->req_id;
    r.status = &st;
    r.object_id = req->object_id;
    r.size = MIB;
    conn_send(c, MSG_PULL_REPLY, &r.base);
    Rpc__ChunkHeader h = RPC__CHUNK_HEADER__INIT;
    h.object_id = req->object_id;
    h.offset = 8192;
    h.total = MIB;
    uint8_t hb[128];
    size_t hl = rpc__chunk_header__pack(&h, hb + 4);
    hb[0] = 0, hb[1] = 0, hb[2] = (uint8_t)(hl >> 8), hb[3] = (uint8_t)hl;
    conn_send_raw_ref(c, MSG_OBJECT_CHUNK, hb, 4 + hl, junk, sizeof(junk), NULL, NULL);
}

static void link_frame(conn *c, uint16_t type, ProtobufCMessage *m)
{
    tlink *l = conn_data(c);
    if (type == MSG_HANDSHAKE) {
        Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
        Rpc__Status st = RPC__STATUS__INIT;
        r.status = &st;
        conn_send(c, MSG_HANDSHAKE_REPLY, &r.base);
        return;
    }
    if (type == MSG_HANDSHAKE_REPLY)
        return;
    if (type == MSG_PULL_REQUEST)
        l->self->requests++;
    if (l->self->silent && type == MSG_PULL_REQUEST)
        return;
    if (l->self->rogue && type == MSG_PULL_REQUEST) {
        rogue_reply(c, (Rpc__PullRequest *)m);
        return;
    }
    cr_assert(om_handle(l->self->nm.om, c, type, m), "om_handle refused %s", msg_name(type));
    if (type == MSG_OBJECT_CHUNK)
        l->chunks++; /* (chunks read straight into the arena do not come here) */
}

/* Chunks landed on t (either way: on_frame, or the object manager's sink). */
static uint64_t chunks_in(const tnode *t)
{
    uint64_t in;
    om_stats(t->nm.om, &in, NULL, NULL, NULL);
    return (in + (4u << 20) - 1) / (4u << 20); /* CHUNK_MAX */
}

/* A node set to break its links after k chunks breaks them (once). */
static void watch_links(void)
{
    for (int i = 0; i < NNODES; i++) {
        tnode *t = &nodes[i];
        if (t->close_after_chunks <= 0 || chunks_in(t) < (uint64_t)t->close_after_chunks)
            continue;
        t->close_after_chunks = 0;
        for (int k = 0; k < nlinks; k++)
            if (links[k].self == t && links[k].c)
                conn_close(links[k].c);
    }
}

static void link_close(conn *c, int reason, const char *why)
{
    (void)reason, (void)why;
    tlink *l = conn_data(c);
    l->c = NULL;
    om_peer_closed(l->self->nm.om, c);
}

static const conn_handlers link_handlers = {link_frame, link_close};

static conn *peer(void *ctx, const node_id_t *node)
{
    tnode *self = ctx, *other = node_by_id(node);
    if (self == NULL || other == NULL || other == self || !other->alive)
        return NULL;
    for (int i = 0; i < nlinks; i++)
        if (links[i].outgoing && links[i].self == self && links[i].other == other && links[i].c)
            return links[i].c;
    cr_assert_lt(nlinks + 2, NLINKS);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    tlink *out = &links[nlinks++], *in = &links[nlinks++];
    *out = (tlink){.self = self, .other = other, .outgoing = true};
    *in = (tlink){.self = other, .other = self};
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_RAYLET;
    hs.name = "raylet";
    conn_opts co = {.handshake = &hs};
    conn_opts ao = {0};
    in->c = conn_accept(base, sv[1], &link_handlers, in, &ao);
    out->c = conn_connect(base, sv[0], &link_handlers, out, &co);
    cr_assert(in->c && out->c);
    return out->c;
}

/* ------------------------------------------------------------ fixture */

static void node_init(tnode *t, rayc_config *cfg)
{
    memset(t, 0, sizeof(*t));
    t->nm.base = base;
    t->nm.cfg = cfg;
    t->nm.node_id = node_id_random();
    char err[256];
    t->nm.store = plasma_store_new(base, cfg, err, sizeof(err));
    cr_assert_not_null(t->nm.store, "%s", err);
    plasma_store_set_hooks(t->nm.store, &t->nm.node_id, &hooks, t);
    t->writer = plasma_client_new(t->nm.store, NULL);
    om_env env = {peer, node_alive, gcs_call, t};
    t->nm.om = om_new(base, cfg, t->nm.store, &t->nm.node_id, &env);
    cr_assert(t->writer && t->nm.om);
    t->alive = true;
}

static char spill_dir[64];

static void config_for(rayc_config *cfg, const char *store_bytes)
{
    char err[256];
    config_defaults(cfg);
    cr_assert_eq(config_set(cfg, "object_store_memory", store_bytes, err, sizeof(err)), 0);
    cr_assert_eq(config_set(cfg, "prefault_store", "0", err, sizeof(err)), 0);
    cr_assert_eq(config_set(cfg, "spill_dir", spill_dir, err, sizeof(err)), 0);
    cr_assert_eq(config_set(cfg, "store_full_wait_ms", "100", err, sizeof(err)), 0);
    cr_assert_eq(config_set(cfg, "object_transfer_stall_ms", "500", err, sizeof(err)), 0);
}

static void setup(void)
{
    log_init(NULL, LOG_LEVEL_ERROR);
    signal(SIGPIPE, SIG_IGN); /* as the raylet does: a closed link is an error, not a death */
    base = event_base_new();
    strcpy(spill_dir, "/tmp/om_test_XXXXXX");
    cr_assert_not_null(mkdtemp(spill_dir));
    config_for(&cfg_big, "160M");
    config_for(&cfg_small, "8M");
    nlinks = ndir = lookups = 0;
    dir_auto = true;
    for (int i = 0; i < NNODES; i++)
        node_init(&nodes[i], &cfg_big);
}

static void teardown(void)
{
    for (int i = 0; i < NNODES; i++) {
        om_free(nodes[i].nm.om);
        nodes[i].nm.om = NULL;
    }
    for (int i = 0; i < nlinks; i++)
        if (links[i].c)
            conn_close(links[i].c);
    uint64_t end = now_ms() + 2000;
    do /* closers run; fake GCS replies reach the pulls' orphaned lookups */
        event_base_loop(base, EVLOOP_NONBLOCK);
    while (gcs_pending > 0 && now_ms() < end);
    for (int i = 0; i < nlinks; i++)
        cr_assert_null(links[i].c, "a tlink was not closed");
    for (int i = 0; i < NNODES; i++) {
        plasma_client_free(nodes[i].writer);
        plasma_store_free(nodes[i].nm.store);
    }
    event_base_free(base);
    config_free(&cfg_big);
    config_free(&cfg_small);
    rmdir(spill_dir);
}

TestSuite(om, .init = setup, .fini = teardown, .timeout = 30);

/* ------------------------------------------------------------ helpers */

static object_id_t oid(int i)
{
    task_id_t t = task_id_random(job_id_from_int(1));
    return object_id_for_put(&t, (uint32_t)i);
}

static uint8_t pattern(uint64_t i, int seed)
{
    return (uint8_t)((i * 2654435761u) >> 13) ^ (uint8_t)seed;
}

/* A primary copy of size bytes on t. */
static void put(tnode *t, const object_id_t *id, uint64_t size, int seed)
{
    uint64_t off;
    cr_assert_eq(plasma_create(t->nm.store, t->writer, id, size, 0, &off), 0, "%s",
                 rayc_last_error());
    uint8_t *p = plasma_store_base(t->nm.store) + off;
    for (uint64_t i = 0; i < size; i++)
        p[i] = pattern(i, seed);
    cr_assert_eq(plasma_seal(t->nm.store, t->writer, id), 0);
}

/* Is t's sealed copy byte-exact? */
static bool check(tnode *t, const object_id_t *id, uint64_t size, int seed)
{
    plasma_view v;
    if (plasma_pin(t->nm.store, t->writer, id, &v) != 0 || v.size != size)
        return false;
    const uint8_t *p = plasma_store_base(t->nm.store) + v.off;
    bool ok = true;
    for (uint64_t i = 0; i < size && ok; i++)
        ok = p[i] == pattern(i, seed);
    plasma_release(t->nm.store, t->writer, id);
    return ok;
}

typedef struct {
    int calls;
    int status;
    char msg[256];
} result;

static void on_done(void *arg, const object_id_t *id, int status, const char *msg)
{
    (void)id;
    result *r = arg;
    r->calls++;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
}

static void run_until(const result *r)
{
    uint64_t end = now_ms() + 20000;
    while (r->calls == 0 && now_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE);
        watch_links();
    }
    cr_assert_eq(r->calls, 1, "the pull never ended");
}

static void settle(void)
{
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Run until t's store holds no pins (a server drops its pin once its last
 * chunk has been written, which may take a while when nobody reads). */
static void await_unpinned(tnode *t)
{
    plasma_stats st;
    uint64_t end = now_ms() + 10000;
    do {
        event_base_loop(base, EVLOOP_NONBLOCK);
        plasma_store_stats(t->nm.store, &st);
    } while (st.pinned_objects > 0 && now_ms() < end);
    cr_assert_eq(st.pinned_objects, 0, "the server kept its pin");
}

/* ------------------------------------------------------------ pure helpers */

Test(om_pure, chunk_plan)
{
    cr_assert_eq(om__chunk_size(0), 4u << 20);
    cr_assert_eq(om__chunk_size(64u << 20), 4u << 20);
    cr_assert_lt(om__chunk_size(1u << 20), 1u << 20);
    cr_assert_gt(om__chunk_size(1u << 20), 0);
    cr_assert_eq(om__chunk_count(0, 4096), 0);
    cr_assert_eq(om__chunk_count(1, 4096), 1);
    cr_assert_eq(om__chunk_count(4096, 4096), 1);
    cr_assert_eq(om__chunk_count(4097, 4096), 2);
    cr_assert_eq(om__chunk_count(1ull << 40, 4u << 20), 1ull << 18);
}

Test(om_pure, chunk_check)
{
    cr_assert_null(om__chunk_check(100, 0, 0, 100, 60));
    cr_assert_null(om__chunk_check(100, 60, 60, 100, 40));
    cr_assert_not_null(om__chunk_check(100, 60, 60, 100, 41)); /* past the end */
    cr_assert_not_null(om__chunk_check(100, 60, 0, 100, 10));  /* out of order */
    cr_assert_not_null(om__chunk_check(100, 60, 70, 100, 10)); /* a hole */
    cr_assert_not_null(om__chunk_check(100, 0, 0, 200, 10));   /* wrong total */
    cr_assert_not_null(om__chunk_check(100, 0, 0, 100, 0));    /* empty */
    cr_assert_not_null(om__chunk_check(UINT64_MAX, 10, 10, UINT64_MAX, SIZE_MAX));
}

Test(om_pure, backoff)
{
    uint64_t b = 0, total = 0;
    cr_assert_eq(om__backoff_next(0), 20);
    cr_assert_eq(om__backoff_next(20), 40);
    for (int i = 0; i < 20; i++)
        total += b = om__backoff_next(b);
    cr_assert_eq(b, 500);
    cr_assert_gt(total, 3000);
}

/* ------------------------------------------------------------ transfers */

Test(om, local_object_is_immediate)
{
    object_id_t id = oid(1);
    put(&nodes[0], &id, 1000, 1);
    result r = {0};
    om_pull(nodes[0].nm.om, &id, NULL, on_done, &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_OK);
}

Test(om, pull_with_hint_multi_chunk)
{
    object_id_t id = oid(1);
    uint64_t size = 9 * MIB + 7; /* three chunks, the last one short */
    put(&nodes[0], &id, size, 3);
    result r = {0};
    om_pull(nodes[1].nm.om, &id, &nodes[0].nm.node_id, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert(check(&nodes[1], &id, size, 3));
    cr_assert_eq(lookups, 0, "the hint should have been enough");
    uint64_t in, out, done, failed;
    om_stats(nodes[1].nm.om, &in, NULL, &done, &failed);
    cr_assert_eq(in, size);
    cr_assert_eq(done, 1);
    cr_assert_eq(failed, 0);
    om_stats(nodes[0].nm.om, NULL, &out, NULL, NULL);
    cr_assert_eq(out, size);
    settle();
    /* the received copy is a secondary: evictable and reported to the directory */
    int copies = 0;
    for (int i = 0; i < ndir; i++)
        copies += memcmp(dir[i].id.b, id.b, OBJECT_ID_SIZE) == 0;
    cr_assert_eq(copies, 2);
    await_unpinned(&nodes[0]);
}

/* Whole chunks are read from the socket straight into the object's place
 * in the arena: none reaches on_frame (through the connection's buffer). */
Test(om, chunks_land_straight_in_the_arena)
{
    object_id_t id = oid(1);
    uint64_t size = 16 * MIB; /* four whole chunks */
    put(&nodes[0], &id, size, 14);
    result r = {0};
    om_pull(nodes[1].nm.om, &id, &nodes[0].nm.node_id, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert(check(&nodes[1], &id, size, 14));
    int framed = 0;
    for (int i = 0; i < nlinks; i++)
        if (links[i].self == &nodes[1])
            framed += links[i].chunks;
    cr_assert_eq(framed, 0, "%d of 4 chunks went through the connection's buffer", framed);
    cr_assert_eq(chunks_in(&nodes[1]), 4);
}

Test(om, concurrent_pulls_share_one_transfer)
{
    object_id_t id = oid(1);
    uint64_t size = 5 * MIB;
    put(&nodes[0], &id, size, 4);
    result r[3] = {{0}};
    for (int i = 0; i < 3; i++)
        om_pull(nodes[1].nm.om, &id, NULL, on_done, &r[i]);
    run_until(&r[0]);
    settle();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, RAYC_OK, "%s", r[i].msg);
    }
    uint64_t in;
    om_stats(nodes[1].nm.om, &in, NULL, NULL, NULL);
    cr_assert_eq(in, size, "one transfer, not three");
    cr_assert(check(&nodes[1], &id, size, 4));
}

Test(om, zero_size_object)
{
    object_id_t id = oid(1);
    put(&nodes[0], &id, 0, 0);
    result r = {0};
    om_pull(nodes[1].nm.om, &id, NULL, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert_eq(plasma_object_state(nodes[1].nm.store, &id, NULL), PLASMA_SEALED);
}

Test(om, unknown_object_is_lost_after_the_budget)
{
    object_id_t id = oid(1);
    result r = {0};
    uint64_t t0 = now_ms();
    om_pull(nodes[1].nm.om, &id, NULL, on_done, &r);
    run_until(&r);
    uint64_t ms = now_ms() - t0;
    cr_assert_eq(r.status, RAYC_EOBJECT_LOST);
    cr_assert(strstr(r.msg, "no node holds object"), "%s", r.msg);
    /* The budget is a lower bound only: a slow (sanitized, loaded) machine
     * may take any longer, which is not a failure. */
    cr_assert_geq(ms, 2000, "declared lost after %llu ms, before the 2 s budget",
                  (unsigned long long)ms);
    cr_assert_gt(lookups, 3, "the directory should be asked again");
}

Test(om, directory_catches_up)
{
    object_id_t id = oid(1);
    dir_auto = false;
    put(&nodes[0], &id, MIB, 5);
    result r = {0};
    om_pull(nodes[1].nm.om, &id, NULL, on_done, &r);
    /* what the seal hook would have sent arrives 150 ms late */
    uint64_t end = now_ms() + 150;
    while (now_ms() < end && r.calls == 0)
        event_base_loop(base, EVLOOP_ONCE);
    cr_assert_eq(r.calls, 0);
    dir_add(&id, &nodes[0].nm.node_id, MIB);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert(check(&nodes[1], &id, MIB, 5));
}

Test(om, failover_when_the_hinted_node_dies)
{
    object_id_t id = oid(1);
    put(&nodes[0], &id, 3 * MIB, 6);
    put(&nodes[2], &id, 3 * MIB, 6);
    result r = {0};
    om_pull(nodes[1].nm.om, &id, &nodes[0].nm.node_id, on_done, &r);
    nodes[0].alive = false; /* dies before answering */
    om_node_died(nodes[1].nm.om, &nodes[0].nm.node_id);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert(check(&nodes[1], &id, 3 * MIB, 6));
}

Test(om, failover_mid_transfer)
{
    object_id_t id = oid(1);
    uint64_t size = 18 * MIB + 5;
    put(&nodes[0], &id, size, 7);
    put(&nodes[2], &id, size, 7);
    nodes[1].close_after_chunks = 2; /* the first link breaks after 8 MiB */
    result r = {0};
    om_pull(nodes[1].nm.om, &id, &nodes[0].nm.node_id, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert(check(&nodes[1], &id, size, 7));
    uint64_t in;
    om_stats(nodes[1].nm.om, &in, NULL, NULL, NULL);
    cr_assert_gt(in, size, "part of it came twice");
    plasma_stats st;
    plasma_store_stats(nodes[1].nm.store, &st);
    cr_assert_eq(st.unsealed_objects, 0, "the half-written copy was not aborted");
    cr_assert_eq(st.objects, 1);
}

Test(om, every_holder_gone_is_lost)
{
    object_id_t id = oid(1);
    put(&nodes[0], &id, 12 * MIB, 8);
    nodes[1].close_after_chunks = 1;
    result r = {0};
    om_pull(nodes[1].nm.om, &id, NULL, on_done, &r);
    /* the holder's link breaks mid-transfer and the holder is declared dead */
    uint64_t end = now_ms() + 2000;
    while (r.calls == 0 && now_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE);
        if (chunks_in(&nodes[1]) >= 1) {
            nodes[0].alive = false;
            om_node_died(nodes[1].nm.om, &nodes[0].nm.node_id);
            break;
        }
    }
    run_until(&r);
    cr_assert_eq(r.status, RAYC_EOBJECT_LOST, "%d %s", r.status, r.msg);
    plasma_stats st;
    plasma_store_stats(nodes[1].nm.store, &st);
    cr_assert_eq(st.objects, 0, "a partial copy was left behind");
}

Test(om, rogue_peer_is_cut_off)
{
    object_id_t id = oid(1);
    put(&nodes[2], &id, 2 * MIB, 9);
    dir_add(&id, &nodes[0].nm.node_id, MIB); /* the rogue claims it too */
    nodes[0].rogue = true;
    result r = {0};
    om_pull(nodes[1].nm.om, &id, &nodes[0].nm.node_id, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert(check(&nodes[1], &id, 2 * MIB, 9));
    settle();
    for (int i = 0; i < nlinks; i++)
        if (links[i].self == &nodes[1] && links[i].other == &nodes[0])
            cr_assert_null(links[i].c, "the rogue's connection is still open");
}

/* A holder that takes the request and then says nothing is dropped after
 * object_transfer_stall_ms (500 ms here), and the other holder serves. */
Test(om, silent_source_is_dropped_after_the_stall_timeout)
{
    object_id_t id = oid(1);
    put(&nodes[0], &id, 2 * MIB, 12);
    put(&nodes[2], &id, 2 * MIB, 12);
    nodes[0].silent = true;
    result r = {0};
    om_pull(nodes[1].nm.om, &id, &nodes[0].nm.node_id, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert_geq(nodes[0].requests, 1, "the hinted silent holder was never asked");
    cr_assert_geq(nodes[2].requests, 1, "the other holder was never asked");
    cr_assert(check(&nodes[1], &id, 2 * MIB, 12));
}

/* The only holder never answers: the pull asks it again after each stall
 * and back-off, but a bounded number of times, then ends with
 * RAYC_EOBJECT_LOST (never a hang, never an endless retry). */
Test(om, silent_only_holder_is_retried_a_bounded_number_of_times)
{
    object_id_t id = oid(1);
    put(&nodes[0], &id, MIB, 13);
    nodes[0].silent = true;
    result r = {0};
    om_pull(nodes[1].nm.om, &id, NULL, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_EOBJECT_LOST, "%d %s", r.status, r.msg);
    cr_assert_geq(nodes[0].requests, 2, "the holder was not asked again after a stall");
    cr_assert_leq(nodes[0].requests, 64, "more requests than the attempt cap");
    plasma_stats st;
    plasma_store_stats(nodes[1].nm.store, &st);
    cr_assert_eq(st.objects, 0, "a partial copy was left behind");
}

Test(om, store_too_small_fails_with_store_full)
{
    /* node 1 gets a store smaller than the object */
    om_free(nodes[1].nm.om);
    plasma_client_free(nodes[1].writer);
    plasma_store_free(nodes[1].nm.store);
    node_init(&nodes[1], &cfg_small);
    object_id_t id = oid(1);
    put(&nodes[0], &id, 16 * MIB, 10);
    result r = {0};
    om_pull(nodes[1].nm.om, &id, NULL, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_ESTORE_FULL, "%d %s", r.status, r.msg);
    await_unpinned(&nodes[0]);
}

Test(om, free_fails_pending_pulls)
{
    object_id_t id = oid(1);
    result r = {0};
    om_pull(nodes[1].nm.om, &id, NULL, on_done, &r);
    cr_assert_eq(r.calls, 0);
    om_free(nodes[1].nm.om);
    nodes[1].nm.om = NULL;
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, RAYC_EOBJECT_LOST);
}

static void on_created(void *arg, uint64_t tag, int status, uint64_t off, const char *msg)
{
    (void)tag, (void)off, (void)msg;
    result *r = arg;
    r->calls++;
    r->status = status;
}

/* The holder's copy is spilled and its store restores on the I/O thread
 * (as in the raylet): the PullRequest waits for the restore instead of
 * failing, then the object streams as usual. */
Test(om, a_spilled_object_is_served_after_its_restore)
{
    char err[256];
    cr_assert_eq(config_set(&cfg_small, "store_full_wait_ms", "20000", err, sizeof(err)), 0);
    om_free(nodes[0].nm.om);
    plasma_client_free(nodes[0].writer);
    plasma_store_free(nodes[0].nm.store);
    node_init(&nodes[0], &cfg_small);
    cr_assert_eq(plasma_store_start_io(nodes[0].nm.store, err, sizeof(err)), 0, "%s", err);
    plasma_store *s0 = nodes[0].nm.store;
    object_id_t a = oid(1), b = oid(2);
    put(&nodes[0], &a, 5 * MIB, 12);
    result c = {0};
    plasma_create_async(s0, nodes[0].writer, &b, 5 * MIB, 0, on_created, &c, 0);
    run_until(&c); /* a is written to disk on the thread meanwhile */
    cr_assert_eq(c.status, RAYC_OK);
    cr_assert_eq(plasma_seal(s0, nodes[0].writer, &b), 0);
    cr_assert_eq(plasma_delete(s0, &b), 0); /* room to restore a */
    cr_assert_eq(plasma_object_state(s0, &a, NULL), PLASMA_SPILLED);
    result r = {0};
    om_pull(nodes[1].nm.om, &a, &nodes[0].nm.node_id, on_done, &r);
    run_until(&r);
    cr_assert_eq(r.status, RAYC_OK, "%s", r.msg);
    cr_assert_eq(lookups, 0, "the hinted holder answered the first request (no failover)");
    cr_assert(check(&nodes[1], &a, 5 * MIB, 12));
    cr_assert_eq(plasma_object_state(s0, &a, NULL), PLASMA_SEALED, "restored at the holder");
    await_unpinned(&nodes[0]);
}
