/*
 * plasma_io.c -- the object store's I/O thread; see plasma_io.h.
 *
 * Two lists under one mutex: `todo` (loop -> thread, FIFO) and `done`
 * (thread -> loop). The thread takes one job at a time, runs it with no lock
 * held, puts it on `done` and bumps the eventfd; the loop's read callback
 * takes the whole `done` list and completes the jobs in order. The loop
 * never waits for the thread except in plasma_io_free().
 */
#include "plasma_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"

struct plasma_io {
    struct event_base *base;
    plasma_spill *sp;
    char hold[512]; /* testing: no job starts while this file exists */
    plasma_io_done_cb done_cb;
    plasma_io_batch_cb batch_cb;
    void *arg;

    bool started;
    int efd;
    struct event *ev;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;                       /* under mu */
    plasma_io_job *todo, *todo_tail; /* under mu */
    plasma_io_job *done, *done_tail; /* under mu */
};

/* Do the job's disk work. Runs on the I/O thread (or inline). */
static void run_job(plasma_spill *sp, plasma_io_job *j)
{
    int rc = 0;
    switch (j->op) {
    case PLASMA_IO_WRITE:
        rc = plasma_spill_write(sp, &j->id, j->mem, j->size);
        break;
    case PLASMA_IO_READ:
        rc = plasma_spill_read(sp, &j->id, j->mem, j->size);
        if (rc == 0)
            plasma_spill_remove(sp, &j->id);
        break;
    case PLASMA_IO_REMOVE:
        plasma_spill_remove(sp, &j->id);
        break;
    }
    j->status = rc;
    j->msg[0] = '\0';
    if (rc != 0) /* rayc_last_error() is per thread: copy it here */
        snprintf(j->msg, sizeof(j->msg), "%s", rayc_last_error());
}

/* A disk that stalls (testing): wait while the hold file exists, looking
 * every 20 ms, or until stopped; under mu. */
static void stalled_disk(plasma_io *io)
{
    while (!io->stop && access(io->hold, F_OK) == 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 20 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&io->cv, &io->mu, &until);
    }
}

static void *io_main(void *arg)
{
    plasma_io *io = arg;
    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (!io->stop && io->todo == NULL)
            pthread_cond_wait(&io->cv, &io->mu);
        if (io->hold[0] != '\0')
            stalled_disk(io);
        if (io->stop)
            break;
        plasma_io_job *j = io->todo;
        io->todo = j->next;
        if (io->todo == NULL)
            io->todo_tail = NULL;
        pthread_mutex_unlock(&io->mu);
        run_job(io->sp, j);
        pthread_mutex_lock(&io->mu);
        j->next = NULL;
        if (io->done_tail)
            io->done_tail->next = j;
        else
            io->done = j;
        io->done_tail = j;
        uint64_t one = 1;
        ssize_t w = write(io->efd, &one, sizeof(one)); /* never blocks: a counter */
        (void)w;
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

/* Complete a list of jobs (taken off the shared lists) in order. */
static void complete_all(plasma_io *io, plasma_io_job *j)
{
    while (j) {
        plasma_io_job *next = j->next;
        j->next = NULL;
        io->done_cb(io->arg, j);
        j = next;
    }
}

/* The eventfd is readable: jobs are done. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    plasma_io *io = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
    pthread_mutex_lock(&io->mu);
    plasma_io_job *j = io->done;
    io->done = io->done_tail = NULL;
    pthread_mutex_unlock(&io->mu);
    if (j == NULL)
        return;
    complete_all(io, j);
    if (io->batch_cb)
        io->batch_cb(io->arg);
}

plasma_io *plasma_io_new(struct event_base *base, plasma_spill *sp, const char *hold_file,
                         plasma_io_done_cb done, plasma_io_batch_cb batch, void *arg)
{
    plasma_io *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return NULL;
    io->base = base;
    io->sp = sp;
    if (hold_file != NULL)
        snprintf(io->hold, sizeof(io->hold), "%s", hold_file);
    io->done_cb = done;
    io->batch_cb = batch;
    io->arg = arg;
    io->efd = -1;
    return io;
}

int plasma_io_start(plasma_io *io, char *err, size_t errlen)
{
    if (io->started)
        return 0;
    io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    io->ev = event_new(io->base, io->efd, EV_READ | EV_PERSIST, on_done, io);
    if (io->ev == NULL || event_add(io->ev, NULL) != 0) {
        snprintf(err, errlen, "cannot watch the I/O thread's eventfd");
        goto fail;
    }
    pthread_mutex_init(&io->mu, NULL);
    pthread_cond_init(&io->cv, NULL);
    int rc = pthread_create(&io->thread, NULL, io_main, io);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the spill I/O thread: %s", strerror(rc));
        pthread_cond_destroy(&io->cv);
        pthread_mutex_destroy(&io->mu);
        goto fail;
    }
    io->started = true;
    return 0;
fail:
    if (io->ev)
        event_free(io->ev);
    io->ev = NULL;
    close(io->efd);
    io->efd = -1;
    return -1;
}

void plasma_io_submit(plasma_io *io, plasma_io_job *job)
{
    job->next = NULL;
    if (!io->started) {
        run_job(io->sp, job);
        complete_all(io, job);
        return;
    }
    pthread_mutex_lock(&io->mu);
    if (io->todo_tail)
        io->todo_tail->next = job;
    else
        io->todo = job;
    io->todo_tail = job;
    pthread_cond_signal(&io->cv);
    pthread_mutex_unlock(&io->mu);
}

void plasma_io_stop(plasma_io *io)
{
    if (io == NULL || !io->started)
        return;
    pthread_mutex_lock(&io->mu);
    io->stop = true;
    pthread_cond_signal(&io->cv);
    pthread_mutex_unlock(&io->mu);
    pthread_join(io->thread, NULL);
    io->started = false; /* from here on, jobs run inline */
    event_free(io->ev);
    io->ev = NULL;
    close(io->efd);
    io->efd = -1;
    pthread_cond_destroy(&io->cv);
    pthread_mutex_destroy(&io->mu);
    /* Done first (they ran), then the ones that never did. */
    plasma_io_job *done = io->done, *todo = io->todo;
    io->done = io->done_tail = io->todo = io->todo_tail = NULL;
    complete_all(io, done);
    for (plasma_io_job *j = todo; j; j = j->next) {
        j->status = RAYC_ECANCELLED;
        snprintf(j->msg, sizeof(j->msg), "the store is closing");
    }
    complete_all(io, todo);
}

void plasma_io_free(plasma_io *io)
{
    if (io == NULL)
        return;
    plasma_io_stop(io);
    free(io);
}
