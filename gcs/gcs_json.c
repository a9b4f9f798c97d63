/*
 * gcs_json.c -- the JSON writer and the small member lookup; see
 * gcs_json.h. The lookup is a strict recursive-descent scanner with a depth
 * limit: request bodies come from the network.
 */
#include "gcs_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rayc.h"

#define SCAN_MAX_DEPTH 16

/* ------------------------------------------------------------- writer */

void gcs_json_init(gcs_json *j)
{
    memset(j, 0, sizeof(*j));
}

void gcs_json_free(gcs_json *j)
{
    free(j->buf);
    gcs_json_init(j);
}

char *gcs_json_take(gcs_json *j, size_t *len)
{
    char *out = j->oom ? NULL : j->buf;
    if (out == NULL && !j->oom)
        out = strdup("");
    if (len)
        *len = out ? j->len : 0;
    if (j->oom)
        free(j->buf);
    gcs_json_init(j);
    return out;
}

static void put(gcs_json *j, const char *s, size_t n)
{
    if (j->oom)
        return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap < j->len + n + 1)
            cap *= 2;
        char *nb = realloc(j->buf, cap);
        if (nb == NULL) {
            j->oom = true;
            return;
        }
        j->buf = nb;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void puts_(gcs_json *j, const char *s)
{
    put(j, s, strlen(s));
}

/* Comma before a value or key, unless first in its container or after a key. */
static void sep(gcs_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0) {
        if (j->need_comma[j->depth - 1])
            put(j, ",", 1);
        j->need_comma[j->depth - 1] = true;
    }
}

static void open_(gcs_json *j, char c)
{
    sep(j);
    CHECK(j->depth < GCS_JSON_MAX_DEPTH);
    put(j, &c, 1);
    j->need_comma[j->depth++] = false;
}

static void close_(gcs_json *j, char c)
{
    CHECK(j->depth > 0);
    j->depth--;
    put(j, &c, 1);
}

void gcs_json_obj_begin(gcs_json *j)
{
    open_(j, '{');
}
void gcs_json_obj_end(gcs_json *j)
{
    close_(j, '}');
}
void gcs_json_arr_begin(gcs_json *j)
{
    open_(j, '[');
}
void gcs_json_arr_end(gcs_json *j)
{
    close_(j, ']');
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

void gcs_json_escape(gcs_json *j, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(j, esc, 2);
            i++;
        } else if (c == '\n') {
            put(j, "\\n", 2), i++;
        } else if (c == '\t') {
            put(j, "\\t", 2), i++;
        } else if (c == '\r') {
            put(j, "\\r", 2), i++;
        } else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(j, esc, 6);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                puts_(j, "\\ufffd");
                i++;
            } else {
                put(j, (const char *)p + i, l);
                i += l;
            }
        }
    }
}

void gcs_json_key(gcs_json *j, const char *key)
{
    sep(j);
    put(j, "\"", 1);
    gcs_json_escape(j, key, strlen(key));
    put(j, "\":", 2);
    j->after_key = true;
}

void gcs_json_strn(gcs_json *j, const char *s, size_t n)
{
    sep(j);
    put(j, "\"", 1);
    gcs_json_escape(j, s, n);
    put(j, "\"", 1);
}

void gcs_json_str(gcs_json *j, const char *s)
{
    if (s == NULL)
        gcs_json_null(j);
    else
        gcs_json_strn(j, s, strlen(s));
}

void gcs_json_u64(gcs_json *j, uint64_t v)
{
    char b[24];
    sep(j);
    put(j, b, (size_t)snprintf(b, sizeof(b), "%llu", (unsigned long long)v));
}

void gcs_json_i64(gcs_json *j, int64_t v)
{
    char b[24];
    sep(j);
    put(j, b, (size_t)snprintf(b, sizeof(b), "%lld", (long long)v));
}

void gcs_json_dbl(gcs_json *j, double v)
{
    char b[32];
    if (!isfinite(v)) {
        gcs_json_null(j);
        return;
    }
    sep(j);
    put(j, b, (size_t)snprintf(b, sizeof(b), "%.17g", v));
}

void gcs_json_bool(gcs_json *j, bool v)
{
    sep(j);
    puts_(j, v ? "true" : "false");
}

void gcs_json_null(gcs_json *j)
{
    sep(j);
    puts_(j, "null");
}

void gcs_json_raw(gcs_json *j, const char *json)
{
    sep(j);
    puts_(j, json);
}

/* ------------------------------------------------------------- scanner */

typedef struct {
    const char *s;
    size_t n, i;
} scan;

static void ws(scan *sc)
{
    while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' || sc->s[sc->i] == '\n' ||
                             sc->s[sc->i] == '\r'))
        sc->i++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex4(scan *sc, unsigned *out)
{
    if (sc->i + 4 > sc->n)
        return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(sc->s[sc->i++]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static void put_utf8(gcs_json *o, unsigned cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80)
        b[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    put(o, b, n);
}

/* A string at sc->i (the opening quote); unescaped into out when non-NULL.
 * A NUL (\u0000) is refused: the result is a C string. */
static int str(scan *sc, gcs_json *out)
{
    if (sc->i >= sc->n || sc->s[sc->i] != '"')
        return -1;
    sc->i++;
    while (sc->i < sc->n) {
        unsigned char c = (unsigned char)sc->s[sc->i++];
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            if (out)
                put(out, (const char *)&c, 1);
            continue;
        }
        if (sc->i >= sc->n)
            return -1;
        char e = sc->s[sc->i++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e != '\0' && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            if (out)
                put(out, &map[simple - "\"\\/bfnrt"], 1);
        } else if (e == 'u') {
            unsigned cp, lo;
            if (hex4(sc, &cp) != 0 || cp == 0)
                return -1;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (sc->i + 2 > sc->n || sc->s[sc->i] != '\\' || sc->s[sc->i + 1] != 'u')
                    return -1;
                sc->i += 2;
                if (hex4(sc, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return -1;
            }
            if (out)
                put_utf8(out, cp);
        } else {
            return -1;
        }
    }
    return -1;
}

static int value(scan *sc, int depth);

static int container(scan *sc, int depth, char close)
{
    if (depth > SCAN_MAX_DEPTH)
        return -1;
    sc->i++;
    ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == close) {
        sc->i++;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (str(sc, NULL) != 0)
                return -1;
            ws(sc);
            if (sc->i >= sc->n || sc->s[sc->i++] != ':')
                return -1;
        }
        if (value(sc, depth + 1) != 0)
            return -1;
        ws(sc);
        if (sc->i >= sc->n)
            return -1;
        char c = sc->s[sc->i++];
        if (c == close)
            return 0;
        if (c != ',')
            return -1;
        ws(sc);
    }
}

static int literal(scan *sc, const char *lit)
{
    size_t l = strlen(lit);
    if (sc->i + l > sc->n || memcmp(sc->s + sc->i, lit, l) != 0)
        return -1;
    sc->i += l;
    return 0;
}

static int value(scan *sc, int depth)
{
    ws(sc);
    if (sc->i >= sc->n)
        return -1;
    char c = sc->s[sc->i];
    if (c == '"')
        return str(sc, NULL);
    if (c == '{')
        return container(sc, depth, '}');
    if (c == '[')
        return container(sc, depth, ']');
    if (c == 't')
        return literal(sc, "true");
    if (c == 'f')
        return literal(sc, "false");
    if (c == 'n')
        return literal(sc, "null");
    size_t start = sc->i;
    while (sc->i < sc->n && strchr("+-.0123456789eE", sc->s[sc->i]) && sc->s[sc->i])
        sc->i++;
    return sc->i > start ? 0 : -1;
}

/* Position sc just after the ':' of top-level member key. */
static int find_member(scan *sc, const char *key)
{
    ws(sc);
    if (sc->i >= sc->n || sc->s[sc->i] != '{')
        return RAYC_EINVAL;
    sc->i++;
    ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == '}')
        return RAYC_ENOTFOUND;
    for (;;) {
        gcs_json k;
        gcs_json_init(&k);
        int rc = str(sc, &k);
        bool match = rc == 0 && !k.oom && k.buf && strcmp(k.buf, key) == 0;
        if (rc == 0 && k.buf == NULL && key[0] == '\0')
            match = true;
        gcs_json_free(&k);
        if (rc != 0)
            return RAYC_EINVAL;
        ws(sc);
        if (sc->i >= sc->n || sc->s[sc->i++] != ':')
            return RAYC_EINVAL;
        ws(sc);
        if (match)
            return 0;
        if (value(sc, 1) != 0)
            return RAYC_EINVAL;
        ws(sc);
        if (sc->i >= sc->n)
            return RAYC_EINVAL;
        char c = sc->s[sc->i++];
        if (c == '}')
            return RAYC_ENOTFOUND;
        if (c != ',')
            return RAYC_EINVAL;
        ws(sc);
    }
}

int gcs_json_get_string(const char *json, size_t len, const char *key, char **out)
{
    scan sc = {json, len, 0};
    *out = NULL;
    int rc = find_member(&sc, key);
    if (rc != 0)
        return rc;
    if (sc.i >= sc.n || sc.s[sc.i] != '"')
        return value(&sc, 1) == 0 ? RAYC_ENOTFOUND : RAYC_EINVAL;
    gcs_json v;
    gcs_json_init(&v);
    if (str(&sc, &v) != 0) {
        gcs_json_free(&v);
        return RAYC_EINVAL;
    }
    *out = gcs_json_take(&v, NULL);
    return *out ? 0 : RAYC_ENOMEM;
}

int gcs_json_get_object(const char *json, size_t len, const char *key, const char **start,
                        size_t *olen)
{
    scan sc = {json, len, 0};
    int rc = find_member(&sc, key);
    if (rc != 0)
        return rc;
    if (sc.i >= sc.n || sc.s[sc.i] != '{')
        return value(&sc, 1) == 0 ? RAYC_ENOTFOUND : RAYC_EINVAL;
    size_t b = sc.i;
    if (container(&sc, 1, '}') != 0)
        return RAYC_EINVAL;
    *start = json + b;
    *olen = sc.i - b;
    return 0;
}
