/*
 * test_gcs_upload.c -- staged package uploads (gcs/gcs_upload.h): pieces in
 * order, the hash checked at the end, the size cap, the slots.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../gcs/gcs_upload.h"
#include "ids.h"
#include "rayc.h"
#include "sha256.h"

static void hash_of(const void *data, size_t len, char hex[65])
{
    uint8_t d[SHA256_SIZE];
    sha256(data, len, d);
    id_hex(d, SHA256_SIZE, hex);
}

Test(gcs_upload, pieces_in_order_then_the_hash_is_checked)
{
    gcs_upload *u = gcs_upload_new();
    char err[256], hex[65];
    const char data[] = "0123456789abcdefghij";
    hash_of(data, 20, hex);
    cr_assert_eq(gcs_upload_put(u, hex, 0, data, 8, 1, err, sizeof(err)), 8);
    /* A piece at the wrong offset is refused; the upload stays. */
    cr_assert_eq(gcs_upload_put(u, hex, 4, data + 4, 4, 2, err, sizeof(err)), RAYC_EINVAL);
    cr_assert_eq(gcs_upload_put(u, hex, 8, data + 8, 12, 3, err, sizeof(err)), 20);
    uint8_t *got;
    size_t len;
    cr_assert_eq(gcs_upload_finish(u, hex, &got, &len, err, sizeof(err)), RAYC_OK, "%s", err);
    cr_assert_eq(len, 20);
    cr_assert(memcmp(got, data, 20) == 0);
    free(got);
    cr_assert_eq(gcs_upload_finish(u, hex, &got, &len, err, sizeof(err)), RAYC_ENOTFOUND);

    /* Bytes that do not hash to the name. */
    cr_assert_eq(gcs_upload_put(u, hex, 0, data, 19, 4, err, sizeof(err)), 19);
    cr_assert_eq(gcs_upload_finish(u, hex, &got, &len, err, sizeof(err)), RAYC_EINVAL);
    cr_assert(strstr(err, "hash to"), "%s", err);
    cr_assert_eq(gcs_upload_put(u, "ABC", 0, data, 1, 5, err, sizeof(err)), RAYC_EINVAL);
    gcs_upload_free(u);
}

Test(gcs_upload, the_size_is_capped_and_slots_are_few)
{
    gcs_upload *u = gcs_upload_new();
    char err[256], hex[GCS_UPLOAD_SLOTS + 1][65];
    for (int i = 0; i <= GCS_UPLOAD_SLOTS; i++) {
        memset(hex[i], 'a', 64);
        hex[i][63] = (char)('0' + i);
        hex[i][64] = '\0';
    }
    for (int i = 0; i < GCS_UPLOAD_SLOTS; i++)
        cr_assert_eq(gcs_upload_put(u, hex[i], 0, "x", 1, 1000, err, sizeof(err)), 1);
    /* All slots busy and fresh: refused; once one idles long enough, taken. */
    cr_assert_eq(gcs_upload_put(u, hex[GCS_UPLOAD_SLOTS], 0, "x", 1, 1001, err, sizeof(err)),
                 RAYC_EBUSY);
    cr_assert_eq(gcs_upload_put(u, hex[GCS_UPLOAD_SLOTS], 0, "x", 1, 1000 + GCS_UPLOAD_IDLE_MS, err,
                                sizeof(err)),
                 1);
    /* Over the cap: refused, the upload dropped. */
    static uint8_t chunk[1 << 20];
    uint64_t off = 1;
    int64_t rc = 1;
    while (rc > 0) {
        rc = gcs_upload_put(u, hex[1], off, chunk, sizeof(chunk), 2000, err, sizeof(err));
        if (rc > 0)
            off = (uint64_t)rc;
    }
    cr_assert_eq(rc, RAYC_EINVAL);
    cr_assert(strstr(err, "at most"), "%s", err);
    cr_assert_leq(off, GCS_UPLOAD_MAX);
    uint8_t *got;
    size_t len;
    cr_assert_eq(gcs_upload_finish(u, hex[1], &got, &len, err, sizeof(err)), RAYC_ENOTFOUND);
    gcs_upload_free(u);
}
