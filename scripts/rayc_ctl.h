/*
 * rayc_ctl.h -- what the files of rayc_ctl share: the parsed flags and the
 * helpers the supervisor (rayc_supervise.c) uses from rayc_ctl.c.
 */
#ifndef RAYC_CTL_H
#define RAYC_CTL_H

#include <stddef.h>

#include "bconn.h"

#define EXIT_FAIL  1
#define EXIT_USAGE 2

/* Every flag of every command (NULL / 0: not given). */
typedef struct {
    const char *address, *token, *token_file, *format, *ns, *key, *value;
    const char *socket, *password_file, *session_dir;
    int timeout_ms;
    int overwrite;
} opts_t;

/* One line "rayc_ctl: <reason>" on stderr, then exit(code). */
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Handshake with the GCS at address with a token (tok, else tok_file, else
 * the environment's). NULL on failure with *code and err set. */
bconn *gcs_try_connect(const char *address, const char *tok, const char *tok_file, int timeout_ms,
                       int *code, char *err, size_t errlen);
/* PING a Redis on its Unix socket (AUTH first with the password file's
 * password). 0, or -1 with err set. */
int redis_ping(const char *socket_path, const char *password_file, int timeout_ms, char *err,
               size_t errlen);

/* rayc_supervise.c: `rayc_ctl supervise --session-dir=S`. */
int cmd_supervise(const opts_t *o);

#endif
