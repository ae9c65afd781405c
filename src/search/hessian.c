/* Per-layer Hessian traces by Hutchinson's method, and the sensitivities Omega (hessian.h).
 *
 * One draw: a Rademacher vector v over all trainable parameters theta of the BN-folded graph,
 * the mean gradient g of the loss at theta + eps v and at theta - eps v, and for every layer i
 * the estimate v_i^T (g(theta + eps v) - g(theta - eps v))_i / (2 eps) of v_i^T (H v)_i, whose
 * expectation is Tr(H_i). The estimates are averaged over draws (Welford, in double) until the
 * summed trace has moved by less than tol at HAWQ_HESSIAN_CALM_DRAWS draws in a row (after
 * min_draws), or max_draws. docs/mixed_precision.md has the measurements behind the choices. */
#include "search/hessian.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "float/ops.h"
#include "float/train.h"
#include "quant/lower.h"

hawq_hessian_options hawq_hessian_defaults(void) {
  return (hawq_hessian_options){
      .batch = 128, .threads = 1, .tol = 1e-3, .min_draws = 32, .max_draws = 200, .step = 1e-3};
}

/* ---- BN folding ---- */

/* The BatchNormalization that lowering folds into Conv/Gemm node k: the only consumer of its
 * output (which is not a graph output), reading it as its input. -1 if none. */
static int bn_after(const hawq_graph *g, int k) {
  const hawq_node *n = &g->nodes[k];
  if (n->op != HAWQ_OP_CONV && n->op != HAWQ_OP_GEMM) return -1;
  int t = n->output, users = 0, user = -1;
  for (int i = 0; i < g->n_outputs; i++)
    if (g->outputs[i] == t) return -1;
  for (int j = 0; j < g->n_nodes; j++) {
    for (int i = 0; i < g->nodes[j].n_inputs; i++) {
      if (g->nodes[j].inputs[i] == t) users++, user = j;
    }
  }
  if (users != 1 || g->nodes[user].op != HAWQ_OP_BATCHNORM || g->nodes[user].inputs[0] != t ||
      g->nodes[user].n_inputs != 5) {
    return -1;
  }
  for (int i = 1; i < 5; i++) {
    int p = g->nodes[user].inputs[i];
    if (p < 0 || g->tensors[p].kind != HAWQ_TENSOR_PARAM) return -1;
  }
  return user;
}

/* The BN-folded weights and bias of Conv/Gemm node k (folding bn, or none when bn < 0) in double,
 * exactly as lowering's emit_conv computes them: per output channel, mul = gamma /
 * sqrt(var + eps), W' = W mul, b' = b mul + beta - mean mul. w: rows * per, b: rows (may be
 * NULL). */
static void folded_weights(const hawq_graph *g, int k, int bn, double *w, double *b) {
  const hawq_node *n = &g->nodes[k];
  const hawq_tensor *wt = &g->tensors[n->inputs[1]];
  int64_t rows = wt->dims[0], per = hawq_tensor_numel(wt) / rows;
  const float *B = n->n_inputs > 2 && n->inputs[2] >= 0 ? g->tensors[n->inputs[2]].data : NULL;
  for (int64_t r = 0; r < rows; r++) {
    double mul = 1, add = 0;
    if (bn >= 0) {
      const hawq_node *bnn = &g->nodes[bn];
      const float *gamma = g->tensors[bnn->inputs[1]].data, *beta = g->tensors[bnn->inputs[2]].data;
      const float *mean = g->tensors[bnn->inputs[3]].data, *var = g->tensors[bnn->inputs[4]].data;
      mul = gamma[r] / sqrt((double)var[r] + bnn->attr.bn.epsilon);
      add = beta[r] - mean[r] * mul;
    }
    if (b) b[r] = (B ? B[r] : 0) * mul + add;
    for (int64_t j = 0; j < per; j++) w[r * per + j] = wt->data[r * per + j] * mul;
  }
}

static bool name_taken(const hawq_graph *g, const char *name) {
  for (int t = 0; t < g->n_tensors; t++)
    if (!strcmp(g->tensors[t].name, name)) return true;
  return false;
}

/* A new parameter tensor "<base>" (or "<base>.2", ...) of ng holding rows x per values. */
static int add_folded_param(hawq_graph *ng, const char *base, const hawq_tensor *like,
                            const double *v) {
  char name[512];
  snprintf(name, sizeof name, "%s", base);
  for (int extra = 2; name_taken(ng, name); extra++)
    snprintf(name, sizeof name, "%s.%d", base, extra);
  int t = hawq_graph_add_tensor(ng, name, HAWQ_TENSOR_PARAM, like->rank, like->dims, false);
  if (t < 0) return -1;
  int64_t n = hawq_tensor_numel(&ng->tensors[t]);
  if (!(ng->tensors[t].data = hawq_alloc_floats((size_t)n))) return -1;
  for (int64_t i = 0; i < n; i++) ng->tensors[t].data[i] = (float)v[i];
  return t;
}

/* Copies tensor t of g into ng once (map: g's tensor -> ng's, -1 when not yet copied). */
static int copy_tensor(const hawq_graph *g, hawq_graph *ng, int *map, int t) {
  if (t < 0) return -1;
  if (map[t] >= 0) return map[t];
  const hawq_tensor *s = &g->tensors[t];
  int c = hawq_graph_add_tensor(ng, s->name, s->kind, s->rank, s->dims, s->batched);
  if (c < 0) return -1;
  if (s->kind == HAWQ_TENSOR_PARAM) {
    size_t n = (size_t)hawq_tensor_numel(s);
    if (!(ng->tensors[c].data = hawq_alloc_floats(n))) return -1;
    memcpy(ng->tensors[c].data, s->data, n * sizeof(float));
  }
  return map[t] = c;
}

/* hawq_graph_fold_bn, also giving each node of g its node in the copy (-1 for folded BNs). */
static hawq_status fold_bn(const hawq_graph *g, hawq_graph **out, int *node_map, hawq_error *err) {
  *out = NULL;
  hawq_graph *ng = hawq_graph_new(g->source);
  int *map = malloc((size_t)(g->n_tensors + 1) * sizeof *map);
  int *bn = malloc((size_t)(g->n_nodes + 1) * sizeof *bn);
  bool *gone = calloc((size_t)g->n_nodes + 1, 1);
  double *wf = NULL, *bf = NULL;
  bool ok = ng && map && bn && gone;
  if (ok) {
    ng->opset = g->opset;
    ng->preprocess = g->preprocess;
    for (int t = 0; t < g->n_tensors; t++) map[t] = -1;
    for (int k = 0; k < g->n_nodes; k++) {
      bn[k] = bn_after(g, k);
      if (bn[k] >= 0) gone[bn[k]] = true;
    }
    ng->inputs = malloc((size_t)(g->n_inputs + 1) * sizeof(int));
    ng->outputs = malloc((size_t)(g->n_outputs + 1) * sizeof(int));
    ok = ng->inputs && ng->outputs;
  }
  for (int i = 0; ok && i < g->n_inputs; i++) {
    ng->inputs[i] = copy_tensor(g, ng, map, g->inputs[i]);
    ok = ng->inputs[i] >= 0;
    ng->n_inputs = i + 1;
  }
  for (int k = 0; ok && k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    node_map[k] = -1;
    if (gone[k]) continue;
    int n_in = n->n_inputs, in[HAWQ_MAX_CONCAT_INPUTS + 8];
    if (n_in > (int)(sizeof in / sizeof in[0])) {
      ok = false;
      break;
    }
    for (int i = 0; ok && i < n_in; i++) {
      in[i] = copy_tensor(g, ng, map, n->inputs[i]);
      ok = n->inputs[i] < 0 || in[i] >= 0;
    }
    int y = n->output;
    if (ok && bn[k] >= 0) {
      const hawq_tensor *wt = &g->tensors[n->inputs[1]];
      int64_t rows = wt->dims[0];
      free(wf);
      free(bf);
      wf = malloc((size_t)hawq_tensor_numel(wt) * sizeof *wf);
      bf = malloc((size_t)rows * sizeof *bf);
      if (!wf || !bf) {
        ok = false;
        break;
      }
      folded_weights(g, k, bn[k], wf, bf);
      char base[512];
      snprintf(base, sizeof base, "%s.folded_weight", n->name);
      in[1] = add_folded_param(ng, base, wt, wf);
      snprintf(base, sizeof base, "%s.folded_bias", n->name);
      hawq_tensor bias_like = {.rank = 1, .dims = {rows}};
      int bt = add_folded_param(ng, base, &bias_like, bf);
      if (n_in < 3) n_in = 3;
      in[2] = bt;
      ok = in[1] >= 0 && bt >= 0;
      y = g->nodes[bn[k]].output;
    }
    int yc = ok ? copy_tensor(g, ng, map, y) : -1;
    int c = yc >= 0 ? hawq_graph_add_node(ng, n->op, n->name, n->op_type, n_in, in, yc) : -1;
    if (c < 0) {
      ok = false;
      break;
    }
    ng->nodes[c].attr = n->attr;
    node_map[k] = c;
  }
  for (int i = 0; ok && i < g->n_outputs; i++) {
    ng->outputs[i] = map[g->outputs[i]];
    ok = ng->outputs[i] >= 0;
    ng->n_outputs = i + 1;
  }
  free(map);
  free(bn);
  free(gone);
  free(wf);
  free(bf);
  if (!ok) {
    hawq_graph_destroy(ng);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory folding batch norms", g->source);
  }
  *out = ng;
  return HAWQ_OK;
}

hawq_status hawq_graph_fold_bn(const hawq_graph *g, hawq_graph **out, hawq_error *err) {
  int *node_map = malloc((size_t)(g->n_nodes + 1) * sizeof *node_map);
  if (!node_map) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  hawq_status st = fold_bn(g, out, node_map, err);
  free(node_map);
  return st;
}

/* ---- layers, quantization error, ties ---- */

double hawq_weight_quant_error(const double *w, int64_t rows, int64_t per, int bits) {
  double sum = 0;
  for (int64_t r = 0; r < rows; r++) {
    const double *row = w + r * per;
    double s = hawq_weight_scale(row, per, bits);
    for (int64_t j = 0; j < per; j++) {
      double e = hawq_weight_quantize(row[j], s, bits) * s - row[j];
      sum += e * e;
    }
  }
  return sum;
}

void hawq_sensitivity_free(hawq_sensitivity *s) {
  if (!s) return;
  for (int i = 0; i < s->n_layers; i++) free(s->layers[i].name);
  free(s->layers);
  free(s->tie_start);
  free(s->tie_layer);
  free(s);
}

/* The value a layer reads: its input, seen through the Reshape/Flatten and Pad nodes that
 * lowering folds into it (lower.c, build_units). */
static int layer_input(const hawq_graph *g, int k) {
  int t = g->nodes[k].inputs[0];
  for (;;) {
    int p = t >= 0 ? g->tensors[t].producer : -1;
    if (p < 0 || (g->nodes[p].op != HAWQ_OP_RESHAPE && g->nodes[p].op != HAWQ_OP_PAD)) return t;
    t = g->nodes[p].inputs[0];
  }
}

static hawq_status find_ties(const hawq_graph *g, hawq_sensitivity *s, hawq_error *err) {
  int n = s->n_layers;
  int *input = malloc((size_t)(n + 1) * sizeof *input);
  bool *used = calloc((size_t)n + 1, 1);
  s->tie_start = malloc((size_t)(n + 1) * sizeof *s->tie_start);
  s->tie_layer = malloc((size_t)(n + 1) * sizeof *s->tie_layer);
  if (!input || !used || !s->tie_start || !s->tie_layer) {
    free(input);
    free(used);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  }
  for (int i = 0; i < n; i++) input[i] = layer_input(g, s->layers[i].node);
  int filled = 0;
  s->tie_start[0] = 0;
  for (int i = 0; i < n; i++) {
    if (used[i]) continue;
    int count = 0;
    for (int j = i + 1; j < n; j++) count += input[j] == input[i];
    if (!count) continue;
    for (int j = i; j < n; j++) {
      if (input[j] != input[i]) continue;
      used[j] = true;
      s->tie_layer[filled++] = j;
    }
    s->tie_start[++s->n_ties] = filled;
  }
  free(input);
  free(used);
  return HAWQ_OK;
}

hawq_status hawq_sensitivity_layers(const hawq_graph *g, hawq_sensitivity **out, hawq_error *err) {
  *out = NULL;
  hawq_bit_config cfg = {.weight_bits = 8, .act_bits = 8, .pin_ends = true};
  hawq_qlayer *ql = NULL;
  int n = 0;
  hawq_status st = hawq_resolve_bits(g, &cfg, &ql, &n, err);
  if (st) return st;
  if (n == 0) {
    free(ql);
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: no Conv or Gemm layer to analyse", g->source);
  }
  hawq_sensitivity *s = calloc(1, sizeof *s);
  if (!s || !(s->layers = calloc((size_t)n, sizeof *s->layers))) {
    free(ql);
    free(s);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  }
  s->n_layers = n;
  double *w = NULL;
  for (int i = 0; i < n && !st; i++) {
    int k = ql[i].node;
    const hawq_node *node = &g->nodes[k];
    const hawq_tensor *wt = &g->tensors[node->inputs[1]];
    hawq_layer_sensitivity *l = &s->layers[i];
    l->node = k;
    l->op = node->op;
    l->params = hawq_tensor_numel(wt);
    l->macs = hawq_node_macs(g, k);
    free(w);
    w = malloc((size_t)l->params * sizeof *w);
    if (!(l->name = strdup(node->name)) || !w) {
      st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
      break;
    }
    folded_weights(g, k, bn_after(g, k), w, NULL);
    int64_t rows = wt->dims[0];
    for (int b = HAWQ_SENS_MIN_BITS; b <= HAWQ_SENS_MAX_BITS; b++)
      l->delta[b] = hawq_weight_quant_error(w, rows, l->params / rows, b);
  }
  free(w);
  free(ql);
  if (!st) st = find_ties(g, s, err);
  if (st) {
    hawq_sensitivity_free(s);
    return st;
  }
  *out = s;
  return HAWQ_OK;
}

/* ---- the activation pattern, held fixed ----
 *
 * ReLU, Clip and LeakyRelu are piecewise linear. The Hessian that autograd's double backward
 * gives (PyHessian, HAWQ) is the one of the piece containing theta: their second derivative is
 * taken as 0. Central differences of gradients instead see every unit whose pre-activation
 * changes sign between theta - eps v and theta + eps v: a jump of the gradient divided by
 * 2 eps. The number of such units grows like eps, so their contribution does not vanish as eps
 * shrinks; it only becomes rarer and larger, and on the bundled ResNet-20 it swamps the trace
 * (single-direction estimates moved by hundreds between steps of 1e-3 and 1e-2). So the
 * gradients are taken on a linearised copy of the graph in which each such activation is
 * replaced by y = m x + c, m and c (0/1, the LeakyRelu slope, the Clip bound) fixed per
 * element to the pattern at theta: the same function at theta, and a smooth (polynomial)
 * one around it, whose Hessian at theta is the piece's. Max pooling keeps its kinks (a choice
 * among window elements, not expressible this way); the ResNets have none after the stem. */

typedef struct act_freeze {
  int x;         /* the activation's input tensor in the folded graph */
  hawq_op op;    /* HAWQ_OP_RELU, HAWQ_OP_CLIP or HAWQ_OP_LEAKY_RELU */
  float lo, hi;  /* Clip's bounds */
  float alpha;   /* LeakyRelu's slope */
  int64_t units; /* elements per image */
  uint8_t *code; /* 2 bits per element and image: 0 linear, 1 below, 2 above (Clip) */
} act_freeze;

static int code_of(const act_freeze *a, float x) {
  switch (a->op) {
    case HAWQ_OP_RELU:
    case HAWQ_OP_LEAKY_RELU:
      return x > 0 ? 0 : 1;
    default:
      return x <= a->lo ? 1 : x >= a->hi ? 2 : 0;
  }
}

static void code_set(uint8_t *code, int64_t i, int c) {
  code[i >> 2] =
      (uint8_t)((code[i >> 2] & ~(3u << (2 * (i & 3)))) | ((unsigned)c << (2 * (i & 3))));
}

static int code_get(const uint8_t *code, int64_t i) {
  return (code[i >> 2] >> (2 * (i & 3))) & 3;
}

/* One train plan for one batch size, on a linearised copy of the folded graph. */
typedef struct runner {
  hawq_graph *g;
  hawq_train_plan *tp;
  int batch;
  int *mask, *offset; /* per frozen activation: its m and c tensors in g (c: -1 when 0) */
  int *node_map;      /* folded graph node -> g node */
} runner;

static void runner_free(runner *r) {
  hawq_train_plan_destroy(r->tp);
  hawq_graph_destroy(r->g);
  free(r->mask);
  free(r->offset);
  free(r->node_map);
}

static int add_batch_param(hawq_graph *g, const char *base, const char *suffix,
                           const hawq_tensor *like, int batch) {
  char name[512];
  snprintf(name, sizeof name, "%s.%s", base, suffix);
  for (int extra = 2; name_taken(g, name); extra++)
    snprintf(name, sizeof name, "%s.%s.%d", base, suffix, extra);
  int64_t dims[HAWQ_MAX_RANK];
  for (int d = 0; d < like->rank; d++) dims[d] = like->dims[d];
  dims[0] = batch;
  int t = hawq_graph_add_tensor(g, name, HAWQ_TENSOR_PARAM, like->rank, dims, false);
  if (t < 0) return -1;
  if (!(g->tensors[t].data = hawq_alloc_floats((size_t)hawq_tensor_numel(&g->tensors[t]))))
    return -1;
  return t;
}

/* r->g: fg with activation node acts[a] (node index act_node[a]) replaced by Mul(x, mask) and,
 * for Clip, Add(., offset); masks for `batch` images. */
static hawq_status linearise(const hawq_graph *fg, const act_freeze *acts, const int *act_node,
                             int n_acts, int batch, runner *r, hawq_error *err) {
  *r = (runner){.batch = batch};
  hawq_graph *g = r->g = hawq_graph_new(fg->source);
  int *map = malloc((size_t)(fg->n_tensors + 1) * sizeof *map);
  r->mask = malloc((size_t)(n_acts + 1) * sizeof *r->mask);
  r->offset = malloc((size_t)(n_acts + 1) * sizeof *r->offset);
  r->node_map = malloc((size_t)(fg->n_nodes + 1) * sizeof *r->node_map);
  bool ok = g && map && r->mask && r->offset && r->node_map;
  if (ok) {
    g->opset = fg->opset;
    g->preprocess = fg->preprocess;
    for (int t = 0; t < fg->n_tensors; t++) map[t] = -1;
    g->inputs = malloc(sizeof(int));
    g->outputs = malloc((size_t)(fg->n_outputs + 1) * sizeof(int));
    ok = g->inputs && g->outputs && (g->inputs[0] = copy_tensor(fg, g, map, fg->inputs[0])) >= 0;
    g->n_inputs = ok ? 1 : 0;
  }
  for (int k = 0, a = 0; ok && k < fg->n_nodes; k++) {
    const hawq_node *n = &fg->nodes[k];
    int in[HAWQ_MAX_CONCAT_INPUTS + 8], y = -1, c = -1;
    for (int i = 0; ok && i < n->n_inputs; i++) {
      in[i] = copy_tensor(fg, g, map, n->inputs[i]);
      ok = n->inputs[i] < 0 || in[i] >= 0;
    }
    if (ok) y = copy_tensor(fg, g, map, n->output);
    ok = ok && y >= 0;
    if (!ok) break;
    if (a < n_acts && act_node[a] == k) {
      const hawq_tensor *x = &fg->tensors[n->inputs[0]];
      int m = r->mask[a] = add_batch_param(g, n->name, "mask", x, batch);
      r->offset[a] = -1;
      int mul_out = y;
      if (acts[a].op == HAWQ_OP_CLIP) {
        r->offset[a] = add_batch_param(g, n->name, "offset", x, batch);
        char name[512];
        snprintf(name, sizeof name, "%s.masked", n->name);
        mul_out = hawq_graph_add_tensor(g, name, HAWQ_TENSOR_ACTIVATION, x->rank, x->dims, true);
        ok = r->offset[a] >= 0 && mul_out >= 0;
      }
      ok = ok && m >= 0;
      if (ok)
        c = hawq_graph_add_node(g, HAWQ_OP_MUL, n->name, "Mul", 2, (int[]){in[0], m}, mul_out);
      if (ok && acts[a].op == HAWQ_OP_CLIP && c >= 0) {
        char name[512];
        snprintf(name, sizeof name, "%s.offset", n->name);
        ok = hawq_graph_add_node(g, HAWQ_OP_ADD, name, "Add", 2, (int[]){mul_out, r->offset[a]},
                                 y) >= 0;
      }
      a++;
    } else {
      c = hawq_graph_add_node(g, n->op, n->name, n->op_type, n->n_inputs, in, y);
      if (c >= 0) g->nodes[c].attr = n->attr;
    }
    ok = ok && c >= 0;
    r->node_map[k] = c;
  }
  for (int i = 0; ok && i < fg->n_outputs; i++) {
    g->outputs[i] = map[fg->outputs[i]];
    g->n_outputs = i + 1;
  }
  free(map);
  if (!ok) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", fg->source);
  return HAWQ_OK;
}

/* Sets r's masks and offsets to the pattern of images [first, first + r->batch). */
static void runner_set_pattern(runner *r, const act_freeze *acts, int n_acts, int64_t first) {
  for (int a = 0; a < n_acts; a++) {
    const act_freeze *f = &acts[a];
    float *m = r->g->tensors[r->mask[a]].data;
    float *c = r->offset[a] >= 0 ? r->g->tensors[r->offset[a]].data : NULL;
    int64_t base = first * f->units, count = r->batch * f->units;
    for (int64_t i = 0; i < count; i++) {
      int code = code_get(f->code, base + i);
      m[i] = code == 0 ? 1.0f : f->op == HAWQ_OP_LEAKY_RELU ? f->alpha : 0.0f;
      if (c) c[i] = code == 1 ? f->lo : code == 2 ? f->hi : 0.0f;
    }
  }
}

/* The activation pattern of every image at theta, by the inference engine on the folded graph
 * (every intermediate kept). */
static hawq_status record_pattern(const hawq_graph *fg, act_freeze *acts, int n_acts,
                                  const float *images, int64_t n, int batch, int threads,
                                  hawq_error *err) {
  hawq_float_plan *fp = NULL;
  hawq_float_plan_options po = {.batch = batch, .threads = threads, .keep_all = true};
  hawq_status st = hawq_float_plan_create(fg, &po, &fp, err);
  if (st) return st;
  int64_t per_image = hawq_tensor_numel(&fg->tensors[fg->inputs[0]]);
  float *pad = malloc((size_t)(batch * per_image) * sizeof *pad);
  if (!pad) st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  for (int64_t first = 0; first < n && !st; first += batch) {
    int64_t cnt = n - first < batch ? n - first : batch;
    const float *in = images + first * per_image;
    if (cnt < batch) { /* a short last batch runs padded with zeros */
      memset(pad, 0, (size_t)(batch * per_image) * sizeof *pad);
      memcpy(pad, in, (size_t)(cnt * per_image) * sizeof *pad);
      in = pad;
    }
    if ((st = hawq_float_plan_run(fp, (const float *const[]){in}, err))) break;
    for (int a = 0; a < n_acts; a++) {
      const float *x = hawq_float_plan_tensor(fp, acts[a].x);
      int64_t base = first * acts[a].units;
      for (int64_t i = 0; i < cnt * acts[a].units; i++)
        code_set(acts[a].code, base + i, code_of(&acts[a], x[i]));
    }
  }
  free(pad);
  hawq_float_plan_destroy(fp);
  return st;
}

/* ---- gradients ---- */

typedef struct grad_ctx {
  runner run[2]; /* batch B, and the remainder n % B (batch 0: none) */
  act_freeze *acts;
  int n_acts;
  int64_t n, per_image;
  const float *images;
  const int32_t *labels;
  int n_params;
  int64_t total;   /* parameters in all */
  int64_t *offset; /* per param, into the flat vector */
} grad_ctx;

/* The parameters of r at theta0 + sign * eps * v. */
static void set_params(const grad_ctx *c, runner *r, const float *theta0, const int8_t *v,
                       double eps, int sign) {
  for (int i = 0; i < c->n_params; i++) {
    hawq_param *q = hawq_train_plan_param(r->tp, i);
    const float *t0 = theta0 + c->offset[i];
    const int8_t *vi = v + c->offset[i];
    for (int64_t j = 0; j < q->numel; j++)
      q->value[j] = sign ? (float)(t0[j] + sign * eps * vi[j]) : t0[j];
  }
}

/* acc += count / n * the gradient of r's mean loss over images [first, first + count). */
static hawq_status batch_gradient(const grad_ctx *c, runner *r, int64_t first, double *acc,
                                  hawq_error *err) {
  hawq_status st = hawq_train_plan_forward(r->tp, c->images + first * c->per_image, false, err);
  if (st) return st;
  hawq_train_plan_loss(r->tp, c->labels + first, 0.0f, NULL);
  hawq_train_plan_zero_grad(r->tp);
  if ((st = hawq_train_plan_backward(r->tp, err))) return st;
  double weight = (double)r->batch / (double)c->n;
  for (int i = 0; i < c->n_params; i++) {
    const hawq_param *q = hawq_train_plan_param(r->tp, i);
    double *a = acc + c->offset[i];
    for (int64_t j = 0; j < q->numel; j++) a[j] += weight * q->grad[j];
  }
  return HAWQ_OK;
}

/* gp, gm: the gradients of the mean loss over all n images at theta0 +- eps v, in double. */
static hawq_status gradient_pair(grad_ctx *c, const float *theta0, const int8_t *v, double eps,
                                 double *gp, double *gm, hawq_error *err) {
  memset(gp, 0, (size_t)c->total * sizeof *gp);
  memset(gm, 0, (size_t)c->total * sizeof *gm);
  hawq_status st = HAWQ_OK;
  for (int64_t first = 0; first < c->n && !st;) {
    runner *r = &c->run[c->n - first >= c->run[0].batch ? 0 : 1];
    runner_set_pattern(r, c->acts, c->n_acts, first);
    set_params(c, r, theta0, v, eps, 1);
    if (!(st = batch_gradient(c, r, first, gp, err))) {
      set_params(c, r, theta0, v, eps, -1);
      st = batch_gradient(c, r, first, gm, err);
    }
    set_params(c, r, theta0, v, eps, 0);
    first += r->batch;
  }
  return st;
}

static hawq_status check_options(const hawq_graph *g, const hawq_hessian_options *o, int64_t n,
                                 hawq_error *err) {
  if (n < 1) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "sensitivity needs at least one image");
  if (o->batch < 1 || o->threads < 0 || o->threads > 1024) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "sensitivity: batch must be >= 1 and threads between 1 and 1024");
  }
  if (!(o->tol > 0 && o->tol < 1)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "sensitivity: tol must be in (0, 1), got %g",
                     o->tol);
  }
  if (o->min_draws < 2 || o->max_draws < o->min_draws) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "sensitivity: need 2 <= min draws (%d) <= max draws (%d)", o->min_draws,
                     o->max_draws);
  }
  if (!(o->step > 0 && o->step < 1)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "sensitivity: step must be in (0, 1), got %g",
                     o->step);
  }
  if (g->n_inputs != 1 || g->tensors[g->inputs[0]].rank != 4) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: sensitivity needs one image input (N,C,H,W)",
                     g->source);
  }
  return HAWQ_OK;
}

/* The activations to freeze: ReLU, Clip and LeakyRelu nodes of fg on batched tensors. */
static hawq_status find_acts(const hawq_graph *fg, int64_t n, grad_ctx *c, int **act_node,
                             hawq_error *err) {
  c->acts = calloc((size_t)fg->n_nodes + 1, sizeof *c->acts);
  *act_node = malloc((size_t)(fg->n_nodes + 1) * sizeof **act_node);
  if (!c->acts || !*act_node) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  for (int k = 0; k < fg->n_nodes; k++) {
    const hawq_node *nd = &fg->nodes[k];
    if (nd->op != HAWQ_OP_RELU && nd->op != HAWQ_OP_CLIP && nd->op != HAWQ_OP_LEAKY_RELU) continue;
    const hawq_tensor *x = &fg->tensors[nd->inputs[0]];
    if (!x->batched || x->kind == HAWQ_TENSOR_PARAM) continue;
    act_freeze *a = &c->acts[c->n_acts];
    *a = (act_freeze){.x = nd->inputs[0], .op = nd->op, .units = hawq_tensor_numel(x)};
    if (nd->op == HAWQ_OP_CLIP) a->lo = nd->attr.clip.min, a->hi = nd->attr.clip.max;
    if (nd->op == HAWQ_OP_LEAKY_RELU) a->alpha = nd->attr.leaky.alpha;
    uint64_t codes = (uint64_t)n * (uint64_t)a->units;
    if (codes > ((uint64_t)16 << 30)) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                       "%s: node '%s': %lld images x %lld activations is too many to hold the "
                       "activation pattern; use fewer images",
                       fg->source, nd->name, (long long)n, (long long)a->units);
    }
    if (!(a->code = calloc((size_t)(codes / 4 + 1), 1))) {
      return hawq_fail(err, HAWQ_ERR_NO_MEMORY,
                       "out of memory holding the activation pattern of %lld images", (long long)n);
    }
    (*act_node)[c->n_acts++] = k;
  }
  return HAWQ_OK;
}

hawq_status hawq_sensitivity_compute(const hawq_graph *g, const float *images,
                                     const int32_t *labels, int64_t n,
                                     const hawq_hessian_options *opt,
                                     hawq_hessian_progress progress, void *ctx,
                                     hawq_sensitivity **out, hawq_error *err) {
  *out = NULL;
  hawq_status st = check_options(g, opt, n, err);
  if (st) return st;
  hawq_sensitivity *s = NULL;
  if ((st = hawq_sensitivity_layers(g, &s, err))) return st;
  s->images = n;
  hawq_graph *fg = NULL;
  int *node_map = malloc((size_t)(g->n_nodes + 1) * sizeof *node_map);
  int *wparam = calloc((size_t)s->n_layers, sizeof *wparam);
  int *act_node = NULL;
  grad_ctx c = {.images = images, .labels = labels, .n = n};
  float *theta0 = NULL;
  int8_t *v = NULL;
  double *gp = NULL, *gm = NULL, *mean = NULL, *m2 = NULL;
  int threads = opt->threads ? opt->threads : 1;
  if (!node_map || !wparam) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  if ((st = fold_bn(g, &fg, node_map, err))) goto done;
  int batch = opt->batch < n ? opt->batch : (int)n;
  c.per_image = hawq_tensor_numel(&fg->tensors[fg->inputs[0]]);
  if ((st = find_acts(fg, n, &c, &act_node, err)) ||
      (st = record_pattern(fg, c.acts, c.n_acts, images, n, batch, threads, err))) {
    goto done;
  }
  for (int k = 0; k < 2; k++) {
    int b = k == 0 ? batch : (int)(n % batch);
    if (!b) break;
    hawq_train_options to = {.batch = b, .threads = threads};
    if ((st = linearise(fg, c.acts, act_node, c.n_acts, b, &c.run[k], err)) ||
        (st = hawq_train_plan_create(c.run[k].g, &to, &c.run[k].tp, err))) {
      goto done;
    }
  }
  int64_t classes = 0;
  hawq_train_plan_logits(c.run[0].tp, &classes);
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= classes) {
      st = hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "%s: label %d of image %lld is not below the %lld classes the model outputs",
                     g->source, labels[i], (long long)i, (long long)classes);
      goto done;
    }
  }
  c.n_params = hawq_train_plan_num_params(c.run[0].tp);
  if (!(c.offset = malloc((size_t)(c.n_params + 1) * sizeof *c.offset))) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  for (int i = 0; i < c.n_params; i++) {
    c.offset[i] = c.total;
    c.total += hawq_train_plan_param(c.run[0].tp, i)->numel;
    if (c.run[1].tp && (hawq_train_plan_num_params(c.run[1].tp) != c.n_params ||
                        hawq_train_plan_param(c.run[1].tp, i)->numel !=
                            hawq_train_plan_param(c.run[0].tp, i)->numel)) {
      st = hawq_fail(err, HAWQ_ERR_INTERNAL, "sensitivity: the two train plans disagree");
      goto done;
    }
  }
  /* Each layer's weight tensor among the parameters (a train plan may have given the node a
   * copy of a shared initializer, so look it up after the plans exist). */
  for (int i = 0; i < s->n_layers; i++) {
    int k = node_map[s->layers[i].node];
    k = k >= 0 ? c.run[0].node_map[k] : -1;
    wparam[i] = -1;
    for (int p = 0; k >= 0 && p < c.n_params; p++) {
      if (hawq_train_plan_param(c.run[0].tp, p)->tensor == c.run[0].g->nodes[k].inputs[1])
        wparam[i] = p;
    }
    if (wparam[i] < 0) {
      st = hawq_fail(err, HAWQ_ERR_INTERNAL, "%s: node '%s': weights are not a trainable parameter",
                     g->source, s->layers[i].name);
      goto done;
    }
  }
  theta0 = malloc((size_t)c.total * sizeof *theta0);
  v = malloc((size_t)c.total);
  gp = malloc((size_t)c.total * sizeof *gp);
  gm = malloc((size_t)c.total * sizeof *gm);
  mean = calloc((size_t)s->n_layers, sizeof *mean);
  m2 = calloc((size_t)s->n_layers, sizeof *m2);
  if (!theta0 || !v || !gp || !gm || !mean || !m2) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  double sumsq = 0;
  for (int i = 0; i < c.n_params; i++) {
    const hawq_param *q = hawq_train_plan_param(c.run[0].tp, i);
    for (int64_t j = 0; j < q->numel; j++) {
      theta0[c.offset[i] + j] = q->value[j];
      sumsq += (double)q->value[j] * q->value[j];
    }
  }
  /* The step. Central differences of float32 gradients have two errors: truncation, O(eps^2)
   * relative to the scale on which the curvature itself changes (the parameters' own scale),
   * and rounding, about u |g| / eps with u ~ 1e-7 the gradient's relative float32 rounding
   * error. Hence a step relative to the RMS of all trainable parameters,
   * eps = step * ||theta|| / sqrt(P): the perturbation eps v is then `step` times ||theta||
   * long. The default step 1e-3 lies inside the plateau where the estimates do not depend on
   * it (docs/mixed_precision.md; tests/search/test_hessian.c checks a range of steps against
   * an exact double-precision Hessian). */
  double rms = sqrt(sumsq / (double)c.total);
  s->epsilon = opt->step * (rms > 0 ? rms : 1.0);
  double prev_total = 0;
  int calm = 0; /* consecutive draws that moved the summed trace by less than tol */
  for (int d = 0; d < opt->max_draws && !st; d++) {
    hawq_rng r = hawq_rng_stream(opt->seed, (uint64_t)d, 0x5a17c4a11u);
    for (int64_t j = 0; j < c.total; j += 64) {
      uint64_t bits = hawq_rng_next(&r);
      for (int64_t b = 0; b < 64 && j + b < c.total; b++) v[j + b] = (bits >> b) & 1 ? 1 : -1;
    }
    if ((st = gradient_pair(&c, theta0, v, s->epsilon, gp, gm, err))) break;
    double total = 0;
    s->draws = d + 1;
    for (int i = 0; i < s->n_layers; i++) {
      int64_t off = c.offset[wparam[i]], cnt = hawq_train_plan_param(c.run[0].tp, wparam[i])->numel;
      double e = 0;
      for (int64_t j = 0; j < cnt; j++) e += v[off + j] * (gp[off + j] - gm[off + j]);
      e /= 2 * s->epsilon;
      double delta = e - mean[i];
      mean[i] += delta / s->draws;
      m2[i] += delta * (e - mean[i]);
      total += mean[i];
    }
    s->rel_change = d == 0 ? INFINITY : fabs(total - prev_total) / fmax(fabs(total), 1e-300);
    s->total_trace = prev_total = total;
    if (progress) progress(ctx, s->draws, total, s->rel_change);
    calm = s->rel_change < opt->tol ? calm + 1 : 0;
    if (s->draws >= opt->min_draws && calm >= HAWQ_HESSIAN_CALM_DRAWS) {
      s->converged = true;
      break;
    }
  }
  if (st) goto done;
  for (int i = 0; i < s->n_layers; i++) {
    hawq_layer_sensitivity *l = &s->layers[i];
    l->trace = mean[i];
    l->trace_se = sqrt(m2[i] / (s->draws - 1) / s->draws);
    for (int b = HAWQ_SENS_MIN_BITS; b <= HAWQ_SENS_MAX_BITS; b++)
      l->omega[b] = l->trace / (double)l->params * l->delta[b];
  }
done:
  runner_free(&c.run[0]);
  runner_free(&c.run[1]);
  for (int a = 0; c.acts && a < c.n_acts; a++) free(c.acts[a].code);
  free(c.acts);
  free(act_node);
  hawq_graph_destroy(fg);
  free(node_map);
  free(wparam);
  free(c.offset);
  free(theta0);
  free(v);
  free(gp);
  free(gm);
  free(mean);
  free(m2);
  if (st) {
    hawq_sensitivity_free(s);
    return st;
  }
  *out = s;
  return HAWQ_OK;
}

/* ---- sens.json ---- */

char *hawq_sensitivity_json(const hawq_sensitivity *s, const hawq_sensitivity_info *info) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "format", "hawq-sensitivity");
  cJSON_AddNumberToObject(o, "version", 1);
  cJSON_AddStringToObject(o, "model", info->model ? info->model : "");
  cJSON_AddStringToObject(o, "data", info->data ? info->data : "");
  cJSON_AddNumberToObject(o, "images", (double)s->images);
  cJSON_AddNumberToObject(o, "draws", s->draws);
  cJSON_AddNumberToObject(o, "seed", (double)info->seed);
  cJSON_AddNumberToObject(o, "tol", info->tol);
  cJSON_AddBoolToObject(o, "converged", s->converged);
  cJSON_AddNumberToObject(o, "seconds", info->seconds);
  cJSON_AddNumberToObject(o, "epsilon", s->epsilon);
  cJSON *layers = cJSON_AddArrayToObject(o, "layers");
  for (int i = 0; layers && i < s->n_layers; i++) {
    const hawq_layer_sensitivity *l = &s->layers[i];
    cJSON *j = cJSON_CreateObject();
    if (!j) break;
    cJSON_AddItemToArray(layers, j);
    cJSON_AddStringToObject(j, "name", l->name);
    cJSON_AddStringToObject(j, "op", l->op == HAWQ_OP_CONV ? "Conv" : "Gemm");
    cJSON_AddNumberToObject(j, "params", (double)l->params);
    cJSON_AddNumberToObject(j, "macs", (double)l->macs);
    cJSON_AddNumberToObject(j, "trace", l->trace);
    cJSON_AddNumberToObject(j, "trace_se", l->trace_se);
    cJSON *delta = cJSON_AddObjectToObject(j, "delta");
    cJSON *omega = cJSON_AddObjectToObject(j, "omega");
    for (int b = HAWQ_SENS_MIN_BITS; delta && omega && b <= HAWQ_SENS_MAX_BITS; b++) {
      char key[4];
      snprintf(key, sizeof key, "%d", b);
      cJSON_AddNumberToObject(delta, key, l->delta[b]);
      cJSON_AddNumberToObject(omega, key, l->omega[b]);
    }
  }
  cJSON *ties = cJSON_AddArrayToObject(o, "ties");
  for (int k = 0; ties && k < s->n_ties; k++) {
    cJSON *group = cJSON_CreateArray();
    if (!group) break;
    cJSON_AddItemToArray(ties, group);
    for (int m = s->tie_start[k]; m < s->tie_start[k + 1]; m++)
      cJSON_AddItemToArray(group, cJSON_CreateString(s->layers[s->tie_layer[m]].name));
  }
  char *text = cJSON_Print(o);
  cJSON_Delete(o);
  if (!text) return NULL;
  /* cJSON's allocator is malloc (the default hooks), so the caller frees with free(). */
  return text;
}
