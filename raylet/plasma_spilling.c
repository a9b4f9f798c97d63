/*
 * plasma_spilling.c -- the store's side of spilling and restoring: starting
 * jobs on the I/O thread (plasma_io.h) and finishing them when they come
 * back on the loop.
 *
 * An object with a job in flight (o->io) keeps its state until the job is
 * done:
 *   - spill (WRITE): still SEALED and readable in the arena; out of the LRU
 *     lists so nothing picks it again; its bytes count in spilling_bytes,
 *     which the pressure policy treats as coming free. Done: if nobody
 *     pinned it meanwhile, its block is freed and it is SPILLED; if someone
 *     did, it stays in memory and the file goes; if the write failed, it
 *     stays in memory and spilling pauses (SPILL_PAUSE_MS).
 *   - restore (READ): still SPILLED (gets wait for it; waits count it as
 *     here); its new block is allocated already. Done: SEALED in that block
 *     (the thread removed the file), or, failed, the block is freed and the
 *     gets waiting for it fail with RAYC_EIO.
 *   - an object that leaves meanwhile (deleted, owner gone) is detached from
 *     its job (job->obj = NULL): the block the thread still uses is freed
 *     when the job is done, and its file is removed by a job queued behind
 *     (FIFO: before any later write of the same id).
 * Runs in the raylet's single loop thread. See plasma_internal.h.
 */
#include "plasma_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "util.h"

static plasma_io_job *new_job(int op, const plasma__obj *o)
{
    plasma_io_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->op = op;
    j->id = o->id;
    j->size = o->size;
    return j;
}

void plasma__spill_file_remove(plasma_store *s, const object_id_t *id)
{
    plasma_io_job *j = calloc(1, sizeof(*j));
    if (j == NULL) { /* no memory for a job: remove it here, in the loop */
        plasma_spill_remove(s->sp, id);
        return;
    }
    j->op = PLASMA_IO_REMOVE;
    j->id = *id;
    plasma_io_submit(s->io, j);
}

int plasma__spill_start(plasma_store *s, plasma__obj *o)
{
    CHECK(o->state == PLASMA_SEALED && o->io == NULL && o->pins == 0);
    plasma_io_job *j = new_job(PLASMA_IO_WRITE, o);
    if (j == NULL)
        return RAYC_ENOMEM;
    j->off = o->off;
    j->mem = s->mem + o->off;
    j->obj = o;
    o->io = j;
    plasma__lru_remove(s, o);
    s->spilling_bytes += plasma__round_block(o->size);
    s->nspilling++;
    plasma_io_submit(s->io, j); /* inline (no thread): done before it returns */
    return 0;
}

int plasma__restore_one(plasma_store *s, plasma__obj *o)
{
    if (o->io != NULL)
        return 0; /* in flight already */
    uint64_t off;
    int rc = plasma__make_room(s, o->size, &off);
    if (rc != 0)
        return rc;
    plasma_io_job *j = new_job(PLASMA_IO_READ, o);
    if (j == NULL) {
        CHECK(plasma_free(s->al, off) == 0);
        return RAYC_ENOMEM;
    }
    j->off = off;
    j->mem = s->mem + off;
    j->obj = o;
    o->io = j;
    s->nrestoring++;
    plasma_io_submit(s->io, j);
    return 0;
}

void plasma__io_detach(plasma_store *s, plasma__obj *o)
{
    plasma_io_job *j = o->io;
    j->obj = NULL;
    o->io = NULL;
    if (j->op == PLASMA_IO_WRITE) /* a READ's object is SPILLED: obj_drop removes the file */
        plasma__spill_file_remove(s, &o->id);
}

/* The gets waiting for o fail with status. */
static void fail_gets(plasma_store *s, plasma__obj *o, int status)
{
    for (plasma__slot *sl = o->waiters; sl; sl = sl->next)
        if (sl->r->kind == REQ_GET) {
            sl->r->error = status;
            plasma__queue_req(s, sl->r);
        }
}

static void write_done(plasma_store *s, plasma_io_job *j)
{
    plasma__obj *o = j->obj;
    s->spilling_bytes -= plasma__round_block(j->size);
    s->nspilling--;
    s->space_dirty = true;
    if (o == NULL) { /* it left while being written: the block is free now */
        CHECK(plasma_free(s->al, j->off) == 0);
        return;
    }
    o->io = NULL;
    if (j->status != 0) {
        if (j->status != RAYC_ECANCELLED) {
            log_warn("plasma: spilling %" PRIu64 " bytes failed, spilling paused: %s", o->size,
                     j->msg);
            s->spill_pause_until = now_ms() + SPILL_PAUSE_MS;
        }
        plasma__lru_touch(s, o);
        return;
    }
    if (o->pins > 0) { /* read meanwhile: it stays here, the copy on disk goes */
        plasma__spill_file_remove(s, &o->id);
        return;
    }
    CHECK(plasma_free(s->al, o->off) == 0);
    o->state = PLASMA_SPILLED;
    o->off = 0;
    s->nspilled++;
    s->spilled_bytes += o->size;
    s->spills++;
    plasma__notify(s, o);
}

static void read_done(plasma_store *s, plasma_io_job *j)
{
    plasma__obj *o = j->obj;
    s->nrestoring--;
    if (o == NULL || j->status != 0) {
        CHECK(plasma_free(s->al, j->off) == 0);
        s->space_dirty = true;
    }
    if (o == NULL)
        return;
    o->io = NULL;
    if (j->status != 0) {
        if (j->status != RAYC_ECANCELLED)
            log_error("plasma: restore failed: %s", j->msg);
        fail_gets(s, o, RAYC_EIO);
        return;
    }
    o->state = PLASMA_SEALED;
    o->off = j->off;
    s->nspilled--;
    s->spilled_bytes -= o->size;
    s->restores++;
    plasma__note_peak(s);
    plasma__lru_touch(s, o);
    plasma__notify(s, o);
}

void plasma__io_done(void *arg, plasma_io_job *j)
{
    plasma_store *s = arg;
    if (j->op == PLASMA_IO_WRITE)
        write_done(s, j);
    else if (j->op == PLASMA_IO_READ)
        read_done(s, j);
    else if (j->status != 0 && j->status != RAYC_ECANCELLED)
        log_warn("plasma: removing a spill file: %s", j->msg);
    free(j);
}
