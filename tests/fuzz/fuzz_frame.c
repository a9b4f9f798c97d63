/*
 * fuzz_frame.c -- libFuzzer target for the frame decoder and the message
 * table (common/frame.h, common/msg.h): nothing a peer sends may crash a
 * daemon, leak, or grow memory past the decoder's bound.
 *
 * Input layout: byte 0 picks the decoder's maximum frame size, bytes 1-2 seed
 * the generator that cuts the rest into random-sized pieces, and the rest is
 * the byte stream a peer would send. Each piece goes in through
 * frame_decoder_feed() or frame_decoder_space()/commit() (the generator picks),
 * then every whole frame is taken and msg_unpack()ed; a message that unpacks
 * is packed again and the copy unpacked.
 *
 * Build and run: make fuzz FUZZ_SECONDS=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msg.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static uint32_t next_rand(uint32_t *s)
{
    /* xorshift32: cheap, and deterministic for a given input. */
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Unpack a frame; if it unpacks, pack it again and check the copy unpacks. */
static void check_frame(const frame_t *f, size_t max_frame)
{
    REQUIRE(f->length <= max_frame);
    ProtobufCMessage *m = msg_unpack(f->type, f->payload, f->length);
    if (m == NULL)
        return;
    REQUIRE(msg_descriptor(f->type) != NULL);
    size_t size = msg_frame_size(m);
    uint8_t *buf = malloc(size);
    REQUIRE(buf != NULL);
    REQUIRE(msg_encode(f->type, m, buf) == size);
    uint16_t type;
    uint32_t len;
    REQUIRE(frame_hdr_decode(buf, SIZE_MAX, &type, &len) == 0);
    REQUIRE(type == f->type && FRAME_HDR_SIZE + (size_t)len == size);
    /* Not required to unpack: protobuf-c accepts field number 0 written as
     * an overlong varint tag, keeps it as an unknown field, and re-packs it
     * as a tag it then rejects. Re-packing must still not crash or leak. */
    msg_free(msg_unpack(type, buf + FRAME_HDR_SIZE, len));
    free(buf);
    msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {1, 16, 256, 4096, 65536};
    if (size < 3)
        return 0;
    size_t max_frame = maxes[data[0] % (sizeof(maxes) / sizeof(maxes[0]))];
    uint32_t seed = (uint32_t)data[1] | (uint32_t)data[2] << 8;
    data += 3;
    size -= 3;

    frame_decoder d;
    frame_decoder_init(&d, max_frame);
    /* The decoder keeps at most one partial frame plus the read slack it
     * offers (64 KiB); allow for doubling when it grows. */
    const size_t cap_bound = 2 * (FRAME_HDR_SIZE + max_frame + 65536 + size);

    size_t pos = 0;
    int rc = 0;
    while (pos < size && rc >= 0) {
        uint32_t r = next_rand(&seed);
        size_t chunk = 1 + r % 97;
        if (r & 0x80000000u)
            chunk = 1 + r % 4096; /* now and then a big piece */
        if (chunk > size - pos)
            chunk = size - pos;
        if (r & 0x40000000u) {
            REQUIRE(frame_decoder_feed(&d, data + pos, chunk) == 0);
        } else {
            size_t avail = 0;
            uint8_t *p = frame_decoder_space(&d, chunk, &avail);
            REQUIRE(p != NULL && avail >= chunk);
            memcpy(p, data + pos, chunk);
            frame_decoder_commit(&d, chunk);
        }
        pos += chunk;

        frame_t f;
        while ((rc = frame_decoder_next(&d, &f)) == 1)
            check_frame(&f, max_frame);
        REQUIRE(rc == 0 || rc == FRAME_EMAGIC || rc == FRAME_EVERSION || rc == FRAME_ETOOBIG);
        if (rc == 0)
            REQUIRE(frame_decoder_pending(&d) < FRAME_HDR_SIZE + max_frame);
        REQUIRE(d.cap <= cap_bound);
    }
    if (rc < 0) {
        /* Errors stick: the connection is to be closed. */
        frame_t f;
        REQUIRE(frame_decoder_next(&d, &f) == rc);
    }
    frame_decoder_free(&d);
    return 0;
}
