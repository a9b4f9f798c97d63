/* test_auth.c -- SHA-256 / HMAC-SHA256 known vectors (FIPS 180-4 examples,
 * RFC 4231), constant-time compare, and the cluster-token proof
 * (common/sha256.h, common/auth.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "ids.h"
#include "sha256.h"
#include "util.h"

/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(auth, .timeout = 30);
TestSuite(ct_equal, .timeout = 30);
TestSuite(hmac, .timeout = 30);
TestSuite(sha, .timeout = 30);

static void assert_hex(const uint8_t *got, size_t n, const char *want)
{
    char hex[2 * SHA256_SIZE + 1];
    id_hex(got, n, hex);
    cr_assert_str_eq(hex, want);
}

/* ------------------------------------------------------------ SHA-256 */

Test(sha256, fips_vectors)
{
    uint8_t d[SHA256_SIZE];
    sha256("", 0, d);
    assert_hex(d, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256("abc", 3, d);
    assert_hex(d, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256(m2, strlen(m2), d);
    assert_hex(d, 32, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, null_empty_input)
{
    uint8_t d[SHA256_SIZE];
    sha256(NULL, 0, d);
    assert_hex(d, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(sha256, million_a_in_uneven_pieces)
{
    /* Feeding in pieces that straddle block boundaries must not matter. */
    static uint8_t a[1024];
    memset(a, 'a', sizeof(a));
    sha256_ctx c;
    sha256_init(&c);
    size_t left = 1000000, step = 1;
    while (left > 0) {
        size_t n = step < left ? step : left;
        sha256_update(&c, a, n);
        left -= n;
        step = step % 997 + 13;
    }
    uint8_t d[SHA256_SIZE];
    sha256_final(&c, d);
    assert_hex(d, 32, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, padding_boundaries_match_one_shot)
{
    /* Lengths around 55/56/64 bytes exercise the padding edge cases; the
     * incremental and one-shot paths must agree. */
    uint8_t msg[200];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)i;
    for (size_t len = 0; len <= sizeof(msg); len++) {
        uint8_t one[SHA256_SIZE], inc[SHA256_SIZE];
        sha256(msg, len, one);
        sha256_ctx c;
        sha256_init(&c);
        for (size_t i = 0; i < len; i++)
            sha256_update(&c, msg + i, 1);
        sha256_final(&c, inc);
        cr_assert_eq(memcmp(one, inc, SHA256_SIZE), 0, "len %zu", len);
    }
    /* 55 and 56 bytes of 'a' against independently computed digests. */
    uint8_t d[SHA256_SIZE];
    memset(msg, 'a', 64);
    sha256(msg, 55, d);
    assert_hex(d, 32, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    sha256(msg, 56, d);
    assert_hex(d, 32, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    sha256(msg, 64, d);
    assert_hex(d, 32, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

/* ------------------------------------------------------------ HMAC */

Test(hmac, rfc4231_vectors)
{
    uint8_t out[SHA256_SIZE], key[131], data[50];

    memset(key, 0x0b, 20);
    hmac_sha256(key, 20, "Hi There", 8, out);
    assert_hex(out, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    const char *m2 = "what do ya want for nothing?";
    hmac_sha256("Jefe", 4, m2, strlen(m2), out);
    assert_hex(out, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    hmac_sha256(key, 20, data, 50, out);
    assert_hex(out, 32, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

    for (int i = 0; i < 25; i++)
        key[i] = (uint8_t)(i + 1);
    memset(data, 0xcd, 50);
    hmac_sha256(key, 25, data, 50, out);
    assert_hex(out, 32, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");

    memset(key, 0x0c, 20);
    hmac_sha256(key, 20, "Test With Truncation", 20, out);
    assert_hex(out, 16, "a3b6167473100ee06e0c796c2955552b");

    /* Keys longer than the block size are hashed first. */
    memset(key, 0xaa, 131);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_sha256(key, 131, m6, strlen(m6), out);
    assert_hex(out, 32, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    const char *m7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the "
                     "HMAC algorithm.";
    hmac_sha256(key, 131, m7, strlen(m7), out);
    assert_hex(out, 32, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

Test(hmac, key_of_exactly_one_block)
{
    uint8_t key[64], out[SHA256_SIZE];
    memset(key, 'k', sizeof(key));
    hmac_sha256(key, 64, "msg", 3, out);
    assert_hex(out, 32, "d62ad25bb128e96ab6ef43464aaf2bb91b5b85f013381e9ba6be747e8d0911b2");
}

/* ------------------------------------------------------------ ct_equal */

Test(ct_equal, equal_and_different_anywhere)
{
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)(i * 3);
    cr_assert_eq(ct_equal(a, b, 32), 1);
    cr_assert_eq(ct_equal(a, b, 0), 1);
    for (int i = 0; i < 32; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1 << bit);
            cr_assert_eq(ct_equal(a, b, 32), 0, "byte %d bit %d", i, bit);
            b[i] ^= (uint8_t)(1 << bit);
        }
    }
    cr_assert_eq(ct_equal(a, b, 32), 1);
}

/* ------------------------------------------------------------ tokens */

Test(auth, token_generate_is_hex_and_random)
{
    char t1[AUTH_TOKEN_LEN + 1], t2[AUTH_TOKEN_LEN + 1];
    auth_token_generate(t1);
    auth_token_generate(t2);
    cr_assert_eq(strlen(t1), AUTH_TOKEN_LEN);
    uint8_t raw[AUTH_TOKEN_LEN / 2];
    cr_assert_eq(id_from_hex(t1, raw, sizeof(raw)), 0);
    cr_assert_str_neq(t1, t2);
}

Test(auth, proof_verify_ok_bad_short)
{
    const char *token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    uint8_t nonce[AUTH_NONCE_LEN], proof[AUTH_PROOF_LEN];
    auth_nonce(nonce);
    auth_proof(token, nonce, sizeof(nonce), proof);

    /* The proof is HMAC-SHA256(token, nonce). */
    uint8_t want[SHA256_SIZE];
    hmac_sha256(token, strlen(token), nonce, sizeof(nonce), want);
    cr_assert_eq(memcmp(proof, want, AUTH_PROOF_LEN), 0);

    cr_assert(auth_verify(token, nonce, sizeof(nonce), proof, sizeof(proof)));
    /* Wrong token. */
    cr_assert_not(auth_verify("ffff", nonce, sizeof(nonce), proof, sizeof(proof)));
    /* Right token, other nonce (a replay against a fresh challenge). */
    uint8_t nonce2[AUTH_NONCE_LEN];
    auth_nonce(nonce2);
    cr_assert_not(auth_verify(token, nonce2, sizeof(nonce2), proof, sizeof(proof)));
    /* Tampered proof. */
    proof[AUTH_PROOF_LEN - 1] ^= 1;
    cr_assert_not(auth_verify(token, nonce, sizeof(nonce), proof, sizeof(proof)));
    proof[AUTH_PROOF_LEN - 1] ^= 1;
    /* Short, long and empty proofs. */
    cr_assert_not(auth_verify(token, nonce, sizeof(nonce), proof, AUTH_PROOF_LEN - 1));
    cr_assert_not(auth_verify(token, nonce, sizeof(nonce), proof, 0));
    cr_assert_not(auth_verify(token, nonce, sizeof(nonce), NULL, 0));
    uint8_t longer[AUTH_PROOF_LEN + 1];
    memcpy(longer, proof, AUTH_PROOF_LEN);
    longer[AUTH_PROOF_LEN] = 0;
    cr_assert_not(auth_verify(token, nonce, sizeof(nonce), longer, sizeof(longer)));
    /* No nonce: nothing to prove against. */
    cr_assert_not(auth_verify(token, nonce, 0, proof, sizeof(proof)));
}

Test(auth, empty_server_token_never_verifies)
{
    /* A server that requires auth but has no token must refuse everyone,
     * not accept a client that also has none. */
    uint8_t nonce[AUTH_NONCE_LEN], proof[AUTH_PROOF_LEN];
    auth_nonce(nonce);
    auth_proof("", nonce, sizeof(nonce), proof);
    cr_assert_not(auth_verify("", nonce, sizeof(nonce), proof, sizeof(proof)));
    cr_assert_not(auth_verify(NULL, nonce, sizeof(nonce), proof, sizeof(proof)));
}

Test(auth, token_load_from_flag_and_file)
{
    char out[AUTH_TOKEN_LEN + 1], err[256];
    cr_assert_eq(auth_token_load("abc", NULL, out, sizeof(out), err, sizeof(err)), 0);
    cr_assert_str_eq(out, "abc");

    char dir[] = "/tmp/rayc_test_auth_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/token", dir);
    const char *tok = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char content[128];
    snprintf(content, sizeof(content), "%s\n", tok);
    cr_assert_eq(write_file(path, content, strlen(content), 0600), 0);
    cr_assert_eq(auth_token_load("", path, out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out, tok, "trailing newline stripped");
    cr_assert_eq(auth_token_load(NULL, path, out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    /* The flag wins over the file. */
    cr_assert_eq(auth_token_load("xyz", path, out, sizeof(out), err, sizeof(err)), 0);
    cr_assert_str_eq(out, "xyz");

    /* Only the first line is the token. */
    snprintf(content, sizeof(content), "%s\r\n# comment\n", tok);
    cr_assert_eq(write_file(path, content, strlen(content), 0600), 0);
    cr_assert_eq(auth_token_load(NULL, path, out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out, tok);

    /* Errors. */
    err[0] = '\0';
    cr_assert_eq(auth_token_load(NULL, NULL, out, sizeof(out), err, sizeof(err)), -1);
    cr_assert_neq(err[0], '\0');
    err[0] = '\0';
    cr_assert_eq(auth_token_load("", "/nonexistent/token", out, sizeof(out), err, sizeof(err)), -1);
    cr_assert(strstr(err, "/nonexistent/token") != NULL, "%s", err);
    cr_assert_eq(write_file(path, "\n  \n", 4, 0600), 0);
    cr_assert_eq(auth_token_load(NULL, path, out, sizeof(out), err, sizeof(err)), -1, "empty");
    char small[8];
    cr_assert_eq(auth_token_load("0123456789", NULL, small, sizeof(small), err, sizeof(err)), -1);

    unlink(path);
    rmdir(dir);
}
