/* test_util.c -- host:port and resource parsing, files, clocks
 * (common/util.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* A private temp dir per test, removed with `rm -rf` at the end. */
/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(util, .timeout = 30);

static char tmpdir[64];

static void mk_tmp(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rayc_test_util_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* ------------------------------------------------------------ host:port */

Test(util, parse_host_port_ok)
{
    char host[64];
    int port = 0;
    cr_assert_eq(parse_host_port("127.0.0.1:6379", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 6379);
    cr_assert_eq(parse_host_port("localhost:1", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "localhost");
    cr_assert_eq(port, 1);
    cr_assert_eq(parse_host_port("h:65535", host, sizeof(host), &port), 0);
    cr_assert_eq(port, 65535);
}

Test(util, parse_host_port_bad)
{
    char host[16] = "untouched";
    int port = 42;
    const char *bad[] = {
        "",           "host",     ":80",      "host:",    "host:0",    "host:-1",
        "host:65536", "host:80x", "host: 80", "host:+80", "host:0x50", "a-very-long-host-name:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse_host_port(bad[i], host, sizeof(host), &port), -1, "'%s' accepted",
                     bad[i]);
    cr_assert_eq(parse_host_port(NULL, host, sizeof(host), &port), -1);
    cr_assert_str_eq(host, "untouched");
    cr_assert_eq(port, 42);
}

/* ------------------------------------------------------------ resources */

Test(util, res_parse_and_get)
{
    res_set s = {0};
    char err[128];
    cr_assert_eq(res_parse(&s, "CPU=4,GPU=1,custom=0.5", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(res_get(&s, "CPU"), 4.0);
    cr_assert_eq(res_get(&s, "GPU"), 1.0);
    cr_assert_eq(res_get(&s, "custom"), 0.5);
    cr_assert_eq(res_get(&s, "absent"), 0.0);
    /* Adds to what the set holds; a repeated name replaces. */
    cr_assert_eq(res_parse(&s, "CPU=8,mem=0", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s.n, 4);
    cr_assert_eq(res_get(&s, "CPU"), 8.0);
    cr_assert_eq(res_parse(&s, "", err, sizeof(err)), 0);
    cr_assert_eq(res_parse(&s, NULL, err, sizeof(err)), 0);
    cr_assert_eq(s.n, 4);
}

Test(util, res_parse_rejects_bad_specs)
{
    const char *bad[] = {"CPU",     "=4",      "CPU=",      "CPU=x",     "CPU=-1",
                         "CPU=nan", "CPU=inf", "CPU=1e999", "CPU=4,GPU", "CPU=4x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        res_set s = {0};
        char err[128] = "";
        cr_assert_eq(res_parse(&s, bad[i], err, sizeof(err)), -1, "'%s' accepted", bad[i]);
        cr_assert_neq(err[0], '\0', "no message for '%s'", bad[i]);
    }
}

Test(util, res_limits)
{
    res_set s = {0};
    char name[RES_NAME_MAX + 8], err[128];
    for (int i = 0; i < RES_MAX; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        cr_assert_eq(res_set_amount(&s, name, i), 0);
    }
    cr_assert_eq(res_set_amount(&s, "one_too_many", 1), -1);
    cr_assert_eq(res_set_amount(&s, "r3", 33), 0, "replacing works when full");
    cr_assert_eq(res_get(&s, "r3"), 33.0);
    cr_assert_eq(res_parse(&s, "another=1", err, sizeof(err)), -1);

    res_set t = {0};
    memset(name, 'n', RES_NAME_MAX);
    name[RES_NAME_MAX] = '\0';
    cr_assert_eq(res_set_amount(&t, name, 1), -1, "name too long");
    name[RES_NAME_MAX - 1] = '\0';
    cr_assert_eq(res_set_amount(&t, name, 1), 0, "longest name that fits");
}

Test(util, res_format_round_trips)
{
    res_set s = {0}, back = {0};
    char err[128], buf[256];
    cr_assert_eq(res_parse(&s, "CPU=2,GPU=0,memory=1073741824,x=0.25", err, sizeof(err)), 0);
    cr_assert_str_eq(res_format(&s, buf, sizeof(buf)), "CPU=2,GPU=0,memory=1073741824,x=0.25");
    cr_assert_eq(res_parse(&back, buf, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(back.n, s.n);
    for (int i = 0; i < s.n; i++)
        cr_assert_eq(res_get(&back, s.name[i]), s.amount[i]);
    res_set empty = {0};
    cr_assert_str_eq(res_format(&empty, buf, sizeof(buf)), "");
    /* A small buffer truncates but stays a C string. */
    char tiny[8];
    res_format(&s, tiny, sizeof(tiny));
    cr_assert_eq(strlen(tiny), sizeof(tiny) - 1);
    cr_assert_eq(strncmp(tiny, "CPU=2,G", 7), 0);
}

/* ------------------------------------------------------------ files */

Test(util, mkdir_p_creates_nested_dirs)
{
    mk_tmp();
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/a/b/c", tmpdir);
    cr_assert_eq(mkdir_p(path, 0700), 0, "%s", strerror(errno));
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(mkdir_p(path, 0700), 0, "existing dir is fine");
    snprintf(path, sizeof(path), "%s/x//y/", tmpdir);
    cr_assert_eq(mkdir_p(path, 0755), 0, "double and trailing slashes");
    snprintf(path, sizeof(path), "%s/x/y", tmpdir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    rm_tmp();
}

Test(util, mkdir_p_errors)
{
    mk_tmp();
    char path[256];
    snprintf(path, sizeof(path), "%s/file", tmpdir);
    cr_assert_eq(write_file(path, "x", 1, 0600), 0);
    errno = 0;
    cr_assert_eq(mkdir_p(path, 0700), -1, "a file is not a directory");
    cr_assert_eq(errno, ENOTDIR);
    snprintf(path, sizeof(path), "%s/file/sub", tmpdir);
    cr_assert_eq(mkdir_p(path, 0700), -1, "cannot create below a file");
    cr_assert_eq(mkdir_p("", 0700), -1);
    cr_assert_eq(errno, EINVAL);
    rm_tmp();
}

Test(util, write_then_read_file)
{
    mk_tmp();
    char path[256];
    snprintf(path, sizeof(path), "%s/f", tmpdir);
    cr_assert_eq(write_file(path, "hello\n", 6, 0600), 0);
    size_t len = 0;
    char *s = read_file(path, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, 6);
    cr_assert_str_eq(s, "hello\n", "NUL-terminated");
    free(s);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);

    /* Replace atomically with a larger binary file (crosses the 4 KiB read
     * buffer several times, contains NULs). */
    size_t big = 100000;
    uint8_t *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 31);
    cr_assert_eq(write_file(path, data, big, 0600), 0);
    s = read_file(path, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, big);
    cr_assert_eq(memcmp(s, data, big), 0);
    cr_assert_eq(s[big], '\0');
    free(s);
    free(data);

    /* Empty file; NULL len is allowed. */
    cr_assert_eq(write_file(path, "", 0, 0600), 0);
    s = read_file(path, NULL);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "");
    free(s);

    /* No temp file is left behind. */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", tmpdir);
    cr_assert_eq(system(cmd), 0);
    rm_tmp();
}

Test(util, file_errors)
{
    errno = 0;
    cr_assert_null(read_file("/nonexistent/rayc/file", NULL));
    cr_assert_eq(errno, ENOENT);
    cr_assert_eq(write_file("/nonexistent/rayc/file", "x", 1, 0600), -1);
    cr_assert_eq(errno, ENOENT);
}

Test(util, rstrip)
{
    char a[] = "token \t\r\n", b[] = "", c[] = "   ", d[] = "x";
    cr_assert_str_eq(rstrip(a), "token");
    cr_assert_str_eq(rstrip(b), "");
    cr_assert_str_eq(rstrip(c), "");
    cr_assert_str_eq(rstrip(d), "x");
}

Test(util, clocks_and_system)
{
    uint64_t m1 = now_ms(), u1 = now_us();
    usleep(20000);
    uint64_t m2 = now_ms(), u2 = now_us();
    cr_assert_geq(m2 - m1, 19);
    cr_assert_geq(u2 - u1, 19000);
    cr_assert_gt(wall_ms(), 1600000000000ull, "epoch milliseconds");
    cr_assert_gt(sys_memory_bytes(), 0);
    cr_assert_geq(sys_num_cpus(), 1);
}

/* hash_bytes is XXH64 with seed 0: the reference's published values, and
 * every length class (the 32-byte lanes, 8-, 4- and 1-byte tails). */
Test(util, hash_bytes_matches_xxh64)
{
    cr_assert_eq(hash_bytes("", 0), 0xef46db3751d8e999ull);
    cr_assert_eq(hash_bytes("a", 1), 0xd24ec4f1a98c6e5bull);
    cr_assert_eq(hash_bytes("abc", 3), 0x44bc2cf5ad770999ull);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    cr_assert_eq(hash_bytes(fox, strlen(fox)), 0x0b242d361fda71bcull);
}

Test(util, hash_bytes_sees_every_byte)
{
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7);
    for (size_t n = 0; n <= sizeof(buf); n += 13) {
        uint64_t h = hash_bytes(buf, n);
        for (size_t i = 0; i < n; i++) {
            buf[i] ^= 1;
            cr_assert_neq(hash_bytes(buf, n), h, "byte %zu of %zu is not hashed", i, n);
            buf[i] ^= 1;
        }
        if (n > 0)
            cr_assert_neq(hash_bytes(buf, n - 1), h, "the length is not hashed");
    }
}
