/* Max and average pooling over NHWC, and global pooling. Window bounds follow PyTorch (which is
 * what ONNX exporters describe): with ceil_mode a window may run past the padded input and is
 * clipped; an average with count_include_pad divides by the window clipped to the padded input,
 * without it by the number of real input pixels under the window. */
#include <math.h>
#include <string.h>

#include "float/ops.h"

typedef struct window {
  int64_t h0, h1, w0, w1; /* clipped to the input */
  int64_t padded_count;   /* clipped to the padded input */
} window;

static window window_at(const hawq_pool_shape *s, int64_t p, int64_t q) {
  const hawq_pool_attr *a = &s->attr;
  int64_t kh = (int64_t)(a->kernel[0] - 1) * a->dilation[0] + 1;
  int64_t kw = (int64_t)(a->kernel[1] - 1) * a->dilation[1] + 1;
  int64_t h0 = p * a->stride[0] - a->pad[0], w0 = q * a->stride[1] - a->pad[1];
  int64_t h1 = h0 + kh, w1 = w0 + kw;
  int64_t ph1 = h1 < s->h + a->pad[2] ? h1 : s->h + a->pad[2];
  int64_t pw1 = w1 < s->w + a->pad[3] ? w1 : s->w + a->pad[3];
  window win = {h0, h1, w0, w1, (ph1 - h0) * (pw1 - w0)};
  if (win.h0 < 0) win.h0 = 0;
  if (win.w0 < 0) win.w0 = 0;
  if (win.h1 > s->h) win.h1 = s->h;
  if (win.w1 > s->w) win.w1 = s->w;
  return win;
}

void hawq_maxpool_forward(const hawq_pool_shape *s, const float *in, float *out, int threads) {
  const hawq_pool_attr *a = &s->attr;
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t row = 0; row < s->n * s->p; row++) {
    int64_t n = row / s->p, p = row % s->p;
    for (int64_t q = 0; q < s->q; q++) {
      float *o = out + (row * s->q + q) * s->c;
      for (int64_t c = 0; c < s->c; c++) o[c] = -INFINITY;
      int64_t h0 = p * a->stride[0] - a->pad[0], w0 = q * a->stride[1] - a->pad[1];
      for (int r = 0; r < a->kernel[0]; r++) {
        int64_t ih = h0 + (int64_t)r * a->dilation[0];
        if (ih < 0 || ih >= s->h) continue;
        for (int t = 0; t < a->kernel[1]; t++) {
          int64_t iw = w0 + (int64_t)t * a->dilation[1];
          if (iw < 0 || iw >= s->w) continue;
          const float *x = in + ((n * s->h + ih) * s->w + iw) * s->c;
          /* NaN propagates, as in PyTorch */
          for (int64_t c = 0; c < s->c; c++) o[c] = (x[c] > o[c] || x[c] != x[c]) ? x[c] : o[c];
        }
      }
    }
  }
}

void hawq_avgpool_forward(const hawq_pool_shape *s, const float *in, float *out, int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t row = 0; row < s->n * s->p; row++) {
    int64_t n = row / s->p, p = row % s->p;
    for (int64_t q = 0; q < s->q; q++) {
      float *o = out + (row * s->q + q) * s->c;
      memset(o, 0, (size_t)s->c * sizeof(float));
      window win = window_at(s, p, q);
      for (int64_t ih = win.h0; ih < win.h1; ih++) {
        for (int64_t iw = win.w0; iw < win.w1; iw++) {
          const float *x = in + ((n * s->h + ih) * s->w + iw) * s->c;
          for (int64_t c = 0; c < s->c; c++) o[c] += x[c];
        }
      }
      int64_t count =
          s->attr.count_include_pad ? win.padded_count : (win.h1 - win.h0) * (win.w1 - win.w0);
      float inv = count > 0 ? 1.0f / (float)count : 0.0f;
      for (int64_t c = 0; c < s->c; c++) o[c] *= inv;
    }
  }
}

void hawq_global_avgpool_forward(const float *in, float *out, int64_t n, int64_t hw, int64_t c,
                                 int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t b = 0; b < n; b++) {
    float *o = out + b * c;
    memset(o, 0, (size_t)c * sizeof(float));
    for (int64_t i = 0; i < hw; i++) {
      const float *x = in + (b * hw + i) * c;
      for (int64_t k = 0; k < c; k++) o[k] += x[k];
    }
    float inv = 1.0f / (float)hw;
    for (int64_t k = 0; k < c; k++) o[k] *= inv;
  }
}

void hawq_global_maxpool_forward(const float *in, float *out, int64_t n, int64_t hw, int64_t c,
                                 int threads) {
  if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 1)
  for (int64_t b = 0; b < n; b++) {
    float *o = out + b * c;
    for (int64_t k = 0; k < c; k++) o[k] = -INFINITY;
    for (int64_t i = 0; i < hw; i++) {
      const float *x = in + (b * hw + i) * c;
      for (int64_t k = 0; k < c; k++) o[k] = (x[k] > o[k] || x[k] != x[k]) ? x[k] : o[k];
    }
  }
}
