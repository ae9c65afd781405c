/* Quantization-aware fine-tuning (qat.h).
 *
 * Two graphs: `clean`, the float model being fine-tuned (BN live or folded), which lowering
 * reads; and `sim`, a copy of it with FakeQuant nodes, which the train plan runs. sim's first
 * clean->n_tensors tensors are clean's, in the same order, so that parameter values and
 * activation ranges carry over by index; the quantizers' outputs come after them. */
#include "quant/qat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "float/ops.h"
#include "hawq/hawq.h"
#include "quant/qmodel.h"
#include "search/hessian.h"

typedef enum fq_kind {
  FQ_NONE,
  FQ_WEIGHT, /* key: the clean Conv/Gemm node */
  FQ_VALUE,  /* key: the clean tensor, as lowering stores it */
  FQ_EDGE,   /* key: the clean Conv/Gemm node, whose input is a requantized copy */
  FQ_BIAS,   /* key: the clean Conv/Gemm node (BN folded), its bias at the accumulator scale */
  FQ_ADDEND  /* key: the clean Add node: an addend rounded to the sum's scale, unclamped */
} fq_kind;

struct hawq_qat {
  const hawq_graph *teacher;
  const hawq_bit_config *cfg;
  hawq_qat_options opt;
  hawq_graph *clean;
  hawq_calib_range *ranges; /* per clean tensor */
  bool folded;
  hawq_graph *sim;
  fq_kind *kind;   /* per sim node */
  int *key;        /* per sim node */
  int cap;         /* entries of kind and key */
  int *qtensor_of; /* per clean tensor, from the last lowering */
  int *qnode_of;   /* per clean node: its QConv in the last lowering, or -1 */
  hawq_train_plan *tp;
  hawq_optim *optim;
  hawq_float_plan *teacher_plan;
  float *extra_grad; /* batch x classes */
  int64_t classes;
  int64_t steps;
};

hawq_qat_options hawq_qat_defaults(void) {
  return (hawq_qat_options){
      .batch = 128,
      .threads = 1,
      .optim = {.kind = HAWQ_OPTIM_SGD, .momentum = 0.9f, .nesterov = true, .weight_decay = 1e-4f},
      .bn_freeze_step = 0,
      .act_freeze_step = -1,
      .act_momentum = 0.99,
      .distill_weight = 0,
      .distill_temperature = 4.0,
  };
}

static hawq_status oom(hawq_error *err) {
  return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "quantization-aware training: out of memory");
}

/* ---- graphs ---- */

static int copy_tensor(const hawq_graph *from, int t, hawq_graph *to) {
  const hawq_tensor *s = &from->tensors[t];
  int c = hawq_graph_add_tensor(to, s->name, s->kind, s->rank, s->dims, s->batched);
  if (c < 0) return -1;
  if (s->kind == HAWQ_TENSOR_PARAM) {
    size_t n = (size_t)hawq_tensor_numel(s);
    if (!(to->tensors[c].data = hawq_alloc_floats(n))) return -1;
    memcpy(to->tensors[c].data, s->data, n * sizeof(float));
  }
  return c;
}

static char *dup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* A new graph with g's tensors (same indices), inputs, outputs and metadata, and no nodes. */
static hawq_graph *graph_shell(const hawq_graph *g) {
  hawq_graph *ng = hawq_graph_new(g->source);
  if (!ng) return NULL;
  ng->opset = g->opset;
  ng->preprocess = g->preprocess;
  ng->producer_name = dup(g->producer_name);
  bool ok = !g->producer_name || ng->producer_name;
  for (int t = 0; ok && t < g->n_tensors; t++) ok = copy_tensor(g, t, ng) == t;
  ng->inputs = malloc((size_t)(g->n_inputs + 1) * sizeof(int));
  ng->outputs = malloc((size_t)(g->n_outputs + 1) * sizeof(int));
  ok = ok && ng->inputs && ng->outputs;
  if (ok) {
    ng->n_inputs = g->n_inputs;
    ng->n_outputs = g->n_outputs;
    memcpy(ng->inputs, g->inputs, (size_t)g->n_inputs * sizeof(int));
    memcpy(ng->outputs, g->outputs, (size_t)g->n_outputs * sizeof(int));
  }
  for (int i = 0; ok && i < g->n_meta; i++) {
    ng->meta_key[i] = dup(g->meta_key[i]);
    ng->meta_value[i] = dup(g->meta_value[i]);
    ng->n_meta = i + 1;
    ok = ng->meta_key[i] && ng->meta_value[i];
  }
  if (!ok) {
    hawq_graph_destroy(ng);
    return NULL;
  }
  return ng;
}

static bool add_copy_of_node(hawq_graph *ng, const hawq_node *n, const int *inputs, int output) {
  int c = hawq_graph_add_node(ng, n->op, n->name, n->op_type, n->n_inputs, inputs, output);
  if (c < 0) return false;
  ng->nodes[c].attr = n->attr;
  return true;
}

static hawq_graph *graph_clone(const hawq_graph *g) {
  hawq_graph *ng = graph_shell(g);
  for (int k = 0; ng && k < g->n_nodes; k++) {
    if (!add_copy_of_node(ng, &g->nodes[k], g->nodes[k].inputs, g->nodes[k].output)) {
      hawq_graph_destroy(ng);
      return NULL;
    }
  }
  return ng;
}

/* ---- the quantizers lowering implies ---- */

static bool is_layer(const hawq_node *n) {
  return n->op == HAWQ_OP_CONV || n->op == HAWQ_OP_GEMM;
}

/* Lowers clean with the current ranges; fills qtensor_of and qnode_of. */
static hawq_status lower_clean(hawq_qat *q, hawq_qmodel **qm, hawq_error *err) {
  const hawq_graph *g = q->clean;
  hawq_status st = hawq_lower(g, q->ranges, q->cfg, &g->preprocess, qm, q->qtensor_of, err);
  if (st) return st;
  for (int k = 0; k < g->n_nodes; k++) {
    q->qnode_of[k] = -1;
    if (!is_layer(&g->nodes[k])) continue;
    for (int j = 0; j < (*qm)->n_nodes; j++) {
      const hawq_qnode *qn = &(*qm)->nodes[j];
      if (qn->op == HAWQ_QOP_CONV && !strcmp(qn->name, g->nodes[k].name)) {
        q->qnode_of[k] = j;
        break;
      }
    }
  }
  return HAWQ_OK;
}

/* Whether lowering stores clean tensor t as a value of its own: not a reshaped, padded or
 * transposed view of a stored value (quantizing the view again would change nothing). */
static bool value_point(const hawq_qat *q, const hawq_qmodel *qm, int t) {
  const hawq_graph *g = q->clean;
  int qt = q->qtensor_of[t];
  if (qt < 0 || g->tensors[t].kind == HAWQ_TENSOR_PARAM) return false;
  if (qm->tensors[qt].type == HAWQ_QT_I32) return false; /* the logits: int32 is exact here */
  int p = g->tensors[t].producer;
  if (p >= 0) {
    const hawq_node *n = &g->nodes[p];
    bool view = n->op == HAWQ_OP_RESHAPE || n->op == HAWQ_OP_PAD || n->op == HAWQ_OP_TRANSPOSE;
    if (view && n->inputs[0] >= 0 && q->qtensor_of[n->inputs[0]] == qt) return false;
  }
  return true;
}

/* The requantized copy layer node k reads instead of its input's stored value, or -1. */
static int edge_qtensor(const hawq_qat *q, const hawq_qmodel *qm, int k) {
  int j = q->qnode_of[k];
  if (j < 0) return -1;
  int qi = qm->nodes[j].inputs[0];
  return q->qtensor_of[q->clean->nodes[k].inputs[0]] == qi ? -1 : qi;
}

/* The qtensor holding the result of Add node k (after the Relu/Clip lowering fuses into it),
 * whose scale each addend is rounded to separately (ARCHITECTURE, "Residual add"); -1 when k is
 * not such an add. */
static int add_qtensor(const hawq_qat *q, int k) {
  const hawq_graph *g = q->clean;
  const hawq_node *n = &g->nodes[k];
  if (n->op != HAWQ_OP_ADD || n->n_inputs != 2) return -1;
  for (int i = 0; i < 2; i++)
    if (n->inputs[i] < 0 || g->tensors[n->inputs[i]].kind == HAWQ_TENSOR_PARAM) return -1;
  int t = n->output;
  for (;;) {
    if (q->qtensor_of[t] >= 0) return q->qtensor_of[t];
    int user = -1, users = 0;
    for (int j = 0; j < g->n_nodes; j++)
      for (int i = 0; i < g->nodes[j].n_inputs; i++)
        if (g->nodes[j].inputs[i] == t) users++, user = j;
    if (users != 1 || (g->nodes[user].op != HAWQ_OP_RELU && g->nodes[user].op != HAWQ_OP_CLIP))
      return -1;
    t = g->nodes[user].output;
  }
}

static bool weight_point(const hawq_qat *q, int k) {
  const hawq_graph *g = q->clean;
  return q->qnode_of[k] >= 0 && g->tensors[g->nodes[k].inputs[1]].kind == HAWQ_TENSOR_PARAM;
}

/* Adds a FakeQuant node reading tensor x, named "<x>.<suffix>", writing a new tensor shaped
 * like x; returns the new tensor or -1. */
static int add_fakequant(hawq_qat *q, hawq_graph *ng, int x, const char *suffix, fq_kind kind,
                         int key) {
  char name[640];
  snprintf(name, sizeof name, "%s.%s", ng->tensors[x].name, suffix);
  hawq_tensor src = ng->tensors[x]; /* by value: adding a tensor may move the array */
  int y = hawq_graph_add_tensor(ng, name, HAWQ_TENSOR_ACTIVATION, src.rank, src.dims, src.batched);
  if (y < 0) return -1;
  hawq_node n = {.op = HAWQ_OP_FAKEQUANT, .name = name, .op_type = "FakeQuant", .n_inputs = 1};
  n.attr.fakequant = (hawq_fakequant_attr){
      .per_channel = kind == FQ_WEIGHT, .bits = 8, .scale = 1.0, .lo = -127, .hi = 127};
  int node = ng->n_nodes;
  if (node >= q->cap || !add_copy_of_node(ng, &n, (int[]){x}, y)) return -1;
  q->kind[node] = kind;
  q->key[node] = key;
  return y;
}

/* Adds a FakeQuant rounding the bias of layer node k (clean) to multiples of a per-channel
 * scale tensor "<bias>.fq_scale" that apply_qmodel fills; returns the new tensor or -1. */
static int add_bias_fakequant(hawq_qat *q, hawq_graph *ng, int b, int k) {
  char name[640];
  snprintf(name, sizeof name, "%s.fq_scale", ng->tensors[b].name);
  hawq_tensor src = ng->tensors[b];
  int s = hawq_graph_add_tensor(ng, name, HAWQ_TENSOR_PARAM, src.rank, src.dims, false);
  if (s < 0 || !(ng->tensors[s].data = hawq_alloc_floats((size_t)hawq_tensor_numel(&src))))
    return -1;
  snprintf(name, sizeof name, "%s.fq", src.name);
  int y = hawq_graph_add_tensor(ng, name, HAWQ_TENSOR_ACTIVATION, src.rank, src.dims, false);
  if (y < 0) return -1;
  hawq_node n = {.op = HAWQ_OP_FAKEQUANT, .name = name, .op_type = "FakeQuant", .n_inputs = 2};
  n.attr.fakequant = (hawq_fakequant_attr){.given_scales = true};
  int node = ng->n_nodes;
  if (node >= q->cap || !add_copy_of_node(ng, &n, (int[]){b, s}, y)) return -1;
  q->kind[node] = FQ_BIAS;
  q->key[node] = k;
  return y;
}

/* Copies every quantizer's scale, clamp and bits from lowered model qm. */
static hawq_status apply_qmodel(hawq_qat *q, const hawq_qmodel *qm, hawq_error *err) {
  for (int k = 0; k < q->sim->n_nodes; k++) {
    hawq_fakequant_attr *a = &q->sim->nodes[k].attr.fakequant;
    int qt = -1;
    switch (q->kind[k]) {
      case FQ_NONE:
        continue;
      case FQ_WEIGHT:
        if (q->qnode_of[q->key[k]] < 0) break;
        a->bits = qm->nodes[q->qnode_of[q->key[k]]].weight_bits;
        continue;
      case FQ_BIAS: {
        if (q->qnode_of[q->key[k]] < 0) break;
        const hawq_qnode *qn = &qm->nodes[q->qnode_of[q->key[k]]];
        const hawq_tensor *st = &q->sim->tensors[q->sim->nodes[k].inputs[1]];
        int64_t rows = hawq_tensor_numel(st);
        double s_in = qm->tensors[qn->inputs[0]].scale;
        for (int64_t r = 0; r < rows; r++) st->data[r] = (float)(s_in * qn->weight_scale[r]);
        continue;
      }
      case FQ_VALUE:
        qt = q->qtensor_of[q->key[k]];
        break;
      case FQ_EDGE:
        qt = edge_qtensor(q, qm, q->key[k]);
        break;
      case FQ_ADDEND:
        if ((qt = add_qtensor(q, q->key[k])) < 0) break;
        a->scale = qm->tensors[qt].scale;
        a->lo = -INT32_MAX;
        a->hi = INT32_MAX;
        continue;
    }
    if (qt < 0) {
      return hawq_fail(err, HAWQ_ERR_INTERNAL,
                       "%s: quantizer '%s' has no counterpart in the lowered model",
                       q->clean->source, q->sim->nodes[k].name);
    }
    a->scale = qm->tensors[qt].scale;
    a->lo = qm->tensors[qt].lo;
    a->hi = qm->tensors[qt].hi;
  }
  return HAWQ_OK;
}

/* clean -> sim with fake quantizers where lowering quantizes, and the train plan on it. */
static hawq_status build_sim(hawq_qat *q, hawq_error *err) {
  hawq_qmodel *qm = NULL;
  hawq_status st = lower_clean(q, &qm, err);
  if (st) return st;
  const hawq_graph *g = q->clean;
  int cap = 5 * g->n_nodes + g->n_tensors + 8; /* at most 4 quantizers per node, + inputs */
  q->cap = cap;
  q->kind = calloc((size_t)cap, sizeof *q->kind);
  q->key = calloc((size_t)cap, sizeof *q->key);
  int *now = malloc((size_t)(g->n_tensors + 1) * sizeof *now); /* tensor consumers read */
  hawq_graph *ng = q->kind && q->key && now ? graph_shell(g) : NULL;
  bool ok = ng != NULL;
  for (int t = 0; ok && t < g->n_tensors; t++) now[t] = t;
  for (int i = 0; ok && i < g->n_inputs; i++) {
    int x = g->inputs[i];
    if (value_point(q, qm, x)) ok = (now[x] = add_fakequant(q, ng, x, "fq", FQ_VALUE, x)) >= 0;
  }
  for (int k = 0; ok && k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    int in[HAWQ_MAX_CONCAT_INPUTS + 8];
    if (n->n_inputs > (int)(sizeof in / sizeof in[0])) {
      ok = false;
      break;
    }
    for (int i = 0; i < n->n_inputs; i++) in[i] = n->inputs[i] >= 0 ? now[n->inputs[i]] : -1;
    if (is_layer(n) && weight_point(q, k)) {
      ok = (in[1] = add_fakequant(q, ng, n->inputs[1], "fq", FQ_WEIGHT, k)) >= 0;
    }
    if (ok && is_layer(n) && q->folded && weight_point(q, k) && n->n_inputs > 2 &&
        n->inputs[2] >= 0 && g->tensors[n->inputs[2]].kind == HAWQ_TENSOR_PARAM) {
      ok = (in[2] = add_bias_fakequant(q, ng, n->inputs[2], k)) >= 0;
    }
    if (ok && is_layer(n) && edge_qtensor(q, qm, k) >= 0) {
      char suffix[600];
      snprintf(suffix, sizeof suffix, "fq.%s", n->name);
      ok = (in[0] = add_fakequant(q, ng, in[0], suffix, FQ_EDGE, k)) >= 0;
    }
    if (ok && add_qtensor(q, k) >= 0) {
      for (int i = 0; ok && i < 2; i++) {
        char suffix[600];
        snprintf(suffix, sizeof suffix, "fq.%s.%d", n->name, i);
        ok = (in[i] = add_fakequant(q, ng, in[i], suffix, FQ_ADDEND, k)) >= 0;
      }
    }
    ok = ok && add_copy_of_node(ng, n, in, n->output);
    if (ok && value_point(q, qm, n->output)) {
      ok = (now[n->output] = add_fakequant(q, ng, n->output, "fq", FQ_VALUE, n->output)) >= 0;
    }
  }
  for (int i = 0; ok && i < g->n_outputs; i++) ng->outputs[i] = now[g->outputs[i]];
  free(now);
  if (!ok) {
    hawq_graph_destroy(ng);
    hawq_qmodel_destroy(qm);
    return oom(err);
  }
  q->sim = ng;
  st = apply_qmodel(q, qm, err);
  hawq_qmodel_destroy(qm);
  if (st) return st;
  st = hawq_train_plan_create(
      ng,
      &(hawq_train_options){
          .batch = q->opt.batch, .threads = q->opt.threads, .bn_momentum = q->opt.bn_momentum},
      &q->tp, err);
  if (!st) st = hawq_optim_create(&q->opt.optim, q->tp, &q->optim, err);
  if (!st) hawq_train_plan_logits(q->tp, &q->classes);
  return st;
}

static void drop_sim(hawq_qat *q) {
  hawq_optim_destroy(q->optim);
  hawq_train_plan_destroy(q->tp);
  hawq_graph_destroy(q->sim);
  free(q->kind);
  free(q->key);
  q->optim = NULL;
  q->tp = NULL;
  q->sim = NULL;
  q->kind = NULL;
  q->key = NULL;
}

/* sim's parameters (trained weights, BN statistics) back into clean. */
static void sync_clean(hawq_qat *q) {
  if (!q->sim) return;
  for (int t = 0; t < q->clean->n_tensors; t++) {
    hawq_tensor *c = &q->clean->tensors[t];
    if (c->kind != HAWQ_TENSOR_PARAM) continue;
    memcpy(c->data, q->sim->tensors[t].data, (size_t)hawq_tensor_numel(c) * sizeof(float));
  }
}

/* The quantizers' scales from the current weights and ranges. */
static hawq_status refresh_scales(hawq_qat *q, hawq_error *err) {
  sync_clean(q);
  hawq_qmodel *qm = NULL;
  hawq_status st = lower_clean(q, &qm, err);
  if (!st) st = apply_qmodel(q, qm, err);
  hawq_qmodel_destroy(qm);
  return st;
}

static hawq_status alloc_tables(hawq_qat *q, hawq_error *err) {
  free(q->qtensor_of);
  free(q->qnode_of);
  q->qtensor_of = malloc((size_t)(q->clean->n_tensors + 1) * sizeof *q->qtensor_of);
  q->qnode_of = malloc((size_t)(q->clean->n_nodes + 1) * sizeof *q->qnode_of);
  return q->qtensor_of && q->qnode_of ? HAWQ_OK : oom(err);
}

hawq_status hawq_qat_fold(hawq_qat *q, hawq_error *err) {
  if (q->folded) return HAWQ_OK;
  sync_clean(q);
  hawq_graph *folded = NULL;
  hawq_status st = hawq_graph_fold_bn(q->clean, &folded, err);
  if (st) return st;
  /* Ranges follow their tensors by name (a folded BN's output is its convolution's now). */
  hawq_calib_range *ranges = calloc((size_t)folded->n_tensors + 1, sizeof *ranges);
  if (!ranges) {
    hawq_graph_destroy(folded);
    return oom(err);
  }
  for (int t = 0; t < folded->n_tensors; t++) {
    for (int s = 0; s < q->clean->n_tensors; s++) {
      if (!strcmp(folded->tensors[t].name, q->clean->tensors[s].name)) {
        ranges[t] = q->ranges[s];
        break;
      }
    }
  }
  drop_sim(q);
  hawq_graph_destroy(q->clean);
  free(q->ranges);
  q->clean = folded;
  q->ranges = ranges;
  q->folded = true;
  if ((st = alloc_tables(q, err))) return st;
  return build_sim(q, err);
}

void hawq_qat_destroy(hawq_qat *q) {
  if (!q) return;
  drop_sim(q);
  hawq_graph_destroy(q->clean);
  hawq_float_plan_destroy(q->teacher_plan);
  free(q->ranges);
  free(q->qtensor_of);
  free(q->qnode_of);
  hawq_free(q->extra_grad);
  free(q);
}

hawq_status hawq_qat_create(const hawq_graph *g, const hawq_bit_config *cfg,
                            const hawq_calib_range *ranges, const hawq_qat_options *opt,
                            hawq_qat **out, hawq_error *err) {
  *out = NULL;
  if (!opt || opt->batch < 1) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "batch must be >= 1");
  if (!(opt->act_momentum >= 0 && opt->act_momentum < 1)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "activation range momentum must be in [0, 1)");
  }
  if (!(opt->distill_weight >= 0 && opt->distill_weight <= 1) || !(opt->distill_temperature > 0)) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG,
                     "distillation weight must be in [0, 1] and its temperature > 0");
  }
  hawq_qat *q = calloc(1, sizeof *q);
  if (!q) return oom(err);
  q->teacher = g;
  q->cfg = cfg;
  q->opt = *opt;
  if (q->opt.threads < 1) q->opt.threads = 1;
  hawq_status st = HAWQ_OK;
  if (!(q->clean = graph_clone(g))) st = oom(err);
  if (!st) st = hawq_graph_untie_params(q->clean, err);
  if (!st && !(q->ranges = calloc((size_t)q->clean->n_tensors + 1, sizeof *q->ranges)))
    st = oom(err);
  if (!st) {
    memcpy(q->ranges, ranges, (size_t)g->n_tensors * sizeof *ranges);
    st = alloc_tables(q, err);
  }
  if (!st) {
    if (opt->bn_freeze_step <= 0) {
      st = hawq_qat_fold(q, err);
    } else {
      st = build_sim(q, err);
    }
  }
  if (!st && opt->distill_weight > 0) {
    st = hawq_float_plan_create(
        g, &(hawq_float_plan_options){.batch = opt->batch, .threads = q->opt.threads},
        &q->teacher_plan, err);
    if (!st && !(q->extra_grad = hawq_alloc_floats((size_t)(opt->batch * q->classes))))
      st = oom(err);
    if (!st &&
        hawq_float_plan_output_size(q->teacher_plan, 0) != (size_t)(opt->batch * q->classes)) {
      st = hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: the teacher's output is not the logits",
                     g->source);
    }
  }
  if (st) {
    hawq_qat_destroy(q);
    return st;
  }
  *out = q;
  return HAWQ_OK;
}

double hawq_distill_loss(const float *student, const float *teacher, int64_t rows, int64_t classes,
                         double temperature, double weight, float *grad) {
  const double T = temperature, a = weight;
  const int64_t C = classes;
  double kl = 0;
  for (int64_t r = 0; r < rows; r++) {
    const float *s = student + r * C, *t = teacher + r * C;
    double ms = -INFINITY, mt = -INFINITY, zs = 0, zt = 0;
    for (int64_t c = 0; c < C; c++) {
      ms = fmax(ms, s[c] / T);
      mt = fmax(mt, t[c] / T);
    }
    for (int64_t c = 0; c < C; c++) {
      zs += exp(s[c] / T - ms);
      zt += exp(t[c] / T - mt);
    }
    for (int64_t c = 0; c < C; c++) {
      double lps = s[c] / T - ms - log(zs), lpt = t[c] / T - mt - log(zt);
      double ps = exp(lps), pt = exp(lpt);
      kl += pt * (lpt - lps);
      /* d(a T^2 KL / rows)/ds = a T (ps - pt) / rows */
      if (grad) grad[r * C + c] = (float)(a * T * (ps - pt) / (double)rows);
    }
  }
  return a * T * T * kl / (double)rows;
}

hawq_status hawq_qat_step(hawq_qat *q, const float *images, const int32_t *labels, float lr,
                          double *loss, int64_t *correct, hawq_error *err) {
  hawq_status st = refresh_scales(q, err);
  if (!st) st = hawq_train_plan_forward(q->tp, images, !q->folded, err);
  if (st) return st;
  double ce = hawq_train_plan_loss(q->tp, labels, 0.0f, correct);
  double total = ce;
  float ce_weight = 1.0f;
  if (q->teacher_plan) {
    if ((st = hawq_float_plan_run(q->teacher_plan, (const float *const[]){images}, err))) return st;
    int64_t classes;
    double kd = hawq_distill_loss(
        hawq_train_plan_logits(q->tp, &classes), hawq_float_plan_output(q->teacher_plan, 0),
        q->opt.batch, q->classes, q->opt.distill_temperature, q->opt.distill_weight, q->extra_grad);
    ce_weight = (float)(1.0 - q->opt.distill_weight);
    total = ce_weight * ce + kd;
  }
  hawq_train_plan_zero_grad(q->tp);
  st = hawq_train_plan_backward_ex(q->tp, ce_weight, q->teacher_plan ? q->extra_grad : NULL, err);
  if (st) return st;
  hawq_optim_step(q->optim, q->tp, lr);
  if (q->opt.act_freeze_step < 0 || q->steps < q->opt.act_freeze_step) {
    const double m = q->opt.act_momentum;
    for (int k = 0; k < q->sim->n_nodes; k++) {
      float lo, hi;
      if (q->kind[k] != FQ_VALUE || !hawq_train_plan_batch_range(q->tp, k, &lo, &hi)) continue;
      hawq_calib_range *r = &q->ranges[q->key[k]];
      r->min = m * r->min + (1 - m) * lo;
      r->max = m * r->max + (1 - m) * hi;
    }
  }
  q->steps++;
  if (loss) *loss = total;
  if (!q->folded && q->steps >= q->opt.bn_freeze_step) st = hawq_qat_fold(q, err);
  return st;
}

bool hawq_qat_folded(const hawq_qat *q) {
  return q->folded;
}

int64_t hawq_qat_steps(const hawq_qat *q) {
  return q->steps;
}

hawq_status hawq_qat_logits(hawq_qat *q, const float *images, const float **logits,
                            int64_t *classes, hawq_error *err) {
  hawq_status st = refresh_scales(q, err);
  if (!st) st = hawq_train_plan_forward(q->tp, images, false, err);
  if (st) return st;
  *logits = hawq_train_plan_logits(q->tp, classes);
  return HAWQ_OK;
}

hawq_status hawq_qat_lower(hawq_qat *q, hawq_qmodel **out, hawq_error *err) {
  *out = NULL;
  hawq_status st = hawq_qat_fold(q, err);
  if (st) return st;
  sync_clean(q);
  return hawq_lower(q->clean, q->ranges, q->cfg, &q->clean->preprocess, out, NULL, err);
}

const hawq_graph *hawq_qat_graph(hawq_qat *q) {
  sync_clean(q);
  return q->clean;
}

const hawq_calib_range *hawq_qat_ranges(const hawq_qat *q) {
  return q->ranges;
}

void hawq_qat_count(const hawq_qat *q, int *weights, int *activations) {
  *weights = *activations = 0;
  for (int k = 0; k < q->sim->n_nodes; k++) {
    if (q->kind[k] == FQ_WEIGHT) ++*weights;
    if (q->kind[k] == FQ_VALUE || q->kind[k] == FQ_EDGE) ++*activations;
  }
}

const float *hawq_qat_value(const hawq_qat *q, const char *name) {
  char fq[640];
  snprintf(fq, sizeof fq, "%s.fq", name);
  int found = -1;
  for (int t = 0; t < q->sim->n_tensors; t++) {
    if (!strcmp(q->sim->tensors[t].name, fq)) return hawq_train_plan_value(q->tp, t);
    if (!strcmp(q->sim->tensors[t].name, name)) found = t;
  }
  return found >= 0 ? hawq_train_plan_value(q->tp, found) : NULL;
}
