/*
 * gcs_kv.h -- the GCS key-value table: code packages by content hash,
 * configuration, anything a driver wants the cluster to share. Pure state
 * (callers persist it): no sockets, no storage.
 *
 * A key lives in a namespace; the storage key is "<ns>\0<key>" (a namespace
 * cannot contain NUL, a key can: keys are bytes). Values are bytes.
 *
 * Ownership: the table owns its values; pointers it hands out are valid
 * until the next call that modifies the table or gcs_kv_table_free.
 * Thread-safety: none; the table belongs to the GCS loop thread.
 */
#ifndef RAYC_GCS_KV_H
#define RAYC_GCS_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gcs_kv_table gcs_kv_table;

/* NULL on allocation failure. */
gcs_kv_table *gcs_kv_table_new(void);
void gcs_kv_table_free(gcs_kv_table *t); /* accepts NULL */

/* The storage key "<ns>\0<key>" in a new buffer (ns NULL means ""). The
 * caller frees. NULL on allocation failure. */
uint8_t *gcs_kv_storage_key(const char *ns, const uint8_t *key, size_t klen, size_t *len);

/* The namespace of code packages: content-addressed, key = hex(sha256(value)). */
#define GCS_KV_CODE_NS "code"

/* Whether val may be stored under (ns, key): in GCS_KV_CODE_NS only under
 * the lowercase hex SHA-256 of val; anything anywhere else. */
bool gcs_kv_content_ok(const char *ns, const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen);

/* Store val under (ns, key). If the key exists and overwrite is false it is
 * kept; in GCS_KV_CODE_NS an existing key is always kept (same hash, same
 * bytes) and a value that does not hash to its key is refused. *added (may
 * be NULL) tells whether the key was new; *written (may be NULL) whether the
 * table changed (so the caller persists).
 * Returns RAYC_OK, RAYC_EINVAL (code package under a wrong key) or
 * RAYC_ENOMEM (table unchanged). */
int gcs_kv_put(gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen, const uint8_t *val,
               size_t vlen, bool overwrite, bool *added, bool *written);
/* Returns RAYC_OK with val and vlen set, RAYC_ENOTFOUND, or RAYC_ENOMEM. */
int gcs_kv_get(const gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen,
               const uint8_t **val, size_t *vlen);
/* Returns RAYC_OK (deleted), RAYC_ENOTFOUND, or RAYC_ENOMEM. */
int gcs_kv_del(gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen);
/* Drop an entry by its storage key (a put whose write failed is undone).
 * Returns whether it was there. */
bool gcs_kv_forget(gcs_kv_table *t, const uint8_t *skey, size_t sklen);
bool gcs_kv_exists(const gcs_kv_table *t, const char *ns, const uint8_t *key, size_t klen);

/* Load one stored entry (storage key as above). Returns RAYC_OK, RAYC_EINVAL
 * (no NUL separator) or RAYC_ENOMEM. */
int gcs_kv_load(gcs_kv_table *t, const uint8_t *skey, size_t sklen, const uint8_t *val,
                size_t vlen);
size_t gcs_kv_count(const gcs_kv_table *t);

#endif
