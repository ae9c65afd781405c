/* Softmax over the middle axis of (outer, len, inner), max-subtracted for stability. */
#include <math.h>

#include "float/ops.h"

void hawq_softmax_forward(const float *in, float *out, int64_t outer, int64_t len, int64_t inner,
                          int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && outer > 1)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      const float *x = in + o * len * inner + i;
      float *y = out + o * len * inner + i;
      float mx = x[0];
      for (int64_t k = 1; k < len; k++) mx = x[k * inner] > mx ? x[k * inner] : mx;
      double sum = 0;
      for (int64_t k = 0; k < len; k++) {
        float e = expf(x[k * inner] - mx);
        y[k * inner] = e;
        sum += e;
      }
      float inv = (float)(1.0 / sum);
      for (int64_t k = 0; k < len; k++) y[k * inner] *= inv;
    }
  }
}

/* din += y * (dy - sum_k y_k dy_k) along the softmax axis, the dot product in double. */
void hawq_softmax_backward(const float *out, const float *dout, float *din, int64_t outer,
                           int64_t len, int64_t inner, int threads) {
  if (!din) return;
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && outer > 1)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      const float *y = out + o * len * inner + i, *g = dout + o * len * inner + i;
      float *dx = din + o * len * inner + i;
      double dot = 0.0;
      for (int64_t k = 0; k < len; k++) dot += (double)y[k * inner] * g[k * inner];
      float d = (float)dot;
      if (inner == 1) { /* contiguous: vectorised */
        for (int64_t k = 0; k < len; k++) dx[k] += y[k] * (g[k] - d);
      } else {
        for (int64_t k = 0; k < len; k++) dx[k * inner] += y[k * inner] * (g[k * inner] - d);
      }
    }
  }
}
