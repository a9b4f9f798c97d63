/*
 * test_dashboard.c -- issue 15 on real daemons: the head's HTTP server
 * (token check, state API, /metrics, Ray's job REST API), the `rayc
 * list|summary|memory|job` verbs, and the web page in headless Chromium.
 * The GCS is started by the harness with RAYC_DASHBOARD_PORT in its
 * environment (gcs_main.c reads it), on a free port.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "ids.h"
#include "util.h"

#define SLACK_MS 20000 /* a busy 2-vCPU machine; never a speed test */

TestSuite(dashboard, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

/* ------------------------------------------------------------ helpers */

typedef struct {
    harness_cluster c;
    harness_raylet *r;
    int port;
    char addr[64];
} fixture;

static void start(fixture *f)
{
    f->port = harness_free_port();
    char p[16];
    snprintf(p, sizeof(p), "%d", f->port);
    setenv("RAYC_DASHBOARD_PORT", p, 1);
    harness_cluster_init(&f->c);
    harness_cluster_start(&f->c);
    unsetenv("RAYC_DASHBOARD_PORT");
    f->r = harness_raylet_start(&f->c, NULL);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
}

/* One HTTP/1.1 request with Connection: close. Returns the status; *resp
 * gets the whole reply (headers and body, malloc'd), *body points into it. */
static int http(int port, const char *method, const char *path, const char *extra_headers,
                const char *json, char **resp, char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to dashboard: %s",
              strerror(errno));
    char *req;
    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, extra_headers ? extra_headers : "", json ? strlen(json) : 0,
                     json ? json : "");
    cr_assert(n > 0 && write(fd, req, (size_t)n) == n);
    free(req);
    size_t cap = 1 << 20, len = 0;
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
    *resp = buf;
    *body = sep + 4;
    return status;
}

static char *bearer(const fixture *f, char *out, size_t len)
{
    snprintf(out, len, "Authorization: Bearer %s\r\n", f->c.token);
    return out;
}

/* GET with the token; asserts 200; returns the malloc'd reply, *body in it. */
static char *get_ok(const fixture *f, const char *path, char **body)
{
    char h[256], *resp;
    int st = http(f->port, "GET", path, bearer(f, h, sizeof(h)), NULL, &resp, body);
    cr_assert_eq(st, 200, "GET %s: HTTP %d: %s", path, st, *body);
    return resp;
}

/* The string value of "key" in a flat JSON object (no escapes needed here). */
static bool json_str(const char *json, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (p == NULL)
        return false;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (e == NULL || (size_t)(e - p) >= len)
        return false;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return true;
}

static long json_num(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -999;
}

static void submit(const fixture *f, const char *entrypoint_json, char *id, size_t idlen)
{
    char h[256], *resp, *body, json[1024];
    snprintf(json, sizeof(json), "{\"entrypoint\": %s}", entrypoint_json);
    int st = http(f->port, "POST", "/api/jobs/", bearer(f, h, sizeof(h)), json, &resp, &body);
    cr_assert_eq(st, 200, "submit: HTTP %d %s", st, body);
    cr_assert(json_str(body, "submission_id", id, idlen), "no submission_id in %s", body);
    free(resp);
}

struct status_arg {
    const fixture *f;
    const char *id, *want;
    char last[32];
};

static bool status_is(void *arg)
{
    struct status_arg *a = arg;
    char path[128], h[256], *resp, *body;
    snprintf(path, sizeof(path), "/api/jobs/%s", a->id);
    if (http(a->f->port, "GET", path, bearer(a->f, h, sizeof(h)), NULL, &resp, &body) != 200) {
        free(resp);
        return false;
    }
    json_str(body, "status", a->last, sizeof(a->last));
    free(resp);
    return strcmp(a->last, a->want) == 0;
}

static void wait_status(const fixture *f, const char *id, const char *want)
{
    struct status_arg a = {f, id, want, ""};
    cr_assert(harness_wait_until(status_is, &a, SLACK_MS), "job %s: want %s, have %s", id, want,
              a.last);
}

/* Live (non-zombie) processes whose command line contains needle. */
static int procs_matching(const char *needle)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        size_t k = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[k] = '\0';
        char *rp = strrchr(buf, ')');
        if (rp && rp[1] == ' ' && rp[2] == 'Z')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        k = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        for (size_t i = 0; i < k; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[k] = '\0';
        if (strstr(buf, needle))
            n++;
    }
    closedir(d);
    return n;
}

struct gone_arg {
    const char *needle;
};
static bool gone(void *arg)
{
    return procs_matching(((struct gone_arg *)arg)->needle) == 0;
}

/* ------------------------------------------------------------ tests */

Test(dashboard, every_request_needs_the_token)
{
    fixture f;
    start(&f);
    char *resp, *body;
    const char *paths[] = {"/", "/app.js", "/api/v0/nodes", "/api/jobs/", "/metrics"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        cr_assert_eq(http(f.port, "GET", paths[i], NULL, NULL, &resp, &body), 401, "%s", paths[i]);
        free(resp);
        cr_assert_eq(
            http(f.port, "GET", paths[i], "Authorization: Bearer wrong\r\n", NULL, &resp, &body),
            401, "%s with a wrong token", paths[i]);
        free(resp);
    }
    cr_assert_eq(http(f.port, "POST", "/api/jobs/", NULL, "{\"entrypoint\": \"touch /tmp/x\"}",
                      &resp, &body),
                 401);
    free(resp);
    char path[256];
    snprintf(path, sizeof(path), "/?token=%.63sX", f.c.token);
    cr_assert_eq(http(f.port, "GET", path, NULL, NULL, &resp, &body), 401, "a wrong sign-in");
    free(resp);

    /* A browser signs in once: the cookie (not the token) authorizes. */
    snprintf(path, sizeof(path), "/?token=%s", f.c.token);
    cr_assert_eq(http(f.port, "GET", path, NULL, NULL, &resp, &body), 302);
    char *sc = strstr(resp, "Set-Cookie: ");
    cr_assert(sc != NULL, "no cookie: %s", resp);
    char cookie[256];
    sscanf(sc + 12, "%200[^;]", cookie);
    cr_assert(strstr(cookie, f.c.token) == NULL, "the cookie must not carry the token");
    free(resp);
    char hdr[300];
    snprintf(hdr, sizeof(hdr), "Cookie: %s\r\n", cookie);
    cr_assert_eq(http(f.port, "GET", "/", hdr, NULL, &resp, &body), 200);
    cr_assert(strstr(body, "rayc dashboard") != NULL);
    free(resp);
    cr_assert_eq(http(f.port, "GET", "/", "Cookie: rayc_session=00\r\n", NULL, &resp, &body), 401);
    free(resp);
}

Test(dashboard, state_api_lists_nodes_with_filters_and_limits)
{
    fixture f;
    start(&f);
    harness_raylet *r2 = harness_raylet_start(&f.c, NULL);
    char *body, *resp = get_ok(&f, "/api/v0/nodes", &body);
    cr_assert(strstr(body, f.r->node_id) && strstr(body, r2->node_id), "%s", body);
    cr_assert_eq(json_num(body, "total"), 2, "%s", body);
    cr_assert(strstr(body, "\"state\":\"ALIVE\""));
    free(resp);

    char path[256];
    snprintf(path, sizeof(path), "/api/v0/nodes?filter=node_id%%3D%s", r2->node_id);
    resp = get_ok(&f, path, &body);
    cr_assert_eq(json_num(body, "num_after_filter"), 1, "%s", body);
    cr_assert(strstr(body, r2->node_id) && !strstr(body, f.r->node_id), "%s", body);
    free(resp);
    resp = get_ok(&f, "/api/v0/nodes?filter=state%3DDEAD", &body);
    cr_assert_eq(json_num(body, "num_after_filter"), 0, "%s", body);
    free(resp);
    resp = get_ok(&f, "/api/v0/nodes?limit=1", &body);
    cr_assert_eq(json_num(body, "total"), 2);
    cr_assert_eq(json_num(body, "num_after_filter"), 2);
    cr_assert(!!strstr(body, f.r->node_id) + !!strstr(body, r2->node_id) == 1, "%s", body);
    free(resp);
    resp = get_ok(&f, "/api/v0/nodes?format=table", &body);
    cr_assert(strncmp(body, "NODE_ID", 7) == 0 && strstr(body, r2->node_id), "%s", body);
    free(resp);
    resp = get_ok(&f, "/api/v0/placement_groups", &body);
    cr_assert(strstr(body, "\"result\":[]"), "%s", body);
    free(resp);

    char h[256];
    cr_assert_eq(http(f.port, "GET", "/api/v0/nodes?filter=colour%3Dred", bearer(&f, h, sizeof(h)),
                      NULL, &resp, &body),
                 400);
    cr_assert(strstr(body, "colour"), "%s", body);
    free(resp);
    resp = get_ok(&f, "/api/v0/tasks", &body); /* no task ran: empty (test_task_events.c) */
    cr_assert(strstr(body, "\"result\":[]") && strstr(body, "\"dropped\":{\"evicted\":0"), "%s",
              body);
    free(resp);
    cr_assert_eq(http(f.port, "GET", "/api/v0/nope", bearer(&f, h, sizeof(h)), NULL, &resp, &body),
                 404);
    free(resp);
}

/* Prometheus text format 0.0.4, checked line by line. */
/* Register an actor of job 1 straight with the GCS (no worker places it:
 * it stays PENDING_CREATION), then kill it when kill is set. */
static void register_actor(const fixture *f, const char *cls, const char *name, bool kill)
{
    int code;
    char err[256];
    bconn *b = harness_connect(&f->c, NULL, &code, err, sizeof(err));
    cr_assert_not_null(b, "%s", err);
    actor_id_t id = actor_id_random(job_id_from_int(1));
    Rpc__ActorInfo a = RPC__ACTOR_INFO__INIT;
    a.actor_id.data = id.b;
    a.actor_id.len = ACTOR_ID_SIZE;
    a.job_id = 1;
    a.class_name = (char *)cls;
    a.name = (char *)name;
    Rpc__RegisterActorRequest req = RPC__REGISTER_ACTOR_REQUEST__INIT;
    req.actor = &a;
    ProtobufCMessage *m;
    cr_assert_eq(
        bconn_call(b, MSG_REGISTER_ACTOR_REQ, &req.base, MSG_REGISTER_ACTOR_REPLY, &m, 5000), 0);
    msg_free(m);
    if (kill) {
        Rpc__KillActorRequest k = RPC__KILL_ACTOR_REQUEST__INIT;
        k.actor_id = a.actor_id;
        k.no_restart = true;
        cr_assert_eq(bconn_call(b, MSG_KILL_ACTOR_REQ, &k.base, MSG_KILL_ACTOR_REPLY, &m, 5000), 0);
        msg_free(m);
    }
    bconn_close(b);
}

Test(dashboard, state_api_lists_actors_from_the_gcs_table)
{
    fixture f;
    start(&f);
    register_actor(&f, "Account", "alice", false);
    register_actor(&f, "Ledger", "", true);
    char *body, *resp = get_ok(&f, "/api/v0/actors", &body);
    cr_assert_eq(json_num(body, "total"), 2, "%s", body);
    cr_assert(strstr(body, "\"class_name\":\"Account\"") && strstr(body, "\"name\":\"alice\""),
              "%s", body);
    cr_assert(strstr(body, "killed by rayc_actor_kill"), "%s", body);
    free(resp);
    resp = get_ok(&f, "/api/v0/actors?filter=state%3DDEAD", &body);
    cr_assert_eq(json_num(body, "num_after_filter"), 1, "%s", body);
    cr_assert(strstr(body, "Ledger") && !strstr(body, "Account"), "%s", body);
    free(resp);
}

static void check_prometheus(const char *text)
{
    char *copy = strdup(text), *save = NULL;
    int samples = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP rayc_", 12) == 0 || strncmp(line, "# TYPE rayc_", 12) == 0)
            continue;
        cr_assert(line[0] != '#', "bad comment line: %s", line);
        cr_assert(strncmp(line, "rayc_", 5) == 0, "metric without the rayc_ prefix: %s", line);
        const char *p = line;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
            p++;
        if (*p == '{') {
            const char *e = strchr(p, '}');
            cr_assert(e != NULL, "unclosed labels: %s", line);
            for (const char *q = p + 1; q < e;) {
                while (isalnum((unsigned char)*q) || *q == '_')
                    q++;
                cr_assert(q[0] == '=' && q[1] == '"', "bad label: %s", line);
                q = strchr(q + 2, '"');
                cr_assert(q != NULL && q < e + 1, "bad label value: %s", line);
                q++;
                if (*q == ',')
                    q++;
            }
            p = e + 1;
        }
        cr_assert(*p == ' ', "no value: %s", line);
        char *end;
        strtod(p + 1, &end);
        cr_assert(end != p + 1 && *end == '\0', "bad value: %s", line);
        samples++;
    }
    cr_assert(samples > 10);
    free(copy);
}

/* The value of the sample line starting with sample_prefix (never a HELP
 * or TYPE line: those start with '#'). */
static bool has_sample(const char *text, const char *sample_prefix, double *value)
{
    char pat[256];
    snprintf(pat, sizeof(pat), "\n%s", sample_prefix);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return false;
    *value = strtod(p + strlen(pat), NULL);
    return true;
}

Test(dashboard, metrics_are_prometheus_text)
{
    fixture f;
    start(&f);
    char *body, *resp = get_ok(&f, "/metrics", &body);
    cr_assert(strstr(resp, "Content-Type: text/plain; version=0.0.4"), "%s", resp);
    check_prometheus(body);
    double v;
    cr_assert(has_sample(body, "rayc_gcs_nodes{state=\"ALIVE\"} ", &v) && v == 1, "%s", body);
    cr_assert(has_sample(body, "rayc_gcs_requests_total{type=\"REGISTER_NODE_REQ\"} ", &v) &&
                  v >= 1,
              "%s", body);
    cr_assert(has_sample(body, "rayc_gcs_storage_duration_seconds_count ", &v) && v >= 1, "%s",
              body);
    cr_assert(has_sample(body, "rayc_gcs_object_directory_objects ", &v));
    cr_assert(has_sample(body, "rayc_gcs_heartbeat_timeouts ", &v) && v == 0);
    cr_assert(has_sample(body, "rayc_actors{state=\"ALIVE\"} ", &v) && v == 0, "%s", body);
    cr_assert(has_sample(body, "rayc_tasks{state=\"RUNNING\"} ", &v) && v == 0, "%s", body);
    char node[200];
    snprintf(node, sizeof(node), "rayc_node_resource{node=\"%s\",resource=\"CPU\",kind=\"total\"} ",
             f.r->node_id);
    cr_assert(has_sample(body, node, &v) && v == 1, "%s", body);
    free(resp);

    /* A node that stops heartbeating shows up as DEAD and as a timeout. */
    harness_kill9(f.r->proc);
    bool dead = false;
    for (int i = 0; i < SLACK_MS / 100 && !dead; i++) {
        dead = harness_count_nodes(&f.c, RPC__NODE_STATE__NODE_DEAD) == 1;
        if (!dead)
            usleep(100000);
    }
    cr_assert(dead);
    resp = get_ok(&f, "/metrics", &body);
    cr_assert(has_sample(body, "rayc_gcs_nodes{state=\"DEAD\"} ", &v) && v == 1, "%s", body);
    cr_assert(has_sample(body, "rayc_gcs_heartbeat_timeouts ", &v) && v == 1, "%s", body);
    free(resp);
}

/* A raylet's own /metrics (--metrics-port): the token is needed, the text
 * parses, and after a driver ran the hello DAG (three tasks) its counters
 * show the work: tasks received and done, workers started, the store. */
Test(dashboard, raylet_metrics_port_serves_its_counters)
{
    fixture f;
    f.port = harness_free_port();
    char p[16];
    snprintf(p, sizeof(p), "%d", f.port);
    setenv("RAYC_DASHBOARD_PORT", p, 1);
    harness_cluster_init(&f.c);
    harness_cluster_start(&f.c);
    unsetenv("RAYC_DASHBOARD_PORT");
    int mport = harness_free_port();
    char flag[64];
    snprintf(flag, sizeof(flag), "--metrics-port=%d", mport);
    const char *extra[] = {flag, "--num-cpus=2", NULL};
    f.r = harness_raylet_start(&f.c, extra);

    char *resp, *body, h[256];
    cr_assert_eq(http(mport, "GET", "/metrics", NULL, NULL, &resp, &body), 401, "%s", resp);
    free(resp);
    cr_assert_eq(http(mport, "GET", "/other", bearer(&f, h, sizeof(h)), NULL, &resp, &body), 404,
                 "%s", resp);
    free(resp);

    setenv("RAYC_ADDRESS", f.c.address, 1);
    setenv("RAYC_TOKEN_FILE", f.c.token_file, 1);
    /* The raylet counts the tasks it is handed: tasks on the direct path go
     * from the driver to a leased worker (docs/tasks.md), so this driver
     * sends its three through the raylet. */
    setenv("RAYC_DIRECT_TASK_PATH", "0", 1);
    char hello[HARNESS_PATH + 32], *out, *err;
    snprintf(hello, sizeof(hello), "%s/examples/hello", harness_build());
    char *argv[] = {hello, NULL};
    int rc = harness_run(argv, &out, &err, 120000);
    unsetenv("RAYC_DIRECT_TASK_PATH");
    unsetenv("RAYC_ADDRESS");
    unsetenv("RAYC_TOKEN_FILE");
    cr_assert_eq(rc, 0, "hello: exit %d: %s %s", rc, out, err);
    free(out);
    free(err);

    cr_assert_eq(http(mport, "GET", "/metrics", bearer(&f, h, sizeof(h)), NULL, &resp, &body), 200,
                 "%s", resp);
    cr_assert(strstr(resp, "Content-Type: text/plain; version=0.0.4"), "%s", resp);
    check_prometheus(body);
    char sample[256];
    double v;
    const char *node = f.r->node_id;
#define SAMPLE(fmt) (snprintf(sample, sizeof(sample), fmt, node), has_sample(body, sample, &v))
    cr_assert(SAMPLE("rayc_raylet_tasks_received_total{node=\"%s\",source=\"local\"} ") && v >= 3,
              "%s", body);
    cr_assert(SAMPLE("rayc_raylet_tasks_done_total{node=\"%s\",status=\"ok\"} ") && v >= 3, "%s",
              body);
    cr_assert(SAMPLE("rayc_raylet_tasks_done_total{node=\"%s\",status=\"failed\"} ") && v == 0,
              "%s", body);
    cr_assert(SAMPLE("rayc_raylet_workers_started_total{node=\"%s\"} ") && v >= 1, "%s", body);
    cr_assert(SAMPLE("rayc_raylet_object_store_bytes{node=\"%s\",kind=\"capacity\"} ") && v > 0,
              "%s", body);
    cr_assert(SAMPLE("rayc_raylet_transfer_bytes_total{node=\"%s\",direction=\"in\"} ") && v == 0,
              "%s", body);
    cr_assert(SAMPLE("rayc_raylet_object_spills_total{node=\"%s\"} ") && v == 0, "%s", body);
    cr_assert(SAMPLE("rayc_raylet_resource{node=\"%s\",resource=\"CPU\",kind=\"total\"} ") &&
                  v == 2,
              "%s", body);
#undef SAMPLE
    free(resp);
}

Test(dashboard, job_lifecycle_succeeded_failed_stopped)
{
    fixture f;
    start(&f);
    char ok[64], bad[64], slow[64], *body, *resp;

    submit(&f, "\"echo hello from $RAYC_JOB_SUBMISSION_ID at ${RAYC_ADDRESS}; echo oops >&2\"", ok,
           sizeof(ok));
    wait_status(&f, ok, "SUCCEEDED");
    char path[160];
    snprintf(path, sizeof(path), "/api/jobs/%s/logs", ok);
    resp = get_ok(&f, path, &body);
    char want[160];
    snprintf(want, sizeof(want), "hello from %s at %s", ok, f.c.address);
    cr_assert(strstr(body, want) && strstr(body, "oops"), "logs: %s", body);
    free(resp);

    submit(&f, "\"exit 3\"", bad, sizeof(bad));
    wait_status(&f, bad, "FAILED");
    snprintf(path, sizeof(path), "/api/jobs/%s", bad);
    resp = get_ok(&f, path, &body);
    cr_assert_eq(json_num(body, "driver_exit_code"), 3, "%s", body);
    free(resp);

    /* A job whose entrypoint has a child of its own: stop kills the group. */
    submit(&f, "\"sleep 3001 & sleep 3002; echo not reached\"", slow, sizeof(slow));
    wait_status(&f, slow, "RUNNING");
    struct gone_arg g1 = {"sleep 3001"}, g2 = {"sleep 3002"};
    for (int i = 0;
         i < 100 && (procs_matching("sleep 3001") == 0 || procs_matching("sleep 3002") == 0); i++)
        usleep(50000);
    /* (the entrypoint's sh counts too: its command line names both) */
    cr_assert(procs_matching("sleep 3001") >= 1 && procs_matching("sleep 3002") >= 1);
    snprintf(path, sizeof(path), "/api/jobs/%s/stop", slow);
    char h[256];
    cr_assert_eq(http(f.port, "POST", path, bearer(&f, h, sizeof(h)), NULL, &resp, &body), 200);
    cr_assert(strstr(body, "\"stopped\":true"), "%s", body);
    free(resp);
    wait_status(&f, slow, "STOPPED");
    cr_assert(harness_wait_until(gone, &g1, SLACK_MS), "sleep 3001 survived the stop");
    cr_assert(harness_wait_until(gone, &g2, SLACK_MS), "sleep 3002 survived the stop");

    /* A failed job's leftover children are gone too. */
    char bg[64];
    submit(&f, "\"sleep 3003 & exit 7\"", bg, sizeof(bg));
    wait_status(&f, bg, "FAILED");
    struct gone_arg g3 = {"sleep 3003"};
    cr_assert(harness_wait_until(gone, &g3, SLACK_MS), "a failed job left a process behind");

    resp = get_ok(&f, "/api/jobs/", &body);
    cr_assert(strstr(body, ok) && strstr(body, bad) && strstr(body, slow), "%s", body);
    free(resp);
    resp = get_ok(&f, "/api/v0/jobs?filter=status%3DSTOPPED", &body);
    cr_assert_eq(json_num(body, "num_after_filter"), 1, "%s", body);
    cr_assert(strstr(body, slow), "%s", body);
    free(resp);

    cr_assert_eq(
        http(f.port, "POST", "/api/jobs/", bearer(&f, h, sizeof(h)), "{\"nope\": 1}", &resp, &body),
        400);
    free(resp);
    cr_assert_eq(http(f.port, "GET", "/api/jobs/raycsubmit_0000/logs", bearer(&f, h, sizeof(h)),
                      NULL, &resp, &body),
                 404);
    free(resp);
}

/* Submitted jobs are persisted: a GCS killed with SIGKILL and restarted
 * lists them again; one that was running then is no child of the new GCS:
 * its processes are killed and it is FAILED, so nothing runs unsupervised. */
Test(dashboard, submitted_jobs_survive_a_gcs_restart)
{
    fixture f;
    start(&f);
    char ok[64], slow[64], *body, *resp;
    submit(&f, "\"echo kept across restarts\"", ok, sizeof(ok));
    wait_status(&f, ok, "SUCCEEDED");
    submit(&f, "\"sleep 3006\"", slow, sizeof(slow));
    wait_status(&f, slow, "RUNNING");
    for (int i = 0; i < 100 && procs_matching("sleep 3006") == 0; i++)
        usleep(50000);
    cr_assert(procs_matching("sleep 3006") >= 1);

    harness_kill9(f.c.gcs);
    char p[16];
    snprintf(p, sizeof(p), "%d", f.port);
    setenv("RAYC_DASHBOARD_PORT", p, 1);
    harness_gcs_restart(&f.c);
    unsetenv("RAYC_DASHBOARD_PORT");

    wait_status(&f, ok, "SUCCEEDED");
    wait_status(&f, slow, "FAILED");
    char path[160];
    snprintf(path, sizeof(path), "/api/jobs/%s", slow);
    resp = get_ok(&f, path, &body);
    cr_assert(strstr(body, "the GCS restarted while it ran"), "%s", body);
    free(resp);
    snprintf(path, sizeof(path), "/api/jobs/%s/logs", ok);
    resp = get_ok(&f, path, &body);
    cr_assert(strstr(body, "kept across restarts"), "%s", body);
    free(resp);
    struct gone_arg g = {"sleep 3006"};
    cr_assert(harness_wait_until(gone, &g, SLACK_MS), "the running job's process survived");
    resp = get_ok(&f, "/api/v0/jobs?filter=type%3DSUBMISSION", &body);
    cr_assert_eq(json_num(body, "num_after_filter"), 2, "%s", body);
    free(resp);
}

/* ------------------------------------------------------------ CLI */

static int rayc(const fixture *f, char **out, char **err, const char *const args[])
{
    return harness_rayc_dashboard(f->addr, f->c.token_file, out, err, args);
}

Test(dashboard, cli_list_summary_memory_and_jobs)
{
    fixture f;
    start(&f);
    char *out, *err;
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"list", "nodes", NULL}), 0, "%s", err);
    cr_assert(strncmp(out, "NODE_ID", 7) == 0 && strstr(out, f.r->node_id), "%s", out);
    free(out), free(err);
    cr_assert_eq(
        rayc(&f, &out, &err,
             (const char *[]){"list", "nodes", "--format=json", "--filter=state=ALIVE", NULL}),
        0, "%s", err);
    cr_assert(out[0] == '{' && strstr(out, f.r->node_id), "%s", out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"list", "objects", NULL}), 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"summary", "objects", NULL}), 0, "%s", err);
    cr_assert(strstr(out, "TOTAL"), "%s", out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"memory", "--group-by=owner", NULL}), 0,
                 "%s", err);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"list", "tasks", NULL}), 0, "%s", err);
    cr_assert(strncmp(out, "TASK_ID", 7) == 0, "%s", out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"summary", "nodes", NULL}), 2);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"list", "nodes", "--limit=x", NULL}), 1);
    free(out), free(err);

    /* job submit waits, streams the logs and reports the end, like Ray. */
    char wd[HARNESS_PATH];
    snprintf(wd, sizeof(wd), "%s/wd", harness_dir());
    mkdir(wd, 0700);
    char wdflag[HARNESS_PATH + 20];
    snprintf(wdflag, sizeof(wdflag), "--working-dir=%s", wd);
    cr_assert_eq(rayc(&f, &out, &err,
                      (const char *[]){"job", "submit", wdflag, "--", "pwd;", "echo", "hi", NULL}),
                 0, "%s", err);
    cr_assert(strstr(out, "Job 'raycsubmit_") && strstr(out, "' submitted"), "%s", out);
    /* The working dir was uploaded: the job runs in its unpacked copy. */
    cr_assert(strstr(out, "/working_dirs/raycsubmit_") && strstr(out, "hi\n") &&
                  strstr(out, "' succeeded"),
              "%s", out);
    free(out), free(err);

    cr_assert_eq(rayc(&f, &out, &err,
                      (const char *[]){"job", "submit", "--no-wait", "--", "sleep", "3004", NULL}),
                 0, "%s", err);
    char id[64];
    cr_assert(sscanf(out, "Job '%63[^']' submitted", id) == 1, "%s", out);
    free(out), free(err);
    wait_status(&f, id, "RUNNING");
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"job", "status", id, NULL}), 0, "%s", err);
    cr_assert(strstr(out, "RUNNING"), "%s", out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"job", "list", NULL}), 0, "%s", err);
    cr_assert(strstr(out, id) && strstr(out, "SUBMISSION"), "%s", out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"job", "stop", id, NULL}), 0, "%s", err);
    cr_assert(strstr(out, "stopped"), "%s", out);
    free(out), free(err);
    struct gone_arg g = {"sleep 3004"};
    cr_assert(harness_wait_until(gone, &g, SLACK_MS));
    cr_assert_eq(
        rayc(&f, &out, &err, (const char *[]){"list", "jobs", "--filter=status=STOPPED", NULL}), 0,
        "%s", err);
    cr_assert(strstr(out, id), "%s", out);
    free(out), free(err);

    cr_assert_eq(rayc(&f, &out, &err,
                      (const char *[]){"job", "submit", "--", "echo", "bye;", "exit", "4", NULL}),
                 1);
    cr_assert(strstr(out, "bye") && strstr(out, "' failed"), "%s", out);
    free(out), free(err);
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"job", "status", "raycsubmit_x", NULL}), 1);
    free(out), free(err);

    /* A wrong token is refused with one line. */
    const char *a[] = {"list", "--address=", "--token=nope", "nodes", NULL};
    char addr[96];
    snprintf(addr, sizeof(addr), "--address=%s", f.addr);
    a[1] = addr;
    cr_assert_eq(harness_rayc(&out, &err, a), 1);
    cr_assert(strstr(err, "bad token"), "%s", err);
    free(out), free(err);
}

/* ------------------------------------------------------------ browser */

static const char *find_chromium(void)
{
    static const char *const cands[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                                        "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return NULL;
}

/* rayc job submit --working-dir: the directory is packed, uploaded in
 * pieces through the dashboard (a code package named by its SHA-256), and
 * unpacked as the job's cwd on the head: the files are there even though
 * the original is gone by the time the job reads them. A package whose
 * bytes do not match its name, and a job naming a package never uploaded,
 * are refused. */
Test(dashboard, job_working_dir_is_uploaded_and_unpacked)
{
    fixture f;
    start(&f);
    char wd[HARNESS_PATH], file[HARNESS_PATH + 32], cmd[3 * HARNESS_PATH];
    snprintf(wd, sizeof(wd), "%s/upload-me", harness_dir());
    snprintf(file, sizeof(file), "%s/sub", wd);
    cr_assert(mkdir_p(file, 0700) == 0);
    snprintf(file, sizeof(file), "%s/data.txt", wd);
    cr_assert(write_file(file, "hello-from-the-working-dir\n", 27, 0600) == 0);
    snprintf(file, sizeof(file), "%s/sub/more.txt", wd);
    /* 300 KB: several pieces of the upload */
    size_t big = 300000;
    char *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)('a' + (i * 7919) % 26);
    blob[big - 1] = '\n';
    cr_assert(write_file(file, blob, big, 0600) == 0);
    free(blob);
    char wdflag[HARNESS_PATH + 20];
    snprintf(wdflag, sizeof(wdflag), "--working-dir=%s", wd);
    /* The job waits for the original to go, then reads its copy. */
    snprintf(cmd, sizeof(cmd),
             "while [ -e %s ]; do sleep 0.1; done; cat data.txt; wc -c < sub/more.txt; pwd", wd);
    char *out, *err;
    cr_assert_eq(rayc(&f, &out, &err,
                      (const char *[]){"job", "submit", "--no-wait", wdflag, "--", cmd, NULL}),
                 0, "%s", err);
    char id[64];
    cr_assert(sscanf(out, "Job '%63[^']' submitted", id) == 1, "%s", out);
    free(out), free(err);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", wd);
    cr_assert_eq(system(cmd), 0);
    wait_status(&f, id, "SUCCEEDED");
    cr_assert_eq(rayc(&f, &out, &err, (const char *[]){"job", "logs", id, NULL}), 0, "%s", err);
    cr_assert(strstr(out, "hello-from-the-working-dir\n300000\n"), "%s", out);
    char where[HARNESS_PATH + 96];
    snprintf(where, sizeof(where), "/working_dirs/%s\n", id);
    cr_assert(strstr(out, where), "%s", out);
    free(out), free(err);

    /* Bytes that do not hash to the name are refused at the end. */
    char h[256], *resp, *body;
    const char *fake = "/api/packages/"
                       "0000000000000000000000000000000000000000000000000000000000000000";
    char path[200];
    snprintf(path, sizeof(path), "%s?offset=0", fake);
    cr_assert_eq(http(f.port, "POST", path, bearer(&f, h, sizeof(h)), "{}", &resp, &body), 200,
                 "%s", resp);
    free(resp);
    snprintf(path, sizeof(path), "%s?done=1", fake);
    cr_assert_eq(http(f.port, "POST", path, bearer(&f, h, sizeof(h)), NULL, &resp, &body), 400,
                 "%s", resp);
    cr_assert(strstr(body, "hash to"), "%s", body);
    free(resp);
    cr_assert_eq(http(f.port, "GET", fake, bearer(&f, h, sizeof(h)), NULL, &resp, &body), 200, "%s",
                 resp);
    cr_assert(strstr(body, "\"exists\":false"), "%s", body);
    free(resp);
    /* A job naming a package that was never uploaded. */
    cr_assert_eq(http(f.port, "POST", "/api/jobs/", bearer(&f, h, sizeof(h)),
                      "{\"entrypoint\": \"true\", \"runtime_env\": {\"working_dir\": "
                      "\"gcs://_rayc_pkg_"
                      "1111111111111111111111111111111111111111111111111111111111111111.tar.gz\"}}",
                      &resp, &body),
                 400, "%s", resp);
    cr_assert(strstr(body, "not uploaded"), "%s", body);
    free(resp);
}

Test(dashboard, page_shows_nodes_in_headless_chromium)
{
    const char *chromium = find_chromium();
    if (chromium == NULL) {
        cr_assert(getenv("CI") == NULL, "chromium is missing in CI (scripts/install-deps.sh)");
        cr_skip_test("chromium is not installed");
    }
    fixture f;
    start(&f);
    char url[256], profile[HARNESS_PATH], shot[HARNESS_PATH * 2];
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
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.12s", f.r->node_id);
    cr_assert(strstr(out, prefix) != NULL, "the page does not show node %s: %s", prefix, out);
    cr_assert(strstr(out, "ALIVE") && strstr(out, "1 alive node"), "%s", out);
    free(out), free(err);

    snprintf(shot, sizeof(shot), "--screenshot=%s/tests/dashboard.png", harness_build());
    char *const cap[] = {(char *)chromium,
                         "--headless",
                         "--no-sandbox",
                         "--disable-gpu",
                         "--disable-dev-shm-usage",
                         profile,
                         "--virtual-time-budget=10000",
                         "--window-size=1280,900",
                         shot,
                         url,
                         NULL};
    rc = harness_run(cap, &out, &err, 120000);
    cr_assert_eq(rc, 0, "chromium --screenshot: %d: %s", rc, err);
    struct stat sb;
    char png[HARNESS_PATH * 2];
    snprintf(png, sizeof(png), "%s/tests/dashboard.png", harness_build());
    cr_assert(stat(png, &sb) == 0 && sb.st_size > 1000, "no screenshot at %s", png);
    free(out), free(err);
}
