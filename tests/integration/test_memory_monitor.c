/* test_memory_monitor.c -- the raylet's memory monitor (Ray's OOM killer)
 * against a live cluster: with the threshold set just above the machine's
 * current use, a task that keeps allocating is killed and fails with
 * RAYC_EOOM naming the node and the numbers, and the node goes on running
 * other tasks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../raylet/memory_monitor.h"
#include "harness.h"
#include "rayc.h"

TestSuite(memory_monitor, .init = harness_setup, .fini = harness_teardown, .timeout = 180);

static const char *testlib(void)
{
    static char lib[HARNESS_PATH];
    snprintf(lib, sizeof(lib), "%s/examples/libtestlib_tasks.so", harness_build());
    return lib;
}

struct status_arg {
    harness_cluster *c;
    const char *want;
    char *last;
};

/* `rayc_ctl status` prints want. */
static bool status_says(void *arg)
{
    struct status_arg *a = arg;
    char addr[96], tok[HARNESS_PATH + 16];
    snprintf(addr, sizeof(addr), "--address=%s", a->c->address);
    snprintf(tok, sizeof(tok), "--token-file=%s", a->c->token_file);
    const char *args[] = {"status", addr, tok, NULL};
    char *out = NULL, *err = NULL;
    harness_ctl(&out, &err, args);
    free(err);
    free(a->last);
    a->last = out;
    return out && strstr(out, a->want);
}

Test(memory_monitor, hog_is_killed_with_eoom_and_the_node_goes_on)
{
    mm_usage u;
    cr_assert_eq(mm_read(&MM_SYSTEM_PATHS, &u), 0);
    /* The threshold: 400 MiB above what the machine uses now. */
    double threshold = (double)(u.used + (400ull << 20)) / (double)u.total;
    cr_assert_lt(threshold, 0.9, "precondition: the machine has room to test with");
    char flag[64];
    snprintf(flag, sizeof(flag), "--memory-usage-threshold=%.4f", threshold);
    const char *extra[] = {flag, "--memory-monitor-refresh-ms=100", "--num-cpus=2", NULL};
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, extra);
    setenv("RAYC_TOKEN_FILE", c.token_file, 1);
    unsetenv("RAYC_TOKEN");
    const char *code[] = {testlib(), NULL};
    rayc_init_opts o = {.address = c.address, .code = code, .log_to_driver = -1};
    cr_assert_eq(rayc_init(&o), RAYC_OK, "%s", rayc_last_error());

    int64_t mib = (int64_t)(u.total >> 20); /* more than the machine has: never finishes */
    rayc_arg a = RAYC_VAL(&mib, sizeof(mib));
    rayc_task_opts no_retry = {.max_retries = -1};
    rayc_ref ref;
    cr_assert_eq(rayc_submit("hog", &a, 1, &no_retry, &ref), RAYC_OK);
    rayc_value v;
    int rc = rayc_get(&ref, 1, &v, 120000);
    cr_assert_eq(rc, RAYC_EOOM, "got %s: %s", rayc_strerror(rc), rayc_last_error());
    cr_assert(strstr(rayc_last_error(), "ran out of memory") != NULL, "%s", rayc_last_error());
    cr_assert(strstr(rayc_last_error(), "hog") != NULL, "%s", rayc_last_error());
    rayc_ref_release(ref);

    /* With a retry: killed twice (the retry allocates again, after a
     * back-off the raylet holds it for), still RAYC_EOOM. */
    rayc_task_opts one_retry = {.max_retries = 1};
    cr_assert_eq(rayc_submit("hog", &a, 1, &one_retry, &ref), RAYC_OK);
    rc = rayc_get(&ref, 1, &v, 120000);
    cr_assert_eq(rc, RAYC_EOOM, "got %s: %s", rayc_strerror(rc), rayc_last_error());
    rayc_ref_release(ref);

    int64_t x = 41;
    rayc_arg b = RAYC_VAL(&x, sizeof(x));
    cr_assert_eq(rayc_submit("inc", &b, 1, NULL, &ref), RAYC_OK);
    cr_assert_eq(rayc_get(&ref, 1, &v, 120000), RAYC_OK, "%s", rayc_last_error());
    cr_assert_eq(*(const int64_t *)v.data, 42);
    rayc_value_release(&v);
    rayc_ref_release(ref);
    cr_assert_eq(harness_node_state(&c, r->node_id), RPC__NODE_STATE__NODE_ALIVE);
    /* Every kill is counted in rayc status (reported with the heartbeats). */
    struct status_arg sa = {&c, "Memory monitor: 3 workers killed"};
    cr_assert(harness_wait_until(status_says, &sa, 30000), "rayc status: %s", sa.last);
    free(sa.last);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}
