/* msg.c -- frame type table; see msg.h. */
#include "msg.h"

#include <stdlib.h>

#include "frame.h"
#include "log.h"

const ProtobufCMessageDescriptor *msg_descriptor(uint16_t type)
{
    switch (type) {
#define MSG__DESC(num, NAME, lower)                                                                \
    case num:                                                                                      \
        return &rpc__##lower##__descriptor;
        MSG_TYPES(MSG__DESC)
#undef MSG__DESC
    }
    return NULL;
}

const char *msg_name(uint16_t type)
{
    switch (type) {
#define MSG__NAME(num, NAME, lower)                                                                \
    case num:                                                                                      \
        return #NAME;
        MSG_TYPES(MSG__NAME)
#undef MSG__NAME
    }
    return "UNKNOWN";
}

int msg_chunk_split(const uint8_t *payload, size_t len, Rpc__ChunkHeader **hdr,
                    const uint8_t **data, size_t *datalen)
{
    if (len < 4)
        return -1;
    uint32_t hlen = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 |
                    (uint32_t)payload[2] << 8 | payload[3];
    if (hlen > len - 4)
        return -1;
    if (hdr) {
        *hdr = rpc__chunk_header__unpack(NULL, hlen, payload + 4);
        if (*hdr == NULL)
            return -1;
    }
    *data = payload + 4 + hlen;
    *datalen = len - 4 - hlen;
    return 0;
}

/* protobuf-c allocator that refuses once the message has taken its budget
 * (allocator_data points at the bytes left). It hands out plain malloc
 * memory, so msg_free's default allocator frees it. */
static void *budget_alloc(void *data, size_t size)
{
    size_t *left = data;
    if (size > *left)
        return NULL;
    *left -= size;
    return malloc(size);
}

static void budget_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

ProtobufCMessage *msg_unpack(uint16_t type, const uint8_t *data, size_t len)
{
    const ProtobufCMessageDescriptor *d = msg_descriptor(type);
    if (d == NULL)
        return NULL;
    if (type == MSG_OBJECT_CHUNK) {
        Rpc__ChunkHeader *h;
        const uint8_t *raw;
        size_t rawlen;
        return msg_chunk_split(data, len, &h, &raw, &rawlen) == 0 ? &h->base : NULL;
    }
    size_t left = MSG_DECODE_BUDGET(len);
    ProtobufCAllocator budget = {budget_alloc, budget_free, &left};
    return protobuf_c_message_unpack(d, &budget, len, data);
}

void msg_free(ProtobufCMessage *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

size_t msg_frame_size(const ProtobufCMessage *m)
{
    return FRAME_HDR_SIZE + protobuf_c_message_get_packed_size(m);
}

size_t msg_encode(uint16_t type, const ProtobufCMessage *m, uint8_t *out)
{
    CHECK(msg_descriptor(type) == m->descriptor);
    size_t len = protobuf_c_message_pack(m, out + FRAME_HDR_SIZE);
    frame_hdr_encode(out, type, (uint32_t)len);
    return FRAME_HDR_SIZE + len;
}

void msg_status_set(Rpc__Status *st, int code, const char *message)
{
    st->code = code;
    st->message = (char *)(message ? message : "");
}
