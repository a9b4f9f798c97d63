/* bconn.c -- blocking framed client connection; see bconn.h. */
#include "bconn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "frame.h"
#include "net.h"
#include "rayc.h"
#include "util.h"

struct bconn {
    int fd;
    frame_decoder dec;
    uint8_t *out;
    size_t out_len, out_cap;
    bconn_other_fn other;
    void *other_arg;
    int *fds; /* where descriptors arriving during the handshake go */
    int maxfds, *nfds;
};

int bconn_fd(const bconn *b)
{
    return b->fd;
}

void bconn_set_other(bconn *b, bconn_other_fn fn, void *arg)
{
    b->other = fn;
    b->other_arg = arg;
}

void bconn_close(bconn *b)
{
    if (b == NULL)
        return;
    if (b->fd >= 0)
        close(b->fd);
    frame_decoder_free(&b->dec);
    free(b->out);
    free(b);
}

int bconn_send(bconn *b, uint16_t type, const ProtobufCMessage *m)
{
    size_t size = msg_frame_size(m);
    if (b->out_len + size > b->out_cap) {
        size_t cap = b->out_cap ? b->out_cap : 4096;
        while (cap < b->out_len + size)
            cap *= 2;
        uint8_t *nb = realloc(b->out, cap);
        if (nb == NULL)
            return RAYC_ENOMEM;
        b->out = nb;
        b->out_cap = cap;
    }
    b->out_len += msg_encode(type, m, b->out + b->out_len);
    return 0;
}

int bconn_flush(bconn *b)
{
    if (b->out_len == 0)
        return 0;
    int rc = net_write_all(b->fd, b->out, b->out_len);
    b->out_len = 0;
    return rc == 0 ? 0 : RAYC_ECONN;
}

int bconn_recv(bconn *b, uint16_t *type, ProtobufCMessage **msg, int timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? 0 : now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        frame_t f;
        int rc = frame_decoder_next(&b->dec, &f);
        if (rc < 0)
            return RAYC_EPROTO;
        if (rc == 1) {
            *msg = msg_unpack(f.type, f.payload, f.length);
            if (*msg == NULL)
                return RAYC_EPROTO;
            *type = f.type;
            return 0;
        }
        int wait = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            if (now >= deadline)
                return RAYC_ETIMEDOUT;
            wait = (int)(deadline - now);
        }
        struct pollfd p = {.fd = b->fd, .events = POLLIN};
        int pr = poll(&p, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return RAYC_ETIMEDOUT;
        size_t avail;
        uint8_t *space = frame_decoder_space(&b->dec, 0, &avail);
        if (space == NULL)
            return RAYC_ENOMEM;
        ssize_t n;
        if (b->nfds)
            n = net_recv_fds(b->fd, space, avail, b->fds, b->maxfds, b->nfds);
        else
            n = read(b->fd, space, avail);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return RAYC_ECONN;
        frame_decoder_commit(&b->dec, (size_t)n);
    }
}

int bconn_call(bconn *b, uint16_t req_type, const ProtobufCMessage *req, uint16_t reply_type,
               ProtobufCMessage **reply, int timeout_ms)
{
    int rc = bconn_send(b, req_type, req);
    if (rc == 0)
        rc = bconn_flush(b);
    if (rc != 0)
        return rc;
    uint64_t deadline = timeout_ms < 0 ? 0 : now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = now_ms();
            left = now >= deadline ? 0 : (int)(deadline - now);
        }
        uint16_t type;
        ProtobufCMessage *m;
        rc = bconn_recv(b, &type, &m, left);
        if (rc != 0)
            return rc;
        if (type == reply_type) {
            *reply = m;
            return 0;
        }
        if (b->other)
            b->other(b->other_arg, type, m);
        msg_free(m);
    }
}

bconn *bconn_open(const char *host, int port, const char *unix_path, const char *token,
                  const Rpc__Handshake *hs, int timeout_ms, Rpc__HandshakeReply **reply, int *fds,
                  int maxfds, int *nfds, int *code, char *err, size_t errlen)
{
    int dummy_nfds = 0;
    bconn *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        *code = RAYC_ENOMEM;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    frame_decoder_init(&b->dec, 0);
    b->fds = fds;
    b->maxfds = maxfds;
    b->nfds = nfds ? nfds : (fds ? &dummy_nfds : NULL);
    if (nfds)
        *nfds = 0;
    if (unix_path)
        b->fd = net_unix_connect(unix_path);
    else
        b->fd = net_tcp_connect(host, port, timeout_ms);
    if (b->fd < 0) {
        *code = RAYC_ECONN;
        if (unix_path)
            snprintf(err, errlen, "cannot connect to %s: %s", unix_path, strerror(errno));
        else
            snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(errno));
        goto fail;
    }
    uint16_t type;
    ProtobufCMessage *m = NULL;
    int rc = bconn_recv(b, &type, &m, timeout_ms);
    if (rc != 0 || type != MSG_HELLO) {
        *code = rc ? rc : RAYC_EPROTO;
        snprintf(err, errlen, "no hello from %s: %s", unix_path ? unix_path : host,
                 rc ? rayc_strerror(rc) : "unexpected frame");
        msg_free(m);
        goto fail;
    }
    Rpc__Hello *hello = (Rpc__Hello *)m;
    Rpc__Handshake h = RPC__HANDSHAKE__INIT;
    if (hs)
        h = *hs;
    h.version = MSG_PROTOCOL_VERSION;
    uint8_t proof[AUTH_PROOF_LEN];
    if (hello->nonce.len > 0) {
        if (token == NULL || *token == '\0') {
            msg_free(m);
            *code = RAYC_EAUTH;
            snprintf(err, errlen, "the cluster requires a token and none was given");
            goto fail;
        }
        auth_proof(token, hello->nonce.data, hello->nonce.len, proof);
        h.proof.data = proof;
        h.proof.len = AUTH_PROOF_LEN;
    }
    msg_free(m);
    ProtobufCMessage *r = NULL;
    rc = bconn_call(b, MSG_HANDSHAKE, &h.base, MSG_HANDSHAKE_REPLY, &r, timeout_ms);
    if (rc != 0) {
        *code = rc == RAYC_ECONN ? RAYC_EAUTH : rc;
        snprintf(err, errlen, "handshake failed: %s", rayc_strerror(rc));
        goto fail;
    }
    Rpc__HandshakeReply *hr = (Rpc__HandshakeReply *)r;
    if (hr->status && hr->status->code != 0) {
        *code = hr->status->code;
        snprintf(err, errlen, "refused: %s", hr->status->message);
        msg_free(r);
        goto fail;
    }
    if (reply)
        *reply = hr;
    else
        msg_free(r);
    b->fds = NULL;
    b->nfds = NULL;
    return b;
fail:
    if (nfds && fds)
        for (int i = 0; i < *nfds; i++)
            close(fds[i]);
    bconn_close(b);
    return NULL;
}
