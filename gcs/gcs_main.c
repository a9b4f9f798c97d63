/*
 * gcs_main.c -- the gcs_server binary: flags, logging, token, storage, then
 * one libevent loop until SIGTERM/SIGINT (docs/contracts.md, "Daemon
 * flags"). A start-up failure prints one line "gcs_server: <reason>" to
 * stderr and exits 1.
 *
 *   gcs_server --port --node-ip-address --session-dir --token-file
 *              (--redis-socket | --redis-address) --redis-password[-file]
 *              [--storage=memory]
 *              [--dashboard-host=127.0.0.1 --dashboard-port=N]  (issue 15: HTTP
 *              dashboard, state and job API, /metrics; off without a port)
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "gcs_http.h"
#include "gcs_server.h"
#include "gcs_storage.h"
#include "log.h"
#include "util.h"

#define PROG "gcs_server"

/* What start-up needs; no globals. */
typedef struct {
    rayc_config cfg;
    bool log_to_file; /* else the log already is stderr */
    /* issue 15: not config knobs (config.h is shared with every daemon):
     * --dashboard-host/--dashboard-port, or RAYC_DASHBOARD_HOST/_PORT. */
    const char *dashboard_host;
    int dashboard_port; /* -1: no dashboard; 0: any free port */
} main_ctx;

/* Take the dashboard flags out of argv (before config_parse_args sees it).
 * Returns 0, or -1 with err set. */
static int dashboard_flags(main_ctx *m, int *argc, char **argv, char *err, size_t errlen)
{
    const char *port = getenv("RAYC_DASHBOARD_PORT");
    const char *host = getenv("RAYC_DASHBOARD_HOST");
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const char **dst = strncmp(a, "--dashboard-port", 16) == 0   ? &port
                           : strncmp(a, "--dashboard-host", 16) == 0 ? &host
                                                                     : NULL;
        if (dst == NULL || (a[16] != '=' && a[16] != '\0')) {
            argv[out++] = argv[i];
            continue;
        }
        if (a[16] == '=') {
            *dst = a + 17;
        } else if (i + 1 < *argc) {
            *dst = argv[++i];
        } else {
            snprintf(err, errlen, "%s needs a value", a);
            return -1;
        }
    }
    *argc = out;
    argv[out] = NULL;
    m->dashboard_host = host && *host ? host : "127.0.0.1";
    m->dashboard_port = -1;
    if (port && *port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*end || p < -1 || p > 65535) {
            snprintf(err, errlen, "bad --dashboard-port '%s' (0 to 65535, -1: none)", port);
            return -1;
        }
        m->dashboard_port = (int)p;
    }
    return 0;
}

/* One line on stderr (and in the log file, if there is one), exit 1. */
static void die(main_ctx *m, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(main_ctx *m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, PROG ": %s\n", msg);
    if (m->log_to_file)
        log_error("%s", msg);
    log_close();
    config_free(&m->cfg);
    exit(1);
}

/* --log-file, else <session>/logs/gcs_server.out, else stderr. */
static void setup_logging(main_ctx *m)
{
    rayc_config *cfg = &m->cfg;
    int level = log_level_from_name(cfg->log_level);
    if (level < 0)
        die(m, "bad --log-level '%s' (debug, info, warn or error)", cfg->log_level);
    char path[4096];
    const char *file = NULL;
    if (cfg->log_file[0]) {
        file = cfg->log_file;
    } else if (cfg->session_dir[0]) {
        snprintf(path, sizeof(path), "%s/logs", cfg->session_dir);
        if (mkdir_p(path, 0700) != 0)
            die(m, "cannot create %s: %s", path, strerror(errno));
        snprintf(path, sizeof(path), "%s/logs/" PROG ".out", cfg->session_dir);
        file = path;
    }
    if (log_init(file, level) != 0)
        die(m, "cannot open log file %s: %s", file, strerror(errno));
    m->log_to_file = file != NULL;
}

/* The Redis password from --redis-password or --redis-password-file (the
 * file's first line). Returns a heap string ("" for none). */
static char *load_redis_password(main_ctx *m)
{
    rayc_config *cfg = &m->cfg;
    if (cfg->redis_password[0] || !cfg->redis_password_file[0])
        return strdup(cfg->redis_password);
    char *s = read_file(cfg->redis_password_file, NULL);
    if (s == NULL)
        die(m, "cannot read redis password file %s: %s", cfg->redis_password_file, strerror(errno));
    char *nl = strchr(s, '\n');
    if (nl)
        *nl = '\0';
    return rstrip(s);
}

static gcs_storage *open_storage(main_ctx *m, struct event_base *base)
{
    rayc_config *cfg = &m->cfg;
    if (strcmp(cfg->storage, "memory") == 0) {
        gcs_storage *s = gcs_storage_memory_new(base);
        if (s == NULL)
            die(m, "out of memory");
        log_warn("using in-memory storage: nothing survives a restart");
        return s;
    }
    if (strcmp(cfg->storage, "redis") != 0)
        die(m, "bad --storage '%s' (redis or memory)", cfg->storage);
    gcs_storage_redis_opts opts = {0};
    char host[256];
    if (cfg->redis_socket[0]) {
        opts.unix_path = cfg->redis_socket;
    } else if (cfg->redis_address[0]) {
        if (parse_host_port(cfg->redis_address, host, sizeof(host), &opts.port) != 0)
            die(m, "bad --redis-address '%s' (HOST:PORT)", cfg->redis_address);
        opts.host = host;
    } else {
        die(m, "no redis given: --redis-socket, --redis-address or --storage=memory");
    }
    char *password = load_redis_password(m);
    if (password == NULL)
        die(m, "out of memory");
    opts.password = password;
    char err[256];
    gcs_storage *s = gcs_storage_redis_new(base, &opts, err, sizeof(err));
    memset(password, 0, strlen(password));
    free(password);
    if (s == NULL)
        die(m, "%s", err);
    return s;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("signal %d: shutting down", (int)sig);
    gcs_server_stop(arg);
}

int main(int argc, char **argv)
{
    main_ctx ctx = {.log_to_file = false};
    main_ctx *m = &ctx;
    rayc_config *cfg = &ctx.cfg;
    char err[512];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: " PROG " [--name=value ...]\n");
            config_usage(stdout);
            return 0;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(); /* a descriptor per raylet, driver and dashboard client */
    config_defaults(cfg);
    if (dashboard_flags(m, &argc, argv, err, sizeof(err)) != 0)
        die(m, "%s", err);
    if (config_from_env(cfg, err, sizeof(err)) != 0 ||
        config_parse_args(cfg, argc, argv, err, sizeof(err)) != 0)
        die(m, "%s", err);
    setup_logging(m);

    char token[AUTH_TOKEN_LEN + 64];
    if (auth_token_load(cfg->token, cfg->token_file, token, sizeof(token), err, sizeof(err)) != 0)
        die(m, "%s", err);

    struct event_base *base = event_base_new();
    if (base == NULL)
        die(m, "cannot create the event loop");
    gcs_storage *storage = open_storage(m, base);
    gcs_server *srv =
        gcs_server_new(base, cfg, token, storage, &gcs_rpc_services, err, sizeof(err));
    memset(token, 0, sizeof(token));
    if (srv == NULL) {
        event_base_free(base);
        die(m, "%s", err);
    }
    /* A dashboard that cannot bind (port taken) is logged, not fatal: the
     * control plane matters more than its web page. */
    gcs_http *http = NULL;
    if (m->dashboard_port >= 0 &&
        (http = gcs_http_new(base, srv, m->dashboard_host, m->dashboard_port, err, sizeof(err))) ==
            NULL)
        log_error("dashboard disabled: %s", err);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, srv);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, srv);
    if (sigterm == NULL || sigint == NULL)
        die(m, "cannot install signal handlers");
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    log_info(PROG " pid %d starting on %s:%d", (int)getpid(), cfg->node_ip_address,
             gcs_server_port(srv));

    event_base_dispatch(base);

    int rc = 0;
    if (gcs_server_fatal(srv)) {
        fprintf(stderr, PROG ": %s\n", gcs_server_fatal(srv));
        if (m->log_to_file)
            log_error("%s", gcs_server_fatal(srv));
        rc = 1;
    }
    /* The handlers stay through the cleanup (a SIGTERM then must not cut
     * it short). */
    gcs_http_free(http);
    gcs_server_free(srv);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    log_info(PROG " stopped");
    log_close();
    config_free(cfg);
    libevent_global_shutdown();
    return rc;
}
