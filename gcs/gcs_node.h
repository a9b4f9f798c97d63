/*
 * gcs_node.h -- the node table: the GCS's view of every raylet that ever
 * registered, and the node state machine. Pure state: no sockets, no
 * storage, no clock (callers pass the time), so unit tests drive it.
 *
 * States: ALIVE -> DEAD, never back. A node becomes DEAD when it misses
 * heartbeats for timeout_ms (gcs_node_check_health) or is drained
 * (gcs_node_drain, immediate). A DEAD node that heartbeats or registers
 * again is refused with RAYC_EINVAL "node was marked dead", so its raylet
 * exits instead of running as a ghost.
 *
 * Times: now_ms is the caller's monotonic clock (health checks), wall_ms the
 * wall clock written into NodeInfo (start/end/last heartbeat, for humans;
 * check_health reads the wall clock itself for end_time_ms).
 *
 * Ownership: the table owns its NodeInfo records; pointers it hands out are
 * valid until the next call that modifies the table or gcs_node_table_free.
 * Thread-safety: none; the table belongs to the GCS loop thread.
 */
#ifndef RAYC_GCS_NODE_H
#define RAYC_GCS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "rayc.pb-c.h"

#define GCS_NODE_DEAD_MSG  "node was marked dead"
#define GCS_NODE_WAITS_MAX 8   /* NodeInfo.waits lines kept from a heartbeat */
#define GCS_NODE_WAIT_LEN  255 /* ... each at most this long (a longer one ends the list) */

typedef struct gcs_node_table gcs_node_table;

/* Called for each node check_health marks DEAD (record already updated). */
typedef void (*gcs_node_dead_fn)(void *arg, const Rpc__NodeInfo *node);

/* NULL on allocation failure. */
gcs_node_table *gcs_node_table_new(void);
void gcs_node_table_free(gcs_node_table *t); /* accepts NULL */

/* Register info->node_id (28 bytes), or update the record of an ALIVE node
 * that registers again (re-register keeps start_time_ms). The node becomes
 * ALIVE with its heartbeat clock at now_ms. *out (may be NULL) gets the
 * record, *is_new (may be NULL) whether the id was unknown.
 * Returns RAYC_OK, RAYC_EINVAL (bad id, or GCS_NODE_DEAD_MSG for a node
 * marked dead), or RAYC_ENOMEM (table unchanged). */
int gcs_node_register(gcs_node_table *t, const Rpc__NodeInfo *info, uint64_t now_ms,
                      uint64_t wall_ms, const Rpc__NodeInfo **out, bool *is_new);

/* A heartbeat: refresh the node's load and its heartbeat clock.
 * Returns RAYC_OK, RAYC_ENOTFOUND (unknown node: register again),
 * RAYC_EINVAL (GCS_NODE_DEAD_MSG), or RAYC_ENOMEM (load not updated). */
int gcs_node_heartbeat(gcs_node_table *t, const Rpc__HeartbeatRequest *hb, uint64_t now_ms,
                       uint64_t wall_ms);

/* Mark a node DEAD now with reason (drain). *out gets the record and
 * *changed whether it was ALIVE (a second drain is a no-op). Returns RAYC_OK
 * or RAYC_ENOTFOUND. */
int gcs_node_drain(gcs_node_table *t, const uint8_t *node_id, size_t len, const char *reason,
                   uint64_t wall_ms, const Rpc__NodeInfo **out, bool *changed);

/* Mark DEAD every ALIVE node whose last heartbeat is more than timeout_ms
 * before now_ms, calling cb (may be NULL) for each. Returns how many died. */
size_t gcs_node_check_health(gcs_node_table *t, uint64_t now_ms, uint64_t timeout_ms,
                             gcs_node_dead_fn cb, void *arg);

/* Load a record from storage (packed NodeInfo). An ALIVE node gets its
 * heartbeat clock reset to now_ms, so a live raylet has a full timeout to
 * re-register after a GCS restart. Returns RAYC_OK, RAYC_EINVAL (does not
 * unpack, bad id) or RAYC_ENOMEM. */
int gcs_node_load(gcs_node_table *t, const uint8_t *packed, size_t len, uint64_t now_ms);

/* The record of a node, or NULL. */
const Rpc__NodeInfo *gcs_node_get(const gcs_node_table *t, const uint8_t *node_id, size_t len);
bool gcs_node_is_alive(const gcs_node_table *t, const uint8_t *node_id, size_t len);
size_t gcs_node_count(const gcs_node_table *t);
size_t gcs_node_alive_count(const gcs_node_table *t);
/* Fill out[] with up to cap records (ALIVE first, then by start time).
 * Returns the number written. */
size_t gcs_node_list(const gcs_node_table *t, const Rpc__NodeInfo **out, size_t cap);

/* The cluster view's version: bumped by every change raylets see in it (a
 * node registered or died; its address, total or available resources
 * changed), not by store statistics. Starts at 0 in each table. */
uint64_t gcs_node_view_version(const gcs_node_table *t);
/* Like gcs_node_list, only the nodes changed after view version `since`
 * (0: all): a heartbeat reply carries this delta. */
size_t gcs_node_list_since(const gcs_node_table *t, uint64_t since, const Rpc__NodeInfo **out,
                           size_t cap);

#endif
