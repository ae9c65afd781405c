/* IDX files (the MNIST / Fashion-MNIST format), gzipped or not.
 *
 * Format: 2 zero bytes, a type byte (only 0x08, unsigned byte, is accepted), a byte with the
 * number of dimensions (1..4), then that many big-endian uint32 sizes, then the data. The whole
 * file is validated: magic, type, rank, each size >= 1, the product within HAWQ_IDX_MAX_BYTES,
 * and the data exactly as long as the header says (no short and no trailing bytes). A gzip
 * stream (magic 1f 8b) is inflated in memory; the inflated size is checked against the header
 * before the data buffer is allocated, so a hostile file cannot make the reader allocate more
 * than its header promises. */
#ifndef HAWQ_DATA_IDX_H
#define HAWQ_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "hawq/hawq.h"

#define HAWQ_IDX_MAX_RANK 4
#define HAWQ_IDX_MAX_BYTES ((uint64_t)1 << 32) /* 4 GiB of pixels */

typedef struct hawq_idx {
  int rank;
  int64_t dims[HAWQ_IDX_MAX_RANK];
  uint8_t *data; /* product(dims) bytes, owned */
  size_t size;   /* product(dims) */
} hawq_idx;

/* Reads and validates an IDX file. Messages start with the path. */
hawq_status hawq_idx_read_file(const char *path, hawq_idx *out, hawq_error *err);
/* The same from memory (gzipped or raw); name is used in messages. */
hawq_status hawq_idx_read_buffer(const void *buf, size_t size, const char *name, hawq_idx *out,
                                 hawq_error *err);
void hawq_idx_free(hawq_idx *idx); /* frees data, zeroes the struct; NULL is fine */

#endif
