/* frame_router.c -- see frame_router.h. */
#include "frame_router.h"

#include <string.h>

void router_init(frame_router *r)
{
    memset(r, 0, sizeof(*r));
}

int router_add(frame_router *r, uint16_t type, router_fn fn, void *arg)
{
    if (type >= ROUTER_MAX_TYPE || fn == NULL || r->routes[type].fn != NULL)
        return -1;
    r->routes[type].fn = fn;
    r->routes[type].arg = arg;
    return 0;
}

int router_dispatch(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    frame_router *r = arg;
    if (type >= ROUTER_MAX_TYPE || r->routes[type].fn == NULL)
        return 0;
    return r->routes[type].fn(r->routes[type].arg, type, msg);
}
