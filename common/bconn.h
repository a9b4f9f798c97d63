/*
 * bconn.h -- a blocking framed connection, for clients that are not event
 * loops: librayc, the CLI helper, tests. Speaks the same handshake as conn.h.
 *
 * Sends are buffered and go out in one write at bconn_flush() (bconn_call
 * flushes). A bconn is not thread-safe: callers serialise (librayc holds its
 * own lock). Frames of other types that arrive while bconn_call waits for its
 * reply are passed to the on_other callback, or dropped if none is set.
 */
#ifndef RAYC_BCONN_H
#define RAYC_BCONN_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

typedef struct bconn bconn;
typedef void (*bconn_other_fn)(void *arg, uint16_t type, ProtobufCMessage *msg);

/* Connect to host:port (TCP, proving token) or to a Unix socket path, and do
 * the handshake with hs (proof filled in). On success returns the conn and,
 * if reply is non-NULL, the HandshakeReply (free with msg_free). Descriptors
 * sent with the reply are stored in fds (up to maxfds, count in *nfds).
 * On failure returns NULL and sets *code (RAYC_ECONN, RAYC_EAUTH, ...) and err. */
bconn *bconn_open(const char *host, int port, const char *unix_path, const char *token,
                  const Rpc__Handshake *hs, int timeout_ms, Rpc__HandshakeReply **reply, int *fds,
                  int maxfds, int *nfds, int *code, char *err, size_t errlen);
void bconn_close(bconn *b);
int bconn_fd(const bconn *b);
void bconn_set_other(bconn *b, bconn_other_fn fn, void *arg);

/* Queue a frame. 0, or a negative RAYC_E* code. */
int bconn_send(bconn *b, uint16_t type, const ProtobufCMessage *m);
int bconn_flush(bconn *b);
/* Read one frame, waiting up to timeout_ms (-1 forever). Returns 0 with
 * *type and *msg set (free with msg_free), RAYC_ETIMEDOUT, RAYC_ECONN or RAYC_EPROTO. */
int bconn_recv(bconn *b, uint16_t *type, ProtobufCMessage **msg, int timeout_ms);
/* Send req and wait for a frame of reply_type. 0, or a negative code. */
int bconn_call(bconn *b, uint16_t req_type, const ProtobufCMessage *req, uint16_t reply_type,
               ProtobufCMessage **reply, int timeout_ms);

#endif
