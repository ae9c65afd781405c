/* Fake quantization: the float image of the integer contract for quantization-aware training
 * (graph.h, HAWQ_OP_FAKEQUANT; ARCHITECTURE section 3). */
#include <math.h>

#include "float/ops.h"

/* v / scale rounded half away from zero (roundf's rule, lowering's) as a float, first clamped
 * to [lo - 1, hi + 1], which changes nothing after the final clamp to [lo, hi] and keeps the
 * int32 truncation in range (|bounds| < 2^30). The truncation and the branch-free fix-up
 * vectorize (roundf is a library call); x - t is exact. */
static inline float quantize(float v, float inv, float flo, float fhi) {
  float x = v * inv;
  x = x < flo - 1.0f ? flo - 1.0f : x;
  x = x > fhi + 1.0f ? fhi + 1.0f : x;
  float t = (float)(int32_t)x, d = x - t;
  t += (d >= 0.5f ? 1.0f : 0.0f) - (d <= -0.5f ? 1.0f : 0.0f);
  return t;
}

/* An integer bound as a float within [-(2^30 - 1), 2^30 - 1]: wider clamps (the unclamped
 * rounding of addends) are never reached by values lowering lets through. */
static float clamp_bound(int32_t b) {
  const int32_t lim = (1 << 30) - 1;
  return (float)(b < -lim ? -lim : b > lim ? lim : b);
}

void hawq_fakequant_forward(const float *in, float *out, int64_t n, double scale, int32_t lo,
                            int32_t hi, int threads) {
  (void)threads; /* used only by the OpenMP pragmas */
  const float s = (float)scale, inv = (float)(1.0 / scale);
  const float flo = clamp_bound(lo), fhi = clamp_bound(hi);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 32768)
  for (int64_t i = 0; i < n; i++) {
    float q = quantize(in[i], inv, flo, fhi);
    q = q < flo ? flo : q;
    q = q > fhi ? fhi : q;
    out[i] = q * s;
  }
}

void hawq_fakequant_backward(const float *in, const float *dout, float *din, int64_t n,
                             double scale, int32_t lo, int32_t hi, int threads) {
  (void)threads; /* used only by the OpenMP pragmas */
  const float inv = (float)(1.0 / scale), flo = clamp_bound(lo), fhi = clamp_bound(hi);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 32768)
  for (int64_t i = 0; i < n; i++) {
    float q = quantize(in[i], inv, flo, fhi);
    din[i] += q >= flo && q <= fhi ? dout[i] : 0.0f;
  }
}

void hawq_fakequant_rows_forward(const float *in, float *out, int64_t rows, int64_t per, int bits,
                                 int threads) {
  (void)threads; /* used only by the OpenMP pragmas */
  const double top = (double)((1 << (bits - 1)) - 1);
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && rows * per > 65536)
  for (int64_t r = 0; r < rows; r++) {
    const float *x = in + r * per;
    float *y = out + r * per;
    double mx = 0;
    for (int64_t j = 0; j < per; j++) mx = fmax(mx, fabs((double)x[j]));
    double s = mx > 0 ? mx / top : 1.0;
    for (int64_t j = 0; j < per; j++) {
      double q = round((double)x[j] / s);
      q = q < -top ? -top : q > top ? top : q;
      y[j] = (float)(q * s);
    }
  }
}

void hawq_fakequant_given_forward(const float *in, const float *scales, float *out, int64_t rows,
                                  int64_t per) {
  for (int64_t r = 0; r < rows; r++) {
    double s = scales[r];
    for (int64_t j = 0; j < per; j++) out[r * per + j] = (float)(round(in[r * per + j] / s) * s);
  }
}

void hawq_min_max(const float *x, int64_t n, float *min, float *max, int threads) {
  (void)threads; /* used only by the OpenMP pragmas */
  float lo = x[0], hi = x[0];
#pragma omp parallel for simd num_threads(threads) schedule(static) reduction(min   \
                                                                              : lo) \
    reduction(max                                                                   \
              : hi) if (threads > 1 && n > 65536)
  for (int64_t i = 0; i < n; i++) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  *min = lo;
  *max = hi;
}
