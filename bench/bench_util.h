/*
 * bench_util.h -- helpers the benchmarks share (header-only: each benchmark
 * is one .c file built into its own binary, using only rayc.h).
 */
#ifndef RAYC_BENCH_UTIL_H
#define RAYC_BENCH_UTIL_H

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds. */
static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* "2G", "512MiB", "1048576" -> bytes; *ok = 0 when malformed or negative. */
static inline size_t parse_size(const char *s, int *ok)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    switch (tolower((unsigned char)*end)) {
    case 'k':
        mul = 1024.0;
        end++;
        break;
    case 'm':
        mul = 1024.0 * 1024;
        end++;
        break;
    case 'g':
        mul = 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (tolower((unsigned char)*end) == 'i')
        end++;
    if (tolower((unsigned char)*end) == 'b')
        end++;
    *ok = errno == 0 && end != s && *end == '\0' && v >= 0;
    return (size_t)(v * mul);
}

/* A raylet pre-faults its object store in a background thread at idle
 * priority, which competes with the first measurements, and then logs
 * "plasma: pre-faulted <MiB> MiB in <ms> ms" to <session>/logs/raylet.out.
 * Wait for that line (polling every 100 ms) up to timeout_s: the
 * milliseconds the pre-fault took (and its size in *mib when not NULL);
 * -1 when the line did not appear in time (RAYC_PREFAULT_STORE=0, a log
 * level above info, a slow machine); -2 when the raylet logged that it could
 * not start the pre-fault thread. */
static inline long bench_prefault_ms(const char *session_dir, double timeout_s, long *mib)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/logs/raylet.out", session_dir);
    double deadline = now_s() + timeout_s;
    for (;;) {
        FILE *f = fopen(path, "r");
        char line[1024];
        long found = -1, size = 0, ms;
        while (f && found == -1 && fgets(line, sizeof(line), f)) {
            const char *p = strstr(line, "plasma: pre-faulted ");
            if (p && sscanf(p, "plasma: pre-faulted %ld MiB in %ld ms", &size, &ms) == 2)
                found = ms;
            else if (strstr(line, "plasma: cannot start the pre-fault thread"))
                found = -2;
        }
        if (f)
            fclose(f);
        if (found != -1 || now_s() >= deadline) {
            if (mib)
                *mib = found >= 0 ? size : 0;
            return found;
        }
        sleep_ms(100);
    }
}

#endif
