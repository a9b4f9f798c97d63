/*
 * config.h -- every tunable of rayc, in one X-macro table.
 *
 * A knob is filled, in order, from its default, the environment variable
 * RAYC_<NAME> (upper case), and the command-line flag --<name> (underscores
 * may be written as dashes). Each daemon keeps its own rayc_config and passes
 * it explicitly; there is no global configuration.
 *
 * Types: INT (int64), DBL (double), SIZE (bytes; accepts K/M/G suffixes,
 * binary), STR (owned copy, "" when unset), BOOL (0/1/true/false).
 */
#ifndef RAYC_CONFIG_H
#define RAYC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* clang-format off */
/* X(type, name, default, help) */
#define CONFIG_KNOBS(X)                                                                      \
    /* logging */                                                                            \
    X(STR, log_level, "info", "debug, info, warn or error")                                  \
    X(STR, log_file, "", "log file; empty: <session>/logs/<daemon>.out, or stderr")          \
    /* wire */                                                                               \
    X(SIZE, max_frame_bytes, 64 << 20, "largest frame a peer may send; larger is refused")   \
    /* cluster layout */                                                                     \
    X(STR, session_dir, "", "session directory (sockets/, logs/, token, pid files)")         \
    X(STR, node_ip_address, "127.0.0.1", "IP address this node's daemons bind to")           \
    X(INT, port, 6379, "GCS TCP port (head)")                                                \
    X(STR, gcs_address, "", "HOST:PORT of the GCS (raylet)")                                 \
    X(STR, token, "", "cluster token; proves membership to TCP peers")                       \
    X(STR, token_file, "", "file holding the cluster token")                                 \
    X(BOOL, head, 0, "this raylet runs on the head node")                                    \
    /* redis (GCS storage) */                                                                \
    X(STR, redis_socket, "", "Unix socket of the GCS's Redis")                               \
    X(STR, redis_address, "", "HOST:PORT of an external Redis instead of the socket")        \
    X(STR, redis_password, "", "Redis password")                                             \
    X(STR, redis_password_file, "", "file holding the Redis password")                       \
    X(STR, storage, "redis", "GCS storage: redis or memory (no persistence)")                \
    /* health */                                                                             \
    X(INT, heartbeat_interval_ms, 1000, "raylet -> GCS heartbeat period")                    \
    X(INT, health_timeout_ms, 10000, "a node silent this long is marked DEAD")              \
    X(INT, gcs_reconnect_max_ms, 2000, "cap of the raylet's reconnect back-off")             \
    X(INT, gcs_reconnect_timeout_ms, 600000, "raylet exits after this long without a GCS")   \
    X(INT, connect_timeout_ms, 5000, "first connection to the GCS must succeed by then")     \
    /* task events (issue 15) */                                                             \
    X(INT, task_events_report_ms, 1000, "drivers/workers send task events this often; 0: off") \
    X(INT, task_events_buffer_max, 100000, "task state changes a process buffers between sends") \
    X(INT, task_events_max_per_job, 10000, "task attempts the GCS keeps per job, oldest out")  \
    X(INT, task_events_max_total, 100000, "task attempts the GCS keeps over all jobs")        \
    X(BOOL, task_events_persist, 1, "the GCS keeps its task table in Redis across restarts")  \
    /* node resources */                                                                     \
    X(DBL, num_cpus, -1, "CPUs this node offers; -1: all cores")                             \
    X(DBL, num_gpus, 0, "GPUs this node offers")                                             \
    X(STR, resources, "", "custom resources: name=amount,...")                               \
    X(SIZE, memory, 0, "memory resource in bytes; 0: 70% of RAM")                            \
    /* object store */                                                                       \
    X(SIZE, object_store_memory, 0, "plasma arena size; 0: 30% of RAM")                      \
    X(BOOL, prefault_store, 1, "touch every arena page at start (avoids first-touch faults)") \
    X(SIZE, inline_object_max, 100 << 10, "objects up to this size stay in owner memory")    \
    X(SIZE, put_slab_bytes, 4 << 20, "arena a client reserves for puts without round trips; 0: off") \
    X(INT, store_full_wait_ms, 3000, "a create on a full store waits this long, then fails") \
    X(STR, spill_dir, "", "where objects spill; empty: <session>/spill")                     \
    X(STR, spill_hold_file, "", "testing: no spill I/O starts while this file exists (a stalled disk)") \
    X(INT, object_directory_batch_ms, 10, "object location updates are batched this long")   \
    X(INT, object_transfer_stall_ms, 30000, "a pull's source silent this long is dropped")    \
    /* workers */                                                                            \
    X(INT, max_workers, 0, "most worker processes per node; 0: 4 x CPUs + 16")               \
    X(INT, idle_worker_timeout_ms, 10000, "idle workers beyond num_cpus exit after this")     \
    X(BOOL, actor_direct_reads, 1, "a thread in rayc_get reads its actor's connection itself") \
    X(BOOL, worker_zygote, 1, "fork workers from a pre-loaded template (rayc_worker --zygote)") \
    X(INT, max_tasks_in_flight_per_worker, 8, "tasks pipelined to one leased worker")          \
    X(BOOL, direct_task_path, 1, "owners lease workers and push tasks to them (docs/tasks.md)") \
    X(INT, direct_lease_idle_ms, 10, "an owner gives back a lease idle this long")         \
    X(INT, direct_tasks_in_flight, 128, "tasks an owner pipelines to a leased worker turning over short ones") \
    X(INT, memory_monitor_refresh_ms, 250, "memory monitor period; 0: off")                  \
    X(DBL, memory_usage_threshold, 0.95, "fraction of node memory at which a worker is killed") \
    /* raylet networking */                                                                  \
    X(INT, raylet_port, 0, "raylet TCP port for other raylets; 0: any free port")           \
    X(INT, metrics_port, -1, "raylet Prometheus /metrics port (token needed); -1: none, 0: any")
/* clang-format on */

enum { CONFIG_STR, CONFIG_INT, CONFIG_DBL, CONFIG_SIZE, CONFIG_BOOL };

#define CONFIG__CTYPE_STR  char *
#define CONFIG__CTYPE_INT  int64_t
#define CONFIG__CTYPE_DBL  double
#define CONFIG__CTYPE_SIZE uint64_t
#define CONFIG__CTYPE_BOOL bool

typedef struct {
#define CONFIG__FIELD(type, name, def, help) CONFIG__CTYPE_##type name;
    CONFIG_KNOBS(CONFIG__FIELD)
#undef CONFIG__FIELD
} rayc_config;

/* Fill every knob with its default. Strings are heap copies: config_free(). */
void config_defaults(rayc_config *c);
/* Apply RAYC_<NAME> environment variables. Returns 0, or -1 with err set. */
int config_from_env(rayc_config *c, char *err, size_t errlen);
/* Set one knob by name (dashes or underscores). Returns 0, or -1 with err set
 * for an unknown name or a malformed value; the knob is unchanged then. */
int config_set(rayc_config *c, const char *name, const char *value, char *err, size_t errlen);
/* Parse --name=value / --name value / --flag (BOOL) arguments. Arguments that
 * are not flags are an error. Returns 0, or -1 with err set. */
int config_parse_args(rayc_config *c, int argc, char **argv, char *err, size_t errlen);
/* Print every knob with its default and help. */
void config_usage(FILE *f);
void config_free(rayc_config *c);

/* "64M", "1G", "1048576", "2KiB" -> bytes. Returns 0, or -1 if malformed. */
int config_parse_size(const char *s, uint64_t *out);

#endif
