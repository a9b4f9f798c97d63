/*
 * memory_monitor.c -- see memory_monitor.h.
 */
#include "memory_monitor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const mm_paths MM_SYSTEM_PATHS = {
    .meminfo = "/proc/meminfo",
    .cgroup2_max = "/sys/fs/cgroup/memory.max",
    .cgroup2_current = "/sys/fs/cgroup/memory.current",
    .cgroup1_limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    .cgroup1_usage = "/sys/fs/cgroup/memory/memory.usage_in_bytes",
};

/* A file holding one decimal number (cgroup style). 0 ok, -1 missing or
 * not a number ("max" included: no limit). */
static int read_number(const char *path, uint64_t *out)
{
    if (path == NULL)
        return -1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char buf[64];
    int rc = -1;
    if (fgets(buf, sizeof(buf), f) != NULL) {
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (end != buf && (*end == '\n' || *end == '\0')) {
            *out = v;
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* MemTotal and MemAvailable from a meminfo file, in bytes. */
static int read_meminfo(const char *path, uint64_t *total, uint64_t *avail)
{
    if (path == NULL)
        return -1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    bool have_total = false, have_avail = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
            *total = (uint64_t)kb * 1024;
            have_total = true;
        } else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *avail = (uint64_t)kb * 1024;
            have_avail = true;
        }
    }
    fclose(f);
    return have_total && have_avail ? 0 : -1;
}

/* A cgroup limit counts only when it is below the machine's memory (an
 * unlimited v1 cgroup reports a huge number). */
static bool cgroup_limit(const char *limit_path, const char *usage_path, uint64_t machine,
                         mm_usage *out)
{
    uint64_t limit, usage;
    if (read_number(limit_path, &limit) != 0 || read_number(usage_path, &usage) != 0)
        return false;
    if (limit == 0 || (machine > 0 && limit >= machine))
        return false;
    out->total = limit;
    out->used = usage < limit ? usage : limit;
    out->cgroup = true;
    return true;
}

int mm_read(const mm_paths *p, mm_usage *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t total = 0, avail = 0;
    bool have_meminfo = read_meminfo(p->meminfo, &total, &avail) == 0;
    if (cgroup_limit(p->cgroup2_max, p->cgroup2_current, total, out) ||
        cgroup_limit(p->cgroup1_limit, p->cgroup1_usage, total, out))
        return 0;
    if (!have_meminfo)
        return -1;
    out->total = total;
    out->used = avail < total ? total - avail : 0;
    return 0;
}

bool mm_over(const mm_usage *u, double threshold)
{
    return u->total > 0 && (double)u->used >= threshold * (double)u->total;
}

/* Lower is killed first: retriable tasks, then other tasks, then actors. */
static int victim_class(const mm_worker *w)
{
    return w->actor ? 2 : w->retriable ? 0 : 1;
}

int mm_pick_victim(const mm_worker *w, size_t n)
{
    int best = -1, best_class = 3;
    size_t best_group = 0;
    for (size_t i = 0; i < n; i++) {
        int cls = victim_class(&w[i]);
        if (cls > best_class)
            continue;
        /* The owner's group within this class (O(n^2): n is a node's workers). */
        size_t group = 0;
        for (size_t j = 0; j < n; j++)
            if (w[j].owner == w[i].owner && victim_class(&w[j]) == cls)
                group++;
        bool better = cls < best_class || group > best_group ||
                      (group == best_group && w[i].started_ms > w[best].started_ms);
        if (better) {
            best = (int)i;
            best_class = cls;
            best_group = group;
        }
    }
    return best;
}
