/*
 * genlib: streaming generators on any cluster ($RAYC_ADDRESS, else a
 * private embedded one). A generator yields 16 partitions of 4 MiB with
 * backpressure 2 and the driver checks each as it arrives (Modin's
 * pattern: work on the first while the rest are made); another fails after
 * 3 items and the driver sees 3 items, the error, then the end. Exit status
 * 0 when every check passes.
 */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

#include "../../tests/integration/pattern.h"

#define PARTS     16
#define PART_SIZE ((uint64_t)4 << 20)

static int fail(const char *what, int rc)
{
    fprintf(stderr, "genlib: %s: %s: %s\n", what, rayc_strerror(rc), rayc_last_error());
    return 1;
}

/* Partitions arrive one by one; each is checked, then released. */
static int partitions(void)
{
    uint64_t n = PARTS, size = PART_SIZE, seed = 42;
    rayc_arg a[] = {RAYC_VAL(&n, 8), RAYC_VAL(&size, 8), RAYC_VAL(&seed, 8)};
    rayc_task_opts o = {.num_returns = RAYC_STREAMING, .generator_backpressure = 2};
    rayc_stream *s;
    int rc = rayc_submit_stream("count", a, 3, &o, &s);
    if (rc)
        return fail("rayc_submit_stream(count)", rc);
    uint64_t got = 0;
    rayc_ref r;
    while ((rc = rayc_stream_next(s, &r, 60000)) == RAYC_OK) {
        rayc_value v;
        rc = rayc_get(&r, 1, &v, 60000);
        if (rc)
            return fail("rayc_get(partition)", rc);
        if (v.size != size || pattern_check(v.data, v.size, seed + got) != -1) {
            fprintf(stderr, "genlib: partition %llu is wrong\n", (unsigned long long)got);
            return 1;
        }
        rayc_value_release(&v);
        rayc_ref_release(r);
        got++;
    }
    rayc_stream_close(s);
    if (rc != RAYC_EOF || got != n)
        return fail("partitions", rc == RAYC_EOF ? RAYC_EINVAL : rc);
    printf("genlib: %llu partitions of %llu MiB checked as they arrived (backpressure 2)\n",
           (unsigned long long)got, (unsigned long long)(size >> 20));
    return 0;
}

/* count_fail(3): three items, one error item, then the end. */
static int error_after_three(void)
{
    uint64_t k = 3;
    rayc_arg a = RAYC_VAL(&k, 8);
    rayc_stream *s;
    int rc = rayc_submit_stream("count_fail", &a, 1, NULL, &s);
    if (rc)
        return fail("rayc_submit_stream(count_fail)", rc);
    int items = 0, errors = 0;
    rayc_ref r;
    while ((rc = rayc_stream_next(s, &r, 60000)) == RAYC_OK) {
        rayc_value v;
        if (rayc_get(&r, 1, &v, 60000) == RAYC_OK)
            items++;
        else if (v.status == RAYC_ETASK)
            printf("genlib: after %d items: %s\n", items, v.error), errors++;
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    rayc_stream_close(s);
    if (rc != RAYC_EOF || items != 3 || errors != 1) {
        fprintf(stderr, "genlib: count_fail gave %d items and %d errors (%s)\n", items, errors,
                rayc_strerror(rc));
        return 1;
    }
    return 0;
}

int main(void)
{
    char self[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(lib, sizeof(lib), "%s/libgenlib_tasks.so", dirname(self));
    const char *code[] = {lib, NULL};
    const char *addr = getenv("RAYC_ADDRESS");
    rayc_init_opts o = {
        .address = addr && *addr ? addr : "local", .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    if (rc)
        return fail("rayc_init", rc);
    int bad = partitions() || error_after_three();
    rayc_shutdown();
    if (!bad)
        printf("genlib: ok\n");
    return bad;
}
