/*
 * bench_cluster.h -- starting and always stopping a private rayc cluster
 * from a benchmark (header-only, like bench_util.h): child processes with a
 * time limit, `rayc` CLI calls confined to a private mkdtemp root, a sweep of
 * whatever daemon or worker still names that root, a guardian process that
 * stops the cluster if the benchmark dies without doing it, and /proc
 * readers (RSS, CPU ticks, I/O bytes) for the measurements.
 *
 * State lives in one `bc` struct the benchmark fills (root, script,
 * bin_dir, name) before it calls anything here. Single-threaded use only,
 * except the /proc readers.
 */
#ifndef RAYC_BENCH_CLUSTER_H
#define RAYC_BENCH_CLUSTER_H

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

extern char **environ;

#define BC_MAX_EXTRA_ENV 8

static struct {
    const char *name;                    /* the benchmark's name, for messages */
    char root[PATH_MAX];                 /* private mkdtemp root; every session lives under it */
    char script[PATH_MAX + 32];          /* scripts/rayc */
    char bin_dir[PATH_MAX + 32];         /* build/bin */
    const char *extra[BC_MAX_EXTRA_ENV]; /* "KEY=VALUE" for every `rayc` (and so every daemon) */
    int nextra;
    int guard_fd; /* write end of the guardian's pipe; -1: none */
    pid_t guard_pid;
} bc = {.name = "bench", .guard_fd = -1};

static inline int bc_read_text(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t l = fread(out, 1, len - 1, f);
    fclose(f);
    out[l] = '\0';
    while (l > 0 && isspace((unsigned char)out[l - 1]))
        out[--l] = '\0';
    return 0;
}

/* Environment for `rayc`: ours without the RAYC_ variables set here, plus
 * RAYC_TEMP_DIR=<root>, RAYC_BIN_DIR and bc.extra. The caller frees the array
 * (not the strings). */
static inline char **bc_env(void)
{
    static const char *drop[] = {"RAYC_TEMP_DIR=", "RAYC_BIN_DIR=",    "RAYC_ADDRESS=",
                                 "RAYC_TOKEN=",    "RAYC_TOKEN_FILE=", NULL};
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3 + BC_MAX_EXTRA_ENV, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (const char **d = drop; *d && !skip; d++)
            skip = strncmp(environ[i], *d, strlen(*d)) == 0;
        if (!skip)
            env[k++] = environ[i];
    }
    static char tmp[PATH_MAX + 32], bin[PATH_MAX + 64];
    snprintf(tmp, sizeof(tmp), "RAYC_TEMP_DIR=%s", bc.root);
    snprintf(bin, sizeof(bin), "RAYC_BIN_DIR=%s", bc.bin_dir);
    env[k++] = tmp;
    env[k++] = bin;
    for (int i = 0; i < bc.nextra; i++)
        env[k++] = (char *)bc.extra[i];
    env[k] = NULL;
    return env;
}

/* Spawn path with argv and env, stdin /dev/null and stdout+stderr into
 * out_fd, signals at their defaults; in a session of its own (a daemon we
 * stop by pid) or else in a process group of its own (Ctrl-C is ours to
 * handle, not its). The pid, or -1 with errno set. */
static inline pid_t bc_spawn(const char *path, char *const argv[], char *const env[], int out_fd,
                             bool own_session)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    posix_spawnattr_init(&at);
    sigset_t def, none;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGHUP);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setsigmask(&at, &none);
    if (!own_session)
        posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                      (own_session ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP));
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0)
        errno = rc;
    return rc == 0 ? pid : -1;
}

/* Spawn `bash <script> argv...` (bc_spawn, its own process group). The
 * pid, or -1. */
static inline pid_t bc_spawn_rayc(char *const args[], int out_fd)
{
    char *argv[24];
    int n = 0;
    argv[n++] = "bash";
    argv[n++] = bc.script;
    for (int i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char **env = bc_env();
    if (env == NULL)
        return -1;
    pid_t pid = bc_spawn("/bin/bash", argv, env, out_fd, false);
    free(env);
    return pid;
}

/* A started node's session (the realpath of dir/session_latest), its node
 * id (raylet.ready) and raylet pid (raylet.pid). 0, or -1 with why. */
static inline int bc_node_session(const char *dir, char *session, size_t slen, char *id,
                                  size_t idlen, pid_t *raylet, char *why, size_t whylen)
{
    char link[PATH_MAX + 32], path[PATH_MAX + 64], buf[128];
    snprintf(link, sizeof(link), "%s/session_latest", dir);
    char *real = realpath(link, NULL);
    if (real == NULL)
        return snprintf(why, whylen, "%s: %s", link, strerror(errno)), -1;
    snprintf(session, slen, "%s", real);
    free(real);
    snprintf(path, sizeof(path), "%s/raylet.ready", session);
    if (bc_read_text(path, id, idlen) != 0 || !id[0])
        return snprintf(why, whylen, "%s: %s", path, strerror(errno)), -1;
    snprintf(path, sizeof(path), "%s/raylet.pid", session);
    if (bc_read_text(path, buf, sizeof(buf)) != 0 || (*raylet = (pid_t)atoi(buf)) <= 0)
        return snprintf(why, whylen, "%s: cannot read the raylet's pid", path), -1;
    return 0;
}

/* Wait for pid up to timeout_s (then SIGKILL its group). Exit status, or -1
 * on a timeout. */
static inline int bc_wait(pid_t pid, int timeout_s)
{
    double deadline = now_s() + timeout_s;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_s() > deadline) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
        sleep_ms(10);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The last non-empty line of a file, into out. */
static inline void bc_last_line(const char *path, char *out, size_t len)
{
    char buf[8192] = "";
    out[0] = '\0';
    if (bc_read_text(path, buf, sizeof(buf)) != 0)
        return;
    char *nl = strrchr(buf, '\n');
    snprintf(out, len, "%s", nl ? nl + 1 : buf);
}

/* `rayc ARGS...` (NULL-terminated), output to <root>/logs/<tag>.out; its
 * exit status (-1: did not finish in timeout_s); on failure `why` holds the
 * last line it printed. */
static inline int bc_rayc(const char *tag, char *why, size_t whylen, int timeout_s,
                          char *const args[])
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/logs/%s.out", bc.root, tag);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    pid_t pid = bc_spawn_rayc(args, fd);
    close(fd);
    if (pid < 0) {
        snprintf(why, whylen, "cannot run %s", bc.script);
        return -1;
    }
    int rc = bc_wait(pid, timeout_s);
    if (rc != 0) {
        bc_last_line(path, why, whylen);
        if (rc < 0)
            snprintf(why + strlen(why), whylen - strlen(why), " (no answer in %d s)", timeout_s);
    }
    return rc;
}

static inline int bc_has_string(const char *path, const char *needle)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    static char buf[65536];
    ssize_t l = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (l <= 0)
        return 0;
    size_t nl = strlen(needle);
    for (ssize_t i = 0; i + (ssize_t)nl <= l; i++)
        if (buf[i] == needle[0] && memcmp(buf + i, needle, nl) == 0)
            return 1;
    return 0;
}

/* Calls fn(pid, arg) for every raylet, gcs_server, redis-server,
 * rayc_worker or rayc_ctl (the head's supervisor) (comm == only, when only
 * is not NULL) that names `where` in its arguments or environment. Returns
 * how many. */
static inline int bc_each_process(const char *where, const char *only, void (*fn)(pid_t, void *),
                                  void *arg)
{
    static const char *names[] = {"raylet",      "gcs_server", "redis-server",
                                  "rayc_worker", "rayc_ctl",   NULL};
    int found = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(de->d_name);
        if (pid == getpid())
            continue;
        char path[64], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        if (bc_read_text(path, comm, sizeof(comm)) != 0)
            continue;
        int ours = 0;
        for (const char **nm = names; *nm && !ours; nm++)
            ours = strcmp(comm, *nm) == 0 && (only == NULL || strcmp(comm, only) == 0);
        if (!ours)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        int hit = bc_has_string(path, where);
        if (!hit) {
            snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
            hit = bc_has_string(path, where);
        }
        if (hit) {
            found++;
            if (fn)
                fn(pid, arg);
        }
    }
    if (d)
        closedir(d);
    return found;
}

static inline void bc_kill_one(pid_t pid, void *arg)
{
    kill(pid, *(int *)arg);
}

/* Signal everything of ours that names `where`: the supervisors first, or
 * they would start the GCS and Redis again. */
static inline int bc_sweep(const char *where, int sig)
{
    int n = bc_each_process(where, "rayc_ctl", bc_kill_one, &sig);
    return n + bc_each_process(where, NULL, bc_kill_one, &sig);
}

static inline int bc_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Stop every head under the root (`rayc stop --temp-dir=<its dir>` for each
 * directory of the root whose latest session ran a GCS: `rayc stop` looks
 * for sessions directly in the directory it is given, and each node has a
 * directory of its own), then SIGKILL whatever still names the root. 0, or
 * -1 when a `rayc stop` failed (why says how). */
static inline int bc_stop_all(char *why, size_t whylen)
{
    int rc = 0;
    DIR *d = opendir(bc.root);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char path[PATH_MAX + 300], flag[PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s/session_latest/gcs_server.cmd", bc.root, de->d_name);
        if (de->d_name[0] == '.' || access(path, F_OK) != 0)
            continue;
        snprintf(flag, sizeof(flag), "--temp-dir=%s/%s", bc.root, de->d_name);
        char *args[] = {"stop", flag, NULL};
        if (bc_rayc("stop", why, whylen, 120, args) != 0)
            rc = -1;
    }
    if (d)
        closedir(d);
    if (bc_sweep(bc.root, SIGKILL) > 0)
        sleep_ms(300);
    return rc;
}

static inline void bc_remove_root(void)
{
    if (bc.root[0])
        nftw(bc.root, bc_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The guardian: a child that outlives us long enough to stop the cluster if
 * we die without doing it. It reads the pipe until EOF; a 'd' before that
 * means we cleaned up ourselves. */
static inline void bc_start_guardian(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[1]);
        setsid(); /* Ctrl-C at the terminal does not reach us */
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        char c = 0, got;
        ssize_t l;
        while ((l = read(p[0], &got, 1)) != 0) {
            if (l < 0 && errno == EINTR)
                continue;
            if (l < 0)
                break;
            c = got;
        }
        if (c != 'd') {
            fprintf(stderr, "%s: stopping the benchmark's clusters (%s)\n", bc.name, bc.root);
            char why[1024];
            bc_stop_all(why, sizeof(why));
            bc_remove_root();
        }
        _exit(0);
    }
    close(p[0]);
    bc.guard_fd = p[1];
    bc.guard_pid = pid;
}

static inline void bc_on_signal(int sig)
{
    static const char msg[] = "\ninterrupted; stopping the clusters\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    if (bc.guard_fd >= 0) {
        close(bc.guard_fd); /* EOF without 'd': the guardian cleans up */
        int st;
        while (waitpid(bc.guard_pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    _exit(128 + sig);
}

static inline void bc_guardian_done(void)
{
    if (bc.guard_fd < 0)
        return;
    ssize_t w = write(bc.guard_fd, "d", 1);
    (void)w;
    close(bc.guard_fd);
    bc.guard_fd = -1;
    int st;
    while (waitpid(bc.guard_pid, &st, 0) < 0 && errno == EINTR) {
    }
}

static inline int bc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ------------------------------------------------------------------ /proc */

/* A "Key:  <n> kB" field of /proc/<pid>/<file> in bytes (pid 0: self); 0
 * when unreadable. */
static inline unsigned long long bc_proc_kb(pid_t pid, const char *file, const char *key)
{
    char path[64], line[256];
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    else
        snprintf(path, sizeof(path), "/proc/self/%s", file);
    FILE *f = fopen(path, "r");
    unsigned long long kb = 0;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            kb = strtoull(line + kl + 1, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return kb * 1024ULL;
}

/* utime + stime of pid in clock ticks; -1 when unreadable. */
static inline long long bc_proc_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (bc_read_text(path, buf, sizeof(buf)) != 0)
        return -1;
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    unsigned long long ut, st;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* rchar and wchar of /proc/<pid>/io (bytes through read/write calls,
 * sockets included). 0 or -1. */
static inline int bc_proc_io(pid_t pid, unsigned long long *rchar, unsigned long long *wchar)
{
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int got = 0;
    while (fgets(line, sizeof(line), f)) {
        got += sscanf(line, "rchar: %llu", rchar) == 1;
        got += sscanf(line, "wchar: %llu", wchar) == 1;
    }
    fclose(f);
    return got == 2 ? 0 : -1;
}

static inline void bc_loadavg(char *out, size_t len)
{
    char buf[128] = "";
    if (bc_read_text("/proc/loadavg", buf, sizeof(buf)) != 0) {
        snprintf(out, len, "?");
        return;
    }
    char *p = buf;
    for (int i = 0; i < 3 && p; i++)
        p = strchr(p + (i ? 1 : 0), ' ');
    if (p)
        *p = '\0';
    snprintf(out, len, "%s", buf);
}

#endif
