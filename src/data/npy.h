/* NumPy .npy files, format versions 1.0-3.0, little-endian, C order: the test fixtures and
 * reference outputs (PyTorch logits) are stored this way, and `hawq eval --logits` writes one.
 * Accepted dtypes: float32 ('<f4'), uint8 ('|u1'), int64 ('<i8'), float64 ('<f8', converted
 * to float32 on read). The header dictionary is parsed strictly: a hostile file gives a clear
 * error, never an out-of-bounds read or an allocation larger than the file. */
#ifndef HAWQ_DATA_NPY_H
#define HAWQ_DATA_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "hawq/hawq.h"

#define HAWQ_NPY_MAX_RANK 8

typedef enum hawq_npy_dtype {
  HAWQ_NPY_F32 = 1,
  HAWQ_NPY_U8,
  HAWQ_NPY_I64,
} hawq_npy_dtype;

typedef struct hawq_npy {
  hawq_npy_dtype dtype; /* float64 files are returned as HAWQ_NPY_F32 */
  int rank;
  int64_t dims[HAWQ_NPY_MAX_RANK];
  size_t count; /* product(dims) */
  void *data;   /* count elements of dtype, owned */
} hawq_npy;

hawq_status hawq_npy_read_file(const char *path, hawq_npy *out, hawq_error *err);
hawq_status hawq_npy_read_buffer(const void *buf, size_t size, const char *name, hawq_npy *out,
                                 hawq_error *err);
/* Writes a float32 array atomically: to "<path>.tmp.<pid>", then rename(2). */
hawq_status hawq_npy_write_f32(const char *path, int rank, const int64_t *dims, const float *data,
                               hawq_error *err);
void hawq_npy_free(hawq_npy *npy);

#endif
