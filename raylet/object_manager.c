/*
 * object_manager.c -- pulls objects from other raylets and serves theirs
 * (see object_manager.h, docs/object_manager.md). Runs in the raylet's loop
 * thread.
 *
 * A pull is one record per object id (concurrent om_pull calls join it as
 * waiters) that walks through these states:
 *
 *   IDLE ------> LOOKUP (GCS directory) ------> IDLE (candidates in hand)
 *   IDLE ------> REQUESTED (PullRequest sent to one candidate)
 *   REQUESTED --PullReply OK, create fits--> RECEIVING --last byte--> sealed, done
 *   REQUESTED --PullReply OK, store full--> CREATING --space--> REQUESTED again
 *   REQUESTED --PullReply error--> IDLE (next candidate)
 *   any --EEXIST (someone here creates it)--> WAIT_LOCAL --sealed--> done
 *   REQUESTED/CREATING/RECEIVING --source lost, stalled or misbehaved--> IDLE
 *
 * IDLE always has a timer or a synchronous step pending, so every pull ends:
 * sealed (RAYC_OK), no holder left within the lookup budget
 * (RAYC_EOBJECT_LOST), no space (RAYC_ESTORE_FULL), or the raylet stops.
 *
 * Each transfer writes through its own plasma_client (pull->pc), so that
 * abandoning a half-written object is plasma_client_free(): the store aborts
 * the unsealed create and cancels a create still waiting for space. Before the
 * seal the object is handed to its remote owner (plasma_set_remote_owner,
 * with the owner id the source sent): it is a secondary copy, evictable,
 * kept for that owner, who alone of the local clients may delete it.
 *
 * Chunks carry no request id. They are matched by (connection, object id)
 * and accepted only in RECEIVING, in order: a server writes its PullReply and
 * then every chunk of it back to back, so on one connection all chunks of an
 * abandoned request arrive before the reply to a newer one, and are dropped.
 */
#include "object_manager_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id_map.h"
#include "log.h"
#include "msg.h"
#include "rayc.h"

#define CHUNK_MAX        (4u << 20) /* bytes of object data per OBJECT_CHUNK frame */
#define CHUNK_SLACK      1024       /* room for the chunk header within max_frame_bytes */
#define LOOKUP_FIRST_MS  20         /* first back-off when no holder is known */
#define LOOKUP_MAX_MS    500        /* back-off cap */
#define LOOKUP_BUDGET_MS 3000       /* time without a holder before RAYC_EOBJECT_LOST */
#define GCS_RETRY_MS     200        /* GCS unreachable: ask again (budget not charged) */
#define LOCAL_WAIT_MS    3000       /* another local creator: wait this long for its seal */
#define MAX_ATTEMPTS     64         /* PullRequests per pull before giving up */
#define MAX_LOCAL_WAITS  3          /* WAIT_LOCAL rounds before giving up on a local creator */
#define PULL_BUCKETS     64         /* initial hash size; grows by doubling */

enum {
    PULL_IDLE,       /* between steps: a timer or the caller moves it on */
    PULL_LOOKUP,     /* GetObjectLocations outstanding */
    PULL_REQUESTED,  /* PullRequest sent on src_c, waiting for PullReply */
    PULL_CREATING,   /* plasma_create_async waiting for space; chunks dropped */
    PULL_RECEIVING,  /* created; chunks land at off */
    PULL_WAIT_LOCAL, /* a local creator holds the id; plasma_wait for its seal */
};

enum {
    ACT_RESTART, /* drop what is left of the transfer, then ask the next source */
    ACT_LOOKUP,  /* ask the directory */
    ACT_STALL,   /* the source went silent */
    ACT_FAIL,    /* end with fail_status / fail_msg */
};

typedef struct waiter {
    om_done_cb cb;
    void *arg;
    struct waiter *next;
} waiter;

typedef struct pull pull;

/* One GetObjectLocations call; outlives its pull if the pull ends first. */
typedef struct lookup {
    pull *p; /* NULL once the pull is gone */
} lookup;

struct pull {
    object_manager *om;
    object_id_t id;
    char hex[ID_HEX_MAX];
    int state;
    waiter *waiters;

    /* sources */
    node_id_t *cands; /* this round's candidates, tried in order */
    size_t ncands, next_cand, cand_cap;
    node_id_t *failed; /* failed since the last lookup; skipped by the next */
    size_t nfailed, failed_cap;
    bool looked_up;      /* a lookup round has been made */
    bool told_no_holder; /* env.no_holder was called */
    uint64_t backoff_ms; /* next delay between lookups */
    uint64_t deadline;   /* now_ms() past which no holder means lost */
    unsigned attempts;   /* PullRequests sent */
    lookup *lk;          /* outstanding lookup */

    /* the current transfer */
    node_id_t src;
    conn *src_c;
    uint64_t req_id;
    worker_id_t owner; /* the object's owner, as the source knows it */
    plasma_client *pc; /* creates (and aborts) this transfer's object */
    bool created;
    bool tearing;         /* pc is being freed: its callbacks are ignored */
    unsigned local_waits; /* WAIT_LOCAL rounds so far */
    uint64_t off, size, received;
    uint64_t t_start_us;
    conn *sink_c; /* a chunk of ours is being read straight into the arena there */

    struct event *timer;
    int action; /* what the timer does (ACT_*) */
    int fail_status;
    char fail_msg[256];
    id_node hnode; /* in om->pulls, keyed by id */
};

static void next_source(pull *p);
static void finish(pull *p, int status, const char *msg);
static void sink_on(object_manager *om, conn *c);
static void sink_forget(object_manager *om, conn *c);

/* ---------------------------------------------------------------- pure helpers */

size_t om__chunk_size(size_t max_frame)
{
    size_t c = CHUNK_MAX;
    if (max_frame > 0 && max_frame < c + CHUNK_SLACK)
        c = max_frame > 2 * CHUNK_SLACK ? max_frame - CHUNK_SLACK : CHUNK_SLACK;
    return c;
}

uint64_t om__chunk_count(uint64_t size, size_t chunk)
{
    return chunk ? (size + chunk - 1) / chunk : 0;
}

const char *om__chunk_check(uint64_t size, uint64_t received, uint64_t offset, uint64_t total,
                            size_t len)
{
    if (total != size)
        return "chunk total differs from the object size";
    if (offset != received)
        return "chunk out of order";
    if (len == 0)
        return "empty chunk";
    if (len > size - received)
        return "chunk past the end of the object";
    return NULL;
}

uint64_t om__backoff_next(uint64_t cur_ms)
{
    if (cur_ms == 0)
        return LOOKUP_FIRST_MS;
    return cur_ms * 2 > LOOKUP_MAX_MS ? LOOKUP_MAX_MS : cur_ms * 2;
}

/* ---------------------------------------------------------------- pull table */

static pull *pull_find(const object_manager *om, const object_id_t *id)
{
    return ID_MAP_ENTRY(id_map_find(&om->pulls, id->b), pull, hnode);
}

/* Call fn on every pull (fn may end the pull it is given, no other). */
static void each_pull(object_manager *om, void (*fn)(pull *p, const void *arg), const void *arg)
{
    id_map_iter it;
    id_map_iter_init(&om->pulls, &it);
    for (id_node *n; (n = id_map_iter_next(&om->pulls, &it)) != NULL;)
        fn(ID_MAP_ENTRY(n, pull, hnode), arg);
}

/* ---------------------------------------------------------------- helpers */

static bool same_node(const node_id_t *a, const node_id_t *b)
{
    return memcmp(a->b, b->b, NODE_ID_SIZE) == 0;
}

/* A node worth asking: alive in the view and not this one. */
static bool node_usable(const object_manager *om, const node_id_t *n)
{
    if (same_node(n, &om->self))
        return false;
    return om->env.node_alive(om->env.ctx, n);
}

static bool node_in(const node_id_t *set, size_t n, const node_id_t *node)
{
    for (size_t i = 0; i < n; i++)
        if (same_node(&set[i], node))
            return true;
    return false;
}

/* Append node to a growable array unless present. false on allocation failure. */
static bool node_add(node_id_t **set, size_t *n, size_t *cap, const node_id_t *node)
{
    if (node_in(*set, *n, node))
        return true;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        node_id_t *ns = realloc(*set, nc * sizeof(*ns));
        if (ns == NULL)
            return false;
        *set = ns;
        *cap = nc;
    }
    (*set)[(*n)++] = *node;
    return true;
}

static void arm(pull *p, int action, uint64_t ms)
{
    p->action = action;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(p->timer, &tv);
}

/* Abandon the current transfer: free its client (aborting an unsealed create
 * and cancelling a create or wait still pending; their callbacks see
 * p->tearing) and forget the source connection. */
static void transfer_reset(pull *p)
{
    if (p->sink_c) { /* its memory goes with p->pc: the rest of the chunk is dropped */
        conn_chunk_cancel(p->sink_c);
        p->sink_c = NULL;
    }
    if (p->pc) {
        p->tearing = true;
        plasma_client_free(p->pc);
        p->tearing = false;
        p->pc = NULL;
    }
    p->created = false;
    p->src_c = NULL;
    p->req_id = 0;
    p->received = 0;
    p->state = PULL_IDLE;
    evtimer_del(p->timer);
}

/* Move on from the loop: the transfer's client is freed by the timer, never
 * here, because this runs inside store callbacks of that very client too.
 * Until then nothing matches the pull (state IDLE, no source connection). */
static void restart_soon(pull *p)
{
    p->state = PULL_IDLE;
    p->src_c = NULL;
    arm(p, ACT_RESTART, 0);
}

/* End the pull from the loop (same reason as restart_soon). */
static void fail_soon(pull *p, int status, const char *msg)
{
    p->state = PULL_IDLE;
    p->src_c = NULL;
    p->fail_status = status;
    snprintf(p->fail_msg, sizeof(p->fail_msg), "%s", msg);
    arm(p, ACT_FAIL, 0);
}

/* The current source failed: remember it and try another. */
static void source_failed(pull *p, const char *why)
{
    char nhex[ID_HEX_MAX];
    log_debug("pull %s from %s: %s", p->hex, id_hex(p->src.b, NODE_ID_SIZE, nhex), why);
    node_add(&p->failed, &p->nfailed, &p->failed_cap, &p->src);
    restart_soon(p);
}

/* Which transfers failed: those from connection c, or from node (when c is
 * NULL). */
struct src_fail {
    conn *c;
    const node_id_t *node;
    const char *why;
};

static void fail_if_source(pull *p, const void *arg)
{
    const struct src_fail *sf = arg;
    if (sf->c ? p->src_c == sf->c : (p->src_c != NULL && same_node(&p->src, sf->node)))
        source_failed(p, sf->why);
}

/* A peer broke the object protocol: close its connection (nothing it sent is
 * used) and move every transfer from it elsewhere. */
void om__protocol_error(object_manager *om, conn *c, const char *why)
{
    log_warn("closing raylet connection %s: %s", conn_peer(c), why);
    struct src_fail sf = {c, NULL, why};
    each_pull(om, fail_if_source, &sf);
    conn_close(c);
}

/* ---------------------------------------------------------------- pull steps */

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void lookup_now(pull *p);

static pull *pull_new(object_manager *om, const object_id_t *id)
{
    pull *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->timer = evtimer_new(om->base, on_timer, p);
    if (p->timer == NULL) {
        free(p);
        return NULL;
    }
    p->om = om;
    p->id = *id;
    id_hex(id->b, OBJECT_ID_SIZE, p->hex);
    p->deadline = now_ms() + LOOKUP_BUDGET_MS;
    id_map_insert(&om->pulls, &p->hnode);
    return p;
}

/* End the pull: every waiter is told, in the order they came. */
static void finish(pull *p, int status, const char *msg)
{
    object_manager *om = p->om;
    id_map_remove(&om->pulls, &p->hnode);
    if (p->lk)
        p->lk->p = NULL;
    transfer_reset(p);
    event_free(p->timer);
    if (status == RAYC_OK)
        om->pulls_done++;
    else
        om->pulls_failed++;
    if (status != RAYC_OK)
        log_info("pull of %s failed: %s", p->hex, msg);
    /* reverse the LIFO list so waiters hear in arrival order */
    waiter *w = NULL;
    while (p->waiters) {
        waiter *n = p->waiters;
        p->waiters = n->next;
        n->next = w;
        w = n;
    }
    while (w) {
        waiter *n = w->next;
        w->cb(w->arg, &p->id, status, status == RAYC_OK ? NULL : msg);
        free(w);
        w = n;
    }
    free(p->cands);
    free(p->failed);
    free(p);
}

static void fail_lost(pull *p, const char *what)
{
    char msg[192];
    snprintf(msg, sizeof(msg), "%s %s", what, p->hex);
    finish(p, RAYC_EOBJECT_LOST, msg);
}

/* The transfer is complete: hand the copy to its remote owner (nobody here
 * deletes it with a client but the owner), seal it (the seal hook tells the
 * directory, owner included), then tell the waiters. */
static void complete(pull *p)
{
    object_manager *om = p->om;
    plasma_set_remote_owner(om->store, &p->id, &p->owner);
    int rc = plasma_seal(om->store, p->pc, &p->id);
    if (rc != 0) {
        fail_lost(p, "object deleted while it was being received:");
        return;
    }
    uint64_t us = now_us() - p->t_start_us;
    char nhex[ID_HEX_MAX];
    log_debug("pulled %s (%" PRIu64 " bytes) from %s in %" PRIu64 " us, %.1f MB/s", p->hex, p->size,
              id_hex(p->src.b, NODE_ID_SIZE, nhex), us, us ? (double)p->size / (double)us : 0.0);
    finish(p, RAYC_OK, NULL);
}

static void send_request(pull *p)
{
    Rpc__PullRequest r = RPC__PULL_REQUEST__INIT;
    p->req_id = ++p->om->next_req_id;
    r.req_id = p->req_id;
    r.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, p->id.b};
    p->state = PULL_REQUESTED;
    sink_on(p->om, p->src_c);
    if (conn_send(p->src_c, MSG_PULL_REQUEST, &r.base) != 0) {
        source_failed(p, "connection closed");
        return;
    }
    arm(p, ACT_STALL, p->om->stall_ms);
}

/* Sealed or not, next_source decides: it finds a sealed object local. */
static void on_local_wait(void *arg, uint64_t tag, int status, const bool *ready, size_t n)
{
    (void)tag, (void)status, (void)ready, (void)n;
    pull *p = arg;
    if (p->tearing || p->state != PULL_WAIT_LOCAL)
        return;
    restart_soon(p);
}

/* Someone on this node is creating the object: wait (bounded) for its seal
 * rather than fetching a second copy. */
static void wait_local(pull *p)
{
    object_manager *om = p->om;
    transfer_reset(p);
    p->pc = plasma_client_new(om->store, NULL);
    if (p->pc == NULL) {
        finish(p, RAYC_ESTORE_FULL, "raylet out of memory");
        return;
    }
    p->state = PULL_WAIT_LOCAL;
    p->local_waits++;
    plasma_wait(om->store, p->pc, &p->id, 1, 1, LOCAL_WAIT_MS, on_local_wait, p, 0);
}

/* Ask the next candidate; with none left, look the object up again (at once
 * the first time, then with back-off until the budget is spent). */
static void next_source(pull *p)
{
    object_manager *om = p->om;
    if (om->closing || om->stopping) {
        finish(p, RAYC_EOBJECT_LOST, "raylet stopping");
        return;
    }
    enum plasma_state st = plasma_object_state(om->store, &p->id, NULL);
    if (st == PLASMA_SEALED || st == PLASMA_SPILLED) {
        finish(p, RAYC_OK, NULL);
        return;
    }
    if (st == PLASMA_CREATED) {
        if (p->local_waits >= MAX_LOCAL_WAITS) {
            fail_lost(p, "a local creator never sealed object");
            return;
        }
        wait_local(p);
        return;
    }
    while (p->next_cand < p->ncands) {
        node_id_t n = p->cands[p->next_cand++];
        if (!node_usable(om, &n))
            continue;
        if (p->attempts >= MAX_ATTEMPTS) {
            fail_lost(p, "every source failed, too many attempts to pull object");
            return;
        }
        conn *c = om->env.peer(om->env.ctx, &n);
        if (c == NULL) {
            node_add(&p->failed, &p->nfailed, &p->failed_cap, &n);
            continue;
        }
        p->attempts++;
        p->src = n;
        p->src_c = c;
        send_request(p);
        return;
    }
    if (!p->looked_up) {
        lookup_now(p);
        return;
    }
    p->backoff_ms = om__backoff_next(p->backoff_ms);
    if (now_ms() + p->backoff_ms > p->deadline) {
        fail_lost(p, "no node holds object");
        return;
    }
    arm(p, ACT_LOOKUP, p->backoff_ms);
}

static void on_locations(void *arg, ProtobufCMessage *reply)
{
    lookup *lk = arg;
    pull *p = lk->p;
    free(lk);
    if (p == NULL)
        return;
    p->lk = NULL;
    p->state = PULL_IDLE;
    p->looked_up = true;
    if (reply == NULL) { /* the GCS connection was lost; it will be back */
        p->deadline += GCS_RETRY_MS;
        arm(p, ACT_LOOKUP, GCS_RETRY_MS);
        return;
    }
    const Rpc__GetObjectLocationsReply *r = (const Rpc__GetObjectLocationsReply *)reply;
    p->ncands = p->next_cand = 0;
    size_t listed = 0;
    for (size_t i = 0; i < r->n_locations; i++) {
        const Rpc__ObjectLocation *l = r->locations[i];
        if (l->removed || l->object_id.len != OBJECT_ID_SIZE ||
            memcmp(l->object_id.data, p->id.b, OBJECT_ID_SIZE) != 0 ||
            l->node_id.len != NODE_ID_SIZE)
            continue;
        node_id_t n;
        memcpy(n.b, l->node_id.data, NODE_ID_SIZE);
        if (!node_usable(p->om, &n))
            continue;
        listed++;
        if (!node_in(p->failed, p->nfailed, &n))
            node_add(&p->cands, &p->ncands, &p->cand_cap, &n);
    }
    if (p->ncands == 0 && listed > 0)
        p->nfailed = 0; /* only failed holders are listed: retry them after the back-off */
    if (listed == 0 && !p->told_no_holder && p->om->env.no_holder) {
        p->told_no_holder = true;
        p->om->env.no_holder(p->om->env.ctx, &p->id);
    }
    next_source(p);
}

static void lookup_now(pull *p)
{
    object_manager *om = p->om;
    lookup *lk = malloc(sizeof(*lk));
    Rpc__GetObjectLocationsRequest req = RPC__GET_OBJECT_LOCATIONS_REQUEST__INIT;
    ProtobufCBinaryData ids[1] = {{OBJECT_ID_SIZE, p->id.b}};
    req.n_object_ids = 1;
    req.object_ids = ids;
    if (lk == NULL || om->env.gcs_call(om->env.ctx, MSG_GET_OBJECT_LOCATIONS_REQ, &req.base,
                                       on_locations, lk) != 0) {
        free(lk);
        p->looked_up = true;
        p->deadline += GCS_RETRY_MS; /* no GCS now: not the object's fault */
        arm(p, ACT_LOOKUP, GCS_RETRY_MS);
        return;
    }
    lk->p = p;
    p->lk = lk;
    p->state = PULL_LOOKUP;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    pull *p = arg;
    switch (p->action) {
    case ACT_RESTART:
        transfer_reset(p);
        next_source(p);
        break;
    case ACT_LOOKUP:
        lookup_now(p);
        break;
    case ACT_STALL:
        source_failed(p, "the source sent nothing for too long");
        break;
    case ACT_FAIL:
        finish(p, p->fail_status, p->fail_msg);
        break;
    }
}

/* ---------------------------------------------------------------- receiving */

static void on_created(void *arg, uint64_t tag, int status, uint64_t off, const char *msg)
{
    pull *p = arg;
    if (p->tearing || status == RAYC_ECANCELLED || p->state != PULL_CREATING || tag != p->req_id)
        return;
    if (status == RAYC_EEXIST) {
        restart_soon(p); /* next_source finds the local creator */
        return;
    }
    if (status != RAYC_OK) {
        char m[256];
        snprintf(m, sizeof(m), "no room to receive object %s: %s", p->hex,
                 msg && msg[0] ? msg : rayc_strerror(status));
        fail_soon(p, RAYC_ESTORE_FULL, m);
        return;
    }
    /* The source streamed its chunks while we waited and they were dropped:
     * ask it again; its new reply follows every old chunk on the stream. */
    p->created = true;
    p->off = off;
    send_request(p);
}

static void on_pull_reply(object_manager *om, conn *c, const Rpc__PullReply *r)
{
    if (r->object_id.len != OBJECT_ID_SIZE) {
        om__protocol_error(om, c, "PullReply with a malformed object id");
        return;
    }
    object_id_t id;
    memcpy(id.b, r->object_id.data, OBJECT_ID_SIZE);
    pull *p = pull_find(om, &id);
    if (p == NULL || p->state != PULL_REQUESTED || p->src_c != c || p->req_id != r->req_id)
        return; /* an abandoned request */
    int status = r->status ? r->status->code : RAYC_EPROTO;
    if (status != RAYC_OK) {
        char why[256];
        snprintf(why, sizeof(why), "refused: %s",
                 r->status && r->status->message[0] ? r->status->message : rayc_strerror(status));
        source_failed(p, why);
        return;
    }
    if (p->created && p->size != r->size) { /* another size than before: start over */
        p->created = false;
        p->tearing = true;
        plasma_client_free(p->pc);
        p->tearing = false;
        p->pc = NULL;
    }
    p->deadline = now_ms() + LOOKUP_BUDGET_MS;
    p->size = r->size;
    memset(&p->owner, 0, sizeof(p->owner));
    if (r->owner_id.len == WORKER_ID_SIZE)
        memcpy(p->owner.b, r->owner_id.data, WORKER_ID_SIZE);
    if (!p->created) {
        if (p->pc == NULL && (p->pc = plasma_client_new(om->store, NULL)) == NULL) {
            finish(p, RAYC_ESTORE_FULL, "raylet out of memory");
            return;
        }
        int rc = plasma_create(om->store, p->pc, &id, r->size, PLASMA_EVICTABLE, &p->off);
        if (rc == RAYC_EEXIST) {
            wait_local(p);
            return;
        }
        if (rc == RAYC_ESTORE_FULL) {
            p->state = PULL_CREATING;
            evtimer_del(p->timer); /* the store's own wait bounds this step */
            plasma_create_async(om->store, p->pc, &id, r->size, PLASMA_EVICTABLE, on_created, p,
                                p->req_id);
            return;
        }
        if (rc != 0) {
            char m[512];
            snprintf(m, sizeof(m), "cannot receive object %s: %s", p->hex, rayc_last_error());
            finish(p, RAYC_ESTORE_FULL, m);
            return;
        }
        p->created = true;
    }
    p->received = 0;
    p->state = PULL_RECEIVING;
    p->t_start_us = now_us();
    if (p->size == 0) { /* zero bytes: the reply is the whole transfer */
        complete(p);
        return;
    }
    arm(p, ACT_STALL, p->om->stall_ms);
}

/* len more bytes of p's object are in place. */
static void chunk_in(pull *p, size_t len)
{
    p->received += len;
    p->om->bytes_in += len;
    if (p->received == p->size)
        complete(p);
    else
        arm(p, ACT_STALL, p->om->stall_ms);
}

static void on_chunk(object_manager *om, conn *c, const Rpc__ChunkHeader *h)
{
    if (h->object_id.len != OBJECT_ID_SIZE) {
        om__protocol_error(om, c, "object chunk with a malformed object id");
        return;
    }
    object_id_t id;
    memcpy(id.b, h->object_id.data, OBJECT_ID_SIZE);
    pull *p = pull_find(om, &id);
    if (p == NULL || p->state != PULL_RECEIVING || p->src_c != c)
        return; /* for a transfer abandoned or moved elsewhere */
    const uint8_t *payload, *data;
    size_t plen, len;
    conn_frame_payload(c, &payload, &plen);
    if (payload == NULL || msg_chunk_split(payload, plen, NULL, &data, &len) != 0) {
        om__protocol_error(om, c, "malformed object chunk");
        return;
    }
    const char *bad = om__chunk_check(p->size, p->received, h->offset, h->total, len);
    if (bad) {
        char why[160];
        snprintf(why, sizeof(why), "%s (object %s)", bad, p->hex);
        om__protocol_error(om, c, why);
        return;
    }
    memcpy(plasma_store_base(om->store) + p->off + h->offset, data, len);
    chunk_in(p, len);
}

/* ---------------------------------------------------------------- chunk sink */

/* Chunks of a transfer in progress skip the connection's buffer: once a
 * chunk's header is in, its bytes are read from the socket straight into the
 * object's place in the arena (conn_chunk_sink). The same checks as on_chunk
 * come first; a chunk that fails them takes the usual path, which rejects
 * it. */
static uint8_t *sink_where(void *arg, conn *c, const Rpc__ChunkHeader *h, size_t len)
{
    object_manager *om = arg;
    if (h->object_id.len != OBJECT_ID_SIZE)
        return NULL;
    object_id_t id;
    memcpy(id.b, h->object_id.data, OBJECT_ID_SIZE);
    pull *p = pull_find(om, &id);
    if (p == NULL || p->state != PULL_RECEIVING || p->src_c != c || p->sink_c != NULL ||
        om__chunk_check(p->size, p->received, h->offset, h->total, len) != NULL)
        return NULL;
    p->sink_c = c;
    return plasma_store_base(om->store) + p->off + h->offset;
}

static void sink_landed(void *arg, conn *c, const Rpc__ChunkHeader *h, size_t len)
{
    object_manager *om = arg;
    object_id_t id;
    memcpy(id.b, h->object_id.data, OBJECT_ID_SIZE); /* checked by sink_where */
    pull *p = pull_find(om, &id);
    if (p == NULL || p->sink_c != c)
        return; /* (a transfer that ended cancels its chunk: not reached) */
    p->sink_c = NULL;
    if (p->state == PULL_RECEIVING && p->src_c == c)
        chunk_in(p, len);
}

static const conn_chunk_sink om_sink = {sink_where, sink_landed};

static void sink_on(object_manager *om, conn *c)
{
    for (size_t i = 0; i < om->nsinks; i++)
        if (om->sinks[i] == c)
            return;
    if (om->nsinks == om->sinks_cap) {
        size_t cap = om->sinks_cap ? 2 * om->sinks_cap : 16;
        conn **n = realloc(om->sinks, cap * sizeof(*n));
        if (n == NULL)
            return; /* chunks take the usual path */
        om->sinks = n;
        om->sinks_cap = cap;
    }
    om->sinks[om->nsinks++] = c;
    conn_set_chunk_sink(c, &om_sink, om);
}

static void sink_forget(object_manager *om, conn *c)
{
    for (size_t i = 0; i < om->nsinks; i++)
        if (om->sinks[i] == c) {
            om->sinks[i] = om->sinks[--om->nsinks];
            return;
        }
}

/* ---------------------------------------------------------------- API */

object_manager *om_new(struct event_base *base, const rayc_config *cfg, plasma_store *store,
                       const node_id_t *self, const om_env *env)
{
    object_manager *om = calloc(1, sizeof(*om));
    if (om == NULL)
        return NULL;
    om->base = base;
    om->store = store;
    om->self = *self;
    om->env = *env;
    om->chunk = om__chunk_size(cfg ? cfg->max_frame_bytes : 0);
    /* a source silent this long mid-transfer is dropped */
    om->stall_ms =
        cfg && cfg->object_transfer_stall_ms > 0 ? (uint64_t)cfg->object_transfer_stall_ms : 30000;
    om->pc = plasma_client_new(store, NULL);
    if (id_map_init(&om->pulls, ID_MAP_KEY_OFF(pull, hnode, id), OBJECT_ID_SIZE, PULL_BUCKETS) !=
            0 ||
        om->pc == NULL) {
        om_free(om);
        return NULL;
    }
    return om;
}

static void fail_stopping(pull *p, const void *arg)
{
    (void)arg;
    finish(p, RAYC_EOBJECT_LOST, "raylet stopping");
}

void om_free(object_manager *om)
{
    if (om == NULL)
        return;
    om->closing = true;
    each_pull(om, fail_stopping, NULL);
    /* Chunks still queued on connections keep their serve record; it just
     * forgets us (the pins go with om->pc). */
    om__serving_stop(om);
    plasma_client_free(om->pc);
    id_map_destroy(&om->pulls);
    for (size_t i = 0; i < om->nsinks; i++) /* connections may outlive us */
        conn_set_chunk_sink(om->sinks[i], NULL, NULL);
    free(om->sinks);
    free(om);
}

void om_shutdown(object_manager *om)
{
    om->stopping = true;
}

void om_pull(object_manager *om, const object_id_t *id, const node_id_t *hint, om_done_cb cb,
             void *arg)
{
    enum plasma_state st = plasma_object_state(om->store, id, NULL);
    if (st == PLASMA_SEALED || st == PLASMA_SPILLED) {
        cb(arg, id, RAYC_OK, NULL);
        return;
    }
    if (om->closing) {
        cb(arg, id, RAYC_EOBJECT_LOST, "raylet stopping");
        return;
    }
    waiter *w = malloc(sizeof(*w));
    pull *p = pull_find(om, id);
    bool fresh = p == NULL;
    if (w == NULL || (fresh && (p = pull_new(om, id)) == NULL)) {
        free(w);
        cb(arg, id, RAYC_ESTORE_FULL, "raylet out of memory");
        return;
    }
    w->cb = cb;
    w->arg = arg;
    w->next = p->waiters;
    p->waiters = w;
    if (!fresh)
        return;
    if (hint && node_usable(om, hint))
        node_add(&p->cands, &p->ncands, &p->cand_cap, hint);
    next_source(p);
}

void om_keep(object_manager *om, const object_id_t *id)
{
    pull *p = pull_find(om, id);
    if (p && p->deadline < now_ms() + LOOKUP_BUDGET_MS)
        p->deadline = now_ms() + LOOKUP_BUDGET_MS;
}

bool om_handle(object_manager *om, conn *c, uint16_t type, ProtobufCMessage *msg)
{
    switch (type) {
    case MSG_PULL_REQUEST:
        om__serve_pull(om, c, (const Rpc__PullRequest *)msg);
        return true;
    case MSG_PULL_REPLY:
        on_pull_reply(om, c, (const Rpc__PullReply *)msg);
        return true;
    case MSG_OBJECT_CHUNK:
        on_chunk(om, c, (const Rpc__ChunkHeader *)msg);
        return true;
    default:
        return false;
    }
}

static void forget_sink_conn(pull *p, const void *c)
{
    if (p->sink_c == c)
        p->sink_c = NULL;
}

void om_peer_closed(object_manager *om, conn *c)
{
    if (om == NULL)
        return;
    struct src_fail sf = {c, NULL, "connection closed"};
    each_pull(om, fail_if_source, &sf);
    each_pull(om, forget_sink_conn, c); /* c is freed after this */
    sink_forget(om, c);
    om__serving_peer_closed(om, c);
}

void om_node_died(object_manager *om, const node_id_t *node)
{
    if (om == NULL)
        return;
    struct src_fail sf = {NULL, node, "node died"};
    each_pull(om, fail_if_source, &sf);
}

void om_stats(const object_manager *om, uint64_t *bytes_in, uint64_t *bytes_out,
              uint64_t *pulls_done, uint64_t *pulls_failed)
{
    if (bytes_in)
        *bytes_in = om->bytes_in;
    if (bytes_out)
        *bytes_out = om->bytes_out;
    if (pulls_done)
        *pulls_done = om->pulls_done;
    if (pulls_failed)
        *pulls_failed = om->pulls_failed;
}
