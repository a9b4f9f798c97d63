/*
 * metrics_server.c -- the raylet's /metrics over evhttp; see
 * metrics_server.h. Runs in the raylet's event-loop thread only.
 */
#include "metrics_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "sha256.h"

#define MAX_BODY    4096
#define MAX_HEADERS (16 << 10)
#define TIMEOUT_S   30

struct metrics_server {
    struct evhttp *http;
    char *token;
    int port;
    msrv_render_fn render;
    void *arg;
};

static bool bearer_ok(const metrics_server *m, const char *auth)
{
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *t = auth + 7;
    size_t n = strlen(m->token);
    return n > 0 && strlen(t) == n && ct_equal(t, m->token, n);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add(b, text, strlen(text));
    evhttp_send_reply(req, code, reason, b);
    if (b)
        evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    metrics_server *m = arg;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    if (!bearer_ok(m, evhttp_find_header(in, "Authorization"))) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"rayc\"");
        reply_text(req, 401, "Unauthorized",
                   "401 Unauthorized: send the cluster token (Authorization: Bearer <token>)\n");
        return;
    }
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = uri ? strcspn(uri, "?") : 0;
    if (uri == NULL || plen != 8 || strncmp(uri, "/metrics", 8) != 0) {
        reply_text(req, 404, "Not Found", "404 Not Found: only /metrics is served here\n");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        reply_text(req, 405, "Method Not Allowed", "405: GET /metrics\n");
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    m->render(m->arg, f);
    if (fclose(f) != 0 || text == NULL) {
        free(text);
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add(b, text, len);
    evhttp_send_reply(req, 200, "OK", b);
    if (b)
        evbuffer_free(b);
    free(text);
}

metrics_server *msrv_new(struct event_base *base, const char *host, int port, const char *token,
                         msrv_render_fn render, void *arg, char *err, size_t errlen)
{
    metrics_server *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->token = strdup(token ? token : "")) == NULL ||
        (m->http = evhttp_new(base)) == NULL) {
        snprintf(err, errlen, "out of memory");
        msrv_free(m);
        return NULL;
    }
    m->render = render;
    m->arg = arg;
    evhttp_set_max_body_size(m->http, MAX_BODY);
    evhttp_set_max_headers_size(m->http, MAX_HEADERS);
    evhttp_set_timeout(m->http, TIMEOUT_S);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(m->http, on_request, m);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(m->http, host, (uint16_t)port);
    if (bs == NULL) {
        snprintf(err, errlen, "cannot serve metrics on %s:%d: %s", host, port,
                 errno == EADDRINUSE ? "port in use" : strerror(errno));
        msrv_free(m);
        return NULL;
    }
    m->port = port;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            m->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            m->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return m;
}

int msrv_port(const metrics_server *m)
{
    return m ? m->port : -1;
}

void msrv_free(metrics_server *m)
{
    if (m == NULL)
        return;
    if (m->http)
        evhttp_free(m->http);
    if (m->token) {
        memset(m->token, 0, strlen(m->token));
        free(m->token);
    }
    free(m);
}
