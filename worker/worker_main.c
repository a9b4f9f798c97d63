/*
 * worker_main.c -- rayc_worker: a process the raylet starts to run tasks.
 * It connects back to the raylet named in its environment and runs what it
 * is pushed until the raylet goes away.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "core.h"
#include "log.h"
#include "rayc.h"

int main(void)
{
    const char *sock = getenv("RAYC_RAYLET_SOCKET");
    const char *id = getenv("RAYC_WORKER_ID");
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines reach the driver as they are written */
    signal(SIGPIPE, SIG_IGN);
    if (sock == NULL || id == NULL) {
        fprintf(stderr, "rayc_worker: started by hand? RAYC_RAYLET_SOCKET and RAYC_WORKER_ID "
                        "are set by the raylet\n");
        return 2;
    }
    int rc = core__init_worker(sock, id);
    if (rc != 0) {
        fprintf(stderr, "rayc_worker: %s\n", rayc_last_error());
        return 1;
    }
    return core__worker_run();
}
