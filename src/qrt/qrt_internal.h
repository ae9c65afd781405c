/* The integer runtime's internal helpers and per-op kernels. Everything here is integer-only:
 * sizes are computed with shifts (4-bit rows: (n + 1) >> 1 bytes), never with a division, and
 * nothing outside src/qrt is called (tests/qrt/test_no_float.sh checks the objects' undefined
 * symbols), so the size helpers of qmodel.c are restated here. */
#ifndef HAWQ_QRT_QRT_INTERNAL_H
#define HAWQ_QRT_QRT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

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

/* floor(a / b) for a >= 0, b >= 1, by binary long division (shift and subtract): the runtime has
 * no divide instruction, and this runs once per node or thread, not per element. */
static inline int64_t qrt_quotient(int64_t a, int64_t b) {
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

/* a / b for a known exact multiple a = q * b (group sizes: channels / groups). */
static inline int64_t qrt_exact_quotient(int64_t a, int64_t b) {
  return qrt_quotient(a, b);
}

/* The calling thread's share [*begin, *end) of n work items inside an OpenMP parallel region
 * (all of them outside one). Contiguous, in thread order, at most ceil(n / threads) each. The
 * kernels split work with this rather than `omp for`, whose static schedule divides. */
static inline void qrt_thread_range(int64_t n, int64_t *begin, int64_t *end) {
  int64_t thread = 0, threads = 1;
#ifdef _OPENMP
  thread = omp_get_thread_num();
  threads = omp_get_num_threads();
#endif
  int64_t chunk = qrt_quotient(n + threads - 1, threads);
  int64_t b = thread * chunk;
  *begin = b < n ? b : n;
  *end = b + chunk < n ? b + chunk : n;
}

/* Where one op reads and writes: its inputs' data (in node input order; NULL for an absent
 * optional input), its output's, and a scratch area (64-byte aligned), for `batch` samples,
 * with up to `threads` OpenMP threads. */
typedef struct qrt_args {
  const uint8_t *in[HAWQ_QMAX_INPUTS];
  uint8_t *out;
  void *scratch;
  int batch, threads;
} qrt_args;

/* Scratch bytes the reference CONV kernel needs for node n with up to `threads` threads. */
size_t hawq_qrt_conv_scratch(const hawq_qmodel *m, const hawq_qnode *n, int threads);

/* One reference kernel per op (conv.c, pool.c, eltwise.c): node n of m. */
void hawq_qrt_input(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);
void hawq_qrt_conv(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);
void hawq_qrt_add(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);
void hawq_qrt_requant(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);
void hawq_qrt_maxpool(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);
void hawq_qrt_avgpool(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);
void hawq_qrt_concat(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);

/* Runs node n with the reference kernel of its op. */
void qrt_run_node_reference(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a);

#endif
