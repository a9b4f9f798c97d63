/*
 * worker_pool.h -- the raylet's rayc_worker processes.
 *
 * The pool starts workers (prestarting num_cpus at boot), learns when each
 * connects, binds each to one job at a time, ends idle ones after
 * idle_worker_timeout_ms (keeping the prestarted number), and notices a
 * death at once: the worker's socket closes when it dies, and SIGCHLD reaps
 * it. Worker stdout/stderr arrive on pipes; every line goes to
 * logs/worker-<id>.out|err and to the driver of the worker's job.
 *
 * Zygote (wpool_opts.zygote): workers are forked by a template process,
 * `rayc_worker --zygote`, exec'ed once with its libraries loaded, instead of
 * exec'ing each (docs/actors.md, "Worker start"). They are still the
 * raylet's children (CLONE_PARENT) with fresh ids, sockets and pids; the
 * pool falls back to exec when the zygote fails.
 *
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_WORKER_POOL_H
#define RAYC_WORKER_POOL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ids.h"

typedef struct worker_pool worker_pool;
typedef struct worker worker;
struct client;

enum worker_state {
    W_STARTING = 0, /* process started, not connected yet */
    W_IDLE = 1,     /* connected, no lease */
    W_LEASED = 2,   /* holds a lease (wpool_lease) */
    W_DEAD = 3,     /* gone; waiting to be reaped */
    W_ACTOR = 4,    /* holds an actor for its life: never leased again */
};

/* A worker process. The pool sets every field; its users read them, except
 * `lease`, which belongs to the lease manager. */
struct worker {
    worker_pool *pool;
    worker_id_t id;
    char hex[ID_HEX_MAX];
    pid_t pid;
    int state;
    uint32_t job_id;   /* 0: not bound to a job yet */
    struct client *cl; /* its connection, once connected */
    bool blocked;      /* waits in get/wait: does not count against the cap */
    uint64_t idle_since;
    bool exiting;         /* asked to exit; do not lease */
    void *lease;          /* the lease manager's record (NULL: none yet) */
    void *actor;          /* the task manager's actor record (W_ACTOR) */
    bool keep_on_job_end; /* a detached actor: outlives its job */
    /* output */
    int out_fd, err_fd;   /* read ends of its stdout/stderr pipes */
    int log_out, log_err; /* log files */
    struct event *out_ev, *err_ev;
    char *linebuf[2]; /* an unfinished output line; allocated at the first one */
    size_t linelen[2];
    worker *prev, *next;
};

/* How the pool reports to its user. */
typedef struct {
    /* One whole line (with its newline) the worker wrote, when it is bound
     * to a job: is_err for stderr. */
    void (*output)(void *arg, worker *w, bool is_err, const char *data, size_t n);
    /* The worker is gone for the scheduler (its socket closed or it was
     * reaped): end its lease. Its state is still what it was. */
    void (*died)(void *arg, worker *w);
    /* Dead workers were reaped: room for new ones. */
    void (*reaped)(void *arg);
} wpool_hooks;

typedef struct {
    struct event_base *base;
    const char *worker_bin;  /* NULL: rayc_worker next to this binary */
    const char *log_dir;     /* worker-<id>.out|err go here */
    const char *const *env;  /* NAME=value for every worker (RAYC_WORKER_ID is added) */
    int prestart;            /* workers kept even when idle */
    int max;                 /* cap of live workers (blocked ones do not count) */
    int64_t idle_timeout_ms; /* idle workers beyond prestart end after this */
    bool zygote;             /* fork workers from a zygote instead of exec'ing each */
} wpool_opts;

/* Returns NULL with err set on failure (cannot find rayc_worker, ...). The
 * strings of o are borrowed and must outlive the pool. */
worker_pool *wpool_new(const wpool_opts *o, const wpool_hooks *hooks, void *arg, char *err,
                       size_t errlen);
/* Kill every worker (SIGKILL) and free the pool. NULL-safe. */
void wpool_free(worker_pool *p);

/* Start one worker process. Returns it, or NULL (logged) on failure. */
worker *wpool_start(worker_pool *p);
/* Start workers until at least n exist. */
void wpool_prestart(worker_pool *p, int n);
/* Start up to n workers for tasks waiting for one, counting those already
 * starting, within the cap. */
void wpool_want(worker_pool *p, int n);
/* A worker connected with this id; returns its record (state IDLE) or NULL
 * if the id is not one the pool started. */
worker *wpool_connected(worker_pool *p, const worker_id_t *id, struct client *cl);
/* Its connection closed: it is dead for the scheduler from now on. */
void wpool_disconnected(worker_pool *p, worker *w);
/* How a dying worker ended ("killed by SIGSEGV", "exited with code 3"), or
 * "" when that cannot be told yet. Into buf, which it returns. */
const char *wpool_exit_text(const worker *w, char *buf, size_t len);
/* Kill a worker (SIGKILL). Its death is reported like any other. */
void wpool_kill(worker_pool *p, worker *w);
/* Kill every worker bound to job (the job ended). */
void wpool_kill_job(worker_pool *p, uint32_t job_id);
/* An idle worker for job: one already bound to it, else an unbound one.
 * NULL if none. */
worker *wpool_idle_for_job(worker_pool *p, uint32_t job_id);
/* Bind an unbound worker to a job (its output goes to that job's driver). */
void wpool_bind(worker_pool *p, worker *w, uint32_t job_id);
/* The worker holds an actor from now on (-> W_ACTOR): not idle, never
 * leased again, not counted against the cap, not ended for idleness. */
void wpool_dedicate(worker_pool *p, worker *w);
/* The worker took a lease (IDLE -> LEASED) or gave it back (-> IDLE). */
void wpool_lease(worker_pool *p, worker *w);
void wpool_unlease(worker_pool *p, worker *w);
/* The worker's task blocks in get/wait (or no longer does). */
void wpool_set_blocked(worker_pool *p, worker *w, bool blocked);
/* Workers alive (starting + connected), and how many are starting. */
int wpool_size(const worker_pool *p);
int wpool_starting(const worker_pool *p);
/* Worker processes started since the pool was made. */
uint64_t wpool_started(const worker_pool *p);
/* The cap: max plus the leased workers blocked in get/wait. */
int wpool_max(const worker_pool *p);
/* Iterate over live workers. */
worker *wpool_first(worker_pool *p);

#endif
