/*
 * worker_main.c -- rayc_worker: a process the raylet starts to run tasks.
 * It connects back to the raylet named in its environment, starts a task
 * executor over that connection and runs what it is pushed until the raylet
 * goes away.
 *
 * `rayc_worker --zygote` is the raylet's template worker (worker_pool.h,
 * "Zygote"): exec'ed once, its libraries loaded, it waits on fd 3 for
 * requests (a worker id, the new worker's stdout and stderr) and forks a
 * worker for each, as a child of the raylet (CLONE_PARENT), answering with
 * its pid. The child then starts like an exec'ed worker: its own id, its
 * own connections, job code loaded per job. The zygote itself stays single
 * threaded and makes nothing a worker keeps (no connection, no id, no
 * random state), so each child starts from a clean copy.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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
        .token = c->token,
        .node = c->node_id,
    };
    const char *ip = getenv("RAYC_NODE_IP");
    d.node_ip = ip && *ip ? ip : "127.0.0.1";
    task_executor *x = tex_new(&d);
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

#define ZYGOTE_FD 3 /* the raylet's end of the request socket */

/* One request: the worker id (hex) and its stdout and stderr. Returns the
 * id's length, 0 when the raylet closed the socket, -1 on a bad request. */
static ssize_t zygote_recv(char *id, size_t cap, int fds[2])
{
    char ctl[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = {id, cap - 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    ssize_t n;
    while ((n = recvmsg(ZYGOTE_FD, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return n < 0 ? 0 : n;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
        return -1;
    memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
    id[n] = '\0';
    return n;
}

/* The zygote's loop: fork a worker per request. Returns only in a new
 * worker (0), with its id in the environment and its output in place; the
 * zygote exits when the raylet closes the socket. */
static int zygote(char *flag)
{
    for (;;) {
        char id[128];
        int fds[2] = {-1, -1};
        ssize_t n = zygote_recv(id, sizeof(id), fds);
        if (n == 0)
            _exit(0);
        int32_t reply = -EINVAL;
        if (n > 0) {
            fflush(NULL);
            /* A fork whose child is the raylet's, not ours: the raylet
             * reaps it, sees its exit status, and its death signal
             * (PDEATHSIG) follows the raylet. No thread runs here, so no
             * lock is held and no fork handler is owed. */
            pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
            if (pid == 0) {
                close(ZYGOTE_FD);
                if (dup2(fds[0], 1) < 0 || dup2(fds[1], 2) < 0)
                    _exit(1);
                close(fds[0]);
                close(fds[1]);
                setenv("RAYC_WORKER_ID", id, 1);
                memset(flag, 0, strlen(flag)); /* ps shows a worker, not a zygote */
                prctl(PR_SET_NAME, "rayc_worker", 0, 0, 0);
                return 0;
            }
            reply = pid > 0 ? (int32_t)pid : -errno;
        }
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        if (send(ZYGOTE_FD, &reply, sizeof(reply), MSG_NOSIGNAL) != sizeof(reply))
            _exit(0);
    }
}

int main(int argc, char **argv)
{
    const char *raylet_pid = getenv("RAYC_RAYLET_PID");
    if (argc > 1 && strcmp(argv[1], "--zygote") == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Not a worker: what counts workers by name (tests, rayc stop's
         * sweep of leftovers) must not count it; it dies with the raylet. */
        prctl(PR_SET_NAME, "rayc_zygote", 0, 0, 0);
        if (raylet_pid == NULL || getppid() != (pid_t)atoi(raylet_pid))
            return 1;
        zygote(argv[1]); /* returns in a new worker */
    }
    const char *sock = getenv("RAYC_RAYLET_SOCKET");
    const char *id = getenv("RAYC_WORKER_ID");
    /* Lines reach the driver as they are written, each task's output
     * headed by a line naming it (task_log.h). */
    if (tlog_install() != 0)
        setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Die with the raylet that started us (it may be gone already). */
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
