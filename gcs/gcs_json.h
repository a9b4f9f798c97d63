/*
 * gcs_json.h -- a small JSON writer for the head's HTTP API (state API,
 * jobs, dashboard). No parser: the head only emits JSON, except for the one
 * flat request body of a job submission (gcs_json_get_string).
 *
 * The writer tracks commas itself: call key/value functions in document
 * order and it produces valid JSON. Strings are escaped per RFC 8259 (", \,
 * control characters as \uXXXX; "<", ">" and "&" too, so JSON embedded in a
 * page cannot close a script element). Bytes that are not valid UTF-8 are
 * replaced by U+FFFD, so any C string yields valid JSON.
 *
 * Errors: allocation failure is sticky (j->oom); the text is then
 * incomplete and gcs_json_take returns NULL.
 * Ownership: the writer owns its buffer until gcs_json_take.
 * Thread-safety: none (a writer per request).
 */
#ifndef RAYC_GCS_JSON_H
#define RAYC_GCS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GCS_JSON_MAX_DEPTH 32 /* deeper nesting is a programming error (CHECK) */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
    int depth;
    bool need_comma[GCS_JSON_MAX_DEPTH];
    bool after_key; /* the next value follows a key: no comma */
} gcs_json;

void gcs_json_init(gcs_json *j);
/* Free the buffer (after gcs_json_take: nothing). */
void gcs_json_free(gcs_json *j);
/* The NUL-terminated text (len in *len, may be NULL); the caller frees it.
 * NULL when an allocation failed. The writer is reset. */
char *gcs_json_take(gcs_json *j, size_t *len);

void gcs_json_obj_begin(gcs_json *j);
void gcs_json_obj_end(gcs_json *j);
void gcs_json_arr_begin(gcs_json *j);
void gcs_json_arr_end(gcs_json *j);
/* An object key (a string, escaped). */
void gcs_json_key(gcs_json *j, const char *key);
void gcs_json_str(gcs_json *j, const char *s); /* NULL writes null */
void gcs_json_strn(gcs_json *j, const char *s, size_t n);
void gcs_json_u64(gcs_json *j, uint64_t v);
void gcs_json_i64(gcs_json *j, int64_t v);
void gcs_json_dbl(gcs_json *j, double v); /* NaN and infinities write null */
void gcs_json_bool(gcs_json *j, bool v);
void gcs_json_null(gcs_json *j);
/* Pre-formatted JSON value, written as is (the caller vouches for it). */
void gcs_json_raw(gcs_json *j, const char *json);

/* Append s escaped (no quotes) to the writer's buffer; for callers that
 * build other text formats with the same escaping. */
void gcs_json_escape(gcs_json *j, const char *s, size_t n);

/* Find the top-level string member `key` of a flat JSON object and unescape
 * it into a new string (the caller frees). Returns 0, RAYC_ENOTFOUND (absent
 * or not a string), RAYC_EINVAL (malformed text) or RAYC_ENOMEM. Nested
 * objects and arrays are skipped, so {"runtime_env": {...}, "entrypoint":
 * "x"} works; a nested member is found with gcs_json_get_object first. */
int gcs_json_get_string(const char *json, size_t len, const char *key, char **out);
/* Find the top-level object member `key`; *start and *olen delimit its text
 * inside json (not copied). Returns 0, RAYC_ENOTFOUND or RAYC_EINVAL. */
int gcs_json_get_object(const char *json, size_t len, const char *key, const char **start,
                        size_t *olen);

#endif
