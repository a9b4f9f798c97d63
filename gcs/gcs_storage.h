/*
 * gcs_storage.h -- where the GCS tables persist: an asynchronous key-value
 * interface over named tables, with two implementations.
 *
 *   gcs_storage_redis_new   each table is the Redis hash "rayc:<table>"
 *                           (HSET/HGET/HDEL/HGETALL, binary-safe), over
 *                           hiredis async on the GCS's libevent loop.
 *   gcs_storage_memory_new  a hash map per table; nothing survives the
 *                           process (unit tests, --storage=memory).
 *
 * Contract, common to both:
 *   - Every operation calls its callback exactly once, always later from the
 *     event loop, never from inside the call. Callbacks of one storage run in
 *     the order the operations were issued.
 *   - Keys, values and table names are copied before the call returns.
 *   - Data handed to a callback (values, entries) is valid only during the
 *     callback; copy what you keep.
 *   - status is RAYC_OK, RAYC_ENOTFOUND (get of an absent key, del of an
 *     absent key), RAYC_ECONN (Redis not connected), RAYC_EIO (Redis replied
 *     with an error), RAYC_ENOMEM, or RAYC_ECANCELLED (the storage was freed
 *     while the operation was in flight: it may or may not have happened).
 *   - gcs_storage_errstr() keeps the last error in words, for logs/replies.
 *
 * Redis failure handling: a lost connection is logged and re-established
 * with exponential back-off (100 ms doubling to 2 s); operations issued
 * while disconnected fail with RAYC_ECONN. The daemon never exits for it.
 *
 * Thread-safety: a storage belongs to its event loop's thread.
 */
#ifndef RAYC_GCS_STORAGE_H
#define RAYC_GCS_STORAGE_H

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GCS_STORAGE_PREFIX    "rayc:" /* Redis key of table t is "rayc:<t>" */
#define GCS_STORAGE_TABLE_MAX 64      /* longest table name */

/* Table names (docs/contracts.md, "GCS storage"). */
#define GCS_TABLE_NODES   "nodes"   /* node id (28 B) -> NodeInfo */
#define GCS_TABLE_JOBS    "jobs"    /* job id (4 B big-endian) -> JobInfo */
#define GCS_TABLE_KV      "kv"      /* "<ns>\0<key>" -> value */
#define GCS_TABLE_OBJECTS "objects" /* object id + node id (56 B) -> ObjectLocation */
#define GCS_TABLE_META    "meta"    /* "job_counter" -> decimal */
#define GCS_TABLE_ACTORS  "actors"  /* actor id (16 B) -> ActorInfo */
#define GCS_TABLE_PGS     "pgs"     /* placement group id (18 B) -> PlacementGroupInfo */

typedef struct gcs_storage gcs_storage;

/* One key/value pair of a get_all result. */
typedef struct {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *val;
    size_t val_len;
} gcs_storage_entry;

/* put and del: status only. */
typedef void (*gcs_storage_done_fn)(void *arg, int status);
/* get: val/len set when status == RAYC_OK. */
typedef void (*gcs_storage_get_fn)(void *arg, int status, const uint8_t *val, size_t len);
/* get_all: n entries when status == RAYC_OK (n may be 0). */
typedef void (*gcs_storage_all_fn)(void *arg, int status, const gcs_storage_entry *entries,
                                   size_t n);

typedef struct {
    const char *unix_path; /* Redis Unix socket; or */
    const char *host;      /* host and port of a TCP Redis (loopback) */
    int port;
    const char *password; /* AUTH with it when non-empty */
} gcs_storage_redis_opts;

/* An in-memory storage on base. NULL on allocation failure. */
gcs_storage *gcs_storage_memory_new(struct event_base *base);

/* A Redis storage on base. Starts connecting (and AUTH) at once. Returns
 * NULL with err set when the connection cannot even be started (e.g. no
 * such socket, connection refused on the Unix socket); an asynchronous
 * failure later shows as operations failing with RAYC_ECONN. */
gcs_storage *gcs_storage_redis_new(struct event_base *base, const gcs_storage_redis_opts *opts,
                                   char *err, size_t errlen);

/* Free the storage. Callbacks of operations still in flight are called from
 * inside this call with RAYC_ECANCELLED. Accepts NULL. */
void gcs_storage_free(gcs_storage *s);

void gcs_storage_put(gcs_storage *s, const char *table, const void *key, size_t klen,
                     const void *val, size_t vlen, gcs_storage_done_fn cb, void *arg);
void gcs_storage_get(gcs_storage *s, const char *table, const void *key, size_t klen,
                     gcs_storage_get_fn cb, void *arg);
void gcs_storage_del(gcs_storage *s, const char *table, const void *key, size_t klen,
                     gcs_storage_done_fn cb, void *arg);
void gcs_storage_get_all(gcs_storage *s, const char *table, gcs_storage_all_fn cb, void *arg);

/* Connected and authenticated (always true for memory). */
bool gcs_storage_is_up(const gcs_storage *s);
/* The last error, "" if none. Valid until the next operation. */
const char *gcs_storage_errstr(const gcs_storage *s);
/* "redis" or "memory". */
const char *gcs_storage_kind(const gcs_storage *s);

/* Pack a protobuf message into a new buffer (the value format of every
 * table). Returns NULL on allocation failure; the caller frees. */
uint8_t *gcs_storage_pack(const ProtobufCMessage *m, size_t *len);
/* Deep copy of a message (pack + unpack). NULL on allocation failure; free
 * with protobuf_c_message_free_unpacked(copy, NULL). */
ProtobufCMessage *gcs_storage_msg_dup(const ProtobufCMessage *m);

/* ---------------------------------------------------------------------
 * Implementation side (gcs_storage*.c only): the vtable and the deferred
 * completion queue both implementations use to call back from the loop.
 */
typedef struct gcs_storage__done gcs_storage__done;

typedef struct {
    const char *kind;
    void (*put)(gcs_storage *s, const char *table, const void *key, size_t klen, const void *val,
                size_t vlen, gcs_storage_done_fn cb, void *arg);
    void (*get)(gcs_storage *s, const char *table, const void *key, size_t klen,
                gcs_storage_get_fn cb, void *arg);
    void (*del)(gcs_storage *s, const char *table, const void *key, size_t klen,
                gcs_storage_done_fn cb, void *arg);
    void (*get_all)(gcs_storage *s, const char *table, gcs_storage_all_fn cb, void *arg);
    bool (*is_up)(const gcs_storage *s);
    void (*destroy)(gcs_storage *s); /* free impl state; cancel in-flight ops */
} gcs_storage__ops;

struct gcs_storage {
    const gcs_storage__ops *ops;
    struct event_base *base;
    struct event *defer_ev;         /* runs the queue below */
    gcs_storage__done *head, *tail; /* completions waiting for the loop */
    bool freeing;
    char errstr[256];
};

/* Initialise the common part. 0 or RAYC_ENOMEM. */
int gcs_storage__init(gcs_storage *s, const gcs_storage__ops *ops, struct event_base *base);
/* Queue a completion for the loop. val (get) and entries (get_all) are
 * copied; on copy failure the callback gets RAYC_ENOMEM instead. */
void gcs_storage__defer_done(gcs_storage *s, gcs_storage_done_fn cb, void *arg, int status);
void gcs_storage__defer_get(gcs_storage *s, gcs_storage_get_fn cb, void *arg, int status,
                            const uint8_t *val, size_t len);
void gcs_storage__defer_all(gcs_storage *s, gcs_storage_all_fn cb, void *arg, int status,
                            const gcs_storage_entry *entries, size_t n);
/* Record the last error (printf style). */
void gcs_storage__set_err(gcs_storage *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
