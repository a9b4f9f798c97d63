/*
 * listener.c -- see listener.h. Runs in the owning daemon's event-loop thread.
 */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

struct listener {
    int fd;
    char name[32];
    listener_cb cb;
    void *arg;
    struct event *rev;   /* readable listening socket */
    struct event *retry; /* paused: try again */
    int backoff_ms;
    uint64_t pauses;
    uint64_t pauses_logged; /* pauses already reported */
    uint64_t last_log_ms;
};

static void on_readable(evutil_socket_t fd, short what, void *arg);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    listener *l = arg;
    event_add(l->rev, NULL);
    on_readable(l->fd, EV_READ, l);
}

/* Out of resources: stop watching the socket and try again later. */
static void pause_accepting(listener *l, int err)
{
    event_del(l->rev);
    l->pauses++;
    uint64_t now = now_ms();
    if (l->last_log_ms == 0 || now - l->last_log_ms >= LISTENER_LOG_EVERY_MS) {
        log_syserr(err, "%s: cannot accept (paused %llu times since the last report); retrying",
                   l->name, (unsigned long long)(l->pauses - l->pauses_logged));
        l->last_log_ms = now;
        l->pauses_logged = l->pauses;
    }
    struct timeval tv = {l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000};
    evtimer_add(l->retry, &tv);
    l->backoff_ms *= 2;
    if (l->backoff_ms > LISTENER_RETRY_MAX_MS)
        l->backoff_ms = LISTENER_RETRY_MAX_MS;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    listener *l = arg;
    for (int i = 0; i < LISTENER_BURST; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(l, errno);
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_syserr(errno, "%s: accept", l->name);
            return;
        }
        l->backoff_ms = LISTENER_RETRY_MIN_MS;
        l->cb(l->arg, c);
    }
}

listener *listener_new(struct event_base *base, int fd, const char *name, listener_cb cb, void *arg)
{
    listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->fd = fd;
    snprintf(l->name, sizeof(l->name), "%s", name ? name : "listener");
    l->cb = cb;
    l->arg = arg;
    l->backoff_ms = LISTENER_RETRY_MIN_MS;
    l->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, l);
    l->retry = evtimer_new(base, on_retry, l);
    if (l->rev == NULL || l->retry == NULL || event_add(l->rev, NULL) != 0) {
        listener_free(l);
        return NULL;
    }
    return l;
}

void listener_free(listener *l)
{
    if (l == NULL)
        return;
    if (l->rev)
        event_free(l->rev);
    if (l->retry)
        event_free(l->retry);
    free(l);
}

uint64_t listener_pauses(const listener *l)
{
    return l->pauses;
}
