/*
 * plasma_io.h -- the object store's disk I/O, off the raylet's loop: spill
 * writes, restores and spill-file removals run as jobs on one I/O thread, in
 * the order they were submitted, and their completions come back to the loop
 * (an eventfd watched by the event_base), where the store finishes them.
 *
 * Why a thread: a spill of S bytes takes S / disk bandwidth; on the loop it
 * stalled every client, heartbeats included (issue 13). Why one thread and
 * FIFO: a removal of id's file submitted before a later write of the same id
 * must run first, and one disk gains little from parallel large writes.
 *
 * Without plasma_io_start() (unit tests, fuzzers) every job runs inside
 * plasma_io_submit() and its completion is called before submit returns:
 * the same state machine, synchronous.
 *
 * Ownership: a submitted job belongs to the module until its done callback,
 * which takes it back (the store frees it). Fields marked (thread) are
 * written by the I/O thread before the completion and read by the loop
 * only after it; everything else is the loop's alone.
 * Thread-safety: submit, start and free from the loop thread only.
 */
#ifndef RAYC_PLASMA_IO_H
#define RAYC_PLASMA_IO_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "ids.h"
#include "plasma_spill.h"

enum plasma_io_op {
    PLASMA_IO_WRITE = 1,  /* mem[0, size) -> the spill file of id */
    PLASMA_IO_READ = 2,   /* the spill file of id -> mem[0, size); removed once read */
    PLASMA_IO_REMOVE = 3, /* remove the spill file of id (missing is fine) */
};

typedef struct plasma_io plasma_io;

typedef struct plasma_io_job {
    int op;
    object_id_t id;
    uint8_t *mem;  /* the object's bytes in the arena (WRITE: read, READ: written) */
    uint64_t off;  /* the arena offset of mem (the store's bookkeeping) */
    uint64_t size; /* bytes */
    void *obj;     /* the store's object; NULL once it left while the job ran */
    int status;    /* (thread) 0, RAYC_EIO, RAYC_ENOTFOUND; RAYC_ECANCELLED: never run */
    char msg[256]; /* (thread) why, when status != 0 */
    struct plasma_io_job *next;
} plasma_io_job;

/* Called on the loop for every finished job, which it takes back. */
typedef void (*plasma_io_done_cb)(void *arg, plasma_io_job *job);
/* Called on the loop after the completions of one wake-up (the thread only). */
typedef void (*plasma_io_batch_cb)(void *arg);

/* An I/O context over sp. With hold_file (testing: a disk that stalls;
 * NULL or "": none) the thread starts no job while that file exists.
 * Returns NULL when out of memory. Jobs run inline until plasma_io_start()
 * (and then ignore hold_file: the loop would wait for it). */
plasma_io *plasma_io_new(struct event_base *base, plasma_spill *sp, const char *hold_file,
                         plasma_io_done_cb done, plasma_io_batch_cb batch, void *arg);
/* Start the I/O thread and its eventfd. Returns 0, or -1 with err set (the
 * jobs then keep running inline). */
int plasma_io_start(plasma_io *io, char *err, size_t errlen);
/* Run job (inline, or queued for the thread). Every job gets exactly one
 * done callback. */
void plasma_io_submit(plasma_io *io, plasma_io_job *job);
/* Stop the thread: it finishes the job it is running and is joined; every
 * job not taken back yet gets its done callback here (those that never ran
 * with RAYC_ECANCELLED). Jobs submitted afterwards run inline. Accepts NULL
 * and a context whose thread never started (nothing to do). */
void plasma_io_stop(plasma_io *io);
/* plasma_io_stop(), then free. Accepts NULL. */
void plasma_io_free(plasma_io *io);

#endif
