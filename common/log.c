/* log.c -- see log.h. Any thread. */
#include "log.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log__level = LOG_LEVEL_INFO;
static int log_fd = 2;

/* ---------------------------------------------------------------- rotation */

static char log_path[PATH_MAX];             /* the file of log_init ("" for stderr) */
static uint64_t rot_max = LOG_ROTATE_BYTES; /* 0: never rotate */
static int rot_keep = LOG_ROTATE_KEEP;
static _Atomic uint64_t log_bytes; /* size of the current file, as far as we wrote it */
static pthread_mutex_t rot_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------------------- repeats */

/* One call site's window. key is (file pointer << 16) | line: __FILE__ of one
 * translation unit is one string, and lines fit 16 bits; 0 marks a free
 * slot. Slots are claimed with a CAS and never released. */
typedef struct {
    _Atomic uint64_t key;
    _Atomic int64_t window;      /* the monotonic second being counted */
    _Atomic uint32_t count;      /* lines of this window, written or not */
    _Atomic uint32_t suppressed; /* dropped since the last line written */
} site;

#define SITE_PROBES 8

static site sites[LOG_SITES];
static int rate_per_sec = LOG_RATE_PER_SEC; /* 0: no limit */

int log_init(const char *path, int level)
{
    log__level = level;
    if (path == NULL)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    /* Only a regular file rotates: never rename /dev/null or a FIFO. */
    struct stat st;
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    snprintf(log_path, sizeof(log_path), "%s", regular ? path : "");
    atomic_store(&log_bytes, regular ? (uint64_t)st.st_size : 0);
    return 0;
}

void log_set_level(int level)
{
    log__level = level;
}

void log_set_rotation(uint64_t max_bytes, int keep)
{
    rot_max = max_bytes;
    rot_keep = keep < 0 ? 0 : keep;
}

void log_set_rate_limit(int per_sec)
{
    rate_per_sec = per_sec < 0 ? 0 : per_sec;
}

int log_level_from_name(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_close(void)
{
    if (log_fd > 2)
        close(log_fd);
    log_fd = 2;
    log_path[0] = '\0';
}

/* Shift x.out.<i> to x.out.<i+1> (the oldest is replaced), x.out to x.out.1,
 * and put a new x.out behind the same descriptor number, so a thread that
 * already read log_fd writes to one file or the other, never to a closed or
 * reused descriptor. Called when a line of n bytes would pass rot_max. */
static void rotate(size_t n)
{
    pthread_mutex_lock(&rot_lock);
    uint64_t cur = atomic_load(&log_bytes);
    if (cur > 0 && cur + n > rot_max && log_path[0]) { /* else another thread did it */
        char src[PATH_MAX + 16], dst[PATH_MAX + 16];
        if (rot_keep == 0)
            unlink(log_path);
        for (int i = rot_keep; i >= 1; i--) {
            if (i == 1)
                snprintf(src, sizeof(src), "%s", log_path);
            else
                snprintf(src, sizeof(src), "%s.%d", log_path, i - 1);
            snprintf(dst, sizeof(dst), "%s.%d", log_path, i);
            rename(src, dst); /* a missing older file is fine */
        }
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup3(fd, log_fd, O_CLOEXEC);
            close(fd);
        }
        /* On failure the old file goes on; the next try is rot_max later. */
        atomic_store(&log_bytes, 0);
    }
    pthread_mutex_unlock(&rot_lock);
}

static void emit(const char *buf, size_t n)
{
    if (log_fd > 2 && rot_max > 0 && log_path[0]) {
        uint64_t cur = atomic_load_explicit(&log_bytes, memory_order_relaxed);
        if (cur > 0 && cur + n > rot_max)
            rotate(n);
    }
    ssize_t w = write(log_fd, buf, n);
    if (w > 0)
        atomic_fetch_add_explicit(&log_bytes, (uint64_t)w, memory_order_relaxed);
}

static void write_line(int level, const char *file, int line, int err, const char *fmt, va_list ap)
{
    static const char tag[] = "DIWEF";
    char buf[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%03d %c %d %s:%d] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), tag[level], (int)getpid(), base, line);
    if (n < (int)sizeof(buf))
        n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    if (err && n < (int)sizeof(buf))
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(err));
    if (n >= (int)sizeof(buf) - 1)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    emit(buf, (size_t)n);
}

static void write_linef(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void write_linef(int level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(level, file, line, 0, fmt, ap);
    va_end(ap);
}

/* The slot of a call site, claimed on first use; NULL when its probe run is
 * full of other sites (that site is then not limited). */
static site *site_of(const char *file, int line)
{
    uint64_t key = (uint64_t)(uintptr_t)file << 16 | ((uint64_t)(unsigned)line & 0xffff);
    uint64_t h = (key * 0x9e3779b97f4a7c15ull) >> 32;
    for (unsigned i = 0; i < SITE_PROBES; i++) {
        site *s = &sites[(h + i) % LOG_SITES];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == key)
            return s;
        if (k == 0) {
            if (atomic_compare_exchange_strong(&s->key, &k, key) || k == key)
                return s;
        }
    }
    return NULL;
}

static int64_t mono_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec;
}

/* Count a line of a site. Returns false if the line is to be dropped; else
 * *notice is the number of lines dropped before it (to report first). */
static bool site_admit(site *s, int limit, uint32_t *notice)
{
    *notice = 0;
    int64_t now = mono_sec();
    int64_t w = atomic_load_explicit(&s->window, memory_order_relaxed);
    if (w != now && atomic_compare_exchange_strong(&s->window, &w, now)) {
        atomic_store(&s->count, 0);
        *notice = atomic_exchange(&s->suppressed, 0);
    }
    if (atomic_fetch_add(&s->count, 1) >= (uint32_t)limit) {
        atomic_fetch_add(&s->suppressed, 1);
        return false;
    }
    return true;
}

void log__write(int level, const char *file, int line, int err, const char *fmt, ...)
{
    int limit = rate_per_sec;
    uint32_t notice = 0;
    if (limit > 0 && level < LOG_LEVEL_FATAL) {
        site *s = site_of(file, line);
        if (s && !site_admit(s, limit, &notice))
            return;
    }
    int saved = errno;
    if (notice)
        write_linef(level, file, line, "... %u similar lines suppressed", notice);
    va_list ap;
    va_start(ap, fmt);
    write_line(level, file, line, err, fmt, ap);
    va_end(ap);
    errno = saved;
}
