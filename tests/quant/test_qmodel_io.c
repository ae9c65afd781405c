/* .hqm files (src/quant/qmodel_io.c, docs/format.md): a QModel built by hand with every op type
 * (INPUT with per-channel mul/add, an 8-bit CONV, a 4-bit packed depthwise CONV with odd rows, a
 * CONV with a residual, ADD, REQUANT to U4, MAXPOOL, AVGPOOL, CONCAT and an FC-as-conv to I32
 * logits) is validated, saved, loaded and compared field by field; saving the loaded model gives
 * the same bytes. Then hostile files: every truncation, bit flips at every offset and random byte
 * changes at seeded offsets (HAWQ_TEST_SEED replays), and fields edited through the protobuf-c
 * structs. Each must be refused with a non-OK status, no model, and one non-empty line (the
 * ASan build catches over-reads). The model is the same on every run (fixed seed), so
 * HAWQ_QMODEL_WRITE=<path> writes it out: that is how tests/quant/fixtures/tiny_v1.hqm (a
 * format-stability check here and the fuzzer's seed) was made. */
#include <stdbool.h>

#include "core/preprocess.h"
#include "hawq/hawq.h"
#include "onnx/onnx.pb-c.h"
#include "quant/qmodel.h"
#include "quant/qmodel_io.h"
#include "test_util.h"

#define FIXTURE "tests/quant/fixtures/tiny_v1.hqm"
#define FLOAT_ONNX "tests/onnx/fixtures/convzoo_opset13.onnx"

/* ------------------------------------------------------------------------------------------ */
/* The model                                                                                  */

static int add_tensor(hawq_qmodel *m, const char *name, hawq_qtype type, int32_t lo, int32_t hi,
                      int64_t h, int64_t w, int64_t c, double scale) {
  int t = hawq_qmodel_add_tensor(m, name, type, lo, hi, h, w, c, scale);
  REQUIRE(t >= 0, "add_tensor %s", name);
  return t;
}

static hawq_qnode *add_node(hawq_qmodel *m, hawq_qop op, const char *name, int n_in, const int *in,
                            int out) {
  int i = hawq_qmodel_add_node(m, op, name, n_in, in, out);
  REQUIRE(i >= 0, "add_node %s", name);
  return &m->nodes[i];
}

static hawq_dyadic random_dyadic(test_rng *r) {
  hawq_dyadic d = {(int32_t)test_rng_int(r, (int64_t)1 << 30, ((int64_t)1 << 31) - 1),
                   (int32_t)test_rng_int(r, 1, 62)};
  return d;
}

static void set_dyadics(hawq_qnode *n, test_rng *r, int count) {
  n->n_dyadic = count;
  n->dyadic = calloc((size_t)count, sizeof *n->dyadic);
  REQUIRE(n->dyadic, "out of memory");
  for (int k = 0; k < count; k++) n->dyadic[k] = random_dyadic(r);
}

static void window(hawq_qnode *n, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr) {
  n->kernel[0] = kh, n->kernel[1] = kw;
  n->stride[0] = sh, n->stride[1] = sw;
  n->dilation[0] = n->dilation[1] = 1;
  n->pad[0] = pt, n->pad[1] = pl, n->pad[2] = pb, n->pad[3] = pr;
}

/* Weights of K rows of len values within +-wmax (packed, padding nibble zero, at <= 4 bits);
 * bias, scales and K dyadics. */
static void conv_params(hawq_qnode *n, test_rng *r, int bits, int64_t k, int64_t len) {
  int wmax = (1 << (bits - 1)) - 1;
  int64_t row = bits <= 4 ? (len + 1) / 2 : len;
  n->weight_bits = bits;
  n->weight = calloc((size_t)(k * row), 1);
  n->bias = calloc((size_t)k, sizeof *n->bias);
  n->weight_scale = calloc((size_t)k, sizeof *n->weight_scale);
  REQUIRE(n->weight && n->bias && n->weight_scale, "out of memory");
  for (int64_t o = 0; o < k; o++) {
    for (int64_t i = 0; i < len; i++) {
      int32_t v = (int32_t)test_rng_int(r, -wmax, wmax);
      if (bits <= 4) {
        hawq_qrow_set(HAWQ_QT_I4, (uint8_t *)n->weight + o * row, i, v);
      } else {
        n->weight[o * len + i] = (int8_t)v;
      }
    }
    n->bias[o] = (int32_t)test_rng_int(r, -100000, 100000);
    n->weight_scale[o] = test_rng_float(r, 0.001f, 0.1f) / 3.0;
  }
  set_dyadics(n, r, (int)k);
}

static char *dup_str(const char *s) {
  char *d = strdup(s);
  REQUIRE(d, "out of memory");
  return d;
}

/* The test model: 5x5x3 pixels to 10 logits through every op. Deterministic. */
static hawq_qmodel *build_model(void) {
  test_rng r = {42};
  hawq_qmodel *m = hawq_qmodel_new();
  REQUIRE(m, "out of memory");
  int px = add_tensor(m, "pixels", HAWQ_QT_U8, 0, 255, 5, 5, 3, 1.0 / 255.0);
  int x0 = add_tensor(m, "x0", HAWQ_QT_I8, -127, 127, 5, 5, 3, 0.0213);
  int c1 = add_tensor(m, "c1", HAWQ_QT_U8, 0, 255, 5, 5, 4, 0.047);
  int c2 = add_tensor(m, "c2", HAWQ_QT_I8, -127, 127, 5, 5, 4, 0.031);
  int c3 = add_tensor(m, "c3", HAWQ_QT_I8, -127, 127, 5, 5, 4, 0.029);
  int sum = add_tensor(m, "sum", HAWQ_QT_I16, -32767, 32767, 5, 5, 4, 1.5e-4);
  int rq = add_tensor(m, "rq", HAWQ_QT_U4, 0, 15, 5, 5, 4, 0.4);
  int mp = add_tensor(m, "mp", HAWQ_QT_U4, 0, 15, 3, 3, 4, 0.4);
  int ap = add_tensor(m, "ap", HAWQ_QT_I8, -127, 127, 3, 3, 4, 0.05);
  int cat = add_tensor(m, "cat", HAWQ_QT_I8, -127, 127, 3, 3, 8, 0.05);
  int logits = add_tensor(m, "logits", HAWQ_QT_I32, INT32_MIN, INT32_MAX, 1, 1, 10, 1e-3);
  m->input = px;
  m->output = logits;

  hawq_qnode *n = add_node(m, HAWQ_QOP_INPUT, "input", 1, (int[]){px}, x0);
  n->input_mul = calloc(3, sizeof *n->input_mul);
  n->input_add = calloc(3, sizeof *n->input_add);
  REQUIRE(n->input_mul && n->input_add, "out of memory");
  for (int c = 0; c < 3; c++) {
    n->input_mul[c] = 1000 + 17 * c;
    n->input_add[c] = -128000 + 333 * c;
  }
  set_dyadics(n, &r, 3);
  n->dyadic[1] = (hawq_dyadic){0, 1}; /* the "too small to matter" constant */

  n = add_node(m, HAWQ_QOP_CONV, "conv1", 1, (int[]){x0}, c1);
  window(n, 3, 3, 1, 1, 1, 1, 1, 1);
  n->groups = 1;
  conv_params(n, &r, 8, 4, 3 * 3 * 3);

  /* 4-bit depthwise: rows of 9 values, 5 bytes each; an explicitly absent residual. */
  n = add_node(m, HAWQ_QOP_CONV, "conv2.dw4", 2, (int[]){c1, -1}, c2);
  window(n, 3, 3, 1, 1, 1, 1, 1, 1);
  n->groups = 4;
  conv_params(n, &r, 4, 4, 9);

  n = add_node(m, HAWQ_QOP_CONV, "conv3", 2, (int[]){c2, c1}, c3);
  window(n, 1, 1, 1, 1, 0, 0, 0, 0);
  n->groups = 1;
  conv_params(n, &r, 6, 4, 4);
  n->residual_dyadic = random_dyadic(&r);

  n = add_node(m, HAWQ_QOP_ADD, "add", 2, (int[]){c3, c1}, sum);
  set_dyadics(n, &r, 2);

  n = add_node(m, HAWQ_QOP_REQUANT, "requant", 1, (int[]){sum}, rq);
  set_dyadics(n, &r, 1);

  n = add_node(m, HAWQ_QOP_MAXPOOL, "maxpool", 1, (int[]){rq}, mp);
  window(n, 3, 3, 2, 2, 1, 1, 1, 1);

  n = add_node(m, HAWQ_QOP_AVGPOOL, "avgpool", 1, (int[]){rq}, ap);
  window(n, 2, 3, 2, 2, 0, 1, 1, 1);
  n->count_include_pad = true;
  set_dyadics(n, &r, 6);

  n = add_node(m, HAWQ_QOP_CONCAT, "concat", 2, (int[]){mp, ap}, cat);
  set_dyadics(n, &r, 2);

  n = add_node(m, HAWQ_QOP_CONV, "fc", 1, (int[]){cat}, logits);
  window(n, 3, 3, 1, 1, 0, 0, 0, 0);
  n->groups = 1;
  conv_params(n, &r, 8, 10, 3 * 3 * 8);

  m->preprocess = hawq_preprocess_default();
  m->preprocess.has_metadata = true;
  m->preprocess.channels = 3;
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; c++) m->preprocess.mean[c] = mean[c], m->preprocess.std[c] = stdv[c];
  m->bits_json = dup_str("{\"conv1\": 8, \"conv2.dw4\": 4, \"conv3\": 6, \"fc\": 8}");
  m->calibration_json = dup_str("{\"method\": \"minmax\", \"momentum\": 0.99, \"images\": 64}");
  m->source_name = dup_str("tiny.onnx");
  m->source_crc32 = 0xdeadbeefu;
  m->source_size = 123456789012ull;
  return m;
}

/* ------------------------------------------------------------------------------------------ */
/* Field-by-field comparison                                                                  */

static bool same_str(const char *a, const char *b) {
  return a == b || (a && b && !strcmp(a, b));
}

static bool same_bytes(const void *a, const void *b, size_t n) {
  return n == 0 || (a && b && !memcmp(a, b, n));
}

static void check_same_model(const hawq_qmodel *a, const hawq_qmodel *b) {
  REQUIRE(a->n_tensors == b->n_tensors, "tensors %d vs %d", a->n_tensors, b->n_tensors);
  REQUIRE(a->n_nodes == b->n_nodes, "nodes %d vs %d", a->n_nodes, b->n_nodes);
  CHECK(a->input == b->input && a->output == b->output, "input/output");
  for (int t = 0; t < a->n_tensors; t++) {
    const hawq_qtensor *x = &a->tensors[t], *y = &b->tensors[t];
    CHECK(same_str(x->name, y->name), "tensor %d name", t);
    CHECK(x->type == y->type && x->lo == y->lo && x->hi == y->hi, "tensor %s type", x->name);
    CHECK(x->h == y->h && x->w == y->w && x->c == y->c, "tensor %s shape", x->name);
    CHECK(same_bytes(&x->scale, &y->scale, sizeof x->scale), "tensor %s scale %.17g vs %.17g",
          x->name, x->scale, y->scale);
    CHECK(x->producer == y->producer, "tensor %s producer", x->name);
  }
  for (int i = 0; i < a->n_nodes; i++) {
    const hawq_qnode *x = &a->nodes[i], *y = &b->nodes[i];
    CHECK(x->op == y->op && same_str(x->name, y->name), "node %d op/name", i);
    CHECK(x->n_inputs == y->n_inputs && !memcmp(x->inputs, y->inputs, sizeof x->inputs) &&
              x->output == y->output,
          "node %s inputs/output", x->name);
    CHECK(!memcmp(x->kernel, y->kernel, sizeof x->kernel) &&
              !memcmp(x->stride, y->stride, sizeof x->stride) &&
              !memcmp(x->dilation, y->dilation, sizeof x->dilation) &&
              !memcmp(x->pad, y->pad, sizeof x->pad) && x->groups == y->groups &&
              x->count_include_pad == y->count_include_pad && x->weight_bits == y->weight_bits,
          "node %s geometry", x->name);
    int64_t k = a->tensors[x->output].c, wb = hawq_qnode_weight_bytes(a, x);
    CHECK(wb == hawq_qnode_weight_bytes(b, y), "node %s weight bytes", x->name);
    CHECK(same_bytes(x->weight, y->weight, (size_t)wb), "node %s weight", x->name);
    bool conv = x->op == HAWQ_QOP_CONV, input = x->op == HAWQ_QOP_INPUT;
    CHECK(same_bytes(x->bias, y->bias, conv ? (size_t)k * 4 : 0), "node %s bias", x->name);
    CHECK(same_bytes(x->weight_scale, y->weight_scale, conv ? (size_t)k * 8 : 0),
          "node %s weight_scale", x->name);
    CHECK(!conv || (x->residual_dyadic.m == y->residual_dyadic.m &&
                    x->residual_dyadic.c == y->residual_dyadic.c),
          "node %s residual_dyadic", x->name);
    CHECK(same_bytes(x->input_mul, y->input_mul, input ? (size_t)k * 4 : 0) &&
              same_bytes(x->input_add, y->input_add, input ? (size_t)k * 4 : 0),
          "node %s input_mul/add", x->name);
    CHECK(x->n_dyadic == y->n_dyadic &&
              same_bytes(x->dyadic, y->dyadic, (size_t)x->n_dyadic * sizeof *x->dyadic),
          "node %s dyadic", x->name);
  }
  const hawq_preprocess *p = &a->preprocess, *q = &b->preprocess;
  CHECK(p->has_metadata == q->has_metadata && p->channels == q->channels &&
            same_bytes(&p->pixel_scale, &q->pixel_scale, 4) &&
            same_bytes(p->mean, q->mean, (size_t)p->channels * 4) &&
            same_bytes(p->std, q->std, (size_t)p->channels * 4),
        "preprocess");
  CHECK(same_str(a->bits_json, b->bits_json) &&
            same_str(a->calibration_json, b->calibration_json) &&
            same_str(a->source_name, b->source_name),
        "provenance strings");
  CHECK(a->source_crc32 == b->source_crc32 && a->source_size == b->source_size, "source crc/size");
  CHECK(hawq_qmodel_digest(a) == hawq_qmodel_digest(b), "digest");
}

/* ------------------------------------------------------------------------------------------ */
/* Refusals                                                                                   */

static bool one_line(const hawq_error *err) {
  const char *end = memchr(err->msg, '\0', sizeof err->msg);
  return end && end != err->msg && !memchr(err->msg, '\n', (size_t)(end - err->msg));
}

/* Loads size bytes from an exact-size copy (so ASan sees any over-read) and expects a refusal;
 * returns the status (HAWQ_OK if it was wrongly accepted). */
static hawq_status expect_refusal(const void *data, size_t size, unsigned flags, const char *what,
                                  const char *want, hawq_error *err) {
  void *copy = malloc(size ? size : 1);
  REQUIRE(copy, "out of memory");
  if (size) memcpy(copy, data, size);
  hawq_qmodel *m = (hawq_qmodel *)1;
  hawq_status st = hawq_qmodel_read_buffer(copy, size, "bad.hqm", flags, &m, err);
  free(copy);
  CHECK(st != HAWQ_OK, "%s: accepted", what);
  CHECK(st != HAWQ_ERR_INTERNAL, "%s: internal error: %s", what, err->msg);
  CHECK(st != HAWQ_OK || m == NULL, "%s: a model came back with the refusal", what);
  CHECK(st == HAWQ_OK || one_line(err), "%s: message is not one non-empty line", what);
  CHECK(st == HAWQ_OK || err->status == st, "%s: err.status %d, returned %d", what, err->status,
        st);
  CHECK(st == HAWQ_OK || !want || strstr(err->msg, want), "%s: message '%s' lacks '%s'", what,
        err->msg, want);
  if (st == HAWQ_OK) hawq_qmodel_destroy(m);
  return st;
}

/* Every prefix, including the empty file. */
static void check_truncations(const uint8_t *file, size_t size) {
  hawq_error err;
  int accepted = 0;
  for (size_t len = 0; len < size; len++) {
    char what[64];
    snprintf(what, sizeof what, "truncated to %zu of %zu bytes", len, size);
    if (expect_refusal(file, len, 0, what, NULL, &err) == HAWQ_OK) accepted++;
  }
  printf("truncation: %zu prefixes refused, %d accepted\n", size - (size_t)accepted, accepted);
}

/* Each bit at every offset, then random byte changes at seeded offsets. */
static void check_flips(const uint8_t *file, size_t size, test_rng *rng) {
  uint8_t *buf = malloc(size);
  REQUIRE(buf, "out of memory");
  memcpy(buf, file, size);
  hawq_error err;
  int tried = 0, accepted = 0;
  for (size_t off = 0; off < size; off++) {
    for (int bit = 0; bit < 8; bit++) {
      char what[64];
      snprintf(what, sizeof what, "bit %d of byte %zu flipped", bit, off);
      buf[off] ^= (uint8_t)(1u << bit);
      tried++;
      if (expect_refusal(buf, size, 0, what, NULL, &err) == HAWQ_OK) accepted++;
      buf[off] ^= (uint8_t)(1u << bit);
    }
  }
  for (int k = 0; k < 2000; k++) {
    size_t off = (size_t)test_rng_int(rng, 0, (int64_t)size - 1);
    uint8_t x = (uint8_t)test_rng_int(rng, 1, 255);
    char what[64];
    snprintf(what, sizeof what, "byte %zu xor 0x%02x", off, x);
    buf[off] ^= x;
    tried++;
    if (expect_refusal(buf, size, 0, what, NULL, &err) == HAWQ_OK) accepted++;
    buf[off] ^= x;
  }
  printf("flips: %d changed files refused, %d accepted\n", tried - accepted, accepted);
  free(buf);
}

/* ---- edits through the protobuf-c structs ---- */

/* Every edit records the bytes it changes, so that they can be put back before protobuf-c frees
 * the message (edits point fields at static data). */
#define MAX_UNDO 16
typedef struct editor {
  Onnx__ModelProto *mp;
  struct {
    void *addr;
    size_t n;
    uint8_t old[64];
  } undo[MAX_UNDO];
  int n_undo;
} editor;

static void mark(editor *e, void *addr, size_t n) {
  REQUIRE(e->n_undo < MAX_UNDO && n <= 64, "too many edits");
  e->undo[e->n_undo].addr = addr;
  e->undo[e->n_undo].n = n;
  memcpy(e->undo[e->n_undo].old, addr, n);
  e->n_undo++;
}
#define SET(e, field, value)          \
  do {                                \
    mark(e, &(field), sizeof(field)); \
    (field) = (value);                \
  } while (0)

static Onnx__TensorProto *init_named(editor *e, const char *name) {
  Onnx__GraphProto *g = e->mp->graph;
  for (size_t k = 0; k < g->n_initializer; k++) {
    if (!strcmp(g->initializer[k]->name, name)) return g->initializer[k];
  }
  REQUIRE(0, "no initializer %s", name);
  return NULL;
}

static Onnx__NodeProto *node_named(editor *e, const char *name) {
  Onnx__GraphProto *g = e->mp->graph;
  for (size_t k = 0; k < g->n_node; k++) {
    if (!strcmp(g->node[k]->name, name)) return g->node[k];
  }
  REQUIRE(0, "no node %s", name);
  return NULL;
}

static Onnx__AttributeProto *attr_named(Onnx__NodeProto *n, const char *name) {
  for (size_t k = 0; k < n->n_attribute; k++) {
    if (!strcmp(n->attribute[k]->name, name)) return n->attribute[k];
  }
  REQUIRE(0, "no attribute %s", name);
  return NULL;
}

static Onnx__ValueInfoProto *vi_named(editor *e, const char *name) {
  Onnx__GraphProto *g = e->mp->graph;
  for (size_t k = 0; k < g->n_value_info; k++) {
    if (!strcmp(g->value_info[k]->name, name)) return g->value_info[k];
  }
  REQUIRE(0, "no value_info %s", name);
  return NULL;
}

static Onnx__StringStringEntryProto *meta_named(editor *e, const char *key) {
  for (size_t k = 0; k < e->mp->n_metadata_props; k++) {
    if (!strcmp(e->mp->metadata_props[k]->key, key)) return e->mp->metadata_props[k];
  }
  REQUIRE(0, "no metadata %s", key);
  return NULL;
}

/* Removes initializer `name` by moving the last one into its slot and shortening the list. */
static void remove_init(editor *e, const char *name) {
  Onnx__GraphProto *g = e->mp->graph;
  for (size_t k = 0; k < g->n_initializer; k++) {
    if (strcmp(g->initializer[k]->name, name)) continue;
    SET(e, g->initializer[k], g->initializer[g->n_initializer - 1]);
    SET(e, g->n_initializer, g->n_initializer - 1);
    return;
  }
  REQUIRE(0, "no initializer %s", name);
}

static int64_t dims5[1] = {5};
static int64_t dims44[2] = {4, 4};
static int64_t ints3[3] = {3, 3, 1};
static uint8_t raw20[20];
static int32_t int32_10[10];
static Onnx__TensorProto extra_init;
static Onnx__TensorProto *inits_plus_one[64];
static Onnx__AttributeProto *no_attrs[1];

typedef struct edit_case {
  const char *what;
  const char *want; /* in the message */
  unsigned flags;
  void (*edit)(editor *e);
} edit_case;

static void e_weight_dtype(editor *e) {
  SET(e, init_named(e, "conv1.weight")->data_type, 6);
}
static void e_packed_dtype(editor *e) {
  SET(e, init_named(e, "conv2.dw4.weight")->data_type, 3);
}
static void e_bias_dims(editor *e) {
  SET(e, init_named(e, "conv1.bias")->dims, dims5);
}
static void e_bias_dims_and_raw(editor *e) {
  Onnx__TensorProto *t = init_named(e, "conv1.bias");
  SET(e, t->dims, dims5);
  SET(e, t->raw_data.len, 20);
  SET(e, t->raw_data.data, raw20);
}
static void e_raw_short(editor *e) {
  Onnx__TensorProto *t = init_named(e, "conv1.bias");
  SET(e, t->raw_data.len, t->raw_data.len - 1);
}
static void e_packed_bytes(editor *e) {
  Onnx__TensorProto *t = init_named(e, "conv2.dw4.weight"); /* 9 nibbles per row: 5 bytes */
  SET(e, t->dims, dims44);
  SET(e, t->raw_data.len, 16);
}
static void e_int32_data(editor *e) {
  Onnx__TensorProto *t = init_named(e, "fc.bias");
  SET(e, t->has_raw_data, 0);
  SET(e, t->n_int32_data, 10);
  SET(e, t->int32_data, int32_10);
}
static void e_missing_init(editor *e) {
  remove_init(e, "fc.bias");
}
static void e_unknown_op(editor *e) {
  SET(e, node_named(e, "fc")->op_type, "QGemm");
}
static void e_unknown_domain(editor *e) {
  SET(e, node_named(e, "fc")->domain, "com.example");
}
static void e_version(editor *e) {
  SET(e, meta_named(e, "hawq.format.version")->value, "2");
}
static void e_format(editor *e) {
  SET(e, meta_named(e, "hawq.format")->value, "other");
}
static void e_no_format(editor *e) {
  SET(e, meta_named(e, "hawq.format")->key, "hawq.formal");
}
static void e_dup_meta(editor *e) {
  SET(e, meta_named(e, "hawq.bits")->key, "hawq.calibration");
}
static void e_opset(editor *e) {
  for (size_t k = 0; k < e->mp->n_opset_import; k++) {
    if (!strcmp(e->mp->opset_import[k]->domain, "ai.hawq")) {
      SET(e, e->mp->opset_import[k]->version, 2);
    }
  }
}
static void e_ir_version(editor *e) {
  SET(e, e->mp->ir_version, 7);
}
static void e_dup_tensor(editor *e) {
  SET(e, vi_named(e, "c2")->name, "c1");
}
static void e_init_is_tensor(editor *e) {
  SET(e, init_named(e, "conv1.bias")->name, "c2");
}
static void e_dup_init(editor *e) {
  SET(e, init_named(e, "fc.bias")->name, "fc.weight");
}
static void e_attr_count(editor *e) {
  Onnx__AttributeProto *a = attr_named(node_named(e, "conv1"), "kernel_shape");
  SET(e, a->n_ints, 3);
  SET(e, a->ints, ints3);
}
static void e_attr_type(editor *e) {
  Onnx__AttributeProto *a = attr_named(node_named(e, "conv1"), "group");
  SET(e, a->type, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  SET(e, a->has_i, 0);
  SET(e, a->has_f, 1);
}
static void e_attr_missing(editor *e) {
  Onnx__NodeProto *n = node_named(e, "maxpool");
  SET(e, n->n_attribute, n->n_attribute - 1);
}
static void e_attr_unknown(editor *e) {
  SET(e, attr_named(node_named(e, "avgpool"), "count_include_pad")->name, "ceil_mode");
}
static void e_attr_on_add(editor *e) {
  Onnx__NodeProto *add = node_named(e, "add");
  SET(e, add->n_attribute, 1);
  no_attrs[0] = attr_named(node_named(e, "conv1"), "group");
  SET(e, add->attribute, no_attrs);
}
static void e_attr_range(editor *e) {
  SET(e, attr_named(node_named(e, "conv1"), "group")->i, (int64_t)1 << 40);
}
static void e_digest_data(editor *e) {
  Onnx__TensorProto *t = init_named(e, "fc.weight");
  SET(e, t->raw_data.data[7], (uint8_t)(t->raw_data.data[7] ^ 1));
}
static void e_digest_text(editor *e) {
  SET(e, meta_named(e, "hawq.digest")->value, "0123456789ABCDEF");
}
static void e_digest_scale(editor *e) {
  SET(e, vi_named(e, "c2")->doc_string, "qtype=I8 lo=-127 hi=127 scale=0.032");
}
static void e_elem_type(editor *e) {
  SET(e, vi_named(e, "c2")->type->tensor_type->elem_type, 5);
}
static void e_doc_junk(editor *e) {
  SET(e, vi_named(e, "c2")->doc_string, "qtype=I8 lo=-127 hi=127 scale=0.031 extra=1");
}
static void e_doc_noncanonical(editor *e) {
  SET(e, vi_named(e, "c2")->doc_string, "qtype=I8 lo=-127 hi=+127 scale=0.031");
}
static void e_dim_zero(editor *e) {
  SET(e, vi_named(e, "c2")->type->tensor_type->shape->dim[1]->dim_value, 0);
}
static void e_unused_init(editor *e) {
  Onnx__GraphProto *g = e->mp->graph;
  REQUIRE(g->n_initializer < 63, "too many initializers");
  memcpy(inits_plus_one, g->initializer, g->n_initializer * sizeof *g->initializer);
  onnx__tensor_proto__init(&extra_init);
  extra_init.name = "stray";
  extra_init.has_data_type = 1;
  extra_init.data_type = 6;
  inits_plus_one[g->n_initializer] = &extra_init;
  SET(e, g->initializer, inits_plus_one);
  SET(e, g->n_initializer, g->n_initializer + 1);
}
static void e_output_unknown(editor *e) {
  SET(e, node_named(e, "fc")->output[0], "nope");
}
static void e_input_is_init(editor *e) {
  SET(e, node_named(e, "fc")->input[0], "conv1.weight");
}
static void e_too_few_inputs(editor *e) {
  Onnx__NodeProto *n = node_named(e, "requant");
  SET(e, n->n_input, 2);
}
static void e_bad_multiplier(editor *e) {
  SET(e, init_named(e, "conv1.multiplier")->raw_data.data[3], 0);
}
static void e_residual_shape(editor *e) {
  SET(e, node_named(e, "conv3")->input[1], "x0");
}
static void e_weight_bits(editor *e) {
  SET(e, attr_named(node_named(e, "conv1"), "weight_bits")->i, 9);
}
static void e_exec_order(editor *e) {
  Onnx__GraphProto *g = e->mp->graph;
  Onnx__NodeProto *first = g->node[0];
  SET(e, g->node[0], g->node[1]);
  SET(e, g->node[1], first);
}
static void e_graph_input(editor *e) {
  SET(e, e->mp->graph->input[0]->type->tensor_type->elem_type, 3);
}
static void e_pp_partial(editor *e) {
  SET(e, meta_named(e, "hawq.input.std")->key, "hawq.x");
}
static void e_pp_noncanonical(editor *e) {
  SET(e, meta_named(e, "hawq.input.mean")->value, "0.4850,0.456,0.406");
}
static void e_crc(editor *e) {
  SET(e, meta_named(e, "hawq.source.crc32")->value, "DEADBEEF");
}
static void e_producer(editor *e) {
  SET(e, e->mp->producer_name, "other");
}
static void e_doc(editor *e) {
  SET(e, e->mp->doc_string, "hello");
}

static const edit_case edit_cases[] = {
    {"weight dtype", "conv1.weight' (its weight) is INT32, expected INT8", 0, e_weight_dtype},
    {"packed weight dtype", "is INT8, expected UINT8", 0, e_packed_dtype},
    {"bias dims", "has dims [5], expected [4]", 0, e_bias_dims},
    {"bias dims with matching raw_data", "has dims [5], expected [4]", 0, e_bias_dims_and_raw},
    {"raw_data short", "15 bytes of raw_data, expected 16", 0, e_raw_short},
    {"packed byte count", "has dims [4, 4], expected [4, 5]", 0, e_packed_bytes},
    {"int32_data instead of raw_data", "raw_data only", 0, e_int32_data},
    {"missing initializer", "bias initializer 'fc.bias' is missing", 0, e_missing_init},
    {"unknown op", "op_type is not one of", 0, e_unknown_op},
    {"unknown domain", "domain is 'com.example', expected 'ai.hawq'", 0, e_unknown_domain},
    {"format version 2", "format version '2' is not one this build reads (it reads version 1)", 0,
     e_version},
    {"other format", "'hawq.format' is 'other', expected 'hawq-qmodel'", 0, e_format},
    {"no format", "not a hawq integer model", 0, e_no_format},
    {"duplicate metadata", "appears twice", 0, e_dup_meta},
    {"opset version", "'ai.hawq' version 2 is not one this build reads", 0, e_opset},
    {"ir_version", "ir_version is 7, expected 8", 0, e_ir_version},
    {"duplicate tensor", "tensor 'c1' is described twice", 0, e_dup_tensor},
    {"initializer named like a tensor", "has the name of a tensor", 0, e_init_is_tensor},
    {"duplicate initializer", "name 'fc.weight' is used twice", 0, e_dup_init},
    {"attribute count", "'kernel_shape' is not 2 ints", 0, e_attr_count},
    {"attribute type", "'group' is not one int", 0, e_attr_type},
    {"attribute missing", "attribute 'pads' is missing", 0, e_attr_missing},
    {"attribute unknown", "attribute 'ceil_mode' is not one of QAvgPool's", 0, e_attr_unknown},
    {"attribute on QAdd", "attribute 'group' is not one of QAdd's", 0, e_attr_on_add},
    {"attribute range", "outside the int32 range", 0, e_attr_range},
    {"weight changed", "checksum mismatch: the file is corrupt or was edited", 0, e_digest_data},
    {"digest text", "expected 16 lowercase hex digits", 0, e_digest_text},
    {"scale changed", "checksum mismatch", 0, e_digest_scale},
    {"elem_type", "elem_type INT16, expected INT8 for qtype I8", 0, e_elem_type},
    {"doc_string junk", "is not a description", 0, e_doc_junk},
    {"doc_string not canonical", "is not a description", 0, e_doc_noncanonical},
    {"zero dimension", "dimension 1 is not a size", 0, e_dim_zero},
    {"unused initializer", "'stray' is not a parameter of any node", 0, e_unused_init},
    {"unknown output", "output 'nope' is not described", 0, e_output_unknown},
    {"input is an initializer", "(it is an initializer)", 0, e_input_is_init},
    {"too few inputs", "2 inputs, expected 1..64 tensors then 2 initializers", 0, e_too_few_inputs},
    {"bad multiplier", "checksum mismatch", 0, e_bad_multiplier},
    {"bad multiplier, no digest", "dyadic[0]", HAWQ_QMODEL_READ_NO_DIGEST, e_bad_multiplier},
    {"residual shape, no digest", "residual 'x0'", HAWQ_QMODEL_READ_NO_DIGEST, e_residual_shape},
    {"weight_bits 9, no digest", "weight_bits 9", HAWQ_QMODEL_READ_NO_DIGEST, e_weight_bits},
    {"execution order, no digest", "expected an earlier node", HAWQ_QMODEL_READ_NO_DIGEST,
     e_exec_order},
    {"graph input type", "differs from its value_info", 0, e_graph_input},
    {"partial preprocessing", "expected all or none", 0, e_pp_partial},
    {"preprocessing not canonical", "expected it written as", 0, e_pp_noncanonical},
    {"crc32 uppercase", "8 lowercase hex digits", 0, e_crc},
    {"producer", "producer_name is 'other'", 0, e_producer},
    {"model doc_string", "which the format does not define", 0, e_doc},
};

static void check_edits(const uint8_t *file, size_t size) {
  for (size_t k = 0; k < sizeof edit_cases / sizeof *edit_cases; k++) {
    const edit_case *c = &edit_cases[k];
    editor e = {.mp = onnx__model_proto__unpack(NULL, size, file)};
    REQUIRE(e.mp, "the saved file does not unpack");
    c->edit(&e);
    size_t n = onnx__model_proto__get_packed_size(e.mp);
    uint8_t *buf = malloc(n ? n : 1);
    REQUIRE(buf, "out of memory");
    onnx__model_proto__pack(e.mp, buf);
    while (e.n_undo > 0) {
      e.n_undo--;
      memcpy(e.undo[e.n_undo].addr, e.undo[e.n_undo].old, e.undo[e.n_undo].n);
    }
    onnx__model_proto__free_unpacked(e.mp, NULL);
    hawq_error err;
    expect_refusal(buf, n, c->flags, c->what, c->want, &err);
    if (getenv("HAWQ_TEST_VERBOSE")) printf("  %-36s %s\n", c->what, err.msg);
    free(buf);
  }
  printf("edits: %zu cases refused\n", sizeof edit_cases / sizeof *edit_cases);
}

/* Not protobuf, a float ONNX model, no file, and save's own refusals. */
static void check_other_refusals(void) {
  hawq_error err;
  const char *text = "hello, this is not a model\n";
  expect_refusal(text, strlen(text), 0, "text", "not an ONNX file", &err);
  expect_refusal("", 0, 0, "empty", "empty file", &err);
  size_t size;
  void *onnx = test_read_file(FLOAT_ONNX, &size);
  if (onnx) {
    expect_refusal(onnx, size, 0, "a float ONNX model", "not a hawq integer model", &err);
    free(onnx);
  }
  hawq_qmodel *m = (hawq_qmodel *)1;
  hawq_status st = hawq_qmodel_load("/nonexistent/model.hqm", &m, &err);
  CHECK(st == HAWQ_ERR_IO && m == NULL && one_line(&err) && strstr(err.msg, "/nonexistent"),
        "missing file: %d %s", st, err.msg);

  /* save refuses what it cannot write: duplicate tensor names, an invalid model. */
  hawq_qmodel *bad = build_model();
  char path[512];
  snprintf(path, sizeof path, "%s/bad.hqm", test_tmpdir());
  free(bad->tensors[3].name);
  bad->tensors[3].name = dup_str("c1");
  st = hawq_qmodel_save(bad, path, &err);
  CHECK(st != HAWQ_OK && one_line(&err) && strstr(err.msg, "'c1' is used twice"), "dup save: %s",
        err.msg);
  bad->nodes[4].dyadic[0].c = 0;
  st = hawq_qmodel_save(bad, path, &err);
  CHECK(st == HAWQ_ERR_PARSE && strstr(err.msg, "dyadic[0]"), "invalid save: %s", err.msg);
  CHECK(access(path, F_OK) != 0, "a refused save left %s", path);
  hawq_qmodel_destroy(bad);
}

/* ------------------------------------------------------------------------------------------ */

int main(void) {
  test_rng rng = test_rng_seeded("test_qmodel_io");
  hawq_error err;
  hawq_qmodel *m = build_model();
  hawq_status st = hawq_qmodel_validate(m, "test model", &err);
  REQUIRE(st == HAWQ_OK, "the test model is invalid: %s", err.msg);

  char path[512], path2[512];
  snprintf(path, sizeof path, "%s/model.hqm", test_tmpdir());
  snprintf(path2, sizeof path2, "%s/again.hqm", test_tmpdir());
  st = hawq_qmodel_save(m, path, &err);
  REQUIRE(st == HAWQ_OK, "save: %s", err.msg);
  const char *out = getenv("HAWQ_QMODEL_WRITE");
  if (out) REQUIRE(hawq_qmodel_save(m, out, &err) == HAWQ_OK, "save %s: %s", out, err.msg);

  hawq_qmodel *loaded = NULL;
  st = hawq_qmodel_load(path, &loaded, &err);
  REQUIRE(st == HAWQ_OK && loaded, "load: %s", err.msg);
  check_same_model(m, loaded);
  st = hawq_qmodel_save(loaded, path2, &err);
  REQUIRE(st == HAWQ_OK, "save again: %s", err.msg);
  size_t size = 0, size2 = 0;
  uint8_t *file = test_read_file(path, &size), *file2 = test_read_file(path2, &size2);
  REQUIRE(file && file2, "cannot read the saved files back");
  CHECK(size == size2 && !memcmp(file, file2, size), "saving the loaded model changed the bytes");
  void *mem;
  size_t mem_size;
  REQUIRE(hawq_qmodel_serialize(m, NULL, &mem, &mem_size, &err) == HAWQ_OK, "%s", err.msg);
  CHECK(mem_size == size && !memcmp(mem, file, size), "serialize differs from save");
  free(mem);
  printf("round trip: %zu bytes, %d tensors, %d nodes, digest %016llx\n", size, m->n_tensors,
         m->n_nodes, (unsigned long long)hawq_qmodel_digest(m));

  /* A model without preprocessing or provenance strings round-trips too. */
  hawq_qmodel *bare = build_model();
  bare->preprocess = hawq_preprocess_default();
  free(bare->bits_json), free(bare->calibration_json), free(bare->source_name);
  bare->bits_json = bare->calibration_json = bare->source_name = NULL;
  hawq_qmodel *bare2 = NULL;
  REQUIRE(hawq_qmodel_save(bare, path2, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(hawq_qmodel_load(path2, &bare2, &err) == HAWQ_OK, "%s", err.msg);
  check_same_model(bare, bare2);
  CHECK(hawq_qmodel_digest(bare) != hawq_qmodel_digest(m), "digest ignores provenance");
  hawq_qmodel_destroy(bare);
  hawq_qmodel_destroy(bare2);

  /* The committed version-1 file still loads, and writes back the same bytes. */
  size_t fsize;
  uint8_t *fixture = test_read_file(FIXTURE, &fsize);
  CHECK(fixture, "cannot read %s", FIXTURE);
  if (fixture) {
    hawq_qmodel *f = NULL;
    st = hawq_qmodel_load_buffer(fixture, fsize, FIXTURE, &f, &err);
    CHECK(st == HAWQ_OK, "%s: %s", FIXTURE, err.msg);
    if (st == HAWQ_OK) {
      REQUIRE(hawq_qmodel_serialize(f, NULL, &mem, &mem_size, &err) == HAWQ_OK, "%s", err.msg);
      CHECK(mem_size == fsize && !memcmp(mem, fixture, fsize), "%s does not write back the same",
            FIXTURE);
      free(mem);
      hawq_qmodel_destroy(f);
    }
    free(fixture);
  }

  check_truncations(file, size);
  check_flips(file, size, &rng);
  check_edits(file, size);
  check_other_refusals();

  free(file);
  free(file2);
  hawq_qmodel_destroy(loaded);
  hawq_qmodel_destroy(m);
  remove(path);
  remove(path2);
  rmdir(test_tmpdir());
  return test_report("test_qmodel_io");
}
