/*
 * gcs_jobsub.c -- submitted jobs' processes; see gcs_jobsub.h.
 *
 * fork+exec happens on the loop thread: the GCS is single-threaded, so the
 * child may call setenv/chdir before exec. A close-on-exec pipe tells the
 * parent whether the child got as far as exec (a bad working dir is an
 * error of the submission, not a FAILED job). Reaping is driven by SIGCHLD
 * and, as a safety net for coalesced signals, by a periodic tick that also
 * escalates stops from SIGTERM to SIGKILL.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_jobsub.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "rayc.h"
#include "util.h"

#define TICK_MS 250

typedef struct {
    gcs_jobsub_info info;
    uint64_t kill_at_ms; /* monotonic; SIGKILL the group then (0: not stopping) */
} record;

struct gcs_jobsub {
    struct event_base *base;
    char *gcs_address, *token, *log_dir, *default_dir;
    struct event *sigchld, *tick;
    record **recs; /* submission order */
    size_t n, cap;
    gcs_jobsub_save_fn save;
    gcs_jobsub_forget_fn forget;
    gcs_jobsub_package_fn package;
    void *hook_arg;
};

/* The record changed: persist it. */
static void saved(gcs_jobsub *m, const record *r)
{
    if (m->save)
        m->save(m->hook_arg, &r->info);
}

static const char *const status_names[] = {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"};

const char *gcs_jobsub_status_name(gcs_jobsub_status s)
{
    return (unsigned)s < 5 ? status_names[s] : "UNKNOWN";
}

bool gcs_jobsub_is_terminal(gcs_jobsub_status s)
{
    return s == GCS_JOBSUB_SUCCEEDED || s == GCS_JOBSUB_FAILED || s == GCS_JOBSUB_STOPPED;
}

static void record_free(record *r)
{
    if (r == NULL)
        return;
    free(r->info.entrypoint);
    free(r->info.working_dir);
    free(r->info.message);
    free(r->info.log_path);
    free(r);
}

static void set_message(record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_message(record *r, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char *m = strdup(buf);
    if (m) {
        free(r->info.message);
        r->info.message = m;
    }
}

/* ------------------------------------------------------------- reaping */

/* The entrypoint exited with wait status st: record it, and kill what is
 * left of its process group so a finished job leaves nothing behind. */
static void ended(gcs_jobsub *m, record *r, int st)
{
    pid_t pgid = r->info.pid;
    kill(-pgid, SIGKILL);
    r->info.end_time_ms = wall_ms();
    r->kill_at_ms = 0;
    if (WIFEXITED(st))
        r->info.exit_code = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        r->info.exit_code = 128 + WTERMSIG(st);
    if (r->info.stop_requested) {
        r->info.status = GCS_JOBSUB_STOPPED;
        set_message(r, "Job was intentionally stopped.");
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        r->info.status = GCS_JOBSUB_SUCCEEDED;
        set_message(r, "Job finished successfully.");
    } else if (WIFEXITED(st)) {
        r->info.status = GCS_JOBSUB_FAILED;
        set_message(r, "Job entrypoint command failed with exit code %d", WEXITSTATUS(st));
    } else {
        r->info.status = GCS_JOBSUB_FAILED;
        set_message(r, "Job entrypoint command was killed by signal %d", WTERMSIG(st));
    }
    log_info("job %s %s: %s", r->info.id, gcs_jobsub_status_name(r->info.status), r->info.message);
    saved(m, r);
}

static void reap(gcs_jobsub *m)
{
    uint64_t now = now_ms();
    for (size_t i = 0; i < m->n; i++) {
        record *r = m->recs[i];
        if (r->info.status != GCS_JOBSUB_RUNNING)
            continue;
        int st;
        pid_t p = waitpid(r->info.pid, &st, WNOHANG);
        if (p == r->info.pid) {
            ended(m, r, st);
        } else if (p < 0 && errno == ECHILD) {
            ended(m, r, 0xff00); /* somebody else reaped it: exit 255 */
        } else if (r->kill_at_ms && now >= r->kill_at_ms) {
            log_warn("job %s: still running %d ms after SIGTERM: SIGKILL", r->info.id,
                     GCS_JOBSUB_KILL_GRACE_MS);
            kill(-r->info.pid, SIGKILL);
            r->kill_at_ms = 0;
        }
    }
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    reap(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reap(arg);
}

/* ------------------------------------------------------------ lifecycle */

gcs_jobsub *gcs_jobsub_new(struct event_base *base, const gcs_jobsub_opts *opts)
{
    gcs_jobsub *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->base = base;
    m->gcs_address = strdup(opts->gcs_address ? opts->gcs_address : "");
    m->token = strdup(opts->token ? opts->token : "");
    m->log_dir = strdup(opts->log_dir ? opts->log_dir : "/tmp");
    m->default_dir = strdup(opts->default_dir ? opts->default_dir : "/");
    m->save = opts->save;
    m->forget = opts->forget;
    m->package = opts->package;
    m->hook_arg = opts->hook_arg;
    m->sigchld = evsignal_new(base, SIGCHLD, on_sigchld, m);
    m->tick = event_new(base, -1, EV_PERSIST, on_tick, m);
    struct timeval tv = {0, TICK_MS * 1000};
    if (!m->gcs_address || !m->token || !m->log_dir || !m->default_dir || !m->sigchld || !m->tick ||
        event_add(m->sigchld, NULL) != 0 || event_add(m->tick, &tv) != 0) {
        gcs_jobsub_free(m);
        return NULL;
    }
    return m;
}

void gcs_jobsub_free(gcs_jobsub *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        record *r = m->recs[i];
        if (r->info.status == GCS_JOBSUB_RUNNING && r->info.pid > 0) {
            log_info("job %s: killed at GCS shutdown", r->info.id);
            kill(-r->info.pid, SIGKILL);
            waitpid(r->info.pid, NULL, 0);
            r->info.status = GCS_JOBSUB_FAILED;
            r->info.exit_code = 128 + SIGKILL;
            r->info.end_time_ms = wall_ms();
            set_message(r, "Job was stopped: the GCS shut down while it ran.");
            saved(m, r);
        }
        record_free(r);
    }
    free(m->recs);
    if (m->sigchld)
        event_free(m->sigchld);
    if (m->tick)
        event_free(m->tick);
    if (m->token) {
        memset(m->token, 0, strlen(m->token));
        free(m->token);
    }
    free(m->gcs_address);
    free(m->log_dir);
    free(m->default_dir);
    free(m);
}

/* Room for one more record: drop the oldest ended one when full. */
static int make_room(gcs_jobsub *m)
{
    if (m->n >= GCS_JOBSUB_MAX) {
        size_t i;
        for (i = 0; i < m->n; i++)
            if (gcs_jobsub_is_terminal(m->recs[i]->info.status))
                break;
        if (i == m->n)
            return RAYC_EBUSY;
        if (m->forget)
            m->forget(m->hook_arg, m->recs[i]->info.id);
        record_free(m->recs[i]);
        memmove(&m->recs[i], &m->recs[i + 1], (m->n - i - 1) * sizeof(*m->recs));
        m->n--;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        record **nr = realloc(m->recs, cap * sizeof(*nr));
        if (nr == NULL)
            return RAYC_ENOMEM;
        m->recs = nr;
        m->cap = cap;
    }
    return 0;
}

/* The hash of a package URI (GCS_JOBSUB_PKG_PREFIX <64 hex> SUFFIX) into
 * hash[65]; false if wd is not one. */
static bool package_hash(const char *wd, char hash[65])
{
    size_t pl = strlen(GCS_JOBSUB_PKG_PREFIX), sl = strlen(GCS_JOBSUB_PKG_SUFFIX);
    if (wd == NULL || strncmp(wd, GCS_JOBSUB_PKG_PREFIX, pl) != 0 || strlen(wd) != pl + 64 + sl ||
        strcmp(wd + pl + 64, GCS_JOBSUB_PKG_SUFFIX) != 0)
        return false;
    memcpy(hash, wd + pl, 64);
    hash[64] = '\0';
    for (int i = 0; i < 64; i++)
        if (!((hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f')))
            return false;
    return true;
}

/* In the child: unpack the package into dir (made 0700) with tar, fed
 * through a pipe; tar's messages go to the job's log (fds 1 and 2 already).
 * 0, or an errno. */
static int unpack(const char *dir, const uint8_t *pkg, size_t len)
{
    if (mkdir_p(dir, 0700) != 0)
        return errno;
    int p[2];
    if (pipe(p) != 0)
        return errno;
    signal(SIGCHLD, SIG_DFL); /* the GCS's handler is not ours to wake */
    signal(SIGPIPE, SIG_IGN); /* tar may stop reading: a write error, not a death */
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        dup2(p[0], 0);
        close(p[0]);
        close(p[1]);
        execlp("tar", "tar", "-xzf", "-", "-C", dir, "--no-same-owner", "--no-same-permissions",
               (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(p[1], pkg + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(p[1]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    signal(SIGPIPE, SIG_DFL);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        dprintf(2, "rayc: cannot unpack the uploaded working dir into %s (tar failed)\n", dir);
        return EIO;
    }
    return 0;
}

/* In the child, between fork and exec: never returns. Reports a failure
 * before exec as an errno on errfd. pkg: the uploaded working dir, if any. */
static void child(const gcs_jobsub *m, const record *r, int logfd, int errfd, const uint8_t *pkg,
                  size_t pkglen)
{
    int e = 0;
    setsid();
    signal(SIGPIPE, SIG_DFL);
    int nullfd = open("/dev/null", O_RDONLY);
    if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
        goto fail;
    char dir[PATH_MAX];
    if (pkg) {
        snprintf(dir, sizeof(dir), "%s/working_dirs/%s", m->default_dir, r->info.id);
        if ((errno = unpack(dir, pkg, pkglen)) != 0)
            goto fail;
    } else {
        snprintf(dir, sizeof(dir), "%s",
                 r->info.working_dir ? r->info.working_dir : m->default_dir);
    }
    if (chdir(dir) != 0)
        goto fail;
    if (setenv("RAYC_ADDRESS", m->gcs_address, 1) != 0 || setenv("RAYC_TOKEN", m->token, 1) != 0 ||
        setenv("RAYC_JOB_SUBMISSION_ID", r->info.id, 1) != 0)
        goto fail;
    unsetenv("RAYC_TOKEN_FILE");
    for (int fd = 3; fd < 4096; fd++)
        if (fd != errfd)
            close(fd);
    execl("/bin/sh", "sh", "-c", r->info.entrypoint, (char *)NULL);
fail:
    e = errno;
    if (write(errfd, &e, sizeof(e)) < 0) {
        /* nothing more to do */
    }
    _exit(127);
}

static void random_id(char out[GCS_JOBSUB_ID_MAX])
{
    uint8_t nonce[AUTH_NONCE_LEN];
    static const char hex[] = "0123456789abcdef";
    auth_nonce(nonce);
    int k = snprintf(out, GCS_JOBSUB_ID_MAX, "raycsubmit_");
    for (int i = 0; i < 8; i++) {
        out[k++] = hex[nonce[i] >> 4];
        out[k++] = hex[nonce[i] & 15];
    }
    out[k] = '\0';
}

int gcs_jobsub_submit(gcs_jobsub *m, const char *entrypoint, const char *working_dir,
                      const gcs_jobsub_info **out, char *err, size_t errlen)
{
    size_t elen = entrypoint ? strlen(entrypoint) : 0;
    if (elen == 0 || elen > GCS_JOBSUB_ENTRY_MAX) {
        snprintf(err, errlen, "the entrypoint must be 1 to %d bytes", GCS_JOBSUB_ENTRY_MAX);
        return RAYC_EINVAL;
    }
    char wd[PATH_MAX], hash[65];
    struct stat sb;
    const uint8_t *pkg = NULL;
    size_t pkglen = 0;
    if (package_hash(working_dir, hash)) {
        if (m->package == NULL || m->package(m->hook_arg, hash, &pkg, &pkglen) != RAYC_OK) {
            snprintf(err, errlen, "working dir %s was not uploaded to the GCS", working_dir);
            return RAYC_EINVAL;
        }
        snprintf(wd, sizeof(wd), "%s", working_dir);
    } else if (working_dir && *working_dir) {
        if (realpath(working_dir, wd) == NULL || stat(wd, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            snprintf(err, errlen, "working dir %s is not a directory on the head", working_dir);
            return RAYC_EINVAL;
        }
    }
    int rc = make_room(m);
    if (rc != 0) {
        snprintf(err, errlen, rc == RAYC_EBUSY ? "too many running jobs" : "out of memory");
        return rc;
    }
    record *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return RAYC_ENOMEM;
    }
    random_id(r->info.id);
    r->info.status = GCS_JOBSUB_PENDING;
    r->info.entrypoint = strdup(entrypoint);
    r->info.working_dir = working_dir && *working_dir ? strdup(wd) : NULL;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/job-driver-%s.log", m->log_dir, r->info.id);
    r->info.log_path = strdup(path);
    r->info.start_time_ms = wall_ms();
    if (!r->info.entrypoint || !r->info.log_path ||
        (working_dir && *working_dir && !r->info.working_dir)) {
        record_free(r);
        snprintf(err, errlen, "out of memory");
        return RAYC_ENOMEM;
    }
    if (mkdir_p(m->log_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", m->log_dir, strerror(errno));
        record_free(r);
        return RAYC_EIO;
    }
    int logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int pfd[2] = {-1, -1};
    if (logfd < 0 || pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (logfd >= 0)
            close(logfd);
        record_free(r);
        return RAYC_EIO;
    }
    pid_t pid = fork();
    if (pid == 0)
        child(m, r, logfd, pfd[1], pkg, pkglen);
    int fork_errno = errno;
    close(logfd);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        snprintf(err, errlen, "fork: %s", strerror(fork_errno));
        record_free(r);
        return RAYC_EIO;
    }
    int child_errno = 0;
    ssize_t got;
    do
        got = read(pfd[0], &child_errno, sizeof(child_errno));
    while (got < 0 && errno == EINTR);
    close(pfd[0]);
    r->info.pid = pid;
    m->recs[m->n++] = r;
    if (got == (ssize_t)sizeof(child_errno)) {
        int st;
        waitpid(pid, &st, 0);
        r->info.status = GCS_JOBSUB_FAILED;
        r->info.exit_code = 127;
        r->info.end_time_ms = wall_ms();
        set_message(r, "Job entrypoint could not start: %s", strerror(child_errno));
    } else {
        r->info.status = GCS_JOBSUB_RUNNING;
        set_message(r, "Job is currently running.");
    }
    log_info("job %s submitted: pid %d, %s", r->info.id, (int)pid, r->info.entrypoint);
    saved(m, r);
    *out = &r->info;
    return 0;
}

static record *find(const gcs_jobsub *m, const char *id)
{
    for (size_t i = 0; id && i < m->n; i++)
        if (strcmp(m->recs[i]->info.id, id) == 0)
            return m->recs[i];
    return NULL;
}

int gcs_jobsub_stop(gcs_jobsub *m, const char *id, bool *stopped)
{
    record *r = find(m, id);
    *stopped = false;
    if (r == NULL)
        return RAYC_ENOTFOUND;
    if (r->info.status != GCS_JOBSUB_RUNNING)
        return 0;
    *stopped = true;
    if (!r->info.stop_requested) {
        r->info.stop_requested = true;
        r->kill_at_ms = now_ms() + GCS_JOBSUB_KILL_GRACE_MS;
        kill(-r->info.pid, SIGTERM);
        log_info("job %s: stopping (SIGTERM to process group %d)", r->info.id, r->info.pid);
        saved(m, r);
    }
    return 0;
}

/* ------------------------------------------------------------ restoring */

/* SIGKILL every process whose environment says it belongs to job id (an
 * entrypoint of an earlier GCS: no child of ours, so its process group id
 * alone proves nothing). Returns how many. */
static int kill_job_processes(const char *id)
{
    char want[GCS_JOBSUB_ID_MAX + 32];
    int wlen = snprintf(want, sizeof(want), "RAYC_JOB_SUBMISSION_ID=%s", id);
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]) || atoi(e->d_name) == (int)getpid())
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/environ", e->d_name);
        size_t len;
        char *env = read_file(path, &len);
        for (size_t off = 0; env && off < len; off += strlen(env + off) + 1) {
            if (strncmp(env + off, want, (size_t)wlen + 1) == 0) {
                kill((pid_t)atoi(e->d_name), SIGKILL);
                n++;
                break;
            }
        }
        free(env);
    }
    if (d)
        closedir(d);
    return n;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int gcs_jobsub_restore(gcs_jobsub *m, const gcs_jobsub_info *x)
{
    if (find(m, x->id))
        return 0;
    int rc = make_room(m);
    if (rc != 0)
        return rc;
    record *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return RAYC_ENOMEM;
    r->info = *x;
    r->info.entrypoint = dup_or_null(x->entrypoint ? x->entrypoint : "");
    r->info.working_dir = x->working_dir && *x->working_dir ? strdup(x->working_dir) : NULL;
    r->info.message = dup_or_null(x->message ? x->message : "");
    r->info.log_path = dup_or_null(x->log_path ? x->log_path : "");
    if (!r->info.entrypoint || !r->info.message || !r->info.log_path) {
        record_free(r);
        return RAYC_ENOMEM;
    }
    bool was_running = !gcs_jobsub_is_terminal(r->info.status);
    if (was_running) {
        int killed = kill_job_processes(r->info.id);
        r->info.status = GCS_JOBSUB_FAILED;
        r->info.exit_code = -1;
        r->info.end_time_ms = wall_ms();
        set_message(r, "Job was stopped: the GCS restarted while it ran (%d process(es) killed).",
                    killed);
        log_info("job %s: %s", r->info.id, r->info.message);
    }
    size_t i = m->n; /* start-time order */
    while (i > 0 && m->recs[i - 1]->info.start_time_ms > r->info.start_time_ms)
        i--;
    memmove(&m->recs[i + 1], &m->recs[i], (m->n - i) * sizeof(*m->recs));
    m->recs[i] = r;
    m->n++;
    if (was_running)
        saved(m, r);
    return 0;
}

const gcs_jobsub_info *gcs_jobsub_get(const gcs_jobsub *m, const char *id)
{
    record *r = find(m, id);
    return r ? &r->info : NULL;
}

size_t gcs_jobsub_count(const gcs_jobsub *m)
{
    return m->n;
}

size_t gcs_jobsub_list(const gcs_jobsub *m, const gcs_jobsub_info **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n && n < cap; i++)
        out[n++] = &m->recs[i]->info;
    return n;
}

void gcs_jobsub_counts(const gcs_jobsub *m, size_t counts[5])
{
    memset(counts, 0, 5 * sizeof(*counts));
    for (size_t i = 0; m && i < m->n; i++)
        if ((unsigned)m->recs[i]->info.status < 5)
            counts[m->recs[i]->info.status]++;
}
