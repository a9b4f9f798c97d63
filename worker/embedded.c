/* embedded.c -- private cluster for rayc_init("local"); see embedded.h. */
#include "embedded.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"
#include "net.h"
#include "util.h"

#define START_TIMEOUT_MS 60000

extern char **environ;

#define STOP_TIMEOUT_MS 45000 /* a graceful stop on a loaded machine takes seconds */

struct embedded {
    pid_t keeper;
    int pipe_w; /* closing it tells the keeper to stop everything */
    char root[PATH_MAX];
    char cli[PATH_MAX]; /* the rayc CLI, for a forced stop */
};

/* Where our binaries and the CLI are: $RAYC_BIN_DIR, else next to librayc
 * (build tree: build/lib -> build/bin; installed: lib -> libexec/rayc). */
static int find_dirs(char *bindir, size_t blen, char *cli, size_t clen)
{
    const char *env = getenv("RAYC_BIN_DIR");
    char cand[3][PATH_MAX];
    int n = 0;
    if (env && *env)
        snprintf(cand[n++], PATH_MAX, "%s", env);
    Dl_info info;
    if (dladdr((void *)embedded_start, &info) && info.dli_fname) {
        char lib[PATH_MAX];
        if (realpath(info.dli_fname, lib)) {
            char *slash = strrchr(lib, '/');
            if (slash)
                *slash = '\0';
            snprintf(cand[n++], PATH_MAX, "%s/../bin", lib);
            snprintf(cand[n++], PATH_MAX, "%s/../libexec/rayc", lib);
        }
    }
    for (int i = 0; i < n; i++) {
        char probe[PATH_MAX + 32];
        snprintf(probe, sizeof(probe), "%s/gcs_server", cand[i]);
        if (access(probe, X_OK) != 0)
            continue;
        if (realpath(cand[i], bindir) == NULL)
            continue;
        (void)blen;
        const char *tries[] = {"%s/../../scripts/rayc", "%s/../../bin/rayc"};
        const char *cli_env = getenv("RAYC_CLI");
        if (cli_env && access(cli_env, X_OK) == 0) {
            snprintf(cli, clen, "%s", cli_env);
            return 0;
        }
        for (int j = 0; j < 2; j++) {
            char p[PATH_MAX + 32];
            snprintf(p, sizeof(p), tries[j], bindir);
            if (access(p, X_OK) == 0 && realpath(p, cli)) {
                return 0;
            }
        }
    }
    return -1;
}

static int free_port(void)
{
    int port = 0;
    int fd = net_tcp_listen("127.0.0.1", 0, 1, &port);
    if (fd < 0)
        return -1;
    close(fd);
    return port;
}

int embedded_start(embedded **out, const rayc_init_opts *opts, char *session, size_t len)
{
    char bindir[PATH_MAX], cli[PATH_MAX];
    if (find_dirs(bindir, sizeof(bindir), cli, sizeof(cli)) != 0)
        return rayc__error(RAYC_ENOTFOUND,
                           "cannot start an embedded cluster: rayc binaries not found "
                           "(set RAYC_BIN_DIR to the directory holding gcs_server)");
    embedded *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    e->keeper = -1;
    e->pipe_w = -1;
    snprintf(e->root, sizeof(e->root), "/tmp/rayc-embedded-XXXXXX");
    if (mkdtemp(e->root) == NULL) {
        int rc = rayc__error(RAYC_EIO, "mkdtemp: %s", strerror(errno));
        free(e);
        return rc;
    }
    int port = free_port();
    char a_port[32], a_tmp[PATH_MAX + 16], a_cpus[64] = "", a_mem[64] = "";
    snprintf(a_port, sizeof(a_port), "--port=%d", port);
    snprintf(a_tmp, sizeof(a_tmp), "--temp-dir=%s", e->root);
    if (opts && opts->num_cpus > 0)
        snprintf(a_cpus, sizeof(a_cpus), "--num-cpus=%g", opts->num_cpus);
    if (opts && opts->object_store_memory > 0)
        snprintf(a_mem, sizeof(a_mem), "--object-store-memory=%zu", opts->object_store_memory);

    /* $1 cli, $2 root, $3.. start flags. The keeper waits for EOF on fd 3,
     * then stops the cluster. `rayc stop` scoped to this root (through
     * RAYC_TEMP_DIR) also covers a `rayc start` killed before it finished;
     * a second, forced one catches a daemon the head's supervisor restarted
     * while the first ran (seen under ASan: a Redis outlived the cluster). */
    static const char script[] =
        "cli=$1; root=$2; shift 2\n"
        "export RAYC_TEMP_DIR=\"$root\"\n"
        "\"$cli\" start --head --block \"$@\" >\"$root/start.log\" 2>&1 &\n"
        "pid=$!\n"
        "exec 2>/dev/null\n"
        "read _ <&3\n"
        "kill -TERM $pid; wait $pid\n"
        "\"$cli\" stop >/dev/null 2>&1\n"
        "\"$cli\" stop --force >/dev/null 2>&1\n"
        "rm -rf \"$root\"\n";
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        int rc = rayc__error(RAYC_EIO, "pipe: %s", strerror(errno));
        rmdir(e->root);
        free(e);
        return rc;
    }
    char *argv[12];
    int ac = 0;
    argv[ac++] = "sh";
    argv[ac++] = "-c";
    argv[ac++] = (char *)script;
    argv[ac++] = "rayc-embedded";
    argv[ac++] = cli;
    argv[ac++] = e->root;
    snprintf(e->cli, sizeof(e->cli), "%s", cli);
    argv[ac++] = a_port;
    argv[ac++] = a_tmp;
    if (a_cpus[0])
        argv[ac++] = a_cpus;
    if (a_mem[0])
        argv[ac++] = a_mem;
    argv[ac] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    setenv("RAYC_BIN_DIR", bindir, 0);
    int err = posix_spawn(&e->keeper, "/bin/sh", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[0]);
    e->pipe_w = fds[1];
    if (err != 0) {
        e->keeper = -1;
        embedded_stop(&e);
        return rayc__error(RAYC_EIO, "cannot start the embedded cluster: %s", strerror(err));
    }

    /* Wait for the raylet to register (raylet.ready in the new session). */
    char ready[PATH_MAX + 64];
    snprintf(ready, sizeof(ready), "%s/session_latest/raylet.ready", e->root);
    uint64_t deadline = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        if (access(ready, R_OK) == 0)
            break;
        int status;
        if (waitpid(e->keeper, &status, WNOHANG) == e->keeper || now_ms() > deadline) {
            char logp[PATH_MAX + 16], *log = NULL;
            snprintf(logp, sizeof(logp), "%s/start.log", e->root);
            log = read_file(logp, NULL);
            int rc = rayc__error(RAYC_ECONN, "the embedded cluster did not start: %s",
                                 log && *log ? rstrip(log) : "timed out");
            free(log);
            embedded_stop(&e);
            return rc;
        }
        usleep(20000);
    }
    char link[PATH_MAX + 32];
    snprintf(link, sizeof(link), "%s/session_latest", e->root);
    if (realpath(link, session) == NULL)
        snprintf(session, len, "%s", link);
    *out = e;
    return 0;
}

/* The graceful stop did not finish: `rayc stop --force` of the sessions
 * under our root (RAYC_TEMP_DIR), waited for; it has its own timeouts.
 * posix_spawn with a prepared environment: nothing unsafe after a fork in
 * a threaded driver. */
static void force_stop(const embedded *e)
{
    if (e->cli[0] == '\0')
        return;
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof(*envp));
    char temp[PATH_MAX + 16];
    if (envp == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "RAYC_TEMP_DIR=", 14) != 0)
            envp[k++] = environ[i];
    snprintf(temp, sizeof(temp), "RAYC_TEMP_DIR=%s", e->root);
    envp[k] = temp;
    char *argv[] = {(char *)e->cli, "stop", "--force", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawn(&pid, e->cli, &fa, NULL, argv, envp) == 0)
        waitpid(pid, NULL, 0);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
}

void embedded_stop(embedded **ep)
{
    embedded *e = *ep;
    if (e == NULL)
        return;
    if (e->pipe_w >= 0)
        close(e->pipe_w);
    if (e->keeper > 0) {
        int status;
        uint64_t deadline = now_ms() + STOP_TIMEOUT_MS;
        while (waitpid(e->keeper, &status, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(-e->keeper, SIGKILL);
                waitpid(e->keeper, &status, 0);
                force_stop(e); /* the head's supervisor is not in the keeper's group */
                break;
            }
            usleep(10000);
        }
    } else {
        rmdir(e->root);
    }
    free(e);
    *ep = NULL;
}
