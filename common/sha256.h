/*
 * sha256.h -- SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), for the
 * cluster-token proof and for content hashes of code packages. Pure.
 */
#ifndef RAYC_SHA256_H
#define RAYC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_SIZE 32

typedef struct {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_SIZE]);
void sha256(const void *data, size_t n, uint8_t out[SHA256_SIZE]);
void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                 uint8_t out[SHA256_SIZE]);
/* Compare n bytes in time independent of where they differ. 1 if equal. */
int ct_equal(const void *a, const void *b, size_t n);

#endif
