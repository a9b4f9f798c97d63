/*
 * gcs_jobsub.h -- submitted jobs: entrypoint processes the head runs and
 * supervises (Ray's job submission). A submission runs `/bin/sh -c
 * <entrypoint>` (the entrypoint is one argv element, never spliced into a
 * command line) in its own session and process group, with RAYC_ADDRESS,
 * RAYC_TOKEN and RAYC_JOB_SUBMISSION_ID in its environment, its working
 * directory if one was given, and stdout+stderr in
 * <session>/logs/job-driver-<id>.log.
 *
 * Status: PENDING -> RUNNING -> SUCCEEDED (exit 0) | FAILED (non-zero exit,
 * signal, or could not start) | STOPPED (gcs_jobsub_stop). When the
 * entrypoint ends, whatever is left of its process group is killed, so a
 * finished job leaves no process behind. Stop sends SIGTERM to the group,
 * then SIGKILL after GCS_JOBSUB_KILL_GRACE_MS.
 *
 * Children are reaped from a SIGCHLD event on the loop (waitpid on each
 * known pid, never waitpid(-1), so other children of the process are left
 * alone). Records live in memory and, through the save and forget hooks,
 * in the GCS storage: a restarted GCS restores them (gcs_jobsub_restore).
 * A job that was running then is no child of the new GCS: its processes
 * (found by RAYC_JOB_SUBMISSION_ID in their environment) are killed and it
 * is FAILED, so no job runs unsupervised.
 *
 * Ownership: the manager owns its records; pointers it hands out are valid
 * until the next call into the manager or a loop turn.
 * Thread-safety: none; everything runs on the GCS loop's thread.
 */
#ifndef RAYC_GCS_JOBSUB_H
#define RAYC_GCS_JOBSUB_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GCS_JOBSUB_ID_MAX        40   /* "raycsubmit_" + 16 hex + NUL fits */
#define GCS_JOBSUB_MAX           1024 /* records kept; the oldest finished go first */
#define GCS_JOBSUB_ENTRY_MAX     8192 /* longest entrypoint accepted */
#define GCS_JOBSUB_KILL_GRACE_MS 3000 /* SIGTERM -> SIGKILL on stop */

typedef enum {
    GCS_JOBSUB_PENDING,
    GCS_JOBSUB_RUNNING,
    GCS_JOBSUB_SUCCEEDED,
    GCS_JOBSUB_FAILED,
    GCS_JOBSUB_STOPPED,
} gcs_jobsub_status;

typedef struct {
    char id[GCS_JOBSUB_ID_MAX];
    char *entrypoint;
    char *working_dir; /* NULL: the head's session dir */
    char *message;     /* human-readable status detail */
    char *log_path;
    gcs_jobsub_status status;
    int pid;       /* entrypoint pid (also its process group), 0 before start */
    int exit_code; /* valid once ended; 128+N when killed by signal N */
    uint64_t start_time_ms, end_time_ms; /* wall clock; end 0 while running */
    bool stop_requested;
} gcs_jobsub_info;

/* Persistence hooks: a record was made or changed (save), or dropped to
 * stay within GCS_JOBSUB_MAX (forget). info lives during the call. */
typedef void (*gcs_jobsub_save_fn)(void *arg, const gcs_jobsub_info *info);
typedef void (*gcs_jobsub_forget_fn)(void *arg, const char *id);

/* A working dir uploaded through the GCS (`rayc job submit --working-dir`,
 * gcs_upload.h): "gcs://_rayc_pkg_<sha256 hex>.tar.gz", a code package in the
 * GCS KV. The entrypoint's child unpacks it into
 * <default_dir>/working_dirs/<submission id> (tar -xz, its complaints in
 * the job's log) and runs there. */
#define GCS_JOBSUB_PKG_PREFIX "gcs://_rayc_pkg_"
#define GCS_JOBSUB_PKG_SUFFIX ".tar.gz"

/* The package named by its hex SHA-256: *data, *len (owned by the caller
 * of the hook, valid until the loop turns); RAYC_ENOTFOUND if there is none. */
typedef int (*gcs_jobsub_package_fn)(void *arg, const char *hash, const uint8_t **data,
                                     size_t *len);

typedef struct {
    const char *gcs_address; /* RAYC_ADDRESS for entrypoints: "IP:PORT" */
    const char *token;       /* RAYC_TOKEN for entrypoints */
    const char *log_dir;     /* where job-driver-<id>.log go (created 0700) */
    const char *default_dir; /* cwd of an entrypoint without a working dir */
    gcs_jobsub_save_fn save; /* may be NULL */
    gcs_jobsub_forget_fn forget;
    gcs_jobsub_package_fn package; /* may be NULL: no uploaded working dirs */
    void *hook_arg;
} gcs_jobsub_opts;

typedef struct gcs_jobsub gcs_jobsub;

/* A manager on base (opts copied). NULL on failure (out of memory, or the
 * SIGCHLD event cannot be installed). */
gcs_jobsub *gcs_jobsub_new(struct event_base *base, const gcs_jobsub_opts *opts);
/* Kill every running entrypoint's process group (SIGKILL), reap them, mark
 * them FAILED (saved), free everything. Accepts NULL. */
void gcs_jobsub_free(gcs_jobsub *m);

/* Add a record saved by an earlier GCS (copied; kept in start-time order).
 * One that had not ended is ended now: the processes carrying its id are
 * killed and it becomes FAILED ("the GCS restarted while it ran"), saved
 * again. A record whose id is known already is skipped. Returns 0,
 * RAYC_EBUSY (full of running jobs) or RAYC_ENOMEM. */
int gcs_jobsub_restore(gcs_jobsub *m, const gcs_jobsub_info *info);

/* Start entrypoint. working_dir (may be NULL) must be an existing
 * directory. On success *out is the new record (RUNNING, or FAILED when the
 * exec failed: see message). Returns 0, RAYC_EINVAL (empty or too long
 * entrypoint, bad working dir: err says why), RAYC_EBUSY (too many records
 * still running), RAYC_EIO (fork failed) or RAYC_ENOMEM. */
int gcs_jobsub_submit(gcs_jobsub *m, const char *entrypoint, const char *working_dir,
                      const gcs_jobsub_info **out, char *err, size_t errlen);
/* Stop a running job: SIGTERM its process group now, SIGKILL later.
 * Returns 0 (stopping; *stopped = true), 0 with *stopped = false when it had
 * already ended, or RAYC_ENOTFOUND. */
int gcs_jobsub_stop(gcs_jobsub *m, const char *id, bool *stopped);

const gcs_jobsub_info *gcs_jobsub_get(const gcs_jobsub *m, const char *id);
size_t gcs_jobsub_count(const gcs_jobsub *m);
/* Records in submission order into out[] (at most cap). Returns how many. */
size_t gcs_jobsub_list(const gcs_jobsub *m, const gcs_jobsub_info **out, size_t cap);
/* How many records are in each status (counts[5], by gcs_jobsub_status). */
void gcs_jobsub_counts(const gcs_jobsub *m, size_t counts[5]);

const char *gcs_jobsub_status_name(gcs_jobsub_status s);
bool gcs_jobsub_is_terminal(gcs_jobsub_status s);

#endif
