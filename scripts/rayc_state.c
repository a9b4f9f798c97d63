/*
 * rayc_state.c -- `rayc list|summary|memory|job`: a small HTTP client of
 * the head's dashboard port (gcs/gcs_http.c). The head renders tables and
 * JSON (gcs/gcs_state.c), so this program only builds requests, sends the
 * cluster token, and prints answers; `job` follows Ray's job CLI.
 *
 *   rayc list nodes|jobs|tasks|objects|actors|placement-groups [--filter=key=value ...]
 *             [--limit=N] [--format=table|json] [--detail]
 *   rayc summary tasks|actors|objects [--filter=...] [--format=...]
 *   rayc memory [--group-by=node|owner] [--sort-by=size]
 *   rayc timeline [--output=FILE] [--job=ID]
 *   rayc job submit [--working-dir=DIR] [--no-wait] -- CMD ARGS...
 *   rayc job status|logs [--follow]|stop ID      rayc job list
 *   rayc logs [--node-id=ID] [FILE] [--follow]
 *
 * Every verb takes --address=HOST:PORT (the dashboard; also
 * $RAYC_DASHBOARD_ADDRESS, else <temp-dir>/session_latest/dashboard_address)
 * and a token (--token, --token-file, $RAYC_TOKEN, $RAYC_TOKEN_FILE, else
 * the local session's). Exit status: 0 success, 1 failure (one line
 * "rayc: <reason>"), 2 usage error. `job submit` without --no-wait and
 * `job logs --follow` exit 1 when the job did not succeed.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "ids.h"
#include "sha256.h"
#include "../gcs/gcs_json.h"
#include "util.h"

#define PROG        "rayc"
#define MAX_REPLY   (64u << 20)
#define POLL_MS     300
#define MAX_FILTERS 8

typedef struct {
    char host[256];
    int port;
    char token[AUTH_TOKEN_LEN + 64];
} client;

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

/* ------------------------------------------------------------ HTTP */

/* One request on a fresh connection; returns the status code and the body
 * in *body (malloc'd, NUL-terminated). Dies when the head is unreachable. */
static int http_send(const client *cl, const char *method, const char *path, const char *ctype,
                     const void *data, size_t blen, char **body)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", cl->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(cl->host, port, &hints, &ai) != 0)
        die(1, "cannot resolve %s", cl->host);
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        die(1, "dashboard unreachable at %s:%d: %s", cl->host, cl->port, strerror(errno));
    char *req = NULL;
    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, cl->host, cl->port, cl->token, ctype, blen);
    if (n < 0)
        die(1, "out of memory");
    const struct {
        const char *p;
        size_t n;
    } parts[2] = {{req, (size_t)n}, {data, blen}};
    for (int k = 0; k < 2; k++)
        for (size_t off = 0; off < parts[k].n;) {
            ssize_t w = write(fd, parts[k].p + off, parts[k].n - off);
            if (w <= 0)
                die(1, "write to the dashboard: %s", strerror(errno));
            off += (size_t)w;
        }
    free(req);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            die(1, "out of memory");
        if (len + 1 == cap) {
            if (cap >= MAX_REPLY)
                die(1, "the dashboard's reply is too large");
            cap *= 2;
            buf = realloc(buf, cap);
            continue;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die(1, "read from the dashboard: %s", strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || sep == NULL)
        die(1, "the dashboard at %s:%d sent no HTTP reply", cl->host, cl->port);
    *body = strdup(sep + 4);
    free(buf);
    if (*body == NULL)
        die(1, "out of memory");
    if (status == 401)
        die(1, "bad token: the dashboard at %s:%d refused the cluster token", cl->host, cl->port);
    return status;
}

/* A request with a JSON body (json may be NULL: none). */
static int http(const client *cl, const char *method, const char *path, const char *json,
                char **body)
{
    return http_send(cl, method, path, "application/json", json, json ? strlen(json) : 0, body);
}

/* Die with the server's {"error": ...} unless status is 200. */
static void check(int status, const char *body)
{
    if (status == 200)
        return;
    char *msg = NULL;
    if (gcs_json_get_string(body, strlen(body), "error", &msg) == 0)
        die(1, "%s", msg);
    die(1, "HTTP %d from the dashboard", status);
}

static char *get_str(const char *body, const char *key)
{
    char *v = NULL;
    if (gcs_json_get_string(body, strlen(body), key, &v) != 0)
        return NULL;
    return v;
}

/* A top-level number or boolean of our own server's JSON (keys are never
 * inside strings unescaped, so a plain search is exact). */
static const char *get_raw(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(body, pat);
    return p ? p + strlen(pat) : NULL;
}

/* Append s percent-encoded to out. */
static void urlenc(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out);
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c))
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
    }
    out[n] = '\0';
}

/* ------------------------------------------------------------ setup */

static const char *temp_root(void)
{
    const char *t = getenv("RAYC_TEMP_DIR");
    return t && *t ? t : "/tmp/rayc";
}

/* <temp root>/session_latest/<name> into path, once the temp root, the link
 * and the session are known to be this user's (another user's could name
 * their dashboard and token). */
static void local_session_file(const char *name, char *path, size_t len)
{
    char link[PATH_MAX], why[PATH_MAX + 128];
    snprintf(link, sizeof(link), "%s/session_latest", temp_root());
    if (path_is_mine(temp_root(), why, sizeof(why)) != 0 ||
        path_is_mine(link, why, sizeof(why)) != 0)
        die(1, "not following %s: %s; set RAYC_TEMP_DIR to a directory of yours", link, why);
    snprintf(path, len, "%s/%s", link, name);
}

static void read_first_line(const char *path, char *out, size_t cap, const char *what)
{
    char *s = read_file(path, NULL);
    if (s == NULL)
        die(1, "cannot read %s (%s): %s", what, path, strerror(errno));
    s[strcspn(s, "\r\n")] = '\0';
    snprintf(out, cap, "%s", s);
    memset(s, 0, strlen(s));
    free(s);
}

/* Strips --address/--token/--token-file from argv; fills cl. */
static void setup(client *cl, int *argc, char **argv)
{
    const char *addr = getenv("RAYC_DASHBOARD_ADDRESS"), *token = getenv("RAYC_TOKEN"),
               *token_file = getenv("RAYC_TOKEN_FILE");
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strncmp(argv[i], "--address=", 10) == 0)
            addr = argv[i] + 10;
        else if (strncmp(argv[i], "--token=", 8) == 0)
            token = argv[i] + 8;
        else if (strncmp(argv[i], "--token-file=", 13) == 0)
            token_file = argv[i] + 13;
        else
            argv[out++] = argv[i];
    }
    *argc = out;
    char path[PATH_MAX], buf[512];
    if (addr == NULL || *addr == '\0') {
        local_session_file("dashboard_address", path, sizeof(path));
        read_first_line(path, buf, sizeof(buf), "the local dashboard address");
        addr = buf;
    }
    if (strncmp(addr, "http://", 7) == 0)
        addr += 7;
    char a[300];
    snprintf(a, sizeof(a), "%s", addr);
    a[strcspn(a, "/")] = '\0';
    if (parse_host_port(a, cl->host, sizeof(cl->host), &cl->port) != 0)
        die(2, "bad --address '%s' (want HOST:PORT of the dashboard)", addr);
    if (token && *token) {
        snprintf(cl->token, sizeof(cl->token), "%s", token);
    } else {
        if (token_file == NULL || *token_file == '\0') {
            local_session_file("token", path, sizeof(path));
            token_file = path;
        }
        read_first_line(token_file, cl->token, sizeof(cl->token), "the cluster token");
    }
    for (const char *p = cl->token; *p; p++)
        if ((unsigned char)*p <= ' ')
            die(1, "the cluster token has a blank or control character");
}

/* ------------------------------------------------------------ verbs */

static int cmd_list(const client *cl, int argc, char **argv, const char *fixed)
{
    char path[4096];
    const char *res = fixed;
    const char *format = "table";
    int i = 0;
    if (res == NULL) {
        if (argc < 1)
            die(2, "list needs a resource: nodes, jobs, objects, placement-groups, tasks, actors");
        res = argv[i++];
    }
    char resource[64];
    snprintf(resource, sizeof(resource), "%s", res);
    for (char *p = resource; *p; p++)
        if (*p == '-')
            *p = '_';
    snprintf(path, sizeof(path), "/api/v0/%s?", resource);
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--filter=", 9) == 0) {
            strncat(path, "filter=", sizeof(path) - strlen(path) - 1);
            urlenc(path, sizeof(path), a + 9);
            strncat(path, "&", sizeof(path) - strlen(path) - 1);
        } else if (strncmp(a, "--limit=", 8) == 0) {
            strncat(path, "limit=", sizeof(path) - strlen(path) - 1);
            urlenc(path, sizeof(path), a + 8);
            strncat(path, "&", sizeof(path) - strlen(path) - 1);
        } else if (strncmp(a, "--format=", 9) == 0) {
            format = a + 9;
            if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
                die(2, "bad --format '%s' (table or json)", format);
        } else if (strcmp(a, "--detail") == 0) {
            strncat(path, "detail=1&", sizeof(path) - strlen(path) - 1);
        } else if (strncmp(a, "--group-by=", 11) == 0 && fixed && strcmp(fixed, "memory") == 0) {
            strncat(path, "group_by=", sizeof(path) - strlen(path) - 1);
            urlenc(path, sizeof(path), a + 11);
            strncat(path, "&", sizeof(path) - strlen(path) - 1);
        } else if (strncmp(a, "--sort-by=", 10) == 0 && fixed && strcmp(fixed, "memory") == 0) {
            if (strcmp(a + 10, "size") != 0)
                die(2, "bad --sort-by '%s' (size)", a + 10);
        } else {
            die(2, "unknown flag '%s'", a);
        }
    }
    strncat(path, "format=", sizeof(path) - strlen(path) - 1);
    strncat(path, format, sizeof(path) - strlen(path) - 1);
    char *body;
    int st = http(cl, "GET", path, NULL, &body);
    check(st, body);
    fputs(body, stdout);
    if (strcmp(format, "json") == 0)
        putchar('\n');
    free(body);
    return 0;
}

static void job_path(char *out, size_t cap, const char *id, const char *suffix)
{
    snprintf(out, cap, "/api/jobs/");
    urlenc(out, cap, id);
    strncat(out, suffix, cap - strlen(out) - 1);
}

static char *job_status(const client *cl, const char *id)
{
    char path[512], *body;
    job_path(path, sizeof(path), id, "");
    int st = http(cl, "GET", path, NULL, &body);
    if (st == 404)
        die(1, "no job '%s'", id);
    check(st, body);
    char *s = get_str(body, "status");
    free(body);
    if (s == NULL)
        die(1, "the dashboard's reply has no status");
    return s;
}

static bool terminal(const char *s)
{
    return strcmp(s, "SUCCEEDED") == 0 || strcmp(s, "FAILED") == 0 || strcmp(s, "STOPPED") == 0;
}

/* ------------------------------------------------------------ logs */

/* Print the files of a list reply: name and size, one a line. */
static void print_files(const char *body)
{
    printf("%-48s %12s\n", "FILE", "SIZE");
    for (const char *p = body; (p = strstr(p, "{\"name\":\"")) != NULL;) {
        p += 9;
        char name[512];
        size_t n = 0;
        for (; *p && *p != '"' && n + 1 < sizeof(name); p++) {
            if (*p == '\\' && p[1])
                p++; /* names are plain: an escape keeps the next char */
            name[n++] = *p;
        }
        name[n] = '\0';
        const char *sz = strstr(p, "\"size\":");
        printf("%-48s %12llu\n", name, sz ? strtoull(sz + 7, NULL, 10) : 0ull);
    }
}

/* rayc logs [--node-id=ID] [FILE] [--follow]: a node's log files (the head's
 * by default), relayed by the dashboard from that node's raylet. Without
 * FILE, the list; with it, the file (and with --follow, what it gains,
 * until interrupted). */
static int cmd_logs(const client *cl, int argc, char **argv)
{
    const char *node = NULL, *file = NULL;
    bool follow = false;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--node-id=", 10) == 0)
            node = argv[i] + 10;
        else if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0)
            follow = true;
        else if (argv[i][0] == '-')
            die(2, "unknown flag '%s' for 'logs'", argv[i]);
        else if (file == NULL)
            file = argv[i];
        else
            die(2, "logs takes one file name");
    }
    char enode[200] = "", efile[1024] = "", path[1400], *body;
    if (node)
        urlenc(enode, sizeof(enode), node);
    if (file == NULL) {
        snprintf(path, sizeof(path), "/api/v0/logs%s%s", node ? "?node_id=" : "", enode);
        int st = http(cl, "GET", path, NULL, &body);
        check(st, body);
        print_files(body);
        free(body);
        return 0;
    }
    urlenc(efile, sizeof(efile), file);
    unsigned long long offset = 0;
    for (;;) {
        snprintf(path, sizeof(path), "/api/v0/logs?filename=%s&offset=%llu%s%s", efile, offset,
                 node ? "&node_id=" : "", enode);
        int st = http(cl, "GET", path, NULL, &body);
        check(st, body);
        char *data = get_str(body, "data");
        const char *next = get_raw(body, "next_offset"), *size = get_raw(body, "size");
        unsigned long long nx = next ? strtoull(next, NULL, 10) : offset;
        unsigned long long sz = size ? strtoull(size, NULL, 10) : 0;
        if (data) {
            fputs(data, stdout);
            fflush(stdout);
        }
        free(data);
        free(body);
        if (nx < offset) /* the file was truncated or replaced: start again */
            nx = 0;
        bool more = nx > offset && nx < sz;
        offset = nx;
        if (more)
            continue;
        if (!follow)
            return 0;
        usleep(POLL_MS * 1000);
    }
}

/* rayc timeline [--output=FILE] [--job=ID]: the head's Chrome trace of the
 * task runs, written to FILE (default /tmp/rayc-timeline-<time>.json, like
 * Ray's; "-" is stdout). */
static int cmd_timeline(const client *cl, int argc, char **argv)
{
    const char *output = NULL, *job = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--output=", 9) == 0 && argv[i][9])
            output = argv[i] + 9;
        else if (strncmp(argv[i], "--job=", 6) == 0 && argv[i][6])
            job = argv[i] + 6;
        else
            die(2, "unknown flag '%s' for timeline (--output=FILE, --job=ID)", argv[i]);
    }
    char path[256] = "/api/v0/timeline", deflt[128];
    if (job) {
        strncat(path, "?job_id=", sizeof(path) - strlen(path) - 1);
        urlenc(path, sizeof(path), job);
    }
    char *body;
    int st = http(cl, "GET", path, NULL, &body);
    check(st, body);
    if (output == NULL) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(deflt, sizeof(deflt), "/tmp/rayc-timeline-%Y-%m-%d_%H-%M-%S.json", &tm);
        output = deflt;
    }
    size_t len = strlen(body);
    if (strcmp(output, "-") == 0) {
        fwrite(body, 1, len, stdout);
        putchar('\n');
    } else {
        if (write_file(output, body, len, 0644) != 0)
            die(1, "cannot write %s: %s", output, strerror(errno));
        const char *slices = body;
        size_t n = 0;
        while ((slices = strstr(slices, "\"ph\":\"X\"")) != NULL) {
            n++;
            slices++;
        }
        printf("Trace file written to %s (%zu task runs); open it in https://ui.perfetto.dev "
               "or chrome://tracing\n",
               output, n);
    }
    free(body);
    return 0;
}

/* Print the logs from *offset on; returns whether more are pending. */
static bool print_logs(const client *cl, const char *id, unsigned long long *offset)
{
    char path[512], q[64], *body;
    job_path(path, sizeof(path), id, "/logs");
    snprintf(q, sizeof(q), "?offset=%llu", *offset);
    strncat(path, q, sizeof(path) - strlen(path) - 1);
    int st = http(cl, "GET", path, NULL, &body);
    if (st == 404)
        die(1, "no job '%s'", id);
    check(st, body);
    char *logs = get_str(body, "logs");
    const char *off = get_raw(body, "offset"), *more = get_raw(body, "more");
    if (logs) {
        fputs(logs, stdout);
        fflush(stdout);
    }
    if (off)
        *offset = strtoull(off, NULL, 10);
    bool m = more && strncmp(more, "true", 4) == 0;
    free(logs);
    free(body);
    return m;
}

/* Tail the logs until the job ends; exit status 0 only if it succeeded. */
static int follow(const client *cl, const char *id, bool announce)
{
    unsigned long long off = 0;
    for (;;) {
        char *s = job_status(cl, id);
        bool done = terminal(s);
        while (print_logs(cl, id, &off))
            ;
        if (done) {
            int rc = strcmp(s, "SUCCEEDED") == 0 ? 0 : 1;
            if (announce) {
                char lower[16];
                snprintf(lower, sizeof(lower), "%s", s);
                for (char *p = lower; *p; p++)
                    *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
                printf("Job '%s' %s\n", id, lower);
            }
            free(s);
            return rc;
        }
        free(s);
        usleep(POLL_MS * 1000);
    }
}

/* ------------------------------------------------------------ working dirs */

#define PKG_MAX   (64u << 20) /* gcs/gcs_upload.h: GCS_UPLOAD_MAX */
#define PKG_PIECE 60000       /* under the dashboard's 64 KiB body cap */

/* DIR packed by tar as a .tar.gz in memory (*len bytes; the caller frees).
 * Dies if tar fails or the package passes PKG_MAX. */
static uint8_t *pack_dir(const char *dir, size_t *len)
{
    int p[2];
    if (pipe(p) != 0)
        die(1, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die(1, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execlp("tar", "tar", "-C", dir, "-czf", "-", ".", (char *)NULL);
        fprintf(stderr, PROG ": cannot run tar: %s\n", strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    bool too_big = false;
    for (;;) {
        if (buf == NULL)
            die(1, "out of memory");
        if (n == cap) {
            if (cap > PKG_MAX) {
                too_big = true;
                break;
            }
            buf = realloc(buf, cap *= 2);
            continue;
        }
        ssize_t r = read(p[0], buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(p[0]);
    if (too_big || n > PKG_MAX) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        die(1, "working dir %s packs to more than %u MiB: too big to upload", dir, PKG_MAX >> 20);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die(1, "cannot pack working dir %s (tar failed)", dir);
    *len = n;
    return buf;
}

/* Upload DIR to the head (unless a package with its hash is there) in
 * pieces; returns the URI the submission names (malloc'd). */
static char *upload_dir(const client *cl, const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        die(1, "working dir %s is not a directory", dir);
    size_t len;
    uint8_t *pkg = pack_dir(dir, &len), digest[SHA256_SIZE];
    char hash[2 * SHA256_SIZE + 1], path[256], *body;
    sha256(pkg, len, digest);
    id_hex(digest, SHA256_SIZE, hash);
    snprintf(path, sizeof(path), "/api/packages/%s", hash);
    int st = http(cl, "GET", path, NULL, &body);
    check(st, body);
    const char *exists = get_raw(body, "exists");
    bool have = exists && strncmp(exists, "true", 4) == 0;
    free(body);
    for (size_t off = 0; !have && (off < len || off == 0);) {
        size_t n = len - off < PKG_PIECE ? len - off : PKG_PIECE;
        snprintf(path, sizeof(path), "/api/packages/%s?offset=%zu", hash, off);
        st = http_send(cl, "POST", path, "application/octet-stream", pkg + off, n, &body);
        check(st, body);
        free(body);
        off += n;
        if (n == 0)
            break;
    }
    snprintf(path, sizeof(path), "/api/packages/%s?done=1", hash);
    char *uri = NULL;
    if (have) {
        if (asprintf(&uri, "gcs://_rayc_pkg_%s.tar.gz", hash) < 0)
            die(1, "out of memory");
    } else {
        st = http(cl, "POST", path, NULL, &body);
        check(st, body);
        uri = get_str(body, "uri");
        free(body);
    }
    free(pkg);
    if (uri == NULL)
        die(1, "the dashboard's reply has no package uri");
    return uri;
}

/* rayc job submit [--working-dir=DIR] [--no-wait] -- CMD ARGS... */
static int job_submit(const client *cl, int argc, char **argv)
{
    const char *wd = NULL;
    bool wait = true;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strncmp(argv[i], "--working-dir=", 14) == 0)
            wd = argv[i] + 14;
        else if (strcmp(argv[i], "--no-wait") == 0)
            wait = false;
        else if (strncmp(argv[i], "--code=", 7) == 0)
            die(2, "--code is not supported yet: name the code in the driver's rayc_init");
        else
            die(2, "unknown flag '%s' for 'job submit' (the command goes after --)", argv[i]);
    }
    if (i + 1 >= argc)
        die(2, "job submit needs an entrypoint after --");
    /* Ray joins the entrypoint's words with spaces; the head runs it
     * with /bin/sh -c, like Ray. */
    gcs_json j;
    gcs_json_init(&j);
    gcs_json_obj_begin(&j);
    gcs_json_key(&j, "entrypoint");
    size_t len = 0;
    for (int k = i + 1; k < argc; k++)
        len += strlen(argv[k]) + 1;
    char *entry = calloc(1, len + 1);
    if (entry == NULL)
        die(1, "out of memory");
    for (int k = i + 1; k < argc; k++) {
        if (k > i + 1)
            strcat(entry, " ");
        strcat(entry, argv[k]);
    }
    gcs_json_str(&j, entry);
    free(entry);
    if (wd) { /* packed here, uploaded through the head: no shared file system */
        char *uri = upload_dir(cl, wd);
        gcs_json_key(&j, "runtime_env");
        gcs_json_obj_begin(&j);
        gcs_json_key(&j, "working_dir");
        gcs_json_str(&j, uri);
        gcs_json_obj_end(&j);
        free(uri);
    }
    gcs_json_obj_end(&j);
    char *json = gcs_json_take(&j, NULL), *body;
    if (json == NULL)
        die(1, "out of memory");
    int st = http(cl, "POST", "/api/jobs/", json, &body);
    free(json);
    check(st, body);
    char *id = get_str(body, "submission_id");
    free(body);
    if (id == NULL)
        die(1, "the dashboard's reply has no submission_id");
    printf("Job '%s' submitted\n", id);
    fflush(stdout);
    int rc = 0;
    if (wait)
        rc = follow(cl, id, true);
    else
        printf("Query the status with: rayc job status %s\n", id);
    free(id);
    return rc;
}

/* rayc job stop ID: ask the head, then wait until the job has ended. */
static int job_stop(const client *cl, const char *id)
{
    char path[512], *body;
    job_path(path, sizeof(path), id, "/stop");
    int st = http(cl, "POST", path, NULL, &body);
    if (st == 404)
        die(1, "no job '%s'", id);
    check(st, body);
    const char *stopped = get_raw(body, "stopped");
    bool ok = stopped && strncmp(stopped, "true", 4) == 0;
    free(body);
    if (!ok) {
        char *s = job_status(cl, id);
        printf("Job '%s' already ended: %s\n", id, s);
        free(s);
        return 0;
    }
    /* Wait for the process group to be gone, as Ray's CLI waits. */
    for (;;) {
        char *s = job_status(cl, id);
        if (terminal(s)) {
            printf("Job '%s' stopped\n", id);
            free(s);
            return 0;
        }
        free(s);
        usleep(POLL_MS * 1000);
    }
}

static int cmd_job(const client *cl, int argc, char **argv)
{
    if (argc < 1)
        die(2, "job needs a command: submit, status, logs, stop, list");
    const char *sub = argv[0];
    if (strcmp(sub, "list") == 0) {
        if (argc != 1)
            die(2, "job list takes no arguments");
        const char *a[] = {"--filter=type=SUBMISSION"};
        return cmd_list(cl, 1, (char **)a, "jobs");
    }
    if (strcmp(sub, "submit") == 0)
        return job_submit(cl, argc, argv);
    if (argc < 2)
        die(2, "job %s needs a job id", sub);
    const char *id = argv[1];
    if (strcmp(sub, "status") == 0 && argc == 2) {
        char *s = job_status(cl, id);
        printf("Status for job '%s': %s\n", id, s);
        free(s);
        return 0;
    }
    if (strcmp(sub, "logs") == 0 &&
        (argc == 2 || (argc == 3 && strcmp(argv[2], "--follow") == 0))) {
        if (argc == 3)
            return follow(cl, id, false);
        unsigned long long off = 0;
        while (print_logs(cl, id, &off))
            ;
        return 0;
    }
    if (strcmp(sub, "stop") == 0 && argc == 2)
        return job_stop(cl, id);
    die(2, "bad arguments for 'job %s'", sub);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die(2, "usage: rayc list|summary|memory|timeline|job|logs ...");
    const char *verb = argv[1];
    int n = argc - 2;
    char **args = argv + 2;
    client cl;
    memset(&cl, 0, sizeof(cl));
    setup(&cl, &n, args);
    if (strcmp(verb, "list") == 0)
        return cmd_list(&cl, n, args, NULL);
    if (strcmp(verb, "summary") == 0) {
        if (n < 1 || (strcmp(args[0], "objects") != 0 && strcmp(args[0], "tasks") != 0 &&
                      strcmp(args[0], "actors") != 0))
            die(2, "summary tasks|actors|objects");
        char res[32];
        snprintf(res, sizeof(res), "summary/%s", args[0]);
        return cmd_list(&cl, n - 1, args + 1, res);
    }
    if (strcmp(verb, "timeline") == 0)
        return cmd_timeline(&cl, n, args);
    if (strcmp(verb, "memory") == 0)
        return cmd_list(&cl, n, args, "memory");
    if (strcmp(verb, "job") == 0)
        return cmd_job(&cl, n, args);
    if (strcmp(verb, "logs") == 0)
        return cmd_logs(&cl, n, args);
    die(2, "unknown command '%s'", verb);
}
