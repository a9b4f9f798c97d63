/*
 * plasma_request.c -- pending gets and waits of the plasma store, and settle():
 * the one place that answers requests and retries creates waiting for space.
 *
 * Re-entrancy: callbacks may call back into the store, so no callback runs
 * while a list is being walked: completed requests are queued and settle()
 * -- the last step of every entry point -- pops and answers them one at a
 * time. A nested settle() returns at once; the outer one finishes the work.
 * Runs in the raylet's single loop thread. See plasma_internal.h.
 */
#include "plasma_internal.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "util.h"

/* Unlink r from everything (objects, client, timer). The ready queue is
 * handled by the caller (r is popped from it or was never in it). */
void plasma__req_detach(plasma_store *s, plasma__req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        plasma__slot *sl = &r->slots[i];
        plasma__obj *o = sl->o;
        if (o == NULL)
            continue;
        if (sl->prev)
            sl->prev->next = sl->next;
        else
            o->waiters = sl->next;
        if (sl->next)
            sl->next->prev = sl->prev;
        o->nwaiters--;
        if (r->kind == REQ_GET)
            o->nget--;
        sl->o = NULL;
        plasma__obj_gc(s, o);
    }
    if (r->timer) {
        event_free(r->timer);
        r->timer = NULL;
    }
    if (r->cl) {
        r->cl->nwaiting -= r->n;
        if (r->cprev)
            r->cprev->cnext = r->cnext;
        else
            r->cl->reqs = r->cnext;
        if (r->cnext)
            r->cnext->cprev = r->cprev;
        r->cprev = r->cnext = NULL;
    }
    s->npending_reqs--;
}

/* Answer a request popped from the ready queue, if it is really done. */
static void finish_req(plasma_store *s, plasma__req *r)
{
    r->queued = false;
    int status = RAYC_OK;
    if (r->error)
        status = r->error;
    else if (!plasma__req_complete(r)) {
        if (!r->timed_out)
            return; /* became unready again before its turn */
        status = r->kind == REQ_GET ? RAYC_ETIMEDOUT : RAYC_OK;
    }
    plasma_client *cl = r->cl;
    if (r->kind == REQ_GET) {
        /* All or nothing: pin every object, or none. */
        size_t pinned = 0;
        if (status == RAYC_OK) {
            while (pinned < r->n && plasma__pin_add(s, cl, r->slots[pinned].o) == 0)
                pinned++;
            if (pinned < r->n) {
                while (pinned > 0) {
                    pinned--;
                    plasma__pin_drop(s, plasma__pin_find(r->slots[pinned].o, cl), 1);
                }
                status = RAYC_ENOMEM;
            }
        }
        for (size_t i = 0; i < r->n; i++) {
            plasma_view *v = &r->views[i];
            v->status = status;
            v->off = status == RAYC_OK ? r->slots[i].o->off : 0;
            v->size = status == RAYC_OK ? r->slots[i].o->size : 0;
        }
    } else {
        for (size_t i = 0; i < r->n; i++)
            r->flags[i] = r->slots[i].ready;
    }
    plasma__req_detach(s, r);
    if (r->kind == REQ_GET)
        r->cb.get(r->arg, r->tag, status, r->views, r->n);
    else
        r->cb.wait(r->arg, r->tag, status, r->flags, r->n);
    free(r);
}

static void on_req_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    plasma__req *r = arg;
    plasma_store *s = r->cl->s;
    r->timed_out = true;
    plasma__queue_req(s, r);
    plasma__settle(s);
}

/* Shared by plasma_get and plasma_wait: register r and answer it at once if
 * possible. */
static void start_req(plasma_store *s, plasma__req *r, const object_id_t *ids, int64_t timeout_ms)
{
    size_t i;
    for (i = 0; i < r->n; i++) {
        plasma__obj *o = plasma__obj_lookup_or_add(s, &ids[i]);
        if (o == NULL)
            break;
        plasma__slot *sl = &r->slots[i];
        if (r->kind == REQ_GET)
            r->views[i].id = ids[i];
        sl->r = r;
        sl->o = o;
        sl->prev = NULL;
        sl->next = o->waiters;
        if (o->waiters)
            o->waiters->prev = sl;
        o->waiters = sl;
        o->nwaiters++;
        if (r->kind == REQ_GET)
            o->nget++;
        sl->ready = plasma__slot_ready(sl);
        if (sl->ready)
            r->nready++;
    }
    r->cnext = r->cl->reqs;
    if (r->cl->reqs)
        r->cl->reqs->cprev = r;
    r->cl->reqs = r;
    r->cl->nwaiting += r->n;
    s->npending_reqs++;
    if (i < r->n) {
        r->error = RAYC_ENOMEM;
        plasma__queue_req(s, r);
        return;
    }
    if (r->kind == REQ_GET) {
        for (i = 0; i < r->n && !r->error; i++) {
            plasma__obj *o = r->slots[i].o;
            if (o->state != PLASMA_SPILLED || o->delete_pending || o->restore)
                continue;
            int rc = plasma__restore_one(s, o);
            if (rc == RAYC_ESTORE_FULL && timeout_ms != 0) {
                plasma__space *q = calloc(1, sizeof(*q));
                if (q == NULL) {
                    r->error = RAYC_ENOMEM;
                    break;
                }
                q->kind = SPACE_RESTORE;
                q->s = s;
                q->o = o;
                o->restore = q;
                q->prev = s->sq_tail;
                if (s->sq_tail)
                    s->sq_tail->next = q;
                else
                    s->sq_head = q;
                s->sq_tail = q;
            } else if (rc == RAYC_EIO || rc == RAYC_ENOMEM) {
                r->error = rc;
            }
        }
    }
    if (r->error || plasma__req_complete(r)) {
        plasma__queue_req(s, r);
    } else if (timeout_ms == 0) {
        r->timed_out = true;
        plasma__queue_req(s, r);
    } else if (timeout_ms > 0) {
        r->timer = evtimer_new(s->base, on_req_timer, r);
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        if (r->timer == NULL || evtimer_add(r->timer, &tv) != 0) {
            r->error = RAYC_ENOMEM;
            plasma__queue_req(s, r);
        }
    }
}

static plasma__req *new_req(plasma_client *cl, int kind, size_t n)
{
    size_t out = kind == REQ_GET ? n * sizeof(plasma_view) : n * sizeof(bool);
    if (n > (SIZE_MAX - sizeof(plasma__req)) / (sizeof(plasma__slot) + sizeof(plasma_view)))
        return NULL;
    plasma__req *r = calloc(1, sizeof(plasma__req) + n * sizeof(plasma__slot) + out);
    if (r == NULL)
        return NULL;
    r->kind = kind;
    r->cl = cl;
    r->n = n;
    void *tail = (uint8_t *)r + sizeof(plasma__req) + n * sizeof(plasma__slot);
    if (kind == REQ_GET)
        r->views = tail;
    else
        r->flags = tail;
    return r;
}

void plasma_get(plasma_store *s, plasma_client *cl, const object_id_t *ids, size_t n,
                int64_t timeout_ms, plasma_get_cb cb, void *arg, uint64_t tag)
{
    if (n == 0) {
        cb(arg, tag, RAYC_OK, NULL, 0);
        return;
    }
    plasma__req *r = new_req(cl, REQ_GET, n);
    if (r == NULL) {
        cb(arg, tag, RAYC_ENOMEM, NULL, 0);
        return;
    }
    r->cb.get = cb;
    r->arg = arg;
    r->tag = tag;
    start_req(s, r, ids, timeout_ms);
    plasma__settle(s);
}

void plasma_wait(plasma_store *s, plasma_client *cl, const object_id_t *ids, size_t n,
                 size_t num_returns, int64_t timeout_ms, plasma_wait_cb cb, void *arg, uint64_t tag)
{
    if (n == 0) {
        cb(arg, tag, RAYC_OK, NULL, 0);
        return;
    }
    plasma__req *r = new_req(cl, REQ_WAIT, n);
    if (r == NULL) {
        cb(arg, tag, RAYC_ENOMEM, NULL, 0);
        return;
    }
    r->cb.wait = cb;
    r->arg = arg;
    r->tag = tag;
    r->num_returns = num_returns == 0 || num_returns > n ? n : num_returns;
    start_req(s, r, ids, timeout_ms);
    plasma__settle(s);
}

/* ------------------------------------------------------------ settle */

/* Retry every create and restore waiting for space, in arrival order; a
 * small request may pass a large one that still does not fit. Answers go to
 * the done list (callbacks run later from settle). */
static void run_space(plasma_store *s)
{
    plasma__space *q = s->sq_head;
    while (q) {
        plasma__space *next = q->next;
        if (q->kind == SPACE_RESTORE) {
            plasma__obj *o = q->o;
            int rc = o->nget == 0 ? RAYC_ECANCELLED : plasma__restore_one(s, o);
            if (rc != RAYC_ESTORE_FULL) {
                next = q->next; /* restore_one may have dropped others; q stays linked */
                plasma__space_unlink(s, q);
                o->restore = NULL;
                free(q);
                if (rc == RAYC_EIO) {
                    for (plasma__slot *sl = o->waiters; sl; sl = sl->next)
                        if (sl->r->kind == REQ_GET) {
                            sl->r->error = RAYC_EIO;
                            plasma__queue_req(s, sl->r);
                        }
                }
                plasma__obj_gc(s, o);
            }
        } else {
            uint64_t off;
            int rc = plasma__create_now(s, q->cl, &q->id, q->size, q->flags, &off, q->msg,
                                        sizeof(q->msg));
            if (rc != RAYC_ESTORE_FULL) {
                next = q->next;
                plasma__space_unlink(s, q);
                q->status = rc;
                q->off = off;
                if (rc == 0)
                    q->msg[0] = '\0';
                q->next = s->done_head;
                s->done_head = q;
            }
        }
        q = next;
    }
}

/* Entries of a burst (a client that waited for 100k unknown ids) are small
 * allocations spread over the heap; freed, they stay resident until the
 * allocator is asked to give whole free pages back. Once per shrink of the
 * table, at the end of the entry point that shrank it. */
static void release_heap(plasma_store *s)
{
    s->trim_due = false;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void plasma__settle(plasma_store *s)
{
    if (s->settling)
        return;
    s->settling = true;
    for (;;) {
        if (s->space_dirty) {
            if (s->sq_head)
                run_space(s);
            s->space_dirty = false;
            continue;
        }
        if (s->done_head) {
            plasma__space *q = s->done_head;
            s->done_head = q->next;
            q->cb(q->arg, q->tag, q->status, q->off, q->msg);
            free(q);
            continue;
        }
        if (s->rq_head) {
            plasma__req *r = s->rq_head;
            s->rq_head = r->qnext;
            if (s->rq_head == NULL)
                s->rq_tail = NULL;
            finish_req(s, r);
            continue;
        }
        break;
    }
    s->settling = false;
    if (s->trim_due)
        release_heap(s);
}
