/*
 * frame_router.h -- routes the frames nobody waits for (task completions,
 * pushed tasks, notices, worker output, late replies) from the raylet
 * connection to the component that handles their type: a small table of
 * handlers indexed by message type, registered at start-up.
 *
 *   router_add(&r, MSG_TASK_DONE, tsub_on_task_done, submitter);
 *   cw_conn_new(b, router_dispatch, &r);
 *
 * A type with no handler is dropped (freed by the connection). An actor
 * submitter and executor register their own types beside the task ones.
 *
 * Thread-safety: router_add before the connection is read (start-up);
 * router_dispatch then runs on whichever thread reads the connection and
 * only reads the table.
 */
#ifndef RAYC_FRAME_ROUTER_H
#define RAYC_FRAME_ROUTER_H

#include <stdint.h>

#include "msg.h"

#define ROUTER_MAX_TYPE 256 /* message types 0..255 can be routed */

/* Handle one frame. Return 1 to keep msg (the handler frees it later with
 * msg_free), 0 to have it freed after return (cw_async_fn's contract). */
typedef int (*router_fn)(void *arg, uint16_t type, ProtobufCMessage *msg);

typedef struct frame_router {
    struct {
        router_fn fn;
        void *arg;
    } routes[ROUTER_MAX_TYPE];
} frame_router;

/* Empty table. */
void router_init(frame_router *r);
/* Route frames of type to fn(arg, ...). 0, or -1 (and nothing changes) if
 * type is out of range or already routed. */
int router_add(frame_router *r, uint16_t type, router_fn fn, void *arg);
/* The cw_async_fn of a connection: arg is the frame_router. */
int router_dispatch(void *arg, uint16_t type, ProtobufCMessage *msg);

#endif
