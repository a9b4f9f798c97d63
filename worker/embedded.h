/*
 * embedded.h -- the private cluster rayc_init("local") starts: Redis on a
 * Unix socket, a GCS and one raylet in a temporary session directory.
 *
 * A keeper process (/bin/sh running `rayc start --head --block`) owns the
 * daemons. It holds the read end of a pipe whose write end only the driver
 * has: when the driver calls rayc_shutdown, exits or is killed, the pipe
 * closes, the keeper stops every daemon and removes the directory. Nothing
 * outlives the driver.
 */
#ifndef RAYC_EMBEDDED_H
#define RAYC_EMBEDDED_H

#include <stddef.h>

#include "rayc.h"

typedef struct embedded embedded;

/* Start the cluster and wait until its raylet is ready. On success *out is
 * set and session receives the session directory. Returns 0 or a code (with
 * rayc_last_error set); nothing is left running on failure. */
int embedded_start(embedded **out, const rayc_init_opts *opts, char *session, size_t len);
/* Stop the cluster, wait for the keeper, clear *e. NULL-safe. */
void embedded_stop(embedded **e);

#endif
