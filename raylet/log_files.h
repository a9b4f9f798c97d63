/*
 * log_files.h -- a node's log files, served to `rayc logs` (issue 15): the
 * dashboard sends a LogRequest over the GCS connection, the raylet answers
 * from its <session>/logs with a LogReply (the list of files, or a piece
 * of one).
 *
 * Only regular files directly in the directory are served: a name with a
 * '/', a leading '.', or that is a symlink is refused (RAYC_EINVAL). At
 * most LOG_FILES_MAX files are listed (by name) and LOG_PIECE_MAX bytes
 * read per request.
 *
 * Reads the file system synchronously (small pieces from the page cache);
 * runs on the raylet's loop thread.
 */
#ifndef RAYC_LOG_FILES_H
#define RAYC_LOG_FILES_H

#include "msg.h"

#define LOG_FILES_MAX 1000
#define LOG_PIECE_MAX (256u << 10)

/* The answer to one request: reply (with its status) and what it points to. */
typedef struct {
    Rpc__LogReply reply;
    Rpc__Status status;
    Rpc__LogFile *files;
    Rpc__LogFile **file_ptrs;
    char *names;
    uint8_t *data;
} log_answer;

/* Answer rq from directory dir into a (its req_id copied). Never fails:
 * errors are the reply's status. Free with log_answer_free. */
void log_files_answer(const char *dir, const Rpc__LogRequest *rq, log_answer *a);
void log_answer_free(log_answer *a);

#endif
