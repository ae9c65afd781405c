/* Batch normalization, inference form: per-channel y = x * a + d with a = scale/sqrt(var+eps)
 * and d = bias - mean * a, on x viewed as (outer, c, inner). NHWC images are (N*H*W, C, 1). */
#include <math.h>

#include "float/ops.h"

void hawq_batchnorm_forward(const float *in, float *out, int64_t outer, int64_t c, int64_t inner,
                            const float *scale, const float *bias, const float *mean,
                            const float *var, float eps, hawq_act act, int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && outer > 1)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t ch = 0; ch < c; ch++) {
      float a = scale[ch] / sqrtf(var[ch] + eps), d = bias[ch] - mean[ch] * a;
      const float *x = in + (o * c + ch) * inner;
      float *y = out + (o * c + ch) * inner;
      for (int64_t i = 0; i < inner; i++) y[i] = hawq_act_apply(act, x[i] * a + d);
    }
  }
}

/* ---- training ----
 * Per-channel reductions (batch moments, dscale, dbias) split the rows (N*H*W for NHWC) into
 * BN_CHUNKS fixed chunks, independent of the thread count: each chunk sums its rows in double,
 * contiguously along the channels (so it vectorises and every thread streams its own memory),
 * and the chunks' partial sums are added in chunk order. The result is therefore bitwise the
 * same for any `threads`. Channels go in blocks of BN_BLOCK so the partial sums fit on the
 * stack. An activation fused after the normalisation (ReLU, ReLU6 as Clip) is applied in the
 * same pass, and its gradient mask is read back from the activated output. */
#define BN_BLOCK 64           /* channels per block */
#define BN_CHUNKS 32          /* row chunks of a reduction */
#define BN_ROWS 32            /* rows summed in float before joining the double sums */
#define BN_PARALLEL_MIN 32768 /* elements below which threads cost more than they save */

/* Rows [r0, r1) of chunk `k` of `rows` rows. */
static void chunk_rows(int64_t rows, int k, int64_t *r0, int64_t *r1) {
  *r0 = rows * k / BN_CHUNKS;
  *r1 = rows * (k + 1) / BN_CHUNKS;
}

/* For x viewed as (outer, c, inner), element (row, j) of channels [c0, c0 + nb): NHWC has
 * inner == 1 and rows = outer; otherwise every (o, i) pair is a row. Sums over all rows of
 * f(x) and f(x)^2-like terms are computed by the callers' kernels below. */

/* Mean and biased variance (double) of channels [c0, c0 + nb). Sums are of x - shift with
 * shift = the channel's first value, so a large mean does not cancel the variance away. */
static void bn_moments(const float *x, int64_t outer, int64_t c, int64_t inner, int64_t c0,
                       int64_t nb, double *mean, double *var, int threads) {
  (void)threads; /* only read by the OpenMP pragma */
  double s1[BN_CHUNKS][BN_BLOCK], s2[BN_CHUNKS][BN_BLOCK], shift[BN_BLOCK];
  for (int64_t j = 0; j < nb; j++) shift[j] = x[(c0 + j) * inner];
  int64_t rows = outer * inner;
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && rows * nb >= BN_PARALLEL_MIN)
  for (int k = 0; k < BN_CHUNKS; k++) {
    double a[BN_BLOCK], b[BN_BLOCK];
    for (int64_t j = 0; j < nb; j++) a[j] = b[j] = 0.0;
    int64_t r0, r1;
    chunk_rows(rows, k, &r0, &r1);
    if (inner == 1) {
      /* Float sums over BN_ROWS rows at a time (vectorised, exact enough for so few terms),
       * carried into the double ones. */
      float shift_f[BN_BLOCK];
      for (int64_t j = 0; j < nb; j++) shift_f[j] = (float)shift[j];
      for (int64_t rb = r0; rb < r1; rb += BN_ROWS) {
        int64_t re = rb + BN_ROWS < r1 ? rb + BN_ROWS : r1;
        float fa[BN_BLOCK] = {0}, fb[BN_BLOCK] = {0};
        for (int64_t r = rb; r < re; r++) {
          const float *row = x + r * c + c0;
          for (int64_t j = 0; j < nb; j++) {
            float v = row[j] - shift_f[j];
            fa[j] += v;
            fb[j] += v * v;
          }
        }
        for (int64_t j = 0; j < nb; j++) {
          a[j] += fa[j];
          b[j] += fb[j];
        }
      }
    } else {
      for (int64_t r = r0; r < r1; r++) {
        int64_t o = r / inner, i = r % inner;
        for (int64_t j = 0; j < nb; j++) {
          double v = (double)x[(o * c + c0 + j) * inner + i] - shift[j];
          a[j] += v;
          b[j] += v * v;
        }
      }
    }
    for (int64_t j = 0; j < nb; j++) {
      s1[k][j] = a[j];
      s2[k][j] = b[j];
    }
  }
  double count = (double)rows;
  for (int64_t j = 0; j < nb; j++) {
    double a = 0.0, b = 0.0;
    for (int k = 0; k < BN_CHUNKS; k++) {
      a += s1[k][j];
      b += s2[k][j];
    }
    double m = a / count, v = b / count - m * m;
    mean[j] = shift[j] + m;
    var[j] = v > 0.0 ? v : 0.0;
  }
}

void hawq_batchnorm_train_forward(const float *in, float *out, int64_t outer, int64_t c,
                                  int64_t inner, const float *scale, const float *bias, float eps,
                                  float momentum, hawq_act act, float *running_mean,
                                  float *running_var, float *batch_mean, float *batch_rstd,
                                  int threads) {
  if (threads < 1) threads = 1;
  int64_t count = outer * inner;
  if (count <= 0 || c <= 0) return;
  float lo = act.on ? act.lo : -INFINITY, hi = act.on ? act.hi : INFINITY;
  for (int64_t c0 = 0; c0 < c; c0 += BN_BLOCK) {
    int64_t nb = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
    double mean[BN_BLOCK], var[BN_BLOCK];
    float shift[BN_BLOCK], mul[BN_BLOCK], add[BN_BLOCK];
    bn_moments(in, outer, c, inner, c0, nb, mean, var, threads);
    /* PyTorch's running variance is unbiased; one value per channel has none, so keep the
     * biased (zero) one rather than divide by zero. */
    double unbias = count > 1 ? (double)count / (double)(count - 1) : 1.0;
    for (int64_t j = 0; j < nb; j++) {
      int64_t ch = c0 + j;
      double rstd = 1.0 / sqrt(var[j] + (double)eps);
      shift[j] = (float)mean[j];
      mul[j] = (float)(rstd * scale[ch]);
      add[j] = bias[ch];
      if (batch_mean) batch_mean[ch] = (float)mean[j];
      if (batch_rstd) batch_rstd[ch] = (float)rstd;
      if (running_mean)
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean[j]);
      if (running_var)
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * var[j] * unbias);
    }
    /* (x - mean) * a + bias rather than x * a + (bias - mean * a): no cancellation when the
     * mean is large against the spread. */
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && outer > 1 && count * nb >= BN_PARALLEL_MIN)
    for (int64_t o = 0; o < outer; o++) {
      const float *x = in + (o * c + c0) * inner;
      float *y = out + (o * c + c0) * inner;
      if (inner == 1) { /* NHWC: vectorised along the channels */
        for (int64_t j = 0; j < nb; j++) {
          float v = (x[j] - shift[j]) * mul[j] + add[j];
          v = v < lo ? lo : v;
          y[j] = v > hi ? hi : v;
        }
      } else {
        for (int64_t j = 0; j < nb; j++)
          for (int64_t i = 0; i < inner; i++) {
            float v = (x[j * inner + i] - shift[j]) * mul[j] + add[j];
            v = v < lo ? lo : v;
            y[j * inner + i] = v > hi ? hi : v;
          }
      }
    }
  }
}

/* The gradient reaching the normalisation: dout, or zero where the fused activation clipped
 * (its output y at a bound). */
static inline float masked(float g, const float *y, int64_t e, float lo, float hi) {
  return y && !(y[e] > lo && y[e] < hi) ? 0.0f : g;
}

/* sum(g) and sum(g * (x - mean)) (double) of channels [c0, c0 + nb), g the masked gradient. */
static void bn_grad_sums(const float *x, const float *dy, const float *y, float lo, float hi,
                         int64_t outer, int64_t c, int64_t inner, int64_t c0, int64_t nb,
                         const float *mean, double *sum_dy, double *sum_dy_xc, int threads) {
  (void)threads; /* only read by the OpenMP pragma */
  double s1[BN_CHUNKS][BN_BLOCK], s2[BN_CHUNKS][BN_BLOCK], m[BN_BLOCK];
  for (int64_t j = 0; j < nb; j++) m[j] = mean[c0 + j];
  int64_t rows = outer * inner;
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && rows * nb >= BN_PARALLEL_MIN)
  for (int k = 0; k < BN_CHUNKS; k++) {
    double a[BN_BLOCK], b[BN_BLOCK];
    for (int64_t j = 0; j < nb; j++) a[j] = b[j] = 0.0;
    int64_t r0, r1;
    chunk_rows(rows, k, &r0, &r1);
    if (inner == 1) { /* NHWC: rows of channels, vectorised along the channels */
      float fa[BN_BLOCK] = {0}, fb[BN_BLOCK] = {0}, mf[BN_BLOCK];
      for (int64_t j = 0; j < nb; j++) mf[j] = mean[c0 + j];
      for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * c + c0, *gr = dy + r * c + c0;
        if (y) {
          const float *yr = y + r * c + c0;
          for (int64_t j = 0; j < nb; j++) {
            float gj = gr[j], yj = yr[j]; /* both loaded: the select then vectorises */
            float gm = ((yj > lo) & (yj < hi)) ? gj : 0.0f;
            fa[j] += gm;
            fb[j] += gm * (xr[j] - mf[j]);
          }
        } else {
          for (int64_t j = 0; j < nb; j++) {
            fa[j] += gr[j];
            fb[j] += gr[j] * (xr[j] - mf[j]);
          }
        }
        if ((r - r0) % BN_ROWS == BN_ROWS - 1 || r == r1 - 1) {
          for (int64_t j = 0; j < nb; j++) {
            a[j] += fa[j];
            b[j] += fb[j];
            fa[j] = fb[j] = 0.0f;
          }
        }
      }
    } else {
      for (int64_t r = r0; r < r1; r++) {
        int64_t base = ((r / inner) * c + c0) * inner + r % inner;
        for (int64_t j = 0; j < nb; j++) {
          int64_t e = base + j * inner;
          double g = masked(dy[e], y, e, lo, hi);
          a[j] += g;
          b[j] += g * ((double)x[e] - m[j]);
        }
      }
    }
    for (int64_t j = 0; j < nb; j++) {
      s1[k][j] = a[j];
      s2[k][j] = b[j];
    }
  }
  for (int64_t j = 0; j < nb; j++) {
    double a = 0.0, b = 0.0;
    for (int k = 0; k < BN_CHUNKS; k++) {
      a += s1[k][j];
      b += s2[k][j];
    }
    sum_dy[j] = a;
    sum_dy_xc[j] = b;
  }
}

/* With xhat = (x - mean) * rstd and n values per channel:
 *   dbias = sum dy, dscale = sum dy * xhat,
 *   dx = scale * rstd * dy                                          (constant statistics)
 *   dx = scale * rstd * (dy - dbias / n - xhat * dscale / n)        (batch statistics). */
void hawq_batchnorm_backward(const float *in, const float *dout, const float *out, hawq_act act,
                             int64_t outer, int64_t c, int64_t inner, const float *scale,
                             const float *mean, const float *rstd, bool batch_stats, float *din,
                             bool overwrite, float *dscale, float *dbias, int threads) {
  if (threads < 1) threads = 1;
  int64_t count = outer * inner;
  if (count <= 0 || c <= 0 || (!din && !dscale && !dbias)) return;
  const float *y = act.on ? out : NULL;
  float lo = act.on ? act.lo : -INFINITY, hi = act.on ? act.hi : INFINITY;
  bool need_sums = dscale || dbias || batch_stats;
  for (int64_t c0 = 0; c0 < c; c0 += BN_BLOCK) {
    int64_t nb = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
    double sum_dy[BN_BLOCK], sum_dy_xc[BN_BLOCK];
    if (need_sums)
      bn_grad_sums(in, dout, y, lo, hi, outer, c, inner, c0, nb, mean, sum_dy, sum_dy_xc, threads);
    for (int64_t j = 0; j < nb && (dscale || dbias); j++) {
      if (dbias) dbias[c0 + j] += (float)sum_dy[j];
      if (dscale) dscale[c0 + j] += (float)(sum_dy_xc[j] * rstd[c0 + j]);
    }
    if (!din) continue;
    /* dx = k * (dy - mean_dy - q * (x - mean)) per channel: the differences are taken before
     * the scaling by k = scale * rstd, which is large when a channel's values nearly coincide
     * (and with one value per channel they cancel exactly, to the true 0). */
    float k[BN_BLOCK], mean_dy[BN_BLOCK], q[BN_BLOCK], shift[BN_BLOCK];
    for (int64_t j = 0; j < nb; j++) {
      double s = (double)rstd[c0 + j];
      k[j] = (float)((double)scale[c0 + j] * s);
      shift[j] = mean[c0 + j];
      mean_dy[j] = batch_stats ? (float)(sum_dy[j] / (double)count) : 0.0f;
      q[j] = batch_stats ? (float)(s * s * sum_dy_xc[j] / (double)count) : 0.0f;
    }
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && outer > 1 && count * nb >= BN_PARALLEL_MIN)
    for (int64_t o = 0; o < outer; o++) {
      int64_t at = (o * c + c0) * inner;
      const float *x = in + at, *g = dout + at, *ya = y ? y + at : NULL;
      float *dx = din + at;
      if (!batch_stats) { /* constants: x does not enter (nor can an inf in it) */
        for (int64_t j = 0; j < nb; j++)
          for (int64_t i = 0; i < inner; i++) {
            int64_t e = j * inner + i;
            float v = k[j] * masked(g[e], ya, e, lo, hi);
            dx[e] = overwrite ? v : dx[e] + v;
          }
      } else if (inner == 1) { /* NHWC: vectorised along the channels, branch-free */
        float gm[BN_BLOCK];
        for (int64_t j = 0; j < nb; j++) gm[j] = g[j];
        if (ya) {
          for (int64_t j = 0; j < nb; j++) {
            float gj = gm[j], yj = ya[j];
            gm[j] = ((yj > lo) & (yj < hi)) ? gj : 0.0f;
          }
        }
        if (overwrite) {
          for (int64_t j = 0; j < nb; j++)
            dx[j] = k[j] * (gm[j] - mean_dy[j] - q[j] * (x[j] - shift[j]));
        } else {
          for (int64_t j = 0; j < nb; j++)
            dx[j] += k[j] * (gm[j] - mean_dy[j] - q[j] * (x[j] - shift[j]));
        }
      } else {
        for (int64_t j = 0; j < nb; j++)
          for (int64_t i = 0; i < inner; i++) {
            int64_t e = j * inner + i;
            float v = k[j] * (masked(g[e], ya, e, lo, hi) - mean_dy[j] - q[j] * (x[e] - shift[j]));
            dx[e] = overwrite ? v : dx[e] + v;
          }
      }
    }
  }
}
