/* Elementwise Add, Sub, Mul and Div with NumPy broadcasting, on physical shapes of equal rank
 * (the importer pads constants to the output's rank and layout). Residual adds (equal shapes)
 * and per-channel constants (NHWC: broadcast along the last axis) take the fast paths. */
#include "float/ops.h"

static inline float apply(hawq_op op, float x, float y) {
  switch (op) {
    case HAWQ_OP_ADD: return x + y;
    case HAWQ_OP_SUB: return x - y;
    case HAWQ_OP_MUL: return x * y;
    default: return x / y;
  }
}

/* Row-major strides of dims, 0 where a dimension broadcasts against out_dims. */
static void bstrides(int rank, const int64_t *dims, const int64_t *out_dims, int64_t *st) {
  int64_t s = 1;
  for (int k = rank - 1; k >= 0; k--) {
    st[k] = (dims[k] == 1 && out_dims[k] != 1) ? 0 : s;
    s *= dims[k];
  }
}

void hawq_binary_forward(hawq_op op, int rank, const int64_t *out_dims, const float *a,
                         const int64_t *a_dims, const float *b, const int64_t *b_dims,
                         hawq_act act, float *out, int threads) {
  if (threads < 1) threads = 1;
  int64_t as[HAWQ_MAX_RANK], bs[HAWQ_MAX_RANK];
  bstrides(rank, a_dims, out_dims, as);
  bstrides(rank, b_dims, out_dims, bs);
  /* Collapse to (outer rows) x (last dim): each row reads a contiguous or constant run. */
  int64_t inner = rank ? out_dims[rank - 1] : 1, rows = 1;
  for (int k = 0; k + 1 < rank; k++) rows *= out_dims[k];
  int64_t a_step = rank ? as[rank - 1] : 0, b_step = rank ? bs[rank - 1] : 0;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && rows * inner > 65536)
  for (int64_t row = 0; row < rows; row++) {
    /* Offsets of this row in a and b. */
    int64_t ao = 0, bo = 0, rem = row;
    for (int k = rank - 2; k >= 0; k--) {
      int64_t idx = rem % out_dims[k];
      rem /= out_dims[k];
      ao += idx * as[k];
      bo += idx * bs[k];
    }
    const float *x = a + ao, *y = b + bo;
    float *o = out + row * inner;
    if (a_step == 1 && b_step == 1) {
      for (int64_t i = 0; i < inner; i++) o[i] = hawq_act_apply(act, apply(op, x[i], y[i]));
    } else {
      for (int64_t i = 0; i < inner; i++) {
        o[i] = hawq_act_apply(act, apply(op, x[i * a_step], y[i * b_step]));
      }
    }
  }
}
