/* ONNX import: a ModelProto (protobuf-c) into hawq's float graph (NHWC IR).
 *
 * One pass over the nodes in file order. Each ONNX value name is bound to a value: a runtime IR
 * tensor or a constant (onnx_internal.h). A node whose inputs are all constants is folded
 * (fold.c); any other node must be one of the compute ops below and is emitted into the graph,
 * its constant inputs becoming parameters in physical layout. Shapes are inferred and checked
 * here, so a graph that imports is a graph the engine can run; anything hawq cannot run is
 * refused with one line naming the file, the node, its op type and opset, and what is missing.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/graph.h"
#include "core/preprocess.h"
#include "core/status.h"
#include "core/strset.h"
#include "onnx/onnx_internal.h"

#define S(x) ((x) ? (x) : "")

/* Lowest and highest default-domain opsets hawq reads. Attribute semantics are handled for
 * every version in between (Clip, Pad, Slice, Squeeze/Unsqueeze, Softmax, Reshape, legacy
 * broadcasting and BatchNormalization's is_test changed over time). */
#define HAWQ_MIN_OPSET 1
#define HAWQ_MAX_OPSET 18

/* Protobuf's own limit: a larger model needs external data. */
#define HAWQ_MAX_MODEL_BYTES ((size_t)INT32_MAX)

typedef struct importer {
  const char *file;
  const char *base_dir; /* for external data; NULL for buffers */
  int64_t opset;
  bool fixed_shapes;
  bool batch_one_is_n; /* the input declared batch 1: a constant 1 in dim 0 means "the batch" */
  hawq_graph *g;
  hawq_error *err;
  /* name -> value, open addressing */
  size_t map_cap;
  char **map_keys;
  int *map_vals;
  value *values;
  char **unavailable; /* per value: why it cannot be used (extra outputs), or NULL */
  int n_values, cap_values;
  /* names of the IR graph's tensors, for unique_name (open addressing; keys borrowed from the
   * graph) */
  hawq_strset names; /* graph tensor names (owned by the graph) */
} importer;

/* ------------------------------------------------------------------------------------------ */
/* Value environment                                                                          */

static int env_lookup(const importer *im, const char *name) {
  if (!im->map_cap) return -1;
  size_t mask = im->map_cap - 1;
  for (size_t k = hawq_str_hash(name) & mask;; k = (k + 1) & mask) {
    if (!im->map_keys[k]) return -1;
    if (strcmp(im->map_keys[k], name) == 0) return im->map_vals[k];
  }
}

static bool env_grow(importer *im) {
  size_t cap = im->map_cap ? 2 * im->map_cap : 256;
  char **keys = calloc(cap, sizeof *keys);
  int *vals = calloc(cap, sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return false;
  }
  for (size_t k = 0; k < im->map_cap; k++) {
    if (!im->map_keys[k]) continue;
    size_t j = hawq_str_hash(im->map_keys[k]) & (cap - 1);
    while (keys[j]) j = (j + 1) & (cap - 1);
    keys[j] = im->map_keys[k];
    vals[j] = im->map_vals[k];
  }
  free(im->map_keys);
  free(im->map_vals);
  im->map_keys = keys;
  im->map_vals = vals;
  im->map_cap = cap;
  return true;
}

/* Binds name to a new value (taking ownership of *v). Fails if the name is already bound. */
static hawq_status env_bind(importer *im, const char *name, value *v, const char *unavailable) {
  if (env_lookup(im, name) >= 0) {
    value_free(v);
    return hawq_fail(im->err, HAWQ_ERR_PARSE, "%s: value '%s' is defined twice", im->file, name);
  }
  if (2 * (size_t)(im->n_values + 1) > im->map_cap && !env_grow(im)) goto oom;
  if (im->n_values == im->cap_values) {
    int cap = im->cap_values ? 2 * im->cap_values : 256;
    value *vals = realloc(im->values, (size_t)cap * sizeof *vals);
    if (!vals) goto oom;
    im->values = vals;
    char **un = realloc(im->unavailable, (size_t)cap * sizeof *un);
    if (!un) goto oom;
    im->unavailable = un;
    im->cap_values = cap;
  }
  char *key = strdup(name);
  char *why = unavailable ? strdup(unavailable) : NULL;
  if (!key || (unavailable && !why)) {
    free(key);
    free(why);
    goto oom;
  }
  size_t mask = im->map_cap - 1, j = hawq_str_hash(name) & mask;
  while (im->map_keys[j]) j = (j + 1) & mask;
  im->map_keys[j] = key;
  im->map_vals[j] = im->n_values;
  im->values[im->n_values] = *v;
  im->unavailable[im->n_values] = why;
  im->n_values++;
  return HAWQ_OK;
oom:
  value_free(v);
  return hawq_fail(im->err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", im->file);
}

static void env_free(importer *im) {
  hawq_strset_free(&im->names);
  for (size_t k = 0; k < im->map_cap; k++) free(im->map_keys[k]);
  for (int k = 0; k < im->n_values; k++) {
    value_free(&im->values[k]);
    free(im->unavailable[k]);
  }
  free(im->map_keys);
  free(im->map_vals);
  free(im->values);
  free(im->unavailable);
}

static value runtime_value(int tensor) {
  value v = {0};
  v.kind = VALUE_RUNTIME;
  v.tensor = tensor;
  return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Graph construction                                                                         */

static hawq_status oom(importer *im) {
  return hawq_fail(im->err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", im->file);
}

/* A tensor name not yet used in the graph: base, or base#2, base#3, ... (malloc'd; NULL if out
 * of memory). */
static char *unique_name(const importer *im, const char *base) {
  size_t size = strlen(base) + 24;
  char *out = malloc(size);
  if (!out) return NULL;
  snprintf(out, size, "%s", base);
  for (long k = 2; hawq_strset_has(&im->names, out); k++) snprintf(out, size, "%s#%ld", base, k);
  return out;
}

/* Adds a tensor under a unique version of `name`; -1 if out of memory (error set). */
static int add_named_tensor(importer *im, const char *name, hawq_tensor_kind kind, int rank,
                            const int64_t *dims, bool batched) {
  char *uname = unique_name(im, name);
  int t = uname ? hawq_graph_add_tensor(im->g, uname, kind, rank, dims, batched) : -1;
  free(uname);
  if (t < 0 || !hawq_strset_add(&im->names, im->g->tensors[t].name)) {
    oom(im);
    return -1;
  }
  return t;
}

/* A parameter tensor holding constant v reshaped to the logical shape (rank, dims) (same
 * element count), stored physically. A constant used again with the same shape (a shared
 * weight) gives the same tensor. Returns the tensor index or -1 (error set). */
static int add_param(importer *im, const node_ctx *c, value *v, const char *name, int rank,
                     const int64_t *dims) {
  if (v->type != CONST_FLOAT) {
    node_fail(c, im->err, HAWQ_ERR_UNSUPPORTED, "input '%s' is %s, expected float32", name,
              onnx_dtype_name(v->onnx_dtype));
    return -1;
  }
  if (v->param_plus1 && v->param_rank == rank &&
      !memcmp(v->param_dims, dims, (size_t)rank * sizeof *dims)) {
    return v->param_plus1 - 1;
  }
  int t = add_named_tensor(im, name, HAWQ_TENSOR_PARAM, rank, dims, false);
  if (t < 0) return -1;
  float *data = hawq_alloc_floats((size_t)v->count);
  if (!data) {
    oom(im);
    return -1;
  }
  hawq_tensor_to_physical(v->f, data, rank, dims);
  im->g->tensors[t].data = data;
  v->param_plus1 = t + 1;
  v->param_rank = rank;
  memcpy(v->param_dims, dims, (size_t)rank * sizeof *dims);
  return t;
}

/* A new activation tensor, with its size checked. */
static int add_activation(importer *im, const node_ctx *c, const char *name, int rank,
                          const int64_t *dims, bool batched) {
  int64_t d[HAWQ_MAX_RANK];
  for (int k = 0; k < rank; k++) d[k] = dims[k];
  if (batched) d[0] = 1;
  for (int k = 0; k < rank; k++) {
    if (d[k] < 1) {
      node_fail(c, im->err, HAWQ_ERR_PARSE, "output dimension %d would be %lld, expected >= 1", k,
                (long long)d[k]);
      return -1;
    }
  }
  if (shape_numel(rank, d) < 0) {
    node_fail(c, im->err, HAWQ_ERR_UNSUPPORTED,
              "output would have more than 2^32 elements per sample");
    return -1;
  }
  return add_named_tensor(im, name, HAWQ_TENSOR_ACTIVATION, rank, d, batched);
}

static int add_node(importer *im, const node_ctx *c, hawq_op op, int n_in, const int *in, int out) {
  int k = hawq_graph_add_node(im->g, op, c->node_name, c->op_type, n_in, in, out);
  if (k < 0) oom(im);
  return k;
}

/* The tensor at index t. The pointer is invalidated by the next tensor added (the array grows):
 * emitters keep copies. */
static const hawq_tensor *T(const importer *im, int t) {
  return &im->g->tensors[t];
}

/* Shape description for messages, e.g. "Nx3x224x224". */
static const char *shape_str(const hawq_tensor *t, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = 0; k < t->rank && used < size; k++) {
    if (k == 0 && t->batched) {
      used += (size_t)snprintf(buf + used, size - used, "N");
    } else {
      used +=
          (size_t)snprintf(buf + used, size - used, "%s%lld", k ? "x" : "", (long long)t->dims[k]);
    }
  }
  if (t->rank == 0) snprintf(buf, size, "scalar");
  return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Op emitters. in[k] is NULL for an absent optional input; out_name is output 0's name.       */

typedef struct emit_args {
  importer *im;
  const node_ctx *c;
  const Onnx__NodeProto *n;
  value **in;
  int n_in;
  const char *out_name;
  const char **in_names;
} emit_args;

#define FAIL(st, ...) node_fail(a->c, a->im->err, st, __VA_ARGS__)

static hawq_status need_runtime(const emit_args *a, int k, const char *what) {
  if (k >= a->n_in || !a->in[k]) return FAIL(HAWQ_ERR_PARSE, "missing input %d (%s)", k, what);
  if (a->in[k]->kind != VALUE_RUNTIME) {
    return FAIL(HAWQ_ERR_UNSUPPORTED,
                "input %d (%s) is a constant; hawq needs it computed from "
                "the graph's input",
                k, what);
  }
  return HAWQ_OK;
}

static hawq_status need_const(const emit_args *a, int k, const char *what, bool optional) {
  if (k >= a->n_in || !a->in[k]) {
    return optional ? HAWQ_OK : FAIL(HAWQ_ERR_PARSE, "missing input %d (%s)", k, what);
  }
  if (a->in[k]->kind != VALUE_CONST) {
    return FAIL(HAWQ_ERR_UNSUPPORTED,
                "input %d (%s) must be a constant (initializer), it is computed at run time", k,
                what);
  }
  if (a->in[k]->type != CONST_FLOAT) {
    return FAIL(HAWQ_ERR_UNSUPPORTED, "input %d (%s) is %s, expected float32", k, what,
                onnx_dtype_name(a->in[k]->onnx_dtype));
  }
  return HAWQ_OK;
}

/* Emits a node with output `name` and binds out_name to it. Returns the node index or -1. */
static int emit(const emit_args *a, hawq_op op, int n_in, const int *in, int rank,
                const int64_t *dims, bool batched, hawq_status *st) {
  int out = add_activation(a->im, a->c, a->out_name, rank, dims, batched);
  if (out < 0) {
    *st = a->im->err->status;
    return -1;
  }
  int node = add_node(a->im, a->c, op, n_in, in, out);
  if (node < 0) {
    *st = a->im->err->status;
    return -1;
  }
  value v = runtime_value(out);
  *st = env_bind(a->im, a->out_name, &v, NULL);
  return *st ? -1 : node;
}

/* Resolves auto_pad / pads for one spatial axis pair. */
static hawq_status spatial_pads(const emit_args *a, const char *auto_pad, const int64_t *in_hw,
                                const int64_t *k_eff, const int *stride, int64_t *pads) {
  if (!strcmp(auto_pad, "NOTSET") || !*auto_pad) return HAWQ_OK;
  if (!strcmp(auto_pad, "VALID")) {
    for (int k = 0; k < 4; k++) pads[k] = 0;
    return HAWQ_OK;
  }
  bool upper = !strcmp(auto_pad, "SAME_UPPER");
  if (!upper && strcmp(auto_pad, "SAME_LOWER")) {
    return FAIL(HAWQ_ERR_PARSE, "auto_pad '%s' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID",
                auto_pad);
  }
  for (int d = 0; d < 2; d++) {
    int64_t out = (in_hw[d] + stride[d] - 1) / stride[d];
    int64_t total = (out - 1) * stride[d] + k_eff[d] - in_hw[d];
    if (total < 0) total = 0;
    int64_t small = total / 2, big = total - small;
    pads[d] = upper ? small : big;
    pads[d + 2] = upper ? big : small;
  }
  return HAWQ_OK;
}

/* Reads strides/dilations/pads attributes of Conv and pools; each must be >= its minimum. */
static hawq_status read_pair(const emit_args *a, const char *name, int64_t def, int64_t min,
                             int *out) {
  int64_t v[2];
  int nv;
  hawq_status st = attr_ints(a->c, a->n, name, 2, v, &nv, a->im->err);
  if (st) return st;
  if (nv < 0) {
    out[0] = out[1] = (int)def;
    return HAWQ_OK;
  }
  if (nv != 2)
    return FAIL(HAWQ_ERR_UNSUPPORTED, "attribute '%s' has %d values, expected 2 (2-D)", name, nv);
  for (int k = 0; k < 2; k++) {
    if (v[k] < min || v[k] > (1 << 20)) {
      return FAIL(HAWQ_ERR_PARSE, "attribute '%s' is %lld, expected >= %lld", name, (long long)v[k],
                  (long long)min);
    }
    out[k] = (int)v[k];
  }
  return HAWQ_OK;
}

static hawq_status read_pads(const emit_args *a, int64_t *pads) {
  int np;
  hawq_status st = attr_ints(a->c, a->n, "pads", 4, pads, &np, a->im->err);
  if (st) return st;
  if (np < 0) {
    for (int k = 0; k < 4; k++) pads[k] = 0;
    return HAWQ_OK;
  }
  if (np != 4) return FAIL(HAWQ_ERR_UNSUPPORTED, "attribute 'pads' has %d values, expected 4", np);
  for (int k = 0; k < 4; k++) {
    if (pads[k] < 0 || pads[k] > (1 << 20)) {
      return FAIL(HAWQ_ERR_PARSE, "attribute 'pads' entry %d is %lld, expected >= 0", k,
                  (long long)pads[k]);
    }
  }
  return HAWQ_OK;
}

static hawq_status need_rank4(const emit_args *a, const hawq_tensor *x) {
  if (x->rank != 4) {
    char s[64];
    return FAIL(HAWQ_ERR_UNSUPPORTED,
                "input '%s' has shape %s; only 2-D %s on 4-D (N,C,H,W) tensors is supported",
                a->in_names[0], shape_str(x, s, sizeof s),
                strstr(a->c->op_type, "Pool") ? "pooling" : "convolution");
  }
  return HAWQ_OK;
}

static hawq_status emit_conv(const emit_args *a) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "X")) || (st = need_const(a, 1, "W", false)) ||
      (st = need_const(a, 2, "B", true))) {
    return st;
  }
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  if ((st = need_rank4(a, x))) return st;
  value *w = a->in[1], *bias = a->n_in > 2 ? a->in[2] : NULL;
  if (w->rank != 4) return FAIL(HAWQ_ERR_UNSUPPORTED, "weight has rank %d, expected 4", w->rank);
  int64_t group, K = w->dims[0], Cg = w->dims[1], R = w->dims[2], Sk = w->dims[3];
  if ((st = attr_int(a->c, a->n, "group", 1, &group, a->im->err))) return st;
  if (group < 1)
    return FAIL(HAWQ_ERR_PARSE, "attribute 'group' is %lld, expected >= 1", (long long)group);
  if (K < 1 || Cg < 1 || R < 1 || Sk < 1)
    return FAIL(HAWQ_ERR_PARSE, "weight has an empty dimension");
  if (Cg * group != x->dims[1]) {
    return FAIL(HAWQ_ERR_PARSE, "input has %lld channels but weight expects %lld x group %lld",
                (long long)x->dims[1], (long long)Cg, (long long)group);
  }
  if (K % group)
    return FAIL(HAWQ_ERR_PARSE, "%lld output channels not divisible by group %lld", (long long)K,
                (long long)group);
  int64_t ks[2];
  int nks;
  if ((st = attr_ints(a->c, a->n, "kernel_shape", 2, ks, &nks, a->im->err))) return st;
  if (nks >= 0 && (nks != 2 || ks[0] != R || ks[1] != Sk)) {
    return FAIL(HAWQ_ERR_PARSE, "kernel_shape does not match the weight's %lldx%lld", (long long)R,
                (long long)Sk);
  }
  if (bias && bias->count != K) {
    return FAIL(HAWQ_ERR_PARSE, "bias has %lld values, expected %lld", (long long)bias->count,
                (long long)K);
  }
  hawq_conv_attr at = {.groups = (int)group};
  int64_t pads[4];
  char auto_pad[32];
  if ((st = read_pair(a, "strides", 1, 1, at.stride)) ||
      (st = read_pair(a, "dilations", 1, 1, at.dilation)) || (st = read_pads(a, pads)) ||
      (st = attr_string(a->c, a->n, "auto_pad", "NOTSET", auto_pad, sizeof auto_pad, a->im->err))) {
    return st;
  }
  int64_t in_hw[2] = {x->dims[2], x->dims[3]};
  int64_t k_eff[2] = {(R - 1) * at.dilation[0] + 1, (Sk - 1) * at.dilation[1] + 1};
  if ((st = spatial_pads(a, auto_pad, in_hw, k_eff, at.stride, pads))) return st;
  int64_t out_hw[2];
  for (int d = 0; d < 2; d++) {
    int64_t span = in_hw[d] + pads[d] + pads[d + 2] - k_eff[d];
    if (span < 0) {
      return FAIL(HAWQ_ERR_PARSE,
                  "kernel (%lld with dilation) is larger than the padded input "
                  "(%lld)",
                  (long long)k_eff[d], (long long)(in_hw[d] + pads[d] + pads[d + 2]));
    }
    out_hw[d] = span / at.stride[d] + 1;
  }
  for (int k = 0; k < 4; k++) at.pad[k] = (int)pads[k];

  int wt = add_param(a->im, a->c, w, a->in_names[1], 4, w->dims);
  if (wt < 0) return a->im->err->status;
  int bt = -1;
  if (bias) {
    bt = add_param(a->im, a->c, bias, a->in_names[2], 1, &K);
    if (bt < 0) return a->im->err->status;
  }
  int ins[3] = {a->in[0]->tensor, wt, bt};
  int64_t dims[4] = {x->dims[0], K, out_hw[0], out_hw[1]};
  int node = emit(a, HAWQ_OP_CONV, 3, ins, 4, dims, x->batched, &st);
  if (node >= 0) a->im->g->nodes[node].attr.conv = at;
  return st;
}

static hawq_status emit_pool(const emit_args *a, bool is_max) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "X"))) return st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  if ((st = need_rank4(a, x))) return st;
  hawq_pool_attr at;
  memset(&at, 0, sizeof at);
  int64_t ks[3];
  int nks;
  if ((st = attr_ints(a->c, a->n, "kernel_shape", 3, ks, &nks, a->im->err))) return st;
  if (nks != 2) return FAIL(HAWQ_ERR_UNSUPPORTED, "kernel_shape must have 2 values (2-D pooling)");
  for (int d = 0; d < 2; d++) {
    if (ks[d] < 1 || ks[d] > (1 << 20))
      return FAIL(HAWQ_ERR_PARSE, "kernel_shape entry %d is %lld", d, (long long)ks[d]);
    at.kernel[d] = (int)ks[d];
  }
  int64_t pads[4], ceil_mode, cip = 0, storage_order = 0;
  char auto_pad[32];
  if ((st = read_pair(a, "strides", 1, 1, at.stride)) ||
      (st = read_pair(a, "dilations", 1, 1, at.dilation)) || (st = read_pads(a, pads)) ||
      (st = attr_int(a->c, a->n, "ceil_mode", 0, &ceil_mode, a->im->err)) ||
      (st = attr_string(a->c, a->n, "auto_pad", "NOTSET", auto_pad, sizeof auto_pad, a->im->err))) {
    return st;
  }
  if (is_max) {
    if ((st = attr_int(a->c, a->n, "storage_order", 0, &storage_order, a->im->err))) return st;
    if (storage_order != 0) return FAIL(HAWQ_ERR_UNSUPPORTED, "storage_order 1 is not supported");
  } else {
    if ((st = attr_int(a->c, a->n, "count_include_pad", 0, &cip, a->im->err))) return st;
    if (at.dilation[0] != 1 || at.dilation[1] != 1) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "dilated average pooling is not supported");
    }
  }
  at.count_include_pad = cip != 0;
  int64_t in_hw[2] = {x->dims[2], x->dims[3]};
  int64_t k_eff[2] = {(int64_t)(at.kernel[0] - 1) * at.dilation[0] + 1,
                      (int64_t)(at.kernel[1] - 1) * at.dilation[1] + 1};
  if ((st = spatial_pads(a, auto_pad, in_hw, k_eff, at.stride, pads))) return st;
  int64_t out_hw[2];
  for (int d = 0; d < 2; d++) {
    if (pads[d] >= k_eff[d] || pads[d + 2] >= k_eff[d]) {
      return FAIL(HAWQ_ERR_PARSE, "padding %lld/%lld is not smaller than the kernel %lld",
                  (long long)pads[d], (long long)pads[d + 2], (long long)k_eff[d]);
    }
    int64_t span = in_hw[d] + pads[d] + pads[d + 2] - k_eff[d];
    if (span < 0) return FAIL(HAWQ_ERR_PARSE, "kernel is larger than the padded input");
    int64_t o = (ceil_mode ? span + at.stride[d] - 1 : span) / at.stride[d] + 1;
    /* As PyTorch: the last window must start inside the input or its left padding. */
    if (ceil_mode && (o - 1) * at.stride[d] >= in_hw[d] + pads[d]) o--;
    out_hw[d] = o;
  }
  for (int k = 0; k < 4; k++) at.pad[k] = (int)pads[k];
  int ins[1] = {a->in[0]->tensor};
  int64_t dims[4] = {x->dims[0], x->dims[1], out_hw[0], out_hw[1]};
  int node = emit(a, is_max ? HAWQ_OP_MAXPOOL : HAWQ_OP_AVGPOOL, 1, ins, 4, dims, x->batched, &st);
  if (node >= 0) a->im->g->nodes[node].attr.pool = at;
  return st;
}

static hawq_status emit_global_pool(const emit_args *a, hawq_op op) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "X"))) return st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  if ((st = need_rank4(a, x))) return st;
  int ins[1] = {a->in[0]->tensor};
  int64_t dims[4] = {x->dims[0], x->dims[1], 1, 1};
  emit(a, op, 1, ins, 4, dims, x->batched, &st);
  return st;
}

static hawq_status emit_batchnorm(const emit_args *a) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "X"))) return st;
  static const char *names[5] = {"X", "scale", "B", "mean", "var"};
  for (int k = 1; k < 5; k++) {
    if ((st = need_const(a, k, names[k], false))) return st;
  }
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  if (x->rank < 2) return FAIL(HAWQ_ERR_UNSUPPORTED, "input has rank %d, expected >= 2", x->rank);
  int64_t C = x->dims[1], training = 0, spatial = 1;
  float eps;
  if ((st = attr_float(a->c, a->n, "epsilon", 1e-5f, &eps, a->im->err)) ||
      (st = attr_int(a->c, a->n, "training_mode", 0, &training, a->im->err)) ||
      (st = attr_int(a->c, a->n, "spatial", 1, &spatial, a->im->err))) {
    return st;
  }
  if (a->c->opset < 7) {
    int64_t is_test;
    if ((st = attr_int(a->c, a->n, "is_test", 0, &is_test, a->im->err))) return st;
    training = !is_test;
  }
  if (training)
    return FAIL(HAWQ_ERR_UNSUPPORTED,
                "training mode (batch statistics) in an "
                "inference graph; export the model in eval mode");
  if (!spatial) return FAIL(HAWQ_ERR_UNSUPPORTED, "spatial 0 is not supported");
  if (!(eps >= 0)) return FAIL(HAWQ_ERR_PARSE, "epsilon %g is negative", eps);
  int ins[5] = {a->in[0]->tensor};
  for (int k = 1; k < 5; k++) {
    if (a->in[k]->count != C) {
      return FAIL(HAWQ_ERR_PARSE, "input '%s' has %lld values, expected %lld (channels)",
                  a->in_names[k], (long long)a->in[k]->count, (long long)C);
    }
    if ((ins[k] = add_param(a->im, a->c, a->in[k], a->in_names[k], 1, &C)) < 0) {
      return a->im->err->status;
    }
  }
  for (int64_t k = 0; k < C; k++) {
    if (!(a->in[4]->f[k] + eps > 0)) {
      return FAIL(HAWQ_ERR_PARSE, "variance %g + epsilon is not positive in channel %lld",
                  a->in[4]->f[k], (long long)k);
    }
  }
  int node = emit(a, HAWQ_OP_BATCHNORM, 5, ins, x->rank, x->dims, x->batched, &st);
  if (node >= 0) a->im->g->nodes[node].attr.bn.epsilon = eps;
  return st;
}

static hawq_status scalar_input(const emit_args *a, int k, const char *what, float *out) {
  if (k >= a->n_in || !a->in[k]) return HAWQ_OK;
  hawq_status st = need_const(a, k, what, false);
  if (st) return st;
  if (a->in[k]->count != 1) return FAIL(HAWQ_ERR_PARSE, "input '%s' must be a scalar", what);
  *out = a->in[k]->f[0];
  return HAWQ_OK;
}

static hawq_status emit_unary(const emit_args *a, hawq_op op) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "X"))) return st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  hawq_clip_attr clip = {-FLT_MAX, FLT_MAX};
  float alpha = 0.01f;
  if (op == HAWQ_OP_CLIP) {
    if (a->c->opset < 11) {
      if ((st = attr_float(a->c, a->n, "min", -FLT_MAX, &clip.min, a->im->err)) ||
          (st = attr_float(a->c, a->n, "max", FLT_MAX, &clip.max, a->im->err))) {
        return st;
      }
    } else if ((st = scalar_input(a, 1, "min", &clip.min)) ||
               (st = scalar_input(a, 2, "max", &clip.max))) {
      return st;
    }
    if (isnan(clip.min) || isnan(clip.max)) return FAIL(HAWQ_ERR_PARSE, "min or max is NaN");
  } else if (op == HAWQ_OP_LEAKY_RELU) {
    if ((st = attr_float(a->c, a->n, "alpha", 0.01f, &alpha, a->im->err))) return st;
  }
  int ins[1] = {a->in[0]->tensor};
  int node = emit(a, op, 1, ins, x->rank, x->dims, x->batched, &st);
  if (node < 0) return st;
  if (op == HAWQ_OP_CLIP) a->im->g->nodes[node].attr.clip = clip;
  if (op == HAWQ_OP_LEAKY_RELU) a->im->g->nodes[node].attr.leaky.alpha = alpha;
  return st;
}

/* The logical shape of a tensor with the batch written as 1 (per sample). */
static void per_sample_dims(const hawq_tensor *t, int64_t *dims) {
  for (int k = 0; k < t->rank; k++) dims[k] = t->dims[k];
}

/* Before opset 7, Add/Sub/Mul/Div broadcast only with broadcast=1, aligning B with A from
 * `axis`. A constant B is reshaped so NumPy broadcasting means the same; *b_out owns it. */
static hawq_status legacy_broadcast(const emit_args *a, value *b_out) {
  int64_t broadcast, axis;
  hawq_status st;
  if ((st = attr_int(a->c, a->n, "broadcast", 0, &broadcast, a->im->err)) ||
      (st = attr_int(a->c, a->n, "axis", -1, &axis, a->im->err))) {
    return st;
  }
  if (!broadcast || !attr_find(a->n, "axis")) return HAWQ_OK; /* equal shapes, or suffix */
  const value *b = a->in[1];
  int ra = a->in[0]->kind == VALUE_RUNTIME ? T(a->im, a->in[0]->tensor)->rank : a->in[0]->rank;
  if (b->kind != VALUE_CONST) {
    return node_fail(a->c, a->im->err, HAWQ_ERR_UNSUPPORTED,
                     "legacy broadcast with 'axis' needs a constant second input");
  }
  if (axis < 0) axis += ra;
  int trailing = ra - (int)axis - b->rank;
  if (axis < 0 || trailing < 0) {
    return node_fail(a->c, a->im->err, HAWQ_ERR_PARSE,
                     "legacy broadcast axis %lld is out of "
                     "range",
                     (long long)axis);
  }
  int64_t dims[HAWQ_MAX_RANK];
  for (int k = 0; k < b->rank; k++) dims[k] = b->dims[k];
  for (int k = 0; k < trailing; k++) dims[b->rank + k] = 1;
  if (!value_copy(b_out, b)) return oom(a->im);
  b_out->rank = b->rank + trailing;
  memcpy(b_out->dims, dims, sizeof dims);
  a->in[1] = b_out;
  return HAWQ_OK;
}

static hawq_status emit_binary_impl(const emit_args *a, hawq_op op) {
  hawq_status st;
  int ins[2];
  int rank[2];
  int64_t dims[2][HAWQ_MAX_RANK];
  bool batched[2];
  for (int k = 0; k < 2; k++) {
    value *v = a->in[k];
    if (v->kind == VALUE_RUNTIME) {
      const hawq_tensor *t = T(a->im, v->tensor);
      rank[k] = t->rank;
      per_sample_dims(t, dims[k]);
      batched[k] = t->batched;
    } else {
      if (v->type != CONST_FLOAT) {
        return FAIL(HAWQ_ERR_UNSUPPORTED, "input '%s' is %s; hawq computes in float32",
                    a->in_names[k], onnx_dtype_name(v->onnx_dtype));
      }
      rank[k] = v->rank;
      memcpy(dims[k], v->dims, sizeof dims[k]);
      batched[k] = false;
    }
  }
  int r;
  int64_t out[HAWQ_MAX_RANK];
  if (!broadcast_shape(rank[0], dims[0], rank[1], dims[1], &r, out)) {
    return FAIL(HAWQ_ERR_PARSE, "input shapes of '%s' and '%s' do not broadcast", a->in_names[0],
                a->in_names[1]);
  }
  bool out_batched = batched[0] || batched[1];
  for (int k = 0; k < 2; k++) {
    /* The batch must stay dimension 0 of the result: a batched input has the full rank, and a
     * constant broadcast against it must have size 1 there. */
    if (out_batched && batched[k] && rank[k] != r) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "broadcasting moves the batch dimension of '%s'",
                  a->in_names[k]);
    }
    if (out_batched && !batched[k] && rank[k] == r && dims[k][0] != 1) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "constant '%s' has size %lld in the batch dimension",
                  a->in_names[k], (long long)dims[k][0]);
    }
  }
  for (int k = 0; k < 2; k++) {
    value *v = a->in[k];
    if (v->kind == VALUE_RUNTIME) {
      ins[k] = v->tensor;
      continue;
    }
    /* The constant, padded to the output rank, stored in that rank's physical layout. */
    int64_t pd[HAWQ_MAX_RANK];
    for (int d = 0; d < r; d++) pd[d] = d < r - v->rank ? 1 : v->dims[d - (r - v->rank)];
    if ((ins[k] = add_param(a->im, a->c, v, a->in_names[k], r, pd)) < 0) {
      return a->im->err->status;
    }
  }
  emit(a, op, 2, ins, r, out, out_batched, &st);
  return st;
}

static hawq_status emit_binary(const emit_args *a, hawq_op op) {
  if (a->n_in != 2 || !a->in[0] || !a->in[1]) return FAIL(HAWQ_ERR_PARSE, "needs 2 inputs");
  value legacy_b = {0};
  value *b = a->in[1];
  hawq_status st = a->c->opset < 7 ? legacy_broadcast(a, &legacy_b) : HAWQ_OK;
  if (!st) st = emit_binary_impl(a, op);
  a->in[1] = b;
  value_free(&legacy_b);
  return st;
}

static hawq_status emit_transpose_node(const emit_args *a, int x, const int *perm, int *out_t,
                                       const char *name);

static hawq_status emit_gemm(const emit_args *a, bool matmul) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "A"))) return st;
  if (a->n_in < 2 || !a->in[1]) return FAIL(HAWQ_ERR_PARSE, "missing input 1 (B)");
  if (a->in[1]->kind != VALUE_CONST) {
    return FAIL(HAWQ_ERR_UNSUPPORTED,
                "input 1 (B) is computed at run time; hawq supports %s "
                "with constant weights only",
                matmul ? "MatMul" : "Gemm");
  }
  if ((st = need_const(a, 1, "B", false)) || (st = need_const(a, 2, "C", true))) return st;
  int xt = a->in[0]->tensor;
  hawq_tensor x_local = *T(a->im, xt); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  const value *b = a->in[1];
  float alpha = 1, beta = 1;
  int64_t trans_a = 0, trans_b = 0;
  if (!matmul) {
    if ((st = attr_float(a->c, a->n, "alpha", 1, &alpha, a->im->err)) ||
        (st = attr_float(a->c, a->n, "beta", 1, &beta, a->im->err)) ||
        (st = attr_int(a->c, a->n, "transA", 0, &trans_a, a->im->err)) ||
        (st = attr_int(a->c, a->n, "transB", 0, &trans_b, a->im->err))) {
      return st;
    }
    if (x->rank != 2) return FAIL(HAWQ_ERR_PARSE, "input A has rank %d, expected 2", x->rank);
  } else if (x->rank < 2 || x->rank == 4) {
    return FAIL(HAWQ_ERR_UNSUPPORTED,
                "MatMul input A of rank %d; hawq supports rank 2, 3, 5 "
                "or 6 with a 2-D constant B",
                x->rank);
  }
  if (b->rank != 2) return FAIL(HAWQ_ERR_UNSUPPORTED, "B has rank %d, expected 2", b->rank);
  if (trans_a) {
    if (x->batched) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "transA on a batched input would move the batch");
    }
    int perm[2] = {1, 0};
    char name[512];
    snprintf(name, sizeof name, "%s/transposed_A", a->out_name);
    if ((st = emit_transpose_node(a, xt, perm, &xt, name))) return st;
    x_local = *T(a->im, xt);
  }
  int64_t k = x->dims[x->rank - 1];
  int64_t bk = trans_b ? b->dims[1] : b->dims[0], n_out = trans_b ? b->dims[0] : b->dims[1];
  if (bk != k) {
    return FAIL(HAWQ_ERR_PARSE, "A has %lld columns but B has %lld rows", (long long)k,
                (long long)bk);
  }
  /* W (n_out, k) = alpha * op(B)^T */
  value w;
  int64_t wd[2] = {n_out, k};
  if (!value_make_const(&w, CONST_FLOAT, 2, wd)) return oom(a->im);
  for (int64_t o = 0; o < n_out; o++) {
    for (int64_t j = 0; j < k; j++) {
      w.f[o * k + j] = alpha * (trans_b ? b->f[o * k + j] : b->f[j * n_out + o]);
    }
  }
  int wt = add_param(a->im, a->c, &w, a->in_names[1], 2, wd);
  value_free(&w);
  if (wt < 0) return a->im->err->status;

  const value *cv = a->n_in > 2 ? a->in[2] : NULL;
  int bt = -1;
  bool separate_bias = false;
  if (cv && cv->count > 0 && beta != 0) {
    bool vector = cv->count == 1 || (cv->count == n_out && cv->dims[cv->rank - 1] == n_out);
    if (vector) {
      value bias;
      if (!value_make_const(&bias, CONST_FLOAT, 1, &n_out)) return oom(a->im);
      for (int64_t o = 0; o < n_out; o++) bias.f[o] = beta * cv->f[cv->count == 1 ? 0 : o];
      bt = add_param(a->im, a->c, &bias, a->in_names[2], 1, &n_out);
      value_free(&bias);
      if (bt < 0) return a->im->err->status;
    } else {
      separate_bias = true;
    }
  }
  int64_t dims[HAWQ_MAX_RANK];
  per_sample_dims(x, dims);
  dims[x->rank - 1] = n_out;
  int ins[3] = {xt, wt, bt};
  if (!separate_bias) {
    emit(a, HAWQ_OP_GEMM, 3, ins, x->rank, dims, x->batched, &st);
    return st;
  }
  /* A matrix bias: Gemm into a temporary, then a broadcasting Add of beta*C. */
  char name[512];
  snprintf(name, sizeof name, "%s/no_bias", a->out_name);
  int tmp = add_activation(a->im, a->c, name, x->rank, dims, x->batched);
  if (tmp < 0 || add_node(a->im, a->c, HAWQ_OP_GEMM, 3, ins, tmp) < 0) return a->im->err->status;
  value scaled;
  if (!value_copy(&scaled, cv)) return oom(a->im);
  for (int64_t j = 0; j < scaled.count; j++) scaled.f[j] *= beta;
  value tv = runtime_value(tmp);
  value *pair[2] = {&tv, &scaled};
  const char *names[2] = {name, a->in_names[2]};
  emit_args b2 = *a;
  b2.in = pair;
  b2.n_in = 2;
  b2.in_names = names;
  st = emit_binary(&b2, HAWQ_OP_ADD);
  value_free(&scaled);
  return st;
}

/* Logical dims of a runtime reshape target, with the batch handled; see the file comment of
 * onnx_internal.h. */
static hawq_status resolve_runtime_reshape(const emit_args *a, const hawq_tensor *x,
                                           const hawq_sym *target, int nt, bool allowzero,
                                           int64_t *out) {
  if (!x->batched) {
    int64_t t[HAWQ_MAX_RANK];
    for (int k = 0; k < nt; k++) {
      if (target[k].n) return FAIL(HAWQ_ERR_INTERNAL, "batch-dependent shape on a fixed tensor");
      t[k] = target[k].c;
    }
    return resolve_reshape(a->c, hawq_tensor_numel(x), x->rank, x->dims, t, nt, allowzero, out,
                           a->im->err);
  }
  /* Batched: dimension 0 of the result must be exactly the batch N. */
  int64_t per = hawq_tensor_numel(x), known = 1;
  int infer = -1;
  bool dim0_is_n = false;
  for (int k = 0; k < nt; k++) {
    hawq_sym t = target[k];
    if (t.n == 0 && t.c == 0 && !allowzero) {
      if (k >= x->rank)
        return FAIL(HAWQ_ERR_PARSE, "shape entry %d is 0 but input has rank %d", k, x->rank);
      t = k == 0 ? (hawq_sym){0, 1} : (hawq_sym){x->dims[k], 0};
    }
    if (k == 0 && a->im->batch_one_is_n && t.n == 0 && t.c == 1) t = (hawq_sym){0, 1};
    if (t.n != 0) {
      if (k != 0 || t.n != 1 || t.c != 0) {
        return FAIL(HAWQ_ERR_UNSUPPORTED,
                    "shape entry %d mixes the batch into another "
                    "dimension; dimension 0 must stay the batch",
                    k);
      }
      dim0_is_n = true;
      out[0] = 1;
      continue;
    }
    if (t.c == -1) {
      if (infer >= 0) return FAIL(HAWQ_ERR_PARSE, "shape has more than one -1");
      infer = k;
      continue;
    }
    if (t.c < 0) return FAIL(HAWQ_ERR_PARSE, "shape entry %d is %lld", k, (long long)t.c);
    out[k] = t.c;
    if (t.c != 0 && known > HAWQ_MAX_TENSOR_ELEMENTS / t.c) {
      return FAIL(HAWQ_ERR_PARSE, "shape has more than 2^32 elements");
    }
    known *= t.c;
  }
  if (!dim0_is_n && infer != 0) {
    return FAIL(HAWQ_ERR_UNSUPPORTED,
                "the target shape does not keep the batch as dimension 0 "
                "(export with a dynamic batch, e.g. x.view(x.size(0), -1) or torch.flatten(x, 1))");
  }
  if (infer == 0) out[0] = 1; /* -1 in dim 0: the batch, if the rest holds one sample */
  int64_t need = per;
  if (infer > 0) {
    if (known == 0 || need % known) {
      return FAIL(HAWQ_ERR_PARSE,
                  "cannot infer the -1 entry: %lld elements per sample into "
                  "blocks of %lld",
                  (long long)need, (long long)known);
    }
    out[infer] = need / known;
  } else if (known != need) {
    return FAIL(HAWQ_ERR_PARSE, "the target shape holds %lld elements per sample, the input %lld",
                (long long)known, (long long)need);
  }
  return HAWQ_OK;
}

static hawq_status emit_reshape_to(const emit_args *a, int rank, const int64_t *dims) {
  hawq_status st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  int ins[1] = {a->in[0]->tensor};
  emit(a, HAWQ_OP_RESHAPE, 1, ins, rank, dims, x->batched, &st);
  return st;
}

static hawq_status emit_reshape(const emit_args *a) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "data"))) return st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  const char *op = a->c->op_type;
  int64_t dims[HAWQ_MAX_RANK];
  int r;
  if (!strcmp(op, "Reshape") && a->c->opset < 5) {
    int64_t target[HAWQ_MAX_RANK];
    hawq_sym sym[HAWQ_MAX_RANK];
    if ((st = attr_ints(a->c, a->n, "shape", HAWQ_MAX_RANK, target, &r, a->im->err))) return st;
    if (r < 0) return FAIL(HAWQ_ERR_PARSE, "missing attribute 'shape'");
    for (int k = 0; k < r; k++) sym[k] = (hawq_sym){target[k], 0};
    if ((st = resolve_runtime_reshape(a, x, sym, r, false, dims))) return st;
  } else if (!strcmp(op, "Reshape")) {
    if (a->n_in < 2 || !a->in[1] || a->in[1]->kind != VALUE_CONST || a->in[1]->type != CONST_INT) {
      return FAIL(HAWQ_ERR_UNSUPPORTED,
                  "the shape input must be constant (or computed from "
                  "shapes); it is computed from data at run time");
    }
    if (a->in[1]->rank != 1 || a->in[1]->count > HAWQ_MAX_RANK) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "the shape input has %lld entries, at most %d",
                  (long long)a->in[1]->count, HAWQ_MAX_RANK);
    }
    int64_t allowzero;
    if ((st = attr_int(a->c, a->n, "allowzero", 0, &allowzero, a->im->err))) return st;
    r = (int)a->in[1]->count;
    if ((st = resolve_runtime_reshape(a, x, a->in[1]->i, r, allowzero != 0, dims))) return st;
  } else if (!strcmp(op, "Flatten")) {
    int64_t axis;
    if ((st = attr_int(a->c, a->n, "axis", 1, &axis, a->im->err))) return st;
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis > x->rank) return FAIL(HAWQ_ERR_PARSE, "axis is out of range");
    dims[0] = dims[1] = 1;
    for (int k = 0; k < x->rank; k++) dims[k < axis ? 0 : 1] *= x->dims[k];
    if (x->batched && axis == 0) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "axis 0 flattens the batch into the features");
    }
    if (x->batched && dims[0] != 1) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "axis %lld folds feature dimensions into the batch",
                  (long long)axis);
    }
    r = 2;
  } else {
    int64_t axes[HAWQ_MAX_RANK];
    int na;
    if ((st = read_axes(a->c, a->n, a->in, a->n_in, axes, &na, a->im->err))) return st;
    if (op[0] == 'U') {
      if (na < 0) return FAIL(HAWQ_ERR_PARSE, "missing axes");
      if ((st = fold_unsqueeze_shape(a->c, x->rank, x->dims, axes, na, &r, dims, a->im->err))) {
        return st;
      }
      if (x->batched) {
        for (int k = 0; k < na; k++) {
          if (axes[k] == 0 || axes[k] == -r) {
            return FAIL(HAWQ_ERR_UNSUPPORTED, "a new axis 0 would move the batch");
          }
        }
      }
    } else if ((st = fold_squeeze_shape(a->c, x->rank, x->dims, axes, na, x->batched, &r, dims,
                                        a->im->err))) {
      return st;
    }
  }
  return emit_reshape_to(a, r, dims);
}

static hawq_status emit_transpose_node(const emit_args *a, int x, const int *perm, int *out_t,
                                       const char *name) {
  hawq_tensor t_local = *T(a->im, x); /* a copy: adding tensors moves the array */
  const hawq_tensor *t = &t_local;
  int64_t dims[HAWQ_MAX_RANK];
  for (int k = 0; k < t->rank; k++) dims[k] = t->dims[perm[k]];
  if (t->batched && perm[0] != 0) {
    return FAIL(HAWQ_ERR_UNSUPPORTED, "the permutation moves the batch (axis 0)");
  }
  int out = add_activation(a->im, a->c, name, t->rank, dims, T(a->im, x)->batched);
  if (out < 0) return a->im->err->status;
  int node = add_node(a->im, a->c, HAWQ_OP_TRANSPOSE, 1, &x, out);
  if (node < 0) return a->im->err->status;
  for (int k = 0; k < HAWQ_MAX_RANK; k++) a->im->g->nodes[node].attr.transpose.perm[k] = k;
  for (int k = 0; k < t->rank; k++) a->im->g->nodes[node].attr.transpose.perm[k] = perm[k];
  *out_t = out;
  return HAWQ_OK;
}

static hawq_status emit_transpose(const emit_args *a) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "data"))) return st;
  int perm[HAWQ_MAX_RANK], out;
  if ((st = read_perm(a->c, a->n, T(a->im, a->in[0]->tensor)->rank, perm, a->im->err)) ||
      (st = emit_transpose_node(a, a->in[0]->tensor, perm, &out, a->out_name))) {
    return st;
  }
  value v = runtime_value(out);
  return env_bind(a->im, a->out_name, &v, NULL);
}

static hawq_status emit_concat(const emit_args *a) {
  hawq_status st;
  int64_t axis;
  if ((st = attr_int(a->c, a->n, "axis", a->c->opset < 4 ? 1 : 0, &axis, a->im->err))) return st;
  if (a->n_in < 1) return FAIL(HAWQ_ERR_PARSE, "no inputs");
  if (a->n_in > HAWQ_MAX_CONCAT_INPUTS) {
    return FAIL(HAWQ_ERR_UNSUPPORTED, "%d inputs, at most %d", a->n_in, HAWQ_MAX_CONCAT_INPUTS);
  }
  int *ins = malloc((size_t)a->n_in * sizeof *ins);
  if (!ins) return oom(a->im);
  int rank = -1;
  bool batched = false;
  int64_t dims[HAWQ_MAX_RANK];
  for (int k = 0; k < a->n_in; k++) {
    value *v = a->in[k];
    if (!v) {
      free(ins);
      return FAIL(HAWQ_ERR_PARSE, "input %d is empty", k);
    }
    if (v->kind == VALUE_RUNTIME) {
      ins[k] = v->tensor;
      batched |= T(a->im, v->tensor)->batched;
    } else {
      int64_t cd[HAWQ_MAX_RANK];
      memcpy(cd, v->dims, sizeof cd);
      if ((ins[k] = add_param(a->im, a->c, v, a->in_names[k], v->rank, cd)) < 0) {
        free(ins);
        return a->im->err->status;
      }
    }
  }
  for (int k = 0; k < a->n_in; k++) {
    const hawq_tensor *t = T(a->im, ins[k]);
    if (batched && !t->batched) {
      free(ins);
      return FAIL(HAWQ_ERR_UNSUPPORTED, "input '%s' is a constant joined to batched tensors",
                  a->in_names[k]);
    }
    if (k == 0) {
      rank = t->rank;
      int64_t given = axis;
      if (axis < 0) axis += rank;
      if (axis < 0 || axis >= rank) {
        free(ins);
        return FAIL(HAWQ_ERR_PARSE, "axis %lld is out of range for rank %d", (long long)given,
                    rank);
      }
      if (batched && axis == 0) {
        free(ins);
        return FAIL(HAWQ_ERR_UNSUPPORTED, "concatenating along axis 0, the batch");
      }
      per_sample_dims(t, dims);
      dims[axis] = 0;
    }
    if (t->rank != rank) {
      free(ins);
      return FAIL(HAWQ_ERR_PARSE, "input '%s' has rank %d, input 0 has %d", a->in_names[k], t->rank,
                  rank);
    }
    for (int d = 0; d < rank; d++) {
      int64_t want = T(a->im, ins[0])->dims[d];
      if (d != axis && t->dims[d] != want) {
        free(ins);
        return FAIL(HAWQ_ERR_PARSE, "input '%s' has size %lld on axis %d, input 0 has %lld",
                    a->in_names[k], (long long)t->dims[d], d, (long long)want);
      }
    }
    dims[axis] += t->dims[axis];
  }
  int node = emit(a, HAWQ_OP_CONCAT, a->n_in, ins, rank, dims, batched, &st);
  free(ins);
  if (node >= 0) a->im->g->nodes[node].attr.concat.axis = (int)axis;
  return st;
}

static hawq_status emit_pad(const emit_args *a) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "data"))) return st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  char mode[32];
  if ((st = attr_string(a->c, a->n, "mode", "constant", mode, sizeof mode, a->im->err))) return st;
  if (strcmp(mode, "constant")) {
    return FAIL(HAWQ_ERR_UNSUPPORTED, "mode '%s' is not supported (only 'constant')", mode);
  }
  hawq_pad_attr at;
  memset(&at, 0, sizeof at);
  int64_t pads[2 * HAWQ_MAX_RANK];
  int np;
  if (a->c->opset < 11) {
    const char *pads_name = a->c->opset < 2 ? "paddings" : "pads";
    if ((st = attr_ints(a->c, a->n, pads_name, 2 * HAWQ_MAX_RANK, pads, &np, a->im->err)) ||
        (st = attr_float(a->c, a->n, "value", 0, &at.value, a->im->err))) {
      return st;
    }
  } else {
    if (a->n_in < 2 || !a->in[1]) return FAIL(HAWQ_ERR_PARSE, "missing input 'pads'");
    if ((st = const_ints(a->c, a->in[1], "input 'pads'", 2 * HAWQ_MAX_RANK, pads, &np,
                         a->im->err)) ||
        (st = scalar_input(a, 2, "constant_value", &at.value))) {
      return st;
    }
    if (a->n_in > 3 && a->in[3]) return FAIL(HAWQ_ERR_UNSUPPORTED, "input 'axes' is not supported");
  }
  if (np != 2 * x->rank) {
    return FAIL(HAWQ_ERR_PARSE, "pads has %d entries, expected %d", np, 2 * x->rank);
  }
  int64_t dims[HAWQ_MAX_RANK];
  per_sample_dims(x, dims);
  for (int d = 0; d < x->rank; d++) {
    if (x->batched && d == 0 && (pads[0] || pads[x->rank])) {
      return FAIL(HAWQ_ERR_UNSUPPORTED, "padding the batch dimension");
    }
    const int64_t limit = 1 << 20;
    for (int side = 0; side < 2; side++) {
      int64_t v = pads[d + side * x->rank];
      if (v < -limit || v > limit) {
        return FAIL(HAWQ_ERR_PARSE, "pad %lld on axis %d is too large (limit +-%lld)", (long long)v,
                    d, (long long)limit);
      }
    }
    dims[d] += pads[d] + pads[d + x->rank];
    at.pads[d] = pads[d];
    at.pads[HAWQ_MAX_RANK + d] = pads[d + x->rank];
  }
  int ins[1] = {a->in[0]->tensor};
  int node = emit(a, HAWQ_OP_PAD, 1, ins, x->rank, dims, x->batched, &st);
  if (node >= 0) a->im->g->nodes[node].attr.pad = at;
  return st;
}

static hawq_status emit_softmax(const emit_args *a) {
  hawq_status st;
  if ((st = need_runtime(a, 0, "input"))) return st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  int64_t axis;
  if ((st = attr_int(a->c, a->n, "axis", a->c->opset < 13 ? 1 : -1, &axis, a->im->err))) return st;
  int64_t given = axis;
  if (axis < 0) axis += x->rank;
  if (axis < 0 || axis >= x->rank) {
    return FAIL(HAWQ_ERR_PARSE, "axis %lld is out of range for rank %d", (long long)given, x->rank);
  }
  hawq_softmax_attr at = {(int)axis, a->c->opset < 13 ? x->rank : (int)axis + 1};
  if (x->batched && axis == 0) {
    return FAIL(HAWQ_ERR_UNSUPPORTED, "softmax over the batch dimension");
  }
  /* The engine needs the reduced logical axes to be contiguous in physical memory too. */
  if (x->rank == 4 && at.axis_end - at.axis > 1 && at.axis != 1) {
    return FAIL(HAWQ_ERR_UNSUPPORTED, "softmax over axes %d..3 of a 4-D tensor (stored NHWC)",
                at.axis);
  }
  int ins[1] = {a->in[0]->tensor};
  int node = emit(a, HAWQ_OP_SOFTMAX, 1, ins, x->rank, x->dims, x->batched, &st);
  if (node >= 0) a->im->g->nodes[node].attr.softmax = at;
  return st;
}

/* Shape of a runtime tensor: a constant, with the batch symbolic. */
static hawq_status emit_shape(const emit_args *a) {
  hawq_status st = need_runtime(a, 0, "data");
  if (st) return st;
  hawq_tensor x_local = *T(a->im, a->in[0]->tensor); /* a copy: adding tensors moves the array */
  const hawq_tensor *x = &x_local;
  int64_t start, end;
  if ((st = attr_int(a->c, a->n, "start", 0, &start, a->im->err)) ||
      (st = attr_int(a->c, a->n, "end", x->rank, &end, a->im->err))) {
    return st;
  }
  if (start < 0) start += x->rank;
  if (end < 0) end += x->rank;
  start = start < 0 ? 0 : start > x->rank ? x->rank : start;
  end = end < start ? start : end > x->rank ? x->rank : end;
  int64_t len = end - start;
  value v;
  if (!value_make_const(&v, CONST_INT, 1, &len)) return oom(a->im);
  for (int64_t k = 0; k < len; k++) {
    int64_t d = start + k;
    v.i[k] = (d == 0 && x->batched) ? (hawq_sym){0, 1} : (hawq_sym){x->dims[d], 0};
  }
  return env_bind(a->im, a->out_name, &v, NULL);
}

/* Identity-like ops on runtime values: the output is another name for the input. */
static hawq_status emit_alias(const emit_args *a) {
  hawq_status st = need_runtime(a, 0, "input");
  if (st) return st;
  value v = *a->in[0]; /* a runtime value owns no data: a plain copy is safe */
  return env_bind(a->im, a->out_name, &v, NULL);
}

#undef FAIL

/* ------------------------------------------------------------------------------------------ */
/* Nodes                                                                                      */

typedef hawq_status (*emitter)(const emit_args *a);

static hawq_status emit_relu(const emit_args *a) {
  return emit_unary(a, HAWQ_OP_RELU);
}
static hawq_status emit_clip(const emit_args *a) {
  return emit_unary(a, HAWQ_OP_CLIP);
}
static hawq_status emit_leaky(const emit_args *a) {
  return emit_unary(a, HAWQ_OP_LEAKY_RELU);
}
static hawq_status emit_add(const emit_args *a) {
  return emit_binary(a, HAWQ_OP_ADD);
}
static hawq_status emit_sub(const emit_args *a) {
  return emit_binary(a, HAWQ_OP_SUB);
}
static hawq_status emit_mul(const emit_args *a) {
  return emit_binary(a, HAWQ_OP_MUL);
}
static hawq_status emit_div(const emit_args *a) {
  return emit_binary(a, HAWQ_OP_DIV);
}
static hawq_status emit_maxpool(const emit_args *a) {
  return emit_pool(a, true);
}
static hawq_status emit_avgpool(const emit_args *a) {
  return emit_pool(a, false);
}
static hawq_status emit_gap(const emit_args *a) {
  return emit_global_pool(a, HAWQ_OP_GLOBAL_AVGPOOL);
}
static hawq_status emit_gmp(const emit_args *a) {
  return emit_global_pool(a, HAWQ_OP_GLOBAL_MAXPOOL);
}
static hawq_status emit_gemm_op(const emit_args *a) {
  return emit_gemm(a, false);
}
static hawq_status emit_matmul(const emit_args *a) {
  return emit_gemm(a, true);
}
static hawq_status emit_cast(const emit_args *a) {
  int64_t to;
  hawq_status st = need_runtime(a, 0, "input");
  if (!st) st = attr_int(a->c, a->n, "to", 0, &to, a->im->err);
  if (st) return st;
  if (to != ONNX_FLOAT) {
    return node_fail(a->c, a->im->err, HAWQ_ERR_UNSUPPORTED,
                     "cast of a run-time tensor to %s (hawq computes in float32)",
                     onnx_dtype_name((int)to));
  }
  return emit_alias(a);
}

static const struct {
  const char *op;
  emitter fn;
} runtime_ops[] = {
    {"Conv", emit_conv},
    {"BatchNormalization", emit_batchnorm},
    {"Relu", emit_relu},
    {"Clip", emit_clip},
    {"LeakyRelu", emit_leaky},
    {"Add", emit_add},
    {"Sub", emit_sub},
    {"Mul", emit_mul},
    {"Div", emit_div},
    {"MaxPool", emit_maxpool},
    {"AveragePool", emit_avgpool},
    {"GlobalAveragePool", emit_gap},
    {"GlobalMaxPool", emit_gmp},
    {"Gemm", emit_gemm_op},
    {"MatMul", emit_matmul},
    {"Reshape", emit_reshape},
    {"Flatten", emit_reshape},
    {"Squeeze", emit_reshape},
    {"Unsqueeze", emit_reshape},
    {"Transpose", emit_transpose},
    {"Concat", emit_concat},
    {"Pad", emit_pad},
    {"Softmax", emit_softmax},
    {"Shape", emit_shape},
    {"Identity", emit_alias},
    {"Dropout", emit_alias},
    {"Cast", emit_cast},
};

/* Ops whose outputs after the first hawq does not produce; using one is an error. */
static hawq_status bind_extra_outputs(importer *im, const node_ctx *c, const Onnx__NodeProto *n) {
  for (size_t k = 1; k < n->n_output; k++) {
    const char *name = S(n->output[k]);
    if (!*name) continue;
    char why[400];
    snprintf(why, sizeof why, "output %zu of node '%s' (%s), which hawq does not compute", k,
             c->node_name, c->op_type);
    value v = {0};
    hawq_status st = env_bind(im, name, &v, why);
    if (st) return st;
  }
  return HAWQ_OK;
}

static hawq_status import_constant(importer *im, const node_ctx *c, const Onnx__NodeProto *n,
                                   value *out) {
  if (n->n_attribute != 1) {
    return node_fail(c, im->err, HAWQ_ERR_PARSE, "expected exactly one value attribute");
  }
  const Onnx__AttributeProto *at = n->attribute[0];
  const char *name = S(at->name);
  if (!strcmp(name, "value")) {
    if (!at->t) return node_fail(c, im->err, HAWQ_ERR_PARSE, "attribute 'value' has no tensor");
    char what[1024];
    snprintf(what, sizeof what, "%s: node '%s' (Constant) attribute 'value'", im->file,
             c->node_name);
    return tensor_to_value(at->t, im->base_dir, what, out, im->err);
  }
  int64_t one = 1, count;
  if (!strcmp(name, "value_float") || !strcmp(name, "value_int")) {
    bool f = name[6] == 'f';
    if (!value_make_const(out, f ? CONST_FLOAT : CONST_INT, 0, &one)) return oom(im);
    if (f)
      out->f[0] = at->f;
    else
      out->i[0] = (hawq_sym){at->i, 0};
    return HAWQ_OK;
  }
  if (!strcmp(name, "value_floats") || !strcmp(name, "value_ints")) {
    bool f = name[6] == 'f';
    count = (int64_t)(f ? at->n_floats : at->n_ints);
    if (!value_make_const(out, f ? CONST_FLOAT : CONST_INT, 1, &count)) return oom(im);
    for (int64_t k = 0; k < count; k++) {
      if (f)
        out->f[k] = at->floats[k];
      else
        out->i[k] = (hawq_sym){at->ints[k], 0};
    }
    return HAWQ_OK;
  }
  return node_fail(c, im->err, HAWQ_ERR_UNSUPPORTED, "attribute '%s' is not supported", name);
}

static hawq_status import_node(importer *im, const Onnx__NodeProto *n, int index) {
  char display[300];
  const char *op = S(n->op_type);
  if (n->name && *n->name) {
    snprintf(display, sizeof display, "%s", n->name);
  } else {
    snprintf(display, sizeof display, "%s_%d", op, index);
  }
  node_ctx c = {im->file, display, op, im->opset};
  const char *domain = S(n->domain);
  if (*domain && strcmp(domain, "ai.onnx")) {
    return node_fail(&c, im->err, HAWQ_ERR_UNSUPPORTED, "domain '%s' is not supported", domain);
  }
  if (n->n_output < 1 || !n->output[0] || !*n->output[0]) {
    return node_fail(&c, im->err, HAWQ_ERR_PARSE, "node has no output");
  }

  /* Inputs: "" is an absent optional input. */
  int n_in = (int)n->n_input;
  value **in = calloc((size_t)(n_in ? n_in : 1), sizeof *in);
  const char **names = calloc((size_t)(n_in ? n_in : 1), sizeof *names);
  if (!in || !names) {
    free(in);
    free(names);
    return oom(im);
  }
  hawq_status st = HAWQ_OK;
  bool all_const = true;
  for (int k = 0; k < n_in; k++) {
    names[k] = S(n->input[k]);
    if (!*names[k]) continue;
    int v = env_lookup(im, names[k]);
    if (v < 0) {
      st = node_fail(&c, im->err, HAWQ_ERR_PARSE,
                     "input '%s' is not defined before this node (is the graph sorted?)", names[k]);
      goto done;
    }
    if (im->unavailable[v]) {
      st = node_fail(&c, im->err, HAWQ_ERR_UNSUPPORTED, "input '%s' is %s", names[k],
                     im->unavailable[v]);
      goto done;
    }
    in[k] = &im->values[v];
    if (in[k]->kind != VALUE_CONST) all_const = false;
  }

  value out = {0};
  const char *out_name = n->output[0];
  if (!strcmp(op, "Constant")) {
    if ((st = import_constant(im, &c, n, &out))) goto done;
    st = env_bind(im, out_name, &out, NULL);
    goto done;
  }
  if (all_const && n_in > 0) {
    bool handled = false;
    if ((st = fold_node(&c, n, in, n_in, &out, &handled, im->err))) goto done;
    if (handled) {
      if ((st = env_bind(im, out_name, &out, NULL))) goto done;
      st = bind_extra_outputs(im, &c, n);
      goto done;
    }
  }
  for (size_t k = 0; k < sizeof runtime_ops / sizeof runtime_ops[0]; k++) {
    if (strcmp(op, runtime_ops[k].op)) continue;
    if (n_in == 0) {
      st = node_fail(&c, im->err, HAWQ_ERR_PARSE, "%s needs at least one input", op);
      goto done;
    }
    if (all_const) {
      st = node_fail(&c, im->err, HAWQ_ERR_UNSUPPORTED,
                     "all inputs are constant; hawq does not fold %s", op);
      goto done;
    }
    emit_args a = {im, &c, n, in, n_in, out_name, names};
    if ((st = runtime_ops[k].fn(&a))) goto done;
    st = bind_extra_outputs(im, &c, n);
    goto done;
  }
  st = node_fail(&c, im->err, HAWQ_ERR_UNSUPPORTED,
                 "op '%s' is not supported (hawq imports CNN ops: Conv, BatchNormalization, Relu, "
                 "Clip, LeakyRelu, Add/Sub/Mul/Div, MaxPool, AveragePool, Global*Pool, Gemm, "
                 "MatMul, Flatten, Reshape, Concat, Pad, Softmax, and shape subgraphs)",
                 op);
done:
  free(in);
  free(names);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Model-level                                                                                */

static hawq_status import_input(importer *im, const Onnx__ValueInfoProto *vi, bool *is_first) {
  const char *name = S(vi->name);
  if (!*name) return hawq_fail(im->err, HAWQ_ERR_PARSE, "%s: a graph input has no name", im->file);
  if (env_lookup(im, name) >= 0) return HAWQ_OK; /* an initializer listed as input (IR < 4) */
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED, "%s: graph input '%s' is not a tensor",
                     im->file, name);
  }
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  if (tt->elem_type != ONNX_FLOAT) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED, "%s: graph input '%s' is %s, expected float32",
                     im->file, name, onnx_dtype_name(tt->elem_type));
  }
  if (!tt->shape) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED, "%s: graph input '%s' has no shape", im->file,
                     name);
  }
  size_t rank = tt->shape->n_dim;
  if (rank > HAWQ_MAX_RANK || (rank == 0 && !im->fixed_shapes)) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED,
                     "%s: graph input '%s' has rank %zu, expected 1 to %d", im->file, name, rank,
                     HAWQ_MAX_RANK);
  }
  int64_t dims[HAWQ_MAX_RANK];
  for (size_t k = 0; k < rank; k++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
    bool known = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    if (k == 0 && !im->fixed_shapes) {
      dims[0] = 1;
      if (*is_first && known && d->dim_value == 1) im->batch_one_is_n = true;
      continue;
    }
    if (!known) {
      return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED,
                       "%s: graph input '%s' dimension %zu is symbolic ('%s'); hawq needs fixed "
                       "sizes%s (re-export with a fixed input size)",
                       im->file, name, k,
                       d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                           ? S(d->dim_param)
                           : "unset",
                       im->fixed_shapes ? "" : " except the batch");
    }
    if (d->dim_value < 1) {
      return hawq_fail(im->err, HAWQ_ERR_PARSE, "%s: graph input '%s' dimension %zu is %lld",
                       im->file, name, k, (long long)d->dim_value);
    }
    dims[k] = d->dim_value;
  }
  if (shape_numel((int)rank, dims) < 0) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED,
                     "%s: graph input '%s' has more than 2^32 elements per sample", im->file, name);
  }
  int t = add_named_tensor(im, name, HAWQ_TENSOR_INPUT, (int)rank, dims, !im->fixed_shapes);
  if (t < 0) return im->err->status;
  int *ins = realloc(im->g->inputs, (size_t)(im->g->n_inputs + 1) * sizeof *ins);
  if (!ins) return oom(im);
  im->g->inputs = ins;
  ins[im->g->n_inputs++] = t;
  *is_first = false;
  value v = runtime_value(t);
  return env_bind(im, name, &v, NULL);
}

static hawq_status import_bound_input(importer *im, const struct hawq_bound_input *b) {
  value v;
  int64_t dims[HAWQ_MAX_RANK];
  if (b->rank < 0 || b->rank > HAWQ_MAX_RANK) {
    return hawq_fail(im->err, HAWQ_ERR_INVALID_ARG, "bound input '%s': rank %d", b->name, b->rank);
  }
  for (int k = 0; k < b->rank; k++) dims[k] = b->dims[k];
  if (shape_numel(b->rank, dims) < 0) {
    return hawq_fail(im->err, HAWQ_ERR_INVALID_ARG,
                     "bound input '%s': a dimension is negative "
                     "or the shape has more than 2^32 elements",
                     b->name);
  }
  bool f = b->onnx_dtype == ONNX_FLOAT;
  if (!f && b->onnx_dtype != ONNX_INT64) {
    return hawq_fail(im->err, HAWQ_ERR_INVALID_ARG, "bound input '%s': dtype %d", b->name,
                     b->onnx_dtype);
  }
  if (!value_make_const(&v, f ? CONST_FLOAT : CONST_INT, b->rank, dims)) return oom(im);
  for (int64_t k = 0; k < v.count; k++) {
    if (f)
      v.f[k] = ((const float *)b->data)[k];
    else
      v.i[k] = (hawq_sym){((const int64_t *)b->data)[k], 0};
  }
  return env_bind(im, b->name, &v, NULL);
}

static hawq_status import_metadata(importer *im, const Onnx__ModelProto *m) {
  hawq_graph *g = im->g;
  g->preprocess = hawq_preprocess_default();
  int n_mean = 0, n_std = 0;
  float mean[HAWQ_MAX_CHANNELS], stdv[HAWQ_MAX_CHANNELS];
  for (size_t k = 0; k < m->n_metadata_props; k++) {
    const char *key = S(m->metadata_props[k]->key), *val = S(m->metadata_props[k]->value);
    if (g->n_meta < HAWQ_MAX_METADATA) {
      g->meta_key[g->n_meta] = strdup(key);
      g->meta_value[g->n_meta] = strdup(val);
      if (!g->meta_key[g->n_meta] || !g->meta_value[g->n_meta]) {
        free(g->meta_key[g->n_meta]);
        free(g->meta_value[g->n_meta]);
        return oom(im);
      }
      g->n_meta++;
    }
    char what[300];
    snprintf(what, sizeof what, "%s: metadata '%s'", im->file, key);
    hawq_status st = HAWQ_OK;
    int n1;
    if (!strcmp(key, HAWQ_META_PIXEL_SCALE)) {
      st = hawq_parse_float_list(val, what, true, &g->preprocess.pixel_scale, 1, &n1, im->err);
      g->preprocess.has_metadata = true;
    } else if (!strcmp(key, HAWQ_META_MEAN)) {
      st = hawq_parse_float_list(val, what, false, mean, HAWQ_MAX_CHANNELS, &n_mean, im->err);
    } else if (!strcmp(key, HAWQ_META_STD)) {
      st = hawq_parse_float_list(val, what, true, stdv, HAWQ_MAX_CHANNELS, &n_std, im->err);
    }
    if (st) {
      im->err->status = HAWQ_ERR_PARSE; /* a bad value in the file, not a bad argument */
      return HAWQ_ERR_PARSE;
    }
  }
  if (n_mean || n_std) {
    char what[300];
    snprintf(what, sizeof what, "%s: metadata", im->file);
    if (hawq_preprocess_set_mean_std(&g->preprocess, mean, n_mean, stdv, n_std, what, im->err)) {
      im->err->status = HAWQ_ERR_PARSE; /* a bad value in the file, not a bad argument */
      return HAWQ_ERR_PARSE;
    }
    g->preprocess.has_metadata = true;
  }
  return HAWQ_OK;
}

static hawq_status import_model(importer *im, const Onnx__ModelProto *m,
                                const hawq_import_options *opt) {
  hawq_status st;
  im->opset = -1;
  for (size_t k = 0; k < m->n_opset_import; k++) {
    const char *domain = S(m->opset_import[k]->domain);
    if (!*domain || !strcmp(domain, "ai.onnx")) im->opset = m->opset_import[k]->version;
  }
  if (im->opset < 0) {
    if (m->n_opset_import == 0 && m->has_ir_version && m->ir_version <= 2) {
      im->opset = 1;
    } else {
      return hawq_fail(im->err, HAWQ_ERR_PARSE, "%s: no opset_import for the default ONNX domain",
                       im->file);
    }
  }
  if (im->opset < HAWQ_MIN_OPSET || im->opset > HAWQ_MAX_OPSET) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED,
                     "%s: opset %lld is not supported (hawq reads "
                     "opsets %d to %d)",
                     im->file, (long long)im->opset, HAWQ_MIN_OPSET, HAWQ_MAX_OPSET);
  }
  im->g->opset = im->opset;
  const Onnx__GraphProto *gr = m->graph;
  if (!gr) return hawq_fail(im->err, HAWQ_ERR_PARSE, "%s: the model has no graph", im->file);
  if (m->producer_name) {
    char prod[256];
    snprintf(prod, sizeof prod, "%s %s", m->producer_name, S(m->producer_version));
    if (!(im->g->producer_name = strdup(prod))) return oom(im);
  }
  if ((st = import_metadata(im, m))) return st;
  if (gr->n_sparse_initializer) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED, "%s: sparse initializers are not supported",
                     im->file);
  }
  for (size_t k = 0; k < gr->n_initializer; k++) {
    const Onnx__TensorProto *t = gr->initializer[k];
    char what[300];
    snprintf(what, sizeof what, "%s: initializer '%s'", im->file, S(t->name));
    if (!t->name || !*t->name) return hawq_fail(im->err, HAWQ_ERR_PARSE, "%s has no name", what);
    value v;
    if ((st = tensor_to_value(t, im->base_dir, what, &v, im->err))) return st;
    if ((st = env_bind(im, t->name, &v, NULL))) return st;
  }
  for (size_t k = 0; opt && k < opt->n_bound; k++) {
    if ((st = import_bound_input(im, &opt->bound[k]))) return st;
  }
  bool first = true;
  for (size_t k = 0; k < gr->n_input; k++) {
    if ((st = import_input(im, gr->input[k], &first))) return st;
  }
  if (im->g->n_inputs == 0) {
    return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED, "%s: the graph has no run-time input",
                     im->file);
  }
  for (size_t k = 0; k < gr->n_node; k++) {
    if ((st = import_node(im, gr->node[k], (int)k))) return st;
  }
  if (gr->n_output == 0)
    return hawq_fail(im->err, HAWQ_ERR_PARSE, "%s: the graph has no output", im->file);
  im->g->outputs = calloc(gr->n_output, sizeof(int));
  if (!im->g->outputs) return oom(im);
  for (size_t k = 0; k < gr->n_output; k++) {
    const char *name = S(gr->output[k]->name);
    int v = env_lookup(im, name);
    if (v < 0 || im->unavailable[v]) {
      return hawq_fail(im->err, v < 0 ? HAWQ_ERR_PARSE : HAWQ_ERR_UNSUPPORTED,
                       "%s: graph output '%s' is %s", im->file, name,
                       v < 0 ? "not produced by any node" : im->unavailable[v]);
    }
    if (im->values[v].kind != VALUE_RUNTIME) {
      return hawq_fail(im->err, HAWQ_ERR_UNSUPPORTED,
                       "%s: graph output '%s' is a constant, not computed from the input", im->file,
                       name);
    }
    int t = im->values[v].tensor;
    bool repeated = false;
    for (int j = 0; j < im->g->n_outputs; j++) repeated |= im->g->outputs[j] == t;
    if (im->g->tensors[t].kind == HAWQ_TENSOR_INPUT || repeated) {
      /* An output that is an input (Identity, Dropout) or another output gets its own copy. */
      const hawq_tensor *src = &im->g->tensors[t];
      node_ctx c = {im->file, name, "Identity", im->opset};
      char copy_name[512];
      snprintf(copy_name, sizeof copy_name, "%s/copy", name);
      int64_t dims[HAWQ_MAX_RANK];
      memcpy(dims, src->dims, sizeof dims);
      int copy = add_activation(im, &c, copy_name, src->rank, dims, src->batched);
      if (copy < 0 || add_node(im, &c, HAWQ_OP_RESHAPE, 1, &t, copy) < 0) return im->err->status;
      t = copy;
    }
    im->g->outputs[im->g->n_outputs++] = t;
  }
  return HAWQ_OK;
}

static hawq_status load_buffer(const void *data, size_t size, const char *name,
                               const char *base_dir, const hawq_import_options *opt,
                               hawq_graph **out, hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  hawq_error_clear(err);
  *out = NULL;
  if (!name) name = "<buffer>";
  if (size == 0)
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: empty file, expected an ONNX model", name);
  if (size > HAWQ_MAX_MODEL_BYTES) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: %zu bytes is over protobuf's 2 GiB limit; "
                     "save the weights as ONNX external data",
                     name, size);
  }
  if (!onnx_nesting_within(data, size, HAWQ_MAX_ONNX_NESTING)) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: messages nested more than %d deep (graphs in "
                     "attributes, or types); hawq imports flat CNN graphs",
                     name, HAWQ_MAX_ONNX_NESTING);
  }
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
  if (!m) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: not a valid ONNX model (protobuf ModelProto did not parse: truncated "
                     "or corrupt)",
                     name);
  }
  importer im = {.file = name, .base_dir = base_dir, .err = err};
  im.fixed_shapes = opt && opt->fixed_shapes;
  im.g = hawq_graph_new(name);
  hawq_status st = im.g ? import_model(&im, m, opt) : oom(&im);
  env_free(&im);
  onnx__model_proto__free_unpacked(m, NULL);
  if (st) {
    hawq_graph_destroy(im.g);
    return st;
  }
  *out = im.g;
  return HAWQ_OK;
}

hawq_status hawq_graph_load_onnx_buffer(const void *data, size_t size, const char *name,
                                        const hawq_import_options *opt, hawq_graph **out,
                                        hawq_error *err) {
  return load_buffer(data, size, name, NULL, opt, out, err);
}

hawq_status hawq_graph_load_onnx(const char *path, const hawq_import_options *opt, hawq_graph **out,
                                 hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  *out = NULL;
  void *buf;
  size_t size;
  hawq_status st = hawq_read_file(path, HAWQ_MAX_MODEL_BYTES,
                                  " (protobuf's 2 GiB limit); save the weights as external data",
                                  &buf, &size, err);
  if (st) return st;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  st = load_buffer(buf, size, path, dir, opt, out, err);
  free(buf);
  return st;
}

size_t hawq_graph_num_inputs(const hawq_graph *g) {
  return (size_t)g->n_inputs;
}
size_t hawq_graph_num_outputs(const hawq_graph *g) {
  return (size_t)g->n_outputs;
}

static hawq_tensor_info info_of(const hawq_tensor *t) {
  hawq_tensor_info ti = {.name = t->name, .rank = t->rank, .batched = t->batched};
  for (int k = 0; k < t->rank; k++) ti.dims[k] = t->dims[k];
  return ti;
}

hawq_tensor_info hawq_graph_input(const hawq_graph *g, size_t i) {
  return info_of(&g->tensors[g->inputs[i]]);
}

hawq_tensor_info hawq_graph_output(const hawq_graph *g, size_t i) {
  return info_of(&g->tensors[g->outputs[i]]);
}
