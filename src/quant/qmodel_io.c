/* .hqm files: a QModel (quant/qmodel.h) stored as an ONNX ModelProto, so that ONNX tools (python's
 * onnx.load, Netron) can open it. docs/format.md is the specification; this file and it change
 * together, and a change that older readers would misread bumps hawq.format.version.
 *
 * Writing builds the whole ModelProto in memory (every part from one pool), packs it and writes it
 * atomically. Reading unpacks with protobuf-c, then checks the message field by field while it
 * rebuilds the QModel: every field the format does not define is refused, every initializer's
 * dtype, dims and byte count must be what the node's shapes imply (so no array the runtime
 * indexes can be short), the digest over the rebuilt model must match the stored one, and
 * hawq_qmodel_validate has the last word. Any failure is one line naming the file and the node,
 * initializer, tensor or metadata key, and what was expected. */
#include "quant/qmodel_io.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/preprocess.h"
#include "core/status.h"
#include "core/strset.h"
#include "onnx/onnx_internal.h"

#define IR_VERSION 8
#define ONNX_OPSET 13
#define DOMAIN_VERSION 1
#define PRODUCER "hawq"
#define GRAPH_NAME "hawq"
#define BATCH_DIM "batch"
#define MAX_DIM ((int64_t)1 << 31) /* a tensor dimension (hawq_qmodel_validate's limit) */
#define MAX_ITEMS (1 << 24)        /* tensors, nodes, initializers */

/* ------------------------------------------------------------------------------------------ */
/* The format's tables                                                                        */

/* Tensor types: their name in value_info doc strings, and the ONNX element type that holds
 * their values (4-bit types are packed two per byte; ONNX IR 8 has no 4-bit types). */
static const struct qtype_desc {
  const char *name;
  int onnx;
} qtypes[HAWQ_QT_COUNT] = {
    [HAWQ_QT_U4] = {"U4", ONNX_UINT8},   [HAWQ_QT_I4] = {"I4", ONNX_INT8},
    [HAWQ_QT_U8] = {"U8", ONNX_UINT8},   [HAWQ_QT_I8] = {"I8", ONNX_INT8},
    [HAWQ_QT_I16] = {"I16", ONNX_INT16}, [HAWQ_QT_I32] = {"I32", ONNX_INT32},
};

/* Node parameters, each one initializer named "<node>.<suffix>". */
typedef enum param {
  P_INPUT_MUL,
  P_INPUT_ADD,
  P_WEIGHT,
  P_BIAS,
  P_WEIGHT_SCALE,
  P_MULTIPLIER,
  P_SHIFT,
  P_RES_MULTIPLIER,
  P_RES_SHIFT,
  P_COUNT
} param;

static const char *const param_suffix[P_COUNT] = {
    "input_mul", "input_add",           "weight",         "bias", "weight_scale", "multiplier",
    "shift",     "residual_multiplier", "residual_shift",
};

/* Node attributes: name and number of ints (0: a single INT). */
typedef enum attr {
  A_KERNEL,
  A_STRIDES,
  A_DILATIONS,
  A_PADS,
  A_GROUP,
  A_CIP,
  A_WBITS,
  A_COUNT
} attr;

static const struct attr_desc {
  const char *name;
  int n_ints;
} attr_descs[A_COUNT] = {
    {"kernel_shape", 2}, {"strides", 2},           {"dilations", 2},   {"pads", 4},
    {"group", 0},        {"count_include_pad", 0}, {"weight_bits", 0},
};

#define WINDOW ((1u << A_KERNEL) | (1u << A_STRIDES) | (1u << A_DILATIONS) | (1u << A_PADS))
#define MAX_PARAMS 7

static const struct op_desc {
  const char *op_type;
  int n_params;
  param params[MAX_PARAMS];
  unsigned attrs; /* bit a: attribute a */
} op_descs[HAWQ_QOP_COUNT] = {
    [HAWQ_QOP_INPUT] = {"QInput", 4, {P_INPUT_MUL, P_INPUT_ADD, P_MULTIPLIER, P_SHIFT}, 0},
    [HAWQ_QOP_CONV] = {"QConv",
                       7,
                       {P_WEIGHT, P_BIAS, P_WEIGHT_SCALE, P_MULTIPLIER, P_SHIFT, P_RES_MULTIPLIER,
                        P_RES_SHIFT},
                       WINDOW | (1u << A_GROUP) | (1u << A_WBITS)},
    [HAWQ_QOP_ADD] = {"QAdd", 2, {P_MULTIPLIER, P_SHIFT}, 0},
    [HAWQ_QOP_REQUANT] = {"QRequant", 2, {P_MULTIPLIER, P_SHIFT}, 0},
    [HAWQ_QOP_MAXPOOL] = {"QMaxPool", 0, {P_COUNT}, WINDOW},
    [HAWQ_QOP_AVGPOOL] = {"QAvgPool", 2, {P_MULTIPLIER, P_SHIFT}, WINDOW | (1u << A_CIP)},
    [HAWQ_QOP_CONCAT] = {"QConcat", 2, {P_MULTIPLIER, P_SHIFT}, 0},
};

/* metadata_props keys, in the order they are written. */
typedef enum meta_key {
  M_FORMAT,
  M_VERSION,
  M_DIGEST,
  M_BITS,
  M_CALIBRATION,
  M_SOURCE_NAME,
  M_SOURCE_CRC32,
  M_SOURCE_SIZE,
  M_PIXEL_SCALE,
  M_MEAN,
  M_STD,
  M_COUNT
} meta_key;

static const char *const meta_names[M_COUNT] = {
    "hawq.format",         "hawq.format.version", "hawq.digest",       "hawq.bits",
    "hawq.calibration",    "hawq.source.name",    "hawq.source.crc32", "hawq.source.size",
    HAWQ_META_PIXEL_SCALE, HAWQ_META_MEAN,        HAWQ_META_STD,
};

static const char *S(const char *s) {
  return s ? s : "";
}

static bool present(const char *s) {
  return s && *s;
}

static int dtype_size(int dtype) {
  return dtype == ONNX_INT32 ? 4 : dtype == ONNX_DOUBLE ? 8 : dtype == ONNX_INT16 ? 2 : 1;
}

/* Attribute a of node n, as its ints. */
static void attr_get(const hawq_qnode *n, attr a, int64_t *v) {
  switch (a) {
    case A_KERNEL:
      v[0] = n->kernel[0], v[1] = n->kernel[1];
      break;
    case A_STRIDES:
      v[0] = n->stride[0], v[1] = n->stride[1];
      break;
    case A_DILATIONS:
      v[0] = n->dilation[0], v[1] = n->dilation[1];
      break;
    case A_PADS:
      for (int k = 0; k < 4; k++) v[k] = n->pad[k];
      break;
    case A_GROUP:
      v[0] = n->groups;
      break;
    case A_CIP:
      v[0] = n->count_include_pad;
      break;
    case A_WBITS:
      v[0] = n->weight_bits;
      break;
    case A_COUNT:
      break;
  }
}

/* The inverse of attr_get; every value already checked to fit an int. */
static void attr_set(hawq_qnode *n, attr a, const int64_t *v) {
  switch (a) {
    case A_KERNEL:
      n->kernel[0] = (int)v[0], n->kernel[1] = (int)v[1];
      break;
    case A_STRIDES:
      n->stride[0] = (int)v[0], n->stride[1] = (int)v[1];
      break;
    case A_DILATIONS:
      n->dilation[0] = (int)v[0], n->dilation[1] = (int)v[1];
      break;
    case A_PADS:
      for (int k = 0; k < 4; k++) n->pad[k] = (int)v[k];
      break;
    case A_GROUP:
      n->groups = (int)v[0];
      break;
    case A_CIP:
      n->count_include_pad = v[0] != 0;
      break;
    case A_WBITS:
      n->weight_bits = (int)v[0];
      break;
    case A_COUNT:
      break;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Parameter shapes: what a node's shapes imply for each of its initializers                  */

typedef struct pshape {
  int dtype;
  int rank;
  int64_t dims[4];
  int64_t count; /* elements */
} pshape;

/* Entries of a node's dyadic array, or -1 when its geometry gives none (a reader checks this
 * before validation: nothing here may overflow). n->output must be a valid index. */
static int64_t dyadic_count(const hawq_qmodel *m, const hawq_qnode *n) {
  switch (n->op) {
    case HAWQ_QOP_INPUT:
    case HAWQ_QOP_CONV:
      return m->tensors[n->output].c;
    case HAWQ_QOP_ADD:
      return 2;
    case HAWQ_QOP_REQUANT:
      return 1;
    case HAWQ_QOP_AVGPOOL:
      if (n->kernel[0] < 1 || n->kernel[0] > (1 << 20) || n->kernel[1] < 1 ||
          n->kernel[1] > (1 << 20)) {
        return -1;
      }
      return (int64_t)n->kernel[0] * n->kernel[1];
    case HAWQ_QOP_CONCAT:
      return n->n_inputs;
    case HAWQ_QOP_MAXPOOL:
    case HAWQ_QOP_COUNT:
      break;
  }
  return 0;
}

/* The dtype and dims of parameter p of node n (n->output a valid index); false with a reason
 * when n's geometry gives no size. */
static bool param_shape(const hawq_qmodel *m, const hawq_qnode *n, param p, pshape *s, char *why,
                        size_t why_size) {
  int64_t k = m->tensors[n->output].c;
  s->rank = 1;
  s->dtype = ONNX_INT32;
  switch (p) {
    case P_INPUT_MUL:
    case P_INPUT_ADD:
    case P_BIAS:
      s->count = k;
      break;
    case P_WEIGHT_SCALE:
      s->dtype = ONNX_DOUBLE;
      s->count = k;
      break;
    case P_MULTIPLIER:
    case P_SHIFT:
      s->count = dyadic_count(m, n);
      if (s->count < 0) {
        snprintf(why, why_size, "kernel_shape %d x %d gives no window count, expected 1..2^20 each",
                 n->kernel[0], n->kernel[1]);
        return false;
      }
      break;
    case P_RES_MULTIPLIER:
    case P_RES_SHIFT:
      s->count = 1;
      break;
    case P_WEIGHT: {
      int64_t bytes = hawq_qnode_weight_bytes(m, n);
      if (bytes < 1) {
        int64_t cin = n->n_inputs >= 1 && n->inputs[0] >= 0 && n->inputs[0] < m->n_tensors
                          ? m->tensors[n->inputs[0]].c
                          : -1;
        snprintf(why, why_size,
                 "kernel_shape %d x %d, group %d, weight_bits %d and %lld input channels give no "
                 "weight size, expected kernel 1..2^20, group >= 1, weight_bits 2..8",
                 n->kernel[0], n->kernel[1], n->groups, n->weight_bits, (long long)cin);
        return false;
      }
      /* hawq_qnode_weight_bytes succeeded: R*S*C/g <= 2^31, nothing below overflows. */
      int64_t cg = m->tensors[n->inputs[0]].c / n->groups;
      int64_t row = (int64_t)n->kernel[0] * n->kernel[1] * cg;
      if (n->weight_bits <= 4) {
        s->dtype = ONNX_UINT8;
        s->rank = 2;
        s->dims[0] = k;
        s->dims[1] = (row + 1) / 2;
      } else {
        s->dtype = ONNX_INT8;
        s->rank = 4;
        s->dims[0] = k;
        s->dims[1] = n->kernel[0];
        s->dims[2] = n->kernel[1];
        s->dims[3] = cg;
      }
      s->count = bytes;
      return true;
    }
    case P_COUNT:
      return false;
  }
  if (s->count > INT32_MAX) {
    snprintf(why, why_size, "its %s would have %lld entries, expected at most 2^31 - 1",
             param_suffix[p], (long long)s->count);
    return false;
  }
  s->dims[0] = s->count;
  return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Number formats (metadata values and tensor descriptions)                                   */

/* The shortest "%.*g" that reads back as v. */
static void format_double(double v, char *buf, size_t size) {
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(buf, size, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) return;
  }
}

/* A tensor's description, the doc_string of its value_info. */
static void format_qdoc(const hawq_qtensor *t, char *buf, size_t size) {
  char scale[40];
  format_double(t->scale, scale, sizeof scale);
  snprintf(buf, size, "qtype=%s lo=%" PRId32 " hi=%" PRId32 " scale=%s", qtypes[t->type].name,
           t->lo, t->hi, scale);
}

/* s as an int64 written as "%lld" writes it (canonical: no sign, space or leading zero extra). */
static bool parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  char back[32];
  snprintf(back, sizeof back, "%lld", v);
  if (end == s || *end || errno || strcmp(back, s)) return false;
  *out = v;
  return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  char back[32];
  snprintf(back, sizeof back, "%llu", v);
  if (end == s || *end || errno || strcmp(back, s)) return false;
  *out = v;
  return true;
}

/* Exactly `digits` lowercase hex digits. */
static bool parse_hex(const char *s, int digits, uint64_t *out) {
  uint64_t v = 0;
  for (int k = 0; k < digits; k++) {
    char c = s[k];
    if (c >= '0' && c <= '9') {
      v = v << 4 | (uint64_t)(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = v << 4 | (uint64_t)(c - 'a' + 10);
    } else {
      return false;
    }
  }
  if (s[digits]) return false;
  *out = v;
  return true;
}

/* "qtype=I8 lo=-127 hi=127 scale=0.0123" into t's type, range and scale; false unless s is
 * exactly what format_qdoc writes for them. */
static bool parse_qdoc(const char *s, hawq_qtensor *t) {
  char buf[160];
  size_t len = strlen(s);
  if (len >= sizeof buf) return false;
  memcpy(buf, s, len + 1);
  static const char *const keys[4] = {"qtype=", "lo=", "hi=", "scale="};
  char *val[4], *p = buf;
  for (int k = 0; k < 4; k++) {
    size_t kl = strlen(keys[k]);
    if (strncmp(p, keys[k], kl)) return false;
    val[k] = p + kl;
    char *sp = strchr(val[k], ' ');
    if (k < 3) {
      if (!sp) return false;
      *sp = '\0';
      p = sp + 1;
    } else if (sp) {
      return false;
    }
  }
  int type = -1;
  for (int q = 0; q < HAWQ_QT_COUNT; q++) {
    if (!strcmp(val[0], qtypes[q].name)) type = q;
  }
  int64_t lo, hi;
  if (type < 0 || !parse_i64(val[1], &lo) || !parse_i64(val[2], &hi) || lo < INT32_MIN ||
      lo > INT32_MAX || hi < INT32_MIN || hi > INT32_MAX) {
    return false;
  }
  char *end;
  double scale = strtod(val[3], &end);
  if (end == val[3] || *end || !isfinite(scale)) return false;
  t->type = (hawq_qtype)type;
  t->lo = (int32_t)lo;
  t->hi = (int32_t)hi;
  t->scale = scale;
  char back[160];
  format_qdoc(t, back, sizeof back);
  return !strcmp(back, s);
}

/* ------------------------------------------------------------------------------------------ */
/* Digest: 64-bit FNV-1a over the canonical serialization (docs/format.md, "Digest")          */

typedef struct hasher {
  uint64_t h;
} hasher;

static void h_bytes(hasher *x, const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = x->h;
  for (size_t k = 0; k < n; k++) h = (h ^ b[k]) * 1099511628211ull;
  x->h = h;
}

static void h_u64(hasher *x, uint64_t v) {
  uint8_t b[8];
  for (int k = 0; k < 8; k++) b[k] = (uint8_t)(v >> (8 * k));
  h_bytes(x, b, 8);
}

static void h_u32(hasher *x, uint32_t v) {
  uint8_t b[4];
  for (int k = 0; k < 4; k++) b[k] = (uint8_t)(v >> (8 * k));
  h_bytes(x, b, 4);
}

static void h_i32(hasher *x, int32_t v) {
  h_u32(x, (uint32_t)v);
}
static void h_i64(hasher *x, int64_t v) {
  h_u64(x, (uint64_t)v);
}

static void h_f64(hasher *x, double v) {
  uint64_t bits;
  memcpy(&bits, &v, 8);
  h_u64(x, bits);
}

static void h_f32(hasher *x, float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  h_u32(x, bits);
}

static void h_str(hasher *x, const char *s) {
  if (!s) {
    h_u32(x, UINT32_MAX);
    return;
  }
  size_t n = strlen(s);
  h_u32(x, (uint32_t)n);
  h_bytes(x, s, n);
}

/* Parameter p of node n: its raw_data's byte length (u64), then the bytes themselves. */
static void h_param(hasher *x, const hawq_qmodel *m, const hawq_qnode *n, param p) {
  pshape s;
  char why[8];
  if (!param_shape(m, n, p, &s, why, sizeof why)) s.count = 0;
  h_u64(x, (uint64_t)s.count * (uint64_t)dtype_size(s.dtype));
  for (int64_t k = 0; k < s.count; k++) {
    switch (p) {
      case P_INPUT_MUL:
        h_i32(x, n->input_mul[k]);
        break;
      case P_INPUT_ADD:
        h_i32(x, n->input_add[k]);
        break;
      case P_WEIGHT:
        h_bytes(x, n->weight, (size_t)s.count);
        k = s.count;
        break;
      case P_BIAS:
        h_i32(x, n->bias[k]);
        break;
      case P_WEIGHT_SCALE:
        h_f64(x, n->weight_scale ? n->weight_scale[k] : 0.0);
        break;
      case P_MULTIPLIER:
        h_i32(x, n->dyadic[k].m);
        break;
      case P_SHIFT:
        h_i32(x, n->dyadic[k].c);
        break;
      case P_RES_MULTIPLIER:
        h_i32(x, n->residual_dyadic.m);
        break;
      case P_RES_SHIFT:
        h_i32(x, n->residual_dyadic.c);
        break;
      case P_COUNT:
        break;
    }
  }
}

uint64_t hawq_qmodel_digest(const hawq_qmodel *m) {
  hasher x = {14695981039346656037ull};
  h_str(&x, HAWQ_QMODEL_FORMAT);
  h_u32(&x, HAWQ_QMODEL_FORMAT_VERSION);
  h_i32(&x, m->n_tensors);
  for (int t = 0; t < m->n_tensors; t++) {
    const hawq_qtensor *q = &m->tensors[t];
    h_str(&x, q->name);
    h_str(&x, (int)q->type >= 0 && q->type < HAWQ_QT_COUNT ? qtypes[q->type].name : "?");
    h_i32(&x, q->lo);
    h_i32(&x, q->hi);
    h_i64(&x, q->h);
    h_i64(&x, q->w);
    h_i64(&x, q->c);
    h_f64(&x, q->scale);
    h_i32(&x, q->producer);
  }
  h_i32(&x, m->n_nodes);
  for (int i = 0; i < m->n_nodes; i++) {
    const hawq_qnode *n = &m->nodes[i];
    const struct op_desc *d = &op_descs[n->op];
    h_str(&x, d->op_type);
    h_str(&x, n->name);
    h_i32(&x, n->n_inputs);
    for (int j = 0; j < n->n_inputs; j++) h_i32(&x, n->inputs[j]);
    h_i32(&x, n->output);
    for (int a = 0; a < A_COUNT; a++) {
      if (!(d->attrs & (1u << a))) continue;
      int64_t v[4];
      attr_get(n, (attr)a, v);
      int count = attr_descs[a].n_ints ? attr_descs[a].n_ints : 1;
      for (int k = 0; k < count; k++) h_i64(&x, v[k]);
    }
    for (int j = 0; j < d->n_params; j++) h_param(&x, m, n, d->params[j]);
  }
  h_i32(&x, m->input);
  h_i32(&x, m->output);
  const hawq_preprocess *pp = &m->preprocess;
  uint8_t has = pp->has_metadata ? 1 : 0;
  h_bytes(&x, &has, 1);
  if (has) {
    int ch = pp->channels < 0                   ? 0
             : pp->channels > HAWQ_MAX_CHANNELS ? HAWQ_MAX_CHANNELS
                                                : pp->channels;
    h_f32(&x, pp->pixel_scale);
    h_i32(&x, ch);
    for (int c = 0; c < ch; c++) h_f32(&x, pp->mean[c]);
    for (int c = 0; c < ch; c++) h_f32(&x, pp->std[c]);
  }
  h_str(&x, m->bits_json);
  h_str(&x, m->calibration_json);
  h_str(&x, m->source_name);
  h_u32(&x, m->source_crc32);
  h_u64(&x, m->source_size);
  return x.h;
}

/* ------------------------------------------------------------------------------------------ */
/* Writing                                                                                    */

/* Every allocation that makes up the message, freed together once it is packed. */
typedef struct pool {
  void **p;
  size_t n, cap;
} pool;

typedef struct writer {
  const hawq_qmodel *m;
  const char *what;
  hawq_error *err;
  pool mem;
  bool oom;
  hawq_strset names; /* tensor and initializer names in use */
  Onnx__TensorProto **inits;
  size_t n_inits;
} writer;

static void *w_alloc(writer *w, size_t size) {
  if (w->oom) return NULL;
  pool *pl = &w->mem;
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? 2 * pl->cap : 256;
    void **p = realloc(pl->p, cap * sizeof *p);
    if (!p) {
      w->oom = true;
      return NULL;
    }
    pl->p = p;
    pl->cap = cap;
  }
  void *q = calloc(1, size ? size : 1);
  if (!q) {
    w->oom = true;
    return NULL;
  }
  pl->p[pl->n++] = q;
  return q;
}

static char *w_strdup(writer *w, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = w_alloc(w, n);
  if (d) memcpy(d, s, n);
  return d;
}

/* "<base>.<suffix>", or with "#2", "#3", ... appended until no tensor or initializer has it. */
static char *unique_name(writer *w, const char *base, const char *suffix) {
  size_t size = strlen(base) + strlen(suffix) + 32;
  char *name = w_alloc(w, size);
  if (!name) return NULL;
  snprintf(name, size, "%s.%s", base, suffix);
  for (long k = 2; hawq_strset_has(&w->names, name); k++) {
    snprintf(name, size, "%s.%s#%ld", base, suffix, k);
  }
  if (!hawq_strset_add(&w->names, name)) w->oom = true;
  return name;
}

static void put_le32(uint8_t *p, uint32_t v) {
  for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* Parameter p of node n as a new initializer; returns its name (NULL when out of memory). */
static char *write_param(writer *w, const hawq_qnode *n, param p) {
  pshape s;
  char why[300];
  if (!param_shape(w->m, n, p, &s, why, sizeof why)) return NULL; /* validated: cannot happen */
  size_t bytes = (size_t)s.count * (size_t)dtype_size(s.dtype);
  Onnx__TensorProto *t = w_alloc(w, sizeof *t);
  int64_t *dims = w_alloc(w, (size_t)s.rank * sizeof *dims);
  uint8_t *raw = w_alloc(w, bytes);
  char *name = unique_name(w, n->name, param_suffix[p]);
  if (w->oom) return NULL;
  onnx__tensor_proto__init(t);
  t->name = name;
  t->has_data_type = true;
  t->data_type = s.dtype;
  t->n_dims = (size_t)s.rank;
  memcpy(dims, s.dims, (size_t)s.rank * sizeof *dims);
  t->dims = dims;
  t->has_raw_data = true;
  t->raw_data.len = bytes;
  t->raw_data.data = raw;
  for (int64_t k = 0; k < s.count; k++) {
    uint8_t *e = raw + 4 * k;
    switch (p) {
      case P_INPUT_MUL:
        put_le32(e, (uint32_t)n->input_mul[k]);
        break;
      case P_INPUT_ADD:
        put_le32(e, (uint32_t)n->input_add[k]);
        break;
      case P_WEIGHT:
        memcpy(raw, n->weight, bytes);
        k = s.count;
        break;
      case P_BIAS:
        put_le32(e, (uint32_t)n->bias[k]);
        break;
      case P_WEIGHT_SCALE: {
        double v = n->weight_scale ? n->weight_scale[k] : 0.0;
        uint64_t bits;
        memcpy(&bits, &v, 8);
        put_le64(raw + 8 * k, bits);
        break;
      }
      case P_MULTIPLIER:
        put_le32(e, (uint32_t)n->dyadic[k].m);
        break;
      case P_SHIFT:
        put_le32(e, (uint32_t)n->dyadic[k].c);
        break;
      case P_RES_MULTIPLIER:
        put_le32(e, (uint32_t)n->residual_dyadic.m);
        break;
      case P_RES_SHIFT:
        put_le32(e, (uint32_t)n->residual_dyadic.c);
        break;
      case P_COUNT:
        break;
    }
  }
  w->inits[w->n_inits++] = t;
  return name;
}

static Onnx__NodeProto *write_node(writer *w, const hawq_qnode *n) {
  const struct op_desc *d = &op_descs[n->op];
  Onnx__NodeProto *np = w_alloc(w, sizeof *np);
  char **ins = w_alloc(w, (size_t)(n->n_inputs + d->n_params) * sizeof *ins);
  char **outs = w_alloc(w, sizeof *outs);
  Onnx__AttributeProto **attrs = w_alloc(w, A_COUNT * sizeof *attrs);
  if (w->oom) return NULL;
  onnx__node_proto__init(np);
  np->name = n->name;
  np->op_type = (char *)d->op_type;
  np->domain = HAWQ_QMODEL_DOMAIN;
  for (int j = 0; j < n->n_inputs; j++) {
    ins[j] = n->inputs[j] < 0 ? "" : w->m->tensors[n->inputs[j]].name;
  }
  for (int j = 0; j < d->n_params; j++) {
    if (!(ins[n->n_inputs + j] = write_param(w, n, d->params[j]))) return NULL;
  }
  np->n_input = (size_t)(n->n_inputs + d->n_params);
  np->input = ins;
  outs[0] = w->m->tensors[n->output].name;
  np->n_output = 1;
  np->output = outs;
  np->attribute = attrs;
  for (int a = 0; a < A_COUNT; a++) {
    if (!(d->attrs & (1u << a))) continue;
    Onnx__AttributeProto *at = w_alloc(w, sizeof *at);
    int64_t *ints = w_alloc(w, 4 * sizeof *ints);
    if (w->oom) return NULL;
    onnx__attribute_proto__init(at);
    at->name = (char *)attr_descs[a].name;
    at->has_type = true;
    attr_get(n, (attr)a, ints);
    if (attr_descs[a].n_ints) {
      at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
      at->n_ints = (size_t)attr_descs[a].n_ints;
      at->ints = ints;
    } else {
      at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
      at->has_i = true;
      at->i = ints[0];
    }
    attrs[np->n_attribute++] = at;
  }
  return np;
}

/* Tensor t's value_info: its ONNX type [batch, h, w, c] ([batch, classes] for the model output)
 * and, when described, its hawq description in doc_string. */
static Onnx__ValueInfoProto *value_info(writer *w, int t, bool described) {
  const hawq_qtensor *x = &w->m->tensors[t];
  int rank = t == w->m->output ? 2 : 4;
  int64_t dims[4] = {0, x->h, x->w, x->c};
  if (rank == 2) dims[1] = x->c;
  Onnx__ValueInfoProto *vi = w_alloc(w, sizeof *vi);
  Onnx__TypeProto *tp = w_alloc(w, sizeof *tp);
  Onnx__TypeProto__Tensor *tt = w_alloc(w, sizeof *tt);
  Onnx__TensorShapeProto *sh = w_alloc(w, sizeof *sh);
  Onnx__TensorShapeProto__Dimension **dv = w_alloc(w, (size_t)rank * sizeof *dv);
  for (int k = 0; k < rank && !w->oom; k++) dv[k] = w_alloc(w, sizeof **dv);
  char doc[160];
  format_qdoc(x, doc, sizeof doc);
  char *docp = described ? w_strdup(w, doc) : NULL;
  if (w->oom) return NULL;
  onnx__value_info_proto__init(vi);
  onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt);
  onnx__tensor_shape_proto__init(sh);
  for (int k = 0; k < rank; k++) {
    onnx__tensor_shape_proto__dimension__init(dv[k]);
    if (k == 0) {
      dv[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dv[k]->dim_param = BATCH_DIM;
    } else {
      dv[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dv[k]->dim_value = dims[k];
    }
  }
  sh->n_dim = (size_t)rank;
  sh->dim = dv;
  tt->has_elem_type = true;
  tt->elem_type = qtypes[x->type].onnx;
  tt->shape = sh;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  vi->name = x->name;
  vi->type = tp;
  vi->doc_string = docp;
  return vi;
}

/* What hawq_qmodel_validate leaves open but the file needs: names ONNX can refer to, and
 * preprocessing that reads back as the same floats. */
static hawq_status check_writable(writer *w) {
  const hawq_qmodel *m = w->m;
  for (int t = 0; t < m->n_tensors; t++) {
    const char *name = m->tensors[t].name;
    if (!*name) {
      return hawq_fail(w->err, HAWQ_ERR_INVALID_ARG,
                       "%s: tensor %d has an empty name, expected a name ONNX can refer to",
                       w->what, t);
    }
    if (hawq_strset_has(&w->names, name)) {
      return hawq_fail(w->err, HAWQ_ERR_INVALID_ARG,
                       "%s: tensor name '%s' is used twice, expected unique tensor names", w->what,
                       name);
    }
    if (!hawq_strset_add(&w->names, name)) {
      return hawq_fail(w->err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", w->what);
    }
  }
  const hawq_preprocess *pp = &m->preprocess;
  if (pp->has_metadata) {
    bool ok = pp->channels >= 1 && pp->channels <= HAWQ_MAX_CHANNELS && isfinite(pp->pixel_scale) &&
              pp->pixel_scale > 0;
    for (int c = 0; ok && c < pp->channels; c++) {
      ok = isfinite(pp->mean[c]) && isfinite(pp->std[c]) && pp->std[c] > 0;
    }
    if (!ok) {
      return hawq_fail(w->err, HAWQ_ERR_INVALID_ARG,
                       "%s: preprocessing has %d channels, pixel_scale %g, expected 1..%d channels "
                       "and finite values with pixel_scale and std > 0",
                       w->what, pp->channels, (double)pp->pixel_scale, HAWQ_MAX_CHANNELS);
    }
    hawq_status st = hawq_preprocess_check(pp, (int)m->tensors[m->input].c, w->what, w->err);
    if (st) return st;
  }
  return HAWQ_OK;
}

static void meta_add(writer *w, Onnx__StringStringEntryProto **e, size_t *n, meta_key k,
                     const char *val) {
  Onnx__StringStringEntryProto *p = w_alloc(w, sizeof *p);
  char *v = w_strdup(w, val);
  if (!p || !v) return;
  onnx__string_string_entry_proto__init(p);
  p->key = (char *)meta_names[k];
  p->value = v;
  e[(*n)++] = p;
}

static hawq_status build(writer *w, Onnx__ModelProto *mp) {
  const hawq_qmodel *m = w->m;
  hawq_status st = check_writable(w);
  if (st) return st;
  size_t n_inits = 0;
  for (int i = 0; i < m->n_nodes; i++) n_inits += (size_t)op_descs[m->nodes[i].op].n_params;
  w->inits = w_alloc(w, n_inits * sizeof *w->inits);
  Onnx__NodeProto **nodes = w_alloc(w, (size_t)m->n_nodes * sizeof *nodes);
  for (int i = 0; i < m->n_nodes && !w->oom; i++) {
    nodes[i] = write_node(w, &m->nodes[i]);
    if (!nodes[i] && !w->oom) {
      return hawq_fail(w->err, HAWQ_ERR_INTERNAL, "%s: node '%s' (%s): its parameters have no size",
                       w->what, m->nodes[i].name, op_descs[m->nodes[i].op].op_type);
    }
  }
  Onnx__ValueInfoProto **vis = w_alloc(w, (size_t)m->n_tensors * sizeof *vis);
  for (int t = 0; t < m->n_tensors && !w->oom; t++) vis[t] = value_info(w, t, true);
  Onnx__ValueInfoProto **ins = w_alloc(w, sizeof *ins), **outs = w_alloc(w, sizeof *outs);
  if (!w->oom) ins[0] = value_info(w, m->input, false);
  if (!w->oom) outs[0] = value_info(w, m->output, false);

  Onnx__StringStringEntryProto **meta = w_alloc(w, M_COUNT * sizeof *meta);
  size_t n_meta = 0;
  char buf[HAWQ_MAX_CHANNELS * 20];
  meta_add(w, meta, &n_meta, M_FORMAT, HAWQ_QMODEL_FORMAT);
  snprintf(buf, sizeof buf, "%d", HAWQ_QMODEL_FORMAT_VERSION);
  meta_add(w, meta, &n_meta, M_VERSION, buf);
  snprintf(buf, sizeof buf, "%016" PRIx64, hawq_qmodel_digest(m));
  meta_add(w, meta, &n_meta, M_DIGEST, buf);
  if (m->bits_json) meta_add(w, meta, &n_meta, M_BITS, m->bits_json);
  if (m->calibration_json) meta_add(w, meta, &n_meta, M_CALIBRATION, m->calibration_json);
  if (m->source_name) meta_add(w, meta, &n_meta, M_SOURCE_NAME, m->source_name);
  snprintf(buf, sizeof buf, "%08" PRIx32, m->source_crc32);
  meta_add(w, meta, &n_meta, M_SOURCE_CRC32, buf);
  snprintf(buf, sizeof buf, "%" PRIu64, m->source_size);
  meta_add(w, meta, &n_meta, M_SOURCE_SIZE, buf);
  const hawq_preprocess *pp = &m->preprocess;
  if (pp->has_metadata) {
    hawq_format_float_list(&pp->pixel_scale, 1, buf, sizeof buf);
    meta_add(w, meta, &n_meta, M_PIXEL_SCALE, buf);
    hawq_format_float_list(pp->mean, pp->channels, buf, sizeof buf);
    meta_add(w, meta, &n_meta, M_MEAN, buf);
    hawq_format_float_list(pp->std, pp->channels, buf, sizeof buf);
    meta_add(w, meta, &n_meta, M_STD, buf);
  }
  Onnx__GraphProto *g = w_alloc(w, sizeof *g);
  Onnx__OperatorSetIdProto *ops = w_alloc(w, 2 * sizeof *ops);
  Onnx__OperatorSetIdProto **opsets = w_alloc(w, 2 * sizeof *opsets);
  if (w->oom) return hawq_fail(w->err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", w->what);

  onnx__graph_proto__init(g);
  g->name = GRAPH_NAME;
  g->n_node = (size_t)m->n_nodes;
  g->node = nodes;
  g->n_initializer = w->n_inits;
  g->initializer = w->inits;
  g->n_input = 1;
  g->input = ins;
  g->n_output = 1;
  g->output = outs;
  g->n_value_info = (size_t)m->n_tensors;
  g->value_info = vis;
  for (int k = 0; k < 2; k++) {
    onnx__operator_set_id_proto__init(&ops[k]);
    ops[k].domain = k ? HAWQ_QMODEL_DOMAIN : "";
    ops[k].has_version = true;
    ops[k].version = k ? DOMAIN_VERSION : ONNX_OPSET;
    opsets[k] = &ops[k];
  }
  mp->has_ir_version = true;
  mp->ir_version = IR_VERSION;
  mp->n_opset_import = 2;
  mp->opset_import = opsets;
  mp->producer_name = PRODUCER;
  mp->graph = g;
  mp->n_metadata_props = n_meta;
  mp->metadata_props = meta;
  return HAWQ_OK;
}

hawq_status hawq_qmodel_serialize(const hawq_qmodel *m, const char *what, void **data, size_t *size,
                                  hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  hawq_error_clear(err);
  if (!what) what = "<buffer>";
  if (!data || !size) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no output buffer", what);
  *data = NULL;
  *size = 0;
  hawq_status st = hawq_qmodel_validate(m, what, err);
  if (st) return st;
  writer w = {.m = m, .what = what, .err = err};
  Onnx__ModelProto mp;
  onnx__model_proto__init(&mp);
  st = build(&w, &mp);
  if (!st && w.oom) st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", what);
  if (!st) {
    size_t n = onnx__model_proto__get_packed_size(&mp);
    if (n > HAWQ_QMODEL_MAX_FILE_BYTES) {
      st = hawq_fail(err, HAWQ_ERR_UNSUPPORTED,
                     "%s: the model would be %zu bytes, over protobuf's 2 GiB limit", what, n);
    } else if (!(*data = malloc(n ? n : 1))) {
      st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory for %zu bytes", what, n);
    } else {
      *size = onnx__model_proto__pack(&mp, *data);
    }
  }
  for (size_t k = 0; k < w.mem.n; k++) free(w.mem.p[k]);
  free(w.mem.p);
  hawq_strset_free(&w.names);
  return st;
}

hawq_status hawq_qmodel_save(const hawq_qmodel *m, const char *path, hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  hawq_error_clear(err);
  if (!path) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "save: no path");
  void *data;
  size_t size;
  hawq_status st = hawq_qmodel_serialize(m, path, &data, &size, err);
  if (st) return st;
  st = hawq_write_file_atomic(path, data, size, err);
  free(data);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading                                                                                    */

/* Names to indices (open addressing over borrowed strings). */
typedef struct namemap {
  const char **keys;
  int *vals;
  size_t cap;
} namemap;

static bool nm_init(namemap *nm, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n + 1) cap *= 2;
  nm->keys = calloc(cap, sizeof *nm->keys);
  nm->vals = calloc(cap, sizeof *nm->vals);
  nm->cap = cap;
  return nm->keys && nm->vals;
}

static void nm_free(namemap *nm) {
  free(nm->keys);
  free(nm->vals);
}

static int nm_get(const namemap *nm, const char *key) {
  for (size_t k = hawq_str_hash(key) & (nm->cap - 1); nm->keys[k]; k = (k + 1) & (nm->cap - 1)) {
    if (!strcmp(nm->keys[k], key)) return nm->vals[k];
  }
  return -1;
}

/* Adds key -> val; returns -1, or the value key already has (then nothing is added). */
static int nm_put(namemap *nm, const char *key, int val) {
  size_t k = hawq_str_hash(key) & (nm->cap - 1);
  for (; nm->keys[k]; k = (k + 1) & (nm->cap - 1)) {
    if (!strcmp(nm->keys[k], key)) return nm->vals[k];
  }
  nm->keys[k] = key;
  nm->vals[k] = val;
  return -1;
}

typedef struct reader {
  const char *file;
  hawq_error *err;
  unsigned flags;
  const Onnx__GraphProto *g;
  hawq_qmodel *m;
  namemap tensors, inits;
  unsigned char *init_used;
  const char *meta[M_COUNT]; /* values, NULL when absent */
} reader;

static hawq_status HAWQ_PRINTF(3, 4) rfail(const reader *r, hawq_status st, const char *fmt, ...) {
  char buf[480];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return hawq_fail(r->err, st, "%s: %s", r->file, buf);
}

static hawq_status HAWQ_PRINTF(4, 5)
    nfail(const reader *r, const Onnx__NodeProto *np, int index, const char *fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (present(np->name)) {
    return hawq_fail(r->err, HAWQ_ERR_PARSE, "%s: node '%s' (%s): %s", r->file, np->name,
                     S(np->op_type), buf);
  }
  return hawq_fail(r->err, HAWQ_ERR_PARSE, "%s: node #%d (unnamed, %s): %s", r->file, index,
                   S(np->op_type), buf);
}

static hawq_status oom(const reader *r) {
  return hawq_fail(r->err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", r->file);
}

/* Protobuf fields this build's onnx.proto does not know: never written by the format. */
static bool has_unknown(const void *msg) {
  return ((const ProtobufCMessage *)msg)->n_unknown_fields != 0;
}

/* TensorProto.DataType's name for dtype, as ONNX spells it. */
static const char *dtype_name(int dtype) {
  static const char *const names[] = {"UNDEFINED",  "FLOAT",   "UINT8",  "INT8",   "UINT16",
                                      "INT16",      "INT32",   "INT64",  "STRING", "BOOL",
                                      "FLOAT16",    "DOUBLE",  "UINT32", "UINT64", "COMPLEX64",
                                      "COMPLEX128", "BFLOAT16"};
  return dtype >= 0 && dtype < (int)(sizeof names / sizeof *names) ? names[dtype]
                                                                   : "an unknown dtype";
}

static void dims_str(size_t rank, const int64_t *dims, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (size_t k = 0; k < rank && used < size; k++) {
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", k ? ", " : "", (long long)dims[k]);
  }
  if (used < size) snprintf(buf + used, size - used, "]");
}

/* ---- metadata ---- */

static hawq_status read_metadata(reader *r, const Onnx__ModelProto *mp) {
  for (size_t k = 0; k < mp->n_metadata_props; k++) {
    const Onnx__StringStringEntryProto *e = mp->metadata_props[k];
    if (has_unknown(e)) {
      return rfail(r, HAWQ_ERR_PARSE, "metadata entry %zu has fields the format does not define",
                   k);
    }
    for (int j = 0; j < M_COUNT; j++) {
      if (strcmp(S(e->key), meta_names[j])) continue;
      if (r->meta[j]) {
        return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' appears twice, expected once",
                     meta_names[j]);
      }
      r->meta[j] = S(e->value);
    }
  }
  if (!r->meta[M_FORMAT]) {
    return rfail(r, HAWQ_ERR_PARSE,
                 "not a hawq integer model: metadata '%s' is missing, expected '%s' (a float ONNX "
                 "model is loaded with hawq_graph_load_onnx)",
                 meta_names[M_FORMAT], HAWQ_QMODEL_FORMAT);
  }
  if (strcmp(r->meta[M_FORMAT], HAWQ_QMODEL_FORMAT)) {
    return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' is '%.60s', expected '%s'", meta_names[M_FORMAT],
                 r->meta[M_FORMAT], HAWQ_QMODEL_FORMAT);
  }
  const char *v = r->meta[M_VERSION];
  int64_t version;
  if (!v) {
    return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' is missing, expected '%d'",
                 meta_names[M_VERSION], HAWQ_QMODEL_FORMAT_VERSION);
  }
  if (!parse_i64(v, &version) || version != HAWQ_QMODEL_FORMAT_VERSION) {
    return rfail(r, HAWQ_ERR_UNSUPPORTED,
                 "format version '%.40s' is not one this build reads (it reads version %d)", v,
                 HAWQ_QMODEL_FORMAT_VERSION);
  }
  static const meta_key required[3] = {M_DIGEST, M_SOURCE_CRC32, M_SOURCE_SIZE};
  for (int k = 0; k < 3; k++) {
    if (!r->meta[required[k]]) {
      return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' is missing", meta_names[required[k]]);
    }
  }
  return HAWQ_OK;
}

static char *dup_or_null(const char *s, bool *oom_flag) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom_flag = true;
  return d;
}

/* One float list from metadata key k into out (at most max values), canonical. */
static hawq_status read_floats(reader *r, meta_key k, bool positive, float *out, int max,
                               int *count) {
  char what[300];
  snprintf(what, sizeof what, "%s: metadata '%s'", r->file, meta_names[k]);
  if (hawq_parse_float_list(r->meta[k], what, positive, out, max, count, r->err)) {
    r->err->status = HAWQ_ERR_PARSE; /* a bad value in the file, not a bad argument */
    return HAWQ_ERR_PARSE;
  }
  char back[HAWQ_MAX_CHANNELS * 20];
  hawq_format_float_list(out, *count, back, sizeof back);
  if (strcmp(back, r->meta[k])) {
    return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' is '%.100s', expected it written as '%.100s'",
                 meta_names[k], r->meta[k], back);
  }
  return HAWQ_OK;
}

/* The model's provenance and preprocessing from the metadata read earlier. */
static hawq_status apply_metadata(reader *r) {
  hawq_qmodel *m = r->m;
  bool fail = false;
  m->bits_json = dup_or_null(r->meta[M_BITS], &fail);
  m->calibration_json = dup_or_null(r->meta[M_CALIBRATION], &fail);
  m->source_name = dup_or_null(r->meta[M_SOURCE_NAME], &fail);
  if (fail) return oom(r);
  uint64_t crc, size;
  if (!parse_hex(r->meta[M_SOURCE_CRC32], 8, &crc)) {
    return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' is '%.40s', expected 8 lowercase hex digits",
                 meta_names[M_SOURCE_CRC32], r->meta[M_SOURCE_CRC32]);
  }
  if (!parse_u64(r->meta[M_SOURCE_SIZE], &size)) {
    return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' is '%.40s', expected a decimal byte count",
                 meta_names[M_SOURCE_SIZE], r->meta[M_SOURCE_SIZE]);
  }
  m->source_crc32 = (uint32_t)crc;
  m->source_size = size;

  int n_pp = !!r->meta[M_PIXEL_SCALE] + !!r->meta[M_MEAN] + !!r->meta[M_STD];
  m->preprocess = hawq_preprocess_default();
  if (n_pp == 0) return HAWQ_OK;
  if (n_pp != 3) {
    return rfail(r, HAWQ_ERR_PARSE, "metadata has %d of '%s', '%s' and '%s', expected all or none",
                 n_pp, meta_names[M_PIXEL_SCALE], meta_names[M_MEAN], meta_names[M_STD]);
  }
  hawq_preprocess pp = hawq_preprocess_default();
  int n1, n_mean, n_std;
  hawq_status st;
  if ((st = read_floats(r, M_PIXEL_SCALE, true, &pp.pixel_scale, 1, &n1)) ||
      (st = read_floats(r, M_MEAN, false, pp.mean, HAWQ_MAX_CHANNELS, &n_mean)) ||
      (st = read_floats(r, M_STD, true, pp.std, HAWQ_MAX_CHANNELS, &n_std))) {
    return st;
  }
  if (n_mean != n_std) {
    return rfail(r, HAWQ_ERR_PARSE, "metadata has %d mean and %d std values, expected as many",
                 n_mean, n_std);
  }
  pp.channels = n_mean;
  pp.has_metadata = true;
  char what[300];
  snprintf(what, sizeof what, "%s: metadata", r->file);
  if (m->input >= 0 && hawq_preprocess_check(&pp, (int)m->tensors[m->input].c, what, r->err)) {
    r->err->status = HAWQ_ERR_PARSE;
    return HAWQ_ERR_PARSE;
  }
  m->preprocess = pp;
  return HAWQ_OK;
}

/* ---- the model and graph envelope ---- */

static hawq_status read_envelope(reader *r, const Onnx__ModelProto *mp) {
  if (has_unknown(mp)) {
    return rfail(r, HAWQ_ERR_PARSE, "the model has fields this build's onnx.proto does not know");
  }
  if (!mp->has_ir_version || mp->ir_version != IR_VERSION) {
    return rfail(r, HAWQ_ERR_PARSE, "ir_version is %lld, expected %d",
                 mp->has_ir_version ? (long long)mp->ir_version : -1LL, IR_VERSION);
  }
  if (strcmp(S(mp->producer_name), PRODUCER)) {
    return rfail(r, HAWQ_ERR_PARSE, "producer_name is '%.60s', expected '%s'", S(mp->producer_name),
                 PRODUCER);
  }
  if (present(mp->producer_version) || present(mp->domain) || present(mp->doc_string) ||
      mp->has_model_version || mp->n_training_info || mp->n_functions) {
    return rfail(r, HAWQ_ERR_PARSE,
                 "the model sets producer_version, domain, doc_string, model_version, "
                 "training_info or functions, which the format does not define");
  }
  bool onnx_seen = false, hawq_seen = false;
  for (size_t k = 0; k < mp->n_opset_import; k++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[k];
    long long v = o->has_version ? (long long)o->version : -1;
    if (has_unknown(o)) {
      return rfail(r, HAWQ_ERR_PARSE, "opset_import %zu has fields the format does not define", k);
    }
    if (!strcmp(S(o->domain), HAWQ_QMODEL_DOMAIN) && !hawq_seen) {
      hawq_seen = true;
      if (v != DOMAIN_VERSION) {
        return rfail(r, HAWQ_ERR_UNSUPPORTED,
                     "operator set '%s' version %lld is not one this build reads (it reads "
                     "version %d)",
                     HAWQ_QMODEL_DOMAIN, v, DOMAIN_VERSION);
      }
    } else if (!present(o->domain) && !onnx_seen) {
      onnx_seen = true;
      if (v != ONNX_OPSET) {
        return rfail(r, HAWQ_ERR_PARSE, "the default operator set has version %lld, expected %d", v,
                     ONNX_OPSET);
      }
    } else {
      return rfail(r, HAWQ_ERR_PARSE,
                   "opset_import '%.60s' (version %lld) is not part of the format, expected "
                   "'' %d and '%s' %d once each",
                   S(o->domain), v, ONNX_OPSET, HAWQ_QMODEL_DOMAIN, DOMAIN_VERSION);
    }
  }
  if (!hawq_seen || !onnx_seen) {
    return rfail(r, HAWQ_ERR_PARSE, "opset_import lacks %s, expected '' %d and '%s' %d",
                 hawq_seen ? "the default domain ''" : "'" HAWQ_QMODEL_DOMAIN "'", ONNX_OPSET,
                 HAWQ_QMODEL_DOMAIN, DOMAIN_VERSION);
  }
  const Onnx__GraphProto *g = mp->graph;
  if (!g) return rfail(r, HAWQ_ERR_PARSE, "the model has no graph");
  if (has_unknown(g)) {
    return rfail(r, HAWQ_ERR_PARSE, "the graph has fields this build's onnx.proto does not know");
  }
  if (strcmp(S(g->name), GRAPH_NAME)) {
    return rfail(r, HAWQ_ERR_PARSE, "the graph is named '%.60s', expected '%s'", S(g->name),
                 GRAPH_NAME);
  }
  if (present(g->doc_string) || g->n_sparse_initializer || g->n_quantization_annotation) {
    return rfail(r, HAWQ_ERR_PARSE,
                 "the graph sets doc_string, sparse_initializer or quantization_annotation, which "
                 "the format does not define");
  }
  if (g->n_input != 1 || g->n_output != 1) {
    return rfail(r, HAWQ_ERR_PARSE, "the graph has %zu inputs and %zu outputs, expected 1 and 1",
                 g->n_input, g->n_output);
  }
  if (g->n_value_info > MAX_ITEMS || g->n_node > MAX_ITEMS || g->n_initializer > MAX_ITEMS) {
    return rfail(r, HAWQ_ERR_UNSUPPORTED,
                 "the graph has %zu tensors, %zu nodes and %zu initializers, expected at most %d "
                 "each",
                 g->n_value_info, g->n_node, g->n_initializer, MAX_ITEMS);
  }
  r->g = g;
  return HAWQ_OK;
}

/* ---- tensors ---- */

typedef struct vtype {
  int elem;
  int rank;
  int64_t dims[4];
} vtype;

/* A value_info's tensor type: elem_type, and dims [batch, ...] with "batch" symbolic and every
 * other dimension in [1, 2^31]. */
static hawq_status read_vtype(reader *r, const Onnx__ValueInfoProto *vi, const char *role,
                              vtype *out) {
  const char *name = S(vi->name);
  const Onnx__TypeProto *tp = vi->type;
  if (has_unknown(vi) || !tp || has_unknown(tp) || present(tp->denotation) ||
      tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
      has_unknown(tp->tensor_type) || !tp->tensor_type->has_elem_type || !tp->tensor_type->shape ||
      has_unknown(tp->tensor_type->shape)) {
    return rfail(r, HAWQ_ERR_PARSE, "%s '%s': expected a tensor type with elem_type and shape",
                 role, name);
  }
  const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
  out->elem = tp->tensor_type->elem_type;
  out->rank = (int)(sh->n_dim <= 64 ? sh->n_dim : 64); /* only compared with 2 and 4 */
  for (size_t k = 0; k < sh->n_dim && k < 4; k++) {
    const Onnx__TensorShapeProto__Dimension *d = sh->dim[k];
    bool ok = !has_unknown(d) && !present(d->denotation);
    if (k == 0) {
      ok = ok && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
           !strcmp(S(d->dim_param), BATCH_DIM);
      out->dims[k] = 0;
    } else {
      ok = ok && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
           d->dim_value >= 1 && d->dim_value <= MAX_DIM;
      out->dims[k] = ok ? d->dim_value : 0;
    }
    if (!ok) {
      return rfail(r, HAWQ_ERR_PARSE,
                   "%s '%s': dimension %zu is not %s, expected the batch then sizes 1..2^31", role,
                   name, k, k == 0 ? "the symbolic '" BATCH_DIM "'" : "a size in 1..2^31");
    }
  }
  return HAWQ_OK;
}

static hawq_status read_tensors(reader *r) {
  const Onnx__GraphProto *g = r->g;
  const char *in_name = S(g->input[0]->name), *out_name = S(g->output[0]->name);
  if (!nm_init(&r->tensors, g->n_value_info)) return oom(r);
  vtype *types = calloc(g->n_value_info + 1, sizeof *types);
  if (!types) return oom(r);
  hawq_status st = HAWQ_OK;
  for (size_t k = 0; k < g->n_value_info && !st; k++) {
    const Onnx__ValueInfoProto *vi = g->value_info[k];
    const char *name = S(vi->name);
    vtype *vt = &types[k];
    int rank = strcmp(name, out_name) ? 4 : 2;
    if (!*name) {
      st = rfail(r, HAWQ_ERR_PARSE, "value_info %zu has no name, expected a tensor name", k);
    } else if (nm_put(&r->tensors, name, (int)k) >= 0) {
      st = rfail(r, HAWQ_ERR_PARSE, "tensor '%s' is described twice in value_info, expected once",
                 name);
    } else if (!(st = read_vtype(r, vi, "tensor", vt)) && vt->rank != rank) {
      st = rfail(r, HAWQ_ERR_PARSE, "tensor '%s' has rank %d, expected %d (%s)", name, vt->rank,
                 rank, rank == 2 ? "[batch, classes], the model output" : "[batch, h, w, c]");
    }
    if (st) break;
    hawq_qtensor q = {0};
    if (!parse_qdoc(S(vi->doc_string), &q)) {
      st = rfail(r, HAWQ_ERR_PARSE,
                 "tensor '%s': doc_string '%.80s' is not a description, expected 'qtype=<U4|I4|U8|"
                 "I8|I16|I32> lo=<int> hi=<int> scale=<number>' as hawq writes it",
                 name, S(vi->doc_string));
    } else if (vt->elem != qtypes[q.type].onnx) {
      st = rfail(r, HAWQ_ERR_PARSE, "tensor '%s': elem_type %s, expected %s for qtype %s", name,
                 dtype_name(vt->elem), dtype_name(qtypes[q.type].onnx), qtypes[q.type].name);
    } else {
      int64_t h = rank == 4 ? vt->dims[1] : 1, w = rank == 4 ? vt->dims[2] : 1;
      int64_t c = vt->dims[rank - 1];
      if (hawq_qmodel_add_tensor(r->m, name, q.type, q.lo, q.hi, h, w, c, q.scale) < 0) {
        st = oom(r);
      }
    }
  }
  /* The graph's input and output: tensors described above, with the same type, no doc. */
  for (int k = 0; k < 2 && !st; k++) {
    const Onnx__ValueInfoProto *vi = k ? g->output[0] : g->input[0];
    const char *role = k ? "graph output" : "graph input", *name = k ? out_name : in_name;
    int t = nm_get(&r->tensors, name);
    vtype vt = {0};
    if (t < 0) {
      st = rfail(r, HAWQ_ERR_PARSE, "%s '%s' is not described in value_info", role, name);
    } else if (!(st = read_vtype(r, vi, role, &vt))) {
      if (vt.elem != types[t].elem || vt.rank != types[t].rank ||
          memcmp(vt.dims, types[t].dims, sizeof vt.dims) || present(vi->doc_string)) {
        st = rfail(r, HAWQ_ERR_PARSE,
                   "%s '%s' differs from its value_info, expected the same type and no doc_string",
                   role, name);
      } else if (k) {
        r->m->output = t;
      } else {
        r->m->input = t;
      }
    }
  }
  free(types);
  return st;
}

/* ---- nodes ---- */

static hawq_status read_attrs(reader *r, const Onnx__NodeProto *np, int index, hawq_qop op,
                              hawq_qnode *n) {
  unsigned want = op_descs[op].attrs, seen = 0;
  for (size_t k = 0; k < np->n_attribute; k++) {
    const Onnx__AttributeProto *at = np->attribute[k];
    const char *name = S(at->name);
    int a = 0;
    while (a < A_COUNT && (!(want & (1u << a)) || strcmp(name, attr_descs[a].name))) a++;
    if (a == A_COUNT) {
      return nfail(r, np, index, "attribute '%.60s' is not one of %s's", name,
                   op_descs[op].op_type);
    }
    if (seen & (1u << a)) return nfail(r, np, index, "attribute '%s' appears twice", name);
    seen |= 1u << a;
    int n_ints = attr_descs[a].n_ints;
    bool is_ints = n_ints > 0;
    bool ok = !has_unknown(at) && at->has_type && !present(at->ref_attr_name) &&
              !present(at->doc_string) && !at->has_f && !at->has_s && !at->t && !at->g &&
              !at->sparse_tensor && !at->tp && !at->n_floats && !at->n_strings && !at->n_tensors &&
              !at->n_graphs && !at->n_sparse_tensors && !at->n_type_protos;
    ok = ok && (is_ints ? at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS && !at->has_i &&
                              at->n_ints == (size_t)n_ints
                        : at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT && at->has_i &&
                              !at->n_ints);
    if (!ok) {
      if (is_ints) {
        return nfail(r, np, index, "attribute '%s' is not %d ints (INTS), expected exactly that",
                     name, n_ints);
      }
      return nfail(r, np, index, "attribute '%s' is not one int (INT), expected exactly that",
                   name);
    }
    int64_t v[4];
    for (int j = 0; j < (is_ints ? n_ints : 1); j++) {
      v[j] = is_ints ? at->ints[j] : at->i;
      if (v[j] < INT32_MIN || v[j] > INT32_MAX) {
        return nfail(r, np, index, "attribute '%s' value %lld is outside the int32 range", name,
                     (long long)v[j]);
      }
    }
    if (a == A_CIP && v[0] != 0 && v[0] != 1) {
      return nfail(r, np, index, "attribute '%s' is %lld, expected 0 or 1", name, (long long)v[0]);
    }
    attr_set(n, (attr)a, v);
  }
  for (int a = 0; a < A_COUNT; a++) {
    if ((want & (1u << a)) && !(seen & (1u << a))) {
      return nfail(r, np, index, "attribute '%s' is missing", attr_descs[a].name);
    }
  }
  return HAWQ_OK;
}

static uint32_t get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p) {
  return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Parameter p of node n, from initializer `iname`: checked against its expected shape, decoded
 * into n's array (malloc'd). */
static hawq_status read_param(reader *r, const Onnx__NodeProto *np, int index, hawq_qnode *n,
                              param p, const char *iname) {
  pshape s;
  char why[300];
  if (!param_shape(r->m, n, p, &s, why, sizeof why)) return nfail(r, np, index, "%s", why);
  int k = nm_get(&r->inits, iname);
  if (k < 0) {
    return nfail(r, np, index, "its %s initializer '%.80s' is missing%s", param_suffix[p], iname,
                 nm_get(&r->tensors, iname) >= 0 ? " (that name is a tensor)" : "");
  }
  if (r->init_used[k]) {
    return nfail(r, np, index, "initializer '%.80s' (its %s) is used a second time, expected once",
                 iname, param_suffix[p]);
  }
  r->init_used[k] = 1;
  const Onnx__TensorProto *t = r->g->initializer[k];
  if (!t->has_data_type || t->data_type != s.dtype) {
    return nfail(r, np, index, "initializer '%.80s' (its %s) is %s, expected %s", iname,
                 param_suffix[p], t->has_data_type ? dtype_name(t->data_type) : "untyped",
                 dtype_name(s.dtype));
  }
  bool dims_ok = t->n_dims == (size_t)s.rank;
  for (int d = 0; dims_ok && d < s.rank; d++) dims_ok = t->dims[d] == s.dims[d];
  if (!dims_ok) {
    char got[200], want[100];
    dims_str(t->n_dims < 8 ? t->n_dims : 8, t->dims, got, sizeof got);
    dims_str((size_t)s.rank, s.dims, want, sizeof want);
    return nfail(r, np, index, "initializer '%.80s' (its %s) has dims %s, expected %s", iname,
                 param_suffix[p], got, want);
  }
  if (has_unknown(t) || t->segment || t->n_float_data || t->n_int32_data || t->n_string_data ||
      t->n_int64_data || t->n_double_data || t->n_uint64_data || t->n_external_data ||
      (t->has_data_location && t->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT) ||
      present(t->doc_string)) {
    return nfail(r, np, index,
                 "initializer '%.80s' (its %s) has fields besides name, data_type, dims and "
                 "raw_data, expected its data in raw_data only",
                 iname, param_suffix[p]);
  }
  size_t esize = (size_t)dtype_size(s.dtype), bytes = (size_t)s.count * esize;
  size_t got = t->has_raw_data ? t->raw_data.len : 0;
  if (!t->has_raw_data || got != bytes) {
    return nfail(r, np, index,
                 "initializer '%.80s' (its %s) has %zu bytes of raw_data, expected %zu (%lld %s)",
                 iname, param_suffix[p], got, bytes, (long long)s.count, dtype_name(s.dtype));
  }
  const uint8_t *raw = t->raw_data.data;
  size_t cnt = (size_t)s.count;
  void *arr = NULL;
  switch (p) {
    case P_INPUT_MUL:
    case P_INPUT_ADD:
    case P_BIAS: {
      int32_t *a = malloc(cnt ? cnt * 4 : 1);
      if (!a) return oom(r);
      for (size_t e = 0; e < cnt; e++) a[e] = (int32_t)get_le32(raw + 4 * e);
      arr = a;
      int32_t **dst = p == P_INPUT_MUL   ? &n->input_mul
                      : p == P_INPUT_ADD ? &n->input_add
                                         : &n->bias;
      *dst = a;
      break;
    }
    case P_WEIGHT:
      if (!(arr = malloc(bytes ? bytes : 1))) return oom(r);
      memcpy(arr, raw, bytes);
      n->weight = arr;
      break;
    case P_WEIGHT_SCALE: {
      double *a = malloc(cnt ? cnt * 8 : 1);
      if (!a) return oom(r);
      for (size_t e = 0; e < cnt; e++) {
        uint64_t bits = get_le64(raw + 8 * e);
        memcpy(&a[e], &bits, 8);
      }
      n->weight_scale = a;
      break;
    }
    case P_MULTIPLIER:
    case P_SHIFT:
      if (!n->dyadic) {
        n->dyadic = calloc(cnt ? cnt : 1, sizeof *n->dyadic);
        if (!n->dyadic) return oom(r);
        n->n_dyadic = (int)cnt;
      }
      for (size_t e = 0; e < cnt; e++) {
        int32_t v = (int32_t)get_le32(raw + 4 * e);
        if (p == P_MULTIPLIER) {
          n->dyadic[e].m = v;
        } else {
          n->dyadic[e].c = v;
        }
      }
      break;
    case P_RES_MULTIPLIER:
      n->residual_dyadic.m = (int32_t)get_le32(raw);
      break;
    case P_RES_SHIFT:
      n->residual_dyadic.c = (int32_t)get_le32(raw);
      break;
    case P_COUNT:
      break;
  }
  return HAWQ_OK;
}

static hawq_status read_node(reader *r, int index, const Onnx__NodeProto *np) {
  if (has_unknown(np) || present(np->doc_string)) {
    return nfail(r, np, index,
                 "has fields besides input, output, name, op_type, domain and "
                 "attribute, expected none");
  }
  if (strcmp(S(np->domain), HAWQ_QMODEL_DOMAIN)) {
    return nfail(r, np, index, "domain is '%.60s', expected '%s'", S(np->domain),
                 HAWQ_QMODEL_DOMAIN);
  }
  int op = 0;
  while (op < HAWQ_QOP_COUNT && strcmp(S(np->op_type), op_descs[op].op_type)) op++;
  if (op == HAWQ_QOP_COUNT) {
    return nfail(r, np, index,
                 "op_type is not one of QInput, QConv, QAdd, QRequant, QMaxPool, QAvgPool, "
                 "QConcat (format version %d)",
                 HAWQ_QMODEL_FORMAT_VERSION);
  }
  const struct op_desc *d = &op_descs[op];
  if (np->n_output != 1) {
    return nfail(r, np, index, "%zu outputs, expected 1", np->n_output);
  }
  int out = nm_get(&r->tensors, S(np->output[0]));
  if (out < 0) {
    return nfail(r, np, index, "output '%.80s' is not described in value_info", S(np->output[0]));
  }
  if (np->n_input < (size_t)d->n_params + 1 ||
      np->n_input > (size_t)d->n_params + HAWQ_QMAX_INPUTS) {
    return nfail(r, np, index, "%zu inputs, expected 1..%d tensors then %d initializers",
                 np->n_input, HAWQ_QMAX_INPUTS, d->n_params);
  }
  int n_in = (int)np->n_input - d->n_params;
  hawq_qnode n;
  memset(&n, 0, sizeof n);
  n.op = (hawq_qop)op;
  n.n_inputs = n_in;
  n.output = out;
  for (int j = 0; j < HAWQ_QMAX_INPUTS; j++) n.inputs[j] = -1;
  for (int j = 0; j < n_in; j++) {
    const char *name = S(np->input[j]);
    if (!*name) continue; /* an absent optional input */
    if ((n.inputs[j] = nm_get(&r->tensors, name)) < 0) {
      return nfail(r, np, index, "input %d '%.80s' is not a tensor described in value_info%s", j,
                   name, nm_get(&r->inits, name) >= 0 ? " (it is an initializer)" : "");
    }
  }
  hawq_status st = read_attrs(r, np, index, n.op, &n);
  for (int j = 0; j < d->n_params && !st; j++) {
    st = read_param(r, np, index, &n, d->params[j], S(np->input[n_in + j]));
  }
  if (!st) {
    int i = hawq_qmodel_add_node(r->m, n.op, S(np->name), n.n_inputs, n.inputs, n.output);
    if (i < 0) {
      st = oom(r);
    } else {
      hawq_qnode *dst = &r->m->nodes[i];
      char *name = dst->name;
      *dst = n;
      dst->name = name;
      return HAWQ_OK;
    }
  }
  hawq_qnode_free_arrays(&n);
  return st;
}

static hawq_status read_graph(reader *r) {
  const Onnx__GraphProto *g = r->g;
  hawq_status st = read_tensors(r);
  if (st) return st;
  if (!nm_init(&r->inits, g->n_initializer) || !(r->init_used = calloc(g->n_initializer + 1, 1))) {
    return oom(r);
  }
  for (size_t k = 0; k < g->n_initializer; k++) {
    const char *name = S(g->initializer[k]->name);
    if (nm_get(&r->tensors, name) >= 0) {
      return rfail(r, HAWQ_ERR_PARSE,
                   "initializer '%.80s' has the name of a tensor, expected "
                   "distinct names",
                   name);
    }
    if (nm_put(&r->inits, name, (int)k) >= 0) {
      return rfail(r, HAWQ_ERR_PARSE, "initializer name '%.80s' is used twice, expected once",
                   name);
    }
  }
  for (size_t k = 0; k < g->n_node; k++) {
    if ((st = read_node(r, (int)k, g->node[k]))) return st;
  }
  for (size_t k = 0; k < g->n_initializer; k++) {
    if (!r->init_used[k]) {
      return rfail(r, HAWQ_ERR_PARSE, "initializer '%.80s' is not a parameter of any node",
                   S(g->initializer[k]->name));
    }
  }
  return HAWQ_OK;
}

static hawq_status read_model(reader *r, const Onnx__ModelProto *mp) {
  hawq_status st;
  if ((st = read_metadata(r, mp)) || (st = read_envelope(r, mp))) return st;
  if (!(r->m = hawq_qmodel_new())) return oom(r);
  if ((st = read_graph(r)) || (st = apply_metadata(r))) return st;
  if (!(r->flags & HAWQ_QMODEL_READ_NO_DIGEST)) {
    uint64_t want;
    if (!parse_hex(r->meta[M_DIGEST], 16, &want)) {
      return rfail(r, HAWQ_ERR_PARSE, "metadata '%s' is '%.40s', expected 16 lowercase hex digits",
                   meta_names[M_DIGEST], r->meta[M_DIGEST]);
    }
    uint64_t got = hawq_qmodel_digest(r->m);
    if (got != want) {
      return rfail(r, HAWQ_ERR_PARSE,
                   "checksum mismatch: the file is corrupt or was edited (digest %016" PRIx64
                   ", metadata '%s' says %016" PRIx64 ")",
                   got, meta_names[M_DIGEST], want);
    }
  }
  return hawq_qmodel_validate(r->m, r->file, r->err);
}

hawq_status hawq_qmodel_read_buffer(const void *data, size_t size, const char *name, unsigned flags,
                                    hawq_qmodel **out, hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  hawq_error_clear(err);
  if (!name) name = "<buffer>";
  if (!out) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no output pointer", name);
  *out = NULL;
  if (!data && size) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "%s: no data", name);
  if (size == 0) {
    return hawq_fail(err, HAWQ_ERR_PARSE, "%s: empty file, expected a hawq integer model (.hqm)",
                     name);
  }
  if (size > HAWQ_QMODEL_MAX_FILE_BYTES) {
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: %zu bytes is over protobuf's 2 GiB limit",
                     name, size);
  }
  if (!onnx_nesting_within(data, size, HAWQ_MAX_ONNX_NESTING)) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: messages nested more than %d deep, expected a flat hawq integer model",
                     name, HAWQ_MAX_ONNX_NESTING);
  }
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
  if (!mp) {
    return hawq_fail(err, HAWQ_ERR_PARSE,
                     "%s: not an ONNX file (protobuf ModelProto did not parse: truncated, corrupt "
                     "or another format), expected a hawq integer model (.hqm)",
                     name);
  }
  reader r = {.file = name, .err = err, .flags = flags};
  hawq_status st = read_model(&r, mp);
  nm_free(&r.tensors);
  nm_free(&r.inits);
  free(r.init_used);
  onnx__model_proto__free_unpacked(mp, NULL);
  if (st) {
    hawq_qmodel_destroy(r.m);
    return st;
  }
  *out = r.m;
  return HAWQ_OK;
}

hawq_status hawq_qmodel_load_buffer(const void *data, size_t size, const char *name,
                                    hawq_qmodel **out, hawq_error *err) {
  return hawq_qmodel_read_buffer(data, size, name, 0, out, err);
}

hawq_status hawq_qmodel_load(const char *path, hawq_qmodel **out, hawq_error *err) {
  hawq_error local;
  if (!err) err = &local;
  hawq_error_clear(err);
  if (!out) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "load: no output pointer");
  *out = NULL;
  if (!path) return hawq_fail(err, HAWQ_ERR_INVALID_ARG, "load: no path");
  void *data;
  size_t size;
  hawq_status st = hawq_read_file(path, HAWQ_QMODEL_MAX_FILE_BYTES,
                                  " (protobuf's 2 GiB limit for a .hqm file)", &data, &size, err);
  if (st) return st;
  st = hawq_qmodel_read_buffer(data, size, path, 0, out, err);
  free(data);
  return st;
}
