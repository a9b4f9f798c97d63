/*
 * log_files.c -- a node's log files for `rayc logs`; see log_files.h.
 */
#include "log_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rayc.h"

static void fail(log_answer *a, int code, const char *msg)
{
    msg_status_set(&a->status, code, msg);
}

static bool name_ok(const char *name)
{
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL &&
           strlen(name) < NAME_MAX;
}

static int name_cmp(const void *x, const void *y)
{
    const Rpc__LogFile *a = *(Rpc__LogFile *const *)x, *b = *(Rpc__LogFile *const *)y;
    return strcmp(a->name, b->name);
}

static void list(const char *dir, log_answer *a)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fail(a, errno == ENOENT ? RAYC_ENOTFOUND : RAYC_EIO, strerror(errno));
        return;
    }
    a->files = calloc(LOG_FILES_MAX, sizeof(*a->files));
    a->file_ptrs = calloc(LOG_FILES_MAX, sizeof(*a->file_ptrs));
    a->names = malloc((size_t)LOG_FILES_MAX * NAME_MAX);
    if (!a->files || !a->file_ptrs || !a->names) {
        closedir(d);
        fail(a, RAYC_ENOMEM, "out of memory");
        return;
    }
    size_t n = 0;
    for (struct dirent *e; n < LOG_FILES_MAX && (e = readdir(d)) != NULL;) {
        struct stat sb;
        if (!name_ok(e->d_name) || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(sb.st_mode))
            continue;
        char *nm = a->names + n * NAME_MAX;
        snprintf(nm, NAME_MAX, "%s", e->d_name);
        rpc__log_file__init(&a->files[n]);
        a->files[n].name = nm;
        a->files[n].size = (uint64_t)sb.st_size;
        a->files[n].mtime_ms =
            (uint64_t)sb.st_mtim.tv_sec * 1000 + (uint64_t)sb.st_mtim.tv_nsec / 1000000;
        a->file_ptrs[n] = &a->files[n];
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(a->file_ptrs, n, sizeof(*a->file_ptrs), name_cmp);
    a->reply.files = a->file_ptrs;
    a->reply.n_files = n;
}

static void piece(const char *dir, const Rpc__LogRequest *rq, log_answer *a)
{
    if (!name_ok(rq->filename)) {
        fail(a, RAYC_EINVAL, "a log file is a plain name in the node's logs directory");
        return;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = dfd < 0 ? -1 : openat(dfd, rq->filename, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    if (dfd >= 0)
        close(dfd);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        fail(a, fd < 0 && e == ENOENT ? RAYC_ENOTFOUND : RAYC_EINVAL,
             fd < 0 && e == ENOENT ? "no such log file on the node" : "not a regular log file");
        return;
    }
    uint64_t size = (uint64_t)sb.st_size, off = rq->offset < size ? rq->offset : size;
    uint64_t want = rq->max_bytes && rq->max_bytes < LOG_PIECE_MAX ? rq->max_bytes : LOG_PIECE_MAX;
    if (want > size - off)
        want = size - off;
    a->data = malloc(want ? want : 1);
    if (a->data == NULL) {
        close(fd);
        fail(a, RAYC_ENOMEM, "out of memory");
        return;
    }
    ssize_t got = want ? pread(fd, a->data, want, (off_t)off) : 0;
    close(fd);
    if (got < 0) {
        fail(a, RAYC_EIO, strerror(errno));
        return;
    }
    a->reply.data.data = a->data;
    a->reply.data.len = (size_t)got;
    a->reply.offset = off;
    a->reply.size = size;
}

void log_files_answer(const char *dir, const Rpc__LogRequest *rq, log_answer *a)
{
    memset(a, 0, sizeof(*a));
    rpc__log_reply__init(&a->reply);
    rpc__status__init(&a->status);
    a->reply.req_id = rq->req_id;
    a->reply.status = &a->status;
    if (rq->filename == NULL || rq->filename[0] == '\0')
        list(dir, a);
    else
        piece(dir, rq, a);
}

void log_answer_free(log_answer *a)
{
    free(a->files);
    free(a->file_ptrs);
    free(a->names);
    free(a->data);
    memset(a, 0, sizeof(*a));
}
