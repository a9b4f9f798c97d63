/* cw_conn.c -- leader/follower request/reply client; see cw_conn.h. */
#include "cw_conn.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "ids.h"
#include "net.h"
#include "rayc.h"
#include "util.h"

typedef struct waiter {
    uint64_t id;
    uint16_t reply_type;
    ProtobufCMessage *reply;
    int done;
    struct waiter *next;
} waiter;

struct cw_conn {
    int fd;
    int wake_fd;         /* eventfd: cw_conn_wake interrupts the reader's poll */
    pthread_mutex_t mu;  /* waiters, reader flag, dead */
    pthread_mutex_t wmu; /* serialises writes */
    pthread_cond_t cv;
    int reader_active;
    int dead;
    uint64_t next_id;
    waiter *waiters;
    frame_decoder dec; /* touched only by the active reader */
    cw_async_fn async_fn;
    void *async_arg;
    pthread_mutex_t *async_lock; /* held across one read's async_fn calls */
    /* Batched sends (cw_conn_send_batched): frames wait in obuf, under wmu,
     * until the flusher thread or the next direct send writes them. The
     * flusher swaps obuf with wbuf and writes wbuf without wmu (writing
     * set), so senders keep queueing meanwhile; direct writes wait for it. */
    uint8_t *obuf, *wbuf;
    size_t olen, ocap, wcap;
    bool writing;
    int direct_waiting; /* direct writers waiting for the flusher: it pauses */
    pthread_t flusher;
    bool has_flusher, stop_flusher;
    pthread_cond_t flush_cv;   /* with wmu: obuf became non-empty / stop */
    pthread_cond_t written_cv; /* with wmu: the flusher's write is done */
    uint64_t last_batched_us;  /* when the previous batched frame came */
    /* Direct readers (cw_conn_enter): threads that wait for a reply read
     * the socket themselves; the background reader (cw_conn_pump_background)
     * stays out of their way while any is in, and for LINGER_US after the
     * last left, so that a caller making one call after another keeps the
     * socket to itself. */
    int direct;            /* threads entered */
    bool bg_reading;       /* the background reader is in read_some */
    uint64_t bg_resume_us; /* it reads again from then on */
    net_spinner spin;      /* direct readers' spin budget */
};

#define LINGER_US 2000 /* see direct above */

/* A direct reader (a caller waiting for its reply) first polls the socket
 * without sleeping for up to SPIN_MAX_US: on these VMs a sleep and its
 * wake-up cost 20-30 us each, more than a short call takes. The budget
 * adapts (net_spin): it shrinks while spinning finds nothing, so a caller
 * waiting for a long call stops burning its core. */
#define SPIN_MAX_US 60

cw_conn *cw_conn_new(bconn *b, cw_async_fn fn, void *arg)
{
    cw_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        bconn_close(b);
        return NULL;
    }
    c->fd = dup(bconn_fd(b));
    bconn_close(b);
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    frame_decoder_init(&c->dec, 0);
    c->async_fn = fn;
    c->async_arg = arg;
    pthread_cond_init(&c->flush_cv, NULL);
    pthread_cond_init(&c->written_cv, NULL);
    return c;
}

void cw_conn_set_async_lock(cw_conn *c, pthread_mutex_t *mu)
{
    c->async_lock = mu;
}

cw_conn *cw_conn_dial(const char *address, const char *token, const uint8_t *self, bool is_worker,
                      int timeout_ms, cw_async_fn fn, void *arg, char *err, size_t errlen)
{
    char host[256];
    int port = 0;
    bool local = address[0] == '@'; /* a Unix socket on this node (dserve_listen_local) */
    if (!local && parse_host_port(address, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "bad address '%s'", address);
        return NULL;
    }
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = is_worker ? RPC__ROLE__ROLE_WORKER : RPC__ROLE__ROLE_DRIVER;
    hs.id.data = (uint8_t *)self;
    hs.id.len = WORKER_ID_SIZE;
    hs.pid = (int32_t)getpid();
    int code = 0;
    bconn *b = bconn_open(local ? NULL : host, port, local ? address : NULL, token, &hs, timeout_ms,
                          NULL, NULL, 0, NULL, &code, err, errlen);
    return b ? cw_conn_new(b, fn, arg) : NULL;
}

/* Write what is batched, after what the flusher is writing. wmu held. */
static int flush_locked(cw_conn *c)
{
    c->direct_waiting++;
    while (c->writing)
        pthread_cond_wait(&c->written_cv, &c->wmu);
    c->direct_waiting--;
    if (c->olen == 0)
        return 0;
    int rc = net_write_all(c->fd, c->obuf, c->olen);
    c->olen = 0;
    return rc == 0 ? 0 : RAYC_ECONN;
}

int cw_conn_flush(cw_conn *c)
{
    pthread_mutex_lock(&c->wmu);
    int rc = flush_locked(c);
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

/* The flusher: wakes when a batch starts, writes it (with whatever joined it
 * meanwhile). The submitting thread never waits for a write. */
static void *flusher_main(void *arg)
{
    cw_conn *c = arg;
    pthread_mutex_lock(&c->wmu);
    while (!c->stop_flusher) {
        /* A direct writer waits for our write: let it take the batch (it
         * writes obuf before its frame), or a steady stream of batched
         * frames would keep it waiting for good. */
        if (c->olen == 0 || c->direct_waiting > 0) {
            pthread_cond_wait(&c->flush_cv, &c->wmu);
            continue;
        }
        uint8_t *buf = c->obuf;
        size_t len = c->olen, cap = c->ocap;
        c->obuf = c->wbuf;
        c->ocap = c->wcap;
        c->olen = 0;
        c->wbuf = buf;
        c->wcap = cap;
        c->writing = true;
        pthread_mutex_unlock(&c->wmu);
        int rc = net_write_all(c->fd, buf, len);
        pthread_mutex_lock(&c->wmu);
        c->writing = false;
        pthread_cond_broadcast(&c->written_cv);
        if (rc != 0)
            __atomic_store_n(&c->dead, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&c->wmu);
    return NULL;
}

/* Append frame to the batch (obuf). wmu held. */
static int append_locked(cw_conn *c, const uint8_t *frame, size_t len)
{
    if (c->olen + len > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 65536;
        while (cap < c->olen + len)
            cap *= 2;
        uint8_t *nb = realloc(c->obuf, cap);
        if (nb == NULL)
            return -1;
        c->obuf = nb;
        c->ocap = cap;
    }
    memcpy(c->obuf + c->olen, frame, len);
    c->olen += len;
    return 0;
}

int cw_conn_send_batched(cw_conn *c, const uint8_t *frame, size_t len)
{
    if (cw_conn_dead(c))
        return RAYC_ECONN;
    pthread_mutex_lock(&c->wmu);
    /* Batch only bursts: a frame after a quiet spell (a driver doing one
     * task at a time) is written at once, costing no thread wake-up. */
    uint64_t now = now_us(), last = c->last_batched_us;
    c->last_batched_us = now;
    if (c->olen == 0 && !c->writing && now - last > 50) {
        int rc = net_write_all(c->fd, frame, len) == 0 ? 0 : RAYC_ECONN;
        pthread_mutex_unlock(&c->wmu);
        return rc;
    }
    if (!c->has_flusher) {
        if (pthread_create(&c->flusher, NULL, flusher_main, c) == 0) {
            c->has_flusher = true;
        } else { /* no thread: write now */
            int rc = flush_locked(c);
            if (rc == 0 && net_write_all(c->fd, frame, len) != 0)
                rc = RAYC_ECONN;
            pthread_mutex_unlock(&c->wmu);
            return rc;
        }
    }
    bool first = c->olen == 0;
    if (append_locked(c, frame, len) != 0) {
        pthread_mutex_unlock(&c->wmu);
        return RAYC_ENOMEM;
    }
    if (first)
        pthread_cond_signal(&c->flush_cv);
    pthread_mutex_unlock(&c->wmu);
    return 0;
}

/* Hand what is batched to the flusher thread (started if need be); with no
 * thread to be had, write it here. wmu held. */
static int hand_off_locked(cw_conn *c)
{
    if (!c->has_flusher) {
        if (pthread_create(&c->flusher, NULL, flusher_main, c) != 0)
            return flush_locked(c);
        c->has_flusher = true;
    }
    pthread_cond_signal(&c->flush_cv);
    return 0;
}

/* Write the batch without blocking; what the socket does not take now stays
 * at its front and goes to the flusher. wmu held. 0 or RAYC_ECONN. */
static int write_nb_locked(cw_conn *c)
{
    if (c->writing)
        return 0; /* the flusher writes: it takes the batch after that */
    size_t off = 0;
    while (off < c->olen) {
        ssize_t n = send(c->fd, c->obuf + off, c->olen - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else
            return RAYC_ECONN;
    }
    if (off > 0) {
        memmove(c->obuf, c->obuf + off, c->olen - off);
        c->olen -= off;
    }
    return c->olen > 0 ? hand_off_locked(c) : 0;
}

static int nb_done(cw_conn *c, int rc)
{
    pthread_mutex_unlock(&c->wmu);
    if (rc == RAYC_ECONN)
        __atomic_store_n(&c->dead, 1, __ATOMIC_RELEASE); /* as in write_frame */
    return rc;
}

int cw_conn_send_nb(cw_conn *c, const uint8_t *frame, size_t len)
{
    if (cw_conn_dead(c))
        return RAYC_ECONN;
    pthread_mutex_lock(&c->wmu);
    if (append_locked(c, frame, len) != 0)
        return nb_done(c, RAYC_ENOMEM);
    return nb_done(c, write_nb_locked(c));
}

int cw_conn_flush_nb(cw_conn *c)
{
    if (cw_conn_dead(c))
        return RAYC_ECONN;
    pthread_mutex_lock(&c->wmu);
    return nb_done(c, write_nb_locked(c));
}

int cw_conn_queue(cw_conn *c, const uint8_t *frame, size_t len)
{
    if (cw_conn_dead(c))
        return RAYC_ECONN;
    pthread_mutex_lock(&c->wmu);
    if (append_locked(c, frame, len) != 0) {
        pthread_mutex_unlock(&c->wmu);
        return RAYC_ENOMEM;
    }
    pthread_mutex_unlock(&c->wmu);
    return 0;
}

int cw_conn_send_batched_msg(cw_conn *c, uint16_t type, const ProtobufCMessage *m)
{
    size_t size = msg_frame_size(m);
    uint8_t stackbuf[512], *buf = size <= sizeof(stackbuf) ? stackbuf : malloc(size);
    if (buf == NULL)
        return RAYC_ENOMEM;
    msg_encode(type, m, buf);
    int rc = cw_conn_send_batched(c, buf, size);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

void cw_conn_free(cw_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->dead = 1;
    shutdown(c->fd, SHUT_RDWR);
    pthread_cond_broadcast(&c->cv);
    while (c->reader_active || c->waiters || c->direct)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    if (c->has_flusher) {
        pthread_mutex_lock(&c->wmu);
        c->stop_flusher = true;
        pthread_cond_signal(&c->flush_cv);
        pthread_mutex_unlock(&c->wmu);
        pthread_join(c->flusher, NULL);
    }
    close(c->fd);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    free(c->obuf);
    free(c->wbuf);
    pthread_cond_destroy(&c->flush_cv);
    pthread_cond_destroy(&c->written_cv);
    frame_decoder_free(&c->dec);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->wmu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

uint64_t cw_conn_next_id(cw_conn *c)
{
    return __atomic_add_fetch(&c->next_id, 1, __ATOMIC_RELAXED);
}

int cw_conn_dead(cw_conn *c)
{
    return __atomic_load_n(&c->dead, __ATOMIC_ACQUIRE);
}

int cw_conn_peer_closed(cw_conn *c)
{
    if (cw_conn_dead(c))
        return 1;
    struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        __atomic_store_n(&c->dead, 1, __ATOMIC_RELEASE);
        return 1;
    }
    return 0;
}

static int write_frame(cw_conn *c, uint16_t type, const ProtobufCMessage *m)
{
    size_t size = msg_frame_size(m);
    uint8_t stackbuf[4096], *buf = size <= sizeof(stackbuf) ? stackbuf : malloc(size);
    if (buf == NULL)
        return RAYC_ENOMEM;
    msg_encode(type, m, buf);
    pthread_mutex_lock(&c->wmu);
    int rc = flush_locked(c) == 0 ? net_write_all(c->fd, buf, size) : -1;
    pthread_mutex_unlock(&c->wmu);
    if (buf != stackbuf)
        free(buf);
    /* A write that failed (the peer is gone) ends the connection, as a
     * failed read does: callers that reconnect on cw_conn_dead must see it
     * even when no thread reads (it showed after a GCS restart). */
    if (rc != 0)
        __atomic_store_n(&c->dead, 1, __ATOMIC_RELEASE);
    return rc == 0 ? 0 : RAYC_ECONN;
}

int cw_conn_send(cw_conn *c, uint16_t type, const ProtobufCMessage *m)
{
    if (cw_conn_dead(c))
        return RAYC_ECONN;
    return write_frame(c, type, m);
}

/* The req_id of a reply: field 1 of every reply message. */
static uint64_t reply_id(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_UINT64 || strcmp(f->name, "req_id") != 0)
        return 0;
    return *(const uint64_t *)((const char *)m + f->offset);
}

/* Reader side: called with mu held and reader_active set. Reads what is
 * available (waiting up to wait_ms), dispatches every whole frame. Drops mu
 * while blocked in poll/read and while running the async handler. Returns
 * how many frames it dispatched. */
static int read_some(cw_conn *c, int wait_ms, bool spin)
{
    int frames = 0;
    pthread_mutex_t *held = NULL; /* c->async_lock, once a frame needed it */
    pthread_mutex_unlock(&c->mu);
    struct pollfd ps[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = c->wake_fd, .events = POLLIN}};
    struct pollfd *p = &ps[0];
    int pr = spin && wait_ms != 0 && net_spin(c->fd, &c->spin) ? 1 : 0;
    if (pr > 0)
        p->revents = POLLIN, ps[1].revents = 0;
    else
        pr = poll(ps, c->wake_fd >= 0 ? 2 : 1, wait_ms);
    int failed = 0;
    if (pr > 0 && (ps[1].revents & POLLIN)) {
        uint64_t v;
        if (read(c->wake_fd, &v, sizeof(v)) < 0) {
            /* nothing to clear */
        }
    }
    if (pr > 0 && p->revents) {
        size_t avail;
        uint8_t *space = frame_decoder_space(&c->dec, 0, &avail);
        ssize_t n = space ? read(c->fd, space, avail) : -1;
        if (n > 0)
            frame_decoder_commit(&c->dec, (size_t)n);
        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
            failed = 1;
    }
    for (;;) {
        frame_t f;
        int rc = frame_decoder_next(&c->dec, &f);
        if (rc == 0)
            break;
        ProtobufCMessage *m = rc == 1 ? msg_unpack(f.type, f.payload, f.length) : NULL;
        if (m == NULL) {
            failed = 1;
            break;
        }
        uint64_t id = reply_id(m);
        frames++;
        waiter *w = NULL;
        if (id != 0) {
            pthread_mutex_lock(&c->mu);
            for (w = c->waiters; w && !(w->id == id && w->reply_type == f.type); w = w->next)
                ;
            if (w) {
                w->reply = m;
                w->done = 1;
                pthread_cond_broadcast(&c->cv);
            }
            pthread_mutex_unlock(&c->mu);
        }
        if (w == NULL && c->async_fn && c->async_lock && held == NULL)
            pthread_mutex_lock(held = c->async_lock);
        if (w == NULL && !(c->async_fn && c->async_fn(c->async_arg, f.type, m)))
            msg_free(m);
    }
    if (held)
        pthread_mutex_unlock(held);
    pthread_mutex_lock(&c->mu);
    if (failed && !c->dead) {
        c->dead = 1;
        pthread_cond_broadcast(&c->cv);
    }
    return frames;
}

static void unlink_waiter(cw_conn *c, waiter *w)
{
    for (waiter **pp = &c->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

int cw_conn_call(cw_conn *c, uint64_t id, uint16_t type, const ProtobufCMessage *req,
                 uint16_t reply_type, ProtobufCMessage **reply, int64_t timeout_ms)
{
    waiter w = {.id = id, .reply_type = reply_type};
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;

    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        pthread_mutex_unlock(&c->mu);
        return RAYC_ECONN;
    }
    w.next = c->waiters;
    c->waiters = &w;
    pthread_mutex_unlock(&c->mu);

    int rc = write_frame(c, type, req);

    pthread_mutex_lock(&c->mu);
    while (rc == 0 && !w.done) {
        if (c->dead) {
            rc = RAYC_ECONN;
            break;
        }
        uint64_t now = now_ms();
        if (now >= deadline) {
            rc = RAYC_ETIMEDOUT;
            break;
        }
        uint64_t left = deadline - now;
        if (!c->reader_active) {
            c->reader_active = 1;
            read_some(c, left > 1000 ? 1000 : (int)left, false);
            c->reader_active = 0;
            pthread_cond_broadcast(&c->cv); /* someone else may need to read now */
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ms = left > 1000 ? 1000 : left;
            ts.tv_sec += (time_t)(ms / 1000);
            ts.tv_nsec += (long)(ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
    }
    unlink_waiter(c, &w);
    if (c->dead && !c->reader_active)
        pthread_cond_broadcast(&c->cv); /* cw_conn_free waits for waiters to leave */
    pthread_mutex_unlock(&c->mu);
    if (w.done && rc == 0) {
        *reply = w.reply;
        return 0;
    }
    if (w.done)
        msg_free(w.reply);
    return rc;
}

void cw_conn_shutdown(cw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    c->dead = 1;
    shutdown(c->fd, SHUT_RDWR);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void cw_conn_wake(cw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /* Also when nobody reads yet: a thread that looked for its result a
     * moment ago and is about to poll must not sleep through this wake-up
     * (the counter makes its poll return at once). */
    uint64_t one = 1;
    if (c->wake_fd >= 0 && write(c->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is full: the reader wakes anyway */
    }
}

int cw_conn_pump(cw_conn *c, int64_t timeout_ms)
{
    if (cw_conn_flush_nb(c) == RAYC_ECONN) /* see cw_conn_pump_direct */
        return RAYC_ECONN;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        pthread_mutex_unlock(&c->mu);
        return RAYC_ECONN;
    }
    int wait = timeout_ms < 0 || timeout_ms > 1000 ? 1000 : (int)timeout_ms;
    if (!c->reader_active) {
        c->reader_active = 1;
        read_some(c, wait, false); /* no spinning: replies of direct calls come elsewhere */
        c->reader_active = 0;
        pthread_cond_broadcast(&c->cv);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    int rc = c->dead ? RAYC_ECONN : 0;
    if (c->dead)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ------------------------------------------------------------ direct reads */

static void deadline_in(struct timespec *ts, uint64_t us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(us / 1000000);
    ts->tv_nsec += (long)(us % 1000000) * 1000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void cw_conn_enter(cw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    bool kick = c->direct++ == 0 && c->bg_reading;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    if (kick && c->wake_fd >= 0 && write(c->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is full: the reader wakes anyway */
    }
}

void cw_conn_leave(cw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    c->direct--;
    c->bg_resume_us = now_us() + LINGER_US;
    if (c->dead) /* cw_conn_free waits for us */
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int cw_conn_pump_direct(cw_conn *c, int64_t timeout_ms)
{
    /* What we batched goes first, but a reader never waits to write: the
     * peer may be blocked writing to us (a burst of large calls). */
    if (cw_conn_flush_nb(c) == RAYC_ECONN)
        return RAYC_ECONN;
    pthread_mutex_lock(&c->mu);
    int frames = 0;
    int wait = timeout_ms < 0 || timeout_ms > 1000 ? 1000 : (int)timeout_ms;
    if (!c->dead && !c->reader_active) {
        c->reader_active = 1;
        frames = read_some(c, wait, true);
        c->reader_active = 0;
        if (c->waiters || c->direct > 1) /* another caller may need to read now */
            pthread_cond_broadcast(&c->cv);
    } else if (!c->dead) { /* the background reader is leaving: it wakes us */
        struct timespec ts;
        deadline_in(&ts, (uint64_t)wait * 1000);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    int rc = c->dead ? RAYC_ECONN : frames;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int cw_conn_pump_background(cw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        uint64_t now = now_us();
        if (c->dead || (c->direct == 0 && now >= c->bg_resume_us))
            break;
        /* Look again when the linger ends (or a while later, when a
         * direct reader is in: a leave does not wake us). */
        struct timespec ts;
        deadline_in(&ts, c->direct ? LINGER_US : c->bg_resume_us - now);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    if (!c->dead && !c->reader_active) {
        c->reader_active = 1;
        c->bg_reading = true;
        read_some(c, 1000, false);
        c->bg_reading = false;
        c->reader_active = 0;
        pthread_cond_broadcast(&c->cv); /* a direct reader may wait for the socket */
    } else if (!c->dead) {
        struct timespec ts;
        deadline_in(&ts, 1000000);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    int rc = c->dead ? RAYC_ECONN : 0;
    if (c->dead)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return rc;
}
