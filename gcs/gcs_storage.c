/*
 * gcs_storage.c -- the storage interface's common half: argument checks,
 * dispatch to the implementation, and the completion queue that makes every
 * callback arrive from the event loop (never from inside the call).
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_storage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rayc.h"

enum { DONE_STATUS, DONE_GET, DONE_ALL };

struct gcs_storage__done {
    gcs_storage__done *next;
    int kind;
    int status;
    union {
        gcs_storage_done_fn done;
        gcs_storage_get_fn get;
        gcs_storage_all_fn all;
    } cb;
    void *arg;
    uint8_t *val; /* get: copy of the value; get_all: one blob of all bytes */
    size_t len;
    gcs_storage_entry *entries;
    size_t n;
};

/* Call one completion (status overridden when cancelling) and free it. */
static void run_one(gcs_storage__done *d, bool cancel)
{
    int status = cancel ? RAYC_ECANCELLED : d->status;
    switch (d->kind) {
    case DONE_STATUS:
        d->cb.done(d->arg, status);
        break;
    case DONE_GET:
        d->cb.get(d->arg, status, status == RAYC_OK ? d->val : NULL,
                  status == RAYC_OK ? d->len : 0);
        break;
    case DONE_ALL:
        d->cb.all(d->arg, status, status == RAYC_OK ? d->entries : NULL,
                  status == RAYC_OK ? d->n : 0);
        break;
    }
    free(d->val);
    free(d->entries);
    free(d);
}

/* The queue is detached before running, so completions queued by callbacks
 * wait for the next loop turn (other events get their share). */
static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gcs_storage *s = arg;
    gcs_storage__done *d = s->head;
    s->head = s->tail = NULL;
    while (d) {
        gcs_storage__done *next = d->next;
        run_one(d, false);
        d = next;
    }
}

int gcs_storage__init(gcs_storage *s, const gcs_storage__ops *ops, struct event_base *base)
{
    s->ops = ops;
    s->base = base;
    s->head = s->tail = NULL;
    s->freeing = false;
    s->errstr[0] = '\0';
    s->defer_ev = event_new(base, -1, 0, on_defer, s);
    return s->defer_ev ? 0 : RAYC_ENOMEM;
}

static void enqueue(gcs_storage *s, gcs_storage__done *d)
{
    d->next = NULL;
    if (s->tail)
        s->tail->next = d;
    else
        s->head = d;
    s->tail = d;
    if (!s->freeing)
        event_active(s->defer_ev, 0, 0);
}

/* A completion record. Without memory for it we cannot call back later, and
 * a callback that never comes would wedge a request forever: treat it as
 * the broken invariant it is. */
static gcs_storage__done *new_done(int kind, void *arg, int status)
{
    gcs_storage__done *d = calloc(1, sizeof(*d));
    CHECK(d != NULL);
    d->kind = kind;
    d->arg = arg;
    d->status = status;
    return d;
}

void gcs_storage__defer_done(gcs_storage *s, gcs_storage_done_fn cb, void *arg, int status)
{
    gcs_storage__done *d = new_done(DONE_STATUS, arg, status);
    d->cb.done = cb;
    enqueue(s, d);
}

void gcs_storage__defer_get(gcs_storage *s, gcs_storage_get_fn cb, void *arg, int status,
                            const uint8_t *val, size_t len)
{
    gcs_storage__done *d = new_done(DONE_GET, arg, status);
    d->cb.get = cb;
    if (status == RAYC_OK) {
        d->val = malloc(len ? len : 1);
        if (d->val == NULL)
            d->status = RAYC_ENOMEM;
        else if (len)
            memcpy(d->val, val, len);
        d->len = len;
    }
    enqueue(s, d);
}

void gcs_storage__defer_all(gcs_storage *s, gcs_storage_all_fn cb, void *arg, int status,
                            const gcs_storage_entry *entries, size_t n)
{
    gcs_storage__done *d = new_done(DONE_ALL, arg, status);
    d->cb.all = cb;
    if (status == RAYC_OK) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += entries[i].key_len + entries[i].val_len;
        d->val = malloc(total ? total : 1);
        d->entries = calloc(n ? n : 1, sizeof(*d->entries));
        if (d->val == NULL || d->entries == NULL) {
            d->status = RAYC_ENOMEM;
        } else {
            uint8_t *p = d->val;
            for (size_t i = 0; i < n; i++) {
                memcpy(p, entries[i].key, entries[i].key_len);
                d->entries[i].key = p;
                d->entries[i].key_len = entries[i].key_len;
                p += entries[i].key_len;
                memcpy(p, entries[i].val, entries[i].val_len);
                d->entries[i].val = p;
                d->entries[i].val_len = entries[i].val_len;
                p += entries[i].val_len;
            }
            d->n = n;
        }
    }
    enqueue(s, d);
}

void gcs_storage__set_err(gcs_storage *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errstr, sizeof(s->errstr), fmt, ap);
    va_end(ap);
}

void gcs_storage_free(gcs_storage *s)
{
    if (s == NULL)
        return;
    s->freeing = true;
    s->ops->destroy(s); /* in-flight ops land in the queue or are called */
    while (s->head) {
        gcs_storage__done *d = s->head;
        s->head = d->next;
        if (s->head == NULL)
            s->tail = NULL;
        run_one(d, true);
    }
    event_free(s->defer_ev);
    free(s);
}

/* Table names become part of a Redis key and are formatted with %s. */
static bool table_ok(gcs_storage *s, const char *table)
{
    if (table && *table && strlen(table) <= GCS_STORAGE_TABLE_MAX)
        return true;
    gcs_storage__set_err(s, "bad table name");
    return false;
}

void gcs_storage_put(gcs_storage *s, const char *table, const void *key, size_t klen,
                     const void *val, size_t vlen, gcs_storage_done_fn cb, void *arg)
{
    if (s->freeing)
        gcs_storage__defer_done(s, cb, arg, RAYC_ECANCELLED);
    else if (!table_ok(s, table))
        gcs_storage__defer_done(s, cb, arg, RAYC_EINVAL);
    else
        s->ops->put(s, table, key, klen, val, vlen, cb, arg);
}

void gcs_storage_get(gcs_storage *s, const char *table, const void *key, size_t klen,
                     gcs_storage_get_fn cb, void *arg)
{
    if (s->freeing)
        gcs_storage__defer_get(s, cb, arg, RAYC_ECANCELLED, NULL, 0);
    else if (!table_ok(s, table))
        gcs_storage__defer_get(s, cb, arg, RAYC_EINVAL, NULL, 0);
    else
        s->ops->get(s, table, key, klen, cb, arg);
}

void gcs_storage_del(gcs_storage *s, const char *table, const void *key, size_t klen,
                     gcs_storage_done_fn cb, void *arg)
{
    if (s->freeing)
        gcs_storage__defer_done(s, cb, arg, RAYC_ECANCELLED);
    else if (!table_ok(s, table))
        gcs_storage__defer_done(s, cb, arg, RAYC_EINVAL);
    else
        s->ops->del(s, table, key, klen, cb, arg);
}

void gcs_storage_get_all(gcs_storage *s, const char *table, gcs_storage_all_fn cb, void *arg)
{
    if (s->freeing)
        gcs_storage__defer_all(s, cb, arg, RAYC_ECANCELLED, NULL, 0);
    else if (!table_ok(s, table))
        gcs_storage__defer_all(s, cb, arg, RAYC_EINVAL, NULL, 0);
    else
        s->ops->get_all(s, table, cb, arg);
}

bool gcs_storage_is_up(const gcs_storage *s)
{
    return !s->freeing && s->ops->is_up(s);
}

const char *gcs_storage_errstr(const gcs_storage *s)
{
    return s->errstr;
}

const char *gcs_storage_kind(const gcs_storage *s)
{
    return s->ops->kind;
}

uint8_t *gcs_storage_pack(const ProtobufCMessage *m, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return NULL;
    *len = protobuf_c_message_pack(m, buf);
    return buf;
}

ProtobufCMessage *gcs_storage_msg_dup(const ProtobufCMessage *m)
{
    size_t len;
    uint8_t *buf = gcs_storage_pack(m, &len);
    if (buf == NULL)
        return NULL;
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    return copy;
}
