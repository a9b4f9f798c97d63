/*
 * conn.h -- a framed, handshaken connection on a libevent loop. Used by every
 * daemon for every peer (GCS <- raylets/drivers/CLI, raylet <- local clients,
 * raylet -> GCS).
 *
 * Protocol (DESIGN.md section 4): the accepting side sends Hello (with a nonce
 * when the peer must prove the cluster token); the connecting side answers
 * with Handshake (proof = HMAC(token, nonce)); the accepting side answers
 * HandshakeReply. Before that exchange any other frame is a protocol error.
 *
 * Reading: bytes go straight from the socket into the frame decoder; each
 * frame is unpacked and handed to on_frame. Unknown types, payloads that do
 * not unpack, bad magic and oversized frames close the connection with a
 * logged protocol error; the daemon keeps running.
 * Writing: conn_send() packs into the output buffer; it is flushed when the
 * socket is writable, so everything sent in one loop turn goes out in one
 * write(2).
 * Lifetime: conn_close() (or a peer error) stops all I/O at once; on_close is
 * called exactly once, later from the loop, and the conn is freed after it
 * returns. Never use a conn after its on_close.
 * Thread-safety: a conn belongs to its loop's thread.
 */
#ifndef RAYC_CONN_H
#define RAYC_CONN_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

typedef struct conn conn;

enum conn_reason {
    CONN_EOF = 1,    /* peer closed */
    CONN_EIO = 2,    /* socket error */
    CONN_EPROTO = 3, /* peer broke the protocol */
    CONN_EAUTH = 4,  /* handshake refused (bad token, or the server said no) */
    CONN_LOCAL = 5,  /* conn_close() */
};

typedef struct {
    /* A frame arrived (including Handshake on the accepting side and
     * HandshakeReply on the connecting side). msg is freed after return. */
    void (*on_frame)(conn *c, uint16_t type, ProtobufCMessage *msg);
    /* Called exactly once when the connection is gone. */
    void (*on_close)(conn *c, int reason, const char *why);
} conn_handlers;

typedef struct {
    size_t max_frame;                /* 0: FRAME_DEFAULT_MAX */
    const char *token;               /* accepting: required proof when require_auth;
                                        connecting: the token to prove */
    bool require_auth;               /* accepting side: peer must prove the token */
    const Rpc__Handshake *handshake; /* connecting side: sent on Hello; proof is filled in */
} conn_opts;

/* Wrap an accepted socket and send Hello. Returns NULL on allocation failure
 * (fd is closed then). */
conn *conn_accept(struct event_base *base, int fd, const conn_handlers *h, void *data,
                  const conn_opts *opts);
/* Wrap a connected socket; the handshake runs when the server's Hello comes. */
conn *conn_connect(struct event_base *base, int fd, const conn_handlers *h, void *data,
                   const conn_opts *opts);

/* Queue a message. Returns 0, or -1 if the conn is closed. */
int conn_send(conn *c, uint16_t type, const ProtobufCMessage *m);
/* Send a message with descriptors attached, now (flushes queued output first). */
int conn_send_fds(conn *c, uint16_t type, const ProtobufCMessage *m, const int *fds, int nfds);
/* Close now; on_close(CONN_LOCAL) follows from the loop. Safe to call twice. */
void conn_close(conn *c);
/* Send what is queued, then close (for a final error reply). */
void conn_close_after_flush(conn *c);

/* Called from on_frame: the handler keeps the message it was given and will
 * free it with msg_free() itself (saves copying a large message). */
void conn_keep_msg(conn *c);

/* From on_frame: the raw payload of the frame being handled (OBJECT_CHUNK
 * handlers read their bytes from it). Valid until on_frame returns. */
void conn_frame_payload(const conn *c, const uint8_t **payload, size_t *len);
/* Queue a frame of `type` whose payload is hdr[hdrlen] then len bytes at data,
 * sent without copying data; cleanup(data, len, arg) runs once libevent no
 * longer needs them (also when the conn closes first). 0, or -1 if closed
 * (cleanup is then not called). */
int conn_send_raw_ref(conn *c, uint16_t type, const void *hdr, size_t hdrlen, const void *data,
                      size_t len, void (*cleanup)(const void *, size_t, void *), void *arg);

void *conn_data(const conn *c);
void conn_set_data(conn *c, void *data);
const char *conn_peer(const conn *c);
bool conn_is_ready(const conn *c); /* handshake completed */
bool conn_is_closed(const conn *c);
size_t conn_pending_output(const conn *c);

#endif
