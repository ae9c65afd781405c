/* Whole-file reads with size limits, and atomic writes (temporary file, then rename). */
#ifndef HAWQ_CORE_FILE_H
#define HAWQ_CORE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "hawq/hawq.h"

/* Reads a regular file of at most max_bytes into *data (malloc'd, caller frees). Messages start
 * with the path; an over-size file gives HAWQ_ERR_UNSUPPORTED with `too_large_hint` appended. */
hawq_status hawq_read_file(const char *path, uint64_t max_bytes, const char *too_large_hint,
                           void **data, size_t *size, hawq_error *err);

/* Writes data to "<path>.tmp.<pid>" and renames it over path, so path is either the old file
 * or the whole new one; on failure the temporary file is removed. */
hawq_status hawq_write_file_atomic(const char *path, const void *data, size_t size,
                                   hawq_error *err);

#endif
