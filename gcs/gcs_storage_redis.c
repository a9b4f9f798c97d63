/*
 * gcs_storage_redis.c -- the Redis storage: table t is the hash "rayc:<t>".
 *
 * hiredis async on the GCS's libevent loop (hiredis/adapters/libevent.h).
 * Connection life cycle:
 *     connecting --(connect ok, AUTH ok)--> up
 *     any state  --(error / lost)-------> down: log, retry after back-off
 * hiredis buffers commands issued while a connection is being set up and
 * fails them (NULL reply) if it cannot be; while there is no connection at
 * all, operations fail at once with RAYC_ECONN. Replies are mapped to
 * statuses: NULL -> RAYC_ECONN, error reply -> RAYC_EIO, nil -> ENOTFOUND.
 * Runs in the GCS event-loop thread only.
 */
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_storage.h"
#include "log.h"
#include "rayc.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

typedef struct {
    gcs_storage base;      /* first: a redis_storage is a gcs_storage */
    redisAsyncContext *ac; /* NULL while disconnected */
    bool up;               /* connected and authenticated */
    bool ever_up;
    char *unix_path;
    char *host;
    int port;
    char *password;
    char where[160];    /* for logs: "unix:/path" or "host:port" */
    char auth_err[200]; /* why AUTH failed, "" if it did not */
    struct event *retry_ev;
    int backoff_ms;
} redis_storage;

enum { REQ_PUT, REQ_GET, REQ_DEL, REQ_ALL };

typedef struct {
    redis_storage *rs;
    int kind;
    union {
        gcs_storage_done_fn done;
        gcs_storage_get_fn get;
        gcs_storage_all_fn all;
    } cb;
    void *arg;
} req;

static int start_connect(redis_storage *rs);

/* ------------------------------------------------------------ connection */

static void schedule_retry(redis_storage *rs)
{
    if (rs->base.freeing)
        return;
    struct timeval tv = {rs->backoff_ms / 1000, (rs->backoff_ms % 1000) * 1000};
    evtimer_add(rs->retry_ev, &tv);
    rs->backoff_ms = rs->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rs->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redis_storage *rs = arg;
    if (rs->ac != NULL)
        return;
    log_info("reconnecting to redis at %s", rs->where);
    if (start_connect(rs) != 0) {
        log_error("%s", rs->base.errstr);
        schedule_retry(rs);
    }
}

static void became_up(redis_storage *rs)
{
    rs->up = true;
    rs->backoff_ms = BACKOFF_MIN_MS;
    if (rs->ever_up)
        log_info("reconnected to redis at %s", rs->where);
    else
        log_info("connected to redis at %s", rs->where);
    rs->ever_up = true;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_storage *rs = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        gcs_storage__set_err(&rs->base, "cannot connect to redis at %s: %s", rs->where,
                             ac->errstr[0] ? ac->errstr : "connection failed");
        log_error("%s", rs->base.errstr);
        rs->ac = NULL;
        rs->up = false;
        schedule_retry(rs);
        return;
    }
    if (rs->password == NULL)
        became_up(rs);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_storage *rs = ac->data;
    rs->ac = NULL;
    rs->up = false;
    if (rs->base.freeing)
        return;
    gcs_storage__set_err(&rs->base, "lost connection to redis at %s: %s", rs->where,
                         status == REDIS_OK ? "closed" : ac->errstr);
    log_error("%s", rs->base.errstr);
    schedule_retry(rs);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    redis_storage *rs = privdata;
    redisReply *reply = r;
    if (reply == NULL)
        return; /* connection failed: on_connect / on_disconnect report it */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(rs->auth_err, sizeof(rs->auth_err), "redis AUTH at %s failed: %s", rs->where,
                 reply->str);
        gcs_storage__set_err(&rs->base, "%s", rs->auth_err);
        log_error("%s", rs->base.errstr);
        return;
    }
    rs->auth_err[0] = '\0';
    became_up(rs);
}

/* Create a context and queue AUTH. 0, or -1 with errstr set when the
 * connection failed at once (e.g. no such socket). */
static int start_connect(redis_storage *rs)
{
    redisAsyncContext *ac = rs->unix_path ? redisAsyncConnectUnix(rs->unix_path)
                                          : redisAsyncConnect(rs->host, rs->port);
    if (ac == NULL) {
        gcs_storage__set_err(&rs->base, "cannot connect to redis at %s: out of memory", rs->where);
        return -1;
    }
    if (ac->err) {
        gcs_storage__set_err(&rs->base, "cannot connect to redis at %s: %s", rs->where, ac->errstr);
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = rs;
    if (redisLibeventAttach(ac, rs->base.base) != REDIS_OK) {
        gcs_storage__set_err(&rs->base, "cannot attach redis connection to the loop");
        redisAsyncFree(ac);
        return -1;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rs->ac = ac;
    if (rs->password)
        redisAsyncCommand(ac, on_auth, rs, "AUTH %s", rs->password);
    return 0;
}

/* --------------------------------------------------------------- replies */

static void finish(req *q, int status, const redisReply *reply)
{
    switch (q->kind) {
    case REQ_PUT:
    case REQ_DEL:
        q->cb.done(q->arg, status);
        break;
    case REQ_GET:
        if (status == RAYC_OK)
            q->cb.get(q->arg, status, (const uint8_t *)reply->str, reply->len);
        else
            q->cb.get(q->arg, status, NULL, 0);
        break;
    case REQ_ALL: {
        if (status != RAYC_OK) {
            q->cb.all(q->arg, status, NULL, 0);
            break;
        }
        size_t n = reply->elements / 2;
        gcs_storage_entry *e = calloc(n ? n : 1, sizeof(*e));
        if (e == NULL) {
            q->cb.all(q->arg, RAYC_ENOMEM, NULL, 0);
            break;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *k = reply->element[2 * i], *v = reply->element[2 * i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            e[m].key = (const uint8_t *)k->str;
            e[m].key_len = k->len;
            e[m].val = (const uint8_t *)v->str;
            e[m].val_len = v->len;
            m++;
        }
        q->cb.all(q->arg, RAYC_OK, e, m);
        free(e);
        break;
    }
    }
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    req *q = privdata;
    redis_storage *rs = q->rs;
    redisReply *reply = r;
    int status = RAYC_OK;
    if (reply == NULL) {
        status = rs->base.freeing ? RAYC_ECANCELLED : RAYC_ECONN;
        /* A connection that never came up already said why (on_connect). */
        if (!rs->base.freeing && rs->up)
            gcs_storage__set_err(&rs->base, "redis connection at %s lost", rs->where);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        status = RAYC_EIO;
        if (rs->auth_err[0])
            gcs_storage__set_err(&rs->base, "%s (%s)", rs->auth_err, reply->str);
        else
            gcs_storage__set_err(&rs->base, "redis: %s", reply->str);
        log_error("%s", rs->base.errstr);
    } else if (q->kind == REQ_GET) {
        if (reply->type == REDIS_REPLY_NIL)
            status = RAYC_ENOTFOUND;
        else if (reply->type != REDIS_REPLY_STRING)
            status = RAYC_EIO;
    } else if (q->kind == REQ_DEL) {
        if (reply->type != REDIS_REPLY_INTEGER)
            status = RAYC_EIO;
        else if (reply->integer == 0)
            status = RAYC_ENOTFOUND;
    } else if (q->kind == REQ_ALL) {
        if (reply->type != REDIS_REPLY_ARRAY)
            status = RAYC_EIO;
    }
    finish(q, status, reply);
    free(q);
}

/* A request record, or NULL (and the callback deferred with the error)
 * when there is no connection to send it on. */
static req *new_req(redis_storage *rs, int kind, void (*fn)(void), void *arg)
{
    int status = RAYC_OK;
    req *q = NULL;
    if (rs->ac == NULL) {
        status = RAYC_ECONN;
        gcs_storage__set_err(&rs->base, "redis at %s is not connected", rs->where);
    } else if ((q = malloc(sizeof(*q))) == NULL) {
        status = RAYC_ENOMEM;
        gcs_storage__set_err(&rs->base, "out of memory");
    }
    if (q) {
        q->rs = rs;
        q->kind = kind;
        q->arg = arg;
        switch (kind) {
        case REQ_PUT:
        case REQ_DEL:
            q->cb.done = (gcs_storage_done_fn)fn;
            break;
        case REQ_GET:
            q->cb.get = (gcs_storage_get_fn)fn;
            break;
        default:
            q->cb.all = (gcs_storage_all_fn)fn;
            break;
        }
        return q;
    }
    switch (kind) {
    case REQ_PUT:
    case REQ_DEL:
        gcs_storage__defer_done(&rs->base, (gcs_storage_done_fn)fn, arg, status);
        break;
    case REQ_GET:
        gcs_storage__defer_get(&rs->base, (gcs_storage_get_fn)fn, arg, status, NULL, 0);
        break;
    default:
        gcs_storage__defer_all(&rs->base, (gcs_storage_all_fn)fn, arg, status, NULL, 0);
        break;
    }
    return NULL;
}

/* hiredis refused the command (context going away): fail it from the loop. */
static void refused(redis_storage *rs, req *q)
{
    gcs_storage__set_err(&rs->base, "redis at %s is disconnecting", rs->where);
    switch (q->kind) {
    case REQ_PUT:
    case REQ_DEL:
        gcs_storage__defer_done(&rs->base, q->cb.done, q->arg, RAYC_ECONN);
        break;
    case REQ_GET:
        gcs_storage__defer_get(&rs->base, q->cb.get, q->arg, RAYC_ECONN, NULL, 0);
        break;
    default:
        gcs_storage__defer_all(&rs->base, q->cb.all, q->arg, RAYC_ECONN, NULL, 0);
        break;
    }
    free(q);
}

/* ------------------------------------------------------------ operations */

static void rd_put(gcs_storage *s, const char *table, const void *key, size_t klen, const void *val,
                   size_t vlen, gcs_storage_done_fn cb, void *arg)
{
    redis_storage *rs = (redis_storage *)s;
    req *q = new_req(rs, REQ_PUT, (void (*)(void))cb, arg);
    if (q && redisAsyncCommand(rs->ac, on_reply, q, "HSET " GCS_STORAGE_PREFIX "%s %b %b", table,
                               key ? key : "", klen, val ? val : "", vlen) != REDIS_OK)
        refused(rs, q);
}

static void rd_get(gcs_storage *s, const char *table, const void *key, size_t klen,
                   gcs_storage_get_fn cb, void *arg)
{
    redis_storage *rs = (redis_storage *)s;
    req *q = new_req(rs, REQ_GET, (void (*)(void))cb, arg);
    if (q && redisAsyncCommand(rs->ac, on_reply, q, "HGET " GCS_STORAGE_PREFIX "%s %b", table,
                               key ? key : "", klen) != REDIS_OK)
        refused(rs, q);
}

static void rd_del(gcs_storage *s, const char *table, const void *key, size_t klen,
                   gcs_storage_done_fn cb, void *arg)
{
    redis_storage *rs = (redis_storage *)s;
    req *q = new_req(rs, REQ_DEL, (void (*)(void))cb, arg);
    if (q && redisAsyncCommand(rs->ac, on_reply, q, "HDEL " GCS_STORAGE_PREFIX "%s %b", table,
                               key ? key : "", klen) != REDIS_OK)
        refused(rs, q);
}

static void rd_get_all(gcs_storage *s, const char *table, gcs_storage_all_fn cb, void *arg)
{
    redis_storage *rs = (redis_storage *)s;
    req *q = new_req(rs, REQ_ALL, (void (*)(void))cb, arg);
    if (q && redisAsyncCommand(rs->ac, on_reply, q, "HGETALL " GCS_STORAGE_PREFIX "%s", table) !=
                 REDIS_OK)
        refused(rs, q);
}

static bool rd_is_up(const gcs_storage *s)
{
    return ((const redis_storage *)s)->up;
}

/* Freeing the context calls every pending reply callback with NULL (they
 * report RAYC_ECANCELLED since base.freeing is set) and, if it was
 * connected, on_disconnect. */
static void rd_destroy(gcs_storage *s)
{
    redis_storage *rs = (redis_storage *)s;
    if (rs->retry_ev) {
        event_free(rs->retry_ev);
        rs->retry_ev = NULL;
    }
    if (rs->ac) {
        redisAsyncContext *ac = rs->ac;
        rs->ac = NULL;
        redisAsyncFree(ac);
    }
    free(rs->unix_path);
    free(rs->host);
    if (rs->password) {
        memset(rs->password, 0, strlen(rs->password));
        free(rs->password);
    }
}

static const gcs_storage__ops redis_ops = {
    .kind = "redis",
    .put = rd_put,
    .get = rd_get,
    .del = rd_del,
    .get_all = rd_get_all,
    .is_up = rd_is_up,
    .destroy = rd_destroy,
};

gcs_storage *gcs_storage_redis_new(struct event_base *base, const gcs_storage_redis_opts *opts,
                                   char *err, size_t errlen)
{
    bool unix_sock = opts->unix_path && *opts->unix_path;
    if (!unix_sock && !(opts->host && *opts->host && opts->port > 0)) {
        snprintf(err, errlen, "no redis address (--redis-socket or --redis-address)");
        return NULL;
    }
    redis_storage *rs = calloc(1, sizeof(*rs));
    if (rs == NULL || gcs_storage__init(&rs->base, &redis_ops, base) != 0)
        goto nomem;
    rs->backoff_ms = BACKOFF_MIN_MS;
    rs->retry_ev = evtimer_new(base, on_retry, rs);
    if (rs->retry_ev == NULL)
        goto nomem;
    if (unix_sock) {
        if ((rs->unix_path = strdup(opts->unix_path)) == NULL)
            goto nomem;
        snprintf(rs->where, sizeof(rs->where), "unix:%s", opts->unix_path);
    } else {
        if ((rs->host = strdup(opts->host)) == NULL)
            goto nomem;
        rs->port = opts->port;
        snprintf(rs->where, sizeof(rs->where), "%s:%d", opts->host, opts->port);
    }
    if (opts->password && *opts->password && (rs->password = strdup(opts->password)) == NULL)
        goto nomem;
    if (start_connect(rs) != 0) {
        snprintf(err, errlen, "%s", rs->base.errstr);
        gcs_storage_free(&rs->base);
        return NULL;
    }
    return &rs->base;
nomem:
    snprintf(err, errlen, "out of memory");
    if (rs && rs->base.defer_ev) {
        gcs_storage_free(&rs->base);
    } else {
        free(rs);
    }
    return NULL;
}
