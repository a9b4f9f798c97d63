/*
 * listener.h -- accepting connections on a listening socket, on a libevent
 * loop, without spinning when the process runs out of descriptors.
 *
 * Each readable event accepts up to LISTENER_BURST connections and hands each
 * new descriptor (non-blocking, close-on-exec) to the callback. When accept
 * fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the listener
 * stops watching the socket -- a level-triggered listener would otherwise be
 * readable forever and spin the loop -- and tries again on a timer that backs
 * off from 50 ms to 1 s; it logs one line per LISTENER_LOG_EVERY_MS at most,
 * with how many times it had to pause.
 *
 * Thread-safety: a listener belongs to its loop's thread.
 */
#ifndef RAYC_LISTENER_H
#define RAYC_LISTENER_H

#include <event2/event.h>
#include <stdint.h>

#define LISTENER_BURST        64    /* accepts per readable event (fairness) */
#define LISTENER_RETRY_MIN_MS 50    /* first retry after running out of fds */
#define LISTENER_RETRY_MAX_MS 1000  /* longest back-off */
#define LISTENER_LOG_EVERY_MS 10000 /* one "out of descriptors" line per period */

typedef struct listener listener;

/* A new connection: fd is the caller's (close it if unwanted). */
typedef void (*listener_cb)(void *arg, int fd);

/* Start accepting on `fd` (a listening socket; the listener does not close
 * it). `name` names it in log lines ("gcs", "raylet unix"). Returns NULL on
 * allocation failure. */
listener *listener_new(struct event_base *base, int fd, const char *name, listener_cb cb,
                       void *arg);
/* Stop accepting and free. Accepts NULL. */
void listener_free(listener *l);
/* Times accept ran out of resources and the listener paused (for tests). */
uint64_t listener_pauses(const listener *l);

#endif
