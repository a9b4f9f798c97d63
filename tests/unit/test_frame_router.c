/* test_frame_router.c -- librayc's routing of unsolicited frames by type
 * (worker/frame_router.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "msg.h"
#include "../../worker/frame_router.h"

static int calls;
static uint16_t last_type;
static void *last_arg;

static int handler(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    (void)msg;
    calls++;
    last_type = type;
    last_arg = arg;
    return 1;
}

Test(frame_router, routes_by_type_and_drops_the_rest)
{
    frame_router r;
    router_init(&r);
    int a, b;
    cr_assert_eq(router_add(&r, MSG_TASK_DONE, handler, &a), 0);
    cr_assert_eq(router_add(&r, MSG_PUSH_TASK, handler, &b), 0);
    Rpc__TaskDone done = RPC__TASK_DONE__INIT;
    cr_assert_eq(router_dispatch(&r, MSG_TASK_DONE, &done.base), 1, "the handler's answer");
    cr_assert_eq(calls, 1);
    cr_assert_eq(last_type, MSG_TASK_DONE);
    cr_assert_eq(last_arg, &a);
    cr_assert_eq(router_dispatch(&r, MSG_PUSH_TASK, &done.base), 1);
    cr_assert_eq(last_arg, &b);
    cr_assert_eq(router_dispatch(&r, MSG_NODE_DIED, &done.base), 0, "unrouted: freed");
    cr_assert_eq(router_dispatch(&r, 60000, &done.base), 0, "out of range: freed");
    cr_assert_eq(calls, 2);
}

Test(frame_router, a_type_has_one_handler)
{
    frame_router r;
    router_init(&r);
    cr_assert_eq(router_add(&r, MSG_TASK_DONE, handler, NULL), 0);
    cr_assert_eq(router_add(&r, MSG_TASK_DONE, handler, NULL), -1);
    cr_assert_eq(router_add(&r, ROUTER_MAX_TYPE, handler, NULL), -1);
    cr_assert_eq(router_add(&r, MSG_OBJECT_LOST, NULL, NULL), -1);
}
