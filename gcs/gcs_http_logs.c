/*
 * gcs_http_logs.c -- `rayc logs` over the dashboard: GET /api/v0/logs
 * [?node_id=HEX][&filename=NAME&offset=N&max_bytes=M]. The head holds no
 * node's logs: it relays the request to that node's raylet as a LogRequest
 * on the raylet's authenticated GCS connection (raylet/log_files.h) and
 * answers the HTTP request when the LogReply comes back (at most
 * LOGS_PENDING at once; a node that does not answer within LOGS_TIMEOUT_MS
 * is a 504; a client that hangs up first is forgotten).
 *
 *   list:  {"node_id": hex, "files": [{"name", "size", "mtime_ms"}, ...]}
 *   piece: {"node_id", "filename", "offset", "size", "next_offset",
 *          "data": "..."} (next_offset = offset + the bytes of data)
 *
 * node_id may be a unique prefix (4+ hex chars) of an alive node's id;
 * without one, the head node. Runs in the GCS event-loop thread only.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_http_internal.h"
#include "gcs_server_int.h"
#include "ids.h"
#include "log.h"
#include "rayc.h"
#include "util.h"

#define LOGS_PENDING    32
#define LOGS_TIMEOUT_MS 10000
#define LOGS_NAME_MAX   256

typedef struct {
    uint64_t id; /* 0: free */
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    uint64_t deadline_ms;
    char node_hex[ID_HEX_MAX];
    char filename[LOGS_NAME_MAX]; /* "": a list */
} pending;

struct gcs_http_logs {
    gcs_http *h;
    gcs_server *srv;
    pending p[LOGS_PENDING];
    uint64_t next_id;
    struct event *timer;
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    gcs_http_logs *l = arg;
    uint64_t now = now_ms();
    for (int i = 0; i < LOGS_PENDING; i++)
        if (l->p[i].id && now >= l->p[i].deadline_ms) {
            l->p[i].id = 0;
            gcs_http__reply_error(l->h, l->p[i].req, 504, "the node did not answer in time");
        }
}

static void reply_piece(gcs_http_logs *l, const pending *p, const Rpc__LogReply *r)
{
    gcs_json j;
    gcs_json_init(&j);
    gcs_json_obj_begin(&j);
    gcs_json_key(&j, "node_id");
    gcs_json_str(&j, p->node_hex);
    if (p->filename[0] == '\0') {
        gcs_json_key(&j, "files");
        gcs_json_arr_begin(&j);
        for (size_t i = 0; i < r->n_files; i++) {
            gcs_json_obj_begin(&j);
            gcs_json_key(&j, "name");
            gcs_json_str(&j, r->files[i]->name);
            gcs_json_key(&j, "size");
            gcs_json_u64(&j, r->files[i]->size);
            gcs_json_key(&j, "mtime_ms");
            gcs_json_u64(&j, r->files[i]->mtime_ms);
            gcs_json_obj_end(&j);
        }
        gcs_json_arr_end(&j);
    } else {
        gcs_json_key(&j, "filename");
        gcs_json_str(&j, p->filename);
        gcs_json_key(&j, "offset");
        gcs_json_u64(&j, r->offset);
        gcs_json_key(&j, "size");
        gcs_json_u64(&j, r->size);
        gcs_json_key(&j, "next_offset");
        gcs_json_u64(&j, r->offset + r->data.len);
        gcs_json_key(&j, "data");
        gcs_json_strn(&j, (const char *)r->data.data, r->data.len);
    }
    gcs_json_obj_end(&j);
    gcs_http__reply_json(l->h, p->req, 200, &j);
}

/* A raylet's LogReply (srv->log_reply hook). */
static void on_log_reply(void *arg, const Rpc__LogReply *r)
{
    gcs_http_logs *l = arg;
    for (int i = 0; i < LOGS_PENDING; i++) {
        pending *p = &l->p[i];
        if (p->id == 0 || p->id != r->req_id)
            continue;
        p->id = 0;
        int code = r->status ? r->status->code : RAYC_OK;
        if (code != RAYC_OK)
            gcs_http__reply_error(l->h, p->req,
                                  code == RAYC_ENOTFOUND ? 404
                                  : code == RAYC_EINVAL  ? 400
                                                         : 500,
                                  r->status->message && r->status->message[0]
                                      ? r->status->message
                                      : rayc_strerror(code));
        else
            reply_piece(l, p, r);
        return;
    }
}

/* The alive node named by hex (a unique prefix of 4+ chars), or the head
 * node when hex is NULL. NULL with err set otherwise. */
static const Rpc__NodeInfo *pick_node(gcs_server *srv, const char *hex, char *err, size_t errlen)
{
    size_t cap = gcs_node_count(srv->nodes), n;
    const Rpc__NodeInfo **all = malloc((cap ? cap : 1) * sizeof(*all));
    if (all == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n = gcs_node_list(srv->nodes, all, cap);
    const Rpc__NodeInfo *found = NULL;
    int matches = 0;
    size_t hl = hex ? strlen(hex) : 0;
    for (size_t i = 0; i < n; i++) {
        const Rpc__NodeInfo *x = all[i];
        if (x->state != RPC__NODE_STATE__NODE_ALIVE || x->node_id.len != NODE_ID_SIZE)
            continue;
        char xh[ID_HEX_MAX];
        id_hex(x->node_id.data, NODE_ID_SIZE, xh);
        if (hex ? strncmp(xh, hex, hl) == 0 : x->is_head) {
            found = x;
            matches++;
        }
    }
    free(all);
    if (hex && hl < 4) {
        snprintf(err, errlen, "node_id needs at least 4 hex characters");
        return NULL;
    }
    if (matches != 1) {
        snprintf(err, errlen,
                 matches == 0 ? (hex ? "no alive node with id %s" : "no alive head node%s")
                              : "node id %s matches several nodes",
                 hex ? hex : "");
        return NULL;
    }
    return found;
}

void gcs_http__logs(gcs_http *h, struct evhttp_request *req, struct evkeyvalq *q)
{
    gcs_http_logs *l = gcs_http__logs_of(h);
    gcs_server *srv = l->srv;
    const char *node = evhttp_find_header(q, "node_id");
    const char *file = evhttp_find_header(q, "filename");
    const char *off = evhttp_find_header(q, "offset"), *max = evhttp_find_header(q, "max_bytes");
    char err[160];
    const Rpc__NodeInfo *ni = pick_node(srv, node, err, sizeof(err));
    if (ni == NULL) {
        gcs_http__reply_error(h, req, 404, err);
        return;
    }
    gcs_client *rl = gcs_server__raylet_of(srv, ni->node_id.data);
    if (rl == NULL) {
        gcs_http__reply_error(h, req, 503, "the node's raylet is not connected to the GCS");
        return;
    }
    if (file && strlen(file) >= LOGS_NAME_MAX) {
        gcs_http__reply_error(h, req, 400, "file name too long");
        return;
    }
    pending *p = NULL;
    for (int i = 0; i < LOGS_PENDING && p == NULL; i++)
        if (l->p[i].id == 0)
            p = &l->p[i];
    if (p == NULL) {
        gcs_http__reply_error(h, req, 503, "too many log requests in flight");
        return;
    }
    *p = (pending){.id = ++l->next_id,
                   .req = req,
                   .conn = evhttp_request_get_connection(req),
                   .deadline_ms = now_ms() + LOGS_TIMEOUT_MS};
    id_hex(ni->node_id.data, NODE_ID_SIZE, p->node_hex);
    snprintf(p->filename, sizeof(p->filename), "%s", file ? file : "");
    Rpc__LogRequest m = RPC__LOG_REQUEST__INIT;
    m.req_id = p->id;
    m.filename = p->filename;
    m.offset = off ? strtoull(off, NULL, 10) : 0;
    m.max_bytes = max ? strtoull(max, NULL, 10) : 0;
    gcs_server__send(rl, MSG_LOG_REQUEST, &m.base);
}

void gcs_http__logs_conn_closed(gcs_http *h, struct evhttp_connection *c)
{
    gcs_http_logs *l = gcs_http__logs_of(h);
    for (int i = 0; l && i < LOGS_PENDING; i++)
        if (l->p[i].id && l->p[i].conn == c)
            l->p[i].id = 0; /* its request goes with the connection */
}

gcs_http_logs *gcs_http_logs_new(gcs_http *h, gcs_server *srv, struct event_base *base)
{
    gcs_http_logs *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->h = h;
    l->srv = srv;
    l->timer = event_new(base, -1, EV_PERSIST, on_timer, l);
    struct timeval tv = {1, 0};
    if (l->timer == NULL || event_add(l->timer, &tv) != 0) {
        gcs_http_logs_free(l);
        return NULL;
    }
    srv->log_reply = on_log_reply;
    srv->log_reply_arg = l;
    return l;
}

void gcs_http_logs_free(gcs_http_logs *l)
{
    if (l == NULL)
        return;
    if (l->srv->log_reply_arg == l) {
        l->srv->log_reply = NULL;
        l->srv->log_reply_arg = NULL;
    }
    if (l->timer)
        event_free(l->timer);
    free(l);
}
