/*
 * worker_main.c -- rayc_worker: a process the raylet starts to run tasks.
 * It connects back to the raylet named in its environment, starts a task
 * executor over that connection and runs what it is pushed until the raylet
 * goes away.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include "actor_executor.h"
#include "core.h"
#include "log.h"
#include "rayc.h"
#include "task_executor.h"
#include "task_log.h"

/* Task code calls the API from this process, resolved when its library is
 * dlopen'ed. rayc_worker links librayc.a, from which the linker takes only
 * the files something references: reference every entry point of rayc.h so
 * none is left out (the task entry points are in a file nothing else here
 * calls). */
typedef void (*api_fn)(void);
__attribute__((used)) static const api_fn rayc_api[] = {
    (api_fn)rayc_init,          (api_fn)rayc_shutdown,
    (api_fn)rayc_node_id,       (api_fn)rayc_nodes,
    (api_fn)rayc_strerror,      (api_fn)rayc_last_error,
    (api_fn)rayc_put,           (api_fn)rayc_put_alloc,
    (api_fn)rayc_put_seal,      (api_fn)rayc_get,
    (api_fn)rayc_value_release, (api_fn)rayc_wait,
    (api_fn)rayc_ref_retain,    (api_fn)rayc_ref_release,
    (api_fn)rayc_submit,        (api_fn)rayc_cancel,
    (api_fn)rayc_submit_stream, (api_fn)rayc_stream_next,
    (api_fn)rayc_stream_close,  (api_fn)rayc_return,
    (api_fn)rayc_return_alloc,  (api_fn)rayc_fail,
    (api_fn)rayc_yield,         (api_fn)rayc_yield_alloc,
    (api_fn)rayc_actor_create,  (api_fn)rayc_actor_call,
    (api_fn)rayc_actor_get,     (api_fn)rayc_actor_kill,
    (api_fn)rayc_actor_release, (api_fn)rayc_actor_state,
    (api_fn)rayc_actor_self,    (api_fn)rayc_actor_call_stream,
    (api_fn)rayc_pg_create,     (api_fn)rayc_pg_wait,
    (api_fn)rayc_pg_remove,     (api_fn)rayc_pg_bundle_node,
};

/* The executor over the core's connection: it takes its frames from the
 * router and is told when the running task blocks. */
static task_executor *start_executor(core_t *c)
{
    tex_deps d = {
        .raylet = c->raylet,
        .store = c->store,
        .arena = c->arena,
        .inline_max = c->inline_max,
        .task = &c->task,
        .put_index = &c->put_index,
        .job = &c->job,
        .events = c->events,
    };
    task_executor *x = tex_new(&d);
    const char *ip = getenv("RAYC_NODE_IP");
    actor_exec_deps ad = {
        .raylet = c->raylet,
        .token = c->token,
        .node_ip = ip && *ip ? ip : "127.0.0.1",
        .node = c->node_id,
    };
    if (x == NULL || tex_register(x, &c->router) != 0 || actor_exec_install(x, &ad) != 0) {
        tex_free(x);
        return NULL;
    }
    c->blocker = (core_blocker){
        .running = tex_running, .block = tex_block, .unblock = tex_unblock, .arg = x};
    return x;
}

int main(void)
{
    const char *sock = getenv("RAYC_RAYLET_SOCKET");
    const char *id = getenv("RAYC_WORKER_ID");
    /* Lines reach the driver as they are written, each task's output
     * headed by a line naming it (task_log.h). */
    if (tlog_install() != 0)
        setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Die with the raylet that started us (it may be gone already). */
    const char *raylet_pid = getenv("RAYC_RAYLET_PID");
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (raylet_pid && getppid() != (pid_t)atoi(raylet_pid))
        return 1;
    if (sock == NULL || id == NULL) {
        fprintf(stderr, "rayc_worker: started by hand? RAYC_RAYLET_SOCKET and RAYC_WORKER_ID "
                        "are set by the raylet\n");
        return 2;
    }
    int rc = core__init_worker(sock, id);
    if (rc != 0) {
        fprintf(stderr, "rayc_worker: %s\n", rayc_last_error());
        return 1;
    }
    task_executor *x = start_executor(&rayc__core);
    if (x == NULL) {
        fprintf(stderr, "rayc_worker: out of memory\n");
        return 1;
    }
    rc = tex_run(x);
    tev_stop(rayc__core.events); /* the last task events go out */
    return rc;
}
