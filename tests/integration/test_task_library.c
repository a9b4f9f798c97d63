/* test_task_library.c -- what users do by habit: a task library linked
 * with -lrayc (and no rpath) loads in every worker, and uses the worker's
 * own librayc, not a second copy (rayc_worker carries the soname
 * librayc.so, so the library's DT_NEEDED is already satisfied); and a
 * driver given an address but no token is told "no token". */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rayc.h"

TestSuite(task_library, .init = harness_setup, .fini = harness_teardown, .timeout = 180);

static const char LIB_SRC[] =
    "#include <rayc.h>\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include <stdint.h>\n"
    "/* 1 when a file named librayc.so is mapped in this process. */\n"
    "static int copies(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)\n"
    "{\n"
    "    (void)args; (void)nargs;\n"
    "    FILE *f = fopen(\"/proc/self/maps\", \"r\");\n"
    "    char line[4096];\n"
    "    int64_t mapped = 0;\n"
    "    while (f && fgets(line, sizeof(line), f))\n"
    "        if (strstr(line, \"/librayc.so\"))\n"
    "            mapped = 1;\n"
    "    if (f) fclose(f);\n"
    "    return rayc_return(ctx, 0, &mapped, sizeof(mapped));\n"
    "}\n"
    "RAYC_REMOTE(copies)\n";

Test(task_library, linked_with_lrayc_loads_and_shares_the_workers_librayc)
{
    char src[HARNESS_PATH + 16], lib[HARNESS_PATH + 16], inc[HARNESS_PATH + 16],
        libdir[HARNESS_PATH + 16];
    snprintf(src, sizeof(src), "%s/copies.c", harness_dir());
    snprintf(lib, sizeof(lib), "%s/libcopies.so", harness_dir());
    FILE *f = fopen(src, "w");
    cr_assert_not_null(f);
    fputs(LIB_SRC, f);
    fclose(f);
    /* include/ sits next to the build dir's parent: <repo>/include. */
    snprintf(inc, sizeof(inc), "-I%s/../include", harness_build());
    snprintf(libdir, sizeof(libdir), "-L%s/lib", harness_build());
    char *const cc[] = {"/usr/bin/cc", "-shared", "-fPIC", inc,      "-o",
                        lib,           src,       libdir,  "-lrayc", NULL};
    char *out = NULL, *err = NULL;
    int rc = harness_run(cc, &out, &err, 60000);
    cr_assert_eq(rc, 0, "cc: %s", err ? err : "");
    free(out);
    free(err);

    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    setenv("RAYC_TOKEN_FILE", c.token_file, 1);
    unsetenv("RAYC_TOKEN");
    unsetenv("LD_LIBRARY_PATH"); /* the workers must find nothing by path */
    const char *code[] = {lib, NULL};
    rayc_init_opts o = {.address = c.address, .code = code, .log_to_driver = -1};
    cr_assert_eq(rayc_init(&o), RAYC_OK, "%s", rayc_last_error());
    rayc_ref r;
    cr_assert_eq(rayc_submit("copies", NULL, 0, NULL, &r), RAYC_OK);
    rayc_value v;
    rc = rayc_get(&r, 1, &v, 60000);
    cr_assert_eq(rc, RAYC_OK, "%s: %s", rayc_strerror(rc), rayc_last_error());
    cr_assert_eq(*(const int64_t *)v.data, 0, "a second librayc.so was loaded in the worker");
    rayc_value_release(&v);
    rayc_ref_release(r);
    cr_assert_eq(rayc_shutdown(), RAYC_OK);
}

/* A driver that names a cluster by address but has no token at all is told
 * so ("no token", RAYC_ENOTFOUND), not that authentication failed. */
Test(task_library, driver_without_a_token_is_told_no_token)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet_start(&c, NULL);
    unsetenv("RAYC_TOKEN");
    unsetenv("RAYC_TOKEN_FILE");
    rayc_init_opts o = {.address = c.address, .log_to_driver = -1};
    int rc = rayc_init(&o);
    cr_assert_eq(rc, RAYC_ENOTFOUND, "got %s: %s", rayc_strerror(rc), rayc_last_error());
    cr_assert(strstr(rayc_last_error(), "no token") != NULL, "%s", rayc_last_error());
    cr_assert(strstr(rayc_last_error(), "RAYC_TOKEN_FILE") != NULL, "%s", rayc_last_error());
}
