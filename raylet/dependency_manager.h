/*
 * dependency_manager.h -- waiting for a task's arguments (Ray's dependency
 * manager): a task is dispatched only when every argument it takes by
 * reference is sealed in the local store (small values travel inline in the
 * spec and need nothing).
 *
 * In a cluster of several nodes the arguments absent here are pulled first
 * (through the pull callback: the object manager), each from the node the
 * spec names as a holder if any; an argument that cannot be had is reported
 * (lost) so its owner can rebuild it, and the task fails with
 * RAYC_EOBJECT_LOST. Then the store is asked to wait until every argument is
 * sealed here.
 *
 * No wait is without a way out: a seal wait ends after DM_RECHECK_MS, and
 * whatever is still missing is checked again -- pulled again when other
 * nodes exist (from any copy; a spilled copy counts as here), and logged
 * with its state (at 1, 2, 4, 8... rounds) when it cannot be had.
 *
 * An argument pulled for a task is pinned for it from the moment it is
 * local (pulled copies are evictable) until the task leaves (dm_release),
 * so it cannot be evicted between its arrival and the task's run; a copy
 * that was here already (pulled for another task or a get) is pinned for it
 * once all its arguments are here. Primary
 * copies are not pinned: they are never evicted, only spilled, and a
 * spilled argument is restored by the worker's get. Only the first 64
 * arguments of a task are pinned; the re-check covers the others.
 *
 * Admission (no thrashing when the store is full of pinned arguments): a
 * task whose arguments must be pulled starts pulling only while the bytes
 * of absent arguments of the tasks admitted before it (held until each
 * leaves) fit 1/DM_PIN_SHARE of the store; the others wait in arrival order
 * and are admitted as tasks leave. A pull that finds no room (RAYC_ESTORE_FULL)
 * does not fail the task: the re-check pulls again. dm_describe says why a
 * task waits (for the raylet's log and `rayc status`).
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_DEPENDENCY_MANAGER_H
#define RAYC_DEPENDENCY_MANAGER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "ids.h"
#include "plasma_store.h"
#include "task.h"

#define DM_RECHECK_MS 1000 /* a seal wait re-checks what is missing this often */
#define DM_PIN_SHARE  2    /* tasks here may hold 1/DM_PIN_SHARE of the store in pulled arguments */

typedef struct dependency_manager dependency_manager;

/* The end of one pull: status RAYC_OK when the object is sealed here. */
typedef void (*dm_pulled_cb)(void *arg, const object_id_t *id, int status, const char *msg);

typedef struct {
    /* Make id local (hint: a node believed to hold it, or NULL); cb exactly
     * once, maybe before this returns. */
    void (*pull)(void *ctx, const object_id_t *id, const node_id_t *hint, dm_pulled_cb cb,
                 void *arg);
    /* True when other nodes exist to pull from. */
    bool (*multi_node)(void *ctx);
    /* An argument of t could not be had (msg says why). */
    void (*lost)(void *ctx, rtask *t, const object_id_t *id, const char *msg);
    /* The wait for t ended: RAYC_OK (every argument sealed here, or t was
     * cancelled meanwhile: t->cancelled), else an error and why. */
    void (*done)(void *ctx, rtask *t, int status, const char *msg);
    void *ctx;
} dm_env;

/* store and base (timers; NULL: no admission queue timer, for tests) are
 * borrowed; env is copied. NULL on allocation failure. */
dependency_manager *dm_new(struct event_base *base, plasma_store *store, const dm_env *env);
/* Cancel every wait without calling done (the tasks are the caller's). NULL-safe. */
void dm_free(dependency_manager *dm);

/* Wait for t's store arguments (t becomes T_WAITING_DEPS); done runs once. */
void dm_wait(dependency_manager *dm, rtask *t);
/* t leaves the node (ran, failed, cancelled): drop the pins held for it
 * and its share of the pin budget. Call before t is freed; harmless for a
 * task that holds none. */
void dm_release(dependency_manager *dm, rtask *t);
/* t was cancelled (t->cancelled set): if it waits for admission, its wait
 * ends now (done runs); a wait in progress ends at its next step. */
void dm_cancel(dependency_manager *dm, rtask *t);
/* The store is full of pulled arguments: tasks here wait for admission, or
 * the admitted ones hold the whole budget. */
bool dm_pressed(const dependency_manager *dm);
/* Why t (T_WAITING_DEPS) still waits, one line into buf ("task f waits 12 s
 * for object <hex>: store full"); returns its length (0: t does not wait). */
size_t dm_describe(const dependency_manager *dm, const rtask *t, char *buf, size_t len);

#endif
