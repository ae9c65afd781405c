/* The scalar reference integer runtime: executes a QModel (src/quant/qmodel.h) exactly as that
 * header specifies, one op after another. It is the spec in code: integer multiply, add and
 * shift only; no floating point, no float casts, no integer division (tests/qrt/test_no_float.sh
 * disassembles these objects to prove it). The model must have passed hawq_qmodel_validate.
 *
 * Memory: the caller owns one workspace of hawq_qrt_workspace_size bytes; every tensor gets its
 * own 64-byte aligned slot in it (no reuse), so every intermediate can be read after a run. */
#ifndef HAWQ_QRT_QRT_H
#define HAWQ_QRT_QRT_H

#include <stddef.h>
#include <stdint.h>

#include "quant/qmodel.h"

/* Bytes of workspace for `batch` samples (batch >= 1). */
size_t hawq_qrt_workspace_size(const hawq_qmodel *m, int batch);

/* Runs `batch` images: pixels is batch x h x w x c uint8 (NHWC, the input tensor's shape).
 * logits, when not NULL, receives batch x classes int32 (the output tensor). workspace must be
 * 64-byte aligned and hold hawq_qrt_workspace_size(m, batch) bytes. */
void hawq_qrt_run(const hawq_qmodel *m, const uint8_t *pixels, int batch, void *workspace,
                  int32_t *logits);

/* Tensor t's data after a run: batch samples of hawq_qtensor_bytes each, back to back. */
void *hawq_qrt_tensor(const hawq_qmodel *m, void *workspace, int batch, int t);

/* Index of the first largest of n values. */
int64_t hawq_qrt_argmax(const int32_t *v, int64_t n);

#endif
