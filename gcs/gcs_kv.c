/*
 * gcs_kv.c -- the namespaced key-value table; see gcs_kv.h.
 * The map is keyed by the storage key itself, so loading is a plain insert
 * and every operation builds the composite key once.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_kv.h"
#include "ids.h"
#include "sha256.h"

#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "rayc.h"

#define STACK_KEY 256 /* composite keys up to this size are built on the stack */

struct gcs_kv_table {
    gcs_map *entries; /* "<ns>\0<key>" -> value */
};

typedef struct {
    size_t len;
    uint8_t bytes[];
} value;

gcs_kv_table *gcs_kv_table_new(void)
{
    gcs_kv_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->entries = gcs_map_new(free);
    if (t->entries == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void gcs_kv_table_free(gcs_kv_table *t)
{
    if (t == NULL)
        return;
    gcs_map_free(t->entries);
    free(t);
}

/* Build "<ns>\0<key>" into stack (if it fits) or a heap buffer. Returns the
 * buffer (heap when != stack) or NULL on allocation failure. */
static uint8_t *build_key(const char *ns, const uint8_t *key, size_t klen, uint8_t *stack,
                          size_t *len)
{
    size_t nslen = ns ? strlen(ns) : 0;
    size_t n = nslen + 1 + klen;
    uint8_t *buf = n <= STACK_KEY && stack ? stack : malloc(n);
    if (buf == NULL)
        return NULL;
    if (nslen)
        memcpy(buf, ns, nslen);
    buf[nslen] = '\0';
    if (klen)
        memcpy(buf + nslen + 1, key, klen);
    *len = n;
    return buf;
}

uint8_t *gcs_kv_storage_key(const char *ns, const uint8_t *key, size_t klen, size_t *len)
{
    return build_key(ns, key, klen, NULL, len);
}

static value *new_value(const uint8_t *val, size_t vlen)
{
    value *v = malloc(sizeof(*v) + vlen);
    if (v == NULL)
        return NULL;
    v->len = vlen;
    if (vlen)
        memcpy(v->bytes, val, vlen);
    return v;
}

bool gcs_kv_content_ok(const char *ns, const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen)
{
    if (ns == NULL || strcmp(ns, GCS_KV_CODE_NS) != 0)
        return true;
    uint8_t digest[SHA256_SIZE];
    char hex[2 * SHA256_SIZE + 1];
    sha256(val, vlen, digest);
    id_hex(digest, SHA256_SIZE, hex);
    return klen == 2 * SHA256_SIZE && memcmp(key, hex, klen) == 0;
}

int gcs_kv_put(gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen, const uint8_t *val,
               size_t vlen, bool overwrite, bool *added, bool *written)
{
    uint8_t stack[STACK_KEY];
    size_t sklen;
    int rc = RAYC_OK;
    if (added)
        *added = false;
    if (written)
        *written = false;
    if (!gcs_kv_content_ok(ns, key, klen, val, vlen))
        return RAYC_EINVAL;
    if (ns && strcmp(ns, GCS_KV_CODE_NS) == 0)
        overwrite = false; /* the key is the content's hash: nothing to replace */
    uint8_t *sk = build_key(ns, key, klen, stack, &sklen);
    if (sk == NULL)
        return RAYC_ENOMEM;
    bool exists = gcs_map_has(t->entries, sk, sklen);
    if (!exists || overwrite) {
        value *v = new_value(val, vlen);
        int r = v ? gcs_map_put(t->entries, sk, sklen, v) : RAYC_ENOMEM;
        if (r < 0) {
            free(v);
            rc = RAYC_ENOMEM;
        } else {
            if (added)
                *added = !exists;
            if (written)
                *written = true;
        }
    }
    if (sk != stack)
        free(sk);
    return rc;
}

int gcs_kv_get(const gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen,
               const uint8_t **val, size_t *vlen)
{
    uint8_t stack[STACK_KEY];
    size_t sklen;
    uint8_t *sk = build_key(ns, key, klen, stack, &sklen);
    if (sk == NULL)
        return RAYC_ENOMEM;
    value *v = gcs_map_get(t->entries, sk, sklen);
    if (sk != stack)
        free(sk);
    if (v == NULL)
        return RAYC_ENOTFOUND;
    *val = v->bytes;
    *vlen = v->len;
    return RAYC_OK;
}

int gcs_kv_del(gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen)
{
    uint8_t stack[STACK_KEY];
    size_t sklen;
    uint8_t *sk = build_key(ns, key, klen, stack, &sklen);
    if (sk == NULL)
        return RAYC_ENOMEM;
    bool deleted = gcs_map_del(t->entries, sk, sklen);
    if (sk != stack)
        free(sk);
    return deleted ? RAYC_OK : RAYC_ENOTFOUND;
}

bool gcs_kv_forget(gcs_kv_table *t, const uint8_t *skey, size_t sklen)
{
    return gcs_map_del(t->entries, skey, sklen);
}

bool gcs_kv_exists(const gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen)
{
    const uint8_t *v;
    size_t vlen;
    return gcs_kv_get(t, ns, key, klen, &v, &vlen) == RAYC_OK;
}

int gcs_kv_load(gcs_kv_table *t, const uint8_t *skey, size_t sklen, const uint8_t *val, size_t vlen)
{
    if (memchr(skey, '\0', sklen) == NULL)
        return RAYC_EINVAL;
    value *v = new_value(val, vlen);
    if (v == NULL || gcs_map_put(t->entries, skey, sklen, v) < 0) {
        free(v);
        return RAYC_ENOMEM;
    }
    return RAYC_OK;
}

size_t gcs_kv_count(const gcs_kv_table *t)
{
    return gcs_map_size(t->entries);
}
