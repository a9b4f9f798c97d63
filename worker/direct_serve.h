/*
 * direct_serve.h -- what the two servers of direct calls share: an actor's
 * worker serving its callers (actor_executor.c) and a leased worker serving
 * its owner (lease_server.c). Both listen on TCP at the node's address,
 * check each caller's proof of the cluster token (the accepting side of
 * conn.h's handshake) and hand the store returns of what they ran to the
 * owner through the raylet (ObjectOwner), as the raylet does for tasks it
 * pushed.
 */
#ifndef RAYC_DIRECT_SERVE_H
#define RAYC_DIRECT_SERVE_H

#include <stddef.h>

#include "cw_conn.h"
#include "msg.h"

/* Listen on ip, any port; "ip:port" in address. The socket, or -1 with
 * rayc_last_error set. */
int dserve_listen(const char *ip, int backlog, char *address, size_t len);
/* Listen on a Unix socket of the abstract namespace, for callers on this
 * node ("@rayc-<pid>-<random>" in address). The socket, or -1. */
int dserve_listen_local(int backlog, char *address, size_t len);
/* The accepting side of the handshake on a new connection fd: a nonce out,
 * the caller's proof of token back, the verdict out. 0 if the caller proved
 * it; -1 otherwise (or on a broken or silent connection). */
int dserve_handshake(int fd, const char *token);
/* The store returns in done belong to spec's owner now: tell the raylet. */
void dserve_give_returns(cw_conn *raylet, const Rpc__TaskSpec *spec, const Rpc__TaskDone *done);

#endif
