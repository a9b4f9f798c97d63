/*
 * gcs_upload.h -- packages uploaded over HTTP in pieces (issue 15: `rayc job
 * submit --working-dir=DIR` packs DIR as a .tar.gz and sends it to the head
 * through the dashboard, whose bodies are capped at 64 KiB). Each upload is
 * named by the lowercase hex SHA-256 of its bytes; pieces must arrive in
 * order (offset = bytes received so far) and the whole stays under
 * GCS_UPLOAD_MAX; finishing checks the hash and hands the bytes over (the
 * HTTP side stores them as a code package in the GCS KV, namespace "code",
 * which is content-addressed the same way).
 *
 * At most GCS_UPLOAD_SLOTS uploads are staged at once; a new one takes the
 * slot of one idle for GCS_UPLOAD_IDLE_MS, else is refused (RAYC_EBUSY).
 *
 * Pure: no sockets, no storage; the clock is passed in.
 * Thread-safety: none; runs on the GCS loop thread.
 */
#ifndef RAYC_GCS_UPLOAD_H
#define RAYC_GCS_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#define GCS_UPLOAD_MAX     (64u << 20) /* bytes of one package */
#define GCS_UPLOAD_SLOTS   4
#define GCS_UPLOAD_IDLE_MS 60000
#define GCS_UPLOAD_HASH    64 /* hex chars of a SHA-256 */

typedef struct gcs_upload gcs_upload;

gcs_upload *gcs_upload_new(void);    /* NULL when out of memory */
void gcs_upload_free(gcs_upload *u); /* NULL-safe */

/* Whether s is 64 lowercase hex characters. */
int gcs_upload_hash_ok(const char *s);

/* Append len bytes at offset to the upload hash (offset 0 starts it again).
 * Returns the bytes received so far (>= 0), or RAYC_EINVAL (bad hash, an
 * offset that is not the size so far, or more than GCS_UPLOAD_MAX in all:
 * err says which), RAYC_EBUSY (no free slot), RAYC_ENOMEM. */
int64_t gcs_upload_put(gcs_upload *u, const char *hash, uint64_t offset, const void *data,
                       size_t len, uint64_t now_ms, char *err, size_t errlen);

/* End the upload hash: its bytes must hash to it. On RAYC_OK *data (the
 * caller frees) and *len are the package and the slot is free again;
 * RAYC_ENOTFOUND (no such upload), RAYC_EINVAL (the bytes do not hash to
 * it: the upload is dropped). */
int gcs_upload_finish(gcs_upload *u, const char *hash, uint8_t **data, size_t *len, char *err,
                      size_t errlen);

#endif
