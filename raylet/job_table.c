/*
 * job_table.c -- jobs known to this raylet and their code; see job_table.h.
 * Runs in the raylet's loop thread.
 */
#include "job_table.h"

#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "util.h"

typedef struct rjob {
    uint32_t job_id;
    int state;
    char **hashes;
    size_t nhashes;
    char **env;
    size_t nenv;
    char **paths; /* cached libraries, once fetched */
    bool *asked;  /* a fetch of package i is in flight or done */
    size_t fetched;
    uint64_t retry_until; /* the GCS was away: fetches are retried until then (0: not) */
    char error[256];
    bool remote_driver; /* its driver runs on driver_node (learned from the GCS) */
    node_id_t driver_node;
    struct rjob *next;
} rjob;

#define FETCH_RETRY_MS     200   /* without a GCS, try the fetches again this often */
#define FETCH_RETRY_FOR_MS 60000 /* ... for this long (a GCS restart takes ~0.1-2 s) */

struct job_table {
    struct event *retry_ev; /* armed while some job waits for the GCS to fetch code */
    gcs_session *gs;
    rjob *jobs;
    char code_dir[1100];
    void (*on_change)(void *arg);
    void *arg;
};

static rjob *job_find(job_table *jt, uint32_t job_id)
{
    for (rjob *j = jt->jobs; j; j = j->next)
        if (j->job_id == job_id)
            return j;
    return NULL;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void job_free(rjob *j)
{
    free_strv(j->hashes, j->nhashes);
    free_strv(j->env, j->nenv);
    free_strv(j->paths, j->nhashes);
    free(j->asked);
    free(j);
}

static char **copy_strv(char **src, size_t n)
{
    char **v = calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; v && i < n; i++)
        if ((v[i] = strdup(src[i])) == NULL) {
            free_strv(v, i);
            return NULL;
        }
    return v;
}

/* A content hash names a file: only hex is acceptable. */
static bool valid_hash(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

struct fetch {
    job_table *jt;
    uint32_t job_id;
    size_t index;
};

static void job_failed(job_table *jt, rjob *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_failed(job_table *jt, rjob *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->error, sizeof(j->error), fmt, ap);
    va_end(ap);
    j->state = JOB_FAILED;
    log_error("job %u: %s", j->job_id, j->error);
    jt->on_change(jt->arg);
}

static void code_fetched(job_table *jt, rjob *j)
{
    if (++j->fetched == j->nhashes) {
        j->state = JOB_READY;
        log_info("job %u: %zu code package(s) ready", j->job_id, j->nhashes);
        jt->on_change(jt->arg);
    }
}

static void retry_later(job_table *jt, rjob *j, const char *why);

static void on_code_reply(void *arg, ProtobufCMessage *reply)
{
    struct fetch *f = arg;
    job_table *jt = f->jt;
    rjob *j = job_find(jt, f->job_id);
    size_t i = f->index;
    free(f);
    if (j == NULL || j->state != JOB_FETCHING)
        return;
    Rpc__KvGetReply *r = (Rpc__KvGetReply *)reply;
    if (r == NULL) { /* the GCS went away (a restart): ask again when it is back */
        j->asked[i] = false;
        retry_later(jt, j, "lost the GCS while fetching code package");
        return;
    }
    if (r->status && r->status->code != 0) {
        job_failed(jt, j, "code package %s is not in the GCS: %s", j->hashes[i],
                   r->status->message);
        return;
    }
    if (write_file(j->paths[i], r->value.data, r->value.len, 0700) != 0) {
        job_failed(jt, j, "cannot cache code package at %s: %s", j->paths[i], strerror(errno));
        return;
    }
    code_fetched(jt, j);
}

/* The GCS is not there to fetch from: try again every FETCH_RETRY_MS for up
 * to FETCH_RETRY_FOR_MS (the supervisor restarts a dead GCS in well under a
 * second; running jobs must only pause), then fail the job. */
static void retry_later(job_table *jt, rjob *j, const char *why)
{
    uint64_t now = now_ms();
    if (j->retry_until == 0) {
        j->retry_until = now + FETCH_RETRY_FOR_MS;
        log_warn("job %u: %s; retrying for up to %d s", j->job_id, why, FETCH_RETRY_FOR_MS / 1000);
    } else if (now >= j->retry_until) {
        job_failed(jt, j, "%s (no GCS for %d s)", why, FETCH_RETRY_FOR_MS / 1000);
        return;
    }
    if (!evtimer_pending(jt->retry_ev, NULL)) {
        struct timeval tv = {0, FETCH_RETRY_MS * 1000};
        evtimer_add(jt->retry_ev, &tv);
    }
}

/* Ask the GCS for each package not cached here and not asked for yet. */
static void fetch_missing(job_table *jt, rjob *j)
{
    for (size_t i = 0; i < j->nhashes && j->state == JOB_FETCHING; i++) {
        if (j->asked[i])
            continue;
        j->asked[i] = true;
        if (access(j->paths[i], R_OK) == 0) { /* cached on this node already */
            code_fetched(jt, j);
            continue;
        }
        struct fetch *f = malloc(sizeof(*f));
        if (f == NULL) {
            job_failed(jt, j, "out of memory");
            return;
        }
        *f = (struct fetch){jt, j->job_id, i};
        Rpc__KvGetRequest req = RPC__KV_GET_REQUEST__INIT;
        req.ns = "code";
        req.key.data = (uint8_t *)j->hashes[i];
        req.key.len = strlen(j->hashes[i]);
        if (gs_call(jt->gs, MSG_KV_GET_REQ, &req.base, on_code_reply, f) != 0) {
            free(f);
            j->asked[i] = false;
            retry_later(jt, j, "no GCS connection to fetch code");
            return;
        }
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_table *jt = arg;
    for (rjob *j = jt->jobs; j; j = j->next)
        if (j->state == JOB_FETCHING && j->retry_until != 0 && j->asked)
            fetch_missing(jt, j);
}

/* Set up a job's code and environment here and fetch what is not cached. */
static void job_configure(job_table *jt, rjob *j, char **hashes, size_t nhashes, char **env,
                          size_t nenv)
{
    j->nhashes = nhashes;
    j->hashes = copy_strv(hashes, nhashes);
    j->nenv = nenv;
    j->env = copy_strv(env, nenv);
    j->paths = calloc(j->nhashes ? j->nhashes : 1, sizeof(char *));
    j->asked = calloc(j->nhashes ? j->nhashes : 1, sizeof(bool));
    j->state = JOB_FETCHING;
    if (!j->hashes || !j->env || !j->paths || !j->asked) {
        job_failed(jt, j, "out of memory");
        return;
    }
    mkdir_p(jt->code_dir, 0700);
    for (size_t i = 0; i < j->nhashes; i++) {
        char path[1400];
        if (!valid_hash(j->hashes[i])) {
            job_failed(jt, j, "bad code package name '%s'", j->hashes[i]);
            return;
        }
        snprintf(path, sizeof(path), "%s/%s.so", jt->code_dir, j->hashes[i]);
        j->paths[i] = strdup(path);
    }
    if (j->nhashes == 0) {
        j->state = JOB_READY;
        jt->on_change(jt->arg);
        return;
    }
    fetch_missing(jt, j);
}

static rjob *job_add(job_table *jt, uint32_t job_id)
{
    rjob *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->job_id = job_id;
    j->state = JOB_FETCHING;
    j->next = jt->jobs;
    jt->jobs = j;
    return j;
}

void jt_config(job_table *jt, uint32_t job_id, char **hashes, size_t nhashes, char **env,
               size_t nenv)
{
    rjob *j = job_find(jt, job_id);
    if (j != NULL && (j->state != JOB_FETCHING || j->hashes != NULL))
        return; /* a second driver connection of the same job */
    if (j == NULL && (j = job_add(jt, job_id)) == NULL)
        return;
    job_configure(jt, j, hashes, nhashes, env, nenv);
}

/* A task of a job this node has not seen (its driver is elsewhere): learn
 * the job's code and environment from the GCS. */
static void on_job_info(void *arg, ProtobufCMessage *reply)
{
    struct fetch *f = arg;
    job_table *jt = f->jt;
    rjob *j = job_find(jt, f->job_id);
    free(f);
    if (j == NULL || j->hashes != NULL)
        return;
    Rpc__ListJobsReply *r = (Rpc__ListJobsReply *)reply;
    for (size_t i = 0; r && i < r->n_jobs; i++) {
        Rpc__JobInfo *ji = r->jobs[i];
        if (ji->job_id == j->job_id) {
            if (ji->node_id.len == NODE_ID_SIZE) {
                j->remote_driver = true;
                memcpy(j->driver_node.b, ji->node_id.data, NODE_ID_SIZE);
            }
            job_configure(jt, j, ji->code_hashes, ji->n_code_hashes, ji->env, ji->n_env);
            return;
        }
    }
    job_failed(jt, j, r ? "the GCS does not know this job" : "lost the GCS looking up the job");
}

void jt_learn(job_table *jt, uint32_t job_id)
{
    if (job_find(jt, job_id))
        return;
    rjob *j = job_add(jt, job_id);
    struct fetch *f = malloc(sizeof(*f));
    if (j == NULL || f == NULL) {
        free(f);
        return;
    }
    *f = (struct fetch){jt, job_id, 0};
    Rpc__ListJobsRequest req = RPC__LIST_JOBS_REQUEST__INIT;
    if (gs_call(jt->gs, MSG_LIST_JOBS_REQ, &req.base, on_job_info, f) != 0) {
        free(f);
        job_failed(jt, j, "no GCS connection to look up job %u", job_id);
    }
}

void jt_bind(job_table *jt, uint32_t job_id, conn *worker_conn)
{
    rjob *j = job_find(jt, job_id);
    if (j == NULL)
        return;
    Rpc__BindJob b = RPC__BIND_JOB__INIT;
    b.job_id = j->job_id;
    b.n_code_paths = j->nhashes;
    b.code_paths = j->paths;
    b.n_env = j->nenv;
    b.env = j->env;
    conn_send(worker_conn, MSG_BIND_JOB, &b.base);
}

int jt_state(job_table *jt, uint32_t job_id, const char **error)
{
    rjob *j = job_find(jt, job_id);
    if (j == NULL)
        return -1;
    if (error)
        *error = j->error;
    return j->state;
}

bool jt_driver_node(job_table *jt, uint32_t job_id, node_id_t *node)
{
    rjob *j = job_find(jt, job_id);
    if (j == NULL || !j->remote_driver)
        return false;
    *node = j->driver_node;
    return true;
}

void jt_remove(job_table *jt, uint32_t job_id)
{
    for (rjob **pp = &jt->jobs; *pp; pp = &(*pp)->next) {
        if ((*pp)->job_id == job_id) {
            rjob *j = *pp;
            *pp = j->next;
            job_free(j);
            return;
        }
    }
}

job_table *jt_new(struct event_base *base, const rayc_config *cfg, gcs_session *gs,
                  void (*on_change)(void *arg), void *arg)
{
    job_table *jt = calloc(1, sizeof(*jt));
    if (jt == NULL)
        return NULL;
    jt->retry_ev = evtimer_new(base, on_retry, jt);
    if (jt->retry_ev == NULL) {
        free(jt);
        return NULL;
    }
    jt->gs = gs;
    jt->on_change = on_change;
    jt->arg = arg;
    snprintf(jt->code_dir, sizeof(jt->code_dir), "%s/code", cfg->session_dir);
    return jt;
}

void jt_free(job_table *jt)
{
    if (jt == NULL)
        return;
    for (rjob *j = jt->jobs, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    event_free(jt->retry_ev);
    free(jt);
}
