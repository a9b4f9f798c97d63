/* test_config.c -- the knob table: defaults, environment, flags, sizes
 * (common/config.h). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Every test has a deadline: a regression fails instead of hanging CI. */
TestSuite(config, .timeout = 30);

#define ARGV(...) ((char *[]){"prog", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"prog", __VA_ARGS__}) / sizeof(char *)))
/* Parse a literal argument list into c; returns config_parse_args's result. */
#define PARSE(c, err, ...)                                                                         \
    config_parse_args((c), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (err), sizeof(err))

Test(config, defaults)
{
    rayc_config c;
    config_defaults(&c);
    cr_assert_str_eq(c.log_level, "info");
    cr_assert_str_eq(c.log_file, "");
    cr_assert_eq(c.max_frame_bytes, 64u << 20);
    cr_assert_str_eq(c.node_ip_address, "127.0.0.1");
    cr_assert_eq(c.port, 6379);
    cr_assert_eq(c.head, false);
    cr_assert_eq(c.prefault_store, true);
    cr_assert_eq(c.num_cpus, -1.0);
    cr_assert_eq(c.inline_object_max, 100u << 10);
    cr_assert_eq(c.heartbeat_interval_ms, 1000);
    cr_assert_str_eq(c.storage, "redis");
    config_free(&c);
    cr_assert_null(c.log_level, "free clears the strings");
    config_free(&c); /* twice is harmless */
}

Test(config, env_overrides_defaults)
{
    rayc_config c;
    char err[256] = "";
    config_defaults(&c);
    setenv("RAYC_PORT", "7000", 1);
    setenv("RAYC_LOG_LEVEL", "debug", 1);
    setenv("RAYC_HEAD", "true", 1);
    setenv("RAYC_MAX_FRAME_BYTES", "1M", 1);
    setenv("RAYC_NUM_CPUS", "2.5", 1);
    cr_assert_eq(config_from_env(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.port, 7000);
    cr_assert_str_eq(c.log_level, "debug");
    cr_assert(c.head);
    cr_assert_eq(c.max_frame_bytes, 1u << 20);
    cr_assert_eq(c.num_cpus, 2.5);
    cr_assert_eq(c.heartbeat_interval_ms, 1000, "unset variables leave defaults");

    /* Flags win over the environment. */
    cr_assert_eq(PARSE(&c, err, "--port=7001"), 0, "%s", err);
    cr_assert_eq(c.port, 7001);
    config_free(&c);
}

Test(config, env_malformed_is_an_error)
{
    rayc_config c;
    char err[256] = "";
    config_defaults(&c);
    setenv("RAYC_HEARTBEAT_INTERVAL_MS", "soon", 1);
    cr_assert_eq(config_from_env(&c, err, sizeof(err)), -1);
    cr_assert(strstr(err, "soon") != NULL, "err names the value: %s", err);
    cr_assert(strstr(err, "heartbeat_interval_ms") != NULL, "err names the knob: %s", err);
    cr_assert_eq(c.heartbeat_interval_ms, 1000);
    config_free(&c);
}

Test(config, flag_forms)
{
    rayc_config c;
    char err[256] = "";
    config_defaults(&c);
    cr_assert_eq(PARSE(&c, err, "--port=1234", "--gcs-address", "10.0.0.1:6379", "--head",
                       "--log_level=warn", "--num-cpus", "4", "--object-store-memory=2G",
                       "--resources=foo=1,bar=2"),
                 0, "%s", err);
    cr_assert_eq(c.port, 1234);
    cr_assert_str_eq(c.gcs_address, "10.0.0.1:6379");
    cr_assert(c.head);
    cr_assert_str_eq(c.log_level, "warn");
    cr_assert_eq(c.num_cpus, 4.0);
    cr_assert_eq(c.object_store_memory, 2ull << 30);
    cr_assert_str_eq(c.resources, "foo=1,bar=2", "only the first '=' splits");
    config_free(&c);
}

Test(config, bool_flags)
{
    rayc_config c;
    char err[256] = "";
    config_defaults(&c);
    cr_assert_eq(PARSE(&c, err, "--prefault-store=false"), 0, "%s", err);
    cr_assert_not(c.prefault_store);
    cr_assert_eq(PARSE(&c, err, "--prefault-store"), 0, "%s", err);
    cr_assert(c.prefault_store, "a bare bool flag means true");
    const char *yes[] = {"1", "true", "TRUE", "yes"}, *no[] = {"0", "false", "False", "no"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(config_set(&c, "head", yes[i], err, sizeof(err)), 0, "%s", yes[i]);
        cr_assert(c.head, "%s", yes[i]);
        cr_assert_eq(config_set(&c, "head", no[i], err, sizeof(err)), 0, "%s", no[i]);
        cr_assert_not(c.head, "%s", no[i]);
    }
    cr_assert_eq(config_set(&c, "head", "maybe", err, sizeof(err)), -1);
    cr_assert_eq(config_set(&c, "head", "", err, sizeof(err)), -1);
    /* A bare bool flag does not swallow the next argument. */
    cr_assert_eq(PARSE(&c, err, "--head", "--port=5"), 0, "%s", err);
    cr_assert(c.head);
    cr_assert_eq(c.port, 5);
    config_free(&c);
}

Test(config, dashes_and_underscores_and_case)
{
    rayc_config c;
    char err[256];
    config_defaults(&c);
    cr_assert_eq(config_set(&c, "health-timeout-ms", "5", err, sizeof(err)), 0);
    cr_assert_eq(c.health_timeout_ms, 5);
    cr_assert_eq(config_set(&c, "health_timeout_ms", "6", err, sizeof(err)), 0);
    cr_assert_eq(c.health_timeout_ms, 6);
    cr_assert_eq(config_set(&c, "HEALTH_TIMEOUT_MS", "7", err, sizeof(err)), 0);
    cr_assert_eq(c.health_timeout_ms, 7);
    config_free(&c);
}

Test(config, unknown_flag_rejected_with_message)
{
    rayc_config c;
    char err[256] = "";
    config_defaults(&c);
    cr_assert_eq(PARSE(&c, err, "--no-such-knob=1"), -1);
    cr_assert(strstr(err, "no-such-knob") != NULL, "%s", err);
    err[0] = '\0';
    cr_assert_eq(PARSE(&c, err, "positional"), -1);
    cr_assert(strstr(err, "positional") != NULL, "%s", err);
    err[0] = '\0';
    cr_assert_eq(PARSE(&c, err, "-p", "5"), -1, "single-dash flags are not ours");
    cr_assert_neq(err[0], '\0');
    err[0] = '\0';
    cr_assert_eq(PARSE(&c, err, "--"), -1);
    cr_assert_neq(err[0], '\0');
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[0] = longname[1] = '-';
    longname[sizeof(longname) - 1] = '\0';
    err[0] = '\0';
    cr_assert_eq(PARSE(&c, err, longname), -1);
    cr_assert_neq(err[0], '\0');
    err[0] = '\0';
    cr_assert_eq(config_set(&c, "bogus", "1", err, sizeof(err)), -1);
    cr_assert(strstr(err, "bogus") != NULL, "%s", err);
    config_free(&c);
}

Test(config, malformed_values_rejected_and_knob_unchanged)
{
    rayc_config c;
    char err[256];
    config_defaults(&c);
    struct {
        const char *name, *value;
    } bad[] = {
        {"port", "abc"},
        {"port", "12x"},
        {"port", ""},
        {"port", "99999999999999999999999"},
        {"num_cpus", "lots"},
        {"num_cpus", "nan"},
        {"num_cpus", "inf"},
        {"num_cpus", "1.5.2"},
        {"memory", "-1"},
        {"memory", "12Q"},
        {"memory", "M"},
        {"memory", ""},
        {"memory", "nan"},
        {"memory", "1e30"},
        {"prefault_store", "2"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(config_set(&c, bad[i].name, bad[i].value, err, sizeof(err)), -1,
                     "--%s=%s accepted", bad[i].name, bad[i].value);
        cr_assert(strstr(err, bad[i].name) != NULL, "message names the knob: %s", err);
    }
    cr_assert_eq(c.port, 6379);
    cr_assert_eq(c.num_cpus, -1.0);
    cr_assert_eq(c.memory, 0);
    cr_assert(c.prefault_store);
    config_free(&c);
}

Test(config, missing_value_rejected)
{
    rayc_config c;
    char err[256] = "";
    config_defaults(&c);
    cr_assert_eq(PARSE(&c, err, "--port"), -1);
    cr_assert(strstr(err, "port") != NULL, "%s", err);
    config_free(&c);
}

Test(config, string_values_replace_and_do_not_leak)
{
    rayc_config c;
    char err[256];
    config_defaults(&c);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(config_set(&c, "session-dir", "/tmp/x", err, sizeof(err)), 0);
    cr_assert_str_eq(c.session_dir, "/tmp/x");
    cr_assert_eq(config_set(&c, "session-dir", "", err, sizeof(err)), 0);
    cr_assert_str_eq(c.session_dir, "");
    config_free(&c);
}

Test(config, size_suffixes)
{
    struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"1048576", 1048576},
        {"1K", 1024},
        {"1k", 1024},
        {"64M", 64ull << 20},
        {"1G", 1ull << 30},
        {"2T", 2ull << 40},
        {"2KiB", 2048},
        {"2Ki", 2048},
        {"2KB", 2048},
        {"3MiB", 3ull << 20},
        {"1.5K", 1536},
        {"0.5G", 512ull << 20},
        {"100B", 100},
        {"100b", 100},
        {"64 M", 64ull << 20},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        cr_assert_eq(config_parse_size(ok[i].s, &v), 0, "'%s' rejected", ok[i].s);
        cr_assert_eq(v, ok[i].v, "'%s' -> %llu", ok[i].s, (unsigned long long)v);
    }
    const char *bad[] = {"",      "K",   "-1",  "-1K",  "1X",  "1KK",
                         "1KiBB", "nan", "inf", "1e20", "20E", "1 K B"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 12345;
        cr_assert_eq(config_parse_size(bad[i], &v), -1, "'%s' accepted", bad[i]);
        cr_assert_eq(v, 12345, "'%s' wrote the output", bad[i]);
    }
}

Test(config, usage_lists_every_knob_with_its_default)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    config_usage(f);
    fclose(f);
    cr_assert(strstr(text, "--max-frame-bytes") != NULL);
    cr_assert(strstr(text, "--object-store-memory") != NULL);
    cr_assert(strstr(text, "--raylet-port") != NULL);
    cr_assert(strstr(text, "largest frame a peer may send") != NULL, "help text shown");
    cr_assert(strstr(text, "6379") != NULL, "default of --port shown:\n%s", text);
    cr_assert(strstr(text, "127.0.0.1") != NULL, "default of --node-ip-address shown");
    free(text);
}
