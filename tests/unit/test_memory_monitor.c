/* test_memory_monitor.c -- the memory monitor's pure half
 * (raylet/memory_monitor.h): reading /proc/meminfo and cgroup v1/v2 files
 * (fixtures in a temp dir), the threshold, and Ray's victim policy. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../raylet/memory_monitor.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/mm_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(memory_monitor, .init = setup, .fini = teardown, .timeout = 30);

/* Write a fixture file; returns its path (static buffer per slot). */
static const char *fixture(int slot, const char *name, const char *text)
{
    static char paths[4][128];
    snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", dir, name);
    FILE *f = fopen(paths[slot], "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return paths[slot];
}

static const char *MEMINFO = "MemTotal:       16000000 kB\n"
                             "MemFree:         1000000 kB\n"
                             "MemAvailable:    4000000 kB\n"
                             "Buffers:          100000 kB\n";

Test(memory_monitor, meminfo_without_cgroup)
{
    mm_paths p = {.meminfo = fixture(0, "meminfo", MEMINFO),
                  .cgroup2_max = fixture(1, "memory.max", "max\n"),
                  .cgroup2_current = fixture(2, "memory.current", "123\n")};
    mm_usage u;
    cr_assert_eq(mm_read(&p, &u), 0);
    cr_assert_not(u.cgroup, "a cgroup without a limit does not count");
    cr_assert_eq(u.total, 16000000ull * 1024);
    cr_assert_eq(u.used, 12000000ull * 1024, "used = total - available");
    cr_assert(mm_over(&u, 0.70));
    cr_assert_not(mm_over(&u, 0.80));
}

Test(memory_monitor, cgroup_v2_limit_applies)
{
    mm_paths p = {.meminfo = fixture(0, "meminfo", MEMINFO),
                  .cgroup2_max = fixture(1, "memory.max", "1073741824\n"),
                  .cgroup2_current = fixture(2, "memory.current", "1000000000\n")};
    mm_usage u;
    cr_assert_eq(mm_read(&p, &u), 0);
    cr_assert(u.cgroup);
    cr_assert_eq(u.total, 1073741824ull);
    cr_assert_eq(u.used, 1000000000ull);
    cr_assert(mm_over(&u, 0.9));
}

Test(memory_monitor, cgroup_v1_limit_above_the_machine_is_no_limit)
{
    mm_paths p = {.meminfo = fixture(0, "meminfo", MEMINFO),
                  .cgroup1_limit = fixture(1, "limit", "9223372036854771712\n"),
                  .cgroup1_usage = fixture(2, "usage", "5000\n")};
    mm_usage u;
    cr_assert_eq(mm_read(&p, &u), 0);
    cr_assert_not(u.cgroup);
    cr_assert_eq(u.total, 16000000ull * 1024);
}

Test(memory_monitor, nothing_readable_is_an_error)
{
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    mm_paths p = {.meminfo = missing};
    mm_usage u;
    cr_assert_eq(mm_read(&p, &u), -1);
    p.meminfo = fixture(0, "meminfo", "MemTotal: 100 kB\n"); /* no MemAvailable */
    cr_assert_eq(mm_read(&p, &u), -1);
}

Test(memory_monitor, system_paths_read_this_machine)
{
    mm_usage u;
    cr_assert_eq(mm_read(&MM_SYSTEM_PATHS, &u), 0);
    cr_assert_gt(u.total, 0);
    cr_assert_leq(u.used, u.total);
}

Test(memory_monitor, victim_policy)
{
    cr_assert_eq(mm_pick_victim(NULL, 0), -1);
    /* Owner 1 has three retriable tasks, owner 2 one; a non-retriable task
     * and an actor are newer than all of them. */
    mm_worker w[] = {
        {.pid = 10, .owner = 1, .started_ms = 100, .retriable = true},
        {.pid = 11, .owner = 2, .started_ms = 900, .retriable = true},
        {.pid = 12, .owner = 1, .started_ms = 300, .retriable = true},
        {.pid = 13, .owner = 1, .started_ms = 200, .retriable = true},
        {.pid = 14, .owner = 3, .started_ms = 999, .retriable = false},
        {.pid = 15, .owner = 4, .started_ms = 1000, .actor = true},
    };
    size_t n = sizeof(w) / sizeof(w[0]);
    cr_assert_eq(w[mm_pick_victim(w, n)].pid, 12, "the newest task of the largest retriable group");
    /* Without retriable tasks: the non-retriable task before the actor. */
    cr_assert_eq(w[mm_pick_victim(w + 4, 2) + 4].pid, 14);
    /* Only an actor: it goes. */
    cr_assert_eq(w[mm_pick_victim(w + 5, 1) + 5].pid, 15);
    /* Equal groups: the newest. */
    mm_worker eq[] = {{.pid = 1, .owner = 1, .started_ms = 5, .retriable = true},
                      {.pid = 2, .owner = 2, .started_ms = 7, .retriable = true}};
    cr_assert_eq(eq[mm_pick_victim(eq, 2)].pid, 2);
}
