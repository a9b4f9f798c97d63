/*
 * gcs_pubsub.h -- GCS publish/subscribe: subscribers (connections) hold a
 * bit set of channels (rpc Channel values: NODE, JOB, OBJECT, ACTOR); a published
 * PubMessage goes to every subscriber of its channel through a send
 * function the owner supplies. No sockets here: the server's send function
 * queues the frame on the subscriber's connection.
 *
 * Ownership: subscribers are opaque pointers the caller owns; it must
 * unsubscribe one before freeing it. Messages are borrowed for the call.
 * Thread-safety: none; it belongs to the GCS loop thread.
 */
#ifndef RAYC_GCS_PUBSUB_H
#define RAYC_GCS_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rayc.pb-c.h"

/* Every channel a subscriber may ask for. */
#define GCS_PUBSUB_ALL                                                                             \
    (RPC__CHANNEL__CHANNEL_NODE | RPC__CHANNEL__CHANNEL_JOB | RPC__CHANNEL__CHANNEL_OBJECT |       \
     RPC__CHANNEL__CHANNEL_ACTOR)

typedef struct gcs_pubsub gcs_pubsub;
/* Deliver m to sub. */
typedef void (*gcs_pubsub_send_fn)(void *sub, const Rpc__PubMessage *m);

/* NULL on allocation failure. */
gcs_pubsub *gcs_pubsub_new(gcs_pubsub_send_fn send);
void gcs_pubsub_free(gcs_pubsub *ps); /* accepts NULL */

/* Set sub's channels (replacing earlier ones); 0 unsubscribes. Returns
 * RAYC_OK, RAYC_EINVAL (unknown channel bits; nothing changes) or
 * RAYC_ENOMEM. */
int gcs_pubsub_subscribe(gcs_pubsub *ps, void *sub, uint32_t channels);
void gcs_pubsub_unsubscribe(gcs_pubsub *ps, void *sub);
uint32_t gcs_pubsub_channels(const gcs_pubsub *ps, const void *sub);
size_t gcs_pubsub_count(const gcs_pubsub *ps);

/* Send m to every subscriber of m->channel. Returns how many got it. */
size_t gcs_pubsub_publish(gcs_pubsub *ps, const Rpc__PubMessage *m);
/* Conveniences that build the PubMessage. */
size_t gcs_pubsub_publish_node(gcs_pubsub *ps, const Rpc__NodeInfo *node);
size_t gcs_pubsub_publish_job(gcs_pubsub *ps, const Rpc__JobInfo *job);
size_t gcs_pubsub_publish_actor(gcs_pubsub *ps, const Rpc__ActorInfo *actor);
size_t gcs_pubsub_publish_objects(gcs_pubsub *ps, Rpc__ObjectLocation **locs, size_t n);

#endif
