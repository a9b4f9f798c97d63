/*
 * rayc_supervise.c -- `rayc_ctl supervise`: the head's supervisor, which
 * restarts its Redis and GCS when they die (see the block below).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "bconn.h"
#include "msg.h"
#include "rayc.h"
#include "rayc_ctl.h"
#include "util.h"

/* ------------------------------------------------------- supervise */

/*
 * rayc_ctl supervise --session-dir=S: the head's supervisor. `rayc start
 * --head` starts Redis and the GCS itself (so a start-up failure is reported
 * with the daemon's own reason), writes each one's command as
 * S/<name>.cmd (NUL-separated: output file, then argv) and its pid as
 * S/<name>.pid, then leaves this process behind. It watches both pids with
 * pidfds (death is seen at once, no polling) and restarts a dead one with
 * the same command: Redis first (and waits until it answers), then the GCS
 * (and waits until it accepts a handshake, which is when it has reloaded its
 * tables from Redis). A daemon that dies again within STABLE_MS of its start
 * is restarted after a back-off that doubles from BACKOFF_MIN_MS to
 * BACKOFF_MAX_MS. Every death and restart is a line in S/logs/supervisor.out
 * (this process's stdout). After each GCS (re)start the GCS's start time and
 * the restart counts go into the GCS KV (namespace "rayc", key "head"),
 * where `rayc status` reads them, from any machine.
 *
 * SIGTERM/SIGINT end the supervisor at once and leave the daemons running:
 * `rayc stop` stops the supervisor first, then the daemons.
 * Single-threaded; blocks in poll().
 */

#define SUP_STABLE_MS      10000 /* up this long: the next death restarts at once */
#define SUP_BACKOFF_MIN_MS 250
#define SUP_BACKOFF_MAX_MS 15000
#define SUP_READY_MS       10000 /* how long a restarted daemon may take to serve */
#define SUP_MAX_ARGS       64

enum { SUP_REDIS, SUP_GCS, SUP_N };

typedef struct {
    const char *name; /* pid/cmd file stem and log name */
    bool present;     /* supervised (no Redis with --redis-address) */
    char *cmd;        /* S/<name>.cmd: output file, then argv, NUL-separated */
    size_t cmd_len;
    pid_t pid;  /* 0 while dead */
    int pidfd;  /* -1 while dead */
    bool child; /* started by us: reap it */
    uint64_t start_wall_ms, start_mono_ms;
    int restarts;
    int quick_fails;     /* deaths within SUP_STABLE_MS of a start, in a row */
    uint64_t restart_at; /* monotonic ms of the scheduled restart, 0 none */
    uint64_t died_at;    /* monotonic ms the death was seen */
} sup_daemon;

typedef struct {
    const char *session;
    char address[300];
    char token_file[PATH_MAX];
    char redis_socket[PATH_MAX];
    char redis_password_file[PATH_MAX];
    int sigfd;
    bool stopping;
    bool publish; /* the KV record is out of date */
    sup_daemon d[SUP_N];
} supervisor;

static void sup_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sup_log(const char *fmt, ...)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    printf("[%s] supervisor: ", stamp);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Wall-clock start of a process, from /proc/<pid>/stat (field 22, ticks
 * since boot) and the boot time; 0 when unknown. */
static uint64_t proc_start_wall_ms(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *st = read_file(path, NULL);
    char *rp = st ? strrchr(st, ')') : NULL;
    unsigned long long ticks = 0, btime = 0;
    if (rp == NULL || sscanf(rp + 2,
                             "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                             "%*d %*d %*d %*d %llu",
                             &ticks) != 1) {
        free(st);
        return 0;
    }
    free(st);
    char *ps = read_file("/proc/stat", NULL);
    char *bt = ps ? strstr(ps, "\nbtime ") : NULL;
    if (bt)
        btime = strtoull(bt + 7, NULL, 10);
    free(ps);
    long hz = sysconf(_SC_CLK_TCK);
    if (btime == 0 || hz <= 0)
        return 0;
    return btime * 1000 + ticks * 1000 / (unsigned long long)hz;
}

static int sup_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int sup_read_pid(const supervisor *s, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.pid", s->session, name);
    char *t = read_file(path, NULL);
    int pid = t ? atoi(t) : 0;
    free(t);
    return pid;
}

/* Write S/<name>.pid atomically (rayc stop may read it at any time). */
static void sup_write_pid(const supervisor *s, const char *name, pid_t pid)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], buf[32];
    snprintf(path, sizeof(path), "%s/%s.pid", s->session, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
    if (write_file(tmp, buf, (size_t)n, 0600) != 0 || rename(tmp, path) != 0)
        sup_log("cannot write %s: %s", path, strerror(errno));
}

/* Start watching pid as daemon d. */
static void sup_watch(sup_daemon *d, pid_t pid, bool child)
{
    d->pid = pid;
    d->child = child;
    d->pidfd = sup_pidfd_open(pid);
    d->start_mono_ms = now_ms();
    d->start_wall_ms = proc_start_wall_ms(pid);
    if (d->start_wall_ms == 0)
        d->start_wall_ms = wall_ms();
}

/* fork + setsid + exec of d's command, output appended to its file. */
static pid_t sup_spawn(const sup_daemon *d)
{
    const char *out = d->cmd;
    char *argv[SUP_MAX_ARGS + 1];
    int argc = 0;
    for (size_t off = strlen(out) + 1; off < d->cmd_len && argc < SUP_MAX_ARGS;
         off += strlen(d->cmd + off) + 1)
        argv[argc++] = d->cmd + off;
    argv[argc] = NULL;
    if (argc == 0)
        return -1;
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || fd < 0)
        _exit(126);
    dup2(in, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    closefrom(3);
    execvp(argv[0], argv);
    dprintf(2, "supervisor: cannot exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* A SIGTERM/SIGINT is waiting: we are being stopped. */
static bool sup_signalled(supervisor *s)
{
    struct signalfd_siginfo si;
    while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            sup_log("signal %u: exiting (the daemons keep running)", si.ssi_signo);
            s->stopping = true;
        }
    }
    return s->stopping;
}

static bool sup_redis_ready(supervisor *s)
{
    char err[256];
    return redis_ping(s->redis_socket, s->redis_password_file, 500, err, sizeof(err)) == 0;
}

static bool sup_gcs_ready(supervisor *s)
{
    char err[256];
    int code;
    bconn *b = gcs_try_connect(s->address, NULL, s->token_file, 1000, &code, err, sizeof(err));
    bconn_close(b);
    return b != NULL;
}

/* Poll ready() every 10 ms until it holds, d dies, we are stopped, or
 * SUP_READY_MS pass. */
static bool sup_wait_ready(supervisor *s, sup_daemon *d, bool (*ready)(supervisor *))
{
    uint64_t deadline = now_ms() + SUP_READY_MS;
    while (!sup_signalled(s)) {
        if (ready(s))
            return true;
        struct pollfd p = {.fd = d->pidfd, .events = POLLIN};
        if (d->pidfd >= 0 && poll(&p, 1, 0) > 0)
            return false; /* it died: the main loop sees it */
        if (now_ms() >= deadline)
            return false;
        usleep(10000);
    }
    return false;
}

/* Tell the GCS (KV "rayc"/"head") when it started and how often things were
 * restarted; `rayc status` prints it. Best effort. */
static void sup_publish(supervisor *s)
{
    char err[256], value[256];
    int code;
    bconn *b = gcs_try_connect(s->address, NULL, s->token_file, 2000, &code, err, sizeof(err));
    if (b == NULL) {
        sup_log("cannot publish to the GCS: %s", err);
        return;
    }
    int n = snprintf(value, sizeof(value),
                     "gcs_start_ms=%llu\ngcs_restarts=%d\nredis_restarts=%d\nsupervised=%d\n",
                     (unsigned long long)s->d[SUP_GCS].start_wall_ms, s->d[SUP_GCS].restarts,
                     s->d[SUP_REDIS].restarts, s->d[SUP_REDIS].present ? 2 : 1);
    Rpc__KvPutRequest req = RPC__KV_PUT_REQUEST__INIT;
    req.req_id = 5;
    req.ns = "rayc";
    req.key.data = (uint8_t *)"head";
    req.key.len = 4;
    req.value.data = (uint8_t *)value;
    req.value.len = (size_t)n;
    req.overwrite = 1;
    ProtobufCMessage *r = NULL;
    int rc = bconn_call(b, MSG_KV_PUT_REQ, &req.base, MSG_KV_PUT_REPLY, &r, 2000);
    if (rc != 0)
        sup_log("cannot publish to the GCS: %s", rayc_strerror(rc));
    msg_free(r);
    bconn_close(b);
}

static const char *describe_status(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "gone");
    return buf;
}

/* d's process is gone: log it and schedule the restart. */
static void sup_died(supervisor *s, sup_daemon *d)
{
    (void)s;
    char how[64] = "exited";
    int st;
    if (d->child && waitpid(d->pid, &st, 0) == d->pid)
        describe_status(st, how, sizeof(how));
    uint64_t now = now_ms(), up = now - d->start_mono_ms;
    if (up < SUP_STABLE_MS)
        d->quick_fails++;
    else
        d->quick_fails = 0;
    uint64_t delay = 0;
    if (d->quick_fails > 1) {
        delay = SUP_BACKOFF_MIN_MS;
        for (int i = 2; i < d->quick_fails && delay < SUP_BACKOFF_MAX_MS; i++)
            delay *= 2;
        if (delay > SUP_BACKOFF_MAX_MS)
            delay = SUP_BACKOFF_MAX_MS;
    }
    sup_log("%s (pid %d) %s after %.1fs up; restart %d in %llu ms", d->name, (int)d->pid, how,
            (double)up / 1000, d->restarts + 1, (unsigned long long)delay);
    if (d->pidfd >= 0)
        close(d->pidfd);
    d->pidfd = -1;
    d->pid = 0;
    d->died_at = now;
    d->restart_at = now + delay;
}

/* Restart d now. Returns true when it serves again. */
static bool sup_restart(supervisor *s, sup_daemon *d, bool (*ready)(supervisor *))
{
    d->restart_at = 0;
    d->restarts++;
    pid_t pid = sup_spawn(d);
    if (pid < 0) {
        sup_log("cannot start %s: %s; retrying", d->name, strerror(errno));
        d->quick_fails++;
        d->restart_at = now_ms() + SUP_BACKOFF_MAX_MS;
        return false;
    }
    sup_watch(d, pid, true);
    sup_write_pid(s, d->name, pid);
    bool ok = sup_wait_ready(s, d, ready);
    s->publish = true;
    if (ok)
        sup_log("%s restarted as pid %d, serving %llu ms after its death was seen", d->name,
                (int)pid, (unsigned long long)(now_ms() - d->died_at));
    else if (!s->stopping)
        sup_log("%s (pid %d) is not serving after its restart", d->name, (int)pid);
    return ok;
}

static char *sup_read_cmd(const supervisor *s, const char *name, size_t *len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.cmd", s->session, name);
    return read_file(path, len);
}

int cmd_supervise(const opts_t *o)
{
    supervisor sup = {.session = o->session_dir, .sigfd = -1};
    supervisor *s = &sup;
    s->d[SUP_REDIS].name = "redis";
    s->d[SUP_GCS].name = "gcs_server";
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/gcs_address", s->session);
    char *addr = read_file(path, NULL);
    if (addr == NULL)
        die(EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
    snprintf(s->address, sizeof(s->address), "%s", rstrip(addr));
    free(addr);
    snprintf(s->token_file, sizeof(s->token_file), "%s/token", s->session);
    snprintf(s->redis_socket, sizeof(s->redis_socket), "%s/redis/redis.sock", s->session);
    snprintf(s->redis_password_file, sizeof(s->redis_password_file), "%s/redis.password",
             s->session);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sigfd < 0)
        die(EXIT_FAIL, "signalfd: %s", strerror(errno));

    for (int i = 0; i < SUP_N; i++) {
        sup_daemon *d = &s->d[i];
        d->pidfd = -1;
        d->cmd = sup_read_cmd(s, d->name, &d->cmd_len);
        d->present = d->cmd != NULL;
        if (!d->present)
            continue;
        pid_t pid = sup_read_pid(s, d->name);
        if (pid <= 0)
            die(EXIT_FAIL, "no pid in %s/%s.pid", s->session, d->name);
        sup_watch(d, pid, false);
        if (d->pidfd < 0)
            sup_died(s, d);
    }
    if (!s->d[SUP_GCS].present)
        die(EXIT_FAIL, "nothing to supervise: no %s/gcs_server.cmd", s->session);
    sup_log("pid %d watching gcs_server (pid %d)%s%.0d%s", (int)getpid(), (int)s->d[SUP_GCS].pid,
            s->d[SUP_REDIS].present ? " and redis (pid " : "", s->d[SUP_REDIS].pid,
            s->d[SUP_REDIS].present ? ")" : "");
    s->publish = true;

    while (!sup_signalled(s)) {
        sup_daemon *redis = &s->d[SUP_REDIS], *gcs = &s->d[SUP_GCS];
        uint64_t now = now_ms();
        /* Redis first: a GCS started without it only retries. */
        if (redis->present && redis->pid == 0 && redis->restart_at <= now)
            sup_restart(s, redis, sup_redis_ready);
        if (s->stopping)
            break;
        bool redis_up = !redis->present || redis->pid != 0;
        if (gcs->pid == 0 && gcs->restart_at <= now_ms() && redis_up)
            sup_restart(s, gcs, sup_gcs_ready);
        /* After a restart of either (a restarted Redis under a live GCS:
         * the GCS reconnects by itself). */
        if (s->publish && gcs->pid != 0 && redis_up) {
            s->publish = false;
            sup_publish(s);
        }
        if (s->stopping)
            break;

        struct pollfd p[SUP_N + 1];
        int n = 0;
        p[n++] = (struct pollfd){.fd = s->sigfd, .events = POLLIN};
        for (int i = 0; i < SUP_N; i++)
            if (s->d[i].pidfd >= 0)
                p[n++] = (struct pollfd){.fd = s->d[i].pidfd, .events = POLLIN};
        int timeout = -1;
        for (int i = 0; i < SUP_N; i++) {
            sup_daemon *d = &s->d[i];
            if (d->present && d->pid == 0) {
                uint64_t t = now_ms();
                int wait = d->restart_at > t ? (int)(d->restart_at - t) : 0;
                if (timeout < 0 || wait < timeout)
                    timeout = wait > 0 ? wait : 10;
            }
        }
        if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR)
            die(EXIT_FAIL, "poll: %s", strerror(errno));
        for (int i = 0; i < SUP_N; i++) {
            sup_daemon *d = &s->d[i];
            for (int k = 1; k < n; k++)
                if (d->pidfd >= 0 && p[k].fd == d->pidfd && (p[k].revents & (POLLIN | POLLHUP)))
                    sup_died(s, d);
        }
    }
    for (int i = 0; i < SUP_N; i++) {
        if (s->d[i].pidfd >= 0)
            close(s->d[i].pidfd);
        free(s->d[i].cmd);
    }
    close(s->sigfd);
    return 0;
}
