/* hello: the DAG c(a(), b()) on a rayc cluster (an embedded one by default). */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

/* The task library sits next to this binary. */
static void library_path(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(out, len, "%s/libhello_tasks.so", dirname(self));
}

int main(void)
{
    char lib[PATH_MAX];
    library_path(lib, sizeof(lib));
    const char *code[] = {lib, NULL};
    rayc_init_opts opts = {.code = code};
    if (rayc_init(&opts) != RAYC_OK) {
        fprintf(stderr, "hello: rayc_init: %s\n", rayc_last_error());
        return 1;
    }
    rayc_ref ra, rb, rc;
    if (rayc_submit("a", NULL, 0, NULL, &ra) || rayc_submit("b", NULL, 0, NULL, &rb)) {
        fprintf(stderr, "hello: submit: %s\n", rayc_last_error());
        return 1;
    }
    rayc_arg args[] = {RAYC_REF(ra), RAYC_REF(rb)};
    if (rayc_submit("c", args, 2, NULL, &rc)) {
        fprintf(stderr, "hello: submit: %s\n", rayc_last_error());
        return 1;
    }
    rayc_value v;
    int err = rayc_get(&rc, 1, &v, 60000);
    if (err != RAYC_OK) {
        fprintf(stderr, "hello: get: %s: %s\n", rayc_strerror(err), rayc_last_error());
        return 1;
    }
    int64_t sum;
    memcpy(&sum, v.data, sizeof(sum));
    printf("c(a(), b()) = %lld\n", (long long)sum);
    rayc_value_release(&v);
    rayc_ref_release(ra);
    rayc_ref_release(rb);
    rayc_ref_release(rc);
    rayc_shutdown();
    return sum == 42 ? 0 : 1;
}
