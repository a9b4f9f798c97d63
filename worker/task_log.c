/*
 * task_log.c -- see task_log.h.
 *
 * stdout and stderr become fopencookie streams whose write function puts a
 * header line before the first bytes a task writes to that stream. The
 * current task is a thread-local pointer and a generation number; a stream
 * remembers the generation whose header it wrote last.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "task_log.h"

#include "ids.h"

typedef struct tagged {
    int fd;
    uint64_t last_gen; /* the generation whose header was written last */
} tagged;

static _Thread_local const Rpc__TaskSpec *cur_spec;
static _Thread_local uint32_t cur_job;
static _Thread_local uint64_t cur_gen;
static uint64_t next_gen = 1; /* atomic */
static tagged out_stream = {.fd = 1}, err_stream = {.fd = 2};

void tlog_set_task(const Rpc__TaskSpec *spec, uint32_t job)
{
    cur_spec = spec;
    cur_job = job;
    cur_gen = spec ? __atomic_fetch_add(&next_gen, 1, __ATOMIC_RELAXED) : 0;
}

static size_t format_header(char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    int n;
    if (cur_spec == NULL) {
        n = snprintf(out, cap, TLOG_PREFIX "- (between tasks) time=%s.%03ldZ\n", when,
                     ts.tv_nsec / 1000000);
    } else {
        const Rpc__TaskSpec *s = cur_spec;
        char hex[ID_HEX_MAX] = "?";
        if (s->task_id.len == TASK_ID_SIZE)
            id_hex(s->task_id.data, TASK_ID_SIZE, hex);
        const char *name = s->name && s->name[0] ? s->name : s->function;
        n = snprintf(out, cap,
                     TLOG_PREFIX "%.200s function=%.200s id=%s job=%u attempt=%u time=%s.%03ldZ\n",
                     name ? name : "?", s->function ? s->function : "?", hex, cur_job, s->attempt,
                     when, ts.tv_nsec / 1000000);
    }
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Write all of iov to fd; returns the bytes of the caller's data written
 * (the header's are not counted), or -1. */
static ssize_t write_all(int fd, struct iovec *iov, int n, size_t header)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    size_t done = 0;
    while (done < total) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return done > header ? (ssize_t)(done - header) : -1;
        }
        done += (size_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov[0].iov_len) {
            left -= iov[0].iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + left;
            iov[0].iov_len -= left;
        }
    }
    return (ssize_t)(total - header);
}

static ssize_t tagged_write(void *cookie, const char *buf, size_t size)
{
    tagged *t = cookie;
    char head[640];
    struct iovec iov[2];
    int n = 0;
    size_t hlen = 0;
    if (t->last_gen != cur_gen && (cur_gen != 0 || t->last_gen != 0)) {
        hlen = format_header(head, sizeof(head));
        iov[n++] = (struct iovec){head, hlen};
    }
    t->last_gen = cur_gen;
    iov[n++] = (struct iovec){(void *)buf, size};
    ssize_t w = write_all(t->fd, iov, n, hlen);
    return w < 0 ? 0 : w; /* 0 tells stdio of the error */
}

static FILE *open_tagged(tagged *t, int mode)
{
    cookie_io_functions_t io = {.write = tagged_write};
    FILE *f = fopencookie(t, "w", io);
    if (f && setvbuf(f, NULL, mode, mode == _IONBF ? 0 : BUFSIZ) != 0) {
        fclose(f);
        return NULL;
    }
    return f;
}

int tlog_install(void)
{
    FILE *out = open_tagged(&out_stream, _IOLBF);
    FILE *err = open_tagged(&err_stream, _IONBF);
    if (out == NULL || err == NULL) {
        int e = errno;
        if (out)
            fclose(out);
        if (err)
            fclose(err);
        errno = e;
        return -1;
    }
    fflush(stdout);
    stdout = out;
    stderr = err;
    return 0;
}
