/*
 * errors.h -- internal side of the error table in rayc.h.
 *
 * rayc__error() records a detailed message for the calling thread (read back
 * with rayc_last_error()) and returns the code, so failures read as
 *     return rayc__error(RAYC_EINVAL, "bad size %zu", n);
 * Thread-safety: the message lives in thread-local storage.
 */
#ifndef RAYC_ERRORS_H
#define RAYC_ERRORS_H

#include "rayc.h"

/* Record fmt as this thread's last error; returns code. */
int rayc__error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear this thread's last error. */
void rayc__error_clear(void);

#endif
