/*
 * log.h -- leveled logging for daemons and clients.
 *
 * One process-wide sink (a file or stderr) and level, set once at start-up by
 * log_init(); the macros check the level before formatting anything. Lines
 * look like
 *     2026-11-22 04:30:01.123 I 1234 gcs_server.c:88] node 3fa2... registered
 * Thread-safety: each line is one write(2), so lines never interleave.
 */
#ifndef RAYC_LOG_H
#define RAYC_LOG_H

#include <errno.h>

enum {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
    LOG_LEVEL_FATAL = 4
};

extern int log__level; /* read by the macros; set through log_init/log_set_level */

/* Open `path` for appending (NULL: stderr) and set the level. Returns 0, or
 * -1 with errno if the file cannot be opened (logging then goes to stderr). */
int log_init(const char *path, int level);
void log_set_level(int level);
/* "debug", "info", "warn", "error" -> level; -1 if unknown. */
int log_level_from_name(const char *name);
void log_close(void);

void log__write(int level, const char *file, int line, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define LOG__AT(lvl, err, ...)                                                                     \
    do {                                                                                           \
        if ((lvl) >= log__level)                                                                   \
            log__write((lvl), __FILE__, __LINE__, (err), __VA_ARGS__);                             \
    } while (0)

#define log_debug(...) LOG__AT(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...)  LOG__AT(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warn(...)  LOG__AT(LOG_LEVEL_WARN, 0, __VA_ARGS__)
#define log_error(...) LOG__AT(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
/* Same, with strerror(err) appended: log_syserr(errno, "connect %s", addr). */
#define log_syserr(err, ...) LOG__AT(LOG_LEVEL_ERROR, (err), __VA_ARGS__)

/* A broken invariant: log file:line and abort. Never for expected failures. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            log__write(LOG_LEVEL_FATAL, __FILE__, __LINE__, 0, "CHECK failed: %s", #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#include <stdlib.h>

#endif
