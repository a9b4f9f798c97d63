/*
 * log.h -- leveled logging for daemons and clients.
 *
 * One process-wide sink (a file or stderr) and level, set once at start-up by
 * log_init(); the macros check the level before formatting anything. Lines
 * look like
 *     2026-11-22 04:30:01.123 I 1234 gcs_server.c:88] node 3fa2... registered
 *
 * Limits (issue 13: a hostile or broken peer must not fill the disk through
 * the log):
 *   - Rotation by size. A log file (a regular file: not stderr, not
 *     /dev/null) is rotated when a line would
 *     take it past max_bytes: x.out -> x.out.1 -> ... -> x.out.<keep>, the
 *     oldest dropped, and a fresh x.out opened in place of the old one (the
 *     descriptor number stays the same: dup3). No line is lost or split. A
 *     line written by another thread while the rotation runs may land at the
 *     end of x.out.1 instead of the start of x.out, and a file may exceed
 *     max_bytes by the lines of threads that checked the size at the same
 *     time (at most one line each). A single line longer than max_bytes is
 *     written whole. Defaults: LOG_ROTATE_BYTES x LOG_ROTATE_KEEP.
 *   - Repeats. One call site (file:line) writes at most `per_sec` lines per
 *     second of the monotonic clock; lines beyond are dropped unformatted.
 *     The next line from that site in a later second is preceded by one line
 *     "... N similar lines suppressed" (same site, same level). Drops of a
 *     site that never logs again are not reported. FATAL (CHECK) is never
 *     dropped. Sites are kept in a fixed table of LOG_SITES slots; a site
 *     that finds no free slot is not limited.
 *
 * Thread-safety: each line is one write(2), so lines never interleave. The
 * level, rotation and rate knobs are set at start-up, before other threads
 * log. The repeat counters are lock-free (under contention a site may let a
 * few lines more than per_sec through); a rotation takes a mutex.
 */
#ifndef RAYC_LOG_H
#define RAYC_LOG_H

#include <errno.h>
#include <stdint.h>

enum {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
    LOG_LEVEL_FATAL = 4
};

#define LOG_ROTATE_BYTES (64ull << 20) /* default size at which a log file rotates */
#define LOG_ROTATE_KEEP  3             /* default rotated files kept: x.out.1 .. x.out.3 */
#define LOG_RATE_PER_SEC 20            /* default lines per second from one call site */
#define LOG_SITES        1024          /* call sites the repeat limit tracks */
#define LOG_LINE_MAX     2048          /* longer lines are cut */

extern int log__level; /* read by the macros; set through log_init/log_set_level */

/* Open `path` for appending (NULL: stderr) and set the level. Returns 0, or
 * -1 with errno if the file cannot be opened (logging then goes to stderr). */
int log_init(const char *path, int level);
void log_set_level(int level);
/* Rotate the log file at max_bytes (0: never), keeping `keep` rotated files
 * (0: the full file is dropped and a new one started). Applies to the file of
 * log_init, now and later. */
void log_set_rotation(uint64_t max_bytes, int keep);
/* At most per_sec lines per second from one call site (0: no limit). */
void log_set_rate_limit(int per_sec);
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
