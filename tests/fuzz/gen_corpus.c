/*
 * gen_corpus.c -- writes the seed corpus of fuzz_frame (tests/fuzz/corpus_frame/):
 * real frames of a few message types, alone and back to back,
 * plus a truncated stream, an oversized header, a bad magic and an unknown
 * type. Each file starts with fuzz_frame's 3 control bytes. Not built by
 * `make`; regenerate with:
 *
 *   cc -std=c11 -D_GNU_SOURCE -Icommon -Iinclude -Ibuild/gen tests/fuzz/gen_corpus.c \
 *      build/lib/libcommon.a $(pkg-config --libs libprotobuf-c) -o /tmp/gen_corpus
 *   /tmp/gen_corpus tests/fuzz/corpus_frame
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "frame.h"
#include "msg.h"

static size_t enc(uint16_t type, const ProtobufCMessage *m, uint8_t *out)
{
    return msg_encode(type, m, out);
}

static void emit(const char *dir, const char *name, uint8_t maxsel, const uint8_t *frames, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint8_t hdr[3] = {maxsel, 0x5a, 0x13};
    fwrite(hdr, 1, 3, f);
    fwrite(frames, 1, n, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *dir = argv[1];
    static uint8_t buf[1 << 16], all[1 << 17];
    size_t off = 0, n;

    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_DRIVER;
    hs.pid = 1234;
    hs.name = "fuzz-seed";
    n = enc(MSG_HANDSHAKE, &hs.base, buf);
    emit(dir, "handshake", 4, buf, n);
    memcpy(all + off, buf, n);
    off += n;

    Rpc__KvGetRequest kv = RPC__KV_GET_REQUEST__INIT;
    kv.req_id = 7;
    kv.ns = "ns";
    n = enc(MSG_KV_GET_REQ, &kv.base, buf);
    emit(dir, "kv_get", 3, buf, n);
    memcpy(all + off, buf, n);
    off += n;

    Rpc__ListNodesRequest ln = RPC__LIST_NODES_REQUEST__INIT;
    ln.req_id = 9;
    n = enc(MSG_LIST_NODES_REQ, &ln.base, buf);
    emit(dir, "list_nodes", 2, buf, n);
    memcpy(all + off, buf, n);
    off += n;

    Rpc__StoreStatsRequest ss = RPC__STORE_STATS_REQUEST__INIT;
    ss.req_id = 11;
    n = enc(MSG_STORE_STATS_REQ, &ss.base, buf);
    emit(dir, "store_stats", 1, buf, n);
    memcpy(all + off, buf, n);
    off += n;

    emit(dir, "four_frames", 4, all, off);
    emit(dir, "four_frames_max16", 1, all, off);
    emit(dir, "truncated", 4, all, off - 3);
    /* A header that promises more than the decoder allows. */
    frame_hdr_encode(buf, MSG_KV_GET_REQ, 1u << 30);
    emit(dir, "oversized_header", 4, buf, FRAME_HDR_SIZE);
    /* Wrong magic. */
    memcpy(buf, all, 24);
    buf[0] ^= 0xff;
    emit(dir, "bad_magic", 4, buf, 24);
    /* An unknown type with an empty payload. */
    frame_hdr_encode(buf, 0xfff0, 0);
    emit(dir, "unknown_type", 4, buf, FRAME_HDR_SIZE);
    return 0;
}
