/*
 * test_task_events.c -- issue 15's task events on real daemons: a driver
 * (this process, rayc_init against a harness cluster) runs known work, its
 * process and its workers report task events to the GCS, and the test reads
 * them back through the head's HTTP API and the `rayc` CLI: /api/v0/tasks
 * with filters and limits, summary/tasks, failures with their errors,
 * retries, running and cancelled tasks, the bounded per-job table with its
 * drop counts, /metrics, `rayc timeline` (Chrome trace JSON checked with
 * python3's json module, one slice per task run), and the page's task view
 * in headless Chromium.
 *
 * Events reach the GCS within a flush period (task_events_report_ms, 1 s)
 * or at rayc_shutdown, so every check of the API polls.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "rayc.h"
#include "util.h"

#define SLACK_MS 30000 /* a busy 2-vCPU machine; never a speed test */

static void fini(void);
TestSuite(task_events, .init = harness_setup, .fini = fini, .timeout = 240);

static bool g_up; /* rayc_init succeeded, no rayc_shutdown yet */

static void fini(void)
{
    if (g_up) {
        g_up = false;
        rayc_shutdown();
    }
    harness_teardown();
}

/* ------------------------------------------------------------ cluster */

typedef struct {
    harness_cluster c;
    harness_raylet *r;
    int port;
    char addr[64];
} fixture;

/* GCS with a dashboard (gcs_env: extra NAME=VALUE for the GCS, or NULL),
 * one raylet with cpus CPUs, and this process as the driver. */
static void start(fixture *f, const char *gcs_env, const char *cpus)
{
    f->port = harness_free_port();
    char p[16];
    snprintf(p, sizeof(p), "%d", f->port);
    setenv("RAYC_DASHBOARD_PORT", p, 1);
    char name[64] = "";
    if (gcs_env) {
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(gcs_env, "="), gcs_env);
        setenv(name, strchr(gcs_env, '=') + 1, 1);
    }
    harness_cluster_init(&f->c);
    harness_cluster_start(&f->c);
    unsetenv("RAYC_DASHBOARD_PORT");
    if (name[0])
        unsetenv(name);
    char flag[32];
    snprintf(flag, sizeof(flag), "--num-cpus=%s", cpus);
    const char *extra[] = {flag, NULL};
    f->r = harness_raylet_start(&f->c, extra);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);

    setenv("RAYC_TOKEN_FILE", f->c.token_file, 1);
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_ADDRESS");
    char temp[HARNESS_PATH + 16], lib[HARNESS_PATH], alib[HARNESS_PATH];
    snprintf(temp, sizeof(temp), "%s/drivertmp", harness_dir());
    mkdir(temp, 0700);
    setenv("RAYC_TEMP_DIR", temp, 1);
    snprintf(lib, sizeof(lib), "%s/examples/libtestlib_tasks.so", harness_build());
    snprintf(alib, sizeof(alib), "%s/examples/libactorlib_tasks.so", harness_build());
    cr_assert(access(lib, R_OK) == 0 && access(alib, R_OK) == 0, "%s or %s missing (make)", lib,
              alib);
    const char *code[] = {lib, alib, NULL};
    rayc_init_opts o = {.address = f->c.address, .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_OK, "rayc_init: %s: %s", rayc_strerror(rc), rayc_last_error());
    g_up = true;
}

static void stop_driver(void)
{
    g_up = false;
    cr_assert_eq(rayc_shutdown(), RAYC_OK, "rayc_shutdown: %s", rayc_last_error());
}

/* ------------------------------------------------------------ HTTP */

/* GET path with the token; the status, and the body in *body (malloc'd). */
static int get(const fixture *f, const char *path, char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s", strerror(errno));
    char *req;
    int n = asprintf(&req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     path, f->c.token);
    cr_assert(n > 0 && write(fd, req, (size_t)n) == n);
    free(req);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    cr_assert(sscanf(buf, "HTTP/1.1 %d", &status) == 1, "no HTTP reply: [%s]", buf);
    char *sep = strstr(buf, "\r\n\r\n");
    cr_assert(sep != NULL);
    *body = strdup(sep + 4);
    free(buf);
    return status;
}

static char *get_ok(const fixture *f, const char *path)
{
    char *body;
    int st = get(f, path, &body);
    cr_assert_eq(st, 200, "GET %s: HTTP %d: %s", path, st, body);
    return body;
}

static long json_num(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -999;
}

/* The value of the first sample line that starts with prefix; -1 if none. */
static double metric(const char *text, const char *prefix)
{
    char pat[256];
    snprintf(pat, sizeof(pat), "\n%s", prefix);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* Poll GET path until its "num_after_filter" is at least want. */
struct poll_arg {
    const fixture *f;
    const char *path;
    long want;
    long last;
};

static bool has_rows(void *arg)
{
    struct poll_arg *a = arg;
    char *body = get_ok(a->f, a->path);
    a->last = json_num(body, "num_after_filter");
    free(body);
    return a->last >= a->want;
}

static void wait_rows(const fixture *f, const char *path, long want)
{
    struct poll_arg a = {f, path, want, -1};
    cr_assert(harness_wait_until(has_rows, &a, SLACK_MS), "%s: want %ld rows, have %ld", path, want,
              a.last);
}

/* ------------------------------------------------------------ driver */

static rayc_ref submit(const char *fn, const rayc_arg *args, size_t n, const rayc_task_opts *o)
{
    rayc_ref r;
    int rc = rayc_submit(fn, args, n, o, &r);
    cr_assert_eq(rc, RAYC_OK, "rayc_submit(%s): %s: %s", fn, rayc_strerror(rc), rayc_last_error());
    return r;
}

/* Wait for r; returns its status (the value is released, and the ref). */
static int finish(rayc_ref r)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, 60000);
    int st = rc == RAYC_OK ? RAYC_OK : v.status ? v.status : rc;
    if (rc == RAYC_OK || v.data || v.error)
        rayc_value_release(&v);
    rayc_ref_release(r);
    return st;
}

static rayc_ref submit_inc(int64_t *x)
{
    rayc_arg a = RAYC_VAL(x, sizeof(*x));
    return submit("inc", &a, 1, NULL);
}

static int rayc(const fixture *f, char **out, char **err, const char *const args[])
{
    return harness_rayc_dashboard(f->addr, f->c.token_file, out, err, args);
}

/* ------------------------------------------------------------ tests */

Test(task_events, list_and_summary_after_known_work)
{
    fixture f;
    start(&f, NULL, "1");
    rayc_ref refs[20];
    int64_t xs[20];
    for (int i = 0; i < 20; i++) {
        xs[i] = i;
        refs[i] = submit_inc(&xs[i]);
    }
    rayc_task_opts named = {.name = "boom-task"};
    rayc_ref bad = submit("fail_msg", NULL, 0, &named);
    char counter[HARNESS_PATH + 16];
    snprintf(counter, sizeof(counter), "%s/flaky", harness_dir());
    int64_t two = 2;
    rayc_arg fa[2] = {RAYC_VAL(counter, strlen(counter) + 1), RAYC_VAL(&two, sizeof(two))};
    rayc_task_opts retry = {.max_retries = 3, .retry_exceptions = 1};
    rayc_ref flaky = submit("flaky", fa, 2, &retry);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(finish(refs[i]), RAYC_OK);
    cr_assert_eq(finish(bad), RAYC_ETASK);
    cr_assert_eq(finish(flaky), RAYC_OK);

    wait_rows(&f, "/api/v0/tasks?filter=func_or_class_name%3Dinc&filter=state%3DFINISHED", 20);
    wait_rows(&f, "/api/v0/tasks?filter=func_or_class_name%3Dflaky&filter=state%3DFINISHED", 1);
    wait_rows(&f, "/api/v0/tasks?filter=state%3DFAILED", 2);

    /* Each inc ran on our node, on a worker whose pid is known, with times. */
    char *body = get_ok(&f, "/api/v0/tasks?filter=func_or_class_name%3Dinc&limit=1000");
    cr_assert_eq(json_num(body, "num_after_filter"), 20, "%s", body);
    cr_assert_eq(count(body, f.r->node_id), 20, "%s", body);
    cr_assert_eq(count(body, "\"worker_pid\":0"), 0, "%s", body);
    cr_assert_eq(count(body, "\"start_time_ms\":null"), 0, "%s", body);
    cr_assert_eq(count(body, "\"end_time_ms\":null"), 0, "%s", body);
    cr_assert_eq(count(body, "\"submitted_time_ms\":null"), 0, "%s", body);
    cr_assert_eq(count(body, "\"scheduled_time_ms\":null"), 0, "%s", body);
    cr_assert(strstr(body, "\"dropped\":{\"evicted\":0,\"lost\":0"), "%s", body);
    free(body);

    /* The failure with its error; the retried attempt and the one that won. */
    body = get_ok(&f, "/api/v0/tasks?filter=name%3Dboom-task");
    cr_assert_eq(json_num(body, "num_after_filter"), 1, "%s", body);
    cr_assert(strstr(body, "\"state\":\"FAILED\"") &&
                  strstr(body, "\"error_type\":\"RAYC_ETASK\"") && strstr(body, "boom 7") &&
                  strstr(body, "\"func_or_class_name\":\"fail_msg\""),
              "%s", body);
    free(body);
    body = get_ok(&f, "/api/v0/tasks?filter=func_or_class_name%3Dflaky&filter=attempt_number%3D0");
    cr_assert(strstr(body, "\"state\":\"FAILED\"") && strstr(body, "\"is_retried\":true") &&
                  strstr(body, "flaky attempt 1"),
              "%s", body);
    free(body);
    body = get_ok(&f, "/api/v0/tasks?filter=func_or_class_name%3Dflaky&filter=attempt_number%3D1");
    cr_assert(strstr(body, "\"state\":\"FINISHED\"") && strstr(body, "\"is_retried\":false"), "%s",
              body);
    free(body);

    /* Limits keep the newest; totals count everything. */
    body = get_ok(&f, "/api/v0/tasks?limit=5");
    cr_assert_eq(json_num(body, "total"), 23, "%s", body);
    cr_assert_eq(json_num(body, "num_after_filter"), 23, "%s", body);
    cr_assert_eq(count(body, "\"task_id\""), 5, "%s", body);
    free(body);

    body = get_ok(&f, "/api/v0/summary/tasks");
    cr_assert(strstr(body, "\"func_or_class_name\":\"inc\",\"total\":20,\"pending_args\":0,"
                           "\"submitted\":0,\"scheduled\":0,\"running\":0,\"finished\":20"),
              "%s", body);
    cr_assert(strstr(body, "\"func_or_class_name\":\"flaky\",\"total\":2,"), "%s", body);
    free(body);

    /* The CLI: tables, filters, JSON, the summary. */
    char *out, *err;
    cr_assert_eq(
        rayc(&f, &out, &err, (const char *[]){"list", "tasks", "--filter=state=FAILED", NULL}), 0,
        "%s", err);
    cr_assert(strncmp(out, "TASK_ID", 7) == 0 && strstr(out, "RAYC_ETASK") &&
                  strstr(out, "fail_msg") && strstr(out, "flaky") && !strstr(out, " inc "),
              "%s", out);
    free(out), free(err);
    cr_assert_eq(
        rayc(&f, &out, &err, (const char *[]){"list", "tasks", "--format=json", "--limit=3", NULL}),
        0, "%s", err);
    cr_assert(out[0] == '{' && count(out, "\"task_id\"") == 3, "%s", out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"summary", "tasks", NULL}), 0, "%s", err);
    cr_assert(strstr(out, "FUNC_OR_CLASS_NAME") && strstr(out, "inc") && strstr(out, "20"), "%s",
              out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"summary", "actors", NULL}), 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(
        rayc(&f, &out, &err, (const char *[]){"list", "tasks", "--filter=colour=red", NULL}), 1);
    cr_assert(strstr(err, "colour"), "%s", err);
    free(out), free(err);
    stop_driver();
}

Test(task_events, actor_calls_are_reported_like_tasks)
{
    fixture f;
    start(&f, NULL, "1");
    int64_t zero = 0;
    rayc_arg arg = RAYC_VAL(&zero, sizeof(zero));
    rayc_actor a;
    cr_assert_eq(rayc_actor_create("Counter", &arg, 1, NULL, &a), RAYC_OK, "%s", rayc_last_error());
    rayc_ref r[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rayc_actor_call(a, "incr", NULL, 0, NULL, &r[i]), RAYC_OK, "%s",
                     rayc_last_error());
    rayc_ref bad;
    cr_assert_eq(rayc_actor_call(a, "no_such_method", NULL, 0, NULL, &bad), RAYC_OK, "%s",
                 rayc_last_error());
    for (int i = 0; i < 3; i++)
        cr_assert_eq(finish(r[i]), RAYC_OK);
    cr_assert_neq(finish(bad), RAYC_OK);
    stop_driver();
    /* The four calls, each with the actor's id, run by its worker. */
    char *body = get_ok(&f, "/api/v0/tasks?filter=type%3DACTOR_TASK&limit=100");
    cr_assert_eq(json_num(body, "num_after_filter"), 4, "%s", body);
    cr_assert_eq(count(body, "\"state\":\"FINISHED\""), 3, "%s", body);
    cr_assert_eq(count(body, "\"state\":\"FAILED\""), 1, "%s", body);
    cr_assert_eq(count(body, "\"worker_pid\":0"), 0, "%s", body);
    cr_assert(strstr(body, "no_such_method"), "%s", body);
    free(body);
}

/* An actor's creation is a task of its own (the GCS reports it): FINISHED
 * once the actor is ALIVE, FAILED with the constructor's error. */
Test(task_events, actor_creations_are_in_the_task_table)
{
    fixture f;
    start(&f, NULL, "2");
    int64_t zero = 0, minus = -1;
    rayc_arg good_arg = RAYC_VAL(&zero, sizeof(zero)), bad_arg = RAYC_VAL(&minus, sizeof(minus));
    rayc_actor good, bad;
    cr_assert_eq(rayc_actor_create("Counter", &good_arg, 1, NULL, &good), RAYC_OK, "%s",
                 rayc_last_error());
    cr_assert_eq(rayc_actor_create("Counter", &bad_arg, 1, NULL, &bad), RAYC_OK, "%s",
                 rayc_last_error());
    rayc_ref r, r2;
    cr_assert_eq(rayc_actor_call(good, "incr", NULL, 0, NULL, &r), RAYC_OK, "%s",
                 rayc_last_error());
    cr_assert_eq(finish(r), RAYC_OK);
    cr_assert_eq(rayc_actor_call(bad, "incr", NULL, 0, NULL, &r2), RAYC_OK, "%s",
                 rayc_last_error());
    cr_assert_neq(finish(r2), RAYC_OK); /* its constructor failed */
    wait_rows(&f, "/api/v0/tasks?filter=type%3DACTOR_CREATION_TASK&filter=state%3DFAILED", 1);
    char *body = get_ok(&f, "/api/v0/tasks?filter=type%3DACTOR_CREATION_TASK");
    cr_assert_eq(json_num(body, "num_after_filter"), 2, "%s", body);
    cr_assert_eq(count(body, "\"state\":\"FINISHED\""), 1, "%s", body);
    cr_assert_eq(count(body, "\"state\":\"FAILED\""), 1, "%s", body);
    cr_assert_eq(count(body, "\"func_or_class_name\":\"Counter\""), 2, "%s", body);
    cr_assert(strstr(body, "negative start"), "%s", body);
    free(body);
    /* The CLI's table shows them with their type and state. */
    char *out = NULL, *err = NULL;
    const char *args[] = {"list", "tasks", "--filter=type=ACTOR_CREATION_TASK", NULL};
    cr_assert_eq(rayc(&f, &out, &err, args), 0, "%s", err);
    cr_assert_eq(count(out, "ACTOR_CREATION_TASK"), 2, "%s", out);
    cr_assert(strstr(out, "FINISHED") && strstr(out, "FAILED"), "%s", out);
    free(out);
    free(err);
    rayc_actor_release(good);
    rayc_actor_release(bad);
    stop_driver();
}

Test(task_events, running_pending_and_cancelled_tasks_show)
{
    fixture f;
    start(&f, NULL, "1");
    char started[HARNESS_PATH + 16];
    snprintf(started, sizeof(started), "%s/started", harness_dir());
    int64_t ms = 4000;
    rayc_arg na[2] = {RAYC_VAL(started, strlen(started) + 1), RAYC_VAL(&ms, sizeof(ms))};
    rayc_ref nap = submit("nap", na, 2, NULL);
    /* A task that needs nap's result waits in the driver: PENDING_ARGS. */
    rayc_arg dep = RAYC_REF(nap);
    rayc_ref after = submit("inc", &dep, 1, NULL);
    rayc_ref after2 = submit("inc", &dep, 1, NULL);

    wait_rows(&f, "/api/v0/tasks?filter=func_or_class_name%3Dnap&filter=state%3DRUNNING", 1);
    char *body = get_ok(&f, "/api/v0/tasks?filter=state%3DRUNNING");
    cr_assert(strstr(body, f.r->node_id) && !strstr(body, "\"worker_pid\":0"), "%s", body);
    free(body);
    wait_rows(&f, "/api/v0/tasks?filter=state%3DPENDING_ARGS", 2);

    /* Cancelled while it waits for its argument: it never runs. */
    cr_assert_eq(rayc_cancel(after2, 0), RAYC_OK, "%s", rayc_last_error());
    cr_assert_eq(finish(after2), RAYC_ECANCELLED);
    wait_rows(&f, "/api/v0/tasks?filter=state%3DCANCELLED&filter=error_type%3DRAYC_ECANCELLED", 1);
    cr_assert_eq(finish(nap), RAYC_OK);
    cr_assert_eq(finish(after), RAYC_OK); /* inc of nap's int64 */
    stop_driver();
    body = get_ok(&f, "/api/v0/tasks?filter=func_or_class_name%3Dinc&filter=state%3DFINISHED");
    cr_assert_eq(json_num(body, "num_after_filter"), 1, "%s", body);
    cr_assert(!strstr(body, "\"pending_args_time_ms\":null"), "%s", body);
    free(body);
    body = get_ok(&f, "/api/v0/tasks?filter=func_or_class_name%3Dnap&filter=state%3DFINISHED");
    cr_assert_eq(json_num(body, "num_after_filter"), 1, "%s", body);
    free(body);
}

Test(task_events, table_is_bounded_per_job_and_counts_drops)
{
    fixture f;
    start(&f, "RAYC_TASK_EVENTS_MAX_PER_JOB=10", "1");
    rayc_ref refs[30];
    int64_t xs[30];
    for (int i = 0; i < 30; i++) {
        xs[i] = i;
        refs[i] = submit_inc(&xs[i]);
    }
    for (int i = 0; i < 30; i++)
        cr_assert_eq(finish(refs[i]), RAYC_OK);
    stop_driver(); /* sends the last events */
    /* 30 attempts, 10 kept. (A late event of an evicted attempt, e.g. its
     * end in a later batch than its submission, makes a record again and
     * evicts one more: at least 20 evictions, not exactly.) */
    char *body = get_ok(&f, "/api/v0/tasks?limit=100");
    cr_assert_eq(json_num(body, "total"), 10, "%s", body);
    const char *d = strstr(body, "\"dropped\":{\"evicted\":");
    cr_assert(d && strtol(d + 21, NULL, 10) >= 20, "%s", body);
    cr_assert(strstr(body, "\"tasks\":10,\"evicted\":"), "%s", body);
    free(body);
    char *out, *err;
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"list", "tasks", NULL}), 0, "%s", err);
    cr_assert(strstr(out, "task records evicted from the GCS table"), "%s", out);
    free(out), free(err);
    body = get_ok(&f, "/metrics");
    cr_assert(metric(body, "rayc_tasks{state=\"FINISHED\"} ") >= 8, "%s", body);
    cr_assert(metric(body, "rayc_tasks_ended_total{state=\"FINISHED\"} ") >= 30, "%s", body);
    cr_assert(metric(body, "rayc_task_events_dropped_total{reason=\"evicted\"} ") >= 20, "%s",
              body);
    cr_assert(metric(body, "rayc_task_run_duration_seconds_count ") >= 30, "%s", body);
    char pending[160];
    snprintf(pending, sizeof(pending), "\nrayc_node_pending_tasks{node=\"%s\"} ", f.r->node_id);
    cr_assert(strstr(body, pending), "%s", body);
    free(body);
}

Test(task_events, full_process_buffer_counts_lost_events)
{
    setenv("RAYC_TASK_EVENTS_BUFFER_MAX", "5", 1);
    fixture f;
    start(&f, NULL, "1");
    unsetenv("RAYC_TASK_EVENTS_BUFFER_MAX");
    rayc_ref refs[30];
    int64_t xs[30];
    for (int i = 0; i < 30; i++) {
        xs[i] = i;
        refs[i] = submit_inc(&xs[i]);
    }
    for (int i = 0; i < 30; i++)
        cr_assert_eq(finish(refs[i]), RAYC_OK);
    stop_driver();
    char *body = get_ok(&f, "/api/v0/summary/tasks");
    long lost = json_num(strstr(body, "\"dropped\"") ? strstr(body, "\"dropped\"") : body, "lost");
    cr_assert(lost >= 20, "lost %ld: %s", lost, body);
    free(body);
    body = get_ok(&f, "/metrics");
    cr_assert(strstr(body, "\nrayc_task_events_dropped_total{reason=\"lost\"} "), "%s", body);
    free(body);
}

/* The table is in memory: a restarted GCS starts it empty, and the driver
 * reports to the new GCS on its new connection. */
/* The table is in Redis (a chunk per flush period): a GCS killed with
 * SIGKILL and restarted lists what it had, and events flow on after. */
static bool persisted(void *arg)
{
    const fixture *f = arg;
    char *text = get_ok(f, "/metrics");
    double n = metric(text, "rayc_task_records_persisted_total ");
    free(text);
    return n >= 2;
}

Test(task_events, task_table_survives_a_gcs_kill_9)
{
    fixture f;
    start(&f, NULL, "1");
    int64_t xs[5] = {0, 1, 2, 3, 4};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(finish(submit_inc(&xs[i])), RAYC_OK);
    wait_rows(&f, "/api/v0/tasks?filter=state%3DFINISHED", 2);
    cr_assert(harness_wait_until(persisted, &f, SLACK_MS), "the records were never stored");
    harness_kill9(f.c.gcs);
    char p[16];
    snprintf(p, sizeof(p), "%d", f.port);
    setenv("RAYC_DASHBOARD_PORT", p, 1);
    harness_gcs_restart(&f.c);
    unsetenv("RAYC_DASHBOARD_PORT");
    char *body = get_ok(&f, "/api/v0/tasks?filter=state%3DFINISHED");
    cr_assert_eq(json_num(body, "num_after_filter"), 2, "the restarted GCS lost them: %s", body);
    cr_assert_eq(count(body, "\"func_or_class_name\":\"inc\""), 2, "%s", body);
    free(body);
    char *text = get_ok(&f, "/metrics");
    cr_assert_eq(metric(text, "rayc_task_records_loaded "), 2, "%s", text);
    free(text);
    for (int i = 2; i < 5; i++)
        cr_assert_eq(finish(submit_inc(&xs[i])), RAYC_OK);
    wait_rows(&f, "/api/v0/tasks?filter=state%3DFINISHED", 5);
    stop_driver();
    body = get_ok(&f, "/api/v0/tasks");
    cr_assert_eq(json_num(body, "total"), 5, "%s", body);
    free(body);
}

Test(task_events, timeline_is_chrome_trace_json_with_a_slice_per_run)
{
    fixture f;
    start(&f, NULL, "2");
    rayc_ref refs[12];
    int64_t xs[12];
    for (int i = 0; i < 12; i++) {
        xs[i] = i;
        refs[i] = submit_inc(&xs[i]);
    }
    char counter[HARNESS_PATH + 16];
    snprintf(counter, sizeof(counter), "%s/flaky", harness_dir());
    int64_t two = 2;
    rayc_arg fa[2] = {RAYC_VAL(counter, strlen(counter) + 1), RAYC_VAL(&two, sizeof(two))};
    rayc_task_opts retry = {.max_retries = 3, .retry_exceptions = 1};
    rayc_ref flaky = submit("flaky", fa, 2, &retry);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(finish(refs[i]), RAYC_OK);
    cr_assert_eq(finish(flaky), RAYC_OK);
    stop_driver();

    char file[HARNESS_PATH + 32], flag[HARNESS_PATH + 48];
    snprintf(file, sizeof(file), "%s/trace.json", harness_dir());
    snprintf(flag, sizeof(flag), "--output=%s", file);
    char *out, *err;
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"timeline", flag, NULL}), 0, "%s", err);
    cr_assert(strstr(out, "Trace file written to") && strstr(out, "(14 task runs)"), "%s", out);
    free(out), free(err);

    /* Python's json module parses it; one slice per run (12 inc, flaky's two
     * attempts), each on a named node/worker lane, with a duration. */
    char script[4096];
    snprintf(script, sizeof(script),
             "import json, sys\n"
             "t = json.load(open(sys.argv[1]))\n"
             "ev = t['traceEvents']\n"
             "xs = [e for e in ev if e['ph'] == 'X']\n"
             "names = {}\n"
             "for e in xs:\n"
             "    assert e['dur'] >= 0 and e['ts'] > 0 and e['tid'] > 0 and e['pid'] >= 1, e\n"
             "    names[e['name']] = names.get(e['name'], 0) + 1\n"
             "lanes = {(e['pid'], e['tid']) for e in ev if e['ph'] == 'M' and e['name'] == "
             "'thread_name'}\n"
             "procs = {e['pid']: e['args']['name'] for e in ev if e['ph'] == 'M' and e['name'] == "
             "'process_name'}\n"
             "assert all((e['pid'], e['tid']) in lanes for e in xs), 'a slice without a lane'\n"
             "assert all(p.startswith('node %.12s') for p in procs.values()), procs\n"
             "assert sorted(e['args']['attempt'] for e in xs if e['name'] == 'flaky') == [0, 1]\n"
             "print(len(xs), names.get('inc', 0), names.get('flaky', 0))\n",
             f.r->node_id);
    const char *python =
        access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "/usr/local/bin/python3";
    cr_assert(access(python, X_OK) == 0, "python3 is needed to check the trace");
    char *const py[] = {(char *)python, "-c", script, file, NULL};
    int rc = harness_run(py, &out, &err, 60000);
    cr_assert_eq(rc, 0, "python3: %d: %s", rc, err);
    cr_assert_str_eq(out, "14 12 2\n", "%s", out);
    free(out), free(err);
    char *const tool[] = {(char *)python, "-m", "json.tool", file, NULL};
    rc = harness_run(tool, NULL, NULL, 60000);
    cr_assert_eq(rc, 0, "python3 -m json.tool refused the trace");

    /* A job filter; a bad one. */
    char *body = get_ok(&f, "/api/v0/timeline?job_id=999");
    cr_assert_eq(count(body, "\"ph\":\"X\""), 0, "%s", body);
    free(body);
    cr_assert_eq(get(&f, "/api/v0/timeline?job_id=x", &body), 400);
    free(body);
}

static const char *find_chromium(void)
{
    static const char *const cands[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                                        "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return NULL;
}

Test(task_events, page_shows_tasks_in_headless_chromium)
{
    const char *chromium = find_chromium();
    if (chromium == NULL) {
        cr_assert(getenv("CI") == NULL, "chromium is missing in CI (scripts/install-deps.sh)");
        cr_skip_test("chromium is not installed");
    }
    fixture f;
    start(&f, NULL, "1");
    int64_t x = 41;
    cr_assert_eq(finish(submit_inc(&x)), RAYC_OK);
    cr_assert_eq(finish(submit("fail_msg", NULL, 0, NULL)), RAYC_ETASK);
    stop_driver();
    wait_rows(&f, "/api/v0/tasks", 2);

    char url[256], profile[HARNESS_PATH];
    snprintf(url, sizeof(url), "http://%s/?token=%s", f.addr, f.c.token);
    snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium", harness_dir());
    char *const dump[] = {(char *)chromium,
                          "--headless",
                          "--no-sandbox",
                          "--disable-gpu",
                          "--disable-dev-shm-usage",
                          profile,
                          "--virtual-time-budget=10000",
                          "--dump-dom",
                          url,
                          NULL};
    char *out = NULL, *err = NULL;
    int rc = harness_run(dump, &out, &err, 120000);
    cr_assert_eq(rc, 0, "chromium --dump-dom: %d: %s", rc, err);
    cr_assert(strstr(out, "2 task attempts"), "no task count on the page: %s", out);
    cr_assert(strstr(out, "fail_msg") && strstr(out, "RAYC_ETASK: fail_msg: boom 7"),
              "the page does not show the failure: %s", out);
    cr_assert(strstr(out, "class=\"bar FINISHED\""), "no timeline bar: %s", out);
    free(out), free(err);

    /* A screenshot, kept as a test artifact. */
    char shot[HARNESS_PATH * 2], png[HARNESS_PATH * 2];
    snprintf(png, sizeof(png), "%s/tests/dashboard_tasks.png", harness_build());
    snprintf(shot, sizeof(shot), "--screenshot=%s", png);
    char *const cap[] = {(char *)chromium,
                         "--headless",
                         "--no-sandbox",
                         "--disable-gpu",
                         "--disable-dev-shm-usage",
                         profile,
                         "--virtual-time-budget=10000",
                         "--window-size=1280,2000",
                         shot,
                         url,
                         NULL};
    rc = harness_run(cap, &out, &err, 120000);
    cr_assert_eq(rc, 0, "chromium --screenshot: %d: %s", rc, err);
    struct stat sb;
    cr_assert(stat(png, &sb) == 0 && sb.st_size > 1000, "no screenshot at %s", png);
    free(out), free(err);
}
