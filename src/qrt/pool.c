/* MAXPOOL and AVGPOOL over (H, W, C) per sample, output (P, Q, C). Windows follow the float
 * engine (src/float/pool.c, window_at): window (p, q) starts at (p * stride - pad_top,
 * q * stride - pad_left); with ceil_mode it may run past the padded input. Validation proved
 * that every window has a tap inside the input. */
#include <string.h>

#include "qrt/qrt_internal.h"

static int64_t max64(int64_t a, int64_t b) {
  return a > b ? a : b;
}
static int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

/* y = max over the (dilated) window's taps inside the input; padding never wins. Same type and
 * row layout in and out, so the first tap's row is copied whole and the rest compared into it. */
void hawq_qrt_maxpool(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  const uint8_t *xd = a->in[0];
  uint8_t *yd = a->out;
  int64_t h = x->h, w = x->w, c = x->c, rb = qrt_row_bytes(x->type, c);
  hawq_qtype t = x->type;
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1; /* this thread's output rows, over the batch */
    qrt_thread_range(a->batch * y->h, &r0, &r1);
    for (int64_t row = r0, b = qrt_quotient(r0, y->h), p = r0 - b * y->h; row < r1;
         row++, b += p + 1 == y->h, p = p + 1 == y->h ? 0 : p + 1) {
      const uint8_t *xs = xd + b * h * w * rb;
      for (int64_t q = 0; q < y->w; q++) {
        uint8_t *yr = yd + ((b * y->h + p) * y->w + q) * rb;
        int64_t h0 = p * n->stride[0] - n->pad[0], w0 = q * n->stride[1] - n->pad[1];
        int first = 1;
        for (int64_t r = 0; r < n->kernel[0]; r++) {
          int64_t ih = h0 + r * n->dilation[0];
          if (ih < 0 || ih >= h) continue;
          for (int64_t s = 0; s < n->kernel[1]; s++) {
            int64_t iw = w0 + s * n->dilation[1];
            if (iw < 0 || iw >= w) continue;
            const uint8_t *xr = xs + (ih * w + iw) * rb;
            if (first) {
              memcpy(yr, xr, (size_t)rb);
              first = 0;
              continue;
            }
            for (int64_t ch = 0; ch < c; ch++) {
              int32_t v = hawq_qrow_get(t, xr, ch);
              if (v > hawq_qrow_get(t, yr, ch)) hawq_qrow_set(t, yr, ch, v);
            }
          }
        }
      }
    }
  }
}

/* y = clamp(rescale(s, dyadic[count - 1]), lo, hi), s the int64 sum of the window's taps inside
 * the input. As window_at: the window [h0, h0 + R) x [w0, w0 + S) (no dilation: validated) is
 * clipped to the padded input for count_include_pad's count and to the input for the sum and
 * the other count. Validation proved R * S * max|x| < 2^31, so s fits the rescale. */
void hawq_qrt_avgpool(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  const uint8_t *xd = a->in[0];
  uint8_t *yd = a->out;
  int64_t h = x->h, w = x->w, c = x->c;
  int64_t xrb = qrt_row_bytes(x->type, c), yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1; /* this thread's output rows, over the batch */
    qrt_thread_range(a->batch * y->h, &r0, &r1);
    for (int64_t row = r0, b = qrt_quotient(r0, y->h), p = r0 - b * y->h; row < r1;
         row++, b += p + 1 == y->h, p = p + 1 == y->h ? 0 : p + 1) {
      const uint8_t *xs = xd + b * h * w * xrb;
      int64_t h0 = p * n->stride[0] - n->pad[0], h1 = h0 + n->kernel[0];
      int64_t padded_h = min64(h1, h + n->pad[2]) - h0;
      int64_t ih0 = max64(h0, 0), ih1 = min64(h1, h);
      for (int64_t q = 0; q < y->w; q++) {
        int64_t w0 = q * n->stride[1] - n->pad[1], w1 = w0 + n->kernel[1];
        int64_t padded_w = min64(w1, w + n->pad[3]) - w0;
        int64_t iw0 = max64(w0, 0), iw1 = min64(w1, w);
        int64_t count = n->count_include_pad ? padded_h * padded_w : (ih1 - ih0) * (iw1 - iw0);
        hawq_dyadic d = n->dyadic[count - 1];
        uint8_t *yr = yd + ((b * y->h + p) * y->w + q) * yrb;
        for (int64_t ch = 0; ch < c; ch++) {
          int64_t sum = 0;
          for (int64_t ih = ih0; ih < ih1; ih++) {
            const uint8_t *xr = xs + (ih * w + iw0) * xrb;
            for (int64_t iw = iw0; iw < iw1; iw++, xr += xrb) sum += hawq_qrow_get(x->type, xr, ch);
          }
          hawq_qrow_set(y->type, yr, ch, (int32_t)hawq_clamp64(hawq_rescale(sum, d), y->lo, y->hi));
        }
        qrt_row_finish(y->type, yr, c);
      }
    }
  }
}
