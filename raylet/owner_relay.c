/*
 * owner_relay.c -- see owner_relay.h. Runs in the raylet's loop thread.
 *
 * A query is one request this raylet made to an owner: a get (for local
 * clients waiting on the object; one per object at a time) or a client's
 * borrow/unborrow (answered to that client). It asks the local owner, or
 * else every other live raylet; it ends on the owner's answer, or when no
 * live raylet has the owner. A timer re-asks raylets that did not answer
 * (their node may be dying: its death then counts as "not here"), re-asks
 * an owner that said "not made yet", and ends queries that ran too long.
 */
#include "owner_relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "id_map.h"
#include "log.h"
#include "rayc.h"
#include "util.h"

#define TICK_MS      250   /* the timer's period while queries exist */
#define REASK_MS     1000  /* a raylet silent this long is asked again */
#define PENDING_MS   300   /* an owner still making the object: ask again after */
#define QUERY_MAX_MS 15000 /* a query ends after this (its askers ask again) */
#define MAX_WAITERS  8     /* clients told of a lost object per query */
#define MAX_NODES    1024  /* raylets asked per query */
#define MAX_QUERIES  1024  /* queries at once: more borrowed gets wait for a slot */
#define CACHE_SIZE   64    /* owners' nodes remembered (by tag), replaced round robin */
#define LENT_MAX     4096  /* inline values sent to other nodes remembered (oldest go) */
#define LENT_NODES   4     /* nodes remembered per value */

typedef struct query {
    uint64_t id; /* our req_id in the requests we send */
    object_id_t oid;
    uint32_t op;
    /* a client's borrow/unborrow: who asked, its call's id */
    bool from_client;
    worker_id_t asker;
    uint64_t asker_req;
    /* a get: local clients to tell if it is lost */
    worker_id_t waiters[MAX_WAITERS];
    int nwaiters;
    /* where the owner is being looked for */
    bool owner_known, owner_local;
    node_id_t owner_node;
    node_id_t *asked; /* broadcast: raylets asked, and whether each answered */
    bool *answered;
    int nasked;
    uint64_t asked_ms, started_ms, retry_ms; /* retry_ms: pending, ask again then */
    struct query *prev, *next;
} query;

/* An inline value a local owner sent to other nodes (which keep it as a
 * copy): when the owner frees it, those copies are deleted at once, even
 * before the directory has heard of them. */
typedef struct lent {
    object_id_t id;
    node_id_t nodes[LENT_NODES];
    int nnodes;
    id_node hnode;
    struct lent *older, *newer;
} lent;

struct owner_relay {
    struct event_base *base;
    node_id_t self;
    orel_env env;
    plasma_client *pc; /* creates the copies of inline values */
    struct {
        uint8_t tag[ID_OWNER_TAG_SIZE];
        node_id_t node;
    } cache[CACHE_SIZE]; /* where owners answered from (a get asks again every slice) */
    int ncache, cache_next;
    id_map lent_map; /* lent by object id */
    lent *oldest, *newest;
    query *queries;
    int nqueries;
    bool warned_full;
    uint64_t next_id;
    struct event *tick;
};

static void finish(owner_relay *r, query *q);

/* ---------------------------------------------------------------- sending */

static void fill_request(const owner_relay *r, const query *q, Rpc__OwnerRequest *m, bool to_peer)
{
    m->req_id = q->id;
    m->object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, (uint8_t *)q->oid.b};
    m->op = q->op;
    if (to_peer)
        m->node_id = (ProtobufCBinaryData){NODE_ID_SIZE, (uint8_t *)r->self.b};
    if (q->from_client)
        m->borrower_id = (ProtobufCBinaryData){WORKER_ID_SIZE, (uint8_t *)q->asker.b};
}

static bool ask_local(owner_relay *r, query *q)
{
    client *owner = creg_by_owner_tag(r->env.clients, &q->oid);
    if (owner == NULL)
        return false;
    Rpc__OwnerRequest m = RPC__OWNER_REQUEST__INIT;
    fill_request(r, q, &m, false);
    conn_send(owner->c, MSG_OWNER_REQUEST, &m.base);
    q->owner_known = q->owner_local = true;
    return true;
}

static void ask_node(owner_relay *r, query *q, const node_id_t *node)
{
    conn *c = r->env.peer(r->env.ctx, node);
    if (c == NULL)
        return; /* asked again at the next tick, or its death answers */
    Rpc__OwnerRequest m = RPC__OWNER_REQUEST__INIT;
    fill_request(r, q, &m, true);
    conn_send(c, MSG_OWNER_REQUEST, &m.base);
}

static int cache_find(const owner_relay *r, const object_id_t *oid)
{
    for (int i = 0; i < r->ncache; i++)
        if (memcmp(r->cache[i].tag, oid->b, ID_OWNER_TAG_SIZE) == 0)
            return i;
    return -1;
}

static void cache_put(owner_relay *r, const object_id_t *oid, const node_id_t *node)
{
    int i = cache_find(r, oid);
    if (i < 0) {
        i = r->ncache < CACHE_SIZE ? r->ncache++ : r->cache_next;
        r->cache_next = (i + 1) % CACHE_SIZE;
        memcpy(r->cache[i].tag, oid->b, ID_OWNER_TAG_SIZE);
    }
    r->cache[i].node = *node;
}

/* Ask the owner: on the node it was found on (by this query, or by an
 * earlier one of the same owner while that node lives), here, or (not
 * found yet, or gone) every other live raylet. */
static void ask(owner_relay *r, query *q)
{
    q->asked_ms = now_ms();
    int ci = q->owner_known ? -1 : cache_find(r, &q->oid);
    if (ci >= 0) {
        const view_node *v = gs_view_node(r->env.gs, &r->cache[ci].node);
        if (v && v->alive) {
            q->owner_known = true;
            q->owner_local = false;
            q->owner_node = r->cache[ci].node;
        }
    }
    if (q->owner_known && !q->owner_local) {
        ask_node(r, q, &q->owner_node);
        return;
    }
    q->owner_known = false;
    if (ask_local(r, q))
        return;
    int n = 0;
    const view_node *v = gs_view(r->env.gs, &n);
    free(q->asked);
    free(q->answered);
    q->asked = calloc((size_t)(n ? n : 1), sizeof(*q->asked));
    q->answered = calloc((size_t)(n ? n : 1), sizeof(*q->answered));
    q->nasked = 0;
    if (q->asked == NULL || q->answered == NULL)
        return; /* the tick tries again */
    for (int i = 0; i < n && q->nasked < MAX_NODES; i++) {
        if (!v[i].alive || memcmp(v[i].id.b, r->self.b, NODE_ID_SIZE) == 0)
            continue;
        q->asked[q->nasked++] = v[i].id;
        ask_node(r, q, &v[i].id);
    }
}

static void arm_tick(owner_relay *r)
{
    if (r->queries && !evtimer_pending(r->tick, NULL)) {
        struct timeval tv = {0, TICK_MS * 1000};
        evtimer_add(r->tick, &tv);
    }
}

/* ---------------------------------------------------------------- answers */

/* Tell a client's call its answer. */
static void answer_client(owner_relay *r, query *q, int code, const char *msg)
{
    client *cl = creg_by_worker(r->env.clients, &q->asker);
    if (cl == NULL)
        return;
    Rpc__OwnerReply m = RPC__OWNER_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    st.code = code;
    st.message = (char *)(msg ? msg : "");
    m.req_id = q->asker_req;
    m.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, q->oid.b};
    m.status = &st;
    conn_send(cl->c, MSG_OWNER_REPLY, &m.base);
}

/* The object can be had no more: tell whoever waits for it. */
static void lost(owner_relay *r, query *q, int code, const char *msg)
{
    if (q->from_client) {
        answer_client(r, q, code, msg);
        return;
    }
    Rpc__ObjectLost m = RPC__OBJECT_LOST__INIT;
    m.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, q->oid.b};
    m.message = (char *)msg;
    for (int i = 0; i < q->nwaiters; i++) {
        client *cl = creg_by_worker(r->env.clients, &q->waiters[i]);
        if (cl)
            conn_send(cl->c, MSG_OBJECT_LOST, &m.base);
    }
}

static void owner_died(owner_relay *r, query *q)
{
    char hex[ID_HEX_MAX], msg[160];
    id_hex(q->oid.b, ID_OWNER_TAG_SIZE, hex);
    snprintf(msg, sizeof(msg), "owner %s died (no live process has its id)", hex);
    lost(r, q, RAYC_EOBJECT_LOST, msg);
    finish(r, q);
}

/* The value, inline: it becomes a secondary copy here (evictable, kept for
 * its owner, freed everywhere when the owner frees the object), which
 * wakes the gets waiting for it. */
static void store_copy(owner_relay *r, query *q, const ProtobufCBinaryData *data,
                       const ProtobufCBinaryData *owner)
{
    if (plasma_object_state(r->env.store, &q->oid, NULL) != PLASMA_ABSENT)
        return;
    uint64_t off;
    int rc = plasma_create(r->env.store, r->pc, &q->oid, data->len, PLASMA_EVICTABLE, &off);
    if (rc == RAYC_EEXIST)
        return; /* someone here is making it (a pull): its seal wakes the gets */
    if (rc != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot store a borrowed object's %zu bytes here: %s", data->len,
                 rayc_strerror(rc));
        lost(r, q, rc == RAYC_ESTORE_FULL ? rc : RAYC_EOBJECT_LOST, msg);
        return;
    }
    if (data->len)
        memcpy(plasma_store_base(r->env.store) + off, data->data, data->len);
    if (owner->len == WORKER_ID_SIZE) {
        worker_id_t w;
        memcpy(w.b, owner->data, WORKER_ID_SIZE);
        plasma_set_remote_owner(r->env.store, &q->oid, &w);
    }
    plasma_seal(r->env.store, r->pc, &q->oid);
}

/* All asked raylets answered "not here" or died: nobody has the owner. */
static bool nobody_left(owner_relay *r, const query *q)
{
    for (int i = 0; i < q->nasked; i++) {
        if (q->answered[i])
            continue;
        const view_node *v = gs_view_node(r->env.gs, &q->asked[i]);
        if (v && v->alive)
            return false;
    }
    return true;
}

static query *find(owner_relay *r, uint64_t id)
{
    for (query *q = r->queries; q; q = q->next)
        if (q->id == id)
            return q;
    return NULL;
}

/* The owner's answer (or a raylet's "not here", from = that raylet). */
static void on_reply(owner_relay *r, const node_id_t *from, const Rpc__OwnerReply *m)
{
    query *q = find(r, m->req_id);
    if (q == NULL || m->object_id.len != OBJECT_ID_SIZE ||
        memcmp(m->object_id.data, q->oid.b, OBJECT_ID_SIZE) != 0)
        return;
    if (m->state == OREL_NOT_HERE) {
        if (q->owner_known && from && memcmp(from->b, q->owner_node.b, NODE_ID_SIZE) == 0) {
            q->owner_known = false; /* the owner left that node: look everywhere */
            int ci = cache_find(r, &q->oid);
            if (ci >= 0)
                r->cache[ci] = r->cache[--r->ncache];
            r->cache_next = r->ncache < CACHE_SIZE ? 0 : r->cache_next;
            ask(r, q);
            return;
        }
        for (int i = 0; from && i < q->nasked; i++)
            if (memcmp(q->asked[i].b, from->b, NODE_ID_SIZE) == 0)
                q->answered[i] = true;
        if (!q->owner_known && q->asked_ms && nobody_left(r, q))
            owner_died(r, q);
        return;
    }
    q->owner_known = true;
    q->owner_local = from == NULL;
    if (from) {
        q->owner_node = *from;
        cache_put(r, &q->oid, from);
    }
    int code = m->status ? m->status->code : 0;
    const char *text = m->status && m->status->message ? m->status->message : "";
    if (code != 0) {
        lost(r, q, code, text[0] ? text : "freed by its owner");
    } else if (q->from_client) {
        answer_client(r, q, 0, NULL);
    } else if (m->state == OREL_INLINE) {
        store_copy(r, q, &m->data, &m->owner_id);
    } else if (m->state == OREL_PENDING) {
        /* Not made yet: the pull must not give up for want of a holder. (In
         * a store: the pull finds it, or finds it lost, on its own.) */
        r->env.keep_pulling(r->env.ctx, &q->oid);
        q->retry_ms = now_ms() + PENDING_MS;
        return;
    }
    finish(r, q);
}

/* ---------------------------------------------------------------- queries */

static query *start(owner_relay *r, const object_id_t *oid, uint32_t op)
{
    if (r->nqueries >= MAX_QUERIES) {
        if (!r->warned_full)
            log_warn("%d requests to owners in flight: more wait (asked again by their gets)",
                     r->nqueries);
        r->warned_full = true;
        return NULL;
    }
    query *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    r->nqueries++;
    q->id = ++r->next_id;
    q->oid = *oid;
    q->op = op;
    q->started_ms = now_ms();
    q->next = r->queries;
    if (r->queries)
        r->queries->prev = q;
    r->queries = q;
    return q;
}

static void finish(owner_relay *r, query *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    r->nqueries--;
    if (r->nqueries < MAX_QUERIES / 2)
        r->warned_full = false;
    free(q->asked);
    free(q->answered);
    free(q);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    owner_relay *r = arg;
    uint64_t now = now_ms();
    for (query *q = r->queries, *next; q; q = next) {
        next = q->next;
        if (now - q->started_ms > QUERY_MAX_MS) {
            if (q->from_client)
                answer_client(r, q, RAYC_ETIMEDOUT, "the object's owner did not answer");
            finish(r, q);
        } else if (q->retry_ms && now >= q->retry_ms) {
            q->retry_ms = 0;
            ask(r, q);
        } else if (!q->retry_ms) {
            /* Silent: the owner (or its client) may just have gone, and a
             * request to a closing connection is dropped: ask again. */
            if (!q->owner_known && nobody_left(r, q))
                owner_died(r, q);
            else if (now - q->asked_ms > REASK_MS)
                ask(r, q);
        }
    }
    arm_tick(r);
}

void orel_get(owner_relay *r, client *cl, const object_id_t *id)
{
    if (cl && id_owner_tag_matches(id->b, &cl->id))
        return; /* its own object: nothing to ask */
    query *q = r->queries;
    while (q && (q->from_client || q->op != OREL_GET || memcmp(q->oid.b, id->b, OBJECT_ID_SIZE)))
        q = q->next;
    bool fresh = q == NULL;
    if (fresh && (q = start(r, id, OREL_GET)) == NULL)
        return;
    bool known = cl == NULL; /* a pull's: its own failure tells its waiters */
    for (int i = 0; !known && i < q->nwaiters; i++)
        known = memcmp(q->waiters[i].b, cl->id.b, WORKER_ID_SIZE) == 0;
    if (!known && q->nwaiters < MAX_WAITERS)
        q->waiters[q->nwaiters++] = cl->id;
    if (fresh) {
        ask(r, q);
        if (!q->owner_known && nobody_left(r, q)) {
            owner_died(r, q);
            return;
        }
    }
    arm_tick(r);
}

/* ---------------------------------------------------------------- frames */

/* A request from a peer raylet: to our client with the owner's tag, or
 * "not here". */
static void relay_request(owner_relay *r, const node_id_t *from, Rpc__OwnerRequest *m)
{
    object_id_t oid;
    memcpy(oid.b, m->object_id.data, OBJECT_ID_SIZE);
    client *owner = creg_by_owner_tag(r->env.clients, &oid);
    if (owner) {
        conn_send(owner->c, MSG_OWNER_REQUEST, &m->base);
        return;
    }
    conn *c = r->env.peer(r->env.ctx, from);
    if (c == NULL)
        return;
    Rpc__OwnerReply rep = RPC__OWNER_REPLY__INIT;
    rep.req_id = m->req_id;
    rep.object_id = m->object_id;
    rep.state = OREL_NOT_HERE;
    conn_send(c, MSG_OWNER_REPLY, &rep.base);
}

/* ---------------------------------------------------------------- lent values */

static void lent_unlink(owner_relay *r, lent *l)
{
    id_map_remove(&r->lent_map, &l->hnode);
    if (l->older)
        l->older->newer = l->newer;
    else
        r->oldest = l->newer;
    if (l->newer)
        l->newer->older = l->older;
    else
        r->newest = l->older;
    free(l);
}

static void lent_add(owner_relay *r, const object_id_t *id, const node_id_t *to)
{
    lent *l = ID_MAP_ENTRY(id_map_find(&r->lent_map, id->b), lent, hnode);
    if (l == NULL) {
        if (r->lent_map.count >= LENT_MAX)
            lent_unlink(r, r->oldest);
        if ((l = calloc(1, sizeof(*l))) == NULL)
            return;
        l->id = *id;
        id_map_insert(&r->lent_map, &l->hnode);
        l->older = r->newest;
        if (r->newest)
            r->newest->newer = l;
        else
            r->oldest = l;
        r->newest = l;
    }
    for (int i = 0; i < l->nnodes; i++)
        if (memcmp(l->nodes[i].b, to->b, NODE_ID_SIZE) == 0)
            return;
    if (l->nnodes < LENT_NODES)
        l->nodes[l->nnodes++] = *to;
    else
        l->nodes[LENT_NODES - 1] = *to; /* the rest are found through the directory */
}

void orel_owner_deleted(owner_relay *r, const client *cl, const ProtobufCBinaryData *ids, size_t n)
{
    for (size_t i = 0; i < n && r->lent_map.count > 0; i++) {
        if (ids[i].len != OBJECT_ID_SIZE || !id_owner_tag_matches(ids[i].data, &cl->id))
            continue; /* only its owner frees an object */
        lent *l = ID_MAP_ENTRY(id_map_find(&r->lent_map, ids[i].data), lent, hnode);
        if (l == NULL)
            continue;
        Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
        ProtobufCBinaryData one = {OBJECT_ID_SIZE, l->id.b};
        del.n_object_ids = 1;
        del.object_ids = &one;
        for (int k = 0; k < l->nnodes; k++) {
            conn *c = r->env.peer(r->env.ctx, &l->nodes[k]);
            if (c)
                conn_send(c, MSG_DELETE_OBJECTS, &del.base);
        }
        lent_unlink(r, l);
    }
}

/* ---------------------------------------------------------------- frames (clients) */

void orel_client_frame(owner_relay *r, client *cl, uint16_t type, ProtobufCMessage *msg)
{
    if (type == MSG_OWNER_REQUEST) {
        /* A client's borrow or unborrow (rayc_ref_retain / release). */
        Rpc__OwnerRequest *m = (Rpc__OwnerRequest *)msg;
        if (m->object_id.len != OBJECT_ID_SIZE || (m->op != OREL_BORROW && m->op != OREL_UNBORROW))
            return;
        object_id_t oid;
        memcpy(oid.b, m->object_id.data, OBJECT_ID_SIZE);
        query *q = start(r, &oid, m->op);
        if (q == NULL)
            return;
        q->from_client = true;
        q->asker = cl->id;
        q->asker_req = m->req_id;
        ask(r, q);
        if (!q->owner_known && nobody_left(r, q)) {
            owner_died(r, q);
            return;
        }
        arm_tick(r);
        return;
    }
    if (type != MSG_OWNER_REPLY)
        return;
    /* The owner's answer: stamp whose it is, then to the asking raylet, or
     * to our own query. */
    Rpc__OwnerReply *m = (Rpc__OwnerReply *)msg;
    ProtobufCBinaryData sent = m->owner_id; /* the unpacked message's: lend ours meanwhile */
    m->owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, cl->id.b};
    if (m->node_id.len == NODE_ID_SIZE && memcmp(m->node_id.data, r->self.b, NODE_ID_SIZE)) {
        node_id_t to;
        memcpy(to.b, m->node_id.data, NODE_ID_SIZE);
        conn *c = r->env.peer(r->env.ctx, &to);
        if (c)
            conn_send(c, MSG_OWNER_REPLY, &m->base);
        if (c && m->state == OREL_INLINE && (m->status == NULL || m->status->code == 0) &&
            m->object_id.len == OBJECT_ID_SIZE) {
            object_id_t oid;
            memcpy(oid.b, m->object_id.data, OBJECT_ID_SIZE);
            lent_add(r, &oid, &to);
        }
    } else {
        on_reply(r, NULL, m);
    }
    m->owner_id = sent;
}

void orel_peer_frame(owner_relay *r, const node_id_t *from, uint16_t type, ProtobufCMessage *msg)
{
    if (type == MSG_OWNER_REQUEST) {
        Rpc__OwnerRequest *m = (Rpc__OwnerRequest *)msg;
        if (m->object_id.len != OBJECT_ID_SIZE || m->node_id.len != NODE_ID_SIZE ||
            memcmp(m->node_id.data, from->b, NODE_ID_SIZE) != 0)
            return;
        relay_request(r, from, m);
    } else if (type == MSG_OWNER_REPLY) {
        on_reply(r, from, (Rpc__OwnerReply *)msg);
    }
}

void orel_node_died(owner_relay *r, const node_id_t *node)
{
    for (query *q = r->queries, *next; q; q = next) {
        next = q->next;
        if (q->owner_known && !q->owner_local &&
            memcmp(q->owner_node.b, node->b, NODE_ID_SIZE) == 0)
            q->owner_known = false; /* its owner died with it: look again (finds nobody) */
        if (!q->owner_known && q->asked_ms && nobody_left(r, q)) {
            if (q->op == OREL_UNBORROW)
                finish(r, q);
            else
                owner_died(r, q);
        }
    }
}

/* ---------------------------------------------------------------- life cycle */

owner_relay *orel_new(struct event_base *base, const node_id_t *self, const orel_env *env)
{
    owner_relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = base;
    r->self = *self;
    r->env = *env;
    r->pc = plasma_client_new(env->store, NULL);
    r->tick = evtimer_new(base, on_tick, r);
    if (r->pc == NULL || r->tick == NULL ||
        id_map_init(&r->lent_map, ID_MAP_KEY_OFF(lent, hnode, id), OBJECT_ID_SIZE, 64) != 0) {
        orel_free(r);
        return NULL;
    }
    return r;
}

void orel_free(owner_relay *r)
{
    if (r == NULL)
        return;
    while (r->queries)
        finish(r, r->queries);
    while (r->oldest)
        lent_unlink(r, r->oldest);
    id_map_destroy(&r->lent_map);
    if (r->tick)
        event_free(r->tick);
    if (r->pc)
        plasma_client_free(r->pc);
    free(r);
}
