/*
 * worker_pool.c -- rayc_worker processes; see worker_pool.h.
 * Runs in the raylet's loop thread.
 *
 * Workers are forked while the raylet may have another thread (the object
 * store's pre-fault helper), so the child does only async-signal-safe
 * things between fork and exec (prctl, dup2, sigaction, execve, write):
 * everything it needs -- the environment, the failure message -- is built
 * in the parent first. A lock another thread held at the fork (the
 * environment's, stdio's, the allocator's) is never taken in the child.
 */
#include "worker_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_registry.h"
#include "log.h"
#include "util.h"

#define LINE_MAX_BYTES 8192 /* longer output lines are cut here */
#define ENV_MAX        16   /* wpool_opts.env entries */
#define ZYGOTE_FD      3    /* the zygote's end of its request socket (worker_main.c) */
#define ZYGOTE_WAIT_MS 2000 /* a fork request's answer; the zygote is ended after */
#define ZYGOTE_TRIES   3    /* zygotes that may fail before workers are exec'ed again */

struct worker_pool {
    struct event_base *base;
    wpool_hooks hooks;
    void *arg;
    char worker_bin[PATH_MAX];
    char log_dir[PATH_MAX];
    const char *const *env;
    worker *workers;
    int size, starting, max;
    int prestart;
    int blocked; /* leased workers blocked in get/wait */
    int actors;  /* W_ACTOR workers */
    int64_t idle_timeout_ms;
    struct event *sigchld_ev, *idle_ev;
    uint64_t started; /* processes started since the pool was made (metrics) */
    /* The zygote: a rayc_worker --zygote that forks workers (use_zygote). */
    bool use_zygote;
    pid_t zygote_pid; /* 0: none running */
    int zygote_fd;    /* our end of its request socket */
    int zygote_failures;
};

static void free_worker(worker *w);

/* ------------------------------------------------------------- output */

/* Pass complete lines of one stream on to the pool's user. The header line
 * a worker writes before each task's output (worker/task_log.h, Ray's
 * ":task_name:" marker) stays in the log file, out of the driver's stream. */
static void forward_lines(worker *w, int stream, const char *data, size_t n)
{
    static const char marker[] = ":task_name:";
    if (w->job_id == 0 ||
        (n >= sizeof(marker) - 1 && memcmp(data, marker, sizeof(marker) - 1) == 0))
        return;
    w->pool->hooks.output(w->pool->arg, w, stream == 1, data, n);
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    worker *w = arg;
    int stream = fd == w->out_fd ? 0 : 1;
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        struct event **ev = stream == 0 ? &w->out_ev : &w->err_ev;
        event_free(*ev);
        *ev = NULL;
        close(fd);
        if (stream == 0)
            w->out_fd = -1;
        else
            w->err_fd = -1;
        return;
    }
    int logfd = stream == 0 ? w->log_out : w->log_err;
    if (logfd >= 0 && write(logfd, buf, (size_t)n) < 0)
        log_syserr(errno, "worker %d log", (int)w->pid);
    /* Send whole lines only: the driver prefixes each. */
    char *lb = w->linebuf[stream];
    size_t *ll = &w->linelen[stream];
    size_t start = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\n')
            continue;
        size_t take = (size_t)i + 1 - start;
        if (*ll > 0) {
            size_t room = LINE_MAX_BYTES - *ll;
            size_t k = take < room ? take : room;
            memcpy(lb + *ll, buf + start, k);
            forward_lines(w, stream, lb, *ll + k);
            *ll = 0;
        } else {
            forward_lines(w, stream, buf + start, take);
        }
        start = (size_t)i + 1;
    }
    size_t rest = (size_t)n - start;
    /* The line buffer exists only once a worker leaves a line unfinished:
     * a thousand quiet actors cost no 16 KiB each. */
    if (rest > 0 && lb == NULL)
        lb = w->linebuf[stream] = malloc(LINE_MAX_BYTES);
    if (rest > 0 && lb) {
        size_t room = LINE_MAX_BYTES - *ll;
        size_t k = rest < room ? rest : room;
        memcpy(lb + *ll, buf + start, k);
        *ll += k;
    }
}

/* ----------------------------------------------------------- processes */

static void link_worker(worker_pool *p, worker *w)
{
    w->next = p->workers;
    if (p->workers)
        p->workers->prev = w;
    p->workers = w;
}

static void unlink_worker(worker_pool *p, worker *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        p->workers = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

/* Start rayc_worker with posix_spawn (glibc: clone(CLONE_VM |
 * CLONE_VFORK), so no copy of the raylet's page tables, which map the whole
 * object store: a fork per worker stalled the loop for tens of ms, and
 * starting hundreds of actors missed heartbeats). Its stdout/stderr go into
 * out/err (-1: ours), zfd becomes its fd 3 (-1: none); it makes itself die
 * with the raylet (RAYC_RAYLET_PID). An exec that fails is posix_spawn's
 * error: -1 with errno. */
static pid_t spawn_worker(worker_pool *p, char *const argv[], int out, int err, int zfd,
                          char **extra)
{
    extern char **environ;
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    size_t nextra = 0;
    while (extra[nextra])
        nextra++;
    char **envp = calloc(n + nextra + 1, sizeof(*envp));
    if (envp == NULL)
        return -1;
    /* Ours, with the pool's entries replacing same-named ones. */
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        bool replaced = false;
        for (size_t j = 0; j < nextra && !replaced; j++)
            replaced = strncmp(extra[j], environ[i], len) == 0 && extra[j][len] == '=';
        if (!replaced)
            envp[k++] = environ[i];
    }
    for (size_t i = 0; i < nextra; i++)
        envp[k++] = extra[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out >= 0)
        posix_spawn_file_actions_adddup2(&fa, out, 1);
    if (err >= 0)
        posix_spawn_file_actions_adddup2(&fa, err, 2);
    if (zfd >= 0)
        posix_spawn_file_actions_adddup2(&fa, zfd, ZYGOTE_FD);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, p->worker_bin, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(envp);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

/* The environment every worker gets (the pool's entries, the raylet's pid)
 * into env[0..ENV_MAX + 2), NULL-terminated; pid_buf holds one entry. */
static void worker_env(worker_pool *p, char **env, char *pid_buf, size_t pid_len)
{
    int ne = 0;
    snprintf(pid_buf, pid_len, "RAYC_RAYLET_PID=%d", (int)getpid());
    for (int i = 0; p->env && p->env[i] && ne < ENV_MAX; i++)
        env[ne++] = (char *)p->env[i];
    env[ne++] = pid_buf;
    env[ne] = NULL;
}

/* ------------------------------------------------------------- zygote */

/* Zygote: the worker processes' template. Exec'ing a worker costs this VM
 * ~4.5 ms of CPU in execve and the dynamic loader alone; the zygote pays
 * that once, then forks each worker (worker_main.c). Its children are ours
 * (CLONE_PARENT): reaped here, their exit status seen here, killed by
 * PDEATHSIG when the raylet dies, exactly as exec'ed ones. The zygote is a
 * small process of its own: a fork of it copies none of the raylet's store
 * mapping. A zygote that fails is ended and started again on the next
 * worker; after ZYGOTE_TRIES failures workers are exec'ed again. */

static void zygote_stop(worker_pool *p, bool failed)
{
    if (p->zygote_fd >= 0)
        close(p->zygote_fd);
    p->zygote_fd = -1;
    if (p->zygote_pid > 0) {
        kill(p->zygote_pid, SIGKILL);
        waitpid(p->zygote_pid, NULL, 0);
    }
    p->zygote_pid = 0;
    if (failed && ++p->zygote_failures >= ZYGOTE_TRIES) {
        log_warn("worker zygote failed %d times: exec'ing each worker from now on",
                 p->zygote_failures);
        p->use_zygote = false;
    }
}

static bool zygote_start(worker_pool *p)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        log_syserr(errno, "worker zygote: socketpair");
        return false;
    }
    /* Out of the way of fd 3, which posix_spawn's dup2 must change. */
    int child = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    char pid_buf[48], *env[ENV_MAX + 2];
    worker_env(p, env, pid_buf, sizeof(pid_buf));
    char *argv[] = {"rayc_worker", "--zygote", NULL};
    pid_t pid = child >= 0 ? spawn_worker(p, argv, -1, -1, child, env) : -1;
    if (child >= 0)
        close(child);
    if (pid < 0) {
        log_syserr(errno, "worker zygote: cannot start %s", p->worker_bin);
        close(sv[0]);
        return false;
    }
    p->zygote_pid = pid;
    p->zygote_fd = sv[0];
    log_info("worker zygote started (pid %d)", (int)pid);
    return true;
}

/* The zygote's answer to a request: true with *reply. Signals (SIGCHLD
 * among them) interrupt the wait; it goes on until ZYGOTE_WAIT_MS. */
static bool zygote_answer(worker_pool *p, int32_t *reply)
{
    uint64_t deadline = now_ms() + ZYGOTE_WAIT_MS;
    for (;;) {
        struct pollfd pf = {.fd = p->zygote_fd, .events = POLLIN};
        uint64_t now = now_ms();
        if (now >= deadline)
            return false;
        int r = poll(&pf, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1)
            return false;
        ssize_t n = recv(p->zygote_fd, reply, sizeof(*reply), 0);
        if (n < 0 && errno == EINTR)
            continue;
        return n == sizeof(*reply);
    }
}

/* Ask the zygote for a worker with w's id and output pipes. Its pid, or -1
 * (then the caller execs the worker). Blocks the loop for the fork only, as
 * posix_spawn did for its vfork. */
static pid_t zygote_fork(worker_pool *p, const worker *w, int out, int err)
{
    if (p->zygote_pid == 0 && !zygote_start(p)) {
        zygote_stop(p, true);
        return -1;
    }
    int fds[2] = {out, err};
    char ctl[CMSG_SPACE(sizeof(fds))];
    memset(ctl, 0, sizeof(ctl));
    struct iovec iov = {(void *)w->hex, strlen(w->hex)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    int32_t reply = 0;
    if (sendmsg(p->zygote_fd, &mh, MSG_NOSIGNAL) < 0) {
        log_syserr(errno, "worker zygote: request");
    } else if (!zygote_answer(p, &reply)) {
        log_warn("worker zygote (pid %d) did not answer", (int)p->zygote_pid);
        reply = 0;
    } else if (reply <= 0) {
        log_syserr(-reply, "worker zygote: fork");
        return -1; /* the zygote is fine; this fork failed */
    }
    if (reply <= 0) {
        zygote_stop(p, true);
        return -1;
    }
    return (pid_t)reply;
}

worker *wpool_start(worker_pool *p)
{
    if (p->size >= wpool_max(p)) {
        log_warn("worker pool full (%d workers)", p->size);
        return NULL;
    }
    worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->pool = p;
    w->id = worker_id_random();
    id_hex(w->id.b, WORKER_ID_SIZE, w->hex);
    w->out_fd = w->err_fd = w->log_out = w->log_err = -1;
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
        log_syserr(errno, "cannot start a worker");
        goto fail;
    }
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/worker-%.16s.out", p->log_dir, w->hex);
    w->log_out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    snprintf(path, sizeof(path), "%s/worker-%.16s.err", p->log_dir, w->hex);
    w->log_err = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

    pid_t pid = p->use_zygote ? zygote_fork(p, w, po[1], pe[1]) : -1;
    if (pid < 0) {
        char env_id[80], env_pid[48], *env[ENV_MAX + 3];
        worker_env(p, env, env_pid, sizeof(env_pid));
        int ne = 0;
        while (env[ne])
            ne++;
        snprintf(env_id, sizeof(env_id), "RAYC_WORKER_ID=%s", w->hex);
        env[ne++] = env_id;
        env[ne] = NULL;
        char *argv[] = {"rayc_worker", NULL};
        pid = spawn_worker(p, argv, po[1], pe[1], -1, env);
    }
    if (pid < 0) {
        log_syserr(errno, "cannot start %s", p->worker_bin);
        goto fail;
    }
    close(po[1]);
    close(pe[1]);
    w->pid = pid;
    w->out_fd = po[0];
    w->err_fd = pe[0];
    fcntl(w->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(w->err_fd, F_SETFL, O_NONBLOCK);
    w->out_ev = event_new(p->base, w->out_fd, EV_READ | EV_PERSIST, on_output, w);
    w->err_ev = event_new(p->base, w->err_fd, EV_READ | EV_PERSIST, on_output, w);
    event_add(w->out_ev, NULL);
    event_add(w->err_ev, NULL);
    w->state = W_STARTING;
    link_worker(p, w);
    p->size++;
    p->starting++;
    p->started++;
    log_debug("started worker %.16s pid %d", w->hex, (int)pid);
    return w;
fail:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
    }
    free_worker(w);
    return NULL;
}

void wpool_prestart(worker_pool *p, int n)
{
    while (p->size < n && wpool_start(p) != NULL)
        ;
}

void wpool_want(worker_pool *p, int n)
{
    for (int i = p->starting; i < n && p->size < wpool_max(p); i++)
        if (wpool_start(p) == NULL)
            break;
}

worker *wpool_connected(worker_pool *p, const worker_id_t *id, client *cl)
{
    for (worker *w = p->workers; w; w = w->next) {
        if (memcmp(w->id.b, id->b, WORKER_ID_SIZE) != 0 || w->state != W_STARTING)
            continue;
        w->state = W_IDLE;
        w->cl = cl;
        w->idle_since = now_ms();
        p->starting--;
        return w;
    }
    return NULL;
}

/* The worker is gone for the scheduler: fail its tasks, free its lease. */
static void mark_dead(worker_pool *p, worker *w)
{
    if (w->state == W_DEAD)
        return;
    if (w->state == W_STARTING)
        p->starting--;
    if (w->state == W_ACTOR)
        p->actors--;
    p->size--;
    /* The user sees it still leased, so it gives the lease's resources
     * back; then it is dead. */
    p->hooks.died(p->arg, w);
    if (w->blocked)
        wpool_set_blocked(p, w, false);
    w->state = W_DEAD;
    if (w->cl) {
        w->cl->w = NULL;
        w->cl = NULL;
    }
}

void wpool_disconnected(worker_pool *p, worker *w)
{
    w->cl = NULL;
    mark_dead(p, w);
    if (w->pid > 0)
        kill(w->pid, SIGKILL); /* a worker without its socket is no use */
}

void wpool_kill(worker_pool *p, worker *w)
{
    (void)p;
    if (w->pid > 0 && w->state != W_DEAD) {
        w->exiting = true;
        kill(w->pid, SIGKILL);
    }
}

void wpool_kill_job(worker_pool *p, uint32_t job_id)
{
    for (worker *w = p->workers; w; w = w->next)
        if (w->job_id == job_id && w->state != W_DEAD && !w->keep_on_job_end)
            wpool_kill(p, w);
}

void wpool_dedicate(worker_pool *p, worker *w)
{
    if (w->blocked)
        wpool_set_blocked(p, w, false);
    if (w->state != W_DEAD && w->state != W_ACTOR) {
        w->state = W_ACTOR;
        p->actors++;
    }
    /* Keep the prestarted workers for tasks (and the next actor) ready:
     * an actor took one for good. */
    if (p->size - p->actors < p->prestart)
        wpool_start(p);
}

worker *wpool_idle_for_job(worker_pool *p, uint32_t job_id)
{
    worker *unbound = NULL;
    for (worker *w = p->workers; w; w = w->next) {
        if (w->state != W_IDLE || w->exiting)
            continue;
        if (w->job_id == job_id)
            return w;
        if (w->job_id == 0 && unbound == NULL)
            unbound = w;
    }
    return unbound;
}

void wpool_bind(worker_pool *p, worker *w, uint32_t job_id)
{
    (void)p;
    w->job_id = job_id;
}

void wpool_lease(worker_pool *p, worker *w)
{
    (void)p;
    w->state = W_LEASED;
}

void wpool_unlease(worker_pool *p, worker *w)
{
    if (w->blocked)
        wpool_set_blocked(p, w, false);
    if (w->state == W_LEASED) {
        w->state = W_IDLE;
        w->idle_since = now_ms();
    }
}

void wpool_set_blocked(worker_pool *p, worker *w, bool blocked)
{
    if (w->blocked == blocked)
        return;
    w->blocked = blocked;
    p->blocked += blocked ? 1 : -1;
}

int wpool_size(const worker_pool *p)
{
    return p->size;
}

uint64_t wpool_started(const worker_pool *p)
{
    return p->started;
}

int wpool_starting(const worker_pool *p)
{
    return p->starting;
}

int wpool_max(const worker_pool *p)
{
    /* Workers blocked in get/wait hold no CPU and cannot take tasks: they do
     * not count against the cap, or deep nesting would fill the pool with
     * waiters and stall (Ray's soft worker limit does the same). */
    return p->max + p->blocked + p->actors;
}

worker *wpool_first(worker_pool *p)
{
    return p->workers;
}

static void free_worker(worker *w)
{
    if (w->out_ev)
        event_free(w->out_ev);
    if (w->err_ev)
        event_free(w->err_ev);
    if (w->out_fd >= 0)
        close(w->out_fd);
    if (w->err_fd >= 0)
        close(w->err_fd);
    if (w->log_out >= 0)
        close(w->log_out);
    if (w->log_err >= 0)
        close(w->log_err);
    free(w->linebuf[0]);
    free(w->linebuf[1]);
    free(w);
}

/* Drain what a dead worker wrote, then forget it. */
static void reap(worker_pool *p, worker *w, int status)
{
    if (w->out_ev)
        on_output(w->out_fd, EV_READ, w);
    if (w->err_ev)
        on_output(w->err_fd, EV_READ, w);
    if (!w->exiting) {
        if (WIFSIGNALED(status))
            log_warn("worker %.16s (pid %d) killed by signal %d", w->hex, (int)w->pid,
                     WTERMSIG(status));
        else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
            log_warn("worker %.16s (pid %d) exited with status %d", w->hex, (int)w->pid,
                     WEXITSTATUS(status));
    }
    mark_dead(p, w);
    unlink_worker(p, w);
    free_worker(w);
}

static const char *signal_name(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGSEGV, "SIGSEGV"}, {SIGABRT, "SIGABRT"}, {SIGKILL, "SIGKILL"},
                 {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGILL, "SIGILL"},
                 {SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"},   {SIGPIPE, "SIGPIPE"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].sig == sig)
            return names[i].name;
    return NULL;
}

const char *wpool_exit_text(const worker *w, char *buf, size_t len)
{
    buf[0] = '\0';
    /* The kernel closes a dying process's files (we see the socket close)
     * after it set the exit code, which /proc/<pid>/stat shows (field 52). */
    char path[64], stat[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)w->pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return buf;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    char *p = strrchr(stat, ')');
    if (p == NULL)
        return buf;
    int field = 2, code = -1;
    char *save = NULL;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
        if (++field == 52)
            code = atoi(tok);
    if (code <= 0)
        return buf;
    int sig = code & 0x7f;
    if (sig && signal_name(sig))
        snprintf(buf, len, "killed by %s", signal_name(sig));
    else if (sig)
        snprintf(buf, len, "killed by signal %d", sig);
    else
        snprintf(buf, len, "exited with code %d", (code >> 8) & 0xff);
    return buf;
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    worker_pool *p = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == p->zygote_pid) {
            log_warn("worker zygote (pid %d) ended; the next worker starts another", (int)pid);
            p->zygote_pid = 0;
            zygote_stop(p, true);
            continue;
        }
        for (worker *w = p->workers; w; w = w->next) {
            if (w->pid == pid) {
                reap(p, w, status);
                break;
            }
        }
    }
    p->hooks.reaped(p->arg);
}

/* End idle workers beyond the prestarted number after the idle timeout. */
static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_pool *p = arg;
    uint64_t now = now_ms(), timeout = (uint64_t)p->idle_timeout_ms;
    int alive = p->size;
    for (worker *w = p->workers; w && alive > p->prestart; w = w->next) {
        if (w->state == W_IDLE && !w->exiting && now - w->idle_since > timeout) {
            wpool_kill(p, w);
            alive--;
        }
    }
}

worker_pool *wpool_new(const wpool_opts *o, const wpool_hooks *hooks, void *arg, char *err,
                       size_t errlen)
{
    worker_pool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->base = o->base;
    p->hooks = *hooks;
    p->arg = arg;
    p->env = o->env;
    if (o->worker_bin) {
        snprintf(p->worker_bin, sizeof(p->worker_bin), "%s", o->worker_bin);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            snprintf(err, errlen, "cannot find my own binary: %s", strerror(errno));
            free(p);
            return NULL;
        }
        self[n] = '\0';
        *strrchr(self, '/') = '\0';
        snprintf(p->worker_bin, sizeof(p->worker_bin), "%s/rayc_worker", self);
    }
    if (access(p->worker_bin, X_OK) != 0) {
        snprintf(err, errlen, "cannot find %s", p->worker_bin);
        free(p);
        return NULL;
    }
    snprintf(p->log_dir, sizeof(p->log_dir), "%s", o->log_dir);
    mkdir_p(p->log_dir, 0700);
    p->prestart = o->prestart;
    p->max = o->max;
    p->idle_timeout_ms = o->idle_timeout_ms;
    p->use_zygote = o->zygote;
    p->zygote_fd = -1;
    p->sigchld_ev = evsignal_new(p->base, SIGCHLD, on_sigchld, p);
    p->idle_ev = event_new(p->base, -1, EV_PERSIST, on_idle_timer, p);
    event_add(p->sigchld_ev, NULL);
    struct timeval tv = {1, 0};
    event_add(p->idle_ev, &tv);
    return p;
}

void wpool_free(worker_pool *p)
{
    if (p == NULL)
        return;
    zygote_stop(p, false);
    for (worker *w = p->workers, *next; w; w = next) {
        next = w->next;
        if (w->pid > 0 && w->state != W_DEAD)
            kill(w->pid, SIGKILL);
        if (w->pid > 0)
            waitpid(w->pid, NULL, 0);
        free_worker(w);
    }
    if (p->sigchld_ev)
        event_free(p->sigchld_ev);
    if (p->idle_ev)
        event_free(p->idle_ev);
    free(p);
}
