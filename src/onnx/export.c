/* ONNX writing through protobuf-c. A model's preprocessing: unpack, change, pack, write
 * atomically. A whole graph: the ModelProto is built in memory (every part allocated from one
 * pool), packed, and written atomically. */
#include "onnx/export.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/graph.h"
#include "core/preprocess.h"
#include "core/status.h"
#include "core/strset.h"
#include "onnx/onnx_internal.h"

/* producer_version of written models (the library's version) */
#define HAWQ_EXPORT_VERSION "0.1.0"

hawq_status hawq_onnx_write_preprocess(const char *in_path, const char *out_path,
                                       const hawq_preprocess *pp, hawq_error *err) {
  void *data;
  size_t size;
  hawq_status st = hawq_read_file(in_path, INT32_MAX, NULL, &data, &size, err);
  if (st) return st;
  if (!onnx_nesting_within(data, size, HAWQ_MAX_ONNX_NESTING)) {
    free(data);
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: messages nested too deep", in_path);
  }
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
  free(data);
  if (!m) return hawq_fail(err, HAWQ_ERR_PARSE, "%s: not a valid ONNX model", in_path);

  /* The kept entries plus our three, in a new array; the unpacked ones are restored before
   * protobuf-c frees the message. */
  char scale[64], mean[HAWQ_MAX_CHANNELS * 20], stdv[HAWQ_MAX_CHANNELS * 20];
  hawq_format_float_list(&pp->pixel_scale, 1, scale, sizeof scale);
  hawq_format_float_list(pp->mean, pp->channels, mean, sizeof mean);
  hawq_format_float_list(pp->std, pp->channels, stdv, sizeof stdv);
  Onnx__StringStringEntryProto ours[3];
  const char *keys[3] = {HAWQ_META_PIXEL_SCALE, HAWQ_META_MEAN, HAWQ_META_STD};
  char *values[3] = {scale, mean, stdv};
  Onnx__StringStringEntryProto **props = malloc((m->n_metadata_props + 3) * sizeof *props);
  uint8_t *packed = NULL;
  if (!props) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", out_path);
    goto done;
  }
  size_t n = 0;
  for (size_t k = 0; k < m->n_metadata_props; k++) {
    const char *key = m->metadata_props[k]->key ? m->metadata_props[k]->key : "";
    if (strcmp(key, keys[0]) && strcmp(key, keys[1]) && strcmp(key, keys[2])) {
      props[n++] = m->metadata_props[k];
    }
  }
  for (int k = 0; k < 3; k++) {
    onnx__string_string_entry_proto__init(&ours[k]);
    ours[k].key = (char *)keys[k];
    ours[k].value = values[k];
    props[n++] = &ours[k];
  }
  Onnx__StringStringEntryProto **saved = m->metadata_props;
  size_t saved_n = m->n_metadata_props;
  m->metadata_props = props;
  m->n_metadata_props = n;
  size_t out_size = onnx__model_proto__get_packed_size(m);
  packed = malloc(out_size ? out_size : 1);
  if (packed) onnx__model_proto__pack(m, packed);
  m->metadata_props = saved;
  m->n_metadata_props = saved_n;
  st = packed ? hawq_write_file_atomic(out_path, packed, out_size, err)
              : hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", out_path);
done:
  free(packed);
  free(props);
  onnx__model_proto__free_unpacked(m, NULL);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Whole-graph export                                                                         */

/* Every allocation that makes up the message, freed together once it is packed. */
typedef struct pool {
  void **p;
  size_t n, cap;
} pool;

static void *pool_alloc(pool *pl, size_t size) {
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? 2 * pl->cap : 256;
    void **p = realloc(pl->p, cap * sizeof *p);
    if (!p) return NULL;
    pl->p = p;
    pl->cap = cap;
  }
  void *q = calloc(1, size ? size : 1);
  if (q) pl->p[pl->n++] = q;
  return q;
}

static void pool_free(pool *pl) {
  for (size_t k = 0; k < pl->n; k++) free(pl->p[k]);
  free(pl->p);
}

#define MAX_NODE_ATTRS 8

typedef struct exporter {
  const hawq_graph *g;
  const char *path;
  hawq_error *err;
  pool mem;
  bool oom; /* an allocation failed: every helper then does nothing, the caller reports it */
  hawq_strset values, node_names; /* the value and node names in use */
  Onnx__NodeProto **nodes;
  size_t n_nodes, cap_nodes;
  Onnx__TensorProto **inits;
  size_t n_inits, cap_inits;
  const char **param_name;   /* per IR tensor: its initializer's name, once written */
  const char **param_t_name; /* per IR tensor: its transposed copy's name (MatMul weights) */
} exporter;

static void *ex_alloc(exporter *ex, size_t size) {
  void *p = ex->oom ? NULL : pool_alloc(&ex->mem, size);
  if (!p) ex->oom = true;
  return p;
}

static char *ex_strdup(exporter *ex, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = ex_alloc(ex, n);
  if (d) memcpy(d, s, n);
  return d;
}

/* base + suffix, or with "#2", "#3", ... appended until it is not in set; recorded in set. */
static const char *unique_name(exporter *ex, hawq_strset *set, const char *base,
                               const char *suffix) {
  size_t size = strlen(base) + strlen(suffix) + 24;
  char *name = ex_alloc(ex, size);
  if (!name) return "";
  snprintf(name, size, "%s%s", base, suffix);
  for (long k = 2; hawq_strset_has(set, name); k++)
    snprintf(name, size, "%s%s#%ld", base, suffix, k);
  if (!hawq_strset_add(set, name)) ex->oom = true;
  return name;
}

static hawq_status node_error(const exporter *ex, const hawq_node *n, hawq_status st,
                              const char *fmt, ...) HAWQ_PRINTF(4, 5);
static hawq_status node_error(const exporter *ex, const hawq_node *n, hawq_status st,
                              const char *fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return hawq_fail(ex->err, st, "%s: node '%s' (%s): %s", ex->path, n->name, n->op_type, what);
}

static hawq_status oom_error(const exporter *ex) {
  return hawq_fail(ex->err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", ex->path);
}

/* ---- message parts ---- */

static void put_le32(uint8_t *p, uint32_t v) {
  for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* A new initializer (appended to the graph's list) with raw_data of `bytes` zeroed bytes. */
static Onnx__TensorProto *new_init(exporter *ex, const char *name, int32_t dtype, int rank,
                                   const int64_t *dims, size_t bytes) {
  if (ex->n_inits == ex->cap_inits && !ex->oom) {
    size_t cap = ex->cap_inits ? 2 * ex->cap_inits : 64;
    Onnx__TensorProto **p = realloc(ex->inits, cap * sizeof *p);
    if (!p) {
      ex->oom = true;
      return NULL;
    }
    ex->inits = p;
    ex->cap_inits = cap;
  }
  Onnx__TensorProto *t = ex_alloc(ex, sizeof *t);
  int64_t *d = ex_alloc(ex, (size_t)(rank ? rank : 1) * sizeof *d);
  uint8_t *raw = ex_alloc(ex, bytes);
  if (ex->oom) return NULL;
  onnx__tensor_proto__init(t);
  t->name = (char *)name;
  t->has_data_type = true;
  t->data_type = dtype;
  t->n_dims = (size_t)rank;
  for (int k = 0; k < rank; k++) d[k] = dims[k];
  t->dims = d;
  t->has_raw_data = true;
  t->raw_data.len = bytes;
  t->raw_data.data = raw;
  ex->inits[ex->n_inits++] = t;
  return t;
}

/* A float32 initializer from logical row-major data. */
static void add_float_init(exporter *ex, const char *name, int rank, const int64_t *dims,
                           const float *data) {
  int64_t n = 1;
  for (int k = 0; k < rank; k++) n *= dims[k];
  Onnx__TensorProto *t = new_init(ex, name, ONNX_FLOAT, rank, dims, (size_t)n * 4);
  if (!t) return;
  for (int64_t k = 0; k < n; k++) {
    uint32_t bits;
    memcpy(&bits, &data[k], 4);
    put_le32(t->raw_data.data + 4 * k, bits);
  }
}

static void add_int64_init(exporter *ex, const char *name, int64_t n, const int64_t *data) {
  Onnx__TensorProto *t = new_init(ex, name, ONNX_INT64, 1, &n, (size_t)n * 8);
  if (!t) return;
  for (int64_t k = 0; k < n; k++) {
    uint64_t v = (uint64_t)data[k];
    put_le32(t->raw_data.data + 8 * k, (uint32_t)v);
    put_le32(t->raw_data.data + 8 * k + 4, (uint32_t)(v >> 32));
  }
}

/* A scalar float initializer named "<base><suffix>"; returns its name. */
static const char *scalar_init(exporter *ex, const char *base, const char *suffix, float v) {
  const char *name = unique_name(ex, &ex->values, base, suffix);
  add_float_init(ex, name, 0, NULL, &v);
  return name;
}

/* A 1-D int64 initializer named "<base><suffix>"; returns its name. */
static const char *ints_init(exporter *ex, const char *base, const char *suffix, int64_t n,
                             const int64_t *v) {
  const char *name = unique_name(ex, &ex->values, base, suffix);
  add_int64_init(ex, name, n, v);
  return name;
}

/* The initializer holding parameter tensor t in logical layout, written on first use. */
static const char *param(exporter *ex, int t) {
  if (ex->param_name[t]) return ex->param_name[t];
  const hawq_tensor *x = &ex->g->tensors[t];
  const float *data = x->data;
  float *logical = NULL;
  if (x->rank == 4) { /* stored NHWC (conv weights (K,R,S,C/g)); ONNX wants NCHW (K,C/g,R,S) */
    logical = malloc((size_t)hawq_tensor_numel(x) * sizeof *logical + 1);
    if (!logical) {
      ex->oom = true;
      return "";
    }
    hawq_tensor_to_logical(x->data, logical, 4, x->dims);
    data = logical;
  }
  /* Its own name, unless a MatMul's transposed copy took that already. */
  const char *name = ex->param_t_name[t] == x->name
                         ? unique_name(ex, &ex->values, x->name, "/untransposed")
                         : x->name;
  add_float_init(ex, name, x->rank, x->dims, data);
  free(logical);
  ex->param_name[t] = name;
  return name;
}

/* The name a node input refers to: "" for an absent optional input, the initializer for a
 * parameter, else the tensor's own name. */
static const char *input_name(exporter *ex, int t) {
  if (t < 0) return "";
  if (ex->g->tensors[t].kind == HAWQ_TENSOR_PARAM) return param(ex, t);
  return ex->g->tensors[t].name;
}

static Onnx__NodeProto *new_node(exporter *ex, const char *name, const char *op_type, int n_in,
                                 const char *const *in, const char *out) {
  if (ex->n_nodes == ex->cap_nodes && !ex->oom) {
    size_t cap = ex->cap_nodes ? 2 * ex->cap_nodes : 64;
    Onnx__NodeProto **p = realloc(ex->nodes, cap * sizeof *p);
    if (!p) {
      ex->oom = true;
      return NULL;
    }
    ex->nodes = p;
    ex->cap_nodes = cap;
  }
  Onnx__NodeProto *n = ex_alloc(ex, sizeof *n);
  char **ins = ex_alloc(ex, (size_t)(n_in ? n_in : 1) * sizeof *ins);
  char **outs = ex_alloc(ex, sizeof *outs);
  Onnx__AttributeProto **attrs = ex_alloc(ex, MAX_NODE_ATTRS * sizeof *attrs);
  const char *uname = unique_name(ex, &ex->node_names, name, "");
  if (ex->oom) return NULL;
  onnx__node_proto__init(n);
  n->name = (char *)uname;
  n->op_type = (char *)op_type;
  n->n_input = (size_t)n_in;
  for (int k = 0; k < n_in; k++) ins[k] = (char *)in[k];
  n->input = ins;
  n->n_output = 1;
  outs[0] = (char *)out;
  n->output = outs;
  n->attribute = attrs;
  ex->nodes[ex->n_nodes++] = n;
  return n;
}

static Onnx__AttributeProto *new_attr(exporter *ex, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
  Onnx__AttributeProto *a = n && n->n_attribute < MAX_NODE_ATTRS ? ex_alloc(ex, sizeof *a) : NULL;
  if (!a) return NULL;
  onnx__attribute_proto__init(a);
  a->name = (char *)name;
  a->has_type = true;
  a->type = type;
  n->attribute[n->n_attribute++] = a;
  return a;
}

static void set_int(exporter *ex, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = new_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  if (!a) return;
  a->has_i = true;
  a->i = v;
}

static void set_float(exporter *ex, Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a = new_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  if (!a) return;
  a->has_f = true;
  a->f = v;
}

static void set_string(exporter *ex, Onnx__NodeProto *n, const char *name, const char *v) {
  Onnx__AttributeProto *a = new_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  if (!a) return;
  a->has_s = true;
  a->s.len = strlen(v);
  a->s.data = (uint8_t *)v;
}

static void set_ints(exporter *ex, Onnx__NodeProto *n, const char *name, int count,
                     const int64_t *v) {
  Onnx__AttributeProto *a = new_attr(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  int64_t *copy = a ? ex_alloc(ex, (size_t)(count ? count : 1) * sizeof *copy) : NULL;
  if (!copy) return;
  for (int k = 0; k < count; k++) copy[k] = v[k];
  a->n_ints = (size_t)count;
  a->ints = copy;
}

static void set_pair(exporter *ex, Onnx__NodeProto *n, const char *name, const int *v) {
  int64_t w[2] = {v[0], v[1]};
  set_ints(ex, n, name, 2, w);
}

/* ---- nodes ---- */

/* Reshape target: the logical dims, with -1 for the batch of a batched tensor. */
static void reshape_target(const hawq_tensor *t, int rank, const int64_t *dims, int64_t *out) {
  for (int k = 0; k < rank; k++) out[k] = dims[k];
  if (t->batched) out[0] = -1;
}

/* Reshape of value `in` to the logical shape (rank, dims) into `out`. */
static void emit_reshape(exporter *ex, const char *node_name, const char *in, const char *out,
                         const hawq_tensor *like, int rank, const int64_t *dims) {
  int64_t target[HAWQ_MAX_RANK];
  reshape_target(like, rank, dims, target);
  const char *ins[2] = {in, ints_init(ex, out, "/shape", rank, target)};
  new_node(ex, node_name, "Reshape", 2, ins, out);
}

/* ceil_mode and explicit pads for a pooling node whose output size hawq computed (ceil_mode
 * folded into it): ceil_mode 0 with the end pads grown to reach the extra windows, where that
 * changes nothing (max, or average without count_include_pad: padding is never counted) and
 * the pads stay smaller than the kernel (ONNX Runtime requires it of kernel_shape, hawq's
 * importer of the dilated extent); else
 * ceil_mode 1 with the pads as they are. Fails if neither gives hawq's output size. */
static hawq_status pool_pads(const exporter *ex, const hawq_node *n, int64_t *pads,
                             int64_t *ceil_mode) {
  const hawq_pool_attr *at = &n->attr.pool;
  const hawq_tensor *x = &ex->g->tensors[n->inputs[0]], *y = &ex->g->tensors[n->output];
  bool grow_ok = true, ceil_ok = true;
  int64_t grown[4];
  for (int d = 0; d < 2; d++) {
    int64_t in = x->dims[2 + d], out = y->dims[2 + d], s = at->stride[d];
    int64_t k_eff = (int64_t)(at->kernel[d] - 1) * at->dilation[d] + 1;
    int64_t begin = at->pad[d], end = at->pad[d + 2];
    int64_t span = in + begin + end - k_eff;
    if (span < 0 || s < 1) {
      return node_error(ex, n, HAWQ_ERR_UNSUPPORTED,
                        "the kernel (%lld) is larger than the padded input (%lld)",
                        (long long)k_eff, (long long)(in + begin + end));
    }
    grown[d] = begin;
    grown[d + 2] = end;
    int64_t floor_out = span / s + 1;
    if (out != floor_out) {
      int64_t need_end = (out - 1) * s + k_eff - in - begin;
      bool counts_pad = n->op == HAWQ_OP_AVGPOOL && at->count_include_pad;
      grow_ok &= out > floor_out && !counts_pad && need_end < at->kernel[d];
      grown[d + 2] = need_end;
    }
    /* ceil_mode 1 as PyTorch and ONNX Runtime count it: the last window starts inside the
     * input or its begin padding. */
    int64_t ceil_out = (span + s - 1) / s + 1;
    if ((ceil_out - 1) * s >= in + begin) ceil_out--;
    ceil_ok &= ceil_out == out;
  }
  if (grow_ok) {
    for (int k = 0; k < 4; k++) pads[k] = grown[k];
    *ceil_mode = 0;
    return HAWQ_OK;
  }
  if (ceil_ok) {
    for (int k = 0; k < 4; k++) pads[k] = at->pad[k];
    *ceil_mode = 1;
    return HAWQ_OK;
  }
  return node_error(ex, n, HAWQ_ERR_UNSUPPORTED,
                    "output %lldx%lld cannot be expressed with ONNX pads and ceil_mode",
                    (long long)y->dims[2], (long long)y->dims[3]);
}

static hawq_status emit_pool(exporter *ex, const hawq_node *n, const char *x, const char *y) {
  const hawq_pool_attr *at = &n->attr.pool;
  bool is_max = n->op == HAWQ_OP_MAXPOOL;
  if (!is_max && (at->dilation[0] != 1 || at->dilation[1] != 1)) {
    return node_error(ex, n, HAWQ_ERR_UNSUPPORTED,
                      "dilated average pooling cannot be written (ONNX AveragePool has no "
                      "dilations before opset 19)");
  }
  int64_t pads[4] = {0}, ceil_mode = 0;
  hawq_status st = pool_pads(ex, n, pads, &ceil_mode);
  if (st) return st;
  Onnx__NodeProto *o = new_node(ex, n->name, is_max ? "MaxPool" : "AveragePool", 1, &x, y);
  set_pair(ex, o, "kernel_shape", at->kernel);
  set_pair(ex, o, "strides", at->stride);
  set_ints(ex, o, "pads", 4, pads);
  set_int(ex, o, "ceil_mode", ceil_mode);
  if (is_max) set_pair(ex, o, "dilations", at->dilation);
  if (!is_max) set_int(ex, o, "count_include_pad", at->count_include_pad);
  return HAWQ_OK;
}

/* Y = X W^T + B: Gemm for a 2-D X, else MatMul by W^T (a transposed copy of W) and Add B. */
static hawq_status emit_gemm(exporter *ex, const hawq_node *n, const char *x, const char *y) {
  const hawq_graph *g = ex->g;
  const hawq_tensor *xt = &g->tensors[n->inputs[0]], *w = &g->tensors[n->inputs[1]];
  if (w->kind != HAWQ_TENSOR_PARAM || w->rank != 2 || xt->rank < 2) {
    return node_error(ex, n, HAWQ_ERR_UNSUPPORTED,
                      "expected a 2-D parameter weight and an input of rank >= 2");
  }
  int b = n->n_inputs > 2 ? n->inputs[2] : -1;
  if (xt->rank == 2) {
    const char *ins[3] = {x, param(ex, n->inputs[1]), input_name(ex, b)};
    set_int(ex, new_node(ex, n->name, "Gemm", b >= 0 ? 3 : 2, ins, y), "transB", 1);
    return HAWQ_OK;
  }
  int wi = n->inputs[1];
  if (!ex->param_t_name[wi]) {
    int64_t rows = w->dims[0], cols = w->dims[1], dims[2] = {cols, rows};
    float *wt = malloc((size_t)(rows * cols) * sizeof *wt + 1);
    if (!wt) return oom_error(ex);
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t c = 0; c < cols; c++) wt[c * rows + r] = w->data[r * cols + c];
    }
    /* Named as W itself unless W is written as well, so that importing the file gives the
     * parameter its old name back (a checkpoint's names stay put across save/load cycles). */
    ex->param_t_name[wi] =
        ex->param_name[wi] ? unique_name(ex, &ex->values, w->name, "/transposed") : w->name;
    add_float_init(ex, ex->param_t_name[wi], 2, dims, wt);
    free(wt);
  }
  const char *mm = b >= 0 ? unique_name(ex, &ex->values, y, "/matmul") : y;
  const char *ins[2] = {x, ex->param_t_name[wi]};
  new_node(ex, n->name, "MatMul", 2, ins, mm);
  if (b >= 0) {
    const char *add_in[2] = {mm, input_name(ex, b)};
    new_node(ex, n->name, "Add", 2, add_in, y);
  }
  return HAWQ_OK;
}

/* Softmax over logical axes [axis, axis_end): one ONNX Softmax when that is one axis, else the
 * axes flattened into one by a Reshape around it. */
static hawq_status emit_softmax(exporter *ex, const hawq_node *n, const char *x, const char *y) {
  const hawq_tensor *xt = &ex->g->tensors[n->inputs[0]];
  int a0 = n->attr.softmax.axis, a1 = n->attr.softmax.axis_end;
  if (a0 < 0 || a1 <= a0 || a1 > xt->rank || (xt->batched && a0 == 0)) {
    return node_error(ex, n, HAWQ_ERR_UNSUPPORTED, "softmax over axes %d..%d of a rank-%d tensor",
                      a0, a1 - 1, xt->rank);
  }
  if (a1 == a0 + 1) {
    set_int(ex, new_node(ex, n->name, "Softmax", 1, &x, y), "axis", a0);
    return HAWQ_OK;
  }
  int64_t flat[HAWQ_MAX_RANK];
  int r = 0;
  for (int k = 0; k < a0; k++) flat[r++] = xt->dims[k];
  flat[r] = 1;
  for (int k = a0; k < a1; k++) flat[r] *= xt->dims[k];
  r++;
  for (int k = a1; k < xt->rank; k++) flat[r++] = xt->dims[k];
  const char *flat_in = unique_name(ex, &ex->values, y, "/flat");
  const char *flat_out = unique_name(ex, &ex->values, y, "/flat_softmax");
  emit_reshape(ex, n->name, x, flat_in, xt, r, flat);
  set_int(ex, new_node(ex, n->name, "Softmax", 1, &flat_in, flat_out), "axis", a0);
  emit_reshape(ex, n->name, flat_out, y, xt, xt->rank, xt->dims);
  return HAWQ_OK;
}

static hawq_status emit_node(exporter *ex, const hawq_node *n) {
  const hawq_graph *g = ex->g;
  const hawq_tensor *yt = &g->tensors[n->output];
  const char *y = yt->name;
  const char *x = input_name(ex, n->inputs[0]);
  const hawq_tensor *xt = &g->tensors[n->inputs[0]];
  Onnx__NodeProto *o;
  switch (n->op) {
    case HAWQ_OP_CONV: {
      const hawq_conv_attr *at = &n->attr.conv;
      const hawq_tensor *w = &g->tensors[n->inputs[1]];
      if (w->rank != 4) return node_error(ex, n, HAWQ_ERR_UNSUPPORTED, "weight is not 4-D");
      int b = n->n_inputs > 2 ? n->inputs[2] : -1;
      const char *ins[3] = {x, input_name(ex, n->inputs[1]), input_name(ex, b)};
      int64_t kernel[2] = {w->dims[2], w->dims[3]}, pads[4];
      for (int k = 0; k < 4; k++) pads[k] = at->pad[k];
      o = new_node(ex, n->name, "Conv", b >= 0 ? 3 : 2, ins, y);
      set_ints(ex, o, "kernel_shape", 2, kernel);
      set_pair(ex, o, "strides", at->stride);
      set_ints(ex, o, "pads", 4, pads);
      set_pair(ex, o, "dilations", at->dilation);
      set_int(ex, o, "group", at->groups);
      return HAWQ_OK;
    }
    case HAWQ_OP_BATCHNORM: {
      const char *ins[5] = {x};
      for (int k = 1; k < 5; k++) ins[k] = input_name(ex, n->inputs[k]);
      set_float(ex, new_node(ex, n->name, "BatchNormalization", 5, ins, y), "epsilon",
                n->attr.bn.epsilon);
      return HAWQ_OK;
    }
    case HAWQ_OP_RELU:
      new_node(ex, n->name, "Relu", 1, &x, y);
      return HAWQ_OK;
    case HAWQ_OP_CLIP: {
      /* Opset 13 takes the bounds as inputs; hawq's "no bound" is +-FLT_MAX, written as is. */
      const char *ins[3] = {x, scalar_init(ex, y, "/min", n->attr.clip.min),
                            scalar_init(ex, y, "/max", n->attr.clip.max)};
      new_node(ex, n->name, "Clip", 3, ins, y);
      return HAWQ_OK;
    }
    case HAWQ_OP_LEAKY_RELU:
      set_float(ex, new_node(ex, n->name, "LeakyRelu", 1, &x, y), "alpha", n->attr.leaky.alpha);
      return HAWQ_OK;
    case HAWQ_OP_ADD:
    case HAWQ_OP_SUB:
    case HAWQ_OP_MUL:
    case HAWQ_OP_DIV: {
      static const char *ops[] = {"Add", "Sub", "Mul", "Div"};
      const char *ins[2] = {x, input_name(ex, n->inputs[1])};
      new_node(ex, n->name, ops[n->op - HAWQ_OP_ADD], 2, ins, y);
      return HAWQ_OK;
    }
    case HAWQ_OP_MAXPOOL:
    case HAWQ_OP_AVGPOOL:
      if (xt->rank != 4 || yt->rank != 4) {
        return node_error(ex, n, HAWQ_ERR_UNSUPPORTED, "pooling of a rank-%d tensor", xt->rank);
      }
      return emit_pool(ex, n, x, y);
    case HAWQ_OP_GLOBAL_AVGPOOL:
      new_node(ex, n->name, "GlobalAveragePool", 1, &x, y);
      return HAWQ_OK;
    case HAWQ_OP_GLOBAL_MAXPOOL:
      new_node(ex, n->name, "GlobalMaxPool", 1, &x, y);
      return HAWQ_OK;
    case HAWQ_OP_GEMM:
      return emit_gemm(ex, n, x, y);
    case HAWQ_OP_RESHAPE:
      if (xt->batched != yt->batched) {
        return node_error(ex, n, HAWQ_ERR_UNSUPPORTED, "reshape between batched and fixed shapes");
      }
      emit_reshape(ex, n->name, x, y, yt, yt->rank, yt->dims);
      return HAWQ_OK;
    case HAWQ_OP_TRANSPOSE: {
      int64_t perm[HAWQ_MAX_RANK];
      for (int k = 0; k < xt->rank; k++) perm[k] = n->attr.transpose.perm[k];
      set_ints(ex, new_node(ex, n->name, "Transpose", 1, &x, y), "perm", xt->rank, perm);
      return HAWQ_OK;
    }
    case HAWQ_OP_CONCAT: {
      const char **ins = ex_alloc(ex, (size_t)n->n_inputs * sizeof *ins);
      if (!ins) return oom_error(ex);
      for (int k = 0; k < n->n_inputs; k++) ins[k] = input_name(ex, n->inputs[k]);
      set_int(ex, new_node(ex, n->name, "Concat", n->n_inputs, ins, y), "axis",
              n->attr.concat.axis);
      return HAWQ_OK;
    }
    case HAWQ_OP_PAD: {
      int64_t pads[2 * HAWQ_MAX_RANK];
      for (int k = 0; k < xt->rank; k++) {
        pads[k] = n->attr.pad.pads[k];
        pads[xt->rank + k] = n->attr.pad.pads[HAWQ_MAX_RANK + k];
      }
      const char *ins[3] = {x, ints_init(ex, y, "/pads", 2 * xt->rank, pads),
                            scalar_init(ex, y, "/value", n->attr.pad.value)};
      set_string(ex, new_node(ex, n->name, "Pad", 3, ins, y), "mode", "constant");
      return HAWQ_OK;
    }
    case HAWQ_OP_SOFTMAX:
      return emit_softmax(ex, n, x, y);
    case HAWQ_OP_FAKEQUANT: /* a training graph's: export the model it trains instead */
      return node_error(ex, n, HAWQ_ERR_UNSUPPORTED, "fake quantization has no ONNX form here");
    case HAWQ_OP_COUNT:
      break;
  }
  return node_error(ex, n, HAWQ_ERR_INTERNAL, "unknown op %d", (int)n->op);
}

/* Inputs each op needs (-1 allowed only where marked optional), checked before writing so a
 * malformed graph gives a message instead of an out-of-bounds read. */
static hawq_status check_node(const exporter *ex, const hawq_node *n) {
  const hawq_graph *g = ex->g;
  int need = 1;
  bool bias_optional = false;
  switch (n->op) {
    case HAWQ_OP_CONV:
    case HAWQ_OP_GEMM:
      need = 3;
      bias_optional = true;
      break;
    case HAWQ_OP_BATCHNORM:
      need = 5;
      break;
    case HAWQ_OP_ADD:
    case HAWQ_OP_SUB:
    case HAWQ_OP_MUL:
    case HAWQ_OP_DIV:
      need = 2;
      break;
    default:
      break;
  }
  if ((n->n_inputs < need && !(bias_optional && n->n_inputs == need - 1)) || n->n_inputs < 1) {
    return node_error(ex, n, HAWQ_ERR_INTERNAL, "%d inputs, expected %d", n->n_inputs, need);
  }
  if (n->output < 0 || n->output >= g->n_tensors) {
    return node_error(ex, n, HAWQ_ERR_INTERNAL, "output tensor %d does not exist", n->output);
  }
  for (int k = 0; k < n->n_inputs; k++) {
    int t = n->inputs[k];
    bool optional = bias_optional && k == 2;
    if (t >= g->n_tensors || (t < 0 && !optional)) {
      return node_error(ex, n, HAWQ_ERR_INTERNAL, "input %d is tensor %d, which does not exist", k,
                        t);
    }
  }
  if (n->op == HAWQ_OP_CONCAT && n->n_inputs > HAWQ_MAX_CONCAT_INPUTS) {
    return node_error(ex, n, HAWQ_ERR_INTERNAL, "%d inputs to Concat", n->n_inputs);
  }
  return HAWQ_OK;
}

static Onnx__ValueInfoProto *value_info(exporter *ex, const hawq_tensor *t) {
  Onnx__ValueInfoProto *vi = ex_alloc(ex, sizeof *vi);
  Onnx__TypeProto *tp = ex_alloc(ex, sizeof *tp);
  Onnx__TypeProto__Tensor *tt = ex_alloc(ex, sizeof *tt);
  Onnx__TensorShapeProto *sh = ex_alloc(ex, sizeof *sh);
  Onnx__TensorShapeProto__Dimension **dims =
      ex_alloc(ex, (size_t)(t->rank ? t->rank : 1) * sizeof *dims);
  for (int k = 0; k < t->rank && !ex->oom; k++) dims[k] = ex_alloc(ex, sizeof **dims);
  if (ex->oom) return NULL;
  onnx__value_info_proto__init(vi);
  onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt);
  onnx__tensor_shape_proto__init(sh);
  for (int k = 0; k < t->rank; k++) {
    onnx__tensor_shape_proto__dimension__init(dims[k]);
    if (k == 0 && t->batched) {
      dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dims[k]->dim_param = "N"; /* any batch */
    } else {
      dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dims[k]->dim_value = t->dims[k];
    }
  }
  sh->n_dim = (size_t)t->rank;
  sh->dim = dims;
  tt->has_elem_type = true;
  tt->elem_type = ONNX_FLOAT;
  tt->shape = sh;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  vi->name = t->name;
  vi->type = tp;
  return vi;
}

/* metadata_props as an ordered key/value list; set() replaces an existing key's value. */
typedef struct meta_list {
  Onnx__StringStringEntryProto **e;
  size_t n;
} meta_list;

static void meta_set(exporter *ex, meta_list *m, const char *key, const char *val) {
  char *v = ex_strdup(ex, val);
  if (!v) return;
  for (size_t k = 0; k < m->n; k++) {
    if (!strcmp(m->e[k]->key, key)) {
      m->e[k]->value = v;
      return;
    }
  }
  Onnx__StringStringEntryProto *e = ex_alloc(ex, sizeof *e);
  char *k = ex_strdup(ex, key);
  if (!e || !k) return;
  onnx__string_string_entry_proto__init(e);
  e->key = k;
  e->value = v;
  m->e[m->n++] = e;
}

static hawq_status check_graph(const exporter *ex, const hawq_onnx_write_options *opt) {
  const hawq_graph *g = ex->g;
  for (int t = 0; t < g->n_tensors; t++) {
    const hawq_tensor *x = &g->tensors[t];
    if (!x->name || !*x->name) {
      return hawq_fail(ex->err, HAWQ_ERR_INTERNAL, "%s: tensor %d has no name", ex->path, t);
    }
    if (x->rank < 0 || x->rank > HAWQ_MAX_RANK || (x->kind == HAWQ_TENSOR_PARAM && !x->data)) {
      return hawq_fail(ex->err, HAWQ_ERR_INTERNAL, "%s: tensor '%s' has rank %d%s", ex->path,
                       x->name, x->rank, x->data ? "" : " and no data");
    }
  }
  for (int k = 0; k < g->n_inputs + g->n_outputs; k++) {
    int t = k < g->n_inputs ? g->inputs[k] : g->outputs[k - g->n_inputs];
    if (t < 0 || t >= g->n_tensors) {
      return hawq_fail(ex->err, HAWQ_ERR_INTERNAL, "%s: graph %s %d is tensor %d", ex->path,
                       k < g->n_inputs ? "input" : "output", k < g->n_inputs ? k : k - g->n_inputs,
                       t);
    }
  }
  for (int k = 0; k < g->n_nodes; k++) {
    hawq_status st = check_node(ex, &g->nodes[k]);
    if (st) return st;
  }
  for (size_t k = 0; opt && k < opt->n_meta; k++) {
    if (!opt->meta_keys || !opt->meta_values || !opt->meta_keys[k] || !opt->meta_values[k]) {
      return hawq_fail(ex->err, HAWQ_ERR_INVALID_ARG, "%s: metadata entry %zu is NULL", ex->path,
                       k);
    }
  }
  if (opt && opt->n_extra && !opt->extra) {
    return hawq_fail(ex->err, HAWQ_ERR_INVALID_ARG, "%s: n_extra is %zu but extra is NULL",
                     ex->path, opt->n_extra);
  }
  for (size_t k = 0; opt && k < opt->n_extra; k++) {
    const struct hawq_onnx_extra_tensor *e = &opt->extra[k];
    if (!e->name || !*e->name || e->rank < 0 || e->rank > HAWQ_MAX_RANK || (e->rank && !e->dims)) {
      return hawq_fail(ex->err, HAWQ_ERR_INVALID_ARG,
                       "%s: extra initializer %zu: needs a name and rank 0 to %d", ex->path, k,
                       HAWQ_MAX_RANK);
    }
    int64_t n = 1;
    for (int d = 0; d < e->rank; d++) {
      if (e->dims[d] < 0 || (e->dims[d] && n > HAWQ_MAX_TENSOR_ELEMENTS / e->dims[d])) {
        return hawq_fail(ex->err, HAWQ_ERR_INVALID_ARG, "%s: extra initializer '%s': bad shape",
                         ex->path, e->name);
      }
      n *= e->dims[d];
    }
    if (n && !e->data) {
      return hawq_fail(ex->err, HAWQ_ERR_INVALID_ARG, "%s: extra initializer '%s' has no data",
                       ex->path, e->name);
    }
  }
  return HAWQ_OK;
}

static hawq_status build_model(exporter *ex, const hawq_onnx_write_options *opt,
                               Onnx__ModelProto *m) {
  const hawq_graph *g = ex->g;
  hawq_status st = check_graph(ex, opt);
  if (st) return st;
  /* Graph tensor and extra initializer names are taken as they are; generated names (shape
   * inputs, Clip bounds, ...) avoid them. */
  for (int t = 0; t < g->n_tensors && !ex->oom; t++) {
    if (!hawq_strset_add(&ex->values, g->tensors[t].name)) ex->oom = true;
  }
  for (size_t k = 0; opt && k < opt->n_extra && !ex->oom; k++) {
    const char *name = opt->extra[k].name;
    if (hawq_strset_has(&ex->values, name)) {
      return hawq_fail(ex->err, HAWQ_ERR_INVALID_ARG,
                       "%s: extra initializer '%s' has the name of a graph tensor or of another "
                       "extra initializer",
                       ex->path, name);
    }
    if (!hawq_strset_add(&ex->values, name)) ex->oom = true;
  }
  for (int k = 0; k < g->n_nodes && !ex->oom; k++) {
    if ((st = emit_node(ex, &g->nodes[k]))) return st;
  }
  for (size_t k = 0; opt && k < opt->n_extra; k++) {
    const struct hawq_onnx_extra_tensor *e = &opt->extra[k];
    add_float_init(ex, e->name, e->rank, e->dims, e->data);
  }

  Onnx__GraphProto *gr = ex_alloc(ex, sizeof *gr);
  Onnx__ValueInfoProto **ins = ex_alloc(ex, (size_t)(g->n_inputs + 1) * sizeof *ins);
  Onnx__ValueInfoProto **outs = ex_alloc(ex, (size_t)(g->n_outputs + 1) * sizeof *outs);
  for (int k = 0; k < g->n_inputs && !ex->oom; k++) {
    ins[k] = value_info(ex, &g->tensors[g->inputs[k]]);
  }
  for (int k = 0; k < g->n_outputs && !ex->oom; k++) {
    outs[k] = value_info(ex, &g->tensors[g->outputs[k]]);
  }
  Onnx__OperatorSetIdProto *opset = ex_alloc(ex, sizeof *opset);
  Onnx__OperatorSetIdProto **opsets = ex_alloc(ex, sizeof *opsets);
  size_t max_meta = (size_t)g->n_meta + 3 + (opt ? opt->n_meta : 0);
  meta_list meta = {ex_alloc(ex, max_meta * sizeof *meta.e), 0};
  if (ex->oom) return oom_error(ex);

  /* The graph's own metadata, then its preprocessing, then the caller's. */
  for (int k = 0; k < g->n_meta; k++) meta_set(ex, &meta, g->meta_key[k], g->meta_value[k]);
  const hawq_preprocess *pp = &g->preprocess;
  if (pp->has_metadata) {
    char scale[64], mean[HAWQ_MAX_CHANNELS * 20], stdv[HAWQ_MAX_CHANNELS * 20];
    int channels = pp->channels < 1                   ? 1
                   : pp->channels > HAWQ_MAX_CHANNELS ? HAWQ_MAX_CHANNELS
                                                      : pp->channels;
    hawq_format_float_list(&pp->pixel_scale, 1, scale, sizeof scale);
    hawq_format_float_list(pp->mean, channels, mean, sizeof mean);
    hawq_format_float_list(pp->std, channels, stdv, sizeof stdv);
    meta_set(ex, &meta, HAWQ_META_PIXEL_SCALE, scale);
    meta_set(ex, &meta, HAWQ_META_MEAN, mean);
    meta_set(ex, &meta, HAWQ_META_STD, stdv);
  }
  for (size_t k = 0; opt && k < opt->n_meta; k++) {
    meta_set(ex, &meta, opt->meta_keys[k], opt->meta_values[k]);
  }
  if (ex->oom) return oom_error(ex);

  onnx__graph_proto__init(gr);
  gr->name = "hawq";
  gr->n_node = ex->n_nodes;
  gr->node = ex->nodes;
  gr->n_initializer = ex->n_inits;
  gr->initializer = ex->inits;
  gr->n_input = (size_t)g->n_inputs;
  gr->input = ins;
  gr->n_output = (size_t)g->n_outputs;
  gr->output = outs;
  onnx__operator_set_id_proto__init(opset);
  opset->domain = "";
  opset->has_version = true;
  opset->version = 13;
  opsets[0] = opset;
  m->has_ir_version = true;
  m->ir_version = 7; /* the IR version that goes with opset 13 */
  m->n_opset_import = 1;
  m->opset_import = opsets;
  m->producer_name = "hawq";
  m->producer_version = HAWQ_EXPORT_VERSION;
  m->graph = gr;
  m->n_metadata_props = meta.n;
  m->metadata_props = meta.e;
  return HAWQ_OK;
}

hawq_status hawq_onnx_write_graph(const hawq_graph *g, const char *path,
                                  const hawq_onnx_write_options *opt, hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  hawq_error_clear(err);
  if (!g || !path) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "write ONNX: no graph or path");
  exporter ex = {.g = g, .path = path, .err = err};
  ex.param_name = calloc((size_t)g->n_tensors + 1, sizeof *ex.param_name);
  ex.param_t_name = calloc((size_t)g->n_tensors + 1, sizeof *ex.param_t_name);
  Onnx__ModelProto m;
  onnx__model_proto__init(&m);
  hawq_status st = ex.param_name && ex.param_t_name ? build_model(&ex, opt, &m) : oom_error(&ex);
  if (!st && ex.oom) st = oom_error(&ex);
  uint8_t *packed = NULL;
  size_t size = st ? 0 : onnx__model_proto__get_packed_size(&m);
  if (!st && size > INT32_MAX) {
    st = hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                   "%s: the model would be %zu bytes, over protobuf's 2 GiB limit", path, size);
  }
  if (!st) {
    packed = malloc(size ? size : 1);
    st = packed ? hawq_write_file_atomic(path, packed, onnx__model_proto__pack(&m, packed), err)
                : oom_error(&ex);
  }
  free(packed);
  free(ex.nodes);
  free(ex.inits);
  free(ex.param_name);
  free(ex.param_t_name);
  hawq_strset_free(&ex.values);
  hawq_strset_free(&ex.node_names);
  pool_free(&ex.mem);
  return st;
}

hawq_status hawq_graph_save_onnx(const hawq_graph *g, const char *path, hawq_error *err) {
  return hawq_onnx_write_graph(g, path, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading extra initializers back                                                            */

void hawq_onnx_extra_set_free(hawq_onnx_extra_set *set) {
  if (!set) return;
  for (size_t k = 0; k < set->n; k++) {
    free(set->items[k].name);
    free(set->items[k].data);
  }
  free(set->items);
  free(set);
}

hawq_status hawq_onnx_read_extra(const char *path, const char *prefix, hawq_onnx_extra_set **out,
                                 hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  hawq_error_clear(err);
  *out = NULL;
  if (!prefix) prefix = "";
  void *data;
  size_t size;
  hawq_status st = hawq_read_file(path, INT32_MAX, NULL, &data, &size, err);
  if (st) return st;
  if (!onnx_nesting_within(data, size, HAWQ_MAX_ONNX_NESTING)) {
    free(data);
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: messages nested too deep", path);
  }
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
  free(data);
  if (!m) return hawq_fail(err, HAWQ_ERR_PARSE, "%s: not a valid ONNX model", path);
  /* External data lives next to the model. */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  hawq_onnx_extra_set *set = calloc(1, sizeof *set);
  size_t n_init = m->graph ? m->graph->n_initializer : 0;
  if (set) set->items = calloc(n_init + 1, sizeof *set->items);
  if (!set || !set->items) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
    goto done;
  }
  size_t plen = strlen(prefix);
  for (size_t k = 0; k < n_init; k++) {
    const Onnx__TensorProto *t = m->graph->initializer[k];
    if (!t->name || strncmp(t->name, prefix, plen)) continue;
    if (!t->has_data_type || t->data_type != ONNX_FLOAT) continue;
    char what[600];
    snprintf(what, sizeof what, "%s: initializer '%s'", path, t->name);
    value v;
    if ((st = tensor_to_value(t, dir, what, &v, err))) goto done;
    hawq_onnx_extra_item *it = &set->items[set->n];
    it->name = strdup(t->name);
    it->data = malloc((size_t)(v.count ? v.count : 1) * sizeof *it->data);
    if (!it->name || !it->data) {
      free(it->name);
      free(it->data);
      value_free(&v);
      st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", path);
      goto done;
    }
    it->rank = v.rank;
    memcpy(it->dims, v.dims, sizeof it->dims);
    it->count = v.count;
    memcpy(it->data, v.f, (size_t)v.count * sizeof *it->data);
    value_free(&v);
    set->n++;
  }
done:
  onnx__model_proto__free_unpacked(m, NULL);
  if (st) {
    hawq_onnx_extra_set_free(set);
    return st;
  }
  *out = set;
  return HAWQ_OK;
}
