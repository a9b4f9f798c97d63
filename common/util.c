/* util.c -- see util.h. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int mkdir_p(const char *path, unsigned mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) == 0)
        return 0;
    /* EEXIST also covers a file in the way: only a directory will do. */
    struct stat st;
    if (errno != EEXIST || stat(buf, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    } else {
        errno = ENOMEM;
    }
    return buf;
}

int write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

char *rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int parse_host_port(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= hostlen)
        return -1;
    if (!isdigit((unsigned char)colon[1])) /* strtol would take " 80" and "+80" */
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p <= 0 || p > 65535)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

int res_set_amount(res_set *set, const char *name, double amount)
{
    for (int i = 0; i < set->n; i++) {
        if (strcmp(set->name[i], name) == 0) {
            set->amount[i] = amount;
            return 0;
        }
    }
    if (set->n == RES_MAX || strlen(name) >= RES_NAME_MAX)
        return -1;
    snprintf(set->name[set->n], RES_NAME_MAX, "%s", name);
    set->amount[set->n++] = amount;
    return 0;
}

double res_get(const res_set *set, const char *name)
{
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->name[i], name) == 0)
            return set->amount[i];
    return 0;
}

bool res_equal(const res_set *a, const res_set *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (res_get(b, a->name[i]) != a->amount[i])
            return false;
    return true;
}

int res_parse(res_set *set, const char *spec, char *err, size_t errlen)
{
    if (spec == NULL || *spec == '\0')
        return 0;
    char *copy = strdup(spec), *save = NULL;
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        char *end = NULL;
        double v = eq ? strtod(eq + 1, &end) : 0;
        if (eq == NULL || eq == tok || end == eq + 1 || *end != '\0' || !isfinite(v) || v < 0) {
            snprintf(err, errlen, "bad resource '%s' (want name=amount, amount >= 0)", tok);
            rc = -1;
            break;
        }
        *eq = '\0';
        if (res_set_amount(set, tok, v) != 0) {
            snprintf(err, errlen, "too many resources or name too long: '%s'", tok);
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

char *res_format(const res_set *set, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    /* %.15g, not %g: byte amounts such as memory must survive a round trip
     * through res_parse (%g keeps 6 digits: 1073741824 -> 1.07374e+09). */
    for (int i = 0; i < set->n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s=%.15g", i ? "," : "", set->name[i],
                                set->amount[i]);
    return buf;
}

uint64_t sys_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    return pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
}

int sys_num_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

long raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

/* One stat result against our uid; what names it in why. */
static int owner_ok(const char *what, const struct stat *st, char *why, size_t len)
{
    if (st->st_uid == geteuid())
        return 0;
    snprintf(why, len, "%s belongs to another user (uid %u, not %u)", what, (unsigned)st->st_uid,
             (unsigned)geteuid());
    return -1;
}

static int stat_failed(const char *path, char *why, size_t len)
{
    int e = errno;
    snprintf(why, len, "%s: %s", path, strerror(e));
    errno = e;
    return -1;
}

int path_is_mine(const char *path, char *why, size_t len)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return stat_failed(path, why, len);
    if (owner_ok(path, &st, why, len) != 0)
        return -1;
    if (!S_ISLNK(st.st_mode))
        return 0;
    if (stat(path, &st) != 0)
        return stat_failed(path, why, len);
    char what[PATH_MAX + 32];
    snprintf(what, sizeof(what), "what %s points to", path);
    return owner_ok(what, &st, why, len);
}

/* ------------------------------------------------------------ hashing */

#define XXH_P1 0x9e3779b185ebca87ull
#define XXH_P2 0xc2b2ae3d27d4eb4full
#define XXH_P3 0x165667b19e3779f9ull
#define XXH_P4 0x85ebca77c2b2ae63ull
#define XXH_P5 0x27d4eb2f165667c5ull

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t read64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * XXH_P2;
    return rotl64(acc, 31) * XXH_P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
    acc ^= xxh_round(0, val);
    return acc * XXH_P1 + XXH_P4;
}

uint64_t hash_bytes(const void *data, size_t n)
{
    const uint8_t *p = data, *end = p + n;
    uint64_t h;
    if (n >= 32) {
        uint64_t v1 = XXH_P1 + XXH_P2, v2 = XXH_P2, v3 = 0, v4 = 0 - XXH_P1;
        for (; p + 32 <= end; p += 32) {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
        }
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(xxh_merge(xxh_merge(xxh_merge(h, v1), v2), v3), v4);
    } else {
        h = XXH_P5;
    }
    h += (uint64_t)n;
    for (; p + 8 <= end; p += 8)
        h = rotl64(h ^ xxh_round(0, read64(p)), 27) * XXH_P1 + XXH_P4;
    if (p + 4 <= end) {
        uint32_t w;
        memcpy(&w, p, 4);
        h = rotl64(h ^ ((uint64_t)w * XXH_P1), 23) * XXH_P2 + XXH_P3;
        p += 4;
    }
    for (; p < end; p++)
        h = rotl64(h ^ (*p * XXH_P5), 11) * XXH_P1;
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    h ^= h >> 32;
    return h;
}

int thread_detached(void *(*fn)(void *), void *arg, size_t stack_bytes)
{
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (stack_bytes)
        pthread_attr_setstacksize(&at, stack_bytes);
    int rc = pthread_create(&th, &at, fn, arg);
    pthread_attr_destroy(&at);
    return rc;
}
