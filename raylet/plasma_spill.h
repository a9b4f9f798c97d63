/*
 * plasma_spill.h -- spill files of the plasma store: one file per spilled
 * object, `<spill_dir>/<object id hex>.obj`, holding exactly the object's
 * bytes.
 *
 * The store decides what to spill and when (plasma_object.c,
 * plasma_spilling.c); this module only moves bytes between the arena and
 * files, with large pwrite/pread calls (PLASMA_SPILL_CHUNK at a time,
 * retried on short transfers and EINTR). It blocks for as long as the disk
 * takes, so in the raylet it runs on the store's I/O thread (plasma_io.h),
 * never on the loop.
 *
 * Failures never lose data: a write that fails removes its partial file and
 * leaves the object in the arena; a read that fails (short file, I/O error)
 * leaves the file in place.
 * Thread-safety: plain syscalls on caller-owned memory; the spill context is
 * used by one thread at a time: the I/O thread while it runs, else the loop
 * (open, close and jobs run inline). plasma_spill_stats() reads counters the
 * I/O thread writes: only meaningful once it is stopped.
 */
#ifndef RAYC_PLASMA_SPILL_H
#define RAYC_PLASMA_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "ids.h"

#define PLASMA_SPILL_CHUNK (64u << 20) /* bytes per pwrite/pread call */

typedef struct plasma_spill plasma_spill;

/* Open the spill directory `dir` (created 0700 with parents if missing) and
 * remove stale `*.obj` files left by an earlier raylet of this session.
 * Returns NULL with err set when the directory cannot be created. */
plasma_spill *plasma_spill_open(const char *dir, char *err, size_t errlen);
/* Close; spill files still present are removed, then the directory if it
 * is empty. Accepts NULL. */
void plasma_spill_close(plasma_spill *sp);
const char *plasma_spill_dir(const plasma_spill *sp);

/* Write size bytes at data as the spill file of id (replacing any old one).
 * Returns 0, or RAYC_EIO (errno-based message in rayc_last_error()) with no
 * file left behind. */
int plasma_spill_write(plasma_spill *sp, const object_id_t *id, const void *data, uint64_t size);
/* Read the spill file of id into dst, which holds size bytes. The file must
 * be exactly size bytes long. Returns 0, RAYC_ENOTFOUND (no file) or
 * RAYC_EIO; the file is kept either way. */
int plasma_spill_read(plasma_spill *sp, const object_id_t *id, void *dst, uint64_t size);
/* Remove the spill file of id (missing is fine). */
void plasma_spill_remove(plasma_spill *sp, const object_id_t *id);

/* Totals since open: files written and bytes written/read. */
typedef struct {
    uint64_t writes, bytes_written, reads, bytes_read, write_errors, read_errors;
    uint64_t write_us, read_us; /* time spent in the syscalls */
} plasma_spill_info;
void plasma_spill_stats(const plasma_spill *sp, plasma_spill_info *out);

#endif
