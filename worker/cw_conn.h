/*
 * cw_conn.h -- librayc's connection to a daemon (its raylet, or the GCS):
 * many threads may call at once.
 *
 * Requests carry req_id (field 1 of every request and reply message); a
 * caller sends its request and waits for the reply with that id. There is no
 * I/O thread: whichever waiting thread finds no reader becomes the reader
 * (leader/follower), reads frames, hands each reply to its waiter and
 * unsolicited frames to the async handler, then wakes the others. So a
 * blocking rayc_get on one thread never stops another thread from talking
 * to the raylet, and a reply costs one wake-up at most.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef RAYC_CW_CONN_H
#define RAYC_CW_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bconn.h"
#include "msg.h"

typedef struct cw_conn cw_conn;

/* Called by the reading thread, without the conn's lock held, for frames that
 * are not replies to a waiting call (and for late replies nobody waits for).
 * Return 1 to keep msg (the handler frees it with msg_free), 0 to have it
 * freed after return. */
typedef int (*cw_async_fn)(void *arg, uint16_t type, ProtobufCMessage *msg);

/* Take over a handshaken blocking connection (the bconn is consumed). */
cw_conn *cw_conn_new(bconn *b, cw_async_fn fn, void *arg);
/* Connect to a peer that serves direct calls at address ("host:port": an
 * actor's worker, a leased worker; "@name": its Unix socket on this node),
 * proving token and saying who we are (self: a worker id). NULL with err
 * set on failure. */
cw_conn *cw_conn_dial(const char *address, const char *token, const uint8_t *self, bool is_worker,
                      int timeout_ms, cw_async_fn fn, void *arg, char *err, size_t errlen);
/* Hand the frames of one read to the async handler with mu held, taken
 * once for them all rather than by the handler for each (mu must not be
 * held by a thread that reads c). Set before anyone reads. */
void cw_conn_set_async_lock(cw_conn *c, pthread_mutex_t *mu);
/* Close the socket, fail every waiter with RAYC_ECONN, free. */
void cw_conn_free(cw_conn *c);

uint64_t cw_conn_next_id(cw_conn *c);
/* Send a request whose req_id field is already set to id, and wait for the
 * reply of reply_type with the same id. timeout_ms -1: wait forever.
 * Returns 0 with *reply set (free with msg_free), RAYC_ETIMEDOUT or
 * RAYC_ECONN. A reply arriving after a timeout goes to the async handler. */
int cw_conn_call(cw_conn *c, uint64_t id, uint16_t type, const ProtobufCMessage *req,
                 uint16_t reply_type, ProtobufCMessage **reply, int64_t timeout_ms);
/* Queue an encoded frame to be written soon by the conn's flusher thread
 * (started on first use), batched with others queued meanwhile. Any direct
 * send, call or pump on the conn writes queued frames first, so order is
 * kept. 0, or RAYC_ECONN / RAYC_ENOMEM. */
int cw_conn_send_batched(cw_conn *c, const uint8_t *frame, size_t len);
/* Encode m as a frame of type and queue it like cw_conn_send_batched. */
int cw_conn_send_batched_msg(cw_conn *c, uint16_t type, const ProtobufCMessage *m);
/* Append frame to the batch without waking the flusher thread: the caller
 * writes it soon with cw_conn_flush or cw_conn_flush_nb (a reader answering
 * what it read, once per read). 0 or RAYC_ECONN / RAYC_ENOMEM. */
int cw_conn_queue(cw_conn *c, const uint8_t *frame, size_t len);
/* Write frame (after what is batched) without blocking: what the socket
 * does not take now goes to the flusher thread. For readers and for
 * writers holding locks a reader needs: they must never wait for the peer
 * (it may be waiting for us to read). 0, RAYC_ECONN or RAYC_ENOMEM. */
int cw_conn_send_nb(cw_conn *c, const uint8_t *frame, size_t len);
/* The same for what is batched (cw_conn_queue). */
int cw_conn_flush_nb(cw_conn *c);

/* Write queued frames now. 0 or RAYC_ECONN. */
int cw_conn_flush(cw_conn *c);
/* Send a message that has no reply. 0 or RAYC_ECONN. */
int cw_conn_send(cw_conn *c, uint16_t type, const ProtobufCMessage *m);
/* Read and dispatch incoming frames for up to timeout_ms (-1: until at least
 * one frame arrives), or, if another thread is reading, wait until it has
 * read something. For threads that wait for asynchronous frames (task
 * completions, pushed tasks). Returns 0, or RAYC_ECONN once the peer is gone. */
int cw_conn_pump(cw_conn *c, int64_t timeout_ms);
/* Direct reads, for a connection with a background reader thread (an
 * actor's): a thread waiting for a reply reads the socket itself instead
 * of being woken by the background reader, one thread hand-off less per
 * reply. cw_conn_enter marks the thread in (kicking the background reader
 * out of its poll if it is in); the conn is not freed until it leaves.
 * cw_conn_pump_direct reads and dispatches frames for up to timeout_ms
 * (as cw_conn_pump does; waits instead while another thread reads):
 * frames dispatched, or RAYC_ECONN once the peer is gone. cw_conn_leave
 * marks it out. The background reader loops on cw_conn_pump_background,
 * which reads only while no thread is entered, and from 2 ms after the last
 * one left (so calls made one after another keep the socket with their
 * caller); 0, or RAYC_ECONN once the peer is gone. */
void cw_conn_enter(cw_conn *c);
int cw_conn_pump_direct(cw_conn *c, int64_t timeout_ms);
void cw_conn_leave(cw_conn *c);
int cw_conn_pump_background(cw_conn *c);
/* Break the connection (the peer sees it closed); its reader returns
 * RAYC_ECONN. The conn is still to be freed. */
void cw_conn_shutdown(cw_conn *c);
/* Something a pumping thread waits for happened elsewhere (an actor's reply
 * on another connection): wake the threads in cw_conn_pump now. */
void cw_conn_wake(cw_conn *c);
/* 1 once the peer has gone. */
int cw_conn_dead(cw_conn *c);
/* Look (without reading) whether the peer has closed its end, which only a
 * read would notice otherwise: a write into a connection the peer closed
 * a moment ago succeeds. 1 (and the conn is dead from now on) or 0. */
int cw_conn_peer_closed(cw_conn *c);

#endif
