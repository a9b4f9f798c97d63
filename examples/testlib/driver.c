/*
 * testlib: a self-check of the integration tests' task library. Runs a few of
 * its functions (echo, add over refs, fib by nested tasks, an application
 * error) and exits 0 only if every answer is right.
 */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

#define TIMEOUT_MS 120000

static int failures;

static void check(int ok, const char *what)
{
    printf("%-28s %s\n", what, ok ? "ok" : "FAILED");
    if (!ok)
        failures++;
}

static int get_i64(rayc_ref r, int64_t *out)
{
    rayc_value v;
    int rc = rayc_get(&r, 1, &v, TIMEOUT_MS);
    if (rc == RAYC_OK && v.size == sizeof(*out))
        memcpy(out, v.data, sizeof(*out));
    else if (rc == RAYC_OK)
        rc = RAYC_EINVAL;
    if (rc != RAYC_ETIMEDOUT)
        rayc_value_release(&v);
    rayc_ref_release(r);
    return rc;
}

int main(void)
{
    char self[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(lib, sizeof(lib), "%s/libtestlib_tasks.so", dirname(self));
    const char *code[] = {lib, NULL};
    rayc_init_opts opts = {.code = code};
    if (rayc_init(&opts) != RAYC_OK) {
        fprintf(stderr, "testlib: rayc_init: %s\n", rayc_last_error());
        return 1;
    }

    /* echo of a string */
    rayc_ref r;
    rayc_arg a = RAYC_VAL("hello", 6);
    rayc_value v;
    int ok = rayc_submit("echo", &a, 1, NULL, &r) == 0 && rayc_get(&r, 1, &v, TIMEOUT_MS) == 0;
    if (ok) {
        ok = v.size == 6 && memcmp(v.data, "hello", 6) == 0;
        rayc_value_release(&v);
        rayc_ref_release(r);
    }
    check(ok, "echo");

    /* add(inc(1), inc(2)) through refs */
    int64_t one = 1, two = 2, sum = 0;
    rayc_ref ra, rb, rs;
    rayc_arg x = RAYC_VAL(&one, sizeof(one)), y = RAYC_VAL(&two, sizeof(two));
    ok = rayc_submit("inc", &x, 1, NULL, &ra) == 0 && rayc_submit("inc", &y, 1, NULL, &rb) == 0;
    if (ok) {
        rayc_arg refs[] = {RAYC_REF(ra), RAYC_REF(rb)};
        ok = rayc_submit("add", refs, 2, NULL, &rs) == 0;
        rayc_ref_release(ra);
        rayc_ref_release(rb);
        ok = ok && get_i64(rs, &sum) == 0 && sum == 5;
    }
    check(ok, "add(inc(1), inc(2)) == 5");

    /* fib by nested tasks (each level blocks a worker) */
    int64_t nfib = 6, f = 0;
    rayc_arg af = RAYC_VAL(&nfib, sizeof(nfib));
    ok = rayc_submit("fib", &af, 1, NULL, &r) == 0 && get_i64(r, &f) == 0 && f == 8;
    check(ok, "fib(6) == 8");

    /* an application error */
    ok = rayc_submit("fail_msg", NULL, 0, NULL, &r) == 0;
    if (ok) {
        int rc = rayc_get(&r, 1, &v, TIMEOUT_MS);
        ok = rc == RAYC_ETASK && v.error && strstr(v.error, "fail_msg: boom 7") != NULL;
        if (rc != RAYC_ETIMEDOUT)
            rayc_value_release(&v);
        rayc_ref_release(r);
    }
    check(ok, "fail_msg -> RAYC_ETASK");

    rayc_shutdown();
    printf("testlib: %s\n", failures ? "FAILED" : "all ok");
    return failures ? 1 : 0;
}
