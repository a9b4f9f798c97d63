/*
 * lease_server.c -- a leased worker serving its owner directly (the direct
 * task path, docs/tasks.md).
 *
 * The raylet pushes a lease (spec->lease) as it pushes a task. The worker
 * answers with the address it listens on (one socket per process, opened at
 * its first lease), takes the first connection that proves the cluster
 * token, and runs the tasks that arrive on it one at a time on this thread,
 * the executor's, replying on the same connection. When the owner closes it
 * (or never comes), a second TaskDone tells the raylet the lease is over.
 * A task that blocks in get/wait hands back what is queued behind it
 * (TasksGivenBack), so that nothing it waits for can be stuck behind it;
 * so does a long task when the owner asks (StealTasks), so that nothing
 * waits behind it while another worker could run it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "direct_serve.h"
#include "frame.h"
#include "log.h"
#include "net.h"
#include "task_executor_internal.h"
#include "util.h"

#define LEASE_ACCEPT_MS 10000 /* the owner connects within this, or the lease ends */
#define READ_CHUNK      (64u << 10)
#define FLUSH_AFTER_US  500 /* a reply waits for the batch's others at most this */

typedef struct lease_conn {
    task_executor *x;
    int fd;
    /* The executor's thread reads between tasks; while a task runs, the
     * watcher thread looks for cancels and steals (tex__lease_poll). */
    pthread_mutex_t mu; /* dec, q, out, dead */
    frame_decoder dec;
    Rpc__PushTask **q; /* received, not started (ring) */
    size_t qhead, qlen, qcap;
    uint8_t *out; /* replies not written yet */
    size_t outlen, outcap;
    bool dead;
    net_spinner spin;
} lease_conn;

/* ------------------------------------------------------------ replies */

static void out_frame(lease_conn *lc, uint16_t type, const ProtobufCMessage *m)
{
    size_t len = msg_frame_size(m);
    if (lc->outlen + len > lc->outcap) {
        size_t cap = lc->outcap ? lc->outcap : 4096;
        while (cap < lc->outlen + len)
            cap *= 2;
        uint8_t *nb = realloc(lc->out, cap);
        if (nb == NULL) {
            log_error("lease: out of memory for a reply; dropping the owner");
            lc->dead = true;
            return;
        }
        lc->out = nb;
        lc->outcap = cap;
    }
    msg_encode(type, m, lc->out + lc->outlen);
    lc->outlen += len;
}

static void flush(lease_conn *lc)
{
    if (lc->outlen > 0 && !lc->dead && net_write_all(lc->fd, lc->out, lc->outlen) != 0)
        lc->dead = true;
    lc->outlen = 0;
}

/* A task's TaskDone: its store returns go to the owner first (through the
 * raylet), then the reply, stamped with this node. */
static void task_reply(void *arg, const Rpc__TaskSpec *spec, Rpc__TaskDone *done)
{
    lease_conn *lc = arg;
    dserve_give_returns(lc->x->d.raylet, spec, done);
    done->node_id.data = lc->x->d.node.b;
    done->node_id.len = NODE_ID_SIZE;
    pthread_mutex_lock(&lc->mu);
    out_frame(lc, MSG_TASK_DONE, &done->base);
    pthread_mutex_unlock(&lc->mu);
}

static void reply_status(lease_conn *lc, const Rpc__TaskSpec *spec, int code, const char *text)
{
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, code, text);
    Rpc__TaskDone d = RPC__TASK_DONE__INIT;
    d.task_id = spec->task_id;
    d.status = &st;
    d.owner_id = spec->owner_id;
    d.attempt = spec->attempt;
    d.worker_pid = lc->x->pid;
    out_frame(lc, MSG_TASK_DONE, &d.base);
}

/* ------------------------------------------------------------ the queue */

static bool q_push(lease_conn *lc, Rpc__PushTask *p)
{
    if (lc->qlen == lc->qcap) {
        size_t cap = lc->qcap ? lc->qcap * 2 : 16;
        Rpc__PushTask **nq = malloc(cap * sizeof(*nq));
        if (nq == NULL)
            return false;
        for (size_t i = 0; i < lc->qlen; i++)
            nq[i] = lc->q[(lc->qhead + i) % lc->qcap];
        free(lc->q);
        lc->q = nq;
        lc->qcap = cap;
        lc->qhead = 0;
    }
    lc->q[(lc->qhead + lc->qlen) % lc->qcap] = p;
    lc->qlen++;
    return true;
}

static Rpc__PushTask *q_pop(lease_conn *lc)
{
    if (lc->qlen == 0)
        return NULL;
    Rpc__PushTask *p = lc->q[lc->qhead];
    lc->qhead = (lc->qhead + 1) % lc->qcap;
    lc->qlen--;
    return p;
}

/* A soft cancel of a task not started: it is dropped and reported. */
static void cancel_queued(lease_conn *lc, const Rpc__CancelTask *m)
{
    if (m->task_id.len != TASK_ID_SIZE)
        return;
    for (size_t i = 0; i < lc->qlen; i++) {
        Rpc__PushTask *p = lc->q[(lc->qhead + i) % lc->qcap];
        if (memcmp(p->spec->task_id.data, m->task_id.data, TASK_ID_SIZE) != 0)
            continue;
        for (size_t j = i; j + 1 < lc->qlen; j++) /* close the gap, keep order */
            lc->q[(lc->qhead + j) % lc->qcap] = lc->q[(lc->qhead + j + 1) % lc->qcap];
        lc->qlen--;
        char text[300];
        snprintf(text, sizeof(text), "%s: cancelled", p->spec->function);
        reply_status(lc, p->spec, RAYC_ECANCELLED, text);
        msg_free(&p->base);
        return;
    }
}

static void give_back_queued(lease_conn *lc);

/* Take the whole frames received so far. false: the owner sent something
 * no owner sends (the connection is closed). lc->mu held. */
static bool take_frames(lease_conn *lc)
{
    frame_t f;
    int r;
    while ((r = frame_decoder_next(&lc->dec, &f)) == 1) {
        if (f.type == MSG_CANCEL_TASK) {
            Rpc__CancelTask *m = (Rpc__CancelTask *)msg_unpack(f.type, f.payload, f.length);
            if (m == NULL)
                return false;
            cancel_queued(lc, m);
            msg_free(&m->base);
            continue;
        }
        if (f.type == MSG_STEAL_TASKS) {
            give_back_queued(lc);
            continue;
        }
        if (f.type != MSG_PUSH_TASK && f.type != MSG_SUBMIT_TASK)
            return false;
        /* SubmitTask and PushTask are the same message: a spec. */
        Rpc__PushTask *p = (Rpc__PushTask *)msg_unpack(MSG_PUSH_TASK, f.payload, f.length);
        if (p == NULL || p->spec == NULL || p->spec->task_id.len != TASK_ID_SIZE ||
            p->spec->function == NULL) {
            if (p)
                msg_free(&p->base);
            return false;
        }
        if (p->spec->lease || p->spec->actor_creation || p->spec->actor_id.len ||
            p->spec->streaming) {
            reply_status(lc, p->spec, RAYC_EINVAL, "not a task a leased worker runs");
            msg_free(&p->base);
            continue;
        }
        if (p->scheduled_us == 0) /* task events: it reached its worker now */
            p->scheduled_us = wall_us();
        if (!q_push(lc, p)) {
            reply_status(lc, p->spec, RAYC_ENOMEM, "worker out of memory");
            msg_free(&p->base);
        }
    }
    return r == 0;
}

/* Read what is there (waiting up to wait_ms, without lc->mu meanwhile).
 * false when the owner is gone or broke the protocol. lc->mu held. */
static bool read_more(lease_conn *lc, int wait_ms)
{
    if (wait_ms != 0 && !net_spin(lc->fd, &lc->spin)) {
        struct pollfd p = {.fd = lc->fd, .events = POLLIN};
        pthread_mutex_unlock(&lc->mu);
        int pr = poll(&p, 1, wait_ms);
        pthread_mutex_lock(&lc->mu);
        if (pr == 0)
            return true;
        if (pr < 0)
            return errno == EINTR;
    }
    size_t avail;
    uint8_t *buf = frame_decoder_space(&lc->dec, READ_CHUNK, &avail);
    if (buf == NULL)
        return false;
    ssize_t n = recv(lc->fd, buf, avail, wait_ms == 0 ? MSG_DONTWAIT : 0);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
    if (n == 0)
        return false;
    frame_decoder_commit(&lc->dec, (size_t)n);
    bool ok = take_frames(lc);
    flush(lc); /* what a cancel or steal answered */
    return ok;
}

/* Hand the owner back every task received and not started. lc->mu held. */
static void give_back_queued(lease_conn *lc)
{
    if (lc->qlen == 0)
        return;
    ProtobufCBinaryData ids[TEX_GIVE_BACK_MAX];
    Rpc__PushTask *given[TEX_GIVE_BACK_MAX];
    size_t n = 0;
    while (n < TEX_GIVE_BACK_MAX && lc->qlen > 0) {
        /* From the back: what stays (past the cap) keeps its order. */
        lc->qlen--;
        given[n] = lc->q[(lc->qhead + lc->qlen) % lc->qcap];
        ids[n] = given[n]->spec->task_id;
        n++;
    }
    Rpc__TasksGivenBack m = RPC__TASKS_GIVEN_BACK__INIT;
    m.n_task_ids = n;
    m.task_ids = ids;
    out_frame(lc, MSG_TASKS_GIVEN_BACK, &m.base);
    flush(lc);
    for (size_t i = 0; i < n; i++)
        msg_free(&given[i]->base);
}

void tex__lease_give_back(lease_conn *lc)
{
    pthread_mutex_lock(&lc->mu);
    if (!read_more(lc, 0))
        lc->dead = true;
    give_back_queued(lc);
    pthread_mutex_unlock(&lc->mu);
}

void tex__lease_poll(task_executor *x)
{
    pthread_mutex_lock(&x->mu);
    lease_conn *lc = x->lease;
    if (lc && x->in_task) {
        pthread_mutex_lock(&lc->mu);
        if (!lc->dead && !read_more(lc, 0))
            lc->dead = true;
        pthread_mutex_unlock(&lc->mu);
    }
    pthread_mutex_unlock(&x->mu);
}

/* ------------------------------------------------------------ serving */

/* Run what was received, replying as it goes; between long tasks, look for
 * cancels of the next ones. */
static void run_queued(lease_conn *lc)
{
    task_executor *x = lc->x;
    uint64_t flushed = now_us();
    for (;;) {
        pthread_mutex_lock(&lc->mu);
        Rpc__PushTask *p = lc->dead ? NULL : q_pop(lc);
        pthread_mutex_unlock(&lc->mu);
        if (p == NULL)
            break;
        tex_how how = {
            .as_task = true, .reply = task_reply, .reply_arg = lc, .scheduled_us = p->scheduled_us};
        tex_run_spec(x, p->spec, &how);
        msg_free(&p->base);
        tex__watch(x, true); /* the raylet's frames are read while we serve */
        uint64_t now = now_us();
        if (now - flushed >= FLUSH_AFTER_US) {
            pthread_mutex_lock(&lc->mu);
            flush(lc);
            if (!read_more(lc, 0)) /* cancels of what is queued */
                lc->dead = true;
            pthread_mutex_unlock(&lc->mu);
            flushed = now;
        }
    }
    pthread_mutex_lock(&lc->mu);
    flush(lc);
    pthread_mutex_unlock(&lc->mu);
}

/* The lease's TaskDone to the raylet: the first carries the address (or
 * the failure), the second ends the lease. */
static void lease_done(task_executor *x, const Rpc__TaskSpec *s, int code, const char *text,
                       const char *address, const char *local)
{
    Rpc__Status st = RPC__STATUS__INIT;
    msg_status_set(&st, code, text);
    Rpc__TaskDone d = RPC__TASK_DONE__INIT;
    d.task_id = s->task_id;
    d.status = &st;
    d.owner_id = s->owner_id;
    d.attempt = s->attempt;
    d.worker_pid = x->pid;
    d.node_id.data = x->d.node.b;
    d.node_id.len = NODE_ID_SIZE;
    d.actor_address = (char *)(address ? address : "");
    d.local_address = (char *)(local ? local : "");
    cw_conn_send(x->d.raylet, MSG_TASK_DONE, &d.base);
    cw_conn_flush(x->d.raylet);
}

/* The owner's connection, proved: within LEASE_ACCEPT_MS, else -1. */
static int accept_owner(task_executor *x)
{
    uint64_t deadline = now_ms() + LEASE_ACCEPT_MS;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline || cw_conn_dead(x->d.raylet))
            return -1;
        struct pollfd p[2] = {{.fd = x->lease_lfd, .events = POLLIN},
                              {.fd = x->lease_ufd, .events = POLLIN}};
        int wait = (int)(deadline - now);
        if (poll(p, x->lease_ufd >= 0 ? 2 : 1, wait > 1000 ? 1000 : wait) <= 0)
            continue;
        bool local = !(p[0].revents & POLLIN);
        if (local && !(x->lease_ufd >= 0 && (p[1].revents & POLLIN)))
            continue;
        int fd = accept(local ? x->lease_ufd : x->lease_lfd, NULL, NULL);
        if (fd < 0)
            continue;
        if (!local)
            net_tcp_nodelay(fd);
        if (dserve_handshake(fd, x->d.token) == 0)
            return fd;
        close(fd);
    }
}

void tex__serve_lease(task_executor *x, Rpc__PushTask *p)
{
    const Rpc__TaskSpec *s = p->spec;
    if (x->lease_lfd < 0) {
        if (x->d.token == NULL || x->d.token[0] == '\0') {
            lease_done(x, s, RAYC_EAUTH, "lease: this worker has no cluster token", NULL, NULL);
            return;
        }
        x->lease_lfd = dserve_listen(x->d.node_ip, 16, x->lease_address, sizeof(x->lease_address));
        if (x->lease_lfd < 0) {
            lease_done(x, s, RAYC_EIO, rayc_last_error(), NULL, NULL);
            return;
        }
        /* Owners on this node take a Unix socket: cheaper than TCP
         * loopback per message. Without one they use TCP. */
        x->lease_ufd = dserve_listen_local(16, x->lease_local, sizeof(x->lease_local));
    }
    lease_done(x, s, RAYC_OK, "", x->lease_address, x->lease_local);
    tex__watch(x, true);
    lease_conn lc = {.x = x, .fd = accept_owner(x)};
    if (lc.fd >= 0) {
        pthread_mutex_init(&lc.mu, NULL);
        frame_decoder_init(&lc.dec, FRAME_DEFAULT_MAX);
        pthread_mutex_lock(&x->mu);
        x->lease = &lc;
        pthread_mutex_unlock(&x->mu);
        while (!lc.dead && !cw_conn_dead(x->d.raylet)) {
            run_queued(&lc);
            pthread_mutex_lock(&lc.mu);
            if (!lc.dead && !read_more(&lc, 1000))
                lc.dead = true;
            pthread_mutex_unlock(&lc.mu);
        }
        pthread_mutex_lock(&x->mu);
        x->lease = NULL;
        pthread_mutex_unlock(&x->mu);
        pthread_mutex_destroy(&lc.mu);
        while (lc.qlen > 0) {
            Rpc__PushTask *q = q_pop(&lc);
            msg_free(&q->base);
        }
        free(lc.q);
        free(lc.out);
        frame_decoder_free(&lc.dec);
        close(lc.fd);
    }
    tex__watch(x, false);
    lease_done(x, s, RAYC_OK, "", NULL, NULL);
}
