/*
 * test_task_control.c -- issue 12 items 3 and 7 on real daemons: cancelling
 * a queued task and then force-cancelling the running ones gives every one
 * of them RAYC_ECANCELLED (never RAYC_EWORKER_DIED); a task's output lands
 * in its worker's log file under a header line naming the task, its id, its
 * job and the time, and that header stays out of the driver's stream.
 *
 * Redis + GCS + one raylet through the harness, the driver in-process; task
 * functions from build/examples/libtestlib_tasks.so. Nothing here asserts a
 * duration.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "rayc.h"

#define SLACK_MS 30000  /* generous: a busy 2-vCPU machine; never a speed test */
#define LONG_MS  120000 /* a get that should succeed */
#define ALIVE    RPC__NODE_STATE__NODE_ALIVE

TestSuite(control, .init = harness_setup, .fini = harness_teardown, .timeout = 300);

/* ============================================================ helpers */

static const char *testlib(void)
{
    static char path[HARNESS_PATH];
    snprintf(path, sizeof(path), "%s/examples/libtestlib_tasks.so", harness_build());
    cr_assert(access(path, R_OK) == 0, "%s missing (make builds it)", path);
    return path;
}

static bool node_alive(void *arg)
{
    return harness_count_nodes(arg, ALIVE) == 1;
}

/* Redis, GCS and one raylet with 2 CPUs; the driver on it. */
static void one_node(harness_cluster *c)
{
    harness_cluster_init(c);
    harness_cluster_start(c);
    const char *flags[] = {"--num-cpus=2", "--object-store-memory=128M", NULL};
    harness_raylet_start(c, flags);
    cr_assert(harness_wait_until(node_alive, c, SLACK_MS), "the node is not ALIVE");
    setenv("RAYC_TOKEN_FILE", c->token_file, 1);
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_ADDRESS");
    char temp[HARNESS_PATH + 16];
    snprintf(temp, sizeof(temp), "%s/drivertmp", harness_dir());
    mkdir(temp, 0700);
    setenv("RAYC_TEMP_DIR", temp, 1);
    const char *code[] = {testlib(), NULL};
    rayc_init_opts o = {.address = c->address, .code = code, .log_to_driver = 1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
}

static void driver_shutdown(void)
{
    int rc = rayc_shutdown();
    cr_assert_eq(rc, RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
}

static rayc_ref submit(const char *fn, const rayc_arg *args, size_t n, const rayc_task_opts *o)
{
    rayc_ref r;
    int rc = rayc_submit(fn, args, n, o, &r);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit(%s): %s: %s", fn, rayc_strerror(rc), rayc_last_error());
    return r;
}

/* ============================================================ cancel */

/* Issue 12 item 3: 2 CPUs, 3 long tasks. The third waits (queued at the
 * raylet or pipelined behind a running task on a worker); cancelling it,
 * then force-cancelling the two running ones, gives all three
 * RAYC_ECANCELLED: the kill of a worker must not take the queued task with
 * it as a worker death. */
Test(control, cancel_queued_then_force_running_all_cancelled)
{
    harness_cluster c;
    one_node(&c);
    char started[HARNESS_PATH];
    snprintf(started, sizeof(started), "%s/started", harness_dir());
    int64_t ms = 600000;
    rayc_arg a[] = {RAYC_VAL(started, strlen(started) + 1), RAYC_VAL(&ms, sizeof(ms))};
    rayc_task_opts o = {.max_retries = 3};
    rayc_ref r[3];
    for (int i = 0; i < 3; i++)
        r[i] = submit("nap", a, 2, &o);
    harness_lines la = {started, "", 2};
    cr_assert(harness_wait_until(harness_has_lines, &la, SLACK_MS), "two naps did not start");
    cr_assert_eq(rayc_cancel(r[2], 0), RAYC_OK, "cancel r3: %s", rayc_last_error());
    cr_assert_eq(rayc_cancel(r[0], 1), RAYC_OK, "force-cancel r1: %s", rayc_last_error());
    cr_assert_eq(rayc_cancel(r[1], 1), RAYC_OK, "force-cancel r2: %s", rayc_last_error());
    for (int i = 2; i >= 0; i--) {
        rayc_value v;
        int rc = rayc_get(&r[i], 1, &v, LONG_MS);
        cr_assert_eq(rc, RAYC_ECANCELLED, "r%d: %s (%s), want RAYC_ECANCELLED", i + 1,
                     rayc_strerror(rc), rc == RAYC_ETIMEDOUT ? rayc_last_error() : v.error);
        rayc_value_release(&v);
        rayc_ref_release(r[i]);
    }
    cr_assert_eq(harness_lines_with(started, ""), 2,
                 "a cancelled task ran (or a killed one was retried)");
    driver_shutdown();
}

/* ============================================================ worker logs */

/* The worker-*.out file of the logs dir whose text holds needle; its text
 * (malloc'd) or NULL. */
static char *worker_log_with(const char *logs, const char *suffix, const char *needle)
{
    DIR *d = opendir(logs);
    if (d == NULL)
        return NULL;
    struct dirent *e;
    char *found = NULL;
    while (found == NULL && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name), k = strlen(suffix);
        if (strncmp(e->d_name, "worker-", 7) != 0 || n < k || strcmp(e->d_name + n - k, suffix))
            continue;
        char path[HARNESS_PATH + 300];
        snprintf(path, sizeof(path), "%s/%s", logs, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char *text = calloc(1, 1 << 20);
        size_t got = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
        fclose(f);
        if (text && got && strstr(text, needle))
            found = text;
        else
            free(text);
    }
    closedir(d);
    return found;
}

struct log_arg {
    const char *logs, *suffix, *needle;
    char *text;
};

static bool log_has(void *arg)
{
    struct log_arg *a = arg;
    free(a->text);
    a->text = worker_log_with(a->logs, a->suffix, a->needle);
    return a->text != NULL;
}

/* The header line (":task_name:...") closest before `at` in text. */
static void header_before(const char *text, const char *at, char *out, size_t len)
{
    out[0] = '\0';
    const char *h = NULL;
    for (const char *p = strstr(text, ":task_name:"); p && p < at; p = strstr(p + 1, ":task_name:"))
        h = p;
    if (h == NULL)
        return;
    const char *nl = strchr(h, '\n');
    size_t n = nl ? (size_t)(nl - h) : strlen(h);
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), h);
}

/* Issue 12 item 7: a task's printf lands in its worker's log (stdout in
 * .out, stderr in .err) after a header naming the task, its function, id
 * and job, with the time; the driver's stream still gets the plain line. */
Test(control, task_output_in_worker_log_under_its_name)
{
    harness_cluster c;
    one_node(&c);
    char logs[HARNESS_PATH + 8];
    snprintf(logs, sizeof(logs), "%s/logs", c.raylets[0].session);
    /* Another task first, so the header must be the right task's. */
    const char *t0 = "first-task-line";
    rayc_arg a0 = RAYC_VAL(t0, strlen(t0) + 1);
    rayc_task_opts o0 = {.name = "first_printer"};
    rayc_ref r0 = submit("say", &a0, 1, &o0);
    const char *text = "log-marker-5c1e";
    rayc_arg a = RAYC_VAL(text, strlen(text) + 1);
    rayc_task_opts o = {.name = "printer_task"};
    rayc_ref r = submit("say", &a, 1, &o);
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "say: %s: %s", rayc_strerror(rc), rayc_last_error());
    rayc_value_release(&v);
    rc = rayc_get(&r0, 1, &v, LONG_MS);
    cr_assert_eq(rc, RAYC_OK, "say: %s: %s", rayc_strerror(rc), rayc_last_error());
    rayc_value_release(&v);
    const char *sfx[] = {".out", ".err"};
    char needle[2][64];
    snprintf(needle[0], sizeof(needle[0]), "%s\n", text);
    snprintf(needle[1], sizeof(needle[1]), "err:%s\n", text);
    for (int i = 0; i < 2; i++) {
        struct log_arg la = {logs, sfx[i], needle[i], NULL};
        cr_assert(harness_wait_until(log_has, &la, SLACK_MS), "no worker-*%s in %s holds [%s]",
                  sfx[i], logs, needle[i]);
        char head[1024];
        header_before(la.text, strstr(la.text, needle[i]), head, sizeof(head));
        free(la.text);
        cr_assert(strncmp(head, ":task_name:printer_task ", 24) == 0,
                  "the line in worker-*%s is not under its task's header: [%s]", sfx[i], head);
        cr_assert(strstr(head, "function=say") && strstr(head, " id=") && strstr(head, " job=") &&
                      strstr(head, " time="),
                  "the header lacks function, id, job or time: [%s]", head);
    }
    rayc_ref_release(r);
    rayc_ref_release(r0);
    driver_shutdown();
}
