/* actorlib: a self-check of the actor test library on an embedded cluster:
 * a Counter counts, a Gauge answers its own "get". */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

static int64_t call_i64(rayc_actor a, const char *method)
{
    rayc_ref r;
    rayc_value v;
    int64_t out = -1;
    if (rayc_actor_call(a, method, NULL, 0, NULL, &r) != RAYC_OK)
        return -1;
    if (rayc_get(&r, 1, &v, 60000) == RAYC_OK && v.size == sizeof(out))
        memcpy(&out, v.data, sizeof(out));
    rayc_value_release(&v);
    rayc_ref_release(r);
    return out;
}

int main(void)
{
    char self[PATH_MAX], lib[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(lib, sizeof(lib), "%s/libactorlib_tasks.so", dirname(self));
    const char *code[] = {lib, NULL};
    rayc_init_opts opts = {.code = code};
    if (rayc_init(&opts) != RAYC_OK) {
        fprintf(stderr, "actorlib: %s\n", rayc_last_error());
        return 1;
    }
    int64_t start = 5;
    rayc_arg arg = RAYC_VAL(&start, sizeof(start));
    rayc_actor c, g;
    if (rayc_actor_create("Counter", &arg, 1, NULL, &c) != RAYC_OK ||
        rayc_actor_create("Gauge", &arg, 1, NULL, &g) != RAYC_OK) {
        fprintf(stderr, "actorlib: %s\n", rayc_last_error());
        return 1;
    }
    int64_t a = call_i64(c, "incr"), b = call_i64(c, "get"), k = call_i64(g, "get");
    printf("Counter: incr -> %lld, get -> %lld; Gauge: get -> %lld\n", (long long)a, (long long)b,
           (long long)k);
    rayc_shutdown();
    return a == 6 && b == 6 && k == 5000 ? 0 : 1;
}
