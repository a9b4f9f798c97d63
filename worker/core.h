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
    char session_dir[CORE_PATH_MAX];
    char raylet_socket[CORE_PATH_MAX];
    char gcs_host[256];
    int gcs_port;
    char token[AUTH_TOKEN_LEN + 64];
    struct embedded *embedded; /* the private cluster rayc_init started, if any */
} core_t;

extern core_t rayc__core;

/* The calling API function's guard: RAYC_ENOTINIT unless rayc_init ran. */
int core__check_init(void);
/* Release the store pins of cached entries until the cache is within its
 * bounds (all of them when everything is true). Called with core.mu held. */
void core__trim_pin_cache(bool everything);
/* Drop one view/ref of an entry and free what is no longer used. mu held. */
void core__maybe_finalize(ref_entry *e);

#endif
