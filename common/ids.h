/*
 * ids.h -- identifiers, in Ray's scheme (DESIGN.md section 3), so that
 * lineage and ownership can be derived from an id:
 *
 *   JobID     4 B   big-endian counter from the GCS
 *   ActorID  16 B   12 unique + JobID
 *   TaskID   24 B   8 unique + ActorID (zero unique part for normal tasks)
 *   ObjectID 28 B   TaskID + 4-byte index (returns 1.., puts flagged)
 *   NodeID / WorkerID 28 B random
 *
 * Plain values: copy freely. Hex is lowercase, two characters a byte.
 * Thread-safety: all functions are pure except the random generators, which
 * read getrandom(2) and are safe from any thread.
 */
#ifndef RAYC_IDS_H
#define RAYC_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_ID_SIZE    4
#define ACTOR_ID_SIZE  16
#define PG_ID_SIZE     18 /* placement group: 14 random bytes + job id */
#define TASK_ID_SIZE   24
#define OBJECT_ID_SIZE 28
#define NODE_ID_SIZE   28
#define WORKER_ID_SIZE 28
#define ID_HEX_MAX     (2 * 28 + 1) /* longest hex string plus NUL */

#define OBJECT_INDEX_PUT_FLAG 0x80000000u /* set in the index of rayc_put objects */

typedef struct {
    uint8_t b[JOB_ID_SIZE];
} job_id_t;
typedef struct {
    uint8_t b[ACTOR_ID_SIZE];
} actor_id_t;
typedef struct {
    uint8_t b[TASK_ID_SIZE];
} task_id_t;
typedef struct {
    uint8_t b[OBJECT_ID_SIZE];
} object_id_t;
typedef struct {
    uint8_t b[NODE_ID_SIZE];
} node_id_t;
typedef struct {
    uint8_t b[WORKER_ID_SIZE];
} worker_id_t;

/* Fill buf with n cryptographically random bytes (getrandom). Aborts if the
 * kernel cannot supply them: ids must never collide. */
void id_random_bytes(void *buf, size_t n);

/* Hex of n bytes into out (2n+1 chars). Returns out. */
char *id_hex(const void *id, size_t n, char *out);
/* Parse exactly 2n hex chars into id. Returns 0, or -1 on a bad length/char. */
int id_from_hex(const char *hex, void *id, size_t n);

job_id_t job_id_from_int(uint32_t v);
uint32_t job_id_to_int(job_id_t j);

node_id_t node_id_random(void);
worker_id_t worker_id_random(void);
actor_id_t actor_id_random(job_id_t job);
job_id_t actor_id_job(const actor_id_t *a);

/* Owner tags (docs/objects.md, "Borrowing"). Once a process has called
 * id_set_owner with its worker id, the unique part of each task id it makes
 * is that id's first ID_OWNER_TAG_SIZE bytes (its owner tag) and a counter,
 * so every object id it owns (returns of its tasks, its puts) starts with
 * its tag: any process can find the owner of a ref from the ref alone. */
#define ID_OWNER_TAG_SIZE 4
void id_set_owner(const worker_id_t *w);
/* The object or task id starts with w's owner tag. */
bool id_owner_tag_matches(const void *id, const worker_id_t *w);
/* The task id this process's puts are numbered from (tag, zero counter):
 * object_id_for_put(&t, i). Before id_set_owner the tag part is zero. */
task_id_t task_id_for_puts(job_id_t job);

/* A fresh task id for a normal task (actor part = nil actor of the job) or an
 * actor task (actor part = the actor). */
task_id_t task_id_random(job_id_t job);
task_id_t task_id_for_actor(const actor_id_t *actor);
/* The id of the driver's "task": deterministic per job, unique part zero. */
task_id_t task_id_for_driver(job_id_t job);
job_id_t task_id_job(const task_id_t *t);
actor_id_t task_id_actor(const task_id_t *t);

/* Object ids: return i (1-based) of a task, or put number i of a task. */
object_id_t object_id_for_return(const task_id_t *t, uint32_t index);
object_id_t object_id_for_put(const task_id_t *t, uint32_t index);
task_id_t object_id_task(const object_id_t *o);
uint32_t object_id_index(const object_id_t *o); /* without the put flag */
bool object_id_is_put(const object_id_t *o);

bool id_is_nil(const void *id, size_t n);
/* 64-bit hash of an id (ids are random, so a fold of their bytes is enough). */
uint64_t id_hash(const void *id, size_t n);

#endif
