/* harness.c -- real daemons for integration tests; see harness.h. */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "net.h"
#include "rayc.h"
#include "util.h"

#define MAX_PROCS        64
#define TAG_VAR          "RAYC_HARNESS_TAG"
#define STOP_GRACE_MS    5000
#define START_TIMEOUT_MS 30000

/* The state of the running test (one test per process under criterion). */
static char g_dir[HARNESS_PATH];
static harness_proc *g_procs[MAX_PROCS];
static int g_nprocs;
static int g_runs;

/* ============================================================ small helpers */

static void msleep(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, HARNESS_PATH, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && n < HARNESS_PATH, "path too long");
}

static char *slurp(const char *path)
{
    char *s = read_file(path, NULL);
    return s ? s : strdup("");
}

/* Field 22 of /proc/<pid>/stat (start time in ticks) and the state letter;
 * 0 when the process is gone. Pins a pid to one process despite reuse. */
static unsigned long long proc_start(pid_t pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p += 2; /* state is field 3 */
    if (state)
        *state = *p;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

/* Bytes of /proc/<pid>/<what> (NUL-separated lists). Caller frees. */
static char *proc_file(pid_t pid, const char *what, size_t *len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    return read_file(path, len);
}

static bool mem_contains(const char *hay, size_t hlen, const char *needle)
{
    size_t nlen = strlen(needle);
    if (nlen == 0 || hlen < nlen)
        return false;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (memcmp(hay + i, needle, nlen) == 0)
            return true;
    return false;
}

/* Is pid (alive, not a zombie) a process of the test whose dir is `dir`? */
static bool proc_is_ours(pid_t pid, const char *dir)
{
    char tag[HARNESS_PATH + 32];
    snprintf(tag, sizeof(tag), TAG_VAR "=%s", dir);
    size_t len;
    char *env = proc_file(pid, "environ", &len);
    bool ours = env && mem_contains(env, len, tag) && env[len - 1] == '\0';
    free(env);
    if (ours)
        return true;
    /* Redis rewrites its environ for its process title; its command line
     * still names our directory. */
    char *cmd = proc_file(pid, "cmdline", &len);
    ours = cmd && mem_contains(cmd, len, dir);
    free(cmd);
    return ours;
}

/* Live processes of the test dir `dir`, by tag or command line, plus the live
 * pids its pid file records. Calls fn for each. Returns how many. */
static int for_each_ours(const char *dir, void (*fn)(pid_t pid, void *arg), void *arg)
{
    int count = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    struct dirent *e;
    pid_t self = getpid();
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == self)
            continue;
        char state = 0;
        if (proc_start((pid_t)pid, &state) == 0 || state == 'Z')
            continue;
        if (proc_is_ours((pid_t)pid, dir)) {
            count++;
            if (fn)
                fn((pid_t)pid, arg);
        }
    }
    closedir(d);
    /* The pid file: "pid starttime name" lines. */
    char path[HARNESS_PATH + 8];
    snprintf(path, sizeof(path), "%s/pids", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        int pid;
        unsigned long long start;
        char name[64];
        while (fscanf(f, "%d %llu %63s", &pid, &start, name) == 3) {
            char state = 0;
            if (pid <= 0 || proc_start(pid, &state) != start || state == 'Z')
                continue;
            if (proc_is_ours(pid, dir))
                continue; /* counted above */
            count++;
            if (fn)
                fn(pid, arg);
        }
        fclose(f);
    }
    return count;
}

static void kill_group_and_pid(pid_t pid, void *arg)
{
    int sig = *(int *)arg;
    if (getpgid(pid) == pid)
        kill(-pid, sig);
    kill(pid, sig);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Kill everything of a test dir at once and remove it: the runner-side
 * cleanup for a test that never reached its .fini. */
static void sweep_dir(const char *dir)
{
    int sig = SIGKILL;
    for (int round = 0; round < 50 && for_each_ours(dir, kill_group_and_pid, &sig) > 0; round++)
        msleep(20);
    if (getenv("RAYC_HARNESS_KEEP") == NULL)
        rm_rf(dir);
}

static const char *harness_root(void)
{
    static char root[HARNESS_PATH];
    if (root[0] == '\0') {
        const char *r = getenv("RAYC_HARNESS_ROOT");
        if (r && *r)
            snprintf(root, sizeof(root), "%s", r);
        else
            snprintf(root, sizeof(root), "/tmp/rit%d", (int)getpid());
        mkdir(root, 0700);
    }
    return root;
}

/* ============================================================ runner hooks */

/* These run in criterion's runner process, which forks one process per test.
 * The root holds one dir per running test; a test that crashed or timed out
 * left its dir (and maybe processes) behind. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    char root[64];
    snprintf(root, sizeof(root), "/tmp/rit%d", (int)getpid());
    setenv("RAYC_HARNESS_ROOT", root, 1);
    mkdir(root, 0700);
}

static void sweep_matching(const char *want)
{
    const char *root = harness_root();
    DIR *d = opendir(root);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "t.", 2) != 0)
            continue;
        char dir[HARNESS_PATH + 300], file[HARNESS_PATH + 320];
        snprintf(dir, sizeof(dir), "%s/%s", root, e->d_name);
        snprintf(file, sizeof(file), "%s/test", dir);
        char *name = read_file(file, NULL);
        if (want == NULL || (name && strcmp(rstrip(name), want) == 0))
            sweep_dir(dir);
        free(name);
    }
    closedir(d);
}

/* After the test's .fini, not after its body (POST_TEST): the runner gets
 * POST_TEST while the test's own teardown is still stopping its daemons,
 * and a SIGKILL from here would race that graceful stop (and hide what the
 * teardown checks: survivors, exit statuses). */
ReportHook(POST_FINI)(struct criterion_test_stats *stats)
{
    char want[512];
    snprintf(want, sizeof(want), "%s/%s", stats->test->category, stats->test->name);
    sweep_matching(want);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    sweep_matching(NULL);
    if (getenv("RAYC_HARNESS_KEEP") == NULL)
        rmdir(harness_root());
}

/* ============================================================ sanitizers */

/* Every process this test starts (daemons, the workers raylets fork, what
 * the CLI or an embedded cluster starts) inherits ASAN_OPTIONS and
 * UBSAN_OPTIONS naming a log file under <test dir>/san/, so a sanitizer
 * report of any of them is a file there (<prefix>.<pid>) instead of a line
 * in a log nobody reads. harness_teardown fails the test when one exists.
 * The test process itself started before this ran, so its own reports still
 * go to stderr (and crash the test). Options the caller set are kept. */
static void add_option(const char *var, const char *opt)
{
    const char *old = getenv(var);
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s%s%s", old && *old ? old : "", old && *old ? ":" : "", opt);
    setenv(var, buf, 1);
}

static void sanitizer_env(void)
{
    char dir[HARNESS_PATH], opt[HARNESS_PATH + 64];
    pathf(dir, "%s/san", g_dir);
    cr_assert(mkdir(dir, 0700) == 0, "mkdir %s: %s", dir, strerror(errno));
    snprintf(opt, sizeof(opt), "log_path=%s/asan", dir);
    add_option("ASAN_OPTIONS", opt);
    snprintf(opt, sizeof(opt), "log_path=%s/ubsan:print_stacktrace=1", dir);
    add_option("UBSAN_OPTIONS", opt);
}

/* Reports under <dir>/san: their names and first bytes into msg, a copy of
 * each kept in <build>/sanitizer-reports/ (the test dir is removed).
 * Returns how many non-empty report files there are. */
static int sanitizer_reports(const char *dir, char *msg, size_t len, bool keep_copies)
{
    char sdir[HARNESS_PATH + 8];
    snprintf(sdir, sizeof(sdir), "%s/san", dir);
    DIR *d = opendir(sdir);
    if (d == NULL)
        return 0;
    char keep[HARNESS_PATH];
    pathf(keep, "%s/sanitizer-reports", harness_build());
    int n = 0;
    size_t off = 0;
    msg[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[HARNESS_PATH + 300];
        snprintf(path, sizeof(path), "%s/%s", sdir, e->d_name);
        size_t size = 0;
        char *text = read_file(path, &size);
        if (text == NULL || size == 0) {
            free(text);
            continue;
        }
        n++;
        char copy[HARNESS_PATH + 600];
        snprintf(copy, sizeof(copy), "%s/%s.%s.%s", keep,
                 criterion_current_test ? criterion_current_test->category : "?",
                 criterion_current_test ? criterion_current_test->name : "?", e->d_name);
        if (keep_copies && mkdir_p(keep, 0755) == 0)
            (void)write_file(copy, text, size, 0644);
        if (off < len)
            off += (size_t)snprintf(msg + off, len - off, "\n--- %s (%s):\n%.1500s", e->d_name,
                                    keep_copies ? copy : path, text);
        free(text);
    }
    closedir(d);
    return n;
}

int harness_sanitizer_reports(char *msg, size_t len)
{
    return g_dir[0] ? sanitizer_reports(g_dir, msg, len, false) : 0;
}

void harness_sanitizer_forget(void)
{
    char sdir[HARNESS_PATH];
    pathf(sdir, "%s/san", g_dir);
    rm_rf(sdir);
    cr_assert(mkdir(sdir, 0700) == 0, "mkdir %s: %s", sdir, strerror(errno));
}

/* ============================================================ lifecycle */

const char *harness_dir(void)
{
    return g_dir;
}

const char *harness_build(void)
{
    static char build[HARNESS_PATH];
    if (build[0] == '\0') {
        const char *b = getenv("RAYC_BUILD");
        char *abs = realpath(b && *b ? b : "build", NULL);
        cr_assert(abs != NULL, "build dir %s not found (set RAYC_BUILD)", b ? b : "build");
        snprintf(build, sizeof(build), "%s", abs);
        free(abs);
    }
    return build;
}

const char *harness_rayc_script(void)
{
    static char path[HARNESS_PATH];
    if (path[0] == '\0') {
        const char *src = getenv("RAYC_SOURCE_DIR");
        if (src && *src)
            pathf(path, "%s/scripts/rayc", src);
        else
            pathf(path, "%s/../scripts/rayc", harness_build());
        cr_assert(access(path, X_OK) == 0, "%s is not executable (set RAYC_SOURCE_DIR)", path);
    }
    return path;
}

void harness_setup(void)
{
    char tmpl[HARNESS_PATH];
    pathf(tmpl, "%s/t.XXXXXX", harness_root());
    cr_assert(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(g_dir, sizeof(g_dir), "%s", tmpl);
    char file[HARNESS_PATH], name[512];
    pathf(file, "%s/test", g_dir);
    int n = snprintf(name, sizeof(name), "%s/%s\n",
                     criterion_current_test ? criterion_current_test->category : "?",
                     criterion_current_test ? criterion_current_test->name : "?");
    cr_assert(write_file(file, name, (size_t)n, 0600) == 0);
    g_nprocs = 0;
    g_runs = 0;
    signal(SIGPIPE, SIG_IGN);
    sanitizer_env();
}

static void proc_free(harness_proc *p)
{
    for (int i = 0; p->argv[i]; i++)
        free(p->argv[i]);
    free(p);
}

/* Reap p if it has exited; true if it is gone. */
static bool reap(harness_proc *p, bool block)
{
    if (p->reaped)
        return true;
    int st;
    pid_t r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->reaped = true;
        p->status = r == p->pid ? st : 0;
        return true;
    }
    return false;
}

static bool wait_reaped(harness_proc *p, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (!reap(p, false)) {
        if (now_ms() >= deadline)
            return false;
        msleep(10);
    }
    return true;
}

/* What went wrong with our processes' exits, found by harness_stop_all and
 * reported by harness_teardown. */
static char g_problems[2048];
static size_t g_nproblems;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
    if (g_nproblems >= sizeof(g_problems) - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_problems + g_nproblems, sizeof(g_problems) - g_nproblems, fmt, ap);
    va_end(ap);
    if (n > 0)
        g_nproblems += (size_t)n;
    if (g_nproblems > sizeof(g_problems) - 1)
        g_nproblems = sizeof(g_problems) - 1;
}

static int exit_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* A signal no test sends: the process crashed (or a sanitizer aborted it). */
static bool crash_signal(int st)
{
    if (!WIFSIGNALED(st))
        return false;
    int sig = WTERMSIG(st);
    return sig == SIGSEGV || sig == SIGABRT || sig == SIGBUS || sig == SIGILL || sig == SIGFPE;
}

void harness_stop_all(void)
{
    /* Newest first: raylets stop before the GCS they drain at, the GCS
     * before its Redis. */
    for (int i = g_nprocs - 1; i >= 0; i--) {
        harness_proc *p = g_procs[i];
        if (reap(p, false)) {
            /* It exited during the test: tests that make a daemon fail
             * check its code; a crash is never expected. */
            if (!p->any_exit && crash_signal(p->status))
                problem("%s [%d] crashed (signal %d) during the test; ", p->name, (int)p->pid,
                        WTERMSIG(p->status));
            continue;
        }
        kill(p->pid, SIGTERM);
        if (!wait_reaped(p, STOP_GRACE_MS)) {
            kill(-p->pid, SIGKILL);
            kill(p->pid, SIGKILL);
            reap(p, true);
            if (!p->any_exit)
                problem("%s [%d] did not exit within %d ms of SIGTERM; ", p->name, (int)p->pid,
                        STOP_GRACE_MS);
        } else if (!p->any_exit && exit_code(p->status) != 0) {
            /* A daemon stops gracefully on SIGTERM (docs/contracts.md):
             * exit 0. A sanitizer that found a leak at exit makes it 23. */
            problem("%s [%d] exited with code %d on SIGTERM (see %s); ", p->name, (int)p->pid,
                    exit_code(p->status), p->out);
        }
        /* Whatever else it left in its group (workers). */
        kill(-p->pid, SIGKILL);
    }
    /* Processes started by the CLI are not our children: by tag. */
    int sig = SIGTERM;
    if (g_dir[0] && for_each_ours(g_dir, kill_group_and_pid, &sig) > 0) {
        uint64_t deadline = now_ms() + STOP_GRACE_MS;
        while (for_each_ours(g_dir, NULL, NULL) > 0 && now_ms() < deadline)
            msleep(20);
        sig = SIGKILL;
        for (int round = 0; round < 50 && for_each_ours(g_dir, kill_group_and_pid, &sig) > 0;
             round++)
            msleep(20);
    }
    for (int i = 0; i < g_nprocs; i++)
        proc_free(g_procs[i]);
    g_nprocs = 0;
}

struct describe {
    char *buf;
    size_t len, off;
};

static void describe_proc(pid_t pid, void *arg)
{
    struct describe *d = arg;
    size_t len;
    char *cmd = proc_file(pid, "cmdline", &len);
    if (cmd)
        for (size_t i = 0; i + 1 < len; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
    if (d->off < d->len)
        d->off += (size_t)snprintf(d->buf + d->off, d->len - d->off, "[%d] %s; ", (int)pid,
                                   cmd ? cmd : "?");
    free(cmd);
}

int harness_survivors(char *buf, size_t len)
{
    struct describe d = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    return g_dir[0] ? for_each_ours(g_dir, buf ? describe_proc : NULL, &d) : 0;
}

void harness_teardown(void)
{
    if (g_dir[0] == '\0')
        return;
    harness_stop_all();
    char who[2048];
    int n = harness_survivors(who, sizeof(who));
    if (n > 0)
        sweep_dir(g_dir);
    /* Every process is gone: sanitizer logs are complete (LeakSanitizer
     * writes at exit). */
    static char reports[8192];
    int nrep = sanitizer_reports(g_dir, reports, sizeof(reports), true);
    bool keep = getenv("RAYC_HARNESS_KEEP") != NULL;
    if (keep)
        cr_log_info("kept %s", g_dir);
    else
        rm_rf(g_dir);
    g_dir[0] = '\0';
    char problems[sizeof(g_problems)];
    snprintf(problems, sizeof(problems), "%s", g_problems);
    g_problems[0] = '\0';
    g_nproblems = 0;
    if (n > 0)
        harness_fail_teardown("%d process(es) survived the test: %s", n, who);
    if (nrep > 0)
        harness_fail_teardown("%d sanitizer report(s) from processes of this test:%s", nrep,
                              reports);
    if (problems[0])
        harness_fail_teardown("daemon exit status: %s", problems);
}

/* Criterion ignores assertions (and even exits) in a .fini: the test still
 * counts as passed and the binary exits 0. So a teardown failure is a
 * file in the run's root, named by the test, which main() below reports and
 * turns into a failing exit status once the run is over. */
void harness_fail_teardown(const char *fmt, ...)
{
    char msg[12288];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *cat = criterion_current_test ? criterion_current_test->category : "?";
    const char *name = criterion_current_test ? criterion_current_test->name : "?";
    char path[HARNESS_PATH + 32];
    snprintf(path, sizeof(path), "%s/teardown-failed.%d.%d", harness_root(), (int)getpid(),
             (int)(now_ms() % 100000));
    char text[sizeof(msg) + 600];
    int len = snprintf(text, sizeof(text), "%s::%s: %s\n", cat, name, msg);
    if (len > (int)sizeof(text) - 1)
        len = (int)sizeof(text) - 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        (void)!write(fd, text, (size_t)len);
        close(fd);
    }
    cr_log_error("teardown of %s::%s failed: %s", cat, name, msg);
}

/* Report and remove the teardown failures of this run; how many. */
static int teardown_failures(void)
{
    const char *root = harness_root();
    DIR *d = opendir(root);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "teardown-failed.", 16) != 0)
            continue;
        char path[HARNESS_PATH + 300];
        snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
        char *text = read_file(path, NULL);
        fprintf(stderr, "[FAIL] in teardown: %s", text ? text : "?\n");
        free(text);
        unlink(path);
        n++;
    }
    closedir(d);
    if (getenv("RAYC_HARNESS_KEEP") == NULL)
        rmdir(root);
    return n;
}

/* The runner stopped by a signal (`timeout`, Ctrl-C, a CI limit): its
 * tests' daemons would outlive it, and its test processes would go on
 * starting more. The handler only writes the signal to a pipe; a thread
 * forks a reaper and lets the signal end the runner as it would have. The
 * reaper (its own session) kills every process of this run (the test
 * processes carry RAYC_HARNESS_ROOT, the daemons the test dirs' tag or
 * path) until none is left, then removes the run's root. */
static int g_stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    (void)!write(g_stop_pipe[1], &b, 1);
}

/* Session dirs of the run's daemons (an embedded cluster's may lie outside
 * the root): a Redis they started names one in its command line only. */
typedef struct {
    char dir[16][HARNESS_PATH];
    int n;
} run_dirs;

/* Note the session dir a daemon's command line names (up to its
 * "/session_" part). */
static void note_session(run_dirs *rd, const char *cmd, size_t len)
{
    const char *flag = "--session-dir=";
    for (size_t i = 0; i < len; i += strlen(cmd + i) + 1) {
        if (strncmp(cmd + i, flag, strlen(flag)) != 0)
            continue;
        char dir[HARNESS_PATH];
        snprintf(dir, sizeof(dir), "%s", cmd + i + strlen(flag));
        char *s = strstr(dir, "/session_");
        if (s)
            *s = '\0';
        for (int k = 0; k < rd->n; k++)
            if (strcmp(rd->dir[k], dir) == 0)
                return;
        if (rd->n < 16)
            snprintf(rd->dir[rd->n++], HARNESS_PATH, "%s", dir);
    }
}

static bool proc_of_run(pid_t pid, const char *root, run_dirs *rd)
{
    char var[HARNESS_PATH + 32];
    snprintf(var, sizeof(var), "RAYC_HARNESS_ROOT=%s", root);
    size_t len;
    char *env = proc_file(pid, "environ", &len);
    bool ours = env && mem_contains(env, len, var);
    free(env);
    char *cmd = proc_file(pid, "cmdline", &len);
    ours = ours || proc_is_ours(pid, root);
    for (int k = 0; cmd && !ours && k < rd->n; k++)
        ours = mem_contains(cmd, len, rd->dir[k]);
    if (ours && cmd)
        note_session(rd, cmd, len);
    free(cmd);
    return ours;
}

static void reap_run(const char *root)
{
    setsid();
    pid_t self = getpid();
    static run_dirs rd;
    for (int quiet = 0, round = 0; quiet < 3 && round < 250; round++) {
        int n = 0;
        DIR *d = opendir("/proc");
        for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            char state = 0;
            if (*end != '\0' || pid <= 0 || pid == self || proc_start((pid_t)pid, &state) == 0 ||
                state == 'Z' || !proc_of_run((pid_t)pid, root, &rd))
                continue;
            kill((pid_t)pid, SIGKILL);
            n++;
        }
        if (d)
            closedir(d);
        quiet = n ? 0 : quiet + 1;
        msleep(20);
    }
    if (getenv("RAYC_HARNESS_KEEP") == NULL) {
        rm_rf(root);
        for (int k = 0; k < rd.n; k++) /* embedded clusters' temp dirs */
            rm_rf(rd.dir[k]);
    }
    _exit(0);
}

static void *stop_sweeper(void *arg)
{
    (void)arg;
    unsigned char sig;
    while (read(g_stop_pipe[0], &sig, 1) != 1)
        ;
    char root[HARNESS_PATH];
    snprintf(root, sizeof(root), "%s", harness_root());
    if (fork() == 0)
        reap_run(root);
    signal(sig, SIG_DFL);
    raise(sig);
    return NULL;
}

static void sweep_on_stop_signals(void)
{
    pthread_t th;
    if (pipe2(g_stop_pipe, O_CLOEXEC) != 0 || pthread_create(&th, NULL, stop_sweeper, NULL) != 0)
        return;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* The integration binaries' main: criterion's, plus the teardown failures. */
__attribute__((visibility("default"))) int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    sweep_on_stop_signals();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    int bad = teardown_failures();
    if (bad > 0)
        fprintf(stderr, "[====] %d test(s) failed in teardown (not counted in the synthesis)\n",
                bad);
    return result || bad ? 1 : 0;
}

void harness_slow_test(void)
{
    const char *v = getenv("RAYC_TEST_SLOW");
    if (v == NULL || atoi(v) <= 0)
        cr_skip_test("slow test: run it with RAYC_TEST_SLOW=1 (make test-slow)");
}

int harness_free_port(void)
{
    int port = 0;
    int fd = net_tcp_listen("127.0.0.1", 0, 1, &port);
    cr_assert(fd >= 0, "cannot find a free port: %s", strerror(errno));
    close(fd);
    return port;
}

/* ============================================================ processes */

static void record_pid(pid_t pid, const char *name)
{
    char path[HARNESS_PATH + 8], line[128];
    snprintf(path, sizeof(path), "%s/pids", g_dir);
    unsigned long long start = 0;
    /* The child may not have been scheduled yet; its start time exists as
     * soon as fork returns. */
    for (int i = 0; i < 100 && (start = proc_start(pid, NULL)) == 0; i++)
        msleep(1);
    int n = snprintf(line, sizeof(line), "%d %llu %s\n", (int)pid, start, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    cr_assert(write(fd, line, (size_t)n) == n);
    close(fd);
}

/* fork + setsid + exec with our tag, stdout/stderr to the given files. */
static pid_t fork_exec(char *const argv[], const char *out, const char *err)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid > 0)
        return pid;
    setsid();
    setenv(TAG_VAR, g_dir, 1);
    signal(SIGPIPE, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    int o = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int e = err ? open(err, O_WRONLY | O_CREAT | O_APPEND, 0600) : o;
    if (in < 0 || o < 0 || e < 0)
        _exit(126);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    closefrom(3);
    execv(argv[0], argv);
    dprintf(2, "%s: cannot exec: %s\n", argv[0], strerror(errno));
    _exit(127);
}

harness_proc *harness_spawn(const char *name, const char *out, char *const argv[])
{
    cr_assert(g_nprocs < MAX_PROCS, "too many processes");
    harness_proc *p = calloc(1, sizeof(*p));
    cr_assert(p != NULL);
    snprintf(p->name, sizeof(p->name), "%s", name);
    if (out)
        snprintf(p->out, sizeof(p->out), "%s", out);
    else
        pathf(p->out, "%s/%s.out", g_dir, name);
    int i = 0;
    for (; argv[i]; i++) {
        cr_assert(i < HARNESS_MAX_ARGS, "too many arguments");
        p->argv[i] = strdup(argv[i]);
    }
    p->argv[i] = NULL;
    p->pid = fork_exec(p->argv, p->out, NULL);
    record_pid(p->pid, name);
    g_procs[g_nprocs++] = p;
    return p;
}

bool harness_alive(harness_proc *p)
{
    return !reap(p, false);
}

int harness_wait_exit(harness_proc *p, int timeout_ms)
{
    if (!wait_reaped(p, timeout_ms))
        return -1;
    return exit_code(p->status);
}

void harness_kill9(harness_proc *p)
{
    if (p->reaped)
        return;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    reap(p, true);
}

harness_proc *harness_restart(harness_proc *p)
{
    harness_kill9(p);
    return harness_spawn(p->name, p->out, p->argv);
}

const char *harness_last_line(const harness_proc *p, char *buf, size_t len)
{
    char *s = slurp(p->out);
    rstrip(s);
    char *nl = strrchr(s, '\n');
    snprintf(buf, len, "%s", nl ? nl + 1 : s);
    free(s);
    return buf;
}

int harness_capture_fd(int fd, const char *path)
{
    fflush(fd == 1 ? stdout : stderr);
    int saved = dup(fd);
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert(saved >= 0 && f >= 0, "capture %d into %s: %s", fd, path, strerror(errno));
    dup2(f, fd);
    close(f);
    return saved;
}

void harness_restore_fd(int fd, int saved)
{
    fflush(fd == 1 ? stdout : stderr);
    dup2(saved, fd);
    close(saved);
}

bool harness_file_contains(const char *path, const char *needle)
{
    fflush(stdout);
    fflush(stderr);
    char *s = read_file(path, NULL);
    bool ok = s && strstr(s, needle) != NULL;
    free(s);
    return ok;
}

bool harness_wait_until(bool (*pred)(void *), void *arg, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (pred(arg))
            return true;
        if (now_ms() >= deadline)
            return false;
        msleep(20);
    }
}

int harness_run(char *const argv[], char **out, char **err, int timeout_ms)
{
    char ofile[HARNESS_PATH], efile[HARNESS_PATH];
    int run = ++g_runs;
    pathf(ofile, "%s/run%d.stdout", g_dir, run);
    pathf(efile, "%s/run%d.stderr", g_dir, run);
    pid_t pid = fork_exec(argv, ofile, efile);
    record_pid(pid, "run");
    harness_proc p = {.pid = pid};
    int rc;
    if (!wait_reaped(&p, timeout_ms)) {
        kill(-pid, SIGKILL);
        reap(&p, true);
        rc = -1;
    } else {
        rc = exit_code(p.status);
    }
    if (out)
        *out = slurp(ofile);
    if (err)
        *err = slurp(efile);
    return rc;
}

static int run_with_prefix(const char *const prefix[], const char *const args[], char **out,
                           char **err)
{
    char *argv[HARNESS_MAX_ARGS + 1];
    int n = 0;
    for (int i = 0; prefix[i]; i++)
        argv[n++] = (char *)prefix[i];
    for (int i = 0; args && args[i]; i++) {
        cr_assert(n < HARNESS_MAX_ARGS, "too many arguments");
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    return harness_run(argv, out, err, 120000);
}

int harness_rayc(char **out, char **err, const char *const args[])
{
    char temp[HARNESS_PATH], bin[HARNESS_PATH];
    pathf(temp, "%s/rayc", g_dir);
    pathf(bin, "%s/bin", harness_build());
    setenv("RAYC_TEMP_DIR", temp, 1);
    setenv("RAYC_BIN_DIR", bin, 1);
    const char *const prefix[] = {harness_rayc_script(), NULL};
    int rc = run_with_prefix(prefix, args, out, err);
    unsetenv("RAYC_TEMP_DIR");
    unsetenv("RAYC_BIN_DIR");
    return rc;
}

int harness_ctl(char **out, char **err, const char *const args[])
{
    char ctl[HARNESS_PATH];
    pathf(ctl, "%s/bin/rayc_ctl", harness_build());
    const char *const prefix[] = {ctl, NULL};
    return run_with_prefix(prefix, args, out, err);
}

/* ============================================================ cluster */

void harness_cluster_init(harness_cluster *c)
{
    memset(c, 0, sizeof(*c));
    c->heartbeat_interval_ms = 200;
    c->health_timeout_ms = 2000;
    /* Sanitizer builds run everything a few times slower: a loaded raylet
     * may miss a 2 s deadline without being dead (make asan sets this). */
    const char *t = getenv("RAYC_TEST_HEALTH_TIMEOUT_MS");
    if (t && atoi(t) > 0)
        c->health_timeout_ms = atoi(t);
}

/* AUTH + PING over the Unix socket; true on +PONG. */
static bool redis_ping(const char *sock, const char *password)
{
    int fd = net_unix_connect(sock);
    if (fd < 0)
        return false;
    char cmd[512], buf[256];
    int n = snprintf(cmd, sizeof(cmd), "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n*1\r\n$4\r\nPING\r\n",
                     strlen(password), password);
    bool ok = false;
    if (net_write_all(fd, cmd, (size_t)n) == 0) {
        size_t got = 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        while (got < sizeof(buf) - 1 && poll(&pfd, 1, 1000) > 0) {
            ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            buf[got] = '\0';
            if (strstr(buf, "+PONG")) {
                ok = true;
                break;
            }
        }
    }
    close(fd);
    return ok;
}

/* Poll check() until true; fail with the process's last line if it exits. */
static void wait_started(harness_proc *p, bool (*check)(void *), void *arg, const char *what)
{
    uint64_t deadline = now_ms() + START_TIMEOUT_MS;
    while (!check(arg)) {
        if (!harness_alive(p)) {
            char line[512];
            cr_assert_fail("%s exited (code %d) before it was ready: %s", what,
                           exit_code(p->status), harness_last_line(p, line, sizeof(line)));
        }
        cr_assert(now_ms() < deadline, "%s not ready after %d ms (see %s)", what, START_TIMEOUT_MS,
                  p->out);
        msleep(20);
    }
}

struct redis_arg {
    const char *sock, *pw;
};

static bool redis_up(void *arg)
{
    struct redis_arg *r = arg;
    return redis_ping(r->sock, r->pw);
}

static bool gcs_up(void *arg)
{
    int code;
    char err[256];
    bconn *b = harness_connect(arg, NULL, &code, err, sizeof(err));
    bconn_close(b);
    return b != NULL;
}

static void start_gcs(harness_cluster *c)
{
    char a[8][HARNESS_PATH + 32];
    char *argv[16];
    int n = 0;
    snprintf(a[0], sizeof(a[0]), "%s/bin/gcs_server", harness_build());
    snprintf(a[1], sizeof(a[1]), "--port=%d", c->port);
    snprintf(a[2], sizeof(a[2]), "--session-dir=%s", c->dir);
    snprintf(a[3], sizeof(a[3]), "--token-file=%s", c->token_file);
    snprintf(a[4], sizeof(a[4]), "--redis-socket=%s", c->redis_socket);
    snprintf(a[5], sizeof(a[5]), "--redis-password-file=%s", c->redis_password_file);
    snprintf(a[6], sizeof(a[6]), "--health-timeout-ms=%d", c->health_timeout_ms);
    snprintf(a[7], sizeof(a[7]), "--heartbeat-interval-ms=%d", c->heartbeat_interval_ms);
    for (int i = 0; i < 8; i++)
        argv[n++] = a[i];
    argv[n++] = "--node-ip-address=127.0.0.1";
    argv[n] = NULL;
    char out[HARNESS_PATH];
    pathf(out, "%s/logs/gcs_server.err", c->dir);
    c->gcs = harness_spawn("gcs_server", out, argv);
    wait_started(c->gcs, gcs_up, c, "gcs_server");
}

void harness_cluster_start(harness_cluster *c)
{
    cr_assert(g_dir[0], "harness_setup has not run (use it as the suite's .init)");
    char path[HARNESS_PATH];
    pathf(c->dir, "%s/head", g_dir);
    pathf(path, "%s/logs", c->dir);
    cr_assert(mkdir_p(path, 0700) == 0);
    pathf(path, "%s/redis", c->dir);
    cr_assert(mkdir_p(path, 0700) == 0);

    auth_token_generate(c->token);
    pathf(c->token_file, "%s/token", c->dir);
    cr_assert(write_file(c->token_file, c->token, strlen(c->token), 0600) == 0);
    char pw[AUTH_TOKEN_LEN + 1];
    auth_token_generate(pw);
    pathf(c->redis_password_file, "%s/redis.password", c->dir);
    cr_assert(write_file(c->redis_password_file, pw, strlen(pw), 0600) == 0);
    pathf(c->redis_socket, "%s/redis/redis.sock", c->dir);

    /* The password goes in a 0600 config file, not on a command line. */
    char conf[HARNESS_PATH], text[2048];
    pathf(conf, "%s/redis/redis.conf", c->dir);
    int n = snprintf(text, sizeof(text),
                     "port 0\nunixsocket %s\nunixsocketperm 700\nrequirepass %s\n"
                     "appendonly yes\ndir %s/redis\nsave \"\"\ndaemonize no\nlogfile \"\"\n",
                     c->redis_socket, pw, c->dir);
    cr_assert(write_file(conf, text, (size_t)n, 0600) == 0);
    char out[HARNESS_PATH];
    pathf(out, "%s/logs/redis.out", c->dir);
    char *rargv[] = {"/usr/bin/redis-server", conf, NULL};
    if (access(rargv[0], X_OK) != 0)
        rargv[0] = "/usr/local/bin/redis-server";
    c->redis = harness_spawn("redis", out, rargv);
    struct redis_arg ra = {c->redis_socket, pw};
    wait_started(c->redis, redis_up, &ra, "redis-server");

    c->port = harness_free_port();
    snprintf(c->address, sizeof(c->address), "127.0.0.1:%d", c->port);
    start_gcs(c);
}

void harness_gcs_restart(harness_cluster *c)
{
    harness_proc *old = c->gcs;
    c->gcs = harness_restart(old);
    wait_started(c->gcs, gcs_up, c, "restarted gcs_server");
}

harness_proc *harness_raylet_spawn(harness_cluster *c, const char *token, const char *const extra[])
{
    cr_assert(c->nraylets < HARNESS_MAX_RAYLETS, "too many raylets");
    harness_raylet *r = &c->raylets[c->nraylets];
    char path[HARNESS_PATH];
    pathf(r->session, "%s/node%d", g_dir, c->nraylets);
    pathf(path, "%s/logs", r->session);
    cr_assert(mkdir_p(path, 0700) == 0);
    pathf(path, "%s/sockets", r->session);
    cr_assert(mkdir_p(path, 0700) == 0);
    pathf(r->token_file, "%s/token", r->session);
    const char *tok = token ? token : c->token;
    cr_assert(write_file(r->token_file, tok, strlen(tok), 0600) == 0);
    /* As `rayc start` does: workers find the GCS (task events, rayc_nodes)
     * through the session dir of their raylet. */
    pathf(path, "%s/gcs_address", r->session);
    cr_assert(write_file(path, c->address, strlen(c->address), 0600) == 0);
    pathf(r->socket, "%s/sockets/raylet", r->session);

    char a[8][HARNESS_PATH + 32];
    char *argv[HARNESS_MAX_ARGS + 1];
    int n = 0;
    snprintf(a[0], sizeof(a[0]), "%s/bin/raylet", harness_build());
    snprintf(a[1], sizeof(a[1]), "--gcs-address=%s", c->address);
    snprintf(a[2], sizeof(a[2]), "--token-file=%s", r->token_file);
    snprintf(a[3], sizeof(a[3]), "--session-dir=%s", r->session);
    snprintf(a[4], sizeof(a[4]), "--health-timeout-ms=%d", c->health_timeout_ms);
    snprintf(a[5], sizeof(a[5]), "--heartbeat-interval-ms=%d", c->heartbeat_interval_ms);
    for (int i = 0; i < 6; i++)
        argv[n++] = a[i];
    argv[n++] = "--node-ip-address=127.0.0.1";
    argv[n++] = "--num-cpus=1";
    argv[n++] = "--object-store-memory=32M";
    argv[n++] = "--gcs-reconnect-max-ms=200";
    if (c->nraylets == 0)
        argv[n++] = "--head";
    for (int i = 0; extra && extra[i]; i++) {
        cr_assert(n < HARNESS_MAX_ARGS, "too many arguments");
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    pathf(path, "%s/logs/raylet.err", r->session);
    char name[32];
    snprintf(name, sizeof(name), "raylet%d", c->nraylets);
    r->proc = harness_spawn(name, path, argv);
    c->nraylets++;
    return r->proc;
}

static bool ready_file(void *arg)
{
    harness_raylet *r = arg;
    char path[HARNESS_PATH + 16];
    snprintf(path, sizeof(path), "%s/raylet.ready", r->session);
    char *s = read_file(path, NULL);
    if (s == NULL)
        return false;
    rstrip(s);
    bool ok = strlen(s) == 2 * NODE_ID_SIZE;
    if (ok)
        snprintf(r->node_id, sizeof(r->node_id), "%s", s);
    free(s);
    return ok;
}

harness_raylet *harness_raylet_start(harness_cluster *c, const char *const extra[])
{
    harness_raylet_spawn(c, NULL, extra);
    harness_raylet *r = &c->raylets[c->nraylets - 1];
    wait_started(r->proc, ready_file, r, r->proc->name);
    return r;
}

bconn *harness_connect(const harness_cluster *c, const char *token, int *code, char *err,
                       size_t errlen)
{
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_CLI;
    hs.pid = (int32_t)getpid();
    hs.name = "harness";
    return bconn_open("127.0.0.1", c->port, NULL, token ? token : c->token, &hs, 2000, NULL, NULL,
                      0, NULL, code, err, errlen);
}

Rpc__ListNodesReply *harness_list_nodes(const harness_cluster *c)
{
    int code;
    char err[256];
    bconn *b = harness_connect(c, NULL, &code, err, sizeof(err));
    if (b == NULL)
        return NULL;
    Rpc__ListNodesRequest req = RPC__LIST_NODES_REQUEST__INIT;
    req.req_id = 1;
    ProtobufCMessage *r = NULL;
    int rc = bconn_call(b, MSG_LIST_NODES_REQ, &req.base, MSG_LIST_NODES_REPLY, &r, 2000);
    bconn_close(b);
    return rc == 0 ? (Rpc__ListNodesReply *)r : NULL;
}

int harness_count_nodes(const harness_cluster *c, int state)
{
    Rpc__ListNodesReply *r = harness_list_nodes(c);
    if (r == NULL)
        return -1;
    int n = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        if ((int)r->nodes[i]->state == state)
            n++;
    msg_free(&r->base);
    return n;
}

void harness_test_file(char *out, const char *name)
{
    snprintf(out, HARNESS_PATH, "%s/%s", harness_dir(), name);
}

int harness_lines_with(const char *path, const char *prefix)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) >= 0)
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    free(line);
    fclose(f);
    return n;
}

bool harness_has_lines(void *arg)
{
    harness_lines *a = arg;
    return harness_lines_with(a->path, a->prefix) >= a->want;
}

struct settled_arg {
    const harness_cluster *c;
    uint64_t after; /* 0: ALIVE is enough */
};

static bool nodes_settled(void *arg)
{
    struct settled_arg *a = arg;
    Rpc__ListNodesReply *r = harness_list_nodes(a->c);
    if (r == NULL)
        return false;
    int alive = 0;
    bool fresh = true;
    for (size_t i = 0; i < r->n_nodes; i++) {
        if (r->nodes[i]->state != RPC__NODE_STATE__NODE_ALIVE)
            continue;
        alive++;
        fresh = fresh && r->nodes[i]->last_heartbeat_ms > a->after;
    }
    msg_free(&r->base);
    return alive >= a->c->nraylets && fresh;
}

void harness_wait_nodes_settled(const harness_cluster *c, int timeout_ms)
{
    struct settled_arg a = {c, 0};
    cr_assert(harness_wait_until(nodes_settled, &a, timeout_ms), "expected %d ALIVE nodes, have %d",
              c->nraylets, harness_count_nodes(c, RPC__NODE_STATE__NODE_ALIVE));
    if (c->nraylets < 2)
        return;
    a.after = wall_ms() + 2 * (uint64_t)c->heartbeat_interval_ms;
    cr_assert(harness_wait_until(nodes_settled, &a, timeout_ms),
              "raylets did not heartbeat after every node joined");
}

const char *harness_example_lib(const char *name)
{
    static char paths[4][HARNESS_PATH];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, HARNESS_PATH, "%s/examples/lib%s_tasks.so", harness_build(), name);
    cr_assert(access(p, R_OK) == 0, "%s missing (make builds it)", p);
    return p;
}

void harness_driver_init(const harness_cluster *c, const char *const *code, const char *ns)
{
    setenv("RAYC_TOKEN_FILE", c->token_file, 1);
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_ADDRESS");
    char temp[HARNESS_PATH + 16];
    snprintf(temp, sizeof(temp), "%s/drivertmp", harness_dir());
    mkdir(temp, 0700);
    setenv("RAYC_TEMP_DIR", temp, 1);
    rayc_init_opts o = {.address = c->address, .code = code, .log_to_driver = -1, .namespace_ = ns};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
}

int harness_rayc_dashboard(const char *dashboard, const char *token_file, char **out, char **err,
                           const char *const args[])
{
    char addr[96], tok[HARNESS_PATH + 16];
    snprintf(addr, sizeof(addr), "--address=%s", dashboard);
    snprintf(tok, sizeof(tok), "--token-file=%s", token_file);
    const char *a[24];
    int n = 0;
    a[n++] = args[0];
    a[n++] = addr;
    a[n++] = tok;
    for (int i = 1; args[i] && n < 23; i++)
        a[n++] = args[i];
    a[n] = NULL;
    return harness_rayc(out, err, a);
}

int harness_node_state(const harness_cluster *c, const char *node_hex)
{
    Rpc__ListNodesReply *r = harness_list_nodes(c);
    if (r == NULL)
        return -1;
    int state = -1;
    for (size_t i = 0; i < r->n_nodes; i++) {
        char hex[ID_HEX_MAX];
        if (r->nodes[i]->node_id.len != NODE_ID_SIZE)
            continue;
        id_hex(r->nodes[i]->node_id.data, NODE_ID_SIZE, hex);
        if (strcmp(hex, node_hex) == 0)
            state = (int)r->nodes[i]->state;
    }
    msg_free(&r->base);
    return state;
}

/* Write data, then wait for EOF or a reset; true if the peer hung up. */
static bool garbage(int fd, const void *data, size_t len, int timeout_ms)
{
    if (fd < 0)
        return false;
    /* A write error means the peer already hung up: also a refusal. */
    (void)net_write_all(fd, data, len);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    char buf[4096];
    bool closed = false;
    while (!closed && now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            closed = true; /* bytes (the Hello) are read and dropped */
    }
    close(fd);
    return closed;
}

bool harness_send_garbage_tcp(int port, const void *data, size_t len, int timeout_ms)
{
    return garbage(net_tcp_connect("127.0.0.1", port, 2000), data, len, timeout_ms);
}

bool harness_send_garbage_unix(const char *path, const void *data, size_t len, int timeout_ms)
{
    return garbage(net_unix_connect(path), data, len, timeout_ms);
}

bconn *harness_local_connect(const harness_raylet *r, int role)
{
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    worker_id_t id = worker_id_random();
    hs.role = role;
    hs.id.data = id.b;
    hs.id.len = WORKER_ID_SIZE;
    hs.pid = (int32_t)getpid();
    hs.name = "harness";
    int fds[2], nfds = 0, code = 0;
    char err[256];
    bconn *b = bconn_open(NULL, 0, r->socket, NULL, &hs, 5000, NULL, fds, 2, &nfds, &code, err,
                          sizeof(err));
    for (int i = 0; b != NULL && i < nfds; i++)
        close(fds[i]); /* the arena */
    return b;
}

static Rpc__StoreStatsReply *store_stats(const harness_raylet *r, bool reset_peak)
{
    bconn *b = harness_local_connect(r, RPC__ROLE__ROLE_CLI);
    if (b == NULL)
        return NULL;
    Rpc__StoreStatsRequest req = RPC__STORE_STATS_REQUEST__INIT;
    req.req_id = 1;
    req.reset_peak = reset_peak;
    ProtobufCMessage *m = NULL;
    int rc = bconn_call(b, MSG_STORE_STATS_REQ, &req.base, MSG_STORE_STATS_REPLY, &m, 10000);
    bconn_close(b);
    if (rc != 0)
        return NULL;
    Rpc__StoreStatsReply *st = (Rpc__StoreStatsReply *)m;
    if (st->status && st->status->code != 0) {
        msg_free(m);
        return NULL;
    }
    return st;
}

Rpc__StoreStatsReply *harness_store_stats(const harness_raylet *r)
{
    return store_stats(r, false);
}

Rpc__StoreStatsReply *harness_store_stats_reset_peak(const harness_raylet *r)
{
    return store_stats(r, true);
}
