/*
 * conn.c -- framed connections on libevent; see conn.h.
 * Runs in the owning daemon's single event-loop thread.
 */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "frame.h"
#include "log.h"
#include "net.h"
#include "rayc.h"

#define READS_PER_EVENT 8    /* fairness: other connections get a turn */
#define SINK_PROBE      4096 /* with a chunk sink: first read of a frame, to see where it goes */

enum { ST_AWAIT_HELLO, ST_AWAIT_HANDSHAKE, ST_AWAIT_REPLY, ST_READY, ST_CLOSED };

struct conn {
    struct event_base *base;
    int fd;
    int state;
    bool accepting;
    bool flush_then_close;
    bool write_pending;
    const conn_handlers *h;
    void *data;
    frame_decoder dec;
    struct evbuffer *out;
    struct event *rev, *wev, *closer;
    int close_reason;
    char close_why[160];
    int flush_reason; /* what on_close will say once a flush-then-close is done */
    char flush_why[160];
    char peer[64];
    /* handshake */
    bool require_auth;
    char *token;
    uint8_t nonce[AUTH_NONCE_LEN];
    Rpc__Handshake *hs_tmpl;
    bool stolen;                /* on_frame kept the current message (conn_keep_msg) */
    struct evbuffer *early;     /* connecting side: frames sent before the handshake ended */
    const uint8_t *cur_payload; /* the frame being dispatched (conn_frame_payload) */
    size_t cur_len;
    size_t max_frame;  /* after the handshake */
    size_t max_output; /* 0: no cap */
    conn_gate *gate;   /* counted there until ready or closed */
    struct event *deadline;
    /* conn_send_fds: our duplicates of descriptors that go with the frame
     * at byte fds_at of out (what is queued before it goes first), fds_len
     * bytes long */
    int fds[NET_MAX_FDS];
    int nfds;
    size_t fds_at, fds_len;
    /* conn_set_chunk_sink, and the chunk being read straight to bulk_dst
     * (NULL once cancelled: its bytes are dropped) */
    const conn_chunk_sink *sink;
    void *sink_arg;
    Rpc__ChunkHeader *bulk_hdr; /* non-NULL while a chunk is being received */
    uint8_t *bulk_dst;
    size_t bulk_len, bulk_done;
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_closer(evutil_socket_t fd, short what, void *arg);
static void on_deadline(evutil_socket_t fd, short what, void *arg);

static void fail(conn *c, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static conn *conn_new(struct event_base *base, int fd, const conn_handlers *h, void *data,
                      const conn_opts *opts, bool accepting)
{
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->base = base;
    c->fd = fd;
    c->h = h;
    c->data = data;
    c->accepting = accepting;
    net_set_nonblock(fd, true);
    net_peer_name(fd, c->peer, sizeof(c->peer));
    c->max_frame = opts && opts->max_frame ? opts->max_frame : FRAME_DEFAULT_MAX;
    c->max_output = opts ? opts->max_output : 0;
    frame_decoder_init(&c->dec, CONN_PREAUTH_MAX_FRAME < c->max_frame ? CONN_PREAUTH_MAX_FRAME
                                                                      : c->max_frame);
    c->out = evbuffer_new();
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->closer = event_new(base, -1, 0, on_closer, c);
    if (!c->out || !c->rev || !c->wev || !c->closer)
        goto fail;
    if (opts && opts->token && (c->token = strdup(opts->token)) == NULL)
        goto fail;
    c->require_auth = opts && opts->require_auth;
    event_add(c->rev, NULL);
    return c;
fail:
    if (c) {
        if (c->out)
            evbuffer_free(c->out);
        if (c->rev)
            event_free(c->rev);
        if (c->wev)
            event_free(c->wev);
        if (c->closer)
            event_free(c->closer);
        if (c->deadline)
            event_free(c->deadline);
        free(c->token);
        free(c);
    }
    close(fd);
    return NULL;
}

conn *conn_accept(struct event_base *base, int fd, const conn_handlers *h, void *data,
                  const conn_opts *opts)
{
    conn_gate *gate = opts ? opts->gate : NULL;
    if (gate && gate->unauthed >= gate->max_unauthed) {
        gate->refused++;
        close(fd);
        errno = EBUSY;
        return NULL;
    }
    conn *c = conn_new(base, fd, h, data, opts, true);
    if (c == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    int ms =
        opts && opts->handshake_timeout_ms ? opts->handshake_timeout_ms : CONN_HANDSHAKE_TIMEOUT_MS;
    if (ms > 0 && (c->deadline = evtimer_new(base, on_deadline, c)) != NULL) {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(c->deadline, &tv);
    }
    if (gate) {
        c->gate = gate;
        gate->unauthed++;
    }
    Rpc__Hello hello = RPC__HELLO__INIT;
    hello.version = MSG_PROTOCOL_VERSION;
    if (c->require_auth) {
        auth_nonce(c->nonce);
        hello.nonce.data = c->nonce;
        hello.nonce.len = AUTH_NONCE_LEN;
    }
    c->state = ST_AWAIT_HANDSHAKE;
    conn_send(c, MSG_HELLO, &hello.base);
    return c;
}

conn *conn_connect(struct event_base *base, int fd, const conn_handlers *h, void *data,
                   const conn_opts *opts)
{
    conn *c = conn_new(base, fd, h, data, opts, false);
    if (c == NULL)
        return NULL;
    c->state = ST_AWAIT_HELLO;
    if (opts && opts->handshake) {
        /* Keep a packed copy of the template: the caller's may not outlive us. */
        size_t n = protobuf_c_message_get_packed_size(&opts->handshake->base);
        uint8_t *tmp = malloc(n ? n : 1);
        if (tmp) {
            protobuf_c_message_pack(&opts->handshake->base, tmp);
            c->hs_tmpl = rpc__handshake__unpack(NULL, n, tmp);
            free(tmp);
        }
    }
    return c;
}

void conn_frame_payload(const conn *c, const uint8_t **payload, size_t *len)
{
    *payload = c->cur_payload;
    *len = c->cur_payload ? c->cur_len : 0;
}

static void head_free(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    free(arg);
}

/* Queue a frame whose payload is header bytes followed by `len` bytes at
 * `data` that stay valid until cleanup(data, len, arg) is called: libevent
 * writes them straight from there (no copy). The small head (frame header
 * and hdr) is queued by reference too: evbuffer_add() right after a
 * reference chain would allocate a new chain as large as that one
 * (megabytes, an mmap and munmap per object chunk) for these few bytes. */
int conn_send_raw_ref(conn *c, uint16_t type, const void *hdr, size_t hdrlen, const void *data,
                      size_t len, void (*cleanup)(const void *, size_t, void *), void *arg)
{
    if (c->state == ST_CLOSED || c->flush_then_close || hdrlen + len > UINT32_MAX)
        return -1;
    uint8_t *head = malloc(FRAME_HDR_SIZE + hdrlen);
    if (head != NULL) {
        frame_hdr_encode(head, type, (uint32_t)(hdrlen + len));
        memcpy(head + FRAME_HDR_SIZE, hdr, hdrlen);
        if (evbuffer_add_reference(c->out, head, FRAME_HDR_SIZE + hdrlen, head_free, head) != 0) {
            free(head);
            head = NULL;
        }
    }
    /* (once queued, head is the buffer's: freed with it) */
    if (head == NULL || (len > 0 && evbuffer_add_reference(c->out, data, len, cleanup, arg) != 0)) {
        fail(c, CONN_EIO, "out of memory queuing %zu bytes", len);
        return -1;
    }
    if (len == 0 && cleanup)
        cleanup(data, len, arg);
    if (!c->write_pending) {
        c->write_pending = true;
        event_add(c->wev, NULL);
    }
    return 0;
}

void conn_keep_msg(conn *c)
{
    c->stolen = true;
}

void *conn_data(const conn *c)
{
    return c->data;
}

void conn_set_data(conn *c, void *data)
{
    c->data = data;
}

const char *conn_peer(const conn *c)
{
    return c->peer;
}

bool conn_is_ready(const conn *c)
{
    return c->state == ST_READY;
}

bool conn_is_closed(const conn *c)
{
    return c->state == ST_CLOSED;
}

size_t conn_pending_output(const conn *c)
{
    return evbuffer_get_length(c->out);
}

/* The handshake is over (done or failed): leave the gate, stop the deadline
 * and accept frames of the full size. */
static void handshake_over(conn *c)
{
    if (c->gate) {
        c->gate->unauthed--;
        c->gate = NULL;
    }
    if (c->deadline)
        evtimer_del(c->deadline);
    c->dec.max_frame = c->max_frame;
}

static void drop_fds(conn *c)
{
    for (int i = 0; i < c->nfds; i++)
        close(c->fds[i]);
    c->nfds = 0;
}

/* Stop all I/O now; deliver on_close from the loop. */
static void shut(conn *c, int reason, const char *why)
{
    if (c->state == ST_CLOSED)
        return;
    handshake_over(c);
    c->state = ST_CLOSED;
    c->close_reason = reason;
    snprintf(c->close_why, sizeof(c->close_why), "%s", why ? why : "");
    event_del(c->rev);
    event_del(c->wev);
    close(c->fd);
    c->fd = -1;
    drop_fds(c);
    event_active(c->closer, 0, 0);
}

static void fail(conn *c, int reason, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (reason == CONN_EPROTO || reason == CONN_EAUTH)
        log_warn("closing %s: %s", c->peer, why);
    else
        log_debug("closing %s: %s", c->peer, why);
    shut(c, reason, why);
}

void conn_close(conn *c)
{
    shut(c, CONN_LOCAL, "closed locally");
}

/* Stop reading, send what is queued, then shut with reason/why: a refused
 * handshake reports CONN_EAUTH or CONN_EPROTO, not CONN_LOCAL. */
static void close_after_flush(conn *c, int reason, const char *why)
{
    if (c->state == ST_CLOSED || c->flush_then_close)
        return;
    if (evbuffer_get_length(c->out) == 0) {
        shut(c, reason, why);
        return;
    }
    c->flush_then_close = true;
    c->flush_reason = reason;
    snprintf(c->flush_why, sizeof(c->flush_why), "%s", why);
    event_del(c->rev);
}

void conn_close_after_flush(conn *c)
{
    close_after_flush(c, CONN_LOCAL, "closed locally");
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    if (c->state != ST_READY)
        fail(c, CONN_EPROTO, "no handshake before the deadline");
}

static void on_closer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    if (c->h && c->h->on_close)
        c->h->on_close(c, c->close_reason, c->close_why);
    frame_decoder_free(&c->dec);
    if (c->bulk_hdr)
        rpc__chunk_header__free_unpacked(c->bulk_hdr, NULL);
    evbuffer_free(c->out);
    if (c->early)
        evbuffer_free(c->early);
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->closer);
    if (c->deadline)
        event_free(c->deadline);
    if (c->hs_tmpl)
        rpc__handshake__free_unpacked(c->hs_tmpl, NULL);
    free(c->token);
    free(c);
}

int conn_send(conn *c, uint16_t type, const ProtobufCMessage *m)
{
    if (c->state == ST_CLOSED || c->flush_then_close)
        return -1;
    size_t size = msg_frame_size(m);
    struct evbuffer *dst = c->out;
    bool early = !c->accepting && c->state != ST_READY && type != MSG_HANDSHAKE;
    if (early && c->early == NULL && (c->early = evbuffer_new()) == NULL) {
        fail(c, CONN_EIO, "out of memory");
        return -1;
    }
    if (early)
        dst = c->early; /* held until the handshake is done */
    if (c->max_output && evbuffer_get_length(dst) + size > c->max_output) {
        fail(c, CONN_EPROTO, "peer does not read: over %zu bytes of output queued", c->max_output);
        return -1;
    }
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(dst, (ev_ssize_t)size, &v, 1) < 1) {
        fail(c, CONN_EIO, "out of memory queuing %zu bytes", size);
        return -1;
    }
    v.iov_len = msg_encode(type, m, v.iov_base);
    evbuffer_commit_space(dst, &v, 1);
    if (early)
        return 0;
    if (!c->write_pending) {
        c->write_pending = true;
        event_add(c->wev, NULL);
    }
    return 0;
}

int conn_send_fds(conn *c, uint16_t type, const ProtobufCMessage *m, const int *fds, int nfds)
{
    if (c->state == ST_CLOSED || c->flush_then_close)
        return -1;
    if (nfds < 0 || nfds > NET_MAX_FDS || c->nfds > 0 || (!c->accepting && c->state != ST_READY)) {
        fail(c, CONN_EIO, "cannot queue %d descriptors now", nfds);
        return -1;
    }
    /* Duplicates: the caller may close its descriptors once we return. */
    for (int i = 0; i < nfds; i++) {
        c->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (c->fds[i] < 0) {
            c->nfds = i;
            fail(c, CONN_EIO, "dup: %s", strerror(errno));
            return -1;
        }
    }
    c->nfds = nfds;
    c->fds_at = evbuffer_get_length(c->out);
    c->fds_len = msg_frame_size(m);
    return conn_send(c, type, m);
}

/* The descriptors' frame is next: send it, and only it, with them on its
 * first byte. Only it: the receiver's recvmsg that takes the descriptors
 * then ends with the frame, and a client that hands its socket to another
 * reader after this reply (librayc's bconn_open, then cw_conn) loses no
 * bytes that followed. Bytes sent, or -1. */
static ssize_t write_with_fds(conn *c, int fd)
{
    size_t len = evbuffer_get_length(c->out);
    size_t k = len < c->fds_len ? len : c->fds_len;
    const uint8_t *p = evbuffer_pullup(c->out, (ev_ssize_t)k);
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n = net_send_fds(fd, p, k, c->fds, c->nfds);
    if (n > 0) {
        evbuffer_drain(c->out, (size_t)n);
        drop_fds(c);
    }
    return n;
}

/* One write of queued output; a frame with descriptors waits for what is
 * queued before it. Bytes written, or -1 (errno). */
static ssize_t write_some(conn *c, int fd)
{
    if (c->nfds > 0 && c->fds_at == 0)
        return write_with_fds(c, fd);
    ev_ssize_t upto = c->nfds > 0 ? (ev_ssize_t)c->fds_at : -1;
    int n = evbuffer_write_atmost(c->out, fd, upto);
    if (n > 0 && c->nfds > 0)
        c->fds_at -= (size_t)n;
    return n;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn *c = arg;
    while (evbuffer_get_length(c->out) > 0) {
        ssize_t n = write_some(c, fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fail(c, errno == EPIPE || errno == ECONNRESET ? CONN_EOF : CONN_EIO, "write failed: %s",
                 strerror(errno));
            return;
        }
        if (n == 0)
            return;
    }
    event_del(c->wev);
    c->write_pending = false;
    if (c->flush_then_close)
        shut(c, c->flush_reason, c->flush_why);
}

/* Handshake, accepting side: check the proof, then hand the frame up. */
static bool handle_handshake(conn *c, ProtobufCMessage *m)
{
    Rpc__Handshake *hs = (Rpc__Handshake *)m;
    if (hs->version != MSG_PROTOCOL_VERSION) {
        Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
        Rpc__Status st = RPC__STATUS__INIT;
        msg_status_set(&st, RAYC_EPROTO, "unsupported protocol version");
        r.status = &st;
        conn_send(c, MSG_HANDSHAKE_REPLY, &r.base);
        log_warn("refused %s: protocol version %u", c->peer, hs->version);
        close_after_flush(c, CONN_EPROTO, "unsupported protocol version");
        return false;
    }
    if (c->require_auth && !auth_verify(c->token ? c->token : "", c->nonce, AUTH_NONCE_LEN,
                                        hs->proof.data, hs->proof.len)) {
        Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
        Rpc__Status st = RPC__STATUS__INIT;
        msg_status_set(&st, RAYC_EAUTH, "bad cluster token");
        r.status = &st;
        conn_send(c, MSG_HANDSHAKE_REPLY, &r.base);
        log_warn("refused %s: bad cluster token", c->peer);
        close_after_flush(c, CONN_EAUTH, "bad cluster token");
        return false;
    }
    c->state = ST_READY;
    handshake_over(c);
    return true;
}

/* Handshake, connecting side: answer the server's Hello. */
static void handle_hello(conn *c, ProtobufCMessage *m)
{
    Rpc__Hello *hello = (Rpc__Hello *)m;
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    if (c->hs_tmpl)
        hs = *c->hs_tmpl;
    hs.version = MSG_PROTOCOL_VERSION;
    uint8_t proof[AUTH_PROOF_LEN];
    if (hello->nonce.len > 0 && c->token) {
        auth_proof(c->token, hello->nonce.data, hello->nonce.len, proof);
        hs.proof.data = proof;
        hs.proof.len = AUTH_PROOF_LEN;
    }
    c->state = ST_AWAIT_REPLY;
    conn_send(c, MSG_HANDSHAKE, &hs.base);
}

/* One decoded frame: enforce the handshake order, then dispatch. */
static void dispatch(conn *c, uint16_t type, ProtobufCMessage *m)
{
    switch (c->state) {
    case ST_AWAIT_HELLO:
        if (type != MSG_HELLO) {
            fail(c, CONN_EPROTO, "expected HELLO, got %s", msg_name(type));
            return;
        }
        handle_hello(c, m);
        return;
    case ST_AWAIT_HANDSHAKE:
        if (type != MSG_HANDSHAKE) {
            fail(c, CONN_EPROTO, "expected HANDSHAKE first, got %s", msg_name(type));
            return;
        }
        if (!handle_handshake(c, m))
            return;
        break;
    case ST_AWAIT_REPLY: {
        if (type != MSG_HANDSHAKE_REPLY) {
            fail(c, CONN_EPROTO, "expected HANDSHAKE_REPLY, got %s", msg_name(type));
            return;
        }
        Rpc__HandshakeReply *r = (Rpc__HandshakeReply *)m;
        if (r->status && r->status->code != 0) {
            fail(c, CONN_EAUTH, "handshake refused: %s", r->status->message);
            return;
        }
        c->state = ST_READY;
        handshake_over(c);
        if (c->early && evbuffer_get_length(c->early) > 0) {
            evbuffer_add_buffer(c->out, c->early);
            if (!c->write_pending) {
                c->write_pending = true;
                event_add(c->wev, NULL);
            }
        }
        break;
    }
    case ST_READY:
        if (type == MSG_HELLO || type == MSG_HANDSHAKE || type == MSG_HANDSHAKE_REPLY) {
            fail(c, CONN_EPROTO, "unexpected %s after handshake", msg_name(type));
            return;
        }
        break;
    default:
        return;
    }
    if (c->h && c->h->on_frame)
        c->h->on_frame(c, type, m);
}

/* The one frame type the handshake state allows next (0: any but the
 * handshake's own). Checked before a byte of the payload is unpacked. */
static uint16_t expected_type(const conn *c)
{
    switch (c->state) {
    case ST_AWAIT_HELLO:
        return MSG_HELLO;
    case ST_AWAIT_HANDSHAKE:
        return MSG_HANDSHAKE;
    case ST_AWAIT_REPLY:
        return MSG_HANDSHAKE_REPLY;
    default:
        return 0;
    }
}

/* A chunk frame whose header part is in but not its bytes: ask the sink
 * where they go. true: the frame is being received there (what is buffered
 * of it already copied, the decoder emptied). */
static bool start_bulk(conn *c)
{
    const uint8_t *b;
    size_t have = frame_decoder_peek(&c->dec, &b);
    uint16_t type;
    uint32_t length;
    if (have < FRAME_HDR_SIZE + 4 || frame_hdr_decode(b, c->dec.max_frame, &type, &length) != 0 ||
        type != MSG_OBJECT_CHUNK || have >= FRAME_HDR_SIZE + (size_t)length)
        return false; /* not a chunk, or whole already: the usual path (and its checks) */
    const uint8_t *p = b + FRAME_HDR_SIZE;
    uint32_t hlen = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (hlen > length - 4 || have < FRAME_HDR_SIZE + 4 + (size_t)hlen)
        return false;
    Rpc__ChunkHeader *h = rpc__chunk_header__unpack(NULL, hlen, p + 4);
    if (h == NULL)
        return false;
    size_t len = length - 4 - hlen;
    uint8_t *dst = len > 0 ? c->sink->where(c->sink_arg, c, h, len) : NULL;
    if (dst == NULL || c->state == ST_CLOSED) {
        rpc__chunk_header__free_unpacked(h, NULL);
        return false;
    }
    size_t buffered = have - FRAME_HDR_SIZE - 4 - hlen; /* < len: the frame is not whole */
    memcpy(dst, p + 4 + hlen, buffered);
    frame_decoder_consume(&c->dec, have);
    c->bulk_hdr = h;
    c->bulk_dst = dst;
    c->bulk_len = len;
    c->bulk_done = buffered;
    return true;
}

/* Every byte of the chunk being received is in. */
static void end_bulk(conn *c)
{
    Rpc__ChunkHeader *h = c->bulk_hdr;
    bool landed = c->bulk_dst != NULL;
    c->bulk_hdr = NULL;
    c->bulk_dst = NULL;
    if (landed && c->sink)
        c->sink->landed(c->sink_arg, c, h, c->bulk_len);
    rpc__chunk_header__free_unpacked(h, NULL);
}

void conn_set_chunk_sink(conn *c, const conn_chunk_sink *sink, void *arg)
{
    c->sink = sink;
    c->sink_arg = arg;
}

void conn_chunk_cancel(conn *c)
{
    c->bulk_dst = NULL;
}

static void drain_frames(conn *c)
{
    frame_t f;
    int rc = 0; /* stays 0 if the loop stops before the first next() */
    while (c->state != ST_CLOSED && !c->flush_then_close && c->bulk_hdr == NULL) {
        if (c->sink && c->state == ST_READY && start_bulk(c))
            break;
        if ((rc = frame_decoder_next(&c->dec, &f)) != 1)
            break;
        if (msg_descriptor(f.type) == NULL) {
            fail(c, CONN_EPROTO, "unknown frame type %u", f.type);
            return;
        }
        uint16_t want = expected_type(c);
        if (want != 0 && f.type != want) {
            fail(c, CONN_EPROTO, "expected %s first, got %s", msg_name(want), msg_name(f.type));
            return;
        }
        ProtobufCMessage *m = msg_unpack(f.type, f.payload, f.length);
        if (m == NULL) {
            fail(c, CONN_EPROTO, "malformed %s payload (%u bytes)", msg_name(f.type), f.length);
            return;
        }
        c->stolen = false;
        c->cur_payload = f.payload;
        c->cur_len = f.length;
        dispatch(c, f.type, m);
        c->cur_payload = NULL;
        if (!c->stolen)
            msg_free(m);
    }
    if (c->state != ST_CLOSED && rc < 0)
        fail(c, CONN_EPROTO, "%s", frame_strerror(rc));
}

/* Read the next bytes of the chunk being received into its destination (or,
 * cancelled, into the decoder's free space, dropped). Returns the read(2)
 * result with *asked set; ends the chunk when it is whole. */
static ssize_t read_bulk(conn *c, int fd, size_t *asked)
{
    size_t want = c->bulk_len - c->bulk_done;
    uint8_t *dst = c->bulk_dst ? c->bulk_dst + c->bulk_done : NULL;
    if (dst == NULL) {
        size_t avail;
        dst = frame_decoder_space(&c->dec, 0, &avail); /* empty: scratch */
        if (dst == NULL) {
            errno = ENOMEM;
            return -1;
        }
        if (want > avail)
            want = avail;
    }
    *asked = want;
    ssize_t n = read(fd, dst, want);
    if (n > 0) {
        c->bulk_done += (size_t)n;
        if (c->bulk_done == c->bulk_len)
            end_bulk(c);
    }
    return n;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn *c = arg;
    /* A flush-then-close stops reading: what the peer sends after a refused
     * handshake is not ours to handle, and its EOF must not cut the reply. */
    for (int i = 0; i < READS_PER_EVENT && c->state != ST_CLOSED && !c->flush_then_close; i++) {
        size_t avail;
        ssize_t n;
        if (c->bulk_hdr) {
            n = read_bulk(c, fd, &avail);
            if (n > 0) {
                if (c->bulk_hdr == NULL) /* whole: go on with the frames after it */
                    drain_frames(c);
                if ((size_t)n < avail)
                    break;
                continue;
            }
        } else {
            uint8_t *p = frame_decoder_space(&c->dec, 0, &avail);
            if (p == NULL) {
                fail(c, CONN_EIO, "out of memory");
                return;
            }
            /* With a sink, a frame's start is read alone: a chunk's bytes
             * then go straight to the sink, not through this buffer. */
            size_t pending = frame_decoder_pending(&c->dec);
            if (c->sink && pending < SINK_PROBE && avail > SINK_PROBE - pending)
                avail = SINK_PROBE - pending;
            n = read(fd, p, avail);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            fail(c, errno == ECONNRESET ? CONN_EOF : CONN_EIO, "read failed: %s", strerror(errno));
            return;
        }
        if (n == 0) {
            drain_frames(c);
            if (c->state != ST_CLOSED) {
                if (frame_decoder_pending(&c->dec) > 0 || c->bulk_hdr)
                    fail(c, CONN_EPROTO, "peer closed mid-frame");
                else
                    fail(c, CONN_EOF, "peer closed");
            }
            return;
        }
        frame_decoder_commit(&c->dec, (size_t)n);
        drain_frames(c);
        if ((size_t)n < avail)
            break;
    }
}
