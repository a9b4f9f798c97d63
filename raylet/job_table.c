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
#include "sha256.h"
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
    bool lookup_pending;  /* the job's record is still to be asked of the GCS */
    char error[256];
    bool remote_driver; /* its driver runs on driver_node (learned from the GCS) */
    bool ended;         /* the GCS's record, when learned, said the job is over */
    node_id_t driver_node;
    struct rjob *next;
} rjob;

#define FETCH_RETRY_MS     200   /* without a GCS, try the fetches again this often */
#define FETCH_RETRY_FOR_MS 60000 /* ... for this long (a GCS restart takes ~0.1-2 s) */

/* A local driver's JobConfig, being checked against the GCS's job table. */
typedef struct claim {
    uint32_t job_id;
    worker_id_t driver;
    char **hashes;
    size_t nhashes;
    jt_claim_cb cb;
    void *arg;
    uint64_t retry_until; /* the GCS was away: asked again until then (0: not) */
    struct job_table *jt;
    struct claim *next;
} claim;

struct job_table {
    struct event *retry_ev; /* armed while a job or claim waits for the GCS */
    gcs_session *gs;
    rjob *jobs;
    claim *claims; /* waiting to be asked again */
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

/* A package is named by the SHA-256 of its bytes in lower-case hex; the
 * name is also a file name here, so nothing else is acceptable. */
static bool valid_hash(const char *h)
{
    if (strlen(h) != 2 * SHA256_SIZE)
        return false;
    for (size_t i = 0; h[i]; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

/* The bytes are the package the hash names. */
static bool package_ok(const void *data, size_t len, const char *hash)
{
    uint8_t digest[SHA256_SIZE];
    char hex[2 * SHA256_SIZE + 1];
    sha256(data, len, digest);
    id_hex(digest, SHA256_SIZE, hex);
    return strcmp(hex, hash) == 0;
}

/* The package cached at path still holds what its name says (nobody wrote
 * over it since it was fetched). */
static bool cached_ok(const char *path, const char *hash)
{
    size_t len = 0;
    char *data = read_file(path, &len);
    if (data == NULL)
        return false;
    bool ok = package_ok(data, len, hash);
    free(data);
    return ok;
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
static void arm_retry(job_table *jt);
static void lookup_job(job_table *jt, rjob *j);

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
    /* The GCS checks this too; a package is still checked before it is
     * written where workers load it from (a Redis or GCS not to be trusted
     * with running code). */
    if (!package_ok(r->value.data, r->value.len, j->hashes[i])) {
        job_failed(jt, j, "code package %s from the GCS does not match its hash: not loaded",
                   j->hashes[i]);
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
    arm_retry(jt);
}

/* Ask the GCS for each package not cached here and not asked for yet. */
static void fetch_missing(job_table *jt, rjob *j)
{
    for (size_t i = 0; i < j->nhashes && j->state == JOB_FETCHING; i++) {
        if (j->asked[i])
            continue;
        j->asked[i] = true;
        if (access(j->paths[i], R_OK) == 0) { /* cached on this node already */
            if (cached_ok(j->paths[i], j->hashes[i])) {
                code_fetched(jt, j);
                continue;
            }
            log_warn("job %u: cached code package %s does not match its hash; fetching it again",
                     j->job_id, j->paths[i]);
            unlink(j->paths[i]);
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

static void claim_send(job_table *jt, claim *c);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_table *jt = arg;
    for (rjob *j = jt->jobs; j; j = j->next) {
        if (j->state == JOB_FETCHING && j->retry_until != 0 && j->lookup_pending)
            lookup_job(jt, j);
        else if (j->state == JOB_FETCHING && j->retry_until != 0 && j->asked)
            fetch_missing(jt, j);
    }
    claim *c = jt->claims;
    jt->claims = NULL;
    while (c) {
        claim *next = c->next;
        claim_send(jt, c);
        c = next;
    }
}

static void arm_retry(job_table *jt)
{
    if (!evtimer_pending(jt->retry_ev, NULL)) {
        struct timeval tv = {0, FETCH_RETRY_MS * 1000};
        evtimer_add(jt->retry_ev, &tv);
    }
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

/* The record of a job about to be set up: a new one, or one that failed
 * before it was ever set up (the GCS did not know it: a driver's claim came
 * before the job existed), FETCHING again. NULL when out of memory. */
static rjob *job_to_set_up(job_table *jt, uint32_t job_id)
{
    rjob *j = job_find(jt, job_id);
    if (j == NULL)
        return job_add(jt, job_id);
    if (j->hashes == NULL && j->state == JOB_FAILED) {
        j->state = JOB_FETCHING;
        j->error[0] = '\0';
    }
    return j;
}

/* The GCS's record of a job in a ListJobs reply, or NULL. */
static Rpc__JobInfo *job_info_of(Rpc__ListJobsReply *r, uint32_t job_id)
{
    for (size_t i = 0; r != NULL && i < r->n_jobs; i++)
        if (r->jobs[i]->job_id == job_id)
            return r->jobs[i];
    return NULL;
}

/* Set up j from the GCS's record of its job. */
static void configure_from(job_table *jt, rjob *j, Rpc__JobInfo *ji)
{
    j->ended = ji->state != RPC__JOB_STATE__JOB_RUNNING;
    if (ji->node_id.len == NODE_ID_SIZE) {
        j->remote_driver = true; /* a local driver is found first anyway */
        memcpy(j->driver_node.b, ji->node_id.data, NODE_ID_SIZE);
    }
    job_configure(jt, j, ji->code_hashes, ji->n_code_hashes, ji->env, ji->n_env);
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
    Rpc__JobInfo *ji = job_info_of(r, j->job_id);
    if (ji != NULL)
        configure_from(jt, j, ji);
    else
        job_failed(jt, j, r ? "the GCS does not know this job" : "lost the GCS looking up the job");
}

/* ------------------------------------------------------------ drivers' claims */

static void claim_free(claim *c)
{
    free_strv(c->hashes, c->nhashes);
    free(c);
}

/* Why the GCS's record ji refutes claim c, or NULL when it bears it out. */
static const char *claim_refuted(const claim *c, const Rpc__JobInfo *ji)
{
    if (ji == NULL)
        return "the GCS does not know the job";
    if (ji->state != RPC__JOB_STATE__JOB_RUNNING)
        return "the job is not running";
    if (ji->driver_id.len != WORKER_ID_SIZE ||
        memcmp(ji->driver_id.data, c->driver.b, WORKER_ID_SIZE) != 0)
        return "the job is another driver's";
    if (ji->n_code_hashes != c->nhashes)
        return "its code packages are not the job's";
    for (size_t i = 0; i < c->nhashes; i++)
        if (strcmp(ji->code_hashes[i], c->hashes[i]) != 0)
            return "its code packages are not the job's";
    return NULL;
}

/* The verdict: tell the claimant, then set the job up from the GCS's record
 * (true or not, the claim made the job known here) as jt_learn would, or
 * fail a job the GCS does not know (a later driver or task of that id sets
 * it up again: see job_to_set_up). */
static void claim_done(job_table *jt, claim *c, Rpc__JobInfo *ji, const char *refused)
{
    c->cb(c->arg, c->job_id, &c->driver, refused);
    rjob *j = job_find(jt, c->job_id);
    if (j != NULL && j->hashes == NULL && j->state == JOB_FETCHING) {
        if (ji != NULL)
            configure_from(jt, j, ji);
        else
            job_failed(jt, j, "%s", refused ? refused : "the GCS does not know the job");
    }
    claim_free(c);
}

/* The GCS is away: ask again every FETCH_RETRY_MS for up to
 * FETCH_RETRY_FOR_MS, then refuse. */
static void claim_wait(job_table *jt, claim *c, const char *why)
{
    uint64_t now = now_ms();
    if (c->retry_until == 0)
        c->retry_until = now + FETCH_RETRY_FOR_MS;
    if (now >= c->retry_until) {
        claim_done(jt, c, NULL, why);
        return;
    }
    c->next = jt->claims;
    jt->claims = c;
    arm_retry(jt);
}

static void on_claim_info(void *arg, ProtobufCMessage *reply)
{
    claim *c = arg;
    Rpc__ListJobsReply *r = (Rpc__ListJobsReply *)reply;
    if (r == NULL) {
        claim_wait(c->jt, c, "lost the GCS while checking the job");
        return;
    }
    Rpc__JobInfo *ji = job_info_of(r, c->job_id);
    claim_done(c->jt, c, ji, claim_refuted(c, ji));
}

static void claim_send(job_table *jt, claim *c)
{
    Rpc__ListJobsRequest req = RPC__LIST_JOBS_REQUEST__INIT;
    if (gs_call(jt->gs, MSG_LIST_JOBS_REQ, &req.base, on_claim_info, c) != 0)
        claim_wait(jt, c, "no GCS connection to check the job");
}

void jt_config(job_table *jt, uint32_t job_id, const worker_id_t *driver, char **hashes,
               size_t nhashes, jt_claim_cb cb, void *arg)
{
    claim *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->hashes = copy_strv(hashes, nhashes)) == NULL) {
        free(c);
        cb(arg, job_id, driver, "out of memory");
        return;
    }
    *c = (claim){job_id, *driver, c->hashes, nhashes, cb, arg, 0, jt, NULL};
    /* Its tasks wait while the job is checked: it is FETCHING. */
    if (job_to_set_up(jt, job_id) == NULL) {
        claim_done(jt, c, NULL, "out of memory");
        return;
    }
    claim_send(jt, c);
}

/* Ask the GCS for a job this node learned of by one of its tasks; while the
 * GCS is away (a restart), ask again on the retry timer. */
static void lookup_job(job_table *jt, rjob *j)
{
    struct fetch *f = malloc(sizeof(*f));
    if (f == NULL) {
        job_failed(jt, j, "out of memory");
        return;
    }
    *f = (struct fetch){jt, j->job_id, 0};
    Rpc__ListJobsRequest req = RPC__LIST_JOBS_REQUEST__INIT;
    if (gs_call(jt->gs, MSG_LIST_JOBS_REQ, &req.base, on_job_info, f) != 0) {
        free(f);
        j->lookup_pending = true;
        retry_later(jt, j, "no GCS connection to look up the job");
    } else {
        j->lookup_pending = false;
    }
}

void jt_learn(job_table *jt, uint32_t job_id)
{
    rjob *j = job_find(jt, job_id);
    if (j != NULL && (j->hashes != NULL || j->state != JOB_FAILED))
        return; /* set up already, or being set up */
    j = job_to_set_up(jt, job_id);
    if (j != NULL)
        lookup_job(jt, j);
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
        *error = j->ended ? "its job has ended" : j->error;
    return j->ended && j->state == JOB_READY ? JOB_ENDED : j->state;
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
    for (claim *c = jt->claims, *next; c; c = next) {
        next = c->next;
        claim_free(c);
    }
    event_free(jt->retry_ev);
    free(jt);
}
