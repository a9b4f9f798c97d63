/*
 * test_gcs_storage.c -- one suite of storage behaviours, run against both
 * implementations: gcs_storage_memory and gcs_storage_redis (a real
 * redis-server on a Unix socket in a private temp dir, with a password and
 * AOF, stopped and removed by the fixture even when a test fails; it also
 * dies with the test process through PR_SET_PDEATHSIG).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../gcs/gcs_storage.h"
#include "log.h"
#include "net.h"
#include "rayc.h"
#include "util.h"

#define PASSWORD "test-password-123"
#define WAIT_MS  5000

/* ------------------------------------------------------------- fixtures */

/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(gcs_storage_memory, .timeout = 60);
TestSuite(gcs_storage_redis, .timeout = 60);

static struct event_base *base;
static gcs_storage *st;
static char dir[256];
static char sock[300];
static pid_t redis_pid = -1;

static pid_t start_redis(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
               "--unixsocketperm", "700", "--requirepass", PASSWORD, "--appendonly", "yes", "--dir",
               dir, "--save", "", (char *)NULL);
        _exit(127);
    }
    cr_assert(pid > 0, "fork failed");
    /* Ready when the socket accepts a connection (the file appears at bind,
     * before listen, so its existence is not enough). */
    for (int i = 0; i < WAIT_MS / 10; i++) {
        int fd = net_unix_connect(sock);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            cr_assert_fail("redis-server exited at start (status %d)", status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_fail("redis-server did not create %s", sock);
    return -1;
}

static void stop_redis(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
    unlink(sock);
}

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[600];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_dir(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static gcs_storage *open_redis(const char *password, char *err, size_t errlen)
{
    gcs_storage_redis_opts o = {.unix_path = sock, .password = password};
    return gcs_storage_redis_new(base, &o, err, errlen);
}

static void memory_setup(void)
{
    log_set_level(LOG_LEVEL_FATAL);
    base = event_base_new();
    st = gcs_storage_memory_new(base);
    cr_assert(st != NULL);
}

static void redis_setup(void)
{
    log_set_level(LOG_LEVEL_FATAL);
    snprintf(dir, sizeof(dir), "/tmp/rayc_test_storage_XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
    redis_pid = start_redis();
    base = event_base_new();
    char err[256];
    st = open_redis(PASSWORD, err, sizeof(err));
    cr_assert(st != NULL, "%s", err);
}

static void teardown(void)
{
    gcs_storage_free(st);
    st = NULL;
    if (base)
        event_base_free(base);
    base = NULL;
    stop_redis();
    if (dir[0])
        remove_dir(dir);
    dir[0] = '\0';
}

/* ------------------------------------------------------ driving the loop */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Run the loop until *done or WAIT_MS pass. */
static void run_until(bool *done)
{
    bool expired = false;
    struct event *t = evtimer_new(base, on_deadline, &expired);
    struct timeval tv = {WAIT_MS / 1000, 0};
    evtimer_add(t, &tv);
    while (!*done && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    cr_assert(*done, "timed out waiting for the storage");
}

typedef struct {
    bool done;
    int calls;
    int status;
    uint8_t val[1 << 21];
    size_t len;
    size_t n;
    int order; /* sequence number when it completed */
} result;

static int completed;

static void done_cb(void *arg, int status)
{
    result *r = arg;
    r->calls++;
    r->status = status;
    r->order = ++completed;
    r->done = true;
}

static void get_cb(void *arg, int status, const uint8_t *val, size_t len)
{
    result *r = arg;
    r->calls++;
    r->status = status;
    r->order = ++completed;
    r->done = true;
    if (status == RAYC_OK && len <= sizeof(r->val)) {
        memcpy(r->val, val, len);
        r->len = len;
    }
}

/* get_all: checks the entries against the expected set in the arg. */
typedef struct {
    result r;
    const char *keys[8];
    size_t klens[8];
    const char *vals[8];
    size_t found;
} all_result;

static void all_cb(void *arg, int status, const gcs_storage_entry *e, size_t n)
{
    all_result *a = arg;
    a->r.calls++;
    a->r.status = status;
    a->r.n = n;
    a->r.done = true;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < 8 && a->keys[k]; k++)
            if (e[i].key_len == a->klens[k] && memcmp(e[i].key, a->keys[k], a->klens[k]) == 0 &&
                e[i].val_len == strlen(a->vals[k]) &&
                memcmp(e[i].val, a->vals[k], e[i].val_len) == 0)
                a->found++;
}

static int put_sync(const char *table, const void *k, size_t kl, const void *v, size_t vl)
{
    static result r;
    memset(&r, 0, sizeof(r));
    gcs_storage_put(st, table, k, kl, v, vl, done_cb, &r);
    run_until(&r.done);
    return r.status;
}

static result *get_sync(const char *table, const void *k, size_t kl)
{
    static result r;
    memset(&r, 0, sizeof(r));
    gcs_storage_get(st, table, k, kl, get_cb, &r);
    run_until(&r.done);
    return &r;
}

static int del_sync(const char *table, const void *k, size_t kl)
{
    static result r;
    memset(&r, 0, sizeof(r));
    gcs_storage_del(st, table, k, kl, done_cb, &r);
    run_until(&r.done);
    return r.status;
}

/* ------------------------------------------------- the shared behaviours */

#define STORAGE_TEST(name)                                                                         \
    static void name##_body(void);                                                                 \
    Test(gcs_storage_memory, name, .init = memory_setup, .fini = teardown)                         \
    {                                                                                              \
        name##_body();                                                                             \
    }                                                                                              \
    Test(gcs_storage_redis, name, .init = redis_setup, .fini = teardown)                           \
    {                                                                                              \
        name##_body();                                                                             \
    }                                                                                              \
    static void name##_body(void)

STORAGE_TEST(put_then_get_returns_the_value)
{
    cr_assert_eq(put_sync("t", "k", 1, "hello", 5), RAYC_OK);
    result *r = get_sync("t", "k", 1);
    cr_assert_eq(r->status, RAYC_OK);
    cr_assert_eq(r->len, 5);
    cr_assert(memcmp(r->val, "hello", 5) == 0);
    cr_assert(gcs_storage_is_up(st));
}

STORAGE_TEST(get_of_absent_key_is_not_found)
{
    result *r = get_sync("t", "nope", 4);
    cr_assert_eq(r->status, RAYC_ENOTFOUND);
    cr_assert_eq(r->calls, 1);
}

STORAGE_TEST(put_overwrites)
{
    cr_assert_eq(put_sync("t", "k", 1, "one", 3), RAYC_OK);
    cr_assert_eq(put_sync("t", "k", 1, "three", 5), RAYC_OK);
    result *r = get_sync("t", "k", 1);
    cr_assert_eq(r->len, 5);
    cr_assert(memcmp(r->val, "three", 5) == 0);
}

STORAGE_TEST(del_removes_and_reports_absent_keys)
{
    cr_assert_eq(put_sync("t", "k", 1, "v", 1), RAYC_OK);
    cr_assert_eq(del_sync("t", "k", 1), RAYC_OK);
    cr_assert_eq(get_sync("t", "k", 1)->status, RAYC_ENOTFOUND);
    cr_assert_eq(del_sync("t", "k", 1), RAYC_ENOTFOUND);
}

STORAGE_TEST(keys_and_values_are_binary_safe)
{
    const uint8_t key[] = {'n', 's', 0, 'k', 0, 0xff};
    uint8_t val[300];
    for (size_t i = 0; i < sizeof(val); i++)
        val[i] = (uint8_t)i;
    cr_assert_eq(put_sync("t", key, sizeof(key), val, sizeof(val)), RAYC_OK);
    result *r = get_sync("t", key, sizeof(key));
    cr_assert_eq(r->status, RAYC_OK);
    cr_assert_eq(r->len, sizeof(val));
    cr_assert(memcmp(r->val, val, sizeof(val)) == 0);
    /* A key differing only after the NUL is another key. */
    const uint8_t other[] = {'n', 's', 0, 'k', 0, 0xfe};
    cr_assert_eq(get_sync("t", other, sizeof(other))->status, RAYC_ENOTFOUND);
}

STORAGE_TEST(empty_value_round_trips)
{
    cr_assert_eq(put_sync("t", "k", 1, "", 0), RAYC_OK);
    result *r = get_sync("t", "k", 1);
    cr_assert_eq(r->status, RAYC_OK);
    cr_assert_eq(r->len, 0);
}

STORAGE_TEST(large_value_round_trips)
{
    size_t n = 1 << 20;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7);
    cr_assert_eq(put_sync("t", "big", 3, big, n), RAYC_OK);
    result *r = get_sync("t", "big", 3);
    cr_assert_eq(r->len, n);
    cr_assert(memcmp(r->val, big, n) == 0);
    free(big);
}

STORAGE_TEST(get_all_returns_every_entry)
{
    cr_assert_eq(put_sync("t", "a", 1, "1", 1), RAYC_OK);
    cr_assert_eq(put_sync("t", "b\0x", 3, "2", 1), RAYC_OK);
    cr_assert_eq(put_sync("t", "c", 1, "3", 1), RAYC_OK);
    cr_assert_eq(put_sync("other", "d", 1, "4", 1), RAYC_OK);
    static all_result a;
    memset(&a, 0, sizeof(a));
    a.keys[0] = "a", a.klens[0] = 1, a.vals[0] = "1";
    a.keys[1] = "b\0x", a.klens[1] = 3, a.vals[1] = "2";
    a.keys[2] = "c", a.klens[2] = 1, a.vals[2] = "3";
    gcs_storage_get_all(st, "t", all_cb, &a);
    run_until(&a.r.done);
    cr_assert_eq(a.r.status, RAYC_OK);
    cr_assert_eq(a.r.n, 3);
    cr_assert_eq(a.found, 3);
}

STORAGE_TEST(get_all_of_an_empty_table_is_empty)
{
    static all_result a;
    memset(&a, 0, sizeof(a));
    gcs_storage_get_all(st, "empty", all_cb, &a);
    run_until(&a.r.done);
    cr_assert_eq(a.r.status, RAYC_OK);
    cr_assert_eq(a.r.n, 0);
}

STORAGE_TEST(tables_are_separate)
{
    cr_assert_eq(put_sync("t1", "k", 1, "one", 3), RAYC_OK);
    cr_assert_eq(get_sync("t2", "k", 1)->status, RAYC_ENOTFOUND);
}

STORAGE_TEST(callbacks_come_later_once_and_in_order)
{
    static result r1, r2, r3;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    memset(&r3, 0, sizeof(r3));
    completed = 0;
    gcs_storage_put(st, "t", "k", 1, "v", 1, done_cb, &r1);
    gcs_storage_get(st, "t", "k", 1, get_cb, &r2);
    gcs_storage_del(st, "t", "k", 1, done_cb, &r3);
    cr_assert_eq(r1.calls + r2.calls + r3.calls, 0, "a callback ran inside the call");
    run_until(&r3.done);
    run_until(&r2.done);
    run_until(&r1.done);
    cr_assert_eq(r1.calls, 1);
    cr_assert_eq(r2.calls, 1);
    cr_assert_eq(r3.calls, 1);
    cr_assert(r1.order < r2.order && r2.order < r3.order);
    cr_assert_eq(r2.status, RAYC_OK, "the get sees the put issued before it");
    cr_assert_eq(r3.status, RAYC_OK);
}

STORAGE_TEST(free_cancels_operations_in_flight)
{
    static result r1, r2;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    gcs_storage_put(st, "t", "k", 1, "v", 1, done_cb, &r1);
    gcs_storage_get(st, "t", "k", 1, get_cb, &r2);
    gcs_storage_free(st);
    st = NULL;
    cr_assert_eq(r1.calls, 1);
    cr_assert_eq(r2.calls, 1);
    cr_assert_eq(r1.status, RAYC_ECANCELLED);
    cr_assert_eq(r2.status, RAYC_ECANCELLED);
}

STORAGE_TEST(bad_table_name_fails_without_crashing)
{
    cr_assert_eq(put_sync("", "k", 1, "v", 1), RAYC_EINVAL);
}

/* ------------------------------------------------------- Redis specifics */

Test(gcs_storage_redis, data_is_a_hash_visible_to_a_new_connection, .init = redis_setup,
     .fini = teardown)
{
    cr_assert_eq(put_sync("nodes", "id1", 3, "info", 4), RAYC_OK);
    gcs_storage_free(st);
    char err[256];
    st = open_redis(PASSWORD, err, sizeof(err));
    cr_assert(st != NULL, "%s", err);
    result *r = get_sync("nodes", "id1", 3);
    cr_assert_eq(r->status, RAYC_OK);
    cr_assert(memcmp(r->val, "info", 4) == 0);
    /* The schema of docs/contracts.md: hash "rayc:nodes". */
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "redis-cli -s %s -a %s --no-auth-warning HGET rayc:nodes id1 | grep -qx info", sock,
             PASSWORD);
    cr_assert_eq(system(cmd), 0, "rayc:nodes id1 not found with redis-cli");
}

Test(gcs_storage_redis, missing_socket_fails_at_once, .init = redis_setup, .fini = teardown)
{
    char err[256] = "";
    gcs_storage_redis_opts o = {.unix_path = "/nonexistent/redis.sock", .password = PASSWORD};
    gcs_storage *s = gcs_storage_redis_new(base, &o, err, sizeof(err));
    cr_assert_null(s);
    cr_assert(strstr(err, "/nonexistent/redis.sock") != NULL, "error: %s", err);
}

Test(gcs_storage_redis, wrong_password_fails_operations_not_the_process, .init = redis_setup,
     .fini = teardown)
{
    gcs_storage_free(st);
    char err[256];
    st = open_redis("wrong", err, sizeof(err));
    cr_assert(st != NULL, "%s", err);
    cr_assert_eq(put_sync("t", "k", 1, "v", 1), RAYC_EIO);
    cr_assert_not(gcs_storage_is_up(st));
    cr_assert(strlen(gcs_storage_errstr(st)) > 0);
}

/* The connection dies under the storage: operations fail with ECONN, then
 * the back-off reconnect finds the restarted server (and its AOF data). */
Test(gcs_storage_redis, reconnects_after_redis_restarts, .init = redis_setup, .fini = teardown)
{
    cr_assert_eq(put_sync("t", "k", 1, "kept", 4), RAYC_OK);
    stop_redis();
    /* Let the storage notice the loss. */
    bool never = false;
    for (int i = 0; i < 20 && gcs_storage_is_up(st); i++) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    (void)never;
    cr_assert_not(gcs_storage_is_up(st));
    int rc = put_sync("t", "k2", 2, "v", 1);
    cr_assert(rc == RAYC_ECONN, "got %d", rc);

    redis_pid = start_redis();
    uint64_t deadline = now_ms() + WAIT_MS;
    while (!gcs_storage_is_up(st) && now_ms() < deadline) {
        struct timeval tv = {0, 20000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    cr_assert(gcs_storage_is_up(st), "did not reconnect: %s", gcs_storage_errstr(st));
    result *r = get_sync("t", "k", 1);
    cr_assert_eq(r->status, RAYC_OK, "AOF data lost");
    cr_assert(memcmp(r->val, "kept", 4) == 0);
}
