/* Lowering round trip on a model hawq did not train (the PyTorch fixture): calibrate, lower at
 * W8A8 and W4A4, run the integer runtime, and check every integer op against the float op it
 * stands for, fed the op's own dequantized integer inputs, within the error bound derived in
 * docs/quantization.md ("Error bound of one op"):
 *
 *   conv:  |s_y q_y - clamp(y)| <= s_y (1 + r_k + r_res) + s_w[k]/2 (sum|x^| + s_x)
 *   add:   |s_y q_y - clamp(a^ + b^)| <= s_y (1 + r_a + r_b)
 *   avg:   |s_y q_y - clamp(mean)| <= s_y (1/2 + r)        requant: the same with x^
 *   max:   exact                                           input: s_y (1/2 + r) + pixel offset
 *
 * where ^ marks a dequantized integer input (q * s), y the float op in double on those inputs with
 * BatchNorm folded here, independently of lowering, and r the ratios the dyadic numbers stand
 * for (each dyadic is within r * 2^-31 of its ratio and |acc| < 2^31). The weights are checked
 * too: s_w[k] = max|W'_k| / (2^(b-1) - 1) and |W' - s_w q_w| <= s_w / 2.
 * Then accuracy: the INT8 model must agree with the float model's class on at least 98 % of
 * 500 test images. */
#include <math.h>

#include "core/graph.h"
#include "data/dataset.h"
#include "float/ops.h"
#include "hawq/hawq.h"
#include "qrt/qrt.h"
#include "quant/calib.h"
#include "quant/lower.h"
#include "quant/qmodel.h"
#include "test_util.h"

#define MODEL "tests/models/torch/fmnist_resnet14.onnx"
#define IMAGES 8

typedef struct ctx {
  const hawq_graph *g;
  const hawq_qmodel *m;
  void *ws;
  int batch;
  double worst;         /* largest error / bound seen */
  const char *worst_op; /* and where */
  double worst_conv;    /* largest error / bound among the convolutions */
} ctx;

static int32_t get(const ctx *c, int t, int64_t b, int64_t pix, int64_t ch) {
  const hawq_qtensor *x = &c->m->tensors[t];
  const uint8_t *d = hawq_qrt_tensor(c->m, c->ws, c->batch, t);
  int64_t row = hawq_qtype_row_bytes(x->type, x->c);
  const uint8_t *r = d + (b * x->h * x->w + pix) * row;
  switch (x->type) {
    case HAWQ_QT_U4:
      return (r[ch >> 1] >> ((ch & 1) * 4)) & 15;
    case HAWQ_QT_I4: {
      int v = (r[ch >> 1] >> ((ch & 1) * 4)) & 15;
      return v >= 8 ? v - 16 : v;
    }
    case HAWQ_QT_U8:
      return r[ch];
    case HAWQ_QT_I8:
      return (int8_t)r[ch];
    case HAWQ_QT_I16:
      return ((const int16_t *)r)[ch];
    default:
      return ((const int32_t *)r)[ch];
  }
}

static double deq(const ctx *c, int t, int64_t b, int64_t pix, int64_t ch) {
  return get(c, t, b, pix, ch) * c->m->tensors[t].scale;
}

static double ratio(hawq_dyadic d) {
  return d.m / ldexp(1, d.c);
}

static void compare(ctx *c, const hawq_qnode *n, int64_t b, int64_t pix, int64_t ch, double ref,
                    double bound) {
  const hawq_qtensor *y = &c->m->tensors[n->output];
  double lo = y->lo * y->scale, hi = y->hi * y->scale;
  ref = ref < lo ? lo : ref > hi ? hi : ref;
  double err = fabs(deq(c, n->output, b, pix, ch) - ref);
  if (bound > 0 && err / bound > c->worst) {
    c->worst = err / bound;
    c->worst_op = n->name;
  }
  if (bound > 0 && n->op == HAWQ_QOP_CONV && err / bound > c->worst_conv)
    c->worst_conv = err / bound;
  CHECK(err <= bound * (1 + 1e-9) + 1e-12,
        "%s (%s) image %lld pixel %lld channel %lld: |%g - %g| = %g > bound %g", n->name,
        hawq_qop_name(n->op), (long long)b, (long long)pix, (long long)ch,
        deq(c, n->output, b, pix, ch), ref, err, bound);
}

static int find_node(const hawq_graph *g, const char *name) {
  for (int k = 0; k < g->n_nodes; k++) {
    if (!strcmp(g->nodes[k].name, name)) return k;
  }
  return -1;
}

/* Channel o's value of a constant operand: one value, or one per channel. */
static double constant(const hawq_tensor *t, int64_t o) {
  return hawq_tensor_numel(t) == 1 ? t->data[0] : t->data[o];
}

/* The float node k applied to v, channel o, for the elementwise ops an affine chain holds. */
static double apply(const hawq_graph *g, const hawq_node *n, int64_t o, double v) {
  if (n->op == HAWQ_OP_BATCHNORM) {
    double gamma = g->tensors[n->inputs[1]].data[o], beta = g->tensors[n->inputs[2]].data[o];
    double mean = g->tensors[n->inputs[3]].data[o], var = g->tensors[n->inputs[4]].data[o];
    return (v - mean) / sqrt(var + n->attr.bn.epsilon) * gamma + beta;
  }
  bool first = g->tensors[n->inputs[0]].kind != HAWQ_TENSOR_PARAM; /* activation first */
  double k = constant(&g->tensors[n->inputs[first ? 1 : 0]], o);
  switch (n->op) {
    case HAWQ_OP_MUL:
      return v * k;
    case HAWQ_OP_ADD:
      return v + k;
    case HAWQ_OP_SUB:
      return first ? v - k : k - v;
    case HAWQ_OP_DIV:
      return v / k;
    default:
      REQUIRE(0, "node '%s' (%s) in an affine chain", n->name, n->op_type);
  }
  return 0;
}

/* The consumer of tensor t, or -1. */
static int consumer(const hawq_graph *g, int t) {
  for (int j = 0; j < g->n_nodes; j++) {
    for (int i = 0; i < g->nodes[j].n_inputs; i++) {
      if (g->nodes[j].inputs[i] == t) return j;
    }
  }
  return -1;
}

/* W' (K x taps, NHWC tap order) and b' of the float op behind integer conv `out`, which starts at
 * node k: a Conv/Gemm with BatchNorm folded when its output goes to one (a Gemm reading a
 * flattened (C, H, W) map has its columns in C, H, W order: rs = H*W > 1 reorders them), or a
 * chain of BatchNorm / arithmetic-with-a-constant nodes, evaluated node by node (1 tap per
 * channel) up to the node writing `out` or the Relu/Clip before it. */
static void folded(const hawq_graph *g, int k, const char *out, int64_t K, int64_t taps, int64_t rs,
                   double *w, double *bias) {
  const hawq_node *n = &g->nodes[k];
  if (n->op != HAWQ_OP_CONV && n->op != HAWQ_OP_GEMM) {
    for (int64_t o = 0; o < K; o++) {
      double v0 = 0, v1 = 1;
      for (int j = k; j >= 0;) {
        const hawq_node *c = &g->nodes[j];
        if (c->op == HAWQ_OP_RELU || c->op == HAWQ_OP_CLIP) break;
        v0 = apply(g, c, o, v0);
        v1 = apply(g, c, o, v1);
        if (!strcmp(g->tensors[c->output].name, out)) break;
        j = consumer(g, c->output);
      }
      w[o] = v1 - v0;
      bias[o] = v0;
    }
    return;
  }
  int bn = -1;
  for (int j = k + 1; j < g->n_nodes && bn < 0; j++) {
    if (g->nodes[j].op == HAWQ_OP_BATCHNORM && g->nodes[j].inputs[0] == n->output) bn = j;
  }
  const float *W = g->tensors[n->inputs[1]].data;
  const float *B = n->n_inputs > 2 && n->inputs[2] >= 0 ? g->tensors[n->inputs[2]].data : NULL;
  int64_t c = taps / rs;
  for (int64_t o = 0; o < K; o++) {
    double a = 1, add = 0;
    if (bn >= 0) {
      a = apply(g, &g->nodes[bn], o, 1) - apply(g, &g->nodes[bn], o, 0);
      add = apply(g, &g->nodes[bn], o, 0);
    }
    bias[o] = (B ? B[o] : 0) * a + add;
    for (int64_t i = 0; i < taps; i++) {
      int64_t src = rs > 1 ? (i % c) * rs + i / c : i;
      w[o * taps + i] = W[o * taps + src] * a;
    }
  }
}

static void check_conv(ctx *c, const hawq_qnode *n) {
  const hawq_qmodel *m = c->m;
  int k = find_node(c->g, n->name);
  REQUIRE(k >= 0, "no float node '%s'", n->name);
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  int64_t K = y->c, cg = x->c / n->groups, kg = K / n->groups,
          taps = n->kernel[0] * n->kernel[1] * cg;
  int64_t rs = c->g->nodes[k].op == HAWQ_OP_GEMM ? n->kernel[0] * n->kernel[1] : 1;
  double *w = malloc((size_t)(K * taps) * sizeof *w), *bias = malloc((size_t)K * sizeof *bias);
  folded(c->g, k, y->name, K, taps, rs, w, bias);
  int32_t qmax = (1 << (n->weight_bits - 1)) - 1;
  int64_t row = hawq_qtype_row_bytes(n->weight_bits <= 4 ? HAWQ_QT_I4 : HAWQ_QT_I8, taps);
  for (int64_t o = 0; o < K; o++) {
    double mx = 0;
    for (int64_t i = 0; i < taps; i++) mx = fmax(mx, fabs(w[o * taps + i]));
    double sw = n->weight_scale[o];
    if (mx > 0)
      CHECK(fabs(sw - mx / qmax) <= 1e-12 * sw, "%s: weight scale %lld", n->name, (long long)o);
    for (int64_t i = 0; i < taps; i++) {
      const int8_t *r = n->weight + o * row;
      int32_t q = n->weight_bits <= 4 ? (((r[i >> 1] >> ((i & 1) * 4)) & 15) ^ 8) - 8 : r[i];
      CHECK(fabs(w[o * taps + i] - sw * q) <= sw / 2 * (1 + 1e-9), "%s: weight %lld,%lld", n->name,
            (long long)o, (long long)i);
    }
  }
  int res = n->n_inputs > 1 ? n->inputs[1] : -1;
  for (int64_t b = 0; b < c->batch; b++) {
    for (int64_t p = 0; p < y->h; p++) {
      for (int64_t q = 0; q < y->w; q++) {
        for (int64_t o = 0; o < K; o++) {
          int64_t grp = o / kg;
          double acc = bias[o], sum_abs = 0;
          for (int r = 0; r < n->kernel[0]; r++) {
            int64_t ih = p * n->stride[0] - n->pad[0] + r * n->dilation[0];
            if (ih < 0 || ih >= x->h) continue;
            for (int s = 0; s < n->kernel[1]; s++) {
              int64_t iw = q * n->stride[1] - n->pad[1] + s * n->dilation[1];
              if (iw < 0 || iw >= x->w) continue;
              for (int64_t ch = 0; ch < cg; ch++) {
                double v = deq(c, n->inputs[0], b, ih * x->w + iw, grp * cg + ch);
                acc += v * w[o * taps + (r * n->kernel[1] + s) * cg + ch];
                sum_abs += fabs(v);
              }
            }
          }
          double rk = ratio(n->dyadic[o]), rr = 0;
          if (res >= 0) {
            acc += deq(c, res, b, p * y->w + q, o);
            rr = ratio(n->residual_dyadic);
          }
          double bound = y->scale * (1 + rk + rr) + n->weight_scale[o] / 2 * (sum_abs + x->scale);
          compare(c, n, b, p * y->w + q, o, acc, bound);
        }
      }
    }
  }
  free(w);
  free(bias);
}

static void check_other(ctx *c, const hawq_qnode *n) {
  const hawq_qmodel *m = c->m;
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  for (int64_t b = 0; b < c->batch; b++) {
    for (int64_t pix = 0; pix < y->h * y->w; pix++) {
      for (int64_t ch = 0; ch < y->c; ch++) {
        if (n->op == HAWQ_QOP_ADD) {
          /* a LeakyRelu is max(x, 0) + alpha * min(x, 0) */
          int k = find_node(c->g, n->name);
          double alpha = k >= 0 && c->g->nodes[k].op == HAWQ_OP_LEAKY_RELU
                             ? c->g->nodes[k].attr.leaky.alpha
                             : 1;
          double ref = deq(c, n->inputs[0], b, pix, ch) + alpha * deq(c, n->inputs[1], b, pix, ch);
          compare(c, n, b, pix, ch, ref,
                  y->scale * (1 + ratio(n->dyadic[0]) + ratio(n->dyadic[1])));
        } else if (n->op == HAWQ_QOP_REQUANT) {
          compare(c, n, b, pix, ch, deq(c, n->inputs[0], b, pix, ch),
                  y->scale * (0.5 + ratio(n->dyadic[0])));
        } else if (n->op == HAWQ_QOP_INPUT) {
          const hawq_preprocess *pp = &m->preprocess;
          int e = pp->channels == 1 ? 0 : (int)ch;
          double px = get(c, n->inputs[0], b, pix, ch);
          double ref = (px * pp->pixel_scale - pp->mean[e]) / pp->std[e];
          /* the mean offset is rounded to 1/256 of a pixel step */
          double offset = 0.5 / 256 * pp->pixel_scale / pp->std[e];
          compare(c, n, b, pix, ch, ref, y->scale * (0.5 + ratio(n->dyadic[ch])) + offset);
        } else if (n->op == HAWQ_QOP_MAXPOOL || n->op == HAWQ_QOP_AVGPOOL) {
          int64_t p = pix / y->w, q = pix % y->w;
          double sum = 0, mx = -INFINITY;
          int count = 0, padded = 0;
          for (int r = 0; r < n->kernel[0]; r++) {
            int64_t ih = p * n->stride[0] - n->pad[0] + r * n->dilation[0];
            for (int s = 0; s < n->kernel[1]; s++) {
              int64_t iw = q * n->stride[1] - n->pad[1] + s * n->dilation[1];
              bool inside = ih >= 0 && ih < x->h && iw >= 0 && iw < x->w;
              padded += ih < x->h + n->pad[2] && iw < x->w + n->pad[3];
              if (!inside) continue;
              double v = deq(c, n->inputs[0], b, ih * x->w + iw, ch);
              sum += v;
              mx = fmax(mx, v);
              count++;
            }
          }
          if (n->op == HAWQ_QOP_MAXPOOL) {
            compare(c, n, b, pix, ch, mx, 0);
          } else {
            int cnt = n->count_include_pad ? padded : count;
            compare(c, n, b, pix, ch, sum / cnt, y->scale * (0.5 + ratio(n->dyadic[cnt - 1])));
          }
        }
      }
    }
  }
}

static void round_trip(const hawq_graph *g, const hawq_dataset *ds, const hawq_calib_range *ranges,
                       const char *bits) {
  REQUIRE(ds->count >= IMAGES, "%lld images", (long long)ds->count);
  hawq_error err;
  hawq_bit_config cfg;
  REQUIRE(hawq_bit_config_parse(bits, &cfg, &err) == HAWQ_OK, "%s", err.msg);
  hawq_qmodel *m = NULL;
  REQUIRE(hawq_lower(g, ranges, &cfg, &g->preprocess, &m, NULL, &err) == HAWQ_OK, "%s", err.msg);
  size_t size = hawq_qrt_workspace_size(m, IMAGES);
  ctx c = {g, m, aligned_alloc(64, (size + 63) & ~(size_t)63), IMAGES, 0, "", 0};
  hawq_qrt_run(m, ds->images, IMAGES, c.ws, NULL);
  int checks = test_checks;
  for (int k = 0; k < m->n_nodes; k++) {
    if (m->nodes[k].op == HAWQ_QOP_CONV)
      check_conv(&c, &m->nodes[k]);
    else
      check_other(&c, &m->nodes[k]);
  }
  printf(
      "%s %s: %d checks over %d integer ops; largest error %.3f of its bound (%s), largest "
      "in a convolution %.3f\n",
      g->source, bits, test_checks - checks, m->n_nodes, c.worst, c.worst_op, c.worst_conv);
  CHECK(c.worst > 0.05, "the bounds are never approached: are they checking anything?");
  free(c.ws);
  hawq_qmodel_destroy(m);
  hawq_bit_config_free(&cfg);
}

/* The INT8 model's class agrees with the float model's on most images. */
static void agreement(const hawq_graph *g, const hawq_dataset *ds, const hawq_calib_range *ranges) {
  enum { N = 500, BATCH = 100 };
  hawq_error err;
  hawq_bit_config cfg;
  REQUIRE(hawq_bit_config_parse("8", &cfg, &err) == HAWQ_OK, "%s", err.msg);
  hawq_qmodel *m = NULL;
  REQUIRE(hawq_lower(g, ranges, &cfg, &g->preprocess, &m, NULL, &err) == HAWQ_OK, "%s", err.msg);
  hawq_float_plan *plan = NULL;
  hawq_float_plan_options po = {.batch = BATCH, .threads = 1};
  REQUIRE(hawq_float_plan_create(g, &po, &plan, &err) == HAWQ_OK, "%s", err.msg);
  size_t size = hawq_qrt_workspace_size(m, BATCH);
  void *ws = aligned_alloc(64, (size + 63) & ~(size_t)63);
  float *input = malloc(sizeof(float) * BATCH * 28 * 28);
  int same = 0, classes = (int)m->tensors[m->output].c;
  for (int first = 0; first < N; first += BATCH) {
    hawq_dataset_fill_batch(ds, first, BATCH, &g->preprocess, input);
    REQUIRE(hawq_float_plan_run(plan, (const float *const[]){input}, &err) == HAWQ_OK, "%s",
            err.msg);
    hawq_qrt_run(m, ds->images + (int64_t)first * 28 * 28, BATCH, ws, NULL);
    const int32_t *q = hawq_qrt_tensor(m, ws, BATCH, m->output);
    const float *f = hawq_float_plan_output(plan, 0);
    for (int i = 0; i < BATCH; i++) {
      int fc = 0;
      for (int k = 1; k < classes; k++) fc = f[i * classes + k] > f[i * classes + fc] ? k : fc;
      same += fc == hawq_qrt_argmax(q + i * classes, classes);
    }
  }
  printf("INT8 and float agree on %d of %d images\n", same, N);
  CHECK(same >= N * 98 / 100, "INT8 agrees with float on only %d of %d images", same, N);
  free(input);
  free(ws);
  hawq_float_plan_destroy(plan);
  hawq_qmodel_destroy(m);
  hawq_bit_config_free(&cfg);
}

/* Random pixels of a model's input shape: enough to calibrate and check a model with random
 * weights, whose accuracy means nothing but whose every op must stay within its bound. */
static hawq_dataset *random_images(const hawq_graph *g, test_rng *rng, int count) {
  const hawq_tensor *in = &g->tensors[g->inputs[0]];
  hawq_dataset *ds = calloc(1, sizeof *ds);
  ds->count = count;
  ds->channels = (int)in->dims[1];
  ds->height = (int)in->dims[2];
  ds->width = (int)in->dims[3];
  int64_t n = (int64_t)count * ds->channels * ds->height * ds->width;
  ds->images = malloc((size_t)n);
  ds->labels = calloc((size_t)count, 1);
  for (int64_t i = 0; i < n; i++) ds->images[i] = (uint8_t)test_rng_int(rng, 0, 255);
  return ds;
}

/* Lowers g (calibrated on 8 random images) expecting a refusal whose message contains want. */
static void refused(hawq_graph *g, test_rng *rng, const char *want) {
  hawq_error err;
  hawq_dataset *ds = random_images(g, rng, 8);
  hawq_calib_range *ranges = calloc((size_t)g->n_tensors, sizeof *ranges);
  hawq_calib_options co = hawq_calib_defaults();
  co.images = 8;
  REQUIRE(hawq_calibrate(g, ds, &g->preprocess, &co, ranges, NULL, NULL, &err) == HAWQ_OK, "%s",
          err.msg);
  hawq_bit_config cfg;
  REQUIRE(hawq_bit_config_parse("8", &cfg, &err) == HAWQ_OK, "%s", err.msg);
  hawq_qmodel *m = NULL;
  hawq_status st = hawq_lower(g, ranges, &cfg, &g->preprocess, &m, NULL, &err);
  CHECK(st == HAWQ_ERR_UNSUPPORTED && strstr(err.msg, want), "expected '%s', got %d '%s'", want, st,
        err.msg);
  CHECK(m == NULL && !strchr(err.msg, '\n'), "a refused model is not returned; one line");
  free(ranges);
  hawq_dataset_destroy(ds);
}

static int node_named(const hawq_graph *g, const char *name) {
  int k = find_node(g, name);
  REQUIRE(k >= 0, "%s: no node '%s'", g->source, name);
  return k;
}

/* Other architectures, with random weights and random pixels: Inception-style (concat, an
 * average-pool branch behind a Pad, a lone BatchNorm, a residual Add of a concat and a conv), the
 * op zoo (grouped, depthwise and dilated convs, in-graph input scaling x * 2 - 0.5, LeakyRelu,
 * ReLU6, a Div by a constant, Pads before pools), a plain CNN (depthwise, ReLU6, pools, a Flatten
 * of a 4x4 map into a Linear, two Linears). Then refusals, each naming the node. */
static void zoo(test_rng *rng) {
  const char *models[] = {
      "tests/onnx/fixtures/inception_opset11.onnx", "tests/onnx/fixtures/inception_opset17.onnx",
      "tests/onnx/fixtures/convzoo_opset11.onnx", "tests/onnx/fixtures/convzoo_opset17.onnx",
      "tests/quant/fixtures/plainnet.onnx"};
  hawq_error err;
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
    hawq_graph *g = NULL;
    REQUIRE(hawq_graph_load_onnx(models[i], NULL, &g, &err) == HAWQ_OK, "%s", err.msg);
    hawq_dataset *ds = random_images(g, rng, 32);
    hawq_calib_range *ranges = calloc((size_t)g->n_tensors, sizeof *ranges);
    hawq_calib_options co = hawq_calib_defaults();
    co.images = 32;
    co.batch = 8;
    REQUIRE(hawq_calibrate(g, ds, &g->preprocess, &co, ranges, NULL, NULL, &err) == HAWQ_OK, "%s",
            err.msg);
    round_trip(g, ds, ranges, "8");
    round_trip(g, ds, ranges, "4");
    free(ranges);
    hawq_dataset_destroy(ds);
    hawq_graph_destroy(g);
  }

  hawq_graph *g = NULL;
  REQUIRE(
      hawq_graph_load_onnx("tests/onnx/fixtures/convzoo_opset13.onnx", NULL, &g, &err) == HAWQ_OK,
      "%s", err.msg);
  g->nodes[node_named(g, "/LeakyRelu")].attr.leaky.alpha = -0.5f;
  refused(g, rng, "convzoo_opset13.onnx: node '/LeakyRelu' (LeakyRelu): LeakyRelu is lowered only");
  hawq_graph_destroy(g);

  REQUIRE(hawq_graph_load_onnx("tests/quant/fixtures/plainnet.onnx", NULL, &g, &err) == HAWQ_OK,
          "%s", err.msg);
  g->tensors[g->nodes[node_named(g, "/fc2/Gemm")].inputs[2]].data[3] = 1e12f;
  refused(g, rng, "node '/fc2/Gemm' (Gemm): bias of output channel 3 is");
  hawq_graph_destroy(g);
}

int main(void) {
  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *train = NULL, *test = NULL;
  if (access(HAWQ_FASHION_MNIST_DIR, R_OK)) {
    printf("skipped: %s not found (apt-get install dataset-fashion-mnist)\n",
           HAWQ_FASHION_MNIST_DIR);
    return 77;
  }
  REQUIRE(hawq_graph_load_onnx(MODEL, NULL, &g, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(hawq_dataset_load("fashion-mnist", "train", &train, &err) == HAWQ_OK, "%s", err.msg);
  REQUIRE(hawq_dataset_load("fashion-mnist", "test", &test, &err) == HAWQ_OK, "%s", err.msg);
  hawq_calib_range *ranges = calloc((size_t)g->n_tensors, sizeof *ranges);
  hawq_calib_options co = hawq_calib_defaults();
  co.images = 256;
  REQUIRE(hawq_calibrate(g, train, &g->preprocess, &co, ranges, NULL, NULL, &err) == HAWQ_OK, "%s",
          err.msg);
  round_trip(g, test, ranges, "8");
  round_trip(g, test, ranges, "4");
  round_trip(g, test, ranges, "w4a8");
  test_rng rng = test_rng_seeded("test_lower");
  zoo(&rng);
  agreement(g, test, ranges);
  free(ranges);
  hawq_dataset_destroy(train);
  hawq_dataset_destroy(test);
  hawq_graph_destroy(g);
  return test_report("test_lower");
}
