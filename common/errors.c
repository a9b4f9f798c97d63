/* errors.c -- rayc_strerror() and the thread's last error message. */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

const char *rayc_strerror(int code)
{
    switch (code) {
#define X(name, value, msg)                                                                        \
    case value:                                                                                    \
        return msg;
        RAYC_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

const char *rayc_last_error(void)
{
    return last_error;
}

int rayc__error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return code;
}

void rayc__error_clear(void)
{
    last_error[0] = '\0';
}
