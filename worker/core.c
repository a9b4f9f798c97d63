/*
 * core.c -- rayc_init / rayc_shutdown: find the cluster, connect to the
 * GCS and to this machine's raylet, map the object store, register the job,
 * and wire librayc's components together (reference table, store client,
 * task submitter, the router of frames from the raylet). Also rayc_nodes,
 * and the frames that concern the whole process (worker output, notices).
 *
 * Address resolution (API.md): opts->address, else $RAYC_ADDRESS, else "auto"
 * when this machine runs a session, else "local".
 *   "auto"       the session in $RAYC_TEMP_DIR (default /tmp/rayc)/session_latest
 *   "HOST:PORT"  ask that GCS which raylet runs on this machine
 *   "local"      start a private embedded cluster (embedded.c)
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "direct_tasks.h"
#include "borrow.h"
#include "actor_submitter.h"
#include "arg_dedup.h"
#include "embedded.h"
#include "errors.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

core_t rayc__core = {
    .mu = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP,
};

/* ------------------------------------------------------------ wiring */

/* The reference table's hooks: pins and deletes go to the store client,
 * the end of an owned object to the task submitter (lineage). mu held. */
static void hook_release_pins(void *arg, ref_entry *const *es, size_t n)
{
    core_t *c = arg;
    const object_id_t *ids[REFT_RELEASE_BATCH];
    for (size_t i = 0; i < n; i++)
        ids[i] = &es[i]->id;
    storec_release(c->store, ids, n);
}

static void hook_delete_object(void *arg, const object_id_t *id, bool release_pin)
{
    core_t *c = arg;
    storec_delete(c->store, id, release_pin);
}

static void hook_owned_gone(void *arg, const object_id_t *id)
{
    core_t *c = arg;
    if (c->dedup && object_id_is_put(id))
        dedup_forget(c->dedup, id);
    if (c->tasks)
        tsub_lineage_release(c->tasks, id);
}

/* The store is full for one of our creates: give back our cached pins.
 * mu NOT held. */
static bool hook_store_full(void *arg)
{
    core_t *c = arg;
    pthread_mutex_lock(&c->mu);
    bool held = c->refs.cache_count > 0;
    reft_trim_cache(&c->refs, true);
    pthread_mutex_unlock(&c->mu);
    return held;
}

/* Print a worker's output line by line, prefixed like Ray: (pid=.., node=..). */
static int on_worker_output(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    core_t *c = arg;
    Rpc__WorkerOutput *m = (Rpc__WorkerOutput *)msg;
    (void)type;
    if (c->log_to_driver == -1)
        return 0;
    FILE *f = m->is_err ? stderr : stdout;
    const char *p = (const char *)m->data.data, *end = p + m->data.len;
    flockfile(f);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        fprintf(f, "(pid=%d, node=%.8s) %.*s\n", m->pid, m->node, (int)n, p);
        p += n + (nl ? 1 : 0);
    }
    fflush(f);
    funlockfile(f);
    return 0;
}

static int on_cluster_notice(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    (void)arg;
    (void)type;
    fprintf(stderr, "rayc: %s\n", ((Rpc__ClusterNotice *)msg)->message);
    return 0;
}

/* The tables that exist before any connection. -1 when out of memory. */
static int init_tables(core_t *c)
{
    reft_hooks hooks = {
        .release_pins = hook_release_pins,
        .delete_object = hook_delete_object,
        .owned_gone = hook_owned_gone,
        .arg = c,
    };
    router_init(&c->router);
    c->events = tev_new(&c->events_opts);
    c->dedup = dedup_new();
    if (c->dedup == NULL)
        return -1;
    return reft_init(&c->refs, &hooks);
}

/* Once the raylet is connected: the task submitter, and who handles which
 * frame. (A node's death needs no handler: see tsub_on_object_lost.) */
/* The task submitter's actor hooks (mu held): to the actor submitter, once
 * there is one. */
static void actor_send(void *arg, const actor_id_t *actor, const task_id_t *task,
                       const uint8_t *frame, size_t len)
{
    core_t *c = arg;
    if (c->actors)
        asub_send_hook(c->actors, actor, task, frame, len);
}

static void actor_progress(void *arg)
{
    core_t *c = arg;
    if (c->actors)
        asub_progress_hook(c->actors);
}

static void actor_stream_ack(void *arg, const actor_id_t *actor, const Rpc__StreamAck *ack)
{
    core_t *c = arg;
    if (c->actors)
        asub_stream_ack_hook(c->actors, actor, ack);
}

/* The task submitter's direct-path hooks (mu held). */
static bool direct_submit(void *arg, const task_id_t *id, const Rpc__TaskSpec *spec)
{
    core_t *c = arg;
    return c->direct && dtx_submit(c->direct, id, spec);
}

static int direct_cancel(void *arg, const task_id_t *id, bool force)
{
    core_t *c = arg;
    return c->direct ? dtx_cancel(c->direct, id, force) : TSUB_DIRECT_NOT_OURS;
}

/* A TaskDone from the raylet: a lease's goes to the direct path. */
static int on_task_done(void *arg, uint16_t type, ProtobufCMessage *msg)
{
    core_t *c = arg;
    if (c->direct && dtx_on_raylet_done(c->direct, (const Rpc__TaskDone *)msg))
        return 0;
    return tsub_on_task_done(c->tasks, type, msg);
}

/* ---------------------------------------------------------- GCS calls */

/* Connections replaced after the GCS restarted: another thread may still be
 * in a call on one, so they are freed at shutdown. */
static pthread_mutex_t gcs_mu = PTHREAD_MUTEX_INITIALIZER;
static cw_conn *retired_gcs[64];
static size_t nretired_gcs;

static int connect_gcs(core_t *c);

/* The GCS connection, connected again if the GCS restarted. */
static cw_conn *live_gcs(core_t *c)
{
    pthread_mutex_lock(&gcs_mu);
    if ((c->gcs == NULL || cw_conn_dead(c->gcs)) && c->gcs_host[0] &&
        nretired_gcs < sizeof(retired_gcs) / sizeof(retired_gcs[0])) {
        cw_conn *old = c->gcs;
        if (connect_gcs(c) == 0) {
            if (old)
                retired_gcs[nretired_gcs++] = old;
        } else {
            c->gcs = old;
        }
    }
    cw_conn *g = c->gcs;
    pthread_mutex_unlock(&gcs_mu);
    return g;
}

/* Task events go to the GCS on the live connection (tev_gcs_fn): one the
 * GCS closed (it restarted) is replaced first, as nothing may have read
 * from it since. */
static cw_conn *events_gcs(void *arg)
{
    cw_conn *g = live_gcs(arg);
    if (g && cw_conn_peer_closed(g))
        g = live_gcs(arg);
    return g;
}

int core__gcs_call(uint16_t type, ProtobufCMessage *req, uint64_t *req_id, uint16_t reply_type,
                   ProtobufCMessage **reply, int timeout_ms)
{
    core_t *c = &rayc__core;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        cw_conn *g = live_gcs(c);
        int rc = RAYC_ECONN;
        if (g) {
            *req_id = cw_conn_next_id(g);
            rc = cw_conn_call(g, *req_id, type, req, reply_type, reply, timeout_ms);
        }
        if (rc != RAYC_ECONN || now_ms() >= deadline)
            return rc;
        usleep(100000); /* the GCS is restarting: its supervisor brings it back */
    }
}

static void free_retired_gcs(void)
{
    pthread_mutex_lock(&gcs_mu);
    for (size_t i = 0; i < nretired_gcs; i++)
        cw_conn_free(retired_gcs[i]);
    nretired_gcs = 0;
    pthread_mutex_unlock(&gcs_mu);
}

/* A direct wait's longest slice (core__wait_results). */
#define DIRECT_SLICE_MS 50

/* rayc_get's wait for results of running tasks and calls (mu held on entry
 * and exit, released meanwhile): when they are all calls sent to one actor,
 * read its connection here (asub_direct_enter), else wait on the raylet
 * connection, where every completion is announced. *direct_off counts the
 * direct waits that ran out with nothing read: then the next wait is on the
 * raylet connection once, so that nothing the calls need from elsewhere is
 * kept waiting. The raylet connection's pump status (0 or RAYC_ECONN). */
int core__wait_results(const rayc_ref *refs, size_t n, const rayc_value *out, int64_t wait_ms,
                       int *direct_off)
{
    core_t *c = &rayc__core;
    actor_submitter *as = __atomic_load_n(&c->actors, __ATOMIC_ACQUIRE);
    asub_direct *d = NULL;
    dtx_direct *dt = NULL;
    if (as && *direct_off == 0 && c->direct_reads)
        d = asub_direct_enter(as, refs, n, out);
    if (d == NULL && c->direct && *direct_off == 0 && c->direct_reads)
        dt = dtx_direct_enter(c->direct, refs, n, out);
    *direct_off = 0;
    bool counted = d == NULL && dt == NULL;
    if (counted) /* under mu: see asub's wake_waiters */
        __atomic_add_fetch(&c->result_waiters, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&c->mu);
    core__block();
    int rc = 0;
    if (d || dt) {
        int64_t slice = wait_ms > DIRECT_SLICE_MS ? DIRECT_SLICE_MS : wait_ms;
        uint64_t start = now_ms();
        int r = d ? asub_direct_pump(d, slice) : dtx_direct_pump(dt, slice);
        if (r < 0 || (r == 0 && now_ms() - start >= (uint64_t)slice))
            *direct_off = 1;
        if (d)
            asub_direct_leave(d);
        else
            dtx_direct_leave(dt);
    } else {
        rc = cw_conn_pump(c->raylet, wait_ms);
    }
    pthread_mutex_lock(&c->mu);
    if (counted)
        __atomic_sub_fetch(&c->result_waiters, 1, __ATOMIC_SEQ_CST);
    return rc;
}

static pthread_mutex_t actors_once = PTHREAD_MUTEX_INITIALIZER;

actor_submitter *core__actors(void)
{
    core_t *c = &rayc__core;
    actor_submitter *as = __atomic_load_n(&c->actors, __ATOMIC_ACQUIRE);
    if (as)
        return as;
    pthread_mutex_lock(&actors_once);
    if (c->actors == NULL) {
        asub_deps d = {
            .mu = &c->mu,
            .tasks = c->tasks,
            .gcs_call = core__gcs_call,
            .raylet = c->raylet,
            .waiters = &c->result_waiters,
            .token = c->token,
            .self = c->worker_id,
            .is_worker = c->is_worker,
        };
        as = asub_new(&d);
        pthread_mutex_lock(&c->mu);
        __atomic_store_n(&c->actors, as, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&c->mu);
    }
    as = c->actors;
    pthread_mutex_unlock(&actors_once);
    if (as == NULL)
        rayc__error(RAYC_ENOMEM, "out of memory");
    return as;
}

static int start_components(core_t *c)
{
    tsub_deps d = {
        .mu = &c->mu,
        .refs = &c->refs,
        .raylet = c->raylet,
        .store = c->store,
        .arena = c->arena,
        .arena_size = c->arena_size,
        .inline_max = c->inline_max,
        .job = &c->job,
        .owner = c->worker_id,
        .node = c->node_id,
        .actor_send = actor_send,
        .progress = actor_progress,
        .stream_ack = actor_stream_ack,
        .actor_arg = c,
        .direct = direct_submit,
        .direct_cancel = direct_cancel,
        .direct_arg = c,
        .events = c->events,
    };
    tev_attach(c->events, events_gcs, c, &c->node_id);
    c->tasks = tsub_new(&d);
    if (c->tasks == NULL)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    if (c->direct_tasks && c->token[0]) {
        dtx_deps dd = {
            .mu = &c->mu,
            .raylet = c->raylet,
            .waiters = &c->result_waiters,
            .tasks = c->tasks,
            .token = c->token,
            .self = c->worker_id,
            .node = c->node_id,
            .job = &c->job,
            .is_worker = c->is_worker,
            .in_flight = c->in_flight,
            .idle_ms = c->lease_idle_ms,
        };
        c->direct = dtx_new(&dd); /* NULL: every task goes through the raylet */
    }
    frame_router *r = &c->router;
    router_add(r, MSG_TASK_DONE, on_task_done, c);
    router_add(r, MSG_OBJECT_LOST, tsub_on_object_lost, c->tasks);
    router_add(r, MSG_STREAM_ITEM, tsub_on_stream_item, c->tasks);
    router_add(r, MSG_GET_OBJECTS_REPLY, storec_on_late_get_reply, c->store);
    router_add(r, MSG_WORKER_OUTPUT, on_worker_output, c);
    router_add(r, MSG_CLUSTER_NOTICE, on_cluster_notice, c);
    router_add(r, MSG_OWNER_REQUEST, borrow_on_owner_request, c);
    router_add(r, MSG_OWNER_REPLY, borrow_on_stray_reply, c);
    return 0;
}

/* Free the tables and the submitter (after the connections are closed). */
static void destroy_tables(core_t *c)
{
    pthread_mutex_lock(&c->mu);
    reft_destroy(&c->refs);
    tsub_free(c->tasks);
    c->tasks = NULL;
    dedup_free(c->dedup);
    c->dedup = NULL;
    pthread_mutex_unlock(&c->mu);
    tev_free(c->events);
    c->events = NULL;
}

/* Serialises rayc_init/rayc_shutdown against each other. */
static pthread_mutex_t lifecycle_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *temp_root(void)
{
    const char *t = getenv("RAYC_TEMP_DIR");
    return t && *t ? t : "/tmp/rayc";
}

/* The session dir of this machine's latest session: 0 with *found set (and
 * out filled) or not. Only what this user owns is followed -- the temp root,
 * session_latest and the session dir: another user's could name their
 * cluster and token. Such a session is an error, not "no session". */
static int local_session(char *out, size_t len, bool *found)
{
    char link[CORE_PATH_MAX];
    snprintf(link, sizeof(link), "%s/session_latest", temp_root());
    *found = false;
    char *real = realpath(link, NULL);
    if (real == NULL)
        return 0;
    char why[CORE_PATH_MAX + 128];
    if (path_is_mine(temp_root(), why, sizeof(why)) != 0 ||
        path_is_mine(link, why, sizeof(why)) != 0 || path_is_mine(real, why, sizeof(why)) != 0) {
        free(real);
        return rayc__error(RAYC_EINVAL,
                           "not following %s: %s; set RAYC_TEMP_DIR to a directory of yours", link,
                           why);
    }
    char probe[CORE_PATH_MAX + 32];
    snprintf(probe, sizeof(probe), "%s/gcs_address", real);
    *found = access(probe, R_OK) == 0;
    if (*found)
        snprintf(out, len, "%s", real);
    free(real);
    return 0;
}

static int read_small(const char *dir, const char *name, char *out, size_t len)
{
    char path[CORE_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *s = read_file(path, NULL);
    if (s == NULL)
        return -1;
    rstrip(s);
    snprintf(out, len, "%s", s);
    free(s);
    return 0;
}

/* The cluster token: $RAYC_TOKEN, $RAYC_TOKEN_FILE, or a readable session's. */
static int find_token(core_t *c, const char *session)
{
    const char *t = getenv("RAYC_TOKEN");
    if (t && *t) {
        snprintf(c->token, sizeof(c->token), "%s", t);
        return 0;
    }
    char err[256];
    const char *f = getenv("RAYC_TOKEN_FILE");
    if (f && *f)
        return auth_token_load(NULL, f, c->token, sizeof(c->token), err, sizeof(err)) == 0
                   ? 0
                   : rayc__error(RAYC_EAUTH, "%s", err);
    if (session && read_small(session, "token", c->token, sizeof(c->token)) == 0)
        return 0;
    /* Not RAYC_EAUTH: nothing was refused, we have nothing to prove. */
    return rayc__error(RAYC_ENOTFOUND,
                       "no token: set RAYC_TOKEN or RAYC_TOKEN_FILE (the head prints them), or "
                       "RAYC_TEMP_DIR to the head's temp dir");
}

static void handshake_for(core_t *c, Rpc__Handshake *hs)
{
    rpc__handshake__init(hs);
    hs->role = c->is_worker ? RPC__ROLE__ROLE_WORKER : RPC__ROLE__ROLE_DRIVER;
    hs->id.data = c->worker_id.b;
    hs->id.len = WORKER_ID_SIZE;
    hs->pid = (int32_t)getpid();
    hs->job_id = job_id_to_int(c->job);
    hs->name = "driver";
}

static int connect_gcs(core_t *c)
{
    Rpc__Handshake hs;
    handshake_for(c, &hs);
    char err[256];
    int code = 0;
    bconn *b = bconn_open(c->gcs_host, c->gcs_port, NULL, c->token, &hs, 10000, NULL, NULL, 0, NULL,
                          &code, err, sizeof(err));
    if (b == NULL)
        return rayc__error(code ? code : RAYC_ECONN, "GCS %s:%d: %s", c->gcs_host, c->gcs_port,
                           err);
    c->gcs = cw_conn_new(b, NULL, NULL);
    return c->gcs ? 0 : rayc__error(RAYC_ENOMEM, "out of memory");
}

/* Ask the GCS for the raylet of this machine (one whose socket we can open),
 * preferring the one of `session` when given. */
static int find_local_raylet(core_t *c, const char *session)
{
    Rpc__ListNodesRequest req = RPC__LIST_NODES_REQUEST__INIT;
    req.req_id = cw_conn_next_id(c->gcs);
    ProtobufCMessage *m;
    int rc = cw_conn_call(c->gcs, req.req_id, MSG_LIST_NODES_REQ, &req.base, MSG_LIST_NODES_REPLY,
                          &m, 10000);
    if (rc != 0)
        return rayc__error(rc, "listing nodes at the GCS: %s", rayc_strerror(rc));
    Rpc__ListNodesReply *r = (Rpc__ListNodesReply *)m;
    c->raylet_socket[0] = '\0';
    for (size_t i = 0; i < r->n_nodes; i++) {
        Rpc__NodeInfo *n = r->nodes[i];
        if (n->state != RPC__NODE_STATE__NODE_ALIVE || access(n->socket_path, R_OK | W_OK) != 0)
            continue;
        bool preferred = session && strcmp(n->session_dir, session) == 0;
        if (c->raylet_socket[0] == '\0' || preferred)
            snprintf(c->raylet_socket, sizeof(c->raylet_socket), "%s", n->socket_path);
        if (preferred)
            break;
    }
    msg_free(m);
    if (c->raylet_socket[0] == '\0')
        return rayc__error(RAYC_ENOTFOUND,
                           "no raylet of the cluster at %s:%d runs on this machine "
                           "(start one with: rayc start --address=%s:%d)",
                           c->gcs_host, c->gcs_port, c->gcs_host, c->gcs_port);
    return 0;
}

static int connect_raylet(core_t *c)
{
    Rpc__Handshake hs;
    handshake_for(c, &hs);
    Rpc__HandshakeReply *reply = NULL;
    int fds[2], nfds = 0, code = 0;
    char err[256];
    bconn *b = bconn_open(NULL, 0, c->raylet_socket, NULL, &hs, 10000, &reply, fds, 2, &nfds, &code,
                          err, sizeof(err));
    if (b == NULL)
        return rayc__error(code ? code : RAYC_ECONN, "raylet %s: %s", c->raylet_socket, err);
    int rc = 0;
    if (reply->id.len == NODE_ID_SIZE) {
        memcpy(c->node_id.b, reply->id.data, NODE_ID_SIZE);
        id_hex(c->node_id.b, NODE_ID_SIZE, c->node_hex);
    }
    snprintf(c->session_dir, sizeof(c->session_dir), "%s", reply->session_dir);
    if (nfds < 1 || reply->store_size == 0) {
        rc = rayc__error(RAYC_EPROTO, "raylet %s sent no object store", c->raylet_socket);
    } else {
        void *p = mmap(NULL, reply->store_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
        if (p == MAP_FAILED)
            rc = rayc__error(RAYC_EIO, "cannot map the object store (%llu bytes): %s",
                             (unsigned long long)reply->store_size, strerror(errno));
        else {
            c->arena = p;
            c->arena_size = reply->store_size;
            /* Cached pins hold at most an eighth of the store. */
            reft_set_cache_bounds(&c->refs, REFT_CACHE_OBJECTS, c->arena_size / 8);
        }
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    msg_free(&reply->base);
    if (rc != 0) {
        bconn_close(b);
        return rc;
    }
    c->raylet = cw_conn_new(b, router_dispatch, &c->router);
    if (c->raylet)
        c->store =
            storec_new(c->raylet, c->arena, c->arena_size, c->put_slab_bytes, hook_store_full, c);
    return c->raylet && c->store ? 0 : rayc__error(RAYC_ENOMEM, "out of memory");
}

/* Upload each task library to the GCS KV under its content hash (once: a
 * library already there is not sent again). hashes[i] receives the hex. */
static int upload_code(core_t *c, const rayc_init_opts *o, char (*hashes)[2 * SHA256_SIZE + 1],
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *bytes = read_file(o->code[i], &len);
        if (bytes == NULL)
            return rayc__error(RAYC_ENOTFOUND, "cannot read code library %s: %s", o->code[i],
                               strerror(errno));
        uint8_t digest[SHA256_SIZE];
        sha256(bytes, len, digest);
        id_hex(digest, SHA256_SIZE, hashes[i]);
        Rpc__KvExistsRequest ex = RPC__KV_EXISTS_REQUEST__INIT;
        ex.req_id = cw_conn_next_id(c->gcs);
        ex.ns = "code";
        ex.key.data = (uint8_t *)hashes[i];
        ex.key.len = strlen(hashes[i]);
        ProtobufCMessage *m;
        int rc = cw_conn_call(c->gcs, ex.req_id, MSG_KV_EXISTS_REQ, &ex.base, MSG_KV_EXISTS_REPLY,
                              &m, 30000);
        bool exists = rc == 0 && ((Rpc__KvExistsReply *)m)->exists;
        if (rc == 0)
            msg_free(m);
        if (rc == 0 && !exists) {
            Rpc__KvPutRequest put = RPC__KV_PUT_REQUEST__INIT;
            put.req_id = cw_conn_next_id(c->gcs);
            put.ns = "code";
            put.key = ex.key;
            put.value.data = (uint8_t *)bytes;
            put.value.len = len;
            rc = cw_conn_call(c->gcs, put.req_id, MSG_KV_PUT_REQ, &put.base, MSG_KV_PUT_REPLY, &m,
                              60000);
            if (rc == 0) {
                Rpc__KvPutReply *r = (Rpc__KvPutReply *)m;
                if (r->status && r->status->code != 0)
                    rc = rayc__error(r->status->code, "uploading %s: %s", o->code[i],
                                     r->status->message);
                msg_free(m);
            }
        }
        free(bytes);
        if (rc != 0)
            return rc == RAYC_ETIMEDOUT || rc == RAYC_ECONN
                       ? rayc__error(rc, "uploading %s to the GCS: %s", o->code[i],
                                     rayc_strerror(rc))
                       : rc;
    }
    return 0;
}

static int add_job(core_t *c, const rayc_init_opts *o)
{
    Rpc__JobInfo job = RPC__JOB_INFO__INIT;
    job.driver_id.data = c->worker_id.b;
    job.driver_id.len = WORKER_ID_SIZE;
    job.node_id.data = c->node_id.b;
    job.node_id.len = NODE_ID_SIZE;
    job.driver_pid = (int32_t)getpid();
    job.start_time_ms = wall_ms();
    char entry[256] = "";
    read_small("/proc/self", "comm", entry, sizeof(entry));
    job.entrypoint = entry;
    /* No namespace given: a fresh anonymous one, as in Ray. */
    if (o && o->namespace_)
        snprintf(c->namespace_, sizeof(c->namespace_), "%s", o->namespace_);
    else
        snprintf(c->namespace_, sizeof(c->namespace_), "anonymous-%.16s",
                 id_hex(c->worker_id.b, WORKER_ID_SIZE, (char[ID_HEX_MAX]){0}));
    job.namespace_ = c->namespace_;
    size_t nenv = 0;
    while (o && o->env && o->env[nenv])
        nenv++;
    job.n_env = nenv;
    job.env = (char **)(o ? o->env : NULL);
    size_t ncode = 0;
    while (o && o->code && o->code[ncode])
        ncode++;
    char(*hashes)[2 * SHA256_SIZE + 1] = calloc(ncode ? ncode : 1, sizeof(*hashes));
    char **hash_ptrs = calloc(ncode ? ncode : 1, sizeof(char *));
    if (hashes == NULL || hash_ptrs == NULL) {
        free(hashes);
        free(hash_ptrs);
        return rayc__error(RAYC_ENOMEM, "out of memory");
    }
    int urc = upload_code(c, o, hashes, ncode);
    if (urc != 0) {
        free(hashes);
        free(hash_ptrs);
        return urc;
    }
    for (size_t i = 0; i < ncode; i++)
        hash_ptrs[i] = hashes[i];
    job.n_code_hashes = ncode;
    job.code_hashes = hash_ptrs;
    Rpc__AddJobRequest req = RPC__ADD_JOB_REQUEST__INIT;
    req.req_id = cw_conn_next_id(c->gcs);
    req.job = &job;
    ProtobufCMessage *m;
    int rc =
        cw_conn_call(c->gcs, req.req_id, MSG_ADD_JOB_REQ, &req.base, MSG_ADD_JOB_REPLY, &m, 10000);
    if (rc != 0)
        return rayc__error(rc, "registering the job at the GCS: %s", rayc_strerror(rc));
    Rpc__AddJobReply *r = (Rpc__AddJobReply *)m;
    rc = r->status ? r->status->code : 0;
    if (rc == 0) {
        c->job = job_id_from_int(r->job_id);
        c->task = task_id_for_driver(c->job);
        /* Tell our raylet what this job's workers need. */
        Rpc__JobConfig jc = RPC__JOB_CONFIG__INIT;
        jc.job_id = r->job_id;
        jc.n_code_hashes = ncode;
        jc.code_hashes = hash_ptrs;
        jc.n_env = nenv;
        jc.env = job.env;
        rc = cw_conn_send(c->raylet, MSG_JOB_CONFIG, &jc.base);
    } else {
        rayc__error(rc, "the GCS refused the job: %s", r->status->message);
    }
    msg_free(m);
    free(hashes);
    free(hash_ptrs);
    return rc;
}

static void disconnect(core_t *c)
{
    borrow_service_stop(c);
    tev_stop(c->events); /* its last batch goes out on the GCS connection */
    /* The raylet frees our put slab with the connection. */
    storec_free(c->store);
    c->store = NULL;
    cw_conn_free(c->raylet);
    cw_conn_free(c->gcs);
    c->raylet = c->gcs = NULL;
    if (c->arena)
        munmap(c->arena, c->arena_size);
    c->arena = NULL;
    c->arena_size = 0;
}

static void load_knobs(core_t *c)
{
    rayc_config cfg;
    char err[256];
    config_defaults(&cfg);
    if (config_from_env(&cfg, err, sizeof(err)) != 0)
        log_warn("ignoring environment: %s", err);
    c->inline_max = cfg.inline_object_max;
    c->put_slab_bytes = cfg.put_slab_bytes;
    c->direct_reads = cfg.actor_direct_reads;
    c->direct_tasks = cfg.direct_task_path;
    c->lease_idle_ms = cfg.direct_lease_idle_ms;
    c->in_flight = cfg.direct_tasks_in_flight;
    c->events_opts.interval_ms = cfg.task_events_report_ms;
    c->events_opts.max_records =
        cfg.task_events_buffer_max > 0 ? (size_t)cfg.task_events_buffer_max : 0;
    config_free(&cfg);
}

/* Load each code library now (RTLD_NOW: a file that is not a library, or
 * has undefined symbols, fails here, naming the path and the loader's
 * message) and keep its absolute path and handle: rayc_submit and
 * rayc_actor_create check the names they are given against them. */
static int check_code(core_t *c, const rayc_init_opts *o)
{
    c->ncode = 0;
    c->code_unchecked = false;
    for (size_t i = 0; o && o->code && o->code[i]; i++) {
        char abs[PATH_MAX];
        if (realpath(o->code[i], abs) == NULL)
            return rayc__error(RAYC_ENOTFOUND, "code library %s: %s", o->code[i], strerror(errno));
        /* Bind every symbol now when this process exports the API (a
         * driver linked with librayc.so), so undefined symbols show here;
         * a driver with librayc linked in statically binds lazily. */
        int mode = dlsym(RTLD_DEFAULT, "rayc_return") ? RTLD_NOW : RTLD_LAZY;
        char magic[4] = {0};
        FILE *f = fopen(abs, "rb");
        size_t got = f ? fread(magic, 1, sizeof(magic), f) : 0;
        if (f)
            fclose(f);
        if (got != sizeof(magic) || memcmp(magic, "\177ELF", 4) != 0)
            return rayc__error(RAYC_EINVAL,
                               "code library %s cannot be loaded: not a shared library (no ELF "
                               "header)",
                               o->code[i]);
        void *h = dlopen(abs, mode | RTLD_LOCAL);
        if (h == NULL && mode == RTLD_NOW)
            return rayc__error(RAYC_EINVAL, "code library %s cannot be loaded: %s", o->code[i],
                               dlerror());
        if (h == NULL) {
            /* This process does not provide the API the library binds to
             * (librayc linked in statically): the workers will judge it. */
            log_warn("not checking code library %s here: %s", o->code[i], dlerror());
            c->code_unchecked = true;
            continue;
        }
        if (c->ncode < CORE_MAX_CODE) {
            snprintf(c->code_paths[c->ncode], CORE_PATH_MAX, "%s", abs);
            c->code_handles[c->ncode++] = h;
        } else {
            dlclose(h);
            c->code_unchecked = true;
        }
    }
    return 0;
}

bool core__has_symbol(const char *prefix, const char *name)
{
    core_t *c = &rayc__core;
    if (c->ncode == 0 || c->is_worker || c->code_unchecked)
        return true; /* cannot tell from here: the worker will say */
    char sym[512];
    snprintf(sym, sizeof(sym), "%s%s", prefix, name);
    for (size_t i = 0; i < c->ncode; i++)
        if (c->code_handles[i] && dlsym(c->code_handles[i], sym))
            return true;
    return false;
}

int rayc_init(const rayc_init_opts *opts)
{
    core_t *c = &rayc__core;
    pthread_mutex_lock(&lifecycle_mu);
    if (c->initialized) {
        pthread_mutex_unlock(&lifecycle_mu);
        return rayc__error(RAYC_EINVAL, "rayc_init: already initialized");
    }
    rayc__error_clear();
    load_knobs(c);
    do /* a zero owner tag would mean "none" (ids.h) */
        c->worker_id = worker_id_random();
    while (id_is_nil(c->worker_id.b, ID_OWNER_TAG_SIZE));
    id_set_owner(&c->worker_id);
    c->put_index = 0;
    int rc = init_tables(c) == 0 ? 0 : rayc__error(RAYC_ENOMEM, "out of memory");
    c->log_to_driver = opts ? opts->log_to_driver : 0;

    const char *addr = opts && opts->address ? opts->address : getenv("RAYC_ADDRESS");
    char session[CORE_PATH_MAX] = "";
    bool have_session = false;
    /* Another user's session is an error where it would be followed (no
     * address, or "auto"); elsewhere it is only not used. */
    int src = rc == 0 ? local_session(session, sizeof(session), &have_session) : 0;
    bool auto_addr = addr == NULL || *addr == '\0' || strcmp(addr, "auto") == 0;
    if (src != 0 && auto_addr)
        rc = src;
    else if (src != 0)
        rayc__error_clear();
    if (addr == NULL || *addr == '\0')
        addr = have_session ? "auto" : "local";

    if (rc == 0 && strcmp(addr, "local") == 0) {
        rc = embedded_start(&c->embedded, opts, session, sizeof(session));
        have_session = rc == 0;
        addr = "auto";
    }
    if (rc == 0 && strcmp(addr, "auto") == 0) {
        char gcs[300];
        if (!have_session)
            rc = rayc__error(RAYC_ENOTFOUND,
                             "no rayc session on this machine (%s/session_latest); start one "
                             "with `rayc start --head` or use address \"local\"",
                             temp_root());
        else if (read_small(session, "gcs_address", gcs, sizeof(gcs)) != 0 ||
                 parse_host_port(gcs, c->gcs_host, sizeof(c->gcs_host), &c->gcs_port) != 0)
            rc = rayc__error(RAYC_ENOTFOUND, "session %s has no valid gcs_address", session);
    } else if (rc == 0 &&
               parse_host_port(addr, c->gcs_host, sizeof(c->gcs_host), &c->gcs_port) != 0) {
        rc = rayc__error(RAYC_EINVAL, "bad address '%s' (want HOST:PORT, \"auto\" or \"local\")",
                         addr);
    }
    if (rc == 0)
        rc = find_token(c, have_session ? session : NULL);
    if (rc == 0)
        rc = connect_gcs(c);
    if (rc == 0)
        rc = find_local_raylet(c, have_session ? session : NULL);
    if (rc == 0)
        rc = connect_raylet(c);
    if (rc == 0)
        rc = check_code(c, opts);
    if (rc == 0)
        rc = start_components(c);
    if (rc == 0)
        rc = add_job(c, opts);
    if (rc != 0) {
        char saved[512];
        snprintf(saved, sizeof(saved), "%s", rayc_last_error());
        disconnect(c);
        destroy_tables(c);
        embedded_stop(&c->embedded);
        rayc__error(rc, "%s", saved);
    } else {
        __atomic_store_n(&c->initialized, true, __ATOMIC_RELEASE);
        borrow_service_start(c);
    }
    pthread_mutex_unlock(&lifecycle_mu);
    return rc;
}

int rayc_shutdown(void)
{
    core_t *c = &rayc__core;
    pthread_mutex_lock(&lifecycle_mu);
    if (!c->initialized) {
        pthread_mutex_unlock(&lifecycle_mu);
        return rayc__error(RAYC_ENOTINIT, "rayc_init has not been called");
    }
    __atomic_store_n(&c->initialized, false, __ATOMIC_RELEASE);

    /* Objects and pins: the raylet frees everything an owner held and drops
     * every pin of a client when its connection closes, so closing it is
     * the release. The job end is recorded first, after the last task
     * events. */
    tev_stop(c->events);
    Rpc__FinishJobRequest req = RPC__FINISH_JOB_REQUEST__INIT;
    req.job_id = job_id_to_int(c->job);
    ProtobufCMessage *m = NULL;
    if (core__gcs_call(MSG_FINISH_JOB_REQ, &req.base, &req.req_id, MSG_FINISH_JOB_REPLY, &m,
                       5000) == 0)
        msg_free(m);
    asub_free(c->actors);
    c->actors = NULL;
    dtx_free(c->direct);
    c->direct = NULL;
    disconnect(c);
    free_retired_gcs();
    for (size_t i = 0; i < c->ncode; i++)
        if (c->code_handles[i])
            dlclose(c->code_handles[i]);
    c->ncode = 0;
    destroy_tables(c);
    embedded_stop(&c->embedded);
    pthread_mutex_unlock(&lifecycle_mu);
    return 0;
}

const char *rayc_node_id(void)
{
    return rayc__core.initialized ? rayc__core.node_hex : "";
}

static double res_of(Rpc__Resource **rs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rs[i]->name, name) == 0)
            return rs[i]->amount;
    return 0;
}

int rayc_nodes(rayc_node_info *out, size_t cap, size_t *count)
{
    core_t *c = &rayc__core;
    int rc = core__check_init();
    if (rc != 0)
        return rc;
    if (count == NULL || (cap > 0 && out == NULL))
        return rayc__error(RAYC_EINVAL, "rayc_nodes: NULL argument");
    cw_conn *g = live_gcs(c);
    if (g == NULL)
        return rayc__error(RAYC_ECONN, "rayc_nodes: no GCS connection: %s", rayc_last_error());
    Rpc__ListNodesRequest req = RPC__LIST_NODES_REQUEST__INIT;
    req.req_id = cw_conn_next_id(g);
    ProtobufCMessage *m;
    rc =
        cw_conn_call(g, req.req_id, MSG_LIST_NODES_REQ, &req.base, MSG_LIST_NODES_REPLY, &m, 10000);
    if (rc != 0)
        return rayc__error(rc, "listing nodes: %s", rayc_strerror(rc));
    Rpc__ListNodesReply *r = (Rpc__ListNodesReply *)m;
    *count = r->n_nodes;
    for (size_t i = 0; i < r->n_nodes && i < cap; i++) {
        Rpc__NodeInfo *n = r->nodes[i];
        rayc_node_info *o = &out[i];
        memset(o, 0, sizeof(*o));
        if (n->node_id.len == NODE_ID_SIZE)
            id_hex(n->node_id.data, NODE_ID_SIZE, o->node_id);
        snprintf(o->address, sizeof(o->address), "%s", n->address);
        o->alive = n->state == RPC__NODE_STATE__NODE_ALIVE;
        o->cpus_total = res_of(n->resources_total, n->n_resources_total, "CPU");
        o->cpus_available = res_of(n->resources_available, n->n_resources_available, "CPU");
        o->gpus_total = res_of(n->resources_total, n->n_resources_total, "GPU");
        o->gpus_available = res_of(n->resources_available, n->n_resources_available, "GPU");
        o->store_capacity = n->store_capacity;
        o->store_used = n->store_used;
    }
    msg_free(m);
    return 0;
}

int core__init_worker(const char *socket_path, const char *worker_id_hex)
{
    core_t *c = &rayc__core;
    load_knobs(c);
    c->is_worker = true;
    c->log_to_driver = -1;
    if (id_from_hex(worker_id_hex, c->worker_id.b, WORKER_ID_SIZE) != 0)
        return rayc__error(RAYC_EINVAL, "bad worker id '%s'", worker_id_hex);
    id_set_owner(&c->worker_id);
    if (init_tables(c) != 0)
        return rayc__error(RAYC_ENOMEM, "out of memory");
    snprintf(c->raylet_socket, sizeof(c->raylet_socket), "%s", socket_path);
    int rc = connect_raylet(c);
    if (rc != 0)
        return rc;
    /* Task code may ask the GCS too (rayc_nodes, actors): its address and
     * the token are in the raylet's session directory. The connection is
     * made on first use (live_gcs): most workers never need it, and a
     * thousand actors would otherwise hold a thousand GCS connections. The
     * token also lets this worker lease workers for its own tasks (the
     * direct task path). Without them tasks still run. */
    char gcs[300] = "";
    const char *env_gcs = getenv("RAYC_GCS_ADDRESS");
    if (env_gcs && *env_gcs)
        snprintf(gcs, sizeof(gcs), "%s", env_gcs);
    if ((gcs[0] || read_small(c->session_dir, "gcs_address", gcs, sizeof(gcs)) == 0) &&
        parse_host_port(gcs, c->gcs_host, sizeof(c->gcs_host), &c->gcs_port) == 0 &&
        find_token(c, c->session_dir) != 0)
        log_warn("worker: no cluster token: %s", rayc_last_error());
    rc = start_components(c);
    if (rc != 0)
        return rc;
    __atomic_store_n(&c->initialized, true, __ATOMIC_RELEASE);
    return 0;
}
