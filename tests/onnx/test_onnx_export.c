/* ONNX export (hawq_onnx_write_graph): every fixture model, the bundled model and hand-built
 * graphs covering each IR op are written, read back, and run through the float engine at batch
 * 3 and 1 next to the original graph. A graph whose nodes map one to one onto ONNX nodes must
 * give bit-identical outputs; the two constructs written as several ONNX nodes (softmax over
 * several axes, Gemm on a rank-3 input) must agree to float rounding. Also checked: the model's
 * header (ir_version 7, opset 13, producer), metadata (preprocessing and extra entries), extra
 * initializers read back by hawq_onnx_read_extra and ignored by the importer, byte-identical
 * output from two exports, and one-line refusals of what ONNX opset 13 cannot express.
 *
 * With HAWQ_EXPORT_DUMP=DIR set, the exported models, a random input batch and hawq's outputs
 * (logical layout, .npy) are left in DIR for tools/ort_check.sh to run through ONNX Runtime. */
#include <float.h>
#include <math.h>

#include "core/graph.h"
#include "core/preprocess.h"
#include "data/npy.h"
#include "hawq/hawq.h"
#include "onnx/export.h"
#include "onnx/onnx_internal.h"
#include "test_util.h"

#define FIXTURES "tests/onnx/fixtures"
#define BATCH 3
#define EXTRA_PREFIX "hawq.optimizer."

/* ---- running graphs ---- */

typedef struct outputs {
  int n;
  size_t size[8];
  float *data[8]; /* physical layout, BATCH samples */
} outputs;

static void outputs_free(outputs *o) {
  for (int k = 0; k < o->n; k++) free(o->data[k]);
  memset(o, 0, sizeof *o);
}

/* Runs g on BATCH samples of physical input (one array per graph input) at plan batch `batch`
 * (BATCH or 1), collecting every output; a graph without a batch runs once. */
static bool run_graph(const hawq_graph *g, float *const *inputs, int batch, outputs *out) {
  memset(out, 0, sizeof *out);
  if (g->n_outputs > 8 || g->n_inputs > 8) return false;
  hawq_error err;
  hawq_float_plan *p = NULL;
  hawq_float_plan_options po = {.batch = batch, .threads = 2};
  if (hawq_float_plan_create(g, &po, &p, &err)) {
    fprintf(stderr, "plan: %s\n", err.msg);
    return false;
  }
  bool batched = false;
  for (int k = 0; k < g->n_inputs; k++) batched |= g->tensors[g->inputs[k]].batched;
  size_t per[8];
  out->n = g->n_outputs;
  for (int k = 0; k < out->n; k++) {
    bool b = g->tensors[g->outputs[k]].batched;
    per[k] = hawq_float_plan_output_size(p, (size_t)k) / (size_t)(b ? batch : 1);
    out->size[k] = per[k] * (b ? BATCH : 1);
    out->data[k] = calloc(out->size[k], sizeof(float));
  }
  bool ok = true;
  for (int first = 0; first < (batched ? BATCH : 1); first += batch) {
    const float *ins[8];
    for (int k = 0; k < g->n_inputs; k++) {
      const hawq_tensor *t = &g->tensors[g->inputs[k]];
      ins[k] = inputs[k] + (t->batched ? (size_t)first * (size_t)hawq_tensor_numel(t) : 0);
    }
    if (hawq_float_plan_run(p, ins, &err)) {
      fprintf(stderr, "run: %s\n", err.msg);
      ok = false;
      break;
    }
    for (int k = 0; k < out->n; k++) {
      bool b = g->tensors[g->outputs[k]].batched;
      memcpy(out->data[k] + (b ? (size_t)first * per[k] : 0), hawq_float_plan_output(p, (size_t)k),
             per[k] * (size_t)(b ? batch : 1) * sizeof(float));
    }
  }
  hawq_float_plan_destroy(p);
  if (!ok) outputs_free(out);
  return ok;
}

/* Random physical inputs for g's graph inputs, BATCH samples each (batched or not). */
static float **random_inputs(const hawq_graph *g, test_rng *rng) {
  float **in = calloc((size_t)g->n_inputs + 1, sizeof *in);
  for (int k = 0; k < g->n_inputs; k++) {
    const hawq_tensor *t = &g->tensors[g->inputs[k]];
    size_t n = (size_t)hawq_tensor_numel(t) * (t->batched ? BATCH : 1);
    in[k] = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) in[k][i] = test_rng_float(rng, -2, 2);
  }
  return in;
}

static void free_inputs(const hawq_graph *g, float **in) {
  for (int k = 0; k < g->n_inputs; k++) free(in[k]);
  free(in);
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

/* Logical dims of tensor t with the batch written as `batch`. */
static void batch_dims(const hawq_tensor *t, int batch, int64_t *dims) {
  for (int k = 0; k < t->rank; k++) dims[k] = t->dims[k];
  if (t->batched) dims[0] = batch;
}

/* Writes physical data of tensor t (BATCH samples if batched) as a logical .npy file. */
static void dump_npy(const char *path, const hawq_tensor *t, const float *phys) {
  int64_t dims[HAWQ_MAX_RANK];
  batch_dims(t, BATCH, dims);
  int64_t n = 1;
  for (int k = 0; k < t->rank; k++) n *= dims[k];
  float *logical = malloc((size_t)(n ? n : 1) * sizeof(float));
  hawq_tensor_to_logical(phys, logical, t->rank, dims);
  hawq_error err;
  CHECK(hawq_npy_write_f32(path, t->rank, dims, logical, &err) == HAWQ_OK, "%s", err.msg);
  free(logical);
}

/* ---- the written file ---- */

static Onnx__ModelProto *read_model(const char *path) {
  size_t size;
  void *buf = test_read_file(path, &size);
  if (!buf) return NULL;
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, buf);
  free(buf);
  return m;
}

static const char *model_meta(const Onnx__ModelProto *m, const char *key) {
  for (size_t k = 0; k < m->n_metadata_props; k++) {
    if (!strcmp(m->metadata_props[k]->key, key)) return m->metadata_props[k]->value;
  }
  return NULL;
}

static void check_header(const char *what, const char *path) {
  Onnx__ModelProto *m = read_model(path);
  CHECK(m, "%s: written model does not parse", what);
  if (!m) return;
  CHECK(m->has_ir_version && m->ir_version == 7, "%s: ir_version %lld", what,
        (long long)m->ir_version);
  CHECK(m->n_opset_import == 1 &&
            (!m->opset_import[0]->domain || !strcmp(m->opset_import[0]->domain, "")) &&
            m->opset_import[0]->version == 13,
        "%s: opset_import is not exactly opset 13", what);
  CHECK(m->producer_name && !strcmp(m->producer_name, "hawq"), "%s: producer_name", what);
  /* metadata keys are unique (ONNX's checker insists) */
  for (size_t i = 0; i < m->n_metadata_props; i++) {
    for (size_t j = i + 1; j < m->n_metadata_props; j++) {
      CHECK(strcmp(m->metadata_props[i]->key, m->metadata_props[j]->key), "%s: key '%s' twice",
            what, m->metadata_props[i]->key);
    }
  }
  CHECK(model_meta(m, "hawq.test.note") && !strcmp(model_meta(m, "hawq.test.note"), "exported"),
        "%s: extra metadata missing", what);
  onnx__model_proto__free_unpacked(m, NULL);
}

static bool same_file(const char *a, const char *b) {
  size_t na = 0, nb = 0;
  void *da = test_read_file(a, &na), *db = test_read_file(b, &nb);
  bool same = da && db && na == nb && !memcmp(da, db, na);
  free(da);
  free(db);
  return same;
}

static int count_params(const hawq_graph *g) {
  int n = 0;
  for (int t = 0; t < g->n_tensors; t++) n += g->tensors[t].kind == HAWQ_TENSOR_PARAM;
  return n;
}

/* ---- the round trip ---- */

/* Exports g (with metadata and two extra initializers), checks the file, re-imports it and
 * compares the two graphs' outputs. exact: outputs must be bit-identical (and the graphs have
 * the same nodes, shapes and parameters). fixed: import with fixed shapes. */
static void round_trip(const char *what, hawq_graph *g, bool exact, bool fixed, test_rng *rng) {
  const char *tmp = test_tmpdir();
  char path[512], path2[512];
  snprintf(path, sizeof path, "%s/%s.onnx", tmp, what);
  snprintf(path2, sizeof path2, "%s/%s.again.onnx", tmp, what);
  hawq_error err;

  /* The first extra entry replaces one the graph has. */
  if (g->n_meta < HAWQ_MAX_METADATA) {
    g->meta_key[g->n_meta] = strdup("hawq.test.note");
    g->meta_value[g->n_meta++] = strdup("original");
  }
  const char *keys[2] = {"hawq.test.note", "hawq.test.more"};
  const char *values[2] = {"exported", "1"};
  int64_t d1[1] = {5}, d2[3] = {2, 1, 3};
  float e1[5], e2[6];
  for (int k = 0; k < 5; k++) e1[k] = test_rng_float(rng, -1, 1);
  for (int k = 0; k < 6; k++) e2[k] = test_rng_float(rng, -1, 1);
  e2[3] = -0.0f;
  struct hawq_onnx_extra_tensor extra[2] = {{EXTRA_PREFIX "m", 1, d1, e1},
                                            {EXTRA_PREFIX "v", 3, d2, e2}};
  hawq_onnx_write_options opt = {2, keys, values, 2, extra};
  CHECK(hawq_onnx_write_graph(g, path, &opt, &err) == HAWQ_OK, "%s: export: %s", what, err.msg);
  CHECK(hawq_onnx_write_graph(g, path2, &opt, &err) == HAWQ_OK, "%s: export: %s", what, err.msg);
  CHECK(same_file(path, path2), "%s: two exports differ", what);
  check_header(what, path);

  /* Extra initializers come back with their shapes and bits; others with the prefix do not
   * exist. */
  hawq_onnx_extra_set *set = NULL;
  CHECK(hawq_onnx_read_extra(path, EXTRA_PREFIX, &set, &err) == HAWQ_OK, "%s: read_extra: %s", what,
        err.msg);
  if (set) {
    CHECK(set->n == 2, "%s: %zu extra initializers read back, expected 2", what, set->n);
    for (size_t k = 0; k < set->n && k < 2; k++) {
      const hawq_onnx_extra_item *it = &set->items[k];
      bool ok = !strcmp(it->name, extra[k].name) && it->rank == extra[k].rank &&
                !memcmp(it->dims, extra[k].dims, (size_t)it->rank * sizeof(int64_t)) &&
                it->count == (k ? 6 : 5) &&
                !memcmp(it->data, extra[k].data, (size_t)it->count * sizeof(float));
      CHECK(ok, "%s: extra initializer %zu does not round-trip", what, k);
    }
    hawq_onnx_extra_set_free(set);
  }
  CHECK(hawq_onnx_read_extra(path, "no.such.prefix.", &set, &err) == HAWQ_OK && set->n == 0,
        "%s: read_extra with an unused prefix", what);
  hawq_onnx_extra_set_free(set);

  /* The importer ignores the unused initializers. */
  hawq_graph *g2 = NULL;
  hawq_import_options io = {.fixed_shapes = fixed};
  CHECK(hawq_graph_load_onnx(path, &io, &g2, &err) == HAWQ_OK, "%s: re-import: %s", what, err.msg);
  if (!g2) {
    remove(path);
    remove(path2);
    return;
  }
  CHECK(g2->n_outputs == g->n_outputs && g2->n_inputs == g->n_inputs, "%s: inputs/outputs differ",
        what);
  hawq_preprocess p1 = g->preprocess, p2 = g2->preprocess;
  CHECK(p1.has_metadata == p2.has_metadata, "%s: preprocess metadata lost", what);
  if (p1.has_metadata) {
    CHECK(p1.pixel_scale == p2.pixel_scale && p1.channels == p2.channels &&
              !memcmp(p1.mean, p2.mean, sizeof p1.mean) && !memcmp(p1.std, p2.std, sizeof p1.std),
          "%s: preprocessing differs after the round trip", what);
  }
  bool found = false;
  for (int k = 0; k < g2->n_meta; k++) {
    found |= !strcmp(g2->meta_key[k], "hawq.test.note") && !strcmp(g2->meta_value[k], "exported");
  }
  CHECK(found, "%s: extra metadata not imported", what);
  if (exact) {
    CHECK(g2->n_nodes == g->n_nodes, "%s: %d nodes after the round trip, %d before", what,
          g2->n_nodes, g->n_nodes);
    CHECK(count_params(g2) == count_params(g), "%s: %d parameters after the round trip, %d before",
          what, count_params(g2), count_params(g));
    for (int k = 0; k < g->n_nodes && k < g2->n_nodes; k++) {
      const hawq_tensor *a = &g->tensors[g->nodes[k].output];
      const hawq_tensor *b = &g2->tensors[g2->nodes[k].output];
      CHECK(g->nodes[k].op == g2->nodes[k].op && a->rank == b->rank && a->batched == b->batched &&
                !memcmp(a->dims, b->dims, sizeof a->dims),
            "%s: node %d ('%s') differs after the round trip", what, k, g->nodes[k].name);
    }
  }
  for (int k = 0; k < g->n_outputs && k < g2->n_outputs; k++) {
    const hawq_tensor *a = &g->tensors[g->outputs[k]], *b = &g2->tensors[g2->outputs[k]];
    CHECK(a->rank == b->rank && !memcmp(a->dims, b->dims, sizeof a->dims) &&
              a->batched == b->batched && !strcmp(a->name, b->name),
          "%s: output %d shape or name differs", what, k);
  }

  float **in = random_inputs(g, rng);
  const char *dump = getenv("HAWQ_EXPORT_DUMP");
  for (int batch = BATCH; batch >= 1; batch -= BATCH - 1) {
    outputs o1, o2;
    bool ok1 = run_graph(g, in, batch, &o1), ok2 = ok1 && run_graph(g2, in, batch, &o2);
    CHECK(ok1 && ok2, "%s batch %d: run failed", what, batch);
    if (!ok1 || !ok2) {
      if (ok1) outputs_free(&o1);
      break;
    }
    for (int k = 0; k < o1.n; k++) {
      if (exact) {
        CHECK(!memcmp(o1.data[k], o2.data[k], o1.size[k] * sizeof(float)),
              "%s batch %d output %d: not bit-identical after the round trip (max rel diff %.3g)",
              what, batch, k, max_rel_diff(o2.data[k], o1.data[k], o1.size[k]));
      } else {
        double e = max_rel_diff(o2.data[k], o1.data[k], o1.size[k]);
        CHECK(e < 1e-5, "%s batch %d output %d: max rel diff %.3g after the round trip", what,
              batch, k, e);
      }
    }
    if (dump && batch == BATCH) {
      char p[700];
      snprintf(p, sizeof p, "%s/%s.onnx", dump, what);
      CHECK(hawq_onnx_write_graph(g, p, &opt, &err) == HAWQ_OK, "%s", err.msg);
      for (int k = 0; k < g->n_inputs; k++) {
        snprintf(p, sizeof p, "%s/%s.input%d.npy", dump, what, k);
        dump_npy(p, &g->tensors[g->inputs[k]], in[k]);
      }
      for (int k = 0; k < o1.n; k++) {
        snprintf(p, sizeof p, "%s/%s.output%d.npy", dump, what, k);
        dump_npy(p, &g->tensors[g->outputs[k]], o1.data[k]);
      }
    }
    printf("%s batch %d: %d outputs %s\n", what, batch, o1.n,
           exact ? "bit-identical" : "within 1e-5");
    outputs_free(&o1);
    outputs_free(&o2);
  }
  free_inputs(g, in);
  hawq_graph_destroy(g2);
  remove(path);
  remove(path2);
}

/* ---- hand-built graphs ---- */

typedef struct builder {
  hawq_graph *g;
  test_rng *rng;
} builder;

static int tensor(builder *b, const char *name, hawq_tensor_kind kind, int rank,
                  const int64_t *dims, bool batched) {
  int t = hawq_graph_add_tensor(b->g, name, kind, rank, dims, batched);
  REQUIRE(t >= 0, "out of memory");
  return t;
}

/* A parameter of logical shape dims with random values in [lo, hi) (physical order: random
 * either way). */
static int param(builder *b, const char *name, int rank, const int64_t *dims, float lo, float hi) {
  int t = tensor(b, name, HAWQ_TENSOR_PARAM, rank, dims, false);
  size_t n = (size_t)hawq_tensor_numel(&b->g->tensors[t]);
  float *d = hawq_alloc_floats(n);
  for (size_t i = 0; i < n; i++) d[i] = test_rng_float(b->rng, lo, hi);
  b->g->tensors[t].data = d;
  return t;
}

/* A node computing a new batched activation `name` of the given shape; returns the node. */
static hawq_node *node(builder *b, hawq_op op, const char *op_type, const char *name, int n_in,
                       const int *in, int rank, const int64_t *dims, bool batched, int *out) {
  int y = tensor(b, name, HAWQ_TENSOR_ACTIVATION, rank, dims, batched);
  int k = hawq_graph_add_node(b->g, op, name, op_type, n_in, in, y);
  REQUIRE(k >= 0, "out of memory");
  if (out) *out = y;
  return &b->g->nodes[k];
}

static void set_outputs(hawq_graph *g, int n, const int *t) {
  g->outputs = malloc((size_t)n * sizeof(int));
  memcpy(g->outputs, t, (size_t)n * sizeof(int));
  g->n_outputs = n;
}

static void set_input(hawq_graph *g, int t) {
  g->inputs = malloc(sizeof(int));
  g->inputs[0] = t;
  g->n_inputs = 1;
}

static hawq_pool_attr pool_attr(int k, int s, int pt, int pl, int pb, int pr, bool cip) {
  hawq_pool_attr a = {{k, k}, {s, s}, {1, 1}, {pt, pl, pb, pr}, cip};
  return a;
}

/* Every op, batched, with the awkward cases: a parameter shared by two convs, a grouped dilated
 * strided conv, constants as first operands, ceil-mode pooling written both ways, a negative
 * pad, softmax over three axes, Gemm on a rank-3 input, intermediate tensors as outputs. */
static hawq_graph *build_opzoo(test_rng *rng) {
  builder b = {hawq_graph_new("opzoo"), rng};
  hawq_graph *g = b.g;
  g->opset = 13;
  g->preprocess = hawq_preprocess_default();
  g->preprocess.has_metadata = true;
  g->preprocess.mean[0] = 0.25f;
  g->preprocess.std[0] = 0.5f;
  int64_t xd[4] = {1, 3, 10, 11};
  int x = tensor(&b, "input", HAWQ_TENSOR_INPUT, 4, xd, true);
  set_input(g, x);
  int t, out[6];
  hawq_node *n;

  int64_t wd[4] = {4, 3, 3, 3}, k4[1] = {4};
  int in_conv[3] = {x, param(&b, "conv1.w", 4, wd, -0.5f, 0.5f),
                    param(&b, "conv1.b", 1, k4, -1, 1)};
  int64_t a4[4] = {1, 4, 10, 11};
  n = node(&b, HAWQ_OP_CONV, "Conv", "conv1", 3, in_conv, 4, a4, true, &t);
  n->attr.conv = (hawq_conv_attr){1, {1, 1}, {1, 1}, {1, 1, 1, 1}};
  int in_bn[5] = {t, param(&b, "bn.scale", 1, k4, 0.5f, 1.5f), param(&b, "bn.bias", 1, k4, -1, 1),
                  param(&b, "bn.mean", 1, k4, -1, 1), param(&b, "bn.var", 1, k4, 0.5f, 2)};
  n = node(&b, HAWQ_OP_BATCHNORM, "BatchNormalization", "bn", 5, in_bn, 4, a4, true, &t);
  n->attr.bn.epsilon = 1e-3f;
  n = node(&b, HAWQ_OP_CLIP, "Clip", "clip", 1, &t, 4, a4, true, &t);
  n->attr.clip = (hawq_clip_attr){-0.5f, 1.5f};
  int clip = t;
  n = node(&b, HAWQ_OP_LEAKY_RELU, "LeakyRelu", "leaky", 1, &t, 4, a4, true, &t);
  n->attr.leaky.alpha = 0.2f;
  int leaky = t;
  int64_t c4[4] = {1, 4, 1, 1}, one[4] = {1, 1, 1, 1};
  int in_sub[2] = {param(&b, "sub.k", 4, c4, -1, 1), t}; /* constant first */
  node(&b, HAWQ_OP_SUB, "Sub", "sub", 2, in_sub, 4, a4, true, &t);
  int in_div[2] = {t, param(&b, "div.k", 4, one, 2, 3)};
  node(&b, HAWQ_OP_DIV, "Div", "div", 2, in_div, 4, a4, true, &t);
  /* 10x11 -> 5x5: ceil mode adds a row (grown end pad, ceil_mode 0) */
  int64_t p5[4] = {1, 4, 5, 5};
  n = node(&b, HAWQ_OP_MAXPOOL, "MaxPool", "maxpool_ceil", 1, &t, 4, p5, true, &t);
  n->attr.pool = pool_attr(3, 2, 0, 0, 0, 0, false);
  out[2] = t;
  /* 5x5 -> 3x2 with count_include_pad: rows need ceil_mode 1; in the columns ceil_mode 1 gives
   * 3 windows before PyTorch's rule drops the one starting in the end padding. */
  int64_t p32[4] = {1, 4, 3, 2};
  n = node(&b, HAWQ_OP_AVGPOOL, "AveragePool", "avgpool_mixed", 1, &t, 4, p32, true, &out[3]);
  n->attr.pool = pool_attr(3, 2, 1, 1, 0, 1, true);
  n->attr.pool.stride[1] = 3;
  /* 5x5 -> 3x3 with count_include_pad: ceil_mode 1 */
  int64_t p3[4] = {1, 4, 3, 3};
  n = node(&b, HAWQ_OP_AVGPOOL, "AveragePool", "avgpool_ceil_cip", 1, &t, 4, p3, true, &t);
  n->attr.pool = pool_attr(2, 2, 0, 0, 0, 0, true);
  out[4] = t;
  /* 3x3 -> 2x2, padded, without count_include_pad: grown end pad */
  int64_t p2[4] = {1, 4, 2, 2};
  n = node(&b, HAWQ_OP_AVGPOOL, "AveragePool", "avgpool_ceil", 1, &t, 4, p2, true, &t);
  n->attr.pool = pool_attr(3, 2, 1, 1, 0, 0, false);
  out[5] = t;
  node(&b, HAWQ_OP_GLOBAL_MAXPOOL, "GlobalMaxPool", "gmp", 1, &t, 4, c4, true, &t);
  int64_t r4[2] = {1, 4};
  int gmp_flat;
  node(&b, HAWQ_OP_RESHAPE, "Flatten", "gmp_flat", 1, &t, 2, r4, true, &gmp_flat);

  /* Second branch: transpose, pad with a crop, softmax over 3 axes, rank-3 Gemm. */
  int64_t td[4] = {1, 10, 11, 4};
  n = node(&b, HAWQ_OP_TRANSPOSE, "Transpose", "transpose", 1, &leaky, 4, td, true, &t);
  int perm[HAWQ_MAX_RANK] = {0, 2, 3, 1, 4, 5};
  memcpy(n->attr.transpose.perm, perm, sizeof perm);
  int64_t pd[4] = {1, 11, 12, 5};
  n = node(&b, HAWQ_OP_PAD, "Pad", "pad", 1, &t, 4, pd, true, &t);
  memset(&n->attr.pad, 0, sizeof n->attr.pad);
  int64_t begin[4] = {0, 1, -1, 0}, end[4] = {0, 0, 2, 1};
  for (int k = 0; k < 4; k++) {
    n->attr.pad.pads[k] = begin[k];
    n->attr.pad.pads[HAWQ_MAX_RANK + k] = end[k];
  }
  n->attr.pad.value = 0.5f;
  n = node(&b, HAWQ_OP_SOFTMAX, "Softmax", "softmax3", 1, &t, 4, pd, true, &t);
  n->attr.softmax = (hawq_softmax_attr){1, 4};
  int64_t r3[3] = {1, 11, 60}, g3[3] = {1, 11, 7}, k7[1] = {7}, w7[2] = {7, 60};
  node(&b, HAWQ_OP_RESHAPE, "Reshape", "to_rank3", 1, &t, 3, r3, true, &t);
  int in_g3[3] = {t, param(&b, "fc3.w", 2, w7, -0.2f, 0.2f), param(&b, "fc3.b", 1, k7, -1, 1)};
  node(&b, HAWQ_OP_GEMM, "MatMul", "fc3", 3, in_g3, 3, g3, true, &t);
  n = node(&b, HAWQ_OP_SOFTMAX, "Softmax", "softmax1", 1, &t, 3, g3, true, &t);
  n->attr.softmax = (hawq_softmax_attr){2, 3};
  int64_t r77[2] = {1, 77}, r81[2] = {1, 81}, w5[2] = {5, 81}, r5[2] = {1, 5};
  node(&b, HAWQ_OP_RESHAPE, "Flatten", "flat77", 1, &t, 2, r77, true, &t);
  int in_cat[2] = {t, gmp_flat};
  n = node(&b, HAWQ_OP_CONCAT, "Concat", "concat", 2, in_cat, 2, r81, true, &t);
  n->attr.concat.axis = 1;
  int in_fc[3] = {t, param(&b, "fc.w", 2, w5, -0.3f, 0.3f), -1}; /* no bias */
  node(&b, HAWQ_OP_GEMM, "Gemm", "fc", 3, in_fc, 2, r5, true, &t);
  int fc = t;
  int in_mul[2] = {fc, param(&b, "mul.k", 2, r5, -2, 2)};
  node(&b, HAWQ_OP_MUL, "Mul", "mul", 2, in_mul, 2, r5, true, &t);
  int in_add[2] = {t, fc};
  node(&b, HAWQ_OP_ADD, "Add", "add", 2, in_add, 2, r5, true, &t);
  node(&b, HAWQ_OP_RELU, "Relu", "logits", 1, &t, 2, r5, true, &out[0]);

  /* Third branch: one weight in two convs, then a grouped, dilated, strided conv. */
  int64_t w1[4] = {4, 4, 1, 1}, wg[4] = {4, 2, 3, 3}, a46[4] = {1, 4, 10, 5};
  int shared = param(&b, "shared.w", 4, w1, -0.5f, 0.5f);
  int in_c2[3] = {clip, shared, -1};
  n = node(&b, HAWQ_OP_CONV, "Conv", "conv2", 3, in_c2, 4, a4, true, &t);
  n->attr.conv = (hawq_conv_attr){1, {1, 1}, {1, 1}, {0, 0, 0, 0}};
  int in_c3[3] = {t, shared, -1};
  n = node(&b, HAWQ_OP_CONV, "Conv", "conv3", 3, in_c3, 4, a4, true, &t);
  n->attr.conv = (hawq_conv_attr){1, {1, 1}, {1, 1}, {0, 0, 0, 0}};
  int in_c4[3] = {t, param(&b, "grouped.w", 4, wg, -0.5f, 0.5f),
                  param(&b, "grouped.b", 1, k4, -1, 1)};
  n = node(&b, HAWQ_OP_CONV, "Conv", "conv_grouped", 3, in_c4, 4, a46, true, &t);
  n->attr.conv = (hawq_conv_attr){2, {1, 2}, {2, 2}, {2, 2, 2, 1}};
  node(&b, HAWQ_OP_GLOBAL_AVGPOOL, "GlobalAveragePool", "gap", 1, &t, 4, c4, true, &out[1]);
  set_outputs(g, 6, out);
  return g;
}

/* Fixed shapes (no batch): transpose, softmax over both axes of a matrix, Gemm with bias. */
static hawq_graph *build_fixed(test_rng *rng) {
  builder b = {hawq_graph_new("fixed"), rng};
  hawq_graph *g = b.g;
  g->opset = 13;
  g->preprocess = hawq_preprocess_default();
  int64_t xd[2] = {2, 6}, td[2] = {6, 2}, wd[2] = {3, 6}, k3[1] = {3}, yd[2] = {2, 3};
  int x = tensor(&b, "x", HAWQ_TENSOR_INPUT, 2, xd, false);
  set_input(g, x);
  int t, y;
  hawq_node *n = node(&b, HAWQ_OP_TRANSPOSE, "Transpose", "t", 1, &x, 2, td, false, &t);
  n->attr.transpose.perm[0] = 1;
  n = node(&b, HAWQ_OP_SOFTMAX, "Softmax", "sm", 1, &t, 2, td, false, &t);
  n->attr.softmax = (hawq_softmax_attr){0, 2};
  node(&b, HAWQ_OP_RESHAPE, "Reshape", "r", 1, &t, 2, xd, false, &t);
  int in[3] = {t, param(&b, "w", 2, wd, -1, 1), param(&b, "b", 1, k3, -1, 1)};
  node(&b, HAWQ_OP_GEMM, "Gemm", "y", 3, in, 2, yd, false, &y);
  set_outputs(g, 1, &y);
  return g;
}

/* What ONNX opset 13 cannot say is refused with one line naming the node, and no file is
 * left behind. */
static void check_refusals(test_rng *rng) {
  char path[512];
  snprintf(path, sizeof path, "%s/refused.onnx", test_tmpdir());
  for (int c = 0; c < 2; c++) {
    builder b = {hawq_graph_new("refused"), rng};
    int64_t xd[4] = {1, 2, 8, 8}, yd[4] = {1, 2, 4, 4};
    int x = tensor(&b, "x", HAWQ_TENSOR_INPUT, 4, xd, true), y;
    set_input(b.g, x);
    const char *name = c == 0 ? "dilated_avg" : "odd_pool";
    hawq_node *n = node(&b, c == 0 ? HAWQ_OP_AVGPOOL : HAWQ_OP_MAXPOOL,
                        c == 0 ? "AveragePool" : "MaxPool", name, 1, &x, 4, yd, true, &y);
    n->attr.pool = pool_attr(2, 2, 0, 0, 0, 0, false);
    if (c == 0) n->attr.pool.dilation[0] = n->attr.pool.dilation[1] = 2, n->attr.pool.kernel[0] = 1;
    if (c == 1) b.g->tensors[y].dims[3] = 7; /* no pads or ceil_mode give 8 -> 7 */
    set_outputs(b.g, 1, &y);
    hawq_error err;
    remove(path);
    hawq_status st = hawq_onnx_write_graph(b.g, path, NULL, &err);
    CHECK(st == HAWQ_ERR_UNSUPPORTED && err.status == st, "%s: export gave status %d", name,
          (int)st);
    CHECK(strstr(err.msg, path) && strstr(err.msg, name) && !strchr(err.msg, '\n'),
          "%s: message does not name the file and node on one line: %s", name, err.msg);
    CHECK(access(path, F_OK) != 0, "%s: a file was written", name);
    printf("refused as expected: %s\n", err.msg);
    hawq_graph_destroy(b.g);
  }
  /* Extra initializer names must not shadow graph tensors. */
  hawq_graph *g = build_fixed(rng);
  int64_t d[1] = {1};
  float v[1] = {0};
  struct hawq_onnx_extra_tensor e = {"w", 1, d, v};
  hawq_onnx_write_options opt = {.n_extra = 1, .extra = &e};
  hawq_error err;
  CHECK(hawq_onnx_write_graph(g, path, &opt, &err) == HAWQ_ERR_INVALID_ARG,
        "an extra initializer named like a parameter was accepted");
  hawq_graph_destroy(g);
  remove(path);
}

/* ---- ONNX's backend test models ---- */

#define NODE_DATA "/usr/share/libonnx-testdata/data"
#define NODE_CASES "tests/onnx/node_cases.txt"

/* Binds graph input `index` of the case's model to its test data (weights fed as inputs). */
static bool bind_const(const char *dir, const Onnx__ModelProto *m, int index,
                       struct hawq_bound_input *b, value *v) {
  int r = -1;
  const char *name = NULL;
  for (size_t k = 0; k < m->graph->n_input && !name; k++) {
    bool is_init = false;
    for (size_t j = 0; j < m->graph->n_initializer; j++) {
      is_init |= !strcmp(m->graph->initializer[j]->name, m->graph->input[k]->name);
    }
    if (!is_init && ++r == index) name = m->graph->input[k]->name;
  }
  char path[700];
  snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, index);
  size_t size;
  void *buf = test_read_file(path, &size);
  Onnx__TensorProto *t = buf ? onnx__tensor_proto__unpack(NULL, size, buf) : NULL;
  free(buf);
  hawq_error err;
  bool ok = name && t && tensor_to_value(t, NULL, path, v, &err) == HAWQ_OK;
  if (t) onnx__tensor_proto__free_unpacked(t, NULL);
  if (!ok) return false;
  *b = (struct hawq_bound_input){name, v->type == CONST_FLOAT ? 1 : 7, v->rank, v->dims, v->f};
  if (v->type == CONST_INT) { /* plain int64 in place of the importer's symbolic integers */
    int64_t *plain = malloc((size_t)(v->count ? v->count : 1) * sizeof *plain);
    for (int64_t j = 0; j < v->count; j++) plain[j] = v->i[j].c;
    b->data = plain;
  }
  return true;
}

/* Every case of tests/onnx/node_cases.txt that hawq runs: imported with fixed shapes, then
 * round-tripped like the models above (random inputs). */
static void node_cases(test_rng *rng) {
  if (access(NODE_DATA "/node", R_OK)) {
    printf("ONNX backend test models skipped: " NODE_DATA " not found\n");
    return;
  }
  FILE *f = fopen(NODE_CASES, "r");
  CHECK(f, "cannot open " NODE_CASES);
  if (!f) return;
  char line[1024];
  int n_cases = 0, n_exact = 0;
  while (fgets(line, sizeof line, f)) {
    char rel[256], what[16], extra[256] = "";
    if (line[0] == '#' || sscanf(line, "%255s %15s %255s", rel, what, extra) < 2) continue;
    if (strcmp(what, "run")) continue;
    char dir[512], path[700];
    snprintf(dir, sizeof dir, NODE_DATA "/%s", rel);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    Onnx__ModelProto *m = read_model(path);
    CHECK(m && m->graph, "%s: cannot read", path);
    if (!m || !m->graph) continue;
    struct hawq_bound_input bound[8];
    value vals[8];
    int n_bound = 0;
    if (!strncmp(extra, "const=", 6)) {
      for (char *s = extra + 6; *s && n_bound < 8; s++) {
        int idx = (int)strtol(s, &s, 10);
        CHECK(bind_const(dir, m, idx, &bound[n_bound], &vals[n_bound]), "%s: input %d", rel, idx);
        n_bound++;
        if (*s != ',') break;
      }
    }
    hawq_import_options io = {.fixed_shapes = true, .n_bound = (size_t)n_bound, .bound = bound};
    hawq_graph *g = NULL;
    hawq_error err;
    CHECK(hawq_graph_load_onnx(path, &io, &g, &err) == HAWQ_OK, "%s: %s", rel, err.msg);
    if (g) {
      /* A graph written node for node must come back bit-identical; a few constructs become
       * several ONNX nodes (softmax over several axes, Gemm on rank > 2). */
      bool one_to_one = true;
      for (int k = 0; k < g->n_nodes; k++) {
        const hawq_node *n = &g->nodes[k];
        if (n->op == HAWQ_OP_SOFTMAX && n->attr.softmax.axis_end != n->attr.softmax.axis + 1)
          one_to_one = false;
        if (n->op == HAWQ_OP_GEMM && g->tensors[n->inputs[0]].rank != 2) one_to_one = false;
      }
      char name[300];
      snprintf(name, sizeof name, "%s", rel);
      for (char *c = name; *c; c++) *c = *c == '/' ? '_' : *c;
      round_trip(name, g, one_to_one, true, rng);
      n_exact += one_to_one;
      n_cases++;
      hawq_graph_destroy(g);
    }
    for (int k = 0; k < n_bound; k++) {
      if (vals[k].type == CONST_INT) free((void *)bound[k].data);
      value_free(&vals[k]);
    }
    onnx__model_proto__free_unpacked(m, NULL);
  }
  fclose(f);
  printf("ONNX backend test models: %d round-tripped, %d of them bit-identical\n", n_cases,
         n_exact);
}

int main(void) {
  test_rng rng = test_rng_seeded("test_onnx_export");
  const char *models[] = {
      FIXTURES "/convzoo_opset11.onnx",         FIXTURES "/convzoo_opset13.onnx",
      FIXTURES "/convzoo_opset17.onnx",         FIXTURES "/inception_opset11.onnx",
      FIXTURES "/inception_opset13.onnx",       FIXTURES "/inception_opset17.onnx",
      "tests/models/torch/fmnist_resnet14.onnx"};
  for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
    hawq_graph *g = NULL;
    hawq_error err;
    CHECK(hawq_graph_load_onnx(models[m], NULL, &g, &err) == HAWQ_OK, "%s", err.msg);
    if (!g) continue;
    char what[128];
    const char *base = strrchr(models[m], '/') + 1;
    snprintf(what, sizeof what, "%.*s", (int)(strlen(base) - 5), base);
    if (!g->preprocess.has_metadata) { /* give the fixtures a per-channel preprocessing */
      g->preprocess.has_metadata = true;
      g->preprocess.channels = 3;
      for (int c = 0; c < 3; c++) {
        g->preprocess.mean[c] = 0.4f + 0.01f * (float)c;
        g->preprocess.std[c] = 0.2f + 0.03f * (float)c;
      }
    }
    round_trip(what, g, true, false, &rng);
    hawq_graph_destroy(g);
  }
  hawq_graph *g = build_opzoo(&rng);
  round_trip("opzoo", g, false, false, &rng);
  /* The public call: no options, so no extra initializers; every float initializer is read. */
  char path[512];
  snprintf(path, sizeof path, "%s/saved.onnx", test_tmpdir());
  hawq_error err;
  hawq_onnx_extra_set *set = NULL;
  CHECK(hawq_graph_save_onnx(g, path, &err) == HAWQ_OK, "save: %s", err.msg);
  CHECK(hawq_onnx_read_extra(path, EXTRA_PREFIX, &set, &err) == HAWQ_OK && set->n == 0,
        "save: extra initializers written without options");
  hawq_onnx_extra_set_free(set);
  CHECK(hawq_onnx_read_extra(path, "", &set, &err) == HAWQ_OK && set->n >= (size_t)count_params(g),
        "save: read_extra(\"\") misses initializers");
  hawq_onnx_extra_set_free(set);
  CHECK(hawq_onnx_read_extra(FIXTURES "/none.onnx", "", &set, &err) == HAWQ_ERR_IO && !set,
        "read_extra of a missing file");
  remove(path);
  hawq_graph_destroy(g);
  g = build_fixed(&rng);
  round_trip("fixed", g, false, true, &rng);
  hawq_graph_destroy(g);
  check_refusals(&rng);
  node_cases(&rng);
  remove(test_tmpdir());
  return test_report("test_onnx_export");
}
