/* Lowering a float graph to the integer program (lower.h; the arithmetic is ARCHITECTURE
 * section 3). Two passes: the first groups float nodes into lowered ops ("units") and decides how
 * every value is stored, looking at its consumers; the second emits tensors and nodes in
 * execution order, folding BatchNorm, quantizing weights and biases and turning every change of
 * scale into a dyadic number. Float arithmetic happens here, offline, in double. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/status.h"
#include "quant/dyadic.h"
#include "quant/lower.h"

/* ---- bit configurations ---- */

static bool bits_ok(double b) {
  return b >= 2 && b <= 8 && b == (int)b;
}

static hawq_status parse_bits_json(const char *path, hawq_bit_config *c, hawq_error *err) {
  void *data = NULL;
  size_t size = 0;
  hawq_status st = hawq_read_file(path, 16u << 20, "", &data, &size, err);
  if (st) return st;
  cJSON *root = cJSON_ParseWithLength(data, size);
  free(data);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: not a JSON object (a bit configuration)", path);
  }
  st = HAWQ_OK;
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    const char *k = item->string;
    if (!strcmp(k, "weight_bits") || !strcmp(k, "act_bits")) {
      if (!cJSON_IsNumber(item) || !bits_ok(item->valuedouble)) {
        st = hawq_fail(err, HAWQ_ERR_PARSE, "%s: '%s' must be an integer in [2, 8]", path, k);
        break;
      }
      *(k[0] == 'w' ? &c->weight_bits : &c->act_bits) = (int)item->valuedouble;
    } else if (!strcmp(k, "pin_ends")) {
      if (!cJSON_IsBool(item)) {
        st = hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'pin_ends' must be true or false", path);
        break;
      }
      c->pin_ends = cJSON_IsTrue(item);
    } else if (!strcmp(k, "layers")) {
      if (!cJSON_IsObject(item) || c->layers) {
        st = hawq_fail(err, HAWQ_ERR_PARSE, "%s: 'layers' must be one object", path);
        break;
      }
      int n = cJSON_GetArraySize(item);
      c->layers = calloc((size_t)(n ? n : 1), sizeof *c->layers);
      if (!c->layers) {
        st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
        break;
      }
      const cJSON *layer;
      cJSON_ArrayForEach(layer, item) {
        hawq_layer_bits *l = &c->layers[c->n_layers];
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(layer, "weight_bits");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(layer, "act_bits");
        if (!cJSON_IsNumber(w) || !cJSON_IsNumber(a) || !bits_ok(w->valuedouble) ||
            !bits_ok(a->valuedouble)) {
          st = hawq_fail(err, HAWQ_ERR_PARSE,
                         "%s: layer '%s' needs integer 'weight_bits' and 'act_bits' in [2, 8]",
                         path, layer->string);
          break;
        }
        if (!(l->name = strdup(layer->string))) {
          st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
          break;
        }
        l->weight_bits = (int)w->valuedouble;
        l->act_bits = (int)a->valuedouble;
        c->n_layers++;
      }
      if (st) break;
    } else if (!strcmp(k, "ilp") || !strcmp(k, "frontier")) {
      /* hawq allocate's summary beside the configuration (docs/mixed_precision.md) */
    } else {
      st = hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: unknown key '%s' (expected weight_bits, act_bits, pin_ends, layers)",
                     path, k);
      break;
    }
  }
  cJSON_Delete(root);
  return st;
}

hawq_status hawq_bit_config_parse(const char *spec, hawq_bit_config *out, hawq_error *err) {
  *out = (hawq_bit_config){.weight_bits = 8, .act_bits = 8, .pin_ends = true};
  int w, a, used = 0;
  if (sscanf(spec, "w%da%d%n", &w, &a, &used) == 2 && !spec[used]) {
    if (!bits_ok(w) || !bits_ok(a)) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "--bits '%s': bits must be in [2, 8]", spec);
    }
    out->weight_bits = w;
    out->act_bits = a;
    return HAWQ_OK;
  }
  if (sscanf(spec, "%d%n", &w, &used) == 1 && !spec[used]) {
    if (!bits_ok(w)) {
      return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "--bits '%s': bits must be in [2, 8]", spec);
    }
    out->weight_bits = out->act_bits = w;
    return HAWQ_OK;
  }
  hawq_status st = parse_bits_json(spec, out, err);
  if (st) hawq_bit_config_free(out);
  return st;
}

void hawq_bit_config_free(hawq_bit_config *c) {
  for (int i = 0; i < c->n_layers; i++) free(c->layers[i].name);
  free(c->layers);
  c->layers = NULL;
  c->n_layers = 0;
}

/* ---- the weight quantizer (also hawq sensitivity's, src/search/hessian.c) ---- */

double hawq_weight_scale(const double *w, int64_t n, int bits) {
  double mx = 0;
  for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(w[i]));
  return mx > 0 ? mx / ((1 << (bits - 1)) - 1) : 1.0;
}

int32_t hawq_weight_quantize(double w, double scale, int bits) {
  int32_t wmax = (1 << (bits - 1)) - 1;
  double q = round(w / scale);
  return q > wmax ? wmax : q < -wmax ? -wmax : (int32_t)q;
}

/* ---- pass 1: units ---- */

typedef enum unit_kind {
  U_CONV,
  U_ADD,
  U_MAXPOOL,
  U_AVGPOOL,
  U_CONCAT,
  U_ACT,
  U_LEAKY /* LeakyRelu: max(x, 0) + alpha * min(x, 0), as two clamping QRequants and a QAdd */
} unit_kind;

typedef struct unit {
  unit_kind kind;
  int node;     /* the main float node */
  int bn, act;  /* fused BatchNormalization and Relu/Clip nodes, or -1 */
  int act2;     /* a second Relu/Clip right after act (ReLU6 exported as Relu, Clip), or -1 */
  int add;      /* U_CONV: the residual Add fused into it, or -1 */
  int residual; /* U_CONV: the value added as residual, or -1 */
  int n_in;
  int in[HAWQ_QMAX_INPUTS]; /* values read */
  int out;                  /* the value written */
  bool removed;             /* an Add fused into a conv */
  /* U_CONV: a per-channel affine map y = aff_a[c] x + aff_b[c] (a BatchNormalization not after a
   * conv, Mul/Add/Sub/Div by constants, or a chain of them), lowered as a depthwise 1x1 conv */
  bool affine;
  double *aff_a, *aff_b;
  int pad[4]; /* zero padding of a Pad node folded in (top, left, bottom, right) */
  int weight_bits, act_bits;
} unit;

/* How a value is stored. */
typedef struct format {
  int bits; /* 2..8, 16, 32; 0 = not yet decided */
  bool is_unsigned;
  int32_t lo, hi;
  double scale;
  hawq_qtype type;
} format;

typedef struct lowering {
  const hawq_graph *g;
  const hawq_calib_range *ranges;
  const hawq_preprocess *pp;
  int *resolve;  /* per tensor: the value it stands for (through Reshape, Pad, final Softmax) */
  int (*pad)[4]; /* per tensor: the zero padding a Pad node adds to the value it stands for */
  int *users;    /* per tensor: number of consuming nodes (graph output counts one) */
  int *sole;     /* per tensor: the consuming node when users == 1, else -1 */
  int *unit_of;  /* per value: the unit producing it, -1 for the graph input */
  int n_units;
  unit *units;
  format *fmt;       /* per value */
  int *qt;           /* per value: its qtensor */
  int (*requant)[9]; /* per value and bits 2..8: a requantized copy, or -1 */
  int output;        /* the output value */
  hawq_qmodel *m;
  hawq_error *err;
} lowering;

static bool is_act(const hawq_node *n) {
  return n->op == HAWQ_OP_RELU || n->op == HAWQ_OP_CLIP;
}

static hawq_status unsupported(lowering *L, int node, const char *what) {
  const hawq_node *n = &L->g->nodes[node];
  return hawq_fail(L->err, HAWQ_ERR_UNSUPPORTED, "%s: node '%s' (%s): %s", L->g->source, n->name,
                   n->op_type, what);
}

/* The consumer of tensor t if it is the only one and t is not a graph output, else -1. */
static int only_consumer(const lowering *L, int t) {
  return L->users[t] == 1 ? L->sole[t] : -1;
}

static bool graph_output(const hawq_graph *g, int t) {
  for (int i = 0; i < g->n_outputs; i++) {
    if (g->outputs[i] == t) return true;
  }
  return false;
}

static hawq_status count_users(lowering *L) {
  const hawq_graph *g = L->g;
  for (int t = 0; t < g->n_tensors; t++) {
    L->resolve[t] = t;
    L->sole[t] = -1;
  }
  for (int k = 0; k < g->n_nodes; k++) {
    const hawq_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_inputs; i++) {
      int t = n->inputs[i];
      if (t < 0 || g->tensors[t].kind == HAWQ_TENSOR_PARAM) continue;
      L->users[t]++;
      L->sole[t] = k;
    }
  }
  for (int i = 0; i < g->n_outputs; i++) L->users[g->outputs[i]]++;
  return HAWQ_OK;
}

static bool param(const hawq_graph *g, int t) {
  return t >= 0 && g->tensors[t].kind == HAWQ_TENSOR_PARAM;
}

/* Adds a unit; its inputs are the resolved values of the node's activation inputs. */
static unit *new_unit(lowering *L, unit_kind kind, int node) {
  unit *u = &L->units[L->n_units++];
  const hawq_node *n = &L->g->nodes[node];
  *u = (unit){
      .kind = kind, .node = node, .bn = -1, .act = -1, .act2 = -1, .add = -1, .residual = -1};
  for (int i = 0; i < n->n_inputs; i++) {
    int t = n->inputs[i];
    if (t < 0 || param(L->g, t)) continue;
    u->in[u->n_in++] = L->resolve[t];
  }
  memcpy(u->pad, L->pad[n->inputs[0]], sizeof u->pad);
  u->out = n->output;
  return u;
}

/* Fuses up to two following Relu/Clip nodes into u, marking them done. */
static void take_act(lowering *L, unit *u, bool *done) {
  for (int j = 0; j < 2; j++) {
    int c = only_consumer(L, u->out);
    if (c < 0 || !is_act(&L->g->nodes[c]) || u->act2 >= 0) return;
    *(u->act < 0 ? &u->act : &u->act2) = c;
    u->out = L->g->nodes[c].output;
    done[c] = true;
  }
}

/* The channel count of an activation: logical axis 1 of an image, the last axis of a vector. */
static int64_t channels_of(const hawq_tensor *t) {
  return t->rank == 4 ? t->dims[1] : t->dims[t->rank - 1];
}

/* Constant operand of arithmetic node k with activation x: its value for channel c of x, when it
 * is a scalar or one value per channel (broadcast along x's channel axis only). */
static bool per_channel_const(const hawq_graph *g, const hawq_tensor *x, const hawq_tensor *k,
                              int64_t ch, double *v) {
  int64_t n = hawq_tensor_numel(k), c = channels_of(x);
  int axis = x->rank == 4 ? 1 : x->rank - 1, at = k->rank - x->rank + axis;
  (void)g;
  if (n == 1) {
    *v = k->data[0];
    return true;
  }
  if (n != c || at < 0 || at >= k->rank || k->dims[at] != c) return false;
  *v = k->data[ch]; /* every other dimension is 1, so the layout is the channel order */
  return true;
}

/* Node k as y = a[c] x + b[c] over the c channels of its activation input x, or false. */
static bool node_affine(const lowering *L, int k, double *a, double *b) {
  const hawq_graph *g = L->g;
  const hawq_node *n = &g->nodes[k];
  if (n->op == HAWQ_OP_BATCHNORM) {
    const hawq_tensor *x = &g->tensors[n->inputs[0]];
    for (int64_t c = 0; c < channels_of(x); c++) {
      double gamma = g->tensors[n->inputs[1]].data[c], beta = g->tensors[n->inputs[2]].data[c];
      double mean = g->tensors[n->inputs[3]].data[c], var = g->tensors[n->inputs[4]].data[c];
      a[c] = gamma / sqrt(var + n->attr.bn.epsilon);
      b[c] = beta - mean * a[c];
    }
    return true;
  }
  if ((n->op != HAWQ_OP_MUL && n->op != HAWQ_OP_ADD && n->op != HAWQ_OP_SUB &&
       n->op != HAWQ_OP_DIV) ||
      n->n_inputs != 2) {
    return false;
  }
  int xi = param(g, n->inputs[0]) ? 1 : 0;
  if (param(g, n->inputs[xi]) || !param(g, n->inputs[1 - xi])) return false;
  const hawq_tensor *x = &g->tensors[n->inputs[xi]], *k_t = &g->tensors[n->inputs[1 - xi]];
  const hawq_tensor *y = &g->tensors[n->output];
  if (y->rank != x->rank || (x->rank != 4 && x->rank != 2)) return false;
  for (int d = 0; d < x->rank; d++) {
    if (y->dims[d] != x->dims[d]) return false; /* the constant must not widen x */
  }
  if (n->op == HAWQ_OP_DIV && xi == 1) return false; /* c / x is not affine */
  for (int64_t c = 0; c < channels_of(x); c++) {
    double v;
    if (!per_channel_const(g, x, k_t, c, &v)) return false;
    switch (n->op) {
      case HAWQ_OP_MUL:
        a[c] = v, b[c] = 0;
        break;
      case HAWQ_OP_ADD:
        a[c] = 1, b[c] = v;
        break;
      case HAWQ_OP_SUB:
        a[c] = xi == 0 ? 1 : -1, b[c] = xi == 0 ? -v : v;
        break;
      default:
        if (v == 0 || !isfinite(1 / v)) return false;
        a[c] = 1 / v, b[c] = 0;
        break;
    }
  }
  return true;
}

/* An affine unit from node k and the affine nodes that follow it alone, composed. */
static hawq_status affine_unit(lowering *L, int k, bool *done, unit **out) {
  const hawq_graph *g = L->g;
  const hawq_node *n = &g->nodes[k];
  int xi = n->n_inputs == 2 && param(g, n->inputs[0]) ? 1 : 0;
  int64_t c = channels_of(&g->tensors[n->inputs[xi]]);
  double *a = malloc((size_t)c * sizeof *a), *b = malloc((size_t)c * sizeof *b);
  double *a2 = malloc((size_t)c * sizeof *a2), *b2 = malloc((size_t)c * sizeof *b2);
  hawq_status st = HAWQ_OK;
  if (!a || !b || !a2 || !b2) {
    st = hawq_fail(L->err, HAWQ_ERR_NO_MEMORY, "lowering: out of memory");
  } else if (!node_affine(L, k, a, b)) {
    st = unsupported(L, k,
                     n->op == HAWQ_OP_BATCHNORM
                         ? "BatchNormalization is lowered on images and vectors only"
                         : "arithmetic is lowered only between an activation and a constant that "
                           "is a scalar or one value per channel (or an Add of two activations)");
  }
  if (st) {
    free(a), free(b), free(a2), free(b2);
    return st;
  }
  unit *u = new_unit(L, U_CONV, k);
  u->n_in = 1;
  u->in[0] = L->resolve[n->inputs[xi]];
  memcpy(u->pad, L->pad[n->inputs[xi]], sizeof u->pad);
  u->affine = true;
  u->aff_a = a;
  u->aff_b = b;
  for (int next; (next = only_consumer(L, u->out)) >= 0 && node_affine(L, next, a2, b2);) {
    for (int64_t i = 0; i < c; i++) {
      b[i] = a2[i] * b[i] + b2[i];
      a[i] *= a2[i];
    }
    done[next] = true;
    u->out = g->nodes[next].output;
  }
  free(a2);
  free(b2);
  take_act(L, u, done);
  *out = u;
  return HAWQ_OK;
}

static hawq_status build_units(lowering *L) {
  const hawq_graph *g = L->g;
  hawq_status st;
  bool *done = calloc((size_t)g->n_nodes + 1, 1);
  if (!done) return hawq_fail(L->err, HAWQ_ERR_NO_MEMORY, "lowering: out of memory");
  for (int k = 0; k < g->n_nodes; k++) {
    if (done[k]) continue;
    const hawq_node *n = &g->nodes[k];
    unit *u = NULL;
    switch (n->op) {
      case HAWQ_OP_CONV:
      case HAWQ_OP_GEMM: {
        if (param(g, n->inputs[0]) || !param(g, n->inputs[1]) ||
            (n->n_inputs > 2 && n->inputs[2] >= 0 && !param(g, n->inputs[2]))) {
          st = unsupported(L, k, "weights and bias must be constant initializers");
          goto fail;
        }
        if (n->op == HAWQ_OP_GEMM && g->tensors[n->output].rank != 2) {
          st = unsupported(L, k, "a Gemm/MatMul must produce (N, features)");
          goto fail;
        }
        u = new_unit(L, U_CONV, k);
        int c = only_consumer(L, u->out);
        if (c >= 0 && g->nodes[c].op == HAWQ_OP_BATCHNORM) {
          u->bn = c;
          done[c] = true;
          u->out = g->nodes[c].output;
        }
        take_act(L, u, done);
        break;
      }
      case HAWQ_OP_ADD: {
        if (param(g, n->inputs[0]) || param(g, n->inputs[1])) {
          if ((st = affine_unit(L, k, done, &u))) goto fail;
          break;
        }
        const hawq_tensor *a = &g->tensors[n->inputs[0]], *b = &g->tensors[n->inputs[1]];
        bool same = !param(g, n->inputs[0]) && !param(g, n->inputs[1]) && a->rank == b->rank;
        for (int d = 0; same && d < a->rank; d++) same = a->dims[d] == b->dims[d];
        if (!same) {
          st = unsupported(L, k, "Add is lowered only between two activations of the same shape");
          goto fail;
        }
        u = new_unit(L, U_ADD, k);
        take_act(L, u, done);
        break;
      }
      case HAWQ_OP_RELU:
      case HAWQ_OP_CLIP:
        if (n->op == HAWQ_OP_CLIP && n->attr.clip.min > 0) {
          st = unsupported(L, k, "Clip with a positive minimum is not lowered");
          goto fail;
        }
        u = new_unit(L, U_ACT, k);
        u->act = k;
        break;
      case HAWQ_OP_MAXPOOL:
      case HAWQ_OP_GLOBAL_MAXPOOL:
        u = new_unit(L, U_MAXPOOL, k);
        break;
      case HAWQ_OP_AVGPOOL:
      case HAWQ_OP_GLOBAL_AVGPOOL:
        u = new_unit(L, U_AVGPOOL, k);
        break;
      case HAWQ_OP_CONCAT:
        if (g->tensors[n->output].rank != 4 || n->attr.concat.axis != 1) {
          st = unsupported(L, k,
                           "Concat is lowered only along the channels of (N, C, H, W) tensors");
          goto fail;
        }
        u = new_unit(L, U_CONCAT, k);
        break;
      case HAWQ_OP_RESHAPE: {
        /* A flatten before a Gemm (its weights take the NCHW -> NHWC order), or a reshape that
         * keeps a vector a vector. */
        int in = n->inputs[0];
        const hawq_tensor *x = &g->tensors[in], *y = &g->tensors[n->output];
        int c = only_consumer(L, n->output);
        bool to_gemm = c >= 0 && g->nodes[c].op == HAWQ_OP_GEMM && y->rank == 2;
        bool vec = y->rank == 2 && (x->rank == 2 || (x->rank == 4 && x->dims[2] * x->dims[3] == 1));
        if (param(g, in) || !x->batched || !y->batched || !(((x->rank == 4) && to_gemm) || vec)) {
          st = unsupported(L, k, "Reshape/Flatten is lowered only to (N, features) before a Gemm");
          goto fail;
        }
        L->resolve[n->output] = L->resolve[in];
        break;
      }
      case HAWQ_OP_SOFTMAX:
        if (!graph_output(g, n->output) || L->users[n->output] != 1) {
          st = unsupported(L, k, "Softmax is lowered only as the model's output (it is dropped)");
          goto fail;
        }
        L->resolve[n->output] = L->resolve[n->inputs[0]];
        break;
      case HAWQ_OP_BATCHNORM:
      case HAWQ_OP_MUL:
      case HAWQ_OP_SUB:
      case HAWQ_OP_DIV:
        /* a BatchNormalization not after a conv (that one was fused), or arithmetic with a
         * constant */
        if ((st = affine_unit(L, k, done, &u))) goto fail;
        break;
      case HAWQ_OP_LEAKY_RELU:
        if (!(n->attr.leaky.alpha > 0)) {
          st = unsupported(L, k, "LeakyRelu is lowered only with alpha > 0");
          goto fail;
        }
        u = new_unit(L, U_LEAKY, k);
        break;
      case HAWQ_OP_PAD: {
        /* Zero padding of H and W, folded into the convolutions and pools that read it. */
        const hawq_pad_attr *a = &n->attr.pad;
        int in = n->inputs[0];
        bool ok = g->tensors[in].rank == 4 && a->value == 0 && !param(g, in);
        for (int d = 0; ok && d < 2 * HAWQ_MAX_RANK; d++) {
          int axis = d % HAWQ_MAX_RANK; /* begins, then ends, per logical axis (N, C, H, W) */
          ok =
              a->pads[d] >= 0 && a->pads[d] <= 65536 && (axis == 2 || axis == 3 || a->pads[d] == 0);
        }
        for (int d = 0; ok && d < 4; d++) ok = L->pad[in][d] == 0;
        for (int j = k + 1; ok && j < g->n_nodes; j++) {
          const hawq_node *c = &g->nodes[j];
          const int *cp = c->attr.pool.pad;
          for (int i = 0; ok && i < c->n_inputs; i++) {
            if (c->inputs[i] != n->output) continue;
            ok = i == 0 && (c->op == HAWQ_OP_CONV || c->op == HAWQ_OP_MAXPOOL ||
                            (c->op == HAWQ_OP_AVGPOOL &&
                             (c->attr.pool.count_include_pad || !(cp[0] | cp[1] | cp[2] | cp[3]))));
          }
        }
        if (!ok || graph_output(g, n->output)) {
          st = unsupported(L, k,
                           "Pad is lowered only as zero padding of H and W read by Conv, MaxPool "
                           "or AveragePool");
          goto fail;
        }
        L->resolve[n->output] = L->resolve[in];
        /* top, left, bottom, right */
        static const int order[4] = {2, 3, HAWQ_MAX_RANK + 2, HAWQ_MAX_RANK + 3};
        for (int d = 0; d < 4; d++) L->pad[n->output][d] = (int)a->pads[order[d]];
        break;
      }
      default:
        st = unsupported(L, k, "this op has no integer lowering");
        goto fail;
    }
    if (u && u->n_in < 1) {
      st = unsupported(L, k, "reads no activation");
      goto fail;
    }
  }
  free(done);
  return HAWQ_OK;
fail:
  free(done);
  return st;
}

/* Fuses each Add into the later of its conv operands when that conv's output goes only to the
 * Add: the conv adds the other operand as its residual (one rounding less, no extra pass). */
static void fuse_residual_adds(lowering *L) {
  for (int i = 0; i < L->n_units; i++) {
    unit *a = &L->units[i];
    if (a->kind != U_ADD) continue;
    int best = -1, other = -1;
    for (int s = 0; s < 2; s++) {
      int v = a->in[s];
      int p = L->unit_of[v];
      if (p < 0 || p >= i) continue;
      unit *c = &L->units[p];
      if (c->kind != U_CONV || c->act >= 0 || c->removed || L->users[v] != 1) continue;
      if (a->in[0] == a->in[1]) continue;
      if (p > best) {
        best = p;
        other = a->in[1 - s];
      }
    }
    if (best < 0) continue;
    unit *c = &L->units[best];
    /* the other operand must exist before the conv runs */
    int po = L->unit_of[other];
    if (po >= best) continue;
    c->add = a->node;
    c->residual = other;
    c->act = a->act;
    c->act2 = a->act2;
    c->out = a->out;
    L->unit_of[a->out] = best;
    a->removed = true;
  }
}

/* ---- storage formats ---- */

static void set_format(format *f, int bits, bool is_unsigned, double absmax) {
  f->bits = bits;
  f->is_unsigned = is_unsigned;
  if (bits == 32) {
    f->type = HAWQ_QT_I32;
    f->lo = -INT32_MAX;
    f->hi = INT32_MAX;
  } else {
    int b = bits == 16 ? 16 : bits;
    f->hi = is_unsigned && bits != 16 ? (int32_t)((1 << b) - 1) : (int32_t)((1 << (b - 1)) - 1);
    f->lo = is_unsigned ? 0 : -f->hi;
    f->type = bits == 16  ? HAWQ_QT_I16
              : bits <= 4 ? (is_unsigned ? HAWQ_QT_U4 : HAWQ_QT_I4)
                          : (is_unsigned ? HAWQ_QT_U8 : HAWQ_QT_I8);
  }
  /* A tensor that is always 0 still needs a positive scale. */
  f->scale = absmax > 0 ? absmax / f->hi : 1.0;
}

/* The value's range: calibrated, or exact for the graph input (from the preprocessing). */
static void value_range(const lowering *L, int v, double *lo, double *hi) {
  if (L->unit_of[v] < 0) {
    const hawq_preprocess *pp = L->pp;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int c = 0; c < pp->channels; c++) {
      double a = (0 - pp->mean[c]) / pp->std[c],
             b = (255.0 * pp->pixel_scale - pp->mean[c]) / pp->std[c];
      *lo = fmin(*lo, fmin(a, b));
      *hi = fmax(*hi, fmax(a, b));
    }
    return;
  }
  *lo = L->ranges[v].min;
  *hi = L->ranges[v].max;
}

static bool act_nonnegative(const hawq_graph *g, int act) {
  if (act < 0) return false;
  const hawq_node *n = &g->nodes[act];
  return n->op == HAWQ_OP_RELU || (n->op == HAWQ_OP_CLIP && n->attr.clip.min >= 0);
}

/* Decides every value's format, consumers before producers. */
static hawq_status decide_formats(lowering *L) {
  const hawq_graph *g = L->g;
  int input = g->inputs[0];
  /* demand[v]: widest bits a conv consumer reads (<= 8), or 16 if another consumer needs it */
  int n_values = g->n_tensors;
  int *demand = calloc((size_t)n_values, sizeof *demand);
  /* share[v]: 1 + the concat whose format value v takes (its only reader), or 0 */
  int *share = calloc((size_t)n_values, sizeof *share);
  if (!demand || !share) {
    free(demand);
    free(share);
    return hawq_fail(L->err, HAWQ_ERR_NO_MEMORY, "lowering: out of memory");
  }
  demand[L->output] = 32;
  for (int i = L->n_units - 1; i >= -1; i--) {
    int v = i >= 0 ? L->units[i].out : input;
    if (i >= 0 && L->units[i].removed) continue;
    if (i >= 0 && v == L->output) {
      if (L->units[i].kind != U_CONV) {
        free(demand);
        free(share);
        return unsupported(L, L->units[i].node,
                           "the model's output must come from a Conv or Gemm (the logits)");
      }
    }
    format *f = &L->fmt[v];
    int bits = demand[v] ? demand[v] : 16;
    double lo, hi;
    value_range(L, v, &lo, &hi);
    bool nonneg =
        lo >= 0 ||
        (i >= 0 && (act_nonnegative(g, L->units[i].act) || act_nonnegative(g, L->units[i].act2)));
    set_format(f, bits, nonneg && bits != 32, nonneg ? hi : fmax(fabs(lo), fabs(hi)));
    /* A concat's input read by nothing else is written straight in the concat's format (one
     * scale across the concat), so the concat copies it: one rounding less. */
    if (share[v]) *f = L->fmt[L->units[share[v] - 1].out];
    if (i < 0) break;
    /* this unit's inputs: demands from this consumer */
    const unit *u = &L->units[i];
    for (int s = 0; s < u->n_in + (u->residual >= 0); s++) {
      int x = s < u->n_in ? u->in[s] : u->residual;
      int d;
      if (u->kind == U_CONV && s < u->n_in)
        d = u->act_bits;
      else if (u->kind == U_MAXPOOL || u->kind == U_ACT)
        d = bits == 32 ? 16 : bits;
      else
        d = 16;
      if (u->kind == U_CONCAT && L->users[x] == 1 && L->unit_of[x] >= 0) share[x] = i + 1;
      if (demand[x] == 0)
        demand[x] = d;
      else if (demand[x] <= 8 && d <= 8)
        demand[x] = d > demand[x] ? d : demand[x];
      else
        demand[x] = 16;
    }
  }
  free(demand);
  free(share);
  return HAWQ_OK;
}

/* ---- pass 2: emission ---- */

static hawq_status dyadic(lowering *L, int node, const char *what, double r, hawq_dyadic *d) {
  hawq_error e;
  if (hawq_dyadic_from_ratio(r, d, &e)) {
    const hawq_node *n = &L->g->nodes[node];
    return hawq_fail(L->err, HAWQ_ERR_UNSUPPORTED, "%s: node '%s' (%s): %s rescale ratio %g: %s",
                     L->g->source, n->name, n->op_type, what, r, e.msg);
  }
  return HAWQ_OK;
}

static void value_shape(const hawq_graph *g, int v, int64_t *h, int64_t *w, int64_t *c) {
  const hawq_tensor *t = &g->tensors[v];
  if (t->rank == 4) {
    *c = t->dims[1];
    *h = t->dims[2];
    *w = t->dims[3];
  } else {
    *h = *w = 1;
    *c = t->dims[t->rank - 1];
  }
}

static int add_qtensor(lowering *L, const char *name, const format *f, int64_t h, int64_t w,
                       int64_t c) {
  return hawq_qmodel_add_tensor(L->m, name, f->type, f->lo, f->hi, h, w, c, f->scale);
}

static hawq_status oom(lowering *L) {
  return hawq_fail(L->err, HAWQ_ERR_NO_MEMORY, "lowering: out of memory");
}

/* The qtensor a conv reads for value v at `bits`: v itself, or a requantized copy. */
static hawq_status conv_input(lowering *L, int v, int bits, int *out) {
  const format *f = &L->fmt[v];
  if (f->bits == bits) {
    *out = L->qt[v];
    return HAWQ_OK;
  }
  if (L->requant[v][bits] >= 0) {
    *out = L->requant[v][bits];
    return HAWQ_OK;
  }
  format r;
  set_format(&r, bits, f->is_unsigned, f->scale * f->hi);
  const hawq_qtensor *src = &L->m->tensors[L->qt[v]];
  char name[512];
  snprintf(name, sizeof name, "%s.a%d", src->name, bits);
  int t = add_qtensor(L, name, &r, src->h, src->w, src->c);
  if (t < 0) return oom(L);
  int k = hawq_qmodel_add_node(L->m, HAWQ_QOP_REQUANT, name, 1, (int[]){L->qt[v]}, t);
  if (k < 0) return oom(L);
  hawq_qnode *n = &L->m->nodes[k];
  if (!(n->dyadic = malloc(sizeof *n->dyadic))) return oom(L);
  n->n_dyadic = 1;
  int node = L->unit_of[v] >= 0 ? L->units[L->unit_of[v]].node : 0;
  hawq_status st = dyadic(L, node, "requantization", f->scale / r.scale, &n->dyadic[0]);
  if (st) return st;
  L->requant[v][bits] = t;
  *out = t;
  return HAWQ_OK;
}

/* Narrows [lo, hi] by one Relu/Clip node, in the units of format f. */
static void narrow(const lowering *L, int act, const format *f, int32_t *lo, int32_t *hi) {
  const hawq_node *n = &L->g->nodes[act];
  double a = 0, b = INFINITY;
  if (n->op == HAWQ_OP_CLIP) {
    a = n->attr.clip.min;
    b = n->attr.clip.max;
  }
  double qa = round(a / f->scale), qb = round(b / f->scale);
  if (qa > *lo) *lo = qa > *hi ? *hi : (int32_t)qa;
  if (qb < *hi) *hi = qb < *lo ? *lo : (int32_t)qb;
}

/* The output clamp of a unit: its format's range narrowed by its fused Relu/Clip nodes. */
static void act_clamp(const lowering *L, const unit *u, const format *f, int32_t *lo, int32_t *hi) {
  *lo = f->lo;
  *hi = f->hi;
  for (int j = 0; j < 2; j++) {
    int act = j ? u->act2 : u->act;
    if (act >= 0) narrow(L, act, f, lo, hi);
  }
}

static hawq_status emit_input(lowering *L) {
  const hawq_graph *g = L->g;
  const hawq_tensor *in = &g->tensors[g->inputs[0]];
  int64_t h = in->dims[2], w = in->dims[3], c = in->dims[1];
  const hawq_preprocess *pp = L->pp;
  format px = {.bits = 8,
               .is_unsigned = true,
               .lo = 0,
               .hi = 255,
               .scale = pp->pixel_scale,
               .type = HAWQ_QT_U8};
  int pixels = add_qtensor(L, strcmp(in->name, "pixels") ? "pixels" : "pixels.u8", &px, h, w, c);
  L->m->input = pixels;
  if (pixels < 0) return oom(L);
  int v = g->inputs[0];
  const format *f = &L->fmt[v];
  int t = add_qtensor(L, in->name, f, h, w, c);
  if (t < 0) return oom(L);
  L->qt[v] = t;
  int k = hawq_qmodel_add_node(L->m, HAWQ_QOP_INPUT, in->name, 1, (int[]){pixels}, t);
  if (k < 0) return oom(L);
  hawq_qnode *n = &L->m->nodes[k];
  n->input_mul = malloc((size_t)c * sizeof *n->input_mul);
  n->input_add = malloc((size_t)c * sizeof *n->input_add);
  n->dyadic = malloc((size_t)c * sizeof *n->dyadic);
  if (!n->input_mul || !n->input_add || !n->dyadic) return oom(L);
  n->n_dyadic = (int)c;
  /* q = (p - mean/pixel_scale) * pixel_scale / (std * s): the pixel is scaled by 256 so that the
   * mean's offset keeps 8 fractional bits, then one dyadic per channel. */
  for (int64_t ch = 0; ch < c; ch++) {
    int e = pp->channels == 1 ? 0 : (int)ch;
    n->input_mul[ch] = 256;
    n->input_add[ch] = (int32_t)round(-pp->mean[e] / pp->pixel_scale * 256.0);
    double r = pp->pixel_scale / (256.0 * pp->std[e] * f->scale);
    hawq_status st = dyadic(L, 0, "input", r, &n->dyadic[ch]);
    if (st) return st;
  }
  return HAWQ_OK;
}

static hawq_status emit_conv(lowering *L, const unit *u) {
  const hawq_graph *g = L->g;
  const hawq_node *fn = &g->nodes[u->node];
  bool gemm = fn->op == HAWQ_OP_GEMM;
  int xq = -1;
  hawq_status st = conv_input(L, u->in[0], u->act_bits, &xq);
  if (st) return st;
  /* (x points into the tensor array, which grows below: copy what is needed now) */
  const hawq_qtensor *x = &L->m->tensors[xq];
  const int64_t xmax = x->hi > -(int64_t)x->lo ? x->hi : -(int64_t)x->lo;
  const hawq_tensor *wt = u->affine ? NULL : &g->tensors[fn->inputs[1]];
  int64_t K, R, S, Cg;
  if (u->affine) {
    K = x->c;
    R = S = Cg = 1;
  } else if (gemm) {
    K = wt->dims[0];
    R = x->h;
    S = x->w;
    Cg = x->c;
    if (wt->dims[1] != R * S * Cg)
      return unsupported(L, u->node, "weight columns != input features");
  } else {
    K = wt->dims[0];
    Cg = wt->dims[1];
    R = wt->dims[2];
    S = wt->dims[3];
  }
  int64_t taps = R * S * Cg;
  /* BN folding, in double: W' = W * gamma / sqrt(var + eps), b' = (b - mean) * that + beta */
  const float *W = u->affine ? NULL : wt->data; /* affine: aff_a is the weight */
  const float *B =
      !u->affine && fn->n_inputs > 2 && fn->inputs[2] >= 0 ? g->tensors[fn->inputs[2]].data : NULL;
  int bn = u->affine ? -1 : u->bn;
  double *wf = malloc((size_t)(K * taps) * sizeof *wf);
  double *bf = malloc((size_t)K * sizeof *bf);
  int64_t h, w, c;
  value_shape(g, u->out, &h, &w, &c);
  int out_t = -1;
  hawq_qnode *n = NULL;
  if (!wf || !bf) {
    st = oom(L);
    goto done;
  }
  for (int64_t k = 0; k < K; k++) {
    double mul = 1, add = 0;
    if (bn >= 0) {
      const hawq_node *b = &g->nodes[bn];
      const float *gamma = g->tensors[b->inputs[1]].data, *beta = g->tensors[b->inputs[2]].data;
      const float *mean = g->tensors[b->inputs[3]].data, *var = g->tensors[b->inputs[4]].data;
      mul = gamma[k] / sqrt((double)var[k] + b->attr.bn.epsilon);
      add = beta[k] - mean[k] * mul;
    }
    if (u->affine) mul = u->aff_a[k], add = u->aff_b[k];
    bf[k] = (B ? B[k] : 0) * mul + add;
    for (int64_t i = 0; i < taps; i++) {
      /* NHWC tap order (r, s, c); a Gemm after a flatten of (C, H, W) reads column c*H*W + r*W + s
       */
      int64_t src = i;
      if (gemm && R * S > 1) {
        int64_t ch = i % Cg, rs = i / Cg;
        src = ch * R * S + rs;
      }
      wf[k * taps + i] = (W ? W[k * taps + src] : 1.0) * mul;
    }
  }
  const format *fo = &L->fmt[u->out];
  bool logits = u->out == L->output;
  format flog;
  double s_x = x->scale, s_y = fo->scale;
  int wb = u->weight_bits;
  double *s_w = malloc((size_t)K * sizeof *s_w);
  if (!s_w) {
    st = oom(L);
    goto done;
  }
  for (int64_t k = 0; k < K; k++) s_w[k] = hawq_weight_scale(wf + k * taps, taps, wb);
  if (logits) {
    /* int32 logits at the coarsest channel's accumulator scale: every ratio <= 1. */
    double mx = 0;
    for (int64_t k = 0; k < K; k++) mx = fmax(mx, s_x * s_w[k]);
    set_format(&flog, 32, false, 0);
    flog.scale = mx;
    fo = &flog;
    s_y = mx;
    L->fmt[u->out] = flog;
  }
  out_t = add_qtensor(L, g->tensors[u->out].name, fo, h, w, c);
  if (out_t < 0) {
    free(s_w);
    st = oom(L);
    goto done;
  }
  L->qt[u->out] = out_t;
  int res_q = u->residual >= 0 ? L->qt[u->residual] : -1;
  int k_node = hawq_qmodel_add_node(L->m, HAWQ_QOP_CONV, fn->name, 2, (int[]){xq, res_q}, out_t);
  if (k_node < 0) {
    free(s_w);
    st = oom(L);
    goto done;
  }
  n = &L->m->nodes[k_node];
  n->weight_scale = s_w;
  n->weight_bits = wb;
  n->kernel[0] = (int)R;
  n->kernel[1] = (int)S;
  if (gemm || u->affine) {
    n->stride[0] = n->stride[1] = n->dilation[0] = n->dilation[1] = 1;
    n->groups = u->affine ? (int)K : 1;
  } else {
    const hawq_conv_attr *a = &fn->attr.conv;
    memcpy(n->stride, a->stride, sizeof n->stride);
    memcpy(n->dilation, a->dilation, sizeof n->dilation);
    for (int d = 0; d < 4; d++) n->pad[d] = a->pad[d] + u->pad[d];
    n->groups = a->groups;
  }
  int64_t row = hawq_qtype_row_bytes(wb <= 4 ? HAWQ_QT_I4 : HAWQ_QT_I8, taps);
  n->weight = calloc((size_t)(K * row), 1);
  n->bias = malloc((size_t)K * sizeof *n->bias);
  n->dyadic = malloc((size_t)K * sizeof *n->dyadic);
  if (!n->weight || !n->bias || !n->dyadic) {
    st = oom(L);
    goto done;
  }
  n->n_dyadic = (int)K;
  for (int64_t k = 0; k < K; k++) {
    int64_t sum_abs = 0;
    for (int64_t i = 0; i < taps; i++) {
      int32_t qi = hawq_weight_quantize(wf[k * taps + i], s_w[k], wb);
      hawq_qrow_set(wb <= 4 ? HAWQ_QT_I4 : HAWQ_QT_I8, n->weight + k * row, i, qi);
      sum_abs += qi < 0 ? -qi : qi;
    }
    double qb = round(bf[k] / (s_x * s_w[k]));
    if (!(fabs(qb) < 2147483647.0)) {
      st = hawq_fail(L->err, HAWQ_ERR_UNSUPPORTED,
                     "%s: node '%s' (%s): bias of output channel %lld is %g accumulator units, "
                     "beyond int32",
                     g->source, fn->name, fn->op_type, (long long)k, qb);
      goto done;
    }
    n->bias[k] = (int32_t)qb;
    int64_t bound = xmax * sum_abs + (qb < 0 ? -(int64_t)qb : (int64_t)qb);
    if (bound > INT32_MAX) {
      st = hawq_fail(L->err, HAWQ_ERR_UNSUPPORTED,
                     "%s: node '%s' (%s): the int32 accumulator of output channel %lld can reach "
                     "%lld (max|x| %lld * sum|w| %lld + |bias|), beyond 2^31-1; use fewer "
                     "activation or weight bits for this layer",
                     g->source, fn->name, fn->op_type, (long long)k, (long long)bound,
                     (long long)xmax, (long long)sum_abs);
      goto done;
    }
    if ((st = dyadic(L, u->node, "output", s_x * s_w[k] / s_y, &n->dyadic[k]))) goto done;
  }
  if (u->residual >= 0) {
    double r = L->m->tensors[res_q].scale / s_y;
    if ((st = dyadic(L, u->add, "residual", r, &n->residual_dyadic))) goto done;
  }
  int32_t lo, hi;
  act_clamp(L, u, fo, &lo, &hi);
  L->m->tensors[out_t].lo = lo;
  L->m->tensors[out_t].hi = hi;
done:
  free(wf);
  free(bf);
  return st;
}

/* LeakyRelu: y = max(x, 0) + alpha * min(x, 0). Both parts keep x's integers and scale, each a
 * clamping QRequant by the identity; the QAdd rescales them to y, alpha folded into the second
 * part's dyadic. */
static hawq_status emit_leaky(lowering *L, const unit *u) {
  const hawq_graph *g = L->g;
  const hawq_node *fn = &g->nodes[u->node];
  int64_t h, w, c;
  value_shape(g, u->out, &h, &w, &c);
  const format *fi = &L->fmt[u->in[0]], *fo = &L->fmt[u->out];
  int xq = L->qt[u->in[0]], parts[2];
  hawq_dyadic identity;
  hawq_status st = dyadic(L, u->node, "identity", 1.0, &identity);
  for (int j = 0; j < 2 && !st; j++) {
    char name[512];
    snprintf(name, sizeof name, "%s.%s", fn->name, j ? "neg" : "pos");
    format f = *fi;
    if (j)
      f.hi = f.lo < 0 ? 0 : f.lo; /* min(x, 0) */
    else
      f.lo = f.hi > 0 ? 0 : f.hi; /* max(x, 0) */
    if ((parts[j] = add_qtensor(L, name, &f, h, w, c)) < 0) return oom(L);
    int k = hawq_qmodel_add_node(L->m, HAWQ_QOP_REQUANT, name, 1, (int[]){xq}, parts[j]);
    if (k < 0 || !(L->m->nodes[k].dyadic = malloc(sizeof(hawq_dyadic)))) return oom(L);
    L->m->nodes[k].n_dyadic = 1;
    L->m->nodes[k].dyadic[0] = identity;
  }
  if (st) return st;
  int out_t = add_qtensor(L, g->tensors[u->out].name, fo, h, w, c);
  if (out_t < 0) return oom(L);
  L->qt[u->out] = out_t;
  int k = hawq_qmodel_add_node(L->m, HAWQ_QOP_ADD, fn->name, 2, parts, out_t);
  if (k < 0) return oom(L);
  hawq_qnode *n = &L->m->nodes[k];
  if (!(n->dyadic = malloc(2 * sizeof *n->dyadic))) return oom(L);
  n->n_dyadic = 2;
  if ((st = dyadic(L, u->node, "input", fi->scale / fo->scale, &n->dyadic[0])) ||
      (st = dyadic(L, u->node, "input", fn->attr.leaky.alpha * fi->scale / fo->scale,
                   &n->dyadic[1]))) {
    return st;
  }
  return HAWQ_OK;
}

static hawq_status emit_simple(lowering *L, const unit *u) {
  const hawq_graph *g = L->g;
  const hawq_node *fn = &g->nodes[u->node];
  int64_t h, w, c;
  value_shape(g, u->out, &h, &w, &c);
  const format *fi = &L->fmt[u->in[0]];
  hawq_qop op = u->kind == U_ADD       ? HAWQ_QOP_ADD
                : u->kind == U_MAXPOOL ? HAWQ_QOP_MAXPOOL
                : u->kind == U_AVGPOOL ? HAWQ_QOP_AVGPOOL
                : u->kind == U_CONCAT  ? HAWQ_QOP_CONCAT
                                       : HAWQ_QOP_REQUANT;
  /* Max pooling and a lone Relu/Clip keep their input's integers and scale. */
  if (u->kind == U_MAXPOOL || u->kind == U_ACT) L->fmt[u->out] = *fi;
  const format *fo = &L->fmt[u->out];
  int out_t = add_qtensor(L, g->tensors[u->out].name, fo, h, w, c);
  if (out_t < 0) return oom(L);
  L->qt[u->out] = out_t;
  int ins[HAWQ_QMAX_INPUTS];
  for (int i = 0; i < u->n_in; i++) ins[i] = L->qt[u->in[i]];
  int k = hawq_qmodel_add_node(L->m, op, fn->name, u->n_in, ins, out_t);
  if (k < 0) return oom(L);
  hawq_qnode *n = &L->m->nodes[k];
  const hawq_qtensor *x = &L->m->tensors[ins[0]];
  hawq_status st = HAWQ_OK;
  if (u->kind == U_MAXPOOL || u->kind == U_AVGPOOL) {
    bool global = fn->op == HAWQ_OP_GLOBAL_AVGPOOL || fn->op == HAWQ_OP_GLOBAL_MAXPOOL;
    if (global) {
      n->kernel[0] = (int)x->h;
      n->kernel[1] = (int)x->w;
      n->stride[0] = n->stride[1] = n->dilation[0] = n->dilation[1] = 1;
    } else {
      const hawq_pool_attr *a = &fn->attr.pool;
      memcpy(n->kernel, a->kernel, sizeof n->kernel);
      memcpy(n->stride, a->stride, sizeof n->stride);
      memcpy(n->dilation, a->dilation, sizeof n->dilation);
      for (int d = 0; d < 4; d++) n->pad[d] = a->pad[d] + u->pad[d];
      /* a folded Pad's zeros count in every window, as they did in the float graph */
      n->count_include_pad =
          a->count_include_pad || (u->pad[0] | u->pad[1] | u->pad[2] | u->pad[3]);
    }
    if (u->kind == U_MAXPOOL && (u->pad[0] | u->pad[1] | u->pad[2] | u->pad[3]) && x->lo < 0) {
      return unsupported(L, u->node,
                         "MaxPool after a zero Pad is lowered only for a non-negative input");
    }
  }
  int n_dy = u->kind == U_ADD       ? 2
             : u->kind == U_CONCAT  ? u->n_in
             : u->kind == U_AVGPOOL ? n->kernel[0] * n->kernel[1]
             : u->kind == U_ACT     ? 1
                                    : 0;
  if (n_dy) {
    if (!(n->dyadic = malloc((size_t)n_dy * sizeof *n->dyadic))) return oom(L);
    n->n_dyadic = n_dy;
  }
  for (int i = 0; i < n_dy && !st; i++) {
    double r;
    if (u->kind == U_AVGPOOL)
      r = x->scale / (fo->scale * (i + 1));
    else if (u->kind == U_ACT)
      r = 1;
    else
      r = L->m->tensors[ins[i]].scale / fo->scale;
    st = dyadic(L, u->node, u->kind == U_AVGPOOL ? "average" : "input", r, &n->dyadic[i]);
  }
  if (st) return st;
  if (u->kind == U_ADD || u->kind == U_ACT) {
    int32_t lo, hi;
    act_clamp(L, u, fo, &lo, &hi);
    L->m->tensors[out_t].lo = lo;
    L->m->tensors[out_t].hi = hi;
  }
  if (u->kind == U_AVGPOOL) {
    int64_t xmax = x->hi > -(int64_t)x->lo ? x->hi : -(int64_t)x->lo;
    if (xmax * n_dy > INT32_MAX) {
      return unsupported(L, u->node, "the window sum can exceed int32 (window too large)");
    }
  }
  return HAWQ_OK;
}

/* ---- layers and bits ---- */

static hawq_status analyse(lowering *L) {
  const hawq_graph *g = L->g;
  if (g->n_inputs != 1 || g->tensors[g->inputs[0]].rank != 4) {
    return hawq_fail(L->err, HAWQ_ERR_UNSUPPORTED,
                     "%s: the integer runtime needs one image input (N, C, H, W), the model has %d "
                     "inputs",
                     g->source, g->n_inputs);
  }
  if (g->tensors[g->inputs[0]].dims[1] > HAWQ_MAX_CHANNELS) {
    return hawq_fail(L->err, HAWQ_ERR_UNSUPPORTED, "%s: input has %lld channels, at most %d",
                     g->source, (long long)g->tensors[g->inputs[0]].dims[1], HAWQ_MAX_CHANNELS);
  }
  if (g->n_outputs != 1 || g->tensors[g->outputs[0]].rank != 2) {
    return hawq_fail(L->err, HAWQ_ERR_UNSUPPORTED,
                     "%s: the integer runtime needs one output (N, classes), the model has %d",
                     g->source, g->n_outputs);
  }
  hawq_status st = count_users(L);
  if (!st) st = build_units(L);
  if (st) return st;
  for (int t = 0; t < g->n_tensors; t++) L->unit_of[t] = -1;
  for (int i = 0; i < L->n_units; i++) L->unit_of[L->units[i].out] = i;
  fuse_residual_adds(L);
  L->output = L->resolve[g->outputs[0]];
  return HAWQ_OK;
}

static hawq_status assign_bits(lowering *L, const hawq_bit_config *cfg) {
  const hawq_graph *g = L->g;
  int first = -1, last = -1;
  for (int i = 0; i < L->n_units; i++) {
    if (L->units[i].kind != U_CONV || L->units[i].removed || L->units[i].affine) continue;
    if (first < 0) first = i;
    if (L->units[i].out == L->output) last = i;
  }
  for (int j = 0; j < cfg->n_layers; j++) {
    bool found = false;
    for (int i = 0; i < L->n_units && !found; i++) {
      found = L->units[i].kind == U_CONV && !L->units[i].affine &&
              !strcmp(g->nodes[L->units[i].node].name, cfg->layers[j].name);
    }
    if (!found) {
      return hawq_fail(L->err, HAWQ_ERR_INVALID_ARG,
                       "bit configuration: layer '%s' is not a Conv or Gemm node of %s",
                       cfg->layers[j].name, g->source);
    }
  }
  for (int i = 0; i < L->n_units; i++) {
    unit *u = &L->units[i];
    if (u->kind != U_CONV) continue;
    if (u->affine) {
      u->weight_bits = u->act_bits = 8;
      continue;
    }
    u->weight_bits = cfg->weight_bits;
    u->act_bits = cfg->act_bits;
    if (cfg->pin_ends && (i == first || i == last)) u->weight_bits = u->act_bits = 8;
    for (int j = 0; j < cfg->n_layers; j++) {
      if (!strcmp(g->nodes[u->node].name, cfg->layers[j].name)) {
        u->weight_bits = cfg->layers[j].weight_bits;
        u->act_bits = cfg->layers[j].act_bits;
      }
    }
  }
  return HAWQ_OK;
}

static void lowering_free(lowering *L) {
  free(L->resolve);
  free(L->pad);
  free(L->users);
  free(L->sole);
  free(L->unit_of);
  for (int i = 0; L->units && i < L->n_units; i++) {
    free(L->units[i].aff_a);
    free(L->units[i].aff_b);
  }
  free(L->units);
  free(L->fmt);
  free(L->qt);
  free(L->requant);
}

static hawq_status lowering_init(lowering *L, const hawq_graph *g, hawq_error *err) {
  size_t n = (size_t)g->n_tensors;
  *L = (lowering){.g = g, .err = err};
  L->resolve = calloc(n, sizeof *L->resolve);
  L->pad = calloc(n, sizeof *L->pad);
  L->users = calloc(n, sizeof *L->users);
  L->sole = calloc(n, sizeof *L->sole);
  L->unit_of = calloc(n, sizeof *L->unit_of);
  L->units = calloc((size_t)g->n_nodes + 1, sizeof *L->units);
  L->fmt = calloc(n, sizeof *L->fmt);
  L->qt = malloc(n * sizeof *L->qt);
  L->requant = malloc(n * sizeof *L->requant);
  if (!L->resolve || !L->pad || !L->users || !L->sole || !L->unit_of || !L->units || !L->fmt ||
      !L->qt || !L->requant) {
    lowering_free(L);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "lowering: out of memory");
  }
  for (size_t t = 0; t < n; t++) {
    L->qt[t] = -1;
    for (int b = 0; b < 9; b++) L->requant[t][b] = -1;
  }
  return HAWQ_OK;
}

hawq_status hawq_resolve_bits(const hawq_graph *g, const hawq_bit_config *cfg, hawq_qlayer **layers,
                              int *n, hawq_error *err) {
  lowering L;
  hawq_status st = lowering_init(&L, g, err);
  if (st) return st;
  *layers = NULL;
  *n = 0;
  if (!(st = analyse(&L)) && !(st = assign_bits(&L, cfg))) {
    *layers = malloc((size_t)(L.n_units + 1) * sizeof **layers);
    if (!*layers) st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < L.n_units && !st; i++) {
      const unit *u = &L.units[i];
      if (u->kind == U_CONV && !u->affine)
        (*layers)[(*n)++] = (hawq_qlayer){u->node, u->weight_bits, u->act_bits};
    }
  }
  lowering_free(&L);
  return st;
}

static char *bits_json(const lowering *L) {
  cJSON *o = cJSON_CreateObject(), *layers = cJSON_AddObjectToObject(o, "layers");
  for (int i = 0; i < L->n_units; i++) {
    const unit *u = &L->units[i];
    if (u->kind != U_CONV || u->affine) continue;
    cJSON *l = cJSON_AddObjectToObject(layers, L->g->nodes[u->node].name);
    cJSON_AddNumberToObject(l, "weight_bits", u->weight_bits);
    cJSON_AddNumberToObject(l, "act_bits", u->act_bits);
  }
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

hawq_status hawq_lower(const hawq_graph *g, const hawq_calib_range *ranges,
                       const hawq_bit_config *cfg, const hawq_preprocess *pp, hawq_qmodel **out,
                       int *qtensor_of, hawq_error *err) {
  *out = NULL;
  lowering L;
  hawq_status st = lowering_init(&L, g, err);
  if (st) return st;
  L.ranges = ranges;
  L.pp = pp;
  if ((st = analyse(&L)) || (st = assign_bits(&L, cfg))) goto done;
  for (int i = 0; i < L.n_units; i++) {
    const unit *u = &L.units[i];
    if (u->removed) continue;
    for (int s = 0; s < u->n_in; s++) {
      if (L.unit_of[u->in[s]] < 0 && u->in[s] != g->inputs[0]) {
        st = unsupported(&L, u->node, "reads a tensor no lowered op produces");
        goto done;
      }
    }
    if (u->out != L.output && !ranges[u->out].seen) {
      st = unsupported(&L, u->node, "its output was not calibrated");
      goto done;
    }
  }
  if ((st = decide_formats(&L))) goto done;
  if (!(L.m = hawq_qmodel_new())) {
    st = oom(&L);
    goto done;
  }
  L.m->preprocess = *pp;
  if ((st = emit_input(&L))) goto done;
  for (int i = 0; i < L.n_units && !st; i++) {
    const unit *u = &L.units[i];
    if (u->removed) continue;
    st = u->kind == U_CONV    ? emit_conv(&L, u)
         : u->kind == U_LEAKY ? emit_leaky(&L, u)
                              : emit_simple(&L, u);
  }
  if (st) goto done;
  L.m->output = L.qt[L.output];
  L.m->bits_json = bits_json(&L);
  if ((st = hawq_qmodel_validate(L.m, g->source, err))) goto done;
  if (qtensor_of) {
    for (int t = 0; t < g->n_tensors; t++) qtensor_of[t] = L.qt[L.resolve[t]];
  }
  *out = L.m;
  L.m = NULL;
done:
  hawq_qmodel_destroy(L.m);
  lowering_free(&L);
  return st;
}
