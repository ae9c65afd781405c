/* The float engine: runs a graph for a fixed batch size.
 *
 * A plan resolves every tensor's shape for its batch, prepares what each node needs (folded
 * BatchNorm, fused activations, oneDNN convolution primitives), and places all activations in one
 * arena: each tensor lives from its producer to its last consumer, and tensors whose lifetimes
 * do not overlap share memory (greedy, largest first). keep_all gives every tensor its own
 * memory and turns off fusion, so each intermediate can be read after a run.
 *
 * Inference fusions (off with keep_all):
 *   Conv -> BatchNormalization    BN folded into a per-plan copy of the conv's weights and bias
 *   Conv/Gemm/BN/Add -> Relu|Clip the activation applied in the producer's epilogue
 * A fusion only happens when the intermediate tensor has no other consumer and is not a graph
 * output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/graph.h"
#include "core/status.h"
#include "float/ops.h"

typedef struct node_exec {
  bool skip;      /* fused into an earlier node */
  int out;        /* tensor this node writes (a later node's output when fused) */
  hawq_act act;   /* activation fused into the epilogue */
  const float *w; /* conv/gemm weights in use (the graph's, or BN-folded) */
  const float *b; /* bias in use, or NULL */
  float *owned_w; /* per-plan weight copy (BN folding), freed with plan */
  float *owned_b;
  hawq_conv2d *conv; /* the prepared convolution */
} node_exec;

struct hawq_float_plan {
  const hawq_graph *g;
  int batch, threads;
  bool keep_all;
  hawq_dnnl_context dnnl;
  float *arena;
  size_t arena_floats;
  float *workspace;
  size_t workspace_floats;
  float **buf;                    /* per tensor */
  int64_t (*dims)[HAWQ_MAX_RANK]; /* per tensor: logical dims with the batch */
  node_exec *exec;
  double *node_seconds; /* per node, when profiling */
};

static void batch_dims(const hawq_float_plan *p, const hawq_tensor *t, int64_t *dims) {
  for (int k = 0; k < t->rank; k++) dims[k] = t->dims[k];
  if (t->batched) dims[0] = p->batch;
}

static int64_t dims_numel(int rank, const int64_t *d) {
  int64_t n = 1;
  for (int k = 0; k < rank; k++) n *= d[k];
  return n;
}

/* Consumers of each tensor (count) and the last node using it. */
static void usage(const hawq_graph *g, int *uses, int *last) {
  for (int t = 0; t < g->n_tensors; t++) {
    uses[t] = 0;
    last[t] = -1;
  }
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_inputs; i++) {
      if (n->inputs[i] < 0) continue;
      uses[n->inputs[i]]++;
      last[n->inputs[i]] = k;
    }
  }
  for (int i = 0; i < g->n_outputs; i++) {
    uses[g->outputs[i]]++;
    last[g->outputs[i]] = g->n_nodes;
  }
}

static bool is_output(const hawq_graph *g, int t) {
  for (int i = 0; i < g->n_outputs; i++) {
    if (g->outputs[i] == t) return true;
  }
  return false;
}

/* The single consumer of tensor t if there is exactly one and t is not an output, else -1. */
static int sole_consumer(const hawq_graph *g, const int *uses, int t) {
  if (uses[t] != 1 || is_output(g, t)) return -1;
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_inputs; i++) {
      if (n->inputs[i] == t) return k;
    }
  }
  return -1;
}

static hawq_act act_of(const hawq_node *n) {
  if (n->op == HAWQ_OP_RELU) return (hawq_act){true, 0.0f, INFINITY};
  if (n->op == HAWQ_OP_CLIP) return (hawq_act){true, n->attr.clip.min, n->attr.clip.max};
  return (hawq_act){false, 0, 0};
}

hawq_conv2d_shape hawq_conv2d_shape_of(const hawq_graph *g, const hawq_node *n,
                                       const int64_t (*dims)[HAWQ_MAX_RANK]) {
  const int64_t *x = dims[n->inputs[0]], *y = dims[n->output];
  const hawq_tensor *w = &g->tensors[n->inputs[1]];
  hawq_conv2d_shape s = {.n = x[0],
                         .h = x[2],
                         .w = x[3],
                         .c = x[1],
                         .p = y[2],
                         .q = y[3],
                         .k = y[1],
                         .r = (int)w->dims[2],
                         .s = (int)w->dims[3],
                         .attr = n->attr.conv};
  return s;
}

/* Folds BN node `bn` into conv node `conv`'s weights (per-plan copy). */
static bool fold_bn_into_conv(hawq_float_plan *p, int conv, int bn) {
  const hawq_graph *g = p->g;
  const hawq_node *c = &g->nodes[conv], *b = &g->nodes[bn];
  const hawq_tensor *w = &g->tensors[c->inputs[1]];
  int64_t K = w->dims[0], per = hawq_tensor_numel(w) / K;
  const float *scale = g->tensors[b->inputs[1]].data, *beta = g->tensors[b->inputs[2]].data;
  const float *mean = g->tensors[b->inputs[3]].data, *var = g->tensors[b->inputs[4]].data;
  const float *bias = c->inputs[2] >= 0 ? g->tensors[c->inputs[2]].data : NULL;
  node_exec *e = &p->exec[conv];
  e->owned_w = hawq_alloc_floats((size_t)(K * per));
  e->owned_b = hawq_alloc_floats((size_t)K);
  if (!e->owned_w || !e->owned_b) return false;
  for (int64_t k = 0; k < K; k++) {
    float a = scale[k] / sqrtf(var[k] + b->attr.bn.epsilon);
    for (int64_t j = 0; j < per; j++) e->owned_w[k * per + j] = w->data[k * per + j] * a;
    e->owned_b[k] = ((bias ? bias[k] : 0.0f) - mean[k]) * a + beta[k];
  }
  e->w = e->owned_w;
  e->b = e->owned_b;
  return true;
}

static hawq_status prepare_nodes(hawq_float_plan *p, const int *uses, hawq_error *err) {
  const hawq_graph *g = p->g;
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    node_exec *e = &p->exec[k];
    if (e->skip) continue;
    e->out = n->output;
    if (n->op == HAWQ_OP_CONV || n->op == HAWQ_OP_GEMM) {
      e->w = g->tensors[n->inputs[1]].data;
      e->b = n->inputs[2] >= 0 ? g->tensors[n->inputs[2]].data : NULL;
    }
    if (p->keep_all) continue;
    /* Conv -> BN */
    if (n->op == HAWQ_OP_CONV) {
      int next = sole_consumer(g, uses, e->out);
      if (next >= 0 && g->nodes[next].op == HAWQ_OP_BATCHNORM) {
        if (!fold_bn_into_conv(p, k, next)) {
          return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory folding batch norm");
        }
        p->exec[next].skip = true;
        e->out = g->nodes[next].output;
      }
    }
    /* ... -> Relu/Clip */
    if (n->op == HAWQ_OP_CONV || n->op == HAWQ_OP_GEMM || n->op == HAWQ_OP_BATCHNORM ||
        n->op == HAWQ_OP_ADD) {
      int next = sole_consumer(g, uses, e->out);
      if (next >= 0 && (g->nodes[next].op == HAWQ_OP_RELU || g->nodes[next].op == HAWQ_OP_CLIP)) {
        e->act = act_of(&g->nodes[next]);
        p->exec[next].skip = true;
        e->out = g->nodes[next].output;
      }
    }
  }
  /* Convolutions become oneDNN primitives, after any BN folding and activation fusion. */
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    node_exec *e = &p->exec[k];
    if (e->skip || n->op != HAWQ_OP_CONV) continue;
    hawq_conv2d_shape s = hawq_conv2d_shape_of(p->g, n, (const int64_t(*)[HAWQ_MAX_RANK])p->dims);
    hawq_status st = hawq_conv2d_create(&p->dnnl, &s, e->w, e->b, e->act, &e->conv, err);
    if (st) {
      hawq_error_prefix(err, n->name);
      return st;
    }
  }
  return HAWQ_OK;
}

/* Workspace floats a node needs. */
static size_t node_workspace(const hawq_float_plan *p, int k) {
  const hawq_node *n = &p->g->nodes[k];
  if (n->op == HAWQ_OP_RESHAPE) {
    const hawq_tensor *t = &p->g->tensors[n->output];
    return t->rank == 4 && p->g->tensors[n->inputs[0]].rank == 4
               ? (size_t)dims_numel(t->rank, p->dims[n->output])
               : 0;
  }
  return 0;
}

typedef struct placed {
  int tensor;
  size_t size, offset;
  int first, last;
} placed;

static int by_size_desc(const void *a, const void *b) {
  const placed *x = a, *y = b;
  if (x->size != y->size) return x->size < y->size ? 1 : -1;
  return x->tensor - y->tensor;
}

/* Places every activation in the arena; returns the arena size in floats. */
static size_t plan_memory(hawq_float_plan *p, const int *last, placed *items, int *n_items) {
  const hawq_graph *g = p->g;
  int m = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    if (p->exec[k].skip) continue;
    int t = p->exec[k].out;
    /* 16-float alignment (64 bytes) for every tensor. */
    size_t size = ((size_t)dims_numel(g->tensors[t].rank, p->dims[t]) + 15) & ~(size_t)15;
    items[m++] = (placed){t, size, 0, k, p->keep_all ? g->n_nodes : last[t]};
  }
  qsort(items, (size_t)m, sizeof *items, by_size_desc);
  size_t total = 0;
  for (int i = 0; i < m; i++) {
    size_t offset = 0;
    bool moved = true;
    /* Lowest offset not overlapping any placed tensor alive at the same time. */
    while (moved) {
      moved = false;
      for (int j = 0; j < i; j++) {
        bool live = items[j].first <= items[i].last && items[i].first <= items[j].last;
        bool overlap =
            offset < items[j].offset + items[j].size && items[j].offset < offset + items[i].size;
        if (live && overlap) {
          offset = items[j].offset + items[j].size;
          moved = true;
        }
      }
    }
    items[i].offset = offset;
    if (offset + items[i].size > total) total = offset + items[i].size;
  }
  *n_items = m;
  return total;
}

hawq_status hawq_float_plan_create(const hawq_graph *g, const hawq_float_plan_options *opt,
                                   hawq_float_plan **out, hawq_error *err) {
  *out = NULL;
  if (!opt || opt->batch < 1) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "batch size must be >= 1");
  }
  if (opt->threads < 0 || opt->threads > 1024) {
    return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "threads must be between 1 and 1024");
  }
  hawq_float_plan *p = calloc(1, sizeof *p);
  if (!p) return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  p->g = g;
  p->batch = opt->batch;
  p->threads = opt->threads ? opt->threads : 1;
  p->keep_all = opt->keep_all;
  hawq_status st = HAWQ_OK;
  if (opt->profile) p->node_seconds = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof(double));
  int *uses = malloc((size_t)g->n_tensors * sizeof *uses);
  int *last = malloc((size_t)g->n_tensors * sizeof *last);
  placed *items = malloc((size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof *items);
  p->buf = calloc((size_t)g->n_tensors, sizeof *p->buf);
  p->dims = calloc((size_t)g->n_tensors, sizeof *p->dims);
  p->exec = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *p->exec);
  if (!uses || !last || !items || !p->buf || !p->dims || !p->exec) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  /* Sizes with the batch; refuse what cannot be addressed. */
  for (int t = 0; t < g->n_tensors; t++) {
    const hawq_tensor *tt = &g->tensors[t];
    batch_dims(p, tt, p->dims[t]);
    if (tt->batched && hawq_tensor_numel(tt) > (INT64_MAX / 8) / opt->batch) {
      st = hawq_fail(err, HAWQ_ERR_INVALID_ARG, "batch %d is too large for tensor '%s'", opt->batch,
                     tt->name);
      goto done;
    }
    if (tt->kind == HAWQ_TENSOR_PARAM) p->buf[t] = tt->data;
  }
  /* The inference plan packs Conv and Gemm weights once: they must be constants (a training
   * graph's fake-quantized weights are computed, and run in a train plan). */
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    if ((n->op == HAWQ_OP_CONV || n->op == HAWQ_OP_GEMM) &&
        g->tensors[n->inputs[1]].kind != HAWQ_TENSOR_PARAM) {
      st = hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: node '%s' (%s): weights computed by a node are not supported here",
                     g->source, n->name, n->op_type);
      goto done;
    }
  }
  usage(g, uses, last);
  if ((st = hawq_dnnl_context_create(&p->dnnl, err))) goto done;
#ifdef _OPENMP
  /* oneDNN fixes a primitive's thread count when it is created, from this thread's OpenMP
   * count: the plan's, or a 1-thread plan would run 2-thread kernels (and wait at their
   * barriers for a second thread that a busy machine deschedules). */
  int callers_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
#endif
  st = prepare_nodes(p, uses, err);
#ifdef _OPENMP
  omp_set_num_threads(callers_threads);
#endif
  if (st) goto done;
  int n_items = 0;
  p->arena_floats = plan_memory(p, last, items, &n_items);
  for (int k = 0; k < g->n_nodes; k++) {
    size_t ws = node_workspace(p, k);
    if (ws > p->workspace_floats) p->workspace_floats = ws;
  }
  if (p->arena_floats > (SIZE_MAX / 8) || p->workspace_floats > (SIZE_MAX / 8)) {
    st = hawq_fail(err, HAWQ_ERR_INVALID_ARG, "batch %d needs more memory than can be addressed",
                   opt->batch);
    goto done;
  }
  p->arena = hawq_alloc_floats(p->arena_floats);
  p->workspace = hawq_alloc_floats(p->workspace_floats);
  if (!p->arena || !p->workspace) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY,
                   "out of memory: batch %d needs %.1f MiB of activations and workspace",
                   opt->batch, (double)(p->arena_floats + p->workspace_floats) * 4 / 1048576);
    goto done;
  }
  for (int i = 0; i < n_items; i++) p->buf[items[i].tensor] = p->arena + items[i].offset;
done:
  free(uses);
  free(last);
  free(items);
  if (st) {
    hawq_float_plan_destroy(p);
    return st;
  }
  *out = p;
  return HAWQ_OK;
}

void hawq_float_plan_destroy(hawq_float_plan *p) {
  if (!p) return;
  if (p->exec) {
    for (int k = 0; k < p->g->n_nodes; k++) {
      hawq_conv2d_destroy(p->exec[k].conv);
      hawq_free(p->exec[k].owned_w);
      hawq_free(p->exec[k].owned_b);
    }
  }
  hawq_dnnl_context_destroy(&p->dnnl);
  hawq_free(p->arena);
  hawq_free(p->workspace);
  free(p->buf);
  free(p->dims);
  free(p->exec);
  free(p->node_seconds);
  free(p);
}

double hawq_float_plan_node_seconds(const hawq_float_plan *p, size_t node) {
  return p->node_seconds && node < (size_t)p->g->n_nodes ? p->node_seconds[node] : 0.0;
}

double hawq_seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* (outer, c, inner) view of a tensor around logical axis 1, in physical layout. */
void hawq_channel_view(int rank, const int64_t *d, int64_t *outer, int64_t *c, int64_t *inner) {
  if (rank == 4) {
    *outer = d[0] * d[2] * d[3];
    *c = d[1];
    *inner = 1;
    return;
  }
  *outer = d[0];
  *c = d[1];
  *inner = 1;
  for (int k = 2; k < rank; k++) *inner *= d[k];
}

void hawq_node_forward(const hawq_graph *g, const hawq_node *n, float *const *buf,
                       const int64_t (*dims)[HAWQ_MAX_RANK], const float *w, const float *b,
                       hawq_act act, float *y, float *workspace, int threads) {
  const int th = threads;
  const float *x = buf[n->inputs[0]];
  const int64_t *xd = dims[n->inputs[0]];
  const int xr = g->tensors[n->inputs[0]].rank;
  int64_t xn = dims_numel(xr, xd);
  switch (n->op) {
    case HAWQ_OP_BATCHNORM: {
      int64_t outer, c, inner;
      hawq_channel_view(xr, xd, &outer, &c, &inner);
      hawq_batchnorm_forward(x, y, outer, c, inner, buf[n->inputs[1]], buf[n->inputs[2]],
                             buf[n->inputs[3]], buf[n->inputs[4]], n->attr.bn.epsilon, act, th);
      break;
    }
    case HAWQ_OP_RELU:
      hawq_relu_forward(x, y, xn, th);
      break;
    case HAWQ_OP_CLIP:
      hawq_clip_forward(x, y, xn, n->attr.clip.min, n->attr.clip.max, th);
      break;
    case HAWQ_OP_LEAKY_RELU:
      hawq_leaky_relu_forward(x, y, xn, n->attr.leaky.alpha, th);
      break;
    case HAWQ_OP_ADD:
    case HAWQ_OP_SUB:
    case HAWQ_OP_MUL:
    case HAWQ_OP_DIV: {
      int r = g->tensors[n->output].rank;
      int64_t od[HAWQ_MAX_RANK], ad[HAWQ_MAX_RANK], bd[HAWQ_MAX_RANK];
      hawq_physical_dims(r, dims[n->output], od);
      hawq_physical_dims(r, dims[n->inputs[0]], ad);
      hawq_physical_dims(r, dims[n->inputs[1]], bd);
      hawq_binary_forward(n->op, r, od, x, ad, buf[n->inputs[1]], bd, act, y, th);
      break;
    }
    case HAWQ_OP_MAXPOOL:
    case HAWQ_OP_AVGPOOL: {
      hawq_pool_shape s = hawq_pool_shape_of(n, xd, dims[n->output]);
      if (n->op == HAWQ_OP_MAXPOOL)
        hawq_maxpool_forward(&s, x, y, th);
      else
        hawq_avgpool_forward(&s, x, y, th);
      break;
    }
    case HAWQ_OP_GLOBAL_AVGPOOL:
      hawq_global_avgpool_forward(x, y, xd[0], xd[2] * xd[3], xd[1], th);
      break;
    case HAWQ_OP_GLOBAL_MAXPOOL:
      hawq_global_maxpool_forward(x, y, xd[0], xd[2] * xd[3], xd[1], th);
      break;
    case HAWQ_OP_GEMM: {
      int64_t kdim = xd[xr - 1], rows = xn / kdim;
      int64_t nout = g->tensors[n->inputs[1]].dims[0];
      hawq_gemm_forward(x, w, b, y, rows, nout, kdim, act, th);
      break;
    }
    case HAWQ_OP_RESHAPE:
      hawq_reshape_forward(x, xr, xd, y, g->tensors[n->output].rank, dims[n->output], workspace);
      break;
    case HAWQ_OP_TRANSPOSE:
      hawq_transpose_forward(x, xr, xd, n->attr.transpose.perm, y);
      break;
    case HAWQ_OP_CONCAT: {
      const float *ins[HAWQ_MAX_CONCAT_INPUTS];
      int64_t in_dims[HAWQ_MAX_CONCAT_INPUTS][HAWQ_MAX_RANK];
      for (int i = 0; i < n->n_inputs; i++) {
        ins[i] = buf[n->inputs[i]];
        memcpy(in_dims[i], dims[n->inputs[i]], sizeof in_dims[i]);
      }
      hawq_concat_forward(n->n_inputs, ins, (const int64_t(*)[HAWQ_MAX_RANK])in_dims, xr,
                          n->attr.concat.axis, y);
      break;
    }
    case HAWQ_OP_PAD:
      hawq_pad_forward(x, xr, xd, n->attr.pad.pads, n->attr.pad.value, y, th);
      break;
    case HAWQ_OP_SOFTMAX: {
      int64_t outer, len, inner;
      hawq_softmax_view(n, xr, xd, &outer, &len, &inner);
      hawq_softmax_forward(x, y, outer, len, inner, th);
      break;
    }
    case HAWQ_OP_FAKEQUANT: {
      const hawq_fakequant_attr *a = &n->attr.fakequant;
      if (a->given_scales) {
        hawq_fakequant_given_forward(x, buf[n->inputs[1]], y, xd[0], xn / xd[0]);
      } else if (a->per_channel) {
        hawq_fakequant_rows_forward(x, y, xd[0], xn / xd[0], a->bits, th);
      } else {
        hawq_fakequant_forward(x, y, xn, a->scale, a->lo, a->hi, th);
      }
      break;
    }
    case HAWQ_OP_CONV: /* needs a prepared convolution: the caller runs it */
    case HAWQ_OP_COUNT:
      break;
  }
}

hawq_pool_shape hawq_pool_shape_of(const hawq_node *n, const int64_t *xd, const int64_t *yd) {
  hawq_pool_shape s = {xd[0], xd[2], xd[3], xd[1], yd[2], yd[3], n->attr.pool};
  return s;
}

void hawq_softmax_view(const hawq_node *n, int rank, const int64_t *dims, int64_t *outer,
                       int64_t *len, int64_t *inner) {
  int a0 = n->attr.softmax.axis, a1 = n->attr.softmax.axis_end;
  int64_t pd[HAWQ_MAX_RANK];
  hawq_physical_dims(rank, dims, pd);
  /* The reduced logical axes [a0, a1) as a physical range. */
  int p0 = hawq_physical_axis(rank, a0), p1 = p0 + 1;
  if (rank == 4 && a0 == 1 && a1 == 4) {
    p0 = 1;
    p1 = 4;
  } else if (a1 - a0 > 1) {
    p1 = a1;
  }
  *outer = *len = *inner = 1;
  for (int d = 0; d < rank; d++) {
    if (d < p0)
      *outer *= pd[d];
    else if (d < p1)
      *len *= pd[d];
    else
      *inner *= pd[d];
  }
}

static hawq_status run_node(hawq_float_plan *p, int k, hawq_error *err) {
  const hawq_node *n = &p->g->nodes[k];
  const node_exec *e = &p->exec[k];
  float *y = p->buf[e->out];
  if (n->op == HAWQ_OP_CONV) {
    hawq_status st = hawq_conv2d_forward(e->conv, p->buf[n->inputs[0]], y, err);
    if (st) hawq_error_prefix(err, n->name);
    return st;
  }
  hawq_node_forward(p->g, n, p->buf, (const int64_t(*)[HAWQ_MAX_RANK])p->dims, e->w, e->b, e->act,
                    y, p->workspace, p->threads);
  return HAWQ_OK;
}

hawq_status hawq_float_plan_run(hawq_float_plan *p, const float *const *inputs, hawq_error *err) {
  const hawq_graph *g = p->g;
  for (int i = 0; i < g->n_inputs; i++) {
    if (!inputs || !inputs[i]) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "input %d ('%s') is NULL", i,
                       g->tensors[g->inputs[i]].name);
    }
    p->buf[g->inputs[i]] = (float *)inputs[i]; /* read only: no node writes an input */
  }
#ifdef _OPENMP
  /* oneDNN sizes its parallelism from this thread's OpenMP thread count: set it to the plan's
   * for the run, and give the caller's back. */
  int callers_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
#endif
  hawq_status st = HAWQ_OK;
  for (int k = 0; k < g->n_nodes && !st; k++) {
    if (p->exec[k].skip) continue;
    double t0 = p->node_seconds ? hawq_seconds_now() : 0;
    st = run_node(p, k, err);
    if (p->node_seconds) p->node_seconds[k] += hawq_seconds_now() - t0;
  }
#ifdef _OPENMP
  omp_set_num_threads(callers_threads);
#endif
  return st;
}

const float *hawq_float_plan_output(const hawq_float_plan *p, size_t i) {
  return p->buf[p->g->outputs[i]];
}

const float *hawq_float_plan_tensor(const hawq_float_plan *p, int t) {
  return p->buf[t];
}

size_t hawq_float_plan_output_size(const hawq_float_plan *p, size_t i) {
  int t = p->g->outputs[i];
  return (size_t)dims_numel(p->g->tensors[t].rank, p->dims[t]);
}

size_t hawq_float_plan_activation_bytes(const hawq_float_plan *p) {
  return (p->arena_floats + p->workspace_floats) * sizeof(float);
}
