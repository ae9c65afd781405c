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
 * Per-channel reductions (batch moments, dscale, dbias) run over tiles of channels: one thread
 * sums a tile's channels row by row, so no two threads touch one channel, no scratch memory is
 * needed, and every sum is added in the same order whatever the thread count (results are
 * bitwise identical for any `threads`). Channels are handled in blocks of BN_BLOCK so that the
 * per-channel coefficients live on the stack. */
#define BN_BLOCK 1024         /* channels per block (stack coefficients) */
#define BN_TILE 64            /* channels per tile (stack accumulators) */
#define BN_MIN_TILE 8         /* one vector of double accumulators */
#define BN_PARALLEL_MIN 32768 /* elements below which threads cost more than they save */

static int64_t bn_tile_width(int64_t channels, int threads) {
  if (threads <= 1) return BN_TILE;
  int64_t width = (channels + threads - 1) / threads;
  width = (width + BN_MIN_TILE - 1) / BN_MIN_TILE * BN_MIN_TILE;
  return width > BN_TILE ? BN_TILE : width;
}

/* Mean and biased variance (double) of channels [c0, c0 + nb) of x (outer, c, inner). The sums
 * are of x - x[first], so a large mean does not cancel the variance away. */
static void bn_moments(const float *x, int64_t outer, int64_t c, int64_t inner, int64_t c0,
                       int64_t nb, double *mean, double *var, int threads) {
  int64_t width = bn_tile_width(nb, threads), tiles = (nb + width - 1) / width;
  double count = (double)(outer * inner);
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && tiles > 1 && outer * inner * nb >= BN_PARALLEL_MIN)
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t t0 = tile * width, tw = nb - t0 < width ? nb - t0 : width;
    double shift[BN_TILE], s1[BN_TILE], s2[BN_TILE];
    for (int64_t j = 0; j < tw; j++) {
      shift[j] = x[(c0 + t0 + j) * inner];
      s1[j] = s2[j] = 0.0;
    }
    for (int64_t o = 0; o < outer; o++) {
      const float *row = x + (o * c + c0 + t0) * inner;
      if (inner == 1) {
        for (int64_t j = 0; j < tw; j++) {
          double v = (double)row[j] - shift[j];
          s1[j] += v;
          s2[j] += v * v;
        }
      } else {
        for (int64_t j = 0; j < tw; j++) {
          double a = 0.0, b = 0.0;
          for (int64_t i = 0; i < inner; i++) {
            double v = (double)row[j * inner + i] - shift[j];
            a += v;
            b += v * v;
          }
          s1[j] += a;
          s2[j] += b;
        }
      }
    }
    for (int64_t j = 0; j < tw; j++) {
      double m = s1[j] / count, v = s2[j] / count - m * m;
      mean[t0 + j] = shift[j] + m;
      var[t0 + j] = v > 0.0 ? v : 0.0;
    }
  }
}

void hawq_batchnorm_train_forward(const float *in, float *out, int64_t outer, int64_t c,
                                  int64_t inner, const float *scale, const float *bias, float eps,
                                  float momentum, float *running_mean, float *running_var,
                                  float *batch_mean, float *batch_rstd, int threads) {
  if (threads < 1) threads = 1;
  int64_t count = outer * inner;
  if (count <= 0 || c <= 0) return;
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
        for (int64_t j = 0; j < nb; j++) y[j] = (x[j] - shift[j]) * mul[j] + add[j];
      } else {
        for (int64_t j = 0; j < nb; j++)
          for (int64_t i = 0; i < inner; i++)
            y[j * inner + i] = (x[j * inner + i] - shift[j]) * mul[j] + add[j];
      }
    }
  }
}

/* sum(dy) and sum(dy * (x - mean)) (double) of channels [c0, c0 + nb). */
static void bn_grad_sums(const float *x, const float *dy, int64_t outer, int64_t c, int64_t inner,
                         int64_t c0, int64_t nb, const float *mean, double *sum_dy,
                         double *sum_dy_xc, int threads) {
  int64_t width = bn_tile_width(nb, threads), tiles = (nb + width - 1) / width;
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && tiles > 1 && outer * inner * nb >= BN_PARALLEL_MIN)
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t t0 = tile * width, tw = nb - t0 < width ? nb - t0 : width;
    double m[BN_TILE], s1[BN_TILE], s2[BN_TILE];
    for (int64_t j = 0; j < tw; j++) {
      m[j] = mean[c0 + t0 + j];
      s1[j] = s2[j] = 0.0;
    }
    for (int64_t o = 0; o < outer; o++) {
      int64_t at = (o * c + c0 + t0) * inner;
      const float *xr = x + at, *gr = dy + at;
      if (inner == 1) {
        for (int64_t j = 0; j < tw; j++) {
          double g = gr[j];
          s1[j] += g;
          s2[j] += g * ((double)xr[j] - m[j]);
        }
      } else {
        for (int64_t j = 0; j < tw; j++) {
          double a = 0.0, b = 0.0;
          for (int64_t i = 0; i < inner; i++) {
            double g = gr[j * inner + i];
            a += g;
            b += g * ((double)xr[j * inner + i] - m[j]);
          }
          s1[j] += a;
          s2[j] += b;
        }
      }
    }
    for (int64_t j = 0; j < tw; j++) {
      sum_dy[t0 + j] = s1[j];
      sum_dy_xc[t0 + j] = s2[j];
    }
  }
}

/* With xhat = (x - mean) * rstd and n values per channel:
 *   dbias = sum dy, dscale = sum dy * xhat,
 *   dx = scale * rstd * dy                                          (constant statistics)
 *   dx = scale * rstd * (dy - dbias / n - xhat * dscale / n)        (batch statistics). */
void hawq_batchnorm_backward(const float *in, const float *dout, int64_t outer, int64_t c,
                             int64_t inner, const float *scale, const float *mean,
                             const float *rstd, bool batch_stats, float *din, float *dscale,
                             float *dbias, int threads) {
  if (threads < 1) threads = 1;
  int64_t count = outer * inner;
  if (count <= 0 || c <= 0 || (!din && !dscale && !dbias)) return;
  bool need_sums = dscale || dbias || batch_stats;
  for (int64_t c0 = 0; c0 < c; c0 += BN_BLOCK) {
    int64_t nb = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
    double sum_dy[BN_BLOCK], sum_dy_xc[BN_BLOCK];
    if (need_sums)
      bn_grad_sums(in, dout, outer, c, inner, c0, nb, mean, sum_dy, sum_dy_xc, threads);
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
      const float *x = in + at, *g = dout + at;
      float *dx = din + at;
      if (!batch_stats) { /* constants: x does not enter (nor can an inf in it) */
        for (int64_t j = 0; j < nb; j++)
          for (int64_t i = 0; i < inner; i++) dx[j * inner + i] += k[j] * g[j * inner + i];
      } else if (inner == 1) { /* NHWC: vectorised along the channels */
        for (int64_t j = 0; j < nb; j++)
          dx[j] += k[j] * (g[j] - mean_dy[j] - q[j] * (x[j] - shift[j]));
      } else {
        for (int64_t j = 0; j < nb; j++)
          for (int64_t i = 0; i < inner; i++) {
            int64_t e = j * inner + i;
            dx[e] += k[j] * (g[e] - mean_dy[j] - q[j] * (x[e] - shift[j]));
          }
      }
    }
  }
}
