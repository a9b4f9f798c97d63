/*
 * mnlib: self-check of the multi-node test library on any cluster ($RAYC_ADDRESS,
 * else a private embedded one): a few SPREAD `where` tasks (prints the nodes
 * they ran on), a 5 MiB + 1 pattern object made by a task and checked by
 * another, and a digest of it. Exit status 0 when every check passes.
 */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

#define N_WHERE 8

static int fail(const char *what, int rc)
{
    fprintf(stderr, "mnlib: %s: %s: %s\n", what, rayc_strerror(rc), rayc_last_error());
    return 1;
}

int main(void)
{
    char self[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(lib, sizeof(lib), "%s/libmnlib_tasks.so", dirname(self));
    const char *code[] = {lib, NULL};
    const char *addr = getenv("RAYC_ADDRESS");
    rayc_init_opts o = {
        .address = addr && *addr ? addr : "local", .code = code, .log_to_driver = -1};
    int rc = rayc_init(&o);
    if (rc)
        return fail("rayc_init", rc);

    rayc_task_opts spread = {.strategy = RAYC_SCHED_SPREAD};
    rayc_ref w[N_WHERE];
    for (int i = 0; i < N_WHERE; i++) {
        int64_t k = i;
        rayc_arg a = RAYC_VAL(&k, sizeof(k));
        if ((rc = rayc_submit("where", &a, 1, &spread, &w[i])))
            return fail("submit where", rc);
    }
    rayc_value v[N_WHERE];
    if ((rc = rayc_get(w, N_WHERE, v, 60000)))
        return fail("get where", rc);
    for (int i = 0; i < N_WHERE; i++) {
        printf("where[%d] = %.*s\n", i, (int)v[i].size, (const char *)v[i].data);
        rayc_value_release(&v[i]);
        rayc_ref_release(w[i]);
    }

    uint64_t size = 5 * 1024 * 1024 + 1, seed = 42, salt = 7;
    rayc_arg ma[] = {RAYC_VAL(&size, sizeof(size)), RAYC_VAL(&seed, sizeof(seed))};
    rayc_task_opts two = {.num_returns = 2};
    rayc_ref made[2], checked[2], dg;
    if ((rc = rayc_submit("make_pattern", ma, 2, &two, made)))
        return fail("submit make_pattern", rc);
    rayc_arg ca[] = {RAYC_REF(made[0]), RAYC_VAL(&seed, sizeof(seed)),
                     RAYC_VAL(&salt, sizeof(salt))};
    if ((rc = rayc_submit("check_pattern", ca, 2, &two, checked)) ||
        (rc = rayc_submit("digest", ca, 3, NULL, &dg)))
        return fail("submit check_pattern/digest", rc);
    rayc_value r[3];
    rayc_ref want[3] = {made[0], checked[0], dg};
    if ((rc = rayc_get(want, 3, r, 60000)))
        return fail("get", rc);
    int64_t bad, d;
    memcpy(&bad, r[1].data, sizeof(bad));
    memcpy(&d, r[2].data, sizeof(d));
    int ok = r[0].size == size && bad == -1 && d == (int64_t)(seed * 1000003ULL + salt);
    printf("object %zu bytes, check %lld, digest %lld: %s\n", r[0].size, (long long)bad,
           (long long)d, ok ? "ok" : "WRONG");
    for (int i = 0; i < 3; i++)
        rayc_value_release(&r[i]);
    for (int i = 0; i < 2; i++) {
        rayc_ref_release(made[i]);
        rayc_ref_release(checked[i]);
    }
    rayc_ref_release(dg);
    rayc_shutdown();
    return ok ? 0 : 1;
}
