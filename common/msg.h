/*
 * msg.h -- the table of frame types and the protobuf-c messages they carry.
 *
 * MSG_TYPES is the one place a message gets its wire number. A frame whose
 * type is not here, or whose payload does not unpack as that type, is a
 * protocol error (the connection is closed; the daemon keeps running).
 */
#ifndef RAYC_MSG_H
#define RAYC_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "rayc.pb-c.h"

/* clang-format off */
/* X(number, NAME, protobuf-c lower-case name) */
#define MSG_TYPES(X)                                                 \
    X(1, HELLO, hello)                                               \
    X(2, HANDSHAKE, handshake)                                       \
    X(3, HANDSHAKE_REPLY, handshake_reply)                           \
    X(10, REGISTER_NODE_REQ, register_node_request)                  \
    X(11, REGISTER_NODE_REPLY, register_node_reply)                  \
    X(12, HEARTBEAT_REQ, heartbeat_request)                          \
    X(13, HEARTBEAT_REPLY, heartbeat_reply)                          \
    X(14, LIST_NODES_REQ, list_nodes_request)                        \
    X(15, LIST_NODES_REPLY, list_nodes_reply)                        \
    X(16, DRAIN_NODE_REQ, drain_node_request)                        \
    X(17, DRAIN_NODE_REPLY, drain_node_reply)                        \
    X(20, ADD_JOB_REQ, add_job_request)                              \
    X(21, ADD_JOB_REPLY, add_job_reply)                              \
    X(22, FINISH_JOB_REQ, finish_job_request)                        \
    X(23, FINISH_JOB_REPLY, finish_job_reply)                        \
    X(24, LIST_JOBS_REQ, list_jobs_request)                          \
    X(25, LIST_JOBS_REPLY, list_jobs_reply)                          \
    X(26, TASK_EVENTS, task_event_batch)                             \
    X(30, KV_PUT_REQ, kv_put_request)                                \
    X(31, KV_PUT_REPLY, kv_put_reply)                                \
    X(32, KV_GET_REQ, kv_get_request)                                \
    X(33, KV_GET_REPLY, kv_get_reply)                                \
    X(34, KV_DEL_REQ, kv_del_request)                                \
    X(35, KV_DEL_REPLY, kv_del_reply)                                \
    X(36, KV_EXISTS_REQ, kv_exists_request)                          \
    X(37, KV_EXISTS_REPLY, kv_exists_reply)                          \
    X(40, SUBSCRIBE_REQ, subscribe_request)                          \
    X(41, SUBSCRIBE_REPLY, subscribe_reply)                          \
    X(42, PUB_MESSAGE, pub_message)                                  \
    X(50, OBJECT_LOCATION_UPDATE, object_location_update)            \
    X(51, GET_OBJECT_LOCATIONS_REQ, get_object_locations_request)    \
    X(52, GET_OBJECT_LOCATIONS_REPLY, get_object_locations_reply)    \
    X(60, CREATE_OBJECT_REQ, create_object_request)                  \
    X(61, CREATE_OBJECT_REPLY, create_object_reply)                  \
    X(62, SEAL_OBJECT, seal_object)                                  \
    X(63, GET_OBJECTS_REQ, get_objects_request)                      \
    X(64, GET_OBJECTS_REPLY, get_objects_reply)                      \
    X(65, WAIT_OBJECTS_REQ, wait_objects_request)                    \
    X(66, WAIT_OBJECTS_REPLY, wait_objects_reply)                    \
    X(67, RELEASE_OBJECTS, release_objects)                          \
    X(68, DELETE_OBJECTS, delete_objects)                            \
    X(69, STORE_STATS_REQ, store_stats_request)                      \
    X(70, STORE_STATS_REPLY, store_stats_reply)                      \
    X(80, SUBMIT_TASK, submit_task)                                  \
    X(81, PUSH_TASK, push_task)                                      \
    X(82, TASK_DONE, task_done)                                      \
    X(83, CANCEL_TASK, cancel_task)                                  \
    X(84, WORKER_BLOCKED, worker_blocked)                            \
    X(85, WORKER_UNBLOCKED, worker_unblocked)                        \
    X(86, JOB_CONFIG, job_config)                                    \
    X(87, BIND_JOB, bind_job)                                        \
    X(88, CLUSTER_NOTICE, cluster_notice)                            \
    X(89, WORKER_OUTPUT, worker_output)                              \
    X(90, FORWARD_TASK, forward_task)                                \
    X(91, PULL_OBJECTS, pull_objects)                                \
    X(92, OBJECT_LOST, object_lost)                                  \
    X(93, NODE_DIED, node_died)                                      \
    X(94, PULL_REQUEST, pull_request)                                \
    X(95, PULL_REPLY, pull_reply)                                    \
    X(96, OBJECT_CHUNK, chunk_header)                                \
    X(97, SLAB_REQ, slab_request)                                    \
    X(98, SLAB_REPLY, slab_reply)                                    \
    X(99, SLAB_OBJECT, slab_object)                                  \
    X(100, REGISTER_ACTOR_REQ, register_actor_request)               \
    X(101, REGISTER_ACTOR_REPLY, actor_reply)                        \
    X(102, GET_ACTOR_REQ, get_actor_request)                         \
    X(103, GET_ACTOR_REPLY, actor_reply)                             \
    X(104, KILL_ACTOR_REQ, kill_actor_request)                       \
    X(105, KILL_ACTOR_REPLY, actor_reply)                            \
    X(106, LIST_ACTORS_REQ, list_actors_request)                     \
    X(107, LIST_ACTORS_REPLY, list_actors_reply)                     \
    X(120, CREATE_ACTOR, create_actor)                               \
    X(121, ACTOR_CREATED, actor_created)                             \
    X(122, ACTOR_DIED, actor_died)                                   \
    X(123, KILL_ACTOR_WORKER, kill_actor_worker)                     \
    X(124, OBJECT_OWNER, object_owner)                               \
    X(125, ACTOR_EXIT, actor_exit)                                   \
    X(126, STEAL_TASKS, steal_tasks)                                 \
    X(127, TASKS_GIVEN_BACK, tasks_given_back)                       \
    X(130, STREAM_ITEM, stream_item)                                 \
    X(131, STREAM_ACK, stream_ack)                                   \
    X(140, CREATE_PG_REQ, create_pg_request)                         \
    X(141, CREATE_PG_REPLY, pg_reply)                                \
    X(142, GET_PG_REQ, get_pg_request)                               \
    X(143, GET_PG_REPLY, pg_reply)                                   \
    X(144, REMOVE_PG_REQ, remove_pg_request)                         \
    X(145, REMOVE_PG_REPLY, pg_reply)                                \
    X(146, LIST_PGS_REQ, list_pgs_request)                           \
    X(147, LIST_PGS_REPLY, list_pgs_reply)                           \
    X(148, PREPARE_BUNDLES, prepare_bundles)                         \
    X(149, BUNDLES_PREPARED, bundles_prepared)                       \
    X(150, COMMIT_BUNDLES, commit_bundles)                           \
    X(151, RETURN_BUNDLES, return_bundles)                           \
    X(160, LOG_REQUEST, log_request)                                 \
    X(161, LOG_REPLY, log_reply)                                     \
    X(170, OWNER_REQUEST, owner_request)                             \
    X(171, OWNER_REPLY, owner_reply)
/* clang-format on */

enum msg_type {
#define MSG__ENUM(num, NAME, lower) MSG_##NAME = num,
    MSG_TYPES(MSG__ENUM)
#undef MSG__ENUM
};

#define MSG_PROTOCOL_VERSION 1

/* Streaming generators' flow control (StreamItem, StreamAck): an item counts
 * its inline bytes plus a frame's overhead; a worker waits while more than
 * STREAM_WINDOW_BYTES of its items are on their way to the owner (sent, not
 * acknowledged as received), so an owner that does not read for a while
 * holds up the generator instead of filling the raylet's buffers. The owner
 * acknowledges every quarter window. */
#define STREAM_WINDOW_BYTES ((uint64_t)32 << 20)
#define STREAM_ITEM_COST(m) ((uint64_t)(m)->data.len + 64)

/* Object ids one GET_OBJECTS_REQ, WAIT_OBJECTS_REQ or PULL_OBJECTS of a
 * local client may name: the raylet refuses a larger one (each id it waits
 * for costs it a few hundred bytes), and librayc asks in pieces this big. */
#define MSG_STORE_MAX_IDS 65536

/* OBJECT_CHUNK frames are not a plain message: their payload is a u32
 * big-endian header length, a packed ChunkHeader, then raw object bytes.
 * msg_unpack() of such a payload unpacks only the header; use
 * msg_chunk_split() to find the bytes. */
int msg_chunk_split(const uint8_t *payload, size_t len, Rpc__ChunkHeader **hdr,
                    const uint8_t **data, size_t *datalen);

/* Descriptor of a frame type, or NULL if the type is unknown. */
const ProtobufCMessageDescriptor *msg_descriptor(uint16_t type);
/* "REGISTER_NODE_REQ", or "UNKNOWN". */
const char *msg_name(uint16_t type);
/* Heap a payload of `len` bytes may take when unpacked. Real messages take
 * 1-4x their wire size; a payload of empty repeated sub-messages would take
 * ~40x, so it is refused instead of amplifying a frame into gigabytes. */
#define MSG_DECODE_BUDGET(len) (16 * (size_t)(len) + (64u << 10))

/* Unpack a payload. NULL when the type is unknown, the bytes do not unpack,
 * or unpacking would take more than MSG_DECODE_BUDGET(len) bytes of heap.
 * Free with msg_free(). */
ProtobufCMessage *msg_unpack(uint16_t type, const uint8_t *data, size_t len);
void msg_free(ProtobufCMessage *m);
/* Bytes of the whole frame (header + packed message). */
size_t msg_frame_size(const ProtobufCMessage *m);
/* Write header + packed message into out (msg_frame_size bytes). Returns the
 * frame size. CHECKs that m's descriptor is the one registered for type. */
size_t msg_encode(uint16_t type, const ProtobufCMessage *m, uint8_t *out);

/* Status helpers: a Status sub-message in a reply. */
void msg_status_set(Rpc__Status *st, int code, const char *message);

#endif
