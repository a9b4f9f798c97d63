/*
 * core.h -- librayc's process-wide state ("core worker", as in Ray): the
 * connections to the local raylet and the GCS, the mapped object-store
 * arena, the job and the reference table. Drivers and rayc_worker share it.
 *
 * A client library serves one process, so this state is one static struct;
 * every public call takes core.mu around the parts it touches and never holds
 * it while waiting for a reply.
 */
#ifndef RAYC_CORE_H
#define RAYC_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "cw_conn.h"
#include "ids.h"
#include "ref_table.h"

#define CORE_PATH_MAX 1024

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t sealed_cv; /* an inline put_alloc object was sealed */
    bool initialized;
    cw_conn *raylet;
    cw_conn *gcs;
    uint8_t *arena;
    size_t arena_size;
    node_id_t node_id;
    char node_hex[ID_HEX_MAX];
    worker_id_t worker_id;
    job_id_t job;
    task_id_t task; /* the task whose puts we number (the driver's, or the running task) */
    uint32_t put_index;
    ref_table refs;
    size_t inline_max;
    size_t cache_max_objects, cache_max_bytes;
    /* Put slab (core_objects.c): [slab_next, slab_end) of the arena is ours
     * to write small store objects into with no round trip. */
    uint64_t slab_next, slab_end;
    size_t slab_want;      /* bytes to ask for (put_slab_bytes); 0: no slabs */
    size_t slab_size;      /* size of the last slab granted */
    bool slab_busy;        /* a thread is asking for a new slab */
    uint32_t slab_backoff; /* puts before asking again after a refusal */
    char session_dir[CORE_PATH_MAX];
    char raylet_socket[CORE_PATH_MAX];
    char gcs_host[256];
    int gcs_port;
    char token[AUTH_TOKEN_LEN + 64];
    struct embedded *embedded; /* the private cluster rayc_init started, if any */

    /* tasks this process owns (core_tasks.c) */
    struct otask **otasks;
    size_t n_otask_buckets, n_otasks;
    struct otask *deferred; /* waiting for arguments still being computed */
    int log_to_driver;
    bool warned;

    /* worker mode (rayc_worker): pushed tasks and blocking */
    bool is_worker;
    bool in_task;
    bool blocked;
    /* Set by rayc_worker: takes PushTask/BindJob frames (returns 1 when it
     * keeps the message), and lists queued, unstarted tasks to hand back when
     * the running task blocks. */
    int (*worker_frame)(uint16_t type, ProtobufCMessage *msg);
    size_t (*worker_give_back)(ProtobufCBinaryData *ids, size_t cap);
} core_t;

extern core_t rayc__core;

/* The calling API function's guard: RAYC_ENOTINIT unless rayc_init ran. */
int core__check_init(void);
/* Release the store pins of cached entries until the cache is within its
 * bounds (all of them when everything is true). Called with core.mu held. */
void core__trim_pin_cache(bool everything);
/* Drop one view/ref of an entry and free what is no longer used. mu held. */
void core__maybe_finalize(ref_entry *e);
/* The raylet pinned e's store object for us, at data (NULL: an offset
 * outside the arena, so the pin is given back). mu held. */
void core__took_pin(ref_entry *e, void *data);

/* Frames nobody waits for: task completions, worker output, notices, pushed
 * tasks (worker mode). The cw_conn async handler of the raylet connection. */
int core__on_async(void *arg, uint16_t type, ProtobufCMessage *msg);
/* Worker mode: tell the raylet the running task blocks / goes on. mu NOT held. */
void core__block(void);
void core__unblock(void);
/* Create a store object with a given id (mu NOT held): 0 with its arena
 * offset, or a code with rayc_last_error set. Then write and seal it. */
int core__store_create(const object_id_t *id, size_t size, uint64_t *offset);
void core__send_seal(const object_id_t *id);
/* Tell the store the owner is done with a store object (batched); with
 * release_pins our own pin on it goes too. mu held. */
void core__send_delete(const object_id_t *id, bool release_pins);
/* The last use of an owned result is gone: drop its task's lineage when no
 * other result of that task is in use. mu held. */
void core__lineage_release(const object_id_t *oid);
/* Tables of core_tasks.c. */
int core__tasks_init(void);
void core__tasks_destroy(void);
/* Worker mode: connect to the raylet that started us (core_init.c). */
int core__init_worker(const char *socket_path, const char *worker_id_hex);
/* The worker's main loop (task_exec.c). Returns when the raylet is gone. */
int core__worker_run(void);

#endif
