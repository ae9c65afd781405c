/* Elementwise Add, Sub, Mul and Div with NumPy broadcasting, on physical shapes of equal rank
 * (the importer pads constants to the output's rank and layout). Residual adds (equal shapes)
 * and per-channel constants (NHWC: broadcast along the last axis) take the fast paths. */
#include <math.h>
#include <string.h>

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

/* ---- backward ----
 * out = a op b: d out/d a is 1, 1, b, 1/b and d out/d b is 1, -1, a, -a/b^2 for add, sub, mul,
 * div. A broadcast operand's gradient is summed over the axes it broadcasts along.
 *
 * The shapes are first collapsed: axes of size 1 are dropped and neighbouring axes along which
 * a and b broadcast alike are merged, so a residual add becomes one flat run, a per-channel
 * operand (1,1,1,C) against (N,H,W,C) becomes (1,C) against (NHW,C), and a scalar (1) against
 * (NHWC). Each gradient element is then summed by one task in a fixed order (the reduced
 * coordinates in row-major order, in double), so there are no races and the result does not
 * depend on the thread count. */

#define BINARY_TILE 256 /* elements of a row handled at once (stack buffers) */
#define BINARY_MIN_TILE 16
#define BINARY_PARALLEL_MIN 65536

typedef struct binary_shape {
  int rank;
  int64_t out[HAWQ_MAX_RANK], a[HAWQ_MAX_RANK], b[HAWQ_MAX_RANK];
} binary_shape;

static binary_shape collapse_shape(int rank, const int64_t *out_dims, const int64_t *a_dims,
                                   const int64_t *b_dims) {
  binary_shape s = {0};
  bool prev_a = false, prev_b = false;
  for (int k = 0; k < rank; k++) {
    if (out_dims[k] == 1) continue;
    bool a_bcast = a_dims[k] == 1, b_bcast = b_dims[k] == 1;
    if (s.rank > 0 && a_bcast == prev_a && b_bcast == prev_b) {
      s.out[s.rank - 1] *= out_dims[k];
      s.a[s.rank - 1] *= a_dims[k];
      s.b[s.rank - 1] *= b_dims[k];
    } else {
      s.out[s.rank] = out_dims[k];
      s.a[s.rank] = a_dims[k];
      s.b[s.rank] = b_dims[k];
      s.rank++;
    }
    prev_a = a_bcast;
    prev_b = b_bcast;
  }
  if (s.rank == 0) { /* a single element */
    s.rank = 1;
    s.out[0] = s.a[0] = s.b[0] = 1;
  }
  return s;
}

/* g[i] = the gradient reaching a (wrt_b false) or b (wrt_b true) from dy[i], for one row of n
 * <= BINARY_TILE elements; x and y step by xs and ys (0 or 1). Written per case with locals so
 * the unit-stride loops vectorise. */
#define GRAD_LOOP(EXPR)                      \
  do {                                       \
    if (xs && ys) {                          \
      for (int64_t i = 0; i < n; i++) {      \
        float a = x[i], b = y[i], d = dy[i]; \
        g[i] = (EXPR);                       \
      }                                      \
    } else if (xs) {                         \
      const float b = y[0];                  \
      for (int64_t i = 0; i < n; i++) {      \
        float a = x[i], d = dy[i];           \
        g[i] = (EXPR);                       \
      }                                      \
    } else if (ys) {                         \
      const float a = x[0];                  \
      for (int64_t i = 0; i < n; i++) {      \
        float b = y[i], d = dy[i];           \
        g[i] = (EXPR);                       \
      }                                      \
    } else {                                 \
      const float a = x[0], b = y[0];        \
      for (int64_t i = 0; i < n; i++) {      \
        float d = dy[i];                     \
        g[i] = (EXPR);                       \
      }                                      \
    }                                        \
  } while (0)

static void grad_row(hawq_op op, bool wrt_b, const float *restrict x, int64_t xs,
                     const float *restrict y, int64_t ys, const float *restrict dy,
                     float *restrict g, int64_t n) {
  switch (op) {
    case HAWQ_OP_ADD:
    case HAWQ_OP_SUB: /* neither operand enters */
      if (op == HAWQ_OP_SUB && wrt_b) {
        for (int64_t i = 0; i < n; i++) g[i] = -dy[i];
      } else {
        for (int64_t i = 0; i < n; i++) g[i] = dy[i];
      }
      break;
    case HAWQ_OP_MUL:
      GRAD_LOOP(wrt_b ? d * a : d * b);
      break;
    default:
      GRAD_LOOP(wrt_b ? -(d / b) * (a / b) : d / b);
      break;
  }
}

/* Equal shapes: both gradients elementwise, in parallel chunks. */
static void binary_backward_flat(hawq_op op, const float *a, const float *b, const float *dout,
                                 float *da, float *db, int64_t count, int threads) {
  int64_t chunks = threads > 1 && count > BINARY_PARALLEL_MIN ? threads : 1;
  int64_t len = (count + chunks - 1) / chunks;
#pragma omp parallel for num_threads(threads) schedule(static) if (chunks > 1)
  for (int64_t chunk = 0; chunk < chunks; chunk++) {
    int64_t start = chunk * len, end = start + len < count ? start + len : count;
    const float *restrict x = a, *restrict y = b, *restrict d = dout;
    float *restrict ga = da, *restrict gb = db;
    switch (op) {
      case HAWQ_OP_ADD:
        if (ga)
          for (int64_t i = start; i < end; i++) ga[i] += d[i];
        if (gb)
          for (int64_t i = start; i < end; i++) gb[i] += d[i];
        break;
      case HAWQ_OP_SUB:
        if (ga)
          for (int64_t i = start; i < end; i++) ga[i] += d[i];
        if (gb)
          for (int64_t i = start; i < end; i++) gb[i] -= d[i];
        break;
      case HAWQ_OP_MUL:
        if (ga)
          for (int64_t i = start; i < end; i++) ga[i] += d[i] * y[i];
        if (gb)
          for (int64_t i = start; i < end; i++) gb[i] += d[i] * x[i];
        break;
      default:
        if (ga)
          for (int64_t i = start; i < end; i++) ga[i] += d[i] / y[i];
        if (gb)
          for (int64_t i = start; i < end; i++) gb[i] -= (d[i] / y[i]) * (x[i] / y[i]);
        break;
    }
  }
}

/* Row-major strides of dims, 0 along the axes where they broadcast against out. */
static void collapsed_strides(int rank, const int64_t *dims, const int64_t *out, int64_t *st) {
  int64_t s = 1;
  for (int k = rank - 1; k >= 0; k--) {
    st[k] = dims[k] == 1 && out[k] != 1 ? 0 : s;
    s *= dims[k];
  }
}

/* t (the gradient of a, or of b when wrt_b) += the gradient, summed over t's broadcast axes. The
 * shape is collapsed, so every axis has out > 1 (or the shape is the single element (1)). */
static void binary_backward_reduce(hawq_op op, bool wrt_b, const binary_shape *s, const float *a,
                                   const float *b, const float *dout, float *t, int threads) {
  const int rank = s->rank, last = rank - 1;
  const int64_t *t_dims = wrt_b ? s->b : s->a;
  int64_t as[HAWQ_MAX_RANK], bs[HAWQ_MAX_RANK], ts[HAWQ_MAX_RANK], row_st[HAWQ_MAX_RANK];
  collapsed_strides(rank, s->a, s->out, as);
  collapsed_strides(rank, s->b, s->out, bs);
  collapsed_strides(rank, t_dims, s->out, ts);
  int64_t inner = s->out[last], t_rows = 1, reduced_rows = 1, rows = 1;
  for (int k = last - 1; k >= 0; k--) {
    row_st[k] = rows;
    rows *= s->out[k];
    t_rows *= t_dims[k];
    if (t_dims[k] != s->out[k]) reduced_rows *= s->out[k];
  }
  bool last_kept = t_dims[last] == inner;
  /* Tasks: a t row, split along the last axis into chunks when t keeps that axis (so that a
   * per-channel gradient still runs on several threads). */
  int64_t width = last_kept ? (inner < BINARY_TILE ? inner : BINARY_TILE) : inner;
  int64_t chunks = (inner + width - 1) / width;
  if (last_kept && threads > 1 && t_rows * chunks < threads) {
    int64_t want = (threads + t_rows - 1) / t_rows, w = (inner + want - 1) / want;
    w = (w + BINARY_MIN_TILE - 1) / BINARY_MIN_TILE * BINARY_MIN_TILE;
    if (w < width) width = w;
    chunks = (inner + width - 1) / width;
  }
  int64_t tasks = t_rows * chunks;
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && tasks > 1 && rows * inner > BINARY_PARALLEL_MIN)
  for (int64_t task = 0; task < tasks; task++) {
    int64_t t_row = task / chunks, c0 = (task % chunks) * width;
    int64_t cw = inner - c0 < width ? inner - c0 : width;
    /* This t row's coordinates: its kept axes are fixed, its reduced axes run from 0. */
    int64_t coord[HAWQ_MAX_RANK] = {0}, rem = t_row, t_off = 0;
    for (int k = last - 1; k >= 0; k--) {
      coord[k] = rem % t_dims[k];
      rem /= t_dims[k];
      t_off += coord[k] * ts[k];
    }
    float *tp = t + t_off + (last_kept ? c0 : 0);
    float g[BINARY_TILE];
    double acc[BINARY_TILE];
    double total = 0.0;
    if (last_kept && reduced_rows > 1)
      for (int64_t i = 0; i < cw; i++) acc[i] = 0.0;
    for (int64_t r = 0; r < reduced_rows; r++) {
      int64_t out_row = 0, ao = 0, bo = 0;
      for (int k = 0; k < last; k++) {
        out_row += coord[k] * row_st[k];
        ao += coord[k] * as[k];
        bo += coord[k] * bs[k];
      }
      for (int64_t p0 = c0; p0 < c0 + cw; p0 += BINARY_TILE) {
        int64_t n = c0 + cw - p0 < BINARY_TILE ? c0 + cw - p0 : BINARY_TILE;
        grad_row(op, wrt_b, a + ao + p0 * as[last], as[last], b + bo + p0 * bs[last], bs[last],
                 dout + out_row * inner + p0, g, n);
        if (!last_kept) {
          for (int64_t i = 0; i < n; i++) total += g[i];
        } else if (reduced_rows > 1) {
          for (int64_t i = 0; i < n; i++) acc[p0 - c0 + i] += g[i];
        } else { /* nothing to reduce: straight into t */
          for (int64_t i = 0; i < n; i++) tp[p0 - c0 + i] += g[i];
        }
      }
      /* Next combination of the reduced coordinates (row-major). */
      for (int k = last - 1; k >= 0; k--) {
        if (t_dims[k] == s->out[k]) continue;
        if (++coord[k] < s->out[k]) break;
        coord[k] = 0;
      }
    }
    if (!last_kept) {
      tp[0] += (float)total;
    } else if (reduced_rows > 1) {
      for (int64_t i = 0; i < cw; i++) tp[i] += (float)acc[i];
    }
  }
}

void hawq_binary_backward(hawq_op op, int rank, const int64_t *out_dims, const float *a,
                          const int64_t *a_dims, const float *b, const int64_t *b_dims,
                          const float *dout, float *da, float *db, int threads) {
  if (!da && !db) return;
  if (threads < 1) threads = 1;
  binary_shape s = collapse_shape(rank, out_dims, a_dims, b_dims);
  bool same = true;
  for (int k = 0; k < s.rank; k++) same &= s.a[k] == s.out[k] && s.b[k] == s.out[k];
  if (same) {
    int64_t count = 1;
    for (int k = 0; k < s.rank; k++) count *= s.out[k];
    binary_backward_flat(op, a, b, dout, da, db, count, threads);
    return;
  }
  if (da) binary_backward_reduce(op, false, &s, a, b, dout, da, threads);
  if (db) binary_backward_reduce(op, true, &s, a, b, dout, db, threads);
}

void hawq_add_act_backward(const float *out, const float *dout, hawq_act act, int64_t n, float *da,
                           bool overwrite_a, float *db, bool overwrite_b, int threads) {
  if (threads < 1) threads = 1;
  float lo = act.on ? act.lo : -INFINITY, hi = act.on ? act.hi : INFINITY;
  enum { BLOCK = 4096 };
  int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 32768)
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t i0 = blk * BLOCK, m = n - i0 < BLOCK ? n - i0 : BLOCK;
    const float *y = out + i0, *g = dout + i0;
    float masked[BLOCK];
    for (int64_t i = 0; i < m; i++) {
      float gi = g[i], yi = y[i]; /* both loaded: the select then vectorises */
      masked[i] = ((yi > lo) & (yi < hi)) ? gi : 0.0f;
    }
    float *dst[2] = {da ? da + i0 : NULL, db ? db + i0 : NULL};
    bool over[2] = {overwrite_a, overwrite_b};
    for (int s = 0; s < 2; s++) {
      float *restrict d = dst[s];
      if (!d) continue;
      if (over[s]) {
        memcpy(d, masked, (size_t)m * sizeof(float));
      } else {
        for (int64_t i = 0; i < m; i++) d[i] += masked[i];
      }
    }
  }
}
