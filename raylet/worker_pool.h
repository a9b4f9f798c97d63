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
 * Threading: the raylet's loop thread.
 */
#ifndef RAYC_WORKER_POOL_H
#define RAYC_WORKER_POOL_H

#include "raylet_int.h"

enum worker_state {
    W_STARTING = 0, /* process started, not connected yet */
    W_IDLE = 1,     /* connected, no lease */
    W_LEASED = 2,   /* running tasks of a lease */
    W_DEAD = 3,     /* gone; waiting to be reaped */
};

struct rtask;

struct worker {
    worker_pool *pool;
    worker_id_t id;
    char hex[ID_HEX_MAX];
    pid_t pid;
    int state;
    uint32_t job_id; /* 0: not bound to a job yet */
    client *cl;      /* its connection, once connected */
    res_set lease;   /* resources its lease holds */
    bool blocked;    /* its running task waits in get/wait; CPU given back */
    double blocked_cpu;
    int depth;                             /* tasks pushed and not done */
    struct rtask *tasks_head, *tasks_tail; /* pushed tasks, in order */
    uint64_t idle_since;
    bool exiting; /* asked to exit; do not lease */
    /* output */
    int out_fd, err_fd;   /* read ends of its stdout/stderr pipes */
    int log_out, log_err; /* log files */
    struct event *out_ev, *err_ev;
    char *linebuf[2];
    size_t linelen[2];
    worker *prev, *next;
};

/* Returns NULL with err set on failure (cannot find rayc_worker, ...). */
worker_pool *wpool_new(node_manager *nm, char *err, size_t errlen);
/* Kill every worker (SIGKILL) and free the pool. NULL-safe. */
void wpool_free(worker_pool *p);

/* Start one worker process. Returns it, or NULL (logged) on failure. */
worker *wpool_start(worker_pool *p);
/* Start workers until at least n exist. */
void wpool_prestart(worker_pool *p, int n);
/* A worker connected with this id; returns its record (state IDLE) or NULL
 * if the id is not one the pool started. */
worker *wpool_connected(worker_pool *p, const worker_id_t *id, client *cl);
/* Its connection closed: it is dead for the scheduler from now on. */
void wpool_disconnected(worker_pool *p, worker *w);
/* Kill a worker (SIGKILL). Its death is reported like any other. */
void wpool_kill(worker_pool *p, worker *w);
/* Kill every worker bound to job (the job ended). */
void wpool_kill_job(worker_pool *p, uint32_t job_id);
/* An idle worker for job: one already bound to it, else an unbound one.
 * NULL if none. */
worker *wpool_idle_for_job(worker_pool *p, uint32_t job_id);
/* Workers alive (starting + connected), and how many are starting. */
int wpool_size(const worker_pool *p);
int wpool_starting(const worker_pool *p);
int wpool_max(const worker_pool *p);
/* Iterate over live workers. */
worker *wpool_first(worker_pool *p);

#endif
