/*
 * util.h -- small helpers shared by every process: clocks, files, address
 * and resource parsing. Pure or plain syscalls; no event loop.
 */
#ifndef RAYC_UTIL_H
#define RAYC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

uint64_t now_ms(void);  /* monotonic milliseconds */
uint64_t now_us(void);  /* monotonic microseconds */
uint64_t wall_ms(void); /* milliseconds since the epoch */
uint64_t wall_us(void); /* microseconds since the epoch */

/* A fast 64-bit hash of n bytes (the XXH64 algorithm: four independent
 * lanes, about a byte per cycle per lane). Not cryptographic: a caller that
 * must not confuse two contents compares them when their hashes match. */
uint64_t hash_bytes(const void *data, size_t n);

/* mkdir -p with the given mode for created directories. 0 or -1 (errno). */
int mkdir_p(const char *path, unsigned mode);
/* Read a whole file (NUL-terminated for convenience). Caller frees. NULL on
 * error with errno set. */
char *read_file(const char *path, size_t *len);
/* Write data to path atomically (tmp + rename) with mode. 0 or -1 (errno). */
int write_file(const char *path, const void *data, size_t len, unsigned mode);
/* Remove trailing whitespace in place. Returns s. */
char *rstrip(char *s);
/* Whether path (and, for a symlink, what it points to) belongs to this
 * process's effective user: a temp root, session_latest or a session dir of
 * another user must not be followed (it could name another user's cluster
 * and token, or be swapped under us). 0 when it is ours; -1 with why
 * written (including when it cannot be examined: errno kept). */
int path_is_mine(const char *path, char *why, size_t len);

/* "host:port" -> host (copied into host[hostlen]) and port. 0 or -1. */
int parse_host_port(const char *s, char *host, size_t hostlen, int *port);

/* A set of named amounts: CPU, GPU, memory and custom resources. */
#define RES_MAX      32
#define RES_NAME_MAX 64
typedef struct {
    int n;
    char name[RES_MAX][RES_NAME_MAX];
    double amount[RES_MAX];
} res_set;

/* Parse "name=amount,name=amount" into set (adding to what it holds).
 * Returns 0, or -1 with err set (bad syntax, negative, too many). */
int res_parse(res_set *set, const char *spec, char *err, size_t errlen);
/* Set (replace) or read one resource; get returns 0 when absent. */
int res_set_amount(res_set *set, const char *name, double amount);
double res_get(const res_set *set, const char *name);
/* True if a and b name the same resources with the same amounts (in any
 * order; exact comparison). */
bool res_equal(const res_set *a, const res_set *b);
/* "CPU=2,GPU=0,..." into buf. Returns buf. */
char *res_format(const res_set *set, char *buf, size_t len);

/* Total physical memory in bytes, online CPUs. */
uint64_t sys_memory_bytes(void);
int sys_num_cpus(void);

/* Raise this process's soft limit on open files to its hard limit (a raylet
 * holds 3 descriptors per worker; a node with 1,000 actors needs ~3,000).
 * Returns the soft limit now in force. */
long raise_fd_limit(void);

/* Start fn(arg) on a detached thread (stack_bytes 0: the default size).
 * 0, or pthread_create's error. */
int thread_detached(void *(*fn)(void *), void *arg, size_t stack_bytes);

#endif
