/* Elementwise Add, Sub, Mul and Div with NumPy broadcasting, on physical shapes of equal rank
 * (the importer pads constants to the output's rank and layout). Residual adds (equal shapes)
 * and per-channel constants (NHWC: broadcast along the last axis) take the fast paths. */
#include "float/ops.h"

/* One row: o[i] = x[i*xs] op y[i*ys], then the activation. Written per op with locals so the
 * compiler vectorises the common unit-stride case (the op and activation are loop-invariant). */
#define ROW_LOOP(EXPR)                      \
  do {                                      \
    if (xs == 1 && ys == 1) {               \
      for (int64_t i = 0; i < n; i++) {     \
        float a = x[i], b = y[i];           \
        o[i] = (EXPR);                      \
      }                                     \
    } else if (xs == 1 && ys == 0) {        \
      const float b = y[0];                 \
      for (int64_t i = 0; i < n; i++) {     \
        float a = x[i];                     \
        o[i] = (EXPR);                      \
      }                                     \
    } else {                                \
      for (int64_t i = 0; i < n; i++) {     \
        float a = x[i * xs], b = y[i * ys]; \
        o[i] = (EXPR);                      \
      }                                     \
    }                                       \
  } while (0)

static void binary_row(hawq_op op, const float *restrict x, int64_t xs, const float *restrict y,
                       int64_t ys, float *restrict o, int64_t n, bool act_on, float lo, float hi) {
  switch (op) {
    case HAWQ_OP_ADD:
      ROW_LOOP(a + b);
      break;
    case HAWQ_OP_SUB:
      ROW_LOOP(a - b);
      break;
    case HAWQ_OP_MUL:
      ROW_LOOP(a * b);
      break;
    default:
      ROW_LOOP(a / b);
      break;
  }
  if (act_on) {
    for (int64_t i = 0; i < n; i++) {
      float v = o[i];
      v = v < lo ? lo : v;
      o[i] = v > hi ? hi : v;
    }
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
                         const int64_t *a_dims, const float *b, const int64_t *b_dims, hawq_act act,
                         float *out, int threads) {
  if (threads < 1) threads = 1;
  int64_t as[HAWQ_MAX_RANK], bs[HAWQ_MAX_RANK];
  bstrides(rank, a_dims, out_dims, as);
  bstrides(rank, b_dims, out_dims, bs);
  /* Collapse to (outer rows) x (last dim): each row reads a contiguous or constant run. */
  int64_t inner = rank ? out_dims[rank - 1] : 1, rows = 1;
  for (int k = 0; k + 1 < rank; k++) rows *= out_dims[k];
  int64_t a_step = rank ? as[rank - 1] : 0, b_step = rank ? bs[rank - 1] : 0;
  bool same = true; /* equal shapes (residual adds): one flat run */
  for (int k = 0; k < rank; k++) same &= a_dims[k] == out_dims[k] && b_dims[k] == out_dims[k];
  if (same) {
    inner *= rows;
    rows = 1;
    int64_t chunks = threads > 1 && inner > 65536 ? threads : 1,
            len = (inner + chunks - 1) / chunks;
#pragma omp parallel for num_threads(threads) schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; c++) {
      int64_t start = c * len, n = inner - start < len ? inner - start : len;
      if (n > 0) binary_row(op, a + start, 1, b + start, 1, out + start, n, act.on, act.lo, act.hi);
    }
    return;
  }
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && rows * inner > 65536)
  for (int64_t row = 0; row < rows; row++) {
    /* Offsets of this row in a and b. */
    int64_t ao = 0, bo = 0, rem = row;
    for (int k = rank - 2; k >= 0; k--) {
      int64_t idx = rem % out_dims[k];
      rem /= out_dims[k];
      ao += idx * as[k];
      bo += idx * bs[k];
    }
    binary_row(op, a + ao, a_step, b + bo, b_step, out + row * inner, inner, act.on, act.lo,
               act.hi);
  }
}
