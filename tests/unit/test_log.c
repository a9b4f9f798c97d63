/* test_log.c -- the log's limits (common/log.h): rotation by size keeps K
 * files and loses no line, even with several threads writing; repeats of
 * one call site are cut to the rate limit and reported by one notice; sites
 * are limited independently.
 *
 * Each test runs in its own criterion fork, so the log's process-wide state
 * starts fresh; each writes into a private temp dir removed at the end. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rayc_test_log_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/x.out", dir);
    cr_assert_eq(log_init(path, LOG_LEVEL_INFO), 0);
}

static void teardown(void)
{
    log_close();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(log, .init = setup, .fini = teardown, .timeout = 60);

/* x.out (suffix 0) or x.out.<suffix>; NULL (and *len 0) if absent. */
static char *slurp(int suffix, size_t *len)
{
    char p[160];
    if (suffix == 0)
        snprintf(p, sizeof(p), "%s", path);
    else
        snprintf(p, sizeof(p), "%s.%d", path, suffix);
    *len = 0;
    return read_file(p, len);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static int64_t mono_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
}

/* Return just after the monotonic second changes: a burst then has nearly a
 * whole second of one window. */
static void wait_second_start(void)
{
    int64_t s = mono_sec();
    while (mono_sec() == s)
        usleep(1000);
}

Test(log, rotates_at_the_size_and_keeps_k_files)
{
    log_set_rate_limit(0);
    log_set_rotation(4096, 2);
    for (int i = 0; i < 300; i++)
        log_info("line %06d of a test of rotation", i);
    size_t len[4];
    char *f[4];
    for (int i = 0; i < 4; i++)
        f[i] = slurp(i, &len[i]);
    cr_assert_not_null(f[0]);
    cr_assert_not_null(f[1]);
    cr_assert_not_null(f[2]);
    cr_assert_null(f[3], "keep=2: no x.out.3");
    for (int i = 0; i < 3; i++)
        cr_assert_leq(len[i], 4096, "x.out.%d is %zu bytes", i, len[i]);
    /* Rotated files were full: one more line would have passed the size. */
    cr_assert_gt(len[1], 4096 - 128);
    cr_assert_gt(len[2], 4096 - 128);
    /* Oldest to newest, the kept lines are consecutive and end at 299. */
    int expect = -1, seen = 0;
    for (int i = 2; i >= 0; i--) {
        for (const char *p = f[i]; (p = strstr(p, "line ")) != NULL; p += 5) {
            int n = atoi(p + 5);
            if (expect >= 0)
                cr_assert_eq(n, expect, "line %d follows %d", n, expect - 1);
            expect = n + 1;
            seen++;
        }
    }
    cr_assert_eq(expect, 300);
    cr_assert_eq(seen, count_lines(f[0]) + count_lines(f[1]) + count_lines(f[2]));
    for (int i = 0; i < 4; i++)
        free(f[i]);
}

Test(log, keep_zero_starts_over)
{
    log_set_rate_limit(0);
    log_set_rotation(2048, 0);
    for (int i = 0; i < 100; i++)
        log_info("line %06d", i);
    size_t len;
    char *f = slurp(0, &len);
    char *old = slurp(1, &len);
    cr_assert_not_null(f);
    cr_assert_null(old);
    cr_assert_not_null(strstr(f, "line 000099"));
    cr_assert_null(strstr(f, "line 000000"));
    free(f);
}

Test(log, a_line_longer_than_the_size_is_written_whole)
{
    log_set_rate_limit(0);
    log_set_rotation(100, 1);
    char big[500];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_info("first");
    log_info("%s", big);
    size_t len;
    char *f = slurp(0, &len);
    char *old = slurp(1, &len);
    cr_assert_not_null(strstr(f, big));
    cr_assert_eq(count_lines(f), 1);
    cr_assert_not_null(strstr(old, "first"));
    free(f);
    free(old);
}

#define THREADS          4
#define LINES_PER_THREAD 3000

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < LINES_PER_THREAD; i++)
        log_info("thread %d line %06d end", t, i);
    return NULL;
}

Test(log, threads_lose_no_line_across_rotations)
{
    log_set_rate_limit(0);
    log_set_rotation(16 << 10, 100);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    int lines = 0, ends = 0, files = 0;
    for (int i = 0; i <= 100; i++) {
        size_t len;
        char *f = slurp(i, &len);
        if (f == NULL)
            continue;
        files++;
        /* A file may pass the size by one line per writing thread. */
        cr_assert_leq(len, (16 << 10) + THREADS * 128);
        lines += count_lines(f);
        ends += count_substr(f, " end\n"); /* whole lines only */
        free(f);
    }
    cr_assert_gt(files, 5);
    cr_assert_eq(lines, THREADS * LINES_PER_THREAD);
    cr_assert_eq(ends, THREADS * LINES_PER_THREAD);
}

static void burst_site(int n)
{
    for (int i = 0; i < n; i++)
        log_warn("the same complaint, again (%d)", i);
}

static void other_site(void)
{
    log_warn("another complaint");
}

Test(log, a_burst_of_one_site_is_cut_to_the_limit)
{
    log_set_rate_limit(20);
    wait_second_start();
    int64_t start = mono_sec();
    burst_site(10000);
    cr_assert_eq(mono_sec(), start, "the burst took over a second: cannot check");
    size_t len;
    char *f = slurp(0, &len);
    cr_assert_eq(count_lines(f), 20);
    cr_assert_eq(count_substr(f, "the same complaint"), 20);
    cr_assert_null(strstr(f, "suppressed"));
    free(f);

    /* When the site logs again in a later second, the drops are reported once. */
    wait_second_start();
    burst_site(1);
    f = slurp(0, &len);
    cr_assert_eq(count_lines(f), 22);
    cr_assert_not_null(strstr(f, "... 9980 similar lines suppressed"), "%s", f);
    cr_assert_eq(count_substr(f, "suppressed"), 1);
    free(f);
}

Test(log, sites_are_limited_independently)
{
    log_set_rate_limit(20);
    wait_second_start();
    int64_t start = mono_sec();
    for (int i = 0; i < 100; i++) {
        burst_site(1);
        if (i % 20 == 0)
            other_site(); /* 5 lines: under the limit */
    }
    cr_assert_eq(mono_sec(), start, "took over a second: cannot check");
    size_t len;
    char *f = slurp(0, &len);
    cr_assert_eq(count_substr(f, "the same complaint"), 20);
    cr_assert_eq(count_substr(f, "another complaint"), 5);
    free(f);
}

Test(log, no_limit_when_disabled)
{
    log_set_rate_limit(0);
    burst_site(500);
    size_t len;
    char *f = slurp(0, &len);
    cr_assert_eq(count_lines(f), 500);
    free(f);
}
