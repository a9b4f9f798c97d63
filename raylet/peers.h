/*
 * peers.h -- TCP connections between raylets (token-checked), used for
 * spillback (ForwardTask), remote completions (TaskDone), owners' deletes
 * and the object manager. One outgoing connection per remote node, made on
 * first use from the cluster view's address; frames from outgoing and
 * accepted connections alike go to the frame hook, after the handshake.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_PEERS_H
#define RAYC_PEERS_H

#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "gcs_session.h"
#include "ids.h"

typedef struct peers peers;

typedef struct {
    /* A frame from the raylet of node `from` (zero before an accepted
     * connection's handshake). conn_keep_msg(c) keeps the message. */
    void (*frame)(void *arg, conn *c, const node_id_t *from, uint16_t type, ProtobufCMessage *msg);
    /* A connection closed (its transfers must move). */
    void (*closed)(void *arg, conn *c);
} peers_hooks;

/* gs (the view, for addresses) and token are borrowed. NULL on allocation
 * failure. */
peers *peers_new(struct event_base *base, const rayc_config *cfg, const node_id_t *self,
                 const char *token, gcs_session *gs, const peers_hooks *hooks, void *arg);
/* Close every connection (peers_close_all), run the loop, then free. NULL-safe. */
void peers_free(peers *ps);
void peers_close_all(peers *ps);

/* The connection to a live node, made on first use from the view's address.
 * NULL when the node is unknown, dead, or this node. */
conn *peers_get(peers *ps, const node_id_t *node);
/* An accepted raylet connection (after the TCP accept; ps owns fd now).
 * Until its handshake it counts against gate. */
void peers_accept(peers *ps, int fd, conn_gate *gate);
/* A node died: drop our connections to it. */
void peers_node_died(peers *ps, const node_id_t *node);

#endif
