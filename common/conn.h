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
 * frame is unpacked (within a heap budget, msg.h) and handed to on_frame.
 * Until the handshake is done only the one expected frame type is accepted,
 * at most CONN_PREAUTH_MAX_FRAME bytes, and an accepted peer has a deadline. Unknown types,
 * payloads that do not unpack, bad magic and oversized frames close the connection with a logged
 * protocol error; the daemon keeps running. Writing: conn_send() packs into the output buffer; it
 * is flushed when the socket is writable, so everything sent in one loop turn goes out in one
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

#define CONN_PREAUTH_MAX_FRAME    4096  /* largest frame before the handshake is done */
#define CONN_HANDSHAKE_TIMEOUT_MS 10000 /* default deadline of an accepted handshake */
#define CONN_DEFAULT_MAX_UNAUTHED 64    /* default cap of a gate (conn_gate_init) */

/* Admission of accepted connections that have not finished their handshake,
 * shared by all the listeners of one daemon (one per daemon, loop thread).
 * An accept over the cap is refused; each counted connection leaves the
 * count when its handshake completes or it closes. */
typedef struct {
    int unauthed;     /* accepted, handshake not done */
    int max_unauthed; /* refuse accepts beyond this many */
    uint64_t refused; /* accepts refused so far (for logs and tests) */
} conn_gate;

static inline void conn_gate_init(conn_gate *g, int max_unauthed)
{
    g->unauthed = 0;
    g->max_unauthed = max_unauthed > 0 ? max_unauthed : CONN_DEFAULT_MAX_UNAUTHED;
    g->refused = 0;
}

typedef struct {
    size_t max_frame;                /* 0: FRAME_DEFAULT_MAX (after the handshake; before it
                                        CONN_PREAUTH_MAX_FRAME) */
    size_t max_output;               /* 0: no cap; else a peer that lets more than this many
                                        bytes of replies queue up (it does not read) is closed */
    conn_gate *gate;                 /* accepting: count against this gate (NULL: no cap) */
    int handshake_timeout_ms;        /* accepting: 0 = CONN_HANDSHAKE_TIMEOUT_MS, <0 = none */
    const char *token;               /* accepting: required proof when require_auth;
                                        connecting: the token to prove */
    bool require_auth;               /* accepting side: peer must prove the token */
    const Rpc__Handshake *handshake; /* connecting side: sent on Hello; proof is filled in */
} conn_opts;

/* Wrap an accepted socket and send Hello. The peer must send its Handshake
 * (a frame of at most CONN_PREAUTH_MAX_FRAME bytes, its type checked before
 * anything is unpacked) within the handshake deadline. Returns NULL with
 * errno EBUSY when opts->gate is full, or ENOMEM; fd is closed then. */
conn *conn_accept(struct event_base *base, int fd, const conn_handlers *h, void *data,
                  const conn_opts *opts);
/* Wrap a connected socket; the handshake runs when the server's Hello comes. */
conn *conn_connect(struct event_base *base, int fd, const conn_handlers *h, void *data,
                   const conn_opts *opts);

/* Queue a message. Returns 0, or -1 if the conn is closed (also when this
 * message would take the output queue past max_output: the peer is not
 * reading, so the connection is closed). */
int conn_send(conn *c, uint16_t type, const ProtobufCMessage *m);
/* Queue a message with up to NET_MAX_FDS descriptors attached to its first
 * byte (SCM_RIGHTS on a Unix socket), after what is queued already; never
 * blocks. The descriptors are duplicated (the caller keeps its own) and the
 * duplicates closed once sent or when the conn closes. One such message at
 * a time; only once the conn is usable (accepting side, or ready). Returns 0,
 * or -1 (the conn is closed). */
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

/* Bulk bytes straight to where they belong (OBJECT_CHUNK frames: the object
 * manager receiving an object). With a sink set on a ready connection, once
 * a chunk frame's header part is in (its ChunkHeader unpacked, len object
 * bytes to follow) and the frame is not whole yet, where(arg, c, h, len) may
 * return memory for exactly those len bytes: they are then read from the
 * socket straight into it, with no copy through the connection's buffer,
 * and landed(arg, c, h, len) follows once all are there, in place of
 * on_frame. NULL from where: the frame goes to on_frame as usual. */
typedef struct {
    uint8_t *(*where)(void *arg, conn *c, const Rpc__ChunkHeader *h, size_t len);
    void (*landed)(void *arg, conn *c, const Rpc__ChunkHeader *h, size_t len);
} conn_chunk_sink;
/* Set (or with sink NULL, clear) the connection's sink; a chunk being
 * received keeps its destination. */
void conn_set_chunk_sink(conn *c, const conn_chunk_sink *sink, void *arg);
/* The memory given for the chunk being received is not the caller's any
 * more: the rest of its bytes are read and dropped, landed is not called. */
void conn_chunk_cancel(conn *c);

void *conn_data(const conn *c);
void conn_set_data(conn *c, void *data);
const char *conn_peer(const conn *c);
bool conn_is_ready(const conn *c); /* handshake completed */
bool conn_is_closed(const conn *c);
size_t conn_pending_output(const conn *c);

#endif
