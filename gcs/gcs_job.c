/*
 * gcs_job.c -- the job table; see gcs_job.h.
 *
 * Records are unpacked JobInfo messages owned by the table; a change builds
 * a shallow copy and deep-copies it (as gcs_node.c does), so a failed copy
 * leaves the table as it was.
 * Runs in the GCS event-loop thread only.
 */
#include "gcs_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs_map.h"
#include "gcs_storage.h"
#include "ids.h"
#include "rayc.h"

struct gcs_job_table {
    gcs_map *jobs; /* 4-byte big-endian id -> Rpc__JobInfo */
    uint32_t counter;
};

static void free_job(void *p)
{
    rpc__job_info__free_unpacked(p, NULL);
}

gcs_job_table *gcs_job_table_new(void)
{
    gcs_job_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->jobs = gcs_map_new(free_job);
    if (t->jobs == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void gcs_job_table_free(gcs_job_table *t)
{
    if (t == NULL)
        return;
    gcs_map_free(t->jobs);
    free(t);
}

uint32_t gcs_job_counter(const gcs_job_table *t)
{
    return t->counter;
}

void gcs_job_set_counter(gcs_job_table *t, uint32_t counter)
{
    if (counter > t->counter)
        t->counter = counter;
}

void gcs_job_key(uint32_t job_id, uint8_t out[4])
{
    job_id_t j = job_id_from_int(job_id);
    memcpy(out, j.b, JOB_ID_SIZE);
}

void gcs_job_counter_format(uint32_t counter, char out[16])
{
    snprintf(out, 16, "%u", counter);
}

int gcs_job_counter_parse(const uint8_t *s, size_t len, uint32_t *out)
{
    char buf[16];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
    errno = 0;
    unsigned long v = strtoul(buf, NULL, 10);
    if (errno || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

const Rpc__JobInfo *gcs_job_get(const gcs_job_table *t, uint32_t job_id)
{
    uint8_t key[4];
    gcs_job_key(job_id, key);
    return gcs_map_get(t->jobs, key, sizeof(key));
}

size_t gcs_job_count(const gcs_job_table *t)
{
    return gcs_map_size(t->jobs);
}

int gcs_job_add(gcs_job_table *t, const Rpc__JobInfo *job, uint64_t wall_ms,
                const Rpc__JobInfo **out)
{
    uint32_t id = job ? job->job_id : 0;
    if (id == 0) {
        if (t->counter == UINT32_MAX)
            return RAYC_EINVAL;
        id = t->counter + 1;
    } else if (gcs_job_get(t, id) != NULL) {
        return RAYC_EEXIST;
    }
    Rpc__JobInfo tmpl = RPC__JOB_INFO__INIT;
    if (job)
        tmpl = *job;
    tmpl.job_id = id;
    tmpl.state = RPC__JOB_STATE__JOB_RUNNING;
    if (tmpl.start_time_ms == 0)
        tmpl.start_time_ms = wall_ms;
    tmpl.end_time_ms = 0;
    Rpc__JobInfo *copy = (Rpc__JobInfo *)gcs_storage_msg_dup(&tmpl.base);
    if (copy == NULL)
        return RAYC_ENOMEM;
    uint8_t key[4];
    gcs_job_key(id, key);
    if (gcs_map_put(t->jobs, key, sizeof(key), copy) < 0) {
        free_job(copy);
        return RAYC_ENOMEM;
    }
    if (id > t->counter)
        t->counter = id;
    if (out)
        *out = copy;
    return RAYC_OK;
}

int gcs_job_finish(gcs_job_table *t, uint32_t job_id, bool failed, uint64_t wall_ms,
                   const Rpc__JobInfo **out, bool *changed)
{
    if (changed)
        *changed = false;
    const Rpc__JobInfo *cur = gcs_job_get(t, job_id);
    if (cur == NULL)
        return RAYC_ENOTFOUND;
    if (cur->state != RPC__JOB_STATE__JOB_RUNNING) {
        if (out)
            *out = cur;
        return RAYC_OK;
    }
    Rpc__JobInfo tmpl = *cur;
    tmpl.state = failed ? RPC__JOB_STATE__JOB_FAILED : RPC__JOB_STATE__JOB_FINISHED;
    tmpl.end_time_ms = wall_ms;
    Rpc__JobInfo *copy = (Rpc__JobInfo *)gcs_storage_msg_dup(&tmpl.base);
    if (copy == NULL)
        return RAYC_ENOMEM;
    uint8_t key[4];
    gcs_job_key(job_id, key);
    gcs_map_put(t->jobs, key, sizeof(key), copy); /* replaces: cannot fail */
    if (out)
        *out = copy;
    if (changed)
        *changed = true;
    return RAYC_OK;
}

int gcs_job_load(gcs_job_table *t, const uint8_t *packed, size_t len)
{
    Rpc__JobInfo *job = rpc__job_info__unpack(NULL, len, packed);
    if (job == NULL)
        return RAYC_EINVAL;
    if (job->job_id == 0) {
        free_job(job);
        return RAYC_EINVAL;
    }
    uint8_t key[4];
    gcs_job_key(job->job_id, key);
    if (gcs_map_put(t->jobs, key, sizeof(key), job) < 0) {
        free_job(job);
        return RAYC_ENOMEM;
    }
    if (job->job_id > t->counter)
        t->counter = job->job_id;
    return RAYC_OK;
}

static int cmp_jobs(const void *a, const void *b)
{
    uint32_t x = (*(const Rpc__JobInfo *const *)a)->job_id;
    uint32_t y = (*(const Rpc__JobInfo *const *)b)->job_id;
    return x < y ? -1 : x > y;
}

size_t gcs_job_list(const gcs_job_table *t, const Rpc__JobInfo **out, size_t cap)
{
    size_t total = gcs_map_size(t->jobs);
    const Rpc__JobInfo **all = malloc((total ? total : 1) * sizeof(*all));
    if (all == NULL)
        return 0;
    size_t i = 0;
    gcs_map_iter it;
    void *p;
    gcs_map_iter_init(&it);
    while (gcs_map_next(t->jobs, &it, NULL, NULL, &p))
        all[i++] = p;
    qsort(all, i, sizeof(*all), cmp_jobs);
    size_t n = i < cap ? i : cap;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    return n;
}
