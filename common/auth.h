/*
 * auth.h -- the cluster token and its challenge-response proof.
 *
 * The token is 32 random bytes written as 64 hex characters in the session
 * dir (mode 0600). A TCP server sends a random nonce in its Hello; the client
 * answers with HMAC-SHA256(token, nonce), which the server checks in constant
 * time. The token itself never crosses the wire.
 */
#ifndef RAYC_AUTH_H
#define RAYC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKEN_LEN 64 /* hex characters */
#define AUTH_NONCE_LEN 32
#define AUTH_PROOF_LEN 32

/* A fresh random token, NUL-terminated, into out[AUTH_TOKEN_LEN + 1]. */
void auth_token_generate(char *out);
/* The token from `token` if non-empty, else the first line of `token_file`.
 * Returns 0, or -1 with err set. out holds AUTH_TOKEN_LEN + 1 or more. */
int auth_token_load(const char *token, const char *token_file, char *out, size_t outlen, char *err,
                    size_t errlen);
void auth_nonce(uint8_t out[AUTH_NONCE_LEN]);
void auth_proof(const char *token, const uint8_t *nonce, size_t nlen, uint8_t out[AUTH_PROOF_LEN]);
/* true when proof is HMAC(token, nonce); constant time. */
bool auth_verify(const char *token, const uint8_t *nonce, size_t nlen, const uint8_t *proof,
                 size_t plen);

#endif
