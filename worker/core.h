/*
 * core.h -- librayc's process-wide state ("core worker", as in Ray): the
 * connections to the local raylet and the GCS, the mapped object-store
 * arena, the job, and the components that work over them (the reference
 * table, the store client, the task submitter, the frame router). Drivers
 * and rayc_worker share it.
 *
 * A client library serves one process, so this state is one static struct,
 * read by the API entry points (objects.c, tasks.c, core.c). The components
 * do not reach into it: core.c wires each one with what it needs.
 * Every public call takes core.mu around the parts it touches and never
 * holds it while waiting for a reply.
 */
#ifndef RAYC_CORE_H
#define RAYC_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "cw_conn.h"
#include "errors.h"
#include "frame_router.h"
#include "ids.h"
#include "reference_table.h"
#include "store_client.h"
#include "task_events.h"
#include "task_submitter.h"

#define CORE_PATH_MAX 1024
#define CORE_MAX_CODE 8 /* code libraries a driver remembers (see code_paths) */

/* How a blocking call (get, wait) tells the executor of a worker that the
 * running task waits, so the raylet lends its CPU to other tasks. All NULL
 * in drivers. */
typedef struct core_blocker {
    bool (*running)(void *arg); /* a task runs and has not blocked yet */
    void (*block)(void *arg);
    void (*unblock)(void *arg);
    void *arg;
} core_blocker;

typedef struct {
    pthread_mutex_t mu; /* refs, the submitter's tables, put numbering */
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
    size_t inline_max;
    bool direct_reads; /* knob actor_direct_reads (core__wait_results) */
    bool direct_tasks; /* knob direct_task_path (direct_tasks.h) */
    /* Threads waiting for results on the raylet connection (rayc_get,
     * rayc_wait, rayc_stream_next), counted before they first look: actor
     * and lease readers wake that connection only when someone waits. */
    int result_waiters;
    int lease_idle_ms; /* knob direct_lease_idle_ms */
    int in_flight;     /* knob direct_tasks_in_flight */
    size_t put_slab_bytes;
    tev_opts events_opts; /* task events (issue 15) */
    char session_dir[CORE_PATH_MAX];
    char raylet_socket[CORE_PATH_MAX];
    char gcs_host[256];
    int gcs_port;
    char token[AUTH_TOKEN_LEN + 64];
    struct embedded *embedded; /* the private cluster rayc_init started, if any */
    int log_to_driver;
    bool is_worker;

    /* components */
    ref_table refs;
    struct dedup_table *dedup; /* large by-value arguments in the store (arg_dedup.h) */
    store_client *store;
    task_submitter *tasks;
    struct actor_submitter *actors;                /* made on first use (core__actors) */
    struct dtx *direct;                            /* the direct task path (NULL: off) */
    char namespace_[128];                          /* named actors: the job's namespace */
    char code_paths[CORE_MAX_CODE][CORE_PATH_MAX]; /* a driver's code libraries (rayc_init) */
    void *code_handles[CORE_MAX_CODE];             /* ... loaded, for name checks */
    size_t ncode;
    bool code_unchecked; /* a library this process could not load: no name checks */
    tev_buffer *events;  /* task events: NULL when off */
    frame_router router; /* frames from the raylet nobody waits for */
    pthread_t owner_svc; /* drivers: reads the raylet while no call does (borrow.h) */
    bool has_owner_svc;
    int owner_svc_stop;
    core_blocker blocker;
} core_t;

extern core_t rayc__core;

/* The calling API function's guard: RAYC_ENOTINIT unless rayc_init ran. */
static inline int core__check_init(void)
{
    if (!__atomic_load_n(&rayc__core.initialized, __ATOMIC_ACQUIRE))
        return rayc__error(RAYC_ENOTINIT, "rayc_init has not been called");
    return 0;
}

/* Worker mode: a task runs and may block (see core_blocker). mu NOT held. */
static inline bool core__task_running(void)
{
    core_blocker *b = &rayc__core.blocker;
    return b->running && b->running(b->arg);
}
static inline void core__block(void)
{
    core_blocker *b = &rayc__core.blocker;
    if (b->block)
        b->block(b->arg);
}
static inline void core__unblock(void)
{
    core_blocker *b = &rayc__core.blocker;
    if (b->unblock)
        b->unblock(b->arg);
}

/* A request to the GCS (req_id set here), connecting again when the GCS
 * restarted; retries until timeout_ms while it is away. 0 with *reply, or
 * RAYC_ECONN / RAYC_ETIMEDOUT. */
int core__gcs_call(uint16_t type, ProtobufCMessage *req, uint64_t *req_id, uint16_t reply_type,
                   ProtobufCMessage **reply, int timeout_ms);

/* A driver: does one of its code libraries export prefix+name? (true when
 * it cannot tell: a worker, or no libraries.) */
bool core__has_symbol(const char *prefix, const char *name);

/* The actor submitter, made on the first actor call (mu NOT held). NULL
 * with rayc_last_error set when out of memory. */
struct actor_submitter *core__actors(void);

/* Submit a task or an actor call (rq->actor set) with its arguments
 * (tasks.c), the one path of rayc_submit, rayc_submit_stream,
 * rayc_actor_call and rayc_actor_call_stream: values over inline_max go to
 * the store, once per distinct content while a task or call holds it
 * (arg_dedup.h), as refs the task is handed. With stream NULL the return
 * refs go to returns[0..rq->num_returns), else the stream to *stream.
 * 0 on success; on failure a code with rayc_last_error set, and nothing
 * stays staged, handed out or open. mu NOT held. */
int core__submit(const tsub_request *rq, const rayc_arg *args, size_t nargs, rayc_ref *returns,
                 rayc_stream **stream);

/* rayc_get's wait for results of running tasks or actor calls (core.c),
 * mu held on entry and exit: reads an actor's connection directly when all
 * the missing results are its calls, else pumps the raylet connection, for
 * up to wait_ms. *direct_off: the caller's state across waits, 0 at first.
 * 0, or RAYC_ECONN when the raylet connection is lost. */
int core__wait_results(const rayc_ref *refs, size_t n, const rayc_value *out, int64_t wait_ms,
                       int *direct_off);

/* Worker mode: connect to the raylet that started us (core.c). The caller
 * then starts its executor over rayc__core's connection and router. */
int core__init_worker(const char *socket_path, const char *worker_id_hex);

/* The direct task path's counts: tasks pushed to leased workers, tasks
 * that fell back to the raylet, leases asked for, leases granted, leases
 * connected over the worker's Unix socket (zeros when the path is off).
 * For tests and benchmarks: exported from librayc.so, though not part of
 * the API. */
__attribute__((visibility("default"))) void core__direct_counts(uint64_t out[5]);

#endif
