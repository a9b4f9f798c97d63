/*
 * test_node_logs.c -- `rayc logs` (issue 15) on a cluster of two raylets:
 * a node's log files are listed and printed from another process that only
 * knows the dashboard's address and the token; the head relays each
 * request to that node's raylet over its GCS connection. Big files come in
 * pieces, --follow prints what a file gains, bad names are refused, and
 * each node answers with its own files.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define SLACK_MS 20000 /* a busy 2-vCPU machine; never a speed test */

TestSuite(node_logs, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

typedef struct {
    harness_cluster c;
    harness_raylet *a, *b;
    char addr[64];
} fixture;

static void start(fixture *f)
{
    int port = harness_free_port();
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    setenv("RAYC_DASHBOARD_PORT", p, 1);
    harness_cluster_init(&f->c);
    harness_cluster_start(&f->c);
    unsetenv("RAYC_DASHBOARD_PORT");
    const char *extra[] = {"--num-cpus=1", NULL};
    f->a = harness_raylet_start(&f->c, extra);
    f->b = harness_raylet_start(&f->c, extra);
    snprintf(f->addr, sizeof(f->addr), "--address=127.0.0.1:%d", port);
}

/* rayc logs ARGS... against the fixture's dashboard; exit code. */
static int logs(const fixture *f, char **out, char **err, const char *const args[])
{
    char tok[HARNESS_PATH + 16];
    snprintf(tok, sizeof(tok), "--token-file=%s", f->c.token_file);
    const char *a[16] = {"logs", f->addr, tok};
    int n = 3;
    for (int i = 0; args[i] && n < 15; i++)
        a[n++] = args[i];
    a[n] = NULL;
    return harness_rayc(out, err, a);
}

static char *node_flag(const harness_raylet *r, char *buf, size_t len)
{
    snprintf(buf, len, "--node-id=%.10s", r->node_id); /* a prefix is enough */
    return buf;
}

Test(node_logs, list_print_and_follow_a_nodes_logs)
{
    fixture f;
    start(&f);
    char nb[64], na[64], *out, *err;
    node_flag(f.b, nb, sizeof(nb));
    node_flag(f.a, na, sizeof(na));

    /* A file of 600,000 bytes (several pieces) in node b's logs. */
    char path[HARNESS_PATH + 64];
    snprintf(path, sizeof(path), "%s/logs/marker.log", f.b->session);
    size_t big = 600000;
    char *blob = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        blob[i] = i % 100 == 99 ? '\n' : (char)('a' + (i * 31) % 26);
    blob[big] = '\0';
    cr_assert(write_file(path, blob, big, 0600) == 0);

    /* The list: b's own files, with the marker and its raylet log. */
    cr_assert_eq(logs(&f, &out, &err, (const char *const[]){nb, NULL}), 0, "%s", err);
    cr_assert(strstr(out, "marker.log") && strstr(out, "600000") && strstr(out, "raylet.out"), "%s",
              out);
    free(out), free(err);
    cr_assert_eq(logs(&f, &out, &err, (const char *const[]){na, NULL}), 0, "%s", err);
    cr_assert(strstr(out, "raylet.out") && !strstr(out, "marker.log"), "a's files: %s", out);
    free(out), free(err);

    /* The whole file, byte for byte, from pieces. */
    cr_assert_eq(logs(&f, &out, &err, (const char *const[]){nb, "marker.log", NULL}), 0, "%s", err);
    cr_assert_eq(strlen(out), big);
    cr_assert(strcmp(out, blob) == 0, "the printed file differs");
    free(out), free(err);
    free(blob);

    /* Each raylet's log is its own: b's names b. */
    cr_assert_eq(logs(&f, &out, &err, (const char *const[]){nb, "raylet.out", NULL}), 0, "%s", err);
    cr_assert(strstr(out, f.b->node_id) && !strstr(out, f.a->node_id), "%s", out);
    free(out), free(err);

    /* Names outside the logs directory, and files that are not there. */
    cr_assert_eq(logs(&f, &out, &err, (const char *const[]){nb, "../raylet.ready", NULL}), 1);
    cr_assert(strstr(err, "plain name"), "%s", err);
    free(out), free(err);
    cr_assert_eq(logs(&f, &out, &err, (const char *const[]){nb, "nope.log", NULL}), 1);
    cr_assert(strstr(err, "no such log file"), "%s", err);
    free(out), free(err);
    cr_assert_eq(logs(&f, &out, &err, (const char *const[]){"--node-id=ffffffffff", NULL}), 1);
    cr_assert(strstr(err, "no alive node"), "%s", err);
    free(out), free(err);

    /* --follow prints what the file gains. */
    snprintf(path, sizeof(path), "%s/logs/grow.log", f.b->session);
    cr_assert(write_file(path, "first line\n", 11, 0600) == 0);
    char bin[HARNESS_PATH + 32], tok[HARNESS_PATH + 16], got[HARNESS_PATH + 32];
    snprintf(bin, sizeof(bin), "%s/bin/rayc_state", harness_build());
    snprintf(tok, sizeof(tok), "--token-file=%s", f.c.token_file);
    snprintf(got, sizeof(got), "%s/follow.out", harness_dir());
    char *argv[] = {bin, "logs", f.addr, tok, nb, "--follow", "grow.log", NULL};
    harness_proc *p = harness_spawn("follow", got, argv);
    for (int i = 0; i < SLACK_MS / 100 && !harness_file_contains(got, "first line"); i++)
        usleep(100000);
    cr_assert(harness_file_contains(got, "first line"));
    FILE *fp = fopen(path, "a");
    cr_assert(fp != NULL);
    fputs("second line\n", fp);
    fclose(fp);
    for (int i = 0; i < SLACK_MS / 100 && !harness_file_contains(got, "second line"); i++)
        usleep(100000);
    cr_assert(harness_file_contains(got, "first line\nsecond line\n"));
    cr_assert(harness_alive(p), "--follow keeps going");
    harness_kill9(p);
}
