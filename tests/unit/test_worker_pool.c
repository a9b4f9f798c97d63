/*
 * test_worker_pool.c -- the worker pool (raylet/worker_pool.h) with a shell
 * script standing in for rayc_worker: starting, connecting, binding, the
 * leased/blocked states and the cap, output lines reaching the output hook,
 * and death (kill, disconnect) reported once through the died hook and
 * reaped. The hooks record what they were told; no sockets, no raylet.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "../../raylet/client_registry.h"
#include "../../raylet/worker_pool.h"

static struct event_base *base;
static char dir[64], bin[128], logs[128];
static const char *env[] = {"RAYC_TEST_GREETING=hello", NULL};

static struct {
    int died, reaped;
    worker *died_w;
    int died_state;
    char out[512], err[512];
} fx;

static void on_output(void *arg, worker *w, bool is_err, const char *data, size_t n)
{
    (void)arg;
    (void)w;
    char *buf = is_err ? fx.err : fx.out;
    size_t len = strlen(buf);
    if (len + n < sizeof(fx.out)) {
        memcpy(buf + len, data, n);
        buf[len + n] = '\0';
    }
}

static void on_died(void *arg, worker *w)
{
    (void)arg;
    fx.died++;
    fx.died_w = w;
    fx.died_state = w->state;
}

static void on_reaped(void *arg)
{
    (void)arg;
    fx.reaped++;
}

static const wpool_hooks hooks = {on_output, on_died, on_reaped};

static worker_pool *new_pool(int max)
{
    wpool_opts o = {.base = base,
                    .worker_bin = bin,
                    .log_dir = logs,
                    .env = env,
                    .prestart = 0,
                    .max = max,
                    .idle_timeout_ms = 60000};
    char err[256] = "";
    worker_pool *p = wpool_new(&o, &hooks, NULL, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    return p;
}

/* Run the loop until cond holds or 5 s pass. */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uint64_t until_ = now_ms() + 5000;                                                         \
        while (!(cond) && now_ms() < until_)                                                       \
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);                    \
    } while (0)

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    log_init(NULL, LOG_LEVEL_ERROR);
    base = event_base_new();
    strcpy(dir, "/tmp/wpool_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(bin, sizeof(bin), "%s/fake_worker", dir);
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    const char *script = "#!/bin/sh\n"
                         "echo \"$RAYC_TEST_GREETING from $RAYC_WORKER_ID\"\n"
                         "echo oops >&2\n"
                         "exec sleep 30\n";
    cr_assert_eq(write_file(bin, script, strlen(script), 0700), 0);
}

static void teardown(void)
{
    event_base_free(base);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(wpool, .init = setup, .fini = teardown);

Test(wpool, a_started_worker_connects_binds_and_leases)
{
    worker_pool *p = new_pool(4);
    worker *w = wpool_start(p);
    cr_assert_not_null(w);
    cr_assert_eq(w->state, W_STARTING);
    cr_assert_eq(wpool_size(p), 1);
    cr_assert_eq(wpool_starting(p), 1);
    cr_assert_null(wpool_idle_for_job(p, 1), "not connected yet");

    worker_id_t stranger = worker_id_random();
    client cl = {0};
    cr_assert_null(wpool_connected(p, &stranger, &cl), "an id the pool never started");
    cr_assert_eq(wpool_connected(p, &w->id, &cl), w);
    cr_assert_eq(w->state, W_IDLE);
    cr_assert_eq(w->cl, &cl);
    cr_assert_eq(wpool_starting(p), 0);

    cr_assert_eq(wpool_idle_for_job(p, 7), w, "an unbound worker serves any job");
    wpool_bind(p, w, 7);
    cr_assert_eq(wpool_idle_for_job(p, 7), w);
    cr_assert_null(wpool_idle_for_job(p, 8), "bound to another job");

    wpool_lease(p, w);
    cr_assert_eq(w->state, W_LEASED);
    cr_assert_null(wpool_idle_for_job(p, 7));
    cr_assert_eq(wpool_max(p), 4);
    wpool_set_blocked(p, w, true);
    cr_assert_eq(wpool_max(p), 5, "a blocked worker does not count against the cap");
    wpool_unlease(p, w);
    cr_assert_eq(w->state, W_IDLE);
    cr_assert_not(w->blocked);
    cr_assert_eq(wpool_max(p), 4);
    wpool_free(p);
}

Test(wpool, want_starts_workers_within_the_cap)
{
    worker_pool *p = new_pool(2);
    wpool_want(p, 5);
    cr_assert_eq(wpool_size(p), 2);
    cr_assert_eq(wpool_starting(p), 2);
    wpool_want(p, 1);
    cr_assert_eq(wpool_size(p), 2, "one wanted, two already starting");
    cr_assert_null(wpool_start(p), "the pool is full");
    wpool_free(p);
}

Test(wpool, output_lines_of_a_bound_worker_reach_the_hook)
{
    worker_pool *p = new_pool(4);
    worker *w = wpool_start(p);
    cr_assert_not_null(w);
    wpool_bind(p, w, 3);
    RUN_UNTIL(fx.out[0] && fx.err[0]);
    char want[160];
    snprintf(want, sizeof(want), "hello from %s\n", w->hex);
    cr_assert_str_eq(fx.out, want);
    cr_assert_str_eq(fx.err, "oops\n");
    wpool_free(p);
}

Test(wpool, a_killed_worker_is_reported_once_then_reaped)
{
    worker_pool *p = new_pool(4);
    worker *w = wpool_start(p);
    client cl = {0};
    cr_assert_eq(wpool_connected(p, &w->id, &cl), w);
    cl.w = w;
    wpool_lease(p, w);
    wpool_kill(p, w);
    RUN_UNTIL(fx.reaped > 0);
    cr_assert_eq(fx.died, 1);
    cr_assert_eq(fx.died_state, W_LEASED, "the hook sees the lease it must end");
    cr_assert_eq(fx.reaped, 1);
    cr_assert_null(cl.w, "the client forgets its worker");
    cr_assert_eq(wpool_size(p), 0);
    cr_assert_null(wpool_first(p));
    wpool_free(p);
}

Test(wpool, a_disconnected_worker_is_dead_at_once)
{
    worker_pool *p = new_pool(4);
    worker *w = wpool_start(p);
    client cl = {0};
    wpool_connected(p, &w->id, &cl);
    wpool_disconnected(p, w);
    cr_assert_eq(fx.died, 1);
    cr_assert_eq(w->state, W_DEAD);
    cr_assert_eq(wpool_size(p), 0);
    RUN_UNTIL(fx.reaped > 0);
    cr_assert_eq(fx.died, 1, "not reported again when reaped");
    wpool_free(p);
}

/* A worker's environment is built before posix_spawn: the raylet's own,
 * with the pool's entries replacing same-named ones. */
Test(wpool, a_worker_gets_the_raylets_environment_with_the_pools_entries)
{
    setenv("RAYC_TEST_GREETING", "the raylet's", 1); /* replaced by the pool's "hello" */
    setenv("RAYC_TEST_PLACE", "inherited", 1);
    const char *script = "#!/bin/sh\n"
                         "echo \"$RAYC_TEST_GREETING $RAYC_TEST_PLACE\"\n"
                         "exec sleep 30\n";
    cr_assert_eq(write_file(bin, script, strlen(script), 0700), 0);
    worker_pool *p = new_pool(4);
    worker *w = wpool_start(p);
    cr_assert_not_null(w);
    wpool_bind(p, w, 3);
    RUN_UNTIL(fx.out[0]);
    cr_assert_str_eq(fx.out, "hello inherited\n");
    wpool_free(p);
}

/* Workers start with posix_spawn: an exec that fails is its error, so no
 * worker is counted (the raylet logs the reason) and the pool stays usable. */
Test(wpool, a_worker_that_cannot_exec_is_not_counted)
{
    worker_pool *p = new_pool(4);
    cr_assert_eq(chmod(bin, 0600), 0); /* exec fails: EACCES */
    worker *w = wpool_start(p);
    cr_assert_null(w, "a worker whose exec failed was counted");
    cr_assert_eq(wpool_size(p), 0);
    cr_assert_eq(wpool_starting(p), 0);
    cr_assert_eq(chmod(bin, 0700), 0);
    cr_assert_not_null(wpool_start(p), "the pool cannot start a worker after a failure");
    wpool_free(p);
}
