/*
 * gcs_upload.c -- staged package uploads; see gcs_upload.h.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "rayc.h"
#include "sha256.h"

typedef struct {
    char hash[GCS_UPLOAD_HASH + 1]; /* "" : free */
    uint8_t *data;
    size_t len, cap;
    uint64_t touched_ms;
} slot;

struct gcs_upload {
    slot slots[GCS_UPLOAD_SLOTS];
};

gcs_upload *gcs_upload_new(void)
{
    return calloc(1, sizeof(gcs_upload));
}

static void slot_clear(slot *s)
{
    free(s->data);
    memset(s, 0, sizeof(*s));
}

void gcs_upload_free(gcs_upload *u)
{
    if (u == NULL)
        return;
    for (int i = 0; i < GCS_UPLOAD_SLOTS; i++)
        slot_clear(&u->slots[i]);
    free(u);
}

int gcs_upload_hash_ok(const char *s)
{
    if (s == NULL || strlen(s) != GCS_UPLOAD_HASH)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static slot *find(gcs_upload *u, const char *hash)
{
    for (int i = 0; i < GCS_UPLOAD_SLOTS; i++)
        if (strcmp(u->slots[i].hash, hash) == 0)
            return &u->slots[i];
    return NULL;
}

/* A free slot, or the one idle longest if idle long enough; NULL if none. */
static slot *take(gcs_upload *u, uint64_t now_ms)
{
    slot *best = NULL;
    for (int i = 0; i < GCS_UPLOAD_SLOTS; i++) {
        slot *s = &u->slots[i];
        if (s->hash[0] == '\0')
            return s;
        if (now_ms - s->touched_ms >= GCS_UPLOAD_IDLE_MS &&
            (best == NULL || s->touched_ms < best->touched_ms))
            best = s;
    }
    if (best)
        slot_clear(best);
    return best;
}

int64_t gcs_upload_put(gcs_upload *u, const char *hash, uint64_t offset, const void *data,
                       size_t len, uint64_t now_ms, char *err, size_t errlen)
{
    if (!gcs_upload_hash_ok(hash)) {
        snprintf(err, errlen, "a package is named by the 64 lowercase hex of its SHA-256");
        return RAYC_EINVAL;
    }
    slot *s = find(u, hash);
    if (offset == 0 && s)
        slot_clear(s);
    if (offset == 0) {
        s = take(u, now_ms);
        if (s == NULL) {
            snprintf(err, errlen, "%d uploads are under way: try again later", GCS_UPLOAD_SLOTS);
            return RAYC_EBUSY;
        }
        memcpy(s->hash, hash, GCS_UPLOAD_HASH + 1);
    }
    if (s == NULL || offset != s->len) {
        snprintf(err, errlen, "upload %.12s: offset %llu, but %zu bytes were received", hash,
                 (unsigned long long)offset, s ? s->len : 0);
        return RAYC_EINVAL;
    }
    if (len > GCS_UPLOAD_MAX - s->len) {
        snprintf(err, errlen, "a package may have at most %u bytes", GCS_UPLOAD_MAX);
        slot_clear(s);
        return RAYC_EINVAL;
    }
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 16;
        while (cap < s->len + len)
            cap *= 2;
        uint8_t *nd = realloc(s->data, cap);
        if (nd == NULL) {
            snprintf(err, errlen, "out of memory");
            return RAYC_ENOMEM;
        }
        s->data = nd;
        s->cap = cap;
    }
    if (len)
        memcpy(s->data + s->len, data, len);
    s->len += len;
    s->touched_ms = now_ms;
    return (int64_t)s->len;
}

int gcs_upload_finish(gcs_upload *u, const char *hash, uint8_t **data, size_t *len, char *err,
                      size_t errlen)
{
    slot *s = gcs_upload_hash_ok(hash) ? find(u, hash) : NULL;
    if (s == NULL) {
        snprintf(err, errlen, "no upload %.64s under way", hash ? hash : "");
        return RAYC_ENOTFOUND;
    }
    uint8_t digest[SHA256_SIZE];
    char hex[2 * SHA256_SIZE + 1];
    sha256(s->data ? s->data : (const uint8_t *)"", s->len, digest);
    id_hex(digest, SHA256_SIZE, hex);
    if (strcmp(hex, hash) != 0) {
        snprintf(err, errlen, "the %zu bytes received hash to %.12s, not %.12s", s->len, hex, hash);
        slot_clear(s);
        return RAYC_EINVAL;
    }
    *data = s->data ? s->data : calloc(1, 1);
    *len = s->len;
    s->data = NULL;
    slot_clear(s);
    return *data ? RAYC_OK : RAYC_ENOMEM;
}
