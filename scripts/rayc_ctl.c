/*
 * rayc_ctl.c -- the C half of the `rayc` CLI: everything that speaks the wire
 * protocol or needs a syscall bash lacks. scripts/rayc calls it; tests call it
 * directly.
 *
 *   rayc_ctl ping       --address=H:P [token]          handshake with the GCS
 *   rayc_ctl status     --address=H:P [token]          node table + job counts
 *   rayc_ctl nodes      --address=H:P [token] [--format=table|tsv]
 *   rayc_ctl jobs       --address=H:P [token] [--format=table|tsv]
 *   rayc_ctl kv-put     --address=H:P [token] --ns=NS --key=K --value=V [--overwrite]
 *   rayc_ctl kv-get     --address=H:P [token] --ns=NS --key=K
 *   rayc_ctl port-check --address=IP:PORT              can we listen there?
 *   rayc_ctl redis-ping --socket=PATH [--password-file=F]
 *   rayc_ctl supervise  --session-dir=S                 restart S's Redis and GCS on death
 *                                                       (rayc_supervise.c)
 *
 * [token] is --token=T or --token-file=F, else $RAYC_TOKEN, else
 * $RAYC_TOKEN_FILE. Every command also takes --timeout-ms=N (default 5000).
 * Flags are parsed strictly: an unknown flag, or one the command does not
 * take, is an error. Exit status: 0 success, 1 failure (one line
 * "rayc_ctl: <reason>" on stderr), 2 usage error.
 *
 * Single-threaded, blocking; one connection per invocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "bconn.h"
#include "ids.h"
#include "msg.h"
#include "net.h"
#include "rayc.h"
#include "rayc_ctl.h"
#include "util.h"

/* ------------------------------------------------------------ flags */

typedef int (*cmd_fn)(const opts_t *o);

typedef struct {
    const char *name;
    cmd_fn fn;
    const char *flags;    /* space-separated names it accepts */
    const char *required; /* space-separated names it needs */
    const char *help;
} cmd_t;

void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rayc_ctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/* true when `word` is one of the space-separated names in `list`. */
static int in_list(const char *list, const char *word, size_t len)
{
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, word, len) == 0)
            return 1;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

static const char **opt_slot(opts_t *o, const char *name)
{
    if (strcmp(name, "address") == 0)
        return &o->address;
    if (strcmp(name, "token") == 0)
        return &o->token;
    if (strcmp(name, "token-file") == 0)
        return &o->token_file;
    if (strcmp(name, "format") == 0)
        return &o->format;
    if (strcmp(name, "ns") == 0)
        return &o->ns;
    if (strcmp(name, "key") == 0)
        return &o->key;
    if (strcmp(name, "value") == 0)
        return &o->value;
    if (strcmp(name, "socket") == 0)
        return &o->socket;
    if (strcmp(name, "password-file") == 0)
        return &o->password_file;
    if (strcmp(name, "session-dir") == 0)
        return &o->session_dir;
    return NULL;
}

static void parse_flags(const cmd_t *cmd, int argc, char **argv, opts_t *o)
{
    static const char *const common = "timeout-ms";
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 5000;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            die(EXIT_USAGE, "%s: unexpected argument '%s'", cmd->name, a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        char key[64];
        if (nlen == 0 || nlen >= sizeof(key))
            die(EXIT_USAGE, "%s: bad flag '%s'", cmd->name, a);
        memcpy(key, name, nlen);
        key[nlen] = '\0';
        for (char *k = key; *k; k++)
            if (*k == '_')
                *k = '-';
        if (!in_list(cmd->flags, key, nlen) && !in_list(common, key, nlen))
            die(EXIT_USAGE, "%s: unknown flag --%s", cmd->name, key);
        if (strcmp(key, "overwrite") == 0) {
            if (eq)
                die(EXIT_USAGE, "%s: --overwrite takes no value", cmd->name);
            o->overwrite = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (val == NULL) {
            if (i + 1 >= argc)
                die(EXIT_USAGE, "%s: --%s needs a value", cmd->name, key);
            val = argv[++i];
        }
        if (strcmp(key, "timeout-ms") == 0) {
            char *end;
            long v = strtol(val, &end, 10);
            if (*val == '\0' || *end != '\0' || v < 0 || v > 3600000)
                die(EXIT_USAGE, "%s: bad --timeout-ms '%s'", cmd->name, val);
            o->timeout_ms = (int)v;
            continue;
        }
        *opt_slot(o, key) = val;
    }
    /* required flags */
    const char *p = cmd->required;
    while (p && *p) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        if (*opt_slot(o, key) == NULL)
            die(EXIT_USAGE, "%s: --%s is required", cmd->name, key);
        p = end ? end + 1 : p + n;
    }
    if (o->format && strcmp(o->format, "table") != 0 && strcmp(o->format, "tsv") != 0)
        die(EXIT_USAGE, "%s: --format must be table or tsv", cmd->name);
}

/* ------------------------------------------------------ connecting */

/* Handshake with the GCS at `address` as a CLI peer, proving the token
 * (token, else the first line of token_file). Returns the connection, or NULL
 * with *code (RAYC_ECONN, RAYC_EAUTH, RAYC_ETIMEDOUT, ...) and err set. */
bconn *gcs_try_connect(const char *address, const char *tok, const char *tok_file, int timeout_ms,
                       int *code, char *err, size_t errlen)
{
    char host[256], token[AUTH_TOKEN_LEN + 64];
    int port;
    *code = RAYC_EINVAL;
    if (parse_host_port(address, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "bad address '%s' (want HOST:PORT)", address);
        return NULL;
    }
    if (auth_token_load(tok, tok_file, token, sizeof(token), err, errlen) != 0)
        return NULL;
    Rpc__Handshake hs = RPC__HANDSHAKE__INIT;
    hs.role = RPC__ROLE__ROLE_CLI;
    hs.pid = (int32_t)getpid();
    hs.name = "rayc_ctl";
    *code = 0;
    bconn *b = bconn_open(host, port, NULL, token, &hs, timeout_ms, NULL, NULL, 0, NULL, code, err,
                          errlen);
    memset(token, 0, sizeof(token));
    return b;
}

/* Handshake with the GCS at o->address as a CLI peer; exits with one line
 * saying why on failure (unreachable, bad token, timeout). */
static bconn *gcs_connect(const opts_t *o)
{
    char host[256], err[256];
    int port;
    if (parse_host_port(o->address, host, sizeof(host), &port) != 0)
        die(EXIT_USAGE, "bad address '%s' (want HOST:PORT)", o->address);
    const char *tok = o->token, *tok_file = o->token_file;
    if (tok == NULL && tok_file == NULL) {
        tok = getenv("RAYC_TOKEN");
        tok_file = getenv("RAYC_TOKEN_FILE");
        if ((tok == NULL || *tok == '\0') && (tok_file == NULL || *tok_file == '\0'))
            die(EXIT_FAIL, "no token: give --token=T or --token-file=F, or set RAYC_TOKEN or "
                           "RAYC_TOKEN_FILE");
    }
    int code = 0;
    bconn *b = gcs_try_connect(o->address, tok, tok_file, o->timeout_ms, &code, err, sizeof(err));
    if (b != NULL)
        return b;
    switch (code) {
    case RAYC_EINVAL:
        die(EXIT_FAIL, "%s", err); /* the token could not be loaded */
    case RAYC_ECONN:
        die(EXIT_FAIL, "head unreachable: cannot reach the GCS at %s (%s)", o->address, err);
    case RAYC_EAUTH:
        die(EXIT_FAIL, "bad token: the GCS at %s refused the cluster token", o->address);
    case RAYC_ETIMEDOUT:
        die(EXIT_FAIL, "head unreachable: no answer from the GCS at %s within %d ms", o->address,
            o->timeout_ms);
    default:
        die(EXIT_FAIL, "cannot talk to the GCS at %s: %s", o->address, err);
    }
}

/* Send req, wait for its reply, check the reply's status; exits on failure. */
static ProtobufCMessage *call(bconn *b, uint16_t req_type, const ProtobufCMessage *req,
                              uint16_t reply_type, int timeout_ms, int *status_code)
{
    ProtobufCMessage *r = NULL;
    int rc = bconn_call(b, req_type, req, reply_type, &r, timeout_ms);
    if (rc != 0)
        die(EXIT_FAIL, "%s failed: %s", msg_name(req_type), rayc_strerror(rc));
    /* Every reply carries its Status as field 2 (proto/rayc.proto). */
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(r->descriptor, "status");
    Rpc__Status *st = f ? *(Rpc__Status **)((char *)r + f->offset) : NULL;
    *status_code = st ? st->code : 0;
    if (st && st->code != 0 && st->code != RAYC_ENOTFOUND)
        die(EXIT_FAIL, "%s refused: %s%s%s", msg_name(req_type), rayc_strerror(st->code),
            st->message && *st->message ? ": " : "", st->message ? st->message : "");
    return r;
}

/* ------------------------------------------------------- formatting */

static const char *human_bytes(uint64_t v, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lluB", (unsigned long long)v);
    else
        snprintf(buf, len, "%.1f%s", d, unit[u]);
    return buf;
}

static const char *human_duration(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (s < 60)
        snprintf(buf, len, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, len, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
    return buf;
}

static double res_amount(Rpc__Resource **r, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(r[i]->name, name) == 0)
            return r[i]->amount;
    return 0;
}

/* Resources that are not CPU/GPU/memory: the user's custom ones. */
static int is_custom(const char *name)
{
    return strcmp(name, "CPU") != 0 && strcmp(name, "GPU") != 0 && strcmp(name, "memory") != 0 &&
           strcmp(name, "object_store_memory") != 0 && strncmp(name, "node:", 5) != 0;
}

/* "name=used/total,..." or "-" (table); "name=total,..." (tsv). */
static const char *custom_resources(const Rpc__NodeInfo *n, int with_used, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n->n_resources_total && off < len; i++) {
        const Rpc__Resource *r = n->resources_total[i];
        if (!is_custom(r->name))
            continue;
        if (with_used) {
            double avail = res_amount(n->resources_available, n->n_resources_available, r->name);
            off += (size_t)snprintf(buf + off, len - off, "%s%s=%g/%g", off ? "," : "", r->name,
                                    r->amount - avail, r->amount);
        } else {
            off += (size_t)snprintf(buf + off, len - off, "%s%s=%g", off ? "," : "", r->name,
                                    r->amount);
        }
    }
    if (off == 0)
        snprintf(buf, len, "-");
    return buf;
}

static const char *node_state_name(int s)
{
    return s == RPC__NODE_STATE__NODE_ALIVE  ? "ALIVE"
           : s == RPC__NODE_STATE__NODE_DEAD ? "DEAD"
                                             : "?";
}

static const char *job_state_name(int s)
{
    switch (s) {
    case RPC__JOB_STATE__JOB_RUNNING:
        return "RUNNING";
    case RPC__JOB_STATE__JOB_FINISHED:
        return "FINISHED";
    case RPC__JOB_STATE__JOB_FAILED:
        return "FAILED";
    }
    return "?";
}

static Rpc__ListNodesReply *list_nodes(bconn *b, const opts_t *o)
{
    Rpc__ListNodesRequest req = RPC__LIST_NODES_REQUEST__INIT;
    req.req_id = 1;
    int st;
    return (Rpc__ListNodesReply *)call(b, MSG_LIST_NODES_REQ, &req.base, MSG_LIST_NODES_REPLY,
                                       o->timeout_ms, &st);
}

static Rpc__ListJobsReply *list_jobs(bconn *b, const opts_t *o)
{
    Rpc__ListJobsRequest req = RPC__LIST_JOBS_REQUEST__INIT;
    req.req_id = 2;
    int st;
    return (Rpc__ListJobsReply *)call(b, MSG_LIST_JOBS_REQ, &req.base, MSG_LIST_JOBS_REPLY,
                                      o->timeout_ms, &st);
}

/* Tab-separated, one node a line, columns documented in docs/cli.md. */
static void print_nodes_tsv(const Rpc__ListNodesReply *r)
{
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Rpc__NodeInfo *n = r->nodes[i];
        char hex[2 * NODE_ID_SIZE + 1] = "", custom[1024];
        if (n->node_id.len == NODE_ID_SIZE)
            id_hex(n->node_id.data, NODE_ID_SIZE, hex);
        printf("%s\t%s\t%s\t%d\t%g\t%g\t%g\t%g\t%llu\t%llu\t%llu\t%llu\t%llu\t%s\t%s\t%s\n", hex,
               n->address, node_state_name(n->state), n->is_head ? 1 : 0,
               res_amount(n->resources_total, n->n_resources_total, "CPU"),
               res_amount(n->resources_available, n->n_resources_available, "CPU"),
               res_amount(n->resources_total, n->n_resources_total, "GPU"),
               res_amount(n->resources_available, n->n_resources_available, "GPU"),
               (unsigned long long)n->store_capacity, (unsigned long long)n->store_used,
               (unsigned long long)n->store_objects, (unsigned long long)n->spilled_bytes,
               (unsigned long long)n->pending_tasks, custom_resources(n, 0, custom, sizeof(custom)),
               n->socket_path, n->session_dir);
    }
}

static void print_nodes_table(const Rpc__ListNodesReply *r)
{
    uint64_t now = wall_ms();
    printf("%-12s  %-21s  %-5s  %-4s  %-11s  %-9s  %-18s  %-21s  %7s  %9s  %7s  %s\n", "NODE",
           "ADDRESS", "STATE", "HEAD", "CPU", "GPU", "RESOURCES", "STORE", "OBJECTS", "SPILLED",
           "PENDING", "UPTIME");
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Rpc__NodeInfo *n = r->nodes[i];
        char hex[2 * NODE_ID_SIZE + 1] = "?", cpu[32], gpu[32], custom[512], used[32], cap[32],
                                    store[80], spilled[32], up[32];
        if (n->node_id.len == NODE_ID_SIZE)
            id_hex(n->node_id.data, NODE_ID_SIZE, hex);
        hex[12] = '\0';
        double ct = res_amount(n->resources_total, n->n_resources_total, "CPU");
        double ca = res_amount(n->resources_available, n->n_resources_available, "CPU");
        double gt = res_amount(n->resources_total, n->n_resources_total, "GPU");
        double ga = res_amount(n->resources_available, n->n_resources_available, "GPU");
        snprintf(cpu, sizeof(cpu), "%g/%g", ct - ca, ct);
        snprintf(gpu, sizeof(gpu), "%g/%g", gt - ga, gt);
        snprintf(store, sizeof(store), "%s/%s", human_bytes(n->store_used, used, sizeof(used)),
                 human_bytes(n->store_capacity, cap, sizeof(cap)));
        uint64_t end =
            n->state == RPC__NODE_STATE__NODE_DEAD && n->end_time_ms ? n->end_time_ms : now;
        if (n->start_time_ms && end >= n->start_time_ms)
            human_duration(end - n->start_time_ms, up, sizeof(up));
        else
            snprintf(up, sizeof(up), "-");
        printf("%-12s  %-21s  %-5s  %-4s  %-11s  %-9s  %-18s  %-21s  %7llu  %9s  %7llu  %s\n", hex,
               n->address, node_state_name(n->state), n->is_head ? "*" : "", cpu, gpu,
               custom_resources(n, 1, custom, sizeof(custom)), store,
               (unsigned long long)n->store_objects,
               human_bytes(n->spilled_bytes, spilled, sizeof(spilled)),
               (unsigned long long)n->pending_tasks, up);
        if (n->state == RPC__NODE_STATE__NODE_DEAD && n->death_reason && *n->death_reason)
            printf("%-12s  (dead: %s)\n", "", n->death_reason);
    }
}

static void print_jobs(const Rpc__ListJobsReply *r, int tsv)
{
    if (!tsv)
        printf("%-6s  %-8s  %-8s  %-10s  %s\n", "JOB", "STATE", "PID", "DURATION", "ENTRYPOINT");
    uint64_t now = wall_ms();
    for (size_t i = 0; i < r->n_jobs; i++) {
        const Rpc__JobInfo *j = r->jobs[i];
        if (tsv) {
            printf("%u\t%s\t%d\t%llu\t%llu\t%s\n", j->job_id, job_state_name(j->state),
                   j->driver_pid, (unsigned long long)j->start_time_ms,
                   (unsigned long long)j->end_time_ms, j->entrypoint);
            continue;
        }
        char dur[32] = "-";
        uint64_t end = j->end_time_ms ? j->end_time_ms : now;
        if (j->start_time_ms && end >= j->start_time_ms)
            human_duration(end - j->start_time_ms, dur, sizeof(dur));
        printf("%-6u  %-8s  %-8d  %-10s  %s\n", j->job_id, job_state_name(j->state), j->driver_pid,
               dur, j->entrypoint && *j->entrypoint ? j->entrypoint : "-");
    }
}

/* --------------------------------------------------------- commands */

static int cmd_ping(const opts_t *o)
{
    bconn_close(gcs_connect(o));
    return 0;
}

/* "GCS <address>  up 3m12s, restarted 2 times (Redis 0)": the head
 * supervisor's record in the KV ("rayc"/"head"); just the address when the
 * GCS is not supervised (started by hand or by a test). */
static void print_gcs_line(bconn *b, const opts_t *o)
{
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    req.req_id = 6;
    req.ns = "rayc";
    req.key.data = (uint8_t *)"head";
    req.key.len = 4;
    int st;
    Rpc__KvGetReply *r =
        (Rpc__KvGetReply *)call(b, MSG_KV_GET_REQ, &req.base, MSG_KV_GET_REPLY, o->timeout_ms, &st);
    char text[512] = "";
    if (st == 0)
        snprintf(text, sizeof(text), "%.*s", (int)r->value.len, (const char *)r->value.data);
    msg_free(&r->base);
    unsigned long long start = 0;
    int gcs_restarts = -1, redis_restarts = -1, supervised = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        sscanf(line, "gcs_start_ms=%llu", &start);
        sscanf(line, "gcs_restarts=%d", &gcs_restarts);
        sscanf(line, "redis_restarts=%d", &redis_restarts);
        sscanf(line, "supervised=%d", &supervised);
    }
    if (start == 0 || gcs_restarts < 0) {
        printf("GCS %s\n\n", o->address);
        return;
    }
    char up[32] = "-";
    uint64_t now = wall_ms();
    if (now >= start)
        human_duration(now - start, up, sizeof(up));
    printf("GCS %s  up %s, restarted %d time%s", o->address, up, gcs_restarts,
           gcs_restarts == 1 ? "" : "s");
    if (supervised == 2)
        printf(" (Redis restarted %d time%s)", redis_restarts, redis_restarts == 1 ? "" : "s");
    printf("\n\n");
}

/* "Actors: 3 alive, 1 restarting, 0 pending, 2 dead" (nothing when the GCS
 * has none). */
static void print_actor_counts(bconn *b, const opts_t *o)
{
    Rpc__ListActorsRequest req = RPC__LIST_ACTORS_REQUEST__INIT;
    req.req_id = 3;
    int st;
    Rpc__ListActorsReply *r = (Rpc__ListActorsReply *)call(
        b, MSG_LIST_ACTORS_REQ, &req.base, MSG_LIST_ACTORS_REPLY, o->timeout_ms, &st);
    size_t n[4] = {0, 0, 0, 0};
    for (size_t i = 0; r && i < r->n_actors; i++)
        if ((unsigned)r->actors[i]->state < 4)
            n[r->actors[i]->state]++;
    if (r && r->n_actors > 0)
        printf("Actors: %zu alive, %zu restarting, %zu pending creation, %zu dead\n",
               n[RPC__ACTOR_STATE__ACTOR_ALIVE], n[RPC__ACTOR_STATE__ACTOR_RESTARTING],
               n[RPC__ACTOR_STATE__ACTOR_PENDING_CREATION], n[RPC__ACTOR_STATE__ACTOR_DEAD]);
    if (r)
        msg_free(&r->base);
}

/* "Placement groups: 2 created, 1 pending, 0 rescheduling, 3 removed". */
static void print_pg_counts(bconn *b, const opts_t *o)
{
    Rpc__ListPgsRequest req = RPC__LIST_PGS_REQUEST__INIT;
    req.req_id = 4;
    int st;
    Rpc__ListPgsReply *r = (Rpc__ListPgsReply *)call(b, MSG_LIST_PGS_REQ, &req.base,
                                                     MSG_LIST_PGS_REPLY, o->timeout_ms, &st);
    size_t n[4] = {0, 0, 0, 0};
    for (size_t i = 0; r && i < r->n_pgs; i++)
        if ((unsigned)r->pgs[i]->state < 4)
            n[r->pgs[i]->state]++;
    if (r && r->n_pgs > 0)
        printf("Placement groups: %zu created, %zu pending, %zu rescheduling, %zu removed\n",
               n[RPC__PG_STATE__PG_CREATED], n[RPC__PG_STATE__PG_PENDING],
               n[RPC__PG_STATE__PG_RESCHEDULING], n[RPC__PG_STATE__PG_REMOVED]);
    if (r)
        msg_free(&r->base);
}

/* Tasks that wait long for their arguments, and why, per node. */
static void print_waits(const Rpc__ListNodesReply *nodes)
{
    bool any = false;
    for (size_t i = 0; i < nodes->n_nodes; i++) {
        const Rpc__NodeInfo *n = nodes->nodes[i];
        if (n->state != RPC__NODE_STATE__NODE_ALIVE || n->node_id.len != NODE_ID_SIZE)
            continue;
        char hex[ID_HEX_MAX];
        id_hex(n->node_id.data, NODE_ID_SIZE, hex);
        for (size_t k = 0; k < n->n_waits; k++) {
            if (!any)
                printf("Waiting for arguments (longest first):\n");
            any = true;
            printf("  node %.12s: %s\n", hex, n->waits[k]);
        }
    }
}

static int cmd_status(const opts_t *o)
{
    bconn *b = gcs_connect(o);
    Rpc__ListNodesReply *nodes = list_nodes(b, o);
    Rpc__ListJobsReply *jobs = list_jobs(b, o);
    print_gcs_line(b, o);
    print_nodes_table(nodes);
    size_t alive = 0, dead = 0, running = 0;
    uint64_t pending = 0, oom = 0;
    for (size_t i = 0; i < nodes->n_nodes; i++) {
        oom += nodes->nodes[i]->oom_kills;
        if (nodes->nodes[i]->state == RPC__NODE_STATE__NODE_ALIVE) {
            alive++;
            pending += nodes->nodes[i]->pending_tasks;
        } else {
            dead++;
        }
    }
    for (size_t i = 0; i < jobs->n_jobs; i++)
        if (jobs->jobs[i]->state == RPC__JOB_STATE__JOB_RUNNING)
            running++;
    printf("\n%zu alive node%s, %zu dead; %zu job%s (%zu running); %llu pending task%s\n", alive,
           alive == 1 ? "" : "s", dead, jobs->n_jobs, jobs->n_jobs == 1 ? "" : "s", running,
           (unsigned long long)pending, pending == 1 ? "" : "s");
    if (oom > 0)
        printf("Memory monitor: %llu worker%s killed for lack of memory\n", (unsigned long long)oom,
               oom == 1 ? "" : "s");
    print_waits(nodes);
    print_actor_counts(b, o);
    print_pg_counts(b, o);
    msg_free(&nodes->base);
    msg_free(&jobs->base);
    bconn_close(b);
    return 0;
}

static int cmd_nodes(const opts_t *o)
{
    bconn *b = gcs_connect(o);
    Rpc__ListNodesReply *nodes = list_nodes(b, o);
    if (o->format && strcmp(o->format, "tsv") == 0)
        print_nodes_tsv(nodes);
    else
        print_nodes_table(nodes);
    msg_free(&nodes->base);
    bconn_close(b);
    return 0;
}

static int cmd_jobs(const opts_t *o)
{
    bconn *b = gcs_connect(o);
    Rpc__ListJobsReply *jobs = list_jobs(b, o);
    print_jobs(jobs, o->format && strcmp(o->format, "tsv") == 0);
    msg_free(&jobs->base);
    bconn_close(b);
    return 0;
}

static int cmd_kv_put(const opts_t *o)
{
    bconn *b = gcs_connect(o);
    Rpc__KvPutRequest req = RPC__KV_PUT_REQUEST__INIT;
    req.req_id = 3;
    req.ns = (char *)o->ns;
    req.key.data = (uint8_t *)o->key;
    req.key.len = strlen(o->key);
    req.value.data = (uint8_t *)o->value;
    req.value.len = strlen(o->value);
    req.overwrite = o->overwrite;
    int st;
    Rpc__KvPutReply *r =
        (Rpc__KvPutReply *)call(b, MSG_KV_PUT_REQ, &req.base, MSG_KV_PUT_REPLY, o->timeout_ms, &st);
    int added = r->added;
    msg_free(&r->base);
    bconn_close(b);
    if (!added && !o->overwrite)
        die(EXIT_FAIL, "key exists (use --overwrite to replace it)");
    return 0;
}

static int cmd_kv_get(const opts_t *o)
{
    bconn *b = gcs_connect(o);
    Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
    req.req_id = 4;
    req.ns = (char *)o->ns;
    req.key.data = (uint8_t *)o->key;
    req.key.len = strlen(o->key);
    int st;
    Rpc__KvGetReply *r =
        (Rpc__KvGetReply *)call(b, MSG_KV_GET_REQ, &req.base, MSG_KV_GET_REPLY, o->timeout_ms, &st);
    if (st == RAYC_ENOTFOUND) {
        msg_free(&r->base);
        bconn_close(b);
        die(EXIT_FAIL, "key not found");
    }
    fwrite(r->value.data, 1, r->value.len, stdout);
    msg_free(&r->base);
    bconn_close(b);
    return 0;
}

static int cmd_port_check(const opts_t *o)
{
    char host[256];
    int port, bound;
    if (parse_host_port(o->address, host, sizeof(host), &port) != 0)
        die(EXIT_USAGE, "bad address '%s' (want IP:PORT)", o->address);
    int fd = net_tcp_listen(host, port, 1, &bound);
    if (fd < 0) {
        if (errno == EADDRINUSE)
            die(EXIT_FAIL, "port %d on %s is already in use", port, host);
        if (errno == EADDRNOTAVAIL)
            die(EXIT_FAIL, "%s is not an address of this machine", host);
        die(EXIT_FAIL, "cannot listen on %s: %s", o->address, strerror(errno));
    }
    close(fd);
    return 0;
}

/* Read one RESP line ("+PONG\r\n") from fd into buf. */
static int resp_line(int fd, char *buf, size_t len)
{
    size_t n = 0;
    while (n + 1 < len) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (c == '\n')
            break;
        if (c != '\r')
            buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

/* AUTH (when password_file is given) + PING the Redis at a Unix socket. 0, or
 * -1 with the reason in err. */
int redis_ping(const char *socket_path, const char *password_file, int timeout_ms, char *err,
               size_t errlen)
{
    char *pw = NULL, cmd[1024], line[256] = "";
    if (password_file) {
        pw = read_file(password_file, NULL);
        if (pw == NULL) {
            snprintf(err, errlen, "cannot read %s: %s", password_file, strerror(errno));
            return -1;
        }
        rstrip(pw);
    }
    int len = 0;
    if (pw && *pw)
        len = snprintf(cmd, sizeof(cmd), "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n", strlen(pw), pw);
    free(pw);
    if (len < 0 || (size_t)len >= sizeof(cmd) - 32) {
        snprintf(err, errlen, "redis password too long");
        return -1;
    }
    len += snprintf(cmd + len, sizeof(cmd) - (size_t)len, "*1\r\n$4\r\nPING\r\n");
    int fd = net_unix_connect(socket_path);
    if (fd < 0) {
        snprintf(err, errlen, "redis unreachable at %s: %s", socket_path, strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int rc = -1;
    if (net_write_all(fd, cmd, (size_t)len) != 0)
        snprintf(err, errlen, "redis at %s: %s", socket_path, strerror(errno));
    else if (password_file && (resp_line(fd, line, sizeof(line)) != 0 || strcmp(line, "+OK") != 0))
        snprintf(err, errlen, "redis at %s refused the password: %s", socket_path, line);
    else if (resp_line(fd, line, sizeof(line)) != 0 || strcmp(line, "+PONG") != 0)
        snprintf(err, errlen, "redis at %s did not answer PING: %s", socket_path, line);
    else
        rc = 0;
    close(fd);
    return rc;
}

static int cmd_redis_ping(const opts_t *o)
{
    char err[512];
    if (redis_ping(o->socket, o->password_file, o->timeout_ms, err, sizeof(err)) != 0)
        die(EXIT_FAIL, "%s", err);
    return 0;
}

#define TOKEN_FLAGS "address token token-file"

static const cmd_t commands[] = {
    {"ping", cmd_ping, TOKEN_FLAGS, "address", "handshake with the GCS (exit 0 when accepted)"},
    {"status", cmd_status, TOKEN_FLAGS, "address", "nodes, resources, store use, jobs"},
    {"nodes", cmd_nodes, TOKEN_FLAGS " format", "address", "the node table (--format=tsv)"},
    {"jobs", cmd_jobs, TOKEN_FLAGS " format", "address", "the job table (--format=tsv)"},
    {"kv-put", cmd_kv_put, TOKEN_FLAGS " ns key value overwrite", "address ns key value",
     "store a KV entry"},
    {"kv-get", cmd_kv_get, TOKEN_FLAGS " ns key", "address ns key", "print a KV value"},
    {"port-check", cmd_port_check, "address", "address", "exit 0 when IP:PORT can be listened on"},
    {"redis-ping", cmd_redis_ping, "socket password-file", "socket",
     "AUTH + PING a Redis Unix socket"},
    {"supervise", cmd_supervise, "session-dir", "session-dir",
     "restart a head session's Redis and GCS when they die (run by rayc start --head)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: rayc_ctl <command> [--flag=value ...]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-11s %s\n              flags: %s (required: %s)\n", commands[i].name,
                commands[i].help, commands[i].flags, commands[i].required);
    fprintf(f, "\nEvery command takes --timeout-ms=N (default 5000). The token comes from\n"
               "--token, --token-file, $RAYC_TOKEN or $RAYC_TOKEN_FILE.\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error return, not a death */
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        opts_t o;
        parse_flags(&commands[i], argc - 2, argv + 2, &o);
        int rc = commands[i].fn(&o);
        if (fflush(stdout) != 0)
            die(EXIT_FAIL, "writing output: %s", strerror(errno));
        return rc;
    }
    die(EXIT_USAGE, "unknown command '%s' (try rayc_ctl --help)", argv[1]);
}
