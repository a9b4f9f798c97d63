/*
 * object_directory.c -- object locations and owners' deletes, batched to
 * the GCS; see object_directory.h. Runs in the raylet's loop thread.
 */
#include "object_directory.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "msg.h"

#define LOOKUP_IDS_MAX 4096 /* object ids per GetObjectLocations of the frees */

/* One object-location change waiting to be sent to the GCS. */
struct loc_rec {
    object_id_t id;
    worker_id_t owner;
    uint64_t size;
    bool removed;
    bool cancelled; /* an add undone by a remove in the same batch */
};

/* One client's delete of one object, to look up. Compared whole (memcmp):
 * the GCS's answer is matched against (object, owner) pairs. */
struct free_rec {
    object_id_t id;
    worker_id_t owner;
};

/* One GetObjectLocations of queued frees: the pairs it asks about, sorted. */
struct free_lookup {
    object_directory *od;
    size_t n;
    struct free_rec recs[];
};

struct object_directory {
    const rayc_config *cfg;
    node_id_t self;
    gcs_session *gs;
    peers *peers;
    struct loc_rec *pending;
    size_t count, cap;
    uint32_t *adds; /* id -> 1 + index of its pending add (0: empty) */
    size_t adds_cap;
    struct free_rec *frees; /* clients' deletes to look up other copies of */
    size_t free_count, free_cap;
    struct event *flush_ev;
};

static void arm_flush(object_directory *od)
{
    if (!evtimer_pending(od->flush_ev, NULL)) {
        int64_t ms = od->cfg->object_directory_batch_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(od->flush_ev, &tv);
    }
}

/* ---------------------------------------------------------------- locations */

/* The slot of id in the pending-adds index: where it is, or the empty slot
 * it would go to. */
static size_t loc_slot(const object_directory *od, const object_id_t *id)
{
    size_t mask = od->adds_cap - 1;
    size_t i = (size_t)id_hash(id->b, OBJECT_ID_SIZE) & mask;
    while (od->adds[i] != 0 &&
           memcmp(od->pending[od->adds[i] - 1].id.b, id->b, OBJECT_ID_SIZE) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Index the add at pending[k]; the index stays at most half full. */
static bool loc_index_add(object_directory *od, size_t k)
{
    if ((k + 1) * 2 > od->adds_cap) {
        size_t cap = od->adds_cap ? od->adds_cap * 2 : 512;
        uint32_t *n = calloc(cap, sizeof(*n));
        if (n == NULL)
            return false;
        free(od->adds);
        od->adds = n;
        od->adds_cap = cap;
        for (size_t j = 0; j < k; j++)
            if (!od->pending[j].removed && !od->pending[j].cancelled)
                od->adds[loc_slot(od, &od->pending[j].id)] = (uint32_t)j + 1;
    }
    od->adds[loc_slot(od, &od->pending[k].id)] = (uint32_t)k + 1;
    return true;
}

/* Queue one location change; the batch goes to the GCS on the next flush.
 * An object freed before its add was sent (short-lived puts, at hundreds of
 * thousands a second) cancels the add and costs the GCS nothing. */
static void queue_location(object_directory *od, const plasma_object_event *ev, bool removed)
{
    if (od->adds_cap > 0) {
        size_t i = loc_slot(od, &ev->id);
        uint32_t k = od->adds[i];
        if (k != 0 && !od->pending[k - 1].cancelled) {
            if (removed) {
                od->pending[k - 1].cancelled = true;
                return; /* the slot stays: it still marks the probe chain */
            }
            /* Announced again (a new owner) before the add went out. */
            od->pending[k - 1].owner = ev->owner;
            od->pending[k - 1].size = ev->size;
            return;
        }
    }
    if (od->count == od->cap) {
        size_t cap = od->cap ? od->cap * 2 : 256;
        struct loc_rec *n = realloc(od->pending, cap * sizeof(*n));
        if (n == NULL) {
            log_error("out of memory queuing object location updates; dropping one");
            return;
        }
        od->pending = n;
        od->cap = cap;
    }
    size_t k = od->count++;
    od->pending[k] =
        (struct loc_rec){.id = ev->id, .owner = ev->owner, .size = ev->size, .removed = removed};
    if (!removed && !loc_index_add(od, k))
        log_warn("out of memory indexing object location updates");
    arm_flush(od);
}

static void on_object_sealed(void *arg, const plasma_object_event *ev)
{
    queue_location(arg, ev, false);
}

static void on_object_deleted(void *arg, const plasma_object_event *ev)
{
    queue_location(arg, ev, true);
}

static const plasma_hooks store_hooks = {on_object_sealed, on_object_deleted};

const plasma_hooks *odir_store_hooks(void)
{
    return &store_hooks;
}

/* Send the queued location changes in one message. */
static void send_locations(object_directory *od)
{
    size_t n = od->count, m = 0;
    Rpc__ObjectLocation *locs = malloc(n * sizeof(*locs));
    Rpc__ObjectLocation **ptrs = malloc(n * sizeof(*ptrs));
    if (locs && ptrs) {
        for (size_t i = 0; i < n; i++) {
            struct loc_rec *r = &od->pending[i];
            if (r->cancelled)
                continue;
            rpc__object_location__init(&locs[m]);
            locs[m].object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, r->id.b};
            locs[m].owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, r->owner.b};
            locs[m].node_id = (ProtobufCBinaryData){NODE_ID_SIZE, od->self.b};
            locs[m].size = r->size;
            locs[m].removed = r->removed;
            ptrs[m] = &locs[m];
            m++;
        }
        Rpc__ObjectLocationUpdate up = RPC__OBJECT_LOCATION_UPDATE__INIT;
        up.node_id = (ProtobufCBinaryData){NODE_ID_SIZE, od->self.b};
        up.n_updates = m;
        up.updates = ptrs;
        if (m > 0)
            gs_send(od->gs, MSG_OBJECT_LOCATION_UPDATE, &up.base);
        od->count = 0;
        if (od->adds_cap > 0)
            memset(od->adds, 0, od->adds_cap * sizeof(*od->adds));
    } else {
        log_error("out of memory sending %zu object location updates; retrying", n);
    }
    free(locs);
    free(ptrs);
}

/* ---------------------------------------------------------------- free everywhere */

static int free_rec_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct free_rec));
}

/* Whether lk asked to free this location's copy for the location's owner. */
static bool free_asked(const struct free_lookup *lk, const Rpc__ObjectLocation *l)
{
    struct free_rec key;
    if (l->object_id.len != OBJECT_ID_SIZE || l->owner_id.len != WORKER_ID_SIZE)
        return false;
    memcpy(key.id.b, l->object_id.data, OBJECT_ID_SIZE);
    memcpy(key.owner.b, l->owner_id.data, WORKER_ID_SIZE);
    return bsearch(&key, lk->recs, lk->n, sizeof(key), free_rec_cmp) != NULL;
}

/* Free the copies the other nodes hold of what their owners deleted (the
 * GCS directory knows where they are and whose they are). */
static void on_free_locations(void *arg, ProtobufCMessage *reply)
{
    struct free_lookup *lk = arg;
    Rpc__GetObjectLocationsReply *r = (Rpc__GetObjectLocationsReply *)reply;
    for (size_t i = 0; r != NULL && i < r->n_locations; i++) {
        Rpc__ObjectLocation *l = r->locations[i];
        if (l->removed || l->node_id.len != NODE_ID_SIZE || !free_asked(lk, l))
            continue;
        node_id_t node;
        memcpy(node.b, l->node_id.data, NODE_ID_SIZE);
        conn *c = peers_get(lk->od->peers, &node);
        if (c == NULL)
            continue;
        Rpc__DeleteObjects del = RPC__DELETE_OBJECTS__INIT;
        del.n_object_ids = 1;
        del.object_ids = &l->object_id;
        conn_send(c, MSG_DELETE_OBJECTS, &del.base);
    }
    free(lk);
}

void odir_free_everywhere(object_directory *od, const worker_id_t *owner,
                          const ProtobufCBinaryData *ids, size_t n)
{
    int nview = 0;
    gs_view(od->gs, &nview);
    if (nview <= 1)
        return;
    for (size_t i = 0; i < n; i++) {
        if (ids[i].len != OBJECT_ID_SIZE)
            continue;
        if (od->free_count == od->free_cap) {
            size_t cap = od->free_cap ? od->free_cap * 2 : 256;
            struct free_rec *f = realloc(od->frees, cap * sizeof(*f));
            if (f == NULL) {
                log_error("out of memory queuing frees of other nodes' copies; dropping one");
                continue;
            }
            od->frees = f;
            od->free_cap = cap;
        }
        struct free_rec *f = &od->frees[od->free_count++];
        memcpy(f->id.b, ids[i].data, OBJECT_ID_SIZE);
        f->owner = *owner;
    }
    arm_flush(od);
}

/* Ask the GCS where the k frees at recs have copies (on_free_locations frees
 * them there). */
static void lookup_frees(object_directory *od, const struct free_rec *recs, size_t k,
                         ProtobufCBinaryData *ids)
{
    struct free_lookup *lk = malloc(sizeof(*lk) + k * sizeof(lk->recs[0]));
    if (lk == NULL) {
        log_error("out of memory looking up %zu freed objects; dropping them", k);
        return;
    }
    lk->od = od;
    lk->n = k;
    memcpy(lk->recs, recs, k * sizeof(lk->recs[0]));
    qsort(lk->recs, k, sizeof(lk->recs[0]), free_rec_cmp);
    for (size_t i = 0; i < k; i++)
        ids[i] = (ProtobufCBinaryData){OBJECT_ID_SIZE, lk->recs[i].id.b};
    Rpc__GetObjectLocationsRequest req = RPC__GET_OBJECT_LOCATIONS_REQUEST__INIT;
    req.n_object_ids = k;
    req.object_ids = ids;
    if (gs_call(od->gs, MSG_GET_OBJECT_LOCATIONS_REQ, &req.base, on_free_locations, lk) != 0)
        free(lk);
}

/* Look up the queued deletes in requests of at most LOOKUP_IDS_MAX ids. */
static void send_frees(object_directory *od)
{
    ProtobufCBinaryData *ids = malloc(LOOKUP_IDS_MAX * sizeof(*ids));
    if (ids == NULL) {
        log_error("out of memory looking up %zu freed objects; retrying", od->free_count);
        return;
    }
    for (size_t done = 0; done < od->free_count;) {
        size_t left = od->free_count - done;
        size_t k = left < LOOKUP_IDS_MAX ? left : LOOKUP_IDS_MAX;
        lookup_frees(od, od->frees + done, k, ids);
        done += k;
    }
    od->free_count = 0;
    free(ids);
}

/* The batch is due: send the queued location changes in one message, and
 * look up the queued frees. Without a GCS they wait for the next
 * registration. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    object_directory *od = arg;
    if (od->count == 0 && od->free_count == 0)
        return;
    if (!gs_ready(od->gs)) {
        struct timeval tv = {0, 200000};
        evtimer_add(od->flush_ev, &tv);
        return;
    }
    /* Locations first: the lookup of the frees then sees this node's removals. */
    if (od->count > 0)
        send_locations(od);
    if (od->free_count > 0)
        send_frees(od);
}

/* ---------------------------------------------------------------- life cycle */

object_directory *odir_new(struct event_base *base, const rayc_config *cfg, const node_id_t *self,
                           gcs_session *gs, peers *ps)
{
    object_directory *od = calloc(1, sizeof(*od));
    if (od == NULL)
        return NULL;
    od->cfg = cfg;
    od->self = *self;
    od->gs = gs;
    od->peers = ps;
    od->flush_ev = evtimer_new(base, on_flush, od);
    if (od->flush_ev == NULL) {
        free(od);
        return NULL;
    }
    return od;
}

void odir_free(object_directory *od)
{
    if (od == NULL)
        return;
    event_free(od->flush_ev);
    free(od->pending);
    free(od->adds);
    free(od->frees);
    free(od);
}
