/* CONV: grouped, strided, dilated, padded convolution with an optional residual input; a Gemm is
 * a convolution whose kernel covers its input. Per sample:
 *   x (H, W, C)   weight K x R x S x C/g (each output channel's row packed at <= 4 bits)
 *   y (P, Q, K)   residual (P, Q, K) or none
 *   acc[k] = bias[k] + sum over taps inside the input and the group's channels of x * w
 *   y[k]   = clamp(rescale(acc[k], dyadic[k]) + rescale(residual[k], residual_dyadic), lo, hi)
 * acc is int32: validation proved max|x| * sum|w_k| + |bias_k| < 2^31, which bounds every
 * partial sum too, in any order.
 *
 * To keep the reference usable on whole test sets, the node's weights are first unpacked to
 * int16 rows, and for each output pixel and group the window (R x S x C/g values, padded taps 0)
 * is gathered into one contiguous vector; each output channel is then a plain dot product, which
 * the compiler vectorizes with integer instructions. Both buffers live in the scratch area: the
 * weights once, then one window vector per thread (threads split the output rows). */
#include "qrt/qrt_internal.h"

/* Geometry of one node, resolved once (group sizes by exact quotient: no division). */
typedef struct conv_geom {
  int64_t h, w, c;           /* input */
  int64_t p, q, k;           /* output */
  int64_t r, s, cg, kg, len; /* kernel, channels and output channels per group, row length */
  int64_t xrb, yrb, rrb;     /* row bytes of input, output, residual pixels */
} conv_geom;

static int64_t dot16(const int16_t *a, const int16_t *b, int64_t n) {
  int32_t acc = 0;
  for (int64_t i = 0; i < n; i++) acc += (int32_t)a[i] * (int32_t)b[i];
  return acc;
}

static int64_t dot32(const int32_t *a, const int16_t *b, int64_t n) {
  int32_t acc = 0;
  for (int64_t i = 0; i < n; i++) acc += a[i] * (int32_t)b[i];
  return acc;
}

/* The window of group `group` at the output pixel whose window starts at (h0, w0), as len values
 * in weight order (r, s, c); taps outside the input are 0. Writes p16 when the input type fits
 * int16, else p32. */
static void gather(const hawq_qnode *n, const conv_geom *g, hawq_qtype xt, const uint8_t *xs,
                   int64_t h0, int64_t w0, int64_t group, int16_t *p16, int32_t *p32) {
  int64_t c0 = group * g->cg, i = 0;
  for (int64_t r = 0; r < g->r; r++) {
    int64_t ih = h0 + r * n->dilation[0];
    for (int64_t s = 0; s < g->s; s++, i += g->cg) {
      int64_t iw = w0 + s * n->dilation[1];
      bool inside = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w;
      const uint8_t *xr = inside ? xs + (ih * g->w + iw) * g->xrb : NULL;
      if (p32) {
        for (int64_t c = 0; c < g->cg; c++) p32[i + c] = xr ? hawq_qrow_get(xt, xr, c0 + c) : 0;
      } else if (!xr) {
        for (int64_t c = 0; c < g->cg; c++) p16[i + c] = 0;
      } else if (xt == HAWQ_QT_U8) {
        for (int64_t c = 0; c < g->cg; c++) p16[i + c] = xr[c0 + c];
      } else if (xt == HAWQ_QT_I8) {
        for (int64_t c = 0; c < g->cg; c++) p16[i + c] = ((const int8_t *)xr)[c0 + c];
      } else {
        for (int64_t c = 0; c < g->cg; c++) p16[i + c] = (int16_t)hawq_qrow_get(xt, xr, c0 + c);
      }
    }
  }
}

static size_t patch_bytes(int64_t len) {
  return ((size_t)len * sizeof(int32_t) + 63) & ~(size_t)63;
}

size_t hawq_qrt_conv_scratch(const hawq_qmodel *m, const hawq_qnode *n, int threads) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  int64_t len = n->kernel[0] * n->kernel[1] * qrt_exact_quotient(x->c, n->groups);
  size_t weights = ((size_t)(y->c * len) * sizeof(int16_t) + 63) & ~(size_t)63;
  return weights + (size_t)(threads < 1 ? 1 : threads) * patch_bytes(len);
}

void hawq_qrt_conv(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  int res_t = n->n_inputs == 2 ? n->inputs[1] : -1;
  const hawq_qtensor *res = res_t >= 0 ? &m->tensors[res_t] : NULL;
  const uint8_t *xd = a->in[0];
  const uint8_t *rd = res ? a->in[1] : NULL;
  uint8_t *yd = a->out;

  conv_geom g;
  g.h = x->h, g.w = x->w, g.c = x->c;
  g.p = y->h, g.q = y->w, g.k = y->c;
  g.r = n->kernel[0], g.s = n->kernel[1];
  g.cg = qrt_exact_quotient(g.c, n->groups);
  g.kg = qrt_exact_quotient(g.k, n->groups);
  g.len = g.r * g.s * g.cg;
  g.xrb = qrt_row_bytes(x->type, g.c);
  g.yrb = qrt_row_bytes(y->type, g.k);
  g.rrb = res ? qrt_row_bytes(res->type, g.k) : 0;
  int64_t x_sample = g.h * g.w * g.xrb;

  /* Scratch: the weights as int16 rows, then one gathered window per thread. */
  int16_t *w16 = (int16_t *)a->scratch;
  uint8_t *patches =
      (uint8_t *)w16 + ((((size_t)(g.k * g.len) * sizeof(int16_t)) + 63) & ~(size_t)63);
  bool wide = x->type == HAWQ_QT_I32; /* values that may not fit int16 */
  for (int64_t k = 0; k < g.k; k++) {
    for (int64_t i = 0; i < g.len; i++)
      w16[k * g.len + i] = (int16_t)hawq_qweight_get(n, g.len, k, i);
  }

#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int thread = 0;
#ifdef _OPENMP
    thread = omp_get_thread_num();
#endif
    uint8_t *patch = patches + (size_t)thread * patch_bytes(g.len);
    int16_t *p16 = wide ? NULL : (int16_t *)patch;
    int32_t *p32 = wide ? (int32_t *)patch : NULL;
    int64_t r0, r1; /* this thread's output rows, over the batch */
    qrt_thread_range(a->batch * g.p, &r0, &r1);
    for (int64_t row = r0, b = qrt_quotient(r0, g.p), p = r0 - b * g.p; row < r1;
         row++, b += p + 1 == g.p, p = p + 1 == g.p ? 0 : p + 1) {
      const uint8_t *xs = xd + b * x_sample;
      for (int64_t q = 0; q < g.q; q++) {
        int64_t pix = (b * g.p + p) * g.q + q; /* output pixel index over the batch */
        uint8_t *yr = yd + pix * g.yrb;
        const uint8_t *rr = res ? rd + pix * g.rrb : NULL;
        int64_t h0 = p * n->stride[0] - n->pad[0], w0 = q * n->stride[1] - n->pad[1];
        for (int64_t group = 0, k = 0; group < n->groups; group++) {
          gather(n, &g, x->type, xs, h0, w0, group, p16, p32);
          for (int64_t kk = 0; kk < g.kg; kk++, k++) {
            const int16_t *wk = w16 + k * g.len;
            int32_t acc =
                n->bias[k] + (int32_t)(wide ? dot32(p32, wk, g.len) : dot16(p16, wk, g.len));
            int64_t v = hawq_rescale(acc, n->dyadic[k]);
            if (rr) v += hawq_rescale(hawq_qrow_get(res->type, rr, k), n->residual_dyadic);
            hawq_qrow_set(y->type, yr, k, (int32_t)hawq_clamp64(v, y->lo, y->hi));
          }
        }
        qrt_row_finish(y->type, yr, g.k);
      }
    }
  }
}
