/* test_frame.c -- the frame header codec and the incremental decoder
 * (common/frame.h). Pure: no sockets. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* Build header + payload into a fresh buffer; *len gets the total. */
/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(frame, .timeout = 30);

static uint8_t *make_frame(uint16_t type, const void *payload, uint32_t plen, size_t *len)
{
    uint8_t *b = malloc(FRAME_HDR_SIZE + plen + 1);
    cr_assert_not_null(b);
    frame_hdr_encode(b, type, plen);
    if (plen)
        memcpy(b + FRAME_HDR_SIZE, payload, plen);
    *len = FRAME_HDR_SIZE + plen;
    return b;
}

/* A simple deterministic generator, so failures reproduce. */
static uint32_t rng(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

Test(frame, header_layout_is_big_endian)
{
    uint8_t h[FRAME_HDR_SIZE];
    frame_hdr_encode(h, 0x0102, 0x03040506);
    const uint8_t want[FRAME_HDR_SIZE] = {'R', 'A', 'Y', 'C', 0, 1, 1, 2, 3, 4, 5, 6};
    cr_assert_eq(memcmp(h, want, FRAME_HDR_SIZE), 0);
    uint16_t type;
    uint32_t len;
    cr_assert_eq(frame_hdr_decode(h, 0xffffffffu, &type, &len), 0);
    cr_assert_eq(type, 0x0102);
    cr_assert_eq(len, 0x03040506);
    cr_assert_eq(frame_hdr_decode(h, 0x03040505, &type, &len), FRAME_ETOOBIG);
    cr_assert_eq(frame_hdr_decode(h, 0x03040506, &type, &len), 0, "max itself is allowed");
}

Test(frame, strerror_names_every_code)
{
    int codes[] = {FRAME_EMAGIC, FRAME_EVERSION, FRAME_ETOOBIG, FRAME_ENOMEM};
    for (size_t i = 0; i < 4; i++)
        cr_assert_str_neq(frame_strerror(codes[i]), "no error");
    cr_assert_str_eq(frame_strerror(0), "no error");
}

Test(frame, whole_frame)
{
    frame_decoder d;
    frame_decoder_init(&d, 0);
    cr_assert_eq(d.max_frame, FRAME_DEFAULT_MAX);
    size_t n;
    uint8_t *f = make_frame(7, "hello", 5, &n);
    cr_assert_eq(frame_decoder_feed(&d, f, n), 0);
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(fr.type, 7);
    cr_assert_eq(fr.length, 5);
    cr_assert_eq(memcmp(fr.payload, "hello", 5), 0);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    cr_assert_eq(frame_decoder_next(&d, &fr), 0);
    free(f);
    frame_decoder_free(&d);
    cr_assert_null(d.buf);
}

Test(frame, zero_length_payload)
{
    frame_decoder d;
    frame_decoder_init(&d, 16);
    size_t n;
    uint8_t *f = make_frame(3, NULL, 0, &n);
    cr_assert_eq(n, FRAME_HDR_SIZE);
    frame_decoder_feed(&d, f, n);
    frame_decoder_feed(&d, f, n);
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(fr.type, 3);
    cr_assert_eq(fr.length, 0);
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(frame_decoder_next(&d, &fr), 0);
    free(f);
    frame_decoder_free(&d);
}

Test(frame, split_at_every_byte_boundary)
{
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    size_t n;
    uint8_t *f = make_frame(0x1234, payload, sizeof(payload), &n);
    for (size_t cut = 0; cut <= n; cut++) {
        frame_decoder d;
        frame_decoder_init(&d, 0);
        frame_t fr;
        frame_decoder_feed(&d, f, cut);
        int rc = frame_decoder_next(&d, &fr);
        cr_assert_eq(rc, cut == n ? 1 : 0, "cut %zu: rc %d", cut, rc);
        frame_decoder_feed(&d, f + cut, n - cut);
        if (cut != n)
            cr_assert_eq(frame_decoder_next(&d, &fr), 1, "cut %zu", cut);
        cr_assert_eq(fr.type, 0x1234);
        cr_assert_eq(fr.length, sizeof(payload));
        cr_assert_eq(memcmp(fr.payload, payload, sizeof(payload)), 0, "cut %zu", cut);
        cr_assert_eq(frame_decoder_next(&d, &fr), 0);
        frame_decoder_free(&d);
    }
    free(f);
}

Test(frame, one_byte_at_a_time)
{
    size_t n;
    uint8_t *f = make_frame(9, "abcdefgh", 8, &n);
    frame_decoder d;
    frame_decoder_init(&d, 0);
    frame_t fr;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(frame_decoder_next(&d, &fr), 0, "byte %zu", i);
        frame_decoder_feed(&d, f + i, 1);
    }
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(memcmp(fr.payload, "abcdefgh", 8), 0);
    free(f);
    frame_decoder_free(&d);
}

Test(frame, many_frames_in_one_feed)
{
    enum { N = 1000 };
    uint8_t *stream = malloc(N * (FRAME_HDR_SIZE + 64));
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        uint32_t plen = (uint32_t)(i % 64);
        frame_hdr_encode(stream + off, (uint16_t)i, plen);
        memset(stream + off + FRAME_HDR_SIZE, i & 0xff, plen);
        off += FRAME_HDR_SIZE + plen;
    }
    frame_decoder d;
    frame_decoder_init(&d, 0);
    cr_assert_eq(frame_decoder_feed(&d, stream, off), 0);
    frame_t fr;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(frame_decoder_next(&d, &fr), 1, "frame %d", i);
        cr_assert_eq(fr.type, i, "in order");
        cr_assert_eq(fr.length, (uint32_t)(i % 64));
        for (uint32_t k = 0; k < fr.length; k++)
            cr_assert_eq(fr.payload[k], i & 0xff);
    }
    cr_assert_eq(frame_decoder_next(&d, &fr), 0);
    cr_assert_eq(frame_decoder_pending(&d), 0);
    free(stream);
    frame_decoder_free(&d);
}

Test(frame, random_splits_of_a_stream)
{
    enum { N = 200 };
    uint64_t seed = 12345;
    size_t cap = N * (FRAME_HDR_SIZE + 2000), off = 0;
    uint8_t *stream = malloc(cap);
    uint32_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = rng(&seed) % 2000;
        frame_hdr_encode(stream + off, (uint16_t)(i + 1), lens[i]);
        for (uint32_t k = 0; k < lens[i]; k++)
            stream[off + FRAME_HDR_SIZE + k] = (uint8_t)(i + k);
        off += FRAME_HDR_SIZE + lens[i];
    }
    frame_decoder d;
    frame_decoder_init(&d, 4096);
    int got = 0;
    size_t pos = 0;
    while (pos < off) {
        size_t chunk = 1 + rng(&seed) % 3000;
        if (chunk > off - pos)
            chunk = off - pos;
        /* Alternate the two ways of getting bytes in. */
        if (rng(&seed) & 1) {
            cr_assert_eq(frame_decoder_feed(&d, stream + pos, chunk), 0);
        } else {
            size_t avail;
            uint8_t *p = frame_decoder_space(&d, chunk, &avail);
            cr_assert_not_null(p);
            cr_assert_geq(avail, chunk);
            memcpy(p, stream + pos, chunk);
            frame_decoder_commit(&d, chunk);
        }
        pos += chunk;
        frame_t fr;
        int rc;
        while ((rc = frame_decoder_next(&d, &fr)) == 1) {
            cr_assert_eq(fr.type, got + 1);
            cr_assert_eq(fr.length, lens[got]);
            for (uint32_t k = 0; k < fr.length; k++)
                cr_assert_eq(fr.payload[k], (uint8_t)(got + k));
            got++;
        }
        cr_assert_eq(rc, 0);
    }
    cr_assert_eq(got, N);
    free(stream);
    frame_decoder_free(&d);
}

Test(frame, truncated_frame_needs_more)
{
    size_t n;
    uint8_t *f = make_frame(1, "0123456789", 10, &n);
    frame_decoder d;
    frame_decoder_init(&d, 0);
    frame_decoder_feed(&d, f, n - 1);
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), 0);
    cr_assert_eq(frame_decoder_next(&d, &fr), 0, "asking again changes nothing");
    cr_assert_eq(frame_decoder_pending(&d), n - 1);
    frame_decoder_feed(&d, f + n - 1, 1);
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    free(f);
    frame_decoder_free(&d);
}

Test(frame, oversized_length_is_sticky_etoobig)
{
    frame_decoder d;
    frame_decoder_init(&d, 1024);
    uint8_t h[FRAME_HDR_SIZE];
    frame_hdr_encode(h, 1, 1025);
    frame_decoder_feed(&d, h, sizeof(h));
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_ETOOBIG);
    cr_assert_leq(d.cap, 65536, "nothing allocated for the claimed length");
    /* Sticky: a good frame afterwards does not revive the decoder. */
    size_t n;
    uint8_t *f = make_frame(1, "x", 1, &n);
    frame_decoder_feed(&d, f, n);
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_ETOOBIG);
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_ETOOBIG);
    free(f);
    frame_decoder_free(&d);

    /* The largest length a header can hold against the default maximum. */
    frame_decoder_init(&d, 0);
    frame_hdr_encode(h, 1, 0xffffffffu);
    frame_decoder_feed(&d, h, sizeof(h));
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_ETOOBIG);
    frame_decoder_free(&d);
}

Test(frame, exactly_max_is_accepted)
{
    frame_decoder d;
    frame_decoder_init(&d, 100);
    uint8_t payload[100] = {0};
    size_t n;
    uint8_t *f = make_frame(2, payload, 100, &n);
    frame_decoder_feed(&d, f, n);
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(fr.length, 100);
    free(f);
    frame_decoder_free(&d);
}

Test(frame, bad_magic)
{
    size_t n;
    uint8_t *f = make_frame(1, "abc", 3, &n);
    f[0] = 'X';
    frame_decoder d;
    frame_decoder_init(&d, 0);
    frame_decoder_feed(&d, f, n);
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_EMAGIC);
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_EMAGIC, "sticky");
    free(f);
    frame_decoder_free(&d);
}

Test(frame, bad_magic_after_a_good_frame)
{
    size_t n;
    uint8_t *f = make_frame(1, "abc", 3, &n);
    frame_decoder d;
    frame_decoder_init(&d, 0);
    frame_decoder_feed(&d, f, n);
    frame_decoder_feed(&d, "GET / HTTP/1.1\r\n", 16);
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_EMAGIC);
    free(f);
    frame_decoder_free(&d);
}

Test(frame, bad_version)
{
    size_t n;
    uint8_t *f = make_frame(1, "abc", 3, &n);
    f[5] = 2; /* version 2 */
    frame_decoder d;
    frame_decoder_init(&d, 0);
    frame_decoder_feed(&d, f, n);
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_EVERSION);
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_EVERSION);
    free(f);
    f = make_frame(1, "abc", 3, &n);
    f[4] = 1; /* version 0x0101 */
    frame_decoder_free(&d);
    frame_decoder_init(&d, 0);
    frame_decoder_feed(&d, f, n);
    cr_assert_eq(frame_decoder_next(&d, &fr), FRAME_EVERSION);
    free(f);
    frame_decoder_free(&d);
}

Test(frame, garbage_never_crashes_and_stays_bounded)
{
    uint64_t seed = 99;
    uint8_t buf[4096];
    for (int round = 0; round < 2000; round++) {
        frame_decoder d;
        frame_decoder_init(&d, 1024);
        int rc = 0;
        for (int k = 0; k < 64 && rc >= 0; k++) {
            size_t len = rng(&seed) % sizeof(buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)rng(&seed);
            /* Half the rounds start with a valid header prefix, so the decoder
             * gets past the magic and version checks. */
            if ((round & 1) && len >= 6) {
                memcpy(buf, "RAYC\0\1", 6);
            }
            cr_assert_eq(frame_decoder_feed(&d, buf, len), 0);
            frame_t fr;
            while ((rc = frame_decoder_next(&d, &fr)) == 1)
                cr_assert_leq(fr.length, 1024);
            cr_assert(rc == 0 || rc == FRAME_EMAGIC || rc == FRAME_EVERSION || rc == FRAME_ETOOBIG,
                      "rc %d", rc);
            if (rc == 0)
                cr_assert_lt(frame_decoder_pending(&d), FRAME_HDR_SIZE + 1024);
            cr_assert_leq(d.cap, 4 * 65536, "cap %zu", d.cap);
        }
        frame_decoder_free(&d);
    }
}

Test(frame, buffer_shrinks_after_a_large_frame)
{
    const uint32_t big = 8u << 20;
    uint8_t *payload = calloc(1, big);
    size_t n;
    uint8_t *f = make_frame(5, payload, big, &n);
    frame_decoder d;
    frame_decoder_init(&d, 0);
    frame_t fr;

    /* Alone: the buffer is released once the frame is taken. */
    frame_decoder_feed(&d, f, n);
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_geq(d.cap, big);
    cr_assert_eq(frame_decoder_next(&d, &fr), 0);
    cr_assert_leq(d.cap, 65536, "cap %zu after the big frame", d.cap);

    /* Followed at once by the start of the next frame, as on a busy socket:
     * the partial header is kept, the big buffer is not. */
    size_t sn;
    uint8_t *small = make_frame(6, "tail", 4, &sn);
    frame_decoder_feed(&d, f, n);
    frame_decoder_feed(&d, small, 5);
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(fr.length, big);
    cr_assert_eq(frame_decoder_next(&d, &fr), 0);
    cr_assert_leq(d.cap, 65536, "cap %zu with a partial header pending", d.cap);
    cr_assert_eq(frame_decoder_pending(&d), 5);
    frame_decoder_feed(&d, small + 5, sn - 5);
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(fr.type, 6);
    cr_assert_eq(memcmp(fr.payload, "tail", 4), 0);

    free(small);
    free(f);
    free(payload);
    frame_decoder_free(&d);
}

Test(frame, space_reserves_room_for_a_whole_pending_frame)
{
    /* Once a header is seen, the decoder makes room for the whole frame so a
     * reader can fill it without further copies. */
    frame_decoder d;
    frame_decoder_init(&d, 0);
    uint8_t h[FRAME_HDR_SIZE];
    frame_hdr_encode(h, 1, 300000);
    frame_decoder_feed(&d, h, sizeof(h));
    frame_t fr;
    cr_assert_eq(frame_decoder_next(&d, &fr), 0);
    cr_assert_geq(d.cap - d.start, FRAME_HDR_SIZE + 300000);
    size_t avail;
    uint8_t *p = frame_decoder_space(&d, 0, &avail);
    cr_assert_not_null(p);
    cr_assert_geq(avail, 300000);
    memset(p, 0xab, 300000);
    frame_decoder_commit(&d, 300000);
    cr_assert_eq(frame_decoder_next(&d, &fr), 1);
    cr_assert_eq(fr.length, 300000);
    cr_assert_eq(fr.payload[299999], 0xab);
    frame_decoder_free(&d);
}

Test(frame, free_is_idempotent)
{
    frame_decoder d;
    frame_decoder_init(&d, 0);
    frame_decoder_free(&d);
    frame_decoder_free(&d);
    cr_assert_null(d.buf);
}
