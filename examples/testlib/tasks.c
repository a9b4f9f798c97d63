/*
 * Task library of the integration tests (tests/integration/test_tasks.c) and
 * of the testlib self-check driver. Every function is small and does one
 * thing a test needs: echo bytes, read the environment, print, crash in a
 * chosen way, count its attempts in a file, sleep, recurse.
 *
 * Arguments that are strings (paths, modes, names) are passed with their
 * terminating NUL; numbers are int64 in host order.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rayc.h"

/* ------------------------------------------------------------ helpers */

static int64_t arg_i64(const rayc_buf *b)
{
    int64_t v = 0;
    if (b->size >= sizeof(v))
        memcpy(&v, b->data, sizeof(v));
    return v;
}

/* A string argument: must carry its NUL. NULL otherwise. */
static const char *arg_str(const rayc_buf *b)
{
    const char *s = b->data;
    if (b->size == 0 || s[b->size - 1] != '\0')
        return NULL;
    return s;
}

static uint64_t fnv1a(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Append one line to path: how tests count attempts and prove side effects. */
static int append_line(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, line, strlen(line));
    close(fd);
    return n < 0 ? -1 : 0;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        if (c == '\n')
            n++;
    fclose(f);
    return n;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ------------------------------------------------------------ basics */

/* noop(): no return value (an empty value). */
static int noop(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)ctx;
    (void)args;
    (void)nargs;
    return 0;
}
RAYC_REMOTE(noop)

/* echo(x): returns x. */
static int echo(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1)
        return rayc_fail(ctx, "echo wants 1 argument, got %zu", nargs);
    return rayc_return(ctx, 0, args[0].data, args[0].size);
}
RAYC_REMOTE(echo)

/* inc(n): n + 1. */
static int inc(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1 || args[0].size != sizeof(int64_t))
        return rayc_fail(ctx, "inc wants one int64");
    int64_t v = arg_i64(&args[0]) + 1;
    return rayc_return(ctx, 0, &v, sizeof(v));
}
RAYC_REMOTE(inc)

/* add(a, b, ...): the int64 sum. */
static int add(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    int64_t sum = 0;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].size != sizeof(int64_t))
            return rayc_fail(ctx, "add: argument %zu is %zu bytes, not an int64", i, args[i].size);
        sum += arg_i64(&args[i]);
    }
    return rayc_return(ctx, 0, &sum, sizeof(sum));
}
RAYC_REMOTE(add)

/* digest(bytes): {size, fnv1a(bytes)} as two uint64. */
static int digest(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1)
        return rayc_fail(ctx, "digest wants 1 argument");
    uint64_t out[2] = {args[0].size, fnv1a(args[0].data, args[0].size)};
    return rayc_return(ctx, 0, out, sizeof(out));
}
RAYC_REMOTE(digest)

/* sample(bytes): {size, fnv1a of every 4096th byte and the last}: checks a
 * large argument without reading all of it in every one of many tasks. */
static int sample(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1)
        return rayc_fail(ctx, "sample wants 1 argument");
    const uint8_t *p = args[0].data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < args[0].size; i += 4096) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    if (args[0].size > 0) {
        h ^= p[args[0].size - 1];
        h *= 1099511628211ULL;
    }
    uint64_t out[2] = {args[0].size, h};
    return rayc_return(ctx, 0, out, sizeof(out));
}
RAYC_REMOTE(sample)

/* env(name): the value of getenv(name) with its NUL, or fails when unset. */
static int env(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *name = nargs == 1 ? arg_str(&args[0]) : NULL;
    if (name == NULL)
        return rayc_fail(ctx, "env wants a variable name");
    const char *v = getenv(name);
    if (v == NULL)
        return rayc_fail(ctx, "%s is not set", name);
    return rayc_return(ctx, 0, v, strlen(v) + 1);
}
RAYC_REMOTE(env)

/* say(text): prints text on stdout and "err:" text on stderr; returns its pid. */
static int say(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *text = nargs == 1 ? arg_str(&args[0]) : NULL;
    if (text == NULL)
        return rayc_fail(ctx, "say wants a string");
    printf("%s\n", text);
    fflush(stdout);
    fprintf(stderr, "err:%s\n", text);
    fflush(stderr);
    int64_t pid = getpid();
    return rayc_return(ctx, 0, &pid, sizeof(pid));
}
RAYC_REMOTE(say)

/* say_split(text): prints text and a newline in two writes 50 ms apart, so
 * the raylet sees an unfinished line first (it must forward the line whole). */
static int say_split(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *text = nargs == 1 ? arg_str(&args[0]) : NULL;
    if (text == NULL)
        return rayc_fail(ctx, "say_split wants a string");
    int half = (int)(strlen(text) / 2);
    printf("%.*s", half, text);
    fflush(stdout);
    usleep(50 * 1000);
    printf("%s\n", text + half);
    fflush(stdout);
    int64_t pid = getpid();
    return rayc_return(ctx, 0, &pid, sizeof(pid));
}
RAYC_REMOTE(say_split)

/* pid(): this worker's pid. */
static int pid(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)args;
    (void)nargs;
    int64_t p = getpid();
    return rayc_return(ctx, 0, &p, sizeof(p));
}
RAYC_REMOTE(pid)

/* multi(large_size): three returns: "small-0", a large_size pattern written in
 * place (byte i = (i * 7 + 3) & 0xff), and "small-2". */
static int multi(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1 || args[0].size != sizeof(int64_t))
        return rayc_fail(ctx, "multi wants one int64 size");
    size_t big = (size_t)arg_i64(&args[0]);
    int rc = rayc_return(ctx, 0, "small-0", 8);
    if (rc != 0)
        return rayc_fail(ctx, "return 0: %s", rayc_last_error());
    uint8_t *p = rayc_return_alloc(ctx, 1, big);
    if (p == NULL)
        return rayc_fail(ctx, "return_alloc(%zu): %s", big, rayc_last_error());
    for (size_t i = 0; i < big; i++)
        p[i] = (uint8_t)((i * 7 + 3) & 0xff);
    rc = rayc_return(ctx, 2, "small-2", 8);
    if (rc != 0)
        return rayc_fail(ctx, "return 2: %s", rayc_last_error());
    return 0;
}
RAYC_REMOTE(multi)

/* ------------------------------------------------------------ failures */

/* fail_msg(): an application error "boom 7". */
static int fail_msg(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)args;
    (void)nargs;
    return rayc_fail(ctx, "boom %d", 7);
}
RAYC_REMOTE(fail_msg)

/* ret_code(): returns 42 without rayc_fail. */
static int ret_code(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    (void)ctx;
    (void)args;
    (void)nargs;
    return 42;
}
RAYC_REMOTE(ret_code)

/* touch(dep, path): creates path. Used behind a failed dependency to prove
 * it never ran. */
static int touch(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *path = nargs >= 1 ? arg_str(&args[nargs - 1]) : NULL;
    if (path == NULL || append_line(path, "ran\n") != 0)
        return rayc_fail(ctx, "touch: cannot create the file");
    return 0;
}
RAYC_REMOTE(touch)

/* crash(counter_path, mode): appends a line to counter_path, then dies the
 * way mode says: "abort", "segv", "exit3", "kill9". With a third int64
 * argument n, it succeeds (returns the attempt count) from attempt n on. */
static int crash(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *path = nargs >= 2 ? arg_str(&args[0]) : NULL;
    const char *mode = nargs >= 2 ? arg_str(&args[1]) : NULL;
    if (path == NULL || mode == NULL)
        return rayc_fail(ctx, "crash wants a counter path and a mode");
    if (append_line(path, "attempt\n") != 0)
        return rayc_fail(ctx, "crash: cannot write %s", path);
    int64_t attempts = count_lines(path);
    if (nargs >= 3 && attempts >= arg_i64(&args[2]))
        return rayc_return(ctx, 0, &attempts, sizeof(attempts));
    fflush(NULL);
    if (strcmp(mode, "abort") == 0)
        abort();
    if (strcmp(mode, "segv") == 0) {
        volatile int *p = NULL;
        *p = 1;
    }
    if (strcmp(mode, "exit3") == 0)
        exit(3);
    if (strcmp(mode, "kill9") == 0)
        kill(getpid(), SIGKILL);
    return rayc_fail(ctx, "crash: unknown mode %s", mode);
}
RAYC_REMOTE(crash)

/* flaky(counter_path, n): appends to counter_path; fails with rayc_fail until
 * attempt n, then returns the attempt count. */
static int flaky(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *path = nargs == 2 ? arg_str(&args[0]) : NULL;
    if (path == NULL || append_line(path, "attempt\n") != 0)
        return rayc_fail(ctx, "flaky wants a counter path and an int64");
    int64_t attempts = count_lines(path);
    if (attempts < arg_i64(&args[1]))
        return rayc_fail(ctx, "flaky attempt %lld", (long long)attempts);
    return rayc_return(ctx, 0, &attempts, sizeof(attempts));
}
RAYC_REMOTE(flaky)

/* nap(counter_path, ms): appends to counter_path (so a test knows it started
 * and how often), sleeps ms, returns ms. */
static int nap(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *path = nargs == 2 ? arg_str(&args[0]) : NULL;
    if (path == NULL || args[1].size != sizeof(int64_t))
        return rayc_fail(ctx, "nap wants a counter path and an int64");
    if (path[0] && append_line(path, "started\n") != 0)
        return rayc_fail(ctx, "nap: cannot write %s", path);
    int64_t ms = arg_i64(&args[1]);
    sleep_ms(ms);
    return rayc_return(ctx, 0, &ms, sizeof(ms));
}
RAYC_REMOTE(nap)

/* rendezvous(path, n, timeout_ms): appends a line to path, then waits until
 * path has n lines; returns n, or fails after timeout_ms. n of these finish
 * only when all n run at the same time: proof that n CPUs were free (a test
 * uses it to show that no retry holds a CPU, without sleeping). */
static int rendezvous(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    const char *path = nargs == 3 ? arg_str(&args[0]) : NULL;
    if (path == NULL || args[1].size != sizeof(int64_t) || args[2].size != sizeof(int64_t))
        return rayc_fail(ctx, "rendezvous wants a path and two int64");
    int64_t n = arg_i64(&args[1]), waited = 0, limit = arg_i64(&args[2]);
    if (append_line(path, "here\n") != 0)
        return rayc_fail(ctx, "rendezvous: cannot write %s", path);
    while (count_lines(path) < n) {
        if (waited >= limit)
            return rayc_fail(ctx, "rendezvous: %d of %lld arrived in %lld ms", count_lines(path),
                             (long long)n, (long long)limit);
        sleep_ms(10);
        waited += 10;
    }
    return rayc_return(ctx, 0, &n, sizeof(n));
}
RAYC_REMOTE(rendezvous)

/* ------------------------------------------------------------ nested */

/* fib(n): by tasks, fib(n-1) and fib(n-2) submitted from inside the task. */
static int fib(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1 || args[0].size != sizeof(int64_t))
        return rayc_fail(ctx, "fib wants one int64");
    int64_t n = arg_i64(&args[0]);
    if (n < 2)
        return rayc_return(ctx, 0, &n, sizeof(n));
    int64_t a = n - 1, b = n - 2;
    rayc_ref r[2];
    rayc_arg aa = RAYC_VAL(&a, sizeof(a)), ab = RAYC_VAL(&b, sizeof(b));
    if (rayc_submit("fib", &aa, 1, NULL, &r[0]) != 0)
        return rayc_fail(ctx, "submit fib(%lld): %s", (long long)a, rayc_last_error());
    if (rayc_submit("fib", &ab, 1, NULL, &r[1]) != 0) {
        rayc_ref_release(r[0]);
        return rayc_fail(ctx, "submit fib(%lld): %s", (long long)b, rayc_last_error());
    }
    rayc_value v[2];
    int rc = rayc_get(r, 2, v, -1);
    rayc_ref_release(r[0]);
    rayc_ref_release(r[1]);
    if (rc != 0)
        return rayc_fail(ctx, "get fib(%lld), fib(%lld): %s", (long long)a, (long long)b,
                         rayc_last_error());
    int64_t x = 0, y = 0;
    memcpy(&x, v[0].data, sizeof(x));
    memcpy(&y, v[1].data, sizeof(y));
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    int64_t sum = x + y;
    return rayc_return(ctx, 0, &sum, sizeof(sum));
}
RAYC_REMOTE(fib)

/* hog(mib): touch mib MiB, one MiB at a time with a pause, then sleep: a
 * task the memory monitor kills on a node near its threshold. */
static int hog(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1 || args[0].size != sizeof(int64_t))
        return rayc_fail(ctx, "hog wants one int64 (MiB)");
    int64_t mib = arg_i64(&args[0]);
    for (int64_t i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (p == NULL)
            return rayc_fail(ctx, "hog: malloc failed");
        memset(p, (int)i, 1 << 20); /* kept: the point is to hold it */
        usleep(2000);
    }
    sleep(30);
    return rayc_return(ctx, 0, &mib, sizeof(mib));
}
RAYC_REMOTE(hog)

/* forge_owner(object id, owner id): a hostile worker. Writes an ObjectOwner
 * frame (object -> owner) by hand on this worker's own connection to its
 * raylet, as if the object were a return it made. Returns 1 when the frame
 * went out. tests/integration/test_hostile.c checks the raylet refuses it. */
static int forge_owner(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    enum { ID = 28, HDR = 12, MSG_OBJECT_OWNER = 124 };
    if (nargs != 2 || args[0].size != ID || args[1].size != ID)
        return rayc_fail(ctx, "forge_owner wants two 28-byte ids");
    const char *path = getenv("RAYC_RAYLET_SOCKET");
    int fd = -1;
    for (int i = 0; path != NULL && i < 1024 && fd < 0; i++) {
        struct sockaddr_un a;
        socklen_t len = sizeof(a);
        if (getpeername(i, (struct sockaddr *)&a, &len) == 0 && a.sun_family == AF_UNIX &&
            strncmp(a.sun_path, path, sizeof(a.sun_path)) == 0)
            fd = i;
    }
    if (fd < 0)
        return rayc_fail(ctx, "forge_owner: no connection to %s here", path ? path : "?");
    uint8_t f[HDR + 2 * (2 + ID)];
    uint32_t magic = 0x52415943u, len = 2 * (2 + ID);
    uint8_t hdr[HDR] = {
        magic >> 24,      magic >> 16 & 0xff, magic >> 8 & 0xff, magic & 0xff,    0,         1, 0,
        MSG_OBJECT_OWNER, len >> 24,          len >> 16 & 0xff,  len >> 8 & 0xff, len & 0xff};
    memcpy(f, hdr, HDR);
    f[HDR] = 0x0a; /* field 1 (object_ids), bytes */
    f[HDR + 1] = ID;
    memcpy(f + HDR + 2, args[0].data, ID);
    f[HDR + 2 + ID] = 0x12; /* field 2 (owner_id), bytes */
    f[HDR + 3 + ID] = ID;
    memcpy(f + HDR + 4 + ID, args[1].data, ID);
    if (write(fd, f, sizeof(f)) != (ssize_t)sizeof(f))
        return rayc_fail(ctx, "forge_owner: write failed");
    int64_t one = 1;
    return rayc_return(ctx, 0, &one, sizeof(one));
}
RAYC_REMOTE(forge_owner)
