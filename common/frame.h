/*
 * frame.h -- the frame codec of DESIGN.md section 4. Pure: no I/O.
 *
 * A frame is a 12-byte header followed by `length` payload bytes:
 *     u32 magic 'RAYC' | u16 version | u16 type | u32 length   (big-endian)
 * The payload is a packed protobuf message of that type (common/msg.h).
 *
 * frame_decoder is incremental: feed it bytes in any split (or read straight
 * into frame_decoder_space()), then take whole frames with
 * frame_decoder_next(). A header with a bad magic or version, or a length over
 * the decoder's maximum, is an error that sticks: the connection is to be
 * closed. Memory is bounded by max_frame + FRAME_HDR_SIZE plus read slack.
 * Thread-safety: a decoder belongs to one thread.
 */
#ifndef RAYC_FRAME_H
#define RAYC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC       0x52415943u /* "RAYC" */
#define FRAME_VERSION     1
#define FRAME_HDR_SIZE    12
#define FRAME_DEFAULT_MAX (64u << 20) /* largest payload accepted by default */

/* Decoder results (negative; 0 = need more bytes, 1 = a frame). */
enum {
    FRAME_EMAGIC = -1,   /* first four bytes are not "RAYC" */
    FRAME_EVERSION = -2, /* protocol version we do not speak */
    FRAME_ETOOBIG = -3,  /* length over the maximum */
    FRAME_ENOMEM = -4,   /* could not grow the buffer */
};

typedef struct {
    uint16_t type;
    uint32_t length;
    const uint8_t *payload; /* into the decoder's buffer: valid until the next
                               call on the decoder */
} frame_t;

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t start; /* first unconsumed byte */
    size_t end;   /* one past the last byte read */
    size_t max_frame;
    int err; /* sticky error, 0 if none */
} frame_decoder;

/* Write a header for a payload of `length` bytes of `type` into out. */
void frame_hdr_encode(uint8_t out[FRAME_HDR_SIZE], uint16_t type, uint32_t length);
/* Validate and parse a header. Returns 0 or a FRAME_E* code. */
int frame_hdr_decode(const uint8_t in[FRAME_HDR_SIZE], size_t max_frame, uint16_t *type,
                     uint32_t *length);
const char *frame_strerror(int err);

void frame_decoder_init(frame_decoder *d, size_t max_frame);
void frame_decoder_free(frame_decoder *d);

/* Room for at least `want` more bytes at the end of the buffer (it compacts
 * or grows as needed). Returns the write pointer and sets *avail, or NULL on
 * allocation failure. Follow with frame_decoder_commit(n). */
uint8_t *frame_decoder_space(frame_decoder *d, size_t want, size_t *avail);
void frame_decoder_commit(frame_decoder *d, size_t n);
/* Copy n bytes in. Returns 0 or FRAME_ENOMEM. */
int frame_decoder_feed(frame_decoder *d, const void *data, size_t n);

/* Take the next whole frame. Returns 1 with *f set, 0 when more bytes are
 * needed, or a negative FRAME_E* code (sticky). */
int frame_decoder_next(frame_decoder *d, frame_t *f);
/* Bytes buffered but not yet returned as frames. */
size_t frame_decoder_pending(const frame_decoder *d);
/* The buffered bytes not yet returned (a look at a frame before it is
 * whole); their count. Valid until the next call on the decoder. */
size_t frame_decoder_peek(const frame_decoder *d, const uint8_t **bytes);
/* Drop the first n buffered bytes (n <= pending): the caller took them. */
void frame_decoder_consume(frame_decoder *d, size_t n);

#endif
