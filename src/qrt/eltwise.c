/* Per-pixel ops: INPUT (pixels -> first activation), ADD, REQUANT and CONCAT. A sample's slot is
 * h * w rows of c values with no gap between samples, so these treat a batch as batch * h * w
 * rows; each row starts on a byte even when its values are packed. */
#include "qrt/qrt_internal.h"

/* y[first + i] = clamp(rescale(x[i], d), lo, hi) for i < n: the REQUANT / CONCAT step. */
static void rescale_span(hawq_qtype xt, const uint8_t *x, hawq_qtype yt, uint8_t *y, int64_t first,
                         int64_t n, hawq_dyadic d, int32_t lo, int32_t hi) {
  for (int64_t i = 0; i < n; i++) {
    int64_t v = hawq_rescale(hawq_qrow_get(xt, x, i), d);
    hawq_qrow_set(yt, y, first + i, (int32_t)hawq_clamp64(v, lo, hi));
  }
}

/* y = clamp(rescale(p * mul[ch] + add[ch], dyadic[ch]), lo, hi) per channel ch of each pixel p.
 * Validation proved |p * mul + add| < 2^31. */
void hawq_qrt_input(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  const uint8_t *xd = a->in[0];
  uint8_t *yd = a->out;
  int64_t rows = (int64_t)a->batch * y->h * y->w, c = y->c;
  int64_t xrb = qrt_row_bytes(x->type, c), yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      const uint8_t *xr = xd + r * xrb;
      uint8_t *yr = yd + r * yrb;
      for (int64_t ch = 0; ch < c; ch++) {
        int64_t v = (int64_t)hawq_qrow_get(x->type, xr, ch) * n->input_mul[ch] + n->input_add[ch];
        hawq_qrow_set(y->type, yr, ch,
                      (int32_t)hawq_clamp64(hawq_rescale(v, n->dyadic[ch]), y->lo, y->hi));
      }
      qrt_row_finish(y->type, yr, c);
    }
  }
}

/* y = clamp(rescale(a, dyadic[0]) + rescale(b, dyadic[1]), lo, hi): each branch rounded on its
 * own, the sum formed in int64. */
void hawq_qrt_add(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *args) {
  const hawq_qtensor *a = &m->tensors[n->inputs[0]], *b = &m->tensors[n->inputs[1]];
  const hawq_qtensor *y = &m->tensors[n->output];
  const uint8_t *ad = args->in[0], *bd = args->in[1];
  uint8_t *yd = args->out;
  int64_t rows = (int64_t)args->batch * y->h * y->w, c = y->c;
  int64_t arb = qrt_row_bytes(a->type, c), brb = qrt_row_bytes(b->type, c);
  int64_t yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(args->threads) if (args->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      const uint8_t *ar = ad + r * arb, *br = bd + r * brb;
      uint8_t *yr = yd + r * yrb;
      for (int64_t ch = 0; ch < c; ch++) {
        int64_t v = hawq_rescale(hawq_qrow_get(a->type, ar, ch), n->dyadic[0]) +
                    hawq_rescale(hawq_qrow_get(b->type, br, ch), n->dyadic[1]);
        hawq_qrow_set(y->type, yr, ch, (int32_t)hawq_clamp64(v, y->lo, y->hi));
      }
      qrt_row_finish(y->type, yr, c);
    }
  }
}

/* y = clamp(rescale(x, dyadic[0]), lo, hi). */
void hawq_qrt_requant(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  const uint8_t *xd = a->in[0];
  uint8_t *yd = a->out;
  int64_t rows = (int64_t)a->batch * y->h * y->w, c = y->c;
  int64_t xrb = qrt_row_bytes(x->type, c), yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      rescale_span(x->type, xd + r * xrb, y->type, yd + r * yrb, 0, c, n->dyadic[0], y->lo, y->hi);
      qrt_row_finish(y->type, yd + r * yrb, c);
    }
  }
}

/* Channels joined in input order, input j rescaled by dyadic[j]. A packed input may start at an
 * odd channel of the output row: rescale_span addresses output elements, not bytes. */
void hawq_qrt_concat(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *y = &m->tensors[n->output];
  uint8_t *yd = a->out;
  int64_t rows = (int64_t)a->batch * y->h * y->w, yrb = qrt_row_bytes(y->type, y->c);
  int64_t first = 0;
  for (int j = 0; j < n->n_inputs; j++) {
    const hawq_qtensor *x = &m->tensors[n->inputs[j]];
    const uint8_t *xd = a->in[j];
    int64_t xrb = qrt_row_bytes(x->type, x->c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
    {
      int64_t r0, r1;
      qrt_thread_range(rows, &r0, &r1);
      for (int64_t r = r0; r < r1; r++) {
        rescale_span(x->type, xd + r * xrb, y->type, yd + r * yrb, first, x->c, n->dyadic[j], y->lo,
                     y->hi);
      }
    }
    first += x->c;
  }
  for (int64_t r = 0; r < rows; r++) qrt_row_finish(y->type, yd + r * yrb, y->c);
}
