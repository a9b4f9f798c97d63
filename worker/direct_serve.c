/* direct_serve.c -- see direct_serve.h. */
#include "direct_serve.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "auth.h"
#include "errors.h"
#include "frame.h"
#include "net.h"
#include "rayc.h"

#define HANDSHAKE_MAX       4096
#define HANDSHAKE_TIMEOUT_S 10
#define OWNER_BATCH         64

int dserve_listen(const char *ip, int backlog, char *address, size_t len)
{
    int port = 0;
    int fd = net_tcp_listen(ip, 0, backlog, &port);
    if (fd < 0)
        return rayc__error(RAYC_EIO, "cannot listen on %s: %s", ip, strerror(errno)), -1;
    snprintf(address, len, "%s:%d", ip, port);
    return fd;
}

int dserve_listen_local(int backlog, char *address, size_t len)
{
    uint8_t r[AUTH_NONCE_LEN];
    auth_nonce(r); /* another name than any earlier process of this pid had */
    snprintf(address, len, "@rayc-%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(), r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
    int fd = net_unix_listen(address, 0, backlog);
    if (fd < 0)
        address[0] = '\0';
    return fd;
}

static int send_frame(int fd, uint16_t type, const ProtobufCMessage *m)
{
    uint8_t buf[512];
    size_t len = msg_frame_size(m);
    if (len > sizeof(buf))
        return -1;
    msg_encode(type, m, buf);
    return net_write_all(fd, buf, len);
}

int dserve_handshake(int fd, const char *token)
{
    struct timeval tv = {HANDSHAKE_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint8_t nonce[AUTH_NONCE_LEN];
    auth_nonce(nonce);
    Rpc__Hello hello = RPC__HELLO__INIT;
    hello.version = MSG_PROTOCOL_VERSION;
    hello.nonce.data = nonce;
    hello.nonce.len = AUTH_NONCE_LEN;
    if (send_frame(fd, MSG_HELLO, &hello.base) != 0)
        return -1;
    uint8_t hdr[FRAME_HDR_SIZE], payload[HANDSHAKE_MAX];
    uint16_t type;
    uint32_t len;
    if (net_read_all(fd, hdr, sizeof(hdr)) != 0 ||
        frame_hdr_decode(hdr, HANDSHAKE_MAX, &type, &len) != 0 || type != MSG_HANDSHAKE ||
        net_read_all(fd, payload, len) != 0)
        return -1;
    Rpc__Handshake *hs = (Rpc__Handshake *)msg_unpack(type, payload, len);
    if (hs == NULL)
        return -1;
    bool ok = auth_verify(token, nonce, AUTH_NONCE_LEN, hs->proof.data, hs->proof.len);
    msg_free(&hs->base);
    Rpc__HandshakeReply r = RPC__HANDSHAKE_REPLY__INIT;
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, ok ? RAYC_OK : RAYC_EAUTH, ok ? NULL : "bad cluster token");
    r.status = &st;
    send_frame(fd, MSG_HANDSHAKE_REPLY, &r.base);
    tv.tv_sec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return ok ? 0 : -1;
}

void dserve_give_returns(cw_conn *raylet, const Rpc__TaskSpec *spec, const Rpc__TaskDone *done)
{
    ProtobufCBinaryData ids[OWNER_BATCH];
    Rpc__ObjectOwner own = RPC__OBJECT_OWNER__INIT;
    own.owner_id = spec->owner_id;
    own.object_ids = ids;
    for (size_t i = 0; i < done->n_returns; i++) {
        if (!done->returns[i]->in_store)
            continue;
        ids[own.n_object_ids++] = done->returns[i]->object_id;
        if (own.n_object_ids == OWNER_BATCH) {
            cw_conn_send(raylet, MSG_OBJECT_OWNER, &own.base);
            own.n_object_ids = 0;
        }
    }
    if (own.n_object_ids > 0)
        cw_conn_send(raylet, MSG_OBJECT_OWNER, &own.base);
}
