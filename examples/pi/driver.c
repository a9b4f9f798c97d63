/*
 * pi: Monte Carlo estimate of pi over 1,000 tasks. Each task samples
 * SAMPLES points with its own seed and returns how many fell inside the
 * quarter circle; sum() tasks reduce the counts in two levels (groups of
 * GROUP, then the partial sums). Exits 0 only if |pi - estimate| < 0.01.
 */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

#define TASKS   1000
#define GROUP   100
#define PI      3.14159265358979323846
#define SAMPLES 100000ULL /* per task: 1e8 in all, a standard error near 2e-4 */

static int die(const char *what, int rc)
{
    fprintf(stderr, "pi: %s: %s: %s\n", what, rayc_strerror(rc), rayc_last_error());
    return 1;
}

int main(void)
{
    char self[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(lib, sizeof(lib), "%s/libpi_tasks.so", dirname(self));
    const char *code[] = {lib, NULL};
    rayc_init_opts opts = {.code = code};
    int rc = rayc_init(&opts);
    if (rc != RAYC_OK)
        return die("rayc_init", rc);

    /* Map: one sample() per seed. */
    static rayc_ref counts[TASKS];
    uint64_t samples = SAMPLES;
    for (uint64_t i = 0; i < TASKS; i++) {
        uint64_t seed = 0x5eed0000ULL + i * 7919;
        rayc_arg args[] = {RAYC_VAL(&seed, sizeof(seed)), RAYC_VAL(&samples, sizeof(samples))};
        if ((rc = rayc_submit("sample", args, 2, NULL, &counts[i])) != RAYC_OK)
            return die("submit sample", rc);
    }
    /* Reduce: sum() of each group, then of the partial sums. The refs go in
     * as arguments; the tasks wait for them, the driver never does. */
    rayc_ref partial[TASKS / GROUP], total;
    rayc_arg args[GROUP];
    for (int g = 0; g < TASKS / GROUP; g++) {
        for (int i = 0; i < GROUP; i++)
            args[i] = RAYC_REF(counts[g * GROUP + i]);
        if ((rc = rayc_submit("sum", args, GROUP, NULL, &partial[g])) != RAYC_OK)
            return die("submit sum", rc);
    }
    for (int g = 0; g < TASKS / GROUP; g++)
        args[g] = RAYC_REF(partial[g]);
    if ((rc = rayc_submit("sum", args, TASKS / GROUP, NULL, &total)) != RAYC_OK)
        return die("submit sum", rc);
    for (int i = 0; i < TASKS; i++)
        rayc_ref_release(counts[i]);
    for (int g = 0; g < TASKS / GROUP; g++)
        rayc_ref_release(partial[g]);

    rayc_value v;
    if ((rc = rayc_get(&total, 1, &v, -1)) != RAYC_OK)
        return die("get", rc);
    uint64_t inside = 0;
    if (v.size == sizeof(inside))
        memcpy(&inside, v.data, sizeof(inside));
    rayc_value_release(&v);
    rayc_ref_release(total);
    rayc_shutdown();

    double est = 4.0 * (double)inside / ((double)TASKS * (double)SAMPLES);
    double err = est > PI ? est - PI : PI - est; /* no libm needed */
    printf("pi ~= %.6f from %llu samples over %d tasks (error %.6f)\n", est,
           (unsigned long long)(TASKS * SAMPLES), TASKS, err);
    return err < 0.01 ? 0 : 1;
}
