/*
 * object_directory.h -- this node's side of the GCS object directory (Ray's
 * ObjectDirectory): the locations of the objects sealed here, and owners'
 * deletes of copies held on other nodes ("free everywhere").
 *
 * Location changes come from the store's hooks (odir_store_hooks) and go to
 * the GCS in one ObjectLocationUpdate per batch (object_directory_batch_ms);
 * an object freed before its add was sent cancels the add and costs the GCS
 * nothing. Owners' deletes wait for the same batch, so one GCS lookup per
 * batch finds the other nodes' copies, which are then deleted there with a
 * DeleteObjects to each holder whose entry names the deleting client as the
 * owner. An entry's owner is the store's: the creator, a task's submitter
 * once the task is done (the entry is sent again), a pulled copy's owner as
 * its source knew it. Without a GCS both wait for the next registration.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_OBJECT_DIRECTORY_H
#define RAYC_OBJECT_DIRECTORY_H

#include <event2/event.h>

#include "config.h"
#include "gcs_session.h"
#include "ids.h"
#include "peers.h"
#include "plasma_store.h"

typedef struct object_directory object_directory;

/* gs and peers are borrowed and must outlive the directory. NULL on
 * allocation failure. */
object_directory *odir_new(struct event_base *base, const rayc_config *cfg, const node_id_t *self,
                           gcs_session *gs, peers *ps);
/* Queued updates not sent yet are dropped. NULL-safe. */
void odir_free(object_directory *od);

/* The store hooks that feed the directory (arg: the directory). */
const plasma_hooks *odir_store_hooks(void);

/* The local client `owner` deleted these objects: delete the copies other
 * nodes hold too (nothing to do in a one-node cluster), but only the copies
 * the directory lists as owned by `owner`: a client cannot free someone
 * else's objects elsewhere. */
void odir_free_everywhere(object_directory *od, const worker_id_t *owner,
                          const ProtobufCBinaryData *ids, size_t n);

#endif
