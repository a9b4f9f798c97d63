/*
 * harness.h -- real daemons for integration tests (criterion).
 *
 * Each test gets a private temp dir (harness_dir()) and starts real processes
 * in it: redis-server on a Unix socket, gcs_server on a free loopback port,
 * raylets each with their own session dir, and the `rayc` CLI with a private
 * temp dir. Every child runs in its own session and process group, carries
 * RAYC_HARNESS_TAG=<its test dir> in its environment, and its pid is appended
 * to <test dir>/pids.
 *
 * Cleanup happens three ways, so nothing outlives a test:
 *   - the fixture's .fini (harness_teardown) stops everything, checks /proc
 *     that nothing of ours survives, and removes the temp dir;
 *   - if the test crashed or timed out (.fini never ran), a criterion
 *     ReportHook(POST_FINI) in the runner kills whatever that test's pid file
 *     and tag list, and removes its dir;
 *   - ReportHook(POST_ALL) sweeps what is left and removes the root.
 * Use it as:
 *
 *     TestSuite(cluster, .init = harness_setup, .fini = harness_teardown, .timeout = 120);
 *
 * Helpers that start things assert (cr_assert) with the daemon's own reason
 * when it fails, so tests read as a list of steps. Nothing here sleeps as an
 * assertion: waits poll a condition up to a timeout.
 *
 * Sanitizers: harness_setup points ASAN_OPTIONS / UBSAN_OPTIONS log_path at
 * <test dir>/san/ for every process the test starts (daemons, workers, the
 * CLI's daemons, an embedded cluster), so a report of any of them is a file
 * there; harness_teardown fails the test with the reports' first lines and
 * keeps a copy in <build>/sanitizer-reports/. Exit statuses are checked too.
 *
 * Environment: RAYC_BUILD (build dir, default "build"), RAYC_SOURCE_DIR
 * (repo root for scripts/rayc, default: the build dir's parent),
 * RAYC_HARNESS_KEEP=1 keeps temp dirs for post-mortems.
 * Thread-safety: none; a test is one thread.
 */
#ifndef RAYC_HARNESS_H
#define RAYC_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "auth.h"
#include "bconn.h"
#include "ids.h"

#define HARNESS_MAX_ARGS    48
#define HARNESS_MAX_RAYLETS 8
#define HARNESS_PATH        512

/* A process this test started. */
typedef struct {
    pid_t pid;
    char name[32];
    char out[HARNESS_PATH];           /* its stdout + stderr */
    char *argv[HARNESS_MAX_ARGS + 1]; /* owned copies, for restarts */
    bool reaped;
    int status;    /* wait status once reaped */
    bool any_exit; /* the test makes it fail: teardown ignores how it exited */
} harness_proc;

typedef struct {
    char session[HARNESS_PATH];
    char token_file[HARNESS_PATH];
    char socket[HARNESS_PATH]; /* sockets/raylet */
    char node_id[ID_HEX_MAX];  /* from raylet.ready */
    harness_proc *proc;
} harness_raylet;

/* A cluster made of raw daemons (no CLI). Fill the knobs, then start. */
typedef struct {
    /* knobs (harness_cluster_init sets defaults) */
    int heartbeat_interval_ms; /* 200 */
    int health_timeout_ms;     /* 2000 */
    /* filled by harness_cluster_start */
    char dir[HARNESS_PATH]; /* head session dir */
    char token[AUTH_TOKEN_LEN + 1];
    char token_file[HARNESS_PATH];
    char redis_socket[HARNESS_PATH];
    char redis_password_file[HARNESS_PATH];
    int port;
    char address[64]; /* 127.0.0.1:port */
    harness_proc *redis, *gcs;
    harness_raylet raylets[HARNESS_MAX_RAYLETS];
    int nraylets;
} harness_cluster;

/* ------------------------------------------------------------ lifecycle */

/* Fixture init: the test's temp dir. */
void harness_setup(void);
/* Fixture fini: harness_stop_all(), then fail the test when a process
 * survived, when any process of the test left a sanitizer report (see
 * "Sanitizers" above), when a daemon crashed during the test, or when one
 * did not exit 0 within a few seconds of SIGTERM (set p->any_exit for a
 * process the test breaks on purpose). Removes the dir either way. */
void harness_teardown(void);
/* Record that this test's teardown failed (printf-style reason). Use it in
 * a .fini instead of cr_assert, which criterion ignores there: the binary
 * prints these after the run and exits 1. */
void harness_fail_teardown(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* SIGTERM every recorded process group (newest first), SIGKILL what is left
 * after a few seconds, and kill any process still carrying our tag. */
void harness_stop_all(void);
/* Number of live (non-zombie) processes of this test, found in /proc by tag,
 * command line or pid file; their descriptions go into buf. */
int harness_survivors(char *buf, size_t len);

/* Sanitizer reports written so far by processes of this test (files under
 * <dir>/san); their names and first lines go into msg. */
int harness_sanitizer_reports(char *msg, size_t len);
/* Drop them (for the harness's own test of this plumbing only). */
void harness_sanitizer_forget(void);

const char *harness_dir(void);
const char *harness_build(void);
/* Absolute path of scripts/rayc. */
const char *harness_rayc_script(void);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int harness_free_port(void);

/* Slow tests (names start with slow_: the 200k-task stress, 1 GiB
 * transfers, the 2,000-task node kill) call this first: it skips the test
 * unless RAYC_TEST_SLOW=1 (`make test-slow` sets it and runs only them), so
 * `make test` stays quick. */
void harness_slow_test(void);

/* ------------------------------------------------------------ processes */

/* Start argv (argv[0] a path) in its own session with stdout+stderr appended
 * to `out` (NULL: <dir>/<name>.out). Never NULL (asserts). */
harness_proc *harness_spawn(const char *name, const char *out, char *const argv[]);
/* true while p runs (reaps it once it has exited). */
bool harness_alive(harness_proc *p);
/* Wait up to timeout_ms for p to exit. Returns its exit code (128+sig when
 * killed), or -1 on timeout. */
int harness_wait_exit(harness_proc *p, int timeout_ms);
/* SIGKILL p's process group and reap it. */
void harness_kill9(harness_proc *p);
/* Start p's argv again (same name, output appended). The old proc is reaped. */
harness_proc *harness_restart(harness_proc *p);
/* Last non-empty line of p's output, into buf. */
const char *harness_last_line(const harness_proc *p, char *buf, size_t len);

/* Point fd (1 or 2) of this process at a new file path; returns the saved
 * descriptor for harness_restore_fd. For tests of output streamed to an
 * in-process driver. */
int harness_capture_fd(int fd, const char *path);
void harness_restore_fd(int fd, int saved);
/* The file at path contains needle (stdio flushed first). */
bool harness_file_contains(const char *path, const char *needle);
/* <test dir>/name into out (HARNESS_PATH bytes): files tasks write to. */
void harness_test_file(char *out, const char *name);
/* Lines of path that start with prefix ("": every line); 0 for no file. */
int harness_lines_with(const char *path, const char *prefix);
/* For harness_wait_until: path has at least want lines starting with
 * prefix. */
typedef struct {
    const char *path, *prefix;
    int want;
} harness_lines;
bool harness_has_lines(void *arg);

/* Poll pred(arg) every ~20 ms until it is true or timeout_ms passes. */
bool harness_wait_until(bool (*pred)(void *), void *arg, int timeout_ms);

/* Run argv to completion (at most timeout_ms, then SIGKILL), stdout and
 * stderr captured into malloc'd strings (*out, *err; may be NULL to drop).
 * Returns the exit code (128+sig when killed, -1 timed out). */
int harness_run(char *const argv[], char **out, char **err, int timeout_ms);
/* Run scripts/rayc with RAYC_TEMP_DIR=<dir>/rayc and RAYC_BIN_DIR=<build>/bin.
 * args is NULL-terminated. */
int harness_rayc(char **out, char **err, const char *const args[]);
/* Run build/bin/rayc_ctl. */
int harness_ctl(char **out, char **err, const char *const args[]);

/* ------------------------------------------------------------ cluster */

void harness_cluster_init(harness_cluster *c);
/* Redis + GCS; returns when the GCS accepts a handshake (asserts). */
void harness_cluster_start(harness_cluster *c);
/* A raylet with its own session dir (the first is the head raylet); waits
 * for raylet.ready (asserts). extra: NULL-terminated flags, or NULL. */
harness_raylet *harness_raylet_start(harness_cluster *c, const char *const extra[]);
/* Spawn a raylet without waiting for it; token: the token to give it (NULL:
 * the cluster's). For failure tests. */
harness_proc *harness_raylet_spawn(harness_cluster *c, const char *token,
                                   const char *const extra[]);
/* Restart the GCS with its original arguments after harness_kill9(c->gcs);
 * waits until it accepts a handshake. */
void harness_gcs_restart(harness_cluster *c);

/* Handshake with the GCS as a CLI peer (token NULL: the cluster's). NULL on
 * failure with *code and err set. */
bconn *harness_connect(const harness_cluster *c, const char *token, int *code, char *err,
                       size_t errlen);
/* LIST_NODES_REQ on a fresh connection; NULL when the GCS does not answer.
 * Free with msg_free(). */
Rpc__ListNodesReply *harness_list_nodes(const harness_cluster *c);
/* A local client of the raylet: a handshake on its Unix socket with this
 * role and a random worker id (the arena's fd is closed). NULL when refused. */
bconn *harness_local_connect(const harness_raylet *r, int role);
/* The raylet's object-store statistics (STORE_STATS_REQ on a fresh connection
 * to its Unix socket). NULL when it does not answer (no assertion: usable from
 * a poller). Free with msg_free(). */
Rpc__StoreStatsReply *harness_store_stats(const harness_raylet *r);
/* The same, and the store's high-water mark (peak_used) starts again from
 * its current use once the reply is sent. */
Rpc__StoreStatsReply *harness_store_stats_reset_peak(const harness_raylet *r);
/* Nodes in state (RPC__NODE_STATE__NODE_ALIVE / _DEAD); -1 if unreachable. */
int harness_count_nodes(const harness_cluster *c, int state);
/* State of the node with this hex id; -1 when unknown or unreachable. */
int harness_node_state(const harness_cluster *c, const char *node_hex);
/* Every one of c's raylets ALIVE, then each heartbeated after that (so each
 * holds a view of every node: a raylet answers the owner of a task only on
 * a node it knows); fails the test past timeout_ms. */
void harness_wait_nodes_settled(const harness_cluster *c, int timeout_ms);

/* An example task library: <build>/examples/lib<name>_tasks.so, asserted
 * present. The path lives until the fourth call after this one. */
const char *harness_example_lib(const char *name);
/* A driver in this process for c: its token file, a private temp dir, then
 * rayc_init at its GCS with the code libraries (NULL-terminated paths) in
 * namespace ns (NULL: a fresh anonymous one); fails the test if it cannot. */
void harness_driver_init(const harness_cluster *c, const char *const *code, const char *ns);
/* `rayc ARGS[0] --address=DASHBOARD --token-file=TOKEN_FILE ARGS[1..]`, as
 * harness_rayc (for the state, job and log verbs of the dashboard). */
int harness_rayc_dashboard(const char *dashboard, const char *token_file, char **out, char **err,
                           const char *const args[]);

/* Send raw bytes to a TCP port (host 127.0.0.1) or Unix socket path, then
 * report whether the peer closed the connection within timeout_ms. */
bool harness_send_garbage_tcp(int port, const void *data, size_t len, int timeout_ms);
bool harness_send_garbage_unix(const char *path, const void *data, size_t len, int timeout_ms);

#endif
