/*
 * gcs_pubsub.c -- channel subscriptions and fan-out; see gcs_pubsub.h.
 *
 * Subscribers sit in a flat array: a cluster has tens to hundreds of
 * connections, and a publish visits them all anyway.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_pubsub.h"

#include <stdlib.h>

#include "rayc.h"

typedef struct {
    void *sub;
    uint32_t channels;
} subscriber;

struct gcs_pubsub {
    gcs_pubsub_send_fn send;
    subscriber *subs;
    size_t n, cap;
    bool publishing; /* guards against unsubscribe during a fan-out */
};

gcs_pubsub *gcs_pubsub_new(gcs_pubsub_send_fn send)
{
    gcs_pubsub *ps = calloc(1, sizeof(*ps));
    if (ps)
        ps->send = send;
    return ps;
}

void gcs_pubsub_free(gcs_pubsub *ps)
{
    if (ps == NULL)
        return;
    free(ps->subs);
    free(ps);
}

static subscriber *find(const gcs_pubsub *ps, const void *sub)
{
    for (size_t i = 0; i < ps->n; i++)
        if (ps->subs[i].sub == sub)
            return &ps->subs[i];
    return NULL;
}

void gcs_pubsub_unsubscribe(gcs_pubsub *ps, void *sub)
{
    subscriber *s = find(ps, sub);
    if (s == NULL)
        return;
    if (ps->publishing) {
        s->channels = 0; /* compacted after the fan-out */
        return;
    }
    *s = ps->subs[--ps->n];
}

int gcs_pubsub_subscribe(gcs_pubsub *ps, void *sub, uint32_t channels)
{
    if (channels & ~(uint32_t)GCS_PUBSUB_ALL)
        return RAYC_EINVAL;
    if (channels == 0) {
        gcs_pubsub_unsubscribe(ps, sub);
        return RAYC_OK;
    }
    subscriber *s = find(ps, sub);
    if (s) {
        s->channels = channels;
        return RAYC_OK;
    }
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        subscriber *ns = realloc(ps->subs, cap * sizeof(*ns));
        if (ns == NULL)
            return RAYC_ENOMEM;
        ps->subs = ns;
        ps->cap = cap;
    }
    ps->subs[ps->n].sub = sub;
    ps->subs[ps->n].channels = channels;
    ps->n++;
    return RAYC_OK;
}

uint32_t gcs_pubsub_channels(const gcs_pubsub *ps, const void *sub)
{
    const subscriber *s = find(ps, sub);
    return s ? s->channels : 0;
}

size_t gcs_pubsub_count(const gcs_pubsub *ps)
{
    size_t n = 0;
    for (size_t i = 0; i < ps->n; i++)
        n += ps->subs[i].channels != 0;
    return n;
}

size_t gcs_pubsub_publish(gcs_pubsub *ps, const Rpc__PubMessage *m)
{
    size_t sent = 0;
    uint32_t bit = (uint32_t)m->channel;
    if (bit == 0)
        return 0;
    ps->publishing = true;
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->subs[i].channels & bit) {
            ps->send(ps->subs[i].sub, m);
            sent++;
        }
    }
    ps->publishing = false;
    /* Drop entries unsubscribed by a send callback. */
    for (size_t i = 0; i < ps->n;) {
        if (ps->subs[i].channels == 0)
            ps->subs[i] = ps->subs[--ps->n];
        else
            i++;
    }
    return sent;
}

size_t gcs_pubsub_publish_node(gcs_pubsub *ps, const Rpc__NodeInfo *node)
{
    Rpc__PubMessage m = RPC__PUB_MESSAGE__INIT;
    m.channel = RPC__CHANNEL__CHANNEL_NODE;
    m.node = (Rpc__NodeInfo *)node;
    return gcs_pubsub_publish(ps, &m);
}

size_t gcs_pubsub_publish_job(gcs_pubsub *ps, const Rpc__JobInfo *job)
{
    Rpc__PubMessage m = RPC__PUB_MESSAGE__INIT;
    m.channel = RPC__CHANNEL__CHANNEL_JOB;
    m.job = (Rpc__JobInfo *)job;
    return gcs_pubsub_publish(ps, &m);
}

size_t gcs_pubsub_publish_actor(gcs_pubsub *ps, const Rpc__ActorInfo *actor)
{
    Rpc__PubMessage m = RPC__PUB_MESSAGE__INIT;
    m.channel = RPC__CHANNEL__CHANNEL_ACTOR;
    m.actor = (Rpc__ActorInfo *)actor;
    return gcs_pubsub_publish(ps, &m);
}

size_t gcs_pubsub_publish_objects(gcs_pubsub *ps, Rpc__ObjectLocation **locs, size_t n)
{
    if (n == 0)
        return 0;
    Rpc__PubMessage m = RPC__PUB_MESSAGE__INIT;
    m.channel = RPC__CHANNEL__CHANNEL_OBJECT;
    m.objects = locs;
    m.n_objects = n;
    return gcs_pubsub_publish(ps, &m);
}
