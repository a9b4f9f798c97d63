/*
 * raylet_main.c -- the raylet daemon: one per node. Parses its configuration,
 * builds the node manager and runs the event loop until SIGTERM/SIGINT or a
 * fatal condition (printed as one line on stderr, exit status 1).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "node_manager.h"
#include "util.h"

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    nm_shutdown(arg);
}

int main(int argc, char **argv)
{
    rayc_config cfg;
    char err[512] = "";
    int status = 1;
    node_manager *nm = NULL;
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: raylet --gcs-address=HOST:PORT --session-dir=DIR [options]\n");
        config_usage(stdout);
        return 0;
    }
    raise_fd_limit(); /* 3 descriptors per worker: 1,000 actors need ~3,000 */
    config_defaults(&cfg);
    if (config_from_env(&cfg, err, sizeof(err)) != 0 ||
        config_parse_args(&cfg, argc, argv, err, sizeof(err)) != 0)
        goto out;

    int level = log_level_from_name(cfg.log_level);
    char logpath[1100] = "";
    if (cfg.log_file[0])
        snprintf(logpath, sizeof(logpath), "%s", cfg.log_file);
    else if (cfg.session_dir[0]) {
        char dir[1100];
        snprintf(dir, sizeof(dir), "%s/logs", cfg.session_dir);
        mkdir_p(dir, 0700);
        snprintf(logpath, sizeof(logpath), "%s/raylet.out", dir);
    }
    log_init(logpath[0] ? logpath : NULL, level < 0 ? LOG_LEVEL_INFO : level);
    signal(SIGPIPE, SIG_IGN);

    base = event_base_new();
    if (base == NULL) {
        snprintf(err, sizeof(err), "cannot create the event loop");
        goto out;
    }
    nm = nm_new(base, &cfg, err, sizeof(err));
    if (nm == NULL || nm_start(nm, err, sizeof(err)) != 0)
        goto out;
    sigterm = evsignal_new(base, SIGTERM, on_signal, nm);
    sigint = evsignal_new(base, SIGINT, on_signal, nm);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    event_base_dispatch(base);
    if (nm_exit_reason(nm)) {
        snprintf(err, sizeof(err), "%s", nm_exit_reason(nm));
        goto out;
    }
    status = 0;
out:
    if (status != 0)
        fprintf(stderr, "raylet: %s\n", err);
    /* The handlers stay through the cleanup: a SIGTERM while the node
     * stops on its own (declared dead, GCS gone) must not kill it half-way. */
    nm_free(nm);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (base)
        event_base_free(base);
    config_free(&cfg);
    log_close();
    return status;
}
