/*
 * pattern.h -- a position-dependent byte pattern for checking object data
 * end to end: every 8-byte word depends on (seed, position), so a shifted,
 * truncated or partly zeroed copy never matches. Header-only, so task
 * libraries (examples/mnlib) fill what tests check.
 */
#ifndef RAYC_TEST_PATTERN_H
#define RAYC_TEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t pattern_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline void pattern_fill(void *buf, size_t size, uint64_t seed)
{
    uint8_t *p = buf;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = pattern_mix(seed ^ i);
        memcpy(p + 8 * i, &w, 8);
    }
    uint64_t w = pattern_mix(seed ^ words);
    memcpy(p + 8 * words, &w, size - 8 * words);
}

/* Offset of the first byte that differs from the pattern, or -1. */
static inline long long pattern_check(const void *buf, size_t size, uint64_t seed)
{
    const uint8_t *p = buf;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = pattern_mix(seed ^ i);
        if (memcmp(p + 8 * i, &w, 8) != 0)
            for (size_t j = 0; j < 8; j++)
                if (p[8 * i + j] != ((uint8_t *)&w)[j])
                    return (long long)(8 * i + j);
    }
    uint64_t w = pattern_mix(seed ^ words);
    for (size_t j = 0; j < size - 8 * words; j++)
        if (p[8 * words + j] != ((uint8_t *)&w)[j])
            return (long long)(8 * words + j);
    return -1;
}

#endif
