/*
 * plasma_spill.c -- spill files of the plasma store; see plasma_spill.h.
 * Synchronous: called from the store's I/O thread (plasma_io.c), or inline
 * when that thread is not running.
 */
#include "plasma_spill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "util.h"

struct plasma_spill {
    char dir[PATH_MAX - 2 * OBJECT_ID_SIZE - 8];
    plasma_spill_info st;
};

static void path_of(const plasma_spill *sp, const object_id_t *id, char *out, size_t len)
{
    char hex[ID_HEX_MAX];
    snprintf(out, len, "%s/%s.obj", sp->dir, id_hex(id->b, OBJECT_ID_SIZE, hex));
}

static bool is_spill_name(const char *name)
{
    size_t n = strlen(name);
    return n == 2 * OBJECT_ID_SIZE + 4 && strcmp(name + 2 * OBJECT_ID_SIZE, ".obj") == 0;
}

/* Remove every spill file in the directory. */
static void sweep(plasma_spill *sp)
{
    DIR *d = opendir(sp->dir);
    if (d == NULL)
        return;
    struct dirent *e;
    int removed = 0;
    while ((e = readdir(d)) != NULL) {
        if (!is_spill_name(e->d_name))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed > 0)
        log_info("plasma: removed %d stale spill files from %s", removed, sp->dir);
}

plasma_spill *plasma_spill_open(const char *dir, char *err, size_t errlen)
{
    if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof(((plasma_spill *)0)->dir)) {
        snprintf(err, errlen, "bad spill directory '%s'", dir ? dir : "");
        return NULL;
    }
    if (mkdir_p(dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create spill directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    plasma_spill *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
    sweep(sp);
    return sp;
}

void plasma_spill_close(plasma_spill *sp)
{
    if (sp == NULL)
        return;
    sweep(sp);
    rmdir(sp->dir); /* when nothing else is in it */
    free(sp);
}

const char *plasma_spill_dir(const plasma_spill *sp)
{
    return sp->dir;
}

int plasma_spill_write(plasma_spill *sp, const object_id_t *id, const void *data, uint64_t size)
{
    char path[PATH_MAX];
    path_of(sp, id, path, sizeof(path));
    uint64_t t0 = now_us();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        sp->st.write_errors++;
        return rayc__error(RAYC_EIO, "spill: open %s: %s", path, strerror(errno));
    }
    const uint8_t *p = data;
    uint64_t done = 0;
    while (done < size) {
        size_t n = size - done > PLASMA_SPILL_CHUNK ? PLASMA_SPILL_CHUNK : (size_t)(size - done);
        ssize_t w = pwrite(fd, p + done, n, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(path);
            sp->st.write_errors++;
            return rayc__error(RAYC_EIO, "spill: write %s: %s", path, strerror(e));
        }
        done += (uint64_t)w;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(path);
        sp->st.write_errors++;
        return rayc__error(RAYC_EIO, "spill: close %s: %s", path, strerror(e));
    }
    sp->st.writes++;
    sp->st.bytes_written += size;
    sp->st.write_us += now_us() - t0;
    return 0;
}

int plasma_spill_read(plasma_spill *sp, const object_id_t *id, void *dst, uint64_t size)
{
    char path[PATH_MAX];
    path_of(sp, id, path, sizeof(path));
    uint64_t t0 = now_us();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sp->st.read_errors++;
        return rayc__error(errno == ENOENT ? RAYC_ENOTFOUND : RAYC_EIO, "spill: open %s: %s", path,
                           strerror(errno));
    }
    struct stat stt;
    if (fstat(fd, &stt) != 0 || (uint64_t)stt.st_size != size) {
        close(fd);
        sp->st.read_errors++;
        return rayc__error(RAYC_EIO, "spill: %s has %lld bytes, expected %llu", path,
                           (long long)stt.st_size, (unsigned long long)size);
    }
    uint8_t *p = dst;
    uint64_t done = 0;
    while (done < size) {
        size_t n = size - done > PLASMA_SPILL_CHUNK ? PLASMA_SPILL_CHUNK : (size_t)(size - done);
        ssize_t r = pread(fd, p + done, n, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            close(fd);
            sp->st.read_errors++;
            return rayc__error(RAYC_EIO, "spill: read %s: %s", path, strerror(e));
        }
        done += (uint64_t)r;
    }
    close(fd);
    sp->st.reads++;
    sp->st.bytes_read += size;
    sp->st.read_us += now_us() - t0;
    return 0;
}

void plasma_spill_remove(plasma_spill *sp, const object_id_t *id)
{
    char path[PATH_MAX];
    path_of(sp, id, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        log_syserr(errno, "spill: unlink %s", path);
}

void plasma_spill_stats(const plasma_spill *sp, plasma_spill_info *out)
{
    *out = sp->st;
}
