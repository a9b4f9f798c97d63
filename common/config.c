/* config.c -- the knob table, filled from defaults, environment and flags. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *name;
    int type;
    const char *help;
    size_t offset;
} knob;

static const knob knobs[] = {
#define CONFIG__KNOB(type, name, def, help)                                                        \
    {#name, CONFIG_##type, help, offsetof(rayc_config, name)},
    CONFIG_KNOBS(CONFIG__KNOB)
#undef CONFIG__KNOB
};
#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))

void config_defaults(rayc_config *c)
{
    memset(c, 0, sizeof(*c));
#define CONFIG__DEF_STR(name, def)         c->name = strdup(def);
#define CONFIG__DEF_INT(name, def)         c->name = (def);
#define CONFIG__DEF_DBL(name, def)         c->name = (def);
#define CONFIG__DEF_SIZE(name, def)        c->name = (uint64_t)(def);
#define CONFIG__DEF_BOOL(name, def)        c->name = (def);
#define CONFIG__DEF(type, name, def, help) CONFIG__DEF_##type(name, def)
    CONFIG_KNOBS(CONFIG__DEF)
#undef CONFIG__DEF
}

void config_free(rayc_config *c)
{
    for (size_t i = 0; i < NKNOBS; i++) {
        if (knobs[i].type == CONFIG_STR) {
            char **p = (char **)((char *)c + knobs[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

int config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || !isfinite(v))
        return -1;
    uint64_t mult = 1;
    while (*end == ' ')
        end++;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        mult = 1ull << 10;
        end++;
        break;
    case 'M':
        mult = 1ull << 20;
        end++;
        break;
    case 'G':
        mult = 1ull << 30;
        end++;
        break;
    case 'T':
        mult = 1ull << 40;
        end++;
        break;
    case 'B':
        break;
    default:
        return -1;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        return -1;
    double bytes = v * (double)mult;
    if (bytes > 1.8e19)
        return -1;
    *out = (uint64_t)bytes;
    return 0;
}

static const knob *find(const char *name)
{
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof(norm))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
    for (size_t i = 0; i < NKNOBS; i++)
        if (strcmp(knobs[i].name, norm) == 0)
            return &knobs[i];
    return NULL;
}

int config_set(rayc_config *c, const char *name, const char *value, char *err, size_t errlen)
{
    const knob *k = find(name);
    if (k == NULL) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return -1;
    }
    void *field = (char *)c + k->offset;
    char *end;
    errno = 0;
    switch (k->type) {
    case CONFIG_STR: {
        char *copy = strdup(value);
        if (copy == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case CONFIG_INT: {
        long long v = strtoll(value, &end, 10);
        if (end == value || *end != '\0' || errno)
            break;
        *(int64_t *)field = v;
        return 0;
    }
    case CONFIG_DBL: {
        double v = strtod(value, &end);
        if (end == value || *end != '\0' || errno || !isfinite(v))
            break;
        *(double *)field = v;
        return 0;
    }
    case CONFIG_SIZE: {
        uint64_t v;
        if (config_parse_size(value, &v) != 0)
            break;
        *(uint64_t *)field = v;
        return 0;
    }
    case CONFIG_BOOL:
        if (strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0 ||
            strcasecmp(value, "yes") == 0) {
            *(bool *)field = true;
            return 0;
        }
        if (strcmp(value, "0") == 0 || strcasecmp(value, "false") == 0 ||
            strcasecmp(value, "no") == 0) {
            *(bool *)field = false;
            return 0;
        }
        break;
    }
    snprintf(err, errlen, "bad value '%s' for --%s", value, k->name);
    return -1;
}

int config_from_env(rayc_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKNOBS; i++) {
        char env[80] = "RAYC_";
        size_t j = 5;
        for (const char *p = knobs[i].name; *p && j < sizeof(env) - 1; p++)
            env[j++] = (char)toupper((unsigned char)*p);
        env[j] = '\0';
        const char *v = getenv(env);
        if (v != NULL && config_set(c, knobs[i].name, v, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int config_parse_args(rayc_config *c, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return -1;
        }
        a += 2;
        char name[64];
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof(name)) {
            snprintf(err, errlen, "unknown option '--%s'", a);
            return -1;
        }
        memcpy(name, a, n);
        name[n] = '\0';
        const knob *k = find(name);
        if (k == NULL) {
            snprintf(err, errlen, "unknown option '--%s'", name);
            return -1;
        }
        const char *value;
        if (eq)
            value = eq + 1;
        else if (k->type == CONFIG_BOOL)
            value = "1";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(err, errlen, "option '--%s' needs a value", name);
            return -1;
        }
        if (config_set(c, name, value, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* The value of knob k in c, as a user would write it. */
static void format_value(const rayc_config *c, const knob *k, char *buf, size_t len)
{
    const void *field = (const char *)c + k->offset;
    switch (k->type) {
    case CONFIG_STR: {
        const char *s = *(char *const *)field;
        snprintf(buf, len, "\"%s\"", s ? s : "");
        return;
    }
    case CONFIG_INT:
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)field);
        return;
    case CONFIG_DBL:
        snprintf(buf, len, "%g", *(const double *)field);
        return;
    case CONFIG_SIZE:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
        return;
    case CONFIG_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        return;
    }
    snprintf(buf, len, "?");
}

void config_usage(FILE *f)
{
    rayc_config d;
    config_defaults(&d);
    for (size_t i = 0; i < NKNOBS; i++) {
        char dash[64], def[96];
        size_t j = 0;
        for (const char *p = knobs[i].name; *p && j < sizeof(dash) - 1; p++)
            dash[j++] = *p == '_' ? '-' : *p;
        dash[j] = '\0';
        format_value(&d, &knobs[i], def, sizeof(def));
        fprintf(f, "  --%-28s %s (default %s)\n", dash, knobs[i].help, def);
    }
    config_free(&d);
}
