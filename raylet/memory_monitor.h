/*
 * memory_monitor.h -- the pure half of the raylet's memory monitor (Ray's
 * OOM killer): how much memory the node has and uses, and which worker to
 * kill when use passes the threshold. No timers, no signals: the raylet
 * samples on its loop and kills what mm_pick_victim names.
 *
 * Memory: a cgroup limit applies when one is set (v2 memory.max /
 * memory.current, else v1 memory.limit_in_bytes / memory.usage_in_bytes);
 * otherwise /proc/meminfo (used = MemTotal - MemAvailable). Paths are given
 * by the caller so tests point them at fixture files.
 *
 * Victim policy (Ray's "group by owner"): retriable tasks before
 * non-retriable ones, actors last; among candidates of the same class, the
 * owner with the most running tasks first; within that owner's tasks, the
 * newest (last started) first.
 *
 * Thread-safety: none needed; plain functions over plain data.
 */
#ifndef RAYC_MEMORY_MONITOR_H
#define RAYC_MEMORY_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the monitor reads. NULL members are skipped. */
typedef struct {
    const char *meminfo;         /* "/proc/meminfo" */
    const char *cgroup2_max;     /* "/sys/fs/cgroup/memory.max" */
    const char *cgroup2_current; /* "/sys/fs/cgroup/memory.current" */
    const char *cgroup1_limit;   /* "/sys/fs/cgroup/memory/memory.limit_in_bytes" */
    const char *cgroup1_usage;   /* "/sys/fs/cgroup/memory/memory.usage_in_bytes" */
} mm_paths;

/* The system's own paths. */
extern const mm_paths MM_SYSTEM_PATHS;

typedef struct {
    uint64_t total; /* bytes the node may use (cgroup limit, else MemTotal) */
    uint64_t used;  /* bytes in use */
    bool cgroup;    /* the numbers come from a cgroup */
} mm_usage;

/* Read the node's memory. Returns 0, or -1 when nothing could be read. */
int mm_read(const mm_paths *paths, mm_usage *out);

/* Whether used/total has passed threshold (a fraction, e.g. 0.95). */
bool mm_over(const mm_usage *u, double threshold);

/* One running worker, as the raylet knows it. */
typedef struct {
    int pid;
    uint64_t owner;      /* an opaque key of the task's owner (same owner, same key) */
    uint64_t started_ms; /* when its current task started */
    bool retriable;      /* its task has retries left */
    bool actor;          /* it hosts an actor */
    uint64_t rss;        /* bytes, for the error message */
} mm_worker;

/* Index of the worker to kill, or -1 when n is 0. */
int mm_pick_victim(const mm_worker *w, size_t n);

#endif
