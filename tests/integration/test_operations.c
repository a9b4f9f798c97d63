/*
 * test_operations.c -- issue 14's acceptance tests: a head that heals itself
 * (its supervisor restarts a killed GCS or Redis), sessions that stay apart
 * (stop/status --temp-dir), a head that can be found from its own machine, a
 * head that starts whatever token the environment holds, `make install
 * PREFIX=DIR` that builds and runs a driver, and a head on a Redis started
 * separately with a password.
 *
 * Everything runs through the real `rayc` CLI (scripts/rayc) and real
 * daemons in the harness's private temp dir. Heal times are measured and
 * logged (criterion info lines, "heal:"), and only checked against a
 * generous deadline: this is not a speed test.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

#define SLACK_MS 20000 /* generous: a busy 2-vCPU machine; never a speed test */

TestSuite(ops, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

/* ------------------------------------------------------------ helpers */

static void fmt(char *out, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *out, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, len, f, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < len, "string too long");
}

/* Run argv under /usr/bin/env with `env` (NULL-terminated "-u NAME" pairs
 * or "NAME=VALUE" words) on top of the test's environment, which never
 * holds RAYC_TEMP_DIR / RAYC_BIN_DIR / tokens unless given here. */
static int run_env(char **out, char **err, const char *const env[], const char *const argv[])
{
    char *full[HARNESS_MAX_ARGS + 1];
    int n = 0;
    full[n++] = "/usr/bin/env";
    for (int i = 0; env && env[i]; i++)
        full[n++] = (char *)env[i];
    for (int i = 0; argv[i]; i++) {
        cr_assert(n < HARNESS_MAX_ARGS, "too many arguments");
        full[n++] = (char *)argv[i];
    }
    full[n] = NULL;
    return harness_run(full, out, err, 180000);
}

/* `rayc ARGS` with RAYC_BIN_DIR=<build>/bin, RAYC_TEMP_DIR=<dir>/rayc (the
 * default temp dir of these tests) and the extra environment `env`. */
static int rayc_env(char **out, char **err, const char *const env[], const char *const args[])
{
    char bin[HARNESS_PATH + 32], temp[HARNESS_PATH + 32];
    fmt(bin, sizeof(bin), "RAYC_BIN_DIR=%s/bin", harness_build());
    fmt(temp, sizeof(temp), "RAYC_TEMP_DIR=%s/rayc", harness_dir());
    const char *e[24];
    int n = 0;
    e[n++] = "-u";
    e[n++] = "RAYC_TOKEN";
    e[n++] = "-u";
    e[n++] = "RAYC_TOKEN_FILE";
    e[n++] = "-u";
    e[n++] = "RAYC_ADDRESS";
    e[n++] = bin;
    e[n++] = temp;
    for (int i = 0; env && env[i]; i++) {
        cr_assert(n < 23);
        e[n++] = env[i];
    }
    e[n] = NULL;
    const char *argv[HARNESS_MAX_ARGS];
    int m = 0;
    argv[m++] = harness_rayc_script();
    for (int i = 0; args[i]; i++)
        argv[m++] = args[i];
    argv[m] = NULL;
    return run_env(out, err, e, argv);
}

/* A directory under the test dir. */
static const char *subdir(char *out, size_t len, const char *name)
{
    fmt(out, len, "%s/%s", harness_dir(), name);
    return out;
}

/* A head with 1 CPU and a small store; temp_dir NULL: the default. Returns
 * its port; the banner goes to *banner (caller frees) when non-NULL. */
static int start_head(const char *temp_dir, const char *const env[], char **banner)
{
    char port[32], dir[HARNESS_PATH + 16];
    int p = harness_free_port();
    fmt(port, sizeof(port), "--port=%d", p);
    const char *args[8] = {"start", "--head", port, "--num-cpus=1", "--object-store-memory=64M"};
    int n = 5;
    if (temp_dir) {
        fmt(dir, sizeof(dir), "--temp-dir=%s", temp_dir);
        args[n++] = dir;
    }
    args[n] = NULL;
    char *out, *err;
    int rc = rayc_env(&out, &err, env, args);
    cr_assert_eq(rc, 0, "rayc start --head: %s\n%s", err, out);
    if (banner)
        *banner = out;
    else
        free(out);
    free(err);
    return p;
}

/* The session dir that <temp>/session_latest points at. */
static void session_of(const char *temp, char *out, size_t len)
{
    char link[HARNESS_PATH + 32];
    fmt(link, sizeof(link), "%s/session_latest", temp);
    char *real = realpath(link, NULL);
    cr_assert_not_null(real, "no %s", link);
    fmt(out, len, "%s", real);
    free(real);
}

static pid_t read_pid(const char *session, const char *name)
{
    char path[HARNESS_PATH + 32];
    fmt(path, sizeof(path), "%s/%s.pid", session, name);
    char *s = read_file(path, NULL);
    pid_t pid = s ? (pid_t)atoi(s) : 0;
    free(s);
    return pid;
}

static bool pid_alive(pid_t pid)
{
    char path[64];
    fmt(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *st = read_file(path, NULL);
    char *rp = st ? strrchr(st, ')') : NULL;
    bool alive = rp && rp[1] == ' ' && rp[2] != 'Z';
    free(st);
    return alive;
}

/* rayc_ctl CMD --address=127.0.0.1:port --token-file=<session>/token EXTRA... */
static int ctl(char **out, char **err, int port, const char *session, const char *cmd,
               const char *extra1, const char *extra2)
{
    char addr[64], tok[HARNESS_PATH + 32];
    fmt(addr, sizeof(addr), "--address=127.0.0.1:%d", port);
    fmt(tok, sizeof(tok), "--token-file=%s/token", session);
    const char *args[] = {cmd, addr, tok, "--timeout-ms=1000", extra1, extra2, NULL};
    return harness_ctl(out, err, args);
}

static int count_word(const char *s, const char *w)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, w)) != NULL; p += strlen(w))
        n++;
    return n;
}

struct gcs_arg {
    int port;
    const char *session;
};

static bool gcs_serves(void *arg)
{
    struct gcs_arg *a = arg;
    char *out, *err;
    int rc = ctl(&out, &err, a->port, a->session, "ping", NULL, NULL);
    free(out);
    free(err);
    return rc == 0;
}

struct alive_arg {
    int port;
    const char *session;
    int want;
};

static bool nodes_alive(void *arg)
{
    struct alive_arg *a = arg;
    char *out, *err;
    int rc = ctl(&out, &err, a->port, a->session, "nodes", "--format=tsv", NULL);
    bool ok = rc == 0 && count_word(out, "\tALIVE\t") == a->want && !strstr(out, "\tDEAD\t");
    free(out);
    free(err);
    return ok;
}

static void wait_alive(int port, const char *session, int n)
{
    struct alive_arg a = {port, session, n};
    cr_assert(harness_wait_until(nodes_alive, &a, SLACK_MS), "want %d ALIVE nodes and no DEAD", n);
}

/* The hello example (c(a(), b()) = 42) as a separate driver process, with
 * env on top of a clean environment. */
static void run_hello(const char *const env[])
{
    char hello[HARNESS_PATH];
    fmt(hello, sizeof(hello), "%s/examples/hello", harness_build());
    const char *argv[] = {hello, NULL};
    const char *e[16] = {"-u", "RAYC_TOKEN", "-u", "RAYC_TOKEN_FILE", "-u", "RAYC_ADDRESS"};
    int n = 6;
    for (int i = 0; env[i]; i++)
        e[n++] = env[i];
    e[n] = NULL;
    char *out, *err;
    int rc = run_env(&out, &err, e, argv);
    cr_assert_eq(rc, 0, "driver failed (%d): %s", rc, err);
    cr_assert(strstr(out, "= 42") != NULL, "driver said: %s", out);
    free(out);
    free(err);
}

static void hello_in(const char *temp)
{
    char t[HARNESS_PATH + 32];
    fmt(t, sizeof(t), "RAYC_TEMP_DIR=%s", temp);
    const char *env[] = {t, NULL};
    run_hello(env);
}

static char *slurp_file(const char *dir, const char *name)
{
    char path[HARNESS_PATH + 64];
    fmt(path, sizeof(path), "%s/%s", dir, name);
    char *s = read_file(path, NULL);
    return s ? s : strdup("");
}

static void stop_all(const char *temp)
{
    char dir[HARNESS_PATH + 32];
    fmt(dir, sizeof(dir), "--temp-dir=%s", temp);
    const char *stop[] = {"stop", dir, NULL};
    char *out, *err;
    cr_assert_eq(rayc_env(&out, &err, NULL, stop), 0, "rayc stop: %s", err);
    free(out);
    free(err);
}

static bool nothing_left(void *arg)
{
    (void)arg;
    return harness_survivors(NULL, 0) == 0;
}

static void assert_nothing_left(void)
{
    char who[2048];
    cr_assert(harness_wait_until(nothing_left, NULL, 10000), "left running: %s",
              (harness_survivors(who, sizeof(who)), who));
}

/* kill -9 the session's `name` and measure until the GCS serves again. */
static uint64_t kill9_and_time_heal(int port, const char *session, const char *name)
{
    pid_t victim = read_pid(session, name);
    cr_assert(victim > 0 && pid_alive(victim), "no live %s", name);
    uint64_t t0 = now_ms();
    cr_assert_eq(kill(victim, SIGKILL), 0);
    struct gcs_arg g = {port, session};
    if (strcmp(name, "gcs_server") == 0) {
        while (pid_alive(victim))
            usleep(1000);
    }
    cr_assert(harness_wait_until(gcs_serves, &g, SLACK_MS),
              "the GCS does not serve after %s's kill -9", name);
    uint64_t healed = now_ms() - t0;
    cr_log_info("heal: %s kill -9 -> GCS serving in %llu ms", name, (unsigned long long)healed);
    fprintf(stderr, "heal: %s kill -9 -> GCS serving in %llu ms\n", name,
            (unsigned long long)healed);
    return healed;
}

struct rereg_arg {
    harness_cluster c; /* port and token only */
    uint64_t after;    /* wall ms */
    int want;
};

/* want nodes, all ALIVE, each with a heartbeat newer than `after`: the
 * raylets re-registered with the new GCS. */
static bool reregistered(void *arg)
{
    struct rereg_arg *a = arg;
    Rpc__ListNodesReply *r = harness_list_nodes(&a->c);
    if (r == NULL)
        return false;
    bool ok = (int)r->n_nodes == a->want;
    for (size_t i = 0; ok && i < r->n_nodes; i++)
        ok = r->nodes[i]->state == RPC__NODE_STATE__NODE_ALIVE &&
             r->nodes[i]->last_heartbeat_ms > a->after;
    msg_free(&r->base);
    return ok;
}

/* Wait until the raylets have re-registered since `after`; log how long. */
static void wait_reregistered(int port, const char *session, int want, uint64_t after)
{
    struct rereg_arg a = {.after = after, .want = want};
    a.c.port = port;
    char *tok = slurp_file(session, "token");
    fmt(a.c.token, sizeof(a.c.token), "%s", rstrip(tok));
    free(tok);
    cr_assert(harness_wait_until(reregistered, &a, SLACK_MS),
              "the raylets did not re-register with the restarted GCS");
    fprintf(stderr, "heal: raylets re-registered %llu ms after the kill\n",
            (unsigned long long)(wall_ms() - after));
}

/* ------------------------------------------------------------ item 1 */

Test(ops, gcs_kill9_is_healed)
{
    char temp[HARNESS_PATH], node2[HARNESS_PATH], session[HARNESS_PATH];
    subdir(temp, sizeof(temp), "rayc");
    subdir(node2, sizeof(node2), "node2");
    int port = start_head(NULL, NULL, NULL);
    session_of(temp, session, sizeof(session));

    char addr[64], dir2[HARNESS_PATH + 32];
    fmt(addr, sizeof(addr), "--address=127.0.0.1:%d", port);
    fmt(dir2, sizeof(dir2), "--temp-dir=%s", node2);
    const char *join[] = {"start", addr, dir2, "--num-cpus=1", "--object-store-memory=64M", NULL};
    char *out, *err;
    cr_assert_eq(rayc_env(&out, &err, NULL, join), 0, "join: %s", err);
    free(out);
    free(err);
    wait_alive(port, session, 2);
    hello_in(temp);

    pid_t old = read_pid(session, "gcs_server");
    for (int round = 1; round <= 2; round++) {
        uint64_t killed = wall_ms();
        kill9_and_time_heal(port, session, "gcs_server");
        wait_reregistered(port, session, 2, killed);
        pid_t now = read_pid(session, "gcs_server");
        cr_assert(now != old && pid_alive(now), "gcs_server.pid not updated (%d)", (int)now);
        old = now;
        wait_alive(port, session, 2);
        hello_in(temp);
    }

    const char *status[] = {"status", NULL};
    cr_assert_eq(rayc_env(&out, &err, NULL, status), 0, "status: %s", err);
    cr_assert(strstr(out, "restarted 2 times") != NULL, "status:\n%s", out);
    cr_assert(strstr(out, " up ") != NULL, "no uptime:\n%s", out);
    cr_assert(strstr(out, "2 alive nodes, 0 dead") != NULL, "status:\n%s", out);
    free(out);
    free(err);
    char *log = slurp_file(session, "logs/supervisor.out");
    cr_assert_eq(count_word(log, "gcs_server restarted as pid"), 2, "supervisor log:\n%s", log);
    free(log);

    stop_all(temp);
    stop_all(node2);
    assert_nothing_left();
}

/* A driver that runs through the kill: its tasks before, during and after
 * the GCS's death all return. */
Test(ops, running_driver_rides_out_gcs_kill9)
{
    char temp[HARNESS_PATH], session[HARNESS_PATH], lib[HARNESS_PATH], addr[64];
    subdir(temp, sizeof(temp), "rayc");
    int port = start_head(NULL, NULL, NULL);
    session_of(temp, session, sizeof(session));
    fmt(lib, sizeof(lib), "%s/examples/libtestlib_tasks.so", harness_build());
    fmt(addr, sizeof(addr), "127.0.0.1:%d", port);
    char tokfile[HARNESS_PATH + 16];
    fmt(tokfile, sizeof(tokfile), "%s/token", session);
    setenv("RAYC_TOKEN_FILE", tokfile, 1);
    setenv("RAYC_TEMP_DIR", temp, 1);
    const char *code[] = {lib, NULL};
    rayc_init_opts o = {.address = addr, .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s", rayc_last_error());

    int64_t v = 0;
    for (int i = 0; i < 60; i++) {
        if (i == 20)
            kill9_and_time_heal(port, session, "gcs_server");
        rayc_arg arg = RAYC_VAL(&v, sizeof(v));
        rayc_ref r;
        rc = rayc_submit("inc", &arg, 1, NULL, &r);
        cr_assert_eq(rc, RAYC_OK, "submit %d: %s", i, rayc_last_error());
        rayc_value val;
        rc = rayc_get(&r, 1, &val, 60000);
        cr_assert_eq(rc, RAYC_OK, "get %d: %s: %s", i, rayc_strerror(rc), rayc_last_error());
        memcpy(&v, val.data, sizeof(v));
        rayc_value_release(&val);
        rayc_ref_release(r);
    }
    cr_assert_eq(v, 60);
    rayc_shutdown();
    unsetenv("RAYC_TOKEN_FILE");
    unsetenv("RAYC_TEMP_DIR");
    stop_all(temp);
    assert_nothing_left();
}

Test(ops, redis_kill9_is_healed)
{
    char temp[HARNESS_PATH], session[HARNESS_PATH];
    subdir(temp, sizeof(temp), "rayc");
    int port = start_head(NULL, NULL, NULL);
    session_of(temp, session, sizeof(session));
    wait_alive(port, session, 1);
    char *out, *err;
    cr_assert_eq(ctl(&out, &err, port, session, "kv-put", "--ns=ops", "--key=k1"), 2);
    free(out);
    free(err);
    {
        char addr[64], tok[HARNESS_PATH + 32];
        fmt(addr, sizeof(addr), "--address=127.0.0.1:%d", port);
        fmt(tok, sizeof(tok), "--token-file=%s/token", session);
        const char *put[] = {"kv-put", addr, tok, "--ns=ops", "--key=k1", "--value=before", NULL};
        cr_assert_eq(harness_ctl(&out, &err, put), 0, "kv-put: %s", err);
        free(out);
        free(err);
    }

    /* Measured: kill -9 -> a GCS write that reaches the new Redis. */
    char addr[64], tok[HARNESS_PATH + 32];
    fmt(addr, sizeof(addr), "--address=127.0.0.1:%d", port);
    fmt(tok, sizeof(tok), "--token-file=%s/token", session);
    /* No --overwrite: a put whose write failed while Redis was down must not
     * leave its key in the GCS's memory, or this retry would find it
     * "already there" and never write it (seen before the fix). */
    const char *put[] = {"kv-put", addr, tok, "--ns=ops", "--key=k2", "--value=after", NULL};
    pid_t old = read_pid(session, "redis");
    uint64_t t0 = now_ms();
    cr_assert_eq(kill(old, SIGKILL), 0);
    uint64_t deadline = t0 + SLACK_MS;
    while (harness_ctl(&out, &err, put) != 0) {
        cr_assert(now_ms() < deadline, "kv-put after the Redis restart: %s", err);
        free(out);
        free(err);
        usleep(20000);
    }
    free(out);
    free(err);
    fprintf(stderr, "heal: redis kill -9 -> GCS writes again in %llu ms\n",
            (unsigned long long)(now_ms() - t0));
    pid_t now = read_pid(session, "redis");
    cr_assert(now != old && pid_alive(now), "redis.pid not updated (%d)", (int)now);
    const char *get[] = {"kv-get", addr, tok, "--ns=ops", "--key=k1", NULL};
    cr_assert_eq(harness_ctl(&out, &err, get), 0, "kv-get: %s", err);
    cr_assert_str_eq(out, "before");
    free(out);
    free(err);
    /* k2 is in Redis, not only in the GCS's memory: it survives a GCS restart. */
    pid_t gcs = read_pid(session, "gcs_server");
    cr_assert_eq(kill(gcs, SIGKILL), 0);
    const char *get2[] = {"kv-get", addr, tok, "--ns=ops", "--key=k2", NULL};
    deadline = now_ms() + SLACK_MS;
    while (harness_ctl(&out, &err, get2) != 0) {
        cr_assert(now_ms() < deadline, "kv-get k2 after a GCS restart: %s", err);
        free(out);
        free(err);
        usleep(20000);
    }
    cr_assert_str_eq(out, "after");
    free(out);
    free(err);
    wait_alive(port, session, 1);
    hello_in(temp);
    const char *status[] = {"status", NULL};
    cr_assert_eq(rayc_env(&out, &err, NULL, status), 0, "status: %s", err);
    cr_assert(strstr(out, "Redis restarted 1 time") != NULL, "status:\n%s", out);
    free(out);
    free(err);
    stop_all(temp);
    assert_nothing_left();
}

/* --block keeps the node up through a GCS death (the supervisor heals it)
 * and stops it all on SIGTERM. */
Test(ops, block_survives_gcs_kill9)
{
    char temp[HARNESS_PATH], session[HARNESS_PATH], port[32], bin[HARNESS_PATH + 32],
        tmp[HARNESS_PATH + 32];
    subdir(temp, sizeof(temp), "rayc");
    int p = harness_free_port();
    fmt(port, sizeof(port), "--port=%d", p);
    fmt(bin, sizeof(bin), "RAYC_BIN_DIR=%s/bin", harness_build());
    fmt(tmp, sizeof(tmp), "RAYC_TEMP_DIR=%s", temp);
    char *const argv[] = {"/usr/bin/env",
                          "-u",
                          "RAYC_TOKEN",
                          bin,
                          tmp,
                          (char *)harness_rayc_script(),
                          "start",
                          "--head",
                          port,
                          "--num-cpus=1",
                          "--object-store-memory=64M",
                          "--block",
                          NULL};
    harness_proc *blk = harness_spawn("block", NULL, argv);
    struct gcs_arg g = {p, session};
    uint64_t deadline = now_ms() + 60000;
    char link[HARNESS_PATH + 32];
    fmt(link, sizeof(link), "%s/session_latest/supervisor.pid", temp);
    while (access(link, R_OK) != 0) {
        cr_assert(harness_alive(blk) && now_ms() < deadline, "rayc start --block did not come up");
        usleep(50000);
    }
    session_of(temp, session, sizeof(session));
    cr_assert(harness_wait_until(gcs_serves, &g, SLACK_MS));
    kill9_and_time_heal(p, session, "gcs_server");
    wait_alive(p, session, 1);
    cr_assert(harness_alive(blk), "--block stopped the node when the GCS died");

    /* SIGTERM once it is blocking (its trap is set). */
    deadline = now_ms() + SLACK_MS;
    for (;;) {
        char *text = read_file(blk->out, NULL);
        bool blocking = text && strstr(text, "running in the foreground") != NULL;
        free(text);
        if (blocking)
            break;
        cr_assert(now_ms() < deadline, "rayc start --block never said it blocks");
        usleep(20000);
    }
    kill(blk->pid, SIGTERM);
    int rc = harness_wait_exit(blk, 60000);
    cr_assert_eq(rc, 0, "rayc start --block after SIGTERM: exit %d", rc);
    assert_nothing_left();
}

/* ------------------------------------------------------------ item 2 */

Test(ops, stop_and_status_keep_sessions_apart)
{
    char a[HARNESS_PATH], b[HARNESS_PATH], sa[HARNESS_PATH], sb[HARNESS_PATH];
    subdir(a, sizeof(a), "cluster-a");
    subdir(b, sizeof(b), "cluster-b");
    int pa = start_head(a, NULL, NULL);
    int pb = start_head(b, NULL, NULL);
    session_of(a, sa, sizeof(sa));
    session_of(b, sb, sizeof(sb));
    /* A second node of cluster b, in a temp dir of its own. */
    char bn[HARNESS_PATH], sbn[HARNESS_PATH], bnflag[HARNESS_PATH + 32], baddr[64];
    subdir(bn, sizeof(bn), "cluster-b-node");
    fmt(bnflag, sizeof(bnflag), "--temp-dir=%s", bn);
    fmt(baddr, sizeof(baddr), "--address=127.0.0.1:%d", pb);
    char btok[HARNESS_PATH + 32];
    fmt(btok, sizeof(btok), "--token-file=%s/token", sb);
    const char *join[] = {"start", baddr, btok, bnflag, "--num-cpus=1", "--object-store-memory=64M",
                          NULL};
    {
        char *o, *e;
        cr_assert_eq(rayc_env(&o, &e, NULL, join), 0, "join b: %s", e);
        free(o);
        free(e);
    }
    session_of(bn, sbn, sizeof(sbn));

    /* status --temp-dir picks that session, over a wrong environment. */
    char da[HARNESS_PATH + 32], db[HARNESS_PATH + 32], wrong_addr[64], wrong_tok[128];
    fmt(da, sizeof(da), "--temp-dir=%s", a);
    fmt(db, sizeof(db), "--temp-dir=%s", b);
    fmt(wrong_addr, sizeof(wrong_addr), "RAYC_ADDRESS=127.0.0.1:%d", pb);
    char t[AUTH_TOKEN_LEN + 1];
    auth_token_generate(t);
    fmt(wrong_tok, sizeof(wrong_tok), "RAYC_TOKEN=%s", t);
    const char *env[] = {wrong_addr, wrong_tok, NULL};
    const char *status_a[] = {"status", da, NULL};
    char *out, *err, want[64];
    cr_assert_eq(rayc_env(&out, &err, env, status_a), 0, "status --temp-dir=a: %s", err);
    fmt(want, sizeof(want), "GCS 127.0.0.1:%d", pa);
    cr_assert(strstr(out, want) != NULL, "status --temp-dir=a shows another cluster:\n%s", out);
    free(out);
    free(err);

    /* The default temp dir holds nothing: stop there touches neither. */
    const char *stop[] = {"stop", NULL};
    cr_assert_eq(rayc_env(&out, &err, NULL, stop), 0, "stop: %s", err);
    free(out);
    free(err);
    cr_assert(pid_alive(read_pid(sa, "gcs_server")), "rayc stop stopped cluster a");
    cr_assert(pid_alive(read_pid(sb, "gcs_server")), "rayc stop stopped cluster b");

    /* stop --temp-dir=a stops a, and only a. */
    pid_t a_gcs = read_pid(sa, "gcs_server"), a_raylet = read_pid(sa, "raylet");
    const char *stop_a[] = {"stop", da, NULL};
    cr_assert_eq(rayc_env(&out, &err, NULL, stop_a), 0, "stop --temp-dir=a: %s", err);
    free(out);
    free(err);
    cr_assert(!pid_alive(a_gcs) && !pid_alive(a_raylet), "cluster a still runs");
    struct gcs_arg gb = {pb, sb};
    cr_assert(gcs_serves(&gb), "stop --temp-dir=a stopped cluster b");
    cr_assert(pid_alive(read_pid(sbn, "raylet")), "stop --temp-dir=a stopped b's second node");
    wait_alive(pb, sb, 2);
    const char *status_b[] = {"status", db, NULL};
    cr_assert_eq(rayc_env(&out, &err, NULL, status_b), 0, "status --temp-dir=b: %s", err);
    cr_assert(strstr(out, "2 alive nodes, 0 dead") != NULL, "%s", out);
    free(out);
    free(err);

    /* Stopping head b takes its node on this machine along. */
    const char *stop_b[] = {"stop", db, NULL};
    cr_assert_eq(rayc_env(&out, &err, NULL, stop_b), 0, "stop --temp-dir=b: %s", err);
    free(out);
    free(err);
    assert_nothing_left();
}

/* ------------------------------------------------------------ item 3 */

/* The value after `key` on the banner's line, up to a space or newline. */
static void banner_value(const char *banner, const char *key, char *out, size_t len)
{
    const char *p = strstr(banner, key);
    cr_assert_not_null(p, "no '%s' in the banner:\n%s", key, banner);
    p += strlen(key);
    size_t n = strcspn(p, " \n");
    cr_assert(n < len);
    memcpy(out, p, n);
    out[n] = '\0';
}

Test(ops, temp_dir_head_is_found_from_its_machine)
{
    char a[HARNESS_PATH], *banner;
    subdir(a, sizeof(a), "elsewhere");
    int port = start_head(a, NULL, &banner);

    /* The banner's lines, used as printed. */
    char addr[64], tokfile[HARNESS_PATH], want[64];
    banner_value(banner, "export RAYC_ADDRESS=", addr, sizeof(addr));
    banner_value(banner, " RAYC_TOKEN_FILE=", tokfile, sizeof(tokfile));
    fmt(want, sizeof(want), "127.0.0.1:%d", port);
    cr_assert_str_eq(addr, want);
    char joinf[HARNESS_PATH + 64];
    fmt(joinf, sizeof(joinf), "rayc start --address=%s --token-file=%s", want, tokfile);
    cr_assert(strstr(banner, joinf) != NULL, "no join command with a token file:\n%s", banner);
    char status_line[HARNESS_PATH + 64];
    fmt(status_line, sizeof(status_line), "rayc status --temp-dir=%s", a);
    cr_assert(strstr(banner, status_line) != NULL, "banner:\n%s", banner);
    free(banner);

    char ea[96], et[HARNESS_PATH + 32];
    fmt(ea, sizeof(ea), "RAYC_ADDRESS=%s", addr);
    fmt(et, sizeof(et), "RAYC_TOKEN_FILE=%s", tokfile);
    const char *env[] = {ea, et, NULL};
    const char *status[] = {"status", NULL};
    char *out, *err;
    cr_assert_eq(rayc_env(&out, &err, env, status), 0, "status with the banner's exports: %s", err);
    free(out);
    free(err);
    run_hello(env);
    hello_in(a);

    /* Without them, the reasons name the way to find it. */
    cr_assert_neq(rayc_env(&out, &err, NULL, status), 0);
    char hint[HARNESS_PATH + 32];
    fmt(hint, sizeof(hint), "--temp-dir=%s", a);
    cr_assert(strstr(err, hint) != NULL, "rayc status: %s", err);
    free(out);
    free(err);
    char addrflag[96];
    fmt(addrflag, sizeof(addrflag), "--address=%s", addr);
    const char *status_addr[] = {"status", addrflag, NULL};
    cr_assert_neq(rayc_env(&out, &err, NULL, status_addr), 0);
    cr_assert(strstr(err, hint) != NULL, "rayc status --address: %s", err);
    free(out);
    free(err);
    stop_all(a);
    assert_nothing_left();
}

/* ------------------------------------------------------------ item 4 */

static void token_is(const char *temp, const char *want)
{
    char session[HARNESS_PATH];
    session_of(temp, session, sizeof(session));
    char *tok = slurp_file(session, "token");
    rstrip(tok);
    cr_assert_str_eq(tok, want, "the head did not adopt the environment's token");
    free(tok);
}

Test(ops, head_starts_whatever_token_the_environment_holds)
{
    char a[HARNESS_PATH], b[HARNESS_PATH], c[HARNESS_PATH];
    subdir(a, sizeof(a), "tok-env");
    subdir(b, sizeof(b), "tok-file");
    subdir(c, sizeof(c), "tok-missing");
    char t1[AUTH_TOKEN_LEN + 1], t2[AUTH_TOKEN_LEN + 1];
    auth_token_generate(t1);
    auth_token_generate(t2);

    /* RAYC_TOKEN: adopted; the same shell's status and drivers work. */
    char e1[128];
    fmt(e1, sizeof(e1), "RAYC_TOKEN=%s", t1);
    const char *env1[] = {e1, "RAYC_START_TIMEOUT=20", NULL};
    int p1 = start_head(a, env1, NULL);
    token_is(a, t1);
    char ea[64];
    fmt(ea, sizeof(ea), "RAYC_ADDRESS=127.0.0.1:%d", p1);
    const char *env1s[] = {e1, ea, NULL};
    const char *status[] = {"status", NULL};
    char *out, *err;
    cr_assert_eq(rayc_env(&out, &err, env1s, status), 0, "status: %s", err);
    free(out);
    free(err);
    run_hello(env1s);

    /* RAYC_TOKEN_FILE: its token is adopted. */
    char file[HARNESS_PATH + 16], e2[HARNESS_PATH + 32];
    fmt(file, sizeof(file), "%s/old-token", harness_dir());
    cr_assert_eq(write_file(file, t2, strlen(t2), 0600), 0);
    fmt(e2, sizeof(e2), "RAYC_TOKEN_FILE=%s", file);
    const char *env2[] = {e2, "RAYC_START_TIMEOUT=20", NULL};
    start_head(b, env2, NULL);
    token_is(b, t2);

    /* A RAYC_TOKEN_FILE that does not exist: a fresh token, a warning. */
    char e3[HARNESS_PATH + 32];
    fmt(e3, sizeof(e3), "RAYC_TOKEN_FILE=%s/no-such-token", harness_dir());
    const char *env3[] = {e3, "RAYC_START_TIMEOUT=20", NULL};
    start_head(c, env3, NULL);
    char session[HARNESS_PATH];
    session_of(c, session, sizeof(session));
    char *tok = slurp_file(session, "token");
    cr_assert_eq(strlen(rstrip(tok)), AUTH_TOKEN_LEN);
    free(tok);

    stop_all(a);
    stop_all(b);
    stop_all(c);
    assert_nothing_left();
}

/* ------------------------------------------------------------ item 5 */

static void run_ok(const char *what, const char *const env[], const char *const argv[], char **out)
{
    char *o, *e;
    int rc = run_env(&o, &e, env, argv);
    cr_assert_eq(rc, 0, "%s failed (%d): %s\n%s", what, rc, e, o);
    if (out)
        *out = o;
    else
        free(o);
    free(e);
}

Test(ops, make_install_prefix_builds_and_runs_a_driver, .timeout = 600)
{
    /* A driver built with plain cc cannot load an ASan-built librayc. */
    if (getenv("RAYC_TEST_SANITIZER"))
        cr_skip_test("builds a plain driver against the installed librayc: not under sanitizers");
    char src[HARNESS_PATH], prefix[HARNESS_PATH], build[HARNESS_PATH];
    fmt(src, sizeof(src), "%s", harness_rayc_script());
    *strrchr(src, '/') = '\0';
    *strrchr(src, '/') = '\0'; /* <repo>/scripts/rayc -> <repo> */
    char *real = realpath(harness_build(), NULL);
    cr_assert_not_null(real);
    fmt(build, sizeof(build), "%s", real);
    free(real);
    subdir(prefix, sizeof(prefix), "prefix");

    char pfx[HARNESS_PATH + 16], bld[HARNESS_PATH + 16];
    fmt(pfx, sizeof(pfx), "PREFIX=%s", prefix);
    fmt(bld, sizeof(bld), "BUILD=%s", build);
    const char *make[] = {"make", "-s", "-C", src, bld, pfx, "install", NULL};
    run_ok("make install", NULL, make, NULL);

    /* pkg-config names the prefix, and its flags build a driver that runs. */
    char pcp[HARNESS_PATH + 32];
    fmt(pcp, sizeof(pcp), "PKG_CONFIG_PATH=%s/lib/pkgconfig", prefix);
    const char *pcenv[] = {pcp, NULL};
    const char *pc[] = {"pkg-config", "--cflags", "--libs", "rayc", NULL};
    char *flags;
    run_ok("pkg-config", pcenv, pc, &flags);
    rstrip(flags);
    char want[HARNESS_PATH + 8];
    fmt(want, sizeof(want), "-I%s/include", prefix);
    cr_assert(strstr(flags, want) != NULL, "pkg-config: %s", flags);
    fmt(want, sizeof(want), "-L%s/lib", prefix);
    cr_assert(strstr(flags, want) != NULL, "pkg-config: %s", flags);

    char dir[HARNESS_PATH], drv[HARNESS_PATH + 32], tasks[HARNESS_PATH + 32],
        lib[HARNESS_PATH + 32], exe[HARNESS_PATH + 32], sh[4 * HARNESS_PATH];
    subdir(dir, sizeof(dir), "app");
    mkdir(dir, 0700);
    fmt(drv, sizeof(drv), "%s/examples/hello/driver.c", src);
    fmt(tasks, sizeof(tasks), "%s/examples/hello/tasks.c", src);
    fmt(lib, sizeof(lib), "%s/libhello_tasks.so", dir);
    fmt(exe, sizeof(exe), "%s/hello", dir);
    fmt(sh, sizeof(sh), "cc -o %s %s $(pkg-config --cflags --libs rayc)", exe, drv);
    const char *cc[] = {"sh", "-c", sh, NULL};
    run_ok("cc with pkg-config", pcenv, cc, NULL);
    fmt(sh, sizeof(sh), "cc -shared -fPIC -o %s %s $(pkg-config --cflags rayc)", lib, tasks);
    run_ok("cc tasks", pcenv, cc, NULL);
    free(flags);

    /* The installed rayc starts a head from libexec; the driver runs with
     * no LD_LIBRARY_PATH. */
    char rayc[HARNESS_PATH + 16], temp[HARNESS_PATH], tempv[HARNESS_PATH + 32], port[32];
    fmt(rayc, sizeof(rayc), "%s/bin/rayc", prefix);
    subdir(temp, sizeof(temp), "installed");
    fmt(tempv, sizeof(tempv), "RAYC_TEMP_DIR=%s", temp);
    fmt(port, sizeof(port), "--port=%d", harness_free_port());
    const char *env[] = {"-u", "RAYC_BIN_DIR", "-u",  "LD_LIBRARY_PATH",
                         "-u", "RAYC_TOKEN",   tempv, NULL};
    const char *start[] = {
        rayc, "start", "--head", port, "--num-cpus=1", "--object-store-memory=64M", NULL};
    run_ok("installed rayc start --head", env, start, NULL);
    const char *hello[] = {exe, NULL};
    char *out;
    run_ok("installed driver", env, hello, &out);
    cr_assert(strstr(out, "= 42") != NULL, "%s", out);
    free(out);

    /* The README's in-tree line (with its rpath) runs too. */
    char exe2[HARNESS_PATH + 32];
    fmt(exe2, sizeof(exe2), "%s/hello-tree", dir);
    fmt(sh, sizeof(sh),
        "cd %s && cc -o %s examples/hello/driver.c -Iinclude -L%s/lib -lrayc "
        "-Wl,-rpath,%s/lib",
        src, exe2, build, build);
    run_ok("cc in-tree", NULL, cc, NULL);
    const char *hello2[] = {exe2, NULL};
    run_ok("in-tree driver", env, hello2, &out);
    cr_assert(strstr(out, "= 42") != NULL, "%s", out);
    free(out);

    const char *stop[] = {rayc, "stop", NULL};
    run_ok("installed rayc stop", env, stop, NULL);
    assert_nothing_left();
}

/* ------------------------------------------------------------ item 7 */

Test(ops, head_on_a_separate_redis_with_password)
{
    /* A Redis of its own, on a loopback TCP port, with a password (in a
     * config file: never on a command line), AOF on. */
    char dir[HARNESS_PATH], conf[HARNESS_PATH + 32], text[2 * HARNESS_PATH], pw[64];
    subdir(dir, sizeof(dir), "redis-ext");
    mkdir(dir, 0700);
    int rport = harness_free_port();
    char t[AUTH_TOKEN_LEN + 1];
    auth_token_generate(t);
    fmt(pw, sizeof(pw), "%.32s", t);
    fmt(conf, sizeof(conf), "%s/redis.conf", dir);
    fmt(text, sizeof(text),
        "bind 127.0.0.1\nport %d\nrequirepass %s\nappendonly yes\ndir %s\nsave \"\"\n"
        "daemonize no\n",
        rport, pw, dir);
    cr_assert_eq(write_file(conf, text, strlen(text), 0600), 0);
    char *const rargv[] = {"/usr/bin/redis-server", conf, NULL};
    if (access(rargv[0], X_OK) != 0)
        cr_skip_test("no /usr/bin/redis-server");
    harness_spawn("redis-ext", NULL, rargv);

    char temp[HARNESS_PATH], session[HARNESS_PATH], port[32], raddr[64], rpw[96];
    subdir(temp, sizeof(temp), "rayc");
    int p = harness_free_port();
    fmt(port, sizeof(port), "--port=%d", p);
    fmt(raddr, sizeof(raddr), "--redis-address=127.0.0.1:%d", rport);
    fmt(rpw, sizeof(rpw), "--redis-password=%s", pw);
    const char *head[] = {
        "start", "--head", port, raddr, rpw, "--num-cpus=1", "--object-store-memory=64M", NULL};
    char *out, *err;
    /* The Redis may take a moment to listen: the GCS retries, start waits. */
    cr_assert_eq(rayc_env(&out, &err, NULL, head), 0, "start on an external redis: %s", err);
    free(out);
    free(err);
    session_of(temp, session, sizeof(session));
    wait_alive(p, session, 1);
    hello_in(temp);

    /* The GCS's state is in that Redis, and a killed GCS comes back to it. */
    char addr[64], tok[HARNESS_PATH + 32];
    fmt(addr, sizeof(addr), "--address=127.0.0.1:%d", p);
    fmt(tok, sizeof(tok), "--token-file=%s/token", session);
    const char *put[] = {"kv-put", addr, tok, "--ns=ops", "--key=ext", "--value=kept", NULL};
    cr_assert_eq(harness_ctl(&out, &err, put), 0, "kv-put: %s", err);
    free(out);
    free(err);
    char rp[32], cli_pw[96];
    fmt(rp, sizeof(rp), "%d", rport);
    fmt(cli_pw, sizeof(cli_pw), "REDISCLI_AUTH=%s", pw);
    const char *renv[] = {cli_pw, NULL};
    const char *hlen[] = {"redis-cli", "-p", rp, "hlen", "rayc:nodes", NULL};
    run_ok("redis-cli hlen", renv, hlen, &out);
    cr_assert(atoi(out) >= 1, "no node in the external redis: %s", out);
    free(out);

    kill9_and_time_heal(p, session, "gcs_server");
    wait_alive(p, session, 1);
    const char *get[] = {"kv-get", addr, tok, "--ns=ops", "--key=ext", NULL};
    cr_assert_eq(harness_ctl(&out, &err, get), 0, "kv-get: %s", err);
    cr_assert_str_eq(out, "kept");
    free(out);
    free(err);
    hello_in(temp);

    /* A wrong password is one line, quickly (no 30 s wait). */
    char port2[32], bad[64], temp2[HARNESS_PATH + 32];
    fmt(port2, sizeof(port2), "--port=%d", harness_free_port());
    fmt(bad, sizeof(bad), "--redis-password=%s", "not-the-password");
    fmt(temp2, sizeof(temp2), "--temp-dir=%s/badpw", harness_dir());
    const char *head2[] = {"start", "--head", port2,          raddr,
                           bad,     temp2,    "--num-cpus=1", "--object-store-memory=64M",
                           NULL};
    const char *tenv[] = {"RAYC_START_TIMEOUT=20", NULL};
    cr_assert_neq(rayc_env(&out, &err, tenv, head2), 0, "a wrong redis password was accepted");
    cr_assert(strstr(err, "rayc: ") == err && strchr(err, '\n') == err + strlen(err) - 1,
              "want one line: %s", err);
    free(out);
    free(err);

    stop_all(temp);
}
