/* Elementwise activations: ReLU, Clip (ReLU6 and friends), LeakyReLU. */
#include "float/ops.h"

void hawq_relu_forward(const float *in, float *out, int64_t n, int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i]; /* NaN stays NaN */
}

void hawq_clip_forward(const float *in, float *out, int64_t n, float lo, float hi, int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float v = in[i];
    out[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

void hawq_leaky_relu_forward(const float *in, float *out, int64_t n, float alpha, int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = in[i] >= 0.0f ? in[i] : in[i] * alpha;
}

/* Backwards from the forward's input. The masks are written as selects so the loops vectorise;
 * a NaN input passes no gradient through relu and clip (x > 0 and lo < x < hi are false). */
void hawq_relu_backward(const float *in, const float *dout, float *din, int64_t n, int threads) {
  if (!din) return;
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = dout[i]; /* read unconditionally: the select vectorises */
    din[i] += in[i] > 0.0f ? g : 0.0f;
  }
}

void hawq_clip_backward(const float *in, const float *dout, float *din, int64_t n, float lo,
                        float hi, int threads) {
  if (!din) return;
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = dout[i], x = in[i];
    din[i] += ((x > lo) & (x < hi)) ? g : 0.0f;
  }
}

void hawq_leaky_relu_backward(const float *in, const float *dout, float *din, int64_t n,
                              float alpha, int threads) {
  if (!din) return;
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = dout[i];
    din[i] += in[i] > 0.0f ? g : g * alpha;
  }
}
