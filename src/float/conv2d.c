/* 2-D convolution, NHWC, float: im2col + OpenBLAS sgemm, and a direct depthwise kernel.
 *
 * The output pixels (n, p, q) flattened are the rows M of one GEMM per group:
 *   out[M, Kg] = im2col[M, R*S*Cg] x W_g[Kg, R*S*Cg]^T
 * where an im2col row holds the receptive field in (r, s, c) order, matching the weight layout
 * (K, R, S, C/g). Rows are processed in tiles so the im2col buffer stays in cache; each thread
 * owns one tile buffer in the workspace. A 1x1, stride-1, unpadded, ungrouped conv needs no
 * im2col: the input already is the GEMM's A. When there are fewer row tiles than threads
 * (late layers at batch 1), tiles are also split across output channels. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "float/ops.h"

/* Rows per tile: enough to keep sgemm efficient, few enough that a tile of im2col stays near
 * L2 (about 256 KiB). */
static int64_t tile_rows(const hawq_conv2d_shape *s) {
  int64_t kdim = (int64_t)s->r * s->s * (s->c / s->attr.groups);
  int64_t rows = (64 * 1024) / (kdim ? kdim : 1);
  rows = rows < 32 ? 32 : rows > 512 ? 512 : rows;
  rows &= ~(int64_t)7;
  int64_t m = s->n * s->p * s->q;
  return rows < m ? rows : m;
}

static bool is_pointwise(const hawq_conv2d_shape *s) {
  const hawq_conv_attr *a = &s->attr;
  return s->r == 1 && s->s == 1 && a->stride[0] == 1 && a->stride[1] == 1 && a->pad[0] == 0 &&
         a->pad[1] == 0 && a->pad[2] == 0 && a->pad[3] == 0 && a->groups == 1;
}

bool hawq_conv2d_is_depthwise(const hawq_conv2d_shape *s) {
  return s->attr.groups > 1 && s->attr.groups == s->c;
}

size_t hawq_conv2d_workspace(const hawq_conv2d_shape *s, int threads) {
  if (hawq_conv2d_is_depthwise(s) || is_pointwise(s)) return 0;
  int64_t kdim = (int64_t)s->r * s->s * (s->c / s->attr.groups);
  return (size_t)(tile_rows(s) * kdim) * (size_t)(threads < 1 ? 1 : threads);
}

void hawq_conv2d_pack_depthwise(const hawq_conv2d_shape *s, const float *w, float *packed) {
  int64_t rs = (int64_t)s->r * s->s;
  for (int64_t k = 0; k < s->k; k++) {
    for (int64_t t = 0; t < rs; t++) packed[t * s->k + k] = w[k * rs + t];
  }
}

/* im2col of output rows [m0, m0 + rows) for group g into col (rows, R*S*Cg). */
static void im2col_tile(const hawq_conv2d_shape *s, const float *in, int64_t m0, int64_t rows,
                        int g, float *col) {
  const hawq_conv_attr *a = &s->attr;
  int64_t cg = s->c / a->groups, kdim = (int64_t)s->r * s->s * cg;
  for (int64_t i = 0; i < rows; i++) {
    int64_t m = m0 + i, q = m % s->q, p = (m / s->q) % s->p, n = m / (s->q * s->p);
    float *dst = col + i * kdim;
    for (int r = 0; r < s->r; r++) {
      int64_t ih = p * a->stride[0] - a->pad[0] + (int64_t)r * a->dilation[0];
      for (int ss = 0; ss < s->s; ss++, dst += cg) {
        int64_t iw = q * a->stride[1] - a->pad[1] + (int64_t)ss * a->dilation[1];
        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) {
          memset(dst, 0, (size_t)cg * sizeof(float));
        } else {
          memcpy(dst, in + ((n * s->h + ih) * s->w + iw) * s->c + (int64_t)g * cg,
                 (size_t)cg * sizeof(float));
        }
      }
    }
  }
}

/* Bias and activation on a (rows, cols) block of out with row stride ldc. */
static void epilogue(float *out, int64_t rows, int64_t cols, int64_t ldc, const float *b,
                     hawq_act act) {
  if (!b && !act.on) return;
  for (int64_t i = 0; i < rows; i++) {
    float *o = out + i * ldc;
    if (b) {
      for (int64_t j = 0; j < cols; j++) o[j] += b[j];
    }
    if (act.on) {
      for (int64_t j = 0; j < cols; j++) o[j] = hawq_act_apply(act, o[j]);
    }
  }
}

static void depthwise_forward(const hawq_conv2d_shape *s, const float *in, const float *wp,
                              const float *b, hawq_act act, float *out, int threads) {
  const hawq_conv_attr *a = &s->attr;
  int64_t mult = s->k / s->c, rows = s->n * s->p;
  (void)threads; /* read only by the OpenMP pragma */
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t row = 0; row < rows; row++) {
    int64_t n = row / s->p, p = row % s->p;
    for (int64_t q = 0; q < s->q; q++) {
      float *o = out + (row * s->q + q) * s->k;
      for (int64_t k = 0; k < s->k; k++) o[k] = b ? b[k] : 0.0f;
      for (int r = 0; r < s->r; r++) {
        int64_t ih = p * a->stride[0] - a->pad[0] + (int64_t)r * a->dilation[0];
        if (ih < 0 || ih >= s->h) continue;
        for (int ss = 0; ss < s->s; ss++) {
          int64_t iw = q * a->stride[1] - a->pad[1] + (int64_t)ss * a->dilation[1];
          if (iw < 0 || iw >= s->w) continue;
          const float *x = in + ((n * s->h + ih) * s->w + iw) * s->c;
          const float *wk = wp + ((int64_t)r * s->s + ss) * s->k;
          if (mult == 1) {
            for (int64_t k = 0; k < s->k; k++) o[k] += x[k] * wk[k];
          } else {
            for (int64_t k = 0; k < s->k; k++) o[k] += x[k / mult] * wk[k];
          }
        }
      }
      if (act.on) {
        for (int64_t k = 0; k < s->k; k++) o[k] = hawq_act_apply(act, o[k]);
      }
    }
  }
}

void hawq_conv2d_forward(const hawq_conv2d_shape *s, const float *in, const float *w,
                         const float *b, hawq_act act, float *out, float *workspace, int threads) {
  if (threads < 1) threads = 1;
  if (hawq_conv2d_is_depthwise(s)) {
    depthwise_forward(s, in, w, b, act, out, threads);
    return;
  }
  const int groups = s->attr.groups;
  const int64_t cg = s->c / groups, kg = s->k / groups, kdim = (int64_t)s->r * s->s * cg;
  const int64_t m = s->n * s->p * s->q, tile = tile_rows(s);
  const int64_t n_tiles = (m + tile - 1) / tile;
  const bool pointwise = is_pointwise(s);
  /* Split output channels when row tiles alone cannot feed every thread. */
  int64_t splits = 1;
  if (n_tiles * groups < threads) {
    splits = (threads + n_tiles * groups - 1) / (n_tiles * groups);
    int64_t max_splits = kg / 16 > 0 ? kg / 16 : 1;
    if (splits > max_splits) splits = max_splits;
  }
  const int64_t chunk = ((kg + splits - 1) / splits + 15) & ~(int64_t)15;
  const int64_t tasks = n_tiles * groups * splits;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1 && tasks > 1)
  for (int64_t task = 0; task < tasks; task++) {
    int64_t t = task / (groups * splits), rest = task % (groups * splits);
    int g = (int)(rest / splits);
    int64_t part = rest % splits;
    int64_t m0 = t * tile, rows = m - m0 < tile ? m - m0 : tile;
    int64_t n0 = part * chunk, cols = kg - n0 < chunk ? kg - n0 : chunk;
    if (cols <= 0) continue;
    const float *a;
    if (pointwise) {
      a = in + m0 * s->c;
    } else {
#ifdef _OPENMP
      float *col = workspace + (size_t)omp_get_thread_num() * (size_t)(tile * kdim);
#else
      float *col = workspace;
#endif
      im2col_tile(s, in, m0, rows, g, col);
      a = col;
    }
    float *o = out + m0 * s->k + (int64_t)g * kg + n0;
    const float *wg = w + ((int64_t)g * kg + n0) * kdim;
    hawq_sgemm_nt(rows, cols, kdim, a, pointwise ? s->c : kdim, wg, kdim, 0.0f, o, s->k);
    epilogue(o, rows, cols, s->k, b ? b + (int64_t)g * kg + n0 : NULL, act);
  }
}
