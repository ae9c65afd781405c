/* The integer runtime's internal helpers and per-op kernels. Everything here is integer-only:
 * sizes are computed with shifts (4-bit rows: (n + 1) >> 1 bytes), never with a division, and
 * nothing outside src/qrt is called (tests/qrt/test_no_float.sh checks the objects' undefined
 * symbols), so the size helpers of qmodel.c are restated here. */
#ifndef HAWQ_QRT_QRT_INTERNAL_H
#define HAWQ_QRT_QRT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qrt/qrt.h"

/* Bytes of one row of n values of type t: 4-bit types two per byte, the others 1, 2, 4 each. */
static inline int64_t qrt_row_bytes(hawq_qtype t, int64_t n) {
  switch (t) {
    case HAWQ_QT_U4:
    case HAWQ_QT_I4:
      return (n + 1) >> 1;
    case HAWQ_QT_U8:
    case HAWQ_QT_I8:
      return n;
    case HAWQ_QT_I16:
      return n << 1;
    case HAWQ_QT_I32:
      return n << 2;
    case HAWQ_QT_COUNT:
      break;
  }
  return 0;
}

static inline int qrt_is_packed(hawq_qtype t) {
  return t == HAWQ_QT_U4 || t == HAWQ_QT_I4;
}

/* Bytes of one sample of tensor t (h x w pixels, each a row of c values). */
static inline int64_t qrt_sample_bytes(const hawq_qtensor *t) {
  return t->h * t->w * qrt_row_bytes(t->type, t->c);
}

/* A packed row of odd length n ends in an unused high nibble, which the format keeps zero. */
static inline void qrt_row_finish(hawq_qtype t, uint8_t *row, int64_t n) {
  if (qrt_is_packed(t) && (n & 1)) hawq_qrow_set(t, row, n, 0);
}

/* a / b for a known exact multiple a = q * b (group sizes: channels / groups), b >= 1, by binary
 * long division (shift and subtract): the runtime has no divide instruction, and this runs once
 * per node, not per element. */
static inline int64_t qrt_exact_quotient(int64_t a, int64_t b) {
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b, q = 0, r = 0;
  for (int bit = 63; bit >= 0; bit--) {
    r = (r << 1) | ((ua >> bit) & 1);
    if (r >= ub) {
      r -= ub;
      q |= (uint64_t)1 << bit;
    }
  }
  return (int64_t)q;
}

/* Data of tensor t for all samples (hawq_qrt_tensor), typed for byte arithmetic. */
static inline uint8_t *qrt_data(const hawq_qmodel *m, void *ws, int batch, int t) {
  return (uint8_t *)hawq_qrt_tensor(m, ws, batch, t);
}

/* Scratch bytes a CONV node needs (conv.c), and the scratch area: after every tensor's slot. */
size_t hawq_qrt_conv_scratch(const hawq_qmodel *m, const hawq_qnode *n);
void *qrt_scratch(const hawq_qmodel *m, void *ws, int batch);

/* One kernel per op (conv.c, pool.c, eltwise.c): node n of m, over `batch` samples, reading
 * and writing the tensors' slots in workspace ws. */
void hawq_qrt_input(const hawq_qmodel *m, const hawq_qnode *n, void *ws, int batch);
void hawq_qrt_conv(const hawq_qmodel *m, const hawq_qnode *n, void *ws, int batch);
void hawq_qrt_add(const hawq_qmodel *m, const hawq_qnode *n, void *ws, int batch);
void hawq_qrt_requant(const hawq_qmodel *m, const hawq_qnode *n, void *ws, int batch);
void hawq_qrt_maxpool(const hawq_qmodel *m, const hawq_qnode *n, void *ws, int batch);
void hawq_qrt_avgpool(const hawq_qmodel *m, const hawq_qnode *n, void *ws, int batch);
void hawq_qrt_concat(const hawq_qmodel *m, const hawq_qnode *n, void *ws, int batch);

#endif
