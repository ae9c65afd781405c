/* Every integer runtime op on random shapes against a direct reference written here: int64
 * arithmetic on unpacked values, 4-bit unpacking of its own, exact floor division for the
 * rescale. Nothing is shared with src/qrt but the QModel struct it reads. Each case runs on the
 * reference kernels and then on every faster kernel level this CPU has (the vectorised ops and
 * input tables of ops_fast.h, the conv kernels of convf.h), each compared with the same answer.
 * Each case is a validated model: the op's operands are produced by placeholder CONV nodes (zero
 * weights) from a 1 x 1 x 1 pixel input and its output feeds a placeholder FC that makes the I32
 * logits; the test writes random operands into the workspace and runs the op alone (a view of the
 * model holding just that node), then compares exactly. */
#include <stdlib.h>

#include "qrt/convf.h"
#include "qrt/ops_fast.h"
#include "qrt/qrt.h"
#include "qtest_util.h"
#include "quant/qmodel.h"
#include "test_util.h"

/* ---- The format, restated: packing, unpacking, rescale ---- */

static int64_t elem_bytes(hawq_qtype t) {
  return t == HAWQ_QT_I16 ? 2 : t == HAWQ_QT_I32 ? 4 : 1;
}

static int64_t row_bytes(hawq_qtype t, int64_t n) {
  return is4(t) ? (n + 1) / 2 : n * elem_bytes(t);
}

static int64_t load(hawq_qtype t, const uint8_t *row, int64_t i) {
  if (is4(t)) {
    int v = i % 2 ? row[i / 2] >> 4 : row[i / 2] & 0x0F;
    return t == HAWQ_QT_I4 && v >= 8 ? v - 16 : v;
  }
  switch (t) {
    case HAWQ_QT_U8:
      return row[i];
    case HAWQ_QT_I8:
      return (int8_t)row[i];
    case HAWQ_QT_I16: {
      int16_t v;
      memcpy(&v, row + 2 * i, 2);
      return v;
    }
    default: {
      int32_t v;
      memcpy(&v, row + 4 * i, 4);
      return v;
    }
  }
}

static void store(hawq_qtype t, uint8_t *row, int64_t i, int64_t v) {
  if (is4(t)) {
    uint8_t nib = (uint8_t)(v & 0x0F);
    row[i / 2] =
        i % 2 ? (uint8_t)((row[i / 2] & 0x0F) | (nib << 4)) : (uint8_t)((row[i / 2] & 0xF0) | nib);
    return;
  }
  if (t == HAWQ_QT_U8 || t == HAWQ_QT_I8) {
    row[i] = (uint8_t)v;
  } else if (t == HAWQ_QT_I16) {
    int16_t s = (int16_t)v;
    memcpy(row + 2 * i, &s, 2);
  } else {
    int32_t s = (int32_t)v;
    memcpy(row + 4 * i, &s, 4);
  }
}

static int64_t numel(const hawq_qtensor *t, int batch) {
  return batch * t->h * t->w * t->c;
}

/* Values (batch x h x w x c, int64) <-> a tensor slot; pack zeroes each odd row's last nibble. */
static void pack(const hawq_qtensor *t, const int64_t *v, uint8_t *data, int batch) {
  int64_t rb = row_bytes(t->type, t->c), rows = batch * t->h * t->w;
  for (int64_t r = 0; r < rows; r++) {
    memset(data + r * rb, 0, (size_t)rb);
    for (int64_t i = 0; i < t->c; i++) store(t->type, data + r * rb, i, v[r * t->c + i]);
  }
}

static int64_t *unpack(const hawq_qtensor *t, const uint8_t *data, int batch) {
  int64_t rb = row_bytes(t->type, t->c), rows = batch * t->h * t->w;
  int64_t *v = malloc((size_t)numel(t, batch) * sizeof *v);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t i = 0; i < t->c; i++) v[r * t->c + i] = load(t->type, data + r * rb, i);
    if (is4(t->type) && t->c % 2) {
      CHECK((data[r * rb + rb - 1] >> 4) == 0, "tensor '%s' row %lld: padding nibble %d", t->name,
            (long long)r, data[r * rb + rb - 1] >> 4);
    }
  }
  return v;
}

static int64_t ref_rescale(int64_t x, hawq_dyadic d) {
  __int128 num = (__int128)x * d.m + ((__int128)1 << (d.c - 1)), den = (__int128)1 << d.c;
  __int128 q = num / den;
  if (num % den != 0 && num < 0) q -= 1;
  return (int64_t)q;
}

static int64_t clampv(int64_t v, const hawq_qtensor *t) {
  return v < t->lo ? t->lo : v > t->hi ? t->hi : v;
}

/* Weight i of output channel k's row of len values. */
static int64_t weight_at(const hawq_qnode *n, int64_t len, int64_t k, int64_t i) {
  if (n->weight_bits > 4) return n->weight[k * len + i];
  const uint8_t *row = (const uint8_t *)n->weight + k * ((len + 1) / 2);
  return load(HAWQ_QT_I4, row, i);
}

static void set_weight(hawq_qnode *n, int64_t len, int64_t k, int64_t i, int64_t v) {
  if (n->weight_bits > 4) {
    n->weight[k * len + i] = (int8_t)v;
  } else {
    store(HAWQ_QT_I4, (uint8_t *)n->weight + k * ((len + 1) / 2), i, v);
  }
}

/* ---- References: one per op, on unpacked int64 values indexed [b][h][w][c] ---- */

#define AT(t, v, b, i, j, ch) (v)[(((b) * (t)->h + (i)) * (t)->w + (j)) * (t)->c + (ch)]

static void ref_conv(const hawq_qmodel *m, const hawq_qnode *n, int64_t *const *in, int batch,
                     int64_t *out) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  const hawq_qtensor *res = n->n_inputs > 1 && n->inputs[1] >= 0 ? &m->tensors[n->inputs[1]] : NULL;
  int64_t cg = x->c / n->groups, kg = y->c / n->groups, len = n->kernel[0] * n->kernel[1] * cg;
  for (int b = 0; b < batch; b++)
    for (int64_t p = 0; p < y->h; p++)
      for (int64_t q = 0; q < y->w; q++)
        for (int64_t k = 0; k < y->c; k++) {
          int64_t g = k / kg, acc = n->bias[k];
          for (int64_t r = 0; r < n->kernel[0]; r++)
            for (int64_t s = 0; s < n->kernel[1]; s++) {
              int64_t ih = p * n->stride[0] - n->pad[0] + r * n->dilation[0];
              int64_t iw = q * n->stride[1] - n->pad[1] + s * n->dilation[1];
              if (ih < 0 || ih >= x->h || iw < 0 || iw >= x->w) continue;
              for (int64_t ci = 0; ci < cg; ci++) {
                acc += AT(x, in[0], b, ih, iw, g * cg + ci) *
                       weight_at(n, len, k, (r * n->kernel[1] + s) * cg + ci);
              }
            }
          CHECK(acc >= INT32_MIN && acc <= INT32_MAX, "node '%s': accumulator %lld overflows",
                n->name, (long long)acc);
          int64_t v = ref_rescale(acc, n->dyadic[k]);
          if (res) v += ref_rescale(AT(res, in[1], b, p, q, k), n->residual_dyadic);
          AT(y, out, b, p, q, k) = clampv(v, y);
        }
}

static void ref_add(const hawq_qmodel *m, const hawq_qnode *n, int64_t *const *in, int batch,
                    int64_t *out) {
  const hawq_qtensor *y = &m->tensors[n->output];
  for (int64_t i = 0; i < numel(y, batch); i++) {
    out[i] = clampv(ref_rescale(in[0][i], n->dyadic[0]) + ref_rescale(in[1][i], n->dyadic[1]), y);
  }
}

static void ref_requant(const hawq_qmodel *m, const hawq_qnode *n, int64_t *const *in, int batch,
                        int64_t *out) {
  const hawq_qtensor *y = &m->tensors[n->output];
  for (int64_t i = 0; i < numel(y, batch); i++)
    out[i] = clampv(ref_rescale(in[0][i], n->dyadic[0]), y);
}

static void ref_input(const hawq_qmodel *m, const hawq_qnode *n, int64_t *const *in, int batch,
                      int64_t *out) {
  const hawq_qtensor *y = &m->tensors[n->output];
  for (int64_t i = 0; i < numel(y, batch); i++) {
    int64_t ch = i % y->c;
    out[i] = clampv(ref_rescale(in[0][i] * n->input_mul[ch] + n->input_add[ch], n->dyadic[ch]), y);
  }
}

static void ref_concat(const hawq_qmodel *m, const hawq_qnode *n, int64_t *const *in, int batch,
                       int64_t *out) {
  const hawq_qtensor *y = &m->tensors[n->output];
  int64_t pixels = batch * y->h * y->w;
  for (int64_t px = 0; px < pixels; px++) {
    int64_t o = 0;
    for (int j = 0; j < n->n_inputs; j++) {
      const hawq_qtensor *x = &m->tensors[n->inputs[j]];
      for (int64_t ch = 0; ch < x->c; ch++, o++) {
        out[px * y->c + o] = clampv(ref_rescale(in[j][px * x->c + ch], n->dyadic[j]), y);
      }
    }
  }
}

static void ref_maxpool(const hawq_qmodel *m, const hawq_qnode *n, int64_t *const *in, int batch,
                        int64_t *out) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  for (int b = 0; b < batch; b++)
    for (int64_t p = 0; p < y->h; p++)
      for (int64_t q = 0; q < y->w; q++)
        for (int64_t ch = 0; ch < y->c; ch++) {
          int64_t best = INT64_MIN;
          for (int64_t r = 0; r < n->kernel[0]; r++)
            for (int64_t s = 0; s < n->kernel[1]; s++) {
              int64_t ih = p * n->stride[0] - n->pad[0] + r * n->dilation[0];
              int64_t iw = q * n->stride[1] - n->pad[1] + s * n->dilation[1];
              if (ih >= 0 && ih < x->h && iw >= 0 && iw < x->w &&
                  AT(x, in[0], b, ih, iw, ch) > best)
                best = AT(x, in[0], b, ih, iw, ch);
            }
          AT(y, out, b, p, q, ch) = best;
        }
}

/* As src/float/pool.c: the window [start, start + k) is clipped to the padded input
 * [-pad_begin, size + pad_end) for count_include_pad's count and to [0, size) for the rest. */
static void ref_avgpool(const hawq_qmodel *m, const hawq_qnode *n, int64_t *const *in, int batch,
                        int64_t *out) {
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  for (int b = 0; b < batch; b++)
    for (int64_t p = 0; p < y->h; p++)
      for (int64_t q = 0; q < y->w; q++) {
        int64_t hs = p * n->stride[0] - n->pad[0], ws = q * n->stride[1] - n->pad[1];
        int64_t he = hs + n->kernel[0], we = ws + n->kernel[1];
        int64_t padded = ((he < x->h + n->pad[2] ? he : x->h + n->pad[2]) - hs) *
                         ((we < x->w + n->pad[3] ? we : x->w + n->pad[3]) - ws);
        int64_t real = 0;
        for (int64_t ih = hs; ih < he; ih++)
          for (int64_t iw = ws; iw < we; iw++) real += ih >= 0 && ih < x->h && iw >= 0 && iw < x->w;
        int64_t count = n->count_include_pad ? padded : real;
        REQUIRE(count >= 1 && count <= n->n_dyadic, "count %lld", (long long)count);
        for (int64_t ch = 0; ch < y->c; ch++) {
          int64_t sum = 0;
          for (int64_t ih = hs; ih < he; ih++)
            for (int64_t iw = ws; iw < we; iw++)
              if (ih >= 0 && ih < x->h && iw >= 0 && iw < x->w) sum += AT(x, in[0], b, ih, iw, ch);
          AT(y, out, b, p, q, ch) = clampv(ref_rescale(sum, n->dyadic[count - 1]), y);
        }
      }
}

typedef void (*ref_fn)(const hawq_qmodel *, const hawq_qnode *, int64_t *const *, int, int64_t *);

/* ---- Random pieces ---- */

static int ilog2(int64_t v) { /* floor(log2(v)) for v >= 1 */
  int l = 0;
  while (v > 1) v >>= 1, l++;
  return l;
}

/* A dyadic near ratio 2^-shift (m random), sometimes the zero dyadic. */
static hawq_dyadic rand_dyadic(test_rng *rng, int shift) {
  hawq_dyadic d = {(int32_t)test_rng_int(rng, 1 << 30, INT32_MAX), 0};
  int64_t c = 30 + shift + test_rng_int(rng, -1, 2);
  d.c = (int32_t)(c < 1 ? 1 : c > 62 ? 62 : c);
  if (test_rng_int(rng, 0, 39) == 0) d.m = 0, d.c = 1;
  return d;
}

/* A dyadic mapping values of magnitude about `from` to about `to`. */
static hawq_dyadic scale_dyadic(test_rng *rng, int64_t from, int64_t to) {
  return rand_dyadic(rng, ilog2(from < 1 ? 1 : from) - ilog2(to < 1 ? 1 : to));
}

#define T_ACT ((1u << HAWQ_QT_U4) | (1u << HAWQ_QT_I4) | (1u << HAWQ_QT_U8) | (1u << HAWQ_QT_I8))
#define T_ALL (T_ACT | (1u << HAWQ_QT_I16) | (1u << HAWQ_QT_I32))

/* Random values in [lo, hi]: mode 0 uniform with lo and hi frequent, 1 all hi, 2 all lo. */
static int64_t *rand_values(test_rng *rng, const hawq_qtensor *t, int batch, int mode) {
  int64_t n = numel(t, batch), *v = malloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) {
    int64_t pick = mode ? 0 : test_rng_int(rng, 0, 9);
    v[i] = mode == 1 || pick == 0   ? t->hi
           : mode == 2 || pick == 1 ? t->lo
                                    : test_rng_int(rng, t->lo, t->hi);
  }
  return v;
}

/* ---- Building a case ---- */

typedef struct tcase {
  hawq_qmodel *m;
  int node;                         /* the op under test */
  int value_mode[HAWQ_QMAX_INPUTS]; /* rand_values mode per input */
  const char *label;
} tcase;

static void set_dyadics(hawq_qnode *n, int count) {
  n->n_dyadic = count;
  n->dyadic = xcalloc((size_t)count, sizeof *n->dyadic);
}

/* A CONV with all-zero weights and bias (its output is 0 whatever its input), from `from` to a
 * new tensor: the placeholder that produces an operand or consumes the op's output. */
static void placeholder_conv(hawq_qmodel *m, int from, int to, int kh, int kw, const int *pad) {
  int node = hawq_qmodel_add_node(m, HAWQ_QOP_CONV, "placeholder", 1, &from, to);
  REQUIRE(node >= 0, "add_node");
  hawq_qnode *n = &m->nodes[node];
  set_geometry(n, kh, kw, 1, 1, 1, 1, pad);
  n->groups = 1;
  n->weight_bits = 8;
  int64_t k = m->tensors[to].c, len = (int64_t)kh * kw * m->tensors[from].c;
  n->weight = xcalloc((size_t)(k * len), 1);
  n->bias = xcalloc((size_t)k, sizeof *n->bias);
  set_dyadics(n, (int)k);
  for (int64_t i = 0; i < k; i++) n->dyadic[i] = (hawq_dyadic){1 << 30, 30};
}

static hawq_qmodel *new_model(int64_t ph, int64_t pw, int64_t pc) {
  hawq_qmodel *m = hawq_qmodel_new();
  REQUIRE(m, "qmodel_new");
  m->input = hawq_qmodel_add_tensor(m, "pixels", HAWQ_QT_U8, 0, 255, ph, pw, pc, 1.0 / 255);
  return m;
}

/* An operand tensor produced by a placeholder from the 1 x 1 x 1 pixels (padding grows it). */
static int operand(hawq_qmodel *m, const char *name, hawq_qtype t, int64_t lo, int64_t hi,
                   int64_t h, int64_t w, int64_t c) {
  int id = hawq_qmodel_add_tensor(m, name, t, (int32_t)lo, (int32_t)hi, h, w, c, 0.5);
  int pad[4] = {(int)h - 1, (int)w - 1, 0, 0};
  placeholder_conv(m, m->input, id, 1, 1, pad);
  return id;
}

/* The op's output y consumed by a placeholder FC into the I32 logits. */
static void finish_model(hawq_qmodel *m, int y) {
  int logits = hawq_qmodel_add_tensor(m, "logits", HAWQ_QT_I32, INT32_MIN, INT32_MAX, 1, 1, 3, 1);
  int pad[4] = {0, 0, 0, 0};
  placeholder_conv(m, y, logits, (int)m->tensors[y].h, (int)m->tensors[y].w, pad);
  m->output = logits;
}

static const ref_fn refs[HAWQ_QOP_COUNT] = {ref_input,   ref_conv,    ref_add,   ref_requant,
                                            ref_maxpool, ref_avgpool, ref_concat};

static int cases_run = 0;
static int64_t values_seen = 0, values_inside = 0; /* outputs strictly inside (lo, hi) */
static int64_t level_checks[HAWQ_ISA_COUNT];
static hawq_isa best_isa;

/* Runs node n at kernel level isa with its inputs in the workspace slots; false when the level
 * has no kernel of its own for n (the plan would run the reference). */
static bool run_level(hawq_qmodel *m, const hawq_qnode *n, uint8_t *ws, const uint8_t *pixels,
                      int batch, hawq_isa isa) {
  qrt_args a = {.out = hawq_qrt_tensor(m, ws, batch, n->output), .batch = batch, .threads = 1};
  for (int j = 0; j < n->n_inputs; j++) {
    int t = n->inputs[j];
    a.in[j] = t < 0 ? NULL : t == m->input ? pixels : hawq_qrt_tensor(m, ws, batch, t);
  }
  a.threads = 1 + (int)(level_checks[isa] % 3); /* 1, 2 and 3 threads in turn */
  if (n->op == HAWQ_QOP_INPUT) {
    int32_t *table = malloc(qrt_input_table_size(m, n));
    qrt_input_table_build(m, n, table);
    qrt_input_table_run(m, n, table, &a);
    free(table);
    return true;
  }
  if (n->op == HAWQ_QOP_CONV && qrt_convf_supported(m, n, isa)) {
    void *packed = aligned_alloc(64, (qrt_convf_packed_size(m, n, isa) + 64) & ~(size_t)63);
    size_t scratch_size = qrt_convf_scratch_size(m, n, isa, batch, a.threads);
    void *scratch = aligned_alloc(64, (scratch_size + 64) & ~(size_t)63);
    REQUIRE(packed && scratch, "out of memory");
    qrt_convf_pack(m, n, isa, packed);
    qrt_convf_run(m, n, isa, packed, a.in[0], n->n_inputs == 2 ? a.in[1] : NULL, a.out, NULL,
                  scratch, batch, a.threads);
    free(packed);
    free(scratch);
    return true;
  }
  if (qrt_ops_fast_supported(m, n, isa)) {
    qrt_ops_fast_run(m, n, isa, &a);
    return true;
  }
  return false;
}

/* Validates, fills the op's inputs, runs the op alone, compares with the reference. */
static void run_case(test_rng *rng, tcase *tc, int batch) {
  hawq_qmodel *m = tc->m;
  hawq_error err;
  hawq_status st = hawq_qmodel_validate(m, tc->label, &err);
  CHECK(st == HAWQ_OK, "%s: validate: %s", tc->label, err.msg);
  if (st != HAWQ_OK) {
    hawq_qmodel_destroy(m);
    return;
  }
  cases_run++;
  const hawq_qnode *n = &m->nodes[tc->node];
  size_t size = hawq_qrt_workspace_size(m, batch);
  CHECK(size % 64 == 0, "workspace size %zu", size);
  uint8_t *ws = aligned_alloc(64, size);
  REQUIRE(ws, "workspace");
  memset(ws, 0xA5, size); /* the runtime must not rely on zeroed memory */
  const hawq_qtensor *pix = &m->tensors[m->input];
  uint8_t *pixels = xcalloc((size_t)numel(pix, batch), 1);
  int64_t *in[HAWQ_QMAX_INPUTS] = {0};
  for (int j = 0; j < n->n_inputs; j++) {
    int t = n->inputs[j];
    if (t < 0) continue;
    in[j] = rand_values(rng, &m->tensors[t], batch, tc->value_mode[j]);
    if (t == m->input) {
      pack(&m->tensors[t], in[j], pixels, batch);
    } else {
      pack(&m->tensors[t], in[j], hawq_qrt_tensor(m, ws, batch, t), batch);
    }
  }
  hawq_qmodel view = *m; /* the op alone: its inputs are already in their slots */
  view.nodes = m->nodes + tc->node;
  view.n_nodes = 1;
  hawq_qrt_run(&view, pixels, batch, ws, NULL);

  const hawq_qtensor *y = &m->tensors[n->output];
  int64_t *got = unpack(y, hawq_qrt_tensor(m, ws, batch, n->output), batch);
  int64_t *want = xcalloc((size_t)numel(y, batch), sizeof *want);
  refs[n->op](m, n, in, batch, want);
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < numel(y, batch); i++) {
    if (got[i] != want[i] && bad++ == 0) first = i;
    values_inside += want[i] > y->lo && want[i] < y->hi;
  }
  values_seen += numel(y, batch);
  CHECK(bad == 0,
        "%s: %lld of %lld values differ; first at %lld: got %lld, expected %lld "
        "(batch %d, out %lldx%lldx%lld %s)",
        tc->label, (long long)bad, (long long)numel(y, batch), (long long)first,
        (long long)(first >= 0 ? got[first] : 0), (long long)(first >= 0 ? want[first] : 0), batch,
        (long long)y->h, (long long)y->w, (long long)y->c, hawq_qtype_name(y->type));
  free(got);

  /* The same op at every faster level this CPU has. */
  size_t out_bytes = (size_t)(batch * hawq_qtensor_bytes(y));
  for (int isa = HAWQ_ISA_SCALAR + 1; isa <= (int)best_isa; isa++) {
    memset(hawq_qrt_tensor(m, ws, batch, n->output), 0xA5, out_bytes);
    if (!run_level(m, n, ws, pixels, batch, (hawq_isa)isa)) continue;
    level_checks[isa]++;
    got = unpack(y, hawq_qrt_tensor(m, ws, batch, n->output), batch);
    bad = 0, first = -1;
    for (int64_t i = 0; i < numel(y, batch); i++) {
      if (got[i] != want[i] && bad++ == 0) first = i;
    }
    CHECK(bad == 0, "%s at %s: %lld of %lld values differ; first at %lld: got %lld, expected %lld",
          tc->label, hawq_isa_name((hawq_isa)isa), (long long)bad, (long long)numel(y, batch),
          (long long)first, (long long)(first >= 0 ? got[first] : 0),
          (long long)(first >= 0 ? want[first] : 0));
    free(got);
  }
  for (int j = 0; j < n->n_inputs; j++) free(in[j]);
  free(want);
  free(pixels);
  free(ws);
  hawq_qmodel_destroy(m);
}

/* ---- CONV ---- */

typedef struct conv_spec {
  int64_t h, w, c, k;
  int groups, kh, kw, sh, sw, dh, dw, pad[4];
  hawq_qtype xt, yt, rt;
  int64_t xlo, xhi, ylo, yhi, rlo, rhi;
  int bits;
  int residual;
  int extreme; /* 0 random; +1 / -1: all x = hi, all weights = +-max, bias at the bound */
} conv_spec;

static void conv_case(test_rng *rng, const conv_spec *s, const char *label, int batch) {
  hawq_qmodel *m = new_model(1, 1, 1);
  int x = operand(m, "x", s->xt, s->xlo, s->xhi, s->h, s->w, s->c);
  int64_t p = out_size(s->h, s->kh, s->sh, s->dh, s->pad[0], s->pad[2]);
  int64_t q = out_size(s->w, s->kw, s->sw, s->dw, s->pad[1], s->pad[3]);
  int res = s->residual ? operand(m, "residual", s->rt, s->rlo, s->rhi, p, q, s->k) : -1;
  int y = hawq_qmodel_add_tensor(m, "y", s->yt, (int32_t)s->ylo, (int32_t)s->yhi, p, q, s->k, 0.25);
  int ins[2] = {x, res};
  tcase tc = {m, 0, {0}, label};
  tc.node = hawq_qmodel_add_node(m, HAWQ_QOP_CONV, "conv", res >= 0 ? 2 : 1, ins, y);
  hawq_qnode *n = &m->nodes[tc.node];
  set_geometry(n, s->kh, s->kw, s->sh, s->sw, s->dh, s->dw, s->pad);
  n->groups = s->groups;
  n->weight_bits = s->bits;
  int64_t len = (int64_t)s->kh * s->kw * (s->c / s->groups), wmax = (1 << (s->bits - 1)) - 1;
  n->weight = xcalloc((size_t)(s->k * (s->bits <= 4 ? (len + 1) / 2 : len)), 1);
  n->bias = xcalloc((size_t)s->k, sizeof *n->bias);
  set_dyadics(n, (int)s->k);
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
    REQUIRE(room >= 0, "%s: random weights break the bound", label);
    if (s->extreme) {
      n->bias[k] = (int32_t)(s->extreme * room); /* |acc| reaches exactly 2^31 - 1 */
    } else {
      int64_t typical = xmax * wmax * (ilog2(len) + 1);
      n->bias[k] = (int32_t)test_rng_int(rng, -(typical < room ? typical : room),
                                         typical < room ? typical : room);
    }
    n->dyadic[k] = s->extreme ? (hawq_dyadic){INT32_MAX, 31}
                              : scale_dyadic(rng, xmax * wmax * (ilog2(len) + 1), yhalf);
  }
  if (res >= 0) n->residual_dyadic = scale_dyadic(rng, max_abs(s->rlo, s->rhi), yhalf);
  if (s->extreme) tc.value_mode[0] = 1;
  finish_model(m, y);
  run_case(rng, &tc, batch);
}

static void random_conv(test_rng *rng, conv_spec *s, int kind) {
  memset(s, 0, sizeof *s);
  int depthwise = kind == 1, pointwise = kind == 2, fc = kind == 3;
  s->groups = depthwise ? (int)test_rng_int(rng, 1, 9) : (int)test_rng_int(rng, 1, 3);
  s->c = s->groups * (depthwise ? 1 : test_rng_int(rng, 1, 5));
  s->k = s->groups * test_rng_int(rng, 1, depthwise ? 2 : 5);
  s->kh = pointwise ? 1 : (int)test_rng_int(rng, 1, 4);
  s->kw = pointwise ? 1 : (int)test_rng_int(rng, 1, 4);
  s->sh = (int)test_rng_int(rng, 1, 3), s->sw = (int)test_rng_int(rng, 1, 3);
  s->dh = pointwise ? 1 : (int)test_rng_int(rng, 1, 3);
  s->dw = pointwise ? 1 : (int)test_rng_int(rng, 1, 3);
  for (int k = 0; k < 4; k++) s->pad[k] = pointwise ? 0 : (int)test_rng_int(rng, 0, 3);
  int64_t eh = (int64_t)(s->kh - 1) * s->dh + 1, ew = (int64_t)(s->kw - 1) * s->dw + 1;
  int64_t minh = eh - s->pad[0] - s->pad[2], minw = ew - s->pad[1] - s->pad[3];
  s->h = (minh > 1 ? minh : 1) + test_rng_int(rng, 0, 6);
  s->w = (minw > 1 ? minw : 1) + test_rng_int(rng, 0, 6);
  if (fc) { /* Gemm: the kernel covers the input, output 1 x 1 x K */
    s->groups = 1;
    s->c = test_rng_int(rng, 1, 20);
    s->k = test_rng_int(rng, 1, 12);
    s->h = test_rng_int(rng, 1, 4), s->w = test_rng_int(rng, 1, 4);
    s->kh = (int)s->h, s->kw = (int)s->w;
    s->sh = s->sw = s->dh = s->dw = 1;
    memset(s->pad, 0, sizeof s->pad);
  }
  s->xt = rand_type(rng, T_ACT | (1u << HAWQ_QT_I16), &s->xlo, &s->xhi);
  if (test_rng_int(rng, 0, 7) == 0) { /* an I32 input (values beyond int16), in a safe range */
    s->xt = HAWQ_QT_I32;
    s->xlo = -(s->xhi = 40000);
  }
  s->yt = rand_type(rng, T_ALL, &s->ylo, &s->yhi);
  s->bits = (int)test_rng_int(rng, 2, 8);
  if (test_rng_int(rng, 0, 2) == 0) s->bits = 4;
  s->residual = test_rng_int(rng, 0, 2) == 0;
  s->rt = rand_type(rng, T_ACT | (1u << HAWQ_QT_I16), &s->rlo, &s->rhi);
}

static void test_conv(test_rng *rng) {
  static const char *const labels[] = {"conv", "depthwise conv", "1x1 conv", "fc"};
  for (int kind = 0; kind < 4; kind++) {
    for (int it = 0; it < 60; it++) {
      conv_spec s;
      random_conv(rng, &s, kind);
      conv_case(rng, &s, labels[kind], (int)test_rng_int(rng, 1, 3));
    }
  }
  /* the paper's layer types: U4 input, I4 weights, U4 output; I16 residual stream */
  for (int it = 0; it < 20; it++) {
    conv_spec s;
    random_conv(rng, &s, (int)test_rng_int(rng, 0, 2));
    s.xt = HAWQ_QT_U4, s.xlo = 0, s.xhi = 15, s.bits = 4;
    s.yt = it & 1 ? HAWQ_QT_U4 : HAWQ_QT_I4;
    type_range(s.yt, &s.ylo, &s.yhi);
    s.residual = it & 2;
    s.rt = HAWQ_QT_I16, s.rlo = -32767, s.rhi = 32767;
    if (it & 4) s.yt = HAWQ_QT_I16, s.ylo = -32767, s.yhi = 32767;
    if (s.c % 2 == 0 && !(it & 8)) s.c += s.groups; /* odd channel counts: packed rows padded */
    if (s.c % s.groups) s.c = s.groups;
    conv_case(rng, &s, "4-bit conv", (int)test_rng_int(rng, 1, 3));
  }
  /* at the proven bound: max|x| * sum|w| + |bias| = 2^31 - 1 exactly, both signs */
  for (int sign = -1; sign <= 1; sign += 2) {
    conv_spec s;
    random_conv(rng, &s, 0);
    memset(s.pad, 0, sizeof s.pad); /* every tap inside: acc reaches the bound */
    s.h = (int64_t)(s.kh - 1) * s.dh + 1 + test_rng_int(rng, 0, 3);
    s.w = (int64_t)(s.kw - 1) * s.dw + 1 + test_rng_int(rng, 0, 3);
    s.xt = HAWQ_QT_U8, s.xlo = 0, s.xhi = 255, s.bits = 8;
    s.yt = HAWQ_QT_I32, s.ylo = INT32_MIN, s.yhi = INT32_MAX, s.residual = 0;
    s.extreme = sign;
    conv_case(rng, &s, "conv at the bound (8-bit)", 2);
    s.xt = HAWQ_QT_U4, s.xlo = 0, s.xhi = 15, s.bits = 4, s.extreme = sign;
    s.yt = HAWQ_QT_I8, s.ylo = -127, s.yhi = 127;
    conv_case(rng, &s, "conv at the bound (4-bit)", 1);
    s.xt = HAWQ_QT_I16, s.xlo = -32767, s.xhi = 32767, s.bits = 2;
    s.residual = 1, s.rt = HAWQ_QT_I32, s.rlo = INT32_MIN, s.rhi = INT32_MAX;
    conv_case(rng, &s, "conv at the bound (I16 x 2-bit, I32 residual)", 2);
  }
}

/* ---- Element-wise ops ---- */

static void test_add_requant(test_rng *rng) {
  for (int it = 0; it < 80; it++) {
    int64_t h = test_rng_int(rng, 1, 6), w = test_rng_int(rng, 1, 6), c = test_rng_int(rng, 1, 19);
    int64_t alo, ahi, blo, bhi, ylo, yhi;
    hawq_qtype at = rand_type(rng, T_ALL, &alo, &ahi), bt = rand_type(rng, T_ALL, &blo, &bhi);
    hawq_qtype yt = rand_type(rng, T_ALL, &ylo, &yhi);
    if (it < 20) at = bt = yt = HAWQ_QT_I16, alo = blo = ylo = -32767, ahi = bhi = yhi = 32767;
    hawq_qmodel *m = new_model(1, 1, 1);
    int ins[2] = {operand(m, "a", at, alo, ahi, h, w, c), operand(m, "b", bt, blo, bhi, h, w, c)};
    int y = hawq_qmodel_add_tensor(m, "y", yt, (int32_t)ylo, (int32_t)yhi, h, w, c, 0.25);
    tcase tc = {m, hawq_qmodel_add_node(m, HAWQ_QOP_ADD, "add", 2, ins, y), {0}, "add"};
    hawq_qnode *n = &m->nodes[tc.node];
    set_dyadics(n, 2);
    n->dyadic[0] = scale_dyadic(rng, max_abs(alo, ahi), max_abs(ylo, yhi));
    n->dyadic[1] = scale_dyadic(rng, max_abs(blo, bhi), max_abs(ylo, yhi));
    finish_model(m, y);
    run_case(rng, &tc, (int)test_rng_int(rng, 1, 3));
  }
  for (int it = 0; it < 80; it++) {
    int64_t h = test_rng_int(rng, 1, 6), w = test_rng_int(rng, 1, 6), c = test_rng_int(rng, 1, 19);
    int64_t xlo, xhi, ylo, yhi;
    hawq_qtype xt = rand_type(rng, T_ALL, &xlo, &xhi), yt = rand_type(rng, T_ALL, &ylo, &yhi);
    if (it < 30) { /* the residual stream consumed by a conv: I16 -> U4 / U8 / I8 */
      static const hawq_qtype to[3] = {HAWQ_QT_U4, HAWQ_QT_U8, HAWQ_QT_I8};
      xt = HAWQ_QT_I16, xlo = -32767, xhi = 32767, yt = to[it % 3];
      type_range(yt, &ylo, &yhi);
    }
    hawq_qmodel *m = new_model(1, 1, 1);
    int x = operand(m, "x", xt, xlo, xhi, h, w, c);
    int y = hawq_qmodel_add_tensor(m, "y", yt, (int32_t)ylo, (int32_t)yhi, h, w, c, 0.25);
    tcase tc = {m, hawq_qmodel_add_node(m, HAWQ_QOP_REQUANT, "requant", 1, &x, y), {0}, "requant"};
    hawq_qnode *n = &m->nodes[tc.node];
    set_dyadics(n, 1);
    n->dyadic[0] = scale_dyadic(rng, max_abs(xlo, xhi), max_abs(ylo, yhi));
    finish_model(m, y);
    run_case(rng, &tc, (int)test_rng_int(rng, 1, 3));
  }
  /* Every shift 1..62 on wide rows of 16-bit values, extremes included: the vectorised kernels
   * switch between a 32-bit and a 64-bit form of the rescale by shift. Most of these clamp:
   * they stay out of the unclamped-share statistic. */
  int64_t seen = values_seen, inside = values_inside;
  for (int shift = 1; shift <= 62; shift++) {
    static const hawq_qtype to[3] = {HAWQ_QT_I16, HAWQ_QT_I8, HAWQ_QT_U8};
    hawq_qtype xt = shift & 1 ? HAWQ_QT_I16 : HAWQ_QT_I8, yt = to[shift % 3];
    int64_t xlo, xhi, ylo, yhi;
    type_range(xt, &xlo, &xhi);
    type_range(yt, &ylo, &yhi);
    hawq_qmodel *m = new_model(1, 1, 1);
    int x = operand(m, "x", xt, xlo, xhi, 1, 3, 700);
    int y = hawq_qmodel_add_tensor(m, "y", yt, (int32_t)ylo, (int32_t)yhi, 1, 3, 700, 0.25);
    tcase tc = {m, hawq_qmodel_add_node(m, HAWQ_QOP_REQUANT, "requant", 1, &x, y), {0}, "requant"};
    hawq_qnode *n = &m->nodes[tc.node];
    set_dyadics(n, 1);
    n->dyadic[0] = (hawq_dyadic){(int32_t)test_rng_int(rng, (int64_t)1 << 30, INT32_MAX), shift};
    if (shift == 62) n->dyadic[0].m = INT32_MAX;
    finish_model(m, y);
    run_case(rng, &tc, 1);
  }
  values_seen = seen, values_inside = inside;
}

static void test_concat(test_rng *rng) {
  for (int it = 0; it < 80; it++) {
    int64_t h = test_rng_int(rng, 1, 5), w = test_rng_int(rng, 1, 5), ylo, yhi, total = 0;
    hawq_qtype yt = rand_type(rng, T_ALL, &ylo, &yhi);
    int k = (int)test_rng_int(rng, 1, 4), ins[4];
    hawq_qmodel *m = new_model(1, 1, 1);
    int64_t xmax[4];
    for (int j = 0; j < k; j++) {
      int64_t lo, hi, c = test_rng_int(rng, 1, 7);
      hawq_qtype t = rand_type(rng, T_ALL, &lo, &hi);
      ins[j] = operand(m, "x", t, lo, hi, h, w, c);
      xmax[j] = max_abs(lo, hi);
      total += c;
    }
    int y = hawq_qmodel_add_tensor(m, "y", yt, (int32_t)ylo, (int32_t)yhi, h, w, total, 0.25);
    tcase tc = {m, hawq_qmodel_add_node(m, HAWQ_QOP_CONCAT, "concat", k, ins, y), {0}, "concat"};
    hawq_qnode *n = &m->nodes[tc.node];
    set_dyadics(n, k);
    for (int j = 0; j < k; j++) n->dyadic[j] = scale_dyadic(rng, xmax[j], max_abs(ylo, yhi));
    finish_model(m, y);
    run_case(rng, &tc, (int)test_rng_int(rng, 1, 3));
  }
}

static void test_input(test_rng *rng) {
  for (int it = 0; it < 60; it++) {
    int64_t h = test_rng_int(rng, 1, 6), w = test_rng_int(rng, 1, 6), c = test_rng_int(rng, 1, 4);
    int64_t ylo, yhi;
    hawq_qtype yt = rand_type(rng, T_ALL, &ylo, &yhi);
    hawq_qmodel *m = new_model(h, w, c);
    int x = m->input;
    int y = hawq_qmodel_add_tensor(m, "y", yt, (int32_t)ylo, (int32_t)yhi, h, w, c, 0.25);
    tcase tc = {m, hawq_qmodel_add_node(m, HAWQ_QOP_INPUT, "input", 1, &x, y), {0}, "input"};
    hawq_qnode *n = &m->nodes[tc.node];
    n->input_mul = xcalloc((size_t)c, sizeof *n->input_mul);
    n->input_add = xcalloc((size_t)c, sizeof *n->input_add);
    set_dyadics(n, (int)c);
    for (int64_t ch = 0; ch < c; ch++) {
      /* (p / 255 - mean) / std as p * mul + add at some fixed point */
      int64_t mul = test_rng_int(rng, 1, 1 << 16) * (test_rng_int(rng, 0, 3) ? 1 : -1);
      n->input_mul[ch] = (int32_t)mul;
      n->input_add[ch] = (int32_t)(-mul * test_rng_int(rng, 0, 255));
      if (it == 0) n->input_mul[ch] = 8388607, n->input_add[ch] = -INT32_MAX + 1; /* near 2^31 */
      n->dyadic[ch] = scale_dyadic(rng, (mul < 0 ? -mul : mul) * 128, max_abs(ylo, yhi));
    }
    finish_model(m, y);
    run_case(rng, &tc, (int)test_rng_int(rng, 1, 3));
  }
}

/* ---- Pools ---- */

/* Pool output size as the float importer computes it (floor, or ceil with PyTorch's rule). */
static int64_t pool_out(int64_t in, int k, int s, int d, int p0, int p1, int ceil_mode) {
  int64_t span = in + p0 + p1 - ((int64_t)(k - 1) * d + 1);
  int64_t o = (ceil_mode ? span + s - 1 : span) / s + 1;
  if (ceil_mode && (o - 1) * s >= in + p0) o--;
  return o;
}

/* Does every window along one dimension have a (dilated) tap inside the input? */
static int windows_ok(int64_t in, int64_t out, int k, int s, int d, int p0) {
  for (int64_t o = 0; o < out; o++) {
    int inside = 0;
    for (int r = 0; r < k; r++) {
      int64_t i = o * s - p0 + (int64_t)r * d;
      inside |= i >= 0 && i < in;
    }
    if (!inside) return 0;
  }
  return 1;
}

static void pool_case(test_rng *rng, int is_max, int global) {
  int kh, kw, sh, sw, dh = 1, dw = 1, pad[4] = {0, 0, 0, 0}, ceil_mode = 0;
  int64_t h, w, p, q;
  for (;;) { /* draw until the geometry is one the float engine makes */
    kh = (int)test_rng_int(rng, 1, 4), kw = (int)test_rng_int(rng, 1, 4);
    sh = (int)test_rng_int(rng, 1, 3), sw = (int)test_rng_int(rng, 1, 3);
    if (is_max) dh = (int)test_rng_int(rng, 1, 2), dw = (int)test_rng_int(rng, 1, 2);
    int eh = (kh - 1) * dh + 1, ew = (kw - 1) * dw + 1;
    pad[0] = (int)test_rng_int(rng, 0, eh - 1), pad[2] = (int)test_rng_int(rng, 0, eh - 1);
    pad[1] = (int)test_rng_int(rng, 0, ew - 1), pad[3] = (int)test_rng_int(rng, 0, ew - 1);
    h = test_rng_int(rng, 1, 8), w = test_rng_int(rng, 1, 8);
    ceil_mode = (int)test_rng_int(rng, 0, 1);
    if (global) {
      kh = (int)h, kw = (int)w, sh = sw = dh = dw = 1;
      memset(pad, 0, sizeof pad);
    }
    if (h + pad[0] + pad[2] < (kh - 1) * dh + 1 || w + pad[1] + pad[3] < (kw - 1) * dw + 1)
      continue;
    p = pool_out(h, kh, sh, dh, pad[0], pad[2], ceil_mode);
    q = pool_out(w, kw, sw, dw, pad[1], pad[3], ceil_mode);
    if (windows_ok(h, p, kh, sh, dh, pad[0]) && windows_ok(w, q, kw, sw, dw, pad[1])) break;
  }
  int64_t c = test_rng_int(rng, 1, 9), xlo, xhi, ylo, yhi;
  hawq_qtype xt = rand_type(rng, T_ACT | (1u << HAWQ_QT_I16), &xlo, &xhi);
  hawq_qtype yt = is_max ? xt : rand_type(rng, T_ALL, &ylo, &yhi);
  if (is_max) ylo = xlo, yhi = xhi;
  hawq_qmodel *m = new_model(1, 1, 1);
  int x = operand(m, "x", xt, xlo, xhi, h, w, c);
  int y = hawq_qmodel_add_tensor(m, "y", yt, (int32_t)ylo, (int32_t)yhi, p, q, c, 0.25);
  const char *label = global ? "global avgpool" : is_max ? "maxpool" : "avgpool";
  tcase tc = {
      m,
      hawq_qmodel_add_node(m, is_max ? HAWQ_QOP_MAXPOOL : HAWQ_QOP_AVGPOOL, label, 1, &x, y),
      {0},
      label};
  hawq_qnode *n = &m->nodes[tc.node];
  set_geometry(n, kh, kw, sh, sw, dh, dw, pad);
  if (!is_max) {
    n->count_include_pad = test_rng_int(rng, 0, 1);
    set_dyadics(n, kh * kw);
    for (int k = 0; k < kh * kw; k++) {
      n->dyadic[k] = scale_dyadic(rng, (k + 1) * max_abs(xlo, xhi), max_abs(ylo, yhi));
    }
  }
  finish_model(m, y);
  run_case(rng, &tc, (int)test_rng_int(rng, 1, 3));
}

static void test_pools(test_rng *rng) {
  for (int it = 0; it < 120; it++) pool_case(rng, 1, 0);
  for (int it = 0; it < 120; it++) pool_case(rng, 0, 0);
  for (int it = 0; it < 30; it++) pool_case(rng, 0, 1);
}

int main(void) {
  best_isa = hawq_isa_best();
  test_rng rng = test_rng_seeded("test_qrt_layers");
  test_conv(&rng);
  test_add_requant(&rng);
  test_concat(&rng);
  test_input(&rng);
  test_pools(&rng);
  printf("test_qrt_layers: %d cases, %lld values, %lld inside (lo, hi)\n", cases_run,
         (long long)values_seen, (long long)values_inside);
  for (int isa = HAWQ_ISA_SCALAR + 1; isa < HAWQ_ISA_COUNT; isa++) {
    if (isa <= (int)best_isa) {
      printf("test_qrt_layers: %lld cases also run at %s\n", (long long)level_checks[isa],
             hawq_isa_name((hawq_isa)isa));
      CHECK(level_checks[isa] > cases_run / 2, "only %lld cases have %s kernels",
            (long long)level_checks[isa], hawq_isa_name((hawq_isa)isa));
    } else {
      printf("test_qrt_layers: skipped %s: this CPU lacks it\n", hawq_isa_name((hawq_isa)isa));
    }
  }
  /* the random dyadics aim at the output range: most values must not be clamped */
  CHECK(values_inside * 2 > values_seen, "only %lld of %lld values unclamped",
        (long long)values_inside, (long long)values_seen);
  return test_report("test_qrt_layers");
}
