/* The fast conv kernels (src/qrt/convf.h) against the scalar reference, bit for bit: random
 * single-CONV models (validated), the reference output from hawq_qrt_run on the node alone, the
 * fast output from qrt_convf_pack + qrt_convf_run, compared byte for byte (packed rows' unused
 * nibbles included) for every level this CPU has, with 1, 2 and 3 threads. Shapes: odd channel
 * counts, K and C off the block sizes, strides 1-3, dilation, asymmetric padding, groups and
 * depthwise, 1x1 to 7x7 and FC kernels, batch 1-3, 4- and 8-bit inputs, weights and outputs,
 * residuals of every type, zero dyadics, and accumulators at the validated int32 bound; with
 * 16-bit outputs, a following requantization fused into the VNNI kernel (qrt_convf_fuse_requant)
 * against the reference's own REQUANT.
 * Seed: argv[1] or HAWQ_TEST_SEED (printed either way). */
#include <stdlib.h>

#include "qrt/convf.h"
#include "qrt/qrt.h"
#include "qtest_util.h"
#include "quant/qmodel.h"
#include "test_util.h"

/* ---- Values and their storage ---- */

static int64_t row_bytes(hawq_qtype t, int64_t n) {
  return is4(t) ? (n + 1) / 2 : n * (t == HAWQ_QT_I16 ? 2 : t == HAWQ_QT_I32 ? 4 : 1);
}

static void store(hawq_qtype t, uint8_t *row, int64_t i, int64_t v) {
  if (is4(t)) {
    uint8_t nib = (uint8_t)(v & 0x0F);
    row[i / 2] =
        i % 2 ? (uint8_t)((row[i / 2] & 0x0F) | (nib << 4)) : (uint8_t)((row[i / 2] & 0xF0) | nib);
  } else if (t == HAWQ_QT_U8 || t == HAWQ_QT_I8) {
    row[i] = (uint8_t)v;
  } else if (t == HAWQ_QT_I16) {
    int16_t s = (int16_t)v;
    memcpy(row + 2 * i, &s, 2);
  } else {
    int32_t s = (int32_t)v;
    memcpy(row + 4 * i, &s, 4);
  }
}

static void *xaligned(size_t size, int fill) {
  size = (size + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, size ? size : 64);
  REQUIRE(p, "out of memory");
  memset(p, fill, size ? size : 64);
  return p;
}

/* Random values of tensor t into data (batch samples): mode 0 uniform with lo and hi frequent,
 * 1 all hi, 2 all lo. Packed rows get a zero last nibble, as the format keeps it. */
static void fill_tensor(test_rng *rng, const hawq_qtensor *t, uint8_t *data, int batch, int mode) {
  int64_t rb = row_bytes(t->type, t->c), rows = batch * t->h * t->w;
  for (int64_t r = 0; r < rows; r++) {
    memset(data + r * rb, 0, (size_t)rb);
    for (int64_t i = 0; i < t->c; i++) {
      int64_t pick = mode ? 0 : test_rng_int(rng, 0, 9);
      int64_t v = mode == 1 || pick == 0   ? t->hi
                  : mode == 2 || pick == 1 ? t->lo
                                           : test_rng_int(rng, t->lo, t->hi);
      store(t->type, data + r * rb, i, v);
    }
  }
}

/* ---- Models ---- */

static int ilog2(int64_t v) {
  int l = 0;
  while (v > 1) v >>= 1, l++;
  return l;
}

/* A dyadic mapping magnitudes about `from` to about `to`; now and then the zero dyadic. */
static hawq_dyadic scale_dyadic(test_rng *rng, int64_t from, int64_t to) {
  int shift = ilog2(from < 1 ? 1 : from) - ilog2(to < 1 ? 1 : to);
  hawq_dyadic d = {(int32_t)test_rng_int(rng, 1 << 30, INT32_MAX), 0};
  int64_t c = 30 + shift + test_rng_int(rng, -1, 2);
  d.c = (int32_t)(c < 1 ? 1 : c > 62 ? 62 : c);
  if (test_rng_int(rng, 0, 39) == 0) d.m = 0, d.c = 1;
  return d;
}

#define T_IN ((1u << HAWQ_QT_U4) | (1u << HAWQ_QT_I4) | (1u << HAWQ_QT_U8) | (1u << HAWQ_QT_I8))
#define T_ALL (T_IN | (1u << HAWQ_QT_I16) | (1u << HAWQ_QT_I32))

typedef struct conv_spec {
  int64_t h, w, c, k;
  int groups, kh, kw, sh, sw, dh, dw, pad[4];
  hawq_qtype xt, yt, rt;
  int64_t xlo, xhi, ylo, yhi, rlo, rhi;
  int bits;
  int residual;
  int extreme; /* 0 random; +1 / -1: all x at one end, all weights +-max, bias at the bound */
  int xmode;   /* fill mode of x when extreme: 1 all hi, 2 all lo */
  int fuse;    /* with a 16-bit y: y -> REQUANT -> y2, fused into the kernel where it can be */
} conv_spec;

/* A CONV with zero weights and bias from `from` to `to` (an operand's producer, the logits'
 * consumer): it makes the model valid; only the node under test is run. */
static void placeholder(hawq_qmodel *m, int from, int to, int kh, int kw, const int *pad) {
  int node = hawq_qmodel_add_node(m, HAWQ_QOP_CONV, "placeholder", 1, &from, to);
  REQUIRE(node >= 0, "add_node");
  hawq_qnode *n = &m->nodes[node];
  set_geometry(n, kh, kw, 1, 1, 1, 1, pad);
  n->groups = 1;
  n->weight_bits = 8;
  int64_t k = m->tensors[to].c, len = (int64_t)kh * kw * m->tensors[from].c;
  n->weight = xcalloc((size_t)(k * len), 1);
  n->bias = xcalloc((size_t)k, sizeof *n->bias);
  n->n_dyadic = (int)k;
  n->dyadic = xcalloc((size_t)k, sizeof *n->dyadic);
  for (int64_t i = 0; i < k; i++) n->dyadic[i] = (hawq_dyadic){1 << 30, 30};
}

static int operand(hawq_qmodel *m, const char *name, hawq_qtype t, int64_t lo, int64_t hi,
                   int64_t h, int64_t w, int64_t c) {
  int id = hawq_qmodel_add_tensor(m, name, t, (int32_t)lo, (int32_t)hi, h, w, c, 0.5);
  int pad[4] = {(int)h - 1, (int)w - 1, 0, 0};
  placeholder(m, m->input, id, 1, 1, pad);
  return id;
}

static void set_weight(hawq_qnode *n, int64_t len, int64_t k, int64_t i, int64_t v) {
  if (n->weight_bits > 4) {
    n->weight[k * len + i] = (int8_t)v;
  } else {
    store(HAWQ_QT_I4, (uint8_t *)n->weight + k * ((len + 1) / 2), i, v);
  }
}

/* The model of spec s: pixels -> x (-> residual) -> conv -> y -> logits; *node is the conv. */
static hawq_qmodel *build(test_rng *rng, const conv_spec *s, int *node) {
  hawq_qmodel *m = hawq_qmodel_new();
  REQUIRE(m, "qmodel_new");
  m->input = hawq_qmodel_add_tensor(m, "pixels", HAWQ_QT_U8, 0, 255, 1, 1, 1, 1.0 / 255);
  int x = operand(m, "x", s->xt, s->xlo, s->xhi, s->h, s->w, s->c);
  int64_t p = out_size(s->h, s->kh, s->sh, s->dh, s->pad[0], s->pad[2]);
  int64_t q = out_size(s->w, s->kw, s->sw, s->dw, s->pad[1], s->pad[3]);
  int res = s->residual ? operand(m, "residual", s->rt, s->rlo, s->rhi, p, q, s->k) : -1;
  int y = hawq_qmodel_add_tensor(m, "y", s->yt, (int32_t)s->ylo, (int32_t)s->yhi, p, q, s->k, 0.25);
  int ins[2] = {x, res};
  *node = hawq_qmodel_add_node(m, HAWQ_QOP_CONV, "conv", res >= 0 ? 2 : 1, ins, y);
  REQUIRE(*node >= 0, "add_node");
  hawq_qnode *n = &m->nodes[*node];
  set_geometry(n, s->kh, s->kw, s->sh, s->sw, s->dh, s->dw, s->pad);
  n->groups = s->groups;
  n->weight_bits = s->bits;
  int64_t len = (int64_t)s->kh * s->kw * (s->c / s->groups), wmax = (1 << (s->bits - 1)) - 1;
  n->weight = xcalloc((size_t)(s->k * (s->bits <= 4 ? (len + 1) / 2 : len)), 1);
  n->bias = xcalloc((size_t)s->k, sizeof *n->bias);
  n->n_dyadic = (int)s->k;
  n->dyadic = xcalloc((size_t)s->k, sizeof *n->dyadic);
  int64_t xmax = max_abs(s->xlo, s->xhi), yhalf = max_abs(s->ylo, s->yhi);
  for (int64_t k = 0; k < s->k; k++) {
    int64_t sum = 0;
    for (int64_t i = 0; i < len; i++) {
      int64_t w = s->extreme                     ? s->extreme * wmax
                  : test_rng_int(rng, 0, 5) == 0 ? 0
                                                 : test_rng_int(rng, -wmax, wmax);
      set_weight(n, len, k, i, w);
      sum += w < 0 ? -w : w;
    }
    int64_t room = INT32_MAX - xmax * sum;
    REQUIRE(room >= 0, "random weights break the bound");
    if (s->extreme) {
      /* x all at the end whose product with w has the bias's sign: |acc| = 2^31 - 1 */
      int64_t xv = s->xmode == 2 ? s->xlo : s->xhi, sign = (xv < 0 ? -1 : 1) * s->extreme;
      n->bias[k] = (int32_t)(sign * room);
    } else {
      int64_t typical = xmax * wmax * (ilog2(len) + 1);
      n->bias[k] = (int32_t)test_rng_int(rng, -(typical < room ? typical : room),
                                         typical < room ? typical : room);
    }
    n->dyadic[k] = s->extreme ? (hawq_dyadic){INT32_MAX, 31}
                              : scale_dyadic(rng, xmax * wmax * (ilog2(len) + 1), yhalf);
  }
  if (res >= 0) n->residual_dyadic = scale_dyadic(rng, max_abs(s->rlo, s->rhi), yhalf);
  if (res >= 0 && n->residual_dyadic.m && test_rng_int(rng, 0, 5) == 0) {
    /* multipliers at the top of the range, where the VNNI epilogue's 16-bit split of m changes
     * form (m >= 2^31 - 2^15), and just below it */
    n->residual_dyadic.m = test_rng_int(rng, 0, 1)
                               ? (int32_t)(INT32_MAX - test_rng_int(rng, 0, 32767))
                               : (int32_t)(INT32_MAX - 32768 - test_rng_int(rng, 0, 255));
  }
  int last = y; /* what the logits' placeholder reads */
  if (s->yt == HAWQ_QT_I16 && s->fuse) {
    int64_t lo, hi;
    hawq_qtype t = rand_type(rng, (1u << HAWQ_QT_U8) | (1u << HAWQ_QT_I8), &lo, &hi);
    last = hawq_qmodel_add_tensor(m, "y2", t, (int32_t)lo, (int32_t)hi, p, q, s->k, 0.5);
    int rq = hawq_qmodel_add_node(m, HAWQ_QOP_REQUANT, "requant", 1, &y, last);
    REQUIRE(rq == *node + 1, "add_node");
    hawq_qnode *r = &m->nodes[rq];
    r->n_dyadic = 1;
    r->dyadic = xcalloc(1, sizeof *r->dyadic);
    /* about the ratio of the ranges, or any shift the fused form takes (c in 17..62) */
    r->dyadic[0] = test_rng_int(rng, 0, 1)
                       ? scale_dyadic(rng, max_abs(s->ylo, s->yhi), max_abs(lo, hi))
                       : (hawq_dyadic){(int32_t)test_rng_int(rng, 1 << 30, INT32_MAX),
                                       (int32_t)test_rng_int(rng, 17, 62)};
  }
  int logits = hawq_qmodel_add_tensor(m, "logits", HAWQ_QT_I32, INT32_MIN, INT32_MAX, 1, 1, 3, 1);
  int pad[4] = {0, 0, 0, 0};
  placeholder(m, last, logits, (int)p, (int)q, pad);
  m->output = logits;
  return m;
}

/* ---- Running and comparing ---- */

static const char *const isa_label[HAWQ_ISA_COUNT] = {"scalar", "avx2", "avx512vnni"};
static int have[HAWQ_ISA_COUNT];
static int64_t cases = 0, fast_runs[HAWQ_ISA_COUNT], unsupported[HAWQ_ISA_COUNT];
static int64_t fused_runs = 0; /* runs with a fused requantization compared */
static int64_t outputs_inside = 0, outputs_seen = 0;

static void describe(const conv_spec *s, int batch, char *buf, size_t size) {
  snprintf(buf, size,
           "x %lldx%lldx%lld %s [%lld,%lld] k %lld g %d kernel %dx%d stride %dx%d dil %dx%d pads "
           "%d %d %d %d bits %d y %s [%lld,%lld] res %s batch %d extreme %d",
           (long long)s->h, (long long)s->w, (long long)s->c, hawq_qtype_name(s->xt),
           (long long)s->xlo, (long long)s->xhi, (long long)s->k, s->groups, s->kh, s->kw, s->sh,
           s->sw, s->dh, s->dw, s->pad[0], s->pad[1], s->pad[2], s->pad[3], s->bits,
           hawq_qtype_name(s->yt), (long long)s->ylo, (long long)s->yhi,
           s->residual ? hawq_qtype_name(s->rt) : "none", batch, s->extreme);
}

static void run_case(test_rng *rng, const conv_spec *s, const char *label, int batch) {
  REQUIRE(batch >= 1 && batch <= 3, "batch %d", batch);
  int node;
  hawq_qmodel *m = build(rng, s, &node);
  char what[512];
  describe(s, batch, what, sizeof what);
  hawq_error err;
  hawq_status st = hawq_qmodel_validate(m, label, &err);
  CHECK(st == HAWQ_OK, "%s: validate: %s (%s)", label, err.msg, what);
  if (st != HAWQ_OK) {
    hawq_qmodel_destroy(m);
    return;
  }
  cases++;
  const hawq_qnode *n = &m->nodes[node];
  size_t ws_size = hawq_qrt_workspace_size(m, batch);
  uint8_t *ws = xaligned(ws_size, 0xA5);
  uint8_t *xd = hawq_qrt_tensor(m, ws, batch, n->inputs[0]);
  fill_tensor(rng, &m->tensors[n->inputs[0]], xd, batch, s->extreme ? s->xmode : 0);
  const uint8_t *rd = NULL;
  if (n->n_inputs == 2) {
    uint8_t *r = hawq_qrt_tensor(m, ws, batch, n->inputs[1]);
    fill_tensor(rng, &m->tensors[n->inputs[1]], r, batch, 0);
    rd = r;
  }
  /* the conv alone (and its requantization): its inputs are in their slots */
  const hawq_qnode *rq = node + 1 < m->n_nodes && m->nodes[node + 1].op == HAWQ_QOP_REQUANT
                             ? &m->nodes[node + 1]
                             : NULL;
  hawq_qmodel view = *m;
  view.nodes = m->nodes + node;
  view.n_nodes = rq ? 2 : 1;
  uint8_t pixels[3] = {0, 0, 0}; /* batch x 1 x 1 x 1 */
  hawq_qrt_run(&view, pixels, batch, ws, NULL);
  const hawq_qtensor *y = &m->tensors[n->output];
  size_t ybytes = (size_t)batch * (size_t)hawq_qtensor_bytes(y);
  const uint8_t *want = hawq_qrt_tensor(m, ws, batch, n->output);
  {
    int64_t lo = y->lo, hi = y->hi, count = batch * y->h * y->w * y->c,
            rb = row_bytes(y->type, y->c);
    for (int64_t i = 0; i < count; i++) {
      int64_t v = hawq_qrow_get(y->type, want + (i / y->c) * rb, i % y->c);
      outputs_inside += v > lo && v < hi;
    }
    outputs_seen += count;
  }

  for (int isa = HAWQ_ISA_AVX2; isa < HAWQ_ISA_COUNT; isa++) {
    if (!have[isa]) continue;
    if (!qrt_convf_supported(m, n, (hawq_isa)isa)) {
      unsupported[isa]++;
      continue;
    }
    size_t psize = qrt_convf_packed_size(m, n, (hawq_isa)isa);
    CHECK(psize > 0, "%s: %s: packed size 0", label, isa_label[isa]);
    uint8_t *packed = xaligned(psize, 0x5A);
    qrt_convf_pack(m, n, (hawq_isa)isa, packed);
    /* the requantization fused where it can be (the reference computed it on its own) */
    bool fused = rq && qrt_convf_can_fuse_requant(m, n, rq, (hawq_isa)isa);
    if (fused) qrt_convf_fuse_requant(m, rq, packed);
    size_t y2bytes =
        fused ? (size_t)batch * (size_t)hawq_qtensor_bytes(&m->tensors[rq->output]) : 0;
    const uint8_t *want2 = fused ? hawq_qrt_tensor(m, ws, batch, rq->output) : NULL;
    for (int threads = 1; threads <= 3; threads++) {
      size_t ssize = qrt_convf_scratch_size(m, n, (hawq_isa)isa, batch, threads);
      uint8_t *scratch = xaligned(ssize, 0x3C);
      uint8_t *got = xaligned(ybytes, 0xA5 ^ threads);
      uint8_t *got2 = fused ? xaligned(y2bytes, 0x96 ^ threads) : NULL;
      qrt_convf_run(m, n, (hawq_isa)isa, packed, xd, rd, got, got2, scratch, batch, threads);
      fast_runs[isa]++;
      fused_runs += fused;
      size_t first = 0, first2 = 0;
      while (first < ybytes && got[first] == want[first]) first++;
      while (first2 < y2bytes && got2[first2] == want2[first2]) first2++;
      CHECK(first == ybytes,
            "%s: %s, %d threads: output byte %zu of %zu differs: got 0x%02x, expected 0x%02x "
            "(%s)",
            label, isa_label[isa], threads, first, ybytes, first < ybytes ? got[first] : 0,
            first < ybytes ? want[first] : 0, what);
      CHECK(first2 == y2bytes,
            "%s: %s, %d threads: fused requantization (c %d) byte %zu of %zu differs: got 0x%02x, "
            "expected 0x%02x (%s)",
            label, isa_label[isa], threads, rq ? rq->dyadic[0].c : 0, first2, y2bytes,
            first2 < y2bytes ? got2[first2] : 0, first2 < y2bytes ? want2[first2] : 0, what);
      free(scratch);
      free(got);
      free(got2);
      if (first != ybytes || first2 != y2bytes) break;
    }
    free(packed);
  }
  free(ws);
  hawq_qmodel_destroy(m);
}

/* ---- Shapes ---- */

enum { K_CONV, K_DEPTHWISE, K_POINTWISE, K_FC, K_WIDE, K_STEM, K_COUNT };

static void random_spec(test_rng *rng, conv_spec *s, int kind) {
  memset(s, 0, sizeof *s);
  int depthwise = kind == K_DEPTHWISE, pointwise = kind == K_POINTWISE;
  s->groups = depthwise ? (int)test_rng_int(rng, 1, test_rng_int(rng, 0, 2) ? 9 : 90)
                        : (int)test_rng_int(rng, 1, 3);
  s->c = s->groups * (depthwise ? 1 : test_rng_int(rng, 1, 7));
  s->k = s->groups * test_rng_int(rng, 1, depthwise ? 2 : 7);
  s->kh = pointwise ? 1 : (int)test_rng_int(rng, 1, 5);
  s->kw = pointwise ? 1 : (int)test_rng_int(rng, 1, 5);
  s->sh = (int)test_rng_int(rng, 1, 3), s->sw = (int)test_rng_int(rng, 1, 3);
  s->dh = pointwise || test_rng_int(rng, 0, 1) ? 1 : (int)test_rng_int(rng, 1, 3);
  s->dw = pointwise || test_rng_int(rng, 0, 1) ? 1 : (int)test_rng_int(rng, 1, 3);
  for (int k = 0; k < 4; k++) {
    s->pad[k] = pointwise && test_rng_int(rng, 0, 1) ? 0 : (int)test_rng_int(rng, 0, 3);
  }
  if (kind == K_WIDE) { /* several blocks and k-groups, C a multiple of 4 or not, wide rows */
    s->groups = test_rng_int(rng, 0, 3) == 0 ? 2 : 1;
    s->c = s->groups * test_rng_int(rng, 1, 40);
    s->k = s->groups * test_rng_int(rng, 1, 70);
    s->kh = s->kw = (int)(test_rng_int(rng, 0, 1) * 2 + 1);
    s->sh = s->sw = (int)test_rng_int(rng, 1, 2);
    s->dh = s->dw = 1;
    int p = test_rng_int(rng, 0, 2) ? s->kh / 2 : 0;
    for (int k = 0; k < 4; k++) s->pad[k] = p;
  }
  if (kind == K_STEM) { /* 7x7 stride 2 pad 3 from few channels */
    s->groups = 1;
    s->c = test_rng_int(rng, 1, 4);
    s->k = test_rng_int(rng, 1, 40);
    s->kh = s->kw = 7;
    s->sh = s->sw = 2;
    s->dh = s->dw = 1;
    for (int k = 0; k < 4; k++) s->pad[k] = 3;
  }
  int64_t eh = (int64_t)(s->kh - 1) * s->dh + 1, ew = (int64_t)(s->kw - 1) * s->dw + 1;
  int64_t minh = eh - s->pad[0] - s->pad[2], minw = ew - s->pad[1] - s->pad[3];
  s->h = (minh > 1 ? minh : 1) + test_rng_int(rng, 0, kind == K_WIDE ? 10 : 6);
  s->w = (minw > 1 ? minw : 1) + test_rng_int(rng, 0, kind == K_WIDE ? 34 : 20);
  if (kind == K_FC) { /* Gemm: the kernel covers the input, output 1 x 1 x K */
    s->groups = 1;
    s->c = test_rng_int(rng, 1, 40);
    s->k = test_rng_int(rng, 1, 40);
    s->h = test_rng_int(rng, 1, 4), s->w = test_rng_int(rng, 1, 4);
    s->kh = (int)s->h, s->kw = (int)s->w;
    s->sh = s->sw = s->dh = s->dw = 1;
    memset(s->pad, 0, sizeof s->pad);
  }
  s->xt = rand_type(rng, T_IN, &s->xlo, &s->xhi);
  s->yt = rand_type(rng, T_ALL, &s->ylo, &s->yhi);
  s->bits = (int)test_rng_int(rng, 2, 8);
  if (test_rng_int(rng, 0, 2) == 0) s->bits = 4;
  if (test_rng_int(rng, 0, 2) == 0) s->bits = 8;
  s->residual = test_rng_int(rng, 0, 2) == 0;
  s->rt = rand_type(rng, T_ALL, &s->rlo, &s->rhi);
  s->fuse = (int)test_rng_int(rng, 0, 1);
  if (s->fuse && test_rng_int(rng, 0, 1)) s->yt = HAWQ_QT_I16, type_range(s->yt, &s->ylo, &s->yhi);
}

static void test_random(test_rng *rng) {
  static const char *const labels[K_COUNT] = {"conv", "depthwise", "1x1", "fc", "wide", "stem"};
  static const int counts[K_COUNT] = {300, 60, 100, 80, 160, 30};
  for (int kind = 0; kind < K_COUNT; kind++) {
    for (int it = 0; it < counts[kind]; it++) {
      conv_spec s;
      random_spec(rng, &s, kind);
      run_case(rng, &s, labels[kind], (int)test_rng_int(rng, 1, 3));
    }
  }
}

/* Each input type and output type, with and without residuals of each type. */
static void test_types(test_rng *rng) {
  static const hawq_qtype in[4] = {HAWQ_QT_U4, HAWQ_QT_I4, HAWQ_QT_U8, HAWQ_QT_I8};
  for (int xi = 0; xi < 4; xi++) {
    for (int yt = 0; yt < HAWQ_QT_COUNT; yt++) {
      for (int rt = -1; rt < HAWQ_QT_COUNT; rt++) {
        conv_spec s;
        random_spec(rng, &s, (xi + yt + rt) & 1 ? K_CONV : K_WIDE);
        s.xt = in[xi];
        type_range(s.xt, &s.xlo, &s.xhi);
        s.yt = (hawq_qtype)yt;
        type_range(s.yt, &s.ylo, &s.yhi);
        s.residual = rt >= 0;
        if (rt >= 0) s.rt = (hawq_qtype)rt, type_range(s.rt, &s.rlo, &s.rhi);
        if (s.groups > 1 && s.k / s.groups % 2) s.groups = 1; /* (4-bit outputs need even K/g) */
        s.bits = xi & 1 ? 4 : 8;
        run_case(rng, &s, "types", (int)test_rng_int(rng, 1, 2));
      }
    }
  }
}

/* |acc| reaches 2^31 - 1 exactly, both signs, inputs at either end (signed inputs shifted by
 * the VNNI kernel wrap around in between). */
static void test_bound(test_rng *rng) {
  static const hawq_qtype in[4] = {HAWQ_QT_U4, HAWQ_QT_I4, HAWQ_QT_U8, HAWQ_QT_I8};
  for (int it = 0; it < 32; it++) {
    conv_spec s;
    random_spec(rng, &s, it & 4 ? K_WIDE : K_CONV);
    memset(s.pad, 0, sizeof s.pad); /* every tap inside: acc reaches the bound */
    s.h = (int64_t)(s.kh - 1) * s.dh + 1 + test_rng_int(rng, 0, 3);
    s.w = (int64_t)(s.kw - 1) * s.dw + 1 + test_rng_int(rng, 0, 3);
    s.xt = in[it & 3];
    type_range(s.xt, &s.xlo, &s.xhi);
    s.bits = it & 8 ? 8 : 4;
    s.extreme = it & 16 ? 1 : -1;
    s.xmode = it & 1 ? 2 : 1;
    if (s.xt == HAWQ_QT_U8 || s.xt == HAWQ_QT_U4) s.xmode = 1;
    s.yt = HAWQ_QT_I32, s.ylo = INT32_MIN, s.yhi = INT32_MAX;
    s.residual = it & 2;
    s.rt = HAWQ_QT_I32, s.rlo = INT32_MIN, s.rhi = INT32_MAX;
    run_case(rng, &s, "bound", (int)test_rng_int(rng, 1, 2));
  }
}

/* ResNet-like layers, scaled down: blocks, 2-row tiles (Q = 7), in-place 1x1s. */
static void test_layers(test_rng *rng) {
  static const int shapes[][7] = {
      /* h, c, k, kernel, stride, pad, groups */
      {8, 64, 64, 3, 1, 1, 1},
      {7, 64, 48, 3, 1, 1, 1},
      {14, 32, 40, 3, 2, 1, 1},
      {7, 96, 32, 1, 1, 0, 1},
      {9, 64, 96, 1, 1, 0, 1},
      {15, 3, 64, 7, 2, 3, 1},
      {7, 128, 20, 1, 2, 0, 1},
      {6, 48, 48, 3, 1, 1, 2},
      {10, 16, 16, 3, 1, 1, 16},
      {29, 16, 33, 3, 1, 1, 1},
      {30, 16, 64, 3, 1, 1, 1},
      {25, 8, 60, 3, 1, 1, 1},
      {4, 512, 256, 3, 1, 1, 1},
      /* rows of more than 64 pixels of an odd channel count (4-bit rows unpacked 64 pixels at a
       * time), strided 1x1s (only the rows and columns they read are filled), with padding */
      {70, 3, 16, 7, 2, 3, 1},
      {67, 5, 8, 3, 1, 1, 1},
      {12, 16, 24, 1, 2, 1, 1},
      {13, 7, 9, 1, 3, 0, 1},
      /* 1 and 3 channels (4-bit rows unpacked 32 or 16 pixels at a time in registers): rows
       * with and without a remainder */
      {70, 1, 8, 3, 1, 1, 1},
      {64, 1, 16, 3, 2, 0, 1},
      {32, 3, 8, 3, 2, 1, 1},
      {37, 3, 12, 3, 1, 1, 1},
      /* 4-bit 1x1s unpacked tile by tile, and not (a channel count that is no whole unit;
       * weights over 1 MiB, done k-group-major) */
      {9, 6, 20, 1, 1, 0, 1},
      {2, 1024, 1040, 1, 1, 0, 1}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    for (int variant = 0; variant < 4; variant++) {
      const int *v = shapes[i];
      conv_spec s;
      memset(&s, 0, sizeof s);
      s.h = s.w = v[0], s.c = v[1], s.k = v[2];
      s.kh = s.kw = v[3], s.sh = s.sw = v[4];
      s.dh = s.dw = 1;
      for (int k = 0; k < 4; k++) s.pad[k] = v[5];
      s.groups = v[6];
      s.xt = variant == 1 ? HAWQ_QT_U4 : variant == 3 ? HAWQ_QT_I4 : HAWQ_QT_U8;
      s.yt = variant == 1 ? HAWQ_QT_U4 : variant == 2 ? HAWQ_QT_I8 : HAWQ_QT_U8;
      type_range(s.xt, &s.xlo, &s.xhi);
      type_range(s.yt, &s.ylo, &s.yhi);
      s.bits = variant & 1 ? 4 : 8;
      s.residual = variant == 2;
      s.rt = HAWQ_QT_I16, s.rlo = -32767, s.rhi = 32767;
      run_case(rng, &s, "layer", 1 + variant % 3);
    }
  }
}

/* Levels never claim what they do not handle. */
static void test_unsupported(test_rng *rng) {
  for (int it = 0; it < 10; it++) {
    conv_spec s;
    random_spec(rng, &s, K_CONV);
    s.xt = it & 1 ? HAWQ_QT_I16 : HAWQ_QT_I32;
    s.xlo = -1000, s.xhi = 1000;
    int node;
    hawq_qmodel *m = build(rng, &s, &node);
    for (int isa = 0; isa < HAWQ_ISA_COUNT; isa++) {
      CHECK(!qrt_convf_supported(m, &m->nodes[node], (hawq_isa)isa), "%s claims a %s-input conv",
            isa_label[isa], hawq_qtype_name(s.xt));
    }
    hawq_qmodel_destroy(m);
  }
}

int main(int argc, char **argv) {
  if (argc > 1) setenv("HAWQ_TEST_SEED", argv[1], 1);
  test_rng rng = test_rng_seeded("test_convf");
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  have[HAWQ_ISA_AVX2] = __builtin_cpu_supports("avx2");
  have[HAWQ_ISA_AVX512VNNI] =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
  for (int isa = HAWQ_ISA_AVX2; isa < HAWQ_ISA_COUNT; isa++) {
    if (!have[isa]) printf("test_convf: skipped: CPU lacks %s\n", isa_label[isa]);
  }
  test_unsupported(&rng);
  test_layers(&rng);
  test_bound(&rng);
  test_types(&rng);
  test_random(&rng);
  printf("test_convf: %lld cases, %lld%% of outputs inside (lo, hi)\n", (long long)cases,
         (long long)(outputs_seen ? 100 * outputs_inside / outputs_seen : 0));
  for (int isa = HAWQ_ISA_AVX2; isa < HAWQ_ISA_COUNT; isa++) {
    if (have[isa]) {
      printf("test_convf: %s: %lld runs compared, %lld cases not handled\n", isa_label[isa],
             (long long)fast_runs[isa], (long long)unsupported[isa]);
    }
  }
  if (have[HAWQ_ISA_AVX512VNNI]) {
    printf("test_convf: %lld runs with a fused requantization compared\n", (long long)fused_runs);
    CHECK(fused_runs >= 100, "only %lld fused runs", (long long)fused_runs);
  }
  if (!have[HAWQ_ISA_AVX2] && !have[HAWQ_ISA_AVX512VNNI]) {
    printf("test_convf: no fast level on this CPU: skipped\n");
    return test_report("test_convf") ? 1 : 77;
  }
  return test_report("test_convf");
}
