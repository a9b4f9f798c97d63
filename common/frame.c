/* frame.c -- frame header codec and incremental decoder. See frame.h. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#define READ_CHUNK   65536             /* minimum read slack offered by frame_decoder_space */
#define SHRINK_ABOVE (16 * READ_CHUNK) /* buffers above this shrink between frames */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void frame_hdr_encode(uint8_t out[FRAME_HDR_SIZE], uint16_t type, uint32_t length)
{
    put_be32(out, FRAME_MAGIC);
    out[4] = FRAME_VERSION >> 8;
    out[5] = FRAME_VERSION & 0xff;
    out[6] = (uint8_t)(type >> 8);
    out[7] = (uint8_t)type;
    put_be32(out + 8, length);
}

int frame_hdr_decode(const uint8_t in[FRAME_HDR_SIZE], size_t max_frame, uint16_t *type,
                     uint32_t *length)
{
    if (get_be32(in) != FRAME_MAGIC)
        return FRAME_EMAGIC;
    if ((in[4] << 8 | in[5]) != FRAME_VERSION)
        return FRAME_EVERSION;
    *type = (uint16_t)(in[6] << 8 | in[7]);
    *length = get_be32(in + 8);
    if (*length > max_frame)
        return FRAME_ETOOBIG;
    return 0;
}

const char *frame_strerror(int err)
{
    switch (err) {
    case FRAME_EMAGIC:
        return "bad frame magic";
    case FRAME_EVERSION:
        return "unsupported protocol version";
    case FRAME_ETOOBIG:
        return "frame larger than the maximum";
    case FRAME_ENOMEM:
        return "out of memory for frame";
    }
    return "no error";
}

void frame_decoder_init(frame_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame ? max_frame : FRAME_DEFAULT_MAX;
}

void frame_decoder_free(frame_decoder *d)
{
    free(d->buf);
    memset(d, 0, sizeof(*d));
}

/* Make room for `want` bytes after end: slide live bytes to the front, then
 * grow (doubling) if that is not enough. */
static int reserve(frame_decoder *d, size_t want)
{
    if (d->cap - d->end >= want)
        return 0;
    if (d->start > 0) {
        size_t live = d->end - d->start;
        memmove(d->buf, d->buf + d->start, live);
        d->start = 0;
        d->end = live;
        if (d->cap - d->end >= want)
            return 0;
    }
    size_t cap = d->cap ? d->cap : READ_CHUNK;
    while (cap - d->end < want)
        cap *= 2;
    uint8_t *nb = realloc(d->buf, cap);
    if (nb == NULL)
        return FRAME_ENOMEM;
    d->buf = nb;
    d->cap = cap;
    return 0;
}

/* Give back what a big frame took. Called between frames, when fewer than a
 * header's worth of bytes are buffered: on a busy connection the tail of one
 * read usually holds the start of the next frame, so waiting for an empty
 * buffer would keep the big allocation for the life of the connection. */
static void shrink(frame_decoder *d)
{
    size_t live = d->end - d->start;
    if (live == 0) {
        free(d->buf);
        d->buf = NULL;
        d->cap = 0;
        d->start = d->end = 0;
        return;
    }
    uint8_t *nb = malloc(READ_CHUNK);
    if (nb == NULL)
        return; /* keep the big buffer; try again next time */
    memcpy(nb, d->buf + d->start, live);
    free(d->buf);
    d->buf = nb;
    d->cap = READ_CHUNK;
    d->start = 0;
    d->end = live;
}

uint8_t *frame_decoder_space(frame_decoder *d, size_t want, size_t *avail)
{
    if (want < READ_CHUNK)
        want = READ_CHUNK;
    if (reserve(d, want) != 0)
        return NULL;
    *avail = d->cap - d->end;
    return d->buf + d->end;
}

void frame_decoder_commit(frame_decoder *d, size_t n)
{
    d->end += n;
}

int frame_decoder_feed(frame_decoder *d, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (reserve(d, n) != 0)
        return FRAME_ENOMEM;
    memcpy(d->buf + d->end, data, n);
    d->end += n;
    return 0;
}

int frame_decoder_next(frame_decoder *d, frame_t *f)
{
    if (d->err)
        return d->err;
    size_t have = d->end - d->start;
    if (have < FRAME_HDR_SIZE) {
        if (have == 0)
            d->start = d->end = 0; /* cheap reset keeps reads at the front */
        if (d->cap > SHRINK_ABOVE)
            shrink(d);
        return 0;
    }
    uint16_t type;
    uint32_t len;
    int rc = frame_hdr_decode(d->buf + d->start, d->max_frame, &type, &len);
    if (rc != 0)
        return d->err = rc;
    if (have < FRAME_HDR_SIZE + (size_t)len) {
        /* Make sure the whole frame will fit once it arrives. */
        if (reserve(d, FRAME_HDR_SIZE + (size_t)len - have) != 0)
            return d->err = FRAME_ENOMEM;
        return 0;
    }
    f->type = type;
    f->length = len;
    f->payload = d->buf + d->start + FRAME_HDR_SIZE;
    d->start += FRAME_HDR_SIZE + (size_t)len;
    return 1;
}

size_t frame_decoder_pending(const frame_decoder *d)
{
    return d->end - d->start;
}

size_t frame_decoder_peek(const frame_decoder *d, const uint8_t **bytes)
{
    *bytes = d->buf ? d->buf + d->start : NULL;
    return d->end - d->start;
}

void frame_decoder_consume(frame_decoder *d, size_t n)
{
    size_t have = d->end - d->start;
    d->start += n < have ? n : have;
}
