/* The train plan: forward keeping every tensor, softmax cross-entropy, backward to every
 * trainable parameter. See train.h.
 *
 * No buffer is shared: every activation has its value and (when the loss depends on it through
 * a parameter) its gradient. The only fusion is of a ReLU/Clip into the BatchNormalization or
 * same-shape Add before it, whose pre-activation tensor is then never stored. In a backward,
 * the first node to reach a tensor's gradient writes it (or zeroes it first) and the others
 * accumulate into it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/status.h"
#include "float/ops.h"
#include "float/train.h"

/* How a node runs: BatchNormalization and a same-shape Add take a following Relu/Clip into
 * their pass (forward applies it, backward masks by its output), which is then skipped. */
typedef struct node_exec {
  bool skip;    /* fused into its producer */
  int out;      /* tensor the node writes: its own output, or the fused activation's */
  hawq_act act; /* the fused activation */
} node_exec;

typedef struct bn_cache {
  float *mean, *rstd; /* (c): the statistics the last forward normalized with */
} bn_cache;

struct hawq_train_plan {
  hawq_graph *g;
  int batch, threads;
  float bn_momentum;
  hawq_dnnl_context dnnl;
  float **val;                    /* per tensor: its value (params: the graph's data) */
  float **grad;                   /* per tensor: its gradient, NULL when not needed */
  bool *needs_grad;               /* per tensor */
  int64_t (*dims)[HAWQ_MAX_RANK]; /* per tensor: logical dims with the batch */
  hawq_conv2d_train **conv;       /* per node */
  bn_cache *bn;                   /* per node */
  node_exec *exec;                /* per node */
  bool *elided;                   /* per tensor: a fused intermediate, never materialised */
  bool *ready;                    /* per tensor, during a backward: its gradient is written */
  bool last_training;
  int n_params;
  hawq_param *params;
  int logits; /* tensor the loss reads: output 0, or the input of a final Softmax */
  int64_t classes;
  float *probs;    /* softmax of the logits, from the last loss */
  int32_t *labels; /* and its labels */
  float loss_smoothing;
  float *workspace;
  size_t bytes;
  double *seconds;   /* with profiling: per node, forward then backward (2 per node) */
  float (*range)[2]; /* per node: a per-tensor FakeQuant's input min and max, last forward */
};

static int64_t dims_numel(int rank, const int64_t *d) {
  int64_t n = 1;
  for (int k = 0; k < rank; k++) n *= d[k];
  return n;
}

static int64_t tensor_numel(const hawq_train_plan *p, int t) {
  return dims_numel(p->g->tensors[t].rank, p->dims[t]);
}

static float *alloc_tracked(hawq_train_plan *p, int64_t n) {
  p->bytes += (size_t)n * sizeof(float);
  return hawq_alloc_floats((size_t)(n > 0 ? n : 1));
}

/* Marks the trainable parameters of node n (weights and biases of Conv and Gemm, scale and
 * bias of BatchNormalization); weights get weight decay. */
static void mark_trainable(const hawq_graph *g, const hawq_node *n, bool *trainable, bool *decay) {
  int first = 1, last = 0;
  if (n->op == HAWQ_OP_CONV || n->op == HAWQ_OP_GEMM) last = 2;
  if (n->op == HAWQ_OP_BATCHNORM) last = 2;
  /* A fake-quantized weight: the float weight behind it is the parameter. */
  if (n->op == HAWQ_OP_FAKEQUANT) {
    int t = n->inputs[0];
    if (g->tensors[t].kind == HAWQ_TENSOR_PARAM) {
      trainable[t] = true;
      decay[t] = n->attr.fakequant.per_channel;
    }
    return;
  }
  for (int i = first; i <= last && i < n->n_inputs; i++) {
    int t = n->inputs[i];
    if (t < 0 || g->tensors[t].kind != HAWQ_TENSOR_PARAM) continue;
    trainable[t] = true;
    if (i == 1 && n->op != HAWQ_OP_BATCHNORM) decay[t] = true;
  }
}

/* The single consumer of tensor t, or -1 (several, none, or t is a graph output). */
static int sole_consumer(const hawq_graph *g, int t) {
  for (int i = 0; i < g->n_outputs; i++)
    if (g->outputs[i] == t) return -1;
  int found = -1;
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_inputs; i++) {
      if (n->inputs[i] != t) continue;
      if (found >= 0) return -1;
      found = k;
    }
  }
  return found;
}

static bool same_dims(const hawq_train_plan *p, int a, int b) {
  const hawq_tensor *ta = &p->g->tensors[a], *tb = &p->g->tensors[b];
  if (ta->rank != tb->rank) return false;
  for (int k = 0; k < ta->rank; k++)
    if (p->dims[a][k] != p->dims[b][k]) return false;
  return true;
}

/* BatchNormalization -> Relu/Clip and Add (same shapes) -> Relu/Clip run as one node. */
static void plan_fusion(hawq_train_plan *p) {
  const hawq_graph *g = p->g;
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    node_exec *e = &p->exec[k];
    e->out = n->output;
    if (e->skip || n->output == p->logits) continue;
    bool fusable = n->op == HAWQ_OP_BATCHNORM ||
                   (n->op == HAWQ_OP_ADD && same_dims(p, n->inputs[0], n->output) &&
                    same_dims(p, n->inputs[1], n->output) &&
                    g->tensors[n->inputs[0]].kind != HAWQ_TENSOR_PARAM &&
                    g->tensors[n->inputs[1]].kind != HAWQ_TENSOR_PARAM);
    if (!fusable) continue;
    int next = sole_consumer(g, n->output);
    if (next < 0) continue;
    const hawq_node *a = &g->nodes[next];
    if (a->op == HAWQ_OP_RELU) {
      e->act = (hawq_act){true, 0.0f, INFINITY};
    } else if (a->op == HAWQ_OP_CLIP) {
      e->act = (hawq_act){true, a->attr.clip.min, a->attr.clip.max};
    } else {
      continue;
    }
    p->exec[next].skip = true;
    p->elided[n->output] = true;
    e->out = a->output;
  }
}

void hawq_train_plan_destroy(hawq_train_plan *p) {
  if (!p) return;
  const hawq_graph *g = p->g;
  if (p->val) {
    for (int t = 0; t < g->n_tensors; t++) {
      if (g->tensors[t].kind != HAWQ_TENSOR_PARAM) hawq_free(p->val[t]);
    }
  }
  if (p->grad) {
    for (int t = 0; t < g->n_tensors; t++) hawq_free(p->grad[t]);
  }
  if (p->conv) {
    for (int k = 0; k < g->n_nodes; k++) hawq_conv2d_train_destroy(p->conv[k]);
  }
  if (p->bn) {
    for (int k = 0; k < g->n_nodes; k++) {
      hawq_free(p->bn[k].mean);
      hawq_free(p->bn[k].rstd);
    }
  }
  hawq_dnnl_context_destroy(&p->dnnl);
  free(p->val);
  free(p->grad);
  free(p->needs_grad);
  free(p->exec);
  free(p->elided);
  free(p->ready);
  free(p->dims);
  free(p->conv);
  free(p->bn);
  free(p->params);
  free(p->seconds);
  free(p->range);
  hawq_free(p->probs);
  free(p->labels);
  hawq_free(p->workspace);
  free(p);
}

/* The tensor holding the logits: output 0, or what a final Softmax reads (the loss applies its
 * own softmax). It must be (batch, classes). */
static hawq_status find_logits(hawq_train_plan *p, hawq_error *err) {
  const hawq_graph *g = p->g;
  if (g->n_outputs < 1) return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: no outputs", g->source);
  int t = g->outputs[0];
  int producer = g->tensors[t].producer;
  if (producer >= 0 && g->nodes[producer].op == HAWQ_OP_SOFTMAX) t = g->nodes[producer].inputs[0];
  const hawq_tensor *lt = &g->tensors[t];
  if (lt->rank != 2 || !lt->batched || lt->kind != HAWQ_TENSOR_ACTIVATION) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: output '%s' is not (batch, classes) logits; training needs them",
                     g->source, g->tensors[g->outputs[0]].name);
  }
  p->logits = t;
  p->classes = lt->dims[1];
  return HAWQ_OK;
}

/* The last input slot of node n holding a trainable parameter or a BN buffer (0: none). */
static int last_param_slot(const hawq_node *n) {
  if (n->op == HAWQ_OP_CONV || n->op == HAWQ_OP_GEMM) return 2;
  if (n->op == HAWQ_OP_BATCHNORM) return 4;
  return 0;
}

static bool tensor_name_taken(const hawq_graph *g, const char *name) {
  for (int t = 0; t < g->n_tensors; t++)
    if (!strcmp(g->tensors[t].name, name)) return true;
  return false;
}

/* Gives every trainable op its own parameters and BN buffers. An initializer read by two of
 * them is, in exported models, nearly always the exporter merging equal values (PyTorch
 * deduplicates identical initializers: zero biases, BN statistics at initialisation, ...), not
 * deliberate weight tying; trained as one tensor they would stay equal, and shared running
 * statistics would mix two layers'. The copy is named "<node>.<role>". */
static hawq_status untie_params(hawq_graph *g, hawq_error *err) {
  static const char *const roles[2][5] = {{"", "weight", "bias", "", ""},
                                          {"", "weight", "bias", "running_mean", "running_var"}};
  int slots = 0;
  for (int k = 0; k < g->n_nodes; k++) slots += last_param_slot(&g->nodes[k]);
  bool *claimed = calloc((size_t)(g->n_tensors + slots + 1), sizeof *claimed);
  if (!claimed) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  hawq_status st = HAWQ_OK;
  for (int k = 0; k < g->n_nodes && !st; k++) {
    int last = last_param_slot(&g->nodes[k]);
    for (int i = 1; i <= last && i < g->nodes[k].n_inputs && !st; i++) {
      int t = g->nodes[k].inputs[i];
      if (t < 0 || g->tensors[t].kind != HAWQ_TENSOR_PARAM) continue;
      if (!claimed[t]) {
        claimed[t] = true;
        continue;
      }
      char name[512];
      const char *role = roles[g->nodes[k].op == HAWQ_OP_BATCHNORM][i];
      snprintf(name, sizeof name, "%s.%s", g->nodes[k].name, role);
      for (int extra = 2; tensor_name_taken(g, name); extra++) {
        snprintf(name, sizeof name, "%s.%s.%d", g->nodes[k].name, role, extra);
      }
      hawq_tensor src = g->tensors[t]; /* by value: adding a tensor may move the array */
      int copy = hawq_graph_add_tensor(g, name, HAWQ_TENSOR_PARAM, src.rank, src.dims, false);
      float *data = copy >= 0 ? hawq_alloc_floats((size_t)hawq_tensor_numel(&src)) : NULL;
      if (!data) {
        st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
        break;
      }
      memcpy(data, src.data, (size_t)hawq_tensor_numel(&src) * sizeof(float));
      g->tensors[copy].data = data;
      g->nodes[k].inputs[i] = copy;
      claimed[copy] = true;
    }
  }
  free(claimed);
  return st;
}

hawq_status hawq_train_plan_create(hawq_graph *g, const hawq_train_options *opt,
                                   hawq_train_plan **out, hawq_error *err) {
  *out = NULL;
  if (!opt || opt->batch < 1) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "batch must be >= 1");
  if (opt->threads < 0 || opt->threads > 1024) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "threads must be between 1 and 1024");
  }
  if (g->n_inputs != 1) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: training needs exactly one graph input, got %d", g->source, g->n_inputs);
  }
  hawq_status untie = untie_params(g, err);
  if (untie) return untie;
  hawq_train_plan *p = calloc(1, sizeof *p);
  if (!p) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  p->g = g;
  p->batch = opt->batch;
  p->threads = opt->threads ? opt->threads : 1;
  p->bn_momentum = opt->bn_momentum > 0 ? opt->bn_momentum : 0.1f;
  hawq_status st = HAWQ_OK;
  if (opt->profile) {
    p->seconds = calloc((size_t)(2 * (g->n_nodes ? g->n_nodes : 1)), sizeof(double));
    if (!p->seconds) {
      free(p);
      return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    }
  }
  int nt = g->n_tensors, nn = g->n_nodes ? g->n_nodes : 1;
  bool *trainable = calloc((size_t)nt, sizeof *trainable);
  bool *decay = calloc((size_t)nt, sizeof *decay);
  p->val = calloc((size_t)nt, sizeof *p->val);
  p->grad = calloc((size_t)nt, sizeof *p->grad);
  p->needs_grad = calloc((size_t)nt, sizeof *p->needs_grad);
  p->exec = calloc((size_t)nn, sizeof *p->exec);
  p->elided = calloc((size_t)nt, sizeof *p->elided);
  p->ready = calloc((size_t)nt, sizeof *p->ready);
  p->dims = calloc((size_t)nt, sizeof *p->dims);
  p->conv = calloc((size_t)nn, sizeof *p->conv);
  p->bn = calloc((size_t)nn, sizeof *p->bn);
  p->params = calloc((size_t)nt, sizeof *p->params);
  p->range = calloc((size_t)nn, sizeof *p->range);
  if (!p->range || !trainable || !decay || !p->val || !p->grad || !p->needs_grad || !p->dims ||
      !p->conv || !p->bn || !p->params || !p->exec || !p->elided || !p->ready) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  for (int t = 0; t < nt; t++) {
    const hawq_tensor *tt = &g->tensors[t];
    for (int k = 0; k < tt->rank; k++) p->dims[t][k] = tt->dims[k];
    if (tt->batched) p->dims[t][0] = p->batch;
    if (tt->batched && hawq_tensor_numel(tt) > (INT64_MAX / 8) / p->batch) {
      st = hawq_fail(err, HAWQ_ERR_INVALID_ARG, "batch %d is too large for tensor '%s'", p->batch,
                     tt->name);
      goto done;
    }
  }
  if ((st = find_logits(p, err))) goto done;
  for (int k = 0; k < g->n_nodes; k++) mark_trainable(g, &g->nodes[k], trainable, decay);
  /* A tensor needs a gradient when a trainable parameter reaches the loss through it. */
  for (int t = 0; t < nt; t++) p->needs_grad[t] = trainable[t];
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_inputs; i++) {
      if (n->inputs[i] >= 0 && p->needs_grad[n->inputs[i]]) p->needs_grad[n->output] = true;
    }
  }
  if (!p->needs_grad[p->logits]) {
    st = hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                   "%s: no trainable parameter (Conv, Gemm or "
                   "BatchNormalization initializer) reaches the output",
                   g->source);
    goto done;
  }
  plan_fusion(p);
  size_t workspace = 0;
  for (int t = 0; t < nt; t++) {
    const hawq_tensor *tt = &g->tensors[t];
    int64_t n = tensor_numel(p, t);
    if (p->elided[t]) continue;
    if (tt->kind == HAWQ_TENSOR_PARAM) {
      p->val[t] = tt->data;
    } else {
      p->val[t] = alloc_tracked(p, n);
      if (!p->val[t]) goto oom;
      if ((size_t)n > workspace) workspace = (size_t)n;
    }
    if (p->needs_grad[t]) {
      p->grad[t] = alloc_tracked(p, n);
      if (!p->grad[t]) goto oom;
    }
    if (trainable[t]) {
      p->params[p->n_params++] = (hawq_param){t, n, tt->data, p->grad[t], decay[t]};
    }
  }
  p->workspace = alloc_tracked(p, (int64_t)workspace);
  p->probs = alloc_tracked(p, p->batch * p->classes);
  p->labels = calloc((size_t)p->batch, sizeof *p->labels);
  if (!p->workspace || !p->probs || !p->labels) goto oom;
  if ((st = hawq_dnnl_context_create(&p->dnnl, err))) goto done;
#ifdef _OPENMP
  /* oneDNN fixes a primitive's thread count at creation, from this thread's OpenMP count. */
  int callers_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
#endif
  bool out_of_memory = false;
  for (int k = 0; k < g->n_nodes && !st && !out_of_memory; k++) {
    const hawq_node *n = &g->nodes[k];
    if (n->op == HAWQ_OP_CONV) {
      hawq_conv2d_shape s = hawq_conv2d_shape_of(g, n, (const int64_t(*)[HAWQ_MAX_RANK])p->dims);
      st = hawq_conv2d_train_create(&p->dnnl, &s, n->inputs[2] >= 0, &p->conv[k], err);
      if (st) hawq_error_prefix(err, n->name);
    } else if (n->op == HAWQ_OP_BATCHNORM) {
      int64_t c = p->dims[n->inputs[0]][1];
      p->bn[k].mean = alloc_tracked(p, c);
      p->bn[k].rstd = alloc_tracked(p, c);
      out_of_memory = !p->bn[k].mean || !p->bn[k].rstd;
    }
  }
#ifdef _OPENMP
  omp_set_num_threads(callers_threads);
#endif
  if (out_of_memory) goto oom;
  goto done;
oom:
  st = hawq_fail(err, HAWQ_ERR_NO_MEMORY,
                 "out of memory: training at batch %d needs more than %.1f MiB", p->batch,
                 (double)p->bytes / 1048576);
done:
  free(trainable);
  free(decay);
  if (st) {
    hawq_train_plan_destroy(p);
    return st;
  }
  *out = p;
  return HAWQ_OK;
}

static hawq_status forward_node(hawq_train_plan *p, int k, bool training, hawq_error *err) {
  const hawq_graph *g = p->g;
  const hawq_node *n = &g->nodes[k];
  const node_exec *e = &p->exec[k];
  float *y = p->val[e->out];
  const float *x = p->val[n->inputs[0]];
  if (n->op == HAWQ_OP_CONV) {
    const float *b = n->inputs[2] >= 0 ? p->val[n->inputs[2]] : NULL;
    hawq_status st = hawq_conv2d_train_forward(p->conv[k], x, p->val[n->inputs[1]], b, y, err);
    if (st) hawq_error_prefix(err, n->name);
    return st;
  }
  if (n->op == HAWQ_OP_BATCHNORM) {
    int64_t outer, c, inner;
    hawq_channel_view(g->tensors[n->inputs[0]].rank, p->dims[n->inputs[0]], &outer, &c, &inner);
    float eps = n->attr.bn.epsilon;
    bn_cache *bc = &p->bn[k];
    if (training) {
      hawq_batchnorm_train_forward(
          x, y, outer, c, inner, p->val[n->inputs[1]], p->val[n->inputs[2]], eps, p->bn_momentum,
          e->act, p->val[n->inputs[3]], p->val[n->inputs[4]], bc->mean, bc->rstd, p->threads);
    } else {
      const float *mean = p->val[n->inputs[3]], *var = p->val[n->inputs[4]];
      for (int64_t ch = 0; ch < c; ch++) {
        bc->mean[ch] = mean[ch];
        bc->rstd[ch] = 1.0f / sqrtf(var[ch] + eps);
      }
      hawq_batchnorm_forward(x, y, outer, c, inner, p->val[n->inputs[1]], p->val[n->inputs[2]],
                             mean, var, eps, e->act, p->threads);
    }
    return HAWQ_OK;
  }
  if (n->op == HAWQ_OP_FAKEQUANT && !n->attr.fakequant.per_channel &&
      !n->attr.fakequant.given_scales) {
    int64_t xn = tensor_numel(p, n->inputs[0]);
    hawq_min_max(x, xn, &p->range[k][0], &p->range[k][1], p->threads);
  }
  const float *w = NULL, *b = NULL;
  if (n->op == HAWQ_OP_GEMM) {
    w = p->val[n->inputs[1]];
    b = n->inputs[2] >= 0 ? p->val[n->inputs[2]] : NULL;
  }
  hawq_node_forward(g, n, p->val, (const int64_t(*)[HAWQ_MAX_RANK])p->dims, w, b, e->act, y,
                    p->workspace, p->threads);
  return HAWQ_OK;
}

hawq_status hawq_train_plan_forward(hawq_train_plan *p, const float *input, bool training,
                                    hawq_error *err) {
  const hawq_graph *g = p->g;
  int in = g->inputs[0];
  memcpy(p->val[in], input, (size_t)tensor_numel(p, in) * sizeof(float));
#ifdef _OPENMP
  int callers_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
#endif
  hawq_status st = HAWQ_OK;
  for (int k = 0; k < g->n_nodes && !st; k++) {
    const hawq_node *n = &g->nodes[k];
    /* A final Softmax is not needed: the loss takes the logits. */
    if (p->exec[k].skip || (n->op == HAWQ_OP_SOFTMAX && n->inputs[0] == p->logits)) continue;
    double t0 = p->seconds ? hawq_seconds_now() : 0;
    st = forward_node(p, k, training, err);
    if (p->seconds) p->seconds[2 * k] += hawq_seconds_now() - t0;
  }
#ifdef _OPENMP
  omp_set_num_threads(callers_threads);
#endif
  p->last_training = training;
  return st;
}

const float *hawq_train_plan_logits(const hawq_train_plan *p, int64_t *classes) {
  if (classes) *classes = p->classes;
  return p->val[p->logits];
}

double hawq_train_plan_loss(hawq_train_plan *p, const int32_t *labels, float smoothing,
                            int64_t *correct) {
  memcpy(p->labels, labels, (size_t)p->batch * sizeof *labels);
  const float *z = p->val[p->logits];
  double loss =
      hawq_cross_entropy_forward(z, labels, p->batch, p->classes, smoothing, p->probs, p->threads);
  if (correct) {
    int64_t hits = 0;
    for (int64_t i = 0; i < p->batch; i++) {
      const float *row = z + i * p->classes;
      int64_t best = 0;
      for (int64_t c = 1; c < p->classes; c++)
        if (row[c] > row[best]) best = c;
      hits += best == labels[i];
    }
    *correct = hits;
  }
  p->loss_smoothing = smoothing;
  return loss;
}

void hawq_train_plan_zero_grad(hawq_train_plan *p) {
  for (int i = 0; i < p->n_params; i++) {
    memset(p->params[i].grad, 0, (size_t)p->params[i].numel * sizeof(float));
  }
}

/* The gradient buffer of input i of node n, or NULL when the loss does not need it. Unless
 * the caller will write it whole (`overwrite`), a gradient not yet written in this backward is
 * zeroed first so that the op can accumulate into it. */
static float *input_grad(hawq_train_plan *p, const hawq_node *n, int i, bool overwrite) {
  int t = i < n->n_inputs ? n->inputs[i] : -1;
  if (t < 0 || !p->grad[t]) return NULL;
  if (!p->ready[t] && p->g->tensors[t].kind != HAWQ_TENSOR_PARAM) {
    if (!overwrite) memset(p->grad[t], 0, (size_t)tensor_numel(p, t) * sizeof(float));
    p->ready[t] = true;
  }
  return p->grad[t];
}

/* Whether input i's gradient is still unwritten (so the op may overwrite it). */
static bool fresh(const hawq_train_plan *p, const hawq_node *n, int i) {
  int t = n->inputs[i];
  return t >= 0 && p->grad[t] && !p->ready[t] && p->g->tensors[t].kind != HAWQ_TENSOR_PARAM;
}

static hawq_status backward_node(hawq_train_plan *p, int k, hawq_error *err) {
  const hawq_graph *g = p->g;
  const hawq_node *n = &g->nodes[k];
  const node_exec *e = &p->exec[k];
  const int th = p->threads;
  const float *dy = p->grad[e->out];
  const float *x = p->val[n->inputs[0]];
  const int64_t *xd = p->dims[n->inputs[0]];
  const int xr = g->tensors[n->inputs[0]].rank;
  int64_t xn = dims_numel(xr, xd);
  switch (n->op) {
    case HAWQ_OP_CONV: {
      bool over = fresh(p, n, 0);
      float *dx = input_grad(p, n, 0, over);
      hawq_status st =
          hawq_conv2d_train_backward(p->conv[k], x, p->val[n->inputs[1]], dy, dx, over,
                                     input_grad(p, n, 1, false), input_grad(p, n, 2, false), err);
      if (st) hawq_error_prefix(err, n->name);
      return st;
    }
    case HAWQ_OP_BATCHNORM: {
      int64_t outer, c, inner;
      hawq_channel_view(xr, xd, &outer, &c, &inner);
      bool over = fresh(p, n, 0);
      float *dx = input_grad(p, n, 0, over);
      hawq_batchnorm_backward(x, dy, p->val[e->out], e->act, outer, c, inner, p->val[n->inputs[1]],
                              p->bn[k].mean, p->bn[k].rstd, p->last_training, dx, over,
                              input_grad(p, n, 1, false), input_grad(p, n, 2, false), th);
      break;
    }
    case HAWQ_OP_ADD:
      if (e->act.on) { /* same shapes, by construction of the fusion */
        bool same = n->inputs[0] == n->inputs[1];
        bool over_a = fresh(p, n, 0), over_b = !same && fresh(p, n, 1);
        float *da = input_grad(p, n, 0, over_a), *db = input_grad(p, n, 1, over_b);
        hawq_add_act_backward(p->val[e->out], dy, e->act, xn, da, over_a, db, over_b, th);
        break;
      }
      /* fall through */
    case HAWQ_OP_SUB:
    case HAWQ_OP_MUL:
    case HAWQ_OP_DIV: {
      int r = g->tensors[n->output].rank;
      int64_t od[HAWQ_MAX_RANK], ad[HAWQ_MAX_RANK], bd[HAWQ_MAX_RANK];
      hawq_physical_dims(r, p->dims[n->output], od);
      hawq_physical_dims(r, xd, ad);
      hawq_physical_dims(r, p->dims[n->inputs[1]], bd);
      float *da = input_grad(p, n, 0, false), *db = input_grad(p, n, 1, false);
      hawq_binary_backward(n->op, r, od, x, ad, p->val[n->inputs[1]], bd, dy, da, db, th);
      break;
    }
    case HAWQ_OP_GEMM: {
      int64_t kdim = xd[xr - 1], rows = xn / kdim;
      int64_t nout = g->tensors[n->inputs[1]].dims[0];
      hawq_gemm_backward(x, p->val[n->inputs[1]], dy, input_grad(p, n, 0, false),
                         input_grad(p, n, 1, false), input_grad(p, n, 2, false), rows, nout, kdim,
                         th);
      break;
    }
    case HAWQ_OP_CONCAT: {
      float *dins[HAWQ_MAX_CONCAT_INPUTS];
      int64_t in_dims[HAWQ_MAX_CONCAT_INPUTS][HAWQ_MAX_RANK];
      for (int i = 0; i < n->n_inputs; i++) {
        dins[i] = input_grad(p, n, i, false);
        memcpy(in_dims[i], p->dims[n->inputs[i]], sizeof in_dims[i]);
      }
      hawq_concat_backward(n->n_inputs, dins, (const int64_t(*)[HAWQ_MAX_RANK])in_dims, xr,
                           n->attr.concat.axis, dy);
      break;
    }
    default: {
      /* Single-input ops: nothing to do when the input needs no gradient. */
      float *dx = input_grad(p, n, 0, false);
      if (!dx) break;
      switch (n->op) {
        case HAWQ_OP_RELU:
          hawq_relu_backward(x, dy, dx, xn, th);
          break;
        case HAWQ_OP_CLIP:
          hawq_clip_backward(x, dy, dx, xn, n->attr.clip.min, n->attr.clip.max, th);
          break;
        case HAWQ_OP_LEAKY_RELU:
          hawq_leaky_relu_backward(x, dy, dx, xn, n->attr.leaky.alpha, th);
          break;
        case HAWQ_OP_MAXPOOL:
        case HAWQ_OP_AVGPOOL: {
          hawq_pool_shape s = hawq_pool_shape_of(n, xd, p->dims[n->output]);
          if (n->op == HAWQ_OP_MAXPOOL)
            hawq_maxpool_backward(&s, x, dy, dx, th);
          else
            hawq_avgpool_backward(&s, dy, dx, th);
          break;
        }
        case HAWQ_OP_GLOBAL_AVGPOOL:
          hawq_global_avgpool_backward(dy, dx, xd[0], xd[2] * xd[3], xd[1], th);
          break;
        case HAWQ_OP_GLOBAL_MAXPOOL:
          hawq_global_maxpool_backward(x, dy, dx, xd[0], xd[2] * xd[3], xd[1], th);
          break;
        case HAWQ_OP_RESHAPE:
          hawq_reshape_backward(dy, g->tensors[n->output].rank, p->dims[n->output], dx, xr, xd,
                                p->workspace);
          break;
        case HAWQ_OP_TRANSPOSE:
          hawq_transpose_backward(dy, xr, xd, n->attr.transpose.perm, dx);
          break;
        case HAWQ_OP_FAKEQUANT: {
          const hawq_fakequant_attr *a = &n->attr.fakequant;
          if (a->per_channel || a->given_scales) {
            for (int64_t i = 0; i < xn; i++) dx[i] += dy[i];
          } else {
            hawq_fakequant_backward(x, dy, dx, xn, a->scale, a->lo, a->hi, th);
          }
          break;
        }
        case HAWQ_OP_PAD:
          hawq_pad_backward(dy, xr, xd, n->attr.pad.pads, dx, th);
          break;
        case HAWQ_OP_SOFTMAX: {
          int64_t outer, len, inner;
          hawq_softmax_view(n, xr, xd, &outer, &len, &inner);
          hawq_softmax_backward(p->val[n->output], dy, dx, outer, len, inner, th);
          break;
        }
        default:
          break;
      }
      break;
    }
  }
  return HAWQ_OK;
}

hawq_status hawq_train_plan_backward(hawq_train_plan *p, hawq_error *err) {
  return hawq_train_plan_backward_ex(p, 1.0f, NULL, err);
}

hawq_status hawq_train_plan_backward_ex(hawq_train_plan *p, float ce_weight,
                                        const float *extra_grad, hawq_error *err) {
  const hawq_graph *g = p->g;
  /* Activation gradients are written fresh by every backward: each is zeroed or overwritten by
   * the first node that writes it; parameter gradients accumulate until zero_grad. */
  memset(p->ready, 0, (size_t)g->n_tensors * sizeof *p->ready);
#ifdef _OPENMP
  int callers_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
#endif
  memset(p->grad[p->logits], 0, (size_t)tensor_numel(p, p->logits) * sizeof(float));
  p->ready[p->logits] = true;
  float *dz = p->grad[p->logits];
  if (ce_weight != 0.0f) {
    hawq_cross_entropy_backward(p->probs, p->labels, p->batch, p->classes, p->loss_smoothing,
                                ce_weight, dz, p->threads);
  }
  if (extra_grad) {
    for (int64_t i = 0; i < p->batch * p->classes; i++) dz[i] += extra_grad[i];
  }
  hawq_status st = HAWQ_OK;
  for (int k = g->n_nodes - 1; k >= 0 && !st; k--) {
    const hawq_node *n = &g->nodes[k];
    const node_exec *e = &p->exec[k];
    if (e->skip || !p->needs_grad[n->output]) continue;
    if (n->op == HAWQ_OP_SOFTMAX && n->inputs[0] == p->logits) continue;
    if (!p->ready[e->out]) { /* no path from the loss: its gradient is zero */
      memset(p->grad[e->out], 0, (size_t)tensor_numel(p, e->out) * sizeof(float));
      p->ready[e->out] = true;
    }
    double t0 = p->seconds ? hawq_seconds_now() : 0;
    st = backward_node(p, k, err);
    if (p->seconds) p->seconds[2 * k + 1] += hawq_seconds_now() - t0;
  }
#ifdef _OPENMP
  omp_set_num_threads(callers_threads);
#endif
  return st;
}

const float *hawq_train_plan_value(const hawq_train_plan *p, int t) {
  return t >= 0 && t < p->g->n_tensors ? p->val[t] : NULL;
}

int hawq_train_plan_num_params(const hawq_train_plan *p) {
  return p->n_params;
}

hawq_param *hawq_train_plan_param(hawq_train_plan *p, int i) {
  return &p->params[i];
}

void hawq_train_plan_node_seconds(const hawq_train_plan *p, int node, double *forward,
                                  double *backward) {
  bool ok = p->seconds && node >= 0 && node < p->g->n_nodes;
  *forward = ok ? p->seconds[2 * node] : 0;
  *backward = ok ? p->seconds[2 * node + 1] : 0;
}

size_t hawq_train_plan_bytes(const hawq_train_plan *p) {
  return p->bytes;
}

bool hawq_train_plan_batch_range(const hawq_train_plan *p, int node, float *min, float *max) {
  const hawq_graph *g = p->g;
  if (node < 0 || node >= g->n_nodes || g->nodes[node].op != HAWQ_OP_FAKEQUANT ||
      g->nodes[node].attr.fakequant.per_channel || g->nodes[node].attr.fakequant.given_scales) {
    return false;
  }
  *min = p->range[node][0];
  *max = p->range[node][1];
  return true;
}

hawq_status hawq_graph_untie_params(hawq_graph *g, hawq_error *err) {
  return untie_params(g, err);
}
