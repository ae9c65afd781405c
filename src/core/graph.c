/* The float graph IR: construction, lookup, layout helpers and per-node statistics. */
#include "core/graph.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

float *hawq_alloc_floats(size_t n) {
  size_t bytes = (n ? n : 1) * sizeof(float);
  bytes = (bytes + 63) & ~(size_t)63;
  float *p = aligned_alloc(64, bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

void hawq_free(void *p) {
  free(p);
}

hawq_graph *hawq_graph_new(const char *source) {
  hawq_graph *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->source = dup_string(source ? source : "<buffer>");
  if (!g->source) {
    free(g);
    return NULL;
  }
  return g;
}

void hawq_graph_destroy(hawq_graph *g) {
  if (!g) return;
  for (int i = 0; i < g->n_tensors; i++) {
    free(g->tensors[i].name);
    hawq_free(g->tensors[i].data);
  }
  for (int i = 0; i < g->n_nodes; i++) {
    free(g->nodes[i].name);
    free(g->nodes[i].op_type);
    free(g->nodes[i].inputs);
  }
  for (int i = 0; i < g->n_meta; i++) {
    free(g->meta_key[i]);
    free(g->meta_value[i]);
  }
  free(g->tensors);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g->producer_name);
  free(g->source);
  free(g);
}

int hawq_graph_add_tensor(hawq_graph *g, const char *name, hawq_tensor_kind kind, int rank,
                          const int64_t *dims, bool batched) {
  if (g->n_tensors == g->cap_tensors) {
    int cap = g->cap_tensors ? 2 * g->cap_tensors : 64;
    hawq_tensor *t = realloc(g->tensors, (size_t)cap * sizeof *t);
    if (!t) return -1;
    g->tensors = t;
    g->cap_tensors = cap;
  }
  hawq_tensor *t = &g->tensors[g->n_tensors];
  memset(t, 0, sizeof *t);
  t->name = dup_string(name);
  if (!t->name) return -1;
  t->kind = kind;
  t->rank = rank;
  for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
  t->batched = batched;
  if (batched) t->dims[0] = 1;
  t->producer = -1;
  return g->n_tensors++;
}

int hawq_graph_add_node(hawq_graph *g, hawq_op op, const char *name, const char *op_type,
                        int n_inputs, const int *inputs, int output) {
  if (g->n_nodes == g->cap_nodes) {
    int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
    hawq_node *n = realloc(g->nodes, (size_t)cap * sizeof *n);
    if (!n) return -1;
    g->nodes = n;
    g->cap_nodes = cap;
  }
  hawq_node *n = &g->nodes[g->n_nodes];
  memset(n, 0, sizeof *n);
  n->op = op;
  n->name = dup_string(name);
  n->op_type = dup_string(op_type);
  n->inputs = malloc((size_t)(n_inputs ? n_inputs : 1) * sizeof(int));
  if (!n->name || !n->op_type || !n->inputs) {
    free(n->name);
    free(n->op_type);
    free(n->inputs);
    return -1;
  }
  n->n_inputs = n_inputs;
  for (int i = 0; i < n_inputs; i++) n->inputs[i] = inputs[i];
  n->output = output;
  g->tensors[output].producer = g->n_nodes;
  return g->n_nodes++;
}

int64_t hawq_tensor_numel(const hawq_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i];
  return n;
}

void hawq_physical_dims(int rank, const int64_t *logical, int64_t *physical) {
  if (rank == 4) {
    int64_t n = logical[0], c = logical[1], h = logical[2], w = logical[3];
    physical[0] = n;
    physical[1] = h;
    physical[2] = w;
    physical[3] = c;
    return;
  }
  for (int i = 0; i < rank; i++) physical[i] = logical[i];
}

int hawq_physical_axis(int rank, int axis) {
  if (rank != 4) return axis;
  static const int to_nhwc[4] = {0, 3, 1, 2};
  return to_nhwc[axis];
}

/* Copies a rank-4 tensor between NCHW and NHWC. dims are the logical (N,C,H,W) sizes. */
static void nchw_to_nhwc(const float *src, float *dst, const int64_t *d) {
  int64_t n = d[0], c = d[1], hw = d[2] * d[3];
  for (int64_t b = 0; b < n; b++) {
    const float *s = src + b * c * hw;
    float *o = dst + b * c * hw;
    for (int64_t ch = 0; ch < c; ch++) {
      for (int64_t p = 0; p < hw; p++) o[p * c + ch] = s[ch * hw + p];
    }
  }
}

static void nhwc_to_nchw(const float *src, float *dst, const int64_t *d) {
  int64_t n = d[0], c = d[1], hw = d[2] * d[3];
  for (int64_t b = 0; b < n; b++) {
    const float *s = src + b * c * hw;
    float *o = dst + b * c * hw;
    for (int64_t p = 0; p < hw; p++) {
      for (int64_t ch = 0; ch < c; ch++) o[ch * hw + p] = s[p * c + ch];
    }
  }
}

static int64_t numel_of(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return n;
}

void hawq_tensor_to_physical(const float *logical, float *physical, int rank, const int64_t *dims) {
  if (rank == 4) {
    nchw_to_nhwc(logical, physical, dims);
  } else {
    memcpy(physical, logical, (size_t)numel_of(rank, dims) * sizeof(float));
  }
}

void hawq_tensor_to_logical(const float *physical, float *logical, int rank, const int64_t *dims) {
  if (rank == 4) {
    nhwc_to_nchw(physical, logical, dims);
  } else {
    memcpy(logical, physical, (size_t)numel_of(rank, dims) * sizeof(float));
  }
}

const char *hawq_op_name(hawq_op op) {
  static const char *names[HAWQ_OP_COUNT] = {
      [HAWQ_OP_CONV] = "conv",
      [HAWQ_OP_BATCHNORM] = "batchnorm",
      [HAWQ_OP_RELU] = "relu",
      [HAWQ_OP_CLIP] = "clip",
      [HAWQ_OP_LEAKY_RELU] = "leaky_relu",
      [HAWQ_OP_ADD] = "add",
      [HAWQ_OP_SUB] = "sub",
      [HAWQ_OP_MUL] = "mul",
      [HAWQ_OP_DIV] = "div",
      [HAWQ_OP_MAXPOOL] = "maxpool",
      [HAWQ_OP_AVGPOOL] = "avgpool",
      [HAWQ_OP_GLOBAL_AVGPOOL] = "global_avgpool",
      [HAWQ_OP_GLOBAL_MAXPOOL] = "global_maxpool",
      [HAWQ_OP_GEMM] = "gemm",
      [HAWQ_OP_RESHAPE] = "reshape",
      [HAWQ_OP_TRANSPOSE] = "transpose",
      [HAWQ_OP_CONCAT] = "concat",
      [HAWQ_OP_PAD] = "pad",
      [HAWQ_OP_SOFTMAX] = "softmax",
      [HAWQ_OP_FAKEQUANT] = "fakequant",
  };
  return (op >= 0 && op < HAWQ_OP_COUNT && names[op]) ? names[op] : "?";
}

int64_t hawq_node_params(const hawq_graph *g, int node) {
  const hawq_node *n = &g->nodes[node];
  int64_t total = 0;
  /* BatchNorm's running mean and variance are statistics, not parameters (as PyTorch counts). */
  int n_inputs = n->op == HAWQ_OP_BATCHNORM ? 3 : n->n_inputs;
  for (int i = 0; i < n_inputs; i++) {
    int t = n->inputs[i];
    if (t >= 0 && g->tensors[t].kind == HAWQ_TENSOR_PARAM)
      total += hawq_tensor_numel(&g->tensors[t]);
  }
  return total;
}

int64_t hawq_node_macs(const hawq_graph *g, int node) {
  const hawq_node *n = &g->nodes[node];
  const hawq_tensor *out = &g->tensors[n->output];
  switch (n->op) {
    case HAWQ_OP_CONV: {
      const hawq_tensor *w = &g->tensors[n->inputs[1]];
      /* per output element: R*S*C/g taps (logical W dims are K, C/g, R, S) */
      return hawq_tensor_numel(out) * w->dims[1] * w->dims[2] * w->dims[3];
    }
    case HAWQ_OP_GEMM: {
      const hawq_tensor *w = &g->tensors[n->inputs[1]];
      return hawq_tensor_numel(out) * w->dims[1];
    }
    default:
      return 0;
  }
}

hawq_preprocess hawq_graph_preprocess(const hawq_graph *g) {
  return g->preprocess;
}
