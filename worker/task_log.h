/*
 * task_log.h -- which task a worker's output came from (issue 12 item 7).
 *
 * A worker's stdout and stderr go to worker-*.out|err in the session's logs
 * (and, line by line, to the driver). tlog_install puts a thin stdio layer
 * over both: the first write of a task to a stream is preceded by one
 * header line, Ray's magic prefix followed by the task's name, id, job and
 * the time:
 *
 *   :task_name:NAME id=TASKHEX job=N attempt=A time=2026-11-29T17:40:01.123Z
 *
 * so each task's output is a section of the file. A task that prints nothing
 * costs nothing (no write, no formatting); the raylet keeps these lines out
 * of the driver's stream (raylet/worker_pool.c). Output written around stdio
 * (write(2) on fd 1 or 2, child processes) is not tagged.
 *
 * Thread-safety: the running task is per thread (actor methods with
 * max_concurrency run on their own threads); the streams' state is guarded
 * by stdio's own stream lock.
 */
#ifndef RAYC_TASK_LOG_H
#define RAYC_TASK_LOG_H

#include <stdint.h>

#include "rayc.pb-c.h"

#define TLOG_PREFIX ":task_name:" /* Ray's marker of a task's section */

/* Replace stdout (line-buffered) and stderr (unbuffered) by tagging streams
 * over fds 1 and 2. Returns 0, or -1 (errno set) leaving them as they were. */
int tlog_install(void);

/* The calling thread now runs spec (of job `job`); NULL: no task. The spec
 * must stay valid until the next call. Cheap: no formatting, no I/O. */
void tlog_set_task(const Rpc__TaskSpec *spec, uint32_t job);

#endif
