/*
 * bench_util.h -- helpers the benchmarks share (header-only: each benchmark
 * is one .c file built into its own binary, using only rayc.h).
 */
#ifndef RAYC_BENCH_UTIL_H
#define RAYC_BENCH_UTIL_H

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* Monotonic seconds. */
static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

#endif
