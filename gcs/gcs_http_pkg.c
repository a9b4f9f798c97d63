/*
 * gcs_http_pkg.c -- uploads of packages (a job's working dir, packed by
 * `rayc job submit --working-dir`) to the head over its HTTP server; see
 * gcs_http_internal.h for the routes and gcs_upload.h for the staging. A
 * finished package is a code package of the GCS KV (namespace "code", key
 * the hex SHA-256 of its bytes), persisted like any KV put: the job
 * submission that names it finds it there, and so would a restarted GCS.
 * Runs in the GCS event-loop thread only.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_http_internal.h"
#include "gcs_jobsub.h"
#include "gcs_kv.h"
#include "gcs_server_int.h"
#include "gcs_upload.h"
#include "log.h"
#include "rayc.h"
#include "util.h"

int gcs_http__package(void *arg, const char *hash, const uint8_t **data, size_t *len)
{
    gcs_server *srv = gcs_http__server(arg);
    return gcs_kv_get(srv->kv, GCS_KV_CODE_NS, (const uint8_t *)hash, strlen(hash), data, len);
}

/* Store a finished package as a code package and persist it (an op with no
 * client: the reply does not wait for the write; a failed write is logged
 * and the package stays in memory for this GCS's life). */
static int store(gcs_server *srv, const char *hash, const uint8_t *data, size_t len)
{
    bool added, written;
    int rc = gcs_kv_put(srv->kv, GCS_KV_CODE_NS, (const uint8_t *)hash, strlen(hash), data, len,
                        false, &added, &written);
    if (rc != RAYC_OK || !written)
        return rc;
    size_t sklen;
    uint8_t *sk = gcs_kv_storage_key(GCS_KV_CODE_NS, (const uint8_t *)hash, strlen(hash), &sklen);
    if (sk == NULL)
        return RAYC_ENOMEM;
    gcs_op *op = gcs_server__op_new(srv, NULL, 0, 0, NULL, "store uploaded package");
    gcs_server__op_put(op, GCS_TABLE_KV, sk, sklen, data, len);
    gcs_server__op_commit(op);
    free(sk);
    return RAYC_OK;
}

static void reply_done(gcs_http *h, struct evhttp_request *req, const char *hash, size_t size)
{
    gcs_json j;
    gcs_json_init(&j);
    gcs_json_obj_begin(&j);
    char uri[128];
    snprintf(uri, sizeof(uri), "%s%s%s", GCS_JOBSUB_PKG_PREFIX, hash, GCS_JOBSUB_PKG_SUFFIX);
    gcs_json_key(&j, "uri");
    gcs_json_str(&j, uri);
    gcs_json_key(&j, "size");
    gcs_json_u64(&j, size);
    gcs_json_obj_end(&j);
    gcs_http__reply_json(h, req, 200, &j);
}

static void finish(gcs_http *h, gcs_upload *up, struct evhttp_request *req, const char *hash)
{
    uint8_t *data;
    size_t len;
    char err[256];
    int rc = gcs_upload_finish(up, hash, &data, &len, err, sizeof(err));
    if (rc != RAYC_OK) {
        gcs_http__reply_error(h, req, rc == RAYC_ENOTFOUND ? 404 : 400, err);
        return;
    }
    rc = store(gcs_http__server(h), hash, data, len);
    free(data);
    if (rc != RAYC_OK) {
        gcs_http__reply_error(h, req, 500, rayc_strerror(rc));
        return;
    }
    log_info("package %.12s uploaded (%zu bytes)", hash, len);
    reply_done(h, req, hash, len);
}

static void piece(gcs_http *h, gcs_upload *up, struct evhttp_request *req, const char *hash,
                  const char *offset)
{
    char *end;
    unsigned long long off = strtoull(offset, &end, 10);
    if (*offset == '\0' || *end != '\0') {
        gcs_http__reply_error(h, req, 400, "offset must be a number");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const uint8_t *body = len ? evbuffer_pullup(in, -1) : NULL;
    char err[256];
    int64_t got = gcs_upload_put(up, hash, off, body, len, now_ms(), err, sizeof(err));
    if (got < 0) {
        gcs_http__reply_error(h, req,
                              got == RAYC_EBUSY        ? 503
                              : got == RAYC_ENOMEM     ? 500
                              : strstr(err, "at most") ? 413
                                                       : 400,
                              err);
        return;
    }
    gcs_json j;
    gcs_json_init(&j);
    gcs_json_obj_begin(&j);
    gcs_json_key(&j, "received");
    gcs_json_u64(&j, (uint64_t)got);
    gcs_json_obj_end(&j);
    gcs_http__reply_json(h, req, 200, &j);
}

void gcs_http__packages(gcs_http *h, struct evhttp_request *req, const char *rest,
                        struct evkeyvalq *q)
{
    if (!gcs_upload_hash_ok(rest)) {
        gcs_http__reply_error(h, req, 404, "a package is /api/packages/<sha256 hex>");
        return;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        const uint8_t *data;
        size_t len = 0;
        bool exists = gcs_http__package(h, rest, &data, &len) == RAYC_OK;
        gcs_json j;
        gcs_json_init(&j);
        gcs_json_obj_begin(&j);
        gcs_json_key(&j, "exists");
        gcs_json_bool(&j, exists);
        gcs_json_key(&j, "size");
        gcs_json_u64(&j, len);
        gcs_json_obj_end(&j);
        gcs_http__reply_json(h, req, 200, &j);
        return;
    }
    gcs_upload *up = gcs_http__uploads(h);
    const char *done = evhttp_find_header(q, "done"), *offset = evhttp_find_header(q, "offset");
    if (done && strcmp(done, "1") == 0)
        finish(h, up, req, rest);
    else if (offset)
        piece(h, up, req, rest, offset);
    else
        gcs_http__reply_error(h, req, 400, "POST a piece with ?offset=N, or end with ?done=1");
}
