/* auth.c -- see auth.h. */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "ids.h"
#include "sha256.h"
#include "util.h"

void auth_token_generate(char *out)
{
    uint8_t raw[AUTH_TOKEN_LEN / 2];
    id_random_bytes(raw, sizeof(raw));
    id_hex(raw, sizeof(raw), out);
}

int auth_token_load(const char *token, const char *token_file, char *out, size_t outlen, char *err,
                    size_t errlen)
{
    if (token && *token) {
        if (strlen(token) >= outlen) {
            snprintf(err, errlen, "token too long");
            return -1;
        }
        strcpy(out, token);
        return 0;
    }
    if (token_file == NULL || *token_file == '\0') {
        snprintf(err, errlen, "no cluster token given (--token or --token-file)");
        return -1;
    }
    char *s = read_file(token_file, NULL);
    if (s == NULL) {
        snprintf(err, errlen, "cannot read token file %s: %s", token_file, strerror(errno));
        return -1;
    }
    s[strcspn(s, "\n")] = '\0'; /* the first line is the token */
    rstrip(s);
    if (*s == '\0' || strlen(s) >= outlen) {
        snprintf(err, errlen, "token file %s is empty or malformed", token_file);
        free(s);
        return -1;
    }
    strcpy(out, s);
    free(s);
    return 0;
}

void auth_nonce(uint8_t out[AUTH_NONCE_LEN])
{
    id_random_bytes(out, AUTH_NONCE_LEN);
}

void auth_proof(const char *token, const uint8_t *nonce, size_t nlen, uint8_t out[AUTH_PROOF_LEN])
{
    hmac_sha256(token, strlen(token), nonce, nlen, out);
}

bool auth_verify(const char *token, const uint8_t *nonce, size_t nlen, const uint8_t *proof,
                 size_t plen)
{
    uint8_t want[AUTH_PROOF_LEN];
    /* An empty token would make HMAC("", nonce) a proof anyone can compute:
     * a server without a token refuses everyone instead. */
    if (token == NULL || *token == '\0' || proof == NULL || plen != AUTH_PROOF_LEN || nlen == 0)
        return false;
    auth_proof(token, nonce, nlen, want);
    return ct_equal(want, proof, AUTH_PROOF_LEN);
}
