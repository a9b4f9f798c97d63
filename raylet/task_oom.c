/*
 * task_oom.c -- the task manager's side of the memory monitor: which
 * running task's worker dies when the node runs out of memory, and what its
 * owner is told; the back-off that holds the retry of a task it killed. Shares
 * task_manager_internal.h. Runs in the raylet's loop thread.
 */
#include "task_manager_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "memory_monitor.h"

/* ---------------------------------------------------------------- memory monitor */

#define OOM_MAX_CANDIDATES 256
#define MIB                (1024.0 * 1024.0)

/* Resident bytes of a process (0 when unknown). */
static uint64_t proc_rss(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long long size = 0, resident = 0;
    int ok = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return ok == 2 ? (uint64_t)resident * 4096 : 0;
}

int tm_oom_kill(task_manager *tm, const char *node_hex, const mm_usage *u, double threshold)
{
    mm_worker cand[OOM_MAX_CANDIDATES];
    worker *ws[OOM_MAX_CANDIDATES];
    size_t n = lease_running(tm->lm, cand, ws, OOM_MAX_CANDIDATES);
    int v = mm_pick_victim(cand, n);
    if (v < 0)
        return 0;
    char why[320];
    snprintf(why, sizeof(why),
             "the task was killed because node %.12s ran out of memory: used %.0f of %.0f MiB, "
             "threshold %.2f; the task's worker used %.0f MiB",
             node_hex, (double)u->used / MIB, (double)u->total / MIB, threshold,
             (double)proc_rss(cand[v].pid) / MIB);
    lease_mark_oom(tm->lm, ws[v], why);
    log_warn("memory monitor: killing worker pid %d (%s task): %s", cand[v].pid,
             cand[v].retriable ? "retriable" : "non-retriable", why);
    kill(cand[v].pid, SIGKILL);
    return cand[v].pid;
}

/* ---------------------------------------------------------------- back-off */

/* A retry's back-off is over: it goes on as if it just arrived. */
struct delayed {
    task_manager *tm;
    task_id_t id;
};

static void on_delay_done(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *d = arg;
    (void)fd, (void)what;
    rtask *t = tm__find(d->tm, d->id.b, TASK_ID_SIZE);
    if (t && t->state == T_DELAYED) {
        t->state = T_WAITING_DEPS;
        id_map_remove(&d->tm->tasks, &t->hnode); /* submit_common inserts it again */
        tm__submit_common(d->tm, t);
    }
    free(d);
}

/* Hold a retry for its back-off (spec.retry_delay_ms). true if held. */
bool tm__hold_for_backoff(task_manager *tm, rtask *t)
{
    uint32_t ms = t->msg->spec->retry_delay_ms;
    struct delayed *d = ms && tm->d.base ? malloc(sizeof(*d)) : NULL;
    if (d == NULL)
        return false;
    d->tm = tm;
    memcpy(d->id.b, t->msg->spec->task_id.data, TASK_ID_SIZE);
    t->id = d->id;
    t->state = T_DELAYED;
    id_map_insert(&tm->tasks, &t->hnode);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (event_base_once(tm->d.base, -1, EV_TIMEOUT, on_delay_done, d, &tv) != 0) {
        id_map_remove(&tm->tasks, &t->hnode);
        free(d);
        return false;
    }
    return true;
}
