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

/* ---- backward ----
 * Windows overlap, so the backwards scatter: each task owns one image and a tile of channels
 * (disjoint parts of din, no races) and visits the outputs in order, so every din element
 * receives its contributions in the same order whatever the thread count. Tiles shrink (to
 * POOL_MIN_TILE channels, whole cache lines) only when there are fewer images than threads. */
#define POOL_TILE 64
#define POOL_MIN_TILE 16

static int64_t pool_tile_width(int64_t c, int64_t n, int threads) {
  int64_t width = c < POOL_TILE ? c : POOL_TILE;
  if (threads > 1 && n * ((c + width - 1) / width) < threads) {
    int64_t want = (threads + n - 1) / n, w = (c + want - 1) / want;
    w = (w + POOL_MIN_TILE - 1) / POOL_MIN_TILE * POOL_MIN_TILE;
    if (w < width) width = w;
  }
  return width > 0 ? width : 1;
}

/* Max pooling: each output's gradient goes to the input the forward picked: the taps are
 * scanned in the forward's order with its comparison (the first maximum; a NaN wins, the last
 * one). A window whose taps are all -inf routes to its first tap, as PyTorch does.
 *
 * Two branch-free passes over the window, both vectorised along the channels: the first finds
 * each channel's tap (its number r * kernel_w + t in the window, an int32 like the floats, so
 * the selects vectorise), the second adds the gradient at that tap (and 0 at the others)
 * rather than scattering channel by channel. */
void hawq_maxpool_backward(const hawq_pool_shape *s, const float *in, const float *dout, float *din,
                           int threads) {
  const hawq_pool_attr *a = &s->attr;
  if (!din || s->c <= 0) return;
  if (threads < 1) threads = 1;
  int64_t width = pool_tile_width(s->c, s->n, threads), tiles = (s->c + width - 1) / width;
  int64_t tasks = s->n * tiles;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && tasks > 1)
  for (int64_t task = 0; task < tasks; task++) {
    int64_t n = task / tiles, c0 = (task % tiles) * width;
    int64_t cw = s->c - c0 < width ? s->c - c0 : width;
    const float *image = in + n * s->h * s->w * s->c + c0;
    float *dimage = din + n * s->h * s->w * s->c + c0;
    for (int64_t p = 0; p < s->p; p++) {
      int64_t h0 = p * a->stride[0] - a->pad[0];
      for (int64_t q = 0; q < s->q; q++) {
        int64_t w0 = q * a->stride[1] - a->pad[1];
        float best[POOL_TILE];
        int32_t pick[POOL_TILE]; /* the maximum's tap, -1 before the first tap */
        for (int64_t j = 0; j < cw; j++) {
          best[j] = -INFINITY;
          pick[j] = -1;
        }
        for (int r = 0; r < a->kernel[0]; r++) {
          int64_t ih = h0 + (int64_t)r * a->dilation[0];
          if (ih < 0 || ih >= s->h) continue;
          for (int t = 0; t < a->kernel[1]; t++) {
            int64_t iw = w0 + (int64_t)t * a->dilation[1];
            if (iw < 0 || iw >= s->w) continue;
            const float *x = image + (ih * s->w + iw) * s->c;
            int32_t tap = r * a->kernel[1] + t;
            for (int64_t j = 0; j < cw; j++) {
              /* bitwise |, not ||: no branches, so the selects vectorise */
              bool take = (x[j] > best[j]) | (x[j] != x[j]) | (pick[j] < 0);
              best[j] = take ? x[j] : best[j];
              pick[j] = take ? tap : pick[j];
            }
          }
        }
        const float *g = dout + ((n * s->p + p) * s->q + q) * s->c + c0;
        for (int r = 0; r < a->kernel[0]; r++) {
          int64_t ih = h0 + (int64_t)r * a->dilation[0];
          if (ih < 0 || ih >= s->h) continue;
          for (int t = 0; t < a->kernel[1]; t++) {
            int64_t iw = w0 + (int64_t)t * a->dilation[1];
            if (iw < 0 || iw >= s->w) continue;
            float *dx = dimage + (ih * s->w + iw) * s->c;
            int32_t tap = r * a->kernel[1] + t;
            for (int64_t j = 0; j < cw; j++) {
              float gj = g[j]; /* read unconditionally: the select vectorises */
              dx[j] += pick[j] == tap ? gj : 0.0f;
            }
          }
        }
      }
    }
  }
}

/* Average pooling: each output's gradient, times the forward's 1/count, to every input of its
 * window (clipped to the input). */
void hawq_avgpool_backward(const hawq_pool_shape *s, const float *dout, float *din, int threads) {
  if (!din || s->c <= 0) return;
  if (threads < 1) threads = 1;
  int64_t width = pool_tile_width(s->c, s->n, threads), tiles = (s->c + width - 1) / width;
  int64_t tasks = s->n * tiles;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && tasks > 1)
  for (int64_t task = 0; task < tasks; task++) {
    int64_t n = task / tiles, c0 = (task % tiles) * width;
    int64_t cw = s->c - c0 < width ? s->c - c0 : width;
    float *dimage = din + n * s->h * s->w * s->c + c0;
    for (int64_t p = 0; p < s->p; p++) {
      for (int64_t q = 0; q < s->q; q++) {
        window win = window_at(s, p, q);
        int64_t count =
            s->attr.count_include_pad ? win.padded_count : (win.h1 - win.h0) * (win.w1 - win.w0);
        if (count <= 0) continue;
        float inv = 1.0f / (float)count, g[POOL_TILE];
        const float *d = dout + ((n * s->p + p) * s->q + q) * s->c + c0;
        for (int64_t j = 0; j < cw; j++) g[j] = d[j] * inv;
        for (int64_t ih = win.h0; ih < win.h1; ih++) {
          for (int64_t iw = win.w0; iw < win.w1; iw++) {
            float *dx = dimage + (ih * s->w + iw) * s->c;
            for (int64_t j = 0; j < cw; j++) dx[j] += g[j];
          }
        }
      }
    }
  }
}

void hawq_global_avgpool_backward(const float *dout, float *din, int64_t n, int64_t hw, int64_t c,
                                  int threads) {
  if (!din || hw <= 0) return;
  if (threads < 1) threads = 1;
  float inv = 1.0f / (float)hw; /* the forward's factor */
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && n * hw * c > 65536)
  for (int64_t row = 0; row < n * hw; row++) {
    const float *g = dout + (row / hw) * c;
    float *dx = din + row * c;
    for (int64_t k = 0; k < c; k++) dx[k] += g[k] * inv;
  }
}

/* The first maximum over the pixels of each channel (the forward's comparison, as in max
 * pooling) receives the gradient. */
void hawq_global_maxpool_backward(const float *in, const float *dout, float *din, int64_t n,
                                  int64_t hw, int64_t c, int threads) {
  if (!din || c <= 0) return;
  if (threads < 1) threads = 1;
  int64_t width = pool_tile_width(c, n, threads), tiles = (c + width - 1) / width;
  int64_t tasks = n * tiles;
#pragma omp parallel for num_threads(threads) \
    schedule(static) if (threads > 1 && tasks > 1 && n * hw * c > 16384)
  for (int64_t task = 0; task < tasks; task++) {
    int64_t b = task / tiles, c0 = (task % tiles) * width;
    int64_t cw = c - c0 < width ? c - c0 : width;
    float best[POOL_TILE];
    int64_t at[POOL_TILE];
    for (int64_t j = 0; j < cw; j++) {
      best[j] = -INFINITY;
      at[j] = -1;
    }
    for (int64_t i = 0; i < hw; i++) {
      const float *x = in + (b * hw + i) * c + c0;
      for (int64_t j = 0; j < cw; j++) {
        bool take = (x[j] > best[j]) | (x[j] != x[j]) | (at[j] < 0);
        best[j] = take ? x[j] : best[j];
        at[j] = take ? i : at[j];
      }
    }
    const float *g = dout + b * c + c0;
    float *dx = din + b * hw * c + c0;
    for (int64_t j = 0; j < cw; j++)
      if (at[j] >= 0) dx[at[j] * c + j] += g[j];
  }
}
