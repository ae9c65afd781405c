/* The per-pixel and pooling ops (REQUANT, ADD, CONCAT, MAXPOOL, AVGPOOL) written for the
 * compiler's vectoriser: values move through int32 and int64 spans of a fixed chunk, so each
 * step is one plain loop over contiguous integers (loads widen, rescales multiply 32 x 32 -> 64
 * and shift, stores clamp and narrow). Included once per instruction-set level by ops_avx2.c
 * and ops_avx512.c, which define QRT_OPS(name) and are compiled with that level's flags; the
 * arithmetic is the reference's (eltwise.c, pool.c) step for step, so results are identical. */
#include "qrt/ops_fast.h"
#include "qrt/qrt_internal.h"

#define CHUNK 256

/* v[i] = element first + i of a row of type t, i < n. */
static void load_span(hawq_qtype t, const uint8_t *row, int64_t first, int32_t *v, int64_t n) {
  switch (t) {
    case HAWQ_QT_U8:
      for (int64_t i = 0; i < n; i++) v[i] = row[first + i];
      break;
    case HAWQ_QT_I8:
      for (int64_t i = 0; i < n; i++) v[i] = ((const int8_t *)row)[first + i];
      break;
    case HAWQ_QT_I16:
      for (int64_t i = 0; i < n; i++) v[i] = ((const int16_t *)row)[first + i];
      break;
    case HAWQ_QT_I32:
      for (int64_t i = 0; i < n; i++) v[i] = ((const int32_t *)row)[first + i];
      break;
    default:
      for (int64_t i = 0; i < n; i++) v[i] = hawq_qrow_get(t, row, first + i);
      break;
  }
}

/* y[i] = rescale(x[i], d) (hawq_rescale, in int64). */
static void rescale_span(const int32_t *x, int64_t *y, int64_t n, hawq_dyadic d) {
  int64_t round = (int64_t)1 << (d.c - 1), m = d.m;
  int c = d.c;
  for (int64_t i = 0; i < n; i++) y[i] = ((int64_t)x[i] * m + round) >> c;
}

/* Elements first + i of a row of type t = clamp(v[i], lo, hi), i < n. */
static void store_span(hawq_qtype t, const int64_t *v, int64_t n, int32_t lo, int32_t hi,
                       uint8_t *row, int64_t first) {
  switch (t) {
    case HAWQ_QT_U8:
      for (int64_t i = 0; i < n; i++) row[first + i] = (uint8_t)hawq_clamp64(v[i], lo, hi);
      break;
    case HAWQ_QT_I8:
      for (int64_t i = 0; i < n; i++)
        ((int8_t *)row)[first + i] = (int8_t)hawq_clamp64(v[i], lo, hi);
      break;
    case HAWQ_QT_I16:
      for (int64_t i = 0; i < n; i++)
        ((int16_t *)row)[first + i] = (int16_t)hawq_clamp64(v[i], lo, hi);
      break;
    case HAWQ_QT_I32:
      for (int64_t i = 0; i < n; i++)
        ((int32_t *)row)[first + i] = (int32_t)hawq_clamp64(v[i], lo, hi);
      break;
    default:
      for (int64_t i = 0; i < n; i++)
        hawq_qrow_set(t, row, first + i, (int32_t)hawq_clamp64(v[i], lo, hi));
      break;
  }
}

/* hawq_rescale in 32-bit lanes, for inputs of at most 16 bits (|x| <= 2^15) and 17 <= c <= 46:
 * with m = mhi * 2^16 + mlo (0 <= mlo < 2^16), x * m + 2^(c-1) = 2^16 (x mhi + 2^(c-17)) + x mlo,
 * and since floor(floor(a / 2^16) / 2^k) = floor(a / 2^(16+k)),
 *   rescale(x) = (x mhi + 2^(c-17) + ((x mlo) >> 16)) >> (c - 16),
 * every term in int32: |x mhi| <= 2^30, 2^(c-17) <= 2^29, |x mlo| < 2^31. For c >= 48,
 * |x m| < 2^46 <= 2^(c-1) - 2^46 makes every result 0, as does m = 0. */
typedef struct rescale32 {
  int32_t mhi, mlo, round;
  int shift;
} rescale32;

static bool rescale32_make(hawq_dyadic d, rescale32 *r) {
  if (d.m == 0 || d.c >= 48) { /* every result 0: 0 * 0 + 0 + 0 >> 0 */
    *r = (rescale32){0, 0, 0, 0};
    return true;
  }
  if (d.c < 17 || d.c > 46) return false;
  *r = (rescale32){d.m >> 16, d.m & 0xFFFF, 1 << (d.c - 17), d.c - 16};
  return true;
}

static int32_t rescale32_apply(int32_t x, rescale32 r) {
  return (x * r.mhi + r.round + ((x * r.mlo) >> 16)) >> r.shift;
}

static bool narrow(hawq_qtype t) {
  return t == HAWQ_QT_U8 || t == HAWQ_QT_I8 || t == HAWQ_QT_I16;
}

/* One loop per (input, output) type pair, so that each vectorises on its own. */
#define RESCALE32_LOOP(XT, YT)                                   \
  for (int64_t i = 0; i < n; i++) {                              \
    int32_t v = rescale32_apply(((const XT *)x)[i], r);          \
    ((YT *)yr)[first + i] = (YT)(v < lo ? lo : v > hi ? hi : v); \
  }
#define RESCALE32_TO(XT)                 \
  switch (y->type) {                     \
    case HAWQ_QT_U8:                     \
      RESCALE32_LOOP(XT, uint8_t) break; \
    case HAWQ_QT_I8:                     \
      RESCALE32_LOOP(XT, int8_t) break;  \
    default:                             \
      RESCALE32_LOOP(XT, int16_t) break; \
  }

/* rescale_row for narrow types with a 32-bit dyadic. */
static void rescale_row32(hawq_qtype xt, const uint8_t *x, rescale32 r, const hawq_qtensor *y,
                          uint8_t *yr, int64_t first, int64_t n) {
  const int32_t lo = y->lo, hi = y->hi; /* locals: the stores may alias y for the compiler */
  switch (xt) {
    case HAWQ_QT_U8:
      RESCALE32_TO(uint8_t)
      break;
    case HAWQ_QT_I8:
      RESCALE32_TO(int8_t)
      break;
    default:
      RESCALE32_TO(int16_t)
      break;
  }
}

/* rescale_row32 into a packed 4-bit row from an even element first: 16-bit inputs pair by pair;
 * 8-bit ones through an int16 span of a chunk, whose pairs then become bytes (low nibble
 * first). An odd n's last value keeps its byte's high nibble (qrt_row_finish zeroes it at the
 * row's end; a concat's next input fills it). */
static void rescale_row32_packed(hawq_qtype xt, const uint8_t *x, rescale32 r,
                                 const hawq_qtensor *y, uint8_t *yr, int64_t first, int64_t n) {
  if (xt == HAWQ_QT_I16) {
    /* The residual stream requantized for a 4-bit conv: two 16-bit values per 32-bit load,
     * one output byte per pair, in one loop the compiler vectorizes. */
    uint8_t *out = yr + (first >> 1);
    int32_t lo = y->lo, hi = y->hi;
    for (int64_t j = 0; j < n >> 1; j++) {
      uint32_t w;
      memcpy(&w, x + 4 * j, sizeof w);
      int32_t a = rescale32_apply((int16_t)(w & 0xFFFF), r);
      int32_t b = rescale32_apply((int32_t)w >> 16, r);
      a = a < lo ? lo : a > hi ? hi : a;
      b = b < lo ? lo : b > hi ? hi : b;
      out[j] = (uint8_t)((a & 15) | ((b & 15) << 4));
    }
    if (n & 1) {
      int16_t t;
      memcpy(&t, x + 2 * (n - 1), sizeof t);
      int32_t a = rescale32_apply(t, r);
      a = a < lo ? lo : a > hi ? hi : a;
      out[n >> 1] = (uint8_t)((out[n >> 1] & 0xF0) | (a & 15));
    }
    return;
  }
  int16_t v[CHUNK];
  hawq_qtensor span = *y;
  span.type = HAWQ_QT_I16; /* the chunk's values, clamped to y's range */
  for (int64_t i = 0; i < n; i += CHUNK) {
    int64_t k = n - i < CHUNK ? n - i : CHUNK;
    rescale_row32(xt, x + i * (xt == HAWQ_QT_I16 ? 2 : 1), r, &span, (uint8_t *)v, 0, k);
    uint8_t *out = yr + ((first + i) >> 1);
    for (int64_t j = 0; j + 1 < k; j += 2) {
      out[j >> 1] = (uint8_t)((v[j] & 15) | ((v[j + 1] & 15) << 4));
    }
    if (k & 1) out[k >> 1] = (uint8_t)((out[k >> 1] & 0xF0) | (v[k - 1] & 15));
  }
}

/* Elements [0, n) of row x (type xt), rescaled by d, into elements [first, first + n) of row y. */
static void rescale_row(hawq_qtype xt, const uint8_t *x, hawq_dyadic d, const hawq_qtensor *y,
                        uint8_t *yr, int64_t first, int64_t n) {
  rescale32 r;
  if (narrow(xt) && narrow(y->type) && rescale32_make(d, &r)) {
    rescale_row32(xt, x, r, y, yr, first, n);
    return;
  }
  if (narrow(xt) && (y->type == HAWQ_QT_U4 || y->type == HAWQ_QT_I4) && !(first & 1) &&
      rescale32_make(d, &r)) {
    rescale_row32_packed(xt, x, r, y, yr, first, n);
    return;
  }
  int32_t v[CHUNK];
  int64_t w[CHUNK];
  for (int64_t i = 0; i < n; i += CHUNK) {
    int64_t k = n - i < CHUNK ? n - i : CHUNK;
    load_span(xt, x, i, v, k);
    rescale_span(v, w, k, d);
    store_span(y->type, w, k, y->lo, y->hi, yr, first + i);
  }
}

static void requant(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  int64_t rows = (int64_t)a->batch * y->h * y->w, c = y->c;
  int64_t xrb = qrt_row_bytes(x->type, c), yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      uint8_t *yr = a->out + r * yrb;
      rescale_row(x->type, a->in[0] + r * xrb, n->dyadic[0], y, yr, 0, c);
      qrt_row_finish(y->type, yr, c);
    }
  }
}

static void concat(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *y = &m->tensors[n->output];
  int64_t rows = (int64_t)a->batch * y->h * y->w, yrb = qrt_row_bytes(y->type, y->c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      uint8_t *yr = a->out + r * yrb;
      int64_t first = 0;
      for (int j = 0; j < n->n_inputs; j++) {
        const hawq_qtensor *x = &m->tensors[n->inputs[j]];
        rescale_row(x->type, a->in[j] + r * qrt_row_bytes(x->type, x->c), n->dyadic[j], y, yr,
                    first, x->c);
        first += x->c;
      }
      qrt_row_finish(y->type, yr, y->c);
    }
  }
}

static void add(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *args) {
  const hawq_qtensor *a = &m->tensors[n->inputs[0]], *b = &m->tensors[n->inputs[1]];
  const hawq_qtensor *y = &m->tensors[n->output];
  int64_t rows = (int64_t)args->batch * y->h * y->w, c = y->c;
  int64_t arb = qrt_row_bytes(a->type, c), brb = qrt_row_bytes(b->type, c);
  int64_t yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(args->threads) if (args->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(rows, &r0, &r1);
    int32_t v[CHUNK];
    int64_t sa[CHUNK], sb[CHUNK];
    for (int64_t r = r0; r < r1; r++) {
      uint8_t *yr = args->out + r * yrb;
      for (int64_t i = 0; i < c; i += CHUNK) {
        int64_t k = c - i < CHUNK ? c - i : CHUNK;
        load_span(a->type, args->in[0] + r * arb, i, v, k);
        rescale_span(v, sa, k, n->dyadic[0]);
        load_span(b->type, args->in[1] + r * brb, i, v, k);
        rescale_span(v, sb, k, n->dyadic[1]);
        for (int64_t j = 0; j < k; j++) sa[j] += sb[j];
        store_span(y->type, sa, k, y->lo, y->hi, yr, i);
      }
      qrt_row_finish(y->type, yr, c);
    }
  }
}

/* dst = max(dst, src) over a row of n values (4-bit rows: (n + 1) / 2 bytes). Nibbles are
 * compared in place: the low and high nibbles of each byte apart, as unsigned values after
 * XOR 8 for signed ones (which maps -8..7 to 0..15 in order); an odd row's unused high nibble
 * is 0 in both rows and stays 0. */
static void max_row(hawq_qtype t, uint8_t *dst, const uint8_t *src, int64_t n) {
  switch (t) {
    case HAWQ_QT_U4:
    case HAWQ_QT_I4: {
      uint8_t flip = t == HAWQ_QT_I4 ? 0x88 : 0;
      for (int64_t i = 0; i < (n + 1) >> 1; i++) {
        uint8_t a = (uint8_t)(dst[i] ^ flip), b = (uint8_t)(src[i] ^ flip);
        uint8_t lo = (uint8_t)((a & 15) > (b & 15) ? a & 15 : b & 15);
        uint8_t hi = (uint8_t)((a & 0xF0) > (b & 0xF0) ? a & 0xF0 : b & 0xF0);
        dst[i] = (uint8_t)((lo | hi) ^ flip);
      }
      break;
    }
    case HAWQ_QT_U8:
      for (int64_t i = 0; i < n; i++) dst[i] = src[i] > dst[i] ? src[i] : dst[i];
      break;
    case HAWQ_QT_I8: {
      int8_t *d = (int8_t *)dst;
      const int8_t *s = (const int8_t *)src;
      for (int64_t i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i];
      break;
    }
    case HAWQ_QT_I16: {
      int16_t *d = (int16_t *)dst;
      const int16_t *s = (const int16_t *)src;
      for (int64_t i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i];
      break;
    }
    default: {
      int32_t *d = (int32_t *)dst;
      const int32_t *s = (const int32_t *)src;
      for (int64_t i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i];
      break;
    }
  }
}

static void maxpool(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  int64_t h = x->h, w = x->w, c = x->c, rb = qrt_row_bytes(x->type, c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(a->batch * y->h, &r0, &r1);
    for (int64_t row = r0, b = qrt_quotient(r0, y->h), p = r0 - b * y->h; row < r1;
         row++, b += p + 1 == y->h, p = p + 1 == y->h ? 0 : p + 1) {
      const uint8_t *xs = a->in[0] + b * h * w * rb;
      for (int64_t q = 0; q < y->w; q++) {
        uint8_t *yr = a->out + ((b * y->h + p) * y->w + q) * rb;
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
            } else {
              max_row(x->type, yr, xr, c);
            }
          }
        }
      }
    }
  }
}

static int64_t max64(int64_t a, int64_t b) {
  return a > b ? a : b;
}
static int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

/* As the reference: the window's taps inside the input summed (int32 is exact: validation
 * proved R * S * max|x| < 2^31), then rescaled by the count's dyadic. */
static void avgpool(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  int64_t h = x->h, w = x->w, c = x->c;
  int64_t xrb = qrt_row_bytes(x->type, c), yrb = qrt_row_bytes(y->type, c);
#pragma omp parallel num_threads(a->threads) if (a->threads > 1)
  {
    int64_t r0, r1;
    qrt_thread_range(a->batch * y->h, &r0, &r1);
    int32_t v[CHUNK], sum[CHUNK];
    int64_t out[CHUNK];
    for (int64_t row = r0, b = qrt_quotient(r0, y->h), p = r0 - b * y->h; row < r1;
         row++, b += p + 1 == y->h, p = p + 1 == y->h ? 0 : p + 1) {
      const uint8_t *xs = a->in[0] + b * h * w * xrb;
      int64_t h0 = p * n->stride[0] - n->pad[0], h1 = h0 + n->kernel[0];
      int64_t padded_h = min64(h1, h + n->pad[2]) - h0;
      int64_t ih0 = max64(h0, 0), ih1 = min64(h1, h);
      for (int64_t q = 0; q < y->w; q++) {
        int64_t w0 = q * n->stride[1] - n->pad[1], w1 = w0 + n->kernel[1];
        int64_t padded_w = min64(w1, w + n->pad[3]) - w0;
        int64_t iw0 = max64(w0, 0), iw1 = min64(w1, w);
        int64_t count = n->count_include_pad ? padded_h * padded_w : (ih1 - ih0) * (iw1 - iw0);
        hawq_dyadic d = n->dyadic[count - 1];
        uint8_t *yr = a->out + ((b * y->h + p) * y->w + q) * yrb;
        for (int64_t i = 0; i < c; i += CHUNK) {
          int64_t k = c - i < CHUNK ? c - i : CHUNK;
          for (int64_t j = 0; j < k; j++) sum[j] = 0;
          for (int64_t ih = ih0; ih < ih1; ih++) {
            for (int64_t iw = iw0; iw < iw1; iw++) {
              load_span(x->type, xs + (ih * w + iw) * xrb, i, v, k);
              for (int64_t j = 0; j < k; j++) sum[j] += v[j];
            }
          }
          rescale_span(sum, out, k, d);
          store_span(y->type, out, k, y->lo, y->hi, yr, i);
        }
        qrt_row_finish(y->type, yr, c);
      }
    }
  }
}

void QRT_OPS(run)(const hawq_qmodel *m, const hawq_qnode *n, const qrt_args *a) {
  switch (n->op) {
    case HAWQ_QOP_REQUANT:
      requant(m, n, a);
      break;
    case HAWQ_QOP_CONCAT:
      concat(m, n, a);
      break;
    case HAWQ_QOP_ADD:
      add(m, n, a);
      break;
    case HAWQ_QOP_MAXPOOL:
      maxpool(m, n, a);
      break;
    case HAWQ_QOP_AVGPOOL:
      avgpool(m, n, a);
      break;
    default:
      qrt_run_node_reference(m, n, a);
      break;
  }
}
